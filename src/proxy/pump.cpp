// The pump loop: write what is in flight (the copy buffer first, then the pipe), then read more
// within high_water, the pipe's size and the limit, and again, at most kMaxRounds times per
// callback so that a fast pair of sockets cannot keep the loop from every other connection.
#include "hallpass/proxy/pump.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

namespace hallpass {
namespace {

constexpr int kMaxRounds = 16;
// Bytes per read when copying (one readv into reserved buffer space).
constexpr size_t kCopyStep = 256 * 1024;

void event_cb(evutil_socket_t, short, void* arg) { static_cast<Pump*>(arg)->on_event(); }

bool would_block(int err) { return err == EAGAIN || err == EWOULDBLOCK || err == EINTR; }

// Reads up to `room` bytes from `fd` into `buf`: >0 bytes read, 0 EOF, -1 errno set.
ssize_t read_into(evbuffer* buf, int fd, size_t room) {
    const size_t want = std::min(room, kCopyStep);
    evbuffer_iovec vec[2];
    int n = evbuffer_reserve_space(buf, static_cast<ev_ssize_t>(want), vec, 2);
    if (n <= 0) {
        errno = ENOMEM;
        return -1;
    }
    iovec iov[2];
    size_t left = want;
    for (int i = 0; i < n; ++i) {
        iov[i] = {vec[i].iov_base, std::min(vec[i].iov_len, left)};
        left -= iov[i].iov_len;
    }
    ssize_t r = ::readv(fd, iov, n);
    if (r <= 0) {
        int err = errno;
        evbuffer_commit_space(buf, vec, 0);
        errno = err;
        return r;
    }
    size_t got = static_cast<size_t>(r);
    int used = 0;
    for (; used < n && got > 0; ++used) {
        vec[used].iov_len = std::min(iov[used].iov_len, got);
        got -= vec[used].iov_len;
    }
    evbuffer_commit_space(buf, vec, used);
    return r;
}

}  // namespace

int64_t loop_now_ms(event_base* base) {
    timeval tv{};
    event_base_gettimeofday_cached(base, &tv);
    return static_cast<int64_t>(tv.tv_sec) * 1000 + tv.tv_usec / 1000;
}

Pump::Pump(event_base* base, int source_fd, int sink_fd, size_t high_water, PipePool* pipes,
           Owner* owner, uint64_t limit)
    : base_(base),
      source_(source_fd),
      sink_(sink_fd),
      high_water_(std::max<size_t>(high_water, 1)),
      pipes_(pipes),
      owner_(owner),
      remaining_(limit),
      reset_watch_(base, this) {}

Pump::~Pump() { release_pipe(false); }

bool Pump::ensure_copy() {
    if (!copy_) copy_.reset(evbuffer_new());
    return copy_ != nullptr;
}

size_t Pump::pending() const { return in_pipe_ + (copy_ ? evbuffer_get_length(copy_.get()) : 0); }

bool Pump::preload(evbuffer* from) {
    if (evbuffer_get_length(from) == 0) return true;
    return ensure_copy() && evbuffer_add_buffer(copy_.get(), from) == 0;
}

bool Pump::preload_source(evbuffer* from) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(evbuffer_get_length(from), remaining_));
    if (n == 0) return true;
    if (!ensure_copy() || evbuffer_remove_buffer(from, copy_.get(), n) != static_cast<int>(n))
        return false;
    moved_ += n;
    if (remaining_ != kNoLimit) remaining_ -= n;
    return true;
}

bool Pump::start() {
    // The write event is made when a write first waits (an idle tunnel never needs it).
    read_ev_.reset(event_new(base_, source_, EV_READ | EV_PERSIST, event_cb, this));
    if (!read_ev_) return false;
    touch();
    step();
    return true;
}

void Pump::stop() {
    if (read_ev_) event_del(read_ev_.get());
    if (write_ev_) event_del(write_ev_.get());
    reset_watch_.stop();
    reading_ = writing_ = false;
}

void Pump::touch() { last_activity_ms_ = loop_now_ms(base_); }

void Pump::set_reading(bool on) {
    if (reading_ == on) return;
    reading_ = on;
    if (on) {
        event_add(read_ev_.get(), nullptr);
    } else {
        event_del(read_ev_.get());
    }
}

bool Pump::set_writing(bool on) {
    if (writing_ == on) return true;
    if (on && !write_ev_) {
        write_ev_.reset(event_new(base_, sink_, EV_WRITE | EV_PERSIST, event_cb, this));
        if (!write_ev_) return false;
    }
    writing_ = on;
    if (on) {
        event_add(write_ev_.get(), nullptr);
    } else {
        event_del(write_ev_.get());
    }
    return true;
}

void Pump::release_pipe(bool clean) {
    if (!pipe_) return;
    if (clean && in_pipe_ == 0) {
        pipes_->give(*pipe_);
    } else {
        pipes_->discard(*pipe_);
    }
    pipe_.reset();
    in_pipe_ = 0;
}

// Writes what is in flight: the copy buffer first (it was filled before any pipe was taken, or
// after splice was refused), then the pipe.
Pump::Io Pump::flush() {
    while (copy_ && evbuffer_get_length(copy_.get()) > 0) {
        int n = evbuffer_write(copy_.get(), sink_);
        if (n > 0) continue;
        if (n < 0 && errno == EINTR) continue;
        return n < 0 && would_block(errno) ? Io::Again : Io::Error;
    }
    while (in_pipe_ > 0) {
        ssize_t n = ::splice(pipe_->read_fd, nullptr, sink_, nullptr, in_pipe_,
                             SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
        if (n > 0) {
            in_pipe_ -= static_cast<size_t>(n);
            spliced_ += static_cast<uint64_t>(n);
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        return n < 0 && would_block(errno) ? Io::Again : Io::Error;
    }
    return Io::Progress;
}

// Reads up to `room` bytes from the source: into a pipe when one can be had and nothing copied
// is waiting (order), else into the copy buffer.
Pump::Io Pump::fill(size_t room) {
    const bool copy_waiting = copy_ && evbuffer_get_length(copy_.get()) > 0;
    if (can_splice_ && pipes_ && !copy_waiting) {
        if (!pipe_) pipe_ = pipes_->take();
        if (pipe_) {
            size_t want = std::min(room, pipe_->capacity - in_pipe_);
            if (want == 0) return Io::Again;
            ssize_t n = ::splice(source_, nullptr, pipe_->write_fd, nullptr, want,
                                 SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
            if (n > 0) {
                in_pipe_ += static_cast<size_t>(n);
                moved_ += static_cast<uint64_t>(n);
                if (remaining_ != kNoLimit) remaining_ -= static_cast<uint64_t>(n);
                return Io::Progress;
            }
            if (n == 0) return Io::Eof;
            if (would_block(errno)) {
                if (in_pipe_ == 0) release_pipe(true);  // idle: hold no pipe
                return Io::Again;
            }
            if (errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP) return Io::Error;
            can_splice_ = false;  // this socket cannot be spliced: copy from now on
            if (in_pipe_ > 0) return Io::Again;  // the pipe is written first (order)
            release_pipe(true);
        }
    }
    if (in_pipe_ > 0) return Io::Again;  // bytes in the pipe go first
    if (!ensure_copy()) {
        errno = ENOMEM;
        return Io::Error;
    }
    ssize_t n = read_into(copy_.get(), source_, room);
    if (n > 0) {
        moved_ += static_cast<uint64_t>(n);
        if (remaining_ != kNoLimit) remaining_ -= static_cast<uint64_t>(n);
        return Io::Progress;
    }
    if (n == 0) return Io::Eof;
    return would_block(errno) ? Io::Again : Io::Error;
}

void Pump::pause() {
    if (paused_) return;
    paused_ = true;
    set_reading(false);
    reset_watch_.watch(source_);  // out of memory: the owner's timeouts still apply
}

Pump::Step Pump::end(Step how) {
    if (ended_) return how;
    ended_ = true;
    stop();
    if (how == Step::Done || how == Step::Eof) release_pipe(true);
    owner_->on_pump_end(*this, how);  // may destroy this pump
    return how;
}

Pump::Step Pump::step() {
    if (ended_) return Step::Done;
    for (int round = 0; round < kMaxRounds; ++round) {
        if (pending() > 0) {
            if (flush() == Io::Error) return end(Step::SinkError);
            if (pending() > 0) {
                if (!set_writing(true)) return end(Step::SinkError);  // out of memory
            } else {
                set_writing(false);
                release_pipe(true);
            }
        }
        if (eof_ || remaining_ == 0) {
            if (pending() > 0) return Step::Paused;  // the write event comes back here
            if (remaining_ == 0) return end(Step::Done);
            if (shutdown_on_eof_) ::shutdown(sink_, SHUT_WR);
            return end(Step::Eof);
        }
        // In flight at most high_water bytes, never more than the pipe holds, and never more
        // than the limit.
        const size_t limit = pipe_ ? std::min(high_water_, pipe_->capacity) : high_water_;
        const size_t in_flight = pending();
        if (in_flight >= limit) {
            pause();
            return Step::Paused;
        }
        if (paused_) {
            paused_ = false;
            reset_watch_.stop();
        }
        const size_t room = static_cast<size_t>(std::min<uint64_t>(limit - in_flight, remaining_));
        switch (fill(room)) {
            case Io::Progress:
                touch();
                continue;
            case Io::Again:
                // Idle until the source has more: an empty copy buffer is not kept (an idle
                // tunnel should cost little).
                if (pending() == 0) copy_.reset();
                set_reading(true);
                return Step::NeedMore;
            case Io::Eof:
                touch();
                eof_ = true;
                set_reading(false);
                continue;  // write what is left, then end
            case Io::Error:
                return end(Step::SourceError);
        }
    }
    // Out of rounds. Bytes read but not written yet: the write event brings us back (the source
    // may have nothing more to send). And while the source may send more, its read event too
    // (level-triggered; it is also what reports the source's reset).
    if (pending() > 0 && !set_writing(true)) return end(Step::SinkError);
    if (!eof_ && remaining_ > 0) set_reading(true);
    return pending() > 0 ? Step::Paused : Step::NeedMore;
}

void Pump::on_event() { step(); }

// The source's reset, seen while its reading was paused.
void Pump::on_reset(ResetWatch&, int) { end(Step::SourceError); }

}  // namespace hallpass
