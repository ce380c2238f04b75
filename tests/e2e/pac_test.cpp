// Devices that find the proxy by themselves: the proxy auto-config file hallpass generates from
// its pac: section, fetched over real sockets (any Host, as WPAD clients send it; on the proxy
// port and on a server.pac_listen port that serves nothing else), and evaluated by a real PAC
// engine (Debian's python3-pacparser) for several URLs and for clients that reached hallpass on
// different addresses. (Headless Chromium configured only with the PAC URL: browser_test.)
#include <doctest/doctest.h>

#include "harness.h"

using namespace hallpass::e2e;

namespace {

const char* const kPac =
    "pac:\n"
    "  direct_domains: [home.arpa, \"*.lan\", Printer.Example.]\n"
    "  direct_nets: [192.168.1.0/24, 10.9.0.7]\n";

// GET `path` from 127.0.0.1... `addr`:`port` with `host` as Host (none when empty).
std::optional<HttpResponse> get(const std::string& addr, uint16_t port, const std::string& path,
                                const std::string& host) {
    RawClient c(port, addr);
    c.send("GET " + path + " HTTP/1.1\r\n" + (host.empty() ? "" : "Host: " + host + "\r\n") +
           "\r\n");
    return c.read_response();
}

// The script's answers for `urls`, one line each: "URL -> ANSWER", from pacparser.
std::string evaluate(const TempDir& dir, const std::string& script,
                     const std::vector<std::string>& urls) {
    write_file(dir / "proxy.pac", script);
    std::string py =
        "import sys, pacparser, urllib.parse\n"
        "pacparser.init()\n"
        "pacparser.parse_pac_file(sys.argv[1])\n"
        "for u in sys.argv[2:]:\n"
        "    print(u, '->', pacparser.find_proxy(u, urllib.parse.urlsplit(u).hostname))\n";
    std::vector<std::string> argv = {"/usr/bin/python3", "-c", py, (dir / "proxy.pac").string()};
    argv.insert(argv.end(), urls.begin(), urls.end());
    auto r = run(argv, 30s);
    INFO(r.err);
    REQUIRE_MESSAGE(r.exit_code == 0, "pacparser failed (apt-get install python3-pacparser)");
    return r.out;
}

}  // namespace

TEST_CASE("pac: /proxy.pac and /wpad.dat on the proxy port, whatever the Host") {
    TempDir dir;
    HallpassOptions o;
    o.listen = {"127.0.0.1:0", "127.0.0.2:0"};
    o.rules_yaml = kPac;
    Hallpass proxy(dir, o);
    const uint16_t port = proxy.ports()[0];
    for (const char* path : {"/proxy.pac", "/wpad.dat", "/wpad.dat?x=1"}) {
        for (const std::string host : {"", "wpad.home.arpa", "127.0.0.1", "anything.example"}) {
            CAPTURE(path);
            CAPTURE(host);
            auto r = get("127.0.0.1", port, path, host);
            REQUIRE(r);
            CHECK(r->status == 200);
            CHECK(r->header("content-type") == "application/x-ns-proxy-autoconfig");
            CHECK(contains(r->body, "function FindProxyForURL(url, host)"));
            CHECK(contains(r->body, "\"PROXY 127.0.0.1:" + std::to_string(port) + "\""));
        }
    }
    // A HEAD gets the head only; a keep-alive client may ask again on the same connection.
    RawClient c(port);
    c.send(
        "HEAD /proxy.pac HTTP/1.1\r\nHost: wpad\r\n\r\nGET /wpad.dat HTTP/1.1\r\nHost: "
        "wpad\r\n\r\n");
    auto head = c.read_response(5s, true);
    REQUIRE(head);
    CHECK(head->status == 200);
    CHECK(head->body.empty());
    auto again = c.read_response();
    REQUIRE(again);
    CHECK(again->status == 200);
    CHECK(contains(again->body, "FindProxyForURL"));
    // Other paths on hallpass's own address are still the info page or 404, never the file.
    auto other = get("127.0.0.1", port, "/proxy.pac.bak", "127.0.0.1");
    REQUIRE(other);
    CHECK(other->status == 404);
    // The access log records the answers as hallpass's own.
    CHECK(proxy.wait_for_log("/proxy.pac"));
}

TEST_CASE("pac: a real PAC engine sends the LAN DIRECT and everything else to hallpass only") {
    TempDir dir;
    HallpassOptions o;
    o.listen = {"127.0.0.1:0", "127.0.0.2:0"};
    o.rules_yaml = kPac;
    Hallpass proxy(dir, o);
    const uint16_t p1 = proxy.ports()[0], p2 = proxy.ports()[1];
    auto r1 = get("127.0.0.1", p1, "/proxy.pac", "wpad");
    auto r2 = get("127.0.0.2", p2, "/wpad.dat", "wpad");
    REQUIRE(r1);
    REQUIRE(r2);
    const std::vector<std::string> urls = {
        "http://nas.home.arpa/", "https://home.arpa/x",     "http://www.nothome.arpa/",
        "http://tv.lan:8080/",   "http://printer.example/", "http://sub.printer.example/",
        "http://example/",       "http://192.168.1.20/",    "http://192.168.2.20/",
        "http://10.9.0.7/",      "http://10.9.0.8/",        "https://www.youtube.com/",
        "http://NAS.HOME.ARPA./"};
    const std::string proxy1 = "PROXY 127.0.0.1:" + std::to_string(p1);
    const std::string want1 =
        "http://nas.home.arpa/ -> DIRECT\n"
        "https://home.arpa/x -> DIRECT\n"
        "http://www.nothome.arpa/ -> " +
        proxy1 +
        "\n"
        "http://tv.lan:8080/ -> DIRECT\n"
        "http://printer.example/ -> DIRECT\n"
        "http://sub.printer.example/ -> DIRECT\n"
        "http://example/ -> " +
        proxy1 +
        "\n"
        "http://192.168.1.20/ -> DIRECT\n"
        "http://192.168.2.20/ -> " +
        proxy1 +
        "\n"
        "http://10.9.0.7/ -> DIRECT\n"
        "http://10.9.0.8/ -> " +
        proxy1 +
        "\n"
        "https://www.youtube.com/ -> " +
        proxy1 +
        "\n"
        "http://NAS.HOME.ARPA./ -> DIRECT\n";
    CHECK(evaluate(dir, r1->body, urls) == want1);
    // A client that reached hallpass on another address is told that address (and its port).
    std::string want2 = want1;
    const std::string proxy2 = "PROXY 127.0.0.2:" + std::to_string(p2);
    for (size_t at; (at = want2.find(proxy1)) != std::string::npos;) {
        want2.replace(at, proxy1.size(), proxy2);
    }
    CHECK(evaluate(dir, r2->body, urls) == want2);
}

TEST_CASE("pac: no DIRECT fallback unless fallback_direct") {
    TempDir dir;
    HallpassOptions o;
    o.rules_yaml = "pac:\n  fallback_direct: true\n";
    Hallpass proxy(dir, o);
    auto r = get("127.0.0.1", proxy.port(), "/proxy.pac", "");
    REQUIRE(r);
    CHECK(evaluate(dir, r->body, {"http://example.com/"}) ==
          "http://example.com/ -> PROXY 127.0.0.1:" + std::to_string(proxy.port()) + "; DIRECT\n");
    // Without a pac: section: everything to hallpass, nothing else.
    TempDir dir2;
    Hallpass plain(dir2);
    auto p = get("127.0.0.1", plain.port(), "/wpad.dat", "wpad");
    REQUIRE(p);
    CHECK(evaluate(dir2, p->body, {"http://printer.lan/", "http://192.168.1.1/"}) ==
          "http://printer.lan/ -> PROXY 127.0.0.1:" + std::to_string(plain.port()) +
              "\nhttp://192.168.1.1/ -> PROXY 127.0.0.1:" + std::to_string(plain.port()) + "\n");
}

TEST_CASE("pac: server.pac_listen serves the file and nothing else") {
    TempDir dir;
    ScriptedOrigin origin;
    HallpassOptions o;
    o.server_yaml = "pac_listen: [\"127.0.0.3:0\"]";
    o.rules_yaml = kPac;
    Hallpass proxy(dir, o);
    REQUIRE(proxy.wait_for_log("proxy auto-config on http://127.0.0.3:"));
    const std::string line = lines_with(proxy.stderr_text(), "proxy auto-config on http://")[0];
    const size_t at = line.find("127.0.0.3:") + 10;
    const auto pac_port = static_cast<uint16_t>(std::stoi(line.substr(at)));
    auto r = get("127.0.0.3", pac_port, "/wpad.dat", "wpad.home.arpa");
    REQUIRE(r);
    CHECK(r->status == 200);
    // The proxy listens on 127.0.0.1 only: that is where the file sends clients.
    CHECK(contains(r->body, "\"PROXY 127.0.0.1:" + std::to_string(proxy.port()) + "\""));
    // Nothing is proxied there, and nothing else is served.
    auto relay =
        get("127.0.0.3", pac_port, "http://127.0.0.1:" + std::to_string(origin.port()) + "/",
            "127.0.0.1:" + std::to_string(origin.port()));
    REQUIRE(relay);
    CHECK(relay->status == 404);
    auto page = get("127.0.0.3", pac_port, "/", "127.0.0.3");
    REQUIRE(page);
    CHECK(page->status == 404);
    RawClient c(pac_port, "127.0.0.3");
    c.send("CONNECT 127.0.0.1:" + std::to_string(origin.port()) + " HTTP/1.1\r\nHost: x\r\n\r\n");
    auto connect = c.read_response();
    REQUIRE(connect);
    CHECK(connect->status == 404);
    CHECK(origin.connections() == 0);
}

TEST_CASE("pac: a bad pac: section is a config error with its position") {
    TempDir dir;
    const std::pair<const char*, const char*> cases[] = {
        {"pac:\n  direct_nets: [\"fd00::/8\"]\n", "IPv4 networks only"},
        {"pac:\n  direct_nets: [192.168.1.1/24]\n", "pac.direct_nets"},
        {"pac:\n  direct_domian: [lan]\n", "did you mean \"direct_domains\""},
        {"pac:\n  direct_domains: [\"a b\"]\n", "is not a host name"},
        {"pac:\n  fallback_direct: maybe\n", "must be true or false"},
    };
    for (const auto& [yaml, message] : cases) {
        CAPTURE(yaml);
        write_file(dir / "rules.yaml", yaml);
        auto r = run({hallpass_bin(), "--check", "-c", (dir / "rules.yaml").string()});
        CHECK(r.exit_code == 1);
        CHECK_MESSAGE(contains(r.err, "rules.yaml:"), r.err);
        CHECK_MESSAGE(contains(r.err, message), r.err);
    }
}
