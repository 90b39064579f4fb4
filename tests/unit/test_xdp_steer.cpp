// heartwire's XDP steering program (bpf/heartwire_steer.bpf.c) in the real kernel: loaded
// through the verifier with libbpf, run on synthetic frames with BPF_PROG_TEST_RUN, and
// found on a veth by the daemon's handle (src/dpdk/xdp_steer) as the af_xdp PMD attaches it.
// Needs root (CAP_BPF, CAP_NET_ADMIN).
//
// With no AF_XDP socket in xsks_map a steered frame falls back to XDP_PASS, so the return
// code cannot tell the two apart: each decision is read from the hw_stats counters.

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <linux/bpf.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "dpdk/xdp_steer.hpp"
#include "netns_child.hpp"
#include "xdp_frames.hpp"

using namespace hwtest::xdp;
using heartwire::io::steer_counter;
using hwtest::ns_report;

namespace {

constexpr std::uint16_t our_id = 0x4857;

// The object as the PMD loads it: opened and loaded with libbpf, maps found by name.
class steer_object {
public:
    steer_object() {
        obj_ = bpf_object__open_file(HEARTWIRE_XDP_PROG, nullptr);
        if (!obj_) throw std::runtime_error(std::string("opening " HEARTWIRE_XDP_PROG ": ") + std::strerror(errno));
        if (const int rc = bpf_object__load(obj_); rc != 0)
            throw std::runtime_error(std::string("loading (verifier) " HEARTWIRE_XDP_PROG ": ") + std::strerror(-rc));
        bpf_program* p = bpf_object__find_program_by_name(obj_, HW_STEER_PROG_NAME);
        if (!p) throw std::runtime_error("no program " HW_STEER_PROG_NAME " in " HEARTWIRE_XDP_PROG);
        prog_fd = bpf_program__fd(p);
        xsks = map_fd(HW_STEER_MAP_XSKS);
        addrs4 = map_fd(HW_STEER_MAP_ADDRS4);
        addrs6 = map_fd(HW_STEER_MAP_ADDRS6);
        conf = map_fd(HW_STEER_MAP_CONF);
        stats = map_fd(HW_STEER_MAP_STATS);
    }
    ~steer_object() { bpf_object__close(obj_); }
    steer_object(const steer_object&) = delete;
    steer_object& operator=(const steer_object&) = delete;

    // The addresses a monitor watches: the primary's and its own, in both families.
    void watch_defaults() {
        watch4(primary4);
        watch4(monitor4);
        watch6(v6(0x100));
        watch6(v6(0x101));
        set_icmp_id(our_id);
    }
    void watch4(std::uint32_t host_order) {
        const std::uint32_t k = htonl(host_order);
        const std::uint8_t one = 1;
        if (bpf_map_update_elem(addrs4, &k, &one, BPF_ANY) != 0) throw std::runtime_error("hw_addrs4 update");
    }
    void watch6(const in6& a) {
        const std::uint8_t one = 1;
        if (bpf_map_update_elem(addrs6, a.data(), &one, BPF_ANY) != 0) throw std::runtime_error("hw_addrs6 update");
    }
    void set_icmp_id(std::uint16_t id) {
        const std::uint32_t zero = 0;
        hw_steer_conf c{};
        c.icmp_id = id;
        if (bpf_map_update_elem(conf, &zero, &c, BPF_ANY) != 0) throw std::runtime_error("hw_conf update");
    }

    std::array<std::uint64_t, HW_STEER_NR_COUNTERS> counters() const {
        std::array<std::uint64_t, HW_STEER_NR_COUNTERS> out{};
        std::vector<std::uint64_t> per_cpu(static_cast<std::size_t>(libbpf_num_possible_cpus()));
        for (std::uint32_t k = 0; k < HW_STEER_NR_COUNTERS; ++k) {
            if (bpf_map_lookup_elem(stats, &k, per_cpu.data()) != 0) throw std::runtime_error("hw_stats lookup");
            for (auto v : per_cpu) out[k] += v;
        }
        return out;
    }

    struct outcome {
        int rc{};             // of the test run itself
        std::uint32_t retval; // the XDP action
        std::optional<steer_counter> decision; // the one counter that moved, if exactly one did
        std::uint64_t moved{};                 // how many counts were added in all
    };
    outcome run(const bytes& frame) const {
        const auto before = counters();
        bpf_test_run_opts o{};
        o.sz = sizeof o;
        o.data_in = frame.data();
        o.data_size_in = static_cast<std::uint32_t>(frame.size());
        o.repeat = 1;
        outcome r{};
        r.rc = bpf_prog_test_run_opts(prog_fd, &o);
        r.retval = o.retval;
        const auto after = counters();
        for (std::size_t k = 0; k < after.size(); ++k) {
            const auto d = after[k] - before[k];
            r.moved += d;
            if (d == 1) r.decision = static_cast<steer_counter>(k);
        }
        if (r.moved != 1) r.decision.reset();
        return r;
    }

    int prog_fd{-1};
    int xsks{-1}, addrs4{-1}, addrs6{-1}, conf{-1}, stats{-1};

private:
    int map_fd(const char* name) {
        bpf_map* m = bpf_object__find_map_by_name(obj_, name);
        if (!m) throw std::runtime_error(std::string("no map ") + name + " in " HEARTWIRE_XDP_PROG);
        return bpf_map__fd(m);
    }
    bpf_object* obj_{};
};

std::string name(std::optional<steer_counter> c) { return c ? heartwire::io::to_string(*c) : "none or several"; }

struct frame_case {
    const char* what;
    bytes frame;
    steer_counter want;
    std::size_t needed{0}; // a steered frame: bytes the decision reads (shorter ones pass)
};

constexpr std::uint16_t tpid_q = 0x8100, tpid_ad = 0x88a8;

// An NA with the solicited flag set (S and O).
bytes solicited(bytes nd) {
    nd[4] = 0x60;
    return nd;
}

bytes heartwire_payload() { return bytes(40, 0x5a); }

std::vector<frame_case> cases() {
    const auto S_hw = steer_counter::steered_heartwire, S_arp = steer_counter::steered_arp,
               S_icmp = steer_counter::steered_icmp, S_nd = steer_counter::steered_nd,
               S_icmp6 = steer_counter::steered_icmp6, P = steer_counter::passed;
    const auto hw_group = mac{0x03, 0x68, 0x77, 0x00, 0x00, 0x01};
    const bytes echo_ours = icmp_echo(0, our_id);
    const auto echo_reply_to = [&](std::uint32_t dst, std::uint16_t id, const bytes& opts = {},
                                   std::uint16_t frag = 0x4000) {
        return cat(eth(0x0800, node_mac, other_mac), ipv4(1, primary4, dst, icmp_echo(0, id), opts, frag));
    };
    const bytes nop4{1, 1, 1, 1}; // four IP NOP options: IHL 6
    return {
        // heartwire's own frames, whoever they are for
        {"heartwire frame", cat(eth(0x88b5, hw_group, other_mac), heartwire_payload()), S_hw, 14},
        {"heartwire frame in an 802.1Q tag", cat(eth(0x88b5, hw_group, other_mac, {tpid_q}), heartwire_payload()),
         S_hw, 18},
        {"heartwire frame in QinQ (802.1ad outer, 802.1Q inner)",
         cat(eth(0x88b5, hw_group, other_mac, {tpid_ad, tpid_q}), heartwire_payload()), S_hw, 22},
        {"heartwire frame under two 802.1Q tags",
         cat(eth(0x88b5, hw_group, other_mac, {tpid_q, tpid_q}), heartwire_payload()), S_hw, 22},
        {"heartwire frame under three tags (more than the program parses)",
         cat(eth(0x88b5, hw_group, other_mac, {tpid_ad, tpid_q, tpid_q}), heartwire_payload()), P},
        // ARP: steered when a watched address is the sender's
        {"ARP reply from the holder of the primary address to a probe (target 0.0.0.0)",
         cat(eth(0x0806, node_mac, other_mac), arp(2, other_mac, primary4, node_mac, 0)), S_arp, 42},
        {"ARP reply from the holder to this host's kernel, which asked from an address of its own",
         cat(eth(0x0806, node_mac, other_mac), arp(2, other_mac, primary4, node_mac, client4)), P},
        {"gratuitous ARP request for the primary address",
         cat(eth(0x0806, bcast, other_mac), arp(1, other_mac, primary4, mac{}, primary4)), S_arp, 42},
        {"gratuitous ARP reply for the primary address",
         cat(eth(0x0806, bcast, other_mac), arp(2, other_mac, primary4, bcast, primary4)), S_arp, 42},
        {"another MAC claiming the monitor address",
         cat(eth(0x0806, bcast, other_mac), arp(2, other_mac, monitor4, bcast, monitor4)), S_arp, 42},
        {"ARP reply from the holder to a probe, 802.1Q tagged",
         cat(eth(0x0806, node_mac, other_mac, {tpid_q}), arp(2, other_mac, primary4, node_mac, 0)), S_arp, 46},
        {"ARP reply from the holder to a probe, padded to 60 bytes as a NIC sends it",
         cat(cat(eth(0x0806, node_mac, other_mac), arp(2, other_mac, primary4, node_mac, 0)), bytes(18, 0)), S_arp,
         42},
        {"ARP request from the holder of the monitor address for an ordinary address (its kernel resolving a neighbour: this host's kernel answers)",
         cat(eth(0x0806, bcast, other_mac), arp(1, other_mac, monitor4, mac{}, client4)), P},
        {"ARP request from the holder of the monitor address for the primary address",
         cat(eth(0x0806, bcast, other_mac), arp(1, other_mac, monitor4, mac{}, primary4)), S_arp, 42},
        {"client's ARP request for the primary address (the kernel answers)",
         cat(eth(0x0806, bcast, client_mac), arp(1, client_mac, client4, mac{}, primary4)), P},
        {"client's ARP reply to the kernel's request (the kernel's neighbour cache)",
         cat(eth(0x0806, node_mac, client_mac), arp(2, client_mac, client4, node_mac, primary4)), P},
        {"ARP probe (sender 0.0.0.0) for the primary address (the kernel defends it)",
         cat(eth(0x0806, bcast, other_mac), arp(1, other_mac, 0, mac{}, primary4)), P},
        {"ARP from a watched sender with a non-Ethernet hardware type",
         cat(eth(0x0806, bcast, other_mac), arp(2, other_mac, primary4, bcast, primary4, 6)), P},
        // IPv4 to the address a service listens on: the kernel's
        {"UDP datagram to the primary address",
         cat(eth(0x0800), ipv4(17, client4, primary4, udp(40000, 53, bytes(20, 1)))), P},
        {"TCP SYN to the primary address", cat(eth(0x0800), ipv4(6, client4, primary4, tcp_syn(40000, 80))), P},
        {"ICMP echo request to the primary address (the kernel answers)",
         cat(eth(0x0800), ipv4(1, client4, primary4, icmp_echo(8, our_id))), P},
        // the engine's pings
        {"echo reply with our id to the monitor address", echo_reply_to(monitor4, our_id), S_icmp, 42},
        {"echo reply with our id to the monitor address, 802.1Q tagged",
         cat(eth(0x0800, node_mac, other_mac, {tpid_q}), ipv4(1, primary4, monitor4, echo_ours)), S_icmp, 46},
        {"echo reply with our id behind IP options (IHL 6)", echo_reply_to(monitor4, our_id, nop4), S_icmp, 46},
        {"echo reply with another id (someone else's ping)", echo_reply_to(monitor4, 0x0101), P},
        {"echo reply with our id to an address nobody watches", echo_reply_to(other4, our_id), P},
        {"first fragment of an echo reply with our id (MF set)", echo_reply_to(monitor4, our_id, {}, 0x2000), P},
        {"later fragment of an echo reply (offset 8)", echo_reply_to(monitor4, our_id, {}, 0x0001), P},
        // IPv6 neighbour discovery and pings
        {"neighbour advertisement for a watched target",
         cat(eth(0x86dd, node_mac, other_mac), ipv6(58, link_local(2), v6(0x101), icmp6_nd(136, v6(0x100), other_mac))),
         S_nd, 78},
        {"unsolicited NA for a watched target, 802.1Q tagged",
         cat(eth(0x86dd, bcast, other_mac, {tpid_q}),
             ipv6(58, link_local(2), v6(0x1), icmp6_nd(136, v6(0x100), other_mac))),
         S_nd, 82},
        {"solicited NA for a watched target to an ordinary address (this host's kernel asked)",
         cat(eth(0x86dd, node_mac, other_mac), ipv6(58, v6(0x100), v6(0x10), solicited(icmp6_nd(136, v6(0x100), other_mac)))), P},
        {"solicited NA for a watched target to a watched address (the engine's)",
         cat(eth(0x86dd, node_mac, other_mac), ipv6(58, v6(0x100), v6(0x101), solicited(icmp6_nd(136, v6(0x100), other_mac)))),
         S_nd, 78},
        {"neighbour advertisement for another target",
         cat(eth(0x86dd, node_mac, other_mac), ipv6(58, link_local(2), v6(0x101), icmp6_nd(136, v6(0x50), other_mac))),
         P},
        {"neighbour solicitation from a node for a watched target (the kernel answers)",
         cat(eth(0x86dd, bcast, client_mac), ipv6(58, v6(0x10), v6(0x100), icmp6_nd(135, v6(0x100), client_mac))), P},
        {"duplicate address detection probe (source ::) for a watched target",
         cat(eth(0x86dd, bcast, other_mac),
             ipv6(58, unspecified, v6(0x100), icmp6_nd(135, v6(0x100), other_mac, false))),
         S_nd, 78},
        {"duplicate address detection probe for another target",
         cat(eth(0x86dd, bcast, other_mac), ipv6(58, unspecified, v6(0x50), icmp6_nd(135, v6(0x50), other_mac, false))),
         P},
        {"ICMPv6 echo reply with our id to a watched address",
         cat(eth(0x86dd, node_mac, other_mac), ipv6(58, v6(0x100), v6(0x101), icmp_echo(129, our_id))), S_icmp6, 62},
        {"ICMPv6 echo reply with another id", cat(eth(0x86dd), ipv6(58, v6(0x100), v6(0x101), icmp_echo(129, 7))), P},
        {"ICMPv6 echo reply with our id to an address nobody watches",
         cat(eth(0x86dd), ipv6(58, v6(0x100), v6(0x50), icmp_echo(129, our_id))), P},
        {"ICMPv6 echo request to a watched address (the kernel answers)",
         cat(eth(0x86dd), ipv6(58, v6(0x10), v6(0x100), icmp_echo(128, our_id))), P},
        {"NA behind a hop-by-hop header (only a direct ICMPv6 header is parsed)",
         cat(eth(0x86dd, node_mac, other_mac),
             ipv6(0, link_local(2), v6(0x101),
                  cat(bytes{58, 0, 1, 4, 0, 0, 0, 0}, icmp6_nd(136, v6(0x100), other_mac)))),
         P},
        {"UDP over IPv6 to a watched address", cat(eth(0x86dd), ipv6(17, v6(0x10), v6(0x100), bytes(16, 0))), P},
        {"LLDP frame", cat(eth(0x88cc, mac{0x01, 0x80, 0xc2, 0, 0, 0x0e}, other_mac), bytes(30, 0)), P},
    };
}

} // namespace

TEST(XdpSteer, TheVerifierAcceptsTheProgramAndItsMapsHaveTheLayoutsThePmdAndTheDaemonExpect) {
    steer_object o;
    bpf_map_info mi{};
    std::uint32_t len = sizeof mi;
    ASSERT_EQ(bpf_obj_get_info_by_fd(o.xsks, &mi, &len), 0);
    EXPECT_EQ(mi.type, BPF_MAP_TYPE_XSKMAP);
    EXPECT_EQ(mi.key_size, 4u);
    EXPECT_EQ(mi.max_entries, 64u);
    mi = {};
    len = sizeof mi;
    ASSERT_EQ(bpf_obj_get_info_by_fd(o.stats, &mi, &len), 0);
    EXPECT_EQ(mi.type, BPF_MAP_TYPE_PERCPU_ARRAY);
    EXPECT_EQ(mi.max_entries, static_cast<std::uint32_t>(HW_STEER_NR_COUNTERS));
    bpf_prog_info pi{};
    len = sizeof pi;
    ASSERT_EQ(bpf_obj_get_info_by_fd(o.prog_fd, &pi, &len), 0);
    EXPECT_STREQ(pi.name, HW_STEER_PROG_NAME);
    EXPECT_EQ(pi.type, BPF_PROG_TYPE_XDP);
}

TEST(XdpSteer, EachFrameIsSteeredOrPassedAsTheRulesSay) {
    steer_object o;
    o.watch_defaults();
    for (const auto& c : cases()) {
        const auto r = o.run(c.frame);
        ASSERT_EQ(r.rc, 0) << c.what << ": test run failed";
        // No socket in xsks_map: even a steered frame falls back to the kernel.
        EXPECT_EQ(r.retval, XDP_PASS) << c.what;
        EXPECT_EQ(r.moved, 1u) << c.what << ": one decision, one count";
        EXPECT_EQ(name(r.decision), name(c.want)) << c.what;
    }
}

TEST(XdpSteer, EveryTruncationOfEveryFrameIsPassedUntilItHoldsWhatTheDecisionReads) {
    steer_object o;
    o.watch_defaults();
    for (const auto& c : cases()) {
        // The kernel's test run wants a whole Ethernet header; a real driver gives no less.
        for (std::size_t len = 14; len < c.frame.size(); ++len) {
            const bytes cut(c.frame.begin(), c.frame.begin() + static_cast<std::ptrdiff_t>(len));
            const auto want = c.want != steer_counter::passed && len >= c.needed ? c.want : steer_counter::passed;
            const auto r = o.run(cut);
            ASSERT_EQ(r.rc, 0) << c.what << " cut to " << len;
            EXPECT_EQ(r.retval, XDP_PASS) << c.what << " cut to " << len;
            EXPECT_EQ(name(r.decision), name(want)) << c.what << " cut to " << len << " bytes";
        }
    }
}

TEST(XdpSteer, WithNoEchoIdAndNoWatchedAddressOnlyHeartwireFramesAreSteered) {
    steer_object o; // empty maps: the state right after the PMD loaded it
    for (const auto& c : cases()) {
        const auto r = o.run(c.frame);
        ASSERT_EQ(r.rc, 0) << c.what;
        const auto want = c.want == steer_counter::steered_heartwire ? c.want : steer_counter::passed;
        EXPECT_EQ(name(r.decision), name(want)) << c.what;
    }
    // icmp_id 0 means none, even for a reply that carries id 0.
    o.watch4(monitor4);
    o.set_icmp_id(0);
    const auto r = o.run(cat(eth(0x0800), ipv4(1, primary4, monitor4, icmp_echo(0, 0))));
    EXPECT_EQ(name(r.decision), name(steer_counter::passed));
}

// ---- the daemon's handle, on a veth in a private namespace ----------------------------------

namespace {

std::string open_error(const std::string& ifname) {
    try {
        heartwire::io::xdp_steer::open(ifname);
        return "";
    } catch (const std::exception& e) {
        return e.what();
    }
}

bool mentions(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

std::uint32_t prog_id(int fd) {
    bpf_prog_info pi{};
    std::uint32_t len = sizeof pi;
    return bpf_obj_get_info_by_fd(fd, &pi, &len) == 0 ? pi.id : 0;
}

// r0 = XDP_PASS; exit. Another XDP program, under whatever name.
int trivial_xdp_prog(const char* prog_name) {
    const bpf_insn insns[] = {
        {BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, XDP_PASS},
        {BPF_JMP | BPF_EXIT, 0, 0, 0, 0},
    };
    return bpf_prog_load(BPF_PROG_TYPE_XDP, prog_name, "GPL", insns, 2, nullptr);
}

int ifindex(const char* name) { return static_cast<int>(::if_nametoindex(name)); }

} // namespace

TEST(XdpSteer, OpenFindsTheProgramAttachedAsThePmdDoesAndItsMapsAreTheProgramsOwn) {
    hwtest::run_in_private_netns([](ns_report& r) {
        r.check("veth hwx0/hwx0p", std::system("ip link add hwx0 type veth peer name hwx0p"), 0);
        r.check("links up", std::system("ip link set hwx0 up && ip link set hwx0p up"), 0);
        try {
            steer_object o;
            // The PMD's call: no mode flag, so veth takes it in driver (native) mode.
            r.check("attach as the PMD does", bpf_xdp_attach(ifindex("hwx0"), o.prog_fd, XDP_FLAGS_UPDATE_IF_NOEXIST,
                                                             nullptr),
                    0);
            auto h = heartwire::io::xdp_steer::open("hwx0");
            r.note("found the attached program", h.prog_id() == prog_id(o.prog_fd));
            r.note("veth runs it in driver mode", std::string(h.mode()) == "driver");

            const heartwire::ipv4_addr primary{primary4};
            h.add(primary);
            const std::uint32_t key = htonl(primary4);
            std::uint8_t v = 0;
            r.check("added address is in hw_addrs4, network byte order",
                    bpf_map_lookup_elem(o.addrs4, &key, &v), 0);
            r.note("handle sees it too", h.contains(primary));
            h.add(primary); // again: no-op
            h.remove(primary);
            r.check("removed address is gone", bpf_map_lookup_elem(o.addrs4, &key, &v) == 0, 0);
            h.remove(primary); // again: no-op
            r.note("handle sees it gone", !h.contains(primary));

            const auto a6 = v6(0x100);
            h.add(a6);
            r.check("added IPv6 address is in hw_addrs6", bpf_map_lookup_elem(o.addrs6, a6.data(), &v), 0);
            r.note("handle sees the IPv6 address", h.contains(a6));
            h.remove(a6);
            r.note("IPv6 address removed", !h.contains(a6));

            h.set_icmp_id(our_id);
            const std::uint32_t zero = 0;
            hw_steer_conf conf{};
            r.check("hw_conf readable", bpf_map_lookup_elem(o.conf, &zero, &conf), 0);
            r.check("echo id stored in host order", conf.icmp_id, our_id);
            r.check("handle reads the echo id back", h.icmp_id(), our_id);

            // The counters the handle reports are the program's: steer an ARP claim.
            h.add(heartwire::ipv4_addr{monitor4});
            const auto before = h.stats();
            auto moved = std::move(h); // move-only; the moved-to handle works
            const auto res = o.run(cat(eth(0x0806, bcast, other_mac), arp(2, other_mac, monitor4, bcast, monitor4)));
            r.check("test run", res.rc, 0);
            const auto after = moved.stats();
            r.check("steered_arp counted through the handle",
                    static_cast<long>(after[steer_counter::steered_arp] - before[steer_counter::steered_arp]), 1);
            r.check("nothing passed", static_cast<long>(after[steer_counter::passed] - before[steer_counter::passed]),
                    0);
        } catch (const std::exception& e) {
            r.note(std::string("unexpected exception: ") + e.what(), false);
        }
    });
}

TEST(XdpSteer, OpenFindsTheProgramInGenericModeToo) {
    hwtest::run_in_private_netns([](ns_report& r) {
        r.check("veth hwx1/hwx1p", std::system("ip link add hwx1 type veth peer name hwx1p && ip link set hwx1 up"),
                0);
        try {
            steer_object o;
            r.check("attach in skb mode",
                    bpf_xdp_attach(ifindex("hwx1"), o.prog_fd, XDP_FLAGS_SKB_MODE | XDP_FLAGS_UPDATE_IF_NOEXIST,
                                   nullptr),
                    0);
            auto h = heartwire::io::xdp_steer::open("hwx1");
            r.note("found the attached program", h.prog_id() == prog_id(o.prog_fd));
            r.note("reported as generic", std::string(h.mode()) == "generic");
        } catch (const std::exception& e) {
            r.note(std::string("unexpected exception: ") + e.what(), false);
        }
    });
}

TEST(XdpSteer, OpenFailsClearlyWithoutTheProgram) {
    hwtest::run_in_private_netns([](ns_report& r) {
        r.check("veths", std::system("ip link add hwx2 type veth peer name hwx2p && "
                                     "ip link add hwx3 type veth peer name hwx3p && "
                                     "ip link set hwx2 up && ip link set hwx3 up"),
                0);
        const std::string none = open_error("hwx2");
        r.note("no program: fails naming the interface (" + none + ")", mentions(none, "hwx2"));
        r.note("no program: says so", mentions(none, "no XDP program"));

        const std::string missing = open_error("hwx9");
        r.note("no interface: fails naming it (" + missing + ")", mentions(missing, "hwx9"));
        r.note("no interface: says so", mentions(missing, "no such interface"));

        const int other = trivial_xdp_prog("other_prog");
        r.note("loaded another XDP program", other >= 0);
        r.check("attached it", bpf_xdp_attach(ifindex("hwx2"), other, 0, nullptr), 0);
        const std::string foreign = open_error("hwx2");
        r.note("another program: fails naming the interface (" + foreign + ")", mentions(foreign, "hwx2"));
        r.note("another program: names it", mentions(foreign, "\"other_prog\""));

        // Our name but none of our maps: an object from elsewhere.
        const int impostor = trivial_xdp_prog(HW_STEER_PROG_NAME);
        r.note("loaded a mapless " HW_STEER_PROG_NAME, impostor >= 0);
        r.check("attached it", bpf_xdp_attach(ifindex("hwx3"), impostor, 0, nullptr), 0);
        const std::string mapless = open_error("hwx3");
        r.note("missing map: fails naming the interface (" + mapless + ")", mentions(mapless, "hwx3"));
        r.note("missing map: names the map", mentions(mapless, "no map " HW_STEER_MAP_ADDRS4));
        ::close(other);
        ::close(impostor);
    });
}
