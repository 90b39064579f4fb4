#include "fsm_detail.hpp"

#include <algorithm>

namespace heartwire::fsm::detail {

using wire::hb_type;

// ------------------------------------------------------------------ frames

namespace {

peer* find_peer_mut(state& s, std::uint32_t id) noexcept { return const_cast<peer*>(find_peer(s, id)); }

// Seed 003 claims 14-15: the failed server's own monitoring means (its guard, which
// outlives the engine) tells us the engine died. The monitor takes over at once, as on a
// failure (fence, boot_peer, stay-down), instead of waiting out the silence window. Only
// a notice about the primary we watch (its id and MAC), at an epoch not older than the
// newest we know, moves the address.
void on_engine_down(state& s, const wire::frame& f, std::uint64_t now, action_sink& out) noexcept {
    const auto& m = f.hb;
    ++s.c.engine_down_notices;
    notice(out, note::engine_down_heard, m.node_id);
    const bool held_primary = (m.flags & wire::hb_flag_holds_primary) != 0;
    const bool held_monitor = (m.flags & wire::hb_flag_holds_monitor) != 0;
    // Never a wildcard: the primary we watch, or the MAC seen holding its address.
    const bool watched = s.watched_id != 0 ? m.node_id == s.watched_id && f.eth.src == s.watched_mac
                                           : !s.primary_mac_hint.is_zero() && f.eth.src == s.primary_mac_hint;
    if (s.r == role::monitor && held_primary && watched && m.epoch >= s.epoch && !s.fence_pending && !s.link_down) {
        if (s.watched_id == 0) {
            s.watched_id = m.node_id;
            s.watched_mac = f.eth.src;
        }
        ++s.c.notice_takeovers;
        take_over(s, now, out, takeover_cause::failure);
    }
    if (s.holds[0] && held_monitor && m.node_id == s.heard_monitor_id && s.monitor_alive) {
        s.monitor_alive = false;
        ++s.c.monitor_lost;
    }
    // The monitor died: the first standby probes its address now ([0029]).
    if (s.r == role::standby && held_monitor && !better_standby_exists(s, now)) start_discovery(s, now);
    // A dead engine is not a peer any more (it will come back under discovery roles).
    if (peer* p = find_peer_mut(s, m.node_id)) p->valid = false;
}

} // namespace

void on_heartbeat(state& s, const wire::frame& f, std::uint64_t now, action_sink& out) noexcept {
    const auto& m = f.hb;
    if (m.type == hb_type::engine_down) {
        on_engine_down(s, f, now, out);
        return;
    }
    peer* pr = upsert_peer(s, f, now);
    const bool peer_holds_primary = (m.flags & wire::hb_flag_holds_primary) != 0;
    const bool peer_holds_monitor = (m.flags & wire::hb_flag_holds_monitor) != 0;

    // Epochs (DESIGN "Roles and the protocol"): a primary with a larger rank wins at once.
    if (peer_holds_primary && m.epoch > 0) {
        const rank theirs{m.epoch, m.priority, m.node_id};
        if (s.holds[0]) {
            if (theirs > my_rank(s)) {
                s.epoch = std::max(s.epoch, m.epoch);
                if (s.r == role::draining) {
                    // Our own handover completed: a faulty node waits in fault, a healthy
                    // one takes the monitor address the new primary just freed.
                    step_down(s, now, out, s.fault != fault_kind::none ? role::fault : role::probe_monitor);
                } else {
                    // Lost to a newer primary while we were alive: we stalled past the
                    // window. Remember it: our next monitor stint watches more patiently.
                    if (s.p.flap_hold_ns != 0) {
                        ++s.c.flaps;
                        s.flap_level = static_cast<std::uint8_t>(std::min(s.flap_level + 1, 3));
                        s.flap_until_ns = now + s.p.flap_hold_ns;
                    }
                    // Hold nothing and listen for its stay-down; if none comes within a peer
                    // timeout, rejoin through discovery.
                    s.last_stay_down_heard_ns = now;
                    step_down(s, now, out, role::fenced);
                }
            } else {
                // The primary we replaced is alive after all: a false takeover (counted for
                // the soak), then the same rule as any conflict.
                if (m.node_id == s.failed_id && !s.failed_seen_alive) {
                    s.failed_seen_alive = true;
                    ++s.c.false_takeovers;
                }
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
    // The primary we replaced, heard stepping down to fenced: it was alive (a rebooted node
    // starts in discovery, never in fenced). Counted once per takeover, for the soak.
    if (s.r == role::primary && s.failed_id != 0 && m.node_id == s.failed_id && !s.failed_seen_alive &&
        static_cast<role>(m.role) == role::fenced) {
        s.failed_seen_alive = true;
        ++s.c.false_takeovers;
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
            take_over(s, now, out, takeover_cause::release);
        } else if (s.r == role::standby && !better_standby_exists(s, now)) {
            // The monitor left: probe its address again right away.
            start_discovery(s, now);
        }
        break;
    case hb_type::takeover_req:
        // Seed 003 claim 1, operator at the primary: the monitor answers with a shutdown request.
        if (s.r == role::monitor && s.fault == fault_kind::none && !s.switchover_pending) {
            s.watched_id = m.node_id;
            s.watched_mac = f.eth.src;
            begin_switchover(s, now, out);
        }
        break;
    case hb_type::shutdown_req:
        if (s.r == role::primary) begin_drain(s, f.eth.src, m.node_id, now, out);
        break;
    case hb_type::drained:
        // Seed 003 claims 4, 16: the old primary has finished; take its address and its work.
        if (s.r == role::monitor && s.switchover_pending && m.node_id == s.watched_id) {
            s.last_inflight_reported = m.ack_seq;
            notice(out, note::handover_inflight, static_cast<std::uint32_t>(m.ack_seq));
            take_over(s, now, out, takeover_cause::switchover);
        }
        break;
    case hb_type::fault_report: {
        // Seed 003 claims 9, 10: answer whether we can take over; if so, the switchover follows.
        if (s.r != role::monitor) break;
        const bool can = s.fault == fault_kind::none;
        auto a = make_hb(s, hb_type::fault_answer, now);
        if (can) a.flags |= wire::hb_flag_can_take_over | wire::hb_flag_in_sync;
        a.ack_seq = m.ack_seq;
        send_hb(out, f.eth.src, a);
        if (can && !s.switchover_pending) {
            s.watched_id = m.node_id;
            s.watched_mac = f.eth.src;
            begin_switchover(s, now, out);
        }
        break;
    }
    case hb_type::fault_answer:
        if (s.fault == fault_kind::none || s.fault_answered) break;
        s.fault_answered = true;
        s.fault_can_take_over = (m.flags & wire::hb_flag_can_take_over) != 0;
        // Seed 003 claim 12: no healthy peer -> the faulty primary keeps serving and says so.
        notice(out, s.fault_can_take_over ? note::fault_takeover_accepted : note::fault_no_takeover,
               static_cast<std::uint32_t>(s.fault));
        break;
    case hb_type::engine_down: // handled above
        break;
    case hb_type::announce:
        // The primary lost its monitor (003 claim 3): standbys probe the monitor address now.
        if (s.r == role::standby && (m.flags & wire::hb_flag_monitor_missing) && s.disc_held)
            start_discovery(s, now);
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

} // namespace heartwire::fsm::detail
