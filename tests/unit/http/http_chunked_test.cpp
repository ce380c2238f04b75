// http_chunked: the resumable chunked decoder (RFC 9112 §7.1), fed the way a connection feeds it.
#include "hallpass/http/http_chunked.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

using namespace hallpass;
using Status = ChunkedDecoder::Status;

namespace {

struct Decoded {
    Status status = Status::NeedMore;
    std::string payload;
    size_t consumed = 0;  // total bytes of input the decoder consumed
    bool done = false;
    bool failed = false;
};

// Feeds `input` in pieces (their sizes in `pieces`, the rest at the end) the way a connection
// does: bytes a step did not consume stay buffered and are fed again with the next piece appended.
Decoded decode(std::string_view input, const std::vector<size_t>& pieces = {}) {
    ChunkedDecoder decoder;
    Decoded out;
    std::string pending;
    size_t offered = 0;
    size_t next_piece = 0;
    while (true) {
        while (!pending.empty()) {
            const ChunkedDecoder::Step step = decoder.feed(pending);
            REQUIRE(step.consumed <= pending.size());
            if (step.data > 0) {
                REQUIRE(step.data == step.consumed);  // payload and framing never share a step
                out.payload.append(pending, 0, step.data);
            }
            pending.erase(0, step.consumed);
            out.consumed += step.consumed;
            if (step.status != Status::NeedMore) {
                out.status = step.status;
                out.done = decoder.done();
                out.failed = decoder.failed();
                return out;
            }
            if (step.consumed == 0) break;  // a partial framing line: wait for more bytes
        }
        if (offered == input.size()) {
            out.done = decoder.done();
            out.failed = decoder.failed();
            return out;
        }
        const size_t rest = input.size() - offered;
        const size_t n = next_piece < pieces.size() ? std::min(pieces[next_piece++], rest) : rest;
        pending.append(input.substr(offered, n));
        offered += n;
    }
}

Decoded decode_bytewise(std::string_view input) {
    return decode(input, std::vector<size_t>(input.size(), 1));
}

const std::string kBody =
    "5\r\nhello\r\n"
    "1;ext=1\r\n,\r\n"
    "a ; name = \"quoted \\\" value\" ; flag\r\n world!!!!\r\n"
    "0\r\n"
    "X-Trailer: yes\r\n"
    "\r\n";
const std::string kPayload = "hello, world!!!!";

}  // namespace

TEST_CASE("http_chunked: decodes a body in one feed") {
    const Decoded d = decode(kBody);
    CHECK(d.status == Status::Done);
    CHECK(d.done);
    CHECK_FALSE(d.failed);
    CHECK(d.payload == kPayload);
    CHECK(d.consumed == kBody.size());
}

TEST_CASE("http_chunked: gives the same result fed one byte at a time") {
    const Decoded d = decode_bytewise(kBody);
    CHECK(d.status == Status::Done);
    CHECK(d.payload == kPayload);
    CHECK(d.consumed == kBody.size());
}

TEST_CASE("http_chunked: gives the same result split at every byte boundary") {
    for (size_t cut = 0; cut <= kBody.size(); ++cut) {
        CAPTURE(cut);
        const Decoded d = decode(kBody, {cut});
        CHECK(d.status == Status::Done);
        CHECK(d.payload == kPayload);
        CHECK(d.consumed == kBody.size());
    }
    for (size_t piece = 2; piece < 9; ++piece) {
        CAPTURE(piece);
        const Decoded d = decode(kBody, std::vector<size_t>(kBody.size(), piece));
        CHECK(d.payload == kPayload);
        CHECK(d.consumed == kBody.size());
    }
}

TEST_CASE("http_chunked: leaves pipelined bytes after the body untouched") {
    const std::string next = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    SUBCASE("in one feed") {
        ChunkedDecoder decoder;
        const std::string input = "3\r\nabc\r\n0\r\n\r\n" + next;
        ChunkedDecoder::Step step = decoder.feed(input);
        CHECK(step.status == Status::NeedMore);
        CHECK(step.consumed == 3);
        CHECK(step.data == 0);
        CHECK(decoder.data_remaining() == 3);
        step = decoder.feed(std::string_view(input).substr(3));
        CHECK(step.status == Status::NeedMore);
        CHECK(step.consumed == 3);
        CHECK(step.data == 3);
        step = decoder.feed(std::string_view(input).substr(6));
        CHECK(step.status == Status::Done);
        CHECK(step.consumed == 7);  // "\r\n0\r\n\r\n" and not a byte more
        CHECK(step.data == 0);
        CHECK(decoder.done());
        // Once done the decoder consumes nothing.
        step = decoder.feed(next);
        CHECK(step.status == Status::Done);
        CHECK(step.consumed == 0);
    }
    SUBCASE("byte by byte, with trailers") {
        const std::string body = "2\r\nhi\r\n0\r\nA: b\r\n\r\n";
        const Decoded d = decode_bytewise(body + next);
        CHECK(d.status == Status::Done);
        CHECK(d.payload == "hi");
        CHECK(d.consumed == body.size());
    }
}

TEST_CASE("http_chunked: rejects a bare LF anywhere in the framing (it is forwarded as it came)") {
    const char* rows[] = {"5\nhello\r\n0\r\n\r\n", "5\r\nhello\n0\r\n\r\n", "5\r\nhello\r\n0\n\r\n",
                          "0\r\nA: b\n\r\n", "0\r\n\n"};
    for (const char* row : rows) {
        SUBCASE(row) { CHECK(decode(row).status == Status::Error); }
    }
}

TEST_CASE("http_chunked: consumes trailer fields up to the empty line") {
    const std::string body = "0\r\nExpires: never\r\nX-Sum:\t1 2\r\nEmpty:\r\n\r\n";
    const Decoded d = decode(body + "junk");
    CHECK(d.status == Status::Done);
    CHECK(d.payload.empty());
    CHECK(d.consumed == body.size());
}

TEST_CASE("http_chunked: reads 1 to 16 hex digits of size, in any case") {
    struct Row {
        const char* name;
        std::string line;
        uint64_t size;
    };
    const std::vector<Row> rows = {
        {"one digit", "1\r\n", 1},
        {"upper case", "AbC\r\n", 0xabc},
        {"16 digits with leading zeros", "0000000000000005\r\n", 5},
        {"largest", "ffffffffffffffff\r\n", 0xffffffffffffffffull},
        {"extension", "10;a=b\r\n", 16},
    };
    for (const Row& row : rows) {
        SUBCASE(row.name) {
            ChunkedDecoder decoder;
            const ChunkedDecoder::Step step = decoder.feed(row.line + "xyz");
            CHECK(step.status == Status::NeedMore);
            CHECK(step.consumed == row.line.size());
            CHECK(step.data == 0);
            CHECK(decoder.data_remaining() == row.size);
        }
    }
}

TEST_CASE("http_chunked: accepts chunk extensions") {
    const std::vector<std::string> lines = {
        "3;a\r\n",           "3;a=b\r\n",       "3 ;a=b\r\n",
        "3\t; a = b ;c\r\n", "3;a=\"x y\"\r\n", "3;a=\"\\\"\\\\\"\r\n",
        "3;a=b;c=d\r\n",     "3;a=\"\"\r\n",
    };
    for (const std::string& line : lines) {
        SUBCASE(line.c_str()) {
            const Decoded d = decode(line + "abc\r\n0;last=1\r\n\r\n");
            CHECK(d.status == Status::Done);
            CHECK(d.payload == "abc");
        }
    }
}

TEST_CASE("http_chunked: rejects malformed framing") {
    struct Row {
        const char* name;
        std::string bytes;
    };
    const std::vector<Row> rows = {
        {"empty size line", "\r\n"},
        {"not hex", "g\r\n"},
        {"sign", "+5\r\nhello\r\n0\r\n\r\n"},
        {"negative", "-5\r\n"},
        {"0x prefix", "0x5\r\n"},
        {"17 digits", "00000000000000005\r\n"},
        {"17 digits, overflowing", "10000000000000000\r\n"},
        {"space after size", "5 \r\nhello\r\n0\r\n\r\n"},
        {"space after extension", "5;a=b \r\nhello\r\n0\r\n\r\n"},
        {"space after extension name", "5;a \r\n"},
        {"space before size", " 5\r\n"},
        {"empty extension", "5;\r\n"},
        {"extension without name", "5;=x\r\n"},
        {"extension without value", "5;a=\r\n"},
        {"unterminated quote", "5;a=\"x\r\n"},
        {"control in extension", "5;a=b\x01\r\n"},
        {"NUL in size line", std::string("5\0\r\n", 4)},
        {"bare CR in size line", "5\rx\r\n"},
        {"missing CRLF after data", "5\r\nhelloX\r\n0\r\n\r\n"},
        {"CR then junk after data", "5\r\nhello\rX0\r\n\r\n"},
        {"too much data", "5\r\nhello!\r\n0\r\n\r\n"},
        {"trailer obs-fold", "0\r\nA: b\r\n c\r\n\r\n"},
        {"trailer whitespace before colon", "0\r\nA : b\r\n\r\n"},
        {"trailer without colon", "0\r\nfoo\r\n\r\n"},
        {"trailer empty name", "0\r\n: b\r\n\r\n"},
        {"control in trailer", "0\r\nA: b\x7f\r\n\r\n"},
    };
    for (const Row& row : rows) {
        SUBCASE(row.name) {
            const Decoded whole = decode(row.bytes);
            CHECK(whole.status == Status::Error);
            CHECK(whole.failed);
            const Decoded bytewise = decode_bytewise(row.bytes);
            CHECK(bytewise.status == Status::Error);
        }
    }
}

TEST_CASE("http_chunked: reports a missing CRLF after data as soon as the byte arrives") {
    ChunkedDecoder decoder;
    CHECK(decoder.feed("2\r\n").consumed == 3);
    CHECK(decoder.feed("ab").data == 2);
    CHECK(decoder.feed("\r").consumed == 0);  // may still be CRLF
    const ChunkedDecoder::Step step = decoder.feed("X");
    CHECK(step.status == Status::Error);
    CHECK(decoder.failed());
    CHECK(decoder.feed("\r\n0\r\n\r\n").status == Status::Error);
}

TEST_CASE("http_chunked: limits framing lines to kMaxLineBytes") {
    constexpr size_t kMax = ChunkedDecoder::kMaxLineBytes;
    const auto size_line = [](size_t len) { return "1;" + std::string(len - 2, 'e'); };

    SUBCASE("a size line of exactly the limit is accepted") {
        const Decoded d = decode(size_line(kMax) + "\r\nx\r\n0\r\n\r\n");
        CHECK(d.status == Status::Done);
        CHECK(d.payload == "x");
    }
    SUBCASE("one byte more is an error") {
        CHECK(decode(size_line(kMax + 1) + "\r\nx\r\n0\r\n\r\n").status == Status::Error);
    }
    SUBCASE("detected without waiting for the line end") {
        ChunkedDecoder decoder;
        const std::string line = size_line(kMax + 10);
        CHECK(decoder.feed(line.substr(0, kMax)).status == Status::NeedMore);
        CHECK(decoder.feed(line.substr(0, kMax) + "\r").status == Status::NeedMore);
        CHECK(decoder.feed(line.substr(0, kMax + 1)).status == Status::Error);
    }
    SUBCASE("trailer lines too") {
        const std::string ok = "0\r\nX: " + std::string(kMax - 3, 'v') + "\r\n\r\n";
        const std::string long_line = "0\r\nX: " + std::string(kMax - 2, 'v') + "\r\n\r\n";
        CHECK(decode(ok).status == Status::Done);
        CHECK(decode(long_line).status == Status::Error);
    }
}

TEST_CASE("http_chunked: a partial framing line is not consumed") {
    ChunkedDecoder decoder;
    ChunkedDecoder::Step step = decoder.feed("1a");
    CHECK(step.status == Status::NeedMore);
    CHECK(step.consumed == 0);
    step = decoder.feed("1a;x=\"y\"\r");
    CHECK(step.consumed == 0);
    step = decoder.feed("1a;x=\"y\"\r\n");
    CHECK(step.consumed == 10);
    CHECK(decoder.data_remaining() == 26);
}

TEST_CASE("http_chunked: skip_data moves payload without feeding it") {
    ChunkedDecoder decoder;
    CHECK(decoder.feed("a\r\n").consumed == 3);
    CHECK(decoder.data_remaining() == 10);
    decoder.skip_data(0);
    CHECK(decoder.data_remaining() == 10);
    decoder.skip_data(4);
    CHECK(decoder.data_remaining() == 6);
    ChunkedDecoder::Step step = decoder.feed("123");
    CHECK(step.data == 3);
    CHECK(decoder.data_remaining() == 3);
    decoder.skip_data(3);
    CHECK(decoder.data_remaining() == 0);
    step = decoder.feed("\r\n0\r\n\r\nrest");
    CHECK(step.status == Status::Done);
    CHECK(step.consumed == 7);
}

TEST_CASE("http_chunked: empty input needs more") {
    ChunkedDecoder decoder;
    const ChunkedDecoder::Step step = decoder.feed("");
    CHECK(step.status == Status::NeedMore);
    CHECK(step.consumed == 0);
    CHECK_FALSE(decoder.done());
    CHECK_FALSE(decoder.failed());
}

TEST_CASE("http_chunked: a large chunk is handed over as the bytes arrive") {
    const std::string data(100000, 'z');
    const std::string body = "186a0\r\n" + data + "\r\n0\r\n\r\n";
    const Decoded d = decode(body, std::vector<size_t>(20, 4093));
    CHECK(d.status == Status::Done);
    CHECK(d.payload == data);
    CHECK(d.consumed == body.size());
}

TEST_CASE("http_chunked: framing and routing fields in the trailer section are refused") {
    for (const char* field : {"Content-Length: 5", "transfer-encoding: chunked", "HOST: x",
                              "Connection: close", "TE: trailers", "Trailer: X", "Upgrade: h2c"}) {
        SUBCASE(field) {
            CHECK(decode(std::string("0\r\n") + field + "\r\n\r\n").status == Status::Error);
        }
    }
    CHECK(decode("0\r\nX-Checksum: 1\r\n\r\n").status == Status::Done);
}
