#include "control/service_manager.hpp"

#include <systemd/sd-daemon.h>

#include <cstdlib>

#include "control/log.hpp"

namespace heartwire::control {

service_manager::service_manager() {
    const char* sock = std::getenv("NOTIFY_SOCKET");
    active_ = sock && *sock;
    std::uint64_t usec = 0;
    if (active_ && sd_watchdog_enabled(0, &usec) > 0) watchdog_ = std::chrono::microseconds(usec);
}

void service_manager::send(const std::string& msg) {
    if (!active_) return;
    if (const int r = sd_notify(0, msg.c_str()); r < 0)
        log::write(log::level::warn, "sd_notify(" + msg.substr(0, msg.find('\n')) + ") failed: " + std::to_string(-r));
}

void service_manager::ready(std::string_view st) {
    if (ready_) return status(st);
    ready_ = true;
    send("READY=1\nSTATUS=" + std::string(st));
}

void service_manager::status(std::string_view st) { send("STATUS=" + std::string(st)); }
void service_manager::stopping() { send("STOPPING=1"); }
void service_manager::reloading() { send("RELOADING=1"); }

void service_manager::tick(std::uint64_t progress, std::chrono::steady_clock::time_point now) {
    if (!active_ || watchdog_.count() == 0 || now < next_ping_) return;
    next_ping_ = now + watchdog_ / 2;
    if (progress == last_progress_) {
        // The poll lcore did not turn for half an interval: no ping; two such and systemd
        // restarts the daemon (its guard has told the peers by then).
        ++withheld_;
        log::write(log::level::error, "the engine made no progress for " +
                                          std::to_string(watchdog_.count() / 2000) + " ms: watchdog ping withheld");
        return;
    }
    last_progress_ = progress;
    ++pings_;
    send("WATCHDOG=1");
}

} // namespace heartwire::control
