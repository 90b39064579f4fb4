#include "dpdk/engine.hpp"

#include <pthread.h>
#include <sched.h>
#include <linux/futex.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>

#include <algorithm>
#include <cerrno>
#include <utility>
#include <bit>
#include <cstring>
#include <span>

#include <rte_errno.h>
#include <rte_ether.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_pause.h>
#include <rte_ring.h>
#include <rte_ring_elem.h>

#include "dpdk/eal.hpp"
#include "dpdk/port.hpp"
#include "heartwire/auth.hpp"
#include "heartwire/state.hpp"
#include "heartwire/turn.hpp"

namespace heartwire::io {

namespace {

constexpr unsigned max_burst = 512;
constexpr unsigned tx_batch = 64;
constexpr std::uint64_t publish_period_ns = 1'000'000;
constexpr std::uint64_t loop_gap_threshold_ns = 100'000;
constexpr unsigned pipe_size = 4096;

// Pipelined hand-off element: the mbuf, its receive time and the decoded frame (spans point
// into the mbuf, which the role lcore frees).
struct rx_item {
    rte_mbuf* m;
    std::uint64_t rx_ns;
    wire::frame f;
};

std::span<const std::byte> bytes_of(const rte_mbuf* m) noexcept {
    return {rte_pktmbuf_mtod(m, const std::byte*), rte_pktmbuf_data_len(m)};
}

rte_ring* make_ring(const char* prefix, unsigned esize, unsigned count) {
    static std::atomic<unsigned> n{0};
    const std::string name = std::string(prefix) + std::to_string(n.fetch_add(1));
    rte_ring* r = rte_ring_create_elem(name.c_str(), esize, count, static_cast<int>(rte_socket_id()),
                                       RING_F_SP_ENQ | RING_F_SC_DEQ);
    if (!r) throw setup_error(std::string("rte_ring_create_elem ") + name + " failed: " + rte_strerror(rte_errno));
    return r;
}

// One turn's wake lateness: the histogram, and the two counters status has always shown.
void record_gap(gap_histogram& h, lcore_counters& c, std::uint64_t late) noexcept {
    h.add_gap(late);
    if (late <= loop_gap_threshold_ns) return;
    c.loop_gaps.add();
    if (late > c.loop_gap_max_ns.get()) c.loop_gap_max_ns.v.store(late, std::memory_order_relaxed);
}

void count_drop(lcore_counters& c, wire::decode_error e) noexcept {
    c.rx_invalid.add();
    c.drops[static_cast<std::size_t>(e)].add();
}

} // namespace

void rtt_histogram::add(std::uint64_t ns) noexcept {
    const unsigned b = ns ? std::min<unsigned>(39, 63 - static_cast<unsigned>(std::countl_zero(ns))) : 0;
    bucket[b].add();
    samples.add();
    sum_ns.add(ns);
    if (ns > max_ns.get()) max_ns.v.store(ns, std::memory_order_relaxed);
}

std::uint64_t rtt_histogram::percentile(double p) const noexcept {
    const std::uint64_t total = samples.get();
    if (total == 0) return 0;
    const auto want = static_cast<std::uint64_t>(p / 100.0 * static_cast<double>(total));
    std::uint64_t seen = 0;
    for (unsigned i = 0; i < bucket.size(); ++i) {
        seen += bucket[i].get();
        if (seen > want) return std::min<std::uint64_t>((std::uint64_t{2} << i) - 1, max_ns.get());
    }
    return max_ns.get();
}

// Carries out the machine's actions: frames are encoded straight into mbufs and batched for
// one tx_burst; slow actions go to the control ring.
// A replicated store (issue 10) and what the engine remembers of it between turns.
struct engine::store_slot {
    std::size_t index;
    std::size_t group; // its machine in m_
    state::region* region;
    replica::host host;
    std::uint64_t seen_divergences{0};
    std::uint64_t owed_seq{0};      // completed for a waiter on the role lcore's CPU ...
    std::uint8_t owed_sleeps{0};    // ... which gets this many more sleeps until it has seen it
    std::uint8_t unseen{0};         // completions in a row given a sleep no wait there saw
    bool was_in_sync{false};
    std::uint64_t join_hold_ns{0};  // [[state]] join_hold_ms
    store_slot(std::size_t i, std::size_t g, state::region& r, const replica::host_params& p, std::uint64_t hold)
        : index(i), group(g), region(&r), host(r.table(), p), join_hold_ns(hold) {}
    // A follower whose copy is joining or repairing holds its machine's silence takeovers
    // (fsm::state::replica_join_hold_ns: the longest of the group's stores that are).
    void hold_if_joining(fsm::state& m) const noexcept {
        if (host.current() == replica::side::follower && !host.consistent())
            m.replica_join_hold_ns = std::max(m.replica_join_hold_ns, join_hold_ns);
    }
};

class tx_sink final : public fsm::action_sink {
public:
    tx_sink(engine& e, lcore_counters& c) : e_(e), c_(c) {}

    void begin(const wire::frame* current, std::uint64_t now, std::size_t group = 0) noexcept {
        cur_ = current;
        now_ = now;
        group_ = group;
    }

    void emit(const fsm::action& a) noexcept override {
        using fsm::action_kind;
        const mac_addr& me = e_.port_.mac();
        switch (a.kind) {
        case action_kind::send_heartbeat:
            if (e_.bundle_budget_ != 0 && wire::bundlable(a.hb)) return bundle(a.hb, a.dst);
            put([&](std::span<std::byte> b) {
                return signed_frame(b, [&](const wire::hb_msg& m, std::span<std::byte> out) {
                    return wire::encode_heartbeat(a.dst, me, m, out);
                }, a.hb);
            });
            return;
        case action_kind::send_arp_probe:
            put([&](std::span<std::byte> b) { return wire::encode_arp_probe(me, a.addr, b); });
            return;
        case action_kind::send_garp:
            if (e_.m_kernel_announces_[group_]) return to_control(a);
            put([&](std::span<std::byte> b) { return wire::encode_garp(me, a.addr, b); });
            // The first GARP of a takeover must not wait behind anything: send now. The
            // rest of a turn's announcements (many groups taking over at once) go in bursts.
            first_announcement();
            return;
        case action_kind::send_arp_reply:
            put([&](std::span<std::byte> b) { return wire::encode_arp(a.dst, me, a.arp, b); });
            return;
        case action_kind::send_icmp_probe: {
            wire::icmp_echo m;
            const fsm::state& st = e_.m_[group_];
            m.src = st.p.addr[static_cast<std::size_t>(fsm::address_id::monitor)];
            m.dst = a.addr;
            m.id = st.icmp_id;
            m.seq = a.icmp_seq;
            put([&](std::span<std::byte> b) { return wire::encode_icmp_echo(a.dst, me, m, b); });
            return;
        }
        case action_kind::reflect_echo: {
            if (!cur_ || cur_->kind != wire::frame_kind::icmp_echo) return;
            wire::icmp_echo m = cur_->echo;
            m.is_reply = true;
            m.src = cur_->echo.dst;
            m.dst = cur_->echo.src;
            m.ttl = 64;
            put([&](std::span<std::byte> b) { return wire::encode_icmp_echo(cur_->eth.src, me, m, b); });
            return;
        }
        case action_kind::send_na:
            if (e_.m_kernel_announces_[group_]) return to_control(a);
            put([&](std::span<std::byte> b) { return wire::encode_unsolicited_na(me, a.addr6, b); });
            first_announcement(); // as a GARP
            return;
        case action_kind::send_dad_ns:
            put([&](std::span<std::byte> b) { return wire::encode_dad_ns(me, a.addr6, b); });
            return;
        case action_kind::answer_ns:
            if (!cur_ || cur_->kind != wire::frame_kind::nd) return;
            put([&](std::span<std::byte> b) { return wire::encode_na_answer(*cur_, me, b); });
            return;
        case action_kind::reflect_echo6: {
            if (!cur_ || cur_->kind != wire::frame_kind::icmp6_echo) return;
            wire::icmp6_echo m = cur_->echo6;
            m.is_reply = true;
            m.src = cur_->echo6.dst;
            m.dst = cur_->echo6.src;
            m.hop_limit = 64;
            put([&](std::span<std::byte> b) { return wire::encode_icmp6_echo(cur_->eth.src, me, m, b); });
            return;
        }
        case action_kind::state_frame:
            e_.state_in(group_, a, now_, *this);
            return;
        case action_kind::claim_address:
        case action_kind::release_address:
        case action_kind::role_changed:
        case action_kind::run_hook:
        case action_kind::takeover:
        case action_kind::drain:
        case action_kind::undrain:
        case action_kind::notice: {
            if (a.kind == action_kind::role_changed || a.kind == action_kind::claim_address ||
                a.kind == action_kind::release_address)
                ++e_.changes_; // embedded: the node reads the machines only when this moves
            to_control(a);
            return;
        }
        }
    }

    // What the TX ring cannot take now waits, in order, for the next flush (every turn), so
    // a burst larger than the ring (a thousand groups' GARPs in one takeover) is paced by
    // the ring instead of dropped. Only a full backlog drops.
    // In order: what waits first, then this turn's frames (only once nothing waits, or a
    // release could overtake the GARPs before it).
    void flush() noexcept {
        close_bundle();
        while (held_ != 0) {
            const std::size_t at = head_ % backlog_size;
            const auto run = static_cast<std::uint16_t>(std::min<std::size_t>({held_, backlog_size - at, 512}));
            const std::uint16_t out = rte_eth_tx_burst(e_.port_.id(), e_.port_.tx_queue(), backlog_ + at, run);
            c_.tx_packets.add(out);
            head_ += out;
            held_ -= out;
            if (out < run) break; // the ring is still full
        }
        if (n_ != 0) {
            std::uint16_t sent = 0;
            if (held_ == 0) {
                sent = rte_eth_tx_burst(e_.port_.id(), e_.port_.tx_queue(), tx_, n_);
                c_.tx_packets.add(sent);
            }
            for (std::uint16_t i = sent; i < n_; ++i) {
                if (held_ == backlog_size) {
                    c_.tx_dropped.add(n_ - i);
                    rte_pktmbuf_free_bulk(tx_ + i, n_ - i);
                    break;
                }
                backlog_[(head_ + held_) % backlog_size] = tx_[i];
                ++held_;
                c_.tx_deferred.add();
            }
            n_ = 0;
        }
        e_.tx_backlog_.store(static_cast<std::uint32_t>(held_), std::memory_order_relaxed);
    }

    bool pending() const noexcept { return n_ != 0 || held_ != 0 || nb_ != 0; }

    // A replication frame of group `g`'s store (issue 10): signed, tagged and queued like
    // any heartbeat, in order with them.
    void state_frame(std::size_t g, const mac_addr& dst, const wire::hb_msg& m) noexcept {
        const std::size_t was = group_;
        group_ = g;
        put([&](std::span<std::byte> b) {
            return signed_frame(b, [&](const wire::hb_msg& h, std::span<std::byte> out) {
                return wire::encode_heartbeat(dst, e_.port_.mac(), h, out);
            }, m);
        });
        group_ = was;
    }

    // A new turn of the role loop: its first announcement is sent at once again.
    void new_turn() noexcept { announced_ = false; }

    // The loop's end (its release frames in this turn), on the poll lcore: what waits gets up
    // to 100 ms of ring room.
    void drain() noexcept {
        flush();
        const std::uint64_t until = e_.clk_.now_ns() + 100'000'000;
        while (held_ != 0 && e_.clk_.now_ns() < until) {
            rte_pause();
            flush();
        }
    }

    // Whatever still waits is freed, never sent from another thread.
    ~tx_sink() {
        if (held_ != 0) c_.tx_dropped.add(held_);
        for (; held_ != 0; --held_, ++head_) rte_pktmbuf_free(backlog_[head_ % backlog_size]);
        if (n_ != 0) rte_pktmbuf_free_bulk(tx_, n_);
    }

private:
    void to_control(const fsm::action& a) noexcept {
        control_event ev{a, now_, e_.clk_.wall_ns(now_), static_cast<std::uint16_t>(group_)};
        if (rte_ring_sp_enqueue_elem(e_.events_, &ev, sizeof ev) != 0) c_.control_full.add();
    }

    void first_announcement() noexcept {
        if (announced_) return;
        announced_ = true;
        flush();
    }

    // Many groups: the periodic heartbeats of one turn to one peer (same VLAN, same signing
    // key) go in bundles of up to hb_bundle_max_entries (wire.hpp). Anything else sent
    // closes the open bundle first, so frames still leave in the order they were made.
    void bundle(const wire::hb_msg& m, const mac_addr& dst) noexcept {
        const std::uint16_t vlan = e_.m_vlan_[group_];
        const std::uint8_t key = key_of(group_);
        if (nb_ != 0 && (dst != bdst_ || vlan != bvlan_ || key != bkey_ || nb_ == wire::hb_bundle_max_entries ||
                         bbytes_ + wire::bundle_entry_size(m) > e_.bundle_budget_))
            close_bundle();
        if (nb_ == 0) {
            bdst_ = dst;
            bvlan_ = vlan;
            bkey_ = key;
            bgroup_ = group_;
            bbytes_ = 0;
        }
        bundle_[nb_++] = m; // an announce's payload stays in its machine's state until then
        bbytes_ += wire::bundle_entry_size(m);
    }

    // The key a group signs with: its own machine's choice (it moves to a new key once that
    // group's peers accept it), else the ring's (the first group's; the guard's notice is
    // signed with it).
    std::uint8_t key_of(std::size_t g) const noexcept {
        const auth::keyring* ring = e_.role_keys_ ? e_.role_keys_->tx.get() : nullptr;
        if (!ring) return 0;
        const std::uint8_t own = e_.m_[g].send_key;
        return g != 0 && own != 0 ? own : ring->send_key();
    }

    void close_bundle() noexcept {
        if (nb_ == 0) return;
        const std::size_t n = nb_;
        nb_ = 0;
        const std::size_t g = group_;
        group_ = bgroup_; // its VLAN and key
        emit_frame([&](std::span<std::byte> b) {
            wire::hb_msg outer;
            outer.type = wire::hb_type::bundle;
            outer.node_id = bundle_[0].node_id;
            outer.incarnation = bundle_[0].incarnation;
            return signed_frame(b, [&](const wire::hb_msg& o, std::span<std::byte> out) {
                return wire::encode_bundle(bdst_, e_.port_.mac(), o, {bundle_, n}, out);
            }, outer, bkey_);
        });
        group_ = g;
        c_.tx_bundled.add(n);
    }

    // Keyed: the frame carries the group's signing key's id and a tag over all of it (a
    // bundle: the key its entries were grouped by, key_of() when they were added).
    template <class Encode>
    std::size_t signed_frame(std::span<std::byte> b, Encode&& enc, wire::hb_msg m, std::uint8_t key = 0) noexcept {
        auth::keyring* ring = e_.role_keys_ ? e_.role_keys_->tx.get() : nullptr;
        const std::uint8_t want = key != 0 ? key : key_of(group_);
        const bool switched = ring && want != ring->send_key() && ring->set_send_key(want);
        if (e_.keyed_) {
            m.key_id = e_.signing_key();
            m.auth_alg = static_cast<std::uint8_t>(auth::keyring::algo());
        }
        const std::size_t n = enc(m, b);
        if (n != 0 && e_.keyed_) e_.sign(b.first(n));
        if (switched) ring->set_send_key(e_.m_.front().send_key);
        return n;
    }

    template <class Encode>
    void put(Encode&& enc) noexcept {
        close_bundle();
        emit_frame(enc);
    }

    template <class Encode>
    void emit_frame(Encode&& enc) noexcept {
        rte_mbuf* m = rte_pktmbuf_alloc(e_.port_.pool());
        if (!m) {
            c_.tx_nombuf.add();
            return;
        }
        std::span<std::byte> room{rte_pktmbuf_mtod(m, std::byte*), rte_pktmbuf_tailroom(m)};
        const std::size_t len = enc(room);
        if (len == 0) {
            c_.tx_encode_failed.add();
            rte_pktmbuf_free(m);
            return;
        }
        m->data_len = static_cast<std::uint16_t>(len);
        m->pkt_len = static_cast<std::uint32_t>(len);
        // Tagged after encoding and signing: the tag covers the frame as the receiver sees it
        // once its tag is stripped, so a switch that retags or untags does not break it.
        if (const std::uint16_t vlan = e_.m_vlan_[group_]; vlan != 0) {
            m->vlan_tci = vlan;
            if (rte_vlan_insert(&m) != 0) {
                c_.tx_encode_failed.add();
                rte_pktmbuf_free(m);
                return;
            }
        }
        tx_[n_++] = m;
        if (n_ == tx_batch) flush();
    }

    engine& e_;
    lcore_counters& c_;
    const wire::frame* cur_{nullptr};
    std::uint64_t now_{0};
    std::size_t group_{0}; // the machine whose actions these are
    wire::hb_msg bundle_[wire::hb_bundle_max_entries]; // the open bundle (bundle())
    std::size_t nb_{0};
    std::size_t bbytes_{0};
    mac_addr bdst_;
    std::uint16_t bvlan_{0};
    std::uint8_t bkey_{0};
    std::size_t bgroup_{0};
    rte_mbuf* tx_[tx_batch]{};
    std::uint16_t n_{0};
    bool announced_{false}; // this turn's first GARP/NA has gone out
    static constexpr std::size_t backlog_size = 8192;
    rte_mbuf* backlog_[backlog_size]{};
    std::size_t head_{0};
    std::size_t held_{0};
};

key_bundle::key_bundle() = default;
key_bundle::~key_bundle() = default;

engine::engine(const cfg::config& c, port& p, tsc_clock& clk) : cfg_(c), port_(p), clk_(clk) {
    // This boot's incarnation: peers take our frames under it from the first one, and drop
    // anything stamped by an earlier boot. Realtime, so a restart always counts up.
    timespec rt{};
    clock_gettime(CLOCK_REALTIME, &rt);
    const std::uint64_t incarnation =
        static_cast<std::uint64_t>(rt.tv_sec) * 1'000'000'000u + static_cast<std::uint64_t>(rt.tv_nsec);
    keyed_ = c.auth.mode == cfg::auth_mode::keyed;
    const std::size_t n = c.groups.empty() ? 1 : c.groups.size();
    m_.resize(n);
    m_vlan_.resize(n);
    m_kernel_announces_.resize(n);
    m_wake_.assign(n, 0);
    for (std::size_t g = 0; g < n; ++g) {
        fsm::params fp = fsm::params::from_config(c, p.mac(), g);
        fp.incarnation = incarnation;
        fp.align_probes = n > 8;
        fsm::init(m_[g], fp);
        m_vlan_[g] = static_cast<std::uint16_t>(c.groups.empty() ? c.port.vlan : c.groups[g].vlan);
        m_kernel_announces_[g] = !announce_interface(c, g).empty();
    }
    // Up to this many machines are all ticked every turn (as one always was); past it only
    // the ones whose timers are due, and all of them after a stall of the loop.
    tick_all_ = n <= 8;
    heap_.reserve(8 * n + 16);
    due_.reserve(n);
    gsnap_ = std::make_unique<group_status[]>(n);
    build_demux();
    stall_threshold_ns_.store(m_.front().det.config().stall_threshold_ns, std::memory_order_relaxed);
    // Worth a log line: a gap that eats half the detection window (at least 250 us).
    report_gap_ns_ = std::max<std::uint64_t>(250'000, std::uint64_t{c.detect.interval_us} * c.detect.miss * 500);
    idle_planner::params ip;
    ip.adaptive = c.engine.idle == cfg::idle_policy::adaptive;
    ip.max_sleep_ns = std::uint64_t{c.engine.idle_max_sleep_us} * 1000;
    ip.yield_ns = std::uint64_t{c.engine.yield_us} * 1000;
    ip.yield_period_ns = std::uint64_t{c.engine.yield_period_us} * 1000;
    role_idle_.configure(ip);
    rx_idle_.configure(ip);
    // A takeover of every group at once emits ~7 control events a group, plus, for a group
    // announced from its own kernel interface, one per GARP / NA (garp.repeat a burst per
    // address); a command for every group fans out into one each: both rings scale with the
    // groups (review: a 1,000-group dedicated-port takeover overflowed 16 a group).
    // Bundles no larger than the port's MTU (a 1,450-byte overlay would drop every full
    // one, so many groups would see mass heartbeat loss while one group works): the
    // payload budget is the MTU less the outer header and the tag. None with one group, or
    // when not even one announce fits.
    if (n > 1) {
        std::uint16_t mtu = 1500;
        if (rte_eth_dev_get_mtu(p.id(), &mtu) != 0) mtu = 1500;
        const std::size_t room = mtu > wire::hb_header_size + wire::hb_tag_size ? mtu - wire::hb_header_size - wire::hb_tag_size : 0;
        bundle_budget_ = std::min(room, wire::hb_max_bundle_payload);
        if (bundle_budget_ < 2 * (wire::hb_header_size + wire::hb_bundle_entry_max_payload)) bundle_budget_ = 0;
    }
    std::size_t per_takeover = 0;
    for (std::size_t g = 0; g < n; ++g) {
        std::size_t addrs = 0;
        if (m_kernel_announces_[g])
            for (const auto& a : m_[g].p.addrs) addrs += a.n4 + a.n6;
        per_takeover += 16 + 2 * std::size_t{c.garp.repeat} * addrs;
    }
    events_ = make_ring("hw_ev", sizeof(control_event),
                        std::bit_ceil<unsigned>(static_cast<unsigned>(std::min<std::size_t>(std::max<std::size_t>(4096, per_takeover), 1u << 22))));
    commands_ = make_ring("hw_cmd", sizeof(engine_command), std::bit_ceil<unsigned>(std::max<unsigned>(256, 4 * static_cast<unsigned>(n))));
    if (c.engine.mode == cfg::lcore_mode::pipelined) pipe_ = make_ring("hw_pipe", sizeof(rx_item), pipe_size);
}

engine::~engine() {
    if (pipe_) {
        rx_item it;
        while (rte_ring_sc_dequeue_elem(pipe_, &it, sizeof it) == 0) rte_pktmbuf_free(it.m);
        rte_ring_free(pipe_);
    }
    rte_ring_free(events_);
    rte_ring_free(commands_);
}

const mac_addr& engine::mac() const noexcept { return port_.mac(); }

bool engine::accept_vlan(rte_mbuf* m, lcore_counters& c) const noexcept {
    std::uint16_t vid = 0;
    if (m->ol_flags & RTE_MBUF_F_RX_VLAN_STRIPPED) {
        vid = m->vlan_tci & 0xfff; // the NIC or PMD took the tag off already
    } else if (rte_pktmbuf_data_len(m) >= wire::eth_header::size() + 4 &&
               wire::load_be16(rte_pktmbuf_mtod_offset(m, const std::byte*, 12)) == wire::ethertype_vlan) {
        if (rte_vlan_strip(m) != 0) {
            c.rx_other_vlan.add();
            return false;
        }
        vid = m->vlan_tci & 0xfff; // 0: priority-tagged, which is untagged
    }
    if ((vlans_[vid >> 6] >> (vid & 63)) & 1u) return true;
    c.rx_other_vlan.add();
    return false;
}

void engine::build_demux() {
    for (std::size_t g = 0; g < m_.size(); ++g) {
        const auto gi = static_cast<std::uint16_t>(g);
        const fsm::state& st = m_[g];
        by_id_.emplace_back(st.p.group, gi);
        for (const auto& r : st.p.addrs) {
            for (std::size_t k = 0; k < r.n4; ++k) by_v4_.emplace_back(r.v4[k].v, gi);
            for (std::size_t k = 0; k < r.n6; ++k) by_v6_.emplace_back(r.v6[k], gi);
        }
        vlans_[m_vlan_[g] >> 6] |= std::uint64_t{1} << (m_vlan_[g] & 63);
    }
    std::sort(by_id_.begin(), by_id_.end());
    std::sort(by_v4_.begin(), by_v4_.end());
    std::sort(by_v6_.begin(), by_v6_.end());
}

namespace {
template <class Table, class Key>
std::size_t lookup(const Table& t, const Key& k) noexcept {
    auto it = std::lower_bound(t.begin(), t.end(), k, [](const auto& e, const Key& key) { return e.first < key; });
    return it != t.end() && it->first == k ? it->second : static_cast<std::size_t>(-1);
}
} // namespace

std::size_t engine::group_of_id(std::uint32_t id) const noexcept { return lookup(by_id_, id); }
std::size_t engine::group_of(ipv4_addr a) const noexcept { return lookup(by_v4_, a.v); }
std::size_t engine::group_of(const ipv6_addr& a) const noexcept { return lookup(by_v6_, a); }

std::size_t engine::dequeue_events(control_event* out, std::size_t n) noexcept {
    return rte_ring_sc_dequeue_burst_elem(events_, out, sizeof(control_event), static_cast<unsigned>(n), nullptr);
}

bool engine::post(const engine_command& cmd) noexcept {
    while (post_lock_.test_and_set(std::memory_order_acquire)) rte_pause();
    engine_command copy = cmd;
    const bool ok = rte_ring_sp_enqueue_elem(commands_, &copy, sizeof copy) == 0;
    post_lock_.clear(std::memory_order_release);
    return ok;
}

status_snapshot engine::status() const noexcept {
    status_snapshot out;
    for (;;) {
        const std::uint32_t a = snap_seq_.load(std::memory_order_acquire);
        if (a & 1u) {
            rte_pause();
            continue;
        }
        std::memcpy(static_cast<void*>(&out), &snap_, sizeof out);
        std::atomic_thread_fence(std::memory_order_acquire);
        if (snap_seq_.load(std::memory_order_relaxed) == a) return out;
    }
}

void engine::publish(std::uint64_t now) noexcept {
    const std::uint32_t seq = snap_seq_.load(std::memory_order_relaxed);
    snap_seq_.store(seq + 1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
    const fsm::state& f = m_.front();
    snap_.r = f.r;
    snap_.epoch = f.epoch;
    snap_.holds[0] = f.holds[0];
    snap_.holds[1] = f.holds[1];
    snap_.watched_id = f.watched_id;
    snap_.monitor_alive = f.monitor_alive;
    snap_.switchover_pending = f.switchover_pending;
    snap_.detector_armed = f.r == role::monitor && f.det.running() && f.det.armed();
    snap_.fault = f.fault;
    snap_.fault_answered = f.fault_answered;
    snap_.fault_can_take_over = f.fault_can_take_over;
    snap_.peers = f.peers;
    // Many groups: their summaries and summed counters every 16th publish (16 ms): a
    // thousand groups' peer tables are not walked every millisecond.
    const bool whole = m_.size() == 1 || (publishes_++ % 16) == 0;
    if (m_.size() == 1) snap_.c = f.c;
    if (whole && m_.size() > 1) {
        snap_.c = f.c;
        for (std::size_t g = 1; g < m_.size(); ++g) {
#define HW_X(name) snap_.c.name += m_[g].c.name;
            HEARTWIRE_FSM_COUNTERS(HW_X)
#undef HW_X
        }
    }
    snap_.last_rtt_ns = f.last_rtt_ns;
    snap_.now_ns = now;
    snap_.role_since_ns = f.role_since_ns;
    snap_.send_key = signing_key();
    snap_.preferred_key = f.preferred_key;
    snap_.accepted_keys = f.my_keys;
    snap_.incarnation = f.p.incarnation;
    snap_.groups = static_cast<std::uint16_t>(m_.size());
    auto& k = snap_.knobs;
    k.interval_ns = f.p.interval_ns;
    k.miss = f.p.miss;
    k.watch_miss = f.det.config().miss;
    k.garp_repeat = f.p.garp_repeat;
    k.garp_interval_ns = f.p.garp_interval_ns;
    k.garp_refresh_ns = f.p.garp_refresh_ns;
    k.defend_interval_ns = f.p.defend_interval_ns;
    k.announce_interval_ns = f.p.announce_interval_ns;
    k.peer_timeout_ns = f.p.peer_timeout_ns;
    k.priority = f.p.priority;
    k.preempt = f.p.preempt;
    k.reloads = role_params_ ? role_params_->gen : 0;
    if (whole && m_.size() > 1) publish_groups();
    publish_stores(now);
    snap_seq_.store(seq + 2, std::memory_order_release);
    next_publish_ns_ = now + publish_period_ns;
}

// Inside publish()'s sequence: one summary per group.
void engine::publish_groups() noexcept {
    for (std::size_t g = 0; g < m_.size(); ++g) {
        const fsm::state& st = m_[g];
        group_status& o = gsnap_[g];
        o.id = st.p.group;
        o.r = st.r;
        o.holds[0] = st.holds[0];
        o.holds[1] = st.holds[1];
        o.monitor_alive = st.monitor_alive;
        o.detector_armed = st.r == role::monitor && st.det.running() && st.det.armed();
        o.fault = st.fault;
        o.epoch = st.epoch;
        o.watched_id = st.watched_id;
        std::uint32_t live = 0;
        for (const auto& pr : st.peers) live += pr.valid && !pr.down;
        o.peers = live;
        o.takeovers = st.c.takeovers;
        o.false_takeovers = st.c.false_takeovers;
        o.role_since_ns = st.role_since_ns;
    }
}

std::vector<group_status> engine::group_statuses() const {
    std::vector<group_status> out(m_.size());
    for (;;) {
        const std::uint32_t a = snap_seq_.load(std::memory_order_acquire);
        if (a & 1u) {
            rte_pause();
            continue;
        }
        if (m_.size() > 1) std::memcpy(static_cast<void*>(out.data()), gsnap_.get(), sizeof(group_status) * m_.size());
        std::atomic_thread_fence(std::memory_order_acquire);
        if (snap_seq_.load(std::memory_order_relaxed) == a) break;
    }
    if (m_.size() == 1) {
        const status_snapshot s = status();
        out[0].id = m_.front().p.group;
        out[0].r = s.r;
        out[0].holds[0] = s.holds[0];
        out[0].holds[1] = s.holds[1];
        out[0].monitor_alive = s.monitor_alive;
        out[0].detector_armed = s.detector_armed;
        out[0].fault = s.fault;
        out[0].epoch = s.epoch;
        out[0].watched_id = s.watched_id;
        for (const auto& pr : s.peers) out[0].peers += pr.valid && !pr.down;
        out[0].takeovers = s.c.takeovers;
        out[0].false_takeovers = s.c.false_takeovers;
        out[0].role_since_ns = s.role_since_ns;
    }
    return out;
}

engine::mbuf_gauge engine::mbufs() const noexcept {
    const rte_mempool* mp = port_.pool();
    if (mp == nullptr) return {};
    return {mp->size, rte_mempool_in_use_count(mp)};
}

void engine::record_rtt() noexcept {
    const fsm::state& f = m_.front();
    if (f.c.answers != seen_answers_) {
        seen_answers_ = f.c.answers;
        if (f.last_rtt_ns) rtt_.add(f.last_rtt_ns);
    }
}

std::uint64_t engine::machine_event(fsm::event_kind k, tx_sink& tx) noexcept {
    const std::uint64_t now = clk_.now_ns();
    fsm::event ev;
    ev.kind = k;
    for (std::size_t g = 0; g < m_.size(); ++g) {
        tx.begin(nullptr, now, g);
        fsm::step(m_[g], ev, now, tx);
        m_wake_[g] = fsm::next_wakeup(m_[g]);
    }
    rebuild_heap();
    tx.flush();
    publish(now);
    return now;
}

void engine::step_group(std::size_t g, const wire::frame& f, std::uint64_t now, tx_sink& tx) noexcept {
    tx.begin(&f, now, g);
    fsm::event ev;
    ev.kind = fsm::event_kind::frame;
    ev.rx = &f;
    fsm::step(m_[g], ev, now, tx);
    if (!tick_all_) set_wake(g);
}

std::uint64_t engine::next_wakeup_all() noexcept {
    if (tick_all_) {
        std::uint64_t t = ~std::uint64_t{0};
        for (const auto& st : m_) t = std::min(t, fsm::next_wakeup(st));
        return t;
    }
    const auto later = std::greater<>{};
    while (!heap_.empty() && m_wake_[heap_.front().second] != heap_.front().first) {
        std::pop_heap(heap_.begin(), heap_.end(), later);
        heap_.pop_back();
    }
    return heap_.empty() ? ~std::uint64_t{0} : heap_.front().first;
}

void engine::set_wake(std::size_t g) noexcept {
    const std::uint64_t t = fsm::next_wakeup(m_[g]);
    if (t == m_wake_[g]) return;
    m_wake_[g] = t;
    if (heap_.size() == heap_.capacity()) return rebuild_heap();
    heap_.emplace_back(t, static_cast<std::uint16_t>(g));
    std::push_heap(heap_.begin(), heap_.end(), std::greater<>{});
}

void engine::rebuild_heap() noexcept {
    heap_.clear();
    for (std::size_t g = 0; g < m_.size(); ++g) heap_.emplace_back(m_wake_[g], static_cast<std::uint16_t>(g));
    std::make_heap(heap_.begin(), heap_.end(), std::greater<>{});
}

// One group: every frame is its. Many: a heartbeat goes to its group (one of another group
// to the first, which counts it), a node-wide engine-down notice (group 0) to every group;
// ARP, neighbour discovery and echo to the group holding the address they name; each only
// on the group's VLAN.
void engine::handle_frame(rte_mbuf* m, const wire::frame& f, std::uint64_t now, tx_sink& tx) noexcept {
    if (f.kind == wire::frame_kind::heartbeat && f.hb.type == wire::hb_type::bundle) {
        // Each entry as a frame of its own (decode checked them all), under the bundle's
        // Ethernet header, key and authentication.
        wire::frame sub = f;
        for (std::size_t off = 0; off < f.hb.payload.size();) {
            off = wire::next_bundle_entry(f.hb, off, sub.hb);
            role_c_.rx_bundled.add();
            route_frame(m, sub, now, tx);
        }
    } else {
        route_frame(m, f, now, tx);
    }
    record_rtt();
    refresh_notice(); // a step-down in this frame must not leave a "holds primary" notice
    rte_pktmbuf_free(m);
}

void engine::route_frame(const rte_mbuf* m, const wire::frame& f, std::uint64_t now, tx_sink& tx) noexcept {
    if (m_.size() == 1) {
        step_group(0, f, now, tx);
    } else {
        const std::uint16_t vid = (m->ol_flags & RTE_MBUF_F_RX_VLAN_STRIPPED) ? (m->vlan_tci & 0xfff) : 0;
        constexpr std::size_t none = static_cast<std::size_t>(-1);
        const auto deliver = [&](std::size_t g) {
            if (g == none) return;
            if (m_vlan_[g] == vid) step_group(g, f, now, tx);
            else role_c_.rx_other_vlan.add();
        };
        switch (f.kind) {
        case wire::frame_kind::heartbeat:
            if (f.hb.group == 0 && f.hb.type == wire::hb_type::engine_down) {
                // Node-wide: every group, whatever its VLAN (the notice is tagged with the
                // first group's; the tag covers no group's traffic).
                for (std::size_t g = 0; g < m_.size(); ++g) step_group(g, f, now, tx);
            } else if (const std::size_t g = group_of_id(f.hb.group); g != none) {
                deliver(g);
            } else {
                step_group(0, f, now, tx);
            }
            break;
        case wire::frame_kind::arp: {
            const std::size_t a = group_of(f.arp.spa), b = group_of(f.arp.tpa);
            deliver(a);
            if (b != a) deliver(b);
            break;
        }
        case wire::frame_kind::icmp_echo:
            deliver(group_of(f.echo.dst));
            break;
        case wire::frame_kind::nd:
            deliver(group_of(f.nd.target));
            break;
        case wire::frame_kind::icmp6_echo:
            deliver(group_of(f.echo6.dst));
            break;
        case wire::frame_kind::invalid:
            break;
        }
    }
}

// Timers and control commands, after the RX queue was drained (a monitor that slept must
// read the answers waiting for it before it judges the primary).
void engine::role_turn(const fsm::event& tick, std::uint64_t now, tx_sink& tx) noexcept {
    take_keys(now, tx);
    take_params(now);
    engine_command cmds[16];
    const unsigned nc = rte_ring_sc_dequeue_burst_elem(commands_, cmds, sizeof(engine_command), 16, nullptr);
    for (unsigned i = 0; i < nc; ++i) {
        fsm::event ev;
        ev.kind = cmds[i].k == engine_command::kind::hook_done ? fsm::event_kind::hook_done : fsm::event_kind::command;
        ev.hook = cmds[i].hook;
        ev.hook_ok = cmds[i].ok;
        ev.cmd = cmds[i].cmd;
        ev.arg = cmds[i].arg;
        for (std::size_t g = 0; g < m_.size(); ++g) {
            if (cmds[i].group != all_groups && cmds[i].group != g) continue;
            tx.begin(nullptr, now, g);
            fsm::step(m_[g], ev, now, tx);
            if (!tick_all_) set_wake(g);
        }
    }
    // Many groups: only the machines whose timers are due, unless the loop itself was late
    // (a stall every detector must see) or the RX lcore stalled.
    const bool all = tick_all_ || tick.rx_resume_ns != 0 ||
                     (tick.intended_ns != 0 && tick.woke_ns > tick.intended_ns + stall_threshold_ns_.load(std::memory_order_relaxed));
    if (all) {
        for (std::size_t g = 0; g < m_.size(); ++g) {
            tx.begin(nullptr, now, g);
            fsm::step(m_[g], tick, now, tx);
            if (!tick_all_) m_wake_[g] = fsm::next_wakeup(m_[g]);
        }
        if (!tick_all_) rebuild_heap();
    } else {
        // The due machines: popped from the heap (each once), ticked, their next timers pushed.
        due_.clear();
        const auto later = std::greater<>{};
        while (!heap_.empty() && heap_.front().first <= now) {
            const auto [t, g] = heap_.front();
            std::pop_heap(heap_.begin(), heap_.end(), later);
            heap_.pop_back();
            if (m_wake_[g] != t) continue; // stale
            m_wake_[g] = ~std::uint64_t{0};
            due_.push_back(g);
        }
        for (const std::uint16_t g : due_) {
            tx.begin(nullptr, now, g);
            fsm::step(m_[g], tick, now, tx);
            set_wake(g);
        }
    }
    run_stores(now, tx);
    tx.flush();
    refresh_notice();
    if (now >= next_publish_ns_) publish(now);
}

// A long gap goes to the log with its time, so a false takeover can be matched with the
// engine that lost its core. At most one line in 50 ms. Role lcore only: it is the events
// ring's single producer.
void engine::report_gap(std::uint64_t late, std::uint64_t now) noexcept {
    if (now < next_gap_report_ns_) return;
    next_gap_report_ns_ = now + 50'000'000;
    fsm::action a;
    a.kind = fsm::action_kind::notice;
    a.what = fsm::note::loop_gap;
    a.arg = static_cast<std::uint32_t>(std::min<std::uint64_t>(late / 1000, 0xffffffffu));
    control_event ev{a, now, clk_.wall_ns(now - late)};
    rte_ring_sp_enqueue_elem(events_, &ev, sizeof ev);
}

// The frame the guard sends if we die: rebuilt (and signed) only when what it says or the
// key it is signed with changes.
void engine::refresh_notice() noexcept {
    if (!notice_) return;
    const fsm::state& f = m_.front();
    const std::uint64_t key = (f.epoch << 24) ^ (std::uint64_t{signing_key()} << 16) ^
                              (std::uint64_t{static_cast<std::uint8_t>(f.r)} << 8) ^ (f.holds[0] ? 1u : 0u) ^
                              (f.holds[1] ? 2u : 0u) ^ (f.fault != fsm::fault_kind::none ? 4u : 0u);
    if (key == notice_key_) return;
    notice_key_ = key;
    std::byte buf[death_notice::max_frame];
    wire::hb_msg m = fsm::engine_down_msg(f);
    // Many groups: one node-wide notice (group 0); each peer group acts on what it knows of
    // us (the fsm's node-wide rule), as one frame cannot carry a thousand groups' roles.
    if (m_.size() > 1) m.group = 0;
    if (keyed_) {
        m.key_id = signing_key();
        m.auth_alg = static_cast<std::uint8_t>(auth::keyring::algo());
    }
    std::size_t n = wire::encode_heartbeat(mac_addr::heartwire_group(), port_.mac(), m, buf);
    if (n != 0 && keyed_) sign({buf, n});
    if (const std::uint16_t vlan = m_vlan_.front(); n != 0 && vlan != 0 && n + 4 <= sizeof buf) {
        // The guard sends it raw on the kernel interface: tag it as the engine's own frames.
        std::memmove(buf + 16, buf + 12, n - 12);
        wire::store_be16(buf + 12, wire::ethertype_vlan);
        wire::store_be16(buf + 14, vlan);
        n += 4;
    }
    notice_->publish({buf, n});
}

// Role lcore: a new key bundle offered by the control thread is taken at the top of a
// turn; the machine is told which ids we accept and which one the operator prefers, and
// answers with the send key (it moves only once every live peer accepts the new one).
void engine::take_keys(std::uint64_t now, tx_sink& tx) noexcept {
    if (!keyed_) return;
    key_bundle* b = offered_.load(std::memory_order_acquire);
    if (b != role_keys_ && b) {
        role_keys_ = b;
        notice_key_ = ~0ull; // re-sign the guard's notice: a secret may have changed under its id
        for (std::size_t g = 0; g < m_.size(); ++g) {
            tx.begin(nullptr, now, g);
            fsm::set_keys(m_[g], b->accepted, b->preferred, now, tx);
        }
        role_gen_.store(b->gen, std::memory_order_release);
        if (!pipe_) rx_gen_.store(b->gen, std::memory_order_release);
    }
    // A new ring signs with the file's `send` key until told otherwise: keep it on the key
    // the machine chose, the id the frames carry.
    // Many groups sign with the first group's choice: the groups run between the same nodes.
    if (role_keys_ && role_keys_->tx->send_key() != m_.front().send_key) role_keys_->tx->set_send_key(m_.front().send_key);
}

// Role lcore: a reload's knobs, at the top of a turn. Every machine keeps its role, epoch,
// peers and addresses (fsm::retune); the timers it moved are pushed again.
void engine::take_params(std::uint64_t now) noexcept {
    params_bundle* b = offered_params_.load(std::memory_order_acquire);
    if (!b || b == role_params_) return;
    role_params_ = b;
    for (std::size_t g = 0; g < m_.size() && g < b->groups.size(); ++g) {
        fsm::retune(m_[g], b->groups[g], now);
        if (!tick_all_) m_wake_[g] = fsm::next_wakeup(m_[g]);
    }
    if (!tick_all_) rebuild_heap();
    stall_threshold_ns_.store(m_.front().det.config().stall_threshold_ns, std::memory_order_relaxed);
    report_gap_ns_ = std::max<std::uint64_t>(250'000, std::uint64_t{b->interval_us} * b->miss * 500);
    params_gen_.store(b->gen, std::memory_order_release);
}

std::uint8_t engine::signing_key() const noexcept { return role_keys_ ? role_keys_->tx->send_key() : 0; }

void engine::sign(std::span<std::byte> frame_bytes) noexcept {
    if (!role_keys_ || frame_bytes.size() < wire::hb_tag_size) return; // no keys yet: an all-zero tag, dropped by peers
    const std::size_t covered = frame_bytes.size() - wire::hb_tag_size;
    role_keys_->tx->sign(frame_bytes.first(covered), frame_bytes.subspan(covered).first<wire::hb_tag_size>());
}

// Keyed: a heartbeat is believed only with a tag that verifies under a key we hold. The
// verdict is counted here by reason; the machine counts the frame as unauthenticated.
bool engine::authenticate(wire::frame& f, auth::keyring* ring, lcore_counters& c) noexcept {
    if (f.kind != wire::frame_kind::heartbeat || !keyed_) return true;
    f.authenticated = false;
    // Another group's frame (under its own key): the machine counts it as another group's,
    // without a MAC computed for it, rather than as a bad tag. Group 0 is a node's: its
    // engine-down notice, or a bundle of its groups' heartbeats (one tag for all of them).
    const bool node_wide = f.hb.group == 0 && (f.hb.type == wire::hb_type::engine_down || f.hb.type == wire::hb_type::bundle);
    if (!node_wide && group_of_id(f.hb.group) == static_cast<std::size_t>(-1)) return true;
    if (f.hb.auth_alg != static_cast<std::uint8_t>(auth::keyring::algo()) || f.hb.tag.size() != wire::hb_tag_size || !ring) {
        c.auth_missing.add();
        return false;
    }
    switch (ring->verify(f.hb.key_id, f.hb.covered, f.hb.tag.first<wire::hb_tag_size>())) {
    case auth::keyring::verdict::ok:
        f.authenticated = true;
        return true;
    case auth::keyring::verdict::unknown_key:
        c.auth_unknown_key.add();
        return false;
    case auth::keyring::verdict::bad_tag:
        c.auth_bad_tag.add();
        return false;
    }
    return false;
}

// Scheduling belongs to the poll lcores alone (DESIGN.md: a whole daemon under chrt never
// came up; its poll loop starved its own other threads). Threads made later by this one
// would inherit it: the engine makes none.
void engine::apply_sched() noexcept {
    if (cfg_.engine.sched != cfg::sched_policy::fifo) {
        sched_rc_.store(0, std::memory_order_relaxed);
        return;
    }
    sched_param sp{};
    sp.sched_priority = static_cast<int>(cfg_.engine.rt_priority);
    const int rc = pthread_setschedparam(pthread_self(), SCHED_FIFO | SCHED_RESET_ON_FORK, &sp);
    int expected = -1;
    if (!sched_rc_.compare_exchange_strong(expected, rc) && rc != 0) sched_rc_.store(rc, std::memory_order_relaxed);
}

// After the loop the thread waits and tears down with no duty cycle: not at FIFO.
void engine::drop_sched() noexcept {
    if (cfg_.engine.sched != cfg::sched_policy::fifo) return;
    sched_param sp{};
    pthread_setschedparam(pthread_self(), SCHED_OTHER, &sp);
}

// Gives the core away when the planner says so (the duty cycle's yield, or an idle sleep
// that ends before the next timer). Returns when the loop meant to be back: the detector
// counts only lateness beyond that as a stall.
std::uint64_t engine::rest(idle_planner& planner, lcore_counters& c, std::uint64_t end, bool worked,
                           std::uint64_t next_due) noexcept {
    const std::uint64_t forced = planner.forced_yields();
    const bool hurried = planner.hurried();
    const std::uint64_t ns = planner.plan(end, worked, next_due);
    if (ns == 0) {
        rte_pause();
        return end;
    }
    const bool yield = planner.forced_yields() != forced;
    const bool courtesy = hurried && !yield; // the waiting application's sleep (a yield is the core's anyway)
    // An idle sleep of the role lcore with stores: on their doorbells, so an application's
    // write ends it (a forced yield is the core's for others, and stays a plain sleep).
    const bell b = yield || &planner != &role_idle_ ? bell::none : doorbell_sleep(ns, end);
    if (courtesy && b != bell::ready) c.waiter_sleeps.add();
    switch (b) {
    case bell::ready: // a write waits at a queue's head: another turn at once, no sleep
        return end;
    case bell::early: // a write rang: the planner's clock and latency are not a sleep's
        c.idle_sleeps.add();
        return clk_.now_ns();
    case bell::timer:
        break;
    case bell::none: {
        timespec ts{0, static_cast<long>(ns)};
        nanosleep(&ts, nullptr);
        break;
    }
    }
    const std::uint64_t intended = end + ns;
    planner.woke(intended, clk_.now_ns());
    (yield ? c.yields : c.idle_sleeps).add();
    return intended;
}

void engine::note_role_cpu() noexcept {
    const int cpu = ::sched_getcpu(); // the vDSO's: an lcore allowed several CPUs may move
    if (cpu == role_cpu_) return;
    role_cpu_ = cpu;
    for (auto& sp : stores_) sp->region->engine_on(cpu);
}

// A completion for a waiter on this core that no wait has seen yet: a sleep for it, one
// when it completed and a few more after that (the next timer may cut a sleep short, or the
// kernel run something else in it first; the waiter may not wait at all).
bool engine::waiter_owed() noexcept {
    bool owed = false, pending = false;
    for (auto& sp : stores_) {
        store_slot& s = *sp;
        if (s.owed_sleeps == 0) continue;
        if (s.region->waiter_saw(s.owed_seq)) {
            s.owed_sleeps = 0;
            continue;
        }
        --s.owed_sleeps;
        owed = true;
        pending = pending || s.owed_sleeps != 0;
    }
    owed_ = pending;
    return owed;
}

engine::bell engine::doorbell_sleep(std::uint64_t ns, std::uint64_t end) noexcept {
    if (!doorbell_ok_ || bells_.empty()) return bell::none;
    for (std::size_t i = 0; i < stores_.size(); ++i) {
        // A store being cleared is not drained (run_stores): its queue keeps nothing awake.
        if (!stores_[i]->region->arm_doorbell(!stores_[i]->host.clearing())) {
            for (std::size_t j = 0; j < i; ++j) stores_[j]->region->disarm_doorbell();
            return bell::ready;
        }
    }
    // The sleep ends where the plan said (end + ns), whatever arming took.
    const std::uint64_t spent = clk_.now_ns() - end;
    const std::uint64_t left = ns > spent ? ns - spent : 0;
    timespec at{};
    clock_gettime(CLOCK_MONOTONIC, &at);
    at.tv_nsec += static_cast<long>(left % 1'000'000'000);
    at.tv_sec += static_cast<time_t>(left / 1'000'000'000) + at.tv_nsec / 1'000'000'000;
    at.tv_nsec %= 1'000'000'000;
    const long rc = ::syscall(SYS_futex_waitv, bells_.data(), static_cast<unsigned>(bells_.size()), 0u, &at, CLOCK_MONOTONIC);
    const int err = rc < 0 ? errno : 0;
    for (auto& sp : stores_) sp->region->disarm_doorbell();
    if (rc >= 0 || err == EAGAIN || err == EINTR) { // rung (EAGAIN: before the wait began)
        role_c_.doorbell_wakes.add();
        return bell::early;
    }
    if (err == ETIMEDOUT) return bell::timer;
    // Anything else (ENOSYS before Linux 5.16, EPERM under a seccomp profile without
    // futex_waitv, ...): plain sleeps from now on, this one included.
    doorbell_ok_ = false;
    return bell::none;
}

// The role loop shared by both modes. Each turn: drain what `pull` delivers until the
// source is empty (bounded by what its ring can hold, not by a few bursts: after a stall
// or a flood the answers queued behind the backlog must be read before any verdict), then
// commands and timers, then the planner's rest. `pull(tx, max, drained)` hands frames to
// the machine, returns how many, and sets `drained` to the time up to which everything
// received has been handed over once the source is empty.
template <class Pull>
int engine::role_loop(Pull&& pull) noexcept {
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
    apply_sched();
    note_role_cpu();
    tx_sink tx(*this, role_c_);
    const unsigned nb = std::min<std::uint32_t>(cfg_.engine.burst, max_burst);
    const unsigned cap = cfg_.port.rx_desc + (pipe_ ? pipe_size : 0) + nb;
    take_keys(clk_.now_ns(), tx);
    std::uint64_t intended = machine_event(fsm::event_kind::start, tx);
    turn_state turn;
    turn.judged_ns = intended;
    std::uint64_t rx_resume_seen = 0;
    while (!stop_.load(std::memory_order_relaxed)) {
        const std::uint64_t woke = clk_.now_ns();
        role_c_.loops.add();
        const std::uint64_t late = woke > intended ? woke - intended : 0;
        record_gap(gaps_, role_c_, late);
        if (late > report_gap_ns_) report_gap(late, woke);
        std::size_t total = 0;
        tx.new_turn();
        expire_replica_leases(woke);
        const std::uint64_t capped = turn.capped;
        fsm::event tick = drain_turn(
            turn, [&](std::size_t max, std::uint64_t& drained) { return pull(tx, static_cast<unsigned>(max), drained); },
            nb, cap, woke, intended, total);
        if (turn.capped != capped) role_c_.rx_drain_capped.add();
        const std::uint64_t now = clk_.now_ns();
        if (pipe_) {
            const std::uint64_t r = rx_resume_ns_.load(std::memory_order_acquire);
            if (r != rx_resume_seen) {
                rx_resume_seen = r;
                tick.rx_resume_ns = r;
            }
        }
        role_turn(tick, now, tx);
        const std::uint64_t end = clk_.now_ns();
        // Frames waiting for TX room, or a drain that hit its cap: back at once. Synchronous
        // writes completed for an application that waits on this core: it runs only once
        // this loop sleeps, so sleep at the first turn with nothing left to do (the frames
        // this turn read, such as the ACK that completed them, are done with).
        // Not while a synchronous store has writes in flight (another store's, or the
        // application's next): its ACK is polled for, and the completion waits for that.
        if (owed_ && !sync_in_flight_ && doorbell_ok_ && !role_idle_.hurried() && waiter_owed()) role_idle_.hurry();
        const bool more = tx.pending() || turn.capped != capped;
        intended = rest(role_idle_, role_c_, end, more || (total != 0 && !role_idle_.hurried()), tx.pending() ? end : next_wakeup_all());
        if (intended != end && !stores_.empty()) note_role_cpu(); // a sleep is where the kernel may move it
        wake_latency_ns_.store(role_idle_.latency_ns(), std::memory_order_relaxed);
    }
    machine_event(fsm::event_kind::shutdown, tx);
    for (auto& sp : stores_) { // applications see that nobody serves the store any more
        sp->region->engine_on(-1);
        sp->region->header().role.store(static_cast<std::uint32_t>(role::init), std::memory_order_relaxed);
        sp->region->header().in_sync.store(0, std::memory_order_release);
    }
    tx.drain();
    drop_sched();
    if (notice_) {
        notice_->clean_exit.store(true, std::memory_order_release);
        notice_->disarm();
    }
    role_done_.store(true, std::memory_order_release);
    return 0;
}

int engine::run_to_completion() noexcept {
    rte_mbuf* burst[max_burst];
    return role_loop([&](tx_sink& tx, unsigned nb, std::uint64_t& drained) -> unsigned {
        const std::uint64_t polled = clk_.now_ns();
        const std::uint16_t n = rte_eth_rx_burst(port_.id(), 0, burst, static_cast<std::uint16_t>(nb));
        if (n < nb) drained = polled; // the queue was empty at `polled`: nothing older is left
        if (n == 0) return 0;
        role_c_.rx_packets.add(n); // pipelined: the RX lcore counts them
        const std::uint64_t now = clk_.now_ns();
        for (std::uint16_t i = 0; i < n; ++i) rx_frame(burst[i], now, tx);
        return n;
    });
}

// Pipelined RX lcore: decode and hand over. It publishes the time of its last empty poll
// (the role lcore judges silence only up to it) and the end of its own stalls (a fresh
// window: the role lcore cannot have seen answers this lcore did not read).
int engine::run_rx() noexcept {
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
    apply_sched();
    rte_mbuf* burst[max_burst];
    const std::uint16_t nb = static_cast<std::uint16_t>(std::min<std::uint32_t>(cfg_.engine.burst, max_burst));
    std::uint64_t intended = clk_.now_ns();
    bool stalled = false;
    while (!role_done_.load(std::memory_order_acquire)) {
        const std::uint64_t woke = clk_.now_ns();
        rx_c_.loops.add();
        const std::uint64_t late = woke > intended ? woke - intended : 0;
        record_gap(rx_gaps_, rx_c_, late);
        stalled = stalled || late > stall_threshold_ns_.load(std::memory_order_relaxed);
        bool dropped = false;
        std::uint64_t total = 0;
        if (keyed_) {
            key_bundle* b = offered_.load(std::memory_order_acquire);
            if (b && b != rx_keys_) {
                rx_keys_ = b;
                rx_gen_.store(b->gen, std::memory_order_release);
            }
        }
        for (;;) {
            const std::uint64_t polled = clk_.now_ns();
            const std::uint16_t n = rte_eth_rx_burst(port_.id(), 0, burst, nb);
            rx_c_.rx_packets.add(n);
            for (std::uint16_t i = 0; i < n; ++i) {
                if (!accept_vlan(burst[i], rx_c_)) {
                    rte_pktmbuf_free(burst[i]);
                    continue;
                }
                rx_item it{burst[i], polled, wire::decode(bytes_of(burst[i]))};
                if (!it.f.ok()) {
                    count_drop(rx_c_, it.f.error);
                    rte_pktmbuf_free(burst[i]);
                    continue;
                }
                if (!authenticate(it.f, rx_keys_ ? rx_keys_->rx.get() : nullptr, rx_c_)) {
                    rte_pktmbuf_free(burst[i]);
                    continue;
                }
                if (rte_ring_sp_enqueue_elem(pipe_, &it, sizeof it) != 0) {
                    // Dropped here, not by the primary: what the role lcore did not get
                    // must not count as silence. No mark this turn, and a fresh window.
                    rx_c_.pipe_full.add();
                    rte_pktmbuf_free(burst[i]);
                    dropped = true;
                }
            }
            total += n;
            if (dropped) {
                stalled = true;
                break;
            }
            if (n < nb) {
                if (stalled) {
                    rx_resume_ns_.store(polled, std::memory_order_relaxed);
                    stalled = false;
                }
                rx_drained_ns_.store(polled, std::memory_order_release);
                break;
            }
            if (total >= cfg_.port.rx_desc + nb) {
                rx_c_.rx_drain_capped.add();
                break;
            }
        }
        const std::uint64_t end = clk_.now_ns();
        intended = rest(rx_idle_, rx_c_, end, total != 0, end + std::uint64_t{cfg_.engine.idle_max_sleep_us} * 1000);
    }
    drop_sched();
    return 0;
}

int engine::run_role() noexcept {
    rx_item items[max_burst];
    return role_loop([&](tx_sink& tx, unsigned nb, std::uint64_t& drained) -> unsigned {
        // Read the RX lcore's mark first: every frame it received before the mark is in the
        // pipe by then, so once the pipe is empty we have seen all of them.
        const std::uint64_t mark = rx_drained_ns_.load(std::memory_order_acquire);
        const unsigned n = rte_ring_sc_dequeue_burst_elem(pipe_, items, sizeof(rx_item), nb, nullptr);
        for (unsigned i = 0; i < n; ++i) handle_frame(items[i].m, items[i].f, items[i].rx_ns, tx);
        if (n < nb) drained = mark != 0 ? mark : 1;
        return n;
    });
}

void engine::rx_frame(rte_mbuf* m, std::uint64_t now, tx_sink& tx) noexcept {
    if (!accept_vlan(m, role_c_)) {
        rte_pktmbuf_free(m);
        return;
    }
    wire::frame f = wire::decode(bytes_of(m));
    if (!f.ok()) {
        count_drop(role_c_, f.error);
        rte_pktmbuf_free(m);
        return;
    }
    if (!authenticate(f, role_keys_ ? role_keys_->tx.get() : nullptr, role_c_)) {
        rte_pktmbuf_free(m); // counted by reason; never reaches a rule
        return;
    }
    handle_frame(m, f, now, tx);
}

// Embedded: the application's lcore runs what role_loop would, a turn at a time. Its
// scheduling stays the application's (no apply_sched).
void engine::start_embedded() noexcept {
    if (embed_tx_) return;
    embed_tx_ = std::make_unique<tx_sink>(*this, role_c_);
    take_keys(clk_.now_ns(), *embed_tx_);
    machine_event(fsm::event_kind::start, *embed_tx_);
}

void engine::deliver(rte_mbuf* const* pkts, std::uint16_t n, std::uint64_t now) noexcept {
    if (!embed_tx_) {
        rte_pktmbuf_free_bulk(const_cast<rte_mbuf**>(pkts), n);
        return;
    }
    role_c_.rx_packets.add(n);
    embed_tx_->new_turn(); // an application turn is rx() then poll(): each may announce at once
    expire_replica_leases(now);
    for (std::uint16_t i = 0; i < n; ++i) rx_frame(pkts[i], now, *embed_tx_);
    embed_tx_->flush(); // answers (probe acks, ARP) leave now, not at the next turn
}

std::uint64_t engine::turn(std::uint64_t intended_ns, std::uint64_t rx_empty_ns) noexcept {
    if (!embed_tx_) return 0;
    const std::uint64_t now = clk_.now_ns();
    role_c_.loops.add();
    embed_tx_->new_turn();
    expire_replica_leases(now);
    fsm::event tick;
    tick.kind = fsm::event_kind::tick;
    if (intended_ns != 0) {
        // The application handed over what it received before this turn: judged up to now.
        const std::uint64_t intended = std::min(now, intended_ns);
        record_gap(gaps_, role_c_, now - intended);
        if (now - intended > report_gap_ns_) report_gap(now - intended, now);
        tick.woke_ns = now;
        tick.intended_ns = intended;
    }
    // Silence is judged up to the last time the application found its RX queue empty
    // (drain-then-judge, turn.hpp): not past answers still queued behind its traffic.
    tick.judged_ns = rx_empty_ns != 0 ? std::min(rx_empty_ns, now) : now;
    role_turn(tick, now, *embed_tx_);
    return embed_tx_->pending() ? now : next_wakeup_all(); // frames waiting for TX room: at once
}

void engine::stop_embedded() noexcept {
    if (!embed_tx_ || role_done_.load(std::memory_order_acquire)) return;
    machine_event(fsm::event_kind::shutdown, *embed_tx_);
    embed_tx_->drain();
    if (notice_) {
        notice_->clean_exit.store(true, std::memory_order_release);
        notice_->disarm();
    }
    role_done_.store(true, std::memory_order_release);
}


// ------------------------------------------------------------------ replicated stores (issue 10)

namespace {

// A primary's stream id: its boot, its node and the epoch it claimed (a new one at every
// takeover, so a follower always knows a snapshot is due). Never 0 (a follower that holds
// nothing says 0).
std::uint64_t stream_id(const fsm::state& m) noexcept {
    std::uint64_t z = m.p.incarnation ^ (m.epoch * 0x9E3779B97F4A7C15ull) ^ (std::uint64_t{m.p.node_id} << 32);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return (z ^ (z >> 31)) | 1;
}

constexpr std::size_t store_drain_per_turn = 64; // writes taken from a region's queue in one turn

} // namespace

void engine::add_store(std::size_t index, state::region& r) {
    const cfg::state_cfg& sc = cfg_.state[index];
    std::size_t g = sc.group == 0 ? 0 : group_of_id(sc.group);
    if (g == static_cast<std::size_t>(-1)) g = 0; // validate() refuses such a config
    replica::host_params hp;
    hp.sync = sc.mode == cfg::state_mode::sync;
    hp.sender.log_bytes = std::size_t{sc.log_mb} << 20;
    hp.sender.log_entries = std::bit_ceil<std::uint32_t>(
        static_cast<std::uint32_t>(std::clamp<std::size_t>(hp.sender.log_bytes / 48, 4096, std::size_t{1} << 22)));
    hp.sender.frame_budget = wire::hb_max_payload;
    // A round trip here is tens of microseconds: resend after 4 of them, never sooner than
    // a loop gap the poll core may take (the duty cycle's yield).
    hp.sender.rto_min_ns = std::max<std::uint64_t>(200'000, std::uint64_t{cfg_.engine.yield_us} * 4000);
    // The monitor's lease on being in sync outlasts what its detector takes to judge the
    // primary dead (the window, with the fresh windows a stall may grant), so a failure
    // takeover by a monitor that was current is one in sync; the primary's hold before it
    // completes writes alone outlasts the lease (replica_host.hpp).
    const auto& dp = m_[g].det.config();
    const std::uint64_t window = dp.interval_ns * dp.miss + dp.stall_threshold_ns;
    hp.lease_ns = std::max<std::uint64_t>(10'000'000, 8 * window);
    hp.degrade_hold_ns = hp.lease_ns + std::max<std::uint64_t>(5'000'000, hp.lease_ns / 2);
    stores_.push_back(std::make_unique<store_slot>(index, g, r, hp, std::uint64_t{sc.join_hold_ms} * 1'000'000));
    // The doorbells an idle sleep waits on, one per store (futex_waitv takes up to 128: more
    // stores sleep plainly).
    futex_waitv w{};
    w.val = 1;
    w.uaddr = reinterpret_cast<std::uintptr_t>(&r.doorbell());
    w.flags = FUTEX_32; // shared memory: not FUTEX_PRIVATE_FLAG
    bells_.push_back(w);
    if (bells_.size() > FUTEX_WAITV_MAX) {
        bells_.clear();
        doorbell_ok_ = false;
    }
    ssnap_ = std::make_unique<store_status[]>(stores_.size());
    fsm::set_replica(m_[g], true, false, true);
    if (!state_emit_)
        state_emit_ = [this](std::span<const std::byte> p) {
            wire::hb_msg h = fsm::state_header(m_[emit_store_->group], static_cast<std::uint32_t>(emit_store_->index), emit_now_);
            h.payload = p;
            emit_tx_->state_frame(emit_store_->group, emit_dst_, h);
        };
}

// A replication frame the machine let through (its role checks passed): to the store it
// names, answered to the peer that sent it.
void engine::state_in(std::size_t g, const fsm::action& a, std::uint64_t now, tx_sink& tx) noexcept {
    for (auto& sp : stores_) {
        store_slot& s = *sp;
        if (s.group != g || s.index != a.hb.ack_seq) continue;
        emit_tx_ = &tx;
        emit_store_ = &s;
        emit_dst_ = a.peer_mac;
        emit_now_ = now;
        s.host.on_frame(a.hb.payload, now, state_emit_);
        // A frame that starts replacing or repairing the copy (a snapshot's chunk 0, a
        // digest that differs) holds a silence takeover from this turn's judgement on, not
        // from the next run_stores.
        s.hold_if_joining(m_[g]);
        return;
    }
    role_c_.state_unknown_store.add();
}

void engine::expire_replica_leases(std::uint64_t now) noexcept {
    // The machines judge a takeover (a tick, or an engine-down notice among the frames)
    // before run_stores polls the stores: a monitor whose lease ran out since the last poll
    // (its loop stalled) is out of sync for that judgement already. Only ever lowers it.
    for (auto& sp : stores_) {
        fsm::state& m = m_[sp->group];
        if (m.replica_in_sync && !sp->host.in_sync_at(now)) m.replica_in_sync = false;
    }
}

// Every turn, after the machines: each store follows its group's role, takes the
// application's writes (primary) or refuses them, sends what is due, and says in its
// region's header and to the machine where it stands.
void engine::run_stores(std::uint64_t now, tx_sink& tx) noexcept {
    if (stores_.empty()) return;
    sync_in_flight_ = false;
    for (auto& sp : stores_) {
        fsm::state& m = m_[sp->group];
        m.replica_in_sync = true;
        m.replica_caught_up = true;
        m.replica_join_hold_ns = 0;
    }
    for (auto& sp : stores_) {
        store_slot& s = *sp;
        fsm::state& m = m_[s.group];
        const fsm::replica_peer rp = fsm::replication_peer(m, now);
        const bool was_leading = s.host.current() == replica::side::leader;
        if (rp.leader) s.host.lead(stream_id(m), now);
        else if (m.r == role::monitor) s.host.follow(now);
        else s.host.stand_by();
        // Leadership lost with writes applied here that no monitor acknowledged: their
        // tickets fail rather than complete later on another primary's writes.
        // Synchronous only: an asynchronous write completed once applied here, and its
        // wait() has said so; its loss is bounded by the lag the store reported.
        if (was_leading && s.host.current() != replica::side::leader && s.host.synchronous())
            s.region->forfeit_above(s.host.completed());
        const std::size_t took = s.host.clearing() ? 0 : s.region->drain(store_drain_per_turn, [&](std::uint8_t op, std::string_view k, std::span<const std::byte> v) {
            return s.host.write(op, k, v, now);
        });
        if (took != 0) role_c_.state_writes.add(took);
        emit_tx_ = &tx;
        emit_store_ = &s;
        emit_dst_ = rp.mac;
        emit_now_ = now;
        tx.begin(nullptr, now, s.group);
        s.host.poll(now, rp.follower, state_emit_);
        state::region_header& h = s.region->header();
        const std::uint64_t applied = s.region->table().state().applied_seq;
        h.applied_seq.store(applied, std::memory_order_release);
        const std::uint64_t completed = s.host.completed();
        if (s.host.synchronous() && completed < applied) sync_in_flight_ = true;
        // Every write of a synchronous store complete, some of them this turn, and its
        // application waits on this very core: it runs once the loop sleeps, and nothing is
        // in flight to poll for. (An application on a core of its own is not slowed: the
        // loop keeps polling for its next write.) A waiter that no longer waits here (it
        // moved, or stopped waiting) has not seen the last gifts: after unseen_limit of them
        // in a row, none until a wait here sees a completion again.
        if (s.host.synchronous() && completed > h.replicated_seq.load(std::memory_order_relaxed) && completed == applied &&
            s.region->waiter_on(role_cpu_)) {
            const bool seen = s.owed_seq == 0 || s.region->waiter_saw(s.owed_seq);
            s.unseen = seen ? 0 : static_cast<std::uint8_t>(std::min<unsigned>(s.unseen + 1u, unseen_limit));
            if (s.unseen < unseen_limit) {
                owed_ = true;
                s.owed_seq = completed;
                s.owed_sleeps = courtesy_sleeps;
            }
        }
        h.replicated_seq.store(completed, std::memory_order_release);
        h.role.store(static_cast<std::uint32_t>(m.r), std::memory_order_relaxed);
        const bool sync = s.host.in_sync();
        h.in_sync.store(sync ? 1 : 0, std::memory_order_release);
        const bool queue_empty = h.dequeue_pos.load(std::memory_order_relaxed) == h.enqueue_pos.load(std::memory_order_relaxed);
        fsm::set_replica(m, true, m.replica_in_sync && sync, m.replica_caught_up && s.host.caught_up() && queue_empty);
        s.hold_if_joining(m);
        // What the operator reads in the log: a divergence, and sync reached or lost.
        const auto note_it = [&](fsm::note n) {
            fsm::action a;
            a.kind = fsm::action_kind::notice;
            a.what = n;
            a.arg = static_cast<std::uint32_t>(s.index);
            tx.begin(nullptr, now, s.group);
            tx.emit(a);
        };
        if (const std::uint64_t d = s.host.divergences(); d != s.seen_divergences) {
            s.seen_divergences = d;
            note_it(fsm::note::replica_diverged);
        }
        if (sync != s.was_in_sync && s.host.current() != replica::side::none) {
            note_it(sync ? fsm::note::replica_in_sync : fsm::note::replica_lost_sync);
        }
        s.was_in_sync = sync;
    }
}

// Inside publish()'s sequence.
void engine::publish_stores(std::uint64_t now) noexcept {
    for (std::size_t i = 0; i < stores_.size(); ++i) {
        const store_slot& s = *stores_[i];
        store_status& o = ssnap_[i];
        o.index = static_cast<std::uint32_t>(s.index);
        o.group_id = m_[s.group].p.group;
        o.capacity = s.region->table().geometry().capacity;
        const auto& h = s.region->header();
        o.queued = h.enqueue_pos.load(std::memory_order_relaxed) - h.dequeue_pos.load(std::memory_order_relaxed);
        o.h = s.host.status(now);
    }
}

std::vector<store_status> engine::store_statuses() const {
    std::vector<store_status> out(stores_.size());
    if (out.empty()) return out;
    for (;;) {
        const std::uint32_t a = snap_seq_.load(std::memory_order_acquire);
        if (a & 1u) {
            rte_pause();
            continue;
        }
        std::memcpy(static_cast<void*>(out.data()), ssnap_.get(), sizeof(store_status) * out.size());
        std::atomic_thread_fence(std::memory_order_acquire);
        if (snap_seq_.load(std::memory_order_relaxed) == a) break;
    }
    return out;
}

} // namespace heartwire::io
