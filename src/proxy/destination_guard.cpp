// Local destinations: a fixed list of special ranges plus this host's own addresses; exceptions
// by network or by exact address and port. See destination_guard.h.
#include "hallpass/proxy/destination_guard.h"

#include <ifaddrs.h>
#include <netinet/in.h>

#include "hallpass/config/config.h"

namespace hallpass {
namespace {

// Ranges that always reach this host or its link, whatever its interfaces: loopback, the
// unspecified addresses (Linux connects 0.0.0.0 and :: to this host) and link-local (the LAN
// segment itself: routers' and printers' admin pages, cloud metadata services). IPv4-mapped
// IPv6 spellings (::ffff:127.0.0.1) match as the IPv4 address they carry (net_set.h).
constexpr const char* kLocalRanges[] = {"127.0.0.0/8", "0.0.0.0/8", "169.254.0.0/16",
                                        "::1",         "::",        "fe80::/10"};

bool same_ip(const IpAddr& a, const IpAddr& b) {
    // (IpAddr keeps ::ffff:a.b.c.d as the IPv4 address it carries.)
    return a.v6 == b.v6 && a.hi == b.hi && a.lo == b.lo;
}

void add_local_ranges(NetSet& set) {
    for (const char* range : kLocalRanges) set.add(range);
}

}  // namespace

DestinationGuard::DestinationGuard() {
    add_local_ranges(local_);
    local_.compile();
}

Result<DestinationGuard> DestinationGuard::create(const NetSet& own_addresses,
                                                  const std::vector<std::string>& exceptions) {
    DestinationGuard guard;
    guard.local_ = NetSet();  // compiled once, below, with the own addresses
    add_local_ranges(guard.local_);
    guard.local_.add(own_addresses);
    guard.local_.compile();
    for (const std::string& text : exceptions) {
        if (auto addr = parse_listen_address(text)) {
            auto ip = IpAddr::from_sockaddr(reinterpret_cast<const sockaddr*>(&addr->addr));
            if (!ip) return Error{"allow_local_destinations: bad address \"" + text + "\""};
            uint16_t port =
                ntohs(addr->addr.ss_family == AF_INET
                          ? reinterpret_cast<const sockaddr_in*>(&addr->addr)->sin_port
                          : reinterpret_cast<const sockaddr_in6*>(&addr->addr)->sin6_port);
            guard.allowed_ports_.emplace_back(*ip, port);
            continue;
        }
        if (auto err = guard.allowed_.add(text)) return Error{"allow_local_destinations: " + *err};
    }
    guard.allowed_.compile();
    return guard;
}

bool DestinationGuard::refuses(const IpAddr& ip, uint16_t port) const {
    if (!local_.contains(ip)) return false;
    if (allowed_.contains(ip)) return false;
    for (const auto& [allowed_ip, allowed_port] : allowed_ports_) {
        if ((allowed_port == 0 || allowed_port == port) && same_ip(allowed_ip, ip)) return false;
    }
    return true;
}

// Every address of this machine, for listeners bound to 0.0.0.0 or ::. Read once at start-up;
// addresses added later are not seen (documented in docs/security.md).
NetSet local_addresses() {
    NetSet set;
    set.add("127.0.0.0/8");
    set.add("::1");
    // Connecting to the unspecified address reaches this host too (Linux treats it as local).
    set.add("0.0.0.0");
    set.add("::");
    ifaddrs* list = nullptr;
    if (getifaddrs(&list) == 0) {
        for (ifaddrs* it = list; it; it = it->ifa_next) {
            if (!it->ifa_addr) continue;
            if (auto ip = IpAddr::from_sockaddr(it->ifa_addr)) set.add(ip->to_string());
        }
        freeifaddrs(list);
    }
    set.compile();
    return set;
}

}  // namespace hallpass
