// SIGTERM and SIGINT: stop accepting at once, let in-flight exchanges finish within
// shutdown_grace_ms, cut off what is still running after it, and exit 0.
#include <doctest/doctest.h>
#include <signal.h>

#include "harness.h"

using namespace hallpass::e2e;

namespace {

Ms since(Clock::time_point start) { return std::chrono::duration_cast<Ms>(Clock::now() - start); }

bool refuses_connections(uint16_t port) {
    return RawClient::try_connect(port, "127.0.0.1", 500ms) == ECONNREFUSED;
}

}  // namespace

TEST_CASE("shutdown: SIGTERM lets an in-flight download finish, refuses new clients, exits 0") {
    TempDir dir;
    Nginx origin(dir);
    const std::string body = random_bytes(200 * 1024, 51);
    origin.put("slow/200k", body);  // served at 100 KiB/s: about two seconds
    HallpassOptions opts;
    opts.server_yaml = "shutdown_grace_ms: 10000";
    Hallpass proxy(dir, opts);

    RawClient c(proxy.port());
    c.send(proxy_get(origin.port(), "/slow/200k", "site.test"));
    REQUIRE(c.fill([](const std::string& b) { return contains(b, "\r\n\r\n"); }, 5s) ==
            RawClient::End::Ok);

    auto start = Clock::now();
    proxy.process().signal(SIGTERM);
    CHECK(wait_until([&] { return refuses_connections(proxy.port()); }, 3s));
    CHECK(proxy.running());  // still relaying the download

    auto r = c.read_final_response(15s);
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->body.size() == body.size());
    CHECK(r->body == body);
    // The download really was in flight when the signal came (about 2 s at 100 KiB/s; nginx
    // sends the first part at once, so allow for that).
    CHECK(since(start) >= 500ms);

    auto status = proxy.process().wait_for(5s);
    REQUIRE_MESSAGE(status, "hallpass still running 5 s after its last exchange ended");
    CHECK(*status == 0);
}

TEST_CASE("shutdown: SIGINT on an idle proxy exits 0 promptly") {
    TempDir dir;
    Hallpass proxy(dir);
    auto start = Clock::now();
    proxy.process().signal(SIGINT);
    auto status = proxy.process().wait_for(5s);
    REQUIRE(status);
    CHECK(*status == 0);
    CHECK(since(start) < 2s);
}

TEST_CASE("shutdown: idle keep-alive clients do not hold up the exit") {
    TempDir dir;
    Nginx origin(dir);
    origin.put("1k", "ok");
    HallpassOptions opts;
    opts.server_yaml = "shutdown_grace_ms: 10000";
    Hallpass proxy(dir, opts);

    RawClient idle(proxy.port());
    idle.send(proxy_get(origin.port(), "/1k"));
    REQUIRE(idle.read_final_response());
    RawClient silent(proxy.port());  // connected, never sent a byte

    auto start = Clock::now();
    CHECK(proxy.stop(8s) == 0);
    CHECK(since(start) < 3s);
    CHECK(idle.wait_closed(1s));
    CHECK(silent.wait_closed(1s));
}

TEST_CASE("shutdown: an exchange outliving shutdown_grace_ms is cut off, exit is still 0") {
    TempDir dir;
    ScriptedOrigin silent({ScriptedOrigin::Mode::Silent});
    HallpassOptions opts;
    opts.server_yaml = "shutdown_grace_ms: 500\nresponse_timeout_ms: 60000";
    Hallpass proxy(dir, opts);

    RawClient c(proxy.port());
    c.send(proxy_get(silent.port(), "/forever"));
    REQUIRE(silent.wait_for_requests(1));

    auto start = Clock::now();
    CHECK(proxy.stop(8s) == 0);
    CHECK(since(start) >= 400ms);
    CHECK(since(start) < 4s);
    CHECK(c.wait_closed(2s));
}
