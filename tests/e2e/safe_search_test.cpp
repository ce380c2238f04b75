// Safe search without decrypting: the hosts file gives the search names and the providers'
// enforcement names different loopback addresses, each with a small server that says where a
// connection landed and echoes what it got. A kid's CONNECT to www.google.com lands on
// forcesafesearch.google.com's address with its bytes (a ClientHello naming www.google.com)
// unchanged; a grown-up's lands on www.google.com's own; YouTube strict and moderate per entry;
// plain HTTP goes the same way with its Host header intact; a blocked search host stays blocked;
// the access log and the statistics record each rewrite.
#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

using namespace hallpass::e2e;

namespace {

// Listens on several loopback addresses at one port; each connection gets "landed ADDR\n" and
// the bytes it sent (read until the client pauses), or for an HTTP GET a response whose body
// says where it landed and with which Host.
class LandingServers {
  public:
    explicit LandingServers(const std::vector<std::string>& addresses) {
        for (int attempt = 0; attempt < 20 && fds_.empty(); ++attempt) {
            if (!try_bind(addresses)) close_all();
        }
        REQUIRE_FALSE(fds_.empty());
        if (::pipe(stop_) != 0) throw std::runtime_error("pipe");
        thread_ = std::thread([this] { serve(); });
    }
    ~LandingServers() {
        (void)!::write(stop_[1], "x", 1);
        thread_.join();
        close_all();
        ::close(stop_[0]);
        ::close(stop_[1]);
    }
    uint16_t port() const { return port_; }

  private:
    bool try_bind(const std::vector<std::string>& addresses) {
        port_ = 0;
        for (const std::string& a : addresses) {
            int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
            int one = 1;
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
            sockaddr_in sa{};
            sa.sin_family = AF_INET;
            sa.sin_port = htons(port_);
            inet_pton(AF_INET, a.c_str(), &sa.sin_addr);
            if (::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 ||
                ::listen(fd, 16) != 0) {
                ::close(fd);
                return false;
            }
            socklen_t len = sizeof sa;
            getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
            port_ = ntohs(sa.sin_port);
            fds_.push_back(fd);
            names_.push_back(a);
        }
        return true;
    }
    void close_all() {
        for (int fd : fds_) ::close(fd);
        fds_.clear();
        names_.clear();
    }
    void serve() {
        for (;;) {
            std::vector<pollfd> p;
            for (int fd : fds_) p.push_back({fd, POLLIN, 0});
            p.push_back({stop_[0], POLLIN, 0});
            if (::poll(p.data(), p.size(), 10'000) <= 0) continue;
            if (p.back().revents) return;
            for (size_t i = 0; i < fds_.size(); ++i) {
                if (!p[i].revents) continue;
                int c = ::accept(fds_[i], nullptr, nullptr);
                if (c >= 0) answer(c, names_[i]);
            }
        }
    }
    static void answer(int c, const std::string& where) {
        std::string got;
        char buf[4096];
        for (;;) {
            pollfd p{c, POLLIN, 0};
            if (::poll(&p, 1, got.empty() ? 10'000 : 200) <= 0) break;
            ssize_t n = ::recv(c, buf, sizeof buf, 0);
            if (n <= 0) break;
            got.append(buf, static_cast<size_t>(n));
            if (got.starts_with("GET ") && contains(got, "\r\n\r\n")) break;
        }
        std::string reply;
        if (got.starts_with("GET ")) {
            size_t h = got.find("\r\nHost: ");
            std::string host =
                h == std::string::npos ? "-" : got.substr(h + 8, got.find("\r\n", h + 8) - h - 8);
            const std::string body = "landed " + where + " host " + host;
            reply = "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body.size()) +
                    "\r\nConnection: close\r\n\r\n" + body;
        } else {
            reply = "landed " + where + "\n" + got;
        }
        (void)!::send(c, reply.data(), reply.size(), MSG_NOSIGNAL);
        ::close(c);
    }

    std::vector<int> fds_;
    std::vector<std::string> names_;
    uint16_t port_ = 0;
    int stop_[2] = {-1, -1};
    std::thread thread_;
};

// What a TLS client would send first: a handshake record naming `sni` (enough of a ClientHello
// for the servers here, which only echo it).
std::string client_hello(const std::string& sni) {
    std::string ext = std::string("\x00\x00", 2);
    const uint16_t name_len = static_cast<uint16_t>(sni.size());
    auto be16 = [](uint16_t v) {
        return std::string{static_cast<char>(v >> 8), static_cast<char>(v)};
    };
    ext += be16(static_cast<uint16_t>(name_len + 5)) + be16(static_cast<uint16_t>(name_len + 3)) +
           std::string(1, '\0') + be16(name_len) + sni;
    std::string hello = "\x03\x03" + std::string(32, 'r') + std::string(1, '\0') + be16(2) +
                        std::string("\x13\x01", 2) + std::string("\x01\x00", 2) +
                        be16(static_cast<uint16_t>(ext.size())) + ext;
    std::string handshake = std::string(1, '\x01') + std::string(1, '\0') +
                            be16(static_cast<uint16_t>(hello.size())) + hello;
    return std::string("\x16\x03\x01", 3) + be16(static_cast<uint16_t>(handshake.size())) +
           handshake;
}

const char* kRules = R"(groups:
  kids: [127.0.0.1]
rules:
  - name: no-bing-for-kids
    action: block
    clients: kids
    domains: [bing.com]
safe_search:
  - { clients: kids, google: on, youtube: strict, bing: on, duckduckgo: on }
  - { youtube: moderate }
)";

struct Setup {
    TempDir dir;
    LandingServers servers{{"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5", "127.0.0.6"}};
    std::unique_ptr<Hallpass> proxy;
    Setup() {
        HallpassOptions o;
        o.rules_yaml = kRules;
        o.hosts = {"localhost"};
        o.extra_hosts =
            "127.0.0.2 www.google.com www.google.de www.youtube.com www.bing.com\n"
            "127.0.0.3 forcesafesearch.google.com\n"
            "127.0.0.4 restrict.youtube.com\n"
            "127.0.0.5 restrictmoderate.youtube.com\n"
            "127.0.0.6 strict.bing.com\n";
        o.server_yaml = "connect_ports: [" + std::to_string(servers.port()) +
                        "]\naccess_log: { path: " + (dir / "access.log").string() +
                        ", format: json }";
        o.admin = "127.0.0.1:0";
        proxy = std::make_unique<Hallpass>(dir, o);
    }
    // A CONNECT to host:port from `source`, then a ClientHello naming `host`: what came back.
    std::string tunnel(const std::string& host, const std::string& source = "127.0.0.1") {
        RawClient c(proxy->port(), "127.0.0.1", 5s, 0, source);
        const std::string a = host + ":" + std::to_string(servers.port());
        c.send("CONNECT " + a + " HTTP/1.1\r\nHost: " + a + "\r\n\r\n");
        auto established = c.read_response(5s, true);
        REQUIRE(established);
        if (established->status != 200) return "status " + std::to_string(established->status);
        const std::string hello = client_hello(host);
        c.send(hello);
        std::string back = c.read_until_close();
        const size_t nl = back.find('\n');
        REQUIRE(nl != std::string::npos);
        CHECK(back.substr(nl + 1) == hello);  // the bytes, SNI included, arrived unchanged
        return back.substr(0, nl);
    }
};

}  // namespace

TEST_CASE("safe_search: tunnels land on the enforcement addresses for the clients it names") {
    Setup s;
    CHECK(s.tunnel("www.google.com") == "landed 127.0.0.3");
    CHECK(s.tunnel("www.google.de") == "landed 127.0.0.3");    // a country domain
    CHECK(s.tunnel("www.youtube.com") == "landed 127.0.0.4");  // strict for kids
    // Someone else: Google untouched, YouTube moderate (the second entry).
    CHECK(s.tunnel("www.google.com", "127.0.0.9") == "landed 127.0.0.2");
    CHECK(s.tunnel("www.youtube.com", "127.0.0.9") == "landed 127.0.0.5");
    CHECK(s.tunnel("www.bing.com", "127.0.0.9") == "landed 127.0.0.2");
    // A blocked search host stays blocked: safe search applies to what the rules allow.
    CHECK(s.tunnel("www.bing.com") == "status 403");
}

TEST_CASE("safe_search: plain HTTP goes to the same addresses with its Host header") {
    Setup s;
    const std::string port = std::to_string(s.servers.port());
    auto r = curl(s.proxy->port(), {"http://www.google.com:" + port + "/search?q=x"});
    CHECK(r.out == "landed 127.0.0.3 host www.google.com:" + port);
    r = curl(s.proxy->port(), {"--interface", "127.0.0.9", "http://www.google.com:" + port + "/"});
    CHECK(r.out == "landed 127.0.0.2 host www.google.com:" + port);
    // A second request for the same host from the grown-up is not served by a pooled
    // connection to the kid's enforcement address (and the reverse).
    r = curl(s.proxy->port(), {"http://www.google.com:" + port + "/"});
    CHECK(r.out == "landed 127.0.0.3 host www.google.com:" + port);
}

TEST_CASE("safe_search: the access log and the statistics record the rewrite") {
    Setup s;
    CHECK(s.tunnel("www.google.com") == "landed 127.0.0.3");
    CHECK(s.tunnel("www.youtube.com") == "landed 127.0.0.4");
    CHECK(s.tunnel("www.google.com", "127.0.0.9") == "landed 127.0.0.2");
    REQUIRE(wait_until(
        [&] { return lines_with(read_file(s.dir / "access.log"), "CONNECT").size() >= 3; }, 5s));
    const std::string log = read_file(s.dir / "access.log");
    auto google = lines_with(log, "\"host\":\"www.google.com\"");
    REQUIRE(google.size() == 2);
    CHECK(contains(google[0], "\"safe_search\":\"forcesafesearch.google.com\""));
    CHECK(contains(google[0], "\"upstream\":\"127.0.0.3:"));
    CHECK(contains(google[1], "\"safe_search\":null"));
    auto stats_ok = [&] {
        auto r = run({"curl", "-sS",
                      "http://127.0.0.1:" + std::to_string(s.proxy->admin_port()) + "/metrics"});
        return contains(r.out,
                        "hallpass_safe_search_total{target=\"forcesafesearch.google.com\"} 1") &&
               contains(r.out, "hallpass_safe_search_total{target=\"restrict.youtube.com\"} 1");
    };
    CHECK(wait_until(stats_ok, 5s));
    auto json = run({"curl", "-sS",
                     "http://127.0.0.1:" + std::to_string(s.proxy->admin_port()) + "/stats.json"});
    CHECK(contains(json.out, "\"safe_search\":[{\"name\":"));
}

// The sentence a parent writes: "kids: no social media on school nights after 21:00, safe search
// always, YouTube restricted, and 30 more minutes of YouTube tonight", as one rules.yaml and one
// grant command, every part checked on the running proxy.
TEST_CASE("safe_search: the family evening, end to end") {
    TempDir dir;
    LandingServers servers{{"127.0.0.2", "127.0.0.3", "127.0.0.4"}};
    FakeClock clock(dir, "2026-12-07 20:50:00");  // a Monday
    HallpassOptions o;
    o.rules_yaml = R"(groups:
  kids: [127.0.0.1]
schedules:
  school-nights:
    windows:
      - { days: [sun, mon, tue, wed, thu], from: "21:00", to: "07:00" }
    time_zone: UTC
rules:
  - name: no-social-on-school-nights
    action: block
    clients: kids
    when: school-nights
    domains: [tiktok.com, instagram.com, youtube.com]
    message: "No social media on school nights."
safe_search:
  - { clients: kids, google: on, youtube: strict }
)";
    o.hosts = {"localhost"};
    o.extra_hosts =
        "127.0.0.2 www.google.com www.youtube.com www.tiktok.com\n"
        "127.0.0.3 forcesafesearch.google.com\n"
        "127.0.0.4 restrict.youtube.com\n";
    o.command_prefix = clock.prefix();
    o.control_socket = (dir / "control.sock").string();
    o.server_yaml = "connect_ports: [" + std::to_string(servers.port()) +
                    "]\nstate_dir: " + (dir / "state").string();
    Hallpass proxy(dir, o);
    auto landed = [&](const std::string& host) -> std::string {
        RawClient c(proxy.port());
        const std::string a = host + ":" + std::to_string(servers.port());
        c.send("CONNECT " + a + " HTTP/1.1\r\nHost: " + a + "\r\n\r\n");
        auto r = c.read_response(5s, true);
        if (!r || r->status != 200) return "status " + std::to_string(r ? r->status : 0);
        c.send(client_hello(host));
        std::string back = c.read_until_close();
        return back.substr(0, back.find('\n'));
    };
    // Before 21:00: social media open, YouTube restricted, Google safe.
    CHECK(landed("www.tiktok.com") == "landed 127.0.0.2");
    CHECK(landed("www.youtube.com") == "landed 127.0.0.4");
    CHECK(landed("www.google.com") == "landed 127.0.0.3");
    clock.set("2026-12-07 21:05:00");
    CHECK(landed("www.tiktok.com") == "status 403");
    CHECK(landed("www.youtube.com") == "status 403");
    CHECK(landed("www.google.com") == "landed 127.0.0.3");  // safe search always

    // "30 more minutes of YouTube tonight."
    std::vector<std::string> argv = clock.prefix();
    argv.insert(argv.end(), {hallpass_bin(), "grant", "--clients", "kids", "--domains",
                             "youtube.com", "--for", "30m", "-c", proxy.config_path().string()});
    auto g = run(argv);
    INFO(g.out, g.err);
    REQUIRE(g.exit_code == 0);
    CHECK(contains(g.out, "until 21:35"));
    CHECK(landed("www.youtube.com") == "landed 127.0.0.4");  // allowed, and still restricted
    CHECK(landed("www.tiktok.com") == "status 403");
    RawClient watching(proxy.port());
    const std::string a = "www.youtube.com:" + std::to_string(servers.port());
    watching.send("CONNECT " + a + " HTTP/1.1\r\nHost: " + a + "\r\n\r\n");
    auto established = watching.read_response(5s, true);
    REQUIRE(established);
    REQUIRE(established->status == 200);
    clock.set("2026-12-07 21:36:00");
    CHECK(landed("www.youtube.com") == "status 403");
    CHECK(watching.wait_closed(3s));  // the landing server waits; the proxy closed it
    CHECK(proxy.wait_for_log(
        "closing tunnel to www.youtube.com: now blocked by rule \"no-social-on-school-nights\""));
}
