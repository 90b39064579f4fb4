#pragma once
// One replicated store as the engine runs it (issue 10): the table, a sender it uses while
// its group's machine is primary and a receiver while it is monitor, switched as the role
// moves. Pure like the rest of the core: time comes in, frames leave through a callback,
// and nothing allocates after construction (both sides are built once; a role change
// restarts one, in microseconds, inside the loop turn that saw it).
//
// Completion of a synchronous write (what the region's replicated_seq says): the monitor
// acknowledged it. When no monitor is in sync (none is live, or it is joining, catching up
// or repairing a divergence) writes wait for `degrade_hold_ns`, then complete once applied
// here and the store reports itself degraded: the service goes on, and a takeover by that
// monitor is one the state machine counts as out of sync (fsm: takeovers_out_of_sync).
// A monitor is in sync only within `lease_ns` of an ACK it sent that the primary's newest
// keepalive (every `keepalive_ns`) echoes, on its own clock (so a late keepalive only
// shortens the lease), while that keepalive counted it in sync, and once it has applied every
// write the primary last said was complete (the floor each DATA frame carries). The hold
// outlasts the lease, so by the time the primary completes a write that the monitor has not
// acknowledged, that monitor no longer says it is in sync, and it says so again only once
// it holds that write. So every write the application saw complete is on any monitor that
// is in sync. Completion never goes back while a node leads; when it stops leading, what
// was not complete stays so (the engine forfeits those tickets: state::region).

#include <cstdint>
#include <span>
#include <string_view>

#include "heartwire/replication.hpp"

namespace heartwire::replica {

enum class side : std::uint8_t { none, leader, follower };
std::string_view to_string(side s) noexcept;

struct host_params {
    sender_params sender;
    bool sync{true};
    std::uint64_t idle_ack_ns{5'000'000};       // follower: an unprompted ACK when this quiet
    std::uint64_t scrub_period_ns{1'000'000'000}; // follower: one self-check pass of the table this often
    std::uint32_t scrub_max_per_poll{64};       // ... at most this many slots in one poll
    std::uint64_t keepalive_ns{1'000'000};      // leader: a keepalive (seq, digest, floor, the echo of the monitor's ACK) this often
    std::uint64_t lease_ns{10'000'000};         // follower: in sync only while it heard the stream this recently
    std::uint64_t degrade_hold_ns{15'000'000};  // leader: writes wait this long for a monitor before degrading (> lease_ns)
};

struct host_status {
    side s{side::none};
    bool in_sync{false};
    bool degraded{false};        // leader: writes complete without a monitor's acknowledgement
    bool holding{false};         // leader: no monitor in sync, writes waiting (degrade_hold_ns) before degrading
    std::uint64_t stream{};
    std::uint64_t last_seq{};    // leader: the newest write; follower: the newest applied
    std::uint64_t completed{};   // what replicated_seq says
    std::uint64_t acked{};       // leader: the follower acknowledged up to it
    std::uint64_t last_match_seq{}; // follower: digests last agreed at this seq
    std::uint64_t last_match_ns{};  // when a digest last agreed (either side)
    std::uint64_t records{}, digest{};
    lag l;
    std::uint64_t rtt_ns{};
    std::uint64_t refused{};     // writes queued on a node that was not primary
    std::uint64_t divergences{}; // follower's copy found different (its digest or its scrub), either side
    std::uint64_t scrub_passes{}, scrub_bad{};
    std::uint64_t sync_reached_ns{}; // the last time the follower reached sync (0: never)
    std::uint64_t joined_ns{};       // when it started following this stream
    bool consistent{false};          // follower: host::consistent()
    sender_counters sc;
    receiver_counters rc;
};

class host {
public:
    host(table& t, const host_params& p);

    // The group's machine, each turn: leading (primary, or draining) with this stream id,
    // following (monitor), or neither. A change restarts the side it enters.
    void lead(std::uint64_t stream, std::uint64_t now);
    void follow(std::uint64_t now);
    void stand_by();
    side current() const noexcept { return side_; }
    // The copy is being cleared for a snapshot (and leads nowhere until it is done): the
    // application's writes wait in their queue meanwhile.
    bool clearing() const noexcept { return rcv_.clearing(); }
    bool synchronous() const noexcept { return p_.sync; }

    // Leader: one write from the application's queue; its seq (0: refused). Not leading:
    // refused, counted.
    std::uint64_t write(std::uint8_t op, std::string_view key, std::span<const std::byte> value, std::uint64_t now);
    // A replication frame the state machine let through (an ACK to a leader; DATA or a
    // SNAPSHOT chunk to a follower). Answers and resends go out through `emit`.
    void on_frame(std::span<const std::byte> payload, std::uint64_t now, const sender::emit_fn& emit);
    // Every turn: `peer` says whether the other side is live (the primary's monitor, the
    // monitor's primary). Sends what is due, self-checks a slice of a follower's copy.
    void poll(std::uint64_t now, bool peer, const sender::emit_fn& emit);

    bool in_sync() const noexcept;
    // The same at `now` rather than at the last poll: a follower's lease may have run out
    // since (a stall), which is what a takeover decided before the next poll must see.
    bool in_sync_at(std::uint64_t now) const noexcept;
    // Follower: the copy is one the primary had (it reached sync in this stream, and nothing
    // since replaces or repairs it), even if it is behind now. A copy that is joining (a
    // snapshot under way), repairing a divergence or was never in sync in this stream is
    // not: taking over with it serves records the primary never held together (the state
    // machine holds such a takeover back: [[state]] join_hold_ms).
    bool consistent() const noexcept {
        return side_ == side::follower && synced_stream_ != 0 && synced_stream_ == rcv_.stream() && !rcv_.walking();
    }
    // Leader: every write acknowledged by an in-sync follower (a draining primary hands over
    // only then; the machine's drain deadline is the fallback). True when not leading.
    bool caught_up() const noexcept;
    // What the region's replicated_seq says: sync, what the follower acknowledged (every
    // write once degraded, see above); async, what it acknowledged (the application's
    // writes complete on applied_seq; the difference is the lag that a takeover may lose).
    // Never goes back while leading; frozen while not.
    std::uint64_t completed() const noexcept { return completed_; }
    host_status status(std::uint64_t now) const noexcept;
    std::uint64_t divergences() const noexcept { return snd_.counters().divergences + rcv_.counters().divergences; }

private:
    table& t_;
    host_params p_;
    sender snd_;
    receiver rcv_;
    void update_completion(std::uint64_t now) noexcept;
    side side_{side::none};
    bool peer_{false};
    std::uint64_t completed_{0};
    std::uint64_t degraded_high_{0}; // the last write completed without an acknowledgement
    std::uint64_t hold_since_{0};    // no monitor in sync since (0: one is, or degraded)
    bool degraded_{false};
    std::uint64_t last_now_{0};      // the last poll (a follower's lease is judged at it)
    std::uint64_t refused_{0};
    std::uint32_t scrub_slot_{0};
    std::uint64_t scrub_ns_{0}, scrub_bad_{0}, scrub_passes_{0}, scrub_pass_bad_{0};
    std::uint64_t last_match_count_{0}, last_match_ns_{0};
    bool was_in_sync_{false};
    std::uint64_t synced_stream_{0}; // follower: the stream it last reached sync in (0: none since following)
    std::uint64_t sync_reached_ns_{0}, joined_ns_{0};
};

} // namespace heartwire::replica
