// Clients that vanish mid-exchange: reset while downloading, uploading, waiting for the
// upstream, tunnelling or still sending the head. hallpass must release the upstream side too
// (the origin sees its connection closed), keep no count of the dead connection against
// max_connections, and go on serving.
#include <doctest/doctest.h>

#include <thread>

#include "harness.h"

using namespace hallpass::e2e;

TEST_CASE("client abort: resets mid-download do not disturb the proxy") {
    TempDir dir;
    Nginx origin(dir);
    origin.put("big", std::string(8 << 20, 'z'));
    origin.put("1k", "ok");
    Hallpass proxy(dir);

    for (int i = 0; i < 5; ++i) {
        RawClient c(proxy.port());
        c.send(proxy_get(origin.port(), "/big"));
        CHECK(c.read_n(1000, 5s).size() == 1000);
        c.reset();
    }
    CHECK(probe(proxy.port(), origin.port()) == 200);
    CHECK(proxy.running());
}

TEST_CASE("client abort: the upstream connection is closed when the client goes away") {
    TempDir dir;
    ScriptedOrigin silent({ScriptedOrigin::Mode::Silent});
    ScriptedOrigin ok;
    HallpassOptions opts;
    opts.server_yaml = "connect_ports: [" + std::to_string(silent.port()) + "]";
    Hallpass proxy(dir, opts);
    std::string authority = "127.0.0.1:" + std::to_string(silent.port());

    RawClient c(proxy.port());
    SUBCASE("while waiting for the response") {
        c.send(proxy_get(silent.port(), "/wait"));
        REQUIRE(silent.wait_for_requests(1));
    }
    SUBCASE("in the middle of a request body") {
        c.send("POST http://" + authority + "/up HTTP/1.1\r\nHost: " + authority +
               "\r\nContent-Length: 10000000\r\n\r\n" + std::string(1 << 20, 'b'));
        REQUIRE(wait_until([&] { return silent.connections() == 1; }, 3s));
    }
    SUBCASE("inside a tunnel") {
        c.send("CONNECT " + authority + " HTTP/1.1\r\nHost: " + authority + "\r\n\r\n");
        auto established = c.read_response(5s, true);
        REQUIRE(established);
        REQUIRE(established->status == 200);
        c.send("GET / HTTP/1.1\r\n\r\n");
        REQUIRE(silent.wait_for_requests(1));
    }
    c.reset();
    CHECK_MESSAGE(wait_until([&] { return silent.closed_by_peer() == 1; }, 3s),
                  "the origin's connection stayed open after the client reset");
    CHECK(probe(proxy.port(), ok.port(), "/") == 200);
}

TEST_CASE("client abort: a reset during the head is cleaned up") {
    TempDir dir;
    Nginx origin(dir);
    origin.put("1k", "ok");
    Hallpass proxy(dir);
    for (int i = 0; i < 5; ++i) {
        RawClient c(proxy.port());
        c.send("GET http://127.0.0.1:" + std::to_string(origin.port()) + "/1k HTTP/1.1\r\nHo");
        c.reset();
    }
    CHECK(probe(proxy.port(), origin.port()) == 200);
    CHECK(origin.wait_for_accesses(1));
    CHECK(origin.accesses().size() == 1);
}

TEST_CASE("client abort: aborted connections are not counted against max_connections") {
    TempDir dir;
    Nginx origin(dir);
    origin.put("big", std::string(4 << 20, 'z'));
    origin.put("1k", "ok");
    ScriptedOrigin silent({ScriptedOrigin::Mode::Silent});
    HallpassOptions opts;
    opts.server_yaml = "max_connections: 3";
    Hallpass proxy(dir, opts);

    for (int round = 0; round < 3; ++round) {
        {
            RawClient downloading(proxy.port());
            downloading.send(proxy_get(origin.port(), "/big"));
            downloading.read_n(100, 5s);
            downloading.reset();
        }
        {
            RawClient waiting(proxy.port());
            waiting.send(proxy_get(silent.port(), "/wait"));
            REQUIRE(silent.wait_for_requests(static_cast<size_t>(round) + 1));
            waiting.reset();
        }
        {
            RawClient half_head(proxy.port());
            half_head.send("GET http://127.0.0.1/ HTTP/1.1\r\n");
            half_head.reset();
        }
    }
    // All three slots must be free again: three clients at once are all admitted.
    std::vector<std::unique_ptr<RawClient>> clients;
    bool all_served = wait_until(
        [&] {
            clients.clear();
            for (int i = 0; i < 3; ++i) {
                clients.push_back(std::make_unique<RawClient>(proxy.port()));
                clients.back()->send(proxy_get(origin.port(), "/1k"));
            }
            for (auto& c : clients) {
                auto r = c->read_final_response();
                if (!r || r->status != 200) return false;
            }
            return true;
        },
        3s);
    CHECK_MESSAGE(all_served, "a slot stayed taken by an aborted connection");
}

TEST_CASE("client abort: a client that closes while its request waits ends it within a second") {
    // A close (FIN), not a reset: what a browser tab or curl that gives up sends. Nobody would
    // read the answer, so the lookup, the connect or the upstream exchange ends at once
    // instead of holding its resources for the whole timeout.
    TempDir dir;
    ScriptedOrigin ok;
    HallpassOptions opts;
    opts.server_yaml = "dns_timeout_ms: 4000\nconnect_timeout_ms: 30000";
    std::string request;
    std::unique_ptr<ScriptedOrigin> silent;
    std::unique_ptr<Blackhole> hole;
    SUBCASE("resolving") {
        opts.dns_mode = DnsStub::Mode::Silent;
        request = "GET http://nowhere.test/ HTTP/1.1\r\nHost: nowhere.test\r\n\r\n";
    }
    SUBCASE("connecting") {
        hole = std::make_unique<Blackhole>();
        request = proxy_get(hole->port(), "/");
    }
    SUBCASE("waiting for the response head") {
        silent =
            std::make_unique<ScriptedOrigin>(ScriptedOrigin::Options{ScriptedOrigin::Mode::Silent});
        request = proxy_get(silent->port(), "/wait");
    }
    Hallpass proxy(dir, opts);
    {
        RawClient c(proxy.port());
        c.send(request);
        if (silent) {
            REQUIRE(silent->wait_for_requests(1));
        } else {
            std::this_thread::sleep_for(300ms);
        }
    }  // closed here
    auto closed_at = Clock::now();
    CHECK(proxy.wait_for_log("closed: client closed before the response", 1s));
    if (silent) {
        CHECK_MESSAGE(wait_until([&] { return silent->closed_by_peer() == 1; }, 1s),
                      "the origin's connection stayed open after the client left");
    }
    if (opts.dns_mode == DnsStub::Mode::Silent) {
        // evdns retries after half the DNS timeout (2 s): a cancelled lookup is not retried.
        std::this_thread::sleep_until(closed_at + 2500ms);
        CHECK_MESSAGE(proxy.dns().queries() == 2, "the lookup went on after the client left: "
                                                      << proxy.dns().queries() << " queries");
    }
    CHECK(probe(proxy.port(), ok.port(), "/") == 200);
}
