// link_watch against the real kernel: carrier changes on a veth pair in a private network
// namespace, as the control thread would see them on the port's interface.

#include <gtest/gtest.h>

#include <poll.h>

#include <chrono>
#include <cstdlib>
#include <optional>
#include <system_error>

#include "control/link_watch.hpp"
#include "netns_child.hpp"

namespace ctl = heartwire::control;
using hwtest::ns_report;

namespace {

// 1 up, 0 down, -1 no change reported within 2 s. Waits on fd() as the control loop could.
long next_change(ctl::link_watch& w, const std::string& ifname) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{2};
    while (std::chrono::steady_clock::now() < deadline) {
        if (auto s = w.poll(ifname)) return *s ? 1 : 0;
        pollfd p{w.fd(), POLLIN, 0};
        ::poll(&p, 1, 50);
    }
    return -1;
}

void make_veth(ns_report& r) {
    r.check("create veth hwl0/hwl0p", std::system("ip link add hwl0 type veth peer name hwl0p"), 0);
    r.check("links up", std::system("ip link set hwl0 up && ip link set hwl0p up"), 0);
}

} // namespace

TEST(LinkWatch, PeerDownIsCarrierDownAndPeerUpIsCarrierUp) {
    hwtest::run_in_private_netns([](ns_report& r) {
        make_veth(r);
        ctl::link_watch w("hwl0");
        r.check("initial state up", w.state("hwl0").value_or(false), 1);
        r.check("nothing changed yet", w.poll("hwl0").has_value(), 0);
        r.check("peer down", std::system("ip link set hwl0p down"), 0);
        r.check("carrier down reported", next_change(w, "hwl0"), 0);
        r.check("peer up", std::system("ip link set hwl0p up"), 0);
        r.check("carrier up reported", next_change(w, "hwl0"), 1);
        r.check("reported once", w.poll("hwl0").has_value(), 0);
    });
}

TEST(LinkWatch, AdminDownAndDeletionAreCarrierDown) {
    hwtest::run_in_private_netns([](ns_report& r) {
        make_veth(r);
        ctl::link_watch w("hwl0");
        r.check("set hwl0 down", std::system("ip link set hwl0 down"), 0);
        r.check("admin down reported as down", next_change(w, "hwl0"), 0);
        r.check("set hwl0 up", std::system("ip link set hwl0 up"), 0);
        r.check("up again", next_change(w, "hwl0"), 1);
        r.check("delete the pair", std::system("ip link del hwl0"), 0);
        r.check("deleted reported as down", next_change(w, "hwl0"), 0);
    });
}

TEST(LinkWatch, StartsFromADownLinkAndOtherInterfacesDoNotCount) {
    hwtest::run_in_private_netns([](ns_report& r) {
        make_veth(r);
        r.check("create veth hwl1/hwl1p", std::system("ip link add hwl1 type veth peer name hwl1p"), 0);
        r.check("peer down first", std::system("ip link set hwl0p down"), 0);
        ctl::link_watch w("hwl0");
        r.check("initial state down", w.state("hwl0").value_or(true), 0);
        r.check("hwl1 up", std::system("ip link set hwl1 up && ip link set hwl1p up"), 0);
        r.check("another interface's change is not ours", next_change(w, "hwl0"), -1);
    });
}

TEST(LinkWatch, MissingInterfaceThrowsENODEV) {
    hwtest::run_in_private_netns([](ns_report& r) {
        try {
            ctl::link_watch w("hwnope0");
            r.note("constructor threw", false);
        } catch (const std::system_error& e) {
            r.check("errno", e.code().value(), ENODEV);
        }
    });
}

TEST(LinkWatch, ADownAndUpBetweenTwoPollsIsStillReportedAsABlip) {
    hwtest::run_in_private_netns([](ns_report& r) {
        make_veth(r);
        ctl::link_watch w("hwl0");
        // Both changes land before anyone polls: the level alone would say "nothing happened".
        r.check("blip", std::system("ip link set hwl0p down && ip link set hwl0p up"), 0);
        pollfd p{w.fd(), POLLIN, 0};
        ::poll(&p, 1, 200);
        r.check("the blip's down is reported", next_change(w, "hwl0"), 0);
        r.check("then the up", next_change(w, "hwl0"), 1);
        r.check("and nothing more", w.poll("hwl0").has_value(), 0);
    });
}
