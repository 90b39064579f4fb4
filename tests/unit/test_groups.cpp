// Address groups and address lists (issue 9): [[group]] and address-array configuration,
// IPv6 in the state machine (NA on claim, NS and echo answers, DAD at discovery, defence),
// and the node-wide engine-down notice an engine with many groups sends.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>

#include "heartwire/config.hpp"
#include "sim_fixtures.hpp"

using namespace heartwire;
using namespace heartwire::sim;
using fsm::action_kind;
using wire::hb_type;

namespace {

const char* base = R"(
[node]
name = "a"
id = 1
priority = 120
[auth]
mode = "none"
[port]
device = "net_af_packet0,iface=eth0"
)";

cfg::parse_result parse(const std::string& rest) { return cfg::parse(std::string(base) + rest); }

bool has_error(const cfg::parse_result& r, const std::string& key, const std::string& part) {
    return std::any_of(r.errors.begin(), r.errors.end(), [&](const cfg::config_error& e) {
        return e.key == key && e.to_string().find(part) != std::string::npos;
    });
}

std::string errors(const cfg::parse_result& r) {
    std::string out;
    for (const auto& e : r.errors) out.append(e.to_string()).append("\n");
    return out;
}

ipv6_addr ip6(const char* s) { return *ipv6_addr::parse(s); }

wire::frame nd_frame(const mac_addr& src, const wire::nd_msg& n) {
    wire::frame f;
    f.kind = wire::frame_kind::nd;
    f.eth = {n.dst.is_multicast() ? n.dst.multicast_mac() : mac_addr::broadcast(), src, wire::ethertype_ipv6};
    f.nd = n;
    return f;
}

fsm::params v6_params(std::uint32_t id) {
    auto p = test_params(id);
    p.addrs[0].n6 = 1;
    p.addrs[0].v6[0] = ip6("fd00:6877::100");
    p.addrs[0].n4 = 2;
    p.addrs[0].v4[1] = ip("169.254.10.102");
    return p;
}

lone lone_v6_primary(bool exclusive = true) {
    auto p = v6_params(1);
    p.answer_icmp = exclusive;
    lone n(p);
    n.start();
    n.tick_until(50 * ms);
    EXPECT_EQ(n.s.r, role::primary);
    return n;
}

} // namespace

// ---------------------------------------------------------------- configuration

TEST(GroupsConfig, WithoutGroupBlocksTheOneGroupComesFromNodeAndAddresses) {
    const auto r = parse("[addresses]\nprimary = \"169.254.10.100/24\"\nmonitor = \"169.254.10.101/24\"\n");
    ASSERT_TRUE(r.cfg) << errors(r);
    ASSERT_EQ(r.cfg->groups.size(), 1u);
    EXPECT_EQ(r.cfg->groups[0].id, 1u);
    EXPECT_EQ(r.cfg->groups[0].priority, 120);
    EXPECT_EQ(r.cfg->groups[0].addresses.primary.to_string(), "169.254.10.100/24");
    EXPECT_FALSE(r.cfg->explicit_groups);
}

TEST(GroupsConfig, GroupBlocksEachWithAddressesRankAndHealth) {
    const auto r = parse(R"(
[[group]]
id = 10
primary = ["169.254.10.100/24", "fd00:6877::100/64", "169.254.10.102/24"]
monitor = "169.254.10.101/24"
[[group]]
id = 20
primary = "169.254.10.110/24"
monitor = "169.254.10.111/24"
priority = 200
preempt = true
vlan = 30
health = ["web"]
[[health]]
name = "web"
kind = "process"
target = "nginx"
)");
    ASSERT_TRUE(r.cfg) << errors(r);
    const auto& g = r.cfg->groups;
    ASSERT_EQ(g.size(), 2u);
    EXPECT_EQ(g[0].id, 10u);
    EXPECT_EQ(g[0].priority, 120) << "node.priority is the default";
    EXPECT_EQ(cfg::role_v4(g[0].addresses, true).size(), 2u);
    ASSERT_EQ(cfg::role_v6(g[0].addresses, true).size(), 1u);
    EXPECT_EQ(g[0].addresses.primary6[0].to_string(), "fd00:6877::100/64");
    EXPECT_EQ(g[1].priority, 200);
    EXPECT_TRUE(g[1].preempt);
    EXPECT_EQ(g[1].vlan, 30u);
    EXPECT_EQ(g[1].health, std::vector<std::string>{"web"});
    EXPECT_EQ(r.cfg->addresses.primary.to_string(), "169.254.10.100/24") << "addresses is the first group's";
    // The machine of each group takes its own id, addresses and rank.
    const auto p = fsm::params::from_config(*r.cfg, mac_addr{}, 1);
    EXPECT_EQ(p.group, 20u);
    EXPECT_EQ(p.priority, 200);
    EXPECT_TRUE(p.preempt);
    EXPECT_EQ(p.addr[0], ip("169.254.10.110"));
    const auto p0 = fsm::params::from_config(*r.cfg, mac_addr{}, 0);
    EXPECT_EQ(p0.addrs[0].n4, 2);
    EXPECT_EQ(p0.addrs[0].n6, 1);
}

TEST(GroupsConfig, BadGroupsAreEachNamed) {
    const auto both = parse("[addresses]\nprimary = \"169.254.10.100/24\"\nmonitor = \"169.254.10.101/24\"\n"
                            "[[group]]\nid = 1\nprimary = \"169.254.10.110/24\"\nmonitor = \"169.254.10.111/24\"\n");
    EXPECT_TRUE(has_error(both, "addresses", "not both")) << errors(both);
    const auto r = parse(R"(
[[group]]
id = 10
primary = "169.254.10.100/24"
monitor = "169.254.10.101/24"
health = ["nope"]
[[group]]
id = 10
primary = ["fd00:6877::1/64", "169.254.10.100/24"]
monitor = "169.254.10.100/24"
)");
    EXPECT_FALSE(r.cfg);
    EXPECT_TRUE(has_error(r, "group[1].id", "duplicate")) << errors(r);
    EXPECT_TRUE(has_error(r, "group[0].health", "names no [[health]] check")) << errors(r);
    EXPECT_TRUE(has_error(r, "group[1].primary[1]", "IPv4 addresses come first")) << errors(r);
    EXPECT_TRUE(has_error(r, "group[1].monitor", "another group")) << errors(r);
    std::string with_node_group = base;
    with_node_group.replace(with_node_group.find("priority = 120"), 14, "priority = 120\ngroup = 5");
    const auto ng = cfg::parse(with_node_group +
                               "[[group]]\nid = 1\nprimary = \"169.254.10.110/24\"\nmonitor = \"169.254.10.111/24\"\n");
    EXPECT_TRUE(has_error(ng, "node.group", "set [[group]] id instead")) << errors(ng);
}

TEST(GroupsConfig, AddressListLimitsAndDuplicates) {
    std::string many = "[addresses]\nprimary = [\"169.254.10.100/24\"";
    for (int i = 1; i <= 16; ++i) many += ", \"fd00:6877::" + std::to_string(i) + "/64\"";
    many += "]\nmonitor = \"169.254.10.101/24\"\n";
    EXPECT_TRUE(has_error(parse(many), "addresses.primary", "at most 16")) << errors(parse(many));
    const auto dup = parse("[addresses]\nprimary = [\"169.254.10.100/24\", \"fd00:6877::1/64\"]\n"
                           "monitor = [\"169.254.10.101/24\", \"fd00:6877::1/64\"]\n");
    EXPECT_TRUE(has_error(dup, "addresses", "listed twice")) << errors(dup);
    const auto mc = parse("[addresses]\nprimary = [\"169.254.10.100/24\", \"ff02::1/64\"]\nmonitor = \"169.254.10.101/24\"\n");
    EXPECT_FALSE(mc.cfg) << "a multicast IPv6 address is refused";
}

// Shared mode: each group's addresses live on a kernel interface, port.kernel_interface
// unless the group names its own (a dedicated heartbeat port: the service on another one).
TEST(GroupsConfig, EachGroupNamesTheInterfaceThatCarriesItsAddresses) {
    const auto r = parse(R"(
mode = "shared"
kernel_interface = "eth0"
[[group]]
id = 10
primary = "169.254.10.100/24"
monitor = "169.254.10.101/24"
[[group]]
id = 20
primary = "169.254.10.110/24"
monitor = "169.254.10.111/24"
interface = "svc0.20"
)");
    ASSERT_TRUE(r.cfg) << errors(r);
    EXPECT_EQ(r.cfg->groups[0].interface, "eth0") << "port.kernel_interface is the default";
    EXPECT_EQ(r.cfg->groups[1].interface, "svc0.20");
    const auto one = parse("mode = \"shared\"\nkernel_interface = \"svc0\"\n[addresses]\nprimary = \"169.254.10.100/24\"\n"
                           "monitor = \"169.254.10.101/24\"\n");
    ASSERT_TRUE(one.cfg) << errors(one);
    EXPECT_EQ(one.cfg->groups[0].interface, "svc0") << "the one group of [addresses] takes port.kernel_interface";
    // Without port.kernel_interface every group names its own.
    const auto own = parse(R"(
mode = "shared"
[[group]]
id = 10
primary = "169.254.10.100/24"
monitor = "169.254.10.101/24"
interface = "svc0"
)");
    ASSERT_TRUE(own.cfg) << errors(own);
    EXPECT_EQ(own.cfg->groups[0].interface, "svc0");
    EXPECT_TRUE(own.cfg->port.kernel_interface.empty());
}

TEST(GroupsConfig, AGroupInterfaceIsSharedModeOnlyAndAValidName) {
    const auto exclusive = parse(R"(
[[group]]
id = 10
primary = "169.254.10.100/24"
monitor = "169.254.10.101/24"
interface = "svc0"
)");
    EXPECT_TRUE(has_error(exclusive, "group[0].interface", "needs port.mode = \"shared\"")) << errors(exclusive);
    const auto missing = parse(R"(
mode = "shared"
[[group]]
id = 10
primary = "169.254.10.100/24"
monitor = "169.254.10.101/24"
interface = "svc0"
[[group]]
id = 20
primary = "169.254.10.110/24"
monitor = "169.254.10.111/24"
)");
    EXPECT_TRUE(has_error(missing, "group[1].interface", "port.kernel_interface is not set")) << errors(missing);
    EXPECT_FALSE(has_error(missing, "group[0].interface", "")) << errors(missing);
    const auto bad = parse(R"(
mode = "shared"
kernel_interface = "eth0"
[[group]]
id = 10
primary = "169.254.10.100/24"
monitor = "169.254.10.101/24"
interface = "svc 0"
)");
    EXPECT_TRUE(has_error(bad, "group[0].interface", "\"svc 0\": is not a valid interface name")) << errors(bad);
    const auto wrong = parse(R"(
mode = "shared"
kernel_interface = "eth0"
[[group]]
id = 10
primary = "169.254.10.100/24"
monitor = "169.254.10.101/24"
interface = 7
)");
    EXPECT_TRUE(has_error(wrong, "group[0].interface", "must be a string")) << errors(wrong);
}

// ---------------------------------------------------------------- IPv6 in the state machine

TEST(GroupsIpv6, ClaimAnnouncesEveryAddressOfTheRole) {
    lone n(v6_params(1));
    n.start();
    n.tick_until(50 * ms);
    ASSERT_EQ(n.s.r, role::primary);
    EXPECT_GE(n.out.count(action_kind::send_na), 1u) << "unsolicited NA for the IPv6 address";
    std::size_t second = 0;
    for (const auto& a : n.out.all)
        if (a.kind == action_kind::send_garp && a.addr == ip("169.254.10.102")) ++second;
    EXPECT_GE(second, 1u) << "a GARP for the role's second IPv4 address too";
    EXPECT_GE(n.out.count(action_kind::send_dad_ns), 1u) << "DAD for the IPv6 address while discovering";
}

TEST(GroupsIpv6, ExclusiveAnswersSolicitationsAndEchoSharedLeavesThemToTheKernel) {
    for (const bool exclusive : {true, false}) {
        auto n = lone_v6_primary(exclusive);
        n.out.clear();
        wire::nd_msg ns;
        ns.src = ip6("fd00:6877::10");
        ns.dst = ip6("fd00:6877::100").solicited_node();
        ns.target = ip6("fd00:6877::100");
        ns.lladdr = mac_addr{{2, 9, 9, 9, 9, 9}};
        ns.has_lladdr = true;
        n.rx(nd_frame(ns.lladdr, ns));
        EXPECT_EQ(n.out.count(action_kind::answer_ns), exclusive ? 1u : 0u);
        wire::frame e;
        e.kind = wire::frame_kind::icmp6_echo;
        e.eth = {n.s.p.mac, ns.lladdr, wire::ethertype_ipv6};
        e.echo6.src = ns.src;
        e.echo6.dst = ip6("fd00:6877::100");
        n.rx(e);
        EXPECT_EQ(n.out.count(action_kind::reflect_echo6), exclusive ? 1u : 0u);
        // Not ours: nothing.
        ns.target = ip6("fd00:6877::200");
        n.out.clear();
        n.rx(nd_frame(ns.lladdr, ns));
        EXPECT_EQ(n.out.count(action_kind::answer_ns), 0u);
    }
}

TEST(GroupsIpv6, AnotherNodesAdvertisementOrDadProbeForAHeldAddressIsDefended) {
    auto n = lone_v6_primary();
    n.tick_until(n.now + 20 * ms);
    n.out.clear();
    wire::nd_msg na;
    na.is_advert = true;
    na.src = ip6("fd00:6877::100");
    na.dst = ipv6_addr::all_nodes();
    na.target = ip6("fd00:6877::100");
    na.override_ = true;
    na.lladdr = mac_addr{{2, 6, 6, 6, 6, 6}};
    na.has_lladdr = true;
    n.rx(nd_frame(na.lladdr, na));
    EXPECT_EQ(n.out.count(action_kind::send_na), 1u);
    EXPECT_EQ(n.s.c.address_defences, 1u);
    n.tick_until(n.now + 20 * ms); // past the defend interval
    n.out.clear();
    wire::nd_msg dad;
    dad.dst = ip6("fd00:6877::100").solicited_node();
    dad.target = ip6("fd00:6877::100");
    n.rx(nd_frame(mac_addr{{2, 7, 7, 7, 7, 7}}, dad));
    EXPECT_EQ(n.out.count(action_kind::send_na), 1u) << "a DAD probe for our address is answered by our NA";
    // Our own advertisement seen again is not a claim.
    n.out.clear();
    na.lladdr = n.s.p.mac;
    n.rx(nd_frame(n.s.p.mac, na));
    EXPECT_EQ(n.out.count(action_kind::send_na), 0u);
}

TEST(GroupsIpv6, AnAdvertisementForTheProbedAddressIsDiscoveryEvidence) {
    lone n(v6_params(2));
    n.start();
    n.tick_until(n.now + 1 * ms);
    ASSERT_EQ(n.s.r, role::probe_primary);
    wire::nd_msg na;
    na.is_advert = true;
    na.src = ip6("fd00:6877::100");
    na.dst = ipv6_addr::all_nodes();
    na.target = ip6("fd00:6877::100");
    na.lladdr = mac_addr{{2, 6, 6, 6, 6, 6}};
    na.has_lladdr = true;
    n.rx(nd_frame(na.lladdr, na));
    n.tick_until(n.now + 1 * ms);
    EXPECT_EQ(n.s.r, role::probe_monitor) << "someone holds the primary role's IPv6 address";
}

// A role of IPv6 addresses only (no IPv4 first): discovered by DAD, announced by NA, no ARP.
TEST(GroupsIpv6, AnIpv6OnlyRoleIsDiscoveredByDadAndClaimedWithoutArp) {
    const auto r = parse("[addresses]\nprimary = [\"fd00:6877::100/64\"]\nmonitor = [\"fd00:6877::101/64\"]\n");
    ASSERT_TRUE(r.cfg) << errors(r);
    EXPECT_TRUE(cfg::role_v4(r.cfg->addresses, true).empty());
    auto p = fsm::params::from_config(*r.cfg, mac_addr{{2, 0, 0, 0, 0, 1}});
    p.discovery_interval_ns = 10 * ms;
    p.discovery_wait_ns = 20 * ms;
    lone n(p);
    n.start();
    n.tick_until(60 * ms);
    EXPECT_EQ(n.s.r, role::primary);
    EXPECT_EQ(n.out.count(action_kind::send_arp_probe), 0u);
    EXPECT_EQ(n.out.count(action_kind::send_garp), 0u);
    EXPECT_GE(n.out.count(action_kind::send_dad_ns), 3u);
    EXPECT_GE(n.out.count(action_kind::send_na), 1u);
    // An ARP probe (sender 0.0.0.0) from elsewhere is no evidence about an IPv6-only role.
    lone m(p);
    m.start();
    m.tick_until(m.now + 1 * ms);
    m.rx(arp_frame(mac_addr{{2, 5, 5, 5, 5, 5}}, mac_addr::broadcast(),
                   {wire::arp_op_request, mac_addr{{2, 5, 5, 5, 5, 5}}, {}, {}, ip("169.254.10.100")}));
    m.tick_until(m.now + 60 * ms);
    EXPECT_EQ(m.s.r, role::primary);
    const auto mixed = parse("[addresses]\nprimary = [\"fd00:6877::100/64\", \"169.254.10.100/24\"]\nmonitor = \"169.254.10.101/24\"\n");
    EXPECT_FALSE(mixed.cfg) << "IPv4 after IPv6 is refused: the first IPv4 address is the one ARP probes";
}

// ---------------------------------------------------------------- the node-wide notice

// An engine with many groups sends one engine-down notice for all of them (group 0); each
// group acts on what its own frames said of that node.
TEST(GroupsNotice, NodeWideEngineDownMakesTheMonitorTakeOver) {
    auto net = formed_pair();
    auto& mon = net.nodes[1];
    const auto& prim = net.nodes[0];
    wire::hb_msg m;
    m.type = hb_type::engine_down;
    m.role = static_cast<std::uint8_t>(role::monitor); // another group's view: not this one's
    m.node_id = prim.s.p.node_id;
    m.epoch = prim.s.epoch + 5000;                    // another group's epoch: no epoch jump here
    m.seq = ~std::uint64_t{0};
    auto f = hb_frame(prim.s.p.mac, mac_addr::heartwire_group(), m);
    f.hb.group = 0;
    fsm::event ev{fsm::event_kind::frame, &f};
    fsm::step(mon.s, ev, net.now, mon.out);
    EXPECT_EQ(mon.s.r, role::primary) << "the group's monitor took over on the node-wide notice";
    EXPECT_EQ(mon.s.c.notice_takeovers, 1u);
    EXPECT_EQ(mon.s.c.drop_epoch_jump, 0u);
}

TEST(GroupsNotice, NodeWideNoticeFromANodeTheGroupNeverHeardIsIgnored) {
    auto n = lone_v6_primary();
    wire::hb_msg m;
    m.type = hb_type::engine_down;
    m.node_id = 77;
    m.seq = ~std::uint64_t{0};
    m.flags = wire::hb_flag_holds_primary;
    auto f = hb_frame(mac_addr{{2, 0, 0, 0, 0, 77}}, mac_addr::heartwire_group(), m);
    f.hb.group = 0;
    n.rx(f);
    EXPECT_EQ(n.s.r, role::primary);
    EXPECT_EQ(fsm::find_peer(n.s, 77), nullptr) << "no peer entry made for it";
    // Any other type with group 0 is another group's frame.
    m.type = hb_type::announce;
    m.seq = 5;
    auto g = hb_frame(mac_addr{{2, 0, 0, 0, 0, 77}}, mac_addr::heartwire_group(), m);
    g.hb.group = 0;
    const auto before = n.s.c.drop_other_group;
    n.rx(g);
    EXPECT_EQ(n.s.c.drop_other_group, before + 1);
}
