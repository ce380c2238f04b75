// Timed exceptions and pauses a parent sets on the running proxy (`hallpass grant`): "allow
// kids youtube.com for 30 minutes", "block kids now for an hour". A grant names clients (group
// names, resolved against the rule set in force at each decision, so a reload that changes a
// group changes the grant's reach; or addresses and CIDRs), optionally domains (and their
// subdomains; none = every destination), and an expiry. Pauses (block grants) come before
// exceptions, and both before the rules. The store keeps them in the state directory, so they
// survive restarts and reloads; an expired grant matches nothing and is dropped at the next write.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "hallpass/base/error.h"
#include "hallpass/base/net_set.h"
#include "hallpass/rules/rules_loader.h"

namespace hallpass {

class RuleSet;

struct Grant {
    uint64_t id = 0;
    Action action = Action::Allow;     // Allow: an exception to the rules; Block: a pause
    std::vector<std::string> clients;  // as given: group names, IPs, CIDRs
    std::vector<std::string> domains;  // canonical names; empty = every destination
    int64_t created_s = 0;
    int64_t expires_s = 0;
    std::string note;  // shown on the block page of a pause ("" = none)

    bool active(int64_t now_s) const { return now_s < expires_s; }
    // "allow kids -> youtube.com" / "block kids -> everything"
    std::string describe() const;
};

// An immutable set of grants, as workers see it.
class GrantSet {
  public:
    GrantSet() = default;
    explicit GrantSet(std::vector<Grant> grants);

    // The grant that decides a request from `client` to `host` at `now_s`, or null: the first
    // active pause that matches, else the first active exception. Group names are looked up
    // in `rules`.
    const Grant* match(const RuleSet& rules, const IpAddr& client, std::string_view host,
                       int64_t now_s) const;
    // Which grants are active at `now_s`, as a number that changes when one starts or ends.
    uint64_t state(int64_t now_s) const;
    bool empty() const { return grants_.empty(); }
    const std::vector<Grant>& all() const { return grants_; }

  private:
    bool matches(const Grant& g, size_t index, const RuleSet& rules, const IpAddr& client,
                 std::string_view host) const;
    std::vector<Grant> grants_;
    std::vector<NetSet> literal_clients_;  // per grant: its IP and CIDR labels
};

// What a `grant` command asks for.
struct GrantRequest {
    Action action = Action::Allow;
    std::vector<std::string> clients;
    std::vector<std::string> domains;  // as given: checked and made canonical by add()
    int64_t duration_s = 0;
    std::string note;
};

class GrantStore {
  public:
    static constexpr size_t kMaxGrants = 256;
    static constexpr size_t kMaxDomains = 64;
    static constexpr int64_t kMaxDurationS = 7 * 86'400;

    // `path`: the file in the state directory ("" = kept in memory only).
    explicit GrantStore(std::string path);

    // Reads the file, if there is one; expired grants are dropped. An unreadable or damaged
    // file is an error (the caller logs it and starts with none).
    Result<void> load(int64_t now_s);

    // Checks `req` (clients must be groups of `rules` or addresses; domains names; duration 1 min
    // to 7 days), adds it, writes the file and publishes. Thread-safe.
    Result<Grant> add(const GrantRequest& req, const RuleSet& rules, int64_t now_s);
    // False when there is no active grant `id`.
    Result<bool> revoke(uint64_t id, int64_t now_s);
    std::vector<Grant> list(int64_t now_s) const;  // the active ones

    std::shared_ptr<const GrantSet> current() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return current_;
    }
    uint64_t generation() const { return generation_.load(std::memory_order_acquire); }

  private:
    Result<void> save_locked(const std::vector<Grant>& grants) const;
    void publish_locked(std::vector<Grant> grants);
    std::vector<Grant> active_locked(int64_t now_s) const;

    std::string path_;
    mutable std::mutex mutex_;
    std::shared_ptr<const GrantSet> current_ = std::make_shared<GrantSet>();
    uint64_t next_id_ = 1;
    std::atomic<uint64_t> generation_{0};
};

// A worker's view (as RuleCache): one atomic load per request.
class GrantCache {
  public:
    explicit GrantCache(const GrantStore* store) : store_(store) { refresh(); }
    const std::shared_ptr<const GrantSet>& get() {
        if (store_ && store_->generation() != generation_) refresh();
        return grants_;
    }

  private:
    void refresh() {
        if (!store_) {
            grants_ = std::make_shared<GrantSet>();
            return;
        }
        generation_ = store_->generation();
        grants_ = store_->current();
    }
    const GrantStore* store_;
    uint64_t generation_ = 0;
    std::shared_ptr<const GrantSet> grants_;
};

// JSON text of grants (the control API and the file): {"id":3,"action":"allow",...}.
std::string grant_json(const Grant& g);
std::string grants_json(const std::vector<Grant>& grants);

}  // namespace hallpass
