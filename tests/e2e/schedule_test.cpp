// Schedules on the real binary, its clock moved by libfaketime: a rule with `when:` holds inside
// its window and not outside, across midnight, not on a holiday; at the start of a window an
// open CONNECT tunnel and an idle keep-alive connection to what is now blocked are closed within
// about a second (with a log line naming the rule); a reload that blocks what was allowed
// closes its tunnels the same way; --explain tells the schedule's state and the next change.
#include <doctest/doctest.h>

#include "harness.h"

using namespace hallpass::e2e;

namespace {

// 127.0.0.1 is a kid; 127.0.0.2 is not. 2026-12-07 is a Monday, 2026-12-24 a Thursday.
const char* kRules = R"(groups:
  kids: [127.0.0.1]
schedules:
  school-nights:
    windows:
      - { days: [sun, mon, tue, wed, thu], from: "21:00", to: "07:00" }
      - { days: [sat], from: "23:00", to: "08:00" }
    except_dates: ["2026-12-24", "2026-12-31"]
    time_zone: UTC
rules:
  - name: bedtime
    action: block
    clients: kids
    when: school-nights
    message: "It's bedtime. See you in the morning!"
)";

HallpassOptions options(const FakeClock& clock, uint16_t origin_port, const char* rules = kRules) {
    HallpassOptions o;
    o.rules_yaml = rules;
    o.command_prefix = clock.prefix();
    o.server_yaml = "connect_ports: [" + std::to_string(origin_port) + "]";
    o.log_level = "info";
    return o;
}

std::string get(uint16_t origin_port, std::string_view path = "/1k") {
    return proxy_get(origin_port, path, "site.test");
}

std::string connect_to(uint16_t origin_port) {
    const std::string a = "site.test:" + std::to_string(origin_port);
    return "CONNECT " + a + " HTTP/1.1\r\nHost: " + a + "\r\n\r\n";
}

// One GET from `source` on a fresh connection: the response, if one came.
std::optional<HttpResponse> ask(uint16_t proxy_port, uint16_t origin_port,
                                const std::string& source = "127.0.0.1") {
    RawClient c(proxy_port, "127.0.0.1", 5s, 0, source);
    c.send(get(origin_port));
    return c.read_final_response();
}

int status(uint16_t proxy_port, uint16_t origin_port, const std::string& source = "127.0.0.1") {
    auto r = ask(proxy_port, origin_port, source);
    return r ? r->status : 0;
}

// An open tunnel through the proxy to nginx that has carried one request.
struct Tunnel {
    RawClient c;
    Tunnel(uint16_t proxy_port, uint16_t origin_port) : c(proxy_port) {
        c.send(connect_to(origin_port));
        auto established = c.read_response(5s, /*head_request=*/true);
        REQUIRE(established);
        REQUIRE(established->status == 200);
        REQUIRE(works());
    }
    bool works() {
        c.send("GET /1k HTTP/1.1\r\nHost: site.test\r\n\r\n");
        auto r = c.read_final_response();
        return r && r->status == 200;
    }
};

}  // namespace

TEST_CASE("schedule: inside and outside a window, across midnight, and on a holiday") {
    TempDir dir;
    Nginx origin(dir);
    origin.put("1k", std::string(1024, 'x'));
    FakeClock clock(dir, "2026-12-07 20:30:00");
    Hallpass proxy(dir, options(clock, origin.port()));
    CHECK(status(proxy.port(), origin.port()) == 200);  // Monday before 21:00

    clock.set("2026-12-07 21:30:00");
    auto blocked = ask(proxy.port(), origin.port());
    REQUIRE(blocked);
    CHECK(blocked->status == 403);
    CHECK(blocked->header("x-hallpass-rule") == "bedtime");
    // The block page says why, until when, and which device.
    CHECK(contains(blocked->body, "bedtime. See you in the morning!"));
    CHECK(contains(blocked->body, "It opens again at <strong>Tue 07:00</strong>"));
    CHECK(contains(blocked->body, "kids: 127.0.0.1"));
    CHECK(status(proxy.port(), origin.port(), "127.0.0.2") == 200);  // not a kid

    clock.set("2026-12-08 00:00:30");  // after midnight: Monday's window still open
    CHECK(status(proxy.port(), origin.port()) == 403);
    clock.set("2026-12-08 06:59:30");
    CHECK(status(proxy.port(), origin.port()) == 403);
    clock.set("2026-12-08 07:00:30");
    CHECK(status(proxy.port(), origin.port()) == 200);
    clock.set("2026-12-11 22:00:00");  // Friday: no window
    CHECK(status(proxy.port(), origin.port()) == 200);
    clock.set("2026-12-12 23:30:00");  // Saturday's later window
    CHECK(status(proxy.port(), origin.port()) == 403);
    clock.set("2026-12-24 21:30:00");  // a Thursday, but a holiday
    CHECK(status(proxy.port(), origin.port()) == 200);
    clock.set("2026-12-23 21:30:00");  // the Wednesday before is a school night
    CHECK(status(proxy.port(), origin.port()) == 403);
}

TEST_CASE("schedule: a tunnel and an idle keep-alive connection are cut when the window opens") {
    TempDir dir;
    Nginx origin(dir);
    origin.put("1k", std::string(1024, 'x'));
    FakeClock clock(dir, "2026-12-07 20:59:56");
    Hallpass proxy(dir, options(clock, origin.port()));
    Tunnel tunnel(proxy.port(), origin.port());
    RawClient keep_alive(proxy.port());
    keep_alive.send(get(origin.port()));
    auto first = keep_alive.read_final_response();
    REQUIRE(first);
    REQUIRE(first->status == 200);
    RawClient grown_up(proxy.port(), "127.0.0.1", 5s, 0, "127.0.0.2");
    grown_up.send(connect_to(origin.port()));
    auto established = grown_up.read_response(5s, true);
    REQUIRE(established);
    REQUIRE(established->status == 200);

    // 21:00 comes a few seconds later: both kid connections close within about a second.
    CHECK(tunnel.c.wait_closed(10s));
    CHECK(keep_alive.wait_closed(3s));
    CHECK(proxy.wait_for_log("closing tunnel to site.test: now blocked by rule \"bedtime\""));
    CHECK(proxy.wait_for_log("closing idle connection to site.test: now blocked by rule"));
    // The grown-up's tunnel goes on.
    grown_up.send("GET /1k HTTP/1.1\r\nHost: site.test\r\n\r\n");
    auto r = grown_up.read_final_response();
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(status(proxy.port(), origin.port()) == 403);
}

TEST_CASE("schedule: a reload that blocks a tunnel's host closes it; other tunnels go on") {
    TempDir dir;
    Nginx origin(dir);
    origin.put("1k", std::string(1024, 'x'));
    FakeClock clock(dir, "2026-12-07 12:00:00");
    const char* none = "rules: []\n";
    Hallpass proxy(dir, options(clock, origin.port(), none));
    Tunnel site(proxy.port(), origin.port());
    RawClient other(proxy.port());
    const std::string a = "a.test:" + std::to_string(origin.port());
    other.send("CONNECT " + a + " HTTP/1.1\r\nHost: " + a + "\r\n\r\n");
    auto established = other.read_response(5s, true);
    REQUIRE(established);
    REQUIRE(established->status == 200);

    proxy.write_rules("rules:\n  - { name: no-site, action: block, hosts: [site.test] }\n");
    proxy.reload();
    REQUIRE(proxy.wait_for_log("reload ok in ", 10s));
    CHECK(site.c.wait_closed(3s));
    CHECK(proxy.wait_for_log("closing tunnel to site.test: now blocked by rule \"no-site\""));
    other.send("GET /1k HTTP/1.1\r\nHost: a.test\r\n\r\n");
    auto r = other.read_final_response();
    REQUIRE(r);
    CHECK(r->status == 200);
}

TEST_CASE("schedule: --explain tells the schedule's state and the next change") {
    TempDir dir;
    const fs::path config = dir / "rules.yaml";
    write_file(config,
               std::string("server:\n  state_dir: ") + (dir / "state").string() + "\n" + kRules);
    FakeClock clock(dir, "2026-12-07 22:15:00");
    auto explain = [&](const char* client) {
        std::vector<std::string> argv = clock.prefix();
        argv.insert(argv.end(), {hallpass_bin(), "-c", config.string(), "--explain", client,
                                 "http://site.test/"});
        return run(argv);
    };
    auto r = explain("127.0.0.1");
    INFO(r.out, r.err);
    CHECK(r.exit_code == 0);
    CHECK(contains(r.out, "decision: block"));
    CHECK(contains(r.out, "rule: bedtime (rules.yaml:"));
    CHECK(contains(r.out, "when: school-nights (open now)"));
    CHECK(contains(r.out, "message: It's bedtime. See you in the morning!"));
    CHECK(contains(r.out, "blocked by bedtime until Tue 07:00"));
    CHECK(
        contains(r.out, "next change: Tue 07:00: school-nights closes; then allow by the default"));

    clock.set("2026-12-07 18:00:00");
    r = explain("127.0.0.1");
    CHECK(contains(r.out, "decision: allow"));
    CHECK(contains(r.out, "next change: 21:00: school-nights opens; then block by rule bedtime"));
}
