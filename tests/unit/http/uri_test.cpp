// uri: absolute-form targets, authority-form, and the canonical host every rule sees.
#include "hallpass/http/uri.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

using namespace hallpass;

namespace {

AbsoluteUri uri(std::string_view target) {
    Result<AbsoluteUri> r = parse_absolute_uri(target);
    REQUIRE_MESSAGE(r.ok(), r.error().message);
    return *r;
}

Authority host(std::string_view name) {
    Result<Authority> r = canonicalize_host(name);
    REQUIRE_MESSAGE(r.ok(), r.error().message);
    return *r;
}

}  // namespace

TEST_CASE("uri: parses absolute-form targets") {
    struct Row {
        const char* target;
        const char* scheme;
        const char* host;
        HostKind kind;
        uint16_t port;
        const char* path;
    };
    const std::vector<Row> rows = {
        {"http://example.com/a/b?c=d", "http", "example.com", HostKind::Name, 80, "/a/b?c=d"},
        {"http://example.com", "http", "example.com", HostKind::Name, 80, "/"},
        {"http://example.com/", "http", "example.com", HostKind::Name, 80, "/"},
        {"http://example.com?q=1", "http", "example.com", HostKind::Name, 80, "/?q=1"},
        {"http://example.com#frag", "http", "example.com", HostKind::Name, 80, "/"},
        {"http://example.com/p?q#frag", "http", "example.com", HostKind::Name, 80, "/p?q"},
        {"http://example.com/p#f?not-query", "http", "example.com", HostKind::Name, 80, "/p"},
        {"http://example.com:8080/x", "http", "example.com", HostKind::Name, 8080, "/x"},
        {"http://example.com:/x", "http", "example.com", HostKind::Name, 80, "/x"},
        {"http://example.com:080/x", "http", "example.com", HostKind::Name, 80, "/x"},
        {"http://example.com:65535", "http", "example.com", HostKind::Name, 65535, "/"},
        {"HTTP://EXAMPLE.Com/Path", "http", "example.com", HostKind::Name, 80, "/Path"},
        {"https://example.com/", "https", "example.com", HostKind::Name, 443, "/"},
        {"ftp://example.com/pub", "ftp", "example.com", HostKind::Name, 21, "/pub"},
        {"gopher://example.com:70/", "gopher", "example.com", HostKind::Name, 70, "/"},
        {"http://example.com./", "http", "example.com", HostKind::Name, 80, "/"},
        {"http://127.0.0.1:8080/", "http", "127.0.0.1", HostKind::Ipv4, 8080, "/"},
        {"http://[::1]:8080/x", "http", "::1", HostKind::Ipv6, 8080, "/x"},
        {"http://[::1]/", "http", "::1", HostKind::Ipv6, 80, "/"},
        {"http://[2001:DB8:0:0::1]", "http", "2001:db8::1", HostKind::Ipv6, 80, "/"},
        {"http://[::1]:/", "http", "::1", HostKind::Ipv6, 80, "/"},
        {"http://a_b.example.com/", "http", "a_b.example.com", HostKind::Name, 80, "/"},
        {"http://b\xc3\xbc"
         "cher.example/",
         "http", "xn--bcher-kva.example", HostKind::Name, 80, "/"},
    };
    for (const Row& row : rows) {
        SUBCASE(row.target) {
            const AbsoluteUri u = uri(row.target);
            CHECK(u.scheme == row.scheme);
            CHECK(u.authority.host == row.host);
            CHECK(u.authority.kind == row.kind);
            CHECK(u.authority.port == row.port);
            CHECK(u.path_and_query == row.path);
            CHECK_FALSE(u.authority.had_userinfo);
        }
    }
}

TEST_CASE("uri: drops userinfo and targets the host after it") {
    const AbsoluteUri u = uri("http://allowed.example@blocked.example/x");
    CHECK(u.authority.host == "blocked.example");
    CHECK(u.authority.had_userinfo);
    CHECK(u.path_and_query == "/x");

    const AbsoluteUri v = uri("http://user:p%41ss@blocked.example:81/");
    CHECK(v.authority.host == "blocked.example");
    CHECK(v.authority.port == 81);
    CHECK(v.authority.had_userinfo);

    const AbsoluteUri e = uri("http://@example.com/x@");
    CHECK(e.authority.host == "example.com");
    CHECK(e.authority.had_userinfo);
    CHECK(e.path_and_query == "/x@");

    const AbsoluteUri w = uri("http://a@[::1]/");
    CHECK(w.authority.host == "::1");
    CHECK(w.authority.had_userinfo);

    // An '@' after the authority is path, not userinfo.
    const AbsoluteUri p = uri("http://allowed.example/x@blocked.example");
    CHECK(p.authority.host == "allowed.example");
    CHECK_FALSE(p.authority.had_userinfo);
    const AbsoluteUri q = uri("http://allowed.example?@blocked.example");
    CHECK(q.authority.host == "allowed.example");
    CHECK(q.path_and_query == "/?@blocked.example");
}

TEST_CASE("uri: rejects invalid absolute-form targets") {
    const std::vector<const char*> targets = {
        "/origin/form",
        "example.com/x",
        "http:example.com",
        "http:/example.com",
        "1http://example.com/",
        "://example.com/",
        "http:///path",
        "http://",
        "http://:80/",
        "http://a@b@c/",
        "http://good.example\\@evil.example/",
        "http://us er@example.com/",
        "http://example.com:0/",
        "http://example.com:65536/",
        "http://example.com:99999999999999999999/",
        "http://example.com:-1/",
        "http://example.com:+80/",
        "http://example.com:8o/",
        "http://example.com:80:80/",
        "http://example.com: 80/",
        "gopher://example.com/",
        "http://exa%6dple.com/",
        "http://%65xample.com/",
        "http://example..com/",
        "http://.example.com/",
        "http://example.com../",
        "http://exa mple.com/",
        "http://[::1/",
        "http://[::1]x/",
        "http://[::1]:0/",
        "http://[fe80::1%25eth0]/",
        "http://[example.com]/",
        "http://[127.0.0.1]/",
        "http://[v1.x]/",
        "http://::1/",
        "http://0x7f.1/",
        "http://127.1/",
        "http://2130706433/",
        "http://0177.0.0.1/",
        "http://1.2.3.4.5/",
        "http://256.0.0.1/",
    };
    for (const char* target : targets) {
        SUBCASE(target) {
            const Result<AbsoluteUri> r = parse_absolute_uri(target);
            CHECK_FALSE(r.ok());
            if (!r.ok()) CHECK_FALSE(r.error().message.empty());
        }
    }
    CHECK(parse_absolute_uri("gopher://example.com/").error().message ==
          "port required for scheme \"gopher\"");
    CHECK(parse_absolute_uri("http://example.com:0/").error().message == "invalid port \"0\"");
    CHECK(parse_absolute_uri("/x").error().message == "not an absolute uri");
}

TEST_CASE("uri: canonicalizes host names") {
    struct Row {
        const char* input;
        const char* host;
        HostKind kind;
    };
    const std::vector<Row> rows = {
        {"Example.COM", "example.com", HostKind::Name},
        {"example.com.", "example.com", HostKind::Name},
        {"localhost", "localhost", HostKind::Name},
        {"a-.example", "a-.example", HostKind::Name},
        {"-a.example", "-a.example", HostKind::Name},
        {"_dmarc.example.com", "_dmarc.example.com", HostKind::Name},
        {"123.example", "123.example", HostKind::Name},
        {"example.123a", "example.123a", HostKind::Name},
        {"xn--bcher-kva.example", "xn--bcher-kva.example", HostKind::Name},
        {"B\xc3\xbc"
         "cher.Example",
         "xn--bcher-kva.example", HostKind::Name},
        {"b\xc3\xbc"
         "cher.example.",
         "xn--bcher-kva.example", HostKind::Name},
        {"fa\xc3\x9f.de", "xn--fa-hia.de", HostKind::Name},
        {"\xe4\xbe\x8b\xe3\x81\x88.\xe3\x83\x86\xe3\x82\xb9\xe3\x83\x88", "xn--r8jz45g.xn--zckzah",
         HostKind::Name},
        {"\xc3\xbc\xe3\x80\x82"
         "de",
         "xn--tda.de", HostKind::Name},  // ideographic full stop
        {"127.0.0.1", "127.0.0.1", HostKind::Ipv4},
        {"127.0.0.1.", "127.0.0.1", HostKind::Ipv4},
        {"0.0.0.0", "0.0.0.0", HostKind::Ipv4},
        {"::1", "::1", HostKind::Ipv6},
        {"0:0:0:0:0:0:0:1", "::1", HostKind::Ipv6},
        {"2001:DB8::A", "2001:db8::a", HostKind::Ipv6},
        // An IPv4-mapped address is the IPv4 host it maps to (rules on 10.0.0.1 must hold).
        {"::ffff:10.0.0.1", "10.0.0.1", HostKind::Ipv4},
        {"::FFFF:a00:1", "10.0.0.1", HostKind::Ipv4},
    };
    for (const Row& row : rows) {
        SUBCASE(row.input) {
            const Authority a = host(row.input);
            CHECK(a.host == row.host);
            CHECK(a.kind == row.kind);
            CHECK(a.port == 0);
            CHECK_FALSE(a.had_userinfo);
        }
    }
}

TEST_CASE("uri: rejects names that are not valid hosts") {
    const std::string label63(63, 'a');
    const std::string name253 =
        label63 + "." + label63 + "." + label63 + "." + std::string(61, 'a');  // 253 bytes
    REQUIRE(name253.size() == 253);
    CHECK(host(name253).host == name253);
    CHECK(host(name253 + ".").host == name253);
    CHECK(host(label63 + ".example").host == label63 + ".example");

    const std::vector<std::string> names = {
        "",
        ".",
        "..",
        "a..b",
        ".example",
        "example..",
        std::string(64, 'a') + ".example",
        name253 + "a",
        "exa%6dple.com",
        "%",
        "exa mple.com",
        "example.com\t",
        "exa\x01mple.com",
        std::string("exa\0mple.com", 12),
        "exa\x7fmple.com",
        "example.com/",
        "example.com:80",
        "[::1]",
        "ex*ample.com",
        "ex@mple.com",
        "exa\\mple.com",
        "fe80::1%eth0",
        "1::2::3",
        ":::",
        "0x7f.1",
        "0x7f000001",
        "0X7F.0.0.1",
        "127.1",
        "2130706433",
        "0177.0.0.1",
        "127.000.0.1",
        "1.2.3.4.5",
        "256.1.1.1",
        "example.0x",
        "example.123",
        "\xff.de",
        "\xc3\xbc-.de",
    };
    for (const std::string& name : names) {
        SUBCASE(name.c_str()) {
            const Result<Authority> r = canonicalize_host(name);
            CHECK_FALSE(r.ok());
        }
    }
    CHECK(canonicalize_host("exa%6dple.com").error().message ==
          "percent-escape in host \"exa%6dple.com\"");
    CHECK(canonicalize_host("127.1").error().message == "invalid ipv4 address \"127.1\"");
    CHECK(canonicalize_host("a..b").error().message == "empty label in host \"a..b\"");
}

TEST_CASE("uri: parses authority-form for CONNECT") {
    struct Row {
        const char* text;
        const char* host;
        HostKind kind;
        uint16_t port;
    };
    const std::vector<Row> rows = {
        {"example.com:443", "example.com", HostKind::Name, 443},
        {"EXAMPLE.com.:8443", "example.com", HostKind::Name, 8443},
        {"[::1]:443", "::1", HostKind::Ipv6, 443},
        {"10.0.0.1:22", "10.0.0.1", HostKind::Ipv4, 22},
    };
    for (const Row& row : rows) {
        SUBCASE(row.text) {
            const Result<Authority> r = parse_authority(row.text, true);
            REQUIRE_MESSAGE(r.ok(), r.error().message);
            CHECK(r->host == row.host);
            CHECK(r->kind == row.kind);
            CHECK(r->port == row.port);
        }
    }
    for (const char* bad :
         {"example.com", "example.com:", "[::1]", "user@example.com:443", ":443", "example.com:0",
          "example.com:65536", "example.com:443/", "::1:443", "127.1:443", "example.com:https"}) {
        SUBCASE(bad) { CHECK_FALSE(parse_authority(bad, true).ok()); }
    }
    CHECK(parse_authority("example.com", true).error().message == "missing port");
    CHECK(parse_authority("user@example.com:443", true).error().message == "userinfo not allowed");
}

TEST_CASE("uri: parses Host header values with a default port") {
    Result<Authority> r = parse_authority("Example.com", false, 80);
    REQUIRE(r.ok());
    CHECK(r->host == "example.com");
    CHECK(r->port == 80);

    r = parse_authority("example.com:", false, 80);
    REQUIRE(r.ok());
    CHECK(r->port == 80);

    r = parse_authority("example.com:8080", false, 80);
    REQUIRE(r.ok());
    CHECK(r->port == 8080);

    r = parse_authority("[::1]", false, 80);
    REQUIRE(r.ok());
    CHECK(r->host == "::1");
    CHECK(r->port == 80);

    r = parse_authority("example.com", false);
    REQUIRE(r.ok());
    CHECK(r->port == 0);  // no default given: the caller only wanted the host

    CHECK_FALSE(parse_authority("", false, 80).ok());
    CHECK_FALSE(parse_authority("a@example.com", false, 80).ok());
}

TEST_CASE("uri: formats host_port and host_header") {
    Authority name = host("example.com");
    name.port = 80;
    CHECK(name.host_port() == "example.com:80");
    CHECK(name.host_header(80) == "example.com");
    CHECK(name.host_header(443) == "example.com:80");

    Authority v6 = host("::1");
    v6.port = 8080;
    CHECK(v6.host_port() == "[::1]:8080");
    CHECK(v6.host_header(80) == "[::1]:8080");
    v6.port = 80;
    CHECK(v6.host_header(80) == "[::1]");

    Authority v4 = host("10.1.2.3");
    v4.port = 3128;
    CHECK(v4.host_port() == "10.1.2.3:3128");
    CHECK(v4.host_header(80) == "10.1.2.3:3128");
}

// Error is the failure type of this module; its formatting is checked here for want of its own
// test file.
TEST_CASE("error: to_string prints the parts that are known") {
    CHECK(Error{"bad", "rules.yaml", 14, 7}.to_string() == "rules.yaml:14:7: bad");
    CHECK(Error{"bad", "rules.yaml", 14, 0}.to_string() == "rules.yaml:14: bad");
    CHECK(Error{"bad", "rules.yaml", 0, 0}.to_string() == "rules.yaml: bad");
    CHECK(Error{"bad", "", 3, 4}.to_string() == "3:4: bad");
    CHECK(Error{"bad", "", 0, 0}.to_string() == "bad");
}

TEST_CASE("uri: normalize_path gives one spelling of a path for url_regex") {
    CHECK(normalize_path("/") == "/");
    CHECK(normalize_path("/ads/x.js") == "/ads/x.js");
    CHECK(normalize_path("/%61ds/") == "/ads/");
    CHECK(normalize_path("/%41%7e%2d") == "/A~-");
    CHECK(normalize_path("//ads/") == "/ads/");
    CHECK(normalize_path("/./ads/") == "/ads/");
    CHECK(normalize_path("/x/../ads/") == "/ads/");
    CHECK(normalize_path("/x/%2e%2e/ads/") == "/ads/");
    CHECK(normalize_path("/../../ads") == "/ads");
    CHECK(normalize_path("/a/b/..") == "/a/");
    CHECK(normalize_path("/a/.") == "/a/");
    // Reserved characters keep their escapes (a %2F is not a separator), hex upper-cased.
    CHECK(normalize_path("/a%2fb") == "/a%2Fb");
    CHECK(normalize_path("/a%zz") == "/a%zz");
    CHECK(normalize_path("/a%4") == "/a%4");
    // The query is left alone.
    CHECK(normalize_path("/p//q?x=//%61/../") == "/p/q?x=//%61/../");
}
