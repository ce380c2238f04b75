// Which destinations are the proxy host itself: loopback, the unspecified addresses, link-local,
// and the host's own interface addresses, less the admin's exceptions
// (server.allow_local_destinations). A connection asks before it connects anywhere: at once for
// an IP literal, and for every address a name resolved to (a name that resolves to 127.0.0.1 is
// DNS rebinding), so a LAN client cannot reach services that listen only on the proxy host.
// Immutable after start-up; shared read-only by all workers.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "hallpass/base/error.h"
#include "hallpass/base/net_set.h"

namespace hallpass {

class DestinationGuard {
  public:
    // `own_addresses`: this machine's interface addresses (read at start-up). `exceptions`:
    // CIDRs or ADDR:PORT entries (config.h check_local_exception() has validated them).
    static Result<DestinationGuard> create(const NetSet& own_addresses,
                                           const std::vector<std::string>& exceptions);
    DestinationGuard();

    // True for loopback, unspecified, link-local and own addresses, whatever the exceptions.
    bool is_local(const IpAddr& ip) const { return local_.contains(ip); }
    // True when a connection to ip:port must be refused: local and not an exception.
    bool refuses(const IpAddr& ip, uint16_t port) const;

  private:
    NetSet local_;
    NetSet allowed_;                                          // exceptions for every port
    std::vector<std::pair<IpAddr, uint16_t>> allowed_ports_;  // ADDR:PORT exceptions
};

// Every address of this machine (loopback, the unspecified addresses, every interface's), read
// now: for listeners bound to 0.0.0.0 or ::, and for DestinationGuard::create().
NetSet local_addresses();

}  // namespace hallpass
