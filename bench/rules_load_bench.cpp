// Loading 1M list domains: parse (domain_list) + build (domain_index) time, the index's memory
// (memory_bytes() and the RSS it adds), and per-host lookup time for hits and misses. The names
// are every real list under shared/data/blocklists/ plus synthetic names up to 1M distinct.
// Usage: rules_load_bench [BLOCKLISTS_DIR] [NAMES]   (prints a report; numbers go to docs/)
#include <malloc.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <tuple>
#include <unordered_set>
#include <vector>

#include "hallpass/rules/domain_index.h"
#include "hallpass/rules/domain_list.h"

#ifndef HALLPASS_BLOCKLISTS_DEFAULT
#define HALLPASS_BLOCKLISTS_DEFAULT "../shared/data/blocklists"
#endif

using namespace hallpass;

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
    return std::chrono::duration<double>(Clock::now() - start).count();
}

// CPU time of this thread: on a shared machine, wall time also counts other processes' turns.
double thread_cpu_seconds() {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

// A /proc/self/status field in bytes ("VmRSS", "VmHWM").
size_t status_bytes(const std::string& field) {
    std::ifstream status("/proc/self/status");
    std::string line;
    while (std::getline(status, line)) {
        if (line.rfind(field + ":", 0) == 0) {
            return std::stoul(line.substr(field.size() + 1)) * 1024;
        }
    }
    return 0;
}

// VmRSS after giving freed heap back to the kernel, so deltas mean something.
size_t rss_bytes() {
    malloc_trim(0);
    return status_bytes("VmRSS");
}

// Resets VmHWM (the peak RSS) to the current RSS (Linux >= 4.0); false where not allowed.
bool reset_peak_rss() {
    std::ofstream clear_refs("/proc/self/clear_refs");
    clear_refs << "5";
    clear_refs.flush();
    return static_cast<bool>(clear_refs);
}

std::vector<std::filesystem::path> real_lists(const std::filesystem::path& dir) {
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
class NameGenerator {
  public:
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
    std::mt19937_64 rng_{20260901};
};

struct Corpus {
    std::vector<std::string> names;  // distinct, canonical
    size_t real_names = 0;
};

Corpus make_corpus(const std::filesystem::path& dir, size_t target) {
    Corpus corpus;
    std::unordered_set<std::string> seen;
    seen.reserve(target * 2);
    for (const auto& file : real_lists(dir)) {
        auto loaded =
            load_domain_list(file.string(), ListFormat::Auto, [&](std::string_view name, uint32_t) {
                if (seen.size() < target && seen.emplace(name).second) {
                    corpus.names.emplace_back(name);
                }
            });
        if (!loaded) {
            std::fprintf(stderr, "%s\n", loaded.error().to_string().c_str());
            std::exit(1);
        }
    }
    corpus.real_names = corpus.names.size();
    NameGenerator gen;
    while (corpus.names.size() < target) {
        std::string name = gen.next();
        if (seen.insert(name).second) corpus.names.push_back(std::move(name));
    }
    return corpus;
}

std::string as_text(const std::vector<std::string>& names, std::string_view prefix,
                    std::string_view suffix) {
    std::string text;
    text.reserve(names.size() * (prefix.size() + suffix.size() + 24));
    for (const std::string& name : names) {
        text.append(prefix).append(name).append(suffix).push_back('\n');
    }
    return text;
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

double percentile(std::vector<double> v, double p) {
    std::sort(v.begin(), v.end());
    return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

struct LoadResult {
    double parse_s = 0;
    double build_s = 0;
    double cpu_s = 0;  // parse + build
    size_t entries = 0;
};

// Parse + build, the way the rule engine will: names straight from the sink into the Builder.
LoadResult load_once(const std::string& text, ListFormat format, DomainIndex* out,
                     size_t reserve = 0) {
    LoadResult r;
    DomainIndex::Builder builder;
    builder.reserve(reserve);
    const double cpu0 = thread_cpu_seconds();
    const Clock::time_point t0 = Clock::now();
    const ListStats stats = parse_domain_list(
        text, format, [&builder](std::string_view name, uint32_t) { builder.add(name, 1); });
    r.parse_s = seconds_since(t0);
    const Clock::time_point t1 = Clock::now();
    *out = std::move(builder).build();
    r.build_s = seconds_since(t1);
    r.cpu_s = thread_cpu_seconds() - cpu0;
    r.entries = stats.entries;
    return r;
}

// Median and p99 of per-lookup time, each sample the mean over a batch of `hosts` (a single
// lookup is shorter than the clock's resolution and overhead).
template <class Lookup>
std::pair<double, double> time_lookups(const std::vector<std::string>& hosts, Lookup&& lookup) {
    constexpr size_t kBatch = 1000;
    std::vector<double> samples;
    size_t sink = 0;
    for (size_t round = 0; round < 20; ++round) {
        for (size_t begin = 0; begin + kBatch <= hosts.size(); begin += kBatch) {
            const Clock::time_point t0 = Clock::now();
            for (size_t i = begin; i < begin + kBatch; ++i) sink += lookup(hosts[i]);
            samples.push_back(seconds_since(t0) * 1e9 / kBatch);
        }
    }
    if (sink == 42) std::puts("");  // keep the lookups from being optimised away
    return {median(samples), percentile(samples, 0.99)};
}

}  // namespace

int main(int argc, char** argv) {
    const char* env = std::getenv("HALLPASS_BLOCKLISTS");
    const std::filesystem::path dir = argc > 1         ? argv[1]
                                      : env != nullptr ? env
                                                       : HALLPASS_BLOCKLISTS_DEFAULT;
    const size_t target = argc > 2 ? std::stoul(argv[2]) : 1'000'000;
    if (!std::filesystem::is_directory(dir)) {
        std::fprintf(stderr, "block lists not found at %s (pass the directory)\n", dir.c_str());
        return 1;
    }

    Corpus corpus = make_corpus(dir, target);
    std::printf("names: %zu distinct (%zu from the real lists, %zu synthetic)\n",
                corpus.names.size(), corpus.real_names, corpus.names.size() - corpus.real_names);

    // Lookup hosts (3-5 labels) are drawn now so the corpus can be freed before measuring RSS.
    std::mt19937_64 rng(7);
    NameGenerator gen;
    std::vector<std::string> hits;
    std::vector<std::string> misses;
    for (size_t i = 0; i < 100'000; ++i) {
        // A listed domain under 0-2 extra labels, as browsers ask for `www.` and CDN shards.
        std::string host = corpus.names[rng() % corpus.names.size()];
        const size_t extra = rng() % 3;
        for (size_t e = 0; e < extra; ++e) host = gen.label() + "." + host;
        hits.push_back(std::move(host));
        // A miss under a TLD the lists use, shaped the same way (".invalid-bench" would be
        // faster than real misses: its short suffixes are found absent just as fast, but this
        // keeps the label count honest).
        std::string miss = gen.label() + "." + gen.label() + ".example";
        if (rng() % 2 == 0) miss = gen.label() + "." + miss;
        misses.push_back(std::move(miss));
    }

    const std::string plain = as_text(corpus.names, "", "");
    const std::string hosts = as_text(corpus.names, "0.0.0.0 ", "");
    const std::string adblock = as_text(corpus.names, "||", "^");
    const size_t names = corpus.names.size();
    corpus = Corpus{};

    std::printf("\n%-8s %10s %10s %10s %10s %12s\n", "format", "parse s", "build s", "total s",
                "cpu s", "Mlines/s");
    DomainIndex index;
    for (const auto& [label, text, format] : {std::tuple{"plain", &plain, ListFormat::Plain},
                                              std::tuple{"hosts", &hosts, ListFormat::Hosts},
                                              std::tuple{"adblock", &adblock, ListFormat::Adblock},
                                              std::tuple{"auto", &hosts, ListFormat::Auto}}) {
        std::vector<double> parse, build, total, cpu;
        for (int round = 0; round < 5; ++round) {
            const LoadResult r = load_once(*text, format, &index);
            if (r.entries != names) {
                std::fprintf(stderr, "%s: %zu entries, expected %zu\n", label, r.entries, names);
                return 1;
            }
            parse.push_back(r.parse_s);
            build.push_back(r.build_s);
            total.push_back(r.parse_s + r.build_s);
            cpu.push_back(r.cpu_s);
        }
        std::printf("%-8s %10.3f %10.3f %10.3f %10.3f %12.2f\n", label, median(parse),
                    median(build), median(total), median(cpu),
                    static_cast<double>(names) / median(parse) / 1e6);
    }

    // Memory: RSS with only the input text alive, then with the index too.
    // Peak: the Builder's 12 bytes per add (grown by doubling unless reserved) and the table.
    for (const size_t reserve : {size_t{0}, names}) {
        index = DomainIndex();
        const size_t rss_before = rss_bytes();
        const bool has_peak = reset_peak_rss();
        load_once(plain, ListFormat::Plain, &index, reserve);
        const size_t peak = status_bytes("VmHWM");
        const size_t rss_after = rss_bytes();
        const double n = static_cast<double>(index.size());
        if (reserve == 0) {
            std::printf(
                "\nindex: %zu names, memory_bytes %.1f MB (%.1f B/name), RSS +%.1f MB "
                "(%.1f B/name)\n",
                index.size(), static_cast<double>(index.memory_bytes()) / 1e6,
                static_cast<double>(index.memory_bytes()) / n,
                static_cast<double>(rss_after - rss_before) / 1e6,
                static_cast<double>(rss_after - rss_before) / n);
        }
        if (has_peak) {
            std::printf("peak RSS during parse+build%s: +%.1f MB over the input text alone\n",
                        reserve == 0 ? "" : " with Builder::reserve()",
                        static_cast<double>(peak - rss_before) / 1e6);
        }
    }

    size_t hit_count = 0;
    for (const std::string& host : hits) {
        index.for_each_suffix(host, [&hit_count](uint32_t, std::string_view) {
            ++hit_count;
            return false;
        });
    }
    size_t miss_count = 0;
    for (const std::string& host : misses) {
        index.for_each_suffix(host, [&miss_count](uint32_t, std::string_view) { ++miss_count; });
    }
    std::printf("lookups: %zu/%zu hit hosts matched, %zu/%zu miss hosts matched\n", hit_count,
                hits.size(), miss_count, misses.size());

    const auto suffix_lookup = [&index](const std::string& host) {
        size_t n = 0;
        index.for_each_suffix(host, [&n](uint32_t, std::string_view) { ++n; });
        return n;
    };
    const auto exact_lookup = [&index](const std::string& host) {
        return static_cast<size_t>(index.contains(host));
    };
    // Real traffic repeats hosts, so their slots stay in cache: 1,000 hosts (half hits, half
    // misses) asked over and over. The 100,000 random hosts above are the cold worst case.
    std::vector<std::string> hot;
    for (size_t i = 0; i < 100'000; ++i) {
        hot.push_back(i % 2 == 0 ? hits[(i / 2) % 500] : misses[(i / 2) % 500]);
    }
    struct Row {
        const char* label;
        const std::vector<std::string>* hosts;
        bool suffix;
    };
    const Row rows[] = {
        {"suffix, 100k random hits", &hits, true}, {"suffix, 100k random misses", &misses, true},
        {"suffix, 1k hot hosts", &hot, true},      {"exact, 100k random misses", &misses, false},
        {"exact, 1k hot hosts", &hot, false},
    };
    std::printf("\n%-28s %10s %10s\n", "lookup (ns per host)", "median", "p99");
    for (const Row& row : rows) {
        const auto [med, p99] = row.suffix ? time_lookups(*row.hosts, suffix_lookup)
                                           : time_lookups(*row.hosts, exact_lookup);
        std::printf("%-28s %10.1f %10.1f\n", row.label, med, p99);
    }
    return 0;
}
