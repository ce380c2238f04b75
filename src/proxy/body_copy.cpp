// The buffered body path: a Content-Length count or the chunked decoder decides how many of the
// buffered bytes belong to the body; evbuffer_remove_buffer moves them without copying.
#include "hallpass/proxy/body_copy.h"

#include <sys/ioctl.h>
#include <sys/uio.h>

#include <algorithm>
#include <string_view>

namespace hallpass {
namespace {

enum class Chunked { NeedMore, Done, Error };

// Moves chunked-coded bytes from `in` to `out` up to the end of the body, or until `out` holds
// `high_water`. With `dechunk` only the payload is moved and the framing dropped.
Chunked move_chunked(evbuffer* in, evbuffer* out, ChunkedDecoder& dec, bool dechunk,
                     size_t high_water, bool* full) {
    while (size_t len = evbuffer_get_length(in)) {
        const size_t queued = evbuffer_get_length(out);
        if (queued >= high_water) {
            *full = true;
            return Chunked::NeedMore;
        }
        if (uint64_t rem = dec.data_remaining()) {
            size_t n = static_cast<size_t>(std::min<uint64_t>({rem, len, high_water - queued}));
            evbuffer_remove_buffer(in, out, n);
            dec.skip_data(n);
            continue;
        }
        size_t n = std::min(len, ChunkedDecoder::kMaxLineBytes + 2);
        const unsigned char* p = evbuffer_pullup(in, static_cast<ev_ssize_t>(n));
        ChunkedDecoder::Step step = dec.feed(std::string_view(reinterpret_cast<const char*>(p), n));
        if (step.consumed > 0) {
            if (step.data > 0 || !dechunk) {
                evbuffer_remove_buffer(in, out, step.consumed);
            } else {
                evbuffer_drain(in, step.consumed);
            }
        }
        if (step.status == ChunkedDecoder::Status::Done) return Chunked::Done;
        if (step.status == ChunkedDecoder::Status::Error) return Chunked::Error;
        if (step.consumed == 0) return Chunked::NeedMore;
    }
    return Chunked::NeedMore;
}

}  // namespace

Pump::Step copy_body(evbuffer* in, evbuffer* out, BodyCursor& body, size_t high_water) {
    switch (body.kind) {
        case BodyKind::None:
            return Pump::Step::Done;
        case BodyKind::Length: {
            while (body.remaining > 0 && evbuffer_get_length(in) > 0) {
                const size_t queued = evbuffer_get_length(out);
                if (queued >= high_water) return Pump::Step::Paused;
                // Never more than high_water queued: the sink's share of memory stays bounded
                // however much the source's buffer was allowed to hold.
                size_t n = static_cast<size_t>(std::min<uint64_t>(
                    {body.remaining, evbuffer_get_length(in), high_water - queued}));
                evbuffer_remove_buffer(in, out, n);
                body.remaining -= n;
            }
            return body.remaining == 0 ? Pump::Step::Done : Pump::Step::NeedMore;
        }
        case BodyKind::Chunked: {
            if (body.chunked.done()) return Pump::Step::Done;
            bool full = false;
            Chunked s = move_chunked(in, out, body.chunked, body.dechunk, high_water, &full);
            if (s == Chunked::Error) return Pump::Step::SourceError;
            if (s == Chunked::Done) return Pump::Step::Done;
            return full ? Pump::Step::Paused : Pump::Step::NeedMore;
        }
        case BodyKind::UntilClose: {
            while (evbuffer_get_length(in) > 0) {
                const size_t queued = evbuffer_get_length(out);
                if (queued >= high_water) return Pump::Step::Paused;
                size_t n = std::min(evbuffer_get_length(in), high_water - queued);
                evbuffer_remove_buffer(in, out, n);
            }
            return Pump::Step::NeedMore;
        }
    }
    return Pump::Step::SourceError;
}

size_t read_more(bufferevent* bev, size_t room) {
    constexpr size_t kMaxStep = 256 * 1024;
    constexpr size_t kLibeventRead = 4096;  // libevent 2.1's EVBUFFER_MAX_READ
    evbuffer* in = bufferevent_get_input(bev);
    // Only when libevent's last read was capped is more likely waiting; and reserve only what
    // the socket holds: an idle tunnel must not keep an empty 256 KiB chain per side.
    if (evbuffer_get_length(in) < kLibeventRead || room < 16 * 1024) return 0;
    int pending = 0;
    if (ioctl(bufferevent_getfd(bev), FIONREAD, &pending) != 0 || pending < 16 * 1024) return 0;
    size_t want = std::min({room, kMaxStep, static_cast<size_t>(pending)});
    // bufferevent_socket keeps the end of its input frozen between its own reads.
    evbuffer_unfreeze(in, 0);
    evbuffer_iovec vec[2];
    int n = evbuffer_reserve_space(in, static_cast<ev_ssize_t>(want), vec, 2);
    size_t got = 0;
    if (n > 0) {
        iovec iov[2];
        for (int i = 0; i < n; ++i) iov[i] = {vec[i].iov_base, vec[i].iov_len};
        ssize_t r = ::readv(bufferevent_getfd(bev), iov, n);
        if (r > 0) {
            got = static_cast<size_t>(r);
            size_t left = got;
            int used = 0;
            for (; used < n && left > 0; ++used) {
                vec[used].iov_len = std::min(vec[used].iov_len, left);
                left -= vec[used].iov_len;
            }
            evbuffer_commit_space(in, vec, used);
        } else {
            evbuffer_commit_space(in, vec, 0);
        }
    }
    evbuffer_freeze(in, 0);
    return got;
}

}  // namespace hallpass
