// dns: the hosts file table (the resolver itself is exercised end to end).
#include "hallpass/proxy/dns.h"

#include <doctest/doctest.h>
#include <sys/socket.h>

using namespace hallpass;

TEST_CASE("dns: hosts table parsing") {
    HostsTable t = HostsTable::parse(
        "# comment\n"
        "127.0.0.1 localhost Site.Test. # trailing comment\n"
        "::1 localhost ip6-localhost\n"
        "fe80::1%lo0 zoned\n"
        "   \t\n"
        "127.0.0.2\tb.test\n");
    REQUIRE(t.find("localhost"));
    CHECK(t.find("localhost")->size() == 2);
    CHECK(t.find("localhost")->front().ss_family == AF_INET);  // IPv4 first
    CHECK(t.find("site.test"));
    CHECK(t.find("b.test"));
    CHECK_FALSE(t.find("zoned"));
    CHECK_FALSE(t.find("comment"));
    CHECK_FALSE(t.find("Site.Test."));
}
