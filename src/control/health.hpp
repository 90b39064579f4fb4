#pragma once
// Local health checks (seed 003 claim 8): a script (exit 0 = healthy), an interface (link
// up), a process (running, by name). Each has an interval and rise/fall counts; a check
// that fails `fall` times in a row is failed until it passes `rise` times in a row.
// Scripts run through the hook runner, so a slow script never blocks the control thread.

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "control/hooks.hpp"
#include "heartwire/config.hpp"
#include "heartwire/fsm.hpp"

namespace heartwire::control {

class netlink;

class health_monitor {
public:
    struct check_state {
        cfg::health_check_cfg cfg;
        fsm::fault_kind kind{fsm::fault_kind::script};
        bool failed{false};
        std::uint32_t streak{0};      // consecutive results against the current state
        std::uint64_t running_id{0};  // hook id of a script in flight
        std::chrono::steady_clock::time_point next{};
        std::string last_detail;
    };

    health_monitor(const std::vector<cfg::health_check_cfg>& checks, hook_runner& hooks);
    ~health_monitor();

    // A reload: the checks from now on, in this order. A check whose configuration did not
    // change keeps its state (failed, streak, a script in flight), so a reload neither cures
    // nor raises a fault by itself; a new or changed one starts healthy and is due at once.
    void reconfigure(const std::vector<cfg::health_check_cfg>& checks);

    // Starts the checks that are due. Interface and process checks finish at once.
    void poll(std::chrono::steady_clock::time_point now);
    // A script check's result; false when the hook was not one of ours.
    bool on_hook_done(const hook_result& r);

    // The first failed check, if any (its kind names the fault in the report).
    const check_state* first_failed() const noexcept;
    const std::vector<check_state>& checks() const noexcept { return checks_; }

    // Does a process that the target names run (process_matches)? Public for tests.
    static bool process_running(const std::string& target);
    // One process against a target (comm, /proc/PID/exe, /proc/PID/cmdline as read).
    static bool process_matches(const std::string& target, const std::string& comm, const std::string& exe,
                                const std::string& cmdline);

private:
    static check_state make(const cfg::health_check_cfg& c);
    void record(check_state& c, bool ok, std::string detail);

    hook_runner& hooks_;
    std::unique_ptr<netlink> nl_;
    std::vector<check_state> checks_;
};

} // namespace heartwire::control
