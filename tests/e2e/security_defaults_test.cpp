// The defences that hold before any rule is consulted: who may use the proxy at all
// (server.allowed_clients, private ranges by default), no loops back into hallpass's own
// listeners (including 0.0.0.0 listeners), destination ports (server.http_ports,
// server.connect_ports) and one client's share of connections (max_connections_per_client).
// Each case checks the exact answer, that nothing reached the origin or DNS, and that the proxy
// still serves an allowed client right after.
#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <ifaddrs.h>
#include <netinet/in.h>

#include "harness.h"

using namespace hallpass::e2e;

namespace {

using Strings = std::vector<std::string>;

std::string get(std::string_view authority, std::string_view path = "/") {
    return "GET http://" + std::string(authority) + std::string(path) +
           " HTTP/1.1\r\nHost: " + std::string(authority) + "\r\n\r\n";
}

std::string connect_request(std::string_view authority) {
    return "CONNECT " + std::string(authority) + " HTTP/1.1\r\nHost: " + std::string(authority) +
           "\r\n\r\n";
}

// Sends `request` from `source` ("" = any) to the proxy at host:port; the final response. The
// answer to a CONNECT is read as a head (a tunnel has no body to wait for), plus the body a
// refusal carries.
std::optional<HttpResponse> ask(uint16_t port, const std::string& request,
                                const std::string& host = "127.0.0.1",
                                const std::string& source = {}) {
    RawClient c(port, host, 5s, 0, source);
    c.send(request);
    bool is_connect = request.rfind("CONNECT ", 0) == 0;
    auto r = c.read_final_response(5s, is_connect);
    if (r && is_connect && r->status / 100 != 2 && r->has("content-length"))
        r->body = c.read_n(std::stoul(r->header("content-length")));
    return r;
}

// This machine's IPv4 addresses outside 127.0.0.0/8 (192.0.2.2 on the CI box), as text.
Strings non_loopback_ipv4() {
    Strings out;
    ifaddrs* list = nullptr;
    if (getifaddrs(&list) != 0) return out;
    for (ifaddrs* it = list; it; it = it->ifa_next) {
        if (!it->ifa_addr || it->ifa_addr->sa_family != AF_INET) continue;
        auto* sin = reinterpret_cast<sockaddr_in*>(it->ifa_addr);
        if ((ntohl(sin->sin_addr.s_addr) >> 24) == 127) continue;
        char buf[INET_ADDRSTRLEN] = "";
        inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof buf);
        out.push_back(buf);
    }
    freeifaddrs(list);
    return out;
}

// True when `ip` is in 10/8, 172.16/12, 192.168/16 or 169.254/16 (the default allowed ranges).
bool is_private_ipv4(const std::string& ip) {
    in_addr a{};
    if (inet_pton(AF_INET, ip.c_str(), &a) != 1) return true;
    uint32_t v = ntohl(a.s_addr);
    return (v >> 24) == 10 || (v >> 20) == (172u << 4 | 1) || (v >> 16) == (192u << 8 | 168) ||
           (v >> 16) == (169u << 8 | 254);
}

// The answer hallpass gives a request that would come back to itself.
void check_loop(uint16_t proxy_port, const std::string& request, const std::string& via) {
    CAPTURE(request);
    CAPTURE(via);
    auto r = ask(proxy_port, request, via);
    if (!r) {
        FAIL_CHECK("no response");
        return;
    }
    CHECK(r->status == 403);
    CHECK_MESSAGE(contains(r->body, "loop"), r->body);
}

// The answer to a plain HTTP request for hallpass's own address: hallpass answers it itself
// (the info page at /, 404 elsewhere), as when asked directly; it never goes out and back.
void check_self(uint16_t proxy_port, const std::string& authority, const std::string& via) {
    CAPTURE(authority);
    CAPTURE(via);
    auto r = ask(proxy_port, get(authority), via);
    if (!r) {
        FAIL_CHECK("no response");
        return;
    }
    CHECK(r->status == 200);
    CHECK_MESSAGE(contains(r->body, "filtering HTTP proxy"), r->body);
    auto other = ask(proxy_port, get(authority, "/elsewhere"), via);
    REQUIRE(other);
    CHECK(other->status == 404);
}

}  // namespace

TEST_CASE("security defaults: a client outside allowed_clients gets 403 before anything else") {
    TempDir dir;
    ScriptedOrigin origin;
    HallpassOptions o;
    o.threads = 1;  // one worker: its refusal log is rate-limited to one line a second
    o.server_yaml = "allowed_clients: [127.0.0.2, \"127.0.1.0/30\"]";
    o.listen = {"127.0.0.1:0", "[::1]:0"};
    Hallpass proxy(dir, o);
    const std::string op = std::to_string(origin.port());

    SUBCASE("the 403 comes at once, without reading a byte, and the connection closes") {
        for (const std::string& source : Strings{"127.0.0.1", "127.0.0.3", "127.0.1.4"}) {
            CAPTURE(source);
            RawClient c(proxy.port(), "127.0.0.1", 5s, 0, source);
            auto r = c.read_final_response(3s);
            REQUIRE_MESSAGE(r, "no response; received: " << c.buffer());
            CHECK(r->status == 403);
            CHECK(contains(r->body, "allowed_clients"));
            CHECK(c.wait_closed(3s));
        }
        RawClient v6(proxy.ports()[1], "::1");
        auto r = v6.read_final_response(3s);
        REQUIRE(r);
        CHECK(r->status == 403);
    }
    SUBCASE("a refused client's request reaches neither the origin nor DNS") {
        for (const std::string& target : Strings{"127.0.0.1:" + op, "nx.test:" + op}) {
            RawClient c(proxy.port(), "127.0.0.1", 5s, 0, "127.0.0.1");
            c.send_some(get(target), 1s);  // the proxy may close before taking it
            // Either the 403 arrives, or the unread request turned the close into a reset.
            auto r = c.read_final_response(3s);
            if (r) CHECK(r->status == 403);
            CHECK(c.wait_closed(3s));
        }
        RawClient tunnel(proxy.port(), "127.0.0.1", 5s, 0, "127.0.0.1");
        tunnel.send_some(connect_request("127.0.0.1:443"), 1s);
        CHECK(tunnel.wait_closed(3s));
        std::this_thread::sleep_for(100ms);
        CHECK(origin.connections() == 0);
        CHECK(proxy.dns().queries() == 0);
        CHECK(proxy.log_count(" accepted") == 0);  // never became a connection
    }
    SUBCASE("a flood of refusals is logged once a second, with a count") {
        auto start = Clock::now();
        for (int i = 0; i < 40; ++i) {
            RawClient c(proxy.port(), "127.0.0.1", 5s, 0, "127.0.0.1");
            c.wait_closed(2s);
        }
        auto seconds = std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - start);
        // One line per second at most: the first, and one per second boundary crossed.
        size_t lines = proxy.log_count("refused 127.0.0.1:");
        CHECK(lines >= 1);
        CHECK(lines <= static_cast<size_t>(seconds.count()) + 2);
        CHECK(contains(proxy.stderr_text(), "with 403: this proxy does not serve your address"));
        std::this_thread::sleep_for(1100ms);
        RawClient late(proxy.port(), "127.0.0.1", 5s, 0, "127.0.0.1");
        late.wait_closed(2s);
        CHECK(proxy.wait_for_log("(41 refusals so far)", 2s));
    }

    // Allowed addresses are served, before and after the refusals.
    for (const std::string& source : Strings{"127.0.0.2", "127.0.1.1", "127.0.1.3"}) {
        CAPTURE(source);
        auto r = ask(proxy.port(), get("127.0.0.1:" + op, "/fine"), "127.0.0.1", source);
        REQUIRE(r);
        CHECK(r->status == 200);
    }
    REQUIRE(origin.wait_for_requests(3));
    CHECK(contains(origin.requests()[0], "GET /fine HTTP/1.1"));
}

TEST_CASE("security defaults: by default only private, loopback and link-local clients") {
    // The default allowed_clients, tested with this machine's own addresses: a public one (the
    // CI box has 192.0.2.2, which is no private range) is refused; loopback is served.
    Strings publics;
    for (const auto& ip : non_loopback_ipv4())
        if (!is_private_ipv4(ip)) publics.push_back(ip);
    TempDir dir;
    ScriptedOrigin origin;
    HallpassOptions o;
    o.listen = {"0.0.0.0:0"};
    Hallpass proxy(dir, o);
    const std::string op = std::to_string(origin.port());

    auto loop = ask(proxy.port(), get("127.0.0.1:" + op), "127.0.0.1");
    REQUIRE(loop);
    CHECK(loop->status == 200);
    if (publics.empty()) {
        MESSAGE("no non-private IPv4 address on this machine: the refusal half is not exercised");
        return;
    }
    for (const std::string& ip : publics) {
        CAPTURE(ip);
        RawClient c(proxy.port(), ip, 5s, 0, ip);
        auto r = c.read_final_response(3s);
        REQUIRE(r);
        CHECK(r->status == 403);
        CHECK(c.wait_closed(3s));
        CHECK(proxy.wait_for_log("refused " + ip + ":", 2s));
    }
    std::this_thread::sleep_for(50ms);
    CHECK(origin.requests().size() == 1);
}

TEST_CASE("security defaults: requests to hallpass's own listener are answered, never looped") {
    TempDir dir;
    ScriptedOrigin origin;
    const uint16_t self = free_port();  // fixed, so connect_ports can name it before start
    const std::string sp = std::to_string(self);
    HallpassOptions o;
    o.listen = {"127.0.0.1:" + sp};
    o.extra_hosts = "127.0.0.1 self.test";
    o.server_yaml = "connect_ports: [443, " + sp + ", " + std::to_string(origin.port()) + "]";
    Hallpass proxy(dir, o);
    REQUIRE(proxy.port() == self);

    size_t clients = 0;
    for (const std::string& authority :
         Strings{"127.0.0.1:" + sp, "self.test:" + sp, "SELF.test.:" + sp, "localhost:" + sp,
                 "[::ffff:127.0.0.1]:" + sp, "127.0.0.1.:" + sp}) {
        check_self(self, authority, "127.0.0.1");
        check_loop(self, connect_request(authority), "127.0.0.1");
        clients += 3;
    }
    // Linux connects 0.0.0.0 to the local host: it is this listener too.
    check_self(self, "0.0.0.0:" + sp, "127.0.0.1");
    check_loop(self, connect_request("0.0.0.0:" + sp), "127.0.0.1");
    clients += 3;

    // Not loops: another loopback address on the same port refuses (nothing listens there),
    // and the same address on the origin's port is served.
    auto other_ip = ask(self, get("127.0.0.2:" + sp));
    REQUIRE(other_ip);
    CHECK(other_ip->status == 502);
    CHECK(contains(other_ip->body, "refused"));
    auto fine = ask(self, get("127.0.0.1:" + std::to_string(origin.port()), "/fine"));
    REQUIRE(fine);
    CHECK(fine->status == 200);
    clients += 2;

    // hallpass never connected to itself: every connection it accepted is one of ours.
    std::this_thread::sleep_for(100ms);
    CHECK(proxy.log_count(" accepted") == clients);
    CHECK(origin.requests().size() == 1);
}

TEST_CASE("security defaults: a 0.0.0.0 listener is a loop on every local address") {
    TempDir dir;
    ScriptedOrigin origin;
    const uint16_t self = free_port();
    const std::string sp = std::to_string(self);
    HallpassOptions o;
    o.listen = {"0.0.0.0:" + sp};
    o.extra_hosts = "127.0.0.9 self.test";
    o.server_yaml = "connect_ports: [" + sp + "]";
    Hallpass proxy(dir, o);
    REQUIRE(proxy.port() == self);

    Strings targets = {
        "127.0.0.1:" + sp,          "127.0.0.5:" + sp, "127.0.0.77:" + sp, "127.255.0.1:" + sp,
        "[::ffff:127.0.0.9]:" + sp, "self.test:" + sp, "localhost:" + sp,  "0.0.0.0:" + sp};
    for (const auto& ip : non_loopback_ipv4()) targets.push_back(ip + ":" + sp);
    size_t clients = 0;
    for (const std::string& authority : targets) {
        // Reached through 127.0.0.5, a loopback address other than the one in the target.
        check_self(self, authority, "127.0.0.5");
        check_loop(self, connect_request(authority), "127.0.0.5");
        clients += 3;
    }
    auto fine = ask(self, get("127.0.0.1:" + std::to_string(origin.port()), "/fine"), "127.0.0.5");
    REQUIRE(fine);
    CHECK(fine->status == 200);
    clients += 1;
    std::this_thread::sleep_for(100ms);
    CHECK(proxy.log_count(" accepted") == clients);
}

TEST_CASE("security defaults: http_ports and connect_ports are separate, checked before DNS") {
    TempDir dir;
    ScriptedOrigin web;     // plain HTTP allowed here
    ScriptedOrigin tunnel;  // CONNECT allowed here
    const std::string wp = std::to_string(web.port());
    const std::string tp = std::to_string(tunnel.port());
    HallpassOptions o;
    o.server_yaml = "http_ports: [" + wp + "]\nconnect_ports: [" + tp + "]";
    Hallpass proxy(dir, o);

    SUBCASE("plain HTTP to a port outside http_ports: 403, nothing resolved or connected") {
        for (const std::string& authority :
             Strings{"site.test:" + tp, "127.0.0.1:" + tp, "nx.test:" + tp, "nx.test",
                     "site.test:80", "site.test:0" + tp}) {
            CAPTURE(authority);
            auto r = ask(proxy.port(), get(authority));
            REQUIRE(r);
            CHECK(r->status == 403);
            CHECK(contains(r->body, "http_ports"));
        }
        std::this_thread::sleep_for(100ms);
        CHECK(tunnel.connections() == 0);
        CHECK(proxy.dns().queries() == 0);
    }
    SUBCASE("CONNECT to a port outside connect_ports: 403, nothing resolved or connected") {
        for (const std::string& authority :
             Strings{"site.test:" + wp, "nx.test:" + wp, "site.test:443", "nx.test:443",
                     "site.test:80", "site.test:22", "127.0.0.1:" + wp}) {
            CAPTURE(authority);
            auto r = ask(proxy.port(), connect_request(authority));
            REQUIRE(r);
            CHECK(r->status == 403);
            CHECK(contains(r->body, "connect_ports"));
        }
        std::this_thread::sleep_for(100ms);
        CHECK(web.connections() == 0);
        CHECK(proxy.dns().queries() == 0);
    }
    // Each kind goes through on its own port.
    auto plain = ask(proxy.port(), get("site.test:" + wp, "/plain"));
    REQUIRE(plain);
    CHECK(plain->status == 200);
    RawClient c(proxy.port());
    c.send(connect_request("site.test:" + tp));
    auto established = c.read_response(5s, true);
    REQUIRE(established);
    CHECK(established->status == 200);
    c.send("GET /inside HTTP/1.1\r\nHost: site.test\r\n\r\n");
    auto inside = c.read_final_response();
    REQUIRE(inside);
    CHECK(inside->status == 200);
    REQUIRE(tunnel.wait_for_requests(1));
    CHECK(contains(tunnel.requests()[0], "GET /inside "));
}

TEST_CASE("security defaults: max_connections_per_client caps one address, not the others") {
    TempDir dir;
    ScriptedOrigin origin;
    HallpassOptions o;
    o.server_yaml = "max_connections_per_client: 3";
    Hallpass proxy(dir, o);
    const std::string authority = "127.0.0.1:" + std::to_string(origin.port());

    // Three keep-alive connections from 127.0.0.1, each with an exchange behind it and then a
    // request the origin never answers (idle ones would make room instead: see
    // fair_share_test). The silent origin's count says hallpass has read them.
    ScriptedOrigin silent({ScriptedOrigin::Mode::Silent});
    const std::string wait = get("127.0.0.1:" + std::to_string(silent.port()), "/wait");
    std::vector<std::unique_ptr<RawClient>> held;
    for (int i = 0; i < 3; ++i) {
        held.push_back(std::make_unique<RawClient>(proxy.port()));
        held.back()->send(get(authority));
        auto r = held.back()->read_final_response();
        REQUIRE(r);
        CHECK(r->status == 200);
        held.back()->send(wait);
    }
    REQUIRE(silent.wait_for_requests(3));
    // The fourth, fifth, ... from the same address: 503 at once, closed.
    for (int i = 0; i < 5; ++i) {
        RawClient extra(proxy.port());
        auto r = extra.read_final_response(3s);
        REQUIRE_MESSAGE(r, "no 503; received: " << extra.buffer());
        CHECK(r->status == 503);
        CHECK(contains(r->body, "max_connections_per_client"));
        CHECK(extra.wait_closed(3s));
    }
    // Other addresses are not affected.
    for (const std::string& source : Strings{"127.0.0.2", "127.0.0.3"}) {
        auto r = ask(proxy.port(), get(authority, "/other"), "127.0.0.1", source);
        REQUIRE(r);
        CHECK(r->status == 200);
    }
    // The held connections are still open; once one closes, its slot is free again (the
    // refused ones took none).
    CHECK_FALSE(held[1]->wait_closed(300ms));
    held[0]->reset();
    CHECK(wait_until([&] { return probe(proxy.port(), origin.port(), "/") == 200; }, 3s));
}
