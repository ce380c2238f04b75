// One thread, one fetch at a time (lists are few; politeness to their servers matters more than
// speed). The thread sleeps on a condition variable until the next list is due or it is told to
// stop.
#include "hallpass/rules/list_updater.h"

#include <algorithm>
#include <chrono>
#include <ctime>
#include <random>

#include "hallpass/base/log.h"

namespace hallpass {
namespace {

int64_t now_unix() { return static_cast<int64_t>(std::time(nullptr)); }

// `seconds` less up to 10 % (never earlier than due: no herd of boxes at the same second).
int64_t jittered(int64_t seconds, std::mt19937_64& rng) {
    std::uniform_int_distribution<int64_t> jitter(0, std::max<int64_t>(seconds / 10, 1));
    return std::max<int64_t>(seconds - jitter(rng), 1);
}

}  // namespace

ListUpdater::Entry ListUpdater::make_entry(ListSpec spec) {
    static thread_local std::mt19937_64 rng(std::random_device{}());
    Entry e;
    const ListCopy copy = read_list_copy(spec);
    // No copy: now. A copy: when it is refresh old (an old copy at once).
    e.due_unix = copy.exists ? copy.fetched_unix + jittered(spec.refresh_s, rng) : now_unix();
    e.status.name = spec.name;
    e.status.url = spec.url;
    e.status.copy_unix = copy.exists ? copy.fetched_unix : 0;
    e.spec = std::move(spec);
    return e;
}

ListUpdater::ListUpdater(std::vector<ListSpec> lists, std::function<void()> on_updated)
    : on_updated_(std::move(on_updated)) {
    for (ListSpec& spec : lists) {
        if (!spec.url.empty()) lists_.push_back(make_entry(std::move(spec)));
    }
    thread_ = std::thread([this] { run(); });
}

void ListUpdater::set_lists(std::vector<ListSpec> lists) {
    {
        std::lock_guard lock(mu_);
        std::vector<Entry> next;
        for (ListSpec& spec : lists) {
            if (spec.url.empty()) continue;
            auto old = std::find_if(lists_.begin(), lists_.end(),
                                    [&](const Entry& e) { return e.spec.name == spec.name; });
            if (old != lists_.end() && old->spec.url == spec.url) {
                Entry kept = *old;
                kept.spec = std::move(spec);
                next.push_back(std::move(kept));
            } else {
                next.push_back(make_entry(std::move(spec)));
            }
        }
        lists_ = std::move(next);
        ++generation_;
    }
    cv_.notify_all();
}

ListUpdater::~ListUpdater() { stop(); }

void ListUpdater::stop() {
    {
        std::lock_guard lock(mu_);
        stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
}

std::vector<ListUpdater::Status> ListUpdater::status() const {
    std::lock_guard lock(mu_);
    std::vector<Status> out;
    for (const Entry& e : lists_) out.push_back(e.status);
    return out;
}

void ListUpdater::run() {
    std::mt19937_64 rng(std::random_device{}());
    std::unique_lock lock(mu_);
    while (!stop_) {
        const uint64_t seen = generation_;
        if (lists_.empty()) {
            cv_.wait(lock, [&] { return stop_ || generation_ != seen; });
            continue;
        }
        auto next = std::min_element(
            lists_.begin(), lists_.end(),
            [](const Entry& a, const Entry& b) { return a.due_unix < b.due_unix; });
        const int64_t wait = next->due_unix - now_unix();
        if (wait > 0) {
            cv_.wait_for(lock, std::chrono::seconds(wait),
                         [&] { return stop_ || generation_ != seen; });
            continue;
        }
        ListSpec spec = next->spec;
        lock.unlock();
        const ListFetch f = fetch_list(spec);
        lock.lock();
        if (generation_ != seen) {
            // The lists changed meanwhile: find this one again (it may be gone).
            next = std::find_if(lists_.begin(), lists_.end(),
                                [&](const Entry& e) { return e.spec.name == spec.name; });
            if (next == lists_.end() || next->spec.url != spec.url) {
                if (f.outcome == ListFetch::Outcome::Updated) {
                    lock.unlock();
                    on_updated_();
                    lock.lock();
                }
                continue;
            }
        }
        Status& s = next->status;
        s.outcome = f.outcome;
        s.message = f.message;
        s.at_unix = now_unix();
        const bool ok = f.outcome == ListFetch::Outcome::Updated ||
                        f.outcome == ListFetch::Outcome::NotModified;
        if (ok) {
            s.failures = 0;
            s.copy_unix = s.at_unix;
            next->due_unix = s.at_unix + jittered(spec.refresh_s, rng);
        } else {
            ++s.failures;
            const int64_t backoff =
                std::min<int64_t>(spec.refresh_s, int64_t{60} << std::min(s.failures - 1, 20));
            next->due_unix = s.at_unix + jittered(backoff, rng);
        }
        if (f.outcome == ListFetch::Outcome::Updated) {
            LOG_INFO("list %s: fetched %s: %s", spec.name.c_str(), spec.url.c_str(),
                     f.message.c_str());
        } else if (ok) {
            LOG_INFO("list %s: %s is not modified", spec.name.c_str(), spec.url.c_str());
        } else {
            LOG_WARN("list %s: fetching %s %s (%s); the last good copy stays; next try in %lld s",
                     spec.name.c_str(), spec.url.c_str(), outcome_name(f.outcome),
                     f.message.c_str(), static_cast<long long>(next->due_unix - s.at_unix));
        }
        if (f.outcome == ListFetch::Outcome::Updated) {
            lock.unlock();
            on_updated_();
            lock.lock();
        }
    }
}

}  // namespace hallpass
