// Fuzz target: block-list files in each ListFormat. Every name handed to the sink must be what the
// request side's canonicalize_host() produces for it (lower-case ASCII, no trailing dot, a name and
// not an address), or a listed site could be reached by spelling it differently; the statistics
// must account for every line.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz_check.h"
#include "hallpass/http/uri.h"
#include "hallpass/rules/domain_list.h"

namespace hallpass::fuzz {
namespace {

void check_name(std::string_view name) {
    FUZZ_CHECK(!name.empty());
    for (char c : name) {
        const bool ok =
            (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
        FUZZ_CHECK(ok);
    }
    FUZZ_CHECK(name.front() != '.' && name.back() != '.');
    FUZZ_CHECK(name.find('.') != std::string_view::npos);  // at least two labels
    const auto host = canonicalize_host(name);
    FUZZ_CHECK(host.ok());
    FUZZ_CHECK(host->host == name);
    FUZZ_CHECK(host->kind == HostKind::Name);
}

void check_format(std::string_view text, ListFormat format) {
    size_t calls = 0;
    uint32_t last_line = 0;
    const ListStats stats =
        parse_domain_list(text, format, [&](std::string_view name, uint32_t line) {
            check_name(name);
            FUZZ_CHECK(line >= 1 && line >= last_line);  // names come in file order
            last_line = line;
            ++calls;
        });

    std::string_view body = text;
    if (body.starts_with("\xEF\xBB\xBF")) body.remove_prefix(3);  // a UTF-8 BOM is not a line
    const size_t newlines = static_cast<size_t>(std::count(body.begin(), body.end(), '\n'));
    const size_t lines = newlines + (!body.empty() && body.back() != '\n' ? 1 : 0);
    FUZZ_CHECK(stats.lines == lines);
    FUZZ_CHECK(last_line <= stats.lines);
    FUZZ_CHECK(stats.entries == calls);
    // Every line lands in at least one bucket (a hosts line with several names in several).
    FUZZ_CHECK(stats.entries + stats.skipped + stats.invalid + stats.unsupported >= stats.lines);
    FUZZ_CHECK(stats.first_issues.size() ==
               std::min(kMaxIssues, stats.invalid + stats.unsupported));
    for (const ListLineIssue& issue : stats.first_issues) {
        FUZZ_CHECK(issue.line >= 1 && issue.line <= stats.lines);
        FUZZ_CHECK(!issue.reason.empty());
        FUZZ_CHECK(issue.text.size() <= kMaxIssueTextBytes + 3);  // "..." marks a cut
    }
}

}  // namespace
}  // namespace hallpass::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using hallpass::ListFormat;
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    for (ListFormat format :
         {ListFormat::Auto, ListFormat::Plain, ListFormat::Hosts, ListFormat::Adblock}) {
        hallpass::fuzz::check_format(text, format);
    }
    return 0;
}
