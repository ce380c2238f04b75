// Fuzz target: the ClientHello reader of intercepted TLS. It must never read past its input or
// max_bytes, and its answer must not depend on what follows a whole ClientHello, nor be
// anything but "incomplete" (or the same answer) for a prefix of one (a ClientHello arriving in
// tiny segments is decided by its SNI once, whatever the segmentation).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "hallpass/http/client_hello.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace hallpass;
    const std::string_view bytes(reinterpret_cast<const char*>(data), size);
    const ClientHello h = parse_client_hello(bytes, 4096);
    if (h.has_sni) {
        FUZZ_CHECK(h.status == HelloStatus::Complete);
        FUZZ_CHECK(!h.server_name.empty() && h.server_name.size() <= 255);
        for (char c : h.server_name) {
            FUZZ_CHECK(c > 0x20 && c < 0x7f && !(c >= 'A' && c <= 'Z'));
        }
    }
    if (h.status == HelloStatus::NotTls || h.status == HelloStatus::Malformed) {
        FUZZ_CHECK(!h.error.empty());
    }
    if (h.status == HelloStatus::Complete) {
        // Whatever comes after it changes nothing.
        std::string more(bytes);
        more += "\x17\x03\x03\x00\x05hello";
        const ClientHello again = parse_client_hello(more, 4096 + 64);
        FUZZ_CHECK(again.status == HelloStatus::Complete);
        FUZZ_CHECK(again.server_name == h.server_name && again.has_sni == h.has_sni);
        // A prefix is incomplete, or (when it holds the whole handshake message already, the
        // rest being padding of its record) the same answer.
        for (size_t n : {size_t{0}, size / 3, size / 2, size - 1}) {
            if (n >= size) continue;
            const ClientHello part = parse_client_hello(bytes.substr(0, n), 4096);
            FUZZ_CHECK(part.status == HelloStatus::Incomplete ||
                       (part.status == HelloStatus::Complete && part.server_name == h.server_name));
        }
    }
    return 0;
}
