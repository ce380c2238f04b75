// Listening sockets, workers and signals. Each worker gets its own socket per address, all bound
// with SO_REUSEPORT to the same port, so the kernel spreads new connections and no lock or
// hand-off is needed between threads. Port 0 is resolved by the first bind and reused for the rest.
#include "hallpass/server/server.h"

#include <event2/event.h>
#include <event2/thread.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <optional>
#include <thread>

#include "hallpass/base/log.h"
#include "hallpass/observe/access_log.h"
#include "hallpass/observe/admin.h"
#include "hallpass/observe/stats.h"
#include "hallpass/proxy/dns.h"
#include "hallpass/proxy/pipe_pool.h"
#include "hallpass/proxy/worker.h"
#include "hallpass/rules/grants.h"
#include "hallpass/rules/list_updater.h"
#include "hallpass/rules/reloader.h"
#include "hallpass/rules/rule_set.h"
#include "hallpass/rules/rule_store.h"
#include "hallpass/rules/rules_file.h"
#include "hallpass/server/control.h"
#include "hallpass/server/notify.h"

namespace hallpass {
namespace {

Result<int> bind_socket(const ListenAddress& addr) {
    int fd = ::socket(addr.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return Error{std::string("socket: ") + std::strerror(errno)};
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (addr.addr.ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (::bind(fd, reinterpret_cast<const sockaddr*>(&addr.addr), addr.len) != 0 ||
        ::listen(fd, 1024) != 0) {
        int err = errno;
        ::close(fd);
        return Error{std::strerror(err)};
    }
    return fd;
}

// This machine's host name (lower case), for requests that name the proxy by it.
std::vector<std::string> own_names() {
    char name[256] = "";
    if (gethostname(name, sizeof name - 1) != 0 || !name[0]) return {};
    std::string lower(name);
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    std::vector<std::string> names{lower};
    if (size_t dot = lower.find('.'); dot != std::string::npos && dot > 0) {
        names.push_back(lower.substr(0, dot));
    }
    return names;
}

// Descriptors a full proxy needs: a client and an upstream socket per connection, plus the
// listeners, pooled connections, the workers' pipes, log files and libevent's own.
rlim_t descriptors_needed(const ServerConfig& cfg, int threads) {
    const rlim_t pipes = cfg.splice ? 2 * kMaxPipesPerWorker * static_cast<rlim_t>(threads) : 0;
    return static_cast<rlim_t>(cfg.max_connections) * 2 +
           static_cast<rlim_t>(std::min<size_t>(cfg.pool_max_idle, 100'000)) + pipes + 256;
}

// Raises the soft RLIMIT_NOFILE to the hard limit (the default soft limit, 1024, holds a few
// hundred clients), and says so when even that cannot hold max_connections: past it, accepts
// pause on EMFILE instead of failing, but the admin should know before a busy evening does.
void raise_descriptor_limit(const ServerConfig& cfg, int threads) {
    rlimit lim{};
    if (getrlimit(RLIMIT_NOFILE, &lim) != 0) return;
    const rlim_t want = descriptors_needed(cfg, threads);
    if (lim.rlim_cur < lim.rlim_max) {
        rlim_t target = lim.rlim_max == RLIM_INFINITY ? std::max(want, lim.rlim_cur) : lim.rlim_max;
        rlimit raised{target, lim.rlim_max};
        if (setrlimit(RLIMIT_NOFILE, &raised) == 0) lim.rlim_cur = target;
    }
    if (lim.rlim_cur != RLIM_INFINITY && lim.rlim_cur < want) {
        LOG_WARN(
            "the descriptor limit (RLIMIT_NOFILE %llu) cannot hold max_connections %d (needs "
            "about %llu): raise LimitNOFILE / ulimit -n, or lower max_connections",
            static_cast<unsigned long long>(lim.rlim_cur), cfg.max_connections,
            static_cast<unsigned long long>(want));
    } else {
        LOG_DEBUG("descriptor limit %llu", static_cast<unsigned long long>(lim.rlim_cur));
    }
}

struct SignalContext {
    std::vector<std::unique_ptr<Worker>>* workers;
    event_base* base;
    int grace_ms;
    Reloader* reloader;     // null without a rules file
    AccessLog* access_log;  // null when off
    int stops = 0;
};

void on_signal(evutil_socket_t sig, short, void* arg) {
    auto* ctx = static_cast<SignalContext*>(arg);
    if (sig == SIGTERM || sig == SIGINT) {
        // A second signal means "now": no grace.
        int grace = ctx->stops++ == 0 ? ctx->grace_ms : 0;
        notify::stopping();
        LOG_INFO("%s: stopping (in-flight exchanges get %d ms)", strsignal(static_cast<int>(sig)),
                 grace);
        for (auto& w : *ctx->workers) w->request_drain(grace);
        event_base_loopexit(ctx->base, nullptr);
    } else if (sig == SIGHUP) {
        notify::reloading();
        if (ctx->reloader) {
            LOG_INFO("SIGHUP: reloading the rules");
            ctx->reloader->request();  // its result callback reports the end
        } else {
            LOG_INFO("SIGHUP: no rules file was given (-c), nothing to reload");
            notify::reloaded("running on the built-in defaults: nothing to reload");
        }
    } else if (sig == SIGUSR1) {
        if (ctx->access_log) {
            LOG_INFO("SIGUSR1: reopening the access log %s", ctx->access_log->path().c_str());
            ctx->access_log->reopen();  // the writer thread does it, after what it holds
        } else {
            LOG_INFO("SIGUSR1: no access log file to reopen");
        }
    }
}

// The service watchdog: a ping only when every worker's loop has counted the heartbeat asked of
// it at the previous tick, so a stuck worker stops the pings and systemd restarts the service.
struct WatchdogContext {
    std::vector<std::unique_ptr<Worker>>* workers;
    std::vector<uint64_t> seen;
};

void on_watchdog(evutil_socket_t, short, void* arg) {
    auto* ctx = static_cast<WatchdogContext*>(arg);
    bool alive = true;
    for (size_t i = 0; i < ctx->workers->size(); ++i) {
        const uint64_t now = (*ctx->workers)[i]->heartbeats();
        if (now == ctx->seen[i]) alive = false;
        ctx->seen[i] = now;
    }
    if (alive) {
        notify::watchdog();
    } else {
        LOG_WARN("watchdog: a worker did not answer within %llu ms",
                 static_cast<unsigned long long>(notify::watchdog_interval_us() / 1000));
    }
    for (auto& w : *ctx->workers) w->request_heartbeat();
}

}  // namespace

Server::~Server() = default;

Result<std::unique_ptr<Server>> Server::create(ServerConfig cfg, std::shared_ptr<RuleStore> rules,
                                               std::string rules_path) {
    std::unique_ptr<Server> s(new Server());
    s->cfg_ = std::move(cfg);
    s->rules_ = std::move(rules);
    s->rules_path_ = std::move(rules_path);
    s->shared_ = std::make_unique<SharedState>();
    int threads = s->cfg_.threads > 0 ? s->cfg_.threads
                                      : static_cast<int>(std::thread::hardware_concurrency());
    if (threads <= 0) threads = 1;
    raise_descriptor_limit(s->cfg_, threads);
    for (const std::string& cidr : s->cfg_.allowed_clients) {
        if (auto err = s->shared_->allowed_clients.add(cidr))
            return Error{"allowed_clients: " + *err};
    }
    s->shared_->allowed_clients.compile();
    s->shared_->local_addresses = local_addresses();
    s->shared_->own_names = own_names();
    auto guard =
        DestinationGuard::create(s->shared_->local_addresses, s->cfg_.allow_local_destinations);
    if (!guard) return guard.error();
    s->shared_->destinations = std::move(*guard);

    std::shared_ptr<const HostsTable> hosts;
    if (!s->cfg_.hosts_file.empty()) {
        auto table = HostsTable::load(s->cfg_.hosts_file);
        if (!table) {
            // /etc/hosts missing is no reason to refuse to start; a configured one is.
            if (s->cfg_.hosts_file != "/etc/hosts") return table.error();
            LOG_WARN("cannot read /etc/hosts; resolving through DNS only");
        } else {
            hosts = std::make_shared<const HostsTable>(std::move(*table));
        }
    }

    Stats::Options stats_options;
    stats_options.workers = threads;
    stats_options.version = HALLPASS_VERSION;
    stats_options.rules_file = s->rules_path_;
    stats_options.client_connections = &s->shared_->connections;
    s->stats_ = std::make_unique<Stats>(std::move(stats_options));
    s->shared_->sinks.push_back(s->stats_.get());
    s->shared_->stats = s->stats_.get();
    s->stats_->set_groups_source(
        [self = s.get()](const IpAddr& ip) { return self->rules_->current()->groups_of(ip); });
    // The lists of the rules in force, and for lists by URL their copies and last fetches.
    Server* self = s.get();
    s->stats_->set_lists_source([self] {
        std::vector<StatsSnapshot::List> out;
        const auto rules = self->rules_->current();
        std::vector<ListUpdater::Status> fetches;
        if (ListUpdater* u = self->list_updater_.load()) fetches = u->status();
        const int64_t now = static_cast<int64_t>(std::time(nullptr));
        for (const ListSummary& summary : rules->lists()) {
            StatsSnapshot::List l;
            l.name = summary.name;
            l.url = summary.url;
            l.entries = summary.entries;
            for (const ListUpdater::Status& f : fetches) {
                if (f.name != summary.name) continue;
                if (f.copy_unix > 0) l.copy_age_s = now - f.copy_unix;
                if (f.at_unix > 0) l.last_fetch = outcome_name(f.outcome);
                l.last_fetch_message = f.message;
                l.last_fetch_unix = f.at_unix;
            }
            out.push_back(std::move(l));
        }
        return out;
    });

    if (s->cfg_.access_log.enabled()) {
        AccessLog::Options options;
        options.path = s->cfg_.access_log.path;
        options.format = s->cfg_.access_log.format;
        options.workers = threads;
        auto log = AccessLog::open(std::move(options));
        if (!log) return log.error();
        s->access_log_ = std::move(*log);
        s->shared_->sinks.push_back(s->access_log_.get());
    }

    // fds[worker] = that worker's sockets, one per listen address.
    std::vector<std::vector<int>> fds(threads);
    // The auto-config listeners (server.pac_listen), bound the same way.
    std::vector<std::vector<int>> pac_fds(threads);
    auto close_all = [&] {
        for (auto* set : {&fds, &pac_fds}) {
            for (auto& list : *set) {
                for (int fd : list) ::close(fd);
                list.clear();
            }
        }
    };
    // Binds every address of `addresses` once per worker into `into`; the first socket of each
    // learns the port the kernel chose for port 0, and the others bind to it.
    auto bind_all = [&](const std::vector<std::string>& addresses, const char* key,
                        std::vector<std::vector<int>>& into, bool pac) -> std::optional<Error> {
        for (const std::string& text : addresses) {
            auto addr = parse_listen_address(text);
            if (!addr) return addr.error();
            for (int w = 0; w < threads; ++w) {
                auto fd = bind_socket(*addr);
                if (!fd) {
                    return Error{"cannot listen on " + text +
                                 (pac ? std::string(" (") + key + ")" : "") + ": " +
                                 fd.error().message};
                }
                into[w].push_back(*fd);
                if (w > 0) continue;
                socklen_t len = sizeof addr->addr;
                getsockname(*fd, reinterpret_cast<sockaddr*>(&addr->addr), &len);
                const auto* bound = reinterpret_cast<const sockaddr*>(&addr->addr);
                (pac ? s->pac_bound_ : s->bound_).push_back(format_address(bound));
                SelfAddress self = SelfAddress::of(bound);
                self.pac = pac;
                s->shared_->self.push_back(self);
            }
        }
        return std::nullopt;
    };
    auto err = bind_all(s->cfg_.listen, "server.listen", fds, false);
    if (!err) err = bind_all(s->cfg_.pac_listen, "server.pac_listen", pac_fds, true);
    if (err) {
        close_all();
        return *err;
    }
    // Grants: kept in the state directory; a damaged file is reported and set aside.
    s->grants_ = std::make_unique<GrantStore>(
        (std::filesystem::path(s->cfg_.state_dir) / "grants.json").string());
    if (auto loaded = s->grants_->load(static_cast<int64_t>(std::time(nullptr))); !loaded) {
        LOG_WARN("%s; starting without grants", loaded.error().to_string().c_str());
    }
    s->shared_->grants = s->grants_.get();
    s->control_ = std::make_unique<GrantControl>(*s->grants_, *s->rules_);
    const bool admin_tcp = s->cfg_.admin != "off";
    if (admin_tcp || !s->cfg_.control_socket.empty()) {
        AdminHosts admin_hosts;
        admin_hosts.names = s->cfg_.admin_hosts;
        // Bound to 0.0.0.0 or ::, it is reached on any of the machine's addresses.
        if (auto a = parse_listen_address(s->cfg_.admin); a && admin_tcp) {
            auto ip = IpAddr::from_sockaddr(reinterpret_cast<const sockaddr*>(&a->addr));
            if (ip && ip->hi == 0 && ip->lo == 0)
                admin_hosts.own_addresses.add(s->shared_->local_addresses);
        }
        auto start_admin = [&] {
            return AdminServer::start(
                admin_tcp ? s->cfg_.admin : std::string(), *s->stats_, admin_hosts,
                static_cast<size_t>(s->cfg_.admin_max_connections),
                AdminControl{s->control_.get(), s->cfg_.control_socket, s->cfg_.admin_token});
        };
        auto admin = start_admin();
        if (!admin && s->cfg_.control_socket == kDefaultControlSocket &&
            admin.error().message.find("server.control_socket") != std::string::npos) {
            // The default path (not one the admin chose): run on without the socket.
            LOG_WARN("%s; running without a control socket", admin.error().message.c_str());
            s->cfg_.control_socket.clear();
            admin = admin_tcp ? start_admin() : Result<std::unique_ptr<AdminServer>>(nullptr);
        }
        if (!admin) {
            close_all();
            return admin.error();
        }
        s->admin_ = std::move(*admin);
    }
    if (s->admin_) {
        // A proxied request to the admin port is refused like one to a proxy port: the admin
        // listener is meant for loopback, and the proxy itself connects from loopback.
        if (admin_tcp) {
            auto bound = parse_listen_address(s->admin_->bound());
            const auto* sa = reinterpret_cast<const sockaddr*>(&bound->addr);
            s->shared_->self.push_back(SelfAddress::of(sa, true));
        }
    }
    for (int w = 0; w < threads; ++w) {
        auto worker = std::make_unique<Worker>(w, s->cfg_, hosts, *s->shared_, *s->rules_);
        auto ok = worker->init(fds[w], pac_fds[w]);
        fds[w].clear();  // the worker owns them now, even on failure
        pac_fds[w].clear();
        if (!ok) {
            close_all();
            return ok.error();
        }
        s->shared_->workers.push_back(worker.get());
        s->workers_.push_back(std::move(worker));
    }
    return s;
}

std::vector<ListSpec> Server::url_lists() const {
    // The kept copies stay where this process looks (state_dir is read at start-up). A file that
    // does not load names no lists: the reload that reads it fails anyway.
    auto lists = load_url_lists(rules_path_, cfg_.state_dir);
    return lists ? std::move(*lists) : std::vector<ListSpec>();
}

int Server::run() {
    event_base* base = event_base_new();
    if (!base) {
        LOG_ERROR("cannot create the main event loop");
        return 1;
    }
    std::unique_ptr<Reloader> reloader;
    if (!rules_path_.empty()) {
        reloader = std::make_unique<Reloader>(
            rules_path_, *rules_,
            [this] {
                for (auto& w : workers_) w->request_rules_refresh();
                // Lists by URL that the reload added, changed or dropped.
                if (ListUpdater* u = list_updater_.load()) u->set_lists(url_lists());
            },
            [this](bool ok, const std::string& message) {
                stats_->note_reload(ok, message);
                notify::reloaded(ok ? "rules reloaded"
                                    : "reload failed, the previous rules stay: " + message);
            });
    }
    // Lists by URL are kept current by their own thread; a good new copy is reloaded like a
    // SIGHUP, and each reload tells the thread which lists the file names now.
    std::unique_ptr<ListUpdater> updater;
    if (reloader) {
        std::vector<ListSpec> by_url = url_lists();
        if (!by_url.empty()) {
            LOG_INFO("lists by url: %zu, kept in %s", by_url.size(), cfg_.state_dir.c_str());
        }
        updater = std::make_unique<ListUpdater>(std::move(by_url),
                                                [r = reloader.get()] { r->request(); });
        list_updater_.store(updater.get());
    }
    SignalContext ctx{&workers_, base, cfg_.shutdown_grace_ms, reloader.get(), access_log_.get()};
    std::vector<event*> signals;
    for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGUSR1}) {
        event* ev = evsignal_new(base, sig, on_signal, &ctx);
        evsignal_add(ev, nullptr);
        signals.push_back(ev);
    }
    for (auto& w : workers_) w->start();
    for (const std::string& addr : bound_) LOG_INFO("listening on %s", addr.c_str());
    for (const std::string& addr : pac_bound_) {
        LOG_INFO("proxy auto-config on http://%s/proxy.pac and /wpad.dat", addr.c_str());
    }
    if (admin_ && !admin_->bound().empty())
        LOG_INFO("admin endpoint on http://%s/ (/metrics, /stats.json)", admin_->bound().c_str());
    if (admin_ && !cfg_.control_socket.empty())
        LOG_INFO("control socket %s (hallpass grant)", cfg_.control_socket.c_str());
    LOG_INFO("hallpass %s ready: %zu worker threads", HALLPASS_VERSION, workers_.size());
    notify::ready("listening on " + (bound_.empty() ? std::string("nothing") : bound_.front()) +
                  (bound_.size() > 1 ? " and " + std::to_string(bound_.size() - 1) + " more" : "") +
                  ", " + std::to_string(workers_.size()) + " workers");
    WatchdogContext watchdog{&workers_, std::vector<uint64_t>(workers_.size(), 0)};
    EventPtr watchdog_timer;
    if (const uint64_t us = notify::watchdog_interval_us()) {
        watchdog_timer.reset(event_new(base, -1, EV_PERSIST, on_watchdog, &watchdog));
        if (watchdog_timer) {
            for (auto& w : workers_) w->request_heartbeat();
            timeval tv{static_cast<time_t>(us / 1'000'000),
                       static_cast<suseconds_t>(us % 1'000'000)};
            event_add(watchdog_timer.get(), &tv);
        } else {
            LOG_WARN("watchdog: out of memory, no pings (systemd will restart the service)");
        }
    }
    event_base_dispatch(base);
    watchdog_timer.reset();
    admin_.reset();  // its statistics read the list updater
    if (updater) updater->stop();  // no more reloads asked by it, then none running that
    reloader.reset();  // would tell it the new lists; no refresh reaches a stopped worker
    list_updater_.store(nullptr);
    updater.reset();
    for (auto& w : workers_) w->join();
    if (access_log_) {
        access_log_->stop();  // every worker has stopped: this writes their last lines
        LOG_INFO("access log: %llu lines written, %llu dropped",
                 static_cast<unsigned long long>(access_log_->written()),
                 static_cast<unsigned long long>(access_log_->dropped()));
    }
    admin_.reset();
    for (event* ev : signals) event_free(ev);
    event_base_free(base);
    workers_.clear();
    LOG_INFO("stopped");
    return 0;
}

}  // namespace hallpass
