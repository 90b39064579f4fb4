#include "fsm_detail.hpp"

#include <algorithm>

// Admission (issue 8): what a heartbeat must pass before any role rule sees it. Each
// check that fails drops the frame and counts the reason; nothing dropped here changes a
// role, runs a hook or touches the peer table.

namespace heartwire::fsm::detail {

namespace {

// The replay window of one sender incarnation: seq above the highest seen moves the
// window; within the 64 below it, each seq is taken once; older ones are refused.
bool take_seq(peer& p, std::uint64_t seq) noexcept {
    if (seq > p.seq_high) {
        const std::uint64_t shift = seq - p.seq_high;
        p.seq_bits = shift >= 64 ? 0 : p.seq_bits << shift;
        p.seq_bits |= 1;
        p.seq_high = seq;
        return true;
    }
    const std::uint64_t back = p.seq_high - seq;
    if (back >= 64) return false;
    const std::uint64_t bit = std::uint64_t{1} << back;
    if (p.seq_bits & bit) return false;
    p.seq_bits |= bit;
    return true;
}

// A slot for a new authenticated peer: a free one, else the least recently heard entry
// that is no longer alive. Never a live peer's.
peer* free_slot(state& s, std::uint64_t now) noexcept {
    peer* best = nullptr;
    for (auto& p : s.peers) {
        if (!p.valid) return &p;
        if (alive(s, p, now)) continue;
        if (!best || p.last_heard_ns < best->last_heard_ns) best = &p;
    }
    return best;
}

void read_announce(peer& p, std::span<const std::byte> pl) noexcept {
    while (pl.size() >= 2) {
        const auto type = std::to_integer<std::uint8_t>(pl[0]);
        const std::size_t len = std::to_integer<std::uint8_t>(pl[1]);
        if (pl.size() - 2 < len) return;
        if (type == tlv_accepted_keys && len == 32) {
            p.accepts = {};
            for (std::size_t i = 0; i < 32; ++i)
                p.accepts[i / 8] |= std::uint64_t{std::to_integer<std::uint8_t>(pl[2 + i])} << ((i % 8) * 8);
            p.keys_known = true;
        }
        pl = pl.subspan(2 + len);
    }
}

} // namespace

bool admit(state& s, const wire::frame& f, std::uint64_t now, action_sink& out, admitted& a) noexcept {
    const auto& m = f.hb;
    // Group 0 is no group's id: it marks a node-wide engine-down notice (an engine serving
    // many groups), which every group of ours takes as its peer's.
    const bool node_wide = m.group == 0 && m.type == wire::hb_type::engine_down;
    if (m.group != s.p.group && !node_wide) {
        ++s.c.drop_other_group;
        return false;
    }
    if (s.p.require_auth && !f.authenticated) {
        ++s.c.drop_unauthenticated;
        return false;
    }
    // A unicast frame for another node, sent to us (a redirected capture): the tag binds
    // the destination, so it was never meant for us.
    if (!f.eth.dst.is_multicast() && f.eth.dst != s.p.mac) {
        ++s.c.drop_not_for_us;
        return false;
    }
    if (m.node_id == s.p.node_id) {
        // Our id from another MAC with a valid key: a configuration error that would make
        // two primaries. Neither node claims while it lasts.
        ++s.c.drop_id_collision;
        id_collision(s, f, now, out);
        return false;
    }
    peer* p = find_peer_mut(s, m.node_id);
    if (p && p->mac != f.eth.src) {
        // Bound to the MAC it was first authenticated with. A node whose NIC changed is
        // taken under a new incarnation once the old binding has gone silent.
        if (alive(s, *p, now) || m.incarnation <= p->incarnation) {
            ++s.c.drop_id_mac_mismatch;
            return false;
        }
    }
    if (p && m.incarnation < p->incarnation) {
        ++s.c.drop_old_incarnation;
        return false;
    }
    // Epochs only ever grow, one takeover at a time: a jump far above the newest we know
    // is a broken or hostile sender (it would pin or wrap every node's epoch).
    // (A node-wide notice carries another group's epoch: not this group's to judge.)
    if (!node_wide && s.epoch != 0 && m.epoch > s.epoch && m.epoch - s.epoch > max_epoch_step) {
        ++s.c.drop_epoch_jump;
        return false;
    }
    const bool is_new = !p;
    if (is_new && node_wide) return false; // a node this group never heard: nothing to act on
    if (is_new) {
        p = free_slot(s, now);
        if (!p) {
            ++s.c.drop_table_full;
            ++s.c.peer_table_full;
            if (now >= s.next_table_note_ns) {
                notice(out, note::peer_table_full, m.node_id);
                s.next_table_note_ns = now + s.p.peer_timeout_ns;
            }
            return false;
        }
        *p = peer{};
    }
    if (is_new || m.incarnation > p->incarnation || p->mac != f.eth.src) {
        // A new node or a restarted one: a fresh window under its new incarnation.
        p->incarnation = m.incarnation;
        p->seq_high = 0;
        p->seq_bits = 0;
        p->mac = f.eth.src;
        p->keys_known = false;
    }
    if (!take_seq(*p, m.seq)) {
        ++s.c.drop_replay;
        if (is_new) p->valid = false;
        return false;
    }
    a.p = p;
    a.reappeared = is_new || !alive(s, *p, now);
    a.left_primary = !is_new && (p->flags & wire::hb_flag_holds_primary) && !(m.flags & wire::hb_flag_holds_primary);
    p->valid = true;
    p->down = false;
    p->id = m.node_id;
    if (!node_wide) { // its role, rank and flags in this group stay what its own frames said
        p->r = static_cast<role>(m.role);
        p->priority = m.priority;
        p->epoch = m.epoch;
        p->flags = m.flags;
    }
    p->key_id = m.key_id;
    p->last_heard_ns = now;
    if (m.type == wire::hb_type::announce) read_announce(*p, m.payload);
    return true;
}

} // namespace heartwire::fsm::detail
