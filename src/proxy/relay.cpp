// Tunnel relay on the raw sockets: per direction, splice(2) socket -> pipe -> socket, or readv
// into a buffer of its own and writev out of it; backpressure by counting what is in flight, and
// half-close per direction. The tunnel ends only when both directions are closed, or on an
// error; never on the first EOF, since the other side may still be sending (RFC 9110 §9.3.6).
#include "hallpass/proxy/relay.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

namespace hallpass {
namespace {

void read_cb(evutil_socket_t, short, void* arg);
void write_cb(evutil_socket_t, short, void* arg);

void paused_check_cb(evutil_socket_t, short, void* arg) {
    static_cast<Relay*>(arg)->on_paused_check();
}

constexpr int kPausedCheckMs = 500;
// Rounds (read then write) per callback: a fast pair of sockets must not keep the loop from
// every other connection.
constexpr int kMaxRounds = 16;
// Bytes per read when copying (one readv into reserved buffer space).
constexpr size_t kCopyStep = 256 * 1024;

// Reads up to `room` bytes from `fd` into `buf`: >0 bytes read, 0 EOF, -1 errno set.
ssize_t read_into(evbuffer* buf, int fd, size_t room) {
    evbuffer_iovec vec[2];
    int n = evbuffer_reserve_space(buf, static_cast<ev_ssize_t>(std::min(room, kCopyStep)), vec, 2);
    if (n <= 0) {
        errno = ENOMEM;
        return -1;
    }
    size_t want = std::min(room, kCopyStep);
    iovec iov[2];
    for (int i = 0; i < n; ++i) {
        iov[i] = {vec[i].iov_base, std::min(vec[i].iov_len, want)};
        want -= iov[i].iov_len;
    }
    ssize_t r = ::readv(fd, iov, n);
    if (r <= 0) {
        int err = errno;
        evbuffer_commit_space(buf, vec, 0);
        errno = err;
        return r;
    }
    size_t left = static_cast<size_t>(r);
    int used = 0;
    for (; used < n && left > 0; ++used) {
        vec[used].iov_len = std::min(iov[used].iov_len, left);
        left -= vec[used].iov_len;
    }
    evbuffer_commit_space(buf, vec, used);
    return r;
}


}  // namespace

int64_t loop_now_ms(bufferevent* bev) {
    timeval tv{};
    event_base_gettimeofday_cached(bufferevent_get_base(bev), &tv);
    return static_cast<int64_t>(tv.tv_sec) * 1000 + tv.tv_usec / 1000;
}

size_t read_more(bufferevent* bev, size_t room) {
    constexpr size_t kMaxStep = 256 * 1024;
    constexpr size_t kLibeventRead = 4096;  // libevent 2.1's EVBUFFER_MAX_READ
    evbuffer* in = bufferevent_get_input(bev);
    // Only when libevent's last read was capped is more likely waiting; and reserve only what
    // the socket holds: an idle tunnel must not keep an empty 256 KiB chain per side.
    if (evbuffer_get_length(in) < kLibeventRead || room < 16 * 1024) return 0;
    int pending = 0;
    if (ioctl(bufferevent_getfd(bev), FIONREAD, &pending) != 0 || pending < 16 * 1024) return 0;
    size_t want = std::min({room, kMaxStep, static_cast<size_t>(pending)});
    // bufferevent_socket keeps the end of its input frozen between its own reads.
    evbuffer_unfreeze(in, 0);
    evbuffer_iovec vec[2];
    int n = evbuffer_reserve_space(in, static_cast<ev_ssize_t>(want), vec, 2);
    size_t got = 0;
    if (n > 0) {
        iovec iov[2];
        for (int i = 0; i < n; ++i) iov[i] = {vec[i].iov_base, vec[i].iov_len};
        ssize_t r = ::readv(bufferevent_getfd(bev), iov, n);
        if (r > 0) {
            got = static_cast<size_t>(r);
            size_t left = got;
            int used = 0;
            for (; used < n && left > 0; ++used) {
                vec[used].iov_len = std::min(vec[used].iov_len, left);
                left -= vec[used].iov_len;
            }
            evbuffer_commit_space(in, vec, used);
        } else {
            evbuffer_commit_space(in, vec, 0);
        }
    }
    evbuffer_freeze(in, 0);
    return got;
}

size_t Relay::Direction::pending() const {
    return in_pipe + (copy ? evbuffer_get_length(copy.get()) : 0);
}

Relay::Relay(bufferevent* client, bufferevent* upstream, size_t high_water, PipePool* pipes,
             Owner* owner)
    : bev_{client, upstream},
      high_water_(std::max<size_t>(high_water, 1)),
      pipes_(pipes),
      owner_(owner),
      refs_{{this, Side::Client}, {this, Side::Upstream}} {
    dirs_[0].from = 0;
    dirs_[1].from = 1;
}

Relay::~Relay() {
    for (Direction& d : dirs_) release_pipe(d, false);
}

namespace {

void read_cb(evutil_socket_t, short, void* arg) {
    auto* ref = static_cast<Relay::SideRef*>(arg);
    ref->relay->on_readable(ref->side);
}

void write_cb(evutil_socket_t, short, void* arg) {
    auto* ref = static_cast<Relay::SideRef*>(arg);
    ref->relay->on_writable(ref->side);
}

}  // namespace

void Relay::start() {
    started_ = true;
    touch();
    event_base* base = bufferevent_get_base(bev_[0]);
    for (int side = 0; side < 2; ++side) {
        bufferevent_disable(bev_[side], EV_READ | EV_WRITE);
        bufferevent_setcb(bev_[side], nullptr, nullptr, nullptr, nullptr);
        bufferevent_set_timeouts(bev_[side], nullptr, nullptr);
        fd_[side] = static_cast<int>(bufferevent_getfd(bev_[side]));
        dirs_[side].copy.reset(evbuffer_new());
        read_ev_[side].reset(
            event_new(base, fd_[side], EV_READ | EV_PERSIST, read_cb, &refs_[side]));
        write_ev_[side].reset(
            event_new(base, fd_[side], EV_WRITE | EV_PERSIST, write_cb, &refs_[side]));
        if (!dirs_[side].copy || !read_ev_[side] || !write_ev_[side]) {
            done("out of memory", true);
            return;
        }
    }
    // What the bufferevents still hold goes first, in order: towards each side, what was queued
    // for it (the client's "200 Connection established"), then what the other side had sent
    // (a TLS ClientHello pipelined behind the CONNECT head).
    for (int to = 0; to < 2; ++to) {
        Direction& d = dirs_[1 - to];
        // bufferevent_socket keeps the start of its output frozen while it owns the socket.
        evbuffer* queued = bufferevent_get_output(bev_[to]);
        evbuffer_unfreeze(queued, 1);
        evbuffer_add_buffer(d.copy.get(), queued);
        evbuffer_freeze(queued, 1);
        evbuffer* early = bufferevent_get_input(bev_[d.from]);
        if (d.from == 1) d.moved += evbuffer_get_length(early);  // the owner counts the client's
        evbuffer_add_buffer(d.copy.get(), early);
    }
    pump(dirs_[0]);
    if (!done_) pump(dirs_[1]);
}

void Relay::stop() {
    for (int side = 0; side < 2; ++side) {
        if (read_ev_[side]) event_del(read_ev_[side].get());
        if (write_ev_[side]) event_del(write_ev_[side].get());
        reading_[side] = writing_[side] = false;
    }
    if (paused_check_) event_del(paused_check_.get());
}

const char* Relay::side_error(int side) {
    return side == 0 ? "client connection error" : "upstream connection error";
}

void Relay::set_reading(int side, bool on) {
    if (reading_[side] == on) return;
    reading_[side] = on;
    if (on) {
        event_add(read_ev_[side].get(), nullptr);
    } else {
        event_del(read_ev_[side].get());
    }
}

void Relay::set_writing(int side, bool on) {
    if (writing_[side] == on) return;
    writing_[side] = on;
    if (on) {
        event_add(write_ev_[side].get(), nullptr);
    } else {
        event_del(write_ev_[side].get());
    }
}

void Relay::release_pipe(Direction& d, bool clean) {
    if (!d.pipe) return;
    if (clean && d.in_pipe == 0) {
        pipes_->give(*d.pipe);
    } else {
        pipes_->discard(*d.pipe);
    }
    d.pipe.reset();
    d.in_pipe = 0;
}

// Writes what is in flight towards the other side: the copy buffer first (it was filled before
// any pipe was taken, or after splice was refused), then the pipe.
Relay::Io Relay::flush(Direction& d) {
    const int to_fd = fd_[1 - d.from];
    while (evbuffer_get_length(d.copy.get()) > 0) {
        int n = evbuffer_write(d.copy.get(), to_fd);
        if (n > 0) continue;
        if (n < 0 && errno == EINTR) continue;
        return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) ? Io::Again : Io::Error;
    }
    while (d.in_pipe > 0) {
        ssize_t n = ::splice(d.pipe->read_fd, nullptr, to_fd, nullptr, d.in_pipe,
                             SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
        if (n > 0) {
            d.in_pipe -= static_cast<size_t>(n);
            spliced_ += static_cast<uint64_t>(n);
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) ? Io::Again : Io::Error;
    }
    return Io::Progress;
}

// Reads up to `room` bytes from `from`: into a pipe when one can be had and nothing copied is
// waiting (order), else into the copy buffer.
Relay::Io Relay::fill(Direction& d, size_t room) {
    const int from_fd = fd_[d.from];
    if (d.can_splice && pipes_ && evbuffer_get_length(d.copy.get()) == 0) {
        if (!d.pipe) d.pipe = pipes_->take();
        if (d.pipe) {
            size_t want = std::min(room, d.pipe->capacity - d.in_pipe);
            if (want == 0) return Io::Again;  // the caller pauses: the pipe is full
            ssize_t n = ::splice(from_fd, nullptr, d.pipe->write_fd, nullptr, want,
                                 SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
            if (n > 0) {
                d.in_pipe += static_cast<size_t>(n);
                d.moved += static_cast<uint64_t>(n);
                return Io::Progress;
            }
            if (n == 0) return Io::Eof;
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
                if (d.in_pipe == 0) release_pipe(d, true);  // idle: hold no pipe
                return Io::Again;
            }
            if (errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP) return Io::Error;
            // This socket cannot be spliced: copy from now on.
            d.can_splice = false;
            if (d.in_pipe > 0) return Io::Again;  // flush the pipe first (order)
            release_pipe(d, true);
        }
    }
    if (d.in_pipe > 0) return Io::Again;  // bytes in the pipe go first
    ssize_t n = read_into(d.copy.get(), from_fd, room);
    if (n > 0) {
        d.moved += static_cast<uint64_t>(n);
        return Io::Progress;
    }
    if (n == 0) return Io::Eof;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return Io::Again;
    return Io::Error;
}

void Relay::pump(Direction& d) {
    const int from = d.from;
    const int to = 1 - from;
    for (int round = 0; round < kMaxRounds && !done_; ++round) {
        if (d.pending() > 0) {
            Io w = flush(d);
            if (w == Io::Error) return done(side_error(to), true);
            if (d.pending() > 0) {
                set_writing(to, true);
            } else {
                set_writing(to, false);
                release_pipe(d, true);
            }
        }
        if (d.eof) {
            if (d.pending() == 0 && !d.shut) {
                d.shut = true;
                ::shutdown(fd_[to], SHUT_WR);
                if (dirs_[0].shut && dirs_[1].shut) done("closed", false);
            }
            return;
        }
        // In flight at most high_water bytes, and never more than the pipe holds.
        const size_t limit = d.pipe ? std::min(high_water_, d.pipe->capacity) : high_water_;
        const size_t pending = d.pending();
        if (pending >= limit) {
            // The receiving side is slow: stop taking bytes until what is in flight is written.
            if (!d.paused) {
                d.paused = true;
                set_reading(from, false);
                if (!paused_check_) {
                    paused_check_.reset(event_new(bufferevent_get_base(bev_[0]), -1, EV_PERSIST,
                                                  paused_check_cb, this));
                }
                if (paused_check_ && !event_pending(paused_check_.get(), EV_TIMEOUT, nullptr)) {
                    timeval tv{0, kPausedCheckMs * 1000};
                    event_add(paused_check_.get(), &tv);
                }
            }
            return;
        }
        d.paused = false;
        Io r = fill(d, limit - pending);
        switch (r) {
            case Io::Progress:
                touch();
                continue;
            case Io::Again:
                set_reading(from, true);  // nothing more to read now
                return;
            case Io::Eof:
                touch();
                d.eof = true;
                set_reading(from, false);
                continue;  // flush, then SHUT_WR
            case Io::Error:
                return done(side_error(from), true);
        }
    }
    // Out of rounds with bytes still coming: the read event (level-triggered) calls again.
    if (!done_ && !d.eof && !d.paused) set_reading(from, true);
}

void Relay::on_readable(Side side) { pump(dirs_[static_cast<int>(side)]); }

void Relay::on_writable(Side side) {
    touch();
    pump(dirs_[1 - static_cast<int>(side)]);
}

// A side whose reads are paused (its peer is slow to take the bytes) has no read pending, so
// epoll would not report its reset until the peer drains; check its socket error meanwhile.
void Relay::on_paused_check() {
    for (const Direction& d : dirs_) {
        if (!d.paused) continue;
        int err = 0;
        socklen_t len = sizeof err;
        if (getsockopt(fd_[d.from], SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err) {
            done(side_error(d.from), true);
            return;
        }
    }
    if (!dirs_[0].paused && !dirs_[1].paused) event_del(paused_check_.get());
}

void Relay::touch() { last_activity_ms_ = loop_now_ms(bev_[0]); }

void Relay::done(const char* reason, bool error) {
    if (done_) return;
    done_ = true;
    stop();
    owner_->on_relay_done(reason, error);
}

}  // namespace hallpass
