// Watches a socket whose reads are paused (its peer's bytes wait while the other side is slow)
// for a reset. With no read pending, epoll would not report it: a reset comes as
// EPOLLERR|EPOLLHUP, which libevent hands only to read and write events, and a read event would
// fire at once for the bytes waiting. So a paused socket's SO_ERROR is polled instead, every
// 500 ms and only while it is paused. The one watcher for Pumps and for the buffered path.
#pragma once

#include "hallpass/base/event_handles.h"

namespace hallpass {

class ResetWatch {
  public:
    class Owner {
      public:
        // The watched socket has an error (`err`, e.g. ECONNRESET). The watch has stopped.
        virtual void on_reset(ResetWatch& watch, int err) = 0;

      protected:
        ~Owner() = default;
    };

    static constexpr int kIntervalMs = 500;

    ResetWatch(event_base* base, Owner* owner) : base_(base), owner_(owner) {}
    ResetWatch(const ResetWatch&) = delete;
    ResetWatch& operator=(const ResetWatch&) = delete;

    // Polls `fd` from now on (instead of whatever it watched). False when out of memory: then
    // nothing is watched and the caller's timeouts still apply.
    bool watch(int fd);
    void stop();
    bool watching() const { return fd_ >= 0; }
    int fd() const { return fd_; }

    void on_tick();  // libevent trampoline

  private:
    event_base* base_;
    Owner* owner_;
    int fd_ = -1;
    EventPtr ev_;  // made on the first watch()
};

}  // namespace hallpass
