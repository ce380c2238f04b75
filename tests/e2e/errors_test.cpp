// Requests hallpass answers itself: malformed heads (400), methods and schemes it does not proxy
// (405, 501), versions (505), size limits (414, 431), the connection limit (503), the info page
// for origin-form requests, and configuration errors at start-up. After each hostile request
// the proxy must still serve a normal one.
#include <doctest/doctest.h>

#include "harness.h"

using namespace hallpass::e2e;

namespace {

// Sends `request` on a fresh connection; returns the final response (nullopt: none in 5 s).
std::optional<HttpResponse> ask(uint16_t proxy_port, const std::string& request,
                                bool head_request = false) {
    RawClient c(proxy_port);
    c.send_some(request, 5s);  // the proxy may stop reading early; it still answers
    return c.read_final_response(5s, head_request);
}

}  // namespace

TEST_CASE("errors: malformed requests get 400 and the connection closes") {
    TempDir dir;
    Nginx origin(dir);
    origin.put("1k", "ok");
    Hallpass proxy(dir);
    std::string authority = "127.0.0.1:" + std::to_string(origin.port());
    struct Case {
        const char* name;
        std::string request;
    };
    const Case cases[] = {
        {"garbage", "this is not http\r\n\r\n"},
        {"no version", "GET http://" + authority + "/1k\r\nHost: x\r\n\r\n"},
        {"header line without a colon",
         "GET http://" + authority + "/1k HTTP/1.1\r\nHost: x\r\nNoColonHere\r\n\r\n"},
        {"whitespace between field name and colon (RFC 9112 §5.1)",
         "GET http://" + authority + "/1k HTTP/1.1\r\nHost : x\r\n\r\n"},
        {"control character in the target", "GET http://" + authority + "/a\x01 HTTP/1.1\r\n\r\n"},
        {"bad port in the URI", "GET http://127.0.0.1:99999/ HTTP/1.1\r\nHost: x\r\n\r\n"},
        {"empty host in the URI", "GET http:///path HTTP/1.1\r\nHost: x\r\n\r\n"},
        {"CONNECT without a port", "CONNECT site.test HTTP/1.1\r\nHost: site.test\r\n\r\n"},
        {"HTTP/1.1 without Host (RFC 9112 §3.2)",
         "GET http://" + authority + "/1k HTTP/1.1\r\n\r\n"},
        {"two Host fields (RFC 9112 §3.2)",
         "GET http://" + authority + "/1k HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"},
    };
    for (const Case& c : cases) {
        SUBCASE(c.name) {
            RawClient client(proxy.port());
            client.send(c.request);
            auto r = client.read_final_response();
            REQUIRE_MESSAGE(r, "no response; received: " << client.buffer());
            CHECK(r->status == 400);
            CHECK(contains(r->header("content-type"), "text/html"));
            CHECK(client.wait_closed(3s));
            CHECK(probe(proxy.port(), origin.port()) == 200);
        }
    }
}

TEST_CASE("errors: methods and schemes hallpass does not proxy") {
    TempDir dir;
    Nginx origin(dir);
    origin.put("1k", "ok");
    Hallpass proxy(dir);
    std::string port = std::to_string(origin.port());

    SUBCASE("405 for a POST straight to the proxy") {
        auto r = ask(proxy.port(),
                     "POST /submit HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\n\r\nhi");
        REQUIRE(r);
        CHECK(r->status == 405);
    }
    SUBCASE("405 for a DELETE straight to the proxy") {
        auto r = ask(proxy.port(), "DELETE /x HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        REQUIRE(r);
        CHECK(r->status == 405);
    }
    SUBCASE("501 for ftp://") {
        auto r =
            ask(proxy.port(), "GET ftp://127.0.0.1:" + port + "/1k HTTP/1.1\r\nHost: x\r\n\r\n");
        REQUIRE(r);
        CHECK(r->status == 501);
    }
    SUBCASE("501 for file://") {
        auto r = ask(proxy.port(), "GET file:///etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n");
        REQUIRE(r);
        CHECK(r->status == 501);
        CHECK_FALSE(contains(r->body, "root:"));
    }
    SUBCASE("501 for https:// without CONNECT") {
        auto r = ask(proxy.port(),
                     "GET https://site.test:" + port + "/1k HTTP/1.1\r\nHost: site.test\r\n\r\n");
        REQUIRE(r);
        CHECK(r->status == 501);
    }
    SUBCASE("505 for HTTP/2.0") {
        auto r =
            ask(proxy.port(), "GET http://127.0.0.1:" + port + "/1k HTTP/2.0\r\nHost: x\r\n\r\n");
        REQUIRE(r);
        CHECK(r->status == 505);
    }
    SUBCASE("505 for HTTP/3.0") {
        auto r =
            ask(proxy.port(), "GET http://127.0.0.1:" + port + "/1k HTTP/3.0\r\nHost: x\r\n\r\n");
        REQUIRE(r);
        CHECK(r->status == 505);
    }
    std::this_thread::sleep_for(50ms);
    CHECK(origin.accesses().empty());
    CHECK(probe(proxy.port(), origin.port()) == 200);
}

TEST_CASE("errors: requests for hallpass itself get the info page, others 400") {
    TempDir dir;
    Hallpass proxy(dir);

    auto get = ask(proxy.port(), "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    REQUIRE(get);
    CHECK(get->status == 200);
    CHECK(contains(get->header("content-type"), "text/html"));
    CHECK(contains(get->body, "hallpass"));

    auto head = ask(proxy.port(), "HEAD / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", true);
    REQUIRE(head);
    CHECK(head->status == 200);

    const std::string self = "127.0.0.1:" + std::to_string(proxy.port());
    auto curl_get = curl(0, {"-w", "%{http_code}", "http://" + self + "/"});
    CHECK(curl_get.exit_code == 0);
    CHECK(contains(curl_get.out, "hallpass"));
    CHECK(curl_get.out.substr(curl_get.out.size() - 3) == "200");
    // It quotes the address it was reached on.
    CHECK_MESSAGE(contains(curl_get.out, "curl -x http://" + self + " http://example.com/"),
                  curl_get.out);
    CHECK_FALSE(contains(curl_get.out, "HOST"));

    // Only / is served; other paths are 404.
    auto other = ask(proxy.port(), "GET /favicon.ico HTTP/1.1\r\nHost: " + self + "\r\n\r\n");
    REQUIRE(other);
    CHECK(other->status == 404);

    // A request for some other server, sent to the proxy as if it were that server: 400.
    auto elsewhere = ask(proxy.port(), "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n");
    REQUIRE(elsewhere);
    CHECK(elsewhere->status == 400);
    CHECK(contains(elsewhere->body, "hallpass is a proxy"));
    auto wrong_port = ask(proxy.port(), "GET / HTTP/1.1\r\nHost: 127.0.0.1:1\r\n\r\n");
    REQUIRE(wrong_port);
    CHECK(wrong_port->status == 400);

    // A browser set to use the proxy, asked for the proxy's own address: answered the same.
    auto via_proxy = curl(proxy.port(), {"-w", "%{http_code}", "http://" + self + "/"});
    CHECK(via_proxy.exit_code == 0);
    CHECK(contains(via_proxy.out, "filtering HTTP proxy"));
    CHECK(via_proxy.out.substr(via_proxy.out.size() - 3) == "200");
    auto via_proxy_other = curl(proxy.port(), {"-w", "%{http_code}", "http://" + self + "/x"});
    CHECK(via_proxy_other.out.substr(via_proxy_other.out.size() - 3) == "404");
}

TEST_CASE("errors: size limits give 414 and 431") {
    TempDir dir;
    Nginx origin(dir);
    origin.put("1k", "ok");
    HallpassOptions opts;
    opts.server_yaml = "max_request_line: 1024\nmax_header_bytes: 4096\nmax_headers: 10";
    Hallpass proxy(dir, opts);
    std::string authority = "127.0.0.1:" + std::to_string(origin.port());

    SUBCASE("414 for a request line over max_request_line") {
        auto r = ask(proxy.port(), "GET http://" + authority + "/" + std::string(2000, 'a') +
                                       " HTTP/1.1\r\nHost: x\r\n\r\n");
        REQUIRE(r);
        CHECK(r->status == 414);
    }
    SUBCASE("414 also when the over-long line has not ended yet") {
        auto r = ask(proxy.port(), "GET http://" + authority + "/" + std::string(3000, 'a'));
        REQUIRE(r);
        CHECK(r->status == 414);
    }
    SUBCASE("431 for a head over max_header_bytes") {
        std::string fields;
        for (int i = 0; i < 4; ++i)
            fields += "X-Big-" + std::to_string(i) + ": " + std::string(2000, 'b') + "\r\n";
        auto r = ask(proxy.port(),
                     "GET http://" + authority + "/1k HTTP/1.1\r\nHost: x\r\n" + fields + "\r\n");
        REQUIRE(r);
        CHECK(r->status == 431);
    }
    SUBCASE("431 for more fields than max_headers") {
        std::string fields;
        for (int i = 0; i < 20; ++i) fields += "X-F" + std::to_string(i) + ": v\r\n";
        auto r = ask(proxy.port(),
                     "GET http://" + authority + "/1k HTTP/1.1\r\nHost: x\r\n" + fields + "\r\n");
        REQUIRE(r);
        CHECK(r->status == 431);
    }
    SUBCASE("limits are not hit by a request just under them") {
        std::string fields;
        for (int i = 0; i < 8; ++i) fields += "X-F" + std::to_string(i) + ": v\r\n";
        auto r = ask(proxy.port(), "GET http://" + authority + "/1k?" + std::string(900, 'q') +
                                       " HTTP/1.1\r\nHost: x\r\n" + fields + "\r\n");
        REQUIRE(r);
        CHECK(r->status == 200);
    }
    std::this_thread::sleep_for(50ms);
    for (const auto& a : origin.accesses()) CHECK(contains(a.request, std::string(900, 'q')));
    CHECK(probe(proxy.port(), origin.port()) == 200);
}

TEST_CASE("errors: over max_connections a client gets 503 and the listener keeps working") {
    TempDir dir;
    Nginx origin(dir);
    origin.put("1k", "ok");
    HallpassOptions opts;
    opts.server_yaml = "max_connections: 2";
    Hallpass proxy(dir, opts);

    ScriptedOrigin silent({ScriptedOrigin::Mode::Silent});
    auto first = std::make_unique<RawClient>(proxy.port());
    RawClient second(proxy.port());
    // Both are accepted and counted: each completes an exchange, stays open (keep-alive) and
    // then waits for an answer that does not come (an idle one would be closed to make room for
    // the third). The origin's count of requests says hallpass has read them.
    for (RawClient* c : {first.get(), &second}) {
        c->send(proxy_get(origin.port(), "/1k"));
        auto r = c->read_final_response();
        REQUIRE(r);
        CHECK(r->status == 200);
        c->send(proxy_get(silent.port(), "/wait"));
    }
    REQUIRE(silent.wait_for_requests(2));

    RawClient third(proxy.port());
    third.send_some(proxy_get(origin.port(), "/1k"), 1s);
    auto refused = third.read_final_response();
    REQUIRE_MESSAGE(refused, "no 503; received: " << third.buffer());
    CHECK(refused->status == 503);
    CHECK(third.wait_closed(3s));
    // The two admitted connections are still open.
    CHECK_FALSE(second.wait_closed(300ms));

    // Once one closes, a new client is admitted.
    first.reset();
    CHECK(wait_until([&] { return probe(proxy.port(), origin.port()) == 200; }, 3s));
}

TEST_CASE("errors: configuration mistakes stop start-up with file:line:col") {
    TempDir dir;
    SUBCASE("unknown key") {
        write_file(dir / "bad.yaml", "server:\n  threads: 1\n  head_timout_ms: 5\n");
        auto r =
            run({hallpass_bin(), "-c", (dir / "bad.yaml").string(), "--listen", "127.0.0.1:0"}, 5s);
        CHECK_FALSE(r.timed_out);
        CHECK(r.exit_code == 1);
        CHECK_MESSAGE(contains(r.err, "bad.yaml:3:3:"), r.err);
        CHECK(contains(r.err, "head_timout_ms"));
        CHECK_FALSE(contains(r.err, "listening on"));
    }
    SUBCASE("a misspelt key after a flow list") {
        write_file(dir / "bad.yaml", "server:\n  listen: [\"127.0.0.1:0\"]\n  nameserver: []\n");
        auto r = run({hallpass_bin(), "-c", (dir / "bad.yaml").string()}, 5s);
        CHECK(r.exit_code == 1);
        CHECK_MESSAGE(contains(r.err, "bad.yaml:3:3:"), r.err);
    }
    SUBCASE("missing file") {
        auto r = run(
            {hallpass_bin(), "-c", (dir / "missing.yaml").string(), "--listen", "127.0.0.1:0"}, 5s);
        CHECK_FALSE(r.timed_out);
        CHECK(r.exit_code != 0);
        CHECK(contains(r.err, "missing.yaml"));
    }
}
