// Block-list files -> canonical domain names: plain one-name-per-line, hosts files and adblock
// `||name^` rules, detected per line by default. Only reads and classifies lines; what a name
// means (domain and subdomains) and where it is stored (domain_index) is the rule engine's
// business. Runs on the loader/reload thread, never on an event loop.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "hallpass/base/error.h"

namespace hallpass {

// How a list file is written. Auto decides per line (files mix syntaxes, e.g. `#` comments and
// `||name^` rules in one adblock file):
//  - starts with `||`, `@@`, `|` or `/`, or its first field holds `^`, `$` or `://` -> Adblock;
//  - first field is an IPv4/IPv6 address followed by more fields -> Hosts;
//  - otherwise Plain.
enum class ListFormat { Auto, Plain, Hosts, Adblock };

// "auto" | "plain" | "hosts" | "adblock" (exact, lower case). The Error has only a message; the
// caller adds the rules.yaml location.
Result<ListFormat> parse_list_format(std::string_view text);

// One line the importer did not load, for `--check` and reload log lines.
struct ListLineIssue {
    uint32_t line = 0;   // 1-based
    std::string reason;  // e.g. "single-label name", "adblock exception (@@) not supported"
    std::string text;    // the offending entry (or line), truncated to kMaxIssueTextBytes
};

// Accounting, so that every line is in exactly one bucket and every name of a line in exactly
// one: a blank or comment line adds 1 to `skipped`; every name on an entry line (a hosts line
// may hold several) adds 1 to exactly one of `entries`, `skipped` (localhost-style, IP-only),
// `invalid` or `unsupported`; a line that is broken as a whole (a Hosts-format line whose first
// field is not an address, an adblock rule that is not a host rule) adds 1 to `invalid` or
// `unsupported`. Inline `# ...` comments after an entry are dropped and not counted.
struct ListStats {
    size_t lines = 0;        // physical lines, the last one counted even without a final newline
    size_t entries = 0;      // names passed to on_domain (duplicates included)
    size_t skipped = 0;      // blank, comment, localhost-style, IP-only, cancelled: on purpose
    size_t invalid = 0;      // not a valid host name (single label, bad bytes, numeric TLD, ...)
    size_t unsupported = 0;  // adblock syntax hallpass does not implement (see parse_domain_list)
    std::vector<ListLineIssue> first_issues;  // the first kMaxIssues invalid/unsupported items
};

inline constexpr size_t kMaxIssues = 5;
inline constexpr size_t kMaxIssueTextBytes = 80;

// Called once per domain entry with its canonical name (valid only during the call) and its
// 1-based line number.
using DomainSink = std::function<void(std::string_view name, uint32_t line)>;

// Parses a whole list file held in memory and calls on_domain for each entry. Never fails on
// content: whatever cannot be loaded is counted (see ListStats) and the rest still loads.
//
// Canonical names (what on_domain receives, and what the request side gets from
// canonicalize_host() in uri.h, so the two compare byte for byte): ASCII lower case; one trailing
// dot and one leading dot removed (UT1 writes `.afshin.ir` for "the domain and its subdomains",
// which is what every list entry means anyway); non-ASCII names converted to punycode by libidn2
// (IDNA2008 non-transitional, then transitional); then labels of 1..63 bytes from [a-z0-9_-]
// (underscores are in real DNS names, e.g. `prebid_stats.mars.media`), at most 253 bytes, at
// least two labels (a lone `com` would block a whole TLD), and a last label that is not numeric
// (`beeg.globa0.0.0.0` is upstream garbage, and uri.h rejects such hosts anyway).
//
// Skipped, not errors: blank lines; comment lines starting with `#` or `!` after optional
// whitespace (this also drops commented-out entries such as `# 0.0.0.0 example.com`); inline
// comments after an entry (` # ...`, `#...`); localhost-style names (localhost,
// localhost.localdomain, local, broadcasthost, ip6-localhost, ip6-loopback, ip6-localnet,
// ip6-mcastprefix, ip6-allnodes, ip6-allrouters, ip6-allhosts) and IP addresses where a name
// should be (`0.0.0.0 0.0.0.0`, the 23k IPv4 lines in UT1): a list of names cannot block an
// address; write a `hosts:` or `dest_nets:` rule for that.
//
// Adblock rules load only in the host forms `||name^`, `||name` (no `^`), `.name^` and `name^`
// (read as the domain), each optionally with `$important` and a trailing `|`. Counted as
// unsupported and not loaded: `@@` exceptions, `/regex/` rules, wildcards `*` (in any format),
// modifiers other than `$important` (including `$badfilter`), single-`|` and `://` anchors,
// prefix rules ending in `.` (`||rotator.`), unanchored fragments (`-banner-ads.`), paths, and
// cosmetic `##` rules. An exception is written as an `allow` rule in rules.yaml instead; rule
// order makes it win. `RULE$badfilter` is unsupported itself but honoured: it cancels the line
// `RULE` anywhere in the file (Auto and Adblock formats), which then counts as skipped.
ListStats parse_domain_list(std::string_view text, ListFormat format, const DomainSink& on_domain);

// Reads `path` whole and parses it as above. Fails only when the file cannot be read: the Error
// names the path and the OS reason (`cannot read list file "x": No such file or directory`),
// with Error::file set to the path.
Result<ListStats> load_domain_list(const std::string& path, ListFormat format,
                                   const DomainSink& on_domain);

}  // namespace hallpass
