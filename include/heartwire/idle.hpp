#pragma once
// How a poll loop gives its core back: planned sleeps when idle (adaptive) and the duty
// cycle's guaranteed yield, which a real-time poll thread needs so that the kernel's own
// work and the node's other threads run (and the RT throttle, sched_rt_runtime_us, never
// has to step in: it stops a FIFO thread that never sleeps for ~50 ms once a second).
//
// The planner measures how late its sleeps end (the wake latency) and wakes that much
// early, so a planned sleep never makes a timer (a probe, a verdict) late: with a wake
// latency as long as the timer spacing it stops sleeping and just polls. Every sleep it
// plans is an *intended* wake for the detector: only lateness beyond it can be a stall.
//
// Pure: time is passed in; the engine carries out the sleep.

#include <cstdint>

namespace heartwire {

class idle_planner {
public:
    struct params {
        bool adaptive{false};                // sleep when idle (else only the duty-cycle yield)
        std::uint64_t max_sleep_ns{50'000};  // cap of one idle sleep
        std::uint64_t yield_ns{0};           // duty cycle: give the core away this long ...
        std::uint64_t yield_period_ns{0};    // ... at least once in this long (0: no duty cycle)
        std::uint64_t min_sleep_ns{3'000};   // shorter sleeps are not worth the syscall
        std::uint32_t idle_turns{64};        // empty turns in a row before an idle sleep
    };

    idle_planner() = default;
    explicit idle_planner(const params& p) noexcept : p_(p) {}
    void configure(const params& p) noexcept { p_ = p; }
    const params& config() const noexcept { return p_; }

    // End of a loop turn at `now`. `worked`: the turn handled frames; `next_due`: the
    // machine's next timer. Returns how long to sleep now (0: keep polling).
    std::uint64_t plan(std::uint64_t now, bool worked, std::uint64_t next_due) noexcept;
    // A sleep meant to end at `intended` ended at `woke`.
    void woke(std::uint64_t intended, std::uint64_t woke) noexcept;
    // From the next plan of a turn with nothing left to do, until the loop has slept (any
    // sleep), the loop sleeps as soon as there is room before its next timer: an application
    // on this core waits for what a turn completed, and runs only once the loop sleeps.
    // Adaptive: the idle sleep without the empty turns first. Busy: a courtesy sleep of one
    // yield's length (yield_ns, else max_sleep_ns), the engine's to cut short (a doorbell).
    // Either counts towards the duty cycle for what it slept (woke()). A loop that finds no
    // room for hurry_expiry_ns stops being hurried.
    void hurry() noexcept { hurried_ = true; }
    bool hurried() const noexcept { return hurried_; }
    static constexpr std::uint64_t hurry_expiry_ns = 1'000'000;

    std::uint64_t latency_ns() const noexcept { return latency_ns_; }
    std::uint64_t forced_yields() const noexcept { return forced_; }
    std::uint64_t idle_sleeps() const noexcept { return idle_; }

private:
    params p_{};
    std::uint32_t idle_turns_{0};
    std::uint64_t last_wake_ns_{0}; // the duty cycle's clock: the kernel has had its share up to here
    std::uint64_t latency_ns_{0};   // decaying maximum of the measured wake lateness
    std::uint64_t decayed_ns_{0};   // when latency_ns_ was last halved for age
    std::uint64_t forced_{0};
    std::uint64_t idle_{0};
    std::uint64_t planned_ns_{0};   // the last sleep plan() asked for
    std::uint64_t hurry_since_{0};  // the first plan since hurry() (0: not yet)
    bool hurried_{false};
    void clear_hurry() noexcept {
        hurried_ = false;
        hurry_since_ = 0;
    }
};

} // namespace heartwire
