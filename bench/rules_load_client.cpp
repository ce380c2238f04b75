// A keep-alive HTTP load for the reload benchmark (bench/rules_bench.sh): N connections to a
// proxy, each sending `GET <absolute URL>` as soon as the previous response is complete, every
// request recorded (start, latency, status or error). Optionally sends SIGHUP to a PID every few
// seconds (a hallpass reload, or Squid's `-k reconfigure`, which is SIGHUP too) and samples that
// PID's VmRSS/VmHWM. Prints what was sent, answered and failed, latencies, responses per 100 ms
// and the longest time with no response completed. Loopback; bounded.
// --rate R makes it open-loop: R requests/s in all, each connection sending on a fixed schedule
// (still one request at a time); a request is timed from when it was due, so a stall shows as
// latency instead of as fewer requests (no coordinated omission).
//
//   rules_load_client --proxy HOST:PORT --url URL [--conns N] [--seconds S] [--rate R]
//       [--hup-pid PID --hup-every-ms MS [--hup-first-ms MS]]
//       [--rss-pid PID [--rss-every-ms MS]] [--raw FILE]
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

int64_t now_ns(Clock::time_point t0) {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count();
}

struct Options {
    std::string proxy_host = "127.0.0.1";
    int proxy_port = 0;
    std::string url;
    int conns = 32;
    double seconds = 20;
    double rate = 0;  // requests/s in all; 0: each connection sends as soon as it can
    pid_t hup_pid = 0;
    int hup_every_ms = 2000;
    int hup_first_ms = 1000;
    pid_t rss_pid = 0;
    int rss_every_ms = 50;
    std::string raw;
};

enum Outcome : int16_t { kSocketError = -1, kTimeout = -2, kClosedIdle = -3 };

struct Sample {
    int64_t start_ns;
    int64_t latency_ns;
    int16_t status;  // HTTP status, or an Outcome
};

struct Conn {
    int fd = -1;
    bool connected = false;
    bool in_flight = false;
    int64_t start_ns = 0;
    std::string in;
    int64_t reconnect_at_ns = -1;  // >= 0: closed, reconnect then
    int64_t due_ns = 0;            // --rate: when this connection's next request is due
};

// Status and total length of a complete response in `in`, or 0 when more bytes are needed;
// -1 when it cannot be framed (no Content-Length: this client only does fixed-length bodies).
int64_t response_length(const std::string& in, int* status, bool* close_after) {
    const size_t head_end = in.find("\r\n\r\n");
    if (head_end == std::string::npos) return 0;
    *status = std::atoi(in.c_str() + 9);  // "HTTP/1.1 200"
    std::string head = in.substr(0, head_end);
    std::transform(head.begin(), head.end(), head.begin(), ::tolower);
    *close_after = head.find("\r\nconnection: close") != std::string::npos;
    const size_t cl = head.find("\r\ncontent-length:");
    if (cl == std::string::npos) return -1;
    const int64_t body = std::atoll(head.c_str() + cl + 17);
    const int64_t total = static_cast<int64_t>(head_end + 4) + body;
    return static_cast<int64_t>(in.size()) >= total ? total : 0;
}

double pct(std::vector<double>& v, double p) {
    if (v.empty()) return 0;
    return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

struct RssSample {
    int64_t t_ns;
    long rss_kib, hwm_kib;
};

void read_rss(pid_t pid, long* rss, long* hwm) {
    std::ifstream status("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(status, line)) {
        if (line.rfind("VmRSS:", 0) == 0) *rss = std::atol(line.c_str() + 6);
        if (line.rfind("VmHWM:", 0) == 0) *hwm = std::atol(line.c_str() + 6);
    }
}

Options parse_args(int argc, char** argv) {
    Options o;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string a = argv[i], v = argv[i + 1];
        if (a == "--proxy") {
            const size_t colon = v.rfind(':');
            o.proxy_host = v.substr(0, colon);
            o.proxy_port = std::atoi(v.c_str() + colon + 1);
        } else if (a == "--url") {
            o.url = v;
        } else if (a == "--conns") {
            o.conns = std::atoi(v.c_str());
        } else if (a == "--seconds") {
            o.seconds = std::atof(v.c_str());
        } else if (a == "--rate") {
            o.rate = std::atof(v.c_str());
        } else if (a == "--hup-pid") {
            o.hup_pid = std::atoi(v.c_str());
        } else if (a == "--hup-every-ms") {
            o.hup_every_ms = std::atoi(v.c_str());
        } else if (a == "--hup-first-ms") {
            o.hup_first_ms = std::atoi(v.c_str());
        } else if (a == "--rss-pid") {
            o.rss_pid = std::atoi(v.c_str());
        } else if (a == "--rss-every-ms") {
            o.rss_every_ms = std::atoi(v.c_str());
        } else if (a == "--raw") {
            o.raw = v;
        } else {
            std::fprintf(stderr, "unknown option %s\n", a.c_str());
            std::exit(2);
        }
    }
    if (o.proxy_port == 0 || o.url.empty()) {
        std::fprintf(
            stderr,
            "usage: rules_load_client --proxy HOST:PORT --url URL [--conns N] "
            "[--seconds S] [--rate R] [--hup-pid PID --hup-every-ms MS [--hup-first-ms MS]] "
            "[--rss-pid PID [--rss-every-ms MS]] [--raw FILE]\n");
        std::exit(2);
    }
    return o;
}

class Load {
  public:
    explicit Load(const Options& o) : o_(o), conns_(static_cast<size_t>(o.conns)) {
        // Host header: the URL's authority (RFC 9112 §3.2: it must match an absolute target).
        const size_t start = o.url.find("://") + 3;
        const std::string authority = o.url.substr(start, o.url.find('/', start) - start);
        request_ = "GET " + o.url + " HTTP/1.1\r\nHost: " + authority + "\r\n\r\n";
        addr_.sin_family = AF_INET;
        addr_.sin_port = htons(static_cast<uint16_t>(o.proxy_port));
        inet_pton(AF_INET, o.proxy_host.c_str(), &addr_.sin_addr);
        ep_ = epoll_create1(0);
    }

    void run() {
        t0_ = Clock::now();
        start_unix_ =
            std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
                .count();
        end_ns_ = static_cast<int64_t>(o_.seconds * 1e9);
        if (o_.rate > 0) {
            interval_ns_ = static_cast<int64_t>(1e9 * static_cast<double>(conns_.size()) / o_.rate);
        }
        for (size_t i = 0; i < conns_.size(); ++i) {
            open(i);
            // Staggered, so the connections' schedules interleave evenly.
            conns_[i].due_ns =
                interval_ns_ * static_cast<int64_t>(i) / static_cast<int64_t>(conns_.size());
        }
        int64_t next_hup = o_.hup_pid > 0 ? int64_t{o_.hup_first_ms} * 1000000 : -1;
        epoll_event events[256];
        for (;;) {
            const int64_t t = now_ns(t0_);
            if (t >= end_ns_ + kDrainNs) break;
            if (t >= end_ns_ && idle()) break;
            if (next_hup >= 0 && t >= next_hup && t < end_ns_) {
                kill(o_.hup_pid, SIGHUP);
                hups_.push_back(t);
                next_hup += int64_t{o_.hup_every_ms} * 1000000;
            }
            const int n = epoll_wait(ep_, events, 256, o_.rate > 0 ? 1 : 2);
            for (int i = 0; i < n; ++i) on_event(events[i].data.u64, events[i].events);
            check_timers(now_ns(t0_));
        }
        for (size_t i = 0; i < conns_.size(); ++i) {
            if (conns_[i].in_flight) samples_.push_back({conns_[i].start_ns, 0, kTimeout});
            close_conn(i, -1);
        }
    }

    void report(const std::vector<RssSample>& rss) const;

  private:
    static constexpr int64_t kTimeoutNs = 10'000'000'000;
    static constexpr int64_t kDrainNs = 11'000'000'000;  // after the end, wait for answers

    bool idle() const {
        for (const Conn& c : conns_) {
            if (c.in_flight) return false;
        }
        return true;
    }

    void open(size_t i) {
        Conn& c = conns_[i];
        const int64_t due = c.due_ns;
        c = Conn{};
        c.due_ns = due;
        c.fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        const int one = 1;
        setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        epoll_event ev{};
        ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP;
        ev.data.u64 = i;
        epoll_ctl(ep_, EPOLL_CTL_ADD, c.fd, &ev);
        ++connects_;
        if (connect(c.fd, reinterpret_cast<sockaddr*>(&addr_), sizeof addr_) < 0 &&
            errno != EINPROGRESS) {
            ++connect_errors_;
            close_conn(i, now_ns(t0_) + 10'000'000);
        }
    }

    // Closes; reconnects at `reconnect_at` (ns since start) unless the run is over or it is -1.
    void close_conn(size_t i, int64_t reconnect_at) {
        Conn& c = conns_[i];
        if (c.fd >= 0) {
            epoll_ctl(ep_, EPOLL_CTL_DEL, c.fd, nullptr);
            ::close(c.fd);
        }
        c.fd = -1;
        c.connected = false;
        c.in_flight = false;
        c.in.clear();
        c.reconnect_at_ns = reconnect_at >= 0 && reconnect_at < end_ns_ ? reconnect_at : -1;
    }

    // Sends now, or (--rate) when due: a late request goes at once and is timed from when it was
    // due. Returns without sending when the next one is not due yet; check_timers() sends it.
    void send_request(size_t i) {
        Conn& c = conns_[i];
        const int64_t t = now_ns(t0_);
        if (interval_ns_ > 0) {
            if (t < c.due_ns) return;
            c.start_ns = c.due_ns;
            c.due_ns += interval_ns_;
        } else {
            c.start_ns = t;
        }
        c.in_flight = true;
        ++sent_;
        // A short request on a fresh or idle socket: the kernel takes it whole.
        if (write(c.fd, request_.data(), request_.size()) !=
            static_cast<ssize_t>(request_.size())) {
            fail(i, kSocketError);
        }
    }

    void fail(size_t i, Outcome why) {
        Conn& c = conns_[i];
        if (c.in_flight) {
            samples_.push_back({c.start_ns, now_ns(t0_) - c.start_ns, why});
        } else {
            ++idle_closes_;  // closed between requests: not a failed request
        }
        close_conn(i, now_ns(t0_));
    }

    void on_event(uint64_t i, uint32_t events) {
        Conn& c = conns_[i];
        if (c.fd < 0) return;
        if (!c.connected && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
            int err = 0;
            socklen_t len = sizeof err;
            getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
            if (err != 0) {
                ++connect_errors_;
                close_conn(i, now_ns(t0_) + 10'000'000);
                return;
            }
            c.connected = true;
            epoll_event ev{};
            ev.events = EPOLLIN | EPOLLRDHUP;
            ev.data.u64 = i;
            epoll_ctl(ep_, EPOLL_CTL_MOD, c.fd, &ev);
            if (now_ns(t0_) < end_ns_) {
                send_request(i);
            } else {
                close_conn(i, -1);
            }
            return;
        }
        if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) read_some(i);
    }

    void read_some(size_t i) {
        Conn& c = conns_[i];
        char buf[65536];
        for (;;) {
            const ssize_t n = read(c.fd, buf, sizeof buf);
            if (n > 0) {
                c.in.append(buf, static_cast<size_t>(n));
                continue;
            }
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
            if (n < 0 && errno == EINTR) continue;
            // EOF or error: a complete response may still be in the buffer; then the next
            // request goes on a new connection.
            if (complete(i, false)) {
                close_conn(i, now_ns(t0_));
            } else {
                fail(i, kSocketError);
            }
            return;
        }
        complete(i, true);
    }

    // Records a complete response and (if `send_next`) sends the next request; false when none
    // is complete.
    bool complete(size_t i, bool send_next) {
        Conn& c = conns_[i];
        if (!c.in_flight) return false;
        int status = 0;
        bool close_after = false;
        const int64_t length = response_length(c.in, &status, &close_after);
        if (length == 0) return false;
        if (length < 0) {
            fail(i, kSocketError);
            return true;
        }
        const int64_t t = now_ns(t0_);
        samples_.push_back({c.start_ns, t - c.start_ns, static_cast<int16_t>(status)});
        c.in.erase(0, static_cast<size_t>(length));
        c.in_flight = false;
        if (!send_next) return true;
        if (close_after) {
            close_conn(i, t);
        } else if (t < end_ns_) {
            send_request(i);
        } else {
            close_conn(i, -1);
        }
        return true;
    }

    void check_timers(int64_t t) {
        for (size_t i = 0; i < conns_.size(); ++i) {
            Conn& c = conns_[i];
            if (c.fd < 0 && c.reconnect_at_ns >= 0 && t >= c.reconnect_at_ns) open(i);
            if (c.in_flight && t - c.start_ns > kTimeoutNs) fail(i, kTimeout);
            if (interval_ns_ > 0 && c.connected && !c.in_flight && t >= c.due_ns && t < end_ns_) {
                send_request(i);
            }
        }
    }

    Options o_;
    std::vector<Conn> conns_;
    std::string request_;
    sockaddr_in addr_{};
    int ep_ = -1;
    Clock::time_point t0_;
    int64_t end_ns_ = 0;
    int64_t interval_ns_ = 0;  // --rate: between one connection's requests
    double start_unix_ = 0;    // to line up with log timestamps
    size_t sent_ = 0, connects_ = 0, connect_errors_ = 0, idle_closes_ = 0;
    std::vector<Sample> samples_;
    std::vector<int64_t> hups_;

  public:
    Clock::time_point start() const { return t0_; }
};

void Load::report(const std::vector<RssSample>& rss) const {
    size_t ok = 0, non2xx = 0, errors = 0, timeouts = 0;
    std::vector<double> all;
    std::vector<int64_t> done_at;
    for (const Sample& s : samples_) {
        if (s.status >= 200 && s.status < 300) {
            ++ok;
        } else if (s.status > 0) {
            ++non2xx;
        } else if (s.status == kTimeout) {
            ++timeouts;
        } else {
            ++errors;
        }
        if (s.status <= 0) continue;
        all.push_back(static_cast<double>(s.latency_ns) / 1000);
        done_at.push_back(s.start_ns + s.latency_ns);
    }
    // The longest stretch of the load (start to end, not the drain after it) in which no
    // response was completed: an outage shows here even when requests only hang.
    std::sort(done_at.begin(), done_at.end());
    std::vector<std::pair<int64_t, int64_t>> gaps;  // (length, start)
    int64_t last_done = 0;
    for (int64_t t : done_at) {
        if (t > end_ns_) break;
        gaps.emplace_back(t - last_done, last_done);
        last_done = t;
    }
    gaps.emplace_back(end_ns_ - last_done, last_done);
    std::sort(gaps.rbegin(), gaps.rend());
    gaps.resize(std::min<size_t>(gaps.size(), 5));
    const int64_t longest_gap = gaps.front().first;
    // Responses per 100 ms over the load (the run's first and last 100 ms left out).
    std::vector<double> per_bucket;
    if (!done_at.empty()) {
        const int64_t buckets = static_cast<int64_t>(o_.seconds * 10);
        std::vector<double> counts(static_cast<size_t>(buckets), 0);
        for (int64_t t : done_at) {
            const int64_t b = t / 100000000;
            if (b < buckets) counts[static_cast<size_t>(b)] += 1;
        }
        per_bucket.assign(counts.begin() + 1, counts.end() - 1);
        std::sort(per_bucket.begin(), per_bucket.end());
    }
    std::sort(all.begin(), all.end());
    const size_t failed = errors + timeouts;
    std::printf(
        "requests sent %zu: %zu 2xx, %zu non-2xx, %zu failed (%zu socket errors, %zu "
        "timeouts); %zu connections opened, %zu connect errors, %zu closed while idle\n",
        sent_, ok, non2xx, failed, errors, timeouts, connects_, connect_errors_, idle_closes_);
    std::printf("throughput %.0f responses/s; per 100 ms: min %.0f, median %.0f\n",
                static_cast<double>(all.size()) / o_.seconds, pct(per_bucket, 0),
                pct(per_bucket, 0.5));
    auto line = [](const char* label, std::vector<double>& v) {
        std::printf("latency%s n=%zu: p50 %.0f us, p99 %.0f us, p99.9 %.0f us, max %.0f us\n",
                    label, v.size(), pct(v, 0.5), pct(v, 0.99), pct(v, 0.999),
                    v.empty() ? 0.0 : v.back());
    };
    line("", all);
    std::printf("longest times without a completed response:");
    for (const auto& [length, start] : gaps) {
        std::printf(" %.1f ms at %.3f s,", static_cast<double>(length) / 1e6,
                    static_cast<double>(start) / 1e9);
    }
    std::printf("\nSIGHUPs sent at:");
    for (int64_t h : hups_) std::printf(" %.3f", static_cast<double>(h) / 1e9);
    std::printf(" s (load started at %.3f, Unix time)\n", start_unix_);
    long peak_rss = 0, first_rss = 0, steady_rss = 0, last_hwm = 0;
    const int64_t first_hup = hups_.empty() ? INT64_MAX : hups_.front();
    for (const RssSample& r : rss) {
        if (first_rss == 0) first_rss = r.rss_kib;
        peak_rss = std::max(peak_rss, r.rss_kib);
        if (r.t_ns < first_hup) steady_rss = std::max(steady_rss, r.rss_kib);
        last_hwm = r.hwm_kib;
    }
    if (!rss.empty()) {
        std::printf(
            "proxy RSS (%zu samples): first %.1f MB, max before the first SIGHUP %.1f MB, "
            "max %.1f MB, last %.1f MB; VmHWM at the end %.1f MB\n",
            rss.size(), first_rss / 1024.0, steady_rss / 1024.0, peak_rss / 1024.0,
            rss.back().rss_kib / 1024.0, last_hwm / 1024.0);
    }
    std::printf(
        "RESULT sent=%zu ok=%zu non2xx=%zu failed=%zu rps=%.0f p50_us=%.0f p99_us=%.0f "
        "max_us=%.0f gap_ms=%.1f min100ms=%.0f hups=%zu rss_first_kib=%ld rss_steady_kib=%ld "
        "rss_max_kib=%ld rss_last_kib=%ld hwm_kib=%ld\n",
        sent_, ok, non2xx, failed, static_cast<double>(all.size()) / o_.seconds, pct(all, 0.5),
        pct(all, 0.99), all.empty() ? 0.0 : all.back(), static_cast<double>(longest_gap) / 1e6,
        pct(per_bucket, 0), hups_.size(), first_rss, steady_rss, peak_rss,
        rss.empty() ? 0 : rss.back().rss_kib, last_hwm);
    if (!o_.raw.empty()) {
        std::FILE* f = std::fopen(o_.raw.c_str(), "w");
        if (f != nullptr) {
            std::fprintf(f, "# start_ms\tlatency_us\tstatus (-1 socket error, -2 timeout)\n");
            std::fprintf(f, "# load started at %.3f Unix time\n", start_unix_);
            for (const Sample& s : samples_) {
                std::fprintf(f, "%.3f\t%.0f\t%d\n", static_cast<double>(s.start_ns) / 1e6,
                             static_cast<double>(s.latency_ns) / 1e3, s.status);
            }
            for (int64_t h : hups_) std::fprintf(f, "# SIGHUP at %.3f ms\n", h / 1e6);
            for (const RssSample& r : rss) {
                std::fprintf(f, "# rss %.0f ms %ld kB hwm %ld kB\n", r.t_ns / 1e6, r.rss_kib,
                             r.hwm_kib);
            }
            std::fclose(f);
        }
    }
}

}  // namespace

int main(int argc, char** argv) {
    const Options o = parse_args(argc, argv);
    signal(SIGPIPE, SIG_IGN);
    Load load(o);
    std::vector<RssSample> rss;
    std::atomic<bool> done{false};
    std::thread sampler;
    const Clock::time_point t0 = Clock::now();
    if (o.rss_pid > 0) {
        // Peak RSS over this run only (VmHWM is since the process started).
        std::ofstream(std::string("/proc/") + std::to_string(o.rss_pid) + "/clear_refs") << "5";
        sampler = std::thread([&] {
            while (!done.load()) {
                RssSample s{now_ns(t0), 0, 0};
                read_rss(o.rss_pid, &s.rss_kib, &s.hwm_kib);
                rss.push_back(s);
                std::this_thread::sleep_for(std::chrono::milliseconds(o.rss_every_ms));
            }
        });
    }
    load.run();
    done = true;
    if (sampler.joinable()) sampler.join();
    // Sample times are relative to t0 here and to the load's own start in the report; the two
    // differ by the microseconds between them.
    load.report(rss);
    return 0;
}
