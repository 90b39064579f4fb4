#pragma once
// The role state machine: step(state, event, now_ns, sink). Pure: no I/O, no clock, no heap;
// everything it wants done leaves as an action. The I/O layer (src/dpdk) carries actions out
// and the control thread runs the slow ones (netlink, hooks, logs).
//
// Seeds: 000 claims 1, 3-9 (monitor signals the primary, takes over on a missed answer, has
// it booted); 001 claim 1 (after a takeover, probe the monitor address); 002 [0021]-[0029]
// (boot-time discovery FIG. 1/2, N+M standbys); 003 claims 2, 3, 17 (stay-down, heartbeats
// both ways). Every rule in fsm.cpp names the paragraph it implements.

#include <array>
#include <cstdint>

#include "heartwire/config.hpp"
#include "heartwire/detector.hpp"
#include "heartwire/net_types.hpp"
#include "heartwire/roles.hpp"
#include "heartwire/wire.hpp"

namespace heartwire::fsm {

enum class address_id : std::uint8_t { primary = 0, monitor = 1 };
inline constexpr std::size_t address_count = 2;
std::string_view to_string(address_id a) noexcept;

// All the addresses of one role: v4[0] is the role address (params::addr), discovered by
// ARP; the rest, IPv4 and IPv6, move with it. Fixed capacity: the machine never allocates.
struct role_addresses {
    std::uint8_t n4{1};
    std::uint8_t n6{0};
    std::array<ipv4_addr, cfg::max_role_addresses> v4{};
    std::array<ipv6_addr, cfg::max_role_addresses> v6{};
    bool has(ipv4_addr a) const noexcept {
        for (std::size_t i = 0; i < n4; ++i)
            if (v4[i] == a) return true;
        return false;
    }
    bool has(const ipv6_addr& a) const noexcept {
        for (std::size_t i = 0; i < n6; ++i)
            if (v6[i] == a) return true;
        return false;
    }
};

// Everything the machine needs from the config, with times in nanoseconds.
struct params {
    std::uint32_t node_id{1};
    std::uint32_t group{1};           // [node] group: frames of another group are ignored
    std::uint64_t incarnation{1};     // this boot (the engine stamps realtime ns at start)
    // Believe heartbeats only when the receiver verified their tag. false only with
    // [auth] mode = "none", configured explicitly.
    bool require_auth{true};
    // RFC 5227 2.4: an ARP claim for an address we hold is answered by our GARP at once, at
    // most once per this long per address.
    std::uint64_t defend_interval_ns{10'000'000};
    std::uint8_t priority{cfg::default_priority};
    mac_addr mac;
    ipv4_addr addr[address_count];          // each role's first (discovery) address
    role_addresses addrs[address_count];    // every address of each role (v4[0] == addr[i])
    bool answer_icmp{true}; // exclusive mode: we answer echo (and IPv6 NS) for held addresses
    cfg::probe_kind probe{cfg::probe_kind::heartbeat};
    std::uint64_t interval_ns{10'000};
    std::uint32_t miss{3};
    std::uint64_t stall_threshold_ns{0};
    bool align_probes{false}; // probes on a common grid (an engine with many groups)
    std::uint32_t garp_repeat{3};
    std::uint64_t garp_interval_ns{100'000};
    std::uint64_t garp_refresh_ns{1'000'000'000};
    std::uint32_t discovery_probes{3};
    std::uint64_t discovery_interval_ns{10'000'000};
    std::uint64_t discovery_wait_ns{20'000'000};
    std::uint64_t announce_interval_ns{10'000'000};
    std::uint64_t peer_timeout_ns{100'000'000};
    std::uint64_t stay_down_interval_ns{10'000'000};
    bool preempt{false};
    std::uint64_t preempt_delay_ns{0};
    bool require_fence{false};
    std::uint64_t drain_timeout_ns{5'000'000'000};
    std::uint64_t flap_hold_ns{30'000'000'000};
    bool has_boot_peer{false};
    bool has_fence{false};

    // The machine of group `group` (an index into c.groups; a config without groups: its
    // [addresses] and [node] group).
    static params from_config(const cfg::config& c, const mac_addr& mac, std::size_t group = 0) noexcept;
};

// A key-id set: bit i = key id i (1..255).
using key_set = std::array<std::uint64_t, 4>;
constexpr bool key_in(const key_set& k, std::uint8_t id) noexcept { return (k[id >> 6] >> (id & 63)) & 1u; }

// Peers are authenticated nodes of our group only. The entry outlives silence (a dead peer
// stays, marked down, so its replay window keeps old frames out); the least recently heard
// dead entry is reused when the table is full.
struct peer {
    bool valid{false};
    std::uint32_t id{};
    mac_addr mac;                 // bound at first authenticated frame (issue 8 item 4)
    role r{role::init};
    std::uint8_t priority{};
    std::uint64_t epoch{};
    std::uint16_t flags{};
    std::uint64_t last_heard_ns{};
    std::uint64_t rtt_ns{};
    bool down{false};             // presumed dead: replaced by a takeover or its engine died
    // Replay window: its incarnation, the highest seq seen and a bitmap of the 64 below it.
    std::uint64_t incarnation{};
    std::uint64_t seq_high{};
    std::uint64_t seq_bits{};
    std::uint8_t key_id{};        // key its last frame was signed with
    bool keys_known{false};       // it has advertised the key ids it accepts
    key_set accepts{};
};
inline constexpr std::size_t max_peers = 64;
inline constexpr std::size_t probe_memory = 2048; // probes whose send time the monitor remembers (>= 2 x detector::max_miss)
// A claim more than this far above the newest epoch we know is refused (a buggy or
// compromised peer cannot wrap or pin the epoch).
inline constexpr std::uint64_t max_epoch_step = 1024;

enum class event_kind : std::uint8_t {
    start,     // begin discovery
    tick,      // time passed (every loop turn)
    frame,     // a decoded, valid frame (event::rx)
    shutdown,  // SIGTERM: release everything, tell the peers
    hook_done, // a hook the machine asked for has finished (event::hook, hook_ok)
    command    // from the operator, the application or a health check (event::cmd, arg)
};

enum class hook_kind : std::uint8_t { boot_peer, fence, recover, undrain };
std::string_view to_string(hook_kind h) noexcept;

enum class command_kind : std::uint8_t {
    switchover,    // operator: hand the primary address over without losing work (003 claim 1)
    fault,         // a health check failed; arg = fault_kind (003 claims 8-13)
    fault_cleared, // the fault is cured: recover and rejoin (003 claim 20)
    drain_done,    // the application finished draining; arg = work still in flight
    link           // the port's carrier changed (LSC event or kernel carrier); arg = 1 up, 0 down
};

// What failed, carried in fault reports (seed 003 claim 9: the report names the type).
enum class fault_kind : std::uint8_t { none = 0, script = 1, interface = 2, process = 3, application = 4 };
std::string_view to_string(fault_kind f) noexcept;
bool parse_fault_kind(std::string_view s, fault_kind& out) noexcept;

// Why a switchover was refused (note::switchover_refused's arg), for the operator.
enum class refusal : std::uint8_t {
    none = 0,
    no_monitor = 1,  // the primary has no live monitor to hand over to
    wrong_role = 2,  // only the primary or the monitor can start one
    in_progress = 3, // a switchover is already under way
    no_primary = 4,  // the monitor knows no live primary
    faulty = 5,      // this monitor is in fault: it must not take the service
    link_down = 6,
    out_of_sync = 7, // the monitor's replica of the state store is not in sync (issue 10)
};
std::string_view to_string(refusal r) noexcept;

struct event {
    event_kind kind{event_kind::tick};
    const wire::frame* rx{nullptr};
    hook_kind hook{hook_kind::boot_peer};
    bool hook_ok{false};
    command_kind cmd{command_kind::switchover};
    std::uint32_t arg{};
    // tick: when the loop woke, when it meant to wake (0, 0: a busy loop that woke at
    // `now`), and the time up to which every received frame has been handed over (0: now).
    // The detector judges silence only up to `judged_ns` and counts only unintended
    // lateness as a stall. `rx_resume_ns`: the pipelined RX lcore was stalled until then.
    std::uint64_t woke_ns{};
    std::uint64_t intended_ns{};
    std::uint64_t judged_ns{};
    std::uint64_t rx_resume_ns{};
};

#define HEARTWIRE_ACTIONS(X)                                                                     \
    X(send_heartbeat)  /* dst, hb */                                                             \
    X(send_arp_probe)  /* addr */                                                                \
    X(send_garp)       /* addr */                                                                \
    X(send_arp_reply)  /* dst, arp */                                                            \
    X(send_icmp_probe) /* dst, addr (target), icmp_seq; source = our monitor address */          \
    X(reflect_echo)    /* answer the echo request in the frame being processed */                \
    X(send_na)         /* addr6: unsolicited neighbour advertisement (the IPv6 GARP) */          \
    X(send_dad_ns)     /* addr6: duplicate address detection probe (RFC 4862 5.4) */             \
    X(answer_ns)       /* answer the neighbour solicitation in the frame being processed */      \
    X(reflect_echo6)   /* answer the ICMPv6 echo request in the frame being processed */         \
    X(claim_address)   /* which, addr: control adds it to the kernel in shared mode */           \
    X(release_address) /* which, addr */                                                         \
    X(role_changed)    /* from, to, epoch: control runs notify hooks, logs */                    \
    X(run_hook)        /* hook, peer_id */                                                       \
    X(takeover)        /* peer_id, last_answer_ns, decided_ns: detection record */            \
    X(drain)           /* stop taking new work, report when in-flight work is done */          \
    X(state_frame)     /* hb (payload: a replication frame), peer_id, peer_mac: for the store */\
    X(undrain)         /* a drain was abandoned (switchover timed out): take new work again */ \
    X(notice)          /* something the operator should read: note, arg */

enum class action_kind : std::uint8_t {
#define HW_X(name) name,
    HEARTWIRE_ACTIONS(HW_X)
#undef HW_X
};
std::string_view to_string(action_kind a) noexcept;

#define HEARTWIRE_NOTES(X)                                                                       \
    X(switchover_started)        /* arg: peer taking over */                                     \
    X(switchover_refused)        /* no live peer to hand over to, or wrong role */               \
    X(switchover_timed_out)      /* the other side never completed the handover */               \
    X(handover_inflight)         /* arg: work still in flight in the old primary's compilation */\
    X(fault_reported)            /* arg: fault_kind */                                           \
    X(fault_no_takeover)         /* the monitor cannot take over: keep serving */                \
    X(fault_takeover_accepted)                                                                   \
    X(preempting)                /* arg: primary's node id */                                    \
    X(engine_down_heard)         /* arg: the peer whose guard said its engine died */            \
    X(link_down)                 /* our port lost carrier: we hold nothing and never take over */\
    X(link_up)                   /* carrier is back: rejoin through discovery */                 \
    X(loop_gap)                  /* engine: a poll loop woke this many us late (rate-limited) */\
    X(id_collision)              /* arg: our id, heard from another MAC with a valid key */      \
    X(id_collision_over)         /* no colliding frame for a peer timeout: we rejoin */          \
    X(address_attacked)          /* arg: ARP claims for our address by other MACs, last second */\
    X(peer_table_full)           /* an authenticated peer found no slot (rate-limited) */        \
    X(fence_abandoned)           /* arg: peer; the fence failed and the peer answers again */    \
    X(fence_failed)              /* arg: peer; retried after a backoff (doubling, up to 64x) */  \
    X(send_key_changed)          /* arg: key id now used for sending */                          \
    X(takeover_out_of_sync)      /* arg: 1 failure, 2 switchover; the replica was not in sync */ \
    X(takeover_held)             /* arg: hold in ms; the primary is silent and a copy is joining */ \
    X(takeover_hold_answered)    /* arg: us held; the primary answered: no takeover was needed */ \
    /* the engine's, about a replicated store (arg: its index in [[state]]) */                   \
    X(replica_diverged)          /* the follower's copy differed (digest or scrub): a snapshot repairs it */ \
    X(replica_in_sync)           /* the follower's copy reached sync */                           \
    X(replica_lost_sync)         /* it left sync (monitor gone, joining, diverged) */

enum class note : std::uint8_t {
#define HW_X(name) name,
    HEARTWIRE_NOTES(HW_X)
#undef HW_X
};
std::string_view to_string(note n) noexcept;

struct action {
    action_kind kind{action_kind::send_heartbeat};
    note what{note::switchover_started};
    std::uint32_t arg{};
    mac_addr dst;
    wire::hb_msg hb;
    wire::arp_msg arp;
    ipv4_addr addr;
    ipv6_addr addr6;
    address_id which{address_id::primary};
    std::uint16_t icmp_seq{};
    role from{role::init};
    role to{role::init};
    std::uint64_t epoch{};
    hook_kind hook{hook_kind::boot_peer};
    std::uint32_t peer_id{};
    mac_addr peer_mac;
    std::uint64_t last_answer_ns{};
    std::uint64_t decided_ns{};
};

class action_sink {
public:
    virtual void emit(const action& a) noexcept = 0;

protected:
    ~action_sink() = default;
};

#define HEARTWIRE_FSM_COUNTERS(X)                                                                \
    X(takeovers)            /* monitor claimed the primary address after a failure */            \
    X(step_downs)           /* released the primary address to a newer epoch */                 \
    X(monitor_yields)       /* released the monitor address to a higher rank */                 \
    X(stalls)               /* own loop stalls compensated by the detector */                    \
    X(probes_sent)                                                                               \
    X(answers)              /* probe answers that counted */                                     \
    X(stale_answers)        /* answers to probes already answered or never sent */               \
    X(acks_sent)                                                                                 \
    X(announces_sent)                                                                            \
    X(garps_sent)                                                                                \
    X(nas_sent)             /* unsolicited neighbour advertisements (IPv6 claims, defences) */   \
    X(ns_answered)          /* neighbour solicitations answered (exclusive mode) */              \
    X(echo6_replies)                                                                             \
    X(dad_probes_sent)      /* RFC 4862 duplicate address detection at discovery */              \
    X(arp_replies)                                                                               \
    X(echo_replies)                                                                              \
    X(stay_downs_sent)                                                                           \
    X(stay_downs_heard)                                                                          \
    X(own_frames)           /* our own frames seen again (af_packet taps outgoing) */            \
    X(peer_table_full)                                                                           \
    X(address_conflicts)    /* a GARP for an address we hold from another MAC */                 \
    X(monitor_lost)         /* primary stopped hearing the monitor's probes */                   \
    X(flaps)                /* we were replaced while alive (stalled past the window) */         \
    X(damped_watches)       /* monitor stints with a widened window after a flap */              \
    X(false_takeovers)      /* after our takeover the old primary was heard alive */           \
    X(engine_down_notices)  /* engine-down frames heard from peers */                          \
    X(notice_takeovers)     /* takeovers decided on an engine-down notice (no window wait) */  \
    X(link_downs)           /* our port lost carrier */                                        \
    X(address_defences)     /* GARPs sent to defend an address another MAC claimed */          \
    X(takeovers_out_of_sync) /* takeovers by a monitor whose replica was not in sync (issue 10) */\
    X(takeovers_held)       /* silence takeovers held back while a store's copy was joining */ \
    X(takeover_holds_answered) /* ... after which the primary answered (a false takeover avoided) */ \
    X(state_frames)         /* replication frames handed to the store */                       \
    /* drops, by reason (issue 8): none of these reaches a role rule */                        \
    X(drop_other_group)     /* a heartbeat of another group */                                 \
    X(drop_unauthenticated) /* no valid tag (the engine counts why: bad tag, unknown key) */   \
    X(drop_not_for_us)      /* unicast to another MAC (a redirected frame) */                  \
    X(drop_old_incarnation) /* an earlier boot of a known peer */                             \
    X(drop_replay)          /* a seq already seen, or older than the window */                 \
    X(drop_id_mac_mismatch) /* a known id from a MAC it was not bound to */                    \
    X(drop_id_collision)    /* our own id from another MAC */                                  \
    X(drop_epoch_jump)      /* an epoch more than max_epoch_step above the newest known */     \
    X(drop_role)            /* a control frame from a peer whose role may not send it */       \
    X(drop_table_full)      /* an authenticated peer found no slot */

struct counters {
#define HW_X(name) std::uint64_t name{};
    HEARTWIRE_FSM_COUNTERS(HW_X)
#undef HW_X
};

struct state {
    params p;
    role r{role::init};
    std::uint64_t role_since_ns{};
    std::uint64_t epoch{};          // while primary: our claim; otherwise the newest seen
    bool holds[address_count]{};

    // GARP burst and refresh per held address.
    std::uint32_t garp_left[address_count]{};
    std::uint64_t next_garp_ns[address_count]{};
    std::uint64_t next_refresh_ns[address_count]{};

    // Discovery of one address (probe_primary, probe_monitor, standby's re-probe loop).
    std::uint32_t disc_sent{};
    std::uint64_t disc_next_ns{};
    bool disc_held{};               // evidence seen that someone holds the probed address

    std::uint64_t next_announce_ns{};
    std::uint64_t hb_seq{};

    // Monitor: the primary it watches.
    detector det;
    std::uint32_t watched_id{};
    mac_addr watched_mac;
    mac_addr primary_mac_hint;      // who answered for the primary address last
    std::uint16_t icmp_id{};

    // Primary: the monitor it hears (heartbeats both ways, seed 003 claim 3).
    std::uint32_t heard_monitor_id{};
    std::uint64_t monitor_last_probe_ns{};
    bool monitor_alive{};

    // Stay-down towards an old primary (seed 003 claims 2, 17) and waiting for a fence.
    bool stay_down_active{};
    std::uint32_t stay_down_id{};
    mac_addr stay_down_mac;
    std::uint64_t next_stay_down_ns{};
    std::uint64_t last_stay_down_heard_ns{};
    bool fence_pending{};
    // Switchover (seed 003 claims 1, 4, 16): the monitor waits for `drained`; the primary drains.
    bool switchover_pending{};
    std::uint64_t switchover_deadline_ns{};
    std::uint32_t handover_id{};
    mac_addr handover_mac;
    bool drain_done{};
    std::uint32_t drain_inflight{};
    std::uint64_t drain_deadline_ns{};
    std::uint64_t drained_sent_ns{};
    std::uint64_t last_inflight_reported{};   // monitor: what the old primary said was in flight

    // Faults (seed 003 claims 8-13, 20, 21).
    fault_kind fault{fault_kind::none};
    bool fault_answered{};
    bool fault_can_take_over{};
    std::uint64_t fence_retry_ns{};
    std::uint32_t failed_id{};
    mac_addr failed_mac;

    // Flap damping: a replaced-while-alive primary watches with a wider window for a while.
    std::uint8_t flap_level{};
    std::uint64_t flap_until_ns{};
    bool failed_seen_alive{};

    bool link_down{};               // the port has no carrier: hold nothing, never take over

    // Another node with our id (issue 8 item 4): neither claims while it lasts.
    std::uint64_t collision_until_ns{};
    std::uint64_t next_collision_note_ns{};
    // Address defence (RFC 5227 2.4) and its rate limit.
    std::uint64_t last_defence_ns[address_count]{};
    std::uint64_t attack_window_ns{};
    std::uint32_t attack_count{};
    std::uint64_t next_table_note_ns{};
    std::uint32_t fence_failures{};

    // Keys (make-before-break rotation): the ids this node accepts, the one the operator
    // wants to send with, and the one in use. The send key moves to `preferred_key` once
    // every live peer has said it accepts it (announce payload), so no peer ever drops us.
    key_set my_keys{};
    std::uint8_t preferred_key{};
    std::uint8_t send_key{};
    std::array<std::byte, 34> announce_payload{};

    std::array<peer, max_peers> peers{};
    std::uint64_t last_rtt_ns{};   // round trip of the newest answered heartbeat probe
    // Monitor: when each of the last probe_memory probes left (an answer must echo it).
    std::array<std::uint64_t, probe_memory> probe_sent_ns{};
    // The application was told to drain and not yet to take work again (undrain).
    bool app_drained{};
    // The replicated store (issue 10), as the engine last said (set_replica): whether this
    // group carries one, whether its copy is in sync (monitor: its replica; primary: its
    // follower's), and whether everything written has been acknowledged (a draining
    // primary says `drained` only then, so its compilation reaches the new primary).
    bool replica_configured{};
    bool replica_in_sync{};
    bool replica_caught_up{true};
    // Monitor: how long a takeover on the primary's silence waits while a store's copy is
    // not consistent (joining, repairing: replica::host::consistent), the longest of those
    // stores' [[state]] join_hold_ms; 0 when every copy is (or none is held back). A primary
    // that only stalled answers within it, and its whole copy is not replaced by a part.
    std::uint64_t replica_join_hold_ns{};
    std::uint64_t takeover_held_since_ns{}; // the silence takeover waiting for it (0: none)
    counters c;
};

void init(state& s, const params& p) noexcept;
void step(state& s, const event& ev, std::uint64_t now_ns, action_sink& out) noexcept;

// The earliest time the machine has something to do without input (for idle back-off).
std::uint64_t next_wakeup(const state& s) noexcept;

// The frame the node's guard sends if this engine dies now (seed 003 claims 14-15): our
// id, role, epoch and what we hold. The engine refreshes it whenever those change.
wire::hb_msg engine_down_msg(const state& s) noexcept;

// Rank used for ties: (epoch, priority, node id), larger wins.
struct rank {
    std::uint64_t epoch;
    std::uint8_t priority;
    std::uint32_t id;
    auto operator<=>(const rank&) const noexcept = default;
};

const peer* find_peer(const state& s, std::uint32_t id) noexcept;

// Keys the engine's keyring holds now and the one the operator marked for sending. The
// machine answers with the send key to use (state::send_key), which changes only once every
// live peer accepts the new one.
void set_keys(state& s, const key_set& accepted, std::uint8_t preferred, std::uint64_t now, action_sink& out) noexcept;

// A reload (SIGHUP): the knobs an operator may change on a running node, taken from `np`:
// timing (interval, miss, stall threshold, discovery, announce, peer timeout, stay-down,
// drain, flap hold), GARP and defence, priority, preempt and its delay, require_fence and
// which hooks exist. What the machine is (node id, group, MAC, addresses, probe kind, auth,
// incarnation) stays. No role changes here: a new rank is announced at once and judged by
// the peers' usual rules; timers that now fall later than their new period are brought in.
void retune(state& s, const params& np, std::uint64_t now) noexcept;

// The replicated store (issue 10). The engine says after each turn where this group's store
// stands; the machine puts it in its heartbeats (hb_flag_in_sync), refuses a switchover to
// a monitor that is not in sync, counts a failure takeover by one, and holds a draining
// primary's `drained` until its writes are acknowledged (or the drain deadline passes).
void set_replica(state& s, bool configured, bool in_sync, bool caught_up) noexcept;
// Whom the store talks to now: a primary (or a draining one) its live monitor; a monitor
// the primary it watches. `leader` says which side this node is.
struct replica_peer {
    bool leader{false};
    bool follower{false};
    std::uint32_t id{};
    mac_addr mac;
};
replica_peer replication_peer(const state& s, std::uint64_t now) noexcept;
// The header of a replication frame from this machine (its group, epoch, flags and the
// next seq of its replay window).
wire::hb_msg state_header(state& s, std::uint32_t store, std::uint64_t now) noexcept;

// Announce payload TLVs: type (1), length (1), value.
inline constexpr std::uint8_t tlv_accepted_keys = 1; // 32 bytes: the key_set, bit i = id i

} // namespace heartwire::fsm
