// Plain HTTP forwarding through hallpass to a real nginx: methods, bodies both ways, keep-alive
// across hosts, upstream pooling, pipelining, HTTP/1.0 clients and IPv6 listeners.
#include <doctest/doctest.h>

#include <set>

#include "harness.h"

using namespace hallpass::e2e;

namespace {

std::string port_of(const Nginx& origin) { return std::to_string(origin.port()); }

}  // namespace

TEST_CASE("relay: GET returns the origin's bytes, adds Via and is logged by hallpass") {
    TempDir dir;
    Nginx origin(dir);
    Hallpass proxy(dir);
    const std::string content = random_bytes(1024, 7);
    origin.put("1k", content);

    RawClient c(proxy.port());
    c.send(proxy_get(origin.port(), "/1k", "site.test"));
    auto r = c.read_final_response();
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->body == content);
    CHECK(contains(r->header("via"), "hallpass"));

    REQUIRE(origin.wait_for_accesses(1));
    auto seen = origin.accesses().at(0);
    CHECK(seen.request == "GET /1k HTTP/1.1");
    CHECK(seen.host == "site.test:" + port_of(origin));
    CHECK(contains(seen.via, "hallpass"));

    auto logged =
        lines_with(proxy.stderr_text(), "GET http://site.test:" + port_of(origin) + "/1k");
    REQUIRE(!logged.empty());
    CHECK(connection_id(logged[0]) != "");

    auto via_curl = curl(proxy.port(), {origin.url("/1k", "site.test")});
    CHECK(via_curl.exit_code == 0);
    CHECK(via_curl.out == content);
}

TEST_CASE("relay: HEAD returns the head only and the connection stays usable") {
    TempDir dir;
    Nginx origin(dir);
    Hallpass proxy(dir);
    const std::string content = random_bytes(1024, 8);
    origin.put("1k", content);

    RawClient c(proxy.port());
    std::string authority = "site.test:" + port_of(origin);
    c.send("HEAD http://" + authority + "/1k HTTP/1.1\r\nHost: " + authority + "\r\n\r\n");
    auto head = c.read_final_response(5s, /*head_request=*/true);
    REQUIRE(head);
    CHECK(head->status == 200);
    CHECK(head->header("content-length") == "1024");

    // A body wrongly sent after the HEAD response would be parsed as this response's head.
    c.send(proxy_get(origin.port(), "/1k", "site.test"));
    auto get = c.read_final_response();
    REQUIRE(get);
    CHECK(get->status == 200);
    CHECK(get->body == content);
}

TEST_CASE("relay: POST bodies reach the origin intact") {
    TempDir dir;
    Nginx origin(dir);
    Hallpass proxy(dir);
    const std::string body = random_bytes(10'000, 9);
    write_file(dir / "body", body);

    SUBCASE("with Content-Length") {
        auto r =
            curl(proxy.port(), {"-H", "Expect:", "--data-binary", "@" + (dir / "body").string(),
                                origin.url("/echo", "site.test")});
        CHECK(r.exit_code == 0);
        CHECK(r.out == body);
        REQUIRE(origin.wait_for_accesses(1));
        CHECK(origin.accesses().at(0).request == "POST /echo HTTP/1.1");
    }
    SUBCASE("chunked (curl)") {
        auto r = curl(proxy.port(),
                      {"-H", "Expect:", "-H", "Transfer-Encoding: chunked", "--data-binary",
                       "@" + (dir / "body").string(), origin.url("/echo", "site.test")});
        CHECK(r.exit_code == 0);
        CHECK(r.out == body);
    }
    SUBCASE("chunked with extensions and trailers (raw)") {
        RawClient c(proxy.port());
        std::string authority = "site.test:" + port_of(origin);
        c.send("POST http://" + authority + "/echo HTTP/1.1\r\nHost: " + authority +
               "\r\nTransfer-Encoding: chunked\r\n\r\n"
               "5;name=value\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n");
        auto r = c.read_final_response();
        REQUIRE(r);
        CHECK(r->status == 200);
        CHECK(r->body == "hello world");
        // The connection is still in sync: the trailer was consumed as part of the body.
        c.send(proxy_get(origin.port(), "/echo", "site.test"));
        auto again = c.read_final_response();
        REQUIRE(again);
        CHECK(again->status == 200);
    }
}

TEST_CASE("relay: 1 MiB bodies are byte-exact in both directions") {
    TempDir dir;
    Nginx origin(dir);
    Hallpass proxy(dir);
    const std::string mib = random_bytes(1 << 20, 10);
    origin.put("1m", mib);
    write_file(dir / "upload", mib);

    SUBCASE("download") {
        auto r =
            curl(proxy.port(), {"-o", (dir / "down").string(), origin.url("/1m", "site.test")});
        CHECK(r.exit_code == 0);
        CHECK(read_file(dir / "down") == mib);

        RawClient c(proxy.port());
        c.send(proxy_get(origin.port(), "/1m", "site.test"));
        auto raw = c.read_final_response(10s);
        REQUIRE(raw);
        CHECK(raw->body == mib);
    }
    SUBCASE("upload, Content-Length") {
        auto r =
            curl(proxy.port(), {"-H", "Expect:", "--data-binary", "@" + (dir / "upload").string(),
                                "-o", (dir / "echoed").string(), origin.url("/echo", "site.test")});
        CHECK(r.exit_code == 0);
        CHECK(read_file(dir / "echoed") == mib);
    }
    SUBCASE("upload, chunked") {
        auto r = curl(proxy.port(), {"-H", "Expect:", "-H", "Transfer-Encoding: chunked",
                                     "--data-binary", "@" + (dir / "upload").string(), "-o",
                                     (dir / "echoed").string(), origin.url("/echo", "site.test")});
        CHECK(r.exit_code == 0);
        CHECK(read_file(dir / "echoed") == mib);
    }
}

TEST_CASE("relay: Expect 100-continue gets its 100 before the body is sent") {
    TempDir dir;
    Nginx origin(dir);
    Hallpass proxy(dir);

    RawClient c(proxy.port());
    std::string authority = "site.test:" + port_of(origin);
    c.send("POST http://" + authority + "/echo HTTP/1.1\r\nHost: " + authority +
           "\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
    auto interim = c.read_response(5s);
    REQUIRE_MESSAGE(interim, "no 100 Continue before the body; got: " << c.buffer());
    CHECK(interim->status == 100);
    c.send("hello");
    auto r = c.read_final_response();
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->body == "hello");

    // curl waits up to --expect100-timeout for the 100; 30 s would blow the --max-time of 15.
    write_file(dir / "body", random_bytes(100'000, 11));
    auto via_curl = curl(proxy.port(),
                         {"-H", "Expect: 100-continue", "--expect100-timeout", "30",
                          "--data-binary", "@" + (dir / "body").string(), "-o",
                          (dir / "echoed").string(), origin.url("/echo", "site.test")},
                         16s);
    CHECK(via_curl.exit_code == 0);
    CHECK(read_file(dir / "echoed") == read_file(dir / "body"));
}

TEST_CASE("relay: one client connection carries requests to two different hosts") {
    TempDir dir;
    Nginx origin(dir);
    Hallpass proxy(dir);
    origin.put("a", "from-a");
    origin.put("b", "from-b");

    auto r = curl(proxy.port(), {"-w", "[%{num_connects}]", origin.url("/a", "a.test"),
                                 origin.url("/b", "b.test"), origin.url("/a", "b.test")});
    CHECK(r.exit_code == 0);
    // One TCP connect by curl to the proxy, reused for the second and third request.
    CHECK(r.out == "from-a[1]from-b[0]from-a[0]");

    REQUIRE(origin.wait_for_accesses(3));
    auto seen = origin.accesses();
    CHECK(seen[0].host == "a.test:" + port_of(origin));
    CHECK(seen[1].host == "b.test:" + port_of(origin));
    CHECK(seen[2].host == "b.test:" + port_of(origin));

    auto log = proxy.stderr_text();
    auto a = lines_with(log, "GET http://a.test:" + port_of(origin) + "/a");
    auto b = lines_with(log, "GET http://b.test:" + port_of(origin) + "/b");
    REQUIRE(!a.empty());
    REQUIRE(!b.empty());
    CHECK(connection_id(a[0]) != "");
    for (const auto& line : b) CHECK(connection_id(line) == connection_id(a[0]));
}

TEST_CASE("relay: idle upstream connections are pooled and reused") {
    TempDir dir;
    Nginx origin(dir);
    HallpassOptions opts;
    opts.threads = 1;  // the pool is per worker
    Hallpass proxy(dir, opts);
    origin.put("1k", std::string(1024, 'p'));

    SUBCASE("across client connections") {
        const int requests = 4;
        for (int i = 0; i < requests; ++i) {
            auto r = curl(proxy.port(), {origin.url("/1k", "site.test")});
            REQUIRE(r.exit_code == 0);
        }
        REQUIRE(origin.wait_for_accesses(requests));
        std::set<long> connections;
        for (const auto& a : origin.accesses()) connections.insert(a.connection);
        CHECK_MESSAGE(connections.size() < requests, "origin saw " << connections.size()
                                                                   << " connections for "
                                                                   << requests << " requests:\n"
                                                                   << origin.access_log());
    }
    SUBCASE("on one client connection") {
        auto r = curl(proxy.port(), {"-o", "/dev/null", "-o", "/dev/null", "-o", "/dev/null",
                                     origin.url("/1k", "site.test"), origin.url("/1k", "site.test"),
                                     origin.url("/1k", "site.test")});
        REQUIRE(r.exit_code == 0);
        REQUIRE(origin.wait_for_accesses(3));
        auto seen = origin.accesses();
        CHECK(seen[0].connection == seen[2].connection);
        CHECK(seen[2].connection_requests == 3);
    }
}

TEST_CASE("relay: a pooled connection the origin closed is not handed out") {
    TempDir dir;
    ScriptedOrigin::Options o;
    o.close_after_reply = true;  // replies with Content-Length, then closes while idle
    ScriptedOrigin origin(o);
    HallpassOptions opts;
    opts.threads = 1;
    Hallpass proxy(dir, opts);

    for (int i = 0; i < 3; ++i) {
        RawClient c(proxy.port());
        c.send(proxy_get(origin.port(), "/n" + std::to_string(i)));
        auto r = c.read_final_response();
        REQUIRE_MESSAGE(r, "request " << i << " got no response");
        CHECK_MESSAGE(r->status == 200, "request " << i << ":\n" << r->head);
        CHECK(r->body == "ok");
        std::this_thread::sleep_for(100ms);  // lets the origin's FIN arrive at the idle pool
    }
    CHECK(origin.connections() == 3);
}

TEST_CASE("relay: pipelined requests are answered in order") {
    TempDir dir;
    Nginx origin(dir);
    Hallpass proxy(dir);
    const std::string p1 = random_bytes(200'000, 1), p2 = "tiny", p3 = random_bytes(50'000, 3);
    origin.put("p1", p1);
    origin.put("p2", p2);
    origin.put("p3", p3);

    const std::string posted = random_bytes(30'000, 2);
    std::string authority = "b.test:" + port_of(origin);
    std::string post = "POST http://" + authority + "/echo HTTP/1.1\r\nHost: " + authority +
                       "\r\nContent-Length: " + std::to_string(posted.size()) + "\r\n\r\n" + posted;

    RawClient c(proxy.port());
    c.send(proxy_get(origin.port(), "/p1", "a.test") + proxy_get(origin.port(), "/p2", "b.test") +
           post + proxy_get(origin.port(), "/p3", "a.test"));
    for (const std::string* expected : {&p1, &p2, &posted, &p3}) {
        auto r = c.read_final_response(10s);
        REQUIRE(r);
        CHECK(r->status == 200);
        CHECK(r->body.size() == expected->size());
        CHECK(r->body == *expected);
    }
}

TEST_CASE("relay: a client's Connection: close ends the connection after the response") {
    TempDir dir;
    Nginx origin(dir);
    Hallpass proxy(dir);
    origin.put("1k", "ok");

    RawClient c(proxy.port());
    c.send(proxy_get(origin.port(), "/1k", "site.test", "Connection: close\r\n"));
    auto r = c.read_final_response();
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->body == "ok");
    CHECK(c.wait_closed(3s));
}

TEST_CASE("relay: a long keep-alive session on one client connection") {
    TempDir dir;
    Nginx origin(dir);
    HallpassOptions opts;
    opts.threads = 1;
    Hallpass proxy(dir, opts);
    origin.put("1k", std::string(1024, 'k'));

    auto r = curl(proxy.port(),
                  {"-w", "%{num_connects}\n", "-o", (dir / "out_#1").string(),
                   origin.url("/1k?[1-300]", "site.test")},
                  30s);
    CHECK(r.exit_code == 0);
    CHECK(count_of(r.out, "\n") == 300);
    CHECK(count_of(r.out, "1\n") == 1);  // one connect, 299 reuses
    REQUIRE(origin.wait_for_accesses(300));
    std::set<long> connections;
    for (const auto& a : origin.accesses()) {
        connections.insert(a.connection);
        CHECK(a.status == 200);
    }
    CHECK(connections.size() <= 2);
}

TEST_CASE("relay: an IPv6 literal in the URI is used without DNS") {
    TempDir dir;
    NginxOptions no;
    no.ipv6 = true;
    Nginx origin(dir, no);
    origin.put("1k", "v6");
    Hallpass proxy(dir);
    std::string authority = "[::1]:" + port_of(origin);

    RawClient c(proxy.port());
    c.send("GET http://" + authority + "/1k HTTP/1.1\r\nHost: " + authority + "\r\n\r\n");
    auto r = c.read_final_response();
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->body == "v6");
    REQUIRE(origin.wait_for_accesses(1));
    CHECK(origin.accesses()[0].host == authority);
    CHECK(proxy.dns().queries() == 0);
}

TEST_CASE("relay: HTTP/1.0 clients") {
    TempDir dir;
    Nginx origin(dir);
    Hallpass proxy(dir);
    const std::string content = random_bytes(5000, 4);
    origin.put("5k", content);
    std::string authority = "site.test:" + port_of(origin);

    SUBCASE("without keep-alive: one response, then the proxy closes") {
        RawClient c(proxy.port());
        c.send("GET http://" + authority + "/5k HTTP/1.0\r\n\r\n");
        auto r = c.read_final_response();
        REQUIRE(r);
        CHECK(r->status == 200);
        CHECK(r->body == content);
        CHECK(parse_status(r->head) == 200);
        CHECK(c.wait_closed(3s));
    }
    SUBCASE("with keep-alive: the connection carries a second request") {
        RawClient c(proxy.port());
        std::string request =
            "GET http://" + authority + "/5k HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
        c.send(request);
        auto r1 = c.read_final_response();
        REQUIRE(r1);
        CHECK(r1->status == 200);
        CHECK(r1->body == content);
        CHECK(r1->has("content-length"));  // 1.0 has no chunked: a kept-alive body needs a length
        c.send(request);
        auto r2 = c.read_final_response();
        REQUIRE(r2);
        CHECK(r2->body == content);
    }
    SUBCASE("a chunked origin response reaches a 1.0 client without chunked coding") {
        // nginx's echo answers chunked; RFC 9112 §6.1: never send chunked to a 1.0 recipient.
        RawClient c(proxy.port());
        c.send("POST http://" + authority +
               "/echo HTTP/1.0\r\nContent-Length: 11\r\n\r\nhello 1.0 !");
        auto r = c.read_final_response();
        REQUIRE(r);
        CHECK(r->status == 200);
        CHECK_FALSE(contains(r->header("transfer-encoding"), "chunked"));
        CHECK(r->body == "hello 1.0 !");
    }
}

TEST_CASE("relay: many concurrent clients are all served") {
    TempDir dir;
    Nginx origin(dir);
    Hallpass proxy(dir);
    origin.put("1k", std::string(1024, 'c'));

    auto r = curl(proxy.port(),
                  {"-Z", "--parallel-max", "20", "-w", "%{http_code}\\n", "-o",
                   (dir / "out_#1").string(), origin.url("/1k?[1-60]", "site.test")},
                  30s);
    CHECK(r.exit_code == 0);
    CHECK(count_of(r.out, "200\n") == 60);
    CHECK(origin.wait_for_accesses(60));
}

TEST_CASE("relay: an IPv6 loopback listener serves requests") {
    TempDir dir;
    Nginx origin(dir);
    origin.put("1k", std::string(1024, '6'));
    HallpassOptions opts;
    opts.listen = {"[::1]:0", "127.0.0.1:0"};
    Hallpass proxy(dir, opts);
    CHECK(proxy.wait_for_log("listening on [::1]:"));

    for (uint16_t port : proxy.ports()) {
        bool v6 = contains(proxy.stderr_text(), "[::1]:" + std::to_string(port));
        RawClient c(port, v6 ? "::1" : "127.0.0.1");
        c.send(proxy_get(origin.port(), "/1k", "site.test"));
        auto r = c.read_final_response();
        REQUIRE(r);
        CHECK(r->body == std::string(1024, '6'));
    }
}

TEST_CASE("relay: large bodies go socket to socket (splice), whole, and keep-alive goes on") {
    TempDir dir;
    Nginx origin(dir);
    std::string big(8 << 20, '\0');
    for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + (i * 7 + i / 4096) % 26);
    origin.put("big", big);
    origin.put("1k", std::string(1024, 'k'));
    HallpassOptions opts;
    opts.server_yaml = "buffer_bytes: 262144\naccess_log: {path: access.log, format: squid}";
    Hallpass proxy(dir, opts);

    // A client that does not read yet: the body's bytes in flight sit in a pipe.
    RawClient c(proxy.port(), "127.0.0.1", 5s, /*rcvbuf=*/16 * 1024);
    c.send(proxy_get(origin.port(), "/big"));
    // The pipe fills as soon as the client's window does (and then stays full).
    wait_until([&] { return bytes_in_pipes(proxy.pid()) > 0; }, 5s);
    std::this_thread::sleep_for(200ms);
    const size_t in_pipes = bytes_in_pipes(proxy.pid());
    MESSAGE("while the client does not read: " << in_pipes << " bytes in pipes");
    CHECK(in_pipes > 0);
    CHECK(in_pipes <= 262144);
    auto r = c.read_final_response(30s);
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->body.size() == big.size());
    CHECK(r->body == big);
    // The same connection serves the next request, on the pooled upstream connection.
    c.send(proxy_get(origin.port(), "/1k"));
    auto next = c.read_final_response();
    REQUIRE(next);
    CHECK(next->body == std::string(1024, 'k'));
    REQUIRE(origin.wait_for_accesses(2));
    auto seen = origin.accesses();
    CHECK(seen[0].connection == seen[1].connection);
    CHECK(bytes_in_pipes(proxy.pid()) == 0);
    // The access log counts the body that went around the buffers: head + 8 MiB.
    const size_t head_bytes = r->head.size();
    std::string big_line;
    CHECK(wait_until(
        [&] {
            for (const auto& line : lines_with(read_file(dir / "access.log"), "/big")) big_line = line;
            return !big_line.empty();
        },
        5s));
    INFO(big_line);
    CHECK(contains(big_line, " " + std::to_string(head_bytes + big.size()) + " GET "));
}

TEST_CASE("relay: a spliced body cut short by the origin ends the client's connection") {
    TempDir dir;
    SUBCASE("Content-Length: the client gets what came, then a close") {
        ScriptedOrigin::Options o;
        o.reply = "HTTP/1.1 200 OK\r\nContent-Length: 1048576\r\n\r\n" + std::string(300000, 'x');
        o.close_after_reply = true;
        o.pause_after_reply = 200ms;
        ScriptedOrigin origin(o);
        Hallpass proxy(dir, HallpassOptions{});
        RawClient c(proxy.port());
        c.send(proxy_get(origin.port(), "/"));
        std::string got = c.read_until_close(10s);
        CHECK(got.find("Content-Length: 1048576") != std::string::npos);
        const size_t body = got.size() - (got.find("\r\n\r\n") + 4);
        CHECK(body == 300000);
        CHECK(c.last_end() == RawClient::End::Closed);
    }
    SUBCASE("delimited by close: the whole body, then the close") {
        ScriptedOrigin::Options o;
        o.reply = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + std::string(1 << 20, 'y');
        o.close_after_reply = true;
        ScriptedOrigin origin(o);
        Hallpass proxy(dir, HallpassOptions{});
        RawClient c(proxy.port());
        c.send(proxy_get(origin.port(), "/"));
        std::string got = c.read_until_close(10s);
        const size_t body = got.size() - (got.find("\r\n\r\n") + 4);
        CHECK(body == (1u << 20));
        CHECK(c.last_end() == RawClient::End::Closed);
    }
    SUBCASE("the origin resets mid-body: the client is reset too") {
        ScriptedOrigin::Options o;
        o.mode = ScriptedOrigin::Mode::ResetMidResponse;
        o.reply = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + std::string(200000, 'z');
        o.pause_after_reply = 200ms;
        ScriptedOrigin origin(o);
        Hallpass proxy(dir, HallpassOptions{});
        RawClient c(proxy.port());
        c.send(proxy_get(origin.port(), "/"));
        c.read_until_close(10s);
        // A body delimited by close must not look complete: a reset, not a clean close.
        CHECK(c.last_end() == RawClient::End::Reset);
    }
}

TEST_CASE("relay: a large upload goes socket to socket; an origin that stops reading bounds it") {
    TempDir dir;
    ScriptedOrigin origin({ScriptedOrigin::Mode::Stall, ""});
    HallpassOptions opts;
    opts.server_yaml = "buffer_bytes: 262144";
    Hallpass proxy(dir, opts);
    const long rss_before = proxy.rss_kib();
    RawClient c(proxy.port());
    const size_t size = size_t{256} << 20;
    c.send("POST http://127.0.0.1:" + std::to_string(origin.port()) +
           "/up HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: " + std::to_string(size) +
           "\r\n\r\n");
    // Offer far more than the kernel's socket buffers and hallpass may hold.
    const std::string chunk(1 << 20, 'u');
    size_t sent = 0;
    for (int i = 0; i < 256; ++i) {
        size_t n = c.send_some(chunk, 200ms);
        sent += n;
        if (n < chunk.size()) break;
    }
    wait_until([&] { return bytes_in_pipes(proxy.pid()) > 0; }, 5s);
    std::this_thread::sleep_for(200ms);
    const size_t in_pipes = bytes_in_pipes(proxy.pid());
    MESSAGE("the client got " << sent << " bytes out; " << in_pipes << " bytes in hallpass's pipes");
    // Stopped by backpressure, not swallowed: what left the client sits in the kernel's socket
    // buffers (loopback autotuning lets them grow to tens of MiB when the proxy is slow, as
    // under ASan) and in one pipe; hallpass itself holds the pipe and no more (RSS below).
    CHECK(sent < size / 2);
    CHECK(in_pipes > 0);  // the body's bytes in flight sit in a pipe
    CHECK(in_pipes <= 262144);
    CHECK(proxy.rss_kib() - rss_before < 4096);
}
