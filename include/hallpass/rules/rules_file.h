// Loading the whole rules file: the `server:` section, the rule sections, every list, compiled
// into a RuleSet. One function for start-up, SIGHUP reloads and `--check`, so all three accept
// and refuse exactly the same files. Blocking (file I/O, compiling): never on an event loop.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "hallpass/base/error.h"
#include "hallpass/config/config.h"
#include "hallpass/rules/rule_set.h"
#include "hallpass/rules/rules_loader.h"

namespace hallpass {

struct LoadedRules {
    ServerConfig server;
    std::shared_ptr<const RuleSet> rules;
    double load_ms = 0;      // wall time to read, parse and compile
    long rss_delta_kib = 0;  // process RSS growth while loading (approximate)
};

// `previous`: the rule set in force when reloading (see RuleSet::compile), or null; `pacer`: a
// reload's (pacer.h), or null to run flat out (start-up, --check).
Result<LoadedRules> load_rules_file(const std::string& path, const RuleSet* previous = nullptr,
                                    Pacer* pacer = nullptr);

// The lists by URL that the rules file at `path` names, as the loader reads them (no list is
// loaded). Their copies live in `state_dir`, or with "" in the file's own server.state_dir.
Result<std::vector<ListSpec>> load_url_lists(const std::string& path,
                                             const std::string& state_dir = "");

// Current resident set size of this process in KiB (VmRSS), or 0.
long current_rss_kib();

}  // namespace hallpass
