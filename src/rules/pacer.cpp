// Pacer: compares the thread's CPU time with the wall time of each burst. A thread that got the
// CPU for (nearly) the whole burst runs on a machine with CPU to spare and goes on; one that got
// less was preempted by the workers, and rests before the next burst.
#include "hallpass/rules/pacer.h"

#include <time.h>

namespace hallpass {

namespace {

int64_t clock_ns(clockid_t clock) {
    timespec ts{};
    clock_gettime(clock, &ts);
    return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

}  // namespace

Pacer::Pacer(Options options)
    : options_(options),
      on_(true),
      burst_wall_ns_(clock_ns(CLOCK_MONOTONIC)),
      burst_cpu_ns_(clock_ns(CLOCK_THREAD_CPUTIME_ID)) {}

void Pacer::check() {
    if (hurry_.load(std::memory_order_relaxed)) return;
    const int64_t wall = clock_ns(CLOCK_MONOTONIC);
    const int64_t elapsed = wall - burst_wall_ns_;
    if (elapsed < std::chrono::nanoseconds(options_.burst).count()) return;
    const int64_t cpu = clock_ns(CLOCK_THREAD_CPUTIME_ID);
    if (static_cast<double>(cpu - burst_cpu_ns_) <
        options_.contended_below * static_cast<double>(elapsed)) {
        const int64_t rest = std::chrono::nanoseconds(options_.rest).count();
        timespec ts{static_cast<time_t>(rest / 1'000'000'000),
                    static_cast<long>(rest % 1'000'000'000)};
        nanosleep(&ts, nullptr);
        ++rests_;
        rested_ns_ += clock_ns(CLOCK_MONOTONIC) - wall;
    }
    burst_wall_ns_ = clock_ns(CLOCK_MONOTONIC);
    burst_cpu_ns_ = clock_ns(CLOCK_THREAD_CPUTIME_ID);
}

std::chrono::milliseconds Pacer::rested() const {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::nanoseconds(rested_ns_));
}

}  // namespace hallpass
