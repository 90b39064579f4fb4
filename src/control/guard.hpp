#pragma once
// The engine-down guard: a tiny process forked from heartwired before EAL starts, which
// sends the peers the engine's ready-made `engine_down` frame (heartwire/death_notice.hpp)
// the moment the engine dies, instead of letting them wait out the silence window.
//
// Why a robust mutex and not a pidfd, a pipe or SIGCHLD: the kernel releases a dead
// thread's robust futexes in mm_release, before it tears the memory down (exit_mm ->
// mmput) and before it closes files or tells the parent. The engine holds hundreds of MB
// of DPDK memory, so teardown takes milliseconds; the futex wakes the guard before it.
// The guard is blocked in pthread_mutex_lock on a process-shared robust mutex that the
// engine's main thread holds for its whole life: EOWNERDEAD means the engine died.
//
// Control layer: no DPDK. The guard child never touches DPDK (it is forked before EAL).

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "heartwire/death_notice.hpp"
#include "heartwire/net_types.hpp"

namespace heartwire::control {

// An address the kernel must stop serving once the engine is dead (shared mode): a dead
// engine's kernel would otherwise keep answering ARP and serving the address that its peer
// has just taken over.
struct address_release {
    std::string ifname;
    ipv4_prefix prefix;
    bool v6{false};          // then prefix6, not prefix
    ipv6_prefix prefix6{};
};

struct guard_options {
    // Kernel interface on the peers' segment to send the notice on; "" = no notice (the
    // guard then only releases the addresses; with none of those either, no guard).
    std::string interface;
    int rt_priority{20};    // SCHED_FIFO priority of the guard (above the poll lcore's 10); <= 0: normal
    bool enabled{true};
    // Removed from the kernel (netlink) after the notice is sent, whether the engine held
    // them or not: removing an address that is not there is not an error.
    std::vector<address_release> release;
};

class guard {
public:
    // Maps the shared page, locks its mutex on the CALLING thread (it must be the thread
    // that lives as long as the engine: heartwired's main thread), opens and binds the
    // packet socket, forks the guard and waits (<= 1 s) until it is blocked on the lock.
    // nullptr when !o.enabled or there is nothing to do. Throws std::system_error naming the cause (no such
    // interface, no CAP_NET_RAW, fork failed); nothing is left behind then.
    static std::unique_ptr<guard> start(const guard_options& o);
    ~guard(); // disarm_clean() unless done: a guard object going away is an orderly exit
    guard(const guard&) = delete;
    guard& operator=(const guard&) = delete;

    // The page the engine publishes its engine_down frame into (shared with the guard).
    death_notice* notice() noexcept;
    pid_t pid() const noexcept { return pid_; }
    // Orderly stop, after the engine sent its release frame: the guard exits without
    // sending. Call on the thread that called start() (a robust mutex has an owner).
    // Reaps the guard, waiting at most ~100 ms. Idempotent.
    void disarm_clean() noexcept;

    struct page; // the shared page's layout, in guard.cpp

private:
    guard(page* p, pid_t pid) noexcept : page_(p), pid_(pid) {}
    page* page_;
    pid_t pid_;
    bool disarmed_{false};
};

} // namespace heartwire::control
