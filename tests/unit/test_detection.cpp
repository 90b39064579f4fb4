// Detection that is fast and never wrong, on a fake clock: the monitor's loop is modelled
// the way the engine runs it (drain_turn, then a tick that says when the loop meant to
// wake, then the idle planner's rest), so each rule is proved on the code that runs.
#include <gtest/gtest.h>

#include <tuple>

#include "heartwire/idle.hpp"
#include "heartwire/turn.hpp"
#include "sim.hpp"

using namespace heartwire;
using namespace heartwire::sim;
using fsm::action_kind;

namespace {

// A pair formed in the simulator at `interval` x `miss`: node 0 primary, node 1 monitor
// with its detector armed.
network pair_at(std::uint64_t interval, std::uint32_t miss) {
    network net;
    auto p0 = test_params(1), p1 = test_params(2);
    p0.interval_ns = p1.interval_ns = interval;
    p0.miss = p1.miss = miss;
    net.add(p0);
    net.add(p1);
    net.start(0);
    net.run_for(80 * ms);
    net.start(1);
    EXPECT_TRUE(net.run_until([&] { return net.role_of(1) == role::monitor && net.nodes[1].s.det.armed(); }, 500 * ms));
    return net;
}

// The monitor's machine of such a pair, stopped right after an answer arrived (so "the
// last answer" is a known instant), to be driven by hand from then on.
fsm::state armed_monitor(std::uint64_t interval, std::uint32_t miss, std::uint64_t& now) {
    network net = pair_at(interval, miss);
    const std::uint64_t answers = net.nodes[1].s.c.answers;
    EXPECT_TRUE(net.run_until([&] { return net.nodes[1].s.c.answers > answers; }, 10 * interval));
    now = net.now;
    return net.nodes[1].s;
}

detector detector_100us_x5() {
    detector::params p;
    p.interval_ns = 100 * us;
    p.miss = 5;
    return detector(p);
}

// The primary's (node 1's) answer to the monitor's probe `seq`.
wire::frame primary_ack(const fsm::state& monitor, std::uint64_t seq) {
    wire::hb_msg ack;
    ack.type = wire::hb_type::ack;
    ack.node_id = 1;
    ack.role = static_cast<std::uint8_t>(role::primary);
    ack.epoch = monitor.epoch;
    ack.flags = wire::hb_flag_holds_primary;
    ack.ack_seq = seq;
    ack.ts_echo_ns = monitor.probe_sent_ns[seq % fsm::probe_memory]; // echoes the probe's send time
    return hb_frame(test_params(1).mac, test_params(2).mac, ack);
}

// The monitor's poll loop, as the engine runs it, with the primary gone (nothing arrives).
struct monitor_loop {
    fsm::state s;
    recorder out;
    idle_planner planner;
    turn_state turn;
    std::uint64_t now;
    std::uint64_t intended;
    std::uint64_t wake_latency{0};   // every planned sleep ends this much late
    std::uint64_t turn_cost{1 * us}; // a turn's own work

    monitor_loop(fsm::state st, std::uint64_t t, const idle_planner::params& ip) : s(st), planner(ip), now(t), intended(t) {
        turn.judged_ns = t;
    }
    bool took_over() const { return out.count(action_kind::takeover) > 0; }
    void one_turn() {
        const std::uint64_t woke = now;
        std::size_t frames = 0;
        fsm::event ev = drain_turn(
            turn, [&](std::size_t, std::uint64_t& drained) { drained = now; return std::size_t{0}; }, 32, 1056, woke,
            intended, frames);
        fsm::step(s, ev, now, out);
        now += turn_cost;
        const std::uint64_t sleep = planner.plan(now, frames != 0, fsm::next_wakeup(s));
        if (sleep == 0) {
            intended = now;
            return;
        }
        intended = now + sleep;
        now = intended + wake_latency;
        planner.woke(intended, now);
    }
    bool run_until_takeover(std::uint64_t limit) {
        const std::uint64_t end = now + limit;
        while (now < end && !took_over()) one_turn();
        return took_over();
    }
};

} // namespace

// ---------------------------------------------------------------- adaptive idle

// (interval, miss, idle cap, wake latency). Today's code counted the engine's own planned
// sleep as a stall: at 100 us x 10 with a 50 us cap and 60 us latency a dead primary was
// never declared failed; at 1000 us x 10 with a 2 ms cap it took a second.
class AdaptiveIdle : public ::testing::TestWithParam<std::tuple<std::uint64_t, std::uint32_t, std::uint64_t, std::uint64_t>> {};

TEST_P(AdaptiveIdle, DeadPrimaryIsDeclaredFailedWithinWindowPlusWakeLatency) {
    const auto [interval, miss, cap, latency] = GetParam();
    std::uint64_t t = 0;
    fsm::state s = armed_monitor(interval, miss, t);
    idle_planner::params ip;
    ip.adaptive = true;
    ip.max_sleep_ns = cap;
    ip.idle_turns = 4;
    monitor_loop m(s, t, ip);
    m.wake_latency = latency;
    const std::uint64_t last = m.s.det.last_answer_ns();
    const std::uint64_t window = interval * miss;
    ASSERT_TRUE(m.run_until_takeover(100 * window)) << "a dead primary was never declared failed";
    const auto* tk = m.out.last(action_kind::takeover);
    ASSERT_NE(tk, nullptr);
    const std::uint64_t took = tk->decided_ns - last;
    EXPECT_LE(took, window + latency + cap + interval)
        << "took " << took / us << " us for a " << window / us << " us window, " << latency / us << " us wake latency";
    EXPECT_GE(took, window) << "never before the window";
}

INSTANTIATE_TEST_SUITE_P(
    Latencies, AdaptiveIdle,
    ::testing::Values(std::tuple{100 * us, 10u, 50 * us, 60 * us}, std::tuple{100 * us, 10u, 50 * us, 500 * us},
                      std::tuple{100 * us, 10u, 50 * us, 1000 * us}, std::tuple{20 * us, 5u, 50 * us, 100 * us},
                      std::tuple{1000 * us, 10u, 2 * ms, 60 * us}, std::tuple{1000 * us, 10u, 2 * ms, 2 * ms},
                      std::tuple{1000 * us, 10u, 2 * ms, 10 * ms}));

TEST(Detection, DutyCycleYieldsAreIntendedSleepsAndNeverDelayTheVerdict) {
    std::uint64_t t = 0;
    fsm::state s = armed_monitor(100 * us, 5, t);
    idle_planner::params ip; // busy polling with a duty cycle: 80 us in every 300 us
    ip.yield_ns = 80 * us;
    ip.yield_period_ns = 300 * us;
    monitor_loop m(s, t, ip);
    m.wake_latency = 30 * us; // a FIFO thread's wake latency on a busy VM
    const std::uint64_t last = m.s.det.last_answer_ns();
    ASSERT_TRUE(m.run_until_takeover(100 * ms));
    // 110 us between turns: today's code counted every yield as a 110 us stall.
    EXPECT_EQ(m.s.c.stalls, 0u) << "a planned yield is not a stall";
    EXPECT_GT(m.planner.forced_yields(), 0u);
    EXPECT_LE(m.out.last(action_kind::takeover)->decided_ns - last, 500 * us + 2 * (80 * us + 30 * us) + 2 * us);
}

TEST(Detection, StallsThatKeepComingCannotHideADeadPrimary) {
    // Every duty-cycle yield wakes 500 us late (a congested host): each is a real stall,
    // longer than the 100 us threshold, five times a window. Fresh windows are bounded
    // between two answers, so the dead primary is still replaced.
    std::uint64_t t = 0;
    fsm::state s = armed_monitor(100 * us, 10, t);
    idle_planner::params ip;
    ip.yield_ns = 20 * us;
    ip.yield_period_ns = 200 * us;
    monitor_loop m(s, t, ip);
    m.wake_latency = 500 * us;
    const std::uint64_t last = m.s.det.last_answer_ns();
    ASSERT_TRUE(m.run_until_takeover(1000 * ms)) << "a dead primary was never declared failed";
    EXPECT_GT(m.s.c.stalls, 2u);
    // A loop that runs 200 us in every 720 us sends ~2 probes a cycle: `miss` fresh probes
    // after the last granted window take ~5 cycles. Bounded, where unbounded windows never end.
    const std::uint64_t per_stall = 200 * us + 20 * us + 500 * us;
    EXPECT_LE(m.out.last(action_kind::takeover)->decided_ns - last, 1000 * us + 10 * per_stall);
}

TEST(Detection, PlannerWakesEarlyByTheMeasuredLatencySoTimersAreNotLate) {
    idle_planner::params ip;
    ip.adaptive = true;
    ip.max_sleep_ns = 1 * ms;
    ip.idle_turns = 1;
    idle_planner p(ip);
    std::uint64_t now = 1 * ms;
    const std::uint64_t due = now + 500 * us;
    std::uint64_t ns = p.plan(now, false, due);
    EXPECT_EQ(ns, 500 * us) << "nothing measured yet: sleep until the timer";
    p.woke(now + ns, now + ns + 80 * us); // 80 us late
    now += ns + 80 * us;
    ns = p.plan(now, false, now + 500 * us);
    EXPECT_EQ(ns, 420 * us) << "the next sleep ends early by the measured latency";
    EXPECT_EQ(p.plan(now, false, now + 60 * us), 0u) << "no room before the timer once latency is paid: keep polling";
}

// hurry(): an application on this core waits for what a turn completed, and runs only once
// the loop sleeps. Adaptive: the idle sleep at once, without the empty turns. Busy: a
// courtesy sleep of one yield's length (cut by the doorbell in the engine), not the duty
// cycle's yield (which stays due: the sleep counts for what it slept). Never past the next
// timer, never in a turn that worked; kept until the loop has slept, by whichever sleep.
static idle_planner::params busy_20_of_200() {
    idle_planner::params busy;
    busy.yield_ns = 20 * us;
    busy.yield_period_ns = 200 * us;
    return busy;
}

TEST(Detection, AHurriedPlannerSleepsAtTheFirstChanceInEitherModeUntilItHasSlept) {
    idle_planner::params busy = busy_20_of_200();
    idle_planner b(busy);
    std::uint64_t now = 1 * ms;
    EXPECT_EQ(b.plan(now, false, now + 1 * ms), 0u) << "busy: no sleep between yields";
    b.hurry();
    EXPECT_EQ(b.plan(now, false, now + 1 * ms), 20 * us) << "a courtesy sleep, one yield long";
    EXPECT_EQ(b.forced_yields(), 0u) << "not the duty cycle's yield";
    EXPECT_EQ(b.idle_sleeps(), 1u);
    EXPECT_FALSE(b.hurried());
    EXPECT_EQ(b.plan(now, false, now + 1 * ms), 0u) << "once slept, busy again";
    b.hurry();
    EXPECT_EQ(b.plan(now, false, now + 2 * us), 0u) << "no room before the timer: keep polling";
    EXPECT_EQ(b.plan(now, true, now + 1 * ms), 0u) << "a turn that worked keeps polling";
    EXPECT_TRUE(b.hurried()) << "the waiter has not run yet";
    EXPECT_EQ(b.plan(now, false, now + 12 * us), 12 * us) << "the first room, up to the next timer";
    b.hurry();
    EXPECT_EQ(b.plan(now + 200 * us, false, now + 2 * ms), 20 * us);
    EXPECT_EQ(b.forced_yields(), 1u) << "the period's yield is taken when due ...";
    EXPECT_FALSE(b.hurried()) << "... and the waiter runs in it";
    busy.yield_ns = 0;
    busy.yield_period_ns = 0;
    busy.max_sleep_ns = 30 * us;
    idle_planner nb(busy);
    nb.hurry();
    EXPECT_EQ(nb.plan(now, false, now + 1 * ms), 30 * us) << "no duty cycle: the idle sleep's cap";

    idle_planner::params ad;
    ad.adaptive = true;
    ad.max_sleep_ns = 50 * us;
    idle_planner a(ad);
    EXPECT_EQ(a.plan(now, false, now + 1 * ms), 0u) << "adaptive: empty turns before a sleep";
    a.hurry();
    EXPECT_EQ(a.plan(now, false, now + 1 * ms), 50 * us) << "hurried: at once";
    EXPECT_EQ(a.plan(now, true, now + 1 * ms), 0u);
    EXPECT_EQ(a.plan(now, false, now + 1 * ms), 0u) << "then the empty turns again";
}

TEST(Detection, AHurriedPlannerThatFindsNoRoomStopsAskingAfterAMillisecond) {
    idle_planner::params busy = busy_20_of_200();
    busy.yield_period_ns = 0; // no duty cycle to end it either
    idle_planner b(busy);
    const std::uint64_t t0 = 1 * ms;
    b.hurry();
    EXPECT_EQ(b.plan(t0, false, t0 + 2 * us), 0u) << "no room";
    EXPECT_EQ(b.plan(t0 + idle_planner::hurry_expiry_ns, false, t0 + idle_planner::hurry_expiry_ns + 2 * us), 0u);
    EXPECT_TRUE(b.hurried()) << "still within the expiry";
    EXPECT_EQ(b.plan(t0 + idle_planner::hurry_expiry_ns + 1, false, t0 + 3 * ms), 0u) << "expired: room or not, no sleep";
    EXPECT_FALSE(b.hurried());
    b.hurry();
    EXPECT_EQ(b.plan(t0 + 3 * ms, false, t0 + 4 * ms), 20 * us) << "a new hurry has its own expiry";
}

TEST(Detection, ShortSleepsPayForTheirPartOfTheDutyCycleNotAllOfIt) {
    const idle_planner::params busy = busy_20_of_200();
    idle_planner b(busy);
    std::uint64_t now = 1 * ms;
    EXPECT_EQ(b.plan(now, false, now + 1 * ms), 0u); // the duty cycle's clock starts here
    // A courtesy sleep of 4 us (cut to the room before a timer) after every 40 us of polling:
    // each buys 40 us of the period (4 us x 200 / 20), so the clock falls 4 us behind a
    // round: the yield is due in round 41 (40 us + 40 x 4 us = 200 us). If any sleep reset
    // the period, it would never come.
    int round = 0;
    for (int i = 1; i <= 100 && round == 0; ++i) {
        now += 40 * us;
        b.hurry();
        const std::uint64_t ns = b.plan(now, false, now + 4 * us);
        if (b.forced_yields() != 0) {
            round = i;
            EXPECT_EQ(ns, 20 * us) << "the yield itself, whole";
            break;
        }
        ASSERT_EQ(ns, 4 * us) << "round " << i;
        b.woke(now + ns, now + ns);
        now += ns;
    }
    EXPECT_EQ(round, 41) << "a stream of short sleeps does not put the yield off for good";

    idle_planner c(busy);
    now = 1 * ms;
    EXPECT_EQ(c.plan(now, false, now + 1 * ms), 0u);
    c.hurry();
    const std::uint64_t ns = c.plan(now + 10 * us, false, now + 1 * ms);
    ASSERT_EQ(ns, 20 * us);
    c.woke(now + 10 * us + ns, now + 10 * us + ns);
    EXPECT_EQ(c.plan(now + 30 * us + 190 * us, false, now + 30 * us + 190 * us + 10 * us), 0u)
        << "a yield-long sleep starts the period again";
    EXPECT_EQ(c.forced_yields(), 0u);
}

// ---------------------------------------------------------------- stalls

TEST(Detection, StallLateInTheWindowGivesTheFullFreshWindowFromTheWake) {
    detector d = detector_100us_x5();
    std::uint64_t now = 10 * ms;
    d.start(now);
    d.on_answer(d.on_probe_sent(now), now + 5 * us);
    const std::uint64_t last = d.last_answer_ns();
    // The primary is dead. Probe on cadence until 1 us before the window ends ...
    for (now = last; now < last + 500 * us - 1 * us; now += 1 * us) {
        ASSERT_FALSE(d.observe_time(now));
        if (d.probe_due(now)) d.on_probe_sent(now);
    }
    // ... then the monitor loses its core for 5 ms.
    const std::uint64_t stalled_at = now;
    now += 5 * ms;
    ASSERT_TRUE(d.observe_wake(now, stalled_at, now));
    const std::uint64_t resume = now;
    // Today's code froze the clock for the stall and left the primary the 1 us that remained.
    for (; !d.failed(now); now += 1 * us) {
        d.observe_time(now);
        if (d.probe_due(now)) d.on_probe_sent(now);
        ASSERT_LT(now, resume + 10 * ms);
    }
    EXPECT_EQ(now, resume + 500 * us) << "a whole window of fresh probes after the stall";
}

TEST(Detection, AnswerReadRightAfterAStallIsNotPushedOutByTheStall) {
    detector d = detector_100us_x5();
    std::uint64_t now = 10 * ms;
    d.start(now);
    const std::uint64_t seq = d.on_probe_sent(now);
    // The monitor stalls 5 ms; the primary's answer waits in RX and is read first on waking
    // (the engine drains RX before the tick), then the primary dies.
    const std::uint64_t slept_from = now;
    now += 5 * ms;
    ASSERT_TRUE(d.on_answer(seq, now));
    ASSERT_TRUE(d.observe_wake(now, slept_from, now));
    const std::uint64_t read_at = now;
    for (; !d.failed(now); now += 1 * us) {
        d.observe_time(now);
        if (d.probe_due(now)) d.on_probe_sent(now);
        ASSERT_LT(now, read_at + 20 * ms);
    }
    // Today's code (answer, then the stall rule) pushed the answer 5 ms into the future.
    EXPECT_EQ(now, read_at + 500 * us);
}

TEST(Detection, TenThousandFrameBacklogAtWakeIsReadBeforeAnyVerdict) {
    std::uint64_t t = 0;
    fsm::state s = armed_monitor(100 * us, 5, t);
    recorder out;
    turn_state turn;
    turn.judged_ns = t;
    // The monitor sent a probe, then lost its core for 5 ms. Meanwhile 9,999 frames
    // (another node's announces) and, behind them, the primary's answer piled up in RX.
    fsm::event probe_tick{fsm::event_kind::tick};
    std::uint64_t now = s.det.next_probe_ns();
    fsm::step(s, probe_tick, now, out);
    const std::uint64_t seq = s.det.last_sent_seq();
    const std::uint64_t stalled_at = now;
    now += 5 * ms;
    wire::hb_msg junk;
    junk.type = wire::hb_type::announce;
    junk.node_id = 77;
    junk.role = static_cast<std::uint8_t>(role::standby);
    const wire::frame junk_f = hb_frame(mac_addr{{2, 0, 0, 0, 0, 77}}, mac_addr::heartwire_group(), junk);
    const wire::frame ack_f = primary_ack(s, seq);
    std::size_t left = 10'000;
    std::uint64_t intended = stalled_at;
    bool first = true;
    while (left > 0) {
        const std::uint64_t woke = now;
        std::size_t frames = 0;
        fsm::event ev = drain_turn(
            turn,
            [&](std::size_t max, std::uint64_t& drained) {
                const std::uint64_t polled = now;
                std::size_t n = 0;
                for (; n < max && left > 0; ++n, --left) {
                    now += 100; // 100 ns a frame: the backlog takes 1 ms, twice the window
                    fsm::event fe{fsm::event_kind::frame, left == 1 ? &ack_f : &junk_f};
                    fsm::step(s, fe, now, out);
                }
                if (n < max) drained = polled;
                return n;
            },
            32, 1056, woke, first ? stalled_at : intended, frames);
        first = false;
        fsm::step(s, ev, now, out);
        ASSERT_EQ(out.count(action_kind::takeover), 0u) << "a verdict before the answer behind the backlog was read";
        now += 1 * us;
        intended = now;
    }
    EXPECT_GT(turn.capped, 0u) << "the backlog was larger than one turn may read";
    EXPECT_EQ(s.det.last_answered_seq(), seq);
    EXPECT_EQ(s.r, role::monitor);
}

TEST(Detection, PipelinedRxLcoreStallNeverCountsAsThePrimarysSilence) {
    std::uint64_t t = 0;
    fsm::state s = armed_monitor(100 * us, 5, t);
    recorder out;
    // The role lcore keeps turning and probing; the RX lcore stops polling for 5 ms, so the
    // primary's answers wait in the NIC. The RX lcore's last empty poll stays at `mark`.
    const std::uint64_t mark = t;
    std::uint64_t now = t;
    std::uint64_t last_seq = 0;
    for (; now < t + 5 * ms; now += 1 * us) {
        fsm::event ev{fsm::event_kind::tick};
        ev.woke_ns = ev.intended_ns = now;
        ev.judged_ns = mark;
        fsm::step(s, ev, now, out);
        last_seq = s.det.last_sent_seq();
        ASSERT_EQ(out.count(action_kind::takeover), 0u) << "silence counted over time the RX lcore did not poll, at "
                                                         << (now - t) / us << " us";
    }
    // RX is back: it reads the waiting answer and says so.
    const wire::frame f = primary_ack(s, last_seq);
    fsm::event fe{fsm::event_kind::frame, &f};
    fsm::step(s, fe, now, out);
    fsm::event ev{fsm::event_kind::tick};
    ev.woke_ns = ev.intended_ns = now;
    ev.judged_ns = now;
    ev.rx_resume_ns = now;
    fsm::step(s, ev, now, out);
    EXPECT_EQ(out.count(action_kind::takeover), 0u);
    EXPECT_EQ(s.r, role::monitor);
}

TEST(Detection, MonitorStalledFiftyMillisecondsMakesNoTakeover) {
    network net = pair_at(100 * us, 5);
    // SIGSTOP for 50 ms: the monitor neither runs nor hears; then SIGCONT.
    net.kill(1);
    net.run_for(50 * ms);
    net.nodes[1].up = true;
    net.run_for(20 * ms);
    EXPECT_EQ(net.role_of(0), role::primary);
    EXPECT_EQ(net.role_of(1), role::monitor);
    EXPECT_EQ(net.nodes[1].s.c.takeovers, 0u);
    EXPECT_GE(net.nodes[1].s.c.stalls, 1u);
}

// ---------------------------------------------------------------- engine-down notice (003 claims 14-15)

namespace {

void hear(network& net, std::size_t to, const wire::frame& f) {
    fsm::event ev{fsm::event_kind::frame, &f};
    fsm::step(net.nodes[to].s, ev, net.now, net.nodes[to].out);
}

} // namespace

TEST(Detection, EngineDownNoticeFromTheWatchedPrimaryTakesOverAtOnce) {
    auto net = pair_at(1 * ms, 2000); // a 2 s window: only the notice can be this fast
    const auto notice = fsm::engine_down_msg(net.nodes[0].s);
    net.kill(0);
    hear(net, 1, hb_frame(net.nodes[0].s.p.mac, mac_addr::heartwire_group(), notice));
    EXPECT_EQ(net.role_of(1), role::primary) << "no wait for the window";
    EXPECT_EQ(net.nodes[1].s.c.notice_takeovers, 1u);
    EXPECT_GT(net.nodes[1].s.epoch, notice.epoch);
    const fsm::peer* dead = fsm::find_peer(net.nodes[1].s, 1);
    ASSERT_NE(dead, nullptr) << "its entry stays: the replay window keeps its old frames out";
    EXPECT_TRUE(dead->down) << "and it is listed as down, not as primary";
}

// Issue 10 ([[state]] join_hold_ms): a monitor whose store copy is joining (a part of a
// snapshot) holds a takeover on the primary's silence. A primary that only stalled answers
// within the hold and stays primary: its whole copy is not replaced by the part.
namespace {
network joining_pair(std::uint64_t hold) {
    auto net = pair_at(100 * us, 5);
    fsm::set_replica(net.nodes[0].s, true, false, true);
    fsm::set_replica(net.nodes[1].s, true, false, true); // the monitor: not in sync ...
    net.nodes[1].s.replica_join_hold_ns = hold;            // ... and joining (what the engine says each turn)
    return net;
}
} // namespace

TEST(Detection, AStalledPrimaryIsNotTakenOverWhileTheMonitorsCopyIsJoining) {
    auto net = joining_pair(20 * ms);
    net.kill(0); // a stall, 3 windows long
    net.run_for(1500 * us);
    EXPECT_EQ(net.role_of(1), role::monitor) << "held: the copy is a part of a snapshot";
    EXPECT_EQ(net.nodes[1].s.c.takeovers_held, 1u);
    EXPECT_NE(net.nodes[1].out.last_note(fsm::note::takeover_held), nullptr);
    net.nodes[0].up = true; // it wakes up and answers the probes again
    ASSERT_TRUE(net.run_until([&] { return net.nodes[1].s.c.takeover_holds_answered == 1; }, 5 * ms));
    EXPECT_NE(net.nodes[1].out.last_note(fsm::note::takeover_hold_answered), nullptr);
    net.run_for(50 * ms);
    EXPECT_EQ(net.role_of(0), role::primary);
    EXPECT_EQ(net.role_of(1), role::monitor);
    EXPECT_EQ(net.nodes[1].s.c.takeovers, 0u);
    EXPECT_EQ(net.nodes[1].s.takeover_held_since_ns, 0u);
    EXPECT_EQ(net.nodes[1].s.c.takeovers_held, 1u) << "one hold, ended by the answers";
}

TEST(Detection, ADeadPrimaryIsTakenOverOnceTheJoinHoldEndsCountedOutOfSync) {
    auto net = joining_pair(10 * ms);
    const std::uint64_t killed = net.now;
    net.kill(0);
    ASSERT_TRUE(net.run_until([&] { return net.role_of(1) == role::primary; }, 100 * ms));
    const std::uint64_t took = net.now - killed;
    EXPECT_GE(took, 10 * ms + 500 * us) << "the window, then the hold";
    EXPECT_LE(took, 10 * ms + 2 * ms);
    EXPECT_EQ(net.nodes[1].s.c.takeovers_held, 1u);
    EXPECT_EQ(net.nodes[1].s.c.takeover_holds_answered, 0u);
    EXPECT_EQ(net.nodes[1].s.c.takeovers_out_of_sync, 1u);
}

// A stall of the monitor during a hold gives the silent primary a fresh window (DESIGN:
// the monitor's own stalls never count), not a second hold after it.
TEST(Detection, AMonitorStallDuringAHoldDoesNotStartAnotherHold) {
    auto net = joining_pair(10 * ms);
    const std::uint64_t killed = net.now;
    net.kill(0);
    net.run_for(3 * ms);
    ASSERT_EQ(net.nodes[1].s.c.takeovers_held, 1u);
    net.kill(1); // the monitor stalls 2 ms
    net.run_for(2 * ms);
    net.nodes[1].up = true;
    ASSERT_TRUE(net.run_until([&] { return net.role_of(1) == role::primary; }, 100 * ms));
    EXPECT_LE(net.now - killed, 12 * ms) << "one hold of 10 ms from the first failure, not a new one after the stall";
    EXPECT_EQ(net.nodes[1].s.c.takeovers_held, 1u);
    EXPECT_EQ(net.nodes[1].s.c.takeover_holds_answered, 0u);
}

// While a takeover is held the machine's next timer is its next probe or the hold's end,
// never the detector's deadline, which has passed: an adaptive-idle monitor sleeps.
TEST(Detection, AHeldTakeoverLetsTheMonitorSleepBetweenProbes) {
    auto net = joining_pair(10 * ms);
    net.kill(0);
    net.run_for(2 * ms);
    const fsm::state& m = net.nodes[1].s;
    ASSERT_NE(m.takeover_held_since_ns, 0u);
    EXPECT_LT(m.det.deadline_ns(), net.now) << "the silence is past the window";
    const std::uint64_t wake = fsm::next_wakeup(m);
    EXPECT_GE(wake, net.now);
    EXPECT_LE(wake, m.det.next_probe_ns());
}

TEST(Detection, NoHoldForACopyThatIsOnlyBehindOrForAnEngineDownNotice) {
    {
        auto net = joining_pair(0); // behind, or join_hold_ms = 0: at once, as before
        net.kill(0);
        ASSERT_TRUE(net.run_until([&] { return net.role_of(1) == role::primary; }, 2 * ms));
        EXPECT_EQ(net.nodes[1].s.c.takeovers_held, 0u);
        EXPECT_EQ(net.nodes[1].s.c.takeovers_out_of_sync, 1u);
    }
    auto net = joining_pair(1000 * ms);
    const auto notice = fsm::engine_down_msg(net.nodes[0].s);
    net.kill(0);
    hear(net, 1, hb_frame(net.nodes[0].s.p.mac, mac_addr::heartwire_group(), notice));
    EXPECT_EQ(net.role_of(1), role::primary) << "its guard says the engine died: certain, not a stall";
    EXPECT_EQ(net.nodes[1].s.c.takeovers_held, 0u);
}

TEST(Detection, EngineDownNoticeFromAnotherMacOrANonHolderIsIgnored) {
    auto net = pair_at(1 * ms, 2000);
    auto notice = fsm::engine_down_msg(net.nodes[0].s);
    hear(net, 1, hb_frame(mac_addr{{2, 0, 0, 0, 0, 99}}, mac_addr::heartwire_group(), notice));
    EXPECT_EQ(net.role_of(1), role::monitor) << "the watched primary's id from another MAC";
    notice.flags = 0;
    hear(net, 1, hb_frame(net.nodes[0].s.p.mac, mac_addr::heartwire_group(), notice));
    EXPECT_EQ(net.role_of(1), role::monitor) << "a node that held nothing";
    EXPECT_EQ(net.nodes[1].s.c.takeovers, 0u);
}

TEST(Detection, MonitorsEngineDownNoticeSendsTheStandbyToProbeTheMonitorAddress) {
    network net;
    for (std::uint32_t id = 1; id <= 3; ++id) net.add(test_params(id));
    for (std::size_t i = 0; i < 3; ++i) {
        net.start(i);
        net.run_for(150 * ms);
    }
    ASSERT_EQ(net.role_of(2), role::standby);
    const auto notice = fsm::engine_down_msg(net.nodes[1].s);
    net.kill(1);
    hear(net, 2, hb_frame(net.nodes[1].s.p.mac, mac_addr::heartwire_group(), notice));
    hear(net, 0, hb_frame(net.nodes[1].s.p.mac, mac_addr::heartwire_group(), notice));
    EXPECT_FALSE(net.nodes[0].s.monitor_alive);
    ASSERT_TRUE(net.run_until([&] { return net.role_of(2) == role::monitor; }, 60 * ms))
        << "the standby took the monitor address without waiting for a peer timeout";
}

// ---------------------------------------------------------------- link state

TEST(Detection, PrimaryWhoseLinkGoesDownStepsDownAtOnceAndRejoinsWhenItIsBack) {
    auto net = pair_at(100 * us, 5);
    net.command(0, fsm::command_kind::link, 0);
    EXPECT_EQ(net.role_of(0), role::fault);
    EXPECT_FALSE(net.nodes[0].s.holds[0]) << "holds nothing";
    const auto* said = net.nodes[0].out.last(action_kind::notice);
    ASSERT_NE(said, nullptr);
    EXPECT_EQ(said->what, fsm::note::link_down) << "it says so";
    net.cut[0] = true; // the cable is really cut: the monitor sees the silence
    ASSERT_TRUE(net.run_until([&] { return net.role_of(1) == role::primary; }, 5 * ms));
    net.cut[0] = false;
    net.command(0, fsm::command_kind::link, 1);
    ASSERT_TRUE(net.run_until([&] { return net.role_of(0) == role::monitor; }, 500 * ms));
    EXPECT_EQ(net.holders(fsm::address_id::primary), 1u);
}

TEST(Detection, MonitorWithoutLinkNeverTakesOver) {
    auto net = pair_at(100 * us, 5);
    net.command(1, fsm::command_kind::link, 0);
    net.cut[1] = true;
    net.run_for(50 * ms);
    EXPECT_EQ(net.role_of(1), role::fault);
    EXPECT_EQ(net.nodes[1].s.c.takeovers, 0u);
    EXPECT_EQ(net.role_of(0), role::primary);
}
