// Fuzz target: rules.yaml text through the YAML source, the server-section reader and the rules
// loader. Any text must give a value or an Error pointing inside the file; yaml-cpp exceptions
// must not escape, and what loads must be canonical (hosts as the request side spells them).
// List and block-page files are only checked for existence here, never read.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <set>
#include <string>

#include "fuzz_check.h"
#include "hallpass/config/config.h"
#include "hallpass/config/yaml_source.h"
#include "hallpass/http/uri.h"
#include "hallpass/rules/rules_loader.h"

namespace hallpass::fuzz {
namespace {

// Relative list paths resolve beside the rules file: a directory that does not exist.
const std::string kName = "/nonexistent-hallpass-fuzz/rules.yaml";

void check_error(const Error& e, const std::string& text) {
    FUZZ_CHECK(!e.message.empty());
    FUZZ_CHECK(e.file == kName);
    const long lines = 1 + std::count(text.begin(), text.end(), '\n');
    FUZZ_CHECK(e.line >= 0 && e.line <= lines + 1);
    FUZZ_CHECK(e.col >= 0);
    FUZZ_CHECK(!e.to_string().empty());
}

void check_entries(const std::vector<RuleSpecEntry>& entries, bool domains) {
    for (const RuleSpecEntry& entry : entries) {
        const auto host = canonicalize_host(entry.text);
        FUZZ_CHECK(host.ok() && host->host == entry.text);
        if (domains) FUZZ_CHECK(host->kind == HostKind::Name);
    }
}

void check_spec(const RulesSpec& spec) {
    std::set<std::string> names;
    for (const RuleSpec& rule : spec.rules) {
        FUZZ_CHECK(names.insert(rule.name).second);
        check_entries(rule.hosts, false);
        check_entries(rule.domains, true);
        for (size_t list : rule.lists) FUZZ_CHECK(list < spec.lists.size());
        for (uint16_t port : rule.ports) FUZZ_CHECK(port != 0);
        if (rule.has_clients) FUZZ_CHECK(!rule.client_labels.empty());
    }
    for (const ListSpec& list : spec.lists) {
        FUZZ_CHECK(list.format == "auto" || list.format == "plain" || list.format == "hosts" ||
                   list.format == "adblock");
    }
}

}  // namespace
}  // namespace hallpass::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace hallpass;
    using namespace hallpass::fuzz;
    const std::string text(reinterpret_cast<const char*>(data), size);
    const auto src = YamlSource::parse(text, kName);
    const auto direct = parse_server_config(text, kName);
    if (!src) {
        check_error(src.error(), text);
        FUZZ_CHECK(!direct.ok());
        return 0;
    }
    const auto config = read_server_config(*src);
    FUZZ_CHECK(config.ok() == direct.ok());
    if (config) {
        FUZZ_CHECK(!config->listen.empty());
    } else {
        check_error(config.error(), text);
    }
    const auto rules = load_rules_spec(*src);
    if (rules) {
        check_spec(*rules);
    } else {
        check_error(rules.error(), text);
    }
    return 0;
}
