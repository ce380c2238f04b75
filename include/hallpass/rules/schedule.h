// Named weekly time windows (rules.yaml's `schedules:`): when each one is active, and when it
// next changes. A window opens on each of its days at `from` and closes at `to` the same day, or
// the next morning when `to` is not after `from` ("21:00" to "07:00"); a window belongs to the
// day it opens on, so an except_dates day opens none (the night before still ends as planned).
// Times are the schedule's zone's wall clock (daylight-saving changes included). Pure: the time
// is an argument, so callers decide what "now" is.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace date {
class time_zone;
}

namespace hallpass {

struct ScheduleWindow {
    std::array<bool, 7> days{};  // 0 = Sunday ... 6 = Saturday: the days the window opens on
    int from_min = 0;            // minutes after local midnight, 0..1439
    int to_min = 0;              // 1..1440; <= from_min: the next day
};

struct Schedule {
    std::string name;
    std::vector<ScheduleWindow> windows;
    std::vector<int32_t> except_days;  // days since 1970-01-01 (local dates), sorted
    const date::time_zone* zone = nullptr;
    std::string zone_name;

    // Whether some window is open at `unix_s`.
    bool active(int64_t unix_s) const;
    // The first second after `unix_s` at which active() differs, looking up to 15 days ahead;
    // none for a schedule that never changes (no windows, or open all week).
    std::optional<int64_t> next_change(int64_t unix_s) const;
    // "07:00" when `unix_s` is within a day of `ref_s` (and on the same local date), else
    // "Mon 07:00", else "2026-12-24 07:00": for the block page and --explain.
    std::string local_label(int64_t unix_s, int64_t ref_s) const;
};

// The zone for a `time_zone:` value ("Europe/Paris"); null when it does not exist. "" = the
// system's: $TZ when set and known, else /etc/localtime, else UTC.
const date::time_zone* find_time_zone(std::string_view name);
// "21:00" -> 1260; "24:00" -> 1440 (only as an end); none when malformed.
std::optional<int> parse_clock_minutes(std::string_view text, bool allow_24);
// "2026-12-24" -> days since the epoch; none when malformed or not a real date.
std::optional<int32_t> parse_date_days(std::string_view text);
// "sun".."sat" (or full names, any case) -> 0..6.
std::optional<int> parse_weekday(std::string_view text);

}  // namespace hallpass
