// pipe2(O_NONBLOCK | O_CLOEXEC), resized with F_SETPIPE_SZ; the size the kernel actually gave is
// what the relay counts on (it never puts more bytes in a pipe than the pipe holds).
#include "hallpass/proxy/pipe_pool.h"

#include <fcntl.h>
#include <unistd.h>

namespace hallpass {
namespace {

void close_pipe(const Pipe& p) {
    ::close(p.read_fd);
    ::close(p.write_fd);
}

}  // namespace

PipePool::PipePool(size_t max_pipes, size_t capacity, size_t keep)
    : max_pipes_(max_pipes), capacity_(capacity), keep_(keep) {}

PipePool::~PipePool() {
    for (const Pipe& p : free_) close_pipe(p);
}

std::optional<Pipe> PipePool::take() {
    if (!free_.empty()) {
        Pipe p = free_.back();
        free_.pop_back();
        ++in_use_;
        return p;
    }
    if (in_use_ >= max_pipes_) return std::nullopt;
    int fds[2];
    if (::pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) return std::nullopt;
    Pipe p{fds[0], fds[1], 0};
    if (capacity_ > 0) (void)::fcntl(p.write_fd, F_SETPIPE_SZ, static_cast<int>(capacity_));
    int size = ::fcntl(p.write_fd, F_GETPIPE_SZ);
    if (size <= 0) {
        close_pipe(p);
        return std::nullopt;
    }
    p.capacity = static_cast<size_t>(size);
    ++in_use_;
    return p;
}

void PipePool::give(Pipe pipe) {
    --in_use_;
    if (free_.size() < keep_) {
        free_.push_back(pipe);
    } else {
        close_pipe(pipe);
    }
}

void PipePool::discard(Pipe pipe) {
    --in_use_;
    close_pipe(pipe);
}

}  // namespace hallpass
