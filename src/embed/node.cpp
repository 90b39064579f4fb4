// heartwire::embed::node (include/heartwire/embed.hpp): the engine, the application's port
// and the daemon's control loop, put together without EAL or a poll loop of our own.

#include "heartwire/embed.hpp"

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <fstream>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <vector>

#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>

#include "control/log.hpp"
#include "dpdk/clock.hpp"
#include "dpdk/engine.hpp"
#include "dpdk/port.hpp"
#include "embed/classify.hpp"
#include "embed/config.hpp"
#include "heartwire/auth.hpp"
#include "heartwire/config.hpp"
#include "heartwired/control_loop.hpp"
#include "heartwired/status.hpp"

namespace heartwire::embed {

namespace {

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("heartwire config " + path + ": cannot read it: " + std::strerror(errno));
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

io::port_attach port_of(const attach& a) {
    io::port_attach p;
    p.id = a.port_id;
    p.tx_queue = a.tx_queue;
    p.pool = a.mempool;
    p.mac = a.mac;
    return p;
}

struct calibrated_clock {
    io::tsc_clock c;
    calibrated_clock() { c.calibrate(); }
};

std::vector<auth::key> load_keys(const cfg::config& c) {
    if (c.auth.mode != cfg::auth_mode::keyed) {
        log::write(log::level::warn, "auth.mode = \"none\": heartwire frames are not authenticated; any host on the "
                                     "segment can move the address");
        return {};
    }
    auto kr = auth::load_key_file(c.auth.key_file);
    if (!kr.ok()) throw std::runtime_error("auth.key_file: " + kr.error);
    return std::move(kr.keys);
}

} // namespace

struct node::impl {
    // One group's addresses and what the application was last told about it.
    struct group_view {
        std::uint32_t id{};
        std::vector<ipv4_prefix> v4[2];
        std::vector<ipv6_prefix> v6[2];
        role seen_role{role::init};
        bool seen_holds[2]{};
        bool pending{false};    // a change not yet reported
        role pend_from{role::init};
        bool pend_holds[2]{};
    };

    cfg::config cfg;
    io::port port;
    calibrated_clock clock;
    io::engine engine;
    classifier cls;
    std::vector<group_view> groups;
    std::unique_ptr<std::atomic<bool>[]> holds; // 2 per group: primary, monitor (any thread)
    std::unique_ptr<app::control_loop> control;

    // Poll lcore only.
    bool started{false};
    bool stopped{false};
    std::uint64_t intended_ns{0};   // when the application was to be back (engine::turn)
    std::uint64_t seen_changes{~0ull};
    std::vector<std::size_t> pending; // groups with a change to report; reserved, never grows past
    std::function<void(const change&)> on_change;

    // The control side: claimed once, by start_control or run_control.
    std::mutex ctl_mu;
    std::condition_variable ctl_cv;
    bool ctl_claimed{false};
    bool ctl_done{false};
    bool ctl_thread{false};
    pthread_t ctl_tid{};
    std::atomic<bool> ctl_running{false};

    impl(cfg::config c, const attach& a)
        : cfg(std::move(c)), port(port_of(a)), engine(cfg, port, clock.c), cls(classifier::from_config(cfg)),
          groups(cfg.groups.size()), holds(std::make_unique<std::atomic<bool>[]>(2 * cfg.groups.size())) {
        log::level lvl;
        if (log::parse_level(cfg.control.log_level, lvl)) log::set_level(lvl);
        for (std::size_t g = 0; g < groups.size(); ++g) {
            groups[g].id = cfg.groups[g].id;
            for (const bool primary : {true, false}) {
                groups[g].v4[primary ? 0 : 1] = cfg::role_v4(cfg.groups[g].addresses, primary);
                groups[g].v6[primary ? 0 : 1] = cfg::role_v6(cfg.groups[g].addresses, primary);
            }
        }
        pending.reserve(groups.size());
        if (!cfg.port.eal_args.empty())
            log::write(log::level::info, "[port] eal ignored: the application started EAL");
        if (rte_eth_promiscuous_get(port.id()) != 1 && rte_eth_allmulticast_get(port.id()) != 1)
            log::write(log::level::warn, "port " + std::to_string(port.id()) +
                                             " is neither promiscuous nor allmulticast: heartwire's frames to the group "
                                             "03:68:77:00:00:01 may never arrive (rte_eth_allmulticast_enable)");
        control = std::make_unique<app::control_loop>(cfg, engine, load_keys(cfg));
        control->prepare_kernel_interface();
        char line[256];
        std::snprintf(line, sizeof line,
                      "%s (id %u) embedded on port %u (%s) mac %s, tx queue %u, %zu group(s), interval %u us x %u",
                      cfg.node.name.c_str(), cfg.node.id, port.id(), port.driver().c_str(), port.mac().to_string().c_str(),
                      port.tx_queue(), groups.size(), cfg.detect.interval_us, cfg.detect.miss);
        log::write(log::level::info, line);
    }

    void start() noexcept {
        if (started) return;
        started = true;
        engine.start_embedded();
        observe();
    }

    // What the machines hold now, into the flags; changes are remembered for poll(). The
    // machines are read only when the engine emitted a role or address action since the
    // last look (rare: many groups cost nothing per turn).
    void observe() noexcept {
        const std::uint64_t n = engine.changes_now();
        if (n == seen_changes) return;
        seen_changes = n;
        for (std::size_t g = 0; g < groups.size(); ++g) {
            auto& v = groups[g];
            const role r = engine.role_now(g);
            const bool h[2] = {engine.holds_now(g, fsm::address_id::primary), engine.holds_now(g, fsm::address_id::monitor)};
            if (r == v.seen_role && h[0] == v.seen_holds[0] && h[1] == v.seen_holds[1]) continue;
            if (!v.pending) {
                v.pending = true;
                v.pend_from = v.seen_role;
                v.pend_holds[0] = v.seen_holds[0];
                v.pend_holds[1] = v.seen_holds[1];
                pending.push_back(g);
            }
            v.seen_role = r;
            for (int i = 0; i < 2; ++i) {
                v.seen_holds[i] = h[i];
                holds[2 * g + i].store(h[i], std::memory_order_release);
            }
        }
    }

    void dispatch() noexcept {
        for (const std::size_t g : pending) {
            auto& v = groups[g];
            v.pending = false;
            change c;
            c.group = g;
            c.group_id = v.id;
            c.from = v.pend_from;
            c.to = v.seen_role;
            c.epoch = engine.epoch_now(g);
            c.gained_primary = !v.pend_holds[0] && v.seen_holds[0];
            c.lost_primary = v.pend_holds[0] && !v.seen_holds[0];
            c.gained_monitor = !v.pend_holds[1] && v.seen_holds[1];
            c.lost_monitor = v.pend_holds[1] && !v.seen_holds[1];
            c.primary = {v.v4[0], v.v6[0]};
            c.monitor = {v.v4[1], v.v6[1]};
            if (c.from == c.to && !c.gained_primary && !c.lost_primary && !c.gained_monitor && !c.lost_monitor) continue;
            if (on_change) on_change(c);
        }
        pending.clear();
    }

    // The control loop until ctl_running drops; then its last turn (the engine's final
    // events: addresses off the kernel, hooks).
    void control_body() noexcept {
        try {
            control->run(ctl_running);
        } catch (const std::exception& ex) {
            log::write(log::level::error, std::string("control loop stopped: ") + ex.what());
        }
        {
            std::lock_guard lk(ctl_mu);
            ctl_done = true;
        }
        ctl_cv.notify_all();
    }

    bool claim_control() {
        std::lock_guard lk(ctl_mu);
        if (stopped || ctl_claimed) return false;
        ctl_claimed = true;
        ctl_running.store(true, std::memory_order_release);
        return true;
    }

    void stop() noexcept {
        if (stopped) return;
        if (started) {
            engine.stop_embedded();
            observe();
            dispatch();
        }
        bool claimed, joinable;
        {
            std::lock_guard lk(ctl_mu);
            stopped = true;
            claimed = ctl_claimed;
            joinable = ctl_thread;
            ctl_thread = false;
        }
        ctl_running.store(false, std::memory_order_release);
        if (claimed) {
            std::unique_lock lk(ctl_mu);
            ctl_cv.wait(lk, [&] { return ctl_done; });
        } else {
            control_body(); // never started: one last turn for what the shutdown asked for
        }
        if (joinable) pthread_join(ctl_tid, nullptr);
    }
};

namespace {

std::unique_ptr<node::impl> make(const std::string& text, const std::string& source, const attach& a) {
    cfg::config c = load_config(text, source);
    try {
        return std::make_unique<node::impl>(std::move(c), a);
    } catch (const std::runtime_error& ex) { // setup_error, auth, ctl socket (system_error)
        throw std::runtime_error(std::string("heartwire: ") + ex.what());
    }
}

} // namespace

node::node(const config_file& c, const attach& a) : p_(make(read_file(c.path), c.path, a)) {}
node::node(const config_text& c, const attach& a) : p_(make(c.toml, "(text)", a)) {}

node::~node() {
    if (!p_) return;
    p_->on_change = nullptr; // what the callback captured may be gone already
    p_->stop();
}

node::node(node&&) noexcept = default;
node& node::operator=(node&& o) noexcept {
    if (this != &o) {
        if (p_) {
            p_->on_change = nullptr;
            p_->stop();
        }
        p_ = std::move(o.p_);
    }
    return *this;
}

bool node::is_heartwire(const rte_mbuf* m) const noexcept {
    const int vid = (m->ol_flags & RTE_MBUF_F_RX_VLAN_STRIPPED) ? (m->vlan_tci & 0xfff) : classifier::no_stripped_tag;
    return p_->cls.match({rte_pktmbuf_mtod(m, const std::byte*), rte_pktmbuf_data_len(m)}, vid);
}

void node::rx(rte_mbuf* const* pkts, std::uint16_t n) noexcept {
    auto& i = *p_;
    if (i.stopped) {
        rte_pktmbuf_free_bulk(const_cast<rte_mbuf**>(pkts), n);
        return;
    }
    i.start();
    i.engine.deliver(pkts, n, i.clock.c.now_ns());
    i.observe(); // a step-down in these frames: holds_primary() drops now, the callback in poll()
}

std::uint64_t node::poll(std::uint64_t rx_empty_ns) noexcept {
    auto& i = *p_;
    if (i.stopped) return i.clock.c.now_ns() + 1'000'000'000;
    i.start();
    const std::uint64_t next = i.engine.turn(i.intended_ns, rx_empty_ns);
    // No control side (start_control/run_control never called): nothing reads the events, so
    // they are dropped here instead of filling the ring and being replayed, hours old, by
    // stop()'s last control turn (a stale claim would put an address back on the kernel).
    if (!i.ctl_running.load(std::memory_order_acquire)) i.engine.poll_events([](const io::control_event&) {});
    // The application may be away until heartwire's next timer, and no longer: a timer due
    // already (or one the machine does not move on) means back at once.
    i.intended_ns = std::max(i.clock.c.now_ns(), next);
    i.observe();
    i.dispatch();
    return next;
}

std::uint64_t node::now_ns() const noexcept { return p_->clock.c.now_ns(); }

std::size_t node::group_count() const noexcept { return p_->groups.size(); }
std::uint32_t node::group_id(std::size_t group) const noexcept {
    return group < p_->groups.size() ? p_->groups[group].id : 0;
}

bool node::holds_primary(std::size_t group) const noexcept {
    return group < p_->groups.size() && p_->holds[2 * group].load(std::memory_order_acquire);
}
bool node::holds_monitor(std::size_t group) const noexcept {
    return group < p_->groups.size() && p_->holds[2 * group + 1].load(std::memory_order_acquire);
}

void node::on_change(std::function<void(const change&)> cb) { p_->on_change = std::move(cb); }

addresses node::addresses_of(address_role r, std::size_t group) const noexcept {
    if (group >= p_->groups.size()) return {};
    const auto k = static_cast<std::size_t>(r);
    return {p_->groups[group].v4[k], p_->groups[group].v6[k]};
}

status node::status() const noexcept {
    const auto s = p_->engine.status();
    const auto& rc = p_->engine.role_counters();
    embed::status o;
    o.r = s.r;
    o.epoch = s.epoch;
    o.holds_primary = s.holds[0];
    o.holds_monitor = s.holds[1];
    o.watched_id = s.watched_id;
    o.detector_armed = s.detector_armed;
    o.last_rtt_ns = s.last_rtt_ns;
    o.takeovers = s.c.takeovers;
    o.step_downs = s.c.step_downs;
    o.false_takeovers = s.c.false_takeovers;
    o.probes_sent = s.c.probes_sent;
    o.answers = s.c.answers;
    o.garps_sent = s.c.garps_sent;
    o.arp_replies = s.c.arp_replies;
    o.echo_replies = s.c.echo_replies;
    o.rx_packets = rc.rx_packets.get();
    o.rx_invalid = rc.rx_invalid.get();
    o.tx_packets = rc.tx_packets.get();
    o.tx_dropped = rc.tx_dropped.get();
    o.tx_nombuf = rc.tx_nombuf.get();
    return o;
}

std::string node::status_json() const {
    static const std::deque<app::takeover_record> no_takeovers;
    static const std::deque<std::string> no_notes;
    static const std::string no_detail;
    const app::status_inputs in{p_->cfg, p_->engine, no_takeovers, no_notes, no_detail, -1, {}, nullptr};
    return app::status_json(in);
}

void node::set_link(bool up) noexcept {
    io::engine_command cmd;
    cmd.k = io::engine_command::kind::command;
    cmd.cmd = fsm::command_kind::link;
    cmd.arg = up ? 1 : 0;
    if (!p_->engine.post(cmd)) log::write(log::level::error, "engine command ring full: link change lost");
}

void node::start_control() {
    auto& i = *p_;
    std::lock_guard lk(i.ctl_mu); // the thread takes it only when it ends
    if (i.stopped || i.ctl_claimed) return;
    i.ctl_running.store(true, std::memory_order_release);
    const int rc = rte_ctrl_thread_create(
        &i.ctl_tid, "hw-control", nullptr,
        [](void* arg) -> void* {
            static_cast<impl*>(arg)->control_body();
            return nullptr;
        },
        &i);
    if (rc != 0) {
        i.ctl_running.store(false, std::memory_order_release);
        throw std::runtime_error(std::string("heartwire: cannot start the control thread: ") + std::strerror(rc < 0 ? -rc : rc));
    }
    i.ctl_claimed = true;
    i.ctl_thread = true;
}

void node::run_control() {
    if (p_->claim_control()) p_->control_body();
}

void node::stop() noexcept { p_->stop(); }

} // namespace heartwire::embed
