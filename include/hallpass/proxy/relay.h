// A CONNECT tunnel: two Pumps, client -> upstream and upstream -> client, over the sockets it
// takes out of the two bufferevents (the bytes those still hold go first, in order). Half-close:
// EOF from one side becomes shutdown(SHUT_WR) towards the other once what was in flight is
// written; the tunnel ends when both directions have, or on an error. The relay owns the two
// sockets; it tells its owner when the tunnel is over.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "hallpass/base/event_handles.h"
#include "hallpass/proxy/pipe_pool.h"
#include "hallpass/proxy/pump.h"

namespace hallpass {

class Relay final : public Pump::Owner {
  public:
    class Owner {
      public:
        // The tunnel is over: both directions closed (error == false), or an error / reset on one
        // side. The relay has removed its events and will not touch the sockets again.
        virtual void on_relay_done(const char* reason, bool error) = 0;

      protected:
        ~Owner() = default;
    };

    // Takes both connections. `pipes` null: always copy.
    Relay(BuffereventPtr client, BuffereventPtr upstream, size_t high_water, PipePool* pipes,
          Owner* owner);
    Relay(const Relay&) = delete;
    Relay& operator=(const Relay&) = delete;

    // Takes the sockets out of the bufferevents (keeping what those buffered, in order), frees
    // the bufferevents (an idle tunnel should cost little) and starts moving bytes. May call
    // on_relay_done() before returning.
    void start();
    // Removes the events (the owner is about to free the bufferevents and their sockets).
    void stop();

    // Bytes read from the client's socket (not those its bufferevent had buffered before start:
    // the owner counted those) and bytes written towards the client that came from the upstream.
    uint64_t bytes_from_client() const { return pumps_[0] ? pumps_[0]->moved() : 0; }
    uint64_t bytes_to_client() const { return pumps_[1] ? pumps_[1]->moved() : 0; }
    // Bytes that went through a pipe, both directions (the rest was copied).
    uint64_t bytes_spliced() const;
    // Milliseconds (event loop's cached clock) of the last byte moved, or of the start.
    int64_t last_activity_ms() const;

  private:
    void on_pump_end(Pump& pump, Pump::Step how) override;
    void done(const char* reason, bool error);

    BuffereventPtr bev_[2];  // until start(); then only the sockets are kept
    UniqueFd fd_[2];
    size_t high_water_;
    PipePool* pipes_;
    Owner* owner_;
    std::unique_ptr<Pump> pumps_[2];  // [0]: client -> upstream, [1]: upstream -> client
    int closed_ = 0;                  // directions that ended with EOF
    int64_t started_ms_ = 0;
    bool done_ = false;
};

}  // namespace hallpass
