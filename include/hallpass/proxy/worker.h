// One worker thread: its own event_base, its own SO_REUSEPORT listeners (the kernel spreads
// accepted connections across workers), its connections, DNS resolver and upstream pool, and the
// reaper that frees finished connections on a later loop turn. Other threads reach a worker only
// through request_drain(), request_rules_refresh() and request_evict(), which set a bit and write
// to the worker's eventfd; its event base has no lock.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <memory_resource>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "hallpass/base/event_handles.h"
#include "hallpass/base/net_set.h"
#include "hallpass/config/config.h"
#include "hallpass/http/http_parser.h"
#include "hallpass/observe/transaction.h"
#include "hallpass/proxy/client_table.h"
#include "hallpass/proxy/destination_guard.h"
#include "hallpass/rules/grants.h"
#include "hallpass/rules/rule_store.h"

namespace hallpass {

class Connection;
class DnsResolver;
class Worker;
class HostsTable;
class Stats;
class UpstreamPool;
class PipePool;

// One of hallpass's own listening sockets, for loop detection.
struct SelfAddress {
    bool any = false;  // 0.0.0.0 or ::: every local address on `port`
    IpAddr ip;
    uint16_t port = 0;
    bool admin = false;  // the admin endpoint, not a proxy listener
    bool pac = false;    // a server.pac_listen address: the auto-config file only

    static SelfAddress of(const sockaddr* addr, bool admin = false);
};

// State shared by all workers: immutable after start, or lock-free counters.
struct SharedState {
    std::atomic<int> connections{0};     // open client connections, all workers
    std::atomic<uint64_t> next_id{1};    // connection ids for logs
    NetSet allowed_clients;              // server.allowed_clients, compiled
    std::vector<SelfAddress> self;       // where hallpass listens
    NetSet local_addresses;              // this machine's addresses (for `any` listeners)
    std::vector<std::string> own_names;  // this machine's host name, lower case
    DestinationGuard destinations;       // local destinations and their exceptions
    // Receivers of every finished request (access log, statistics). Set before workers start;
    // read-only afterwards; each sink is called on the worker threads.
    std::vector<TransactionSink*> sinks;
    // The statistics (also one of `sinks`): each worker publishes its part and counts its
    // upstream connections and tunnels on a 1 s timer. Null: no statistics. Set before start.
    Stats* stats = nullptr;

    // Exact per-client counts (connections, DNS lookups, idle connections). Thread-safe.
    ClientTable clients;
    // Every worker, by index, so one at a connection limit can ask another to close an idle
    // connection (request_evict). Set before the workers start.
    std::vector<Worker*> workers;
    // Timed exceptions and pauses (`hallpass grant`); null: none. Set before the workers start.
    const GrantStore* grants = nullptr;

    // True when ip:port is one of our own listening addresses (a request there would loop).
    // *admin (when given) says whether it is the admin endpoint's.
    bool is_self(const IpAddr& ip, uint16_t port, bool* admin = nullptr) const;
};

class Worker {
  public:
    Worker(int index, const ServerConfig& cfg, std::shared_ptr<const HostsTable> hosts,
           SharedState& shared, const RuleStore& rules);
    ~Worker();
    Worker(const Worker&) = delete;
    Worker& operator=(const Worker&) = delete;

    // Creates the event base, DNS resolver, pool and one listener per socket in `listen_fds`
    // (already bound and listening, owned by the worker from now on). Main thread, before run().
    // `pac_fds`: server.pac_listen sockets, whose connections get the auto-config file only.
    Result<bool> init(const std::vector<int>& listen_fds, const std::vector<int>& pac_fds = {});
    // Starts the worker thread.
    void start();
    void join();

    // Thread-safe: stop accepting, close idle connections, let the others finish their current
    // exchange; after `grace_ms` abort whatever remains; the loop ends when none remain.
    void request_drain(int grace_ms);
    // Thread-safe: a new rule snapshot was published; drop the cached one now rather than at the
    // next request, so an idle worker does not keep old rules in memory.
    void request_rules_refresh();
    // Asks the worker's loop to count one heartbeat (heartbeats()): a loop that counts has
    // run since (the service watchdog's proof of life).
    void request_heartbeat();
    uint64_t heartbeats() const { return heartbeats_.load(std::memory_order_relaxed); }
    // Thread-safe: close connection `id` of this worker if it is still idle between requests
    // (another worker is at a connection limit and claimed it from SharedState::clients).
    void request_evict(uint64_t id);
    int index() const { return index_; }

    // For connections (worker thread only).
    event_base* base() const { return base_.get(); }
    const ServerConfig& config() const { return cfg_; }
    const SharedState& shared() const { return shared_; }
    ClientTable& clients() { return shared_.clients; }
    const ParseLimits& limits() const { return limits_; }
    DnsResolver& dns() { return *dns_; }
    UpstreamPool& pool() { return *pool_; }
    // Pipes for tunnels' splice(2); null when server.splice is off.
    PipePool* pipes() { return pipes_.get(); }
    // Where connections' per-exchange arenas take their blocks: a block given back when an
    // exchange ends is kept for the next one, so a busy worker does not call malloc for heads.
    std::pmr::memory_resource* head_memory() { return &head_memory_; }
    // The rule snapshot for a request starting now (refreshed after a reload).
    const std::shared_ptr<const RuleSet>& rules() { return rules_.get(); }
    // The grants in force now.
    const std::shared_ptr<const GrantSet>& grants() { return grants_.get(); }
    // The wall clock (Unix seconds): what schedules and grants are checked at.
    int64_t now_s() const;
    // A request ended: hand its record to every sink (worker thread only).
    void record(const Transaction& txn) {
        for (TransactionSink* sink : shared_.sinks) sink->record(index_, txn);
    }
    // Called by Connection::finish(): queue for freeing on a later loop turn.
    void reap(Connection* conn);

    // libevent trampolines (public for the C callbacks in worker.cpp).
    void on_accept(int fd, const sockaddr* peer, bool pac_only = false);
    void on_accept_error(evconnlistener* listener);
    void on_reap();
    void on_drain();
    void on_wake();
    void wake(unsigned request);  // from any thread
    void on_grace_expired();
    void on_resume_accept();
    void on_rules_refresh() { (void)rules_.get(); }
    void on_stats_tick();
    void on_evict();
    // Twice a second, and after a reload: when a schedule opened or closed, a grant started
    // or ended, or new rules came, every connection is decided again and those now blocked
    // close (recheck_policy).
    void on_policy_tick();

  private:
    void close_listeners();
    void refuse(int fd, const sockaddr* peer, int status, const char* why);
    void maybe_exit();
    // At a limit: asks the worker holding `ip`'s (or, null, anyone's) longest-idle connection to
    // close it. False when there is none.
    bool evict_idle(const IpAddr* ip);
    void evict_now(uint64_t id);

    int index_;
    const ServerConfig& cfg_;
    ParseLimits limits_;
    std::shared_ptr<const HostsTable> hosts_;
    SharedState& shared_;
    EventBasePtr base_;  // declared before what lives on it; the destructor frees in order
    std::unique_ptr<DnsResolver> dns_;
    std::unique_ptr<UpstreamPool> pool_;
    std::unique_ptr<PipePool> pipes_;
    std::vector<ListenerPtr> listeners_;
    EventPtr reap_event_;
    UniqueFd wake_fd_;    // eventfd: other threads' requests (wake_requests_) wake the loop
    EventPtr wake_event_;
    EventPtr grace_timer_;
    EventPtr resume_timer_;  // re-enables accepting after EMFILE
    EventPtr stats_timer_;  // 1 s, persistent; only with SharedState::stats
    EventPtr policy_timer_;  // 500 ms, persistent
    std::mutex evict_mu_;
    std::vector<uint64_t> evict_ids_;  // guarded by evict_mu_
    RuleCache rules_;
    GrantCache grants_;
    // What the connections were last decided under (on_policy_tick). Held, not just pointed
    // at, so a new snapshot can never be mistaken for a freed one at the same address.
    struct PolicyKey {
        std::shared_ptr<const RuleSet> rules;
        uint64_t schedules = 0;
        std::shared_ptr<const GrantSet> grants;
        uint64_t active_grants = 0;
        bool operator==(const PolicyKey&) const = default;
    };
    PolicyKey policy_key_;
    // Before the connections, which give their arenas' blocks back to it when freed.
    std::pmr::unsynchronized_pool_resource head_memory_{
        std::pmr::pool_options{.max_blocks_per_chunk = 16, .largest_required_pool_block = 16384}};
    std::unordered_map<Connection*, std::unique_ptr<Connection>> connections_;
    std::vector<Connection*> reap_list_;
    std::atomic<int> drain_grace_ms_{0};
    std::atomic<unsigned> wake_requests_{0};  // kWake* bits, taken by on_wake()
    std::atomic<uint64_t> heartbeats_{0};
    bool draining_ = false;
    time_t last_refusal_log_s_ = 0;
    uint64_t refusals_ = 0;
    std::thread thread_;
};

}  // namespace hallpass
