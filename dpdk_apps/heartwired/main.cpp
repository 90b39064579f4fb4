// heartwired: the heartwire daemon. Thin main: arguments, config, then run_daemon().

#include <sys/resource.h>

#include <cstdio>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <rte_version.h>

#include "check.hpp"
#include "daemon.hpp"
#include "heartwire/config.hpp"

namespace {
constexpr int exit_usage = 64; // sysexits.h EX_USAGE
} // namespace

int main(int argc, char** argv) {
    CLI::App app{"heartwired: kernel-bypass high-availability heartbeat engine.\n"
                 "Probes the primary at microsecond intervals on a DPDK port and moves the primary\n"
                 "address with gratuitous ARP when it fails. EAL arguments go in [port] eal or after --.",
                 "heartwired"};
    std::string config_path;
    bool check_only = false;
    std::vector<std::string> eal_extra;
    app.add_option("-c,--config", config_path, "TOML configuration file")->required();
    bool check_timing = false;
    app.add_flag("--check", check_only, "validate the configuration and what it names (files, interfaces, EAL) and exit");
    app.add_flag("--check-timing", check_timing,
                 "with --check: also measure this host's stall floor on the engine's core (a 200 ms spin there: "
                 "not beside a running engine) against the detection window");
    bool release = false;
    app.add_flag("--release-addresses", release,
                 "shared mode: remove every address of the configuration's groups from the kernel and exit "
                 "(systemd's ExecStopPost, after a crash); refused while a heartwired runs on the port");
    app.add_option("eal", eal_extra, "extra EAL arguments, after --");
    app.set_version_flag("-V,--version", std::string("heartwired ") + HEARTWIRE_VERSION + " (" + rte_version() + ")");
    app.allow_extras(false);
    app.footer("Exit status: 0 ok (a clean stop), 2 configuration error, 1 setup or run-time failure\n"
               "(EAL, port, hugepages, a lost engine), 64 bad usage.");
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        // --help and --version are CLI11's "errors" too, with exit code 0.
        return app.exit(e) == 0 ? 0 : exit_usage;
    }

    auto r = heartwire::cfg::load_file(config_path);
    if (!r.errors.empty()) {
        for (const auto& e : r.errors) {
            const std::string msg = e.to_string();
            if (msg.find(config_path) != std::string::npos)
                std::fprintf(stderr, "heartwired: config error: %s\n", msg.c_str());
            else
                std::fprintf(stderr, "heartwired: config error in %s: %s\n", config_path.c_str(), msg.c_str());
        }
        return 2;
    }
    if (release) return heartwire::app::release_addresses(*r.cfg);
    // What would only fail at run time: files, timing, EAL arguments (check.hpp).
    auto problems = heartwire::app::runtime_problems(*r.cfg, eal_extra);
    if (check_only && check_timing) {
        const auto floor = heartwire::app::stall_floor_problems(*r.cfg);
        problems.insert(problems.end(), floor.begin(), floor.end());
    }
    // The host's own problems (an interface that is not there) are setup errors, exit 1;
    // at start the daemon's pre-flight reports them itself, with the same code.
    bool config_failed = false, setup_failed = false;
    for (const auto& p : problems) {
        if (p.setup && !check_only) continue;
        std::fprintf(stderr, "heartwired: %s in %s: %s: %s\n", !p.error ? "warning" : p.setup ? "setup error" : "config error",
                     config_path.c_str(), p.key.c_str(), p.what.c_str());
        (p.setup ? setup_failed : config_failed) |= p.error;
    }
    if (config_failed) return 2;
    if (setup_failed) return 1;
    if (check_only) {
        std::printf("%s: ok\n", config_path.c_str());
        return 0;
    }
    // af_xdp maps its UMEM and loads XDP programs: both count against the locked-memory limit.
    rlimit unlimited{RLIM_INFINITY, RLIM_INFINITY};
    setrlimit(RLIMIT_MEMLOCK, &unlimited);
    return heartwire::app::run_daemon(*r.cfg, eal_extra, config_path);
}
