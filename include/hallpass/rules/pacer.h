// Pacing for a long background job (a rules reload) on a machine whose CPUs serve requests:
// while the job's thread keeps losing the CPU (the workers want it), it works in short bursts and
// rests between them, so the CPU time it takes comes in slices the workers barely notice; on an
// idle machine it never rests. The job calls pace() often (every few microseconds of work);
// pace() is a counter increment, and every kCallsPerCheck calls a look at the clocks.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace hallpass {

class Pacer {
  public:
    struct Options {
        std::chrono::microseconds burst{500};  // work between looks at the clocks
        std::chrono::microseconds rest{1500};  // a rest after a contended burst
        double contended_below = 0.9;          // thread CPU / wall time of a contended burst
    };

    Pacer() = default;  // off: pace() does nothing
    explicit Pacer(Options options);

    void pace() {
        if (on_ && ++calls_ % kCallsPerCheck == 0) check();
    }
    // The same with a look at the clocks at once, after a larger piece of work (~0.1 ms).
    void pace_now() {
        if (on_) check();
    }

    // Any thread: no more rests (a reload that has waited long enough finishes flat out).
    void hurry() { hurry_.store(true, std::memory_order_relaxed); }

    std::chrono::milliseconds rested() const;  // in all, since construction
    unsigned long rests() const { return rests_; }

  private:
    static constexpr unsigned kCallsPerCheck = 64;
    void check();

    Options options_;
    bool on_ = false;
    std::atomic<bool> hurry_{false};
    unsigned calls_ = 0;
    unsigned long rests_ = 0;
    int64_t rested_ns_ = 0;
    int64_t burst_wall_ns_ = 0;
    int64_t burst_cpu_ns_ = 0;
};

}  // namespace hallpass
