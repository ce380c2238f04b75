// The server: binds the listening sockets (one SO_REUSEPORT socket per worker and address),
// starts the workers, and handles signals on the main thread (TERM/INT: graceful stop, then the
// access log is flushed; HUP: reload the rules; USR1: reopen the access log). Returns the
// process exit code.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "hallpass/config/config.h"

namespace hallpass {

class AccessLog;
class ListUpdater;
struct ListSpec;
class AdminServer;
class GrantStore;
class GrantControl;
class Stats;
class Worker;
struct SharedState;
class HostsTable;
class Reloader;
class RuleStore;

class Server {
  public:
    // Binds every address of cfg.listen and prepares cfg.threads workers (0 = one per core).
    // Errors: an address in use or not available, a hosts file or an access log that cannot be
    // opened. Requests are decided by `rules`'s current snapshot; SIGHUP reloads `rules_path`
    // ("" = no file: SIGHUP only logs).
    static Result<std::unique_ptr<Server>> create(ServerConfig cfg,
                                                  std::shared_ptr<RuleStore> rules,
                                                  std::string rules_path);
    ~Server();

    // Runs until SIGTERM/SIGINT and the drain that follows. Returns 0 on a clean stop.
    int run();

    // The addresses actually bound (port 0 resolved), as "ip:port".
    const std::vector<std::string>& bound() const { return bound_; }

    struct Signals;  // the main loop's signal events (server.cpp)

  private:
    std::vector<ListSpec> url_lists() const;  // of the rules file, as it is now
    Server() = default;
    ServerConfig cfg_;
    std::unique_ptr<SharedState> shared_;
    std::shared_ptr<RuleStore> rules_;
    std::string rules_path_;
    std::unique_ptr<AccessLog> access_log_;  // null when off; outlives the workers
    std::unique_ptr<Stats> stats_;  // before workers_ and admin_, which use it
    std::unique_ptr<GrantStore> grants_;  // before the workers and the admin, which use it
    std::unique_ptr<GrantControl> control_;
    std::vector<std::unique_ptr<Worker>> workers_;
    std::unique_ptr<AdminServer> admin_;
    std::vector<std::string> bound_;
    std::vector<std::string> pac_bound_;  // server.pac_listen, as bound
    // Lists by URL, while run() runs (the statistics read it from the admin's thread).
    std::atomic<ListUpdater*> list_updater_{nullptr};
};

}  // namespace hallpass
