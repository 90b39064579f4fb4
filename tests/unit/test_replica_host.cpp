// One replicated store as the engine runs it (replica::host, issue 10): completion of
// synchronous writes, the hold before a primary with no monitor in sync degrades, the
// monitor's lease on being in sync, completion frozen when leadership is lost, and a
// draining primary caught up only once its monitor has every write. Two hosts on a fake
// clock over a link that can be cut.

#include <gtest/gtest.h>

#include <cstdlib>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "owned_table.hpp"
#include "heartwire/replica_host.hpp"

using namespace heartwire;
using namespace heartwire::replica;

using heartwire::test::owned_table;

namespace {

constexpr std::uint64_t us = 1000, ms = 1000 * us;

std::string key(int i) {
    std::string s("k");
    s += std::to_string(i);
    return s;
}

std::span<const std::byte> bytes_of(const std::string& s) { return {reinterpret_cast<const std::byte*>(s.data()), s.size()}; }

host_params params() {
    host_params p;
    p.sender.log_bytes = 1u << 20;
    p.sender.log_entries = 1u << 14;
    return p; // keepalive 1 ms, lease 10 ms, hold 15 ms
}

// Node a and node b, each with its own table and host; `a_leads` says which one is the
// primary. The link delivers each frame after 20 us (each way's own delay), in order,
// unless cut.
struct pair_sim {
    owned_table ta, tb;
    host a, b;
    bool a_leads{true};
    bool cut{false};
    bool a_hears_b{true}; // a judges b live (false: a's machine says b is gone, frames still flow)
    std::uint64_t delay_to_a{20 * us}, delay_to_b{20 * us};
    std::uint64_t now{1 * ms};
    std::uint64_t stream{0x5eed};
    struct msg {
        std::uint64_t at;
        bool to_a;
        std::vector<std::byte> bytes;
    };
    std::deque<msg> wire;
    std::map<std::uint64_t, std::string> written; // seq -> key, on the current leader

    explicit pair_sim(const host_params& p = params(), std::uint32_t records = 4096)
        : ta(table_geometry::for_records(records, 32, 64)), tb(table_geometry::for_records(records, 32, 64)), a(ta.t, p), b(tb.t, p) {}

    host& leader() { return a_leads ? a : b; }
    host& follower() { return a_leads ? b : a; }
    table& follower_table() { return a_leads ? tb.t : ta.t; }

    void send(bool to_a, std::span<const std::byte> f) {
        if (cut) return;
        wire.push_back({now + (to_a ? delay_to_a : delay_to_b), to_a, std::vector<std::byte>(f.begin(), f.end())});
    }
    void step(std::uint64_t dt = 50 * us) {
        now += dt;
        std::deque<msg> due, later;
        for (auto& m : wire) (m.at <= now ? due : later).push_back(std::move(m));
        wire = std::move(later);
        for (auto& m : due) (m.to_a ? a : b).on_frame(m.bytes, now, [&, to_a = m.to_a](std::span<const std::byte> f) { send(!to_a, f); });
        if (a_leads) {
            a.lead(stream, now);
            b.follow(now);
        } else {
            b.lead(stream, now);
            a.follow(now);
        }
        a.poll(now, !cut && a_hears_b, [&](std::span<const std::byte> f) { send(false, f); });
        b.poll(now, !cut, [&](std::span<const std::byte> f) { send(true, f); });
    }
    void run(std::uint64_t dt) {
        for (const std::uint64_t end = now + dt; now < end;) step();
    }
    bool run_until(const std::function<bool()>& ok, std::uint64_t limit) {
        for (const std::uint64_t end = now + limit; now < end;) {
            step();
            if (ok()) return true;
        }
        return false;
    }
    std::uint64_t write(int i) {
        std::string v("v");
        v += std::to_string(i);
        const std::uint64_t s = leader().write(op_put, key(i), bytes_of(v), now);
        if (s != 0) written[s] = key(i);
        return s;
    }
    bool synced() { return leader().in_sync() && follower().in_sync(); }
    // Every write the leader counts as complete is in the follower's copy.
    bool follower_holds_every_completed_write() {
        std::byte buf[64];
        for (const auto& [seq, k] : written) {
            if (seq > leader().completed()) break;
            if (follower_table().get(k, buf) < 0) return false;
        }
        return true;
    }
};

} // namespace

TEST(ReplicaHost, ASynchronousWriteCompletesOnlyOnceTheMonitorHasIt) {
    pair_sim p;
    ASSERT_TRUE(p.run_until([&] { return p.synced(); }, 200 * ms));
    const std::uint64_t s = p.write(1);
    ASSERT_NE(s, 0u);
    EXPECT_LT(p.a.completed(), s) << "complete before the monitor acknowledged it";
    ASSERT_TRUE(p.run_until([&] { return p.a.completed() >= s; }, 10 * ms));
    EXPECT_TRUE(p.follower_holds_every_completed_write());
    EXPECT_FALSE(p.a.status(p.now).degraded);
}

TEST(ReplicaHost, WithTheMonitorGoneWritesWaitTheHoldThenDegradeAfterTheMonitorsLeaseRanOut) {
    pair_sim p;
    ASSERT_TRUE(p.run_until([&] { return p.synced(); }, 200 * ms));
    p.cut = true;
    p.wire.clear();
    const std::uint64_t cut_at = p.now;
    const std::uint64_t s = p.write(1);
    bool follower_left_sync_first = false;
    while (p.a.completed() < s && p.now < cut_at + 100 * ms) {
        p.step();
        if (!p.b.in_sync() && p.a.completed() < s) follower_left_sync_first = true;
        // While the monitor still says it is in sync, nothing it lacks is complete.
        if (p.b.in_sync()) {
            ASSERT_LT(p.a.completed(), s);
        }
    }
    ASSERT_GE(p.a.completed(), s) << "never degraded";
    EXPECT_TRUE(follower_left_sync_first);
    EXPECT_GE(p.now - cut_at, params().degrade_hold_ns);
    EXPECT_LT(p.now - cut_at, params().degrade_hold_ns + 1 * ms);
    EXPECT_TRUE(p.a.status(p.now).degraded);
    // Degraded: a write completes as soon as it is applied.
    const std::uint64_t s2 = p.write(2);
    p.step();
    EXPECT_GE(p.a.completed(), s2);
}

TEST(ReplicaHost, AfterDegradingTheMonitorIsInSyncOnlyOnceItHoldsEveryCompletedWrite) {
    pair_sim p;
    ASSERT_TRUE(p.run_until([&] { return p.synced(); }, 200 * ms));
    p.cut = true;
    p.wire.clear();
    int i = 0;
    p.run(30 * ms); // past the hold: degraded
    for (int n = 0; n < 50; ++n) p.write(i++);
    p.step();
    ASSERT_TRUE(p.a.status(p.now).degraded);
    ASSERT_EQ(p.a.completed(), p.a.status(p.now).last_seq);
    p.cut = false;
    p.delay_to_a = 400 * us; // the primary hears the monitor's ACKs late: it stays degraded while the monitor catches up
    std::uint64_t completed = p.a.completed();
    bool synced = false;
    for (int n = 0; n < 4000 && !synced; ++n) {
        p.write(i++);
        p.step();
        ASSERT_GE(p.a.completed(), completed) << "completion went back";
        completed = p.a.completed();
        if (p.b.in_sync()) {
            ASSERT_TRUE(p.follower_holds_every_completed_write()) << "in sync without a completed write, step " << n;
        }
        synced = p.synced();
    }
    ASSERT_TRUE(synced);
    EXPECT_FALSE(p.a.status(p.now).degraded);
    EXPECT_TRUE(p.follower_holds_every_completed_write());
}

TEST(ReplicaHost, AMonitorThatHearsNothingLeavesSyncWhenItsLeaseEnds) {
    pair_sim p;
    ASSERT_TRUE(p.run_until([&] { return p.synced(); }, 200 * ms));
    p.run(20 * ms); // idle: the keepalives keep it in sync
    ASSERT_TRUE(p.b.in_sync());
    EXPECT_GT(p.a.status(p.now).sc.keepalives, 10u);
    EXPECT_GT(p.b.status(p.now).rc.digest_matches, 10u) << "keepalives compare digests";
    p.cut = true;
    p.wire.clear();
    const std::uint64_t cut_at = p.now;
    ASSERT_TRUE(p.run_until([&] { return !p.b.in_sync(); }, 50 * ms));
    EXPECT_GE(p.now - cut_at, params().lease_ns - 2 * ms);
    EXPECT_LE(p.now - cut_at, params().lease_ns + 1 * ms);
}

TEST(ReplicaHost, CompletionIsFrozenWhenLeadershipIsLost) {
    pair_sim p;
    ASSERT_TRUE(p.run_until([&] { return p.synced(); }, 200 * ms));
    for (int i = 0; i < 5; ++i) p.write(i);
    ASSERT_TRUE(p.run_until([&] { return p.a.completed() == p.a.status(p.now).last_seq; }, 10 * ms));
    p.cut = true;
    p.wire.clear();
    const std::uint64_t pending = p.write(100); // applied on a, never acknowledged
    p.step();
    const std::uint64_t frozen = p.a.completed();
    ASSERT_LT(frozen, pending);
    // b takes over (a new stream from its copy, which lacks the pending write) and writes
    // far past the pending seq; a follows it and gets a snapshot.
    p.a_leads = false;
    p.stream = 0x7a4e;
    p.cut = false;
    p.written.clear();
    ASSERT_TRUE(p.run_until([&] { return p.synced(); }, 300 * ms));
    for (int i = 200; i < 220; ++i) p.write(i);
    ASSERT_TRUE(p.run_until([&] { return p.b.completed() == p.b.status(p.now).last_seq && p.a.status(p.now).last_seq == p.b.completed(); }, 50 * ms));
    ASSERT_GT(p.ta.t.state().applied_seq, pending);
    EXPECT_EQ(p.a.completed(), frozen) << "a follower's completion moved: a ticket waiting on the pending write would complete";
}

TEST(ReplicaHost, ADrainingPrimaryIsCaughtUpOnlyOnceItsMonitorHasEveryWrite) {
    pair_sim p;
    EXPECT_TRUE(p.b.caught_up()) << "not leading";
    ASSERT_TRUE(p.run_until([&] { return p.synced(); }, 200 * ms));
    ASSERT_TRUE(p.a.caught_up());
    p.write(1);
    EXPECT_FALSE(p.a.caught_up());
    ASSERT_TRUE(p.run_until([&] { return p.a.caught_up(); }, 10 * ms));
    p.cut = true;
    p.wire.clear();
    p.write(2);
    p.run(5 * ms);
    EXPECT_FALSE(p.a.caught_up()) << "no monitor has the last write";
    p.run(30 * ms);
    EXPECT_FALSE(p.a.caught_up()) << "degraded is not caught up";
}

TEST(ReplicaHost, AnAsynchronousStoreNeverWaits) {
    host_params hp = params();
    hp.sync = false;
    pair_sim p(hp);
    ASSERT_TRUE(p.run_until([&] { return p.synced(); }, 200 * ms));
    p.cut = true;
    p.wire.clear();
    const std::uint64_t s = p.write(1);
    p.run(30 * ms);
    EXPECT_FALSE(p.a.status(p.now).degraded);
    EXPECT_LT(p.a.completed(), s) << "async: completed is what the monitor has (the lag)";
    EXPECT_EQ(p.a.status(p.now).last_seq, s);
}

// A snapshot that has begun to clear the monitor's large copy (in slices, a poll each) when
// the monitor takes over: half cleared, the copy is no table to lead from (a key past the
// cleared slots is found by nobody and would be written twice). It leads once the clear is
// done; meanwhile writes wait, and its summary (count, digest) is what it holds at every
// slice.
TEST(ReplicaHost, AMonitorTakingOverInTheMiddleOfAClearLeadsOnlyOnceTheCopyIsCleared) {
    pair_sim p(params(), 20'000);
    const std::uint32_t cap = p.tb.t.geometry().capacity;
    ASSERT_GE(cap, 4 * receiver::clear_slots_per_poll);
    for (int i = 0; i < 15'000; ++i) {
        p.write(i);
        if (i % 256 == 0) p.step();
    }
    ASSERT_TRUE(p.run_until([&] { return p.synced() && p.a.caught_up(); }, 2'000 * ms));
    // The primary restarts its stream (a new epoch): the monitor's copy is replaced by a snapshot.
    p.stream = 0x5eed2;
    ASSERT_TRUE(p.run_until([&] { return p.b.clearing(); }, 100 * ms));
    const auto live_records = [&] {
        std::uint64_t n = 0;
        p.tb.t.walk(0, ~0u, [&](std::string_view, std::span<const std::byte>, std::uint64_t) { ++n; });
        return n;
    };
    EXPECT_EQ(p.tb.t.count(), live_records()) << "the summary follows each slice";
    // The primary dies; the monitor takes over while clearing.
    p.cut = true;
    p.b.lead(0xb0b, p.now);
    EXPECT_NE(p.b.current(), side::leader);
    EXPECT_EQ(p.b.write(op_put, "x", bytes_of(std::string("y")), p.now), 0u) << "a write into a half-cleared copy";
    EXPECT_EQ(p.tb.t.count(), live_records());
    int turns = 1;
    const auto nowhere = [](std::span<const std::byte>) {};
    while (p.b.current() != side::leader && turns < 100) { // a turn: the machine's side, then the poll
        p.b.poll(p.now, false, nowhere);
        p.b.lead(0xb0b, p.now);
        ++turns;
    }
    ASSERT_EQ(p.b.current(), side::leader);
    EXPECT_GE(turns, 2);
    EXPECT_EQ(p.tb.t.count(), 0u);
    EXPECT_EQ(p.tb.t.state().digest, 0u);
    EXPECT_NE(p.b.write(op_put, "x", bytes_of(std::string("y")), p.now), 0u);
    EXPECT_EQ(p.tb.t.count(), 1u);
}

// The monitor's lease runs from its own clock: from when it sent the ACK that the primary's
// keepalive echoes, not from when the keepalive arrived. Here the primary's frames start
// taking 40 ms to reach the monitor (a TX backlog behind a burst), then the primary judges
// the monitor gone, holds, and completes writes alone. The keepalives it made before that
// arrive 40 ms late and say "in sync": taken at arrival they gave the monitor a fresh lease
// while it lacked writes already complete (a takeover then would lose them).
TEST(ReplicaHost, ALateKeepaliveDoesNotStretchTheMonitorsLeasePastThePrimarysHold) {
    pair_sim p;
    for (int i = 0; i < 50; ++i) p.write(i);
    ASSERT_TRUE(p.run_until([&] { return p.synced() && p.a.caught_up(); }, 100 * ms));
    p.delay_to_b = 40 * ms;
    const std::uint64_t t0 = p.now, judged_gone = t0 + 5 * ms;
    bool completed_alone = false, was_in_sync_late = false, violated = false;
    int next = 1000;
    while (p.now < t0 + 80 * ms) {
        p.a_hears_b = p.now + 50 * us < judged_gone;
        p.step(50 * us);
        if ((p.now / (500 * us)) % 2 == 0) p.write(next++);
        if (p.a.completed() > 0 && !p.written.empty() && p.written.rbegin()->first <= p.a.completed() && p.now > judged_gone)
            completed_alone = true;
        if (p.now > t0 + 40 * ms && p.b.in_sync()) was_in_sync_late = true;
        if (p.b.in_sync() && !p.follower_holds_every_completed_write()) violated = true;
    }
    EXPECT_TRUE(completed_alone) << "the primary did not degrade";
    EXPECT_FALSE(violated) << "the monitor said it was in sync while it lacked a complete write";
    EXPECT_FALSE(was_in_sync_late) << "a late keepalive renewed the monitor's lease";
}

// A takeover is judged before the next poll: a monitor whose loop stalled past its lease is
// out of sync at the stall's end already, though its last poll said otherwise.
TEST(ReplicaHost, AMonitorsLeaseIsJudgedAtTheTimeAskedNotAtItsLastPoll) {
    pair_sim p;
    for (int i = 0; i < 20; ++i) p.write(i);
    ASSERT_TRUE(p.run_until([&] { return p.synced() && p.a.caught_up(); }, 100 * ms));
    ASSERT_TRUE(p.b.in_sync_at(p.now));
    const std::uint64_t stalled_until = p.now + 50 * ms; // no poll, no frame in between
    EXPECT_TRUE(p.b.in_sync()) << "what the last poll saw";
    EXPECT_FALSE(p.b.in_sync_at(stalled_until)) << "the lease ran out during the stall";
    EXPECT_TRUE(p.a.in_sync_at(stalled_until) == p.a.in_sync()) << "a leader's view is its last poll's";
}

// What the state machine holds a silence takeover for ([[state]] join_hold_ms): a copy that
// is joining is not consistent; once in sync it is, and it stays so while it is only behind
// (the link cut, the lease run out); a new stream (another primary) or a divergence found
// makes it a copy to replace again.
TEST(ReplicaHost, AJoiningCopyIsNotConsistentABehindOneIs) {
    pair_sim p(params(), 20'000);
    EXPECT_FALSE(p.b.consistent()) << "not following yet";
    p.cut = true; // the primary holds them before the monitor hears of it
    p.step();
    for (int i = 0; i < 10'000; ++i) ASSERT_NE(p.write(i), 0u);
    p.run(20 * ms);
    EXPECT_FALSE(p.b.consistent()) << "following, nothing of the stream yet";
    p.cut = false;
    ASSERT_TRUE(p.run_until([&] { return p.b.status(p.now).rc.snapshot_records > 0; }, 100 * ms));
    EXPECT_FALSE(p.b.in_sync());
    EXPECT_FALSE(p.b.consistent()) << "a part of a snapshot is no state the primary had";
    EXPECT_FALSE(p.b.status(p.now).consistent);
    ASSERT_TRUE(p.run_until([&] { return p.synced(); }, 2'000 * ms));
    EXPECT_TRUE(p.b.consistent());
    // Behind: the link cut, the lease runs out. Out of sync, and still a consistent copy.
    p.cut = true;
    p.wire.clear();
    ASSERT_TRUE(p.run_until([&] { return !p.b.in_sync(); }, 50 * ms));
    EXPECT_TRUE(p.b.consistent());
    EXPECT_TRUE(p.b.status(p.now).consistent);
    // Back, then a divergence found by the monitor's self-check: a copy to repair.
    p.cut = false;
    ASSERT_TRUE(p.run_until([&] { return p.synced(); }, 200 * ms));
    p.tb.t.corrupt_for_test(key(7), std::byte{0x5a});
    ASSERT_TRUE(p.run_until([&] { return !p.b.consistent(); }, 3'000 * ms)) << "the scrub passes once a second";
    EXPECT_GT(p.b.divergences(), 0u);
    ASSERT_TRUE(p.run_until([&] { return p.synced() && p.b.consistent(); }, 3'000 * ms)) << "repaired by a snapshot";
    // Another primary's stream: whatever the copy holds, that primary's snapshot decides.
    p.stream = 0x5eed2;
    ASSERT_TRUE(p.run_until([&] { return !p.b.consistent(); }, 100 * ms));
    EXPECT_TRUE(p.run_until([&] { return p.synced() && p.b.consistent(); }, 2'000 * ms));
}
