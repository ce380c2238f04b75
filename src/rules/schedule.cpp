// Schedules on the wall clock of their zone, through Howard Hinnant's date library (the C++20
// zoned_time that GCC 12 lacks) reading the system's zoneinfo files.
#include "hallpass/rules/schedule.h"

#include <date/tz.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>

namespace hallpass {
namespace {

using std::chrono::seconds;
using Local = date::local_seconds;

constexpr int kLookAheadDays = 15;

bool is_except(const Schedule& s, int32_t day) {
    return std::binary_search(s.except_days.begin(), s.except_days.end(), day);
}

struct LocalTime {
    int32_t day;  // days since the epoch, local
    int weekday;  // 0 = Sunday
    int64_t second_of_day;
};

LocalTime to_local(const Schedule& s, int64_t unix_s) {
    const Local l = s.zone->to_local(date::sys_seconds{seconds{unix_s}});
    const date::local_days d = date::floor<date::days>(l);
    return {static_cast<int32_t>(d.time_since_epoch().count()),
            static_cast<int>(date::weekday{d}.c_encoding()), (l - d).count()};
}

int64_t to_unix(const Schedule& s, int32_t day, int minutes) {
    const Local l = Local{date::days{day}} + std::chrono::minutes{minutes};
    return s.zone->to_sys(l, date::choose::earliest).time_since_epoch().count();
}

}  // namespace

bool Schedule::active(int64_t unix_s) const {
    if (!zone) return false;
    const LocalTime t = to_local(*this, unix_s);
    for (const ScheduleWindow& w : windows) {
        const int64_t from = int64_t{w.from_min} * 60;
        const int64_t to = int64_t{w.to_min} * 60;
        const bool opens_today = w.days[t.weekday] && !is_except(*this, t.day);
        if (w.from_min < w.to_min) {
            if (opens_today && t.second_of_day >= from && t.second_of_day < to) return true;
            continue;
        }
        if (opens_today && t.second_of_day >= from) return true;
        const bool opened_yesterday = w.days[(t.weekday + 6) % 7] && !is_except(*this, t.day - 1);
        if (opened_yesterday && t.second_of_day < to) return true;
    }
    return false;
}

std::optional<int64_t> Schedule::next_change(int64_t unix_s) const {
    if (!zone || windows.empty()) return std::nullopt;
    const LocalTime t = to_local(*this, unix_s);
    // The state can change only where a window opens or closes.
    std::vector<int64_t> edges;
    for (int32_t day = t.day - 1; day <= t.day + kLookAheadDays; ++day) {
        for (const ScheduleWindow& w : windows) {
            edges.push_back(to_unix(*this, day, w.from_min));
            const int32_t end_day = w.from_min < w.to_min ? day : day + 1;
            edges.push_back(to_unix(*this, end_day, w.to_min));
        }
    }
    std::sort(edges.begin(), edges.end());
    const bool now = active(unix_s);
    for (int64_t edge : edges) {
        if (edge > unix_s && active(edge) != now) return edge;
    }
    return std::nullopt;
}

std::string Schedule::local_label(int64_t unix_s, int64_t ref_s) const {
    if (!zone) return "";
    const LocalTime t = to_local(*this, unix_s);
    const LocalTime ref = to_local(*this, ref_s);
    const Local l = zone->to_local(date::sys_seconds{seconds{unix_s}});
    const char* format = "%F %H:%M";
    if (t.day == ref.day) {
        format = "%H:%M";
    } else if (t.day - ref.day < 7 && t.day > ref.day) {
        format = "%a %H:%M";
    }
    return date::format(format, date::floor<std::chrono::minutes>(l));
}

const date::time_zone* find_time_zone(std::string_view name) {
    try {
        if (!name.empty()) return date::locate_zone(name);
        if (const char* tz = std::getenv("TZ"); tz && *tz) {
            std::string_view env = tz;
            if (env.starts_with(':')) env.remove_prefix(1);
            try {
                return date::locate_zone(env);
            } catch (const std::exception&) {
            }
        }
        try {
            return date::current_zone();
        } catch (const std::exception&) {
        }
        return date::locate_zone("UTC");
    } catch (const std::exception&) {
        return nullptr;
    }
}

std::optional<int> parse_clock_minutes(std::string_view text, bool allow_24) {
    // H:MM or HH:MM
    const size_t colon = text.find(':');
    if (colon == std::string_view::npos || colon == 0 || colon > 2 || text.size() != colon + 3) {
        return std::nullopt;
    }
    int h = 0, m = 0;
    for (size_t i = 0; i < text.size(); ++i) {
        if (i == colon) continue;
        if (!std::isdigit(static_cast<unsigned char>(text[i]))) return std::nullopt;
        (i < colon ? h : m) = (i < colon ? h : m) * 10 + (text[i] - '0');
    }
    if (m > 59) return std::nullopt;
    if (h == 24 && m == 0 && allow_24) return 1440;
    if (h > 23) return std::nullopt;
    return h * 60 + m;
}

std::optional<int32_t> parse_date_days(std::string_view text) {
    if (text.size() != 10 || text[4] != '-' || text[7] != '-') return std::nullopt;
    int parts[3] = {0, 0, 0};
    int part = 0;
    for (size_t i = 0; i < text.size(); ++i) {
        if (i == 4 || i == 7) {
            ++part;
            continue;
        }
        if (!std::isdigit(static_cast<unsigned char>(text[i]))) return std::nullopt;
        parts[part] = parts[part] * 10 + (text[i] - '0');
    }
    const date::year_month_day ymd{date::year{parts[0]},
                                   date::month{static_cast<unsigned>(parts[1])},
                                   date::day{static_cast<unsigned>(parts[2])}};
    if (!ymd.ok()) return std::nullopt;
    return static_cast<int32_t>(date::sys_days{ymd}.time_since_epoch().count());
}

std::optional<int> parse_weekday(std::string_view text) {
    static constexpr std::string_view kDays[] = {"sunday",   "monday", "tuesday", "wednesday",
                                                 "thursday", "friday", "saturday"};
    std::string lower(text);
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    for (int i = 0; i < 7; ++i) {
        if (lower == kDays[i] || (lower.size() == 3 && kDays[i].starts_with(lower))) return i;
    }
    return std::nullopt;
}

}  // namespace hallpass
