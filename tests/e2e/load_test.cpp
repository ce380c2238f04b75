// 5,000 concurrent client connections: 4,500 idle CONNECT tunnels to an echo server and 500
// idle keep-alive connections, with a request load running meanwhile. Every request must be
// answered, every tunnel must still echo, and hallpass's resident memory must stay bounded; the
// test prints the numbers docs/benchmarks-load.md records (RSS before and after, KiB per idle
// connection). Needs RLIMIT_NOFILE > 10,000 for itself and for hallpass (inherited).
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <fstream>
#include <mutex>

#include "harness.h"

using namespace hallpass::e2e;

namespace {

constexpr int kTunnels = 4500;
constexpr int kKeepAlive = 500;
constexpr int kBatch = 250;  // connections opened before their answers are read

Ms since(Clock::time_point start) { return std::chrono::duration_cast<Ms>(Clock::now() - start); }

// A field of /proc/PID/status in KiB ("VmHWM"); 0 when unknown.
long status_kib(pid_t pid, std::string_view field) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    for (std::string line; std::getline(in, line);)
        if (line.rfind(std::string(field) + ":", 0) == 0)
            return std::strtol(line.c_str() + field.size() + 1, nullptr, 10);
    return 0;
}

std::string connect_request(uint16_t port) {
    std::string authority = "127.0.0.1:" + std::to_string(port);
    return "CONNECT " + authority + " HTTP/1.1\r\nHost: " + authority + "\r\n\r\n";
}

// Latency percentiles of a sample, in ms.
struct Latency {
    std::vector<double> ms;
    double at(double q) {
        if (ms.empty()) return 0;
        std::sort(ms.begin(), ms.end());
        return ms[std::min(ms.size() - 1, static_cast<size_t>(q * static_cast<double>(ms.size())))];
    }
};

}  // namespace

TEST_CASE("load: 5,000 concurrent connections, mostly idle tunnels, with requests meanwhile") {
    const long limit = raise_fd_limit(30'000);
    REQUIRE_MESSAGE(limit > 12'000, "RLIMIT_NOFILE is " << limit << "; this test needs 12,000");
    TempDir dir;
    Nginx origin(dir);
    const std::string content = random_bytes(1024, 17);
    origin.put("1k", content);
    EchoServer echo;
    HallpassOptions o;
    o.log_level = "info";  // no per-connection debug lines
    o.server_yaml =
        "max_connections: 20000\nmax_connections_per_client: 20000\n"
        "connect_ports: [" +
        std::to_string(echo.port()) + "]";
    Hallpass proxy(dir, o);
    const pid_t pid = proxy.pid();

    // Warm up: allocator arenas, the pool, a few tunnels; then the baseline.
    for (int i = 0; i < 20; ++i) REQUIRE(probe(proxy.port(), origin.port(), "/1k") == 200);
    {
        RawClient t(proxy.port());
        t.send(connect_request(echo.port()));
        REQUIRE(t.read_response(5s, true));
    }
    std::this_thread::sleep_for(200ms);
    const long rss_start = proxy.rss_kib();

    // 4,500 tunnels, opened in batches; each proves it works with one echo.
    auto open_start = Clock::now();
    std::vector<std::unique_ptr<RawClient>> tunnels;
    tunnels.reserve(kTunnels);
    for (int base = 0; base < kTunnels; base += kBatch) {
        for (int i = base; i < base + kBatch; ++i) {
            tunnels.push_back(std::make_unique<RawClient>(proxy.port()));
            tunnels.back()->send(connect_request(echo.port()));
        }
        for (int i = base; i < base + kBatch; ++i) {
            auto r = tunnels[static_cast<size_t>(i)]->read_response(10s, true);
            REQUIRE_MESSAGE(r, "tunnel " << i << " got no answer");
            REQUIRE(r->status == 200);
        }
    }
    const Ms tunnels_open = since(open_start);
    REQUIRE(wait_until([&] { return echo.open_connections() == kTunnels; }, 10s));
    std::this_thread::sleep_for(300ms);
    const long rss_tunnels = proxy.rss_kib();

    // 500 keep-alive connections, one exchange each, then idle.
    std::vector<std::unique_ptr<RawClient>> idle;
    for (int i = 0; i < kKeepAlive; ++i) {
        idle.push_back(std::make_unique<RawClient>(proxy.port()));
        idle.back()->send(proxy_get(origin.port(), "/1k", "site.test"));
        auto r = idle.back()->read_final_response(10s);
        REQUIRE(r);
        REQUIRE(r->status == 200);
    }
    std::this_thread::sleep_for(300ms);
    const long rss_all = proxy.rss_kib();
    const long fds_all = open_fd_count(pid);
    CHECK(fds_all > 2 * kTunnels + kKeepAlive);

    // The request load: 4 threads on keep-alive connections of their own for 5 s, while the
    // main thread pings every tunnel and reuses every idle keep-alive connection once.
    std::atomic<bool> stop{false};
    std::atomic<long> ok{0}, failed{0};
    std::mutex mu;
    Latency latency;
    std::string first_failure;
    std::vector<std::thread> load;
    for (int t = 0; t < 4; ++t) {
        load.emplace_back([&] {
            std::vector<double> mine;
            try {
                RawClient c(proxy.port());
                while (!stop) {
                    auto start = Clock::now();
                    c.send(proxy_get(origin.port(), "/1k", "site.test"));
                    auto r = c.read_final_response(10s);
                    if (!r || r->status != 200 || r->body != content) {
                        ++failed;
                        std::lock_guard lock(mu);
                        if (first_failure.empty())
                            first_failure = r ? "status " + std::to_string(r->status) : "none";
                        break;
                    }
                    mine.push_back(
                        std::chrono::duration<double, std::milli>(Clock::now() - start).count());
                    ++ok;
                }
            } catch (const std::exception& e) {
                ++failed;
                std::lock_guard lock(mu);
                if (first_failure.empty()) first_failure = e.what();
            }
            std::lock_guard lock(mu);
            latency.ms.insert(latency.ms.end(), mine.begin(), mine.end());
        });
    }
    auto load_start = Clock::now();
    size_t echoed = 0;
    for (size_t i = 0; i < tunnels.size(); ++i) {
        const std::string ping = "ping " + std::to_string(i) + "\n";
        tunnels[i]->send(ping);
        if (tunnels[i]->read_n(ping.size(), 10s) == ping) ++echoed;
    }
    size_t reused = 0;
    for (auto& c : idle) {
        c->send(proxy_get(origin.port(), "/1k", "site.test"));
        auto r = c->read_final_response(10s);
        if (r && r->status == 200 && r->body == content) ++reused;
    }
    while (since(load_start) < 5s) std::this_thread::sleep_for(50ms);
    stop = true;
    for (auto& t : load) t.join();
    const Ms load_time = since(load_start);
    const long rss_loaded = proxy.rss_kib();
    const long hwm = status_kib(pid, "VmHWM");

    // Everything closes; hallpass lets go of the memory it can.
    tunnels.clear();
    idle.clear();
    CHECK(wait_until([&] { return open_fd_count(pid) < 100; }, 20s));
    std::this_thread::sleep_for(500ms);
    const long rss_end = proxy.rss_kib();

    // A second round of tunnels, opened and closed: memory freed by the first round is reused,
    // so RSS must not climb again by the same amount (a leak would).
    {
        std::vector<std::unique_ptr<RawClient>> again;
        for (int base = 0; base < kTunnels; base += kBatch) {
            for (int i = base; i < base + kBatch; ++i) {
                again.push_back(std::make_unique<RawClient>(proxy.port()));
                again.back()->send(connect_request(echo.port()));
            }
            for (int i = base; i < base + kBatch; ++i)
                REQUIRE(again[static_cast<size_t>(i)]->read_response(10s, true));
        }
        for (auto& t : again) t->send("x");
        for (auto& t : again) CHECK(t->read_n(1, 10s) == "x");
    }
    CHECK(wait_until([&] { return open_fd_count(pid) < 100; }, 20s));
    std::this_thread::sleep_for(500ms);
    const long rss_end2 = proxy.rss_kib();

    const double per_tunnel = static_cast<double>(rss_tunnels - rss_start) / kTunnels;
    const double per_keepalive = static_cast<double>(rss_all - rss_tunnels) / kKeepAlive;
    const double rps =
        static_cast<double>(ok.load()) / (static_cast<double>(load_time.count()) / 1000);
    MESSAGE("load: " << kTunnels << " tunnels opened in " << tunnels_open.count() << " ms; "
                     << fds_all << " descriptors in hallpass with all " << kTunnels + kKeepAlive
                     << " clients");
    MESSAGE("load: RSS KiB start "
            << rss_start << ", with tunnels " << rss_tunnels << ", with keep-alive too " << rss_all
            << ", after the load " << rss_loaded << " (peak " << hwm << "), after closing "
            << rss_end << ", after a second round of " << kTunnels << " tunnels " << rss_end2
            << " (peak " << status_kib(pid, "VmHWM") << ")");
    MESSAGE("load: " << per_tunnel << " KiB per idle tunnel, " << per_keepalive
                     << " KiB per idle keep-alive connection");
    MESSAGE("load: " << ok.load() << " requests in " << load_time.count() << " ms (" << rps
                     << "/s) on 4 connections, latency p50 " << latency.at(0.5) << " ms, p99 "
                     << latency.at(0.99) << " ms, max " << latency.at(1.0) << " ms; " << echoed
                     << " tunnel echoes, " << reused << " idle keep-alive connections reused");

    CHECK_MESSAGE(failed == 0, "first failure: " << first_failure);
    CHECK(ok > 100);
    CHECK(echoed == static_cast<size_t>(kTunnels));
    CHECK(reused == static_cast<size_t>(kKeepAlive));
    if (hallpass_is_sanitized()) {
        MESSAGE("an ASan build: its redzones and quarantine make RSS no measure; bounds skipped");
    } else {
        // Bounded: an idle tunnel costs a few KiB of user-space memory (buffers are allocated
        // when bytes move, then freed); 16 KiB each would already mean eager buffers or a leak.
        CHECK(per_tunnel < 16.0);
        CHECK(rss_loaded - rss_start < 5000 * 16);
        // What one round of tunnels left behind, the second must reuse: no steady growth.
        CHECK(rss_end2 - rss_end < kTunnels * 2);
    }
    CHECK(proxy.running());
    CHECK(probe(proxy.port(), origin.port(), "/1k") == 200);
}
