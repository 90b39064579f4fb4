#pragma once
// What `heartwired --check` adds to the configuration's own validation (cfg::validate, a
// pure function of the text): the problems that would only show once the daemon runs
// (issue 11 item 7). The daemon checks the errors again at start, before touching a port.

#include <string>
#include <vector>

#include "heartwire/config.hpp"

namespace heartwire::app {

struct problem {
    bool error{true}; // false: a warning (the daemon runs, but it is probably not what was meant)
    bool setup{false}; // the host, not the file (an interface that is not there): exit 1, as at start
    std::string key;  // dotted key, as config errors name it
    std::string what;
};

// Hooks and script checks: files that exist and are executable. Timing: an idle sleep cap
// against the window. EAL arguments against the config. Cheap: no measurement.
std::vector<problem> runtime_problems(const cfg::config& c, const std::vector<std::string>& eal_extra);

// The detection window against this host's stall floor: spins for `spin_ms` on the
// configured lcore (when it can be pinned there) and reports the longest gap the spinning
// thread saw; a window shorter than that warns (a busy engine at normal priority loses its
// core as long). For --check only: it takes spin_ms.
std::vector<problem> stall_floor_problems(const cfg::config& c, unsigned spin_ms = 200);

} // namespace heartwire::app
