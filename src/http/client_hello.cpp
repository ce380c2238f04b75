// RFC 8446 §4.1.2 (ClientHello), RFC 6066 §3 (server_name), RFC 8446 §5.1 (records: a
// handshake message may be split across several records of type 22).
#include "hallpass/http/client_hello.h"

#include <cctype>
#include <cstdint>

namespace hallpass {
namespace {

constexpr uint8_t kHandshakeRecord = 22;
constexpr uint8_t kClientHelloType = 1;
constexpr uint16_t kServerNameExt = 0;
constexpr uint16_t kEchExt = 0xfe0d;

// A bounds-checked reader over the handshake message.
struct Reader {
    std::string_view b;
    size_t at = 0;
    bool ok = true;
    size_t left() const { return ok ? b.size() - at : 0; }
    uint32_t u8() {
        if (left() < 1) return ok = false, 0;
        return static_cast<uint8_t>(b[at++]);
    }
    uint32_t u16() {
        uint32_t hi = u8();
        return (hi << 8) | u8();
    }
    std::string_view take(size_t n) {
        if (left() < n) {
            ok = false;
            return {};
        }
        std::string_view out = b.substr(at, n);
        at += n;
        return out;
    }
};

ClientHello fail(HelloStatus status, std::string why) {
    ClientHello h;
    h.status = status;
    h.error = std::move(why);
    return h;
}

ClientHello parse_body(std::string_view body) {
    Reader r{body};
    const uint32_t version = r.u16();
    if (r.ok && (version >> 8) != 3) return fail(HelloStatus::Malformed, "not a TLS version");
    r.take(32);  // random
    const uint32_t session = r.u8();
    if (session > 32) return fail(HelloStatus::Malformed, "session id longer than 32 bytes");
    r.take(session);
    const uint32_t suites = r.u16();
    if (r.ok && (suites == 0 || suites % 2)) return fail(HelloStatus::Malformed, "bad cipher suites");
    r.take(suites);
    const uint32_t compression = r.u8();
    if (r.ok && compression == 0) return fail(HelloStatus::Malformed, "no compression methods");
    r.take(compression);
    if (!r.ok) return fail(HelloStatus::Malformed, "ClientHello cut short");
    ClientHello h;
    h.status = HelloStatus::Complete;
    if (r.left() == 0) return h;  // no extensions (SSL 3 style): no SNI
    const uint32_t ext_len = r.u16();
    Reader ext{r.take(ext_len)};
    if (!r.ok || r.left() != 0) return fail(HelloStatus::Malformed, "bad extensions length");
    while (ext.ok && ext.left() > 0) {
        const uint32_t type = ext.u16();
        const uint32_t len = ext.u16();
        Reader data{ext.take(len)};
        if (!ext.ok) return fail(HelloStatus::Malformed, "extension cut short");
        if (type == kEchExt) h.ech = true;
        if (type != kServerNameExt) continue;
        if (h.has_sni) return fail(HelloStatus::Malformed, "two server_name extensions");
        const uint32_t list_len = data.u16();
        Reader list{data.take(list_len)};
        if (!data.ok || data.left() != 0) return fail(HelloStatus::Malformed, "bad server_name list");
        while (list.ok && list.left() > 0) {
            const uint32_t name_type = list.u8();
            const uint32_t name_len = list.u16();
            std::string_view name = list.take(name_len);
            if (!list.ok) return fail(HelloStatus::Malformed, "server_name cut short");
            if (name_type != 0 || h.has_sni) continue;  // host_name only, the first
            if (name.empty() || name.size() > 255) {
                return fail(HelloStatus::Malformed, "bad server_name length");
            }
            for (char c : name) {
                const unsigned char u = static_cast<unsigned char>(c);
                if (u <= 0x20 || u >= 0x7f) {
                    return fail(HelloStatus::Malformed, "server_name is not a host name");
                }
                h.server_name += static_cast<char>(std::tolower(u));
            }
            h.has_sni = true;
        }
    }
    return h;
}

}  // namespace

ClientHello parse_client_hello(std::string_view bytes, size_t max_bytes) {
    if (bytes.size() > max_bytes) bytes = bytes.substr(0, max_bytes);
    // Reassemble the handshake message from the records that carry it.
    std::string message;
    size_t at = 0;
    for (;;) {
        if (bytes.size() - at < 5) break;
        const auto* p = reinterpret_cast<const unsigned char*>(bytes.data() + at);
        if (p[0] != kHandshakeRecord) {
            return at == 0 ? fail(HelloStatus::NotTls, "not a TLS handshake")
                           : fail(HelloStatus::Malformed, "a non-handshake record mid-ClientHello");
        }
        if (p[1] != 3) return fail(at == 0 ? HelloStatus::NotTls : HelloStatus::Malformed,
                                   "not a TLS record version");
        const size_t len = (size_t{p[3]} << 8) | p[4];
        if (len == 0 || len > 16384 + 256) {
            return fail(HelloStatus::Malformed, "bad record length");
        }
        if (bytes.size() - at - 5 < len) {
            message.append(bytes.substr(at + 5));  // part of a record: what there is
            at = bytes.size();
            break;
        }
        message.append(bytes.substr(at + 5, len));
        at += 5 + len;
        if (message.size() >= 4) {
            const auto* m = reinterpret_cast<const unsigned char*>(message.data());
            const size_t need = 4 + ((size_t{m[1]} << 16) | (size_t{m[2]} << 8) | m[3]);
            if (message.size() >= need) break;
        }
    }
    // The first byte, or the first bytes of the record header, already tell TLS from not.
    if (!bytes.empty() && static_cast<unsigned char>(bytes[0]) != kHandshakeRecord) {
        return fail(HelloStatus::NotTls, "not a TLS handshake");
    }
    if (bytes.size() >= 2 && static_cast<unsigned char>(bytes[1]) != 3) {
        return fail(HelloStatus::NotTls, "not a TLS record version");
    }
    if (message.size() >= 1 && static_cast<unsigned char>(message[0]) != kClientHelloType) {
        return fail(HelloStatus::Malformed, "the first handshake message is not a ClientHello");
    }
    if (message.size() < 4) {
        return bytes.size() >= max_bytes ? fail(HelloStatus::TooLarge, "ClientHello too large")
                                         : ClientHello{};
    }
    const auto* m = reinterpret_cast<const unsigned char*>(message.data());
    const size_t body_len = (size_t{m[1]} << 16) | (size_t{m[2]} << 8) | m[3];
    if (body_len + 4 + 5 > max_bytes) return fail(HelloStatus::TooLarge, "ClientHello too large");
    if (message.size() < 4 + body_len) {
        return bytes.size() >= max_bytes ? fail(HelloStatus::TooLarge, "ClientHello too large")
                                         : ClientHello{};
    }
    return parse_body(std::string_view(message).substr(4, body_len));
}

}  // namespace hallpass
