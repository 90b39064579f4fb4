#include "control/guard.hpp"

#include "control/netlink.hpp"

#include <fcntl.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <new>
#include <system_error>

namespace heartwire::control {

// One page, MAP_SHARED between heartwired and its guard.
struct guard::page {
    death_notice notice;
    pthread_mutex_t lock; // process-shared, robust; held by the engine's thread for its life
};

namespace {

constexpr std::size_t page_bytes = 4096;
static_assert(sizeof(guard::page) <= page_bytes);
constexpr int copies = 3;                 // the notice is one frame on a lossy segment
constexpr long copy_gap_ns = 50'000;
constexpr int ready_timeout_ms = 1000;    // mlockall of a fresh fork takes a few ms
constexpr int reap_timeout_ms = 100;

[[noreturn]] void fail(int err, const std::string& what) {
    throw std::system_error(err, std::generic_category(), "engine-down guard: " + what);
}

// Everything the guard keeps open: stdio (the daemon's), the packet socket, the ready pipe.
// Written for a daemon started with stdio closed too (then a kept fd may be below 3).
void close_others(int a, int b) noexcept {
    if (a > b) std::swap(a, b);
    unsigned lo = 3;
    for (const int keep : {a, b}) {
        if (keep < 0 || static_cast<unsigned>(keep) < lo) continue;
        if (static_cast<unsigned>(keep) > lo) ::close_range(lo, static_cast<unsigned>(keep) - 1, 0);
        lo = static_cast<unsigned>(keep) + 1;
    }
    ::close_range(lo, ~0u, 0);
}

void say(const char* line) noexcept {
    [[maybe_unused]] auto n = ::write(STDERR_FILENO, line, std::strlen(line));
}

// The guard process. Only _exit: the parent's atexit handlers and destructors are not ours.
// After the notice: the kernel stops serving what the dead engine's node held, so the
// clients that the new primary's GARPs have not reached yet, and any that ARP again, find
// only the new primary.
void release_addresses(const std::vector<address_release>& release, pid_t engine) noexcept {
    if (release.empty()) return;
    char line[256];
    try {
        netlink nl;
        unsigned removed = 0;
        for (const auto& r : release) {
            const bool held = (r.v6 ? nl.has_address(r.ifname, r.prefix6.addr) : nl.has_address(r.ifname, r.prefix.addr)) == 1;
            const int rc = r.v6 ? nl.del_address(r.ifname, r.prefix6) : nl.del_address(r.ifname, r.prefix);
            if (rc != 0 && rc != -ENODEV) {
                std::snprintf(line, sizeof line, "heartwired guard: removing %s from %s: %s\n",
                              (r.v6 ? r.prefix6.to_string() : r.prefix.to_string()).c_str(), r.ifname.c_str(), std::strerror(-rc));
                say(line);
            } else if (held && rc == 0) {
                ++removed;
            }
        }
        std::snprintf(line, sizeof line, "heartwired guard: engine %d died; %u address(es) removed from the kernel\n",
                      static_cast<int>(engine), removed);
        say(line);
    } catch (const std::exception& ex) {
        std::snprintf(line, sizeof line, "heartwired guard: cannot remove the addresses: %s\n", ex.what());
        say(line);
    }
}

[[noreturn]] void guard_main(guard::page* p, int sock, int ready, pid_t engine, const char* iface, int rt_priority,
                             const std::vector<address_release>& release) noexcept {
    close_others(sock, ready);
    // A terminal's ^C or a service manager's SIGTERM to the whole group is the daemon's
    // to handle; the guard ends with the daemon either way (the lock resolves).
    std::signal(SIGINT, SIG_IGN);
    std::signal(SIGTERM, SIG_IGN);
    std::signal(SIGHUP, SIG_IGN);
    ::prctl(PR_SET_NAME, "hw-guard", 0, 0, 0);
    char line[256];
    // No page fault between the wake-up and send(): the whole (small, pre-EAL) image stays in.
    if (::mlockall(MCL_CURRENT | MCL_FUTURE) != 0) {
        std::snprintf(line, sizeof line, "heartwired guard: mlockall: %s; the notice may wait on page faults\n",
                      std::strerror(errno));
        say(line);
    }
    if (rt_priority > 0) {
        sched_param sp{};
        sp.sched_priority = rt_priority;
        if (::sched_setscheduler(0, SCHED_FIFO, &sp) != 0) {
            std::snprintf(line, sizeof line,
                          "heartwired guard: SCHED_FIFO %d refused (%s); the guard runs at normal priority\n",
                          rt_priority, std::strerror(errno));
            say(line);
        }
    }
    const char ok = 1;
    [[maybe_unused]] auto w = ::write(ready, &ok, 1);
    ::close(ready);

    const int rc = ::pthread_mutex_lock(&p->lock);
    // 0: the daemon unlocked it (orderly exit). Anything but EOWNERDEAD: not a death.
    if (rc != EOWNERDEAD) ::_exit(0);
    // Killed during an orderly stop: the peers were told (release), but the addresses may
    // still be on the kernel.
    if (p->notice.clean_exit.load(std::memory_order_acquire)) {
        release_addresses(release, engine);
        ::_exit(0);
    }
    if (sock < 0) { // release only (no notice interface)
        std::snprintf(line, sizeof line, "heartwired guard: engine %d died\n", static_cast<int>(engine));
        say(line);
        release_addresses(release, engine);
        ::_exit(0);
    }
    std::byte frame[death_notice::max_frame];
    const std::size_t n = p->notice.read(frame);
    if (n == 0) {
        std::snprintf(line, sizeof line, "heartwired guard: engine %d died with no engine-down notice armed\n",
                      static_cast<int>(engine));
        say(line);
        release_addresses(release, engine);
        ::_exit(0);
    }
    int sent = 0, err = 0;
    for (int i = 0; i < copies; ++i) {
        if (i) {
            const timespec gap{0, copy_gap_ns};
            ::clock_nanosleep(CLOCK_MONOTONIC, 0, &gap, nullptr);
        }
        if (::send(sock, frame, n, 0) == static_cast<ssize_t>(n)) ++sent;
        else err = errno;
    }
    if (sent)
        std::snprintf(line, sizeof line, "heartwired guard: engine %d died; engine-down notice sent on %s\n",
                      static_cast<int>(engine), iface);
    else
        std::snprintf(line, sizeof line, "heartwired guard: engine %d died; engine-down notice on %s failed: %s\n",
                      static_cast<int>(engine), iface, std::strerror(err));
    say(line);
    release_addresses(release, engine);
    ::_exit(sent ? 0 : 1);
}

void reap(pid_t pid, int timeout_ms) noexcept {
    for (int t = 0; t <= timeout_ms; ++t) {
        const pid_t r = ::waitpid(pid, nullptr, WNOHANG);
        if (r == pid || (r < 0 && errno != EINTR)) return; // reaped, or not ours to reap (ECHILD)
        const timespec ms{0, 1'000'000};
        ::nanosleep(&ms, nullptr);
    }
}

// Leaves nothing behind when start() fails after the page is locked.
[[noreturn]] void undo(guard::page* p, int err, const std::string& what) {
    ::pthread_mutex_unlock(&p->lock);
    ::munmap(p, page_bytes);
    fail(err, what);
}

struct fd_holder {
    int fd{-1};
    ~fd_holder() {
        if (fd >= 0) ::close(fd);
    }
};

} // namespace

std::unique_ptr<guard> guard::start(const guard_options& o) {
    if (!o.enabled) return nullptr;
    // No interface: no notice, but the addresses are still released after a death.
    if (o.interface.empty() && o.release.empty()) return nullptr;
    fd_holder sock;
    if (!o.interface.empty()) {
        const unsigned ifindex = ::if_nametoindex(o.interface.c_str());
        if (ifindex == 0) fail(ENODEV, "no interface '" + o.interface + "' in this network namespace");
        // Opened here, not in the child, so that a refusal is the caller's error to report.
        // Protocol 0: the socket receives nothing, so nothing queues up on it for a lifetime.
        sock.fd = ::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
        if (sock.fd < 0) fail(errno, "socket(AF_PACKET) (needs CAP_NET_RAW)");
        sockaddr_ll sll{};
        sll.sll_family = AF_PACKET;
        sll.sll_ifindex = static_cast<int>(ifindex);
        if (::bind(sock.fd, reinterpret_cast<sockaddr*>(&sll), sizeof sll) != 0) fail(errno, "bind to " + o.interface);
        // Straight to the driver: a notice should not queue behind the kernel's own traffic.
        // Best effort (it only shortens the path), hence unchecked.
        const int one = 1;
        ::setsockopt(sock.fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof one);
    }

    void* mem = ::mmap(nullptr, page_bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) fail(errno, "mmap of the shared page");
    auto* p = new (mem) page{};
    pthread_mutexattr_t a;
    ::pthread_mutexattr_init(&a);
    ::pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    ::pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    ::pthread_mutex_init(&p->lock, &a);
    ::pthread_mutexattr_destroy(&a);
    ::pthread_mutex_lock(&p->lock);

    int ready[2];
    if (::pipe2(ready, O_CLOEXEC) != 0) undo(p, errno, "pipe");
    const pid_t engine = ::getpid();
    const pid_t pid = ::fork();
    if (pid == 0) guard_main(p, sock.fd, ready[1], engine, o.interface.c_str(), o.rt_priority, o.release);
    const int fork_err = errno;
    ::close(ready[1]);
    if (pid < 0) {
        ::close(ready[0]);
        undo(p, fork_err, "fork");
    }
    pollfd pfd{ready[0], POLLIN, 0};
    char ok = 0;
    const bool armed = ::poll(&pfd, 1, ready_timeout_ms) == 1 && ::read(ready[0], &ok, 1) == 1 && ok == 1;
    ::close(ready[0]);
    if (!armed) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, nullptr, 0);
        undo(p, ETIMEDOUT, "the guard process did not come up");
    }
    return std::unique_ptr<guard>(new guard(p, pid));
}

guard::~guard() {
    disarm_clean();
    // Unmapped only once unlocked: a page still on this thread's robust list must stay
    // mapped, or the kernel could not mark it when the thread dies.
    if (disarmed_) ::munmap(page_, page_bytes);
}

death_notice* guard::notice() noexcept { return &page_->notice; }

void guard::disarm_clean() noexcept {
    if (disarmed_) return;
    page_->notice.clean_exit.store(true, std::memory_order_release);
    // EPERM when called from another thread than start()'s: the guard then stays until this
    // process exits, and clean_exit keeps it silent.
    if (::pthread_mutex_unlock(&page_->lock) != 0) return;
    disarmed_ = true;
    reap(pid_, reap_timeout_ms);
}

} // namespace heartwire::control
