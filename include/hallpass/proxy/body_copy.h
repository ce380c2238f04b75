// A message body moved through a connection's buffers rather than socket to socket by a Pump:
// chunked bodies (checked as they pass, and de-chunked for an HTTP/1.0 client) and bodies too
// small to be worth a Pump. Bytes go from the source's input buffer to the sink's output buffer
// by the body's framing, never past its end (what follows is the next message), and never while
// the sink already holds `high_water` bytes. Speaks the Pump's vocabulary: NeedMore, Paused,
// Done, or SourceError for a malformed chunked body.
#pragma once

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include <cstddef>
#include <cstdint>

#include "hallpass/http/http_chunked.h"
#include "hallpass/http/http_parser.h"
#include "hallpass/proxy/pump.h"

namespace hallpass {

// How far a body has come.
struct BodyCursor {
    BodyKind kind = BodyKind::None;
    uint64_t remaining = 0;  // Length: bytes still to come
    ChunkedDecoder chunked;  // Chunked: where the decoder is
    bool dechunk = false;    // Chunked: pass only the payload (an HTTP/1.0 client)

    static BodyCursor of(const Framing& framing, bool dechunk = false) {
        BodyCursor c;
        c.kind = framing.kind;
        c.remaining = framing.kind == BodyKind::Length ? framing.length : 0;
        c.dechunk = framing.kind == BodyKind::Chunked && dechunk;
        return c;
    }
};

// Moves what `in` holds of the body into `out`. Done: the body ended (a None body at once;
// UntilClose never: its end is the source's EOF). Paused: `out` holds high_water bytes or more
// and the body has not ended; call again once it drained. NeedMore: `in` has nothing more of it.
Pump::Step copy_body(evbuffer* in, evbuffer* out, BodyCursor& body, size_t high_water);

// Reads up to `room` more bytes from `bev`'s socket into its input buffer, with one readv.
// libevent 2.1 reads at most 4 KiB per read callback, which makes bulk transfers cost a syscall
// round (ioctl, readv, epoll) per 4 KiB; calling this from the read callback moves bulk data in
// large steps. EOF and errors are left in the socket for libevent's next read to report.
// Returns the bytes read.
size_t read_more(bufferevent* bev, size_t room);

}  // namespace hallpass
