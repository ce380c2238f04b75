// Grants and the whole decision (rules with schedules, safe search, grants) on real rule files.
#include "hallpass/rules/grants.h"

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>

#include "hallpass/rules/policy.h"
#include "hallpass/rules/rules_file.h"
#include "temp_dir.h"

using namespace hallpass;
using hallpass::test::TempDir;

namespace {

// 2026-12-07 (a Monday) at HH:MM UTC.
int64_t monday(int h, int m) { return 1796601600 + h * 3600 + m * 60; }

const char* kFamily = R"(groups:
  kids: [192.168.1.50, 192.168.1.64/27]
schedules:
  school-nights:
    windows:
      - { days: [sun, mon, tue, wed, thu], from: "21:00", to: "07:00" }
    except_dates: ["2026-12-24"]
    time_zone: UTC
rules:
  - name: bedtime
    action: block
    clients: kids
    when: school-nights
    message: "Time for bed!"
  - name: no-social
    action: block
    clients: kids
    domains: [tiktok.com, youtube.com]
safe_search:
  - { clients: kids, google: on, youtube: strict }
  - { google: on, youtube: moderate, bing: on, duckduckgo: on }
)";

struct Family : TempDir {
    std::shared_ptr<const RuleSet> rules;
    Family() : TempDir("hallpass-grants") {
        std::ofstream(path / "rules.yaml") << kFamily;
        auto loaded = load_rules_file((path / "rules.yaml").string());
        INFO((loaded ? std::string() : loaded.error().to_string()));
        REQUIRE(loaded.ok());
        rules = loaded->rules;
    }
    std::string decide(const char* client, const char* host, int64_t now,
                       const GrantSet* grants = nullptr) const {
        RequestFacts f{*IpAddr::parse(client), host, HostKind::Name, 443, "", now};
        Verdict v = decide_request(*rules, grants, f);
        return verdict_name(*rules, v) + (v.blocked() ? ":block" : ":allow");
    }
};

}  // namespace

TEST_CASE("policy: a rule with when: holds only inside its schedule") {
    Family f;
    CHECK(f.decide("192.168.1.50", "example.org", monday(20, 59)) == "default:allow");
    CHECK(f.decide("192.168.1.50", "example.org", monday(21, 0)) == "bedtime:block");
    CHECK(f.decide("192.168.1.70", "example.org", monday(23, 0)) == "bedtime:block");
    CHECK(f.decide("192.168.1.10", "example.org", monday(23, 0)) == "default:allow");
    CHECK(f.decide("192.168.1.50", "www.tiktok.com", monday(12, 0)) == "no-social:block");
    // The block page's words and opening time.
    RequestFacts facts{
        *IpAddr::parse("192.168.1.50"), "example.org", HostKind::Name, 443, "", monday(22, 0)};
    Verdict v = decide_request(*f.rules, nullptr, facts);
    CHECK(verdict_message(*f.rules, v) == "Time for bed!");
    CHECK(verdict_until(*f.rules, v, facts.now_s) == monday(24 + 7, 0));
    CHECK(verdict_until_label(*f.rules, v, facts.now_s) == "Tue 07:00");
    CHECK(f.rules->schedule_state(monday(22, 0)) == 1);
    CHECK(f.rules->schedule_state(monday(12, 0)) == 0);
    // Explain names the schedule and the next change.
    Explanation ex = f.rules->explain(facts);
    CHECK(ex.rule_name == "bedtime");
    CHECK(ex.when == "school-nights (open now)");
    CHECK(ex.until == "Tue 07:00");
    CHECK(ex.next_change == "Tue 07:00: school-nights closes; then allow by the default");
    facts.now_s = monday(20, 0);
    ex = f.rules->explain(facts);
    CHECK(ex.next_change == "21:00: school-nights opens; then block by rule bedtime");
}

TEST_CASE("policy: safe search re-targets search hosts per client, first entry first") {
    Family f;
    auto target = [&](const char* client, const char* host) {
        RequestFacts facts{*IpAddr::parse(client), host, HostKind::Name, 443, "", monday(12, 0)};
        const char* t = f.rules->safe_search_target(facts);
        return std::string(t ? t : "-");
    };
    CHECK(target("192.168.1.50", "www.google.de") == "forcesafesearch.google.com");
    CHECK(target("192.168.1.50", "www.youtube.com") == "restrict.youtube.com");
    CHECK(target("192.168.1.50", "www.bing.com") == "-");  // the kids' entry leaves Bing alone
    CHECK(target("192.168.1.10", "www.youtube.com") == "restrictmoderate.youtube.com");
    CHECK(target("192.168.1.10", "www.bing.com") == "strict.bing.com");
    CHECK(target("192.168.1.10", "duckduckgo.com") == "safe.duckduckgo.com");
    CHECK(target("192.168.1.10", "example.org") == "-");
}

TEST_CASE("grants: an exception beats the rules, a pause beats everything, both expire") {
    Family f;
    GrantStore store("");
    const int64_t now = monday(12, 0);
    GrantRequest more{Action::Allow, {"kids"}, {"youtube.com"}, 1800, ""};
    auto g = store.add(more, *f.rules, now);
    REQUIRE(g.ok());
    CHECK(g->id == 1);
    CHECK(g->expires_s == now + 1800);
    auto set = store.current();
    CHECK(f.decide("192.168.1.50", "www.youtube.com", now, set.get()) == "grant 1:allow");
    CHECK(f.decide("192.168.1.50", "www.tiktok.com", now, set.get()) == "no-social:block");
    CHECK(f.decide("192.168.1.50", "www.youtube.com", now + 1800, set.get()) == "no-social:block");
    GrantRequest pause{Action::Block, {"192.168.1.50"}, {}, 3600, "Dinner time"};
    REQUIRE(store.add(pause, *f.rules, now).ok());
    set = store.current();
    CHECK(f.decide("192.168.1.50", "www.youtube.com", now, set.get()) == "grant 2:block");
    CHECK(f.decide("192.168.1.70", "www.youtube.com", now, set.get()) == "grant 1:allow");
    CHECK(f.decide("192.168.1.51", "example.org", now, set.get()) == "default:allow");
    RequestFacts facts{*IpAddr::parse("192.168.1.50"), "example.org", HostKind::Name, 443, "", now};
    Verdict v = decide_request(*f.rules, set.get(), facts);
    CHECK(verdict_message(*f.rules, v) == "Dinner time");
    CHECK(verdict_until(*f.rules, v, now) == now + 3600);
    const uint64_t before = set->state(now);
    CHECK(set->state(now + 1800) != before);  // the exception ended
    CHECK(store.list(now).size() == 2);
    CHECK(store.list(now + 1800).size() == 1);
    auto revoked = store.revoke(2, now);
    REQUIRE(revoked.ok());
    CHECK(*revoked);
    CHECK_FALSE(*store.revoke(2, now));
    CHECK(f.decide("192.168.1.50", "example.org", now, store.current().get()) == "default:allow");
}

TEST_CASE("grants: requests are checked") {
    Family f;
    GrantStore store("");
    const int64_t now = monday(12, 0);
    auto error = [&](GrantRequest r) {
        auto g = store.add(r, *f.rules, now);
        REQUIRE_FALSE(g.ok());
        return g.error().message;
    };
    CHECK(error({Action::Allow, {"teens"}, {"youtube.com"}, 600, ""}).find("neither a group") !=
          std::string::npos);
    CHECK(error({Action::Allow, {"kids"}, {}, 600, ""}).find("names domains") != std::string::npos);
    CHECK(error({Action::Allow, {"kids"}, {"not a name"}, 600, ""}).find("not a domain") !=
          std::string::npos);
    CHECK(error({Action::Block, {"kids"}, {}, 30, ""}).find("1 minute to 7 days") !=
          std::string::npos);
    CHECK(error({Action::Block, {}, {}, 600, ""}).find("needs clients") != std::string::npos);
    CHECK(store.add({Action::Block, {"10.0.0.0/8"}, {}, 600, ""}, *f.rules, now).ok());
}

TEST_CASE("grants: the file keeps them across a restart, without the expired ones") {
    Family f;
    const std::string file = (f.path / "state" / "grants.json").string();
    const int64_t now = monday(12, 0);
    {
        GrantStore store(file);
        REQUIRE(store
                    .add({Action::Allow, {"kids"}, {"YouTube.com"}, 1800, "homework \"video\""},
                         *f.rules, now)
                    .ok());
        REQUIRE(store.add({Action::Block, {"192.168.1.50"}, {}, 60, ""}, *f.rules, now).ok());
    }
    GrantStore again(file);
    REQUIRE(again.load(now + 120).ok());
    auto grants = again.list(now + 120);
    REQUIRE(grants.size() == 1);
    CHECK(grants[0].id == 1);
    CHECK(grants[0].domains == std::vector<std::string>{"youtube.com"});
    CHECK(grants[0].note == "homework \"video\"");
    CHECK(grants[0].expires_s == now + 1800);
    // Ids are not reused after a restart.
    auto next = again.add({Action::Block, {"kids"}, {}, 600, ""}, *f.rules, now + 120);
    REQUIRE(next.ok());
    CHECK(next->id == 3);
    std::ofstream(file) << "{not json";
    GrantStore damaged(file);
    CHECK_FALSE(damaged.load(now).ok());
}
