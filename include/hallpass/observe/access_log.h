// The access log: one line per finished Transaction (HTTP exchange or CONNECT tunnel), in Squid's
// native format or as JSON lines. Workers format each line into a buffer of their own; a writer
// thread does all file I/O, so no event loop ever waits for a disk. SIGUSR1 (server) reopens the
// file for logrotate. Sits at the end of the request path, as a TransactionSink.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "hallpass/base/error.h"
#include "hallpass/base/json_text.h"  // append_json_string (tests use it through this header)
#include "hallpass/config/config.h"
#include "hallpass/observe/transaction.h"

namespace hallpass {

// Squid native: `time.ms elapsed client code/status bytes method URL user hierarchy/peer type`,
// ending with '\n'. `time` is when the transaction ended (start + elapsed), as Squid logs it.
// Fields never contain a space or a control byte (such bytes become %XX); empty fields are "-".
std::string format_squid(const Transaction& txn);
void append_squid(std::string& out, const Transaction& txn);
// The Squid result code for `txn`: TCP_MISS, TCP_MISS_ABORTED, TCP_TUNNEL, TCP_DENIED, NONE_NONE.
const char* squid_code(const Transaction& txn);

// One JSON object and '\n'. Strings are escaped (quotes, backslash, control bytes; bytes that are
// not valid UTF-8 become \u00XX, i.e. read as Latin-1); unknown values are null.
std::string format_json(const Transaction& txn);
void append_json(std::string& out, const Transaction& txn);

class AccessLog : public TransactionSink {
  public:
    struct Options {
        std::string path;  // a file (created 0640, appended to), or "-" for stdout
        AccessLogConfig::Format format = AccessLogConfig::Format::Squid;
        int workers = 1;                 // callers of record() use indexes 0..workers-1
        size_t flush_bytes = 32 * 1024;  // a worker's buffer goes to the writer at this size
        int flush_interval_ms = 200;     // ... or at the latest after this long
        size_t max_queued_bytes = 64
                                  << 20;  // full buffers waiting for the writer beyond this
                                          // are dropped (and counted): the disk is not keeping up
    };

    // Opens the file now (so a bad path fails at start-up, with the reason) and starts the writer
    // thread. Main thread.
    static Result<std::unique_ptr<AccessLog>> open(Options options);
    ~AccessLog() override;  // stop()s if needed
    AccessLog(const AccessLog&) = delete;
    AccessLog& operator=(const AccessLog&) = delete;

    // Formats the line into worker `worker`'s buffer (a lock only the writer's periodic sweep
    // ever contends for); never does I/O. Any thread; after stop() the line is dropped and counted.
    void record(int worker, const Transaction& txn) override;
    // The same with a line already formatted (must end with '\n'). For tests.
    void record_line(int worker, std::string_view line);

    // Thread-safe, does not wait: everything recorded before the call is written to the current
    // file, then the writer closes it and opens `path` again (logrotate renamed the old one). If
    // the new open fails, the old file stays in use and the error is logged.
    void reopen();
    // Writes every buffered line, closes the file and joins the writer. Call once workers have
    // stopped. Idempotent.
    void stop();

    // Lines lost: the queue for the writer was over max_queued_bytes, a write failed (disk full),
    // or record() came after stop().
    uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }
    uint64_t written() const { return written_.load(std::memory_order_relaxed); }
    const std::string& path() const { return options_.path; }

  private:
    // One worker's pending lines. Padded so two workers never share a cache line.
    struct alignas(64) Slot {
        std::mutex mu;
        std::string buf;
        size_t lines = 0;
    };
    // A unit of work for the writer: lines to write, or a reopen/stop marker.
    struct Chunk {
        enum class Kind { Lines, Reopen, Stop } kind = Kind::Lines;
        std::string data;
        size_t lines = 0;
    };

    explicit AccessLog(Options options, int fd);
    template <class Format>
    void append(int worker, Format&& format);
    // Moves `slot`'s lines to the queue; slot.mu held by the caller.
    void hand_over(Slot& slot);
    void sweep_all();
    void run_writer();
    void write_chunk(const Chunk& chunk);
    void reopen_file();
    void report_write_error(int err, size_t lines_lost);

    Options options_;
    std::vector<std::unique_ptr<Slot>> slots_;

    std::mutex queue_mu_;  // order: a slot's mu, then queue_mu_
    std::condition_variable queue_cv_;
    std::deque<Chunk> queue_;
    size_t queued_bytes_ = 0;

    int fd_ = -1;  // writer thread only (after open())
    int64_t last_error_log_ms_ = 0;
    std::atomic<uint64_t> dropped_{0};
    std::atomic<uint64_t> written_{0};
    std::atomic<bool> stopped_{false};
    std::thread writer_;
};

}  // namespace hallpass
