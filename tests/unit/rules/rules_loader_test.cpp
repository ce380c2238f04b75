#include "hallpass/rules/rules_loader.h"

#include <doctest/doctest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

#include "hallpass/config/yaml_source.h"
#include "temp_dir.h"

using namespace hallpass;
using hallpass::test::TempDir;

namespace {

// A temp dir with an ads list in it; removed at the end of the test.
struct Dir : TempDir {
    Dir() : TempDir("hallpass-rules") { std::ofstream(path / "ads.txt") << "ads.example\n"; }
};

Result<RulesSpec> load(const Dir& dir, const std::string& yaml) {
    std::string file = (dir.path / "rules.yaml").string();
    std::ofstream(file) << yaml;
    return load_rules_spec_file(file);
}

}  // namespace

TEST_CASE("rules_loader: the issue's example loads with every condition") {
    Dir dir;
    auto spec = load(dir, R"(default: block
groups:
  kids: [192.168.1.50, 192.168.1.64/27, "fd00:1::/64"]
lists:
  ads: { file: ads.txt }
rules:
  - name: banned-device
    action: block
    clients: [192.168.1.66]
  - name: kids-social
    action: allow
    clients: kids
    domains: [TikTok.com., "*.instagram.com"]
    hosts: [games.example.net, 10.1.2.3]
    host_regex: ['(^|\.)casino[0-9]*\.']
    url_regex: ['^http://[^/]+/ads/']
    lists: [ads]
    ports: [80, 443]
    dest_nets: [10.0.0.0/8]
  - action: block
)");
    INFO((spec.ok() ? std::string() : spec.error().to_string()));
    REQUIRE(spec.ok());
    CHECK(spec->default_action == Action::Block);
    REQUIRE(spec->rules.size() == 3);
    const RuleSpec& kids = spec->rules[1];
    CHECK(kids.name == "kids-social");
    CHECK(kids.action == Action::Allow);
    CHECK(kids.pos.line == 10);
    CHECK(kids.clients.contains(*IpAddr::parse("192.168.1.70")));
    CHECK_FALSE(kids.clients.contains(*IpAddr::parse("192.168.1.100")));
    REQUIRE(kids.domains.size() == 2);
    CHECK(kids.domains[0].text == "tiktok.com");  // canonical: lower case, no trailing dot
    CHECK(kids.domains[1].text == "instagram.com");
    CHECK(kids.domains[0].pos.to_string() == "rules.yaml:13:15");
    CHECK(kids.hosts[1].text == "10.1.2.3");
    CHECK(kids.lists == std::vector<size_t>{0});
    CHECK(kids.ports == std::vector<uint16_t>{80, 443});
    CHECK(kids.has_dest_nets);
    CHECK(spec->rules[2].name == "rule 3");
    CHECK_FALSE(spec->rules[2].has_destination());
    CHECK(spec->lists[0].path == (dir.path / "ads.txt").string());
}

TEST_CASE("rules_loader: schedules, when, message and safe_search") {
    Dir dir;
    auto spec = load(dir, R"(groups:
  kids: [192.168.1.50]
schedules:
  school-nights:
    windows:
      - { days: [sun, mon, tue, wed, thu], from: "21:00", to: "07:00" }
      - { days: [sat], from: "23:00", to: "08:00" }
    except_dates: ["2026-12-31", "2026-12-24"]
    time_zone: Europe/Paris
  weekend: { windows: [{ days: weekend, from: "00:00", to: "24:00" }] }
rules:
  - name: bedtime
    action: block
    clients: kids
    when: [school-nights, weekend]
    message: "Time to sleep."
safe_search:
  - { clients: kids, google: on, youtube: strict, bing: on, duckduckgo: on }
  - { when: weekend, youtube: moderate }
)");
    INFO((spec.ok() ? std::string() : spec.error().to_string()));
    REQUIRE(spec.ok());
    REQUIRE(spec->schedules.size() == 2);
    const Schedule& s = spec->schedules[0];
    CHECK(s.name == "school-nights");
    CHECK(s.zone_name == "Europe/Paris");
    REQUIRE(s.windows.size() == 2);
    CHECK(s.windows[0].from_min == 21 * 60);
    CHECK(s.windows[0].to_min == 7 * 60);
    CHECK(s.windows[0].days == std::array<bool, 7>{true, true, true, true, true, false, false});
    CHECK(s.windows[1].days[6]);
    REQUIRE(s.except_days.size() == 2);
    CHECK(s.except_days[0] < s.except_days[1]);  // sorted
    CHECK(spec->schedules[1].zone_name == "system");
    CHECK(spec->schedules[1].windows[0].days[0]);
    CHECK(spec->schedules[1].windows[0].to_min == 1440);
    REQUIRE(spec->rules.size() == 1);
    CHECK(spec->rules[0].when == std::vector<size_t>{0, 1});
    CHECK(spec->rules[0].message == "Time to sleep.");
    REQUIRE(spec->safe_search.size() == 2);
    CHECK(spec->safe_search[0].has_clients);
    CHECK(spec->safe_search[0].google);
    CHECK(spec->safe_search[0].youtube == YouTubeMode::Strict);
    CHECK(spec->safe_search[0].bing);
    CHECK(spec->safe_search[0].duckduckgo);
    CHECK_FALSE(spec->safe_search[1].has_clients);
    CHECK(spec->safe_search[1].when == std::vector<size_t>{1});
    CHECK(spec->safe_search[1].youtube == YouTubeMode::Moderate);
    CHECK_FALSE(spec->safe_search[1].google);
}

TEST_CASE("rules_loader: IDN rule entries become punycode") {
    Dir dir;
    auto spec = load(dir, "rules:\n  - action: block\n    domains: [bücher.example]\n");
    REQUIRE(spec.ok());
    CHECK(spec->rules[0].domains[0].text == "xn--bcher-kva.example");
}

TEST_CASE("rules_loader: every validation error has file:line:col") {
    struct Row {
        const char* name;
        const char* yaml;
        const char* error;  // after "<dir>/"
    };
    const Row rows[] = {
        {"misspelt rule key", "rules:\n  - name: x\n    action: block\n    domians: [a.com]\n",
         "rules.yaml:4:5: unknown key \"domians\" in rule \"x\" (did you mean \"domains\"?)"},
        {"misspelt top-level key", "rulez: []\n",
         "rules.yaml:1:1: unknown key \"rulez\" in the top level (did you mean \"rules\"?)"},
        {"missing action", "rules:\n  - name: x\n",
         "rules.yaml:2:5: rule \"x\" needs an action (allow or block)"},
        {"bad action", "rules:\n  - action: deny\n",
         "rules.yaml:2:13: rule \"rule 1\": action must be allow or block, got \"deny\""},
        {"bad default", "default: maybe\n",
         "rules.yaml:1:10: \"default\" must be allow or block, got \"maybe\""},
        {"undefined group",
         "groups:\n  kids: [10.0.0.1]\nrules:\n  - action: block\n    clients: [kidz]\n",
         "rules.yaml:5:15: rule \"rule 1\": undefined group \"kidz\" (did you mean \"kids\"?)"},
        {"undefined list",
         "lists:\n  ads: {file: ads.txt}\nrules:\n  - action: block\n    lists: [adz]\n",
         "rules.yaml:5:13: rule \"rule 1\": undefined list \"adz\" (did you mean \"ads\"?)"},
        {"bad cidr in a group", "groups:\n  kids: [10.0.0.1/33]\n",
         "rules.yaml:2:10: group \"kids\": prefix /33 is longer than 32 in \"10.0.0.1/33\""},
        {"bad cidr in clients", "rules:\n  - action: block\n    clients: 10.0.0.1/24\n",
         "rules.yaml:3:14: rule \"rule 1\": \"10.0.0.1/24\" has host bits set (did you mean "
         "10.0.0.0/24?)"},
        {"invalid regex", "rules:\n  - action: block\n    host_regex: ['(unclosed']\n",
         "rules.yaml:3:18: rule \"rule 1\": invalid host_regex \"(unclosed\": missing ): "
         "(unclosed"},
        {"invalid host", "rules:\n  - action: block\n    hosts: ['a b.com']\n",
         "rules.yaml:3:13: rule \"rule 1\": invalid host \"a b.com\""},
        {"a URL as a domain", "rules:\n  - action: block\n    domains: ['https://games.test/']\n",
         "rules.yaml:3:15: rule \"rule 1\": domains take names, not URLs: did you mean "
         "games.test?"},
        {"a path after a host", "rules:\n  - action: block\n    hosts: [games.test/play]\n",
         "rules.yaml:3:13: rule \"rule 1\": hosts take names, not URLs: did you mean games.test?"},
        {"ip as a domain", "rules:\n  - action: block\n    domains: [10.0.0.1]\n",
         "rules.yaml:3:15: rule \"rule 1\": \"10.0.0.1\" is an IP address: put it in hosts or "
         "dest_nets"},
        {"bad port", "rules:\n  - action: block\n    ports: [0]\n",
         "rules.yaml:3:13: \"ports\" must be between 1 and 65535, got 0"},
        {"wrong type", "rules:\n  - action: block\n    domains: {a: b}\n",
         "rules.yaml:3:14: \"domains\" must be a list, not a map"},
        {"missing list file", "lists:\n  ads: {file: nope.txt}\n",
         "rules.yaml:2:15: cannot read list file"},
        {"bad list format", "lists:\n  ads: {file: ads.txt, format: csv}\n",
         "rules.yaml:2:32: list format must be auto, plain, hosts or adblock, got \"csv\""},
        {"duplicate rule name",
         "rules:\n  - {name: a, action: block}\n  - {name: a, action: allow}\n",
         "rules.yaml:3:12: rule name \"a\" is already used at rules.yaml:2:5"},
        {"rules not a list", "rules: {a: 1}\n",
         "rules.yaml:1:8: \"rules\" must be a list of rules"},
        {"undefined schedule",
         "schedules:\n  school-nights: {windows: [{days: [mon], from: '21:00', to: '07:00'}]}\n"
         "rules:\n  - action: block\n    when: school-night\n",
         "rules.yaml:5:11: rule \"rule 1\": undefined schedule \"school-night\" (did you mean "
         "\"school-nights\"?)"},
        {"bad day",
         "schedules:\n  s: {windows: [{days: [mon, funday], from: '21:00', to: '07:00'}]}\n",
         "rules.yaml:2:30: schedule \"s\": \"funday\" is not a day"},
        {"bad time", "schedules:\n  s: {windows: [{days: [mon], from: '25:00', to: '07:00'}]}\n",
         "rules.yaml:2:37: schedule \"s\": from \"25:00\" is not a time of day"},
        {"window without to", "schedules:\n  s: {windows: [{days: [mon], from: '21:00'}]}\n",
         "rules.yaml:2:17: schedule \"s\": a window needs to"},
        {"bad date",
         "schedules:\n  s:\n    windows: [{days: [mon], from: '21:00', to: '07:00'}]\n"
         "    except_dates: [2026-13-01]\n",
         "rules.yaml:4:20: schedule \"s\": \"2026-13-01\" is not a date (YYYY-MM-DD)"},
        {"unknown time zone",
         "schedules:\n  s:\n    windows: [{days: [mon], from: '21:00', to: '07:00'}]\n"
         "    time_zone: Mars/Olympus\n",
         "rules.yaml:4:16: schedule \"s\": unknown time zone \"Mars/Olympus\""},
        {"schedule without windows", "schedules:\n  s: {time_zone: UTC}\n",
         "rules.yaml:2:6: schedule \"s\" needs windows"},
        {"bad youtube mode", "safe_search:\n  - {youtube: maybe}\n",
         "rules.yaml:2:15: safe_search entry 1: youtube is strict, moderate or off, got \"maybe\""},
        {"bad switch", "safe_search:\n  - {google: perhaps}\n",
         "rules.yaml:2:14: safe_search entry 1: google is on or off, got \"perhaps\""},
        {"misspelt safe search key", "safe_search:\n  - {gogle: on}\n",
         "rules.yaml:2:6: unknown key \"gogle\" in safe_search entry 1 (did you mean \"google\"?)"},
        {"safe search group", "safe_search:\n  - {clients: kidz, google: on}\n",
         "rules.yaml:2:15: safe_search entry 1: undefined group \"kidz\""},
    };
    for (const Row& row : rows) {
        SUBCASE(row.name) {
            Dir dir;
            auto spec = load(dir, row.yaml);
            REQUIRE_FALSE(spec.ok());
            std::string got = spec.error().to_string();
            std::string prefix = (dir.path / "").string();
            REQUIRE(got.starts_with(prefix));
            CHECK(got.substr(prefix.size()).starts_with(row.error));
        }
    }
}
