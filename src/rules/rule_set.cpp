// Compiling a RulesSpec into lookup structures, and deciding. Every destination condition kind
// has one structure for all rules (an index or an RE2::Set) that yields the rules it matches;
// the lowest-numbered of those whose clients and ports also hold wins, which is exactly the first
// match in file order without looking at the rules that cannot match.
#include "hallpass/rules/rule_set.h"

#include <re2/re2.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "hallpass/http/http_responses.h"
#include "hallpass/rules/domain_list.h"
#include "hallpass/rules/pacer.h"

namespace hallpass {
namespace {

// RE2::Set memory budget per pattern group: 1k regexes compile in a few MB; leave headroom so
// the DFA does not run out and fall back to slow matching under load.
constexpr int64_t kRe2SetMemory = 256 << 20;

// The pattern indexes of a match, one vector per thread (reached only when a regex matched:
// thread_local costs a TLS lookup per use).
std::vector<int>& match_buffer() {
    thread_local std::vector<int> hits;
    return hits;
}

// One RE2::Set for a group of patterns (all host_regex or all url_regex entries, in rule order).
Result<std::shared_ptr<const RE2::Set>> build_set(const std::vector<const RuleSpecEntry*>& patterns,
                                                  bool case_sensitive, const char* what,
                                                  const std::string& file) {
    RE2::Options options;
    options.set_log_errors(false);
    options.set_case_sensitive(case_sensitive);
    options.set_max_mem(kRe2SetMemory);
    auto set = std::make_shared<RE2::Set>(options, RE2::UNANCHORED);
    for (const RuleSpecEntry* p : patterns) {
        std::string error;
        if (set->Add(p->text, &error) < 0) {
            return Error{std::string("invalid ") + what + ": " + error, p->pos.file, p->pos.line,
                         p->pos.col};
        }
    }
    if (!set->Compile()) {
        return Error{"the regular expressions do not fit in memory; use fewer or simpler ones",
                     file};
    }
    return std::shared_ptr<const RE2::Set>(std::move(set));
}

ListFormat format_of(const std::string& text) {
    auto f = parse_list_format(text);
    return f ? *f : ListFormat::Auto;  // validated by the loader
}

// The built-in page: for the person who was blocked, often a child. Plain words first (what, why,
// until when); the details a parent needs to look it up (rule, device) below.
const char* kDefaultBlockPage = R"(<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Not now: {{host}}</title>
<style>body{font-family:system-ui,sans-serif;max-width:36em;margin:3em auto;padding:0 1em;color:#223;line-height:1.5;background:#f7f9fc}.card{background:#fff;border-radius:1em;padding:1.5em 2em;box-shadow:0 2px 8px rgba(0,0,0,.08)}h1{font-size:1.6em;margin:.2em 0}.site{font-weight:600;word-break:break-all}.message{font-size:1.2em;background:#fff6d6;border-radius:.5em;padding:.6em .9em}.until{font-size:1.1em;color:#145a32}.empty{display:none}dl{color:#667;font-size:.9em;margin-top:1.5em}dt{float:left;clear:left;width:7em}dd{margin-left:7em}code{background:#f0f2f5;padding:0 .3em;border-radius:.2em}</style>
</head>
<body><div class="card">
<h1>This site is not available right now</h1>
<p><span class="site">{{host}}</span> is blocked on this network.</p>
<p class="message{{message_class}}">{{message}}</p>
<p class="until{{until_class}}">It opens again at <strong>{{until}}</strong>.</p>
<p>If you think this is a mistake, ask the grown-up who looks after this network and show them
this page.</p>
<dl><dt>Rule</dt><dd><code>{{rule}}</code></dd>
<dt>This device</dt><dd><code>{{device}}</code></dd></dl>
</div></body>
</html>
)";

std::atomic<uint64_t> g_rule_set_serial{1};

}  // namespace

std::shared_ptr<const RuleSet> RuleSet::allow_all() {
    auto rs = std::shared_ptr<RuleSet>(new RuleSet());
    rs->serial_ = g_rule_set_serial.fetch_add(1);
    return rs;
}

Result<std::shared_ptr<const RuleSet>> RuleSet::compile(RulesSpec spec, const RuleSet* previous,
                                                        Pacer* pacer) {
    Pacer off;
    Pacer& pace = pacer ? *pacer : off;
    std::shared_ptr<RuleSet> rs(new RuleSet());
    rs->serial_ = g_rule_set_serial.fetch_add(1);
    DomainIndex::Builder names;  // hosts, domains and list names in one table (rule_set.h)
    const auto& rules = spec.rules;
    if (rules.size() >= kHostsBase || spec.lists.size() >= kListBase) {
        return Error{"too many rules or lists", spec.file};
    }

    std::vector<bool> list_used(spec.lists.size(), false);
    rs->list_rules_.resize(spec.lists.size());
    for (uint32_t r = 0; r < rules.size(); ++r) {
        for (size_t l : rules[r].lists) {
            list_used[l] = true;
            auto& users = rs->list_rules_[l];
            if (users.empty() || users.back() != r) users.push_back(r);
        }
    }
    // Reserving up front keeps the reload peak low (no vector doubling for a million names).
    // Real lists average 17-20 bytes a line (plain domain lists ~17, hosts files more): estimate
    // on the short side so the reserve is rarely outgrown.
    size_t expected = 0;
    for (size_t l = 0; l < spec.lists.size(); ++l) {
        std::error_code ec;
        if (list_used[l] && !spec.lists[l].path.empty())
            expected += std::filesystem::file_size(spec.lists[l].path, ec) / 17;
    }
    names.reserve(expected);
    for (size_t l = 0; l < spec.lists.size(); ++l) {
        const ListSpec& list = spec.lists[l];
        uint32_t set_id = kListBase + static_cast<uint32_t>(l);
        ListSummary summary{list.name, list.path, 0, 0, 0, {}};
        summary.url = list.url;
        if (list.path.empty()) {
            // A list by URL with no copy yet (first start without the network): empty until the
            // first download, which reloads.
            summary.issues.push_back("no copy of " + list.url + " yet: empty until it is fetched");
            rs->lists_.push_back(std::move(summary));
            continue;
        }
        auto stats = load_domain_list(list.path, format_of(list.format),
                                      [&](std::string_view name, uint32_t) {
                                          if (list_used[l]) names.add(name, set_id);
                                          pace.pace();
                                      });
        if (!stats) {
            return Error{"list \"" + list.name + "\": " + stats.error().to_string(), list.pos.file,
                         list.pos.line, list.pos.col};
        }
        summary.entries = stats->entries;
        summary.invalid = stats->invalid;
        summary.unsupported = stats->unsupported;
        for (const auto& issue : stats->first_issues) {
            if (summary.issues.size() >= kMaxIssues) break;
            summary.issues.push_back(list.path + ":" + std::to_string(issue.line) + ": " +
                                     issue.reason + ": " + issue.text);
        }
        rs->lists_.push_back(std::move(summary));
    }

    std::vector<const RuleSpecEntry*> host_patterns, url_patterns;
    for (uint32_t r = 0; r < rules.size(); ++r) {
        const RuleSpec& rule = rules[r];
        for (const auto& h : rule.hosts) names.add(h.text, kHostsBase + r);
        for (const auto& d : rule.domains) names.add(d.text, r);
        for (uint32_t i = 0; i < rule.host_regex.size(); ++i) {
            host_patterns.push_back(&rule.host_regex[i]);
            rs->host_re_patterns_.push_back(rule.host_regex[i].text);
            rs->host_re_entry_.emplace_back(r, i);
        }
        for (uint32_t i = 0; i < rule.url_regex.size(); ++i) {
            url_patterns.push_back(&rule.url_regex[i]);
            rs->url_re_patterns_.push_back(rule.url_regex[i].text);
            rs->url_re_entry_.emplace_back(r, i);
        }
        if (!rule.has_destination()) rs->always_.push_back(r);
        if (rule.has_dest_nets) rs->dest_nets_.push_back(r);
    }
    if (!rs->host_re_entry_.empty()) rs->host_re_first_rule_ = rs->host_re_entry_.front().first;
    if (!rs->url_re_entry_.empty()) rs->url_re_first_rule_ = rs->url_re_entry_.front().first;
    if (previous && previous->host_re_patterns_ == rs->host_re_patterns_) {
        rs->host_re_ = previous->host_re_;
    } else if (!host_patterns.empty()) {
        auto set = build_set(host_patterns, false, "host_regex", spec.file);
        if (!set) return set.error();
        rs->host_re_ = std::move(*set);
    }
    if (previous && previous->url_re_patterns_ == rs->url_re_patterns_) {
        rs->url_re_ = previous->url_re_;
    } else if (!url_patterns.empty()) {
        auto set = build_set(url_patterns, true, "url_regex", spec.file);
        if (!set) return set.error();
        rs->url_re_ = std::move(*set);
    }
    rs->names_ = std::move(names).build(&pace);
    if (!spec.block_page_path.empty()) {
        std::ifstream in(spec.block_page_path);
        std::ostringstream text;
        text << in.rdbuf();
        rs->block_page_ = text.str();
    }
    rs->spec_ = std::move(spec);
    return std::shared_ptr<const RuleSet>(std::move(rs));
}

bool RuleSet::rule_holds(uint32_t r, const RequestFacts& facts) const {
    const RuleSpec& rule = spec_.rules[r];
    if (!rule.ports.empty() &&
        std::find(rule.ports.begin(), rule.ports.end(), facts.port) == rule.ports.end()) {
        return false;
    }
    if (rule.has_clients && !rule.clients.contains(facts.client)) return false;
    return rule.when.empty() || any_active(rule.when, facts.now_s);
}

bool RuleSet::schedule_active(size_t i, int64_t now_s) const {
    // The state of every schedule, once per second per thread: converting to a zone's wall
    // clock is a search in its transitions, too much for every request.
    struct Cache {
        uint64_t serial = 0;
        int64_t second = 0;
        std::vector<bool> active;
    };
    thread_local Cache cache;
    if (cache.serial != serial_ || cache.second != now_s) {
        cache.serial = serial_;
        cache.second = now_s;
        cache.active.assign(spec_.schedules.size(), false);
        for (size_t k = 0; k < spec_.schedules.size(); ++k) {
            cache.active[k] = spec_.schedules[k].active(now_s);
        }
    }
    return cache.active[i];
}

bool RuleSet::any_active(const std::vector<size_t>& schedules, int64_t now_s) const {
    for (size_t i : schedules) {
        if (schedule_active(i, now_s)) return true;
    }
    return false;
}

uint64_t RuleSet::schedule_state(int64_t now_s) const {
    uint64_t bits = 0;
    for (size_t i = 0; i < spec_.schedules.size(); ++i) {
        if (schedule_active(i, now_s)) bits |= uint64_t{1} << std::min<size_t>(i, 63);
    }
    return bits;
}

std::optional<int64_t> RuleSet::rule_until(int rule, int64_t now_s) const {
    if (rule < 0) return std::nullopt;
    const auto& when = spec_.rules[rule].when;
    if (when.empty()) return std::nullopt;
    // Step from change to change of the rule's schedules until none of them is open.
    int64_t t = now_s;
    for (int step = 0; step < 64; ++step) {
        std::optional<int64_t> next;
        for (size_t i : when) {
            auto c = spec_.schedules[i].next_change(t);
            if (c && (!next || *c < *next)) next = c;
        }
        if (!next) return std::nullopt;
        t = *next;
        bool open = false;
        for (size_t i : when) open = open || spec_.schedules[i].active(t);
        if (!open) return t;
    }
    return std::nullopt;
}

std::string RuleSet::rule_time_label(int rule, int64_t at_s, int64_t now_s) const {
    if (rule < 0 || spec_.rules[rule].when.empty()) return "";
    return spec_.schedules[spec_.rules[rule].when.front()].local_label(at_s, now_s);
}

const char* RuleSet::safe_search_target(const RequestFacts& facts) const {
    if (spec_.safe_search.empty() || facts.host_kind != HostKind::Name) return nullptr;
    auto provider = search_provider(facts.host);
    if (!provider) return nullptr;
    // The first entry that applies to this client now decides, as rules do.
    for (const SafeSearchSpec& s : spec_.safe_search) {
        if (s.has_clients && !s.clients.contains(facts.client)) continue;
        if (!s.when.empty() && !any_active(s.when, facts.now_s)) continue;
        return s.enforcement_name(*provider);
    }
    return nullptr;
}

std::string RuleSet::groups_of(const IpAddr& ip) const {
    std::string out;
    for (const auto& [name, set] : spec_.groups) {
        if (!set.contains(ip)) continue;
        if (!out.empty()) out += ", ";
        out += name;
    }
    return out;
}

// Calls fn(rule, kind, entry) for every rule a destination condition matches: `kind` names the
// condition; `entry` is the index of the entry in that condition (or the list index for lists,
// with the matched name in `name`). Rules may be reported several times and in any order.
// The regex groups are skipped when all their rules come at or after `bound` (decide() passes
// the best rule found so far: such matches could not change the answer).
template <class Fn>
void RuleSet::for_each_destination_match(const RequestFacts& facts, const uint32_t& bound,
                                         Fn&& fn) const {
    // The index's slots are prefetched first and read last: the regex sets' yes/no questions run
    // while the cache lines arrive. (They are asked before the index can lower `bound`, so a host
    // whose index match comes before every regex rule pays for one yes/no search it could have
    // skipped; that is cheaper than waiting for memory.)
    DomainIndex::SuffixLookup lookup;
    names_.start_suffix_lookup(facts.host, lookup);
    // RE2::Set::Match with a vector allocates (a match set) and cannot stop at the first match;
    // most hosts match no pattern, so the cheap yes/no question comes first.
    const bool host_re_may =
        host_re_ && host_re_first_rule_ < bound && host_re_->Match(facts.host, nullptr);
    const bool url_re_may = url_re_ && url_re_first_rule_ < bound && !facts.url.empty() &&
                            url_re_->Match(facts.url, nullptr);
    // One walk over the host's label suffixes answers hosts (the whole host only), domains and
    // lists: one probe per suffix.
    names_.for_each_suffix(facts.host, lookup, [&](uint32_t id, std::string_view name) {
        if (id < kHostsBase) {
            fn(id, "domains", name, 0u);
        } else if (id < kListBase) {
            if (name.size() == facts.host.size()) fn(id - kHostsBase, "hosts", name, 0u);
        } else {
            for (uint32_t r : list_rules_[id - kListBase]) fn(r, "lists", name, id - kListBase);
        }
    });
    if (host_re_may && host_re_first_rule_ < bound) {
        std::vector<int>& hits = match_buffer();
        hits.clear();
        if (host_re_->Match(facts.host, &hits)) {
            for (int i : hits) {
                fn(host_re_entry_[i].first, "host_regex", std::string_view(),
                   host_re_entry_[i].second);
            }
        }
    }
    if (url_re_may && url_re_first_rule_ < bound) {
        std::vector<int>& hits = match_buffer();
        hits.clear();
        if (url_re_->Match(facts.url, &hits)) {
            for (int i : hits) {
                fn(url_re_entry_[i].first, "url_regex", std::string_view(),
                   url_re_entry_[i].second);
            }
        }
    }
    if (facts.host_kind != HostKind::Name && !dest_nets_.empty()) {
        if (auto ip = IpAddr::parse(facts.host)) {
            for (uint32_t r : dest_nets_) {
                if (spec_.rules[r].dest_nets.contains(*ip)) fn(r, "dest_nets", facts.host, 0u);
            }
        }
    }
}

Decision RuleSet::decide(const RequestFacts& facts) const {
    uint32_t best = UINT32_MAX;
    // Rules without destination conditions come first in line: the earliest that holds bounds
    // the search; destination matches can only win by being earlier still.
    for (uint32_t r : always_) {
        if (rule_holds(r, facts)) {
            best = r;
            break;
        }
    }
    for_each_destination_match(facts, best,
                               [&](uint32_t r, const char*, std::string_view, uint32_t) {
                                   if (r < best && rule_holds(r, facts)) best = r;
                               });
    if (best == UINT32_MAX) return Decision{spec_.default_action, -1};
    return Decision{spec_.rules[best].action, static_cast<int>(best)};
}

Decision RuleSet::decide_address(const RequestFacts& facts, const IpAddr& ip,
                                 Decision before) const {
    const uint32_t bound = before.rule < 0 ? UINT32_MAX : static_cast<uint32_t>(before.rule);
    for (uint32_t r : dest_nets_) {  // ascending: the first that holds is the earliest
        if (r >= bound) break;
        if (spec_.rules[r].dest_nets.contains(ip) && rule_holds(r, facts)) {
            return Decision{spec_.rules[r].action, static_cast<int>(r)};
        }
    }
    return before;
}

Explanation RuleSet::explain(const RequestFacts& facts) const {
    Explanation ex;
    ex.decision = decide(facts);
    // The next opening or closing of any schedule, and what this request would get then.
    std::optional<int64_t> change;
    size_t changing = 0;
    for (size_t i = 0; i < spec_.schedules.size(); ++i) {
        auto c = spec_.schedules[i].next_change(facts.now_s);
        if (c && (!change || *c < *change)) {
            change = c;
            changing = i;
        }
    }
    if (change) {
        RequestFacts later = facts;
        later.now_s = *change;
        const Decision then = decide(later);
        const std::string& who = then.rule >= 0 ? spec_.rules[then.rule].name : "the default";
        ex.next_change = spec_.schedules[changing].local_label(*change, facts.now_s) + ": " +
                         spec_.schedules[changing].name +
                         (spec_.schedules[changing].active(*change) ? " opens" : " closes") +
                         "; then " + (then.action == Action::Block ? "block" : "allow") + " by " +
                         (then.rule >= 0 ? "rule " + who : who);
    }
    if (ex.decision.rule < 0) return ex;
    const uint32_t r = static_cast<uint32_t>(ex.decision.rule);
    const RuleSpec& rule = spec_.rules[r];
    ex.rule_name = rule.name;
    ex.rule_where = rule.pos.to_string();
    for (size_t i : rule.when) {
        if (!ex.when.empty()) ex.when += ", ";
        ex.when += spec_.schedules[i].name;
        ex.when += schedule_active(i, facts.now_s) ? " (open now)" : " (closed now)";
    }
    if (auto until = rule_until(ex.decision.rule, facts.now_s)) {
        ex.until = rule_time_label(ex.decision.rule, *until, facts.now_s);
    }
    if (!rule.has_destination()) {
        if (rule.has_clients) {
            ex.condition = "clients";
            for (size_t i = 0; i < rule.client_labels.size(); ++i) {
                if (!ex.entry.empty()) ex.entry += ", ";
                ex.entry += rule.client_labels[i];
            }
        }
        return ex;
    }
    bool found = false;
    const uint32_t no_bound = UINT32_MAX;
    for_each_destination_match(
        facts, no_bound,
        [&](uint32_t hit, const char* kind, std::string_view name, uint32_t entry) {
            if (hit != r) return;
            const std::string k = kind;
            // The first match reported explains the decision, except that the rule's `hosts:`
            // entry for the whole host is named rather than its `domains:` entry for the same
            // name (the index reports the latter first): the more specific reason, as before
            // the two shared one index.
            if (found && !(k == "hosts" && ex.condition == "domains")) return;
            found = true;
            ex.condition = kind;
            if (k == "hosts" || k == "domains") {
                const auto& list = k == "hosts" ? rule.hosts : rule.domains;
                for (const auto& e : list) {
                    if (e.text == name) {
                        ex.entry = e.text;
                        ex.entry_where = e.pos.to_string();
                    }
                }
            } else if (k == "host_regex" || k == "url_regex") {
                const auto& e = (k == "host_regex" ? rule.host_regex : rule.url_regex)[entry];
                ex.entry = e.text;
                ex.entry_where = e.pos.to_string();
            } else if (k == "lists") {
                const ListSpec& list = spec_.lists[entry];
                std::string matched(name);
                uint32_t line = 0;
                // The index keeps no line numbers (memory); find the entry in the file again.
                (void)load_domain_list(list.path, format_of(list.format),
                                       [&](std::string_view n, uint32_t l) {
                                           if (line == 0 && n == matched) line = l;
                                       });
                ex.entry = list.name;
                ex.entry_where = std::filesystem::path(list.path).filename().string() + ":" +
                                 std::to_string(line) + ": " + matched;
            } else if (k == "dest_nets") {
                ex.entry = std::string(name);
                ex.entry_where = rule.pos.to_string();
            }
        });
    return ex;
}

size_t RuleSet::entry_count() const { return names_.size(); }

size_t RuleSet::memory_bytes() const { return names_.memory_bytes(); }

std::string make_block_response(std::string_view tmpl, const BlockPage& p, bool keep_alive,
                                bool head_only) {
    std::string page(tmpl.empty() ? std::string_view(kDefaultBlockPage) : tmpl);
    const std::string device = p.group.empty()
                                   ? std::string(p.client)
                                   : std::string(p.group) + ": " + std::string(p.client);
    const std::pair<std::string_view, std::string_view> vars[] = {
        {"{{host}}", p.host},
        {"{{rule}}", p.rule},
        {"{{client}}", p.client},
        {"{{group}}", p.group},
        {"{{device}}", device},
        {"{{url}}", p.url},
        {"{{message}}", p.message},
        {"{{until}}", p.until},
        {"{{message_class}}", p.message.empty() ? " empty" : ""},
        {"{{until_class}}", p.until.empty() ? " empty" : ""}};
    for (const auto& [key, value] : vars) {
        std::string escaped = html_escape(value);
        for (size_t at = page.find(key); at != std::string::npos;
             at = page.find(key, at + escaped.size())) {
            page.replace(at, key.size(), escaped);
        }
    }
    const std::string_view rule = p.rule;
    std::string out = "HTTP/1.1 403 Forbidden\r\nContent-Type: text/html; charset=utf-8\r\n";
    out += "Content-Length: " + std::to_string(page.size()) + "\r\n";
    out += "Cache-Control: no-store\r\n";
    // Header values must not carry CR/LF: the rule name comes from the admin's file, but still.
    std::string rule_header(rule);
    std::replace_if(
        rule_header.begin(), rule_header.end(), [](char c) { return c == '\r' || c == '\n'; }, ' ');
    out += "X-Hallpass-Rule: " + rule_header + "\r\n";
    out += keep_alive ? "" : "Connection: close\r\n";
    out += "\r\n";
    if (!head_only) out += page;
    return out;
}

}  // namespace hallpass
