// hallpass: parse the command line, load the config, run the server (or --check / --explain),
// map the exit code.
#include <event2/thread.h>
#include <malloc.h>
#include <signal.h>

#include <cstdio>
#include <ctime>
#include <filesystem>
#include <optional>

#include "hallpass/base/log.h"
#include "hallpass/base/net_set.h"
#include "hallpass/config/config.h"
#include "hallpass/proxy/destination_guard.h"
#include "hallpass/proxy/worker.h"
#include "hallpass/rules/grants.h"
#include "hallpass/rules/list_fetch.h"
#include "hallpass/rules/policy.h"
#include "hallpass/rules/rule_store.h"
#include "hallpass/rules/rules_file.h"
#include "hallpass/rules/rules_loader.h"
#include "hallpass/server/cli.h"
#include "hallpass/server/control.h"
#include "hallpass/server/privileges.h"
#include "hallpass/server/server.h"

using namespace hallpass;

namespace {

// What the proxy runs with: the configuration file when one was named or the default one exists,
// else the built-in defaults with no rules (`*defaults` set). --check and --explain use the same,
// so they answer for the configuration the proxy would really have.
Result<LoadedRules> load_config(const CliOptions& opts, bool* defaults) {
    *defaults = false;
    if (opts.config_given || std::filesystem::exists(opts.config_path)) {
        return load_rules_file(opts.config_path);
    }
    *defaults = true;
    LoadedRules none;
    none.rules = RuleSet::allow_all();
    return none;
}

// Lists by URL of the configuration, as the loader reads them (no list is loaded).
Result<std::vector<ListSpec>> url_lists(const CliOptions& opts) {
    if (!opts.config_given && !std::filesystem::exists(opts.config_path)) {
        return std::vector<ListSpec>();
    }
    return load_url_lists(opts.config_path);
}

std::string age_text(int64_t seconds) {
    if (seconds < 120) return std::to_string(seconds) + " s";
    if (seconds < 7200) return std::to_string(seconds / 60) + " min";
    if (seconds < 172800) return std::to_string(seconds / 3600) + " h";
    return std::to_string(seconds / 86400) + " days";
}

int run_update_lists(const CliOptions& opts) {
    auto lists = url_lists(opts);
    if (!lists) {
        std::fprintf(stderr, "%s\n", lists.error().to_string().c_str());
        return 1;
    }
    if (lists->empty()) {
        std::printf("no list has a url: nothing to fetch\n");
        return 0;
    }
    int failed = 0;
    for (const ListSpec& list : *lists) {
        const ListFetch f = fetch_list(list);
        std::printf("%s: %s: %s (%s)\n", list.name.c_str(), outcome_name(f.outcome),
                    f.message.c_str(), list.url.c_str());
        if (f.outcome == ListFetch::Outcome::Refused || f.outcome == ListFetch::Outcome::Failed) {
            ++failed;
        }
    }
    return failed ? 1 : 0;
}

int run_check(const CliOptions& opts) {
    const std::string& path = opts.config_path;
    bool defaults = false;
    auto loaded = load_config(opts, &defaults);
    if (!loaded) {
        std::fprintf(stderr, "%s\n", loaded.error().to_string().c_str());
        std::printf("%s: invalid\n", path.c_str());
        return 1;
    }
    const RuleSet& rules = *loaded->rules;
    if (defaults) {
        std::printf("%s: not found: hallpass runs on its built-in defaults, with no rules\n",
                    path.c_str());
    } else {
        std::printf("%s: ok\n", path.c_str());
    }
    std::printf("rules: %zu\ngroups: %zu\nlists: %zu\n", rules.rule_count(), rules.group_count(),
                rules.lists().size());
    for (const ListSummary& list : rules.lists()) {
        std::printf("  %s: %zu entries, %zu invalid, %zu unsupported (%s)\n", list.name.c_str(),
                    list.entries, list.invalid, list.unsupported, list.path.c_str());
        for (const std::string& issue : list.issues) std::printf("    %s\n", issue.c_str());
    }
    // Lists by URL: where from, and how old the kept copy is.
    if (auto lists = url_lists(opts)) {
        const int64_t now = static_cast<int64_t>(std::time(nullptr));
        for (const ListSpec& list : *lists) {
            const ListCopy copy = read_list_copy(list);
            if (copy.exists && copy.fetched_unix > 0) {
                std::printf("  %s: from %s, copy fetched %s ago (refresh every %s)\n",
                            list.name.c_str(), list.url.c_str(),
                            age_text(now - copy.fetched_unix).c_str(),
                            age_text(list.refresh_s).c_str());
            } else {
                std::printf("  %s: from %s, no copy yet\n", list.name.c_str(), list.url.c_str());
            }
        }
    }
    // Run as root, say which files the service account could not read on a reload.
    bool fell_back = false;
    if (auto account = service_account(loaded->server.user, &fell_back)) {
        std::vector<std::string> files;
        if (!defaults) files.push_back(path);
        for (const ListSummary& list : rules.lists()) files.push_back(list.path);
        if (!loaded->server.block_page.empty()) files.push_back(loaded->server.block_page);
        if (!loaded->server.hosts_file.empty()) files.push_back(loaded->server.hosts_file);
        if (fell_back) {
            std::printf(
                "warning: server.user \"%s\" does not exist: hallpass would run as "
                "nobody\n",
                loaded->server.user.c_str());
        }
        for (const std::string& file : files) {
            if (file.empty() || file == "-" || account_can_read(*account, file)) continue;
            std::printf("warning: %s cannot read %s: reloads would fail\n", account->name.c_str(),
                        file.c_str());
        }
    }
    std::printf("indexed names: %zu\n", rules.entry_count());
    std::printf("load time: %.0f ms\n", loaded->load_ms);
    std::printf("memory: %.1f MiB in indexes, %.1f MiB process growth while loading\n",
                static_cast<double>(rules.memory_bytes()) / (1 << 20),
                static_cast<double>(loaded->rss_delta_kib) / 1024);
    return 0;
}

// Why the proxy would refuse this request before consulting the rules, if it would: the client
// outside allowed_clients, a port outside connect_ports/http_ports, hallpass's own listener (a
// loop), or a local destination. Names are checked for the last two only after DNS, which
// --explain does not do.
std::optional<std::string> refused_before_rules(const ServerConfig& cfg, const IpAddr& client,
                                                const Authority& target, bool is_connect) {
    NetSet allowed;
    for (const std::string& cidr : cfg.allowed_clients) allowed.add(cidr);
    allowed.compile();
    if (!allowed.contains(client)) {
        return "server.allowed_clients: " + client.to_string() + " is not in it";
    }
    if (is_connect && !cfg.connect_ports.contains(target.port)) {
        return "server.connect_ports: CONNECT to port " + std::to_string(target.port) +
               " is not allowed";
    }
    if (!is_connect && !cfg.http_ports.empty() && !cfg.http_ports.contains(target.port)) {
        return "server.http_ports: plain HTTP to port " + std::to_string(target.port) +
               " is not allowed";
    }
    if (target.kind == HostKind::Name) return std::nullopt;
    auto ip = IpAddr::parse(target.host);
    if (!ip) return std::nullopt;
    // The configured listeners, matched as the running proxy matches its bound ones.
    SharedState self;
    self.local_addresses = local_addresses();
    for (const std::string& text : cfg.listen) {
        auto listen = parse_listen_address(text);
        if (!listen) continue;
        self.self.push_back(SelfAddress::of(reinterpret_cast<const sockaddr*>(&listen->addr)));
    }
    if (self.is_self(*ip, target.port)) {
        if (!is_connect) {
            return "its own address: " + target.host_port() +
                   " is hallpass's listener; hallpass answers it itself (the info page at /)";
        }
        return "a loop: " + target.host_port() + " is hallpass's own listener";
    }
    auto guard = DestinationGuard::create(self.local_addresses, cfg.allow_local_destinations);
    if (guard && guard->refuses(*ip, target.port)) {
        return "local destination: " + target.host_port() +
               " is an address of the proxy host itself (server.allow_local_destinations)";
    }
    return std::nullopt;
}

int run_explain(const CliOptions& opts) {
    const std::string& client = opts.explain_client;
    const std::string& target = opts.explain_target;
    auto ip = IpAddr::parse(client);
    if (!ip) {
        std::fprintf(stderr, "hallpass: --explain: \"%s\" is not an IP address\n", client.c_str());
        return 2;
    }
    RequestFacts facts;
    facts.client = *ip;
    std::string url, rules_url;  // as given; as url_regex sees it (normalised path)
    Authority authority;
    if (target.find("://") != std::string::npos) {
        auto uri = parse_absolute_uri(target);
        if (!uri) {
            std::fprintf(stderr, "hallpass: --explain: %s\n", uri.error().message.c_str());
            return 2;
        }
        authority = uri->authority;
        // https:// is what a browser sends through CONNECT: the proxy sees no path.
        if (uri->scheme == "http") {
            url = "http://" + authority.host_header(80) + uri->path_and_query;
            rules_url = "http://" + authority.host_header(80) + normalize_path(uri->path_and_query);
        }
    } else {
        auto a = parse_authority(target, true);
        if (!a) {
            std::fprintf(stderr, "hallpass: --explain: %s (expected a URL or HOST:PORT)\n",
                         a.error().message.c_str());
            return 2;
        }
        authority = *a;
    }
    facts.host = authority.host;
    facts.host_kind = authority.kind;
    facts.port = authority.port;
    facts.url = rules_url;
    bool defaults = false;
    auto loaded = load_config(opts, &defaults);
    if (!loaded) {
        std::fprintf(stderr, "%s\n", loaded.error().to_string().c_str());
        return 1;
    }
    // The checks that come before the rules, in the proxy's order: a refusal there is the
    // answer, whatever the rules say.
    if (auto refusal = refused_before_rules(loaded->server, *ip, authority, url.empty())) {
        const bool local = refusal->starts_with("its own address");
        std::printf("decision: %s\n", local ? "answered by hallpass" : "refused (403)");
        std::printf("request: %s -> %s%s\n", ip->to_string().c_str(), authority.host_port().c_str(),
                    url.empty() ? " (CONNECT)" : (" " + url).c_str());
        std::printf("%s: %s (before any rule)\n", local ? "because" : "refused by",
                    refusal->c_str());
        return 0;
    }
    facts.now_s = static_cast<int64_t>(std::time(nullptr));
    // The grants the running proxy keeps (its state directory), as it would apply them.
    GrantStore grants((std::filesystem::path(loaded->server.state_dir) / "grants.json").string());
    if (auto g = grants.load(facts.now_s); !g) {
        std::fprintf(stderr, "hallpass: %s (grants not considered)\n",
                     g.error().to_string().c_str());
    }
    const auto grant_set = grants.current();
    const Verdict verdict = decide_request(*loaded->rules, grant_set.get(), facts);
    Explanation ex = loaded->rules->explain(facts);
    const char* action = verdict.blocked() ? "block" : "allow";
    std::printf("decision: %s\n", action);
    std::printf("request: %s -> %s%s\n", ip->to_string().c_str(), authority.host_port().c_str(),
                url.empty() ? " (CONNECT)" : (" " + url).c_str());
    const std::string until = verdict_until_label(*loaded->rules, verdict, facts.now_s);
    if (verdict.grant) {
        std::printf(
            "grant: %llu: %s, until %s%s\n", static_cast<unsigned long long>(verdict.grant->id),
            verdict.grant->describe().c_str(), until.c_str(),
            verdict.grant->note.empty() ? "" : (" (\"" + verdict.grant->note + "\")").c_str());
        std::printf("%s by grant %llu until %s (before any rule)\n",
                    verdict.blocked() ? "blocked" : "allowed",
                    static_cast<unsigned long long>(verdict.grant->id), until.c_str());
    }
    auto print_schedules = [&] {
        if (!ex.next_change.empty()) std::printf("next change: %s\n", ex.next_change.c_str());
    };
    if (verdict.grant) {
        print_schedules();
        return 0;
    }
    if (ex.decision.rule < 0) {
        std::printf("rule: none matched; the default (%s) applied\n", action);
        print_schedules();
        return 0;
    }
    std::printf("rule: %s (%s)\n", ex.rule_name.c_str(), ex.rule_where.c_str());
    if (ex.condition.empty()) {
        std::printf("matched: the rule has no conditions\n");
    } else if (ex.entry_where.empty()) {
        std::printf("matched: %s: %s\n", ex.condition.c_str(), ex.entry.c_str());
    } else {
        std::printf("matched: %s: %s (%s)\n", ex.condition.c_str(), ex.entry.c_str(),
                    ex.entry_where.c_str());
    }
    if (!ex.when.empty()) std::printf("when: %s\n", ex.when.c_str());
    const std::string& message = loaded->rules->rule_message(ex.decision.rule);
    if (!message.empty()) std::printf("message: %s\n", message.c_str());
    if (!ex.until.empty()) {
        std::printf("%s by %s until %s\n", verdict.blocked() ? "blocked" : "allowed",
                    ex.rule_name.c_str(), ex.until.c_str());
    }
    print_schedules();
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    // Large blocks (rule indexes and their build buffers: tens of MB) are mmapped and given back
    // to the system when freed. Without a fixed threshold glibc raises it after the first such
    // free, and later reloads' big vectors stay in the heap: the reload peak grows.
    mallopt(M_MMAP_THRESHOLD, 1 << 20);
    // Fixing the mmap threshold also fixes the trim threshold at 128 KiB, and then every 256 KiB
    // relay buffer freed at the top of a worker's heap is given back and faulted in again: tunnel
    // downloads lost ~25 % (bench/run). The reloader trims explicitly after each reload instead.
    mallopt(M_TRIM_THRESHOLD, 64 << 20);
    auto opts = parse_cli(argc, argv);
    if (!opts) {
        std::fprintf(stderr, "hallpass: %s\n", opts.error().to_string().c_str());
        return 2;
    }
    if (opts->show_help) {
        std::fputs(cli_usage().c_str(), stdout);
        return 0;
    }
    if (opts->show_version) {
        std::printf("hallpass %s\n", HALLPASS_VERSION);
        return 0;
    }
    set_log_level(opts->log_level);
    if (opts->check) return run_check(*opts);
    if (opts->update_lists) return run_update_lists(*opts);
    if (opts->explain) return run_explain(*opts);
    if (!opts->command.empty()) {
        bool command_defaults = false;
        auto config = load_config(*opts, &command_defaults);
        if (!config) {
            std::fprintf(stderr, "hallpass: %s\n", config.error().to_string().c_str());
            return 2;
        }
        return run_control_command(*opts, config->server);
    }

    bool defaults = false;
    auto loaded = load_config(*opts, &defaults);
    if (!loaded) {
        std::fprintf(stderr, "hallpass: %s\n", loaded.error().to_string().c_str());
        return 1;
    }
    ServerConfig cfg = std::move(loaded->server);
    std::shared_ptr<const RuleSet> rules = std::move(loaded->rules);
    std::string rules_path;
    if (defaults) {
        LOG_INFO("no %s: running with the built-in defaults and no rules",
                 opts->config_path.c_str());
    } else {
        rules_path = opts->config_path;
        LOG_INFO("rules: %zu rules, %zu names indexed, loaded in %.0f ms from %s",
                 rules->rule_count(), rules->entry_count(), loaded->load_ms, rules_path.c_str());
    }
    if (!opts->listen.empty()) cfg.listen = opts->listen;
    if (opts->threads) cfg.threads = *opts->threads;

    // Broken client or upstream sockets must surface as errors, not kill the process.
    signal(SIGPIPE, SIG_IGN);
    // Workers are woken from other threads (drain, rules refresh): libevent needs its locks.
    evthread_use_pthreads();

    // Before the first thread: what must hold for every thread (no_new_privs, the bounding set).
    auto account = prepare_privilege_drop(cfg.user);
    if (!account) {
        LOG_ERROR("%s", account.error().to_string().c_str());
        return 1;
    }
    auto store = std::make_shared<RuleStore>(std::move(rules));
    auto server = Server::create(std::move(cfg), store, rules_path);
    if (!server) {
        LOG_ERROR("%s", server.error().to_string().c_str());
        return 1;
    }
    // Sockets bound, logs open: from here on, no privilege at all.
    if (*account) {
        if (auto switched = switch_to(**account); !switched) {
            LOG_ERROR("%s", switched.error().to_string().c_str());
            return 1;
        }
    }
    return (*server)->run();
}
