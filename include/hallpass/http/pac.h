// The proxy auto-config file hallpass serves at /proxy.pac and /wpad.dat: a JavaScript
// FindProxyForURL(url, host) that sends everything to hallpass, except the names and networks
// the admin lists as DIRECT (the LAN's own), with no DIRECT fallback unless asked (a device must
// not quietly go around the filter when the proxy is down). Pure: no I/O.
#pragma once

#include <span>
#include <string>
#include <string_view>

namespace hallpass {

struct PacInput {
    // Canonical names (lower case, no trailing dot, punycode): each and its subdomains go DIRECT.
    std::span<const std::string> direct_domains;
    // IPv4 CIDRs ("192.168.1.0/24"): IP-literal hosts inside them go DIRECT (PAC's isInNet;
    // names are not resolved for this: a lookup per URL is slow and leaks).
    std::span<const std::string> direct_nets;
    bool fallback_direct = false;  // "PROXY p; DIRECT"
    std::string_view proxy;        // "192.168.1.2:12345", "[fd00::2]:12345"
};

std::string make_pac_script(const PacInput& in);

}  // namespace hallpass
