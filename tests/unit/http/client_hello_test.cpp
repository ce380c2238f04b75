#include "hallpass/http/client_hello.h"

#include <doctest/doctest.h>

#include <string>

using namespace hallpass;

namespace {

std::string unhex(std::string_view hex) {
    std::string out;
    for (size_t i = 0; i + 1 < hex.size(); i += 2) {
        out += static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16));
    }
    return out;
}

// What `openssl s_client -servername www.example.com` (OpenSSL 3.0) sent first.
const std::string kOpenSsl = unhex(
    "160301013c010001380303ebd20a1c31170fb77ebba7eb14540ecc295ecb8ea927712b0c2f9f8da684d5bc20d5466e"
    "83"
    "e799738876b421bb0276617b11e8ee611a8bbee1b846ecc4136d96ed003e130213031301c02cc030009fcca9cca8cc"
    "aa"
    "c02bc02f009ec024c028006bc023c0270067c00ac0140039c009c0130033009d009c003d003c0035002f00ff010000"
    "b1"
    "00000014001200000f7777772e6578616d706c652e636f6d000b000403000102000a00160014001d0017001e001900"
    "18"
    "01000101010201030104002300000016000000170000000d002a0028040305030603080708080809080a080b080408"
    "05"
    "0806040105010601030303010302040205020602002b0009080304030303020301002d00020101003300260024001d"
    "00"
    "20fac0f7513394dfb6227939dffe7d49006a55837af94a34bc4d029d8155c8af6e");

uint16_t be16(std::string_view b, size_t at) {
    return static_cast<uint16_t>((static_cast<unsigned char>(b[at]) << 8) |
                                 static_cast<unsigned char>(b[at + 1]));
}

}  // namespace

TEST_CASE("client_hello: a real ClientHello names its server") {
    ClientHello h = parse_client_hello(kOpenSsl);
    CHECK(h.status == HelloStatus::Complete);
    CHECK(h.has_sni);
    CHECK(h.server_name == "www.example.com");
    CHECK_FALSE(h.ech);
}

TEST_CASE("client_hello: every prefix is incomplete, never wrong") {
    for (size_t n = 0; n < kOpenSsl.size(); ++n) {
        CAPTURE(n);
        CHECK(parse_client_hello(std::string_view(kOpenSsl).substr(0, n)).status ==
              HelloStatus::Incomplete);
    }
}

TEST_CASE("client_hello: a handshake split across two records is put together") {
    // The same message in two records: the first 40 bytes of it, then the rest.
    const std::string message = kOpenSsl.substr(5);
    REQUIRE(be16(kOpenSsl, 3) == message.size());
    auto record = [](std::string_view part) {
        std::string r = "\x16\x03\x01";
        r += static_cast<char>(part.size() >> 8);
        r += static_cast<char>(part.size() & 0xff);
        return r + std::string(part);
    };
    const std::string split = record(message.substr(0, 40)) + record(message.substr(40));
    ClientHello h = parse_client_hello(split);
    CHECK(h.status == HelloStatus::Complete);
    CHECK(h.server_name == "www.example.com");
    CHECK(parse_client_hello(split.substr(0, 50)).status == HelloStatus::Incomplete);
}

TEST_CASE("client_hello: not TLS, malformed, too large, no SNI") {
    CHECK(parse_client_hello("GET / HTTP/1.1\r\n").status == HelloStatus::NotTls);
    CHECK(parse_client_hello("\x16\x09").status == HelloStatus::NotTls);
    CHECK(parse_client_hello(std::string("\x00", 1)).status == HelloStatus::NotTls);
    // A ServerHello (type 2) where a ClientHello should be.
    std::string server_hello = kOpenSsl;
    server_hello[5] = 2;
    CHECK(parse_client_hello(server_hello).status == HelloStatus::Malformed);
    // An alert record after the first record of a split handshake.
    std::string bad = kOpenSsl.substr(0, 5 + 10);
    bad[3] = 0;
    bad[4] = 10;
    bad += std::string("\x15\x03\x01\x00\x02\x02\x28", 7);
    CHECK(parse_client_hello(bad).status == HelloStatus::Malformed);
    // A handshake that claims more than the limit.
    CHECK(parse_client_hello(kOpenSsl, 100).status == HelloStatus::TooLarge);
    // The server_name extension's name length past its list: malformed, not a crash.
    std::string broken = kOpenSsl;
    const size_t sni = broken.find("www.example.com");
    REQUIRE(sni != std::string::npos);
    broken[sni - 1] = static_cast<char>(0x7f);
    CHECK(parse_client_hello(broken).status == HelloStatus::Malformed);
    // A name with a space in it.
    std::string spaced = kOpenSsl;
    spaced[sni + 3] = ' ';
    CHECK(parse_client_hello(spaced).status == HelloStatus::Malformed);
}
