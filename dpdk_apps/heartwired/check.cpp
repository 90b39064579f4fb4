#include "check.hpp"

#include <net/if.h>
#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <string_view>

namespace heartwire::app {

namespace {

void executable(std::vector<problem>& out, const std::string& key, const std::string& path, std::string_view why) {
    if (path.empty()) return;
    struct stat st{};
    if (::stat(path.c_str(), &st) != 0) {
        out.push_back({true, false, key, "\"" + path + "\": " + std::strerror(errno) + std::string(why)});
    } else if (!S_ISREG(st.st_mode)) {
        out.push_back({true, false, key, "\"" + path + "\": not a regular file"});
    } else if (::access(path.c_str(), X_OK) != 0) {
        out.push_back({true, false, key, "\"" + path + "\": not executable (" + std::strerror(errno) + "): chmod +x it"});
    }
}

bool has(const std::vector<std::string>& a, std::string_view flag) { return std::find(a.begin(), a.end(), flag) != a.end(); }

// The value of the last `-l` / `--lcores` (or joined: -l0,1), as EAL takes it; "" when none.
std::string lcore_list(const std::vector<std::string>& a) {
    std::string out;
    for (std::size_t i = 0; i < a.size(); ++i) {
        if ((a[i] == "-l" || a[i] == "--lcores") && i + 1 < a.size()) out = a[i + 1];
        else if (a[i].rfind("-l", 0) == 0 && a[i].size() > 2 && a[i][2] != '-') out = a[i].substr(2);
        else if (a[i].rfind("--lcores=", 0) == 0) out = a[i].substr(9);
    }
    return out;
}

// The CPUs of an EAL core list ("0", "0,1", "2-3", "1@2" forms: the lcore ids).
std::vector<int> cores_of(const std::string& list) {
    std::vector<int> out;
    std::size_t i = 0;
    while (i < list.size()) {
        std::size_t j = list.find(',', i);
        if (j == std::string::npos) j = list.size();
        std::string part = list.substr(i, j - i);
        part = part.substr(0, part.find('@'));
        const auto dash = part.find('-');
        try {
            if (dash == std::string::npos) {
                out.push_back(std::stoi(part));
            } else {
                for (int k = std::stoi(part.substr(0, dash)); k <= std::stoi(part.substr(dash + 1)); ++k) out.push_back(k);
            }
        } catch (...) {
            // EAL itself reports a malformed list, with its own words.
        }
        i = j + 1;
    }
    return out;
}

std::string driver_of(const std::string& device) { return device.substr(0, device.find(',')); }

} // namespace

std::vector<problem> runtime_problems(const cfg::config& c, const std::vector<std::string>& eal_extra) {
    std::vector<problem> out;
    const auto& h = c.hooks;
    const std::string_view fence_why =
        c.protocol.require_fence ? " (protocol.require_fence = true: no takeover can ever complete without it)" : "";
    executable(out, "hooks.fence", h.fence, fence_why);
    for (const auto& [key, path] : {std::pair{"hooks.notify", &h.notify}, {"hooks.on_primary", &h.on_primary},
                                    {"hooks.on_monitor", &h.on_monitor}, {"hooks.on_standby", &h.on_standby},
                                    {"hooks.on_fault", &h.on_fault}, {"hooks.boot_peer", &h.boot_peer},
                                    {"hooks.drain", &h.drain}, {"hooks.recover", &h.recover}, {"hooks.undrain", &h.undrain}})
        executable(out, key, *path, "");
    for (std::size_t i = 0; i < c.health.size(); ++i) {
        const auto& k = c.health[i];
        const std::string key = "health[" + std::to_string(i) + "].target";
        if (k.kind == "script") executable(out, key, k.target, " (the check would fail at once: the node in fault)");
        if (k.kind == "process" && k.target.find('/') != std::string::npos && k.target.front() != '/' &&
            k.target.find(' ') == std::string::npos)
            out.push_back({true, false, key, "\"" + k.target + "\": a relative path never matches: give a name, an absolute path or a command line"});
    }

    // Interfaces this network namespace must have: the vdev's own (net_tap makes its own),
    // the kernel interface, every group's, the notice interface.
    const auto missing = [&](const std::string& key, const std::string& name) {
        if (!name.empty() && name != "none" && if_nametoindex(name.c_str()) == 0)
            out.push_back({true, true, key, "interface \"" + name + "\" does not exist in this network namespace"});
    };
    if (const auto at = c.port.device.find(",iface="); at != std::string::npos && driver_of(c.port.device).rfind("net_tap", 0) != 0)
        missing("port.device", c.port.device.substr(at + 7, c.port.device.find(',', at + 7) - at - 7));
    if (c.port.mode == cfg::address_mode::shared) {
        missing("port.kernel_interface", c.port.kernel_interface);
        for (std::size_t g = 0; g < c.groups.size(); ++g)
            if (c.groups[g].interface != c.port.kernel_interface)
                missing((c.explicit_groups ? "group[" + std::to_string(g) + "]" : std::string("group")) + ".interface",
                        c.groups[g].interface);
    }
    missing("port.notice_interface", c.port.notice_interface);

    // Timing. An adaptive engine sleeps up to idle_max_sleep_us once its port has gone
    // quiet and no timer of its own is due sooner; a primary has none for most of the time,
    // so the first probe after such a sleep is answered that late. The monitor's probes
    // keep it awake while they come faster than it falls asleep; a cap far above the window
    // is a false takeover at the first quiet moment.
    const std::uint64_t window_us = std::uint64_t{c.detect.interval_us} * c.detect.miss;
    if (c.engine.idle == cfg::idle_policy::adaptive) {
        const std::string what = "engine.idle_max_sleep_us = " + std::to_string(c.engine.idle_max_sleep_us) +
                                 " against the detection window of " + std::to_string(window_us) +
                                 " us (detect.interval_us x detect.miss)";
        if (c.engine.idle_max_sleep_us >= 10 * window_us)
            out.push_back({true, false, "engine.idle_max_sleep_us",
                           what + ": a primary asleep that long misses the whole window; keep the cap under the window"});
        else if (c.engine.idle_max_sleep_us >= window_us)
            out.push_back({false, false, "engine.idle_max_sleep_us",
                           what + ": a primary that falls asleep answers a window late; keep the cap under the window"});
    }

    // EAL arguments against the config.
    std::vector<std::string> eal = c.port.eal_args;
    eal.insert(eal.end(), eal_extra.begin(), eal_extra.end());
    const std::string drv = driver_of(c.port.device);
    if (drv.rfind("net_memif", 0) == 0 && has(eal, "--no-huge"))
        out.push_back({true, false, "port.eal", "--no-huge with a memif port (" + drv + "): memif shares its rings in hugepages"});
    for (std::size_t i = 0; i + 1 < eal.size(); ++i)
        if (eal[i] == "--vdev" && driver_of(eal[i + 1]) == drv)
            out.push_back({true, false, "port.eal", "--vdev " + eal[i + 1] + " and port.device name the same device: give it once, in port.device"});
    const std::string lc = lcore_list(eal);
    const auto cores = cores_of(lc);
    const std::size_t need = c.engine.mode == cfg::lcore_mode::pipelined ? 2 : 1;
    if (!lc.empty() && cores.size() < need)
        out.push_back({true, false, "port.eal", "-l " + lc + ": engine.mode = \"pipelined\" needs two lcores (RX and role), e.g. -l 0,1"});
    if (lc.empty() && !has(eal, "-c") && !has(eal, "--lcores"))
        out.push_back({false, false, "port.eal", "no -l: EAL takes every CPU for lcores, and the engine the first: name its core"});
    return out;
}

std::vector<problem> stall_floor_problems(const cfg::config& c, unsigned spin_ms) {
    std::vector<problem> out;
    const auto cores = cores_of(lcore_list(c.port.eal_args));
    cpu_set_t old;
    CPU_ZERO(&old);
    const bool pinned = !cores.empty() && sched_getaffinity(0, sizeof old, &old) == 0 && [&] {
        cpu_set_t one;
        CPU_ZERO(&one);
        CPU_SET(cores.back(), &one);
        return sched_setaffinity(0, sizeof one, &one) == 0;
    }();
    using clk = std::chrono::steady_clock;
    const auto end = clk::now() + std::chrono::milliseconds(spin_ms);
    auto last = clk::now();
    clk::duration worst{};
    for (auto now = last; now < end; now = clk::now()) {
        worst = std::max(worst, now - last);
        last = now;
    }
    if (pinned) sched_setaffinity(0, sizeof old, &old);
    const auto worst_us = std::chrono::duration_cast<std::chrono::microseconds>(worst).count();
    const std::uint64_t window_us = std::uint64_t{c.detect.interval_us} * c.detect.miss;
    if (static_cast<std::uint64_t>(worst_us) >= window_us)
        out.push_back({false, false, "detect.interval_us",
                       "the window of " + std::to_string(window_us) + " us is below this host's stall floor: a thread spinning " +
                           std::to_string(spin_ms) + " ms" + (pinned ? " on CPU " + std::to_string(cores.back()) : "") +
                           " lost its core for " + std::to_string(worst_us) +
                           " us. At normal priority such a gap is a false takeover; run the engine at SCHED_FIFO on an isolated "
                           "core (engine.sched, README \"On a real NIC\") and soak it (bench/failover/run.sh)"});
    return out;
}

} // namespace heartwire::app
