#pragma once
// systemd's side of a service (issue 11 item 1), through libsystemd's sd_notify: READY=1
// once the node has a role (not when the process starts: a unit ordered after heartwired@
// starts once the address has an owner), STATUS= on role changes, STOPPING=1 and
// RELOADING=1, and the watchdog: WATCHDOG=1 at half of WatchdogSec, sent only while the
// poll lcore makes progress, so a hung engine stops the pings and systemd restarts it.
// Outside systemd (no NOTIFY_SOCKET) every call does nothing.

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace heartwire::control {

class service_manager {
public:
    service_manager();
    bool active() const noexcept { return active_; }
    std::chrono::microseconds watchdog_interval() const noexcept { return watchdog_; }
    bool is_ready() const noexcept { return ready_; }

    void ready(std::string_view status);
    void status(std::string_view status);
    void stopping();
    void reloading();
    // Every control turn: `progress` is a counter the poll lcore moves every turn (its loop
    // count). A ping goes out at most every half interval, and only if it moved since the
    // last one.
    void tick(std::uint64_t progress, std::chrono::steady_clock::time_point now);
    std::uint64_t pings() const noexcept { return pings_; }
    std::uint64_t withheld() const noexcept { return withheld_; } // intervals without progress

private:
    void send(const std::string& msg);
    bool active_{false};
    bool ready_{false};
    std::chrono::microseconds watchdog_{0};
    std::chrono::steady_clock::time_point next_ping_{};
    std::uint64_t last_progress_{~std::uint64_t{0}};
    std::uint64_t pings_{0};
    std::uint64_t withheld_{0};
};

} // namespace heartwire::control
