#pragma once
// One turn of the role loop, up to the verdict: drain the receive source completely, then
// build the tick that lets the machine judge time. Shared by the engine (src/dpdk) and the
// fake-clock tests, so the rule they prove is the rule that runs.
//
// - The source is drained until it is empty, bounded by what its ring can hold (`cap`),
//   never by a fixed number of bursts: after a stall or a flood, answers queued behind the
//   backlog must be read before any verdict.
// - `judged_ns` only moves to a time at which the source was found empty: silence is
//   never counted over time whose frames have not been read.
// - The loop's lateness (woke - intended) is held back while a backlog is being worked
//   off and handed to the detector on the turn that empties the source, so a stall's fresh
//   window starts once the monitor has really caught up.

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "heartwire/fsm.hpp"

namespace heartwire {

struct turn_state {
    std::uint64_t judged_ns{0}; // every frame received before this has been handed over
    std::uint64_t late_ns{0};   // the worst unintended lateness not yet judged
    std::uint64_t capped{0};    // turns that ended with the source not yet empty
};

// `pull(max, drained)` hands up to `max` frames to the machine and returns how many; when
// it found the source empty it sets `drained` to the time it looked.
template <class Pull>
fsm::event drain_turn(turn_state& t, Pull&& pull, std::size_t burst, std::size_t cap, std::uint64_t woke,
                      std::uint64_t intended, std::size_t& frames) noexcept {
    t.late_ns = std::max(t.late_ns, woke > intended ? woke - intended : 0);
    frames = 0;
    bool empty = false;
    for (;;) {
        std::uint64_t drained = 0;
        frames += pull(burst, drained);
        if (drained != 0) {
            t.judged_ns = std::max(t.judged_ns, drained);
            empty = true;
            break;
        }
        if (frames >= cap) {
            ++t.capped;
            break;
        }
    }
    fsm::event ev;
    ev.kind = fsm::event_kind::tick;
    ev.woke_ns = woke;
    ev.intended_ns = woke;
    ev.judged_ns = t.judged_ns;
    if (empty) {
        ev.intended_ns = woke - std::min(woke, t.late_ns);
        t.late_ns = 0;
    }
    return ev;
}

} // namespace heartwire
