// Pipes for splice(2), per worker and bounded: a relay direction takes one when it has bytes to
// move and gives it back as soon as the pipe is empty again, so an idle tunnel holds none. When
// the pool is exhausted (or the kernel refuses a pipe) the caller copies instead.
#pragma once

#include <cstddef>
#include <optional>
#include <vector>

namespace hallpass {

// Pipes per worker (two descriptors each): enough for the tunnels that move bytes at the same
// moment; an idle tunnel holds none, and beyond this they copy.
constexpr size_t kMaxPipesPerWorker = 64;

struct Pipe {
    int read_fd = -1;
    int write_fd = -1;
    size_t capacity = 0;  // bytes the pipe holds (F_GETPIPE_SZ)
};

class PipePool {
  public:
    // At most `max_pipes` pipes at once (in use or kept), each sized to `capacity` bytes when the
    // kernel allows (F_SETPIPE_SZ; otherwise its default); up to `keep` empty ones are kept
    // between uses so that a busy tunnel does not create a pipe per burst.
    PipePool(size_t max_pipes, size_t capacity, size_t keep = 8);
    ~PipePool();  // closes the kept pipes; every taken pipe must have come back
    PipePool(const PipePool&) = delete;
    PipePool& operator=(const PipePool&) = delete;

    // A pipe, or nullopt when `max_pipes` are out or pipe2 fails (out of descriptors).
    std::optional<Pipe> take();
    // An empty pipe back to the pool.
    void give(Pipe pipe);
    // A pipe that may still hold bytes (its direction ended in an error): closed.
    void discard(Pipe pipe);

    size_t in_use() const { return in_use_; }
    size_t kept() const { return free_.size(); }

  private:
    size_t max_pipes_;
    size_t capacity_;
    size_t keep_;
    size_t in_use_ = 0;
    std::vector<Pipe> free_;
};

}  // namespace hallpass
