#pragma once
// The engine-down notice (seed 003 claims 14-15: the first server's own monitoring means
// signals its failure to the second). The engine keeps a ready-to-send heartwire frame of
// type `engine_down` in a page shared with a guard process that outlives it; when the
// engine dies (SIGKILL, crash, OOM kill) the guard sends those bytes as they are, so the
// peers learn of the death in microseconds instead of after the silence window.
//
// Pure data: a single-writer seqlock over the frame bytes, placed in a MAP_SHARED page by
// the guard code (src/control/guard.*). The engine writes (poll lcore, no syscalls); the
// guard reads once, after the engine is gone.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

namespace heartwire {

struct death_notice {
    static constexpr std::size_t max_frame = 256;

    std::atomic<std::uint32_t> seq{0};   // odd while being written
    std::atomic<std::uint32_t> len{0};   // 0: nothing to send (not armed)
    std::atomic<bool> clean_exit{false}; // set by the engine on an orderly stop: send nothing
    alignas(64) std::byte frame[max_frame]{};

    // Engine side. A frame longer than max_frame disarms the notice.
    void publish(std::span<const std::byte> f) noexcept {
        const std::uint32_t s = seq.load(std::memory_order_relaxed);
        seq.store(s + 1, std::memory_order_relaxed);
        std::atomic_thread_fence(std::memory_order_release);
        const std::size_t n = f.size() <= max_frame ? f.size() : 0;
        if (n) std::memcpy(frame, f.data(), n);
        len.store(static_cast<std::uint32_t>(n), std::memory_order_relaxed);
        seq.store(s + 2, std::memory_order_release);
    }
    void disarm() noexcept { publish({}); }

    // Guard side: copies the frame into `out`, returns its length (0: none). Retries while
    // a write is in progress; a writer that died mid-write leaves seq odd, which is
    // reported as 0 after `tries`.
    std::size_t read(std::span<std::byte> out, unsigned tries = 1000) const noexcept {
        for (unsigned t = 0; t < tries; ++t) {
            const std::uint32_t a = seq.load(std::memory_order_acquire);
            if (a & 1u) continue;
            const std::uint32_t n = len.load(std::memory_order_relaxed);
            if (n > out.size() || n > max_frame) return 0;
            std::memcpy(out.data(), frame, n);
            std::atomic_thread_fence(std::memory_order_acquire);
            if (seq.load(std::memory_order_relaxed) == a) return n;
        }
        return 0;
    }
};

} // namespace heartwire
