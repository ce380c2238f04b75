#include "hallpass/server/control.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <fstream>

#include "hallpass/base/json_text.h"
#include "hallpass/config/config.h"
#include "hallpass/rules/grants.h"
#include "hallpass/rules/rule_store.h"
#include "hallpass/rules/schedule.h"
#include "hallpass/server/cli.h"

namespace hallpass {
namespace {

constexpr const char* kJson = "application/json";

AdminResponse json_error(int status, const std::string& message) {
    std::string body = "{\"error\":";
    append_json_string(body, message);
    body += "}\n";
    return AdminResponse{status, kJson, std::move(body)};
}

int hex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

std::string unescape(std::string_view text) {
    std::string out;
    for (size_t i = 0; i < text.size(); ++i) {
        if (text[i] == '+') {
            out += ' ';
        } else if (text[i] == '%' && i + 2 < text.size() + 0 && hex(text[i + 1]) >= 0 &&
                   hex(text[i + 2]) >= 0) {
            out += static_cast<char>(hex(text[i + 1]) * 16 + hex(text[i + 2]));
            i += 2;
        } else {
            out += text[i];
        }
    }
    return out;
}

std::vector<std::string> split_list(const std::string& text) {
    std::vector<std::string> out;
    size_t start = 0;
    while (start <= text.size()) {
        size_t comma = text.find(',', start);
        if (comma == std::string::npos) comma = text.size();
        std::string item = text.substr(start, comma - start);
        while (!item.empty() && item.front() == ' ') item.erase(0, 1);
        while (!item.empty() && item.back() == ' ') item.pop_back();
        if (!item.empty()) out.push_back(item);
        start = comma + 1;
    }
    return out;
}

}  // namespace

std::optional<int64_t> parse_duration(std::string_view text) {
    if (text.empty() || text.size() > 20) return std::nullopt;
    int64_t total = 0, n = 0;
    bool digits = false;
    for (char c : text) {
        if (c >= '0' && c <= '9') {
            n = n * 10 + (c - '0');
            digits = true;
            continue;
        }
        if (!digits) return std::nullopt;
        switch (c) {
            case 's':
                total += n;
                break;
            case 'm':
                total += n * 60;
                break;
            case 'h':
                total += n * 3600;
                break;
            case 'd':
                total += n * 86400;
                break;
            default:
                return std::nullopt;
        }
        n = 0;
        digits = false;
    }
    if (digits) total += n;  // plain seconds, or a trailing number of seconds
    return total;
}

std::string query_escape(std::string_view text) {
    static const char* kHex = "0123456789ABCDEF";
    std::string out;
    for (unsigned char c : text) {
        if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || c == ',') {
            out += static_cast<char>(c);
        } else {
            out += '%';
            out += kHex[c >> 4];
            out += kHex[c & 15];
        }
    }
    return out;
}

AdminResponse GrantControl::control(std::string_view method, std::string_view target) {
    const int64_t now = static_cast<int64_t>(std::time(nullptr));
    const size_t q = target.find('?');
    const std::string_view path = target.substr(0, q);
    const std::string_view query = q == std::string_view::npos ? "" : target.substr(q + 1);
    if (path == "/api/grants") {
        if (method == "GET" || method == "HEAD") {
            return AdminResponse{200, kJson,
                                 "{\"now\":" + std::to_string(now) +
                                     ",\"grants\":" + grants_json(grants_.list(now)) + "}\n"};
        }
        if (method != "POST") return json_error(405, "GET or POST /api/grants");
        GrantRequest req;
        std::string duration;
        size_t start = 0;
        while (start < query.size()) {
            size_t amp = query.find('&', start);
            if (amp == std::string_view::npos) amp = query.size();
            std::string_view pair = query.substr(start, amp - start);
            start = amp + 1;
            const size_t eq = pair.find('=');
            const std::string key(pair.substr(0, eq));
            const std::string value =
                eq == std::string_view::npos ? "" : unescape(pair.substr(eq + 1));
            if (key == "clients") {
                req.clients = split_list(value);
            } else if (key == "domains") {
                req.domains = split_list(value);
            } else if (key == "for") {
                duration = value;
            } else if (key == "action") {
                if (value != "allow" && value != "block") {
                    return json_error(400, "action is allow or block");
                }
                req.action = value == "block" ? Action::Block : Action::Allow;
            } else if (key == "note") {
                req.note = value;
            } else if (!key.empty()) {
                return json_error(
                    400, "unknown parameter \"" + key + "\" (clients, domains, for, action, note)");
            }
        }
        auto seconds = parse_duration(duration);
        if (!seconds) return json_error(400, "for is a duration: 30m, 1h30m, 2h, 1d");
        req.duration_s = *seconds;
        auto grant = grants_.add(req, *rules_.current(), now);
        if (!grant) return json_error(400, grant.error().message);
        return AdminResponse{200, kJson, grant_json(*grant) + "\n"};
    }
    if (path.starts_with("/api/grants/")) {
        if (method != "DELETE") return json_error(405, "DELETE /api/grants/ID");
        const std::string_view id_text = path.substr(12);
        uint64_t id = 0;
        for (char c : id_text) {
            if (c < '0' || c > '9' || id > UINT64_MAX / 10) return json_error(400, "bad grant id");
            id = id * 10 + static_cast<uint64_t>(c - '0');
        }
        if (id_text.empty()) return json_error(400, "bad grant id");
        auto revoked = grants_.revoke(id, now);
        if (!revoked) return json_error(500, revoked.error().message);
        if (!*revoked) return json_error(404, "no active grant " + std::to_string(id));
        return AdminResponse{200, kJson, "{\"revoked\":" + std::to_string(id) + "}\n"};
    }
    return json_error(404, "not found (GET/POST /api/grants, DELETE /api/grants/ID)");
}

Result<ControlReply> control_request(const ControlEndpoint& to, std::string_view method,
                                     std::string_view target) {
    int fd = -1;
    std::string host = "localhost";
    if (!to.socket_path.empty()) {
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        if (to.socket_path.size() >= sizeof addr.sun_path) return Error{"socket path too long"};
        std::memcpy(addr.sun_path, to.socket_path.c_str(), to.socket_path.size() + 1);
        fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
            const int err = errno;
            if (fd >= 0) ::close(fd);
            return Error{"cannot reach hallpass on " + to.socket_path + ": " + std::strerror(err) +
                         (err == EACCES ? " (root and the hallpass-admin group may)" : "")};
        }
    } else {
        auto addr = parse_listen_address(to.admin);
        if (!addr) return Error{"--admin: " + addr.error().message};
        fd = ::socket(addr->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 ||
            ::connect(fd, reinterpret_cast<const sockaddr*>(&addr->addr), addr->len) != 0) {
            const int err = errno;
            if (fd >= 0) ::close(fd);
            return Error{"cannot reach the admin endpoint " + to.admin + ": " + std::strerror(err)};
        }
        host = to.admin;
    }
    std::string request = std::string(method) + " " + std::string(target) +
                          " HTTP/1.1\r\nHost: " + host + "\r\nConnection: close\r\n";
    if (to.socket_path.empty() && !to.token.empty()) {
        request += "Authorization: Bearer " + to.token + "\r\n";
    }
    request += "\r\n";
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    auto wait = [&](short events) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        pollfd p{fd, events, 0};
        return left.count() > 0 && ::poll(&p, 1, static_cast<int>(left.count())) == 1;
    };
    for (size_t sent = 0; sent < request.size();) {
        if (!wait(POLLOUT)) {
            ::close(fd);
            return Error{"hallpass did not take the request in time"};
        }
        ssize_t n = ::send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
        if (n <= 0) {
            ::close(fd);
            return Error{std::string("sending the request: ") + std::strerror(errno)};
        }
        sent += static_cast<size_t>(n);
    }
    std::string response;
    char buf[4096];
    while (response.size() < (1 << 20)) {
        if (!wait(POLLIN)) {
            ::close(fd);
            return Error{"hallpass did not answer in time"};
        }
        ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n < 0) {
            ::close(fd);
            return Error{std::string("reading the answer: ") + std::strerror(errno)};
        }
        if (n == 0) break;
        response.append(buf, static_cast<size_t>(n));
    }
    ::close(fd);
    ControlReply reply;
    if (!response.starts_with("HTTP/1.") || response.size() < 12) {
        return Error{"not an HTTP answer from hallpass"};
    }
    reply.status = std::atoi(response.c_str() + 9);
    const size_t body = response.find("\r\n\r\n");
    if (body != std::string::npos) reply.body = response.substr(body + 4);
    return reply;
}

namespace {

// One grant of an answer, as a line: "3  allow kids -> youtube.com  until 21:30 (note)".
std::string grant_line(const YAML::Node& n, int64_t now) {
    Grant g;
    g.id = n["id"].as<uint64_t>();
    g.action = n["action"].as<std::string>() == "block" ? Action::Block : Action::Allow;
    for (const auto& c : n["clients"]) g.clients.push_back(c.as<std::string>());
    for (const auto& d : n["domains"]) g.domains.push_back(d.as<std::string>());
    g.expires_s = n["expires"].as<int64_t>();
    g.note = n["note"] ? n["note"].as<std::string>() : "";
    Schedule local;
    local.zone = find_time_zone("");
    std::string line = "grant " + std::to_string(g.id) + ": " + g.describe() + " until " +
                       local.local_label(g.expires_s, now);
    const int64_t left = (g.expires_s - now + 59) / 60;
    line += " (" + std::to_string(left) + " min left)";
    if (!g.note.empty()) line += " \"" + g.note + "\"";
    return line;
}

}  // namespace

int run_control_command(const CliOptions& opts, const ServerConfig& cfg) {
    ControlEndpoint to;
    if (!opts.admin.empty()) {
        to.admin = opts.admin;
        to.token = cfg.admin_token;
        if (!opts.token_file.empty()) {
            std::ifstream in(opts.token_file);
            if (!in || !std::getline(in, to.token)) {
                std::fprintf(stderr, "hallpass: cannot read %s\n", opts.token_file.c_str());
                return 2;
            }
            while (!to.token.empty() && std::isspace(static_cast<unsigned char>(to.token.back())))
                to.token.pop_back();
        }
    } else {
        to.socket_path = opts.control_socket.empty() ? cfg.control_socket : opts.control_socket;
        if (to.socket_path.empty()) {
            std::fprintf(stderr,
                         "hallpass: server.control_socket is off; use --control PATH or --admin\n");
            return 2;
        }
    }
    std::string method = "GET", target = "/api/grants";
    if (opts.command == "grant") {
        method = "POST";
        target += "?action=" + std::string(opts.grant_block ? "block" : "allow") +
                  "&clients=" + query_escape(opts.grant_clients) +
                  "&for=" + query_escape(opts.grant_for);
        if (!opts.grant_domains.empty()) target += "&domains=" + query_escape(opts.grant_domains);
        if (!opts.grant_note.empty()) target += "&note=" + query_escape(opts.grant_note);
    } else if (opts.command == "revoke") {
        method = "DELETE";
        target += "/" + query_escape(opts.revoke_id);
    }
    auto reply = control_request(to, method, target);
    if (!reply) {
        std::fprintf(stderr, "hallpass: %s\n", reply.error().message.c_str());
        return 2;
    }
    const int64_t now = static_cast<int64_t>(std::time(nullptr));
    try {
        YAML::Node body = YAML::Load(reply->body);
        if (reply->status != 200) {
            std::string why = body["error"] ? body["error"].as<std::string>() : reply->body;
            std::fprintf(stderr, "hallpass: %s: %s\n", opts.command.c_str(), why.c_str());
            return 1;
        }
        if (opts.command == "grant") {
            std::printf("%s\n", grant_line(body, now).c_str());
        } else if (opts.command == "revoke") {
            std::printf("grant %s revoked\n", opts.revoke_id.c_str());
        } else {
            const YAML::Node list = body["grants"];
            if (!list || list.size() == 0) std::printf("no grants in force\n");
            for (const auto& g : list) std::printf("%s\n", grant_line(g, now).c_str());
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "hallpass: unexpected answer (%d): %s\n", reply->status,
                     reply->body.c_str());
        return 2;
    }
    return 0;
}

}  // namespace hallpass
