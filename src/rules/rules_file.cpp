// The rules file, end to end: YAML -> ServerConfig + RulesSpec -> RuleSet, timed and measured.
#include "hallpass/rules/rules_file.h"

#include <chrono>
#include <fstream>
#include <string>

#include "hallpass/config/yaml_source.h"
#include "hallpass/rules/rules_loader.h"

namespace hallpass {

long current_rss_kib() {
    std::ifstream status("/proc/self/status");
    std::string key;
    while (status >> key) {
        if (key == "VmRSS:") {
            long kib = 0;
            status >> kib;
            return kib;
        }
        status.ignore(4096, '\n');
    }
    return 0;
}

Result<LoadedRules> load_rules_file(const std::string& path, const RuleSet* previous,
                                    Pacer* pacer) {
    auto start = std::chrono::steady_clock::now();
    long rss_before = current_rss_kib();
    auto src = YamlSource::load_file(path);
    if (!src) return src.error();
    auto server = read_server_config(*src);
    if (!server) return server.error();
    auto spec = load_rules_spec(*src, server->state_dir);
    if (!spec) return spec.error();
    auto rules = RuleSet::compile(std::move(*spec), previous, pacer);
    if (!rules) return rules.error();
    LoadedRules out;
    out.server = std::move(*server);
    out.rules = std::move(*rules);
    out.load_ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    out.rss_delta_kib = current_rss_kib() - rss_before;
    return out;
}

Result<std::vector<ListSpec>> load_url_lists(const std::string& path,
                                             const std::string& state_dir) {
    auto src = YamlSource::load_file(path);
    if (!src) return src.error();
    std::string dir = state_dir;
    if (dir.empty()) {
        auto server = read_server_config(*src);
        if (!server) return server.error();
        dir = server->state_dir;
    }
    auto spec = load_rules_spec(*src, dir);
    if (!spec) return spec.error();
    std::vector<ListSpec> out;
    for (ListSpec& list : spec->lists) {
        if (!list.url.empty()) out.push_back(std::move(list));
    }
    return out;
}

}  // namespace hallpass
