// Message framing at the edges: ambiguous request framing (the request-smuggling shapes) must be
// answered 400 and closed without reaching the origin; odd but legal response framings (until
// close, chunked, 1xx, 204, 304, HEAD) must be relayed without desynchronising the connection.
#include <doctest/doctest.h>

#include "harness.h"

using namespace hallpass::e2e;

namespace {

struct Case {
    const char* name;
    std::string framing;  // fields and the start of the body after the request line and Host
    bool head_level;      // decidable from the head alone: nothing may reach the origin
};

}  // namespace

TEST_CASE("framing: ambiguous request framing gets 400 and the connection closes") {
    TempDir dir;
    ScriptedOrigin silent({ScriptedOrigin::Mode::Silent});  // records, never answers
    ScriptedOrigin ok;                                      // for the follow-up probe
    Hallpass proxy(dir);
    std::string authority = "127.0.0.1:" + std::to_string(silent.port());
    std::string smuggled =
        "GET http://" + authority + "/smuggled HTTP/1.1\r\nHost: " + authority + "\r\n\r\n";

    const Case cases[] = {
        {"Content-Length and Transfer-Encoding",
         "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", true},
        {"Transfer-Encoding and Content-Length (smuggled request in the body)",
         "Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n" + smuggled, true},
        {"Content-Length and Transfer-Encoding (smuggled request in the body)",
         "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled, true},
        {"two differing Content-Length fields",
         "Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello", true},
        {"a Content-Length list with differing values", "Content-Length: 5, 6\r\n\r\nhello", true},
        {"a non-numeric Content-Length", "Content-Length: 5x\r\n\r\nhello", true},
        {"a negative Content-Length", "Content-Length: -1\r\n\r\n", true},
        {"Transfer-Encoding not ending in chunked",
         "Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n", true},
        {"Transfer-Encoding gzip only", "Transfer-Encoding: gzip\r\n\r\nhello", true},
        {"an obfuscated Transfer-Encoding", "Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", true},
        {"a non-hex chunk size", "Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
         false},
        {"an overflowing chunk size",
         "Transfer-Encoding: chunked\r\n\r\nffffffffffffffffffffffff\r\nhello\r\n0\r\n\r\n", false},
        {"chunk data longer than its size",
         "Transfer-Encoding: chunked\r\n\r\n2\r\nhello\r\n0\r\n\r\n", false},
    };
    for (const Case& c : cases) {
        SUBCASE(c.name) {
            RawClient client(proxy.port());
            client.send("POST http://" + authority + "/f HTTP/1.1\r\nHost: " + authority + "\r\n" +
                        c.framing);
            auto r = client.read_final_response(5s);
            REQUIRE_MESSAGE(r, "no response; received: " << client.buffer());
            CHECK(r->status == 400);
            CHECK(client.wait_closed(3s));
            if (c.head_level) {
                std::this_thread::sleep_for(100ms);
                CHECK_MESSAGE(silent.requests().empty(),
                              "origin received: " << silent.requests().at(0));
                CHECK(silent.connections() == 0);
            }
            for (const auto& seen : silent.requests()) CHECK_FALSE(contains(seen, "/smuggled"));
            CHECK(probe(proxy.port(), ok.port(), "/") == 200);
        }
    }
}

TEST_CASE("framing: a response delimited by the origin's close is relayed whole") {
    TempDir dir;
    const std::string body = random_bytes(100'000, 21);
    ScriptedOrigin::Options o;
    o.reply = "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n" + body;
    o.close_after_reply = true;
    ScriptedOrigin origin(o);
    Hallpass proxy(dir);

    RawClient c(proxy.port());
    c.send(proxy_get(origin.port(), "/until-close"));
    auto r = c.read_final_response(10s);
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->body.size() == body.size());
    CHECK(r->body == body);
}

TEST_CASE("framing: legal response framings keep the client connection in sync") {
    TempDir dir;
    struct Reply {
        const char* name;
        std::string bytes;
        int status;
        std::string body;
        bool head_request = false;
    };
    const Reply replies[] = {
        {"chunked with extensions and trailers",
         "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n6\r\n "
         "world\r\n0\r\nX-Trailer: 1\r\n\r\n",
         200, "hello world"},
        {"204 without a body", "HTTP/1.1 204 No Content\r\n\r\n", 204, ""},
        {"304 with a Content-Length but no body",
         "HTTP/1.1 304 Not Modified\r\nContent-Length: 1234\r\nETag: \"x\"\r\n\r\n", 304, ""},
        {"HEAD answered with a Content-Length but no body",
         "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n", 200, "", true},
        {"an interim 103 before the final response",
         "HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n"
         "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
         200, "ok"},
        {"Content-Length 0", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 200, ""},
    };
    for (const Reply& reply : replies) {
        SUBCASE(reply.name) {
            ScriptedOrigin::Options o;
            o.reply = reply.bytes;
            ScriptedOrigin origin(o);
            Hallpass proxy(dir);
            std::string authority = "127.0.0.1:" + std::to_string(origin.port());
            std::string method = reply.head_request ? "HEAD" : "GET";
            RawClient c(proxy.port());
            for (int i = 0; i < 3; ++i) {
                CAPTURE(i);
                c.send(method + " http://" + authority + "/r" + std::to_string(i) +
                       " HTTP/1.1\r\nHost: " + authority + "\r\n\r\n");
                auto r = c.read_final_response(5s, reply.head_request);
                REQUIRE_MESSAGE(r, "no response; received: " << c.buffer());
                CHECK(r->status == reply.status);
                CHECK(r->body == reply.body);
            }
            CHECK(origin.requests().size() == 3);
        }
    }
}
