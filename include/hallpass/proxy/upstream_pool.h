// Idle upstream keep-alive connections of one worker, keyed by "host:port": bounded per key and in
// all, each expiring after an idle timeout, dropped as soon as the server closes it or sends
// anything unasked. Only the worker's thread touches it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <string>
#include <unordered_map>

#include "hallpass/base/event_handles.h"

namespace hallpass {

class UpstreamPool {
  public:
    // A pooled connection and the peer address it was opened to ("ADDR:PORT", for the log), so
    // that a reuse costs no getpeername(2).
    struct Pooled {
        BuffereventPtr bev;
        std::string peer;
        explicit operator bool() const { return bev != nullptr; }
    };

    UpstreamPool(event_base* base, size_t per_host, size_t max_idle, int idle_timeout_ms);
    ~UpstreamPool();  // closes every idle connection
    UpstreamPool(const UpstreamPool&) = delete;
    UpstreamPool& operator=(const UpstreamPool&) = delete;

    // Takes ownership of `bev`, an upstream connection that finished an exchange cleanly (empty
    // input and output). Its callbacks are replaced. When the pool is full for `key` or in all,
    // the oldest idle connection is closed to make room; with a zero bound `bev` is closed.
    void put(const std::string& key, BuffereventPtr bev, std::string peer);

    // An idle connection for `key`, most recently used first, or none. Ownership passes to the
    // caller; the bufferevent has no callbacks. Reading stays enabled (no epoll change): the
    // caller sets its callbacks before the loop runs again.
    Pooled take(const std::string& key);

    size_t idle_count() const { return lru_.size(); }
    uint64_t reused() const { return reused_; }

    struct Idle;  // public for the libevent trampolines in upstream_pool.cpp
    void drop(Idle* idle);

  private:
    using Lru = std::list<std::unique_ptr<Idle>>;  // oldest first; owns the idle entries
    event_base* base_;
    size_t per_host_;
    size_t max_idle_;
    int idle_timeout_ms_;
    Lru lru_;
    std::unordered_map<std::string, std::list<Lru::iterator>> by_key_;  // newest last
    uint64_t reused_ = 0;
};

}  // namespace hallpass
