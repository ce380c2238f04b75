// The `server:` section of rules.yaml: YAML -> a validated ServerConfig. Every key is a row of one
// table (name, type, default, bounds) in config.cpp; an unknown key is an error with
// file:line:col and a did-you-mean. Runs at start-up and on reload, never on an event loop.
#pragma once

#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "hallpass/base/error.h"

namespace hallpass {

// server.access_log: where the access log goes (one line per request and per tunnel) and how.
struct AccessLogConfig {
    enum class Format { Squid, Json };
    std::string path;  // "" = off (the default), "-" = stdout, else a file (resolved against
                       // the directory of the rules file when relative)
    Format format = Format::Squid;
    bool enabled() const { return !path.empty(); }
    bool operator==(const AccessLogConfig&) const = default;
};

// Ports as closed ranges ("443", "1025-65535"), for connect_ports and http_ports.
struct PortRanges {
    std::vector<std::pair<uint16_t, uint16_t>> ranges;
    bool contains(uint16_t port) const {
        for (const auto& [first, last] : ranges) {
            if (port >= first && port <= last) return true;
        }
        return false;
    }
    bool empty() const { return ranges.empty(); }
    bool operator==(const PortRanges&) const = default;
};

// The `pac:` section: what the generated proxy auto-config file (/proxy.pac, /wpad.dat) sends
// DIRECT. Everything else goes to hallpass, with no DIRECT fallback unless asked: a device whose
// proxy is down must not quietly go around the filter.
struct PacConfig {
    std::vector<std::string> direct_domains;  // canonical names: the name and its subdomains
    std::vector<std::string> direct_nets;     // IPv4 CIDRs ("192.168.1.0/24"), for IP-literal URLs
    bool fallback_direct = false;             // "PROXY ...; DIRECT"
    bool operator==(const PacConfig&) const = default;
};

// Where the control socket is unless server.control_socket says otherwise. Unlike a configured
// path, the default one failing (no /run, another instance holds it) only loses the socket.
inline constexpr const char* kDefaultControlSocket = "/run/hallpass/control.sock";

struct ServerConfig {
    std::vector<std::string> listen = {"0.0.0.0:12345"};  // ADDR:PORT, [v6]:PORT
    int threads = 0;                                      // worker threads; 0 = number of cores

    // Timeouts (milliseconds).
    int head_timeout_ms = 10'000;          // whole request head, from its first byte
    int idle_timeout_ms = 60'000;          // keep-alive client waiting for its next request
    int connect_timeout_ms = 10'000;       // upstream TCP connect, per address
    int response_timeout_ms = 60'000;      // upstream silent (no response bytes) this long
    int tunnel_idle_timeout_ms = 600'000;  // CONNECT tunnel with no traffic either way
    int dns_timeout_ms = 5'000;            // one DNS query (evdns retries within it)
    int shutdown_grace_ms = 10'000;        // SIGTERM: in-flight exchanges may finish this long

    // Limits.
    size_t max_request_line = 8'192;   // bytes -> 414
    size_t max_header_bytes = 65'536;  // whole head -> 431
    size_t max_headers = 100;          // header fields -> 431
    int max_connections = 10'000;      // client connections, all workers -> 503
    size_t buffer_bytes = 256 * 1024;  // per direction before reading pauses (backpressure)
    // Tunnels and large response bodies move with splice(2) through pipes (no copy through
    // user space); false: copy.
    bool splice = true;

    // Upstream keep-alive pool (per worker).
    size_t pool_per_host = 64;    // idle connections kept per host:port
    size_t pool_max_idle = 1024;  // idle connections kept in all
    int pool_idle_timeout_ms = 30'000;

    PortRanges connect_ports = {{{443, 443}}};  // CONNECT allowed to these ports only
    // Plain HTTP to these ports only (empty = all): by default not to the well-known ports of
    // other protocols (SMTP, SSH, ...), at which a cross-protocol POST could be aimed.
    PortRanges http_ports = {{{80, 80}, {443, 443}, {8080, 8080}, {1025, 65535}}};
    // Destinations on this host (loopback, unspecified, link-local, its own interface addresses)
    // are refused unless listed here: CIDRs, or ADDR:PORT ("127.0.0.1:8080", "[::1]:631").
    std::vector<std::string> allow_local_destinations;

    // Who may use the proxy at all (no open proxy): loopback, RFC 1918, link-local, IPv6 ULA
    // and link-local by default. Others get 403 before anything else happens.
    std::vector<std::string> allowed_clients = {"127.0.0.0/8",    "10.0.0.0/8",     "172.16.0.0/12",
                                                "192.168.0.0/16", "169.254.0.0/16", "::1",
                                                "fc00::/7",       "fe80::/10"};
    int max_connections_per_client = 512;  // concurrent connections from one address -> 503

    // DNS.
    std::string hosts_file = "/etc/hosts";  // "" = none
    std::vector<std::string> nameservers;   // empty = those of /etc/resolv.conf
    int dns_cache_max_ttl_s = 300;          // cap on cached TTLs
    size_t dns_cache_entries = 4096;        // per worker
    // Lookups that miss the cache and wait for a nameserver, per client address, all workers:
    // past it, 503 (one client's unanswerable names must not take everyone's lookups).
    int max_dns_lookups_per_client = 32;

    std::string
        block_page;  // HTML template for blocked requests ("" = built-in); rule_set reads it

    AccessLogConfig access_log;  // off unless configured
    // The admin listener (/metrics, /stats.json, the dashboard): ADDR:PORT, or "off". Anyone who
    // can reach it reads the statistics (hosts, client addresses), so it stays on loopback
    // unless the admin binds it elsewhere on purpose.
    std::string admin = "127.0.0.1:12346";
    // Host names (besides its own addresses and localhost) under which the admin endpoint may
    // be reached; any other Host gets 421, so a DNS-rebinding page cannot read it.
    std::vector<std::string> admin_hosts;
    // Connections the admin endpoint holds at once: at the cap its longest-idle connection is
    // closed to make room; when none is idle, 503.
    int admin_max_connections = 64;
    // Started as root, hallpass binds, opens its logs, then runs as this account (no groups,
    // no capabilities, no_new_privs); "nobody" when it does not exist. "root" keeps root.
    std::string user = "hallpass";
    // More listeners that serve only the proxy auto-config file (WPAD clients ask
    // http://wpad.DOMAIN/wpad.dat on port 80): ADDR:PORT. Empty: the proxy port serves it.
    std::vector<std::string> pac_listen;
    // Where hallpass keeps what must survive a restart: the last good copy of each list by URL.
    std::string state_dir = "/var/lib/hallpass";
    // The local control socket `hallpass grant` talks to: root and members of the
    // hallpass-admin group may connect. "" (written "off"): none.
    std::string control_socket = kDefaultControlSocket;
    // A file holding the token that lets the admin endpoint take control requests (grants)
    // with "Authorization: Bearer TOKEN"; "" = no control over the admin endpoint.
    std::string admin_token_file;
    std::string admin_token;  // its contents, read when the configuration is loaded
    PacConfig pac;  // the top-level `pac:` section
};

// A listen address: "0.0.0.0:12345", "127.0.0.1:0" (any free port), "[::1]:12345".
struct ListenAddress {
    sockaddr_storage addr{};
    socklen_t len = 0;
};
Result<ListenAddress> parse_listen_address(std::string_view text);

// An allow_local_destinations entry: nullopt when `text` is a CIDR or ADDR:PORT, else why not.
std::optional<std::string> check_local_exception(std::string_view text);

// "ip" or "ip:port" (IPv6: "[ip]:port") as formatted for logs: inet_ntop plus port.
std::string format_address(const sockaddr* addr);
// The port of an IPv4 or IPv6 socket address (0 for other families).
uint16_t port_of(const sockaddr* addr);

// Reads the `server:` section of `path` (and checks the file's top-level keys). A missing file is
// an error; a file without `server:` gives the defaults. Errors carry file:line:col.
Result<ServerConfig> load_server_config(const std::string& path);

class YamlSource;
// Same, from an already parsed document (the rules loader reads the same file).
Result<ServerConfig> read_server_config(const YamlSource& src);

// Same, from YAML text; `name` is used in error messages.
Result<ServerConfig> parse_server_config(const std::string& yaml_text, const std::string& name);

}  // namespace hallpass
