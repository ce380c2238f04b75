// sd_notify(3) wrappers. Built without libsystemd (HALLPASS_HAVE_SYSTEMD unset), each is a
// no-op, so a build for a system without systemd still works.
#include "hallpass/server/notify.h"

#include <time.h>

#include <string>

#ifdef HALLPASS_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

namespace hallpass::notify {
namespace {

void send([[maybe_unused]] const std::string& state) {
#ifdef HALLPASS_HAVE_SYSTEMD
    sd_notify(0, state.c_str());
#endif
}

}  // namespace

bool available() {
#ifdef HALLPASS_HAVE_SYSTEMD
    return true;
#else
    return false;
#endif
}

void ready(const std::string& status) { send("READY=1\nSTATUS=" + status); }

void reloading() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    const uint64_t usec =
        static_cast<uint64_t>(ts.tv_sec) * 1'000'000 + static_cast<uint64_t>(ts.tv_nsec) / 1000;
    send("RELOADING=1\nSTATUS=reloading the rules\nMONOTONIC_USEC=" + std::to_string(usec));
}

void reloaded(const std::string& status) { send("READY=1\nSTATUS=" + status); }

void stopping() { send("STOPPING=1\nSTATUS=stopping"); }

uint64_t watchdog_interval_us() {
#ifdef HALLPASS_HAVE_SYSTEMD
    uint64_t usec = 0;
    if (sd_watchdog_enabled(0, &usec) > 0) return usec / 2;
#endif
    return 0;
}

void watchdog() { send("WATCHDOG=1"); }

}  // namespace hallpass::notify
