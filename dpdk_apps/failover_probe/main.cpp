// heartwire-failover-probe: measures a failover the way a client sees it.
//
// Runs inside the client's network namespace. Sends ICMP echo requests to the primary
// address at a fixed spacing, injects the failure (kills the primary's process or runs a
// command), then waits for the first gratuitous ARP for the address from a MAC other than
// the old one and the first echo reply after it. Every receive time is the kernel's
// (SO_TIMESTAMPNS, CLOCK_REALTIME), so scheduling delays of this process do not count;
// the injection time is CLOCK_REALTIME read just before kill() / spawning the command.
//
// Exit: 0 GARP from a new MAC and a reply after it seen, 3 timeout, 2 usage or setup error.

#include <CLI/CLI.hpp>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <mutex>
#include <optional>
#include <spawn.h>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <net/if.h> // before the linux/ headers, so linux/libc-compat.h skips its copies
#include <linux/icmp.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "heartwire/net_types.hpp"

extern char** environ;

namespace {

using heartwire::ipv4_addr;
using heartwire::ipv4_prefix;
using heartwire::mac_addr;

constexpr int exit_ok = 0;
constexpr int exit_usage = 2;
constexpr int exit_timeout = 3;

// Only the test network may ever see our traffic (DESIGN.md "Test networks").
constexpr ipv4_prefix allowed_net{ipv4_addr{0xA9FE0A00}, 24}; // 169.254.10.0/24
constexpr ipv4_addr forbidden_addr{0xA9FEA9FE};              // 169.254.169.254

constexpr std::uint64_t payload_magic = 0x6877'7072'6f62'6531ULL; // "hwprobe1"

struct options {
    std::string iface;
    std::string target;
    int kill_pid = 0;
    std::string signal_name = "KILL";
    std::string inject;
    std::uint64_t interval_us = 1000;
    std::uint64_t warmup_ms = 300;
    std::uint64_t timeout_ms = 5000;
    std::uint64_t tail_ms = 100;
    std::string old_mac;
    bool json = false;
    bool listen_only = false;
};

[[noreturn]] void die(int code, const std::string& msg) {
    std::fprintf(stderr, "heartwire-failover-probe: %s\n", msg.c_str());
    std::exit(code);
}

std::int64_t realtime_ns() noexcept {
    timespec ts{};
    clock_gettime(CLOCK_REALTIME, &ts);
    return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

double us_between(std::int64_t from_ns, std::int64_t to_ns) noexcept {
    return static_cast<double>(to_ns - from_ns) / 1000.0;
}

std::string fmt_realtime(std::int64_t ns) {
    char buf[40];
    std::snprintf(buf, sizeof buf, "%lld.%09lld", static_cast<long long>(ns / 1'000'000'000),
                  static_cast<long long>(ns % 1'000'000'000));
    return buf;
}

std::string fmt_us(double us) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f", us);
    return buf;
}

std::string json_escape(const std::string& s) {
    std::string out;
    for (char c : s) {
        switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\t': out += "\\t"; break;
        default:
            if (static_cast<unsigned char>(c) < 0x20) {
                char buf[8];
                std::snprintf(buf, sizeof buf, "\\u%04x", c);
                out += buf;
            } else {
                out += c;
            }
        }
    }
    return out;
}

std::uint16_t be16(const std::uint8_t* p) noexcept { return static_cast<std::uint16_t>(p[0] << 8 | p[1]); }
std::uint32_t be32(const std::uint8_t* p) noexcept {
    return std::uint32_t{p[0]} << 24 | std::uint32_t{p[1]} << 16 | std::uint32_t{p[2]} << 8 | p[3];
}

// Kernel receive time from the SCM_TIMESTAMPNS control message; 0 when absent.
std::int64_t kernel_ts(msghdr& msg) noexcept {
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
            timespec ts{};
            std::memcpy(&ts, CMSG_DATA(c), sizeof ts);
            return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
        }
    }
    return 0;
}

// One non-blocking datagram with its kernel receive time (SO_TIMESTAMPNS; the current
// CLOCK_REALTIME when the kernel gave none). Returns the length, or -1.
template <class Addr>
ssize_t recv_stamped(int fd, std::uint8_t* buf, std::size_t len, Addr& from, std::int64_t& ts_ns) {
    alignas(cmsghdr) char ctrl[256];
    iovec iov{buf, len};
    msghdr msg{};
    msg.msg_name = &from;
    msg.msg_namelen = sizeof from;
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = ctrl;
    msg.msg_controllen = sizeof ctrl;
    const ssize_t n = recvmsg(fd, &msg, MSG_DONTWAIT);
    if (n >= 0) {
        ts_ns = kernel_ts(msg);
        if (ts_ns == 0) ts_ns = realtime_ns();
    }
    return n;
}

void enable_timestamps(int fd, const char* what) {
    int on = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof on) != 0)
        die(exit_usage, std::string("SO_TIMESTAMPNS on the ") + what + " socket: " + std::strerror(errno));
}

// ------------------------------------------------------------------ ARP capture

struct arp_seen {
    std::int64_t ts_ns = 0;
    std::uint16_t op = 0;
    mac_addr eth_src;
    mac_addr sha;
    ipv4_addr spa;
    ipv4_addr tpa;
};

int open_arp_socket(int ifindex) {
    int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ARP));
    if (fd < 0) die(exit_usage, std::string("AF_PACKET socket: ") + std::strerror(errno) + " (needs root or CAP_NET_RAW)");
    sockaddr_ll sll{};
    sll.sll_family = AF_PACKET;
    sll.sll_protocol = htons(ETH_P_ARP);
    sll.sll_ifindex = ifindex;
    if (bind(fd, reinterpret_cast<sockaddr*>(&sll), sizeof sll) != 0)
        die(exit_usage, std::string("bind AF_PACKET socket: ") + std::strerror(errno));
    enable_timestamps(fd, "ARP");
    return fd;
}

// Reads one frame; returns true and fills `out` for an Ethernet/IPv4 ARP frame that came in
// from the wire (our own outgoing ARP is skipped).
bool read_arp(int fd, arp_seen& out) {
    std::uint8_t buf[256];
    sockaddr_ll from{};
    std::int64_t ts = 0;
    const ssize_t n = recv_stamped(fd, buf, sizeof buf, from, ts);
    if (n < 0) return false;
    if (from.sll_pkttype == PACKET_OUTGOING) return false;
    constexpr std::size_t eth = 14, arp = 28;
    if (static_cast<std::size_t>(n) < eth + arp) return false;
    if (be16(buf + 12) != ETH_P_ARP) return false;
    const std::uint8_t* a = buf + eth;
    if (be16(a) != 1 || be16(a + 2) != ETH_P_IP || a[4] != 6 || a[5] != 4) return false;
    out.ts_ns = ts;
    out.op = be16(a + 6);
    std::copy_n(buf + 6, 6, out.eth_src.b.begin());
    std::copy_n(a + 8, 6, out.sha.b.begin());
    out.spa = ipv4_addr{be32(a + 14)};
    out.tpa = ipv4_addr{be32(a + 24)};
    return true;
}

const char* arp_op_name(std::uint16_t op) { return op == 1 ? "request" : op == 2 ? "reply" : "op?"; }

// ------------------------------------------------------------------ ICMP echo

std::uint16_t inet_checksum(const std::uint8_t* p, std::size_t n) noexcept {
    std::uint32_t sum = 0;
    for (std::size_t i = 0; i + 1 < n; i += 2) sum += be16(p + i);
    if (n & 1) sum += std::uint32_t{p[n - 1]} << 8;
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    return static_cast<std::uint16_t>(~sum);
}

void put_be64(std::uint8_t* p, std::uint64_t v) noexcept {
    for (int i = 7; i >= 0; --i, v >>= 8) p[i] = static_cast<std::uint8_t>(v);
}
std::uint64_t get_be64(const std::uint8_t* p) noexcept {
    std::uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v = v << 8 | p[i];
    return v;
}

int open_icmp_socket(const std::string& iface) {
    int fd = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMP);
    if (fd < 0) die(exit_usage, std::string("raw ICMP socket: ") + std::strerror(errno) + " (needs root or CAP_NET_RAW)");
    if (setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, iface.c_str(), static_cast<socklen_t>(iface.size())) != 0)
        die(exit_usage, "SO_BINDTODEVICE " + iface + ": " + std::strerror(errno));
    icmp_filter filt{~(1u << ICMP_ECHOREPLY)};
    if (setsockopt(fd, SOL_RAW, ICMP_FILTER, &filt, sizeof filt) != 0)
        die(exit_usage, std::string("ICMP_FILTER: ") + std::strerror(errno));
    int rcvbuf = 4 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf); // best effort
    enable_timestamps(fd, "ICMP");
    return fd;
}

// ------------------------------------------------------------------ shared run state

struct reply_seen {
    std::int64_t ts_ns;
    std::uint64_t counter;
};

struct run_state {
    std::mutex mu;
    std::condition_variable cv;
    // written by the main thread before t_inject is published
    mac_addr old_mac;
    std::int64_t t_inject = 0; // 0 = not injected yet
    // written by the receiver
    std::vector<reply_seen> replies;
    std::vector<bool> answered; // by request counter
    std::uint64_t received_unique = 0;
    std::vector<arp_seen> garps; // gratuitous ARPs for the target after t_inject
    std::int64_t t_garp = 0;
    mac_addr new_mac;
    std::int64_t t_reply = 0;
};

struct prober {
    options opt;
    ipv4_addr target;
    int ifindex = 0;
    int arp_fd = -1;
    int icmp_fd = -1;
    int stop_fd = -1; // eventfd: wakes the receiver
    std::uint16_t echo_id = 0;
    std::atomic<bool> stop_sending{false};
    std::atomic<std::uint64_t> sent_ok{0};
    std::atomic<std::uint64_t> send_errors{0};
    std::atomic<std::uint64_t> next_counter{0};
    std::atomic<std::int64_t> last_send_ns{0}; // CLOCK_REALTIME of the last request sent
    run_state st;

    void sender() {
        sockaddr_in dst{};
        dst.sin_family = AF_INET;
        dst.sin_addr.s_addr = htonl(target.v);
        std::uint8_t pkt[8 + 16]{};
        const std::int64_t step = static_cast<std::int64_t>(opt.interval_us) * 1000;
        timespec next{};
        clock_gettime(CLOCK_MONOTONIC, &next);
        while (!stop_sending.load(std::memory_order_relaxed)) {
            const std::uint64_t c = next_counter.fetch_add(1, std::memory_order_relaxed);
            pkt[0] = ICMP_ECHO;
            pkt[1] = 0;
            pkt[2] = pkt[3] = 0;
            pkt[4] = static_cast<std::uint8_t>(echo_id >> 8);
            pkt[5] = static_cast<std::uint8_t>(echo_id);
            pkt[6] = static_cast<std::uint8_t>(c >> 8);
            pkt[7] = static_cast<std::uint8_t>(c);
            put_be64(pkt + 8, payload_magic);
            put_be64(pkt + 16, c);
            const std::uint16_t sum = inet_checksum(pkt, sizeof pkt);
            pkt[2] = static_cast<std::uint8_t>(sum >> 8);
            pkt[3] = static_cast<std::uint8_t>(sum);
            if (sendto(icmp_fd, pkt, sizeof pkt, MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&dst), sizeof dst) ==
                static_cast<ssize_t>(sizeof pkt)) {
                sent_ok.fetch_add(1, std::memory_order_relaxed);
                last_send_ns.store(realtime_ns(), std::memory_order_relaxed);
            } else {
                send_errors.fetch_add(1, std::memory_order_relaxed);
            }

            // Absolute schedule; after a stall skip the missed slots instead of bursting.
            std::int64_t n = (std::int64_t{next.tv_sec} * 1'000'000'000 + next.tv_nsec) + step;
            timespec now{};
            clock_gettime(CLOCK_MONOTONIC, &now);
            const std::int64_t now_ns = std::int64_t{now.tv_sec} * 1'000'000'000 + now.tv_nsec;
            if (n < now_ns - step) n = now_ns;
            next.tv_sec = n / 1'000'000'000;
            next.tv_nsec = n % 1'000'000'000;
            while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, nullptr) == EINTR) {
            }
        }
    }

    void on_reply(std::int64_t ts, std::uint64_t counter) {
        std::lock_guard lk(st.mu);
        st.replies.push_back({ts, counter});
        if (counter >= st.answered.size()) st.answered.resize(std::max<std::size_t>(counter + 1, st.answered.size() * 2));
        if (!st.answered[counter]) {
            st.answered[counter] = true;
            ++st.received_unique;
        }
        if (st.t_garp != 0 && (st.t_reply == 0 || ts < st.t_reply) && ts > st.t_garp) {
            st.t_reply = ts;
            st.cv.notify_all();
        }
    }

    void on_arp(const arp_seen& a) {
        if (!(a.spa == target && a.tpa == target)) return;
        std::lock_guard lk(st.mu);
        if (st.t_inject == 0 || a.ts_ns < st.t_inject) return;
        st.garps.push_back(a);
        if (a.sha == st.old_mac || (st.t_garp != 0 && a.ts_ns >= st.t_garp)) return;
        // Replies are read from another socket, so one stamped after this GARP may already be in.
        st.t_garp = a.ts_ns;
        st.new_mac = a.sha;
        st.t_reply = 0;
        for (const auto& r : st.replies)
            if (r.ts_ns > st.t_garp && (st.t_reply == 0 || r.ts_ns < st.t_reply)) st.t_reply = r.ts_ns;
        st.cv.notify_all();
    }

    void read_icmp() {
        std::uint8_t buf[512];
        sockaddr_in from{};
        std::int64_t ts = 0;
        const ssize_t n = recv_stamped(icmp_fd, buf, sizeof buf, from, ts);
        if (n < 20) return;
        const std::size_t ihl = static_cast<std::size_t>(buf[0] & 0x0f) * 4;
        if ((buf[0] >> 4) != 4 || ihl < 20 || static_cast<std::size_t>(n) < ihl + 24) return;
        if (ipv4_addr{be32(buf + 12)} != target) return;
        const std::uint8_t* icmp = buf + ihl;
        if (icmp[0] != ICMP_ECHOREPLY || be16(icmp + 4) != echo_id) return;
        if (get_be64(icmp + 8) != payload_magic) return;
        const std::uint64_t counter = get_be64(icmp + 16);
        if (counter >= next_counter.load(std::memory_order_relaxed)) return; // not one of ours
        on_reply(ts, counter);
    }

    void receiver() {
        pollfd fds[3] = {{icmp_fd, POLLIN, 0}, {arp_fd, POLLIN, 0}, {stop_fd, POLLIN, 0}};
        for (;;) {
            if (poll(fds, 3, -1) < 0) {
                if (errno == EINTR) continue;
                return;
            }
            if (fds[2].revents) return;
            if (fds[0].revents & POLLIN)
                for (int i = 0; i < 64; ++i) read_icmp();
            if (fds[1].revents & POLLIN) {
                arp_seen a;
                for (int i = 0; i < 64 && read_arp(arp_fd, a); ++i) on_arp(a);
            }
        }
    }
};

// ------------------------------------------------------------------ helpers for main

std::optional<mac_addr> mac_from_proc_arp(ipv4_addr ip, const std::string& iface) {
    std::ifstream f("/proc/net/arp");
    std::string line;
    std::getline(f, line); // header
    while (std::getline(f, line)) {
        std::istringstream ls(line);
        std::string addr, hwtype, flags, mac, mask, dev;
        if (!(ls >> addr >> hwtype >> flags >> mac >> mask >> dev)) continue;
        if (addr != ip.to_string() || dev != iface) continue;
        if ((std::stoul(flags, nullptr, 16) & 0x2) == 0) continue; // ATF_COM: entry complete
        auto m = mac_addr::parse(mac);
        if (m && !m->is_zero()) return m;
    }
    return std::nullopt;
}

int signal_number(const std::string& name) {
    if (name == "KILL") return SIGKILL;
    if (name == "TERM") return SIGTERM;
    if (name == "STOP") return SIGSTOP;
    if (name == "INT") return SIGINT;
    return 0;
}

ipv4_addr checked_target(const std::string& s) {
    auto ip = ipv4_addr::parse(s);
    if (!ip) die(exit_usage, "--target '" + s + "' is not an IPv4 address");
    if (*ip == forbidden_addr) die(exit_usage, "--target 169.254.169.254 is never a test address; refusing");
    if (!allowed_net.contains(*ip))
        die(exit_usage, "--target " + s + " is outside the test network 169.254.10.0/24; refusing");
    return *ip;
}

std::atomic<bool> g_interrupted{false};
void on_sigint(int) { g_interrupted.store(true); }

int listen_only(const options& opt, int ifindex, std::optional<ipv4_addr> filter) {
    int fd = open_arp_socket(ifindex);
    struct sigaction sa{};
    sa.sa_handler = on_sigint;
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
    const std::int64_t deadline = opt.timeout_ms == 0 ? 0 : realtime_ns() + static_cast<std::int64_t>(opt.timeout_ms) * 1'000'000;
    if (!opt.json)
        std::printf("listening for gratuitous ARP on %s%s%s\n", opt.iface.c_str(), filter ? " for " : "",
                    filter ? filter->to_string().c_str() : "");
    std::fflush(stdout);
    while (!g_interrupted.load() && (deadline == 0 || realtime_ns() < deadline)) {
        pollfd p{fd, POLLIN, 0};
        if (poll(&p, 1, 100) <= 0) continue;
        arp_seen a;
        while (read_arp(fd, a)) {
            if (!(a.spa == a.tpa) || a.spa.is_zero()) continue;
            if (filter && a.spa != *filter) continue;
            if (opt.json)
                std::printf("{\"ts\":\"%s\",\"op\":\"%s\",\"ip\":\"%s\",\"sha\":\"%s\",\"eth_src\":\"%s\"}\n",
                            fmt_realtime(a.ts_ns).c_str(), arp_op_name(a.op), a.spa.to_string().c_str(),
                            a.sha.to_string().c_str(), a.eth_src.to_string().c_str());
            else
                std::printf("%s GARP %s %s is-at %s (eth src %s)\n", fmt_realtime(a.ts_ns).c_str(),
                            arp_op_name(a.op), a.spa.to_string().c_str(), a.sha.to_string().c_str(),
                            a.eth_src.to_string().c_str());
            std::fflush(stdout);
        }
    }
    close(fd);
    return exit_ok;
}

} // namespace

int main(int argc, char** argv) {
    options opt;
    CLI::App app{"Measures a heartwire failover from the client's side with kernel receive timestamps.\n"
                 "Run it inside the client namespace: ip netns exec CLIENT heartwire-failover-probe ..."};
    app.add_option("--iface", opt.iface, "client interface facing the test network")->required();
    auto* target_opt = app.add_option("--target", opt.target, "primary address (169.254.10.0/24 only)");
    auto* kill_opt = app.add_option("--kill", opt.kill_pid, "PID of the primary to signal");
    app.add_option("--signal", opt.signal_name, "signal for --kill")
        ->check(CLI::IsMember({"KILL", "TERM", "STOP", "INT"}))
        ->capture_default_str();
    auto* inject_opt = app.add_option("--inject", opt.inject, "shell command that injects the failure (/bin/sh -c)");
    kill_opt->excludes(inject_opt);
    app.add_option("--interval-us", opt.interval_us, "echo request spacing")->check(CLI::Range(10, 1'000'000))->capture_default_str();
    app.add_option("--warmup-ms", opt.warmup_ms, "echo replies must flow this long before injecting")->capture_default_str();
    app.add_option("--timeout-ms", opt.timeout_ms, "give up this long after injecting (listen-only: 0 = until Ctrl-C)")->capture_default_str();
    app.add_option("--tail-ms", opt.tail_ms, "keep measuring this long after the first reply after the GARP")->capture_default_str();
    app.add_option("--old-mac", opt.old_mac, "the primary's MAC before the failover (default: /proc/net/arp after warmup)");
    app.add_flag("--json", opt.json, "print one JSON object");
    auto* listen_opt = app.add_flag("--listen-only", opt.listen_only, "only print each gratuitous ARP with its kernel timestamp");
    listen_opt->excludes(kill_opt)->excludes(inject_opt);
    try {
        app.parse(argc, argv);
        if (!opt.listen_only) {
            if (target_opt->count() == 0) throw CLI::RequiredError("--target");
            if (kill_opt->count() == 0 && inject_opt->count() == 0)
                throw CLI::ValidationError("one of --kill PID or --inject COMMAND is required (or --listen-only)");
        }
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        die(exit_usage, e.what());
    }

    const int ifindex = static_cast<int>(if_nametoindex(opt.iface.c_str()));
    if (ifindex == 0) die(exit_usage, "no interface '" + opt.iface + "' in this namespace (run inside the client namespace)");

    if (opt.listen_only) {
        std::optional<ipv4_addr> filter;
        if (!opt.target.empty()) filter = checked_target(opt.target);
        return listen_only(opt, ifindex, filter);
    }

    prober p;
    p.opt = opt;
    p.target = checked_target(opt.target);
    p.ifindex = ifindex;

    std::optional<mac_addr> given_old;
    if (!opt.old_mac.empty()) {
        given_old = mac_addr::parse(opt.old_mac);
        if (!given_old) die(exit_usage, "--old-mac '" + opt.old_mac + "' is not a MAC address");
    }
    const int sig = signal_number(opt.signal_name);
    if (opt.kill_pid != 0) {
        if (opt.kill_pid <= 1) die(exit_usage, "--kill " + std::to_string(opt.kill_pid) + " is not a process to kill");
        if (kill(opt.kill_pid, 0) != 0)
            die(exit_usage, "--kill " + std::to_string(opt.kill_pid) + ": " + std::strerror(errno));
    }

    p.arp_fd = open_arp_socket(ifindex);
    p.icmp_fd = open_icmp_socket(opt.iface);
    p.stop_fd = eventfd(0, EFD_CLOEXEC);
    p.echo_id = static_cast<std::uint16_t>(getpid() ^ (realtime_ns() >> 10));
    p.st.replies.reserve(static_cast<std::size_t>((opt.warmup_ms + opt.timeout_ms + 1000) * 1000 / opt.interval_us));
    p.st.answered.reserve(p.st.replies.capacity());

    std::thread rx([&] { p.receiver(); });
    std::thread tx([&] { p.sender(); });
    auto stop_all = [&] {
        p.stop_sending = true;
        tx.join();
        // In-flight replies still count; then wake the receiver.
        std::this_thread::sleep_for(std::chrono::milliseconds(20) + std::chrono::microseconds(4 * opt.interval_us));
        std::uint64_t one = 1;
        [[maybe_unused]] auto w = write(p.stop_fd, &one, sizeof one);
        rx.join();
    };

    std::this_thread::sleep_for(std::chrono::milliseconds(opt.warmup_ms));
    std::int64_t last_reply = 0;
    std::uint64_t warm_replies = 0;
    {
        std::lock_guard lk(p.st.mu);
        warm_replies = p.st.received_unique;
        if (!p.st.replies.empty()) last_reply = p.st.replies.back().ts_ns;
    }
    const std::int64_t fresh_ns = std::max<std::int64_t>(100'000'000, 20 * static_cast<std::int64_t>(opt.interval_us) * 1000);
    if (warm_replies == 0 || realtime_ns() - last_reply > fresh_ns) {
        stop_all();
        die(exit_usage, "no echo replies flowing from " + opt.target + " on " + opt.iface + " after " +
                            std::to_string(opt.warmup_ms) + " ms of warmup (" + std::to_string(warm_replies) +
                            " received, " + std::to_string(p.sent_ok.load()) + " sent); is the primary up and the address held?");
    }
    const auto old_mac = given_old ? given_old : mac_from_proc_arp(p.target, opt.iface);
    if (!old_mac) {
        stop_all();
        die(exit_usage, "no complete ARP entry for " + opt.target + " on " + opt.iface + " in /proc/net/arp; pass --old-mac");
    }

    std::string inject_desc;
    pid_t inject_pid = -1;
    std::int64_t kill_call_ns = 0;
    {
        std::unique_lock lk(p.st.mu);
        p.st.old_mac = *old_mac;
        // Publish t_inject under the lock the receiver reads it with; the lock costs well under
        // a microsecond and the GARP cannot come before the action anyway.
        int rc = 0;
        if (opt.kill_pid != 0) {
            // The failure instant is taken just before kill(): an engine-down notice can put
            // the new primary's GARP on the wire before kill() has even returned to us, so
            // stamping after the call would throw the fastest failovers away. This can only
            // add time (our own delay inside the call), never hide any; kill_call_us says how
            // much it was.
            const std::int64_t before = realtime_ns();
            p.st.t_inject = before;
            rc = kill(opt.kill_pid, sig);
            kill_call_ns = realtime_ns() - before;
            lk.unlock();
            inject_desc = "kill -" + opt.signal_name + " " + std::to_string(opt.kill_pid);
        } else {
            p.st.t_inject = realtime_ns();
            lk.unlock();
            const char* sh_argv[] = {"/bin/sh", "-c", opt.inject.c_str(), nullptr};
            rc = posix_spawn(&inject_pid, "/bin/sh", nullptr, nullptr, const_cast<char**>(sh_argv), environ);
            if (rc != 0) errno = rc, rc = -1;
            inject_desc = opt.inject;
        }
        if (rc != 0) {
            const std::string why = std::strerror(errno);
            stop_all();
            die(exit_usage, "injecting '" + inject_desc + "' failed: " + why);
        }
    }

    const auto timeout = std::chrono::milliseconds(opt.timeout_ms);
    const auto tail = std::chrono::milliseconds(opt.tail_ms);
    const auto start = std::chrono::steady_clock::now();
    bool done = false;
    {
        std::unique_lock lk(p.st.mu);
        p.st.cv.wait_until(lk, start + timeout, [&] { return p.st.t_reply != 0; });
        done = p.st.t_reply != 0;
    }
    if (done) std::this_thread::sleep_for(tail);
    stop_all();

    std::optional<int> inject_exit;
    if (inject_pid > 0) {
        int status = 0;
        for (int i = 0; i < 1000; ++i) {
            if (waitpid(inject_pid, &status, WNOHANG) == inject_pid) {
                inject_exit = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
                break;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
    }

    // Analysis, all from kernel timestamps.
    auto& st = p.st;
    std::sort(st.replies.begin(), st.replies.end(), [](const reply_seen& a, const reply_seen& b) { return a.ts_ns < b.ts_ns; });
    const std::int64_t t_inject = st.t_inject;
    const std::int64_t t_end = st.t_reply != 0 ? st.t_reply : INT64_MAX;
    std::int64_t gap = 0, gap_end = 0;
    bool gap_open = false;
    for (std::size_t i = 1; i < st.replies.size(); ++i) {
        const auto a = st.replies[i - 1].ts_ns, b = st.replies[i].ts_ns;
        if (b <= t_inject || a >= t_end) continue;
        if (b - a > gap) gap = b - a, gap_end = b;
    }
    if (st.t_reply == 0 && !st.replies.empty()) {
        // No recovery: requests sent after the last reply and never answered leave a gap open
        // up to the last request.
        const std::int64_t open = p.last_send_ns.load() - st.replies.back().ts_ns;
        if (open > gap) gap = open, gap_end = 0, gap_open = true;
    }
    const std::uint64_t sent = p.sent_ok.load();
    const std::uint64_t received = st.received_unique;
    const std::uint64_t lost = sent > received ? sent - received : 0;
    const bool ok = st.t_garp != 0 && st.t_reply != 0;
    std::size_t garps_old = 0;
    for (const auto& g : st.garps) garps_old += g.sha == st.old_mac ? 1 : 0;

    auto num_or_null = [](bool have, double v) { return have ? fmt_us(v) : std::string("null"); };
    const std::string new_mac_json = st.t_garp != 0 ? "\"" + st.new_mac.to_string() + "\"" : "null";
    const std::string inject_exit_json = inject_exit ? std::to_string(*inject_exit) : "null";
    const std::string inject_exit_human = inject_exit ? " (exit " + std::to_string(*inject_exit) + ")" : "";
    if (opt.json) {
        std::printf("{\"result\":\"%s\",\"target\":\"%s\",\"iface\":\"%s\",\"inject\":\"%s\",\"t_inject\":\"%s\","
                    "\"garp_us\":%s,\"first_reply_us\":%s,\"gap_us\":%s,\"gap_open\":%s,\"gap_end_us\":%s,"
                    "\"lost\":%llu,\"old_mac\":\"%s\",\"new_mac\":%s,\"sent\":%llu,\"received\":%llu,"
                    "\"garps_seen\":%zu,\"garps_from_old_mac\":%zu,\"send_errors\":%llu,\"interval_us\":%llu,"
                    "\"inject_exit\":%s,\"kill_call_us\":%s}\n",
                    ok ? "ok" : "timeout", opt.target.c_str(), json_escape(opt.iface).c_str(),
                    json_escape(inject_desc).c_str(), fmt_realtime(t_inject).c_str(),
                    num_or_null(st.t_garp != 0, us_between(t_inject, st.t_garp)).c_str(),
                    num_or_null(st.t_reply != 0, us_between(t_inject, st.t_reply)).c_str(),
                    fmt_us(static_cast<double>(gap) / 1000.0).c_str(), gap_open ? "true" : "false",
                    num_or_null(gap_end != 0, us_between(t_inject, gap_end)).c_str(),
                    static_cast<unsigned long long>(lost), st.old_mac.to_string().c_str(),
                    new_mac_json.c_str(),
                    static_cast<unsigned long long>(sent), static_cast<unsigned long long>(received),
                    st.garps.size(), garps_old, static_cast<unsigned long long>(p.send_errors.load()),
                    static_cast<unsigned long long>(opt.interval_us),
                    inject_exit_json.c_str(), fmt_us(static_cast<double>(kill_call_ns) / 1000.0).c_str());
    } else {
        std::printf("target %s on %s, old MAC %s, echo every %llu us\n", opt.target.c_str(), opt.iface.c_str(),
                    st.old_mac.to_string().c_str(), static_cast<unsigned long long>(opt.interval_us));
        std::printf("injected '%s' at %s%s\n", inject_desc.c_str(), fmt_realtime(t_inject).c_str(),
                    inject_exit_human.c_str());
        for (std::size_t i = 0; i < st.garps.size() && i < 8; ++i)
            std::printf("  GARP %s from %s at +%s us\n", arp_op_name(st.garps[i].op), st.garps[i].sha.to_string().c_str(),
                        fmt_us(us_between(t_inject, st.garps[i].ts_ns)).c_str());
        if (st.t_garp != 0)
            std::printf("first GARP from a new MAC (%s): %s us after injection\n", st.new_mac.to_string().c_str(),
                        fmt_us(us_between(t_inject, st.t_garp)).c_str());
        else
            std::printf("no GARP from a new MAC for %s (%zu from the old MAC)\n", opt.target.c_str(), garps_old);
        if (st.t_reply != 0)
            std::printf("first echo reply after it: %s us after injection\n", fmt_us(us_between(t_inject, st.t_reply)).c_str());
        else
            std::printf("no echo reply after the GARP\n");
        std::printf("largest gap between replies: %s us%s\n", fmt_us(static_cast<double>(gap) / 1000.0).c_str(),
                    gap_open ? " (still open)" : "");
        std::printf("sent %llu, received %llu, lost %llu\n", static_cast<unsigned long long>(sent),
                    static_cast<unsigned long long>(received), static_cast<unsigned long long>(lost));
        if (!ok) std::printf("timeout after %llu ms\n", static_cast<unsigned long long>(opt.timeout_ms));
    }
    close(p.arp_fd);
    close(p.icmp_fd);
    close(p.stop_fd);
    return ok ? exit_ok : exit_timeout;
}
