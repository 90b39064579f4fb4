// The steering program under the real af_xdp PMD: DPDK loads it with xdp_prog= on a veth in
// a private namespace, and frames sent into the veth from its peer go where they should:
// heartwire's to the DPDK port, a UDP datagram for the interface's address to a kernel
// socket, a client's ARP request to the kernel (which answers it), a watched address's
// claim to the port. Its own executable: EAL starts once per process, in the netns child.
// Needs root.

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include <rte_ethdev.h>
#include <rte_mbuf.h>

#include "dpdk/eal.hpp"
#include "dpdk/port.hpp"
#include "dpdk/xdp_steer.hpp"
#include "netns_child.hpp"
#include "xdp_frames.hpp"

using namespace hwtest::xdp;
using heartwire::io::steer_counter;
using hwtest::ns_report;

namespace {

constexpr std::uint32_t if_addr = v4(169, 254, 10, 1);   // the kernel's address on the port's interface
constexpr std::uint32_t peer_addr = v4(169, 254, 10, 2); // a client behind the peer (not assigned)
constexpr std::uint16_t udp_port = 47000;

mac if_mac(const char* name) {
    mac m{};
    const int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ifreq r{};
    std::strncpy(r.ifr_name, name, IFNAMSIZ - 1);
    if (s >= 0 && ::ioctl(s, SIOCGIFHWADDR, &r) == 0) std::memcpy(m.data(), r.ifr_hwaddr.sa_data, 6);
    if (s >= 0) ::close(s);
    return m;
}

// A raw socket on the peer end: what a host on the wire would send and receive.
struct wire {
    int fd{-1};
    int ifindex{};
    explicit wire(const char* ifname) {
        fd = ::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ARP));
        ifindex = static_cast<int>(::if_nametoindex(ifname));
        sockaddr_ll a{};
        a.sll_family = AF_PACKET;
        a.sll_protocol = htons(ETH_P_ARP);
        a.sll_ifindex = ifindex;
        if (fd >= 0 && ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
            ::close(fd);
            fd = -1;
        }
    }
    ~wire() {
        if (fd >= 0) ::close(fd);
    }
    bool send(const bytes& f) const {
        sockaddr_ll a{};
        a.sll_family = AF_PACKET;
        a.sll_ifindex = ifindex;
        a.sll_halen = 6;
        std::memcpy(a.sll_addr, f.data(), 6);
        return ::sendto(fd, f.data(), f.size(), 0, reinterpret_cast<sockaddr*>(&a), sizeof a) ==
               static_cast<ssize_t>(f.size());
    }
    // The first incoming ARP reply from `spa` within 2 s.
    bool arp_reply_from(std::uint32_t spa) const {
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{2};
        while (std::chrono::steady_clock::now() < deadline) {
            pollfd p{fd, POLLIN, 0};
            if (::poll(&p, 1, 100) <= 0) continue;
            std::uint8_t buf[256];
            sockaddr_ll from{};
            socklen_t fl = sizeof from;
            const ssize_t n = ::recvfrom(fd, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &fl);
            if (n < 42 || from.sll_pkttype == PACKET_OUTGOING) continue;
            const std::uint32_t got = std::uint32_t{buf[28]} << 24 | std::uint32_t{buf[29]} << 16 |
                                      std::uint32_t{buf[30]} << 8 | buf[31];
            if (buf[21] == 2 && got == spa) return true;
        }
        return false;
    }
};

struct port_rx {
    long heartwire{}, arp_claims{}, udp{}, arp_requests{};
};

// What reached the DPDK port within `ms`.
port_rx drain(std::uint16_t port_id, int ms) {
    port_rx got;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds{ms};
    while (std::chrono::steady_clock::now() < deadline) {
        rte_mbuf* bufs[32];
        const std::uint16_t n = rte_eth_rx_burst(port_id, 0, bufs, 32);
        for (std::uint16_t i = 0; i < n; ++i) {
            const auto* p = rte_pktmbuf_mtod(bufs[i], const std::uint8_t*);
            const std::uint32_t len = rte_pktmbuf_data_len(bufs[i]);
            const std::uint16_t type = len >= 14 ? static_cast<std::uint16_t>(p[12] << 8 | p[13]) : 0;
            if (type == 0x88b5) ++got.heartwire;
            const bool from_client = len >= 42 && p[21] == 1 && p[31] == (peer_addr & 0xff); // op, spa
            if (type == 0x0806 && len >= 42) ++(from_client ? got.arp_requests : got.arp_claims);
            if (type == 0x0800 && len >= 34 && p[23] == 17) ++got.udp;
            rte_pktmbuf_free(bufs[i]);
        }
        if (n == 0) ::usleep(1000);
    }
    return got;
}

long udp_received(int fd) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 2000) <= 0) return 0;
    char buf[256];
    return ::recv(fd, buf, sizeof buf, 0) > 0 ? 1 : 0;
}

void scenario(ns_report& r) {
    r.check("veth hwd0/hwd0p", std::system("ip link add hwd0 type veth peer name hwd0p"), 0);
    r.check("address and links", std::system("ip addr add 169.254.10.1/24 dev hwd0 && ip link set lo up && "
                                             "ip link set hwd0 up && ip link set hwd0p up"),
            0);
    const int udp_fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(udp_port);
    sa.sin_addr.s_addr = htonl(if_addr);
    r.check("kernel UDP socket bound on hwd0's address",
            ::bind(udp_fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);

    rlimit unlimited{RLIM_INFINITY, RLIM_INFINITY}; // UMEM and BPF maps count against it
    ::setrlimit(RLIMIT_MEMLOCK, &unlimited);
    namespace io = heartwire::io;
    io::eal_init({"xdp_steer_dpdk", "--no-huge", "-m", "256", "--no-pci", "--no-shconf", "--no-telemetry", "-l", "0",
                  "--log-level", "pmd.net.af_xdp:info",
                  "--vdev=net_af_xdp0,iface=hwd0,xdp_prog=" HEARTWIRE_XDP_PROG});
    {
        io::port port(io::port_options{.device_name = "net_af_xdp0"});
        auto steer = io::xdp_steer::open("hwd0");
        std::printf("  the PMD attached %s in %s mode\n", HW_STEER_PROG_NAME, steer.mode());
        steer.add(heartwire::ipv4_addr{other4}); // another node's address heartwire watches

        wire w("hwd0p");
        r.note("raw socket on the peer", w.fd >= 0);
        const mac dst = if_mac("hwd0"), src = if_mac("hwd0p");
        r.note("hwd0 has a MAC", dst != mac{});
        r.note("heartwire frame sent", w.send(cat(eth(0x88b5, dst, src), bytes(46, 0x5a))));
        r.note("UDP datagram sent",
               w.send(cat(eth(0x0800, dst, src), ipv4(17, peer_addr, if_addr, udp(40000, udp_port, bytes(18, 7))))));
        r.note("GARP for a watched address sent",
               w.send(cat(eth(0x0806, bcast, src), arp(2, src, other4, bcast, other4))));
        r.note("client's ARP request sent",
               w.send(cat(eth(0x0806, bcast, src), arp(1, src, peer_addr, mac{}, if_addr))));

        const port_rx got = drain(port.id(), 1000);
        r.check("the DPDK port received the heartwire frame", got.heartwire, 1);
        r.check("the DPDK port received the watched address's GARP", got.arp_claims, 1);
        r.check("the DPDK port did not get the UDP datagram", got.udp, 0);
        r.check("the DPDK port did not get the client's ARP request", got.arp_requests, 0);
        r.check("the kernel's UDP socket received the datagram", udp_received(udp_fd), 1);
        r.note("the kernel answered the client's ARP request", w.arp_reply_from(if_addr));

        const auto s = steer.stats();
        r.check("steered_heartwire", static_cast<long>(s[steer_counter::steered_heartwire]), 1);
        r.check("steered_arp", static_cast<long>(s[steer_counter::steered_arp]), 1);
        r.note("passed counts the datagram and the request", s[steer_counter::passed] >= 2);
        port.stop();
    }
    ::close(udp_fd);
    io::eal_cleanup();
}

} // namespace

TEST(XdpSteerDpdk, ThePmdLoadsOurProgramAndOnlyWhatTheEngineNeedsReachesThePort) {
    hwtest::run_in_private_netns([](ns_report& r) {
        try {
            scenario(r);
        } catch (const std::exception& e) {
            r.note(std::string("unexpected exception: ") + e.what(), false);
        }
    });
}
