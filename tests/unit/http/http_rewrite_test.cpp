// http_rewrite: what the proxy changes in heads on the way through, checked byte for byte.
#include "hallpass/http/http_rewrite.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

using namespace hallpass;

namespace {

RequestHead request(std::string_view bytes) {
    HeadParse<RequestHead> p = parse_request_head(bytes, ParseLimits{});
    REQUIRE_MESSAGE(p.status == HeadStatus::Complete, p.error);
    return p.head;
}

ResponseHead response(std::string_view bytes) {
    HeadParse<ResponseHead> p = parse_response_head(bytes, ParseLimits{});
    REQUIRE_MESSAGE(p.status == HeadStatus::Complete, p.error);
    return p.head;
}

// The upstream head for a client head, with framing computed the way the connection does it.
std::string upstream(std::string_view client_head, bool keep_alive = true) {
    const RequestHead head = request(client_head);
    const Result<AbsoluteUri> uri = parse_absolute_uri(head.target);
    REQUIRE_MESSAGE(uri.ok(), uri.error().message);
    const std::optional<Framing> framing = request_framing(head);
    REQUIRE(framing.has_value());
    return serialize_upstream_request(head, *uri, *framing, keep_alive);
}

}  // namespace

TEST_CASE("http_rewrite: lists hop-by-hop fields, including those named by Connection") {
    const RequestHead head = request(
        "GET http://a/ HTTP/1.1\r\nConnection: X-Secret, keep-alive\r\n"
        "connection: x-other\r\n\r\n");
    for (const char* name : {"Connection", "connection", "Proxy-Connection", "Keep-Alive",
                             "Proxy-Authorization", "Proxy-Authenticate", "TE", "te", "Trailer",
                             "Transfer-Encoding", "Upgrade", "x-secret", "X-SECRET", "X-Other"}) {
        SUBCASE(name) { CHECK(is_hop_by_hop(head.headers, name)); }
    }
    for (const char* name : {"Host", "Via", "Content-Length", "Authorization", "X-Secre",
                             "Trailers", "Cookie", "Accept"}) {
        SUBCASE(name) { CHECK_FALSE(is_hop_by_hop(head.headers, name)); }
    }
}

TEST_CASE("http_rewrite: writes origin-form with Host from the uri and Via added") {
    const std::string out = upstream(
        "GET http://Example.COM:80/a/b?c=d#frag HTTP/1.1\r\n"
        "Host: other.example\r\n"
        "User-Agent: test/1\r\n"
        "Accept: */*\r\n"
        "Proxy-Connection: keep-alive\r\n"
        "\r\n");
    CHECK(out ==
          "GET /a/b?c=d HTTP/1.1\r\n"
          "Host: example.com\r\n"
          "User-Agent: test/1\r\n"
          "Accept: */*\r\n"
          "Via: 1.1 hallpass\r\n"
          "\r\n");
}

TEST_CASE("http_rewrite: Host carries the port only when it is not the scheme default") {
    struct Row {
        const char* target;
        const char* host;
    };
    const std::vector<Row> rows = {
        {"http://example.com/", "example.com"},
        {"http://example.com:8080/", "example.com:8080"},
        {"http://[::1]/", "[::1]"},
        {"http://[::1]:8080/", "[::1]:8080"},
        {"http://user@10.0.0.1:81/", "10.0.0.1:81"},
        {"http://b\xc3\xbc"
         "cher.example/",
         "xn--bcher-kva.example"},
    };
    for (const Row& row : rows) {
        SUBCASE(row.target) {
            const std::string out =
                upstream("GET " + std::string(row.target) + " HTTP/1.1\r\nHost: ignored\r\n\r\n");
            CHECK(out == "GET / HTTP/1.1\r\nHost: " + std::string(row.host) +
                             "\r\nVia: 1.1 hallpass\r\n\r\n");
        }
    }
}

TEST_CASE("http_rewrite: never forwards the client's Host, even without one") {
    CHECK(upstream("GET http://a.example/ HTTP/1.1\r\n\r\n") ==
          "GET / HTTP/1.1\r\nHost: a.example\r\nVia: 1.1 hallpass\r\n\r\n");
    CHECK(upstream("GET http://a.example/ HTTP/1.1\r\nhOsT: b.example\r\n\r\n") ==
          "GET / HTTP/1.1\r\nHost: a.example\r\nVia: 1.1 hallpass\r\n\r\n");
}

TEST_CASE("http_rewrite: removes hop-by-hop fields and the fields Connection names") {
    const std::string out = upstream(
        "GET http://a.example/ HTTP/1.1\r\n"
        "Connection: X-Secret, keep-alive\r\n"
        "X-Kept-1: one\r\n"
        "connection: Upgrade-Insecure-Requests\r\n"
        "X-Secret: 1\r\n"
        "Upgrade-Insecure-Requests: 1\r\n"
        "Keep-Alive: timeout=5\r\n"
        "Proxy-Connection: keep-alive\r\n"
        "TE: trailers\r\n"
        "Trailer: X-Sum\r\n"
        "Upgrade: h2c\r\n"
        "Proxy-Authorization: Basic eDp5\r\n"
        "Proxy-Authenticate: Basic\r\n"
        "Authorization: Bearer t\r\n"
        "X-Kept-2: two\r\n"
        "\r\n");
    CHECK(out ==
          "GET / HTTP/1.1\r\n"
          "Host: a.example\r\n"
          "X-Kept-1: one\r\n"
          "Authorization: Bearer t\r\n"
          "X-Kept-2: two\r\n"
          "Via: 1.1 hallpass\r\n"
          "\r\n");
}

TEST_CASE("http_rewrite: extends the last Via field") {
    SUBCASE("several Via fields") {
        CHECK(upstream("GET http://a/ HTTP/1.1\r\nVia: 1.0 fred, 1.1 p.example\r\n"
                       "X: y\r\nvia: 1.1 other\r\n\r\n") ==
              "GET / HTTP/1.1\r\nHost: a\r\nVia: 1.0 fred, 1.1 p.example\r\nX: y\r\n"
              "via: 1.1 other, 1.1 hallpass\r\n\r\n");
    }
    SUBCASE("HTTP/1.0 client") {
        CHECK(upstream("GET http://a/ HTTP/1.0\r\nVia: 1.1 first\r\n\r\n") ==
              "GET / HTTP/1.1\r\nHost: a\r\nVia: 1.1 first, 1.0 hallpass\r\n\r\n");
        CHECK(upstream("GET http://a/ HTTP/1.0\r\n\r\n") ==
              "GET / HTTP/1.1\r\nHost: a\r\nVia: 1.0 hallpass\r\n\r\n");
    }
    SUBCASE("empty Via") {
        CHECK(upstream("GET http://a/ HTTP/1.1\r\nVia:\r\n\r\n") ==
              "GET / HTTP/1.1\r\nHost: a\r\nVia: 1.1 hallpass\r\n\r\n");
    }
    SUBCASE("Via named by Connection is dropped and a new one added") {
        CHECK(upstream("GET http://a/ HTTP/1.1\r\nVia: 1.1 x\r\nConnection: via\r\n\r\n") ==
              "GET / HTTP/1.1\r\nHost: a\r\nVia: 1.1 hallpass\r\n\r\n");
    }
}

TEST_CASE("http_rewrite: writes request framing from Framing, not the client's fields") {
    SUBCASE("content-length list normalised") {
        CHECK(upstream("POST http://a/ HTTP/1.1\r\nContent-Length: 5, 5\r\n"
                       "Content-Type: text/plain\r\nContent-Length: 5\r\n\r\n") ==
              "POST / HTTP/1.1\r\nHost: a\r\nContent-Type: text/plain\r\nVia: 1.1 hallpass\r\n"
              "Content-Length: 5\r\n\r\n");
    }
    SUBCASE("zero length is kept") {
        CHECK(upstream("POST http://a/ HTTP/1.1\r\nContent-Length: 0\r\n\r\n") ==
              "POST / HTTP/1.1\r\nHost: a\r\nVia: 1.1 hallpass\r\nContent-Length: 0\r\n\r\n");
    }
    SUBCASE("chunked") {
        CHECK(upstream("POST http://a/ HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n") ==
              "POST / HTTP/1.1\r\nHost: a\r\nVia: 1.1 hallpass\r\n"
              "Transfer-Encoding: chunked\r\n\r\n");
    }
    SUBCASE("other codings are kept before chunked") {
        CHECK(upstream("POST http://a/ HTTP/1.1\r\nTransfer-Encoding: gzip\r\n"
                       "Transfer-Encoding: , chunked\r\n\r\n") ==
              "POST / HTTP/1.1\r\nHost: a\r\nVia: 1.1 hallpass\r\n"
              "Transfer-Encoding: gzip, chunked\r\n\r\n");
    }
    SUBCASE("no body") {
        CHECK(upstream("DELETE http://a/x HTTP/1.1\r\n\r\n") ==
              "DELETE /x HTTP/1.1\r\nHost: a\r\nVia: 1.1 hallpass\r\n\r\n");
    }
    SUBCASE("explicit framing overrides the head") {
        const RequestHead head = request("PUT http://a/ HTTP/1.1\r\nContent-Length: 9\r\n\r\n");
        const AbsoluteUri uri = *parse_absolute_uri(head.target);
        CHECK(serialize_upstream_request(head, uri, Framing{BodyKind::Length, 3}, true) ==
              "PUT / HTTP/1.1\r\nHost: a\r\nVia: 1.1 hallpass\r\nContent-Length: 3\r\n\r\n");
        CHECK(serialize_upstream_request(head, uri, Framing{BodyKind::None, 0}, true) ==
              "PUT / HTTP/1.1\r\nHost: a\r\nVia: 1.1 hallpass\r\n\r\n");
    }
}

TEST_CASE("http_rewrite: asks the upstream to close when the connection is not reused") {
    CHECK(upstream("GET http://a/ HTTP/1.1\r\nConnection: keep-alive\r\n\r\n", false) ==
          "GET / HTTP/1.1\r\nHost: a\r\nVia: 1.1 hallpass\r\nConnection: close\r\n\r\n");
    CHECK(upstream("POST http://a/ HTTP/1.1\r\nContent-Length: 1\r\n\r\n", false) ==
          "POST / HTTP/1.1\r\nHost: a\r\nVia: 1.1 hallpass\r\nContent-Length: 1\r\n"
          "Connection: close\r\n\r\n");
}

TEST_CASE("http_rewrite: writes the client response head") {
    const ResponseHead head = response(
        "HTTP/1.1 200 OK\r\n"
        "Content-Type: text/plain\r\n"
        "Connection: X-Hop, keep-alive\r\n"
        "X-Hop: 1\r\n"
        "Keep-Alive: timeout=5\r\n"
        "Content-Length: 12\r\n"
        "Set-Cookie: a=1\r\n"
        "Set-Cookie: b=2\r\n"
        "Proxy-Authenticate: Basic\r\n"
        "\r\n");
    const Framing length{BodyKind::Length, 12};

    SUBCASE("HTTP/1.1 client, keep-alive") {
        CHECK(serialize_client_response(head, 1, length, ClientBodyCoding::AsIs, true) ==
              "HTTP/1.1 200 OK\r\n"
              "Content-Type: text/plain\r\n"
              "Set-Cookie: a=1\r\n"
              "Set-Cookie: b=2\r\n"
              "Via: 1.1 hallpass\r\n"
              "Content-Length: 12\r\n"
              "\r\n");
    }
    SUBCASE("HTTP/1.1 client, close") {
        CHECK(serialize_client_response(head, 1, length, ClientBodyCoding::AsIs, false) ==
              "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nSet-Cookie: a=1\r\n"
              "Set-Cookie: b=2\r\nVia: 1.1 hallpass\r\nContent-Length: 12\r\n"
              "Connection: close\r\n\r\n");
    }
    SUBCASE("HTTP/1.0 client, keep-alive") {
        CHECK(serialize_client_response(head, 0, length, ClientBodyCoding::AsIs, true) ==
              "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nSet-Cookie: a=1\r\n"
              "Set-Cookie: b=2\r\nVia: 1.1 hallpass\r\nContent-Length: 12\r\n"
              "Connection: keep-alive\r\n\r\n");
    }
    SUBCASE("HTTP/1.0 client, close") {
        CHECK(serialize_client_response(head, 0, length, ClientBodyCoding::AsIs, false) ==
              "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nSet-Cookie: a=1\r\n"
              "Set-Cookie: b=2\r\nVia: 1.1 hallpass\r\nContent-Length: 12\r\n"
              "Connection: close\r\n\r\n");
    }
}

TEST_CASE("http_rewrite: response framing for chunked, dechunked and close-delimited bodies") {
    const ResponseHead chunked =
        response("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\nX: y\r\n\r\n");
    const Framing chunked_framing{BodyKind::Chunked, 0};

    SUBCASE("chunked passed through") {
        CHECK(
            serialize_client_response(chunked, 1, chunked_framing, ClientBodyCoding::AsIs, true) ==
            "HTTP/1.1 200 OK\r\nX: y\r\nVia: 1.1 hallpass\r\n"
            "Transfer-Encoding: chunked\r\n\r\n");
    }
    SUBCASE("dechunked for an HTTP/1.0 client: until close, whatever was asked") {
        CHECK(serialize_client_response(chunked, 0, chunked_framing, ClientBodyCoding::Dechunk,
                                        true) ==
              "HTTP/1.0 200 OK\r\nX: y\r\nVia: 1.1 hallpass\r\nConnection: close\r\n\r\n");
    }
    SUBCASE("close-delimited upstream body forces close") {
        const ResponseHead head = response("HTTP/1.0 200 OK\r\nX: y\r\n\r\n");
        CHECK(serialize_client_response(head, 1, Framing{BodyKind::UntilClose, 0},
                                        ClientBodyCoding::AsIs, true) ==
              "HTTP/1.1 200 OK\r\nX: y\r\nVia: 1.0 hallpass\r\nConnection: close\r\n\r\n");
    }
}

TEST_CASE("http_rewrite: keeps Content-Length of bodiless HEAD and 304 responses only") {
    const Framing none{BodyKind::None, 0};
    const ResponseHead head_reply =
        response("HTTP/1.1 200 OK\r\nContent-Length: 1234\r\nTransfer-Encoding: x\r\n\r\n");
    CHECK(serialize_client_response(head_reply, 1, none, ClientBodyCoding::AsIs, true) ==
          "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\nVia: 1.1 hallpass\r\n\r\n");

    const ResponseHead not_modified =
        response("HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\nContent-Length: 10\r\n\r\n");
    CHECK(serialize_client_response(not_modified, 1, none, ClientBodyCoding::AsIs, true) ==
          "HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\nContent-Length: 10\r\n"
          "Via: 1.1 hallpass\r\n\r\n");

    const ResponseHead no_content =
        response("HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n");
    CHECK(serialize_client_response(no_content, 1, none, ClientBodyCoding::AsIs, true) ==
          "HTTP/1.1 204 No Content\r\nVia: 1.1 hallpass\r\n\r\n");
}

TEST_CASE("http_rewrite: extends the last Via in responses and keeps an empty reason") {
    const ResponseHead head =
        response("HTTP/1.1 503 \r\nVia: 1.1 a\r\nVia: 1.1 b\r\nContent-Length: 0\r\n\r\n");
    CHECK(serialize_client_response(head, 1, Framing{BodyKind::Length, 0}, ClientBodyCoding::AsIs,
                                    false) ==
          "HTTP/1.1 503 \r\nVia: 1.1 a\r\nVia: 1.1 b, 1.1 hallpass\r\nContent-Length: 0\r\n"
          "Connection: close\r\n\r\n");
}

TEST_CASE("http_rewrite: decides whether the client wants keep-alive") {
    struct Row {
        const char* name;
        std::string head;
        bool expected;
    };
    const std::vector<Row> rows = {
        {"1.1 default", "GET http://a/ HTTP/1.1\r\n\r\n", true},
        {"1.1 close", "GET http://a/ HTTP/1.1\r\nConnection: close\r\n\r\n", false},
        {"1.1 close in a list", "GET http://a/ HTTP/1.1\r\nConnection: x, Close\r\n\r\n", false},
        {"1.1 close in a second field",
         "GET http://a/ HTTP/1.1\r\nConnection: x\r\nConnection: close\r\n\r\n", false},
        {"1.1 Proxy-Connection close", "GET http://a/ HTTP/1.1\r\nProxy-Connection: close\r\n\r\n",
         false},
        {"1.0 default", "GET http://a/ HTTP/1.0\r\n\r\n", false},
        {"1.0 keep-alive", "GET http://a/ HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", true},
        {"1.0 Proxy-Connection keep-alive",
         "GET http://a/ HTTP/1.0\r\nProxy-Connection: keep-alive\r\n\r\n", true},
        {"1.0 keep-alive and close",
         "GET http://a/ HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", false},
        {"1.0 keep-alive as a substring",
         "GET http://a/ HTTP/1.0\r\nConnection: keep-alive-ish\r\n\r\n", false},
    };
    for (const Row& row : rows) {
        SUBCASE(row.name) { CHECK(client_wants_keep_alive(request(row.head)) == row.expected); }
    }
}

TEST_CASE("http_rewrite: decides whether the upstream connection may be reused") {
    struct Row {
        const char* name;
        std::string head;
        Framing framing;
        bool expected;
    };
    const Framing length{BodyKind::Length, 3};
    const std::vector<Row> rows = {
        {"1.1 length", "HTTP/1.1 200 OK\r\n\r\n", length, true},
        {"1.1 chunked", "HTTP/1.1 200 OK\r\n\r\n", Framing{BodyKind::Chunked, 0}, true},
        {"1.1 no body", "HTTP/1.1 304 Not Modified\r\n\r\n", Framing{BodyKind::None, 0}, true},
        {"1.1 until close", "HTTP/1.1 200 OK\r\n\r\n", Framing{BodyKind::UntilClose, 0}, false},
        {"1.1 close", "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n", length, false},
        {"1.0 default", "HTTP/1.0 200 OK\r\n\r\n", length, false},
        {"1.0 keep-alive", "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n", length, true},
        {"1.0 keep-alive until close", "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n",
         Framing{BodyKind::UntilClose, 0}, false},
    };
    for (const Row& row : rows) {
        SUBCASE(row.name) {
            CHECK(upstream_allows_reuse(response(row.head), row.framing) == row.expected);
        }
    }
}
