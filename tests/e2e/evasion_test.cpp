// Spellings of a blocked destination that must reach the same decision as the plain name: case,
// trailing dot, explicit default port, userinfo, IDN in Unicode and punycode, IP-literal forms;
// hosts that are not valid names (400, never passed on); Host-header tricks; pipelining; and the
// same for CONNECT. Every blocked variant must leave the origin and the DNS stub untouched.
#include <doctest/doctest.h>

#include "harness.h"

using namespace hallpass::e2e;

namespace {

using Strings = std::vector<std::string>;

// bücher.example is written in Unicode in the rule, münchen.example in punycode.
const char* kRules = R"(default: allow
rules:
  - name: block-test
    action: block
    domains: [blocked.test]
  - name: idn-unicode
    action: block
    domains: [bücher.example]
  - name: idn-punycode
    action: block
    hosts: [xn--mnchen-3ya.example]
  - name: ip-literal
    action: block
    hosts: [127.0.0.1]
  - name: lab-net
    action: block
    dest_nets: [127.0.0.2/31]
  - name: no-ads-path
    action: block
    url_regex: ['^http://[^/]+/ads/']
)";

struct Setup {
    TempDir dir;
    ScriptedOrigin origin;
    std::unique_ptr<Hallpass> proxy;
    std::string op;  // origin port as text

    Setup() {
        HallpassOptions o;
        // café.example (allowed) is resolvable in its punycode form.
        o.hosts = {"site.test", "allowed.test", "blocked.test", "www.blocked.test",
                   "xn--caf-dma.example"};
        o.rules_yaml = kRules;
        o.server_yaml = "connect_ports: [443, " + std::to_string(origin.port()) + "]";
        proxy = std::make_unique<Hallpass>(dir, o);
        op = std::to_string(origin.port());
    }
    uint16_t port() const { return proxy->port(); }

    // The origin and the DNS stub saw nothing at all.
    void check_untouched() {
        std::this_thread::sleep_for(50ms);
        CHECK(origin.connections() == 0);
        CHECK(proxy->dns().names().empty());
    }
};

std::optional<HttpResponse> ask(uint16_t proxy_port, const std::string& request,
                                bool head_request = false) {
    RawClient c(proxy_port);
    c.send(request);
    return c.read_final_response(5s, head_request);
}

// "GET <target> HTTP/1.1" with the given Host field.
std::string get(std::string_view target, std::string_view host) {
    return "GET " + std::string(target) + " HTTP/1.1\r\nHost: " + std::string(host) + "\r\n\r\n";
}

std::string connect_request(std::string_view authority, std::string_view host = {}) {
    return "CONNECT " + std::string(authority) +
           " HTTP/1.1\r\nHost: " + std::string(host.empty() ? authority : host) + "\r\n\r\n";
}

bool is_connect(std::string_view request) { return request.substr(0, 8) == "CONNECT "; }

// Sends `request` and checks the answer is a block by `rule`. A CONNECT answer is read as a head
// only: a wrongly established tunnel has no body to wait for.
void check_blocked(uint16_t proxy_port, const std::string& request, std::string_view rule) {
    CAPTURE(request);
    auto r = ask(proxy_port, request, is_connect(request));
    if (!r) {
        FAIL_CHECK("no response");
        return;
    }
    CHECK(r->status == 403);
    CHECK(r->header("x-hallpass-rule") == rule);
}

void check_status(uint16_t proxy_port, const std::string& request, int status) {
    CAPTURE(request);
    auto r = ask(proxy_port, request, is_connect(request));
    if (!r) {
        FAIL_CHECK("no response");
        return;
    }
    CHECK(r->status == status);
    CHECK_FALSE(r->has("x-hallpass-rule"));
}

}  // namespace

TEST_CASE("evasion: case, trailing dot, default port and userinfo reach the block") {
    Setup s;
    const std::string op = s.op;
    for (const std::string& authority :
         Strings{"WWW.BLOCKED.TEST:" + op, "Www.BlOcKeD.tEsT:" + op, "www.blocked.test.:" + op,
                 "BLOCKED.TEST.:" + op, "blocked.test:80", "blocked.test", "Blocked.Test.:80",
                 "nx.blocked.test:" + op}) {
        check_blocked(s.port(), get("http://" + authority + "/", authority), "block-test");
    }
    // Userinfo is not part of the host: the request goes to (and is decided for) what follows @.
    for (const std::string& target :
         Strings{"http://allowed.test@www.blocked.test:" + op + "/",
                 "http://user:pass@www.blocked.test:" + op + "/",
                 "http://site.test:" + op + "@blocked.test:" + op + "/"}) {
        check_blocked(s.port(), get(target, "allowed.test:" + op), "block-test");
    }
    auto r = curl(s.port(), {"-o", "/dev/null", "-w", "%{http_code}",
                             "http://allowed.test@www.blocked.test:" + op + "/"});
    CHECK(r.out == "403");
    auto upper = curl(s.port(), {"-o", "/dev/null", "-w", "%{http_code}",
                                 "http://WWW.Blocked.Test.:" + op + "/"});
    CHECK(upper.out == "403");
    s.check_untouched();

    // The reverse userinfo goes to the allowed host.
    auto fine =
        ask(s.port(), get("http://www.blocked.test@site.test:" + op + "/ok", "site.test:" + op));
    REQUIRE(fine);
    CHECK(fine->status == 200);
    REQUIRE(s.origin.wait_for_requests(1));
    CHECK(contains(s.origin.requests()[0], "GET /ok "));
}

TEST_CASE("evasion: IDN in Unicode and punycode reach the same decision") {
    Setup s;
    const std::string op = s.op;
    SUBCASE("a rule in Unicode blocks the punycode and the UTF-8 spelling") {
        for (const std::string& host :
             Strings{"xn--bcher-kva.example", "www.xn--bcher-kva.example", "bücher.example",
                     "www.bücher.example", "Bücher.Example", "XN--BCHER-KVA.EXAMPLE."}) {
            std::string authority = host + ":" + op;
            check_blocked(s.port(), get("http://" + authority + "/", authority), "idn-unicode");
        }
        // curl converts the name to punycode itself (libidn2).
        auto r = curl(s.port(), {"-o", "/dev/null", "-w", "%{http_code}",
                                 "http://bücher.example:" + op + "/"});
        CHECK(r.out == "403");
    }
    SUBCASE("a rule in punycode blocks the UTF-8 spelling") {
        for (const std::string& host : Strings{"xn--mnchen-3ya.example", "münchen.example",
                                               "MÜNCHEN.example", "münchen.example."}) {
            std::string authority = host + ":" + op;
            check_blocked(s.port(), get("http://" + authority + "/", authority), "idn-punycode");
        }
        auto r = curl(s.port(), {"-o", "/dev/null", "-w", "%{http_code}",
                                 "http://münchen.example:" + op + "/"});
        CHECK(r.out == "403");
    }
    SUBCASE("CONNECT") {
        for (const std::string& authority :
             Strings{"bücher.example:443", "xn--bcher-kva.example:443", "www.bücher.example:443"})
            check_blocked(s.port(), connect_request(authority), "idn-unicode");
        for (const std::string& authority :
             Strings{"münchen.example:443", "xn--mnchen-3ya.example:443"})
            check_blocked(s.port(), connect_request(authority), "idn-punycode");
    }
    s.check_untouched();

    // An allowed UTF-8 name is converted and proxied, not refused.
    std::string authority = "café.example:" + op;
    auto r = ask(s.port(), get("http://" + authority + "/cafe", authority));
    REQUIRE(r);
    CHECK(r->status == 200);
    REQUIRE(s.origin.wait_for_requests(1));
    CHECK(contains(s.origin.requests()[0], "GET /cafe "));
}

TEST_CASE("evasion: hosts that are not valid names get 400 and go nowhere") {
    Setup s;
    const std::string op = s.op;
    for (const std::string& host :
         Strings{"www.bl%6fcked.test", "%77ww.blocked.test", "www.blocked.test%2e", "blocked..test",
                 ".blocked.test", "blocked.test..",
                 "www.blo\x01"
                 "cked.test",
                 "127.1", "2130706433", "0x7f.0.0.1", "0177.0.0.1"}) {
        std::string authority = host + ":" + op;
        check_status(s.port(), get("http://" + authority + "/", "site.test:" + op), 400);
    }
    for (const std::string& authority :
         Strings{"www.bl%6fcked.test:443", "blocked..test:443", "127.1:" + op, "0x7f000001:" + op})
        check_status(s.port(), connect_request(authority), 400);
    s.check_untouched();
    check_status(s.port(), get("http://site.test:" + op + "/", "site.test:" + op), 200);
}

TEST_CASE("evasion: IP-literal destinations in every spelling meet hosts and dest_nets") {
    Setup s;
    const std::string op = s.op;
    SUBCASE("hosts: [127.0.0.1]") {
        for (const std::string& authority :
             Strings{"127.0.0.1:" + op, "127.0.0.1.:" + op, "[::ffff:127.0.0.1]:" + op,
                     "[::FFFF:7f00:1]:" + op, "[0:0:0:0:0:ffff:7f00:1]:" + op}) {
            check_blocked(s.port(), get("http://" + authority + "/", authority), "ip-literal");
            check_blocked(s.port(), connect_request(authority), "ip-literal");
        }
    }
    SUBCASE("dest_nets: [127.0.0.2/31]") {
        for (const std::string& authority :
             Strings{"127.0.0.2:" + op, "127.0.0.3:" + op, "[::ffff:127.0.0.2]:" + op,
                     "[::ffff:7f00:3]:" + op}) {
            check_blocked(s.port(), get("http://" + authority + "/", authority), "lab-net");
            check_blocked(s.port(), connect_request(authority), "lab-net");
        }
    }
    s.check_untouched();
}

TEST_CASE("evasion: the request target decides, never the Host field") {
    Setup s;
    const std::string op = s.op;
    SUBCASE("absolute-form says blocked, Host says allowed: blocked") {
        check_blocked(s.port(), get("http://www.blocked.test:" + op + "/", "site.test:" + op),
                      "block-test");
        check_blocked(s.port(), connect_request("www.blocked.test:443", "site.test:" + op),
                      "block-test");
        s.check_untouched();
    }
    SUBCASE("absolute-form says allowed, Host says blocked: the origin gets the allowed host") {
        // A shared origin (a CDN) picks the site by Host: passing the blocked name on would
        // serve the blocked site under an allowed target.
        auto r = ask(s.port(), get("http://site.test:" + op + "/vh", "www.blocked.test"));
        REQUIRE(r);
        CHECK(r->status == 200);
        REQUIRE(s.origin.wait_for_requests(1));
        auto seen = parse_request(s.origin.requests()[0]);
        REQUIRE(seen);
        CHECK(seen->request_line == "GET /vh HTTP/1.1");
        CHECK(seen->values("host") == std::vector<std::string>{"site.test:" + op});
    }
    SUBCASE("origin-form with Host: blocked.test is not proxied anywhere") {
        for (const std::string& host : Strings{"www.blocked.test:" + op, "site.test:" + op}) {
            auto r = ask(s.port(), get("/", host));
            REQUIRE(r);
            CHECK(r->status == 400);
            CHECK(contains(r->body, "hallpass is a proxy"));
            CHECK_FALSE(r->has("x-hallpass-rule"));
        }
        s.check_untouched();
    }
}

TEST_CASE("evasion: pipelined allowed and blocked requests are each decided") {
    Setup s;
    const std::string op = s.op;
    auto req = [&](std::string_view host, std::string_view path) {
        std::string authority = std::string(host) + ":" + op;
        return get("http://" + authority + std::string(path), authority);
    };
    RawClient c(s.port());
    c.send(req("site.test", "/1") + req("www.blocked.test", "/2") + req("allowed.test", "/3") +
           req("WWW.BLOCKED.TEST.", "/4") + req("site.test", "/5"));
    std::vector<int> statuses;
    std::vector<std::string> rules;
    for (int i = 0; i < 5; ++i) {
        auto r = c.read_final_response();
        REQUIRE(r);
        statuses.push_back(r->status);
        rules.push_back(r->header("x-hallpass-rule"));
    }
    CHECK(statuses == std::vector<int>{200, 403, 200, 403, 200});
    CHECK(rules == std::vector<std::string>{"", "block-test", "", "block-test", ""});
    REQUIRE(s.origin.wait_for_requests(3));
    std::this_thread::sleep_for(50ms);
    auto seen = s.origin.requests();
    REQUIRE(seen.size() == 3);
    CHECK(contains(seen[0], "GET /1 "));
    CHECK(contains(seen[1], "GET /3 "));
    CHECK(contains(seen[2], "GET /5 "));
}

TEST_CASE("evasion: CONNECT spellings") {
    Setup s;
    const std::string op = s.op;
    for (const std::string& authority : Strings{"WWW.BLOCKED.TEST:443", "www.blocked.test.:443",
                                                "Blocked.Test.:" + op, "nx.BLOCKED.test:443"})
        check_blocked(s.port(), connect_request(authority), "block-test");
    // RFC 9110 §9.3.6: the CONNECT target is host:port only; userinfo there is malformed.
    for (const std::string& authority :
         Strings{"allowed.test@www.blocked.test:443", "user:pass@www.blocked.test:443",
                 "www.blocked.test@allowed.test:" + op})
        check_status(s.port(), connect_request(authority), 400);
    auto r = curl(s.port(), {"-p", "-o", "/dev/null", "-w", "%{http_connect}",
                             "http://WWW.Blocked.TEST.:" + op + "/"});
    CHECK(r.out == "403");
    s.check_untouched();

    // The allowed name in upper case with a trailing dot tunnels.
    RawClient c(s.port());
    c.send(connect_request("SITE.TEST.:" + op));
    auto established = c.read_response(5s, true);
    REQUIRE(established);
    CHECK(established->status == 200);
    c.send("GET /in HTTP/1.1\r\nHost: site.test\r\n\r\n");
    auto inside = c.read_final_response();
    REQUIRE(inside);
    CHECK(inside->body == "ok");
}

TEST_CASE("evasion: Unicode that IDNA maps onto the blocked name is blocked too") {
    Setup s;
    const std::string op = s.op;
    // UTS #46 maps these onto "blocked.test": ideographic and fullwidth full stops, fullwidth
    // letters, and a soft hyphen (mapped to nothing). A browser sends their mapped punycode
    // form; a raw client may send the UTF-8 itself.
    for (const std::string& host :
         Strings{"www.blocked\u3002test", "blocked\uff0etest", "blocked\uff61test",
                 "\uff42\uff4c\uff4f\uff43\uff4b\uff45\uff44.test", "bl\u00adocked.test"}) {
        std::string authority = host + ":" + op;
        check_blocked(s.port(), get("http://" + authority + "/", authority), "block-test");
        check_blocked(s.port(), connect_request(host + ":443"), "block-test");
    }
    s.check_untouched();
}

TEST_CASE("evasion: odd but valid target forms of the blocked name") {
    Setup s;
    const std::string op = s.op;
    for (const std::string& target :
         Strings{"http://www.blocked.test:" + op, "http://www.blocked.test:" + op + "?q=1",
                 "HTTP://www.blocked.test:" + op + "/", "http://www.blocked.test:00" + op + "/",
                 "http://www.blocked.test:0080/", "http://www.blocked.test:/"})
        check_blocked(s.port(), get(target, "site.test:" + op), "block-test");
    // HTTP/1.0 without a Host field.
    check_blocked(s.port(), "GET http://www.blocked.test:" + op + "/ HTTP/1.0\r\n\r\n",
                  "block-test");
    s.check_untouched();
}

TEST_CASE("evasion: url_regex sees one spelling of the path; the request goes out as sent") {
    Setup s;
    const std::string site = "site.test:" + s.op;
    for (const std::string& path :
         Strings{"/ads/x.js", "/%61ds/x.js", "/%61%64%73/x.js", "//ads/x.js", "/./ads/x.js",
                 "/x/../ads/x.js", "/x/%2e%2e/ads/x.js", "///./ads/x.js"}) {
        check_blocked(s.port(), get("http://" + site + path, site), "no-ads-path");
    }
    s.check_untouched();
    // Allowed requests are forwarded byte for byte, not in the normalised form.
    check_status(s.port(), get("http://" + site + "/x/./y//z%7e", site), 200);
    REQUIRE(s.origin.wait_for_requests(1));
    CHECK(contains(s.origin.requests()[0], "GET /x/./y//z%7e HTTP/1.1"));
}
