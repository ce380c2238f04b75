// Local answers made by hallpass itself: error pages (400, 403, 405, 414, 431, 501, 502, 503,
// 504, 505), the "this is hallpass" page for requests that are not proxy requests, and the
// CONNECT established line. Each is a complete HTTP/1.1 message (head and short HTML body).
#pragma once

#include <string>
#include <string_view>

namespace hallpass {

// A complete response: status line, Date, Content-Type text/html, Content-Length, Cache-Control
// no-store, `Connection: close` unless keep_alive, and an HTML body naming the status, `detail`
// (HTML-escaped; e.g. "dns lookup failed for example.test") and hallpass. For HEAD requests
// pass head_only=true: the same head, no body.
std::string make_error_response(int status, std::string_view detail, bool keep_alive = false,
                                bool head_only = false);

// Standard reason phrase ("Bad Gateway"), or "Unknown".
std::string_view reason_phrase(int status);

// 200 page for a request addressed to hallpass itself (GET / on its address): what hallpass is
// and how to use it as a proxy, quoting the address it was reached on (host: a canonical host
// name or IP literal, bracketed when IPv6). `extra_html` (already escaped) follows: the part
// about the device that asked.
std::string make_info_response(std::string_view host, uint16_t port, bool keep_alive,
                               bool head_only, std::string_view extra_html = {});

// 200 with a proxy auto-config script (pac.h), as application/x-ns-proxy-autoconfig.
std::string make_pac_response(std::string_view script, bool keep_alive, bool head_only);

inline constexpr std::string_view kConnectEstablished =
    "HTTP/1.1 200 Connection established\r\n\r\n";

// Escapes &, <, >, " and ' for HTML text.
std::string html_escape(std::string_view text);

}  // namespace hallpass
