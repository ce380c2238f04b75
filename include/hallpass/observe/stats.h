// Statistics: per-worker counters kept without locks on the request path and summed on demand by
// the admin thread. Plain counters are atomics with one writer each (that worker's thread, relaxed
// load + store, no locked read-modify-write); the bounded structures a worker cannot share while
// it writes them (top-N sketches, the per-minute ring, rule and error tables) are copied and
// published by the worker itself about once a second. The admin module renders the sum.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "hallpass/observe/transaction.h"

namespace hallpass {

// Latency histogram upper bounds (milliseconds); one more bucket, +Inf, follows.
inline constexpr std::array<int64_t, 13> kLatencyBoundsMs = {1,   2,   5,    10,   25,   50,   100,
                                                             250, 500, 1000, 2500, 5000, 10000};
inline constexpr size_t kLatencyBuckets = kLatencyBoundsMs.size() + 1;
inline constexpr size_t kMinutes = 1440;          // per-minute ring: the last 24 hours
inline constexpr size_t kSketchCapacity = 256;    // Space-Saving entries per worker and sketch
inline constexpr size_t kNamedCounterCap = 1024;  // distinct rule names (or error kinds) per worker

// Space-Saving heavy hitters (Metwally et al., 2005) with a fixed number of counters: any key
// seen more than N/capacity times of N is present, and each count overestimates the true one by
// at most its `error`. A min-heap keeps the smallest counter at the front, so adding is
// O(log capacity). Not thread-safe: one owner.
class SpaceSaving {
  public:
    struct Entry {
        std::string key;
        uint64_t count = 0;  // an upper bound of the key's true count
        uint64_t error = 0;  // count - error is a lower bound
    };

    explicit SpaceSaving(size_t capacity = kSketchCapacity);

    void add(std::string_view key, uint64_t n = 1);
    size_t size() const { return heap_.size(); }
    size_t capacity() const { return capacity_; }
    // Every entry, in no particular order.
    const std::vector<Entry>& entries() const { return heap_; }
    // The `n` largest, by count (ties by key).
    std::vector<Entry> top(size_t n) const;

  private:
    void sift_down(size_t i);
    void swap_entries(size_t a, size_t b);

    size_t capacity_;
    std::vector<Entry> heap_;  // min-heap by count
    std::unordered_map<std::string, size_t> index_;
};

// Sums several workers' sketches key by key and returns the `n` largest. A key one worker evicted
// counts only where it is still present, so a merged count may be low by up to the sum of the
// other workers' minimum counters (documented in docs/admin.md).
std::vector<SpaceSaving::Entry> merge_top(const std::vector<const SpaceSaving*>& sketches,
                                          size_t n);

// Requests and blocks of one wall-clock minute.
struct MinutePoint {
    int64_t minute = 0;  // unix time / 60
    uint64_t requests = 0;
    uint64_t blocked = 0;
};

// The last kMinutes minutes in a fixed ring: minute m lives in slot m % kMinutes and a slot
// holding an older minute is reset when reused, so memory never grows.
class MinuteRing {
  public:
    MinuteRing();
    void add(int64_t minute, bool blocked);
    // Non-empty minutes in (now - kMinutes, now], oldest first.
    std::vector<MinutePoint> points(int64_t now_minute) const;

  private:
    std::vector<MinutePoint> slots_;
};

// Adds `more` (any order, several workers) into `into` by minute; keeps minutes in
// (now - kMinutes, now], sorted oldest first.
std::vector<MinutePoint> merge_minutes(const std::vector<std::vector<MinutePoint>>& series,
                                       int64_t now_minute);

// Counts per name with at most kNamedCounterCap names; further names count under "(other)".
class NamedCounters {
  public:
    void add(const std::string& name, uint64_t n = 1);
    const std::unordered_map<std::string, uint64_t>& counts() const { return counts_; }

  private:
    std::unordered_map<std::string, uint64_t> counts_;
};

struct TopEntry {
    std::string key;
    uint64_t count = 0;
    uint64_t error = 0;
};

// One blocked request, as the info page and the dashboard list them.
struct RecentBlock {
    int64_t unix_ms = 0;
    IpAddr client;
    std::string group;  // the client's groups when snapshot() ran ("kids"), "" when none
    std::string host;
    std::string rule;
    std::string message;
};

// The last kCapacity blocked requests of every client, newest last: a mutex-guarded ring (a
// block is rare next to a request; the lock is held for one copy).
class RecentBlocks {
  public:
    static constexpr size_t kCapacity = 1000;
    static constexpr size_t kMaxField = 255;  // longer host, rule and message texts are cut
    void add(const Transaction& txn);
    // The newest `n` (of `client` only, when given), newest first.
    std::vector<RecentBlock> newest(size_t n, const IpAddr* client = nullptr) const;

  private:
    mutable std::mutex mutex_;
    std::vector<RecentBlock> ring_;
    size_t next_ = 0;
};

// Everything summed over the workers at one moment: what /metrics and /stats.json render.
struct StatsSnapshot {
    std::string version;
    std::string rules_file;
    int workers = 0;
    int64_t now_unix_ms = 0;
    int64_t start_unix_ms = 0;
    double uptime_s = 0;

    std::array<uint64_t, 4> requests{};  // by Transaction::Kind
    uint64_t requests_total = 0;
    uint64_t blocked = 0;
    std::array<uint64_t, 6> status_classes{};  // no status, 1xx, 2xx, 3xx, 4xx, 5xx
    uint64_t bytes_in = 0;                     // from clients
    uint64_t bytes_out = 0;                    // to clients
    int64_t client_connections = 0;
    int64_t upstream_connections = 0;
    int64_t tunnels = 0;
    uint64_t refused_not_allowed = 0;  // connections refused at accept with 403
    uint64_t refused_overloaded = 0;   // ... with 503
    uint64_t dns_cache_hits = 0;
    uint64_t dns_cache_misses = 0;

    uint64_t reloads_ok = 0;
    uint64_t reloads_failed = 0;
    int64_t last_reload_unix_ms = 0;  // 0: none yet
    bool last_reload_ok = false;
    std::string last_reload_message;

    // Every list of the rules in force, and for a list by URL its kept copy and last fetch.
    struct List {
        std::string name;
        std::string url;  // "" for a list read from a file
        uint64_t entries = 0;
        int64_t copy_age_s = -1;  // URL lists: age of the kept copy; -1: none yet
        std::string last_fetch;   // "updated", "not modified", "refused", "failed"; "" none yet
        std::string last_fetch_message;
        int64_t last_fetch_unix = 0;
    };
    std::vector<List> lists;

    std::array<uint64_t, kLatencyBuckets> latency_buckets{};  // per bucket, not cumulative
    double latency_sum_s = 0;
    uint64_t latency_count = 0;

    // Sorted by count, largest first (names by name for equal counts).
    std::vector<std::pair<std::string, uint64_t>> errors;     // by error_kind()
    std::vector<std::pair<std::string, uint64_t>> rule_hits;  // by deciding rule name
    std::vector<TopEntry> top_hosts;
    std::vector<TopEntry> top_blocked_hosts;
    std::vector<TopEntry> top_clients;
    std::vector<MinutePoint> minutes;  // non-empty minutes of the last 24 h, oldest first
    // Safe search: requests and tunnels re-targeted, by enforcement name.
    std::vector<std::pair<std::string, uint64_t>> safe_search;
    std::vector<RecentBlock> recent_blocks;  // the newest 100, newest first
    // The groups of each address in top_clients ("" when none), in the same order.
    std::vector<std::string> top_client_groups;
};

// The bounded error kind of a request that did not complete cleanly (metric label and JSON
// key): named after the status hallpass sent ("bad_gateway", "gateway_timeout", ...),
// "no_response" when the client got none, "cut_short" when a response or tunnel had begun;
// nullptr when `txn` has no error.
const char* error_kind(const Transaction& txn);

// The status class index of StatsSnapshot::status_classes ("none", "1xx", ... "5xx").
const char* status_class_name(size_t index);

// The statistics sink. record() runs on worker threads; publish() on the same worker's thread;
// snapshot() and the note_* functions on any thread.
class Stats : public TransactionSink {
  public:
    struct Options {
        int workers = 1;
        std::string version;
        std::string rules_file;
        size_t top_n = 20;  // entries of each top list in the snapshot
        // Open client connections (SharedState::connections); may be null.
        const std::atomic<int>* client_connections = nullptr;
    };
    explicit Stats(Options options);
    ~Stats() override;
    Stats(const Stats&) = delete;
    Stats& operator=(const Stats&) = delete;

    // Worker `worker`'s thread only.
    void record(int worker, const Transaction& txn) override;
    // Copies this worker's sketches, ring and tables for snapshot() when anything changed since
    // the last copy. Each worker calls it from a 1 s timer on its own loop, so snapshot() sees
    // those parts at most about a second late. Worker `worker`'s thread only.
    void publish(int worker);
    // Gauges, worker `worker`'s thread only: its open upstream connections (in use or idle in
    // the pool) and open tunnels, counted by the worker on the same 1 s timer (so the request
    // path pays nothing for them).
    void set_connection_gauges(int worker, int64_t upstream_connections, int64_t tunnels);
    // A connection refused at accept, before any request (worker `worker`'s thread): 403 for a
    // client outside allowed_clients, 503 when over a connection limit or shutting down.
    void count_refused(int worker, int status);

    // Any thread (the reload thread): the result of a rules reload.
    void note_reload(bool ok, const std::string& message);

    // Where snapshot() gets the lists from (the server: the rules in force and the list
    // updater). Set before the admin endpoint starts; called on the admin's thread.
    void set_lists_source(std::function<std::vector<StatsSnapshot::List>()> source) {
        lists_source_ = std::move(source);
    }
    // The groups an address is in, by the rules in force ("kids", "" when none). Set before the
    // admin endpoint starts; called on any thread.
    void set_groups_source(std::function<std::string(const IpAddr&)> source) {
        groups_source_ = std::move(source);
    }
    std::string groups_of(const IpAddr& ip) const {
        return groups_source_ ? groups_source_(ip) : std::string();
    }

    // Any thread: the newest blocked requests (of `client` only, when given), newest first.
    std::vector<RecentBlock> recent_blocks(size_t n, const IpAddr* client = nullptr) const {
        return recent_.newest(n, client);
    }

    // Any thread: the sum over the workers now.
    StatsSnapshot snapshot() const;

    int workers() const { return static_cast<int>(slots_.size()); }

  private:
    struct Slot;
    Options options_;
    int64_t start_unix_ms_;
    std::vector<std::unique_ptr<Slot>> slots_;
    std::atomic<uint64_t> reloads_ok_{0};
    std::atomic<uint64_t> reloads_failed_{0};
    mutable std::mutex reload_mutex_;
    int64_t last_reload_unix_ms_ = 0;
    bool last_reload_ok_ = false;
    std::string last_reload_message_;
    std::function<std::vector<StatsSnapshot::List>()> lists_source_;
    std::function<std::string(const IpAddr&)> groups_source_;
    RecentBlocks recent_;
};

// Rendering, pure: the Prometheus text exposition format 0.0.4 and the JSON of /stats.json.
std::string render_prometheus(const StatsSnapshot& s);
std::string render_stats_json(const StatsSnapshot& s);

// Exposed for tests: `text` as a Prometheus label value (backslash, double quote and newline
// escaped) and as a JSON string body (without the quotes).
std::string escape_label_value(std::string_view text);
std::string escape_json(std::string_view text);

// Wall clock, milliseconds since the epoch.
int64_t unix_now_ms();

}  // namespace hallpass
