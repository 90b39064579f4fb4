#pragma once
// TSC clock calibrated to nanoseconds. One multiply and shift per read: cheap enough for
// every turn of the poll loop. Valid after rte_eal_init (which calibrates the TSC).

#include <atomic>
#include <cstdint>
#include <ctime>

#include <rte_cycles.h>

namespace heartwire::io {

class tsc_clock {
public:
    void calibrate() noexcept {
        hz_ = rte_get_tsc_hz();
        mult_ = (static_cast<unsigned __int128>(1'000'000'000ull) << 32) / hz_;
        base_ = rte_get_tsc_cycles();
        reanchor();
    }
    // Nanoseconds since calibrate(); starts at 1 so 0 can mean "never".
    std::uint64_t now_ns() const noexcept { return to_ns(rte_get_tsc_cycles() - base_) + 1; }
    std::uint64_t to_ns(std::uint64_t cycles) const noexcept {
        return static_cast<std::uint64_t>((static_cast<unsigned __int128>(cycles) * mult_) >> 32);
    }
    // CLOCK_REALTIME of an engine timestamp (for logs and for comparing with capture tools).
    // The calibrated TSC rate is off by parts in 10^4 or so; reanchor() (the control thread,
    // every 100 ms) keeps the mapping within microseconds instead of drifting by milliseconds.
    std::uint64_t wall_ns(std::uint64_t engine_ns) const noexcept {
        for (;;) {
            const std::uint32_t s = seq_.load(std::memory_order_acquire);
            const std::uint64_t e = engine_anchor_.load(std::memory_order_relaxed);
            const std::uint64_t w = wall_anchor_.load(std::memory_order_relaxed);
            std::atomic_thread_fence(std::memory_order_acquire);
            if (!(s & 1u) && seq_.load(std::memory_order_relaxed) == s) return w + engine_ns - e;
        }
    }
    void reanchor() noexcept {
        timespec ts{};
        clock_gettime(CLOCK_REALTIME, &ts);
        const std::uint64_t e = now_ns();
        const std::uint64_t w = static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<std::uint64_t>(ts.tv_nsec);
        const std::uint32_t s = seq_.load(std::memory_order_relaxed);
        seq_.store(s + 1, std::memory_order_relaxed);
        std::atomic_thread_fence(std::memory_order_release);
        engine_anchor_.store(e, std::memory_order_relaxed);
        wall_anchor_.store(w, std::memory_order_relaxed);
        seq_.store(s + 2, std::memory_order_release);
    }
    std::uint64_t hz() const noexcept { return hz_; }

private:
    std::uint64_t hz_{1};
    unsigned __int128 mult_{0};
    std::uint64_t base_{0};
    std::atomic<std::uint32_t> seq_{0};
    std::atomic<std::uint64_t> engine_anchor_{0};
    std::atomic<std::uint64_t> wall_anchor_{0};
};

} // namespace heartwire::io
