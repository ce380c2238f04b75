// Invariants shared by the request- and response-head targets: what a Complete head may hold, how
// ParseLimits bound it (each limit exact at its boundary), and that a parse depends only on the
// head's own bytes (a prefix is Incomplete, bytes after the head change nothing).
#pragma once

#include <cstdint>
#include <limits>
#include <memory_resource>
#include <string_view>

#include "fuzz_check.h"
#include "hallpass/http/http_parser.h"

namespace hallpass::fuzz {

inline bool is_tchar(unsigned char c) {
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return true;
    return c != 0 &&
           std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
}

inline bool is_token(std::string_view s) {
    if (s.empty()) return false;
    for (unsigned char c : s) {
        if (!is_tchar(c)) return false;
    }
    return true;
}

// field-value bytes after trimming: no CTL but HTAB, no DEL, no leading/trailing whitespace.
inline bool is_clean_value(std::string_view s) {
    for (unsigned char c : s) {
        if ((c < 0x20 && c != '\t') || c == 0x7f) return false;
    }
    const auto ws = [](char c) { return c == ' ' || c == '\t'; };
    return s.empty() || (!ws(s.front()) && !ws(s.back()));
}

inline void check_headers(const Headers& headers) {
    for (const Header& h : headers) {
        FUZZ_CHECK(is_token(h.name));
        FUZZ_CHECK(is_clean_value(h.value));
    }
}

inline bool same_headers(const Headers& a, const Headers& b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i) {
        if (a[i].name != b[i].name || a[i].value != b[i].value) return false;
    }
    return true;
}

inline bool same_head(const RequestHead& a, const RequestHead& b) {
    return a.method == b.method && a.target == b.target && a.version_minor == b.version_minor &&
           same_headers(a.headers, b.headers);
}

inline bool same_head(const ResponseHead& a, const ResponseHead& b) {
    return a.status == b.status && a.reason == b.reason && a.version_minor == b.version_minor &&
           same_headers(a.headers, b.headers);
}

// Length of the start line without its line end, after the empty lines the parser skips (CRLF or
// LF, RFC 9112 §2.2). Only called on a Complete head, so the line end exists.
inline size_t start_line_length(std::string_view bytes) {
    size_t pos = 0;
    while (true) {
        if (bytes.substr(pos, 1) == "\n") {
            pos += 1;
        } else if (bytes.substr(pos, 2) == "\r\n") {
            pos += 2;
        } else {
            break;
        }
    }
    const size_t lf = bytes.find('\n', pos);
    FUZZ_CHECK(lf != std::string_view::npos);
    return lf - pos - (lf > pos && bytes[lf - 1] == '\r' ? 1 : 0);
}

// Parses `bytes` under `limits` with `parse` (parse_request_head or parse_response_head) and
// checks everything that must hold whatever the bytes; returns the parse.
template <class Head>
HeadParse<Head> check_head_parse(std::string_view bytes, const ParseLimits& limits,
                                 HeadParse<Head> (*parse_in)(std::string_view, const ParseLimits&,
                                                             std::pmr::memory_resource*)) {
    auto parse = [parse_in](std::string_view b, const ParseLimits& l) {
        return parse_in(b, l, std::pmr::get_default_resource());
    };
    HeadParse<Head> r = parse(bytes, limits);
    if (r.status == HeadStatus::Incomplete) {
        // "No end of head within the first max_head_bytes bytes" is certain past that size.
        FUZZ_CHECK(bytes.size() <= limits.max_head_bytes);
        return r;
    }
    if (r.status != HeadStatus::Complete) {
        FUZZ_CHECK(!r.error.empty());
        return r;
    }
    const size_t consumed = r.consumed;
    FUZZ_CHECK(consumed > 0 && consumed <= bytes.size());
    FUZZ_CHECK(consumed <= limits.max_head_bytes);
    FUZZ_CHECK(bytes[consumed - 1] == '\n');
    FUZZ_CHECK(r.head.headers.size() <= limits.max_headers);
    check_headers(r.head.headers);

    // Bytes after the head (a body, the next request) change nothing.
    const std::string_view head_bytes = bytes.substr(0, consumed);
    const HeadParse<Head> alone = parse(head_bytes, limits);
    FUZZ_CHECK(alone.status == HeadStatus::Complete && alone.consumed == consumed);
    FUZZ_CHECK(same_head(alone.head, r.head));

    // A head that arrives in pieces is Incomplete until its last byte: the connection parses
    // whatever it has buffered.
    for (size_t cut : {consumed - 1, consumed / 2, consumed / 3}) {
        FUZZ_CHECK(parse(head_bytes.substr(0, cut), limits).status == HeadStatus::Incomplete);
    }

    // Each limit is inclusive and exact: the head passes with limits equal to its own size, start
    // line length and field count, and fails with the right status one below each of them.
    const size_t line = start_line_length(head_bytes);
    const size_t fields = r.head.headers.size();
    const ParseLimits exact{line, consumed, fields};
    const HeadParse<Head> at_limits = parse(bytes, exact);
    FUZZ_CHECK(at_limits.status == HeadStatus::Complete && at_limits.consumed == consumed);
    FUZZ_CHECK(same_head(at_limits.head, r.head));
    constexpr size_t kMax = std::numeric_limits<size_t>::max();
    const HeadParse<Head> unlimited = parse(bytes, ParseLimits{kMax, kMax, kMax});
    FUZZ_CHECK(unlimited.status == HeadStatus::Complete && unlimited.consumed == consumed);
    if (line > 0) {
        FUZZ_CHECK(parse(bytes, ParseLimits{line - 1, consumed, fields}).status ==
                   HeadStatus::LineTooLong);
    }
    FUZZ_CHECK(parse(bytes, ParseLimits{line, consumed - 1, fields}).status ==
               HeadStatus::HeadersTooLarge);
    if (fields > 0) {
        FUZZ_CHECK(parse(bytes, ParseLimits{line, consumed, fields - 1}).status ==
                   HeadStatus::HeadersTooLarge);
    }
    return r;
}

// Limits for the head targets: the defaults, tight ones, and ones scaled to the input so that
// every limit is crossed somewhere in the corpus.
inline std::vector<ParseLimits> assorted_limits(size_t size) {
    return {
        ParseLimits{},
        ParseLimits{32, 128, 4},
        ParseLimits{1 + size / 2, 1 + size * 3 / 4, 1 + size / 16},
    };
}

// Limits the re-serialised head is parsed with: it is longer than the original (Via, Host).
inline constexpr ParseLimits kGenerousLimits{1 << 20, 1 << 20, 1 << 16};

}  // namespace hallpass::fuzz
