// Block lists by URL against nginx on loopback: the first download (and the block it brings,
// through the reload path), a 304 for an unchanged list, and the cases that must keep the last
// good copy: a 404, an HTML error page, a list that shrinks to 10 %, a server too slow for the
// timeout, TLS with a private CA (and without it); and a restart with the origin down, which
// filters from the kept copy at once.
#include <doctest/doctest.h>

#include "harness.h"

using namespace hallpass::e2e;

namespace {

std::string names(int n, const std::string& prefix = "ad") {
    std::string s = "# a list\n";
    for (int i = 0; i < n; ++i) s += prefix + std::to_string(i) + ".example\n";
    return s;
}

struct Setup {
    TempDir dir;
    fs::path state = dir / "state";
    HallpassOptions options(const std::string& url, const std::string& extra = "") const {
        HallpassOptions o;
        o.server_yaml = "state_dir: \"" + state.string() + "\"";
        o.rules_yaml = "lists:\n  ads: { url: \"" + url + "\", refresh: 1h" + extra +
                       " }\nrules:\n  - {name: ads, action: block, lists: [ads]}\n";
        return o;
    }
    // hallpass --update-lists on the configuration `proxy` runs with.
    RunResult update(const Hallpass& proxy) const {
        return run({hallpass_bin(), "--update-lists", "-c", proxy.config_path().string()}, 60s);
    }
    std::string copy() const { return read_file(state / "lists" / "ads.list"); }
};

// 403 from the rule when blocked; anything else (502: ad0.example does not resolve) when not.
int status_of(const Hallpass& proxy, const std::string& host) {
    auto r =
        curl(proxy.port(), {"-s", "-o", "/dev/null", "-w", "%{http_code}", "http://" + host + "/"});
    return std::atoi(r.out.c_str());
}

}  // namespace

TEST_CASE("list by url: downloaded at start, kept, reloaded, then 304 while unchanged") {
    Setup s;
    Nginx origin(s.dir);
    origin.put("ads.txt", names(20));
    Hallpass proxy(s.dir, s.options(origin.url("/ads.txt")));
    REQUIRE_MESSAGE(proxy.wait_for_log("list ads: fetched", 15s), proxy.stderr_text());
    REQUIRE(proxy.wait_for_log("reload ok", 15s));
    CHECK(status_of(proxy, "ad7.example") == 403);
    CHECK(status_of(proxy, "sub.ad7.example") == 403);
    CHECK(status_of(proxy, "other.example") != 403);
    CHECK(s.copy() == names(20));
    CHECK(contains(read_file(s.state / "lists" / "ads.list.meta"), "entries: 20"));

    auto again = s.update(proxy);
    CHECK_MESSAGE(again.exit_code == 0, again.out << again.err);
    CHECK(contains(again.out, "ads: not modified"));
    // nginx saw a conditional request and answered 304.
    bool conditional = false;
    for (const auto& a : origin.accesses()) conditional = conditional || a.status == 304;
    CHECK_MESSAGE(conditional, origin.access_log());

    // --check tells where the list comes from and how old the copy is.
    auto check = run({hallpass_bin(), "--check", "-c", proxy.config_path().string()});
    CHECK(contains(check.out, "ads: from " + origin.url("/ads.txt") + ", copy fetched"));
}

TEST_CASE("list by url: what is not a good new list keeps the last good copy") {
    Setup s;
    Nginx origin(s.dir);
    origin.put("ads.txt", names(20));
    Hallpass proxy(s.dir, s.options(origin.url("/ads.txt")));
    REQUIRE(proxy.wait_for_log("list ads: fetched", 15s));
    REQUIRE(proxy.wait_for_log("reload ok", 15s));
    const std::string good = s.copy();

    SUBCASE("404") {
        fs::remove(origin.docroot() / "ads.txt");
        auto r = s.update(proxy);
        CHECK(r.exit_code == 1);
        CHECK_MESSAGE(contains(r.out, "ads: failed: HTTP 404"), r.out);
    }
    SUBCASE("an HTML error page") {
        origin.put("ads.txt",
                   "<!DOCTYPE html><html><body><h1>Service Unavailable</h1></body></html>\n");
        auto r = s.update(proxy);
        CHECK(r.exit_code == 1);
        CHECK_MESSAGE(contains(r.out, "ads: refused: an HTML page, not a list"), r.out);
    }
    SUBCASE("binary data") {
        origin.put("ads.txt", std::string("ad1.example\n\0\x01\x02", 15));
        auto r = s.update(proxy);
        CHECK(r.exit_code == 1);
        CHECK_MESSAGE(contains(r.out, "ads: refused: binary data"), r.out);
    }
    SUBCASE("a list that shrinks to 10 %") {
        origin.put("ads.txt", names(2));
        auto r = s.update(proxy);
        CHECK(r.exit_code == 1);
        CHECK_MESSAGE(contains(r.out, "ads: refused: shrank from 20 to 2 entries"), r.out);
    }
    CHECK(s.copy() == good);
    CHECK(status_of(proxy, "ad7.example") == 403);
}

TEST_CASE("list by url: a server slower than the timeout fails, and the copy stays") {
    Setup s;
    Nginx origin(s.dir);
    origin.put("ads.txt", names(20));
    origin.put("slow/ads.txt", names(40000));  // ~560 KB at 100 KiB/s: over 5 s
    Hallpass proxy(s.dir, s.options(origin.url("/ads.txt")));
    REQUIRE(proxy.wait_for_log("list ads: fetched", 15s));
    HallpassOptions slow = s.options(origin.url("/slow/ads.txt"), ", timeout: 1s");
    write_file(s.dir / "slow.yaml",
               "server:\n  state_dir: \"" + s.state.string() + "\"\n" + slow.rules_yaml);
    const auto start = Clock::now();
    auto r = run({hallpass_bin(), "--update-lists", "-c", (s.dir / "slow.yaml").string()}, 60s);
    CHECK(r.exit_code == 1);
    CHECK_MESSAGE(contains(r.out, "ads: failed:"), r.out);
    CHECK(contains(r.out, "imed out"));
    CHECK(Clock::now() - start < 5s);
    CHECK(s.copy() == names(20));
}

TEST_CASE("list by url: TLS with a private CA (ca_file), refused without it") {
    Setup s;
    NginxOptions no;
    no.tls = true;
    Nginx origin(s.dir, no);
    origin.put("ads.txt", names(20));
    const std::string url = "https://127.0.0.1:" + std::to_string(origin.tls_port()) + "/ads.txt";
    const fs::path ca = s.dir / "nginx" / "cert.pem";  // self-signed: it is its own CA
    write_file(s.dir / "no-ca.yaml",
               "server:\n  state_dir: \"" + s.state.string() + "\"\n" + s.options(url).rules_yaml);
    auto without =
        run({hallpass_bin(), "--update-lists", "-c", (s.dir / "no-ca.yaml").string()}, 60s);
    CHECK(without.exit_code == 1);
    CHECK_MESSAGE(contains(without.out, "ads: failed:"), without.out);
    CHECK_FALSE(fs::exists(s.state / "lists" / "ads.list"));

    write_file(s.dir / "ca.yaml",
               "server:\n  state_dir: \"" + s.state.string() + "\"\n" +
                   s.options(url, ", ca_file: \"" + ca.string() + "\"").rules_yaml);
    auto with = run({hallpass_bin(), "--update-lists", "-c", (s.dir / "ca.yaml").string()}, 60s);
    CHECK_MESSAGE(with.exit_code == 0, with.out << with.err);
    CHECK(contains(with.out, "ads: updated: 20 entries"));
    CHECK(s.copy() == names(20));
}

TEST_CASE("list by url: a restart with the origin down filters from the kept copy at once") {
    Setup s;
    std::string url;
    {
        Nginx origin(s.dir);
        origin.put("ads.txt", names(20));
        url = origin.url("/ads.txt");
        Hallpass proxy(s.dir, s.options(url));
        REQUIRE(proxy.wait_for_log("list ads: fetched", 15s));
        CHECK(proxy.stop() == 0);
    }  // nginx is gone: its port refuses connections
    // The copy is older than its refresh interval now: the restarted proxy tries at once.
    const fs::path meta = s.state / "lists" / "ads.list.meta";
    std::string text = read_file(meta);
    text.replace(text.find("fetched: "), text.find('\n') - text.find("fetched: "), "fetched: 1");
    write_file(meta, text);
    Hallpass proxy(s.dir, s.options(url));
    CHECK(status_of(proxy, "ad3.example") == 403);  // from the copy, before any fetch
    CHECK(proxy.wait_for_log("list ads: fetching " + url + " failed", 15s));
    CHECK(contains(proxy.stderr_text(), "the last good copy stays"));
    CHECK(status_of(proxy, "ad3.example") == 403);
}

TEST_CASE("list by url: the first start without the network and without a copy is not fatal") {
    Setup s;
    Hallpass proxy(s.dir, s.options("http://127.0.0.1:9/ads.txt"));  // discard port: refused
    CHECK(status_of(proxy, "ad3.example") != 403);                   // empty until fetched
    CHECK(proxy.wait_for_log("list ads: fetching", 15s));
    auto check = run({hallpass_bin(), "--check", "-c", proxy.config_path().string()});
    CHECK(check.exit_code == 0);
    CHECK(contains(check.out, "ads: from http://127.0.0.1:9/ads.txt, no copy yet"));
}

TEST_CASE("list by url: bad keys are config errors with their position") {
    TempDir dir;
    write_file(dir / "lists" / "a.txt", "a.example\n");
    const std::pair<const char*, const char*> cases[] = {
        {"lists:\n  a: { url: \"ftp://x/a.txt\" }\n", "starts with http:// or https://"},
        {"lists:\n  a: { url: \"http://x/a.txt\", refresh: 10s }\n", "at least a minute"},
        {"lists:\n  a: { url: \"http://x/a.txt\", refresh: soon }\n", "refresh is a duration"},
        {"lists:\n  a: { url: \"http://x/a.txt\", max_shrink: 150% }\n", "0-100%"},
        {"lists:\n  a: { url: \"http://x/a.txt\", timeout: 0s }\n", "timeout is a duration"},
        {"lists:\n  a: { url: \"http://x/a.txt\", ca_file: nope.pem }\n", "cannot read ca_file"},
        {"lists:\n  a: { file: lists/a.txt, refresh: 24h }\n", "is for a list with a url"},
        {"lists:\n  a: { format: plain }\n", "needs a file or a url"},
    };
    for (const auto& [yaml, message] : cases) {
        CAPTURE(yaml);
        write_file(dir / "rules.yaml", yaml);
        auto r = run({hallpass_bin(), "--check", "-c", (dir / "rules.yaml").string()});
        CHECK(r.exit_code == 1);
        CHECK_MESSAGE(contains(r.err, "rules.yaml:2:"), r.err);
        CHECK_MESSAGE(contains(r.err, message), r.err);
    }
}

TEST_CASE("list by url: a list added by a reload is fetched at once, one removed is no more") {
    Setup s;
    Nginx origin(s.dir);
    origin.put("ads.txt", names(20));
    HallpassOptions o = s.options(origin.url("/ads.txt"));
    const std::string with_list = o.rules_yaml;
    o.rules_yaml = "rules: []\n";
    Hallpass proxy(s.dir, o);
    CHECK(status_of(proxy, "ad1.example") != 403);
    proxy.write_rules(with_list);
    proxy.reload();
    REQUIRE_MESSAGE(proxy.wait_for_log("list ads: fetched", 15s), proxy.stderr_text());
    REQUIRE(proxy.wait_for_log_count("reload ok", 2, 15s));
    CHECK(status_of(proxy, "ad1.example") == 403);
}
