// A persistent timer, armed only while something is paused.
#include "hallpass/proxy/reset_watch.h"

#include <event2/event.h>
#include <sys/socket.h>

namespace hallpass {
namespace {

void tick_cb(evutil_socket_t, short, void* arg) { static_cast<ResetWatch*>(arg)->on_tick(); }

}  // namespace

bool ResetWatch::watch(int fd) {
    if (!ev_) {
        ev_.reset(event_new(base_, -1, EV_PERSIST, tick_cb, this));
        if (!ev_) return false;
    }
    if (fd_ < 0) {
        timeval tv{0, kIntervalMs * 1000};
        event_add(ev_.get(), &tv);
    }
    fd_ = fd;
    return true;
}

void ResetWatch::stop() {
    if (fd_ < 0) return;
    fd_ = -1;
    event_del(ev_.get());
}

void ResetWatch::on_tick() {
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err == 0) return;
    stop();
    owner_->on_reset(*this, err);  // may destroy this watch
}

}  // namespace hallpass
