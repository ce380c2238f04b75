// HTTP/1.x head parsing (RFC 9112 §2-§5) and body framing (RFC 9112 §6.3). The connection calls
// the parsers with everything it has buffered on every read, so each call is one forward pass over
// the bytes, line by line (memchr for the line end, a table lookup per byte), allocating only the
// strings it returns. Framing decisions here are what keep the proxy from being used to smuggle
// requests: anything ambiguous is rejected rather than guessed.
#include "hallpass/http/http_parser.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <limits>
#include <type_traits>

namespace hallpass {

namespace {

using ByteTable = std::array<bool, 256>;

// tchar (RFC 9110 §5.6.2): the bytes of methods, field names and transfer-coding names.
constexpr ByteTable make_tchar_table() {
    ByteTable t{};
    for (int c = '0'; c <= '9'; ++c) t[c] = true;
    for (int c = 'a'; c <= 'z'; ++c) t[c] = true;
    for (int c = 'A'; c <= 'Z'; ++c) t[c] = true;
    for (char c : std::string_view("!#$%&'*+-.^_`|~")) t[static_cast<unsigned char>(c)] = true;
    return t;
}

// field-vchar, SP and HTAB (RFC 9110 §5.5): everything but NUL, CR, LF, the other CTLs and DEL.
// obs-text (0x80-0xFF) is allowed; reason-phrase uses the same set (RFC 9112 §4).
constexpr ByteTable make_field_value_table() {
    ByteTable t{};
    for (int c = 0x20; c <= 0xff; ++c) t[c] = true;
    t[0x7f] = false;
    t['\t'] = true;
    return t;
}

// Request-target bytes: visible ASCII and obs-text, so a raw UTF-8 host can reach the IDN
// conversion in uri.cpp; no SP (the line separator), no CTL, no DEL (RFC 9112 §3.2).
constexpr ByteTable make_target_table() {
    ByteTable t{};
    for (int c = 0x21; c <= 0xff; ++c) t[c] = true;
    t[0x7f] = false;
    return t;
}

constexpr ByteTable kTchar = make_tchar_table();
constexpr ByteTable kFieldValue = make_field_value_table();
constexpr ByteTable kTarget = make_target_table();

bool all_in(std::string_view s, const ByteTable& table) {
    for (unsigned char c : s) {
        if (!table[c]) return false;
    }
    return true;
}

bool is_token(std::string_view s) { return !s.empty() && all_in(s, kTchar); }

bool is_ows(char c) { return c == ' ' || c == '\t'; }

std::string_view trim_ows(std::string_view s) {
    while (!s.empty() && is_ows(s.front())) s.remove_prefix(1);
    while (!s.empty() && is_ows(s.back())) s.remove_suffix(1);
    return s;
}

char ascii_lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

size_t saturating_add(size_t a, size_t b) {
    return a > std::numeric_limits<size_t>::max() - b ? std::numeric_limits<size_t>::max() : a + b;
}

enum class LineStatus { Found, Incomplete, TooLong };

struct Line {
    LineStatus status = LineStatus::Incomplete;
    std::string_view text;  // without CRLF / LF
    size_t next = 0;        // offset just past the LF
};

// The line starting at `pos`. A line ends at LF, with an optional CR before it (a bare LF is
// accepted, RFC 9112 §2.2); a CR anywhere else stays in `text` and fails the byte checks. Looks at
// no more than max_len + 2 bytes, so an over-long line is reported as soon as it is certain.
Line find_line(std::string_view bytes, size_t pos, size_t max_len) {
    const char* begin = bytes.data() + pos;
    const size_t avail = bytes.size() - pos;
    const size_t window = std::min(avail, saturating_add(max_len, 2));
    if (const void* lf = std::memchr(begin, '\n', window)) {
        const size_t lf_off = static_cast<size_t>(static_cast<const char*>(lf) - begin);
        const size_t len = (lf_off > 0 && begin[lf_off - 1] == '\r') ? lf_off - 1 : lf_off;
        if (len > max_len) return {LineStatus::TooLong, {}, 0};
        return {LineStatus::Found, std::string_view(begin, len), pos + lf_off + 1};
    }
    // No LF yet. max_len + 1 bytes that do not end in a CR (which may still be followed by LF)
    // already prove the content is longer than max_len.
    if (window > max_len && !(window == max_len + 1 && begin[max_len] == '\r')) {
        return {LineStatus::TooLong, {}, 0};
    }
    return {LineStatus::Incomplete, {}, 0};
}

// True when an unfinished line already holds a byte no valid line may hold: a control byte (HTAB
// only where `allow_tab`), DEL, or a CR that is not the last byte (it may still precede LF). Lets
// binary garbage, such as a TLS ClientHello sent to the plain port, fail at once instead of
// waiting for a line end that may never come.
bool partial_line_invalid(std::string_view partial, bool allow_tab) {
    for (size_t i = 0; i < partial.size(); ++i) {
        const auto c = static_cast<unsigned char>(partial[i]);
        if (c == '\r' && i + 1 == partial.size()) continue;
        if (c == '\t' && allow_tab) continue;
        if (c < 0x20 || c == 0x7f) return true;
    }
    return false;
}

// RFC 9112 §2.3: HTTP-version = "HTTP/" DIGIT "." DIGIT, case-sensitive. Other 1-digit versions
// are well-formed but unsupported (505); anything else is a syntax error.
HeadStatus parse_version(std::string_view v, int& minor) {
    const bool well_formed = v.size() == 8 && v.substr(0, 5) == "HTTP/" && v[5] >= '0' &&
                             v[5] <= '9' && v[6] == '.' && v[7] >= '0' && v[7] <= '9';
    if (!well_formed) return HeadStatus::Malformed;
    if (v[5] != '1' || (v[7] != '0' && v[7] != '1')) return HeadStatus::BadVersion;
    minor = v[7] - '0';
    return HeadStatus::Complete;
}

template <class Head>
HeadParse<Head> fail(HeadStatus status, const char* error) {
    HeadParse<Head> r;
    r.status = status;
    r.error = error;
    return r;
}

// request-line = method SP request-target SP HTTP-version (RFC 9112 §3). Exactly one SP between
// parts: a second SP makes an empty target or a version that does not match.
bool parse_request_line(std::string_view line, HeadParse<RequestHead>& out) {
    using Head = RequestHead;
    RequestHead& head = out.head;
    const size_t sp1 = line.find(' ');
    const std::string_view method = line.substr(0, sp1);
    if (method.empty()) {
        out = fail<Head>(HeadStatus::Malformed, "empty method");
        return false;
    }
    if (!is_token(method)) {
        out = fail<Head>(HeadStatus::Malformed, "invalid method");
        return false;
    }
    if (sp1 == std::string_view::npos) {
        out = fail<Head>(HeadStatus::Malformed, "missing request target");
        return false;
    }
    const std::string_view rest = line.substr(sp1 + 1);
    const size_t sp2 = rest.find(' ');
    const std::string_view target = rest.substr(0, sp2);
    if (target.empty()) {
        out = fail<Head>(HeadStatus::Malformed, "empty request target");
        return false;
    }
    if (!all_in(target, kTarget)) {
        out = fail<Head>(HeadStatus::Malformed, "invalid byte in request target");
        return false;
    }
    if (sp2 == std::string_view::npos) {
        out = fail<Head>(HeadStatus::Malformed, "missing http version");
        return false;
    }
    const HeadStatus v = parse_version(rest.substr(sp2 + 1), head.version_minor);
    if (v != HeadStatus::Complete) {
        out = fail<Head>(
            v, v == HeadStatus::BadVersion ? "unsupported http version" : "invalid http version");
        return false;
    }
    head.method.assign(method);
    head.target.assign(target);
    return true;
}

// status-line = HTTP-version SP status-code SP [reason-phrase] (RFC 9112 §4). The SP after the
// code is accepted when missing: the reason is optional and some servers drop both.
bool parse_status_line(std::string_view line, HeadParse<ResponseHead>& out) {
    using Head = ResponseHead;
    ResponseHead& head = out.head;
    const size_t sp = line.find(' ');
    if (sp == std::string_view::npos) {
        out = fail<Head>(HeadStatus::Malformed, "invalid status line");
        return false;
    }
    const HeadStatus v = parse_version(line.substr(0, sp), head.version_minor);
    if (v != HeadStatus::Complete) {
        out = fail<Head>(
            v, v == HeadStatus::BadVersion ? "unsupported http version" : "invalid http version");
        return false;
    }
    const std::string_view rest = line.substr(sp + 1);
    const bool code_ok = rest.size() >= 3 && rest[0] >= '1' && rest[0] <= '9' && rest[1] >= '0' &&
                         rest[1] <= '9' && rest[2] >= '0' && rest[2] <= '9' &&
                         (rest.size() == 3 || rest[3] == ' ');
    if (!code_ok) {
        out = fail<Head>(HeadStatus::Malformed, "invalid status code");
        return false;
    }
    const std::string_view reason = rest.size() > 3 ? rest.substr(4) : std::string_view();
    if (!all_in(reason, kFieldValue)) {
        out = fail<Head>(HeadStatus::Malformed, "invalid byte in reason phrase");
        return false;
    }
    head.status = (rest[0] - '0') * 100 + (rest[1] - '0') * 10 + (rest[2] - '0');
    head.reason.assign(reason);
    return true;
}

// field-line = field-name ":" OWS field-value OWS (RFC 9112 §5). Returns the error, or nullptr.
const char* parse_field_line(std::string_view line, Header& header) {
    // RFC 9112 §5.2: obs-fold is rejected rather than unfolded; the line may be a smuggling
    // attempt aimed at a recipient that folds differently.
    if (is_ows(line.front())) return "obsolete line folding";
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos) return "header line without colon";
    const std::string_view name = line.substr(0, colon);
    if (name.empty()) return "empty header name";
    // RFC 9112 §5.1: whitespace between name and colon MUST be rejected (400).
    if (is_ows(name.back())) return "whitespace before colon";
    if (!all_in(name, kTchar)) return "invalid header name";
    const std::string_view value = line.substr(colon + 1);
    if (!all_in(value, kFieldValue)) return "invalid byte in header value";
    header.name.assign(name);
    header.value.assign(trim_ows(value));
    return nullptr;
}

// The shared skeleton: leading empty lines, the start line (request or status), field lines up to
// the empty line, and the limits. `Head` is RequestHead or ResponseHead.
template <class Head>
HeadParse<Head> parse_head(std::string_view bytes, const ParseLimits& limits,
                           bool (*parse_start_line)(std::string_view, HeadParse<Head>&),
                           std::pmr::memory_resource* mr) {
    HeadParse<Head> out(mr);
    const size_t max_head = limits.max_head_bytes;

    // RFC 9112 §2.2: ignore empty lines before the start line. They count toward max_head_bytes,
    // otherwise a peer could make us buffer CRLFs forever.
    size_t pos = 0;
    const size_t scan_end = std::min(bytes.size(), saturating_add(max_head, 1));
    while (pos < scan_end) {
        if (bytes[pos] == '\n') {
            ++pos;
        } else if (bytes[pos] == '\r' && pos + 1 < bytes.size() && bytes[pos + 1] == '\n') {
            pos += 2;
        } else {
            break;
        }
    }

    const Line start = find_line(bytes, pos, limits.max_request_line);
    if (start.status == LineStatus::TooLong) {
        return fail<Head>(HeadStatus::LineTooLong, "start line too long");
    }
    if (start.status == LineStatus::Incomplete || start.next > max_head) {
        if (start.status == LineStatus::Found || bytes.size() > max_head) {
            return fail<Head>(HeadStatus::HeadersTooLarge, "head too large");
        }
        // A response's reason phrase may hold HTAB (RFC 9112 §4); a request line may not.
        constexpr bool kTabAllowed = std::is_same_v<Head, ResponseHead>;
        if (partial_line_invalid(bytes.substr(pos), kTabAllowed)) {
            return fail<Head>(HeadStatus::Malformed, "control character in the start line");
        }
        return out;  // Incomplete
    }
    if (!parse_start_line(start.text, out)) return out;
    pos = start.next;

    bool seen_host = false;
    for (;;) {
        const Line line = find_line(bytes, pos, max_head);
        if (line.status == LineStatus::Incomplete && bytes.size() <= max_head) {
            if (partial_line_invalid(bytes.substr(pos), true)) {
                return fail<Head>(HeadStatus::Malformed, "control character in a header field");
            }
            out.head = Head(HeadAllocator(mr));
            return out;  // Incomplete
        }
        if (line.status != LineStatus::Found || line.next > max_head) {
            return fail<Head>(HeadStatus::HeadersTooLarge, "head too large");
        }
        pos = line.next;
        if (line.text.empty()) break;
        if (out.head.headers.size() >= limits.max_headers) {
            return fail<Head>(HeadStatus::HeadersTooLarge, "too many header fields");
        }
        // One allocation for the fields of a typical head (instead of doubling from one).
        if (out.head.headers.empty())
            out.head.headers.reserve(std::min<size_t>(limits.max_headers, 16));
        Header& header = out.head.headers.emplace_back();
        if (const char* error = parse_field_line(line.text, header)) {
            return fail<Head>(HeadStatus::Malformed, error);
        }
        // RFC 9112 §3.2: more than one Host is a 400; two hosts are how a filter gets confused
        // about which site a request is for.
        if constexpr (std::is_same_v<Head, RequestHead>) {
            if (iequals(header.name, "host")) {
                if (seen_host) return fail<Head>(HeadStatus::Malformed, "multiple host headers");
                seen_host = true;
            }
        }
    }
    out.status = HeadStatus::Complete;
    out.consumed = pos;
    return out;
}

// Calls fn(element) for each non-empty, OWS-trimmed element of the comma-separated lists in all
// fields called `name` (RFC 9110 §5.6.1: empty elements are ignored). Stops when fn returns false.
template <class Fn>
void for_each_list_element(const Headers& headers, std::string_view name, Fn fn) {
    for (const Header& h : headers) {
        if (!iequals(h.name, name)) continue;
        std::string_view rest = h.value;
        while (true) {
            const size_t comma = rest.find(',');
            const std::string_view element = trim_ows(rest.substr(0, comma));
            if (!element.empty() && !fn(element)) return;
            if (comma == std::string_view::npos) break;
            rest.remove_prefix(comma + 1);
        }
    }
}

// 1*DIGIT up to INT64_MAX: larger values would overflow the signed offsets used by libevent and
// are not real lengths anyway.
std::optional<uint64_t> parse_length(std::string_view s) {
    if (s.empty()) return std::nullopt;
    constexpr uint64_t kMax = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
    uint64_t value = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return std::nullopt;
        const uint64_t digit = static_cast<uint64_t>(c - '0');
        if (value > (kMax - digit) / 10) return std::nullopt;
        value = value * 10 + digit;
    }
    return value;
}

struct ContentLength {
    bool present = false;
    bool valid = true;
    uint64_t value = 0;
};

// RFC 9112 §6.3 rule 5: several Content-Length fields, or a list in one, are accepted only when
// every value is the same valid number.
ContentLength content_length(const Headers& headers) {
    ContentLength cl;
    for (const Header& h : headers) {
        if (!iequals(h.name, "content-length")) continue;
        std::string_view rest = h.value;
        while (true) {
            const size_t comma = rest.find(',');
            const std::optional<uint64_t> v = parse_length(trim_ows(rest.substr(0, comma)));
            if (!v || (cl.present && cl.value != *v)) {
                cl.present = true;
                cl.valid = false;
                return cl;
            }
            cl.present = true;
            cl.value = *v;
            if (comma == std::string_view::npos) break;
            rest.remove_prefix(comma + 1);
        }
    }
    return cl;
}

struct TransferEncoding {
    bool present = false;
    bool valid = true;           // every coding is a token; chunked at most once
    bool chunked_final = false;  // the last coding is chunked
};

// RFC 9112 §6.1: the codings of all Transfer-Encoding fields, in order.
TransferEncoding transfer_encoding(const Headers& headers) {
    TransferEncoding te;
    bool seen_chunked = false;
    size_t codings = 0;
    for (const Header& h : headers) {
        if (iequals(h.name, "transfer-encoding")) te.present = true;
    }
    if (!te.present) return te;
    for_each_list_element(headers, "transfer-encoding", [&](std::string_view element) {
        // transfer-coding = token *( OWS ";" OWS transfer-parameter ); only the name matters.
        const std::string_view name = trim_ows(element.substr(0, element.find(';')));
        if (!is_token(name)) {
            te.valid = false;
            return false;
        }
        const bool is_chunked = iequals(name, "chunked");
        // A sender MUST NOT apply chunked more than once (RFC 9112 §7).
        if (is_chunked && seen_chunked) {
            te.valid = false;
            return false;
        }
        seen_chunked = seen_chunked || is_chunked;
        te.chunked_final = is_chunked;
        ++codings;
        return true;
    });
    if (codings == 0) te.valid = false;
    return te;
}

}  // namespace

HeadParse<RequestHead> parse_request_head(std::string_view bytes, const ParseLimits& limits,
                                          std::pmr::memory_resource* mr) {
    return parse_head<RequestHead>(bytes, limits, parse_request_line, mr);
}

HeadParse<ResponseHead> parse_response_head(std::string_view bytes, const ParseLimits& limits,
                                            std::pmr::memory_resource* mr) {
    return parse_head<ResponseHead>(bytes, limits, parse_status_line, mr);
}

bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i) {
        if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
    }
    return true;
}

const Header* find_header(const Headers& headers, std::string_view name) {
    for (const Header& h : headers) {
        if (iequals(h.name, name)) return &h;
    }
    return nullptr;
}

size_t count_headers(const Headers& headers, std::string_view name) {
    return static_cast<size_t>(std::count_if(
        headers.begin(), headers.end(), [&](const Header& h) { return iequals(h.name, name); }));
}

bool header_has_token(const Headers& headers, std::string_view name, std::string_view token) {
    bool found = false;
    for_each_list_element(headers, name, [&](std::string_view element) {
        found = iequals(element, token);
        return !found;
    });
    return found;
}

std::optional<Framing> request_framing(const RequestHead& head) {
    const TransferEncoding te = transfer_encoding(head.headers);
    const ContentLength cl = content_length(head.headers);
    if (te.present) {
        // RFC 9112 §6.3 rule 3: TE with CL is a smuggling signature; an HTTP/1.0 request with TE
        // has faulty framing (§6.1); a final coding other than chunked leaves no way to find the
        // end of a request body (rule 4).
        if (cl.present || head.version_minor == 0 || !te.valid || !te.chunked_final) {
            return std::nullopt;
        }
        return Framing{BodyKind::Chunked, 0};
    }
    if (cl.present) {
        if (!cl.valid) return std::nullopt;
        return Framing{BodyKind::Length, cl.value};
    }
    return Framing{BodyKind::None, 0};  // rule 6: no body
}

std::optional<Framing> response_framing(const ResponseHead& head, std::string_view request_method) {
    // RFC 9112 §6.3 rule 1 and 2: no content whatever the fields say.
    const bool bodiless_status = head.status < 200 || head.status == 204 || head.status == 304;
    if (request_method == "HEAD" || bodiless_status) return Framing{BodyKind::None, 0};
    if (request_method == "CONNECT" && head.status < 300) return Framing{BodyKind::None, 0};

    const TransferEncoding te = transfer_encoding(head.headers);
    const ContentLength cl = content_length(head.headers);
    if (te.present) {
        // Rule 3 allows TE to win over CL, but the same rule calls the pair a likely smuggling or
        // splitting attempt; the proxy answers 502 instead of choosing.
        if (cl.present || !te.valid) return std::nullopt;
        // Rule 4, and §6.1 for HTTP/1.0 (faulty framing, read until close).
        if (!te.chunked_final || head.version_minor == 0) return Framing{BodyKind::UntilClose, 0};
        return Framing{BodyKind::Chunked, 0};
    }
    if (cl.present) {
        if (!cl.valid) return std::nullopt;  // rule 5: unrecoverable
        return Framing{BodyKind::Length, cl.value};
    }
    return Framing{BodyKind::UntilClose, 0};  // rule 8
}

}  // namespace hallpass
