// Fast producers and slow consumers: a 1 GiB download read slowly (plain GET and through a
// tunnel), and uploads into an upstream that never reads. hallpass must stop reading instead of
// buffering, so its RSS stays near the baseline; then the rest of the download must arrive whole.
#include <doctest/doctest.h>

#include <algorithm>

#include "harness.h"

using namespace hallpass::e2e;

namespace {

constexpr long kSlackKiB = 48 * 1024;  // allowed growth over the idle baseline
constexpr size_t kGiB = size_t{1} << 30;

// RSS after start-up and one exchange (threads, pools and buffers exist).
long warm_baseline(Hallpass& proxy, uint16_t origin_port) {
    CHECK(probe(proxy.port(), origin_port, "/1k") == 200);
    return proxy.rss_kib();
}

}  // namespace

TEST_CASE("backpressure: a slow reader of a 1 GiB download keeps the proxy's RSS flat") {
    TempDir dir;
    Nginx origin(dir);
    origin.put("1k", "ok");
    write_file(origin.docroot() / "huge", "");
    fs::resize_file(origin.docroot() / "huge", kGiB);  // sparse: costs no disk
    HallpassOptions opts;
    opts.server_yaml = "connect_ports: [" + std::to_string(origin.port()) + "]";
    Hallpass proxy(dir, opts);
    long baseline = warm_baseline(proxy, origin.port());
    REQUIRE(baseline > 0);

    RawClient c(proxy.port());
    bool read_all = true;
    SUBCASE("plain GET") { c.send(proxy_get(origin.port(), "/huge", "site.test")); }
    SUBCASE("GET inside a CONNECT tunnel") {
        c.send("CONNECT site.test:" + std::to_string(origin.port()) +
               " HTTP/1.1\r\nHost: site.test\r\n\r\n");
        auto established = c.read_response(5s, true);
        REQUIRE(established);
        REQUIRE(established->status == 200);
        c.send("GET /huge HTTP/1.1\r\nHost: site.test\r\n\r\n");
        read_all = false;  // byte-exact tunnels are connect_test's; this one is about memory
    }

    REQUIRE(c.fill([](const std::string& b) { return contains(b, "\r\n\r\n"); }, 5s) ==
            RawClient::End::Ok);
    size_t head_len = c.buffer().find("\r\n\r\n") + 4;
    auto head = parse_response_head(c.buffer().substr(0, head_len));
    REQUIRE(head);
    REQUIRE(head->status == 200);
    REQUIRE(head->header("content-length") == std::to_string(kGiB));
    size_t received = c.buffer().size() - head_len;
    c.buffer().clear();

    // About 1 MB/s for 3 s, against a producer that could send a hundred times faster.
    long peak = 0;
    auto start = Clock::now();
    while (Clock::now() - start < 3s) {
        received += c.drain(16 * 1024, 1s);
        peak = std::max(peak, proxy.rss_kib());
        std::this_thread::sleep_for(15ms);
    }
    const size_t read_slowly = received;
    INFO("baseline " << baseline << " KiB, peak " << peak << " KiB, read " << read_slowly
                     << " bytes slowly");
    CHECK(peak <= baseline + kSlackKiB);
    CHECK(read_slowly < 64u << 20);

    if (read_all) {
        // Now as fast as possible: every byte must arrive. (No RSS check here: an ASan build's
        // quarantine legitimately holds a few hundred MiB of freed buffers after 1 GiB.)
        received += c.drain(kGiB - received, 120s);
        CHECK(received == kGiB);
    }
    CHECK(probe(proxy.port(), origin.port(), "/1k") == 200);
}

TEST_CASE("backpressure: a client pushing into an upstream that never reads is throttled") {
    TempDir dir;
    ScriptedOrigin stall({ScriptedOrigin::Mode::Stall});  // accepts, never reads
    Nginx origin(dir);
    origin.put("1k", "ok");
    HallpassOptions opts;
    opts.server_yaml = "connect_ports: [" + std::to_string(stall.port()) + "]";
    Hallpass proxy(dir, opts);
    long baseline = warm_baseline(proxy, origin.port());
    std::string authority = "127.0.0.1:" + std::to_string(stall.port());

    RawClient c(proxy.port());
    std::string piece(1 << 20, 'u');
    SUBCASE("request body with Content-Length") {
        c.send("POST http://" + authority + "/upload HTTP/1.1\r\nHost: " + authority +
               "\r\nContent-Length: " + std::to_string(kGiB) + "\r\n\r\n");
    }
    SUBCASE("chunked request body") {
        c.send("POST http://" + authority + "/upload HTTP/1.1\r\nHost: " + authority +
               "\r\nTransfer-Encoding: chunked\r\n\r\n");
        piece = "fffe0\r\n" + std::string(0xfffe0, 'u') + "\r\n";  // one valid chunk each
    }
    SUBCASE("CONNECT tunnel") {
        c.send("CONNECT " + authority + " HTTP/1.1\r\nHost: " + authority + "\r\n\r\n");
        auto established = c.read_response(5s, true);
        REQUIRE(established);
        REQUIRE(established->status == 200);
    }

    // Push until the proxy stops taking bytes for a whole second (or 512 MiB went in).
    size_t sent = 0;
    long peak = 0;
    while (sent < (512u << 20)) {
        size_t n = c.send_some(piece, 1s);
        sent += n;
        peak = std::max(peak, proxy.rss_kib());
        if (n < piece.size()) break;
    }
    peak = std::max(peak, proxy.rss_kib());
    const size_t sent_mib = sent >> 20;
    INFO("sent " << sent_mib << " MiB before the proxy stopped reading; baseline " << baseline
                 << " KiB, peak " << peak << " KiB");
    // Kernel socket buffers on the way (client, proxy both sides, origin) hold a few tens of
    // MiB at most; anything near 512 MiB means hallpass kept reading.
    CHECK(sent < (128u << 20));
    CHECK(peak <= baseline + kSlackKiB);
    CHECK(probe(proxy.port(), origin.port(), "/1k") == 200);
}
