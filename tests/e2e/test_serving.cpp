// The address heartwire moves carrying real traffic (issue 9): an 802.1Q-tagged pair, and
// kernel services (TCP and UDP) behind the address on af_xdp with heartwire's steering XDP
// program, answering after every failover; the layouts on a real NIC (a dedicated
// heartbeat port with the service on another interface, and the bifurcated NIC's rte_flow
// steering refused where the PMD cannot do it).
#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <thread>

#include "attacker.hpp"
#include "cluster.hpp"

using namespace heartwire::e2e;
using heartwire::ipv4_addr;
using heartwire::mac_addr;
namespace wire = heartwire::wire;
using namespace std::chrono_literals;

namespace {

// The kernel here has no 802.1Q module (no VLAN interfaces), so the VLAN client is a raw
// port: it sends tagged ARP and echo requests built with the product's codec and reads the
// tags of what comes back (PACKET_AUXDATA, or in line).
bytes tagged(bytes f, std::uint16_t vid) {
    const std::byte tag[4] = {std::byte{0x81}, std::byte{0x00}, std::byte(vid >> 8), std::byte(vid & 0xff)};
    f.insert(f.begin() + 12, std::begin(tag), std::end(tag));
    return f;
}

bytes arp_request(const mac_addr& me, const char* target) {
    wire::arp_msg m;
    m.op = wire::arp_op_request;
    m.sha = me;
    m.spa = *ipv4_addr::parse(topology::client_ip);
    m.tpa = *ipv4_addr::parse(target);
    bytes f(64);
    f.resize(wire::encode_arp(mac_addr::broadcast(), me, m, f));
    return f;
}

bytes echo_request(const mac_addr& dst, const mac_addr& me, const char* target) {
    wire::icmp_echo m;
    m.src = *ipv4_addr::parse(topology::client_ip);
    m.dst = *ipv4_addr::parse(target);
    m.id = 0x7777;
    m.seq = 1;
    bytes f(128);
    f.resize(wire::encode_icmp_echo(dst, me, m, f));
    return f;
}

// The first frame within `t` that `want` accepts (decoded by the product's codec).
template <class Want>
std::optional<captured> expect_frame(raw_port& p, std::chrono::milliseconds t, Want&& want) {
    const auto until = std::chrono::steady_clock::now() + t;
    while (std::chrono::steady_clock::now() < until) {
        auto c = p.recv(50ms);
        if (!c || c->outgoing) continue;
        const wire::frame f = wire::decode(c->frame);
        if (f.ok() && want(*c, f)) return c;
    }
    return std::nullopt;
}

} // namespace

// Heartbeats, ARP, GARP and echo all tagged (port.vlan = 100): the pair forms inside VLAN
// 100 (both engines drop untagged frames, so forming proves the tagged heartbeats), answers
// a tagged client, ignores untagged requests (counted), and fails over with a tagged GARP.
TEST(Serving, TaggedVlanPairServesItsVlanOnlyAndFailsOver) {
    node_options o;
    o.pmd = "net_af_packet";
    o.vlan = 100;
    cluster c({"a", "b"});
    for (const auto& [n, core] : {std::pair{"a", "0"}, std::pair{"b", "1"}}) {
        node_options oi = o;
        oi.lcores = core;
        c.write_config(n, n[0] == 'a' ? 1 : 2, oi);
    }
    // The client's kernel must not answer or learn anything itself: it keeps no address.
    ASSERT_TRUE(c.net().exec_on(topology::client, "ip addr flush dev eth0").ok());
    raw_port client(c.net().client_ns(), ETH_P_ALL);
    const mac_addr me = *mac_addr::parse(c.net().mac_of(topology::client));
    const mac_addr mac_a = *mac_addr::parse(c.net().mac_of("a")), mac_b = *mac_addr::parse(c.net().mac_of("b"));
    const ipv4_addr prim = *ipv4_addr::parse(primary_ip);
    auto arp_reply_from = [&](const mac_addr& who) {
        return [&, who](const captured& cap, const wire::frame& f) {
            return f.kind == wire::frame_kind::arp && f.arp.op == wire::arp_op_reply && f.arp.spa == prim &&
                   f.arp.sha == who && cap.vlan == 100;
        };
    };
    c.start("a");
    ASSERT_TRUE(c.wait_role("a", "primary")) << c.logs();
    c.start("b");
    ASSERT_TRUE(c.wait_role("b", "monitor")) << "tagged heartbeats form the pair\n" << c.logs();

    client.drain();
    ASSERT_TRUE(client.send(arp_request(me, primary_ip)));
    EXPECT_FALSE(expect_frame(client, 300ms, [&](const captured&, const wire::frame& f) {
        return f.kind == wire::frame_kind::arp && f.arp.op == wire::arp_op_reply && f.arp.spa == prim;
    })) << "an untagged ARP request must not be answered";
    EXPECT_GT(c.counter("a", "io_rx_other_vlan"), 0u) << "untagged frames are counted as another VLAN's";

    ASSERT_TRUE(client.send(tagged(arp_request(me, primary_ip), 100)));
    EXPECT_TRUE(expect_frame(client, 2s, arp_reply_from(mac_a))) << "tagged ARP answered, tagged, by the primary\n" << c.logs();
    ASSERT_TRUE(client.send(tagged(echo_request(mac_a, me, primary_ip), 100)));
    EXPECT_TRUE(expect_frame(client, 2s, [&](const captured& cap, const wire::frame& f) {
        return f.kind == wire::frame_kind::icmp_echo && f.echo.is_reply && f.echo.src == prim && cap.vlan == 100;
    })) << "tagged echo answered, tagged";
    // The monitor's tagged heartbeats cross the bridge too (the client sees them flooded).
    EXPECT_TRUE(expect_frame(client, 2s, [&](const captured& cap, const wire::frame& f) {
        return f.kind == wire::frame_kind::heartbeat && cap.vlan == 100;
    })) << "heartbeats on the wire carry VLAN 100";

    client.drain();
    c.stop("a", SIGKILL);
    EXPECT_TRUE(expect_frame(client, 5s, [&](const captured& cap, const wire::frame& f) {
        return f.kind == wire::frame_kind::arp && f.arp.is_gratuitous() && f.arp.spa == prim && f.arp.sha == mac_b &&
               cap.vlan == 100;
    })) << "the new primary's GARP is tagged\n" << c.logs();
    ASSERT_TRUE(c.wait_role("b", "primary")) << c.logs();
    ASSERT_TRUE(client.send(tagged(arp_request(me, primary_ip), 100)));
    EXPECT_TRUE(expect_frame(client, 2s, arp_reply_from(mac_b))) << "the new primary answers in VLAN 100";
    EXPECT_GE(c.counter("b", "takeovers"), 1u);
}

namespace {

// heartwire-load at the primary address from the client: `args` after the target.
exec_result load(cluster& c, const std::string& args) {
    return c.net().exec_on(topology::client,
                           std::string(LOAD_PATH) + " --target " + primary_ip + " --port 7000 " + args);
}

} // namespace

// The recommended mode for kernel services: af_xdp with heartwire's steering XDP program.
// The kernel (and a TCP and UDP service in each node) serves the primary address, the
// engine sees only its own frames, and after every SIGKILL of the primary the service
// answers on the new primary, with the dead node's kernel no longer holding the address.
TEST(Serving, KernelServiceBehindSteeredAfXdpAnswersAfterEveryFailover) {
    node_options o;
    o.pmd = "net_af_xdp";
    o.mode = "shared";
    cluster c({"a", "b"});
    for (const auto& [n, core] : {std::pair{"a", "0"}, std::pair{"b", "1"}}) {
        node_options oi = o;
        oi.lcores = core;
        c.write_config(n, n[0] == 'a' ? 1 : 2, oi);
    }
    process svc_a(c.net().ns_name("a"), {ECHO_PATH, "--port", "7000"}, c.dir() + "/svc_a.log");
    process svc_b(c.net().ns_name("b"), {ECHO_PATH, "--port", "7000"}, c.dir() + "/svc_b.log");
    ASSERT_NO_FATAL_FAILURE(form_pair(c, "a", "b"));
    {
        const auto r = load(c, "--requests 20 --tcp-interval-ms 2");
        ASSERT_TRUE(r.ok()) << "the service answers on the primary address before any failover\n" << r.out << r.err << c.logs();
    }
    // What the steering program decided: heartwire's frames to DPDK, the service's to the kernel.
    const auto st = c.status("a");
    ASSERT_TRUE(st);
    EXPECT_GT(std::stoull(json_value(*st, "steered_heartwire").empty() ? "0" : json_value(*st, "steered_heartwire")), 0u) << *st;
    EXPECT_GT(std::stoull(json_value(*st, "passed").empty() ? "0" : json_value(*st, "passed")), 0u) << *st;

    std::string primary = "a", monitor = "b";
    for (int round = 1; round <= 3; ++round) {
        c.stop(primary, SIGKILL);
        ASSERT_TRUE(c.wait_role(monitor, "primary")) << "round " << round << "\n" << c.logs();
        // The dead engine's guard took the address off its kernel: only the new primary serves.
        EXPECT_TRUE(wait_until(
            [&] { return !c.net().exec_on(primary, "ip -o addr show dev eth0 | grep -q ' " + std::string(primary_ip) + "/'").ok(); },
            5s))
            << "round " << round << ": the killed node's kernel still holds " << primary_ip;
        const auto r = load(c, "--requests 20 --tcp-interval-ms 2 --timeout-ms 2000");
        EXPECT_TRUE(r.ok()) << "round " << round << ": the service does not answer after the failover\n" << r.out << r.err;
        EXPECT_TRUE(wait_until([&] { return arp_mac(c.net().client_ns(), primary_ip) == c.net().mac_of(monitor); }, 10s))
            << "round " << round;
        c.start(primary);
        ASSERT_TRUE(c.wait_role(primary, "monitor")) << "round " << round << ": the killed node rejoins\n" << c.logs();
        std::swap(primary, monitor);
    }
}

namespace {

constexpr const char* primary6 = "fd00:6877::100";
constexpr const char* monitor6 = "fd00:6877::101";

// IPv6 on in a namespace the topology made with it off; `addr` (with /64) on eth0, no DAD.
void enable_ipv6(cluster& c, const std::string& node, const std::string& addr) {
    std::string cmd = "echo 0 > /proc/sys/net/ipv6/conf/all/disable_ipv6 && echo 0 > /proc/sys/net/ipv6/conf/eth0/disable_ipv6";
    if (!addr.empty()) cmd += " && ip -6 addr add " + addr + " dev eth0 nodad";
    const auto r = c.net().exec_on(node, cmd);
    ASSERT_TRUE(r.ok()) << node << ": " << r.err;
}

std::string neigh6_mac(cluster& c) {
    const auto r = c.net().exec_on(topology::client, std::string("ip -6 neigh show ") + primary6 + " dev eth0");
    const auto at = r.out.find("lladdr ");
    return at == std::string::npos ? std::string{} : r.out.substr(at + 7, 17);
}

int ping6(cluster& c, int count) {
    const auto r = c.net().exec_on(topology::client, "ping -6 -c " + std::to_string(count) + " -i 0.2 -W 1 " + primary6 +
                                                         " | grep -o '[0-9]* received' | cut -d' ' -f1");
    return r.out.empty() ? 0 : std::atoi(r.out.c_str());
}

} // namespace

// IPv6 addresses move with the role: the pair holds fd00:6877::100 with the primary role.
// Exclusive: the engine answers the client's neighbour solicitation and ping6 and announces
// the address by unsolicited NA on a takeover. Shared (af_xdp, steered): the kernel serves
// it, the engine adds it by netlink and sends the NA. Either way, after a SIGKILL of the
// primary the client's neighbour cache names the new primary and its ping6 is answered.
class ServingIpv6 : public ::testing::TestWithParam<std::string> {};

TEST_P(ServingIpv6, ClientNeighbourEntryMovesToTheNewPrimaryAndPing6Answers) {
    node_options o;
    o.mode = GetParam();
    o.primary6 = primary6;
    o.monitor6 = monitor6;
    cluster c({"a", "b"});
    for (const auto& [n, core] : {std::pair{"a", "0"}, std::pair{"b", "1"}}) {
        node_options oi = o;
        oi.lcores = core;
        c.write_config(n, n[0] == 'a' ? 1 : 2, oi);
    }
    ASSERT_NO_FATAL_FAILURE(enable_ipv6(c, topology::client, "fd00:6877::10/64"));
    if (o.mode == "shared") {
        ASSERT_NO_FATAL_FAILURE(enable_ipv6(c, "a", ""));
        ASSERT_NO_FATAL_FAILURE(enable_ipv6(c, "b", ""));
    }
    ASSERT_NO_FATAL_FAILURE(form_pair(c, "a", "b"));
    EXPECT_GT(ping6(c, 3), 0) << "ping6 to the primary's IPv6 address\n" << c.logs();
    EXPECT_EQ(neigh6_mac(c), c.net().mac_of("a"));
    if (o.mode == "shared") {
        EXPECT_TRUE(c.net().exec_on("a", std::string("ip -6 -o addr show dev eth0 | grep -q ") + primary6).ok())
            << "the kernel holds the IPv6 address";
    }

    c.stop("a", SIGKILL);
    ASSERT_TRUE(c.wait_role("b", "primary")) << c.logs();
    EXPECT_TRUE(wait_until([&] { return neigh6_mac(c) == c.net().mac_of("b"); }, 10s))
        << "client's IPv6 neighbour entry: " << neigh6_mac(c) << ", want " << c.net().mac_of("b") << "\n" << c.logs();
    EXPECT_GT(ping6(c, 3), 0) << "ping6 answered by the new primary\n" << c.logs();
    EXPECT_GT(c.counter("b", "nas_sent"), 0u);
}

INSTANTIATE_TEST_SUITE_P(Modes, ServingIpv6, ::testing::Values("exclusive", "shared"));

namespace {

// The role of group `id` in a node's status ("groups":[{"id":10,"role":"primary",...}]).
std::string group_role(cluster& c, const std::string& node, unsigned id) {
    const auto st = c.status(node);
    if (!st) return {};
    const std::string key = "{\"id\":" + std::to_string(id) + ",\"role\":\"";
    const auto at = st->find(key);
    if (at == std::string::npos) return {};
    const auto from = at + key.size();
    return st->substr(from, st->find('"', from) - from);
}

} // namespace

// Two address groups on one engine, each with its own addresses, roles and health: a's
// application check for group 20 fails, and only group 20 moves to b; group 10 stays on a.
TEST(Serving, TwoGroupsOnOneEngineFailOverIndependently) {
    cluster c({"a", "b"});
    const std::string groups =
        "[[group]]\nid = 10\nprimary = \"169.254.10.100/24\"\nmonitor = \"169.254.10.101/24\"\nhealth = []\n\n"
        "[[group]]\nid = 20\nprimary = \"169.254.10.110/24\"\nmonitor = \"169.254.10.111/24\"\nhealth = [\"app20\"]\n";
    for (const auto& [n, core] : {std::pair{"a", "0"}, std::pair{"b", "1"}}) {
        node_options o;
        o.lcores = core;
        o.groups_toml = groups;
        const std::string ok = c.dir() + "/" + n + "-app20.ok";
        std::ofstream(ok) << "up\n";
        const std::string check = write_script(c.dir() + "/" + n + "-app20.sh", "test -f " + ok);
        o.extra_toml = "[[health]]\nname = \"app20\"\nkind = \"script\"\ntarget = \"" + check +
                       "\"\ninterval_ms = 50\nrise = 2\nfall = 2\n";
        c.write_config(n, n[0] == 'a' ? 1 : 2, o);
    }
    c.start("a");
    ASSERT_TRUE(wait_until([&] { return group_role(c, "a", 10) == "primary" && group_role(c, "a", 20) == "primary"; }, 10s))
        << c.logs();
    c.start("b");
    ASSERT_TRUE(wait_until([&] { return group_role(c, "b", 10) == "monitor" && group_role(c, "b", 20) == "monitor"; }, 10s))
        << c.logs();
    ASSERT_GT(ping(c.net().client_ns(), "169.254.10.100", 2, 5s), 0) << c.logs();
    ASSERT_GT(ping(c.net().client_ns(), "169.254.10.110", 2, 5s), 0) << c.logs();
    EXPECT_EQ(arp_mac(c.net().client_ns(), "169.254.10.110"), c.net().mac_of("a"));

    std::remove((c.dir() + "/a-app20.ok").c_str()); // a's application for group 20 fails
    EXPECT_TRUE(wait_until([&] { return group_role(c, "b", 20) == "primary"; }, 10s)) << "group 20 moves to b\n" << c.logs();
    EXPECT_TRUE(wait_until([&] { return group_role(c, "a", 20) == "fault"; }, 10s)) << c.logs();
    EXPECT_EQ(group_role(c, "a", 10), "primary") << "group 10 stays on a";
    EXPECT_EQ(group_role(c, "b", 10), "monitor");
    EXPECT_GT(ping(c.net().client_ns(), "169.254.10.110", 2, 5s), 0);
    EXPECT_TRUE(wait_until([&] { return arp_mac(c.net().client_ns(), "169.254.10.110") == c.net().mac_of("b"); }, 10s))
        << "group 20's address now at b";
    EXPECT_GT(ping(c.net().client_ns(), "169.254.10.100", 2, 5s), 0);
    EXPECT_EQ(arp_mac(c.net().client_ns(), "169.254.10.100"), c.net().mac_of("a")) << "group 10's address stays at a";

    // And a SIGKILL moves what a still holds: group 10 to b, by the node-wide engine-down notice.
    const auto notices = c.counter("b", "notice_takeovers");
    c.stop("a", SIGKILL);
    EXPECT_TRUE(wait_until([&] { return group_role(c, "b", 10) == "primary"; }, 10s)) << c.logs();
    EXPECT_GT(ping(c.net().client_ns(), "169.254.10.100", 2, 5s), 0);
    EXPECT_TRUE(wait_until([&] { return c.counter("b", "notice_takeovers") > notices; }, 2s))
        << "group 10 moved on the node-wide engine-down notice, not the window";
}

// A VLAN per group: group 10 in VLAN 100, group 20 in VLAN 200, on one engine each. Each
// group's heartbeats, ARP answers and GARPs carry its own tag; an address is not answered
// in the other group's VLAN; a SIGKILL moves both, each announced in its VLAN.
TEST(Serving, EachGroupInItsOwnVlan) {
    cluster c({"a", "b"});
    const std::string groups =
        "[[group]]\nid = 10\nprimary = \"169.254.10.100/24\"\nmonitor = \"169.254.10.101/24\"\nvlan = 100\n\n"
        "[[group]]\nid = 20\nprimary = \"169.254.10.110/24\"\nmonitor = \"169.254.10.111/24\"\nvlan = 200\n";
    for (const auto& [n, core] : {std::pair{"a", "0"}, std::pair{"b", "1"}}) {
        node_options o;
        o.pmd = "net_af_packet";
        o.lcores = core;
        o.groups_toml = groups;
        c.write_config(n, n[0] == 'a' ? 1 : 2, o);
    }
    ASSERT_TRUE(c.net().exec_on(topology::client, "ip addr flush dev eth0").ok());
    raw_port client(c.net().client_ns(), ETH_P_ALL);
    const mac_addr me = *mac_addr::parse(c.net().mac_of(topology::client));
    const mac_addr mac_a = *mac_addr::parse(c.net().mac_of("a")), mac_b = *mac_addr::parse(c.net().mac_of("b"));
    c.start("a");
    ASSERT_TRUE(wait_until([&] { return group_role(c, "a", 10) == "primary" && group_role(c, "a", 20) == "primary"; }, 10s))
        << c.logs();
    c.start("b");
    ASSERT_TRUE(wait_until([&] { return group_role(c, "b", 10) == "monitor" && group_role(c, "b", 20) == "monitor"; }, 10s))
        << "each group's tagged heartbeats form it\n" << c.logs();
    auto reply = [&](const char* addr, const mac_addr& who, std::uint16_t vid) {
        return [&, addr, who, vid](const captured& cap, const wire::frame& f) {
            return f.kind == wire::frame_kind::arp && f.arp.op == wire::arp_op_reply && f.arp.spa == *ipv4_addr::parse(addr) &&
                   f.arp.sha == who && cap.vlan == vid;
        };
    };
    client.drain();
    ASSERT_TRUE(client.send(tagged(arp_request(me, "169.254.10.110"), 100)));
    EXPECT_FALSE(expect_frame(client, 300ms, [&](const captured&, const wire::frame& f) {
        return f.kind == wire::frame_kind::arp && f.arp.op == wire::arp_op_reply && f.arp.spa == *ipv4_addr::parse("169.254.10.110");
    })) << "group 20's address is not answered in group 10's VLAN";
    ASSERT_TRUE(client.send(tagged(arp_request(me, "169.254.10.100"), 100)));
    EXPECT_TRUE(expect_frame(client, 2s, reply("169.254.10.100", mac_a, 100))) << c.logs();
    ASSERT_TRUE(client.send(tagged(arp_request(me, "169.254.10.110"), 200)));
    EXPECT_TRUE(expect_frame(client, 2s, reply("169.254.10.110", mac_a, 200))) << c.logs();

    client.drain();
    c.stop("a", SIGKILL);
    bool garp100 = false, garp200 = false;
    expect_frame(client, 5s, [&](const captured& cap, const wire::frame& f) {
        if (f.kind != wire::frame_kind::arp || !f.arp.is_gratuitous() || f.arp.sha != mac_b) return false;
        if (f.arp.spa == *ipv4_addr::parse("169.254.10.100") && cap.vlan == 100) garp100 = true;
        if (f.arp.spa == *ipv4_addr::parse("169.254.10.110") && cap.vlan == 200) garp200 = true;
        return garp100 && garp200;
    });
    EXPECT_TRUE(garp100) << "group 10's GARP from b, tagged 100\n" << c.logs();
    EXPECT_TRUE(garp200) << "group 20's GARP from b, tagged 200";
    EXPECT_TRUE(wait_until([&] { return group_role(c, "b", 10) == "primary" && group_role(c, "b", 20) == "primary"; }, 10s));
}

// ---------------------------------------------------------------- layouts on a real NIC

namespace {

// The heartbeat link as the client's eth0 sees it (on br0, no address: it only listens),
// for the whole test: a thread drains the socket, so a minute of heartbeats cannot fill its
// buffer and hide a late GARP.
class link_watcher {
public:
    explicit link_watcher(const std::string& ns) : port_(ns, ETH_P_ALL), t_([this] { run(); }) {}
    ~link_watcher() {
        stop_ = true;
        t_.join();
    }
    std::uint64_t garps() const { return garps_; }
    std::uint64_t heartbeats() const { return heartbeats_; }

private:
    void run() {
        while (!stop_) {
            const auto c = port_.recv(50ms);
            if (!c) continue;
            const wire::frame f = wire::decode(c->frame);
            if (f.kind == wire::frame_kind::heartbeat) ++heartbeats_;
            if (f.kind == wire::frame_kind::arp && f.arp.is_gratuitous()) ++garps_;
        }
    }
    raw_port port_;
    std::atomic<bool> stop_{false};
    std::atomic<std::uint64_t> garps_{0};
    std::atomic<std::uint64_t> heartbeats_{0};
    std::thread t_;
};

bool kernel_holds(cluster& c, const std::string& node, const std::string& ifname, const char* addr) {
    return c.net().exec_on(node, "ip -o addr show dev " + ifname + " | grep -q ' " + std::string(addr) + "/'").ok();
}

} // namespace

// A dedicated heartbeat port: the engines probe each other on eth0 (net_af_packet, br0),
// the service address lives on svc0 (br1, with the client), which heartwire manages by
// netlink and announces on itself. After a SIGKILL of the primary and after an operator
// switchover, the client's ARP entry names the survivor's svc0 MAC (never an eth0 one), a
// real TCP and UDP service answers through the address, and no GARP ever crosses the
// heartbeat link.
TEST(Serving, DedicatedHeartbeatPortAnnouncesFromTheServiceInterface) {
    cluster c({"a", "b"});
    c.net().add_service_segment();
    const std::string svc = topology::service_iface;
    node_options o;
    o.pmd = "net_af_packet";
    o.mode = "shared";
    o.kernel_interface = svc; // the one group's interface; the port's own is eth0
    for (const auto& [n, core] : {std::pair{"a", "0"}, std::pair{"b", "1"}}) {
        node_options oi = o;
        oi.lcores = core;
        c.write_config(n, n[0] == 'a' ? 1 : 2, oi);
    }
    const auto svc_mac = [&](const std::string& n) { return c.net().mac_of(n, svc); };
    link_watcher hb(c.net().client_ns());
    process svc_a(c.net().ns_name("a"), {ECHO_PATH, "--port", "7000"}, c.dir() + "/svc_a.log");
    process svc_b(c.net().ns_name("b"), {ECHO_PATH, "--port", "7000"}, c.dir() + "/svc_b.log");
    // Generous deadlines: on this loaded 2-core machine one `ip` or fork can take seconds.
    constexpr auto patience = 60s;
    c.start("a");
    ASSERT_TRUE(c.wait_role("a", "primary", patience)) << c.logs();
    c.start("b");
    ASSERT_TRUE(c.wait_role("b", "monitor", patience)) << c.logs();
    ASSERT_GT(ping(c.net().client_ns(), primary_ip, 3, 15s), 0) << c.logs();
    EXPECT_EQ(arp_mac(c.net().client_ns(), primary_ip), svc_mac("a")) << "the client reaches a's service interface";
    EXPECT_TRUE(kernel_holds(c, "a", svc, primary_ip));
    {
        const auto r = load(c, "--requests 20 --tcp-interval-ms 2 --timeout-ms 5000");
        EXPECT_TRUE(r.ok()) << "the service answers before any failover\n" << r.out << r.err << c.logs();
    }
    {
        const auto st = c.status("a");
        ASSERT_TRUE(st);
        EXPECT_NE(st->find("\"announce\":{\"by\":\"kernel\",\"from\":\"svc0\",\"mac\":\"" + svc_mac("a") + "\""), std::string::npos)
            << "status says where the group is announced from\n" << *st;
    }

    // A SIGKILL: b takes over and announces from its svc0; a's guard takes the address off
    // a's kernel.
    c.stop("a", SIGKILL);
    ASSERT_TRUE(c.wait_role("b", "primary", patience)) << c.logs();
    EXPECT_TRUE(wait_until([&] { return arp_mac(c.net().client_ns(), primary_ip) == svc_mac("b"); }, patience))
        << "after the kill the client's entry names " << arp_mac(c.net().client_ns(), primary_ip).value_or("nothing")
        << ", want b's svc0 " << svc_mac("b") << "\n" << c.logs();
    EXPECT_TRUE(wait_until([&] { return !kernel_holds(c, "a", svc, primary_ip); }, patience)) << "the killed node's kernel still serves it";
    {
        const auto r = load(c, "--requests 20 --tcp-interval-ms 2 --timeout-ms 5000");
        EXPECT_TRUE(r.ok()) << "the service answers after the kill\n" << r.out << r.err << c.logs();
    }

    // The killed node rejoins as monitor; an operator switchover moves the address back,
    // under a client stream. Its losses are measured, not asserted: the old primary's kernel
    // may let the address go up to a control-thread turn (~1 ms) before the new primary's
    // announcement, sent after its netlink add, reaches the client.
    c.start("a");
    ASSERT_TRUE(c.wait_role("a", "monitor", patience)) << c.logs();
    exec_result stream;
    std::thread client([&] { stream = load(c, "--duration-ms 4000 --udp-interval-us 2000 --tcp-interval-ms 20 --timeout-ms 1000"); });
    std::this_thread::sleep_for(1000ms);
    const auto sw = run({HEARTWIRECTL_PATH, "--socket", c.socket("a"), "switchover"});
    client.join();
    std::printf("  client stream across the switchover:\n%s", stream.out.c_str());
    RecordProperty("switchover_stream", stream.out);
    ASSERT_TRUE(sw.ok()) << sw.out << sw.err;
    ASSERT_TRUE(c.wait_role("a", "primary", patience)) << c.logs();
    EXPECT_TRUE(c.wait_role("b", "monitor", patience)) << c.logs();
    EXPECT_TRUE(wait_until([&] { return arp_mac(c.net().client_ns(), primary_ip) == svc_mac("a"); }, patience))
        << "after the switchover the client's entry names " << arp_mac(c.net().client_ns(), primary_ip).value_or("nothing")
        << ", want a's svc0 " << svc_mac("a") << "\n" << c.logs();
    {
        const auto r = load(c, "--requests 20 --tcp-interval-ms 2 --timeout-ms 5000");
        EXPECT_TRUE(r.ok()) << "the service answers after the switchover\n" << r.out << r.err << c.logs();
    }
    const auto st = c.status("a");
    ASSERT_TRUE(st);
    EXPECT_GT(std::stoull("0" + json_value(*st, "sent")), 0u) << "a announced from svc0\n" << *st;
    EXPECT_EQ(json_value(*st, "failed"), "0") << *st;

    EXPECT_GT(hb.heartbeats(), 0u) << "the watcher hears the heartbeat link";
    EXPECT_EQ(hb.garps(), 0u) << "a GARP crossed the heartbeat link (the heartbeat port's MAC)";
}

// The bifurcated layout's steering (port.flow_isolate) on a port whose PMD cannot steer is
// a setup error naming the port and rte_flow's own reason, never a silent fallback to a
// port that receives everything: af_packet has no rte_flow; net_tap has it through TC, but
// needs the multiq qdisc and the flower classifier, which this kernel is built without
// (then it disables its flow support and refuses the rule).
TEST(Serving, FlowIsolationOnAPortThatCannotSteerIsASetupError) {
    cluster c({"a"});
    std::vector<std::pair<std::string, std::string>> cases = {
        {"net_af_packet0,iface=eth0", "port.flow_isolate: net_af_packet0 (net_af_packet) cannot enter rte_flow isolated mode: "
                                      "Function not implemented"}};
    // A kernel with multiq lets net_tap make its TC rules: then it can steer, and only
    // af_packet's refusal is an error to check here.
    const std::string probe_ns = c.net().bridge_ns();
    const bool multiq = exec(probe_ns, "tc qdisc add dev lo root handle 1: multiq && tc qdisc del dev lo root").ok();
    if (!multiq) cases.push_back({"net_tap0,iface=hwtap0", "port.flow_isolate: net_tap0 (net_tap) refused the rte_flow rule steering "
                                                           "EtherType 0x88B5 to its RX queue: "});
    for (const auto& [device, says] : cases) {
        node_options o;
        o.mode = "shared";
        o.device = device;
        o.port_toml = "flow_isolate = true\n";
        c.write_config("a", 1, o);
        c.start("a");
        const auto code = c.proc("a").wait_exit(60s);
        const std::string log = c.proc("a").log();
        EXPECT_EQ(code.value_or(-1), 1) << device << "\n" << log;
        EXPECT_NE(log.find(says), std::string::npos) << device << "\n" << log;
    }
}

// What would send a dedicated heartbeat port's announcements the wrong way is refused at
// start, each with the reason: a PCI port's kernel_interface that is not its own netdev
// (the engine would announce on the heartbeat port), a group interface that does not exist,
// and echo probes of a group served on another segment than the port's.
TEST(Serving, DedicatedHeartbeatPortMisconfigurationsAreSetupErrors) {
    cluster c({"a"});
    c.net().add_service_segment();
    const std::string group = "[[group]]\nid = 1\nprimary = \"169.254.10.100/24\"\nmonitor = \"169.254.10.101/24\"\n";
    struct bad {
        std::string what;
        node_options o;
        std::string says;
    };
    std::vector<bad> cases(3);
    cases[0].what = "a PCI port with another interface as its kernel_interface";
    cases[0].o.device = "0000:00:1f.6";
    cases[0].o.kernel_interface = topology::service_iface;
    cases[0].says = "port.kernel_interface = \"svc0\" is not the kernel netdev of PCI port 0000:00:1f.6";
    cases[1].what = "a group interface that does not exist";
    cases[1].o.pmd = "net_af_packet";
    cases[1].o.groups_toml = group + "interface = \"nosuch0\"\n";
    cases[1].says = "interface missing: group[0].interface = \"nosuch0\" does not exist";
    cases[2].what = "echo probes of a group announced from its own interface";
    cases[2].o.pmd = "net_af_packet";
    cases[2].o.probe = "both";
    cases[2].o.groups_toml = group + "interface = \"svc0\"\n";
    cases[2].says = "detect.probe = \"both\" cannot probe group 1: its addresses are on svc0";
    for (auto& b : cases) {
        b.o.mode = "shared";
        c.write_config("a", 1, b.o);
        c.start("a");
        const auto code = c.proc("a").wait_exit(60s);
        const std::string log = c.proc("a").log();
        EXPECT_EQ(code.value_or(-1), 1) << b.what << "\n" << log;
        EXPECT_NE(log.find(b.says), std::string::npos) << b.what << "\n" << log;
    }
}
