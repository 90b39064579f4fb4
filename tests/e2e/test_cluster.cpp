// The whole seed protocol with 3 and 4 nodes on real DPDK vdevs: discovery in any order,
// the promotion chain, booting the failed primary, partitions, switchover without losing a
// request, fault reports, stay-down. Adaptive idle and millisecond probes fit 2 cores.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <set>
#include <thread>

#include "cluster.hpp"

using namespace heartwire::e2e;
using namespace std::chrono_literals;

namespace {

std::vector<std::string> names(int n) {
    std::vector<std::string> v;
    for (int i = 0; i < n; ++i) v.push_back(std::string(1, static_cast<char>('a' + i)));
    return v;
}

struct nodes_fixture {
    std::vector<std::string> all;
    cluster c;
    explicit nodes_fixture(int n, node_options o = {}, const std::map<std::string, std::string>& extra = {})
        : all(names(n)), c(all) {
        for (int i = 0; i < n; ++i) {
            node_options oi = o;
            oi.lcores = i % 2 ? "1" : "0";
            auto it = extra.find(all[static_cast<std::size_t>(i)]);
            if (it != extra.end()) oi.extra_toml += it->second;
            c.write_config(all[static_cast<std::size_t>(i)], static_cast<std::uint32_t>(i + 1), oi);
        }
    }
    std::map<std::string, std::string> roles() {
        std::map<std::string, std::string> r;
        for (const auto& n : all)
            if (c.running(n)) r[n] = c.role(n);
        return r;
    }
    std::size_t count(const std::string& role) {
        std::size_t k = 0;
        for (const auto& [n, r] : roles()) k += r == role;
        return k;
    }
    std::string who(const std::string& role) {
        for (const auto& [n, r] : roles())
            if (r == role) return n;
        return {};
    }
    // One primary, one monitor (if two or more run), the rest standby.
    bool settled(std::size_t running) {
        const auto r = roles();
        std::size_t p = 0, m = 0, s = 0;
        for (const auto& [n, x] : r) p += x == "primary", m += x == "monitor", s += x == "standby";
        return p == 1 && m == (running > 1 ? 1u : 0u) && s == running - p - m;
    }
    bool wait_settled(std::size_t running, std::chrono::milliseconds t = 30s) {
        return wait_until([&] { return settled(running); }, t, 50ms);
    }
    // a primary, b monitor, and the client reaching the primary address.
    void form_pair() {
        c.start("a");
        ASSERT_TRUE(c.wait_role("a", "primary")) << dump();
        c.start("b");
        ASSERT_TRUE(c.wait_role("b", "monitor")) << dump();
        ASSERT_GT(ping(c.net().client_ns(), primary_ip, 2, 5s), 0) << dump();
    }
    std::string dump() {
        std::string s = "roles:";
        for (const auto& [n, r] : roles()) s += " " + n + "=" + r;
        return s + "\n" + c.logs();
    }
    // The client reaches the primary address and its kernel's ARP entry names `node`.
    void expect_client_on(const std::string& node) {
        EXPECT_GT(ping(c.net().client_ns(), primary_ip, 2, 5s), 0) << dump();
        EXPECT_TRUE(wait_until([&] { return arp_mac(c.net().client_ns(), primary_ip) == c.net().mac_of(node); }, 10s))
            << "client ARP: " << arp_mac(c.net().client_ns(), primary_ip).value_or("none") << " want "
            << c.net().mac_of(node) << "\n"
            << dump();
    }
};

} // namespace

// ---------------------------------------------------------------- discovery (seed 002 FIG. 1, 2)

class Discovery : public ::testing::TestWithParam<std::vector<int>> {};

TEST_P(Discovery, AnyStartOrderEndsWithOnePrimaryOneMonitorRestStandby) {
    const auto order = GetParam();
    nodes_fixture f(static_cast<int>(order.size()));
    std::size_t started = 0;
    for (int i : order) {
        f.c.start(f.all[static_cast<std::size_t>(i)]);
        ++started;
        ASSERT_TRUE(f.wait_settled(started)) << "after starting " << f.all[static_cast<std::size_t>(i)] << "\n" << f.dump();
    }
    EXPECT_EQ(f.who("primary"), f.all[static_cast<std::size_t>(order[0])]) << "the first one up stays primary";
    EXPECT_EQ(f.who("monitor"), f.all[static_cast<std::size_t>(order[1])]);
}

INSTANTIATE_TEST_SUITE_P(Orders, Discovery,
                         ::testing::Values(std::vector<int>{0, 1, 2}, std::vector<int>{2, 0, 1},
                                           std::vector<int>{3, 1, 0, 2}));

TEST(Cluster, SimultaneousStartResolvesByPriorityNeverTwoPrimaries) {
    node_options o;
    nodes_fixture f(3, o);
    // Priorities: c highest, then b, then a.
    // A discovery window far longer than the spread of process start-up (EAL init), so the
    // three really probe at the same time: 3.5 s (a loaded 2-core host spread three af_xdp
    // start-ups over 1.1 s, past the 1.2 s window this had).
    const std::string slow = "[protocol]\ndiscovery_interval_ms = 500\ndiscovery_wait_ms = 2000\n";
    node_options lo = o, hi = o, mid = o;
    lo.extra_toml = mid.extra_toml = hi.extra_toml = slow;
    hi.priority = 200;
    hi.lcores = "0";
    mid.priority = 150;
    mid.lcores = "1";
    lo.priority = 100;
    lo.lcores = "0";
    f.c.write_config("a", 1, lo);
    f.c.write_config("b", 2, mid);
    f.c.write_config("c", 3, hi);
    for (const auto& n : f.all) f.c.start(n);
    ASSERT_TRUE(f.wait_settled(3)) << f.dump();
    EXPECT_EQ(f.who("primary"), "c") << f.dump();
    EXPECT_EQ(f.who("monitor"), "b") << f.dump();
    // And it stays that way: no second primary appears later.
    for (int i = 0; i < 10; ++i) {
        std::this_thread::sleep_for(100ms);
        ASSERT_LE(f.count("primary"), 1u) << f.dump();
    }
}

// ---------------------------------------------------------------- promotion chain (002 [0028], 001 claim 1)

TEST(Cluster, RepeatedKillsMoveTheChainUpUntilOneNodeIsLeft) {
    nodes_fixture f(4);
    for (const auto& n : f.all) {
        f.c.start(n);
        ASSERT_TRUE(wait_until([&] { return !f.c.role(n).empty() && f.c.role(n) != "probe_primary" &&
                                            f.c.role(n) != "probe_monitor"; }, 20s)) << f.dump();
    }
    ASSERT_TRUE(f.wait_settled(4)) << f.dump();
    ASSERT_GT(ping(f.c.net().client_ns(), primary_ip, 2, 5s), 0);
    for (std::size_t left = 3; left >= 1; --left) {
        const std::string primary = f.who("primary"), monitor = f.who("monitor");
        f.c.stop(primary, SIGKILL);
        ASSERT_TRUE(f.wait_settled(left)) << "after killing " << primary << "\n" << f.dump();
        EXPECT_EQ(f.who("primary"), monitor) << "the monitor moves up";
        f.expect_client_on(monitor);
    }
}

// ---------------------------------------------------------------- booting the failed primary (000 claim 1)

TEST(Cluster, BootedPrimaryRejoinsWithoutTakingTheAddressBack) {
    node_options o;
    nodes_fixture f(3, o);
    // boot_peer restarts the failed node's engine in its own namespace, as a reboot would:
    // only once the old process is gone (with the engine-down notice the hook runs while
    // the killed engine is still being torn down, and its EAL files are still locked).
    const std::string pids = f.c.dir() + "/booted.pids";
    std::string body = "old=$(cat " + f.c.dir() + "/$1.pid 2>/dev/null)\n"
                       "for i in $(seq 500); do [ -n \"$old\" ] && [ -e /proc/$old ] || break; sleep 0.01; done\n"
                       "case \"$1\" in\n";
    for (std::size_t i = 0; i < f.all.size(); ++i) {
        body += "  " + std::to_string(i + 1) + ") ip netns exec " + f.c.net().ns_name(f.all[i]) + " " HEARTWIRED_PATH
                " --config " + f.c.dir() + "/" + f.all[i] + ".toml >> " + f.c.dir() + "/" + f.all[i] +
                ".booted.log 2>&1 &\n     echo $! >> " + pids + " ;;\n";
    }
    body += "esac\n";
    const std::string hook = write_script(f.c.dir() + "/boot_peer.sh", body);
    for (std::size_t i = 0; i < f.all.size(); ++i) {
        node_options oi = o;
        oi.lcores = i % 2 ? "1" : "0";
        oi.extra_toml = "[hooks]\nboot_peer = \"" + hook + "\"\n";
        f.c.write_config(f.all[i], static_cast<std::uint32_t>(i + 1), oi);
    }
    struct reaper {
        std::string path;
        ~reaper() {
            std::ifstream in(path);
            for (int pid; in >> pid;) kill(pid, SIGKILL); // only the daemons our hook started
        }
    } reap{pids};
    // One after the other, each out of discovery before the next starts: a is primary.
    for (std::size_t i = 0; i < f.all.size(); ++i) {
        const std::string& n = f.all[i];
        f.c.start(n);
        std::ofstream(f.c.dir() + "/" + std::to_string(i + 1) + ".pid") << f.c.proc(n).pid();
        ASSERT_TRUE(wait_until([&] { const auto r = f.c.role(n);
                                     return !r.empty() && r != "init" && r != "probe_primary" && r != "probe_monitor"; },
                               20s)) << f.dump();
    }
    ASSERT_TRUE(f.wait_settled(3)) << f.dump();
    ASSERT_EQ(f.who("primary"), "a") << f.dump();
    f.c.stop("a", SIGKILL);
    // The new primary boots a; a comes back, finds both addresses held and stands by.
    ASSERT_TRUE(wait_until([&] { return f.c.role("a") == "standby"; }, 30s)) << f.dump();
    EXPECT_EQ(f.c.role("b"), "primary");
    EXPECT_EQ(f.c.role("c"), "monitor");
    f.expect_client_on("b");
}

// ---------------------------------------------------------------- epochs and partitions

TEST(Cluster, PartitionAndHealEndWithOnePrimaryAndTheClientOnIt) {
    nodes_fixture f(2);
    ASSERT_NO_FATAL_FAILURE(f.form_pair());
    f.c.net().partition("a"); // a keeps running with its link up, cut off from everyone
    ASSERT_TRUE(f.c.wait_role("b", "primary")) << f.dump();
    EXPECT_EQ(f.c.role("a"), "primary") << "a cannot know yet";
    f.expect_client_on("b");
    f.c.net().heal("a");
    ASSERT_TRUE(wait_until([&] { return f.c.role("a") != "primary"; }, 10s)) << f.dump();
    EXPECT_EQ(f.c.role("b"), "primary") << "the larger epoch wins";
    f.expect_client_on("b");
    EXPECT_EQ(f.count("primary"), 1u);
}

// ---------------------------------------------------------------- stay-down (003 claims 2, 17)

TEST(Cluster, StayDownKeepsAStalledOldPrimaryDown) {
    node_options o;
    nodes_fixture f(2, o);
    const std::string fence = write_script(f.c.dir() + "/fence.sh", "echo fenced \"$@\" >> " + f.c.dir() + "/fence.log");
    for (std::size_t i = 0; i < 2; ++i) {
        node_options oi = o;
        oi.lcores = i ? "1" : "0";
        oi.extra_toml = "[hooks]\nfence = \"" + fence + "\"\n";
        f.c.write_config(f.all[i], static_cast<std::uint32_t>(i + 1), oi);
    }
    ASSERT_NO_FATAL_FAILURE(f.form_pair());
    f.c.proc("a").kill(SIGSTOP);
    ASSERT_TRUE(f.c.wait_role("b", "primary")) << f.dump();
    EXPECT_TRUE(wait_until([&] { return std::ifstream(f.c.dir() + "/fence.log").good(); }, 5s)) << "fence hook ran";
    f.c.proc("a").kill(SIGCONT);
    ASSERT_TRUE(f.c.wait_role("a", "fenced")) << f.dump();
    std::this_thread::sleep_for(1s);
    EXPECT_EQ(f.c.role("a"), "fenced") << "stays down while it hears stay-down";
    EXPECT_EQ(json_value(*f.c.status("a"), "holds_primary"), "false");
    EXPECT_GT(f.c.counter("a", "stay_downs_heard"), 10u);
    f.expect_client_on("b");
}

// ---------------------------------------------------------------- switchover (003 claims 1, 4, 16)

namespace {

// Sends numbered UDP requests to the primary address from the client namespace every
// `gap` until stopped, and counts the ones never answered.
struct request_stream {
    std::atomic<bool> stop{false};
    std::atomic<std::uint64_t> sent{0}, answered{0};
    std::thread t;
    request_stream(const std::string& ns, std::chrono::microseconds gap) {
        t = std::thread([this, ns, gap] {
            const int nsfd = open(("/var/run/netns/" + ns).c_str(), O_RDONLY);
            if (nsfd < 0 || setns(nsfd, CLONE_NEWNET) != 0) return;
            close(nsfd);
            const int s = socket(AF_INET, SOCK_DGRAM, 0);
            timeval tv{0, 1000};
            setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
            sockaddr_in to{};
            to.sin_family = AF_INET;
            to.sin_port = htons(7777);
            inet_pton(AF_INET, primary_ip, &to.sin_addr);
            std::set<std::uint64_t> open_req;
            auto drain = [&] {
                std::uint64_t got;
                while (recv(s, &got, sizeof got, 0) == sizeof got) {
                    if (open_req.erase(got)) ++answered;
                }
            };
            for (std::uint64_t i = 1; !stop; ++i) {
                open_req.insert(i);
                sendto(s, &i, sizeof i, 0, reinterpret_cast<sockaddr*>(&to), sizeof to);
                ++sent;
                const auto until = std::chrono::steady_clock::now() + gap;
                while (std::chrono::steady_clock::now() < until) drain();
            }
            const auto until = std::chrono::steady_clock::now() + 1s; // late answers still count
            while (std::chrono::steady_clock::now() < until && !open_req.empty()) drain();
            close(s);
        });
    }
    void finish() {
        stop = true;
        t.join();
    }
};

} // namespace

TEST(Cluster, OperatorSwitchoverWithARequestStreamLosesNoRequest) {
    node_options o;
    o.pmd = "net_af_packet";
    o.mode = "shared";
    nodes_fixture f(2, o);
    const std::string drain = write_script(f.c.dir() + "/drain.sh", "sleep 0.2; echo drained >> " + f.c.dir() + "/drain.log");
    for (std::size_t i = 0; i < 2; ++i) {
        node_options oi = o;
        oi.lcores = i ? "1" : "0";
        oi.extra_toml = "[hooks]\ndrain = \"" + drain + "\"\n";
        f.c.write_config(f.all[i], static_cast<std::uint32_t>(i + 1), oi);
    }
    process echo_a(f.c.net().ns_name("a"), {ECHO_PATH, "--port", "7777"}, f.c.dir() + "/echo_a.log");
    process echo_b(f.c.net().ns_name("b"), {ECHO_PATH, "--port", "7777"}, f.c.dir() + "/echo_b.log");
    ASSERT_NO_FATAL_FAILURE(f.form_pair());

    request_stream rs(f.c.net().client_ns(), 2ms);
    std::this_thread::sleep_for(500ms);
    const auto out = run({HEARTWIRECTL_PATH, "--socket", f.c.socket("b"), "switchover"});
    ASSERT_TRUE(out.ok()) << out.out << out.err;
    ASSERT_TRUE(f.c.wait_role("b", "primary")) << f.dump();
    ASSERT_TRUE(f.c.wait_role("a", "monitor")) << f.dump();
    std::this_thread::sleep_for(500ms);
    rs.finish();
    EXPECT_TRUE(std::ifstream(f.c.dir() + "/drain.log").good()) << "the drain hook ran";
    EXPECT_GT(rs.sent, 100u) << "the stream ran across the whole switchover";
    EXPECT_EQ(rs.answered.load(), rs.sent.load()) << "lost " << rs.sent - rs.answered << " of " << rs.sent << "\n"
                                                  << f.dump();
    f.expect_client_on("b");
    EXPECT_EQ(f.c.counter("b", "takeovers"), 1u);
}

TEST(Cluster, SwitchoverFromThePrimarySideAndTheStatusCommand) {
    nodes_fixture f(2);
    ASSERT_NO_FATAL_FAILURE(f.form_pair());
    const auto st = run({HEARTWIRECTL_PATH, "--socket", f.c.socket("a"), "status"});
    ASSERT_TRUE(st.ok()) << st.err;
    EXPECT_NE(st.out.find("role      primary"), std::string::npos) << st.out;
    EXPECT_NE(st.out.find("monitor"), std::string::npos) << "peers listed\n" << st.out;
    ASSERT_TRUE(run({HEARTWIRECTL_PATH, "--socket", f.c.socket("a"), "switchover"}).ok());
    ASSERT_TRUE(f.c.wait_role("b", "primary")) << f.dump();
    ASSERT_TRUE(f.c.wait_role("a", "monitor")) << f.dump();
    f.expect_client_on("b");
    const auto bad = run({HEARTWIRECTL_PATH, "--socket", f.c.dir() + "/nobody.sock", "status"});
    EXPECT_EQ(bad.exit_code, 2) << "no daemon there";
}

// A refused switchover is an error with its reason, never "ok" (issue 8 item 6).
TEST(Cluster, RefusedSwitchoverIsAnErrorWithItsReason) {
    nodes_fixture f(2);
    f.c.start("a");
    ASSERT_TRUE(f.c.wait_role("a", "primary")) << f.dump();
    const auto lone = run({HEARTWIRECTL_PATH, "--socket", f.c.socket("a"), "switchover"});
    EXPECT_EQ(lone.exit_code, 1) << lone.out << lone.err;
    EXPECT_NE((lone.out + lone.err).find("no live monitor"), std::string::npos) << lone.out << lone.err;
    EXPECT_EQ(f.c.role("a"), "primary");
    f.c.start("b");
    ASSERT_TRUE(f.c.wait_role("b", "monitor")) << f.dump();
    ASSERT_TRUE(f.c.wait_role("b", "monitor")) << f.dump();
    const auto ok = run({HEARTWIRECTL_PATH, "--socket", f.c.socket("b"), "switchover"});
    EXPECT_TRUE(ok.ok()) << ok.out << ok.err;
    EXPECT_NE(ok.out.find("switchover started"), std::string::npos) << ok.out;
    ASSERT_TRUE(f.c.wait_role("b", "primary")) << f.dump();
}

// ---------------------------------------------------------------- faults (003 claims 8-13, 20)

TEST(Cluster, ApplicationFaultReportLeadsToASwitchoverAndClearRejoins) {
    nodes_fixture f(2);
    ASSERT_NO_FATAL_FAILURE(f.form_pair());
    ASSERT_TRUE(run({HEARTWIRECTL_PATH, "--socket", f.c.socket("a"), "fault", "application", "disk", "full"}).ok());
    ASSERT_TRUE(f.c.wait_role("b", "primary")) << f.dump();
    ASSERT_TRUE(f.c.wait_role("a", "fault")) << f.dump();
    const auto st = *f.c.status("a");
    EXPECT_EQ(json_value(st, "fault"), "application");
    EXPECT_NE(st.find("fault_takeover_accepted"), std::string::npos) << st;
    f.expect_client_on("b");
    ASSERT_TRUE(run({HEARTWIRECTL_PATH, "--socket", f.c.socket("a"), "clear"}).ok());
    ASSERT_TRUE(f.c.wait_role("a", "monitor")) << f.dump();
}

TEST(Cluster, FailingHealthScriptPutsThePrimaryInFaultAndTheMonitorTakesOver) {
    node_options o;
    nodes_fixture f(2, o);
    const std::string flag = f.c.dir() + "/a.healthy";
    std::ofstream(flag) << "ok";
    const std::string check_a = write_script(f.c.dir() + "/check_a.sh", "test -f " + flag);
    node_options oa = o;
    oa.lcores = "0";
    oa.extra_toml = "[[health]]\nname = \"app\"\nkind = \"script\"\ntarget = \"" + check_a +
                    "\"\ninterval_ms = 50\nfall = 2\nrise = 2\n";
    f.c.write_config("a", 1, oa);
    ASSERT_NO_FATAL_FAILURE(f.form_pair());
    std::remove(flag.c_str());
    ASSERT_TRUE(f.c.wait_role("b", "primary")) << f.dump();
    ASSERT_TRUE(f.c.wait_role("a", "fault")) << f.dump();
    EXPECT_EQ(json_value(*f.c.status("a"), "fault"), "script");
    std::ofstream(flag) << "ok"; // cured: rises again, rejoins
    ASSERT_TRUE(f.c.wait_role("a", "monitor")) << f.dump();
}

TEST(Cluster, FaultyPrimaryWithoutAHealthyMonitorKeepsServing) {
    nodes_fixture f(1);
    f.c.start("a");
    ASSERT_TRUE(f.c.wait_role("a", "primary")) << f.dump();
    ASSERT_TRUE(run({HEARTWIRECTL_PATH, "--socket", f.c.socket("a"), "fault", "process"}).ok());
    ASSERT_TRUE(wait_until([&] { return f.c.status("a")->find("fault_no_takeover") != std::string::npos; }, 5s))
        << f.dump();
    EXPECT_EQ(f.c.role("a"), "primary");
    EXPECT_GT(ping(f.c.net().client_ns(), primary_ip, 2, 5s), 0) << "still serving";
    const auto st = run({HEARTWIRECTL_PATH, "--socket", f.c.socket("a"), "status"});
    EXPECT_NE(st.out.find("keeps serving"), std::string::npos) << st.out;
}
