#include "control/health.hpp"

#include <dirent.h>

#include <fstream>

#include "control/netlink.hpp"

namespace heartwire::control {

health_monitor::health_monitor(const std::vector<cfg::health_check_cfg>& checks, hook_runner& hooks) : hooks_(hooks) {
    for (const auto& c : checks) {
        check_state s;
        s.cfg = c;
        s.kind = c.kind == "interface" ? fsm::fault_kind::interface
                 : c.kind == "process" ? fsm::fault_kind::process
                                       : fsm::fault_kind::script;
        if (s.kind == fsm::fault_kind::interface && !nl_) nl_ = std::make_unique<netlink>();
        checks_.push_back(std::move(s));
    }
}

health_monitor::~health_monitor() = default;

bool health_monitor::process_running(const std::string& name) {
    DIR* d = opendir("/proc");
    if (!d) return false;
    bool found = false;
    while (dirent* e = readdir(d)) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
        std::ifstream comm(std::string("/proc/") + e->d_name + "/comm");
        std::string c;
        if (std::getline(comm, c) && c == name) {
            found = true;
            break;
        }
    }
    closedir(d);
    return found;
}

void health_monitor::record(check_state& c, bool ok, std::string detail) {
    c.last_detail = std::move(detail);
    const bool against = ok == c.failed; // a result that argues for the other state
    c.streak = against ? c.streak + 1 : 0;
    if (!c.failed && c.streak >= c.cfg.fall) {
        c.failed = true;
        c.streak = 0;
    } else if (c.failed && c.streak >= c.cfg.rise) {
        c.failed = false;
        c.streak = 0;
    }
}

void health_monitor::poll(std::chrono::steady_clock::time_point now) {
    for (auto& c : checks_) {
        if (now < c.next || c.running_id != 0) continue;
        c.next = now + std::chrono::milliseconds{c.cfg.interval_ms};
        switch (c.kind) {
        case fsm::fault_kind::interface: {
            const int up = nl_ ? nl_->link_up(c.cfg.target) : -1;
            record(c, up == 1, up == 1 ? "up" : up == 0 ? "down" : "missing");
            break;
        }
        case fsm::fault_kind::process: {
            const bool ok = process_running(c.cfg.target);
            record(c, ok, ok ? "running" : "not running");
            break;
        }
        default:
            c.running_id = hooks_.run("health:" + c.cfg.name, {c.cfg.target});
            break;
        }
    }
}

bool health_monitor::on_hook_done(const hook_result& r) {
    for (auto& c : checks_) {
        if (c.running_id != r.id) continue;
        c.running_id = 0;
        record(c, r.ok(),
               r.spawn_failed ? r.error : r.timed_out ? "timed out" : "exit " + std::to_string(r.exit_code));
        return true;
    }
    return false;
}

const health_monitor::check_state* health_monitor::first_failed() const noexcept {
    for (const auto& c : checks_)
        if (c.failed) return &c;
    return nullptr;
}

} // namespace heartwire::control
