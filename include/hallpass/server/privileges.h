// Running as root only as long as needed: hallpass binds its sockets and opens its log files as
// root, then becomes server.user. Two steps, because two of the settings are per thread and
// must be made before any thread starts, while the account switch must come after the binds.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>

#include "hallpass/base/error.h"

namespace hallpass {

struct ServiceAccount {
    std::string name;
    uid_t uid = 0;
    gid_t gid = 0;
};

// Before any thread starts. When running as root with a `user` other than "root": finds the
// account (or "nobody", with a warning, when it does not exist), sets no_new_privs and empties
// the capability bounding set, so that no thread created later can regain a privilege by
// exec. Returns the account to switch to, or nothing (not root, or `user: root`: a warning).
Result<std::optional<ServiceAccount>> prepare_privilege_drop(const std::string& user);

// After the sockets are bound and the logs open: drops the supplementary groups and switches
// group and user (glibc applies it to every thread), which clears every capability. Fails when
// root could be regained.
Result<bool> switch_to(const ServiceAccount& account);

// Whether `account` may read `path` (owner, group and other permission bits, and every
// directory on the way searchable); for --check's warnings. Root reads anything.
bool account_can_read(const ServiceAccount& account, const std::string& path);

// The account `user` names, as prepare_privilege_drop() would choose it (without changing
// anything); nothing when it would keep root or when not running as root.
std::optional<ServiceAccount> service_account(const std::string& user, bool* fell_back);

}  // namespace hallpass
