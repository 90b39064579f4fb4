#include "control_loop.hpp"
#include "metrics_view.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <sstream>
#include <thread>

#include <sys/stat.h>

#include "control/log.hpp"
#include "dpdk/eal.hpp"

namespace heartwire::app {

namespace {

template <class... A>
std::string fmt(const char* f, A... args) {
    char buf[512];
    std::snprintf(buf, sizeof buf, f, args...);
    return buf;
}

std::string s(std::string_view v) { return std::string(v); }

// The staged primary address (stage_primary) sits on the loopback interface, as a /32.
constexpr const char* loopback = "lo";

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
    : c_(c), e_(e), hooks_(std::chrono::milliseconds{c.hooks.timeout_ms}), queue_(hooks_) {
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
    for (std::size_t g = 0; g < c.groups.size(); ++g)
        for (std::size_t i = 0; i < c.health.size(); ++i)
            if (!c.groups[g].health_given ||
                std::find(c.groups[g].health.begin(), c.groups[g].health.end(), c.health[i].name) != c.groups[g].health.end())
                g_[g].checks.push_back(i);
    if (c.port.mode == cfg::address_mode::shared) nl_ = std::make_unique<control::netlink>();
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
        post(fsm::command_kind::link, 0);
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
    // A previous run killed with SIGKILL may have left our addresses on the interface, and
    // the staged primary on lo.
    const auto stale = [&](const std::string& ifname, const auto& p) {
        if (nl_->has_address(ifname, p.addr) != 1) return;
        nl_->del_address(ifname, p);
        if (nl_->has_address(ifname, p.addr) == 0) log::write(log::level::warn, "removed stale " + p.to_string() + " from " + ifname);
    };
    for (std::size_t g = 0; g < g_.size(); ++g) {
        const auto& ga = c_.groups[g].addresses;
        for (const bool primary : {true, false}) {
            for (const auto& p : cfg::role_v4(ga, primary)) stale(g_[g].iface, p);
            for (const auto& p : cfg::role_v6(ga, primary)) stale(g_[g].iface, p);
        }
        for (const auto& p : cfg::role_v4(ga, true)) stale(loopback, ipv4_prefix{p.addr, 32});
        for (const auto& p : cfg::role_v6(ga, true)) stale(loopback, ipv6_prefix{p.addr, 128});
    }
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
        for (auto& gc : g_)
            if (gc.iface == ifname && !gc.announcer) gc.can_stage = why.empty();
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

// SIGHUP: the file again. A file that does not parse changes nothing; what changed is
// named: the log level is applied at once, everything else needs a restart for now (the
// node keeps its role and its running configuration either way).
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
    std::string applied, restart;
    for (const auto& k : cfg::changed_keys(c_, *r.cfg)) {
        if (k == "control.log_level") {
            log::level l;
            if (log::parse_level(r.cfg->control.log_level, l)) {
                level_ = l;
                if (!debug_toggled_) log::set_level(l);
            }
            applied += (applied.empty() ? "" : ", ") + k + " = " + r.cfg->control.log_level;
        } else {
            restart += (restart.empty() ? "" : ", ") + k;
        }
    }
    if (applied.empty() && restart.empty()) log::write(log::level::info, "reload (SIGHUP): nothing changed");
    if (!applied.empty()) log::write(log::level::info, "reload (SIGHUP): applied " + applied);
    if (!restart.empty())
        log::write(log::level::warn, "reload (SIGHUP): changed, not applied (they take effect when heartwired restarts): " + restart);
    sm_.ready(restart.empty() ? "reloaded" : "reloaded; restart needed for: " + restart);
}

status_inputs control_loop::status_view() {
    announce_views_.clear();
    announce_views_.reserve(g_.size());
    for (const auto& gc : g_) announce_views_.push_back({gc.announcer, gc.not_held});
    return {c_, e_, takeovers_, notes_, fault_detail_, app_inflight_, queue_.counters(), steer_.get(), &last_takeover_,
            &announce_views_};
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
    queue_.poll([this](const control::hook_completion& h) { on_hook_done(h); },
                [this](const control::hook_result& r) { on_other_hook_done(r); });
    check_health();
    check_link();
    ctl_->poll(wait);
}

void control_loop::post(fsm::command_kind k, std::uint32_t arg, std::uint16_t group) {
    io::engine_command cmd;
    cmd.k = io::engine_command::kind::command;
    cmd.cmd = k;
    cmd.arg = arg;
    cmd.group = group;
    post_cmd(cmd);
}

// The command ring is sized for a command to every group; a burst larger than that waits
// for the engine to take some (it does every turn) rather than losing one.
void control_loop::post_cmd(const io::engine_command& cmd) {
    for (int tries = 0; tries < 200; ++tries) {
        if (e_.post(cmd)) return;
        std::this_thread::sleep_for(std::chrono::microseconds{500});
    }
    log::write(log::level::error, "engine command ring full for 100 ms: command lost");
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
    post(fsm::command_kind::link, *up ? 1 : 0);
}

// The node's fault is the union of its health checks and what the application reported.
// Each group's fault is the union of its health checks ([[group]] health, default all) and
// what the application reported (every group).
void control_loop::check_health() {
    if (!health_) return;
    health_->poll(std::chrono::steady_clock::now());
    const auto& all = health_->checks();
    for (std::size_t g = 0; g < g_.size(); ++g) {
        auto& gc = g_[g];
        const control::health_monitor::check_state* f = nullptr;
        for (const std::size_t i : gc.checks)
            if (i < all.size() && all[i].failed) {
                f = &all[i];
                break;
            }
        const bool failed = f != nullptr;
        if (failed == gc.health_fault) continue;
        gc.health_fault = failed;
        const auto gi = static_cast<std::uint16_t>(g);
        if (failed) {
            gc.health_detail = f->cfg.name + ": " + f->last_detail;
            log::write(log::level::warn, group_tag(g) + "health check " + gc.health_detail + ": fault");
            if (!app_fault_ && !gc.app_fault) post(fsm::command_kind::fault, static_cast<std::uint32_t>(f->kind), gi);
        } else {
            log::write(log::level::info, group_tag(g) + "health checks pass again: fault cured");
            if (!app_fault_ && !gc.app_fault) post(fsm::command_kind::fault_cleared, 0, gi);
        }
    }
}

// A role's first address, IPv4 or (an IPv6-only role) IPv6.
std::string first_address(const cfg::addresses_cfg& a, bool primary) {
    const auto v4 = cfg::role_v4(a, primary);
    if (!v4.empty()) return v4.front().to_string();
    const auto& v6 = cfg::role_v6(a, primary);
    return v6.empty() ? std::string{} : v6.front().to_string();
}

std::string control_loop::group_tag(std::size_t g) const {
    return c_.groups.size() > 1 && g < c_.groups.size() ? fmt("group %u: ", c_.groups[g].id) : std::string{};
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
    if (!nl_) return;
    auto& gc = g_[g];
    const std::string& ifname = gc.iface;
    int rc = 0;
    const auto apply = [&](const auto& p, auto& held) {
        const int r = add ? nl_->add_address(ifname, p) : nl_->del_address(ifname, p);
        if (r != 0)
            log::write(log::level::error, fmt("netlink %s %s on %s: %s", add ? "add" : "del", p.to_string().c_str(),
                                              ifname.c_str(), std::strerror(-r)));
        if (r != 0 && rc == 0) rc = r;
        // What the kernel holds is what may be announced (on_announce): the address once its
        // add succeeded, never once the role let it go.
        if (!gc.announcer) return;
        const auto at = std::find(held.begin(), held.end(), p.addr);
        if (add && r == 0 && at == held.end()) held.push_back(p.addr);
        if (!add && at != held.end()) held.erase(at);
    };
    for (const auto& p : v4) apply(p, gc.held4);
    for (const auto& p : v6) apply(p, gc.held6);
    // A takeover: the interface now holds the address (the kernel answers ARP and picks it as
    // source), so the staged copy can go. Before the monitor address is released (the next
    // event): the route to the clients' subnet never lapses. Had the add failed, the copy on
    // lo keeps the kernel serving until the node leaves the primary role.
    if (add && a.which == fsm::address_id::primary && rc == 0) unstage_primary(g);
}

// A group announced from its own kernel interface: the engine hands us its GARPs and NAs
// (claims, the burst's repeats, refreshes, defences) in the order it made them, after the
// claim that precedes them. Kernel first (issue 9 item 7): only an address whose netlink
// add succeeded is announced, so every client the announcement moves finds it served.
void control_loop::on_announce(const io::control_event& ev) {
    auto& gc = g_[ev.group < g_.size() ? ev.group : 0];
    const bool v6 = ev.a.kind == fsm::action_kind::send_na;
    const bool held = v6 ? std::find(gc.held6.begin(), gc.held6.end(), ev.a.addr6) != gc.held6.end()
                         : std::find(gc.held4.begin(), gc.held4.end(), ev.a.addr) != gc.held4.end();
    if (!held) {
        ++gc.not_held; // the failed netlink add was logged as an error
        return;
    }
    // Failures are counted and logged by the announcer, once per failing spell.
    if (v6) gc.announcer->na(ev.a.addr6);
    else gc.announcer->garp(ev.a.addr);
}

// Shared mode: the kernel must hold the primary address before the engine's first GARP sends
// the clients here, and the engine sends it at the takeover, without waiting for netlink. So
// the monitor holds it beforehand, unannounced (LVS-DR): a /32 on lo, which the kernel
// accepts and serves packets for; the interface ignores ARP requests for it and never names
// it as an ARP sender (quiet_arp_for_lo), so the clients' caches keep pointing at the
// primary until the GARP. The trade-offs, for as long as a node is monitor:
//   - its own traffic to the primary address stays local (hooks, health checks, tools run
//     on the monitor reach the monitor's own services, not the primary's);
//   - its kernel drops packets whose source is the primary address as martians (a local
//     source): kernel traffic the primary sends from it to the monitor's subnet address; the
//     engine's probe replies reach DPDK before the stack and are unaffected. A node address
//     of its own, first on the interface, is what the kernel picks as source instead;
//   - a client whose cache still names the monitor (just after a switchover) is served by
//     the monitor instead of dropped.
// EEXIST on a repeated add is success (netlink::add_address).
// Every primary address, as a host address on lo (IPv6 on lo is never answered for on
// the interface by neighbour discovery, as IPv4 with quiet_arp_for_lo is not by ARP).
bool control_loop::stage_all(bool add, std::size_t g) {
    bool ok = true;
    const auto one = [&](const auto& p) {
        const int rc = add ? nl_->add_address(loopback, p) : nl_->del_address(loopback, p);
        if (rc == 0) return;
        ok = false;
        log::write(log::level::error, fmt("netlink %s %s on %s (%s): %s", add ? "add" : "del", p.to_string().c_str(), loopback,
                                          add ? "staging the primary address" : "the staged primary address", std::strerror(-rc)));
    };
    for (const auto& p : cfg::role_v4(c_.groups[g].addresses, true)) one(ipv4_prefix{p.addr, 32});
    for (const auto& p : cfg::role_v6(c_.groups[g].addresses, true)) one(ipv6_prefix{p.addr, 128});
    return ok;
}

void control_loop::stage_primary(std::size_t g) {
    if (!nl_ || !g_[g].can_stage || g_[g].staged) return;
    if (stage_all(true, g)) g_[g].staged = true;
}

void control_loop::unstage_primary(std::size_t g) {
    if (!nl_ || !g_[g].staged) return;
    if (stage_all(false, g)) g_[g].staged = false; // else still staged: the next role change tries again
}

// Seed 003 claim 4: stop taking new work; done when the drain hook exits, or when the
// application reports nothing in flight, or (with neither) at once.
void control_loop::on_drain(std::size_t g) {
    auto& gc = g_[g];
    gc.draining = true;
    const auto gi = static_cast<std::uint16_t>(g);
    if (!c_.hooks.drain.empty()) {
        std::vector<std::string> argv{c_.hooks.drain};
        if (c_.groups.size() > 1) argv.push_back(std::to_string(c_.groups[g].id));
        gc.drain_hook_id = queue_.submit({.kind = "drain", .argv = std::move(argv), .env = env(g)});
        return;
    }
    if (app_inflight_ <= 0) {
        gc.draining = false;
        post(fsm::command_kind::drain_done, 0, gi);
    }
}

void control_loop::on_event(const io::control_event& ev) {
    const auto& a = ev.a;
    using fsm::action_kind;
    const std::size_t g = ev.group < g_.size() ? ev.group : 0;
    const auto gi = static_cast<std::uint16_t>(g);
    const std::string tag = group_tag(g);
    switch (a.kind) {
    case action_kind::role_changed:
        log::write_at(log::level::info, ev.wall_ns,
                      tag + fmt("role %s -> %s (epoch %llu)", s(to_string(a.from)).c_str(), s(to_string(a.to)).c_str(),
                                static_cast<unsigned long long>(a.epoch)),
                      {.group = c_.groups[g].id, .role = to_string(a.to), .epoch = a.epoch});
        if (g == 0 && sm_.is_ready())
            sm_.status(fmt("%s, epoch %llu", s(to_string(a.to)).c_str(), static_cast<unsigned long long>(a.epoch)));
        if (a.from == role::draining) g_[g].draining = false;
        // The monitor stages the primary address; the primary's claim unstages it (on_address,
        // emitted before this event); every other role holds no copy.
        if (a.to == role::monitor) stage_primary(g);
        else if (a.to != role::primary) unstage_primary(g);
        notify(a.to, a.epoch, g);
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
    case action_kind::run_hook: {
        const std::string& path = a.hook == fsm::hook_kind::fence       ? c_.hooks.fence
                                  : a.hook == fsm::hook_kind::boot_peer ? c_.hooks.boot_peer
                                                                        : c_.hooks.recover;
        if (path.empty()) break; // only recover is optional: the machine asks for the others when set
        log::write_at(log::level::info, ev.wall_ns,
                      tag + fmt("%s for node %u requested", s(fsm::to_string(a.hook)).c_str(), a.peer_id));
        const std::string peer = std::to_string(a.peer_id);
        // One fence or boot for a node, however many groups ask: merged by peer (below); the
        // answer reaches every group that asked.
        control::hook_request req{.kind = s(fsm::to_string(a.hook)), .argv = {path, peer, a.peer_mac.to_string()}, .env = env(g)};
        // A fence or boot of this peer still waiting covers this one (a flapping or forged peer).
        if (a.hook != fsm::hook_kind::recover) {
            req.merge = control::hook_merge::same_key;
            req.key = peer;
        }
        const auto id = queue_.submit(std::move(req));
        if (a.hook != fsm::hook_kind::recover) pending_[id] = {a.hook, gi};
        break;
    }
    case action_kind::drain:
        log::write_at(log::level::info, ev.wall_ns, tag + fmt("switchover: draining for node %u", a.peer_id));
        on_drain(g);
        break;
    case action_kind::undrain:
        // The handover did not complete: this node stays primary and takes work again.
        log::write_at(log::level::warn, ev.wall_ns,
                      tag + fmt("primary with the application drained (handover to node %u did not complete, or this node serves again): undraining", a.peer_id));
        g_[g].draining = false;
        g_[g].drain_hook_id = 0; // its late exit must not report a drain
        if (!c_.hooks.undrain.empty()) {
            std::vector<std::string> argv{c_.hooks.undrain, std::to_string(a.peer_id)};
            if (c_.groups.size() > 1) argv.push_back(std::to_string(c_.groups[g].id));
            // The drain kind: never concurrent with a drain still running, and after it.
            queue_.submit({.kind = "drain", .argv = std::move(argv), .env = env(g), .merge = control::hook_merge::never});
        }
        break;
    case action_kind::notice: {
        if (a.what == fsm::note::loop_gap) {
            // Stamped at the start of the gap; not kept in status (the histogram is).
            log::write_at(log::level::info, ev.wall_ns, fmt("loop gap: the poll loop woke %u us late", a.arg));
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

std::vector<std::string> control_loop::env(std::size_t g) const {
    const auto& gr = c_.groups[g < c_.groups.size() ? g : 0];
    return {"HEARTWIRE_NODE=" + c_.node.name, "HEARTWIRE_NODE_ID=" + std::to_string(c_.node.id),
            "HEARTWIRE_GROUP=" + std::to_string(gr.id), "HEARTWIRE_PRIMARY=" + first_address(gr.addresses, true),
            "HEARTWIRE_MONITOR=" + first_address(gr.addresses, false), "HEARTWIRE_SOCKET=" + c_.control.socket};
}

void control_loop::notify(role r, std::uint64_t epoch, std::size_t g) {
    const std::string name(to_string(r));
    // notify <role> <epoch> <node name> <group id>: the group is the fourth argument. Or,
    // keepalived's: notify INSTANCE <name> MASTER|BACKUP|FAULT|STOP <priority>, discovery's
    // passing roles left out (keepalived has none), the stop (back to init) as STOP.
    std::vector<std::string> argv;
    if (c_.hooks.notify_args == "keepalived") {
        const char* st = r == role::primary || r == role::draining                           ? "MASTER"
                         : r == role::monitor || r == role::standby || r == role::fenced ? "BACKUP"
                         : r == role::fault                                              ? "FAULT"
                         : r == role::init                                               ? "STOP"
                                                                                         : nullptr;
        const auto& gc = c_.groups[g];
        if (st)
            argv = {c_.hooks.notify, "INSTANCE", gc.name.empty() ? "group" + std::to_string(gc.id) : gc.name, st,
                    std::to_string(gc.priority)};
    } else {
        argv = {c_.hooks.notify, name, std::to_string(epoch), c_.node.name, std::to_string(c_.groups[g].id)};
    }
    if (!c_.hooks.notify.empty() && !argv.empty())
        queue_.submit({.kind = "notify", .argv = argv, .env = env(g), .merge = control::hook_merge::never}); // every role change, in order
    const std::string* specific = r == role::primary   ? &c_.hooks.on_primary
                                  : r == role::monitor ? &c_.hooks.on_monitor
                                  : r == role::standby ? &c_.hooks.on_standby
                                  : r == role::fault   ? &c_.hooks.on_fault
                                                       : nullptr;
    if (specific && !specific->empty())
        queue_.submit({.kind = "on_" + name, .argv = {*specific, std::to_string(epoch), std::to_string(c_.groups[g].id)}, .env = env(g)});
}

// Health checks run on the runner directly (each serialises itself): not the queue's.
void control_loop::on_other_hook_done(const control::hook_result& r) {
    if (health_) health_->on_hook_done(r);
}

// One run (or dropped request) answers every request merged into it, and so reaches the
// engine once: a fence flood never floods the command ring.
void control_loop::on_hook_done(const control::hook_completion& h) {
    const auto& r = h.result;
    const auto lvl = r.ok() ? log::level::info : log::level::warn;
    const std::string shared = h.tickets.size() > 1 ? fmt(" (answers %zu requests)", h.tickets.size()) : "";
    if (h.dropped)
        log::write(lvl, fmt("hook %s %s", r.name.c_str(), r.error.c_str()) + shared);
    else
        log::write(lvl, fmt("hook %s finished: %s", r.name.c_str(),
                            r.spawn_failed ? r.error.c_str()
                            : r.timed_out  ? "timed out"
                                           : ("exit " + std::to_string(r.exit_code)).c_str()) + shared);
    const auto answers = [&](std::uint64_t t) { return std::find(h.tickets.begin(), h.tickets.end(), t) != h.tickets.end(); };
    for (std::size_t g = 0; g < g_.size(); ++g) {
        if (g_[g].drain_hook_id == 0 || !answers(g_[g].drain_hook_id)) continue;
        g_[g].drain_hook_id = 0;
        g_[g].draining = false;
        post(fsm::command_kind::drain_done, static_cast<std::uint32_t>(std::max<std::int64_t>(app_inflight_, 0)),
             static_cast<std::uint16_t>(g));
        return;
    }
    // Every group that asked (one merged fence answers them all), once each.
    std::vector<std::pair<fsm::hook_kind, std::uint16_t>> answer;
    for (const auto t : h.tickets) {
        const auto it = pending_.find(t);
        if (it == pending_.end()) continue;
        if (std::find(answer.begin(), answer.end(), it->second) == answer.end()) answer.push_back(it->second);
        pending_.erase(it);
    }
    for (const auto& [hook, group] : answer) {
        io::engine_command cmd;
        cmd.ok = r.ok();
        cmd.hook = hook;
        cmd.group = group;
        post_cmd(cmd);
    }
}

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
    post(fsm::command_kind::switchover, 0, static_cast<std::uint16_t>(g));
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
    const std::uint16_t target = one_group ? static_cast<std::uint16_t>(g) : io::all_groups;
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
        if (one_group) {
            log::write(log::level::warn, group_tag(g) + "fault reported through the control socket: " + s(fsm::to_string(k)) + ":" + detail);
            g_[g].app_fault = true;
            if (!g_[g].health_fault) post(fsm::command_kind::fault, static_cast<std::uint32_t>(k), target);
            return "ok: " + group_tag(g) + "fault " + s(fsm::to_string(k)) + " reported\n";
        }
        app_fault_ = true;
        fault_detail_ = s(fsm::to_string(k)) + ":" + detail;
        log::write(log::level::warn, "fault reported through the control socket: " + fault_detail_);
        for (std::size_t i = 0; i < g_.size(); ++i)
            if (!g_[i].health_fault && !g_[i].app_fault)
                post(fsm::command_kind::fault, static_cast<std::uint32_t>(k), static_cast<std::uint16_t>(i));
        return "ok: fault " + s(fsm::to_string(k)) + " reported\n";
    }
    if (cmd == "clear") {
        if (one_group) {
            g_[g].app_fault = false;
            if (g_[g].health_fault) return "ok: " + group_tag(g) + "a health check still fails\n";
            if (app_fault_) return "ok: " + group_tag(g) + "the node-wide application fault still holds (clear without --group)\n";
            post(fsm::command_kind::fault_cleared, 0, target);
            return "ok: " + group_tag(g) + "fault cleared; the group recovers and rejoins\n";
        }
        // Every application fault: the node-wide one and each group's.
        bool any = app_fault_;
        for (auto& gc : g_) any = any || gc.app_fault;
        if (!any) return "ok: no application fault to clear\n";
        app_fault_ = false;
        fault_detail_.clear();
        bool still = false;
        for (std::size_t i = 0; i < g_.size(); ++i) {
            g_[i].app_fault = false;
            if (g_[i].health_fault) still = true;
            else post(fsm::command_kind::fault_cleared, 0, static_cast<std::uint16_t>(i));
        }
        if (still) return "ok: application fault cleared; a health check still fails\n";
        return "ok: fault cleared; the node recovers and rejoins\n";
    }
    if (cmd == "inflight") {
        long long n = -1;
        if (!(in >> n) || n < 0) return "error: inflight needs a count >= 0\n";
        app_inflight_ = n;
        for (std::size_t i = 0; i < g_.size(); ++i) {
            if (one_group && i != g) continue;
            if (g_[i].draining && g_[i].drain_hook_id == 0 && n == 0) {
                g_[i].draining = false;
                post(fsm::command_kind::drain_done, 0, static_cast<std::uint16_t>(i));
            }
        }
        return "ok\n";
    }
    return "error: unknown command '" + std::string(req) +
           "' ([group <id>] status [json], switchover, fault <type> [detail], clear, inflight <n>)\n";
}

} // namespace heartwire::app
