// relay: a tunnel between two socket pairs on a real event loop. Bytes arrive intact and in
// order both ways (spliced, copied, and with bytes the bufferevents held before the relay took
// over), EOF becomes a half-close, a receiver that does not read bounds what is in flight, an
// idle tunnel holds no pipe, and a reset ends it with an error.
#include "hallpass/proxy/relay.h"

#include <doctest/doctest.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <string>

#include "hallpass/proxy/pipe_pool.h"

using namespace hallpass;

namespace {

// A Relay between `client` and `upstream` bufferevents whose far ends (client_peer,
// upstream_peer) the test reads and writes with plain blocking-free calls.
struct Tunnel final : Relay::Owner {
    event_base* base = event_base_new();
    int client_peer = -1, upstream_peer = -1;
    bufferevent* client = nullptr;    // valid until relay->start()
    bufferevent* upstream = nullptr;  // valid until relay->start()
    std::unique_ptr<Relay> relay;
    bool ended = false;
    bool ended_in_error = false;
    std::string reason;

    Tunnel(PipePool* pipes, size_t high_water, int sndbuf = 0) {
        int a[2], b[2];
        REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, a) == 0);
        REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, b) == 0);
        if (sndbuf) {
            for (int fd : {a[0], a[1], b[0], b[1]}) {
                ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
                ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sndbuf, sizeof sndbuf);
            }
        }
        client_peer = a[1];
        upstream_peer = b[1];
        client = bufferevent_socket_new(base, a[0], BEV_OPT_CLOSE_ON_FREE);
        upstream = bufferevent_socket_new(base, b[0], BEV_OPT_CLOSE_ON_FREE);
        // The relay owns them (and frees them at start(), keeping their sockets).
        relay = std::make_unique<Relay>(BuffereventPtr(client), BuffereventPtr(upstream),
                                        high_water, pipes, this);
    }
    ~Tunnel() {
        relay.reset();
        ::close(client_peer);
        ::close(upstream_peer);
        event_base_free(base);
    }
    void on_relay_done(const char* why, bool error) override {
        ended = true;
        ended_in_error = error;
        reason = why;
    }
    void spin(int rounds = 20) {
        for (int i = 0; i < rounds; ++i) event_base_loop(base, EVLOOP_NONBLOCK);
    }
    // Writes all of `data` to `fd`, running the loop while the socket is full.
    void send(int fd, const std::string& data) {
        size_t off = 0;
        for (int guard = 0; off < data.size() && guard < 100000; ++guard) {
            ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
            if (n > 0) off += static_cast<size_t>(n);
            spin(1);
        }
        REQUIRE(off == data.size());
    }
    // Reads from `fd` until `n` bytes or EOF, running the loop meanwhile.
    std::string receive(int fd, size_t n) {
        std::string got;
        char buf[65536];
        for (int guard = 0; got.size() < n && guard < 100000; ++guard) {
            spin(1);
            ssize_t r = ::recv(fd, buf, sizeof buf, 0);
            if (r > 0) got.append(buf, static_cast<size_t>(r));
            if (r == 0) break;
        }
        return got;
    }
    // Sends `data` into `from` while reading `to` (both run alongside the relay's loop); returns
    // what `to` received once `expected` bytes arrived or nothing moves any more.
    std::string transfer(int from, int to, const std::string& data, size_t expected) {
        std::string got;
        char buf[65536];
        size_t off = 0;
        for (int idle = 0; got.size() < expected && idle < 2000;) {
            bool moved = false;
            if (off < data.size()) {
                ssize_t n = ::send(from, data.data() + off, data.size() - off, MSG_NOSIGNAL);
                if (n > 0) {
                    off += static_cast<size_t>(n);
                    moved = true;
                }
            }
            spin(1);
            ssize_t r = ::recv(to, buf, sizeof buf, 0);
            if (r > 0) {
                got.append(buf, static_cast<size_t>(r));
                moved = true;
            }
            if (r == 0) break;
            idle = moved ? 0 : idle + 1;
        }
        return got;
    }
    bool at_eof(int fd) {
        char c;
        for (int guard = 0; guard < 1000; ++guard) {
            spin(1);
            ssize_t r = ::recv(fd, &c, 1, 0);
            if (r == 0) return true;
            if (r > 0) return false;
        }
        return false;
    }
};

std::string pattern(size_t n, unsigned seed) {
    std::string s(n, '\0');
    unsigned x = seed;
    for (char& c : s) {
        x = x * 1103515245u + 12345u;
        c = static_cast<char>(x >> 16);
    }
    return s;
}

}  // namespace

TEST_CASE("relay: bytes both ways, intact and in order, spliced or copied") {
    for (bool splice : {true, false}) {
        CAPTURE(splice);
        PipePool pipes(4, 64 * 1024);
        Tunnel t(splice ? &pipes : nullptr, 256 * 1024);
        // Bytes the bufferevents hold before the relay starts go first: the answer queued for
        // the client, and what the client sent behind its CONNECT head.
        bufferevent_write(t.client, "HTTP/1.1 200 OK\r\n\r\n", 19);
        REQUIRE(::send(t.client_peer, "hello", 5, 0) == 5);
        t.spin();
        evbuffer* early = bufferevent_get_input(t.client);
        for (int i = 0; i < 100 && evbuffer_get_length(early) < 5; ++i) {
            bufferevent_enable(t.client, EV_READ);
            t.spin(1);
        }
        bufferevent_disable(t.client, EV_READ);
        REQUIRE(evbuffer_get_length(early) == 5);
        t.relay->start();

        const std::string up = pattern(3 << 20, 1), down = pattern(5 << 20, 2);
        CHECK(t.transfer(t.client_peer, t.upstream_peer, up, 5 + up.size()) == "hello" + up);
        CHECK(t.transfer(t.upstream_peer, t.client_peer, down, 19 + down.size()) ==
              "HTTP/1.1 200 OK\r\n\r\n" + down);
        CHECK(t.relay->bytes_from_client() == up.size());  // "hello" is the owner's to count
        CHECK(t.relay->bytes_to_client() == down.size());
        if (splice) {
            CHECK(t.relay->bytes_spliced() >= up.size() + down.size() - 2 * 256 * 1024);
        } else {
            CHECK(t.relay->bytes_spliced() == 0);
        }
        CHECK_FALSE(t.ended);
        // Idle again: every pipe is back in the pool.
        CHECK(pipes.in_use() == 0);
    }
}

TEST_CASE("relay: EOF from one side is a half-close; both closed ends the tunnel cleanly") {
    PipePool pipes(4, 64 * 1024);
    Tunnel t(&pipes, 256 * 1024);
    t.relay->start();
    t.send(t.client_peer, "last words");
    ::shutdown(t.client_peer, SHUT_WR);
    CHECK(t.receive(t.upstream_peer, 10) == "last words");
    CHECK(t.at_eof(t.upstream_peer));
    CHECK_FALSE(t.ended);
    // The other direction still works after the half-close.
    t.send(t.upstream_peer, "reply");
    CHECK(t.receive(t.client_peer, 5) == "reply");
    ::shutdown(t.upstream_peer, SHUT_WR);
    CHECK(t.at_eof(t.client_peer));
    CHECK(t.ended);
    CHECK_FALSE(t.ended_in_error);
    CHECK(t.reason == "closed");
}

TEST_CASE("relay: a receiver that does not read bounds the bytes in flight") {
    for (bool splice : {true, false}) {
        CAPTURE(splice);
        PipePool pipes(4, 64 * 1024);
        const size_t high_water = 64 * 1024;
        Tunnel t(splice ? &pipes : nullptr, high_water, 16 * 1024);
        t.relay->start();
        // The client sends far more than the upstream side takes; the relay must stop reading.
        const std::string flood = pattern(8 << 20, 3);
        size_t sent = 0;
        for (int i = 0; i < 2000; ++i) {
            ssize_t n = ::send(t.client_peer, flood.data() + sent,
                               std::min<size_t>(flood.size() - sent, 65536), MSG_NOSIGNAL);
            if (n > 0) sent += static_cast<size_t>(n);
            t.spin(1);
        }
        // What left the client: in the relay (<= high_water), and in the kernel's socket
        // buffers of the two pairs; nowhere near the 8 MiB offered.
        MESSAGE("accepted from the client: " << sent << " bytes");
        CHECK(sent < 2 * 1024 * 1024);
        CHECK(sent < flood.size());
        // Once the upstream reads, everything arrives in order.
        const std::string got = t.receive(t.upstream_peer, sent);
        CHECK(got == flood.substr(0, sent));
        CHECK_FALSE(t.ended);
    }
}

TEST_CASE("relay: with the pool exhausted, tunnels copy; a reset ends the tunnel in error") {
    PipePool pipes(0, 64 * 1024);  // none to be had
    Tunnel t(&pipes, 256 * 1024);
    t.relay->start();
    const std::string data = pattern(1 << 20, 4);
    CHECK(t.transfer(t.client_peer, t.upstream_peer, data, data.size()) == data);
    CHECK(t.relay->bytes_spliced() == 0);
    // The upstream resets: closing a unix socket with unread data is its reset (the other end
    // sees ECONNRESET).
    REQUIRE(::send(t.client_peer, "x", 1, 0) == 1);
    t.spin();
    ::close(t.upstream_peer);  // with the "x" unread
    t.upstream_peer = ::open("/dev/null", O_RDONLY);  // keeps the destructor's close harmless
    for (int i = 0; i < 200 && !t.ended; ++i) t.spin(1);
    CHECK(t.ended);
    CHECK(t.ended_in_error);
    CHECK(t.reason == "upstream connection error");
}
