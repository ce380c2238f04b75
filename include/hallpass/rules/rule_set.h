// The compiled, immutable rule set: decide() says allow or block for one request from the client
// address, the canonical destination host, port and (HTTP only) URL, without scanning rules or
// entries: hashed exact names, label-suffix lookups for domains and lists, one RE2::Set per
// pattern group, interval sets for CIDRs. The first rule (in file order) whose conditions all hold
// decides; then the default. Shared read-only by all workers through a shared_ptr snapshot.
#pragma once

#include <re2/set.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "hallpass/base/error.h"
#include "hallpass/base/net_set.h"
#include "hallpass/http/uri.h"
#include "hallpass/rules/domain_index.h"
#include "hallpass/rules/rules_loader.h"

namespace hallpass {

class Pacer;

struct RequestFacts {
    IpAddr client;
    std::string_view host;  // canonical (uri.h): lower case, no trailing dot, punycode
    HostKind host_kind = HostKind::Name;
    uint16_t port = 0;
    std::string_view url;  // "http://host[:port]/path?query" for HTTP; empty for CONNECT
    int64_t now_s = 0;     // wall clock (Unix seconds): what rules with `when:` are checked at
};

struct Decision {
    Action action = Action::Allow;
    int rule = -1;  // index of the deciding rule; -1 = the default applied
};

// Why a decision was taken, for `hallpass --explain`.
struct Explanation {
    Decision decision;
    std::string rule_name;    // empty for the default
    std::string rule_where;   // "rules.yaml:12:5"
    std::string condition;    // "domains", "hosts", "host_regex", "url_regex", "lists",
                              // "dest_nets", "clients", or "" (a rule with no conditions)
    std::string entry;        // "tiktok.com", the pattern, "ads"
    std::string entry_where;  // "rules.yaml:14:16", or "ads.txt:1832" for a list entry
    // The deciding rule's schedules (`when:`): "school-nights (active)"; "" when it has none.
    std::string when;
    // When the deciding rule stops holding because its schedules close ("07:00"); "" if never.
    std::string until;
    // The next time any schedule opens or closes, and the decision then ("21:00: block by
    // bedtime"); "" without schedules or when the decision stays the same for two weeks.
    std::string next_change;
};

struct ListSummary {
    std::string name;
    std::string path;
    size_t entries = 0;  // names loaded
    size_t invalid = 0;
    size_t unsupported = 0;
    std::vector<std::string> issues;  // first few "file:line: reason: text"
    std::string url;                  // a list by URL: where it is fetched from
};

class RuleSet {
  public:
    // Loads every list file and compiles. Errors (an unreadable list, RE2 sets that do not fit)
    // carry the position of what caused them. `previous` is the set in force when reloading: a
    // regex group (host_regex, url_regex) whose patterns are unchanged is shared with it, not
    // recompiled, so the DFA RE2 built lazily for past requests stays warm across the reload.
    // `pacer` (a reload's) gets a turn every few microseconds of the work on lists and index.
    static Result<std::shared_ptr<const RuleSet>> compile(RulesSpec spec,
                                                          const RuleSet* previous = nullptr,
                                                          Pacer* pacer = nullptr);
    // A rule set with no rules and default allow (no rules file).
    static std::shared_ptr<const RuleSet> allow_all();

    // Hot path: no lock. (RE2::Set::Match with a result vector allocates; see
    // docs/benchmarks-rules.md.)
    Decision decide(const RequestFacts& facts) const;
    // The second check, after DNS: `before` is decide(facts) (an allow), `ip` one address the
    // host resolved to. A rule with dest_nets containing `ip` that comes before the rule that
    // decided (or any, when the default decided) and whose other conditions hold takes over;
    // otherwise `before` stands. Names are still decided before DNS; this only lets dest_nets
    // see where a name leads (an admin keeps kids off 10.0.0.0/8 whatever the name).
    Decision decide_address(const RequestFacts& facts, const IpAddr& ip, Decision before) const;
    bool has_dest_nets() const { return !dest_nets_.empty(); }
    // The same decision with the matching condition and entry (slower; for the CLI).
    Explanation explain(const RequestFacts& facts) const;

    bool needs_url() const { return url_re_ != nullptr; }
    const std::string& rule_name(int rule) const { return spec_.rules[rule].name; }
    const std::string& rule_message(int rule) const { return spec_.rules[rule].message; }

    // Schedules. The state of every schedule at `now_s` is computed once per second per thread.
    size_t schedule_count() const { return spec_.schedules.size(); }
    const Schedule& schedule(size_t i) const { return spec_.schedules[i]; }
    bool schedule_active(size_t i, int64_t now_s) const;
    // One bit per schedule (and bit 63 for all past the 63rd): a change means a window opened or
    // closed, and open connections must be decided again.
    uint64_t schedule_state(int64_t now_s) const;
    // When rule `rule` (which holds now) stops holding because its schedules close; none for a
    // rule without `when:` or whose schedules stay open for two weeks.
    std::optional<int64_t> rule_until(int rule, int64_t now_s) const;
    // "07:00" / "Mon 07:00" for a time `rule_until` gave, in the rule's first schedule's zone.
    std::string rule_time_label(int rule, int64_t at_s, int64_t now_s) const;

    // Safe search (applies to allowed requests): the enforcement name to connect to instead of
    // facts.host, or null (not a search host, or no safe_search entry for this client now).
    const char* safe_search_target(const RequestFacts& facts) const;
    bool has_safe_search() const { return !spec_.safe_search.empty(); }

    const std::map<std::string, NetSet>& groups() const { return spec_.groups; }
    // The names of the groups `ip` is in, ", "-separated ("kids"); "" when none.
    std::string groups_of(const IpAddr& ip) const;
    const std::string& block_page_template() const { return block_page_; }

    size_t rule_count() const { return spec_.rules.size(); }
    size_t group_count() const { return spec_.groups.size(); }
    const std::vector<ListSummary>& lists() const { return lists_; }
    // True when a regex group of this set is shared with `other`'s (see compile()).
    bool regexes_shared_with(const RuleSet& other) const {
        return (host_re_ && host_re_ == other.host_re_) || (url_re_ && url_re_ == other.url_re_);
    }
    size_t entry_count() const;   // names in all indexes
    size_t memory_bytes() const;  // of the indexes
    const std::string& file() const { return spec_.file; }

  private:
    RuleSet() = default;
    bool rule_holds(uint32_t rule, const RequestFacts& facts) const;
    bool any_active(const std::vector<size_t>& schedules, int64_t now_s) const;
    template <class Fn>
    void for_each_destination_match(const RequestFacts& facts, const uint32_t& bound,
                                    Fn&& fn) const;

    // Set ids in names_: rule r's `domains:` entries are r, its `hosts:` entries kHostsBase + r
    // (they count only when the whole host matched), list l's names kListBase + l.
    static constexpr uint32_t kHostsBase = 1u << 29;
    static constexpr uint32_t kListBase = 1u << 30;

    RulesSpec spec_;
    std::vector<ListSummary> lists_;
    DomainIndex names_;  // hosts, domains and list names (set ids above)
    std::vector<std::vector<uint32_t>> list_rules_;  // list -> rules that use it (ascending)
    // Regex groups: RE2::Set::Match is thread-safe; a set may be shared with the next snapshot.
    std::shared_ptr<const RE2::Set> host_re_;
    std::vector<std::string> host_re_patterns_;                 // in the set's order
    std::vector<std::pair<uint32_t, uint32_t>> host_re_entry_;  // pattern -> (rule, entry index)
    std::shared_ptr<const RE2::Set> url_re_;
    std::vector<std::string> url_re_patterns_;
    std::vector<std::pair<uint32_t, uint32_t>> url_re_entry_;
    uint32_t host_re_first_rule_ = UINT32_MAX;  // lowest rule with a host_regex
    uint32_t url_re_first_rule_ = UINT32_MAX;
    std::vector<uint32_t> always_;     // rules with no destination condition (ascending)
    std::vector<uint32_t> dest_nets_;  // rules with dest_nets (ascending)
    std::string block_page_;
    uint64_t serial_ = 0;  // unique per compiled set: keys the per-thread schedule cache
};

// What the block page says.
struct BlockPage {
    std::string_view host;
    std::string_view rule;
    std::string_view client;  // the device's address
    std::string_view group;   // its groups ("kids"), "" when none
    std::string_view url;
    std::string_view message;  // the rule's message: (or a grant's), "" when none
    std::string_view until;    // "07:00" when it opens again by itself, "" when not known
};

// Fills `tmpl` ({{host}}, {{rule}}, {{client}}, {{group}}, {{url}}, {{message}}, {{until}};
// values HTML-escaped) or the built-in page when `tmpl` is empty, and wraps it as a complete 403
// response with X-Hallpass-Rule.
std::string make_block_response(std::string_view tmpl, const BlockPage& page, bool keep_alive,
                                bool head_only);

}  // namespace hallpass
