// The byte pump of a CONNECT tunnel: bytes moved both ways without looking at them, with
// splice(2) through a pipe from the worker's PipePool (zero-copy: socket to pipe to socket) or,
// where no pipe is free or the kernel refuses to splice, by copying through a buffer of its own.
// At most `high_water` bytes are in flight per direction (a slow side pauses reading on the fast
// one), and half-close: EOF from one side becomes shutdown(SHUT_WR) towards the other once what
// was in flight has been written. The relay takes over the two sockets from their bufferevents
// (bytes those still hold go first) but does not own them; it tells its owner when the tunnel
// is over and the owner frees.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>

#include "hallpass/base/event_handles.h"
#include "hallpass/proxy/pipe_pool.h"

namespace hallpass {

class Relay {
  public:
    class Owner {
      public:
        // The tunnel is over: both directions closed (error == false), or an error / reset on one
        // side. The relay has removed its events and will not touch the sockets again.
        virtual void on_relay_done(const char* reason, bool error) = 0;

      protected:
        ~Owner() = default;
    };

    enum class Side { Client = 0, Upstream = 1 };

    // `pipes` null: always copy.
    Relay(bufferevent* client, bufferevent* upstream, size_t high_water, PipePool* pipes,
          Owner* owner);
    ~Relay();
    Relay(const Relay&) = delete;
    Relay& operator=(const Relay&) = delete;

    // Takes the sockets over from the bufferevents (disabling them, keeping what they buffered
    // in order) and starts moving bytes. May call on_relay_done() before returning.
    void start();
    // Removes the events (the owner is about to free the bufferevents and their sockets).
    void stop();

    // Bytes read from the client's socket (not those its bufferevent had buffered before start:
    // the owner counted those) and bytes written towards the client that came from the upstream.
    uint64_t bytes_from_client() const { return dirs_[0].moved; }
    uint64_t bytes_to_client() const { return dirs_[1].moved; }
    // Bytes that went through a pipe, both directions (the rest was copied).
    uint64_t bytes_spliced() const { return spliced_; }
    // Milliseconds (event loop's cached clock) of the last byte moved or event seen.
    int64_t last_activity_ms() const { return last_activity_ms_; }

    // libevent trampolines (public for the C callbacks in relay.cpp).
    struct SideRef {
        Relay* relay;
        Side side;
    };
    void on_readable(Side side);
    void on_writable(Side side);
    void on_paused_check();

  private:
    // One direction: bytes read from `from` and written to the other side.
    struct Direction {
        int from = 0;
        std::optional<Pipe> pipe;
        size_t in_pipe = 0;
        EvbufferPtr copy;          // bytes copied rather than spliced
        bool can_splice = true;    // false once the kernel refused (then copy for good)
        bool eof = false;          // `from` sent EOF
        bool shut = false;         // SHUT_WR sent towards the other side
        bool paused = false;       // reading `from` paused: high_water in flight
        uint64_t moved = 0;
        size_t pending() const;
    };
    enum class Io { Progress, Again, Eof, Error };

    void pump(Direction& d);
    Io flush(Direction& d);
    Io fill(Direction& d, size_t room);
    void release_pipe(Direction& d, bool clean);
    void set_reading(int side, bool on);
    void set_writing(int side, bool on);
    void touch();
    void done(const char* reason, bool error);
    static const char* side_error(int side);

    bufferevent* bev_[2];
    int fd_[2] = {-1, -1};
    size_t high_water_;
    PipePool* pipes_;
    Owner* owner_;
    Direction dirs_[2];  // [0]: client -> upstream, [1]: upstream -> client
    SideRef refs_[2];    // the events' callback arguments
    EventPtr read_ev_[2];
    EventPtr write_ev_[2];
    bool reading_[2] = {false, false};
    bool writing_[2] = {false, false};
    uint64_t spliced_ = 0;
    int64_t last_activity_ms_ = 0;
    bool started_ = false;
    bool done_ = false;
    // While a side's reads are paused nothing would see its reset: polled (SO_ERROR).
    EventPtr paused_check_;
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
