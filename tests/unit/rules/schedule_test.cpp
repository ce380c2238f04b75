#include "hallpass/rules/schedule.h"

#include <doctest/doctest.h>

#include <ctime>

using namespace hallpass;

namespace {

// Unix seconds of a UTC wall-clock time.
int64_t utc(int y, int mo, int d, int h, int mi, int s = 0) {
    std::tm t{};
    t.tm_year = y - 1900;
    t.tm_mon = mo - 1;
    t.tm_mday = d;
    t.tm_hour = h;
    t.tm_min = mi;
    t.tm_sec = s;
    return static_cast<int64_t>(timegm(&t));
}

ScheduleWindow window(std::initializer_list<int> days, const char* from, const char* to) {
    ScheduleWindow w;
    for (int d : days) w.days[d] = true;
    w.from_min = *parse_clock_minutes(from, false);
    w.to_min = *parse_clock_minutes(to, true);
    return w;
}

// The school nights: Sun-Thu 21:00-07:00, Sat 23:00-08:00, in UTC.
Schedule school_nights(const char* zone = "UTC") {
    Schedule s;
    s.name = "school-nights";
    s.zone = find_time_zone(zone);
    REQUIRE(s.zone != nullptr);
    s.windows = {window({0, 1, 2, 3, 4}, "21:00", "07:00"), window({6}, "23:00", "08:00")};
    return s;
}

}  // namespace

TEST_CASE("schedule: parsing times, dates and days") {
    CHECK(parse_clock_minutes("21:00", false) == 1260);
    CHECK(parse_clock_minutes("7:05", false) == 425);
    CHECK(parse_clock_minutes("24:00", true) == 1440);
    CHECK_FALSE(parse_clock_minutes("24:00", false));
    CHECK_FALSE(parse_clock_minutes("12:60", false));
    CHECK_FALSE(parse_clock_minutes("1200", false));
    CHECK_FALSE(parse_clock_minutes("ab:cd", false));
    CHECK(parse_date_days("1970-01-02") == 1);
    CHECK(parse_date_days("2026-12-24") == utc(2026, 12, 24, 0, 0) / 86400);
    CHECK_FALSE(parse_date_days("2026-02-30"));
    CHECK_FALSE(parse_date_days("2026-12-4"));
    CHECK(parse_weekday("sun") == 0);
    CHECK(parse_weekday("Saturday") == 6);
    CHECK_FALSE(parse_weekday("funday"));
    CHECK(find_time_zone("Europe/Paris") != nullptr);
    CHECK(find_time_zone("Mars/Olympus") == nullptr);
    CHECK(find_time_zone("") != nullptr);
}

TEST_CASE("schedule: inside and outside a window, and a window across midnight") {
    Schedule s = school_nights();
    // 2026-12-07 is a Monday.
    CHECK_FALSE(s.active(utc(2026, 12, 7, 20, 59, 59)));
    CHECK(s.active(utc(2026, 12, 7, 21, 0)));
    CHECK(s.active(utc(2026, 12, 7, 23, 59)));
    CHECK(s.active(utc(2026, 12, 8, 3, 0)));  // Tuesday night, from Monday's window
    CHECK(s.active(utc(2026, 12, 8, 6, 59, 59)));
    CHECK_FALSE(s.active(utc(2026, 12, 8, 7, 0)));
    CHECK_FALSE(s.active(utc(2026, 12, 8, 12, 0)));
    // Friday opens no window; Friday morning still ends Thursday's.
    CHECK(s.active(utc(2026, 12, 11, 6, 0)));
    CHECK_FALSE(s.active(utc(2026, 12, 11, 22, 0)));
    CHECK_FALSE(s.active(utc(2026, 12, 12, 22, 0)));  // Saturday, before 23:00
    CHECK(s.active(utc(2026, 12, 12, 23, 30)));
    CHECK(s.active(utc(2026, 12, 13, 7, 30)));  // Sunday morning, until 08:00
    CHECK_FALSE(s.active(utc(2026, 12, 13, 8, 0)));
}

TEST_CASE("schedule: a holiday opens no window; the night before still ends") {
    Schedule s = school_nights();
    s.except_days = {*parse_date_days("2026-12-24")};  // a Thursday
    CHECK(s.active(utc(2026, 12, 24, 6, 0)));          // Wednesday's window
    CHECK_FALSE(s.active(utc(2026, 12, 24, 21, 30)));
    CHECK_FALSE(s.active(utc(2026, 12, 25, 2, 0)));
    CHECK(s.active(utc(2026, 12, 23, 21, 30)));
}

TEST_CASE("schedule: the next change, and labels for it") {
    Schedule s = school_nights();
    const int64_t evening = utc(2026, 12, 7, 20, 0);
    CHECK(s.next_change(evening) == utc(2026, 12, 7, 21, 0));
    CHECK(s.next_change(utc(2026, 12, 7, 22, 0)) == utc(2026, 12, 8, 7, 0));
    // Thursday night ends Friday 07:00; the next opens Saturday 23:00.
    CHECK(s.next_change(utc(2026, 12, 11, 7, 0)) == utc(2026, 12, 12, 23, 0));
    CHECK(s.local_label(utc(2026, 12, 7, 21, 0), evening) == "21:00");
    CHECK(s.local_label(utc(2026, 12, 8, 7, 0), evening) == "Tue 07:00");
    CHECK(s.local_label(utc(2026, 12, 20, 7, 0), evening) == "2026-12-20 07:00");
    Schedule always;
    always.zone = find_time_zone("UTC");
    always.windows = {window({0, 1, 2, 3, 4, 5, 6}, "00:00", "24:00")};
    CHECK(always.active(evening));
    CHECK_FALSE(always.next_change(evening));
    Schedule none;
    none.zone = always.zone;
    CHECK_FALSE(none.active(evening));
    CHECK_FALSE(none.next_change(evening));
}

TEST_CASE("schedule: the zone's wall clock, daylight saving included") {
    Schedule s = school_nights("Europe/Paris");
    // Winter: Paris is UTC+1, so 21:00 there is 20:00 UTC.
    CHECK_FALSE(s.active(utc(2026, 12, 7, 19, 59)));
    CHECK(s.active(utc(2026, 12, 7, 20, 0)));
    // Summer (2026-07-06, a Monday): UTC+2.
    CHECK(s.active(utc(2026, 7, 6, 19, 0)));
    CHECK_FALSE(s.active(utc(2026, 7, 6, 18, 59)));
    // The night the clocks go forward (Sunday 2026-03-29): the window ends at 07:00 local,
    // which is 05:00 UTC now.
    CHECK(s.active(utc(2026, 3, 30, 4, 59)));
    CHECK_FALSE(s.active(utc(2026, 3, 30, 5, 0)));
    CHECK(s.next_change(utc(2026, 3, 29, 22, 0)) == utc(2026, 3, 30, 5, 0));
}
