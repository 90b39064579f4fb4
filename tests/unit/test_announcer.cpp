// Announcements from a kernel interface (control/announcer) against the real kernel: a
// veth pair in a private network namespace, the announcer on one end, a packet socket on
// the other as the clients' segment, every frame decoded by the product's codec.

#include <gtest/gtest.h>

#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include "control/announcer.hpp"
#include "heartwire/wire.hpp"
#include "netns_child.hpp"

namespace ctl = heartwire::control;
namespace wire = heartwire::wire;
using heartwire::ipv4_addr;
using heartwire::ipv6_addr;
using heartwire::mac_addr;
using hwtest::ns_report;

namespace {

// The interface's MAC as `ip` reports it (this namespace's /sys is the host's).
std::string mac_of(const char* ifname) {
    std::string out;
    if (FILE* f = ::popen(("ip -o link show " + std::string(ifname)).c_str(), "r")) {
        char buf[512];
        while (std::fgets(buf, sizeof buf, f)) out += buf;
        ::pclose(f);
    }
    const auto at = out.find("link/ether ");
    return at == std::string::npos ? std::string{} : out.substr(at + 11, 17);
}

// The segment's view: every frame arriving on hwa0p.
int open_capture(ns_report& r) {
    const int fd = ::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL));
    sockaddr_ll sll{};
    sll.sll_family = AF_PACKET;
    sll.sll_protocol = htons(ETH_P_ALL);
    sll.sll_ifindex = static_cast<int>(::if_nametoindex("hwa0p"));
    r.check("capture socket bound on hwa0p", ::bind(fd, reinterpret_cast<sockaddr*>(&sll), sizeof sll), 0);
    return fd;
}

// The next frame on the capture that `want` accepts, within 2 s.
template <class Want>
std::optional<wire::frame> next_frame(int fd, std::vector<std::byte>& buf, Want&& want) {
    for (int i = 0; i < 200; ++i) {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, 10) != 1) continue;
        buf.assign(2048, std::byte{});
        const ssize_t n = ::recv(fd, buf.data(), buf.size(), 0);
        if (n <= 0) continue;
        buf.resize(static_cast<std::size_t>(n));
        const wire::frame f = wire::decode(buf);
        if (f.ok() && want(f)) return f;
    }
    return std::nullopt;
}

// hwa0 (the node's service interface) and hwa0p (the segment) up, IPv6 off so only the
// test's frames cross.
void with_veth(const std::function<void(ns_report&)>& body) {
    hwtest::run_in_private_netns([&](ns_report& r) {
        r.check("veth pair", std::system("ip link add hwa0 type veth peer name hwa0p && "
                                         "sysctl -qw net.ipv6.conf.hwa0.disable_ipv6=1 net.ipv6.conf.hwa0p.disable_ipv6=1 && "
                                         "ip link set hwa0 up && ip link set hwa0p up"),
                0);
        body(r);
    });
}

const ipv4_addr v4 = *ipv4_addr::parse("169.254.10.100");
const ipv6_addr v6 = *ipv6_addr::parse("fd00:6877::100");

} // namespace

TEST(ControlAnnouncer, GarpLeavesTheInterfaceWithItsOwnMac) {
    with_veth([](ns_report& r) {
        const int cap = open_capture(r);
        ctl::announcer a("hwa0");
        r.check("garp sent", a.garp(v4), 0);
        const mac_addr me = *mac_addr::parse(mac_of("hwa0"));
        std::vector<std::byte> buf;
        const auto f = next_frame(cap, buf, [](const wire::frame& x) { return x.kind == wire::frame_kind::arp; });
        r.note("an ARP frame arrived on the segment", f.has_value());
        if (!f) return;
        r.note("gratuitous: sender and target are the address", f->arp.is_gratuitous() && f->arp.spa == v4);
        r.note("a request (RFC 5227 announcement)", f->arp.op == wire::arp_op_request);
        r.note("sender hardware address is hwa0's MAC", f->arp.sha == me);
        r.note("Ethernet source is hwa0's MAC", f->eth.src == me);
        r.note("to broadcast", f->eth.dst == mac_addr::broadcast());
        r.note("mac() reports it", a.mac() == me);
        r.check("sent", static_cast<long>(a.sent()), 1);
        r.check("failed", static_cast<long>(a.failed()), 0);
        ::close(cap);
    });
}

TEST(ControlAnnouncer, UnsolicitedNaNamesTheInterfaceMacAsTargetLinkLayerAddress) {
    with_veth([](ns_report& r) {
        const int cap = open_capture(r);
        ctl::announcer a("hwa0");
        r.check("na sent", a.na(v6), 0);
        const mac_addr me = *mac_addr::parse(mac_of("hwa0"));
        std::vector<std::byte> buf;
        const auto f = next_frame(cap, buf, [](const wire::frame& x) { return x.kind == wire::frame_kind::nd; });
        r.note("a neighbour advertisement arrived", f.has_value() && f->nd.is_advert);
        if (!f) return;
        r.note("target is the address", f->nd.target == v6);
        r.note("target link-layer option is hwa0's MAC", f->nd.has_lladdr && f->nd.lladdr == me);
        r.note("override set, solicited clear", f->nd.override_ && !f->nd.solicited);
        r.note("to all nodes", f->nd.dst == ipv6_addr::all_nodes());
        r.note("Ethernet source is hwa0's MAC", f->eth.src == me);
        ::close(cap);
    });
}

// The interface is read at every send: a new MAC, an interface deleted and made again, or
// one that is down, are followed; failures are counted and returned, never thrown.
TEST(ControlAnnouncer, FollowsTheInterfaceAndCountsFailuresWithoutThrowing) {
    with_veth([](ns_report& r) {
        ctl::announcer a("hwa0");
        r.check("mac changed", std::system("ip link set hwa0 address 02:68:77:00:aa:01"), 0);
        const int cap = open_capture(r);
        r.check("garp after the MAC change", a.garp(v4), 0);
        std::vector<std::byte> buf;
        const auto f = next_frame(cap, buf, [](const wire::frame& x) { return x.kind == wire::frame_kind::arp; });
        r.note("the new MAC is the sender", f && f->arp.sha == *mac_addr::parse("02:68:77:00:aa:01"));
        ::close(cap);

        r.check("hwa0 down", std::system("ip link set hwa0 down"), 0);
        r.check("down: ENETDOWN", a.garp(v4), -ENETDOWN);
        r.check("down: ENETDOWN again", a.na(v6), -ENETDOWN);
        r.check("last error", a.last_error(), -ENETDOWN);
        r.check("hwa0 deleted", std::system("ip link del hwa0"), 0);
        r.check("gone: ENODEV", a.garp(v4), -ENODEV);
        r.check("failed so far", static_cast<long>(a.failed()), 3);

        r.check("made again", std::system("ip link add hwa0 type veth peer name hwa0p && ip link set hwa0 up && "
                                          "ip link set hwa0p up"),
                0);
        const int cap2 = open_capture(r);
        r.check("works again", a.garp(v4), 0);
        r.check("last error cleared", a.last_error(), 0);
        const auto g = next_frame(cap2, buf, [](const wire::frame& x) { return x.kind == wire::frame_kind::arp; });
        r.note("the new interface carries it, with its MAC", g && g->arp.sha == *mac_addr::parse(mac_of("hwa0")));
        ::close(cap2);
    });
}

TEST(ControlAnnouncer, AMissingInterfaceIsENODEVNotAnException) {
    with_veth([](ns_report& r) {
        ctl::announcer a("nosuch0");
        r.check("garp", a.garp(v4), -ENODEV);
        r.check("na", a.na(v6), -ENODEV);
        r.check("counted", static_cast<long>(a.failed()), 2);
        r.check("nothing sent", static_cast<long>(a.sent()), 0);
    });
}
