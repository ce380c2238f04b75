// domain_list: list formats, canonical names, every odd line of the real lists, and the counts the
// real lists under shared/data/blocklists/ must give (reconciled with their README).
#include "hallpass/rules/domain_list.h"

#include <doctest/doctest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <utility>
#include <vector>

using namespace hallpass;

namespace {

struct Named {
    std::string name;
    uint32_t line;
    bool operator==(const Named&) const = default;
};

struct Parsed {
    ListStats stats;
    std::vector<Named> names;

    std::vector<std::string> just_names() const {
        std::vector<std::string> out;
        for (const Named& n : names) out.push_back(n.name);
        return out;
    }
};

Parsed parse(std::string_view text, ListFormat format = ListFormat::Auto) {
    Parsed p;
    p.stats = parse_domain_list(text, format, [&p](std::string_view name, uint32_t line) {
        p.names.push_back({std::string(name), line});
    });
    return p;
}

Parsed load(const std::string& path, ListFormat format = ListFormat::Auto) {
    Parsed p;
    Result<ListStats> r =
        load_domain_list(path, format, [&p](std::string_view name, uint32_t line) {
            p.names.push_back({std::string(name), line});
        });
    REQUIRE_MESSAGE(r.ok(), r.error().to_string());
    p.stats = *r;
    return p;
}

// meson passes HALLPASS_BLOCKLISTS when it can; a bare run of the binary finds the lists beside
// the source tree (`<repo>/../shared/data/blocklists`): __FILE__ is relative to the build root,
// which is three levels above this binary (build/tests/unit/).
std::filesystem::path blocklists_dir() {
    if (const char* env = std::getenv("HALLPASS_BLOCKLISTS"); env != nullptr && *env != '\0') {
        return env;
    }
    std::filesystem::path source = __FILE__;
    if (source.is_relative()) {
        const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe");
        source = exe.parent_path().parent_path().parent_path() / source;
    }
    return (source.parent_path() / ".." / ".." / ".." / ".." / "shared" / "data" / "blocklists")
        .lexically_normal();
}

std::string list_path(const std::string& relative) {
    const std::filesystem::path dir = blocklists_dir();
    REQUIRE_MESSAGE(std::filesystem::is_directory(dir),
                    "block lists not found at " << dir << "; set HALLPASS_BLOCKLISTS");
    return (dir / relative).string();
}

std::string name_at(const Parsed& p, uint32_t line) {
    for (const Named& n : p.names) {
        if (n.line == line) return n.name;
    }
    return "<nothing loaded>";
}

bool has_name(const Parsed& p, std::string_view name) {
    return std::any_of(p.names.begin(), p.names.end(),
                       [name](const Named& n) { return n.name == name; });
}

size_t distinct(const Parsed& p) {
    const std::vector<std::string> names = p.just_names();
    return std::set<std::string>(names.begin(), names.end()).size();
}

std::string issue_reason_at(const Parsed& p, uint32_t line) {
    for (const ListLineIssue& issue : p.stats.first_issues) {
        if (issue.line == line) return issue.reason;
    }
    return "<no issue>";
}

}  // namespace

TEST_CASE("domain_list: parses format names") {
    CHECK(*parse_list_format("auto") == ListFormat::Auto);
    CHECK(*parse_list_format("plain") == ListFormat::Plain);
    CHECK(*parse_list_format("hosts") == ListFormat::Hosts);
    CHECK(*parse_list_format("adblock") == ListFormat::Adblock);
    for (const char* bad : {"", "Auto", "host", "abp", "plain "}) {
        INFO("bad = " << bad);
        Result<ListFormat> r = parse_list_format(bad);
        REQUIRE_FALSE(r.ok());
        CHECK(r.error().message.find("unknown list format") != std::string::npos);
    }
}

TEST_CASE("domain_list: canonical names") {
    struct Row {
        const char* line;
        const char* name;
    };
    const std::vector<Row> rows = {
        {"example.com", "example.com"},
        {"Example.COM", "example.com"},
        {"example.com.", "example.com"},
        {".afshin.ir", "afshin.ir"},
        {".Example.com.", "example.com"},
        {"prebid_stats.mars.media", "prebid_stats.mars.media"},
        {"_214214214.xyz", "_214214214.xyz"},
        {"w-w-i-s-.com", "w-w-i-s-.com"},
        {"xn--bcher-kva.example", "xn--bcher-kva.example"},
        {"b\xc3\xbc"
         "cher.example",
         "xn--bcher-kva.example"},
        {"B\xc3\x9c"
         "CHER.Example.",
         "xn--bcher-kva.example"},
        {"fa\xc3\x9f.de", "xn--fa-hia.de"},  // non-transitional: ß stays itself
        {"0.0.0.0 b\xc3\xbc"
         "cher.example",
         "xn--bcher-kva.example"},
        {"||b\xc3\xbc"
         "cher.example^",
         "xn--bcher-kva.example"},
        {"||xn--2ss830adjbqy7h.xn--fiqs8s^", "xn--2ss830adjbqy7h.xn--fiqs8s"},
        {"a1.example", "a1.example"},
        {"1.example.com", "1.example.com"},
        {"example.com1", "example.com1"},  // a last label with a letter is a name
    };
    for (const Row& row : rows) {
        INFO("row.line = " << row.line);
        Parsed p = parse(row.line);
        REQUIRE(p.names.size() == 1);
        CHECK(p.names[0].name == row.name);
        CHECK(p.stats.entries == 1);
    }
    SUBCASE("longest label and name") {
        const std::string label63(63, 'a');
        CHECK(parse(label63 + ".com").just_names() == std::vector<std::string>{label63 + ".com"});
        // 4 labels of 61 + ".com" = 4*62 + 3 = 251; + "a." = 253 bytes.
        const std::string name253 = "a." + std::string(61, 'b') + "." + std::string(61, 'c') + "." +
                                    std::string(61, 'd') + "." + std::string(61, 'e') + ".com";
        REQUIRE(name253.size() == 253);
        CHECK(parse(name253).just_names() == std::vector<std::string>{name253});
        CHECK(parse(name253 + ".").just_names() == std::vector<std::string>{name253});
    }
}

TEST_CASE("domain_list: counts invalid names with their line numbers") {
    struct Row {
        std::string line;
        const char* reason;
    };
    const std::vector<Row> rows = {
        {"com", "single-label name"},
        {"-ads1.", "adblock prefix or substring pattern not supported"},  // auto: adblock
        {"a..b.com", "empty label"},
        {"..a.com", "empty label"},
        {".", "empty name"},
        {std::string(64, 'a') + ".com", "label longer than 63 bytes"},
        {std::string(250, 'a')
                 .replace(50, 1, ".")
                 .replace(100, 1, ".")
                 .replace(150, 1, ".")
                 .replace(200, 1, ".") +
             ".com",
         "name longer than 253 bytes"},
        {"beeg.globa0.0.0.0", "numeric top-level label"},
        {"www.freierporno.mobi0.0.1", "numeric top-level label"},
        {"example.0x1f", "numeric top-level label"},
        {"1.2.3", "numeric top-level label"},
        {"256.1.1.1", "numeric top-level label"},
        {"ex%41mple.com", "invalid character in name"},
        {"exa\"mple.com", "invalid character in name"},
        {"example.com/path", "invalid character in name"},
        {"example.com extra", "unexpected text after the name"},
        {"xn--.com\xc3\xbc", "invalid international name"},
        {"\xff\xfe.com", "invalid international name"},
    };
    for (const Row& row : rows) {
        INFO("row.line = " << row.line);
        // Two good lines around it prove the bad line neither fails the load nor shifts numbers.
        Parsed p = parse("good.example\n" + row.line + "\nother.example\n");
        CHECK(p.just_names() == std::vector<std::string>{"good.example", "other.example"});
        CHECK(p.names[1].line == 3);
        CHECK(p.stats.invalid + p.stats.unsupported == 1);
        REQUIRE(p.stats.first_issues.size() == 1);
        CHECK(p.stats.first_issues[0].line == 2);
        CHECK(p.stats.first_issues[0].reason.find(row.reason) == 0);
    }
}

TEST_CASE("domain_list: skips blank lines, comments, localhost-style names and addresses") {
    struct Row {
        const char* line;
    };
    const std::vector<Row> rows = {
        {"\n"},
        {"   "},
        {"\t\t"},
        {"# comment"},
        {"! adblock comment"},
        {"#"},
        {"!"},
        {"# URL: "},
        {"! URL: "},
        {"                                # mistyped URLs to search engines. They"},
        {"\t\t\t\t\t# URLs to their site."},
        {" \t\t\t\t\t# up CSS on livejournal"},
        {"# 0.0.0.0 rules.atgsvcs.com #[affects banking]"},
        {"#0.0.0.0 sitefinder.verisign.com\t# Verisign has joined the game"},
        {"#fe80::1%lo0\tlocalhost"},
        {"#74.125.127.105\tg        # google.com"},
        {"#127.0.0.1 plus.l.google.com"},
        {"# 0.0.0.0 example.com"},
        {"127.0.0.1 localhost"},
        {"127.0.0.1 localhost.localdomain"},
        {"127.0.0.1 local"},
        {"255.255.255.255 broadcasthost"},
        {"::1 localhost"},
        {"::1 ip6-localhost"},
        {"::1 ip6-loopback"},
        {"fe80::1%lo0 localhost"},
        {"ff00::0 ip6-localnet"},
        {"ff00::0 ip6-mcastprefix"},
        {"ff02::1 ip6-allnodes"},
        {"ff02::2 ip6-allrouters"},
        {"ff02::3 ip6-allhosts"},
        {"0.0.0.0 0.0.0.0"},
        {"LOCALHOST"},
        {"localhost."},
        {"118.123.4.224"},
        {"010.1.2.3"},
        {"::1"},
        {"2001:db8::1"},
        {"0.0.0.0"},
        {"0.0.0.0 # nothing here"},
        {"||203.0.113.9^"},
        {"188.72.219.36^"},
        {"||localhost^"},
    };
    for (const Row& row : rows) {
        INFO("row.line = " << row.line);
        Parsed p = parse(row.line);
        CHECK(p.names.empty());
        CHECK(p.stats.skipped == 1);
        CHECK(p.stats.invalid == 0);
        CHECK(p.stats.unsupported == 0);
    }
}

TEST_CASE("domain_list: drops inline comments after entries") {
    struct Row {
        const char* line;
        const char* name;
    };
    const std::vector<Row> rows = {
        {"0.0.0.0 docs.pipenv.org # https://github.com/StevenBlack/hosts/issues/1635",
         "docs.pipenv.org"},
        {"0.0.0.0 www.ad-groups.com #[Ban Man Pro Banner Code]", "www.ad-groups.com"},
        {"0.0.0.0 media.fastclick.net # Likewise, this may interfere with some",
         "media.fastclick.net"},
        {"0.0.0.0 glued.example#comment", "glued.example"},
        {"0.0.0.0\tbeeg.example\t# tabbed", "beeg.example"},
        {"plain.example # note", "plain.example"},
        {"plain.example#note", "plain.example"},
        {"||adblock.example^ # note", "adblock.example"},
    };
    for (const Row& row : rows) {
        INFO("row.line = " << row.line);
        Parsed p = parse(row.line);
        CHECK(p.just_names() == std::vector<std::string>{row.name});
        CHECK(p.stats.skipped == 0);
    }
}

TEST_CASE("domain_list: hosts lines") {
    SUBCASE("every name after the address") {
        Parsed p = parse("0.0.0.0 a.example b.example\tc.example  # d.example\n");
        CHECK(p.just_names() == std::vector<std::string>{"a.example", "b.example", "c.example"});
        CHECK(p.stats.entries == 3);
    }
    SUBCASE("other addresses, IPv6 and zones") {
        Parsed p = parse("127.0.0.1 a.example\n::1 b.example\nfe80::1%lo0 c.example\n");
        CHECK(p.just_names() == std::vector<std::string>{"a.example", "b.example", "c.example"});
    }
    SUBCASE("names on one line are counted one by one") {
        Parsed p =
            parse("0.0.0.0 localhost ok.example com beeg.globa0.0.0.0 *.ads.example ad*.example\n",
                  ListFormat::Hosts);
        CHECK(p.just_names() == std::vector<std::string>{"ok.example", "ads.example"});
        CHECK(p.stats.skipped == 1);
        CHECK(p.stats.invalid == 2);
        CHECK(p.stats.unsupported == 1);
        CHECK(p.stats.first_issues.size() == 3);
    }
    SUBCASE("explicit hosts format wants an address first") {
        Parsed p =
            parse("example.com\n0.0.0.0 ok.example\nnot-an-ip ads.example\n", ListFormat::Hosts);
        CHECK(p.just_names() == std::vector<std::string>{"ok.example"});
        CHECK(p.stats.invalid == 2);
        REQUIRE(p.stats.first_issues.size() == 2);
        CHECK(p.stats.first_issues[0].line == 1);
        CHECK(p.stats.first_issues[1].line == 3);
        CHECK(p.stats.first_issues[1].reason == "first field of a hosts line is not an ip address");
    }
    SUBCASE("explicit plain format takes one name a line") {
        Parsed p = parse("0.0.0.0 a.example\nb.example\n", ListFormat::Plain);
        CHECK(p.just_names() == std::vector<std::string>{"b.example"});
        CHECK(p.stats.invalid == 1);
    }
}

TEST_CASE("domain_list: loads the host forms of adblock rules") {
    struct Row {
        const char* line;
        const char* name;
    };
    const std::vector<Row> rows = {
        {"||ads.example^", "ads.example"},
        {"||bet.championat.com^$important", "bet.championat.com"},
        {"||deloton.com$important", "deloton.com"},
        {"||ads.example^|", "ads.example"},
        {"||direct-specific.com", "direct-specific.com"},
        {"||Free-4paid.com^", "free-4paid.com"},
        {"||wvOntgd.pqmg.bid^", "wvontgd.pqmg.bid"},
        {".bbelements.com^", "bbelements.com"},
        {"ads.example^", "ads.example"},
        {"||ads.example.^", "ads.example"},
        {"  ||ads.example^  ", "ads.example"},
    };
    for (ListFormat format : {ListFormat::Auto, ListFormat::Adblock}) {
        for (const Row& row : rows) {
            INFO("row.line = " << row.line);
            Parsed p = parse(row.line, format);
            CHECK(p.just_names() == std::vector<std::string>{row.name});
        }
    }
}

TEST_CASE("domain_list: counts unsupported adblock syntax and reports it") {
    struct Row {
        const char* line;
        const char* reason;
    };
    const std::vector<Row> rows = {
        {"@@||cmp.osano.com^|", "adblock exception (@@)"},
        {"@@|cdn.taboola.com^|", "adblock exception (@@)"},
        {"@@||cdn.us*.exponea.com^|", "adblock exception (@@)"},
        {"@@-ds.metric.gstatic.com^|", "adblock exception (@@)"},
        {"@@/\\.(gif|jpe?g|png|webp)#(\\/?.+)?(\\/(ad)s?\\/|\\/ad-)/", "adblock exception (@@)"},
        {"||linksprf.com^$badfilter", "adblock modifier"},
        {"wykop.pl$badfilter", "adblock modifier"},
        {"||ads.example^$third-party", "adblock modifier"},
        {"||ads.example^$important,third-party", "adblock modifier"},
        {"/^88\\.208\\.22\\.[1234]$/", "adblock regex"},
        {"/^142\\.91\\.159\\.(1[5-9]\\d|2[0-4]\\d|250):(80|443)$/", "adblock regex"},
        {"||ad-host-backup-*.aliyuncs.com^", "wildcard"},
        {"||reachableads-av.*.amazonaws.com^", "wildcard"},
        {"*ad.durasite.net^", "wildcard"},
        {"||*.exaapi.com^", "wildcard"},
        {"|167.206.10.148^", "adblock start anchor"},
        {"://o0e.ru^", "adblock scheme anchor"},
        {"||fxhpaoxqyajvmdg.", "adblock prefix or substring"},
        {"||advertising.civitai.", "adblock prefix or substring"},
        {"||158.247.208.", "adblock prefix or substring"},
        {"-banner-ads.", "adblock prefix or substring"},
        {"-iklan-gif-", "adblock prefix or substring"},
        {"||107.167.16.*.gif", "wildcard"},
        {"||ads.example^/path", "adblock pattern is not a host name"},
        {"||ads.example:8080^", "adblock pattern is not a host name"},
        {"example.com##.ad-banner", "cosmetic adblock rule"},
        {"example.com#@#.ad-banner", "cosmetic adblock rule"},
    };
    for (ListFormat format : {ListFormat::Auto, ListFormat::Adblock}) {
        for (const Row& row : rows) {
            INFO("row.line = " << row.line);
            Parsed p = parse(row.line, format);
            CHECK(p.names.empty());
            CHECK(p.stats.unsupported == 1);
            REQUIRE(p.stats.first_issues.size() == 1);
            CHECK(p.stats.first_issues[0].line == 1);
            CHECK(p.stats.first_issues[0].reason.find(row.reason) == 0);
            CHECK(p.stats.first_issues[0].text == row.line);
        }
    }
    SUBCASE("plain and hosts lines never treat wildcards as names") {
        for (const char* line :
             {"analytics-*.aasaam.com", "0.0.0.0 a.*.example", "*ads.example", "*.*.example"}) {
            INFO("line = " << line);
            CHECK(parse(line).stats.unsupported == 1);
        }
    }
    SUBCASE("a leading *. means the domain and its subdomains, as every entry does") {
        Parsed p = parse("*.ads.example\n0.0.0.0 *.a.example\n*.Trackers.EXAMPLE.\n");
        CHECK(p.just_names() ==
              std::vector<std::string>{"ads.example", "a.example", "trackers.example"});
        CHECK(p.stats.unsupported == 0);
    }
}

TEST_CASE("domain_list: $badfilter cancels the rule it names, wherever it is") {
    const std::string text =
        "||linksprf.com^\n"
        "||kept.example^\n"
        "||linksprf.com^$badfilter\n"
        "wykop.pl$badfilter\n"
        "wykop.pl\n";
    for (ListFormat format : {ListFormat::Auto, ListFormat::Adblock}) {
        Parsed p = parse(text, format);
        CHECK(p.just_names() == std::vector<std::string>{"kept.example"});
        CHECK(p.stats.skipped == 2);      // the two cancelled rules
        CHECK(p.stats.unsupported == 2);  // the $badfilter lines themselves
    }
    // Hosts and plain files have no such thing: "$badfilter" there is just an invalid line.
    Parsed plain = parse("wykop.pl\nwykop.pl$badfilter\n", ListFormat::Plain);
    CHECK(plain.just_names() == std::vector<std::string>{"wykop.pl"});
}

TEST_CASE("domain_list: auto detects the format of each line") {
    const std::string text =
        "! adblock header\n"
        "# hosts header\n"
        "||adblock.example^\n"
        "0.0.0.0 hosts.example other.example\n"
        "plain.example\n"
        "@@||exception.example^\n"
        "::1 v6.example\n";
    Parsed p = parse(text);
    CHECK(p.names == std::vector<Named>{{"adblock.example", 3},
                                        {"hosts.example", 4},
                                        {"other.example", 4},
                                        {"plain.example", 5},
                                        {"v6.example", 7}});
    CHECK(p.stats.lines == 7);
    CHECK(p.stats.skipped == 2);
    CHECK(p.stats.unsupported == 1);
}

TEST_CASE("domain_list: line endings, last line, BOM and the issue list") {
    SUBCASE("CRLF and no final newline") {
        Parsed p = parse("a.example\r\n\r\nb.example\r\nc.example");
        CHECK(p.names == std::vector<Named>{{"a.example", 1}, {"b.example", 3}, {"c.example", 4}});
        CHECK(p.stats.lines == 4);
        CHECK(p.stats.skipped == 1);
    }
    SUBCASE("final newline adds no line") {
        CHECK(parse("a.example\n").stats.lines == 1);
        CHECK(parse("").stats.lines == 0);
        CHECK(parse("\n").stats.lines == 1);
    }
    SUBCASE("UTF-8 byte order mark") {
        CHECK(parse("\xEF\xBB\xBF"
                    "a.example\n")
                  .just_names() == std::vector<std::string>{"a.example"});
    }
    SUBCASE("only the first issues are kept, all are counted, long text is cut") {
        std::string text;
        for (int i = 0; i < 20; ++i) text += "bad" + std::to_string(i) + "\n";
        text += std::string(200, 'x') + "\xc3\xbc" + "\n";  // single label, 202 bytes
        Parsed p = parse(text);
        CHECK(p.stats.invalid == 21);
        REQUIRE(p.stats.first_issues.size() == kMaxIssues);
        CHECK(p.stats.first_issues[4].line == 5);
        CHECK(p.stats.first_issues[4].text == "bad4");

        Parsed long_line = parse("||" + std::string(100, 'a') + "\xc3\xbc.com/x^");
        REQUIRE(long_line.stats.first_issues.size() == 1);
        const std::string& cut = long_line.stats.first_issues[0].text;
        CHECK(cut.size() <= kMaxIssueTextBytes + 3);
        CHECK(cut.substr(cut.size() - 3) == "...");
    }
    SUBCASE("a UTF-8 sequence is never split by the cut") {
        const std::string line = "||" + std::string(77, 'a') + "\xc3\xbc\xc3\xbc/x^";
        Parsed p = parse(line);
        REQUIRE(p.stats.first_issues.size() == 1);
        CHECK(p.stats.first_issues[0].text == "||" + std::string(77, 'a') + "...");
    }
}

TEST_CASE("domain_list: a file that cannot be read is an error naming it") {
    const auto sink = [](std::string_view, uint32_t) {};
    Result<ListStats> missing =
        load_domain_list("/nonexistent/hallpass/ads.txt", ListFormat::Auto, sink);
    REQUIRE_FALSE(missing.ok());
    CHECK(missing.error().file == "/nonexistent/hallpass/ads.txt");
    CHECK(missing.error().message ==
          "cannot read list file \"/nonexistent/hallpass/ads.txt\": No such file or directory");

    Result<ListStats> dir = load_domain_list("/", ListFormat::Auto, sink);
    REQUIRE_FALSE(dir.ok());
    CHECK(dir.error().message.find("Is a directory") != std::string::npos);

    char path[] = "/tmp/hallpass_domain_list_XXXXXX";
    const int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    const std::string text = "0.0.0.0 a.example\n||b.example^";
    REQUIRE(write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()));
    close(fd);
    Parsed p = load(path);
    std::filesystem::remove(path);
    CHECK(p.names == std::vector<Named>{{"a.example", 1}, {"b.example", 2}});
}

// The real lists. Every count is what this importer's rules give; the comments reconcile it with
// the README's table (shared/data/blocklists/README.md, "How the counts below were made").
TEST_CASE("domain_list: real lists load with the documented counts") {
    struct Row {
        const char* path;
        ListFormat format;
        size_t lines, entries, skipped, invalid, unsupported, distinct;
    };
    const std::vector<Row> rows = {
        // 143,238 lines = 2,494 blank + 4,230 comment + 136,514 entry lines of one name each.
        // 136,514 names - 14 skipped header names (12 single-label localhost-style names,
        // localhost.localdomain, and "0.0.0.0" as a name) = 136,500 blocking names, the README's
        // number. The README's 17 invalid = 12 single-label + 1 "0.0.0.0" (skipped here, not
        // invalid) + 4 underscore names (valid host names here): invalid 0.
        {"stevenblack/hosts", ListFormat::Auto, 143238, 136500, 6724 + 14, 0, 0, 136500},
        {"stevenblack/hosts", ListFormat::Hosts, 143238, 136500, 6724 + 14, 0, 0, 136500},
        // 53,753 names - the 3 garbled numeric-TLD names; the 5 underscore names are valid.
        {"stevenblack/alternates/porn-only/hosts", ListFormat::Auto, 53826, 53750, 73, 3, 0, 53750},
        {"stevenblack/alternates/gambling-only/hosts", ListFormat::Auto, 7693, 7647, 46, 0, 0,
         7647},
        {"stevenblack/alternates/social-only/hosts", ListFormat::Auto, 2904, 2841, 63, 0, 0, 2841},
        // 12 header lines + 1 blank line, then 3,725 names (3 with underscores: valid).
        {"blocklistproject/tiktok.txt", ListFormat::Auto, 3738, 3725, 13, 0, 0, 3725},
        {"blocklistproject/tiktok.txt", ListFormat::Hosts, 3738, 3725, 13, 0, 0, 3725},
        {"blocklistproject/alt-version/tiktok-nl.txt", ListFormat::Auto, 3738, 3725, 13, 0, 0,
         3725},
        {"blocklistproject/alt-version/tiktok-nl.txt", ListFormat::Plain, 3738, 3725, 13, 0, 0,
         3725},
        {"blocklistproject/adguard/tiktok-ags.txt", ListFormat::Auto, 3738, 3725, 13, 0, 0, 3725},
        {"blocklistproject/adguard/tiktok-ags.txt", ListFormat::Adblock, 3738, 3725, 13, 0, 0,
         3725},
        // 72,202 lines = 945 `!` + 156 `#` comment lines + 71,101 rules (no blank lines).
        // Rules: 206 `@@` + 19 regexes (unsupported) + 70,876 others, which split into
        //   70,574 names: 70,569 `||name^` - 61 of them IPv4 - 1 cancelled by $badfilter
        //                 (`||linksprf.com^`) + 4 `$important` + 16 `.name^` + 47 `||name`;
        //   67 skipped: 61 `||IPv4^` + 5 `IPv4^` + the cancelled rule;
        //   235 unsupported: 158 wildcards, 63 prefix/substring fragments (`||rotator.`,
        //                    `-banner-ads.`), 8 `://`, 5 `$badfilter`, 1 single `|`
        //   (in Auto, `.1080.x.90.` reads as a plain line: invalid numeric TLD, not a fragment).
        // 70,574 - 13 names written twice in two syntaxes (README: "13 same name written in
        // another syntax") = 70,561 distinct.
        {"adguard-dns-filter-noprivacy/Filters/filter.txt", ListFormat::Adblock, 72202, 70574,
         1101 + 67, 0, 225 + 235, 70561},
        {"adguard-dns-filter-noprivacy/Filters/filter.txt", ListFormat::Auto, 72202, 70574,
         1101 + 67, 1, 225 + 234, 70561},
    };
    for (const Row& row : rows) {
        INFO("row.path = " << row.path);
        CAPTURE(static_cast<int>(row.format));
        const Parsed p = load(list_path(row.path), row.format);
        CHECK(p.stats.lines == row.lines);
        CHECK(p.stats.entries == row.entries);
        CHECK(p.stats.skipped == row.skipped);
        CHECK(p.stats.invalid == row.invalid);
        CHECK(p.stats.unsupported == row.unsupported);
        CHECK(p.names.size() == row.entries);
        CHECK(distinct(p) == row.distinct);
        // Every line is in exactly one bucket (one name per line in these files).
        CHECK(p.stats.entries + p.stats.skipped + p.stats.invalid + p.stats.unsupported ==
              p.stats.lines);
    }
}

TEST_CASE("domain_list: UT1 categories load with the documented counts") {
    // README: 58 files, 369,863 lines (one entry each, no comments), 365,925 distinct strings;
    // 23,251 IPv4 lines (23,232 distinct) are skipped; the 79 "other invalid" (76 underscore,
    // 2 leading dot, 1 edge hyphen) are valid names here. 365,925 - 23,232 = 342,693 distinct.
    const std::filesystem::path ut1 = list_path("ut1");
    size_t files = 0;
    ListStats total;
    std::set<std::string> names;
    std::vector<Named> dynamic_dns;
    for (const auto& dir : std::filesystem::directory_iterator(ut1)) {
        const std::filesystem::path domains = dir.path() / "domains";
        if (!std::filesystem::exists(domains)) continue;
        ++files;
        const Parsed p = load(domains.string(), ListFormat::Plain);
        total.lines += p.stats.lines;
        total.entries += p.stats.entries;
        total.skipped += p.stats.skipped;
        total.invalid += p.stats.invalid;
        total.unsupported += p.stats.unsupported;
        for (const Named& n : p.names) names.insert(n.name);
        if (dir.path().filename() == "dynamic-dns") dynamic_dns = p.names;
    }
    CHECK(files == 58);
    CHECK(total.lines == 369863);
    CHECK(total.entries == 369863 - 23251);
    CHECK(total.skipped == 23251);
    CHECK(total.invalid == 0);
    CHECK(total.unsupported == 0);
    CHECK(names.size() == 342693);
    // Leading dot: lines 1-2 of dynamic-dns mean the domain itself.
    REQUIRE(dynamic_dns.size() >= 2);
    CHECK(dynamic_dns[0] == Named{"afshin.ir", 1});
    CHECK(dynamic_dns[1] == Named{"giswebservice.com", 2});
    for (const char* name :
         {"abbyfaer_rkoa.tripod.com", "_214214214.xyz", "_video-bagarre.com", "w-w-i-s-.com"}) {
        INFO("name = " << name);
        CHECK(names.count(name) == 1);
    }
    CHECK(names.count("118.123.4.224") == 0);
    CHECK(load(list_path("ut1/agressif/domains")).stats.first_issues.empty());
    CHECK(name_at(load(list_path("ut1/agressif/domains")), 1) == "<nothing loaded>");
}

TEST_CASE("domain_list: the three tiktok files give the same names in the same order") {
    const Parsed hosts = load(list_path("blocklistproject/tiktok.txt"));
    const Parsed plain = load(list_path("blocklistproject/alt-version/tiktok-nl.txt"));
    const Parsed adblock = load(list_path("blocklistproject/adguard/tiktok-ags.txt"));
    CHECK(hosts.names.size() == 3725);
    CHECK(hosts.names == plain.names);  // line numbers too: the same 13-line header
    CHECK(hosts.names == adblock.names);
    CHECK(has_name(hosts, "client_monitor.isnssdk.com"));
}

TEST_CASE("domain_list: odd lines of the real lists are handled as the README says") {
    const Parsed steven = load(list_path("stevenblack/hosts"));
    SUBCASE("localhost header (lines 15-28) is not loaded") {
        for (uint32_t line = 15; line <= 28; ++line) {
            CAPTURE(line);
            CHECK(name_at(steven, line) == "<nothing loaded>");
        }
        for (const char* name : {"localhost", "localhost.localdomain", "local", "broadcasthost",
                                 "ip6-localhost", "ip6-allhosts", "0.0.0.0"}) {
            CHECK_FALSE(has_name(steven, name));
        }
    }
    SUBCASE("inline comments after entries") {
        CHECK(name_at(steven, 1817) == "docs.pipenv.org");
        CHECK(name_at(steven, 119872) == "www.ad-groups.com");
        CHECK(name_at(steven, 128587) == "media.fastclick.net");
    }
    SUBCASE("commented-out entries are not loaded") {
        for (uint32_t line : {119958u, 128578u, 128350u, 128545u}) {
            CAPTURE(line);
            CHECK(name_at(steven, line) == "<nothing loaded>");
        }
        CHECK_FALSE(has_name(steven, "rules.atgsvcs.com"));
        CHECK_FALSE(has_name(steven, "sitefinder.verisign.com"));
        CHECK_FALSE(has_name(steven, "g"));
        const Parsed social = load(list_path("stevenblack/alternates/social-only/hosts"));
        CHECK(name_at(social, 25) == "<nothing loaded>");
        CHECK_FALSE(has_name(social, "plus.l.google.com"));
        CHECK_FALSE(has_name(social, "example.com"));
    }
    SUBCASE("comment lines that start with whitespace") {
        for (uint32_t line : {128576u, 128580u, 128593u}) {
            CAPTURE(line);
            CHECK(name_at(steven, line) == "<nothing loaded>");
        }
        CHECK(steven.stats.invalid == 0);  // none of them was read as an entry
    }
    SUBCASE("garbled entries in porn-only are invalid, with their line numbers") {
        const Parsed porn = load(list_path("stevenblack/alternates/porn-only/hosts"));
        CHECK(porn.stats.invalid == 3);
        CHECK(issue_reason_at(porn, 35830) == "numeric top-level label");
        CHECK(issue_reason_at(porn, 42665) == "numeric top-level label");
        CHECK(issue_reason_at(porn, 50003) == "numeric top-level label");
        CHECK(porn.stats.first_issues[0].text == "beeg.globa0.0.0.0");
    }
    SUBCASE("underscores and punycode are names") {
        CHECK(has_name(steven, "prebid_stats.mars.media"));
        CHECK(has_name(steven, "zgarniij_vouchher.skroc.pl"));
        CHECK(has_name(steven, "xn--blckchain-17c.com"));
    }
    SUBCASE("adguard filter variants") {
        const Parsed adguard = load(list_path("adguard-dns-filter-noprivacy/Filters/filter.txt"));
        CHECK(has_name(adguard, "xn--2ss830adjbqy7h.xn--fiqs8s"));
        CHECK(has_name(adguard, "bet.championat.com"));   // $important
        CHECK(has_name(adguard, "direct-specific.com"));  // no ^
        CHECK(has_name(adguard, "bbelements.com"));       // .name^
        CHECK(has_name(adguard, "free-4paid.com"));       // upper case
        CHECK(has_name(adguard, "wvontgd.pqmg.bid"));
        CHECK_FALSE(has_name(adguard, "linksprf.com"));   // cancelled by $badfilter
        CHECK_FALSE(has_name(adguard, "cmp.osano.com"));  // only in an @@ exception
        CHECK_FALSE(has_name(adguard, "o0e.ru"));
        CHECK_FALSE(has_name(adguard, "fxhpaoxqyajvmdg"));
        CHECK_FALSE(has_name(adguard, "167.206.10.148"));
        CHECK_FALSE(has_name(adguard, "ad.durasite.net"));
        for (const Named& n : adguard.names) {
            CHECK_MESSAGE(n.name.find_first_of("*^|/$#") == std::string::npos, n.name);
        }
        // The # comment at line 58118 and the Persian text at line 71365 are comments.
        CHECK(name_at(adguard, 58118) == "<nothing loaded>");
        CHECK(name_at(adguard, 71365) == "<nothing loaded>");
        CHECK(adguard.stats.lines == 72202);  // the last line has no newline
    }
}
