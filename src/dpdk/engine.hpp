#pragma once
// The poll loops. Run-to-completion: one lcore does rx -> decode -> step -> tx. Pipelined:
// an RX lcore decodes and hands frames over an SPSC rte_ring to the role lcore, which steps
// the machine and transmits. Either way the loop never allocates from the heap, never
// blocks, never logs: slow actions cross a ring to the control thread.

#include <linux/futex.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>

#include "dpdk/clock.hpp"
#include "heartwire/config.hpp"
#include "heartwire/death_notice.hpp"
#include "heartwire/engine_link.hpp"
#include "heartwire/idle.hpp"
#include "heartwire/fsm.hpp"
#include "heartwire/replica_host.hpp"
#include "heartwire/wire.hpp"

struct rte_ring;
namespace heartwire::state {
class region;
}
struct rte_mbuf;

namespace heartwire::auth {
class keyring;
}

namespace heartwire::io {

class port;

// One writer (its lcore), read by the control thread: relaxed load/store, no RMW.
struct counter {
    std::atomic<std::uint64_t> v{0};
    void add(std::uint64_t n = 1) noexcept { v.store(v.load(std::memory_order_relaxed) + n, std::memory_order_relaxed); }
    std::uint64_t get() const noexcept { return v.load(std::memory_order_relaxed); }
};

#define HEARTWIRE_IO_COUNTERS(X)                                                                 \
    X(loops)                                                                                     \
    X(rx_packets)                                                                                \
    X(rx_invalid)         /* decode failed: see drops[] by reason */                             \
    X(tx_packets)                                                                                \
    X(tx_dropped)         /* the PMD did not take them and the backlog was full */              \
    X(tx_deferred)        /* waited for room in the TX ring (a large burst), sent later */       \
    X(tx_nombuf)          /* mempool empty */                                                    \
    X(tx_encode_failed)   /* frame did not fit (an echo too large) */                            \
    X(pipe_full)          /* pipelined: RX -> role ring full */                                  \
    X(control_full)       /* engine -> control ring full */                                      \
    X(idle_sleeps)        /* planned sleeps when idle (adaptive) */                              \
    X(yields)             /* the duty cycle's guaranteed yields */                               \
    X(rx_drain_capped)    /* turns whose RX could not be drained within the ring's size */       \
    X(loop_gaps)          /* wakes later than intended by > 100 us (the core was taken) */       \
    X(auth_missing)       /* keyed: a heartbeat without a tag, or with another algorithm's */   \
    X(auth_unknown_key)   /* keyed: signed with a key id we do not hold */                       \
    X(auth_bad_tag)       /* keyed: the tag does not verify (forged or corrupted) */             \
    X(rx_other_vlan)      /* a frame of another VLAN than port.vlan (or untagged when tagged) */ \
    X(rx_bundled)         /* heartbeats that arrived in bundles (many groups), each counted */   \
    X(tx_bundled)         /* heartbeats sent in bundles, each counted (tx_packets: frames) */    \
    X(state_writes)       /* application writes taken from the stores' queues */                \
    X(state_unknown_store) /* replication frames naming a store this node does not have */       \
    X(doorbell_wakes)     /* idle sleeps an application's write ended (the stores' doorbells) */ \
    X(waiter_sleeps)      /* sleeps given to an application waiting on this core (hurry) */      \
    X(loop_gap_max_ns)    /* the latest such wake */

struct alignas(64) lcore_counters {
#define HW_X(name) counter name;
    HEARTWIRE_IO_COUNTERS(HW_X)
#undef HW_X
    std::array<counter, wire::decode_error_count + 1> drops; // by wire::decode_error
};

// Log2 histogram of probe round trips in ns (bucket i: [2^i, 2^(i+1))).
struct alignas(64) rtt_histogram {
    std::array<counter, 40> bucket;
    counter samples;
    counter sum_ns;
    counter max_ns;
    void add(std::uint64_t ns) noexcept;
    std::uint64_t percentile(double p) const noexcept; // upper bound of the bucket
};

// How late the poll loop woke against when it meant to (every turn: right away when busy,
// at the end of a planned sleep or yield). Log2 buckets; the tail is what a window must
// survive.
struct alignas(64) gap_histogram : rtt_histogram {
    counter over_100us;
    counter over_500us;
    counter over_1ms;
    void add_gap(std::uint64_t ns) noexcept {
        add(ns);
        if (ns > 100'000) over_100us.add();
        if (ns > 500'000) over_500us.add();
        if (ns > 1'000'000) over_1ms.add();
    }
};

// The engine's side of the control interface (heartwire/engine_link.hpp): its events,
// the commands it takes, its per-group summaries.
using heartwire::all_groups;
using heartwire::control_event;
using heartwire::engine_command;
using heartwire::group_status;

// The keys the engine signs and verifies with, handed over whole by the control thread
// (offer_keys). Each poll lcore switches to a new bundle at the top of a turn; the control
// thread frees an old one once keys_taken() says every lcore has moved past it.
struct key_bundle {
    std::unique_ptr<auth::keyring> tx; // role lcore: signs (and verifies in run-to-completion)
    std::unique_ptr<auth::keyring> rx; // pipelined RX lcore: verifies
    fsm::key_set accepted{};
    std::uint8_t preferred{};          // the key the operator marked `send`
    std::uint64_t gen{};
    key_bundle();
    ~key_bundle();
};

// A reload's machine knobs (fsm::retune), one params per group in cfg.groups order, handed
// over whole by the control thread (offer_params) and taken by the role lcore at the top of
// a turn. Freed by the control thread once params_taken(gen).
struct params_bundle {
    std::vector<fsm::params> groups;
    std::uint32_t interval_us{}; // detect.interval_us and miss: the loop's own gap report
    std::uint32_t miss{};
    std::uint64_t gen{};
};

// The first group's machine knobs as the engine runs them (a reload's proof in status).
struct running_knobs {
    std::uint64_t interval_ns{};
    std::uint32_t miss{};
    std::uint32_t watch_miss{};        // the detector's, flap damping included
    std::uint32_t garp_repeat{};
    std::uint64_t garp_interval_ns{};
    std::uint64_t garp_refresh_ns{};
    std::uint64_t defend_interval_ns{};
    std::uint64_t announce_interval_ns{};
    std::uint64_t peer_timeout_ns{};
    std::uint8_t priority{};
    bool preempt{};
    std::uint64_t reloads{};           // reloads taken (params_bundle gen)
};

struct status_snapshot {
    role r{role::init};
    std::uint64_t epoch{};
    bool holds[fsm::address_count]{};
    std::uint32_t watched_id{};
    bool monitor_alive{};
    bool switchover_pending{};
    bool detector_armed{};  // monitor: the primary has answered, the microsecond window applies
    fsm::fault_kind fault{fsm::fault_kind::none};
    bool fault_answered{};
    bool fault_can_take_over{};
    std::array<fsm::peer, fsm::max_peers> peers{};
    fsm::counters c;
    std::uint64_t last_rtt_ns{};
    std::uint64_t now_ns{};
    std::uint64_t role_since_ns{};
    std::uint8_t send_key{};
    std::uint8_t preferred_key{};
    fsm::key_set accepted_keys{};
    std::uint64_t incarnation{};
    std::uint16_t groups{1};
    running_knobs knobs;
};

// One replicated store (issue 10) as status shows it: published by the role lcore with the
// rest of the snapshot.
struct store_status {
    std::uint32_t index{};
    std::uint32_t group_id{};
    std::uint64_t capacity{};
    std::uint64_t queued{};       // writes waiting in the region's queue
    replica::host_status h;
};

class engine final : public engine_link {
public:
    engine(const cfg::config& c, port& p, tsc_clock& clk);
    ~engine() override;
    engine(const engine&) = delete;
    engine& operator=(const engine&) = delete;

    // Loop bodies, each run on its own lcore (lcore_function_t shape: 0 on a clean stop).
    int run_to_completion() noexcept;
    int run_rx() noexcept;
    int run_role() noexcept;

    // Async-signal-safe: the role loop sends its release frame, then all loops return.
    void request_stop() noexcept { stop_.store(true, std::memory_order_relaxed); }
    bool finished() const noexcept { return role_done_.load(std::memory_order_acquire); }

    // Control side.
    template <class F>
    std::size_t poll_events(F&& f);
    bool post(const engine_command& cmd) noexcept override;
    status_snapshot status() const noexcept;   // the first group in full; counters summed over groups
    std::vector<group_status> group_statuses() const override; // every group, in cfg.groups order
    std::size_t group_count() const noexcept { return m_.size(); }
    const lcore_counters& rx_counters() const noexcept { return rx_c_; }
    const lcore_counters& role_counters() const noexcept { return role_c_; }
    const rtt_histogram& rtt() const noexcept { return rtt_; }
    const gap_histogram& gaps() const noexcept { return gaps_; }       // role (or run-to-completion) lcore
    const gap_histogram& rx_gaps() const noexcept { return rx_gaps_; } // pipelined RX lcore
    // The poll lcores' scheduling: -1 not applied yet, 0 as configured, else the errno.
    int sched_result() const noexcept { return sched_rc_.load(std::memory_order_relaxed); }
    std::uint64_t wake_latency_ns() const noexcept { return wake_latency_ns_.load(std::memory_order_relaxed); }
    // Gauges for the status: the port's mbuf pool (size, in use: RX rings, TX in flight, the
    // backlog, lcore caches) and the frames the TX backlog holds now (most of the last turn).
    struct mbuf_gauge {
        std::uint32_t size{0}, in_use{0};
    };
    mbuf_gauge mbufs() const noexcept;
    std::uint32_t tx_backlog() const noexcept { return tx_backlog_.load(std::memory_order_relaxed); }
    // The guard's page (may be null: no notice). Set before the loops start.
    void set_death_notice(death_notice* n) noexcept { notice_ = n; }
    // Before the loop starts: the region of store `index` (cfg.state[index]), which the
    // caller created and keeps mapped for the engine's lifetime. The engine drains its
    // queue, replicates and applies, and publishes seqs, role and sync in its header.
    void add_store(std::size_t index, state::region& r);
    std::vector<store_status> store_statuses() const;
    // Keyed mode: the keys to use from the next turn on (before run: from the start). The
    // bundle must outlive its use: free it only once keys_taken(a later gen) is true.
    void offer_keys(key_bundle* b) noexcept { offered_.store(b, std::memory_order_release); }
    bool keys_taken(std::uint64_t gen) const noexcept {
        return role_gen_.load(std::memory_order_acquire) >= gen && (!pipe_ || rx_gen_.load(std::memory_order_acquire) >= gen);
    }
    bool keyed() const noexcept { return keyed_; }
    // A reload: the machines' new knobs from the next turn on (fsm::retune); the same
    // lifetime rule as keys.
    void offer_params(params_bundle* b) noexcept { offered_params_.store(b, std::memory_order_release); }
    bool params_taken(std::uint64_t gen) const noexcept { return params_gen_.load(std::memory_order_acquire) >= gen; }
    // The id of the monitor's ICMP echo probes (fixed at start), for the steering program.
    std::uint16_t icmp_id() const noexcept { return m_.front().icmp_id; }
    // 802.1Q (port.vlan, group.vlan): a received frame of one of our VLANs, its tag stripped
    // (in line, or already by the NIC); false for another VLAN's, counted. Tagging what we
    // send (tx_sink).
    bool accept_vlan(rte_mbuf* m, lcore_counters& c) const noexcept;
    // Control thread: refresh the engine-time -> wall-time mapping (see tsc_clock).
    void reanchor_clock() noexcept { clk_.reanchor(); }
    const mac_addr& mac() const noexcept;

private:
    friend class tx_sink;
    std::size_t dequeue_events(control_event* out, std::size_t n) noexcept;
    void handle_frame(rte_mbuf* m, const wire::frame& f, std::uint64_t now, class tx_sink& tx) noexcept;
    void route_frame(const rte_mbuf* m, const wire::frame& f, std::uint64_t now, class tx_sink& tx) noexcept;
    void step_group(std::size_t g, const wire::frame& f, std::uint64_t now, class tx_sink& tx) noexcept;
    std::size_t group_of_id(std::uint32_t id) const noexcept;      // npos: none
    std::size_t group_of(ipv4_addr a) const noexcept;
    std::size_t group_of(const ipv6_addr& a) const noexcept;
    void build_demux();
    void publish_groups() noexcept;
    std::uint64_t next_wakeup_all() noexcept;
    void set_wake(std::size_t g) noexcept;
    void rebuild_heap() noexcept;
    std::uint64_t machine_event(fsm::event_kind k, class tx_sink& tx) noexcept;
    template <class Pull>
    int role_loop(Pull&& pull) noexcept;
    void role_turn(const fsm::event& tick, std::uint64_t now, class tx_sink& tx) noexcept;
    void publish(std::uint64_t now) noexcept;
    // An idle sleep of `ns` (planned at `end`) that an application's write ends (the
    // stores' doorbells). none: no doorbell to sleep on (a plain sleep then); ready: a write
    // waits, no sleep; early: a write rang; timer: the sleep ran its course.
    enum class bell { none, ready, early, timer };
    bell doorbell_sleep(std::uint64_t ns, std::uint64_t end) noexcept;
    std::uint64_t rest(idle_planner& planner, lcore_counters& c, std::uint64_t end, bool worked,
                       std::uint64_t next_due) noexcept;
    void apply_sched() noexcept;
    void drop_sched() noexcept;
    void refresh_notice() noexcept;
    void record_rtt() noexcept;
    void report_gap(std::uint64_t late, std::uint64_t now) noexcept;
    void take_keys(std::uint64_t now, class tx_sink& tx) noexcept;
    void take_params(std::uint64_t now) noexcept;
    bool authenticate(wire::frame& f, auth::keyring* ring, lcore_counters& c) noexcept;
    void sign(std::span<std::byte> frame_bytes) noexcept;
    struct store_slot;
    void run_stores(std::uint64_t now, class tx_sink& tx) noexcept;
    void expire_replica_leases(std::uint64_t now) noexcept;
    void state_in(std::size_t g, const fsm::action& a, std::uint64_t now, class tx_sink& tx) noexcept;
    void publish_stores(std::uint64_t now) noexcept;
    std::uint8_t signing_key() const noexcept; // the key id role_keys_->tx signs with (0: none yet)

    const cfg::config& cfg_;
    port& port_;
    tsc_clock& clk_;
    // One state machine per address group (cfg.groups), and what the engine needs to route
    // frames to them: by group id (heartbeats), by address (ARP, ND, echo), by VLAN.
    std::vector<fsm::state> m_;
    std::vector<std::uint16_t> m_vlan_;
    // Per machine: its GARPs / NAs go to the control thread, which sends them from the
    // group's own kernel interface once the kernel holds the address (io::announce_interface:
    // a dedicated heartbeat port), instead of from this port with this port's MAC.
    std::vector<std::uint8_t> m_kernel_announces_;
    std::size_t bundle_budget_{0}; // bytes of entries a bundle may carry (port MTU); 0: no bundles
    std::vector<std::uint64_t> m_wake_;               // each machine's next timer (many groups)
    // Many groups: a min-heap of (wake, machine), stale entries skipped, capacity reserved
    // at start (never allocates in the loop); the due machines of a turn.
    std::vector<std::pair<std::uint64_t, std::uint16_t>> heap_;
    std::vector<std::uint16_t> due_;
    std::uint32_t publishes_{0};
    std::vector<std::pair<std::uint32_t, std::uint16_t>> by_id_;   // sorted
    std::vector<std::pair<std::uint32_t, std::uint16_t>> by_v4_;   // sorted, host-order address
    std::vector<std::pair<ipv6_addr, std::uint16_t>> by_v6_;       // sorted
    std::array<std::uint64_t, 64> vlans_{};            // bit v: VLAN v is one of ours (0 = untagged)
    bool tick_all_{true};                              // few groups: every machine ticks every turn
    std::unique_ptr<group_status[]> gsnap_;
    std::atomic<bool> stop_{false};
    std::atomic<bool> role_done_{false};
    rte_ring* pipe_{};     // RX lcore -> role lcore (pipelined)
    rte_ring* events_{};   // engine -> control
    rte_ring* commands_{}; // control -> engine
    std::atomic_flag post_lock_ = ATOMIC_FLAG_INIT; // commands_ is single-producer; control threads serialise
    std::uint64_t next_publish_ns_{};
    std::uint64_t seen_answers_{};
    std::atomic<std::uint64_t> stall_threshold_ns_{}; // the first machine's (a reload may change it); both lcores read it
    std::uint64_t report_gap_ns_{};     // gaps longer than this are logged (rate-limited)
    std::uint64_t next_gap_report_ns_{};
    idle_planner role_idle_;
    idle_planner rx_idle_;
    death_notice* notice_{};
    std::uint64_t notice_key_{~0ull};
    std::atomic<int> sched_rc_{-1};
    std::atomic<std::uint64_t> wake_latency_ns_{0};
    std::atomic<std::uint32_t> tx_backlog_{0};
    // Pipelined: the RX lcore's last empty poll (everything received before it is in the
    // pipe) and the end of its last stall. The role lcore judges silence only up to the first.
    alignas(64) std::atomic<std::uint64_t> rx_drained_ns_{0};
    std::atomic<std::uint64_t> rx_resume_ns_{0};
    alignas(64) lcore_counters rx_c_;
    lcore_counters role_c_;
    rtt_histogram rtt_;
    gap_histogram gaps_;
    gap_histogram rx_gaps_;
    // Keys: the bundle offered by the control thread, and the one each lcore is using.
    bool keyed_{false};
    std::atomic<key_bundle*> offered_{nullptr};
    key_bundle* role_keys_{nullptr};
    key_bundle* rx_keys_{nullptr};
    std::atomic<std::uint64_t> role_gen_{0};
    std::atomic<std::uint64_t> rx_gen_{0};
    std::atomic<params_bundle*> offered_params_{nullptr};
    params_bundle* role_params_{nullptr};
    std::atomic<std::uint64_t> params_gen_{0};

    // Replicated stores: their hosts, the frame being emitted for one (the host's emit
    // callback is built once and reads these), and their published status.
    std::vector<std::unique_ptr<store_slot>> stores_;
    int role_cpu_{-1};         // the CPU the role lcore runs on (an application waiting there gets it back)
    bool owed_{false};         // a store's completion for a waiter on role_cpu_ may still be owed a sleep (waiter_owed)
    bool sync_in_flight_{false}; // a synchronous store has writes the monitor has not acknowledged
    static constexpr std::uint8_t courtesy_sleeps = 5; // one at the completion, four more at most
    static constexpr std::uint8_t unseen_limit = 4;
    bool waiter_owed() noexcept;
    void note_role_cpu() noexcept; // role_cpu_ and the stores' engine_cpu, when it changed
    bool doorbell_ok_{true};  // futex_waitv works here (Linux 5.16+)
    std::vector<futex_waitv> bells_; // the stores' doorbells, for futex_waitv
    std::unique_ptr<store_status[]> ssnap_;
    std::function<void(std::span<const std::byte>)> state_emit_;
    class tx_sink* emit_tx_{nullptr};
    store_slot* emit_store_{nullptr};
    mac_addr emit_dst_;
    std::uint64_t emit_now_{0};

    alignas(64) std::atomic<std::uint32_t> snap_seq_{0};
    status_snapshot snap_{};

public:
    // Embedded (heartwire/embed.hpp): the application owns the port and the poll loop, and
    // calls these on its lcore: start_embedded() once (what role_loop does before its loop),
    // then every turn deliver() the frames its RX loop found to be heartwire's (the steps
    // run_to_completion takes per frame) and turn() (commands, timers, TX flush; returns when
    // the engine next has work), and stop_embedded() after the last turn (the shutdown event:
    // the release frame, the addresses released). `intended_ns`: when the application was to
    // be back: only lateness past it counts as our stall; 0 is a busy loop's tick. The
    // *_now accessors read the machines directly: that lcore only. changes_now() moves
    // whenever a machine emitted a role or address action.
    void start_embedded() noexcept;
    void deliver(rte_mbuf* const* pkts, std::uint16_t n, std::uint64_t now) noexcept;
    std::uint64_t turn(std::uint64_t intended_ns = 0, std::uint64_t rx_empty_ns = 0) noexcept;
    void stop_embedded() noexcept;
    role role_now(std::size_t g) const noexcept { return m_[g].r; }
    bool holds_now(std::size_t g, fsm::address_id a) const noexcept { return m_[g].holds[static_cast<std::size_t>(a)]; }
    std::uint64_t epoch_now(std::size_t g) const noexcept { return m_[g].epoch; }
    std::uint64_t changes_now() const noexcept { return changes_; }

private:
    // One received frame, as run_to_completion and deliver take it: VLAN, decode,
    // authenticate, the machine. Frees the mbuf.
    void rx_frame(rte_mbuf* m, std::uint64_t now, class tx_sink& tx) noexcept;
    std::unique_ptr<class tx_sink> embed_tx_; // embedded: the sink deliver and turn use
    std::uint64_t changes_{0};                // role_changed, claim_address, release_address emitted
};

template <class F>
std::size_t engine::poll_events(F&& f) {
    control_event buf[32];
    std::size_t total = 0;
    for (;;) {
        const std::size_t n = dequeue_events(buf, 32);
        for (std::size_t i = 0; i < n; ++i) f(buf[i]);
        total += n;
        if (n < 32) return total;
    }
}

} // namespace heartwire::io
