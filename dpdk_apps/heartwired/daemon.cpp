#include "daemon.hpp"

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <thread>

#include <rte_eal.h>
#include <rte_lcore.h>

#include "control/ctl_socket.hpp"
#include "control/hooks.hpp"
#include "control/log.hpp"
#include "control/netlink.hpp"
#include "dpdk/clock.hpp"
#include "dpdk/eal.hpp"
#include "dpdk/engine.hpp"
#include "dpdk/port.hpp"
#include "status.hpp"

namespace heartwire::app {

namespace {

std::atomic<io::engine*> g_engine{nullptr};
std::atomic<bool> g_stop{false};

void on_signal(int) {
    g_stop.store(true, std::memory_order_relaxed);
    if (auto* e = g_engine.load(std::memory_order_relaxed)) e->request_stop();
}

void install_signals() {
    struct sigaction sa{};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
    signal(SIGPIPE, SIG_IGN);
}

int lcore_rtc(void* arg) { return static_cast<io::engine*>(arg)->run_to_completion(); }
int lcore_role(void* arg) { return static_cast<io::engine*>(arg)->run_role(); }

std::string fmt(const char* f, auto... args) {
    char buf[512];
    std::snprintf(buf, sizeof buf, f, args...);
    return buf;
}

// Everything slow: netlink, hooks, logs, the control socket. Runs on its own thread, off
// the engine's cores.
class control_loop {
public:
    control_loop(const cfg::config& c, io::engine& e)
        : c_(c), e_(e), hooks_(std::chrono::milliseconds{c.hooks.timeout_ms}) {
        if (c.port.mode == cfg::address_mode::shared) nl_ = std::make_unique<control::netlink>();
        ctl_ = std::make_unique<control::ctl_server>(c.control.socket,
                                                     [this](std::string_view req) { return handle(req); });
    }

    // Shared mode starts from a clean slate: a previous run killed with SIGKILL may have
    // left our addresses on the kernel interface.
    void clear_stale_addresses() {
        if (!nl_) return;
        // Both addresses share a subnet: without promotion, releasing the monitor address
        // (the subnet's first) would make the kernel drop the primary address with it.
        const std::string promote = "/proc/sys/net/ipv4/conf/" + c_.port.kernel_interface + "/promote_secondaries";
        if (FILE* f = std::fopen(promote.c_str(), "w")) {
            std::fputs("1", f);
            std::fclose(f);
        } else {
            log::write(log::level::warn, "cannot set " + promote + ": releasing the monitor address may drop the primary one");
        }
        for (const auto& a : {c_.addresses.primary, c_.addresses.monitor}) {
            if (nl_->has_address(c_.port.kernel_interface, a.addr) == 1) {
                nl_->del_address(c_.port.kernel_interface, a);
                log::write(log::level::warn, "removed stale " + a.to_string() + " from " + c_.port.kernel_interface);
            }
        }
    }

    void run(const std::atomic<bool>& engine_running) {
        while (engine_running.load(std::memory_order_acquire)) turn(std::chrono::milliseconds{1});
        // The engine has stopped: carry out its last actions (address release) and hooks.
        turn(std::chrono::milliseconds{0});
        hooks_.wait_all();
        hooks_.poll([this](const control::hook_result& r) { on_hook_done(r); });
    }

private:
    void turn(std::chrono::milliseconds wait) {
        e_.poll_events([this](const io::control_event& ev) { on_event(ev); });
        hooks_.poll([this](const control::hook_result& r) { on_hook_done(r); });
        ctl_->poll(wait);
    }

    void on_event(const io::control_event& ev) {
        const auto& a = ev.a;
        using fsm::action_kind;
        switch (a.kind) {
        case action_kind::role_changed:
            log::write_at(log::level::info, ev.wall_ns, fmt("role %s -> %s (epoch %llu)", std::string(to_string(a.from)).c_str(),
                                             std::string(to_string(a.to)).c_str(),
                                             static_cast<unsigned long long>(a.epoch)));
            notify(a.to, a.epoch);
            break;
        case action_kind::claim_address:
        case action_kind::release_address: {
            const bool add = a.kind == action_kind::claim_address;
            const auto prefix = a.which == fsm::address_id::primary ? c_.addresses.primary : c_.addresses.monitor;
            log::write_at(log::level::info, ev.wall_ns, fmt("%s %s address %s", add ? "claimed" : "released",
                                             std::string(fsm::to_string(a.which)).c_str(), prefix.to_string().c_str()));
            if (nl_) {
                const int rc = add ? nl_->add_address(c_.port.kernel_interface, prefix)
                                   : nl_->del_address(c_.port.kernel_interface, prefix);
                if (rc != 0)
                    log::write_at(log::level::error, ev.wall_ns, fmt("netlink %s %s on %s: %s", add ? "add" : "del",
                                                      prefix.to_string().c_str(), c_.port.kernel_interface.c_str(),
                                                      std::strerror(-rc)));
            }
            break;
        }
        case action_kind::takeover: {
            const std::uint64_t det = a.decided_ns - a.last_answer_ns;
            takeovers_.push_back({a.peer_id, ev.wall_ns, det});
            if (takeovers_.size() > 64) takeovers_.pop_front();
            log::write_at(log::level::warn, ev.wall_ns, fmt("primary %u failed: no answer for %.1f us, taking over", a.peer_id,
                                             static_cast<double>(det) / 1000.0));
            break;
        }
        case action_kind::run_hook: {
            const std::string& path = a.hook == fsm::hook_kind::fence ? c_.hooks.fence : c_.hooks.boot_peer;
            log::write_at(log::level::info, ev.wall_ns, fmt("running %s for node %u", std::string(fsm::to_string(a.hook)).c_str(),
                                             a.peer_id));
            const auto id = hooks_.run(std::string(fsm::to_string(a.hook)),
                                       {path, std::to_string(a.peer_id), a.peer_mac.to_string()}, env());
            pending_[id] = a.hook;
            break;
        }
        default:
            break;
        }
    }

    std::vector<std::string> env() const {
        return {"HEARTWIRE_NODE=" + c_.node.name, "HEARTWIRE_NODE_ID=" + std::to_string(c_.node.id),
                "HEARTWIRE_PRIMARY=" + c_.addresses.primary.to_string(),
                "HEARTWIRE_MONITOR=" + c_.addresses.monitor.to_string()};
    }

    void notify(role r, std::uint64_t epoch) {
        const std::string name(to_string(r));
        if (!c_.hooks.notify.empty())
            hooks_.run("notify", {c_.hooks.notify, name, std::to_string(epoch), c_.node.name}, env());
        const std::string* specific = r == role::primary   ? &c_.hooks.on_primary
                                      : r == role::monitor ? &c_.hooks.on_monitor
                                      : r == role::standby ? &c_.hooks.on_standby
                                      : r == role::fault   ? &c_.hooks.on_fault
                                                           : nullptr;
        if (specific && !specific->empty()) hooks_.run("on_" + name, {*specific, std::to_string(epoch)}, env());
    }

    void on_hook_done(const control::hook_result& r) {
        const auto lvl = r.ok() ? log::level::info : log::level::warn;
        log::write(lvl, fmt("hook %s finished: %s", r.name.c_str(),
                            r.spawn_failed ? r.error.c_str()
                            : r.timed_out  ? "timed out"
                                           : ("exit " + std::to_string(r.exit_code)).c_str()));
        auto it = pending_.find(r.id);
        if (it == pending_.end()) return;
        io::engine_command cmd;
        cmd.hook = it->second;
        cmd.ok = r.ok();
        pending_.erase(it);
        if (!e_.post(cmd)) log::write(log::level::error, "engine command ring full: hook result lost");
    }

    std::string handle(std::string_view req) {
        const status_inputs in{c_, e_, takeovers_};
        if (req == "status") return "ok\n" + status_text(in);
        if (req == "status json") return status_json(in) + "\n";
        return "error: unknown command '" + std::string(req) + "' (try: status, status json)\n";
    }

    const cfg::config& c_;
    io::engine& e_;
    control::hook_runner hooks_;
    std::unique_ptr<control::netlink> nl_;
    std::unique_ptr<control::ctl_server> ctl_;
    std::deque<takeover_record> takeovers_;
    std::map<std::uint64_t, fsm::hook_kind> pending_;
};

// The control thread must not sit on an engine core: give it every CPU we started with.
void unpin(const cpu_set_t& original) { pthread_setaffinity_np(pthread_self(), sizeof original, &original); }

} // namespace

int run_daemon(const cfg::config& c, const std::vector<std::string>& extra) {
    log::level lvl;
    if (log::parse_level(c.control.log_level, lvl)) log::set_level(lvl);
    cpu_set_t original;
    CPU_ZERO(&original);
    sched_getaffinity(0, sizeof original, &original);

    std::unique_ptr<io::port> port;
    std::unique_ptr<io::engine> engine;
    std::unique_ptr<control_loop> control;
    io::tsc_clock clock;
    try {
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
        port = std::make_unique<io::port>(po);
        engine = std::make_unique<io::engine>(c, *port, clock);
        control = std::make_unique<control_loop>(c, *engine);
        control->clear_stale_addresses();
        if (c.engine.mode == cfg::lcore_mode::pipelined && rte_lcore_count() < 2)
            throw io::setup_error("engine.mode = \"pipelined\" needs two lcores: give [port] eal \"-l\", \"0,1\"");
    } catch (const std::exception& ex) {
        std::fprintf(stderr, "heartwired: %s\n", ex.what());
        control.reset();
        engine.reset();
        port.reset();
        io::eal_cleanup();
        return 1;
    }

    log::write(log::level::info, fmt("%s (id %u) on %s mac %s, %s, interval %u us x %u", c.node.name.c_str(), c.node.id,
                                     c.port.device.c_str(), port->mac().to_string().c_str(),
                                     std::string(cfg::to_string(c.engine.mode)).c_str(), c.detect.interval_us,
                                     c.detect.miss));
    g_engine.store(engine.get());
    install_signals();
    if (g_stop.load()) engine->request_stop();

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
    running.store(false, std::memory_order_release);
    ctl.join();
    g_engine.store(nullptr);
    log::write(log::level::info, "stopped; addresses released");
    control.reset();
    engine.reset();
    port->stop();
    port.reset();
    io::eal_cleanup();
    return rc;
}

} // namespace heartwire::app
