// What a proxy changes in a message head on its way through (RFC 9110 §7.6): hop-by-hop fields
// removed, `Via` added, the request target rewritten to origin-form and `Host` taken from it.
// Produces the bytes of the re-serialised head: the upstream never sees the client's raw head.
#pragma once

#include <string>
#include <string_view>

#include "hallpass/http/http_parser.h"
#include "hallpass/http/uri.h"

namespace hallpass {

// The token added to Via: "1.1 hallpass" (or "1.0 hallpass" for an HTTP/1.0 message).
inline constexpr std::string_view kViaAgent = "hallpass";

// True for a field that must not be forwarded: Connection, Proxy-Connection, Keep-Alive,
// Proxy-Authorization, Proxy-Authenticate, TE, Trailer, Transfer-Encoding (framing is set by the
// caller), Upgrade, and any field named by a Connection header of `headers`.
bool is_hop_by_hop(const Headers& headers, std::string_view name);

// Upstream request head: `METHOD path HTTP/1.1`, `Host` from `uri` (any client Host dropped), the
// client's end-to-end fields in order, `Via` appended to the last Via field (or added after the
// fields when there is none), framing set from `framing` (Content-Length, or Transfer-Encoding:
// chunked preceded by any other codings the client listed), and `Connection: close` when
// `upstream_keep_alive` is false. Lines end in CRLF; the head ends with an empty line.
std::string serialize_upstream_request(const RequestHead& head, const AbsoluteUri& uri,
                                       const Framing& framing, bool upstream_keep_alive);

// How the response body is sent to the client.
enum class ClientBodyCoding {
    AsIs,      // same framing as upstream (Content-Length or chunked passed through), or none
    Dechunk,   // upstream chunked, client HTTP/1.0: drop Transfer-Encoding, body until close
};

// Client response head: status line as `HTTP/1.1` (HTTP/1.0 for an HTTP/1.0 client), end-to-end
// fields in order, `Via` appended as for requests, framing fields per `framing`/`coding`, and
// `Connection: keep-alive` (HTTP/1.0 client) or `Connection: close` according to
// `client_keep_alive`. `Connection: close` is also written when the body is delimited by close
// (Dechunk or UntilClose). With framing None the upstream's Content-Length is kept (it describes
// a HEAD or 304 response), except on 1xx and 204.
std::string serialize_client_response(const ResponseHead& head, int client_version_minor,
                                      const Framing& framing, ClientBodyCoding coding,
                                      bool client_keep_alive);

// True when the client asked to keep its connection open after this request: HTTP/1.1 without
// `Connection: close`, or HTTP/1.0 with `Connection: keep-alive` (or `Proxy-Connection:`).
bool client_wants_keep_alive(const RequestHead& head);

// True when the upstream may be reused after this response: HTTP/1.1 without `Connection: close`
// or HTTP/1.0 with `Connection: keep-alive`, and a body not delimited by close.
bool upstream_allows_reuse(const ResponseHead& head, const Framing& framing);

}  // namespace hallpass
