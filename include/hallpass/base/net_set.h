// Sets of IP networks (CIDRs) for client groups and dest_nets: parsed from text, compiled into
// sorted, merged intervals, and matched with a binary search. IPv4 and IPv6 are kept apart; an
// IPv4-mapped IPv6 address (::ffff:a.b.c.d) matches as the IPv4 address it carries.
#pragma once

#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "hallpass/base/error.h"

namespace hallpass {

// An IP address in a form that compares as a number: IPv4 in the low 32 bits of `lo` (v6 false),
// or IPv6 as two 64-bit halves.
// Appends "a.b.c.d" for an IPv4 address in host byte order (what inet_ntop writes, without its
// sprintf: this runs for every request's log line).
void append_ipv4(std::string& out, uint32_t addr);

struct IpAddr {
    bool v6 = false;
    uint64_t hi = 0;
    uint64_t lo = 0;

    static std::optional<IpAddr> parse(std::string_view text);  // no brackets, no zone
    static std::optional<IpAddr> from_sockaddr(const sockaddr* sa);
    std::string to_string() const;
    bool operator==(const IpAddr&) const = default;
};

class NetSet {
  public:
    // Adds "a.b.c.d", "a.b.c.d/n", "v6", "v6/n". Host bits set below the prefix are an error
    // ("192.168.1.1/24": did you mean 192.168.1.0/24?), so a typo cannot widen a rule unnoticed.
    std::optional<std::string> add(std::string_view cidr);
    void add(const NetSet& other);
    // Sorts and merges; call once after the last add().
    void compile();

    bool contains(const IpAddr& ip) const;
    bool empty() const { return v4_.empty() && v6_.empty(); }
    size_t size() const { return v4_.size() + v6_.size(); }

  private:
    struct Range4 {
        uint32_t first, last;
    };
    struct Range6 {
        std::array<uint64_t, 2> first, last;
    };
    std::vector<Range4> v4_;
    std::vector<Range6> v6_;
};

}  // namespace hallpass
