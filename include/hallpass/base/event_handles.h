// Owning handles: std::unique_ptr with the matching libevent free function, and a descriptor
// that closes itself. Each libevent object has exactly one owner, handed over by value (std::move)
// and freed by its destructor, never by hand. Header-only; only the layers that link libevent
// (observe, proxy, server) include it.
#pragma once

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <unistd.h>

#include <memory>
#include <utility>

namespace hallpass {

struct BuffereventFree {
    void operator()(bufferevent* b) const noexcept { bufferevent_free(b); }
};
struct EventFree {
    void operator()(event* e) const noexcept { event_free(e); }
};
struct EvbufferFree {
    void operator()(evbuffer* b) const noexcept { evbuffer_free(b); }
};
struct ListenerFree {
    void operator()(evconnlistener* l) const noexcept { evconnlistener_free(l); }
};
struct EventBaseFree {
    void operator()(event_base* b) const noexcept { event_base_free(b); }
};

using BuffereventPtr = std::unique_ptr<bufferevent, BuffereventFree>;
using EventPtr = std::unique_ptr<event, EventFree>;
using EvbufferPtr = std::unique_ptr<evbuffer, EvbufferFree>;
using ListenerPtr = std::unique_ptr<evconnlistener, ListenerFree>;
using EventBasePtr = std::unique_ptr<event_base, EventBaseFree>;

// A file descriptor closed by its destructor (-1: none).
class UniqueFd {
  public:
    UniqueFd() = default;
    explicit UniqueFd(int fd) : fd_(fd) {}
    ~UniqueFd() { reset(); }
    UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
    UniqueFd& operator=(UniqueFd&& other) noexcept {
        if (this != &other) reset(other.release());
        return *this;
    }
    UniqueFd(const UniqueFd&) = delete;
    UniqueFd& operator=(const UniqueFd&) = delete;

    int get() const { return fd_; }
    explicit operator bool() const { return fd_ >= 0; }
    int release() { return std::exchange(fd_, -1); }
    void reset(int fd = -1) {
        if (fd_ >= 0) ::close(fd_);
        fd_ = fd;
    }

  private:
    int fd_ = -1;
};

}  // namespace hallpass
