// Re-serialisation of heads crossing the proxy (RFC 9110 §7.6): the connection hands over a parsed
// head and the framing it decided on, and gets the bytes to send. Nothing the peer sent is copied
// raw: fields are re-emitted one per line with CRLF, so a head that parsed is a head that the next
// hop reads the same way. Framing fields are written from `Framing`, never copied.
#include "hallpass/http/http_rewrite.h"

#include <algorithm>
#include <array>
#include <vector>

namespace hallpass {

namespace {

// RFC 9110 §7.6.1 lists Connection and the fields it names; the rest are the classic hop-by-hop
// fields (RFC 2616 §13.5.1) plus Proxy-Connection, which clients still send.
constexpr std::array<std::string_view, 9> kHopByHop = {
    "connection",
    "proxy-connection",
    "keep-alive",
    "proxy-authorization",
    "proxy-authenticate",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
};

bool is_ows(char c) { return c == ' ' || c == '\t'; }

std::string_view trim_ows(std::string_view s) {
    while (!s.empty() && is_ows(s.front())) s.remove_prefix(1);
    while (!s.empty() && is_ows(s.back())) s.remove_suffix(1);
    return s;
}

uint16_t default_port_for(std::string_view scheme) {
    if (scheme == "http") return 80;
    if (scheme == "https") return 443;
    if (scheme == "ftp") return 21;
    return 0;
}

void append_field(std::string& out, std::string_view name, std::string_view value) {
    out += name;
    out += ": ";
    out += value;
    out += "\r\n";
}

// RFC 9110 §7.6.3: received-protocol is the version of the message as the proxy received it.
std::string via_entry(int version_minor) {
    return "1." + std::to_string(version_minor) + " " + std::string(kViaAgent);
}

// The codings of the message's Transfer-Encoding fields with chunked moved to the end once, so a
// "gzip, chunked" body keeps saying it is gzip-coded after the framing was re-written.
std::string transfer_codings(const Headers& headers) {
    std::string out;
    for (const Header& h : headers) {
        if (!iequals(h.name, "transfer-encoding")) continue;
        std::string_view rest = h.value;
        while (true) {
            const size_t comma = rest.find(',');
            const std::string_view element = trim_ows(rest.substr(0, comma));
            const std::string_view name = trim_ows(element.substr(0, element.find(';')));
            if (!element.empty() && !iequals(name, "chunked")) {
                out += element;
                out += ", ";
            }
            if (comma == std::string_view::npos) break;
            rest.remove_prefix(comma + 1);
        }
    }
    out += "chunked";
    return out;
}

// Writes the fields that survive (`keep` says which), in order, with our Via entry appended to the
// last Via field or, when there is none, added after the others. Extending the last field keeps
// one entry per hop in order (RFC 9110 §7.6.3) without adding a line.
template <class Keep>
void append_end_to_end(std::string& out, const Headers& headers, int version_minor, Keep keep) {
    const Header* last_via = nullptr;
    for (const Header& h : headers) {
        if (iequals(h.name, "via") && keep(h)) last_via = &h;
    }
    for (const Header& h : headers) {
        if (!keep(h)) continue;
        if (&h == last_via) {
            const std::string value = h.value.empty()
                                          ? via_entry(version_minor)
                                          : std::string(h.value) + ", " + via_entry(version_minor);
            append_field(out, h.name, value);
        } else {
            append_field(out, h.name, h.value);
        }
    }
    if (last_via == nullptr) append_field(out, "Via", via_entry(version_minor));
}

bool asks_to_close(const Headers& headers) {
    return header_has_token(headers, "connection", "close") ||
           header_has_token(headers, "proxy-connection", "close");
}

bool asks_keep_alive(const Headers& headers) {
    return header_has_token(headers, "connection", "keep-alive") ||
           header_has_token(headers, "proxy-connection", "keep-alive");
}

// The hop-by-hop field names of one message, worked out once: the fixed list plus the tokens of
// its Connection fields. Asking per field by re-scanning every Connection field made a head's
// serialisation quadratic in its field count.
class HopByHop {
  public:
    explicit HopByHop(const Headers& headers) {
        for (const Header& h : headers) {
            if (!iequals(h.name, "connection")) continue;
            std::string_view rest = h.value;
            while (!rest.empty()) {
                const size_t comma = rest.find(',');
                const std::string_view token = trim_ows(rest.substr(0, comma));
                if (!token.empty()) named_.push_back(token);
                if (comma == std::string_view::npos) break;
                rest.remove_prefix(comma + 1);
            }
        }
    }
    bool contains(std::string_view name) const {
        // A quick reject on length: every fixed name is 2 to 19 bytes long.
        for (std::string_view hop : kHopByHop) {
            if (hop.size() == name.size() && iequals(hop, name)) return true;
        }
        for (std::string_view token : named_) {
            if (token.size() == name.size() && iequals(token, name)) return true;
        }
        return false;
    }

  private:
    std::vector<std::string_view> named_;  // views into the message's Connection values
};

}  // namespace

bool is_hop_by_hop(const Headers& headers, std::string_view name) {
    return HopByHop(headers).contains(name);
}

std::string serialize_upstream_request(const RequestHead& head, const AbsoluteUri& uri,
                                       const Framing& framing, bool upstream_keep_alive) {
    std::string out;
    out.reserve(256 + head.target.size() + head.headers.size() * 48);
    out += head.method;
    out += ' ';
    out += uri.path_and_query;
    out += " HTTP/1.1\r\n";
    // RFC 9112 §3.2.2: a proxy MUST replace Host with the authority of the target; Host goes
    // first (RFC 9110 §7.2).
    append_field(out, "Host", uri.authority.host_header(default_port_for(uri.scheme)));

    const HopByHop hop(head.headers);
    const auto keep = [&](const Header& h) {
        return !iequals(h.name, "host") && !iequals(h.name, "content-length") &&
               !hop.contains(h.name);
    };
    append_end_to_end(out, head.headers, head.version_minor, keep);

    if (framing.kind == BodyKind::Length) {
        append_field(out, "Content-Length", std::to_string(framing.length));
    } else if (framing.kind == BodyKind::Chunked) {
        append_field(out, "Transfer-Encoding", transfer_codings(head.headers));
    }
    if (!upstream_keep_alive) append_field(out, "Connection", "close");
    out += "\r\n";
    return out;
}

std::string serialize_client_response(const ResponseHead& head, int client_version_minor,
                                      const Framing& framing, ClientBodyCoding coding,
                                      bool client_keep_alive) {
    std::string out;
    out.reserve(256 + head.reason.size() + head.headers.size() * 48);
    out += client_version_minor == 0 ? "HTTP/1.0 " : "HTTP/1.1 ";
    out += std::to_string(head.status);
    out += ' ';
    out += head.reason;
    out += "\r\n";

    // Without a body the upstream's Content-Length still describes the representation of a HEAD
    // or 304 response (RFC 9110 §8.6) and is kept; with one, it is rewritten from `framing`.
    const bool keep_length =
        framing.kind == BodyKind::None && head.status >= 200 && head.status != 204;
    const HopByHop hop(head.headers);
    const auto keep = [&](const Header& h) {
        if (iequals(h.name, "content-length")) return keep_length;
        return !hop.contains(h.name);
    };
    append_end_to_end(out, head.headers, head.version_minor, keep);

    const bool body_until_close =
        coding == ClientBodyCoding::Dechunk || framing.kind == BodyKind::UntilClose;
    if (coding == ClientBodyCoding::AsIs) {
        if (framing.kind == BodyKind::Length) {
            append_field(out, "Content-Length", std::to_string(framing.length));
        } else if (framing.kind == BodyKind::Chunked) {
            append_field(out, "Transfer-Encoding", transfer_codings(head.headers));
        }
    }
    // A body delimited by close cannot be followed by another response, whatever was asked.
    if (!client_keep_alive || body_until_close) {
        append_field(out, "Connection", "close");
    } else if (client_version_minor == 0) {
        append_field(out, "Connection", "keep-alive");  // HTTP/1.0 persists only when told
    }
    out += "\r\n";
    return out;
}

bool client_wants_keep_alive(const RequestHead& head) {
    // RFC 9112 §9.3: HTTP/1.1 persists by default; HTTP/1.0 only with keep-alive.
    if (asks_to_close(head.headers)) return false;
    return head.version_minor >= 1 || asks_keep_alive(head.headers);
}

bool upstream_allows_reuse(const ResponseHead& head, const Framing& framing) {
    if (framing.kind == BodyKind::UntilClose) return false;
    if (header_has_token(head.headers, "connection", "close")) return false;
    return head.version_minor >= 1 || header_has_token(head.headers, "connection", "keep-alive");
}

}  // namespace hallpass
