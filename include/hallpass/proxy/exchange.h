// One request and its response on a client connection: what the request said and where it goes,
// how each body is framed and how far it has come, the upstream choice and its retries, and the
// Transaction record with its timings. Nothing in it outlives the exchange: the next request on
// a keep-alive connection gets a fresh Exchange, so no field can be left over from the previous
// one. The connection (the client socket, its timer and flags, byte totals) holds the current
// one.
#pragma once

#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <memory_resource>
#include <string>
#include <vector>

#include "hallpass/http/http_parser.h"
#include "hallpass/http/uri.h"
#include "hallpass/observe/transaction.h"
#include "hallpass/proxy/body_copy.h"

namespace hallpass {

class RuleSet;

struct Exchange {
    Exchange() = default;
    // The request head's strings and field vector live in `arena` (the connection's, released
    // when the exchange ends).
    explicit Exchange(std::pmr::memory_resource* arena) : req(HeadAllocator(arena)) {}

    // The request.
    bool head_started = false;
    size_t head_scanned = 0;  // bytes already searched for the end of the head
    RequestHead req;
    bool is_connect = false;
    AbsoluteUri uri;       // HTTP requests
    Authority target;      // where we connect (HTTP and CONNECT)
    std::string pool_key;  // target.host_port()
    std::string upstream_head;
    Framing req_framing;
    BodyCursor req_body;
    bool req_body_done = true;
    bool client_keep_alive = false;
    bool client_paused = false;  // client reads paused: upstream output full

    // The rule snapshot that decided the request, and the deciding rule (-1: the default), for
    // the second check after DNS.
    std::shared_ptr<const RuleSet> rules;
    int decided_rule = -1;
    bool granted = false;  // allowed by a grant (an exception): no second check after DNS
    // Safe search: the enforcement name resolved and connected to instead of target.host
    // (a string literal of safe_search.cpp); null when not re-targeted.
    const char* safe_search = nullptr;

    // Upstream choice.
    std::vector<sockaddr_storage> addrs;
    size_t addr_index = 0;
    std::string connect_error;
    bool connect_timed_out = false;
    bool upstream_reused = false;
    int retries = 0;

    // The response.
    bool resp_head_done = false;
    bool response_started = false;  // bytes of a response went to the client
    Framing resp_framing;
    BodyCursor resp_body;  // resp_body.dechunk: chunked for an HTTP/1.0 client
    bool resp_done = false;
    bool upstream_reusable = false;
    bool upstream_paused = false;  // upstream reads paused: client output full
    bool upstream_eof = false;     // the upstream closed; buffered bytes may remain
    int resp_status = 0;
    int interim_responses = 0;  // 1xx heads of this request so far

    // The record for the access log and statistics.
    Transaction txn;
    bool txn_open = false;
    int64_t txn_start_ms = 0;
    int64_t phase_start_ms = 0;  // start of the DNS lookup or of the first connect
    uint64_t txn_in_base = 0;    // the connection's byte totals when the record opened
    uint64_t txn_out_base = 0;
};

}  // namespace hallpass
