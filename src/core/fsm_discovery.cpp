#include "fsm_detail.hpp"

// Boot-time discovery (seed 002 FIG. 1, 2) and the standby loop ([0021]-[0029]): probe the
// primary address, then the monitor address; claim the first one found free; otherwise
// stand by and keep probing the monitor address so the first standby takes it when it frees.

namespace heartwire::fsm::detail {

namespace {

// RFC 5227 style: `discovery_probes` probes `discovery_interval` apart, then a quiet
// `discovery_wait`. Returns true when the address was found free.
bool tick_discovery(state& s, address_id target, std::uint64_t now, action_sink& out) noexcept {
    if (s.disc_held) return false;
    if (now < s.disc_next_ns) return false;
    if (s.disc_sent < s.p.discovery_probes) {
        if (!s.p.addr[idx(target)].is_zero()) emit_addr(out, action_kind::send_arp_probe, target, s.p.addr[idx(target)]);
        // RFC 4862 5.4: the role's IPv6 addresses are probed alongside, by DAD.
        const auto& r = s.p.addrs[idx(target)];
        for (std::size_t k = 0; k < r.n6; ++k) {
            emit_addr6(out, action_kind::send_dad_ns, target, r.v6[k]);
            ++s.c.dad_probes_sent;
        }
        ++s.disc_sent;
        s.disc_next_ns = now + (s.disc_sent < s.p.discovery_probes ? s.p.discovery_interval_ns : s.p.discovery_wait_ns);
        return false;
    }
    return true;
}

// Another node with our id is on the segment: no claim until it has gone.
bool may_claim(const state& s, std::uint64_t now) noexcept { return now >= s.collision_until_ns && !s.link_down; }

} // namespace

void start_discovery(state& s, std::uint64_t now) noexcept {
    s.disc_sent = 0;
    s.disc_next_ns = now;
    s.disc_held = false;
}

void tick_discovery_roles(state& s, std::uint64_t now, action_sink& out) noexcept {
    switch (s.r) {
    case role::probe_primary:
        // Seed 002 FIG. 1: nobody answered for the primary address -> claim it and serve.
        if (tick_discovery(s, address_id::primary, now, out) && may_claim(s, now)) {
            s.epoch = sat_inc(s.epoch);
            claim(s, address_id::primary, now, out);
            set_role(s, role::primary, now, out);
        } else if (s.disc_held) {
            set_role(s, role::probe_monitor, now, out);
        }
        break;
    case role::probe_monitor:
        // Seed 002 FIG. 2: the monitor address is free -> claim it and watch the primary.
        if (tick_discovery(s, address_id::monitor, now, out) && may_claim(s, now)) {
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
            if (better_standby_exists(s, now) || !may_claim(s, now)) {
                start_discovery(s, now + s.p.announce_interval_ns);
            } else {
                claim(s, address_id::monitor, now, out);
                set_role(s, role::monitor, now, out);
            }
        }
        break;
    default:
        break;
    }
}

// What an admitted heartbeat tells discovery: the probed address is held, or a higher
// rank probes it too (FIG. 1: the higher rank goes on); two monitors: the higher rank keeps
// the address; a standby learns the monitor is gone.
void discovery_evidence(state& s, const wire::frame& f, const peer* pr, std::uint64_t now) noexcept {
    const auto& m = f.hb;
    const bool holds_primary = (m.flags & wire::hb_flag_holds_primary) != 0;
    const bool holds_monitor = (m.flags & wire::hb_flag_holds_monitor) != 0;
    if (s.r == role::probe_primary || s.r == role::probe_monitor) {
        const bool same_target = static_cast<role>(m.role) == s.r;
        // A peer that hears a live primary is evidence too: our probes' answers may have
        // been lost (a busy boot), and a claim at the epoch the peers taught us would
        // outrank that primary.
        const bool held = s.r == role::probe_primary ? holds_primary || (m.flags & wire::hb_flag_primary_alive) != 0
                                                     : holds_monitor;
        if (held || (same_target && pr && outranks(*pr, s))) s.disc_held = true;
    }
    if (s.r == role::standby && holds_monitor) s.disc_held = true;
    if (s.r == role::standby && !better_standby_exists(s, now)) {
        // The monitor left cleanly, or the primary says its monitor went silent (003 claim
        // 3): probe the monitor address again right away.
        const bool monitor_left = m.type == wire::hb_type::release;
        const bool monitor_missing = m.type == wire::hb_type::announce && (m.flags & wire::hb_flag_monitor_missing) && s.disc_held;
        if (monitor_left || monitor_missing) start_discovery(s, now);
    }
}

void discovery_arp(state& s, const wire::arp_msg& a, std::uint64_t now) noexcept {
    // Evidence for discovery: the probed address answered or was announced by someone else.
    if (!s.p.addr[0].is_zero() && a.spa == s.p.addr[0] && a.sha != s.p.mac && !s.holds[0]) s.primary_mac_hint = a.sha;
    const bool probing_primary = s.r == role::probe_primary;
    const bool probing_monitor = s.r == role::probe_monitor || s.r == role::standby;
    if ((probing_primary || probing_monitor) && a.sha != s.p.mac) {
        const ipv4_addr target = s.p.addr[probing_primary ? 0 : 1];
        if (target.is_zero() || a.spa != target) return; // (an IPv6-only role has no ARP evidence)
        // ARP carries no tag. Keyed, an ARP claim for the monitor address counts only from
        // the MAC of a live authenticated peer: a forged reply must not keep every standby
        // from ever taking the monitor address (issue 8 review). The primary address keeps
        // plain ARP evidence: a monitor without a primary takes it over anyway.
        if (probing_monitor && s.p.require_auth) {
            bool known = false;
            for (const auto& p : s.peers) known = known || (alive(s, p, now) && p.mac == a.sha);
            if (!known) {
                ++s.c.drop_unauthenticated;
                return;
            }
        }
        s.disc_held = true;
    }
}

// RFC 4862 5.4.4 at discovery: an advertisement for one of the probed role's IPv6
// addresses means the role is taken, as an ARP answer for its IPv4 address does. Another
// node's DAD probe for it is not evidence, as another ARP probe is not: two nodes booting
// together resolve by rank through their heartbeats (discovery_evidence). Keyed, the
// monitor role's evidence counts only from a live authenticated peer's MAC, as for ARP.
void discovery_nd(state& s, const wire::frame& f, std::uint64_t now) noexcept {
    const auto& n = f.nd;
    if (!n.is_advert) return;
    const bool probing_primary = s.r == role::probe_primary;
    const bool probing_monitor = s.r == role::probe_monitor || s.r == role::standby;
    if (!probing_primary && !probing_monitor) return;
    if (!s.p.addrs[probing_primary ? 0 : 1].has(n.target)) return;
    const mac_addr& who = n.has_lladdr ? n.lladdr : f.eth.src;
    if (who == s.p.mac) return;
    if (probing_monitor && s.p.require_auth) {
        bool known = false;
        for (const auto& p : s.peers) known = known || (alive(s, p, now) && p.mac == who);
        if (!known) {
            ++s.c.drop_unauthenticated;
            return;
        }
    }
    s.disc_held = true;
}

// Is there a live standby that should take the monitor address before us? ([0029]: the
// first standby is promoted; "first" = highest priority, then node id.) A node probing the
// monitor address right now (fresh from boot) competes for it too: two that find it free
// in the same instant resolve by rank, not by whose claim is heard first.
bool better_standby_exists(const state& s, std::uint64_t now) noexcept {
    for (const auto& p : s.peers)
        if (alive(s, p, now) && (p.r == role::standby || p.r == role::probe_monitor) && outranks(p, s)) return true;
    return false;
}

} // namespace heartwire::fsm::detail
