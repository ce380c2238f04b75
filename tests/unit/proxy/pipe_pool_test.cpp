// pipe_pool: bounded, reuses what comes back, closes what it does not keep.
#include "hallpass/proxy/pipe_pool.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <unistd.h>

#include <vector>

using namespace hallpass;

namespace {
bool is_open(int fd) { return ::fcntl(fd, F_GETFD) != -1; }
}  // namespace

TEST_CASE("pipe pool: at most max_pipes out, sized as asked, reused, extra ones closed") {
    PipePool pool(3, 256 * 1024, /*keep=*/1);
    std::vector<Pipe> out;
    for (int i = 0; i < 3; ++i) {
        auto p = pool.take();
        REQUIRE(p);
        CHECK(p->capacity >= 64 * 1024);  // 256 KiB unless the kernel caps it lower
        CHECK((::fcntl(p->read_fd, F_GETFL) & O_NONBLOCK) != 0);
        CHECK((::fcntl(p->write_fd, F_GETFD) & FD_CLOEXEC) != 0);
        out.push_back(*p);
    }
    CHECK(pool.in_use() == 3);
    CHECK_FALSE(pool.take());  // the cap

    pool.give(out[0]);  // kept
    pool.give(out[1]);  // beyond `keep`: closed
    CHECK(pool.in_use() == 1);
    CHECK(pool.kept() == 1);
    CHECK(is_open(out[0].read_fd));
    CHECK_FALSE(is_open(out[1].read_fd));
    auto again = pool.take();
    REQUIRE(again);
    CHECK(again->read_fd == out[0].read_fd);  // the kept one comes back first

    pool.discard(out[2]);  // may hold bytes: never reused
    CHECK_FALSE(is_open(out[2].write_fd));
    CHECK(pool.in_use() == 1);
    pool.give(*again);
}
