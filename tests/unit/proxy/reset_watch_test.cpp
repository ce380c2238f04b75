// reset_watch: a real TCP connection on loopback whose peer resets it is reported (with
// ECONNRESET) within a couple of intervals; a healthy one, a peer's clean close, or a stopped
// watch report nothing.
#include "hallpass/proxy/reset_watch.h"

#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>

#include "hallpass/base/event_handles.h"

using namespace hallpass;

namespace {

struct TcpPair {
    UniqueFd local, remote;  // local: the one watched; remote: its peer
    TcpPair() {
        UniqueFd listener(::socket(AF_INET, SOCK_STREAM, 0));
        REQUIRE(listener.get() >= 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        REQUIRE(::bind(listener.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
        REQUIRE(::listen(listener.get(), 1) == 0);
        socklen_t len = sizeof a;
        REQUIRE(::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&a), &len) == 0);
        remote.reset(::socket(AF_INET, SOCK_STREAM, 0));
        REQUIRE(::connect(remote.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
        local.reset(::accept(listener.get(), nullptr, nullptr));
        REQUIRE(local.get() >= 0);
    }
    void reset_remote() {
        linger lin{1, 0};
        ::setsockopt(remote.get(), SOL_SOCKET, SO_LINGER, &lin, sizeof lin);
        remote.reset();
    }
};

struct Rig final : ResetWatch::Owner {
    EventBasePtr base{event_base_new()};
    ResetWatch watch{base.get(), this};
    int calls = 0;
    int err = 0;
    void on_reset(ResetWatch& w, int e) override {
        ++calls;
        err = e;
        CHECK_FALSE(w.watching());
    }
    // Runs the loop for `ms` or until a report.
    void run(int ms) {
        auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
        while (calls == 0 && std::chrono::steady_clock::now() < end) {
            timeval tv{0, 20 * 1000};
            event_base_loopexit(base.get(), &tv);
            event_base_dispatch(base.get());
        }
    }
};

}  // namespace

TEST_CASE("reset_watch: a reset of the watched socket is reported once, with its error") {
    Rig rig;
    TcpPair p;
    REQUIRE(rig.watch.watch(p.local.get()));
    CHECK(rig.watch.watching());
    p.reset_remote();
    rig.run(3 * ResetWatch::kIntervalMs);
    CHECK(rig.calls == 1);
    CHECK(rig.err == ECONNRESET);
    rig.run(2 * ResetWatch::kIntervalMs);
    CHECK(rig.calls == 1);
}

TEST_CASE("reset_watch: a healthy socket or a clean close is not a reset") {
    Rig rig;
    TcpPair p;
    REQUIRE(rig.watch.watch(p.local.get()));
    rig.run(2 * ResetWatch::kIntervalMs + 100);
    CHECK(rig.calls == 0);
    p.remote.reset();  // FIN, not RST
    rig.run(2 * ResetWatch::kIntervalMs + 100);
    CHECK(rig.calls == 0);
    CHECK(rig.watch.watching());
}

TEST_CASE("reset_watch: a stopped watch reports nothing") {
    Rig rig;
    TcpPair p;
    REQUIRE(rig.watch.watch(p.local.get()));
    rig.watch.stop();
    CHECK_FALSE(rig.watch.watching());
    p.reset_remote();
    rig.run(2 * ResetWatch::kIntervalMs + 100);
    CHECK(rig.calls == 0);
}
