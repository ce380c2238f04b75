// SIGHUP reloads: a new block applies to the next request without a restart (also on a
// keep-alive connection opened before), a broken file or list leaves the old rules in force, a
// reload of ~600k real list entries under load answers every request, in-flight exchanges and
// CONNECT tunnels to what the new rules allow continue untouched, and a SIGHUP during a reload
// is not lost.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "harness.h"

using namespace hallpass::e2e;

namespace {

const char* kBlockOther = R"(default: allow
rules:
  - name: other-block
    action: block
    domains: [other.test]
)";

const char* kBlockSite = R"(default: allow
rules:
  - name: other-block
    action: block
    domains: [other.test]
  - name: site-block
    action: block
    hosts: [site.test]
)";

const char* kBlockA = R"(default: allow
rules:
  - name: other-block
    action: block
    domains: [other.test]
  - name: a-block
    action: block
    hosts: [a.test]
)";

HallpassOptions options(const char* rules, std::string server_yaml = {}) {
    HallpassOptions o;
    o.hosts = {"site.test", "a.test", "other.test"};
    o.rules_yaml = rules;
    o.server_yaml = std::move(server_yaml);
    return o;
}

std::string get(std::string_view host, uint16_t port, std::string_view path = "/") {
    return proxy_get(port, path, host);
}

std::string connect_request(std::string_view authority) {
    return "CONNECT " + std::string(authority) + " HTTP/1.1\r\nHost: " + std::string(authority) +
           "\r\n\r\n";
}

std::optional<HttpResponse> ask(uint16_t proxy_port, const std::string& request,
                                bool head_only = false) {
    RawClient c(proxy_port);
    c.send(request);
    return c.read_final_response(5s, head_only);
}

int status_of(uint16_t proxy_port, const std::string& request) {
    auto r = ask(proxy_port, request, request.rfind("CONNECT ", 0) == 0);
    return r ? r->status : 0;
}

// The 1-based number of the first line of `path` that contains `needle` (0 when none).
int line_of(const fs::path& path, std::string_view needle) {
    std::istringstream in(read_file(path));
    int n = 0;
    for (std::string line; std::getline(in, line);) {
        ++n;
        if (contains(line, needle)) return n;
    }
    return 0;
}

// The one "reload ok" line after the `nth` (1-based), or "".
std::string reload_ok_line(const Hallpass& proxy, size_t nth = 1) {
    auto lines = lines_with(proxy.stderr_text(), "reload ok in ");
    return lines.size() >= nth ? lines[nth - 1] : std::string();
}

// Every real list: all UT1 categories, StevenBlack's unified hosts and porn-only alternate, the
// AdGuard DNS filter. About 600k distinct names.
std::string big_lists_yaml() {
    const fs::path dir = blocklists_dir();
    std::vector<std::string> categories;
    for (const auto& entry : fs::directory_iterator(dir / "ut1"))
        if (fs::exists(entry.path() / "domains"))
            categories.push_back(entry.path().filename().string());
    std::sort(categories.begin(), categories.end());
    std::string yaml = "default: allow\nlists:\n";
    std::string names;
    for (const auto& c : categories) {
        yaml += "  ut1-" + c + ": { file: \"" + (dir / "ut1" / c / "domains").string() + "\" }\n";
        names += "ut1-" + c + ", ";
    }
    yaml += "  sb: { file: \"" + (dir / "stevenblack" / "hosts").string() + "\" }\n";
    yaml += "  porn: { file: \"" +
            (dir / "stevenblack" / "alternates" / "porn-only" / "hosts").string() + "\" }\n";
    yaml += "  adg: { file: \"" +
            (dir / "adguard-dns-filter-noprivacy" / "Filters" / "filter.txt").string() + "\" }\n";
    yaml +=
        "rules:\n"
        "  - name: other-block\n"
        "    action: block\n"
        "    domains: [other.test]\n"
        "  - name: big-lists\n"
        "    action: block\n"
        "    lists: [" +
        names + "sb, porn, adg]\n";
    return yaml;
}

// The number after `key` in `line` ("entries 1 -> 612345": key "-> " gives the first such).
long number_after(std::string_view line, std::string_view key, size_t from = 0) {
    auto at = line.find(key, from);
    if (at == std::string_view::npos) return -1;
    return std::strtol(std::string(line.substr(at + key.size())).c_str(), nullptr, 10);
}

}  // namespace

TEST_CASE("reload: SIGHUP adds a block that applies to the next request, without a restart") {
    TempDir dir;
    ScriptedOrigin origin;
    Hallpass proxy(dir, options(kBlockOther));
    const pid_t pid = proxy.pid();
    const size_t listening = proxy.log_count("listening on ");

    // Keep-alive connections opened and used before the reload: one last went to the host
    // the reload blocks, one elsewhere.
    RawClient kept(proxy.port());
    kept.send(get("a.test", origin.port(), "/before"));
    auto before = kept.read_final_response();
    REQUIRE(before);
    CHECK(before->status == 200);
    RawClient kept_site(proxy.port());
    kept_site.send(get("site.test", origin.port(), "/before"));
    auto before_site = kept_site.read_final_response();
    REQUIRE(before_site);
    CHECK(before_site->status == 200);
    CHECK(status_of(proxy.port(), get("site.test", origin.port())) == 200);

    proxy.write_rules(kBlockSite);
    proxy.reload();
    REQUIRE(proxy.wait_for_log("reload ok in ", 10s));
    std::string line = reload_ok_line(proxy);
    CHECK(contains(line, " ms: rules 1 -> 2, entries 1 -> 2 ("));
    CHECK(contains(line, proxy.config_path().filename().string() + ")"));

    auto fresh = ask(proxy.port(), get("site.test", origin.port(), "/fresh"));
    REQUIRE(fresh);
    CHECK(fresh->status == 403);
    CHECK(fresh->header("x-hallpass-rule") == "site-block");
    // The one whose last request is now blocked is closed; the other's next request to that
    // host is refused.
    CHECK(kept_site.wait_closed(3s));
    CHECK(proxy.wait_for_log("closing idle connection to site.test: now blocked by rule"));
    kept.send(get("site.test", origin.port(), "/kept"));
    auto after = kept.read_final_response();
    REQUIRE(after);
    CHECK(after->status == 403);
    CHECK(after->header("x-hallpass-rule") == "site-block");
    // Other names are as before.
    CHECK(status_of(proxy.port(), get("a.test", origin.port())) == 200);
    CHECK(status_of(proxy.port(), get("other.test", origin.port())) == 403);

    CHECK(proxy.running());
    CHECK(proxy.pid() == pid);
    CHECK(proxy.log_count("listening on ") == listening);  // not restarted
    std::this_thread::sleep_for(50ms);
    auto seen = origin.requests();
    REQUIRE(seen.size() == 4);
    for (const auto& r : seen) CHECK_FALSE(contains(r, "/fresh"));
    for (const auto& r : seen) CHECK_FALSE(contains(r, "/kept"));
}

TEST_CASE("reload: a change in a list file alone is picked up by SIGHUP") {
    TempDir dir;
    ScriptedOrigin origin;
    write_file(dir / "lists" / "mine.txt", "other.test\n");
    Hallpass proxy(dir, options("lists:\n  mine: { file: lists/mine.txt }\n"
                                "rules:\n  - name: mine\n    action: block\n    lists: [mine]\n"));
    CHECK(status_of(proxy.port(), get("a.test", origin.port())) == 200);
    CHECK(status_of(proxy.port(), get("other.test", origin.port())) == 403);

    write_file(dir / "lists" / "mine.txt", "other.test\n# now this one too\na.test\n");
    proxy.reload();
    REQUIRE(proxy.wait_for_log("reload ok in ", 10s));
    CHECK(contains(reload_ok_line(proxy), "rules 1 -> 1, entries 1 -> 2 ("));
    auto r = ask(proxy.port(), get("a.test", origin.port()));
    REQUIRE(r);
    CHECK(r->status == 403);
    CHECK(r->header("x-hallpass-rule") == "mine");
    CHECK(status_of(proxy.port(), get("site.test", origin.port())) == 200);
}

TEST_CASE("reload: a broken file leaves the previous rules in force") {
    TempDir dir;
    ScriptedOrigin origin;
    write_file(dir / "lists" / "ok.txt", "a.test\n");
    Hallpass proxy(dir, options(kBlockOther));
    const fs::path config = proxy.config_path();
    std::string broken;
    std::string expected_error;  // after "<config>:"

    SUBCASE("unknown key") {
        broken = std::string(kBlockSite) + "    domians: [a.test]\n";
        proxy.write_rules(broken);
        expected_error = std::to_string(line_of(config, "domians")) +
                         ":5: unknown key \"domians\" in rule \"site-block\" (did you mean "
                         "\"domains\"?)";
    }
    SUBCASE("invalid regex") {
        broken = std::string(kBlockSite) + "    host_regex: ['(site']\n";
        proxy.write_rules(broken);
        expected_error = std::to_string(line_of(config, "host_regex")) +
                         ":18: rule \"site-block\": invalid host_regex \"(site\": missing ): "
                         "(site";
    }
    SUBCASE("a list file that is missing") {
        broken = std::string("lists:\n  gone: { file: lists/gone.txt }\n") + kBlockSite +
                 "    lists: [gone]\n";
        proxy.write_rules(broken);
        expected_error = std::to_string(line_of(config, "gone: {")) +
                         ":17: cannot read list file \"" + (dir / "lists" / "gone.txt").string() +
                         "\"";
    }
    REQUIRE(contains(read_file(config), broken));
    proxy.reload();
    REQUIRE(proxy.wait_for_log("reload failed", 10s));
    auto failed = lines_with(proxy.stderr_text(), "reload failed");
    REQUIRE(failed.size() == 1);
    CHECK(contains(failed[0], "reload failed, the previous rules stay in force: " +
                                  config.string() + ":" + expected_error));
    CHECK(proxy.log_count("reload ok") == 0);

    // The old rules: other.test blocked, site.test allowed.
    auto blocked = ask(proxy.port(), get("other.test", origin.port()));
    REQUIRE(blocked);
    CHECK(blocked->status == 403);
    CHECK(blocked->header("x-hallpass-rule") == "other-block");
    CHECK(status_of(proxy.port(), get("site.test", origin.port())) == 200);
    CHECK(proxy.running());

    // Fixing the file and reloading again works.
    proxy.write_rules(kBlockSite);
    proxy.reload();
    REQUIRE(proxy.wait_for_log("reload ok in ", 10s));
    CHECK(status_of(proxy.port(), get("site.test", origin.port())) == 403);
}

TEST_CASE("reload: ~600k real list entries reload while keep-alive clients are served") {
    TempDir dir;
    Nginx origin(dir);
    const std::string content = random_bytes(1024, 11);
    origin.put("1k", content);
    HallpassOptions o = options(kBlockOther);
    // Names from the lists, resolvable here so they are allowed (200) before the reload:
    // docs.pipenv.org is on StevenBlack's hosts line 1817, with an inline comment.
    o.hosts.push_back("docs.pipenv.org");
    o.log_level = "info";  // no per-request debug lines: the load writes many
    Hallpass proxy(dir, o);
    auto allowed = ask(proxy.port(), get("docs.pipenv.org", origin.port(), "/1k"));
    REQUIRE(allowed);
    CHECK_MESSAGE(allowed->status == 200, allowed->head << allowed->body);

    constexpr int kClients = 4;
    std::atomic<bool> stop{false};
    std::atomic<long> answered{0};
    struct Tally {
        long ok = 0;
        long failed = 0;
        std::string first_failure;
        std::vector<std::pair<Clock::time_point, Ms>> done;  // completion time, latency
    };
    std::vector<Tally> tallies(kClients);
    std::vector<std::thread> clients;
    for (int i = 0; i < kClients; ++i) {
        clients.emplace_back([&, i] {
            Tally& t = tallies[i];
            try {
                RawClient c(proxy.port());
                while (!stop) {
                    auto start = Clock::now();
                    c.send(get("site.test", origin.port(), "/1k"));
                    auto r = c.read_final_response(5s);
                    auto end = Clock::now();
                    if (r && r->status == 200 && r->body == content) {
                        ++t.ok;
                        ++answered;
                        t.done.emplace_back(end, std::chrono::duration_cast<Ms>(end - start));
                    } else {
                        ++t.failed;
                        if (t.first_failure.empty())
                            t.first_failure = r ? "status " + std::to_string(r->status)
                                                : "no response (connection ended or timed out)";
                        break;  // the connection is no longer usable
                    }
                }
            } catch (const std::exception& e) {
                ++t.failed;
                t.first_failure = e.what();
            }
        });
    }
    bool warmed = wait_until([&] { return answered.load() >= 40 * kClients; }, 10s);

    proxy.write_rules(big_lists_yaml());
    const auto hup = Clock::now();
    proxy.reload();
    bool reloaded = proxy.wait_for_log("reload ok in ", 20s);
    const auto swapped = Clock::now();
    std::this_thread::sleep_for(200ms);
    stop = true;
    for (auto& t : clients) t.join();

    CHECK(warmed);
    REQUIRE_MESSAGE(reloaded, proxy.stderr_text());
    long ok = 0, failed = 0, during = 0;
    Ms worst{0};
    for (const auto& t : tallies) {
        ok += t.ok;
        failed += t.failed;
        CHECK_MESSAGE(t.failed == 0, "first failure: " << t.first_failure);
        for (const auto& [when, latency] : t.done) {
            if (when > hup && when < swapped) ++during;
            worst = std::max(worst, latency);
        }
    }
    MESSAGE("requests " << ok << ", failed " << failed << ", answered during the reload " << during
                        << " in " << Ms(std::chrono::duration_cast<Ms>(swapped - hup)).count()
                        << " ms, worst latency " << worst.count() << " ms; "
                        << reload_ok_line(proxy));
    CHECK(failed == 0);
    CHECK(during > 0);  // requests were served while the lists compiled

    std::string line = reload_ok_line(proxy);
    CHECK(contains(line, "rules 1 -> 2, entries 1 -> "));
    CHECK(number_after(line, "entries 1 -> ") > 500000);

    // The new lists are in force: a StevenBlack name and a UT1 name, both allowed before.
    auto sb = ask(proxy.port(), get("docs.pipenv.org", origin.port(), "/1k"));
    REQUIRE(sb);
    CHECK(sb->status == 403);
    CHECK(sb->header("x-hallpass-rule") == "big-lists");
    CHECK(status_of(proxy.port(), get("site.test", origin.port(), "/1k")) == 200);
    CHECK(proxy.running());
}

TEST_CASE(
    "reload: an established CONNECT tunnel keeps passing bytes across a reload that does not block "
    "it") {
    TempDir dir;
    Nginx origin(dir);
    Hallpass proxy(dir,
                   options(kBlockOther, "connect_ports: [" + std::to_string(origin.port()) + "]"));
    const std::string authority = "site.test:" + std::to_string(origin.port());
    auto echo = [](std::string_view body) {
        return "POST /echo HTTP/1.1\r\nHost: site.test\r\nContent-Length: " +
               std::to_string(body.size()) + "\r\n\r\n" + std::string(body);
    };

    RawClient tunnel(proxy.port());
    tunnel.send(connect_request(authority));
    auto established = tunnel.read_response(5s, /*head_request=*/true);
    REQUIRE(established);
    REQUIRE(established->status == 200);
    tunnel.send(echo("bytes before the reload"));
    auto first = tunnel.read_final_response();
    REQUIRE(first);
    CHECK(first->body == "bytes before the reload");

    // The reload blocks another host (one that blocks the tunnel's own closes it:
    // schedule_test).
    proxy.write_rules(kBlockA);
    proxy.reload();
    REQUIRE(proxy.wait_for_log("reload ok in ", 10s));
    auto refused = ask(proxy.port(), connect_request("a.test:" + std::to_string(origin.port())));
    REQUIRE(refused);
    CHECK(refused->status == 403);
    CHECK(refused->header("x-hallpass-rule") == "a-block");

    tunnel.send(echo("bytes after the reload"));
    auto second = tunnel.read_final_response();
    REQUIRE(second);
    CHECK(second->body == "bytes after the reload");
    const std::string big = random_bytes(256 * 1024, 5);
    tunnel.send(echo(big));
    auto third = tunnel.read_final_response();
    REQUIRE(third);
    CHECK(third->body == big);

    REQUIRE(origin.wait_for_accesses(3));
    auto seen = origin.accesses();
    REQUIRE(seen.size() == 3);
    CHECK(seen[0].connection == seen[2].connection);
    CHECK(seen[2].connection_requests == 3);
}

TEST_CASE("reload: an exchange in flight finishes; the next request on it sees the new rules") {
    TempDir dir;
    Nginx origin(dir);
    const std::string body = random_bytes(150 * 1024, 9);
    origin.put("slow/150k", body);  // served at 100 KiB/s: about 1.5 s
    Hallpass proxy(dir, options(kBlockOther));

    RawClient c(proxy.port());
    c.send(get("site.test", origin.port(), "/slow/150k"));
    // Wait for the head and the first bytes: the exchange is under way.
    REQUIRE(c.fill([](const std::string& b) { return b.size() > 1000; }, 5s) == RawClient::End::Ok);
    proxy.write_rules(kBlockSite);
    proxy.reload();
    REQUIRE(proxy.wait_for_log("reload ok in ", 10s));
    CHECK(status_of(proxy.port(), get("site.test", origin.port(), "/slow/150k")) == 403);

    auto r = c.read_final_response(10s);
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->body == body);
    c.send(get("site.test", origin.port(), "/slow/150k"));
    auto next = c.read_final_response();
    REQUIRE(next);
    CHECK(next->status == 403);
    CHECK(next->header("x-hallpass-rule") == "site-block");
}

TEST_CASE("reload: a SIGHUP that arrives during a reload is not lost") {
    TempDir dir;
    ScriptedOrigin origin;
    HallpassOptions o = options(kBlockOther);
    o.log_level = "info";
    Hallpass proxy(dir, o);

    // The first reload compiles the big lists; the second file, written and signalled while the
    // first one runs, must win in the end.
    proxy.write_rules(big_lists_yaml());
    proxy.reload();
    REQUIRE(proxy.wait_for_log("SIGHUP", 5s));
    proxy.write_rules(kBlockSite);
    proxy.reload();
    bool last_wins = wait_until(
        [&] {
            auto r = ask(proxy.port(), get("site.test", origin.port()));
            return r && r->status == 403 && r->header("x-hallpass-rule") == "site-block";
        },
        20s);
    CHECK_MESSAGE(last_wins, proxy.stderr_text());
    // Settled: the last reload logged is the small file.
    REQUIRE(proxy.wait_for_log_count("reload ok in ", 1, 5s));
    std::this_thread::sleep_for(200ms);
    auto oks = lines_with(proxy.stderr_text(), "reload ok in ");
    REQUIRE(!oks.empty());
    // "rules N -> 2, entries M -> 2": the small file's two names are what is in force.
    CHECK(contains(oks.back(), "-> 2, entries "));
    CHECK(contains(oks.back(), " -> 2 ("));
    CHECK(proxy.running());
}
