// Nothing one peer sends grows hallpass beyond its buffers: an origin that streams interim
// (1xx) responses, and a client that pipelines requests hallpass answers itself (info page,
// block page) while never reading. RSS comes from /proc/PID/status; each case compares it
// with the level measured just before, and again after the hostile connection closed.
#include <doctest/doctest.h>

#include <thread>

#include "harness.h"

using namespace hallpass::e2e;

namespace {

// The growth these attacks caused before they were bounded was hundreds of MiB in seconds;
// what a bounded proxy may add (its buffers, allocator slack, thread caches) is far below this.
// An ASan build keeps every freed block in its quarantine (up to 256 MiB), so there RSS grows
// with the requests served before the pause, thousands of them: a looser bound, still far below
// the unbounded growth.
const long kSlackKib = (hallpass_is_sanitized() ? 64 : 8) * 1024;

const std::string kEarlyHints =
    "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload; as=style\r\n"
    "Link: </script.js>; rel=preload; as=script\r\n\r\n";

// Warms the proxy up (threads, first allocations) so that the baseline is its working level.
long warm_baseline(Hallpass& proxy, uint16_t origin_port) {
    for (int i = 0; i < 20; ++i) probe(proxy.port(), origin_port, "/");
    std::this_thread::sleep_for(200ms);
    return proxy.rss_kib();
}

}  // namespace

TEST_CASE("memory: an endless stream of 103 Early Hints to a client that does not read") {
    TempDir dir;
    ScriptedOrigin ok;
    ScriptedOrigin hints({ScriptedOrigin::Mode::Repeat, kEarlyHints});
    Hallpass proxy(dir);
    const long before = warm_baseline(proxy, ok.port());
    REQUIRE(before > 0);
    {
        RawClient c(proxy.port(), "127.0.0.1", 5s, 4096);
        c.send(proxy_get(hints.port(), "/hints"));
        REQUIRE(hints.wait_for_requests(1));
        std::this_thread::sleep_for(3s);
        long during = proxy.rss_kib();
        CHECK_MESSAGE(during - before < kSlackKib,
                      "RSS grew from " << before << " KiB to " << during << " KiB");
    }
    CHECK(probe(proxy.port(), ok.port(), "/") == 200);
    long after = proxy.rss_kib();
    CHECK_MESSAGE(after - before < kSlackKib,
                  "RSS after the close: " << after << " KiB (before: " << before << ")");
}

TEST_CASE("memory: a request gets at most 16 interim responses, then 502") {
    TempDir dir;
    ScriptedOrigin hints({ScriptedOrigin::Mode::Repeat, kEarlyHints});
    Hallpass proxy(dir);
    RawClient c(proxy.port());
    c.send(proxy_get(hints.port(), "/hints"));
    int interim = 0;
    std::optional<HttpResponse> r;
    while ((r = c.read_response(5s)) && r->status == 103) ++interim;
    CHECK(interim == 16);
    REQUIRE(r);
    CHECK(r->status == 502);
    CHECK(r->body.find("interim") != std::string::npos);
    CHECK(c.wait_closed(3s));
}

TEST_CASE("memory: pipelined requests answered by hallpass while the client never reads") {
    TempDir dir;
    ScriptedOrigin ok;
    HallpassOptions opts;
    opts.rules_yaml = "rules:\n  - name: no-ads\n    action: block\n    hosts: [ads.test]\n";
    Hallpass proxy(dir, opts);
    const long before = warm_baseline(proxy, ok.port());
    REQUIRE(before > 0);
    std::string one;
    SUBCASE("the info page (origin-form requests for hallpass itself)") {
        one = "GET / HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(proxy.port()) + "\r\n\r\n";
    }
    SUBCASE("the block page") {
        one = "GET http://ads.test/banner HTTP/1.1\r\nHost: ads.test\r\n\r\n";
    }
    std::string burst;
    while (burst.size() < (4u << 20)) burst += one;
    {
        RawClient c(proxy.port(), "127.0.0.1", 5s, 4096);
        size_t sent = c.send_some(burst, 4s);
        MESSAGE("the proxy and the kernel took " << sent << " of " << burst.size() << " bytes");
        std::this_thread::sleep_for(500ms);
        long during = proxy.rss_kib();
        CHECK_MESSAGE(during - before < kSlackKib,
                      "RSS grew from " << before << " KiB to " << during << " KiB");
        // Still served correctly once it reads: the first answer is intact.
        auto first = c.read_response(5s);
        REQUIRE(first);
        CHECK((first->status == 200 || first->status == 403));
    }
    CHECK(probe(proxy.port(), ok.port(), "/") == 200);
    std::this_thread::sleep_for(300ms);
    long after = proxy.rss_kib();
    CHECK_MESSAGE(after - before < kSlackKib,
                  "RSS after the close: " << after << " KiB (before: " << before << ")");
}
