// A worker thread and its loop: accepts on its own SO_REUSEPORT listeners, owns its connections
// (freed by the reaper on a later loop turn, never inside their own callbacks), pauses accepting
// on EMFILE instead of spinning, and drains on shutdown.
#include "hallpass/proxy/worker.h"

#include <event2/event.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>

#include "hallpass/base/log.h"
#include "hallpass/http/http_responses.h"
#include "hallpass/observe/stats.h"
#include "hallpass/proxy/connection.h"
#include "hallpass/proxy/dns.h"
#include "hallpass/proxy/pipe_pool.h"
#include "hallpass/proxy/upstream_pool.h"

namespace hallpass {
namespace {

// After EMFILE/ENFILE: how long accepting pauses before it is tried again.
constexpr int kAcceptPauseMs = 200;


void accept_cb(evconnlistener*, evutil_socket_t fd, sockaddr* peer, int, void* arg) {
    static_cast<Worker*>(arg)->on_accept(fd, peer);
}
void accept_pac_cb(evconnlistener*, evutil_socket_t fd, sockaddr* peer, int, void* arg) {
    static_cast<Worker*>(arg)->on_accept(fd, peer, true);
}
void accept_error_cb(evconnlistener* listener, void* arg) {
    static_cast<Worker*>(arg)->on_accept_error(listener);
}
void reap_cb(evutil_socket_t, short, void* arg) { static_cast<Worker*>(arg)->on_reap(); }
void wake_cb(evutil_socket_t, short, void* arg) { static_cast<Worker*>(arg)->on_wake(); }
void grace_cb(evutil_socket_t, short, void* arg) { static_cast<Worker*>(arg)->on_grace_expired(); }
void resume_cb(evutil_socket_t, short, void* arg) { static_cast<Worker*>(arg)->on_resume_accept(); }
void stats_cb(evutil_socket_t, short, void* arg) { static_cast<Worker*>(arg)->on_stats_tick(); }

// What other threads ask of a worker: bits of Worker::wake_requests_.
constexpr unsigned kWakeDrain = 1;
constexpr unsigned kWakeRefresh = 2;
constexpr unsigned kWakeEvict = 4;
constexpr unsigned kWakeHeartbeat = 8;

timeval ms_to_tv(int ms) { return timeval{ms / 1000, (ms % 1000) * 1000}; }

}  // namespace

Worker::Worker(int index, const ServerConfig& cfg, std::shared_ptr<const HostsTable> hosts,
               SharedState& shared, const RuleStore& rules)
    : index_(index),
      cfg_(cfg),
      limits_{cfg.max_request_line, cfg.max_header_bytes, cfg.max_headers},
      hosts_(std::move(hosts)),
      shared_(shared),
      rules_(rules),
      grants_(shared.grants) {}

Worker::~Worker() {
    // Order: connections (they use the pool, the resolver and the base), then the rest.
    connections_.clear();
    reap_list_.clear();
    close_listeners();
    pool_.reset();
    dns_.reset();
    for (EventPtr* ev :
         {&reap_event_, &wake_event_, &grace_timer_, &resume_timer_, &stats_timer_, &policy_timer_})
        ev->reset();
    base_.reset();
}

Result<bool> Worker::init(const std::vector<int>& listen_fds, const std::vector<int>& pac_fds) {
    // One thread per base, and other threads reach it only through the eventfd below: the base
    // needs no lock, which every event_add and event_del would otherwise take.
    event_config* ec = event_config_new();
    if (!ec) return Error{"cannot create an event loop"};
    event_config_set_flag(ec, EVENT_BASE_FLAG_NOLOCK);
    base_.reset(event_base_new_with_config(ec));
    event_config_free(ec);
    if (!base_) return Error{"cannot create an event loop"};
    auto dns = DnsResolver::create(base_.get(), cfg_, hosts_);
    if (!dns) return dns.error();
    dns_ = std::move(*dns);
    pool_ = std::make_unique<UpstreamPool>(base_.get(), cfg_.pool_per_host, cfg_.pool_max_idle,
                                           cfg_.pool_idle_timeout_ms);
    if (cfg_.splice) {
        // Each pipe holds up to buffer_bytes (at most 1 MiB, the kernel's default
        // pipe-max-size for an unprivileged process).
        pipes_ = std::make_unique<PipePool>(kMaxPipesPerWorker,
                                            std::min<size_t>(cfg_.buffer_bytes, 1 << 20));
    }
    reap_event_.reset(event_new(base_.get(), -1, 0, reap_cb, this));
    wake_fd_.reset(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
    if (!wake_fd_) return Error{"cannot create an eventfd: " + std::string(std::strerror(errno))};
    wake_event_.reset(event_new(base_.get(), wake_fd_.get(), EV_READ | EV_PERSIST, wake_cb, this));
    if (!wake_event_ || event_add(wake_event_.get(), nullptr) != 0)
        return Error{"cannot watch the worker's eventfd"};
    grace_timer_.reset(evtimer_new(base_.get(), grace_cb, this));
    resume_timer_.reset(evtimer_new(base_.get(), resume_cb, this));
    if (!reap_event_ || !grace_timer_ || !resume_timer_)
        return Error{"cannot create the worker's events"};
    if (shared_.stats) {
        stats_timer_.reset(event_new(base_.get(), -1, EV_PERSIST, stats_cb, this));
        timeval second = ms_to_tv(1000);
        if (!stats_timer_ || event_add(stats_timer_.get(), &second) != 0)
            return Error{"cannot start the statistics timer"};
    }
    {
        // What connections will be decided under until the first change.
        const auto& rules = rules_.get();
        const auto& grants = grants_.get();
        const int64_t now = now_s();
        policy_key_ = PolicyKey{rules, rules->schedule_state(now), grants, grants->state(now)};
    }
    policy_timer_.reset(event_new(
        base_.get(), -1, EV_PERSIST,
        [](evutil_socket_t, short, void* arg) { static_cast<Worker*>(arg)->on_policy_tick(); },
        this));
    timeval half = ms_to_tv(500);
    if (!policy_timer_ || event_add(policy_timer_.get(), &half) != 0)
        return Error{"cannot start the policy timer"};
    const std::pair<const std::vector<int>*, evconnlistener_cb> sets[] = {
        {&listen_fds, accept_cb}, {&pac_fds, accept_pac_cb}};
    for (const auto& [fds, cb] : sets) {
        for (int fd : *fds) {
            ListenerPtr l(evconnlistener_new(base_.get(), cb, this,
                                             LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, fd));
            if (!l) return Error{"cannot listen: " + std::string(std::strerror(errno))};
            evconnlistener_set_error_cb(l.get(), accept_error_cb);
            listeners_.push_back(std::move(l));
        }
    }
    return true;
}

void Worker::start() {
    thread_ = std::thread([this] {
        event_base_dispatch(base_.get());
        LOG_DEBUG("worker %d stopped", index_);
    });
}

void Worker::join() {
    if (thread_.joinable()) thread_.join();
}

void Worker::wake(unsigned request) {
    wake_requests_.fetch_or(request);
    const uint64_t one = 1;
    // The counter only grows until the worker reads it; EAGAIN (it is full) still wakes it.
    ssize_t n = ::write(wake_fd_.get(), &one, sizeof one);
    (void)n;
}

void Worker::on_wake() {
    uint64_t count = 0;
    ssize_t n = ::read(wake_fd_.get(), &count, sizeof count);
    (void)n;
    const unsigned requests = wake_requests_.exchange(0);
    if (requests & kWakeRefresh) {
        on_rules_refresh();
        on_policy_tick();  // a reload that blocks what was allowed closes it at once
    }
    if (requests & kWakeEvict) on_evict();
    if (requests & kWakeHeartbeat) heartbeats_.fetch_add(1, std::memory_order_relaxed);
    if (requests & kWakeDrain) on_drain();
}

int64_t Worker::now_s() const {
    // Not libevent's cached time: that follows a step of the wall clock only every few seconds,
    // and a schedule's boundary is a wall-clock time. time() is a vDSO read.
    return static_cast<int64_t>(std::time(nullptr));
}

void Worker::on_policy_tick() {
    const auto& rules = rules_.get();
    const auto& grants = grants_.get();
    const int64_t now = now_s();
    PolicyKey key{rules, rules->schedule_state(now), grants, grants->state(now)};
    if (key == policy_key_) return;
    policy_key_ = std::move(key);
    std::vector<Connection*> all;
    all.reserve(connections_.size());
    for (auto& [raw, owned] : connections_) all.push_back(raw);
    for (Connection* c : all) {
        if (!c->finished()) c->recheck_policy(*rules, *grants, now);
    }
}

void Worker::request_drain(int grace_ms) {
    drain_grace_ms_.store(grace_ms);
    wake(kWakeDrain);
}

void Worker::request_rules_refresh() { wake(kWakeRefresh); }

void Worker::request_heartbeat() { wake(kWakeHeartbeat); }

void Worker::request_evict(uint64_t id) {
    {
        std::lock_guard lock(evict_mu_);
        evict_ids_.push_back(id);
    }
    wake(kWakeEvict);
}

void Worker::on_evict() {
    std::vector<uint64_t> ids;
    {
        std::lock_guard lock(evict_mu_);
        ids.swap(evict_ids_);
    }
    for (uint64_t id : ids) evict_now(id);
}

void Worker::evict_now(uint64_t id) {
    // Rare (only at a limit): a scan rather than a second index kept on every accept.
    for (auto& [raw, conn] : connections_) {
        if (conn->id() != id) continue;
        // It may have started a request since it was claimed: then it stays.
        if (conn->idle()) conn->evict();
        return;
    }
}

bool Worker::evict_idle(const IpAddr* ip) {
    auto idle = shared_.clients.claim_idle(ip);
    if (!idle) return false;
    if (idle->worker == index_) {
        evict_now(idle->id);
    } else if (idle->worker >= 0 && static_cast<size_t>(idle->worker) < shared_.workers.size()) {
        shared_.workers[static_cast<size_t>(idle->worker)]->request_evict(idle->id);
    }
    return true;
}

void Worker::on_stats_tick() {
    // Gauges counted here, once a second, cost the request path nothing.
    int64_t upstreams = static_cast<int64_t>(pool_->idle_count());
    int64_t tunnels = 0;
    for (const auto& [raw, conn] : connections_) {
        if (conn->has_upstream()) ++upstreams;
        if (conn->state() == Connection::State::Tunneling) ++tunnels;
    }
    shared_.stats->set_connection_gauges(index_, upstreams, tunnels);
    shared_.stats->publish(index_);
}

SelfAddress SelfAddress::of(const sockaddr* addr, bool admin) {
    SelfAddress s;
    s.ip = IpAddr::from_sockaddr(addr).value_or(IpAddr{});
    s.any = s.ip.hi == 0 && s.ip.lo == 0;
    s.port = port_of(addr);
    s.admin = admin;
    return s;
}

bool SharedState::is_self(const IpAddr& ip, uint16_t port, bool* admin) const {
    // 0.0.0.0 and :: as a destination reach this host, whichever local address we listen on.
    const bool unspecified = ip.hi == 0 && ip.lo == 0;
    for (const SelfAddress& s : self) {
        if (s.port != port) continue;
        if (unspecified || (s.any ? local_addresses.contains(ip)
                                  : (s.ip.v6 == ip.v6 && s.ip.hi == ip.hi && s.ip.lo == ip.lo))) {
            if (admin) *admin = s.admin;
            return true;
        }
    }
    return false;
}

void Worker::refuse(int fd, const sockaddr* peer, int status, const char* why) {
    // A fresh socket's send buffer is empty: this short write cannot block.
    std::string answer = make_error_response(status, why);
    ssize_t ignored = ::send(fd, answer.data(), answer.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    (void)ignored;
    ::close(fd);
    // A flood of refusals must not become a flood of log lines: one a second per worker.
    timeval now{};
    event_base_gettimeofday_cached(base_.get(), &now);
    if (now.tv_sec != last_refusal_log_s_) {
        last_refusal_log_s_ = now.tv_sec;
        LOG_WARN("refused %s with %d: %s (%llu refusals so far)", format_address(peer).c_str(),
                 status, why, static_cast<unsigned long long>(refusals_ + 1));
    }
    ++refusals_;
    if (shared_.stats) shared_.stats->count_refused(index_, status);
}

void Worker::on_accept(int fd, const sockaddr* peer, bool pac_only) {
    IpAddr client = IpAddr::from_sockaddr(peer).value_or(IpAddr{});
    if (!shared_.allowed_clients.contains(client)) {
        refuse(fd, peer, 403, "this proxy does not serve your address (server.allowed_clients)");
        return;
    }
    if (draining_) {
        refuse(fd, peer, 503, "hallpass is shutting down");
        return;
    }
    // At a limit, a connection idle between requests makes room (the client reopens one when
    // it needs it); only when none is idle is the newcomer refused. The idle one closes on its
    // worker's next turn, so the count can pass the limit by the connections being closed.
    int open = shared_.connections.fetch_add(1) + 1;
    if (open > cfg_.max_connections && !evict_idle(nullptr)) {
        shared_.connections.fetch_sub(1);
        refuse(fd, peer, 503, "too many connections, try again later (server.max_connections)");
        return;
    }
    if (!shared_.clients.try_add_connection(client, cfg_.max_connections_per_client)) {
        if (!evict_idle(&client)) {
            shared_.connections.fetch_sub(1);
            refuse(fd, peer, 503,
                   "too many connections from your address (server.max_connections_per_client)");
            return;
        }
        shared_.clients.add_connection(client);
    }
    uint64_t id = shared_.next_id.fetch_add(1);
    auto conn = std::make_unique<Connection>(*this, id, fd, peer, pac_only);
    Connection* raw = conn.get();
    connections_.emplace(raw, std::move(conn));
    raw->start();
}

void Worker::on_accept_error(evconnlistener* listener) {
    int err = EVUTIL_SOCKET_ERROR();
    if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
        // Out of descriptors: accepting again at once would spin. Pause, let connections close.
        LOG_WARN("worker %d: accept failed (%s); pausing accepts for %d ms", index_,
                 std::strerror(err), kAcceptPauseMs);
        for (auto& l : listeners_) evconnlistener_disable(l.get());
        timeval tv = ms_to_tv(kAcceptPauseMs);
        evtimer_add(resume_timer_.get(), &tv);
        return;
    }
    (void)listener;
    LOG_WARN("worker %d: accept failed: %s", index_, std::strerror(err));
}

void Worker::on_resume_accept() {
    if (draining_) return;
    for (auto& l : listeners_) evconnlistener_enable(l.get());
}

void Worker::reap(Connection* conn) {
    reap_list_.push_back(conn);
    event_active(reap_event_.get(), EV_TIMEOUT, 1);
}

void Worker::on_reap() {
    std::vector<Connection*> done;
    done.swap(reap_list_);
    for (Connection* conn : done) {
        shared_.clients.remove_connection(conn->client_ip());
        if (connections_.erase(conn)) shared_.connections.fetch_sub(1);
    }
    maybe_exit();
}

void Worker::on_drain() {
    if (draining_) return;
    draining_ = true;
    close_listeners();
    evtimer_del(resume_timer_.get());
    std::vector<Connection*> all;
    for (auto& [raw, owned] : connections_) all.push_back(raw);
    for (Connection* conn : all) conn->begin_drain();
    timeval tv = ms_to_tv(drain_grace_ms_.load());
    evtimer_add(grace_timer_.get(), &tv);
    LOG_DEBUG("worker %d draining %zu connections", index_, connections_.size());
    maybe_exit();
}

void Worker::on_grace_expired() {
    if (!connections_.empty()) {
        LOG_INFO("worker %d: shutdown grace over, closing %zu connections", index_,
                 connections_.size());
    }
    std::vector<Connection*> all;
    for (auto& [raw, owned] : connections_) all.push_back(raw);
    for (Connection* conn : all) conn->abort("shutdown grace expired");
    maybe_exit();
}

void Worker::maybe_exit() {
    // Finished connections still wait in reap_list_ until on_reap; exit once all are freed.
    if (draining_ && connections_.empty()) event_base_loopexit(base_.get(), nullptr);
}

void Worker::close_listeners() {
    listeners_.clear();
}

}  // namespace hallpass
