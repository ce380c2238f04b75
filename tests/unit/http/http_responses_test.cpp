// http_responses: local answers are whole, well-framed HTTP/1.1 messages with escaped HTML.
#include "hallpass/http/http_responses.h"

#include <doctest/doctest.h>

#include <string>

#include "hallpass/http/http_parser.h"

using namespace hallpass;

namespace {

struct Parsed {
    ResponseHead head;
    std::string body;
};

// Parses a local answer with the proxy's own response parser, so the bytes are checked against
// the same rules hallpass applies to upstreams.
Parsed parse(const std::string& bytes) {
    HeadParse<ResponseHead> p = parse_response_head(bytes, ParseLimits{});
    REQUIRE_MESSAGE(p.status == HeadStatus::Complete, p.error);
    return {p.head, bytes.substr(p.consumed)};
}

std::string field(const ResponseHead& head, std::string_view name) {
    REQUIRE(count_headers(head.headers, name) == 1);
    return std::string(find_header(head.headers, name)->value);
}

}  // namespace

TEST_CASE("http_responses: names standard reasons") {
    CHECK(reason_phrase(200) == "OK");
    CHECK(reason_phrase(400) == "Bad Request");
    CHECK(reason_phrase(403) == "Forbidden");
    CHECK(reason_phrase(405) == "Method Not Allowed");
    CHECK(reason_phrase(414) == "URI Too Long");
    CHECK(reason_phrase(431) == "Request Header Fields Too Large");
    CHECK(reason_phrase(501) == "Not Implemented");
    CHECK(reason_phrase(502) == "Bad Gateway");
    CHECK(reason_phrase(503) == "Service Unavailable");
    CHECK(reason_phrase(504) == "Gateway Timeout");
    CHECK(reason_phrase(505) == "HTTP Version Not Supported");
    CHECK(reason_phrase(299) == "Unknown");
    CHECK(reason_phrase(0) == "Unknown");
}

TEST_CASE("http_responses: escapes HTML") {
    CHECK(html_escape("a<b>&\"c'd") == "a&lt;b&gt;&amp;&quot;c&#39;d");
    CHECK(html_escape("plain text") == "plain text");
    CHECK(html_escape("") == "");
}

TEST_CASE("http_responses: error responses are complete and framed") {
    for (int status : {400, 403, 405, 414, 431, 501, 502, 503, 504, 505}) {
        SUBCASE(std::to_string(status).c_str()) {
            const std::string bytes = make_error_response(status, "detail <here>");
            const Parsed p = parse(bytes);
            const std::string reason(reason_phrase(status));
            CHECK(p.head.status == status);
            CHECK(std::string_view(p.head.reason) == reason);
            CHECK(p.head.version_minor == 1);
            CHECK(field(p.head, "Content-Type") == "text/html; charset=utf-8");
            CHECK(field(p.head, "Content-Length") == std::to_string(p.body.size()));
            CHECK(field(p.head, "Cache-Control") == "no-store");
            CHECK(field(p.head, "Connection") == "close");
            CHECK(field(p.head, "Date").size() == 29);  // IMF-fixdate
            const std::string title = std::to_string(status) + " " + reason;
            CHECK(p.body.find("<title>" + title + "</title>") != std::string::npos);
            CHECK(p.body.find("<h1>" + title + "</h1>") != std::string::npos);
            CHECK(p.body.find("<p>detail &lt;here&gt;</p>") != std::string::npos);
            CHECK(p.body.find("<footer>hallpass</footer>") != std::string::npos);
            CHECK(p.body.find("<here>") == std::string::npos);
        }
    }
}

TEST_CASE("http_responses: keep-alive and HEAD variants") {
    const std::string full = make_error_response(403, "blocked", false, false);
    const std::string kept = make_error_response(403, "blocked", true, false);
    const std::string head = make_error_response(403, "blocked", false, true);

    const Parsed k = parse(kept);
    CHECK(find_header(k.head.headers, "Connection") == nullptr);
    CHECK(field(k.head, "Content-Length") == std::to_string(k.body.size()));

    // HEAD: the same head (same Content-Length), no body.
    const Parsed f = parse(full);
    const Parsed h = parse(head);
    CHECK(h.body.empty());
    CHECK(field(h.head, "Content-Length") == field(f.head, "Content-Length"));
    CHECK(head.size() == full.size() - f.body.size());
}

TEST_CASE("http_responses: an empty detail leaves out the paragraph") {
    const Parsed p = parse(make_error_response(502, ""));
    CHECK(p.body.find("<p>") == std::string::npos);
    CHECK(p.body.find("<h1>502 Bad Gateway</h1>") != std::string::npos);
}

TEST_CASE("http_responses: the info page says what hallpass is and how to use it") {
    const Parsed p = parse(make_info_response("192.168.1.2", 12345, true, false));
    CHECK(p.head.status == 200);
    CHECK(p.head.reason == "OK");
    CHECK(field(p.head, "Content-Length") == std::to_string(p.body.size()));
    CHECK(field(p.head, "Content-Type") == "text/html; charset=utf-8");
    CHECK(field(p.head, "Cache-Control") == "no-store");
    CHECK(p.body.find("filtering HTTP proxy") != std::string::npos);
    CHECK(p.body.find("curl -x http://192.168.1.2:12345 http://example.com/") != std::string::npos);
    CHECK(p.body.find("HOST") == std::string::npos);
    CHECK(count_headers(p.head.headers, "Connection") == 0);
    CHECK(p.body.find("browser") != std::string::npos);
    CHECK(p.body.find("<title>hallpass</title>") != std::string::npos);

    // What it quotes is escaped (the host comes from the request).
    const Parsed e = parse(make_info_response("<b>", 8080, false, false));
    CHECK(e.body.find("<b>") == std::string::npos);
    CHECK(e.body.find("&lt;b&gt;:8080") != std::string::npos);

    const Parsed h = parse(make_info_response("192.168.1.2", 12345, true, true));
    CHECK(h.body.empty());
    CHECK(field(h.head, "Content-Length") == std::to_string(p.body.size()));
}

TEST_CASE("http_responses: the CONNECT reply is a bare 200 head") {
    const Parsed p = parse(std::string(kConnectEstablished));
    CHECK(p.head.status == 200);
    CHECK(p.head.reason == "Connection established");
    CHECK(p.head.headers.empty());
    CHECK(p.body.empty());
}
