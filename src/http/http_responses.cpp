// Responses hallpass writes itself: error and block pages, the info page. Each is a whole
// HTTP/1.1 message the connection can write and forget; the HTML is small, self-contained (no
// external assets: the client may not be allowed to fetch any) and escapes whatever it quotes.
#include "hallpass/http/http_responses.h"

#include <array>
#include <cstdio>
#include <ctime>

namespace hallpass {

namespace {

struct StatusReason {
    int status;
    std::string_view reason;
};

// RFC 9110 §15, plus 429/431/511 (RFC 6585) and 451 (RFC 7725).
constexpr StatusReason kReasons[] = {
    {100, "Continue"},
    {101, "Switching Protocols"},
    {103, "Early Hints"},
    {200, "OK"},
    {201, "Created"},
    {202, "Accepted"},
    {203, "Non-Authoritative Information"},
    {204, "No Content"},
    {205, "Reset Content"},
    {206, "Partial Content"},
    {300, "Multiple Choices"},
    {301, "Moved Permanently"},
    {302, "Found"},
    {303, "See Other"},
    {304, "Not Modified"},
    {305, "Use Proxy"},
    {307, "Temporary Redirect"},
    {308, "Permanent Redirect"},
    {400, "Bad Request"},
    {401, "Unauthorized"},
    {402, "Payment Required"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {406, "Not Acceptable"},
    {407, "Proxy Authentication Required"},
    {408, "Request Timeout"},
    {409, "Conflict"},
    {410, "Gone"},
    {411, "Length Required"},
    {412, "Precondition Failed"},
    {413, "Content Too Large"},
    {414, "URI Too Long"},
    {415, "Unsupported Media Type"},
    {416, "Range Not Satisfiable"},
    {417, "Expectation Failed"},
    {421, "Misdirected Request"},
    {422, "Unprocessable Content"},
    {426, "Upgrade Required"},
    {428, "Precondition Required"},
    {429, "Too Many Requests"},
    {431, "Request Header Fields Too Large"},
    {451, "Unavailable For Legal Reasons"},
    {500, "Internal Server Error"},
    {501, "Not Implemented"},
    {502, "Bad Gateway"},
    {503, "Service Unavailable"},
    {504, "Gateway Timeout"},
    {505, "HTTP Version Not Supported"},
    {511, "Network Authentication Required"},
};

constexpr std::string_view kStyle =
    "body{font-family:system-ui,sans-serif;max-width:40em;margin:3em auto;padding:0 1em;"
    "color:#222;line-height:1.5}h1{font-size:1.5em}code{background:#f3f3f3;padding:0 .3em}"
    "footer{margin-top:2em;border-top:1px solid #ddd;padding-top:.5em;color:#777;"
    "font-size:.9em}";

// IMF-fixdate (RFC 9110 §5.6.7), built by hand: strftime would follow the process locale.
std::string http_date() {
    static constexpr std::array<std::string_view, 7> kDays = {"Sun", "Mon", "Tue", "Wed",
                                                              "Thu", "Fri", "Sat"};
    static constexpr std::array<std::string_view, 12> kMonths = {
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    const std::time_t now = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&now, &tm);
    char buf[40];
    std::snprintf(buf, sizeof buf, "%s, %02d %s %04d %02d:%02d:%02d GMT",
                  kDays[static_cast<size_t>(tm.tm_wday)].data(), tm.tm_mday,
                  kMonths[static_cast<size_t>(tm.tm_mon)].data(), tm.tm_year + 1900, tm.tm_hour,
                  tm.tm_min, tm.tm_sec);
    return buf;
}

std::string html_page(std::string_view title, std::string_view body_html) {
    std::string page;
    page.reserve(512 + kStyle.size() + body_html.size());
    page += "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>";
    page += title;
    page += "</title>\n<style>";
    page += kStyle;
    page += "</style>\n</head>\n<body>\n";
    page += body_html;
    page += "<footer>hallpass</footer>\n</body>\n</html>\n";
    return page;
}

// The head (RFC 9110 §6.6.1 Date, RFC 9111 §5.2.2.5 no-store so a cache never keeps a local
// answer) and, unless head_only, the body. Content-Length is the body's even for HEAD.
std::string make_response(int status, const std::string& body, bool keep_alive, bool head_only,
                          std::string_view content_type = "text/html; charset=utf-8") {
    std::string out;
    out.reserve(256 + body.size());
    out += "HTTP/1.1 ";
    out += std::to_string(status);
    out += ' ';
    out += reason_phrase(status);
    out += "\r\nDate: ";
    out += http_date();
    out += "\r\nContent-Type: ";
    out += content_type;
    out += "\r\nContent-Length: ";
    out += std::to_string(body.size());
    out += "\r\nCache-Control: no-store\r\n";
    if (!keep_alive) out += "Connection: close\r\n";
    out += "\r\n";
    if (!head_only) out += body;
    return out;
}

}  // namespace

std::string_view reason_phrase(int status) {
    for (const StatusReason& r : kReasons) {
        if (r.status == status) return r.reason;
    }
    return "Unknown";
}

std::string html_escape(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (char c : text) {
        switch (c) {
            case '&':
                out += "&amp;";
                break;
            case '<':
                out += "&lt;";
                break;
            case '>':
                out += "&gt;";
                break;
            case '"':
                out += "&quot;";
                break;
            case '\'':
                out += "&#39;";
                break;
            default:
                out += c;
        }
    }
    return out;
}

std::string make_error_response(int status, std::string_view detail, bool keep_alive,
                                bool head_only) {
    const std::string title = std::to_string(status) + " " + std::string(reason_phrase(status));
    std::string body = "<h1>" + title + "</h1>\n";
    if (!detail.empty()) body += "<p>" + html_escape(detail) + "</p>\n";
    return make_response(status, html_page(title, body), keep_alive, head_only);
}

std::string make_info_response(std::string_view host, uint16_t port, bool keep_alive,
                               bool head_only, std::string_view extra_html) {
    const std::string proxy = html_escape(host) + ":" + std::to_string(port);
    std::string body =
        "<h1>hallpass</h1>\n"
        "<p>This is hallpass, a filtering HTTP proxy. It does not serve pages of its own: it "
        "fetches pages for its clients and applies its rules on the way.</p>\n"
        "<p>To use it, set <code>" +
        proxy +
        "</code> as the HTTP proxy of your client:</p>\n"
        "<ul>\n"
        "<li>curl: <code>curl -x http://" +
        proxy +
        " http://example.com/</code></li>\n"
        "<li>a browser: in the network or proxy settings choose a manual proxy configuration, "
        "with <code>" +
        proxy +
        "</code> as the HTTP proxy; use the same proxy for HTTPS (sites are then reached "
        "through CONNECT).</li>\n"
        "<li>other programs: <code>export http_proxy=http://" +
        proxy + " https_proxy=http://" + proxy +
        "</code></li>\n"
        "</ul>\n";
    body += extra_html;
    return make_response(200, html_page("hallpass", body), keep_alive, head_only);
}

std::string make_pac_response(std::string_view script, bool keep_alive, bool head_only) {
    return make_response(200, std::string(script), keep_alive, head_only,
                         "application/x-ns-proxy-autoconfig");
}

}  // namespace hallpass
