// admin: routing by method and raw target (the admin port is not a proxy), content types, and a
// dashboard page that references nothing outside itself.
#include "hallpass/observe/admin.h"

#include <doctest/doctest.h>

#include "hallpass/http/http_parser.h"
#include "hallpass/observe/stats.h"
#include "json_check.h"

using namespace hallpass;

namespace {

Stats& stats() {
    static Stats s({.workers = 1,
                    .version = "9.9.9",
                    .rules_file = "rules.yaml",
                    .top_n = 20,
                    .client_connections = nullptr});
    return s;
}

}  // namespace

TEST_CASE("admin: routes") {
    struct Row {
        const char* method;
        const char* target;
        int status;
        const char* content_type;
    };
    const Row rows[] = {
        {"GET", "/", 200, "text/html; charset=utf-8"},
        {"HEAD", "/", 200, "text/html; charset=utf-8"},
        {"GET", "/?refresh=1", 200, "text/html; charset=utf-8"},
        {"GET", "/metrics", 200, "text/plain; version=0.0.4; charset=utf-8"},
        {"GET", "/stats.json", 200, "application/json"},
        {"GET", "/nope", 404, ""},
        {"GET", "/metrics/", 404, ""},
        {"GET", "http://example.com/", 404, ""},
        {"GET", "http://127.0.0.1:12346/metrics", 404, ""},
        {"CONNECT", "example.com:443", 404, ""},
        {"GET", "*", 404, ""},
        {"POST", "/metrics", 405, ""},
        {"DELETE", "/", 405, ""},
    };
    for (const Row& row : rows) {
        SUBCASE((std::string(row.method) + " " + row.target).c_str()) {
            AdminResponse r = AdminServer::answer(row.method, row.target, stats());
            CHECK(r.status == row.status);
            CHECK(r.content_type == row.content_type);
        }
    }
}

TEST_CASE("admin: /stats.json and /metrics bodies") {
    CHECK(json_check::valid(AdminServer::answer("GET", "/stats.json", stats()).body));
    CHECK(AdminServer::answer("GET", "/metrics", stats())
              .body.find("hallpass_build_info{version=\"9.9.9\"} 1\n") != std::string::npos);
}

TEST_CASE("admin: the dashboard is self-contained and has the elements the e2e test reads") {
    std::string html(dashboard_html());
    CHECK(html.starts_with("<!doctype html>"));
    CHECK(html.find("id=\"traffic-chart\"") != std::string::npos);
    CHECK(html.find("id=\"top-hosts\"") != std::string::npos);
    CHECK(html.find("fetch(\"/stats.json\"") != std::string::npos);
    // No external resource: no src= or href= attribute, no URL with a scheme other than the SVG
    // namespace name (an identifier, never fetched).
    CHECK(html.find(" src=") == std::string::npos);
    CHECK(html.find(" href=") == std::string::npos);
    CHECK(html.find("@import") == std::string::npos);
    for (const char* scheme : {"http://", "https://", "//cdn"}) {
        for (size_t at = html.find(scheme); at != std::string::npos;
             at = html.find(scheme, at + 1)) {
            std::string url = html.substr(at, html.find_first_of("\"' )", at) - at);
            CHECK(url == "http://www.w3.org/2000/svg");
        }
    }
}

TEST_CASE("admin: answer bytes frame every response; HEAD has the length and no body") {
    AdminResponse r{200, "application/json", "{}"};
    CHECK(admin_response_bytes(r, false, false) ==
          "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nCache-Control: no-store\r\n"
          "X-Content-Type-Options: nosniff\r\nContent-Length: 2\r\n\r\n{}");
    std::string head = admin_response_bytes(r, true, true);
    CHECK(head.ends_with("Content-Length: 2\r\nConnection: close\r\n\r\n"));
    std::string allow = admin_response_bytes(AdminResponse{405, "", "no\n"}, false, true);
    CHECK(allow.starts_with("HTTP/1.1 405 Method Not Allowed\r\nContent-Type: text/plain"));
    CHECK(allow.find("\r\nAllow: GET, HEAD\r\n") != std::string::npos);
    std::string page =
        admin_response_bytes(AdminResponse{200, "text/html; charset=utf-8", "x"}, false, false);
    CHECK(page.find("\r\nContent-Security-Policy: default-src 'none';") != std::string::npos);
}

TEST_CASE("admin: a Host it does not answer to gets 421 for its paths, 404 for proxy targets") {
    AdminHosts hosts;
    hosts.own_addresses.add("127.0.0.1");
    hosts.own_addresses.compile();
    hosts.names = {"stats.lan"};
    auto head = [](std::string target, std::string host) {
        RequestHead h;
        h.method = "GET";
        h.target = std::move(target);
        if (!host.empty()) h.headers.push_back({"Host", std::move(host)});
        return h;
    };
    CHECK(AdminServer::respond(head("/metrics", "127.0.0.1:9"), hosts, stats()).status == 200);
    CHECK(AdminServer::respond(head("/metrics", "Stats.Lan"), hosts, stats()).status == 200);
    CHECK(AdminServer::respond(head("/metrics", "evil.test"), hosts, stats()).status == 421);
    CHECK(AdminServer::respond(head("/metrics", ""), hosts, stats()).status == 421);
    CHECK(AdminServer::respond(head("http://x/metrics", "evil.test"), hosts, stats()).status ==
          404);
}
