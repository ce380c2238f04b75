// The access log: formatting (Squid native, JSON lines) on the worker that finished the
// transaction, into that worker's buffer; full buffers, and every buffer at least every
// flush_interval_ms, go to one writer thread that owns the file descriptor and does every
// write(2), reopen and close. Workers never wait for the disk; a line is never split.
#include "hallpass/observe/access_log.h"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cinttypes>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <ctime>

#include "hallpass/base/json_text.h"
#include "hallpass/base/log.h"

namespace hallpass {
namespace {

constexpr char kHex[] = "0123456789ABCDEF";

int64_t wall_ms() {
    timespec now{};
    clock_gettime(CLOCK_REALTIME, &now);
    return static_cast<int64_t>(now.tv_sec) * 1000 + now.tv_nsec / 1'000'000;
}

// One Squid field: bytes that would split the line into more fields or lines (space, control
// bytes, DEL) and non-ASCII bytes become %XX, as Squid's own URL logging does; "" becomes "-".
void append_field(std::string& out, std::string_view text) {
    if (text.empty()) {
        out += '-';
        return;
    }
    for (char ch : text) {
        auto c = static_cast<unsigned char>(ch);
        if (c <= 0x20 || c >= 0x7f) {
            out += '%';
            out += kHex[c >> 4];
            out += kHex[c & 0xf];
        } else {
            out += ch;
        }
    }
}

// "1.2.3.4:80" -> "1.2.3.4"; "[::1]:80" -> "::1".
std::string_view ip_of(std::string_view addr) {
    if (addr.starts_with('[')) {
        size_t close = addr.find(']');
        return close == std::string_view::npos ? addr : addr.substr(1, close - 1);
    }
    size_t colon = addr.rfind(':');
    return colon == std::string_view::npos ? addr : addr.substr(0, colon);
}

void append_printf(std::string& out, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
void append_printf(std::string& out, const char* fmt, ...) {
    char buf[64];
    va_list args;
    va_start(args, fmt);
    int n = std::vsnprintf(buf, sizeof buf, fmt, args);
    va_end(args);
    if (n > 0) out.append(buf, std::min(static_cast<size_t>(n), sizeof buf - 1));
}

// Decimal digits without printf (which costs more than the rest of a log line).
void append_uint(std::string& out, uint64_t v) {
    char buf[24];
    out.append(buf, std::to_chars(buf, buf + sizeof buf, v).ptr);
}

// `v` right-aligned in `width` characters, padded with `fill` (printf's "%6d" and "%03d").
void append_padded(std::string& out, uint64_t v, size_t width, char fill) {
    char buf[24];
    char* end = std::to_chars(buf, buf + sizeof buf, v).ptr;
    const size_t n = static_cast<size_t>(end - buf);
    if (n < width) out.append(width - n, fill);
    out.append(buf, n);
}

void append_json_key(std::string& out, const char* key) {
    out += ",\"";
    out += key;
    out += "\":";
}

// A string, or null when it is empty (unknown / not applicable).
void append_json_optional(std::string& out, const char* key, std::string_view value) {
    append_json_key(out, key);
    if (value.empty()) {
        out += "null";
    } else {
        append_json_string(out, value);
    }
}

// A duration, or null when negative (did not happen).
void append_json_ms(std::string& out, const char* key, int64_t ms) {
    append_json_key(out, key);
    if (ms < 0) {
        out += "null";
    } else {
        append_printf(out, "%" PRId64, ms);
    }
}

// The connection writes "-" for what it never learnt (a head that did not parse).
std::string_view known(const std::string& value) {
    return value == "-" ? std::string_view() : std::string_view(value);
}

// Squid's HIER_DIRECT names the server a response came from; a connect that failed is
// HIER_NONE there (the JSON line still names the address that was tried).
bool reached_upstream(const Transaction& txn) {
    return !txn.upstream.empty() && (txn.connect_ms >= 0 || txn.upstream_reused);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Formats

// Squid's tags (src/LogTags.cc): TCP_MISS for what went to an origin; _ABORTED when it did not
// complete (client gone, upstream reset mid-response); TCP_TUNNEL for CONNECT; TCP_DENIED for
// every 403 hallpass decides (rules, clients not allowed, CONNECT to a port not allowed);
// TCP_MISS also for a request that was allowed but failed before any upstream answered (DNS,
// connect: Squid logs TCP_MISS/503 there); NONE_NONE for what never got as far as a decision
// (unparsable requests: Squid's NONE_NONE/400).
const char* squid_code(const Transaction& txn) {
    const bool aborted = txn.status == 0;
    switch (txn.kind) {
        case Transaction::Kind::Tunnel:
            return "TCP_TUNNEL";
        case Transaction::Kind::Blocked:
            return "TCP_DENIED";
        case Transaction::Kind::Relayed:
            return aborted || !txn.error.empty() ? "TCP_MISS_ABORTED" : "TCP_MISS";
        case Transaction::Kind::Local:
            if (txn.status == 403) return "TCP_DENIED";
            if (!txn.rule.empty()) return aborted ? "TCP_MISS_ABORTED" : "TCP_MISS";
            return aborted ? "NONE_NONE_ABORTED" : "NONE_NONE";
    }
    return "NONE_NONE";
}

void append_squid(std::string& out, const Transaction& txn) {
    // Wall-clock steps can make a measured duration negative; analysers expect >= 0.
    const int64_t elapsed_ms = std::max<int64_t>(txn.elapsed_ms, 0);
    const int64_t end_ms = txn.start_unix_ms + elapsed_ms;
    // "%6d.%03d %6d " without printf.
    const uint64_t end = static_cast<uint64_t>(std::max<int64_t>(end_ms, 0));
    append_padded(out, end / 1000, 6, ' ');
    out += '.';
    append_padded(out, end % 1000, 3, '0');
    out += ' ';
    append_padded(out, static_cast<uint64_t>(elapsed_ms), 6, ' ');
    out += ' ';
    append_field(out, txn.client.to_string());
    out += ' ';
    out += squid_code(txn);
    out += '/';
    append_padded(out, static_cast<uint64_t>(std::clamp(txn.status, 0, 999)), 3, '0');
    out += ' ';
    append_uint(out, txn.bytes_to_client);
    out += ' ';
    // Squid writes NONE for a request whose method it never learnt.
    append_field(out, known(txn.method).empty() ? "NONE" : txn.method);
    out += ' ';
    append_field(out, txn.url);
    out += " - ";  // user: hallpass does not authenticate
    if (!reached_upstream(txn)) {
        out += "HIER_NONE/-";
    } else {
        // Re-targeted by safe search: the enforcement name stands where Squid names the server.
        out += "HIER_DIRECT/";
        append_field(out, txn.safe_search.empty() ? ip_of(txn.upstream) : txn.safe_search);
    }
    out += ' ';
    append_field(out, txn.content_type);
    out += '\n';
}

std::string format_squid(const Transaction& txn) {
    std::string out;
    append_squid(out, txn);
    return out;
}

void append_json(std::string& out, const Transaction& txn) {
    const int64_t elapsed_ms = std::max<int64_t>(txn.elapsed_ms, 0);
    const int64_t end_ms = txn.start_unix_ms + elapsed_ms;
    const time_t end_s = static_cast<time_t>(end_ms / 1000);
    tm utc{};
    gmtime_r(&end_s, &utc);
    char iso[48];
    std::snprintf(iso, sizeof iso, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", utc.tm_year + 1900,
                  utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec,
                  static_cast<int>(end_ms % 1000));
    out += "{\"time\":\"";
    out += iso;
    out += '"';
    append_json_key(out, "time_ms");
    append_printf(out, "%" PRId64, end_ms);
    append_json_key(out, "client");
    append_json_string(out, txn.client.to_string());
    append_json_optional(out, "client_addr", txn.client_addr);
    append_json_optional(out, "method", known(txn.method));
    append_json_optional(out, "url", known(txn.url));
    append_json_optional(out, "host", txn.host);
    append_json_key(out, "port");
    append_printf(out, "%u", static_cast<unsigned>(txn.port));
    append_json_key(out, "status");
    append_printf(out, "%d", txn.status);
    append_json_key(out, "kind");
    append_json_string(out, kind_name(txn.kind));
    append_json_key(out, "code");
    append_json_string(out, squid_code(txn));
    append_json_optional(out, "rule", txn.rule);
    append_json_key(out, "bytes_in");
    append_printf(out, "%" PRIu64, txn.bytes_from_client);
    append_json_key(out, "bytes_out");
    append_printf(out, "%" PRIu64, txn.bytes_to_client);
    append_json_optional(out, "upstream", txn.upstream);
    append_json_key(out, "upstream_reused");
    out += txn.upstream_reused ? "true" : "false";
    append_json_ms(out, "dns_ms", txn.dns_ms);
    append_json_key(out, "dns_cached");
    out += txn.dns_cached ? "true" : "false";
    append_json_ms(out, "connect_ms", txn.connect_ms);
    append_json_ms(out, "elapsed_ms", elapsed_ms);
    append_json_optional(out, "content_type", txn.content_type);
    append_json_optional(out, "error", txn.error);
    append_json_optional(out, "safe_search", txn.safe_search);
    out += "}\n";
}

std::string format_json(const Transaction& txn) {
    std::string out;
    append_json(out, txn);
    return out;
}

// ---------------------------------------------------------------------------------------------
// The log

Result<std::unique_ptr<AccessLog>> AccessLog::open(Options options) {
    int fd = STDOUT_FILENO;
    if (options.path != "-") {
        fd = ::open(options.path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
        if (fd < 0) {
            return Error{"cannot open the access log \"" + options.path +
                         "\": " + std::strerror(errno)};
        }
    }
    options.workers = std::max(options.workers, 1);
    std::unique_ptr<AccessLog> log(new AccessLog(std::move(options), fd));
    log->writer_ = std::thread([raw = log.get()] { raw->run_writer(); });
    return log;
}

AccessLog::AccessLog(Options options, int fd) : options_(std::move(options)), fd_(fd) {
    for (int i = 0; i < options_.workers; ++i) {
        slots_.push_back(std::make_unique<Slot>());
        slots_.back()->buf.reserve(options_.flush_bytes + 1024);
    }
}

AccessLog::~AccessLog() { stop(); }

template <class Format>
void AccessLog::append(int worker, Format&& format) {
    Slot& slot = *slots_[static_cast<unsigned>(worker) % slots_.size()];
    std::lock_guard lock(slot.mu);
    // Checked under the slot's lock: stop() sets the flag before it sweeps the slots, so a line
    // either is swept or sees the flag, never neither.
    if (stopped_.load(std::memory_order_acquire)) {
        dropped_.fetch_add(1, std::memory_order_relaxed);
        return;
    }
    format(slot.buf);
    ++slot.lines;
    if (slot.buf.size() >= options_.flush_bytes) hand_over(slot);
}

void AccessLog::record(int worker, const Transaction& txn) {
    append(worker, [&](std::string& out) {
        if (options_.format == AccessLogConfig::Format::Json) {
            append_json(out, txn);
        } else {
            append_squid(out, txn);
        }
    });
}

void AccessLog::record_line(int worker, std::string_view line) {
    append(worker, [&](std::string& out) { out.append(line); });
}

void AccessLog::hand_over(Slot& slot) {
    Chunk chunk{Chunk::Kind::Lines, std::move(slot.buf), slot.lines};
    slot.buf = std::string();
    slot.buf.reserve(options_.flush_bytes + 1024);
    slot.lines = 0;
    {
        std::lock_guard lock(queue_mu_);
        if (queued_bytes_ + chunk.data.size() > options_.max_queued_bytes) {
            dropped_.fetch_add(chunk.lines, std::memory_order_relaxed);
            return;
        }
        queued_bytes_ += chunk.data.size();
        queue_.push_back(std::move(chunk));
    }
    queue_cv_.notify_one();
}

void AccessLog::sweep_all() {
    for (auto& slot : slots_) {
        std::lock_guard lock(slot->mu);
        if (!slot->buf.empty()) hand_over(*slot);
    }
}

void AccessLog::reopen() {
    sweep_all();  // what was recorded before goes to the old file
    {
        std::lock_guard lock(queue_mu_);
        queue_.push_back(Chunk{Chunk::Kind::Reopen, {}, 0});
    }
    queue_cv_.notify_one();
}

void AccessLog::stop() {
    if (!stopped_.exchange(true, std::memory_order_acq_rel)) {
        sweep_all();
        {
            std::lock_guard lock(queue_mu_);
            queue_.push_back(Chunk{Chunk::Kind::Stop, {}, 0});
        }
        queue_cv_.notify_one();
    }
    if (writer_.joinable() && writer_.get_id() != std::this_thread::get_id()) writer_.join();
}

void AccessLog::run_writer() {
    using Clock = std::chrono::steady_clock;
    const auto interval = std::chrono::milliseconds(std::max(options_.flush_interval_ms, 1));
    auto next_sweep = Clock::now() + interval;
    bool stop = false;
    while (!stop) {
        std::deque<Chunk> batch;
        {
            std::unique_lock lock(queue_mu_);
            queue_cv_.wait_until(lock, next_sweep, [&] { return !queue_.empty(); });
            batch.swap(queue_);
            queued_bytes_ = 0;
        }
        for (const Chunk& chunk : batch) {
            switch (chunk.kind) {
                case Chunk::Kind::Lines:
                    write_chunk(chunk);
                    break;
                case Chunk::Kind::Reopen:
                    reopen_file();
                    break;
                case Chunk::Kind::Stop:
                    stop = true;  // the last chunk: stop() swept every slot before queueing it
                    break;
            }
        }
        if (!stop && Clock::now() >= next_sweep) {
            sweep_all();
            next_sweep = Clock::now() + interval;
        }
    }
    if (fd_ != STDOUT_FILENO) ::close(fd_);
    fd_ = -1;
}

void AccessLog::write_chunk(const Chunk& chunk) {
    const char* p = chunk.data.data();
    const char* end = p + chunk.data.size();
    while (p < end) {
        ssize_t n = ::write(fd_, p, static_cast<size_t>(end - p));
        if (n >= 0) {
            p += n;
            continue;
        }
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {  // a non-blocking stdout (pipe)
            pollfd pfd{fd_, POLLOUT, 0};
            if (::poll(&pfd, 1, 1000) > 0) continue;
            errno = EAGAIN;
        }
        // Lines not (wholly) written are lost; one of them may be cut where the disk filled.
        auto lost = static_cast<size_t>(std::count(p, end, '\n'));
        written_.fetch_add(chunk.lines - lost, std::memory_order_relaxed);
        report_write_error(errno, lost);
        return;
    }
    written_.fetch_add(chunk.lines, std::memory_order_relaxed);
}

void AccessLog::reopen_file() {
    if (options_.path == "-") return;
    int fd = ::open(options_.path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0) {
        LOG_ERROR("cannot reopen the access log \"%s\": %s; still writing to the old file",
                  options_.path.c_str(), std::strerror(errno));
        return;
    }
    ::close(fd_);
    fd_ = fd;
    LOG_INFO("access log reopened: %s", options_.path.c_str());
}

void AccessLog::report_write_error(int err, size_t lines_lost) {
    uint64_t total = dropped_.fetch_add(lines_lost, std::memory_order_relaxed) + lines_lost;
    // At most one line every 10 s: a full disk would otherwise flood the diagnostic log too.
    int64_t now = wall_ms();
    if (now - last_error_log_ms_ < 10'000) return;
    last_error_log_ms_ = now;
    LOG_ERROR("cannot write the access log \"%s\": %s; %" PRIu64 " lines dropped so far",
              options_.path.c_str(), std::strerror(err), total);
}

}  // namespace hallpass
