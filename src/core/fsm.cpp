#include "fsm_detail.hpp"

#include <algorithm>

namespace heartwire::fsm {

using namespace detail;
using wire::hb_type;

namespace {

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

void tick_monitor(state& s, const event& ev, std::uint64_t now, action_sink& out) noexcept {
    // Silence is judged only up to the time RX has been drained to (DESIGN "failure
    // evidence": the monitor's own stalls never count).
    const std::uint64_t judged = ev.judged_ns != 0 && ev.judged_ns < now ? ev.judged_ns : now;
    if (ev.rx_resume_ns != 0) {
        s.det.note_stall(ev.rx_resume_ns); // may lie past `judged`: the window then starts later
        ++s.c.stalls;
    }
    const bool stalled = ev.woke_ns != 0 ? s.det.observe_wake(ev.woke_ns, ev.intended_ns, judged)
                                         : s.det.observe_time(now);
    if (stalled) ++s.c.stalls;
    if (s.det.failed(judged)) {
        take_over(s, now, out, takeover_cause::failure);
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

void tick(state& s, const event& ev, std::uint64_t now, action_sink& out) noexcept {
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
        if (s.switchover_pending && now >= s.switchover_deadline_ns) {
            s.switchover_pending = false;
            notice(out, note::switchover_timed_out);
        }
        if (!s.fence_pending && s.r == role::monitor) {
            tick_monitor(s, ev, now, out);
            // Optional preemption: a higher-priority monitor asks for the address after a
            // delay, through the same lossless switchover an operator would use.
            const peer* pr = watched_primary(s);
            if (s.r == role::monitor && s.p.preempt && !s.switchover_pending && pr && s.det.armed() &&
                s.fault == fault_kind::none && s.p.priority > pr->priority &&
                now - s.role_since_ns >= s.p.preempt_delay_ns) {
                notice(out, note::preempting, pr->id);
                begin_switchover(s, now, out);
            }
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
        // Drained (the application said so) or out of time: hand over, with the compilation.
        if (s.drained_sent_ns == 0 && (s.drain_done || now >= s.drain_deadline_ns)) {
            send_drained(s, now, out);
        } else if (s.drained_sent_ns != 0 && now - s.drained_sent_ns > s.p.peer_timeout_ns + s.p.announce_interval_ns) {
            // Nobody took over: keep serving rather than leave the address orphaned.
            notice(out, note::switchover_timed_out, s.handover_id);
            set_role(s, role::primary, now, out);
        }
        break;
    case role::fault:
        break;
    }
    // A faulty primary repeats its report until the monitor answers (frames can be lost).
    if (s.r == role::primary && s.fault != fault_kind::none && !s.fault_answered && now >= s.next_announce_ns)
        report_fault(s, now, out);

    if (s.r != role::init && now >= s.next_announce_ns) announce(s, now, out);
}

// DESIGN "failure evidence" 2: carrier loss is an immediate local fault. A primary without
// a link cannot serve: it lets go at once (its monitor sees the silence and takes over); a
// monitor without a link must never take over (its silence is its own). Both hold nothing
// until the carrier is back, then rejoin through discovery like a cured fault.
void on_link(state& s, bool up, std::uint64_t now, action_sink& out) noexcept {
    if (up == !s.link_down) return;
    s.link_down = !up;
    if (!up) {
        ++s.c.link_downs;
        notice(out, note::link_down, s.holds[0] ? 1u : 0u);
        if (s.r == role::init) return;
        if (s.holds[0]) ++s.c.step_downs;
        s.stay_down_active = false;
        s.fence_pending = false;
        enter_fault(s, now, out);
        return;
    }
    notice(out, note::link_up);
    if (s.r == role::fault && s.fault == fault_kind::none) set_role(s, role::probe_primary, now, out);
}

void on_command(state& s, const event& ev, std::uint64_t now, action_sink& out) noexcept {
    switch (ev.cmd) {
    case command_kind::switchover:
        // Either side may start it (seed 003 claim 1).
        if (s.r == role::monitor && !s.switchover_pending) {
            begin_switchover(s, now, out);
        } else if (s.r == role::primary) {
            const peer* mon = live_monitor(s, now);
            if (mon) {
                send_hb(out, mon->mac, make_hb(s, hb_type::takeover_req, now));
                notice(out, note::switchover_started, mon->id);
            } else {
                notice(out, note::switchover_refused);
            }
        } else {
            notice(out, note::switchover_refused);
        }
        return;
    case command_kind::fault: {
        const auto kind = static_cast<fault_kind>(ev.arg);
        if (kind == fault_kind::none || s.fault != fault_kind::none) return;
        s.fault = kind;
        s.fault_answered = false;
        notice(out, note::fault_reported, ev.arg);
        if (s.r == role::primary) {
            report_fault(s, now, out);
        } else if (s.r != role::draining) {
            enter_fault(s, now, out);
        }
        return;
    }
    case command_kind::fault_cleared:
        if (s.fault == fault_kind::none) return;
        s.fault = fault_kind::none;
        s.fault_answered = false;
        if (s.r == role::fault && !s.link_down) {
            // Seed 003 claim 20: once cured, the node recovers (hook) and rejoins.
            run_hook(out, hook_kind::recover, s.p.node_id, s.p.mac);
            set_role(s, role::probe_primary, now, out);
        }
        return;
    case command_kind::link:
        on_link(s, ev.arg != 0, now, out);
        return;
    case command_kind::drain_done:
        if (s.r == role::draining) {
            s.drain_done = true;
            s.drain_inflight = ev.arg;
        }
        return;
    }
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
        tick(s, ev, now, out);
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
    case event_kind::command:
        on_command(s, ev, now, out);
        return;
    case event_kind::hook_done:
        if (ev.hook == hook_kind::fence && s.fence_pending) {
            if (ev.hook_ok) {
                take_over(s, now, out, takeover_cause::fenced);
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

wire::hb_msg engine_down_msg(const state& s) noexcept {
    wire::hb_msg m;
    m.type = hb_type::engine_down;
    m.role = static_cast<std::uint8_t>(s.r);
    m.priority = s.p.priority;
    m.node_id = s.p.node_id;
    m.epoch = s.epoch;
    m.seq = s.hb_seq + 1;
    m.flags = my_flags(s);
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
        if (s.det.running()) t = std::min({t, s.det.next_probe_ns(), s.det.deadline_ns()});
        break;
    case role::primary:
        if (s.stay_down_active) t = std::min(t, s.next_stay_down_ns);
        break;
    case role::draining:
        if (s.drained_sent_ns == 0) t = std::min(t, s.drain_deadline_ns);
        break;
    default:
        break;
    }
    return t;
}

} // namespace heartwire::fsm
