// Fuzz target: the resumable chunked decoder fed the same body in pieces chosen by the input. The
// decoded payload, the end of the body and the verdict must not depend on how the bytes arrived,
// or a peer could make the proxy and the next hop disagree by timing its writes.
//
// Input: 1 flags byte, 8 piece-size bytes, then the coded body. Pieces take the sizes in turn
// (0 means "the rest"); flag bit 0 moves payload with skip_data() as the connection does, bit 1
// caps each feed at kMaxLineBytes + 2 bytes as the connection's pullup does.
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "hallpass/http/http_chunked.h"

namespace hallpass::fuzz {
namespace {

constexpr size_t kHeaderBytes = 9;

struct Outcome {
    ChunkedDecoder::Status status = ChunkedDecoder::Status::NeedMore;
    size_t consumed = 0;  // bytes of the body used in all
    std::string payload;
};

// Feeds everything in `pending` that the decoder will take now; returns how much it took.
size_t drain(ChunkedDecoder& dec, std::string_view pending, bool use_skip, bool cap_window,
             Outcome& out) {
    size_t used = 0;
    while (used < pending.size() && !dec.done() && !dec.failed()) {
        const std::string_view rest = pending.substr(used);
        if (use_skip && dec.data_remaining() > 0) {
            const size_t n =
                static_cast<size_t>(std::min<uint64_t>(dec.data_remaining(), rest.size()));
            out.payload.append(rest.substr(0, n));
            dec.skip_data(n);
            used += n;
            continue;
        }
        const std::string_view window =
            cap_window ? rest.substr(0, ChunkedDecoder::kMaxLineBytes + 2) : rest;
        const uint64_t remaining_before = dec.data_remaining();
        const ChunkedDecoder::Step step = dec.feed(window);
        FUZZ_CHECK(step.consumed <= window.size());
        FUZZ_CHECK(step.data <= step.consumed);
        FUZZ_CHECK(step.data == 0 || step.data == step.consumed);
        FUZZ_CHECK(step.data <= remaining_before);
        out.payload.append(window.substr(0, step.data));
        used += step.consumed;
        out.status = step.status;
        if (step.status == ChunkedDecoder::Status::Error) {
            FUZZ_CHECK(dec.failed());
            break;
        }
        if (step.status == ChunkedDecoder::Status::Done) {
            FUZZ_CHECK(dec.done());
            FUZZ_CHECK(used >= 1 && pending[used - 1] == '\n');  // the trailer's empty line
            break;
        }
        if (step.consumed == 0) break;  // a partial framing line: wait for more bytes
    }
    return used;
}

Outcome decode(std::string_view body, const std::array<uint8_t, 8>& pieces, bool split,
               bool use_skip, bool cap_window) {
    ChunkedDecoder dec;
    Outcome out;
    std::string pending;
    size_t arrived = 0;
    for (size_t i = 0; arrived < body.size() && !dec.done() && !dec.failed(); ++i) {
        const size_t piece = split ? pieces[i % pieces.size()] : 0;
        const size_t n =
            piece == 0 ? body.size() - arrived : std::min(piece, body.size() - arrived);
        pending.append(body.substr(arrived, n));
        arrived += n;
        const size_t used = drain(dec, pending, use_skip, cap_window, out);
        pending.erase(0, used);
        out.consumed += used;
    }
    if (dec.done()) out.status = ChunkedDecoder::Status::Done;
    if (dec.failed()) out.status = ChunkedDecoder::Status::Error;
    FUZZ_CHECK(out.consumed <= body.size());
    return out;
}

}  // namespace
}  // namespace hallpass::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace hallpass::fuzz;
    if (size < kHeaderBytes) return 0;
    const uint8_t flags = data[0];
    std::array<uint8_t, 8> pieces{};
    std::copy(data + 1, data + kHeaderBytes, pieces.begin());
    const std::string_view body(reinterpret_cast<const char*>(data) + kHeaderBytes,
                                size - kHeaderBytes);

    // The reference: the whole body at once, plain feed().
    const Outcome whole = decode(body, pieces, false, false, false);
    const Outcome pieced = decode(body, pieces, true, flags & 1, flags & 2);
    FUZZ_CHECK(pieced.status == whole.status);
    FUZZ_CHECK(pieced.payload == whole.payload);
    if (whole.status == hallpass::ChunkedDecoder::Status::Done) {
        FUZZ_CHECK(pieced.consumed == whole.consumed);
    }
    return 0;
}
