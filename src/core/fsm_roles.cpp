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
    case hook_kind::undrain:
        return "undrain";
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

params params::from_config(const cfg::config& c, const mac_addr& mac, std::size_t group) noexcept {
    constexpr std::uint64_t us = 1'000, ms = 1'000'000;
    cfg::group_cfg one;
    if (c.groups.empty()) {
        one.id = c.node.group;
        one.addresses = c.addresses;
        one.priority = c.node.priority;
        one.preempt = c.protocol.preempt;
    }
    const cfg::group_cfg& g = c.groups.empty() ? one : c.groups[std::min(group, c.groups.size() - 1)];
    params p;
    p.node_id = c.node.id;
    p.group = g.id;
    p.require_auth = c.auth.mode != cfg::auth_mode::none;
    p.defend_interval_ns = std::uint64_t{c.garp.defend_interval_ms} * ms;
    p.priority = g.priority;
    p.mac = mac;
    p.addr[0] = g.addresses.primary.addr;
    p.addr[1] = g.addresses.monitor.addr;
    const auto fill = [](role_addresses& r, ipv4_addr first, const std::vector<ipv4_prefix>& more,
                         const std::vector<ipv6_prefix>& v6) {
        r.v4[0] = first;
        r.n4 = first.is_zero() ? 0 : 1; // IPv6 only: no IPv4 at all
        for (const auto& a : more)
            if (r.n4 < r.v4.size()) r.v4[r.n4++] = a.addr;
        r.n6 = 0;
        for (const auto& a : v6)
            if (r.n6 < r.v6.size()) r.v6[r.n6++] = a.addr;
    };
    fill(p.addrs[0], g.addresses.primary.addr, g.addresses.primary_more, g.addresses.primary6);
    fill(p.addrs[1], g.addresses.monitor.addr, g.addresses.monitor_more, g.addresses.monitor6);
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
    p.preempt = g.preempt;
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
    // Seed 004: a node says whether its copy of the application's state is in sync (a
    // monitor: its replica; a primary: its follower's). Without a store there is nothing
    // to be out of sync with.
    if ((s.r == role::monitor || s.r == role::primary || s.r == role::draining) && replica_ok(s)) f |= wire::hb_flag_in_sync;
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
    m.group = s.p.group;
    m.incarnation = s.p.incarnation;
    return m;
}

void send_hb(action_sink& out, const mac_addr& dst, const wire::hb_msg& m) noexcept {
    action a;
    a.kind = action_kind::send_heartbeat;
    a.dst = dst;
    a.hb = m;
    out.emit(a);
}

// Announces carry the key ids we accept, so a peer moves its send key only once we take it.
void announce(state& s, std::uint64_t now, action_sink& out) noexcept {
    auto m = make_hb(s, hb_type::announce, now);
    for (const auto& p : s.peers) {
        if (p.valid && !p.down && (p.flags & wire::hb_flag_holds_primary) && alive(s, p, now)) {
            m.flags |= wire::hb_flag_primary_alive;
            break;
        }
    }
    auto& pl = s.announce_payload;
    pl[0] = std::byte{tlv_accepted_keys};
    pl[1] = std::byte{32};
    for (std::size_t i = 0; i < 32; ++i)
        pl[2 + i] = std::byte(static_cast<std::uint8_t>(s.my_keys[i / 8] >> ((i % 8) * 8)));
    m.payload = pl;
    send_hb(out, mac_addr::heartwire_group(), m);
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

void notice(action_sink& out, note n, std::uint32_t arg) noexcept {
    action a;
    a.kind = action_kind::notice;
    a.what = n;
    a.arg = arg;
    out.emit(a);
}

// One round of the role's announcements: a GARP for each IPv4 address (the role address
// first) and an unsolicited neighbour advertisement for each IPv6 one.
void announce_addresses(state& s, address_id which, action_sink& out) noexcept {
    const auto& r = s.p.addrs[idx(which)];
    for (std::size_t k = 0; k < r.n4; ++k) {
        emit_addr(out, action_kind::send_garp, which, r.v4[k]);
        ++s.c.garps_sent;
    }
    for (std::size_t k = 0; k < r.n6; ++k) {
        emit_addr6(out, action_kind::send_na, which, r.v6[k]);
        ++s.c.nas_sent;
    }
}

void emit_addr6(action_sink& out, action_kind k, address_id which, const ipv6_addr& addr) noexcept {
    action a;
    a.kind = k;
    a.which = which;
    a.addr6 = addr;
    out.emit(a);
}

void send_garp(state& s, address_id which, std::uint64_t now, action_sink& out) noexcept {
    const auto i = idx(which);
    announce_addresses(s, which, out);
    if (s.garp_left[i] > 0) --s.garp_left[i];
    if (s.garp_left[i] > 0) {
        s.next_garp_ns[i] = now + s.p.garp_interval_ns;
    } else {
        s.next_garp_ns[i] = 0;
        s.next_refresh_ns[i] = s.p.garp_refresh_ns ? now + s.p.garp_refresh_ns : 0;
    }
}

// A fresh burst of `garp_repeat` GARPs, the first one now: every ARP cache points at us.
void garp_burst(state& s, address_id which, std::uint64_t now, action_sink& out) noexcept {
    s.garp_left[idx(which)] = s.p.garp_repeat;
    send_garp(s, which, now, out);
}

// Claim: announce ownership at once with the first GARP of the burst (DESIGN "takeover").
void claim(state& s, address_id which, std::uint64_t now, action_sink& out) noexcept {
    const auto i = idx(which);
    if (!s.holds[i]) {
        s.holds[i] = true;
        emit_addr(out, action_kind::claim_address, which, s.p.addr[i]);
    }
    garp_burst(s, which, now, out);
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

namespace {

// Leaving a role ends everything that belonged to it, so no per-role state outlives its
// role (issue 8 item 7: a fence that succeeds late must not claim from fault or standby).
void exit_role(state& s, role from, role to, action_sink& out) noexcept {
    switch (from) {
    case role::monitor:
        s.det.stop();
        s.fence_pending = false;
        s.fence_retry_ns = 0;
        s.fence_failures = 0;
        s.switchover_pending = false;
        break;
    case role::primary:
        s.stay_down_active = false;
        s.monitor_alive = false;
        break;
    case role::draining:
        s.drain_done = false;
        s.drained_sent_ns = 0;
        break;
    default:
        break;
    }
    // Only a primary (or a primary handing over) holds the primary address, only the
    // monitor holds the monitor address.
    if (to != role::primary && to != role::draining) release(s, address_id::primary, out);
    if (to != role::monitor) release(s, address_id::monitor, out);
}

void enter_role(state& s, role to, std::uint64_t now) noexcept {
    switch (to) {
    case role::probe_primary:
    case role::probe_monitor:
    case role::standby:
        start_discovery(s, now);
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
        s.monitor_alive = false;
        s.monitor_last_probe_ns = now;
        break;
    default:
        break;
    }
}

} // namespace

// The one place a role changes: same role is a no-op; otherwise the old role's exit
// actions, the report, the new role's entry actions, and an announce.
void set_role(state& s, role to, std::uint64_t now, action_sink& out) noexcept {
    if (s.r == to) return;
    const role from = s.r;
    exit_role(s, from, to, out);
    action a;
    a.kind = action_kind::role_changed;
    a.from = from;
    a.to = to;
    s.r = to;
    s.role_since_ns = now;
    s.takeover_held_since_ns = 0;
    a.epoch = s.epoch;
    out.emit(a);
    enter_role(s, to, now);
    // Primary again with the application still drained (a handover that timed out, or a
    // node that drained, handed over or failed, and now serves again): take work again.
    if (to == role::primary && s.app_drained) {
        s.app_drained = false;
        action u;
        u.kind = action_kind::undrain;
        u.peer_id = s.handover_id;
        out.emit(u);
    }
    // Tell the group right away: discovery ties and takeovers resolve faster.
    announce(s, now, out);
}

const peer* watched_primary(const state& s) noexcept { return s.watched_id ? find_peer(s, s.watched_id) : nullptr; }
peer* find_peer_mut(state& s, std::uint32_t id) noexcept { return const_cast<peer*>(find_peer(s, id)); }

rank my_rank(const state& s) noexcept { return {s.epoch, s.p.priority, s.p.node_id}; }
// Ties among equals that hold no epoch yet (discovery, standbys): priority, then node id.
bool outranks(const peer& p, const state& s) noexcept {
    return std::pair{p.priority, p.id} > std::pair{s.p.priority, s.p.node_id};
}

bool alive(const state& s, const peer& p, std::uint64_t now) noexcept {
    return p.valid && !p.down && now - p.last_heard_ns <= s.p.peer_timeout_ns;
}

const peer* live_monitor(const state& s, std::uint64_t now) noexcept {
    for (const auto& p : s.peers)
        if (alive(s, p, now) && (p.flags & wire::hb_flag_holds_monitor)) return &p;
    return nullptr;
}

} // namespace detail
} // namespace heartwire::fsm
