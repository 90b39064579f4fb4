#pragma once
// A deterministic network of state machines on a fake clock: frames the machines emit are
// delivered to the others after a fixed latency, as decoded frames. No DPDK, no sockets:
// the role rules are tested exactly, multi-node scenarios included.

#include <algorithm>
#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <vector>

#include "heartwire/fsm.hpp"

namespace heartwire::sim {

inline constexpr std::uint64_t us = 1'000;
inline constexpr std::uint64_t ms = 1'000'000;

inline ipv4_addr ip(const char* s) { return *ipv4_addr::parse(s); }

inline fsm::params test_params(std::uint32_t id, std::uint8_t prio = 100) {
    fsm::params p;
    p.node_id = id;
    p.priority = prio;
    p.mac = mac_addr{{0x02, 0, 0, 0, 0, static_cast<std::uint8_t>(id)}};
    p.addr[0] = ip("169.254.10.100");
    p.addr[1] = ip("169.254.10.101");
    p.interval_ns = 10 * us;
    p.miss = 3;
    p.garp_repeat = 3;
    p.garp_interval_ns = 100 * us;
    p.garp_refresh_ns = 1000 * ms;
    p.discovery_probes = 3;
    p.discovery_interval_ns = 10 * ms;
    p.discovery_wait_ns = 20 * ms;
    p.announce_interval_ns = 10 * ms;
    p.peer_timeout_ns = 100 * ms;
    p.stay_down_interval_ns = 10 * ms;
    return p;
}

// Records every action, for assertions.
struct recorder final : fsm::action_sink {
    std::vector<fsm::action> all;
    void emit(const fsm::action& a) noexcept override { all.push_back(a); }
    std::size_t count(fsm::action_kind k) const {
        return static_cast<std::size_t>(std::count_if(all.begin(), all.end(), [&](const auto& a) { return a.kind == k; }));
    }
    const fsm::action* last(fsm::action_kind k) const {
        for (auto it = all.rbegin(); it != all.rend(); ++it)
            if (it->kind == k) return &*it;
        return nullptr;
    }
    // The newest notice of this kind (nullptr: none).
    const fsm::action* last_note(fsm::note n) const {
        for (auto it = all.rbegin(); it != all.rend(); ++it)
            if (it->kind == fsm::action_kind::notice && it->what == n) return &*it;
        return nullptr;
    }
    void clear() { all.clear(); }
};

// Frames as the codec would hand them to the machine. A hand-made heartbeat that leaves
// them 0 gets the test group (1), the first incarnation and a fresh seq from one counter that only grows, so it
// passes admission like a real peer's next frame; replay tests set seq themselves.
inline std::uint64_t next_test_seq() {
    static std::uint64_t seq = std::uint64_t{1} << 40;
    return ++seq;
}
inline wire::frame hb_frame(const mac_addr& src, const mac_addr& dst, const wire::hb_msg& m) {
    wire::frame f;
    f.kind = wire::frame_kind::heartbeat;
    f.eth = {dst, src, wire::ethertype_heartwire};
    f.hb = m;
    if (f.hb.group == 0) f.hb.group = 1;
    if (f.hb.incarnation == 0) f.hb.incarnation = 1; // params' default: a node's first boot
    if (f.hb.seq == 0) f.hb.seq = next_test_seq();
    f.authenticated = true; // as the engine marks a frame whose tag verified
    return f;
}
inline wire::frame arp_frame(const mac_addr& src, const mac_addr& dst, const wire::arp_msg& a) {
    wire::frame f;
    f.kind = wire::frame_kind::arp;
    f.eth = {dst, src, wire::ethertype_arp};
    f.arp = a;
    return f;
}

// Turns a send action into the frame a peer would decode.
inline bool to_frame(const fsm::action& a, const fsm::params& from, wire::frame& f) {
    using fsm::action_kind;
    switch (a.kind) {
    case action_kind::send_heartbeat:
        f = hb_frame(from.mac, a.dst, a.hb);
        return true;
    case action_kind::send_arp_probe:
        f = arp_frame(from.mac, mac_addr::broadcast(), {wire::arp_op_request, from.mac, {}, {}, a.addr});
        return true;
    case action_kind::send_garp:
        f = arp_frame(from.mac, mac_addr::broadcast(), {wire::arp_op_request, from.mac, a.addr, {}, a.addr});
        return true;
    case action_kind::send_arp_reply:
        f = arp_frame(from.mac, a.dst, a.arp);
        return true;
    case action_kind::send_icmp_probe:
        f.kind = wire::frame_kind::icmp_echo;
        f.eth = {a.dst, from.mac, wire::ethertype_ipv4};
        f.echo.src = from.addr[1];
        f.echo.dst = a.addr;
        f.echo.id = static_cast<std::uint16_t>(0x4857 ^ from.node_id);
        f.echo.seq = a.icmp_seq;
        return true;
    default:
        return false;
    }
}

class network {
public:
    struct node {
        fsm::state s;
        recorder out;
        bool up{true};
        bool started{false};
        std::size_t delivered_upto{0}; // actions already put on the wire
    };

    std::uint64_t now{1};
    std::uint64_t latency{2 * us};
    std::uint64_t tick_step{1 * us};
    std::vector<node> nodes;
    // Cut links: partitions[i] true means node i hears nobody and nobody hears it.
    std::vector<bool> cut;

    std::size_t add(const fsm::params& p) {
        nodes.emplace_back();
        fsm::init(nodes.back().s, p);
        cut.push_back(false);
        return nodes.size() - 1;
    }
    void start(std::size_t i) {
        auto& n = nodes[i];
        n.up = true;
        n.started = true;
        fsm::event ev{fsm::event_kind::start};
        fsm::step(n.s, ev, now, n.out);
        pump(i);
    }
    // A crash: it stops stepping and hearing; restart() boots a fresh process.
    void kill(std::size_t i) { nodes[i].up = false; }
    void restart(std::size_t i) {
        fsm::params p = nodes[i].s.p;
        ++p.incarnation; // a new boot: peers take it under its new incarnation
        fsm::init(nodes[i].s, p);
        nodes[i].out.clear();
        nodes[i].delivered_upto = 0;
        start(i);
    }
    void stop_gracefully(std::size_t i) {
        auto& n = nodes[i];
        fsm::event ev{fsm::event_kind::shutdown};
        fsm::step(n.s, ev, now, n.out);
        pump(i);
        n.up = false;
    }

    // What the operator, the application or a health check says to node i.
    void command(std::size_t i, fsm::command_kind k, std::uint32_t arg = 0) {
        auto& n = nodes[i];
        fsm::event ev;
        ev.kind = fsm::event_kind::command;
        ev.cmd = k;
        ev.arg = arg;
        fsm::step(n.s, ev, now, n.out);
        pump(i);
    }
    // The application's answer to a drain action: done after this long, with this in flight.
    std::uint64_t drain_takes{5 * ms};
    std::uint32_t drain_leaves_inflight{0};
    bool app_answers_drain{true};

    void run_for(std::uint64_t d) { run_until([] { return false; }, d); }

    // Runs until pred() holds or d passes; returns whether pred held.
    bool run_until(const std::function<bool()>& pred, std::uint64_t d) {
        const std::uint64_t end = now + d;
        while (now < end) {
            if (pred()) return true;
            advance(tick_step);
        }
        return pred();
    }

    role role_of(std::size_t i) const { return nodes[i].s.r; }
    std::size_t count_role(role r) const {
        return static_cast<std::size_t>(std::count_if(nodes.begin(), nodes.end(), [&](const node& n) {
            return n.up && n.s.r == r;
        }));
    }
    std::size_t holders(fsm::address_id a) const {
        return static_cast<std::size_t>(std::count_if(nodes.begin(), nodes.end(), [&](const node& n) {
            return n.up && n.s.holds[static_cast<std::size_t>(a)];
        }));
    }
    // The MAC that last announced the primary address by GARP (what a client's ARP cache holds).
    mac_addr client_arp_primary() const { return client_primary_mac_; }

private:
    struct in_flight {
        std::uint64_t at;
        std::size_t from;
        wire::frame f;
    };

    void pump(std::size_t i, const wire::frame* current = nullptr) {
        auto& n = nodes[i];
        for (; n.delivered_upto < n.out.all.size(); ++n.delivered_upto) {
            const auto& a = n.out.all[n.delivered_upto];
            wire::frame f;
            if (a.kind == fsm::action_kind::drain && app_answers_drain) {
                later_.push_back({now + drain_takes, i, drain_leaves_inflight});
                continue;
            }
            if (a.kind == fsm::action_kind::reflect_echo && current) {
                f = *current;
                f.eth = {current->eth.src, n.s.p.mac, wire::ethertype_ipv4};
                f.echo.is_reply = true;
                f.echo.src = current->echo.dst;
                f.echo.dst = current->echo.src;
            } else if (!to_frame(a, n.s.p, f)) {
                continue;
            }
            if (cut[i]) continue;
            if (f.kind == wire::frame_kind::arp && f.arp.is_gratuitous() && f.arp.spa == n.s.p.addr[0])
                client_primary_mac_ = n.s.p.mac;
            wire_.push_back({now + latency, i, f});
        }
    }

    void deliver(const in_flight& m) {
        for (std::size_t j = 0; j < nodes.size(); ++j) {
            auto& n = nodes[j];
            if (j == m.from || !n.up || !n.started || cut[j]) continue;
            const mac_addr& dst = m.f.eth.dst;
            if (!dst.is_multicast() && dst != n.s.p.mac) continue;
            fsm::event ev{fsm::event_kind::frame, &m.f};
            fsm::step(n.s, ev, now, n.out);
            pump(j, &m.f);
        }
    }

    void advance(std::uint64_t d) {
        now += d;
        for (std::size_t k = 0; k < later_.size();) {
            if (later_[k].at <= now) {
                const auto c = later_[k];
                later_.erase(later_.begin() + static_cast<long>(k));
                if (nodes[c.node].up) command(c.node, fsm::command_kind::drain_done, c.arg);
            } else {
                ++k;
            }
        }
        while (!wire_.empty() && wire_.front().at <= now) {
            const in_flight m = wire_.front();
            wire_.pop_front();
            deliver(m);
        }
        for (std::size_t i = 0; i < nodes.size(); ++i) {
            auto& n = nodes[i];
            if (!n.up || !n.started) continue;
            fsm::event ev{fsm::event_kind::tick};
            fsm::step(n.s, ev, now, n.out);
            pump(i);
        }
    }

    struct scheduled {
        std::uint64_t at;
        std::size_t node;
        std::uint32_t arg;
    };
    std::vector<scheduled> later_;
    std::deque<in_flight> wire_;
    mac_addr client_primary_mac_{};
};

} // namespace heartwire::sim
