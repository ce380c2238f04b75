#include "hallpass/observe/device_page.h"

#include <ctime>

#include "hallpass/http/http_responses.h"

namespace hallpass {

std::string device_section_html(const IpAddr& device, const std::string& groups,
                                const std::vector<RecentBlock>& blocks) {
    const std::string who =
        groups.empty() ? device.to_string() : groups + ": " + device.to_string();
    std::string out = "<h2>This device</h2>\n<p><code>" + html_escape(who) + "</code></p>\n";
    if (blocks.empty()) {
        out += "<p id=\"recent-blocks\">Nothing was blocked for this device lately.</p>\n";
        return out;
    }
    out +=
        "<p>What was blocked for this device lately (newest first):</p>\n"
        "<table id=\"recent-blocks\"><thead><tr><th>When</th><th>Site</th><th>Rule</th>"
        "<th>Why</th></tr></thead><tbody>\n";
    for (const RecentBlock& b : blocks) {
        const time_t t = static_cast<time_t>(b.unix_ms / 1000);
        tm local{};
        localtime_r(&t, &local);
        char when[32];
        std::strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &local);
        out += "<tr><td>" + std::string(when) + "</td><td>" + html_escape(b.host) + "</td><td>" +
               html_escape(b.rule) + "</td><td>" + html_escape(b.message) + "</td></tr>\n";
    }
    out += "</tbody></table>\n";
    return out;
}

}  // namespace hallpass
