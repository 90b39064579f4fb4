#include "fsm_detail.hpp"

// Operator switchover and drain (seed 003 claims 1, 4, 16): either side may start it; the
// monitor asks the primary to shut down, the primary drains (stops taking new work, lets
// in-flight work finish or a deadline pass) and says `drained` with its compilation of what
// is still in flight; only then does the monitor take the address. Optional preemption
// uses the same path. A handover that does not complete undrains the primary.

namespace heartwire::fsm {

std::string_view to_string(refusal r) noexcept {
    switch (r) {
    case refusal::none:
        return "none";
    case refusal::no_monitor:
        return "no live monitor to hand over to";
    case refusal::wrong_role:
        return "only the primary or the monitor can switch over";
    case refusal::in_progress:
        return "a switchover is already in progress";
    case refusal::no_primary:
        return "no live primary to take over from";
    case refusal::faulty:
        return "this node is in fault";
    case refusal::link_down:
        return "the port has no link";
    case refusal::out_of_sync:
        return "the monitor's replica of the state store is not in sync";
    }
    return "unknown";
}

} // namespace heartwire::fsm

namespace heartwire::fsm::detail {

using wire::hb_type;

namespace {

void refuse(action_sink& out, refusal why) noexcept { notice(out, note::switchover_refused, static_cast<std::uint32_t>(why)); }

void begin_drain(state& s, const mac_addr& to, std::uint32_t to_id, std::uint64_t now, action_sink& out) noexcept {
    if (s.r == role::draining) return;
    s.handover_mac = to;
    s.handover_id = to_id;
    s.drain_done = false;
    s.drain_inflight = 0;
    s.drained_sent_ns = 0;
    s.drain_deadline_ns = now + s.p.drain_timeout_ns;
    set_role(s, role::draining, now, out);
    s.app_drained = true;
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

} // namespace

void switchover_command(state& s, std::uint64_t now, action_sink& out) noexcept {
    if (s.link_down) return refuse(out, refusal::link_down);
    if (s.r == role::monitor) {
        if (s.switchover_pending) return refuse(out, refusal::in_progress);
        if (s.fault != fault_kind::none) return refuse(out, refusal::faulty);
        begin_switchover(s, now, out);
    } else if (s.r == role::primary) {
        const peer* mon = live_monitor(s, now);
        if (!mon) return refuse(out, refusal::no_monitor);
        // Seed 004: only a monitor whose replica is in sync may take the service by hand.
        if (s.replica_configured && (mon->flags & wire::hb_flag_in_sync) == 0) return refuse(out, refusal::out_of_sync);
        send_hb(out, mon->mac, make_hb(s, hb_type::takeover_req, now));
        notice(out, note::switchover_started, mon->id);
    } else if (s.r == role::draining) {
        refuse(out, refusal::in_progress);
    } else {
        refuse(out, refusal::wrong_role);
    }
}

// Seed 003 claim 1: the second server asks the first to shut down; it takes over only when
// the first says it has drained.
void begin_switchover(state& s, std::uint64_t now, action_sink& out) noexcept {
    const peer* p = watched_primary(s);
    if (!p || !alive(s, *p, now)) return refuse(out, refusal::no_primary);
    if (!replica_ok(s)) return refuse(out, refusal::out_of_sync); // seed 004: it would lose state
    s.switchover_pending = true;
    s.switchover_deadline_ns = now + s.p.drain_timeout_ns + s.p.peer_timeout_ns;
    send_hb(out, p->mac, make_hb(s, hb_type::shutdown_req, now));
    notice(out, note::switchover_started, p->id);
}

void tick_switchover(state& s, std::uint64_t now, action_sink& out) noexcept {
    if (s.r == role::monitor) {
        if (s.switchover_pending && now >= s.switchover_deadline_ns) {
            s.switchover_pending = false;
            notice(out, note::switchover_timed_out);
        }
        // Optional preemption: a higher-priority monitor asks for the address after a
        // delay, through the same lossless switchover an operator would use.
        const peer* pr = watched_primary(s);
        if (s.p.preempt && !s.switchover_pending && !s.fence_pending && pr && alive(s, *pr, now) && s.det.armed() &&
            s.fault == fault_kind::none && replica_ok(s) && s.p.priority > pr->priority && now - s.role_since_ns >= s.p.preempt_delay_ns) {
            notice(out, note::preempting, pr->id);
            begin_switchover(s, now, out);
        }
    } else if (s.r == role::draining) {
        // Drained (the application said so) and every write acknowledged by the monitor (the
        // compilation goes through the store: issue 10), or out of time: hand over.
        if (s.drained_sent_ns == 0 && ((s.drain_done && s.replica_caught_up) || now >= s.drain_deadline_ns)) {
            send_drained(s, now, out);
        } else if (s.drained_sent_ns != 0 && now - s.drained_sent_ns > s.p.peer_timeout_ns + s.p.announce_interval_ns) {
            // Nobody took over: keep serving rather than leave the address orphaned, and
            // take new work again (set_role's exit actions undrain).
            notice(out, note::switchover_timed_out, s.handover_id);
            set_role(s, role::primary, now, out);
        }
    }
}

// Control frames of the handover, each only from the peer whose role may send it.
void switchover_frame(state& s, const wire::frame& f, const peer* pr, std::uint64_t now, action_sink& out) noexcept {
    const auto& m = f.hb;
    const role sender = static_cast<role>(m.role);
    const bool from_watched = m.node_id == s.watched_id && f.eth.src == s.watched_mac;
    switch (m.type) {
    case hb_type::release:
        // A clean shutdown of the primary we watch: no need to wait for missed probes
        // (like VRRP priority 0). Its release holds nothing and is at its epoch.
        if (s.r != role::monitor) break;
        if (sender == role::init && (m.flags & wire::hb_flag_holds_primary) == 0 && from_watched && m.epoch >= s.epoch) {
            take_over(s, now, out, takeover_cause::release);
        } else if (from_watched) {
            // Issue 8 (role checks): the watched primary's release at an older epoch, or one
            // that still claims the address, moves nothing. Any other node's release is its
            // own clean shutdown (releases go to the whole group), not a role violation.
            ++s.c.drop_role;
        }
        break;
    case hb_type::takeover_req:
        // Seed 003 claim 1, operator at the primary: the monitor answers with a shutdown
        // request. Only from the primary we watch.
        if (s.r != role::monitor) break;
        if (sender != role::primary || !is_watched_primary(s, f, pr)) {
            ++s.c.drop_role;
        } else if (s.fault == fault_kind::none && !s.switchover_pending && !s.fence_pending) {
            begin_switchover(s, now, out);
        }
        break;
    case hb_type::shutdown_req: {
        if (s.r != role::primary) break;
        // Only from our monitor: it holds the monitor address and is the one probing us.
        const bool from_monitor = sender == role::monitor && pr && (pr->flags & wire::hb_flag_holds_monitor) &&
                                  (s.heard_monitor_id == 0 || s.heard_monitor_id == m.node_id);
        if (!from_monitor) {
            ++s.c.drop_role;
            break;
        }
        begin_drain(s, f.eth.src, m.node_id, now, out);
        break;
    }
    case hb_type::drained:
        // Seed 003 claims 4, 16: the old primary has finished; take its address and its work.
        if (s.r != role::monitor || !s.switchover_pending) break;
        if (sender != role::draining || !from_watched) {
            ++s.c.drop_role;
            break;
        }
        s.last_inflight_reported = m.ack_seq;
        notice(out, note::handover_inflight, static_cast<std::uint32_t>(m.ack_seq));
        if (!replica_ok(s)) {
            ++s.c.takeovers_out_of_sync; // lost sync after the request: the old primary is leaving anyway
            notice(out, note::takeover_out_of_sync, 2);
        }
        take_over(s, now, out, takeover_cause::switchover);
        break;
    default:
        break;
    }
}

void drain_done(state& s, std::uint32_t inflight) noexcept {
    if (s.r == role::draining) {
        s.drain_done = true;
        s.drain_inflight = inflight;
    }
}

} // namespace heartwire::fsm::detail
