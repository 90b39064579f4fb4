// The engine-down guard against the real kernel: a fake engine process starts a guard on
// one end of a veth pair in a private network namespace, publishes an engine_down frame
// and is then killed (or stops cleanly); the test captures on the other end, as a peer.

#include <gtest/gtest.h>

#include <linux/if_packet.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <ctime>
#include <optional>
#include <system_error>
#include <vector>

#include "control/guard.hpp"
#include "heartwire/wire.hpp"
#include "netns_child.hpp"

namespace ctl = heartwire::control;
namespace wire = heartwire::wire;
using hwtest::ns_report;

namespace {

constexpr std::size_t engine_memory = 256u << 20; // heartwired's --no-huge -m 256

std::int64_t realtime_ns() {
    timespec t{};
    ::clock_gettime(CLOCK_REALTIME, &t);
    return std::int64_t{t.tv_sec} * 1'000'000'000 + t.tv_nsec;
}

// What the engine publishes: its engine_down frame, to the heartwire group.
std::vector<std::byte> engine_down_frame() {
    wire::hb_msg m;
    m.type = wire::hb_type::engine_down;
    m.role = 1;
    m.priority = 100;
    m.node_id = 7;
    m.epoch = 42;
    m.seq = 9;
    std::vector<std::byte> out(128);
    const heartwire::mac_addr src{{0x02, 0x68, 0x77, 0x00, 0x00, 0x07}};
    out.resize(wire::encode_heartbeat(heartwire::mac_addr::heartwire_group(), src, m, out));
    return out;
}

// The peer's view of the segment: heartwire frames on hwg0p, with kernel receive times.
int open_capture(ns_report& r) {
    const int fd = ::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(wire::ethertype_heartwire));
    sockaddr_ll sll{};
    sll.sll_family = AF_PACKET;
    sll.sll_protocol = htons(wire::ethertype_heartwire);
    sll.sll_ifindex = static_cast<int>(::if_nametoindex("hwg0p"));
    r.check("capture socket bound on hwg0p", ::bind(fd, reinterpret_cast<sockaddr*>(&sll), sizeof sll), 0);
    const int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one);
    return fd;
}

struct captured {
    std::vector<std::byte> bytes;
    std::int64_t rx_ns;
};

std::optional<captured> receive(int fd, int timeout_ms) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, timeout_ms) != 1) return std::nullopt;
    captured c{std::vector<std::byte>(2048), 0};
    iovec iov{c.bytes.data(), c.bytes.size()};
    alignas(cmsghdr) char ctrl[CMSG_SPACE(sizeof(timespec))];
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = ctrl;
    msg.msg_controllen = sizeof ctrl;
    const ssize_t n = ::recvmsg(fd, &msg, 0);
    if (n < 0) return std::nullopt;
    c.bytes.resize(static_cast<std::size_t>(n));
    c.rx_ns = realtime_ns();
    for (cmsghdr* cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SO_TIMESTAMPNS) {
            timespec t;
            std::memcpy(&t, CMSG_DATA(cm), sizeof t);
            c.rx_ns = std::int64_t{t.tv_sec} * 1'000'000'000 + t.tv_nsec;
        }
    }
    return c;
}

enum class ending {
    killed,              // SIGKILL while armed: the notice goes out
    killed_unarmed,      // SIGKILL before the engine published anything
    killed_after_clean,  // SIGKILL after the engine flagged an orderly stop
    disarmed,            // orderly stop: disarm_clean(), then exit
};

// Fake engine: the memory of a real one, a guard on hwg0, the frame published; tells the
// test the guard's pid, waits for a byte, then ends as `how` says (the test kills it).
// In heartwired's order: the guard first (before EAL), then the engine's memory.
[[noreturn]] void fake_engine(ending how, int report, int go) {
    int msg[2] = {0, 0};
    std::unique_ptr<ctl::guard> g;
    try {
        ctl::guard_options o{"hwg0", 20, true, {}};
        // Shared mode: what the node's kernel must stop serving once the engine is dead.
        o.release = {{"hwg0", *heartwire::ipv4_prefix::parse("169.254.10.100/24")},
                     {"lo", *heartwire::ipv4_prefix::parse("169.254.10.100/32")}};
        g = ctl::guard::start(o);
        msg[0] = g->pid();
    } catch (const std::system_error& e) {
        msg[0] = -e.code().value();
    }
    void* mem = ::mmap(nullptr, engine_memory, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (g && how != ending::killed_unarmed) g->notice()->publish(engine_down_frame());
    if (g && how == ending::killed_after_clean) g->notice()->clean_exit.store(true);
    msg[1] = mem == MAP_FAILED ? -1 : 0;
    [[maybe_unused]] auto w = ::write(report, msg, sizeof msg);
    char b;
    [[maybe_unused]] auto rd = ::read(go, &b, 1);
    if (g && how == ending::disarmed) {
        g->disarm_clean();
        const pid_t gp = g->pid();
        int gone = ::kill(gp, 0) != 0 && errno == ESRCH ? 1 : 0; // reaped by disarm_clean
        [[maybe_unused]] auto w2 = ::write(report, &gone, sizeof gone);
    }
    for (;;) ::pause(); // until killed, or ...
}

struct outcome {
    std::vector<captured> frames;
    std::int64_t kill_ns{0};
    std::int64_t engine_exit_ns{0}; // when a pidfd on the engine turned readable
    int guard_status{-1};
    long guard_rss_kb{-1}; // what the guard costs while it waits (mlockall'd)
    bool addr_left_on_if{false}; // the released addresses still on the kernel afterwards
    bool addr_left_on_lo{false};
};

long rss_kb(pid_t pid) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/status");
    for (std::string k; f >> k;) {
        if (k == "VmRSS:") {
            long v = -1;
            f >> v;
            return v;
        }
    }
    return -1;
}

// Runs one scenario in the private namespace: veth hwg0 (engine) <-> hwg0p (peer).
outcome run(ns_report& r, ending how) {
    outcome o;
    r.check("create veth hwg0/hwg0p", std::system("ip link add hwg0 type veth peer name hwg0p"), 0);
    r.check("links up", std::system("ip link set hwg0 up && ip link set hwg0p up"), 0);
    const int cap = open_capture(r);
    r.check("service address on hwg0", std::system("ip addr add 169.254.10.100/24 dev hwg0"), 0);
    r.check("staged address on lo", std::system("ip addr add 169.254.10.100/32 dev lo"), 0);
    // The guard outlives its parent, the fake engine: reparent it to us so we can reap it.
    ::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    int rep[2], go[2];
    if (::pipe2(rep, O_CLOEXEC) != 0 || ::pipe2(go, O_CLOEXEC) != 0) std::abort();
    const pid_t eng = ::fork();
    if (eng == 0) fake_engine(how, rep[1], go[0]);
    ::close(rep[1]);
    ::close(go[0]);
    int msg[2] = {0, -1};
    r.check("fake engine reported", ::read(rep[0], msg, sizeof msg), sizeof msg);
    r.note("guard started", msg[0] > 0);
    r.check("engine memory mapped", msg[1], 0);
    const pid_t guard_pid = msg[0];
    if (guard_pid > 0) o.guard_rss_kb = rss_kb(guard_pid);
    const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, eng, 0));
    o.kill_ns = realtime_ns();
    if (how == ending::disarmed) {
        [[maybe_unused]] auto w = ::write(go[1], "x", 1);
        int gone = 0;
        r.check("disarm_clean reaped the guard", ::read(rep[0], &gone, sizeof gone) == sizeof gone ? gone : -1, 1);
        ::kill(eng, SIGKILL); // after disarm_clean, a later death is silent too
    } else {
        ::kill(eng, SIGKILL);
    }
    // Frames and the engine's exit, in the order they come; then 200 ms of silence ends it.
    for (;;) {
        pollfd p[2] = {{cap, POLLIN, 0}, {pidfd, POLLIN, 0}};
        if (::poll(p, o.engine_exit_ns ? 1 : 2, 200) <= 0) break;
        if (!o.engine_exit_ns && (p[1].revents & POLLIN)) o.engine_exit_ns = realtime_ns();
        if (p[0].revents & POLLIN)
            if (auto c = receive(cap, 0)) o.frames.push_back(std::move(*c));
    }
    ::waitpid(eng, nullptr, 0);
    if (guard_pid > 0 && how != ending::disarmed) {
        int st = 0;
        for (int i = 0; i < 2000 && ::waitpid(guard_pid, &st, WNOHANG) == 0; ++i) ::usleep(1000);
        o.guard_status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    }
    o.addr_left_on_if = std::system("ip -o addr show dev hwg0 | grep -q '169.254.10.100/24'") == 0;
    o.addr_left_on_lo = std::system("ip -o addr show dev lo | grep -q '169.254.10.100/32'") == 0;
    ::close(pidfd);
    ::close(cap);
    ::close(rep[0]);
    ::close(go[1]);
    return o;
}

} // namespace

TEST(Guard, EngineKilledSendsItsEngineDownFrameBeforeItsMemoryIsGone) {
    hwtest::run_in_private_netns([](ns_report& r) {
        const outcome o = run(r, ending::killed);
        const auto want = engine_down_frame();
        r.check("copies of the notice at the peer", static_cast<long>(o.frames.size()), 3);
        for (const auto& f : o.frames) r.note("frame is the published bytes", f.bytes == want);
        r.check("guard exit status", o.guard_status, 0);
        r.check("the dead engine's address is off the kernel interface", o.addr_left_on_if, 0);
        r.check("and off lo", o.addr_left_on_lo, 0);
        r.measure("guard resident memory (kB)", static_cast<double>(o.guard_rss_kb));
        if (o.frames.empty()) return;
        const double frame_us = static_cast<double>(o.frames.front().rx_ns - o.kill_ns) / 1e3;
        r.measure("kill -> first engine_down frame at the peer (us)", frame_us);
        r.note("frame within 50 ms of the kill", frame_us < 50'000);
        if (o.engine_exit_ns) {
            r.measure("kill -> engine pidfd readable (us)", static_cast<double>(o.engine_exit_ns - o.kill_ns) / 1e3);
            // The reason for the robust futex: the exit notification waits for the 256 MB teardown.
            r.note("frame before the engine's exit notification", o.frames.front().rx_ns < o.engine_exit_ns);
        }
    });
}

TEST(Guard, OrderlyStopWithDisarmCleanSendsNothing) {
    hwtest::run_in_private_netns([](ns_report& r) {
        const outcome o = run(r, ending::disarmed);
        r.check("frames at the peer", static_cast<long>(o.frames.size()), 0);
        r.check("an orderly stop leaves the addresses to the daemon", o.addr_left_on_if, 1);
    });
}

TEST(Guard, EngineKilledBeforeItArmedTheNoticeSendsNothing) {
    hwtest::run_in_private_netns([](ns_report& r) {
        const outcome o = run(r, ending::killed_unarmed);
        r.check("frames at the peer", static_cast<long>(o.frames.size()), 0);
        r.check("a dead engine's addresses go even without a notice", o.addr_left_on_if, 0);
        r.check("guard exit status", o.guard_status, 0);
    });
}

TEST(Guard, EngineKilledDuringAnOrderlyStopSendsNothing) {
    hwtest::run_in_private_netns([](ns_report& r) {
        const outcome o = run(r, ending::killed_after_clean);
        r.check("frames at the peer", static_cast<long>(o.frames.size()), 0);
        r.check("an engine killed in its orderly stop still leaves no address behind", o.addr_left_on_if, 0);
        r.check("guard exit status", o.guard_status, 0);
    });
}

TEST(Guard, MissingInterfaceFailsAtStartWithENODEV) {
    try {
        auto g = ctl::guard::start({"hwnope0", 20, true, {}});
        ADD_FAILURE() << "start() on a missing interface returned a guard";
    } catch (const std::system_error& e) {
        EXPECT_EQ(e.code().value(), ENODEV);
        EXPECT_NE(std::string(e.what()).find("hwnope0"), std::string::npos) << e.what();
    }
    EXPECT_EQ(ctl::guard::start({"hwnope0", 20, false, {}}), nullptr) << "disabled: no guard, no error";
}
