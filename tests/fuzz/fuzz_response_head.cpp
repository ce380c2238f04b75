// Fuzz target: the response-head parser under assorted limits, response framing for each kind of
// request, and the head the proxy re-serialises for the client. The client must read the same
// status and the same end of body as the proxy does (or read until close where the proxy
// de-chunks), or a response could be split into two.
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "hallpass/http/http_parser.h"
#include "hallpass/http/http_rewrite.h"
#include "head_checks.h"

namespace hallpass::fuzz {
namespace {

void check_client_head(const ResponseHead& head, std::string_view method, const Framing& framing,
                       int client_minor, bool keep_alive) {
    // What the connection does: HTTP/1.0 clients cannot read chunked, so the body is de-chunked
    // and delimited by close.
    const bool dechunk = framing.kind == BodyKind::Chunked && client_minor == 0;
    const ClientBodyCoding coding = dechunk ? ClientBodyCoding::Dechunk : ClientBodyCoding::AsIs;
    const std::string out =
        serialize_client_response(head, client_minor, framing, coding, keep_alive);
    const HeadParse<ResponseHead> re = parse_response_head(out, kGenerousLimits);
    FUZZ_CHECK(re.status == HeadStatus::Complete);
    FUZZ_CHECK(re.consumed == out.size());
    FUZZ_CHECK(re.head.status == head.status);
    FUZZ_CHECK(re.head.reason == head.reason);
    FUZZ_CHECK(re.head.version_minor == client_minor);

    const auto re_framing = response_framing(re.head, method);
    FUZZ_CHECK(re_framing.has_value());
    const BodyKind expected = dechunk ? BodyKind::UntilClose : framing.kind;
    FUZZ_CHECK(re_framing->kind == expected);
    if (expected == BodyKind::Length) FUZZ_CHECK(re_framing->length == framing.length);

    const bool close = header_has_token(re.head.headers, "connection", "close");
    if (!keep_alive || expected == BodyKind::UntilClose) FUZZ_CHECK(close);
    for (const Header& h : re.head.headers) {
        // Hop-by-hop fields of the upstream never reach the client; we write our own.
        if (iequals(h.name, "connection"))
            FUZZ_CHECK(h.value == "close" || h.value == "keep-alive");
        if (iequals(h.name, "transfer-encoding")) FUZZ_CHECK(expected == BodyKind::Chunked);
        FUZZ_CHECK(!iequals(h.name, "keep-alive") && !iequals(h.name, "upgrade"));
        FUZZ_CHECK(!iequals(h.name, "proxy-connection") && !iequals(h.name, "trailer"));
    }
    FUZZ_CHECK(count_headers(re.head.headers, "via") >= 1);
}

void check_response(std::string_view bytes, const ParseLimits& limits) {
    const HeadParse<ResponseHead> r = check_head_parse(bytes, limits, parse_response_head);
    if (r.status != HeadStatus::Complete) return;
    const ResponseHead& head = r.head;
    FUZZ_CHECK(head.status >= 100 && head.status <= 999);
    FUZZ_CHECK(head.version_minor == 0 || head.version_minor == 1);

    constexpr std::array<std::string_view, 4> kMethods = {"GET", "HEAD", "CONNECT", "POST"};
    for (std::string_view method : kMethods) {
        const auto framing = response_framing(head, method);
        if (!framing) continue;
        const bool bodiless = method == "HEAD" || head.status < 200 || head.status == 204 ||
                              head.status == 304 || (method == "CONNECT" && head.status < 300);
        if (bodiless) FUZZ_CHECK(framing->kind == BodyKind::None);
        (void)upstream_allows_reuse(head, *framing);
        for (int client_minor : {0, 1}) {
            check_client_head(head, method, *framing, client_minor, true);
            check_client_head(head, method, *framing, client_minor, false);
        }
    }
}

}  // namespace
}  // namespace hallpass::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string_view bytes(reinterpret_cast<const char*>(data), size);
    for (const hallpass::ParseLimits& limits : hallpass::fuzz::assorted_limits(size)) {
        hallpass::fuzz::check_response(bytes, limits);
    }
    return 0;
}
