#include "hallpass/rules/rule_set.h"

#include <doctest/doctest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

#include "hallpass/rules/rules_file.h"

using namespace hallpass;

namespace {

// Writes rules.yaml (and any extra files) into a temp dir and compiles it.
struct Rules {
    std::filesystem::path dir;
    std::shared_ptr<const RuleSet> set;

    explicit Rules(const std::string& yaml,
                   std::vector<std::pair<std::string, std::string>> files = {}) {
        char tmpl[] = "/tmp/hallpass-ruleset-XXXXXX";
        dir = mkdtemp(tmpl);
        for (const auto& [name, text] : files) std::ofstream(dir / name) << text;
        std::ofstream(dir / "rules.yaml") << yaml;
        auto loaded = load_rules_file((dir / "rules.yaml").string());
        INFO((loaded ? std::string() : loaded.error().to_string()));
        REQUIRE(loaded.ok());
        set = loaded->rules;
    }
    ~Rules() { std::filesystem::remove_all(dir); }

    // The deciding rule's name, "default:allow" or "default:block".
    std::string decide(const char* client, const char* host, uint16_t port = 80,
                       const char* url = "") const {
        auto canonical = canonicalize_host(host);
        REQUIRE(canonical.ok());
        RequestFacts f{*IpAddr::parse(client), canonical->host, canonical->kind, port, url};
        Decision d = set->decide(f);
        std::string action = d.action == Action::Block ? "block" : "allow";
        if (d.rule < 0) return "default:" + action;
        return set->rule_name(d.rule) + ":" + action;
    }
};

const char* kExample = R"(default: allow
groups:
  kids: [192.168.1.50, 192.168.1.64/27, "fd00:1::/64"]
lists:
  ads: { file: ads.txt }
rules:
  - name: banned-device
    action: block
    clients: [192.168.1.66]
  - name: homework-sites
    action: allow
    clients: kids
    domains: [khanacademy.org]
  - name: kids-social
    action: block
    clients: kids
    domains: [tiktok.com, instagram.com, bücher.example]
    hosts: [games.example.net, 10.9.9.9]
    host_regex: ['(^|\.)casino[0-9]*\.']
    url_regex: ['^http://[^/]+/ads/']
    lists: [ads]
    ports: [80, 443]
  - name: everyone-ads
    action: block
    lists: [ads]
  - name: lan-admin
    action: block
    dest_nets: [10.0.0.0/8, "fd00:99::/32"]
)";
const char* kAds = "# ads\nads.example\n0.0.0.0 tracker.example.org\n||banners.example^\n";

}  // namespace

TEST_CASE("rule_set: first match in file order, groups, domains vs hosts, lists, regexes") {
    Rules r(kExample, {{"ads.txt", kAds}});
    struct Row {
        const char* client;
        const char* host;
        uint16_t port;
        const char* url;
        const char* expected;
    };
    const Row rows[] = {
        // The banned device is blocked everywhere, before any other rule.
        {"192.168.1.66", "khanacademy.org", 80, "", "banned-device:block"},
        {"192.168.1.66", "example.com", 443, "", "banned-device:block"},
        // An allow rule earlier in the file wins over a later block.
        {"192.168.1.50", "www.khanacademy.org", 443, "", "homework-sites:allow"},
        // Group membership: a /27 and an IPv6 /64.
        {"192.168.1.70", "www.tiktok.com", 443, "", "kids-social:block"},
        {"fd00:1::5", "tiktok.com", 80, "", "kids-social:block"},
        {"192.168.1.96", "www.tiktok.com", 443, "", "default:allow"},
        // domains match the domain and subdomains, at label boundaries only.
        {"192.168.1.50", "nottiktok.com", 80, "", "default:allow"},
        {"192.168.1.50", "a.b.instagram.com", 80, "", "kids-social:block"},
        // hosts match the exact name only.
        {"192.168.1.50", "games.example.net", 80, "", "kids-social:block"},
        {"192.168.1.50", "x.games.example.net", 80, "", "default:allow"},
        {"192.168.1.50", "10.9.9.9", 80, "", "kids-social:block"},
        // ports must hold too.
        {"192.168.1.50", "www.tiktok.com", 8080, "", "default:allow"},
        // host_regex: unanchored, case-insensitive (hosts arrive canonical).
        {"192.168.1.50", "www.casino77.net", 443, "", "kids-social:block"},
        {"192.168.1.50", "casinoroyale.net", 443, "", "default:allow"},
        // url_regex: over the full URL (HTTP only).
        {"192.168.1.50", "site.example", 80, "http://site.example/ads/x.js", "kids-social:block"},
        {"192.168.1.50", "site.example", 80, "http://site.example/news/", "default:allow"},
        // Canonical forms: case, trailing dot, IDN in Unicode and in punycode.
        {"192.168.1.50", "WWW.TikTok.COM.", 80, "", "kids-social:block"},
        {"192.168.1.50", "xn--bcher-kva.example", 80, "", "kids-social:block"},
        {"192.168.1.50", "shop.bücher.example", 80, "", "kids-social:block"},
        // Lists: kids are caught by their rule first, others by the later rule.
        {"192.168.1.50", "x.ads.example", 443, "", "kids-social:block"},
        {"10.0.0.1", "x.ads.example", 443, "", "everyone-ads:block"},
        {"10.0.0.1", "tracker.example.org", 80, "", "everyone-ads:block"},
        {"10.0.0.1", "banners.example", 80, "", "everyone-ads:block"},
        {"10.0.0.1", "example.org", 80, "", "default:allow"},
        // dest_nets for IP-literal destinations, IPv4 and IPv6.
        {"10.0.0.1", "10.1.2.3", 80, "", "lan-admin:block"},
        {"10.0.0.1", "fd00:99::1", 443, "", "lan-admin:block"},
        {"10.0.0.1", "11.1.2.3", 80, "", "default:allow"},
    };
    for (const Row& row : rows) {
        SUBCASE((std::string(row.client) + " " + row.host + " " + row.url).c_str()) {
            CHECK(r.decide(row.client, row.host, row.port, row.url) == row.expected);
        }
    }
}

TEST_CASE("rule_set: the default applies when nothing matches, and can be block") {
    Rules r(
        "default: block\nrules:\n  - name: ok\n    action: allow\n    domains: [good.example]\n");
    CHECK(r.decide("10.0.0.1", "good.example") == "ok:allow");
    CHECK(r.decide("10.0.0.1", "bad.example") == "default:block");
    Rules empty("");
    CHECK(empty.decide("10.0.0.1", "any.example") == "default:allow");
}

TEST_CASE("rule_set: a rule with no conditions matches everything") {
    Rules r(
        "rules:\n  - {name: a, action: allow, domains: [x.example]}\n  - {name: all, action: "
        "block}\n"
        "  - {name: never, action: allow}\n");
    CHECK(r.decide("10.0.0.1", "x.example") == "a:allow");
    CHECK(r.decide("10.0.0.1", "y.example") == "all:block");
}

TEST_CASE("rule_set: explain names the rule, the condition and the entry with positions") {
    Rules r(kExample, {{"ads.txt", kAds}});
    auto explain = [&](const char* client, const char* host, uint16_t port, const char* url) {
        auto canonical = canonicalize_host(host);
        RequestFacts f{*IpAddr::parse(client), canonical->host, canonical->kind, port, url};
        return r.set->explain(f);
    };
    Explanation e = explain("192.168.1.50", "www.tiktok.com", 443, "");
    CHECK(e.decision.action == Action::Block);
    CHECK(e.rule_name == "kids-social");
    CHECK(e.rule_where == "rules.yaml:14:5");
    CHECK(e.condition == "domains");
    CHECK(e.entry == "tiktok.com");
    CHECK(e.entry_where == "rules.yaml:17:15");

    e = explain("10.0.0.1", "a.tracker.example.org", 443, "");
    CHECK(e.rule_name == "everyone-ads");
    CHECK(e.condition == "lists");
    CHECK(e.entry == "ads");
    CHECK(e.entry_where == "ads.txt:3: tracker.example.org");

    e = explain("192.168.1.66", "x.example", 80, "");
    CHECK(e.rule_name == "banned-device");
    CHECK(e.condition == "clients");
    CHECK(e.entry == "192.168.1.66");

    e = explain("192.168.1.50", "site.example", 80, "http://site.example/ads/1");
    CHECK(e.condition == "url_regex");
    CHECK(e.entry == "^http://[^/]+/ads/");

    e = explain("10.0.0.1", "nothing.example", 80, "");
    CHECK(e.decision.rule == -1);
    CHECK(e.decision.action == Action::Allow);
    CHECK(e.rule_name.empty());
}

TEST_CASE("rule_set: block page fills the template and escapes values") {
    BlockPage p{
        .host = "a<b>.example", .rule = "r\"1", .client = "10.0.0.1", .url = "http://x/?a&b"};
    std::string page = make_block_response("<p>{{host}} by {{rule}} for {{client}} at {{url}}</p>",
                                           p, true, false);
    CHECK(page.starts_with("HTTP/1.1 403 Forbidden\r\n"));
    CHECK(page.find("X-Hallpass-Rule: r\"1\r\n") != std::string::npos);
    CHECK(page.find("Connection: close") == std::string::npos);
    CHECK(page.find("<p>a&lt;b&gt;.example by r&quot;1 for 10.0.0.1 at http://x/?a&amp;b</p>") !=
          std::string::npos);
    BlockPage b{.host = "tiktok.com", .rule = "kids-social", .client = "10.0.0.1"};
    std::string builtin = make_block_response("", b, false, false);
    CHECK(builtin.find("tiktok.com") != std::string::npos);
    CHECK(builtin.find("kids-social") != std::string::npos);
    CHECK(builtin.find("Connection: close\r\n") != std::string::npos);
    // Without a message or an opening time, those lines are hidden.
    CHECK(builtin.find("class=\"message empty\"") != std::string::npos);
    CHECK(builtin.find("class=\"until empty\"") != std::string::npos);
    std::string head =
        make_block_response("", BlockPage{.host = "h", .rule = "r", .client = "c"}, true, true);
    CHECK(head.ends_with("\r\n\r\n"));
}

TEST_CASE("rule_set: the built-in block page says the message, the opening time and the device") {
    BlockPage p{.host = "tiktok.com",
                .rule = "bedtime",
                .client = "192.168.1.50",
                .group = "kids",
                .message = "Time for bed <3",
                .until = "07:00"};
    std::string page = make_block_response("", p, true, false);
    CHECK(page.find("<p class=\"message\">Time for bed &lt;3</p>") != std::string::npos);
    CHECK(page.find("It opens again at <strong>07:00</strong>") != std::string::npos);
    CHECK(page.find("class=\"until\"") != std::string::npos);
    CHECK(page.find("kids: 192.168.1.50") != std::string::npos);
    std::string custom = make_block_response("{{group}}|{{message}}|{{until}}", p, true, false);
    CHECK(custom.ends_with("kids|Time for bed &lt;3|07:00"));
}

TEST_CASE("rule_set: a reload keeps unchanged regex sets (warm DFA) and maps them to new rules") {
    Rules before(kExample, {{"ads.txt", kAds}});
    // A new rule inserted first shifts every rule index; the patterns stay the same.
    std::string changed = kExample;
    changed.replace(changed.find("rules:\n"), 7,
                    "rules:\n  - name: new-first\n    action: block\n    hosts: [new.example]\n");
    std::ofstream(before.dir / "rules2.yaml") << changed;
    auto reloaded = load_rules_file((before.dir / "rules2.yaml").string(), before.set.get());
    REQUIRE(reloaded.ok());
    const RuleSet& next = *reloaded->rules;
    CHECK(next.regexes_shared_with(*before.set));
    auto decide = [&](const char* host, const char* url) {
        auto c = canonicalize_host(host);
        RequestFacts f{*IpAddr::parse("192.168.1.70"), c->host, c->kind, 80, url};
        Decision d = next.decide(f);
        return d.rule < 0 ? std::string("default") : next.rule_name(d.rule);
    };
    CHECK(decide("casino7.example.com", "") == "kids-social");
    CHECK(decide("plain.example.com", "http://plain.example.com/ads/x") == "kids-social");
    CHECK(decide("new.example", "") == "new-first");

    // A changed pattern compiles a new set; an unchanged group is still shared.
    std::string other = kExample;
    other.replace(other.find("casino"), 6, "poker");
    std::ofstream(before.dir / "rules3.yaml") << other;
    auto third = load_rules_file((before.dir / "rules3.yaml").string(), before.set.get());
    REQUIRE(third.ok());
    CHECK(third->rules->regexes_shared_with(*before.set));  // url_regex unchanged
    auto c = canonicalize_host("poker1.example.com");
    RequestFacts f{*IpAddr::parse("192.168.1.70"), c->host, c->kind, 80, ""};
    CHECK(third->rules->decide(f).action == Action::Block);
    auto fresh = load_rules_file((before.dir / "rules.yaml").string());
    REQUIRE(fresh.ok());
    CHECK_FALSE(fresh->rules->regexes_shared_with(*before.set));
}

TEST_CASE("rule_set: regex groups are consulted only when they can still win, in file order") {
    Rules r(R"(rules:
  - name: regex-first
    action: allow
    host_regex: ['^early\.']
  - name: domain
    action: block
    domains: [example.com]
  - name: regex-late
    action: allow
    host_regex: ['casino']
    url_regex: ['/late/']
  - name: kids-only-domain
    action: block
    clients: [10.0.0.0/8]
    domains: [casino.example.org]
)");
    // A host regex earlier than the domain rule still wins.
    CHECK(r.decide("192.168.1.2", "early.example.com") == "regex-first:allow");
    // The domain rule comes before every later regex: the later regexes cannot change this.
    CHECK(r.decide("192.168.1.2", "casino.example.com", 80, "http://casino.example.com/late/") ==
          "domain:block");
    // A domain rule whose clients do not hold does not bound the search.
    CHECK(r.decide("192.168.1.2", "casino.example.org") == "regex-late:allow");
    CHECK(r.decide("192.168.1.2", "x.example.org", 80, "http://x.example.org/late/") ==
          "regex-late:allow");
    CHECK(r.decide("10.1.2.3", "casino.example.org") == "regex-late:allow");
}

TEST_CASE("rule_set: one name under hosts, domains and a list of different rules, in one index") {
    // hosts, domains and list names share one table (rule_set.h): a `hosts:` entry must still
    // match only the whole host, and each kind must still map to its own rule in file order.
    const Rules r(R"(default: allow
lists:
  l: { file: l.txt }
rules:
  - name: exact-allow
    action: allow
    hosts: [shared.example]
  - name: list-block
    action: block
    lists: [l]
  - name: domain-block
    action: block
    domains: [shared.example, other.example]
  - name: exact-late
    action: allow
    hosts: [www.other.example]
)",
                  {{"l.txt", "shared.example\n"}});
    CHECK(r.decide("10.0.0.1", "shared.example") == "exact-allow:allow");
    CHECK(r.decide("10.0.0.1", "www.shared.example") == "list-block:block");  // not exact-allow
    CHECK(r.decide("10.0.0.1", "SHARED.example.") == "exact-allow:allow");
    CHECK(r.decide("10.0.0.1", "other.example") == "domain-block:block");
    // A later rule's exact match loses to an earlier domain match.
    CHECK(r.decide("10.0.0.1", "www.other.example") == "domain-block:block");
    CHECK(r.decide("10.0.0.1", "x.www.other.example") == "domain-block:block");
    CHECK(r.decide("10.0.0.1", "example") == "default:allow");
}

TEST_CASE("rule_set: explain names a rule's hosts entry over its domains entry for the same name") {
    const Rules r(R"(default: allow
rules:
  - name: both
    action: block
    domains: [both.example]
    hosts: [both.example]
)");
    auto explain = [&](const char* host) {
        auto canonical = canonicalize_host(host);
        REQUIRE(canonical.ok());
        RequestFacts f{*IpAddr::parse("10.0.0.1"), canonical->host, canonical->kind, 443, ""};
        return r.set->explain(f);
    };
    Explanation e = explain("both.example");
    CHECK(e.rule_name == "both");
    CHECK(e.condition == "hosts");
    CHECK(e.entry == "both.example");
    CHECK(e.entry_where == "rules.yaml:6:13");
    e = explain("www.both.example");
    CHECK(e.condition == "domains");
    CHECK(e.entry == "both.example");
    CHECK(e.entry_where == "rules.yaml:5:15");
}
