// Fuzz target: absolute-form targets, authority-form targets and host canonicalisation. The rule
// engine compares canonical hosts byte for byte, so canonical output must be a fixed point (a
// canonical host canonicalises to itself, a parsed URI re-parses to the same target) and case or
// a trailing dot must never change the verdict.
#include <arpa/inet.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "hallpass/http/uri.h"

namespace hallpass::fuzz {
namespace {

bool same_authority(const Authority& a, const Authority& b) {
    return a.host == b.host && a.kind == b.kind && a.port == b.port;
}

bool is_ascii(std::string_view s) {
    for (unsigned char c : s) {
        if (c >= 0x80) return false;
    }
    return true;
}

std::string to_upper(std::string_view s) {
    std::string out(s);
    for (char& c : out) {
        if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 32);
    }
    return out;
}

// What a canonical host looks like, per kind (uri.h's contract for canonicalize_host).
void check_canonical(const Authority& a) {
    const std::string& h = a.host;
    FUZZ_CHECK(!h.empty());
    switch (a.kind) {
        case HostKind::Name: {
            FUZZ_CHECK(h.size() <= 253);
            FUZZ_CHECK(h.front() != '.' && h.back() != '.');
            size_t label = 0;
            for (char c : h) {
                const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
                                c == '_' || c == '.';
                FUZZ_CHECK(ok);
                label = c == '.' ? 0 : label + 1;
                FUZZ_CHECK(label <= 63);
            }
            FUZZ_CHECK(h.find("..") == std::string::npos);
            // A numeric last label would be read as an IPv4 address by some resolver.
            const std::string last = h.substr(h.rfind('.') + 1);
            FUZZ_CHECK(last.find_first_not_of("0123456789") != std::string::npos);
            break;
        }
        case HostKind::Ipv4: {
            in_addr addr{};
            char text[INET_ADDRSTRLEN];
            FUZZ_CHECK(inet_pton(AF_INET, h.c_str(), &addr) == 1);
            FUZZ_CHECK(inet_ntop(AF_INET, &addr, text, sizeof text) != nullptr && h == text);
            break;
        }
        case HostKind::Ipv6: {
            in6_addr addr{};
            char text[INET6_ADDRSTRLEN];
            FUZZ_CHECK(inet_pton(AF_INET6, h.c_str(), &addr) == 1);
            FUZZ_CHECK(inet_ntop(AF_INET6, &addr, text, sizeof text) != nullptr && h == text);
            break;
        }
    }
    // Idempotence: the canonical form of a canonical host is itself.
    const auto again = canonicalize_host(h);
    FUZZ_CHECK(again.ok());
    FUZZ_CHECK(again->host == h && again->kind == a.kind);
}

void check_host(std::string_view text) {
    const auto host = canonicalize_host(text);
    if (host) check_canonical(*host);
    if (!is_ascii(text)) return;
    // Filter evasion: upper case and a trailing dot name the same host.
    const auto upper = canonicalize_host(to_upper(text));
    FUZZ_CHECK(upper.ok() == host.ok());
    if (host) FUZZ_CHECK(upper->host == host->host && upper->kind == host->kind);
    if (!text.empty() && text.back() != '.' && text.find(':') == std::string_view::npos) {
        const auto dotted = canonicalize_host(std::string(text) + ".");
        FUZZ_CHECK(dotted.ok() == host.ok());
        if (host) FUZZ_CHECK(dotted->host == host->host && dotted->kind == host->kind);
    }
}

void check_authority(std::string_view text, bool port_required, uint16_t default_port) {
    const auto a = parse_authority(text, port_required, default_port);
    if (!a) {
        FUZZ_CHECK(!a.error().message.empty());
        return;
    }
    check_canonical(*a);
    FUZZ_CHECK(!a->had_userinfo);
    if (port_required) FUZZ_CHECK(a->port != 0);
    const auto again = parse_authority(a->host_port(), true);
    FUZZ_CHECK(again.ok() && same_authority(*again, *a));
    if (a->port != 0) {
        const auto header = parse_authority(a->host_header(default_port), false, default_port);
        FUZZ_CHECK(header.ok() && same_authority(*header, *a));
    }
}

void check_absolute_uri(std::string_view text) {
    const auto uri = parse_absolute_uri(text);
    if (!uri) {
        FUZZ_CHECK(!uri.error().message.empty());
        return;
    }
    FUZZ_CHECK(!uri->scheme.empty());
    FUZZ_CHECK(uri->scheme.find_first_of("ABCDEFGHIJKLMNOPQRSTUVWXYZ") == std::string::npos);
    FUZZ_CHECK(uri->authority.port != 0);
    check_canonical(uri->authority);
    FUZZ_CHECK(!uri->path_and_query.empty() && uri->path_and_query.front() == '/');
    FUZZ_CHECK(uri->path_and_query.find('#') == std::string::npos);

    // Rebuilt from its parts (explicit port, no userinfo) it is the same target.
    const std::string rebuilt =
        uri->scheme + "://" + uri->authority.host_port() + uri->path_and_query;
    const auto again = parse_absolute_uri(rebuilt);
    FUZZ_CHECK(again.ok());
    FUZZ_CHECK(again->scheme == uri->scheme && again->path_and_query == uri->path_and_query);
    FUZZ_CHECK(same_authority(again->authority, uri->authority));
    FUZZ_CHECK(!again->authority.had_userinfo);
}

}  // namespace
}  // namespace hallpass::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace hallpass::fuzz;
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    check_host(text);
    check_authority(text, true, 0);
    check_authority(text, false, 80);
    check_absolute_uri(text);
    return 0;
}
