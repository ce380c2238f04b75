#include "hallpass/rules/policy.h"

namespace hallpass {

Verdict decide_request(const RuleSet& rules, const GrantSet* grants, const RequestFacts& facts) {
    if (grants && !grants->empty()) {
        if (const Grant* g = grants->match(rules, facts.client, facts.host, facts.now_s)) {
            return Verdict{Decision{g->action, -1}, g};
        }
    }
    return Verdict{rules.decide(facts), nullptr};
}

std::string verdict_name(const RuleSet& rules, const Verdict& v) {
    if (v.grant) return "grant " + std::to_string(v.grant->id);
    return v.decision.rule >= 0 ? rules.rule_name(v.decision.rule) : std::string("default");
}

std::string verdict_message(const RuleSet& rules, const Verdict& v) {
    if (v.grant) {
        if (!v.grant->note.empty()) return v.grant->note;
        return "The internet is paused for this device for a while.";
    }
    return v.decision.rule >= 0 ? rules.rule_message(v.decision.rule) : std::string();
}

std::optional<int64_t> verdict_until(const RuleSet& rules, const Verdict& v, int64_t now_s) {
    if (v.grant) return v.grant->expires_s;
    return rules.rule_until(v.decision.rule, now_s);
}

std::string verdict_until_label(const RuleSet& rules, const Verdict& v, int64_t now_s) {
    auto until = verdict_until(rules, v, now_s);
    if (!until) return "";
    if (v.grant) {
        Schedule local;  // the system's zone
        local.zone = find_time_zone("");
        return local.local_label(*until, now_s);
    }
    return rules.rule_time_label(v.decision.rule, *until, now_s);
}

}  // namespace hallpass
