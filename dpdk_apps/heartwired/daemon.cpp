#include "daemon.hpp"

#include <fcntl.h>
#include <pthread.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sched.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <cstdio>
#include <memory>
#include <thread>

#include <rte_eal.h>
#include <rte_lcore.h>

#include "control/address_keeper.hpp"
#include "control/guard.hpp"
#include "control/netlink.hpp"
#include "control/log.hpp"
#include "dpdk/clock.hpp"
#include "dpdk/eal.hpp"
#include "dpdk/engine.hpp"
#include "heartwire/state.hpp"
#include "heartwire/auth.hpp"
#include "dpdk/idle_filler.hpp"
#include "dpdk/port.hpp"
#include "dpdk/telemetry.hpp"
#include "control_loop.hpp"

namespace heartwire::app {

namespace {

std::atomic<io::engine*> g_engine{nullptr};
std::atomic<bool> g_stop{false};

std::atomic<unsigned> g_signals{0}; // control_loop::signal_bits, for the control thread

void on_signal(int sig) {
    if (sig == SIGHUP) g_signals.fetch_or(control_loop::sig_reload, std::memory_order_relaxed);
    else if (sig == SIGUSR1) g_signals.fetch_or(control_loop::sig_dump, std::memory_order_relaxed);
    else if (sig == SIGUSR2) g_signals.fetch_or(control_loop::sig_debug, std::memory_order_relaxed);
    else {
        g_stop.store(true, std::memory_order_relaxed);
        if (auto* e = g_engine.load(std::memory_order_relaxed)) e->request_stop();
    }
}

// Every signal an operator sends has an action (heartwired(8)): INT and TERM stop cleanly,
// HUP re-reads the configuration, USR1 writes the status to the log, USR2 toggles debug
// logging; PIPE is ignored (a control client that went away).
void install_signals() {
    struct sigaction sa{};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    for (const int s : {SIGINT, SIGTERM, SIGHUP, SIGUSR1, SIGUSR2}) sigaction(s, &sa, nullptr);
    signal(SIGPIPE, SIG_IGN);
}

int lcore_rtc(void* arg) { return static_cast<io::engine*>(arg)->run_to_completion(); }
int lcore_role(void* arg) { return static_cast<io::engine*>(arg)->run_role(); }

// The engine-down guard (control/guard.hpp). Forked here, before EAL: the process is one
// thread with little memory, so the fork is cheap and the child inherits no DPDK state.
// Without it the peers still take over, after the silence window.
std::unique_ptr<control::guard> start_guard(const cfg::config& c) {
    control::guard_options o;
    // port.notice_interface: "" = the port's own kernel interface, "none" = off.
    o.interface = c.port.notice_interface == "none"  ? std::string{}
                  : !c.port.notice_interface.empty() ? c.port.notice_interface
                                                     : io::kernel_interface(c);
    // Above the poll lcores (ours are dead when it runs, but a neighbour's may share its core).
    o.rt_priority = std::clamp(static_cast<int>(c.engine.rt_priority) + 1, 20, 99);
    if (c.port.mode == cfg::address_mode::shared) {
        // What a dead engine's kernel must stop serving: both addresses, and the primary
        // staged on lo while monitor (control_loop::stage_primary).
        for (const auto& g : control::addresses_of(c))
            for (std::size_t which = 0; which < fsm::address_count; ++which) {
                for (const auto& p : g.v4[which]) {
                    o.release.push_back({g.iface, p});
                    if (which == 0) o.release.push_back({control::address_keeper::loopback, ipv4_prefix{p.addr, 32}});
                }
                for (const auto& p : g.v6[which]) {
                    o.release.push_back({g.iface, {}, true, p});
                    if (which == 0) o.release.push_back({control::address_keeper::loopback, {}, true, ipv6_prefix{p.addr, 128}});
                }
            }
    }
    if (o.interface.empty())
        log::write(log::level::warn, c.port.notice_interface == "none"
                                         ? "engine-down notice off (port.notice_interface = \"none\"): peers rely on the silence window"
                                         : "engine-down notice off: port.device has no kernel interface (net_memif / PCI) "
                                           "and port.notice_interface is not set; peers rely on the silence window");
    try {
        auto g = control::guard::start(o); // shared mode without a notice: it still takes the addresses off after a death
        if (g)
            log::write(log::level::info, "engine-down guard " + std::to_string(g->pid()) + " watching" +
                                             (o.interface.empty() ? ", releases the kernel's addresses if the engine dies"
                                                                  : ", notice on " + o.interface));
        return g;
    } catch (const std::exception& ex) {
        if (!o.interface.empty() && !o.release.empty()) {
            // The notice socket failed (no CAP_NET_RAW, no such interface): a guard that
            // only releases the addresses is still worth having.
            log::write(log::level::warn, std::string("engine-down notice off: ") + ex.what() +
                                             "; peers rely on the silence window");
            o.interface.clear();
            try {
                return control::guard::start(o);
            } catch (const std::exception&) {
            }
        }
        log::write(log::level::warn, std::string("engine-down guard off: ") + ex.what() +
                                         "; peers rely on the silence window" +
                                         (o.release.empty() ? "" : ", and a killed engine's addresses stay on the kernel until the next start"));
        return nullptr;
    }
}

// One heartwired per port: a second one started by mistake on the same interface would
// take the running one's XDP program off (stale-program cleanup) or fight it for the
// queue. The lock lives as long as the process (its fd is never closed), in
// /run/heartwire, named by the network namespace and the port.
int lock_port(const cfg::config& c, std::string& error) {
    struct stat netns{};
    if (::stat("/proc/self/ns/net", &netns) != 0) netns.st_ino = 0;
    std::string port = io::vdev_arg(c.port.device, "iface");
    if (port.empty()) port = c.port.device;
    for (char& ch : port)
        if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '-' && ch != '_' && ch != '.') ch = '_';
    ::mkdir("/run/heartwire", 0755);
    const std::string path = "/run/heartwire/port-" + std::to_string(netns.st_ino) + "-" + port + ".lock";
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return -1; // no /run/heartwire (read-only /run): no lock, as before
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
        char pid[32] = "";
        [[maybe_unused]] auto n = ::pread(fd, pid, sizeof pid - 1, 0);
        error = "another heartwired (pid " + std::string(pid[0] ? pid : "?") + ") already uses " + c.port.device +
                " in this network namespace (" + path + " is locked)";
        ::close(fd);
        return -2;
    }
    const std::string me = std::to_string(::getpid());
    [[maybe_unused]] auto t = ::ftruncate(fd, 0);
    [[maybe_unused]] auto w = ::pwrite(fd, me.data(), me.size(), 0);
    return fd;
}

} // namespace

int release_addresses(const cfg::config& c) {
    if (c.port.mode != cfg::address_mode::shared) {
        std::printf("heartwired: exclusive mode: the kernel holds none of heartwire's addresses\n");
        return 0;
    }
    std::string busy;
    if (lock_port(c, busy) == -2) {
        std::fprintf(stderr, "heartwired: %s: not touching its addresses\n", busy.c_str());
        return 1;
    }
    try {
        control::netlink nl;
        control::address_keeper k(control::addresses_of(c), nl);
        const unsigned n = k.release_all();
        std::printf("heartwired: %u address(es) of %s removed from the kernel\n", n, c.node.name.c_str());
        return 0;
    } catch (const std::exception& ex) {
        std::fprintf(stderr, "heartwired: %s\n", ex.what());
        return 1;
    }
}

namespace {

// The control thread must not sit on an engine core: give it every CPU we started with.
void unpin(const cpu_set_t& original) { pthread_setaffinity_np(pthread_self(), sizeof original, &original); }

// No page fault in the poll loop: lock what EAL, the port and the engine have mapped, once
// they have. Only MCL_CURRENT: with MCL_FUTURE every later mapping past RLIMIT_MEMLOCK fails
// outright (a process started from a hook here inherits 8 MiB and cannot raise it).
void lock_memory(const cfg::config& c) {
    if (!c.engine.lock_memory) return;
    if (mlockall(MCL_CURRENT) == 0) return;
    rlimit rl{};
    getrlimit(RLIMIT_MEMLOCK, &rl);
    log::write(log::level::warn,
               "engine.lock_memory: mlockall failed (" + std::string(std::strerror(errno)) + ", RLIMIT_MEMLOCK " +
                   (rl.rlim_cur == RLIM_INFINITY ? std::string("unlimited") : std::to_string(rl.rlim_cur >> 10) + " KiB") +
                   "): page faults can stall the poll loop; raise LimitMEMLOCK / ulimit -l");
}

// The core layout the README asks for: the poll lcore(s) on their own core(s), everything
// else (control, EAL, hooks, guard) on the process's other CPUs. Says which it is.
void report_core_layout(const cpu_set_t& original) {
    cpu_set_t poll;
    CPU_ZERO(&poll);
    unsigned lc;
    char lcores[128] = "";
    RTE_LCORE_FOREACH(lc) {
        const int cpu = rte_lcore_to_cpu_id(static_cast<int>(lc));
        if (cpu < 0) continue;
        CPU_SET(static_cast<unsigned>(cpu), &poll);
        const std::size_t used = std::strlen(lcores);
        std::snprintf(lcores + used, sizeof lcores - used, "%s%d", used ? "," : "", cpu);
    }
    cpu_set_t rest;
    CPU_XOR(&rest, &original, &poll);
    CPU_AND(&rest, &rest, &original);
    char line[400];
    if (CPU_COUNT(&rest) == 0)
        std::snprintf(line, sizeof line,
                      "core layout: poll lcore on CPU %s; no other CPU in this process's set, so the control, EAL "
                      "and guard threads share it and run in its yields (give the daemon a housekeeping CPU "
                      "where the machine has one)",
                      lcores);
    else
        std::snprintf(line, sizeof line, "core layout: poll lcore on CPU %s, control and EAL threads on %d other CPU(s)",
                      lcores, CPU_COUNT(&rest));
    log::write(log::level::info, line);
}

} // namespace

int run_daemon(const cfg::config& c, const std::vector<std::string>& extra, const std::string& config_path) {
    log::level lvl;
    if (log::parse_level(c.control.log_level, lvl)) log::set_level(lvl);
    log::use_journal_if_connected(); // under systemd: journal entries with priority and fields
    cpu_set_t original;
    CPU_ZERO(&original);
    sched_getaffinity(0, sizeof original, &original);
    // Keys first: a missing or readable-by-others key file stops the daemon before it touches
    // the port, with the reason.
    std::vector<auth::key> keys;
    if (c.auth.mode == cfg::auth_mode::keyed) {
        auto kr = auth::load_key_file(c.auth.key_file);
        if (!kr.ok()) {
            std::fprintf(stderr, "heartwired: auth.key_file: %s\n", kr.error.c_str());
            return 1;
        }
        keys = std::move(kr.keys);
    } else {
        log::write(log::level::warn, "auth.mode = \"none\": heartwire frames are not authenticated; any host on the "
                                     "segment can move the address");
    }
    // Declared first, so destroyed last: any return below is an orderly exit (disarm_clean).
    // This thread locks the guard's mutex; it is also the poll (or, pipelined, RX) lcore.
    const std::unique_ptr<control::guard> guard = start_guard(c);

    std::unique_ptr<io::port> port;
    std::vector<std::unique_ptr<state::region>> regions; // outlive the engine that writes them
    std::unique_ptr<io::engine> engine;
    std::unique_ptr<control_loop> control;
    io::tsc_clock clock;
    io::idle_filler filler; // stopped when run_daemon returns, after the loops
    try {
        std::string lock_error;
        if (lock_port(c, lock_error) == -2) throw io::setup_error(lock_error);
        const auto argv = io::eal_argv(c, extra);
        io::preflight(c, argv);
        io::eal_init(argv);
    } catch (const std::exception& ex) {
        std::fprintf(stderr, "heartwired: %s\n", ex.what());
        return 1;
    }
    int rc = 0;
    try {
        clock.calibrate();
        io::port_options po;
        po.device_name = io::port_name(c.port.device);
        po.rx_desc = c.port.rx_desc;
        po.tx_desc = c.port.tx_desc;
        po.mbufs = c.port.mbufs;
        po.flow_isolate = c.port.flow_isolate;
        if (po.flow_isolate) // one steering rule for each VLAN the groups' heartbeats use
            for (const auto& g : c.groups)
                if (std::find(po.flow_vlans.begin(), po.flow_vlans.end(), g.vlan) == po.flow_vlans.end())
                    po.flow_vlans.push_back(static_cast<std::uint16_t>(g.vlan));
        port = std::make_unique<io::port>(po);
        engine = std::make_unique<io::engine>(c, *port, clock);
        if (guard) engine->set_death_notice(guard->notice());
        // The replicated stores (issue 10): each region made afresh (an older file goes; an
        // application that still maps it sees client::replaced()), then handed to the engine.
        for (std::size_t i = 0; i < c.state.size(); ++i) {
            const auto& sc = c.state[i];
            state::region_geometry g;
            g.table = replica::table_geometry::for_records(sc.records, sc.key_max, sc.value_max);
            g.cells = sc.queue;
            std::string err;
            const std::string path = cfg::state_path(c.node.name, sc);
            auto r = state::region::create(path, g, sc.mode == cfg::state_mode::sync, err);
            if (!r) throw io::setup_error("state." + sc.name + ": " + err);
            engine->add_store(i, *r);
            log::write(log::level::info, "state " + sc.name + ": " + path + " (" + std::to_string(sc.records) + " records, " +
                                             std::string(cfg::to_string(sc.mode)) + ", " +
                                             std::to_string(g.bytes() >> 20) + " MiB)");
            regions.push_back(std::move(r));
        }
        lock_memory(c);
        if (c.engine.idle_filler) {
            std::vector<unsigned> cpus;
            unsigned lc;
            RTE_LCORE_FOREACH(lc) cpus.push_back(rte_lcore_to_cpu_id(static_cast<int>(lc)));
            filler.start(cpus);
        }
        // A NIC with link interrupts: the EAL interrupt thread posts the change to the
        // engine (a kernel interface's carrier is watched by the control thread instead).
        if (port->has_lsc()) {
            port->on_link(
                [](void* e, bool up) {
                    io::engine_command cmd;
                    cmd.k = io::engine_command::kind::command;
                    cmd.cmd = fsm::command_kind::link;
                    cmd.arg = up ? 1 : 0;
                    static_cast<io::engine*>(e)->post(cmd);
                },
                engine.get());
            if (!port->link_up()) {
                io::engine_command cmd;
                cmd.k = io::engine_command::kind::command;
                cmd.cmd = fsm::command_kind::link;
                cmd.arg = 0;
                engine->post(cmd);
            }
        }
        control = std::make_unique<control_loop>(c, *engine, std::move(keys));
        control->prepare_kernel_interface();
        // A port with neither link interrupts nor a kernel interface (memif: its link comes
        // up only once the peer process has connected, a few tens of ms after start). Its
        // link down says "no peer yet", not "cable cut", so it is not the engine's link
        // state; but discovery on a port that carries nothing yet would claim what the peer
        // already holds. Wait for the link up to 1 s, then start either way (a lone node).
        if (!port->has_lsc() && io::kernel_interface(c).empty()) {
            for (int i = 0; i < 200 && !port->link_up(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds{5});
            if (!port->link_up()) log::write(log::level::info, "link of " + c.port.device + " not up after 1 s (no peer connected yet): starting");
        }
        if (c.engine.mode == cfg::lcore_mode::pipelined && rte_lcore_count() < 2)
            throw io::setup_error("engine.mode = \"pipelined\" needs two lcores: give [port] eal \"-l\", \"0,1\"");
    } catch (const std::exception& ex) {
        std::fprintf(stderr, "heartwired: %s\n", ex.what());
        control.reset();
        if (port) port->stop_link_events();
        engine.reset();
        port.reset();
        io::eal_cleanup();
        return 1;
    }

    char line[320];
    std::snprintf(line, sizeof line, "%s (id %u) on %s mac %s, %s, interval %u us x %u", c.node.name.c_str(), c.node.id,
                  c.port.device.c_str(), port->mac().to_string().c_str(),
                  std::string(cfg::to_string(c.engine.mode)).c_str(), c.detect.interval_us, c.detect.miss);
    log::write(log::level::info, line);
    report_core_layout(original);
    g_engine.store(engine.get());
    if (io::register_telemetry(engine.get()) != 0)
        log::write(log::level::warn, "DPDK telemetry endpoints /heartwire/* not registered");
    install_signals();
    if (g_stop.load()) engine->request_stop();

    control->watch_signals(&g_signals, config_path, extra);
    std::atomic<bool> running{true};
    std::thread ctl([&] {
        unpin(original);
        control->run(running);
    });

    if (c.engine.mode == cfg::lcore_mode::pipelined) {
        const unsigned worker = rte_get_next_lcore(-1, 1, 0);
        rte_eal_remote_launch(lcore_role, engine.get(), worker);
        engine->run_rx();
        rte_eal_wait_lcore(worker);
    } else {
        rc = lcore_rtc(engine.get());
    }
    // The role loop has sent its release frame: an engine_down now would be a false alarm.
    if (guard) guard->disarm_clean();
    running.store(false, std::memory_order_release);
    ctl.join();
    g_engine.store(nullptr);
    io::unregister_telemetry();
    log::write(log::level::info, "stopped; addresses released");
    control.reset();
    port->stop_link_events(); // the LSC callback posts to the engine
    engine.reset();
    port->stop();
    port.reset();
    io::eal_cleanup();
    return rc;
}

} // namespace heartwire::app
