#include "control/group_control.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <thread>

#include "control/log.hpp"
#include "control/text.hpp"

namespace heartwire::control {

namespace {


// A role's first address, IPv4 or (an IPv6-only role) IPv6.
std::string first_address(const cfg::addresses_cfg& a, bool primary) {
    const auto v4 = cfg::role_v4(a, primary);
    if (!v4.empty()) return v4.front().to_string();
    const auto& v6 = cfg::role_v6(a, primary);
    return v6.empty() ? std::string{} : v6.front().to_string();
}

} // namespace

group_control::group_control(const cfg::config& c, hook_queue& q, engine_link& e)
    : c_(c), queue_(q), e_(e), g_(c.groups.size()) {}

std::string group_control::group_tag(std::size_t g) const {
    return c_.groups.size() > 1 && g < c_.groups.size() ? fmt("group %u: ", c_.groups[g].id) : std::string{};
}

std::vector<std::string> group_control::env(std::size_t g) const {
    const auto& gr = c_.groups[g < c_.groups.size() ? g : 0];
    return {"HEARTWIRE_NODE=" + c_.node.name, "HEARTWIRE_NODE_ID=" + std::to_string(c_.node.id),
            "HEARTWIRE_GROUP=" + std::to_string(gr.id), "HEARTWIRE_PRIMARY=" + first_address(gr.addresses, true),
            "HEARTWIRE_MONITOR=" + first_address(gr.addresses, false), "HEARTWIRE_SOCKET=" + c_.control.socket};
}

void group_control::post(fsm::command_kind k, std::uint32_t arg, std::uint16_t group) {
    engine_command cmd;
    cmd.k = engine_command::kind::command;
    cmd.cmd = k;
    cmd.arg = arg;
    cmd.group = group;
    post(cmd);
}

// The command ring is sized for a command to every group; a burst larger than that waits
// for the engine to take some (it does every turn) rather than losing one.
void group_control::post(const engine_command& cmd) {
    for (int tries = 0; tries < 200; ++tries) {
        if (e_.post(cmd)) return;
        std::this_thread::sleep_for(std::chrono::microseconds{500});
    }
    log::write(log::level::error, "engine command ring full for 100 ms: command lost");
}

void group_control::on_role(std::size_t g, role from, role to, std::uint64_t epoch) {
    if (g >= g_.size()) return;
    if (from == role::draining) g_[g].draining = false;
    notify(to, epoch, g);
}

void group_control::notify(role r, std::uint64_t epoch, std::size_t g) {
    const std::string name(to_string(r));
    // notify <role> <epoch> <node name> <group id>: the group is the fourth argument. Or,
    // keepalived's: notify INSTANCE <name> MASTER|BACKUP|FAULT|STOP <priority>, discovery's
    // passing roles left out (keepalived has none), the stop (back to init) as STOP.
    std::vector<std::string> argv;
    const auto& gc = c_.groups[g];
    if (c_.hooks.notify_args == "keepalived") {
        const char* st = r == role::primary || r == role::draining                       ? "MASTER"
                         : r == role::monitor || r == role::standby || r == role::fenced ? "BACKUP"
                         : r == role::fault                                              ? "FAULT"
                         : r == role::init                                               ? "STOP"
                                                                                         : nullptr;
        if (st)
            argv = {c_.hooks.notify, "INSTANCE", gc.name.empty() ? "group" + std::to_string(gc.id) : gc.name, st,
                    std::to_string(gc.priority)};
    } else {
        argv = {c_.hooks.notify, name, std::to_string(epoch), c_.node.name, std::to_string(gc.id)};
    }
    if (!c_.hooks.notify.empty() && !argv.empty())
        queue_.submit({.kind = "notify", .argv = argv, .env = env(g), .merge = hook_merge::never}); // every role change, in order
    const std::string* specific = r == role::primary   ? &c_.hooks.on_primary
                                  : r == role::monitor ? &c_.hooks.on_monitor
                                  : r == role::standby ? &c_.hooks.on_standby
                                  : r == role::fault   ? &c_.hooks.on_fault
                                                       : nullptr;
    if (specific && !specific->empty())
        queue_.submit({.kind = "on_" + name, .argv = {*specific, std::to_string(epoch), std::to_string(gc.id)}, .env = env(g)});
}

void group_control::on_run_hook(std::size_t g, const fsm::action& a, std::uint64_t wall_ns) {
    const std::string& path = a.hook == fsm::hook_kind::fence       ? c_.hooks.fence
                              : a.hook == fsm::hook_kind::boot_peer ? c_.hooks.boot_peer
                                                                    : c_.hooks.recover;
    if (path.empty()) {
        // Only recover is optional: the machine asks for the others when set. One asked for
        // after a reload took its hook away gets a failed answer, not silence.
        if (a.hook != fsm::hook_kind::recover) {
            engine_command cmd;
            cmd.ok = false;
            cmd.hook = a.hook;
            cmd.group = static_cast<std::uint16_t>(g);
            post(cmd);
        }
        return;
    }
    log::write_at(log::level::info, wall_ns, group_tag(g) + fmt("%s for node %u requested", s(fsm::to_string(a.hook)).c_str(), a.peer_id));
    const std::string peer = std::to_string(a.peer_id);
    // One fence or boot for a node, however many groups ask: merged by peer; the answer
    // reaches every group that asked.
    hook_request req{.kind = s(fsm::to_string(a.hook)), .argv = {path, peer, a.peer_mac.to_string()}, .env = env(g)};
    // A fence or boot of this peer still waiting covers this one (a flapping or forged peer).
    if (a.hook != fsm::hook_kind::recover) {
        req.merge = hook_merge::same_key;
        req.key = peer;
    }
    const auto id = queue_.submit(std::move(req));
    if (a.hook != fsm::hook_kind::recover) pending_[id] = {a.hook, static_cast<std::uint16_t>(g)};
}

// Seed 003 claim 4: stop taking new work; done when the drain hook exits, or when the
// application reports nothing in flight, or (with neither) at once.
void group_control::on_drain(std::size_t g) {
    if (g >= g_.size()) return;
    auto& gc = g_[g];
    gc.draining = true;
    if (!c_.hooks.drain.empty()) {
        std::vector<std::string> argv{c_.hooks.drain};
        if (c_.groups.size() > 1) argv.push_back(std::to_string(c_.groups[g].id));
        gc.drain_hook_id = queue_.submit({.kind = "drain", .argv = std::move(argv), .env = env(g)});
        return;
    }
    if (app_inflight_ <= 0) {
        gc.draining = false;
        post(fsm::command_kind::drain_done, 0, static_cast<std::uint16_t>(g));
    }
}

void group_control::on_undrain(std::size_t g, std::uint32_t peer, std::uint64_t wall_ns) {
    if (g >= g_.size()) return;
    // The handover did not complete: this node stays primary and takes work again.
    log::write_at(log::level::warn, wall_ns,
                  group_tag(g) + fmt("primary with the application drained (handover to node %u did not complete, or this node serves again): undraining", peer));
    g_[g].draining = false;
    g_[g].drain_hook_id = 0; // its late exit must not report a drain
    if (!c_.hooks.undrain.empty()) {
        std::vector<std::string> argv{c_.hooks.undrain, std::to_string(peer)};
        if (c_.groups.size() > 1) argv.push_back(std::to_string(c_.groups[g].id));
        // The drain kind: never concurrent with a drain still running, and after it.
        queue_.submit({.kind = "drain", .argv = std::move(argv), .env = env(g), .merge = hook_merge::never});
    }
}

// One run (or dropped request) answers every request merged into it, and so reaches the
// engine once: a fence flood never floods the command ring.
void group_control::on_hook_done(const hook_completion& h) {
    const auto& r = h.result;
    const auto lvl = r.ok() ? log::level::info : log::level::warn;
    const std::string shared = h.tickets.size() > 1 ? fmt(" (answers %zu requests)", h.tickets.size()) : "";
    if (h.dropped)
        log::write(lvl, fmt("hook %s %s", r.name.c_str(), r.error.c_str()) + shared);
    else
        log::write(lvl, fmt("hook %s finished: %s", r.name.c_str(),
                            r.spawn_failed ? r.error.c_str()
                            : r.timed_out  ? "timed out"
                                           : ("exit " + std::to_string(r.exit_code)).c_str()) + shared);
    const auto answers = [&](std::uint64_t t) { return std::find(h.tickets.begin(), h.tickets.end(), t) != h.tickets.end(); };
    for (std::size_t g = 0; g < g_.size(); ++g) {
        if (g_[g].drain_hook_id == 0 || !answers(g_[g].drain_hook_id)) continue;
        g_[g].drain_hook_id = 0;
        g_[g].draining = false;
        post(fsm::command_kind::drain_done, static_cast<std::uint32_t>(std::max<std::int64_t>(app_inflight_, 0)),
             static_cast<std::uint16_t>(g));
        return;
    }
    // Every group that asked (one merged fence answers them all), once each.
    std::vector<std::pair<fsm::hook_kind, std::uint16_t>> answer;
    for (const auto t : h.tickets) {
        const auto it = pending_.find(t);
        if (it == pending_.end()) continue;
        if (std::find(answer.begin(), answer.end(), it->second) == answer.end()) answer.push_back(it->second);
        pending_.erase(it);
    }
    for (const auto& [hook, group] : answer) {
        engine_command cmd;
        cmd.ok = r.ok();
        cmd.hook = hook;
        cmd.group = group;
        post(cmd);
    }
}

void group_control::health(std::size_t g, const health_monitor::check_state* f) {
    if (g >= g_.size()) return;
    auto& gc = g_[g];
    const bool failed = f != nullptr;
    if (failed == gc.health_fault) return;
    gc.health_fault = failed;
    const auto gi = static_cast<std::uint16_t>(g);
    if (failed) {
        gc.health_detail = f->cfg.name + ": " + f->last_detail;
        log::write(log::level::warn, group_tag(g) + "health check " + gc.health_detail + ": fault");
        if (!app_fault_ && !gc.app_fault) post(fsm::command_kind::fault, static_cast<std::uint32_t>(f->kind), gi);
    } else {
        log::write(log::level::info, group_tag(g) + "health checks pass again: fault cured");
        if (!app_fault_ && !gc.app_fault) post(fsm::command_kind::fault_cleared, 0, gi);
    }
}

std::string group_control::fault(std::optional<std::size_t> one, fsm::fault_kind k, const std::string& detail) {
    if (one) {
        const std::size_t g = *one;
        log::write(log::level::warn, group_tag(g) + "fault reported through the control socket: " + s(fsm::to_string(k)) + ":" + detail);
        g_[g].app_fault = true;
        // Posted again on a repeated report (a lost command, another kind): the engine
        // takes a repeat as a no-op. Not over a failing health check's own fault.
        if (!g_[g].health_fault) post(fsm::command_kind::fault, static_cast<std::uint32_t>(k), static_cast<std::uint16_t>(g));
        return "ok: " + group_tag(g) + "fault " + s(fsm::to_string(k)) + " reported\n";
    }
    fault_detail_ = s(fsm::to_string(k)) + ":" + detail;
    log::write(log::level::warn, "fault reported through the control socket: " + fault_detail_);
    app_fault_ = true;
    for (std::size_t i = 0; i < g_.size(); ++i)
        if (!g_[i].health_fault && !g_[i].app_fault)
            post(fsm::command_kind::fault, static_cast<std::uint32_t>(k), static_cast<std::uint16_t>(i));
    return "ok: fault " + s(fsm::to_string(k)) + " reported\n";
}

std::string group_control::clear(std::optional<std::size_t> one) {
    if (one) {
        const std::size_t g = *one;
        g_[g].app_fault = false;
        if (g_[g].health_fault) return "ok: " + group_tag(g) + "a health check still fails\n";
        if (app_fault_) return "ok: " + group_tag(g) + "the node-wide application fault still holds (clear without --group)\n";
        post(fsm::command_kind::fault_cleared, 0, static_cast<std::uint16_t>(g));
        return "ok: " + group_tag(g) + "fault cleared; the group recovers and rejoins\n";
    }
    // Every application fault: the node-wide one and each group's.
    bool any = app_fault_;
    for (auto& gc : g_) any = any || gc.app_fault;
    if (!any) return "ok: no application fault to clear\n";
    app_fault_ = false;
    fault_detail_.clear();
    bool still = false;
    for (std::size_t i = 0; i < g_.size(); ++i) {
        g_[i].app_fault = false;
        if (g_[i].health_fault) still = true;
        else post(fsm::command_kind::fault_cleared, 0, static_cast<std::uint16_t>(i));
    }
    if (still) return "ok: application fault cleared; a health check still fails\n";
    return "ok: fault cleared; the node recovers and rejoins\n";
}

void group_control::inflight(std::optional<std::size_t> one, std::int64_t n) {
    app_inflight_ = n;
    for (std::size_t i = 0; i < g_.size(); ++i) {
        if (one && i != *one) continue;
        if (g_[i].draining && g_[i].drain_hook_id == 0 && n == 0) {
            g_[i].draining = false;
            post(fsm::command_kind::drain_done, 0, static_cast<std::uint16_t>(i));
        }
    }
}

} // namespace heartwire::control
