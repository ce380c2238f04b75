// `hallpass --check` and `hallpass --explain` as an admin runs them: the summary and exit 0 for a
// valid file with real block lists, exit 1 with `file:line:col: message` for each kind of broken
// file, and explain's decision, deciding rule and matched entry with their file positions.
#include <doctest/doctest.h>

#include "harness.h"

using namespace hallpass::e2e;

namespace {

// Lines of `text` (without their newline).
std::vector<std::string> lines_of(std::string_view text) {
    std::vector<std::string> out;
    size_t pos = 0;
    while (pos < text.size()) {
        size_t end = text.find('\n', pos);
        if (end == std::string_view::npos) end = text.size();
        out.emplace_back(text.substr(pos, end - pos));
        pos = end + 1;
    }
    return out;
}

bool has_line(std::string_view text, std::string_view line) {
    for (const auto& l : lines_of(text))
        if (l == line) return true;
    return false;
}

bool has_line_starting(std::string_view text, std::string_view prefix) {
    for (const auto& l : lines_of(text))
        if (l.rfind(prefix, 0) == 0) return true;
    return false;
}

RunResult check(const fs::path& rules) {
    return run({hallpass_bin(), "--check", "-c", rules.string()});
}

RunResult explain(const fs::path& rules, const std::string& client, const std::string& target) {
    return run({hallpass_bin(), "--explain", client, target, "-c", rules.string()});
}

// One --explain case: client, target and the exact output expected.
struct ExplainRow {
    const char* what;
    const char* client;
    const char* target;
    const char* expected;
};

template <size_t N>
void check_explanations(const fs::path& rules, const ExplainRow (&rows)[N]) {
    for (const ExplainRow& row : rows) {
        SUBCASE(row.what) {
            auto r = explain(rules, row.client, row.target);
            CHECK_MESSAGE(r.exit_code == 0, r.err);
            CHECK(r.out == row.expected);
        }
    }
}

// Line numbers matter below: the expectations cite them.
const char* kExplainRules = R"(default: allow
groups:
  kids: [10.0.0.0/24, 10.0.9.9]
lists:
  ads: { file: lists/ads.txt }
rules:
  - name: banned-device
    action: block
    clients: [10.0.5.5]
  - name: homework
    action: allow
    clients: kids
    domains: [khanacademy.org]
  - name: kids-social
    action: block
    clients: kids
    domains: [tiktok.com, instagram.com]
    host_regex: ['(^|\.)casino[0-9]*\.']
    url_regex: ['^http://[^/]+/ads/']
    lists: [ads]
  - name: everyone-ads
    action: block
    lists: [ads]
)";

// One entry per format, each on a known line; line 6 is invalid.
const char* kAdsList =
    "# ads list for the explain test\n"
    "\n"
    "ads.example\n"
    "0.0.0.0 tracker.example.net  # inline comment\n"
    "||adserver.example.org^\n"
    "bad..name\n"
    "doubleclick.example\n";

}  // namespace

TEST_CASE("check: a valid file with real block lists exits 0 with the right counts") {
    TempDir dir;
    const fs::path lists = blocklists_dir();
    write_file(dir / "lists" / "ads.txt", kAdsList);
    const std::string sb = (lists / "stevenblack" / "hosts").string();
    const std::string gambling = (lists / "ut1" / "gambling" / "domains").string();
    const std::string tiktok = (lists / "blocklistproject" / "tiktok.txt").string();
    write_file(dir / "rules.yaml",
               "default: allow\n"
               "groups:\n"
               "  kids: [10.0.0.0/24]\n"
               "  lab: [\"fd00:1::/64\", 10.9.9.9]\n"
               "lists:\n"
               "  sb: { file: " +
                   sb +
                   ", format: hosts }\n"
                   "  gambling: { file: " +
                   gambling +
                   " }\n"
                   "  tiktok: { file: " +
                   tiktok +
                   " }\n"
                   "  ads: { file: lists/ads.txt }\n"
                   "rules:\n"
                   "  - name: kids-gambling\n"
                   "    action: block\n"
                   "    clients: kids\n"
                   "    lists: [gambling, tiktok]\n"
                   "  - name: everyone\n"
                   "    action: block\n"
                   "    lists: [sb, ads]\n"
                   "  - name: lab-regex\n"
                   "    action: block\n"
                   "    clients: lab\n"
                   "    host_regex: ['casino']\n");
    auto r = check(dir / "rules.yaml");
    CHECK_MESSAGE(r.exit_code == 0, r.err);
    CHECK(r.err.empty());
    CHECK(has_line(r.out, "rules: 3"));
    CHECK(has_line(r.out, "groups: 2"));
    CHECK(has_line(r.out, "lists: 4"));
    // README of the lists: StevenBlack's hosts has 136,500 blocking names besides its 14
    // localhost-style header names; UT1 gambling has 32,247 lines of which 14 are IPv4
    // addresses (skipped, not invalid); the tiktok list has 3,725 entries.
    CHECK(has_line(r.out, "  sb: 136500 entries, 0 invalid, 0 unsupported (" + sb + ")"));
    CHECK(
        has_line(r.out, "  gambling: 32233 entries, 0 invalid, 0 unsupported (" + gambling + ")"));
    CHECK(has_line(r.out, "  tiktok: 3725 entries, 0 invalid, 0 unsupported (" + tiktok + ")"));
    CHECK(has_line(r.out, "  ads: 4 entries, 1 invalid, 0 unsupported (" +
                              (dir / "lists" / "ads.txt").string() + ")"));
    CHECK(contains(r.out, "ads.txt:6: "));
    CHECK(contains(r.out, "bad..name"));
    CHECK(has_line_starting(r.out, "load time: "));
    CHECK(contains(r.out, " ms"));
    CHECK(has_line_starting(r.out, "memory: "));
}

TEST_CASE("check: the shipped rules/rules.yaml is valid") {
    auto r = check(source_root() / "rules" / "rules.yaml");
    CHECK_MESSAGE(r.exit_code == 0, r.out << r.err);
    CHECK(has_line_starting(r.out, "rules: "));
}

TEST_CASE("check: each kind of broken file exits 1 with file:line:col and a message") {
    struct Row {
        const char* what;
        const char* yaml;
        const char* expected;  // after "PATH:"; $DIR stands for the temp dir
    };
    const Row rows[] = {
        {"unknown key in a rule",
         "rules:\n  - name: kids-social\n    action: block\n"
         "    domians: [tiktok.com]\n",
         "4:5: unknown key \"domians\" in rule \"kids-social\" (did you mean \"domains\"?)"},
        {"unknown top-level key", "rulez: []\n",
         "1:1: unknown key \"rulez\" in the top level (did you mean \"rules\"?)"},
        {"unknown server key", "server:\n  threadz: 2\n",
         "2:3: unknown key \"threadz\" in server (did you mean \"threads\"?)"},
        {"undefined group",
         "groups:\n  kids: [10.0.0.1]\nrules:\n  - name: x\n    action: block\n"
         "    clients: kidz\n",
         "6:14: rule \"x\": undefined group \"kidz\" (did you mean \"kids\"?)"},
        {"undefined list",
         "lists:\n  ads: { file: ads.txt }\nrules:\n  - name: x\n    action: block\n"
         "    lists: [adz]\n",
         "6:13: rule \"x\": undefined list \"adz\" (did you mean \"ads\"?)"},
        {"a URL where a name is expected",
         "rules:\n  - name: x\n    action: block\n    domains: [\"https://games.test/\"]\n",
         "4:15: rule \"x\": domains take names, not URLs: did you mean games.test?"},
        {"CIDR with host bits", "groups:\n  kids: [192.168.1.1/24]\n",
         "2:10: group \"kids\": \"192.168.1.1/24\" has host bits set (did you mean "
         "192.168.1.0/24?)"},
        {"prefix too long", "rules:\n  - name: x\n    action: block\n    clients: [10.0.0.0/33]\n",
         "4:15: rule \"x\": prefix /33 is longer than 32 in \"10.0.0.0/33\""},
        {"not an address", "groups:\n  g: [not-an-ip]\n",
         "2:7: group \"g\": \"not-an-ip\" is not an IP address or CIDR"},
        {"invalid host_regex",
         "rules:\n  - name: x\n    action: block\n    host_regex: [\"(casino\"]\n",
         "4:18: rule \"x\": invalid host_regex \"(casino\": missing ): (casino"},
        {"invalid url_regex", "rules:\n  - name: x\n    action: block\n    url_regex: [\"a(b\"]\n",
         "4:17: rule \"x\": invalid url_regex \"a(b\": missing ): a(b"},
        {"bad action", "rules:\n  - name: x\n    action: blok\n",
         "3:13: rule \"x\": action must be allow or block, got \"blok\""},
        {"missing action", "rules:\n  - name: x\n  - name: y\n    action: block\n",
         "2:5: rule \"x\" needs an action (allow or block)"},
        {"duplicate rule name",
         "rules:\n  - name: x\n    action: block\n  - name: x\n    action: allow\n",
         "4:11: rule name \"x\" is already used at rules.yaml:2:5"},
        {"bad default", "default: maybe\n",
         "1:10: \"default\" must be allow or block, got \"maybe\""},
        {"port out of range", "rules:\n  - name: x\n    action: block\n    ports: [80, 99999]\n",
         "4:17: \"ports\" must be between 1 and 65535, got 99999"},
        {"invalid domain", "rules:\n  - name: x\n    action: block\n    domains: [\"bad..name\"]\n",
         "4:15: rule \"x\": invalid domain \"bad..name\": empty label in host \"bad..name\""},
        {"missing list file", "lists:\n  ads: { file: missing.txt }\n",
         "2:16: cannot read list file \"$DIR/missing.txt\""},
        {"bad list format", "lists:\n  a: { file: l.txt, format: hostz }\n",
         "2:29: list format must be auto, plain, hosts or adblock, got \"hostz\""},
        {"rules of the wrong type", "rules: {a: 1}\n", "1:8: \"rules\" must be a list of rules"},
        {"duplicate key in a rule",
         "rules:\n  - name: kids\n    action: block\n    domains: [a.test]\n"
         "    domains: [games.test]\n",
         "5:5: duplicate key \"domains\" (first at 4:5)"},
        {"second top-level rules", "rules: []\ndefault: allow\nrules: []\n",
         "3:1: duplicate key \"rules\" (first at 1:1)"},
        {"repeated server key", "server:\n  threads: 2\n  idle_timeout_ms: 5\n  threads: 4\n",
         "4:3: duplicate key \"threads\" (first at 2:3)"},
        {"YAML syntax", "rules:\n  - name: x\n    action: block\n   domains: [a.com]\n",
         "4:4: yaml syntax error: end of sequence not found"},
    };
    for (const Row& row : rows) {
        SUBCASE(row.what) {
            TempDir dir;
            write_file(dir / "l.txt", "a.example\n");
            write_file(dir / "ads.txt", "a.example\n");
            const fs::path path = dir / "rules.yaml";
            write_file(path, row.yaml);
            std::string expected = path.string() + ":" + row.expected;
            if (auto at = expected.find("$DIR"); at != std::string::npos)
                expected.replace(at, 4, dir.path().string());
            auto r = check(path);
            CHECK(r.exit_code == 1);
            auto err = lines_of(r.err);
            REQUIRE_MESSAGE(!err.empty(), "no error on stderr; stdout: " << r.out);
            CHECK(err[0] == expected);
            CHECK_FALSE(has_line_starting(r.out, "rules: "));
        }
    }
}

TEST_CASE("check: a block_page that cannot be read fails the check") {
    TempDir dir;
    write_file(dir / "rules.yaml", "server:\n  block_page: pages/nope.html\n");
    auto r = check(dir / "rules.yaml");
    CHECK(r.exit_code == 1);
    CHECK(lines_of(r.err).at(0) == (dir / "rules.yaml").string() +
                                       ":2:15: cannot read block page \"" +
                                       (dir / "pages" / "nope.html").string() + "\"");
}

TEST_CASE("explain: the decision, the deciding rule and the matched entry") {
    TempDir dir;
    write_file(dir / "rules.yaml", kExplainRules);
    write_file(dir / "lists" / "ads.txt", kAdsList);
    const fs::path rules = dir / "rules.yaml";
    const ExplainRow rows[] = {
        {"domains", "10.0.0.7", "http://www.tiktok.com/",
         "decision: block\n"
         "request: 10.0.0.7 -> www.tiktok.com:80 http://www.tiktok.com/\n"
         "rule: kids-social (rules.yaml:14:5)\n"
         "matched: domains: tiktok.com (rules.yaml:17:15)\n"},
        {"domains, second entry, CONNECT form", "10.0.0.7", "www.instagram.com:443",
         "decision: block\n"
         "request: 10.0.0.7 -> www.instagram.com:443 (CONNECT)\n"
         "rule: kids-social (rules.yaml:14:5)\n"
         "matched: domains: instagram.com (rules.yaml:17:27)\n"},
        {"an allow rule", "10.0.0.7", "http://www.khanacademy.org/x",
         "decision: allow\n"
         "request: 10.0.0.7 -> www.khanacademy.org:80 http://www.khanacademy.org/x\n"
         "rule: homework (rules.yaml:10:5)\n"
         "matched: domains: khanacademy.org (rules.yaml:13:15)\n"},
        {"list, plain line", "10.0.9.9", "http://ads.example/",
         "decision: block\n"
         "request: 10.0.9.9 -> ads.example:80 http://ads.example/\n"
         "rule: kids-social (rules.yaml:14:5)\n"
         "matched: lists: ads (ads.txt:3: ads.example)\n"},
        {"list, hosts line", "192.168.1.1", "http://tracker.example.net/x",
         "decision: block\n"
         "request: 192.168.1.1 -> tracker.example.net:80 http://tracker.example.net/x\n"
         "rule: everyone-ads (rules.yaml:21:5)\n"
         "matched: lists: ads (ads.txt:4: tracker.example.net)\n"},
        {"list, adblock line, subdomain", "192.168.1.1", "https://a.adserver.example.org/p",
         "decision: block\n"
         "request: 192.168.1.1 -> a.adserver.example.org:443 (CONNECT)\n"
         "rule: everyone-ads (rules.yaml:21:5)\n"
         "matched: lists: ads (ads.txt:5: adserver.example.org)\n"},
        {"list after the invalid line", "192.168.1.1", "cdn.doubleclick.example:443",
         "decision: block\n"
         "request: 192.168.1.1 -> cdn.doubleclick.example:443 (CONNECT)\n"
         "rule: everyone-ads (rules.yaml:21:5)\n"
         "matched: lists: ads (ads.txt:7: doubleclick.example)\n"},
        {"client IP", "10.0.5.5", "http://anything.org/",
         "decision: block\n"
         "request: 10.0.5.5 -> anything.org:80 http://anything.org/\n"
         "rule: banned-device (rules.yaml:7:5)\n"
         "matched: clients: 10.0.5.5\n"},
        {"host_regex", "10.0.0.7", "http://casino77.example.com/",
         "decision: block\n"
         "request: 10.0.0.7 -> casino77.example.com:80 http://casino77.example.com/\n"
         "rule: kids-social (rules.yaml:14:5)\n"
         "matched: host_regex: (^|\\.)casino[0-9]*\\. (rules.yaml:18:18)\n"},
        {"url_regex", "10.0.0.7", "http://x.org/ads/b.png",
         "decision: block\n"
         "request: 10.0.0.7 -> x.org:80 http://x.org/ads/b.png\n"
         "rule: kids-social (rules.yaml:14:5)\n"
         "matched: url_regex: ^http://[^/]+/ads/ (rules.yaml:19:17)\n"},
        {"url_regex never matches https", "10.0.0.7", "https://x.org/ads/",
         "decision: allow\n"
         "request: 10.0.0.7 -> x.org:443 (CONNECT)\n"
         "rule: none matched; the default (allow) applied\n"},
        {"the default", "192.168.1.1", "http://www.tiktok.com/",
         "decision: allow\n"
         "request: 192.168.1.1 -> www.tiktok.com:80 http://www.tiktok.com/\n"
         "rule: none matched; the default (allow) applied\n"},
    };
    check_explanations(rules, rows);
}

TEST_CASE("explain: default block, a group CIDR, and what it refuses") {
    TempDir dir;
    const fs::path rules = dir / "rules.yaml";
    write_file(rules,
               "default: block\n"
               "groups:\n"
               "  staff: [10.1.0.0/16]\n"
               "rules:\n"
               "  - name: staff-anything\n"
               "    action: allow\n"
               "    clients: staff\n");
    auto blocked = explain(rules, "10.2.0.1", "http://example.org/");
    CHECK(blocked.exit_code == 0);
    CHECK(blocked.out ==
          "decision: block\n"
          "request: 10.2.0.1 -> example.org:80 http://example.org/\n"
          "rule: none matched; the default (block) applied\n");
    auto allowed = explain(rules, "10.1.200.3", "example.org:443");
    CHECK(allowed.exit_code == 0);
    CHECK(allowed.out ==
          "decision: allow\n"
          "request: 10.1.200.3 -> example.org:443 (CONNECT)\n"
          "rule: staff-anything (rules.yaml:5:5)\n"
          "matched: clients: staff\n");

    auto bad_ip = explain(rules, "nope", "http://example.org/");
    CHECK(bad_ip.exit_code != 0);
    CHECK(contains(bad_ip.err, "\"nope\" is not an IP address"));
    CHECK(bad_ip.out.empty());
    auto bad_host = explain(rules, "10.1.0.1", "http://ex%41mple.org/");
    CHECK(bad_host.exit_code != 0);
    CHECK(contains(bad_host.err, "percent-escape"));
    CHECK(bad_host.out.empty());

    write_file(rules, "rules:\n  - name: x\n    action: block\n    domians: [a.com]\n");
    auto broken = explain(rules, "10.1.0.1", "http://a.com/");
    CHECK(broken.exit_code == 1);
    CHECK(contains(broken.err, rules.string() + ":4:5: unknown key \"domians\""));
    CHECK(broken.out.empty());
}

TEST_CASE("explain: the checks before the rules are reported when they decide") {
    TempDir dir;
    const fs::path rules = dir / "rules.yaml";
    write_file(rules,
               "server:\n"
               "  allow_local_destinations: [\"127.0.0.1:8631\"]\n"
               "default: allow\n"
               "rules: []\n");
    const ExplainRow rows[] = {
        {"a client outside allowed_clients", "8.8.8.8", "http://example.org/",
         "decision: refused (403)\n"
         "request: 8.8.8.8 -> example.org:80 http://example.org/\n"
         "refused by: server.allowed_clients: 8.8.8.8 is not in it (before any rule)\n"},
        {"CONNECT to a port outside connect_ports", "10.0.0.7", "example.org:22",
         "decision: refused (403)\n"
         "request: 10.0.0.7 -> example.org:22 (CONNECT)\n"
         "refused by: server.connect_ports: CONNECT to port 22 is not allowed (before any "
         "rule)\n"},
        {"plain HTTP to a port outside http_ports", "10.0.0.7", "http://example.org:25/",
         "decision: refused (403)\n"
         "request: 10.0.0.7 -> example.org:25 http://example.org:25/\n"
         "refused by: server.http_ports: plain HTTP to port 25 is not allowed (before any "
         "rule)\n"},
        {"a local destination", "10.0.0.7", "http://127.0.0.1:8080/",
         "decision: refused (403)\n"
         "request: 10.0.0.7 -> 127.0.0.1:8080 http://127.0.0.1:8080/\n"
         "refused by: local destination: 127.0.0.1:8080 is an address of the proxy host itself "
         "(server.allow_local_destinations) (before any rule)\n"},
        {"hallpass's own address", "10.0.0.7", "http://127.0.0.1:12345/",
         "decision: answered by hallpass\n"
         "request: 10.0.0.7 -> 127.0.0.1:12345 http://127.0.0.1:12345/\n"
         "because: its own address: 127.0.0.1:12345 is hallpass's listener; hallpass answers it "
         "itself (the info page at /) (before any rule)\n"},
        {"an exception in allow_local_destinations goes on to the rules", "10.0.0.7",
         "http://127.0.0.1:8631/",
         "decision: allow\n"
         "request: 10.0.0.7 -> 127.0.0.1:8631 http://127.0.0.1:8631/\n"
         "rule: none matched; the default (allow) applied\n"},
    };
    check_explanations(rules, rows);
}

// Without -c, --check and --explain answer for what the proxy would run with: the default
// file, or (where it does not exist) the built-in defaults with no rules. The default path is
// hidden from the binary by a tmpfs in a mount namespace of its own, so the test neither
// depends on nor touches the machine's /etc/hallpass.
TEST_CASE("check, explain: without -c and without the default file, the built-in defaults") {
    const std::string hide =
        "[ -d /etc/hallpass ] && mount -t tmpfs tmpfs /etc/hallpass; "
        "[ ! -e /etc/hallpass/rules.yaml ] || exit 99; exec \"$@\"";
    auto in_ns = [&](std::vector<std::string> args) {
        std::vector<std::string> argv = {"unshare", "-m", "sh", "-c", hide, "sh", hallpass_bin()};
        argv.insert(argv.end(), args.begin(), args.end());
        return run(argv);
    };
    auto c = in_ns({"--check"});
    if (c.exit_code == 99 || has_line_starting(c.err, "unshare:")) {
        FAIL("cannot hide /etc/hallpass in a mount namespace here: " << c.err);
    }
    CHECK_MESSAGE(c.exit_code == 0, c.out << c.err);
    CHECK(has_line(c.out,
                   "/etc/hallpass/rules.yaml: not found: hallpass runs on its built-in "
                   "defaults, with no rules"));
    CHECK(has_line(c.out, "rules: 0"));

    auto e = in_ns({"--explain", "192.168.1.50", "http://example.com/"});
    CHECK_MESSAGE(e.exit_code == 0, e.out << e.err);
    CHECK(has_line(e.out, "decision: allow"));
    // The built-in defaults refuse what the proxy would refuse: CONNECT to a port other than 443.
    auto port = in_ns({"--explain", "192.168.1.50", "example.com:25"});
    CHECK_MESSAGE(port.exit_code == 0, port.out << port.err);
    CHECK(has_line(port.out, "decision: refused (403)"));

    // A named file that does not exist is still an error, as for the proxy.
    auto missing = run({hallpass_bin(), "--check", "-c", "/nonexistent/rules.yaml"});
    CHECK(missing.exit_code == 1);
}
