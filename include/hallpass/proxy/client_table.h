// Exact per-client counts shared by every worker: open connections, DNS lookups in flight, and
// which of the client's connections sit idle between requests (so that at a connection limit
// the longest-idle one can be closed instead of refusing the newcomer). A client is its address;
// IPv6 clients by their /64, since one host rotates through privacy addresses in it.
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <vector>

#include "hallpass/base/net_set.h"

namespace hallpass {

// An idle connection some worker may close: which worker, which connection, idle since when.
struct IdleConnection {
    int worker = 0;
    uint64_t id = 0;
    int64_t since_ms = 0;
};

class ClientTable {
  public:
    // Counts a new connection from `ip` unless it already has `limit` open.
    bool try_add_connection(const IpAddr& ip, int limit) {
        return try_add(ip, &Counts::connections, limit);
    }
    void add_connection(const IpAddr& ip);  // past the limit: an idle one is being closed
    void remove_connection(const IpAddr& ip) { remove(ip, &Counts::connections); }
    int connections(const IpAddr& ip) const;

    // Counts a DNS lookup for `ip` unless it already has `limit` in flight.
    bool try_add_lookup(const IpAddr& ip, int limit) {
        return try_add(ip, &Counts::lookups, limit);
    }
    void remove_lookup(const IpAddr& ip) { remove(ip, &Counts::lookups); }

    // A connection of `ip` is idle between requests (keep-alive), or no longer is.
    void mark_idle(const IpAddr& ip, const IdleConnection& conn);
    void clear_idle(const IpAddr& ip, uint64_t id);

    // Takes the longest-idle connection of `ip` (or, without `ip`, of any client) out of the
    // idle set, for its worker to close. Each idle connection is handed out once.
    std::optional<IdleConnection> claim_idle(const IpAddr* ip);

    size_t clients() const;  // entries held (for tests of the bookkeeping)

  private:
    struct Key {
        uint64_t hi = 0, lo = 0;
        bool operator==(const Key&) const = default;
    };
    struct KeyHash {
        size_t operator()(const Key& k) const noexcept {
            uint64_t h = k.hi * 0x9e3779b97f4a7c15ULL ^ k.lo * 0xc2b2ae3d27d4eb4fULL;
            return static_cast<size_t>(h ^ (h >> 29));
        }
    };
    struct Counts {
        int connections = 0;
        int lookups = 0;
        std::vector<IdleConnection> idle;
    };
    static Key key_of(const IpAddr& ip);
    bool try_add(const IpAddr& ip, int Counts::*count, int limit);
    void remove(const IpAddr& ip, int Counts::*count);
    void drop_if_empty(std::unordered_map<Key, Counts, KeyHash>::iterator it);

    mutable std::mutex mu_;
    std::unordered_map<Key, Counts, KeyHash> map_;
};

}  // namespace hallpass
