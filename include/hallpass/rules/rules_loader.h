// The rule sections of rules.yaml (`default:`, `groups:`, `lists:`, `schedules:`, `rules:`,
// `safe_search:`) -> a validated
// RuleSpec: every name, CIDR, port, host and RE2 pattern checked, every reference resolved, every
// problem reported as file:line:col. Pure data out; rule_set compiles it. Runs at start-up and on
// the reload thread, never on an event loop.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "hallpass/base/error.h"
#include "hallpass/base/net_set.h"
#include "hallpass/rules/safe_search.h"
#include "hallpass/rules/schedule.h"

namespace hallpass {

class YamlSource;

enum class Action { Allow, Block };

struct Position {
    std::string file;
    int line = 0;
    int col = 0;
    std::string to_string() const;  // "file:line:col" (file without directories)
};

struct ListSpec {
    std::string name;
    std::string path;  // what is loaded: the file, or for a url list its kept copy ("" = none yet)
    std::string format;  // auto | plain | hosts | adblock (validated)
    Position pos;
    // A list by URL (url: given): fetched in the background every `refresh_s` and kept as
    // `cache_path` in the state directory; `file` (when given too) is used until a copy exists.
    std::string url;
    std::string cache_path;
    std::string file;  // the file: key, resolved ("" = none)
    int64_t refresh_s = 86'400;
    int max_shrink_pct =
        50;  // a new copy with fewer entries than (100 - this) % of the old is refused
    int timeout_s = 60;
    std::string ca_file;  // resolved; "" = the system's CAs
};

struct RuleSpecEntry {
    std::string text;  // canonical (hosts, domains) or as written (regexes)
    Position pos;
};

struct RuleSpec {
    std::string name;  // "rule N" (1-based) when not given
    Action action = Action::Block;
    Position pos;  // of the rule's map
    bool has_clients = false;
    NetSet clients;                          // compiled
    std::vector<std::string> client_labels;  // as written: IPs, CIDRs, group names
    std::vector<RuleSpecEntry> hosts;        // exact names and IP literals, canonical
    std::vector<RuleSpecEntry> domains;      // canonical
    std::vector<RuleSpecEntry> host_regex;
    std::vector<RuleSpecEntry> url_regex;
    std::vector<size_t> lists;  // indexes into RulesSpec::lists
    bool has_dest_nets = false;
    NetSet dest_nets;
    std::vector<std::string> dest_net_labels;
    std::vector<uint16_t> ports;  // empty = any
    std::vector<size_t>
        when;             // schedule indexes: the rule holds while one is active; empty = always
    std::string message;  // plain words for the person blocked ("" = none)

    bool has_destination() const {
        return !hosts.empty() || !domains.empty() || !host_regex.empty() || !url_regex.empty() ||
               !lists.empty() || has_dest_nets;
    }
};

struct RulesSpec {
    std::string file;
    Action default_action = Action::Allow;
    std::map<std::string, NetSet> groups;
    std::vector<ListSpec> lists;
    std::vector<Schedule> schedules;
    std::vector<RuleSpec> rules;
    std::vector<SafeSearchSpec> safe_search;
    std::string block_page_path;  // server.block_page, resolved; "" = built-in page
};

// Reads the rule sections of an already parsed file (the server section is config's).
// `state_dir`: where lists by URL keep their copies (server.state_dir).
Result<RulesSpec> load_rules_spec(const YamlSource& src, const std::string& state_dir = "");

// The kept copy of list `name` in `state_dir`.
std::string list_cache_path(const std::string& state_dir, const std::string& name);

// Convenience: the whole file from disk.
Result<RulesSpec> load_rules_spec_file(const std::string& path);

}  // namespace hallpass
