// systemd's service notification protocol (sd_notify(3)): readiness, reloads, stopping and the
// watchdog, for a Type=notify unit. Every call is a no-op when hallpass was not started with a
// NOTIFY_SOCKET (not under systemd) or was built without libsystemd.
#pragma once

#include <cstdint>
#include <string>

namespace hallpass::notify {

// True when built with libsystemd (the calls below can do something).
bool available();
// The listeners are bound and the workers run: READY=1, with a STATUS line.
void ready(const std::string& status);
// A reload (SIGHUP) started: RELOADING=1 (with MONOTONIC_USEC, as systemd 253 asks).
void reloading();
// The reload ended: READY=1, with the outcome as STATUS.
void reloaded(const std::string& status);
// Shutting down: STOPPING=1.
void stopping();
// The interval at which watchdog() must be called (half of the unit's WatchdogSec), in
// microseconds; 0 when no watchdog is asked for.
uint64_t watchdog_interval_us();
// WATCHDOG=1: every worker answered since the last one.
void watchdog();

}  // namespace hallpass::notify
