// The state store's shared region (issue 10 item 3): a real file in /dev/shm, an application
// in another process writing through heartwire::state::client, the engine's side draining
// the queue into a replica::sender, replication to a second region (the monitor's), and the
// synchronous write completing only once the follower acknowledged it.

#include <gtest/gtest.h>

#include <linux/futex.h>
#include <sched.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "heartwire/replication.hpp"
#include "heartwire/state.hpp"

using namespace heartwire;
using namespace std::chrono_literals;

namespace {

std::string shm_path(const char* what) { return "/dev/shm/hwtest-" + std::to_string(::getpid()) + "-" + what; }

struct unlink_at_end {
    std::string path;
    ~unlink_at_end() { ::unlink(path.c_str()); }
};

state::region_geometry geometry(std::uint64_t records, std::uint32_t cells = 256) {
    state::region_geometry g;
    g.table = replica::table_geometry::for_records(records, 32, 64);
    g.cells = cells;
    return g;
}

std::span<const std::byte> bytes(const std::string& s) { return {reinterpret_cast<const std::byte*>(s.data()), s.size()}; }

std::string value_of(int i) {
    std::string s("value ");
    s += std::to_string(i);
    return s;
}

std::string key_of(int i) {
    std::string s("key:");
    s += std::to_string(i);
    return s;
}

} // namespace

// An application process writes 5,000 records synchronously: each completes only once the
// monitor's copy acknowledged it; both copies end equal, and the application reads its own.
TEST(StateRegion, AnApplicationsSynchronousWritesCompleteOnceTheMonitorHasThem) {
    const unlink_at_end pf{shm_path("primary")}, mf{shm_path("monitor")};
    std::string err;
    auto prim = state::region::create(pf.path, geometry(10'000), true, err);
    ASSERT_TRUE(prim) << err;
    auto mon = state::region::create(mf.path, geometry(10'000), true, err);
    ASSERT_TRUE(mon) << err;

    int p[2];
    ASSERT_EQ(::pipe(p), 0);
    std::fflush(nullptr);
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) { // the application: its own mapping of the file, no heartwired code of the engine's
        ::close(p[0]);
        std::string e;
        auto c = state::client::open(pf.path, e);
        int bad = c ? 0 : 100;
        for (int i = 0; c && i < 5000; ++i) {
            const auto t = c->put(key_of(i), bytes(value_of(i)));
            if (t == 0 || !c->wait(t, 5s)) ++bad;
        }
        std::byte buf[64];
        if (c && c->get(key_of(4999), buf) != static_cast<long>(value_of(4999).size())) bad += 1000;
        const std::string out = std::to_string(bad) + "\n";
        [[maybe_unused]] auto w = ::write(p[1], out.data(), out.size());
        ::_exit(0);
    }
    ::close(p[1]);

    // The engine's side, primary and monitor, on one thread here: drain, replicate, ack.
    replica::sender s(prim->table(), {}, 0x5157);
    replica::receiver r(mon->table());
    std::vector<std::vector<std::byte>> to_mon, to_prim;
    std::uint64_t now = 1;
    std::uint64_t max_lag_entries = 0;
    int status = -1;
    const auto until = std::chrono::steady_clock::now() + 30s;
    while (std::chrono::steady_clock::now() < until) {
        now += 10'000;
        prim->drain(64, [&](std::uint8_t op, std::string_view k, std::span<const std::byte> v) {
            return op == replica::op_put ? s.put(k, v, now) : s.erase(k, now);
        });
        prim->header().applied_seq.store(s.last_seq(), std::memory_order_release);
        s.poll(now, [&](std::span<const std::byte> f) { to_mon.emplace_back(f.begin(), f.end()); });
        r.poll(now, 1'000'000, [&](std::span<const std::byte> a) { to_prim.emplace_back(a.begin(), a.end()); });
        for (auto& f : to_mon) r.on_frame(f, now, [&](std::span<const std::byte> a) { to_prim.emplace_back(a.begin(), a.end()); });
        to_mon.clear();
        for (auto& a : to_prim) {
            replica::ack_msg m;
            if (replica::decode_ack(a, m)) s.on_ack(m, now);
        }
        to_prim.clear();
        max_lag_entries = std::max(max_lag_entries, s.current_lag(now).entries);
        prim->header().replicated_seq.store(s.acked(), std::memory_order_release);
        // Never ahead of the follower: a synchronous write's completion means the monitor has it.
        ASSERT_LE(s.acked(), r.applied());
        if (::waitpid(child, &status, WNOHANG) == child) break;
    }
    char buf[32] = {};
    ASSERT_GT(::read(p[0], buf, sizeof buf - 1), 0);
    ::close(p[0]);
    EXPECT_EQ(std::string(buf), "0\n") << "writes that failed or timed out (1000: a wrong read)";
    EXPECT_EQ(mon->table().count(), 5000u);
    EXPECT_EQ(mon->table().state().digest, prim->table().state().digest);
    std::byte v[64];
    EXPECT_EQ(mon->table().get(key_of(1234), v), static_cast<long>(value_of(1234).size()));
    EXPECT_LE(max_lag_entries, 256u) << "bounded by the queue: a synchronous writer waits for each";
}

// A queue the engine does not drain refuses after its patience, and leaves no hole: once the
// engine drains, writing works again and every accepted write is there, in order.
TEST(StateRegion, AFullQueueRefusesWithoutLeavingAHole) {
    const unlink_at_end f{shm_path("full")};
    std::string err;
    auto reg = state::region::create(f.path, geometry(1000, 16), false, err);
    ASSERT_TRUE(reg) << err;
    auto c = state::client::open(f.path, err);
    ASSERT_TRUE(c) << err;
    std::vector<std::uint64_t> tickets;
    for (int i = 0; i < 16; ++i) tickets.push_back(c->put(key_of(i), bytes("v")));
    for (auto t : tickets) EXPECT_NE(t, 0u);
    const auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(reg->enqueue(replica::op_put, "one-too-many", bytes("v"), 5ms), 0u);
    EXPECT_GE(std::chrono::steady_clock::now() - t0, 5ms);
    std::uint64_t seq = 0;
    std::vector<std::string> applied;
    const auto apply = [&](std::uint8_t, std::string_view k, std::span<const std::byte> v) {
        applied.emplace_back(k);
        reg->table().put(k, v, ++seq);
        return seq;
    };
    EXPECT_EQ(reg->drain(100, apply), 16u);
    reg->header().applied_seq.store(seq);
    EXPECT_TRUE(c->wait(tickets.back(), 1s)) << "asynchronous: complete once applied here";
    const auto t = c->put("after", bytes("v"));
    ASSERT_NE(t, 0u);
    EXPECT_EQ(reg->drain(100, apply), 1u);
    EXPECT_EQ(applied.front(), "key:0");
    EXPECT_EQ(applied.back(), "after");
    EXPECT_EQ(c->put(std::string(33, 'k'), bytes("v")), 0u) << "a key over key_max is refused at once";
}

TEST(StateRegion, AFileThatIsNotARegionIsAClearError) {
    const unlink_at_end f{shm_path("junk")};
    std::ofstream(f.path) << std::string(4096, 'x');
    std::string err;
    EXPECT_FALSE(state::client::open(f.path, err));
    EXPECT_NE(err.find("is not a heartwire state region"), std::string::npos) << err;
    EXPECT_FALSE(state::client::open(shm_path("absent"), err));
    EXPECT_NE(err.find("cannot open"), std::string::npos) << err;
}

// The C ABI: the same region through heartwire/state.h.
extern "C" {
#include "heartwire/state.h"
}

TEST(StateRegion, TheCInterfaceWritesAndReadsTheSameRegion) {
    const unlink_at_end f{shm_path("cabi")};
    std::string err;
    auto reg = state::region::create(f.path, geometry(100), false, err);
    ASSERT_TRUE(reg) << err;
    char e[128];
    EXPECT_EQ(hw_state_open("/dev/shm/hwtest-none", e, sizeof e), nullptr);
    EXPECT_NE(std::string(e).find("cannot open"), std::string::npos) << e;
    hw_state* s = hw_state_open(f.path.c_str(), e, sizeof e);
    ASSERT_NE(s, nullptr) << e;
    const uint64_t t = hw_state_put(s, "k", 1, "hello", 5);
    ASSERT_NE(t, 0u);
    std::uint64_t seq = 0;
    reg->drain(8, [&](std::uint8_t, std::string_view k, std::span<const std::byte> v) {
        reg->table().put(k, v, ++seq);
        return seq;
    });
    reg->header().applied_seq.store(seq);
    EXPECT_EQ(hw_state_wait(s, t, 1'000'000'000), 1);
    char out[16] = {};
    EXPECT_EQ(hw_state_get(s, "k", 1, out, sizeof out), 5);
    EXPECT_STREQ(out, "hello");
    EXPECT_EQ(hw_state_get(s, "x", 1, out, sizeof out), -1);
    EXPECT_EQ(hw_state_in_sync(s), 0);
    hw_state_close(s);
}

// heartwired restarting unlinks the region's file and creates a new one: the application's
// old mapping goes stale (a copy nobody writes, a queue nobody drains). replaced() notices,
// reopen() maps the new file, and a write completes again; while there is no file at all,
// reopen() fails and keeps the old mapping.
TEST(StateRegion, AnApplicationNoticesARestartedHeartwiredAndReopens) {
    const unlink_at_end f{shm_path("restart")};
    std::string err;
    auto first = state::region::create(f.path, geometry(100), false, err);
    ASSERT_TRUE(first) << err;
    first->table().put("before", bytes("old"), 1);
    auto c = state::client::open(f.path, err);
    ASSERT_TRUE(c) << err;
    EXPECT_FALSE(c->replaced());
    std::byte buf[64];
    EXPECT_EQ(c->get("before", buf), 3);

    auto second = state::region::create(f.path, geometry(100), false, err); // the restarted heartwired
    ASSERT_TRUE(second) << err;
    EXPECT_TRUE(c->replaced());
    EXPECT_EQ(c->get("before", buf), 3) << "still the old copy until reopened";
    ASSERT_TRUE(c->reopen(err)) << err;
    EXPECT_FALSE(c->replaced());
    EXPECT_EQ(c->get("before", buf), -1) << "the new region starts empty";
    const auto t = c->put("after", bytes("new"));
    ASSERT_NE(t, 0u);
    std::uint64_t seq = 0;
    EXPECT_EQ(second->drain(8, [&](std::uint8_t, std::string_view k, std::span<const std::byte> v) {
        second->table().put(k, v, ++seq);
        return seq;
    }), 1u) << "the write went to the new region's queue";
    second->header().applied_seq.store(seq);
    EXPECT_TRUE(c->wait(t, 1s));
    EXPECT_EQ(c->get("after", buf), 3);

    ::unlink(f.path.c_str()); // heartwired stopped (or between unlink and create)
    EXPECT_TRUE(c->replaced());
    EXPECT_FALSE(c->reopen(err));
    EXPECT_NE(err.find("cannot open"), std::string::npos) << err;
    EXPECT_EQ(c->get("after", buf), 3) << "a failed reopen keeps the mapping it had";
}

TEST(StateRegion, TheCInterfaceNoticesAReplacedRegionAndReopens) {
    const unlink_at_end f{shm_path("crestart")};
    std::string err;
    auto first = state::region::create(f.path, geometry(100), false, err);
    ASSERT_TRUE(first) << err;
    char e[128] = {};
    hw_state* s = hw_state_open(f.path.c_str(), e, sizeof e);
    ASSERT_NE(s, nullptr) << e;
    EXPECT_EQ(hw_state_replaced(s), 0);
    ::unlink(f.path.c_str());
    EXPECT_EQ(hw_state_replaced(s), 1);
    EXPECT_EQ(hw_state_reopen(s, e, sizeof e), 0);
    EXPECT_NE(std::string(e).find("cannot open"), std::string::npos) << e;
    auto second = state::region::create(f.path, geometry(100), false, err);
    ASSERT_TRUE(second) << err;
    second->table().put("k", bytes("v2"), 1);
    EXPECT_EQ(hw_state_replaced(s), 1);
    EXPECT_EQ(hw_state_reopen(s, e, sizeof e), 1) << e;
    EXPECT_EQ(hw_state_replaced(s), 0);
    char out[8] = {};
    EXPECT_EQ(hw_state_get(s, "k", 1, out, sizeof out), 2);
    EXPECT_STREQ(out, "v2");
    hw_state_close(s);
}

// In synchronous mode the local copy holds writes applied here before the monitor has them:
// get() hands the record's seq and wait_seq() says when it is one a takeover keeps.
TEST(StateRegion, AReadWaitsUntilTheValueIsOneTheMonitorHas) {
    const unlink_at_end f{shm_path("readsync")};
    std::string err;
    auto reg = state::region::create(f.path, geometry(100), true, err);
    ASSERT_TRUE(reg) << err;
    auto c = state::client::open(f.path, err);
    ASSERT_TRUE(c) << err;
    reg->table().put("k", bytes("v"), 7);
    reg->header().applied_seq.store(7);
    reg->header().replicated_seq.store(6);
    std::byte buf[8];
    std::uint64_t at = 0;
    EXPECT_EQ(c->get("k", buf, &at), 1);
    EXPECT_EQ(at, 7u);
    EXPECT_EQ(c->applied_seq(), 7u);
    EXPECT_EQ(c->complete_seq(), 6u);
    EXPECT_FALSE(c->wait_seq(at, 2ms)) << "applied here, not yet acknowledged";
    reg->header().replicated_seq.store(7);
    EXPECT_TRUE(c->wait_seq(at, 2ms));
}

// The doorbell (adaptive idle): the engine arms it and sleeps on it as a futex; a write from
// another process that finds it armed clears it and wakes the sleeper at once, long before
// the sleep's timeout. A write already at the queue's head means no sleep (arm refuses); a
// store the engine is not draining is armed regardless.
TEST(StateRegion, AWriteFromAnotherProcessRingsTheEnginesDoorbell) {
    const unlink_at_end f{shm_path("bell")};
    std::string err;
    auto reg = state::region::create(f.path, geometry(1000, 16), true, err);
    ASSERT_TRUE(reg) << err;
    ASSERT_TRUE(reg->arm_doorbell()) << "an empty queue: the engine may sleep";
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        std::string e;
        auto c = state::client::open(f.path, e);
        ::usleep(50'000); // the parent is asleep on the doorbell by then
        _exit(c && c->put("rung", bytes("v")) != 0 ? 0 : 1);
    }
    const auto t0 = std::chrono::steady_clock::now();
    timespec to{2, 0}; // relative timeout for FUTEX_WAIT: 2 s
    long rc = 0;
    while (reg->doorbell().load() == 1 && std::chrono::steady_clock::now() - t0 < 2s)
        rc = ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&reg->doorbell()), FUTEX_WAIT, 1, &to, nullptr, 0);
    const auto slept = std::chrono::steady_clock::now() - t0;
    (void)rc;
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    EXPECT_EQ(WEXITSTATUS(status), 0);
    EXPECT_EQ(reg->doorbell().load(), 0u) << "the producer cleared it";
    EXPECT_LT(slept, 1s) << "woken by the write, not by the timeout";
    EXPECT_GE(slept, 40ms) << "slept until the write";
    EXPECT_FALSE(reg->arm_doorbell()) << "a write waits at the head: no sleep";
    EXPECT_EQ(reg->doorbell().load(), 0u);
    EXPECT_TRUE(reg->arm_doorbell(false)) << "a queue not being drained keeps nothing awake";
    reg->disarm_doorbell();
    EXPECT_EQ(reg->drain(16, [](std::uint8_t, std::string_view, std::span<const std::byte>) { return std::uint64_t{1}; }), 1u);
    EXPECT_TRUE(reg->arm_doorbell());
    reg->disarm_doorbell();
}

// An application that shares the engine's CPU says so when it waits, and up to which seq a
// successful wait saw writes complete, so that the engine gives the core back once the
// writes are complete (idle_planner::hurry) and again until the waiter has seen them. Even a
// wait that finds its write already done says it (the waiter on the engine's own CPU runs
// only after the engine slept, when its write is long complete). A waiter on another CPU
// writes neither (the engine finds out itself that nobody on its CPU sees completions).
TEST(StateRegion, AWaitOnTheEnginesCpuSaysSoAndWhatItSaw) {
    const unlink_at_end f{shm_path("waiter")};
    std::string err;
    auto reg = state::region::create(f.path, geometry(1000, 16), true, err);
    ASSERT_TRUE(reg) << err;
    auto c = state::client::open(f.path, err);
    ASSERT_TRUE(c) << err;
    cpu_set_t old;
    ASSERT_EQ(::sched_getaffinity(0, sizeof old, &old), 0);
    std::vector<int> cpus;
    for (int i = 0; i < CPU_SETSIZE && cpus.size() < 2; ++i)
        if (CPU_ISSET(i, &old)) cpus.push_back(i);
    ASSERT_FALSE(cpus.empty());
    const auto pin = [](int cpu) {
        cpu_set_t one;
        CPU_ZERO(&one);
        CPU_SET(cpu, &one);
        return ::sched_setaffinity(0, sizeof one, &one) == 0;
    };
    const int engine = cpus[0];
    std::uint64_t seq = 0;
    const auto write_and_wait = [&] {
        const std::uint64_t t = c->put("k", bytes("v"));
        EXPECT_NE(t, 0u);
        EXPECT_EQ(reg->drain(16, [&](std::uint8_t, std::string_view, std::span<const std::byte>) { return ++seq; }), 1u);
        reg->header().applied_seq.store(seq);
        reg->header().replicated_seq.store(seq);
        EXPECT_TRUE(c->wait(t, 2ms)) << "complete before the wait began";
    };
    ASSERT_TRUE(pin(engine));
    write_and_wait();
    EXPECT_FALSE(reg->waiter_on(engine)) << "no engine running: nothing said";
    EXPECT_FALSE(reg->waiter_saw(1));
    reg->engine_on(engine);
    write_and_wait();
    EXPECT_TRUE(reg->waiter_on(engine)) << "the wait said it shares the engine's CPU";
    EXPECT_TRUE(reg->waiter_saw(2));
    EXPECT_FALSE(reg->waiter_saw(3));
    EXPECT_TRUE(c->wait_seq(2, 2ms));
    EXPECT_FALSE(reg->waiter_on(-1));
    if (cpus.size() > 1) {
        ASSERT_TRUE(pin(cpus[1]));
        write_and_wait();
        EXPECT_TRUE(reg->waiter_on(engine)) << "a waiter elsewhere does not undo one on the engine's CPU";
        EXPECT_FALSE(reg->waiter_saw(3)) << "a waiter on another CPU does not say what it saw";
        reg->header().waiter_cpu.store(0);
        write_and_wait();
        EXPECT_FALSE(reg->waiter_on(engine)) << "nor does it claim the engine's CPU";
        ASSERT_TRUE(pin(engine));
        EXPECT_TRUE(c->wait_seq(4, 2ms));
        EXPECT_TRUE(reg->waiter_on(engine)) << "wait_seq says it too";
        EXPECT_TRUE(reg->waiter_saw(4));
    }
    reg->note_seen(2);
    EXPECT_TRUE(reg->waiter_saw(seq)) << "what was seen never goes back (a slower thread's wait)";
    reg->engine_on(-1);
    EXPECT_EQ(reg->header().engine_cpu.load(), 0u) << "a stopped engine polls no CPU";
    ASSERT_EQ(::sched_setaffinity(0, sizeof old, &old), 0);
}
