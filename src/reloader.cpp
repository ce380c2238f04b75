// The reload thread. It never touches an event loop: the only shared state it changes is the
// RuleStore's snapshot pointer.
#include "hallpass/reloader.h"

#include <malloc.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>
#include <memory>

#include "hallpass/log.h"
#include "hallpass/rule_set.h"
#include "hallpass/rule_store.h"
#include "hallpass/rules_file.h"

namespace hallpass {

Reloader::Reloader(std::string path, RuleStore& store, std::function<void()> on_published,
                   ResultCallback on_result)
    : path_(std::move(path)),
      store_(store),
      on_published_(std::move(on_published)),
      on_result_(std::move(on_result)),
      thread_([this] { run(); }) {}

Reloader::~Reloader() {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        stopping_ = true;
    }
    wake_.notify_one();
    thread_.join();
}

void Reloader::request() {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        pending_ = true;
    }
    wake_.notify_one();
}

unsigned long Reloader::succeeded() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return ok_;
}

unsigned long Reloader::failed() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return failed_;
}

void Reloader::run() {
    // Requests come first: compiling a million names must not take CPU time from the workers
    // (on a 2-core machine it otherwise takes a whole core). At nice 19 a reload gets what the
    // workers leave; on a saturated proxy it takes longer, but the old rules serve meanwhile.
    if (setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)), 19) != 0) {
        LOG_WARN("reload thread: cannot lower its priority; reloads compete with requests");
    }
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
        wake_.wait(lock, [this] { return pending_ || stopping_; });
        if (stopping_) return;
        pending_ = false;
        lock.unlock();
        reload_once();
        lock.lock();
    }
}

void Reloader::reload_once() {
    std::shared_ptr<const RuleSet> old = store_.current();
    auto loaded = load_rules_file(path_, old.get());
    if (!loaded) {
        LOG_ERROR("reload failed, the previous rules stay in force: %s",
                  loaded.error().to_string().c_str());
        if (on_result_) on_result_(false, loaded.error().to_string());
        std::lock_guard<std::mutex> lock(mutex_);
        ++failed_;
        return;
    }
    const RuleSet& next = *loaded->rules;
    LOG_INFO("reload ok in %.0f ms: rules %zu -> %zu, entries %zu -> %zu (%s)%s", loaded->load_ms,
             old->rule_count(), next.rule_count(), old->entry_count(), next.entry_count(),
             path_.c_str(),
             next.regexes_shared_with(*old) ? ", regexes unchanged: compiled sets kept" : "");
    std::weak_ptr<const RuleSet> previous = old;
    old.reset();
    store_.publish(std::move(loaded->rules));
    if (on_published_) on_published_();
    if (on_result_) on_result_(true, "");
    std::unique_lock<std::mutex> lock(mutex_);
    ++ok_;
    // The workers drop the old snapshot on their next loop turn; then the memory the old set
    // and the load's temporaries used goes back to the system, so the next reload starts from
    // the steady footprint (old + new, not old + new + what the allocator kept).
    for (int i = 0; i < 200 && !stopping_ && !previous.expired(); ++i) {
        wake_.wait_for(lock, std::chrono::milliseconds(10));
    }
    lock.unlock();
    malloc_trim(0);
}

}  // namespace hallpass
