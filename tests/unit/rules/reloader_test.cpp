// reloader: a reload runs at SCHED_IDLE (nice 19 underneath) and publishes the new rules; a
// reload still running after the idle grace is raised to SCHED_OTHER at nice 19; a broken file
// keeps the old rules.
#include "hallpass/rules/reloader.h"

#include <doctest/doctest.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <thread>

#include "hallpass/rules/rule_store.h"
#include "hallpass/rules/rules_file.h"
#include "temp_dir.h"

using namespace hallpass;
using hallpass::test::TempDir;

namespace {

// What the reload thread looked like when it reported its result.
struct Seen {
    std::atomic<int> results{0};
    std::atomic<bool> ok{false};
    std::atomic<int> policy{-1};
    std::atomic<int> nice{-100};
};

Reloader::ResultCallback record(Seen& seen) {
    return [&seen](bool ok, const std::string&) {
        seen.policy = sched_getscheduler(0);
        seen.nice = getpriority(PRIO_PROCESS, 0);  // the calling thread on Linux
        seen.ok = ok;
        ++seen.results;
    };
}

bool wait_for_results(const Seen& seen, int n) {
    for (int i = 0; i < 3000 && seen.results < n; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return seen.results >= n;
}

// Threads of this process whose scheduling policy is `policy` (/proc/self/task/*/stat field 41).
int threads_with_policy(int policy) {
    int n = 0;
    for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
        std::ifstream in(task.path() / "stat");
        std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        std::istringstream fields(stat.substr(stat.rfind(')') + 2));  // after "pid (comm) "
        std::string field;
        for (int i = 3; i <= 41 && fields >> field; ++i) {
            if (i == 41 && std::stoi(field) == policy) ++n;
        }
    }
    return n;
}

std::string block_rule(const char* domain) {
    return std::string("default: allow\nrules:\n  - name: r\n    action: block\n    domains: [") +
           domain + "]\n";
}

}  // namespace

TEST_CASE("reloader: a reload runs at SCHED_IDLE and publishes the new rules") {
    TempDir dir("hallpass-reloader");
    const std::string path = (dir.path / "rules.yaml").string();
    std::ofstream(path) << block_rule("a.example");
    auto first = load_rules_file(path);
    REQUIRE(first.ok());
    RuleStore store(std::move(first->rules));  // the store holds the only reference
    Seen seen;
    std::atomic<int> published{0};
    Reloader reloader(
        path, store, [&published] { ++published; }, record(seen));

    std::ofstream(path) << block_rule("b.example");
    reloader.request();
    REQUIRE(wait_for_results(seen, 1));
    CHECK(seen.ok);
    CHECK(seen.policy == SCHED_IDLE);
    CHECK(seen.nice == 19);
    CHECK(published == 1);
    CHECK(reloader.succeeded() == 1);
    const RequestFacts facts{*IpAddr::parse("10.0.0.1"), "b.example", HostKind::Name, 80, ""};
    CHECK(store.current()->decide(facts).action == Action::Block);

    // A broken file: the old rules stay, the failure is counted, still at SCHED_IDLE.
    std::ofstream(path) << "rules: [\n";
    reloader.request();
    REQUIRE(wait_for_results(seen, 2));
    CHECK_FALSE(seen.ok);
    CHECK(seen.policy == SCHED_IDLE);
    CHECK(reloader.failed() == 1);
    CHECK(store.current()->decide(facts).action == Action::Block);
}

TEST_CASE("reloader: a reload still running after the idle grace goes on at nice 19") {
    TempDir dir("hallpass-reloader");
    // A list big enough that its reload outlasts a grace of 0 ms by far (tens of ms).
    {
        std::ofstream list(dir.path / "big.txt");
        for (int i = 0; i < 200000; ++i) list << "host" << i << ".example.net\n";
    }
    const std::string path = (dir.path / "rules.yaml").string();
    std::ofstream(path) << "default: allow\nlists:\n  big: { file: big.txt }\nrules:\n"
                           "  - name: r\n    action: block\n    lists: [big]\n";
    RuleStore store(RuleSet::allow_all());
    Seen seen;
    Reloader reloader(path, store, {}, record(seen), std::chrono::milliseconds(0));
    reloader.request();
    REQUIRE(wait_for_results(seen, 1));
    CHECK(seen.ok);
    CHECK(seen.nice == 19);
    // Raising a thread out of SCHED_IDLE needs CAP_SYS_NICE or RLIMIT_NICE >= 1 (root here).
    rlimit nice_limit{};
    getrlimit(RLIMIT_NICE, &nice_limit);
    if (geteuid() == 0 || nice_limit.rlim_cur >= 1) {
        CHECK(seen.policy == SCHED_OTHER);
    } else {
        CHECK(seen.policy == SCHED_IDLE);
    }
    CHECK(reloader.succeeded() == 1);
    // After the raised reload, the thread goes back to SCHED_IDLE for the next one.
    bool back_to_idle = false;
    for (int i = 0; i < 100 && !back_to_idle; ++i) {
        back_to_idle = threads_with_policy(SCHED_IDLE) == 1;
        if (!back_to_idle) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    CHECK(back_to_idle);
}
