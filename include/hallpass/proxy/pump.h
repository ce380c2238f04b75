// One direction of bytes that hallpass does not look at, from a source socket to a sink socket:
// a tunnel's direction, or a response body framed by Content-Length or by close once its head
// has gone out. splice(2) moves them socket -> pipe -> socket (a pipe from the worker's PipePool,
// held only while bytes are in flight); where no pipe is free or the kernel refuses, they are
// copied through a buffer of the pump's own. At most `high_water` bytes are in flight (read and
// not yet written): a slow sink stops the reading of the source. The pump does not own the
// sockets.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>

#include "hallpass/base/event_handles.h"
#include "hallpass/proxy/pipe_pool.h"
#include "hallpass/proxy/reset_watch.h"

namespace hallpass {

class Pump final : private ResetWatch::Owner {
  public:
    enum class Step {
        NeedMore,     // waiting for the source (its read event is armed)
        Paused,       // high_water in flight: waiting for the sink to take it
        Done,         // the limit moved and written
        Eof,          // the source closed and all it sent is written (SHUT_WR sent if asked)
        SourceError,  // reading the source failed (a reset)
        SinkError,    // writing the sink failed (a reset, EPIPE)
    };
    static bool ended(Step s) { return s != Step::NeedMore && s != Step::Paused; }

    class Owner {
      public:
        // The pump ended (Done, Eof or an error); its events are removed. Called once, from the
        // pump's own event callbacks or from start().
        virtual void on_pump_end(Pump& pump, Step how) = 0;

      protected:
        ~Owner() = default;
    };

    static constexpr uint64_t kNoLimit = std::numeric_limits<uint64_t>::max();

    // `pipes` null: always copy. `limit`: bytes to move before Done (kNoLimit: until EOF).
    Pump(event_base* base, int source_fd, int sink_fd, size_t high_water, PipePool* pipes,
         Owner* owner, uint64_t limit = kNoLimit);
    ~Pump();  // gives its pipe back (discards it when it still holds bytes)
    Pump(const Pump&) = delete;
    Pump& operator=(const Pump&) = delete;

    // Bytes to write before anything read from the source: moved out of `from` (not counted in
    // moved()). Call before start().
    bool preload(evbuffer* from);
    // Bytes of the source already read elsewhere (a bufferevent's input): up to the limit is
    // moved out of `from` and counted as moved. Call before start().
    bool preload_source(evbuffer* from);
    // At the source's EOF, once everything is written, shutdown(SHUT_WR) the sink (tunnels).
    void set_shutdown_on_eof(bool on) { shutdown_on_eof_ = on; }

    // Arms the events and moves what it can. May end (and call the owner) before returning.
    // False when out of memory (no event could be made); nothing was called then.
    bool start();
    // Removes the events; the pump does nothing more.
    void stop();
    // One round of work: write what is in flight, read more within the limits. Returns what
    // happened; an end is also reported to the owner (once).
    Step step();

    uint64_t moved() const { return moved_; }        // bytes read from the source (preloads too)
    uint64_t spliced() const { return spliced_; }    // of those, written through a pipe
    uint64_t remaining() const { return remaining_; }
    bool paused() const { return paused_; }
    // Milliseconds (the loop's cached clock) of the last byte moved.
    int64_t last_activity_ms() const { return last_activity_ms_; }

    // libevent trampolines (public for the C callbacks in pump.cpp).
    void on_event();

  private:
    enum class Io { Progress, Again, Eof, Error };
    size_t pending() const;
    Io flush();
    Io fill(size_t room);
    void release_pipe(bool clean);
    void set_reading(bool on);
    bool set_writing(bool on);  // false: no write event could be made
    void pause();
    Step end(Step how);
    void touch();
    bool ensure_copy();
    void on_reset(ResetWatch& watch, int err) override;

    event_base* base_;
    int source_;
    int sink_;
    size_t high_water_;
    PipePool* pipes_;
    Owner* owner_;
    uint64_t remaining_;
    std::optional<Pipe> pipe_;
    size_t in_pipe_ = 0;
    EvbufferPtr copy_;         // bytes copied rather than spliced; made when first needed
    bool can_splice_ = true;   // false once the kernel refused (then copy for good)
    bool eof_ = false;         // the source sent EOF
    bool paused_ = false;      // reading paused: high_water in flight
    bool shutdown_on_eof_ = false;
    bool ended_ = false;
    bool stepping_ = false;
    uint64_t moved_ = 0;
    uint64_t spliced_ = 0;
    int64_t last_activity_ms_ = 0;
    EventPtr read_ev_;
    EventPtr write_ev_;  // made when a write first has to wait
    bool reading_ = false;
    bool writing_ = false;
    // While reading is paused nothing would see the source's reset: polled.
    ResetWatch reset_watch_;
};

// The current time of `base`'s event loop in milliseconds (cached by the loop, cheap).
int64_t loop_now_ms(event_base* base);

}  // namespace hallpass
