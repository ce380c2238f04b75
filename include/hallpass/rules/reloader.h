// SIGHUP reloads on their own thread: the signal handler only wakes it; the thread reads and
// compiles the rules file (and all lists) while the workers keep serving with the old snapshot,
// then publishes the new one, or logs the error and keeps the old one. Reload requests that
// arrive while one runs are merged into one more run.
//
// Priority: the reload thread runs at SCHED_IDLE (nice 19 underneath), so it uses only CPU time
// the workers, and everything else on the machine, leave: a waking worker preempts it at once.
// (At nice 19 the scheduler let it keep a CPU for a slice while workers waited: p50 latency
// during a reload was 21-28x that outside reloads; docs/benchmarks-rules.md.) A proxy with no
// idle CPU would then wait for its reload indefinitely: a watchdog thread raises a reload still
// running after `idle_grace` to SCHED_OTHER at nice 19, which needs CAP_SYS_NICE or
// RLIMIT_NICE >= 1 (otherwise it logs that the reload goes on with the CPU time the workers
// leave).
//
// Pacing (pacer.h): while the workers keep taking the CPU from it, the reload works in 0.5 ms
// bursts with 1.5 ms rests; a reload past `idle_grace` stops resting. With CPU to spare it never
// rests. (On the 2-vCPU test VM even SCHED_IDLE work on the other vCPU slowed the workers; the
// rests brought p50/p99 latency during a 1M-name reload from 11x/22x the quiet windows' to
// 2.2-3.9x / 2.4-9.2x, for a reload 2-3x longer: docs/benchmarks-rules.md.)
#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace hallpass {

class Pacer;
class RuleStore;

class Reloader {
  public:
    // `on_published` runs on the reload thread after a new snapshot is in the store (the server
    // uses it to make idle workers drop the old snapshot at once). `on_result`, when set, runs on
    // the reload thread after every attempt: ok, or not with the error (for the statistics).
    using ResultCallback = std::function<void(bool ok, const std::string& message)>;
    Reloader(std::string path, RuleStore& store, std::function<void()> on_published,
             ResultCallback on_result = {},
             std::chrono::milliseconds idle_grace = std::chrono::seconds(5));
    ~Reloader();  // stops and joins
    Reloader(const Reloader&) = delete;
    Reloader& operator=(const Reloader&) = delete;

    // Any thread; returns at once.
    void request();

    // Counters for statistics and tests.
    unsigned long succeeded() const;
    unsigned long failed() const;

  private:
    void run();
    void watch();
    void reload_once();

    std::string path_;
    RuleStore& store_;
    std::function<void()> on_published_;
    ResultCallback on_result_;
    mutable std::mutex mutex_;
    std::condition_variable wake_;
    std::condition_variable progress_;  // a reload started or ended (for the watchdog)
    std::chrono::milliseconds idle_grace_;
    pid_t reload_tid_ = 0;
    Pacer* pacer_ = nullptr;  // the running reload's, under mutex_ (the watchdog hurries it)
    bool pending_ = false;
    bool stopping_ = false;
    bool running_ = false;       // a reload is in progress
    unsigned long started_ = 0;  // reloads started: tells the watchdog one from the next
    unsigned long ok_ = 0;
    unsigned long failed_ = 0;
    std::thread thread_;
    std::thread watchdog_;
};

}  // namespace hallpass
