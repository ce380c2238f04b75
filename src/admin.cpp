// The admin HTTP server on its own thread: evhttp on a private event_base, answering from
// Stats::snapshot() (which takes each worker's publish mutex only to copy a pointer), so a slow
// scrape never holds up a worker. Routing is a pure function of method and raw target.
#include "hallpass/admin.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>

#include "hallpass/config.h"
#include "hallpass/log.h"
#include "hallpass/stats.h"

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

const char* method_name(evhttp_cmd_type cmd) {
    switch (cmd) {
        case EVHTTP_REQ_GET:
            return "GET";
        case EVHTTP_REQ_HEAD:
            return "HEAD";
        case EVHTTP_REQ_POST:
            return "POST";
        case EVHTTP_REQ_PUT:
            return "PUT";
        case EVHTTP_REQ_DELETE:
            return "DELETE";
        case EVHTTP_REQ_OPTIONS:
            return "OPTIONS";
        case EVHTTP_REQ_TRACE:
            return "TRACE";
        case EVHTTP_REQ_CONNECT:
            return "CONNECT";
        case EVHTTP_REQ_PATCH:
            return "PATCH";
    }
    return "?";
}

const char* reason(int status) {
    switch (status) {
        case 200:
            return "OK";
        case 404:
            return "Not Found";
        case 405:
            return "Method Not Allowed";
        case 421:
            return "Misdirected Request";
        default:
            return "Error";
    }
}

void on_request(evhttp_request* req, void* arg) {
    const auto* server = static_cast<const AdminServer*>(arg);
    const char* target = evhttp_request_get_uri(req);
    const char* host = evhttp_find_header(evhttp_request_get_input_headers(req), "Host");
    AdminResponse r =
        // (Targets that are not origin-form get their 404 whatever the Host: nothing to read.)
        server->host_allowed(host ? host : "") || !target || target[0] != '/'
            ? AdminServer::answer(method_name(evhttp_request_get_command(req)),
                                  target ? target : "", server->stats())
            : AdminResponse{421, "",
                            "misdirected request: this admin endpoint answers only to its own "
                            "address, localhost, or a name in server.admin_hosts\n"};
    evkeyvalq* headers = evhttp_request_get_output_headers(req);
    evhttp_add_header(
        headers, "Content-Type",
        r.content_type.empty() ? "text/plain; charset=utf-8" : r.content_type.c_str());
    evhttp_add_header(headers, "Cache-Control", "no-store");
    evhttp_add_header(headers, "X-Content-Type-Options", "nosniff");
    if (r.content_type == kHtmlType)
        evhttp_add_header(headers, "Content-Security-Policy", kDashboardPolicy);
    if (r.status == 405) evhttp_add_header(headers, "Allow", "GET, HEAD");
    // evhttp leaves out the length when answering CONNECT (it expects a tunnel), so a client
    // would wait for the end of a body that never ends; an explicit length frames every answer.
    evhttp_add_header(headers, "Content-Length", std::to_string(r.body.size()).c_str());
    if (r.status != 200) evhttp_add_header(headers, "Connection", "close");
    evbuffer* body = evbuffer_new();
    if (!body) {
        evhttp_send_error(req, 500, "out of memory");
        return;
    }
    // HEAD: the length of what GET would send, and no body (evhttp 2.1 would send it).
    if (evhttp_request_get_command(req) != EVHTTP_REQ_HEAD)
        evbuffer_add(body, r.body.data(), r.body.size());
    evhttp_send_reply(req, r.status, reason(r.status), body);
    evbuffer_free(body);
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

// The listener's callback argument is evhttp's, so the error callback finds its server here
// (one admin server per process; set before its thread starts, cleared when it is destroyed).
std::atomic<AdminServer*> g_admin_server{nullptr};

void accept_error_cb(evconnlistener*, void*) {
    if (AdminServer* server = g_admin_server.load()) server->on_accept_error();
}

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

void AdminServer::on_accept_error() {
    int err = EVUTIL_SOCKET_ERROR();
    ++accept_errors_;
    timeval now{};
    event_base_gettimeofday_cached(base_, &now);
    if (now.tv_sec != last_error_log_s_) {  // one line a second, with the count
        last_error_log_s_ = now.tv_sec;
        LOG_WARN("admin: accept failed (%s); pausing accepts for %d ms (%llu failures so far)",
                 std::strerror(err), kAcceptPauseMs,
                 static_cast<unsigned long long>(accept_errors_));
    }
    evconnlistener_disable(listener_);
    timeval tv{0, kAcceptPauseMs * 1000};
    evtimer_add(resume_timer_, &tv);
}

void AdminServer::on_resume() { evconnlistener_enable(listener_); }

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

Result<std::unique_ptr<AdminServer>> AdminServer::start(const std::string& address,
                                                        const Stats& stats, AdminHosts hosts) {
    auto addr = parse_listen_address(address);
    if (!addr) return Error{"admin: " + addr.error().message};
    std::unique_ptr<AdminServer> s(new AdminServer());
    s->stats_ = &stats;
    s->hosts_ = std::move(hosts);
    s->base_ = event_base_new();
    if (!s->base_) return Error{"admin: cannot create an event loop"};
    s->http_ = evhttp_new(s->base_);
    if (!s->http_) return Error{"admin: cannot create the http server"};
    // Every method reaches on_request, which answers 404/405 itself (evhttp would say 501).
    evhttp_set_allowed_methods(s->http_, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                             EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                             EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE |
                                             EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
    evhttp_set_timeout(s->http_, 10);
    evhttp_set_max_headers_size(s->http_, 16 * 1024);
    evhttp_set_max_body_size(s->http_, 4 * 1024);
    evhttp_set_gencb(s->http_, on_request, s.get());

    auto fd = bind_admin_socket(*addr);
    if (!fd) return Error{"cannot listen on " + address + " (admin): " + fd.error().message};
    evhttp_bound_socket* handle = evhttp_accept_socket_with_handle(s->http_, *fd);
    if (!handle) {
        ::close(*fd);
        return Error{"admin: cannot accept on " + address};
    }
    // evhttp's listener has no error callback of its own: out of descriptors, it would log and
    // retry accept() in a busy loop. Ours pauses it instead.
    s->listener_ = evhttp_bound_socket_get_listener(handle);
    s->resume_timer_ = evtimer_new(
        s->base_,
        [](evutil_socket_t, short, void* arg) { static_cast<AdminServer*>(arg)->on_resume(); },
        s.get());
    if (!s->resume_timer_) return Error{"admin: cannot create a timer"};
    g_admin_server.store(s.get());
    evconnlistener_set_error_cb(s->listener_, accept_error_cb);
    sockaddr_storage bound{};
    socklen_t len = sizeof bound;
    getsockname(*fd, reinterpret_cast<sockaddr*>(&bound), &len);
    s->bound_ = format_address(reinterpret_cast<const sockaddr*>(&bound));
    if (auto ip = IpAddr::from_sockaddr(reinterpret_cast<const sockaddr*>(&bound))) {
        if (!(ip->hi == 0 && ip->lo == 0)) s->hosts_.own_addresses.add(ip->to_string());
    }
    s->hosts_.own_addresses.compile();
    // Stopping activates this event rather than calling loopbreak, which a loop that has not
    // started yet would forget.
    s->stop_event_ = event_new(
        s->base_, -1, 0,
        [](evutil_socket_t, short, void* base) {
            event_base_loopbreak(static_cast<event_base*>(base));
        },
        s->base_);
    if (!s->stop_event_) return Error{"admin: cannot create an event"};
    event_base* base = s->base_;
    s->thread_ = std::thread([base] { event_base_dispatch(base); });
    return s;
}

AdminServer::~AdminServer() {
    if (thread_.joinable()) {
        // Thread-safe: main.cpp calls evthread_use_pthreads() before any base exists.
        event_active(stop_event_, 0, 0);
        thread_.join();
    }
    AdminServer* self = this;
    g_admin_server.compare_exchange_strong(self, nullptr);
    if (stop_event_) event_free(stop_event_);
    if (resume_timer_) event_free(resume_timer_);
    if (http_) evhttp_free(http_);  // closes the listener and any open admin connections
    if (base_) event_base_free(base_);
}

}  // namespace hallpass
