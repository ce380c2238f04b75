// RuleSet::decide() time with 1M list domains, 1,000 host regexes, 50 url regexes and 100 rules
// (bench/rules_corpus.h writes them as list files and a rules.yaml, loaded through
// load_rules_file like the proxy does), for hosts that hit each kind of condition, miss, or are
// IP literals. Per-call times (two steady_clock reads around each call) and batch means.
// Usage: rules_decide_bench [--lists DIR] [--names N] [--regexes N] [--calls N] [--callgrind]
//                           [--only NAME]   (only the host categories whose name contains NAME)
// --callgrind: fewer calls, each category between CALLGRIND_ZERO_STATS and a dump named after it
// (run under `valgrind --tool=callgrind --instr-atstart=no`; bench/rules_bench.sh does).
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#if __has_include(<valgrind/callgrind.h>)
#include <valgrind/callgrind.h>
#else
#define CALLGRIND_START_INSTRUMENTATION
#define CALLGRIND_ZERO_STATS
#define CALLGRIND_DUMP_STATS_AT(x)
#define RUNNING_ON_VALGRIND 0
#endif

#include <re2/set.h>

#include "hallpass/http/uri.h"
#include "hallpass/rules/rule_set.h"
#include "hallpass/rules/rules_file.h"
#include "rules_corpus.h"

using namespace hallpass;

namespace {

using Clock = std::chrono::steady_clock;

struct Request {
    std::string host;  // canonical
    HostKind kind = HostKind::Name;
    IpAddr client;
    uint16_t port = 80;
    std::string url;  // empty for CONNECT
};

struct Category {
    std::string name;
    std::vector<Request> requests;
    std::vector<RequestFacts> facts;  // views into `requests`; built once they stop moving
};

// A request for `host` from a random client; HTTP on port 80 (with a URL) 70% of the time, else
// CONNECT to 443, unless `port` forces one.
Request make_request(const std::string& host, const std::string& path,
                     const std::vector<std::string>& clients, std::mt19937_64& rng, int port = 0) {
    Request r;
    auto canon = canonicalize_host(host);
    if (!canon) {
        std::fprintf(stderr, "bench: invalid host \"%s\": %s\n", host.c_str(),
                     canon.error().to_string().c_str());
        std::exit(1);
    }
    r.host = canon->host;
    r.kind = canon->kind;
    r.client = *IpAddr::parse(clients[rng() % clients.size()]);
    r.port = port != 0 ? static_cast<uint16_t>(port) : (rng() % 10 < 7 ? 80 : 443);
    if (r.port == 80) {
        const std::string shown = r.kind == HostKind::Ipv6 ? "[" + r.host + "]" : r.host;
        r.url = "http://" + shown + (path.empty() ? "/" : path);
    }
    return r;
}

const std::vector<Request>& pool_fallback(const std::vector<Category>& cats) {
    for (const Category& c : cats) {
        if (c.name.rfind("miss", 0) == 0) return c.requests;
    }
    std::abort();
}

void finish(Category& c) {
    c.facts.clear();
    for (const Request& r : c.requests) {
        c.facts.push_back(RequestFacts{r.client, r.host, r.kind, r.port, r.url});
    }
}

double pct(std::vector<double>& sorted, double p) {
    return sorted[std::min(sorted.size() - 1, static_cast<size_t>(p * sorted.size()))];
}

struct Timing {
    double med = 0, p90 = 0, p99 = 0, p999 = 0, max = 0;  // per call, ns
    double batch_med = 0, batch_p99 = 0;                  // batch means, ns per call
};

// Per-call: steady_clock before and after each decide(), `calls` calls cycling through the
// facts. Batches: the mean of kBatch consecutive calls, timed as one.
Timing time_decisions(const RuleSet& rules, const std::vector<RequestFacts>& facts, size_t calls,
                      size_t* sink) {
    constexpr size_t kBatch = 100;
    Timing t;
    for (size_t i = 0; i < std::min<size_t>(facts.size(), 20000); ++i) {  // warm up
        *sink += static_cast<size_t>(rules.decide(facts[i]).rule + 1);
    }
    std::vector<double> per_call;
    per_call.reserve(calls);
    for (size_t i = 0; i < calls; ++i) {
        const RequestFacts& f = facts[i % facts.size()];
        const auto t0 = Clock::now();
        const Decision d = rules.decide(f);
        const auto t1 = Clock::now();
        *sink += static_cast<size_t>(d.rule + 1);
        per_call.push_back(std::chrono::duration<double, std::nano>(t1 - t0).count());
    }
    std::vector<double> batches;
    for (size_t begin = 0; begin + kBatch <= calls; begin += kBatch) {
        const auto t0 = Clock::now();
        for (size_t i = begin; i < begin + kBatch; ++i) {
            *sink += static_cast<size_t>(rules.decide(facts[i % facts.size()]).rule + 1);
        }
        batches.push_back(std::chrono::duration<double, std::nano>(Clock::now() - t0).count() /
                          kBatch);
    }
    std::sort(per_call.begin(), per_call.end());
    std::sort(batches.begin(), batches.end());
    t.med = pct(per_call, 0.5);
    t.p90 = pct(per_call, 0.9);
    t.p99 = pct(per_call, 0.99);
    t.p999 = pct(per_call, 0.999);
    t.max = per_call.back();
    t.batch_med = pct(batches, 0.5);
    t.batch_p99 = pct(batches, 0.99);
    return t;
}

// Median and p99 per call of fn(i) for i in [0, calls), after `calls / 10` warm-up calls.
template <class Fn>
std::pair<double, double> time_calls(size_t calls, Fn&& fn) {
    for (size_t i = 0; i < calls / 10; ++i) fn(i);
    std::vector<double> v;
    v.reserve(calls);
    for (size_t i = 0; i < calls; ++i) {
        const auto t0 = Clock::now();
        fn(i);
        v.push_back(std::chrono::duration<double, std::nano>(Clock::now() - t0).count());
    }
    std::sort(v.begin(), v.end());
    return {pct(v, 0.5), pct(v, 0.99)};
}

// Two clock reads with nothing between them: the floor of every per-call number.
double clock_overhead_ns() {
    std::vector<double> v;
    for (int i = 0; i < 200000; ++i) {
        const auto t0 = Clock::now();
        const auto t1 = Clock::now();
        v.push_back(std::chrono::duration<double, std::nano>(t1 - t0).count());
    }
    std::sort(v.begin(), v.end());
    return pct(v, 0.5);
}

// The host_regex part alone: an RE2::Set of the same patterns, compiled the way rule_set.cpp
// does (case-insensitive, 256 MB, unanchored), over the hosts of three rows.
void time_regex_set_alone(const std::vector<Category>& cats, size_t regexes, size_t calls) {
    if (regexes == 0) return;
    RE2::Options options;
    options.set_log_errors(false);
    options.set_case_sensitive(false);
    options.set_max_mem(256 << 20);
    RE2::Set set(options, RE2::UNANCHORED);
    for (const std::string& p : bench::host_patterns(regexes)) set.Add(p, nullptr);
    if (!set.Compile()) return;
    std::printf("\nRE2::Set of the %zu host patterns alone (ns per Match, warm):\n", regexes);
    for (const Category& c : cats) {
        if (c.name != "host_regex: hit" && c.name != "miss, 1k hosts" &&
            c.name != "list hit, 1k hosts") {
            continue;
        }
        std::vector<int> hits;
        size_t n = 0;
        const auto [med, p99] = time_calls(calls, [&](size_t i) {
            n += set.Match(c.requests[i % c.requests.size()].host, &hits);
        });
        std::printf("  %-28s median %6.0f  p99 %7.0f  (%zu matched)\n", c.name.c_str(), med, p99,
                    n);
    }
}

std::string loadavg() {
    std::ifstream f("/proc/loadavg");
    std::string s;
    std::getline(f, s);
    return s;
}

double process_cpu_seconds() {
    timespec ts{};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

}  // namespace

int main(int argc, char** argv) {
    std::filesystem::path lists_dir = HALLPASS_BLOCKLISTS_DEFAULT;
    if (const char* env = std::getenv("HALLPASS_BLOCKLISTS")) lists_dir = env;
    size_t names = 1'000'000, regexes = 1000, calls = 1'000'000;
    bool callgrind = false;
    std::string only;  // run only the categories whose name contains this
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        const bool has_value = i + 1 < argc;
        if (a == "--lists" && has_value) {
            lists_dir = argv[++i];
        } else if (a == "--names" && has_value) {
            names = std::stoul(argv[++i]);
        } else if (a == "--regexes" && has_value) {
            regexes = std::stoul(argv[++i]);
        } else if (a == "--calls" && has_value) {
            calls = std::stoul(argv[++i]);
        } else if (a == "--callgrind") {
            callgrind = true;
        } else if (a == "--only" && has_value) {
            only = argv[++i];
        } else {
            std::fprintf(stderr,
                         "usage: rules_decide_bench [--lists DIR] [--names N] [--regexes N] "
                         "[--calls N] [--callgrind] [--only NAME]\n");
            return 2;
        }
    }
    if (!std::filesystem::is_directory(lists_dir)) {
        std::fprintf(stderr, "block lists not found at %s (--lists DIR)\n", lists_dir.c_str());
        return 1;
    }
    char tmpl[] = "/tmp/hallpass-decide.XXXXXX";
    if (mkdtemp(tmpl) == nullptr) {
        std::perror("mkdtemp");
        return 1;
    }
    const std::filesystem::path dir = tmpl;

    bench::Corpus corpus = bench::make_corpus(lists_dir, names);
    const bench::RuleMix mix = bench::write_full_rules(dir, lists_dir, corpus, regexes);

    const double cpu0 = process_cpu_seconds();
    const auto t0 = Clock::now();
    auto loaded = load_rules_file((dir / "rules-full.yaml").string());
    const double load_s = std::chrono::duration<double>(Clock::now() - t0).count();
    const double load_cpu = process_cpu_seconds() - cpu0;
    std::filesystem::remove_all(dir);
    if (!loaded) {
        std::fprintf(stderr, "load failed: %s\n", loaded.error().to_string().c_str());
        return 1;
    }
    const RuleSet& rules = *loaded->rules;
    std::printf(
        "rule set: %zu rules, %zu lists, %zu indexed names (%zu real + %zu synthetic list "
        "names), %zu host_regex, %zu url_regex\n",
        rules.rule_count(), rules.lists().size(), rules.entry_count(), corpus.real_names,
        corpus.names.size() - corpus.real_names, mix.host_regex, mix.url_regex);
    std::printf("load_rules_file: %.3f s wall, %.3f s CPU, index memory_bytes %.1f MB\n", load_s,
                load_cpu, static_cast<double>(rules.memory_bytes()) / 1e6);

    // Requests per category. Hosts under 0-2 extra labels, as browsers ask for www. and shards.
    std::mt19937_64 rng(99);
    bench::NameGenerator gen(7);
    const auto& clients = mix.client_ips;
    auto sub = [&](std::string host, size_t max_extra) {
        const size_t extra = rng() % (max_extra + 1);
        for (size_t e = 0; e < extra; ++e) host = gen.label() + "." + host;
        return host;
    };
    auto miss_host = [&] {
        static const char* const kTlds[] = {"com", "net", "org", "de", "io", "example"};
        std::string h = gen.label() + "." + gen.label() + "." + kTlds[rng() % 6];
        return rng() % 2 ? "www." + h : h;
    };
    std::vector<Category> cats;
    cats.reserve(32);  // `shares` below points into it
    auto add = [&](const std::string& name, size_t n, auto&& make) {
        Category c{name, {}, {}};
        if (name.rfind("host_regex", 0) == 0 && mix.regex_hosts.empty()) n = 0;
        for (size_t i = 0; i < n; ++i) c.requests.push_back(make(i));
        cats.push_back(std::move(c));
    };
    add("list hit, 100k hosts", 100000, [&](size_t) {
        return make_request(sub(corpus.names[rng() % corpus.names.size()], 2), "/", clients, rng);
    });
    add("list hit, 1k hosts", 1000, [&](size_t) {
        return make_request(sub(corpus.names[rng() % corpus.names.size()], 2), "/", clients, rng);
    });
    add("domains: hit", 1000, [&](size_t) {
        return make_request(sub(mix.domains[rng() % mix.domains.size()], 1), "/", clients, rng);
    });
    add("hosts: hit", 1000, [&](size_t) {
        return make_request(mix.hosts[rng() % mix.hosts.size()], "/", clients, rng);
    });
    add("host_regex: hit", 1000, [&](size_t i) {
        return make_request(mix.regex_hosts[i % mix.regex_hosts.size()], "/", clients, rng);
    });
    // The same shapes under a random first label half the time (anchored patterns then miss):
    // many distinct hosts that walk deep into the regexes, as a busy network's would.
    add("host_regex: words, 100k hosts", 100000, [&](size_t i) {
        std::string host = mix.regex_hosts[i % mix.regex_hosts.size()];
        if (rng() % 2) host = gen.label() + "." + host;
        return make_request(host, "/", clients, rng);
    });
    add("url_regex: hit", 1000, [&](size_t) {
        return make_request(miss_host(), mix.url_paths[rng() % mix.url_paths.size()], clients, rng,
                            80);
    });
    add("miss, 100k hosts", 100000,
        [&](size_t) { return make_request(miss_host(), "/index.html", clients, rng); });
    add("miss, 1k hosts", 1000,
        [&](size_t) { return make_request(miss_host(), "/index.html", clients, rng); });
    add("IPv4 literal", 1000, [&](size_t i) {
        if (i % 4 == 0)
            return make_request(mix.dest_net_ips[i % mix.dest_net_ips.size()], "/", clients, rng);
        return make_request(
            "93.184." + std::to_string(rng() % 256) + "." + std::to_string(rng() % 256), "/",
            clients, rng);
    });
    add("IPv6 literal", 1000, [&](size_t) {
        char buf[64];
        std::snprintf(buf, sizeof buf, "2001:db8:%x::%x", static_cast<unsigned>(rng() % 65536),
                      static_cast<unsigned>(rng() % 65536));
        return make_request(buf, "/", clients, rng);
    });
    // The mix: 35% misses, 25% list hits, 10% each domains / host_regex / url_regex, 5% hosts,
    // 5% IP literals. "1k" repeats 1,000 requests (traffic revisits hosts: index slots stay in
    // cache); "100k" draws from 100,000 (the cold case).
    auto pool = [&](const char* name) -> const std::vector<Request>& {
        for (const Category& c : cats) {
            if (c.name == name && !c.requests.empty()) return c.requests;
        }
        return pool_fallback(cats);  // --regexes 0: no regex hosts; misses instead
    };
    const std::pair<unsigned, const std::vector<Request>*> shares[] = {
        {35, &pool("miss, 100k hosts")}, {25, &pool("list hit, 100k hosts")},
        {10, &pool("domains: hit")},     {10, &pool("host_regex: hit")},
        {10, &pool("url_regex: hit")},   {5, &pool("hosts: hit")},
        {5, &pool("IPv4 literal")},
    };
    auto mixed = [&](size_t) -> Request {
        unsigned r = static_cast<unsigned>(rng() % 100);
        for (const auto& [share, from] : shares) {
            if (r < share) return (*from)[rng() % from->size()];
            r -= share;
        }
        std::abort();  // the shares add up to 100
    };
    add("mixed, 100k requests", 100000, mixed);
    add("mixed, 1k requests", 1000, mixed);
    for (Category& c : cats) finish(c);
    std::erase_if(cats, [&](const Category& c) {
        return c.facts.empty() || c.name.find(only) == std::string::npos;
    });

    size_t sink = 0;
    if (callgrind) {
        const size_t n = std::min<size_t>(calls, 20000);
        std::printf("callgrind: %zu calls per category\n", n);
        CALLGRIND_START_INSTRUMENTATION;
        for (const Category& c : cats) {
            for (size_t i = 0; i < n; ++i) sink += rules.decide(c.facts[i % c.facts.size()]).rule;
            CALLGRIND_ZERO_STATS;
            for (size_t i = 0; i < n; ++i) sink += rules.decide(c.facts[i % c.facts.size()]).rule;
            CALLGRIND_DUMP_STATS_AT(c.name.c_str());
        }
        return sink == 42 ? 3 : 0;
    }

    std::printf("loadavg at the start: %s\n", loadavg().c_str());
    std::printf("clock: two steady_clock reads take %.1f ns (included in the per-call times)\n",
                clock_overhead_ns());
    std::printf("calls per category: %zu (per-call timing), then the same in batches of 100\n\n",
                calls);
    std::printf("%-30s %6s %6s %6s | %7s %7s %7s %7s %9s | %7s %9s\n", "hosts", "n", "block",
                "rule", "median", "p90", "p99", "p99.9", "max", "batch", "batch p99");
    struct FirstSight {
        std::string name;
        double med, p99, p999, max;
    };
    std::vector<FirstSight> first;
    for (const Category& c : cats) {
        // The first decision for each request of the row: its hosts are new to RE2's DFA, which
        // builds the states and transitions they need; then the row is timed warm.
        size_t blocked = 0, by_rule = 0;
        std::vector<double> first_ns;
        for (const RequestFacts& f : c.facts) {
            const auto t0 = Clock::now();
            const Decision d = rules.decide(f);
            first_ns.push_back(std::chrono::duration<double, std::nano>(Clock::now() - t0).count());
            blocked += d.action == Action::Block;
            by_rule += d.rule >= 0;
        }
        std::sort(first_ns.begin(), first_ns.end());
        first.push_back({c.name, pct(first_ns, 0.5), pct(first_ns, 0.99), pct(first_ns, 0.999),
                         first_ns.back()});
        const Timing t = time_decisions(rules, c.facts, calls, &sink);
        const double n = static_cast<double>(c.facts.size());
        std::printf("%-30s %6zu %5.1f%% %5.1f%% | %7.0f %7.0f %7.0f %7.0f %9.0f | %7.0f %9.0f\n",
                    c.name.c_str(), c.facts.size(), 100.0 * blocked / n, 100.0 * by_rule / n, t.med,
                    t.p90, t.p99, t.p999, t.max, t.batch_med, t.batch_p99);
    }
    std::printf(
        "(ns per decision: per call, and the mean of batches of 100 calls, over the row's "
        "requests again and again; block/rule: share blocked / decided by a rule rather "
        "than the default)\n");
    std::printf(
        "\nfirst decision for each request of a row (the regex DFA meets its hosts for "
        "the first time; mixed rows reuse earlier rows' hosts):\n");
    std::printf("%-30s %9s %9s %9s %10s\n", "hosts", "median", "p99", "p99.9", "max");
    for (const FirstSight& f : first) {
        std::printf("%-30s %9.0f %9.0f %9.0f %10.0f\n", f.name.c_str(), f.med, f.p99, f.p999,
                    f.max);
    }
    time_regex_set_alone(cats, regexes, calls);
    std::printf("loadavg at the end: %s\n", loadavg().c_str());
    return sink == 42 ? 3 : 0;
}
