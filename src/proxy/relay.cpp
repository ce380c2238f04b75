// Tunnel relay: backpressure by hand (socket bufferevents have no write high watermark) and
// half-close per direction. The tunnel ends only when both directions are closed, or on an error;
// never on the first EOF, since the other side may still be sending (RFC 9110 §9.3.6).
#include "hallpass/proxy/relay.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>

namespace hallpass {
namespace {

// Two static trampolines per side, distinguished by which bufferevent called.
template <int Side>
void on_read_cb(bufferevent*, void* arg) {
    static_cast<Relay*>(arg)->on_readable(Side);
}
template <int Side>
void on_write_cb(bufferevent*, void* arg) {
    static_cast<Relay*>(arg)->on_writable(Side);
}
template <int Side>
void on_event_cb(bufferevent*, short what, void* arg) {
    static_cast<Relay*>(arg)->on_event(Side, what);
}

void paused_check_cb(evutil_socket_t, short, void* arg) {
    static_cast<Relay*>(arg)->on_paused_check();
}

constexpr int kPausedCheckMs = 500;

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

Relay::Relay(bufferevent* a, bufferevent* b, size_t high_water, Owner* owner)
    : bev_{a, b}, high_water_(high_water), owner_(owner) {}

Relay::~Relay() {
    if (paused_check_) event_free(paused_check_);
}

void Relay::start() {
    touch();
    bufferevent_setcb(bev_[0], on_read_cb<0>, on_write_cb<0>, on_event_cb<0>, this);
    bufferevent_setcb(bev_[1], on_read_cb<1>, on_write_cb<1>, on_event_cb<1>, this);
    for (bufferevent* bev : bev_) {
        bufferevent_setwatermark(bev, EV_READ, 0, 0);
        bufferevent_setwatermark(bev, EV_WRITE, 0, 0);
        bufferevent_set_timeouts(bev, nullptr, nullptr);
        bufferevent_enable(bev, EV_READ | EV_WRITE);
    }
    // Bytes that arrived with the CONNECT head (a pipelined TLS ClientHello) go through now.
    pump(0);
    if (!done_) pump(1);
}

void Relay::stop() {
    for (bufferevent* bev : bev_) bufferevent_setcb(bev, nullptr, nullptr, nullptr, nullptr);
    if (paused_check_) event_del(paused_check_);
}

// A side whose reads are paused (its peer is slow to take the bytes) has no read pending, so
// epoll would not report its reset until the peer drains; check its socket error meanwhile.
void Relay::on_paused_check() {
    for (int side = 0; side < 2; ++side) {
        if (!paused_[side]) continue;
        int err = 0;
        socklen_t len = sizeof err;
        if (getsockopt(bufferevent_getfd(bev_[side]), SOL_SOCKET, SO_ERROR, &err, &len) == 0 &&
            err) {
            done(side == 0 ? "client connection error" : "upstream connection error", true);
            return;
        }
    }
    if (!paused_[0] && !paused_[1]) event_del(paused_check_);
}

void Relay::touch() { last_activity_ms_ = loop_now_ms(bev_[0]); }

void Relay::pump(int from) {
    int to = 1 - from;
    evbuffer* in = bufferevent_get_input(bev_[from]);
    evbuffer* out = bufferevent_get_output(bev_[to]);
    size_t queued = evbuffer_get_length(out) + evbuffer_get_length(in);
    if (!paused_[from] && !eof_[from] && queued < high_water_) {
        read_more(bev_[from], high_water_ - queued);
    }
    size_t n = evbuffer_get_length(in);
    if (n == 0) return;
    touch();
    moved_[from] += n;
    evbuffer_add_buffer(out, in);
    if (evbuffer_get_length(out) >= high_water_ && !paused_[from]) {
        // The receiving side is slow: stop taking bytes until its output drains to half.
        paused_[from] = true;
        bufferevent_disable(bev_[from], EV_READ);
        bufferevent_setwatermark(bev_[to], EV_WRITE, high_water_ / 2, 0);
        if (!paused_check_) {
            paused_check_ = event_new(bufferevent_get_base(bev_[from]), -1, EV_PERSIST,
                                      paused_check_cb, this);
        }
        if (paused_check_ && !event_pending(paused_check_, EV_TIMEOUT, nullptr)) {
            timeval tv{0, kPausedCheckMs * 1000};
            event_add(paused_check_, &tv);
        }
    }
}

void Relay::on_readable(int side) { pump(side); }

void Relay::on_writable(int side) {
    int from = 1 - side;
    touch();
    if (paused_[from]) {
        paused_[from] = false;
        bufferevent_setwatermark(bev_[side], EV_WRITE, 0, 0);
        if (!eof_[from]) bufferevent_enable(bev_[from], EV_READ);
        pump(from);  // bytes may have been read before reading paused
        if (done_) return;
    }
    maybe_shutdown(side);
}

void Relay::maybe_shutdown(int to) {
    int from = 1 - to;
    if (!eof_[from] || shut_[to]) return;
    if (evbuffer_get_length(bufferevent_get_output(bev_[to])) != 0) return;
    shut_[to] = true;
    ::shutdown(bufferevent_getfd(bev_[to]), SHUT_WR);
    if (shut_[0] && shut_[1]) done("closed", false);
}

void Relay::on_event(int side, short what) {
    touch();
    if (what & BEV_EVENT_EOF) {
        pump(side);  // whatever arrived before the EOF
        eof_[side] = true;
        maybe_shutdown(1 - side);
        return;
    }
    if (what & (BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)) {
        done(side == 0 ? "client connection error" : "upstream connection error", true);
    }
}

void Relay::done(const char* reason, bool error) {
    if (done_) return;
    done_ = true;
    stop();
    owner_->on_relay_done(reason, error);
}

}  // namespace hallpass
