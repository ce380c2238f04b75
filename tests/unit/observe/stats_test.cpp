// stats: the Space-Saving sketch, the per-minute ring, the per-worker sum, and the two renderings
// (Prometheus exposition checked line by line, JSON checked for syntax).
#include "hallpass/observe/stats.h"

#include <doctest/doctest.h>

#include <thread>

#include "exposition_check.h"
#include "json_check.h"

using namespace hallpass;

namespace {

Transaction txn(std::string host, Transaction::Kind kind = Transaction::Kind::Relayed,
                int64_t elapsed_ms = 3, std::string client = "10.0.0.1") {
    Transaction t;
    t.kind = kind;
    t.host = std::move(host);
    t.client = *IpAddr::parse(client);
    t.start_unix_ms = unix_now_ms() - elapsed_ms;  // it has ended by now, as a real record
    t.elapsed_ms = elapsed_ms;
    t.status = kind == Transaction::Kind::Blocked ? 403 : 200;
    t.rule = kind == Transaction::Kind::Blocked ? "block-social" : "default";
    t.bytes_from_client = 100;
    t.bytes_to_client = 1000;
    return t;
}

}  // namespace

TEST_CASE("stats: Space-Saving finds a heavy hitter in a stream of distinct keys, memory bounded") {
    SpaceSaving sketch(16);
    // 10,000 distinct one-off keys with "heavy.test" every 10th item: 1,000 of 11,000 (>1/16).
    for (int i = 0; i < 10'000; ++i) {
        sketch.add(std::to_string(i) + ".k.test");
        if (i % 10 == 0) sketch.add("heavy.test");
    }
    CHECK(sketch.size() == 16);
    auto top = sketch.top(1);
    REQUIRE(top.size() == 1);
    CHECK(top[0].key == "heavy.test");
    // The count is an upper bound and count - error a lower bound of the true 1,000.
    CHECK(top[0].count >= 1000);
    CHECK(top[0].count - top[0].error <= 1000);
}

TEST_CASE("stats: Space-Saving counts exactly while under capacity, largest first") {
    SpaceSaving sketch(8);
    for (int i = 0; i < 5; ++i) sketch.add("a");
    for (int i = 0; i < 3; ++i) sketch.add("b");
    sketch.add("c", 4);
    auto top = sketch.top(10);
    REQUIRE(top.size() == 3);
    CHECK(top[0].key == "a");
    CHECK(top[0].count == 5);
    CHECK(top[1].key == "c");
    CHECK(top[2].key == "b");
    CHECK(top[2].error == 0);
}

TEST_CASE("stats: merge_top sums the workers' sketches key by key") {
    SpaceSaving a(8), b(8);
    a.add("x", 3);
    a.add("y", 1);
    b.add("x", 2);
    b.add("z", 4);
    auto top = merge_top({&a, &b}, 2);
    REQUIRE(top.size() == 2);
    CHECK(top[0].key == "x");
    CHECK(top[0].count == 5);
    CHECK(top[1].key == "z");
}

TEST_CASE("stats: the minute ring keeps 24 hours and wraps") {
    MinuteRing ring;
    const int64_t start = 29'000'000;  // some minute
    for (int64_t m = start; m < start + 2000; ++m) ring.add(m, m % 2 == 0);
    const int64_t now = start + 1999;
    auto points = ring.points(now);
    CHECK(points.size() == kMinutes);
    CHECK(points.front().minute == now - static_cast<int64_t>(kMinutes) + 1);
    CHECK(points.back().minute == now);
    // A slot reused for a later minute starts from zero.
    ring.add(now + kMinutes, true);
    auto later = ring.points(now + kMinutes);
    REQUIRE(later.size() == 1);
    CHECK(later[0].requests == 1);
    CHECK(later[0].blocked == 1);
}

TEST_CASE("stats: merge_minutes adds workers by minute and drops minutes older than a day") {
    std::vector<MinutePoint> w0 = {{100, 2, 1}, {101, 1, 0}};
    std::vector<MinutePoint> w1 = {{101, 3, 3}, {2000, 1, 0}, {1550, 7, 0}};
    auto merged = merge_minutes({w0, w1}, 1560);
    REQUIRE(merged.size() == 1);  // 100 and 101 are 1440+ minutes before 1560; 2000 is ahead
    CHECK(merged[0].minute == 1550);
    auto all = merge_minutes({w0, w1}, 1500);
    REQUIRE(all.size() == 2);
    CHECK(all[1].minute == 101);
    CHECK(all[1].requests == 4);
    CHECK(all[1].blocked == 3);
}

TEST_CASE("stats: named counters are capped, the rest counts under (other)") {
    NamedCounters c;
    for (size_t i = 0; i < kNamedCounterCap + 50; ++i) c.add("rule-" + std::to_string(i));
    CHECK(c.counts().size() == kNamedCounterCap + 1);
    CHECK(c.counts().at("(other)") == 50);
}

TEST_CASE("stats: workers are summed; sketches appear once published") {
    Stats stats({.workers = 2,
                 .version = "1.2.3",
                 .rules_file = "/etc/hallpass/rules.yaml",
                 .top_n = 20,
                 .client_connections = nullptr});
    std::thread w0([&] {
        for (int i = 0; i < 30; ++i) stats.record(0, txn("site.test"));
        stats.record(0, txn("ads.test", Transaction::Kind::Blocked));
    });
    std::thread w1([&] {
        for (int i = 0; i < 20; ++i)
            stats.record(1, txn("site.test", Transaction::Kind::Relayed, 3, "10.0.0.2"));
        stats.record(1, txn("a.test", Transaction::Kind::Tunnel, 7000));
    });
    w0.join();
    w1.join();

    StatsSnapshot before = stats.snapshot();
    CHECK(before.requests_total == 52);  // counters are live
    CHECK(before.top_hosts.empty());     // sketches wait for publish()

    stats.publish(0);
    stats.publish(1);
    StatsSnapshot s = stats.snapshot();
    CHECK(s.requests_total == 52);
    CHECK(s.blocked == 1);
    CHECK(s.requests[static_cast<size_t>(Transaction::Kind::Relayed)] == 50);
    CHECK(s.requests[static_cast<size_t>(Transaction::Kind::Tunnel)] == 1);
    CHECK(s.bytes_in == 5200);
    CHECK(s.bytes_out == 52000);
    CHECK(s.status_classes[2] == 51);
    CHECK(s.status_classes[4] == 1);
    REQUIRE(!s.top_hosts.empty());
    CHECK(s.top_hosts[0].key == "site.test");
    CHECK(s.top_hosts[0].count == 50);
    REQUIRE(s.top_blocked_hosts.size() == 1);
    CHECK(s.top_blocked_hosts[0].key == "ads.test");
    REQUIRE(s.top_clients.size() == 2);
    CHECK(s.top_clients[0].key == "10.0.0.1");
    CHECK(s.top_clients[0].count == 32);
    REQUIRE(s.rule_hits.size() == 2);
    CHECK(s.rule_hits[0] == std::pair<std::string, uint64_t>{"default", 51});
    REQUIRE(s.minutes.size() >= 1);
    uint64_t requests = 0;
    for (const auto& m : s.minutes) requests += m.requests;
    CHECK(requests == 52);
    // Latency: 3 ms -> the le=5 ms bucket (index 2), 7000 ms -> le=10 s (index 12).
    CHECK(s.latency_buckets[2] == 51);
    CHECK(s.latency_buckets[12] == 1);
    CHECK(s.latency_count == 52);
    CHECK(s.latency_sum_s == doctest::Approx(7.153));
}

TEST_CASE("stats: gauges and reload results") {
    std::atomic<int> clients{3};
    Stats::Options options;
    options.workers = 2;
    options.client_connections = &clients;
    Stats stats(options);
    stats.set_connection_gauges(0, 1, 1);
    stats.set_connection_gauges(1, 5, 0);
    stats.set_connection_gauges(1, 1, 0);  // replaces the last value
    stats.count_refused(0, 403);
    stats.count_refused(1, 503);
    stats.count_refused(1, 503);
    stats.note_reload(true, "");
    stats.note_reload(false, "rules.yaml:3:1: unknown key \"rulez\"");
    auto s = stats.snapshot();
    CHECK(s.client_connections == 3);
    CHECK(s.upstream_connections == 2);
    CHECK(s.tunnels == 1);
    CHECK(s.refused_not_allowed == 1);
    CHECK(s.refused_overloaded == 2);
    CHECK(s.reloads_ok == 1);
    CHECK(s.reloads_failed == 1);
    CHECK_FALSE(s.last_reload_ok);
    CHECK(s.last_reload_message == "rules.yaml:3:1: unknown key \"rulez\"");
    CHECK(s.last_reload_unix_ms > 0);
}

TEST_CASE("stats: label values and JSON strings are escaped") {
    CHECK(escape_label_value("a\"b\\c\nd") == "a\\\"b\\\\c\\nd");
    CHECK(escape_json("a\"b\\c\nd\x01") == "a\\\"b\\\\c\\nd\\u0001");
}

namespace {

StatsSnapshot busy_snapshot() {
    Stats stats({.workers = 2,
                 .version = "0.1.0",
                 .rules_file = "/x/rules \"q\".yaml",
                 .top_n = 20,
                 .client_connections = nullptr});
    for (int i = 0; i < 10; ++i)
        stats.record(0, txn("site.test", Transaction::Kind::Relayed, i * 40));
    Transaction odd = txn("odd.test", Transaction::Kind::Blocked);
    odd.rule = "weird \"rule\" \\ name\nline2";
    stats.record(1, odd);
    Transaction failed = txn("down.test", Transaction::Kind::Local, 12);
    failed.status = 502;
    failed.error = "connect: Connection refused";
    failed.dns_ms = 1;
    stats.record(1, failed);
    stats.note_reload(false, "bad\nthing");
    stats.publish(0);
    stats.publish(1);
    return stats.snapshot();
}

}  // namespace

TEST_CASE("stats: /metrics is valid exposition format and carries the counts") {
    StatsSnapshot s = busy_snapshot();
    std::string text = render_prometheus(s);
    std::vector<exposition::Sample> samples;
    auto problems = exposition::check(text, &samples);
    INFO(text);
    for (const auto& p : problems) FAIL_CHECK(p);
    using exposition::value_of;
    CHECK(value_of(samples, "hallpass_requests_total", {{"kind", "relayed"}}) == 10);
    CHECK(value_of(samples, "hallpass_requests_total", {{"kind", "blocked"}}) == 1);
    CHECK(value_of(samples, "hallpass_blocked_total") == 1);
    CHECK(value_of(samples, "hallpass_errors_total", {{"kind", "bad_gateway"}}) == 1);
    CHECK(value_of(samples, "hallpass_rule_hits_total",
                   {{"rule", "weird \"rule\" \\ name\nline2"}}) == 1);
    CHECK(value_of(samples, "hallpass_dns_cache_misses_total") == 1);
    CHECK(value_of(samples, "hallpass_reloads_total", {{"result", "failed"}}) == 1);
    CHECK(value_of(samples, "hallpass_build_info", {{"version", "0.1.0"}}) == 1);
    CHECK(value_of(samples, "hallpass_request_duration_seconds_bucket", {{"le", "+Inf"}}) == 12);
    CHECK(value_of(samples, "hallpass_request_duration_seconds_count") == 12);
    CHECK(value_of(samples, "hallpass_request_duration_seconds_bucket", {{"le", "0.1"}}) == 5);
}

TEST_CASE("stats: the exposition checker itself rejects broken input") {
    SUBCASE("sample before TYPE") { CHECK(!exposition::check("x_total 1\n").empty()); }
    SUBCASE("counter without _total") {
        CHECK(!exposition::check("# HELP x h\n# TYPE x counter\nx 1\n").empty());
    }
    SUBCASE("bad escape") {
        CHECK(!exposition::check("# HELP x h\n# TYPE x gauge\nx{a=\"\\t\"} 1\n").empty());
    }
    SUBCASE("histogram not ending at +Inf") {
        CHECK(!exposition::check("# HELP h h\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\n"
                                 "h_count 1\n")
                   .empty());
    }
    SUBCASE("non-cumulative buckets") {
        CHECK(!exposition::check("# HELP h h\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\n"
                                 "h_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n")
                   .empty());
    }
    SUBCASE("a valid one") {
        CHECK(exposition::check("# HELP h h\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\n"
                                "h_bucket{le=\"+Inf\"} 2\nh_sum 1.5\nh_count 2\n")
                  .empty());
    }
}

TEST_CASE("stats: /stats.json is valid JSON with every section") {
    StatsSnapshot s = busy_snapshot();
    std::string json = render_stats_json(s);
    INFO(json);
    CHECK(json_check::valid(json));
    for (const char* key :
         {"\"version\":\"0.1.0\"", "\"uptime_s\":", "\"requests\":{\"total\":12", "\"blocked\":1",
          "\"top_hosts\":[{\"key\":\"site.test\",\"count\":10",
          "\"top_blocked_hosts\":[{\"key\":\"odd.test\"",
          "\"top_clients\":", "\"rule_hits\":", "\"minutes\":[[",
          "\"reloads\":{\"ok\":0,\"failed\":1", "\"last_message\":\"bad\\nthing\"",
          "\"rules_file\":\"/x/rules \\\"q\\\".yaml\"", "\"latency\":{\"bounds_ms\":[1,2,5"})
        CHECK_MESSAGE(json.find(key) != std::string::npos, key);
    CHECK_FALSE(json_check::valid("{\"a\":1,}"));
    CHECK_FALSE(json_check::valid("{\"a\":\"x\ny\"}"));
}

TEST_CASE("stats: error kinds are few, named by status, never by the free-text reason") {
    Transaction t;
    CHECK(error_kind(t) == nullptr);
    t.error = "dns lookup failed for nowhere.test";
    t.status = 502;
    CHECK(std::string(error_kind(t)) == "bad_gateway");
    t.status = 0;
    CHECK(std::string(error_kind(t)) == "no_response");
    t.status = 200;
    CHECK(std::string(error_kind(t)) == "cut_short");
    t.status = 418;
    CHECK(std::string(error_kind(t)) == "other_4xx");
}
