// What the upstream receives and what the client gets back, byte for byte: origin-form targets,
// Host from the URI, hop-by-hop fields removed both ways, Via added. The origin is scripted so
// the test sees the raw bytes hallpass sent.
#include <doctest/doctest.h>

#include <algorithm>
#include <cctype>

#include "harness.h"

using namespace hallpass::e2e;

namespace {

std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return s;
}

// Sends `request` through the proxy and returns what the origin received (one request).
struct Exchange {
    std::optional<HttpResponse> response;
    std::optional<HttpRequest> upstream;
    std::string upstream_raw;
};

Exchange exchange(const Hallpass& proxy, const ScriptedOrigin& origin, const std::string& request) {
    Exchange ex;
    RawClient c(proxy.port());
    c.send(request);
    ex.response = c.read_final_response();
    if (origin.wait_for_requests(1)) {
        ex.upstream_raw = origin.requests().back();
        ex.upstream = parse_request(ex.upstream_raw);
    }
    return ex;
}

}  // namespace

TEST_CASE("rewrite: hop-by-hop request fields are removed, Host comes from the URI, Via added") {
    TempDir dir;
    ScriptedOrigin origin;
    Hallpass proxy(dir);
    std::string authority = "127.0.0.1:" + std::to_string(origin.port());

    auto ex = exchange(proxy, origin,
                       "GET http://" + authority +
                           "/path/x.html?q=1&r=%20 HTTP/1.1\r\n"
                           "Host: wrong.example\r\n"
                           "Connection: keep-alive, X-Drop-Me\r\n"
                           "X-Drop-Me: 1\r\n"
                           "Proxy-Connection: keep-alive\r\n"
                           "Keep-Alive: timeout=5\r\n"
                           "Proxy-Authorization: Basic Zm9vOmJhcg==\r\n"
                           "TE: trailers\r\n"
                           "Trailer: X-T\r\n"
                           "Upgrade: websocket\r\n"
                           "X-Keep: yes\r\n"
                           "User-Agent: e2e/1\r\n"
                           "Accept: */*\r\n"
                           "\r\n");
    REQUIRE(ex.response);
    CHECK(ex.response->status == 200);
    REQUIRE_MESSAGE(ex.upstream, "origin received: " << ex.upstream_raw);
    const HttpRequest& up = *ex.upstream;
    INFO("origin received:\n" << ex.upstream_raw);

    CHECK(up.request_line == "GET /path/x.html?q=1&r=%20 HTTP/1.1");
    CHECK(up.values("host") == std::vector<std::string>{authority});
    CHECK_FALSE(contains(ex.upstream_raw, "wrong.example"));
    for (const char* hop : {"x-drop-me", "proxy-connection", "keep-alive", "proxy-authorization",
                            "te", "trailer", "upgrade"})
        CHECK_MESSAGE(!up.has(hop), hop << " was forwarded");
    for (const auto& v : up.values("connection")) CHECK_FALSE(contains(lower(v), "x-drop-me"));
    CHECK(up.values("x-keep") == std::vector<std::string>{"yes"});
    CHECK(up.values("user-agent") == std::vector<std::string>{"e2e/1"});
    CHECK(up.values("accept") == std::vector<std::string>{"*/*"});
    auto via = up.values("via");
    REQUIRE(via.size() == 1);
    CHECK(contains(via[0], "1.1 hallpass"));
}

TEST_CASE("rewrite: Host is taken from the URI's name and port") {
    TempDir dir;
    ScriptedOrigin origin;
    Hallpass proxy(dir);
    std::string authority = "a.test:" + std::to_string(origin.port());

    SUBCASE("name with a different Host header") {
        auto ex = exchange(proxy, origin,
                           "GET http://" + authority + "/ HTTP/1.1\r\nHost: b.test\r\n\r\n");
        REQUIRE(ex.upstream);
        CHECK(ex.upstream->values("host") == std::vector<std::string>{authority});
    }
    SUBCASE("upper-case name and no Host header (HTTP/1.0)") {
        auto ex = exchange(
            proxy, origin,
            "GET http://A.TEST:" + std::to_string(origin.port()) + "/Case HTTP/1.0\r\n\r\n");
        REQUIRE(ex.response);
        CHECK(ex.response->status == 200);
        REQUIRE(ex.upstream);
        CHECK(lower(ex.upstream->values("host").at(0)) == authority);
        CHECK(ex.upstream->request_line.substr(0, 10) == "GET /Case ");
    }
    SUBCASE("no path becomes /") {
        auto ex =
            exchange(proxy, origin,
                     "GET http://" + authority + " HTTP/1.1\r\nHost: " + authority + "\r\n\r\n");
        REQUIRE(ex.upstream);
        CHECK(ex.upstream->request_line == "GET / HTTP/1.1");
    }
}

TEST_CASE("rewrite: an existing Via is kept and hallpass is added") {
    TempDir dir;
    ScriptedOrigin origin;
    Hallpass proxy(dir);
    auto ex = exchange(proxy, origin,
                       proxy_get(origin.port(), "/", "127.0.0.1", "Via: 1.0 upstream-cache\r\n"));
    REQUIRE(ex.upstream);
    std::string all;
    for (const auto& v : ex.upstream->values("via")) all += v + ",";
    CHECK(contains(all, "1.0 upstream-cache"));
    CHECK(contains(all, "1.1 hallpass"));
}

TEST_CASE("rewrite: every method is forwarded in origin-form with its body") {
    TempDir dir;
    ScriptedOrigin origin;
    Hallpass proxy(dir);
    std::string authority = "127.0.0.1:" + std::to_string(origin.port());

    for (std::string method : {"POST", "PUT", "PATCH", "DELETE", "OPTIONS", "PROPFIND"}) {
        CAPTURE(method);
        std::string body = method + "-body";
        RawClient c(proxy.port());
        c.send(method + " http://" + authority + "/m HTTP/1.1\r\nHost: " + authority +
               "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body);
        auto r = c.read_final_response();
        REQUIRE(r);
        CHECK(r->status == 200);
        auto requests = origin.requests();
        REQUIRE(!requests.empty());
        auto up = parse_request(requests.back());
        REQUIRE(up);
        CHECK(up->request_line == method + " /m HTTP/1.1");
        CHECK(up->body == body);
    }
}

TEST_CASE("rewrite: a chunked request body arrives with the same payload") {
    TempDir dir;
    ScriptedOrigin origin;
    Hallpass proxy(dir);
    std::string authority = "127.0.0.1:" + std::to_string(origin.port());
    auto ex = exchange(proxy, origin,
                       "POST http://" + authority + "/c HTTP/1.1\r\nHost: " + authority +
                           "\r\nTransfer-Encoding: chunked\r\n\r\n"
                           "3\r\nabc\r\nA\r\n0123456789\r\n0\r\n\r\n");
    REQUIRE(ex.upstream);
    CHECK(ex.upstream->body == "abc0123456789");
    bool double_framed = ex.upstream->has("content-length") && ex.upstream->chunked;
    CHECK_FALSE(double_framed);
}

TEST_CASE("rewrite: hop-by-hop response fields are removed and Via added") {
    TempDir dir;
    ScriptedOrigin::Options o;
    o.reply =
        "HTTP/1.1 200 OK\r\n"
        "Connection: X-Secret\r\n"
        "X-Secret: 1\r\n"
        "Keep-Alive: timeout=5, max=100\r\n"
        "Trailer: X-T\r\n"
        "Upgrade: h2c\r\n"
        "X-Keep: kept\r\n"
        "Content-Length: 2\r\n\r\nok";
    ScriptedOrigin origin(o);
    Hallpass proxy(dir);

    RawClient c(proxy.port());
    c.send(proxy_get(origin.port(), "/"));
    auto r = c.read_final_response();
    REQUIRE(r);
    INFO("client received:\n" << r->head);
    CHECK(r->status == 200);
    CHECK(r->body == "ok");
    CHECK(r->header("x-keep") == "kept");
    CHECK_FALSE(r->has("x-secret"));
    CHECK_FALSE(r->has("keep-alive"));
    CHECK_FALSE(r->has("trailer"));
    CHECK_FALSE(r->has("upgrade"));
    CHECK(contains(r->header("via"), "hallpass"));
}
