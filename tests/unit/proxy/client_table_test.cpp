#include "hallpass/proxy/client_table.h"

#include <doctest/doctest.h>

using namespace hallpass;

namespace {
IpAddr ip(const char* text) { return *IpAddr::parse(text); }
}  // namespace

TEST_CASE("client table: connection counts are per address and exact") {
    ClientTable t;
    CHECK(t.try_add_connection(ip("192.168.1.10"), 2));
    CHECK(t.try_add_connection(ip("192.168.1.10"), 2));
    CHECK_FALSE(t.try_add_connection(ip("192.168.1.10"), 2));
    CHECK(t.try_add_connection(ip("192.168.1.11"), 2));
    CHECK(t.connections(ip("192.168.1.10")) == 2);
    t.remove_connection(ip("192.168.1.10"));
    CHECK(t.try_add_connection(ip("192.168.1.10"), 2));
}

TEST_CASE("client table: IPv6 clients count by /64") {
    ClientTable t;
    CHECK(t.try_add_connection(ip("2001:db8:1:2::10"), 2));
    CHECK(t.try_add_connection(ip("2001:db8:1:2:aaaa:bbbb:cccc:dddd"), 2));
    CHECK_FALSE(t.try_add_connection(ip("2001:db8:1:2::99"), 2));
    CHECK(t.try_add_connection(ip("2001:db8:1:3::10"), 2));
    // An IPv4 address never shares a count with an IPv6 prefix.
    CHECK(t.try_add_connection(ip("0.0.0.1"), 1));
    CHECK(t.try_add_connection(ip("::"), 1));
}

TEST_CASE("client table: entries go when their last count does") {
    ClientTable t;
    t.add_connection(ip("10.0.0.1"));
    CHECK(t.try_add_lookup(ip("10.0.0.1"), 1));
    CHECK_FALSE(t.try_add_lookup(ip("10.0.0.1"), 1));
    t.mark_idle(ip("10.0.0.1"), {0, 7, 100});
    CHECK(t.clients() == 1);
    t.remove_connection(ip("10.0.0.1"));
    t.remove_lookup(ip("10.0.0.1"));
    CHECK(t.clients() == 1);  // still listed as idle
    t.clear_idle(ip("10.0.0.1"), 7);
    CHECK(t.clients() == 0);
}

TEST_CASE("client table: the longest-idle connection is claimed, once") {
    ClientTable t;
    t.mark_idle(ip("10.0.0.1"), {0, 1, 300});
    t.mark_idle(ip("10.0.0.1"), {1, 2, 100});
    t.mark_idle(ip("10.0.0.2"), {0, 3, 50});
    IpAddr one = ip("10.0.0.1");
    auto a = t.claim_idle(&one);
    REQUIRE(a);
    CHECK(a->id == 2);
    CHECK(a->worker == 1);
    auto any = t.claim_idle(nullptr);
    REQUIRE(any);
    CHECK(any->id == 3);
    auto b = t.claim_idle(&one);
    REQUIRE(b);
    CHECK(b->id == 1);
    CHECK_FALSE(t.claim_idle(&one));
    CHECK_FALSE(t.claim_idle(nullptr));
}
