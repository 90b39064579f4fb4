#include "heartwire/replica_host.hpp"

#include <algorithm>

namespace heartwire::replica {

std::string_view to_string(side s) noexcept {
    switch (s) {
    case side::none: return "none";
    case side::leader: return "leader";
    case side::follower: return "follower";
    }
    return "?";
}

namespace {
sender_params with_keepalive(sender_params p, std::uint64_t keepalive_ns) noexcept {
    if (p.keepalive_ns == 0) p.keepalive_ns = keepalive_ns;
    return p;
}
} // namespace

host::host(table& t, const host_params& p)
    : t_(t), p_(p), snd_(t, with_keepalive(p.sender, p.keepalive_ns), 0), rcv_(t), completed_(t.state().applied_seq) {}

void host::lead(std::uint64_t stream, std::uint64_t now) {
    if (side_ == side::leader && snd_.stream() == stream) return;
    // A snapshot was clearing this copy when it stopped following (a takeover in the first
    // polls of a snapshot into a large copy): half cleared, it is not a table to lead from
    // (a key past the cleared slots would be found by nobody and written twice). The clear
    // goes on a slice a turn (poll); until it is done nobody leads here (writes wait in the
    // queue).
    if (rcv_.clearing()) {
        side_ = side::none;
        return;
    }
    if (side_ != side::leader) {
        // Leading from where the table is (the monitor's copy, on a takeover): what it holds
        // is complete; no monitor can be in sync with a stream that has not started, so
        // writes complete once applied here until one is (degraded).
        completed_ = degraded_high_ = t_.state().applied_seq;
        degraded_ = true;
        hold_since_ = 0;
    } else {
        hold_since_ = 0; // the same node, a new stream: a monitor of the old one may still think itself in sync
    }
    snd_.restart(stream);
    side_ = side::leader;
    peer_ = false;
    was_in_sync_ = false;
    joined_ns_ = now;
}

void host::follow(std::uint64_t now) {
    if (side_ == side::follower) return;
    rcv_.reset(); // whatever it holds, the primary's snapshot decides
    side_ = side::follower;
    was_in_sync_ = false;
    synced_stream_ = 0;
    joined_ns_ = now;
    scrub_ns_ = now;
    scrub_slot_ = 0;
    scrub_pass_bad_ = 0;
}

void host::stand_by() { side_ = side::none; }

std::uint64_t host::write(std::uint8_t op, std::string_view key, std::span<const std::byte> value, std::uint64_t now) {
    if (side_ != side::leader) {
        ++refused_;
        return 0;
    }
    return op == op_erase ? snd_.erase(key, now) : op == op_put ? snd_.put(key, value, now) : 0;
}

void host::on_frame(std::span<const std::byte> payload, std::uint64_t now, const sender::emit_fn& emit) {
    const frame_type k = peek_type(payload);
    if (side_ == side::leader && k == frame_type::ack) {
        ack_msg a;
        if (decode_ack(payload, a)) snd_.on_ack(a, now);
        else ++refused_;
    } else if (side_ == side::follower && (k == frame_type::data || k == frame_type::snapshot)) {
        rcv_.on_frame(payload, now, emit);
    }
}

void host::update_completion(std::uint64_t now) noexcept {
    const bool live = peer_ && snd_.in_sync(); // a follower holds this stream: its ACKs are its copy
    if (live) completed_ = std::max(completed_, snd_.acked());
    if (!p_.sync) return;
    if (live && snd_.acked() >= degraded_high_) { // in sync
        degraded_ = false;
        hold_since_ = 0;
        return;
    }
    if (degraded_) {
        if (live) {
            // A follower catching up on the writes completed without it: from here writes
            // wait for it again, so it holds every complete write once it says it is in sync
            // (or, when it does not get there within the hold, the store degrades again).
            degraded_ = false;
            hold_since_ = now;
            return;
        }
        completed_ = degraded_high_ = snd_.last_seq();
        return;
    }
    if (hold_since_ == 0) hold_since_ = now;
    if (now - hold_since_ >= p_.degrade_hold_ns) { // no monitor in sync for the hold: the service goes on
        degraded_ = true;
        hold_since_ = 0;
        completed_ = degraded_high_ = snd_.last_seq();
    }
}

void host::poll(std::uint64_t now, bool peer, const sender::emit_fn& emit) {
    last_now_ = now;
    if (side_ == side::leader) {
        if (peer_ && !peer) snd_.reset_follower(); // the monitor is gone: nothing in flight to it
        peer_ = peer;
        update_completion(now);
        snd_.set_floor(completed_, in_sync());
        if (peer) snd_.poll(now, emit);
    } else if (side_ == side::none) {
        rcv_.clear_step(); // a clear under way goes on: a copy left half cleared is no table
    } else if (side_ == side::follower) {
        rcv_.poll(now, p_.idle_ack_ns, emit, peer);
        // Self-check (seed 004: synchronicity monitored continuously): a slice of the copy
        // against each record's stored hash, one whole pass per scrub_period_ns.
        const std::uint32_t cap = t_.geometry().capacity;
        const std::uint64_t due = p_.scrub_period_ns == 0 ? 0 : (now - scrub_ns_) * cap / p_.scrub_period_ns;
        if (due != 0) {
            const auto n = static_cast<std::uint32_t>(std::min<std::uint64_t>(due, p_.scrub_max_per_poll));
            std::uint64_t bad = 0;
            scrub_slot_ = t_.scrub(scrub_slot_, n, bad);
            scrub_ns_ = now;
            scrub_pass_bad_ += bad;
            if (bad != 0) {
                scrub_bad_ += bad;
                rcv_.mark_diverged(bad);
            }
            if (scrub_slot_ >= cap) {
                scrub_slot_ = 0;
                ++scrub_passes_;
                scrub_pass_bad_ = 0;
            }
        }
    }
    const bool sync = in_sync();
    if (sync && !was_in_sync_) sync_reached_ns_ = now;
    if (sync && side_ == side::follower) synced_stream_ = rcv_.stream();
    was_in_sync_ = sync;
    const std::uint64_t matches = side_ == side::follower ? rcv_.counters().digest_matches : snd_.counters().acks;
    if (matches != last_match_count_) {
        last_match_count_ = matches;
        if (sync) last_match_ns_ = now;
    }
}

bool host::in_sync() const noexcept { return in_sync_at(last_now_); }

bool host::in_sync_at(std::uint64_t now) const noexcept {
    switch (side_) {
    case side::leader: return peer_ && snd_.in_sync() && (!p_.sync || snd_.acked() >= degraded_high_);
    case side::follower:
        return rcv_.in_sync() && rcv_.heard_ns() != 0 && rcv_.heard_ns() + p_.lease_ns >= std::max(now, last_now_);
    case side::none: return false;
    }
    return false;
}

bool host::caught_up() const noexcept {
    if (side_ != side::leader) return true;
    return in_sync() && snd_.acked() == snd_.last_seq();
}

host_status host::status(std::uint64_t now) const noexcept {
    host_status s;
    s.s = side_;
    s.in_sync = in_sync();
    s.degraded = side_ == side::leader && p_.sync && degraded_;
    s.holding = side_ == side::leader && p_.sync && hold_since_ != 0;
    const auto st = t_.state();
    s.records = st.count;
    s.digest = st.digest;
    s.refused = refused_;
    s.divergences = divergences();
    s.scrub_passes = scrub_passes_;
    s.scrub_bad = scrub_bad_;
    s.sync_reached_ns = sync_reached_ns_;
    s.joined_ns = joined_ns_;
    s.consistent = consistent();
    s.last_match_ns = last_match_ns_;
    s.sc = snd_.counters();
    s.rc = rcv_.counters();
    if (side_ == side::leader) {
        s.stream = snd_.stream();
        s.last_seq = snd_.last_seq();
        s.acked = snd_.acked();
        s.l = snd_.current_lag(now);
        s.rtt_ns = snd_.rtt_ns();
    } else {
        s.stream = rcv_.stream();
        s.last_seq = side_ == side::follower ? rcv_.applied() : st.applied_seq;
        s.last_match_seq = rcv_.last_match_seq();
    }
    s.completed = completed_;
    return s;
}

} // namespace heartwire::replica
