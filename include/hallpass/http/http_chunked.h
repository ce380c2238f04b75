// Resumable decoder for the chunked transfer coding (RFC 9112 §7.1). It does not copy payload: it
// tells the caller how many bytes of the input are framing and how many are chunk data, so the
// connection can either pass the coded body through unchanged or strip the framing (for an
// HTTP/1.0 client). Pure: no I/O.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace hallpass {

class ChunkedDecoder {
public:
    enum class Status {
        NeedMore,  // the body is not finished: feed the rest of the input, or more bytes
        Done,      // the last chunk and the trailer section were consumed; stop feeding
        Error,     // malformed: bad size (1-16 hex digits), bad extension or trailer line,
                   // missing CRLF after data, over-long line
    };

    struct Step {
        Status status = Status::NeedMore;
        size_t consumed = 0;  // bytes of input used by this step (<= input size)
        size_t data = 0;      // of those, how many are chunk payload (at the end of the step)
    };

    // Feeds `input`. A step consumes either framing bytes (size line, CRLF after data, trailer)
    // or payload bytes, never both: when data > 0 then data == consumed and the bytes are payload.
    // Call repeatedly until all input is consumed, Done or Error. A partial framing line is not
    // consumed (consumed == 0, NeedMore): feed again with more bytes appended. Line ends are CRLF
    // or a bare LF, as in http_parser. Done's `consumed` ends right after the final empty line:
    // bytes after the body (a pipelined message) are never consumed.
    Step feed(std::string_view input);

    // Payload bytes still expected in the current chunk (0 when not inside chunk data). Lets the
    // caller move large payload runs without looking at them.
    uint64_t data_remaining() const { return data_remaining_; }
    // Tell the decoder that `n` (<= data_remaining()) payload bytes were moved without feed().
    void skip_data(uint64_t n);

    bool done() const { return state_ == State::Done; }
    bool failed() const { return state_ == State::Error; }

    static constexpr size_t kMaxLineBytes = 4096;  // size line with extensions, or trailer line

private:
    enum class State { Size, Data, DataCrlf, Trailer, Done, Error };
    State state_ = State::Size;
    uint64_t data_remaining_ = 0;
};

}  // namespace hallpass
