// heartwire::embed::node through its public API, two nodes in this process on two DPDK
// ring ports wired to each other (a's TX ring is b's RX ring and back): the application's
// loop is this test's, so the rules a DPDK application relies on are checked without a
// network: the classifier on real mbufs, the change callback and the polled flag, the
// silent primary taken over, the stopped one handed over at once, and the errors at attach.
// Its own executable: EAL starts once per process (--no-huge).
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <rte_eal.h>
#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include "heartwire/embed.hpp"

using namespace std::chrono_literals;
namespace embed = heartwire::embed;

namespace {

struct wired_ports {
    std::uint16_t a{}, b{};
    rte_mempool* pool{};
};
wired_ports g_ports;
std::string g_dir;

void start_port(std::uint16_t id, rte_mempool* pool) {
    rte_eth_conf conf{};
    if (rte_eth_dev_configure(id, 1, 1, &conf) < 0 || rte_eth_rx_queue_setup(id, 0, 1024, 0, nullptr, pool) < 0 ||
        rte_eth_tx_queue_setup(id, 0, 1024, 0, nullptr) < 0 || rte_eth_dev_start(id) < 0)
        throw std::runtime_error("ring port setup failed");
    rte_eth_promiscuous_enable(id);
}

// a's frames reach b and b's reach a.
void wire_ports() {
    rte_ring* ab = rte_ring_create("hw_ab", 1024, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
    rte_ring* ba = rte_ring_create("hw_ba", 1024, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
    g_ports.pool = rte_pktmbuf_pool_create("hw_embed_test", 4095, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE, 0);
    if (!ab || !ba || !g_ports.pool) throw std::runtime_error("rings or pool");
    const int a = rte_eth_from_rings("hw_port_a", &ba, 1, &ab, 1, 0);
    const int b = rte_eth_from_rings("hw_port_b", &ab, 1, &ba, 1, 0);
    if (a < 0 || b < 0) throw std::runtime_error("rte_eth_from_rings failed");
    g_ports.a = static_cast<std::uint16_t>(a);
    g_ports.b = static_cast<std::uint16_t>(b);
    start_port(g_ports.a, g_ports.pool);
    start_port(g_ports.b, g_ports.pool);
}

std::string config(const std::string& name, unsigned id) {
    return "[node]\nname = \"" + name + "\"\nid = " + std::to_string(id) + "\n" +
           "[auth]\nmode = \"keyed\"\nkey_file = \"" + g_dir + "/group.key\"\n" +
           "[addresses]\nprimary = \"169.254.10.100/24\"\nmonitor = \"169.254.10.101/24\"\n" +
           // A 20 ms window: this one thread runs both nodes on a loaded 2-core machine.
           "[detect]\ninterval_us = 2000\nmiss = 10\n" +
           "[control]\nsocket = \"" + g_dir + "/" + name + ".sock\"\nlog_level = \"warn\"\n";
}

// The application's loop for one node: its frames to it, the rest counted and freed.
struct app {
    embed::node node;
    std::uint16_t port;
    bool polling{true};
    std::vector<embed::change> changes;
    std::uint64_t not_heartwires{0};

    // Ring ports have no MAC of their own worth the name: each node is given one (attach.mac).
    app(const std::string& name, unsigned id, std::uint16_t p)
        : node(embed::config_text{config(name, id)},
               {.port_id = p, .tx_queue = 0, .mempool = g_ports.pool,
                .mac = {{0x02, 0x68, 0x77, 0, 0, static_cast<std::uint8_t>(id)}}}),
          port(p) {
        node.on_change([this](const embed::change& c) { changes.push_back(c); });
    }
    void turn() {
        rte_mbuf* pkts[32];
        rte_mbuf* mine[32];
        const std::uint16_t n = rte_eth_rx_burst(port, 0, pkts, 32);
        std::uint16_t k = 0;
        for (std::uint16_t i = 0; i < n; ++i) {
            if (polling && node.is_heartwire(pkts[i])) {
                mine[k++] = pkts[i];
            } else {
                if (polling) ++not_heartwires;
                rte_pktmbuf_free(pkts[i]); // a silent node: what it would have read is lost
            }
        }
        if (!polling) return;
        if (k) node.rx(mine, k);
        node.poll();
    }
    bool gained_primary() const {
        for (const auto& c : changes)
            if (c.gained_primary) return true;
        return false;
    }
};

template <class Pred>
bool run_until(std::vector<app*> apps, Pred&& done, std::chrono::milliseconds timeout) {
    const auto until = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < until) {
        for (auto* a : apps) a->turn();
        if (done()) return true;
    }
    return false;
}

// What an earlier test's nodes left on the wire.
void drain_ports() {
    rte_mbuf* pkts[32];
    for (const std::uint16_t p : {g_ports.a, g_ports.b})
        while (const std::uint16_t n = rte_eth_rx_burst(p, 0, pkts, 32)) rte_pktmbuf_free_bulk(pkts, n);
}

// a first (it becomes primary), then b (monitor).
void form(app& a, app& b) {
    ASSERT_TRUE(run_until({&a}, [&] { return a.node.holds_primary(); }, 5s)) << "a alone claims the primary address";
    ASSERT_TRUE(run_until({&a, &b},
                          [&] {
                              const auto s = b.node.status();
                              return b.node.holds_monitor() && s.watched_id == 1 && s.detector_armed;
                          },
                          5s))
        << "b becomes monitor, watches a and has heard its answers";
}

} // namespace

TEST(EmbedNode, APairOnItsOwnLoopFormsAndTheCallbackSaysWhoServes) {
    drain_ports();
    app a("a", 1, g_ports.a), b("b", 2, g_ports.b);
    ASSERT_NO_FATAL_FAILURE(form(a, b));
    ASSERT_FALSE(a.changes.empty());
    EXPECT_TRUE(a.gained_primary());
    const auto& last = a.changes.back();
    EXPECT_EQ(last.to, heartwire::role::primary);
    ASSERT_EQ(last.primary.v4.size(), 1u);
    EXPECT_EQ(last.primary.v4[0].to_string(), "169.254.10.100/24");
    EXPECT_FALSE(b.node.holds_primary());
    EXPECT_EQ(b.changes.back().to, heartwire::role::monitor);
    EXPECT_TRUE(b.changes.back().gained_monitor);
    const auto st = a.node.status();
    EXPECT_EQ(st.r, heartwire::role::primary);
    EXPECT_GT(st.rx_packets, 0u) << "b's heartbeats reached a through is_heartwire and rx";
    EXPECT_EQ(a.not_heartwires, 0u) << "everything on this wire is heartwire's";
    const std::string js = a.node.status_json();
    EXPECT_NE(js.find("\"role\":\"primary\""), std::string::npos) << js;
}

TEST(EmbedNode, MonitorTakesOverASilentPrimaryWhichStepsDownWhenItIsBack) {
    drain_ports();
    app a("a", 1, g_ports.a), b("b", 2, g_ports.b);
    ASSERT_NO_FATAL_FAILURE(form(a, b));
    a.polling = false; // a's loop stops (a hang): it neither reads nor answers
    const auto t0 = std::chrono::steady_clock::now();
    ASSERT_TRUE(run_until({&a, &b}, [&] { return b.node.holds_primary(); }, 5s)) << "b takes over";
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    std::printf("silent primary taken over after %.1f ms (window 20 ms)\n", ms);
    EXPECT_TRUE(b.gained_primary());
    EXPECT_TRUE(a.node.holds_primary()) << "a has not heard anything yet";
    a.polling = true;
    ASSERT_TRUE(run_until({&a, &b}, [&] { return !a.node.holds_primary(); }, 5s)) << "a hears the newer epoch";
    EXPECT_TRUE(a.changes.back().lost_primary);
    EXPECT_TRUE(b.node.holds_primary()) << "exactly one primary";
}

TEST(EmbedNode, StoppedPrimaryHandsOverAtOnceAndReportsTheLoss) {
    drain_ports();
    app a("a", 1, g_ports.a), b("b", 2, g_ports.b);
    ASSERT_NO_FATAL_FAILURE(form(a, b));
    a.node.stop();
    EXPECT_FALSE(a.node.holds_primary());
    EXPECT_TRUE(a.changes.back().lost_primary) << "the callback ran inside stop()";
    // The release frame is on b's wire already: b's next turns take over, long before any
    // window could pass (a turn is microseconds; a stall of ours would only widen it).
    for (int i = 0; i < 3 && !b.node.holds_primary(); ++i) b.turn();
    EXPECT_TRUE(b.node.holds_primary()) << "b took over on a's release frame";
    EXPECT_TRUE(b.gained_primary());
}

// Many groups (issue 9): a node's heartbeats to a peer ride in bundles (one frame, one tag
// for up to 19 groups' probes, acks and announces), each entry judged by its own group's
// machine: every group forms, and a silent primary is taken over in every group.
TEST(EmbedNode, ManyGroupsRideInBundlesUnderOneTagAndAllTakeOver) {
    drain_ports();
    constexpr unsigned n = 40;
    std::string groups;
    for (unsigned g = 1; g <= n; ++g)
        groups += "[[group]]\nid = " + std::to_string(g) + "\nprimary = \"169.254.10." + std::to_string(10 + g) +
                  "/24\"\nmonitor = \"169.254.10." + std::to_string(100 + g) + "/24\"\n";
    const auto text = [&](const std::string& name, unsigned id) {
        std::string t = config(name, id);
        const auto at = t.find("[addresses]");
        const auto end = t.find("[detect]");
        return t.substr(0, at) + groups + t.substr(end);
    };
    const auto make = [&](const std::string& name, unsigned id, std::uint16_t p) {
        return embed::node(embed::config_text{text(name, id)},
                           {.port_id = p, .tx_queue = 0, .mempool = g_ports.pool,
                            .mac = {{0x02, 0x68, 0x77, 0, 0, static_cast<std::uint8_t>(id)}}});
    };
    struct many {
        embed::node node;
        std::uint16_t port;
        bool polling{true};
        void turn() {
            rte_mbuf* pkts[32];
            const std::uint16_t k = rte_eth_rx_burst(port, 0, pkts, 32);
            if (!polling) {
                rte_pktmbuf_free_bulk(pkts, k);
                return;
            }
            if (k) node.rx(pkts, k); // everything on this wire is heartwire's
            node.poll();
        }
    };
    many a{make("a", 1, g_ports.a), g_ports.a}, b{make("b", 2, g_ports.b), g_ports.b};
    ASSERT_EQ(a.node.group_count(), n);
    const auto all = [&](auto&& pred) {
        for (std::size_t g = 0; g < n; ++g)
            if (!pred(g)) return false;
        return true;
    };
    const auto until = [&](auto&& done, std::chrono::milliseconds t) {
        const auto end = std::chrono::steady_clock::now() + t;
        while (std::chrono::steady_clock::now() < end) {
            a.turn();
            b.turn();
            if (done()) return true;
        }
        return false;
    };
    b.polling = false; // a first: it becomes primary in every group, then b monitor
    ASSERT_TRUE(until([&] { return all([&](std::size_t g) { return a.node.holds_primary(g); }); }, 10s));
    b.polling = true;
    ASSERT_TRUE(until([&] { return all([&](std::size_t g) { return b.node.holds_monitor(g); }); }, 10s))
        << "b is monitor in every group";
    // Let the probes run a while: every group's answers through bundles.
    until([] { return false; }, 300ms);
    const auto counter = [](const std::string& js, const std::string& name) -> std::uint64_t {
        const auto at = js.find("\"" + name + "\":");
        return at == std::string::npos ? 0 : std::stoull(js.substr(at + name.size() + 3));
    };
    const std::string ja = a.node.status_json(), jb = b.node.status_json();
    const auto bundled = counter(ja, "io_tx_bundled"), frames = counter(ja, "io_tx_packets");
    std::printf("a sent %llu heartbeats in bundles, %llu frames in all\n", static_cast<unsigned long long>(bundled),
                static_cast<unsigned long long>(frames));
    EXPECT_GT(bundled, 10u * n) << ja;
    EXPECT_LT(frames * 4, bundled) << "a bundle carries many groups' heartbeats";
    EXPECT_GT(counter(jb, "io_rx_bundled"), 10u * n) << jb;
    EXPECT_EQ(counter(jb, "io_auth_bad_tag"), 0u);
    EXPECT_EQ(counter(jb, "io_auth_missing"), 0u);
    EXPECT_EQ(counter(jb, "drop_replay"), 0u) << "each entry's seq is its group's";
    EXPECT_EQ(counter(jb, "drop_unauthenticated"), 0u) << "a bundle's tag authenticates every entry";

    a.polling = false;
    ASSERT_TRUE(until([&] { return all([&](std::size_t g) { return b.node.holds_primary(g); }); }, 10s))
        << "b takes over every group of the silent primary";
}

TEST(EmbedNode, AttachErrorsNameTheCause) {
    const auto error_of = [](std::uint16_t port, std::uint16_t queue, rte_mempool* pool, const std::string& cfg) {
        try {
            embed::node n(embed::config_text{cfg}, {.port_id = port, .tx_queue = queue, .mempool = pool});
            return std::string{};
        } catch (const std::runtime_error& e) {
            return std::string(e.what());
        }
    };
    EXPECT_NE(error_of(99, 0, g_ports.pool, config("a", 1)).find("unknown port id 99"), std::string::npos);
    EXPECT_NE(error_of(g_ports.a, 3, g_ports.pool, config("a", 1)).find("TX queue 3"), std::string::npos);
    EXPECT_NE(error_of(g_ports.a, 0, nullptr, config("a", 1)).find("no mempool"), std::string::npos);
    const std::string bad = error_of(g_ports.a, 0, g_ports.pool, config("a", 1) + "[garp]\nrepeat = 0\n[engine]\nburst = 0\n");
    EXPECT_NE(bad.find("2 errors"), std::string::npos) << bad;
    EXPECT_NE(bad.find("garp.repeat"), std::string::npos) << bad;
    EXPECT_NE(bad.find("engine.burst"), std::string::npos) << bad;
    EXPECT_NE(error_of(g_ports.a, 0, g_ports.pool, "[node\n").find("heartwire config"), std::string::npos);
}

int main(int argc, char** argv) {
    testing::InitGoogleTest(&argc, argv);
    char dir[] = "/tmp/hw-embed-node-XXXXXX";
    if (!mkdtemp(dir)) return 1;
    g_dir = dir;
    {
        const std::string key = g_dir + "/group.key";
        std::ofstream(key) << "1 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff send\n";
        ::chmod(key.c_str(), 0600);
    }
    const std::string prefix = "hwembed" + std::to_string(getpid());
    std::vector<std::string> args = {"embed_node", "-l", "0", "--no-pci", "--no-huge", "-m", "128", "--file-prefix", prefix,
                                     "--log-level", "lib.eal:error"};
    std::vector<char*> eal;
    for (auto& s : args) eal.push_back(s.data());
    int rc = 1;
    if (rte_eal_init(static_cast<int>(eal.size()), eal.data()) < 0) {
        std::fprintf(stderr, "rte_eal_init failed: %s\n", rte_strerror(rte_errno));
    } else {
        try {
            wire_ports();
            rc = RUN_ALL_TESTS();
        } catch (const std::exception& e) {
            std::fprintf(stderr, "embed_node: %s\n", e.what());
        }
        rte_eal_cleanup();
    }
    std::system(("rm -rf " + g_dir + " /var/run/dpdk/" + prefix).c_str());
    return rc;
}
