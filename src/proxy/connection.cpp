// The client connection state machine (see connection.h for the states). Request path:
//   ReadingHead -> parse -> handle_request/handle_connect -> check_policy (the rule engine's
//   place: before any DNS or upstream connection) -> pool or Resolving -> Connecting ->
//   Exchanging (or Tunneling) -> ReadingHead for the next request, or Closing.
// Every callback ends in at most one finish(); nothing here frees `this`.
#include "hallpass/proxy/connection.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/uio.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <cstring>

#include "hallpass/base/log.h"
#include "hallpass/config/config.h"
#include "hallpass/http/http_responses.h"
#include "hallpass/http/http_rewrite.h"
#include "hallpass/http/pac.h"
#include "hallpass/observe/device_page.h"
#include "hallpass/observe/stats.h"
#include "hallpass/proxy/dns.h"
#include "hallpass/proxy/upstream_pool.h"
#include "hallpass/proxy/worker.h"
#include "hallpass/rules/policy.h"
#include "hallpass/rules/rule_set.h"

namespace hallpass {
namespace {

// After the last response of a closing connection: how long unread client bytes are discarded
// before the socket is closed, so a close with unread data does not reset (and destroy) the
// response in flight (RFC 9112 §9.6).
constexpr int kLingerMs = 2000;

// Interim (1xx) responses one request may receive before the upstream is taken for a hostile
// one: real servers send one 100 Continue or a couple of 103 Early Hints.
constexpr int kMaxInterimResponses = 16;

// Stack space for parsing a response head (its fields and strings); a larger one spills to the
// heap.
constexpr size_t kResponseArenaBytes = 4096;

const char* state_name(Connection::State s) {
    switch (s) {
        case Connection::State::ReadingHead:
            return "reading-head";
        case Connection::State::Resolving:
            return "resolving";
        case Connection::State::Connecting:
            return "connecting";
        case Connection::State::Exchanging:
            return "exchanging";
        case Connection::State::Tunneling:
            return "tunneling";
        case Connection::State::Closing:
            return "closing";
        case Connection::State::Finished:
            return "finished";
    }
    return "?";
}

void client_read_cb(bufferevent*, void* arg) { static_cast<Connection*>(arg)->on_client_read(); }
void client_write_cb(bufferevent*, void* arg) { static_cast<Connection*>(arg)->on_client_write(); }
void client_event_cb(bufferevent*, short what, void* arg) {
    static_cast<Connection*>(arg)->on_client_event(what);
}
void upstream_read_cb(bufferevent*, void* arg) {
    static_cast<Connection*>(arg)->on_upstream_read();
}
void upstream_write_cb(bufferevent*, void* arg) {
    static_cast<Connection*>(arg)->on_upstream_write();
}
void upstream_event_cb(bufferevent*, short what, void* arg) {
    static_cast<Connection*>(arg)->on_upstream_event(what);
}
void timer_cb(evutil_socket_t, short, void* arg) { static_cast<Connection*>(arg)->on_timer(); }
void client_output_cb(evbuffer*, const evbuffer_cb_info* info, void* arg) {
    static_cast<Connection*>(arg)->on_client_bytes(true, info->n_added, info->n_deleted);
}
void client_input_cb(evbuffer*, const evbuffer_cb_info* info, void* arg) {
    static_cast<Connection*>(arg)->on_client_bytes(false, info->n_added, info->n_deleted);
}

// The Content-Type of one of our own complete responses (status line, fields, blank line, body).
std::string content_type_of(std::string_view response) {
    constexpr std::string_view kField = "\r\nContent-Type: ";
    size_t head_end = response.find("\r\n\r\n");
    size_t at = response.substr(0, head_end).find(kField);
    if (at == std::string_view::npos) return {};
    size_t start = at + kField.size();
    return std::string(response.substr(start, response.find("\r\n", start) - start));
}

void set_nodelay(bufferevent* bev) {
    int one = 1;
    setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

void set_port(sockaddr_storage* ss, uint16_t port) {
    if (ss->ss_family == AF_INET) {
        reinterpret_cast<sockaddr_in*>(ss)->sin_port = htons(port);
    } else {
        reinterpret_cast<sockaddr_in6*>(ss)->sin6_port = htons(port);
    }
}

socklen_t addr_len(const sockaddr_storage& ss) {
    return ss.ss_family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
}

}  // namespace

Connection::Connection(Worker& worker, uint64_t id, int fd, const sockaddr* peer, bool pac_only)
    : worker_(worker),
      id_(id),
      client_addr_(format_address(peer)),
      client_ip_(IpAddr::from_sockaddr(peer).value_or(IpAddr{})),
      pac_only_(pac_only),
      client_watch_(worker.base(), this),
      upstream_watch_(worker.base(), this),
      arena_(kArenaBytes, worker.head_memory()) {
    client_.reset(bufferevent_socket_new(worker_.base(), fd, BEV_OPT_CLOSE_ON_FREE));
    timer_.reset(evtimer_new(worker_.base(), timer_cb, this));
    if (client_) {
        // Byte accounting for the access log: what is queued for the client and what is taken
        // from it, whichever path (response, local answer, tunnel) moves the bytes.
        evbuffer_add_cb(bufferevent_get_output(client_.get()), client_output_cb, this);
        evbuffer_add_cb(bufferevent_get_input(client_.get()), client_input_cb, this);
    }
}

Connection::~Connection() {
    relay_.reset();  // before the sockets they move bytes between
    body_pump_.reset();
    req_pump_.reset();
}

// ---- lifecycle -------------------------------------------------------------------------------

void Connection::start() {
    if (!client_ || !timer_) {
        finish("out of memory");
        return;
    }
    set_nodelay(client_.get());
    bufferevent_setcb(client_.get(), client_read_cb, client_write_cb, client_event_cb, this);
    // The read high watermark bounds what we buffer from the client: a head larger than the
    // limit is answered with 431 before this fills, and body bytes wait in the kernel.
    size_t cap = std::max(worker_.config().buffer_bytes, worker_.limits().max_head_bytes + 1024);
    bufferevent_setwatermark(client_.get(), EV_READ, 0, cap);
    bufferevent_enable(client_.get(), EV_READ | EV_WRITE);
    arm_timer(worker_.config().idle_timeout_ms);
    set_idle(true);
    LOG_DEBUG("c=%llu %s accepted", static_cast<unsigned long long>(id_), client_addr_.c_str());
}

void Connection::set_state(State next) {
    auto legal = [&] {
        switch (state_) {
            case State::ReadingHead:
                return next != State::Tunneling;
            case State::Resolving:
                return next != State::Exchanging && next != State::Tunneling;
            case State::Connecting:
                return next != State::Resolving;
            case State::Exchanging:
                return next == State::ReadingHead || next == State::Closing ||
                       next == State::Finished || next == State::Resolving ||
                       next == State::Connecting;
            case State::Tunneling:
                return next == State::Finished;
            case State::Closing:
                return next == State::Finished || next == State::Closing;
            case State::Finished:
                return false;
        }
        return false;
    }();
    assert(legal && "illegal connection state transition");
    (void)legal;
    LOG_DEBUG("c=%llu %s -> %s", static_cast<unsigned long long>(id_), state_name(state_),
              state_name(next));
    state_ = next;
}

void Connection::finish(const char* reason) {
    if (state_ == State::Finished) return;
    if (x_.txn_open) {
        // A tunnel's normal end, or a request cut short: the client left, an error, shutdown.
        bool clean = state_ == State::Tunneling && tunnel_closed_;
        end_txn(clean ? std::string() : std::string(reason));
    }
    end_lookup();
    if (relay_) relay_->stop();
    if (body_pump_) body_pump_->stop();
    if (req_pump_) req_pump_->stop();
    if (timer_) event_del(timer_.get());
    set_idle(false);
    client_watch_.stop();
    upstream_watch_.stop();
    for (bufferevent* bev : {client_.get(), upstream_.get()}) {
        if (!bev) continue;
        bufferevent_disable(bev, EV_READ | EV_WRITE);
        bufferevent_setcb(bev, nullptr, nullptr, nullptr, nullptr);
    }
    LOG_DEBUG("c=%llu %s closed: %s", static_cast<unsigned long long>(id_), client_addr_.c_str(),
              reason);
    set_state(State::Finished);
    worker_.reap(this);
}

void Connection::begin_drain() {
    draining_ = true;
    if (state_ == State::ReadingHead && !x_.head_started) finish("shutting down");
}

void Connection::arm_timer(int64_t ms) {
    timeval tv{static_cast<time_t>(ms / 1000), static_cast<suseconds_t>((ms % 1000) * 1000)};
    evtimer_add(timer_.get(), &tv);
}

void Connection::touch() { last_activity_ms_ = loop_now_ms(worker_.base()); }

bool Connection::idle() const {
    return state_ == State::ReadingHead && !x_.head_started &&
           evbuffer_get_length(bufferevent_get_input(client_.get())) == 0;
}

void Connection::set_idle(bool idle) {
    if (idle == idle_listed_) return;
    idle_listed_ = idle;
    if (idle) {
        worker_.clients().mark_idle(client_ip_,
                                    IdleConnection{worker_.index(), id_, loop_now_ms(worker_.base())});
    } else {
        worker_.clients().clear_idle(client_ip_, id_);
    }
}

void Connection::on_timer() {
    const ServerConfig& cfg = worker_.config();
    switch (state_) {
        case State::ReadingHead:
            if (x_.head_started) {
                reply_error(408, "the request head did not arrive in time");
            } else {
                finish("idle timeout");
            }
            return;
        case State::Resolving:
            end_lookup();
            reply_error(504, "dns lookup for " + x_.target.host + " timed out", true);
            return;
        case State::Connecting:
            x_.connect_error = "connection timed out";
            x_.connect_timed_out = true;
            ++x_.addr_index;
            connect_next();
            return;
        case State::Exchanging: {
            // Lazy deadline: re-armed for the remainder when bytes moved since it was set.
            int64_t last = last_activity_ms_;
            if (body_pump_) last = std::max(last, body_pump_->last_activity_ms());
            if (req_pump_) last = std::max(last, req_pump_->last_activity_ms());
            int64_t idle = loop_now_ms(worker_.base()) - last;
            if (idle < cfg.response_timeout_ms) {
                arm_timer(cfg.response_timeout_ms - idle);
                return;
            }
            fail_upstream(504, "the upstream server " + x_.pool_key + " did not answer within " +
                                   std::to_string(cfg.response_timeout_ms) + " ms");
            return;
        }
        case State::Tunneling: {
            int64_t idle = loop_now_ms(worker_.base()) - relay_->last_activity_ms();
            if (idle < cfg.tunnel_idle_timeout_ms) {
                arm_timer(cfg.tunnel_idle_timeout_ms - idle);
                return;
            }
            finish("tunnel idle timeout");
            return;
        }
        case State::Closing:
            finish(lingering_ ? "closed" : "client did not read the response");
            return;
        case State::Finished:
            return;
    }
}

// ---- client callbacks ------------------------------------------------------------------------

void Connection::on_client_read() {
    switch (state_) {
        case State::ReadingHead:
            process_input();
            return;
        case State::Exchanging:
            pump_request_body();
            return;
        case State::Closing:
            evbuffer_drain(bufferevent_get_input(client_.get()),
                           evbuffer_get_length(bufferevent_get_input(client_.get())));
            return;
        default:
            return;  // bytes wait in the buffer (bounded by the read watermark)
    }
}

void Connection::on_client_write() {
    if (state_ == State::ReadingHead && answers_paused_) {
        // The client took enough of what we answered: read its next request.
        answers_paused_ = false;
        bufferevent_setwatermark(client_.get(), EV_WRITE, 0, 0);
        bufferevent_enable(client_.get(), EV_READ);
        process_input();
        return;
    }
    if (state_ == State::Exchanging && resume_reading(Side::Upstream)) {
        // The client drained enough: take upstream bytes again.
        if (!x_.resp_head_done) read_response_head();
        if (state_ == State::Exchanging && x_.resp_head_done && !x_.resp_done) pump_response_body();
        if (state_ == State::Exchanging && x_.upstream_eof && !x_.upstream_paused && !x_.resp_done) {
            on_upstream_closed(false);  // the EOF seen while paused: now all is relayed
        }
        return;
    }
    if (state_ == State::Closing && !lingering_ &&
        evbuffer_get_length(bufferevent_get_output(client_.get())) == 0) {
        close_after_flush();
    }
}

void Connection::on_client_event(short what) {
    if (what & BEV_EVENT_EOF) {
        client_eof_ = true;
        switch (state_) {
            case State::ReadingHead:
                finish(x_.head_started ? "client closed mid-head" : "client closed");
                return;
            case State::Closing:
                if (lingering_) finish("closed");
                return;
            case State::Resolving:
            case State::Connecting:
            case State::Exchanging:
                if (!x_.req_body_done) {
                    if (state_ == State::Exchanging) pump_request_body();
                    if (!x_.req_body_done && state_ != State::Finished) {
                        finish("client closed mid-request");
                    }
                    return;
                }
                // A client that closes before its answer has begun has gone: nobody would read
                // it, so the lookup, the connect or the upstream exchange ends now (as Squid's
                // half_closed_clients off). Once the response flows, a half-closed client
                // still gets the rest of it.
                if (!x_.response_started) finish("client closed before the response");
                return;
            default:
                return;
        }
    }
    if (what & (BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)) {
        finish(state_ == State::Exchanging && x_.response_started ? "client reset mid-response"
                                                                : "client connection error");
    }
}

// ---- reading the request head ----------------------------------------------------------------

void Connection::process_input() {
    // Pipelined requests answered locally would otherwise recurse once per request.
    if (in_process_) {
        reprocess_ = true;
        return;
    }
    in_process_ = true;
    do {
        reprocess_ = false;
        if (state_ == State::ReadingHead) parse_head();
    } while (reprocess_ && state_ == State::ReadingHead);
    in_process_ = false;
}

void Connection::parse_head() {
    evbuffer* in = bufferevent_get_input(client_.get());
    size_t len = evbuffer_get_length(in);
    if (len == 0) return;
    if (!x_.head_started && output_full()) {
        // Pipelined requests from a client that does not read what we answer: every answer
        // stays queued, so the next request waits (in the kernel) until the client drains.
        answers_paused_ = true;
        bufferevent_disable(client_.get(), EV_READ);
        bufferevent_setwatermark(client_.get(), EV_WRITE, worker_.config().buffer_bytes / 2, 0);
        return;
    }
    const ParseLimits& limits = worker_.limits();
    // The head's deadline replaces the idle timeout once its first bytes are here, but only
    // when the head is not complete in this same read (the usual case is one read, and the next
    // state arms its own timer: one timer change per state).
    const bool first_bytes = !x_.head_started;
    if (first_bytes) {
        x_.head_started = true;
        set_idle(false);
    }
    auto wait_for_rest = [&] {
        if (first_bytes) arm_timer(worker_.config().head_timeout_ms);
    };
    size_t cap = limits.max_head_bytes + 4;
    size_t n = std::min(len, cap);
    const char* data = reinterpret_cast<const char*>(evbuffer_pullup(in, n));
    std::string_view bytes(data, n);
    // Parse when a line may have ended (CR or LF arrived: each complete line is checked at
    // once, so "SSH-2.0-..." or bare-CR heads are refused without waiting for the head timeout),
    // on any other control byte (binary garbage: a TLS ClientHello on the plain port), or when a
    // limit is reached. Plain text bytes alone cannot change the answer: skipping them keeps a
    // slow sender's head from being re-parsed per byte.
    bool control_seen = std::any_of(bytes.begin() + x_.head_scanned, bytes.end(), [](char c) {
        auto u = static_cast<unsigned char>(c);
        return u < 0x20 || u == 0x7f;
    });
    bool first_line_long =
        len > limits.max_request_line &&
        bytes.substr(0, limits.max_request_line + 2).find('\n') == std::string_view::npos;
    x_.head_scanned = n;
    if (!first_line_long && !control_seen && len < cap) {
        wait_for_rest();
        return;
    }

    // Parsed into the arena; what a partial or refused head put there is given back at once,
    // so that a slow or broken head holds no arena block.
    HeadStatus status = HeadStatus::Incomplete;
    std::string error;
    size_t consumed = 0;
    {
        HeadParse<RequestHead> p = parse_request_head(bytes, limits, &arena_);
        status = p.status;
        if (status == HeadStatus::Complete) {
            consumed = p.consumed;
            x_.req = std::move(p.head);  // the same arena: the strings stay where they are
        } else {
            error = std::move(p.error);
        }
    }
    if (status != HeadStatus::Complete) arena_.release();
    switch (status) {
        case HeadStatus::Incomplete:
            if (len >= cap) {
                reply_error(431, "the request head is too large");
            } else {
                wait_for_rest();
            }
            return;
        case HeadStatus::LineTooLong:
            reply_error(414, "the request line is longer than " +
                                 std::to_string(limits.max_request_line) + " bytes");
            return;
        case HeadStatus::HeadersTooLarge:
            reply_error(431, "the request head is too large or has too many fields");
            return;
        case HeadStatus::BadVersion:
            reply_error(505, "only HTTP/1.0 and HTTP/1.1 are supported");
            return;
        case HeadStatus::Malformed:
            reply_error(400, "malformed request: " + error);
            return;
        case HeadStatus::Complete:
            break;
    }
    begin_txn();  // before the drain: the head's bytes count as the request's
    evbuffer_drain(in, consumed);
    x_.head_started = false;
    x_.head_scanned = 0;
    handle_request();
}

void Connection::handle_request() {
    LOG_DEBUG("c=%llu %s %s %s", static_cast<unsigned long long>(id_), client_addr_.c_str(),
              x_.req.method.c_str(), x_.req.target.c_str());
    x_.txn.method = x_.req.method;
    x_.txn.url = x_.req.target;  // until check_policy() has the canonical URL
    // Defaults for a request we answer ourselves: no body read, connection closed unless set.
    x_.req_body_done = true;
    x_.client_keep_alive = false;
    x_.is_connect = false;
    if (pac_only_ || is_pac_request()) {
        serve_pac();
    } else if (x_.req.method == "CONNECT") {
        handle_connect();
    } else if (x_.req.target.starts_with('/') || x_.req.target == "*") {
        handle_origin_form();
    } else {
        handle_absolute_form();
    }
}

void Connection::handle_absolute_form() {
    auto framing = request_framing(x_.req);
    if (!framing) {
        reply_error(400, "ambiguous or invalid message framing (Content-Length/Transfer-Encoding)");
        return;
    }
    if (!accept_absolute_target()) return;
    expect_request_body(*framing);
    x_.client_keep_alive = client_wants_keep_alive(x_.req) && !draining_;
    if (x_.target.kind != HostKind::Name) {
        // An IP literal is checked at once; names after DNS (on_resolved).
        if (auto ip = IpAddr::parse(x_.target.host); ip && refuse_destination(*ip)) return;
    }
    if (!check_policy()) return;
    forward_request();
}

bool Connection::accept_absolute_target() {
    const Header* host = find_header(x_.req.headers, "host");
    if (!host && x_.req.version_minor >= 1) {
        reply_error(400, "HTTP/1.1 requests need a Host header (RFC 9112 section 3.2)");
        return false;
    }
    // The scheme first: file:/// has no authority, yet the right answer is "not supported".
    if (size_t colon = x_.req.target.find("://"); colon != std::string::npos && colon > 0) {
        std::string scheme(std::string_view(x_.req.target).substr(0, colon));
        std::transform(scheme.begin(), scheme.end(), scheme.begin(),
                       [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
        if (scheme != "http") {
            reply_error(501, "hallpass relays http:// URLs; " + scheme +
                                 ":// is not supported (HTTPS goes through CONNECT)");
            return false;
        }
    }
    auto uri = parse_absolute_uri(x_.req.target);
    if (!uri) {
        reply_error(400, "bad request target: " + uri.error().message);
        return false;
    }
    // The absolute-form target decides where the request goes (RFC 9112 §3.2.2); a Host header
    // that is not even a valid host is a sign of an attempt to confuse someone along the path.
    // (Usually the Host header spells the target's authority exactly: no need to parse it.)
    if (host && !iequals(host->value, uri->authority.host_header(80))) {
        if (!parse_authority(host->value, false, 80)) {
            reply_error(400, "invalid Host header");
            return false;
        }
    }
    const PortRanges& http_ports = worker_.config().http_ports;
    if (!http_ports.empty() && !http_ports.contains(uri->authority.port)) {
        reply_error(403, "plain HTTP to port " + std::to_string(uri->authority.port) +
                             " is not allowed (server.http_ports)");
        return false;
    }
    x_.uri = std::move(*uri);
    x_.target = x_.uri.authority;
    return true;
}

void Connection::expect_request_body(const Framing& framing) {
    x_.req_framing = framing;
    x_.req_body_done = framing.kind == BodyKind::None ||
                       (framing.kind == BodyKind::Length && framing.length == 0);
    x_.req_body = BodyCursor::of(framing);
}

void Connection::forward_request() {
    x_.upstream_head = serialize_upstream_request(x_.req, x_.uri, x_.req_framing, true);
    x_.pool_key = pool_key();
    x_.retries = 0;
    if (UpstreamPool::Pooled idle = worker_.pool().take(x_.pool_key)) {
        upstream_ = std::move(idle.bev);
        x_.upstream_reused = true;
        x_.txn.upstream_reused = true;
        x_.txn.upstream = std::move(idle.peer);
        bufferevent_setcb(upstream_.get(), upstream_read_cb, upstream_write_cb, upstream_event_cb,
                          this);
        set_state(State::Exchanging);
        send_request();
        return;
    }
    open_upstream(upstream_authority());
}

void Connection::handle_connect() {
    auto authority = parse_authority(x_.req.target, true);
    if (!authority) {
        reply_error(400, "bad CONNECT target: " + authority.error().message);
        return;
    }
    x_.target = std::move(*authority);
    if (!worker_.config().connect_ports.contains(x_.target.port)) {
        reply_error(403, "CONNECT to port " + std::to_string(x_.target.port) +
                             " is not allowed (server.connect_ports)");
        return;
    }
    x_.is_connect = true;
    if (x_.target.kind != HostKind::Name) {
        if (auto ip = IpAddr::parse(x_.target.host); ip && refuse_destination(*ip)) return;
    }
    if (!check_policy()) return;
    x_.pool_key = pool_key();
    open_upstream(upstream_authority());
}

std::string Connection::pool_key() const {
    // A connection made to a safe-search address must not serve another client unfiltered, nor
    // the reverse: the enforcement name is part of the key.
    std::string key = x_.target.host_port();
    if (x_.safe_search) key.append(" via ").append(x_.safe_search);
    return key;
}

Authority Connection::upstream_authority() const {
    if (!x_.safe_search) return x_.target;
    Authority a = x_.target;
    a.host = x_.safe_search;
    a.kind = HostKind::Name;
    return a;
}

void Connection::handle_origin_form() {
    // Not a proxy request: somebody opened the proxy's address in a browser (the info page), or
    // a client was configured with the proxy as its web server, or sends requests meant for
    // another server here (refused: hallpass is no one's web server).
    learn_local_address();
    const Header* host = find_header(x_.req.headers, "host");
    std::optional<Authority> self;
    if (host) {
        auto a = parse_authority(host->value, false, 0);
        if (a && (a->port == 0 || a->port == local_port_) && names_this_host(*a)) self = *a;
    } else {
        self = Authority{local_ip_.to_string(), local_ip_.v6 ? HostKind::Ipv6 : HostKind::Ipv4};
    }
    if (!self) {
        reply_error(400,
                    "hallpass is a proxy, not a web server: set it as your browser's proxy "
                    "(this request was for " +
                        std::string(host->value) + ")");
        return;
    }
    size_t query = x_.req.target.find('?');
    answer_self(*self, local_port_, x_.req.target.substr(0, query));
}

// Where the client reached us: asked only for requests to hallpass itself (rare), not for every
// connection.
void Connection::learn_local_address() {
    sockaddr_storage local{};
    socklen_t local_len = sizeof local;
    if (local_port_ == 0 && getsockname(bufferevent_getfd(client_.get()),
                                        reinterpret_cast<sockaddr*>(&local), &local_len) == 0) {
        const auto* sa = reinterpret_cast<const sockaddr*>(&local);
        local_ip_ = IpAddr::from_sockaddr(sa).value_or(IpAddr{});
        local_port_ = port_of(sa);
    }
}

bool Connection::is_pac_request() const {
    const std::string_view target = x_.req.target;
    const std::string_view path = target.substr(0, target.find('?'));
    return path == "/proxy.pac" || path == "/wpad.dat";
}

std::string Connection::pac_proxy_address() {
    learn_local_address();
    IpAddr ip = local_ip_;
    uint16_t port = local_port_;
    if (pac_only_) {
        // Reached on the auto-config port: the proxy listener on the same address (or on every
        // address), else the first proxy listener.
        const SelfAddress* same = nullptr;
        const SelfAddress* first = nullptr;
        for (const SelfAddress& s : worker_.shared().self) {
            if (s.admin || s.pac) continue;
            if (!first) first = &s;
            if (s.any || (s.ip.v6 == ip.v6 && s.ip.hi == ip.hi && s.ip.lo == ip.lo)) {
                same = &s;
                break;
            }
        }
        if (same) {
            port = same->port;
        } else if (first) {
            ip = first->ip;
            port = first->port;
        }
    }
    const std::string host = ip.v6 ? "[" + ip.to_string() + "]" : ip.to_string();
    return host + ":" + std::to_string(port);
}

void Connection::serve_pac() {
    x_.txn.kind = Transaction::Kind::Local;
    const bool is_head = x_.req.method == "HEAD";
    if (!is_pac_request()) {
        reply_error(404,
                    "this address serves only the proxy auto-config file: /proxy.pac, /wpad.dat",
                    true);
        return;
    }
    if (x_.req.method != "GET" && !is_head) {
        reply_error(405, "the proxy auto-config file is fetched with GET", true);
        return;
    }
    auto framing = request_framing(x_.req);
    const bool keep_alive =
        framing && framing->kind == BodyKind::None && client_wants_keep_alive(x_.req) && !draining_;
    x_.client_keep_alive = keep_alive;
    x_.txn.status = 200;
    const PacConfig& pac = worker_.config().pac;
    const std::string proxy = pac_proxy_address();
    const std::string script =
        make_pac_script({pac.direct_domains, pac.direct_nets, pac.fallback_direct, proxy});
    reply(make_pac_response(script, keep_alive, is_head), keep_alive);
}

bool Connection::names_this_host(const Authority& a) const {
    const SharedState& shared = worker_.shared();
    if (a.kind != HostKind::Name) {
        auto ip = IpAddr::parse(a.host);
        return ip && shared.local_addresses.contains(*ip);
    }
    if (a.host == "localhost") return true;
    for (const std::string& name : shared.own_names) {
        // The host name, alone or with a domain (proxybox, proxybox.lan, proxybox.local).
        if (a.host == name || (a.host.starts_with(name) && a.host[name.size()] == '.')) {
            return true;
        }
    }
    return false;
}

void Connection::answer_self(const Authority& self, uint16_t port, std::string_view path) {
    bool is_head = x_.req.method == "HEAD";
    x_.txn.kind = Transaction::Kind::Local;
    if (x_.req.method != "GET" && !is_head) {
        reply_error(405, "hallpass is a proxy: send absolute-form requests (GET http://host/...)");
        return;
    }
    if (path != "/") {
        reply_error(404, "hallpass serves only its information page, at /", true);
        return;
    }
    auto framing = request_framing(x_.req);
    bool keep_alive =
        framing && framing->kind == BodyKind::None && client_wants_keep_alive(x_.req) && !draining_;
    x_.client_keep_alive = keep_alive;
    x_.txn.status = 200;
    std::string shown = self.kind == HostKind::Ipv6 ? "[" + self.host + "]" : self.host;
    // This device's own recent blocks: a refused HTTPS site shows only as the browser's
    // connection error, and this is where the person at the device can see why.
    std::string device;
    if (const Stats* stats = worker_.shared().stats) {
        device = device_section_html(client_ip_, worker_.rules()->groups_of(client_ip_),
                                     stats->recent_blocks(kDeviceRecentBlocks, &client_ip_));
    }
    reply(make_info_response(shown, port, keep_alive, is_head, device), keep_alive);
}

bool Connection::check_policy() {
    // The rule engine's decision point: the request head is parsed and the target canonical;
    // nothing has been resolved or connected yet, so a blocked request never reaches the network.
    x_.rules = worker_.rules();
    const RuleSet& rules = *x_.rules;
    std::string url = !x_.is_connect && rules.needs_url() ? rules_url() : std::string();
    RequestFacts facts{client_ip_, x_.target.host, x_.target.kind, x_.target.port,
                       url,        worker_.now_s()};
    const Verdict verdict = decide_request(rules, worker_.grants().get(), facts);
    x_.decided_rule = verdict.decision.rule;
    x_.granted = verdict.grant != nullptr;
    x_.txn.rule = verdict_name(rules, verdict);
    x_.txn.url = x_.is_connect ? x_.target.host_port() : request_url();
    x_.txn.host = x_.target.host;
    x_.txn.port = x_.target.port;
    if (!verdict.blocked()) {
        x_.txn.kind = x_.is_connect ? Transaction::Kind::Tunnel : Transaction::Kind::Relayed;
        // Safe search: the same request, to the provider's enforcement addresses.
        if (const char* name = rules.safe_search_target(facts)) {
            x_.safe_search = name;
            x_.txn.safe_search = name;
        }
        return true;
    }
    reply_blocked(x_.txn.rule, verdict_message(rules, verdict),
                  verdict_until_label(rules, verdict, facts.now_s));
    return false;
}

void Connection::reply_blocked(const std::string& rule, std::string message, std::string until) {
    x_.txn.rule = rule;
    x_.txn.kind = Transaction::Kind::Blocked;
    x_.txn.status = 403;
    LOG_DEBUG("c=%llu %s blocked %s by rule \"%s\"", static_cast<unsigned long long>(id_),
              client_addr_.c_str(), x_.target.host_port().c_str(), rule.c_str());
    // A blocked request without a body keeps its connection: the browser's next request may be
    // for an allowed host. One with a body is closed (the body is never read).
    bool keep_alive = x_.client_keep_alive && x_.req_body_done && !x_.is_connect;
    const std::string shown_url = x_.is_connect ? x_.target.host_port() : request_url();
    const std::string client = client_ip_.to_string();
    const std::string group = x_.rules->groups_of(client_ip_);
    BlockPage page{.host = x_.target.host,
                   .rule = rule,
                   .client = client,
                   .group = group,
                   .url = shown_url,
                   .message = message,
                   .until = until};
    std::string response = make_block_response(x_.rules->block_page_template(), page, keep_alive,
                                               x_.req.method == "HEAD");
    x_.txn.message = std::move(message);  // before reply(), which hands the record on
    reply(response, keep_alive);
}

void Connection::remember_request() {
    if (!x_.rules || x_.txn.kind == Transaction::Kind::Blocked) {
        last_host_.clear();
        return;
    }
    last_host_ = x_.target.host;
    last_kind_ = x_.target.kind;
    last_port_ = x_.target.port;
    // The URL only when rules look at URLs, and not a long one: an idle connection keeps it.
    last_url_.clear();
    if (x_.rules->needs_url() && !x_.is_connect) {
        std::string url = rules_url();
        if (url.size() <= kMaxKeptUrl) last_url_ = std::move(url);
    }
}

void Connection::recheck_policy(const RuleSet& rules, const GrantSet& grants, int64_t now_s) {
    // A tunnel, a request still resolving or connecting (nothing answered yet), or, kept alive
    // between requests, the last request it carried. An HTTP exchange under way finishes (it
    // was allowed when it started; its connection's next request is decided anew).
    std::string_view host;
    HostKind kind = HostKind::Name;
    uint16_t port = 0;
    std::string url;
    const bool pending = state_ == State::Resolving || state_ == State::Connecting;
    if ((state_ == State::Tunneling || pending) && x_.rules) {
        host = x_.target.host;
        kind = x_.target.kind;
        port = x_.target.port;
        if (!x_.is_connect && rules.needs_url()) url = rules_url();
    } else if (state_ == State::ReadingHead && idle() && !last_host_.empty()) {
        host = last_host_;
        kind = last_kind_;
        port = last_port_;
        url = last_url_;
    } else {
        return;
    }
    RequestFacts facts{client_ip_, host, kind, port, url, now_s};
    const Verdict verdict = decide_request(rules, &grants, facts);
    if (!verdict.blocked()) return;
    const std::string name = verdict_name(rules, verdict);
    if (pending) {
        // Not connected yet: the client gets the block page, as if it had asked a moment later.
        end_lookup();
        free_upstream();
        x_.rules = worker_.rules();
        reply_blocked(name, verdict_message(rules, verdict),
                      verdict_until_label(rules, verdict, now_s));
        return;
    }
    LOG_INFO("c=%llu %s: closing %s to %s: now blocked by rule \"%s\"",
             static_cast<unsigned long long>(id_), client_addr_.c_str(),
             state_ == State::Tunneling ? "tunnel" : "idle connection", std::string(host).c_str(),
             name.c_str());
    closed_by_rule_ = "now blocked by rule \"" + name + "\"";
    finish(closed_by_rule_.c_str());
}

// The checks on where a request would go, before anything connects there: hallpass's own
// listeners (a loop) and this host's own services (local destinations). True when refused (the
// answer is on its way).
bool Connection::refuse_destination(const IpAddr& ip) {
    const SharedState& shared = worker_.shared();
    // Only a refusal fills in the target here (an IP literal is refused before check_policy()
    // does); the allowed path, every request, pays for no string.
    auto note_target = [this] {
        x_.txn.url = x_.is_connect ? x_.target.host_port() : request_url();
        x_.txn.host = x_.target.host;
        x_.txn.port = x_.target.port;
    };
    bool admin = false;
    if (shared.is_self(ip, x_.target.port, &admin)) {
        note_target();
        if (!x_.is_connect && !admin) {
            // A browser set to use the proxy, asked for the proxy's own address: it is
            // answered here, as if asked directly, and never forwarded.
            answer_self(x_.target, x_.target.port,
                        x_.uri.path_and_query.substr(0, x_.uri.path_and_query.find('?')));
            return true;
        }
        reply_error(403,
                    "refusing to connect to hallpass itself (" + x_.target.host_port() +
                        "): that would be a loop",
                    true);
        return true;
    }
    if (shared.destinations.refuses(ip, x_.target.port)) {
        note_target();
        x_.txn.rule = "local-destination";
        std::string where = ip.to_string() + " port " + std::to_string(x_.target.port);
        reply_error(403,
                    "local destination: " + x_.target.host_port() +
                        (x_.target.kind == HostKind::Name ? " resolves to " + where : std::string()) +
                        ", an address of the proxy host itself (server.allow_local_destinations)",
                    true);
        return true;
    }
    return false;
}

bool Connection::output_full() const {
    return evbuffer_get_length(bufferevent_get_output(client_.get())) >= worker_.config().buffer_bytes;
}

void Connection::pause_reading(Side from) {
    bool& paused = reads_paused(from);
    if (paused) return;
    paused = true;
    bufferevent* source = bev(from);
    bufferevent_disable(source, EV_READ);
    bufferevent_setwatermark(bev(from == Side::Client ? Side::Upstream : Side::Client), EV_WRITE,
                             worker_.config().buffer_bytes / 2, 0);
    // Out of memory: not watched; the response timeout still applies.
    (void)watch_of(from).watch(static_cast<int>(bufferevent_getfd(source)));
}

bool Connection::resume_reading(Side from) {
    bool& paused = reads_paused(from);
    if (!paused) return false;
    paused = false;
    watch_of(from).stop();
    bufferevent_setwatermark(bev(from == Side::Client ? Side::Upstream : Side::Client), EV_WRITE, 0,
                             0);
    bufferevent_enable(bev(from), EV_READ);
    touch();
    return true;
}

// The paused side was reset: the client, mid-upload, or the upstream, mid-response (the bytes
// it sent before are lost with it: the response is cut short either way).
void Connection::on_reset(ResetWatch& watch, int err) {
    if (&watch == &upstream_watch_) {
        x_.upstream_paused = false;
        on_upstream_closed(true);
        return;
    }
    finish(err == ECONNRESET ? "client reset mid-request" : "client connection error");
}

std::string Connection::request_url() const {
    return "http://" + x_.target.host_header(80) + x_.uri.path_and_query;
}

std::string Connection::rules_url() const {
    return "http://" + x_.target.host_header(80) + normalize_path(x_.uri.path_and_query);
}

void Connection::next_request() {
    remember_request();
    set_state(State::ReadingHead);
    x_ = Exchange(&arena_);  // nothing of the previous request is left over
    arena_.release();        // ...not even its memory
    answers_paused_ = false;
    client_watch_.stop();
    upstream_watch_.stop();
    bufferevent_setwatermark(client_.get(), EV_WRITE, 0, 0);
    bufferevent_enable(client_.get(), EV_READ);
    if (draining_) {
        close_after_flush();
        return;
    }
    arm_timer(worker_.config().idle_timeout_ms);
    if (evbuffer_get_length(bufferevent_get_input(client_.get())) > 0) {
        process_input();
    } else {
        set_idle(true);
    }
}

// ---- resolving and connecting ----------------------------------------------------------------

void Connection::open_upstream(const Authority& target) {
    x_.addrs.clear();
    x_.addr_index = 0;
    x_.connect_error.clear();
    x_.connect_timed_out = false;
    if (target.kind != HostKind::Name) {
        DnsAnswer literal;
        literal.addresses.resize(1);
        auto r = parse_listen_address(target.kind == HostKind::Ipv6 ? "[" + target.host + "]:0"
                                                                    : target.host + ":0");
        assert(r && "canonical IP literal must parse");
        literal.addresses[0] = r->addr;
        set_state(State::Resolving);
        on_resolved(literal);
        return;
    }
    set_state(State::Resolving);
    x_.phase_start_ms = loop_now_ms(worker_.base());
    x_.txn.dns_ms = 0;
    if (auto known = worker_.dns().known(target.host)) {
        x_.txn.dns_cached = true;
        on_resolved(*known);
        return;
    }
    const int per_client = worker_.config().max_dns_lookups_per_client;
    if (!worker_.clients().try_add_lookup(client_ip_, per_client)) {
        reply_error(503,
                    "too many DNS lookups in flight from your address (server."
                    "max_dns_lookups_per_client: " +
                        std::to_string(per_client) + "); try again shortly",
                    true);
        return;
    }
    lookup_counted_ = true;
    arm_timer(worker_.config().dns_timeout_ms + 1000);
    auto answer = worker_.dns().resolve(
        target.host,
        [this](const DnsAnswer& a) {
            dns_ticket_ = 0;
            end_lookup();
            on_resolved(a);
        },
        &dns_ticket_);
    if (answer) {
        end_lookup();
        on_resolved(*answer);
    }
}

void Connection::end_lookup() {
    if (dns_ticket_) {
        worker_.dns().cancel(dns_ticket_);
        dns_ticket_ = 0;
    }
    if (lookup_counted_) {
        lookup_counted_ = false;
        worker_.clients().remove_lookup(client_ip_);
    }
}

void Connection::on_resolved(const DnsAnswer& answer) {
    if (x_.txn.dns_ms >= 0) x_.txn.dns_ms = loop_now_ms(worker_.base()) - x_.phase_start_ms;
    if (!answer.ok()) {
        reply_error(502,
                    answer.error.empty() ? "dns lookup failed for " + x_.target.host : answer.error,
                    true);
        return;
    }
    x_.addrs = answer.addresses;
    // Every address is checked, not only the first: a rebinding answer may mix a public address
    // with 127.0.0.1, and connect_next() would try the next one after a failure.
    const bool second_check = x_.rules && x_.rules->has_dest_nets() && !x_.granted;
    std::string url = second_check && !x_.is_connect && x_.rules->needs_url() ? rules_url() : "";
    RequestFacts facts{client_ip_, x_.target.host, x_.target.kind, x_.target.port, url};
    for (auto& a : x_.addrs) {
        set_port(&a, x_.target.port);
        auto ip = IpAddr::from_sockaddr(reinterpret_cast<const sockaddr*>(&a));
        if (!ip) continue;
        if (refuse_destination(*ip)) return;
        if (!second_check) continue;
        Decision d = x_.rules->decide_address(facts, *ip, Decision{Action::Allow, x_.decided_rule});
        if (d.action == Action::Block) {
            reply_blocked(x_.rules->rule_name(d.rule), x_.rules->rule_message(d.rule), "");
            return;
        }
    }
    x_.addr_index = 0;
    connect_next();
}

void Connection::connect_next() {
    free_upstream();
    if (x_.addr_index >= x_.addrs.size()) {
        std::string detail = "cannot connect to " + x_.pool_key + " (" + x_.connect_error + ")";
        reply_error(x_.connect_timed_out ? 504 : 502, detail, true);
        return;
    }
    if (state_ != State::Connecting) {
        set_state(State::Connecting);
        x_.phase_start_ms = loop_now_ms(worker_.base());
    }
    const sockaddr_storage& addr = x_.addrs[x_.addr_index];
    x_.txn.upstream = format_address(reinterpret_cast<const sockaddr*>(&addr));
    x_.txn.upstream_reused = false;
    upstream_.reset(bufferevent_socket_new(worker_.base(), -1, BEV_OPT_CLOSE_ON_FREE));
    if (!upstream_) {
        reply_error(502, "out of resources", true);
        return;
    }
    x_.upstream_reused = false;
    bufferevent_setcb(upstream_.get(), upstream_read_cb, upstream_write_cb, upstream_event_cb, this);
    arm_timer(worker_.config().connect_timeout_ms);
    // Failure is reported either here (-1) or later through on_upstream_event (refused).
    if (bufferevent_socket_connect(upstream_.get(), reinterpret_cast<const sockaddr*>(&addr),
                                   addr_len(addr)) < 0) {
        x_.connect_error = std::strerror(errno);
        ++x_.addr_index;
        connect_next();
    }
}

void Connection::on_upstream_event(short what) {
    if (state_ == State::Connecting) {
        if (what & BEV_EVENT_CONNECTED) {
            on_upstream_connected();
            return;
        }
        int err = EVUTIL_SOCKET_ERROR();
        x_.connect_error = err ? evutil_socket_error_to_string(err) : "connection failed";
        if (err == ECONNREFUSED) x_.connect_error = "connection refused";
        ++x_.addr_index;
        connect_next();
        return;
    }
    if (state_ != State::Exchanging) return;
    if (what & BEV_EVENT_EOF) {
        on_upstream_closed(false);
    } else if (what & (BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)) {
        on_upstream_closed(true);
    }
}

void Connection::on_upstream_connected() {
    x_.txn.connect_ms = loop_now_ms(worker_.base()) - x_.phase_start_ms;
    set_nodelay(upstream_.get());
    x_.addrs.clear();
    x_.addrs.shrink_to_fit();
    if (x_.is_connect) {
        start_tunnel();
        return;
    }
    set_state(State::Exchanging);
    send_request();
}

// ---- exchanging ------------------------------------------------------------------------------

void Connection::send_request() {
    const ServerConfig& cfg = worker_.config();
    x_.resp_head_done = x_.response_started = x_.resp_done = x_.upstream_eof = false;
    x_.upstream_paused = false;
    x_.resp_status = 0;
    x_.interim_responses = 0;
    bufferevent_setwatermark(upstream_.get(), EV_READ, 0, cfg.buffer_bytes);
    bufferevent_setwatermark(upstream_.get(), EV_WRITE, 0, 0);
    // The head goes out now if the socket takes it (it nearly always does): then no write event
    // is armed, which would cost two epoll_ctl calls and a loop turn per request.
    bufferevent_enable(upstream_.get(), EV_READ);
    if (!(bufferevent_get_enabled(upstream_.get()) & EV_WRITE)) {
        bufferevent_enable(upstream_.get(), EV_WRITE);  // a pump had turned it off
    }
    send_now(Side::Upstream, x_.upstream_head, nullptr, 0);
    touch();
    arm_timer(cfg.response_timeout_ms);
    pump_request_body();
}

bool Connection::request_can_bypass() const {
    constexpr uint64_t kMinBody = 64 * 1024;
    return worker_.pipes() && x_.req_framing.kind == BodyKind::Length && !client_eof_ &&
           x_.req_body.remaining >=
               kMinBody + evbuffer_get_length(bufferevent_get_input(client_.get()));
}

void Connection::start_request_pump() {
    // The client's input steps aside (its output still carries the response), and so does the
    // upstream's output: the head queued there goes first, then the body bytes read with the
    // client's head, then the rest socket to socket.
    x_.client_paused = false;
    client_watch_.stop();
    bufferevent_disable(client_.get(), EV_READ);
    bufferevent_disable(upstream_.get(), EV_WRITE);
    bufferevent_setwatermark(upstream_.get(), EV_WRITE, 0, 0);
    evbuffer* early = bufferevent_get_input(client_.get());
    const size_t n =
        static_cast<size_t>(std::min<uint64_t>(evbuffer_get_length(early), x_.req_body.remaining));
    req_pump_ = std::make_unique<Pump>(
        worker_.base(), static_cast<int>(bufferevent_getfd(client_.get())),
        static_cast<int>(bufferevent_getfd(upstream_.get())), worker_.config().buffer_bytes,
        worker_.pipes(), this, x_.req_body.remaining - n);
    evbuffer* queued = bufferevent_get_output(upstream_.get());
    evbuffer_unfreeze(queued, 1);  // bufferevent_socket keeps the start of its output frozen
    bool ok = req_pump_->preload(queued);
    evbuffer_freeze(queued, 1);
    // The body bytes that came with the head leave the client's input (its callback counts
    // them) without counting as the pump's.
    EvbufferPtr part(evbuffer_new());
    ok = ok && part && evbuffer_remove_buffer(early, part.get(), n) == static_cast<int>(n) &&
         req_pump_->preload(part.get());
    if (!ok || !req_pump_->start()) {
        req_pump_.reset();
        finish("out of memory");
    }
}

void Connection::on_request_pump_end(Pump& pump, Pump::Step how) {
    std::unique_ptr<Pump> ended = std::move(req_pump_);  // freed when this returns
    client_in_total_ += pump.moved();  // request bytes that went around the client's buffer
    touch();
    switch (how) {
        case Pump::Step::Done:
            x_.req_body.remaining = 0;
            x_.req_body_done = true;
            bufferevent_enable(client_.get(), EV_READ);
            bufferevent_enable(upstream_.get(), EV_WRITE);
            if (x_.resp_done) on_response_complete();
            return;
        case Pump::Step::Eof:
            client_eof_ = true;
            finish("client closed mid-request");
            return;
        case Pump::Step::SourceError:
            finish("client connection error");
            return;
        case Pump::Step::SinkError:
            // The upstream stopped taking the body (it may have answered early, or reset).
            if (!x_.response_started) {
                fail_upstream(502, "the upstream server " + x_.pool_key +
                                       " reset the connection during the request body");
            } else {
                x_.client_keep_alive = false;
                abort_response();
            }
            return;
        case Pump::Step::NeedMore:
        case Pump::Step::Paused:
            return;
    }
}

void Connection::pump_request_body() {
    if (x_.req_body_done || state_ != State::Exchanging) return;
    if (req_pump_) return;  // the pump moves the body
    if (request_can_bypass()) {
        start_request_pump();
        return;
    }
    evbuffer* in = bufferevent_get_input(client_.get());
    evbuffer* out = bufferevent_get_output(upstream_.get());
    const size_t high = worker_.config().buffer_bytes;
    size_t queued = evbuffer_get_length(out) + evbuffer_get_length(in);
    if (!x_.client_paused && !client_eof_ && queued < high) read_more(client_.get(), high - queued);
    const size_t before = evbuffer_get_length(in);
    const Pump::Step step = copy_body(in, out, x_.req_body, high);
    if (evbuffer_get_length(in) != before) touch();
    switch (step) {
        case Pump::Step::Done:
            x_.req_body_done = true;
            if (x_.resp_done) on_response_complete();
            return;
        case Pump::Step::Paused:
            // The upstream is slow to take the body: stop reading the client until it drains.
            pause_reading(Side::Client);
            return;
        case Pump::Step::SourceError:
            // The head already went upstream: the exchange cannot be saved.
            if (!x_.response_started) {
                free_upstream();
                reply_error(400, "bad chunked request body");
            } else {
                finish("bad chunked request body");
            }
            return;
        default:
            return;
    }
}

void Connection::on_upstream_write() {
    if (state_ != State::Exchanging || !resume_reading(Side::Client)) return;
    pump_request_body();
}

void Connection::on_upstream_read() {
    if (state_ != State::Exchanging) return;
    touch();
    if (!x_.resp_head_done) read_response_head();
    if (state_ == State::Exchanging && x_.resp_head_done && !x_.resp_done) pump_response_body();
}

void Connection::read_response_head() {
    evbuffer* in = bufferevent_get_input(upstream_.get());
    const ParseLimits& limits = worker_.limits();
    // A response head may be larger than we allow clients; servers set many cookies.
    ParseLimits resp_limits{limits.max_head_bytes, std::max<size_t>(limits.max_head_bytes, 65536),
                            std::max<size_t>(limits.max_headers, 200)};
    while (size_t len = evbuffer_get_length(in)) {
        if (output_full()) {
            // Interim responses wait like body bytes while the client does not read.
            pause_reading(Side::Upstream);
            return;
        }
        size_t n = std::min(len, resp_limits.max_head_bytes + 4);
        const char* data = reinterpret_cast<const char*>(evbuffer_pullup(in, n));
        // The head lives only in this call: its strings go to the stack (the heap beyond).
        alignas(std::max_align_t) std::byte stack[kResponseArenaBytes];
        std::pmr::monotonic_buffer_resource arena(stack, sizeof stack);
        HeadParse<ResponseHead> p =
            parse_response_head(std::string_view(data, n), resp_limits, &arena);
        if (p.status == HeadStatus::Incomplete) {
            if (n >= resp_limits.max_head_bytes + 4) {
                fail_upstream(502, "the upstream response head is too large");
            }
            return;
        }
        if (p.status != HeadStatus::Complete) {
            fail_upstream(502, "invalid response from upstream " + x_.pool_key + ": " +
                                   (p.error.empty() ? "bad status line" : p.error));
            return;
        }
        evbuffer_drain(in, p.consumed);
        if (p.head.status >= 100 && p.head.status < 200) {
            if (!forward_interim(p.head)) return;
            continue;
        }
        start_response(p.head);
        return;
    }
}

bool Connection::forward_interim(const ResponseHead& head) {
    if (head.status == 101) {
        // We never forward Upgrade, so a switch was not asked for.
        fail_upstream(502, "the upstream switched protocols unasked");
        return false;
    }
    if (++x_.interim_responses > kMaxInterimResponses) {
        x_.client_keep_alive = false;  // a hostile upstream: the client starts afresh
        fail_upstream(502, "the upstream server " + x_.pool_key + " sent more than " +
                               std::to_string(kMaxInterimResponses) + " interim (1xx) responses");
        return false;
    }
    // Interim responses (100 Continue, 103 Early Hints) go to HTTP/1.1 clients only
    // (RFC 9110 §15.2).
    if (x_.req.version_minor >= 1) {
        std::string interim = serialize_client_response(head, 1, Framing{BodyKind::None, 0},
                                                        ClientBodyCoding::AsIs, true);
        bufferevent_write(client_.get(), interim.data(), interim.size());
    }
    return true;
}

void Connection::start_response(const ResponseHead& head) {
    auto framing = response_framing(head, x_.req.method);
    if (!framing) {
        fail_upstream(502, "the upstream response has invalid framing");
        return;
    }
    x_.resp_framing = *framing;
    x_.resp_status = head.status;
    x_.txn.status = head.status;
    if (const Header* ct = find_header(head.headers, "content-type")) {
        x_.txn.content_type = ct->value;
    }
    x_.resp_body = BodyCursor::of(x_.resp_framing, x_.req.version_minor == 0);
    x_.upstream_reusable = upstream_allows_reuse(head, x_.resp_framing);
    x_.client_keep_alive = x_.client_keep_alive && !draining_ && !x_.resp_body.dechunk &&
                           x_.resp_framing.kind != BodyKind::UntilClose;
    std::string out = serialize_client_response(
        head, x_.req.version_minor, x_.resp_framing,
        x_.resp_body.dechunk ? ClientBodyCoding::Dechunk : ClientBodyCoding::AsIs,
        x_.client_keep_alive);
    // The head and as much of a Content-Length body as has arrived go out in one send when the
    // client's socket takes them.
    evbuffer* body = bufferevent_get_input(upstream_.get());
    size_t body_now = 0;
    if (x_.resp_framing.kind == BodyKind::Length) {
        body_now = static_cast<size_t>(std::min<uint64_t>(
            {x_.resp_body.remaining, evbuffer_get_length(body), worker_.config().buffer_bytes}));
    }
    x_.resp_body.remaining -= send_now(Side::Client, out, body, body_now);
    x_.response_started = true;
    x_.resp_head_done = true;
    LOG_DEBUG("c=%llu %s %s -> %d", static_cast<unsigned long long>(id_), x_.req.method.c_str(),
              x_.req.target.c_str(), head.status);
    if (x_.resp_framing.kind == BodyKind::None ||
        (x_.resp_framing.kind == BodyKind::Length && x_.resp_body.remaining == 0)) {
        x_.resp_done = true;
        on_response_complete();
    }
}

bool Connection::body_can_bypass() const {
    constexpr uint64_t kMinBody = 64 * 1024;  // smaller bodies cost less to copy than to set up
    if (!worker_.pipes() || x_.resp_body.dechunk || !x_.req_body_done) return false;
    if (evbuffer_get_length(bufferevent_get_output(upstream_.get())) != 0) return false;
    if (x_.resp_framing.kind == BodyKind::UntilClose) return true;
    return x_.resp_framing.kind == BodyKind::Length &&
           x_.resp_body.remaining >=
               kMinBody + evbuffer_get_length(bufferevent_get_input(upstream_.get()));
}

void Connection::start_body_pump() {
    // The buffers step aside: what the client's output holds (the response head, maybe some
    // body) and what the upstream's input holds go first, then the rest socket to socket.
    x_.upstream_paused = false;
    upstream_watch_.stop();
    for (bufferevent* bev : {client_.get(), upstream_.get()}) {
        bufferevent_disable(bev, EV_READ | EV_WRITE);
        bufferevent_setwatermark(bev, EV_WRITE, 0, 0);
    }
    const uint64_t limit =
        x_.resp_framing.kind == BodyKind::Length ? x_.resp_body.remaining : Pump::kNoLimit;
    body_pump_ = std::make_unique<Pump>(
        worker_.base(), static_cast<int>(bufferevent_getfd(upstream_.get())),
        static_cast<int>(bufferevent_getfd(client_.get())), worker_.config().buffer_bytes,
        worker_.pipes(), this, limit);
    evbuffer* queued = bufferevent_get_output(client_.get());
    evbuffer_unfreeze(queued, 1);  // bufferevent_socket keeps the start of its output frozen
    bool ok = body_pump_->preload(queued);
    evbuffer_freeze(queued, 1);
    ok = ok && body_pump_->preload_source(bufferevent_get_input(upstream_.get()));
    if (!ok || !body_pump_->start()) {
        body_pump_.reset();
        finish("out of memory");
    }
}

void Connection::on_pump_end(Pump& pump, Pump::Step how) {
    if (&pump == req_pump_.get()) {
        on_request_pump_end(pump, how);
        return;
    }
    // The pump is done with the sockets; it is freed when this returns (it touches nothing
    // after calling here).
    std::unique_ptr<Pump> ended = std::move(body_pump_);
    client_out_total_ += pump.moved();  // body bytes that went around the client's buffer
    touch();
    if (how == Pump::Step::SinkError) {
        finish("client reset mid-response");
        return;
    }
    bufferevent_enable(client_.get(), EV_WRITE);
    if (x_.resp_framing.kind == BodyKind::Length) x_.resp_body.remaining = pump.remaining();
    const bool complete = how == Pump::Step::Done ||
                          (how == Pump::Step::Eof && x_.resp_framing.kind == BodyKind::UntilClose);
    if (!complete) {
        LOG_DEBUG("c=%llu %s", static_cast<unsigned long long>(id_),
                  how == Pump::Step::SourceError ? "upstream reset mid-response"
                                                 : "upstream closed mid-response");
        abort_response();
        return;
    }
    if (x_.resp_framing.kind == BodyKind::UntilClose) x_.upstream_reusable = false;
    x_.resp_done = true;
    on_response_complete();
}

void Connection::pump_response_body() {
    if (body_pump_) return;  // the pump moves the body
    if (body_can_bypass()) {
        start_body_pump();
        return;
    }
    evbuffer* in = bufferevent_get_input(upstream_.get());
    evbuffer* out = bufferevent_get_output(client_.get());
    const size_t high = worker_.config().buffer_bytes;
    size_t queued = evbuffer_get_length(out) + evbuffer_get_length(in);
    if (!x_.upstream_paused && !x_.upstream_eof && queued < high) {
        read_more(upstream_.get(), high - queued);
    }
    const BodyKind kind = x_.resp_body.kind;
    if ((kind == BodyKind::Length || kind == BodyKind::UntilClose) &&
        evbuffer_get_length(out) == 0 && evbuffer_get_length(in) > 0) {
        // Nothing queued for the client: straight to its socket, as far as it takes it.
        size_t n = std::min(evbuffer_get_length(in), high);
        if (kind == BodyKind::Length) {
            n = static_cast<size_t>(std::min<uint64_t>(n, x_.resp_body.remaining));
        }
        const size_t sent = send_now(Side::Client, {}, in, n);
        if (kind == BodyKind::Length) x_.resp_body.remaining -= sent;
    }
    switch (copy_body(in, out, x_.resp_body, high)) {
        case Pump::Step::Done:
            x_.resp_done = true;
            on_response_complete();
            return;
        case Pump::Step::Paused:
            // The client reads slowly: stop reading the upstream until the client drains.
            pause_reading(Side::Upstream);
            return;
        case Pump::Step::SourceError:
            LOG_DEBUG("c=%llu bad chunked response body from upstream",
                      static_cast<unsigned long long>(id_));
            abort_response();
            return;
        default:
            return;
    }
}

void Connection::on_response_complete() {
    end_txn(std::string());
    if (!x_.req_body_done) {
        // The upstream answered before the whole body was sent (e.g. 413). The rest of the
        // body cannot be skipped safely on either side: close both after the response.
        free_upstream();
        x_.client_keep_alive = false;
        close_after_flush();
        return;
    }
    bool upstream_clean = x_.upstream_reusable && upstream_.get() &&
                          evbuffer_get_length(bufferevent_get_input(upstream_.get())) == 0;
    if (upstream_clean) {
        worker_.pool().put(x_.pool_key, std::move(upstream_), x_.txn.upstream);
    } else {
        free_upstream();
    }
    if (x_.client_keep_alive && !client_eof_ && !draining_) {
        next_request();
    } else {
        close_after_flush();
    }
}

void Connection::on_upstream_closed(bool error) {
    // Whatever arrived before the close is still to be relayed.
    if (!error) {
        x_.upstream_eof = true;
        if (!x_.resp_head_done) read_response_head();
        if (state_ != State::Exchanging) return;
        if (x_.resp_head_done && !x_.resp_done) pump_response_body();
        if (state_ != State::Exchanging) return;
    }
    if (x_.upstream_paused && !error) return;  // pump_response_body() comes back when drained
    if (x_.resp_head_done && x_.resp_framing.kind == BodyKind::UntilClose && !error) {
        x_.resp_done = true;
        x_.upstream_reusable = false;
        on_response_complete();
        return;
    }
    if (!x_.resp_head_done && !x_.response_started && x_.upstream_reused && x_.retries == 0 &&
        x_.req_framing.kind == BodyKind::None) {
        // A pooled connection the server closed just as we reused it: try once more, fresh.
        LOG_DEBUG("c=%llu pooled upstream %s closed, retrying",
                  static_cast<unsigned long long>(id_), x_.pool_key.c_str());
        ++x_.retries;
        free_upstream();
        open_upstream(upstream_authority());
        return;
    }
    if (!x_.resp_head_done) {
        fail_upstream(502, error ? "the upstream server " + x_.pool_key + " reset the connection"
                                 : "the upstream server " + x_.pool_key +
                                       " closed the connection before answering");
        return;
    }
    LOG_DEBUG("c=%llu %s", static_cast<unsigned long long>(id_),
              error ? "upstream reset mid-response" : "upstream closed mid-response");
    abort_response();
}

void Connection::fail_upstream(int status, const std::string& detail) {
    free_upstream();
    if (x_.response_started) {
        LOG_DEBUG("c=%llu %s", static_cast<unsigned long long>(id_), detail.c_str());
        abort_response();
        return;
    }
    reply_error(status, detail, true);
}

// Writes `head` and then `body_n` bytes from the start of `body_from` to `to`'s socket at once
// (one sendmsg), when nothing is queued in its output (the order of bytes). What the socket
// does not take goes the usual way: the rest of the head into the output buffer (its write event
// sends it), the rest of the body stays in `body_from`. An error is left to the bufferevent's
// next write to report. Returns the body bytes sent (drained from `body_from`).
size_t Connection::send_now(Side to, std::string_view head, evbuffer* body_from, size_t body_n) {
    bufferevent* out = bev(to);
    size_t sent = 0;
    if (evbuffer_get_length(bufferevent_get_output(out)) == 0) {
        constexpr int kBodyPieces = 4;
        iovec iov[1 + kBodyPieces];
        int n = 0;
        if (!head.empty()) iov[n++] = {const_cast<char*>(head.data()), head.size()};
        if (body_n > 0) {
            evbuffer_iovec piece[kBodyPieces];
            const int pieces = std::min(evbuffer_peek(body_from, static_cast<ev_ssize_t>(body_n),
                                                      nullptr, piece, kBodyPieces),
                                        kBodyPieces);
            size_t left = body_n;
            for (int i = 0; i < pieces && left > 0; ++i) {
                const size_t len = std::min(piece[i].iov_len, left);
                iov[n++] = {piece[i].iov_base, len};
                left -= len;
            }
        }
        if (n > 0) {
            msghdr msg{};
            msg.msg_iov = iov;
            msg.msg_iovlen = static_cast<size_t>(n);
            const ssize_t r = ::sendmsg(static_cast<int>(bufferevent_getfd(out)), &msg,
                                        MSG_NOSIGNAL | MSG_DONTWAIT);
            if (r > 0) sent = static_cast<size_t>(r);
        }
    }
    const size_t head_sent = std::min(sent, head.size());
    const size_t body_sent = sent - head_sent;
    if (body_sent > 0) evbuffer_drain(body_from, body_sent);
    if (to == Side::Client) client_out_total_ += sent;  // the output buffer's callback misses them
    if (head_sent < head.size()) {
        bufferevent_write(out, head.data() + head_sent, head.size() - head_sent);
    }
    return body_sent;
}

// ---- tunneling -------------------------------------------------------------------------------

void Connection::start_tunnel() {
    set_state(State::Tunneling);
    x_.txn.status = 200;
    bufferevent_write(client_.get(), kConnectEstablished.data(), kConnectEstablished.size());
    // An idle tunnel should cost little memory: drop the request's strings.
    x_.req = RequestHead(HeadAllocator(&arena_));
    arena_.release();
    x_.upstream_head = std::string();
    // The relay takes both connections (and frees their bufferevents once it has their bytes).
    relay_ = std::make_unique<Relay>(std::move(client_), std::move(upstream_),
                                     worker_.config().buffer_bytes, worker_.pipes(), this);
    arm_timer(worker_.config().tunnel_idle_timeout_ms);
    relay_->start();
}

void Connection::on_relay_done(const char* reason, bool error) {
    tunnel_closed_ = !error;
    finish(reason);
}

// ---- local answers and closing ---------------------------------------------------------------

void Connection::reply(const std::string& bytes, bool keep_alive) {
    bufferevent_write(client_.get(), bytes.data(), bytes.size());
    if (x_.txn.content_type.empty()) x_.txn.content_type = content_type_of(bytes);
    end_txn(x_.txn.error);
    bool can_continue = keep_alive && x_.req_body_done && !client_eof_ && !draining_;
    if (can_continue) {
        next_request();
    } else {
        close_after_flush();
    }
}

void Connection::reply_error(int status, const std::string& detail, bool may_keep_alive) {
    LOG_DEBUG("c=%llu %s answered %d: %s", static_cast<unsigned long long>(id_),
              client_addr_.c_str(), status, detail.c_str());
    free_upstream();
    if (!x_.txn_open) begin_txn();           // a head that never parsed (400, 408, 414, 431, 505)
    x_.txn.kind = Transaction::Kind::Local;  // even after an allowed decision: no upstream answered
    x_.txn.status = status;
    x_.txn.error = detail;
    bool head_only = x_.req.method == "HEAD";
    bool keep_alive = may_keep_alive && x_.client_keep_alive && x_.req_body_done;
    reply(make_error_response(status, detail, keep_alive, head_only), keep_alive);
}

void Connection::close_after_flush() {
    if (state_ != State::Closing) {
        set_state(State::Closing);
        arm_timer(worker_.config().response_timeout_ms);
    }
    if (evbuffer_get_length(bufferevent_get_output(client_.get())) > 0) {
        bufferevent_setwatermark(client_.get(), EV_WRITE, 0, 0);
        bufferevent_enable(client_.get(), EV_WRITE);
        return;  // on_client_write comes back here once flushed
    }
    if (client_eof_) {
        finish("closed");
        return;
    }
    // Everything is out: half-close and discard what the client still sends for a moment.
    lingering_ = true;
    ::shutdown(bufferevent_getfd(client_.get()), SHUT_WR);
    evbuffer_drain(bufferevent_get_input(client_.get()),
                   evbuffer_get_length(bufferevent_get_input(client_.get())));
    bufferevent_setwatermark(client_.get(), EV_READ, 0, 0);
    bufferevent_enable(client_.get(), EV_READ);
    arm_timer(kLingerMs);
}

void Connection::abort_response() {
    // Part of the response is out and the rest will not come: what was relayed still goes to
    // the client, then the connection closes — for a client, the only honest signal left (the
    // body is shorter than its Content-Length, or lacks the last chunk).
    free_upstream();
    x_.client_keep_alive = false;
    end_txn("the upstream response was cut short");
    if (x_.resp_body.dechunk || x_.resp_framing.kind == BodyKind::UntilClose) {
        // The client reads this body until the connection ends: a clean close would make the
        // truncated body look complete (RFC 9112 §8). Only a reset says it is not.
        linger lin{1, 0};
        setsockopt(bufferevent_getfd(client_.get()), SOL_SOCKET, SO_LINGER, &lin, sizeof lin);
        finish("truncated response delimited by close: reset");
        return;
    }
    close_after_flush();
}

// ---- accounting ------------------------------------------------------------------------------

void Connection::on_client_bytes(bool output, size_t added, size_t deleted) {
    if (output) {
        client_out_total_ += added;
    } else {
        client_in_total_ += deleted;
    }
}

void Connection::begin_txn() {
    x_.txn = Transaction();
    x_.txn_open = true;
    x_.txn_start_ms = loop_now_ms(worker_.base());
    x_.txn_in_base = client_in_total_;
    x_.txn_out_base = client_out_total_;
    x_.txn.start_unix_ms = x_.txn_start_ms;
    x_.txn.client = client_ip_;
    x_.txn.client_addr = client_addr_;
    // "-" until the head parses. push_back, not = "-": GCC 12 at -O3 reports a false -Wrestrict
    // for a one-character string assignment here (GCC bug 105329).
    x_.txn.method.push_back('-');
    x_.txn.url.push_back('-');
}

void Connection::end_txn(const std::string& error) {
    if (!x_.txn_open) return;
    x_.txn_open = false;
    if (x_.txn.status == 0 && x_.response_started) x_.txn.status = x_.resp_status;
    x_.txn.elapsed_ms = loop_now_ms(worker_.base()) - x_.txn_start_ms;
    x_.txn.bytes_to_client = client_out_total_ - x_.txn_out_base;
    x_.txn.bytes_from_client = client_in_total_ - x_.txn_in_base;
    if (req_pump_) x_.txn.bytes_from_client += req_pump_->moved();  // the txn ends mid-upload
    if (relay_) {  // a tunnel's bytes bypass the client's buffers
        x_.txn.bytes_to_client += relay_->bytes_to_client();
        x_.txn.bytes_from_client += relay_->bytes_from_client();
    }
    if (x_.txn.error.empty()) x_.txn.error = error;
    worker_.record(x_.txn);
}

void Connection::free_upstream() {
    body_pump_.reset();  // they move bytes from and to the upstream's socket
    req_pump_.reset();
    if (!upstream_) return;
    upstream_watch_.stop();
    upstream_.reset();
    x_.upstream_paused = false;
}

}  // namespace hallpass
