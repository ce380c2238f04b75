// Tunnel relay: two pumps and the tunnel's end. The tunnel ends only when both directions are
// closed, or on an error; never on the first EOF, since the other side may still be sending
// (RFC 9110 §9.3.6).
#include "hallpass/proxy/relay.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <sys/socket.h>

#include <algorithm>

namespace hallpass {

Relay::Relay(BuffereventPtr client, BuffereventPtr upstream, size_t high_water, PipePool* pipes,
             Owner* owner)
    : bev_{std::move(client), std::move(upstream)},
      high_water_(high_water),
      pipes_(pipes),
      owner_(owner) {}

void Relay::start() {
    event_base* base = bufferevent_get_base(bev_[0].get());
    started_ms_ = loop_now_ms(base);
    int fd[2];
    for (int side = 0; side < 2; ++side) {
        bufferevent_disable(bev_[side].get(), EV_READ | EV_WRITE);
        bufferevent_setcb(bev_[side].get(), nullptr, nullptr, nullptr, nullptr);
        bufferevent_set_timeouts(bev_[side].get(), nullptr, nullptr);
        fd[side] = static_cast<int>(bufferevent_getfd(bev_[side].get()));
    }
    for (int from = 0; from < 2; ++from) {
        const int to = 1 - from;
        pumps_[from] = std::make_unique<Pump>(base, fd[from], fd[to], high_water_, pipes_, this);
        pumps_[from]->set_shutdown_on_eof(true);
        // Towards each side first what was queued for it (the client's "200 Connection
        // established"), then what the other side had sent (a TLS ClientHello pipelined behind
        // the CONNECT head). bufferevent_socket keeps the start of its output frozen.
        evbuffer* queued = bufferevent_get_output(bev_[to].get());
        evbuffer_unfreeze(queued, 1);
        bool ok = pumps_[from]->preload(queued);
        evbuffer_freeze(queued, 1);
        evbuffer* early = bufferevent_get_input(bev_[from].get());
        // The owner counts what the client sent (its buffer's callbacks); the upstream's early
        // bytes are the relay's to count.
        ok = ok && (from == 0 ? pumps_[from]->preload(early) : pumps_[from]->preload_source(early));
        if (!ok) return done("out of memory", true);
    }
    // The bufferevents are empty now: only their sockets are kept.
    for (int side = 0; side < 2; ++side) {
        bufferevent_setfd(bev_[side].get(), -1);  // so that freeing it does not close the socket
        fd_[side].reset(fd[side]);
        bev_[side].reset();
    }
    for (auto& pump : pumps_) {
        if (!pump->start()) return done("out of memory", true);
        if (done_) return;
    }
}

void Relay::stop() {
    for (auto& pump : pumps_)
        if (pump) pump->stop();
}

uint64_t Relay::bytes_spliced() const {
    uint64_t n = 0;
    for (const auto& pump : pumps_)
        if (pump) n += pump->spliced();
    return n;
}

int64_t Relay::last_activity_ms() const {
    int64_t last = started_ms_;
    for (const auto& pump : pumps_)
        if (pump) last = std::max(last, pump->last_activity_ms());
    return last;
}

void Relay::on_pump_end(Pump& pump, Pump::Step how) {
    const bool to_upstream = &pump == pumps_[0].get();
    switch (how) {
        case Pump::Step::Eof:
        case Pump::Step::Done:
            if (++closed_ == 2) done("closed", false);
            return;
        case Pump::Step::SourceError:
            return done(to_upstream ? "client connection error" : "upstream connection error",
                        true);
        case Pump::Step::SinkError:
            return done(to_upstream ? "upstream connection error" : "client connection error",
                        true);
        case Pump::Step::NeedMore:
        case Pump::Step::Paused:
            return;
    }
}

void Relay::done(const char* reason, bool error) {
    if (done_) return;
    done_ = true;
    stop();
    owner_->on_relay_done(reason, error);
}

}  // namespace hallpass
