// One mutex over a hash map: taken at accept and close, when a connection goes idle or starts a
// request, and around DNS lookups that miss the cache. Entries go when their last count does,
// so the map holds the clients connected now, not every client ever seen.
#include "hallpass/proxy/client_table.h"

#include <algorithm>

namespace hallpass {

ClientTable::Key ClientTable::key_of(const IpAddr& ip) {
    // IPv4 in lo (hi 0); IPv6 by its /64 prefix, with a lo no IPv4 address has.
    if (!ip.v6) return Key{0, ip.lo};
    return Key{ip.hi, ~0ULL};
}

void ClientTable::drop_if_empty(std::unordered_map<Key, Counts, KeyHash>::iterator it) {
    const Counts& c = it->second;
    if (c.connections <= 0 && c.lookups <= 0 && c.idle.empty()) map_.erase(it);
}

bool ClientTable::try_add(const IpAddr& ip, int Counts::*count, int limit) {
    std::lock_guard lock(mu_);
    Counts& c = map_[key_of(ip)];
    if (c.*count >= limit) return false;
    ++(c.*count);
    return true;
}

void ClientTable::remove(const IpAddr& ip, int Counts::*count) {
    std::lock_guard lock(mu_);
    auto it = map_.find(key_of(ip));
    if (it == map_.end()) return;
    --(it->second.*count);
    drop_if_empty(it);
}

void ClientTable::add_connection(const IpAddr& ip) {
    std::lock_guard lock(mu_);
    ++map_[key_of(ip)].connections;
}

int ClientTable::connections(const IpAddr& ip) const {
    std::lock_guard lock(mu_);
    auto it = map_.find(key_of(ip));
    return it == map_.end() ? 0 : it->second.connections;
}

void ClientTable::mark_idle(const IpAddr& ip, const IdleConnection& conn) {
    std::lock_guard lock(mu_);
    map_[key_of(ip)].idle.push_back(conn);
}

void ClientTable::clear_idle(const IpAddr& ip, uint64_t id) {
    std::lock_guard lock(mu_);
    auto it = map_.find(key_of(ip));
    if (it == map_.end()) return;
    auto& idle = it->second.idle;
    std::erase_if(idle, [id](const IdleConnection& c) { return c.id == id; });
    drop_if_empty(it);
}

std::optional<IdleConnection> ClientTable::claim_idle(const IpAddr* ip) {
    std::lock_guard lock(mu_);
    auto oldest_in = [](std::vector<IdleConnection>& idle) {
        return std::min_element(idle.begin(), idle.end(), [](const auto& a, const auto& b) {
            return a.since_ms < b.since_ms;
        });
    };
    auto take = [&](auto it, std::vector<IdleConnection>::iterator at) {
        IdleConnection found = *at;
        it->second.idle.erase(at);
        return found;
    };
    if (ip) {
        auto it = map_.find(key_of(*ip));
        if (it == map_.end() || it->second.idle.empty()) return std::nullopt;
        return take(it, oldest_in(it->second.idle));
    }
    // At the global limit: anyone's. A scan, but only when the proxy is full.
    auto best = map_.end();
    std::vector<IdleConnection>::iterator best_at;
    for (auto it = map_.begin(); it != map_.end(); ++it) {
        if (it->second.idle.empty()) continue;
        auto at = oldest_in(it->second.idle);
        if (best == map_.end() || at->since_ms < best_at->since_ms) {
            best = it;
            best_at = at;
        }
    }
    if (best == map_.end()) return std::nullopt;
    return take(best, best_at);
}

size_t ClientTable::clients() const {
    std::lock_guard lock(mu_);
    return map_.size();
}

}  // namespace hallpass
