// HTTP/1.x message heads (RFC 9112): request and response heads -> value types, and the body
// framing rules of RFC 9112 §6.3. Pure functions over bytes: no I/O, no allocation beyond the
// returned values, and those come from the memory resource the caller names (the connection
// parses into an arena per exchange; everything else uses the default heap). The connection
// feeds it what it has buffered; it answers Incomplete until a whole head is there.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory_resource>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace hallpass {

enum class HeadStatus {
    Complete,         // a whole head was parsed; `consumed` bytes belong to it
    Incomplete,       // no error so far, need more bytes
    Malformed,        // 400: syntax error (see `error`)
    LineTooLong,      // 414 (request line) / 502 for a response status line
    HeadersTooLarge,  // 431: head bigger than max_head_bytes, or more than max_headers fields
    BadVersion,       // 505: HTTP-version other than HTTP/1.0 or HTTP/1.1
};

struct ParseLimits {
    size_t max_request_line = 8192;  // bytes, without CRLF
    size_t max_head_bytes = 65536;   // whole head including the request line and final CRLF
    size_t max_headers = 100;        // number of header fields
};

// Heads and their fields are allocator-aware (std::pmr): a head made with a memory resource
// keeps all its strings and its field vector there. Copies made without one use the heap.
using HeadAllocator = std::pmr::polymorphic_allocator<char>;

struct Header {
    using allocator_type = HeadAllocator;
    std::pmr::string name;   // as sent (case preserved)
    std::pmr::string value;  // leading/trailing whitespace removed

    Header() = default;
    explicit Header(const allocator_type& a) : name(a), value(a) {}
    Header(std::string_view n, std::string_view v, const allocator_type& a = {})
        : name(n, a), value(v, a) {}
    Header(const Header& o, const allocator_type& a) : name(o.name, a), value(o.value, a) {}
    Header(Header&& o, const allocator_type& a)
        : name(std::move(o.name), a), value(std::move(o.value), a) {}
    Header(const Header&) = default;
    Header(Header&&) noexcept = default;
    Header& operator=(const Header&) = default;
    Header& operator=(Header&&) = default;
};

using Headers = std::pmr::vector<Header>;

struct RequestHead {
    using allocator_type = HeadAllocator;
    std::pmr::string method;  // case-sensitive token (RFC 9110 §9.1)
    std::pmr::string target;  // request-target as sent
    int version_minor = 1;    // HTTP/1.<minor>; only 0 and 1 are accepted
    Headers headers;

    RequestHead() = default;
    explicit RequestHead(const allocator_type& a) : method(a), target(a), headers(a) {}
    RequestHead(const RequestHead&) = default;
    RequestHead(RequestHead&&) noexcept = default;
    RequestHead& operator=(const RequestHead&) = default;
    RequestHead& operator=(RequestHead&&) = default;
};

struct ResponseHead {
    using allocator_type = HeadAllocator;
    int version_minor = 1;
    int status = 0;           // 100..999
    std::pmr::string reason;  // may be empty
    Headers headers;

    ResponseHead() = default;
    explicit ResponseHead(const allocator_type& a) : reason(a), headers(a) {}
    ResponseHead(const ResponseHead&) = default;
    ResponseHead(ResponseHead&&) noexcept = default;
    ResponseHead& operator=(const ResponseHead&) = default;
    ResponseHead& operator=(ResponseHead&&) = default;
};

template <class Head>
struct HeadParse {
    HeadStatus status = HeadStatus::Incomplete;
    size_t consumed = 0;  // bytes of the head, valid when Complete
    Head head;            // valid when Complete
    std::string error;    // short lower-case reason when not Complete/Incomplete

    HeadParse() = default;
    explicit HeadParse(std::pmr::memory_resource* mr) : head(HeadAllocator(mr)) {}
};

// Parses a request head at the start of `bytes`. Strict (RFC 9112): CRLF line ends (a bare LF is
// accepted as a line end, per RFC 9112 §2.2, and never passed on since heads are re-serialised),
// no control bytes or NUL, no obs-fold, no whitespace before a colon, token field names, a single
// SP between request-line parts. Leading empty lines before the request line are skipped
// (RFC 9112 §2.2); they are part of `consumed` and count toward max_head_bytes. The request-target
// may hold obs-text (bytes >= 0x80, for raw UTF-8 hosts) but no SP, control byte or DEL. More than
// one Host field is Malformed; a missing Host is left to the caller.
// Limits, whichever is crossed first in the bytes wins, each reported as soon as it is certain
// (without waiting for the line or head to end):
//   - request line (without its line end) over max_request_line bytes -> LineTooLong;
//   - no end of head within the first max_head_bytes bytes -> HeadersTooLarge;
//   - more than max_headers fields -> HeadersTooLarge.
// A head of exactly max_head_bytes (or a line of exactly max_request_line) is accepted.
// The head's strings come from `mr`.
HeadParse<RequestHead> parse_request_head(
    std::string_view bytes, const ParseLimits& limits,
    std::pmr::memory_resource* mr = std::pmr::get_default_resource());

// Same rules for a response head (status-line = HTTP-version SP 3DIGIT SP [reason]); the status
// line is limited by max_request_line. The SP after the code may be missing when there is no
// reason ("HTTP/1.1 204"). Host fields are not checked.
HeadParse<ResponseHead> parse_response_head(
    std::string_view bytes, const ParseLimits& limits,
    std::pmr::memory_resource* mr = std::pmr::get_default_resource());

// Case-insensitive header helpers.
bool iequals(std::string_view a, std::string_view b);
const Header* find_header(const Headers& headers, std::string_view name);
size_t count_headers(const Headers& headers, std::string_view name);
// True when a comma-separated header `name` (possibly repeated) lists `token` (case-insensitive).
bool header_has_token(const Headers& headers, std::string_view name, std::string_view token);

enum class BodyKind {
    None,        // no body
    Length,      // exactly `length` bytes
    Chunked,     // chunked transfer coding
    UntilClose,  // response only: read until the server closes
};

struct Framing {
    BodyKind kind = BodyKind::None;
    uint64_t length = 0;
};

// RFC 9112 §6.3 for a request. nullopt = ambiguous or invalid framing (400): both Content-Length
// and Transfer-Encoding, differing or non-numeric or overflowing (above 2^63-1) Content-Length
// values, a Transfer-Encoding whose final coding is not chunked (or chunked given twice, or a
// coding that is not a token), or Transfer-Encoding in an HTTP/1.0 request (RFC 9112 §6.1).
// Identical repeated values ("5, 5") are one length. No Content-Length and no Transfer-Encoding
// means no body.
std::optional<Framing> request_framing(const RequestHead& head);

// RFC 9112 §6.3 for a response to a request with `request_method`. HEAD, 1xx, 204 and 304 have no
// body; 2xx to CONNECT has none either. A Transfer-Encoding whose final coding is not chunked, or
// one in an HTTP/1.0 response, means UntilClose; no framing fields means UntilClose.
// nullopt = invalid framing (the proxy answers 502): Content-Length together with
// Transfer-Encoding, an invalid or differing Content-Length, chunked given twice.
std::optional<Framing> response_framing(const ResponseHead& head, std::string_view request_method);

}  // namespace hallpass
