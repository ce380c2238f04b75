// The whole decision for one request: grants first (a pause blocks, an exception allows), then
// the rule set. What the proxy asks at a request, when a schedule or grant changes, and what
// --explain shows.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "hallpass/rules/grants.h"
#include "hallpass/rules/rule_set.h"

namespace hallpass {

struct Verdict {
    Decision decision;             // rule -1 with a grant: the grant decided
    const Grant* grant = nullptr;  // into the GrantSet given to decide_request()

    bool blocked() const { return decision.action == Action::Block; }
};

Verdict decide_request(const RuleSet& rules, const GrantSet* grants, const RequestFacts& facts);

// The name logs and statistics give the decider: the rule's name, "default", or "grant 3".
std::string verdict_name(const RuleSet& rules, const Verdict& v);
// The words for the person blocked: the rule's message, or a pause's note (or a plain default).
std::string verdict_message(const RuleSet& rules, const Verdict& v);
// When the decision changes by itself (a schedule closes, a grant expires), if known.
std::optional<int64_t> verdict_until(const RuleSet& rules, const Verdict& v, int64_t now_s);
// verdict_until as the person reads it: "07:00", "Mon 07:00".
std::string verdict_until_label(const RuleSet& rules, const Verdict& v, int64_t now_s);

}  // namespace hallpass
