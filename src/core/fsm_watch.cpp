#include "fsm_detail.hpp"

#include <algorithm>

// Watching the primary and taking over (seeds 000 claims 1, 3-9; 001 claim 1; 003 claims
// 2, 14-17): probes and answers, the takeover with its fence, boot and stay-down, conflicts
// between primaries resolved by rank, and the defence of held addresses (RFC 5227 2.4).

namespace heartwire::fsm::detail {

using wire::hb_type;

bool is_watched_primary(const state& s, const wire::frame& f, const peer* pr) noexcept {
    if (!pr || (pr->flags & wire::hb_flag_holds_primary) == 0) return false;
    return s.watched_id != 0 ? f.hb.node_id == s.watched_id && f.eth.src == s.watched_mac
                             : !s.primary_mac_hint.is_zero() && f.eth.src == s.primary_mac_hint;
}

// ------------------------------------------------------------------ time

// Issue 10: a silent primary while a store's copy here is joining (a snapshot under way) or
// repairing is taken over only after the stores' join hold. A copy that is part of a
// snapshot is no state the primary ever had, and a takeover with it is for good: the old
// primary, if it only stalled, rejoins as the monitor and its whole copy is replaced by
// that part. A primary that stalled answers within the hold (no takeover); one that died is
// taken over after it, counted out of sync. An engine-down notice (certain death) and a
// copy that is only behind are not held.
// (The hold is at most a minute, state.join_hold_ms: its ms and us fit a notice's arg.)
static bool hold_takeover(state& s, std::uint64_t now, action_sink& out) noexcept {
    if (s.replica_join_hold_ns == 0) return false; // (only the engine's stores set it)
    if (s.takeover_held_since_ns == 0) {
        s.takeover_held_since_ns = now;
        ++s.c.takeovers_held;
        notice(out, note::takeover_held, static_cast<std::uint32_t>(s.replica_join_hold_ns / 1'000'000));
    }
    return now - s.takeover_held_since_ns < s.replica_join_hold_ns;
}

void tick_monitor(state& s, const event& ev, std::uint64_t now, action_sink& out) noexcept {
    if (s.fence_pending) {
        // A reload took the requirement away (protocol.require_fence off, or no fence hook
        // any more: the operator's answer to a broken fencing device): the takeover the
        // fence held back goes ahead now.
        if (!s.p.require_fence || !s.p.has_fence) {
            s.fence_pending = false;
            take_over(s, now, out, takeover_cause::fenced);
            return;
        }
        // Not fenced yet: never claim; retry with a doubling backoff while the primary
        // stays silent (a primary heard again cancels the fence: watch_frame).
        if (s.fence_retry_ns != 0 && now >= s.fence_retry_ns) {
            s.fence_retry_ns = 0;
            run_hook(out, hook_kind::fence, s.failed_id, s.failed_mac);
        }
        return;
    }
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
        if (!hold_takeover(s, now, out)) {
            take_over(s, now, out, takeover_cause::failure);
            return;
        }
        // Held: the probes go on, and an answer ends the hold.
    } else if (s.takeover_held_since_ns != 0 && s.det.last_answer_ns() >= s.takeover_held_since_ns) {
        // Only an answer ends the hold: a stall of our own (or a retuned window) makes the
        // silence no failure for a fresh window, and does not grant a second hold after it.
        ++s.c.takeover_holds_answered;
        notice(out, note::takeover_hold_answered, static_cast<std::uint32_t>((now - s.takeover_held_since_ns) / 1000));
        s.takeover_held_since_ns = 0;
    }
    if (!s.det.probe_due(now)) return;
    const std::uint64_t seq = s.det.on_probe_sent(now);
    ++s.c.probes_sent;
    // Until the primary has answered, probe the MAC that discovery saw holding its address.
    const mac_addr dst = s.watched_id ? s.watched_mac
                         : s.primary_mac_hint.is_zero() ? mac_addr::heartwire_group()
                                                        : s.primary_mac_hint;
    if (s.p.probe != cfg::probe_kind::icmp) {
        // The frame seq belongs to the replay window; the probe's identity for the detector
        // travels in ack_seq and comes back in the answer's ack_seq.
        auto m = make_hb(s, hb_type::probe, now);
        m.ack_seq = seq;
        s.probe_sent_ns[seq % probe_memory] = now; // the answer must echo it (watch_frame, ack)
        send_hb(out, dst, m);
    }
    if (s.p.probe != cfg::probe_kind::heartbeat && !s.p.addr[0].is_zero()) { // (IPv6-only: heartbeats only)
        action a;
        a.kind = action_kind::send_icmp_probe;
        a.dst = dst.is_multicast() ? mac_addr::broadcast() : dst;
        a.addr = s.p.addr[0];
        a.icmp_seq = static_cast<std::uint16_t>(seq);
        out.emit(a);
    }
}

void tick_primary(state& s, std::uint64_t now, action_sink& out) noexcept {
    // Seed 003 claim 3: heartbeats run both ways; the primary notices a silent monitor.
    if (s.monitor_alive && now - s.monitor_last_probe_ns > s.p.peer_timeout_ns) {
        s.monitor_alive = false;
        ++s.c.monitor_lost;
    }
    if (s.stay_down_active && now >= s.next_stay_down_ns) {
        const peer* old = find_peer(s, s.stay_down_id);
        // It rebooted (fresh discovery roles) -> it knows it is not primary any more.
        if (old && alive(s, *old, now) && old->r != role::primary && old->r != role::fenced && old->r != role::init) {
            s.stay_down_active = false;
        } else {
            send_hb(out, s.stay_down_mac, make_hb(s, hb_type::stay_down, now));
            ++s.c.stay_downs_sent;
            s.next_stay_down_ns = now + s.p.stay_down_interval_ns;
        }
    }
}

void tick_fenced(state& s, std::uint64_t now, action_sink& out) noexcept {
    // Stay down while the newer primary keeps telling us; rejoin when it stops.
    if (now - s.last_stay_down_heard_ns > s.p.peer_timeout_ns) set_role(s, role::probe_primary, now, out);
}

// ------------------------------------------------------------------ takeover

// Seed 000 claims 1, 5: the monitor takes the primary address over. A fresh, larger epoch
// makes every older primary step down when it hears us (DESIGN "epochs").
void take_over(state& s, std::uint64_t now, action_sink& out, takeover_cause why) noexcept {
    if (s.r != role::monitor || s.link_down) return;
    s.takeover_held_since_ns = 0; // the hold, if any, is over (a fence may still come first)
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
            s.fence_failures = 0;
            s.det.stop();
            run_hook(out, hook_kind::fence, s.failed_id, s.failed_mac);
        }
        return;
    }
    s.failed_seen_alive = false;
    ++s.c.takeovers;
    if (failed && !replica_ok(s)) {
        // Seed 004: the primary is gone and this copy is behind or damaged; taking over is
        // still better than no service, but the operator must know what may be missing.
        ++s.c.takeovers_out_of_sync;
        notice(out, note::takeover_out_of_sync, 1);
    }
    s.epoch = sat_inc(s.epoch);
    claim(s, address_id::primary, now, out);
    // Seed 001 claim 1 / 002 [0028]: the monitor address is released for the next standby
    // (set_role's exit actions release it).
    set_role(s, role::primary, now, out);
    // The old primary is no longer what the table says it was.
    if (peer* old = find_peer_mut(s, s.failed_id); old && failed) old->down = true;
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
    set_role(s, to, now, out); // exit actions release what `to` may not hold
    release(s, address_id::primary, out);
    release(s, address_id::monitor, out);
}

// The fence hook finished. Only a monitor still waiting for it acts on the result: a late
// success after the role ended, or after the primary was heard again, claims nothing.
void on_fence_done(state& s, bool ok, std::uint64_t now, action_sink& out) noexcept {
    if (s.r != role::monitor || !s.fence_pending) return;
    if (ok) {
        take_over(s, now, out, takeover_cause::fenced);
        return;
    }
    ++s.fence_failures;
    notice(out, note::fence_failed, s.failed_id);
    const std::uint64_t backoff = s.p.peer_timeout_ns << std::min<std::uint32_t>(s.fence_failures - 1, 6);
    s.fence_retry_ns = now + backoff;
}

// Seed 003 claims 14-15: the failed server's own monitoring means (its guard, which
// outlives the engine) tells us the engine died. The monitor takes over at once, as on a
// failure (fence, boot_peer, stay-down), instead of waiting out the silence window. Only
// a notice about the primary we watch (its id and MAC), at an epoch not older than the
// newest we know, moves the address.
void on_engine_down(state& s, const wire::frame& f, peer* pr, std::uint64_t now, action_sink& out) noexcept {
    const auto& m = f.hb;
    ++s.c.engine_down_notices;
    notice(out, note::engine_down_heard, m.node_id);
    // A node-wide notice (group 0) says nothing of this group: what the peer held and its
    // epoch are what its last frame of this group said.
    const bool node_wide = m.group == 0;
    if (node_wide && !pr) return;
    const std::uint16_t flags = node_wide ? pr->flags : m.flags;
    const std::uint64_t epoch = node_wide ? pr->epoch : m.epoch;
    const bool held_primary = (flags & wire::hb_flag_holds_primary) != 0;
    const bool held_monitor = (flags & wire::hb_flag_holds_monitor) != 0;
    if (s.r == role::monitor && held_primary && is_watched_primary(s, f, pr) && epoch >= s.epoch && !s.fence_pending) {
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
    // A dead engine is not a live peer any more (it comes back under discovery roles); its
    // entry stays, so its replay window keeps its old frames out.
    if (pr) pr->down = true;
    // The monitor died: the first standby probes its address now ([0029]).
    if (s.r == role::standby && held_monitor && !better_standby_exists(s, now)) start_discovery(s, now);
}

// ------------------------------------------------------------------ frames

void watch_frame(state& s, const wire::frame& f, const admitted& ad, std::uint64_t now, action_sink& out) noexcept {
    const auto& m = f.hb;
    peer* pr = ad.p;
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
                // We win: make sure every ARP cache points at us again.
                ++s.c.address_conflicts;
                garp_burst(s, address_id::primary, now, out);
            }
        } else if (s.r == role::monitor && m.node_id != s.watched_id) {
            const peer* cur = watched_primary(s);
            if (!cur || m.epoch >= cur->epoch) {
                s.watched_id = m.node_id;
                s.watched_mac = f.eth.src;
            }
        }
    }
    // A partition healed, or the old primary stepped down on hearing us: the clients on its
    // side still point at it. Re-announce whether or not we hear it claim (issue 8 item 7).
    // Not for a standby that appears: it never held the address, so no client points at it
    // (with many standbys and groups, every new one would otherwise cost a burst per group).
    const bool plain_standby = static_cast<role>(m.role) == role::standby &&
                               (m.flags & (wire::hb_flag_holds_primary | wire::hb_flag_holds_monitor)) == 0;
    if (s.holds[0] && ((ad.reappeared && !plain_standby) || ad.left_primary) && !peer_holds_primary) {
        ++s.c.address_conflicts;
        garp_burst(s, address_id::primary, now, out);
    }
    // The primary we replaced, heard stepping down to fenced: it was alive (a rebooted node
    // starts in discovery, never in fenced). Counted once per takeover, for the soak.
    if (s.r == role::primary && s.failed_id != 0 && m.node_id == s.failed_id && !s.failed_seen_alive &&
        static_cast<role>(m.role) == role::fenced) {
        s.failed_seen_alive = true;
        ++s.c.false_takeovers;
    }
    // A fence that failed, and the primary answers again: it was not dead. Stop fencing it
    // (a later success would fence a healthy node) and watch it again.
    if (s.r == role::monitor && s.fence_pending && m.node_id == s.failed_id && peer_holds_primary) {
        s.fence_pending = false;
        s.fence_retry_ns = 0;
        s.fence_failures = 0;
        s.watched_id = m.node_id;
        s.watched_mac = f.eth.src;
        notice(out, note::fence_abandoned, m.node_id);
        s.det.start(now);
    }
    if (!s.holds[0]) s.epoch = std::max(s.epoch, m.epoch);
    if (peer_holds_primary) s.primary_mac_hint = f.eth.src;

    // Two monitors: the higher rank keeps the address.
    if (peer_holds_monitor && s.holds[1] && pr && outranks(*pr, s)) {
        ++s.c.monitor_yields;
        set_role(s, role::standby, now, out);
    }

    switch (m.type) {
    case hb_type::probe: {
        // Answer every probe: the primary answers the monitor (seed 000 claim 1), and the
        // probes tell the primary its monitor is alive (seed 003 claim 3).
        auto ack = make_hb(s, hb_type::ack, now);
        ack.ack_seq = m.ack_seq; // the probe's identity (tick_monitor)
        ack.ts_echo_ns = m.ts_ns;
        send_hb(out, f.eth.src, ack);
        ++s.c.acks_sent;
        if (s.holds[0] && static_cast<role>(m.role) == role::monitor && peer_holds_monitor) {
            s.heard_monitor_id = m.node_id;
            s.monitor_last_probe_ns = now;
            s.monitor_alive = true;
        }
        break;
    }
    case hb_type::ack:
        if (s.r == role::monitor && (m.node_id == s.watched_id || s.watched_id == 0) && peer_holds_primary) {
            // An answer to a probe of this boot echoes that probe's send time: acks captured
            // from an earlier boot of ours (whose probe seqs restart at 1) answer nothing.
            if (m.ts_echo_ns == 0 || s.probe_sent_ns[m.ack_seq % probe_memory] != m.ts_echo_ns) {
                ++s.c.stale_answers;
            } else if (s.det.on_answer(m.ack_seq, now)) {
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
    case hb_type::stay_down: {
        // Seed 003 claim 2: a newer primary tells the old one to stay down; it holds nothing
        // while it hears them. Only a primary that outranks us by the full rank rule.
        ++s.c.stay_downs_heard;
        const rank theirs{m.epoch, m.priority, m.node_id};
        if (!peer_holds_primary) {
            ++s.c.drop_role;
        } else if (s.r == role::fenced) {
            if (m.epoch >= s.epoch) s.last_stay_down_heard_ns = now;
            else ++s.c.drop_role;
        } else if (s.holds[0] || s.r == role::primary || s.r == role::draining) {
            if (theirs > my_rank(s)) {
                s.epoch = std::max(s.epoch, m.epoch);
                s.last_stay_down_heard_ns = now;
                step_down(s, now, out, role::fenced);
            } else {
                ++s.c.drop_role;
            }
        }
        break;
    }
    default:
        break;
    }
}

// ------------------------------------------------------------------ ARP and ICMP

namespace {

// RFC 5227 section 2.4 (b) / RFC 4862 5.4.4: another MAC claims an address we hold. Defend
// it at once with our announcement (GARP, or NA for IPv6), at most once per defend
// interval per role; a claim that keeps coming is reported once a second.
// A DAD probe is a node asking, not claiming: answered the same way, not counted as a
// conflict or an attack (a peer's normal boot sends them).
template <class Announce>
void defend(state& s, std::size_t i, std::uint64_t now, action_sink& out, Announce&& announce, bool claim = true) noexcept {
    if (claim) ++s.c.address_conflicts;
    if (s.last_defence_ns[i] == 0 || now - s.last_defence_ns[i] >= s.p.defend_interval_ns) {
        s.last_defence_ns[i] = now;
        ++s.c.address_defences;
        announce();
    }
    if (!claim) return;
    if (now - s.attack_window_ns >= 1'000'000'000) {
        if (s.attack_count >= 3) notice(out, note::address_attacked, s.attack_count);
        s.attack_window_ns = now;
        s.attack_count = 0;
    }
    ++s.attack_count;
}

} // namespace

void on_arp(state& s, const wire::frame& f, std::uint64_t now, action_sink& out) noexcept {
    const auto& a = f.arp;
    for (std::size_t i = 0; i < address_count; ++i) {
        if (!s.holds[i]) continue;
        const auto& held = s.p.addrs[i];
        // Answer who-has for what we hold, RFC 5227 probes included: that is how a
        // discovering node learns the address is taken (seed 002 FIG. 1).
        if (a.op == wire::arp_op_request && held.has(a.tpa) && !a.is_gratuitous()) {
            action r;
            r.kind = action_kind::send_arp_reply;
            r.dst = a.sha;
            r.arp.op = wire::arp_op_reply;
            r.arp.sha = s.p.mac;
            r.arp.spa = a.tpa;
            r.arp.tha = a.sha;
            r.arp.tpa = a.spa;
            out.emit(r);
            ++s.c.arp_replies;
        }
        if (held.has(a.spa) && a.sha != s.p.mac)
            defend(s, i, now, out, [&] {
                emit_addr(out, action_kind::send_garp, static_cast<address_id>(i), a.spa);
                ++s.c.garps_sent;
            });
    }
    discovery_arp(s, a, now);
}

// IPv6 neighbour discovery for the addresses a role holds: answer solicitations (exclusive
// mode: the kernel does in shared mode), and defend against another node's advertisement
// or duplicate address detection for them (RFC 4862 5.4.3, 5.4.4).
void on_nd(state& s, const wire::frame& f, std::uint64_t now, action_sink& out) noexcept {
    const auto& n = f.nd;
    for (std::size_t i = 0; i < address_count; ++i) {
        if (!s.holds[i] || !s.p.addrs[i].has(n.target)) continue;
        if (!n.is_advert && !n.is_dad()) {
            if (s.p.answer_icmp) {
                action r;
                r.kind = action_kind::answer_ns;
                out.emit(r);
                ++s.c.ns_answered;
            }
            continue;
        }
        // Another node's NA for our address, or its DAD probe for it: ours, announced again.
        const mac_addr& who = n.has_lladdr ? n.lladdr : f.eth.src;
        if (who == s.p.mac) continue;
        defend(
            s, i, now, out,
            [&] {
                emit_addr6(out, action_kind::send_na, static_cast<address_id>(i), n.target);
                ++s.c.nas_sent;
            },
            n.is_advert);
    }
    discovery_nd(s, f, now);
}

void on_icmp6(state& s, const wire::frame& f, action_sink& out) noexcept {
    const auto& e = f.echo6;
    if (e.is_reply || !s.p.answer_icmp || e.src.is_zero()) return; // (a reply to :: would go nowhere)
    for (std::size_t i = 0; i < address_count; ++i) {
        if (s.holds[i] && s.p.addrs[i].has(e.dst)) {
            action r;
            r.kind = action_kind::reflect_echo6;
            out.emit(r);
            ++s.c.echo6_replies;
            return;
        }
    }
}

void on_icmp(state& s, const wire::frame& f, std::uint64_t now, action_sink& out) noexcept {
    const auto& e = f.echo;
    if (!e.is_reply) {
        for (std::size_t i = 0; i < address_count; ++i) {
            if (s.holds[i] && s.p.addrs[i].has(e.dst) && s.p.answer_icmp) {
                action r;
                r.kind = action_kind::reflect_echo;
                out.emit(r);
                ++s.c.echo_replies;
                return;
            }
        }
        return;
    }
    // Seed claim 8: echo of the primary address as the probe. An echo reply carries no tag:
    // in keyed mode (probe = "both") only the authenticated heartbeat answers count, or a
    // forged reply could keep a dead primary "alive".
    if (s.p.require_auth) {
        if (s.r == role::monitor && e.dst == s.p.addr[1]) ++s.c.drop_unauthenticated;
        return;
    }
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
