// The control API behind the admin endpoint and the control socket: grants.
//   GET    /api/grants                    the active grants
//   POST   /api/grants?clients=kids&domains=youtube.com&for=30m[&action=block][&note=...]
//   DELETE /api/grants/ID
// Answers are JSON; a bad request gets 400 with {"error": "..."}. And the client side, for the
// `hallpass grant`, `grants` and `revoke` commands (blocking: a command line, not a loop).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "hallpass/base/error.h"
#include "hallpass/observe/admin.h"

namespace hallpass {

class GrantStore;
class RuleStore;

class GrantControl final : public AdminController {
  public:
    GrantControl(GrantStore& grants, const RuleStore& rules) : grants_(grants), rules_(rules) {}
    AdminResponse control(std::string_view method, std::string_view target) override;

  private:
    GrantStore& grants_;
    const RuleStore& rules_;
};

// "30m", "1h30m", "90s", "2d", or plain seconds; none when malformed.
std::optional<int64_t> parse_duration(std::string_view text);

// Where a command sends its request: the control socket (a path) or the admin endpoint
// (ADDR:PORT, with a token).
struct ControlEndpoint {
    std::string socket_path;
    std::string admin;  // used when socket_path is empty
    std::string token;
};

struct ControlReply {
    int status = 0;
    std::string body;
};

// Sends one request and reads the whole answer (10 s at most).
Result<ControlReply> control_request(const ControlEndpoint& to, std::string_view method,
                                     std::string_view target);

// %-encodes a query value.
std::string query_escape(std::string_view text);

struct CliOptions;
struct ServerConfig;
// `hallpass grant`, `grants`, `revoke`: sends the request (to --admin, else --control, else
// server.control_socket), prints the outcome. Returns the exit code: 0, 1 refused, 2 unreachable.
int run_control_command(const CliOptions& opts, const ServerConfig& cfg);

}  // namespace hallpass
