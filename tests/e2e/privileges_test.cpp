// Started as root, hallpass binds and opens its logs as root, then runs as server.user: no
// supplementary groups, no capabilities (bounding set too), no_new_privs. Read from
// /proc/PID/status of the real binary. Reloads then read files as that user.
#include <doctest/doctest.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sstream>

#include "harness.h"

using namespace hallpass::e2e;

namespace {

std::string trim(std::string s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.erase(0, 1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\n')) s.pop_back();
    return s;
}

// "Uid:", "CapEff:", ... from /proc/PID/status: the fields after the name.
std::string status_field(pid_t pid, const std::string& name) {
    std::istringstream in(read_file("/proc/" + std::to_string(pid) + "/status"));
    for (std::string line; std::getline(in, line);) {
        if (line.rfind(name + ":", 0) == 0) return trim(line.substr(name.size() + 1));
    }
    return "?";
}

std::string nobody_ids() {
    passwd* pw = getpwnam("nobody");
    REQUIRE(pw);
    std::string u = std::to_string(pw->pw_uid);
    return u + "\t" + u + "\t" + u + "\t" + u;
}

}  // namespace

TEST_CASE("privileges: as root, hallpass runs as server.user with nothing left of root") {
    if (geteuid() != 0) {
        MESSAGE("not root: nothing to drop");
        return;
    }
    TempDir dir;
    ScriptedOrigin ok;
    ::chmod(dir.path().c_str(), 0755);  // the service user reads the config on reloads
    HallpassOptions opts;
    opts.user = "";  // the default: hallpass, or nobody when that account does not exist
    opts.extra_args = {"--log-level", "info"};
    const bool has_hallpass_user = getpwnam("hallpass") != nullptr;
    if (has_hallpass_user) opts.user = "nobody";
    Hallpass proxy(dir, opts);
    const pid_t pid = proxy.pid();
    CHECK(wait_until([&] { return status_field(pid, "Uid") != "0\t0\t0\t0"; }, 3s));
    CHECK(status_field(pid, "Uid") == nobody_ids());
    CHECK(status_field(pid, "Gid").rfind("0", 0) != 0);
    CHECK(status_field(pid, "Groups") == "");
    CHECK(status_field(pid, "CapEff") == "0000000000000000");
    CHECK(status_field(pid, "CapPrm") == "0000000000000000");
    CHECK(status_field(pid, "CapBnd") == "0000000000000000");
    CHECK(status_field(pid, "NoNewPrivs") == "1");
    if (!has_hallpass_user) CHECK(proxy.wait_for_log("running as nobody instead"));
    // Every thread, not only the main one.
    for (const auto& task : fs::directory_iterator("/proc/" + std::to_string(pid) + "/task")) {
        std::istringstream in(read_file(task.path() / "status"));
        for (std::string line; std::getline(in, line);) {
            if (line.rfind("CapBnd:", 0) == 0 || line.rfind("NoNewPrivs:", 0) == 0 ||
                line.rfind("Uid:", 0) == 0) {
                CAPTURE(task.path().string());
                CHECK(line.find("\t0\t0") == std::string::npos);
                if (line.rfind("NoNewPrivs:", 0) == 0) CHECK(trim(line.substr(11)) == "1");
                if (line.rfind("CapBnd:", 0) == 0) CHECK(contains(line, "0000000000000000"));
            }
        }
    }
    CHECK(probe(proxy.port(), ok.port(), "/") == 200);

    // A reload reads the file as that user: readable, it applies...
    proxy.write_rules("rules:\n  - name: b\n    action: block\n    hosts: [blocked.test]\n");
    ::chmod(proxy.config_path().c_str(), 0644);
    proxy.reload();
    CHECK(proxy.wait_for_log("reload ok"));
    // ...unreadable, it is a reload error and the old rules stay.
    ::chmod(proxy.config_path().c_str(), 0600);
    proxy.reload();
    CHECK(proxy.wait_for_log("reload failed"));
    CHECK(proxy.wait_for_log("cannot read config file: Permission denied"));
    CHECK(probe(proxy.port(), ok.port(), "/") == 200);
    CHECK(proxy.running());
}

TEST_CASE("privileges: server.user root keeps root, with a warning") {
    if (geteuid() != 0) return;
    TempDir dir;
    HallpassOptions opts;
    opts.user = "root";
    Hallpass proxy(dir, opts);
    CHECK(proxy.wait_for_log("server.user is root"));
    CHECK(status_field(proxy.pid(), "Uid") == "0\t0\t0\t0");
}

TEST_CASE("privileges: --check as root warns about files the service user cannot read") {
    if (geteuid() != 0) return;
    TempDir dir;  // mode 0700, root's: nobody reads nothing in it
    write_file(dir / "rules.yaml", "server:\n  user: nobody\nrules: []\n");
    auto r = run({hallpass_bin(), "--check", "-c", (dir / "rules.yaml").string()}, 10s);
    CHECK(r.exit_code == 0);
    CHECK_MESSAGE(contains(r.out, "warning: nobody cannot read " + (dir / "rules.yaml").string()),
                  r.out);
    ::chmod(dir.path().c_str(), 0755);
    ::chmod((dir / "rules.yaml").c_str(), 0644);
    auto fine = run({hallpass_bin(), "--check", "-c", (dir / "rules.yaml").string()}, 10s);
    CHECK_FALSE(contains(fine.out, "cannot read"));
}
