#include "heartwire/idle.hpp"

#include <algorithm>

namespace heartwire {

std::uint64_t idle_planner::plan(std::uint64_t now, bool worked, std::uint64_t next_due) noexcept {
    idle_turns_ = worked ? 0 : idle_turns_ + 1;
    // Kept until a sleep of any kind (the waiter on this core has not run since), or for
    // hurry_expiry_ns at most: a loop that never finds room to sleep stops asking.
    if (hurried_ && hurry_since_ == 0) hurry_since_ = now;
    if (hurried_ && now - hurry_since_ > hurry_expiry_ns) clear_hurry();
    const bool hurried = hurried_ && !worked;
    if (hurried && p_.adaptive) idle_turns_ = std::max(idle_turns_, p_.idle_turns);
    if (last_wake_ns_ == 0) last_wake_ns_ = now;
    const std::uint64_t since = now - std::min(now, last_wake_ns_);
    // The latency estimate fades with time too, not only with sleeps: after one slow wake
    // a loop that stopped sleeping would otherwise never sleep again.
    if (latency_ns_ != 0 && now > decayed_ns_ + 10'000'000) {
        latency_ns_ /= 2;
        decayed_ns_ = now;
    }
    // Room before the next timer once the measured wake latency is paid.
    const std::uint64_t room = next_due > now + latency_ns_ ? next_due - now - latency_ns_ : 0;

    if (p_.yield_period_ns != 0 && p_.yield_ns != 0) {
        // The guaranteed yield: taken early when it fits before the next timer, and taken
        // regardless once the period is over (the kernel's share is not negotiable).
        const bool fits = room >= p_.yield_ns;
        if (since >= p_.yield_period_ns || (fits && since >= p_.yield_period_ns - p_.yield_period_ns / 4)) {
            ++forced_;
            idle_turns_ = 0;
            clear_hurry();
            // A turn longer than the period (a backlog being drained) owes the kernel its
            // share of that longer time, up to ten yields' worth at once.
            return planned_ns_ = std::min(std::max(p_.yield_ns, since / p_.yield_period_ns * p_.yield_ns), 10 * p_.yield_ns);
        }
    }
    // An idle sleep: adaptive, once the empty turns are done (at once when hurried); busy,
    // only the courtesy sleep of a hurried planner, one yield long.
    const std::uint64_t ns = std::min(p_.adaptive || p_.yield_ns == 0 ? p_.max_sleep_ns : p_.yield_ns, room);
    if ((hurried || (p_.adaptive && idle_turns_ >= p_.idle_turns)) && ns >= p_.min_sleep_ns) {
        ++idle_;
        clear_hurry();
        return planned_ns_ = ns;
    }
    return 0;
}

void idle_planner::woke(std::uint64_t intended, std::uint64_t woke) noexcept {
    // The duty cycle's clock: a sleep of a yield's length (or longer) gave the kernel its
    // share, and the period starts again; a shorter one (an idle or courtesy sleep cut to the
    // room before a timer) pays for its part of the period only, so a stream of short sleeps
    // cannot put the yield off for good.
    const std::uint64_t slept = woke - std::min(woke, intended - std::min(intended, planned_ns_));
    if (p_.yield_ns == 0 || p_.yield_period_ns == 0 || slept >= p_.yield_ns || last_wake_ns_ == 0)
        last_wake_ns_ = woke;
    else
        last_wake_ns_ = std::min(woke, last_wake_ns_ + slept * (p_.yield_period_ns / p_.yield_ns));
    if (decayed_ns_ == 0) decayed_ns_ = woke;
    const std::uint64_t late = woke > intended ? woke - intended : 0;
    // A decaying maximum: one slow wake makes the next sleeps shorter for a while.
    latency_ns_ = std::max(late, latency_ns_ - latency_ns_ / 16);
}

} // namespace heartwire
