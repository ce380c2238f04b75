// Diagnostic log: lifecycle events and errors, one line each to stderr, with a level filter set
// by --log-level. A line is written with a single write(2), so lines from different threads never
// interleave. (The access log of requests is a separate module.)
#pragma once

namespace hallpass {

enum class LogLevel { Debug = 0, Info = 1, Warn = 2, Error = 3 };

void set_log_level(LogLevel level);
bool log_enabled(LogLevel level);

// Parses "debug", "info", "warn", "error"; false when `text` is none of these.
bool parse_log_level(const char* text, LogLevel* out);

// printf-style; a newline is added. Prefer the macros, which skip formatting when filtered out.
void log_write(LogLevel level, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

}  // namespace hallpass

#define HP_LOG(level, ...)                                                             \
    do {                                                                               \
        if (::hallpass::log_enabled(level)) ::hallpass::log_write(level, __VA_ARGS__); \
    } while (0)
#define LOG_DEBUG(...) HP_LOG(::hallpass::LogLevel::Debug, __VA_ARGS__)
#define LOG_INFO(...) HP_LOG(::hallpass::LogLevel::Info, __VA_ARGS__)
#define LOG_WARN(...) HP_LOG(::hallpass::LogLevel::Warn, __VA_ARGS__)
#define LOG_ERROR(...) HP_LOG(::hallpass::LogLevel::Error, __VA_ARGS__)
