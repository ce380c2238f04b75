// The rule set in force: an immutable snapshot behind a mutex, plus an atomic generation so a
// worker re-copies its cached pointer only when a reload published a new one (no lock per
// request). Publishing swaps the pointer; requests that pinned the old snapshot finish with it and
// the last one frees it.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>

#include "hallpass/rules/rule_set.h"

namespace hallpass {

class RuleStore {
  public:
    explicit RuleStore(std::shared_ptr<const RuleSet> initial) : current_(std::move(initial)) {}

    // Any thread.
    void publish(std::shared_ptr<const RuleSet> next) {
        std::shared_ptr<const RuleSet> old;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            old = std::exchange(current_, std::move(next));
            generation_.fetch_add(1, std::memory_order_release);
        }
        // `old` is released here, outside the lock (freeing 1M names takes a moment).
    }
    std::shared_ptr<const RuleSet> current() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return current_;
    }
    uint64_t generation() const { return generation_.load(std::memory_order_acquire); }

  private:
    mutable std::mutex mutex_;
    std::shared_ptr<const RuleSet> current_;
    std::atomic<uint64_t> generation_{0};
};

// A worker's view of the store: one atomic load per request, a locked copy only after a reload.
class RuleCache {
  public:
    explicit RuleCache(const RuleStore& store) : store_(store) { refresh(); }
    const std::shared_ptr<const RuleSet>& get() {
        if (store_.generation() != generation_) refresh();
        return rules_;
    }

  private:
    void refresh() {
        generation_ = store_.generation();
        rules_ = store_.current();
    }
    const RuleStore& store_;
    uint64_t generation_ = 0;
    std::shared_ptr<const RuleSet> rules_;
};

}  // namespace hallpass
