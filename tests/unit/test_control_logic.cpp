// The control side's logic without EAL (issue 11 item 8): the kernel's addresses following
// the engine (control::address_keeper, real netlink in a private network namespace), and
// faults, drains and hook answers (control::group_control, real hook scripts), both driven
// through engine_link by a test engine that records the commands it is given.

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "control/address_keeper.hpp"
#include "control/group_control.hpp"
#include "control/hook_queue.hpp"
#include "control/hooks.hpp"
#include "control/netlink.hpp"
#include "heartwire/config.hpp"
#include "netns_child.hpp"

using namespace heartwire;
using namespace std::chrono_literals;
namespace ctl = heartwire::control;
namespace fs = std::filesystem;
using hwtest::ns_report;

namespace {

ipv4_prefix pfx(const char* s) { return *ipv4_prefix::parse(s); }
ipv6_prefix pfx6(const char* s) { return *ipv6_prefix::parse(s); }

// The engine side of engine_link: what it was told, in order, and the state it "publishes".
struct test_engine final : engine_link {
    std::vector<engine_command> cmds;
    std::vector<group_status> published;
    bool post(const engine_command& c) noexcept override {
        cmds.push_back(c);
        return true;
    }
    std::vector<group_status> group_statuses() const override { return published; }
    std::size_t count(fsm::command_kind k, std::uint16_t g) const {
        std::size_t n = 0;
        for (const auto& c : cmds) n += c.k == engine_command::kind::command && c.cmd == k && c.group == g;
        return n;
    }
};

ctl::group_addresses one_group() {
    ctl::group_addresses a;
    a.iface = "hwtest0";
    a.v4[0] = {pfx("169.254.10.100/24")};
    a.v6[0] = {pfx6("fd00:6877::100/64")};
    a.v4[1] = {pfx("169.254.10.101/24")};
    a.stages = true;
    return a;
}

bool has(ctl::netlink& nl, const std::string& ifname, const char* a) { return nl.has_address(ifname, ipv4_prefix::parse(a)->addr) == 1; }
bool has6(ctl::netlink& nl, const std::string& ifname, const char* a) { return nl.has_address(ifname, ipv6_prefix::parse(a)->addr) == 1; }

void in_netns(const std::function<void(ns_report&, ctl::netlink&)>& body) {
    hwtest::run_in_private_netns([&](ns_report& r) {
        int rc = std::system("ip link add hwtest0 type dummy 2>/dev/null");
        if (rc != 0) rc = std::system("ip link add hwtest0 type veth peer name hwtest0p && ip link set hwtest0p up");
        r.check("create hwtest0", rc, 0);
        r.check("links up", std::system("ip link set hwtest0 up && ip link set lo up"), 0);
        r.check("promote_secondaries", std::system("sysctl -qw net.ipv4.conf.hwtest0.promote_secondaries=1"), 0);
        ctl::netlink nl;
        body(r, nl);
    });
}

} // namespace

// ---------------------------------------------------------------- address_keeper

TEST(AddressKeeper, NetlinkListsAnInterfacesAddressesInOneCall) {
    in_netns([](ns_report& r, ctl::netlink& nl) {
        r.check("add v4", nl.add_address("hwtest0", pfx("169.254.10.100/24")), 0);
        r.check("add v6", nl.add_address("hwtest0", pfx6("fd00:6877::100/64")), 0);
        std::vector<ipv4_addr> v4;
        std::vector<ipv6_addr> v6;
        r.check("addresses()", nl.addresses("hwtest0", v4, v6), 0);
        r.check("one IPv4", static_cast<long>(v4.size()), 1);
        r.note("it is 169.254.10.100", !v4.empty() && v4[0] == pfx("169.254.10.100/24").addr);
        r.note("fd00:6877::100 among the IPv6 (beside the link-local)",
               std::find(v6.begin(), v6.end(), pfx6("fd00:6877::100/64").addr) != v6.end());
        r.check("no such interface", nl.addresses("hwtest9", v4, v6), -ENODEV);
    });
}

// The edge-triggered path: the engine's claims and releases, the monitor's copy on lo.
TEST(AddressKeeper, FollowsTheEnginesClaimsAndStagesThePrimaryOnLo) {
    in_netns([](ns_report& r, ctl::netlink& nl) {
        ctl::address_keeper k({one_group()}, nl);
        r.check("monitor claims its address", k.apply(0, fsm::address_id::monitor, true), 0);
        r.note("hwtest0 holds .101", has(nl, "hwtest0", "169.254.10.101/24"));
        r.note("staged", k.stage(0, true));
        r.note("lo holds .100 (served, unannounced)", has(nl, "lo", "169.254.10.100/32"));
        r.note("lo holds fd00:6877::100", has6(nl, "lo", "fd00:6877::100/128"));
        r.note("not held on the interface yet: not announced", !k.holds(0, pfx("169.254.10.100/24").addr));
        r.check("takeover: the primary addresses", k.apply(0, fsm::address_id::primary, true), 0);
        r.note("hwtest0 holds .100", has(nl, "hwtest0", "169.254.10.100/24"));
        r.note("hwtest0 holds fd00:6877::100", has6(nl, "hwtest0", "fd00:6877::100/64"));
        r.note("the copy on lo is gone", !has(nl, "lo", "169.254.10.100/32") && !k.staged(0));
        r.note("held: may be announced", k.holds(0, pfx("169.254.10.100/24").addr) && k.holds(0, pfx6("fd00:6877::100/64").addr));
        r.check("the monitor address released", k.apply(0, fsm::address_id::monitor, false), 0);
        r.note("hwtest0 keeps .100 (promoted)", has(nl, "hwtest0", "169.254.10.100/24") && !has(nl, "hwtest0", "169.254.10.101/24"));
        r.check("nothing needed repair", static_cast<long>(k.stats().repairs), 0);
    });
}

// The level-triggered path: a lost claim, an address removed by hand and a lost release are
// repaired at the second check that sees them; a difference an event explains is not.
TEST(AddressKeeper, ReconcileRepairsLostEventsAndAHandRemoval) {
    in_netns([](ns_report& r, ctl::netlink& nl) {
        ctl::address_keeper k({one_group()}, nl);
        std::vector<group_status> pub(1);
        pub[0].r = role::primary;
        pub[0].holds[0] = true; // the engine holds the primary address; its claim event was lost
        auto t = std::chrono::steady_clock::now();
        k.reconcile(pub, t);
        r.note("one look is not enough (publication lag)", !has(nl, "hwtest0", "169.254.10.100/24"));
        k.reconcile(pub, t + 100ms);
        r.check("not due before the period", static_cast<long>(k.stats().checks), 1);
        k.reconcile(pub, t += ctl::address_keeper::check_period);
        r.note("the second check repairs: added", has(nl, "hwtest0", "169.254.10.100/24"));
        r.note("and its IPv6", has6(nl, "hwtest0", "fd00:6877::100/64"));
        r.note("held now (announced again)", k.holds(0, pfx("169.254.10.100/24").addr));
        r.check("one repair", static_cast<long>(k.stats().repairs), 1);

        r.check("an operator removes it", std::system("ip addr del 169.254.10.100/24 dev hwtest0"), 0);
        k.reconcile(pub, t += ctl::address_keeper::check_period);
        k.reconcile(pub, t += ctl::address_keeper::check_period);
        r.note("put back", has(nl, "hwtest0", "169.254.10.100/24"));

        // A difference with an event in between: the event is the explanation, not a fault.
        pub[0].holds[0] = false;
        k.reconcile(pub, t += ctl::address_keeper::check_period);
        k.stage(0, false); // an event for the group (a role change)
        k.reconcile(pub, t += ctl::address_keeper::check_period);
        r.note("not removed across an event", has(nl, "hwtest0", "169.254.10.100/24"));
        k.reconcile(pub, t += ctl::address_keeper::check_period);
        r.note("the lost release repaired: removed", !has(nl, "hwtest0", "169.254.10.100/24") && !k.holds(0, pfx("169.254.10.100/24").addr));

        // The monitor's copy on lo: missing while monitor is repaired too.
        pub[0].r = role::monitor;
        pub[0].holds[1] = true;
        k.reconcile(pub, t += ctl::address_keeper::check_period);
        k.reconcile(pub, t += ctl::address_keeper::check_period);
        r.note("monitor address added", has(nl, "hwtest0", "169.254.10.101/24"));
        r.note("staged copy added", has(nl, "lo", "169.254.10.100/32") && k.staged(0));
        r.check("repairs", static_cast<long>(k.stats().repairs), 5);
        r.check("no netlink failure", static_cast<long>(k.stats().failures), 0);

        // A publication that did not move (the engine stalled): never judged, however stale.
        pub[0].holds[1] = false;
        k.reconcile(pub, t += ctl::address_keeper::check_period, 1000);
        k.reconcile(pub, t += ctl::address_keeper::check_period, 1000);
        k.reconcile(pub, t += ctl::address_keeper::check_period, 1000);
        r.note("a stalled engine's stale state removes nothing", has(nl, "hwtest0", "169.254.10.101/24"));
    });
}

// heartwired --release-addresses and the start after a kill: what a dead run left goes.
TEST(AddressKeeper, ReleaseAllRemovesWhatAKilledRunLeft) {
    in_netns([](ns_report& r, ctl::netlink& nl) {
        r.check("left behind", std::system("ip addr add 169.254.10.100/24 dev hwtest0 && ip addr add 169.254.10.101/24 dev hwtest0"
                                           " && ip addr add 169.254.10.100/32 dev lo && ip addr add 169.254.10.7/24 dev hwtest0"),
                0);
        ctl::address_keeper k({one_group()}, nl);
        r.check("three of ours removed", static_cast<long>(k.release_all()), 3);
        r.note("none of ours stays", !has(nl, "hwtest0", "169.254.10.100/24") && !has(nl, "hwtest0", "169.254.10.101/24") &&
                                         !has(nl, "lo", "169.254.10.100/32"));
        r.note("the host's own address stays", has(nl, "hwtest0", "169.254.10.7/24"));
    });
}

// ---------------------------------------------------------------- group_control

namespace {

struct temp_dir {
    fs::path path;
    temp_dir() {
        char tmpl[] = "/tmp/hwgc-test-XXXXXX";
        path = ::mkdtemp(tmpl);
    }
    ~temp_dir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
    std::string script(const char* name, const std::string& body) const {
        const auto p = (path / name).string();
        std::ofstream(p) << "#!/bin/sh\n" << body << "\n";
        fs::permissions(p, fs::perms::owner_all);
        return p;
    }
};

cfg::config two_groups(const std::string& hooks = "") {
    auto r = cfg::parse("[node]\nname = \"a\"\nid = 1\n[port]\ndevice = \"net_null0\"\n[auth]\nmode = \"none\"\n"
                        "[[group]]\nid = 10\nprimary = \"169.254.10.100/24\"\nmonitor = \"169.254.10.101/24\"\n"
                        "[[group]]\nid = 11\nprimary = \"169.254.10.110/24\"\nmonitor = \"169.254.10.111/24\"\n" +
                        hooks);
    EXPECT_TRUE(r.cfg) << (r.errors.empty() ? "" : r.errors[0].to_string());
    return r.cfg ? *r.cfg : cfg::config{};
}

// Polls the queue until `n` completions have reached the group control (5 s at most).
void settle(ctl::hook_queue& q, ctl::group_control& gc, std::size_t n) {
    std::size_t seen = 0;
    for (int i = 0; i < 5000 && seen < n; ++i) {
        seen += q.poll([&](const ctl::hook_completion& h) { gc.on_hook_done(h); });
        if (seen < n) std::this_thread::sleep_for(1ms);
    }
    EXPECT_EQ(seen, n);
}

} // namespace

// A failing health check and an application fault are one fault: raised once, cleared once
// the last cause goes; a group's own fault leaves the other group alone.
TEST(GroupControl, FaultCausesMergeIntoOneRaiseAndOneClear) {
    const auto c = two_groups();
    ctl::hook_runner runner{1s};
    ctl::hook_queue q{runner};
    test_engine e;
    ctl::group_control gc(c, q, e);
    ctl::health_monitor::check_state app_down, check_fails;
    app_down.cfg.name = "app";
    app_down.kind = fsm::fault_kind::process;
    app_down.last_detail = "not running";
    check_fails.cfg.name = "check";
    check_fails.kind = fsm::fault_kind::script;
    check_fails.last_detail = "exit 1";
    gc.health(0, &app_down);
    EXPECT_EQ(e.count(fsm::command_kind::fault, 0), 1u);
    EXPECT_EQ(e.cmds.back().arg, static_cast<std::uint32_t>(fsm::fault_kind::process));
    gc.health(0, &app_down);
    EXPECT_EQ(e.cmds.size(), 1u) << "level, not edge: the same state again says nothing";
    EXPECT_EQ(gc.fault(std::nullopt, fsm::fault_kind::application, "disk full"), "ok: fault application reported\n");
    EXPECT_EQ(e.count(fsm::command_kind::fault, 0), 1u) << "group 10 was already in fault";
    EXPECT_EQ(e.count(fsm::command_kind::fault, 1), 1u);
    EXPECT_EQ(gc.fault_detail(), "application:disk full");
    gc.health(0, nullptr);
    EXPECT_EQ(e.count(fsm::command_kind::fault_cleared, 0), 0u) << "the application fault still holds";
    EXPECT_EQ(gc.clear(std::nullopt), "ok: fault cleared; the node recovers and rejoins\n");
    EXPECT_EQ(e.count(fsm::command_kind::fault_cleared, 0), 1u);
    EXPECT_EQ(e.count(fsm::command_kind::fault_cleared, 1), 1u);
    EXPECT_EQ(gc.clear(std::nullopt), "ok: no application fault to clear\n");

    // One group's fault: only that group.
    e.cmds.clear();
    EXPECT_EQ(gc.fault(1, fsm::fault_kind::application, ""), "ok: group 11: fault application reported\n");
    EXPECT_EQ(e.cmds.size(), 1u);
    EXPECT_EQ(e.cmds[0].group, 1u);
    gc.health(1, &check_fails);
    EXPECT_EQ(e.cmds.size(), 1u) << "already in fault";
    EXPECT_EQ(gc.clear(1), "ok: group 11: a health check still fails\n");
    EXPECT_EQ(e.count(fsm::command_kind::fault_cleared, 1), 0u);
    EXPECT_TRUE(gc.faulted(1));
    EXPECT_FALSE(gc.faulted(0));
}

// Without a drain hook, a drain ends when the application says nothing is in flight.
TEST(GroupControl, DrainEndsWhenTheApplicationHasNothingInFlight) {
    const auto c = two_groups();
    ctl::hook_runner runner{1s};
    ctl::hook_queue q{runner};
    test_engine e;
    ctl::group_control gc(c, q, e);
    gc.inflight(std::nullopt, 3);
    gc.on_drain(0);
    EXPECT_TRUE(gc.draining(0));
    EXPECT_EQ(e.count(fsm::command_kind::drain_done, 0), 0u) << "3 requests in flight";
    gc.inflight(std::nullopt, 1);
    EXPECT_EQ(e.count(fsm::command_kind::drain_done, 0), 0u);
    gc.inflight(std::nullopt, 0);
    EXPECT_EQ(e.count(fsm::command_kind::drain_done, 0), 1u);
    EXPECT_FALSE(gc.draining(0));
    gc.on_drain(1); // nothing in flight now: at once
    EXPECT_EQ(e.count(fsm::command_kind::drain_done, 1), 1u);
}

// The drain hook's exit ends the drain (with what the application still has in flight); an
// undrain abandons it, so its late exit reports nothing, and the undrain hook runs after it.
TEST(GroupControl, DrainHookEndsTheDrainAndAnUndrainAbandonsIt) {
    temp_dir d;
    const std::string log = (d.path / "runs").string();
    const auto drain = d.script("drain", "echo drain \"$@\" >> " + log + "; sleep 0.2");
    const auto undrain = d.script("undrain", "echo undrain \"$@\" >> " + log);
    const auto c = two_groups("[hooks]\ndrain = \"" + drain + "\"\nundrain = \"" + undrain + "\"\n");
    ctl::hook_runner runner{5s};
    ctl::hook_queue q{runner};
    test_engine e;
    ctl::group_control gc(c, q, e);
    gc.inflight(std::nullopt, 2);
    gc.on_drain(0);
    EXPECT_EQ(e.cmds.size(), 0u) << "the hook runs first";
    settle(q, gc, 1);
    ASSERT_EQ(e.count(fsm::command_kind::drain_done, 0), 1u);
    EXPECT_EQ(e.cmds.back().arg, 2u) << "what is still in flight goes with it";

    gc.on_drain(0);
    gc.on_undrain(0, 2, 0);
    EXPECT_FALSE(gc.draining(0));
    settle(q, gc, 2); // the drain, then the undrain after it
    EXPECT_EQ(e.count(fsm::command_kind::drain_done, 0), 1u) << "the abandoned drain reports nothing";
    std::ifstream in(log);
    std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_EQ(all, "drain 10\ndrain 10\nundrain 2 10\n");
}

// One fence per peer however many groups ask; every group that asked is answered once.
TEST(GroupControl, OneFenceRunAnswersEveryGroupThatAsked) {
    temp_dir d;
    const std::string log = (d.path / "runs").string();
    const auto fence = d.script("fence", "echo fence \"$@\" >> " + log + "; sleep 0.2");
    const auto c = two_groups("[hooks]\nfence = \"" + fence + "\"\n");
    ctl::hook_runner runner{5s};
    ctl::hook_queue q{runner};
    test_engine e;
    ctl::group_control gc(c, q, e);
    fsm::action a;
    a.kind = fsm::action_kind::run_hook;
    a.hook = fsm::hook_kind::fence;
    a.peer_id = 2;
    gc.on_run_hook(0, a, 0); // runs
    gc.on_run_hook(1, a, 0); // waits
    gc.on_run_hook(0, a, 0); // merged into the waiting one
    EXPECT_EQ(gc.pending_hooks(), 3u);
    settle(q, gc, 2);
    EXPECT_EQ(q.counters().started, 2u);
    std::vector<std::uint16_t> answered;
    for (const auto& cmd : e.cmds) {
        EXPECT_EQ(cmd.k, engine_command::kind::hook_done);
        EXPECT_EQ(cmd.hook, fsm::hook_kind::fence);
        EXPECT_TRUE(cmd.ok);
        answered.push_back(cmd.group);
    }
    EXPECT_EQ(answered, (std::vector<std::uint16_t>{0, 1, 0})) << "the first run answers group 10; the merged one both";
    EXPECT_EQ(gc.pending_hooks(), 0u);

    // A request whose hook a reload took away is answered, failed, not left waiting.
    const auto none = two_groups();
    ctl::group_control bare(none, q, e);
    e.cmds.clear();
    bare.on_run_hook(1, a, 0);
    ASSERT_EQ(e.cmds.size(), 1u);
    EXPECT_FALSE(e.cmds[0].ok);
    EXPECT_EQ(e.cmds[0].group, 1u);
}
