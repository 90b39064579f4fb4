#include "heartwire/fsm.hpp"

#include <algorithm>

namespace heartwire::fsm {

using wire::hb_type;

std::string_view to_string(address_id a) noexcept { return a == address_id::primary ? "primary" : "monitor"; }

std::string_view to_string(hook_kind h) noexcept { return h == hook_kind::boot_peer ? "boot_peer" : "fence"; }

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
    p.has_boot_peer = !c.hooks.boot_peer.empty();
    p.has_fence = !c.hooks.fence.empty();
    return p;
}

const peer* find_peer(const state& s, std::uint32_t id) noexcept {
    for (const auto& p : s.peers)
        if (p.valid && p.id == id) return &p;
    return nullptr;
}

namespace {

constexpr std::size_t idx(address_id a) noexcept { return static_cast<std::size_t>(a); }

// ------------------------------------------------------------------ small emitters

std::uint16_t my_flags(const state& s) noexcept {
    std::uint16_t f = 0;
    if (s.holds[0]) f |= wire::hb_flag_holds_primary;
    if (s.holds[1]) f |= wire::hb_flag_holds_monitor;
    if (s.r == role::fault) f |= wire::hb_flag_fault;
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
    case role::monitor:
        // Seed 000 claim 1: the monitor signals the primary address from now on.
        s.det.start(now);
        break;
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
void take_over(state& s, std::uint64_t now, action_sink& out, bool failure, bool fenced = false) noexcept {
    if (!fenced) {
        const peer* old = watched_primary(s);
        s.failed_id = old ? old->id : s.watched_id;
        s.failed_mac = old ? old->mac : s.watched_mac;
        s.failed_last_answer_ns = s.det.last_answer_ns();
    }
    if (failure) {
        action t;
        t.kind = action_kind::takeover;
        t.peer_id = s.failed_id;
        t.peer_mac = s.failed_mac;
        t.last_answer_ns = s.det.last_answer_ns();
        t.decided_ns = now;
        out.emit(t);
    }
    // A two-node deployment can demand that the fence hook succeeds first (seed 003 claim 17).
    if (s.p.require_fence && s.p.has_fence && s.failed_id != 0 && !fenced) {
        if (!s.fence_pending) {
            s.fence_pending = true;
            s.det.stop();
            run_hook(out, hook_kind::fence, s.failed_id, s.failed_mac);
        }
        return;
    }
    s.fence_pending = false;
    ++s.c.takeovers;
    s.epoch = s.epoch + 1;
    claim(s, address_id::primary, now, out);
    // Seed 001 claim 1 / 002 [0028]: the monitor address is released for the next standby.
    release(s, address_id::monitor, out);
    set_role(s, role::primary, now, out);
    if (s.failed_id != 0 && (s.p.has_boot_peer || s.p.has_fence)) {
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
bool better_standby_exists(const state& s, std::uint64_t now) noexcept {
    for (const auto& p : s.peers)
        if (alive(s, p, now) && p.r == role::standby && outranks(p, s)) return true;
    return false;
}

// ------------------------------------------------------------------ frames

void on_heartbeat(state& s, const wire::frame& f, std::uint64_t now, action_sink& out) noexcept {
    const auto& m = f.hb;
    peer* pr = upsert_peer(s, f, now);
    const bool peer_holds_primary = (m.flags & wire::hb_flag_holds_primary) != 0;
    const bool peer_holds_monitor = (m.flags & wire::hb_flag_holds_monitor) != 0;

    // Epochs (DESIGN "Roles and the protocol"): a primary with a larger rank wins at once.
    if (peer_holds_primary && m.epoch > 0) {
        const rank theirs{m.epoch, m.priority, m.node_id};
        if (s.holds[0]) {
            if (theirs > my_rank(s)) {
                // Lost to a newer primary: hold nothing and listen for its stay-down; if none
                // comes within a peer timeout, rejoin through discovery.
                s.epoch = std::max(s.epoch, m.epoch);
                s.last_stay_down_heard_ns = now;
                step_down(s, now, out, role::fenced);
            } else {
                // We win: make sure every ARP cache points at us again (issue 3, item 4).
                ++s.c.address_conflicts;
                s.garp_left[0] = s.p.garp_repeat;
                send_garp(s, address_id::primary, now, out);
            }
        } else if (s.r == role::monitor && m.node_id != s.watched_id) {
            const peer* cur = watched_primary(s);
            if (!cur || m.epoch >= cur->epoch) {
                s.watched_id = m.node_id;
                s.watched_mac = f.eth.src;
            }
        }
    }
    if (!s.holds[0]) s.epoch = std::max(s.epoch, m.epoch);
    if (peer_holds_primary) s.primary_mac_hint = f.eth.src;

    // Two monitors: the higher rank keeps the address.
    if (peer_holds_monitor && s.holds[1] && pr && outranks(*pr, s)) {
        ++s.c.monitor_yields;
        release(s, address_id::monitor, out);
        set_role(s, role::standby, now, out);
    }

    // Discovery: another node probing the same address; the higher rank goes on (FIG. 1).
    if ((s.r == role::probe_primary || s.r == role::probe_monitor) && pr) {
        const bool same_target = static_cast<role>(m.role) == s.r;
        const address_id probing = s.r == role::probe_primary ? address_id::primary : address_id::monitor;
        const bool holds_it = probing == address_id::primary ? peer_holds_primary : peer_holds_monitor;
        if (holds_it || (same_target && outranks(*pr, s))) s.disc_held = true;
    }
    if (s.r == role::standby && peer_holds_monitor) s.disc_held = true;

    switch (m.type) {
    case hb_type::probe: {
        // Answer every probe: the primary answers the monitor (seed 000 claim 1), and the
        // probes tell the primary its monitor is alive (seed 003 claim 3).
        auto ack = make_hb(s, hb_type::ack, now);
        ack.ack_seq = m.seq;
        ack.ts_echo_ns = m.ts_ns;
        send_hb(out, f.eth.src, ack);
        ++s.c.acks_sent;
        if (s.holds[0] && static_cast<role>(m.role) == role::monitor) {
            s.heard_monitor_id = m.node_id;
            s.monitor_last_probe_ns = now;
            s.monitor_alive = true;
        }
        break;
    }
    case hb_type::ack:
        if (s.r == role::monitor && (m.node_id == s.watched_id || s.watched_id == 0) && peer_holds_primary) {
            if (s.det.on_answer(m.ack_seq, now)) {
                ++s.c.answers;
                if (m.ts_echo_ns <= now) {
                    s.last_rtt_ns = now - m.ts_echo_ns;
                    if (pr) pr->rtt_ns = s.last_rtt_ns;
                }
                s.watched_id = m.node_id;
                s.watched_mac = f.eth.src;
            } else {
                ++s.c.stale_answers;
            }
        }
        break;
    case hb_type::stay_down:
        // Seed 003 claim 2: a newer primary tells the old one to stay down; it holds nothing
        // while it hears them. A freshly booted node (discovery roles) is not what it means.
        ++s.c.stay_downs_heard;
        if (s.r == role::fenced) {
            s.last_stay_down_heard_ns = now;
        } else if ((s.holds[0] || s.r == role::primary || s.r == role::draining) && m.epoch >= s.epoch) {
            s.epoch = std::max(s.epoch, m.epoch);
            s.last_stay_down_heard_ns = now;
            step_down(s, now, out, role::fenced);
        }
        break;
    case hb_type::release:
        // A clean shutdown: no need to wait for missed probes (like VRRP priority 0).
        if (s.r == role::monitor && peer_holds_primary == false && static_cast<role>(m.role) == role::init &&
            (m.node_id == s.watched_id)) {
            take_over(s, now, out, false);
        } else if (s.r == role::standby && !better_standby_exists(s, now)) {
            // The monitor left: probe its address again right away.
            start_discovery(s, now);
        }
        break;
    case hb_type::announce:
    case hb_type::takeover_req:
    case hb_type::shutdown_req:
    case hb_type::drained:
    case hb_type::fault_report:
    case hb_type::fault_answer:
        break;
    }
}

void on_arp(state& s, const wire::frame& f, std::uint64_t now, action_sink& out) noexcept {
    const auto& a = f.arp;
    for (std::size_t i = 0; i < address_count; ++i) {
        const ipv4_addr addr = s.p.addr[i];
        // Answer who-has for what we hold, RFC 5227 probes included: that is how a
        // discovering node learns the address is taken (seed 002 FIG. 1).
        if (s.holds[i] && a.op == wire::arp_op_request && a.tpa == addr && !a.is_gratuitous()) {
            action r;
            r.kind = action_kind::send_arp_reply;
            r.dst = a.sha;
            r.arp.op = wire::arp_op_reply;
            r.arp.sha = s.p.mac;
            r.arp.spa = addr;
            r.arp.tha = a.sha;
            r.arp.tpa = a.spa;
            out.emit(r);
            ++s.c.arp_replies;
        }
        // Someone else announcing an address we hold.
        if (s.holds[i] && a.spa == addr && a.sha != s.p.mac) ++s.c.address_conflicts;
    }
    // Evidence for discovery: the probed address answered or was announced by someone else.
    if (a.spa == s.p.addr[0] && a.sha != s.p.mac && !s.holds[0]) s.primary_mac_hint = a.sha;
    const bool probing_primary = s.r == role::probe_primary;
    const bool probing_monitor = s.r == role::probe_monitor || s.r == role::standby;
    if ((probing_primary || probing_monitor) && a.sha != s.p.mac) {
        const ipv4_addr target = s.p.addr[probing_primary ? 0 : 1];
        if (a.spa == target) s.disc_held = true;
    }
    (void)now;
}

void on_icmp(state& s, const wire::frame& f, std::uint64_t now, action_sink& out) noexcept {
    const auto& e = f.echo;
    if (!e.is_reply) {
        for (std::size_t i = 0; i < address_count; ++i) {
            if (s.holds[i] && e.dst == s.p.addr[i] && s.p.answer_icmp) {
                action r;
                r.kind = action_kind::reflect_echo;
                out.emit(r);
                ++s.c.echo_replies;
                return;
            }
        }
        return;
    }
    // Seed claim 8: echo of the primary address as the probe.
    if (s.r == role::monitor && e.id == s.icmp_id && e.src == s.p.addr[0] && e.dst == s.p.addr[1]) {
        const std::uint64_t sent = s.det.last_sent_seq();
        const std::uint64_t back = static_cast<std::uint16_t>(static_cast<std::uint16_t>(sent) - e.seq);
        if (back < sent && s.det.on_answer(sent - back, now))
            ++s.c.answers;
        else
            ++s.c.stale_answers;
    }
}

// ------------------------------------------------------------------ time

void tick_garps(state& s, std::uint64_t now, action_sink& out) noexcept {
    for (std::size_t i = 0; i < address_count; ++i) {
        if (!s.holds[i]) continue;
        const auto which = static_cast<address_id>(i);
        if (s.garp_left[i] > 0 && now >= s.next_garp_ns[i]) {
            send_garp(s, which, now, out);
        } else if (s.garp_left[i] == 0 && s.next_refresh_ns[i] != 0 && now >= s.next_refresh_ns[i]) {
            s.garp_left[i] = 1;
            send_garp(s, which, now, out);
        }
    }
}

// RFC 5227 style: `discovery_probes` probes `discovery_interval` apart, then a quiet
// `discovery_wait`. Returns true when the address was found free.
bool tick_discovery(state& s, address_id target, std::uint64_t now, action_sink& out) noexcept {
    if (s.disc_held) return false;
    if (now < s.disc_next_ns) return false;
    if (s.disc_sent < s.p.discovery_probes) {
        emit_addr(out, action_kind::send_arp_probe, target, s.p.addr[idx(target)]);
        ++s.disc_sent;
        s.disc_next_ns = now + (s.disc_sent < s.p.discovery_probes ? s.p.discovery_interval_ns : s.p.discovery_wait_ns);
        return false;
    }
    return true;
}

void tick_monitor(state& s, std::uint64_t now, action_sink& out) noexcept {
    if (s.det.observe_time(now)) ++s.c.stalls;
    if (s.det.failed(now)) {
        take_over(s, now, out, true);
        return;
    }
    if (!s.det.probe_due(now)) return;
    const std::uint64_t seq = s.det.on_probe_sent(now);
    ++s.c.probes_sent;
    // Until the primary has answered, probe the MAC that discovery saw holding its address.
    const mac_addr dst = s.watched_id ? s.watched_mac
                         : s.primary_mac_hint.is_zero() ? mac_addr::heartwire_group()
                                                        : s.primary_mac_hint;
    if (s.p.probe != cfg::probe_kind::icmp) {
        auto m = make_hb(s, hb_type::probe, now);
        m.seq = seq;
        send_hb(out, dst, m);
    }
    if (s.p.probe != cfg::probe_kind::heartbeat) {
        action a;
        a.kind = action_kind::send_icmp_probe;
        a.dst = dst.is_multicast() ? mac_addr::broadcast() : dst;
        a.addr = s.p.addr[0];
        a.icmp_seq = static_cast<std::uint16_t>(seq);
        out.emit(a);
    }
}

void tick(state& s, std::uint64_t now, action_sink& out) noexcept {
    tick_garps(s, now, out);

    switch (s.r) {
    case role::init:
        break;
    case role::probe_primary:
        // Seed 002 FIG. 1: nobody answered for the primary address -> claim it and serve.
        if (tick_discovery(s, address_id::primary, now, out)) {
            s.epoch += 1;
            claim(s, address_id::primary, now, out);
            set_role(s, role::primary, now, out);
        } else if (s.disc_held) {
            set_role(s, role::probe_monitor, now, out);
        }
        break;
    case role::probe_monitor:
        // Seed 002 FIG. 2: the monitor address is free -> claim it and watch the primary.
        if (tick_discovery(s, address_id::monitor, now, out)) {
            claim(s, address_id::monitor, now, out);
            set_role(s, role::monitor, now, out);
        } else if (s.disc_held) {
            set_role(s, role::standby, now, out);
        }
        break;
    case role::standby:
        // Seed 002 [0029]: the N+M loop: keep probing the monitor address; the first standby
        // takes it when it frees.
        if (s.disc_held) {
            if (now >= s.disc_next_ns) start_discovery(s, now + s.p.announce_interval_ns);
        } else if (tick_discovery(s, address_id::monitor, now, out)) {
            if (better_standby_exists(s, now)) {
                start_discovery(s, now + s.p.announce_interval_ns);
            } else {
                claim(s, address_id::monitor, now, out);
                set_role(s, role::monitor, now, out);
            }
        }
        break;
    case role::monitor:
        if (!s.fence_pending) {
            tick_monitor(s, now, out);
        } else if (s.fence_retry_ns != 0 && now >= s.fence_retry_ns) {
            s.fence_retry_ns = 0;
            run_hook(out, hook_kind::fence, s.failed_id, s.failed_mac);
        }
        break;
    case role::primary:
        // Seed 003 claim 3: heartbeats run both ways; the primary notices a silent monitor.
        if (s.monitor_alive && now - s.monitor_last_probe_ns > s.p.peer_timeout_ns) {
            s.monitor_alive = false;
            ++s.c.monitor_lost;
        }
        if (s.stay_down_active && now >= s.next_stay_down_ns) {
            const peer* old = find_peer(s, s.stay_down_id);
            // It rebooted (fresh discovery roles) -> it knows it is not primary any more.
            if (old && alive(s, *old, now) && old->r != role::primary && old->r != role::fenced &&
                old->r != role::init) {
                s.stay_down_active = false;
            } else {
                send_hb(out, s.stay_down_mac, make_hb(s, hb_type::stay_down, now));
                ++s.c.stay_downs_sent;
                s.next_stay_down_ns = now + s.p.stay_down_interval_ns;
            }
        }
        break;
    case role::fenced:
        // Stay down while the newer primary keeps telling us; rejoin when it stops.
        if (now - s.last_stay_down_heard_ns > s.p.peer_timeout_ns) set_role(s, role::probe_primary, now, out);
        break;
    case role::draining:
    case role::fault:
        break;
    }

    if (s.r != role::init && now >= s.next_announce_ns) announce(s, now, out);
}

} // namespace

void init(state& s, const params& p) noexcept {
    s = state{};
    s.p = p;
    detector::params dp;
    dp.interval_ns = p.interval_ns;
    dp.miss = p.miss;
    dp.stall_threshold_ns = p.stall_threshold_ns;
    dp.startup_grace_ns = p.peer_timeout_ns;
    s.det.configure(dp);
    s.icmp_id = static_cast<std::uint16_t>(0x4857 ^ p.node_id);
}

void step(state& s, const event& ev, std::uint64_t now, action_sink& out) noexcept {
    switch (ev.kind) {
    case event_kind::start:
        if (s.r == role::init) set_role(s, role::probe_primary, now, out);
        return;
    case event_kind::tick:
        tick(s, now, out);
        return;
    case event_kind::shutdown: {
        // Hand over cleanly: tell the group first, then let go of the addresses.
        release(s, address_id::primary, out);
        release(s, address_id::monitor, out);
        s.stay_down_active = false;
        set_role(s, role::init, now, out);
        send_hb(out, mac_addr::heartwire_group(), make_hb(s, hb_type::release, now));
        return;
    }
    case event_kind::hook_done:
        if (ev.hook == hook_kind::fence && s.fence_pending) {
            if (ev.hook_ok) {
                take_over(s, now, out, false, true);
            } else {
                // Not fenced: never claim. Try again after a peer timeout.
                s.fence_retry_ns = now + s.p.peer_timeout_ns;
            }
        }
        return;
    case event_kind::frame:
        break;
    }
    if (!ev.rx || !ev.rx->ok()) return;
    const wire::frame& f = *ev.rx;
    if (f.eth.src == s.p.mac) {
        ++s.c.own_frames;
        return;
    }
    switch (f.kind) {
    case wire::frame_kind::heartbeat:
        if (f.hb.node_id == s.p.node_id) {
            ++s.c.own_frames;
            return;
        }
        on_heartbeat(s, f, now, out);
        return;
    case wire::frame_kind::arp:
        on_arp(s, f, now, out);
        return;
    case wire::frame_kind::icmp_echo:
        on_icmp(s, f, now, out);
        return;
    case wire::frame_kind::invalid:
        return;
    }
}

std::uint64_t next_wakeup(const state& s) noexcept {
    std::uint64_t t = s.next_announce_ns;
    for (std::size_t i = 0; i < address_count; ++i) {
        if (!s.holds[i]) continue;
        if (s.garp_left[i] > 0) t = std::min(t, s.next_garp_ns[i]);
        else if (s.next_refresh_ns[i] != 0) t = std::min(t, s.next_refresh_ns[i]);
    }
    switch (s.r) {
    case role::probe_primary:
    case role::probe_monitor:
    case role::standby:
        t = std::min(t, s.disc_next_ns);
        break;
    case role::monitor:
        if (s.det.running()) t = std::min({t, s.det.next_probe_ns(), s.det.deadline_ns()});
        break;
    case role::primary:
        if (s.stay_down_active) t = std::min(t, s.next_stay_down_ns);
        break;
    default:
        break;
    }
    return t;
}

} // namespace heartwire::fsm
