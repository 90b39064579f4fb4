// heartwired --check beyond the configuration's own validation (issue 11 item 7): hooks and
// script checks that are not there or not executable, an idle cap against the window, EAL
// arguments against the config, and the window against this host's stall floor.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>

#include "../dpdk_apps/heartwired/check.hpp"
#include "heartwire/config.hpp"

using namespace heartwire;
using app::problem;

namespace {

cfg::config parsed(const std::string& extra) {
    const std::string text = "[node]\nname = \"a\"\nid = 1\n[auth]\nmode = \"none\"\n"
                             "[port]\ndevice = \"net_af_packet0,iface=eth0\"\neal = [\"-l\", \"0\"]\n"
                             "[addresses]\nprimary = \"169.254.10.100/24\"\nmonitor = \"169.254.10.101/24\"\n" +
                             extra;
    auto r = cfg::parse(text);
    EXPECT_TRUE(r.errors.empty()) << (r.errors.empty() ? "" : r.errors.front().to_string());
    return r.cfg ? *r.cfg : cfg::config{};
}

const problem* find(const std::vector<problem>& ps, const std::string& key) {
    const auto it = std::find_if(ps.begin(), ps.end(), [&](const problem& p) { return p.key == key; });
    return it == ps.end() ? nullptr : &*it;
}

struct tmpdir {
    std::string path;
    tmpdir() {
        char d[] = "/tmp/hw-check-XXXXXX";
        path = mkdtemp(d);
    }
    ~tmpdir() { std::filesystem::remove_all(path); }
    std::string file(const std::string& name, bool exec) const {
        const std::string p = path + "/" + name;
        std::ofstream(p) << "#!/bin/sh\nexit 0\n";
        chmod(p.c_str(), exec ? 0755 : 0644);
        return p;
    }
};

} // namespace

TEST(Check, HooksAndScriptChecksMustExistAndBeExecutable) {
    tmpdir d;
    const std::string ok = d.file("ok.sh", true), noexec = d.file("noexec.sh", false);
    const auto c = parsed("[protocol]\nrequire_fence = true\n[hooks]\nfence = \"" + d.path + "/missing.sh\"\nnotify = \"" +
                          noexec + "\"\non_primary = \"" + ok + "\"\nboot_peer = \"" + d.path + "\"\n" +
                          "[[health]]\nname = \"app\"\nkind = \"script\"\ntarget = \"" + d.path + "/gone.sh\"\n" +
                          "[[health]]\nname = \"p\"\nkind = \"process\"\ntarget = \"bin/server\"\n" +
                          "[[health]]\nname = \"q\"\nkind = \"process\"\ntarget = \"a-name-longer-than-fifteen\"\n");
    const auto ps = app::runtime_problems(c, {});
    const auto* fence = find(ps, "hooks.fence");
    ASSERT_NE(fence, nullptr);
    EXPECT_TRUE(fence->error);
    EXPECT_NE(fence->what.find("require_fence"), std::string::npos) << fence->what;
    ASSERT_NE(find(ps, "hooks.notify"), nullptr);
    EXPECT_NE(find(ps, "hooks.notify")->what.find("not executable"), std::string::npos);
    EXPECT_EQ(find(ps, "hooks.on_primary"), nullptr) << "an executable hook is fine";
    ASSERT_NE(find(ps, "hooks.boot_peer"), nullptr);
    EXPECT_NE(find(ps, "hooks.boot_peer")->what.find("not a regular file"), std::string::npos);
    ASSERT_NE(find(ps, "health[0].target"), nullptr) << "a script check that is not there";
    ASSERT_NE(find(ps, "health[1].target"), nullptr) << "a relative path never matches a process";
    EXPECT_EQ(find(ps, "health[2].target"), nullptr) << "a long name is matched by argv[0] now";
}

TEST(Check, AnIdleCapFarAboveTheWindowIsRefusedAndOneAboveItWarned) {
    const auto with = [](const char* idle, unsigned cap) {
        return app::runtime_problems(parsed(std::string("[detect]\ninterval_us = 100\nmiss = 5\n[engine]\nidle = \"") + idle +
                                            "\"\nidle_max_sleep_us = " + std::to_string(cap) + "\n"),
                                     {});
    };
    auto ps = with("adaptive", 5000);
    ASSERT_NE(find(ps, "engine.idle_max_sleep_us"), nullptr);
    EXPECT_TRUE(find(ps, "engine.idle_max_sleep_us")->error) << "10 x the 500 us window";
    ps = with("adaptive", 600);
    ASSERT_NE(find(ps, "engine.idle_max_sleep_us"), nullptr);
    EXPECT_FALSE(find(ps, "engine.idle_max_sleep_us")->error) << "above the window: a warning";
    EXPECT_EQ(find(with("adaptive", 50), "engine.idle_max_sleep_us"), nullptr);
    EXPECT_EQ(find(with("busy", 50000), "engine.idle_max_sleep_us"), nullptr) << "a busy engine never sleeps";
}

TEST(Check, EalArgumentsThatConflictWithTheConfig) {
    auto c = parsed("[engine]\nmode = \"pipelined\"\n");
    auto ps = app::runtime_problems(c, {});
    ASSERT_NE(find(ps, "port.eal"), nullptr) << "pipelined on one lcore";
    EXPECT_TRUE(find(ps, "port.eal")->error);
    EXPECT_EQ(find(app::runtime_problems(c, {"-l", "0-1"}), "port.eal"), nullptr) << "-l after -- counts too: 0-1";
    c = parsed("");
    c.port.device = "net_memif0,role=client";
    c.port.eal_args = {"-l", "0", "--no-huge"};
    ps = app::runtime_problems(c, {});
    ASSERT_NE(find(ps, "port.eal"), nullptr);
    EXPECT_NE(find(ps, "port.eal")->what.find("hugepages"), std::string::npos);
    c.port.eal_args = {"-l", "0", "--vdev", "net_memif0,role=server"};
    ps = app::runtime_problems(c, {});
    ASSERT_NE(find(ps, "port.eal"), nullptr);
    EXPECT_NE(find(ps, "port.eal")->what.find("same device"), std::string::npos);
    c.port.device = "net_af_packet0,iface=eth0";
    c.port.eal_args = {"--no-huge"};
    ps = app::runtime_problems(c, {});
    ASSERT_NE(find(ps, "port.eal"), nullptr);
    EXPECT_FALSE(find(ps, "port.eal")->error) << "no -l: a warning";
}

TEST(Check, AWindowBelowTheStallFloorOfThisHostWarns) {
    auto c = parsed("[detect]\ninterval_us = 1\nmiss = 1\n");
    auto ps = app::stall_floor_problems(c, 100);
    ASSERT_NE(find(ps, "detect.interval_us"), nullptr) << "a 1 us window: any interrupt is longer";
    EXPECT_FALSE(find(ps, "detect.interval_us")->error);
    c = parsed("[detect]\ninterval_us = 1000000\nmiss = 10\n");
    EXPECT_TRUE(app::stall_floor_problems(c, 50).empty()) << "a 10 s window";
}

TEST(Check, InterfacesThatAreNotThereAreNamed) {
    auto c = parsed("");
    c.port.device = "net_af_xdp0,iface=hw-no-such0";
    auto ps = app::runtime_problems(c, {});
    ASSERT_NE(find(ps, "port.device"), nullptr);
    EXPECT_NE(find(ps, "port.device")->what.find("hw-no-such0"), std::string::npos);
    c.port.device = "net_tap0,iface=hw-tap-made-by-dpdk";
    EXPECT_EQ(find(app::runtime_problems(c, {}), "port.device"), nullptr) << "net_tap creates its interface";
    c.port.device = "net_af_packet0,iface=lo";
    c.port.mode = cfg::address_mode::shared;
    c.port.kernel_interface = "hw-no-such1";
    c.groups[0].interface = "hw-no-such1";
    c.port.notice_interface = "hw-no-such2";
    ps = app::runtime_problems(c, {});
    ASSERT_NE(find(ps, "port.kernel_interface"), nullptr);
    EXPECT_EQ(find(ps, "group.interface"), nullptr) << "named once";
    ASSERT_NE(find(ps, "port.notice_interface"), nullptr);
    c.port.kernel_interface = "lo";
    c.port.notice_interface = "none";
    ps = app::runtime_problems(c, {});
    ASSERT_NE(find(ps, "group.interface"), nullptr);
    EXPECT_EQ(find(ps, "port.kernel_interface"), nullptr);
    EXPECT_EQ(find(ps, "port.notice_interface"), nullptr);
}

TEST(Check, NotifyArgumentsAreHeartwiresOrKeepalivedsAndAGroupMayBeNamed) {
    EXPECT_EQ(parsed("").hooks.notify_args, "heartwire");
    EXPECT_EQ(parsed("[hooks]\nnotify_args = \"keepalived\"\n").hooks.notify_args, "keepalived");
    const auto r = cfg::parse("[node]\nname = \"a\"\nid = 1\n[auth]\nmode = \"none\"\n[port]\ndevice = \"net_af_packet0,iface=eth0\"\n"
                              "[hooks]\nnotify_args = \"vrrp\"\n[[group]]\nid = 5\nname = \"VI_5\"\n"
                              "primary = \"169.254.10.100/24\"\nmonitor = \"169.254.10.101/24\"\n");
    ASSERT_EQ(r.errors.size(), 1u);
    EXPECT_EQ(r.errors.front().key, "hooks.notify_args");
    EXPECT_NE(r.errors.front().to_string().find("keepalived"), std::string::npos) << r.errors.front().to_string();
}
