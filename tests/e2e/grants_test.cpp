// Grants on the real binary: `hallpass grant` over the control socket makes an exception to
// the rules at once, `grants` lists it, it survives a restart and a reload, `revoke` ends it;
// a pause (--block) closes the paused device's open tunnels and shows its note on the block
// page; a grant expires by itself (the clock moved by libfaketime) and what it let through is
// closed; the admin endpoint takes the same requests only with its token; the socket is 0660
// for root and the hallpass-admin group.
#include <doctest/doctest.h>
#include <grp.h>
#include <sys/stat.h>

#include "harness.h"

using namespace hallpass::e2e;

namespace {

// 127.0.0.1 is the kid; youtube.test is blocked for kids, site.test is not.
const char* kRules = R"(groups:
  kids: [127.0.0.1]
rules:
  - name: no-youtube
    action: block
    clients: kids
    domains: [youtube.test]
    message: "YouTube is for the weekend."
)";

struct Family {
    TempDir dir;
    Nginx origin{dir};
    fs::path socket = dir / "run" / "control.sock";
    fs::path state = dir / "state";
    std::vector<std::string> prefix;  // before the hallpass binary (faketime)
    std::unique_ptr<Hallpass> proxy;

    std::string admin = "off";
    std::string extra_yaml;
    explicit Family(std::vector<std::string> command_prefix = {}, std::string extra = {},
                    std::string admin_address = "off")
        : prefix(std::move(command_prefix)),
          admin(std::move(admin_address)),
          extra_yaml(std::move(extra)) {
        origin.put("1k", std::string(1024, 'x'));
        start();
    }
    void start() {
        proxy.reset();
        HallpassOptions o;
        o.admin = admin;
        o.rules_yaml = kRules;
        o.hosts = {"site.test", "youtube.test", "localhost"};
        o.command_prefix = prefix;
        o.control_socket = socket.string();
        o.server_yaml = "state_dir: " + state.string() + "\nconnect_ports: [" +
                        std::to_string(origin.port()) + "]\n" + extra_yaml;
        o.log_level = "info";
        proxy = std::make_unique<Hallpass>(dir, o);
    }
    // `hallpass ARGS... -c CONFIG`
    RunResult cli(std::vector<std::string> args) {
        std::vector<std::string> argv = prefix;
        argv.push_back(hallpass_bin());
        argv.insert(argv.end(), args.begin(), args.end());
        argv.insert(argv.end(), {"-c", proxy->config_path().string()});
        return run(argv);
    }
    int status(const char* host, const std::string& source = "127.0.0.1") {
        RawClient c(proxy->port(), "127.0.0.1", 5s, 0, source);
        c.send(proxy_get(origin.port(), "/1k", host));
        auto r = c.read_final_response();
        return r ? r->status : 0;
    }
    std::optional<HttpResponse> get(const char* host) {
        RawClient c(proxy->port());
        c.send(proxy_get(origin.port(), "/1k", host));
        return c.read_final_response();
    }
    // An open tunnel to host through the proxy.
    std::unique_ptr<RawClient> tunnel(const char* host) {
        auto c = std::make_unique<RawClient>(proxy->port());
        const std::string a = std::string(host) + ":" + std::to_string(origin.port());
        c->send("CONNECT " + a + " HTTP/1.1\r\nHost: " + a + "\r\n\r\n");
        auto r = c->read_response(5s, true);
        REQUIRE(r);
        REQUIRE(r->status == 200);
        return c;
    }
};

}  // namespace

TEST_CASE("grants: an exception over the control socket, listed, kept across restarts, revoked") {
    Family f;
    CHECK(f.status("youtube.test") == 403);
    auto g = f.cli({"grant", "--clients", "kids", "--domains", "youtube.test", "--for", "30m"});
    INFO(g.out, g.err);
    REQUIRE(g.exit_code == 0);
    CHECK(contains(g.out, "grant 1: allow kids -> youtube.test until "));
    CHECK(contains(g.out, "(30 min left)"));
    CHECK(f.status("youtube.test") == 200);               // at once
    CHECK(f.status("youtube.test", "127.0.0.2") == 200);  // (never blocked for others)

    auto list = f.cli({"grants"});
    CHECK(list.exit_code == 0);
    CHECK(contains(list.out, "grant 1: allow kids -> youtube.test"));
    // --explain (reading the state directory) knows it.
    auto ex = f.cli({"--explain", "127.0.0.1", "http://youtube.test/"});
    CHECK(contains(ex.out, "decision: allow"));
    CHECK(contains(ex.out, "allowed by grant 1 until "));

    // A restart and a reload keep it.
    f.start();
    CHECK(f.status("youtube.test") == 200);
    f.proxy->reload();
    REQUIRE(f.proxy->wait_for_log("reload ok in ", 10s));
    CHECK(f.status("youtube.test") == 200);

    auto revoked = f.cli({"revoke", "1"});
    CHECK(revoked.exit_code == 0);
    CHECK(contains(revoked.out, "grant 1 revoked"));
    CHECK(f.status("youtube.test") == 403);
    CHECK(f.cli({"revoke", "1"}).exit_code == 1);  // no such grant any more
    CHECK(contains(f.cli({"grants"}).out, "no grants in force"));

    // Bad requests are refused with a reason.
    auto bad = f.cli({"grant", "--clients", "teens", "--domains", "youtube.test", "--for", "30m"});
    CHECK(bad.exit_code == 1);
    CHECK(contains(bad.err, "\"teens\" is neither a group of the rules nor an address or CIDR"));
    bad = f.cli({"grant", "--clients", "kids", "--domains", "youtube.test", "--for", "soon"});
    CHECK(bad.exit_code == 1);
    CHECK(contains(bad.err, "for is a duration"));
}

TEST_CASE("grants: a pause closes the device's tunnels and its block page shows the note") {
    Family f;
    auto open = f.tunnel("site.test");
    auto g = f.cli({"grant", "--clients", "kids", "--block", "--for", "1h", "--note",
                    "Dinner time! Back at 8."});
    INFO(g.out, g.err);
    REQUIRE(g.exit_code == 0);
    CHECK(contains(g.out, "grant 1: block kids -> everything until "));
    CHECK(open->wait_closed(3s));
    CHECK(f.proxy->wait_for_log("closing tunnel to site.test: now blocked by rule \"grant 1\""));
    auto page = f.get("site.test");
    REQUIRE(page);
    CHECK(page->status == 403);
    CHECK(page->header("x-hallpass-rule") == "grant 1");
    CHECK(contains(page->body, "Dinner time! Back at 8."));
    CHECK(contains(page->body, "It opens again at <strong>"));
    CHECK(f.status("site.test", "127.0.0.2") == 200);  // another device
    // The info page at the proxy's own address lists the device's recent blocks.
    auto info =
        curl(f.proxy->port(), {"http://127.0.0.1:" + std::to_string(f.proxy->port()) + "/"});
    INFO(info.out);
    CHECK(contains(info.out, "<code>kids: 127.0.0.1</code>"));
    CHECK(contains(info.out, "<td>site.test</td><td>grant 1</td><td>Dinner time! Back at 8.</td>"));
}

TEST_CASE("grants: an exception expires by itself and closes what it let through") {
    TempDir clock_dir;
    FakeClock clock(clock_dir, "2026-12-07 20:00:00");
    Family f(clock.prefix());
    auto g = f.cli({"grant", "--clients", "kids", "--domains", "youtube.test", "--for", "30m"});
    INFO(g.out, g.err);
    REQUIRE(g.exit_code == 0);
    CHECK(contains(g.out, "until 20:30"));
    auto open = f.tunnel("youtube.test");
    CHECK(f.status("youtube.test") == 200);
    clock.set("2026-12-07 20:29:00");
    CHECK(f.status("youtube.test") == 200);
    clock.set("2026-12-07 20:30:05");
    CHECK(open->wait_closed(3s));
    CHECK(f.proxy->wait_for_log(
        "closing tunnel to youtube.test: now blocked by rule \"no-youtube\""));
    CHECK(f.status("youtube.test") == 403);
    CHECK(contains(f.cli({"grants"}).out, "no grants in force"));
}

TEST_CASE("grants: the admin endpoint takes control requests only with the token") {
    TempDir token_dir;
    const fs::path token_file = token_dir / "admin.token";
    write_file(token_file, "s3cret-token-0123456789\n");
    Family f({}, "admin_token_file: " + token_file.string(), "127.0.0.1:0");
    const std::string base = "http://127.0.0.1:" + std::to_string(f.proxy->admin_port());
    const std::string grant = base + "/api/grants?clients=kids&domains=youtube.test&for=10m";
    auto r = run({"curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", grant});
    CHECK(r.out == "401");
    r = run({"curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", "-H",
             "Authorization: Bearer wrong-token-0123456789", grant});
    CHECK(r.out == "401");
    CHECK(f.status("youtube.test") == 403);
    r = run({"curl", "-sS", "-X", "POST", "-H", "Authorization: Bearer s3cret-token-0123456789",
             grant});
    CHECK(contains(r.out, "\"id\":1,\"action\":\"allow\",\"clients\":[\"kids\"]"));
    CHECK(f.status("youtube.test") == 200);
    // The command line over the admin endpoint, with the token from the configuration.
    auto list = f.cli({"grants", "--admin", "127.0.0.1:" + std::to_string(f.proxy->admin_port())});
    CHECK(list.exit_code == 0);
    CHECK(contains(list.out, "grant 1: allow kids -> youtube.test"));
    // Statistics stay readable without a token.
    r = run({"curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", base + "/stats.json"});
    CHECK(r.out == "200");
}

TEST_CASE("grants: the control socket is for root and the hallpass-admin group only") {
    // The group the packaging creates; made here for the test when missing, and removed after.
    bool made_group = false;
    if (!getgrnam("hallpass-admin")) {
        REQUIRE(run({"groupadd", "--system", "hallpass-admin"}).exit_code == 0);
        made_group = true;
    }
    struct Cleanup {
        bool made;
        ~Cleanup() {
            if (made) (void)run({"groupdel", "hallpass-admin"});
        }
    } cleanup{made_group};
    Family f;
    struct stat st {};
    REQUIRE(::stat(f.socket.c_str(), &st) == 0);
    CHECK(S_ISSOCK(st.st_mode));
    CHECK((st.st_mode & 0777) == 0660);
    CHECK(st.st_gid == getgrnam("hallpass-admin")->gr_gid);
    // Someone else (nobody, with the directories open to them) is refused by the kernel.
    fs::permissions(f.dir.path(),
                    fs::perms::owner_all | fs::perms::group_exec | fs::perms::others_exec);
    fs::permissions(f.socket.parent_path(),
                    fs::perms::owner_all | fs::perms::group_exec | fs::perms::others_exec);
    auto r = run({"setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", hallpass_bin(),
                  "grants", "--control", f.socket.string(), "-c", f.proxy->config_path().string()});
    CHECK(r.exit_code == 2);
    CHECK(contains(r.err, "Permission denied"));
}
