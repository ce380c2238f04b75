// List-file parsing: one pass of string_view scanning over the whole file, one canonical name per
// entry handed to a sink. The ASCII fast path allocates nothing per line (a lower-case copy goes
// into one reused buffer, only when a name has upper case); libidn2 runs only for non-ASCII names.
#include "hallpass/rules/domain_list.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <idn2.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>

namespace hallpass {

namespace {

constexpr size_t kMaxNameBytes = 253;  // RFC 1035 §2.3.4, without the trailing dot
constexpr size_t kMaxLabelBytes = 63;

// Names that /etc/hosts files map to loopback or multicast addresses; blocking them would break
// the machine, and StevenBlack's header lists them all. Single-label except the first.
constexpr std::array<std::string_view, 11> kLocalhostNames = {
    "localhost.localdomain", "localhost",      "local",        "broadcasthost",
    "ip6-localhost",         "ip6-loopback",   "ip6-localnet", "ip6-mcastprefix",
    "ip6-allnodes",          "ip6-allrouters", "ip6-allhosts",
};

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_hex(char c) { return is_digit(c) || (c >= 'a' && c <= 'f'); }
bool is_upper(char c) { return c >= 'A' && c <= 'Z'; }
bool is_name_byte(char c) { return (c >= 'a' && c <= 'z') || is_digit(c) || c == '-' || c == '_'; }

std::string_view trim(std::string_view s) {
    size_t b = 0;
    while (b < s.size() && is_space(s[b])) ++b;
    size_t e = s.size();
    while (e > b && is_space(s[e - 1])) --e;
    return s.substr(b, e - b);
}

// Splits off the first whitespace-separated field of `rest` (which must not start with space).
std::string_view next_field(std::string_view& rest) {
    size_t end = 0;
    while (end < rest.size() && !is_space(rest[end])) ++end;
    const std::string_view field = rest.substr(0, end);
    rest = trim(rest.substr(end));
    return field;
}

// Dotted-quad IPv4, leniently (leading zeros allowed): the question is only "is this line an
// address rather than a name", never which address it is.
bool is_ipv4(std::string_view s) {
    int parts = 0;
    size_t i = 0;
    while (true) {
        size_t digits = 0;
        unsigned value = 0;
        while (i < s.size() && is_digit(s[i]) && digits < 4) {
            value = value * 10 + static_cast<unsigned>(s[i] - '0');
            ++i;
            ++digits;
        }
        if (digits == 0 || digits > 3 || value > 255) return false;
        ++parts;
        if (i == s.size()) return parts == 4;
        if (s[i] != '.' || parts == 4) return false;
        ++i;
    }
}

// IPv6 as hosts files write it, with an optional zone (`fe80::1%lo0`).
bool is_ipv6(std::string_view s) {
    if (s.find(':') == std::string_view::npos) return false;
    s = s.substr(0, s.find('%'));
    char text[INET6_ADDRSTRLEN];
    if (s.size() >= sizeof text) return false;
    std::memcpy(text, s.data(), s.size());
    text[s.size()] = '\0';
    in6_addr addr{};
    return inet_pton(AF_INET6, text, &addr) == 1;
}

bool is_ip_address(std::string_view s) { return is_ipv4(s) || is_ipv6(s); }

// A last label of digits (or 0x + hex) makes resolvers and browsers read the name as an IPv4
// address in some form, and canonicalize_host() (uri.h) rejects such hosts, so no request could
// ever match it: `beeg.globa0.0.0.0` is upstream garbage, not a name.
bool is_numeric_label(std::string_view label) {
    if (label.size() >= 2 && label[0] == '0' && label[1] == 'x') {
        for (char c : label.substr(2)) {
            if (!is_hex(c)) return false;
        }
        return true;
    }
    for (char c : label) {
        if (!is_digit(c)) return false;
    }
    return !label.empty();
}

enum class Verdict { Entry, Skipped, Invalid, Unsupported };

struct NameResult {
    Verdict verdict;
    std::string_view name;  // the canonical name when verdict == Entry
    const char* reason;     // set for Invalid / Unsupported
    std::string detail;     // extra words for the reason (libidn2's message); usually empty
};

// Turns one list token into a canonical name, or says why not. `buffer` is reused across calls
// and backs `name` when the token needed rewriting (upper case, IDN).
NameResult canonicalize(std::string_view token, std::string& buffer) {
    // "*.example.com" is a common way to write "example.com and its subdomains", which is what
    // every list entry means: read as example.com (as `domains:` does). Other wildcards are not.
    if (token.starts_with("*.")) token.remove_prefix(2);
    if (token.find('*') != std::string_view::npos) {
        return {Verdict::Unsupported, {}, "wildcard names are not supported", {}};
    }
    if (is_ipv6(token)) return {Verdict::Skipped, {}, nullptr, {}};
    std::string_view name = token;
    if (!name.empty() && name.back() == '.') name.remove_suffix(1);   // FQDN spelling
    if (!name.empty() && name.front() == '.') name.remove_prefix(1);  // UT1: ".afshin.ir"
    if (name.empty()) return {Verdict::Invalid, {}, "empty name", {}};

    bool has_upper = false;
    bool is_ascii = true;
    for (char c : name) {
        has_upper = has_upper || is_upper(c);
        is_ascii = is_ascii && static_cast<unsigned char>(c) < 0x80;
    }
    if (!is_ascii) {
        // IDNA2008 non-transitional first (so "faß.de" stays itself), then transitional for
        // names only IDNA2003 accepted: the same order as canonicalize_host() in uri.cpp.
        const std::string input(name);
        int rc = IDN2_OK;
        for (int flags : {IDN2_NONTRANSITIONAL, IDN2_TRANSITIONAL}) {
            char* out = nullptr;
            rc = idn2_lookup_u8(reinterpret_cast<const uint8_t*>(input.c_str()),
                                reinterpret_cast<uint8_t**>(&out), flags);
            const std::unique_ptr<char, decltype(&std::free)> owned(out, &std::free);
            if (rc == IDN2_OK) {
                buffer.assign(out);
                break;
            }
        }
        if (rc != IDN2_OK) {
            return {Verdict::Invalid, {}, "invalid international name", idn2_strerror(rc)};
        }
        for (char& c : buffer) {
            if (is_upper(c)) c = static_cast<char>(c + 32);
        }
        name = buffer;
    } else if (has_upper) {
        buffer.assign(name);
        for (char& c : buffer) {
            if (is_upper(c)) c = static_cast<char>(c + 32);
        }
        name = buffer;
    }

    if (name.size() > kMaxNameBytes) {
        return {Verdict::Invalid, {}, "name longer than 253 bytes", {}};
    }
    size_t labels = 0;
    size_t label_start = 0;
    for (size_t i = 0; i <= name.size(); ++i) {
        if (i == name.size() || name[i] == '.') {
            const size_t len = i - label_start;
            if (len == 0) return {Verdict::Invalid, {}, "empty label", {}};
            if (len > kMaxLabelBytes) {
                return {Verdict::Invalid, {}, "label longer than 63 bytes", {}};
            }
            ++labels;
            label_start = i + 1;
        } else if (!is_name_byte(name[i])) {
            return {Verdict::Invalid, {}, "invalid character in name", {}};
        }
    }
    const std::string_view last_label = name.substr(name.rfind('.') + 1);
    if (is_numeric_label(last_label)) {
        if (is_ipv4(name)) return {Verdict::Skipped, {}, nullptr, {}};
        return {Verdict::Invalid, {}, "numeric top-level label", {}};
    }
    if (labels == 1 || name == kLocalhostNames[0]) {
        for (std::string_view local : kLocalhostNames) {
            if (name == local) return {Verdict::Skipped, {}, nullptr, {}};
        }
        return {
            Verdict::Invalid, {}, "single-label name (would block a whole top-level domain)", {}};
    }
    return {Verdict::Entry, name, nullptr, {}};
}

bool starts_with(std::string_view s, std::string_view prefix) {
    return s.substr(0, prefix.size()) == prefix;
}

// Cosmetic (element-hiding) adblock rules: `example.com##.ad`, `#@#`, `#?#`, `#$#`, `#%#`. Their
// domain part must never be read as a name to block.
bool has_cosmetic_marker(std::string_view s) {
    for (size_t i = s.find('#'); i != std::string_view::npos; i = s.find('#', i + 1)) {
        if (i > 0 && i + 1 < s.size() &&
            std::string_view("#@?$%").find(s[i + 1]) != std::string_view::npos) {
            return true;
        }
    }
    return false;
}

// The per-line detection of ListFormat::Auto (documented in domain_list.h). A leading '-' is an
// adblock pattern fragment (`-banner-ads.`): no list writes a name that way on purpose.
ListFormat detect_format(std::string_view line) {
    if (starts_with(line, "|") || starts_with(line, "@@") || starts_with(line, "/") ||
        starts_with(line, "-")) {
        return ListFormat::Adblock;
    }
    std::string_view rest = line;
    const std::string_view first = next_field(rest);
    if (first.find_first_of("^$") != std::string_view::npos ||
        first.find("://") != std::string_view::npos || has_cosmetic_marker(first)) {
        return ListFormat::Adblock;
    }
    if (!rest.empty() && rest[0] != '#' && is_ip_address(first)) return ListFormat::Hosts;
    return ListFormat::Plain;
}

class ListParser {
  public:
    ListParser(ListFormat format, const DomainSink& on_domain)
        : format_(format), on_domain_(on_domain) {}

    ListStats parse(std::string_view text) {
        if (starts_with(text, "\xEF\xBB\xBF")) text.remove_prefix(3);  // UTF-8 BOM
        if (format_ != ListFormat::Plain && format_ != ListFormat::Hosts) {
            collect_badfilters(text);
        }
        uint32_t line_no = 0;
        while (!text.empty()) {
            const size_t nl = text.find('\n');
            const std::string_view line = text.substr(0, nl);
            text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
            parse_line(line, ++line_no);
        }
        stats_.lines = line_no;
        return std::move(stats_);
    }

  private:
    // `RULE$badfilter` disables RULE wherever it is in the file (AdGuard): the filter at hand
    // cancels `||linksprf.com^` that way. Loading RULE anyway would block what the list's own
    // authors unblocked, so those lines are found first (a rare word: one scan, usually empty).
    void collect_badfilters(std::string_view text) {
        constexpr std::string_view kMarker = "$badfilter";
        for (size_t at = text.find(kMarker); at != std::string_view::npos;
             at = text.find(kMarker, at + 1)) {
            const size_t begin = text.rfind('\n', at) + 1;  // npos + 1 == 0
            const std::string_view rest = text.substr(at + kMarker.size());
            const std::string_view after = rest.substr(0, rest.find('\n'));
            if (!trim(after).empty()) continue;  // "$badfilter" inside some other rule
            cancelled_.push_back(trim(text.substr(begin, at - begin)));
        }
        std::sort(cancelled_.begin(), cancelled_.end());
    }

    bool is_cancelled(std::string_view line) const {
        return !cancelled_.empty() &&
               std::binary_search(cancelled_.begin(), cancelled_.end(), line);
    }

    void parse_line(std::string_view raw, uint32_t line_no) {
        const std::string_view line = trim(raw);
        if (line.empty() || line[0] == '#' || line[0] == '!' || is_cancelled(line)) {
            ++stats_.skipped;
            return;
        }
        switch (format_ == ListFormat::Auto ? detect_format(line) : format_) {
            case ListFormat::Plain:
                return parse_plain(line, line_no);
            case ListFormat::Hosts:
                return parse_hosts(line, line_no);
            case ListFormat::Adblock:
            case ListFormat::Auto:
                return parse_adblock(line, line_no);
        }
    }

    // Host names never contain '#', so in plain and hosts lines it always starts a comment,
    // with or without a space before or after it.
    static std::string_view strip_comment(std::string_view line) {
        return trim(line.substr(0, line.find('#')));
    }

    void parse_plain(std::string_view line, uint32_t line_no) {
        std::string_view rest = strip_comment(line);
        const std::string_view name = next_field(rest);
        if (!rest.empty()) {
            return record(Verdict::Invalid, "unexpected text after the name", {}, line, line_no);
        }
        add_name(name, line_no);
    }

    void parse_hosts(std::string_view line, uint32_t line_no) {
        std::string_view rest = strip_comment(line);
        const std::string_view address = next_field(rest);
        if (!is_ip_address(address)) {
            return record(Verdict::Invalid, "first field of a hosts line is not an ip address", {},
                          line, line_no);
        }
        if (rest.empty()) {  // an address alone names nothing
            ++stats_.skipped;
            return;
        }
        while (!rest.empty()) add_name(next_field(rest), line_no);
    }

    void parse_adblock(std::string_view line, uint32_t line_no) {
        if (starts_with(line, "@@")) {
            return unsupported("adblock exception (@@) not supported; write an allow rule", line,
                               line_no);
        }
        if (starts_with(line, "/")) {
            return unsupported("adblock regex rule not supported", line, line_no);
        }
        std::string_view rule = line;
        // `||name^ # note`: a '#' after whitespace is a comment; glued to the rule it is the
        // marker of a cosmetic rule (or something else we do not understand).
        for (size_t i = rule.find('#'); i != std::string_view::npos; i = rule.find('#', i + 1)) {
            if (i > 0 && is_space(rule[i - 1])) {
                rule = trim(rule.substr(0, i));
                break;
            }
        }
        if (rule.find('#') != std::string_view::npos) {
            return unsupported("cosmetic adblock rule not supported", line, line_no);
        }
        const size_t dollar = rule.find('$');
        if (dollar != std::string_view::npos) {
            // $important only raises priority among adblock rules; hallpass's order is rules.yaml.
            if (rule.substr(dollar + 1) != "important") {
                return unsupported("adblock modifier not supported", line, line_no);
            }
            rule = rule.substr(0, dollar);
        }
        const bool anchored = starts_with(rule, "||");
        if (anchored) {
            rule.remove_prefix(2);
        } else if (starts_with(rule, "|")) {
            return unsupported("adblock start anchor (single |) not supported", line, line_no);
        } else if (rule.find("://") != std::string_view::npos) {
            return unsupported("adblock scheme anchor (://) not supported", line, line_no);
        }
        if (!rule.empty() && rule.back() == '|') rule.remove_suffix(1);
        const bool terminated = !rule.empty() && rule.back() == '^';
        if (terminated) rule.remove_suffix(1);
        if (rule.find('*') != std::string_view::npos) {
            return unsupported("wildcard names are not supported", line, line_no);
        }
        for (char c : rule) {
            const bool host_byte =
                static_cast<unsigned char>(c) >= 0x80 || is_name_byte(c) || is_upper(c) || c == '.';
            if (!host_byte) {
                return unsupported("adblock pattern is not a host name", line, line_no);
            }
        }
        // Without `^` a rule is a prefix or substring pattern: `||rotator.` means rotator.<any
        // tld>, `-banner-ads.` any host containing it. `||name` (anchored, no `^`, ending in a
        // label) is read as the name, which is what its authors mean; strictly it would also
        // match longer hosts such as `name.evil.net`, which are not blocked.
        const bool fragment = !terminated && (!anchored || rule.empty() || rule.back() == '.');
        if (fragment) {
            return unsupported("adblock prefix or substring pattern not supported", line, line_no);
        }
        add_name(rule, line_no);
    }

    void add_name(std::string_view token, uint32_t line_no) {
        NameResult r = canonicalize(token, buffer_);
        if (r.verdict == Verdict::Entry) {
            ++stats_.entries;
            on_domain_(r.name, line_no);
            return;
        }
        record(r.verdict, r.reason, r.detail, token, line_no);
    }

    void unsupported(const char* reason, std::string_view text, uint32_t line_no) {
        record(Verdict::Unsupported, reason, {}, text, line_no);
    }

    void record(Verdict verdict, const char* reason, std::string_view detail, std::string_view text,
                uint32_t line_no) {
        switch (verdict) {
            case Verdict::Skipped:
                ++stats_.skipped;
                return;
            case Verdict::Invalid:
                ++stats_.invalid;
                break;
            case Verdict::Unsupported:
                ++stats_.unsupported;
                break;
            case Verdict::Entry:
                return;
        }
        if (stats_.first_issues.size() >= kMaxIssues) return;
        std::string why = reason;
        if (!detail.empty()) {
            why += ": ";
            why += detail;
        }
        stats_.first_issues.push_back({line_no, std::move(why), truncate(text)});
    }

    // Cut at a byte limit without splitting a UTF-8 sequence, so the text stays printable.
    static std::string truncate(std::string_view text) {
        if (text.size() <= kMaxIssueTextBytes) return std::string(text);
        size_t end = kMaxIssueTextBytes;
        while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;
        return std::string(text.substr(0, end)) + "...";
    }

    ListFormat format_;
    const DomainSink& on_domain_;
    ListStats stats_;
    std::string buffer_;
    std::vector<std::string_view> cancelled_;  // rules disabled by `$badfilter`, sorted
};

}  // namespace

Result<ListFormat> parse_list_format(std::string_view text) {
    struct Row {
        std::string_view name;
        ListFormat format;
    };
    static constexpr Row kRows[] = {{"auto", ListFormat::Auto},
                                    {"plain", ListFormat::Plain},
                                    {"hosts", ListFormat::Hosts},
                                    {"adblock", ListFormat::Adblock}};
    for (const Row& row : kRows) {
        if (text == row.name) return row.format;
    }
    return Error("unknown list format \"" + std::string(text) +
                 "\" (expected auto, plain, hosts or adblock)");
}

ListStats parse_domain_list(std::string_view text, ListFormat format, const DomainSink& on_domain) {
    return ListParser(format, on_domain).parse(text);
}

Result<ListStats> load_domain_list(const std::string& path, ListFormat format,
                                   const DomainSink& on_domain) {
    const auto fail = [&path](int err) {
        return Error("cannot read list file \"" + path + "\": " + std::strerror(err), path);
    };
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return fail(errno);
    struct Closer {
        int fd;
        ~Closer() { ::close(fd); }
    } closer{fd};
    struct stat st {};
    if (::fstat(fd, &st) != 0) return fail(errno);
    if (S_ISDIR(st.st_mode)) return fail(EISDIR);

    // One read of the whole file: lists are a few MB, and string_view scanning needs them
    // contiguous. The size is only a hint (the file may change under us), so read to EOF.
    std::string text;
    text.resize(static_cast<size_t>(st.st_size) + 1);
    size_t used = 0;
    while (true) {
        if (used == text.size()) text.resize(text.size() * 2);
        const ssize_t n = ::read(fd, text.data() + used, text.size() - used);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return fail(errno);
        if (n == 0) break;
        used += static_cast<size_t>(n);
    }
    text.resize(used);
    return parse_domain_list(text, format, on_domain);
}

}  // namespace hallpass
