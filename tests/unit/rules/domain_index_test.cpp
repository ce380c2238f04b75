// domain_index: exact and label-aligned suffix lookups, several sets per name, posting-list
// sharing, the empty index, and a large build checked against a std::set.
#include "hallpass/rules/domain_index.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <map>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

using namespace hallpass;

namespace {

using Match = std::pair<uint32_t, std::string>;

std::vector<Match> exact(const DomainIndex& index, std::string_view host) {
    std::vector<Match> out;
    index.for_each_exact(host, [&out](uint32_t set, std::string_view name) {
        out.emplace_back(set, std::string(name));
    });
    return out;
}

std::vector<Match> suffix(const DomainIndex& index, std::string_view host) {
    std::vector<Match> out;
    index.for_each_suffix(host, [&out](uint32_t set, std::string_view name) {
        out.emplace_back(set, std::string(name));
    });
    return out;
}

DomainIndex build(const std::vector<std::pair<std::string, uint32_t>>& names) {
    DomainIndex::Builder builder;
    for (const auto& [name, set] : names) builder.add(name, set);
    return std::move(builder).build();
}

}  // namespace

TEST_CASE("domain_index: exact lookups match the whole host only") {
    const DomainIndex index = build({{"example.com", 1}, {"ads.example.net", 2}});
    struct Row {
        const char* host;
        std::vector<Match> matches;
    };
    const std::vector<Row> rows = {
        {"example.com", {{1, "example.com"}}},
        {"ads.example.net", {{2, "ads.example.net"}}},
        {"www.example.com", {}},  // a subdomain is not the host
        {"example.net", {}},      // nor is a parent
        {"com", {}},
        {"xample.com", {}},
        {"example.co", {}},
        {"", {}},
    };
    for (const Row& row : rows) {
        INFO("row.host = " << row.host);
        CHECK(exact(index, row.host) == row.matches);
        CHECK(index.contains(row.host) == !row.matches.empty());
    }
}

TEST_CASE("domain_index: suffix lookups match the host and its parent domains at labels") {
    const DomainIndex index =
        build({{"example.com", 1}, {"b.example.com", 2}, {"tiktok.com", 3}, {"co.uk", 4}});
    struct Row {
        const char* host;
        std::vector<Match> matches;  // most specific first
    };
    const std::vector<Row> rows = {
        {"example.com", {{1, "example.com"}}},
        {"www.example.com", {{1, "example.com"}}},
        {"a.b.example.com", {{2, "b.example.com"}, {1, "example.com"}}},
        {"b.example.com", {{2, "b.example.com"}, {1, "example.com"}}},
        {"ample.com", {}},         // "ample.com" never matches "example.com"...
        {"anexample.com", {}},     // ...nor does "example.com" match "anexample.com"
        {"example.com.evil", {}},  // a suffix, not a prefix
        {"com", {}},
        {"notiktok.com", {}},
        {"v16.tiktok.com", {{3, "tiktok.com"}}},
        {"www.bbc.co.uk", {{4, "co.uk"}}},
        {"", {}},
    };
    for (const Row& row : rows) {
        INFO("row.host = " << row.host);
        CHECK(suffix(index, row.host) == row.matches);
    }
}

TEST_CASE("domain_index: a name in several sets reports each set once") {
    const DomainIndex index = build({{"ads.example", 7},
                                     {"ads.example", 3},
                                     {"ads.example", 7},  // duplicate
                                     {"ads.example", 12},
                                     {"x.ads.example", 3},
                                     {"other.example", 3},
                                     {"other.example", 7},
                                     {"other.example", 12},
                                     {"lone.example", 0}});
    CHECK(index.size() == 4);
    CHECK(exact(index, "ads.example") ==
          std::vector<Match>{{3, "ads.example"}, {7, "ads.example"}, {12, "ads.example"}});
    CHECK(suffix(index, "x.ads.example") ==
          std::vector<Match>{
              {3, "x.ads.example"}, {3, "ads.example"}, {7, "ads.example"}, {12, "ads.example"}});
    CHECK(exact(index, "lone.example") == std::vector<Match>{{0, "lone.example"}});
    CHECK(exact(index, "other.example").size() == 3);
}

TEST_CASE("domain_index: a callback returning false stops the walk") {
    const DomainIndex index = build({{"a.example", 1}, {"a.example", 2}, {"example", 3}});
    std::vector<uint32_t> seen;
    index.for_each_suffix("x.a.example", [&seen](uint32_t set, std::string_view) {
        seen.push_back(set);
        return false;
    });
    CHECK(seen == std::vector<uint32_t>{1});
    seen.clear();
    index.for_each_suffix("x.a.example", [&seen](uint32_t set, std::string_view) {
        seen.push_back(set);
        return set != 2;
    });
    CHECK(seen == std::vector<uint32_t>{1, 2});
}

TEST_CASE("domain_index: empty index matches nothing") {
    const DomainIndex default_constructed;
    const DomainIndex built = DomainIndex::Builder().build();
    for (const DomainIndex* index : {&default_constructed, &built}) {
        CHECK(index->size() == 0);
        CHECK(index->empty());
        CHECK(exact(*index, "example.com").empty());
        CHECK(suffix(*index, "www.example.com").empty());
        CHECK(suffix(*index, "").empty());
        CHECK_FALSE(index->contains("example.com"));
    }
}

TEST_CASE("domain_index: one-label, long and odd hosts") {
    const std::string label63(63, 'a');
    const std::string long_name = label63 + "." + std::string(63, 'b') + "." +
                                  std::string(63, 'c') + "." + std::string(61, 'd');
    REQUIRE(long_name.size() == 253);
    const DomainIndex index = build({{"localhost", 1}, {long_name, 2}, {"example", 3}});
    SUBCASE("one label") {
        CHECK(exact(index, "localhost") == std::vector<Match>{{1, "localhost"}});
        CHECK(suffix(index, "localhost") == std::vector<Match>{{1, "localhost"}});
        CHECK(suffix(index, "my.localhost") == std::vector<Match>{{1, "localhost"}});
        CHECK(suffix(index, "example") == std::vector<Match>{{3, "example"}});
    }
    SUBCASE("long") {
        CHECK(exact(index, long_name) == std::vector<Match>{{2, long_name}});
        CHECK(suffix(index, "x." + long_name) == std::vector<Match>{{2, long_name}});
        CHECK(suffix(index, long_name.substr(64)).empty());  // a parent of it is not listed
    }
    SUBCASE("empty labels and dots do not crash or match oddly") {
        CHECK(suffix(index, ".").empty());
        CHECK(suffix(index, "..").empty());
        CHECK(suffix(index, "example.").empty());  // canonical hosts have no trailing dot
        CHECK(suffix(index, "a..example") == std::vector<Match>{{3, "example"}});
    }
}

TEST_CASE("domain_index: memory stays compact and posting lists are shared") {
    DomainIndex::Builder builder;
    for (int i = 0; i < 10000; ++i) {
        const std::string name = "host" + std::to_string(i) + ".example";
        builder.add(name, 1);
        if (i % 2 == 0) builder.add(name, 2);  // 5,000 names in sets {1, 2}: one shared list
    }
    CHECK(builder.pending() == 15000);
    const DomainIndex index = std::move(builder).build();
    CHECK(index.size() == 10000);
    // 12-byte slots at a load of 0.8 (+ a tail), one 3-word posting list.
    CHECK(index.memory_bytes() <= 10000 * 16);
    CHECK(index.memory_bytes() >= 10000 * 12);
    CHECK(exact(index, "host4.example") ==
          std::vector<Match>{{1, "host4.example"}, {2, "host4.example"}});
    CHECK(exact(index, "host5.example") == std::vector<Match>{{1, "host5.example"}});
}

TEST_CASE("domain_index: the two-step lookup gives what the one-step walk gives") {
    const DomainIndex index = build({{"example.com", 1}, {"b.example.com", 2}, {"com", 3}});
    for (const char* host :
         {"a.b.example.com", "example.com", "com", "x.org", "", "b.example.com"}) {
        INFO("host = " << host);
        DomainIndex::SuffixLookup lookup;
        index.start_suffix_lookup(host, lookup);
        std::vector<Match> two_step;
        index.for_each_suffix(host, lookup, [&two_step](uint32_t set, std::string_view name) {
            two_step.emplace_back(set, std::string(name));
        });
        CHECK(two_step == suffix(index, host));
    }
}

TEST_CASE("domain_index: a host of more labels than any DNS name is walked up to kMaxLabels") {
    const DomainIndex index = build({{"example", 1}, {"a.example", 2}});
    std::string host = "a.example";
    for (int i = 0; i < 300; ++i) host = "x." + host;  // 302 labels
    const std::vector<Match> got = suffix(index, host);
    CHECK(got == std::vector<Match>{{2, "a.example"}, {1, "example"}});
    // 127 labels ending in the listed ones: the longest suffix is the whole host, still found.
    std::string exact_host = "example";
    for (size_t i = 1; i < DomainIndex::kMaxLabels; ++i) exact_host = "y." + exact_host;
    const DomainIndex with_long = build({{exact_host, 5}});
    CHECK(suffix(with_long, exact_host) == std::vector<Match>{{5, exact_host}});
}

TEST_CASE("domain_index: agrees with a std::set on 200,000 random names") {
    std::mt19937_64 rng(42);
    const auto random_label = [&rng](size_t min_len, size_t max_len) {
        static constexpr char kChars[] = "abcdefghijklmnopqrstuvwxyz0123456789-_";
        std::string label(min_len + rng() % (max_len - min_len + 1), 'a');
        for (char& c : label) c = kChars[rng() % (sizeof kChars - 1)];
        return label;
    };
    const std::vector<std::string> tlds = {"com", "net", "org", "de", "xn--p1ai", "io"};
    std::map<std::string, std::set<uint32_t>> truth;
    DomainIndex::Builder builder;
    for (int i = 0; i < 200000; ++i) {
        std::string name = random_label(1, 12) + "." + tlds[rng() % tlds.size()];
        if (rng() % 3 == 0) name = random_label(1, 8) + "." + name;
        const uint32_t set = static_cast<uint32_t>(rng() % 40 == 0 ? rng() % 5 : 0);
        truth[name].insert(set);
        builder.add(name, set);
    }
    const DomainIndex index = std::move(builder).build();
    CHECK(index.size() == truth.size());
    for (const auto& [name, sets] : truth) {
        std::vector<Match> want;
        for (uint32_t set : sets) want.emplace_back(set, name);
        if (exact(index, name) != want) {
            FAIL_CHECK("mismatch for " << name);
            break;
        }
    }
    size_t false_hits = 0;
    for (int i = 0; i < 200000; ++i) {
        const std::string miss = random_label(13, 20) + ".example";
        false_hits += index.contains(miss);
    }
    CHECK(false_hits == 0);
    // Suffix walks over hosts one or two labels under listed names (and unlisted ones) report
    // exactly the listed suffixes, most specific first.
    size_t checked = 0;
    for (const auto& [name, sets] : truth) {
        if (++checked > 20000) break;
        const std::string host = random_label(1, 6) + "." + (checked % 2 ? name : "u" + name);
        std::vector<Match> want;
        for (size_t at = 0; at != std::string::npos;) {
            const std::string suffix_name = host.substr(at);
            if (auto it = truth.find(suffix_name); it != truth.end()) {
                for (uint32_t set : it->second) want.emplace_back(set, suffix_name);
            }
            const size_t dot = host.find('.', at);
            at = dot == std::string::npos ? dot : dot + 1;
        }
        if (suffix(index, host) != want) {
            FAIL_CHECK("suffix mismatch for " << host);
            break;
        }
    }
}
