#include "heartwire/detector.hpp"

#include <algorithm>

namespace heartwire {

void detector::configure(const params& p) noexcept {
    p_ = p;
    p_.miss = std::clamp<std::uint32_t>(p_.miss, 1, max_miss);
    if (p_.interval_ns == 0) p_.interval_ns = 1;
    if (p_.stall_threshold_ns == 0) p_.stall_threshold_ns = std::max<std::uint64_t>(p_.interval_ns, 100'000);
}

void detector::retune(const params& p, std::uint64_t now) noexcept {
    const std::uint64_t window = p_.interval_ns * p_.miss;
    configure(p);
    if (!running_ || p_.interval_ns * p_.miss == window) return;
    resume_ns_ = std::max(resume_ns_, now);
    since_answer_ = 0;
    if (next_probe_ns_ > now + p_.interval_ns) next_probe_ns_ = now;
}

void detector::start(std::uint64_t now) noexcept {
    running_ = true;
    armed_ = false;
    started_ns_ = now;
    next_probe_ns_ = now;
    last_tick_ns_ = now;
    last_answer_ns_ = now;
    resume_ns_ = now;
    since_answer_ = 0;
    fresh_since_answer_ = 0;
    acked_ = seq_; // probes of an earlier watch never count
}

bool detector::observe_wake(std::uint64_t woke, std::uint64_t intended, std::uint64_t resume) noexcept {
    if (!running_) return false;
    last_tick_ns_ = resume;
    const std::uint64_t late = woke > intended ? woke - intended : 0;
    if (late <= p_.stall_threshold_ns) return false;
    note_stall(resume);
    return true;
}

void detector::note_stall(std::uint64_t resume) noexcept {
    if (!running_) return;
    // We were not running: probes did not go out and the primary may have had nothing to
    // answer. It gets a whole window from the moment we are back with RX drained, and must
    // miss `miss` fresh probes (the grace period of an unarmed watch moves along too).
    ++stalls_;
    next_probe_ns_ = std::min(next_probe_ns_, resume);
    if (fresh_since_answer_ >= max_fresh_windows) return;
    ++fresh_since_answer_;
    resume_ns_ = std::max(resume_ns_, resume);
    if (!armed_) started_ns_ = std::max(started_ns_, resume);
    since_answer_ = 0;
}

std::uint64_t detector::on_probe_sent(std::uint64_t now) noexcept {
    ++seq_;
    ++since_answer_;
    // Keep the cadence, but never try to catch up on probes we did not send.
    if (p_.align) {
        next_probe_ns_ = (now / p_.interval_ns + 1) * p_.interval_ns;
        return seq_;
    }
    next_probe_ns_ += p_.interval_ns;
    if (next_probe_ns_ <= now) next_probe_ns_ = now + p_.interval_ns;
    return seq_;
}

bool detector::on_answer(std::uint64_t ack_seq, std::uint64_t now) noexcept {
    if (ack_seq <= acked_ || ack_seq > seq_) return false;
    acked_ = ack_seq;
    armed_ = true;
    last_answer_ns_ = std::max(last_answer_ns_, now);
    since_answer_ = 0;
    fresh_since_answer_ = 0;
    return true;
}

} // namespace heartwire
