// The role state machine on a fake clock, one test per rule, named by scenario.
#include <gtest/gtest.h>

#include "sim_fixtures.hpp"

using namespace heartwire;
using namespace heartwire::sim;
using fsm::action_kind;
using fsm::address_id;

// ---------------------------------------------------------------- boot (seed 002 FIG. 1, 2)

TEST(Fsm, LoneNodeProbesThePrimaryAddressThenClaimsIt) {
    lone n(test_params(1));
    n.start();
    EXPECT_EQ(n.s.r, role::probe_primary);
    n.tick_until(35 * ms);
    EXPECT_EQ(n.out.count(action_kind::send_arp_probe), 3u) << "RFC 5227: discovery_probes probes";
    EXPECT_EQ(n.s.r, role::probe_primary) << "still inside discovery_wait";
    n.tick_until(45 * ms);
    EXPECT_EQ(n.s.r, role::primary);
    EXPECT_TRUE(n.s.holds[0]);
    EXPECT_EQ(n.s.epoch, 1u);
    const auto* claim = n.out.last(action_kind::claim_address);
    ASSERT_NE(claim, nullptr);
    EXPECT_EQ(claim->which, address_id::primary);
    EXPECT_GE(n.out.count(action_kind::send_garp), 1u);
}

TEST(Fsm, GarpBurstHasTheConfiguredRepeatAndSpacingThenRefreshes) {
    auto p = test_params(1);
    p.garp_repeat = 4;
    p.garp_interval_ns = 200 * us;
    p.garp_refresh_ns = 50 * ms;
    lone n(p);
    n.start();
    while (n.s.r != role::primary && n.now < 100 * ms) n.tick_until(n.now + 10 * us, 10 * us);
    ASSERT_EQ(n.s.r, role::primary);
    const std::uint64_t claimed = n.s.role_since_ns;
    EXPECT_EQ(n.out.count(action_kind::send_garp), 1u) << "the first GARP goes out with the claim";
    n.out.clear();
    n.tick_until(claimed + 2 * ms, 10 * us);
    EXPECT_EQ(n.out.count(action_kind::send_garp), 3u) << "the rest of the burst, 200 us apart";
    n.out.clear();
    n.tick_until(claimed + 60 * ms, 10 * us);
    EXPECT_EQ(n.out.count(action_kind::send_garp), 1u) << "one refresh after refresh_ms";
}

TEST(Fsm, AnsweredPrimaryProbeLeadsToMonitorRole) {
    network net;
    net.add(test_params(1));
    net.add(test_params(2));
    net.start(0);
    net.run_for(80 * ms);
    ASSERT_EQ(net.role_of(0), role::primary);
    net.start(1);
    ASSERT_TRUE(net.run_until([&] { return net.role_of(1) == role::monitor; }, 200 * ms));
    EXPECT_EQ(net.role_of(0), role::primary);
    EXPECT_EQ(net.holders(address_id::primary), 1u);
    EXPECT_EQ(net.holders(address_id::monitor), 1u);
}

TEST(Fsm, BothAddressesHeldLeadsToStandby) {
    auto net = formed_pair();
    net.add(test_params(3));
    net.start(2);
    ASSERT_TRUE(net.run_until([&] { return net.role_of(2) == role::standby; }, 300 * ms));
    net.run_for(300 * ms);
    EXPECT_EQ(net.role_of(2), role::standby) << "keeps re-probing, stays standby while the monitor answers";
    EXPECT_EQ(net.count_role(role::primary), 1u);
    EXPECT_EQ(net.count_role(role::monitor), 1u);
}

TEST(Fsm, SimultaneousStartEndsWithOnePrimaryChosenByPriorityThenId) {
    network net;
    net.add(test_params(1, 100));
    net.add(test_params(2, 100));
    net.add(test_params(3, 50));
    for (std::size_t i = 0; i < 3; ++i) net.start(i);
    net.run_for(500 * ms);
    EXPECT_EQ(net.count_role(role::primary), 1u);
    EXPECT_EQ(net.count_role(role::monitor), 1u);
    EXPECT_EQ(net.count_role(role::standby), 1u);
    EXPECT_EQ(net.role_of(1), role::primary) << "equal priority: the larger node id wins";
    EXPECT_EQ(net.holders(address_id::primary), 1u);
}

// ---------------------------------------------------------------- detection (seed 000 claims 1, 3-5)

TEST(Fsm, MonitorAnswersKeepItFromTakingOver) {
    auto net = formed_pair();
    net.run_for(200 * ms);
    EXPECT_EQ(net.role_of(0), role::primary);
    EXPECT_EQ(net.role_of(1), role::monitor);
    EXPECT_GT(net.nodes[1].s.c.answers, 10'000u);
    EXPECT_EQ(net.nodes[1].s.c.takeovers, 0u);
}

TEST(Fsm, MonitorTakesOverExactlyAfterMissIntervals) {
    auto net = formed_pair();
    auto& mon = net.nodes[1];
    // Line the kill up with the monitor's next probe, so the first unanswered probe is known.
    ASSERT_TRUE(net.run_until([&] { return mon.s.det.next_probe_ns() <= net.now + net.tick_step; }, 1 * ms));
    net.kill(0);
    const std::uint64_t last_answer = mon.s.det.last_answer_ns();
    ASSERT_TRUE(net.run_until([&] { return net.role_of(1) == role::primary; }, 1 * ms));
    EXPECT_EQ(net.now, last_answer + 3 * 10 * us);
    const auto* t = mon.out.last(action_kind::takeover);
    ASSERT_NE(t, nullptr);
    EXPECT_EQ(t->peer_id, 1u);
    EXPECT_EQ(t->decided_ns, net.now);
}

TEST(Fsm, TakeoverClaimsWithALargerEpochReleasesMonitorAndSendsGarpFirst) {
    auto net = formed_pair();
    auto& mon = net.nodes[1];
    const std::uint64_t epoch = net.nodes[0].s.epoch;
    const std::size_t mark = mon.out.all.size();
    net.kill(0);
    ASSERT_TRUE(net.run_until([&] { return net.role_of(1) == role::primary; }, 1 * ms));
    EXPECT_EQ(mon.s.epoch, epoch + 1);
    EXPECT_TRUE(mon.s.holds[0]);
    EXPECT_FALSE(mon.s.holds[1]) << "seed 001 claim 1: the monitor address is freed";
    // Order: the takeover record, then the claim and its first GARP before anything else.
    std::vector<action_kind> order;
    for (std::size_t i = mark; i < mon.out.all.size(); ++i)
        if (mon.out.all[i].kind != action_kind::send_heartbeat) order.push_back(mon.out.all[i].kind);
    auto it = std::find(order.begin(), order.end(), action_kind::takeover);
    ASSERT_NE(it, order.end());
    ASSERT_LE(std::distance(it, order.end()), static_cast<long>(order.size()));
    EXPECT_EQ(*(it + 1), action_kind::claim_address);
    EXPECT_EQ(*(it + 2), action_kind::send_garp);
    EXPECT_EQ(net.client_arp_primary(), mon.s.p.mac) << "the client's ARP entry follows the GARP";
}

TEST(Fsm, LateAnswerAfterTakeoverDoesNotFlipRolesBack) {
    auto net = formed_pair();
    auto& mon = net.nodes[1];
    net.kill(0);
    ASSERT_TRUE(net.run_until([&] { return net.role_of(1) == role::primary; }, 1 * ms));
    // An ack for an old probe arrives from the old primary after the decision.
    wire::hb_msg ack;
    ack.type = wire::hb_type::ack;
    ack.role = static_cast<std::uint8_t>(role::primary);
    ack.node_id = 1;
    ack.epoch = 1;
    ack.priority = 100;
    ack.flags = wire::hb_flag_holds_primary;
    ack.ack_seq = mon.s.det.last_sent_seq();
    const auto f = hb_frame(net.nodes[0].s.p.mac, mon.s.p.mac, ack);
    fsm::event ev{fsm::event_kind::frame, &f};
    fsm::step(mon.s, ev, net.now, mon.out);
    EXPECT_EQ(mon.s.r, role::primary);
    EXPECT_TRUE(mon.s.holds[0]);
}

TEST(Fsm, PrimaryAnswersProbesEchoingSequenceAndTimestamp) {
    auto p = test_params(1);
    lone n(p);
    n.start();
    n.tick_until(50 * ms);
    ASSERT_EQ(n.s.r, role::primary);
    wire::hb_msg probe;
    probe.type = wire::hb_type::probe;
    probe.role = static_cast<std::uint8_t>(role::monitor);
    probe.node_id = 2;
    probe.ack_seq = 77; // the probe's identity for the monitor's detector
    probe.ts_ns = 123456;
    probe.flags = wire::hb_flag_holds_monitor;
    const mac_addr mon_mac{{2, 0, 0, 0, 0, 2}};
    n.out.clear();
    n.rx(hb_frame(mon_mac, p.mac, probe));
    const auto* a = n.out.last(action_kind::send_heartbeat);
    ASSERT_NE(a, nullptr);
    EXPECT_EQ(a->hb.type, wire::hb_type::ack);
    EXPECT_EQ(a->hb.ack_seq, 77u);
    EXPECT_EQ(a->hb.ts_echo_ns, 123456u);
    EXPECT_EQ(a->dst, mon_mac);
    EXPECT_TRUE(n.s.monitor_alive) << "seed 003 claim 3: probes are the monitor's heartbeat";
}

TEST(Fsm, PrimaryNoticesASilentMonitor) {
    auto net = formed_pair();
    EXPECT_TRUE(net.nodes[0].s.monitor_alive);
    net.kill(1);
    net.run_for(150 * ms);
    EXPECT_FALSE(net.nodes[0].s.monitor_alive);
    EXPECT_EQ(net.nodes[0].s.c.monitor_lost, 1u);
    EXPECT_EQ(net.role_of(0), role::primary);
}

TEST(Fsm, CleanShutdownOfThePrimaryHandsOverAtOnce) {
    auto net = formed_pair();
    net.stop_gracefully(0);
    ASSERT_TRUE(net.run_until([&] { return net.role_of(1) == role::primary; }, 20 * us));
    EXPECT_EQ(net.nodes[1].s.c.takeovers, 1u);
    EXPECT_EQ(net.nodes[0].out.count(action_kind::release_address), 1u);
}

// ---------------------------------------------------------------- addresses held: ARP and ICMP

TEST(Fsm, HeldAddressesAnswerArpRequestsAndProbes) {
    lone n(test_params(1));
    n.start();
    n.tick_until(50 * ms);
    ASSERT_TRUE(n.s.holds[0]);
    const mac_addr client{{2, 0, 0, 0, 0, 0x10}};
    n.out.clear();
    n.rx(arp_frame(client, mac_addr::broadcast(),
                   {wire::arp_op_request, client, ip("169.254.10.10"), {}, ip("169.254.10.100")}));
    const auto* r = n.out.last(action_kind::send_arp_reply);
    ASSERT_NE(r, nullptr);
    EXPECT_EQ(r->dst, client);
    EXPECT_EQ(r->arp.op, wire::arp_op_reply);
    EXPECT_EQ(r->arp.sha, n.s.p.mac);
    EXPECT_EQ(r->arp.spa, ip("169.254.10.100"));
    EXPECT_EQ(r->arp.tpa, ip("169.254.10.10"));
    n.out.clear();
    n.rx(arp_frame(client, mac_addr::broadcast(), {wire::arp_op_request, client, {}, {}, ip("169.254.10.100")}));
    EXPECT_EQ(n.out.count(action_kind::send_arp_reply), 1u) << "RFC 5227 probe defended";
    n.out.clear();
    n.rx(arp_frame(client, mac_addr::broadcast(),
                   {wire::arp_op_request, client, ip("169.254.10.10"), {}, ip("169.254.10.101")}));
    EXPECT_EQ(n.out.count(action_kind::send_arp_reply), 0u) << "the monitor address is not ours";
}

TEST(Fsm, EchoRequestsAreAnsweredOnlyInExclusiveMode) {
    for (bool exclusive : {true, false}) {
        auto p = test_params(1);
        p.answer_icmp = exclusive;
        lone n(p);
        n.start();
        n.tick_until(50 * ms);
        wire::frame f;
        f.kind = wire::frame_kind::icmp_echo;
        f.eth = {p.mac, mac_addr{{2, 0, 0, 0, 0, 0x10}}, wire::ethertype_ipv4};
        f.echo.src = ip("169.254.10.10");
        f.echo.dst = ip("169.254.10.100");
        n.out.clear();
        n.rx(f);
        EXPECT_EQ(n.out.count(action_kind::reflect_echo), exclusive ? 1u : 0u) << "exclusive=" << exclusive;
    }
}

TEST(Fsm, IcmpEchoOfThePrimaryAddressWorksAsTheProbe) {
    // Seed claim 8: the monitor pings the primary address itself.
    network net;
    auto p0 = test_params(1), p1 = test_params(2);
    p0.probe = p1.probe = cfg::probe_kind::icmp;
    p0.require_auth = p1.require_auth = false; // an echo reply carries no tag: unauthenticated mode only
    net.add(p0);
    net.add(p1);
    net.start(0);
    net.run_for(80 * ms);
    net.start(1);
    ASSERT_TRUE(net.run_until([&] { return net.role_of(1) == role::monitor; }, 200 * ms));
    net.run_for(50 * ms);
    EXPECT_EQ(net.role_of(1), role::monitor);
    EXPECT_GT(net.nodes[1].s.c.answers, 1000u);
    EXPECT_EQ(net.nodes[1].out.count(action_kind::send_heartbeat) < net.nodes[1].s.c.answers, true)
        << "no heartbeat probes in icmp mode";
    net.kill(0);
    ASSERT_TRUE(net.run_until([&] { return net.role_of(1) == role::primary; }, 100 * us));
}

// ---------------------------------------------------------------- epochs and stay-down

TEST(Fsm, StalledPrimaryThatResumesStepsDownAndStaysDownWhileItIsRebooted) {
    auto net = formed_pair([](auto& a, auto& b) { a.has_boot_peer = b.has_boot_peer = true; });
    net.kill(0); // SIGSTOP: the process keeps its state
    ASSERT_TRUE(net.run_until([&] { return net.role_of(1) == role::primary; }, 1 * ms));
    net.run_for(30 * ms);
    net.nodes[0].up = true; // SIGCONT: it still believes it is primary at the old epoch
    ASSERT_TRUE(net.run_until([&] { return net.role_of(0) == role::fenced; }, 50 * ms));
    EXPECT_FALSE(net.nodes[0].s.holds[0]);
    EXPECT_EQ(net.holders(address_id::primary), 1u);
    net.run_for(500 * ms);
    EXPECT_EQ(net.role_of(0), role::fenced) << "seed 003 claim 2: holds nothing while it hears stay-down";
    EXPECT_GT(net.nodes[0].s.c.stay_downs_heard, 10u);
    EXPECT_EQ(net.client_arp_primary(), net.nodes[1].s.p.mac);
}

TEST(Fsm, StalledPrimaryWithNoRebootHookStepsDownAndRejoinsAsMonitor) {
    auto net = formed_pair();
    net.kill(0);
    ASSERT_TRUE(net.run_until([&] { return net.role_of(1) == role::primary; }, 1 * ms));
    net.run_for(30 * ms);
    net.nodes[0].up = true;
    ASSERT_TRUE(net.run_until([&] { return !net.nodes[0].s.holds[0]; }, 50 * ms));
    EXPECT_EQ(net.nodes[1].s.c.stay_downs_sent, 0u) << "nobody reboots it, so nobody holds it down";
    ASSERT_TRUE(net.run_until([&] { return net.role_of(0) == role::monitor; }, 500 * ms));
    EXPECT_EQ(net.role_of(1), role::primary);
    EXPECT_EQ(net.holders(address_id::primary), 1u);
    EXPECT_EQ(net.client_arp_primary(), net.nodes[1].s.p.mac);
}

TEST(Fsm, PartitionHealsWithOnePrimaryTheNewerEpoch) {
    auto net = formed_pair();
    net.cut[0] = true; // the primary is cut off but alive
    ASSERT_TRUE(net.run_until([&] { return net.role_of(1) == role::primary; }, 1 * ms));
    net.run_for(50 * ms);
    EXPECT_EQ(net.holders(address_id::primary), 2u) << "both hold it while partitioned";
    net.cut[0] = false;
    ASSERT_TRUE(net.run_until([&] { return net.holders(address_id::primary) == 1; }, 100 * ms));
    EXPECT_TRUE(net.nodes[1].s.holds[0]) << "the larger epoch keeps it";
    net.run_for(5 * ms);
    EXPECT_EQ(net.client_arp_primary(), net.nodes[1].s.p.mac) << "the winner's GARP is the last word";
}

TEST(Fsm, EqualEpochConflictIsWonByPriority) {
    lone n(test_params(1, 100));
    n.start();
    n.tick_until(50 * ms);
    ASSERT_TRUE(n.s.holds[0]);
    wire::hb_msg other;
    other.type = wire::hb_type::announce;
    other.role = static_cast<std::uint8_t>(role::primary);
    other.node_id = 9;
    other.priority = 200;
    other.epoch = n.s.epoch;
    other.flags = wire::hb_flag_holds_primary;
    n.rx(hb_frame(mac_addr{{2, 0, 0, 0, 0, 9}}, mac_addr::heartwire_group(), other));
    EXPECT_FALSE(n.s.holds[0]);
    EXPECT_EQ(n.s.c.step_downs, 1u);
}

TEST(Fsm, RestartedOldPrimaryRejoinsWithoutTakingTheAddressBack) {
    auto net = formed_pair();
    net.kill(0);
    ASSERT_TRUE(net.run_until([&] { return net.role_of(1) == role::primary; }, 1 * ms));
    net.run_for(10 * ms);
    net.restart(0); // boot_peer brought it back as a fresh process
    net.run_for(300 * ms);
    EXPECT_EQ(net.role_of(1), role::primary);
    EXPECT_EQ(net.role_of(0), role::monitor) << "no preemption: it takes the free monitor address";
    EXPECT_EQ(net.holders(address_id::primary), 1u);
    EXPECT_FALSE(net.nodes[1].s.stay_down_active) << "a rebooted node needs no more stay-down";
}

TEST(Fsm, TakeoverAsksForTheFailedPrimaryToBeBooted) {
    auto net = formed_pair([](fsm::params&, fsm::params& b) { b.has_boot_peer = true; });
    net.kill(0);
    ASSERT_TRUE(net.run_until([&] { return net.role_of(1) == role::primary; }, 1 * ms));
    const auto* h = net.nodes[1].out.last(action_kind::run_hook);
    ASSERT_NE(h, nullptr);
    EXPECT_EQ(h->hook, fsm::hook_kind::boot_peer);
    EXPECT_EQ(h->peer_id, 1u);
    EXPECT_EQ(h->peer_mac, net.nodes[0].s.p.mac);
}

TEST(Fsm, RequiredFenceMustSucceedBeforeTheClaim) {
    auto net = formed_pair([](fsm::params&, fsm::params& b) { b.has_fence = true; b.require_fence = true; });
    net.kill(0);
    net.run_for(1 * ms);
    auto& mon = net.nodes[1];
    EXPECT_EQ(mon.s.r, role::monitor) << "waits for the fence";
    EXPECT_TRUE(mon.s.fence_pending);
    EXPECT_EQ(mon.out.last(action_kind::run_hook)->hook, fsm::hook_kind::fence);
    fsm::event failed{fsm::event_kind::hook_done, nullptr, fsm::hook_kind::fence, false};
    fsm::step(mon.s, failed, net.now, mon.out);
    EXPECT_EQ(mon.s.r, role::monitor) << "a failed fence never claims";
    fsm::event ok{fsm::event_kind::hook_done, nullptr, fsm::hook_kind::fence, true};
    fsm::step(mon.s, ok, net.now, mon.out);
    EXPECT_EQ(mon.s.r, role::primary);
    EXPECT_TRUE(mon.s.holds[0]);
}

// ---------------------------------------------------------------- N+M (seed 002 [0029])

TEST(Fsm, FirstStandbyTakesTheFreedMonitorAddress) {
    auto net = formed_pair();
    net.add(test_params(3, 50));
    net.add(test_params(4, 150));
    net.start(2);
    net.start(3);
    ASSERT_TRUE(net.run_until([&] { return net.count_role(role::standby) == 2; }, 300 * ms));
    net.kill(0);
    ASSERT_TRUE(net.run_until([&] { return net.role_of(1) == role::primary; }, 1 * ms));
    ASSERT_TRUE(net.run_until([&] { return net.count_role(role::monitor) == 1; }, 300 * ms));
    EXPECT_EQ(net.role_of(3), role::monitor) << "the higher-priority standby is first";
    EXPECT_EQ(net.role_of(2), role::standby);
}

TEST(Fsm, RepeatedKillsMoveTheChainUpUntilOneNodeIsLeft) {
    network net;
    for (std::uint32_t id = 1; id <= 4; ++id) net.add(test_params(id, static_cast<std::uint8_t>(200 - id * 10)));
    for (std::size_t i = 0; i < 4; ++i) {
        net.start(i);
        net.run_for(100 * ms);
    }
    net.run_for(300 * ms);
    ASSERT_EQ(net.role_of(0), role::primary);
    ASSERT_EQ(net.count_role(role::monitor), 1u);
    for (std::size_t killed = 0; killed < 3; ++killed) {
        std::size_t primary = 0;
        for (std::size_t i = 0; i < 4; ++i)
            if (net.nodes[i].up && net.role_of(i) == role::primary) primary = i;
        net.kill(primary);
        ASSERT_TRUE(net.run_until([&] { return net.count_role(role::primary) == 1; }, 500 * ms))
            << "after kill " << killed;
        if (killed < 2) {
            ASSERT_TRUE(net.run_until([&] { return net.count_role(role::monitor) == 1; }, 500 * ms))
                << "after kill " << killed;
        }
    }
    EXPECT_EQ(net.count_role(role::primary), 1u);
    EXPECT_EQ(net.holders(address_id::primary), 1u);
}

// ---------------------------------------------------------------- switchover (seed 003 claims 1, 4, 16)

namespace {
const fsm::action* last_note(const recorder& r, fsm::note n) {
    for (auto it = r.all.rbegin(); it != r.all.rend(); ++it)
        if (it->kind == action_kind::notice && it->what == n) return &*it;
    return nullptr;
}
} // namespace

TEST(Fsm, SwitchoverFromTheMonitorDrainsThePrimaryThenMovesTheAddress) {
    auto net = formed_pair();
    net.drain_takes = 20 * ms;
    net.drain_leaves_inflight = 2;
    net.command(1, fsm::command_kind::switchover);
    EXPECT_TRUE(net.nodes[1].s.switchover_pending);
    ASSERT_TRUE(net.run_until([&] { return net.role_of(0) == role::draining; }, 1 * ms));
    EXPECT_EQ(net.nodes[0].out.count(action_kind::drain), 1u) << "the application is told to drain";
    net.run_for(10 * ms);
    EXPECT_EQ(net.role_of(0), role::draining) << "still finishing in-flight work";
    EXPECT_TRUE(net.nodes[0].s.holds[0]) << "keeps serving while it drains";
    EXPECT_EQ(net.role_of(1), role::monitor);
    ASSERT_TRUE(net.run_until([&] { return net.role_of(1) == role::primary; }, 50 * ms));
    EXPECT_EQ(net.nodes[1].s.last_inflight_reported, 2u) << "seed 003 claim 16: the compilation";
    EXPECT_EQ(net.nodes[1].s.c.takeovers, 1u);
    EXPECT_EQ(net.nodes[1].out.count(action_kind::run_hook), 0u) << "a handover needs no fence or reboot";
    ASSERT_TRUE(net.run_until([&] { return net.role_of(0) == role::monitor; }, 300 * ms)) << "old primary rejoins";
    EXPECT_EQ(net.holders(address_id::primary), 1u);
    EXPECT_EQ(net.client_arp_primary(), net.nodes[1].s.p.mac);
}

TEST(Fsm, SwitchoverFromThePrimaryAsksTheMonitorToTakeOver) {
    auto net = formed_pair();
    net.command(0, fsm::command_kind::switchover);
    ASSERT_TRUE(net.run_until([&] { return net.role_of(1) == role::primary; }, 50 * ms));
    ASSERT_TRUE(net.run_until([&] { return net.role_of(0) == role::monitor; }, 300 * ms));
    EXPECT_EQ(net.holders(address_id::primary), 1u);
}

TEST(Fsm, DrainDeadlineHandsOverEvenIfTheApplicationNeverAnswers) {
    network net;
    auto p0 = test_params(1), p1 = test_params(2);
    p0.drain_timeout_ns = p1.drain_timeout_ns = 30 * ms;
    net.add(p0);
    net.add(p1);
    net.app_answers_drain = false;
    net.start(0);
    net.run_for(80 * ms);
    net.start(1);
    ASSERT_TRUE(net.run_until([&] { return net.role_of(1) == role::monitor; }, 200 * ms));
    net.run_for(1 * ms);
    net.command(1, fsm::command_kind::switchover);
    net.run_for(25 * ms);
    EXPECT_EQ(net.role_of(0), role::draining);
    ASSERT_TRUE(net.run_until([&] { return net.role_of(1) == role::primary; }, 20 * ms));
}

TEST(Fsm, SwitchoverWithoutAMonitorIsRefused) {
    lone n(test_params(1));
    n.start();
    n.tick_until(50 * ms);
    ASSERT_EQ(n.s.r, role::primary);
    fsm::event ev;
    ev.kind = fsm::event_kind::command;
    ev.cmd = fsm::command_kind::switchover;
    fsm::step(n.s, ev, n.now, n.out);
    EXPECT_NE(last_note(n.out, fsm::note::switchover_refused), nullptr);
    EXPECT_EQ(n.s.r, role::primary);
}

TEST(Fsm, MonitorThatNeverHearsDrainedGivesUpTheSwitchover) {
    auto net = formed_pair();
    net.app_answers_drain = false;
    net.nodes[0].s.p.drain_timeout_ns = 10'000 * ms; // the primary is still draining...
    net.nodes[1].s.p.drain_timeout_ns = 10 * ms;     // ...long after the monitor stopped waiting
    net.command(1, fsm::command_kind::switchover);
    net.run_for(200 * ms);
    EXPECT_EQ(net.role_of(1), role::monitor);
    EXPECT_FALSE(net.nodes[1].s.switchover_pending);
    EXPECT_NE(last_note(net.nodes[1].out, fsm::note::switchover_timed_out), nullptr);
}

// ---------------------------------------------------------------- faults (seed 003 claims 8-13, 20)

TEST(Fsm, FaultOnThePrimaryIsReportedAndTheHealthyMonitorTakesOver) {
    auto net = formed_pair();
    net.command(0, fsm::command_kind::fault, static_cast<std::uint32_t>(fsm::fault_kind::application));
    ASSERT_TRUE(net.run_until([&] { return net.role_of(1) == role::primary; }, 100 * ms));
    ASSERT_TRUE(net.run_until([&] { return net.role_of(0) == role::fault; }, 100 * ms));
    EXPECT_FALSE(net.nodes[0].s.holds[0]);
    EXPECT_FALSE(net.nodes[0].s.holds[1]);
    EXPECT_NE(last_note(net.nodes[0].out, fsm::note::fault_takeover_accepted), nullptr);
    // Cured: recover hook, then rejoin.
    net.command(0, fsm::command_kind::fault_cleared);
    const auto* h = net.nodes[0].out.last(action_kind::run_hook);
    ASSERT_NE(h, nullptr);
    EXPECT_EQ(h->hook, fsm::hook_kind::recover);
    ASSERT_TRUE(net.run_until([&] { return net.role_of(0) == role::monitor; }, 300 * ms));
}

TEST(Fsm, FaultyMonitorCannotTakeOverSoTheFaultyPrimaryKeepsServing) {
    auto net = formed_pair();
    // The monitor's own health fails first: it leaves the monitor address.
    net.command(1, fsm::command_kind::fault, static_cast<std::uint32_t>(fsm::fault_kind::interface));
    EXPECT_EQ(net.role_of(1), role::fault);
    net.run_for(20 * ms);
    net.command(0, fsm::command_kind::fault, static_cast<std::uint32_t>(fsm::fault_kind::process));
    net.run_for(100 * ms);
    EXPECT_EQ(net.role_of(0), role::primary) << "seed 003 claim 12: nobody healthy to take over";
    EXPECT_NE(last_note(net.nodes[0].out, fsm::note::fault_no_takeover), nullptr);
    EXPECT_TRUE(net.nodes[0].s.holds[0]);
}

TEST(Fsm, FaultReportNamesTheType) {
    auto net = formed_pair();
    const std::size_t mark = net.nodes[0].out.all.size();
    net.command(0, fsm::command_kind::fault, static_cast<std::uint32_t>(fsm::fault_kind::script));
    bool found = false;
    for (std::size_t i = mark; i < net.nodes[0].out.all.size(); ++i) {
        const auto& a = net.nodes[0].out.all[i];
        if (a.kind == action_kind::send_heartbeat && a.hb.type == wire::hb_type::fault_report) {
            found = true;
            EXPECT_EQ(a.hb.ack_seq, static_cast<std::uint64_t>(fsm::fault_kind::script));
            EXPECT_TRUE(a.hb.flags & wire::hb_flag_fault);
        }
    }
    EXPECT_TRUE(found);
}

// ---------------------------------------------------------------- preemption, monitor loss

TEST(Fsm, NoPreemptionByDefaultEvenForAHigherPriority) {
    network net;
    net.add(test_params(1, 50));
    net.add(test_params(2, 200));
    net.start(0);
    net.run_for(80 * ms);
    net.start(1);
    net.run_for(500 * ms);
    EXPECT_EQ(net.role_of(0), role::primary);
    EXPECT_EQ(net.role_of(1), role::monitor);
}

TEST(Fsm, PreemptionHandsTheAddressToTheHigherPriorityAfterTheDelay) {
    network net;
    auto p0 = test_params(1, 50), p1 = test_params(2, 200);
    p1.preempt = true;
    p1.preempt_delay_ns = 100 * ms;
    net.add(p0);
    net.add(p1);
    net.start(0);
    net.run_for(80 * ms);
    net.start(1);
    ASSERT_TRUE(net.run_until([&] { return net.role_of(1) == role::monitor; }, 200 * ms));
    const std::uint64_t became_monitor = net.nodes[1].s.role_since_ns;
    ASSERT_TRUE(net.run_until([&] { return net.role_of(1) == role::primary; }, 500 * ms));
    EXPECT_GE(net.now - became_monitor, 100 * ms) << "not before preempt_delay";
    EXPECT_EQ(net.nodes[1].s.c.takeovers, 1u);
    ASSERT_TRUE(net.run_until([&] { return net.role_of(0) == role::monitor; }, 300 * ms));
}

TEST(Fsm, StandbyTakesTheMonitorAddressWhenTheMonitorDies) {
    auto net = formed_pair();
    net.add(test_params(3));
    net.start(2);
    ASSERT_TRUE(net.run_until([&] { return net.role_of(2) == role::standby; }, 300 * ms));
    net.kill(1);
    ASSERT_TRUE(net.run_until([&] { return net.role_of(2) == role::monitor; }, 500 * ms));
    EXPECT_EQ(net.role_of(0), role::primary);
    net.run_for(50 * ms);
    EXPECT_TRUE(net.nodes[0].s.monitor_alive) << "the new monitor's probes are heard";
}

TEST(Fsm, PrimaryAnnouncesThatItsMonitorWentSilent) {
    // Seed 003 claim 3: heartbeats both ways; standbys learn the monitor is gone.
    auto net = formed_pair();
    net.kill(1);
    net.run_for(150 * ms);
    const auto* a = net.nodes[0].out.last(action_kind::send_heartbeat);
    ASSERT_NE(a, nullptr);
    bool flagged = false;
    for (auto it = net.nodes[0].out.all.rbegin(); it != net.nodes[0].out.all.rend(); ++it)
        if (it->kind == action_kind::send_heartbeat && it->hb.type == wire::hb_type::announce) {
            flagged = it->hb.flags & wire::hb_flag_monitor_missing;
            break;
        }
    EXPECT_TRUE(flagged);
}

// ---------------------------------------------------------------- flap damping

TEST(Fsm, ReplacedWhileAlivePrimaryWatchesWithAWiderWindowAfterwards) {
    auto net = formed_pair();
    net.kill(0); // a stall, not a death
    ASSERT_TRUE(net.run_until([&] { return net.role_of(1) == role::primary; }, 1 * ms));
    net.nodes[0].up = true;
    ASSERT_TRUE(net.run_until([&] { return net.role_of(0) == role::monitor; }, 500 * ms));
    EXPECT_EQ(net.nodes[0].s.c.flaps, 1u);
    EXPECT_EQ(net.nodes[0].s.c.damped_watches, 1u);
    EXPECT_EQ(net.nodes[0].s.det.config().miss, 6u) << "miss 3 doubled";
    EXPECT_EQ(net.nodes[1].s.c.false_takeovers, 1u) << "the new primary heard its predecessor alive";
    net.run_for(1 * ms); // answered probes: the detector is armed
    // A real failure is still detected, on the wider window.
    ASSERT_TRUE(net.run_until([&] { return net.nodes[0].s.det.next_probe_ns() <= net.now + net.tick_step; }, 1 * ms));
    net.kill(1);
    const std::uint64_t last_answer = net.nodes[0].s.det.last_answer_ns();
    ASSERT_TRUE(net.run_until([&] { return net.role_of(0) == role::primary; }, 1 * ms));
    EXPECT_EQ(net.now, last_answer + 6 * 10 * us);
}

TEST(Fsm, FlapDampingWearsOffAfterTheHold) {
    auto net = formed_pair();
    net.nodes[0].s.p.flap_hold_ns = 50 * ms;
    net.kill(0);
    ASSERT_TRUE(net.run_until([&] { return net.role_of(1) == role::primary; }, 1 * ms));
    net.nodes[0].up = true;
    ASSERT_TRUE(net.run_until([&] { return net.role_of(0) == role::monitor; }, 500 * ms));
    EXPECT_EQ(net.nodes[0].s.c.damped_watches, 0u) << "the 50 ms hold had passed by the time it rejoined";
    EXPECT_EQ(net.nodes[0].s.det.config().miss, 3u);
}

// ---------------------------------------------------------------- reload (fsm::retune)

// A reload widens the window on a watching monitor: no role changes while the primary
// lives, and a dead primary is judged on the new window from then on.
TEST(Fsm, RetunedWindowChangesNoRoleAndDecidesTheNextTakeover) {
    auto net = formed_pair();
    auto& mon = net.nodes[1];
    auto np = mon.s.p;
    np.interval_ns = 20 * us;
    np.miss = 6;
    fsm::retune(mon.s, np, net.now);
    EXPECT_EQ(mon.s.det.config().interval_ns, 20 * us);
    EXPECT_EQ(mon.s.det.config().miss, 6u);
    net.run_for(50 * ms);
    EXPECT_EQ(net.role_of(0), role::primary);
    EXPECT_EQ(net.role_of(1), role::monitor);
    EXPECT_EQ(mon.s.c.takeovers, 0u);
    ASSERT_TRUE(net.run_until([&] { return mon.s.det.next_probe_ns() <= net.now + net.tick_step; }, 1 * ms));
    net.kill(0);
    const std::uint64_t last_answer = mon.s.det.last_answer_ns();
    ASSERT_TRUE(net.run_until([&] { return net.role_of(1) == role::primary; }, 1 * ms));
    EXPECT_EQ(net.now, last_answer + 6 * 20 * us) << "the new window: 6 x 20 us";
}

// A shorter window does not judge the primary on the old cadence's last answer: it gets a
// fresh window of the new length from the reload.
TEST(Fsm, RetunedShorterWindowStartsFreshAtTheReload) {
    auto net = formed_pair([](fsm::params&, fsm::params& m) {
        m.interval_ns = 100 * us;
        m.miss = 5;
    });
    auto& mon = net.nodes[1];
    net.kill(0);
    net.run_for(200 * us); // silent for longer than the new window already
    auto np = mon.s.p;
    np.interval_ns = 10 * us;
    np.miss = 3;
    const std::uint64_t at = net.now;
    fsm::retune(mon.s, np, at);
    ASSERT_TRUE(net.run_until([&] { return net.role_of(1) == role::primary; }, 1 * ms));
    EXPECT_GE(net.now, at + 3 * 10 * us);
    EXPECT_LT(net.now, at + 100 * us);
}

// A new priority reaches the peers at once, not at the next announce period.
TEST(Fsm, RetunedPriorityIsAnnouncedAtOnce) {
    auto net = formed_pair();
    auto np = net.nodes[0].s.p;
    np.priority = 200;
    fsm::retune(net.nodes[0].s, np, net.now);
    ASSERT_TRUE(net.run_until([&] {
        const auto* p = fsm::find_peer(net.nodes[1].s, 1);
        return p && p->priority == 200;
    }, 1 * ms));
    EXPECT_EQ(net.role_of(0), role::primary);
    EXPECT_EQ(net.role_of(1), role::monitor);
}

// GARP knobs: a held address is refreshed on the new period (and not at all with 0).
TEST(Fsm, RetunedGarpRefreshAppliesToTheHeldAddress) {
    auto p = test_params(1);
    p.garp_refresh_ns = 10'000 * ms;
    lone n(p);
    n.start();
    n.tick_until(100 * ms);
    ASSERT_EQ(n.s.r, role::primary);
    n.out.clear();
    auto np = n.s.p;
    np.garp_refresh_ns = 20 * ms;
    fsm::retune(n.s, np, n.now);
    n.tick_until(n.now + 25 * ms);
    EXPECT_EQ(n.out.count(action_kind::send_garp), 1u) << "refreshed 20 ms after the reload";
    np.garp_refresh_ns = 0;
    fsm::retune(n.s, np, n.now);
    n.out.clear();
    n.tick_until(n.now + 100 * ms);
    EXPECT_EQ(n.out.count(action_kind::send_garp), 0u) << "refresh_ms = 0: none";
    EXPECT_EQ(n.s.r, role::primary);
}

// The operator's answer to a broken fencing device: a reload that turns require_fence off
// lets the takeover the fence held back go ahead.
TEST(Fsm, RetunedRequireFenceOffReleasesAPendingTakeover) {
    auto net = formed_pair([](fsm::params&, fsm::params& b) { b.has_fence = true; b.require_fence = true; });
    net.kill(0);
    net.run_for(1 * ms);
    auto& mon = net.nodes[1];
    ASSERT_TRUE(mon.s.fence_pending);
    net.run_for(20 * ms);
    ASSERT_EQ(mon.s.r, role::monitor) << "waits for a fence that never answers";
    auto np = mon.s.p;
    np.require_fence = false;
    fsm::retune(mon.s, np, net.now);
    ASSERT_TRUE(net.run_until([&] { return mon.s.r == role::primary; }, 1 * ms));
    EXPECT_FALSE(mon.s.fence_pending);
    EXPECT_TRUE(mon.s.holds[0]);
    EXPECT_EQ(mon.s.c.takeovers, 1u);
}

// ---------------------------------------------------------------- the replicated store (issue 10, seed 004)

namespace {
// A replication frame from node `from` of `net` (its id, MAC, role and epoch), payload type `t`.
wire::frame state_frame_from(const fsm::state& from, const mac_addr& to, std::uint8_t t, std::vector<std::byte>& payload) {
    payload.assign(40, std::byte{0});
    payload[0] = std::byte{t};
    wire::hb_msg m;
    m.type = wire::hb_type::state;
    m.role = static_cast<std::uint8_t>(from.r);
    m.node_id = from.p.node_id;
    m.epoch = from.epoch;
    m.flags = static_cast<std::uint16_t>((from.holds[0] ? wire::hb_flag_holds_primary : 0) | (from.holds[1] ? wire::hb_flag_holds_monitor : 0));
    m.payload = payload;
    return hb_frame(from.p.mac, to, m);
}
} // namespace

TEST(Fsm, ASwitchoverToAMonitorWhoseReplicaIsNotInSyncIsRefusedOnBothSides) {
    auto net = formed_pair();
    fsm::set_replica(net.nodes[0].s, true, true, true);
    fsm::set_replica(net.nodes[1].s, true, false, true);
    net.run_for(20 * ms); // the monitor's heartbeats say it is not in sync
    net.command(1, fsm::command_kind::switchover);
    const auto* n = net.nodes[1].out.last_note(fsm::note::switchover_refused);
    ASSERT_NE(n, nullptr);
    EXPECT_EQ(static_cast<fsm::refusal>(n->arg), fsm::refusal::out_of_sync);
    EXPECT_FALSE(net.nodes[1].s.switchover_pending);
    net.command(0, fsm::command_kind::switchover);
    n = net.nodes[0].out.last_note(fsm::note::switchover_refused);
    ASSERT_NE(n, nullptr) << "the primary reads the monitor's flag";
    EXPECT_EQ(static_cast<fsm::refusal>(n->arg), fsm::refusal::out_of_sync);
    // In sync: the same request goes through.
    fsm::set_replica(net.nodes[1].s, true, true, true);
    net.run_for(20 * ms);
    net.command(1, fsm::command_kind::switchover);
    EXPECT_TRUE(net.nodes[1].s.switchover_pending);
    EXPECT_TRUE(net.run_until([&] { return net.role_of(1) == role::primary; }, 100 * ms));
    EXPECT_EQ(net.nodes[1].s.c.takeovers_out_of_sync, 0u);
}

TEST(Fsm, AFailureTakeoverByAMonitorOutOfSyncIsCountedAndReported) {
    auto net = formed_pair();
    fsm::set_replica(net.nodes[1].s, true, false, true);
    net.kill(0);
    ASSERT_TRUE(net.run_until([&] { return net.role_of(1) == role::primary; }, 100 * ms));
    EXPECT_EQ(net.nodes[1].s.c.takeovers_out_of_sync, 1u);
    const auto* n = net.nodes[1].out.last_note(fsm::note::takeover_out_of_sync);
    ASSERT_NE(n, nullptr);
    EXPECT_EQ(n->arg, 1u) << "a failure";
}

TEST(Fsm, ReplicationFramesReachTheStoreOnlyFromThePeerWhoseRoleSendsThem) {
    auto net = formed_pair();
    auto& pri = net.nodes[0].s;
    auto& mon = net.nodes[1];
    std::vector<std::byte> pl;
    mon.out.clear();
    // DATA from the watched primary: handed to the store, with the peer to answer.
    auto f = state_frame_from(pri, mon.s.p.mac, 1, pl);
    fsm::event ev{fsm::event_kind::frame, &f};
    fsm::step(mon.s, ev, net.now, mon.out);
    const auto* a = mon.out.last(action_kind::state_frame);
    ASSERT_NE(a, nullptr);
    EXPECT_EQ(a->peer_id, pri.p.node_id);
    EXPECT_EQ(a->peer_mac, pri.p.mac);
    EXPECT_EQ(mon.s.c.state_frames, 1u);
    // An ACK sent to a monitor, and DATA from a node that is not the primary: role drops.
    const std::uint64_t drops = mon.s.c.drop_role;
    auto ack = state_frame_from(pri, mon.s.p.mac, 2, pl);
    ev.rx = &ack;
    fsm::step(mon.s, ev, net.now, mon.out);
    fsm::state stranger = pri;
    stranger.p.node_id = 9;
    stranger.p.mac = mac_addr{{0x02, 0, 0, 0, 0, 9}};
    stranger.r = role::standby;
    auto forged = state_frame_from(stranger, mon.s.p.mac, 1, pl);
    ev.rx = &forged;
    fsm::step(mon.s, ev, net.now, mon.out);
    EXPECT_EQ(mon.s.c.drop_role, drops + 2);
    EXPECT_EQ(mon.s.c.state_frames, 1u);
    EXPECT_EQ(mon.s.r, role::monitor) << "no role moves on a replication frame";
    // The primary takes ACKs from its monitor, not DATA.
    auto& p0 = net.nodes[0];
    p0.out.clear();
    auto mack = state_frame_from(mon.s, pri.p.mac, 2, pl);
    ev.rx = &mack;
    fsm::step(p0.s, ev, net.now, p0.out);
    EXPECT_NE(p0.out.last(action_kind::state_frame), nullptr);
    auto mdata = state_frame_from(mon.s, pri.p.mac, 1, pl);
    ev.rx = &mdata;
    const std::uint64_t pdrops = p0.s.c.drop_role;
    fsm::step(p0.s, ev, net.now, p0.out);
    EXPECT_EQ(p0.s.c.drop_role, pdrops + 1);
}

TEST(Fsm, ADrainingPrimaryHandsOverOnlyOnceTheStoreIsAcknowledged) {
    auto net = formed_pair();
    net.drain_takes = 1 * ms;
    fsm::set_replica(net.nodes[0].s, true, true, false); // writes not yet acknowledged
    fsm::set_replica(net.nodes[1].s, true, true, true);
    net.run_for(20 * ms);
    net.command(1, fsm::command_kind::switchover);
    ASSERT_TRUE(net.run_until([&] { return net.role_of(0) == role::draining; }, 5 * ms));
    net.run_for(20 * ms);
    EXPECT_EQ(net.role_of(0), role::draining) << "drained, but its compilation is not on the monitor yet";
    EXPECT_EQ(net.role_of(1), role::monitor);
    fsm::set_replica(net.nodes[0].s, true, true, true);
    EXPECT_TRUE(net.run_until([&] { return net.role_of(1) == role::primary; }, 100 * ms));
}
