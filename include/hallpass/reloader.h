// SIGHUP reloads on their own thread: the signal handler only wakes it; the thread reads and
// compiles the rules file (and all lists) while the workers keep serving with the old snapshot,
// then publishes the new one, or logs the error and keeps the old one. Reload requests that
// arrive while one runs are merged into one more run.
#pragma once

#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace hallpass {

class RuleStore;

class Reloader {
  public:
    // `on_published` runs on the reload thread after a new snapshot is in the store (the server
    // uses it to make idle workers drop the old snapshot at once). `on_result`, when set, runs on
    // the reload thread after every attempt: ok, or not with the error (for the statistics).
    using ResultCallback = std::function<void(bool ok, const std::string& message)>;
    Reloader(std::string path, RuleStore& store, std::function<void()> on_published,
             ResultCallback on_result = {});
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
    void reload_once();

    std::string path_;
    RuleStore& store_;
    std::function<void()> on_published_;
    ResultCallback on_result_;
    mutable std::mutex mutex_;
    std::condition_variable wake_;
    bool pending_ = false;
    bool stopping_ = false;
    unsigned long ok_ = 0;
    unsigned long failed_ = 0;
    std::thread thread_;
};

}  // namespace hallpass
