// Keeps lists by URL current: a thread that fetches each list when its copy is older than its
// refresh interval (at start-up at once when there is no copy), with random jitter so that many
// boxes do not ask at the same second, and after a failure again with exponential back-off (a
// minute, doubling, at most the refresh interval). A good new copy is announced through
// `on_updated` (the server asks its reloader: the same atomic path as SIGHUP).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "hallpass/rules/list_fetch.h"
#include "hallpass/rules/rules_loader.h"

namespace hallpass {

class ListUpdater {
  public:
    // `lists`: those with a url (others are ignored). The thread runs even without any, so that
    // a reload that adds one (set_lists) is served.
    ListUpdater(std::vector<ListSpec> lists, std::function<void()> on_updated);
    // The lists of a reloaded configuration: a list kept by name keeps its schedule and status
    // (its settings are the new ones), a new one is fetched at once when it has no copy, a
    // removed one is no longer fetched. Any thread.
    void set_lists(std::vector<ListSpec> lists);
    ~ListUpdater();  // stop()
    // Stops the thread (a fetch in progress ends within its timeout) and joins it: on_updated is
    // not called after this returns. set_lists and status stay safe to call.
    void stop();
    ListUpdater(const ListUpdater&) = delete;
    ListUpdater& operator=(const ListUpdater&) = delete;

    // The last fetch of each list, for the statistics: name, outcome, message, unix time.
    struct Status {
        std::string name;
        std::string url;
        ListFetch::Outcome outcome = ListFetch::Outcome::Failed;
        std::string message;  // "" before the first fetch
        int64_t at_unix = 0;
        int failures = 0;  // in a row
        int64_t copy_unix = 0;  // when the kept copy was last confirmed (0: no copy)
    };
    std::vector<Status> status() const;

  private:
    void run();
    struct Entry;
    Entry make_entry(ListSpec spec);

    struct Entry {
        ListSpec spec;
        int64_t due_unix = 0;
        Status status;
    };
    uint64_t generation_ = 0;  // bumped by set_lists: a fetch in flight for a dropped list is moot
    std::vector<Entry> lists_;
    std::function<void()> on_updated_;
    mutable std::mutex mu_;
    std::condition_variable cv_;
    bool stop_ = false;
    std::thread thread_;
};

}  // namespace hallpass
