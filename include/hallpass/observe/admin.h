// The admin listener: /metrics (Prometheus text format), /stats.json and the dashboard page, on
// its own thread and event_base, never on a worker loop. It only reads Stats::snapshot(); it is
// not a proxy: any target that is not one of its paths gets 404. At most
// server.admin_max_connections connections: at the cap the longest-idle one is closed to make
// room, and when every one is busy a newcomer gets 503.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "hallpass/base/error.h"
#include "hallpass/base/event_handles.h"
#include "hallpass/base/net_set.h"

namespace hallpass {

class Stats;
struct RequestHead;

// One response of the admin server, decided from the method and the raw request target alone
// (pure, for tests).
struct AdminResponse {
    int status = 200;
    std::string content_type;  // "" for error answers (text/plain)
    std::string body;
};

// Which Host headers the admin endpoint answers: its own addresses, localhost, and the names in
// server.admin_hosts. Anything else is a page on another origin whose name was made to resolve
// to us (DNS rebinding) and gets 421, so it cannot read client addresses and hosts.
struct AdminHosts {
    NetSet own_addresses;            // the bound address, or every local one for 0.0.0.0 / ::
    std::vector<std::string> names;  // lower case, from server.admin_hosts
    // `host_header` is the raw Host value ("127.0.0.1:12346", "[::1]:9000", "Proxy.lan").
    bool allows(std::string_view host_header) const;
};

// Control requests: /api/... (grants), answered by a layer above this one (the server) on the
// admin thread. Only requests on the control socket, or over TCP with the admin token, reach it.
class AdminController {
  public:
    virtual ~AdminController() = default;
    // `method` GET, POST or DELETE; `target` the raw origin-form target ("/api/grants?...").
    virtual AdminResponse control(std::string_view method, std::string_view target) = 0;
};

struct AdminControl {
    AdminController* controller = nullptr;  // null: /api/ is 404
    // A Unix socket for local control (mode 0660, group hallpass-admin when it exists); its
    // clients need no token. "" = none.
    std::string socket_path;
    // "Authorization: Bearer TOKEN" lets a TCP client use /api/; "" = only the socket can.
    std::string token;
};

// The bytes of an answer: status line, headers (Content-Length always; Connection: close when
// `close`), and the body unless `head_only`.
std::string admin_response_bytes(const AdminResponse& r, bool head_only, bool close);

class AdminServer {
  public:
    static constexpr size_t kDefaultMaxConnections = 64;

    // Binds `address` (ADDR:PORT; port 0 = any free port) on the calling thread, so a bad or busy
    // address is an error here, then serves from a thread of its own until destroyed. `stats`
    // must outlive the server. `hosts.own_addresses` may be left empty: the bound address is
    // added (for a 0.0.0.0 or :: listener, the caller fills in the machine's addresses).
    // At most `max_connections` (at least 1) connections at once.
    // `address` "" = no TCP listener (the control socket alone).
    static Result<std::unique_ptr<AdminServer>> start(
        const std::string& address, const Stats& stats, AdminHosts hosts = {},
        size_t max_connections = kDefaultMaxConnections, AdminControl control = {});
    ~AdminServer();  // stops the loop and joins the thread
    AdminServer(const AdminServer&) = delete;
    AdminServer& operator=(const AdminServer&) = delete;

    // The address actually bound, "ip:port" ("" without a TCP listener).
    const std::string& bound() const { return bound_; }

    // What the server answers to `method` (GET, HEAD, ...) on `target` (the raw request target).
    // GET and HEAD of "/", "/metrics" and "/stats.json" (a query string is ignored) are served;
    // other methods on those paths get 405; anything else, absolute-form and authority-form
    // targets included, gets 404.
    static AdminResponse answer(std::string_view method, std::string_view target,
                                const Stats& stats);

    // The answer to a parsed request head: 421 for an origin-form target under a Host that
    // `hosts` does not allow (DNS rebinding), otherwise answer().
    static AdminResponse respond(const RequestHead& head, const AdminHosts& hosts,
                                 const Stats& stats);

  private:
    class Client;
    AdminServer() = default;
    void on_accept(evutil_socket_t fd, bool trusted);
    AdminResponse route(Client& c, const RequestHead& head);
    void on_accept_error();
    bool evict_idle();  // closes the longest-idle connection; false when none is idle
    void arm_deadline(Client& c);
    void on_readable(Client& c);
    void send(Client& c, const AdminResponse& r, bool head_only, bool close_after);
    void on_sent(Client& c);
    void on_event(Client& c, short what);
    void on_deadline(Client& c);
    void close(Client& c);

    const Stats* stats_ = nullptr;
    AdminHosts hosts_;
    size_t max_connections_ = kDefaultMaxConnections;
    EventBasePtr base_;     // declared first: freed last (the destructor frees in order)
    ListenerPtr listener_;  // paused on EMFILE
    ListenerPtr control_listener_;  // the Unix control socket, if any
    AdminControl control_;
    EventPtr resume_timer_;
    EventPtr stop_event_;
    std::unordered_map<Client*, std::unique_ptr<Client>> clients_;
    time_t last_error_log_s_ = 0;
    uint64_t accept_errors_ = 0;
    time_t last_refusal_log_s_ = 0;
    uint64_t refused_ = 0;
    std::string bound_;
    std::thread thread_;
};

// The dashboard page: one self-contained HTML document (inline CSS and JavaScript, no external
// resources), generated at build time from src/observe/dashboard.html.
std::string_view dashboard_html();

}  // namespace hallpass
