#include "heartwire/detector.hpp"

#include <algorithm>

namespace heartwire {

void detector::configure(const params& p) noexcept {
    p_ = p;
    p_.miss = std::clamp<std::uint32_t>(p_.miss, 1, max_miss);
    if (p_.interval_ns == 0) p_.interval_ns = 1;
    if (p_.stall_threshold_ns == 0) p_.stall_threshold_ns = std::max<std::uint64_t>(p_.interval_ns, 100'000);
}

void detector::start(std::uint64_t now) noexcept {
    running_ = true;
    armed_ = false;
    started_ns_ = now;
    next_probe_ns_ = now;
    deadline_ns_ = no_deadline;
    last_tick_ns_ = now;
    last_answer_ns_ = now;
    acked_ = seq_; // probes of an earlier watch never count
}

bool detector::observe_time(std::uint64_t now) noexcept {
    if (!running_) return false;
    const std::uint64_t gap = now > last_tick_ns_ ? now - last_tick_ns_ : 0;
    last_tick_ns_ = now;
    if (gap <= p_.stall_threshold_ns) return false;
    // We slept: nothing we sent could be answered and read in time. Shift every pending
    // deadline by the stall and send the next probe at once.
    ++stalls_;
    started_ns_ += gap;
    if (deadline_ns_ != no_deadline) deadline_ns_ += gap;
    for (std::uint64_t s = acked_ + 1; s <= seq_; ++s) sent_ns_[s % max_miss] += gap;
    next_probe_ns_ = now;
    return true;
}

std::uint64_t detector::on_probe_sent(std::uint64_t now) noexcept {
    ++seq_;
    sent_ns_[seq_ % max_miss] = now;
    // Keep the cadence, but never try to catch up on probes we did not send.
    next_probe_ns_ += p_.interval_ns;
    if (next_probe_ns_ <= now) next_probe_ns_ = now + p_.interval_ns;
    recompute_deadline();
    return seq_;
}

bool detector::on_answer(std::uint64_t ack_seq, std::uint64_t now) noexcept {
    if (ack_seq <= acked_ || ack_seq > seq_) return false;
    acked_ = ack_seq;
    armed_ = true;
    last_answer_ns_ = now;
    recompute_deadline();
    return true;
}

void detector::recompute_deadline() noexcept {
    // The failure moment: the `miss`-th unanswered probe's own deadline (sent + interval).
    if (seq_ - acked_ < p_.miss) {
        deadline_ns_ = no_deadline;
        return;
    }
    const std::uint64_t decisive = acked_ + p_.miss;
    deadline_ns_ = sent_ns_[decisive % max_miss] + p_.interval_ns;
}

} // namespace heartwire
