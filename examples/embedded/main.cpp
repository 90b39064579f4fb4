// hw-embedded-echo: a DPDK UDP request/response service with heartwire embedded.
//
// It owns EAL and one port (memif, af_xdp, af_packet or a NIC). Its RX loop hands
// heartwire's frames (heartbeats, and the ARP and ICMP about its addresses) to the node and
// answers UDP datagrams to the primary address on --udp-port itself, echoing them back, but
// only while this node holds the primary address: heartwire moves the address between
// instances, and the application starts and stops answering from the change callback.
//
//   hw-embedded-echo [EAL args] -- --config node.toml [--udp-port 7000] [--idle-us 100]
//
// e.g. on af_xdp over a veth:
//   hw-embedded-echo -l 0 --no-pci --no-huge -m 256 --vdev net_af_xdp0,iface=eth0 -- --config a.toml
//
// --idle-us: after an empty RX burst, sleep until heartwire's next timer, at most this
// long (0: busy polling).
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_ip.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_udp.h>

#include <sys/resource.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <exception>
#include <string>
#include <vector>

#include <heartwire/embed.hpp>

namespace {

constexpr std::uint16_t burst_size = 32;
constexpr unsigned pool_mbufs = 8191;
constexpr std::uint16_t ring_desc = 1024;

volatile std::sig_atomic_t quit = 0;

struct options {
    std::string config;
    std::uint16_t udp_port{7000};
    std::uint64_t idle_ns{100'000};
};

bool parse(int argc, char** argv, options& o) {
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (i + 1 >= argc) return false;
        const char* v = argv[++i];
        if (a == "--config") o.config = v;
        else if (a == "--udp-port") o.udp_port = static_cast<std::uint16_t>(std::strtoul(v, nullptr, 10));
        else if (a == "--idle-us") o.idle_ns = std::strtoull(v, nullptr, 10) * 1000;
        else return false;
    }
    return !o.config.empty() && o.udp_port != 0;
}

// One RX and one TX queue; heartwire shares both the lcore and the TX queue. Promiscuous
// and allmulticast: heartwire's frames go to its multicast group.
rte_mempool* start_port(std::uint16_t port) {
    rte_mempool* pool = rte_pktmbuf_pool_create("echo_pool", pool_mbufs, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
                                                static_cast<int>(rte_socket_id()));
    if (!pool) rte_exit(EXIT_FAILURE, "mbuf pool: %s\n", rte_strerror(rte_errno));
    rte_eth_conf conf{};
    if (rte_eth_dev_configure(port, 1, 1, &conf) < 0) rte_exit(EXIT_FAILURE, "rte_eth_dev_configure failed\n");
    std::uint16_t nb_rx = ring_desc, nb_tx = ring_desc;
    rte_eth_dev_adjust_nb_rx_tx_desc(port, &nb_rx, &nb_tx);
    const unsigned socket = static_cast<unsigned>(rte_socket_id());
    if (rte_eth_rx_queue_setup(port, 0, nb_rx, socket, nullptr, pool) < 0 ||
        rte_eth_tx_queue_setup(port, 0, nb_tx, socket, nullptr) < 0)
        rte_exit(EXIT_FAILURE, "queue setup failed\n");
    if (rte_eth_dev_start(port) < 0) rte_exit(EXIT_FAILURE, "rte_eth_dev_start failed\n");
    rte_eth_promiscuous_enable(port);
    rte_eth_allmulticast_enable(port);
    return pool;
}

// The service: a UDP datagram to one of `mine` on `udp_port` goes back where it came from,
// in the same mbuf. False (the caller frees it) for anything else.
bool echo_udp(rte_mbuf* m, const rte_ether_addr& me, const std::vector<std::uint32_t>& mine, std::uint16_t udp_port) {
    const std::uint32_t len = rte_pktmbuf_data_len(m);
    if (len < sizeof(rte_ether_hdr) + sizeof(rte_ipv4_hdr) + sizeof(rte_udp_hdr)) return false;
    auto* eth = rte_pktmbuf_mtod(m, rte_ether_hdr*);
    if (eth->ether_type != rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4)) return false;
    auto* ip = reinterpret_cast<rte_ipv4_hdr*>(eth + 1);
    const std::uint32_t ihl = rte_ipv4_hdr_len(ip);
    const std::uint32_t total = rte_be_to_cpu_16(ip->total_length);
    if (ip->next_proto_id != IPPROTO_UDP || ihl < sizeof(rte_ipv4_hdr) || total < ihl + sizeof(rte_udp_hdr) ||
        sizeof(rte_ether_hdr) + total > len ||
        (rte_be_to_cpu_16(ip->fragment_offset) & (RTE_IPV4_HDR_OFFSET_MASK | RTE_IPV4_HDR_MF_FLAG)) != 0)
        return false;
    if (std::find(mine.begin(), mine.end(), rte_be_to_cpu_32(ip->dst_addr)) == mine.end()) return false;
    auto* udp = reinterpret_cast<rte_udp_hdr*>(reinterpret_cast<char*>(ip) + ihl);
    if (udp->dst_port != rte_cpu_to_be_16(udp_port)) return false;

    rte_ether_addr_copy(&eth->src_addr, &eth->dst_addr);
    rte_ether_addr_copy(&me, &eth->src_addr);
    const rte_be32_t client = ip->src_addr;
    ip->src_addr = ip->dst_addr;
    ip->dst_addr = client;
    ip->time_to_live = 64;
    ip->hdr_checksum = 0;
    ip->hdr_checksum = rte_ipv4_cksum(ip);
    const rte_be16_t client_port = udp->src_port;
    udp->src_port = udp->dst_port;
    udp->dst_port = client_port;
    udp->dgram_cksum = 0;
    udp->dgram_cksum = rte_ipv4_udptcp_cksum(ip, udp);
    m->ol_flags = 0;
    m->pkt_len = m->data_len = static_cast<std::uint16_t>(sizeof(rte_ether_hdr) + total);
    return true;
}

void say(const char* what) {
    timespec t{};
    clock_gettime(CLOCK_REALTIME, &t);
    std::printf("%lld.%06ld hw-embedded-echo: %s\n", static_cast<long long>(t.tv_sec), t.tv_nsec / 1000, what);
    std::fflush(stdout);
}

std::string list(const heartwire::embed::addresses& a) {
    std::string s;
    for (const auto& p : a.v4) s.append(s.empty() ? "" : ", ").append(p.to_string());
    for (const auto& p : a.v6) s.append(s.empty() ? "" : ", ").append(p.to_string());
    return s;
}

int serve(std::uint16_t port, rte_mempool* pool, const options& o) {
    heartwire::embed::node hw(heartwire::embed::config_file{o.config}, {.port_id = port, .tx_queue = 0, .mempool = pool});
    rte_ether_addr me{};
    rte_eth_macaddr_get(port, &me);
    std::vector<std::uint32_t> primary;
    for (const auto& p : hw.addresses_of(heartwire::embed::address_role::primary).v4) primary.push_back(p.addr.v);

    bool serving = false; // this lcore only: the callback runs here, inside poll()
    hw.on_change([&](const heartwire::embed::change& c) {
        std::string line = "role ";
        line.append(heartwire::to_string(c.from)).append(" -> ").append(heartwire::to_string(c.to));
        line.append(" (epoch ").append(std::to_string(c.epoch)).append(")");
        if (c.gained_primary) line.append(", serving ").append(list(c.primary));
        if (c.lost_primary) line.append(", no longer serving ").append(list(c.primary));
        serving = hw.holds_primary();
        say(line.c_str());
    });
    hw.start_control();
    std::string ready = "udp echo on port " + std::to_string(o.udp_port) + " of " +
                        list(hw.addresses_of(heartwire::embed::address_role::primary)) + " while primary";
    say(ready.c_str());

    rte_mbuf* pkts[burst_size];
    rte_mbuf* mine[burst_size];
    rte_mbuf* out[burst_size];
    std::uint64_t answered = 0, dropped = 0;
    std::uint64_t rx_empty = hw.now_ns();
    while (!quit) {
        const std::uint64_t polled = hw.now_ns();
        const std::uint16_t n = rte_eth_rx_burst(port, 0, pkts, burst_size);
        // The queue was empty at `polled`: heartwire judges silence up to there, not past
        // frames still waiting behind a full burst.
        if (n < burst_size) rx_empty = polled;
        std::uint16_t nh = 0, nt = 0;
        for (std::uint16_t i = 0; i < n; ++i) {
            if (hw.is_heartwire(pkts[i])) mine[nh++] = pkts[i];
            else if (serving && echo_udp(pkts[i], me, primary, o.udp_port)) out[nt++] = pkts[i];
            else rte_pktmbuf_free(pkts[i]);
        }
        if (nh) hw.rx(mine, nh);
        if (nt) {
            const std::uint16_t sent = rte_eth_tx_burst(port, 0, out, nt);
            answered += sent;
            if (sent < nt) {
                dropped += nt - sent;
                rte_pktmbuf_free_bulk(out + sent, nt - sent);
            }
        }
        const std::uint64_t next = hw.poll(rx_empty);
        if (n == 0 && o.idle_ns != 0) {
            const std::uint64_t now = hw.now_ns();
            if (next > now) {
                const timespec ts{0, static_cast<long>(std::min(next - now, o.idle_ns))};
                nanosleep(&ts, nullptr);
            }
        }
    }
    hw.stop();
    std::string bye = "stopped, addresses released: ";
    bye.append(std::to_string(answered)).append(" requests answered, ").append(std::to_string(dropped));
    bye.append(" answers dropped, ").append(std::to_string(hw.status().takeovers)).append(" takeovers");
    say(bye.c_str());
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    // af_xdp maps its UMEM and loads an XDP program: both count against the locked-memory limit.
    const rlimit unlimited{RLIM_INFINITY, RLIM_INFINITY};
    setrlimit(RLIMIT_MEMLOCK, &unlimited);
    const int used = rte_eal_init(argc, argv);
    if (used < 0) rte_exit(EXIT_FAILURE, "rte_eal_init: %s\n", rte_strerror(rte_errno));
    argc -= used;
    argv += used;
    options o;
    if (!parse(argc, argv, o)) {
        std::fprintf(stderr, "usage: hw-embedded-echo [EAL args] -- --config FILE [--udp-port N] [--idle-us N]\n");
        rte_eal_cleanup();
        return 2;
    }
    if (rte_eth_dev_count_avail() < 1) rte_exit(EXIT_FAILURE, "no port: give one with --vdev or -a\n");
    std::uint16_t port = 0;
    RTE_ETH_FOREACH_DEV(port) break;

    struct sigaction sa{};
    sa.sa_handler = [](int) { quit = 1; };
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);

    rte_mempool* pool = start_port(port);
    int rc = 1;
    try {
        rc = serve(port, pool, o);
    } catch (const std::exception& ex) {
        std::fprintf(stderr, "hw-embedded-echo: %s\n", ex.what());
    }
    rte_eth_dev_stop(port);
    rte_eth_dev_close(port);
    rte_eal_cleanup();
    return rc;
}
