// hallpass as an installed service: the sd_notify conversation systemd has with it (readiness,
// reloads that succeed and fail, watchdog pings, stopping), the unit file as systemd-analyze
// verifies it, the man pages as man(1) renders them (and every configuration key documented),
// and what `meson install` puts where.
#include <doctest/doctest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <set>
#include <sstream>

#include "harness.h"

using namespace hallpass::e2e;

namespace {

fs::path build_root() { return artifacts_dir().parent_path().parent_path(); }

// A datagram socket standing in for systemd's notification socket.
class NotifySocket {
  public:
    explicit NotifySocket(const fs::path& path) : path_(path) {
        fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        REQUIRE(fd_ >= 0);
        sockaddr_un a{};
        a.sun_family = AF_UNIX;
        REQUIRE(path.string().size() < sizeof a.sun_path);
        std::strcpy(a.sun_path, path.c_str());
        REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
        timeval tv{0, 100 * 1000};
        ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    }
    ~NotifySocket() {
        ::close(fd_);
        ::unlink(path_.c_str());
    }
    // Waits until a message containing `field` (a "KEY=VALUE" line) arrives; returns it.
    std::optional<std::string> wait_for(std::string_view field, Ms timeout = 10s) {
        const auto end = Clock::now() + timeout;
        while (Clock::now() < end) {
            char buf[4096];
            ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
            if (n <= 0) continue;
            std::string msg(buf, static_cast<size_t>(n));
            messages.push_back(msg);
            std::istringstream lines(msg);
            for (std::string line; std::getline(lines, line);) {
                if (line == field) return msg;
            }
        }
        return std::nullopt;
    }
    std::vector<std::string> messages;

  private:
    fs::path path_;
    int fd_ = -1;
};

// Every quoted word that follows `marker` in `text` up to `end` (or, with end empty, the one
// word right after the marker). No std::regex: GCC 12 warns inside it under ASan (-Werror).
std::vector<std::string> quoted_after(const std::string& text, std::string_view marker,
                                      std::string_view end) {
    std::vector<std::string> out;
    for (size_t at = text.find(marker); at != std::string::npos; at = text.find(marker, at)) {
        at += marker.size();
        const size_t stop = end.empty() ? text.find('"', at) : text.find(end, at);
        if (stop == std::string::npos) break;
        if (end.empty()) {
            out.push_back(text.substr(at, stop - at));
            continue;
        }
        const std::string body = text.substr(at, stop - at);
        for (size_t q = body.find('"'); q != std::string::npos; q = body.find('"', q)) {
            const size_t close = body.find('"', q + 1);
            if (close == std::string::npos) break;
            out.push_back(body.substr(q + 1, close - q - 1));
            q = close + 1;
        }
    }
    return out;
}

std::string all(const std::vector<std::string>& v) {
    std::string s;
    for (const auto& m : v) s += "[" + m + "] ";
    return s;
}

}  // namespace

TEST_CASE("service: sd_notify readiness, reloads, watchdog pings and stopping") {
#ifndef HALLPASS_HAVE_SYSTEMD
    MESSAGE("built without libsystemd (apt-get install libsystemd-dev): skipped");
    return;
#else
    TempDir dir;
    NotifySocket sock(dir / "notify.sock");
    HallpassOptions o;
    // WATCHDOG_USEC 400 ms: a ping every 200 ms.
    o.command_prefix = {"env", "NOTIFY_SOCKET=" + (dir / "notify.sock").string(),
                        "WATCHDOG_USEC=400000"};
    Hallpass proxy(dir, o);
    auto ready = sock.wait_for("READY=1");
    REQUIRE_MESSAGE(ready, "no READY=1; got " << all(sock.messages));
    CHECK(contains(*ready, "STATUS=listening on 127.0.0.1:" + std::to_string(proxy.port())));
    CHECK(proxy.wait_for_log("ready"));  // readiness comes after the listeners are up

    SUBCASE("watchdog pings keep coming while the workers run") {
        for (int i = 0; i < 3; ++i) {
            CHECK_MESSAGE(sock.wait_for("WATCHDOG=1", 2s), all(sock.messages));
        }
    }
    SUBCASE("a reload reports RELOADING=1, then READY=1 with its outcome") {
        proxy.write_rules("rules:\n  - {name: r, action: block, hosts: [a.test]}\n");
        proxy.reload();
        auto reloading = sock.wait_for("RELOADING=1");
        REQUIRE_MESSAGE(reloading, all(sock.messages));
        CHECK(contains(*reloading, "MONOTONIC_USEC="));
        auto done = sock.wait_for("READY=1");
        REQUIRE_MESSAGE(done, all(sock.messages));
        CHECK(contains(*done, "STATUS=rules reloaded"));

        proxy.write_rules("rules:\n  - {name: r, action: maybe}\n");  // broken
        proxy.reload();
        REQUIRE(sock.wait_for("RELOADING=1"));
        auto failed = sock.wait_for("READY=1");
        REQUIRE_MESSAGE(failed, all(sock.messages));
        CHECK(contains(*failed, "STATUS=reload failed, the previous rules stay"));
    }
    SUBCASE("SIGTERM reports STOPPING=1") {
        ::kill(proxy.pid(), SIGTERM);
        CHECK_MESSAGE(sock.wait_for("STOPPING=1"), all(sock.messages));
        CHECK(proxy.stop() == 0);
    }
#endif
}

TEST_CASE("service: a notification socket that is not there changes nothing") {
    // Not under systemd, or systemd gone: the reports go nowhere, the proxy serves as always.
    TempDir dir;
    ScriptedOrigin origin;
    HallpassOptions o;
    o.command_prefix = {"env", "NOTIFY_SOCKET=" + (dir / "absent.sock").string(),
                        "WATCHDOG_USEC=200000"};
    Hallpass proxy(dir, o);
    CHECK(probe(proxy.port(), origin.port(), "/") == 200);
    proxy.reload();
    CHECK(proxy.wait_for_log("reload"));
    CHECK(probe(proxy.port(), origin.port(), "/") == 200);
    CHECK(proxy.stop() == 0);
}

TEST_CASE("service: systemd-analyze verify accepts the unit") {
    const fs::path unit = build_root() / "examples" / "hallpass.service";
    REQUIRE_MESSAGE(fs::exists(unit), unit);
    if (run({"sh", "-c", "command -v systemd-analyze"}, 5s).exit_code != 0) {
        FAIL("systemd-analyze is missing (apt-get install systemd): scripts/test installs it");
    }
    // The unit names the installed binary; verify checks that ExecStart exists, so a copy
    // names the one built here.
    TempDir dir;
    std::string text = read_file(unit);
    const std::string installed =
        text.substr(text.find("ExecStart=") + 10,
                    text.find(" -c", text.find("ExecStart=")) - text.find("ExecStart=") - 10);
    for (size_t at; (at = text.find(installed)) != std::string::npos;) {
        text.replace(at, installed.size(), hallpass_bin());
    }
    write_file(dir / "hallpass.service", text);
    auto v =
        run({"systemd-analyze", "verify", "--man=no", (dir / "hallpass.service").string()}, 60s);
    INFO("systemd-analyze: " << v.out << v.err);
    // Only the unit's own lines count: on a host without systemd as PID 1 the tool may also
    // talk about other units it loads.
    std::istringstream err(v.err);
    for (std::string line; std::getline(err, line);) {
        if (contains(line, "hallpass.service")) FAIL_CHECK(line);
    }
    CHECK(v.exit_code == 0);
    for (const char* key :
         {"Type=notify", "ExecStartPre=", "--check", "ExecReload=", "LogsDirectory=hallpass",
          "StateDirectory=hallpass", "LimitNOFILE=", "ProtectSystem=strict", "ProtectHome=yes",
          "PrivateTmp=yes", "NoNewPrivileges=yes", "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
          "RestrictAddressFamilies=", "SystemCallFilter=@system-service", "User=hallpass",
          "WatchdogSec="}) {
        CHECK_MESSAGE(contains(text, key), key);
    }
}

TEST_CASE("service: the man pages render without warnings and document every key") {
    const fs::path man_dir = build_root() / "docs" / "man";
    if (!fs::exists(man_dir / "hallpass.8")) {
        FAIL("the man pages were not built (apt-get install scdoc): scripts/test installs it");
    }
    for (const char* page : {"hallpass.8", "hallpass.yaml.5"}) {
        auto r = run({"sh", "-c", "MANWIDTH=80 man --warnings -E UTF-8 -l \"$0\" 2>&1 >/dev/null",
                      (man_dir / page).string()},
                     30s);
        CHECK_MESSAGE(r.exit_code == 0, page << ": " << r.out << r.err);
        CHECK_MESSAGE(r.out.empty(), page << " warns: " << r.out);
    }
    // Every server key in the configuration table, and every key of a rule and a list.
    const std::string page = read_file(source_root() / "docs" / "man" / "hallpass.yaml.5.scd");
    std::set<std::string> keys;
    const std::string config = read_file(source_root() / "src" / "config" / "config.cpp");
    for (std::string_view row : {"int_row(\"", "bool_row(\"", "port_list_row(\"", "{\""}) {
        for (const std::string& key : quoted_after(config, row, "")) {
            // {"NAME", set_...}: a row with its own setter (other braces hold no keys of ours).
            if (row == "{\"" && !contains(config, "{\"" + key + "\", set_")) continue;
            keys.insert(key);
        }
    }
    CHECK(keys.size() > 30);
    CHECK(keys.count("pac_listen") == 1);
    // The key arrays: top-level sections, a rule's and a list's keys (rules_loader), pac:'s and
    // the access log's (config).
    const std::string loader =
        read_file(source_root() / "src" / "rules" / "rules_loader.cpp") + config;
    for (std::string_view array :
         {"kRuleKeys[] = {", "kListKeys[] = {", "kTopLevelKeys[] = {", "kKeys[] = {",
          "kScheduleKeys[] = {", "kWindowKeys[] = {", "kSafeSearchKeys[] = {"}) {
        for (const std::string& key : quoted_after(loader, array, "}")) keys.insert(key);
    }
    CHECK(keys.count("direct_domains") == 1);
    CHECK(keys.count("dest_nets") == 1);
    CHECK(keys.count("except_dates") == 1);
    CHECK(keys.count("duckduckgo") == 1);
    for (const std::string& key : keys) {
        CHECK_MESSAGE(contains(page, "*" + key + "*"), "hallpass.yaml(5) lacks " << key);
    }
}

TEST_CASE("service: meson install puts every file in its place") {
    if (run({"sh", "-c", "command -v meson"}, 5s).exit_code != 0) FAIL("meson is missing");
    TempDir dest;
    auto r = run({"meson", "install", "-C", build_root().string(), "--no-rebuild", "--quiet",
                  "--destdir", dest.path().string()},
                 120s);
    REQUIRE_MESSAGE(r.exit_code == 0, r.out << r.err);
    // The prefix of this build (scripts/test: the default, /usr/local).
    auto prefix_run = run({"meson", "introspect", "--buildoptions", build_root().string()}, 30s);
    REQUIRE(prefix_run.exit_code == 0);
    const auto found = quoted_after(prefix_run.out, "\"name\": \"prefix\", \"value\": \"", "");
    REQUIRE(found.size() == 1);
    const std::string configured_prefix = found[0];
    const fs::path prefix = dest.path() / fs::path(configured_prefix).relative_path();
    const fs::path etc = configured_prefix == "/usr" ? dest.path() / "etc" : prefix / "etc";
    for (const fs::path& p :
         {prefix / "sbin" / "hallpass", prefix / "share" / "man" / "man8" / "hallpass.8",
          prefix / "share" / "man" / "man5" / "hallpass.yaml.5",
          prefix / "lib" / "systemd" / "system" / "hallpass.service",
          prefix / "lib" / "sysusers.d" / "hallpass.conf",
          prefix / "lib" / "tmpfiles.d" / "hallpass.conf", etc / "logrotate.d" / "hallpass",
          etc / "hallpass" / "rules.yaml", etc / "hallpass" / "lists" / "example-ads.txt"}) {
        CHECK_MESSAGE(fs::exists(p), p);
    }
    const std::string unit = read_file(prefix / "lib" / "systemd" / "system" / "hallpass.service");
    CHECK(contains(
        unit, "ExecStart=" + configured_prefix + "/sbin/hallpass -c /etc/hallpass/rules.yaml"));
    CHECK(contains(read_file(prefix / "lib" / "sysusers.d" / "hallpass.conf"), "u hallpass"));
    // The installed rules log where the unit lets the service write, and are valid as installed.
    const fs::path rules = etc / "hallpass" / "rules.yaml";
    CHECK(contains(read_file(rules), "access_log: {path: /var/log/hallpass/access.log"));
    auto check = run({(prefix / "sbin" / "hallpass").string(), "--check", "-c", rules.string()});
    CHECK_MESSAGE(check.exit_code == 0, check.out << check.err);
    CHECK(contains(read_file(etc / "logrotate.d" / "hallpass"), "hallpass.service"));
}
