// CONNECT tunnels: to nginx's TLS port with curl (-p and plain https:// through the proxy), a
// 1 MiB byte-exact transfer, half-close in both directions, ports outside connect_ports (403) and
// targets that cannot be reached (502), and splice(2): pipes hold bytes only while a tunnel has
// bytes in flight.
#include <doctest/doctest.h>

#include "harness.h"

using namespace hallpass::e2e;

namespace {

std::string connect_ports_yaml(std::initializer_list<uint16_t> ports) {
    std::string yaml = "connect_ports: [";
    bool first = true;
    for (uint16_t p : ports) {
        yaml += (first ? "" : ", ") + std::to_string(p);
        first = false;
    }
    return yaml + "]";
}

std::string connect_request(std::string_view authority) {
    return "CONNECT " + std::string(authority) + " HTTP/1.1\r\nHost: " + std::string(authority) +
           "\r\n\r\n";
}

}  // namespace

TEST_CASE("connect: curl reaches the TLS origin through a tunnel") {
    TempDir dir;
    NginxOptions no;
    no.tls = true;
    Nginx origin(dir, no);
    const std::string mib = random_bytes(1 << 20, 31);
    origin.put("1m", mib);
    origin.put("1k", std::string(1024, 't'));
    HallpassOptions opts;
    opts.server_yaml = connect_ports_yaml({origin.tls_port()});
    Hallpass proxy(dir, opts);
    std::string tls_authority = "site.test:" + std::to_string(origin.tls_port());

    SUBCASE("curl -p, 1 MiB byte-exact") {
        auto r = curl(proxy.port(), {"-p", "-k", "-w", "%{http_connect}", "-o",
                                     (dir / "down").string(), "https://" + tls_authority + "/1m"});
        CHECK(r.exit_code == 0);
        CHECK(r.out == "200");
        CHECK(read_file(dir / "down") == mib);
    }
    SUBCASE("plain https:// through the proxy") {
        auto r = curl(proxy.port(), {"-k", "https://" + tls_authority + "/1k"});
        CHECK_MESSAGE(r.exit_code == 0, r.err);
        CHECK(r.out == std::string(1024, 't'));
        auto logged = lines_with(proxy.stderr_text(), tls_authority);
        bool saw_connect = false;
        for (const auto& line : logged) saw_connect = saw_connect || contains(line, "CONNECT");
        CHECK_MESSAGE(saw_connect, "hallpass did not log CONNECT " << tls_authority);
    }
    SUBCASE("several requests in one tunnel") {
        auto r =
            curl(proxy.port(), {"-k", "-w", "[%{num_connects}]", "https://" + tls_authority + "/1k",
                                "https://" + tls_authority + "/1k"});
        CHECK(r.exit_code == 0);
        CHECK(r.out == std::string(1024, 't') + "[1]" + std::string(1024, 't') + "[0]");
        REQUIRE(origin.wait_for_accesses(2));
        auto seen = origin.accesses();
        CHECK(seen[0].connection == seen[1].connection);
    }
}

TEST_CASE("connect: the raw tunnel answers 200 Connection established and relays bytes") {
    TempDir dir;
    Nginx origin(dir);
    origin.put("1k", std::string(1024, 'r'));
    HallpassOptions opts;
    opts.server_yaml = connect_ports_yaml({origin.port()});
    Hallpass proxy(dir, opts);

    RawClient c(proxy.port());
    c.send(connect_request("site.test:" + std::to_string(origin.port())));
    auto established = c.read_response(5s, /*head_request=*/true);
    REQUIRE(established);
    CHECK(established->status == 200);
    CHECK(contains(established->head, "Connection established"));
    // Inside the tunnel, an origin-form request goes to nginx unchanged.
    c.send("GET /1k HTTP/1.1\r\nHost: site.test\r\n\r\n");
    auto r = c.read_final_response();
    REQUIRE(r);
    CHECK(r->body == std::string(1024, 'r'));
    CHECK_FALSE(r->has("via"));  // a tunnel is blind: nothing is rewritten

    auto via_curl = curl(proxy.port(), {"-p", origin.url("/1k", "site.test")});
    CHECK(via_curl.exit_code == 0);
    CHECK(via_curl.out == std::string(1024, 'r'));
}

TEST_CASE("connect: half-close is relayed in both directions") {
    TempDir dir;
    SUBCASE("client finishes sending first; the reply still arrives") {
        ScriptedOrigin origin({ScriptedOrigin::Mode::ReadToEofThenReply, "reply after eof"});
        HallpassOptions opts;
        opts.server_yaml = connect_ports_yaml({origin.port()});
        Hallpass proxy(dir, opts);

        RawClient c(proxy.port());
        c.send(connect_request("127.0.0.1:" + std::to_string(origin.port())));
        auto established = c.read_response(5s, true);
        REQUIRE(established);
        REQUIRE(established->status == 200);
        c.send("hello through the tunnel");
        c.shutdown_write();
        CHECK(c.read_until_close(5s) == "reply after eof");
        CHECK(c.last_end() == RawClient::End::Closed);
        REQUIRE(origin.wait_for_requests(1));
        CHECK(origin.requests()[0] == "hello through the tunnel");
    }
    SUBCASE("origin finishes sending first; the client still can send") {
        ScriptedOrigin::Options o;
        o.mode = ScriptedOrigin::Mode::Respond;
        o.reply = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        o.close_after_reply = true;  // FIN after the reply, then reads until our FIN
        ScriptedOrigin origin(o);
        HallpassOptions opts;
        opts.server_yaml = connect_ports_yaml({origin.port()});
        Hallpass proxy(dir, opts);

        RawClient c(proxy.port());
        c.send(connect_request("127.0.0.1:" + std::to_string(origin.port())));
        REQUIRE(c.read_response(5s, true));
        c.send("GET / HTTP/1.1\r\n\r\n");
        auto r = c.read_response();
        REQUIRE(r);
        CHECK(r->body == "ok");
        // The origin's FIN reaches us as EOF ...
        CHECK(c.wait_closed(3s));
        CHECK(c.last_end() == RawClient::End::Closed);
        // ... and our direction stays open until we close it.
        c.send("late bytes");
        c.shutdown_write();
        REQUIRE(origin.wait_for_requests(2));
        CHECK(origin.requests()[1] == "late bytes");
    }
}

TEST_CASE("connect: a port not in connect_ports gets 403") {
    TempDir dir;
    Nginx origin(dir);
    origin.put("1k", "x");
    Hallpass proxy(dir);  // default connect_ports: [443]

    RawClient c(proxy.port());
    c.send(connect_request("site.test:" + std::to_string(origin.port())));
    auto r = c.read_final_response();
    REQUIRE(r);
    CHECK(r->status == 403);
    std::this_thread::sleep_for(100ms);
    CHECK(origin.accesses().empty());

    auto via_curl =
        curl(proxy.port(), {"-p", "-w", "%{http_connect}", origin.url("/1k", "site.test")});
    CHECK(via_curl.exit_code != 0);
    CHECK(via_curl.out == "403");
    CHECK(probe(proxy.port(), origin.port()) == 200);
}

TEST_CASE("connect: unreachable targets get 502 with the reason") {
    TempDir dir;
    Nginx origin(dir);
    origin.put("1k", "x");
    uint16_t closed = free_port();
    HallpassOptions opts;
    opts.server_yaml = connect_ports_yaml({443, closed});
    Hallpass proxy(dir, opts);

    SUBCASE("unknown name") {
        RawClient c(proxy.port());
        c.send(connect_request("nowhere.test:443"));
        auto r = c.read_final_response();
        REQUIRE(r);
        CHECK(r->status == 502);
        CHECK(contains(r->body, "dns"));
    }
    SUBCASE("connection refused") {
        RawClient c(proxy.port());
        c.send(connect_request("127.0.0.1:" + std::to_string(closed)));
        auto r = c.read_final_response();
        REQUIRE(r);
        CHECK(r->status == 502);
        CHECK(contains(r->body, "refused"));
    }
    CHECK(probe(proxy.port(), origin.port()) == 200);
}

TEST_CASE("connect: tunnels splice through pipes that only tunnels moving bytes hold") {
    TempDir dir;
    Nginx origin(dir);
    origin.put("big", std::string(8 << 20, 'b'));
    origin.put("1k", std::string(1024, 'k'));
    for (bool splice : {true, false}) {
        CAPTURE(splice);
        HallpassOptions opts;
        opts.threads = 2;
        opts.server_yaml = connect_ports_yaml({origin.port()}) +
                           "\nbuffer_bytes: 262144\nsplice: " + (splice ? "true" : "false");
        Hallpass proxy(dir, opts);
        const size_t pipes_at_start = pipes_of(proxy.pid());
        const std::string authority = "site.test:" + std::to_string(origin.port());

        // 300 tunnels, each used once and then left open and idle.
        std::vector<std::unique_ptr<RawClient>> idle;
        for (int i = 0; i < 300; ++i) {
            auto c = std::make_unique<RawClient>(proxy.port());
            c->send(connect_request(authority));
            auto established = c->read_response(5s, /*head_request=*/true);
            REQUIRE(established);
            REQUIRE(established->status == 200);
            c->send("GET /1k HTTP/1.1\r\nHost: site.test\r\n\r\n");
            auto r = c->read_final_response();
            REQUIRE(r);
            REQUIRE(r->body == std::string(1024, 'k'));
            idle.push_back(std::move(c));
        }
        // Idle tunnels hold no pipe: at most the few each worker keeps for the next burst.
        const size_t idle_pipes = pipes_of(proxy.pid()) - pipes_at_start;
        MESSAGE(idle.size() << " idle tunnels; pipe descriptors beyond the start: " << idle_pipes);
        CHECK(idle_pipes <= 2 * 2 * 8);  // 2 workers x (read end + write end) x 8 kept
        CHECK(bytes_in_pipes(proxy.pid()) == 0);

        // A tunnel whose client stops reading a download: a pipe holds the bytes in flight
        // (splice), and what the proxy takes from the origin stays bounded either way.
        RawClient slow(proxy.port(), "127.0.0.1", 5s, /*rcvbuf=*/16 * 1024);
        slow.send(connect_request(authority));
        REQUIRE(slow.read_response(5s, true));
        slow.send("GET /big HTTP/1.1\r\nHost: site.test\r\n\r\n");
        if (splice) wait_until([&] { return bytes_in_pipes(proxy.pid()) > 0; }, 5s);
        std::this_thread::sleep_for(300ms);
        const size_t stalled_pipes = pipes_of(proxy.pid()) - pipes_at_start;
        const size_t in_pipes = bytes_in_pipes(proxy.pid());
        MESSAGE("while a download is stalled: " << stalled_pipes << " pipe descriptors holding "
                                                << in_pipes << " bytes");
        if (splice) {
            CHECK(in_pipes > 0);  // the bytes in flight sit in a pipe, not in a buffer
            CHECK(in_pipes <= 262144);
        } else {
            CHECK(stalled_pipes == 0);
        }
        // Then it reads: every byte arrives, in order.
        auto r = slow.read_final_response(30s);
        REQUIRE(r);
        CHECK(r->body.size() == (8u << 20));
        CHECK(r->body == std::string(8 << 20, 'b'));
    }
}
