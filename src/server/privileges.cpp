// setgroups/setgid/setuid after the binds; PR_SET_NO_NEW_PRIVS and PR_CAPBSET_DROP before the
// first thread (both are per thread, inherited by threads created later). A uid change from 0
// to non-zero clears the permitted, effective and ambient capability sets of every thread.
#include "hallpass/server/privileges.h"

#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "hallpass/base/log.h"

namespace hallpass {
namespace {

std::optional<ServiceAccount> lookup(const std::string& name) {
    passwd pw{};
    passwd* found = nullptr;
    char buf[4096];
    if (getpwnam_r(name.c_str(), &pw, buf, sizeof buf, &found) != 0 || !found) return std::nullopt;
    return ServiceAccount{name, found->pw_uid, found->pw_gid};
}

bool may(const ServiceAccount& a, const struct stat& st, mode_t owner, mode_t group, mode_t other) {
    if (st.st_uid == a.uid) return (st.st_mode & owner) != 0;
    if (st.st_gid == a.gid) return (st.st_mode & group) != 0;
    return (st.st_mode & other) != 0;
}

}  // namespace

std::optional<ServiceAccount> service_account(const std::string& user, bool* fell_back) {
    if (fell_back) *fell_back = false;
    if (geteuid() != 0 || user == "root") return std::nullopt;
    if (auto a = lookup(user)) return a;
    if (fell_back) *fell_back = true;
    return lookup("nobody");
}

Result<std::optional<ServiceAccount>> prepare_privilege_drop(const std::string& user) {
    if (geteuid() != 0) {
        LOG_DEBUG("not started as root: server.user \"%s\" not needed", user.c_str());
        return std::optional<ServiceAccount>();
    }
    if (user == "root") {
        LOG_WARN("server.user is root: hallpass keeps every privilege of root while it runs");
        return std::optional<ServiceAccount>();
    }
    bool fell_back = false;
    auto account = service_account(user, &fell_back);
    if (!account) return Error{"server.user \"" + user + "\" does not exist, nor does nobody"};
    if (fell_back) {
        LOG_WARN(
            "server.user \"%s\" does not exist: running as nobody instead (create the "
            "account: the Debian package does)",
            user.c_str());
    }
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
        return Error{std::string("cannot set no_new_privs: ") + std::strerror(errno)};
    }
    for (int cap = 0; cap <= CAP_LAST_CAP; ++cap) {
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL) {
            // Without CAP_SETPCAP (some containers) the bounding set stays; no_new_privs and
            // the uid switch still leave no way back to a capability.
            LOG_WARN("cannot empty the capability bounding set: %s", std::strerror(errno));
            break;
        }
    }
    return account;
}

Result<bool> switch_to(const ServiceAccount& account) {
    if (setgroups(0, nullptr) != 0) {
        return Error{std::string("cannot drop supplementary groups: ") + std::strerror(errno)};
    }
    if (setgid(account.gid) != 0) {
        return Error{"cannot switch to group " + std::to_string(account.gid) + ": " +
                     std::strerror(errno)};
    }
    if (setuid(account.uid) != 0) {
        return Error{"cannot switch to user " + account.name + ": " + std::strerror(errno)};
    }
    if (account.uid != 0 && (setuid(0) == 0 || seteuid(0) == 0)) {
        return Error{"root could be regained after switching to " + account.name};
    }
    LOG_INFO("running as %s (uid %u, gid %u), no capabilities", account.name.c_str(),
             static_cast<unsigned>(account.uid), static_cast<unsigned>(account.gid));
    return true;
}

bool account_can_read(const ServiceAccount& account, const std::string& path) {
    if (account.uid == 0) return true;
    std::error_code ec;
    std::filesystem::path p = std::filesystem::absolute(path, ec);
    if (ec) return false;
    struct stat st {};
    if (::stat(p.c_str(), &st) != 0) return false;
    if (!may(account, st, S_IRUSR, S_IRGRP, S_IROTH)) return false;
    for (std::filesystem::path dir = p.parent_path(); !dir.empty(); dir = dir.parent_path()) {
        if (::stat(dir.c_str(), &st) != 0) return false;
        if (!may(account, st, S_IXUSR, S_IXGRP, S_IXOTH)) return false;
        if (dir == dir.root_path()) break;
    }
    return true;
}

}  // namespace hallpass
