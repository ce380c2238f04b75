// pacer: rests after each burst the thread did not get the CPU for (here forced with the
// threshold, since a test cannot rely on the machine being busy or idle), never without that,
// and not after hurry().
#include "hallpass/rules/pacer.h"

#include <doctest/doctest.h>

#include <chrono>

using namespace hallpass;
using Clock = std::chrono::steady_clock;

namespace {

// Calls pace() for `work` of busy work; returns the wall time it took.
std::chrono::milliseconds busy_for(Pacer& pacer, std::chrono::milliseconds work) {
    const auto start = Clock::now();
    const auto end = start + work;
    volatile unsigned spin = 0;
    while (Clock::now() < end) {
        for (int i = 0; i < 200; ++i) spin = spin + 1;
        pacer.pace();
    }
    return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
}

}  // namespace

TEST_CASE("pacer: an inactive pacer and an uncontended one never rest") {
    Pacer off;
    busy_for(off, std::chrono::milliseconds(20));
    CHECK(off.rests() == 0);
    // contended_below 0: no burst counts as contended, whatever the machine does.
    Pacer never{
        Pacer::Options{std::chrono::microseconds(500), std::chrono::microseconds(1500), 0.0}};
    busy_for(never, std::chrono::milliseconds(20));
    CHECK(never.rests() == 0);
    CHECK(never.rested().count() == 0);
}

TEST_CASE("pacer: contended bursts are followed by rests; hurry() stops them") {
    // contended_below 2: every burst counts as contended (CPU time never reaches twice the wall
    // time), so every 0.5 ms burst is followed by a 1.5 ms rest.
    Pacer pacer{
        Pacer::Options{std::chrono::microseconds(500), std::chrono::microseconds(1500), 2.0}};
    busy_for(pacer, std::chrono::milliseconds(40));
    // 40 ms of wall time hold at most 20 burst+rest pairs, and at least a few.
    CHECK(pacer.rests() >= 5);
    CHECK(pacer.rests() <= 21);
    CHECK(pacer.rested().count() >= 5);
    const unsigned long before = pacer.rests();
    pacer.hurry();
    busy_for(pacer, std::chrono::milliseconds(20));
    CHECK(pacer.rests() == before);
}
