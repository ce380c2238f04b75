// CIDR sets as sorted, merged intervals: a lookup is one binary search, whatever the number of
// networks. Used for client groups and dest_nets in the rule engine.
#include "hallpass/base/net_set.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <charconv>
#include <cstring>

namespace hallpass {
namespace {

uint64_t load_be64(const unsigned char* p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v = (v << 8) | p[i];
    return v;
}

IpAddr from_v6_bytes(const unsigned char* b) {
    // ::ffff:a.b.c.d is an IPv4 address in IPv6 clothing (dual-stack sockets report clients so).
    static const unsigned char kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (std::memcmp(b, kMapped, 12) == 0) {
        return IpAddr{false, 0, (uint64_t{b[12]} << 24) | (b[13] << 16) | (b[14] << 8) | b[15]};
    }
    return IpAddr{true, load_be64(b), load_be64(b + 8)};
}

}  // namespace

std::optional<IpAddr> IpAddr::parse(std::string_view text) {
    std::string s(text);
    in_addr a4;
    if (inet_pton(AF_INET, s.c_str(), &a4) == 1) return IpAddr{false, 0, ntohl(a4.s_addr)};
    in6_addr a6;
    if (inet_pton(AF_INET6, s.c_str(), &a6) == 1) return from_v6_bytes(a6.s6_addr);
    return std::nullopt;
}

std::optional<IpAddr> IpAddr::from_sockaddr(const sockaddr* sa) {
    if (sa->sa_family == AF_INET) {
        auto* sin = reinterpret_cast<const sockaddr_in*>(sa);
        return IpAddr{false, 0, ntohl(sin->sin_addr.s_addr)};
    }
    if (sa->sa_family == AF_INET6) {
        return from_v6_bytes(reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr.s6_addr);
    }
    return std::nullopt;
}

void append_ipv4(std::string& out, uint32_t addr) {
    char buf[16];
    char* p = buf;
    for (int shift = 24; shift >= 0; shift -= 8) {
        p = std::to_chars(p, buf + sizeof buf, (addr >> shift) & 0xff).ptr;
        if (shift) *p++ = '.';
    }
    out.append(buf, static_cast<size_t>(p - buf));
}

std::string IpAddr::to_string() const {
    if (!v6) {
        std::string out;
        append_ipv4(out, static_cast<uint32_t>(lo));
        return out;
    }
    char buf[INET6_ADDRSTRLEN] = "";
    {
        unsigned char b[16];
        for (int i = 0; i < 8; ++i) {
            b[i] = static_cast<unsigned char>(hi >> (56 - 8 * i));
            b[8 + i] = static_cast<unsigned char>(lo >> (56 - 8 * i));
        }
        inet_ntop(AF_INET6, b, buf, sizeof buf);
    }
    return buf;
}

std::optional<std::string> NetSet::add(std::string_view cidr) {
    std::string_view addr_text = cidr;
    int prefix = -1;
    if (size_t slash = cidr.find('/'); slash != std::string_view::npos) {
        addr_text = cidr.substr(0, slash);
        std::string_view p = cidr.substr(slash + 1);
        auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), prefix);
        if (p.empty() || ec != std::errc() || end != p.data() + p.size()) {
            return "bad prefix length in \"" + std::string(cidr) + "\"";
        }
    }
    auto ip = IpAddr::parse(addr_text);
    if (!ip) return "\"" + std::string(cidr) + "\" is not an IP address or CIDR";
    int max_prefix = ip->v6 ? 128 : 32;
    // A mapped address written as IPv6 (::ffff:1.2.3.4/120) keeps its IPv6 prefix meaning.
    if (!ip->v6 && addr_text.find(':') != std::string_view::npos && prefix >= 0) {
        prefix -= 96;
        if (prefix < 0)
            return "prefix too short for an IPv4-mapped address in \"" + std::string(cidr) + "\"";
    }
    if (prefix < 0) prefix = max_prefix;
    if (prefix > max_prefix) {
        return "prefix /" + std::to_string(prefix) + " is longer than " +
               std::to_string(max_prefix) + " in \"" + std::string(cidr) + "\"";
    }
    if (!ip->v6) {
        uint32_t a = static_cast<uint32_t>(ip->lo);
        uint32_t host_mask =
            prefix == 32 ? 0 : (prefix == 0 ? 0xffffffffu : (0xffffffffu >> prefix));
        if (a & host_mask) {
            IpAddr net{false, 0, a & ~host_mask};
            return "\"" + std::string(cidr) + "\" has host bits set (did you mean " +
                   net.to_string() + "/" + std::to_string(prefix) + "?)";
        }
        v4_.push_back({a, a | host_mask});
        return std::nullopt;
    }
    std::array<uint64_t, 2> first{ip->hi, ip->lo}, last = first;
    for (int half = 0; half < 2; ++half) {
        int bits = std::clamp(prefix - 64 * half, 0, 64);
        uint64_t host_mask = bits == 64 ? 0 : (bits == 0 ? ~uint64_t{0} : (~uint64_t{0} >> bits));
        if (first[half] & host_mask) {
            return "\"" + std::string(cidr) + "\" has host bits set";
        }
        last[half] = first[half] | host_mask;
    }
    v6_.push_back({first, last});
    return std::nullopt;
}

void NetSet::add(const NetSet& other) {
    v4_.insert(v4_.end(), other.v4_.begin(), other.v4_.end());
    v6_.insert(v6_.end(), other.v6_.begin(), other.v6_.end());
}

void NetSet::compile() {
    auto merge = [](auto& ranges, auto next_of) {
        std::sort(ranges.begin(), ranges.end(),
                  [](const auto& a, const auto& b) { return a.first < b.first; });
        size_t out = 0;
        for (size_t i = 0; i < ranges.size(); ++i) {
            if (out > 0 && next_of(ranges[out - 1].last) &&
                *next_of(ranges[out - 1].last) >= ranges[i].first) {
                ranges[out - 1].last = std::max(ranges[out - 1].last, ranges[i].last);
            } else if (out > 0 && !next_of(ranges[out - 1].last)) {
                // the previous range ends at the top of the address space: it covers the rest
            } else {
                ranges[out++] = ranges[i];
            }
        }
        ranges.resize(out);
    };
    merge(v4_, [](uint32_t last) -> std::optional<uint32_t> {
        if (last == 0xffffffffu) return std::nullopt;
        return last + 1;
    });
    merge(v6_, [](std::array<uint64_t, 2> last) -> std::optional<std::array<uint64_t, 2>> {
        if (last[0] == ~uint64_t{0} && last[1] == ~uint64_t{0}) return std::nullopt;
        if (last[1] == ~uint64_t{0}) return std::array<uint64_t, 2>{last[0] + 1, 0};
        return std::array<uint64_t, 2>{last[0], last[1] + 1};
    });
}

bool NetSet::contains(const IpAddr& ip) const {
    if (!ip.v6) {
        uint32_t a = static_cast<uint32_t>(ip.lo);
        auto it = std::upper_bound(v4_.begin(), v4_.end(), a,
                                   [](uint32_t v, const Range4& r) { return v < r.first; });
        return it != v4_.begin() && a <= std::prev(it)->last;
    }
    std::array<uint64_t, 2> a{ip.hi, ip.lo};
    auto it = std::upper_bound(v6_.begin(), v6_.end(), a,
                               [](const auto& v, const Range6& r) { return v < r.first; });
    return it != v6_.begin() && a <= std::prev(it)->last;
}

}  // namespace hallpass
