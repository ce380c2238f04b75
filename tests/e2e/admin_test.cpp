// The admin endpoint of a running hallpass: /metrics passes the exposition-format checker and its
// counters move by exactly what went through the proxy; /stats.json parses and names the top
// hosts; anything else is 404 (the admin port is not a proxy), and the proxy refuses to reach it;
// reloads are counted; `admin: off` leaves no listener; a busy admin port stops the start-up; and
// headless Chromium renders the dashboard (top hosts in the DOM, bars drawn in the chart).
#include <doctest/doctest.h>

#include <cmath>
#include <set>

#include "../unit/exposition_check.h"
#include "../unit/json_check.h"
#include "harness.h"

using namespace hallpass::e2e;

namespace {

const char* const kChromium = "/usr/bin/chromium";

const char* const kRules = R"(default: allow
rules:
  - name: no-ads
    action: block
    domains: [ads.test]
)";

HallpassOptions admin_options(uint16_t connect_port) {
    HallpassOptions o;
    o.hosts = {"site.test", "ads.test", "other.test"};
    o.rules_yaml = kRules;
    o.admin = "127.0.0.1:0";
    o.server_yaml = "connect_ports: [" + std::to_string(connect_port) + "]";
    return o;
}

// GET http://127.0.0.1:PORT/path directly (no proxy); the body, "" on failure.
std::string admin_get(uint16_t port, const std::string& path) {
    auto r = curl(0, {"http://127.0.0.1:" + std::to_string(port) + path});
    return r.exit_code == 0 ? r.out : std::string();
}

struct Scrape {
    std::string text;
    std::vector<exposition::Sample> samples;
    std::vector<std::string> problems;
    double value(const std::string& name,
                 const std::map<std::string, std::string>& labels = {}) const {
        double v = exposition::value_of(samples, name, labels);
        return std::isnan(v) ? 0 : v;  // a labelled series that has not appeared yet is 0
    }
};

Scrape scrape(uint16_t admin_port) {
    Scrape s;
    s.text = admin_get(admin_port, "/metrics");
    s.problems = exposition::check(s.text, &s.samples);
    if (s.text.empty()) s.problems.push_back("empty /metrics");
    return s;
}

void require_valid(const Scrape& s) {
    INFO(s.text);
    for (const auto& p : s.problems) FAIL_CHECK(p);
    REQUIRE(s.problems.empty());
}

int proxied_status(uint16_t proxy_port, const std::string& url) {
    auto r = curl(proxy_port, {"-o", "/dev/null", "-w", "%{http_code}", url});
    return std::atoi(r.out.c_str());
}

// The traffic every test here makes: 5 relayed GETs to site.test (1 KiB each), 2 blocked GETs
// to ads.test, 1 CONNECT tunnel to site.test carrying one GET.
void make_traffic(const Hallpass& proxy, const Nginx& origin) {
    for (int i = 0; i < 5; ++i)
        CHECK(proxied_status(proxy.port(), origin.url("/1k", "site.test")) == 200);
    for (int i = 0; i < 2; ++i)
        CHECK(proxied_status(proxy.port(), origin.url("/", "ads.test")) == 403);
    auto tunnel = curl(proxy.port(), {"-p", "-o", "/dev/null", "-w", "%{http_connect} %{http_code}",
                                      origin.url("/1k", "site.test")});
    CHECK(tunnel.out == "200 200");
}

// Sends raw bytes to 127.0.0.1:port and returns the status of the answer (0: none).
int raw_status(uint16_t port, const std::string& request) {
    RawClient c(port);
    c.send(request);
    auto r = c.read_final_response(5s, request.rfind("HEAD ", 0) == 0);
    return r ? r->status : 0;
}

// TCP ports process `pid` listens on (its socket inodes matched against /proc/net/tcp{,6}).
std::set<uint16_t> listening_ports(pid_t pid) {
    std::set<std::string> inodes;
    fs::path fd_dir = "/proc/" + std::to_string(pid) + "/fd";
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(fd_dir, ec)) {
        std::string target = fs::read_symlink(entry.path(), ec).string();
        if (target.rfind("socket:[", 0) == 0) inodes.insert(target.substr(8, target.size() - 9));
    }
    std::set<uint16_t> ports;
    for (const char* table : {"/proc/net/tcp", "/proc/net/tcp6"}) {
        std::istringstream in(read_file(table));
        std::string line;
        std::getline(in, line);  // header
        while (std::getline(in, line)) {
            std::istringstream f(line);
            std::string sl, local, remote, state, queues, timer, retr, uid, timeout, inode;
            f >> sl >> local >> remote >> state >> queues >> timer >> retr >> uid >> timeout >>
                inode;
            if (state != "0A" || !inodes.count(inode)) continue;  // 0A: LISTEN
            ports.insert(
                static_cast<uint16_t>(std::stoul(local.substr(local.rfind(':') + 1), nullptr, 16)));
        }
    }
    return ports;
}

// The text between `open` (which must occur) and the next `close` after it; "" if absent.
std::string between(const std::string& text, const std::string& open, const std::string& close) {
    size_t at = text.find(open);
    if (at == std::string::npos) return {};
    at += open.size();
    size_t end = text.find(close, at);
    return end == std::string::npos ? std::string() : text.substr(at, end - at);
}

RunResult chromium(const TempDir& dir, const std::vector<std::string>& mode,
                   const std::string& url) {
    static int profile = 0;
    fs::path profile_dir = dir / ("chromium-profile-" + std::to_string(profile++));
    fs::create_directories(profile_dir);
    std::vector<std::string> argv = {
        "env", "HOME=" + dir.path().string(), kChromium, "--headless", "--no-sandbox",
        "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
        "--no-proxy-server",  // the admin port is fetched directly
        // Enough for the first fetch and drawing, before the 5 s refresh.
        "--virtual-time-budget=3000", "--user-data-dir=" + profile_dir.string()};
    argv.insert(argv.end(), mode.begin(), mode.end());
    argv.push_back(url);
    return run(argv, 60s, /*own_process_group=*/true);
}

}  // namespace

TEST_CASE("admin: /metrics is valid exposition format and its counters move with the traffic") {
    TempDir dir;
    Nginx origin(dir);
    origin.put("1k", std::string(1024, 'x'));
    Hallpass proxy(dir, admin_options(origin.port()));
    REQUIRE(proxy.admin_port() != 0);
    CHECK(proxy.admin_port() != proxy.port());

    Scrape before = scrape(proxy.admin_port());
    require_valid(before);
    CHECK(before.value("hallpass_build_info", {{"version", "0.1.0"}}) == 1);

    make_traffic(proxy, origin);

    // Plain counters are live; the rule table is published by each worker once a second.
    Scrape after;
    bool moved = wait_until(
        [&] {
            after = scrape(proxy.admin_port());
            return after.value("hallpass_rule_hits_total", {{"rule", "default"}}) -
                       before.value("hallpass_rule_hits_total", {{"rule", "default"}}) >=
                   6;
        },
        5s);
    require_valid(after);
    INFO(after.text);
    CHECK(moved);
    auto delta = [&](const std::string& name,
                     const std::map<std::string, std::string>& labels = {}) {
        return after.value(name, labels) - before.value(name, labels);
    };
    CHECK(delta("hallpass_requests_total", {{"kind", "relayed"}}) == 5);
    CHECK(delta("hallpass_requests_total", {{"kind", "blocked"}}) == 2);
    CHECK(delta("hallpass_requests_total", {{"kind", "tunnel"}}) == 1);
    CHECK(delta("hallpass_requests_total", {{"kind", "local"}}) == 0);
    CHECK(delta("hallpass_blocked_total") == 2);
    CHECK(delta("hallpass_rule_hits_total", {{"rule", "no-ads"}}) == 2);
    CHECK(delta("hallpass_rule_hits_total", {{"rule", "default"}}) == 6);
    CHECK(delta("hallpass_responses_total", {{"code", "2xx"}}) == 6);
    CHECK(delta("hallpass_responses_total", {{"code", "4xx"}}) == 2);
    CHECK(delta("hallpass_request_duration_seconds_count") == 8);
    CHECK(delta("hallpass_request_duration_seconds_bucket", {{"le", "+Inf"}}) == 8);
    // Six 1 KiB bodies went to the client (five relayed, one inside the tunnel), plus heads.
    CHECK(delta("hallpass_bytes_total", {{"direction", "out"}}) > 6 * 1024);
    CHECK(delta("hallpass_bytes_total", {{"direction", "in"}}) > 0);
    // site.test and ads.test resolve from the hosts file: cache hits, no nameserver query.
    // (Blocked requests never resolve.)
    // Requests on a pooled upstream connection do not resolve at all.
    CHECK(delta("hallpass_dns_cache_hits_total") >= 1);
    CHECK(delta("hallpass_dns_cache_hits_total") <= 6);
    CHECK(delta("hallpass_dns_cache_misses_total") == 0);
    CHECK(after.value("hallpass_uptime_seconds") >= before.value("hallpass_uptime_seconds"));
    CHECK(after.value("hallpass_tunnels") == 0);

    // The response headers a scraper relies on.
    auto head = curl(0, {"-sS", "-o", "/dev/null", "-D", "-",
                         "http://127.0.0.1:" + std::to_string(proxy.admin_port()) + "/metrics"});
    CHECK(contains(head.out, "Content-Type: text/plain; version=0.0.4; charset=utf-8"));
}

TEST_CASE("admin: /stats.json parses and names the top hosts, blocked hosts and clients") {
    TempDir dir;
    Nginx origin(dir);
    origin.put("1k", std::string(1024, 'x'));
    Hallpass proxy(dir, admin_options(origin.port()));
    make_traffic(proxy, origin);

    std::string json;
    bool published = wait_until(
        [&] {
            json = admin_get(proxy.admin_port(), "/stats.json");
            return contains(json, "\"top_hosts\":[{\"key\":\"site.test\",\"count\":6,");
        },
        5s);
    INFO(json);
    CHECK(published);
    CHECK(json_check::valid(json));
    CHECK(contains(json, "\"top_blocked_hosts\":[{\"key\":\"ads.test\",\"count\":2,"));
    CHECK(contains(json, "\"top_clients\":[{\"key\":\"127.0.0.1\",\"count\":8,"));
    CHECK(contains(json, "\"requests\":{\"total\":8,\"relayed\":5,\"tunnel\":1,\"blocked\":2,"));
    CHECK(contains(json, "\"rules_file\":\"" + proxy.config_path().string() + "\""));
    // The minute series holds the 8 requests (in one or, across a minute boundary, two minutes).
    std::string minutes = between(json, "\"minutes\":[", "]}");
    long total = 0;
    for (size_t at = minutes.find('['); at != std::string::npos; at = minutes.find('[', at + 1)) {
        // [minute,requests,blocked]
        size_t first_comma = minutes.find(',', at);
        total += std::stol(minutes.substr(first_comma + 1));
    }
    CHECK(total == 8);
}

TEST_CASE("admin: only its three paths answer; it is not a proxy and the proxy will not reach it") {
    TempDir dir;
    Nginx origin(dir);
    Hallpass proxy(dir, admin_options(origin.port()));
    const uint16_t admin = proxy.admin_port();
    const std::string authority = "127.0.0.1:" + std::to_string(admin);

    CHECK(raw_status(admin, "GET /nope HTTP/1.1\r\nHost: " + authority + "\r\n\r\n") == 404);
    CHECK(raw_status(admin, "GET /metrics HTTP/1.1\r\nHost: " + authority + "\r\n\r\n") == 200);
    {
        // HEAD: the page's length, no body (the next response on the connection comes clean).
        RawClient c(admin);
        c.send("HEAD / HTTP/1.1\r\nHost: " + authority +
               "\r\n\r\nGET /nope HTTP/1.1\r\nHost: " + authority + "\r\n\r\n");
        auto head = c.read_final_response(5s, /*head_request=*/true);
        REQUIRE(head);
        CHECK(head->status == 200);
        CHECK(std::stoul(head->header("content-length")) > 1000);
        auto next = c.read_final_response(5s);
        REQUIRE(next);
        CHECK(next->status == 404);
    }
    CHECK(raw_status(admin, "POST /metrics HTTP/1.1\r\nHost: " + authority +
                                "\r\nContent-Length: 0\r\n\r\n") == 405);
    // Proxy-shaped requests to the admin port: never relayed.
    std::string origin_url = origin.url("/");
    CHECK(raw_status(admin, "GET " + origin_url + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n") == 404);
    CHECK(raw_status(admin, "GET http://" + authority + "/metrics HTTP/1.1\r\nHost: " + authority +
                                "\r\n\r\n") == 404);
    CHECK(raw_status(admin, "CONNECT " + origin.url("").substr(7) +
                                " HTTP/1.1\r\nHost: x\r\n\r\n") == 404);
    CHECK(origin.accesses().empty());
    // Through the proxy, the admin port is one of hallpass's own listeners: refused.
    CHECK(proxied_status(proxy.port(), "http://" + authority + "/metrics") == 403);
    CHECK(proxy.wait_for_log("refusing to connect to hallpass itself"));
}

TEST_CASE("admin: reloads are counted with their last result") {
    TempDir dir;
    Nginx origin(dir);
    Hallpass proxy(dir, admin_options(origin.port()));
    proxy.reload();
    REQUIRE(proxy.wait_for_log("reload ok"));
    proxy.write_rules("rules: [\n");
    proxy.reload();
    REQUIRE(proxy.wait_for_log("reload failed"));
    Scrape s = scrape(proxy.admin_port());
    require_valid(s);
    CHECK(s.value("hallpass_reloads_total", {{"result", "ok"}}) == 1);
    CHECK(s.value("hallpass_reloads_total", {{"result", "failed"}}) == 1);
    CHECK(s.value("hallpass_last_reload_success") == 0);
    CHECK(s.value("hallpass_last_reload_timestamp_seconds") > 1e9);
    CHECK(contains(admin_get(proxy.admin_port(), "/stats.json"), "yaml syntax error"));
}

TEST_CASE("admin: connections refused at accept are counted, though no request was read") {
    TempDir dir;
    Nginx origin(dir);
    HallpassOptions o = admin_options(origin.port());
    o.server_yaml += "\nallowed_clients: [127.0.0.1/32]";
    Hallpass proxy(dir, o);
    auto r = curl(proxy.port(), {"--interface", "127.0.0.2", "-o", "/dev/null", "-w",
                                 "%{http_code}", origin.url("/", "site.test")});
    CHECK(r.out == "403");
    Scrape s = scrape(proxy.admin_port());
    require_valid(s);
    CHECK(s.value("hallpass_refused_connections_total", {{"reason", "client_not_allowed"}}) == 1);
    CHECK(s.value("hallpass_refused_connections_total", {{"reason", "overloaded"}}) == 0);
    CHECK(s.value("hallpass_requests_total", {{"kind", "local"}}) == 0);
}

TEST_CASE("admin: `off` leaves only the proxy listening; a busy admin port stops the start") {
    TempDir dir;
    {
        HallpassOptions off;
        off.admin = "off";
        Hallpass proxy(dir, off);
        CHECK(proxy.admin_port() == 0);
        CHECK_FALSE(proxy.wait_for_log("admin endpoint", 300ms));
        CHECK(listening_ports(proxy.pid()) == std::set<uint16_t>{proxy.port()});
    }
    {
        HallpassOptions on;
        on.admin = "127.0.0.1:0";
        Hallpass proxy(dir, on);
        CHECK(listening_ports(proxy.pid()) == std::set<uint16_t>{proxy.port(), proxy.admin_port()});
    }
    {
        // Someone else holds the admin port: hallpass says so and does not start.
        Nginx busy(dir);
        HallpassOptions clash;
        clash.admin = "127.0.0.1:" + std::to_string(busy.port());
        std::string error;
        try {
            Hallpass proxy(dir, clash);
        } catch (const std::exception& e) {
            error = e.what();
        }
        INFO(error);
        CHECK(contains(error, "cannot listen on 127.0.0.1:" + std::to_string(busy.port()) +
                                  " (admin): Address already in use"));
    }
}

TEST_CASE("admin: headless Chromium renders the dashboard with the top hosts and a drawn chart") {
    REQUIRE_MESSAGE(fs::exists(kChromium), "chromium is not installed (scripts/test installs it)");
    TempDir dir;
    Nginx origin(dir);
    origin.put("1k", std::string(1024, 'x'));
    Hallpass proxy(dir, admin_options(origin.port()));
    make_traffic(proxy, origin);
    for (int i = 0; i < 3; ++i)
        CHECK(proxied_status(proxy.port(), origin.url("/1k", "other.test")) == 200);
    REQUIRE(wait_until(
        [&] {
            return contains(admin_get(proxy.admin_port(), "/stats.json"), "\"key\":\"other.test\"");
        },
        5s));
    const std::string url = "http://127.0.0.1:" + std::to_string(proxy.admin_port()) + "/";

    auto dom = chromium(dir, {"--dump-dom"}, url);
    INFO("chromium stderr (tail): " << dom.err.substr(dom.err.size() > 2000 ? dom.err.size() - 2000
                                                                            : 0));
    INFO("dom: " << dom.out);
    CHECK_FALSE(dom.timed_out);
    CHECK(dom.exit_code == 0);
    // The top-hosts list, in order, as text the script put there.
    std::string hosts = between(dom.out, "<ol class=\"bars\" id=\"top-hosts\">", "</ol>");
    auto site = hosts.find(">site.test</span>");
    auto other = hosts.find(">other.test</span>");
    CHECK(site != std::string::npos);
    CHECK(other != std::string::npos);
    CHECK(site < other);  // 6 requests before 3
    std::string blocked = between(dom.out, "<ol class=\"bars\" id=\"top-blocked\">", "</ol>");
    CHECK(contains(blocked, ">ads.test</span>"));
    CHECK(contains(dom.out, ">no-ads</span>"));
    CHECK(contains(dom.out, "<b id=\"version\">0.1.0</b>"));
    // The chart drew: the script's own count of minutes with data, and the bars themselves.
    std::string chart_tag = between(dom.out, "<svg id=\"traffic-chart\"", ">");
    std::string chart = between(dom.out, "<svg id=\"traffic-chart\"", "</svg>");
    std::string points = between(chart_tag, "data-points=\"", "\"");
    REQUIRE_FALSE(points.empty());
    CHECK(std::stoi(points) >= 1);
    CHECK(contains(chart_tag, "data-requests=\"11\""));
    CHECK(count_of(chart, "class=\"bar-requests\"") >= 1);
    CHECK(count_of(chart, "class=\"bar-blocked\"") >= 1);
    CHECK(count_of(chart, "<text") >= 5);                     // axis labels
    CHECK(contains(dom.out, "<span id=\"status\"></span>"));  // no fetch error shown

    fs::path shot = artifacts_dir() / "admin_dashboard.png";
    fs::remove(shot);
    auto r = chromium(
        dir, {"--screenshot=" + shot.string(), "--window-size=1280,1100", "--hide-scrollbars"},
        url);
    CHECK(r.exit_code == 0);
    std::string png = read_file(shot);
    CHECK(png.substr(0, 8) == "\x89PNG\r\n\x1a\n");
    CHECK(png.size() > 20'000);  // a drawn page, not a blank one
}

TEST_CASE("admin: the dashboard's recent-blocks feed, device views, group names and plain labels") {
    REQUIRE_MESSAGE(fs::exists(kChromium), "chromium is not installed (scripts/test installs it)");
    TempDir dir;
    Nginx origin(dir);
    origin.put("1k", std::string(1024, 'x'));
    HallpassOptions o = admin_options(origin.port());
    o.rules_yaml = R"(groups:
  kids: [127.0.0.1]
rules:
  - name: no-ads
    action: block
    domains: [ads.test]
    message: "Adverts are blocked at home."
  - name: kids-no-other
    action: block
    clients: kids
    hosts: [other.test]
    message: "Ask a parent first."
)";
    Hallpass proxy(dir, o);
    CHECK(proxied_status(proxy.port(), origin.url("/1k", "site.test")) == 200);
    CHECK(proxied_status(proxy.port(), origin.url("/", "other.test")) == 403);
    CHECK(proxied_status(proxy.port(), origin.url("/", "ads.test")) == 403);
    auto grown_up = curl(proxy.port(), {"--interface", "127.0.0.2", "-o", "/dev/null", "-w",
                                        "%{http_code}", origin.url("/", "ads.test")});
    CHECK(grown_up.out == "403");
    // A site that cannot be reached: an error the dashboard names in plain words.
    CHECK(proxied_status(proxy.port(), "http://site.test:" + std::to_string(free_port()) + "/") ==
          502);
    REQUIRE(wait_until(
        [&] {
            const std::string j = admin_get(proxy.admin_port(), "/stats.json");
            return contains(j, "\"bad_gateway\"") && count_of(j, "\"rule\":\"no-ads\"") >= 2;
        },
        5s));
    const std::string url = "http://127.0.0.1:" + std::to_string(proxy.admin_port()) + "/";

    auto dom = chromium(dir, {"--dump-dom"}, url);
    INFO("dom: " << dom.out);
    REQUIRE(dom.exit_code == 0);
    const std::string feed = between(dom.out, "<tbody id=\"recent-blocks\">", "</tbody>");
    CHECK(count_of(feed, "<tr>") == 3);
    CHECK(contains(feed,
                   "<td class=\"pick\">kids: 127.0.0.1</td><td>other.test</td>"
                   "<td>kids-no-other</td><td>Ask a parent first.</td>"));
    CHECK(contains(feed,
                   "<td class=\"pick\">127.0.0.2</td><td>ads.test</td><td>no-ads</td>"
                   "<td>Adverts are blocked at home.</td>"));
    const std::string devices = between(dom.out, "<ol class=\"bars\" id=\"top-clients\">", "</ol>");
    CHECK(contains(devices, ">kids: 127.0.0.1</span>"));
    CHECK(contains(devices, ">127.0.0.2</span>"));
    const std::string problems = between(dom.out, "<ol class=\"bars\" id=\"errors\">", "</ol>");
    CHECK(contains(problems, ">sites that could not be reached</span>"));
    // Plain labels only: none of the machine words of /stats.json.
    const std::string page = between(dom.out, "<main>", "</main>");
    for (const char* word : {"bad_gateway", "local answers", "tunnels done", "upstream conns"}) {
        CAPTURE(word);
        CHECK_FALSE(contains(page, word));
    }
    // One device's view: only its blocks.
    auto one = chromium(dir, {"--dump-dom"}, url + "#device=127.0.0.2");
    const std::string its = between(one.out, "<tbody id=\"recent-blocks\">", "</tbody>");
    CHECK(count_of(its, "<tr>") == 1);
    CHECK(contains(its, "<td>ads.test</td>"));
    CHECK(contains(one.out, "<span id=\"device-shown\">127.0.0.2</span>"));

    fs::path shot = artifacts_dir() / "admin_dashboard_family.png";
    fs::remove(shot);
    auto r = chromium(
        dir, {"--screenshot=" + shot.string(), "--window-size=1280,1400", "--hide-scrollbars"},
        url);
    CHECK(r.exit_code == 0);
    std::string png = read_file(shot);
    CHECK(png.substr(0, 8) == "\x89PNG\r\n\x1a\n");
    CHECK(png.size() > 20'000);
}

TEST_CASE("admin: only its own address, localhost and admin_hosts may be the Host (no rebinding)") {
    TempDir dir;
    Nginx origin(dir);
    HallpassOptions o = admin_options(origin.port());
    o.server_yaml += "\nadmin_hosts: [stats.lan]";
    Hallpass proxy(dir, o);
    const uint16_t admin = proxy.admin_port();
    const std::string port = std::to_string(admin);
    for (const std::string& host :
         std::vector<std::string>{"127.0.0.1:" + port, "localhost:" + port, "LOCALHOST",
                                  "stats.lan:" + port, "Stats.LAN."}) {
        CAPTURE(host);
        CHECK(raw_status(admin, "GET /stats.json HTTP/1.1\r\nHost: " + host + "\r\n\r\n") == 200);
    }
    // A page on evil.test whose name was rebound to 127.0.0.1 sends Host: evil.test.
    for (const std::string& host : std::vector<std::string>{
             "evil.test:" + port, "evil.test", "127.0.0.2:" + port, "stats.lan.evil.test", ""}) {
        CAPTURE(host);
        CHECK(raw_status(admin, "GET /stats.json HTTP/1.1\r\nHost: " + host + "\r\n\r\n") == 421);
    }
}

TEST_CASE("admin: at most admin_max_connections; the longest-idle makes room, busy ones get 503") {
    TempDir dir;
    HallpassOptions o;
    o.admin = "127.0.0.1:0";
    o.server_yaml = "admin_max_connections: 4";
    o.log_level = "info";
    Hallpass proxy(dir, o);
    const uint16_t admin = proxy.admin_port();
    const std::string get =
        "GET /stats.json HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(admin) + "\r\n\r\n";

    // Four keep-alive connections, each answered once (so accepted, idle, in this order).
    std::vector<std::unique_ptr<RawClient>> held;
    for (int i = 0; i < 4; ++i) {
        held.push_back(std::make_unique<RawClient>(admin));
        held.back()->send(get);
        auto r = held.back()->read_final_response();
        REQUIRE(r);
        CHECK(r->status == 200);
        CHECK(r->header("connection") != "close");
    }
    // A fifth: the longest-idle one (the first) is closed to make room, the others stay.
    {
        RawClient fifth(admin);
        fifth.send(get);
        auto r = fifth.read_final_response();
        REQUIRE(r);
        CHECK(r->status == 200);
        CHECK(held[0]->wait_closed(2s));
        for (int i = 1; i < 4; ++i) CHECK_FALSE(held[i]->wait_closed(100ms));
    }
    held.erase(held.begin());

    // Four connections in the middle of a request: none is idle, so a newcomer gets 503.
    while (held.size() < 4) held.push_back(std::make_unique<RawClient>(admin));
    for (auto& c : held) c->send("GET /stats.json HTTP/1.1\r\n");
    std::this_thread::sleep_for(200ms);  // the admin thread has read them
    {
        RawClient extra(admin);
        auto r = extra.read_final_response();
        REQUIRE_MESSAGE(r, "no answer; received: " << extra.buffer());
        CHECK(r->status == 503);
        CHECK(contains(r->body, "too many admin connections"));
        CHECK(r->header("connection") == "close");
    }
    CHECK(proxy.wait_for_log("admin: 4 connections busy (server.admin_max_connections)"));
    // The busy ones are served when they finish their request...
    held[1]->send("Host: 127.0.0.1:" + std::to_string(admin) + "\r\n\r\n");
    auto finished = held[1]->read_final_response();
    REQUIRE(finished);
    CHECK(finished->status == 200);
    // ... and a slot a client gave up is free again.
    held.erase(held.begin());
    CHECK(wait_until([&] { return raw_status(admin, get) == 200; }, 5s));
}

TEST_CASE("admin: one head at a time, bounded in size and in time (no slowloris)") {
    TempDir dir;
    HallpassOptions o;
    o.admin = "127.0.0.1:0";
    Hallpass proxy(dir, o);
    const uint16_t admin = proxy.admin_port();
    const std::string host = "Host: 127.0.0.1:" + std::to_string(admin) + "\r\n";
    {
        // A head that never ends: 431 at 16 KiB, and the connection closes.
        RawClient c(admin);
        std::string head = "GET / HTTP/1.1\r\n" + host;
        while (head.size() < 64 * 1024) head += "X-Padding: " + std::string(100, 'a') + "\r\n";
        c.send_some(head, 2s);
        auto r = c.read_final_response();
        REQUIRE_MESSAGE(r, "no answer; received: " << c.buffer());
        CHECK(r->status == 431);
        CHECK(c.wait_closed());
    }
    {
        // Garbage: 400 and a close.
        CHECK(raw_status(admin, "\x16\x03\x01\x02\x00garbage\r\n\r\n") == 400);
        CHECK(raw_status(admin, "GET / HTTP/1.1\r\n\r\n") == 400);  // no Host
    }
    {
        // Pipelined requests are answered in order, each once the previous answer is sent;
        // an error answer closes the connection.
        RawClient c(admin);
        c.send("GET /stats.json HTTP/1.1\r\n" + host + "\r\nHEAD / HTTP/1.1\r\n" + host +
               "\r\nGET /nope HTTP/1.1\r\n" + host + "\r\nGET / HTTP/1.1\r\n" + host + "\r\n");
        auto first = c.read_final_response();
        REQUIRE(first);
        CHECK(first->status == 200);
        CHECK(first->header("content-type") == "application/json");
        auto second = c.read_final_response(5s, /*head_request=*/true);
        REQUIRE(second);
        CHECK(second->status == 200);
        CHECK(second->body.empty());
        auto third = c.read_final_response();
        REQUIRE(third);
        CHECK(third->status == 404);
        CHECK(c.wait_closed());
        CHECK(c.buffer().empty());  // nothing answered after the close
    }
    {
        // A head trickled a byte at a time cannot hold the connection past the 10 s deadline.
        RawClient c(admin);
        const std::string slow = "GET / HTTP/1.1\r\n" + host + "X-Slow: " + std::string(40, 's');
        const auto start = Clock::now();
        size_t sent = 0;
        bool answered = false;
        while (Clock::now() - start < 20s && !answered) {
            if (sent < slow.size()) c.send(slow.substr(sent++, 1));
            answered = c.fill([](const std::string& b) { return !b.empty(); }, 500ms) !=
                       RawClient::End::Timeout;
        }
        const auto took = std::chrono::duration_cast<Ms>(Clock::now() - start);
        MESSAGE("trickled head ended after " << took.count() << " ms");
        REQUIRE(answered);
        auto r = c.read_final_response();
        REQUIRE(r);
        CHECK(r->status == 408);
        CHECK(took < 15s);
    }
}

TEST_CASE("admin: every list with its entries; a list by URL with its copy age and last download") {
    TempDir dir;
    Nginx origin(dir);
    std::string list = "# ads\n";
    for (int i = 0; i < 12; ++i) list += "ad" + std::to_string(i) + ".example\n";
    origin.put("ads.txt", list);
    write_file(dir / "local.txt", "local.example\nother.example\n");
    HallpassOptions o;
    o.admin = "127.0.0.1:0";
    o.server_yaml = "state_dir: \"" + (dir / "state").string() + "\"";
    o.rules_yaml = "lists:\n  ads: { url: \"" + origin.url("/ads.txt") +
                   "\", refresh: 1h }\n  local: { file: local.txt }\n"
                   "  gone: { url: \"http://127.0.0.1:9/gone.txt\" }\n"
                   "rules:\n  - {name: lists, action: block, lists: [ads, local, gone]}\n";
    Hallpass proxy(dir, o);
    REQUIRE(proxy.wait_for_log("reload ok", 15s));
    REQUIRE(proxy.wait_for_log("list gone: fetching", 15s));

    const std::string metrics = admin_get(proxy.admin_port(), "/metrics");
    CHECK(contains(metrics, "hallpass_list_entries{list=\"ads\"} 12"));
    CHECK(contains(metrics, "hallpass_list_entries{list=\"local\"} 2"));
    CHECK(contains(metrics, "hallpass_list_entries{list=\"gone\"} 0"));
    CHECK(contains(metrics, "hallpass_list_copy_age_seconds{list=\"ads\"} "));
    CHECK_FALSE(contains(metrics, "hallpass_list_copy_age_seconds{list=\"gone\"}"));
    CHECK(contains(metrics, "hallpass_list_last_fetch_success{list=\"ads\"} 1"));
    CHECK(contains(metrics, "hallpass_list_last_fetch_success{list=\"gone\"} 0"));

    const std::string json = admin_get(proxy.admin_port(), "/stats.json");
    CHECK(contains(json, "{\"name\":\"ads\",\"url\":\"" + origin.url("/ads.txt") +
                             "\",\"entries\":12,\"copy_age_s\":"));
    CHECK(contains(json, "\"last_fetch\":\"updated\",\"last_fetch_message\":\"12 entries\""));
    CHECK(contains(json, "{\"name\":\"local\",\"url\":\"\",\"entries\":2,\"copy_age_s\":-1"));
    CHECK(contains(json, "{\"name\":\"gone\""));
    CHECK(contains(json, "\"last_fetch\":\"failed\""));

    if (!fs::exists(kChromium)) FAIL("chromium is not installed (scripts/test installs it)");
    auto dom = chromium(dir, {"--dump-dom"},
                        "http://127.0.0.1:" + std::to_string(proxy.admin_port()) + "/");
    INFO(dom.out.substr(0, 3000));
    CHECK(contains(dom.out, "ads: 12 names from " + origin.url("/ads.txt") + "; copy "));
    CHECK(contains(dom.out, "last download updated (12 entries)"));
    CHECK(contains(dom.out, "local: 2 names</li>"));
    CHECK(contains(dom.out,
                   "class=\"bad\">gone: 0 names from http://127.0.0.1:9/gone.txt; copy not "
                   "fetched yet; last download failed"));
}
