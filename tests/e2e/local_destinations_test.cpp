// The proxy host's own services are not reachable through it: loopback, unspecified, link-local
// and the host's own addresses are refused with 403 ("local destination") in every spelling, for
// IP literals at once and for names after DNS (a name that resolves to 127.0.0.1: rebinding),
// for plain HTTP and CONNECT alike, and nothing connects there. server.allow_local_destinations
// lists exceptions by network or by ADDR:PORT. dest_nets rules also see resolved addresses, and
// plain HTTP by default goes to 80, 443, 8080 and 1025-65535 only.
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

std::optional<HttpResponse> ask(uint16_t port, const std::string& request) {
    RawClient c(port, "127.0.0.1", 5s);
    c.send(request);
    bool is_connect = request.rfind("CONNECT ", 0) == 0;
    auto r = c.read_final_response(5s, is_connect);
    if (r && is_connect && r->status / 100 != 2 && r->has("content-length"))
        r->body = c.read_n(std::stoul(r->header("content-length")));
    return r;
}

// This machine's IPv4 addresses outside 127.0.0.0/8 (interface addresses: local too).
Strings own_ipv4() {
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

void check_refused(uint16_t proxy_port, const std::string& request) {
    CAPTURE(request);
    auto r = ask(proxy_port, request);
    if (!r) {
        FAIL_CHECK("no response");
        return;
    }
    CHECK(r->status == 403);
    CHECK_MESSAGE(contains(r->body, "local destination"), r->body);
}

}  // namespace

TEST_CASE("local destinations: every spelling of this host is refused, literal or resolved") {
    TempDir dir;
    ScriptedOrigin service;  // a raw service on 127.0.0.1 that must stay out of reach
    const std::string p = std::to_string(service.port());
    HallpassOptions o;
    o.allow_local.clear();  // the product's default: no exceptions
    o.server_yaml = "connect_ports: [" + p + "]";
    o.extra_hosts = "127.0.0.9 rebind.test\n::1 six.test\n";
    Hallpass proxy(dir, o);

    Strings authorities = {"127.0.0.1:" + p,    "localhost:" + p,   "[::1]:" + p,
                           "0.0.0.0:" + p,      "[::]:" + p,        "[::ffff:127.0.0.1]:" + p,
                           "site.test:" + p,    "rebind.test:" + p, "six.test:" + p,
                           "169.254.10.1:" + p, "[fe80::1]:" + p};
    for (const auto& ip : own_ipv4()) authorities.push_back(ip + ":" + p);
    for (const auto& a : authorities) {
        check_refused(proxy.port(), get(a));
        check_refused(proxy.port(), connect_request(a));
    }
    // Numeric shorthands for 127.0.0.1 are no valid host at all (400): refused before anything.
    for (const std::string& a : Strings{"2130706433:" + p, "0x7f.1:" + p, "127.1:" + p}) {
        CAPTURE(a);
        auto r = ask(proxy.port(), get(a));
        REQUIRE(r);
        CHECK(r->status / 100 == 4);
    }
    std::this_thread::sleep_for(200ms);
    CHECK(service.connections() == 0);
    // The diagnostic log names the reason.
    CHECK(proxy.log_count("local destination") >= authorities.size() * 2);
}

TEST_CASE("local destinations: allow_local_destinations opens exactly what it lists") {
    TempDir dir;
    ScriptedOrigin allowed;
    ScriptedOrigin other;
    const std::string ap = std::to_string(allowed.port());
    const std::string op = std::to_string(other.port());
    HallpassOptions o;
    o.allow_local = "[\"127.0.0.1:" + ap + "\", \"127.0.0.9/32\"]";
    o.server_yaml = "connect_ports: [" + ap + ", " + op + "]";
    Hallpass proxy(dir, o);

    SUBCASE("ADDR:PORT: that port only, literal and by name") {
        auto r = ask(proxy.port(), get("127.0.0.1:" + ap));
        REQUIRE(r);
        CHECK(r->status == 200);
        auto named = ask(proxy.port(), get("site.test:" + ap));
        REQUIRE(named);
        CHECK(named->status == 200);
        CHECK(allowed.wait_for_requests(2));
        check_refused(proxy.port(), get("127.0.0.1:" + op));
        check_refused(proxy.port(), get("site.test:" + op));
        check_refused(proxy.port(), connect_request("127.0.0.1:" + op));
        check_refused(proxy.port(), get("127.0.0.2:" + ap));  // another loopback address
        std::this_thread::sleep_for(100ms);
        CHECK(other.connections() == 0);
    }
    SUBCASE("a CIDR: every port of those addresses") {
        // Nothing listens on 127.0.0.9: not refused as local, so the connect itself fails.
        auto r = ask(proxy.port(), get("127.0.0.9:" + op));
        REQUIRE(r);
        CHECK(r->status == 502);
        CHECK_FALSE(contains(r->body, "local destination"));
    }
}

TEST_CASE("local destinations: a rebinding answer that mixes in 127.0.0.1 is refused") {
    TempDir dir;
    ScriptedOrigin service;
    const std::string p = std::to_string(service.port());
    HallpassOptions o;
    o.allow_local.clear();
    // The first address is not local; the second is (connect_next would try it after the first).
    o.extra_hosts = "192.0.2.77 mixed.test\n127.0.0.1 mixed.test\n";
    Hallpass proxy(dir, o);
    check_refused(proxy.port(), get("mixed.test:" + p));
    std::this_thread::sleep_for(100ms);
    CHECK(service.connections() == 0);
}

TEST_CASE("local destinations: dest_nets rules also apply to resolved addresses") {
    TempDir dir;
    ScriptedOrigin origin;
    const std::string p = std::to_string(origin.port());
    HallpassOptions o;
    o.rules_yaml = R"(rules:
  - name: school-ok
    action: allow
    domains: [a.test]
  - name: no-lan
    action: block
    dest_nets: [127.0.0.1/32]
)";
    Hallpass proxy(dir, o);
    // site.test resolves into the blocked network: blocked by the rule, after DNS, before any
    // connection.
    auto blocked = ask(proxy.port(), get("site.test:" + p));
    REQUIRE(blocked);
    CHECK(blocked->status == 403);
    CHECK(blocked->header("x-hallpass-rule") == "no-lan");
    // An earlier rule decided by name still wins (first match in file order).
    auto allowed = ask(proxy.port(), get("a.test:" + p));
    REQUIRE(allowed);
    CHECK(allowed->status == 200);
    CHECK(origin.wait_for_requests(1));
    std::this_thread::sleep_for(100ms);
    CHECK(origin.requests().size() == 1);
    CHECK(contains(origin.requests()[0], "Host: a.test"));
}

TEST_CASE("local destinations: plain HTTP by default only to 80, 443, 8080 and 1025-65535") {
    TempDir dir;
    Hallpass proxy(dir);  // default http_ports
    for (const char* port : {"21", "22", "25", "110", "143", "587", "1024"}) {
        CAPTURE(port);
        auto r = ask(proxy.port(), get(std::string("nx.test:") + port));
        REQUIRE(r);
        CHECK(r->status == 403);
        CHECK(contains(r->body, "http_ports"));
    }
    CHECK(proxy.dns().queries() == 0);
    // Allowed ports get as far as DNS (nx.test: no such host -> 502).
    for (const char* port : {"80", "8080", "3000"}) {
        CAPTURE(port);
        auto r = ask(proxy.port(), get(std::string("nx.test:") + port));
        REQUIRE(r);
        CHECK(r->status == 502);
    }
}
