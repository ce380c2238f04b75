// The reload thread. It never touches an event loop: the only shared state it changes is the
// RuleStore's snapshot pointer.
#include "hallpass/rules/reloader.h"

#include <malloc.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>

#include "hallpass/base/log.h"
#include "hallpass/rules/pacer.h"
#include "hallpass/rules/rule_set.h"
#include "hallpass/rules/rule_store.h"
#include "hallpass/rules/rules_file.h"

namespace hallpass {

namespace {

// The calling thread to nice 19, then SCHED_IDLE (which keeps the nice value for a later raise
// to SCHED_OTHER). Lowering needs no privilege.
void lower_to_idle() {
    if (setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)), 19) != 0) {
        LOG_WARN("reload thread: cannot lower its priority: %s", std::strerror(errno));
    }
    sched_param param{};
    if (sched_setscheduler(0, SCHED_IDLE, &param) != 0) {
        LOG_WARN("reload thread: cannot use SCHED_IDLE (%s); reloads run at nice 19",
                 std::strerror(errno));
    }
}

}  // namespace

Reloader::Reloader(std::string path, RuleStore& store, std::function<void()> on_published,
                   ResultCallback on_result, std::chrono::milliseconds idle_grace)
    : path_(std::move(path)),
      store_(store),
      on_published_(std::move(on_published)),
      on_result_(std::move(on_result)),
      idle_grace_(idle_grace),
      thread_([this] { run(); }),
      watchdog_([this] { watch(); }) {}

Reloader::~Reloader() {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        stopping_ = true;
    }
    wake_.notify_one();
    progress_.notify_all();
    thread_.join();
    watchdog_.join();
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
    lower_to_idle();
    std::unique_lock<std::mutex> lock(mutex_);
    reload_tid_ = static_cast<pid_t>(syscall(SYS_gettid));
    for (;;) {
        wake_.wait(lock, [this] { return pending_ || stopping_; });
        if (stopping_) return;
        pending_ = false;
        running_ = true;
        ++started_;
        progress_.notify_all();
        lock.unlock();
        reload_once();
        lock.lock();
        running_ = false;
        progress_.notify_all();
        sched_param param{};
        if (sched_getscheduler(0) != SCHED_IDLE) (void)sched_setscheduler(0, SCHED_IDLE, &param);
    }
}

// Raises a reload still running after idle_grace_ (see reloader.h).
void Reloader::watch() {
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
        progress_.wait(lock, [this] { return running_ || stopping_; });
        if (stopping_) return;
        const unsigned long reload = started_;
        const auto same_reload_running = [&] {
            return running_ && started_ == reload && !stopping_;
        };
        if (progress_.wait_for(lock, idle_grace_, [&] { return !same_reload_running(); })) {
            continue;
        }
        if (pacer_ != nullptr) pacer_->hurry();
        sched_param param{};
        if (sched_setscheduler(reload_tid_, SCHED_OTHER, &param) == 0) {
            LOG_INFO("reload: still running after %lld ms; it goes on at nice 19 without rests",
                     static_cast<long long>(idle_grace_.count()));
        } else {
            LOG_WARN(
                "reload: still running after %lld ms, and the reload thread may not be raised "
                "to nice 19 (%s; needs CAP_SYS_NICE or RLIMIT_NICE >= 1): it goes on with CPU "
                "time the workers leave; the old rules serve meanwhile",
                static_cast<long long>(idle_grace_.count()), std::strerror(errno));
        }
        progress_.wait(lock, [&] { return !same_reload_running(); });
    }
}

void Reloader::reload_once() {
    std::shared_ptr<const RuleSet> old = store_.current();
    Pacer pacer{Pacer::Options{}};
    {
        std::lock_guard<std::mutex> lock(mutex_);
        pacer_ = &pacer;
    }
    auto loaded = load_rules_file(path_, old.get(), &pacer);
    {
        std::lock_guard<std::mutex> lock(mutex_);
        pacer_ = nullptr;
    }
    if (!loaded) {
        LOG_ERROR("reload failed, the previous rules stay in force: %s",
                  loaded.error().to_string().c_str());
        if (on_result_) on_result_(false, loaded.error().to_string());
        std::lock_guard<std::mutex> lock(mutex_);
        ++failed_;
        return;
    }
    const RuleSet& next = *loaded->rules;
    LOG_INFO(
        "reload ok in %.0f ms: rules %zu -> %zu, entries %zu -> %zu (%s)%s; %lld ms of it "
        "resting for busy workers",
        loaded->load_ms, old->rule_count(), next.rule_count(), old->entry_count(),
        next.entry_count(), path_.c_str(),
        next.regexes_shared_with(*old) ? ", regexes unchanged: compiled sets kept" : "",
        static_cast<long long>(pacer.rested().count()));
    store_.publish(std::move(loaded->rules));
    if (on_published_) on_published_();
    if (on_result_) on_result_(true, "");
    std::unique_lock<std::mutex> lock(mutex_);
    ++ok_;
    // The workers drop the old snapshot on their next loop turn. This thread keeps a reference
    // until they have, so that the old set (its index, its regex sets with their DFA caches) is
    // usually freed here and not on a worker's event loop; a request still pinning it after 2 s
    // frees it when it ends. Then the memory the old set and the load's temporaries used goes
    // back to the system, so the next reload starts from the steady footprint (old + new, not
    // old + new + what the allocator kept).
    for (int i = 0; i < 200 && !stopping_ && old.use_count() > 1; ++i) {
        wake_.wait_for(lock, std::chrono::milliseconds(10));
    }
    lock.unlock();
    old.reset();
    malloc_trim(0);
}

}  // namespace hallpass
