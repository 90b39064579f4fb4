// The configuration model: what a valid file turns into, which defaults fill the gaps, and
// that every rule rejects a bad value with an error naming the key and the value.

#include "heartwire/config.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <iterator>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

namespace cfg = heartwire::cfg;
using heartwire::ipv4_prefix;

namespace {

ipv4_prefix prefix(const char* s) { return *ipv4_prefix::parse(s); }

std::string all_errors(const cfg::parse_result& r) {
    std::string s;
    for (const auto& e : r.errors) s += "  " + e.to_string() + "\n";
    return s;
}

// The smallest valid file, as root-level dotted keys so a case can append more keys, or
// tables, after it.
const std::vector<std::string> minimal_lines = {
    R"(node.name = "node-a")",
    R"(node.id = 1)",
    R"(port.device = "net_null0")",
    R"(addresses.primary = "169.254.10.100/24")",
    R"(addresses.monitor = "169.254.10.101/24")",
    R"(auth.key_file = "/etc/heartwire/group.key")",
};

std::string key_of(const std::string& line) { return line.substr(0, line.find_first_of(" =")); }

// minimal_lines plus `extra`. A line of `extra` that sets a minimal key replaces it, and a
// line "-key" removes it, so each case says only what it changes.
std::string with(const std::string& extra) {
    std::vector<std::string> extra_lines;
    std::istringstream in{extra};
    for (std::string l; std::getline(in, l);) extra_lines.push_back(l);
    auto overridden = [&](const std::string& k) {
        return std::any_of(extra_lines.begin(), extra_lines.end(),
                           [&](const std::string& l) { return key_of(l) == k || l == "-" + k; });
    };
    std::string out;
    for (const auto& l : minimal_lines)
        if (!overridden(key_of(l))) out += l + "\n";
    for (const auto& l : extra_lines)
        if (l.empty() || l[0] != '-') out += l + "\n";
    return out;
}

} // namespace

// ---------------------------------------------------------------------------------------

TEST(ConfigParse, FullFileParsesToTheExpectedStruct) {
    const auto r = cfg::parse(R"(
[node]
name = "edge-1.b_2"
id = 4294967295
priority = 200
group = 42

[port]
eal = ["-l", "2", "--no-huge", "--file-prefix", "hw-b"]
device = "net_af_packet0,iface=veth-b"
mode = "shared"
kernel_interface = "veth-b"
rx_desc = 512
tx_desc = 2048
mbufs = 8191

[addresses]
primary = "169.254.10.100/24"
monitor = "169.254.10.101/32"

[detect]
interval_us = 250
miss = 5
probe = "both"

[garp]
repeat = 5
interval_us = 200
refresh_ms = 0
defend_interval_ms = 50

[auth]
mode = "keyed"
key_file = "cred:heartwire.key"

[protocol]
discovery_probes = 4
discovery_interval_ms = 15
discovery_wait_ms = 40
announce_interval_ms = 20
peer_timeout_ms = 200
stay_down_interval_ms = 30
preempt = true
preempt_delay_ms = 1500
drain_timeout_ms = 7000
require_fence = true

[engine]
mode = "pipelined"
idle = "adaptive"
idle_max_sleep_us = 75
burst = 64

[hooks]
notify = "/usr/lib/hw/notify"
on_primary = "/usr/lib/hw/primary"
on_monitor = "/usr/lib/hw/monitor"
on_standby = "/usr/lib/hw/standby"
on_fault = "/usr/lib/hw/fault"
boot_peer = "/usr/lib/hw/boot"
fence = "/usr/lib/hw/fence"
drain = "/usr/lib/hw/drain"
undrain = "/usr/lib/hw/undrain"
timeout_ms = 2500

[[health]]
name = "uplink"
kind = "interface"
target = "eth0"

[[health]]
name = "db"
kind = "process"
target = "postgres"
interval_ms = 250
rise = 4
fall = 1

[control]
socket = "/tmp/hw-b.sock"
log_level = "debug"
)");
    ASSERT_TRUE(r.cfg) << all_errors(r);
    const cfg::config& c = *r.cfg;

    EXPECT_EQ(c.node.name, "edge-1.b_2");
    EXPECT_EQ(c.node.id, 4294967295u);
    EXPECT_EQ(c.node.priority, 200);
    EXPECT_EQ(c.node.group, 42u);

    EXPECT_EQ(c.port.eal_args, (std::vector<std::string>{"-l", "2", "--no-huge", "--file-prefix", "hw-b"}));
    EXPECT_EQ(c.port.device, "net_af_packet0,iface=veth-b");
    EXPECT_EQ(c.port.mode, cfg::address_mode::shared);
    EXPECT_EQ(c.port.kernel_interface, "veth-b");
    EXPECT_EQ(c.port.rx_desc, 512u);
    EXPECT_EQ(c.port.tx_desc, 2048u);
    EXPECT_EQ(c.port.mbufs, 8191u);

    EXPECT_EQ(c.addresses.primary, prefix("169.254.10.100/24"));
    EXPECT_EQ(c.addresses.monitor, prefix("169.254.10.101/32"));

    EXPECT_EQ(c.detect.interval_us, 250u);
    EXPECT_EQ(c.detect.miss, 5u);
    EXPECT_EQ(c.detect.probe, cfg::probe_kind::both);

    EXPECT_EQ(c.garp.repeat, 5u);
    EXPECT_EQ(c.garp.interval_us, 200u);
    EXPECT_EQ(c.garp.refresh_ms, 0u);
    EXPECT_EQ(c.garp.defend_interval_ms, 50u);
    EXPECT_EQ(c.auth.mode, cfg::auth_mode::keyed);
    EXPECT_EQ(c.auth.key_file, "cred:heartwire.key");

    EXPECT_EQ(c.protocol.discovery_probes, 4u);
    EXPECT_EQ(c.protocol.discovery_interval_ms, 15u);
    EXPECT_EQ(c.protocol.discovery_wait_ms, 40u);
    EXPECT_EQ(c.protocol.announce_interval_ms, 20u);
    EXPECT_EQ(c.protocol.peer_timeout_ms, 200u);
    EXPECT_EQ(c.protocol.stay_down_interval_ms, 30u);
    EXPECT_TRUE(c.protocol.preempt);
    EXPECT_EQ(c.protocol.preempt_delay_ms, 1500u);
    EXPECT_EQ(c.protocol.drain_timeout_ms, 7000u);
    EXPECT_TRUE(c.protocol.require_fence);

    EXPECT_EQ(c.engine.mode, cfg::lcore_mode::pipelined);
    EXPECT_EQ(c.engine.idle, cfg::idle_policy::adaptive);
    EXPECT_EQ(c.engine.idle_max_sleep_us, 75u);
    EXPECT_EQ(c.engine.burst, 64u);

    EXPECT_EQ(c.hooks.notify, "/usr/lib/hw/notify");
    EXPECT_EQ(c.hooks.on_primary, "/usr/lib/hw/primary");
    EXPECT_EQ(c.hooks.on_monitor, "/usr/lib/hw/monitor");
    EXPECT_EQ(c.hooks.on_standby, "/usr/lib/hw/standby");
    EXPECT_EQ(c.hooks.on_fault, "/usr/lib/hw/fault");
    EXPECT_EQ(c.hooks.boot_peer, "/usr/lib/hw/boot");
    EXPECT_EQ(c.hooks.fence, "/usr/lib/hw/fence");
    EXPECT_EQ(c.hooks.drain, "/usr/lib/hw/drain");
    EXPECT_EQ(c.hooks.undrain, "/usr/lib/hw/undrain");
    EXPECT_EQ(c.hooks.timeout_ms, 2500u);

    ASSERT_EQ(c.health.size(), 2u);
    EXPECT_EQ(c.health[0].name, "uplink");
    EXPECT_EQ(c.health[0].kind, "interface");
    EXPECT_EQ(c.health[0].target, "eth0");
    EXPECT_EQ(c.health[0].interval_ms, cfg::default_health_interval_ms);
    EXPECT_EQ(c.health[0].rise, cfg::default_health_rise);
    EXPECT_EQ(c.health[0].fall, cfg::default_health_fall);
    EXPECT_EQ(c.health[1].name, "db");
    EXPECT_EQ(c.health[1].kind, "process");
    EXPECT_EQ(c.health[1].target, "postgres");
    EXPECT_EQ(c.health[1].interval_ms, 250u);
    EXPECT_EQ(c.health[1].rise, 4u);
    EXPECT_EQ(c.health[1].fall, 1u);

    EXPECT_EQ(c.control.socket, "/tmp/hw-b.sock");
    EXPECT_EQ(c.control.log_level, "debug");
}

TEST(ConfigParse, DefaultsApplyWhenKeysAreAbsent) {
    const auto r = cfg::parse(with(""));
    ASSERT_TRUE(r.cfg) << all_errors(r);
    const cfg::config& c = *r.cfg;

    EXPECT_EQ(c.node.priority, cfg::default_priority);
    EXPECT_TRUE(c.port.eal_args.empty());
    EXPECT_EQ(c.port.mode, cfg::address_mode::exclusive);
    EXPECT_EQ(c.port.kernel_interface, "");
    EXPECT_FALSE(c.port.flow_isolate);
    EXPECT_EQ(c.groups.at(0).interface, "") << "exclusive: no kernel interface carries the addresses";
    EXPECT_EQ(c.port.rx_desc, cfg::default_rx_desc);
    EXPECT_EQ(c.port.tx_desc, cfg::default_tx_desc);
    EXPECT_EQ(c.port.mbufs, cfg::default_mbufs);
    EXPECT_EQ(c.detect.interval_us, cfg::default_interval_us);
    EXPECT_EQ(c.detect.miss, cfg::default_miss);
    EXPECT_EQ(c.detect.probe, cfg::probe_kind::heartbeat);
    EXPECT_EQ(c.garp.repeat, cfg::default_garp_repeat);
    EXPECT_EQ(c.garp.interval_us, cfg::default_garp_interval_us);
    EXPECT_EQ(c.garp.refresh_ms, cfg::default_garp_refresh_ms);
    EXPECT_EQ(c.protocol.discovery_probes, cfg::default_discovery_probes);
    EXPECT_EQ(c.protocol.discovery_interval_ms, cfg::default_discovery_interval_ms);
    EXPECT_EQ(c.protocol.discovery_wait_ms, cfg::default_discovery_wait_ms);
    EXPECT_EQ(c.protocol.announce_interval_ms, cfg::default_announce_interval_ms);
    EXPECT_EQ(c.protocol.peer_timeout_ms, cfg::default_peer_timeout_ms);
    EXPECT_EQ(c.protocol.stay_down_interval_ms, cfg::default_stay_down_interval_ms);
    EXPECT_FALSE(c.protocol.preempt);
    EXPECT_EQ(c.protocol.preempt_delay_ms, cfg::default_preempt_delay_ms);
    EXPECT_EQ(c.protocol.drain_timeout_ms, cfg::default_drain_timeout_ms);
    EXPECT_FALSE(c.protocol.require_fence);
    EXPECT_EQ(c.engine.mode, cfg::lcore_mode::run_to_completion);
    EXPECT_EQ(c.engine.idle, cfg::idle_policy::busy);
    EXPECT_EQ(c.engine.idle_max_sleep_us, cfg::default_idle_max_sleep_us);
    EXPECT_EQ(c.engine.burst, cfg::default_burst);
    EXPECT_EQ(c.hooks.notify, "");
    EXPECT_EQ(c.hooks.fence, "");
    EXPECT_EQ(c.hooks.timeout_ms, cfg::default_hook_timeout_ms);
    EXPECT_TRUE(c.health.empty());
    EXPECT_EQ(c.control.log_level, "info");
}

TEST(ConfigParse, ControlSocketDefaultsToRunHeartwireNodeName) {
    const auto r = cfg::parse(with(""));
    ASSERT_TRUE(r.cfg) << all_errors(r);
    EXPECT_EQ(r.cfg->control.socket, "/run/heartwire/node-a.sock");
}

TEST(ConfigParse, EmptyTablesAndEmptyHealthListAreAccepted) {
    const auto r = cfg::parse(with("health = []\n[detect]\n[hooks]"));
    ASSERT_TRUE(r.cfg) << all_errors(r);
    EXPECT_TRUE(r.cfg->health.empty());
}

TEST(ConfigParse, EnumNamesRoundTripThroughToString) {
    for (auto m : {cfg::address_mode::exclusive, cfg::address_mode::shared}) {
        auto r = cfg::parse(with("port.mode = \"" + std::string{cfg::to_string(m)} +
                                 "\"\nport.kernel_interface = \"veth-a\""));
        ASSERT_TRUE(r.cfg) << all_errors(r);
        EXPECT_EQ(r.cfg->port.mode, m);
    }
    for (auto p : {cfg::probe_kind::heartbeat, cfg::probe_kind::icmp, cfg::probe_kind::both}) {
        // ICMP probes cannot be authenticated: only without keys.
        const std::string auth = p == cfg::probe_kind::icmp ? "\nauth.mode = \"none\"\n-auth.key_file" : "";
        auto r = cfg::parse(with("detect.probe = \"" + std::string{cfg::to_string(p)} + "\"" + auth));
        ASSERT_TRUE(r.cfg) << all_errors(r);
        EXPECT_EQ(r.cfg->detect.probe, p);
    }
    for (auto m : {cfg::lcore_mode::run_to_completion, cfg::lcore_mode::pipelined}) {
        auto r = cfg::parse(with("engine.mode = \"" + std::string{cfg::to_string(m)} + "\""));
        ASSERT_TRUE(r.cfg) << all_errors(r);
        EXPECT_EQ(r.cfg->engine.mode, m);
    }
    for (auto p : {cfg::idle_policy::busy, cfg::idle_policy::adaptive}) {
        auto r = cfg::parse(with("engine.idle = \"" + std::string{cfg::to_string(p)} + "\""));
        ASSERT_TRUE(r.cfg) << all_errors(r);
        EXPECT_EQ(r.cfg->engine.idle, p);
    }
    EXPECT_EQ(cfg::to_string(cfg::lcore_mode::run_to_completion), "run-to-completion");
}

TEST(ConfigExample, ShippedExampleParsesAndIsExclusiveAfXdpOnLinkLocalAddresses) {
    const auto r = cfg::load_file(HEARTWIRE_SOURCE_ROOT "/examples/heartwired.toml");
    ASSERT_TRUE(r.cfg) << all_errors(r);
    EXPECT_EQ(r.cfg->port.mode, cfg::address_mode::exclusive);
    EXPECT_EQ(r.cfg->port.device.rfind("net_af_xdp", 0), 0u) << r.cfg->port.device;
    EXPECT_EQ(r.cfg->addresses.primary, prefix("169.254.10.100/24"));
    EXPECT_EQ(r.cfg->addresses.monitor, prefix("169.254.10.101/24"));
}

// Each key the example spells out (set or commented out) must have an entry in the reference.
TEST(ConfigDocs, EveryKeyInTheExampleIsInTheReference) {
    std::ifstream ex{HEARTWIRE_SOURCE_ROOT "/examples/heartwired.toml"};
    std::ifstream doc_in{HEARTWIRE_SOURCE_ROOT "/docs/configuration.md"};
    ASSERT_TRUE(ex && doc_in);
    const std::string doc{std::istreambuf_iterator<char>{doc_in}, {}};
    const std::regex header{R"(^\[\[?(\w+)\]\]?)"};
    const std::regex key{R"(^#? ?(\w+) = )"};
    std::string table;
    int seen = 0;
    for (std::string line; std::getline(ex, line);) {
        std::smatch m;
        if (std::regex_search(line, m, header)) {
            table = m[1];
            EXPECT_NE(doc.find("[" + table + "]"), std::string::npos) << table;
        } else if (!table.empty() && std::regex_search(line, m, key)) {
            ++seen;
            EXPECT_NE(doc.find("`" + table + "." + std::string{m[1]} + "`"), std::string::npos)
                << table << "." << m[1] << " is not in docs/configuration.md";
        }
    }
    EXPECT_GT(seen, 50);
}

// ---------------------------------------------------------------------------------------
// Error reporting.

TEST(ConfigErrorText, NamesKeyValueAndMessage) {
    EXPECT_EQ((cfg::config_error{"detect.interval_us", "0", "must be between 1 and 10000000"}.to_string()),
              "detect.interval_us = 0: must be between 1 and 10000000");
    EXPECT_EQ((cfg::config_error{"node.name", "", "is required"}.to_string()), "node.name: is required");
    EXPECT_EQ((cfg::config_error{"", "", "cannot open config file x"}.to_string()), "cannot open config file x");
}

TEST(ConfigErrorText, RangeErrorReadsLikeTheLineInTheFile) {
    const auto r = cfg::parse(with("detect.interval_us = 0"));
    ASSERT_EQ(r.errors.size(), 1u) << all_errors(r);
    EXPECT_EQ(r.errors[0].to_string(), "detect.interval_us = 0: must be between 1 and 10000000");
}

TEST(ConfigErrorText, WrongTypeQuotesTheValueAsWritten) {
    const auto r = cfg::parse(with("detect.interval_us = \"ten\""));
    ASSERT_EQ(r.errors.size(), 1u) << all_errors(r);
    EXPECT_EQ(r.errors[0].to_string(), R"(detect.interval_us = "ten": must be an integer, not a string)");
}

TEST(ConfigErrors, SeveralErrorsAreAllReported) {
    const auto r = cfg::parse(with(R"(-node.id
detect.interval_us = 0
detect.probe = "ping"
garp.repaet = 3
addresses.monitor = "169.254.10.100/24"
[engine]
burst = "many"
)"));
    EXPECT_FALSE(r.cfg);
    std::vector<std::string> keys;
    for (const auto& e : r.errors) keys.push_back(e.key);
    std::sort(keys.begin(), keys.end());
    EXPECT_EQ(keys, (std::vector<std::string>{"addresses.monitor", "detect.interval_us", "detect.probe",
                                              "engine.burst", "garp.repaet", "node.id"}))
        << all_errors(r);
}

TEST(ConfigErrors, SyntaxErrorGivesLineAndColumnAndNoKey) {
    const auto r = cfg::parse("[node]\nname = \"a\"\nid = = 3\n");
    ASSERT_EQ(r.errors.size(), 1u);
    EXPECT_FALSE(r.cfg);
    EXPECT_EQ(r.errors[0].key, "");
    EXPECT_NE(r.errors[0].message.find("line 3:"), std::string::npos) << r.errors[0].message;
}

TEST(ConfigErrors, ReaderErrorIsNotRepeatedByValidation) {
    // The unparsable address leaves the field empty; only the precise error is reported.
    const auto r = cfg::parse(with("addresses.primary = \"169.254.10/24\""));
    ASSERT_EQ(r.errors.size(), 1u) << all_errors(r);
    EXPECT_EQ(r.errors[0].key, "addresses.primary");
}

TEST(ConfigLoadFile, MissingFileIsOneErrorNamingThePath) {
    const auto r = cfg::load_file("/nonexistent/heartwire/none.toml");
    EXPECT_FALSE(r.cfg);
    ASSERT_EQ(r.errors.size(), 1u);
    EXPECT_EQ(r.errors[0].key, "");
    EXPECT_NE(r.errors[0].message.find("/nonexistent/heartwire/none.toml"), std::string::npos);
    EXPECT_NE(r.errors[0].message.find("No such file"), std::string::npos) << r.errors[0].message;
}

TEST(ConfigLoadFile, DirectoryIsAnError) {
    const auto r = cfg::load_file("/");
    EXPECT_FALSE(r.cfg);
    ASSERT_EQ(r.errors.size(), 1u);
    EXPECT_EQ(r.errors[0].key, "");
}

TEST(ConfigLoadFile, SyntaxErrorNamesTheFile) {
    const std::string path = ::testing::TempDir() + "heartwire_bad_syntax.toml";
    std::ofstream{path} << "[node\n";
    const auto r = cfg::load_file(path);
    ASSERT_EQ(r.errors.size(), 1u);
    EXPECT_NE(r.errors[0].message.find(path + " line 1:"), std::string::npos) << r.errors[0].message;
}

TEST(ConfigValidate, IsPureAndReturnsOneErrorPerFailedCheck) {
    cfg::config c = *cfg::parse(with("")).cfg;
    EXPECT_TRUE(cfg::validate(c).empty());
    c.detect.miss = 0;
    c.hooks.fence = "fence.sh";
    const auto errs = cfg::validate(c);
    ASSERT_EQ(errs.size(), 2u);
    EXPECT_EQ(errs[0].to_string(), "detect.miss = 0: must be between 1 and 1000");
    EXPECT_EQ(errs[1].key, "hooks.fence");
    EXPECT_EQ(errs[1].value, "\"fence.sh\"");
}

TEST(ConfigValidate, DefaultConstructedConfigNamesEveryMissingRequiredValue) {
    std::vector<std::string> keys;
    for (const auto& e : cfg::validate(cfg::config{})) keys.push_back(e.key);
    for (const char* k : {"node.name", "node.id", "port.device", "addresses.primary", "addresses.monitor"})
        EXPECT_NE(std::find(keys.begin(), keys.end(), k), keys.end()) << k;
}

// ---------------------------------------------------------------------------------------
// One row per rule: the file (relative to the minimal one, see with()), the key the error
// must name and a substring of its text.

namespace {

struct error_case {
    std::string description;
    std::string toml;
    std::string key;
    std::string substring;
};

std::ostream& operator<<(std::ostream& os, const error_case& c) { return os << c.description; }

std::vector<error_case> error_cases() {
    std::vector<error_case> v = {
        // shape
        {"unknown table", "nodes.name = \"x\"", "nodes", "unknown key"},
        {"unknown key in a table", "detect.intervl_us = 5", "detect.intervl_us", "unknown key"},
        {"unknown key lists the valid ones", "garp.count = 5", "garp.count", "repeat, interval_us, refresh_ms"},
        {"integer given as string", "detect.interval_us = \"ten\"", "detect.interval_us", "must be an integer"},
        {"integer given as float", "detect.miss = 3.0", "detect.miss", "must be an integer"},
        {"boolean given as string", "protocol.preempt = \"yes\"", "protocol.preempt", "must be a boolean"},
        {"string given as integer", "port.device = 3", "port.device", "must be a string"},
        {"eal not an array", "port.eal = \"-l 0\"", "port.eal", "array of strings"},
        {"eal element not a string", "port.eal = [\"-l\", 0]", "port.eal[1]", "must be a string"},
        {"table given as a value", "detect = 5", "detect", "must be a table"},
        {"health as a single table", "health.name = \"x\"", "health", "array of tables"},
        {"unknown key in a health check", "[[health]]\nname=\"l\"\nkind=\"process\"\ntarget=\"x\"\nbogus=1",
         "health[0].bogus", "unknown key"},
        {"syntax error", "[node", "", "TOML syntax error at line"},
        // [[state]] (issue 10)
        {"state as a single table", "state.name = \"x\"", "state", "array of tables"},
        {"state without a name", "[[state]]\nrecords = 10", "state[0].name", "is required"},
        {"state name with a slash", "[[state]]\nname = \"a/b\"", "state[0].name", "A-Z a-z 0-9"},
        {"state names twice", "[[state]]\nname = \"s\"\n[[state]]\nname = \"s\"", "state[1].name", "duplicate"},
        {"state mode unknown", "[[state]]\nname = \"s\"\nmode = \"lazy\"", "state[0].mode", "sync"},
        {"state record too large for a frame", "[[state]]\nname = \"s\"\nkey_max = 255\nvalue_max = 900", "state[0].value_max",
         "one frame"},
        {"state queue not a power of two", "[[state]]\nname = \"s\"\nqueue = 1000", "state[0].queue", "power of two"},
        {"state records zero", "[[state]]\nname = \"s\"\nrecords = 0", "state[0].records", "between 1 and"},
        {"state of no group", "[[state]]\nname = \"s\"\ngroup = 7", "state[0].group", "names no group"},
        {"state path relative", "[[state]]\nname = \"s\"\npath = \"shm/x\"", "state[0].path", "absolute"},
        {"unknown key in a store", "[[state]]\nname = \"s\"\nsize = 3", "state[0].size", "unknown key"},
        // [node]
        {"node.name missing", "-node.name", "node.name", "is required"},
        {"node.name empty", "node.name = \"\"", "node.name", "must not be empty"},
        {"node.name with a space", "node.name = \"a b\"", "node.name", "A-Z a-z 0-9 _ . -"},
        {"node.name with a slash", "node.name = \"a/b\"", "node.name", "A-Z a-z 0-9 _ . -"},
        {"node.name 33 characters", "node.name = \"" + std::string(33, 'n') + "\"", "node.name", "at most 32"},
        {"node.id missing", "-node.id", "node.id", "is required"},
        {"node.id zero", "node.id = 0", "node.id", "node.id = 0: must be between 1 and 4294967295"},
        {"node.id above 32 bits", "node.id = 4294967296", "node.id", "between 1 and 4294967295"},
        {"node.id negative", "node.id = -1", "node.id", "node.id = -1: must be between 1 and 4294967295"},
        {"node.priority zero", "node.priority = 0", "node.priority", "between 1 and 255"},
        {"node.priority 256", "node.priority = 256", "node.priority", "node.priority = 256: must be between 1 and 255"},
        // [port]
        {"port.device missing", "-port.device", "port.device", "is required"},
        {"port.device empty", "port.device = \"\"", "port.device", "must not be empty"},
        {"port.mode unknown", "port.mode = \"owned\"", "port.mode", R"(must be one of "exclusive", "shared")"},
        {"shared mode without kernel interface", "port.mode = \"shared\"", "port.kernel_interface",
         "is required when port.mode = \"shared\""},
        {"kernel interface name too long", "port.kernel_interface = \"a-very-long-ifname\"",
         "port.kernel_interface", "not a valid interface name"},
        {"flow isolation in exclusive mode", "port.flow_isolate = true", "port.flow_isolate",
         "needs port.mode = \"shared\""},
        {"flow isolation with echo probes",
         "port.mode = \"shared\"\nport.kernel_interface = \"ens1f1\"\nport.flow_isolate = true\ndetect.probe = \"both\"",
         "detect.probe", "cannot be used with port.flow_isolate = true"},
        {"flow isolation not a boolean", "port.flow_isolate = 1", "port.flow_isolate", "must be a boolean"},
        {"rx_desc below 64", "port.rx_desc = 32", "port.rx_desc", "power of two between 64 and 8192"},
        {"rx_desc not a power of two", "port.rx_desc = 1000", "port.rx_desc", "power of two"},
        {"tx_desc above 8192", "port.tx_desc = 16384", "port.tx_desc", "power of two between 64 and 8192"},
        {"mbufs below 511", "port.mbufs = 510", "port.mbufs", "between 511 and 1048575"},
        {"mbufs above 1048575", "port.mbufs = 1048576", "port.mbufs", "between 511 and 1048575"},
        {"mbufs fewer than the rings hold", "port.mbufs = 1500", "port.mbufs", "at least port.rx_desc"},
        // [addresses]
        {"primary missing", "-addresses.primary", "addresses.primary", "is required"},
        {"monitor missing", "-addresses.monitor", "addresses.monitor", "is required"},
        {"primary not an address", "addresses.primary = \"169.254.10/24\"", "addresses.primary",
         "not an IPv4 address"},
        {"prefix length 33", "addresses.primary = \"169.254.10.100/33\"", "addresses.primary",
         "not an IPv4 address"},
        {"primary given as integer", "addresses.primary = 1", "addresses.primary", "must be a string"},
        {"primary equals monitor", "addresses.monitor = \"169.254.10.100/24\"", "addresses.monitor",
         "must differ from addresses.primary"},
        {"same address with another length", "addresses.monitor = \"169.254.10.100/32\"", "addresses.monitor",
         "must differ"},
        {"host part zero", "addresses.primary = \"169.254.10.0/24\"", "addresses.primary", "host part is zero"},
        {"broadcast address", "addresses.monitor = \"169.254.10.255/24\"", "addresses.monitor", "broadcast"},
        {"metadata address as primary", "addresses.primary = \"169.254.169.254/16\"", "addresses.primary",
         "169.254.169.254 is the cloud instance metadata address"},
        {"metadata address as monitor", "addresses.monitor = \"169.254.169.254\"", "addresses.monitor",
         "refuses to claim it"},
        {"loopback address", "addresses.primary = \"127.0.0.2/8\"", "addresses.primary", "unicast"},
        {"multicast address", "addresses.monitor = \"224.0.0.18/32\"", "addresses.monitor", "unicast"},
        {"zero address", "addresses.monitor = \"0.0.0.0/32\"", "addresses.monitor", "unicast"},
        {"prefix length zero", "addresses.primary = \"169.254.10.100/0\"", "addresses.primary",
         "prefix length must be between 1 and 32"},
        // [detect]
        {"interval_us zero", "detect.interval_us = 0", "detect.interval_us", "between 1 and 10000000"},
        {"interval_us above 10 s", "detect.interval_us = 10000001", "detect.interval_us", "between 1 and 10000000"},
        {"miss zero", "detect.miss = 0", "detect.miss", "between 1 and 1000"},
        {"miss 1001", "detect.miss = 1001", "detect.miss", "between 1 and 1000"},
        {"probe unknown", "detect.probe = \"ping\"", "detect.probe", R"("heartbeat", "icmp", "both")"},
        // [garp]
        {"garp.repeat zero", "garp.repeat = 0", "garp.repeat", "between 1 and 100"},
        {"garp.repeat 101", "garp.repeat = 101", "garp.repeat", "between 1 and 100"},
        {"garp.interval_us zero", "garp.interval_us = 0", "garp.interval_us", "between 1 and 1000000"},
        {"garp.interval_us above 1 s", "garp.interval_us = 1000001", "garp.interval_us", "between 1 and 1000000"},
        {"garp.refresh_ms above 1 h", "garp.refresh_ms = 3600001", "garp.refresh_ms", "between 0 and 3600000"},
        // [protocol]
        {"discovery_probes zero", "protocol.discovery_probes = 0", "protocol.discovery_probes", "between 1 and 20"},
        {"discovery_probes 21", "protocol.discovery_probes = 21", "protocol.discovery_probes", "between 1 and 20"},
        {"discovery_interval_ms zero", "protocol.discovery_interval_ms = 0", "protocol.discovery_interval_ms",
         "between 1 and 10000"},
        {"discovery_wait_ms above 1 min", "protocol.discovery_wait_ms = 60001", "protocol.discovery_wait_ms",
         "between 1 and 60000"},
        {"announce_interval_ms zero", "protocol.announce_interval_ms = 0", "protocol.announce_interval_ms",
         "between 1 and 60000"},
        {"peer_timeout_ms above 1 h", "protocol.peer_timeout_ms = 3600001", "protocol.peer_timeout_ms",
         "between 1 and 3600000"},
        {"peer timeout not above announce interval", "protocol.peer_timeout_ms = 10", "protocol.peer_timeout_ms",
         "must be greater than protocol.announce_interval_ms (10)"},
        {"stay_down_interval_ms zero", "protocol.stay_down_interval_ms = 0", "protocol.stay_down_interval_ms",
         "between 1 and 60000"},
        {"preempt_delay_ms above 1 h", "protocol.preempt_delay_ms = 3600001", "protocol.preempt_delay_ms",
         "between 0 and 3600000"},
        {"drain_timeout_ms zero", "protocol.drain_timeout_ms = 0", "protocol.drain_timeout_ms",
         "between 1 and 3600000"},
        {"require_fence without a fence hook", "protocol.require_fence = true", "hooks.fence",
         "is required when protocol.require_fence = true"},
        // [engine]
        {"engine.mode unknown", "engine.mode = \"rtc\"", "engine.mode", R"("run-to-completion", "pipelined")"},
        {"engine.idle unknown", "engine.idle = \"sleep\"", "engine.idle", R"("busy", "adaptive")"},
        {"idle_max_sleep_us zero", "engine.idle_max_sleep_us = 0", "engine.idle_max_sleep_us",
         "between 1 and 100000"},
        {"idle_max_sleep_us above 100 ms", "engine.idle_max_sleep_us = 100001", "engine.idle_max_sleep_us",
         "between 1 and 100000"},
        {"burst zero", "engine.burst = 0", "engine.burst", "between 1 and 512"},
        {"burst 513", "engine.burst = 513", "engine.burst", "between 1 and 512"},
        // [hooks]
        {"hook timeout zero", "hooks.timeout_ms = 0", "hooks.timeout_ms", "between 1 and 3600000"},
        // [[health]]
        {"health name missing", "[[health]]\nkind = \"process\"\ntarget = \"x\"", "health[0].name", "is required"},
        {"health name invalid", "[[health]]\nname = \"a b\"\nkind = \"process\"\ntarget = \"x\"", "health[0].name",
         "A-Z a-z"},
        {"health kind missing", "[[health]]\nname = \"a\"\ntarget = \"x\"", "health[0].kind", "is required"},
        {"health kind unknown", "[[health]]\nname = \"a\"\nkind = \"ping\"\ntarget = \"x\"", "health[0].kind",
         R"("script", "interface", "process")"},
        {"health target missing", "[[health]]\nname = \"a\"\nkind = \"process\"", "health[0].target", "is required"},
        {"health script not absolute", "[[health]]\nname = \"a\"\nkind = \"script\"\ntarget = \"check.sh\"",
         "health[0].target", "absolute path"},
        {"health interface invalid", "[[health]]\nname = \"a\"\nkind = \"interface\"\ntarget = \"eth 0\"",
         "health[0].target", "not a valid interface name"},
        {"health names duplicated",
         "[[health]]\nname = \"a\"\nkind = \"process\"\ntarget = \"x\"\n"
         "[[health]]\nname = \"a\"\nkind = \"process\"\ntarget = \"y\"",
         "health[1].name", "duplicate: health[0]"},
        {"health interval below 10 ms",
         "[[health]]\nname = \"a\"\nkind = \"process\"\ntarget = \"x\"\ninterval_ms = 5", "health[0].interval_ms",
         "between 10 and 3600000"},
        {"health rise zero", "[[health]]\nname = \"a\"\nkind = \"process\"\ntarget = \"x\"\nrise = 0",
         "health[0].rise", "between 1 and 100"},
        {"health fall 101", "[[health]]\nname = \"a\"\nkind = \"process\"\ntarget = \"x\"\nfall = 101",
         "health[0].fall", "between 1 and 100"},
        // [control]
        {"control socket relative", "control.socket = \"hw.sock\"", "control.socket", "absolute path"},
        {"control socket too long", "control.socket = \"/" + std::string(120, 's') + "\"", "control.socket",
         "unix socket path"},
        {"log level unknown", "control.log_level = \"verbose\"", "control.log_level",
         R"("debug", "info", "warn", "error")"},
    };
    for (const char* hook :
         {"notify", "on_primary", "on_monitor", "on_standby", "on_fault", "boot_peer", "fence", "drain"})
        v.push_back({std::string{"hook "} + hook + " relative", std::string{"hooks."} + hook + " = \"bin/x\"",
                     std::string{"hooks."} + hook, "\"bin/x\": must be an absolute path"});
    return v;
}

} // namespace

class ConfigRejects : public ::testing::TestWithParam<error_case> {};

TEST_P(ConfigRejects, ErrorNamesKeyAndValue) {
    const error_case& c = GetParam();
    const std::string text = with(c.toml);
    const auto r = cfg::parse(text);
    EXPECT_FALSE(r.cfg) << text;
    const bool found = std::any_of(r.errors.begin(), r.errors.end(), [&](const cfg::config_error& e) {
        return e.key == c.key && e.to_string().find(c.substring) != std::string::npos;
    });
    EXPECT_TRUE(found) << "wanted key '" << c.key << "' with '" << c.substring << "' for:\n"
                       << text << "got:\n"
                       << all_errors(r);
}

INSTANTIATE_TEST_SUITE_P(ConfigEveryRule, ConfigRejects, ::testing::ValuesIn(error_cases()),
                         [](const ::testing::TestParamInfo<error_case>& param) {
                             std::string n;
                             for (char ch : param.param.description)
                                 n += std::isalnum(static_cast<unsigned char>(ch)) ? ch : '_';
                             return n;
                         });

// The edges of every range are inside it.
class ConfigAccepts : public ::testing::TestWithParam<std::string> {};

TEST_P(ConfigAccepts, BoundaryValue) {
    const auto r = cfg::parse(with(GetParam()));
    EXPECT_TRUE(r.cfg) << GetParam() << "\n" << all_errors(r);
}

INSTANTIATE_TEST_SUITE_P(
    ConfigRangeEdges, ConfigAccepts,
    ::testing::Values("node.id = 4294967295", "node.priority = 1\nnode.name = \"" + std::string(32, 'n') + "\"",
                      "node.priority = 255", "port.rx_desc = 64\nport.tx_desc = 64\nport.mbufs = 511",
                      "port.rx_desc = 8192\nport.tx_desc = 8192\nport.mbufs = 1048575",
                      "port.mode = \"shared\"\nport.kernel_interface = \"veth-a\"",
                      "port.mode = \"shared\"\nport.kernel_interface = \"ens1f1\"\nport.flow_isolate = true",
                      "detect.interval_us = 1\ndetect.miss = 1", "detect.interval_us = 10000000\ndetect.miss = 1000",
                      "garp.repeat = 1\ngarp.interval_us = 1\ngarp.refresh_ms = 0",
                      "garp.repeat = 100\ngarp.interval_us = 1000000\ngarp.refresh_ms = 3600000",
                      "protocol.discovery_probes = 1\nprotocol.discovery_interval_ms = 1\n"
                      "protocol.discovery_wait_ms = 1\nprotocol.announce_interval_ms = 1\n"
                      "protocol.peer_timeout_ms = 2\nprotocol.stay_down_interval_ms = 1\n"
                      "protocol.preempt_delay_ms = 0\nprotocol.drain_timeout_ms = 1",
                      "protocol.discovery_probes = 20\nprotocol.discovery_interval_ms = 10000\n"
                      "protocol.discovery_wait_ms = 60000\nprotocol.announce_interval_ms = 60000\n"
                      "protocol.peer_timeout_ms = 3600000\nprotocol.stay_down_interval_ms = 60000\n"
                      "protocol.preempt_delay_ms = 3600000\nprotocol.drain_timeout_ms = 3600000",
                      "engine.idle_max_sleep_us = 1\nengine.burst = 1",
                      "engine.idle_max_sleep_us = 100000\nengine.burst = 512",
                      "hooks.timeout_ms = 1", "hooks.timeout_ms = 3600000",
                      "protocol.require_fence = true\nhooks.fence = \"/usr/lib/hw/fence\"",
                      "addresses.primary = \"169.254.10.1/31\"\naddresses.monitor = \"169.254.10.0/31\"",
                      "addresses.primary = \"169.254.10.100\"\naddresses.monitor = \"169.254.10.101\"",
                      "[[health]]\nname = \"a\"\nkind = \"script\"\ntarget = \"/bin/true\"\n"
                      "interval_ms = 10\nrise = 1\nfall = 100",
                      "control.log_level = \"warn\"\ncontrol.socket = \"/" + std::string(106, 's') + "\""));

// toml++ 3.3 reaches __builtin_unreachable() on some non-ASCII characters outside strings
// (fuzz/findings/toml-unreachable-U+FE7F.toml): refused before toml++ sees them.
TEST(ConfigErrors, NonAsciiOutsideStringsAndCommentsIsRefusedBeforeTheParser) {
    const auto bad = cfg::parse(with("node.priority = 100 \xc2\xa7"));
    ASSERT_FALSE(bad.cfg);
    ASSERT_EQ(bad.errors.size(), 1u);
    EXPECT_NE(bad.errors[0].message.find("non-ASCII"), std::string::npos) << bad.errors[0].message;
    const auto key = cfg::parse("\xc3\xa9 = 1\n");
    ASSERT_FALSE(key.cfg);
    EXPECT_NE(key.errors[0].message.find("line 1"), std::string::npos) << key.errors[0].message;
    // In comments and strings it is fine.
    const auto ok = cfg::parse(with("# interval in \xc2\xb5s\nnode.name = \"n\xc3\xb6""de\"") );
    ASSERT_FALSE(ok.errors.empty()) << "a non-ASCII node name is refused by the name rule, not the scanner";
    EXPECT_EQ(ok.errors[0].key, "node.name") << ok.errors[0].to_string();
    const auto fine = cfg::parse(with("# \xc2\xb5s and '''\xc3\xa9''' in a comment\nhooks.notify = \"/opt/h\xc3\xa9/notify\""));
    EXPECT_TRUE(fine.cfg) << all_errors(fine);
}

// ---------------------------------------------------------------- reload (plan_reload)

TEST(ConfigReload, LiveKeysAreAppliedAndTheRestRefusedByName) {
    const auto a = cfg::parse(with(""));
    const auto b = cfg::parse(with("garp.refresh_ms = 4321\nnode.priority = 150\nport.device = \"net_null1\"\n"
                                   "addresses.primary = \"169.254.10.110/24\"\ndetect.miss = 7\ncontrol.log_level = \"debug\"\n"
                                   "hooks.timeout_ms = 500\nengine.burst = 8\n"));
    ASSERT_TRUE(a.cfg && b.cfg) << all_errors(b);
    const auto plan = cfg::plan_reload(*a.cfg, *b.cfg);
    EXPECT_EQ(plan.applied, (std::vector<std::string>{"node.priority", "detect.miss", "garp.refresh_ms", "hooks.timeout_ms",
                                                      "control.log_level"}));
    EXPECT_EQ(plan.refused, (std::vector<std::string>{"port.device", "addresses", "engine.burst"}));
    const auto& r = plan.result;
    EXPECT_EQ(r.garp.refresh_ms, 4321u);
    EXPECT_EQ(r.groups[0].priority, 150) << "the one group's rank follows node.priority";
    EXPECT_EQ(r.detect.miss, 7u);
    EXPECT_EQ(r.port.device, "net_null0") << "refused: the running value stays";
    EXPECT_EQ(r.addresses.primary.addr.to_string(), "169.254.10.100");
    EXPECT_EQ(r.groups[0].addresses.primary.addr.to_string(), "169.254.10.100");
    EXPECT_EQ(r.engine.burst, a.cfg->engine.burst);
    EXPECT_TRUE(cfg::validate(r).empty());
}

TEST(ConfigReload, TheSameFileChangesNothing) {
    const auto a = cfg::parse(with("protocol.preempt = true\n"));
    ASSERT_TRUE(a.cfg);
    const auto plan = cfg::plan_reload(*a.cfg, *a.cfg);
    EXPECT_TRUE(plan.applied.empty());
    EXPECT_TRUE(plan.refused.empty());
    EXPECT_EQ(plan.result, *a.cfg);
}

TEST(ConfigReload, GroupsKeepTheirAddressesAndTakeRankAndPreempt) {
    const std::string groups = "-addresses.primary\n-addresses.monitor\n"
                               "[[group]]\nid = 1\nprimary = \"169.254.10.100/24\"\nmonitor = \"169.254.10.101/24\"\n"
                               "[[group]]\nid = 2\nprimary = \"169.254.10.110/24\"\nmonitor = \"169.254.10.111/24\"\n";
    const auto a = cfg::parse(with(groups));
    auto changed = groups;
    changed.replace(changed.find("id = 2\n"), 7, "id = 2\npriority = 190\npreempt = true\nname = \"VI_2\"\n");
    changed.replace(changed.find("169.254.10.111/24"), 17, "169.254.10.112/24");
    const auto b = cfg::parse(with(changed));
    ASSERT_TRUE(a.cfg && b.cfg) << all_errors(a) << all_errors(b);
    const auto plan = cfg::plan_reload(*a.cfg, *b.cfg);
    EXPECT_EQ(plan.applied, (std::vector<std::string>{"group[1].name", "group[1].priority", "group[1].preempt"}));
    EXPECT_EQ(plan.refused, (std::vector<std::string>{"group[1].monitor"}));
    EXPECT_EQ(plan.result.groups[1].priority, 190);
    EXPECT_TRUE(plan.result.groups[1].preempt);
    EXPECT_EQ(plan.result.groups[1].addresses.monitor.addr.to_string(), "169.254.10.111");

    const auto fewer = cfg::parse(with(groups.substr(0, groups.find("[[group]]\nid = 2"))));
    ASSERT_TRUE(fewer.cfg) << all_errors(fewer);
    EXPECT_EQ(cfg::plan_reload(*a.cfg, *fewer.cfg).refused, (std::vector<std::string>{"group"}));
}

// [[state]] (issue 10): defaults, the region's default path, and a reload that changes a
// store is refused (the region and its peers' copies would no longer match).
TEST(ConfigState, StoresParseWithDefaultsAndTheirPath) {
    const auto r = cfg::parse(with("[[state]]\nname = \"sessions\"\n[[state]]\nname = \"books\"\nrecords = 1000000\n"
                                   "key_max = 16\nvalue_max = 16\nmode = \"async\"\ngroup = 1\nqueue = 4096\n"
                                   "path = \"/dev/shm/books\"\nlog_mb = 64\n"));
    ASSERT_TRUE(r.cfg) << all_errors(r);
    ASSERT_EQ(r.cfg->state.size(), 2u);
    const auto& a = r.cfg->state[0];
    EXPECT_EQ(a.records, 65536u);
    EXPECT_EQ(a.key_max, 64u);
    EXPECT_EQ(a.value_max, 256u);
    EXPECT_EQ(a.mode, cfg::state_mode::sync);
    EXPECT_EQ(a.queue, 1024u);
    EXPECT_EQ(cfg::state_path("node-a", a), "/dev/shm/heartwire-node-a-sessions");
    const auto& b = r.cfg->state[1];
    EXPECT_EQ(b.records, 1000000u);
    EXPECT_EQ(b.mode, cfg::state_mode::async);
    EXPECT_EQ(cfg::state_path("node-a", b), "/dev/shm/books");
    EXPECT_TRUE(cfg::parse(with("[[state]]\nname = \"s\"\nkey_max = 76\nvalue_max = 900\n")).cfg) << "976 bytes: one frame";
}

TEST(ConfigState, AReloadThatChangesAStoreIsRefused) {
    const auto a = cfg::parse(with("[[state]]\nname = \"s\"\n"));
    const auto b = cfg::parse(with("[[state]]\nname = \"s\"\nrecords = 10\n"));
    ASSERT_TRUE(a.cfg && b.cfg);
    const auto plan = cfg::plan_reload(*a.cfg, *b.cfg);
    EXPECT_EQ(plan.refused, std::vector<std::string>{"state"});
    EXPECT_EQ(plan.result.state[0].records, 65536u);
}
