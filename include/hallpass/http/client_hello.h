// The first bytes of a TLS connection: whether they are a ClientHello, and the server name it
// asks for (SNI), read without answering anything, for intercepted TLS that is decided like a
// CONNECT. Pure and bounded: it looks at `bytes` as they are so far and says whether more are
// needed (a ClientHello may come in tiny segments, or in several TLS records), never reading
// past `max_bytes`.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace hallpass {

enum class HelloStatus {
    Incomplete,  // a ClientHello so far: more bytes are needed
    Complete,    // a whole ClientHello: see has_sni / server_name
    NotTls,      // not a TLS handshake (plain HTTP on the TLS port, anything else)
    Malformed,   // a TLS handshake record, but not a well-formed ClientHello
    TooLarge,    // still incomplete at max_bytes
};

struct ClientHello {
    HelloStatus status = HelloStatus::Incomplete;
    bool has_sni = false;
    std::string server_name;  // the host_name of server_name, as sent (lower-cased)
    bool ech = false;         // an encrypted_client_hello extension: server_name is the outer one
    std::string error;        // why, for NotTls and Malformed
};

inline constexpr size_t kMaxClientHelloBytes = 32 * 1024;

ClientHello parse_client_hello(std::string_view bytes, size_t max_bytes = kMaxClientHelloBytes);

}  // namespace hallpass
