// hook_queue against real child processes: short /bin/sh scripts that record each run in a
// file, so the tests count and order what actually ran, not what the queue says it did.

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "control/hook_queue.hpp"
#include "control/hooks.hpp"

using namespace std::chrono_literals;
namespace ctl = heartwire::control;
namespace fs = std::filesystem;

namespace {

struct temp_dir {
    fs::path path;
    temp_dir() {
        char tmpl[] = "/tmp/hwhq-test-XXXXXX";
        path = ::mkdtemp(tmpl);
    }
    ~temp_dir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
    std::string file(const char* name) const { return (path / name).string(); }
};

// `script` runs as `sh -c script sh args...`, with HW_DIR set to the test's directory; it
// appends "$*" to $HW_DIR/runs before doing anything else.
ctl::hook_request sh_hook(const temp_dir& d, std::string kind, const std::string& script,
                          std::vector<std::string> args, ctl::hook_merge merge = ctl::hook_merge::identical,
                          std::string key = {}) {
    ctl::hook_request r;
    r.kind = std::move(kind);
    r.argv = {"/bin/sh", "-c", "echo \"$*\" >> \"$HW_DIR/runs\"; " + script, "sh"};
    for (auto& a : args) r.argv.push_back(std::move(a));
    r.env = {"HW_DIR=" + d.path.string()};
    r.merge = merge;
    r.key = std::move(key);
    return r;
}

ctl::hook_request fence(const temp_dir& d, std::uint32_t peer, std::string mac = "02:00:00:00:00:02",
                        const std::string& script = "sleep 0.2") {
    return sh_hook(d, "fence", script, {std::to_string(peer), std::move(mac)}, ctl::hook_merge::same_key,
                   std::to_string(peer));
}

ctl::hook_request notify(const temp_dir& d, const std::string& role, int epoch, const std::string& script = "sleep 0.05") {
    return sh_hook(d, "notify", script, {role, std::to_string(epoch)}, ctl::hook_merge::never);
}

std::vector<std::string> runs(const temp_dir& d) {
    std::ifstream in(d.file("runs"));
    std::vector<std::string> out;
    for (std::string line; std::getline(in, line);) out.push_back(line);
    return out;
}

// Every completion, and how many times each ticket was answered.
struct collector {
    std::vector<ctl::hook_completion> done;
    std::map<std::uint64_t, int> answers;
    std::vector<ctl::hook_result> other;
    void wait(ctl::hook_queue& q) {
        q.wait_all([this](const ctl::hook_completion& c) { take(c); },
                   [this](const ctl::hook_result& r) { other.push_back(r); });
    }
    void take(const ctl::hook_completion& c) {
        done.push_back(c);
        for (auto t : c.tickets) ++answers[t];
    }
    // Each ticket answered exactly once, and nothing else answered.
    void expect_each_once(const std::vector<std::uint64_t>& tickets) const {
        EXPECT_EQ(answers.size(), tickets.size());
        for (auto t : tickets) EXPECT_EQ(answers.count(t) ? answers.at(t) : 0, 1) << "ticket " << t;
    }
};

} // namespace

TEST(HookQueue, HundredThirtyFencesForOnePeerRunTwiceAndEveryRequestIsAnswered) {
    temp_dir d;
    ctl::hook_runner runner(5s);
    ctl::hook_queue q(runner);
    std::vector<std::uint64_t> tickets;
    for (int i = 0; i < 130; ++i) tickets.push_back(q.submit(fence(d, 2)));

    const auto c = q.counters();
    EXPECT_EQ(c.submitted, 130u);
    EXPECT_EQ(c.started, 1u);
    EXPECT_EQ(c.running, 1u);
    EXPECT_EQ(c.queued, 1u);
    EXPECT_EQ(c.waiting, 1u);
    EXPECT_EQ(c.coalesced, 128u);
    EXPECT_EQ(c.dropped, 0u);
    EXPECT_LE(runner.running(), 1u) << "only one fence process at a time";

    collector got;
    got.wait(q);
    EXPECT_EQ(runs(d).size(), 2u) << "exactly two fence processes ran";
    ASSERT_EQ(got.done.size(), 2u);
    EXPECT_EQ(got.done[0].tickets, std::vector<std::uint64_t>{tickets[0]});
    EXPECT_EQ(got.done[1].tickets.size(), 129u) << "the queued run answers every request merged into it";
    for (const auto& cp : got.done) {
        EXPECT_TRUE(cp.result.ok()) << cp.result.error;
        EXPECT_EQ(cp.result.name, "fence");
        EXPECT_FALSE(cp.dropped);
    }
    got.expect_each_once(tickets);
    EXPECT_EQ(q.counters().started, 2u);
    EXPECT_EQ(q.counters().running, 0u);
    EXPECT_EQ(q.counters().waiting, 0u);
}

TEST(HookQueue, DifferentKindsRunAtTheSameTime) {
    temp_dir d;
    ctl::hook_runner runner(5s);
    ctl::hook_queue q(runner);
    // Each marks itself and succeeds only if it sees the other two running within 3 s.
    const std::string meet = "touch \"$HW_DIR/$1\"; for i in $(seq 60); do "
                             "[ -e \"$HW_DIR/fence\" ] && [ -e \"$HW_DIR/boot_peer\" ] && [ -e \"$HW_DIR/notify\" ] && exit 0; "
                             "sleep 0.05; done; exit 1";
    std::vector<std::uint64_t> tickets;
    for (const char* kind : {"fence", "boot_peer", "notify"}) tickets.push_back(q.submit(sh_hook(d, kind, meet, {kind})));
    EXPECT_EQ(q.counters().started, 3u);
    EXPECT_EQ(q.counters().queued, 0u);

    collector got;
    got.wait(q);
    ASSERT_EQ(got.done.size(), 3u);
    for (const auto& c : got.done) EXPECT_TRUE(c.result.ok()) << c.result.name << " did not see the others running";
    got.expect_each_once(tickets);
}

TEST(HookQueue, OneKindRunsOneAtATimeInArrivalOrder) {
    temp_dir d;
    ctl::hook_runner runner(5s);
    ctl::hook_queue q(runner);
    // A second fence running alongside would find the lock taken and fail.
    const std::string exclusive = "mkdir \"$HW_DIR/lock\" || exit 3; sleep 0.1; rmdir \"$HW_DIR/lock\"";
    std::vector<std::uint64_t> tickets;
    for (std::uint32_t peer : {2u, 3u, 4u, 5u}) tickets.push_back(q.submit(fence(d, peer, "m", exclusive)));
    EXPECT_EQ(q.counters().running, 1u);
    EXPECT_EQ(q.counters().waiting, 3u);

    collector got;
    got.wait(q);
    ASSERT_EQ(got.done.size(), 4u);
    for (const auto& c : got.done) EXPECT_TRUE(c.result.ok()) << "two fences overlapped: exit " << c.result.exit_code;
    EXPECT_EQ(runs(d), (std::vector<std::string>{"2 m", "3 m", "4 m", "5 m"}));
    got.expect_each_once(tickets);
}

TEST(HookQueue, NotifyRunsForEveryRoleChangeInOrder) {
    temp_dir d;
    ctl::hook_runner runner(5s);
    ctl::hook_queue q(runner);
    // Repeats included: notify never coalesces, each role change is reported.
    const std::vector<std::pair<std::string, int>> changes = {
        {"standby", 1}, {"monitor", 1}, {"primary", 2}, {"fault", 2}, {"primary", 2}, {"fault", 2}, {"primary", 2}};
    std::vector<std::uint64_t> tickets;
    for (const auto& [role, epoch] : changes) tickets.push_back(q.submit(notify(d, role, epoch)));
    EXPECT_EQ(q.counters().coalesced, 0u);

    collector got;
    got.wait(q);
    std::vector<std::string> want;
    for (const auto& [role, epoch] : changes) want.push_back(role + " " + std::to_string(epoch));
    EXPECT_EQ(runs(d), want);
    EXPECT_EQ(got.done.size(), changes.size());
    got.expect_each_once(tickets);
}

TEST(HookQueue, NotifyOverflowDropsTheOldestAndKeepsTheNewestRoles) {
    temp_dir d;
    ctl::hook_runner runner(5s);
    ctl::hook_queue q(runner, 3);
    std::vector<std::uint64_t> tickets;
    const std::vector<std::string> roles = {"init", "standby", "monitor", "primary", "fault", "standby"};
    for (std::size_t i = 0; i < roles.size(); ++i) tickets.push_back(q.submit(notify(d, roles[i], int(i))));
    // "init" runs; "standby 1" and "monitor 2" were pushed out by the last two.
    EXPECT_EQ(q.counters().dropped, 2u);
    EXPECT_EQ(q.counters().waiting, 3u);

    collector got;
    got.wait(q);
    EXPECT_EQ(runs(d), (std::vector<std::string>{"init 0", "primary 3", "fault 4", "standby 5"}));
    ASSERT_EQ(got.done.size(), 6u);
    std::vector<std::uint64_t> dropped;
    for (const auto& c : got.done) {
        if (!c.dropped) continue;
        EXPECT_FALSE(c.result.ok());
        EXPECT_TRUE(c.result.spawn_failed);
        EXPECT_NE(c.result.error.find("dropped"), std::string::npos) << c.result.error;
        dropped.insert(dropped.end(), c.tickets.begin(), c.tickets.end());
    }
    EXPECT_EQ(dropped, (std::vector<std::uint64_t>{tickets[1], tickets[2]}));
    got.expect_each_once(tickets);
}

TEST(HookQueue, FenceDroppedOnOverflowCompletesAsFailedForEveryRequestMergedIntoIt) {
    temp_dir d;
    ctl::hook_runner runner(5s);
    ctl::hook_queue q(runner, 2);
    const auto running = q.submit(fence(d, 1));
    const auto peer2a = q.submit(fence(d, 2));
    const auto peer2b = q.submit(fence(d, 2)); // merges into peer2a
    const auto peer3 = q.submit(fence(d, 3));
    const auto peer4 = q.submit(fence(d, 4)); // full: peer 2's request goes
    EXPECT_EQ(q.counters().dropped, 1u);
    EXPECT_EQ(q.counters().coalesced, 1u);

    collector got;
    got.wait(q);
    EXPECT_EQ(runs(d), (std::vector<std::string>{"1 02:00:00:00:00:02", "3 02:00:00:00:00:02", "4 02:00:00:00:00:02"}));
    ASSERT_EQ(got.done.size(), 4u);
    const ctl::hook_completion* drop = nullptr;
    for (const auto& c : got.done)
        if (c.dropped) drop = &c;
    ASSERT_NE(drop, nullptr);
    EXPECT_EQ(drop->tickets, (std::vector<std::uint64_t>{peer2a, peer2b}));
    EXPECT_EQ(drop->result.name, "fence");
    EXPECT_FALSE(drop->result.ok()) << "a state machine waiting on this fence must hear it failed";
    got.expect_each_once({running, peer2a, peer2b, peer3, peer4});
}

TEST(HookQueue, FenceForTheSamePeerTakesTheNewestArguments) {
    temp_dir d;
    ctl::hook_runner runner(5s);
    ctl::hook_queue q(runner);
    q.submit(fence(d, 2, "aa"));
    q.submit(fence(d, 2, "bb"));
    q.submit(fence(d, 2, "cc"));
    collector got;
    got.wait(q);
    EXPECT_EQ(runs(d), (std::vector<std::string>{"2 aa", "2 cc"}));
}

TEST(HookQueue, IdenticalRequestsCoalesceAndDifferentOnesWait) {
    temp_dir d;
    ctl::hook_runner runner(5s);
    ctl::hook_queue q(runner);
    std::vector<std::uint64_t> tickets;
    for (const char* epoch : {"1", "2", "2", "3", "2"})
        tickets.push_back(q.submit(sh_hook(d, "on_primary", "sleep 0.1", {epoch})));
    EXPECT_EQ(q.counters().coalesced, 2u);
    EXPECT_EQ(q.counters().queued, 2u);
    collector got;
    got.wait(q);
    EXPECT_EQ(runs(d), (std::vector<std::string>{"1", "2", "3"}));
    got.expect_each_once(tickets);
}

TEST(HookQueue, NeverCoalescesWithTheRunningRequest) {
    temp_dir d;
    ctl::hook_runner runner(5s);
    ctl::hook_queue q(runner);
    q.submit(sh_hook(d, "recover", "sleep 0.1", {"1"}));
    q.submit(sh_hook(d, "recover", "sleep 0.1", {"1"}));
    EXPECT_EQ(q.counters().coalesced, 0u);
    collector got;
    got.wait(q);
    EXPECT_EQ(runs(d).size(), 2u) << "the second request came after the first run started";
}

TEST(HookQueue, SpawnFailureIsAnsweredAndFreesTheKind) {
    temp_dir d;
    ctl::hook_runner runner(5s);
    ctl::hook_queue q(runner);
    ctl::hook_request bad;
    bad.kind = "drain";
    bad.argv = {"/nonexistent/heartwire-drain"};
    const auto t1 = q.submit(bad);
    const auto t2 = q.submit(sh_hook(d, "drain", "true", {"second"}));
    collector got;
    got.wait(q);
    ASSERT_EQ(got.done.size(), 2u);
    EXPECT_EQ(got.done[0].tickets, std::vector<std::uint64_t>{t1});
    EXPECT_TRUE(got.done[0].result.spawn_failed);
    EXPECT_FALSE(got.done[0].dropped);
    EXPECT_EQ(got.done[1].tickets, std::vector<std::uint64_t>{t2});
    EXPECT_TRUE(got.done[1].result.ok());
    EXPECT_EQ(runs(d), std::vector<std::string>{"second"});
}

TEST(HookQueue, ResultsOfHooksStartedOnTheRunnerPassThrough) {
    temp_dir d;
    ctl::hook_runner runner(5s);
    ctl::hook_queue q(runner);
    const auto health_id = runner.run("health:disk", {"/bin/true"});
    const auto t = q.submit(sh_hook(d, "notify", "true", {"primary"}, ctl::hook_merge::never));
    collector got;
    got.wait(q);
    ASSERT_EQ(got.other.size(), 1u);
    EXPECT_EQ(got.other[0].id, health_id);
    EXPECT_EQ(got.other[0].name, "health:disk");
    ASSERT_EQ(got.done.size(), 1u);
    EXPECT_EQ(got.done[0].tickets, std::vector<std::uint64_t>{t});
}

TEST(HookQueue, RequestsSubmittedFromACompletionRunBeforeWaitAllReturns) {
    temp_dir d;
    ctl::hook_runner runner(5s);
    ctl::hook_queue q(runner);
    q.submit(notify(d, "primary", 1, "true"));
    int seen = 0;
    q.wait_all([&](const ctl::hook_completion&) {
        if (++seen == 1) q.submit(notify(d, "standby", 2, "true"));
    });
    EXPECT_EQ(seen, 2);
    EXPECT_EQ(runs(d), (std::vector<std::string>{"primary 1", "standby 2"}));
}

TEST(HookQueue, ZeroQueueBoundIsRefused) {
    ctl::hook_runner runner(5s);
    EXPECT_THROW(ctl::hook_queue(runner, 0), std::invalid_argument);
}
