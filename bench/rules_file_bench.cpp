// Loading a rules.yaml with 1M list names through load_rules_file, the path start-up, SIGHUP and
// --check share (YAML, list parsing, index build, RE2 compile): wall and CPU time, the index's
// memory_bytes(), the RSS the loaded set adds, and the peak while loading, alone and with the
// previous set still alive (a reload). Also writes the input files for bench/rules_bench.sh.
//
//   rules_file_bench write DIR [--lists DIR] [--names N]
//       DIR/lists/1m.txt (1M names, plain: the real names without those whose parent is listed,
//       then synthetic ones), DIR/squid-1m.acl (the same names as a Squid dstdomain file, each
//       with a leading '.'), DIR/rules-1m.yaml (one block rule, that list),
//       DIR/rules-full.yaml + DIR/synthetic.txt (100 rules, 1k host regexes, every real list).
//   rules_file_bench load RULES.yaml [ROUNDS]
#include <malloc.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "hallpass/rules/rule_set.h"
#include "hallpass/rules/rules_file.h"
#include "rules_corpus.h"

using namespace hallpass;

namespace {

using Clock = std::chrono::steady_clock;

double process_cpu_seconds() {
    timespec ts{};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

// A /proc/self/status field in KiB ("VmRSS", "VmHWM").
long status_kib(const std::string& field) {
    std::ifstream status("/proc/self/status");
    std::string line;
    while (std::getline(status, line)) {
        if (line.rfind(field + ":", 0) == 0) return std::stol(line.substr(field.size() + 1));
    }
    return 0;
}

// VmRSS after giving freed heap back to the kernel, so differences mean something.
long trimmed_rss_kib() {
    malloc_trim(0);
    return status_kib("VmRSS");
}

// Resets VmHWM to the current RSS (Linux >= 4.0); false where not allowed.
bool reset_peak_rss() {
    std::ofstream clear_refs("/proc/self/clear_refs");
    clear_refs << "5";
    clear_refs.flush();
    return static_cast<bool>(clear_refs);
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

int write_inputs(const std::filesystem::path& dir, const std::filesystem::path& lists,
                 size_t names) {
    std::filesystem::create_directories(dir / "lists");
    const bench::Corpus flat = bench::make_flat_corpus(lists, names);
    if (!bench::write_names(dir / "lists" / "1m.txt", flat.names, 0, flat.names.size()) ||
        !bench::write_names(dir / "squid-1m.acl", flat.names, 0, flat.names.size(), ".")) {
        std::fprintf(stderr, "cannot write to %s\n", dir.c_str());
        return 1;
    }
    std::printf(
        "wrote lists/1m.txt and squid-1m.acl: %zu names, %zu from the real lists (those "
        "whose parent domain is listed dropped: Squid refuses them)\n",
        flat.names.size(), flat.real_names);
    const bench::Corpus corpus = bench::make_corpus(lists, names);
    std::ofstream(dir / "rules-1m.yaml") << "default: allow\n"
                                            "lists:\n"
                                            "  big: { file: lists/1m.txt }\n"
                                            "rules:\n"
                                            "  - name: blocklist\n"
                                            "    action: block\n"
                                            "    lists: [big]\n";
    const bench::RuleMix mix = bench::write_full_rules(dir, lists, corpus);
    std::printf(
        "wrote rules-full.yaml: %zu rules, %zu lists (every real list and %zu synthetic "
        "names: %zu distinct names), %zu host_regex, %zu url_regex\n",
        mix.rules, mix.lists, corpus.names.size() - corpus.real_names, corpus.names.size(),
        mix.host_regex, mix.url_regex);
    return 0;
}

struct Round {
    double wall_s = 0, cpu_s = 0, own_ms = 0;
    long added_kib = 0;  // RSS with the set alive, minus before
    long peak_kib = 0;   // VmHWM during the load, minus before (-1: unknown)
};

// One load with `keep` (the previous set, or null) alive throughout.
Round load_once(const std::string& path, std::shared_ptr<const RuleSet>* out) {
    Round r;
    const long before = trimmed_rss_kib();
    const bool has_peak = reset_peak_rss();
    const double cpu0 = process_cpu_seconds();
    const auto t0 = Clock::now();
    auto loaded = load_rules_file(path);
    r.wall_s = std::chrono::duration<double>(Clock::now() - t0).count();
    r.cpu_s = process_cpu_seconds() - cpu0;
    r.peak_kib = has_peak ? status_kib("VmHWM") - before : -1;
    if (!loaded) {
        std::fprintf(stderr, "load failed: %s\n", loaded.error().to_string().c_str());
        std::exit(1);
    }
    r.own_ms = loaded->load_ms;
    *out = std::move(loaded->rules);
    r.added_kib = trimmed_rss_kib() - before;
    return r;
}

int load_rounds(const std::string& path, int rounds) {
    std::printf("load_rules_file(%s), %d rounds; loadavg %s", path.c_str(), rounds,
                [] {
                    std::ifstream f("/proc/loadavg");
                    std::string s;
                    std::getline(f, s);
                    return s + "\n";
                }()
                    .c_str());
    std::printf("%5s %8s %8s %8s %10s %10s\n", "round", "wall s", "cpu s", "own ms", "+RSS MB",
                "peak +MB");
    std::vector<double> wall, cpu, added, peak;
    std::shared_ptr<const RuleSet> set;
    for (int i = 0; i < rounds; ++i) {
        set.reset();
        const Round r = load_once(path, &set);
        std::printf("%5d %8.3f %8.3f %8.0f %10.1f %10.1f\n", i + 1, r.wall_s, r.cpu_s, r.own_ms,
                    r.added_kib / 1024.0, r.peak_kib / 1024.0);
        wall.push_back(r.wall_s);
        cpu.push_back(r.cpu_s);
        added.push_back(r.added_kib / 1024.0);
        peak.push_back(r.peak_kib / 1024.0);
    }
    std::printf("median: wall %.3f s, cpu %.3f s, RSS added %.1f MB, peak added %.1f MB\n",
                median(wall), median(cpu), median(added), median(peak));
    std::printf("rule set: %zu rules, %zu indexed names, memory_bytes %.1f MB\n", set->rule_count(),
                set->entry_count(), set->memory_bytes() / 1e6);

    // A reload: the new set is loaded while the old one is still in force, then replaces it.
    const long base = trimmed_rss_kib();
    std::shared_ptr<const RuleSet> next;
    const Round r = load_once(path, &next);
    set = std::move(next);
    const long after_swap = trimmed_rss_kib();
    std::printf(
        "reload (old set alive while the new one loads): wall %.3f s, peak +%.1f MB over "
        "the old set alone, then +%.1f MB once the old set is freed\n",
        r.wall_s, r.peak_kib / 1024.0, (after_swap - base) / 1024.0);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    // The allocator settings hallpass's main() makes (src/server/main.cpp), so the rounds measure what
    // the proxy's loads and reloads do: without them glibc raises its mmap threshold after the
    // first big free, and later rounds build in the heap.
    mallopt(M_MMAP_THRESHOLD, 1 << 20);
    mallopt(M_TRIM_THRESHOLD, 64 << 20);
    const std::string mode = argc > 1 ? argv[1] : "";
    if (mode == "write" && argc >= 3) {
        std::filesystem::path lists = HALLPASS_BLOCKLISTS_DEFAULT;
        if (const char* env = std::getenv("HALLPASS_BLOCKLISTS")) lists = env;
        size_t names = 1'000'000;
        for (int i = 3; i + 1 < argc; i += 2) {
            const std::string a = argv[i];
            if (a == "--lists") {
                lists = argv[i + 1];
            } else if (a == "--names") {
                names = std::stoul(argv[i + 1]);
            }
        }
        return write_inputs(argv[2], lists, names);
    }
    if (mode == "load" && argc >= 3) {
        return load_rounds(argv[2], argc > 3 ? std::stoi(argv[3]) : 5);
    }
    std::fprintf(stderr,
                 "usage: rules_file_bench write DIR [--lists DIR] [--names N]\n"
                 "       rules_file_bench load RULES.yaml [ROUNDS]\n");
    return 2;
}
