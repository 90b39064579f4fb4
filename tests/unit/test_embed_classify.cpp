// The embedded node's classifier (src/embed/classify): which frames an application's RX loop
// hands to heartwire. A table of {what, frame built with the product's codec, verdict}.
#include <gtest/gtest.h>

#include <vector>

#include "embed/classify.hpp"
#include "heartwire/wire.hpp"

using namespace heartwire;
using bytes = std::vector<std::byte>;

namespace {

const mac_addr me{{0x02, 0, 0, 0, 0, 0x01}};
const mac_addr peer{{0x02, 0, 0, 0, 0, 0x02}};
const ipv4_addr primary = *ipv4_addr::parse("169.254.10.100");
const ipv4_addr monitor = *ipv4_addr::parse("169.254.10.101");
const ipv4_addr client = *ipv4_addr::parse("169.254.10.10");
const ipv4_addr other = *ipv4_addr::parse("169.254.10.50");
const ipv6_addr primary6 = *ipv6_addr::parse("fd00:6877::100");
const ipv6_addr client6 = *ipv6_addr::parse("fd00:6877::10");
const ipv6_addr other6 = *ipv6_addr::parse("fd00:6877::50");

template <class Encode>
bytes frame(Encode&& enc) {
    bytes b(256);
    b.resize(enc(std::span<std::byte>(b)));
    EXPECT_FALSE(b.empty());
    return b;
}

bytes heartbeat() {
    wire::hb_msg m;
    m.node_id = 2;
    m.group = 1;
    return frame([&](std::span<std::byte> o) { return wire::encode_heartbeat(mac_addr::heartwire_group(), peer, m, o); });
}

bytes arp(std::uint16_t op, ipv4_addr spa, ipv4_addr tpa) {
    wire::arp_msg m;
    m.op = op;
    m.sha = peer;
    m.spa = spa;
    m.tpa = tpa;
    return frame([&](std::span<std::byte> o) { return wire::encode_arp(mac_addr::broadcast(), peer, m, o); });
}

bytes echo(ipv4_addr src, ipv4_addr dst, bool reply) {
    wire::icmp_echo m;
    m.src = src;
    m.dst = dst;
    m.is_reply = reply;
    m.id = 7;
    return frame([&](std::span<std::byte> o) { return wire::encode_icmp_echo(me, peer, m, o); });
}

bytes echo6(const ipv6_addr& src, const ipv6_addr& dst) {
    wire::icmp6_echo m;
    m.src = src;
    m.dst = dst;
    return frame([&](std::span<std::byte> o) { return wire::encode_icmp6_echo(me, peer, m, o); });
}

// A UDP datagram to `dst`:7000 (the application's service): an echo frame with the protocol
// byte changed is enough for a classifier that must look at the protocol.
bytes udp(ipv4_addr dst) {
    bytes b = echo(client, dst, false);
    b[14 + 9] = std::byte{17};
    return b;
}

bytes tagged(bytes f, std::uint16_t vid) {
    const std::byte tag[4] = {std::byte{0x81}, std::byte{0x00}, std::byte(vid >> 8), std::byte(vid & 0xff)};
    f.insert(f.begin() + 12, std::begin(tag), std::end(tag));
    return f;
}

embed::classifier make(std::uint16_t vlan = 0) {
    embed::classifier k;
    k.add(primary);
    k.add(monitor);
    k.add(primary6);
    k.add_vlan(vlan);
    k.seal();
    return k;
}

struct row {
    const char* what;
    bytes f;
    bool mine;
};

} // namespace

TEST(EmbedClassifier, HandsHeartwireItsFramesAndTheApplicationTheRest) {
    const auto k = make();
    const row rows[] = {
        {"a heartbeat (EtherType 0x88B5)", heartbeat(), true},
        {"a client's ARP request for the primary address", arp(wire::arp_op_request, client, primary), true},
        {"the peer's GARP for the monitor address", arp(wire::arp_op_request, monitor, monitor), true},
        {"an ARP probe for the primary address (RFC 5227, sender 0)", arp(wire::arp_op_request, ipv4_addr{}, primary), true},
        {"an ARP reply from the primary address", arp(wire::arp_op_reply, primary, client), true},
        {"ARP between two other hosts", arp(wire::arp_op_request, client, other), false},
        {"a ping of the primary address (the engine answers it)", echo(client, primary, false), true},
        {"an echo reply to the monitor's ICMP probe", echo(primary, monitor, true), true},
        {"a ping of another host", echo(client, other, false), false},
        {"UDP to the primary address: the application's service", udp(primary), false},
        {"ICMPv6 echo to the primary's IPv6 address", echo6(client6, primary6), true},
        {"ICMPv6 echo to another host", echo6(client6, other6), false},
        {"a neighbour solicitation (DAD) for the primary's IPv6 address",
         frame([](std::span<std::byte> o) { return wire::encode_dad_ns(peer, primary6, o); }), true},
        {"an unsolicited NA for the primary's IPv6 address",
         frame([](std::span<std::byte> o) { return wire::encode_unsolicited_na(peer, primary6, o); }), true},
        {"an unsolicited NA for another address",
         frame([](std::span<std::byte> o) { return wire::encode_unsolicited_na(peer, other6, o); }), false},
        {"a runt", bytes(10), false},
    };
    for (const auto& r : rows) EXPECT_EQ(k.match(r.f), r.mine) << r.what;
}

TEST(EmbedClassifier, TaggedNodeTakesOnlyItsVlanAsTheEngineDoes) {
    const auto k = make(100);
    EXPECT_TRUE(k.match(tagged(heartbeat(), 100))) << "our VLAN";
    EXPECT_TRUE(k.match(tagged(arp(wire::arp_op_request, client, primary), 100))) << "ARP in our VLAN";
    EXPECT_FALSE(k.match(heartbeat())) << "untagged, the engine would drop it";
    EXPECT_FALSE(k.match(tagged(heartbeat(), 200))) << "another VLAN's";
    EXPECT_TRUE(k.match(heartbeat(), 100)) << "the NIC stripped our tag";
    EXPECT_FALSE(k.match(heartbeat(), 200)) << "the NIC stripped another VLAN's tag";
    const auto untagged = make(0);
    EXPECT_TRUE(untagged.match(tagged(heartbeat(), 0))) << "priority-tagged (VLAN 0) is untagged";
    EXPECT_FALSE(untagged.match(tagged(heartbeat(), 100)));
}

TEST(EmbedClassifier, ConfigGivesEveryAddressOfBothRolesAndTheVlan) {
    auto r = cfg::parse(R"(
[node]
name = "a"
id = 1
[auth]
mode = "none"
[port]
device = "embedded"
vlan = 7
[addresses]
primary = ["169.254.10.100/24", "169.254.10.102/24", "fd00:6877::100/64"]
monitor = "169.254.10.101/24"
)");
    ASSERT_TRUE(r.cfg) << (r.errors.empty() ? "" : r.errors.front().to_string());
    const auto k = embed::classifier::from_config(*r.cfg);
    for (const char* a : {"169.254.10.100", "169.254.10.101", "169.254.10.102"}) EXPECT_TRUE(k.has(*ipv4_addr::parse(a))) << a;
    EXPECT_FALSE(k.has(client));
    EXPECT_TRUE(k.has(primary6));
    EXPECT_TRUE(k.match(tagged(arp(wire::arp_op_request, client, *ipv4_addr::parse("169.254.10.102")), 7)));
    EXPECT_FALSE(k.match(arp(wire::arp_op_request, client, primary))) << "untagged on a VLAN node";
}

TEST(EmbedClassifier, EveryGroupsAddressesAndVlansAreHeartwires) {
    auto r = cfg::parse(R"(
[node]
name = "a"
id = 1
[auth]
mode = "none"
[port]
device = "embedded"
[[group]]
id = 10
primary = "169.254.10.100/24"
monitor = "169.254.10.101/24"
[[group]]
id = 11
primary = "169.254.10.110/24"
monitor = "169.254.10.111/24"
vlan = 12
)");
    ASSERT_TRUE(r.cfg) << (r.errors.empty() ? "" : r.errors.front().to_string());
    const auto k = embed::classifier::from_config(*r.cfg);
    EXPECT_TRUE(k.match(arp(wire::arp_op_request, client, primary))) << "group 10, untagged";
    EXPECT_TRUE(k.match(tagged(arp(wire::arp_op_request, client, *ipv4_addr::parse("169.254.10.111")), 12))) << "group 11's VLAN";
    EXPECT_TRUE(k.match(tagged(heartbeat(), 12)));
    EXPECT_FALSE(k.match(tagged(heartbeat(), 13)));
}
