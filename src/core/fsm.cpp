#include "fsm_detail.hpp"
#include "heartwire/replication.hpp"

#include <algorithm>

// step(): every event enters here and goes to the part of the machine that owns it (see
// fsm_detail.hpp for the map).

namespace heartwire::fsm {

using namespace detail;
using wire::hb_type;

namespace {

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

// The send key follows the operator's preferred key once every live peer accepts it
// (make-before-break): a peer that has not said yet, or does not take it, keeps us on the
// current key, unless we no longer hold the current key ourselves.
void choose_send_key(state& s, std::uint64_t now, action_sink& out) noexcept {
    if (s.preferred_key == 0 || s.send_key == s.preferred_key) return;
    bool all = true;
    for (const auto& p : s.peers) {
        if (!alive(s, p, now)) continue;
        if (p.key_id == s.preferred_key) continue; // it sends with it: it has it
        if (!p.keys_known || !key_in(p.accepts, s.preferred_key)) all = false;
    }
    if (all || s.send_key == 0 || !key_in(s.my_keys, s.send_key)) {
        s.send_key = s.preferred_key;
        notice(out, note::send_key_changed, s.send_key);
    }
}

void tick(state& s, const event& ev, std::uint64_t now, action_sink& out) noexcept {
    tick_garps(s, now, out);
    switch (s.r) {
    case role::probe_primary:
    case role::probe_monitor:
    case role::standby:
        tick_discovery_roles(s, now, out);
        break;
    case role::monitor:
        tick_switchover(s, now, out);
        if (s.r == role::monitor) tick_monitor(s, ev, now, out);
        break;
    case role::primary:
        tick_primary(s, now, out);
        break;
    case role::draining:
        tick_switchover(s, now, out);
        break;
    case role::fenced:
        tick_fenced(s, now, out);
        break;
    case role::init:
    case role::fault:
        break;
    }
    tick_faults(s, now, out);
    choose_send_key(s, now, out);
    if (s.r != role::init && now >= s.next_announce_ns) announce(s, now, out);
}

void on_command(state& s, const event& ev, std::uint64_t now, action_sink& out) noexcept {
    switch (ev.cmd) {
    case command_kind::switchover:
        switchover_command(s, now, out);
        return;
    case command_kind::fault:
        fault_command(s, static_cast<fault_kind>(ev.arg), now, out);
        return;
    case command_kind::fault_cleared:
        fault_cleared(s, now, out);
        return;
    case command_kind::link:
        on_link(s, ev.arg != 0, now, out);
        return;
    case command_kind::drain_done:
        drain_done(s, ev.arg);
        return;
    }
}

// Replication (issue 10): its frames pass the group's admission (tag, replay window,
// incarnation, node binding) like any heartbeat, then go to the engine's store only from
// the peer whose role may send them: deltas and snapshots from the primary this monitor
// watches, acknowledgements to a primary from the monitor it hears. Anything else is a
// role violation, counted; none of it moves a role.
void state_frame(state& s, const wire::frame& f, const peer* pr, action_sink& out) noexcept {
    const auto& m = f.hb;
    const role sender = static_cast<role>(m.role);
    const auto kind = m.payload.empty() ? 0 : std::to_integer<std::uint8_t>(m.payload[0]);
    bool ok = false;
    if (kind == static_cast<std::uint8_t>(replica::frame_type::data) || kind == static_cast<std::uint8_t>(replica::frame_type::snapshot)) {
        ok = s.r == role::monitor && (sender == role::primary || sender == role::draining) && is_watched_primary(s, f, pr) &&
             m.epoch >= s.epoch;
    } else if (kind == static_cast<std::uint8_t>(replica::frame_type::ack)) {
        ok = (s.r == role::primary || s.r == role::draining) && s.holds[idx(address_id::primary)] && sender == role::monitor && pr &&
             (pr->flags & wire::hb_flag_holds_monitor) && (s.heard_monitor_id == 0 || s.heard_monitor_id == m.node_id);
    }
    if (!ok) {
        ++s.c.drop_role;
        return;
    }
    ++s.c.state_frames;
    action a;
    a.kind = action_kind::state_frame;
    a.hb = m;
    a.peer_id = m.node_id;
    a.peer_mac = f.eth.src;
    out.emit(a);
}

void on_heartbeat(state& s, const wire::frame& f, std::uint64_t now, action_sink& out) noexcept {
    admitted a;
    if (!admit(s, f, now, out, a)) return;
    if (s.r == role::init) return; // not started (or shut down): learn peers, act on nothing
    if (f.hb.type == hb_type::engine_down) {
        // A dead engine's last word: its own rule only. Its flags say what it held, not what
        // it holds: no epoch conflict, discovery evidence or monitor yield may follow from it.
        on_engine_down(s, f, a.p, now, out);
        return;
    }
    discovery_evidence(s, f, a.p, now);
    if (f.hb.type == hb_type::state) {
        state_frame(s, f, a.p, out);
        return;
    }
    watch_frame(s, f, a, now, out);
    switchover_frame(s, f, a.p, now, out);
    fault_frame(s, f, a.p, now, out);
}

} // namespace

void init(state& s, const params& p) noexcept {
    s = state{};
    s.p = p;
    // The role address is always the first of its list (a params filled by hand may have
    // set only addr[]).
    for (std::size_t i = 0; i < address_count; ++i) {
        auto& r = s.p.addrs[i];
        if (s.p.addr[i].is_zero() && r.n6 > 0) { // an IPv6-only role
            r.n4 = 0;
            continue;
        }
        r.v4[0] = s.p.addr[i];
        if (r.n4 == 0) r.n4 = 1;
    }
    detector::params dp;
    dp.interval_ns = p.interval_ns;
    dp.miss = p.miss;
    dp.stall_threshold_ns = p.stall_threshold_ns;
    dp.startup_grace_ns = p.peer_timeout_ns;
    dp.align = p.align_probes;
    s.det.configure(dp);
    s.icmp_id = static_cast<std::uint16_t>(0x4857 ^ p.node_id);
}

void set_replica(state& s, bool configured, bool in_sync, bool caught_up) noexcept {
    s.replica_configured = configured;
    s.replica_in_sync = in_sync;
    s.replica_caught_up = !configured || caught_up;
}

replica_peer replication_peer(const state& s, std::uint64_t now) noexcept {
    replica_peer rp;
    if ((s.r == role::primary || s.r == role::draining) && s.holds[idx(address_id::primary)]) {
        rp.leader = true;
        if (const peer* m = live_monitor(s, now)) {
            rp.follower = true;
            rp.id = m->id;
            rp.mac = m->mac;
        }
    } else if (s.r == role::monitor && s.watched_id != 0) {
        if (const peer* p = watched_primary(s); p && alive(s, *p, now)) {
            rp.follower = true;
            rp.id = p->id;
            rp.mac = p->mac;
        }
    }
    return rp;
}

wire::hb_msg state_header(state& s, std::uint32_t store, std::uint64_t now) noexcept {
    auto m = make_hb(s, hb_type::state, now);
    m.ack_seq = store;
    return m;
}

void set_keys(state& s, const key_set& accepted, std::uint8_t preferred, std::uint64_t now, action_sink& out) noexcept {
    s.my_keys = accepted;
    s.preferred_key = preferred;
    if (s.send_key == 0 || !key_in(accepted, s.send_key)) {
        // Nothing to sign with yet, or our key left the file: the preferred key, at once.
        if (s.send_key != 0 && s.send_key != preferred) notice(out, note::send_key_changed, preferred);
        s.send_key = preferred;
    } else {
        choose_send_key(s, now, out);
    }
}

void retune(state& s, const params& np, std::uint64_t now) noexcept {
    params& p = s.p;
    const std::uint8_t old_priority = p.priority;
    const std::uint32_t old_miss = p.miss;
    p.defend_interval_ns = np.defend_interval_ns;
    p.priority = np.priority;
    p.interval_ns = np.interval_ns;
    p.miss = np.miss;
    p.stall_threshold_ns = np.stall_threshold_ns;
    p.garp_repeat = np.garp_repeat;
    p.garp_interval_ns = np.garp_interval_ns;
    p.garp_refresh_ns = np.garp_refresh_ns;
    p.discovery_probes = np.discovery_probes;
    p.discovery_interval_ns = np.discovery_interval_ns;
    p.discovery_wait_ns = np.discovery_wait_ns;
    p.announce_interval_ns = np.announce_interval_ns;
    p.peer_timeout_ns = np.peer_timeout_ns;
    p.stay_down_interval_ns = np.stay_down_interval_ns;
    p.preempt = np.preempt;
    p.preempt_delay_ns = np.preempt_delay_ns;
    p.require_fence = np.require_fence;
    p.drain_timeout_ns = np.drain_timeout_ns;
    p.flap_hold_ns = np.flap_hold_ns;
    p.has_boot_peer = np.has_boot_peer;
    p.has_fence = np.has_fence;

    // The detector: a watch widened by flap damping stays widened, on the new miss count.
    detector::params dp = s.det.config();
    dp.interval_ns = p.interval_ns;
    dp.miss = dp.miss > old_miss ? std::min<std::uint32_t>(p.miss << s.flap_level, detector::max_miss) : p.miss;
    dp.stall_threshold_ns = p.stall_threshold_ns;
    dp.startup_grace_ns = p.peer_timeout_ns;
    s.det.retune(dp, now);

    // Timers set with an old period.
    if (p.priority != old_priority) s.next_announce_ns = now; // the peers learn the new rank now
    s.next_announce_ns = std::min(s.next_announce_ns, now + p.announce_interval_ns);
    for (std::size_t i = 0; i < address_count; ++i) {
        if (!s.holds[i] || s.garp_left[i] != 0) continue; // a burst in flight keeps its spacing
        s.next_refresh_ns[i] = p.garp_refresh_ns == 0 ? 0
                               : s.next_refresh_ns[i] == 0 ? now + p.garp_refresh_ns
                                                           : std::min(s.next_refresh_ns[i], now + p.garp_refresh_ns);
    }
    if (s.stay_down_active) s.next_stay_down_ns = std::min(s.next_stay_down_ns, now + p.stay_down_interval_ns);
    if (s.disc_next_ns > now) s.disc_next_ns = std::min(s.disc_next_ns, now + std::max(p.discovery_interval_ns, p.discovery_wait_ns));
    if (s.drain_deadline_ns > now) s.drain_deadline_ns = std::min(s.drain_deadline_ns, now + p.drain_timeout_ns);
    if (s.switchover_deadline_ns > now)
        s.switchover_deadline_ns = std::min(s.switchover_deadline_ns, now + p.drain_timeout_ns + p.peer_timeout_ns);
    if (p.flap_hold_ns == 0) s.flap_until_ns = 0; // no damping from now on
    else if (s.flap_until_ns > now) s.flap_until_ns = std::min(s.flap_until_ns, now + p.flap_hold_ns);
}

void step(state& s, const event& ev, std::uint64_t now, action_sink& out) noexcept {
    switch (ev.kind) {
    case event_kind::start:
        if (s.r == role::init) set_role(s, role::probe_primary, now, out);
        return;
    case event_kind::tick:
        tick(s, ev, now, out);
        return;
    case event_kind::shutdown:
        // Hand over cleanly: let go of the addresses, then tell the group.
        set_role(s, role::init, now, out);
        send_hb(out, mac_addr::heartwire_group(), make_hb(s, hb_type::release, now));
        return;
    case event_kind::command:
        on_command(s, ev, now, out);
        return;
    case event_kind::hook_done:
        if (ev.hook == hook_kind::fence) on_fence_done(s, ev.hook_ok, now, out);
        return;
    case event_kind::frame:
        break;
    }
    if (!ev.rx || !ev.rx->ok()) return;
    const wire::frame& f = *ev.rx;
    // Our own frames seen again (af_packet taps what we send). An ARP is ours by its sender
    // hardware address: a forged GARP with our MAC as Ethernet source and another as ARP
    // sender is a claim to defend, not an echo of ours.
    if (f.kind == wire::frame_kind::arp ? f.arp.sha == s.p.mac : f.eth.src == s.p.mac) {
        ++s.c.own_frames;
        return;
    }
    switch (f.kind) {
    case wire::frame_kind::heartbeat:
        on_heartbeat(s, f, now, out);
        return;
    case wire::frame_kind::arp:
        if (s.r != role::init) on_arp(s, f, now, out);
        return;
    case wire::frame_kind::icmp_echo:
        on_icmp(s, f, now, out);
        return;
    case wire::frame_kind::nd:
        if (s.r != role::init) on_nd(s, f, now, out);
        return;
    case wire::frame_kind::icmp6_echo:
        on_icmp6(s, f, out);
        return;
    case wire::frame_kind::invalid:
        return;
    }
}

// The notice's seq is the top of the sequence space: it is the engine's last frame of this
// incarnation, and must pass every peer's replay window whatever was sent before it.
wire::hb_msg engine_down_msg(const state& s) noexcept {
    wire::hb_msg m;
    m.type = hb_type::engine_down;
    m.role = static_cast<std::uint8_t>(s.r);
    m.priority = s.p.priority;
    m.node_id = s.p.node_id;
    m.epoch = s.epoch;
    m.seq = ~std::uint64_t{0};
    m.flags = my_flags(s);
    m.group = s.p.group;
    m.incarnation = s.p.incarnation;
    return m;
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
        if (s.det.running()) {
            // A takeover held for a joining copy (fsm_watch: hold_takeover) is judged again
            // when the hold ends, not at the detector's deadline, which has passed: an
            // adaptive-idle monitor sleeps between its probes meanwhile.
            const std::uint64_t judge = s.takeover_held_since_ns != 0
                                            ? std::max(s.det.deadline_ns(), s.takeover_held_since_ns + s.replica_join_hold_ns)
                                            : s.det.deadline_ns();
            t = std::min({t, s.det.next_probe_ns(), judge});
        }
        if (s.fence_retry_ns != 0) t = std::min(t, s.fence_retry_ns);
        break;
    case role::primary:
        if (s.stay_down_active) t = std::min(t, s.next_stay_down_ns);
        break;
    case role::draining:
        if (s.drained_sent_ns == 0) t = std::min(t, s.drain_deadline_ns);
        break;
    case role::fault:
        if (s.collision_until_ns != 0) t = std::min(t, s.collision_until_ns);
        break;
    default:
        break;
    }
    return t;
}

} // namespace heartwire::fsm
