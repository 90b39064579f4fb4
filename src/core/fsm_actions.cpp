#include "fsm_detail.hpp"

#include <algorithm>

namespace heartwire::fsm {

using wire::hb_type;

std::string_view to_string(address_id a) noexcept { return a == address_id::primary ? "primary" : "monitor"; }

std::string_view to_string(hook_kind h) noexcept {
    switch (h) {
    case hook_kind::boot_peer:
        return "boot_peer";
    case hook_kind::fence:
        return "fence";
    case hook_kind::recover:
        return "recover";
    }
    return "unknown";
}

std::string_view to_string(note n) noexcept {
    switch (n) {
#define HW_X(name)                                                                               \
    case note::name:                                                                             \
        return #name;
        HEARTWIRE_NOTES(HW_X)
#undef HW_X
    }
    return "unknown";
}

std::string_view to_string(fault_kind f) noexcept {
    switch (f) {
    case fault_kind::none:
        return "none";
    case fault_kind::script:
        return "script";
    case fault_kind::interface:
        return "interface";
    case fault_kind::process:
        return "process";
    case fault_kind::application:
        return "application";
    }
    return "unknown";
}

bool parse_fault_kind(std::string_view v, fault_kind& out) noexcept {
    for (auto f : {fault_kind::script, fault_kind::interface, fault_kind::process, fault_kind::application}) {
        if (v == to_string(f)) {
            out = f;
            return true;
        }
    }
    return false;
}

std::string_view to_string(action_kind a) noexcept {
    switch (a) {
#define HW_X(name)                                                                               \
    case action_kind::name:                                                                      \
        return #name;
        HEARTWIRE_ACTIONS(HW_X)
#undef HW_X
    }
    return "unknown";
}

params params::from_config(const cfg::config& c, const mac_addr& mac) noexcept {
    constexpr std::uint64_t us = 1'000, ms = 1'000'000;
    params p;
    p.node_id = c.node.id;
    p.priority = c.node.priority;
    p.mac = mac;
    p.addr[0] = c.addresses.primary.addr;
    p.addr[1] = c.addresses.monitor.addr;
    p.answer_icmp = c.port.mode == cfg::address_mode::exclusive;
    p.probe = c.detect.probe;
    p.interval_ns = c.detect.interval_us * us;
    p.miss = c.detect.miss;
    p.stall_threshold_ns = std::uint64_t{c.detect.stall_threshold_us} * us;
    p.garp_repeat = c.garp.repeat;
    p.garp_interval_ns = c.garp.interval_us * us;
    p.garp_refresh_ns = c.garp.refresh_ms * ms;
    p.discovery_probes = c.protocol.discovery_probes;
    p.discovery_interval_ns = c.protocol.discovery_interval_ms * ms;
    p.discovery_wait_ns = c.protocol.discovery_wait_ms * ms;
    p.announce_interval_ns = c.protocol.announce_interval_ms * ms;
    p.peer_timeout_ns = c.protocol.peer_timeout_ms * ms;
    p.stay_down_interval_ns = c.protocol.stay_down_interval_ms * ms;
    p.preempt = c.protocol.preempt;
    p.preempt_delay_ns = c.protocol.preempt_delay_ms * ms;
    p.require_fence = c.protocol.require_fence;
    p.drain_timeout_ns = c.protocol.drain_timeout_ms * ms;
    p.flap_hold_ns = c.protocol.flap_hold_ms * ms;
    p.has_boot_peer = !c.hooks.boot_peer.empty();
    p.has_fence = !c.hooks.fence.empty();
    return p;
}

const peer* find_peer(const state& s, std::uint32_t id) noexcept {
    for (const auto& p : s.peers)
        if (p.valid && p.id == id) return &p;
    return nullptr;
}


namespace detail {

using wire::hb_type;

// ------------------------------------------------------------------ small emitters

std::uint16_t my_flags(const state& s) noexcept {
    std::uint16_t f = 0;
    if (s.holds[0]) f |= wire::hb_flag_holds_primary;
    if (s.holds[1]) f |= wire::hb_flag_holds_monitor;
    if (s.fault != fault_kind::none) f |= wire::hb_flag_fault;
    if (s.r == role::primary && !s.monitor_alive && s.heard_monitor_id != 0) f |= wire::hb_flag_monitor_missing;
    return f;
}

wire::hb_msg make_hb(state& s, hb_type t, std::uint64_t now) noexcept {
    wire::hb_msg m;
    m.type = t;
    m.role = static_cast<std::uint8_t>(s.r);
    m.priority = s.p.priority;
    m.node_id = s.p.node_id;
    m.epoch = s.epoch;
    m.seq = ++s.hb_seq;
    m.ts_ns = now;
    m.flags = my_flags(s);
    return m;
}

void send_hb(action_sink& out, const mac_addr& dst, const wire::hb_msg& m) noexcept {
    action a;
    a.kind = action_kind::send_heartbeat;
    a.dst = dst;
    a.hb = m;
    out.emit(a);
}

void announce(state& s, std::uint64_t now, action_sink& out) noexcept {
    send_hb(out, mac_addr::heartwire_group(), make_hb(s, hb_type::announce, now));
    ++s.c.announces_sent;
    s.next_announce_ns = now + s.p.announce_interval_ns;
}

void emit_addr(action_sink& out, action_kind k, address_id which, ipv4_addr addr) noexcept {
    action a;
    a.kind = k;
    a.which = which;
    a.addr = addr;
    out.emit(a);
}

void send_garp(state& s, address_id which, std::uint64_t now, action_sink& out) noexcept {
    const auto i = idx(which);
    emit_addr(out, action_kind::send_garp, which, s.p.addr[i]);
    ++s.c.garps_sent;
    if (s.garp_left[i] > 0) --s.garp_left[i];
    if (s.garp_left[i] > 0) {
        s.next_garp_ns[i] = now + s.p.garp_interval_ns;
    } else {
        s.next_garp_ns[i] = 0;
        s.next_refresh_ns[i] = s.p.garp_refresh_ns ? now + s.p.garp_refresh_ns : 0;
    }
}

// Claim: announce ownership at once with the first GARP of the burst (DESIGN "takeover").
void claim(state& s, address_id which, std::uint64_t now, action_sink& out) noexcept {
    const auto i = idx(which);
    if (!s.holds[i]) {
        s.holds[i] = true;
        emit_addr(out, action_kind::claim_address, which, s.p.addr[i]);
    }
    s.garp_left[i] = s.p.garp_repeat;
    send_garp(s, which, now, out);
}

void release(state& s, address_id which, action_sink& out) noexcept {
    const auto i = idx(which);
    if (!s.holds[i]) return;
    s.holds[i] = false;
    s.garp_left[i] = 0;
    s.next_garp_ns[i] = 0;
    s.next_refresh_ns[i] = 0;
    emit_addr(out, action_kind::release_address, which, s.p.addr[i]);
}

void run_hook(action_sink& out, hook_kind h, std::uint32_t peer_id, const mac_addr& mac) noexcept {
    action a;
    a.kind = action_kind::run_hook;
    a.hook = h;
    a.peer_id = peer_id;
    a.peer_mac = mac;
    out.emit(a);
}

// ------------------------------------------------------------------ roles

void start_discovery(state& s, std::uint64_t now) noexcept {
    s.disc_sent = 0;
    s.disc_next_ns = now;
    s.disc_held = false;
}

// The one place a role changes: same role is a no-op; otherwise report and run the entry
// actions of the new role.
void set_role(state& s, role to, std::uint64_t now, action_sink& out) noexcept {
    if (s.r == to) return;
    action a;
    a.kind = action_kind::role_changed;
    a.from = s.r;
    a.to = to;
    s.r = to;
    s.role_since_ns = now;
    a.epoch = s.epoch;
    out.emit(a);

    switch (to) {
    case role::probe_primary:
    case role::probe_monitor:
    case role::standby:
        start_discovery(s, now);
        s.det.stop();
        break;
    case role::monitor: {
        // Seed 000 claim 1: the monitor signals the primary address from now on. After a
        // flap, with a wider window (flap damping), so two starved nodes stop trading the
        // address back and forth.
        detector::params dp = s.det.config();
        dp.miss = s.p.miss;
        if (now < s.flap_until_ns) {
            dp.miss = std::min<std::uint32_t>(s.p.miss << s.flap_level, detector::max_miss);
            ++s.c.damped_watches;
        }
        s.det.configure(dp);
        s.det.start(now);
        break;
    }
    case role::primary:
        s.det.stop();
        s.monitor_alive = false;
        s.monitor_last_probe_ns = now;
        break;
    case role::init:
    case role::draining:
    case role::fenced:
    case role::fault:
        s.det.stop();
        break;
    }
    // Tell the group right away: discovery ties and takeovers resolve faster.
    announce(s, now, out);
}

const peer* watched_primary(const state& s) noexcept { return s.watched_id ? find_peer(s, s.watched_id) : nullptr; }

rank my_rank(const state& s) noexcept { return {s.epoch, s.p.priority, s.p.node_id}; }
// Ties among equals that hold no epoch yet (discovery, standbys): priority, then node id.
bool outranks(const peer& p, const state& s) noexcept {
    return std::pair{p.priority, p.id} > std::pair{s.p.priority, s.p.node_id};
}

// Seed 000 claims 1, 5: the monitor takes the primary address over. A fresh, larger epoch
// makes every older primary step down when it hears us (DESIGN "epochs").
void take_over(state& s, std::uint64_t now, action_sink& out, takeover_cause why) noexcept {
    const bool fenced = why == takeover_cause::fenced;
    if (!fenced) {
        const peer* old = watched_primary(s);
        s.failed_id = old ? old->id : s.watched_id;
        s.failed_mac = old ? old->mac : s.watched_mac;
    }
    if (why == takeover_cause::failure) {
        action t;
        t.kind = action_kind::takeover;
        t.peer_id = s.failed_id;
        t.peer_mac = s.failed_mac;
        t.last_answer_ns = s.det.last_answer_ns();
        t.decided_ns = now;
        out.emit(t);
    }
    // A handover the old primary agreed to needs no fence, no stay-down and no reboot.
    const bool failed = why == takeover_cause::failure || why == takeover_cause::fenced;
    // A two-node deployment can demand that the fence hook succeeds first (seed 003 claim 17).
    if (why == takeover_cause::failure && s.p.require_fence && s.p.has_fence && s.failed_id != 0) {
        if (!s.fence_pending) {
            s.fence_pending = true;
            s.det.stop();
            run_hook(out, hook_kind::fence, s.failed_id, s.failed_mac);
        }
        return;
    }
    s.fence_pending = false;
    s.switchover_pending = false;
    s.failed_seen_alive = false;
    ++s.c.takeovers;
    s.epoch = s.epoch + 1;
    claim(s, address_id::primary, now, out);
    // Seed 001 claim 1 / 002 [0028]: the monitor address is released for the next standby.
    release(s, address_id::monitor, out);
    set_role(s, role::primary, now, out);
    if (failed && s.failed_id != 0 && (s.p.has_boot_peer || s.p.has_fence)) {
        // Seed 003 claim 2: tell the old primary to stay down while it is fenced and booted
        // (000 claim 1). Without those hooks a stalled primary that wakes up steps down on
        // our epoch and rejoins as monitor: nobody is coming to reboot it.
        s.stay_down_active = true;
        s.stay_down_id = s.failed_id;
        s.stay_down_mac = s.failed_mac;
        s.next_stay_down_ns = now;
        if (s.p.has_fence && !s.p.require_fence) run_hook(out, hook_kind::fence, s.failed_id, s.failed_mac);
        if (s.p.has_boot_peer) run_hook(out, hook_kind::boot_peer, s.failed_id, s.failed_mac);
    }
    s.watched_id = 0;
}

void step_down(state& s, std::uint64_t now, action_sink& out, role to) noexcept {
    if (s.holds[0]) ++s.c.step_downs;
    release(s, address_id::primary, out);
    release(s, address_id::monitor, out);
    s.stay_down_active = false;
    set_role(s, to, now, out);
}

// ------------------------------------------------------------------ peers

peer* upsert_peer(state& s, const wire::frame& f, std::uint64_t now) noexcept {
    peer* slot = nullptr;
    for (auto& p : s.peers) {
        if (p.valid && p.id == f.hb.node_id) {
            slot = &p;
            break;
        }
        if (!slot && (!p.valid || now - p.last_heard_ns > s.p.peer_timeout_ns)) slot = &p;
    }
    if (!slot) {
        ++s.c.peer_table_full;
        return nullptr;
    }
    if (!slot->valid || slot->id != f.hb.node_id) *slot = peer{};
    slot->valid = true;
    slot->id = f.hb.node_id;
    slot->mac = f.eth.src;
    slot->r = static_cast<role>(f.hb.role);
    slot->priority = f.hb.priority;
    slot->epoch = f.hb.epoch;
    slot->flags = f.hb.flags;
    slot->last_heard_ns = now;
    return slot;
}

bool alive(const state& s, const peer& p, std::uint64_t now) noexcept {
    return p.valid && now - p.last_heard_ns <= s.p.peer_timeout_ns;
}

// Is there a live standby that should take the monitor address before us? ([0029]: the
// first standby is promoted; "first" = highest priority, then node id.)
const peer* live_monitor(const state& s, std::uint64_t now) noexcept {
    for (const auto& p : s.peers)
        if (alive(s, p, now) && (p.flags & wire::hb_flag_holds_monitor)) return &p;
    return nullptr;
}

// A node probing the monitor address right now (fresh from boot) competes for it too: two
// that find it free in the same instant must resolve by rank, not by whose claim is heard
// first (seed 002 FIG. 2: probes at the same time resolve by priority).
bool better_standby_exists(const state& s, std::uint64_t now) noexcept {
    for (const auto& p : s.peers)
        if (alive(s, p, now) && (p.r == role::standby || p.r == role::probe_monitor) && outranks(p, s)) return true;
    return false;
}

// ------------------------------------------------------------------ switchover and faults

void notice(action_sink& out, note n, std::uint32_t arg) noexcept {
    action a;
    a.kind = action_kind::notice;
    a.what = n;
    a.arg = arg;
    out.emit(a);
}

// Seed 003 claim 1: the second server asks the first to shut down; it takes over only when
// the first says it has drained.
void begin_switchover(state& s, std::uint64_t now, action_sink& out) noexcept {
    const peer* p = watched_primary(s);
    const mac_addr dst = p ? p->mac : s.primary_mac_hint;
    if (dst.is_zero()) {
        notice(out, note::switchover_refused);
        return;
    }
    s.switchover_pending = true;
    s.switchover_deadline_ns = now + s.p.drain_timeout_ns + s.p.peer_timeout_ns;
    send_hb(out, dst, make_hb(s, hb_type::shutdown_req, now));
    notice(out, note::switchover_started, p ? p->id : 0);
}

// Seed 003 claims 4, 16: stop taking new work, let in-flight work finish (or a deadline
// pass), then hand over with a compilation of what is still in flight.
void begin_drain(state& s, const mac_addr& to, std::uint32_t to_id, std::uint64_t now, action_sink& out) noexcept {
    if (s.r == role::draining) return;
    s.handover_mac = to;
    s.handover_id = to_id;
    s.drain_done = false;
    s.drain_inflight = 0;
    s.drained_sent_ns = 0;
    s.drain_deadline_ns = now + s.p.drain_timeout_ns;
    set_role(s, role::draining, now, out);
    action a;
    a.kind = action_kind::drain;
    a.peer_id = to_id;
    out.emit(a);
}

void send_drained(state& s, std::uint64_t now, action_sink& out) noexcept {
    auto m = make_hb(s, hb_type::drained, now);
    m.ack_seq = s.drain_inflight; // the compilation: how much work is still in flight
    send_hb(out, s.handover_mac, m);
    s.drained_sent_ns = now;
}

// A node that is not serving the primary address goes to `fault` holding nothing; the
// monitor address frees for the next standby (seed 003 claims 8, 11).
void enter_fault(state& s, std::uint64_t now, action_sink& out) noexcept {
    release(s, address_id::primary, out);
    release(s, address_id::monitor, out);
    s.switchover_pending = false;
    set_role(s, role::fault, now, out);
}

// Seed 003 claims 8-10: the primary tells the monitor what failed and asks whether it can
// take over.
void report_fault(state& s, std::uint64_t now, action_sink& out) noexcept {
    const peer* mon = live_monitor(s, now);
    if (!mon) {
        s.fault_answered = true;
        s.fault_can_take_over = false;
        notice(out, note::fault_no_takeover, static_cast<std::uint32_t>(s.fault));
        return;
    }
    auto m = make_hb(s, hb_type::fault_report, now);
    m.ack_seq = static_cast<std::uint64_t>(s.fault);
    send_hb(out, mon->mac, m);
}

} // namespace detail
} // namespace heartwire::fsm
