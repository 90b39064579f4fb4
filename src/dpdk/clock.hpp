#pragma once
// TSC clock calibrated to nanoseconds. One multiply and shift per read: cheap enough for
// every turn of the poll loop. Valid after rte_eal_init (which calibrates the TSC).

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
        timespec ts{};
        clock_gettime(CLOCK_REALTIME, &ts);
        wall_base_ns_ = static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<std::uint64_t>(ts.tv_nsec);
    }
    // Nanoseconds since calibrate(); starts at 1 so 0 can mean "never".
    std::uint64_t now_ns() const noexcept { return to_ns(rte_get_tsc_cycles() - base_) + 1; }
    std::uint64_t to_ns(std::uint64_t cycles) const noexcept {
        return static_cast<std::uint64_t>((static_cast<unsigned __int128>(cycles) * mult_) >> 32);
    }
    // CLOCK_REALTIME of an engine timestamp (for logs and for comparing with capture tools).
    std::uint64_t wall_ns(std::uint64_t engine_ns) const noexcept { return wall_base_ns_ + engine_ns - 1; }
    std::uint64_t hz() const noexcept { return hz_; }

private:
    std::uint64_t hz_{1};
    unsigned __int128 mult_{0};
    std::uint64_t base_{0};
    std::uint64_t wall_base_ns_{0};
};

} // namespace heartwire::io
