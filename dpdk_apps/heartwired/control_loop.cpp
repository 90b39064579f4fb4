#include "control_loop.hpp"
#include "metrics_view.hpp"
#include "check.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <sstream>
#include <thread>

#include <sys/stat.h>

#include "control/log.hpp"
#include "control/text.hpp"
#include "dpdk/eal.hpp"

namespace heartwire::app {

namespace {

using control::fmt;
using control::s;

std::string conf_path(const std::string& ifname, const char* key) {
    return "/proc/sys/net/ipv4/conf/" + ifname + "/" + key;
}

// net.ipv4.conf.<ifname>.<key> of this network namespace: the value, or -errno.
int read_conf(const std::string& ifname, const char* key) {
    FILE* f = std::fopen(conf_path(ifname, key).c_str(), "r");
    if (!f) return -errno;
    int v = -1;
    const bool ok = std::fscanf(f, "%d", &v) == 1 && v >= 0;
    std::fclose(f);
    return ok ? v : -EINVAL;
}

// 0 or -errno.
int write_conf(const std::string& ifname, const char* key, int v) {
    FILE* f = std::fopen(conf_path(ifname, key).c_str(), "w");
    if (!f) return -errno;
    const bool ok = std::fprintf(f, "%d", v) > 0;
    const bool closed = std::fclose(f) == 0; // the kernel refuses a value at write-back
    return ok && closed ? 0 : -EINVAL;
}

// The kernel applies the larger of conf/all/<key> and conf/<ifname>/<key> for both.
int effective_conf(const std::string& ifname, const char* key) {
    const int all = read_conf("all", key);
    const int dev = read_conf(ifname, key);
    if (all < 0) return all;
    if (dev < 0) return dev;
    return std::max(all, dev);
}

// arp_ignore 1 (reply only for addresses on the incoming interface), 2 (and only to senders
// of its subnets) and 8 (never) keep an address on lo out of ARP; 0, 3 (its scope is
// global) and 4-7 (reserved: reply) do not.
bool arp_ignores_lo(int v) { return v == 1 || v == 2 || v == 8; }

// LVS-DR's two settings on the kernel interface, so that an address held on lo is served
// but never named in ARP: arp_ignore (do not answer requests for it) and arp_announce = 2
// (never use it as the sender address of our own requests: a client updates its cache from
// a request it receives, and would be led to the monitor). A stricter value the operator set
// is kept. Empty when both hold, else what is wrong.
std::string quiet_arp_for_lo(const std::string& ifname) {
    if (!arp_ignores_lo(effective_conf(ifname, "arp_ignore"))) {
        write_conf(ifname, "arp_ignore", 1);
        const int v = effective_conf(ifname, "arp_ignore");
        if (!arp_ignores_lo(v))
            return v < 0 ? "cannot read " + conf_path(ifname, "arp_ignore") + ": " + std::strerror(-v)
                         : "net.ipv4.conf.{all," + ifname + "}.arp_ignore = " + std::to_string(v) +
                               " would answer ARP for it (needs 1, 2 or 8)";
    }
    if (effective_conf(ifname, "arp_announce") != 2) {
        write_conf(ifname, "arp_announce", 2);
        const int v = effective_conf(ifname, "arp_announce");
        if (v != 2)
            return v < 0 ? "cannot read " + conf_path(ifname, "arp_announce") + ": " + std::strerror(-v)
                         : "cannot set " + conf_path(ifname, "arp_announce") + " to 2";
    }
    return {};
}

} // namespace

control_loop::control_loop(const cfg::config& c, io::engine& e, std::vector<auth::key> keys)
    : c_(c), e_(e), hooks_(std::chrono::milliseconds{c.hooks.timeout_ms}), queue_(hooks_), gc_(c_, queue_, e_) {
    if (c.auth.mode == cfg::auth_mode::keyed) {
        key_path_ = c.auth.key_file;
        if (key_path_.starts_with("cred:")) {
            const char* dir = std::getenv("CREDENTIALS_DIRECTORY");
            key_path_ = std::string(dir ? dir : "") + "/" + key_path_.substr(5);
        }
        // The file as read at start: an edit from now on, even in the first second, is loaded.
        key_id_ = key_file_identity();
        std::string error;
        if (!load_keys(std::move(keys), error)) throw io::setup_error("auth.key_file " + c.auth.key_file + ": " + error);
        next_key_check_ = std::chrono::steady_clock::now() + std::chrono::seconds{1};
    }
    g_.resize(c.groups.size());
    last_takeover_.resize(c.groups.size());
    assign_checks();
    if (c.port.mode == cfg::address_mode::shared) {
        nl_ = std::make_unique<control::netlink>();
        addrs_ = std::make_unique<control::address_keeper>(control::addresses_of(c), *nl_);
    }
    for (std::size_t g = 0; g < c.groups.size(); ++g) {
        g_[g].iface = c.groups[g].interface;
        const std::string from = io::announce_interface(c, g);
        if (from.empty()) continue;
        auto& a = announcers_[from];
        if (!a) {
            try {
                a = std::make_unique<control::announcer>(from);
            } catch (const std::exception& ex) {
                throw io::setup_error(ex.what());
            }
            log::write(log::level::info, "the addresses on " + from + " are announced (GARP, NA) from " + from +
                                             " with its MAC once the kernel holds them, not from the heartbeat port " +
                                             c.port.device);
        }
        g_[g].announcer = a.get();
    }
    open_steering();
    if (!c.health.empty()) health_ = std::make_unique<control::health_monitor>(c.health, hooks_);
    log::parse_level(c.control.log_level, level_);
    ctl_ = std::make_unique<control::ctl_server>(c.control.socket, [this](std::string_view req) { return handle(req); });
    if (!c.control.metrics.empty()) {
        metrics_ = std::make_unique<control::http_endpoint>(c.control.metrics); // throws, naming the address
        log::write(log::level::info, "metrics on http://" + c.control.metrics + "/metrics");
    }
    // A port with a kernel netdev has a carrier the kernel reports: the engine hears of a
    // dead link at once instead of reading it as a dead peer after the silence window.
    link_if_ = io::kernel_interface(c);
    if (link_if_.empty()) return;
    try {
        link_ = std::make_unique<control::link_watch>(link_if_);
    } catch (const std::exception& ex) {
        log::write(log::level::warn, "carrier of " + link_if_ + " not watched: " + ex.what());
        return;
    }
    if (link_->state(link_if_) == false) {
        log::write(log::level::warn, "link down on " + link_if_);
        gc_.post(fsm::command_kind::link, 0);
    }
}

// af_xdp with an XDP program of ours (port.xdp_prog): tell it which addresses are
// heartwire's, so it steers the ARP about them and the engine's echo replies to DPDK and
// passes the rest (the service's traffic, clients' ARP) to the kernel.
void control_loop::open_steering() {
    const std::string prog = io::xdp_program(c_);
    if (prog.empty()) return;
    const std::string iface = io::kernel_interface(c_);
    try {
        steer_ = std::make_unique<io::xdp_steer>(io::xdp_steer::open(iface));
        for (const auto& g : c_.groups)
            for (const bool primary : {true, false}) {
                for (const auto& p : cfg::role_v4(g.addresses, primary)) steer_->add(p.addr);
                for (const auto& p : cfg::role_v6(g.addresses, primary)) steer_->add(p.addr.b);
            }
        steer_->set_icmp_id(e_.icmp_id());
    } catch (const std::exception& ex) {
        steer_.reset();
        // heartwire's own program must be there: without it the kernel gets nothing.
        if (prog == io::steering_object()) throw io::setup_error(std::string("XDP steering: ") + ex.what());
        log::write(log::level::info, "port.xdp_prog " + prog + " is not heartwire's steering program (" + ex.what() +
                                         "): its maps are the operator's to fill");
        return;
    }
    log::write(log::level::info, fmt("XDP steering on %s (%s mode): heartwire's frames to DPDK, the rest to the kernel",
                                     iface.c_str(), steer_->mode()));
}

void control_loop::prepare_kernel_interface() {
    if (!nl_) return;
    std::vector<std::string> ifaces; // every interface that carries a group's addresses, once
    for (const auto& gc : g_)
        if (std::find(ifaces.begin(), ifaces.end(), gc.iface) == ifaces.end()) ifaces.push_back(gc.iface);
    // Both addresses share a subnet: without promotion, releasing the monitor address (the
    // subnet's first) would make the kernel drop the primary address with it.
    for (const auto& ifname : ifaces) {
        const std::string promote = "/proc/sys/net/ipv4/conf/" + ifname + "/promote_secondaries";
        if (FILE* f = std::fopen(promote.c_str(), "w")) {
            std::fputs("1", f);
            std::fclose(f);
        } else {
            log::write(log::level::warn, "cannot set " + promote + ": releasing the monitor address may drop the primary one");
        }
    }
    // A previous run killed with SIGKILL (and its guard with it) may have left our addresses
    // on the interface, and the staged primary on lo.
    addrs_->remove_stale();
    // Staging is for the groups the engine announces from the port: its GARP may go out
    // before netlink has added the address. A group announced from its own interface is
    // announced only once the kernel holds the address, and needs none.
    for (const auto& ifname : ifaces) {
        const bool stages = std::any_of(g_.begin(), g_.end(), [&](const group_ctl& gc) { return gc.iface == ifname && !gc.announcer; });
        if (!stages) continue;
        const std::string why = quiet_arp_for_lo(ifname);
        if (!why.empty())
            log::write(log::level::warn, "not staging the primary address on the monitor: " + why +
                                             "; the first requests after a takeover may be lost until the kernel holds it");
        for (std::size_t g = 0; g < g_.size(); ++g)
            if (g_[g].iface == ifname && !g_[g].announcer) addrs_->set_stages(g, why.empty());
    }
}

void control_loop::run(const std::atomic<bool>& engine_running) {
    while (engine_running.load(std::memory_order_acquire)) turn(std::chrono::milliseconds{1});
    sm_.stopping();
    turn(std::chrono::milliseconds{0});
    queue_.wait_all([this](const control::hook_completion& h) { on_hook_done(h); },
                    [this](const control::hook_result& r) { on_other_hook_done(r); });
}

// Once the poll lcore has applied its policy: say what it got, and why not when refused.
void control_loop::report_sched() {
    if (sched_reported_) return;
    const int rc = e_.sched_result();
    if (rc < 0) return;
    sched_reported_ = true;
    if (c_.engine.sched == cfg::sched_policy::other) {
        log::write(log::level::info, "poll lcore at SCHED_OTHER (engine.sched = \"other\"): expect millisecond loop gaps "
                                     "whenever anything else runs on its core");
    } else if (rc == 0) {
        log::write(log::level::info, fmt("poll lcore at SCHED_FIFO %u, yielding %u us every %u us", c_.engine.rt_priority,
                                         c_.engine.yield_us, c_.engine.yield_period_us));
    } else {
        log::write(log::level::warn,
                   fmt("engine.sched = \"fifo\": SCHED_FIFO refused on the poll lcore (%s): needs CAP_SYS_NICE and, with "
                       "RT group scheduling, a cpu.rt_runtime_us budget in this cgroup; running at SCHED_OTHER, so "
                       "sub-millisecond windows will see false takeovers",
                       std::strerror(rc)));
    }
}

// A key set for the engine: one keyring per lcore that touches frames. The file's identity
// is taken first, so an edit made while this runs is read again next time.
bool control_loop::install_keys(const std::vector<auth::key>& keys, std::string& error) {
    auto b = std::make_unique<io::key_bundle>();
    b->tx = auth::keyring::make(keys, error);
    if (!b->tx) return false;
    b->rx = auth::keyring::make(keys, error);
    if (!b->rx) return false;
    b->accepted = b->tx->ids_bitmap();
    b->preferred = b->tx->send_key();
    b->gen = ++key_gen_;
    log::write(log::level::info, fmt("keys: %s accepted, send key %u (%s)", key_ids(b->accepted).c_str(), b->preferred,
                                     s(auth::to_string(auth::keyring::algo())).c_str()));
    e_.offer_keys(b.get());
    bundles_.push_back(std::move(b));
    return true;
}

// How long a key removed from the file is still accepted: peers that still sign with it
// (their file not edited yet, or not yet moved to the new send key) keep being heard.
constexpr std::chrono::seconds key_retire_grace{10};

// The keys of the file, plus the ones that left it less than key_retire_grace ago
// (accepted, never sent with).
bool control_loop::load_keys(std::vector<auth::key> file_keys, std::string& error) {
    const auto now = std::chrono::steady_clock::now();
    const auto in = [](const std::vector<auth::key>& v, std::uint8_t id) {
        return std::any_of(v.begin(), v.end(), [&](const auth::key& k) { return k.id == id; });
    };
    for (const auto& k : file_keys_)
        if (!in(file_keys, k.id)) {
            retiring_.push_back({k, now + key_retire_grace});
            retiring_.back().k.send = false;
            log::write(log::level::info, fmt("key %u left the key file: still accepted for %lld s", k.id,
                                             static_cast<long long>(key_retire_grace.count())));
        }
    std::erase_if(retiring_, [&](const retiring_key& r) { return in(file_keys, r.k.id) || now >= r.until; });
    std::vector<auth::key> all = file_keys;
    for (const auto& r : retiring_) all.push_back(r.k);
    if (!install_keys(all, error)) return false;
    file_keys_ = std::move(file_keys);
    return true;
}

control_loop::file_id control_loop::key_file_identity() const {
    struct stat st{};
    if (::stat(key_path_.c_str(), &st) != 0) return {};
    return {st.st_dev, st.st_ino, static_cast<std::uint64_t>(st.st_size),
            static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec};
}

// auth.key_file, checked once a second: an edit is loaded and handed to the engine without
// a role change; a bad file is logged and the keys in use stay. Old bundles are freed once
// every lcore has moved past them.
void control_loop::check_keys() {
    while (bundles_.size() > 1 && e_.keys_taken(bundles_.back()->gen)) bundles_.pop_front();
    while (params_.size() > 1 && e_.params_taken(params_.back()->gen)) params_.pop_front();
    if (key_path_.empty()) return;
    const auto now = std::chrono::steady_clock::now();
    if (now < next_key_check_) return;
    next_key_check_ = now + std::chrono::seconds{1};
    // A retiring key a live peer still signs with stays accepted until it moves off it.
    if (!retiring_.empty()) {
        const auto st = e_.status();
        const std::uint64_t timeout_ns = std::uint64_t{c_.protocol.peer_timeout_ms} * 1'000'000;
        for (auto& r : retiring_) {
            if (now < r.until) continue;
            for (const auto& p : st.peers) {
                if (!p.valid || p.down || st.now_ns - p.last_heard_ns > timeout_ns || p.key_id != r.k.id) continue;
                r.until = now + key_retire_grace;
                log::write(log::level::warn, fmt("key %u left the key file but node %u still signs with it: still accepted",
                                                 r.k.id, p.id));
                break;
            }
        }
    }
    if (!retiring_.empty() && std::any_of(retiring_.begin(), retiring_.end(), [&](const retiring_key& r) { return now >= r.until; })) {
        std::string error;
        if (!load_keys(file_keys_, error)) log::write(log::level::error, "retiring a key: " + error);
    }
    const file_id id = key_file_identity();
    if (id == key_id_) return;
    key_id_ = id;
    auto r = auth::load_key_file(c_.auth.key_file);
    std::string error = r.error;
    if (r.ok() && load_keys(std::move(r.keys), error)) return;
    log::write(log::level::error, "auth.key_file changed but cannot be used, keeping the keys in use: " + error);
}

// Under systemd: READY=1 once the first group has a role (it serves, watches or stands
// by: a unit ordered after this one starts once the address has an owner), and the
// watchdog fed while the poll lcore turns.
void control_loop::tell_service_manager(std::chrono::steady_clock::time_point now) {
    if (!sm_.active()) return;
    sm_.tick(e_.role_counters().loops.get(), now);
    if (sm_.is_ready() || now < next_ready_check_) return;
    next_ready_check_ = now + std::chrono::milliseconds{10};
    const auto st = e_.status();
    if (st.r == role::primary || st.r == role::monitor || st.r == role::standby || st.r == role::fault)
        sm_.ready(fmt("%s, epoch %llu", s(to_string(st.r)).c_str(), static_cast<unsigned long long>(st.epoch)));
}

void control_loop::on_signals() {
    const unsigned bits = signals_->exchange(0, std::memory_order_relaxed);
    if (bits & sig_reload) reload();
    if (bits & sig_dump) {
        // SIGUSR1: the status, as heartwirectl status prints it, into the log.
        std::istringstream text(status_text(status_view()));
        log::write(log::level::info, "status (SIGUSR1):");
        for (std::string line; std::getline(text, line);) log::write(log::level::info, "  " + line);
    }
    if (bits & sig_debug) {
        debug_toggled_ = !debug_toggled_;
        log::set_level(debug_toggled_ ? log::level::debug : level_);
        log::write(log::level::warn, debug_toggled_ ? "debug logging on (SIGUSR2; again to turn it off)"
                                                    : "debug logging off (SIGUSR2): back to the configured level");
    }
}

// Which [[health]] checks fault which group (cfg.groups order).
void control_loop::assign_checks() {
    for (std::size_t g = 0; g < c_.groups.size() && g < g_.size(); ++g) {
        const auto& gr = c_.groups[g];
        g_[g].checks.clear();
        for (std::size_t i = 0; i < c_.health.size(); ++i)
            if (!gr.health_given || std::find(gr.health.begin(), gr.health.end(), c_.health[i].name) != gr.health.end())
                g_[g].checks.push_back(i);
    }
}

// SIGHUP: the file again. A file that does not parse, or whose live part would not run
// (a hook that is not executable, timing the idle cap cannot meet), changes nothing. Else
// what can change live is applied without a role change (cfg::plan_reload: hooks, health
// checks, log level, GARP and timing knobs, priority, preempt; the machines take theirs at
// the top of the engine's next turn) and what cannot is refused, each key named, the
// running value kept.
void control_loop::reload() {
    sm_.reloading();
    if (config_path_.empty()) {
        log::write(log::level::warn, "reload (SIGHUP): no configuration file to re-read (embedded)");
        sm_.ready("reload ignored");
        return;
    }
    auto r = cfg::load_file(config_path_);
    if (!r.errors.empty()) {
        log::write(log::level::error, fmt("reload (SIGHUP): %s has %zu error(s), the running configuration stays; first: %s",
                                          config_path_.c_str(), r.errors.size(), r.errors.front().to_string().c_str()));
        sm_.ready("reload refused: configuration errors");
        return;
    }
    auto plan = cfg::plan_reload(c_, *r.cfg);
    std::vector<std::string> problems;
    for (const auto& e : cfg::validate(plan.result)) problems.push_back(e.to_string());
    for (const auto& p : runtime_problems(plan.result, eal_extra_))
        if (p.error && !p.setup) problems.push_back(p.key + ": " + p.what);
    if (!problems.empty()) {
        log::write(log::level::error, fmt("reload (SIGHUP): %s would not run, the running configuration stays: %s",
                                          config_path_.c_str(), problems.front().c_str()));
        sm_.ready("reload refused: " + problems.front());
        return;
    }
    const auto join = [](const std::vector<std::string>& keys) {
        std::string out;
        for (const auto& k : keys) out += (out.empty() ? "" : ", ") + k;
        return out;
    };
    std::string applied;
    bool machines = false;
    for (const auto& k : plan.applied) {
        applied += (applied.empty() ? "" : ", ") + k;
        if (k == "control.log_level") applied += " = " + plan.result.control.log_level;
        machines = machines || k.starts_with("detect.") || k.starts_with("garp.") || k.starts_with("protocol.") ||
                   k == "node.priority" || k.ends_with("].priority") || k.ends_with("].preempt") ||
                   k == "hooks.fence" || k == "hooks.boot_peer";
    }
    const cfg::config before = c_;
    c_ = std::move(plan.result);
    if (c_.control.log_level != before.control.log_level) {
        log::level l;
        if (log::parse_level(c_.control.log_level, l)) {
            level_ = l;
            if (!debug_toggled_) log::set_level(l);
        }
    }
    if (c_.hooks.timeout_ms != before.hooks.timeout_ms) hooks_.set_default_timeout(std::chrono::milliseconds{c_.hooks.timeout_ms});
    if (!(c_.health == before.health) || !(c_.groups == before.groups)) {
        if (health_) health_->reconfigure(c_.health);
        else if (!c_.health.empty()) health_ = std::make_unique<control::health_monitor>(c_.health, hooks_);
        assign_checks(); // a group whose checks are gone has its fault cured at the next check
    }
    if (c_.auth.key_file != before.auth.key_file) {
        key_path_ = c_.auth.key_file;
        if (key_path_.starts_with("cred:")) {
            const char* dir = std::getenv("CREDENTIALS_DIRECTORY");
            key_path_ = std::string(dir ? dir : "") + "/" + key_path_.substr(5);
        }
        key_id_ = {}; // read at the next check
        next_key_check_ = {};
    }
    if (machines) {
        auto b = std::make_unique<io::params_bundle>();
        for (std::size_t g = 0; g < c_.groups.size(); ++g) b->groups.push_back(fsm::params::from_config(c_, e_.mac(), g));
        b->interval_us = c_.detect.interval_us;
        b->miss = c_.detect.miss;
        b->gen = ++params_gen_;
        e_.offer_params(b.get());
        params_.push_back(std::move(b));
    }
    if (applied.empty() && plan.refused.empty()) log::write(log::level::info, "reload (SIGHUP): nothing changed");
    if (!applied.empty()) log::write(log::level::info, "reload (SIGHUP): applied " + applied);
    if (!plan.refused.empty())
        log::write(log::level::warn, "reload (SIGHUP): refused, these need a restart (the running values stay): " + join(plan.refused));
    sm_.ready(plan.refused.empty() ? "reloaded" : "reloaded; refused (restart needed): " + join(plan.refused));
}

status_inputs control_loop::status_view() {
    announce_views_.clear();
    announce_views_.reserve(g_.size());
    for (const auto& gc : g_) announce_views_.push_back({gc.announcer, gc.not_held});
    return {c_, e_, takeovers_, notes_, gc_.fault_detail(), gc_.app_inflight(), queue_.counters(), steer_.get(), &last_takeover_,
            &announce_views_, addrs_ ? &addrs_->stats() : nullptr};
}

void control_loop::turn(std::chrono::milliseconds wait) {
    report_sched();
    check_keys();
    const auto now = std::chrono::steady_clock::now();
    tell_service_manager(now);
    if (signals_ && signals_->load(std::memory_order_relaxed) != 0) on_signals();
    if (metrics_) metrics_->serve([this] { return metrics_text(status_view()); });
    if (now >= next_reanchor_) {
        e_.reanchor_clock();
        next_reanchor_ = now + std::chrono::milliseconds{100};
    }
    e_.poll_events([this](const io::control_event& ev) { on_event(ev); });
    // Level-triggered: the kernel's addresses against the engine's published state.
    if (addrs_ && addrs_->due(now)) {
        const std::uint64_t published_ns = e_.status().now_ns; // read first: the groups are at least as new
        addrs_->reconcile(e_.group_statuses(), now, published_ns);
    }
    queue_.poll([this](const control::hook_completion& h) { on_hook_done(h); },
                [this](const control::hook_result& r) { on_other_hook_done(r); });
    check_health();
    check_link();
    ctl_->poll(wait);
}

void control_loop::remember(std::uint64_t wall_ns, std::string text) {
    notes_.push_back(fmt("%llu ", static_cast<unsigned long long>(wall_ns)) + text);
    if (notes_.size() > 32) notes_.pop_front();
}

void control_loop::check_link() {
    if (!link_) return;
    const auto up = link_->poll(link_if_);
    if (!up) return;
    log::write(log::level::warn, (*up ? "link up on " : "link down on ") + link_if_);
    gc_.post(fsm::command_kind::link, *up ? 1 : 0);
}

// The node's fault is the union of its health checks and what the application reported.
// Each group's fault is the union of its health checks ([[group]] health, default all) and
// what the application reported (every group).
void control_loop::check_health() {
    if (!health_) return;
    health_->poll(std::chrono::steady_clock::now());
    const auto& all = health_->checks();
    for (std::size_t g = 0; g < g_.size(); ++g) {
        const control::health_monitor::check_state* f = nullptr;
        for (const std::size_t i : g_[g].checks)
            if (i < all.size() && all[i].failed) {
                f = &all[i];
                break;
            }
        gc_.health(g, f);
    }
}

std::size_t control_loop::group_index(std::uint32_t id) const {
    for (std::size_t g = 0; g < c_.groups.size(); ++g)
        if (c_.groups[g].id == id) return g;
    return static_cast<std::size_t>(-1);
}

void control_loop::on_address(const io::control_event& ev) {
    const auto& a = ev.a;
    const bool add = a.kind == fsm::action_kind::claim_address;
    const bool primary = a.which == fsm::address_id::primary;
    const std::size_t g = ev.group < c_.groups.size() ? ev.group : 0;
    const auto& ga = c_.groups[g].addresses;
    const auto v4 = cfg::role_v4(ga, primary);
    const auto& v6 = cfg::role_v6(ga, primary);
    std::string list;
    const auto named = [&](const std::string& a) {
        if (!list.empty()) list.append(", ");
        list.append(a);
    };
    for (const auto& p : v4) named(p.to_string());
    for (const auto& p : v6) named(p.to_string());
    log::write_at(log::level::info, ev.wall_ns,
                  group_tag(g) + fmt("%s %s address%s %s", add ? "claimed" : "released", s(fsm::to_string(a.which)).c_str(),
                                     v4.size() + v6.size() > 1 ? "es" : "", list.c_str()));
    if (addrs_) addrs_->apply(g, a.which, add);
}

// A group announced from its own kernel interface: the engine hands us its GARPs and NAs
// (claims, the burst's repeats, refreshes, defences) in the order it made them, after the
// claim that precedes them. Kernel first (issue 9 item 7): only an address whose netlink
// add succeeded is announced, so every client the announcement moves finds it served.
void control_loop::on_announce(const io::control_event& ev) {
    const std::size_t g = ev.group < g_.size() ? ev.group : 0;
    auto& gc = g_[g];
    const bool v6 = ev.a.kind == fsm::action_kind::send_na;
    const bool held = addrs_ && (v6 ? addrs_->holds(g, ev.a.addr6) : addrs_->holds(g, ev.a.addr));
    if (!held) {
        ++gc.not_held; // the failed netlink add was logged as an error
        return;
    }
    // Failures are counted and logged by the announcer, once per failing spell.
    if (v6) gc.announcer->na(ev.a.addr6);
    else gc.announcer->garp(ev.a.addr);
}

void control_loop::on_event(const io::control_event& ev) {
    const auto& a = ev.a;
    using fsm::action_kind;
    const std::size_t g = ev.group < g_.size() ? ev.group : 0;
    const std::string tag = group_tag(g);
    switch (a.kind) {
    case action_kind::role_changed:
        log::write_at(log::level::info, ev.wall_ns,
                      tag + fmt("role %s -> %s (epoch %llu)", s(to_string(a.from)).c_str(), s(to_string(a.to)).c_str(),
                                static_cast<unsigned long long>(a.epoch)),
                      {.group = c_.groups[g].id, .role = to_string(a.to), .epoch = a.epoch});
        if (g == 0 && sm_.is_ready())
            sm_.status(fmt("%s, epoch %llu", s(to_string(a.to)).c_str(), static_cast<unsigned long long>(a.epoch)));
        // The monitor stages the primary address; the primary's claim unstages it (on_address,
        // emitted before this event); every other role holds no copy.
        if (addrs_ && a.to == role::monitor) addrs_->stage(g, true);
        else if (addrs_ && a.to != role::primary) addrs_->stage(g, false);
        gc_.on_role(g, a.from, a.to, a.epoch);
        break;
    case action_kind::claim_address:
    case action_kind::release_address:
        on_address(ev);
        break;
    case action_kind::send_garp:
    case action_kind::send_na:
        on_announce(ev);
        break;
    case action_kind::takeover: {
        const std::uint64_t det = a.decided_ns - a.last_answer_ns;
        takeovers_.push_back({a.peer_id, ev.wall_ns, det, c_.groups[g].id});
        last_takeover_[g] = takeovers_.back();
        if (takeovers_.size() > 64) takeovers_.pop_front();
        log::write_at(log::level::warn, ev.wall_ns,
                      tag + fmt("primary %u failed: no answer for %.1f us, taking over", a.peer_id, static_cast<double>(det) / 1e3));
        break;
    }
    case action_kind::run_hook:
        gc_.on_run_hook(g, a, ev.wall_ns);
        break;
    case action_kind::drain:
        log::write_at(log::level::info, ev.wall_ns, tag + fmt("switchover: draining for node %u", a.peer_id));
        gc_.on_drain(g);
        break;
    case action_kind::undrain:
        gc_.on_undrain(g, a.peer_id, ev.wall_ns);
        break;
    case action_kind::notice: {
        if (a.what == fsm::note::loop_gap) {
            // Stamped at the start of the gap; not kept in status (the histogram is).
            log::write_at(log::level::info, ev.wall_ns, fmt("loop gap: the poll loop woke %u us late", a.arg));
            break;
        }
        if (a.what == fsm::note::replica_diverged || a.what == fsm::note::replica_in_sync ||
            a.what == fsm::note::replica_lost_sync) {
            // The engine's word on a replicated store (issue 10); arg: its index in [[state]].
            const std::string name = a.arg < c_.state.size() ? c_.state[a.arg].name : std::to_string(a.arg);
            const std::string text =
                "state " + name + ": " +
                (a.what == fsm::note::replica_diverged ? "fault divergence: the monitor's copy differs from the primary's; repairing by a snapshot"
                 : a.what == fsm::note::replica_in_sync ? std::string("in sync")
                                                         : std::string("not in sync"));
            log::write_at(a.what == fsm::note::replica_in_sync ? log::level::info : log::level::warn, ev.wall_ns, text);
            remember(ev.wall_ns, text);
            break;
        }
        if (a.what == fsm::note::takeover_held || a.what == fsm::note::takeover_hold_answered) {
            const std::string text =
                tag + (a.what == fsm::note::takeover_held
                           ? fmt("the primary is silent past the window while a store's copy here is joining or repairing: "
                                 "takeover held for %u ms (state join_hold_ms)", a.arg)
                           : fmt("the primary answered after %u us of the hold: no takeover (its copy stays whole)", a.arg));
            log::write_at(log::level::warn, ev.wall_ns, text);
            remember(ev.wall_ns, text);
            break;
        }
        if (a.what == fsm::note::takeover_out_of_sync) {
            const std::string text = tag + "took over with a replica that was not in sync: writes acknowledged while it was "
                                           "behind may be missing (" + (a.arg == 1 ? "failure" : "switchover") + ")";
            log::write_at(log::level::warn, ev.wall_ns, text);
            remember(ev.wall_ns, text);
            break;
        }
        std::string text = tag + s(fsm::to_string(a.what));
        if (a.what == fsm::note::fault_reported || a.what == fsm::note::fault_no_takeover ||
            a.what == fsm::note::fault_takeover_accepted)
            text += " (" + s(fsm::to_string(static_cast<fsm::fault_kind>(a.arg))) + ")";
        else if (a.what == fsm::note::switchover_refused)
            text += ": " + s(fsm::to_string(static_cast<fsm::refusal>(a.arg)));
        else if (a.what == fsm::note::id_collision)
            text += fmt(": another node on the segment has our id %u and a valid key; neither node claims "
                        "until it goes (give each node its own [node] id)", a.arg);
        else if (a.what == fsm::note::address_attacked)
            text += fmt(": %u ARP claims for a held address from other MACs in the last second, each answered "
                        "by our GARP", a.arg);
        else if (a.arg)
            text += " (" + std::to_string(a.arg) + ")";
        if ((a.what == fsm::note::switchover_refused || a.what == fsm::note::switchover_started) && g == switchover_group_) {
            switchover_answered_ = true;
            switchover_note_ = a.what;
            switchover_arg_ = a.arg;
        }
        const bool bad = a.what == fsm::note::switchover_refused || a.what == fsm::note::switchover_timed_out ||
                         a.what == fsm::note::fault_no_takeover || a.what == fsm::note::address_attacked ||
                         a.what == fsm::note::peer_table_full || a.what == fsm::note::fence_failed ||
                         a.what == fsm::note::fence_abandoned;
        const auto lvl = a.what == fsm::note::id_collision ? log::level::error
                         : bad                             ? log::level::warn
                                                           : log::level::info;
        log::write_at(lvl, ev.wall_ns, text);
        remember(ev.wall_ns, text);
        break;
    }
    default:
        break;
    }
}

// Health checks run on the runner directly (each serialises itself): not the queue's.
void control_loop::on_other_hook_done(const control::hook_result& r) {
    if (health_) health_->on_hook_done(r);
}

void control_loop::on_hook_done(const control::hook_completion& h) { gc_.on_hook_done(h); }

// The machine answers a switchover command with a notice: started (and to whom) or refused
// (and why). Wait for it, reading the engine's events meanwhile, so heartwirectl reports a
// refusal as an error instead of "ok".
std::string control_loop::switchover(std::size_t g) {
    const auto all = e_.group_statuses();
    const role r = all[g].r;
    if (r != role::primary && r != role::monitor)
        return "error: " + group_tag(g) + "switchover needs the primary or the monitor; this node is " + s(to_string(r)) + "\n";
    switchover_answered_ = false;
    switchover_group_ = g;
    gc_.post(fsm::command_kind::switchover, 0, static_cast<std::uint16_t>(g));
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{2};
    while (!switchover_answered_ && std::chrono::steady_clock::now() < deadline) {
        e_.poll_events([this](const io::control_event& ev) { on_event(ev); });
        if (!switchover_answered_) std::this_thread::sleep_for(std::chrono::milliseconds{1});
    }
    if (!switchover_answered_) return "error: the engine did not answer the switchover request within 2 s\n";
    if (switchover_note_ == fsm::note::switchover_refused)
        return "error: switchover refused: " + s(fsm::to_string(static_cast<fsm::refusal>(switchover_arg_))) + "\n";
    return "ok: " + group_tag(g) + fmt("switchover started from the %s with node %u; watch `heartwirectl status`\n",
                                       s(to_string(r)).c_str(), switchover_arg_);
}

// The control socket: one request line, one response (heartwirectl).
std::string control_loop::handle(std::string_view req) {
    std::istringstream in{std::string(req)};
    std::string cmd;
    in >> cmd;
    // "group <id> <command ...>": a command for one address group (heartwirectl --group).
    std::size_t g = 0;
    bool one_group = false;
    if (cmd == "group") {
        long long id = -1;
        if (!(in >> id) || id < 0) return "error: group needs a group id\n";
        g = group_index(static_cast<std::uint32_t>(id));
        if (g == static_cast<std::size_t>(-1)) return fmt("error: no group %lld on this node\n", id);
        one_group = true;
        in >> cmd;
    }
    if (cmd == "status") {
        std::string fmt_arg;
        in >> fmt_arg;
        const status_inputs si = status_view();
        return fmt_arg == "json" ? status_json(si) + "\n" : "ok\n" + status_text(si);
    }
    if (cmd == "metrics") return "ok\n" + metrics_text(status_view());
    if (cmd == "log-level") {
        // The running level, changed without a reload (SIGHUP's file level stays the default).
        std::string want;
        in >> want;
        log::level l;
        if (want.empty()) return "ok\n" + std::string(log::name_of(log::current_level())) + "\n";
        if (!log::parse_level(want, l)) return "error: log level \"" + want + "\" is not debug, info, warn or error\n";
        log::set_level(l);
        level_ = l;
        debug_toggled_ = false;
        log::write(log::level::warn, "log level " + want + " (heartwirectl log-level)");
        return "ok\n";
    }
    if (cmd == "switchover") return switchover(g);
    if (cmd == "fault") {
        std::string type, detail;
        in >> type;
        std::getline(in, detail);
        fsm::fault_kind k = fsm::fault_kind::application;
        if (!type.empty() && !fsm::parse_fault_kind(type, k)) {
            detail = type + detail; // "fault disk full": free text, an application fault
            k = fsm::fault_kind::application;
        }
        return gc_.fault(one_group ? std::optional<std::size_t>{g} : std::nullopt, k, detail);
    }
    if (cmd == "clear") return gc_.clear(one_group ? std::optional<std::size_t>{g} : std::nullopt);
    if (cmd == "inflight") {
        long long n = -1;
        if (!(in >> n) || n < 0) return "error: inflight needs a count >= 0\n";
        gc_.inflight(one_group ? std::optional<std::size_t>{g} : std::nullopt, n);
        return "ok\n";
    }
    return "error: unknown command '" + std::string(req) +
           "' ([group <id>] status [json], switchover, fault <type> [detail], clear, inflight <n>)\n";
}

} // namespace heartwire::app
