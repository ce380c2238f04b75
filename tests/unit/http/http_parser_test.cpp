// http_parser: request/response heads and RFC 9112 §6.3 framing, through the public header.
#include "hallpass/http/http_parser.h"

#include <doctest/doctest.h>

#include <memory_resource>
#include <string>
#include <vector>

using namespace hallpass;
using namespace std::string_literals;

namespace {

struct Row {
    const char* name;
    std::string bytes;
};

HeadParse<RequestHead> parse_req(std::string_view bytes, const ParseLimits& limits = {}) {
    return parse_request_head(bytes, limits);
}

HeadParse<ResponseHead> parse_resp(std::string_view bytes, const ParseLimits& limits = {}) {
    return parse_response_head(bytes, limits);
}

RequestHead request(std::string_view bytes) {
    HeadParse<RequestHead> p = parse_req(bytes);
    REQUIRE_MESSAGE(p.status == HeadStatus::Complete, p.error);
    return p.head;
}

ResponseHead response(std::string_view bytes) {
    HeadParse<ResponseHead> p = parse_resp(bytes);
    REQUIRE_MESSAGE(p.status == HeadStatus::Complete, p.error);
    return p.head;
}

void check_request_status(const std::vector<Row>& rows, HeadStatus expected) {
    for (const Row& row : rows) {
        SUBCASE(row.name) {
            const HeadParse<RequestHead> p = parse_req(row.bytes);
            CHECK(p.status == expected);
            if (expected != HeadStatus::Complete && expected != HeadStatus::Incomplete) {
                CHECK_FALSE(p.error.empty());
            }
        }
    }
}

}  // namespace

TEST_CASE("http_parser: parses a request head into its parts") {
    const std::string bytes =
        "GET http://example.com/a?b=c HTTP/1.1\r\n"
        "Host: example.com\r\n"
        "X-Empty:\r\n"
        "Accept:   text/html , */*  \r\n"
        "\r\n";
    const HeadParse<RequestHead> p = parse_req(bytes + "BODY");
    REQUIRE(p.status == HeadStatus::Complete);
    CHECK(p.consumed == bytes.size());
    CHECK(p.error.empty());
    CHECK(p.head.method == "GET");
    CHECK(p.head.target == "http://example.com/a?b=c");
    CHECK(p.head.version_minor == 1);
    REQUIRE(p.head.headers.size() == 3);
    CHECK(p.head.headers[0].name == "Host");
    CHECK(p.head.headers[0].value == "example.com");
    CHECK(p.head.headers[1].name == "X-Empty");
    CHECK(p.head.headers[1].value == "");
    CHECK(p.head.headers[2].name == "Accept");
    CHECK(p.head.headers[2].value == "text/html , */*");
}

namespace {

// Counts what is asked of it and hands it on to the heap.
struct CountingResource final : std::pmr::memory_resource {
    size_t allocations = 0;
    size_t bytes = 0;
    void* do_allocate(size_t n, size_t align) override {
        ++allocations;
        bytes += n;
        return std::pmr::new_delete_resource()->allocate(n, align);
    }
    void do_deallocate(void* p, size_t n, size_t align) override {
        std::pmr::new_delete_resource()->deallocate(p, n, align);
    }
    bool do_is_equal(const memory_resource& o) const noexcept override { return this == &o; }
};

}  // namespace

TEST_CASE("http_parser: a head's strings and fields come from the resource it is parsed into") {
    const std::string head =
        "GET http://a-rather-long-host-name.example/some/long/path?with=query HTTP/1.1\r\n"
        "Host: a-rather-long-host-name.example\r\n"
        "User-Agent: Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/128.0\r\n"
        "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
        "Accept-Language: en-GB,en;q=0.7\r\n\r\n";
    CountingResource counting;
    // Whatever the default heap is asked meanwhile, none of it is for the head.
    CountingResource heap;
    std::pmr::memory_resource* before = std::pmr::set_default_resource(&heap);
    {
        HeadParse<RequestHead> p = parse_request_head(head, ParseLimits{}, &counting);
        REQUIRE(p.status == HeadStatus::Complete);
        CHECK(p.head.headers.size() == 4);
        CHECK(p.head.headers.get_allocator().resource() == &counting);
        CHECK(p.head.target.get_allocator().resource() == &counting);
        CHECK(p.head.headers[1].value.get_allocator().resource() == &counting);
        // The target, the long values and one vector for the fields (reserved once, not grown).
        CHECK(counting.allocations <= 5);
        CHECK(heap.allocations == 0);
        // A move keeps the resource (the connection moves the parsed head into its exchange).
        RequestHead moved(std::move(p.head));
        CHECK(moved.headers.get_allocator().resource() == &counting);
    }
    std::pmr::set_default_resource(before);

    ResponseHead parsed;
    {
        HeadParse<ResponseHead> r = parse_response_head(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n", ParseLimits{},
            &counting);
        REQUIRE(r.status == HeadStatus::Complete);
        CHECK(r.head.headers.get_allocator().resource() == &counting);
        // A copy without a resource goes to the default heap: it may outlive the arena.
        parsed = r.head;
    }
    CHECK(parsed.headers.get_allocator().resource() == std::pmr::get_default_resource());
    CHECK(parsed.headers.at(0).value == "text/plain; charset=utf-8");
}

TEST_CASE("http_parser: reads HTTP/1.0 and keeps the method's case") {
    const RequestHead head = request("get / HTTP/1.0\r\n\r\n");
    CHECK(head.method == "get");
    CHECK(head.version_minor == 0);
    CHECK(head.headers.empty());
}

TEST_CASE("http_parser: accepts bare LF line ends") {
    const std::string bytes = "GET / HTTP/1.1\nHost: a\r\nX: y\n\n";
    const HeadParse<RequestHead> p = parse_req(bytes + "next");
    REQUIRE(p.status == HeadStatus::Complete);
    CHECK(p.consumed == bytes.size());
    REQUIRE(p.head.headers.size() == 2);
    CHECK(p.head.headers[0].value == "a");
    CHECK(p.head.headers[1].value == "y");
}

TEST_CASE("http_parser: skips leading empty lines and counts them in consumed") {
    const std::string bytes = "\r\n\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n";
    const HeadParse<RequestHead> p = parse_req(bytes);
    REQUIRE(p.status == HeadStatus::Complete);
    CHECK(p.consumed == bytes.size());
    CHECK(p.head.method == "GET");

    CHECK(parse_req("\r\n\r\n").status == HeadStatus::Incomplete);
    CHECK(parse_req("\r").status == HeadStatus::Incomplete);
    CHECK(parse_req("\r\n\r").status == HeadStatus::Incomplete);
}

TEST_CASE("http_parser: every proper prefix of a head is Incomplete") {
    const std::string bytes =
        "\r\nPOST http://example.com/upload HTTP/1.1\r\nHost: example.com\r\n"
        "Content-Length: 5\nX-Tab: a\tb\r\n\r\n";
    for (size_t n = 0; n < bytes.size(); ++n) {
        CAPTURE(n);
        const HeadParse<RequestHead> p = parse_req(std::string_view(bytes).substr(0, n));
        CHECK(p.status == HeadStatus::Incomplete);
    }
    const HeadParse<RequestHead> p = parse_req(bytes);
    CHECK(p.status == HeadStatus::Complete);
    CHECK(p.consumed == bytes.size());
}

TEST_CASE("http_parser: rejects control bytes in the request line and headers") {
    check_request_status(
        {
            {"NUL in target", "GET /a\0b HTTP/1.1\r\n\r\n"s},
            {"NUL in header value", "GET / HTTP/1.1\r\nX: a\0b\r\n\r\n"s},
            {"NUL in header name", "GET / HTTP/1.1\r\nX\0: ab\r\n\r\n"s},
            {"bare CR in header value", "GET / HTTP/1.1\r\nX: a\rb\r\n\r\n"},
            {"bare CR ending a header line", "GET / HTTP/1.1\r\nX: ab\r\r\n\r\n"},
            {"bare CR in request line", "GET /\r HTTP/1.1\r\n\r\n"},
            {"DEL in header value", "GET / HTTP/1.1\r\nX: a\x7f\r\n\r\n"},
            {"ESC in header value", "GET / HTTP/1.1\r\nX: a\x1b[0m\r\n\r\n"},
            {"vertical tab in header value", "GET / HTTP/1.1\r\nX: a\vb\r\n\r\n"},
            {"control byte in target", "GET /a\x01 HTTP/1.1\r\n\r\n"},
            {"DEL in target", "GET /a\x7f HTTP/1.1\r\n\r\n"},
            {"HTAB in target", "GET /a\tb HTTP/1.1\r\n\r\n"},
            {"HTAB instead of SP", "GET\t/ HTTP/1.1\r\n\r\n"},
            {"CR before the request line", "\rGET / HTTP/1.1\r\n\r\n"},
        },
        HeadStatus::Malformed);
}

TEST_CASE("http_parser: allows HTAB, obs-text and inner spaces in field values") {
    const RequestHead head =
        request("GET / HTTP/1.1\r\nX-A:\t a \t b\t\r\nX-B: caf\xc3\xa9\r\n\r\n");
    REQUIRE(head.headers.size() == 2);
    CHECK(head.headers[0].value == "a \t b");
    CHECK(head.headers[1].value == "caf\xc3\xa9");
}

TEST_CASE("http_parser: rejects obs-fold") {
    check_request_status(
        {
            {"SP continuation", "GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n"},
            {"HTAB continuation", "GET / HTTP/1.1\r\nX: a\r\n\tb\r\n\r\n"},
            {"whitespace line right after request line", "GET / HTTP/1.1\r\n X: a\r\n\r\n"},
        },
        HeadStatus::Malformed);
    CHECK(parse_req("GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n").error == "obsolete line folding");
}

TEST_CASE("http_parser: rejects whitespace before the colon") {
    check_request_status(
        {
            {"SP", "GET / HTTP/1.1\r\nHost : a\r\n\r\n"},
            {"HTAB", "GET / HTTP/1.1\r\nHost\t: a\r\n\r\n"},
            {"on a later field", "GET / HTTP/1.1\r\nHost: a\r\nContent-Length : 5\r\n\r\n"},
        },
        HeadStatus::Malformed);
    CHECK(parse_req("GET / HTTP/1.1\r\nHost : a\r\n\r\n").error == "whitespace before colon");
}

TEST_CASE("http_parser: rejects bad field names") {
    check_request_status(
        {
            {"empty name", "GET / HTTP/1.1\r\n: a\r\n\r\n"},
            {"no colon", "GET / HTTP/1.1\r\nHost a\r\n\r\n"},
            {"space inside name", "GET / HTTP/1.1\r\nX Y: a\r\n\r\n"},
            {"separator in name", "GET / HTTP/1.1\r\nX(Y): a\r\n\r\n"},
            {"slash in name", "GET / HTTP/1.1\r\nX/Y: a\r\n\r\n"},
            {"non-ascii name", "GET / HTTP/1.1\r\nX\xc3\xa9: a\r\n\r\n"},
        },
        HeadStatus::Malformed);
    CHECK(parse_req("GET / HTTP/1.1\r\n: a\r\n\r\n").error == "empty header name");
    const RequestHead head = request("GET / HTTP/1.1\r\n!#$%&'*+-.^_`|~09aZ: a:b\r\n\r\n");
    CHECK(head.headers[0].name == "!#$%&'*+-.^_`|~09aZ");
    CHECK(head.headers[0].value == "a:b");
}

TEST_CASE("http_parser: rejects malformed request lines") {
    check_request_status(
        {
            {"method not a token", "G(T / HTTP/1.1\r\n\r\n"},
            {"empty method", " / HTTP/1.1\r\n\r\n"},
            {"two SP after method", "GET  / HTTP/1.1\r\n\r\n"},
            {"two SP before version", "GET /  HTTP/1.1\r\n\r\n"},
            {"trailing SP", "GET / HTTP/1.1 \r\n\r\n"},
            {"space in target", "GET /a b HTTP/1.1\r\n\r\n"},
            {"HTTP/0.9 style, no version", "GET /\r\n\r\n"},
            {"method only", "GET\r\n\r\n"},
            {"empty request line then header", "\r\nHost: a\r\n\r\n"},
            {"lower-case http name", "GET / http/1.1\r\n\r\n"},
            {"two-digit minor", "GET / HTTP/1.10\r\n\r\n"},
            {"no minor", "GET / HTTP/1\r\n\r\n"},
            {"junk version", "GET / FOO\r\n\r\n"},
        },
        HeadStatus::Malformed);
    CHECK(parse_req("GET /\r\n\r\n").error == "missing http version");
}

TEST_CASE("http_parser: answers BadVersion for other HTTP versions") {
    check_request_status(
        {
            {"HTTP/2.0", "GET / HTTP/2.0\r\n\r\n"},
            {"HTTP/1.2", "GET / HTTP/1.2\r\n\r\n"},
            {"HTTP/0.9", "GET / HTTP/0.9\r\n\r\n"},
            {"HTTP/3.1", "GET / HTTP/3.1\r\n\r\n"},
        },
        HeadStatus::BadVersion);
    CHECK(parse_resp("HTTP/2.0 200 OK\r\n\r\n").status == HeadStatus::BadVersion);
}

TEST_CASE("http_parser: rejects several Host headers") {
    check_request_status(
        {
            {"same case", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"},
            {"different case", "GET / HTTP/1.1\r\nHost: a\r\nhOST: a\r\n\r\n"},
            {"apart", "GET / HTTP/1.1\r\nHost: a\r\nX: y\r\nHOST: b\r\n\r\n"},
        },
        HeadStatus::Malformed);
    CHECK(parse_req("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n").error ==
          "multiple host headers");
    CHECK(parse_req("GET / HTTP/1.1\r\nX-Host: a\r\nHost: b\r\n\r\n").status ==
          HeadStatus::Complete);
}

TEST_CASE("http_parser: limits the request line and detects an over-long one early") {
    ParseLimits limits;
    limits.max_request_line = 32;
    const std::string prefix = "GET /";
    const std::string suffix = " HTTP/1.1";
    const auto line_of = [&](size_t n) {
        return prefix + std::string(n - prefix.size() - suffix.size(), 'a') + suffix;
    };

    SUBCASE("exactly the limit is accepted, with CRLF or LF") {
        CHECK(parse_req(line_of(32) + "\r\n\r\n", limits).status == HeadStatus::Complete);
        CHECK(parse_req(line_of(32) + "\n\n", limits).status == HeadStatus::Complete);
    }
    SUBCASE("one byte over is LineTooLong") {
        const HeadParse<RequestHead> p = parse_req(line_of(33) + "\r\n\r\n", limits);
        CHECK(p.status == HeadStatus::LineTooLong);
        CHECK(p.error == "start line too long");
    }
    SUBCASE("reported once limit + 1 bytes arrived, without a line end") {
        const std::string line = line_of(40);
        CHECK(parse_req(line.substr(0, 32), limits).status == HeadStatus::Incomplete);
        CHECK(parse_req(line.substr(0, 33), limits).status == HeadStatus::LineTooLong);
    }
    SUBCASE("a CR right at the limit may still be followed by LF") {
        const std::string line = line_of(32);
        CHECK(parse_req(line + "\r", limits).status == HeadStatus::Incomplete);
        CHECK(parse_req(line + "\rX", limits).status == HeadStatus::LineTooLong);
    }
    SUBCASE("leading empty lines do not count toward the request line") {
        CHECK(parse_req("\r\n\r\n" + line_of(32) + "\r\n\r\n", limits).status ==
              HeadStatus::Complete);
    }
    SUBCASE("header lines are not limited by max_request_line") {
        const std::string head = "GET / HTTP/1.1\r\nX: " + std::string(100, 'v') + "\r\n\r\n";
        CHECK(parse_req(head, limits).status == HeadStatus::Complete);
    }
    SUBCASE("the status line of a response uses the same limit") {
        const std::string status_line = "HTTP/1.1 200 " + std::string(40, 'r');
        CHECK(parse_resp(status_line, limits).status == HeadStatus::LineTooLong);
    }
}

TEST_CASE("http_parser: limits the head size and detects an over-size one early") {
    ParseLimits limits;
    limits.max_head_bytes = 64;
    const std::string start = "GET / HTTP/1.1\r\n";  // 16 bytes
    const auto head_of = [&](size_t total) {
        // start + "X: " + value + "\r\n" + "\r\n"
        return start + "X: " + std::string(total - start.size() - 7, 'v') + "\r\n\r\n";
    };
    REQUIRE(head_of(64).size() == 64);

    SUBCASE("exactly max_head_bytes is accepted") {
        const HeadParse<RequestHead> p = parse_req(head_of(64) + "body bytes", limits);
        CHECK(p.status == HeadStatus::Complete);
        CHECK(p.consumed == 64);
    }
    SUBCASE("one byte more is HeadersTooLarge") {
        const HeadParse<RequestHead> p = parse_req(head_of(65), limits);
        CHECK(p.status == HeadStatus::HeadersTooLarge);
        CHECK(p.error == "head too large");
    }
    SUBCASE("reported as soon as max_head_bytes + 1 bytes hold no end of head") {
        const std::string big = start + "X: " + std::string(200, 'v');
        CHECK(parse_req(big.substr(0, 64), limits).status == HeadStatus::Incomplete);
        CHECK(parse_req(big.substr(0, 65), limits).status == HeadStatus::HeadersTooLarge);
    }
    SUBCASE("leading empty lines count toward the head") {
        CHECK(parse_req("\n" + head_of(63), limits).status == HeadStatus::Complete);
        CHECK(parse_req("\r\n" + head_of(63), limits).status == HeadStatus::HeadersTooLarge);
        CHECK(parse_req(std::string(100, '\n'), limits).status == HeadStatus::HeadersTooLarge);
    }
    SUBCASE("a request line beyond max_head_bytes is HeadersTooLarge") {
        CHECK(parse_req("GET /" + std::string(100, 'a'), limits).status ==
              HeadStatus::HeadersTooLarge);
    }
}

TEST_CASE("http_parser: limits the number of header fields") {
    ParseLimits limits;
    limits.max_headers = 3;
    const std::string three = "GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
    const std::string four = "GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n";
    CHECK(parse_req(three, limits).status == HeadStatus::Complete);
    const HeadParse<RequestHead> p = parse_req(four, limits);
    CHECK(p.status == HeadStatus::HeadersTooLarge);
    CHECK(p.error == "too many header fields");
    // Detected before the head is complete.
    CHECK(parse_req(four.substr(0, four.size() - 2), limits).status == HeadStatus::HeadersTooLarge);
}

TEST_CASE("http_parser: reports errors before the head is complete") {
    CHECK(parse_req("GET / HTTP/1.1\r\nBad Name: x\r\n").status == HeadStatus::Malformed);
    CHECK(parse_req("GET / HTTP/2.0\r\n").status == HeadStatus::BadVersion);
}

TEST_CASE("http_parser: parses response heads") {
    SUBCASE("with reason") {
        const std::string bytes = "HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\n";
        const HeadParse<ResponseHead> p = parse_resp(bytes + "abc");
        REQUIRE(p.status == HeadStatus::Complete);
        CHECK(p.consumed == bytes.size());
        CHECK(p.head.version_minor == 1);
        CHECK(p.head.status == 404);
        CHECK(p.head.reason == "Not Found");
        REQUIRE(p.head.headers.size() == 1);
        CHECK(p.head.headers[0].value == "3");
    }
    SUBCASE("empty reason after SP") {
        const ResponseHead head = response("HTTP/1.0 200 \r\n\r\n");
        CHECK(head.version_minor == 0);
        CHECK(head.status == 200);
        CHECK(head.reason == "");
    }
    SUBCASE("no SP after the code") {
        const ResponseHead head = response("HTTP/1.1 204\r\n\r\n");
        CHECK(head.status == 204);
        CHECK(head.reason == "");
    }
    SUBCASE("reason with obs-text and HTAB") {
        CHECK(response("HTTP/1.1 200 \xc3\xa7"
                       "a\tva\r\n\r\n")
                  .reason ==
              "\xc3\xa7"
              "a\tva");
    }
    SUBCASE("status 999") { CHECK(response("HTTP/1.1 999 Odd\r\n\r\n").status == 999); }
    SUBCASE("several Host fields are not the parser's concern in a response") {
        CHECK(parse_resp("HTTP/1.1 200 OK\r\nHost: a\r\nHost: b\r\n\r\n").status ==
              HeadStatus::Complete);
    }
}

TEST_CASE("http_parser: rejects malformed status lines") {
    const std::vector<Row> rows = {
        {"two-digit code", "HTTP/1.1 20 OK\r\n\r\n"},
        {"four-digit code", "HTTP/1.1 2000 OK\r\n\r\n"},
        {"code below 100", "HTTP/1.1 099 Low\r\n\r\n"},
        {"letters in code", "HTTP/1.1 2x0 OK\r\n\r\n"},
        {"no code", "HTTP/1.1\r\n\r\n"},
        {"two SP", "HTTP/1.1  200 OK\r\n\r\n"},
        {"control in reason", "HTTP/1.1 200 O\x01K\r\n\r\n"},
        {"lower-case name", "http/1.1 200 OK\r\n\r\n"},
        {"obs-fold in a response", "HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n"},
        {"whitespace before colon", "HTTP/1.1 200 OK\r\nX : a\r\n\r\n"},
    };
    for (const Row& row : rows) {
        SUBCASE(row.name) { CHECK(parse_resp(row.bytes).status == HeadStatus::Malformed); }
    }
}

TEST_CASE("http_parser: header helpers are case-insensitive") {
    const RequestHead head = request(
        "GET / HTTP/1.1\r\nConnection: Keep-Alive, X-Foo\r\nconnection: close\r\n"
        "X-Foo: 1\r\nAccept: a,,b\r\n\r\n");
    CHECK(iequals("Content-Length", "content-LENGTH"));
    CHECK_FALSE(iequals("Content-Length", "Content-Lengt"));
    CHECK_FALSE(iequals("a", "b"));
    REQUIRE(find_header(head.headers, "x-foo") != nullptr);
    CHECK(find_header(head.headers, "x-foo")->value == "1");
    CHECK(find_header(head.headers, "missing") == nullptr);
    CHECK(count_headers(head.headers, "CONNECTION") == 2);
    CHECK(count_headers(head.headers, "x-bar") == 0);
    CHECK(header_has_token(head.headers, "connection", "keep-alive"));
    CHECK(header_has_token(head.headers, "connection", "x-foo"));
    CHECK(header_has_token(head.headers, "Connection", "CLOSE"));
    CHECK_FALSE(header_has_token(head.headers, "connection", "x-fo"));
    CHECK_FALSE(header_has_token(head.headers, "connection", "keep-alive, x-foo"));
    CHECK(header_has_token(head.headers, "accept", "b"));
    CHECK_FALSE(header_has_token(head.headers, "accept", ""));
}

namespace {

struct FramingRow {
    const char* name;
    std::string fields;  // header lines, each ending in CRLF
    std::optional<Framing> expected;
};

std::optional<Framing> framed(BodyKind kind, uint64_t length = 0) { return Framing{kind, length}; }

void check_framing(const std::optional<Framing>& got, const std::optional<Framing>& expected) {
    REQUIRE(got.has_value() == expected.has_value());
    if (got) {
        CHECK(got->kind == expected->kind);
        CHECK(got->length == expected->length);
    }
}

}  // namespace

TEST_CASE("http_parser: request framing follows RFC 9112 section 6.3") {
    const std::vector<FramingRow> rows = {
        {"no framing fields: no body", "", framed(BodyKind::None)},
        {"content-length", "Content-Length: 42\r\n", framed(BodyKind::Length, 42)},
        {"content-length zero", "Content-Length: 0\r\n", framed(BodyKind::Length, 0)},
        {"leading zeros", "Content-Length: 007\r\n", framed(BodyKind::Length, 7)},
        {"largest value", "Content-Length: 9223372036854775807\r\n",
         framed(BodyKind::Length, 9223372036854775807ull)},
        {"overflow", "Content-Length: 9223372036854775808\r\n", std::nullopt},
        {"huge overflow", "Content-Length: 99999999999999999999999\r\n", std::nullopt},
        {"sign", "Content-Length: +5\r\n", std::nullopt},
        {"negative", "Content-Length: -1\r\n", std::nullopt},
        {"hex", "Content-Length: 0x10\r\n", std::nullopt},
        {"empty", "Content-Length:\r\n", std::nullopt},
        {"space inside", "Content-Length: 1 2\r\n", std::nullopt},
        {"identical repeats", "Content-Length: 5\r\ncontent-length: 5\r\n",
         framed(BodyKind::Length, 5)},
        {"identical list", "Content-Length: 5, 5\r\n", framed(BodyKind::Length, 5)},
        {"identical list and field", "Content-Length: 5,5\r\nContent-Length: 5\r\n",
         framed(BodyKind::Length, 5)},
        {"differing repeats", "Content-Length: 5\r\nContent-Length: 6\r\n", std::nullopt},
        {"differing list", "Content-Length: 5, 6\r\n", std::nullopt},
        {"list with empty element", "Content-Length: 5,,5\r\n", std::nullopt},
        {"zero and five", "Content-Length: 0\r\nContent-Length: 5\r\n", std::nullopt},
        {"chunked", "Transfer-Encoding: chunked\r\n", framed(BodyKind::Chunked)},
        {"chunked any case", "transfer-encoding: ChUnKeD\r\n", framed(BodyKind::Chunked)},
        {"gzip then chunked", "Transfer-Encoding: gzip, chunked\r\n", framed(BodyKind::Chunked)},
        {"codings over two fields", "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n",
         framed(BodyKind::Chunked)},
        {"chunked not last", "Transfer-Encoding: chunked, gzip\r\n", std::nullopt},
        {"gzip only", "Transfer-Encoding: gzip\r\n", std::nullopt},
        {"chunked twice", "Transfer-Encoding: chunked, chunked\r\n", std::nullopt},
        {"chunked twice over fields",
         "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", std::nullopt},
        {"empty transfer-encoding", "Transfer-Encoding:\r\n", std::nullopt},
        {"not a token", "Transfer-Encoding: \"chunked\"\r\n", std::nullopt},
        {"chunked with junk", "Transfer-Encoding: chunked foo\r\n", std::nullopt},
        {"te and cl", "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", std::nullopt},
        {"cl and te", "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", std::nullopt},
    };
    for (const FramingRow& row : rows) {
        SUBCASE(row.name) {
            const RequestHead head =
                request("POST / HTTP/1.1\r\nHost: a\r\n" + row.fields + "\r\n");
            check_framing(request_framing(head), row.expected);
        }
    }
    SUBCASE("HTTP/1.0 request with transfer-encoding is faulty") {
        const RequestHead head = request("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n");
        CHECK_FALSE(request_framing(head).has_value());
    }
}

TEST_CASE("http_parser: response framing follows RFC 9112 section 6.3") {
    struct Row {
        const char* name;
        std::string status_line;
        std::string fields;
        std::string method;
        std::optional<Framing> expected;
    };
    const std::string ok = "HTTP/1.1 200 OK";
    const std::vector<Row> rows = {
        {"HEAD", ok, "Content-Length: 10\r\n", "HEAD", framed(BodyKind::None)},
        {"HEAD ignores bad framing", ok, "Content-Length: x\r\n", "HEAD", framed(BodyKind::None)},
        {"100", "HTTP/1.1 100 Continue", "", "GET", framed(BodyKind::None)},
        {"101", "HTTP/1.1 101 Switching Protocols", "", "GET", framed(BodyKind::None)},
        {"204", "HTTP/1.1 204 No Content", "Content-Length: 10\r\n", "GET", framed(BodyKind::None)},
        {"304", "HTTP/1.1 304 Not Modified", "Transfer-Encoding: chunked\r\n", "GET",
         framed(BodyKind::None)},
        {"2xx to CONNECT", ok, "Content-Length: 10\r\n", "CONNECT", framed(BodyKind::None)},
        {"299 to CONNECT", "HTTP/1.1 299 Odd", "", "CONNECT", framed(BodyKind::None)},
        {"407 to CONNECT has a body", "HTTP/1.1 407 Auth", "Content-Length: 3\r\n", "CONNECT",
         framed(BodyKind::Length, 3)},
        {"content-length", ok, "Content-Length: 10\r\n", "GET", framed(BodyKind::Length, 10)},
        {"content-length list", ok, "Content-Length: 10, 10\r\n", "GET",
         framed(BodyKind::Length, 10)},
        {"differing content-length", ok, "Content-Length: 10\r\nContent-Length: 11\r\n", "GET",
         std::nullopt},
        {"bad content-length", ok, "Content-Length: -1\r\n", "GET", std::nullopt},
        {"chunked", ok, "Transfer-Encoding: chunked\r\n", "GET", framed(BodyKind::Chunked)},
        {"gzip, chunked", ok, "Transfer-Encoding: gzip, chunked\r\n", "POST",
         framed(BodyKind::Chunked)},
        {"final coding not chunked", ok, "Transfer-Encoding: chunked, gzip\r\n", "GET",
         framed(BodyKind::UntilClose)},
        {"gzip only", ok, "Transfer-Encoding: gzip\r\n", "GET", framed(BodyKind::UntilClose)},
        {"chunked twice", ok, "Transfer-Encoding: chunked, chunked\r\n", "GET", std::nullopt},
        {"te and cl", ok, "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", "GET",
         std::nullopt},
        {"no framing fields", ok, "", "GET", framed(BodyKind::UntilClose)},
        {"HTTP/1.0 with te", "HTTP/1.0 200 OK", "Transfer-Encoding: chunked\r\n", "GET",
         framed(BodyKind::UntilClose)},
        {"404 with length", "HTTP/1.1 404 Not Found", "Content-Length: 0\r\n", "GET",
         framed(BodyKind::Length, 0)},
    };
    for (const Row& row : rows) {
        SUBCASE(row.name) {
            const ResponseHead head = response(row.status_line + "\r\n" + row.fields + "\r\n");
            check_framing(response_framing(head, row.method), row.expected);
        }
    }
}

TEST_CASE("http_parser: binary garbage fails before any line end arrives") {
    const ParseLimits limits;
    const std::string_view rows[] = {
        std::string_view("\x16\x03\x01\x02\x00\x01\x00", 7),  // TLS ClientHello start
        std::string_view("GET\x00", 4),
        "GET http://a/ HTTP/1.1\r\nX-A: b\x01",
        "GET / HTTP/1.1\rX",
    };
    for (std::string_view row : rows) {
        SUBCASE(std::string(row).c_str()) {
            CHECK(parse_request_head(row, limits).status == HeadStatus::Malformed);
        }
    }
    // A CR at the end may still be followed by LF; a tab is fine in a field value.
    CHECK(parse_request_head("GET / HTTP/1.1\r", limits).status == HeadStatus::Incomplete);
    CHECK(parse_request_head("GET / HTTP/1.1\r\nX-A: a\tb", limits).status ==
          HeadStatus::Incomplete);
}

TEST_CASE("http_parser: a HTAB in a partial reason phrase is not garbage (found by fuzzing)") {
    const ParseLimits limits;
    CHECK(parse_response_head("HTTP/1.1 200 O\tK", limits).status == HeadStatus::Incomplete);
    auto done = parse_response_head("HTTP/1.1 200 O\tK\r\n\r\n", limits);
    CHECK(done.status == HeadStatus::Complete);
    CHECK(done.head.reason == "O\tK");
}
