#include "hallpass/base/net_set.h"

#include <doctest/doctest.h>

using namespace hallpass;

namespace {
bool has(const NetSet& set, const char* ip) { return set.contains(*IpAddr::parse(ip)); }
}  // namespace

TEST_CASE("net_set: IPv4 and IPv6 CIDRs, single addresses, merged ranges") {
    NetSet set;
    for (const char* cidr :
         {"192.168.1.64/27", "192.168.1.50", "10.0.0.0/8", "fd00:1::/64", "::1", "10.1.0.0/16"}) {
        CHECK_FALSE(set.add(cidr).has_value());
    }
    set.compile();
    CHECK(has(set, "192.168.1.64"));
    CHECK(has(set, "192.168.1.95"));
    CHECK_FALSE(has(set, "192.168.1.96"));
    CHECK_FALSE(has(set, "192.168.1.63"));
    CHECK(has(set, "192.168.1.50"));
    CHECK_FALSE(has(set, "192.168.1.51"));
    CHECK(has(set, "10.255.255.255"));
    CHECK(has(set, "fd00:1::1234"));
    CHECK(has(set, "fd00:1::ffff:ffff:ffff:ffff"));
    CHECK_FALSE(has(set, "fd00:1:0:1::"));
    CHECK(has(set, "::1"));
    CHECK_FALSE(has(set, "::2"));
    // A dual-stack socket reports IPv4 clients as ::ffff:a.b.c.d.
    CHECK(has(set, "::ffff:192.168.1.50"));
}

TEST_CASE("net_set: whole address spaces and edges") {
    NetSet set;
    CHECK_FALSE(set.add("0.0.0.0/0").has_value());
    CHECK_FALSE(set.add("255.255.255.255").has_value());
    CHECK_FALSE(set.add("::/0").has_value());
    set.compile();
    CHECK(has(set, "0.0.0.0"));
    CHECK(has(set, "255.255.255.255"));
    CHECK(has(set, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"));
    NetSet empty;
    empty.compile();
    CHECK_FALSE(has(empty, "1.2.3.4"));
}

TEST_CASE("net_set: bad CIDRs say what is wrong") {
    struct Row {
        const char* cidr;
        const char* error;
    };
    const Row rows[] = {
        {"192.168.1.1/24", "\"192.168.1.1/24\" has host bits set (did you mean 192.168.1.0/24?)"},
        {"10.0.0.0/33", "prefix /33 is longer than 32 in \"10.0.0.0/33\""},
        {"10.0.0.0/", "bad prefix length in \"10.0.0.0/\""},
        {"10.0.0/8", "\"10.0.0/8\" is not an IP address or CIDR"},
        {"kids", "\"kids\" is not an IP address or CIDR"},
        {"fd00::1/64", "\"fd00::1/64\" has host bits set"},
    };
    for (const Row& row : rows) {
        SUBCASE(row.cidr) {
            NetSet set;
            auto err = set.add(row.cidr);
            REQUIRE(err.has_value());
            CHECK(*err == row.error);
        }
    }
}

TEST_CASE("net_set: IPv4 addresses print as inet_ntop prints them") {
    for (const char* text : {"0.0.0.0", "1.2.3.4", "10.0.0.255", "127.0.0.1", "255.255.255.255",
                             "192.168.100.9"}) {
        CAPTURE(text);
        auto ip = IpAddr::parse(text);
        REQUIRE(ip);
        CHECK(ip->to_string() == text);
    }
    std::string out = "x=";
    append_ipv4(out, 0x7f000001);
    CHECK(out == "x=127.0.0.1");
}
