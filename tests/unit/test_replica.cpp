// The replicated state store's core (issue 10): the shared table and the replication
// protocol between a primary and a follower, on a fake clock over a simulated link that
// loses, duplicates and reorders frames.

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <queue>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "owned_table.hpp"
#include "heartwire/replica.hpp"
#include "heartwire/replication.hpp"

using namespace heartwire;
using namespace heartwire::replica;

using heartwire::test::owned_table;

namespace {

constexpr std::uint64_t us = 1000, ms = 1000 * us;

// "k" + std::to_string(i), written so that GCC 12 at -O3 does not warn (-Wrestrict, a
// known false positive on operator+ of a literal and a temporary).
std::string cat(const char* prefix, long long i) {
    std::string s(prefix);
    s += std::to_string(i);
    return s;
}

std::span<const std::byte> b(const std::string& s) { return {reinterpret_cast<const std::byte*>(s.data()), s.size()}; }

std::string get(const table& t, const std::string& k) {
    std::byte buf[512];
    const long n = t.get(k, buf);
    return n < 0 ? "<none>" : std::string(reinterpret_cast<const char*>(buf), static_cast<std::size_t>(n));
}

// Every live record of a table, for comparing two copies.
std::map<std::string, std::string> contents(const table& t) {
    std::map<std::string, std::string> out;
    t.walk(0, ~0u, [&](std::string_view k, std::span<const std::byte> v, std::uint64_t) {
        out[std::string(k)] = std::string(reinterpret_cast<const char*>(v.data()), v.size());
    });
    return out;
}

} // namespace

// ---------------------------------------------------------------- table

TEST(ReplicaTable, PutGetEraseAndOverwrite) {
    owned_table o(table_geometry::for_records(100, 32, 64));
    auto& t = o.t;
    ASSERT_TRUE(t.valid());
    EXPECT_EQ(t.put("session:1", b("alice"), 1), put_result::ok);
    EXPECT_EQ(t.put("session:2", b("bob"), 2), put_result::ok);
    EXPECT_EQ(get(t, "session:1"), "alice");
    EXPECT_EQ(t.put("session:1", b("carol"), 3), put_result::ok);
    std::uint64_t seq = 0;
    std::byte buf[16];
    EXPECT_EQ(t.get("session:1", buf, &seq), 5);
    EXPECT_EQ(seq, 3u);
    EXPECT_EQ(t.count(), 2u);
    EXPECT_TRUE(t.erase("session:1", 4));
    EXPECT_FALSE(t.erase("session:1", 5));
    EXPECT_EQ(get(t, "session:1"), "<none>");
    EXPECT_EQ(t.count(), 1u);
    EXPECT_EQ(t.tombstones(), 1u);
    EXPECT_EQ(t.put("session:1", b("dave"), 6), put_result::ok);
    EXPECT_EQ(t.tombstones(), 0u) << "the tombstone is reused";
    EXPECT_EQ(t.state().applied_seq, 6u);
    EXPECT_EQ(t.put(std::string(33, 'k'), b("x"), 7), put_result::too_large);
    EXPECT_EQ(t.put("k", b(std::string(65, 'v')), 7), put_result::too_large);
    EXPECT_EQ(t.put("", b("x"), 7), put_result::too_large);
}

TEST(ReplicaTable, TheDigestIsTheSameForTheSameRecordsInAnyOrder) {
    const auto g = table_geometry::for_records(1000, 16, 16);
    owned_table a(g), c(g);
    for (int i = 0; i < 500; ++i) a.t.put(cat("k", i), b(cat("v", i)), i + 1);
    for (int i = 499; i >= 0; --i) c.t.put(cat("k", i), b(cat("v", i)), 1000 - i);
    EXPECT_EQ(a.t.state().digest, c.t.state().digest);
    c.t.put("k7", b("other"), 2000);
    EXPECT_NE(a.t.state().digest, c.t.state().digest);
    c.t.put("k7", b("v7"), 2001);
    EXPECT_EQ(a.t.state().digest, c.t.state().digest) << "back to the same records, back to the same digest";
    c.t.erase("k8", 2002);
    EXPECT_NE(a.t.state().digest, c.t.state().digest);
    EXPECT_NE(record_hash("ab", b("c")), record_hash("a", b("bc")));
}

TEST(ReplicaTable, AFullTableRefusesAndAnAttachedViewReadsTheSameRegion) {
    table_geometry g{16, 8, 8};
    owned_table o(g);
    for (int i = 0; i < 16; ++i) ASSERT_EQ(o.t.put(cat("k", i), b("v"), i + 1), put_result::ok);
    EXPECT_EQ(o.t.put("k99", b("v"), 17), put_result::full);
    EXPECT_EQ(o.t.put("k3", b("w"), 18), put_result::ok) << "an existing key still takes a new value";
    const table view = table::attach({o.mem.get(), g.region_bytes()});
    ASSERT_TRUE(view.valid());
    EXPECT_EQ(get(view, "k3"), "w");
    std::vector<std::byte> junk(g.region_bytes() + 64);
    EXPECT_FALSE(table::attach({junk.data() + (64 - reinterpret_cast<std::uintptr_t>(junk.data()) % 64), g.region_bytes()}).valid());
}

TEST(ReplicaTable, ScrubFindsACorruptedRecord) {
    owned_table o(table_geometry::for_records(1000, 16, 32));
    for (int i = 0; i < 1000; ++i) o.t.put(cat("k", i), b(cat("value ", i)), i + 1);
    std::uint64_t bad = 0;
    EXPECT_EQ(o.t.scrub(0, ~0u, bad), o.t.geometry().capacity);
    EXPECT_EQ(bad, 0u);
    o.t.corrupt_for_test("k500", std::byte{0x20});
    for (std::uint32_t at = 0; at < o.t.geometry().capacity;) at = o.t.scrub(at, 64, bad);
    EXPECT_EQ(bad, 1u);
}

// One writer thread, one reader thread: a reader never sees a torn value (every value is
// one byte repeated; a torn read would mix two).
TEST(ReplicaTable, AConcurrentReaderNeverSeesATornRecord) {
    owned_table o(table_geometry::for_records(64, 8, 200));
    std::atomic<bool> stop{false};
    std::atomic<std::uint64_t> torn{0}, reads{0};
    o.t.put("hot", b(std::string(200, 'a')), 1);
    std::thread reader([&] {
        std::byte buf[200];
        while (!stop.load(std::memory_order_relaxed)) {
            const long n = o.t.get("hot", buf);
            if (n != 200) continue;
            for (int i = 1; i < 200; ++i)
                if (buf[i] != buf[0]) {
                    torn.fetch_add(1);
                    break;
                }
            reads.fetch_add(1, std::memory_order_relaxed);
        }
    });
    for (std::uint64_t i = 0; i < 200'000; ++i) o.t.put("hot", b(std::string(200, static_cast<char>('a' + i % 26))), i + 2);
    while (reads.load() < 10'000) std::this_thread::yield();
    stop = true;
    reader.join();
    EXPECT_EQ(torn.load(), 0u);
    EXPECT_GT(reads.load(), 0u);
}

// ---------------------------------------------------------------- replication

namespace {

// Primary and follower joined by a simulated link: each frame is lost with probability
// `loss`, duplicated with `dup`, and delayed by `delay` plus up to `jitter` (which reorders).
struct link_sim {
    owned_table primary, follower;
    sender s;
    receiver r;
    std::uint64_t now{1};
    double loss{0}, dup{0};
    std::uint64_t delay{5 * us}, jitter{0};
    bool down{false};
    std::mt19937_64 rng{42};
    struct msg {
        std::uint64_t at;
        std::uint64_t order; // frames due at the same time arrive in the order sent (a link is FIFO but for jitter)
        bool to_follower;
        std::vector<std::byte> bytes;
        bool operator>(const msg& o) const { return at != o.at ? at > o.at : order > o.order; }
    };
    std::uint64_t sent_order{0};
    std::priority_queue<msg, std::vector<msg>, std::greater<>> wire;
    std::uint64_t frames_to_follower{0};

    link_sim(const table_geometry& g, const sender_params& p) : primary(g), follower(g), s(primary.t, p, 0xabc), r(follower.t) {}

    void send(bool to_follower, std::span<const std::byte> f) {
        if (to_follower) ++frames_to_follower;
        std::uniform_real_distribution<double> u(0, 1);
        if (down || u(rng) < loss) return;
        const int copies = u(rng) < dup ? 2 : 1;
        for (int i = 0; i < copies; ++i) {
            const std::uint64_t j = jitter ? rng() % jitter : 0;
            wire.push({now + delay + j, sent_order++, to_follower, std::vector<std::byte>(f.begin(), f.end())});
        }
    }
    void step(std::uint64_t dt = 10 * us) {
        now += dt;
        while (!wire.empty() && wire.top().at <= now) {
            msg m = wire.top();
            wire.pop();
            if (m.to_follower) {
                r.on_frame(m.bytes, now, [&](std::span<const std::byte> a) { send(false, a); });
            } else {
                ack_msg a;
                if (decode_ack(m.bytes, a)) s.on_ack(a, now);
            }
        }
        r.poll(now, 1 * ms, [&](std::span<const std::byte> a) { send(false, a); });
        s.poll(now, [&](std::span<const std::byte> f) { send(true, f); });
    }
    bool run_until_synced(std::uint64_t limit) {
        const std::uint64_t end = now + limit;
        while (now < end) {
            step();
            if (r.in_sync() && s.in_sync() && r.applied() == s.last_seq() && s.acked() == s.last_seq() && wire.empty()) return true;
        }
        return false;
    }
};

sender_params small_params() {
    sender_params p;
    p.log_bytes = 1u << 20;
    p.log_entries = 1u << 14;
    p.window_bytes = 64u << 10;
    return p;
}

} // namespace

TEST(Replication, ALossyReorderingLinkConvergesToTheSameCopy) {
    link_sim l(table_geometry::for_records(5000, 16, 32), small_params());
    l.loss = 0.05;
    l.dup = 0.02;
    l.jitter = 40 * us;
    ASSERT_TRUE(l.run_until_synced(100 * ms)) << "the follower joins";
    std::mt19937_64 rng(7);
    for (int i = 0; i < 20'000; ++i) {
        const std::string k = cat("k", rng() % 3000);
        if (rng() % 10 == 0) ASSERT_NE(l.s.erase(k, l.now), 0u);
        else ASSERT_NE(l.s.put(k, b(cat("v", i)), l.now), 0u);
        if (i % 8 == 0) l.step();
        // A synchronous write is complete only once the follower holds it.
        ASSERT_LE(l.s.acked(), l.r.applied());
    }
    ASSERT_TRUE(l.run_until_synced(2000 * ms)) << "applied " << l.r.applied() << " of " << l.s.last_seq();
    EXPECT_EQ(l.follower.t.state().digest, l.primary.t.state().digest);
    EXPECT_EQ(contents(l.follower.t), contents(l.primary.t));
    EXPECT_GT(l.s.counters().rto_expiries, 0u) << "losses were repaired by retransmission";
    EXPECT_GT(l.r.counters().duplicates, 0u);
    EXPECT_GT(l.r.counters().digest_matches, 0u);
    EXPECT_EQ(l.r.counters().divergences, 0u);
    EXPECT_LT(l.frames_to_follower, 20'000u) << "batched: fewer frames than writes";
}

// A follower that joins late gets a snapshot while writes go on, then the deltas after it.
TEST(Replication, AFollowerJoiningAMillionRecordsReachesSync) {
    sender_params p;
    p.log_bytes = 64u << 20;
    p.log_entries = 1u << 20;
    p.snapshot_chunks_per_poll = 64;
    link_sim l(table_geometry::for_records(1'000'000, 16, 16), p);
    l.down = true;
    for (int i = 0; i < 1'000'000; ++i) ASSERT_NE(l.s.put(cat("key", i), b(cat("v", i)), l.now), 0u);
    l.down = false;
    const std::uint64_t t0 = l.now;
    std::uint64_t extra = 0;
    while (!(l.r.in_sync() && l.r.applied() == l.s.last_seq() && l.s.acked() == l.s.last_seq()) && l.now < t0 + 60'000 * ms) {
        if (l.s.snapshotting() && extra < 5000) { // writes during the walk
            l.s.put(cat("key", extra * 97 % 1'000'000), b("new"), l.now);
            if (extra % 3 == 0) l.s.erase(cat("key", extra * 89 % 1'000'000), l.now);
            ++extra;
        }
        l.step();
    }
    ASSERT_TRUE(l.r.in_sync()) << "not in sync after " << (l.now - t0) / ms << " ms (simulated)";
    EXPECT_EQ(l.r.applied(), l.s.last_seq());
    EXPECT_EQ(l.follower.t.state().digest, l.primary.t.state().digest);
    EXPECT_EQ(l.follower.t.count(), l.primary.t.count());
    EXPECT_GT(extra, 0u);
    EXPECT_EQ(l.s.counters().snapshots, 1u);
    std::printf("  1,000,000 records: in sync after %.1f ms of simulated time (10 us steps), %llu frames, %llu writes during the walk\n",
                static_cast<double>(l.now - t0) / ms, static_cast<unsigned long long>(l.frames_to_follower),
                static_cast<unsigned long long>(extra));
}

// Snapshot chunks lost on the way are sent again from the first one missing, not the whole
// snapshot (a 400-chunk walk would never get through 3 % loss whole).
TEST(Replication, ASnapshotOverALossyLinkCompletesByResendingLostChunks) {
    link_sim l(table_geometry::for_records(20'000, 16, 32), small_params());
    l.down = true;
    for (int i = 0; i < 20'000; ++i) l.s.put(cat("key", i), b(cat("value ", i)), l.now);
    l.down = false;
    l.loss = 0.03;
    ASSERT_TRUE(l.run_until_synced(2000 * ms)) << "applied " << l.r.applied() << " of " << l.s.last_seq() << ", "
                                               << l.s.counters().snapshots << " snapshots";
    EXPECT_EQ(contents(l.follower.t), contents(l.primary.t));
    EXPECT_EQ(l.s.counters().snapshots, 1u) << "one snapshot, its lost chunks resent";
    EXPECT_GT(l.s.counters().chunk_rewinds, 0u);
}

// A divergence on the follower, found by its digest comparison or its scrub, is a fault of
// its own and repaired by a snapshot.
TEST(Replication, ADivergenceIsDetectedAndRepairedByASnapshot) {
    link_sim l(table_geometry::for_records(2000, 16, 32), small_params());
    ASSERT_TRUE(l.run_until_synced(100 * ms));
    for (int i = 0; i < 1000; ++i) l.s.put(cat("k", i), b(cat("v", i)), l.now);
    ASSERT_TRUE(l.run_until_synced(100 * ms));
    const auto snapshots = l.s.counters().snapshots;

    // A write that reached the follower's copy but not through the stream: the next delta's
    // digest comparison catches it.
    l.follower.t.put("k5", b("stray"), l.follower.t.state().applied_seq);
    l.s.put("k6", b("next"), l.now);
    ASSERT_TRUE(l.run_until_synced(200 * ms));
    EXPECT_EQ(l.r.counters().divergences, 1u);
    EXPECT_EQ(l.s.counters().divergences, 1u) << "reported to the primary";
    EXPECT_EQ(l.s.counters().snapshots, snapshots + 1);
    EXPECT_EQ(get(l.follower.t, "k5"), "v5") << "repaired";

    // Memory corruption leaves the digest alone: the scrub finds it.
    l.follower.t.corrupt_for_test("k7", std::byte{1});
    std::uint64_t bad = 0;
    for (std::uint32_t at = 0; at < l.follower.t.geometry().capacity;) at = l.follower.t.scrub(at, 256, bad);
    ASSERT_EQ(bad, 1u);
    l.r.mark_diverged(bad);
    EXPECT_FALSE(l.r.in_sync());
    l.r.poll(l.now + 2 * ms, 1 * ms, [&](std::span<const std::byte> a) { l.send(false, a); }); // says so at once
    ASSERT_TRUE(l.run_until_synced(200 * ms));
    EXPECT_EQ(get(l.follower.t, "k7"), "v7");
    EXPECT_EQ(contents(l.follower.t), contents(l.primary.t));
}

// Neither side holds its poll loop for long on a large table: a primary walking a sparse
// one (a few records in a million slots) looks at a bounded number of slots per poll, and
// a follower whose large copy a snapshot replaces clears it in slices, dropping and then
// asking again for the chunks that arrive meanwhile.
TEST(Replication, ASnapshotOfALargeTableIsWalkedAndClearedInSlices) {
    sender_params p = small_params();
    p.log_entries = 1u << 18;
    p.log_bytes = 16u << 20;
    link_sim l(table_geometry::for_records(200'000, 16, 32), p);
    const std::uint32_t cap = l.primary.t.geometry().capacity;
    l.down = true;
    for (int i = 0; i < 20; ++i) l.s.put(cat("key", i), b("sparse"), l.now);
    l.down = false;
    std::uint64_t polls = 0;
    while (!l.r.in_sync() && polls < 100'000) {
        l.step();
        ++polls;
    }
    ASSERT_TRUE(l.run_until_synced(2000 * ms));
    EXPECT_GE(polls, cap / p.snapshot_slots_per_poll) << "the sparse walk looked at more slots per poll than its budget";
    EXPECT_EQ(contents(l.follower.t), contents(l.primary.t));

    // Fill it, let the follower have it all, then make it repair its copy by a snapshot.
    for (int i = 0; i < 150'000; ++i) l.s.put(cat("key", i), b(cat("v", i)), l.now);
    ASSERT_TRUE(l.run_until_synced(5'000 * ms));
    l.r.mark_diverged(1);
    l.r.poll(l.now + 2 * ms, 1 * ms, [&](std::span<const std::byte> a) { l.send(false, a); });
    ASSERT_TRUE(l.run_until_synced(5'000 * ms)) << "clearing " << l.r.clearing() << " slices " << l.r.counters().clear_slices << " drops "
                                                << l.r.counters().clear_drops << " gaps " << l.r.counters().gaps << " snapshots "
                                                << l.s.counters().snapshots << " rewinds " << l.s.counters().chunk_rewinds << " rsnap "
                                                << l.r.counters().snapshots << " in_sync " << l.r.in_sync() << "/" << l.s.in_sync()
                                                << " applied " << l.r.applied() << " last " << l.s.last_seq() << " acked " << l.s.acked();
    EXPECT_GE(l.r.counters().clear_slices, cap / receiver::clear_slots_per_poll);
    EXPECT_GT(l.r.counters().clear_drops, 0u);
    EXPECT_EQ(l.follower.t.count(), l.primary.t.count());
    EXPECT_EQ(l.follower.t.state().digest, l.primary.t.state().digest);
    EXPECT_EQ(contents(l.follower.t), contents(l.primary.t));
}

// A snapshot is flow-controlled too: with the follower's answers gone, the walk stops a
// window of chunks past the last one it said it holds, and goes back to it after the RTO.
TEST(Replication, ASnapshotSendsNoMoreThanAWindowOfChunksAheadOfTheFollower) {
    sender_params p = small_params();
    p.snapshot_chunks_per_poll = 8;
    link_sim l(table_geometry::for_records(20'000, 16, 32), p);
    l.down = true;
    for (int i = 0; i < 20'000; ++i) l.s.put(cat("key", i), b(cat("value ", i)), l.now);
    l.down = false;
    while (!l.s.snapshotting()) l.step();
    for (int i = 0; i < 20; ++i) l.step(); // the follower answers the first chunks
    l.down = true;
    const std::uint64_t before = l.frames_to_follower;
    for (int i = 0; i < 100; ++i) l.step(); // 1 ms: 800 chunks without flow control
    const std::uint64_t window = p.window_bytes / p.frame_budget;
    EXPECT_LE(l.frames_to_follower - before, 4 * window) << "chunks sent with no answer";
    EXPECT_GT(l.s.counters().window_full, 0u);
    l.down = false;
    ASSERT_TRUE(l.run_until_synced(2000 * ms));
    EXPECT_EQ(contents(l.follower.t), contents(l.primary.t));
    EXPECT_EQ(l.s.counters().snapshots, 1u) << "the walk went back, it did not start over";
}

// Flow control: with no acknowledgement, no more than the window is in flight.
TEST(Replication, TheWindowBoundsWhatIsInFlight) {
    auto p = small_params();
    p.window_bytes = 8u << 10;
    link_sim l(table_geometry::for_records(5000, 16, 32), p);
    ASSERT_TRUE(l.run_until_synced(100 * ms));
    l.loss = 1.0; // nothing arrives from now on
    const std::uint64_t before = l.frames_to_follower;
    for (int i = 0; i < 2000; ++i) l.s.put(cat("k", i), b(std::string(30, 'x')), l.now);
    l.step();
    const auto lag = l.s.current_lag(l.now);
    EXPECT_EQ(lag.entries, 2000u);
    EXPECT_GT(lag.bytes, 8u << 10);
    EXPECT_LE((l.frames_to_follower - before) * p.frame_budget, p.window_bytes + 2 * p.frame_budget);
    EXPECT_GT(l.s.counters().window_full, 0u);
    l.loss = 0;
    ASSERT_TRUE(l.run_until_synced(500 * ms));
    EXPECT_EQ(l.s.current_lag(l.now).entries, 0u);
}

// A follower away for longer than the log holds comes back through a snapshot.
TEST(Replication, AFollowerPastTheLogComesBackThroughASnapshot) {
    auto p = small_params();
    p.log_entries = 256;
    link_sim l(table_geometry::for_records(5000, 16, 32), p);
    ASSERT_TRUE(l.run_until_synced(100 * ms));
    l.down = true;
    for (int i = 0; i < 3000; ++i) l.s.put(cat("k", i), b("v"), l.now);
    for (int i = 0; i < 100; ++i) l.step();
    l.down = false;
    const bool synced = l.run_until_synced(1000 * ms);
    EXPECT_TRUE(synced) << "r.in_sync " << l.r.in_sync() << " s.in_sync " << l.s.in_sync() << " applied " << l.r.applied()
                        << " last " << l.s.last_seq() << " acked " << l.s.acked() << " snapshotting " << l.s.snapshotting()
                        << " r.snapshots " << l.r.counters().snapshots << " gaps " << l.r.counters().gaps << " s.snaps "
                        << l.s.counters().snapshots << " wire " << l.wire.size() << " stale " << l.s.counters().stale_acks;
    EXPECT_GE(l.s.counters().snapshots, 2u) << "the join, then the way back";
    EXPECT_EQ(contents(l.follower.t), contents(l.primary.t));
}

// A monitor judged gone (reset_follower) and heard again with its copy intact: the rejoin's
// snapshot is of a base it already holds, so every chunk is a duplicate to it and it never
// reports progress. The walk must end on its ACK, not wait on a window that never moves
// (a table larger than the window stalled here for good, the store degraded forever).
TEST(Replication, ARejoinToAnIntactCopyEndsTheWalkAtOnce) {
    link_sim l(table_geometry::for_records(20'000, 16, 32), small_params());
    for (int i = 0; i < 20'000; ++i) l.s.put(cat("key", i), b(cat("value ", i)), l.now);
    ASSERT_TRUE(l.run_until_synced(5'000 * ms));
    const std::uint64_t walks = l.s.counters().snapshots;
    l.s.reset_follower();
    const std::uint64_t before = l.frames_to_follower;
    ASSERT_TRUE(l.run_until_synced(2'000 * ms)) << "snapshotting " << l.s.snapshotting() << " window_full "
                                                 << l.s.counters().window_full << " rto " << l.s.counters().rto_expiries;
    EXPECT_EQ(l.s.counters().snapshots, walks + 1);
    EXPECT_EQ(l.s.counters().walks_skipped, 1u);
    const std::uint64_t window = small_params().window_bytes / small_params().frame_budget;
    EXPECT_LE(l.frames_to_follower - before, window + 8) << "the walk went on after the follower said it held its base";
    // And the stream goes on from there.
    for (int i = 0; i < 100; ++i) l.s.put(cat("new", i), b("after"), l.now);
    ASSERT_TRUE(l.run_until_synced(2'000 * ms));
    EXPECT_EQ(contents(l.follower.t), contents(l.primary.t));
}

// A stream with no write yet snapshots from base 0, and a follower in the middle of a walk
// acks 0: that ACK is no copy's (flag_walking), or the sender took it for the whole snapshot
// while the follower, still clearing its old copy, waited for chunks that never came.
TEST(Replication, AFollowerInTheMiddleOfAWalkFromBaseZeroIsNotTakenForDone) {
    sender_params p = small_params();
    p.keepalive_ns = 1 * ms;
    link_sim l(table_geometry::for_records(20'000, 16, 32), p);
    ASSERT_GT(l.follower.t.geometry().capacity, receiver::clear_slots_per_poll);
    for (int i = 0; i < 10'000; ++i) l.follower.t.put(cat("old", i), b("stale"), static_cast<std::uint64_t>(i + 1));
    ASSERT_EQ(l.s.last_seq(), 0u);
    ASSERT_TRUE(l.run_until_synced(2'000 * ms)) << "follower in sync " << l.r.in_sync() << " clearing " << l.r.clearing()
                                                 << " sender in sync " << l.s.in_sync();
    EXPECT_EQ(l.follower.t.count(), 0u);
    for (int i = 0; i < 100; ++i) l.s.put(cat("new", i), b("v"), l.now);
    ASSERT_TRUE(l.run_until_synced(2'000 * ms));
    EXPECT_EQ(contents(l.follower.t), contents(l.primary.t));
}

// A walk the sender gave up and started again from the same base (the follower asked
// again): a late chunk 0 of the old walk does not restart the follower on it.
TEST(Replication, AChunkOfAnAbandonedWalkDoesNotRestartTheSnapshot) {
    const auto g = table_geometry::for_records(2'000, 16, 32);
    owned_table pt(g), ft(g);
    const sender_params p = small_params();
    sender s(pt.t, p, 0xabc);
    receiver r(ft.t);
    std::uint64_t now = 1 * ms;
    for (int i = 0; i < 300; ++i) s.put(cat("key", i), b(cat("value ", i)), now);
    using frames = std::vector<std::vector<std::byte>>;
    const auto walk = [&](frames& out) {
        for (int n = 0; n < 10'000 && s.snapshotting(); ++n) {
            now += 10 * us;
            s.poll(now, [&](std::span<const std::byte> f) { out.emplace_back(f.begin(), f.end()); });
        }
    };
    ack_msg hello; // a follower that holds nothing of this stream: it joins by a snapshot
    s.on_ack(hello, now);
    frames w1, w2, acks;
    walk(w1);
    now += 1'000 * ms; // the first walk long over, the follower asks again: a second, same base
    ack_msg again;
    again.stream = s.stream();
    again.flags = flag_want_snapshot;
    s.on_ack(again, now);
    ASSERT_TRUE(s.snapshotting());
    walk(w2);
    ASSERT_GE(w1.size(), 3u);
    ASSERT_EQ(w1.size(), w2.size());
    const auto deliver = [&](const std::vector<std::byte>& f) {
        r.on_frame(f, now, [&](std::span<const std::byte> a) { acks.emplace_back(a.begin(), a.end()); });
    };
    deliver(w2[0]);
    deliver(w2[1]);
    const std::uint64_t snaps = r.counters().snapshots;
    deliver(w1[0]); // late
    EXPECT_EQ(r.counters().snapshots, snaps) << "the abandoned walk's chunk 0 restarted the snapshot";
    for (std::size_t i = 2; i < w2.size(); ++i) deliver(w2[i]);
    EXPECT_EQ(r.applied(), s.last_seq());
    EXPECT_EQ(contents(ft.t), contents(pt.t));
    EXPECT_EQ(r.counters().gaps, 0u);
}

TEST(Replication, MalformedFramesAreCountedAndChangeNothing) {
    link_sim l(table_geometry::for_records(100, 16, 32), small_params());
    ASSERT_TRUE(l.run_until_synced(100 * ms));
    l.s.put("a", b("1"), l.now);
    ASSERT_TRUE(l.run_until_synced(100 * ms));
    const auto digest = l.follower.t.state().digest;
    std::vector<std::byte> f(data_header_bytes + entry_header_bytes + 4);
    data_header h{frame_type::data, 0, 3, l.r.stream(), l.r.applied() + 1, 0, 0}; // says 3 entries, holds 1 (truncated)
    f[0] = std::byte{1};
    f[2] = std::byte{3};
    for (int i = 0; i < 8; ++i) f[4 + i] = std::byte(static_cast<std::uint8_t>(h.stream >> (8 * i)));
    const auto before = l.r.counters().bad_frames;
    l.r.on_frame(f, l.now, [](std::span<const std::byte>) {});
    l.r.on_frame(std::span<const std::byte>(f.data(), 3), l.now, [](std::span<const std::byte>) {});
    EXPECT_EQ(l.r.counters().bad_frames, before + 2);
    EXPECT_EQ(l.follower.t.state().digest, digest);
    ack_msg a;
    EXPECT_FALSE(decode_ack(std::span<const std::byte>(f.data(), 5), a));
}

// ---------------------------------------------------------------- the reader-side walk

// What another process's walk (heartwirectl state dump) sees: the same live records as the
// writer's walk, tombstones left out, nothing skipped on a quiet table.
TEST(ReplicaTableForEach, AReaderWalksTheSameRecordsAsTheWriter) {
    owned_table o(table_geometry::for_records(1000, 16, 32));
    for (int i = 0; i < 1000; ++i) o.t.put(cat("k", i), b(cat("value ", i)), i + 1);
    for (int i = 0; i < 1000; i += 3) o.t.erase(cat("k", i), 2000 + i);
    const table view = table::attach({o.mem.get(), o.t.geometry().region_bytes()});
    std::vector<std::byte> scratch(view.scratch_bytes());
    std::map<std::string, std::string> seen;
    std::map<std::string, std::uint64_t> seqs;
    const auto w = view.for_each(scratch, [&](std::string_view k, std::span<const std::byte> v, std::uint64_t seq) {
        seen[std::string(k)] = std::string(reinterpret_cast<const char*>(v.data()), v.size());
        seqs[std::string(k)] = seq;
    });
    EXPECT_EQ(seen, contents(o.t));
    EXPECT_EQ(w.records, o.t.count());
    EXPECT_EQ(w.skipped, 0u);
    EXPECT_FALSE(w.scratch_too_small);
    EXPECT_EQ(seqs["k500"], 501u);
    EXPECT_EQ(seen.count("k999"), 0u) << "erased";
    std::byte small[8];
    const auto none = view.for_each(small, [&](auto, auto, auto) { ADD_FAILURE() << "handed with too small a scratch"; });
    EXPECT_TRUE(none.scratch_too_small);
    EXPECT_EQ(none.records, 0u);
}

// A slot whose writer died half-way (its version left odd) is given up on after the tries
// and counted; the walk goes on with the other records.
TEST(ReplicaTableForEach, ASlotLeftLockedIsSkippedAndCounted) {
    const auto g = table_geometry::for_records(64, 8, 16);
    owned_table o(g);
    for (int i = 0; i < 50; ++i) o.t.put(cat("k", i), b("v"), i + 1);
    slot_head* locked = nullptr;
    for (std::uint32_t i = 0; i < g.capacity && !locked; ++i) {
        auto* s = reinterpret_cast<slot_head*>(o.mem.get() + sizeof(table_header) + std::size_t{i} * g.slot_bytes());
        const auto* key = reinterpret_cast<const char*>(s) + sizeof(slot_head);
        if (s->state == 1 && std::string_view(key, s->key_len) == "k7") locked = s;
    }
    ASSERT_NE(locked, nullptr);
    locked->version.fetch_add(1); // odd: a writer inside
    std::vector<std::byte> scratch(o.t.scratch_bytes());
    std::vector<std::string> keys;
    const auto w = o.t.for_each(scratch, [&](std::string_view k, auto, auto) { keys.emplace_back(k); }, 3);
    EXPECT_EQ(w.skipped, 1u);
    EXPECT_EQ(w.records, 49u);
    EXPECT_EQ(std::count(keys.begin(), keys.end(), "k7"), 0);
    locked->version.fetch_add(1);
    EXPECT_EQ(o.t.for_each(scratch, [](auto, auto, auto) {}).records, 50u);
}

// A writer thread rewrites hot records and churns others while a reader walks over and over:
// every record handed over is whole (its value one byte repeated, the byte its seq's), and
// every hot record, which never moves, is in every walk or counted as skipped.
TEST(ReplicaTableForEach, AWalkBesideAConcurrentWriterNeverHandsOverATornRecord) {
    owned_table o(table_geometry::for_records(256, 8, 200));
    constexpr int hot = 32;
    const auto value_for = [](std::uint64_t seq) { return std::string(200, static_cast<char>('a' + seq % 26)); };
    std::uint64_t seq = 0;
    for (int i = 0; i < hot; ++i) {
        ++seq;
        o.t.put(cat("h", i), b(value_for(seq)), seq);
    }
    std::atomic<bool> stop{false};
    std::atomic<std::uint64_t> walks{0};
    std::thread writer([&, seq]() mutable {
        for (std::uint64_t n = 0; !stop.load(std::memory_order_relaxed) || walks.load() < 200; ++n) {
            ++seq;
            if (n % 4 == 0) o.t.put(cat("c", n % 100), b(value_for(seq)), seq);
            else if (n % 4 == 1) o.t.erase(cat("c", (n + 50) % 100), seq);
            else o.t.put(cat("h", n % hot), b(value_for(seq)), seq);
        }
    });
    std::vector<std::byte> scratch(o.t.scratch_bytes());
    std::uint64_t torn = 0, missing_hot = 0, skipped = 0, handed = 0;
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(300);
    while (std::chrono::steady_clock::now() < until || walks.load() < 200) {
        int hot_seen = 0;
        const auto w = o.t.for_each(scratch, [&](std::string_view k, std::span<const std::byte> v, std::uint64_t s) {
            const std::string want = value_for(s);
            if (v.size() != want.size() || std::memcmp(v.data(), want.data(), want.size()) != 0) ++torn;
            if (k.front() == 'h') ++hot_seen;
        });
        if (static_cast<std::uint64_t>(hot_seen) + w.skipped < hot) ++missing_hot;
        skipped += w.skipped;
        handed += w.records;
        walks.fetch_add(1);
    }
    stop = true;
    writer.join();
    EXPECT_EQ(torn, 0u);
    EXPECT_EQ(missing_hot, 0u);
    EXPECT_GT(handed, 200u * hot);
    EXPECT_LE(skipped, handed / 100) << "retries make a skip rare";
}
