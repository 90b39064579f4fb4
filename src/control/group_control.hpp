#pragma once
// The control side's bookkeeping between an engine and the operator's world, per address
// group, behind engine_link (so it runs and is tested without EAL):
//   - faults merged: a failing health check and an application fault (heartwirectl fault,
//     node-wide or for one group) are one fault to the engine; it is raised once, when the
//     first cause appears, and cleared once, when the last goes;
//   - a switchover's drain sequenced (seed 003 claims 4, 16): the drain hook, or the
//     application's in-flight count reaching 0, or neither (at once), then drain_done to the
//     engine with what is still in flight; an undrain abandons a drain in progress, so its
//     late end reports nothing;
//   - the engine's hook requests (fence, boot_peer, recover) run through the hook queue, one
//     run per peer however many groups ask, and the answer returned to every group that
//     asked, once each;
//   - role-change hooks (notify in heartwire's or keepalived's arguments, on_<role>).
// Commands that find the engine's ring full wait for room (up to 100 ms) rather than being
// lost. Control layer: no DPDK; the control thread only.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "control/health.hpp"
#include "control/hook_queue.hpp"
#include "heartwire/config.hpp"
#include "heartwire/engine_link.hpp"

namespace heartwire::control {

class group_control {
public:
    // `c` is read on every call (a reload that replaces it in place is seen at once).
    group_control(const cfg::config& c, hook_queue& q, engine_link& e);

    // The engine's actions.
    void on_role(std::size_t g, role from, role to, std::uint64_t epoch);
    void on_run_hook(std::size_t g, const fsm::action& a, std::uint64_t wall_ns);
    void on_drain(std::size_t g);
    void on_undrain(std::size_t g, std::uint32_t peer, std::uint64_t wall_ns);
    // A queued hook finished (hook_queue::poll): a drain's end or the answer to hook requests.
    void on_hook_done(const hook_completion& h);

    // Health checks: the group's first failing check, or null when they all pass (the text
    // of the fault is made only when the state changes).
    void health(std::size_t g, const health_monitor::check_state* failed);
    // heartwirectl fault / clear / inflight, for one group or (nullopt) the node. The
    // answers are heartwirectl's lines.
    std::string fault(std::optional<std::size_t> g, fsm::fault_kind kind, const std::string& detail);
    std::string clear(std::optional<std::size_t> g);
    void inflight(std::optional<std::size_t> g, std::int64_t n);

    // One command to the engine, waiting for room in its ring (100 ms at most, then logged).
    void post(fsm::command_kind k, std::uint32_t arg = 0, std::uint16_t group = all_groups);
    void post(const engine_command& cmd);

    // The hooks' environment (HEARTWIRE_NODE, _GROUP, _PRIMARY, ...).
    std::vector<std::string> env(std::size_t g) const;
    std::string group_tag(std::size_t g) const; // "group 7: " with many groups, else ""

    std::int64_t app_inflight() const noexcept { return app_inflight_; } // -1: never reported
    const std::string& fault_detail() const noexcept { return fault_detail_; }
    bool draining(std::size_t g) const noexcept { return g < g_.size() && g_[g].draining; }
    bool faulted(std::size_t g) const noexcept { return g < g_.size() && (g_[g].health_fault || g_[g].app_fault || app_fault_); }
    const std::string& health_detail(std::size_t g) const { return g_[g].health_detail; }
    std::size_t pending_hooks() const noexcept { return pending_.size(); }

private:
    struct group {
        bool draining{false};
        std::uint64_t drain_hook_id{0};
        bool health_fault{false};
        bool app_fault{false};          // heartwirectl --group N fault
        std::string health_detail;
    };
    void notify(role r, std::uint64_t epoch, std::size_t g);
    const cfg::config& c_;
    hook_queue& queue_;
    engine_link& e_;
    std::vector<group> g_;
    // queue tickets whose result the engine waits for: which hook, for which group
    std::map<std::uint64_t, std::pair<fsm::hook_kind, std::uint16_t>> pending_;
    std::int64_t app_inflight_{-1};
    bool app_fault_{false};             // heartwirectl fault: every group
    std::string fault_detail_;
};

} // namespace heartwire::control
