// The `server:` section: one table row per key (name, how to read it, bounds), so adding a setting
// is adding a row. Unknown keys anywhere are errors with file:line:col and a did-you-mean. Runs at
// start-up (and later on reload) on the main thread, never on an event loop.
#include "hallpass/config/config.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <functional>

#include "hallpass/base/net_set.h"
#include "hallpass/config/yaml_source.h"

namespace hallpass {
namespace {

using Setter =
    std::function<std::optional<Error>(const YamlSource&, const YAML::Node&, ServerConfig&)>;

struct Row {
    std::string_view name;
    Setter set;
};

// Integer-valued member with bounds.
template <class T>
Row int_row(std::string_view name, T ServerConfig::*member, int64_t min, int64_t max) {
    return Row{name,
               [name, member, min, max](const YamlSource& src, const YAML::Node& node,
                                        ServerConfig& cfg) -> std::optional<Error> {
                   auto v = src.get_int(node, name, min, max);
                   if (!v) return v.error();
                   cfg.*member = static_cast<T>(*v);
                   return std::nullopt;
               }};
}

// true/false (also yes/no, on/off: YAML 1.1 spellings people write), case-insensitive.
std::optional<Error> read_bool(const YamlSource& src, const YAML::Node& node, std::string_view name,
                               bool* out) {
    auto text = src.get_string(node, name);
    if (!text) return text.error();
    std::string v = *text;
    for (char& c : v) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (v == "true" || v == "yes" || v == "on") {
        *out = true;
    } else if (v == "false" || v == "no" || v == "off") {
        *out = false;
    } else {
        return src.error_at(
            node, "\"" + std::string(name) + "\" must be true or false, got \"" + *text + "\"");
    }
    return std::nullopt;
}

Row bool_row(std::string_view name, bool ServerConfig::*member) {
    return Row{name,
               [name, member](const YamlSource& src, const YAML::Node& node, ServerConfig& cfg)
                   -> std::optional<Error> { return read_bool(src, node, name, &(cfg.*member)); }};
}

std::optional<Error> set_listen(const YamlSource& src, const YAML::Node& node, ServerConfig& cfg) {
    auto list = src.get_string_list(node, "listen");
    if (!list) return list.error();
    if (list->empty()) return src.error_at(node, "\"listen\" needs at least one ADDR:PORT");
    for (size_t i = 0; i < list->size(); ++i) {
        auto addr = parse_listen_address((*list)[i]);
        if (!addr) {
            const YAML::Node at = node.IsSequence() ? node[i] : node;
            return src.error_at(at, addr.error().message);
        }
    }
    cfg.listen = *list;
    return std::nullopt;
}

// A list of ports and ranges (443, "1025-65535") into `member`.
Row port_list_row(std::string_view name, PortRanges ServerConfig::*member) {
    return Row{
        name,
        [name, member](const YamlSource& src, const YAML::Node& node,
                       ServerConfig& cfg) -> std::optional<Error> {
            const std::string key(name);
            if (!node.IsSequence()) {
                return src.error_at(node, "\"" + key +
                                              "\" must be a list of ports or ranges "
                                              "(443, \"1025-65535\")");
            }
            PortRanges out;
            for (const YAML::Node& item : node) {
                auto text = src.get_string(item, name);
                if (!text) return text.error();
                size_t dash = text->find('-');
                if (dash == std::string::npos) {
                    auto port = src.get_int(item, name, 1, 65535);
                    if (!port) return port.error();
                    auto p = static_cast<uint16_t>(*port);
                    out.ranges.emplace_back(p, p);
                    continue;
                }
                unsigned first = 0, last = 0;
                std::string_view a(text->data(), dash),
                    b(text->data() + dash + 1, text->size() - dash - 1);
                auto r1 = std::from_chars(a.data(), a.data() + a.size(), first);
                auto r2 = std::from_chars(b.data(), b.data() + b.size(), last);
                bool ok = !a.empty() && !b.empty() && r1.ec == std::errc() &&
                          r1.ptr == a.data() + a.size() && r2.ec == std::errc() &&
                          r2.ptr == b.data() + b.size() && first >= 1 && last <= 65535 &&
                          first <= last;
                if (!ok) {
                    return src.error_at(item, "bad port range \"" + *text + "\" in \"" + key +
                                                  "\": expected FIRST-LAST within "
                                                  "1-65535");
                }
                out.ranges.emplace_back(static_cast<uint16_t>(first), static_cast<uint16_t>(last));
            }
            cfg.*member = std::move(out);
            return std::nullopt;
        }};
}

std::optional<Error> set_allowed_clients(const YamlSource& src, const YAML::Node& node,
                                         ServerConfig& cfg) {
    auto list = src.get_string_list(node, "allowed_clients");
    if (!list) return list.error();
    NetSet check;
    for (size_t i = 0; i < list->size(); ++i) {
        if (auto err = check.add((*list)[i])) {
            return src.error_at(node.IsSequence() ? node[i] : node, "allowed_clients: " + *err);
        }
    }
    cfg.allowed_clients = *list;
    return std::nullopt;
}

// CIDRs ("127.0.0.0/8", "::1") or ADDR:PORT ("127.0.0.1:8080", "[::1]:631").
std::optional<Error> set_allow_local_destinations(const YamlSource& src, const YAML::Node& node,
                                                  ServerConfig& cfg) {
    auto list = src.get_string_list(node, "allow_local_destinations");
    if (!list) return list.error();
    for (size_t i = 0; i < list->size(); ++i) {
        if (auto err = check_local_exception((*list)[i])) {
            return src.error_at(node.IsSequence() ? node[i] : node,
                                "allow_local_destinations: " + *err);
        }
    }
    cfg.allow_local_destinations = *list;
    return std::nullopt;
}

std::optional<Error> set_admin_hosts(const YamlSource& src, const YAML::Node& node,
                                     ServerConfig& cfg) {
    auto list = src.get_string_list(node, "admin_hosts");
    if (!list) return list.error();
    for (size_t i = 0; i < list->size(); ++i) {
        std::string& host = (*list)[i];
        std::transform(host.begin(), host.end(), host.begin(),
                       [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
        if (host.empty() || host.find_first_of(":/ ") != std::string::npos) {
            return src.error_at(
                node.IsSequence() ? node[i] : node,
                "admin_hosts takes host names without port or scheme, got \"" + host + "\"");
        }
    }
    cfg.admin_hosts = *list;
    return std::nullopt;
}

std::optional<Error> set_hosts_file(const YamlSource& src, const YAML::Node& node,
                                    ServerConfig& cfg) {
    auto path = src.get_string(node, "hosts_file");
    if (!path) return path.error();
    cfg.hosts_file = *path;
    return std::nullopt;
}

std::optional<Error> set_user(const YamlSource& src, const YAML::Node& node, ServerConfig& cfg) {
    auto user = src.get_string(node, "user");
    if (!user) return user.error();
    if (user->empty()) return src.error_at(node, "user: an account name, or root");
    cfg.user = *user;
    return std::nullopt;
}

std::optional<Error> set_nameservers(const YamlSource& src, const YAML::Node& node,
                                     ServerConfig& cfg) {
    auto list = src.get_string_list(node, "nameservers");
    if (!list) return list.error();
    for (size_t i = 0; i < list->size(); ++i) {
        // "IP", "IP:PORT", "IPv6" or "[IPv6]:PORT": evdns_base_nameserver_ip_add takes them all.
        const std::string& text = (*list)[i];
        bool valid = parse_listen_address(text) || parse_listen_address(text + ":53") ||
                     parse_listen_address("[" + text + "]:53");
        if (!valid) {
            const YAML::Node at = node.IsSequence() ? node[i] : node;
            return src.error_at(at, "bad nameserver \"" + text +
                                        "\": expected an IP address, optionally with :PORT");
        }
    }
    cfg.nameservers = *list;
    return std::nullopt;
}

std::optional<Error> set_block_page(const YamlSource& src, const YAML::Node& node,
                                    ServerConfig& cfg) {
    auto path = src.get_string(node, "block_page");
    if (!path) return path.error();
    cfg.block_page = *path;  // existence is checked (relative to the rules file) by rules_loader
    return std::nullopt;
}

// "off", "-" (stdout), a path, or {path: ..., format: squid|json}. A relative path is relative
// to the directory of the rules file, like list files and the block page.
std::optional<Error> set_access_log(const YamlSource& src, const YAML::Node& node,
                                    ServerConfig& cfg) {
    AccessLogConfig out;
    // (YAML::Node's operator= writes into the node it refers to; reset() rebinds.)
    YAML::Node path_node;
    path_node.reset(node);
    if (node.IsMap()) {
        static constexpr std::string_view kKeys[] = {"path", "format"};
        if (auto err = src.check_keys(node, kKeys, "access_log")) return *err;
        if (!node["path"]) {
            return src.error_at(node,
                                "\"access_log\" needs a path: a file, \"-\" for stdout, or off");
        }
        path_node.reset(node["path"]);
        if (const YAML::Node format = node["format"]) {
            auto text = src.get_string(format, "access_log.format");
            if (!text) return text.error();
            if (*text == "squid") {
                out.format = AccessLogConfig::Format::Squid;
            } else if (*text == "json") {
                out.format = AccessLogConfig::Format::Json;
            } else {
                return src.error_at(
                    format, "\"access_log.format\" must be squid or json, got \"" + *text + "\"");
            }
        }
    } else if (!node.IsScalar()) {
        return src.error_at(node,
                            "\"access_log\" must be off, -, a file path, or {path: ..., "
                            "format: squid|json}");
    }
    auto path = src.get_string(path_node, "access_log.path");
    if (!path) return path.error();
    if (path->empty()) {
        return src.error_at(path_node,
                            "\"access_log\" path is empty: give a file, \"-\" for stdout, or off");
    }
    if (*path == "off") {
        out.path.clear();
    } else if (*path == "-" || std::filesystem::path(*path).is_absolute()) {
        out.path = *path;
    } else {
        out.path = (std::filesystem::path(src.name()).parent_path() / *path).string();
    }
    cfg.access_log = out;
    return std::nullopt;
}

std::optional<Error> set_admin(const YamlSource& src, const YAML::Node& node, ServerConfig& cfg) {
    auto text = src.get_string(node, "admin");
    if (!text) return text.error();
    if (*text != "off") {
        auto addr = parse_listen_address(*text);
        if (!addr) return src.error_at(node, "admin: " + addr.error().message + " (or \"off\")");
    }
    cfg.admin = *text;
    return std::nullopt;
}

std::optional<Error> set_pac_listen(const YamlSource& src, const YAML::Node& node,
                                    ServerConfig& cfg) {
    auto list = src.get_string_list(node, "pac_listen");
    if (!list) return list.error();
    for (size_t i = 0; i < list->size(); ++i) {
        if (auto addr = parse_listen_address((*list)[i]); !addr) {
            return src.error_at(node.IsSequence() ? node[i] : node,
                                "pac_listen: " + addr.error().message);
        }
    }
    cfg.pac_listen = *list;
    return std::nullopt;
}

std::optional<Error> set_state_dir(const YamlSource& src, const YAML::Node& node,
                                   ServerConfig& cfg) {
    auto path = src.get_string(node, "state_dir");
    if (!path) return path.error();
    if (path->empty()) return src.error_at(node, "state_dir is empty");
    // Relative to the rules file, as list files are.
    cfg.state_dir = std::filesystem::path(*path).is_absolute()
                        ? *path
                        : (std::filesystem::path(src.name()).parent_path() / *path).string();
    return std::nullopt;
}

std::optional<Error> set_control_socket(const YamlSource& src, const YAML::Node& node,
                                        ServerConfig& cfg) {
    auto path = src.get_string(node, "control_socket");
    if (!path) return path.error();
    if (*path != "off" && !std::filesystem::path(*path).is_absolute()) {
        return src.error_at(node, "control_socket is an absolute path (or off)");
    }
    if (path->size() >= 100) return src.error_at(node, "control_socket: the path is too long");
    cfg.control_socket = *path == "off" ? "" : *path;
    return std::nullopt;
}

std::optional<Error> set_admin_token_file(const YamlSource& src, const YAML::Node& node,
                                          ServerConfig& cfg) {
    auto path = src.get_string(node, "admin_token_file");
    if (!path) return path.error();
    std::string resolved = std::filesystem::path(*path).is_absolute()
                               ? *path
                               : (std::filesystem::path(src.name()).parent_path() / *path).string();
    std::ifstream in(resolved);
    std::string token;
    if (!in || !std::getline(in, token)) {
        return src.error_at(node, "cannot read admin_token_file \"" + resolved + "\"");
    }
    while (!token.empty() && std::isspace(static_cast<unsigned char>(token.back()))) {
        token.pop_back();
    }
    if (token.size() < 16) {
        return src.error_at(node, "admin_token_file: the token is shorter than 16 characters");
    }
    cfg.admin_token_file = resolved;
    cfg.admin_token = token;
    return std::nullopt;
}

// The top-level `pac:` section.
std::optional<Error> read_pac(const YamlSource& src, const YAML::Node& pac, PacConfig& out) {
    static constexpr std::string_view kKeys[] = {"direct_domains", "direct_nets",
                                                 "fallback_direct"};
    if (!pac.IsMap()) return src.error_at(pac, "\"pac\" must be a map");
    if (auto err = src.check_keys(pac, kKeys, "pac")) return err;
    if (const YAML::Node n = pac["direct_domains"]) {
        auto list = src.get_string_list(n, "direct_domains");
        if (!list) return list.error();
        for (size_t i = 0; i < list->size(); ++i) {
            std::string name = (*list)[i];
            for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
            if (name.starts_with("*.")) name.erase(0, 2);
            if (name.starts_with('.')) name.erase(0, 1);
            if (name.ends_with('.')) name.pop_back();
            const bool ok =
                !name.empty() && name.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789-.") ==
                                     std::string::npos;
            if (!ok) {
                return src.error_at(n.IsSequence() ? n[i] : n,
                                    "pac.direct_domains: \"" + (*list)[i] +
                                        "\" is not a host name (IDN names in their xn-- form)");
            }
            out.direct_domains.push_back(name);
        }
    }
    if (const YAML::Node n = pac["direct_nets"]) {
        auto list = src.get_string_list(n, "direct_nets");
        if (!list) return list.error();
        for (size_t i = 0; i < list->size(); ++i) {
            const std::string& cidr = (*list)[i];
            const YAML::Node at = n.IsSequence() ? n[i] : n;
            NetSet check;
            if (auto err = check.add(cidr)) return src.error_at(at, "pac.direct_nets: " + *err);
            if (cidr.find(':') != std::string::npos) {
                return src.error_at(at, "pac.direct_nets: \"" + cidr +
                                            "\": a PAC file can test IPv4 networks only "
                                            "(isInNet)");
            }
            out.direct_nets.push_back(cidr.find('/') == std::string::npos ? cidr + "/32" : cidr);
        }
    }
    if (const YAML::Node n = pac["fallback_direct"]) {
        if (auto err = read_bool(src, n, "fallback_direct", &out.fallback_direct)) return err;
    }
    return std::nullopt;
}

const std::vector<Row>& rows() {
    constexpr int64_t kDay = 86'400'000;
    static const std::vector<Row> table = {
        {"listen", set_listen},
        int_row("threads", &ServerConfig::threads, 0, 256),
        int_row("head_timeout_ms", &ServerConfig::head_timeout_ms, 1, kDay),
        int_row("idle_timeout_ms", &ServerConfig::idle_timeout_ms, 1, kDay),
        int_row("connect_timeout_ms", &ServerConfig::connect_timeout_ms, 1, kDay),
        int_row("response_timeout_ms", &ServerConfig::response_timeout_ms, 1, kDay),
        int_row("tunnel_idle_timeout_ms", &ServerConfig::tunnel_idle_timeout_ms, 1, kDay),
        int_row("dns_timeout_ms", &ServerConfig::dns_timeout_ms, 10, 600'000),
        int_row("shutdown_grace_ms", &ServerConfig::shutdown_grace_ms, 0, kDay),
        int_row("max_request_line", &ServerConfig::max_request_line, 64, 1 << 20),
        int_row("max_header_bytes", &ServerConfig::max_header_bytes, 256, 1 << 20),
        int_row("max_headers", &ServerConfig::max_headers, 1, 10'000),
        int_row("max_connections", &ServerConfig::max_connections, 1, 10'000'000),
        int_row("buffer_bytes", &ServerConfig::buffer_bytes, 4096, 64 << 20),
        int_row("pool_per_host", &ServerConfig::pool_per_host, 0, 10'000),
        int_row("pool_max_idle", &ServerConfig::pool_max_idle, 0, 1'000'000),
        int_row("pool_idle_timeout_ms", &ServerConfig::pool_idle_timeout_ms, 1, kDay),
        port_list_row("connect_ports", &ServerConfig::connect_ports),
        port_list_row("http_ports", &ServerConfig::http_ports),
        {"allowed_clients", set_allowed_clients},
        int_row("max_connections_per_client", &ServerConfig::max_connections_per_client, 1,
                10'000'000),
        {"hosts_file", set_hosts_file},
        {"user", set_user},
        {"nameservers", set_nameservers},
        {"block_page", set_block_page},
        {"access_log", set_access_log},
        {"admin", set_admin},
        {"admin_hosts", set_admin_hosts},
        bool_row("splice", &ServerConfig::splice),
        int_row("admin_max_connections", &ServerConfig::admin_max_connections, 1, 10'000),
        {"allow_local_destinations", set_allow_local_destinations},
        {"pac_listen", set_pac_listen},
        {"state_dir", set_state_dir},
        {"control_socket", set_control_socket},
        {"admin_token_file", set_admin_token_file},
        int_row("dns_cache_max_ttl_s", &ServerConfig::dns_cache_max_ttl_s, 0, 86'400),
        int_row("dns_cache_entries", &ServerConfig::dns_cache_entries, 0, 10'000'000),
        int_row("max_dns_lookups_per_client", &ServerConfig::max_dns_lookups_per_client, 1,
                100'000),
    };
    return table;
}

// Top-level sections of rules.yaml: `server` is read here, the rest by rules_loader.
constexpr std::string_view kTopLevelKeys[] = {"server", "default", "groups",    "lists",
                                              "rules",  "pac",     "schedules", "safe_search"};

}  // namespace

Result<ServerConfig> read_server_config(const YamlSource& src) {
    if (auto err = src.check_keys(src.root(), kTopLevelKeys, "the top level")) return *err;
    ServerConfig cfg;
    if (const YAML::Node pac = src.root()["pac"]; pac && !pac.IsNull()) {
        if (auto err = read_pac(src, pac, cfg.pac)) return *err;
    }
    const YAML::Node server = src.root()["server"];
    if (!server || server.IsNull()) return cfg;
    std::vector<std::string_view> names;
    for (const Row& row : rows()) names.push_back(row.name);
    if (auto err = src.check_keys(server, names, "server")) return *err;
    for (const Row& row : rows()) {
        const YAML::Node node = server[std::string(row.name)];
        if (!node) continue;
        if (auto err = row.set(src, node, cfg)) return *err;
    }
    return cfg;
}

std::optional<std::string> check_local_exception(std::string_view text) {
    if (parse_listen_address(text)) return std::nullopt;
    NetSet check;
    auto err = check.add(text);
    if (!err) return std::nullopt;
    return *err + " (expected a CIDR or ADDR:PORT)";
}

Result<ListenAddress> parse_listen_address(std::string_view text) {
    std::string_view host;
    std::string_view port_text;
    bool v6 = false;
    if (text.starts_with('[')) {
        size_t close = text.find("]:");
        if (close == std::string_view::npos) {
            return Error{"bad address \"" + std::string(text) + "\": expected [IPv6]:PORT"};
        }
        host = text.substr(1, close - 1);
        port_text = text.substr(close + 2);
        v6 = true;
    } else {
        size_t colon = text.rfind(':');
        if (colon == std::string_view::npos || text.find(':') != colon) {
            return Error{"bad address \"" + std::string(text) +
                         "\": expected ADDR:PORT (IPv6 as [ADDR]:PORT)"};
        }
        host = text.substr(0, colon);
        port_text = text.substr(colon + 1);
    }
    unsigned port = 0;
    auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (port_text.empty() || ec != std::errc() || end != port_text.data() + port_text.size() ||
        port > 65535) {
        return Error{"bad port in \"" + std::string(text) + "\": expected 0..65535"};
    }
    ListenAddress out;
    std::string host_str(host);
    if (v6) {
        auto* sin6 = reinterpret_cast<sockaddr_in6*>(&out.addr);
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(static_cast<uint16_t>(port));
        if (inet_pton(AF_INET6, host_str.c_str(), &sin6->sin6_addr) != 1) {
            return Error{"bad IPv6 address in \"" + std::string(text) + "\""};
        }
        out.len = sizeof(sockaddr_in6);
    } else {
        auto* sin = reinterpret_cast<sockaddr_in*>(&out.addr);
        sin->sin_family = AF_INET;
        sin->sin_port = htons(static_cast<uint16_t>(port));
        if (inet_pton(AF_INET, host_str.c_str(), &sin->sin_addr) != 1) {
            return Error{"bad IPv4 address in \"" + std::string(text) + "\""};
        }
        out.len = sizeof(sockaddr_in);
    }
    return out;
}

std::string format_address(const sockaddr* addr) {
    char ip[INET6_ADDRSTRLEN] = "?";
    if (addr->sa_family == AF_INET) {
        auto* sin = reinterpret_cast<const sockaddr_in*>(addr);
        std::string out;
        append_ipv4(out, ntohl(sin->sin_addr.s_addr));
        out += ':';
        char port[8];
        out.append(port, std::to_chars(port, port + sizeof port, ntohs(sin->sin_port)).ptr);
        return out;
    }
    if (addr->sa_family == AF_INET6) {
        auto* sin6 = reinterpret_cast<const sockaddr_in6*>(addr);
        inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof ip);
        return "[" + std::string(ip) + "]:" + std::to_string(ntohs(sin6->sin6_port));
    }
    return "?";
}

uint16_t port_of(const sockaddr* addr) {
    if (addr->sa_family == AF_INET) {
        return ntohs(reinterpret_cast<const sockaddr_in*>(addr)->sin_port);
    }
    if (addr->sa_family == AF_INET6) {
        return ntohs(reinterpret_cast<const sockaddr_in6*>(addr)->sin6_port);
    }
    return 0;
}

Result<ServerConfig> parse_server_config(const std::string& yaml_text, const std::string& name) {
    auto src = YamlSource::parse(yaml_text, name);
    if (!src) return src.error();
    return read_server_config(*src);
}

Result<ServerConfig> load_server_config(const std::string& path) {
    auto src = YamlSource::load_file(path);
    if (!src) return src.error();
    return read_server_config(*src);
}

}  // namespace hallpass
