#include "control/health.hpp"

#include <dirent.h>
#include <unistd.h>

#include <fstream>
#include <iterator>

#include "control/netlink.hpp"

namespace heartwire::control {

health_monitor::check_state health_monitor::make(const cfg::health_check_cfg& c) {
    check_state s;
    s.cfg = c;
    s.kind = c.kind == "interface" ? fsm::fault_kind::interface
             : c.kind == "process" ? fsm::fault_kind::process
                                   : fsm::fault_kind::script;
    return s;
}

health_monitor::health_monitor(const std::vector<cfg::health_check_cfg>& checks, hook_runner& hooks) : hooks_(hooks) {
    reconfigure(checks);
}

void health_monitor::reconfigure(const std::vector<cfg::health_check_cfg>& checks) {
    std::vector<check_state> next;
    next.reserve(checks.size());
    std::vector<bool> taken(checks_.size()); // two identical checks: each kept once
    for (const auto& c : checks) {
        std::size_t i = 0;
        while (i < checks_.size() && (taken[i] || !(checks_[i].cfg == c))) ++i;
        if (i < checks_.size()) {
            taken[i] = true;
            next.push_back(std::move(checks_[i]));
        } else {
            // The same check with other timing (interval, rise, fall): its verdict carries
            // over, so a reload neither cures nor raises a fault by itself.
            std::size_t j = 0;
            while (j < checks_.size() && (taken[j] || checks_[j].cfg.name != c.name || checks_[j].cfg.kind != c.kind ||
                                          checks_[j].cfg.target != c.target))
                ++j;
            next.push_back(make(c));
            if (j < checks_.size()) {
                taken[j] = true;
                next.back().failed = checks_[j].failed;
                next.back().last_detail = checks_[j].last_detail;
            }
        }
        if (next.back().kind == fsm::fault_kind::interface && !nl_) nl_ = std::make_unique<netlink>();
    }
    checks_ = std::move(next);
}

health_monitor::~health_monitor() = default;

namespace {

std::string read_all(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

} // namespace

// How a [[health]] process target names a process (docs/configuration.md):
//  - with a space: its whole command line (argv joined by spaces) is that, or begins with
//    it and a space;
//  - an absolute path: the process's executable (/proc/PID/exe) or its argv[0] is that path;
//  - else a name: its comm (the kernel keeps 15 characters of it) or the last component of
//    its argv[0], so a name longer than 15 characters still matches.
bool health_monitor::process_matches(const std::string& target, const std::string& comm, const std::string& exe,
                                     const std::string& cmdline) {
    const std::string argv0 = cmdline.substr(0, cmdline.find('\0'));
    if (target.find(' ') != std::string::npos) {
        std::string line = cmdline;
        while (!line.empty() && line.back() == '\0') line.pop_back();
        for (char& ch : line)
            if (ch == '\0') ch = ' ';
        return line == target || (line.size() > target.size() && line.compare(0, target.size(), target) == 0 &&
                                  line[target.size()] == ' ');
    }
    if (!target.empty() && target.front() == '/') return exe == target || argv0 == target;
    const auto slash = argv0.rfind('/');
    return comm == target || (slash == std::string::npos ? argv0 : argv0.substr(slash + 1)) == target;
}

bool health_monitor::process_running(const std::string& target) {
    DIR* d = opendir("/proc");
    if (!d) return false;
    bool found = false;
    while (dirent* e = readdir(d)) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
        const std::string dir = std::string("/proc/") + e->d_name;
        // A zombie has exited: it serves nothing.
        const std::string stat = read_all(dir + "/stat");
        if (const auto close = stat.rfind(')'); close != std::string::npos && close + 2 < stat.size() && stat[close + 2] == 'Z')
            continue;
        std::string comm = read_all(dir + "/comm");
        if (!comm.empty() && comm.back() == '\n') comm.pop_back();
        std::string exe;
        if (!target.empty() && target.front() == '/' && target.find(' ') == std::string::npos) {
            char buf[4096];
            const ssize_t n = readlink((dir + "/exe").c_str(), buf, sizeof buf);
            if (n > 0) exe.assign(buf, static_cast<std::size_t>(n));
            // Upgraded in place: the running image's file was replaced, still the same service.
            constexpr std::string_view deleted = " (deleted)";
            if (exe.ends_with(deleted)) exe.resize(exe.size() - deleted.size());
        }
        if (process_matches(target, comm, exe, read_all(dir + "/cmdline"))) {
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
