// exchange: what a fresh exchange starts from, and that replacing it (the next request on a
// keep-alive connection) leaves nothing of the previous one: no body still "in progress", no
// rule snapshot kept alive, no addresses or retries, no open log record.
#include "hallpass/proxy/exchange.h"

#include <doctest/doctest.h>

#include <memory_resource>

using namespace hallpass;

TEST_CASE("exchange: a fresh exchange has no body pending, no decision, no open record") {
    Exchange x;
    CHECK(x.req_body_done);  // a request without a body is done as soon as its head is
    CHECK_FALSE(x.head_started);
    CHECK(x.decided_rule == -1);
    CHECK(x.rules == nullptr);
    CHECK(x.addrs.empty());
    CHECK(x.retries == 0);
    CHECK_FALSE(x.resp_head_done);
    CHECK_FALSE(x.response_started);
    CHECK_FALSE(x.txn_open);
    CHECK(x.interim_responses == 0);
}

TEST_CASE("exchange: the next request's exchange keeps nothing of the last one") {
    Exchange x;
    x.head_started = true;
    x.head_scanned = 4096;
    x.req.method = "POST";
    x.req.target = "http://site.test/upload";
    x.is_connect = true;
    x.pool_key = "site.test:80";
    x.upstream_head = "POST /upload HTTP/1.1\r\n\r\n";
    x.req_framing = Framing{BodyKind::Length, 10};
    x.req_body = BodyCursor::of(x.req_framing);
    x.req_body.remaining = 7;
    x.req_body_done = false;
    x.client_keep_alive = true;
    x.client_paused = true;
    x.decided_rule = 3;
    x.addrs.resize(2);
    x.addr_index = 1;
    x.connect_error = "refused";
    x.retries = 1;
    x.resp_head_done = x.response_started = x.resp_done = true;
    x.resp_framing = Framing{BodyKind::Chunked, 0};
    x.upstream_paused = x.upstream_eof = true;
    x.resp_body = BodyCursor::of(x.resp_framing, true);
    x.resp_status = 200;
    x.interim_responses = 5;
    x.txn.status = 200;
    x.txn.bytes_to_client = 1234;
    x.txn_open = true;

    x = Exchange();
    const Exchange fresh;
    CHECK(x.head_started == fresh.head_started);
    CHECK(x.head_scanned == 0);
    CHECK(x.req.method.empty());
    CHECK(x.req.target.empty());
    CHECK_FALSE(x.is_connect);
    CHECK(x.pool_key.empty());
    CHECK(x.upstream_head.empty());
    CHECK(x.req_framing.kind == BodyKind::None);
    CHECK(x.req_body.kind == BodyKind::None);
    CHECK(x.req_body.remaining == 0);
    CHECK(x.req_body_done);
    CHECK_FALSE(x.client_keep_alive);
    CHECK_FALSE(x.client_paused);
    CHECK(x.decided_rule == -1);
    CHECK(x.addrs.empty());
    CHECK(x.addr_index == 0);
    CHECK(x.connect_error.empty());
    CHECK(x.retries == 0);
    CHECK_FALSE(x.resp_head_done);
    CHECK_FALSE(x.response_started);
    CHECK_FALSE(x.resp_done);
    CHECK(x.resp_framing.kind == BodyKind::None);
    CHECK_FALSE(x.upstream_paused);
    CHECK_FALSE(x.upstream_eof);
    CHECK(x.resp_body.kind == BodyKind::None);
    CHECK_FALSE(x.resp_body.dechunk);
    CHECK_FALSE(x.resp_body.chunked.done());
    CHECK(x.resp_status == 0);
    CHECK(x.interim_responses == 0);
    CHECK(x.txn.status == 0);
    CHECK(x.txn.bytes_to_client == 0);
    CHECK_FALSE(x.txn_open);
}

TEST_CASE("exchange: the request head lives in the connection's arena") {
    std::pmr::monotonic_buffer_resource arena(4096);
    Exchange x(&arena);
    CHECK(x.req.headers.get_allocator().resource() == &arena);
    CHECK(x.req.target.get_allocator().resource() == &arena);
    HeadParse<RequestHead> p = parse_request_head(
        "GET http://site.test/a/long/enough/path HTTP/1.1\r\nHost: site.test\r\n\r\n",
        ParseLimits{}, &arena);
    REQUIRE(p.status == HeadStatus::Complete);
    const char* target = p.head.target.data();
    x.req = std::move(p.head);
    CHECK(x.req.target.data() == target);  // moved within the arena, not copied out of it
    // The next exchange starts on the same arena.
    x = Exchange(&arena);
    CHECK(x.req.headers.get_allocator().resource() == &arena);
    CHECK(x.req.target.empty());
}
