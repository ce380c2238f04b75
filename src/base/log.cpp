// Diagnostic log to stderr. Each line is formatted into a stack buffer and written with one
// write(2): atomic with respect to other threads' lines for lines under PIPE_BUF.
#include "hallpass/base/log.h"

#include <unistd.h>

#include <atomic>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <ctime>

namespace hallpass {
namespace {

std::atomic<int> g_level{static_cast<int>(LogLevel::Info)};

const char* level_name(LogLevel level) {
    switch (level) {
        case LogLevel::Debug:
            return "debug";
        case LogLevel::Info:
            return "info";
        case LogLevel::Warn:
            return "warn";
        case LogLevel::Error:
            return "error";
    }
    return "?";
}

}  // namespace

void set_log_level(LogLevel level) { g_level.store(static_cast<int>(level)); }

bool log_enabled(LogLevel level) {
    return static_cast<int>(level) >= g_level.load(std::memory_order_relaxed);
}

bool parse_log_level(const char* text, LogLevel* out) {
    static constexpr LogLevel kLevels[] = {LogLevel::Debug, LogLevel::Info, LogLevel::Warn,
                                           LogLevel::Error};
    for (LogLevel level : kLevels) {
        if (std::strcmp(text, level_name(level)) == 0) {
            *out = level;
            return true;
        }
    }
    return false;
}

void log_write(LogLevel level, const char* fmt, ...) {
    char line[2048];
    timespec now{};
    clock_gettime(CLOCK_REALTIME, &now);
    tm utc{};
    gmtime_r(&now.tv_sec, &utc);
    int n = std::snprintf(line, sizeof line,
                          "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ hallpass %s: ", utc.tm_year + 1900,
                          utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec,
                          now.tv_nsec / 1'000'000, level_name(level));
    va_list args;
    va_start(args, fmt);
    int m = std::vsnprintf(line + n, sizeof line - n - 1, fmt, args);
    va_end(args);
    size_t len = static_cast<size_t>(n) + (m < 0 ? 0 : static_cast<size_t>(m));
    if (len > sizeof line - 2) len = sizeof line - 2;  // truncated
    line[len++] = '\n';
    ssize_t ignored = ::write(STDERR_FILENO, line, len);
    (void)ignored;
}

}  // namespace hallpass
