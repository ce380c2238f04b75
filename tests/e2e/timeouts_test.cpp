// Every waiting state has a deadline: a slow request head (408), an idle client (closed), an
// upstream that never answers (504), a connect that never completes (504), a silent tunnel
// (closed) and a DNS server that never answers. Timeouts are set to a few hundred milliseconds;
// each check allows generous slack above them and none below.
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

using namespace hallpass::e2e;

namespace {

Ms since(Clock::time_point start) { return std::chrono::duration_cast<Ms>(Clock::now() - start); }

}  // namespace

TEST_CASE("timeouts: a request head that does not complete in time gets 408") {
    TempDir dir;
    Nginx origin(dir);
    origin.put("1k", "ok");
    HallpassOptions opts;
    opts.server_yaml = "head_timeout_ms: 400";
    Hallpass proxy(dir, opts);
    std::string partial = proxy_get(origin.port(), "/1k");
    partial.resize(partial.size() - 2);  // everything but the final blank line

    SUBCASE("head stalls after a few bytes") {
        RawClient c(proxy.port());
        auto start = Clock::now();
        c.send(partial);
        auto r = c.read_final_response(5s);
        REQUIRE_MESSAGE(r, "no 408; received: " << c.buffer());
        CHECK(r->status == 408);
        CHECK(since(start) >= 350ms);
        CHECK(since(start) < 3s);
        CHECK(c.wait_closed(3s));
    }
    SUBCASE("head trickles one byte every 50 ms (slowloris)") {
        RawClient c(proxy.port());
        auto start = Clock::now();
        std::string padded = partial;
        padded.insert(padded.find("\r\n") + 2, "X-Pad: " + std::string(200, 'p') + "\r\n");
        size_t i = 0;
        std::optional<HttpResponse> r;
        while (since(start) < 5s && !c.eof()) {
            if (i < padded.size() && c.send_some(padded.substr(i++, 1), 1s) == 0) break;
            if (c.fill([](const std::string& b) { return contains(b, "\r\n\r\n"); }, 50ms) ==
                RawClient::End::Ok)
                break;
        }
        r = c.read_final_response(2s);
        REQUIRE_MESSAGE(r, "no 408 after " << since(start).count() << " ms");
        CHECK(r->status == 408);
        CHECK(since(start) < 3s);
    }
    CHECK(probe(proxy.port(), origin.port()) == 200);
    CHECK(origin.wait_for_accesses(1));
    CHECK(origin.accesses().size() == 1);  // only the probe
}

TEST_CASE("timeouts: an idle client connection is closed without a response") {
    TempDir dir;
    Nginx origin(dir);
    origin.put("1k", "ok");
    HallpassOptions opts;
    opts.server_yaml = "idle_timeout_ms: 400";
    Hallpass proxy(dir, opts);

    SUBCASE("no bytes at all") {
        RawClient c(proxy.port());
        auto start = Clock::now();
        CHECK(c.wait_closed(5s));
        CHECK(since(start) >= 350ms);
        CHECK(since(start) < 3s);
        CHECK(c.buffer().empty());
    }
    SUBCASE("after a complete exchange (keep-alive)") {
        RawClient c(proxy.port());
        c.send(proxy_get(origin.port(), "/1k"));
        auto r = c.read_final_response();
        REQUIRE(r);
        CHECK(r->status == 200);
        auto start = Clock::now();
        CHECK(c.wait_closed(5s));
        CHECK(since(start) >= 350ms);
        CHECK(since(start) < 3s);
        CHECK(c.buffer().empty());
    }
    CHECK(probe(proxy.port(), origin.port()) == 200);
}

TEST_CASE("timeouts: an upstream that never answers gives 504") {
    TempDir dir;
    ScriptedOrigin silent({ScriptedOrigin::Mode::Silent});
    ScriptedOrigin ok;
    HallpassOptions opts;
    opts.server_yaml = "response_timeout_ms: 500";
    Hallpass proxy(dir, opts);

    RawClient c(proxy.port());
    auto start = Clock::now();
    c.send(proxy_get(silent.port(), "/never"));
    auto r = c.read_final_response(5s);
    REQUIRE(r);
    CHECK(r->status == 504);
    CHECK(since(start) >= 450ms);
    CHECK(since(start) < 4s);
    CHECK(silent.requests().size() == 1);
    CHECK(probe(proxy.port(), ok.port(), "/") == 200);
}

TEST_CASE("timeouts: a connect that never completes gives 504") {
    TempDir dir;
    Blackhole hole;
    REQUIRE_MESSAGE(RawClient::try_connect(hole.port(), "127.0.0.1", 300ms) == ETIMEDOUT,
                    "the blackhole listener accepted a connection; this kernel does not drop "
                    "SYNs to a full accept queue");
    ScriptedOrigin ok;
    HallpassOptions opts;
    opts.server_yaml = "connect_timeout_ms: 500";
    Hallpass proxy(dir, opts);

    RawClient c(proxy.port());
    auto start = Clock::now();
    c.send(proxy_get(hole.port(), "/"));
    auto r = c.read_final_response(6s);
    REQUIRE(r);
    CHECK(r->status == 504);
    CHECK(since(start) >= 450ms);
    CHECK(since(start) < 4s);
    CHECK(probe(proxy.port(), ok.port(), "/") == 200);
}

TEST_CASE("timeouts: a tunnel with no traffic is closed") {
    TempDir dir;
    ScriptedOrigin silent({ScriptedOrigin::Mode::Silent});
    ScriptedOrigin ok;
    HallpassOptions opts;
    opts.server_yaml =
        "tunnel_idle_timeout_ms: 500\nconnect_ports: [" + std::to_string(silent.port()) + "]";
    Hallpass proxy(dir, opts);

    RawClient c(proxy.port());
    c.send("CONNECT 127.0.0.1:" + std::to_string(silent.port()) + " HTTP/1.1\r\nHost: x\r\n\r\n");
    auto established = c.read_response(5s, true);
    REQUIRE(established);
    REQUIRE(established->status == 200);
    // Traffic keeps it open past the timeout ...
    auto last_ping = Clock::now();
    for (int i = 0; i < 4; ++i) {
        std::this_thread::sleep_for(200ms);
        c.send("ping");
        last_ping = Clock::now();
    }
    CHECK(c.fill([](const std::string&) { return false; }, 50ms) == RawClient::End::Timeout);
    CHECK_FALSE(c.eof());
    // ... silence closes it.
    auto start = last_ping;
    CHECK(c.wait_closed(5s));
    CHECK(since(start) >= 400ms);
    CHECK(since(start) < 4s);
    CHECK(probe(proxy.port(), ok.port(), "/") == 200);
}

TEST_CASE("timeouts: a DNS server that never answers fails the request in time") {
    TempDir dir;
    ScriptedOrigin ok;
    HallpassOptions opts;
    opts.dns_mode = DnsStub::Mode::Silent;
    opts.server_yaml = "dns_timeout_ms: 500";
    Hallpass proxy(dir, opts);

    RawClient c(proxy.port());
    auto start = Clock::now();
    c.send(proxy_get(ok.port(), "/", "silent-dns.test"));
    auto r = c.read_final_response(8s);
    REQUIRE(r);
    CHECK((r->status == 502 || r->status == 504));
    CHECK(contains(r->body, "dns"));
    CHECK(since(start) < 5s);
    CHECK(proxy.dns().queries() >= 1);
    CHECK(probe(proxy.port(), ok.port(), "/") == 200);
}

TEST_CASE("timeouts: an idle pooled connection expires after pool_idle_timeout_ms") {
    TempDir dir;
    Nginx origin(dir);
    origin.put("1k", "ok");
    HallpassOptions opts;
    opts.threads = 1;
    opts.server_yaml = "pool_idle_timeout_ms: 300";
    Hallpass proxy(dir, opts);

    CHECK(probe(proxy.port(), origin.port()) == 200);
    CHECK(probe(proxy.port(), origin.port()) == 200);  // reuses the pooled connection
    std::this_thread::sleep_for(800ms);
    CHECK(probe(proxy.port(), origin.port()) == 200);  // needs a new one
    REQUIRE(origin.wait_for_accesses(3));
    auto seen = origin.accesses();
    CHECK(seen[0].connection == seen[1].connection);
    CHECK(seen[2].connection != seen[1].connection);
}
