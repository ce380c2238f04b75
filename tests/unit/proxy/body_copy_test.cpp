// body_copy: the buffered body path over plain evbuffers. A Content-Length body stops at its
// length (the next message stays in the input), a chunked body is passed through or de-chunked
// and a malformed one is an error, a body until close never ends by itself, and nothing is moved
// while the sink holds high_water bytes (Paused), nor past high_water.
#include "hallpass/proxy/body_copy.h"

#include <doctest/doctest.h>
#include <event2/buffer.h>

#include <string>

#include "hallpass/base/event_handles.h"

using namespace hallpass;

namespace {

struct Bufs {
    EvbufferPtr in{evbuffer_new()};
    EvbufferPtr out{evbuffer_new()};
    void feed(const std::string& s) { evbuffer_add(in.get(), s.data(), s.size()); }
    static std::string take(evbuffer* b) {
        std::string s(evbuffer_get_length(b), '\0');
        evbuffer_remove(b, s.data(), s.size());
        return s;
    }
    std::string sent() { return take(out.get()); }
    std::string left() { return take(in.get()); }
};

constexpr size_t kHigh = 1 << 20;

}  // namespace

TEST_CASE("body_copy: a Content-Length body stops at its length; the next request stays") {
    Bufs b;
    BodyCursor body = BodyCursor::of(Framing{BodyKind::Length, 10});
    b.feed("01234");
    CHECK(copy_body(b.in.get(), b.out.get(), body, kHigh) == Pump::Step::NeedMore);
    CHECK(body.remaining == 5);
    b.feed("56789GET / HTTP/1.1\r\n");
    CHECK(copy_body(b.in.get(), b.out.get(), body, kHigh) == Pump::Step::Done);
    CHECK(b.sent() == "0123456789");
    CHECK(b.left() == "GET / HTTP/1.1\r\n");
    CHECK(copy_body(b.in.get(), b.out.get(), body, kHigh) == Pump::Step::Done);  // stays done
}

TEST_CASE("body_copy: a body without framing is done at once") {
    Bufs b;
    BodyCursor body = BodyCursor::of(Framing{BodyKind::None, 0});
    b.feed("next");
    CHECK(copy_body(b.in.get(), b.out.get(), body, kHigh) == Pump::Step::Done);
    CHECK(b.left() == "next");
}

TEST_CASE("body_copy: chunked passes through unchanged, split anywhere, up to its end") {
    const std::string coded = "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Sum: x\r\n\r\n";
    for (size_t cut = 0; cut <= coded.size(); ++cut) {
        CAPTURE(cut);
        Bufs b;
        BodyCursor body = BodyCursor::of(Framing{BodyKind::Chunked, 0});
        b.feed(coded.substr(0, cut));
        Pump::Step first = copy_body(b.in.get(), b.out.get(), body, kHigh);
        CHECK(first == (cut == coded.size() ? Pump::Step::Done : Pump::Step::NeedMore));
        b.feed(coded.substr(cut) + "NEXT");
        CHECK(copy_body(b.in.get(), b.out.get(), body, kHigh) == Pump::Step::Done);
        CHECK(b.sent() == coded);
        CHECK(b.left() == "NEXT");
    }
}

TEST_CASE("body_copy: de-chunked for an HTTP/1.0 client: only the payload") {
    Bufs b;
    BodyCursor body = BodyCursor::of(Framing{BodyKind::Chunked, 0}, true);
    CHECK(body.dechunk);
    b.feed("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
    CHECK(copy_body(b.in.get(), b.out.get(), body, kHigh) == Pump::Step::Done);
    CHECK(b.sent() == "hello world");
    // De-chunking applies to chunked bodies only.
    CHECK_FALSE(BodyCursor::of(Framing{BodyKind::Length, 3}, true).dechunk);
}

TEST_CASE("body_copy: a malformed chunked body is a SourceError") {
    Bufs b;
    BodyCursor body = BodyCursor::of(Framing{BodyKind::Chunked, 0});
    b.feed("5\r\nhelloXX\r\n");
    CHECK(copy_body(b.in.get(), b.out.get(), body, kHigh) == Pump::Step::SourceError);
    Bufs c;
    BodyCursor bad_size = BodyCursor::of(Framing{BodyKind::Chunked, 0});
    c.feed("zz\r\n");
    CHECK(copy_body(c.in.get(), c.out.get(), bad_size, kHigh) == Pump::Step::SourceError);
}

TEST_CASE("body_copy: a body until close moves everything and never ends by itself") {
    Bufs b;
    BodyCursor body = BodyCursor::of(Framing{BodyKind::UntilClose, 0});
    b.feed("all of it");
    CHECK(copy_body(b.in.get(), b.out.get(), body, kHigh) == Pump::Step::NeedMore);
    CHECK(b.sent() == "all of it");
}

TEST_CASE("body_copy: at high_water nothing more is moved (Paused), and never past it") {
    const size_t high = 1000;
    for (BodyKind kind : {BodyKind::Length, BodyKind::UntilClose, BodyKind::Chunked}) {
        CAPTURE(static_cast<int>(kind));
        Bufs b;
        BodyCursor body = BodyCursor::of(Framing{kind, 5000});
        if (kind == BodyKind::Chunked) {
            b.feed("1388\r\n");  // one chunk of 5000 bytes
        }
        b.feed(std::string(5000, 'x'));
        CHECK(copy_body(b.in.get(), b.out.get(), body, high) == Pump::Step::Paused);
        const size_t queued = evbuffer_get_length(b.out.get());
        CHECK(queued <= high);
        CHECK(queued >= high - 6);  // framing bytes aside, it filled up to high_water
        // Still full: nothing moves.
        CHECK(copy_body(b.in.get(), b.out.get(), body, high) == Pump::Step::Paused);
        CHECK(evbuffer_get_length(b.out.get()) == queued);
        // The sink drained: the rest goes, high_water at a time.
        size_t total = 0;
        Pump::Step s = Pump::Step::Paused;
        for (int i = 0; i < 20 && s == Pump::Step::Paused; ++i) {
            total += b.sent().size();
            s = copy_body(b.in.get(), b.out.get(), body, high);
            CHECK(evbuffer_get_length(b.out.get()) <= high);
        }
        total += b.sent().size();
        CHECK(s == (kind == BodyKind::Length ? Pump::Step::Done : Pump::Step::NeedMore));
        CHECK(total == (kind == BodyKind::Chunked ? 5006 : 5000));
    }
}
