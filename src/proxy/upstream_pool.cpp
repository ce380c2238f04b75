// The upstream keep-alive pool. An idle connection keeps reading enabled: any event on it (EOF,
// reset, unexpected bytes) means it cannot be reused, so it is closed at once instead of failing a
// later request. The pool's idle timeout should stay below typical server keep-alive timeouts
// (nginx: 75 s) so that a connection is rarely closed by the server just as it is reused.
#include "hallpass/proxy/upstream_pool.h"

#include <cassert>

namespace hallpass {

struct UpstreamPool::Idle {
    UpstreamPool* pool = nullptr;
    std::string key;
    std::string peer;
    BuffereventPtr bev;
    EventPtr timer;
    Lru::iterator lru_pos;
};

namespace {

void on_idle_readable(bufferevent*, void* arg) {
    auto* idle = static_cast<UpstreamPool::Idle*>(arg);
    idle->pool->drop(idle);
}

void on_idle_event(bufferevent*, short, void* arg) {
    auto* idle = static_cast<UpstreamPool::Idle*>(arg);
    idle->pool->drop(idle);
}

void on_idle_timeout(evutil_socket_t, short, void* arg) {
    auto* idle = static_cast<UpstreamPool::Idle*>(arg);
    idle->pool->drop(idle);
}

}  // namespace

UpstreamPool::UpstreamPool(event_base* base, size_t per_host, size_t max_idle, int idle_timeout_ms)
    : base_(base), per_host_(per_host), max_idle_(max_idle), idle_timeout_ms_(idle_timeout_ms) {}

UpstreamPool::~UpstreamPool() {
    while (!lru_.empty()) drop(lru_.front().get());
}

void UpstreamPool::put(const std::string& key, BuffereventPtr bev, std::string peer) {
    if (per_host_ == 0 || max_idle_ == 0) return;  // `bev` closes here
    auto& list = by_key_[key];
    if (list.size() >= per_host_) drop(list.front()->get());
    if (lru_.size() >= max_idle_) drop(lru_.front().get());

    auto owned = std::make_unique<Idle>();
    Idle* idle = owned.get();
    idle->pool = this;
    idle->key = key;
    idle->peer = std::move(peer);
    idle->timer.reset(evtimer_new(base_, on_idle_timeout, idle));
    if (!idle->timer) return;  // out of memory: not pooled
    timeval tv{idle_timeout_ms_ / 1000, (idle_timeout_ms_ % 1000) * 1000};
    evtimer_add(idle->timer.get(), &tv);
    bufferevent_setcb(bev.get(), on_idle_readable, nullptr, on_idle_event, idle);
    bufferevent_setwatermark(bev.get(), EV_READ, 0, 0);
    bufferevent_set_timeouts(bev.get(), nullptr, nullptr);
    bufferevent_enable(bev.get(), EV_READ);
    idle->bev = std::move(bev);
    idle->lru_pos = lru_.insert(lru_.end(), std::move(owned));
    by_key_[key].push_back(idle->lru_pos);
}

UpstreamPool::Pooled UpstreamPool::take(const std::string& key) {
    auto it = by_key_.find(key);
    if (it == by_key_.end() || it->second.empty()) return {};
    Lru::iterator pos = it->second.back();
    it->second.pop_back();
    if (it->second.empty()) by_key_.erase(it);
    Pooled out{std::move((*pos)->bev), std::move((*pos)->peer)};
    lru_.erase(pos);  // frees the entry and its timer
    bufferevent_setcb(out.bev.get(), nullptr, nullptr, nullptr, nullptr);
    ++reused_;
    return out;
}

void UpstreamPool::drop(Idle* idle) {
    auto it = by_key_.find(idle->key);
    assert(it != by_key_.end());
    it->second.remove(idle->lru_pos);
    if (it->second.empty()) by_key_.erase(it);
    lru_.erase(idle->lru_pos);  // frees the entry: its connection and its timer
}

}  // namespace hallpass
