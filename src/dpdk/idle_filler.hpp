#pragma once
// Keeps a poll lcore's CPU from going idle while the poll thread yields.
//
// Why: the duty-cycle yield gives the core away for ~20 us. When nothing else is runnable
// the kernel idles the CPU, and in a VM an idle vCPU halts: the host deschedules it, and
// waking it for the poll thread's timer costs the host's scheduling latency (measured on
// this project's 2-core VM, whose kernel boots with haltpoll.guest_halt_poll_ns=0: a 60 s
// idle soak saw 150-190 wakes more than 1 ms late per engine; with the vCPU kept busy, a
// handful). A SCHED_IDLE thread pinned to the core runs only when nothing else wants it,
// so any real task, the poll thread's wake above all, preempts it at once; the CPU just
// never halts. It is `idle=poll` for the engine's own cores, and costs what idle=poll
// costs: the core shows 100 % busy. `engine.idle_filler = false` turns it off.

#include <atomic>
#include <thread>
#include <vector>

namespace heartwire::io {

class idle_filler {
public:
    idle_filler() = default;
    ~idle_filler() { stop(); }
    idle_filler(const idle_filler&) = delete;
    idle_filler& operator=(const idle_filler&) = delete;

    // One spinner per CPU in `cpus`. Returns how many started (a CPU that cannot be
    // pinned is skipped). Call from a thread at normal priority: threads inherit it.
    unsigned start(const std::vector<unsigned>& cpus);
    void stop() noexcept;

private:
    std::atomic<bool> stop_{false};
    std::vector<std::thread> threads_;
};

} // namespace heartwire::io
