// Grants: matching, the store, and their file (JSON, read back with yaml-cpp, which reads JSON).
#include "hallpass/rules/grants.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "hallpass/base/json_text.h"
#include "hallpass/http/uri.h"
#include "hallpass/rules/rule_set.h"

namespace hallpass {
namespace {

bool in_domain(std::string_view host, std::string_view domain) {
    return host == domain || (host.size() > domain.size() && host.ends_with(domain) &&
                              host[host.size() - domain.size() - 1] == '.');
}

bool is_literal(const std::string& label) {
    NetSet probe;
    return !probe.add(label).has_value();
}

}  // namespace

std::string Grant::describe() const {
    std::string who;
    for (const auto& c : clients) who += (who.empty() ? "" : ",") + c;
    std::string what;
    for (const auto& d : domains) what += (what.empty() ? "" : ",") + d;
    return std::string(action == Action::Block ? "block " : "allow ") + who + " -> " +
           (what.empty() ? "everything" : what);
}

GrantSet::GrantSet(std::vector<Grant> grants) : grants_(std::move(grants)) {
    for (const Grant& g : grants_) {
        NetSet set;
        for (const std::string& c : g.clients) {
            if (is_literal(c)) (void)set.add(c);
        }
        set.compile();
        literal_clients_.push_back(std::move(set));
    }
}

bool GrantSet::matches(const Grant& g, size_t index, const RuleSet& rules, const IpAddr& client,
                       std::string_view host) const {
    bool who = literal_clients_[index].contains(client);
    for (size_t i = 0; !who && i < g.clients.size(); ++i) {
        auto group = rules.groups().find(g.clients[i]);
        who = group != rules.groups().end() && group->second.contains(client);
    }
    if (!who) return false;
    if (g.domains.empty()) return true;
    return std::any_of(g.domains.begin(), g.domains.end(),
                       [&](const std::string& d) { return in_domain(host, d); });
}

const Grant* GrantSet::match(const RuleSet& rules, const IpAddr& client, std::string_view host,
                             int64_t now_s) const {
    const Grant* allow = nullptr;
    for (size_t i = 0; i < grants_.size(); ++i) {
        const Grant& g = grants_[i];
        if (!g.active(now_s) || (g.action == Action::Allow && allow)) continue;
        if (!matches(g, i, rules, client, host)) continue;
        if (g.action == Action::Block) return &g;
        allow = &g;
    }
    return allow;
}

uint64_t GrantSet::state(int64_t now_s) const {
    uint64_t h = 1469598103934665603ull;
    for (const Grant& g : grants_) {
        if (!g.active(now_s)) continue;
        h = (h ^ g.id) * 1099511628211ull;
    }
    return h;
}

GrantStore::GrantStore(std::string path) : path_(std::move(path)) {}

std::vector<Grant> GrantStore::active_locked(int64_t now_s) const {
    std::vector<Grant> out;
    for (const Grant& g : current_->all()) {
        if (g.active(now_s)) out.push_back(g);
    }
    return out;
}

void GrantStore::publish_locked(std::vector<Grant> grants) {
    current_ = std::make_shared<const GrantSet>(std::move(grants));
    generation_.fetch_add(1, std::memory_order_release);
}

Result<void> GrantStore::load(int64_t now_s) {
    if (path_.empty() || !std::filesystem::exists(path_)) return {};
    std::vector<Grant> grants;
    uint64_t next = 1;
    try {
        YAML::Node root = YAML::LoadFile(path_);
        const YAML::Node list = root["grants"];
        if (root["next_id"]) next = root["next_id"].as<uint64_t>();
        if (list && !list.IsSequence()) return Error{"\"grants\" is not a list", path_};
        for (const YAML::Node& n : list) {
            Grant g;
            g.id = n["id"].as<uint64_t>();
            g.action = n["action"].as<std::string>() == "block" ? Action::Block : Action::Allow;
            for (const auto& c : n["clients"]) g.clients.push_back(c.as<std::string>());
            if (n["domains"]) {
                for (const auto& d : n["domains"]) g.domains.push_back(d.as<std::string>());
            }
            g.created_s = n["created"].as<int64_t>();
            g.expires_s = n["expires"].as<int64_t>();
            if (n["note"]) g.note = n["note"].as<std::string>();
            next = std::max(next, g.id + 1);
            if (g.clients.empty()) return Error{"a grant names no clients", path_};
            if (g.active(now_s)) grants.push_back(std::move(g));
        }
    } catch (const std::exception& e) {
        return Error{std::string("cannot read grants: ") + e.what(), path_};
    }
    std::lock_guard<std::mutex> lock(mutex_);
    next_id_ = next;
    publish_locked(std::move(grants));
    return {};
}

Result<void> GrantStore::save_locked(const std::vector<Grant>& grants) const {
    if (path_.empty()) return {};
    std::error_code ec;
    std::filesystem::create_directories(std::filesystem::path(path_).parent_path(), ec);
    const std::string tmp = path_ + ".tmp";
    {
        std::ofstream out(tmp, std::ios::trunc);
        out << "{\"next_id\":" << next_id_ << ",\"grants\":" << grants_json(grants) << "}\n";
        out.flush();
        if (!out) return Error{"cannot write " + tmp};
    }
    // A whole file or the old one: a crash mid-write never leaves half a list.
    if (std::rename(tmp.c_str(), path_.c_str()) != 0) return Error{"cannot replace " + path_};
    return {};
}

Result<Grant> GrantStore::add(const GrantRequest& req, const RuleSet& rules, int64_t now_s) {
    if (req.clients.empty()) return Error{"a grant needs clients (a group, an address or a CIDR)"};
    Grant g;
    g.action = req.action;
    for (const std::string& c : req.clients) {
        if (rules.groups().count(c) == 0 && !is_literal(c)) {
            return Error{"\"" + c + "\" is neither a group of the rules nor an address or CIDR"};
        }
        g.clients.push_back(c);
    }
    if (req.domains.size() > kMaxDomains) {
        return Error{"at most " + std::to_string(kMaxDomains) + " domains in one grant"};
    }
    for (std::string_view d : req.domains) {
        if (d.starts_with("*.")) d.remove_prefix(2);
        auto host = canonicalize_host(d);
        if (!host || host->kind != HostKind::Name) {
            return Error{"\"" + std::string(d) + "\" is not a domain name"};
        }
        g.domains.push_back(host->host);
    }
    if (req.action == Action::Allow && g.domains.empty()) {
        return Error{"an exception names domains (--domains); to lift every rule, edit the rules"};
    }
    if (req.duration_s < 60 || req.duration_s > kMaxDurationS) {
        return Error{"a grant lasts from 1 minute to 7 days"};
    }
    if (req.note.size() > 200) return Error{"the note is longer than 200 bytes"};
    g.note = req.note;
    g.created_s = now_s;
    g.expires_s = now_s + req.duration_s;
    std::lock_guard<std::mutex> lock(mutex_);
    std::vector<Grant> grants = active_locked(now_s);
    if (grants.size() >= kMaxGrants) {
        return Error{"too many grants (" + std::to_string(kMaxGrants) + "); revoke some first"};
    }
    g.id = next_id_++;
    grants.push_back(g);
    if (auto saved = save_locked(grants); !saved) {
        --next_id_;
        return saved.error();
    }
    publish_locked(std::move(grants));
    return g;
}

Result<bool> GrantStore::revoke(uint64_t id, int64_t now_s) {
    std::lock_guard<std::mutex> lock(mutex_);
    std::vector<Grant> grants = active_locked(now_s);
    auto it =
        std::find_if(grants.begin(), grants.end(), [&](const Grant& g) { return g.id == id; });
    if (it == grants.end()) return false;
    grants.erase(it);
    if (auto saved = save_locked(grants); !saved) return saved.error();
    publish_locked(std::move(grants));
    return true;
}

std::vector<Grant> GrantStore::list(int64_t now_s) const {
    std::lock_guard<std::mutex> lock(mutex_);
    return active_locked(now_s);
}

std::string grant_json(const Grant& g) {
    std::string out = "{\"id\":" + std::to_string(g.id) + ",\"action\":";
    out += g.action == Action::Block ? "\"block\"" : "\"allow\"";
    out += ",\"clients\":[";
    for (size_t i = 0; i < g.clients.size(); ++i) {
        if (i) out += ',';
        append_json_string(out, g.clients[i]);
    }
    out += "],\"domains\":[";
    for (size_t i = 0; i < g.domains.size(); ++i) {
        if (i) out += ',';
        append_json_string(out, g.domains[i]);
    }
    out += "],\"created\":" + std::to_string(g.created_s);
    out += ",\"expires\":" + std::to_string(g.expires_s) + ",\"note\":";
    append_json_string(out, g.note);
    out += '}';
    return out;
}

std::string grants_json(const std::vector<Grant>& grants) {
    std::string out = "[";
    for (size_t i = 0; i < grants.size(); ++i) {
        if (i) out += ',';
        out += grant_json(grants[i]);
    }
    out += ']';
    return out;
}

}  // namespace hallpass
