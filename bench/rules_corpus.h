// Inputs of the rule-engine benchmarks (rules_decide_bench, rules_file_bench): the 1M list names
// (the real lists under shared/data/blocklists/ plus synthetic names, generated exactly as
// rules_load_bench.cpp does, same seed, so all three benches load the same names), and a
// rules.yaml with 100 rules, 1k host regexes, url regexes, groups and every real list file.
// Header-only, bench code: files are written to a directory the caller owns.
#pragma once

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <string>
#include <unordered_set>
#include <vector>

#include "hallpass/rules/domain_list.h"

#ifndef HALLPASS_BLOCKLISTS_DEFAULT
#define HALLPASS_BLOCKLISTS_DEFAULT "../shared/data/blocklists"
#endif

namespace bench {

// The real list files rules_load_bench reads: UT1 `domains`, StevenBlack `hosts`, the AdGuard
// `filter.txt` and the three Block List Project tiktok lists. Sorted, so the order is stable.
inline std::vector<std::filesystem::path> real_lists(const std::filesystem::path& dir) {
    std::vector<std::filesystem::path> files;
    for (const auto& entry : std::filesystem::recursive_directory_iterator(dir)) {
        const std::string name = entry.path().filename().string();
        if (!entry.is_regular_file()) continue;
        if (name == "domains" || name == "hosts" || name == "filter.txt" ||
            name.find("tiktok") != std::string::npos) {
            files.push_back(entry.path());
        }
    }
    std::sort(files.begin(), files.end());
    return files;
}

// Deterministic synthetic names shaped like list entries: 2-3 labels of 3-14 letters/digits.
// Copied from rules_load_bench.cpp (same seed, same draws): keep the two in step.
class NameGenerator {
  public:
    explicit NameGenerator(uint64_t seed = 20260901) : rng_(seed) {}
    std::string next() {
        static const char* const kTlds[] = {"com", "net", "org", "ru", "de",    "info",
                                            "xyz", "top", "io",  "fr", "co.uk", "com.br"};
        std::string name = label();
        if (rng_() % 3 == 0) name = label() + "." + name;
        return name + "." + kTlds[rng_() % (sizeof kTlds / sizeof *kTlds)];
    }
    std::string label() {
        static constexpr char kChars[] = "abcdefghijklmnopqrstuvwxyz0123456789";
        std::string out(3 + rng_() % 12, 'a');
        for (char& c : out) c = kChars[rng_() % 36];
        return out;
    }

  private:
    std::mt19937_64 rng_;
};

struct Corpus {
    std::vector<std::string> names;  // distinct, canonical: the real names first
    size_t real_names = 0;
};

// Every distinct name of the real lists (as hallpass's importer reads them), then synthetic
// names up to `target` distinct.
inline Corpus make_corpus(const std::filesystem::path& dir, size_t target) {
    Corpus corpus;
    std::unordered_set<std::string> seen;
    seen.reserve(target * 2);
    for (const auto& file : real_lists(dir)) {
        (void)hallpass::load_domain_list(
            file.string(), hallpass::ListFormat::Auto, [&](std::string_view name, uint32_t) {
                if (seen.size() < target && seen.emplace(name).second) {
                    corpus.names.emplace_back(name);
                }
            });
    }
    corpus.real_names = corpus.names.size();
    NameGenerator gen;
    while (corpus.names.size() < target) {
        std::string name = gen.next();
        if (seen.insert(name).second) corpus.names.push_back(std::move(name));
    }
    return corpus;
}

// The corpus without names whose parent domain is also listed, topped up with more synthetic
// names (none a parent or child of another) to `target` again. Squid 5.7 refuses a dstdomain
// ACL where one entry is a subdomain of another ("FATAL: Bungled ... You need to remove"), so
// the proxy comparisons give both proxies this list. Real names stay first.
inline Corpus make_flat_corpus(const std::filesystem::path& dir, size_t target) {
    Corpus full = make_corpus(dir, target);
    std::unordered_set<std::string> names(full.names.begin(), full.names.end());
    auto has_listed_parent = [&](const std::string& name) {
        for (size_t dot = name.find('.'); dot != std::string::npos; dot = name.find('.', dot + 1)) {
            if (names.count(name.substr(dot + 1))) return true;
        }
        return false;
    };
    Corpus flat;
    std::unordered_set<std::string> parents;  // every proper label suffix of a kept name
    auto keep = [&](std::string name) {
        for (size_t dot = name.find('.'); dot != std::string::npos; dot = name.find('.', dot + 1)) {
            parents.insert(name.substr(dot + 1));
        }
        flat.names.push_back(std::move(name));
    };
    for (size_t i = 0; i < full.names.size(); ++i) {
        if (has_listed_parent(full.names[i])) continue;
        keep(std::move(full.names[i]));
        if (i < full.real_names) ++flat.real_names;
    }
    names.clear();
    names.insert(flat.names.begin(), flat.names.end());
    NameGenerator gen(20260902);
    while (flat.names.size() < target) {
        std::string name = gen.next();
        if (names.count(name) || parents.count(name) || has_listed_parent(name)) continue;
        names.insert(name);
        keep(std::move(name));
    }
    return flat;
}

// Writes names[begin, end), one per line, each with `prefix` ("" or "." for a Squid dstdomain
// ACL file).
inline bool write_names(const std::filesystem::path& path, const std::vector<std::string>& names,
                        size_t begin, size_t end, const std::string& prefix = "") {
    std::ofstream out(path, std::ios::binary);
    std::string buf;
    buf.reserve(1 << 20);
    for (size_t i = begin; i < end; ++i) {
        buf.append(prefix).append(names[i]).push_back('\n');
        if (buf.size() > (1 << 20) - 512) {
            out.write(buf.data(), static_cast<std::streamsize>(buf.size()));
            buf.clear();
        }
    }
    out.write(buf.data(), static_cast<std::streamsize>(buf.size()));
    return static_cast<bool>(out);
}

// What the generated rules contain, so the decision bench can build hosts that hit each kind.
struct RuleMix {
    std::vector<std::string> domains;       // every `domains:` entry
    std::vector<std::string> hosts;         // every `hosts:` entry (names)
    std::vector<std::string> regex_hosts;   // hosts built to match some host_regex
    std::vector<std::string> url_paths;     // paths that match some url_regex
    std::vector<std::string> dest_net_ips;  // IP literals inside some dest_nets
    std::vector<std::string> client_ips;    // clients that traffic comes from
    size_t host_regex = 0, url_regex = 0, rules = 0, lists = 0;
};

// Words for regexes and rule names: what filter admins actually write patterns about.
inline const std::vector<std::string>& regex_words() {
    static const std::vector<std::string> words = {
        "casino",    "poker",        "betting",   "slots",     "roulette",  "jackpot",
        "bingo",     "lottery",      "sportsbet", "wager",     "porn",      "xxx",
        "sex",       "nude",         "escort",    "camgirl",   "hentai",    "adult",
        "milf",      "fetish",       "tracker",   "tracking",  "analytics", "telemetry",
        "metrics",   "pixel",        "beacon",    "adserver",  "adsrv",     "doubleclk",
        "banner",    "popup",        "popunder",  "clickbait", "affiliate", "crypto",
        "miner",     "coinhive",     "bitcoin",   "torrent",   "warez",     "crack",
        "keygen",    "piracy",       "streamz",   "proxy",     "vpn",       "unblock",
        "bypass",    "anonymizer",   "tor2web",   "phish",     "malware",   "ransom",
        "spyware",   "adware",       "stalker",   "gore",      "violence",  "weapon",
        "drugs",     "cannabis",     "vape",      "alcohol",   "dating",    "hookup",
        "tinder",    "chatroulette", "omegle",    "gaming",    "fortnite",  "roblox",
        "minecraft", "steam",        "twitch",    "tiktok",    "instagram", "snapchat",
        "facebook",  "twitter",      "reddit",    "youtube",   "netflix",   "hulu",
        "spotify",   "discord",      "telegram",  "whatsapp",  "shopping",  "deals",
        "coupon",    "lootbox",      "gacha",     "freebie",   "giveaway",  "sweepstake",
        "cheats",    "hacks",        "aimbot",    "spinwin",   "luckyspin", "fastloan",
        "payday",    "forex",        "binaryopt", "pharma",    "viagra",    "cialis",
        "diet",      "hotgirls",     "webcam",    "livecam",   "chaturbat", "onlyfan",
        "leaked",    "celebnude",    "upskirt",   "bdsm",      "swinger",   "redtube",
        "xhamster",  "youporn",      "pornhub",   "brazzer",   "bet365",    "pokerstar",
    };
    return words;
}

// 1,000 (or `count`) distinct host patterns in ten shapes, each over the word list.
inline std::vector<std::string> host_patterns(size_t count) {
    const auto& w = regex_words();
    const char* const shapes[] = {
        R"((^|\.)%s[0-9]*\.)",                         // casino123.example.com
        R"(%s)",                                       // keyword anywhere
        R"(^%s-?[a-z0-9]*\.(com|net|org)$)",           // prefix, common TLDs
        R"((^|\.)(www\.)?%s(tube|cam|bet|live)s?\.)",  // compound names
        R"(\.%s\.(xyz|top|club|online|site)$)",        // cheap TLDs
        R"(^(ads?|track|pixel|stats)[0-9]*\.%s\.)",    // ad subdomains of a word
        R"((^|[.-])%s([.-]|$))",                       // whole word between separators
        R"(^[a-z0-9]{8,}\.%s\.)",                      // random-looking first label
        R"(%s[0-9]{2,4}\.(com|net|info)$)",            // word + number
        R"(^(m|www|static|cdn)\.%s[a-z]{0,3}\.)",      // common hosts of a word-ish name
    };
    std::vector<std::string> out;
    std::set<std::string> seen;
    char buf[256];
    for (size_t round = 0; out.size() < count; ++round) {
        for (size_t i = 0; i < w.size() && out.size() < count; ++i) {
            const char* shape = shapes[(i + round) % (sizeof shapes / sizeof *shapes)];
            // Later rounds vary the word so patterns stay distinct: "casino" -> "casino2".
            std::string word = round < 10 ? w[i] : w[i] + std::to_string(round / 10 + 1);
            std::snprintf(buf, sizeof buf, shape, word.c_str());
            if (seen.insert(buf).second) out.emplace_back(buf);
        }
    }
    return out;
}

// A host that the pattern built from shape (i + round) % 10 and word w[i] matches.
inline std::string host_for_pattern(size_t shape, const std::string& word, size_t n) {
    const std::string num = std::to_string(n % 97);
    switch (shape % 10) {
        case 0:
            return "www." + word + num + ".example.com";
        case 1:
            return "cdn.my" + word + "site.net";
        case 2:
            return word + "-" + num + ".com";
        case 3:
            return "www." + word + "tubes.org";
        case 4:
            return "files." + word + ".xyz";
        case 5:
            return "ads" + num + "." + word + ".net";
        case 6:
            return "go." + word + ".example.org";
        case 7:
            return "a1b2c3d4e5." + word + ".com";
        case 8:
            return "www." + word + "2024.com";
        default:
            return "static." + word + "x.de";
    }
}

inline std::vector<std::string> url_patterns(size_t count) {
    const auto& w = regex_words();
    const char* const shapes[] = {
        R"(^http://[^/]+/%s/)",                                // a path segment
        R"([?&]utm_source=%s)",                                // a query parameter
        R"(^http://[^/]+/[^?]*%s[^/?]*\.(exe|msi|apk|dmg)$)",  // downloads named after a word
        R"(/(banner|popup|ad)s?/[^?]*%s)",                     // ad paths
        R"(^http://[^/]*%s[^/]*/[^?]*\?.*ref=)",               // host word and a ref parameter
    };
    std::vector<std::string> out;
    char buf[256];
    for (size_t i = 0; out.size() < count; ++i) {
        std::snprintf(buf, sizeof buf, shapes[i % 5], w[(i * 7) % w.size()].c_str());
        out.emplace_back(buf);
    }
    return out;
}

inline std::string url_path_for_pattern(size_t i) {
    const auto& w = regex_words();
    const std::string& word = w[(i * 7) % w.size()];
    switch (i % 5) {
        case 0:
            return "/" + word + "/index.html";
        case 1:
            return "/landing?utm_source=" + word + "&x=1";
        case 2:
            return "/dl/get-" + word + "-setup.exe";
        case 3:
            return "/banners/300x250-" + word + ".gif";
        default:
            return "";  // the host must hold the word: not a path-only match
    }
}

inline std::string yaml_list(const std::vector<std::string>& items) {
    std::string out = "[";
    for (size_t i = 0; i < items.size(); ++i) {
        if (i > 0) out += ", ";
        out += "'" + items[i] + "'";  // single quotes: regexes keep their backslashes
    }
    return out + "]";
}

// Writes DIR/synthetic.txt (the corpus's synthetic names) and DIR/rules-full.yaml: every real
// list file (by absolute path) and the synthetic list, 100 rules that mix clients, groups,
// domains, hosts, lists, host_regex (1,000 patterns), url_regex, dest_nets and ports. Every list
// is used by a rule, so all 1M names are indexed. Returns what the rules hold.
inline RuleMix write_full_rules(const std::filesystem::path& dir,
                                const std::filesystem::path& lists, const Corpus& corpus,
                                size_t host_regex_count = 1000) {
    RuleMix mix;
    write_names(dir / "synthetic.txt", corpus.names, corpus.real_names, corpus.names.size());
    std::vector<std::pair<std::string, std::string>> list_files;  // name, path
    int n = 0;
    for (const auto& file : real_lists(lists)) {
        // "ut1-gambling", "stevenblack-hosts", ...
        std::string name = file.parent_path().filename().string() + "-" + std::to_string(n++);
        std::replace(name.begin(), name.end(), '_', '-');
        list_files.emplace_back(name, std::filesystem::absolute(file).string());
    }
    list_files.emplace_back("synthetic", (dir / "synthetic.txt").string());
    mix.lists = list_files.size();

    std::mt19937_64 rng(424242);
    std::string y = "default: allow\ngroups:\n";
    const char* const groups[][2] = {
        {"kids", "[192.168.1.50, 192.168.1.64/27, 'fd00:1::/64']"},
        {"teens", "[192.168.1.128/26]"},
        {"staff", "[192.168.2.0/24, 'fd00:2::/64']"},
        {"guests", "[192.168.3.0/24, 172.16.8.0/22]"},
        {"servers", "[10.1.0.0/16]"},
        {"lab", "[10.2.0.0/16, 10.3.5.0/24, 'fd00:3::/48']"},
        {"printers", "[192.168.4.10, 192.168.4.11]"},
        {"iot", "[192.168.5.0/24]"},
    };
    for (const auto& g : groups) y += std::string("  ") + g[0] + ": " + g[1] + "\n";
    mix.client_ips = {"192.168.1.50", "192.168.1.70", "192.168.1.140", "192.168.2.5",
                      "192.168.3.9",  "10.1.2.3",     "10.9.9.9",      "fd00:1::5",
                      "fd00:2::7",    "2001:db8::42"};
    y += "lists:\n";
    for (const auto& [name, path] : list_files) {
        y += "  " + name + ": { file: '" + path + "' }\n";
    }
    y += "rules:\n";
    auto group_or_none = [&](int k) -> std::string {
        static const char* const names[] = {"kids",    "teens", "staff", "guests",
                                            "servers", "lab",   "iot"};
        if (k % 3 == 2) return "";  // a third of the rules apply to every client
        return names[k % 7];
    };
    auto ports = [&](int k) -> std::string {
        switch (k % 5) {
            case 0:
                return "[80, 443]";
            case 1:
                return "[443]";
            default:
                return "";
        }
    };
    const auto patterns = host_patterns(host_regex_count);
    const auto urls = url_patterns(50);
    const auto& words = regex_words();
    int rule = 0;
    auto begin = [&](const std::string& name, const char* action) {
        y += "  - name: " + name + "-" + std::to_string(rule++) + "\n    action: " + action + "\n";
    };
    // 4 banned devices (clients only), one port rule (no destination).
    for (int i = 0; i < 4; ++i) {
        begin("banned-device", "block");
        y += "    clients: [192.168.1." + std::to_string(66 + i) + "]\n";
    }
    begin("no-irc-smtp", "block");
    y += "    ports: [25, 6667]\n";
    // 6 allow exceptions (domains + hosts for groups), before the blocks.
    for (int i = 0; i < 6; ++i) {
        begin("homework", "allow");
        std::vector<std::string> d, h;
        for (int j = 0; j < 5; ++j) d.push_back("school" + std::to_string(i * 5 + j) + ".edu");
        for (int j = 0; j < 3; ++j) {
            h.push_back("docs" + std::to_string(j) + ".learn" + std::to_string(i) + ".org");
        }
        mix.domains.insert(mix.domains.end(), d.begin(), d.end());
        mix.hosts.insert(mix.hosts.end(), h.begin(), h.end());
        y += "    clients: " + std::string(i % 2 ? "staff" : "kids") + "\n";
        y += "    domains: " + yaml_list(d) + "\n    hosts: " + yaml_list(h) + "\n";
    }
    // The UT1 white list as an allow rule, as UT1 intends it.
    size_t list_index = 0;
    for (size_t i = 0; i < list_files.size(); ++i) {
        if (list_files[i].first.rfind("liste-blanche", 0) == 0) {
            begin("whitelist", "allow");
            y += "    lists: [" + list_files[i].first + "]\n";
        }
    }
    // 84 more: list rules, domain/host rules, regex rules, url rules, dest_nets, in rotation.
    size_t pattern_at = 0, url_at = 0;
    const size_t regex_rules = 10, url_rules = 5;
    size_t regex_rules_done = 0, url_rules_done = 0;
    for (int k = 0; rule < 100; ++k) {
        const std::string g = group_or_none(k);
        const std::string p = ports(k);
        switch (k % 6) {
            case 0:
            case 1: {  // lists: 2-4 each until every list is used, then reused
                begin("lists", k % 7 == 3 ? "allow" : "block");
                std::vector<std::string> names;
                for (int j = 0; j < 2 + k % 3; ++j) {
                    if (list_files[list_index % list_files.size()].first.rfind("liste-blanche",
                                                                               0) == 0) {
                        ++list_index;
                    }
                    names.push_back(list_files[list_index++ % list_files.size()].first);
                }
                y += "    lists: [";
                for (size_t j = 0; j < names.size(); ++j) y += (j ? ", " : "") + names[j];
                y += "]\n";
                break;
            }
            case 2: {  // domains and hosts
                begin("sites", "block");
                std::vector<std::string> d, h;
                for (int j = 0; j < 10; ++j) {
                    d.push_back(words[(k * 10 + j) % words.size()] + std::to_string(k) + ".com");
                }
                for (int j = 0; j < 5; ++j) {
                    h.push_back("games" + std::to_string(j) + ".site" + std::to_string(k) + ".net");
                }
                mix.domains.insert(mix.domains.end(), d.begin(), d.end());
                mix.hosts.insert(mix.hosts.end(), h.begin(), h.end());
                y += "    domains: " + yaml_list(d) + "\n    hosts: " + yaml_list(h) + "\n";
                break;
            }
            case 3: {  // host_regex: 1,000 patterns over 10 rules
                if (regex_rules_done == regex_rules || patterns.empty()) continue;
                begin("regex", "block");
                const size_t take =
                    (patterns.size() - pattern_at) / (regex_rules - regex_rules_done);
                std::vector<std::string> pats(patterns.begin() + pattern_at,
                                              patterns.begin() + pattern_at + take);
                pattern_at += take;
                ++regex_rules_done;
                y += "    host_regex: " + yaml_list(pats) + "\n";
                break;
            }
            case 4: {  // url_regex: 50 patterns over 5 rules
                if (url_rules_done == url_rules) continue;
                begin("urls", "block");
                std::vector<std::string> pats(urls.begin() + url_at, urls.begin() + url_at + 10);
                url_at += 10;
                ++url_rules_done;
                y += "    url_regex: " + yaml_list(pats) + "\n";
                break;
            }
            default: {  // dest_nets, or a group-only rule every third time
                if (k % 18 == 5) {
                    begin("lan-only", "block");
                    y += "    dest_nets: ['10." + std::to_string(20 + k % 50) +
                         ".0.0/16', 'fd00:" + std::to_string(100 + k) + "::/32']\n";
                    mix.dest_net_ips.push_back("10." + std::to_string(20 + k % 50) + ".1.2");
                } else {
                    begin("group-sites", "block");
                    std::vector<std::string> d;
                    for (int j = 0; j < 3; ++j) {
                        d.push_back("chat" + std::to_string(j) + ".net" + std::to_string(k) +
                                    ".io");
                    }
                    mix.domains.insert(mix.domains.end(), d.begin(), d.end());
                    y += "    domains: " + yaml_list(d) + "\n";
                }
                break;
            }
        }
        if (!g.empty()) y += "    clients: " + g + "\n";
        if (!p.empty()) y += "    ports: " + p + "\n";
    }
    // Every list must be used by some rule (unused lists are not indexed): add the rest to the
    // last list rule is not possible after the fact, so check and fail loudly instead.
    if (list_index < list_files.size()) {
        std::fprintf(stderr, "rules_corpus: only %zu of %zu lists used\n", list_index,
                     list_files.size());
    }
    mix.rules = static_cast<size_t>(rule);
    mix.host_regex = pattern_at;
    mix.url_regex = url_at;
    for (size_t i = 0; i < patterns.size(); ++i) {
        // Pattern i came from word i % words and shape ((i % words) + round) % 10.
        const size_t wi = i % words.size(), round = i / words.size();
        if (round >= 10) continue;  // numbered words: skip, the first 10 rounds are plenty
        mix.regex_hosts.push_back(host_for_pattern(wi + round, words[wi], i));
    }
    for (size_t i = 0; i < urls.size(); ++i) {
        std::string path = url_path_for_pattern(i);
        if (!path.empty()) mix.url_paths.push_back(path);
    }
    std::ofstream(dir / "rules-full.yaml") << y;
    return mix;
}

}  // namespace bench
