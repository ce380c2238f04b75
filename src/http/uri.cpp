// Request-target parsing for a forward proxy (RFC 9112 §3.2.2-§3.2.3, RFC 3986 §3) and the one
// canonical spelling of a host. Every rule decision and every upstream connection uses the host
// produced here, so any name that could be read two ways (percent-escapes, odd IPv4 forms,
// userinfo tricks) is rejected instead of guessed.
#include "hallpass/http/uri.h"

#include <arpa/inet.h>
#include <idn2.h>

#include <cctype>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

namespace hallpass {

namespace {

constexpr size_t kMaxNameBytes = 253;  // RFC 1035 §2.3.4, without the trailing dot
constexpr size_t kMaxLabelBytes = 63;

bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_hex(char c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
char ascii_lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

std::string to_lower(std::string_view s) {
    std::string out(s);
    for (char& c : out) c = ascii_lower(c);
    return out;
}

Error fail(std::string message) { return Error{std::move(message), {}, 0, 0}; }

std::string quoted(std::string_view s) { return "\"" + std::string(s) + "\""; }

// scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) (RFC 3986 §3.1)
bool is_valid_scheme(std::string_view s) {
    if (s.empty() || !is_alpha(s[0])) return false;
    for (char c : s) {
        if (!is_alpha(c) && !is_digit(c) && c != '+' && c != '-' && c != '.') return false;
    }
    return true;
}

// userinfo = *( unreserved / pct-encoded / sub-delims / ":" ) (RFC 3986 §3.2.1). Checked even
// though it is dropped: a '\' or a second '@' here is how URL confusion attacks start.
bool is_valid_userinfo(std::string_view s) {
    for (size_t i = 0; i < s.size(); ++i) {
        const char c = s[i];
        if (c == '%') {
            if (i + 2 >= s.size() || !is_hex(s[i + 1]) || !is_hex(s[i + 2])) return false;
            i += 2;
        } else if (!is_alpha(c) && !is_digit(c) &&
                   std::string_view("-._~!$&'()*+,;=:").find(c) == std::string_view::npos) {
            return false;
        }
    }
    return true;
}

uint16_t default_port_for(std::string_view scheme) {
    if (scheme == "http") return 80;
    if (scheme == "https") return 443;
    if (scheme == "ftp") return 21;
    return 0;
}

// port = *DIGIT (RFC 3986 §3.2.3), restricted to 1..65535. 0 means invalid.
uint16_t parse_port(std::string_view s) {
    if (s.empty()) return 0;
    uint32_t value = 0;
    for (char c : s) {
        if (!is_digit(c)) return 0;
        value = value * 10 + static_cast<uint32_t>(c - '0');
        if (value > 65535) return 0;
    }
    return static_cast<uint16_t>(value);
}

// host [ ":" port ] with host = IP-literal / IPv4address / reg-name (RFC 3986 §3.2.2). An empty
// port after the colon means the default one (RFC 3986 §6.2.3).
Result<Authority> parse_host_port(std::string_view text, bool port_required,
                                  uint16_t default_port) {
    std::string_view host;
    std::string_view rest;
    const bool bracketed = !text.empty() && text[0] == '[';
    if (bracketed) {
        const size_t close = text.find(']');
        if (close == std::string_view::npos) return fail("unterminated ipv6 literal");
        host = text.substr(1, close - 1);
        rest = text.substr(close + 1);
        if (!rest.empty() && rest[0] != ':') return fail("junk after ipv6 literal");
    } else {
        const size_t colon = text.find(':');
        host = text.substr(0, colon);
        rest = colon == std::string_view::npos ? std::string_view() : text.substr(colon);
    }
    if (host.empty()) return fail("missing host");

    Result<Authority> authority = canonicalize_host(host);
    if (!authority) return authority;
    // Only IPv6 goes in brackets (IPvFuture is not supported); an IPv6 literal must be in them.
    // (A bracketed IPv4-mapped address comes back as its IPv4 host.)
    const bool ipv6_text = host.find(':') != std::string_view::npos;
    if (bracketed != ipv6_text) {
        return fail("invalid host " + quoted(host));
    }

    const std::string_view port_text = rest.empty() ? rest : rest.substr(1);
    if (port_text.empty()) {
        if (port_required) return fail("missing port");
        authority->port = default_port;
    } else {
        authority->port = parse_port(port_text);
        if (authority->port == 0) return fail("invalid port " + quoted(port_text));
    }
    return authority;
}

// The trailing label decides whether a name is meant as an IPv4 address: the WHATWG URL standard
// treats "127.1", "0x7f.1" and "2130706433" as IPv4 (and so do inet_aton-based resolvers), so a
// name ending in a numeric label must be a plain dotted quad or it is rejected. Otherwise one of
// those forms could reach 127.0.0.1 past a rule written for "127.0.0.1".
bool ends_in_number(std::string_view name) {
    const std::string_view last = name.substr(name.rfind('.') + 1);
    if (last.size() >= 2 && last[0] == '0' && (last[1] == 'x' || last[1] == 'X')) {
        for (char c : last.substr(2)) {
            if (!is_hex(c)) return false;
        }
        return true;
    }
    for (char c : last) {
        if (!is_digit(c)) return false;
    }
    return !last.empty();
}

// Bytes and lengths of an ASCII (or punycoded) name; returns the error or an empty string.
std::string check_name(std::string_view name) {
    if (name.empty()) return "empty host";
    if (name.size() > kMaxNameBytes) return "host name too long";
    size_t label_start = 0;
    for (size_t i = 0; i <= name.size(); ++i) {
        if (i == name.size() || name[i] == '.') {
            const size_t len = i - label_start;
            if (len == 0) return "empty label in host " + quoted(name);
            if (len > kMaxLabelBytes) return "label too long in host " + quoted(name);
            label_start = i + 1;
            continue;
        }
        const char c = name[i];
        // '_' is not valid in host names (RFC 952) but is common in real DNS names and in the
        // block lists that must match them.
        if (!(c >= 'a' && c <= 'z') && !is_digit(c) && c != '-' && c != '_') {
            return "invalid byte in host " + quoted(name);
        }
    }
    return {};
}

// UTS #46 / IDNA2008 via libidn2: non-transitional first (so "faß.de" stays itself), then
// transitional for names only IDNA2003 accepted.
Result<std::string> to_punycode(const std::string& name) {
    for (int flags : {IDN2_NONTRANSITIONAL, IDN2_TRANSITIONAL}) {
        char* out = nullptr;
        const int rc = idn2_lookup_u8(reinterpret_cast<const uint8_t*>(name.c_str()),
                                      reinterpret_cast<uint8_t**>(&out), flags);
        const std::unique_ptr<char, decltype(&std::free)> owned(out, &std::free);
        if (rc == IDN2_OK) return std::string(out);
        if (flags == IDN2_TRANSITIONAL) {
            return fail("invalid international host name " + quoted(name) + ": " +
                        idn2_strerror(rc));
        }
    }
    return fail("unreachable");
}

Result<Authority> canonicalize_ip6(std::string_view host) {
    in6_addr addr{};
    char text[INET6_ADDRSTRLEN];
    if (inet_pton(AF_INET6, std::string(host).c_str(), &addr) != 1 ||
        inet_ntop(AF_INET6, &addr, text, sizeof text) == nullptr) {
        return fail("invalid ipv6 address " + quoted(host));
    }
    Authority a;
    if (IN6_IS_ADDR_V4MAPPED(&addr)) {
        // ::ffff:a.b.c.d reaches the IPv4 host a.b.c.d: it is that host, for rules too, or a
        // rule on 127.0.0.1 would be walked around by writing [::ffff:127.0.0.1].
        in_addr v4{};
        std::memcpy(&v4, addr.s6_addr + 12, 4);
        char v4_text[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &v4, v4_text, sizeof v4_text);
        a.host = v4_text;
        a.kind = HostKind::Ipv4;
        return a;
    }
    a.host = text;
    a.kind = HostKind::Ipv6;
    return a;
}

std::string bracketed_host(const Authority& a) {
    return a.kind == HostKind::Ipv6 ? "[" + a.host + "]" : a.host;
}

}  // namespace

std::string Authority::host_port() const {
    return bracketed_host(*this) + ":" + std::to_string(port);
}

std::string Authority::host_header(uint16_t default_port) const {
    if (port == default_port) return bracketed_host(*this);
    return host_port();
}

Result<Authority> canonicalize_host(std::string_view host) {
    if (host.empty()) return fail("empty host");
    bool ascii = true;
    for (unsigned char c : host) {
        if (c <= 0x20 || c == 0x7f) return fail("invalid byte in host " + quoted(host));
        // A percent-escape would let one name be spelled many ways (RFC 3986 §3.2.2 allows them
        // in reg-name; we do not).
        if (c == '%') return fail("percent-escape in host " + quoted(host));
        ascii = ascii && c < 0x80;
    }
    if (host.find(':') != std::string_view::npos) return canonicalize_ip6(host);

    std::string name;
    if (ascii) {
        name = to_lower(host);
    } else {
        Result<std::string> puny = to_punycode(std::string(host));
        if (!puny) return puny.error();
        name = to_lower(*puny);
    }
    if (!name.empty() && name.back() == '.') name.pop_back();  // FQDN form, same host
    if (std::string error = check_name(name); !error.empty()) return fail(std::move(error));

    Authority a;
    if (ends_in_number(name)) {
        in_addr addr{};
        // glibc's inet_pton takes exactly four decimal octets without leading zeros, which is
        // already the canonical text: no inet_ntop round trip (it was 8% of a request's cost).
        if (inet_pton(AF_INET, name.c_str(), &addr) != 1) {
            return fail("invalid ipv4 address " + quoted(host));
        }
        a.host = std::move(name);
        a.kind = HostKind::Ipv4;
        return a;
    }
    a.host = std::move(name);
    a.kind = HostKind::Name;
    return a;
}

Result<AbsoluteUri> parse_absolute_uri(std::string_view target) {
    const size_t colon = target.find(':');
    if (colon == std::string_view::npos || !is_valid_scheme(target.substr(0, colon))) {
        return fail("not an absolute uri");
    }
    if (target.substr(colon, 3) != "://") return fail("missing authority in uri");

    AbsoluteUri uri;
    uri.scheme = to_lower(target.substr(0, colon));
    const std::string_view rest = target.substr(colon + 3);
    const size_t authority_end = rest.find_first_of("/?#");
    std::string_view authority = rest.substr(0, authority_end);
    std::string_view tail =
        authority_end == std::string_view::npos ? std::string_view() : rest.substr(authority_end);

    bool had_userinfo = false;
    if (const size_t at = authority.find('@'); at != std::string_view::npos) {
        // `http://allowed@blocked/` goes to blocked: the userinfo is dropped, never matched.
        if (!is_valid_userinfo(authority.substr(0, at))) return fail("invalid userinfo in uri");
        authority.remove_prefix(at + 1);
        had_userinfo = true;
    }
    const uint16_t default_port = default_port_for(uri.scheme);
    Result<Authority> parsed = parse_host_port(authority, default_port == 0, default_port);
    if (!parsed) {
        if (parsed.error().message == "missing port") {
            return fail("port required for scheme " + quoted(uri.scheme));
        }
        return parsed.error();
    }
    uri.authority = std::move(*parsed);
    uri.authority.had_userinfo = had_userinfo;

    // A fragment is never part of a request-target (RFC 9112 §3.2); drop it rather than forward it.
    tail = tail.substr(0, tail.find('#'));
    if (tail.empty() || tail[0] == '?') uri.path_and_query = "/";
    uri.path_and_query += tail;
    return uri;
}

Result<Authority> parse_authority(std::string_view text, bool port_required,
                                  uint16_t default_port) {
    if (text.find('@') != std::string_view::npos) return fail("userinfo not allowed");
    return parse_host_port(text, port_required, default_port);
}

std::string normalize_path(std::string_view path_and_query) {
    size_t q = path_and_query.find('?');
    std::string_view path = path_and_query.substr(0, q);
    auto hex = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    };
    auto unreserved = [](unsigned char c) {
        return std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
    };
    // 1. Decode escapes of unreserved characters; upper-case the hex of the others.
    std::string decoded;
    decoded.reserve(path.size());
    for (size_t i = 0; i < path.size(); ++i) {
        if (path[i] == '%' && i + 2 < path.size()) {
            int hi = hex(path[i + 1]), lo = hex(path[i + 2]);
            if (hi >= 0 && lo >= 0) {
                auto c = static_cast<unsigned char>(hi * 16 + lo);
                if (unreserved(c)) {
                    decoded += static_cast<char>(c);
                } else {
                    static constexpr char kHex[] = "0123456789ABCDEF";
                    decoded += '%';
                    decoded += kHex[hi];
                    decoded += kHex[lo];
                }
                i += 2;
                continue;
            }
        }
        decoded += path[i];
    }
    // 2. Segments: empty ones (repeated slashes) and "." dropped, ".." removes the one before.
    std::vector<std::string_view> segments;
    std::string_view rest(decoded);
    if (rest.starts_with('/')) rest.remove_prefix(1);
    bool trailing_slash = false;
    while (true) {
        size_t slash = rest.find('/');
        std::string_view seg = rest.substr(0, slash);
        bool last = slash == std::string_view::npos;
        if (seg == "..") {
            if (!segments.empty()) segments.pop_back();
            trailing_slash = last;
        } else if (seg == ".") {
            trailing_slash = last;
        } else if (!seg.empty()) {
            segments.push_back(seg);
            trailing_slash = false;
        } else {
            trailing_slash = last && !segments.empty();
        }
        if (last) break;
        rest.remove_prefix(slash + 1);
    }
    std::string out;
    for (std::string_view seg : segments) {
        out += '/';
        out += seg;
    }
    if (out.empty() || trailing_slash) out += '/';
    if (q != std::string_view::npos) out += path_and_query.substr(q);
    return out;
}

}  // namespace hallpass
