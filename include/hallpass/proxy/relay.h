// The byte pump of a CONNECT tunnel: two bufferevents, bytes copied both ways without looking at
// them, bounded buffering (a slow side pauses reading on the fast side), and half-close (EOF from
// one side becomes shutdown(SHUT_WR) towards the other once its output has drained). The relay
// does not own the bufferevents; it tells its owner when the tunnel is over and the owner frees.
#pragma once

#include <cstddef>
#include <cstdint>

struct bufferevent;
struct event;

namespace hallpass {

class Relay {
  public:
    class Owner {
      public:
        // The tunnel is over: both directions closed (error == false), or an error / reset on one
        // side. The relay has removed its callbacks and will not touch the bufferevents again.
        virtual void on_relay_done(const char* reason, bool error) = 0;

      protected:
        ~Owner() = default;
    };

    Relay(bufferevent* a, bufferevent* b, size_t high_water, Owner* owner);
    ~Relay();
    Relay(const Relay&) = delete;
    Relay& operator=(const Relay&) = delete;

    // Installs the callbacks, enables reading on both sides and forwards bytes already buffered.
    // May call on_relay_done() before returning.
    void start();
    // Removes the callbacks (the owner is about to free the bufferevents).
    void stop();

    uint64_t bytes_a_to_b() const { return moved_[0]; }
    uint64_t bytes_b_to_a() const { return moved_[1]; }
    // Milliseconds (event loop's cached clock) of the last byte moved or event seen.
    int64_t last_activity_ms() const { return last_activity_ms_; }

    // libevent trampolines (public for the C callbacks in relay.cpp).
    void on_readable(int side);
    void on_writable(int side);
    void on_event(int side, short what);
    void on_paused_check();

  private:
    void pump(int from);
    void maybe_shutdown(int to);
    void touch();
    void done(const char* reason, bool error);

    bufferevent* bev_[2];
    size_t high_water_;
    Owner* owner_;
    bool eof_[2] = {false, false};     // side sent EOF
    bool shut_[2] = {false, false};    // SHUT_WR sent towards side
    bool paused_[2] = {false, false};  // reading from side paused for backpressure
    uint64_t moved_[2] = {0, 0};
    int64_t last_activity_ms_ = 0;
    bool done_ = false;
    // While a side's reads are paused nothing would see its reset: polled (SO_ERROR).
    event* paused_check_ = nullptr;
};

// The current time of `bev`'s event loop in milliseconds (cached by the loop, cheap).
int64_t loop_now_ms(bufferevent* bev);

// Reads up to `room` more bytes from `bev`'s socket into its input buffer, with one readv.
// libevent 2.1 reads at most 4 KiB per read callback, which makes bulk transfers cost a syscall
// round (ioctl, readv, epoll) per 4 KiB; calling this from the read callback moves bulk data in
// large steps. EOF and errors are left in the socket for libevent's next read to report.
// Returns the bytes read.
size_t read_more(bufferevent* bev, size_t room);

}  // namespace hallpass
