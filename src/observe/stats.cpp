// Per-worker counters and their sum. Each worker writes only its own cache-line aligned slot: the
// atomics with relaxed load + store (it is their only writer, so no locked read-modify-write is
// needed), the sketches and tables as plain data that it copies into an immutable Published
// object on its 1 s timer. The admin thread reads the atomics with relaxed loads and the
// Published objects under a per-slot mutex held only for a shared_ptr copy.
#include "hallpass/observe/stats.h"

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <map>

#include "hallpass/base/json_text.h"

namespace hallpass {
namespace {

constexpr auto kRelaxed = std::memory_order_relaxed;

// Single-writer increment: a plain load and store, never a locked instruction.
inline void bump(std::atomic<uint64_t>& counter, uint64_t n = 1) {
    counter.store(counter.load(kRelaxed) + n, kRelaxed);
}

size_t latency_bucket(int64_t elapsed_ms) {
    for (size_t i = 0; i < kLatencyBoundsMs.size(); ++i) {
        if (elapsed_ms <= kLatencyBoundsMs[i]) return i;  // Prometheus `le` is inclusive
    }
    return kLatencyBoundsMs.size();
}

size_t status_class(int status) {
    if (status < 100 || status > 599) return 0;
    return static_cast<size_t>(status / 100);
}

bool by_count_then_key(const SpaceSaving::Entry& a, const SpaceSaving::Entry& b) {
    if (a.count != b.count) return a.count > b.count;
    return a.key < b.key;
}

std::vector<std::pair<std::string, uint64_t>> sorted_counts(
    const std::unordered_map<std::string, uint64_t>& counts) {
    std::vector<std::pair<std::string, uint64_t>> out(counts.begin(), counts.end());
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
        if (a.second != b.second) return a.second > b.second;
        return a.first < b.first;
    });
    return out;
}

std::vector<TopEntry> to_top(const std::vector<SpaceSaving::Entry>& entries) {
    std::vector<TopEntry> out;
    out.reserve(entries.size());
    for (const auto& e : entries) out.push_back(TopEntry{e.key, e.count, e.error});
    return out;
}

}  // namespace

int64_t unix_now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

const char* error_kind(const Transaction& txn) {
    if (txn.error.empty()) return nullptr;
    // Named by status rather than by the free-text reason, which may hold host names: a label
    // must have few values.
    switch (txn.status) {
        case 0:
            return "no_response";
        case 400:
            return "bad_request";
        case 403:
            return "forbidden";
        case 408:
            return "request_timeout";
        case 411:
            return "length_required";
        case 413:
            return "body_too_large";
        case 414:
            return "uri_too_long";
        case 431:
            return "head_too_large";
        case 501:
            return "not_implemented";
        case 502:
            return "bad_gateway";
        case 503:
            return "unavailable";
        case 504:
            return "gateway_timeout";
        case 505:
            return "version_not_supported";
        default:
            break;
    }
    if (txn.status < 400) return "cut_short";  // a response or tunnel had begun
    return txn.status < 500 ? "other_4xx" : "other_5xx";
}

const char* status_class_name(size_t index) {
    static const char* const kNames[] = {"none", "1xx", "2xx", "3xx", "4xx", "5xx"};
    return index < 6 ? kNames[index] : "?";
}

// ---------------------------------------------------------------------------------------------
// SpaceSaving

SpaceSaving::SpaceSaving(size_t capacity) : capacity_(capacity == 0 ? 1 : capacity) {
    heap_.reserve(capacity_);
    index_.reserve(capacity_);
}

void SpaceSaving::swap_entries(size_t a, size_t b) {
    std::swap(heap_[a], heap_[b]);
    index_[heap_[a].key] = a;
    index_[heap_[b].key] = b;
}

void SpaceSaving::sift_down(size_t i) {
    for (;;) {
        size_t smallest = i;
        size_t left = 2 * i + 1;
        size_t right = left + 1;
        if (left < heap_.size() && heap_[left].count < heap_[smallest].count) smallest = left;
        if (right < heap_.size() && heap_[right].count < heap_[smallest].count) smallest = right;
        if (smallest == i) return;
        swap_entries(i, smallest);
        i = smallest;
    }
}

void SpaceSaving::add(std::string_view key, uint64_t n) {
    std::string k(key);
    if (auto it = index_.find(k); it != index_.end()) {
        heap_[it->second].count += n;  // a larger count can only move down a min-heap
        sift_down(it->second);
        return;
    }
    if (heap_.size() < capacity_) {
        // A new entry with count n >= 1; sift up from the end to keep the heap.
        heap_.push_back(Entry{k, n, 0});
        size_t i = heap_.size() - 1;
        index_[k] = i;
        while (i > 0) {
            size_t parent = (i - 1) / 2;
            if (heap_[parent].count <= heap_[i].count) break;
            swap_entries(i, parent);
            i = parent;
        }
        return;
    }
    // Full: the new key takes over the smallest counter, inheriting its count as error.
    Entry& min = heap_[0];
    index_.erase(min.key);
    min.error = min.count;
    min.count += n;
    min.key = std::move(k);
    index_[min.key] = 0;
    sift_down(0);
}

std::vector<SpaceSaving::Entry> SpaceSaving::top(size_t n) const {
    std::vector<Entry> out = heap_;
    std::sort(out.begin(), out.end(), by_count_then_key);
    if (out.size() > n) out.resize(n);
    return out;
}

std::vector<SpaceSaving::Entry> merge_top(const std::vector<const SpaceSaving*>& sketches,
                                          size_t n) {
    std::unordered_map<std::string, SpaceSaving::Entry> sum;
    for (const SpaceSaving* sketch : sketches) {
        for (const auto& e : sketch->entries()) {
            auto& s = sum[e.key];
            s.key = e.key;
            s.count += e.count;
            s.error += e.error;
        }
    }
    std::vector<SpaceSaving::Entry> out;
    out.reserve(sum.size());
    for (auto& [key, e] : sum) out.push_back(std::move(e));
    std::sort(out.begin(), out.end(), by_count_then_key);
    if (out.size() > n) out.resize(n);
    return out;
}

// ---------------------------------------------------------------------------------------------
// MinuteRing, NamedCounters

MinuteRing::MinuteRing() : slots_(kMinutes) {}

void MinuteRing::add(int64_t minute, bool blocked) {
    if (minute < 0) return;
    MinutePoint& slot = slots_[static_cast<size_t>(minute) % kMinutes];
    if (slot.minute != minute) slot = MinutePoint{minute, 0, 0};
    ++slot.requests;
    if (blocked) ++slot.blocked;
}

std::vector<MinutePoint> MinuteRing::points(int64_t now_minute) const {
    std::vector<MinutePoint> out;
    for (const MinutePoint& p : slots_) {
        if (p.requests > 0 && p.minute <= now_minute &&
            p.minute > now_minute - static_cast<int64_t>(kMinutes))
            out.push_back(p);
    }
    std::sort(out.begin(), out.end(),
              [](const MinutePoint& a, const MinutePoint& b) { return a.minute < b.minute; });
    return out;
}

std::vector<MinutePoint> merge_minutes(const std::vector<std::vector<MinutePoint>>& series,
                                       int64_t now_minute) {
    std::map<int64_t, MinutePoint> by_minute;
    for (const auto& points : series) {
        for (const MinutePoint& p : points) {
            if (p.minute > now_minute || p.minute <= now_minute - static_cast<int64_t>(kMinutes))
                continue;
            MinutePoint& m = by_minute[p.minute];
            m.minute = p.minute;
            m.requests += p.requests;
            m.blocked += p.blocked;
        }
    }
    std::vector<MinutePoint> out;
    out.reserve(by_minute.size());
    for (const auto& [minute, p] : by_minute) out.push_back(p);
    return out;
}

void NamedCounters::add(const std::string& name, uint64_t n) {
    if (auto it = counts_.find(name); it != counts_.end()) {
        it->second += n;
    } else if (counts_.size() < kNamedCounterCap) {
        counts_.emplace(name, n);
    } else {
        counts_["(other)"] += n;  // may exceed the cap by this one entry
    }
}

// ---------------------------------------------------------------------------------------------
// Stats

namespace {

// What a worker publishes: immutable once made.
struct Published {
    SpaceSaving hosts;
    SpaceSaving blocked_hosts;
    SpaceSaving clients;
    MinuteRing minutes;
    NamedCounters rules;
    NamedCounters errors;
    NamedCounters safe_search;
};

}  // namespace

struct alignas(64) Stats::Slot {
    // Written by the worker (relaxed load + store), read by anyone.
    std::array<std::atomic<uint64_t>, 4> requests{};
    std::array<std::atomic<uint64_t>, 6> status_classes{};
    std::atomic<uint64_t> bytes_in{0};
    std::atomic<uint64_t> bytes_out{0};
    std::atomic<uint64_t> refused_not_allowed{0};
    std::atomic<uint64_t> refused_overloaded{0};
    std::atomic<uint64_t> dns_hits{0};
    std::atomic<uint64_t> dns_misses{0};
    std::array<std::atomic<uint64_t>, kLatencyBuckets> latency{};
    std::atomic<uint64_t> latency_sum_ms{0};
    std::atomic<int64_t> upstream_connections{0};
    std::atomic<int64_t> tunnels{0};

    // The worker's own; copied into `published` by publish().
    Published live;
    bool dirty = false;

    mutable std::mutex mutex;  // guards `published` (the pointer, not the object)
    std::shared_ptr<const Published> published = std::make_shared<const Published>();
};

Stats::Stats(Options options) : options_(std::move(options)), start_unix_ms_(unix_now_ms()) {
    int n = std::max(1, options_.workers);
    for (int i = 0; i < n; ++i) slots_.push_back(std::make_unique<Slot>());
}

Stats::~Stats() = default;

void Stats::record(int worker, const Transaction& txn) {
    Slot& s = *slots_.at(static_cast<size_t>(worker));
    const bool blocked = txn.kind == Transaction::Kind::Blocked;
    bump(s.requests[static_cast<size_t>(txn.kind)]);
    bump(s.status_classes[status_class(txn.status)]);
    bump(s.bytes_in, txn.bytes_from_client);
    bump(s.bytes_out, txn.bytes_to_client);
    if (txn.dns_ms >= 0) bump(txn.dns_cached ? s.dns_hits : s.dns_misses);
    const int64_t elapsed_ms = std::max<int64_t>(0, txn.elapsed_ms);
    bump(s.latency[latency_bucket(elapsed_ms)]);
    bump(s.latency_sum_ms, static_cast<uint64_t>(elapsed_ms));

    Published& live = s.live;
    if (!txn.host.empty()) {
        live.hosts.add(txn.host);
        if (blocked) live.blocked_hosts.add(txn.host);
    }
    live.clients.add(txn.client.to_string());
    live.minutes.add((txn.start_unix_ms + elapsed_ms) / 60'000, blocked);
    if (!txn.rule.empty()) live.rules.add(txn.rule);
    if (const char* kind = error_kind(txn)) live.errors.add(kind);
    if (!txn.safe_search.empty()) live.safe_search.add(txn.safe_search);
    if (blocked) recent_.add(txn);
    s.dirty = true;
}

void RecentBlocks::add(const Transaction& txn) {
    RecentBlock b;
    b.unix_ms = txn.start_unix_ms;
    b.client = txn.client;
    b.host = txn.host.substr(0, kMaxField);
    b.rule = txn.rule.substr(0, kMaxField);
    b.message = txn.message.substr(0, kMaxField);
    std::lock_guard<std::mutex> lock(mutex_);
    if (ring_.size() < kCapacity) {
        ring_.push_back(std::move(b));
        return;
    }
    ring_[next_] = std::move(b);
    next_ = (next_ + 1) % kCapacity;
}

std::vector<RecentBlock> RecentBlocks::newest(size_t n, const IpAddr* client) const {
    std::vector<RecentBlock> out;
    std::lock_guard<std::mutex> lock(mutex_);
    const size_t size = ring_.size();
    // The newest is just before next_ once the ring is full, else at the end.
    for (size_t k = 0; k < size && out.size() < n; ++k) {
        const size_t i = (next_ + size - 1 - k) % size;
        const RecentBlock& b = ring_[i];
        if (client && !(b.client == *client)) continue;
        out.push_back(b);
    }
    return out;
}

void Stats::publish(int worker) {
    Slot& s = *slots_.at(static_cast<size_t>(worker));
    if (!s.dirty) return;
    s.dirty = false;
    std::shared_ptr<const Published> copy = std::make_shared<const Published>(s.live);
    std::lock_guard<std::mutex> lock(s.mutex);
    s.published.swap(copy);  // `copy` now holds the old one: freed after the lock is released
}

void Stats::set_connection_gauges(int worker, int64_t upstream_connections, int64_t tunnels) {
    Slot& s = *slots_.at(static_cast<size_t>(worker));
    s.upstream_connections.store(upstream_connections, kRelaxed);
    s.tunnels.store(tunnels, kRelaxed);
}

void Stats::count_refused(int worker, int status) {
    Slot& s = *slots_.at(static_cast<size_t>(worker));
    bump(status == 403 ? s.refused_not_allowed : s.refused_overloaded);
}

void Stats::note_reload(bool ok, const std::string& message) {
    (ok ? reloads_ok_ : reloads_failed_).fetch_add(1, kRelaxed);
    std::lock_guard<std::mutex> lock(reload_mutex_);
    last_reload_unix_ms_ = unix_now_ms();
    last_reload_ok_ = ok;
    last_reload_message_ = message;
}

StatsSnapshot Stats::snapshot() const {
    StatsSnapshot out;
    out.version = options_.version;
    out.rules_file = options_.rules_file;
    out.workers = workers();
    out.now_unix_ms = unix_now_ms();
    out.start_unix_ms = start_unix_ms_;
    out.uptime_s = static_cast<double>(out.now_unix_ms - start_unix_ms_) / 1000.0;

    uint64_t latency_sum_ms = 0;
    std::vector<std::shared_ptr<const Published>> published;
    for (const auto& slot : slots_) {
        const Slot& s = *slot;
        for (size_t i = 0; i < out.requests.size(); ++i)
            out.requests[i] += s.requests[i].load(kRelaxed);
        for (size_t i = 0; i < out.status_classes.size(); ++i)
            out.status_classes[i] += s.status_classes[i].load(kRelaxed);
        out.bytes_in += s.bytes_in.load(kRelaxed);
        out.bytes_out += s.bytes_out.load(kRelaxed);
        out.refused_not_allowed += s.refused_not_allowed.load(kRelaxed);
        out.refused_overloaded += s.refused_overloaded.load(kRelaxed);
        out.dns_cache_hits += s.dns_hits.load(kRelaxed);
        out.dns_cache_misses += s.dns_misses.load(kRelaxed);
        for (size_t i = 0; i < kLatencyBuckets; ++i)
            out.latency_buckets[i] += s.latency[i].load(kRelaxed);
        latency_sum_ms += s.latency_sum_ms.load(kRelaxed);
        out.upstream_connections += s.upstream_connections.load(kRelaxed);
        out.tunnels += s.tunnels.load(kRelaxed);
        std::lock_guard<std::mutex> lock(s.mutex);
        published.push_back(s.published);
    }
    for (uint64_t n : out.requests) out.requests_total += n;
    out.blocked = out.requests[static_cast<size_t>(Transaction::Kind::Blocked)];
    for (uint64_t n : out.latency_buckets) out.latency_count += n;
    out.latency_sum_s = static_cast<double>(latency_sum_ms) / 1000.0;
    if (options_.client_connections)
        out.client_connections = options_.client_connections->load(kRelaxed);

    out.reloads_ok = reloads_ok_.load(kRelaxed);
    out.reloads_failed = reloads_failed_.load(kRelaxed);
    {
        std::lock_guard<std::mutex> lock(reload_mutex_);
        out.last_reload_unix_ms = last_reload_unix_ms_;
        out.last_reload_ok = last_reload_ok_;
        out.last_reload_message = last_reload_message_;
    }
    if (lists_source_) {
        out.lists = lists_source_();
    }

    std::vector<const SpaceSaving*> hosts, blocked_hosts, clients;
    std::vector<std::vector<MinutePoint>> minutes;
    std::unordered_map<std::string, uint64_t> rules, errors, safe_search;
    const int64_t now_minute = out.now_unix_ms / 60'000;
    for (const auto& p : published) {
        hosts.push_back(&p->hosts);
        blocked_hosts.push_back(&p->blocked_hosts);
        clients.push_back(&p->clients);
        minutes.push_back(p->minutes.points(now_minute));
        for (const auto& [name, n] : p->rules.counts()) rules[name] += n;
        for (const auto& [name, n] : p->errors.counts()) errors[name] += n;
        for (const auto& [name, n] : p->safe_search.counts()) safe_search[name] += n;
    }
    out.top_hosts = to_top(merge_top(hosts, options_.top_n));
    out.top_blocked_hosts = to_top(merge_top(blocked_hosts, options_.top_n));
    out.top_clients = to_top(merge_top(clients, options_.top_n));
    out.minutes = merge_minutes(minutes, now_minute);
    out.rule_hits = sorted_counts(rules);
    out.errors = sorted_counts(errors);
    out.safe_search = sorted_counts(safe_search);
    out.recent_blocks = recent_.newest(100);
    for (RecentBlock& b : out.recent_blocks) b.group = groups_of(b.client);
    for (const TopEntry& c : out.top_clients) {
        auto ip = IpAddr::parse(c.key);
        out.top_client_groups.push_back(ip ? groups_of(*ip) : std::string());
    }
    return out;
}

// ---------------------------------------------------------------------------------------------
// Rendering

std::string escape_label_value(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (char c : text) {
        if (c == '\\') {
            out += "\\\\";
        } else if (c == '"') {
            out += "\\\"";
        } else if (c == '\n') {
            out += "\\n";
        } else {
            out += c;
        }
    }
    return out;
}

std::string escape_json(std::string_view text) {
    std::string quoted;
    append_json_string(quoted, text);
    return quoted.substr(1, quoted.size() - 2);
}

namespace {

// Shortest round-trip text for a sample value; integers without a fraction.
std::string number(double v) {
    char buf[64];
    if (v == static_cast<double>(static_cast<int64_t>(v)) && v < 9.0e15 && v > -9.0e15) {
        std::snprintf(buf, sizeof buf, "%" PRId64, static_cast<int64_t>(v));
    } else {
        for (int precision = 15; precision <= 17; ++precision) {  // shortest that round-trips
            std::snprintf(buf, sizeof buf, "%.*g", precision, v);
            if (std::strtod(buf, nullptr) == v) break;
        }
    }
    return buf;
}
std::string number(uint64_t v) { return std::to_string(v); }
std::string number(int64_t v) { return std::to_string(v); }

class Exposition {
  public:
    // Starts a metric family: HELP and TYPE lines.
    void family(std::string_view name, std::string_view type, std::string_view help) {
        out_ += "# HELP ";
        out_ += name;
        out_ += ' ';
        out_ += help;  // ours: no backslash or newline to escape
        out_ += "\n# TYPE ";
        out_ += name;
        out_ += ' ';
        out_ += type;
        out_ += '\n';
    }
    void sample(std::string_view name, const std::string& value) { line(name, "", value); }
    void sample(std::string_view name, std::string_view label, std::string_view label_value,
                const std::string& value) {
        line(name, std::string(label) + "=\"" + escape_label_value(label_value) + "\"", value);
    }
    std::string take() { return std::move(out_); }

  private:
    void line(std::string_view name, const std::string& labels, const std::string& value) {
        out_ += name;
        if (!labels.empty()) out_ += "{" + labels + "}";
        out_ += ' ';
        out_ += value;
        out_ += '\n';
    }
    std::string out_;
};

}  // namespace

std::string render_prometheus(const StatsSnapshot& s) {
    Exposition m;
    m.family("hallpass_build_info", "gauge", "Build information; the value is always 1.");
    m.sample("hallpass_build_info", "version", s.version, "1");
    m.family("hallpass_uptime_seconds", "gauge", "Seconds since hallpass started.");
    m.sample("hallpass_uptime_seconds", number(s.uptime_s));

    m.family("hallpass_requests_total", "counter",
             "Requests finished, by kind (relayed, tunnel, blocked, local).");
    for (auto kind : {Transaction::Kind::Relayed, Transaction::Kind::Tunnel,
                      Transaction::Kind::Blocked, Transaction::Kind::Local}) {
        m.sample("hallpass_requests_total", "kind", kind_name(kind),
                 number(s.requests[static_cast<size_t>(kind)]));
    }
    m.family("hallpass_blocked_total", "counter", "Requests refused by the rules.");
    m.sample("hallpass_blocked_total", number(s.blocked));
    m.family("hallpass_responses_total", "counter",
             "Responses sent to clients, by status class (none: the client left first).");
    for (size_t i = 0; i < s.status_classes.size(); ++i)
        m.sample("hallpass_responses_total", "code", status_class_name(i),
                 number(s.status_classes[i]));
    m.family("hallpass_errors_total", "counter",
             "Requests that did not complete cleanly, by reason.");
    for (const auto& [kind, n] : s.errors)
        m.sample("hallpass_errors_total", "kind", kind, number(n));
    m.family("hallpass_bytes_total", "counter",
             "Bytes from clients (in) and to clients (out), heads and bodies and tunnel bytes.");
    m.sample("hallpass_bytes_total", "direction", "in", number(s.bytes_in));
    m.sample("hallpass_bytes_total", "direction", "out", number(s.bytes_out));

    m.family("hallpass_refused_connections_total", "counter",
             "Connections refused at accept, before any request: client_not_allowed (403, "
             "allowed_clients), overloaded (503, connection limits or shutting down).");
    m.sample("hallpass_refused_connections_total", "reason", "client_not_allowed",
             number(s.refused_not_allowed));
    m.sample("hallpass_refused_connections_total", "reason", "overloaded",
             number(s.refused_overloaded));
    m.family("hallpass_client_connections", "gauge", "Open client connections.");
    m.sample("hallpass_client_connections", number(s.client_connections));
    m.family("hallpass_upstream_connections", "gauge",
             "Open upstream connections (in use or idle in the pool).");
    m.sample("hallpass_upstream_connections", number(s.upstream_connections));
    m.family("hallpass_tunnels", "gauge", "CONNECT tunnels open now.");
    m.sample("hallpass_tunnels", number(s.tunnels));

    m.family("hallpass_dns_cache_hits_total", "counter",
             "Lookups answered from the DNS cache or the hosts file.");
    m.sample("hallpass_dns_cache_hits_total", number(s.dns_cache_hits));
    m.family("hallpass_dns_cache_misses_total", "counter", "Lookups that waited for a nameserver.");
    m.sample("hallpass_dns_cache_misses_total", number(s.dns_cache_misses));

    m.family("hallpass_reloads_total", "counter", "Rules reloads, by result.");
    m.sample("hallpass_reloads_total", "result", "ok", number(s.reloads_ok));
    m.sample("hallpass_reloads_total", "result", "failed", number(s.reloads_failed));
    m.family("hallpass_last_reload_timestamp_seconds", "gauge",
             "Unix time of the last reload (0: none yet).");
    m.sample("hallpass_last_reload_timestamp_seconds",
             number(static_cast<double>(s.last_reload_unix_ms) / 1000.0));
    m.family("hallpass_last_reload_success", "gauge",
             "1 when the last reload succeeded (or none happened), 0 when it failed.");
    m.sample("hallpass_last_reload_success",
             s.last_reload_unix_ms == 0 || s.last_reload_ok ? "1" : "0");

    m.family("hallpass_list_entries", "gauge", "Names each list of the rules in force holds.");
    for (const auto& l : s.lists)
        m.sample("hallpass_list_entries", "list", l.name, number(l.entries));
    m.family("hallpass_list_copy_age_seconds", "gauge",
             "Lists by URL: age of the kept copy (absent: no copy yet).");
    for (const auto& l : s.lists) {
        if (!l.url.empty() && l.copy_age_s >= 0)
            m.sample("hallpass_list_copy_age_seconds", "list", l.name, number(l.copy_age_s));
    }
    m.family("hallpass_list_last_fetch_success", "gauge",
             "Lists by URL: 1 when the last fetch was updated or not modified, 0 when refused or "
             "failed (absent: none yet).");
    for (const auto& l : s.lists) {
        if (!l.last_fetch.empty()) {
            const bool ok = l.last_fetch == "updated" || l.last_fetch == "not modified";
            m.sample("hallpass_list_last_fetch_success", "list", l.name, ok ? "1" : "0");
        }
    }

    m.family("hallpass_safe_search_total", "counter",
             "Requests and tunnels re-targeted to a search provider's safe-search addresses, by "
             "enforcement name.");
    for (const auto& [name, n] : s.safe_search)
        m.sample("hallpass_safe_search_total", "target", name, number(n));
    m.family("hallpass_rule_hits_total", "counter",
             "Requests decided, by rule (\"default\": no rule matched).");
    for (const auto& [rule, n] : s.rule_hits)
        m.sample("hallpass_rule_hits_total", "rule", rule, number(n));

    m.family("hallpass_request_duration_seconds", "histogram",
             "From the complete request head to the end of the response or tunnel.");
    uint64_t cumulative = 0;
    for (size_t i = 0; i < kLatencyBuckets; ++i) {
        cumulative += s.latency_buckets[i];
        std::string le = i < kLatencyBoundsMs.size()
                             ? number(static_cast<double>(kLatencyBoundsMs[i]) / 1000.0)
                             : "+Inf";
        m.sample("hallpass_request_duration_seconds_bucket", "le", le, number(cumulative));
    }
    m.sample("hallpass_request_duration_seconds_sum", number(s.latency_sum_s));
    m.sample("hallpass_request_duration_seconds_count", number(s.latency_count));
    return m.take();
}

namespace {

void json_key(std::string& out, std::string_view key) {
    out += '"';
    out += key;
    out += "\":";
}

void json_string(std::string& out, std::string_view text) { append_json_string(out, text); }

void json_top(std::string& out, std::string_view key, const std::vector<TopEntry>& list) {
    json_key(out, key);
    out += '[';
    for (size_t i = 0; i < list.size(); ++i) {
        if (i) out += ',';
        out += "{\"key\":";
        json_string(out, list[i].key);
        out += ",\"count\":" + number(list[i].count) + ",\"error\":" + number(list[i].error) + "}";
    }
    out += ']';
}

void json_counts(std::string& out, std::string_view key,
                 const std::vector<std::pair<std::string, uint64_t>>& list) {
    json_key(out, key);
    out += '[';
    for (size_t i = 0; i < list.size(); ++i) {
        if (i) out += ',';
        out += "{\"name\":";
        json_string(out, list[i].first);
        out += ",\"count\":" + number(list[i].second) + "}";
    }
    out += ']';
}

}  // namespace

std::string render_stats_json(const StatsSnapshot& s) {
    std::string out = "{";
    json_key(out, "version");
    json_string(out, s.version);
    out += ",";
    json_key(out, "rules_file");
    json_string(out, s.rules_file);
    out += ",\"workers\":" + number(static_cast<int64_t>(s.workers));
    out += ",\"now_unix_ms\":" + number(s.now_unix_ms);
    out += ",\"start_unix_ms\":" + number(s.start_unix_ms);
    out += ",\"uptime_s\":" + number(s.uptime_s);

    out += ",\"requests\":{\"total\":" + number(s.requests_total);
    for (auto kind : {Transaction::Kind::Relayed, Transaction::Kind::Tunnel,
                      Transaction::Kind::Blocked, Transaction::Kind::Local}) {
        out += ",\"" + std::string(kind_name(kind)) +
               "\":" + number(s.requests[static_cast<size_t>(kind)]);
    }
    out += "},\"blocked\":" + number(s.blocked);
    out += ",\"responses\":{";
    for (size_t i = 0; i < s.status_classes.size(); ++i) {
        if (i) out += ',';
        out += "\"" + std::string(status_class_name(i)) + "\":" + number(s.status_classes[i]);
    }
    out += "},";
    json_counts(out, "errors", s.errors);
    out += ",\"bytes\":{\"in\":" + number(s.bytes_in) + ",\"out\":" + number(s.bytes_out) + "}";
    out += ",\"connections\":{\"clients\":" + number(s.client_connections) +
           ",\"upstreams\":" + number(s.upstream_connections) +
           ",\"tunnels\":" + number(s.tunnels) + "}";
    out += ",\"refused_connections\":{\"client_not_allowed\":" + number(s.refused_not_allowed) +
           ",\"overloaded\":" + number(s.refused_overloaded) + "}";
    out += ",\"dns_cache\":{\"hits\":" + number(s.dns_cache_hits) +
           ",\"misses\":" + number(s.dns_cache_misses) + "}";
    out += ",\"reloads\":{\"ok\":" + number(s.reloads_ok) +
           ",\"failed\":" + number(s.reloads_failed) +
           ",\"last_unix_ms\":" + number(s.last_reload_unix_ms) +
           ",\"last_ok\":" + (s.last_reload_ok ? "true" : "false") + ",\"last_message\":";
    json_string(out, s.last_reload_message);
    out += "},\"lists\":[";
    for (size_t i = 0; i < s.lists.size(); ++i) {
        const auto& l = s.lists[i];
        if (i) out += ',';
        out += "{\"name\":";
        json_string(out, l.name);
        out += ",\"url\":";
        json_string(out, l.url);
        out += ",\"entries\":" + number(l.entries) + ",\"copy_age_s\":" + number(l.copy_age_s) +
               ",\"last_fetch\":";
        json_string(out, l.last_fetch);
        out += ",\"last_fetch_message\":";
        json_string(out, l.last_fetch_message);
        out += ",\"last_fetch_unix\":" + number(l.last_fetch_unix) + "}";
    }
    out += "],\"latency\":{\"bounds_ms\":[";
    for (size_t i = 0; i < kLatencyBoundsMs.size(); ++i) {
        if (i) out += ',';
        out += number(kLatencyBoundsMs[i]);
    }
    out += "],\"buckets\":[";
    for (size_t i = 0; i < kLatencyBuckets; ++i) {
        if (i) out += ',';
        out += number(s.latency_buckets[i]);
    }
    out +=
        "],\"sum_s\":" + number(s.latency_sum_s) + ",\"count\":" + number(s.latency_count) + "},";
    json_counts(out, "rule_hits", s.rule_hits);
    out += ',';
    json_top(out, "top_hosts", s.top_hosts);
    out += ',';
    json_top(out, "top_blocked_hosts", s.top_blocked_hosts);
    out += ',';
    json_top(out, "top_clients", s.top_clients);
    out += ",\"client_groups\":{";
    for (size_t i = 0; i < s.top_clients.size() && i < s.top_client_groups.size(); ++i) {
        if (i) out += ',';
        json_string(out, s.top_clients[i].key);
        out += ':';
        json_string(out, s.top_client_groups[i]);
    }
    out += "},";
    json_counts(out, "safe_search", s.safe_search);
    out += ",\"recent_blocks\":[";
    for (size_t i = 0; i < s.recent_blocks.size(); ++i) {
        const RecentBlock& b = s.recent_blocks[i];
        if (i) out += ',';
        out += "{\"unix_ms\":" + number(b.unix_ms) + ",\"client\":";
        json_string(out, b.client.to_string());
        out += ",\"group\":";
        json_string(out, b.group);
        out += ",\"host\":";
        json_string(out, b.host);
        out += ",\"rule\":";
        json_string(out, b.rule);
        out += ",\"message\":";
        json_string(out, b.message);
        out += '}';
    }
    out += "],\"minutes\":[";
    for (size_t i = 0; i < s.minutes.size(); ++i) {
        if (i) out += ',';
        out += "[" + number(s.minutes[i].minute) + "," + number(s.minutes[i].requests) + "," +
               number(s.minutes[i].blocked) + "]";
    }
    out += "]}";
    return out;
}

}  // namespace hallpass
