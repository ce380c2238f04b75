// Fuzz target: the request-head parser under assorted limits, request framing, and the upstream
// head the proxy re-serialises from it. The re-serialised head must parse back to the same method,
// target path, Host and framing, with exactly the end-to-end fields of the original: if it did
// not, the upstream could read a different request than the one the filter decided on.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "hallpass/http/http_parser.h"
#include "hallpass/http/http_rewrite.h"
#include "hallpass/http/uri.h"
#include "head_checks.h"

namespace hallpass::fuzz {
namespace {

uint16_t default_port_for(std::string_view scheme) {
    if (scheme == "http") return 80;
    if (scheme == "https") return 443;
    if (scheme == "ftp") return 21;
    return 0;
}

bool same_framing(const Framing& a, const Framing& b) {
    return a.kind == b.kind && a.length == b.length;
}

bool is_framing_field(std::string_view name) {
    return iequals(name, "content-length") || iequals(name, "transfer-encoding");
}

void check_upstream_head(const RequestHead& head, const AbsoluteUri& uri, const Framing& framing,
                         bool keep_alive) {
    const std::string out = serialize_upstream_request(head, uri, framing, keep_alive);
    const HeadParse<RequestHead> re = parse_request_head(out, kGenerousLimits);
    FUZZ_CHECK(re.status == HeadStatus::Complete);
    FUZZ_CHECK(re.consumed == out.size());
    FUZZ_CHECK(re.head.method == head.method);
    FUZZ_CHECK(std::string_view(re.head.target) == uri.path_and_query);
    FUZZ_CHECK(re.head.version_minor == 1);

    // One Host, first, naming the target's authority.
    FUZZ_CHECK(!re.head.headers.empty() && iequals(re.head.headers[0].name, "host"));
    FUZZ_CHECK(count_headers(re.head.headers, "host") == 1);
    const auto host =
        parse_authority(re.head.headers[0].value, false, default_port_for(uri.scheme));
    FUZZ_CHECK(host.ok());
    FUZZ_CHECK(host->host == uri.authority.host && host->port == uri.authority.port);
    FUZZ_CHECK(host->kind == uri.authority.kind);

    // The same framing, so both sides agree where the body ends.
    const auto re_framing = request_framing(re.head);
    FUZZ_CHECK(re_framing.has_value() && same_framing(*re_framing, framing));
    FUZZ_CHECK(header_has_token(re.head.headers, "connection", "close") == !keep_alive);

    // The end-to-end fields in order, Via extended or added, then framing and Connection.
    const auto kept = [&](const Header& h) {
        return !iequals(h.name, "host") && !iequals(h.name, "content-length") &&
               !is_hop_by_hop(head.headers, h.name);
    };
    size_t next = 1;
    bool via_kept = false;
    for (const Header& h : head.headers) {
        if (!kept(h)) continue;
        FUZZ_CHECK(next < re.head.headers.size());
        const Header& got = re.head.headers[next++];
        FUZZ_CHECK(got.name == h.name);
        if (iequals(h.name, "via")) {
            via_kept = true;
            FUZZ_CHECK(got.value.starts_with(h.value));
        } else {
            FUZZ_CHECK(got.value == h.value);
        }
    }
    const size_t added =
        (via_kept ? 0 : 1) +
        (framing.kind == BodyKind::Length || framing.kind == BodyKind::Chunked ? 1 : 0) +
        (keep_alive ? 0 : 1);
    FUZZ_CHECK(re.head.headers.size() == next + added);
    for (size_t i = next; i < re.head.headers.size(); ++i) {
        const std::string_view name = re.head.headers[i].name;
        FUZZ_CHECK(name == "Via" || name == "Connection" || is_framing_field(name));
    }
}

void check_request(std::string_view bytes, const ParseLimits& limits) {
    const HeadParse<RequestHead> r = check_head_parse(bytes, limits, parse_request_head);
    if (r.status != HeadStatus::Complete) return;
    const RequestHead& head = r.head;
    FUZZ_CHECK(is_token(head.method));
    FUZZ_CHECK(!head.target.empty());
    FUZZ_CHECK(head.version_minor == 0 || head.version_minor == 1);
    FUZZ_CHECK(count_headers(head.headers, "host") <= 1);
    (void)client_wants_keep_alive(head);

    const auto framing = request_framing(head);
    if (!framing) return;
    if (framing->kind == BodyKind::Chunked) FUZZ_CHECK(head.version_minor == 1);
    if (framing->kind == BodyKind::Chunked) {
        FUZZ_CHECK(count_headers(head.headers, "content-length") == 0);
    }
    FUZZ_CHECK(framing->kind != BodyKind::UntilClose);

    const auto uri = parse_absolute_uri(head.target);
    if (!uri) return;
    check_upstream_head(head, *uri, *framing, true);
    check_upstream_head(head, *uri, *framing, false);
}

}  // namespace
}  // namespace hallpass::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string_view bytes(reinterpret_cast<const char*>(data), size);
    for (const hallpass::ParseLimits& limits : hallpass::fuzz::assorted_limits(size)) {
        hallpass::fuzz::check_request(bytes, limits);
    }
    return 0;
}
