// pump: one direction between two socket pairs on a real event loop. A limit ends it with Done
// after exactly that many bytes (nothing more is read from the source); EOF ends it with Eof
// (and SHUT_WR when asked); preloaded bytes go first, those of the source counted; a sink that
// goes away is a SinkError.
#include "hallpass/proxy/pump.h"

#include <doctest/doctest.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

#include "hallpass/proxy/pipe_pool.h"

using namespace hallpass;

namespace {

struct Pair {
    int near_end = -1, far_end = -1;
    Pair() {
        int fds[2];
        REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds) == 0);
        near_end = fds[0];
        far_end = fds[1];
    }
    ~Pair() {
        if (near_end >= 0) ::close(near_end);
        if (far_end >= 0) ::close(far_end);
    }
};

// source.far_end -> [source.near_end  pump  sink.near_end] -> sink.far_end
struct Rig final : Pump::Owner {
    event_base* base = event_base_new();
    Pair source, sink;
    PipePool pipes{4, 64 * 1024};
    std::unique_ptr<Pump> pump;
    bool ended = false;
    Pump::Step how = Pump::Step::NeedMore;

    explicit Rig(uint64_t limit, bool splice = true) {
        pump = std::make_unique<Pump>(base, source.near_end, sink.near_end, 256 * 1024,
                                      splice ? &pipes : nullptr, this, limit);
    }
    ~Rig() {
        pump.reset();
        event_base_free(base);
    }
    void on_pump_end(Pump&, Pump::Step step) override {
        ended = true;
        how = step;
    }
    void spin(int n = 50) {
        for (int i = 0; i < n; ++i) event_base_loop(base, EVLOOP_NONBLOCK);
    }
    std::string drain_sink() {
        std::string got;
        char buf[65536];
        for (int idle = 0; idle < 200;) {
            spin(1);
            ssize_t r = ::recv(sink.far_end, buf, sizeof buf, 0);
            if (r > 0) {
                got.append(buf, static_cast<size_t>(r));
                idle = 0;
            } else {
                ++idle;
                if (r == 0) break;
            }
        }
        return got;
    }
};

}  // namespace

TEST_CASE("pump: a limit ends with Done after exactly that many bytes") {
    for (bool splice : {true, false}) {
        CAPTURE(splice);
        Rig rig(100000, splice);
        evbuffer* early = evbuffer_new();
        evbuffer_add(early, "HEAD|", 5);
        evbuffer* body_start = evbuffer_new();
        evbuffer_add(body_start, std::string(1000, 'b').data(), 1000);
        REQUIRE(rig.pump->preload(early));
        REQUIRE(rig.pump->preload_source(body_start));
        // The source sends more than the limit: what follows belongs to the next response.
        const std::string more = std::string(99000, 'c') + "NEXT";
        REQUIRE(::send(rig.source.far_end, more.data(), more.size(), 0) ==
                static_cast<ssize_t>(more.size()));
        REQUIRE(rig.pump->start());
        const std::string got = rig.drain_sink();
        CHECK(got == "HEAD|" + std::string(1000, 'b') + std::string(99000, 'c'));
        CHECK(rig.ended);
        CHECK(rig.how == Pump::Step::Done);
        CHECK(rig.pump->moved() == 100000);
        CHECK(rig.pump->remaining() == 0);
        char rest[8] = {};
        CHECK(::recv(rig.source.near_end, rest, sizeof rest, 0) == 4);  // left unread
        CHECK(std::string(rest, 4) == "NEXT");
        CHECK(rig.pipes.in_use() == 0);
        evbuffer_free(early);
        evbuffer_free(body_start);
    }
}

TEST_CASE("pump: EOF ends with Eof, and SHUT_WR towards the sink when asked") {
    Rig rig(Pump::kNoLimit);
    rig.pump->set_shutdown_on_eof(true);
    REQUIRE(rig.pump->start());
    REQUIRE(::send(rig.source.far_end, "bye", 3, 0) == 3);
    ::shutdown(rig.source.far_end, SHUT_WR);
    CHECK(rig.drain_sink() == "bye");  // ends at the sink's EOF
    CHECK(rig.ended);
    CHECK(rig.how == Pump::Step::Eof);
}

TEST_CASE("pump: a sink that went away is a SinkError") {
    ::signal(SIGPIPE, SIG_IGN);  // as hallpass's main() does
    Rig rig(Pump::kNoLimit);
    REQUIRE(rig.pump->start());
    ::close(rig.sink.far_end);
    rig.sink.far_end = -1;
    const std::string data(300000, 'd');
    ::send(rig.source.far_end, data.data(), data.size(), 0);
    for (int i = 0; i < 200 && !rig.ended; ++i) rig.spin(1);
    CHECK(rig.ended);
    CHECK(rig.how == Pump::Step::SinkError);
}

TEST_CASE("pump: out of rounds with bytes read but not written, the write event finishes it") {
    // Sixteen rounds of one pipe-full each: the last round reads the last bytes of the limit and
    // leaves them unwritten. Nothing more will come from the source; only the sink's write event
    // can finish the pump (it once waited for a read that never came).
    event_base* base = event_base_new();
    int source[2], sink[2];
    REQUIRE(::pipe2(source, O_NONBLOCK) == 0);
    REQUIRE(::pipe2(sink, O_NONBLOCK) == 0);
    REQUIRE(::fcntl(source[1], F_SETPIPE_SZ, 1 << 20) >= (1 << 20));
    REQUIRE(::fcntl(sink[1], F_SETPIPE_SZ, 1 << 20) >= (1 << 20));
    const size_t step = 64 * 1024;
    const std::string data(16 * step, 'r');
    REQUIRE(::write(source[1], data.data(), data.size()) == static_cast<ssize_t>(data.size()));
    struct Done final : Pump::Owner {
        bool ended = false;
        Pump::Step how = Pump::Step::NeedMore;
        void on_pump_end(Pump&, Pump::Step step) override {
            ended = true;
            how = step;
        }
    } owner;
    PipePool pipes(4, step);
    {
        auto probe = pipes.take();  // the pump's pipes hold one step each
        REQUIRE(probe);
        REQUIRE(probe->capacity == step);
        pipes.give(*probe);
    }
    {
        Pump pump(base, source[0], sink[1], 256 * 1024, &pipes, &owner, data.size());
        REQUIRE(pump.start());
        for (int i = 0; i < 20 && !owner.ended; ++i) event_base_loop(base, EVLOOP_NONBLOCK);
        CHECK(owner.ended);
        CHECK(owner.how == Pump::Step::Done);
        CHECK(pump.moved() == data.size());
    }
    int queued = 0;
    REQUIRE(::ioctl(sink[0], FIONREAD, &queued) == 0);
    CHECK(queued == static_cast<int>(data.size()));
    for (int fd : {source[0], source[1], sink[0], sink[1]}) ::close(fd);
    event_base_free(base);
}
