#pragma once
// Failure detector for the monitor -> primary probe stream (seed 000 claims 1, 3-5: signal
// the primary, wait a set time for the answer, repeat; a missed answer means failure).
//
// A probe goes out every `interval`. The primary is declared failed when no answer has
// arrived for `miss` intervals while we kept probing (at least `miss` probes went out since
// the last answer): exactly `miss` intervals after the last answer. Any answer proves the
// primary alive when it arrives, even one to an older probe: a primary whose answers come
// late but keep coming is slow, not dead, and must not be replaced.
//
// Stall guard: the monitor's own stalls must never count as the primary's silence. Two
// rules make that hold:
//  - failure is judged only over time the monitor's receive path has drained: the caller
//    passes `judged_ns`, the time up to which every received frame has been handed over
//    (the engine drains RX completely first; in pipelined mode it is the RX lcore's last
//    empty poll), so an answer waiting in a queue always beats the verdict;
//  - only *unintended* lateness is a stall: the engine says when it meant to wake (right
//    away when busy polling, at the end of a planned sleep or yield), and a wake later than
//    that by more than `stall_threshold` gives the primary a full fresh window from the
//    moment the monitor is back and has drained RX, with `miss` fresh probes. A planned
//    sleep is never a stall, so adaptive idle cannot starve detection. At most
//    `max_fresh_windows` are granted between two answers: a monitor that stalls again and
//    again must still replace a dead primary (the drain rule alone already keeps a live
//    primary's waiting answers from being missed).
//
// Arming: a primary that has never answered this monitor cannot be judged on a
// microsecond window (the first round trips after start-up are slow: cold caches, first
// mbufs, ARP). Until the first answer the window is `startup_grace` instead.
//
// Pure: time is passed in; no I/O.

#include <cstdint>

namespace heartwire {

class detector {
public:
    static constexpr std::uint32_t max_miss = 1024;
    static constexpr std::uint32_t max_fresh_windows = 2;

    struct params {
        std::uint64_t interval_ns{10'000};
        std::uint32_t miss{3};
        std::uint64_t stall_threshold_ns{0}; // 0: max(interval, 100 us)
        std::uint64_t startup_grace_ns{0};   // 0: no grace (failure rule applies from start)
        // Probes on a grid of `interval_ns` from time 0, not from the start of the watch:
        // an engine serving many groups sends all their probes in the same turn, so their
        // answers (and, when the primary dies, their deadlines) fall together.
        bool align{false};
    };

    detector() = default;
    explicit detector(const params& p) noexcept { configure(p); }
    void configure(const params& p) noexcept;
    // A reload while watching: the new timing from `now` on. When the window changes, the
    // primary gets a fresh one of the new length from `now`, with `miss` fresh probes (no
    // verdict mixes two cadences); armed, the sequence numbers and the answers are kept.
    void retune(const params& p, std::uint64_t now) noexcept;

    // Starts watching at `now`: the first probe is due at once, no failure can be decided
    // before `miss` probes went out.
    void start(std::uint64_t now) noexcept;
    void stop() noexcept { running_ = false; }
    bool running() const noexcept { return running_; }

    // Called on every turn of the loop once RX is drained: the loop woke at `woke`, meant to
    // wake at `intended`, and has handed over everything received up to `resume`. Returns
    // true when the lateness was a stall (the primary then gets a fresh window from `resume`).
    bool observe_wake(std::uint64_t woke, std::uint64_t intended, std::uint64_t resume) noexcept;
    // The busy-loop form: meant to run again right after the previous call.
    bool observe_time(std::uint64_t now) noexcept { return observe_wake(now, last_tick_ns_, now); }
    // Something outside the loop kept the monitor from seeing (pipelined: the RX lcore did
    // not poll until `resume`): a fresh window from then.
    void note_stall(std::uint64_t resume) noexcept;
    // True when a probe is due now.
    bool probe_due(std::uint64_t now) const noexcept { return running_ && now >= next_probe_ns_; }
    // Records that probe `seq` (the returned value) was sent at `now`.
    std::uint64_t on_probe_sent(std::uint64_t now) noexcept;
    // An answer to probe `ack_seq`. Stale (older than the newest answer) or unknown (never
    // sent) sequence numbers are ignored and return false.
    bool on_answer(std::uint64_t ack_seq, std::uint64_t now) noexcept;
    // True once the failure rule holds. Stays true until start() is called again.
    // `now` is the judged time: RX must have been drained up to it.
    bool failed(std::uint64_t now) const noexcept {
        if (!running_ || since_answer_ < p_.miss || now < deadline_ns()) return false;
        return armed_ || now - started_ns_ >= p_.startup_grace_ns;
    }
    bool armed() const noexcept { return armed_; }
    // When silence becomes failure if nothing arrives: the window after the last answer, or
    // after the end of the monitor's last stall, whichever is later.
    std::uint64_t deadline_ns() const noexcept {
        return (last_answer_ns_ > resume_ns_ ? last_answer_ns_ : resume_ns_) + p_.interval_ns * p_.miss;
    }
    std::uint64_t resume_ns() const noexcept { return resume_ns_; }

    std::uint64_t next_probe_ns() const noexcept { return next_probe_ns_; }
    std::uint64_t last_answer_ns() const noexcept { return last_answer_ns_; }
    std::uint64_t last_sent_seq() const noexcept { return seq_; }
    std::uint64_t last_answered_seq() const noexcept { return acked_; }
    std::uint64_t unanswered() const noexcept { return since_answer_; }
    std::uint64_t stalls() const noexcept { return stalls_; }
    const params& config() const noexcept { return p_; }

private:
    params p_{};
    bool running_{false};
    bool armed_{false};
    std::uint64_t started_ns_{0};
    std::uint64_t next_probe_ns_{0};
    std::uint64_t last_tick_ns_{0};
    std::uint64_t last_answer_ns_{0}; // arrival of the newest answer (start() counts as one)
    std::uint64_t resume_ns_{0};      // end of the last stall (the fresh window starts here)
    std::uint64_t seq_{0};            // last probe sent
    std::uint64_t acked_{0};          // newest probe answered
    std::uint64_t since_answer_{0};   // probes sent since the last answer arrived
    std::uint64_t stalls_{0};
    std::uint32_t fresh_since_answer_{0}; // fresh windows granted since the last answer
};

} // namespace heartwire
