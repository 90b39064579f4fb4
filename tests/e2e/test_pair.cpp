// The pair on real DPDK vdevs in real namespaces, judged by what a user checks: the role a
// node reports, the client kernel's ARP entry for the primary address, a ping that answers.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fcntl.h>
#include <cstring>
#include <fstream>
#include <random>
#include <thread>

#include "cluster.hpp"
#include "heartwire/wire.hpp"

using namespace heartwire::e2e;
using namespace std::chrono_literals;

namespace {

// A pair: a starts first (primary), b second (monitor). Each engine gets its own core.
struct pair_fixture {
    cluster c{{"a", "b"}};
    explicit pair_fixture(node_options o = {}) {
        node_options oa = o, ob = o;
        oa.lcores = "0";
        ob.lcores = "1";
        if (o.engine == "pipelined") oa.lcores = ob.lcores = "0,1";
        c.write_config("a", 1, oa);
        c.write_config("b", 2, ob);
    }
    // Starts both and waits for primary + monitor and a client that reaches the primary.
    void form() { form_pair(c); }
    // After the primary went away: b holds the primary address and the client follows.
    void expect_moved_to_b() {
        ASSERT_TRUE(c.wait_role("b", "primary")) << c.logs();
        EXPECT_TRUE(wait_until([&] { return arp_mac(c.net().client_ns(), primary_ip) == c.net().mac_of("b"); }, 10s))
            << "client ARP entry: " << arp_mac(c.net().client_ns(), primary_ip).value_or("none") << "\n"
            << c.logs();
        EXPECT_GT(ping(c.net().client_ns(), primary_ip, 3, 5s), 0) << c.logs();
    }
};

// Sends `count` frames from the client namespace: garbage of every shape at the monitor.
std::size_t flood_garbage(const std::string& ns, const std::string& dst_mac, std::size_t count) {
    std::size_t sent = 0;
    std::thread t([&] {
        const int fd = open(("/var/run/netns/" + ns).c_str(), O_RDONLY);
        if (fd < 0 || setns(fd, CLONE_NEWNET) != 0) return;
        close(fd);
        const int s = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
        if (s < 0) return;
        sockaddr_ll to{};
        to.sll_family = AF_PACKET;
        to.sll_ifindex = static_cast<int>(if_nametoindex("eth0"));
        to.sll_halen = 6;
        auto dst = *heartwire::mac_addr::parse(dst_mac);
        std::mt19937 rng(42);
        std::vector<unsigned char> f(1514);
        const std::uint16_t types[] = {0x88B5, 0x0800, 0x0806, 0x8100, 0x86DD, 0x1234};
        for (std::size_t i = 0; i < count; ++i) {
            const std::size_t len = 14 + rng() % 200;
            for (auto& b : f) b = static_cast<unsigned char>(rng());
            for (int k = 0; k < 6; ++k) f[k] = (i % 3 == 0) ? 0xff : dst.b[k];
            f[6] = 0x02; // a locally administered source, never one of the engines'
            const std::uint16_t et = types[i % 6];
            f[12] = static_cast<unsigned char>(et >> 8);
            f[13] = static_cast<unsigned char>(et & 0xff);
            if (et == 0x88B5 && i % 2) f[14] = 1; // a plausible version, garbage after it
            if (et == 0x0800) f[14] = 0x45;
            if (sendto(s, f.data(), len, 0, reinterpret_cast<sockaddr*>(&to), sizeof to) > 0) ++sent;
            if (i % 64 == 0) std::this_thread::sleep_for(1ms); // keep the client light
        }
        close(s);
    });
    t.join();
    return sent;
}

} // namespace

TEST(Pair, FormsWithPrimaryAndMonitorAndTheClientReachesThePrimary) {
    pair_fixture p;
    ASSERT_NO_FATAL_FAILURE(p.form());
    EXPECT_EQ(ping(p.c.net().client_ns(), monitor_ip, 2, 5s), 2) << "the monitor answers for its own address";
    const auto st = *p.c.status("b");
    EXPECT_EQ(json_value(st, "holds_monitor"), "true");
    EXPECT_GT(p.c.counter("b", "answers"), 10u) << "probes answered";
    EXPECT_EQ(p.c.counter("b", "takeovers"), 0u);
}

TEST(Pair, SigkillOfThePrimaryMovesTheClientsArpEntryToTheMonitor) {
    pair_fixture p;
    ASSERT_NO_FATAL_FAILURE(p.form());
    p.c.stop("a", SIGKILL);
    p.expect_moved_to_b();
    EXPECT_EQ(p.c.counter("b", "takeovers"), 1u);
}

TEST(Pair, SigtermOfThePrimaryHandsOverCleanly) {
    node_options o;
    o.pmd = "net_af_packet";
    pair_fixture p(o);
    ASSERT_NO_FATAL_FAILURE(p.form());
    p.c.stop("a", SIGTERM);
    EXPECT_EQ(p.c.proc("a").wait_exit(5s), 0) << "clean exit\n" << p.c.logs();
    EXPECT_NE(p.c.proc("a").log().find("addresses released"), std::string::npos);
    p.expect_moved_to_b();
}

TEST(Pair, PipelinedEnginesFailOverToo) {
    node_options o;
    o.engine = "pipelined";
    pair_fixture p(o);
    ASSERT_NO_FATAL_FAILURE(p.form());
    p.c.stop("a", SIGKILL);
    p.expect_moved_to_b();
}

TEST(Pair, IcmpProbesOfThePrimaryAddressDetectTheFailure) {
    node_options o;
    o.probe = "icmp";
    o.auth = "none"; // an echo reply carries no tag: ICMP probes only run unauthenticated
    pair_fixture p(o);
    ASSERT_NO_FATAL_FAILURE(p.form());
    EXPECT_GT(p.c.counter("b", "answers"), 10u) << "echo of the primary address answered\n" << p.c.logs();
    p.c.stop("a", SIGKILL);
    p.expect_moved_to_b();
}

TEST(Pair, ReturningPrimaryDoesNotTakeTheAddressBack) {
    pair_fixture p;
    ASSERT_NO_FATAL_FAILURE(p.form());
    p.c.stop("a", SIGKILL);
    p.expect_moved_to_b();
    p.c.start("a");
    ASSERT_TRUE(p.c.wait_role("a", "monitor")) << p.c.logs();
    std::this_thread::sleep_for(500ms);
    EXPECT_EQ(p.c.role("b"), "primary");
    EXPECT_EQ(arp_mac(p.c.net().client_ns(), primary_ip), p.c.net().mac_of("b"));
    EXPECT_GT(ping(p.c.net().client_ns(), primary_ip, 2, 5s), 0);
}

TEST(Pair, SharedModePutsTheAddressOnTheKernelInterface) {
    node_options o;
    o.pmd = "net_af_packet";
    o.mode = "shared";
    pair_fixture p(o);
    ASSERT_NO_FATAL_FAILURE(p.form());
    auto has = [&](const std::string& node, const char* ip) {
        return p.c.net().exec_on(node, std::string("ip -4 -o addr show dev eth0 | grep -q ' ") + ip + "/'").ok();
    };
    EXPECT_TRUE(has("a", primary_ip));
    EXPECT_TRUE(has("b", monitor_ip));
    p.c.stop("a", SIGKILL);
    p.expect_moved_to_b();
    EXPECT_TRUE(wait_until([&] { return has("b", primary_ip); }, 5s)) << p.c.logs();
    EXPECT_FALSE(has("b", monitor_ip)) << "released with the monitor role";
    p.c.stop("b", SIGTERM);
    EXPECT_FALSE(has("b", primary_ip)) << "SIGTERM removes it";
}

TEST(Pair, GarbageFloodAtTheMonitorIsCountedAndDropped) {
    pair_fixture p;
    ASSERT_NO_FATAL_FAILURE(p.form());
    const std::size_t sent = flood_garbage(p.c.net().client_ns(), p.c.net().mac_of("b"), 20'000);
    ASSERT_GT(sent, 10'000u);
    std::this_thread::sleep_for(500ms);
    EXPECT_TRUE(p.c.running("b")) << p.c.logs();
    EXPECT_EQ(p.c.role("b"), "monitor");
    EXPECT_EQ(p.c.role("a"), "primary");
    EXPECT_EQ(p.c.counter("b", "takeovers"), 0u) << p.c.logs();
    EXPECT_GT(p.c.counter("b", "io_rx_invalid"), 1000u) << *p.c.status("b");
    EXPECT_GT(ping(p.c.net().client_ns(), primary_ip, 2, 5s), 0);
}

TEST(Pair, MemifPairDetectsAKilledPrimaryInsideTheEngine) {
    std::string why;
    if (!ensure_hugepages(256, why)) GTEST_SKIP() << why;
    cluster c{{"a", "b"}};
    node_options o;
    o.pmd = "net_memif";
    o.memif_socket = c.dir() + "/memif.sock";
    o.memif_role = "server";
    o.lcores = "0";
    c.write_config("a", 1, o);
    o.memif_role = "client";
    o.lcores = "1";
    c.write_config("b", 2, o);
    c.start("a");
    ASSERT_TRUE(c.wait_role("a", "primary")) << c.logs();
    c.start("b");
    ASSERT_TRUE(c.wait_role("b", "monitor")) << c.logs();
    ASSERT_TRUE(wait_until([&] { return c.counter("b", "answers") > 100; }, 5s)) << c.logs();
    c.stop("a", SIGKILL);
    ASSERT_TRUE(c.wait_role("b", "primary")) << c.logs();
    const auto st = *c.status("b");
    const std::string det = json_value(st, "detection_ns");
    ASSERT_FALSE(det.empty()) << st;
    EXPECT_GT(std::stoull(det), 0u);
}

// ---------------------------------------------------------------- bad input at start-up

namespace {

struct start_result {
    int exit_code;
    std::string log;
};

start_result run_once(cluster& c, const std::string& name) {
    c.start(name);
    auto code = c.proc(name).wait_exit(30s);
    return {code.value_or(-1), c.proc(name).log()};
}

} // namespace

TEST(Startup, BadConfigExitsWithTheNamedKeyAndValue) {
    cluster c{{"a"}};
    node_options o;
    o.interval_us = 0;
    c.write_config("a", 1, o);
    const auto r = run_once(c, "a");
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_NE(r.log.find("detect.interval_us = 0"), std::string::npos) << r.log;
}

TEST(Startup, MissingConfigFileIsAClearError) {
    cluster c{{"a"}};
    process p(c.net().ns_name("a"), {HEARTWIRED_PATH, "--config", c.dir() + "/nope.toml"}, c.dir() + "/x.log");
    EXPECT_EQ(p.wait_exit(10s), 2);
    EXPECT_NE(p.log().find("nope.toml"), std::string::npos) << p.log();
}

TEST(Startup, UnknownDeviceIsAClearError) {
    cluster c{{"a"}};
    node_options o;
    o.pmd = "net_bogus";
    c.write_config("a", 1, o);
    const auto r = run_once(c, "a");
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.log.find("unknown device"), std::string::npos) << r.log;
}

TEST(Startup, MissingInterfaceIsAClearError) {
    cluster c{{"a"}};
    node_options o;
    o.extra_toml = "";
    c.write_config("a", 1, o);
    // Point the port at an interface that does not exist in the namespace.
    std::string path = c.dir() + "/a.toml";
    std::system(("sed -i 's/iface=eth0/iface=nosuch0/' " + path).c_str());
    const auto r = run_once(c, "a");
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.log.find("interface missing: nosuch0"), std::string::npos) << r.log;
}

TEST(Startup, MissingHugepagesIsAClearError) {
    std::ifstream f("/proc/sys/vm/nr_hugepages");
    long before = 0;
    f >> before;
    std::ofstream("/proc/sys/vm/nr_hugepages") << 0;
    // Pages still mapped by a process that is exiting stay counted until it is gone.
    const bool none = wait_until([] { return run({"grep", "-q", "HugePages_Total: *0$", "/proc/meminfo"}).ok(); }, 5s);
    if (!none) {
        std::ofstream("/proc/sys/vm/nr_hugepages") << before;
        GTEST_SKIP() << "hugepages in use elsewhere; cannot test their absence";
    }
    cluster c{{"a"}};
    node_options o;
    o.pmd = "net_memif";
    o.memif_role = "server";
    o.memif_socket = c.dir() + "/m.sock";
    c.write_config("a", 1, o);
    const auto r = run_once(c, "a");
    std::ofstream("/proc/sys/vm/nr_hugepages") << before;
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.log.find("hugepages needed"), std::string::npos)
        << r.log << run({"grep", "-i", "huge", "/proc/meminfo"}).out;
}

TEST(Pair, DpdkTelemetryShowsRoleAndCounters) {
    pair_fixture p;
    ASSERT_NO_FATAL_FAILURE(p.form());
    // dpdk-telemetry.py's protocol: a SEQPACKET Unix socket per process, one JSON answer per command.
    const std::string path = "/var/run/dpdk/hw" + std::to_string(getpid()) + "b/dpdk_telemetry.v2";
    const int s = socket(AF_UNIX, SOCK_SEQPACKET, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::snprintf(a.sun_path, sizeof a.sun_path, "%s", path.c_str());
    ASSERT_EQ(connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a), 0) << path;
    char buf[16384];
    ASSERT_GT(recv(s, buf, sizeof buf, 0), 0); // the greeting
    auto ask = [&](const char* cmd) {
        send(s, cmd, std::strlen(cmd), 0);
        const ssize_t n = recv(s, buf, sizeof buf - 1, 0);
        return std::string(buf, n > 0 ? static_cast<std::size_t>(n) : 0);
    };
    const std::string st = ask("/heartwire/status");
    EXPECT_NE(st.find("\"role\":\"monitor\""), std::string::npos) << st;
    const std::string c = ask("/heartwire/counters");
    EXPECT_NE(c.find("\"probes_sent\":"), std::string::npos) << c;
    EXPECT_NE(c.find("\"drop_eth_truncated\":"), std::string::npos) << c;
    close(s);
}

TEST(Pair, NotifyHookRunsOnEveryRoleChange) {
    node_options o;
    pair_fixture p(o);
    const std::string log = p.c.dir() + "/notify.log";
    const std::string hook = p.c.dir() + "/notify.sh";
    std::ofstream(hook) << "#!/bin/sh\necho \"$3 $1 $2\" >> " << log << "\n";
    chmod(hook.c_str(), 0755);
    for (const char* n : {"a", "b"}) {
        node_options oi = o;
        oi.lcores = n[0] == 'a' ? "0" : "1";
        oi.extra_toml = "[hooks]\nnotify = \"" + hook + "\"\n";
        p.c.write_config(n, n[0] == 'a' ? 1 : 2, oi);
    }
    ASSERT_NO_FATAL_FAILURE(p.form());
    p.c.stop("a", SIGKILL);
    p.expect_moved_to_b();
    auto has = [&](const std::string& line) {
        std::ifstream in(log);
        for (std::string l; std::getline(in, l);)
            if (l.rfind(line, 0) == 0) return true;
        return false;
    };
    EXPECT_TRUE(wait_until([&] { return has("b primary 2"); }, 5s)) << "notify <role> <epoch> <node>";
    EXPECT_TRUE(has("a primary 1"));
    EXPECT_TRUE(has("b monitor"));
}
