// The embedded node's config (src/embed/config): heartwired's TOML, read for an application
// that owns EAL and the port.
#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

#include "embed/config.hpp"

using namespace heartwire;

namespace {

const std::string base = R"(
[node]
name = "a"
id = 1
[auth]
mode = "none"
[addresses]
primary = "169.254.10.100/24"
monitor = "169.254.10.101/24"
)";

// The message load_config throws, or "" when it accepts the text.
std::string error_of(const std::string& text) {
    try {
        embed::load_config(text, "node.toml");
        return {};
    } catch (const std::runtime_error& e) {
        return e.what();
    }
}

} // namespace

TEST(EmbedConfig, PortDeviceMayBeLeftOutTheApplicationOwnsThePort) {
    const auto c = embed::load_config(base, "node.toml");
    EXPECT_EQ(c.port.device, embed::no_device);
    EXPECT_EQ(c.node.name, "a");
    const auto with_table = embed::load_config(base + "[port]\nvlan = 5\n", "node.toml");
    EXPECT_EQ(with_table.port.device, embed::no_device) << "a [port] table without device";
    EXPECT_EQ(with_table.port.vlan, 5u) << "the rest of [port] is kept";
}

TEST(EmbedConfig, HeartwiredsOwnFileIsAcceptedWithItsEalArgsUnused) {
    const auto c = embed::load_config(base + "[port]\neal = [\"-l\", \"0\"]\ndevice = \"net_af_xdp0,iface=eth0\"\n", "node.toml");
    EXPECT_EQ(c.port.device, "net_af_xdp0,iface=eth0") << "its iface= names the interface whose carrier is watched";
    EXPECT_EQ(c.port.eal_args.size(), 2u);
}

TEST(EmbedConfig, EveryErrorIsListedWithTheSource) {
    const std::string msg = error_of(base + "[detect]\ninterval_us = 0\nmiss = 0\n");
    EXPECT_NE(msg.find("heartwire config node.toml: 2 errors"), std::string::npos) << msg;
    EXPECT_NE(msg.find("detect.interval_us"), std::string::npos) << msg;
    EXPECT_NE(msg.find("detect.miss"), std::string::npos) << msg;
}

TEST(EmbedConfig, PipelinedModeIsRefusedTheApplicationsLcoreRunsTheEngine) {
    const std::string msg = error_of(base + "[engine]\nmode = \"pipelined\"\n");
    EXPECT_NE(msg.find("engine.mode"), std::string::npos) << msg;
}

TEST(EmbedConfig, BrokenTomlIsReportedAsTheParserSaysIt) {
    const std::string msg = error_of("[node\nname = ");
    EXPECT_NE(msg.find("heartwire config node.toml: 1 error"), std::string::npos) << msg;
}
