// libFuzzer target: the receive path and role rules of a group of three state machines.
//
// The input is a script (fsm_script.hpp). A simulated group, on a fake clock, runs it: the
// machines' frames go through the real codec (encoded when sent, decoded when delivered)
// over a network the script controls, between operations that inject frames, lose, delay,
// duplicate and replay them, cut links, send commands, kill, stall and restart nodes.
// Then the script stops, the network heals and delivers everything, and the group runs
// quietly for several peer timeouts.
//
// Invariants (a broken one aborts with its name and the trace of the run):
//  - always: a node's epoch never decreases within one incarnation; the addresses the
//    machine says it holds are exactly those its claim/release actions gave the I/O layer;
//    the primary address only in primary or draining, the monitor address only in
//    monitor, nothing while the port has no carrier; every frame it asks to send encodes,
//    and decodes again at the receivers.
//  - after the quiet period, unless the script let a key holder lie (below): at most one
//    live node holds the primary address and at most one the monitor address, at every
//    turn of the last peer timeouts; when some live node is healthy, exactly one holds the
//    primary address and the clients' ARP entry points at it; when two healthy nodes may
//    watch (neither is told to stay down), one holds the monitor address.
//
// The fault model: the network may lose, delay, reorder, duplicate and replay genuine
// frames and carry any unauthenticated frame (garbage, crafted heartbeats without a valid
// tag, forged ARP and ICMP); nodes crash, stall, restart, fault, lose carrier and are
// commanded. A crafted heartbeat the machines believe (one with a valid tag, which the
// script may send only when its header allows it, or any in a group running [auth] mode =
// "none") is a lying group member: then only the "always" invariants are checked (no
// protocol of this kind survives a liar holding the key).
//
// The script language is in fsm_script.hpp (gen_corpus.cpp writes the seeds in it).
// Reproduce a finding with its trace: FUZZ_FSM_TRACE=1 build/fuzz/fuzz_fsm <file>.
#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "fsm_script.hpp"
#include "heartwire/fsm.hpp"
#include "heartwire/wire.hpp"
#include "sim.hpp"

namespace {

using namespace heartwire;
using fsm::action_kind;
using fsm::command_kind;
using fsm::event_kind;
using bytes = std::vector<std::byte>;
constexpr std::uint64_t us = sim::us, ms = sim::ms;

constexpr std::size_t group_size = 3;
constexpr std::uint32_t group_id = 7;
constexpr std::uint64_t tick = 500 * us;            // one turn of every node's loop
constexpr std::uint64_t max_script_ns = 1000 * ms;  // the script's own time is bounded
constexpr std::size_t max_ops = 512;
constexpr std::size_t history_size = 64;            // genuine frames kept for replays
constexpr std::size_t rx_ring = 512;                // a stalled node's RX ring

// ---------------------------------------------------------------- the script's bytes

class reader {
public:
    reader(const std::uint8_t* d, std::size_t n) : d_(d), n_(n) {}
    bool done() const { return i_ >= n_; }
    std::uint8_t u8() { return i_ < n_ ? d_[i_++] : 0; }
    // Big-endian, high byte first (each read sequenced: the byte order is the meaning).
    std::uint16_t u16() {
        const unsigned hi = u8();
        return static_cast<std::uint16_t>(hi << 8 | u8());
    }
    std::uint32_t u32() {
        const std::uint32_t hi = u16();
        return hi << 16 | u16();
    }
    std::uint64_t u64() {
        const std::uint64_t hi = u32();
        return hi << 32 | u32();
    }
    bytes take(std::size_t n) {
        bytes b;
        while (n-- > 0 && !done()) b.push_back(std::byte{u8()});
        return b;
    }

private:
    const std::uint8_t* d_;
    std::size_t n_;
    std::size_t i_{0};
};

bool trace_on = false; // FUZZ_FSM_TRACE=1: print every operation and the roles after it
bool strict = false;   // FUZZ_FSM_STRICT=1: check the settled group even after a lie (findings)

const char* op_name(fuzz::op o) {
    switch (o) {
#define HW_X(name)                                                                               \
    case fuzz::op::name:                                                                         \
        return #name;
        HEARTWIRE_FUZZ_OPS(HW_X)
#undef HW_X
    case fuzz::op::count_:
        break;
    }
    return "?";
}

constexpr std::size_t whole_group = ~std::size_t{0};

[[noreturn]] void broken(const char* what, std::size_t node, std::uint64_t now, const std::string& detail = {}) {
    const std::string who = node == whole_group ? "group" : "node " + std::to_string(node + 1);
    std::fprintf(stderr, "fuzz_fsm: invariant broken at t=%.3f ms, %s: %s%s%s\n", static_cast<double>(now) / ms,
                 who.c_str(), what, detail.empty() ? "" : ": ", detail.c_str());
    std::abort();
}

// ---------------------------------------------------------------- the simulated group

struct collect final : fsm::action_sink {
    std::vector<fsm::action> a;
    void emit(const fsm::action& x) noexcept override { a.push_back(x); }
};

struct node {
    fsm::params p;
    fsm::state s;
    bool up{false};         // the process runs
    bool started{false};    // it got its start event
    bool carrier{true};     // the port's link
    bool cut{false};        // partitioned away (switch failure): carrier stays up
    std::uint64_t frozen_until{0}; // a stalled loop: no turns, frames wait in the RX ring
    // Pipelined mode: the RX lcore stalled since `rx_since` until `rx_until`; the role loop
    // turns on, judging silence only up to `rx_since` (the machine's judged_ns).
    std::uint64_t rx_since{0};
    std::uint64_t rx_until{0};
    std::vector<std::pair<bytes, bool>> backlog; // frames waiting, and whether their tag verified
    bool kernel[fsm::address_count]{}; // what the claim/release actions left the I/O layer holding
    std::uint64_t epoch_seen{0};
    std::uint32_t gen{0};    // incarnations of this node, to drop a dead process's timers
    bool fence_fails{false}; // fence hooks this node runs fail (the script sets it)
};

struct in_flight {
    std::uint64_t at;
    std::uint64_t order;
    std::size_t from;
    bytes b;
};

enum class later_kind : std::uint8_t { start, drain_done, hook_done, power_off, power_on };
struct later {
    std::uint64_t at;
    std::size_t node;
    std::uint32_t gen;
    later_kind kind;
    fsm::hook_kind hook{};
    bool ok{true};
    std::uint32_t arg{};
};

struct header {
    bool preempt, has_fence, require_fence, has_boot_peer, byzantine, auth_none, flap, refresh, app_drains;
    cfg::probe_kind probe;
    std::uint8_t prio[group_size];
    std::uint64_t start_at[group_size];
    std::uint64_t latency;
    std::uint64_t drain_takes;
};

class group {
public:
    explicit group(const header& h) : h_(h) {
        for (std::size_t i = 0; i < group_size; ++i) {
            auto& n = nodes_[i];
            n.p = sim::test_params(static_cast<std::uint32_t>(i + 1), h.prio[i]);
            tune(n.p);
            restart_process(i);
            schedule({h.start_at[i], i, n.gen, later_kind::start});
        }
    }

    std::uint64_t now() const { return now_; }
    const header& hdr() const { return h_; }
    node& at(std::size_t i) { return nodes_[i % group_size]; }

    // ---- time

    void advance(std::uint64_t d) {
        const std::uint64_t end = now_ + d;
        while (now_ < end) turn();
    }

    // ---- the script's handles on the network

    void inject(std::size_t k, const wire::frame& f, bool authenticated) {
        note_lie(f, authenticated);
        wire::frame g = f;
        g.authenticated = authenticated;
        hand_over(k, g, nullptr);
    }
    void inject_bytes(std::size_t k, const bytes& b, bool authenticated) {
        wire::frame f = wire::decode(b);
        if (!f.ok()) return;
        note_lie(f, authenticated);
        f.authenticated = authenticated;
        hand_over(k, f, &b);
    }
    // A heartbeat the machines believe (a valid tag, or a group running without
    // authentication) that no member sent: a liar in the group.
    void note_lie(const wire::frame& f, bool authenticated) {
        if (f.kind == wire::frame_kind::heartbeat && (authenticated || h_.auth_none)) lied_ = true;
    }
    void drop(std::size_t i) {
        if (!wire_.empty()) wire_.erase(wire_.begin() + static_cast<long>(i % wire_.size()));
    }
    void deliver_now(std::size_t i) {
        if (wire_.empty()) return;
        const auto it = wire_.begin() + static_cast<long>(i % wire_.size());
        const in_flight m = std::move(*it);
        wire_.erase(it);
        deliver(m.from, m.b);
    }
    void duplicate(std::size_t i, std::uint64_t later_by) {
        if (wire_.empty()) return;
        in_flight m = wire_[i % wire_.size()];
        m.at += later_by;
        m.order = order_++;
        wire_.push_back(std::move(m));
    }
    void delay(std::size_t i, std::uint64_t by) {
        if (!wire_.empty()) wire_[i % wire_.size()].at += by;
    }
    // A genuine frame seen earlier, sent again by someone who recorded it (tag valid).
    void replay(std::size_t i, std::size_t k, bool to_all) {
        const std::size_t kept = std::min(history_next_, history_size);
        if (kept == 0) return;
        const auto& [from, b] = history_[i % kept];
        if (to_all) {
            deliver(from, b, true);
        } else {
            wire::frame f = wire::decode(b);
            f.authenticated = true;
            hand_over(k, f, &b);
        }
    }
    void toggle_cut(std::size_t k) { at(k).cut = !at(k).cut; }

    // ---- the nodes

    void command(std::size_t k, command_kind c, std::uint32_t arg = 0) {
        auto& n = at(k);
        if (!running(n)) return;
        fsm::event ev;
        ev.kind = event_kind::command;
        ev.cmd = c;
        ev.arg = arg;
        step(k % group_size, ev);
    }
    void set_carrier(std::size_t k, bool up) {
        auto& n = at(k);
        n.carrier = up;
        command(k, command_kind::link, up ? 1 : 0);
    }
    void kill(std::size_t k, bool notice) {
        auto& n = at(k);
        if (!n.up) return;
        // The node's guard outlives the engine and tells the group (seed 003 claims 14-15).
        if (notice && n.started && n.carrier && !n.cut) {
            const wire::frame f = sim::hb_frame(n.p.mac, mac_addr::heartwire_group(), fsm::engine_down_msg(n.s));
            send(k % group_size, f);
        }
        n.up = false;
        n.kernel[0] = n.kernel[1] = false; // a dead process's addresses go with it (exclusive mode)
    }
    void boot(std::size_t k) {
        const std::size_t i = k % group_size;
        if (nodes_[i].up) return;
        restart_process(i);
        start(i);
    }
    void stop_gracefully(std::size_t k) {
        auto& n = at(k);
        if (!running(n)) return;
        step(k % group_size, fsm::event{event_kind::shutdown});
        n.up = false;
    }
    void stall(std::size_t k, std::uint64_t d) {
        auto& n = at(k);
        if (n.up) n.frozen_until = std::max(n.frozen_until, now_ + d);
    }
    void rx_stall(std::size_t k, std::uint64_t d) {
        auto& n = at(k);
        if (!n.up) return;
        if (n.rx_until <= now_) n.rx_since = now_;
        n.rx_until = std::max(n.rx_until, now_ + d);
    }
    void set_keys(std::size_t k, const fsm::key_set& accepted, std::uint8_t preferred) {
        auto& n = at(k);
        if (!running(n)) return;
        collect out;
        fsm::set_keys(n.s, accepted, preferred, now_, out);
        after_step(k % group_size, out, nullptr);
    }

    // ---- the quiet period and its checks

    void settle() {
        quiet_ = true;
        for (std::size_t i = 0; i < group_size; ++i) {
            auto& n = nodes_[i];
            n.cut = false;
            n.frozen_until = 0;
            n.rx_until = 0;
            n.fence_fails = false;
            if (!n.carrier) set_carrier(i, true);
        }
        const std::uint64_t t = nodes_[0].p.peer_timeout_ns;
        const std::uint64_t drain = nodes_[0].p.drain_timeout_ns;
        advance(2 * drain + 10 * t);
        // A monitor that must fence first retries a failed fence with a doubling backoff
        // (up to 64 peer timeouts): the quiet period lasts until its next try, which the
        // healed network lets succeed.
        for (std::uint64_t retry = fence_retry_due(); retry != 0; retry = fence_retry_due()) advance(retry - now_ + 5 * t);
        for (std::uint64_t end = now_ + 3 * t; now_ < end;) {
            turn();
            if (!lied_ || strict) check_one_holder();
        }
        if (!lied_ || strict) check_service();
    }

    std::uint64_t fence_retry_due() const {
        std::uint64_t due = 0;
        for (const auto& n : nodes_)
            if (running(n) && n.s.fence_pending && n.s.fence_retry_ns > now_) due = std::max(due, n.s.fence_retry_ns);
        return due;
    }

    void check_one_holder() const {
        for (std::size_t a = 0; a < fsm::address_count; ++a) {
            std::size_t holders = 0, last = 0;
            for (std::size_t i = 0; i < group_size; ++i)
                if (nodes_[i].up && nodes_[i].s.holds[a]) ++holders, last = i;
            if (holders > 1)
                broken(a == 0 ? "two live nodes hold the primary address after the group settled"
                              : "two live nodes hold the monitor address after the group settled",
                       last, now_, roles());
        }
    }

    // Liveness once quiet: a healthy node means someone serves, and the clients know who;
    // two nodes that could watch (not told to stay down) mean someone watches.
    void check_service() const {
        std::size_t healthy = 0, watchers = 0, monitors = 0;
        std::size_t holder = group_size;
        for (std::size_t i = 0; i < group_size; ++i) {
            const auto& n = nodes_[i];
            if (!running(n)) continue;
            if (n.s.holds[0]) holder = i;
            if (n.s.holds[1]) ++monitors;
            if (n.s.fault != fsm::fault_kind::none || n.s.link_down) continue;
            ++healthy;
            if (n.s.r != role::fenced) ++watchers;
        }
        if (healthy == 0) return;
        if (holder == group_size)
            broken("a healthy group settled with nobody holding the primary address", whole_group, now_, roles());
        if (h_.refresh && client_arp_ != nodes_[holder].p.mac)
            broken("the clients' ARP entry does not point at the primary after the group settled", holder, now_, roles());
        if (watchers >= 2 && monitors == 0)
            broken("a healthy group of two or more settled with nobody watching the primary", whole_group, now_, roles());
    }

    std::string roles() const {
        std::string s;
        for (std::size_t i = 0; i < group_size; ++i) {
            const auto& n = nodes_[i];
            char buf[160];
            std::snprintf(buf, sizeof buf, "%s[%zu %s%s e%llu%s%s%s]", i ? " " : "", i + 1,
                          n.up ? std::string(to_string(n.s.r)).c_str() : "down", n.started ? "" : "(not started)",
                          static_cast<unsigned long long>(n.s.epoch), n.up && n.s.holds[0] ? " P" : "",
                          n.up && n.s.holds[1] ? " M" : "",
                          n.s.fault != fsm::fault_kind::none ? " fault" : "");
            s += buf;
            if (std::getenv("FUZZ_FSM_TRACE")) {
                const auto& c = n.s.c;
                std::snprintf(buf, sizeof buf, "{drops group %llu unauth %llu replay %llu oldinc %llu mac %llu epoch %llu role %llu}",
                              (unsigned long long)c.drop_other_group, (unsigned long long)c.drop_unauthenticated,
                              (unsigned long long)c.drop_replay, (unsigned long long)c.drop_old_incarnation,
                              (unsigned long long)c.drop_id_mac_mismatch, (unsigned long long)c.drop_epoch_jump,
                              (unsigned long long)c.drop_role);
                s += buf;
            }
        }
        return s;
    }

private:
    static bool running(const node& n) { return n.up && n.started; }

    void tune(fsm::params& p) const {
        // The protocol's timers, scaled so that a script covers many peer timeouts.
        p.group = group_id;
        p.require_auth = !h_.auth_none;
        p.interval_ns = 2 * ms;
        p.miss = 3;
        p.garp_repeat = 3;
        p.garp_interval_ns = 1 * ms;
        p.garp_refresh_ns = h_.refresh ? 50 * ms : 0;
        p.discovery_probes = 3;
        p.discovery_interval_ns = 2 * ms;
        p.discovery_wait_ns = 4 * ms;
        p.announce_interval_ns = 5 * ms;
        p.peer_timeout_ns = 20 * ms;
        p.stay_down_interval_ns = 5 * ms;
        p.preempt = h_.preempt;
        p.preempt_delay_ns = 10 * ms;
        p.drain_timeout_ns = 15 * ms;
        p.flap_hold_ns = h_.flap ? 100 * ms : 0;
        p.defend_interval_ns = 10 * ms;
        p.probe = h_.probe;
        p.has_fence = h_.has_fence || h_.require_fence;
        p.require_fence = h_.require_fence;
        p.has_boot_peer = h_.has_boot_peer;
    }

    void restart_process(std::size_t i) {
        auto& n = nodes_[i];
        // A boot stamps realtime: later than any earlier boot of this node.
        n.p.incarnation = std::max(n.p.incarnation + 1, 1'000'000'000'000 + now_);
        fsm::init(n.s, n.p);
        n.up = true;
        n.started = false;
        n.frozen_until = 0;
        n.rx_until = 0;
        n.backlog.clear();
        n.kernel[0] = n.kernel[1] = false;
        n.epoch_seen = 0;
        ++n.gen;
    }

    void start(std::size_t i) {
        auto& n = nodes_[i];
        if (!n.up || n.started) return;
        n.started = true;
        step(i, fsm::event{event_kind::start});
        if (!n.carrier) command(i, command_kind::link, 0);
    }

    void schedule(const later& l) { later_.push_back(l); }

    void turn() {
        now_ += tick;
        for (std::size_t k = 0; k < later_.size();) {
            if (later_[k].at > now_) {
                ++k;
                continue;
            }
            const later l = later_[k];
            later_.erase(later_.begin() + static_cast<long>(k));
            run_later(l);
        }
        // RX first (the engine drains the port before it decides), in arrival order.
        const auto earlier = [](const in_flight& a, const in_flight& b) {
            return a.at != b.at ? a.at < b.at : a.order < b.order;
        };
        if (!std::is_sorted(wire_.begin(), wire_.end(), earlier)) std::sort(wire_.begin(), wire_.end(), earlier);
        std::size_t due = 0;
        while (due < wire_.size() && wire_[due].at <= now_) ++due;
        if (due != 0) {
            std::vector<in_flight> now_due(std::make_move_iterator(wire_.begin()),
                                           std::make_move_iterator(wire_.begin() + static_cast<long>(due)));
            wire_.erase(wire_.begin(), wire_.begin() + static_cast<long>(due));
            for (const auto& m : now_due) deliver(m.from, m.b);
        }
        for (std::size_t i = 0; i < group_size; ++i) {
            auto& n = nodes_[i];
            if (!running(n)) continue;
            if (n.frozen_until > now_) continue;
            fsm::event tick{event_kind::tick};
            if (n.rx_until > now_) {
                tick.judged_ns = n.rx_since; // RX handed over everything up to its stall only
            } else if (n.frozen_until != 0 || n.rx_until != 0) {
                if (n.rx_until != 0) tick.rx_resume_ns = n.rx_until;
                n.frozen_until = 0;
                n.rx_until = 0;
                // The queue first (the engine drains RX before it decides), in order.
                auto backlog = std::move(n.backlog);
                n.backlog.clear();
                for (const auto& [b, authenticated] : backlog) {
                    wire::frame f = wire::decode(b);
                    f.authenticated = authenticated;
                    receive(i, f);
                }
            }
            step(i, tick);
        }
    }

    void run_later(const later& l) {
        auto& n = nodes_[l.node];
        switch (l.kind) {
        case later_kind::start:
            if (n.gen == l.gen) start(l.node);
            return;
        case later_kind::power_off:
            kill(l.node, false);
            return;
        case later_kind::power_on:
            boot(l.node);
            return;
        case later_kind::drain_done:
            if (n.gen == l.gen) command(l.node, command_kind::drain_done, l.arg);
            return;
        case later_kind::hook_done:
            if (n.gen == l.gen && running(n)) {
                fsm::event ev;
                ev.kind = event_kind::hook_done;
                ev.hook = l.hook;
                ev.hook_ok = l.ok;
                step(l.node, ev);
            }
            return;
        }
    }

    // One machine step, then the I/O layer's part and the checks.
    void step(std::size_t i, const fsm::event& ev, const wire::frame* current = nullptr) {
        collect out;
        fsm::step(nodes_[i].s, ev, now_, out);
        after_step(i, out, current);
    }

    void after_step(std::size_t i, const collect& out, const wire::frame* current) {
        auto& n = nodes_[i];
        if (n.s.epoch < n.epoch_seen)
            broken("epoch went down", i, now_,
                   std::to_string(n.epoch_seen) + " -> " + std::to_string(n.s.epoch));
        n.epoch_seen = n.s.epoch;
        for (const auto& a : out.a) carry_out(i, a, current);
        for (std::size_t a = 0; a < fsm::address_count; ++a)
            if (n.kernel[a] != n.s.holds[a])
                broken("state holds an address its actions did not claim or release", i, now_,
                       a == 0 ? "primary" : "monitor");
        const role r = n.s.r;
        if (n.s.holds[0] && r != role::primary && r != role::draining)
            broken("primary address held outside primary/draining", i, now_, std::string(to_string(r)));
        if (n.s.holds[1] && r != role::monitor)
            broken("monitor address held outside monitor", i, now_, std::string(to_string(r)));
        if (n.s.link_down && (n.s.holds[0] || n.s.holds[1])) broken("an address held without carrier", i, now_);
    }

    void carry_out(std::size_t i, const fsm::action& a, const wire::frame* current) {
        auto& n = nodes_[i];
        wire::frame f;
        switch (a.kind) {
        case action_kind::claim_address:
        case action_kind::release_address: {
            const auto w = static_cast<std::size_t>(a.which);
            const bool claim = a.kind == action_kind::claim_address;
            if (a.addr != n.p.addr[w]) broken("claim/release of an address not ours", i, now_);
            if (n.kernel[w] == claim) broken(claim ? "claim of an address already held" : "release of an address not held", i, now_);
            n.kernel[w] = claim;
            return;
        }
        case action_kind::run_hook:
            run_hook(i, a);
            return;
        case action_kind::drain:
            if (h_.app_drains || quiet_) schedule({now_ + h_.drain_takes, i, n.gen, later_kind::drain_done, {}, true, 0});
            return;
        case action_kind::reflect_echo:
            if (!current || current->kind != wire::frame_kind::icmp_echo) broken("reflect_echo without an echo request", i, now_);
            f = *current;
            f.eth = {current->eth.src, n.p.mac, wire::ethertype_ipv4};
            f.echo.is_reply = true;
            f.echo.src = current->echo.dst;
            f.echo.dst = current->echo.src;
            send(i, f);
            return;
        default:
            if (sim::to_frame(a, n.p, f)) send(i, f);
            return;
        }
    }

    void run_hook(std::size_t i, const fsm::action& a) {
        auto& n = nodes_[i];
        const std::size_t target = a.peer_id >= 1 && a.peer_id <= group_size ? a.peer_id - 1 : group_size;
        later done{now_ + 2 * ms, i, n.gen, later_kind::hook_done, a.hook, true, 0};
        switch (a.hook) {
        case fsm::hook_kind::fence:
            // A fence that works powers the peer off (STONITH); one that fails leaves it be.
            done.ok = !n.fence_fails && target < group_size;
            if (done.ok) schedule({now_ + 1 * ms, target, 0, later_kind::power_off});
            break;
        case fsm::hook_kind::boot_peer:
            // The failed peer is power-cycled (kill, then a fresh boot).
            if (target < group_size) {
                schedule({now_ + 3 * ms, target, 0, later_kind::power_off});
                schedule({now_ + 8 * ms, target, 0, later_kind::power_on});
            }
            break;
        default:
            break;
        }
        schedule(done);
    }

    // The bytes of a frame, through the codec (empty when it refuses the frame).
    bytes encode(const wire::frame& f) {
        std::size_t len = 0;
        switch (f.kind) {
        case wire::frame_kind::heartbeat:
            len = wire::encode_heartbeat(f.eth.dst, f.eth.src, f.hb, scratch_);
            break;
        case wire::frame_kind::arp:
            len = wire::encode_arp(f.eth.dst, f.eth.src, f.arp, scratch_);
            break;
        case wire::frame_kind::icmp_echo:
            len = wire::encode_icmp_echo(f.eth.dst, f.eth.src, f.echo, scratch_);
            break;
        case wire::frame_kind::nd:
            len = f.nd.is_advert ? wire::encode_na(f.eth.dst, f.eth.src, f.nd, scratch_)
                                 : wire::encode_ns(f.eth.dst, f.eth.src, f.nd, scratch_);
            break;
        case wire::frame_kind::icmp6_echo:
            len = wire::encode_icmp6_echo(f.eth.dst, f.eth.src, f.echo6, scratch_);
            break;
        case wire::frame_kind::invalid:
            break;
        }
        return bytes(scratch_.begin(), scratch_.begin() + static_cast<long>(len));
    }

    // Puts a frame the machine sent on the wire, through the codec.
    void send(std::size_t i, const wire::frame& f) {
        bytes b = encode(f);
        if (b.empty()) broken("the machine asked to send a frame the codec refuses", i, now_);
        const auto& n = nodes_[i];
        if (!n.carrier || n.cut) return;
        if (f.kind == wire::frame_kind::arp && f.arp.spa == n.p.addr[0] && f.arp.spa != ipv4_addr{}) client_arp_ = f.arp.sha;
        history_[history_next_++ % history_size] = {i, b};
        wire_.push_back({now_ + h_.latency, order_++, i, std::move(b)});
    }

    // A frame arriving on the wire, to everyone it is addressed to.
    void deliver(std::size_t from, const bytes& b, bool replayed = false) {
        wire::frame f = wire::decode(b);
        if (!f.ok()) broken("a frame a machine sent does not decode", from, now_, std::string(to_string(f.error)));
        f.authenticated = true; // the engine checked the tag the sender's engine wrote
        for (std::size_t j = 0; j < group_size; ++j) {
            if (j == from && !replayed) continue;
            const auto& n = nodes_[j];
            if (!f.eth.dst.is_multicast() && f.eth.dst != n.p.mac) continue;
            hand_over(j, f, &b);
        }
    }

    void hand_over(std::size_t j, const wire::frame& f, const bytes* b) {
        auto& n = nodes_[j % group_size];
        if (!running(n) || !n.carrier || n.cut) return;
        if (n.frozen_until > now_ || n.rx_until > now_) {
            bytes copy = b ? *b : encode(f);
            if (n.backlog.size() < rx_ring && !copy.empty()) n.backlog.emplace_back(std::move(copy), f.authenticated);
            return;
        }
        receive(j % group_size, f);
    }

    void receive(std::size_t j, const wire::frame& f) {
        fsm::event ev{event_kind::frame, &f};
        step(j, ev, &f);
    }

    header h_;
    std::array<node, group_size> nodes_;
    std::uint64_t now_{1 * ms};
    std::uint64_t order_{0};
    bool quiet_{false};
    bool lied_{false};
    std::vector<in_flight> wire_;
    std::vector<later> later_;
    std::array<std::pair<std::size_t, bytes>, history_size> history_;
    std::size_t history_next_{0};
    mac_addr client_arp_{};
    std::array<std::byte, 2048> scratch_{};
};

// ---------------------------------------------------------------- the script
// Every read is its own statement: the order the bytes are taken in is the script's
// meaning (and gen_corpus.cpp writes them in that order).

header read_header(reader& r) {
    header h{};
    const std::uint8_t a = r.u8();
    const std::uint8_t b = r.u8();
    const std::uint8_t c = r.u8();
    const std::uint8_t d = r.u8();
    h.preempt = a & fuzz::hdr_preempt;
    h.has_fence = a & fuzz::hdr_fence;
    h.require_fence = a & fuzz::hdr_require_fence;
    h.has_boot_peer = a & fuzz::hdr_boot_peer;
    const unsigned probe = (a >> 4) & 3;
    h.probe = probe == 1 ? cfg::probe_kind::icmp : probe == 2 ? cfg::probe_kind::both : cfg::probe_kind::heartbeat;
    h.byzantine = a & fuzz::hdr_byzantine;
    h.auth_none = a & fuzz::hdr_auth_none;
    // As the config does (validate: keyed mode refuses probe = "icmp"): an echo reply carries
    // no tag, so a keyed node probing by ICMP alone would never hear an answer.
    if (!h.auth_none && h.probe == cfg::probe_kind::icmp) h.probe = cfg::probe_kind::heartbeat;
    static constexpr std::uint8_t prios[] = {100, 100, 50, 150};
    for (std::size_t i = 0; i < group_size; ++i) {
        h.prio[i] = prios[(b >> (2 * i)) & 3];
        h.start_at[i] = 1 * ms + static_cast<std::uint64_t>((c >> (2 * i)) & 3) * 15 * ms;
    }
    h.flap = d & fuzz::hdr_flap_damping;
    h.refresh = !(d & fuzz::hdr_no_refresh);
    h.app_drains = !(d & fuzz::hdr_app_silent);
    h.latency = (d & fuzz::hdr_slow_link) ? 900 * us : 100 * us;
    h.drain_takes = (d & fuzz::hdr_slow_drain) ? 20 * ms : 2 * ms;
    return h;
}

mac_addr pick_mac(reader& r, group& g) {
    const std::uint8_t v = r.u8();
    switch (v % 5) {
    case 0: return g.at(0).p.mac;
    case 1: return g.at(1).p.mac;
    case 2: return g.at(2).p.mac;
    case 3: return mac_addr::heartwire_group();
    default: return mac_addr{{0x02, 0xee, 0, 0, 0, v}};
    }
}

ipv4_addr pick_ip(reader& r, group& g) {
    const std::uint8_t v = r.u8();
    switch (v % 4) {
    case 0: return g.at(0).p.addr[0];
    case 1: return g.at(0).p.addr[1];
    case 2: return ipv4_addr{};
    default: return ipv4_addr{0xa9fe0a00u | v};
    }
}

constexpr wire::hb_type hb_types[] = {
#define HW_X(name, val) wire::hb_type::name,
    HEARTWIRE_HB_TYPES(HW_X)
#undef HW_X
};

// A heartbeat with fields from the script, most of them near what the group uses (the
// sender's own id, incarnation and next seqs, the receiver's epoch and probe seqs), so the
// admission checks and the role rules see plausible values, not only noise.
wire::hb_msg craft_hb(reader& r, group& g, std::size_t target) {
    wire::hb_msg m;
    const std::uint8_t sel = r.u8();
    const std::uint8_t who = r.u8();
    const node& sender = g.at(who);
    const node& rx = g.at(target);
    m.type = hb_types[r.u8() % std::size(hb_types)];
    m.role = r.u8() % (wire::max_wire_role + 1);
    m.priority = (sel & 1) ? r.u8() : sender.p.priority;
    m.node_id = (sel & 2) ? r.u32() : sender.p.node_id;
    const std::uint64_t e = rx.s.epoch;
    switch ((sel >> 2) & 3) {
    case 0: m.epoch = e; break;
    case 1: m.epoch = e + 1 + r.u8(); break;
    case 2: m.epoch = e > 0 ? e - 1 : 0; break;
    default: m.epoch = r.u64(); break;
    }
    if (sel & 16) {
        m.seq = r.u64();
    } else {
        m.seq = sender.s.hb_seq + r.u8();
    }
    if (sel & 32) {
        m.ack_seq = r.u64();
    } else {
        m.ack_seq = rx.s.det.last_sent_seq() - (r.u8() & 3);
    }
    m.ts_ns = g.now() - std::uint64_t{r.u8()} * us;
    if (sel & 64) {
        m.ts_echo_ns = r.u64();
    } else {
        m.ts_echo_ns = g.now() - r.u16();
    }
    m.flags = r.u8() & 0x3f;
    m.group = (sel & 128) ? r.u32() : group_id;
    const std::uint8_t inc = r.u8();
    if (inc < 200) {
        m.incarnation = sender.p.incarnation;
    } else if (inc < 230) {
        m.incarnation = sender.p.incarnation + 1;
    } else {
        m.incarnation = r.u64();
    }
    m.key_id = r.u8();
    m.auth_alg = r.u8() & 1;
    return m;
}

// Only a byzantine script may give an injected heartbeat a valid tag.
bool take_auth(reader& r, const group& g) {
    const bool bit = r.u8() & 1;
    return g.hdr().byzantine && bit;
}

void run_op(reader& r, group& g) {
    const std::uint8_t code = r.u8();
    const std::size_t k = r.u8() % group_size;
    const auto o = static_cast<fuzz::op>(code % fuzz::op_count);
    switch (o) {
    case fuzz::op::advance_ticks:
        g.advance((std::uint64_t{r.u8()} + 1) * tick);
        break;
    case fuzz::op::advance_5ms:
        g.advance(std::uint64_t{r.u8()} * 5 * ms);
        break;
    case fuzz::op::raw: {
        const bool auth = take_auth(r, g);
        const std::size_t len = r.u8();
        g.inject_bytes(k, r.take(len), auth);
        break;
    }
    case fuzz::op::crafted_hb: {
        const bool auth = take_auth(r, g);
        const mac_addr src = pick_mac(r, g);
        const mac_addr dst = pick_mac(r, g);
        wire::hb_msg m = craft_hb(r, g, k);
        const std::size_t len = r.u8() % 48;
        const bytes payload = r.take(len);
        m.payload = payload;
        bytes b(2048);
        const std::size_t n = wire::encode_heartbeat(dst, src, m, b);
        if (n == 0) break;
        b.resize(n);
        g.inject_bytes(k, b, auth);
        break;
    }
    case fuzz::op::forged_arp: { // ARP carries no tag: anyone on the segment can send this
        wire::arp_msg a;
        a.op = (r.u8() & 1) ? wire::arp_op_reply : wire::arp_op_request;
        a.sha = pick_mac(r, g);
        a.spa = pick_ip(r, g);
        a.tha = pick_mac(r, g);
        a.tpa = pick_ip(r, g);
        const bool bcast = r.u8() & 1;
        g.inject(k, sim::arp_frame(a.sha, bcast ? mac_addr::broadcast() : g.at(k).p.mac, a), false);
        break;
    }
    case fuzz::op::forged_icmp: {
        wire::frame f;
        f.kind = wire::frame_kind::icmp_echo;
        f.eth.dst = pick_mac(r, g);
        f.eth.src = pick_mac(r, g);
        f.eth.ethertype = wire::ethertype_ipv4;
        f.echo.is_reply = r.u8() & 1;
        f.echo.src = pick_ip(r, g);
        f.echo.dst = pick_ip(r, g);
        if (r.u8() & 1) {
            f.echo.id = static_cast<std::uint16_t>(0x4857 ^ g.at(k).p.node_id);
        } else {
            f.echo.id = r.u16();
        }
        f.echo.seq = static_cast<std::uint16_t>(g.at(k).s.det.last_sent_seq() - r.u8());
        g.inject(k, f, false);
        break;
    }
    case fuzz::op::drop:
        g.drop(r.u8());
        break;
    case fuzz::op::deliver_now:
        g.deliver_now(r.u8());
        break;
    case fuzz::op::duplicate: {
        const std::size_t i = r.u8();
        g.duplicate(i, std::uint64_t{r.u8()} * tick);
        break;
    }
    case fuzz::op::delay: {
        const std::size_t i = r.u8();
        g.delay(i, std::uint64_t{r.u8()} * tick);
        break;
    }
    case fuzz::op::replay: {
        const std::size_t i = r.u8();
        const bool all = r.u8() & 1;
        g.replay(i, k, all);
        break;
    }
    case fuzz::op::cut:
        g.toggle_cut(k);
        break;
    case fuzz::op::switchover:
        g.command(k, command_kind::switchover);
        break;
    case fuzz::op::fault:
        g.command(k, command_kind::fault, r.u8() % 6);
        break;
    case fuzz::op::fault_cleared:
        g.command(k, command_kind::fault_cleared);
        break;
    case fuzz::op::carrier:
        g.set_carrier(k, !g.at(k).carrier);
        break;
    case fuzz::op::kill:
        g.kill(k, r.u8() & 1);
        break;
    case fuzz::op::boot:
        g.boot(k);
        break;
    case fuzz::op::shutdown:
        g.stop_gracefully(k);
        break;
    case fuzz::op::stall:
        g.stall(k, (std::uint64_t{r.u8()} + 1) * 4 * tick);
        break;
    case fuzz::op::fence_fails:
        g.at(k).fence_fails = r.u8() & 1;
        break;
    case fuzz::op::set_keys: {
        fsm::key_set keys{};
        const std::uint8_t a = r.u8();
        const std::uint8_t b = r.u8();
        const std::uint8_t pref = r.u8();
        for (std::uint8_t id : {a, b, pref})
            if (id) keys[id >> 6] |= std::uint64_t{1} << (id & 63);
        g.set_keys(k, keys, pref);
        break;
    }
    case fuzz::op::rx_stall:
        g.rx_stall(k, (std::uint64_t{r.u8()} + 1) * 4 * tick);
        break;
    case fuzz::op::count_:
        break;
    }
    if (trace_on) std::fprintf(stderr, "%-14s node %zu -> t=%8.2f ms %s\n", op_name(o), k + 1, double(g.now()) / ms, g.roles().c_str());
}

} // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    trace_on = std::getenv("FUZZ_FSM_TRACE") != nullptr;
    strict = std::getenv("FUZZ_FSM_STRICT") != nullptr;
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    reader r(data, size);
    group g(read_header(r));
    const std::uint64_t end = g.now() + max_script_ns;
    for (std::size_t ops = 0; ops < max_ops && !r.done() && g.now() < end; ++ops) run_op(r, g);
    g.settle();
    if (trace_on) std::fprintf(stderr, "settled at t=%.2f ms %s\n", double(g.now()) / ms, g.roles().c_str());
    return 0;
}
