// The rule engine through the real binary: blocked and allowed requests over HTTP and CONNECT
// (curl and raw sockets), decided before DNS and before any upstream connection; blocks on a
// keep-alive connection; clients blocked by address and by a group's CIDR; the block page, its
// X-Hallpass-Rule header, HTML escaping and a custom template.
#include <doctest/doctest.h>

#include <cstdio>

#include "harness.h"

using namespace hallpass::e2e;

namespace {

// Names in the hosts file point at 127.0.0.1 (the origin's address), so an allowed request to
// them reaches the origin; nx.blocked.test is not in it, so resolving it would ask the DNS stub.
// Either way a request that was decided too late leaves a trace we can see.
const char* kRules = R"(default: allow
groups:
  lab: [127.0.1.0/24]
rules:
  - name: banned-device
    action: block
    clients: [127.0.0.2]
  - name: lab-no-site
    action: block
    clients: lab
    hosts: [site.test]
  - name: block-test
    action: block
    domains: [blocked.test]
  - name: "<i>odd & name</i>"
    action: block
    hosts: [weird.test]
)";

HallpassOptions rules_options(std::string server_yaml = {}) {
    HallpassOptions o;
    o.hosts = {"site.test", "a.test", "blocked.test", "www.blocked.test", "weird.test"};
    o.server_yaml = std::move(server_yaml);
    o.rules_yaml = kRules;
    return o;
}

std::string get(std::string_view host, uint16_t port, std::string_view path = "/",
                std::string_view method = "GET") {
    std::string authority = std::string(host) + ":" + std::to_string(port);
    return std::string(method) + " http://" + authority + std::string(path) +
           " HTTP/1.1\r\nHost: " + authority + "\r\n\r\n";
}

std::string connect_request(std::string_view authority) {
    return "CONNECT " + std::string(authority) + " HTTP/1.1\r\nHost: " + std::string(authority) +
           "\r\n\r\n";
}

// One request on a fresh connection (optionally from another loopback address).
std::optional<HttpResponse> ask(uint16_t proxy_port, const std::string& request,
                                std::string source = {}, bool head_request = false) {
    RawClient c(proxy_port, "127.0.0.1", 5s, 0, std::move(source));
    c.send(request);
    return c.read_final_response(5s, head_request);
}

// Names the DNS stub was asked that contain `part`.
std::vector<std::string> asked(DnsStub& dns, std::string_view part) {
    std::vector<std::string> out;
    for (const auto& n : dns.names())
        if (contains(n, part)) out.push_back(n);
    return out;
}

std::string connect_ports(uint16_t port) {
    return "connect_ports: [443, " + std::to_string(port) + "]";
}

}  // namespace

TEST_CASE("rules: a blocked HTTP request gets 403 and reaches neither DNS nor the origin") {
    TempDir dir;
    ScriptedOrigin origin;
    Hallpass proxy(dir, rules_options());
    const uint16_t op = origin.port();

    SUBCASE("raw socket, a name in the hosts file and one that would need DNS") {
        for (const char* host : {"www.blocked.test", "blocked.test", "nx.blocked.test"}) {
            CAPTURE(host);
            auto r = ask(proxy.port(), get(host, op, "/page"));
            REQUIRE(r);
            CHECK(r->status == 403);
            CHECK(r->header("x-hallpass-rule") == "block-test");
            CHECK(contains(r->header("content-type"), "text/html"));
            CHECK(contains(r->body, host));
        }
    }
    SUBCASE("curl") {
        for (const char* host : {"www.blocked.test", "nx.blocked.test"}) {
            CAPTURE(host);
            auto r = curl(proxy.port(),
                          {"-o", "/dev/null", "-w", "%{http_code}",
                           "http://" + std::string(host) + ":" + std::to_string(op) + "/"});
            CHECK(r.exit_code == 0);
            CHECK(r.out == "403");
        }
    }
    std::this_thread::sleep_for(100ms);
    CHECK(origin.connections() == 0);
    CHECK(asked(proxy.dns(), "blocked").empty());

    // The same proxy does reach both for allowed names: the checks above can fail.
    auto allowed = ask(proxy.port(), get("site.test", op));
    REQUIRE(allowed);
    CHECK(allowed->status == 200);
    CHECK(allowed->body == "ok");
    CHECK_FALSE(allowed->has("x-hallpass-rule"));
    CHECK(origin.connections() == 1);
    auto unknown = ask(proxy.port(), get("nowhere.test", op));
    REQUIRE(unknown);
    CHECK(unknown->status == 502);
    CHECK(asked(proxy.dns(), "nowhere.test").size() >= 1);
}

TEST_CASE("rules: a blocked request is logged at debug with its rule") {
    TempDir dir;
    ScriptedOrigin origin;
    Hallpass proxy(dir, rules_options());

    auto r = ask(proxy.port(), get("www.blocked.test", origin.port()));
    REQUIRE(r);
    REQUIRE(r->status == 403);
    std::string needle = "127.0.0.1";
    std::string what =
        "blocked www.blocked.test:" + std::to_string(origin.port()) + " by rule \"block-test\"";
    REQUIRE(proxy.wait_for_log(what));
    auto lines = lines_with(proxy.stderr_text(), what);
    REQUIRE(lines.size() == 1);
    CHECK(connection_id(lines[0]) != "");
    CHECK(contains(lines[0], needle));
}

TEST_CASE("rules: a blocked CONNECT gets 403 with the block page; an allowed one tunnels") {
    TempDir dir;
    ScriptedOrigin origin;
    NginxOptions no;
    no.tls = true;
    Nginx tls(dir, no);
    tls.put("1k", std::string(1024, 'k'));
    Hallpass proxy(dir, rules_options("connect_ports: [443, " + std::to_string(origin.port()) +
                                      ", " + std::to_string(tls.tls_port()) + "]"));
    const std::string op = std::to_string(origin.port());
    const std::string tp = std::to_string(tls.tls_port());

    SUBCASE("raw CONNECT") {
        for (const std::string& authority : std::vector<std::string>{
                 "www.blocked.test:" + op, "nx.blocked.test:443", "www.blocked.test:" + tp}) {
            CAPTURE(authority);
            auto r = ask(proxy.port(), connect_request(authority));
            REQUIRE(r);
            CHECK(r->status == 403);
            CHECK(r->header("x-hallpass-rule") == "block-test");
            CHECK(contains(r->header("content-type"), "text/html"));
            CHECK(contains(r->body, authority.substr(0, authority.find(':'))));
            CHECK(contains(r->body, "block-test"));
        }
    }
    SUBCASE("curl: -p over http and https through the proxy") {
        auto p = curl(proxy.port(),
                      {"-p", "-w", "%{http_connect}", "http://www.blocked.test:" + op + "/"});
        CHECK(p.exit_code != 0);
        CHECK(p.out == "403");
        auto s = curl(proxy.port(),
                      {"-k", "-w", "%{http_connect}", "https://www.blocked.test:" + tp + "/1k"});
        CHECK(s.exit_code != 0);
        CHECK(s.out == "403");
        auto nx = curl(proxy.port(), {"-k", "-w", "%{http_connect}", "https://nx.blocked.test/"});
        CHECK(nx.exit_code != 0);
        CHECK(nx.out == "403");
    }
    std::this_thread::sleep_for(100ms);
    CHECK(origin.connections() == 0);
    CHECK(tls.accesses().empty());
    CHECK(asked(proxy.dns(), "blocked").empty());

    // Allowed tunnels through the same proxy.
    RawClient c(proxy.port());
    c.send(connect_request("site.test:" + op));
    auto established = c.read_response(5s, /*head_request=*/true);
    REQUIRE(established);
    CHECK(established->status == 200);
    c.send("GET / HTTP/1.1\r\nHost: site.test\r\n\r\n");
    auto inside = c.read_final_response();
    REQUIRE(inside);
    CHECK(inside->body == "ok");
    auto https = curl(proxy.port(), {"-k", "https://site.test:" + tp + "/1k"});
    CHECK(https.exit_code == 0);
    CHECK(https.out == std::string(1024, 'k'));
    CHECK(origin.connections() == 1);
}

TEST_CASE("rules: blocks on a keep-alive connection leave it usable for allowed requests") {
    TempDir dir;
    ScriptedOrigin origin;
    Hallpass proxy(dir, rules_options());
    const uint16_t op = origin.port();

    SUBCASE("allowed, blocked, allowed on one raw connection") {
        RawClient c(proxy.port());
        c.send(get("site.test", op, "/1"));
        auto first = c.read_final_response();
        REQUIRE(first);
        CHECK(first->status == 200);
        c.send(get("www.blocked.test", op, "/2"));
        auto second = c.read_final_response();
        REQUIRE(second);
        CHECK(second->status == 403);
        CHECK(second->header("x-hallpass-rule") == "block-test");
        c.send(get("a.test", op, "/3"));
        auto third = c.read_final_response();
        REQUIRE(third);
        CHECK(third->status == 200);
        CHECK(third->body == "ok");
        CHECK_FALSE(c.eof());
        REQUIRE(origin.wait_for_requests(2));
        std::this_thread::sleep_for(50ms);
        auto seen = origin.requests();
        REQUIRE(seen.size() == 2);
        CHECK(contains(seen[0], "GET /1 "));
        CHECK(contains(seen[1], "GET /3 "));
    }
    SUBCASE("blocked first, then allowed on the same connection") {
        RawClient c(proxy.port());
        c.send(get("blocked.test", op));
        auto first = c.read_final_response();
        REQUIRE(first);
        CHECK(first->status == 403);
        c.send(get("site.test", op, "/after"));
        auto second = c.read_final_response();
        REQUIRE(second);
        CHECK(second->status == 200);
        CHECK(second->body == "ok");
        REQUIRE(origin.wait_for_requests(1));
        CHECK(contains(origin.requests()[0], "GET /after "));
    }
    SUBCASE("a blocked HEAD sends no body and the next response is parsed cleanly") {
        RawClient c(proxy.port());
        c.send(get("www.blocked.test", op, "/", "HEAD"));
        auto head = c.read_final_response(5s, /*head_request=*/true);
        REQUIRE(head);
        CHECK(head->status == 403);
        CHECK(head->header("x-hallpass-rule") == "block-test");
        c.send(get("site.test", op, "/next"));
        auto next = c.read_final_response();
        REQUIRE(next);
        CHECK(next->status == 200);
        CHECK(next->body == "ok");
        CHECK(c.buffer().empty());
    }
    SUBCASE("curl with three URLs uses one connection") {
        std::string o = std::to_string(op);
        auto r = curl(proxy.port(),
                      {"-w", "%{http_code} %{num_connects}\\n", "-o", "/dev/null", "-o",
                       "/dev/null", "-o", "/dev/null", "http://site.test:" + o + "/1",
                       "http://www.blocked.test:" + o + "/2", "http://a.test:" + o + "/3"});
        CHECK(r.exit_code == 0);
        CHECK(r.out == "200 1\n403 0\n200 0\n");
        REQUIRE(origin.wait_for_requests(2));
        std::this_thread::sleep_for(50ms);
        CHECK(origin.requests().size() == 2);
    }
    SUBCASE("a blocked POST's body is never taken for a request of its own") {
        // The body is a complete request to an allowed host: if the proxy kept the connection
        // and read on without skipping the body, the origin would see it.
        std::string smuggled = get("site.test", op, "/smuggled");
        std::string authority = "www.blocked.test:" + std::to_string(op);
        std::string head = "POST http://" + authority + "/form HTTP/1.1\r\nHost: " + authority;
        std::string request;
        SUBCASE("Content-Length") {
            request = head + "\r\nContent-Length: " + std::to_string(smuggled.size()) + "\r\n\r\n" +
                      smuggled;
        }
        SUBCASE("chunked") {
            char size[16];
            std::snprintf(size, sizeof size, "%zx", smuggled.size());
            request = head + "\r\nTransfer-Encoding: chunked\r\n\r\n" + size + "\r\n" + smuggled +
                      "\r\n0\r\n\r\n";
        }
        RawClient c(proxy.port());
        c.send(request);
        auto r = c.read_final_response();
        REQUIRE(r);
        CHECK(r->status == 403);
        CHECK(r->header("x-hallpass-rule") == "block-test");
        // Whatever else arrives on this connection must not be a proxied answer.
        c.fill([](const std::string&) { return false; }, 300ms);
        CHECK_FALSE(contains(c.buffer(), "\r\n\r\nok"));
        CHECK(origin.connections() == 0);
        CHECK(origin.requests().empty());
    }
    SUBCASE("Expect: 100-continue to a blocked host gets the 403 at once, never a 100") {
        std::string authority = "www.blocked.test:" + std::to_string(op);
        RawClient c(proxy.port());
        c.send("PUT http://" + authority + "/up HTTP/1.1\r\nHost: " + authority +
               "\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
        auto r = c.read_response(3s);
        REQUIRE(r);
        CHECK(r->status == 403);
        CHECK(r->header("x-hallpass-rule") == "block-test");
        CHECK(origin.connections() == 0);
    }
}

TEST_CASE("rules: a client blocked by address gets 403 for everything; others do not") {
    TempDir dir;
    ScriptedOrigin origin;
    Hallpass proxy(dir, rules_options(connect_ports(origin.port())));
    const std::string op = std::to_string(origin.port());
    auto status_from = [&](const std::string& source, const std::string& url, bool tunnel = false) {
        std::vector<std::string> args = {
            "--interface", source, "-o",
            "/dev/null",   "-w",   tunnel ? "%{http_connect}" : "%{http_code}"};
        if (tunnel) args.push_back("-p");
        args.push_back(url);
        return curl(proxy.port(), args).out;
    };

    SUBCASE("127.0.0.2 is banned everywhere, 127.0.0.1 is not") {
        CHECK(status_from("127.0.0.2", "http://site.test:" + op + "/") == "403");
        CHECK(status_from("127.0.0.2", "http://a.test:" + op + "/") == "403");
        CHECK(status_from("127.0.0.2", "http://nowhere.test:" + op + "/") == "403");
        CHECK(status_from("127.0.0.2", "http://a.test:" + op + "/", true) == "403");
        CHECK(origin.connections() == 0);
        CHECK(asked(proxy.dns(), "nowhere").empty());

        auto r = ask(proxy.port(), get("a.test", origin.port()), "127.0.0.2");
        REQUIRE(r);
        CHECK(r->status == 403);
        CHECK(r->header("x-hallpass-rule") == "banned-device");
        CHECK(contains(r->body, "127.0.0.2"));

        CHECK(status_from("127.0.0.1", "http://a.test:" + op + "/") == "200");
        CHECK(status_from("127.0.0.3", "http://a.test:" + op + "/") == "200");
        CHECK(origin.requests().size() == 2);
    }
    SUBCASE("a group's CIDR: 127.0.1.0/24 may not reach site.test, but may reach a.test") {
        CHECK(status_from("127.0.1.9", "http://site.test:" + op + "/") == "403");
        CHECK(status_from("127.0.1.254", "http://site.test:" + op + "/") == "403");
        auto r = ask(proxy.port(), get("site.test", origin.port()), "127.0.1.9");
        REQUIRE(r);
        CHECK(r->header("x-hallpass-rule") == "lab-no-site");
        CHECK(origin.connections() == 0);

        CHECK(status_from("127.0.1.9", "http://a.test:" + op + "/") == "200");
        CHECK(status_from("127.0.2.1", "http://site.test:" + op + "/") == "200");
        CHECK(status_from("127.0.0.1", "http://site.test:" + op + "/") == "200");
        CHECK(origin.requests().size() == 3);
    }
}

TEST_CASE("rules: the built-in block page names the host, the rule and the client, escaped") {
    TempDir dir;
    ScriptedOrigin origin;
    Hallpass proxy(dir, rules_options());

    auto r = ask(proxy.port(), get("www.blocked.test", origin.port(), "/x"));
    REQUIRE(r);
    CHECK(r->status == 403);
    CHECK(contains(r->head, "403 Forbidden"));
    CHECK(contains(r->header("content-type"), "text/html"));
    CHECK(r->header("content-length") == std::to_string(r->body.size()));
    CHECK(contains(r->body, "www.blocked.test"));
    CHECK(contains(r->body, "block-test"));
    CHECK(contains(r->body, "127.0.0.1"));

    auto odd = ask(proxy.port(), get("weird.test", origin.port()));
    REQUIRE(odd);
    CHECK(odd->status == 403);
    CHECK(odd->header("x-hallpass-rule") == "<i>odd & name</i>");
    CHECK(contains(odd->body, "&lt;i&gt;odd &amp; name&lt;/i&gt;"));
    CHECK_FALSE(contains(odd->body, "<i>odd"));
    CHECK(origin.connections() == 0);
}

TEST_CASE("rules: server.block_page replaces the page; placeholders are HTML-escaped") {
    TempDir dir;
    ScriptedOrigin origin;
    write_file(dir / "pages" / "block.html",
               "<h1>{{host}}</h1><p>{{rule}}</p><p>{{client}}</p><p>{{url}}</p>\n");
    Hallpass proxy(dir,
                   rules_options("block_page: pages/block.html\n" + connect_ports(origin.port())));
    const std::string op = std::to_string(origin.port());

    SUBCASE("HTTP") {
        auto r = ask(proxy.port(), get("www.blocked.test", origin.port(), "/p?a=1&b=2"));
        REQUIRE(r);
        CHECK(r->status == 403);
        CHECK(r->header("x-hallpass-rule") == "block-test");
        CHECK(contains(r->header("content-type"), "text/html"));
        CHECK(r->body ==
              "<h1>www.blocked.test</h1><p>block-test</p><p>127.0.0.1</p><p>"
              "http://www.blocked.test:" +
                  op + "/p?a=1&amp;b=2</p>\n");
    }
    SUBCASE("a rule name that needs escaping") {
        auto r = ask(proxy.port(), get("weird.test", origin.port()));
        REQUIRE(r);
        CHECK(r->body ==
              "<h1>weird.test</h1><p>&lt;i&gt;odd &amp; name&lt;/i&gt;</p><p>127.0.0.1"
              "</p><p>http://weird.test:" +
                  op + "/</p>\n");
    }
    SUBCASE("CONNECT gets the same page") {
        auto r = ask(proxy.port(), connect_request("www.blocked.test:" + op));
        REQUIRE(r);
        CHECK(r->status == 403);
        CHECK(contains(r->body, "<h1>www.blocked.test</h1><p>block-test</p><p>127.0.0.1</p>"));
    }
    SUBCASE("HEAD: the head only") {
        RawClient c(proxy.port());
        c.send(get("www.blocked.test", origin.port(), "/", "HEAD"));
        auto r = c.read_final_response(5s, true);
        REQUIRE(r);
        CHECK(r->status == 403);
        CHECK(r->header("x-hallpass-rule") == "block-test");
        c.fill([](const std::string&) { return false; }, 200ms);
        CHECK(c.buffer().empty());
    }
    CHECK(origin.connections() == 0);
}

TEST_CASE("rules: a rule name cannot inject header fields into the block response") {
    TempDir dir;
    ScriptedOrigin origin;
    HallpassOptions o = rules_options();
    o.rules_yaml =
        "rules:\n  - name: \"evil\\r\\nX-Injected: 1\"\n    action: block\n"
        "    hosts: [site.test]\n";
    // Refusing such a name at load time is fine too; if it loads, the header must not split.
    write_file(dir / "probe.yaml", o.rules_yaml);
    auto check = run({hallpass_bin(), "--check", "-c", (dir / "probe.yaml").string()});
    if (check.exit_code != 0) {
        CHECK(check.exit_code == 1);
        CHECK(contains(check.err, "probe.yaml:2:"));
        return;
    }
    Hallpass proxy(dir, o);
    auto r = ask(proxy.port(), get("site.test", origin.port()));
    REQUIRE(r);
    CHECK(r->status == 403);
    CHECK_FALSE(r->has("x-injected"));
    CHECK(origin.connections() == 0);
}

TEST_CASE("rules: lists, url_regex, host_regex, ports and default: block through the proxy") {
    TempDir dir;
    ScriptedOrigin origin;
    const std::string op = std::to_string(origin.port());
    write_file(dir / "lists" / "ads.txt", "# ads\n0.0.0.0 ads.test\n");
    HallpassOptions o;
    o.hosts = {"site.test", "www.ads.test", "casino7.test", "example.org"};
    o.server_yaml = connect_ports(origin.port());
    o.rules_yaml =
        "default: block\n"
        "lists:\n"
        "  ads: { file: lists/ads.txt }\n"
        "rules:\n"
        "  - name: ads-list\n"
        "    action: block\n"
        "    lists: [ads]\n"
        "  - name: ads-path\n"
        "    action: block\n"
        "    url_regex: ['^http://[^/]+/ads/']\n"
        "  - name: casino\n"
        "    action: block\n"
        "    host_regex: ['^casino[0-9]*\\.']\n"
        "  - name: allow-tests\n"
        "    action: allow\n"
        "    domains: [test]\n"
        "    ports: [" +
        op + "]\n";
    Hallpass proxy(dir, o);

    struct Row {
        std::string request;
        int status;
        std::string rule;  // X-Hallpass-Rule; "*" for a block by the default (name unspecified)
    };
    const uint16_t other_port = free_port();
    const std::vector<Row> rows = {
        {get("site.test", origin.port(), "/ok"), 200, ""},
        {get("site.test", origin.port(), "/ads/banner.png"), 403, "ads-path"},
        {get("site.test", origin.port(), "/x/ads/"), 200, ""},
        {get("www.ads.test", origin.port(), "/"), 403, "ads-list"},
        {get("casino7.test", origin.port(), "/"), 403, "casino"},
        {get("site.test", other_port, "/"), 403, "*"},
        {get("example.org", origin.port(), "/"), 403, "*"},
        {connect_request("site.test:" + op), 200, ""},
        {connect_request("www.ads.test:" + op), 403, "ads-list"},
        {connect_request("casino7.test:" + op), 403, "casino"},
    };
    for (const Row& row : rows) {
        CAPTURE(row.request);
        bool is_connect = row.request.rfind("CONNECT ", 0) == 0;
        auto r = ask(proxy.port(), row.request, {}, is_connect);
        if (!r) {
            FAIL_CHECK("no response");
            continue;
        }
        CHECK(r->status == row.status);
        if (row.rule == "*")
            CHECK(r->has("x-hallpass-rule"));
        else if (row.rule.empty())
            CHECK_FALSE(r->has("x-hallpass-rule"));
        else
            CHECK(r->header("x-hallpass-rule") == row.rule);
    }
    std::this_thread::sleep_for(100ms);
    // Only the three allowed requests reached the origin (two HTTP, one tunnel).
    CHECK(origin.connections() <= 3);
    auto seen = origin.requests();
    REQUIRE(seen.size() == 2);
    CHECK(contains(seen[0], "GET /ok "));
    CHECK(contains(seen[1], "GET /x/ads/ "));
    CHECK(proxy.dns().names().empty());
}

TEST_CASE("rules: an IPv6 client address in clients:") {
    TempDir dir;
    ScriptedOrigin origin;
    HallpassOptions o = rules_options();
    o.listen = {"127.0.0.1:0", "[::1]:0"};
    o.rules_yaml = "rules:\n  - name: v6-client\n    action: block\n    clients: [\"::1/128\"]\n";
    Hallpass proxy(dir, o);

    RawClient v6(proxy.ports().at(1), "::1");
    v6.send(get("site.test", origin.port()));
    auto blocked = v6.read_final_response();
    REQUIRE(blocked);
    CHECK(blocked->status == 403);
    CHECK(blocked->header("x-hallpass-rule") == "v6-client");
    CHECK(contains(blocked->body, "::1"));
    CHECK(origin.connections() == 0);

    auto v4 = ask(proxy.ports().at(0), get("site.test", origin.port()));
    REQUIRE(v4);
    CHECK(v4->status == 200);
}
