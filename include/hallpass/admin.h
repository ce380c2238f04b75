// The admin listener: /metrics (Prometheus text format), /stats.json and the dashboard page, on
// its own thread and event_base (libevent's evhttp), never on a worker loop. It only reads
// Stats::snapshot(); it is not a proxy: any target that is not one of its paths gets 404.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "hallpass/error.h"
#include "hallpass/net_set.h"

struct event;
struct event_base;
struct evconnlistener;
struct evhttp;

namespace hallpass {

class Stats;

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

class AdminServer {
  public:
    // Binds `address` (ADDR:PORT; port 0 = any free port) on the calling thread, so a bad or busy
    // address is an error here, then serves from a thread of its own until destroyed. `stats`
    // must outlive the server. `hosts.own_addresses` may be left empty: the bound address is
    // added (for a 0.0.0.0 or :: listener, the caller fills in the machine's addresses).
    static Result<std::unique_ptr<AdminServer>> start(const std::string& address,
                                                      const Stats& stats, AdminHosts hosts = {});
    ~AdminServer();  // stops the loop and joins the thread
    AdminServer(const AdminServer&) = delete;
    AdminServer& operator=(const AdminServer&) = delete;

    // The address actually bound, "ip:port".
    const std::string& bound() const { return bound_; }

    // What the server answers to `method` (GET, HEAD, ...) on `target` (the raw request target).
    // GET and HEAD of "/", "/metrics" and "/stats.json" (a query string is ignored) are served;
    // other methods on those paths get 405; anything else, absolute-form and authority-form
    // targets included, gets 404.
    static AdminResponse answer(std::string_view method, std::string_view target,
                                const Stats& stats);

  private:
    AdminServer() = default;
    const Stats* stats_ = nullptr;
    AdminHosts hosts_;
    evconnlistener* listener_ = nullptr;  // evhttp's, paused on EMFILE
    event* resume_timer_ = nullptr;
    time_t last_error_log_s_ = 0;
    uint64_t accept_errors_ = 0;

  public:  // libevent trampolines
    void on_accept_error();
    void on_resume();
    bool host_allowed(std::string_view host) const { return hosts_.allows(host); }
    const Stats& stats() const { return *stats_; }

  private:
    event_base* base_ = nullptr;
    evhttp* http_ = nullptr;
    event* stop_event_ = nullptr;
    std::string bound_;
    std::thread thread_;
};

// The dashboard page: one self-contained HTML document (inline CSS and JavaScript, no external
// resources), generated at build time from src/dashboard.html.
std::string_view dashboard_html();

}  // namespace hallpass
