// The part of the information page (hallpass's own address, opened from a device) about the
// device itself: its address and groups, and its recent blocks (time, site, rule, message), so a
// blocked HTTPS site, which a browser shows as its own connection error, can be looked up from
// the device that was refused.
#pragma once

#include <string>
#include <vector>

#include "hallpass/observe/stats.h"

namespace hallpass {

inline constexpr size_t kDeviceRecentBlocks = 50;

// HTML (a fragment, values escaped); times in the proxy's local time.
std::string device_section_html(const IpAddr& device, const std::string& groups,
                                const std::vector<RecentBlock>& blocks);

}  // namespace hallpass
