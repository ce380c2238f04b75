// Request targets of a forward proxy: absolute-form URIs (`http://host:port/path`), the
// authority-form of CONNECT (`host:port`), and the canonical host name that DNS and the rule
// engine see (lower case, no trailing dot, IDN as punycode, IPv6 without brackets). Pure.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "hallpass/base/error.h"

namespace hallpass {

enum class HostKind { Name, Ipv4, Ipv6 };

struct Authority {
    std::string host;  // canonical: see canonicalize_host(); IPv6 without brackets
    HostKind kind = HostKind::Name;
    uint16_t port = 0;
    bool had_userinfo = false;  // "user@host" was given (and dropped)

    // "host:port", with brackets for IPv6: the form used for Host headers, pool keys and logs.
    std::string host_port() const;
    // host alone, bracketed for IPv6; with ":port" appended when port != default_port.
    std::string host_header(uint16_t default_port) const;
};

struct AbsoluteUri {
    std::string scheme;  // lower-cased, e.g. "http"
    Authority authority;
    std::string
        path_and_query;  // origin-form target: starts with '/' ("/" when empty); no fragment
};

// Parses an absolute-form request target (RFC 9112 §3.2.2). Any scheme is parsed ("ftp", "https")
// so the caller can answer 501 for the ones it does not proxy; the default port is 80 for http,
// 443 for https, 21 for ftp, otherwise the port must be explicit. Userinfo is dropped
// (`http://a@b/` targets b). A fragment is dropped. Fails with a short reason on an invalid host
// (percent-escapes, spaces, control bytes, empty labels), a bad port or a missing authority.
Result<AbsoluteUri> parse_absolute_uri(std::string_view target);

// Parses authority-form `host:port` (CONNECT, RFC 9112 §3.2.3): the port is required, no
// userinfo. Also used for Host header values with `default_port` when `port_required` is false
// (a missing or empty port then gives `default_port`, which may be 0). IPv6 only in brackets.
Result<Authority> parse_authority(std::string_view text, bool port_required,
                                  uint16_t default_port = 0);

// Canonical form of a host name or IP literal (no brackets, no port): lower case, one trailing
// dot removed, Unicode labels converted to punycode (IDNA2008 via libidn2, with transitional
// fallback), IPv4/IPv6 literals normalised (inet_pton/inet_ntop). Fails for anything that is not a
// valid name: empty labels, labels over 63 bytes, names over 253 bytes, bytes outside
// [A-Za-z0-9-_] in an ASCII label, percent-escapes, whitespace, control bytes. A name whose last
// label is numeric (digits, or 0x + hex) must be a dotted-quad IPv4 address, so "127.1",
// "0x7f.1" and "2130706433" fail instead of reaching 127.0.0.1 past a rule. Input has no
// brackets.
Result<Authority> canonicalize_host(std::string_view host);

// The form of a path (and query) that url_regex rules match, so that one path cannot be spelt
// many ways around a rule: in the path (not the query) percent-escapes of unreserved characters
// are decoded (`%61` -> `a`; other escapes keep their bytes, with upper-case hex), repeated
// slashes collapse, and dot segments (`/./`, `/x/../`) are removed (RFC 3986 §5.2.4, §6.2.2).
// The request itself is forwarded as the client sent it.
std::string normalize_path(std::string_view path_and_query);

}  // namespace hallpass
