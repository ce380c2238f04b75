// Hosts table, TTL cache and evdns queries. A name's A and AAAA queries run together; the answer
// is delivered once both have finished. When a name's last waiter leaves, its requests are
// cancelled: evdns then calls back on a later loop turn with DNS_ERR_CANCEL, and the Pending
// lives in cancelled_ until both have.
#include "hallpass/proxy/dns.h"

#include <arpa/inet.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstring>
#include <ctime>
#include <fstream>
#include <sstream>

#include "hallpass/base/log.h"
#include "hallpass/config/config.h"

namespace hallpass {
namespace {

int64_t monotonic_s() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec;
}

std::string canonical_name(std::string name) {
    std::transform(name.begin(), name.end(), name.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (!name.empty() && name.back() == '.') name.pop_back();
    return name;
}

bool parse_ip(const std::string& text, sockaddr_storage* out) {
    std::memset(out, 0, sizeof *out);
    auto* sin = reinterpret_cast<sockaddr_in*>(out);
    if (inet_pton(AF_INET, text.c_str(), &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        return true;
    }
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(out);
    if (inet_pton(AF_INET6, text.c_str(), &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        return true;
    }
    return false;
}

// Negative answers (no such name) are cached briefly so a burst of requests for a dead name
// does not become a burst of queries; other failures (a timeout, SERVFAIL) more briefly still,
// so a name whose server does not answer costs one timeout, not one per request.
constexpr int kNegativeTtlS = 5;
constexpr int kFailureTtlS = 3;

// Queries evdns sends at once (its default, 64, is one client's worth of dead names: the rest
// would wait behind them). Per-client limits keep any one client well below this.
constexpr const char* kMaxInflight = "2048";

}  // namespace

// ---- HostsTable ------------------------------------------------------------------------------

HostsTable HostsTable::parse(const std::string& text) {
    HostsTable table;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        if (size_t hash = line.find('#'); hash != std::string::npos) line.resize(hash);
        std::istringstream fields(line);
        std::string address;
        if (!(fields >> address)) continue;
        sockaddr_storage ss;
        if (!parse_ip(address, &ss)) continue;
        std::string name;
        while (fields >> name) {
            auto& list = table.names_[canonical_name(name)];
            bool seen = std::any_of(list.begin(), list.end(), [&](const sockaddr_storage& a) {
                return std::memcmp(&a, &ss, sizeof ss) == 0;
            });
            if (!seen) list.push_back(ss);
        }
    }
    for (auto& [name, list] : table.names_) {
        std::stable_sort(list.begin(), list.end(), [](const auto& a, const auto& b) {
            return a.ss_family == AF_INET && b.ss_family != AF_INET;
        });
    }
    return table;
}

Result<HostsTable> HostsTable::load(const std::string& path) {
    std::ifstream in(path);
    if (!in) return Error{"cannot read hosts file", path};
    std::ostringstream text;
    text << in.rdbuf();
    return parse(text.str());
}

const std::vector<sockaddr_storage>* HostsTable::find(const std::string& name) const {
    auto it = names_.find(name);
    return it == names_.end() ? nullptr : &it->second;
}

// ---- DnsResolver -----------------------------------------------------------------------------

struct DnsResolver::Pending {
    // One of the name's two evdns requests; `request` is null once its callback ran.
    struct Query {
        Pending* pending = nullptr;
        evdns_request* request = nullptr;
    };
    DnsResolver* resolver = nullptr;
    std::string name;
    Query queries[2];
    bool cancelled = false;
    int outstanding = 0;
    std::vector<sockaddr_storage> v4, v6;
    int ttl_s = INT32_MAX;
    int first_error = DNS_ERR_NONE;
    bool any_nxdomain = false;
    std::vector<std::pair<uint64_t, DnsCallback>> waiters;
};

namespace {

void on_evdns_answer(int result, char type, int count, int ttl, void* addresses, void* arg) {
    auto* query = static_cast<DnsResolver::Pending::Query*>(arg);
    query->request = nullptr;  // evdns frees it after this callback
    auto* pending = query->pending;
    if (pending->cancelled) {
        if (--pending->outstanding == 0) pending->resolver->on_cancelled_done(pending);
        return;
    }
    if (result == DNS_ERR_NONE) {
        pending->ttl_s = std::min(pending->ttl_s, std::max(ttl, 0));
        for (int i = 0; i < count; ++i) {
            sockaddr_storage ss{};
            if (type == DNS_IPv4_A) {
                auto* sin = reinterpret_cast<sockaddr_in*>(&ss);
                sin->sin_family = AF_INET;
                std::memcpy(&sin->sin_addr, static_cast<char*>(addresses) + 4 * i, 4);
                pending->v4.push_back(ss);
            } else if (type == DNS_IPv6_AAAA) {
                auto* sin6 = reinterpret_cast<sockaddr_in6*>(&ss);
                sin6->sin6_family = AF_INET6;
                std::memcpy(&sin6->sin6_addr, static_cast<char*>(addresses) + 16 * i, 16);
                pending->v6.push_back(ss);
            }
        }
    } else {
        if (pending->first_error == DNS_ERR_NONE) pending->first_error = result;
        if (result == DNS_ERR_NOTEXIST) pending->any_nxdomain = true;
    }
    if (--pending->outstanding == 0) pending->resolver->on_query_done(pending);
}

}  // namespace

Result<std::unique_ptr<DnsResolver>> DnsResolver::create(event_base* base, const ServerConfig& cfg,
                                                         std::shared_ptr<const HostsTable> hosts) {
    std::unique_ptr<DnsResolver> r(new DnsResolver());
    r->base_ = base;
    r->hosts_ = std::move(hosts);
    r->max_ttl_s_ = cfg.dns_cache_max_ttl_s;
    r->max_entries_ = cfg.dns_cache_entries;
    r->evdns_ = evdns_base_new(base, EVDNS_BASE_DISABLE_WHEN_INACTIVE);
    if (!r->evdns_) return Error{"cannot create the dns resolver"};
    if (cfg.nameservers.empty()) {
        // Nameservers and options only: search domains would turn one name into several
        // queries, and the hosts file is ours to read.
        int rc =
            evdns_base_resolv_conf_parse(r->evdns_, DNS_OPTION_NAMESERVERS, "/etc/resolv.conf");
        if (rc != 0 || evdns_base_count_nameservers(r->evdns_) == 0) {
            LOG_WARN("no nameserver in /etc/resolv.conf: names not in %s will not resolve",
                     cfg.hosts_file.empty() ? "the hosts file" : cfg.hosts_file.c_str());
        }
    } else {
        for (const std::string& ns : cfg.nameservers) {
            if (evdns_base_nameserver_ip_add(r->evdns_, ns.c_str()) != 0) {
                return Error{"cannot use nameserver \"" + ns + "\""};
            }
        }
    }
    // evdns retries within the overall budget: two attempts of half the timeout each.
    std::string per_try = std::to_string(std::max(cfg.dns_timeout_ms / 2, 5) / 1000.0);
    evdns_base_set_option(r->evdns_, "timeout:", per_try.c_str());
    evdns_base_set_option(r->evdns_, "attempts:", "2");
    evdns_base_set_option(r->evdns_, "randomize-case:", "0");
    evdns_base_set_option(r->evdns_, "max-inflight:", kMaxInflight);
    return r;
}

DnsResolver::~DnsResolver() {
    tickets_.clear();
    for (auto& [name, pending] : pending_) {
        pending->waiters.clear();
        pending->cancelled = true;  // their last callbacks must not deliver or cache
    }
    // Fails the in-flight requests (their callbacks still see live Pending objects), then frees.
    if (evdns_) evdns_base_free(evdns_, 1);
}

std::optional<DnsAnswer> DnsResolver::known(const std::string& host) {
    if (hosts_) {
        if (const auto* addrs = hosts_->find(host)) {
            ++stats_.hosts_hits;
            return DnsAnswer{*addrs, {}};
        }
    }
    if (auto it = cache_.find(host); it != cache_.end()) {
        if (it->second.expires_s > monotonic_s()) {
            ++stats_.cache_hits;
            return it->second.answer;
        }
        cache_.erase(it);
    }
    return std::nullopt;
}

std::optional<DnsAnswer> DnsResolver::resolve(const std::string& host, DnsCallback cb,
                                              uint64_t* ticket) {
    auto [it, inserted] = pending_.try_emplace(host);
    Pending* pending;
    if (inserted) {
        it->second = std::make_unique<Pending>();
        pending = it->second.get();
        pending->resolver = this;
        pending->name = host;
        pending->outstanding = 2;
        ++stats_.queries;
        // Each call may fail to start (returns NULL, no callback): count that as an answer.
        for (int i = 0; i < 2; ++i) {
            Pending::Query& q = pending->queries[i];
            q.pending = pending;
            q.request = i == 0 ? evdns_base_resolve_ipv4(evdns_, host.c_str(), DNS_QUERY_NO_SEARCH,
                                                         on_evdns_answer, &q)
                               : evdns_base_resolve_ipv6(evdns_, host.c_str(), DNS_QUERY_NO_SEARCH,
                                                         on_evdns_answer, &q);
            if (!q.request) {
                if (pending->first_error == DNS_ERR_NONE) pending->first_error = DNS_ERR_UNKNOWN;
                --pending->outstanding;
            }
        }
        if (pending->outstanding == 0) {
            // Nothing started: answer at once rather than through a callback.
            DnsAnswer answer{{}, "dns lookup failed for " + host + " (no nameserver)"};
            pending_.erase(host);
            return answer;
        }
    } else {
        pending = it->second.get();
    }
    uint64_t id = next_ticket_++;
    pending->waiters.emplace_back(id, std::move(cb));
    tickets_[id] = pending;
    *ticket = id;
    return std::nullopt;
}

void DnsResolver::cancel(uint64_t ticket) {
    auto it = tickets_.find(ticket);
    if (it == tickets_.end()) return;
    Pending* pending = it->second;
    auto& waiters = pending->waiters;
    waiters.erase(std::remove_if(waiters.begin(), waiters.end(),
                                 [&](const auto& w) { return w.first == ticket; }),
                  waiters.end());
    tickets_.erase(it);
    if (!waiters.empty()) return;
    // Nobody waits for this name any more: stop asking. Its slot in evdns's in-flight window
    // goes to names someone is waiting for.
    auto node = pending_.extract(pending->name);
    if (node.empty()) return;
    pending->cancelled = true;
    cancelled_.emplace(pending, std::move(node.mapped()));
    for (Pending::Query& q : pending->queries) {
        if (q.request) evdns_cancel_request(evdns_, q.request);
    }
}

void DnsResolver::on_cancelled_done(Pending* pending) { cancelled_.erase(pending); }

void DnsResolver::on_query_done(Pending* pending) {
    DnsAnswer answer;
    answer.addresses = std::move(pending->v4);
    answer.addresses.insert(answer.addresses.end(), pending->v6.begin(), pending->v6.end());
    if (answer.addresses.empty()) {
        const char* why =
            pending->any_nxdomain ? "no such host" : evdns_err_to_string(pending->first_error);
        answer.error = "dns lookup failed for " + pending->name + " (" + why + ")";
        store(pending->name, answer, pending->any_nxdomain ? kNegativeTtlS : kFailureTtlS);
    } else {
        store(pending->name, answer, std::min(pending->ttl_s, max_ttl_s_));
    }
    // Take the node out first: a waiter's callback may start a new query for the same name.
    auto node = pending_.extract(pending->name);
    auto waiters = std::move(pending->waiters);
    for (auto& [id, cb] : waiters) tickets_.erase(id);
    for (auto& [id, cb] : waiters) cb(answer);
}

void DnsResolver::store(const std::string& host, const DnsAnswer& answer, int ttl_s) {
    if (ttl_s <= 0 || max_entries_ == 0) return;
    const int64_t now = monotonic_s();
    // Expired entries go at most once a second (a scan of at most dns_cache_entries), so the
    // cache holds the names in use, not every name of the last minutes up to its cap: a stream
    // of one-off names (failed lookups cached for seconds) would otherwise fill it for good.
    if (now != last_sweep_s_) {
        last_sweep_s_ = now;
        std::erase_if(cache_, [now](const auto& kv) { return kv.second.expires_s <= now; });
    }
    if (cache_.size() >= max_entries_) cache_.erase(cache_.begin());  // full of live names
    cache_[host] = CacheEntry{answer, now + ttl_s};
}

}  // namespace hallpass
