// Upstreams that fail: names that do not resolve, ports that refuse, origins that close before
// answering, reset or stop in the middle of a body. The client gets a 502 with the reason when
// nothing was sent yet, a closed connection (never a complete-looking response) otherwise, and
// the proxy keeps serving.
#include <doctest/doctest.h>

#include <algorithm>

#include "harness.h"

using namespace hallpass::e2e;

TEST_CASE("upstream failure: a name that does not resolve gives 502 dns") {
    TempDir dir;
    Nginx origin(dir);
    origin.put("1k", "ok");
    Hallpass proxy(dir);

    RawClient c(proxy.port());
    c.send(proxy_get(origin.port(), "/1k", "nowhere.test"));
    auto r = c.read_final_response();
    REQUIRE(r);
    CHECK(r->status == 502);
    CHECK(contains(r->body, "dns"));
    // The question went to the stub (nothing leaves the machine); hosts_file names never do.
    auto names = proxy.dns().names();
    CHECK(std::count(names.begin(), names.end(), "nowhere.test") >= 1);
    CHECK(probe(proxy.port(), origin.port(), "/1k") == 200);
    auto ok = curl(proxy.port(), {origin.url("/1k", "site.test")});
    CHECK(ok.out == "ok");
    names = proxy.dns().names();
    CHECK(std::count(names.begin(), names.end(), "site.test") == 0);
}

TEST_CASE("upstream failure: a refused connection gives 502 refused") {
    TempDir dir;
    Nginx origin(dir);
    origin.put("1k", "ok");
    Hallpass proxy(dir);

    RawClient c(proxy.port());
    c.send(proxy_get(free_port(), "/"));
    auto r = c.read_final_response();
    REQUIRE(r);
    CHECK(r->status == 502);
    CHECK(contains(r->body, "refused"));
    CHECK(probe(proxy.port(), origin.port()) == 200);
}

TEST_CASE("upstream failure: a refused address is skipped for the next one") {
    TempDir dir;
    Nginx origin(dir);  // listens on 127.0.0.1 only, so 127.0.0.2 refuses
    origin.put("1k", "ok");
    HallpassOptions opts;
    opts.extra_hosts = "127.0.0.2 multi.test\n127.0.0.1 multi.test";
    Hallpass proxy(dir, opts);

    RawClient c(proxy.port());
    c.send(proxy_get(origin.port(), "/1k", "multi.test"));
    auto r = c.read_final_response();
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->body == "ok");
}

TEST_CASE("upstream failure: an origin closing before answering gives 502 closed") {
    TempDir dir;
    ScriptedOrigin origin({ScriptedOrigin::Mode::CloseEarly});
    ScriptedOrigin ok;
    Hallpass proxy(dir);

    RawClient c(proxy.port());
    c.send(proxy_get(origin.port(), "/"));
    auto r = c.read_final_response();
    REQUIRE(r);
    CHECK(r->status == 502);
    CHECK(contains(r->body, "closed"));
    CHECK(probe(proxy.port(), ok.port(), "/") == 200);
}

TEST_CASE("upstream failure: a response cut off mid-body closes the client connection") {
    TempDir dir;
    const std::string partial = random_bytes(1000, 41);
    ScriptedOrigin::Options o;
    o.reply = "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + partial;
    o.pause_after_reply = 300ms;  // the head and first bytes are relayed before the cut
    SUBCASE("by a reset") { o.mode = ScriptedOrigin::Mode::ResetMidResponse; }
    SUBCASE("by a clean close") {
        o.mode = ScriptedOrigin::Mode::Respond;
        o.close_after_reply = true;
    }
    ScriptedOrigin origin(o);
    ScriptedOrigin ok;
    Hallpass proxy(dir);

    RawClient c(proxy.port());
    c.send(proxy_get(origin.port(), "/big"));
    CHECK_FALSE(c.read_final_response(5s));  // never a complete response ...
    CHECK(c.eof());                          // ... the connection ends instead of hanging
    std::string got = c.buffer();
    INFO("client received " << got.size() << " bytes: " << got.substr(0, 200));
    // The head and the bytes that did arrive were relayed as they came, not held back.
    CHECK(parse_status(got) == 200);
    auto head_end = got.find("\r\n\r\n");
    REQUIRE(head_end != std::string::npos);
    CHECK(got.size() - head_end - 4 <= partial.size());
    CHECK(got.substr(head_end + 4) == partial.substr(0, got.size() - head_end - 4));

    CHECK(probe(proxy.port(), ok.port(), "/") == 200);
}

TEST_CASE("upstream failure: an origin sending part of a response and closing at once") {
    // Head, some body and FIN arrive together: hallpass may answer 502 (nothing relayed yet) or
    // relay the truncated response and close, but the client must get one of the two.
    TempDir dir;
    ScriptedOrigin::Options o;
    o.reply = "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + std::string(1000, 'x');
    o.close_after_reply = true;
    ScriptedOrigin origin(o);
    ScriptedOrigin ok;
    Hallpass proxy(dir);

    RawClient c(proxy.port());
    c.send(proxy_get(origin.port(), "/big"));
    auto r = c.read_final_response(5s);
    std::string got = r ? r->head + r->body : c.buffer();
    INFO("client received " << got.size() << " bytes: " << got.substr(0, 200));
    if (r) {
        CHECK(r->status == 502);
        CHECK(contains(r->body, "closed"));
    } else {
        CHECK(c.eof());
        CHECK(parse_status(got) == 200);
    }
    CHECK(probe(proxy.port(), ok.port(), "/") == 200);
}
