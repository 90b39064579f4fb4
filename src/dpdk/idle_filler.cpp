#include "dpdk/idle_filler.hpp"

#include <pthread.h>
#include <sched.h>
#include <sys/prctl.h>

#include <rte_pause.h>

namespace heartwire::io {

unsigned idle_filler::start(const std::vector<unsigned>& cpus) {
    unsigned n = 0;
    stop_.store(false, std::memory_order_relaxed);
    for (const unsigned cpu : cpus) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(cpu, &set);
        threads_.emplace_back([this, set] {
            prctl(PR_SET_NAME, "hw-idle-filler", 0, 0, 0);
            sched_param sp{};
            pthread_setschedparam(pthread_self(), SCHED_IDLE, &sp);
            pthread_setaffinity_np(pthread_self(), sizeof set, &set);
            while (!stop_.load(std::memory_order_relaxed)) rte_pause();
        });
        ++n;
    }
    return n;
}

void idle_filler::stop() noexcept {
    stop_.store(true, std::memory_order_relaxed);
    for (auto& t : threads_)
        if (t.joinable()) t.join();
    threads_.clear();
}

} // namespace heartwire::io
