// Shared resources are shared fairly: DNS lookups (one client's unanswerable names do not delay
// another's; failures are remembered briefly), and connection slots (counted exactly per
// client address; at a limit an idle keep-alive connection makes room before anyone gets 503).
// Clients come from several 127.x addresses.
#include <doctest/doctest.h>

#include <thread>

#include "harness.h"

using namespace hallpass::e2e;

namespace {

std::string get_for(const std::string& host, uint16_t port, std::string_view path = "/") {
    std::string authority = host + ":" + std::to_string(port);
    return "GET http://" + authority + std::string(path) + " HTTP/1.1\r\nHost: " + authority +
           "\r\n\r\n";
}

// One keep-alive request on `c`; its status (0: no answer).
int ask(RawClient& c, const std::string& request) {
    c.send(request);
    auto r = c.read_final_response(5s);
    return r ? r->status : 0;
}

}  // namespace

TEST_CASE("fair share: one client's unanswerable names do not delay another client's") {
    TempDir dir;
    ScriptedOrigin ok;
    HallpassOptions opts;
    opts.dns_mode = DnsStub::Mode::OkAnswers;  // ok*.test answer 127.0.0.1; others never
    opts.server_yaml = "dns_timeout_ms: 8000\nmax_dns_lookups_per_client: 32";
    Hallpass proxy(dir, opts);

    // 60 names that never answer, from one client: 32 wait, the rest are refused at once.
    std::vector<std::unique_ptr<RawClient>> flood;
    for (int i = 0; i < 60; ++i) {
        flood.push_back(std::make_unique<RawClient>(proxy.port(), "127.0.0.1", 5s, 0, "127.0.0.2"));
        flood.back()->send(get_for("dead" + std::to_string(i) + ".test", 80));
    }
    int refused = 0;
    for (auto& c : flood) {
        auto r = c->read_final_response(1500ms);
        if (r && r->status == 503) ++refused;
    }
    CHECK(refused == 28);

    // Another client's new name resolves and is served while those wait.
    RawClient other(proxy.port(), "127.0.0.1", 5s, 0, "127.0.0.3");
    auto start = Clock::now();
    CHECK(ask(other, get_for("ok1.test", ok.port())) == 200);
    CHECK(Clock::now() - start < 3s);
    // And the flooding client, once its lookups are gone, can look up names again.
    flood.clear();
    RawClient same(proxy.port(), "127.0.0.1", 5s, 0, "127.0.0.2");
    CHECK(wait_until([&] { return ask(same, get_for("ok2.test", ok.port())) == 200; }, 3s));
}

TEST_CASE("fair share: a lookup that timed out fails at once for a few seconds") {
    TempDir dir;
    HallpassOptions opts;
    opts.dns_mode = DnsStub::Mode::Silent;
    opts.server_yaml = "dns_timeout_ms: 600";
    Hallpass proxy(dir, opts);
    RawClient c(proxy.port());
    int first = ask(c, get_for("slow.test", 80));
    CHECK((first == 502 || first == 504));
    size_t queries = proxy.dns().queries();
    auto start = Clock::now();
    // The same connection, so the same worker (each worker has its own cache).
    int second = ask(c, get_for("slow.test", 80));
    CHECK(second == 502);
    CHECK(Clock::now() - start < 300ms);
    CHECK(proxy.dns().queries() == queries);
}

TEST_CASE("fair share: at the per-client limit the longest-idle connection makes room") {
    TempDir dir;
    ScriptedOrigin ok;
    ScriptedOrigin silent({ScriptedOrigin::Mode::Silent});
    HallpassOptions opts;
    opts.server_yaml = "max_connections_per_client: 3";
    Hallpass proxy(dir, opts);
    const std::string src = "127.0.0.2";

    std::vector<std::unique_ptr<RawClient>> idle;
    for (int i = 0; i < 3; ++i) {
        idle.push_back(std::make_unique<RawClient>(proxy.port(), "127.0.0.1", 5s, 0, src));
        REQUIRE(ask(*idle.back(), proxy_get(ok.port(), "/")) == 200);
        std::this_thread::sleep_for(50ms);  // idle since different times
    }
    // A fourth connection from the same address is served: the oldest idle one is closed.
    RawClient fourth(proxy.port(), "127.0.0.1", 5s, 0, src);
    CHECK(ask(fourth, proxy_get(ok.port(), "/")) == 200);
    CHECK(idle[0]->wait_closed(2s));
    CHECK(ask(*idle[2], proxy_get(ok.port(), "/")) == 200);
    // Another address was never affected.
    RawClient other(proxy.port(), "127.0.0.1", 5s, 0, "127.0.0.3");
    CHECK(ask(other, proxy_get(ok.port(), "/")) == 200);

    // With every connection busy (waiting for an answer), the next one gets 503.
    // The idle ones close first, and hallpass must have seen them go, so that only the
    // connections opened below count against the limit.
    idle.clear();
    REQUIRE(proxy.wait_for_log_count("closed: client closed", 2));
    std::vector<std::unique_ptr<RawClient>> busy;
    fourth.send(proxy_get(silent.port(), "/wait"));
    for (int i = 0; i < 2; ++i) {
        busy.push_back(std::make_unique<RawClient>(proxy.port(), "127.0.0.1", 5s, 0, src));
        busy.back()->send(proxy_get(silent.port(), "/wait"));
    }
    REQUIRE(silent.wait_for_requests(3));
    RawClient refused(proxy.port(), "127.0.0.1", 5s, 0, src);
    auto r = refused.read_final_response(3s);
    REQUIRE(r);
    CHECK(r->status == 503);
    CHECK(r->body.find("max_connections_per_client") != std::string::npos);
}

TEST_CASE("fair share: at the global limit anyone's idle connection makes room") {
    TempDir dir;
    ScriptedOrigin ok;
    HallpassOptions opts;
    opts.server_yaml = "max_connections: 3";
    Hallpass proxy(dir, opts);
    std::vector<std::unique_ptr<RawClient>> idle;
    for (int i = 0; i < 3; ++i) {
        idle.push_back(std::make_unique<RawClient>(proxy.port(), "127.0.0.1", 5s, 0,
                                                   "127.0.0." + std::to_string(10 + i)));
        REQUIRE(ask(*idle.back(), proxy_get(ok.port(), "/")) == 200);
        std::this_thread::sleep_for(50ms);
    }
    RawClient newcomer(proxy.port(), "127.0.0.1", 5s, 0, "127.0.0.20");
    CHECK(ask(newcomer, proxy_get(ok.port(), "/")) == 200);
    CHECK(idle[0]->wait_closed(2s));
}

TEST_CASE("fair share: per-client counts are exact, address by address") {
    TempDir dir;
    ScriptedOrigin silent({ScriptedOrigin::Mode::Silent});
    ScriptedOrigin ok;
    HallpassOptions opts;
    opts.server_yaml = "max_connections_per_client: 1";
    Hallpass proxy(dir, opts);
    // 200 addresses, each with one busy connection: no one is refused for another's count.
    std::vector<std::unique_ptr<RawClient>> busy;
    for (int i = 0; i < 200; ++i) {
        busy.push_back(std::make_unique<RawClient>(proxy.port(), "127.0.0.1", 5s, 0,
                                                   "127.0.1." + std::to_string(i + 1)));
        busy.back()->send(proxy_get(silent.port(), "/wait"));
    }
    CHECK(silent.wait_for_requests(200, 10s));
    // A second connection from one of them is refused; a fresh address is served.
    RawClient second(proxy.port(), "127.0.0.1", 5s, 0, "127.0.1.7");
    auto r = second.read_final_response(3s);
    REQUIRE(r);
    CHECK(r->status == 503);
    RawClient fresh(proxy.port(), "127.0.0.1", 5s, 0, "127.0.2.1");
    CHECK(ask(fresh, proxy_get(ok.port(), "/")) == 200);
}
