// The script keeps to the functions every PAC engine has (dnsDomainIs, isInNet) and ES3 syntax:
// Windows' WinHTTP, Chromium's V8, Firefox and pacparser (SpiderMonkey) all run it.
#include "hallpass/http/pac.h"

#include <cstdint>

namespace hallpass {
namespace {

// "192.168.1.0/24" -> "\"192.168.1.0\", \"255.255.255.0\"".
std::string net_and_mask(const std::string& cidr) {
    const size_t slash = cidr.find('/');
    const std::string net = cidr.substr(0, slash);
    int bits = slash == std::string::npos ? 32 : std::stoi(cidr.substr(slash + 1));
    const uint32_t mask = bits <= 0 ? 0 : bits >= 32 ? 0xffffffffu : ~((1u << (32 - bits)) - 1);
    std::string m;
    for (int shift = 24; shift >= 0; shift -= 8) {
        if (!m.empty()) m += '.';
        m += std::to_string((mask >> shift) & 0xff);
    }
    return "\"" + net + "\", \"" + m + "\"";
}

}  // namespace

std::string make_pac_script(const PacInput& in) {
    std::string s =
        "// Proxy auto-config from hallpass: generated from the pac: section of its rules file.\n"
        "var directDomains = [";
    for (size_t i = 0; i < in.direct_domains.size(); ++i) {
        if (i) s += ", ";
        s += "\"" + in.direct_domains[i] + "\"";
    }
    s += "];\nvar directNets = [";
    for (size_t i = 0; i < in.direct_nets.size(); ++i) {
        if (i) s += ", ";
        s += "[" + net_and_mask(in.direct_nets[i]) + "]";
    }
    s += "];\n"
         "function FindProxyForURL(url, host) {\n"
         "  host = host.toLowerCase();\n"
         "  if (host.charAt(host.length - 1) == \".\") host = host.substring(0, host.length - 1);\n"
         "  for (var i = 0; i < directDomains.length; i++) {\n"
         "    var d = directDomains[i];\n"
         "    if (host == d || dnsDomainIs(host, \".\" + d)) return \"DIRECT\";\n"
         "  }\n"
         "  if (/^[0-9]+\\.[0-9]+\\.[0-9]+\\.[0-9]+$/.test(host)) {\n"
         "    for (var j = 0; j < directNets.length; j++) {\n"
         "      if (isInNet(host, directNets[j][0], directNets[j][1])) return \"DIRECT\";\n"
         "    }\n"
         "  }\n"
         "  return \"PROXY ";
    s += in.proxy;
    if (in.fallback_direct) s += "; DIRECT";
    s += "\";\n}\n";
    return s;
}

}  // namespace hallpass
