// The admin listener: /metrics (Prometheus text format), /stats.json and the dashboard page, on
// its own thread and event_base (libevent's evhttp), never on a worker loop. It only reads
// Stats::snapshot(); it is not a proxy: any target that is not one of its paths gets 404.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <thread>

#include "hallpass/error.h"

struct event;
struct event_base;
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

class AdminServer {
  public:
    // Binds `address` (ADDR:PORT; port 0 = any free port) on the calling thread, so a bad or busy
    // address is an error here, then serves from a thread of its own until destroyed. `stats`
    // must outlive the server.
    static Result<std::unique_ptr<AdminServer>> start(const std::string& address,
                                                      const Stats& stats);
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
