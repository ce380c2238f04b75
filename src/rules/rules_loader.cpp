// rules.yaml's rule sections -> RulesSpec. Checks everything a rule refers to, so a rule set that
// loads is one that means what it says: unknown keys (with did-you-mean), wrong types, undefined
// groups and lists, bad CIDRs, invalid hosts and RE2 patterns are errors at file:line:col.
#include "hallpass/rules/rules_loader.h"

#include <re2/re2.h>
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>

#include "hallpass/config/yaml_source.h"
#include "hallpass/http/uri.h"

namespace hallpass {
namespace {

// The host name inside something written as a URL or host:port ("https://games.test/",
// "games.test/play", "user@games.test:8080"), when there is one: for a did-you-mean.
std::optional<std::string> name_in_url(std::string_view text) {
    std::string_view rest = text;
    if (size_t scheme = rest.find("://"); scheme != std::string_view::npos) {
        rest.remove_prefix(scheme + 3);
    }
    rest = rest.substr(0, rest.find_first_of("/?#"));
    if (size_t at = rest.rfind('@'); at != std::string_view::npos) rest.remove_prefix(at + 1);
    if (!rest.starts_with('[')) {
        if (size_t colon = rest.rfind(':'); colon != std::string_view::npos) {
            rest = rest.substr(0, colon);
        }
    }
    if (rest.empty() || rest == text) return std::nullopt;
    auto host = canonicalize_host(rest);
    if (!host || host->kind != HostKind::Name) return std::nullopt;
    return host->host;
}

constexpr std::string_view kRuleKeys[] = {"name",    "action",     "clients",   "hosts",
                                          "domains", "host_regex", "url_regex", "lists",
                                          "ports",   "dest_nets",  "when",      "message"};
constexpr std::string_view kScheduleKeys[] = {"windows", "except_dates", "time_zone"};
constexpr std::string_view kWindowKeys[] = {"days", "from", "to"};
constexpr std::string_view kSafeSearchKeys[] = {"clients", "when", "google",
                                                "youtube", "bing", "duckduckgo"};
constexpr std::string_view kListKeys[] = {"file",       "format",  "url",    "refresh",
                                          "max_shrink", "timeout", "ca_file"};
constexpr std::string_view kTopLevelKeys[] = {"server", "default", "groups",    "lists",
                                              "rules",  "pac",     "schedules", "safe_search"};
constexpr std::string_view kFormats[] = {"auto", "plain", "hosts", "adblock"};

Position position_of(const YamlSource& src, const YAML::Node& node) {
    Error e = src.error_at(node, "");
    return Position{e.file, e.line, e.col};
}

bool is_name(std::string_view s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](unsigned char c) {
        return std::isalnum(c) || c == '_' || c == '-' || c == '.';
    });
}

class Loader {
  public:
    Loader(const YamlSource& src, std::string state_dir)
        : src_(src), state_dir_(std::move(state_dir)) {}

    Result<RulesSpec> load() {
        spec_.file = src_.name();
        const YAML::Node& root = src_.root();
        if (auto e = src_.check_keys(root, kTopLevelKeys, "the top level")) return *e;
        if (auto e = read_default(root["default"])) return *e;
        if (auto e = read_block_page(root["server"])) return *e;
        if (auto e = read_groups(root["groups"])) return *e;
        if (auto e = read_lists(root["lists"])) return *e;
        if (auto e = read_schedules(root["schedules"])) return *e;
        if (auto e = read_rules(root["rules"])) return *e;
        if (auto e = read_safe_search(root["safe_search"])) return *e;
        return std::move(spec_);
    }

  private:
    using Maybe = std::optional<Error>;

    Maybe read_default(const YAML::Node& node) {
        if (!node) return std::nullopt;
        auto text = src_.get_string(node, "default");
        if (!text) return text.error();
        if (*text == "allow") {
            spec_.default_action = Action::Allow;
        } else if (*text == "block") {
            spec_.default_action = Action::Block;
        } else {
            return src_.error_at(node, "\"default\" must be allow or block, got \"" + *text + "\"");
        }
        return std::nullopt;
    }

    Maybe read_block_page(const YAML::Node& server) {
        if (!server || !server.IsMap() || !server["block_page"]) return std::nullopt;
        auto path = src_.get_string(server["block_page"], "block_page");
        if (!path) return path.error();
        spec_.block_page_path = resolve(*path);
        if (!std::filesystem::is_regular_file(spec_.block_page_path)) {
            return src_.error_at(server["block_page"],
                                 "cannot read block page \"" + spec_.block_page_path + "\"");
        }
        return std::nullopt;
    }

    Maybe read_groups(const YAML::Node& node) {
        if (!node || node.IsNull()) return std::nullopt;
        if (!node.IsMap())
            return src_.error_at(node, "\"groups\" must be a map of name: [IPs/CIDRs]");
        for (auto it = node.begin(); it != node.end(); ++it) {
            std::string name = it->first.Scalar();
            if (!is_name(name)) return src_.error_at(it->first, "bad group name \"" + name + "\"");
            auto entries = src_.get_string_list(it->second, "groups." + name);
            if (!entries) return entries.error();
            NetSet set;
            for (size_t i = 0; i < entries->size(); ++i) {
                if (auto err = set.add((*entries)[i])) {
                    return src_.error_at(item(it->second, i), "group \"" + name + "\": " + *err);
                }
            }
            set.compile();
            spec_.groups.emplace(name, std::move(set));
        }
        return std::nullopt;
    }

    Maybe read_lists(const YAML::Node& node) {
        if (!node || node.IsNull()) return std::nullopt;
        if (!node.IsMap())
            return src_.error_at(node, "\"lists\" must be a map of name: {file: ...}");
        for (auto it = node.begin(); it != node.end(); ++it) {
            ListSpec list;
            list.name = it->first.Scalar();
            list.pos = position_of(src_, it->first);
            if (!is_name(list.name)) {
                return src_.error_at(it->first, "bad list name \"" + list.name + "\"");
            }
            const YAML::Node body = it->second;  // a copy: it->second is a temporary
            if (auto e = src_.check_keys(body, kListKeys, "list \"" + list.name + "\"")) return e;
            if (!body["file"] && !body["url"])
                return src_.error_at(body, "list \"" + list.name + "\" needs a file or a url");
            if (body["url"]) {
                if (auto e = read_list_url(body, list)) return e;
            } else {
                for (const char* key : {"refresh", "max_shrink", "timeout", "ca_file"}) {
                    if (body[key]) {
                        return src_.error_at(
                            body[key], std::string("\"") + key + "\" is for a list with a url");
                    }
                }
            }
            if (body["file"]) {
                auto file = src_.get_string(body["file"], "file");
                if (!file) return file.error();
                list.file = resolve(*file);
                // A url list may name a file that does not exist yet (it is the fallback).
                if (list.url.empty() && !std::filesystem::is_regular_file(list.file)) {
                    return src_.error_at(body["file"],
                                         "cannot read list file \"" + list.file + "\"");
                }
            }
            if (list.url.empty()) {
                list.path = list.file;
            } else if (std::filesystem::is_regular_file(list.cache_path)) {
                list.path = list.cache_path;  // the last good copy, at once (no network needed)
            } else if (!list.file.empty() && std::filesystem::is_regular_file(list.file)) {
                list.path = list.file;
            }
            list.format = "auto";
            if (body["format"]) {
                auto format = src_.get_string(body["format"], "format");
                if (!format) return format.error();
                if (std::find(std::begin(kFormats), std::end(kFormats), *format) ==
                    std::end(kFormats)) {
                    return src_.error_at(body["format"],
                                         "list format must be auto, plain, hosts "
                                         "or adblock, got \"" +
                                             *format + "\"");
                }
                list.format = *format;
            }
            spec_.lists.push_back(std::move(list));
        }
        return std::nullopt;
    }

    // url:, refresh:, max_shrink:, timeout:, ca_file: of a list by URL.
    Maybe read_list_url(const YAML::Node& body, ListSpec& list) {
        auto url = src_.get_string(body["url"], "url");
        if (!url) return url.error();
        if (!url->starts_with("http://") && !url->starts_with("https://")) {
            return src_.error_at(body["url"], "a list url starts with http:// or https://");
        }
        if (state_dir_.empty()) {
            return src_.error_at(body["url"], "lists by url need server.state_dir");
        }
        list.url = *url;
        list.cache_path = list_cache_path(state_dir_, list.name);
        if (body["refresh"]) {
            auto text = src_.get_string(body["refresh"], "refresh");
            if (!text) return text.error();
            auto seconds = parse_duration_s(*text);
            if (!seconds || *seconds < 60) {
                return src_.error_at(body["refresh"],
                                     "refresh is a duration of at least a minute: 90m, 24h, 7d");
            }
            list.refresh_s = *seconds;
        }
        if (body["max_shrink"]) {
            auto text = src_.get_string(body["max_shrink"], "max_shrink");
            if (!text) return text.error();
            std::string t = *text;
            if (t.ends_with('%')) t.pop_back();
            char* end = nullptr;
            long pct = std::strtol(t.c_str(), &end, 10);
            if (t.empty() || *end != '\0' || pct < 0 || pct > 100) {
                return src_.error_at(body["max_shrink"], "max_shrink is a percentage: 0-100%");
            }
            list.max_shrink_pct = static_cast<int>(pct);
        }
        if (body["timeout"]) {
            auto text = src_.get_string(body["timeout"], "timeout");
            if (!text) return text.error();
            auto seconds = parse_duration_s(*text);
            if (!seconds || *seconds < 1 || *seconds > 3600) {
                return src_.error_at(body["timeout"], "timeout is a duration: 1s to 1h");
            }
            list.timeout_s = static_cast<int>(*seconds);
        }
        if (body["ca_file"]) {
            auto ca = src_.get_string(body["ca_file"], "ca_file");
            if (!ca) return ca.error();
            list.ca_file = resolve(*ca);
            if (!std::filesystem::is_regular_file(list.ca_file)) {
                return src_.error_at(body["ca_file"],
                                     "cannot read ca_file \"" + list.ca_file + "\"");
            }
        }
        return std::nullopt;
    }

    // "90s", "30m", "24h", "7d", or plain seconds.
    static std::optional<int64_t> parse_duration_s(std::string_view text) {
        if (text.empty()) return std::nullopt;
        int64_t unit = 1;
        switch (text.back()) {
            case 's':
                unit = 1;
                text.remove_suffix(1);
                break;
            case 'm':
                unit = 60;
                text.remove_suffix(1);
                break;
            case 'h':
                unit = 3600;
                text.remove_suffix(1);
                break;
            case 'd':
                unit = 86400;
                text.remove_suffix(1);
                break;
            default:
                break;
        }
        if (text.empty() || text.size() > 9) return std::nullopt;
        int64_t n = 0;
        for (char c : text) {
            if (c < '0' || c > '9') return std::nullopt;
            n = n * 10 + (c - '0');
        }
        return n * unit;
    }

    Maybe read_rules(const YAML::Node& node) {
        if (!node || node.IsNull()) return std::nullopt;
        if (!node.IsSequence()) return src_.error_at(node, "\"rules\" must be a list of rules");
        for (size_t i = 0; i < node.size(); ++i) {
            RuleSpec rule;
            if (auto e = read_rule(node[i], i, rule)) return e;
            spec_.rules.push_back(std::move(rule));
        }
        return std::nullopt;
    }

    Maybe read_rule(const YAML::Node& node, size_t index, RuleSpec& rule) {
        rule.name = "rule " + std::to_string(index + 1);
        rule.pos = position_of(src_, node);
        if (!node.IsMap())
            return src_.error_at(node, rule.name + " must be a map (name: ..., action: ...)");
        if (node["name"]) {
            auto name = src_.get_string(node["name"], "name");
            if (!name) return name.error();
            rule.name = *name;
            for (const RuleSpec& other : spec_.rules) {
                if (other.name == rule.name) {
                    return src_.error_at(node["name"], "rule name \"" + rule.name +
                                                           "\" is already used at " +
                                                           other.pos.to_string());
                }
            }
        }
        const std::string where = "rule \"" + rule.name + "\"";
        if (auto e = src_.check_keys(node, kRuleKeys, where)) return e;
        if (!node["action"])
            return src_.error_at(node, where + " needs an action (allow or block)");
        auto action = src_.get_string(node["action"], "action");
        if (!action) return action.error();
        if (*action == "allow") {
            rule.action = Action::Allow;
        } else if (*action == "block") {
            rule.action = Action::Block;
        } else {
            return src_.error_at(
                node["action"], where + ": action must be allow or block, got \"" + *action + "\"");
        }
        if (auto e = read_clients(node["clients"], where, rule.has_clients, rule.clients,
                                  rule.client_labels)) {
            return e;
        }
        if (auto e = read_hosts(node["hosts"], where, false, rule.hosts)) return e;
        if (auto e = read_hosts(node["domains"], where, true, rule.domains)) return e;
        if (auto e = read_regexes(node["host_regex"], where, false, rule.host_regex)) return e;
        if (auto e = read_regexes(node["url_regex"], where, true, rule.url_regex)) return e;
        if (auto e = read_list_refs(node["lists"], where, rule)) return e;
        if (auto e = read_ports(node["ports"], where, rule)) return e;
        if (auto e = read_nets(node["dest_nets"], where, rule)) return e;
        if (auto e = read_when(node["when"], where, rule.when)) return e;
        if (node["message"]) {
            auto message = src_.get_string(node["message"], "message");
            if (!message) return message.error();
            if (message->size() > 1000) {
                return src_.error_at(node["message"],
                                     where + ": message is longer than 1000 bytes");
            }
            rule.message = *message;
        }
        return std::nullopt;
    }

    Maybe read_schedules(const YAML::Node& node) {
        if (!node || node.IsNull()) return std::nullopt;
        if (!node.IsMap()) {
            return src_.error_at(node, "\"schedules\" must be a map of name: {windows: [...]}");
        }
        for (auto it = node.begin(); it != node.end(); ++it) {
            Schedule schedule;
            schedule.name = it->first.Scalar();
            if (!is_name(schedule.name)) {
                return src_.error_at(it->first, "bad schedule name \"" + schedule.name + "\"");
            }
            const std::string where = "schedule \"" + schedule.name + "\"";
            const YAML::Node body = it->second;
            if (!body.IsMap()) return src_.error_at(body, where + " must be a map (windows: ...)");
            if (auto e = src_.check_keys(body, kScheduleKeys, where)) return e;
            std::string zone;
            if (body["time_zone"]) {
                auto text = src_.get_string(body["time_zone"], "time_zone");
                if (!text) return text.error();
                if (text->empty())
                    return src_.error_at(body["time_zone"], where + ": empty time_zone");
                zone = *text;
            }
            schedule.zone = find_time_zone(zone);
            if (!schedule.zone) {
                return src_.error_at(zone.empty() ? body : body["time_zone"],
                                     zone.empty() ? where + ": the system's time zone is unknown"
                                                  : where + ": unknown time zone \"" + zone +
                                                        "\" (a name such as Europe/Paris)");
            }
            schedule.zone_name = zone.empty() ? "system" : zone;
            const YAML::Node windows = body["windows"];
            if (!windows || !windows.IsSequence() || windows.size() == 0) {
                return src_.error_at(windows ? windows : body,
                                     where + " needs windows: a list of {days, from, to}");
            }
            for (size_t i = 0; i < windows.size(); ++i) {
                ScheduleWindow w;
                if (auto e = read_window(windows[i], where, w)) return e;
                schedule.windows.push_back(w);
            }
            if (body["except_dates"]) {
                auto dates = src_.get_string_list(body["except_dates"], "except_dates");
                if (!dates) return dates.error();
                for (size_t i = 0; i < dates->size(); ++i) {
                    auto day = parse_date_days((*dates)[i]);
                    if (!day) {
                        return src_.error_at(
                            item(body["except_dates"], i),
                            where + ": \"" + (*dates)[i] + "\" is not a date (YYYY-MM-DD)");
                    }
                    schedule.except_days.push_back(*day);
                }
                std::sort(schedule.except_days.begin(), schedule.except_days.end());
            }
            spec_.schedules.push_back(std::move(schedule));
        }
        return std::nullopt;
    }

    Maybe read_window(const YAML::Node& node, const std::string& where, ScheduleWindow& w) {
        if (!node.IsMap()) return src_.error_at(node, where + ": a window is {days, from, to}");
        if (auto e = src_.check_keys(node, kWindowKeys, where + "'s window")) return e;
        for (const char* key : {"days", "from", "to"}) {
            if (!node[key]) return src_.error_at(node, where + ": a window needs " + key);
        }
        auto days = src_.get_string_list(node["days"], "days");
        if (!days) return days.error();
        if (days->empty()) return src_.error_at(node["days"], where + ": days is empty");
        for (size_t i = 0; i < days->size(); ++i) {
            const std::string& d = (*days)[i];
            if (d == "all" || d == "daily") {
                w.days.fill(true);
                continue;
            }
            if (d == "weekdays" || d == "weekend") {
                for (int k = 0; k < 7; ++k) {
                    if ((k == 0 || k == 6) == (d == "weekend")) w.days[k] = true;
                }
                continue;
            }
            auto wd = parse_weekday(d);
            if (!wd) {
                return src_.error_at(item(node["days"], i),
                                     where + ": \"" + d +
                                         "\" is not a day (sun, mon, ... sat, weekdays, "
                                         "weekend, all)");
            }
            w.days[*wd] = true;
        }
        auto from = src_.get_string(node["from"], "from");
        if (!from) return from.error();
        auto from_min = parse_clock_minutes(*from, false);
        if (!from_min) {
            return src_.error_at(node["from"], where + ": from \"" + *from +
                                                   "\" is not a time of day (HH:MM, 00:00-23:59)");
        }
        auto to = src_.get_string(node["to"], "to");
        if (!to) return to.error();
        auto to_min = parse_clock_minutes(*to, true);
        if (!to_min) {
            return src_.error_at(node["to"], where + ": to \"" + *to +
                                                 "\" is not a time of day (HH:MM, 00:00-24:00)");
        }
        w.from_min = *from_min;
        w.to_min = *to_min == 0 ? 1440 : *to_min;  // "to: 00:00" is midnight at the end
        return std::nullopt;
    }

    // `when:` of a rule or a safe_search entry: schedule names.
    Maybe read_when(const YAML::Node& node, const std::string& where, std::vector<size_t>& out) {
        if (!node) return std::nullopt;
        auto names = src_.get_string_list(node, "when");
        if (!names) return names.error();
        if (names->empty()) return src_.error_at(node, where + ": \"when\" is empty");
        for (size_t i = 0; i < names->size(); ++i) {
            const std::string& name = (*names)[i];
            auto it = std::find_if(spec_.schedules.begin(), spec_.schedules.end(),
                                   [&](const Schedule& s) { return s.name == name; });
            if (it == spec_.schedules.end()) {
                std::string message = where + ": undefined schedule \"" + name + "\"";
                std::vector<std::string_view> known;
                for (const Schedule& s : spec_.schedules) known.push_back(s.name);
                std::string guess = did_you_mean(name, known);
                if (!guess.empty()) message += " (did you mean \"" + guess + "\"?)";
                return src_.error_at(item(node, i), message);
            }
            out.push_back(static_cast<size_t>(it - spec_.schedules.begin()));
        }
        return std::nullopt;
    }

    Maybe read_safe_search(const YAML::Node& node) {
        if (!node || node.IsNull()) return std::nullopt;
        if (!node.IsSequence()) {
            return src_.error_at(node,
                                 "\"safe_search\" must be a list of {clients, google, youtube, "
                                 "bing, duckduckgo}");
        }
        for (size_t i = 0; i < node.size(); ++i) {
            const YAML::Node entry = node[i];
            const std::string where = "safe_search entry " + std::to_string(i + 1);
            if (!entry.IsMap()) return src_.error_at(entry, where + " must be a map");
            if (auto e = src_.check_keys(entry, kSafeSearchKeys, where)) return e;
            SafeSearchSpec s;
            Position pos = position_of(src_, entry);
            s.line = pos.line;
            s.col = pos.col;
            if (auto e = read_clients(entry["clients"], where, s.has_clients, s.clients,
                                      s.client_labels)) {
                return e;
            }
            if (auto e = read_when(entry["when"], where, s.when)) return e;
            for (auto [key, flag] : {std::pair{"google", &s.google}, std::pair{"bing", &s.bing},
                                     std::pair{"duckduckgo", &s.duckduckgo}}) {
                if (!entry[key]) continue;
                auto on = read_switch(entry[key], where, key);
                if (!on) return on.error();
                *flag = *on;
            }
            if (entry["youtube"]) {
                auto text = src_.get_string(entry["youtube"], "youtube");
                if (!text) return text.error();
                if (*text == "strict" || *text == "on" || *text == "true") {
                    s.youtube = YouTubeMode::Strict;
                } else if (*text == "moderate") {
                    s.youtube = YouTubeMode::Moderate;
                } else if (*text == "off" || *text == "false") {
                    s.youtube = YouTubeMode::Off;
                } else {
                    return src_.error_at(entry["youtube"], where +
                                                               ": youtube is strict, "
                                                               "moderate or off, got \"" +
                                                               *text + "\"");
                }
            }
            spec_.safe_search.push_back(std::move(s));
        }
        return std::nullopt;
    }

    // on/off, true/false, yes/no.
    Result<bool> read_switch(const YAML::Node& node, const std::string& where, const char* key) {
        auto text = src_.get_string(node, key);
        if (!text) return text.error();
        if (*text == "on" || *text == "true" || *text == "yes") return true;
        if (*text == "off" || *text == "false" || *text == "no") return false;
        return src_.error_at(node, where + ": " + key + " is on or off, got \"" + *text + "\"");
    }

    Maybe read_clients(const YAML::Node& node, const std::string& where, bool& has_clients,
                       NetSet& clients, std::vector<std::string>& labels) {
        if (!node) return std::nullopt;
        auto entries = src_.get_string_list(node, "clients");
        if (!entries) return entries.error();
        if (entries->empty()) return src_.error_at(node, where + ": \"clients\" is empty");
        has_clients = true;
        for (size_t i = 0; i < entries->size(); ++i) {
            const std::string& entry = (*entries)[i];
            labels.push_back(entry);
            if (auto g = spec_.groups.find(entry); g != spec_.groups.end()) {
                clients.add(g->second);
                continue;
            }
            if (auto err = clients.add(entry)) {
                bool looks_like_ip = entry.find_first_of(":/") != std::string::npos ||
                                     std::all_of(entry.begin(), entry.end(), [](unsigned char c) {
                                         return std::isdigit(c) || c == '.';
                                     });
                if (looks_like_ip) return src_.error_at(item(node, i), where + ": " + *err);
                std::string message = where + ": undefined group \"" + entry + "\"";
                std::vector<std::string_view> names;
                for (const auto& [name, set] : spec_.groups) names.push_back(name);
                std::string guess = did_you_mean(entry, names);
                if (!guess.empty()) message += " (did you mean \"" + guess + "\"?)";
                return src_.error_at(item(node, i), message);
            }
        }
        clients.compile();
        return std::nullopt;
    }

    Maybe read_hosts(const YAML::Node& node, const std::string& where, bool domains,
                     std::vector<RuleSpecEntry>& out) {
        if (!node) return std::nullopt;
        const char* key = domains ? "domains" : "hosts";
        auto entries = src_.get_string_list(node, key);
        if (!entries) return entries.error();
        for (size_t i = 0; i < entries->size(); ++i) {
            std::string_view text = (*entries)[i];
            // "*.example.com" and ".example.com" are common ways to write "and subdomains".
            if (domains && text.starts_with("*.")) text.remove_prefix(2);
            if (domains && text.starts_with(".")) text.remove_prefix(1);
            auto host = canonicalize_host(text);
            if (!host) {
                if (auto name = name_in_url(text)) {
                    return src_.error_at(
                        item(node, i),
                        where + ": " + key + " take names, not URLs: did you mean " + *name + "?");
                }
                return src_.error_at(
                    item(node, i), where + ": invalid " + std::string(domains ? "domain" : "host") +
                                       " \"" + (*entries)[i] + "\": " + host.error().message);
            }
            if (domains && host->kind != HostKind::Name) {
                return src_.error_at(item(node, i),
                                     where + ": \"" + (*entries)[i] +
                                         "\" is an IP address: put it in hosts or dest_nets");
            }
            out.push_back({host->host, position_of(src_, item(node, i))});
        }
        return std::nullopt;
    }

    Maybe read_regexes(const YAML::Node& node, const std::string& where, bool url,
                       std::vector<RuleSpecEntry>& out) {
        if (!node) return std::nullopt;
        const char* key = url ? "url_regex" : "host_regex";
        auto entries = src_.get_string_list(node, key);
        if (!entries) return entries.error();
        for (size_t i = 0; i < entries->size(); ++i) {
            RE2::Options options;
            options.set_log_errors(false);
            options.set_case_sensitive(url);
            RE2 re((*entries)[i], options);
            if (!re.ok()) {
                return src_.error_at(item(node, i), where + ": invalid " + key + " \"" +
                                                        (*entries)[i] + "\": " + re.error());
            }
            out.push_back({(*entries)[i], position_of(src_, item(node, i))});
        }
        return std::nullopt;
    }

    Maybe read_list_refs(const YAML::Node& node, const std::string& where, RuleSpec& rule) {
        if (!node) return std::nullopt;
        auto entries = src_.get_string_list(node, "lists");
        if (!entries) return entries.error();
        for (size_t i = 0; i < entries->size(); ++i) {
            const std::string& name = (*entries)[i];
            auto it = std::find_if(spec_.lists.begin(), spec_.lists.end(),
                                   [&](const ListSpec& l) { return l.name == name; });
            if (it == spec_.lists.end()) {
                std::string message = where + ": undefined list \"" + name + "\"";
                std::vector<std::string_view> names;
                for (const ListSpec& l : spec_.lists) names.push_back(l.name);
                std::string guess = did_you_mean(name, names);
                if (!guess.empty()) message += " (did you mean \"" + guess + "\"?)";
                return src_.error_at(item(node, i), message);
            }
            rule.lists.push_back(static_cast<size_t>(it - spec_.lists.begin()));
        }
        return std::nullopt;
    }

    Maybe read_ports(const YAML::Node& node, const std::string& where, RuleSpec& rule) {
        if (!node) return std::nullopt;
        if (node.IsScalar()) {
            auto port = src_.get_int(node, "ports", 1, 65535);
            if (!port) return port.error();
            rule.ports.push_back(static_cast<uint16_t>(*port));
            return std::nullopt;
        }
        if (!node.IsSequence()) return src_.error_at(node, where + ": \"ports\" must be a list");
        for (const YAML::Node& p : node) {
            auto port = src_.get_int(p, "ports", 1, 65535);
            if (!port) return port.error();
            rule.ports.push_back(static_cast<uint16_t>(*port));
        }
        return std::nullopt;
    }

    Maybe read_nets(const YAML::Node& node, const std::string& where, RuleSpec& rule) {
        if (!node) return std::nullopt;
        auto entries = src_.get_string_list(node, "dest_nets");
        if (!entries) return entries.error();
        rule.has_dest_nets = !entries->empty();
        for (size_t i = 0; i < entries->size(); ++i) {
            if (auto err = rule.dest_nets.add((*entries)[i])) {
                return src_.error_at(item(node, i), where + ": " + *err);
            }
            rule.dest_net_labels.push_back((*entries)[i]);
        }
        rule.dest_nets.compile();
        return std::nullopt;
    }

    // The i-th element of a list node, or the node itself when it was a single scalar.
    static YAML::Node item(const YAML::Node& node, size_t i) {
        return node.IsSequence() ? node[i] : node;
    }

    std::string resolve(const std::string& path) const {
        std::filesystem::path p(path);
        if (p.is_absolute()) return path;
        return (std::filesystem::path(src_.name()).parent_path() / p).string();
    }

    const YamlSource& src_;
    std::string state_dir_;
    RulesSpec spec_;
};

}  // namespace

std::string Position::to_string() const {
    std::string base = std::filesystem::path(file).filename().string();
    return base + ":" + std::to_string(line) + ":" + std::to_string(col);
}

Result<RulesSpec> load_rules_spec(const YamlSource& src, const std::string& state_dir) {
    return Loader(src, state_dir).load();
}

std::string list_cache_path(const std::string& state_dir, const std::string& name) {
    return (std::filesystem::path(state_dir) / "lists" / (name + ".list")).string();
}

Result<RulesSpec> load_rules_spec_file(const std::string& path) {
    auto src = YamlSource::load_file(path);
    if (!src) return src.error();
    return load_rules_spec(*src);
}

}  // namespace hallpass
