// The admin HTTP server on its own thread and private event_base, answering from
// Stats::snapshot() (which takes each worker's publish mutex only to copy a pointer), so a slow
// scrape never holds up a worker. Routing is a pure function of method and raw target. Its own
// small HTTP/1.1 server over bufferevents (heads parsed by http_parser) rather than evhttp, whose
// 2.1 API cannot cap connections: at server.admin_max_connections the longest-idle connection
// makes room, and when none is idle a newcomer gets 503.
#include "hallpass/observe/admin.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <grp.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>

#include "hallpass/base/log.h"
#include "hallpass/config/config.h"
#include "hallpass/http/http_parser.h"
#include "hallpass/observe/stats.h"

namespace hallpass {
namespace {

constexpr const char* kMetricsType = "text/plain; version=0.0.4; charset=utf-8";
constexpr const char* kJsonType = "application/json";
constexpr const char* kHtmlType = "text/html; charset=utf-8";
// The dashboard may run only its own inline script and style and fetch from its own origin:
// the browser itself enforces "no CDN, no external script".
constexpr const char* kDashboardPolicy =
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'";

AdminResponse plain(int status, std::string body) {
    return AdminResponse{status, "", std::move(body) + "\n"};
}

const char* reason(int status) {
    switch (status) {
        case 200:
            return "OK";
        case 400:
            return "Bad Request";
        case 401:
            return "Unauthorized";
        case 500:
            return "Internal Server Error";
        case 404:
            return "Not Found";
        case 405:
            return "Method Not Allowed";
        case 408:
            return "Request Timeout";
        case 421:
            return "Misdirected Request";
        case 431:
            return "Request Header Fields Too Large";
        case 503:
            return "Service Unavailable";
        case 505:
            return "HTTP Version Not Supported";
        default:
            return "Error";
    }
}

Result<int> bind_admin_socket(const ListenAddress& addr) {
    int fd = ::socket(addr.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return Error{std::string("socket: ") + std::strerror(errno)};
    int one = 1;
    // No SO_REUSEPORT: a second hallpass must not silently share (and split) this port.
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (addr.addr.ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (::bind(fd, reinterpret_cast<const sockaddr*>(&addr.addr), addr.len) != 0 ||
        ::listen(fd, 64) != 0) {
        int err = errno;
        ::close(fd);
        return Error{std::strerror(err)};
    }
    return fd;
}

// How long the listener rests after running out of descriptors (or memory) before it accepts
// again: accepting at once would fail again, in a busy loop.
constexpr int kAcceptPauseMs = 200;
// A connection must send a whole request head within this long of being accepted or of its
// previous answer (slowloris), and read an answer within this long of its last progress.
constexpr int kDeadlineSeconds = 10;
// A request head bigger than this gets 431; reading stops there, so no connection holds more.
constexpr size_t kMaxHeadBytes = 16 * 1024;

std::string_view host_part(std::string_view host) {
    if (host.starts_with('[')) {
        size_t close = host.find(']');
        return close == std::string_view::npos ? host : host.substr(1, close - 1);
    }
    return host.substr(0, host.find(':'));
}

}  // namespace

bool AdminHosts::allows(std::string_view host_header) const {
    std::string host(host_part(host_header));
    std::transform(host.begin(), host.end(), host.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (!host.empty() && host.back() == '.') host.pop_back();
    if (host.empty()) return false;
    if (host == "localhost") return true;
    if (auto ip = IpAddr::parse(host)) return own_addresses.contains(*ip);
    return std::find(names.begin(), names.end(), host) != names.end();
}

AdminResponse AdminServer::answer(std::string_view method, std::string_view target,
                                  const Stats& stats) {
    // Only origin-form targets are ours; "http://host/..." or "host:443" would be a proxy
    // request, and the admin port is not a proxy.
    if (!target.starts_with('/')) return plain(404, "not found: the admin port is not a proxy");
    std::string_view path = target.substr(0, target.find('?'));
    const bool known = path == "/" || path == "/metrics" || path == "/stats.json";
    if (!known) return plain(404, "not found (try /, /metrics or /stats.json)");
    if (method != "GET" && method != "HEAD") return plain(405, "method not allowed");
    if (path == "/metrics")
        return AdminResponse{200, kMetricsType, render_prometheus(stats.snapshot())};
    if (path == "/stats.json")
        return AdminResponse{200, kJsonType, render_stats_json(stats.snapshot())};
    return AdminResponse{200, kHtmlType, std::string(dashboard_html())};
}

AdminResponse AdminServer::respond(const RequestHead& head, const AdminHosts& hosts,
                                   const Stats& stats) {
    const Header* host = find_header(head.headers, "Host");
    // (Targets that are not origin-form get their 404 whatever the Host: nothing to read.)
    if (hosts.allows(host ? std::string_view(host->value) : std::string_view()) ||
        !head.target.starts_with('/'))
        return answer(head.method, head.target, stats);
    return plain(421,
                 "misdirected request: this admin endpoint answers only to its own address, "
                 "localhost, or a name in server.admin_hosts");
}

std::string admin_response_bytes(const AdminResponse& r, bool head_only, bool close) {
    std::string out = "HTTP/1.1 " + std::to_string(r.status) + " " + reason(r.status) + "\r\n";
    out += "Content-Type: ";
    out += r.content_type.empty() ? "text/plain; charset=utf-8" : r.content_type;
    out += "\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n";
    if (r.content_type == kHtmlType)
        out += std::string("Content-Security-Policy: ") + kDashboardPolicy + "\r\n";
    if (r.status == 405) out += "Allow: GET, HEAD\r\n";
    // HEAD: the length of what GET would send, and no body.
    out += "Content-Length: " + std::to_string(r.body.size()) + "\r\n";
    if (close) out += "Connection: close\r\n";
    out += "\r\n";
    if (!head_only) out += r.body;
    return out;
}

// One admin connection: reads one request head at a time (at most kMaxHeadBytes buffered),
// answers it, and reads the next only once the answer has been sent, so it never holds more
// than one head and one answer.
class AdminServer::Client {
  public:
    Client(AdminServer& server, BuffereventPtr bev, bool trusted)
        : server(server), bev(std::move(bev)), trusted(trusted) {}
    Client(const Client&) = delete;
    Client& operator=(const Client&) = delete;

    // Waiting for a request with nothing buffered: the first to go when the cap is reached.
    bool idle() const {
        return !answering && evbuffer_get_length(bufferevent_get_input(bev.get())) == 0;
    }

    AdminServer& server;
    const BuffereventPtr bev;  // closes the socket when freed (BEV_OPT_CLOSE_ON_FREE)
    EventPtr deadline;         // the head (or idle) deadline
    const bool trusted;        // on the control socket: control requests need no token
    bool answering = false;     // an answer is being sent; reading waits for it
    bool close_after = false;
    std::chrono::steady_clock::time_point idle_since = std::chrono::steady_clock::now();
};

void AdminServer::arm_deadline(Client& c) {
    timeval tv{kDeadlineSeconds, 0};
    evtimer_add(c.deadline.get(), &tv);
}

void AdminServer::on_accept(evutil_socket_t fd, bool trusted) {
    if (clients_.size() >= max_connections_ && !evict_idle()) {
        // Every slot holds a connection that is sending a request or reading an answer: this
        // one gets a short 503 (written straight to the new socket, never queued) and a close.
        ++refused_;
        timeval now{};
        event_base_gettimeofday_cached(base_.get(), &now);
        if (now.tv_sec != last_refusal_log_s_) {
            last_refusal_log_s_ = now.tv_sec;
            LOG_WARN(
                "admin: %zu connections busy (server.admin_max_connections); refusing new "
                "ones with 503 (%llu so far)",
                clients_.size(), static_cast<unsigned long long>(refused_));
        }
        const std::string busy = admin_response_bytes(
            plain(503, "too many admin connections; try again shortly"), false, true);
        ssize_t sent = ::send(fd, busy.data(), busy.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        (void)sent;  // best effort: the close says the same
        evutil_closesocket(fd);
        return;
    }
    BuffereventPtr owned(bufferevent_socket_new(base_.get(), fd, BEV_OPT_CLOSE_ON_FREE));
    if (!owned) {
        evutil_closesocket(fd);
        return;
    }
    bufferevent* bev = owned.get();
    auto client = std::make_unique<Client>(*this, std::move(owned), trusted);
    Client* c = client.get();
    c->deadline.reset(evtimer_new(
        base_.get(),
        [](evutil_socket_t, short, void* arg) {
            auto* c = static_cast<Client*>(arg);
            c->server.on_deadline(*c);
        },
        c));
    if (!c->deadline) return;  // `client` frees the bufferevent and its socket
    clients_.emplace(c, std::move(client));
    bufferevent_setwatermark(bev, EV_READ, 0, kMaxHeadBytes);
    timeval write_tv{kDeadlineSeconds, 0};
    bufferevent_set_timeouts(bev, nullptr, &write_tv);
    bufferevent_setcb(
        bev,
        [](bufferevent*, void* arg) {
            auto* c = static_cast<Client*>(arg);
            c->server.on_readable(*c);
        },
        [](bufferevent*, void* arg) {
            auto* c = static_cast<Client*>(arg);
            c->server.on_sent(*c);
        },
        [](bufferevent*, short what, void* arg) {
            auto* c = static_cast<Client*>(arg);
            c->server.on_event(*c, what);
        },
        c);
    arm_deadline(*c);
    bufferevent_enable(bev, EV_READ);
}

bool AdminServer::evict_idle() {
    Client* oldest = nullptr;
    for (auto& [c, owned] : clients_)
        if (c->idle() && (!oldest || c->idle_since < oldest->idle_since)) oldest = c;
    if (!oldest) return false;
    close(*oldest);
    return true;
}

void AdminServer::on_readable(Client& c) {
    if (c.answering) return;
    evbuffer* in = bufferevent_get_input(c.bev.get());
    const size_t n = evbuffer_get_length(in);
    if (n == 0) return;
    const char* data = reinterpret_cast<const char*>(evbuffer_pullup(in, -1));
    const ParseLimits limits{
        .max_request_line = 8192, .max_head_bytes = kMaxHeadBytes, .max_headers = 100};
    auto parsed = parse_request_head(std::string_view(data, n), limits);
    switch (parsed.status) {
        case HeadStatus::Incomplete:
            return;  // the deadline keeps running: trickled bytes do not extend it
        case HeadStatus::Malformed:
            return send(c, plain(400, "bad request: " + parsed.error), false, true);
        case HeadStatus::LineTooLong:
            return send(c, plain(414, "request line too long"), false, true);
        case HeadStatus::HeadersTooLarge:
            return send(c, plain(431, "request head too large"), false, true);
        case HeadStatus::BadVersion:
            return send(c, plain(505, "only HTTP/1.0 and HTTP/1.1"), false, true);
        case HeadStatus::Complete:
            break;
    }
    evbuffer_drain(in, parsed.consumed);
    const RequestHead& head = parsed.head;
    const bool head_only = head.method == "HEAD";
    auto framing = request_framing(head);
    if (!framing)
        return send(c, plain(400, "bad request: ambiguous body framing"), head_only, true);
    if (head.version_minor == 1 && !find_header(head.headers, "Host"))
        return send(c, plain(400, "bad request: no Host"), head_only, true);
    AdminResponse r = route(c, head);
    // A body is never read (nothing here takes one): the answer closes the connection instead.
    const bool has_body = framing->kind == BodyKind::Chunked ||
                          (framing->kind == BodyKind::Length && framing->length > 0);
    const bool close_after = r.status != 200 || has_body || head.version_minor == 0 ||
                             header_has_token(head.headers, "Connection", "close");
    send(c, r, head_only, close_after);
}

AdminResponse AdminServer::route(Client& c, const RequestHead& head) {
    const std::string_view target = head.target;
    if (!target.starts_with("/api/")) {
        if (c.trusted && target.starts_with('/')) return answer(head.method, target, *stats_);
        return respond(head, hosts_, *stats_);
    }
    if (!control_.controller) return plain(404, "not found: no control here");
    if (!c.trusted) {
        const Header* host = find_header(head.headers, "Host");
        if (!hosts_.allows(host ? std::string_view(host->value) : std::string_view())) {
            return plain(421, "misdirected request: not this endpoint's name");
        }
        const Header* auth = find_header(head.headers, "Authorization");
        const bool ok = !control_.token.empty() && auth &&
                        std::string_view(auth->value) == "Bearer " + control_.token;
        if (!ok) {
            return plain(401, control_.token.empty()
                                  ? "control requests need the control socket (server."
                                    "control_socket); no admin_token_file is set"
                                  : "control requests need \"Authorization: Bearer TOKEN\" "
                                    "(server.admin_token_file)");
        }
    }
    return control_.controller->control(head.method, target);
}

void AdminServer::send(Client& c, const AdminResponse& r, bool head_only, bool close_after) {
    evtimer_del(c.deadline.get());  // the write timeout watches the answer
    c.answering = true;
    c.close_after = close_after;
    bufferevent_disable(c.bev.get(), EV_READ);
    const std::string bytes = admin_response_bytes(r, head_only, close_after);
    if (bufferevent_write(c.bev.get(), bytes.data(), bytes.size()) != 0) close(c);
}

void AdminServer::on_sent(Client& c) {
    if (!c.answering) return;
    if (c.close_after) return close(c);
    c.answering = false;
    c.idle_since = std::chrono::steady_clock::now();
    arm_deadline(c);
    bufferevent_enable(c.bev.get(), EV_READ);
    on_readable(c);  // a pipelined request may be buffered already
}

void AdminServer::on_event(Client& c, short what) {
    // The client half-closed after its request: the answer still goes out, then the close.
    if ((what & BEV_EVENT_EOF) && (what & BEV_EVENT_READING) && c.answering) {
        c.close_after = true;
        return;
    }
    close(c);
}

void AdminServer::on_deadline(Client& c) {
    if (evbuffer_get_length(bufferevent_get_input(c.bev.get())) > 0)
        return send(c, plain(408, "request head not received in time"), false, true);
    close(c);  // idle
}

void AdminServer::close(Client& c) { clients_.erase(&c); }

void AdminServer::on_accept_error() {
    int err = EVUTIL_SOCKET_ERROR();
    ++accept_errors_;
    timeval now{};
    event_base_gettimeofday_cached(base_.get(), &now);
    if (now.tv_sec != last_error_log_s_) {  // one line a second, with the count
        last_error_log_s_ = now.tv_sec;
        LOG_WARN("admin: accept failed (%s); pausing accepts for %d ms (%llu failures so far)",
                 std::strerror(err), kAcceptPauseMs,
                 static_cast<unsigned long long>(accept_errors_));
    }
    for (evconnlistener* l : {listener_.get(), control_listener_.get()}) {
        if (l) evconnlistener_disable(l);
    }
    timeval tv{0, kAcceptPauseMs * 1000};
    evtimer_add(resume_timer_.get(), &tv);
}

namespace {

// The control socket: a stale file left by a crash is replaced; one a running hallpass answers
// on is an error. Mode 0660, group hallpass-admin when that group exists.
Result<int> bind_control_socket(const std::string& path) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.size() >= sizeof addr.sun_path) return Error{"the path is too long"};
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    std::error_code ec;
    std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return Error{std::string("socket: ") + std::strerror(errno)};
    struct stat st {};
    if (::lstat(path.c_str(), &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            ::close(fd);
            return Error{"exists and is not a socket"};
        }
        int probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        const bool live = probe >= 0 && ::connect(probe, reinterpret_cast<const sockaddr*>(&addr),
                                                  sizeof addr) == 0;
        if (probe >= 0) ::close(probe);
        if (live) {
            ::close(fd);
            return Error{"another process answers on it (is hallpass running already?)"};
        }
        ::unlink(path.c_str());
    }
    const mode_t old_mask = ::umask(0117);  // created 0660, never briefly wider
    const int bound = ::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
    ::umask(old_mask);
    if (bound != 0 || ::listen(fd, 16) != 0) {
        int err = errno;
        ::close(fd);
        return Error{std::strerror(err)};
    }
    if (const group* g = ::getgrnam("hallpass-admin")) {
        if (::chown(path.c_str(), static_cast<uid_t>(-1), g->gr_gid) != 0) {
            LOG_WARN("control socket %s: cannot give it to group hallpass-admin: %s", path.c_str(),
                     std::strerror(errno));
        }
    }
    ::chmod(path.c_str(), 0660);
    return fd;
}

}  // namespace

Result<std::unique_ptr<AdminServer>> AdminServer::start(const std::string& address,
                                                        const Stats& stats, AdminHosts hosts,
                                                        size_t max_connections,
                                                        AdminControl control) {
    std::unique_ptr<AdminServer> s(new AdminServer());
    s->stats_ = &stats;
    s->hosts_ = std::move(hosts);
    s->control_ = std::move(control);
    s->max_connections_ = std::max<size_t>(1, max_connections);
    s->base_.reset(event_base_new());
    if (!s->base_) return Error{"admin: cannot create an event loop"};
    auto accept_cb = [](evconnlistener*, evutil_socket_t client, sockaddr*, int, void* arg) {
        static_cast<AdminServer*>(arg)->on_accept(client, false);
    };
    auto accept_trusted_cb = [](evconnlistener*, evutil_socket_t client, sockaddr*, int,
                                void* arg) {
        static_cast<AdminServer*>(arg)->on_accept(client, true);
    };
    if (!address.empty()) {
        auto addr = parse_listen_address(address);
        if (!addr) return Error{"admin: " + addr.error().message};
        auto fd = bind_admin_socket(*addr);
        if (!fd) return Error{"cannot listen on " + address + " (admin): " + fd.error().message};
        s->listener_.reset(evconnlistener_new(s->base_.get(), accept_cb, s.get(),
                                              LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1,
                                              *fd));
        if (!s->listener_) {
            ::close(*fd);
            return Error{"admin: cannot accept on " + address};
        }
        sockaddr_storage bound{};
        socklen_t len = sizeof bound;
        getsockname(*fd, reinterpret_cast<sockaddr*>(&bound), &len);
        s->bound_ = format_address(reinterpret_cast<const sockaddr*>(&bound));
        if (auto ip = IpAddr::from_sockaddr(reinterpret_cast<const sockaddr*>(&bound))) {
            if (!(ip->hi == 0 && ip->lo == 0)) s->hosts_.own_addresses.add(ip->to_string());
        }
    }
    s->hosts_.own_addresses.compile();
    if (!s->control_.socket_path.empty()) {
        auto fd = bind_control_socket(s->control_.socket_path);
        if (!fd) {
            return Error{"cannot listen on " + s->control_.socket_path +
                         " (server.control_socket): " + fd.error().message};
        }
        s->control_listener_.reset(evconnlistener_new(s->base_.get(), accept_trusted_cb, s.get(),
                                                      LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
                                                      -1, *fd));
        if (!s->control_listener_) {
            ::close(*fd);
            return Error{"admin: cannot accept on " + s->control_.socket_path};
        }
    }
    // Out of descriptors, a listener pauses instead of retrying accept() in a busy loop.
    for (evconnlistener* l : {s->listener_.get(), s->control_listener_.get()}) {
        if (!l) continue;
        evconnlistener_set_error_cb(l, [](evconnlistener*, void* arg) {
            static_cast<AdminServer*>(arg)->on_accept_error();
        });
    }
    s->resume_timer_.reset(evtimer_new(
        s->base_.get(),
        [](evutil_socket_t, short, void* arg) {
            auto* self = static_cast<AdminServer*>(arg);
            for (evconnlistener* l : {self->listener_.get(), self->control_listener_.get()}) {
                if (l) evconnlistener_enable(l);
            }
        },
        s.get()));
    if (!s->resume_timer_) return Error{"admin: cannot create a timer"};
    // Stopping activates this event rather than calling loopbreak, which a loop that has not
    // started yet would forget.
    s->stop_event_.reset(event_new(
        s->base_.get(), -1, 0,
        [](evutil_socket_t, short, void* base) {
            event_base_loopbreak(static_cast<event_base*>(base));
        },
        s->base_.get()));
    if (!s->stop_event_) return Error{"admin: cannot create an event"};
    event_base* base = s->base_.get();
    s->thread_ = std::thread([base] { event_base_dispatch(base); });
    return s;
}

AdminServer::~AdminServer() {
    if (thread_.joinable()) {
        // Thread-safe: main.cpp calls evthread_use_pthreads() before any base exists.
        event_active(stop_event_.get(), 0, 0);
        thread_.join();
    }
    // What belongs to base_ goes before it.
    clients_.clear();
    stop_event_.reset();
    resume_timer_.reset();
    listener_.reset();  // closes the listening socket
    if (control_listener_) {
        control_listener_.reset();
        ::unlink(control_.socket_path.c_str());
    }
    base_.reset();
}

}  // namespace hallpass
