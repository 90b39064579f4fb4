// Proves the end-to-end harness itself, before any heartwire test leans on it.

#include "netns.hpp"

#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <string>

namespace {

using namespace heartwire::e2e;
using namespace std::chrono_literals;

constexpr const char* node_a_ip = "169.254.10.100";

class Harness : public ::testing::Test {
protected:
    void SetUp() override {
        if (geteuid() != 0) GTEST_SKIP() << "needs root (network namespaces)";
        topology::cleanup_stale();
    }
};

bool namespace_exists(const std::string& prefix) {
    return run({"ip", "netns", "list"}).out.find(prefix + "-") != std::string::npos;
}

bool valid_mac(const std::string& m) {
    return m.size() == 17 && m[2] == ':' && m[5] == ':' && m[8] == ':' && m[11] == ':' && m[14] == ':';
}

TEST_F(Harness, TopologyComesUpWithANamespaceAndAnEth0PerHost) {
    topology t(make_prefix(), {"a", "b"});
    for (const std::string host : {"a", "b", "client"}) {
        auto r = t.exec_on(host, "cat /sys/class/net/eth0/operstate");
        ASSERT_TRUE(r.ok()) << host << ": " << r.err;
        EXPECT_EQ(r.out, "up\n") << host;
        EXPECT_TRUE(valid_mac(t.mac_of(host))) << t.mac_of(host);
        EXPECT_EQ(t.exec_on(host, "cat /proc/sys/net/ipv6/conf/eth0/disable_ipv6").out, "1\n") << host;
    }
    EXPECT_NE(t.mac_of("a"), t.mac_of("b"));
    EXPECT_NE(t.exec_on("client", "ip -4 addr show dev eth0").out.find("169.254.10.10/24"), std::string::npos);
    EXPECT_EQ(t.exec_on("a", "ip -4 -o addr show dev eth0").out, "") << "nodes start without an address";
}

TEST_F(Harness, ClientPingsANodeAfterAddAddressAndLearnsItsMac) {
    topology t(make_prefix(), {"a", "b"});
    EXPECT_EQ(arp_mac(t.client_ns(), node_a_ip), std::nullopt);
    t.add_address("a", "169.254.10.100/24");
    EXPECT_EQ(ping(t.client_ns(), node_a_ip, 3, 2s), 3);
    EXPECT_EQ(arp_mac(t.client_ns(), node_a_ip), t.mac_of("a"));
}

TEST_F(Harness, LinkDownBlocksTheNodeAndLinkUpRestoresIt) {
    topology t(make_prefix(), {"a"});
    t.add_address("a", "169.254.10.100/24");
    ASSERT_EQ(ping(t.client_ns(), node_a_ip, 1, 2s), 1);
    t.link_down("a");
    EXPECT_TRUE(wait_until([&] { return t.exec_on("a", "cat /sys/class/net/eth0/carrier").out == "0\n"; }, 1s))
        << "the node's eth0 should lose carrier";
    EXPECT_EQ(ping(t.client_ns(), node_a_ip, 1, 1s), 0);
    t.link_up("a");
    EXPECT_TRUE(wait_until([&] { return ping(t.client_ns(), node_a_ip, 1, 1s) == 1; }, 5s, 0ms));
}

TEST_F(Harness, AddressesOutsideTheTestNetworkAreRefused) {
    topology t(make_prefix(), {"a"});
    EXPECT_THROW(t.add_address("a", "169.254.169.254/32"), std::invalid_argument);
    EXPECT_THROW(t.add_address("a", "10.0.0.1/24"), std::invalid_argument);
    EXPECT_THROW(t.add_address("a", "169.254.10.100/16"), std::invalid_argument) << "a /16 routes 169.254.169.254";
    EXPECT_THROW(ping(t.client_ns(), "169.254.169.254"), std::invalid_argument);
    EXPECT_THROW(topology(make_prefix(), {"client"}), std::invalid_argument);
}

TEST_F(Harness, ProcessRunsInItsNamespaceWithItsOwnPidAndDiesBySignal) {
    topology t(make_prefix(), {"a"});
    process p(t.ns_name("a"), {"sleep", "1000"});
    ASSERT_GT(p.pid(), 0);
    EXPECT_TRUE(p.running());

    // The PID is sleep itself (no shell in between) and it lives in node a's namespace.
    char exe[256]{};
    ASSERT_GT(readlink(("/proc/" + std::to_string(p.pid()) + "/exe").c_str(), exe, sizeof exe - 1), 0);
    EXPECT_NE(std::string(exe).find("sleep"), std::string::npos) << exe;
    struct stat ns_file {}, proc_ns {};
    ASSERT_EQ(stat(("/var/run/netns/" + t.ns_name("a")).c_str(), &ns_file), 0);
    ASSERT_EQ(stat(("/proc/" + std::to_string(p.pid()) + "/ns/net").c_str(), &proc_ns), 0);
    EXPECT_EQ(ns_file.st_ino, proc_ns.st_ino);

    EXPECT_EQ(p.wait_exit(50ms), std::nullopt);
    EXPECT_TRUE(p.kill(SIGTERM));
    EXPECT_EQ(p.wait_exit(2s), 128 + SIGTERM);
    EXPECT_FALSE(p.running());
    EXPECT_FALSE(p.kill(SIGKILL)) << "no signal once reaped";
}

TEST_F(Harness, ProcessExitCodeAndOutputAreReported) {
    topology t(make_prefix(), {"a"});
    process p(t.ns_name("a"), {"/bin/sh", "-c", "cat /sys/class/net/eth0/address; echo to-stderr >&2; exit 7"});
    EXPECT_EQ(p.wait_exit(2s), 7);
    EXPECT_EQ(p.log(), t.mac_of("a") + "\nto-stderr\n") << "sysfs is the namespace's own; both streams logged";
    EXPECT_THROW(process(t.ns_name("a"), {"/nonexistent/program"}), std::runtime_error);
    EXPECT_THROW(process("no-such-namespace-hw", {"sleep", "1"}), std::runtime_error);
}

TEST_F(Harness, ProcessDestructorKillsAndReaps) {
    topology t(make_prefix(), {"a"});
    pid_t pid = 0;
    {
        process p(t.ns_name("a"), {"sleep", "1000"});
        pid = p.pid();
        ASSERT_TRUE(p.kill(SIGSTOP)) << "a stopped process must still go";
    }
    EXPECT_NE(access(("/proc/" + std::to_string(pid)).c_str(), F_OK), 0) << "killed and reaped";
}

TEST_F(Harness, EverythingIsGoneAfterDestruction) {
    const std::string prefix = make_prefix();
    {
        topology t(prefix, {"a", "b"});
        t.add_address("a", "169.254.10.100/24");
        ASSERT_TRUE(namespace_exists(prefix));
    }
    EXPECT_FALSE(namespace_exists(prefix)) << run({"ip", "netns", "list"}).out;
}

TEST_F(Harness, CleanupRemovesLeftoversWithThePrefix) {
    const std::string prefix = make_prefix();
    ASSERT_TRUE(run({"ip", "netns", "add", prefix + "-x"}).ok());
    ASSERT_TRUE(run({"ip", "netns", "add", prefix + "-y"}).ok());
    EXPECT_EQ(topology::cleanup_leftovers(prefix), 2);
    EXPECT_FALSE(namespace_exists(prefix));
    // A live process's namespaces are not stale.
    topology t(make_prefix(), {"a"});
    topology::cleanup_stale();
    EXPECT_TRUE(namespace_exists(t.prefix()));
}

TEST_F(Harness, NetemDelaysFramesToTheNodeWhenTheKernelHasIt) {
    if (!topology::netem_supported()) GTEST_SKIP() << "kernel has no sch_netem";
    topology t(make_prefix(), {"a"});
    t.add_address("a", "169.254.10.100/24");
    t.netem("a", "delay 50ms");
    auto r = t.exec_on("client", "ping -n -c 1 -W 2 169.254.10.100");
    EXPECT_NE(r.out.find("time=5"), std::string::npos) << r.out;
    t.netem_clear("a");
}

} // namespace
