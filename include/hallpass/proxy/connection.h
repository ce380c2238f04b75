// One client connection and everything it drives: read a request head, decide, resolve, connect
// (or reuse a pooled upstream), exchange (head and bodies both ways, framing-aware), then keep the
// client alive for its next request — to any host — or tunnel bytes after CONNECT. Owned by its
// worker; only that worker's thread touches it; finish() is the one place that ends it, and the
// worker frees it on a later loop turn.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <memory>
#include <memory_resource>
#include <string>
#include <vector>

#include "hallpass/base/event_handles.h"
#include "hallpass/base/net_set.h"
#include "hallpass/http/http_parser.h"
#include "hallpass/http/uri.h"
#include "hallpass/observe/transaction.h"
#include "hallpass/proxy/exchange.h"
#include "hallpass/proxy/pump.h"
#include "hallpass/proxy/relay.h"
#include "hallpass/proxy/reset_watch.h"

namespace hallpass {

class Worker;
class RuleSet;
class GrantSet;
struct DnsAnswer;

class Connection final : public Relay::Owner, public Pump::Owner, private ResetWatch::Owner {
  public:
    enum class State {
        ReadingHead,  // waiting for (the rest of) a request head; keep-alive idle too
        Resolving,    // DNS query for the upstream host in flight
        Connecting,   // TCP connect to one of the upstream's addresses in flight
        Exchanging,   // request sent or being sent upstream; response being relayed
        Tunneling,    // CONNECT established: blind relay both ways
        Closing,      // last bytes being flushed to the client, then a short lingering read
        Finished,     // done; waiting for the worker to free it
    };

    // Takes ownership of the accepted socket `fd`. `pac_only`: accepted on a server.pac_listen
    // address, where hallpass serves the auto-config file and nothing else.
    Connection(Worker& worker, uint64_t id, int fd, const sockaddr* peer, bool pac_only = false);
    ~Connection();
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    // Starts reading. May finish() before returning (then the worker reaps it).
    void start();
    // Server shutdown: close now if idle between requests; otherwise finish the current exchange
    // and then close instead of keeping the connection alive.
    void begin_drain();
    // Ends the connection now (shutdown grace expired).
    void abort(const char* reason) { finish(reason); }

    bool finished() const { return state_ == State::Finished; }
    uint64_t id() const { return id_; }
    const IpAddr& client_ip() const { return client_ip_; }
    State state() const { return state_; }
    // For the statistics gauge (a tunnel's relay holds its upstream socket).
    bool has_upstream() const { return upstream_ != nullptr || relay_ != nullptr; }
    // Between requests with nothing of the next one read: closing it loses nothing.
    bool idle() const;
    // Closes an idle connection to make room for a new one at a connection limit.
    void evict() { finish("closed while idle to make room (connection limit)"); }
    // A schedule opened or closed, a grant started or ended, or new rules came: decides the
    // tunnel or exchange in progress (or, idle, the last request) again, and closes the
    // connection when that is now blocked, logging the rule.
    void recheck_policy(const RuleSet& rules, const GrantSet& grants, int64_t now_s);

    // libevent trampolines (public for the C callbacks in connection.cpp).
    void on_client_bytes(bool output, size_t added, size_t deleted);
    void on_client_read();
    void on_client_write();
    void on_client_event(short what);
    void on_upstream_read();
    void on_upstream_write();
    void on_upstream_event(short what);
    void on_timer();

  private:
    // With the arena's own 64 bytes of bookkeeping, one 4 KiB block of the worker's pool.
    static constexpr size_t kArenaBytes = 4096 - 64;

    void set_state(State next);
    void finish(const char* reason);
    void arm_timer(int64_t ms);
    void touch();
    void set_idle(bool idle);  // keeps SharedState::clients' idle set in step

    // ReadingHead
    void process_input();
    void parse_head();
    void handle_request();        // dispatches on the target's form
    void handle_absolute_form();  // a request to relay: check, decide, forward
    bool accept_absolute_target();  // Host, scheme, URI, ports; answers itself when false
    void expect_request_body(const Framing& framing);
    void forward_request();  // the upstream head, then a pooled connection or a new one
    void handle_connect();
    void handle_origin_form();
    void learn_local_address();  // local_ip_, local_port_ (getsockname, once)
    // GET /proxy.pac or /wpad.dat, whatever the Host (WPAD clients send an IP or wpad.DOMAIN).
    bool is_pac_request() const;
    void serve_pac();
    std::string pac_proxy_address();                 // "ADDR:PORT" this client reaches the proxy at
    bool names_this_host(const Authority& a) const;  // one of our addresses or host names
    // A request for hallpass itself: the info page at /, 404 elsewhere, never forwarded.
    void answer_self(const Authority& self, uint16_t port, std::string_view path);
    bool check_policy();
    bool refuse_destination(const IpAddr& ip);
    // The block page: `message` for the person blocked, `until` when it opens again ("" = not
    // known).
    void reply_blocked(const std::string& rule, std::string message, std::string until);
    void remember_request();       // the request that ended, for recheck_policy() while idle
    std::string pool_key() const;  // the target, and the safe-search name if any
    Authority upstream_authority() const;  // what is resolved: the target or that name
    std::string request_url() const;  // as the client sent it (logs, block page)
    std::string rules_url() const;    // normalised path (normalize_path): what url_regex sees
    bool output_full() const;         // the client's output holds buffer_bytes or more
    void next_request();

    // Resolving / Connecting
    void open_upstream(const Authority& target);
    void on_resolved(const DnsAnswer& answer);
    void end_lookup();  // cancels the DNS wait, if any, and releases the client's lookup slot
    void connect_next();
    void on_upstream_connected();

    // Backpressure on the buffered path: reading `from` stops while the other side's output
    // holds buffer_bytes, until it drains to half; meanwhile `from` is watched for a reset.
    enum class Side { Client, Upstream };
    bufferevent* bev(Side side) const {
        return side == Side::Client ? client_.get() : upstream_.get();
    }
    bool& reads_paused(Side side) {
        return side == Side::Client ? x_.client_paused : x_.upstream_paused;
    }
    ResetWatch& watch_of(Side side) {
        return side == Side::Client ? client_watch_ : upstream_watch_;
    }
    size_t send_now(Side to, std::string_view head, evbuffer* body_from, size_t body_n);
    void pause_reading(Side from);
    bool resume_reading(Side from);  // false: `from` was not paused
    void on_reset(ResetWatch& watch, int err) override;

    // Exchanging
    void send_request();
    void pump_request_body();
    void read_response_head();  // parses heads as they come: interim ones, then the final one
    bool forward_interim(const ResponseHead& head);  // false: the exchange failed
    void start_response(const ResponseHead& head);  // the final head: framing, relay, complete?
    void pump_response_body();
    // A body framed by Content-Length (64 KiB or more to come) or by close, not de-chunked,
    // with the request all sent: moved by a Pump (splice) instead of through the buffers.
    bool body_can_bypass() const;
    void start_body_pump();
    // The same for a request body framed by Content-Length (64 KiB or more to come), client ->
    // upstream, once the head is out; the response is read meanwhile as always.
    bool request_can_bypass() const;
    void start_request_pump();
    void on_request_pump_end(Pump& pump, Pump::Step how);
    void on_pump_end(Pump& pump, Pump::Step how) override;
    void on_response_complete();
    void on_upstream_closed(bool error);
    void fail_upstream(int status, const std::string& detail);
    void abort_response();

    // Tunneling
    void start_tunnel();
    void on_relay_done(const char* reason, bool error) override;

    // The current request's Transaction: opened when its head is complete (or when a head that
    // never parsed is answered), closed exactly once when the request ends, then handed to the
    // worker's sinks.
    void begin_txn();
    void end_txn(const std::string& error);

    // Local answers and closing
    void reply(const std::string& bytes, bool keep_alive);
    void reply_error(int status, const std::string& detail, bool may_keep_alive = false);
    void close_after_flush();
    void free_upstream();

    Worker& worker_;
    const uint64_t id_;
    std::string client_addr_;
    IpAddr client_ip_;
    IpAddr local_ip_;          // the address the client reached us on (origin-form only:
    uint16_t local_port_ = 0;  // ...and its port         getsockname on first need)
    const bool pac_only_;
    State state_ = State::ReadingHead;
    BuffereventPtr client_;
    BuffereventPtr upstream_;
    EventPtr timer_;
    ResetWatch client_watch_;    // the client, while its reads are paused
    ResetWatch upstream_watch_;  // the upstream, while its reads are paused
    uint64_t dns_ticket_ = 0;
    bool lookup_counted_ = false;  // holds one of the client's max_dns_lookups_per_client
    std::unique_ptr<Relay> relay_;
    std::unique_ptr<Pump> body_pump_;  // the response body, upstream -> client, while it moves
    std::unique_ptr<Pump> req_pump_;   // the request body, client -> upstream, while it moves
    int64_t last_activity_ms_ = 0;

    // Connection-wide flags.
    bool draining_ = false;
    bool client_eof_ = false;
    bool in_process_ = false;     // process_input() is on the stack
    bool reprocess_ = false;      // ...and must look at the input again
    bool lingering_ = false;      // Closing: output flushed, SHUT_WR sent, discarding input
    bool tunnel_closed_ = false;  // the tunnel ended by both sides closing, not an error/timeout
    bool idle_listed_ = false;    // listed as idle in SharedState::clients

    // The current request and its response; a fresh one for every request. The request head
    // is parsed into the arena (one block instead of an allocation per string), released when
    // the exchange ends or a tunnel starts, so an idle connection holds none of it.
    std::pmr::monotonic_buffer_resource arena_;  // blocks from the worker's head_memory()
    Exchange x_{&arena_};
    bool answers_paused_ = false;  // client reads paused: its output full (pipelining)

    // The last request that went through, kept between requests for recheck_policy(); empty
    // host: none (or the last was blocked).
    std::string last_host_;
    HostKind last_kind_ = HostKind::Name;
    uint16_t last_port_ = 0;
    std::string last_url_;  // only when the rules look at URLs, and at most kMaxKeptUrl bytes
    static constexpr size_t kMaxKeptUrl = 512;
    std::string closed_by_rule_;  // finish()'s reason when recheck_policy() closed it

    // Accounting for the access log and statistics, over the connection's life.
    uint64_t client_in_total_ = 0;   // bytes taken out of the client's input buffer
    uint64_t client_out_total_ = 0;  // bytes queued for the client
};

}  // namespace hallpass
