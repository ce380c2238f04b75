// The access log through the real binary: one Squid-native line per request and per tunnel with
// the right fields (allowed, blocked, tunnel, refused upstream, bad requests), JSON lines that
// parse, SIGUSR1 reopening after a logrotate-style rename, thousands of concurrent requests giving
// exactly as many whole lines all flushed at SIGTERM, and GoAccess reading the log with the
// native-format string of docs/logging.md without a single invalid line.
#include <doctest/doctest.h>

#include <csignal>
#include <set>
#include <sstream>

#include "harness.h"

using namespace hallpass::e2e;

namespace {

const char* kRules = R"(default: allow
rules:
  - name: block-test
    action: block
    domains: [blocked.test]
)";

std::vector<std::string> split_lines(const std::string& text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) out.push_back(line);
    return out;
}

std::vector<std::string> fields_of(const std::string& line) {
    std::vector<std::string> out;
    std::istringstream in(line);
    for (std::string w; in >> w;) out.push_back(w);
    return out;
}

// Whole lines of the log so far (a last line without '\n' is not counted: it is not whole).
std::vector<std::string> log_lines(const fs::path& path) {
    std::string text = read_file(path);
    if (size_t last = text.rfind('\n'); last != std::string::npos) {
        text.resize(last + 1);
    } else {
        text.clear();
    }
    return split_lines(text);
}

bool wait_for_lines(const fs::path& path, size_t n, Ms timeout = 5s) {
    return wait_until([&] { return log_lines(path).size() >= n; }, timeout);
}

// The line whose URL field (the 7th) is `url`; fails the test when there is not exactly one.
std::vector<std::string> squid_line_for(const std::vector<std::string>& lines,
                                        const std::string& url) {
    std::vector<std::vector<std::string>> found;
    for (const auto& l : lines) {
        auto f = fields_of(l);
        if (f.size() > 6 && f[6] == url) found.push_back(f);
    }
    INFO("url: " << url);
    REQUIRE(found.size() == 1);
    return found[0];
}

HallpassOptions options_with_log(const std::string& access_log, uint16_t connect_port) {
    HallpassOptions o;
    o.hosts = {"site.test", "blocked.test"};
    o.rules_yaml = kRules;
    o.server_yaml = "access_log: " + access_log + "\nconnect_ports: [" +
                    std::to_string(connect_port) + "]\nconnect_timeout_ms: 2000";
    return o;
}

// A CONNECT tunnel to the echo server that carries `payload` both ways, then closes. Returns
// the bytes hallpass sent to the client (its 200 head and the echo).
size_t tunnel_round_trip(uint16_t proxy_port, uint16_t echo_port, const std::string& payload) {
    std::string authority = "127.0.0.1:" + std::to_string(echo_port);
    RawClient c(proxy_port);
    c.send("CONNECT " + authority + " HTTP/1.1\r\nHost: " + authority + "\r\n\r\n");
    auto head = c.read_response(5s, true);
    REQUIRE(head);
    REQUIRE(head->status == 200);
    c.send(payload);
    REQUIRE(c.read_n(payload.size()) == payload);
    c.shutdown_write();
    CHECK(c.wait_closed());
    return head->head.size() + payload.size();
}

// The requests every format test makes, and what their lines must say. No request here leaves
// the status at 000 or the method unknown (see the GoAccess test).
struct Exercise {
    std::string allowed_url, blocked_url, refused_url, tunnel_url, bad_target;
    size_t allowed_bytes = 0, tunnel_bytes = 0;
    size_t lines = 0;
};

Exercise exercise(Hallpass& proxy, Nginx& origin, EchoServer& echo) {
    Exercise e;
    e.allowed_url = "http://site.test:" + std::to_string(origin.port()) + "/1k.txt";
    auto r = curl(proxy.port(), {"-o", "/dev/null", "-w",
                                 "%{http_code} %{size_header} "
                                 "%{size_download}",
                                 e.allowed_url});
    REQUIRE(r.exit_code == 0);
    int status = 0;
    size_t head = 0, body = 0;
    std::istringstream(r.out) >> status >> head >> body;
    CHECK(status == 200);
    e.allowed_bytes = head + body;

    e.blocked_url = "http://blocked.test/page?q=1";
    r = curl(proxy.port(), {"-o", "/dev/null", "-w", "%{http_code}", e.blocked_url});
    CHECK(r.out == "403");

    uint16_t closed = free_port();
    e.refused_url = "http://127.0.0.1:" + std::to_string(closed) + "/x";
    r = curl(proxy.port(), {"-o", "/dev/null", "-w", "%{http_code}", e.refused_url});
    CHECK(r.out == "502");

    e.tunnel_url = "127.0.0.1:" + std::to_string(echo.port());
    e.tunnel_bytes = tunnel_round_trip(proxy.port(), echo.port(), "hello through the tunnel");

    // A request line that parses, with a target that is no URL: 400, method known.
    e.bad_target = "not-a-url";
    RawClient c(proxy.port());
    c.send("GET not-a-url HTTP/1.1\r\nHost: x\r\n\r\n");
    auto resp = c.read_final_response();
    REQUIRE(resp);
    CHECK(resp->status == 400);
    e.lines = 5;
    return e;
}

bool have_goaccess() { return run({"sh", "-c", "command -v goaccess"}, 5s).exit_code == 0; }

}  // namespace

TEST_CASE("access_log: squid native lines for allowed, blocked, tunnel and error requests") {
    TempDir dir;
    Nginx origin(dir);
    origin.put("1k.txt", std::string(1024, 'k'));
    EchoServer echo;
    // A relative path: relative to the config file's directory.
    Hallpass proxy(dir, options_with_log("access.log", echo.port()));
    const fs::path log = dir / "access.log";

    Exercise e = exercise(proxy, origin, echo);
    RawClient garbage(proxy.port());
    garbage.send("\x01\x02 garbage\r\n\r\n");
    auto resp = garbage.read_final_response();
    REQUIRE(resp);
    CHECK(resp->status == 400);
    REQUIRE(wait_for_lines(log, e.lines + 1));
    auto lines = log_lines(log);
    CHECK(lines.size() == e.lines + 1);
    for (const auto& l : lines) {
        INFO(l);
        CHECK(fields_of(l).size() == 10);
        CHECK(fields_of(l)[2] == "127.0.0.1");
        CHECK(fields_of(l)[7] == "-");
    }

    auto f = squid_line_for(lines, e.allowed_url);
    CHECK(f[3] == "TCP_MISS/200");
    CHECK(f[4] == std::to_string(e.allowed_bytes));
    CHECK(f[5] == "GET");
    CHECK(f[8] == "HIER_DIRECT/127.0.0.1");
    CHECK(f[9] == "text/plain");

    f = squid_line_for(lines, e.blocked_url);
    CHECK(f[3] == "TCP_DENIED/403");
    CHECK(f[8] == "HIER_NONE/-");
    CHECK(f[9] == "text/html;%20charset=utf-8");

    f = squid_line_for(lines, e.refused_url);
    CHECK(f[3] == "TCP_MISS/502");
    CHECK(f[8] == "HIER_NONE/-");

    f = squid_line_for(lines, e.tunnel_url);
    CHECK(f[3] == "TCP_TUNNEL/200");
    CHECK(f[4] == std::to_string(e.tunnel_bytes));
    CHECK(f[5] == "CONNECT");
    CHECK(f[8] == "HIER_DIRECT/127.0.0.1");
    CHECK(f[9] == "-");

    f = squid_line_for(lines, e.bad_target);
    CHECK(f[3] == "NONE_NONE/400");
    CHECK(f[5] == "GET");

    f = squid_line_for(lines, "-");  // the head that never parsed
    CHECK(f[3] == "NONE_NONE/400");
    CHECK(f[5] == "NONE");

    // Times: the end of each transaction, close to now; elapsed in whole ms.
    const double now = static_cast<double>(std::time(nullptr));
    for (const auto& l : lines) {
        double t = std::stod(fields_of(l)[0]);
        CHECK(t > now - 60);
        CHECK(t < now + 60);
        CHECK(std::stol(fields_of(l)[1]) >= 0);
    }
    CHECK(proxy.stop() == 0);
}

TEST_CASE("access_log: json lines parse and carry rule, bytes, upstream, durations and errors") {
    TempDir dir;
    Nginx origin(dir);
    origin.put("1k.txt", std::string(1024, 'k'));
    EchoServer echo;
    const fs::path log = dir / "access.json";
    Hallpass proxy(dir,
                   options_with_log("{path: \"" + log.string() + "\", format: json}", echo.port()));
    Exercise e = exercise(proxy, origin, echo);
    // A POST with a body: bytes_in counts the head and the body.
    auto r = curl(proxy.port(), {"-o", "/dev/null", "--data-binary", std::string(3000, 'p'),
                                 "http://site.test:" + std::to_string(origin.port()) + "/echo"});
    REQUIRE(r.exit_code == 0);
    REQUIRE(wait_for_lines(log, e.lines + 1));
    CHECK(proxy.stop() == 0);
    CHECK(log_lines(log).size() == e.lines + 1);

    // Every line must be one JSON object; print the fields the checks need, one line each.
    write_file(dir / "check.py", R"(import json, sys
for n, line in enumerate(open(sys.argv[1], encoding="utf-8"), 1):
    o = json.loads(line)
    assert isinstance(o, dict), n
    for key in ("time", "time_ms", "client", "method", "url", "host", "port", "status", "kind",
                "rule", "bytes_in", "bytes_out", "upstream", "upstream_reused", "dns_ms",
                "connect_ms", "elapsed_ms", "content_type", "error"):
        assert key in o, (n, key)
    assert o["time"].endswith("Z") and len(o["time"]) == 24, o["time"]
    print("|".join(str(o[k]) for k in ("url", "kind", "status", "rule", "method", "upstream",
          "dns_ms", "connect_ms", "bytes_in", "bytes_out", "content_type", "error")))
)");
    auto py = run({"python3", (dir / "check.py").string(), log.string()});
    INFO(py.err);
    REQUIRE(py.exit_code == 0);
    std::map<std::string, std::vector<std::string>> by_url;
    for (const auto& line : split_lines(py.out)) {
        std::vector<std::string> parts;
        std::istringstream in(line);
        for (std::string p; std::getline(in, p, '|');) parts.push_back(p);
        REQUIRE(parts.size() >= 11);
        by_url[parts[0]] = parts;
    }
    auto& a = by_url[e.allowed_url];
    REQUIRE(a.size() >= 11);
    CHECK(a[1] == "relayed");
    CHECK(a[2] == "200");
    CHECK(a[3] == "default");
    CHECK(a[5] == "127.0.0.1:" + std::to_string(origin.port()));
    CHECK(a[6] != "None");  // a DNS lookup (the hosts file) happened
    CHECK(a[7] != "None");  // and a connect
    CHECK(a[9] == std::to_string(e.allowed_bytes));
    CHECK(a[10] == "text/plain");
    CHECK(a[11] == "None");

    auto& b = by_url[e.blocked_url];
    REQUIRE(b.size() >= 11);
    CHECK(b[1] == "blocked");
    CHECK(b[2] == "403");
    CHECK(b[3] == "block-test");
    CHECK(b[5] == "None");
    CHECK(b[6] == "None");

    auto& x = by_url[e.refused_url];
    REQUIRE(x.size() >= 12);
    CHECK(x[1] == "local");
    CHECK(x[2] == "502");
    CHECK(x[3] == "default");
    CHECK(x[7] == "None");   // never connected
    CHECK(x[11] != "None");  // the reason
    CHECK(contains(x[11], "refused"));

    auto& t = by_url[e.tunnel_url];
    REQUIRE(t.size() >= 11);
    CHECK(t[1] == "tunnel");
    CHECK(t[2] == "200");
    CHECK(t[4] == "CONNECT");
    CHECK(t[9] == std::to_string(e.tunnel_bytes));

    auto& p = by_url["http://site.test:" + std::to_string(origin.port()) + "/echo"];
    REQUIRE(p.size() >= 11);
    CHECK(p[4] == "POST");
    CHECK(std::stoul(p[8]) > 3000);  // head and body from the client
    CHECK(std::stoul(p[9]) > 3000);  // the echo back
}

TEST_CASE("access_log: SIGUSR1 reopens the file after a rename") {
    TempDir dir;
    Nginx origin(dir);
    origin.put("1k.txt", "one kilobyte, roughly");
    EchoServer echo;
    const fs::path log = dir / "access.log";
    Hallpass proxy(dir, options_with_log("\"" + log.string() + "\"", echo.port()));
    auto url = [&](const std::string& tag) {
        return "http://site.test:" + std::to_string(origin.port()) + "/1k.txt?" + tag;
    };
    for (const char* tag : {"before-1", "before-2", "before-3"})
        REQUIRE(curl(proxy.port(), {"-o", "/dev/null", url(tag)}).exit_code == 0);
    REQUIRE(wait_for_lines(log, 3));
    fs::rename(log, dir / "access.log.1");  // what logrotate does before its postrotate
    ::kill(proxy.pid(), SIGUSR1);
    REQUIRE(proxy.wait_for_log("access log reopened"));
    CHECK(fs::exists(log));
    for (const char* tag : {"after-1", "after-2"})
        REQUIRE(curl(proxy.port(), {"-o", "/dev/null", url(tag)}).exit_code == 0);
    CHECK(proxy.stop() == 0);

    auto old_lines = log_lines(dir / "access.log.1");
    auto new_lines = log_lines(log);
    REQUIRE(old_lines.size() == 3);
    REQUIRE(new_lines.size() == 2);
    for (const auto& l : old_lines) CHECK(contains(l, "?before-"));
    for (const auto& l : new_lines) CHECK(contains(l, "?after-"));
}

TEST_CASE("access_log: 3,000 concurrent requests give 3,000 whole lines, flushed at SIGTERM") {
    TempDir dir;
    Nginx origin(dir);
    origin.put("ok.txt", "ok");
    EchoServer echo;
    const fs::path log = dir / "access.log";
    HallpassOptions o = options_with_log("\"" + log.string() + "\"", echo.port());
    o.log_level = "info";  // no per-connection debug lines
    Hallpass proxy(dir, o);

    constexpr int kClients = 4;
    constexpr int kPerClient = 750;
    std::vector<RunResult> results(kClients);
    std::vector<std::thread> threads;
    for (int c = 0; c < kClients; ++c) {
        threads.emplace_back([&, c] {
            // curl's URL glob: kPerClient requests, 20 at a time over keep-alive connections.
            std::string glob = "http://site.test:" + std::to_string(origin.port()) +
                               "/ok.txt?c=" + std::to_string(c) + "&n=[1-" +
                               std::to_string(kPerClient) + "]";
            results[c] = curl(proxy.port(),
                              {"-Z", "--parallel-max", "20", "-w", "%{http_code}\\n", glob}, 90s);
        });
    }
    for (auto& t : threads) t.join();
    for (const auto& r : results) {
        INFO(r.err);
        CHECK(r.exit_code == 0);
        CHECK(count_of(r.out, "200\n") == kPerClient);  // parallel bodies interleave
    }
    // At once, so the last lines are most likely still in the workers' buffers.
    CHECK(proxy.stop() == 0);
    CHECK(contains(proxy.stderr_text(), "access log: " + std::to_string(kClients * kPerClient) +
                                            " lines written, 0 dropped"));

    const std::string text = read_file(log);
    REQUIRE(!text.empty());
    CHECK(text.back() == '\n');
    auto lines = split_lines(text);
    CHECK(lines.size() == kClients * kPerClient);
    std::set<std::string> urls;
    size_t malformed = 0;
    for (const auto& l : lines) {
        auto f = fields_of(l);
        if (f.size() != 10 || f[3] != "TCP_MISS/200" || f[5] != "GET" ||
            f[8] != "HIER_DIRECT/127.0.0.1") {
            if (++malformed < 5) MESSAGE("malformed: " << l);
            continue;
        }
        urls.insert(f[6]);
    }
    CHECK(malformed == 0);
    CHECK(urls.size() == kClients * kPerClient);  // every request once
}

TEST_CASE("access_log: GoAccess reads the native log with zero invalid lines") {
    if (!have_goaccess()) {
        MESSAGE("goaccess is not installed (apt-get install goaccess): skipped");
        return;
    }
    TempDir dir;
    Nginx origin(dir);
    origin.put("1k.txt", std::string(1024, 'k'));
    origin.put("index.html", "<p>hi</p>");
    EchoServer echo;
    const fs::path log = dir / "access.log";
    Hallpass proxy(dir, options_with_log("\"" + log.string() + "\"", echo.port()));
    Exercise e = exercise(proxy, origin, echo);
    size_t lines = e.lines;
    const std::string base = "http://site.test:" + std::to_string(origin.port());
    // Keep-alive, a HEAD, a POST, a 404, a URL with characters that need escaping.
    auto r = curl(proxy.port(), {"-o", "/dev/null", "-o", "/dev/null", "-o", "/dev/null",
                                 base + "/index.html", base + "/missing", base + "/a%20b?x=%22"});
    CHECK(r.exit_code == 0);
    lines += 3;
    CHECK(curl(proxy.port(), {"-I", base + "/1k.txt"}).exit_code == 0);
    CHECK(curl(proxy.port(), {"-o", "/dev/null", "--data-binary", "body", base + "/echo"})
              .exit_code == 0);
    lines += 2;
    CHECK(proxy.stop() == 0);
    REQUIRE(log_lines(log).size() == lines);

    const fs::path report = dir / "report.json";
    auto ga =
        run({"goaccess", log.string(), "--no-global-config",
             "--log-format=%x.%^ %~%L %h %^/%s %b %m %U %^", "--date-format=%s", "--time-format=%s",
             "--invalid-requests=" + (dir / "invalid.txt").string(), "-o", report.string()},
            60s);
    INFO(ga.err);
    REQUIRE(ga.exit_code == 0);
    // The URL column holds URLs only: the hierarchy code and content type after them are
    // skipped (the format's final %^), not glued to the URL.
    auto py = run({"python3", "-c",
                   "import json,sys; r=json.load(open(sys.argv[1])); g=r['general']; "
                   "urls=[d['data'] for d in r['requests']['data']]; "
                   "print(g['valid_requests'], g['failed_requests'], len(urls), "
                   "sum(1 for u in urls if ' ' in u or 'HIER_' in u)); "
                   "print(*urls, sep='\\n', file=sys.stderr)",
                   report.string()});
    REQUIRE(py.exit_code == 0);
    size_t valid = 0, failed = 99, urls = 0, glued = 99;
    std::istringstream(py.out) >> valid >> failed >> urls >> glued;
    INFO("URLs in the report: " << py.err);
    CHECK(urls > 0);
    CHECK(glued == 0);
    INFO("invalid lines: " << read_file(dir / "invalid.txt"));
    CHECK(failed == 0);
    CHECK(valid == lines);
}
