// Chunked transfer coding (RFC 9112 §7.1), decoded as a resumable state machine over whatever
// the connection has buffered. Strict on purpose: the proxy may pass a coded body through
// unchanged, so any leniency here that the next hop does not share is a request-smuggling gap.
// Line ends are CRLF only (unlike heads, chunk framing is forwarded as it came: see find_line).
#include "hallpass/http/http_chunked.h"

#include <algorithm>
#include <cassert>
#include <cstring>

namespace hallpass {

namespace {

// 16 hex digits hold any uint64_t, so a size can never overflow; more digits are an error even
// with leading zeros, which keeps the line short and the rule simple.
constexpr size_t kMaxSizeDigits = 16;

bool is_tchar(unsigned char c) {
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return true;
    return c != 0 && std::strchr("!#$%&'*+-.^_`|~", c) != nullptr;
}

bool is_ows(char c) { return c == ' ' || c == '\t'; }

// qdtext and quoted-pair bytes (RFC 9110 §5.6.4): HTAB, SP, VCHAR, obs-text.
bool is_quoted_text(unsigned char c) { return c == '\t' || (c >= 0x20 && c != 0x7f); }

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

void skip_ows(std::string_view s, size_t& i) {
    while (i < s.size() && is_ows(s[i])) ++i;
}

size_t skip_token(std::string_view s, size_t i) {
    while (i < s.size() && is_tchar(static_cast<unsigned char>(s[i]))) ++i;
    return i;
}

// quoted-string starting at s[i] == '"'; returns the index after the closing quote, or npos.
size_t skip_quoted_string(std::string_view s, size_t i) {
    for (++i; i < s.size(); ++i) {
        const unsigned char c = static_cast<unsigned char>(s[i]);
        if (c == '"') return i + 1;
        if (c == '\\') {
            if (++i == s.size() || !is_quoted_text(static_cast<unsigned char>(s[i]))) break;
        } else if (!is_quoted_text(c)) {
            break;
        }
    }
    return std::string_view::npos;
}

// chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] ) (RFC 9112 §7.1.1).
// Extensions are validated, not interpreted: a size line another parser might read differently
// must not pass.
bool is_valid_extensions(std::string_view s) {
    size_t i = 0;
    while (i < s.size()) {
        skip_ows(s, i);  // BWS is only allowed before ';', never at the end of the line
        if (i == s.size() || s[i] != ';') return false;
        ++i;
        skip_ows(s, i);
        const size_t name_end = skip_token(s, i);
        if (name_end == i) return false;
        i = name_end;
        size_t eq = i;
        skip_ows(s, eq);
        if (eq < s.size() && s[eq] == '=') {
            i = eq + 1;
            skip_ows(s, i);
            const size_t value_end =
                (i < s.size() && s[i] == '"') ? skip_quoted_string(s, i) : skip_token(s, i);
            if (value_end == std::string_view::npos || value_end == i) return false;
            i = value_end;
        }
    }
    return true;
}

// trailer field-line: the same syntax as a header line (RFC 9112 §7.1.2, §5).
// Fields that must never arrive in a trailer section (RFC 9110 §6.5.1: framing, routing and
// connection control). Trailers are forwarded as they came, so a next hop that merges them into
// the head must not find a second Content-Length, Transfer-Encoding or Host there.
bool is_forbidden_trailer(std::string_view name) {
    static constexpr std::string_view kForbidden[] = {
        "content-length", "transfer-encoding", "host", "connection",
        "keep-alive",     "proxy-connection",  "te",   "trailer",
        "upgrade"};
    for (std::string_view f : kForbidden) {
        if (f.size() != name.size()) continue;
        bool same = true;
        for (size_t i = 0; i < f.size() && same; ++i) {
            char c = name[i];
            if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
            same = c == f[i];
        }
        if (same) return true;
    }
    return false;
}

bool is_valid_trailer_line(std::string_view line) {
    const size_t colon = line.find(':');
    if (colon == 0 || colon == std::string_view::npos) return false;
    for (size_t i = 0; i < colon; ++i) {
        if (!is_tchar(static_cast<unsigned char>(line[i]))) return false;
    }
    if (is_forbidden_trailer(line.substr(0, colon))) return false;
    for (size_t i = colon + 1; i < line.size(); ++i) {
        if (!is_quoted_text(static_cast<unsigned char>(line[i]))) return false;
    }
    return true;
}

enum class LineStatus { Found, Incomplete, TooLong, BareLf };

struct Line {
    LineStatus status = LineStatus::Incomplete;
    std::string_view text;  // without CRLF / LF
    size_t next = 0;        // offset just past the LF
};

// Same rule as http_parser's: CRLF or bare LF ends a line, a stray CR stays in the text (and fails
// the syntax checks), and an over-long line is reported once kMaxLineBytes + 1 bytes prove it.
Line find_line(std::string_view input, size_t pos) {
    constexpr size_t kMax = ChunkedDecoder::kMaxLineBytes;
    const char* begin = input.data() + pos;
    const size_t window = std::min(input.size() - pos, kMax + 2);
    if (const void* lf = std::memchr(begin, '\n', window)) {
        const size_t lf_off = static_cast<size_t>(static_cast<const char*>(lf) - begin);
        // Chunk framing is passed on as it came, so it must read the same to every next hop:
        // only CRLF ends a line here. A bare LF (which RFC 9112 §2.2 lets a recipient accept in
        // a head) would be read as a line end by us and not by an origin: request smuggling.
        if (lf_off == 0 || begin[lf_off - 1] != '\r') return {LineStatus::BareLf, {}, 0};
        const size_t len = lf_off - 1;
        if (len > kMax) return {LineStatus::TooLong, {}, 0};
        return {LineStatus::Found, std::string_view(begin, len), pos + lf_off + 1};
    }
    if (window > kMax && !(window == kMax + 1 && begin[kMax] == '\r')) {
        return {LineStatus::TooLong, {}, 0};
    }
    return {LineStatus::Incomplete, {}, 0};
}

}  // namespace

ChunkedDecoder::Step ChunkedDecoder::feed(std::string_view input) {
    if (state_ == State::Done) return {Status::Done, 0, 0};
    if (state_ == State::Error) return {Status::Error, 0, 0};

    if (state_ == State::Data) {
        const size_t n =
            input.size() < data_remaining_ ? input.size() : static_cast<size_t>(data_remaining_);
        data_remaining_ -= n;
        if (data_remaining_ == 0) state_ = State::DataCrlf;
        return {Status::NeedMore, n, n};
    }

    // Framing: run through as many framing lines as are complete, stopping before payload.
    size_t pos = 0;
    auto error = [&] {
        state_ = State::Error;
        return Step{Status::Error, pos, 0};
    };
    while (pos < input.size()) {
        if (state_ == State::DataCrlf) {
            // The CRLF after chunk data is checked byte by byte: anything else is an error at once
            // rather than the start of a line we would wait for.
            if (input[pos] != '\r') {
                return error();
            } else if (pos + 1 == input.size()) {
                break;
            } else if (input[pos + 1] != '\n') {
                return error();
            } else {
                pos += 2;
            }
            state_ = State::Size;
            continue;
        }

        const Line line = find_line(input, pos);
        if (line.status == LineStatus::TooLong || line.status == LineStatus::BareLf) return error();
        if (line.status == LineStatus::Incomplete) break;

        if (state_ == State::Trailer) {
            pos = line.next;
            if (line.text.empty()) {
                state_ = State::Done;
                return {Status::Done, pos, 0};
            }
            if (!is_valid_trailer_line(line.text)) return error();
            continue;
        }

        // State::Size: chunk-size [ chunk-ext ] (RFC 9112 §7.1).
        size_t digits = 0;
        uint64_t size = 0;
        while (digits < line.text.size() && hex_value(line.text[digits]) >= 0) {
            if (digits == kMaxSizeDigits) return error();
            size = size * 16 + static_cast<uint64_t>(hex_value(line.text[digits]));
            ++digits;
        }
        if (digits == 0 || !is_valid_extensions(line.text.substr(digits))) return error();
        pos = line.next;
        if (size == 0) {
            state_ = State::Trailer;  // last-chunk
            continue;
        }
        data_remaining_ = size;
        state_ = State::Data;
        break;
    }
    return {Status::NeedMore, pos, 0};
}

void ChunkedDecoder::skip_data(uint64_t n) {
    assert(n <= data_remaining_);  // outside chunk data data_remaining_ is 0, so only n == 0
    if (n == 0) return;
    data_remaining_ -= n;
    if (data_remaining_ == 0) state_ = State::DataCrlf;
}

}  // namespace hallpass
