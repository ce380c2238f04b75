// Name resolution for upstream connections, never blocking a loop: a hosts(5) table consulted
// first, then a per-worker TTL-respecting cache, then asynchronous evdns A and AAAA queries (one
// in flight per name, shared by every waiter). IP literals never get here (the connection builds
// their address directly). One DnsResolver per worker; only that worker's thread touches it.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "hallpass/base/error.h"

struct event_base;
struct evdns_base;

namespace hallpass {

struct ServerConfig;

// The hosts file, parsed once at start-up and shared read-only by all workers.
class HostsTable {
  public:
    // Parses a hosts(5) file: "ADDRESS NAME [NAME...]", '#' comments. Lines whose address does
    // not parse (e.g. with a zone id) are skipped. Names are lower-cased, trailing dot removed.
    static Result<HostsTable> load(const std::string& path);
    static HostsTable parse(const std::string& text);

    // Addresses for a canonical name (IPv4 first), or nullptr.
    const std::vector<sockaddr_storage>* find(const std::string& name) const;
    size_t size() const { return names_.size(); }

  private:
    std::unordered_map<std::string, std::vector<sockaddr_storage>> names_;
};

struct DnsAnswer {
    std::vector<sockaddr_storage> addresses;  // port 0; IPv4 first, then IPv6
    std::string error;                        // non-empty on failure, e.g. "no such host"
    bool ok() const { return error.empty() && !addresses.empty(); }
};

using DnsCallback = std::function<void(const DnsAnswer&)>;

struct DnsStats {
    uint64_t hosts_hits = 0;
    uint64_t cache_hits = 0;
    uint64_t queries = 0;  // names sent to the nameservers
};

class DnsResolver {
  public:
    // Makes the evdns base on `base` with the configured nameservers (or /etc/resolv.conf's when
    // none are configured: read once here, at start-up). Fails when no nameserver can be set up.
    static Result<std::unique_ptr<DnsResolver>> create(event_base* base, const ServerConfig& cfg,
                                                       std::shared_ptr<const HostsTable> hosts);
    ~DnsResolver();

    // The answer known now (hosts table, unexpired cache entry), or nothing: no query starts.
    std::optional<DnsAnswer> known(const std::string& host);

    // Asks the nameservers for canonical name `host` (call known() first: this does not look
    // at the hosts table or the cache). A query is started or joined, *ticket is set, and `cb`
    // runs later on this loop, exactly once, unless cancel(*ticket) is called before. When no
    // query can start (no nameserver), that failure is returned now and `cb` is dropped.
    std::optional<DnsAnswer> resolve(const std::string& host, DnsCallback cb, uint64_t* ticket);

    // Forgets the waiter. When it was the name's last, the name's queries are cancelled too
    // (evdns stops retransmitting them and frees their slots). Unknown tickets are ignored.
    void cancel(uint64_t ticket);

    const DnsStats& stats() const { return stats_; }

    struct Pending;  // one in-flight name (public for the evdns trampoline in dns.cpp)
    void on_query_done(Pending* pending);
    void on_cancelled_done(Pending* pending);

  private:
    DnsResolver() = default;
    struct CacheEntry {
        DnsAnswer answer;
        int64_t expires_s = 0;  // monotonic seconds
    };
    void store(const std::string& host, const DnsAnswer& answer, int ttl_s);

    event_base* base_ = nullptr;
    evdns_base* evdns_ = nullptr;
    std::shared_ptr<const HostsTable> hosts_;
    int max_ttl_s_ = 300;
    size_t max_entries_ = 4096;
    int64_t last_sweep_s_ = 0;  // when expired entries were last dropped
    uint64_t next_ticket_ = 1;
    std::unordered_map<std::string, CacheEntry> cache_;
    std::unordered_map<std::string, std::unique_ptr<Pending>> pending_;
    // Names whose waiters all left: their evdns requests report DNS_ERR_CANCEL later.
    std::unordered_map<Pending*, std::unique_ptr<Pending>> cancelled_;
    std::unordered_map<uint64_t, Pending*> tickets_;
    DnsStats stats_;
};

}  // namespace hallpass
