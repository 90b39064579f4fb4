#include "fsm_detail.hpp"

// Faults (seed 003 claims 8-13, 20, 21): a faulty primary reports what failed to its
// monitor and asks whether it can take over; a faulty node that is not serving waits in
// `fault` holding nothing; a cured one recovers and rejoins. Link loss and a node id
// collision are faults of the same shape: hold nothing until they end.

namespace heartwire::fsm::detail {

using wire::hb_type;

namespace {

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

bool may_rejoin(const state& s, std::uint64_t now) noexcept {
    return s.fault == fault_kind::none && !s.link_down && now >= s.collision_until_ns;
}

} // namespace

// A node that is not serving the primary address goes to `fault` holding nothing; the
// monitor address frees for the next standby (seed 003 claims 8, 11).
void enter_fault(state& s, std::uint64_t now, action_sink& out) noexcept {
    if (s.holds[0]) ++s.c.step_downs;
    set_role(s, role::fault, now, out);
}

void fault_command(state& s, fault_kind kind, std::uint64_t now, action_sink& out) noexcept {
    if (kind == fault_kind::none || s.fault != fault_kind::none) return;
    s.fault = kind;
    s.fault_answered = false;
    notice(out, note::fault_reported, static_cast<std::uint32_t>(kind));
    if (s.r == role::primary) {
        report_fault(s, now, out);
    } else if (s.r != role::draining && s.r != role::init) {
        enter_fault(s, now, out);
    }
}

void fault_cleared(state& s, std::uint64_t now, action_sink& out) noexcept {
    if (s.fault == fault_kind::none) return;
    s.fault = fault_kind::none;
    s.fault_answered = false;
    if (s.r == role::fault && may_rejoin(s, now)) {
        // Seed 003 claim 20: once cured, the node recovers (hook) and rejoins.
        run_hook(out, hook_kind::recover, s.p.node_id, s.p.mac);
        set_role(s, role::probe_primary, now, out);
    }
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
        enter_fault(s, now, out);
        return;
    }
    notice(out, note::link_up);
    if (s.r == role::fault && may_rejoin(s, now)) set_role(s, role::probe_primary, now, out);
}

// Our node id, authenticated, from another MAC (issue 8 item 4): logged as an error by the
// control thread (the notice), counted, and neither node claims while it lasts. Both nodes
// see each other's frames, so both stand down.
void id_collision(state& s, const wire::frame& f, std::uint64_t now, action_sink& out) noexcept {
    (void)f;
    if (s.r == role::init) return;
    if (now >= s.next_collision_note_ns) {
        notice(out, note::id_collision, s.p.node_id);
        s.next_collision_note_ns = now + s.p.peer_timeout_ns * 10;
    }
    s.collision_until_ns = now + s.p.peer_timeout_ns;
    if (s.r != role::fault) enter_fault(s, now, out);
}

void tick_faults(state& s, std::uint64_t now, action_sink& out) noexcept {
    if (s.r == role::fault && s.collision_until_ns != 0 && now >= s.collision_until_ns) {
        s.collision_until_ns = 0;
        notice(out, note::id_collision_over, s.p.node_id);
        if (may_rejoin(s, now)) set_role(s, role::probe_primary, now, out);
    }
    // A faulty primary repeats its report until the monitor answers (frames can be lost).
    if (s.r == role::primary && s.fault != fault_kind::none && !s.fault_answered && now >= s.next_announce_ns)
        report_fault(s, now, out);
}

void fault_frame(state& s, const wire::frame& f, const peer* pr, std::uint64_t now, action_sink& out) noexcept {
    const auto& m = f.hb;
    switch (m.type) {
    case hb_type::fault_report: {
        // Seed 003 claims 9, 10: answer whether we can take over; if so, the switchover
        // follows. Only the primary we watch may report its fault to us.
        if (s.r != role::monitor) break;
        if (static_cast<role>(m.role) != role::primary || !is_watched_primary(s, f, pr)) {
            ++s.c.drop_role;
            break;
        }
        // Seed 004: a monitor whose replica is not in sync answers no for now; the answer
        // lacks hb_flag_in_sync, and the primary asks again until it is.
        const bool can = s.fault == fault_kind::none && !s.fence_pending && replica_ok(s);
        auto a = make_hb(s, hb_type::fault_answer, now);
        if (can) a.flags |= wire::hb_flag_can_take_over;
        a.ack_seq = m.ack_seq;
        send_hb(out, f.eth.src, a);
        if (can && !s.switchover_pending) begin_switchover(s, now, out);
        break;
    }
    case hb_type::fault_answer:
        // Only our monitor answers our report.
        if (s.fault == fault_kind::none || s.fault_answered || (s.r != role::primary && s.r != role::draining)) break;
        if (!pr || (pr->flags & wire::hb_flag_holds_monitor) == 0) {
            ++s.c.drop_role;
            break;
        }
        // A monitor still catching up (no in-sync flag) is asked again at the next announce.
        if ((m.flags & wire::hb_flag_can_take_over) == 0 && (m.flags & wire::hb_flag_in_sync) == 0 && pr->r == role::monitor &&
            s.replica_configured)
            break;
        s.fault_answered = true;
        s.fault_can_take_over = (m.flags & wire::hb_flag_can_take_over) != 0;
        // Seed 003 claim 12: no healthy peer -> the faulty primary keeps serving and says so.
        notice(out, s.fault_can_take_over ? note::fault_takeover_accepted : note::fault_no_takeover,
               static_cast<std::uint32_t>(s.fault));
        break;
    default:
        break;
    }
}

} // namespace heartwire::fsm::detail
