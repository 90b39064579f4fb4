// heartwire embedded in a DPDK application (issue 9 item 3): heartwire installed into a
// temporary prefix, the example service (examples/embedded, a DPDK UDP echo) built from the
// installed headers and library with pkg-config, two instances of it on af_xdp in two
// namespaces, a client streaming UDP requests at the primary address, and the primary
// SIGKILLed: the survivor takes over and answers, and the client sees only the takeover gap.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "cluster.hpp"

using namespace heartwire::e2e;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

std::string slurp(const fs::path& p) {
    std::ifstream in(p);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

// `meson install --destdir` of this build tree, then the example's Makefile with
// PKG_CONFIG_PATH at the staged heartwire.pc. Returns the binary ("" and `why` on failure).
std::string install_and_build(const std::string& dir, std::string& why) {
    const std::string stage = dir + "/stage";
    const auto inst = run({"meson", "install", "-C", HEARTWIRE_BUILD_ROOT, "--no-rebuild", "--quiet", "--destdir", stage});
    if (!inst.ok()) {
        why = "meson install --destdir " + stage + " failed:\n" + inst.out + inst.err;
        return {};
    }
    fs::path pc;
    for (const auto& e : fs::recursive_directory_iterator(stage))
        if (e.path().filename() == "heartwire.pc") pc = e.path();
    if (pc.empty()) {
        why = "no heartwire.pc under " + stage;
        return {};
    }
    std::string pc_dir = pc.parent_path();
    // A build configured before pkgconfig.relocatable (meson.build) wrote an absolute prefix:
    // point a copy of the file at the staged tree, as a packager's staging would.
    std::string text = slurp(pc);
    if (!text.starts_with("prefix=${pcfiledir}")) {
        const auto eol = text.find('\n');
        text = "prefix=" + stage + text.substr(7, eol - 7) + text.substr(eol);
        pc_dir = dir + "/pkgconfig";
        fs::create_directories(pc_dir);
        std::ofstream(pc_dir + "/heartwire.pc") << text;
    }
    const std::string bin_dir = dir + "/bin";
    const auto mk = run({"make", "-s", "-C", std::string(HEARTWIRE_SOURCE_ROOT) + "/examples/embedded", "BUILDDIR=" + bin_dir,
                         "PKG_CONFIG_PATH=" + pc_dir});
    if (!mk.ok()) {
        why = "make of examples/embedded against " + pc_dir + " failed:\n" + mk.out + mk.err;
        return {};
    }
    return bin_dir + "/hw-embedded-echo";
}

// heartwire-load at the primary address from the client, UDP only.
exec_result load(cluster& c, const std::string& args) {
    return c.net().exec_on(topology::client, std::string(LOAD_PATH) + " --target " + primary_ip +
                                                 " --port 7000 --udp-only --udp-interval-us 1000 --timeout-ms 500 " + args);
}

} // namespace

TEST(Embedded, EchoServiceBuiltFromTheInstalledLibraryFailsOverWithOnlyTheTakeoverGap) {
    // The test command runs as root (scripts/test.sh); without root this is a failure, not a skip.
    ASSERT_EQ(geteuid(), 0u) << "needs root (namespaces, af_xdp): run scripts/test.sh as root";
    cluster c({"a", "b"});
    std::string why;
    const auto t0 = std::chrono::steady_clock::now();
    const std::string bin = install_and_build(c.dir(), why);
    ASSERT_FALSE(bin.empty()) << why;
    std::printf("installed heartwire and built the example with pkg-config in %.1f s\n",
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());

    // heartwired's own config files: the embedded node ignores [port] eal (the example
    // starts EAL) and reads the kernel interface it watches from [port] device.
    std::map<std::string, std::string> config;
    for (const auto& [n, id] : {std::pair{"a", 1u}, std::pair{"b", 2u}}) {
        node_options o;
        o.pmd = "net_af_xdp";
        config[n] = c.write_config(n, id, o);
    }
    std::map<std::string, std::unique_ptr<process>> app;
    const auto start = [&](const std::string& n, const char* core) {
        app[n] = std::make_unique<process>(
            c.net().ns_name(n),
            std::vector<std::string>{bin, "-l", core, "--no-pci", "--no-huge", "-m", "256", "--file-prefix",
                                     "hw" + std::to_string(getpid()) + n, "--log-level", "lib.eal:error", "--vdev",
                                     "net_af_xdp0,iface=eth0", "--", "--config", config[n]},
            c.dir() + "/" + n + ".log");
    };
    const auto logs = [&] {
        std::string all;
        for (const auto& [n, p] : app) all += "---- " + n + " ----\n" + p->log();
        return all;
    };

    start("a", "0");
    ASSERT_TRUE(c.wait_role("a", "primary")) << logs();
    start("b", "1");
    ASSERT_TRUE(c.wait_role("b", "monitor")) << logs();
    {
        const auto r = load(c, "--requests 50");
        ASSERT_TRUE(r.ok()) << "the service answers on the primary address\n" << r.out << r.err << logs();
    }
    EXPECT_EQ(arp_mac(c.net().client_ns(), primary_ip), c.net().mac_of("a")) << "heartwire answered the client's ARP";
    {
        const auto r = run({HEARTWIRECTL_PATH, "--socket", c.socket("a"), "status"});
        EXPECT_TRUE(r.ok() && r.out.find("primary") != std::string::npos) << "heartwirectl against the embedded node\n"
                                                                          << r.out << r.err;
    }

    // A 1-per-ms request stream through the failover.
    process stream(c.net().client_ns(),
                   {LOAD_PATH, "--target", primary_ip, "--port", "7000", "--udp-only", "--udp-interval-us", "1000",
                    "--timeout-ms", "500", "--duration-ms", "3000", "--json"},
                   c.dir() + "/stream.log");
    std::this_thread::sleep_for(1s);
    app["a"]->kill(SIGKILL);
    app["a"]->wait_exit(5s);
    ASSERT_TRUE(c.wait_role("b", "primary", 10s)) << logs();
    ASSERT_TRUE(stream.wait_exit(10s)) << "heartwire-load did not finish";
    const std::string out = stream.log();
    const std::string sent = json_value(out, "sent"), lost = json_value(out, "lost"), gap = json_value(out, "longest_gap_us");
    ASSERT_FALSE(gap.empty()) << out;
    std::printf("client: %s requests, %s lost, longest gap %.1f ms (window %u us x %u)\n", sent.c_str(), lost.c_str(),
                std::stod(gap) / 1000.0, node_options{}.interval_us, node_options{}.miss);
    EXPECT_LT(std::stod(gap), 1'000'000.0) << "the client waited more than a second for the new primary\n" << out << logs();

    {
        const auto r = load(c, "--requests 50");
        EXPECT_TRUE(r.ok()) << "the survivor answers every request\n" << r.out << r.err << logs();
    }
    EXPECT_TRUE(wait_until([&] { return arp_mac(c.net().client_ns(), primary_ip) == c.net().mac_of("b"); }, 5s));
    EXPECT_GE(c.counter("b", "takeovers"), 1u);
    EXPECT_NE(app["b"]->log().find("serving 169.254.10.100/24"), std::string::npos)
        << "the change callback told the application\n" << logs();

    // The killed instance rejoins as monitor, and an operator switchover through heartwirectl
    // (the control socket of the embedded node) hands the address back.
    start("a", "0");
    ASSERT_TRUE(c.wait_role("a", "monitor")) << logs();
    ASSERT_TRUE(wait_until([&] { return json_value(c.status("a").value_or(""), "detector_armed") == "true"; }, 10s));
    {
        const auto r = run({HEARTWIRECTL_PATH, "--socket", c.socket("b"), "switchover"});
        EXPECT_TRUE(r.ok()) << r.out << r.err << logs();
    }
    ASSERT_TRUE(c.wait_role("a", "primary")) << logs();
    EXPECT_TRUE(c.wait_role("b", "monitor")) << logs();
    EXPECT_NE(app["b"]->log().find("no longer serving"), std::string::npos) << "b's callback: the address left\n" << logs();
    {
        const auto r = load(c, "--requests 50");
        EXPECT_TRUE(r.ok()) << "a serves again after the switchover\n" << r.out << r.err << logs();
    }

    // A clean stop: the node releases the address and the application reports it.
    app["a"]->kill(SIGTERM);
    EXPECT_EQ(app["a"]->wait_exit(10s), 0) << logs();
    EXPECT_NE(app["a"]->log().find("no longer serving"), std::string::npos) << logs();
    EXPECT_TRUE(c.wait_role("b", "primary")) << "b takes over on a's release\n" << logs();
}
