// What happened to one request: an HTTP exchange (relayed, blocked or answered locally) or one
// CONNECT tunnel. The connection fills one Transaction per request and hands it, once, to the
// worker when the request ends; the worker passes it to every TransactionSink (the access log,
// the statistics). Plain data: sinks copy what they keep.
#pragma once

#include <cstdint>
#include <string>

#include "hallpass/base/net_set.h"

namespace hallpass {

struct Transaction {
    enum class Kind : uint8_t {
        Relayed,  // forwarded to an upstream; `status` is the upstream's (or 0 if none came)
        Tunnel,   // CONNECT tunnel established and ended; status 200
        Blocked,  // refused by the rule engine (403 block page)
        Local,    // answered by hallpass itself: errors (4xx/5xx) and the info page
    };

    Kind kind = Kind::Local;
    int64_t start_unix_ms = 0;  // wall clock when the request head was complete
    int64_t elapsed_ms = 0;     // from the complete head to the end of the response or tunnel
    int64_t dns_ms = -1;        // DNS lookup (-1: none: pooled connection, IP literal, refused)
    int64_t connect_ms = -1;    // TCP connect to the upstream (-1: none)
    bool dns_cached = false;    // the lookup was answered from the cache or hosts file

    IpAddr client;              // client address
    std::string client_addr;    // "ip:port" as formatted for logs
    std::string method;         // "GET", "CONNECT", ... ("-" if the head never parsed)
    std::string url;            // absolute URL; "host:port" for CONNECT; raw target if invalid
    std::string host;           // canonical destination host ("" if not known)
    uint16_t port = 0;
    int status = 0;             // status sent to the client; 0 = none (client left first)
    std::string rule;           // deciding rule's name; "default" when the default decided; ""
                                // when no decision was made (the request failed before it)
    std::string upstream;       // "ip:port" of the upstream used ("" if none)
    bool upstream_reused = false;
    std::string content_type;   // of the response, "" if none
    uint64_t bytes_to_client = 0;    // bytes sent to the client (head and body / tunnel bytes)
    uint64_t bytes_from_client = 0;  // bytes received from the client (head and body)
    std::string error;          // why it did not complete cleanly; "" when it did
    // Safe search: the enforcement name the request or tunnel was connected to instead of
    // `host`'s own addresses ("forcesafesearch.google.com"); "" when not re-targeted.
    std::string safe_search;
    std::string message;  // a blocked request: the words the block page gave ("" = none)
};

const char* kind_name(Transaction::Kind kind);

// Receives every finished Transaction. Called on worker threads (`worker` is the index) and
// must not block: no file I/O, no lock held for long.
class TransactionSink {
  public:
    virtual ~TransactionSink() = default;
    virtual void record(int worker, const Transaction& txn) = 0;
};

}  // namespace hallpass
