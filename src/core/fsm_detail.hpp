#pragma once
// Internal to the state machine, shared by its parts, one per concern:
//   fsm.cpp            step(): dispatch of events, init, next_wakeup, keys
//   fsm_roles.cpp      the one role transition (exit and entry actions), emitters, claims
//   fsm_admit.cpp      what a heartbeat must pass before any rule sees it: group, tag,
//                      destination, node id binding, replay window, epoch bound, peer table
//   fsm_discovery.cpp  boot-time discovery and the standby loop (seed 002)
//   fsm_watch.cpp      watching the primary, takeover, fencing, stay-down, conflicts, ARP
//                      defence (seeds 000, 001, 003 claims 2, 14-17)
//   fsm_switchover.cpp operator switchover, drain and undrain (seed 003 claims 1, 4, 16)
//   fsm_faults.cpp     faults, fault reports, link state, node id collisions (003 claims 8-13, 20)

#include "heartwire/fsm.hpp"

namespace heartwire::fsm::detail {

constexpr std::size_t idx(address_id a) noexcept { return static_cast<std::size_t>(a); }
constexpr std::uint64_t sat_inc(std::uint64_t e) noexcept { return e == ~std::uint64_t{0} ? e : e + 1; }

// ---- fsm_roles.cpp
// The store (issue 10) lets this node take the service without losing state: none is
// configured, or its copy is in sync.
constexpr bool replica_ok(const state& s) noexcept { return !s.replica_configured || s.replica_in_sync; }
std::uint16_t my_flags(const state& s) noexcept;
wire::hb_msg make_hb(state& s, wire::hb_type t, std::uint64_t now) noexcept;
void send_hb(action_sink& out, const mac_addr& dst, const wire::hb_msg& m) noexcept;
void announce(state& s, std::uint64_t now, action_sink& out) noexcept;
void emit_addr(action_sink& out, action_kind k, address_id which, ipv4_addr addr) noexcept;
void emit_addr6(action_sink& out, action_kind k, address_id which, const ipv6_addr& addr) noexcept;
void announce_addresses(state& s, address_id which, action_sink& out) noexcept;
void send_garp(state& s, address_id which, std::uint64_t now, action_sink& out) noexcept;
void garp_burst(state& s, address_id which, std::uint64_t now, action_sink& out) noexcept;
void claim(state& s, address_id which, std::uint64_t now, action_sink& out) noexcept;
void release(state& s, address_id which, action_sink& out) noexcept;
void run_hook(action_sink& out, hook_kind h, std::uint32_t peer_id, const mac_addr& mac) noexcept;
void notice(action_sink& out, note n, std::uint32_t arg = 0) noexcept;
void set_role(state& s, role to, std::uint64_t now, action_sink& out) noexcept;
const peer* watched_primary(const state& s) noexcept;
rank my_rank(const state& s) noexcept;
bool outranks(const peer& p, const state& s) noexcept;
bool alive(const state& s, const peer& p, std::uint64_t now) noexcept;
const peer* live_monitor(const state& s, std::uint64_t now) noexcept;
peer* find_peer_mut(state& s, std::uint32_t id) noexcept;

// ---- fsm_admit.cpp
// What admission learnt about the sender, for the rules.
struct admitted {
    peer* p{nullptr};
    bool reappeared{false};      // new, down, or silent past peer_timeout before this frame
    bool left_primary{false};    // it held the primary address in its previous frame, not now
};
// Runs every check; on a drop counts it and returns false.
bool admit(state& s, const wire::frame& f, std::uint64_t now, action_sink& out, admitted& a) noexcept;

// ---- fsm_discovery.cpp
void start_discovery(state& s, std::uint64_t now) noexcept;
void tick_discovery_roles(state& s, std::uint64_t now, action_sink& out) noexcept;
void discovery_evidence(state& s, const wire::frame& f, const peer* pr, std::uint64_t now) noexcept;
void discovery_arp(state& s, const wire::arp_msg& a, std::uint64_t now) noexcept;
bool better_standby_exists(const state& s, std::uint64_t now) noexcept;

// ---- fsm_watch.cpp
enum class takeover_cause : std::uint8_t { failure, release, switchover, fenced };
void take_over(state& s, std::uint64_t now, action_sink& out, takeover_cause why) noexcept;
void step_down(state& s, std::uint64_t now, action_sink& out, role to) noexcept;
void tick_monitor(state& s, const event& ev, std::uint64_t now, action_sink& out) noexcept;
void tick_primary(state& s, std::uint64_t now, action_sink& out) noexcept;
void tick_fenced(state& s, std::uint64_t now, action_sink& out) noexcept;
void watch_frame(state& s, const wire::frame& f, const admitted& a, std::uint64_t now, action_sink& out) noexcept;
void on_engine_down(state& s, const wire::frame& f, peer* pr, std::uint64_t now, action_sink& out) noexcept;
void on_fence_done(state& s, bool ok, std::uint64_t now, action_sink& out) noexcept;
void on_arp(state& s, const wire::frame& f, std::uint64_t now, action_sink& out) noexcept;
void on_icmp(state& s, const wire::frame& f, std::uint64_t now, action_sink& out) noexcept;
void on_nd(state& s, const wire::frame& f, std::uint64_t now, action_sink& out) noexcept;
void on_icmp6(state& s, const wire::frame& f, action_sink& out) noexcept;
void discovery_nd(state& s, const wire::frame& f, std::uint64_t now) noexcept;
bool is_watched_primary(const state& s, const wire::frame& f, const peer* pr) noexcept;

// ---- fsm_switchover.cpp
void switchover_command(state& s, std::uint64_t now, action_sink& out) noexcept;
void begin_switchover(state& s, std::uint64_t now, action_sink& out) noexcept; // monitor side
void tick_switchover(state& s, std::uint64_t now, action_sink& out) noexcept;
void switchover_frame(state& s, const wire::frame& f, const peer* pr, std::uint64_t now, action_sink& out) noexcept;
void drain_done(state& s, std::uint32_t inflight) noexcept;

// ---- fsm_faults.cpp
void fault_command(state& s, fault_kind kind, std::uint64_t now, action_sink& out) noexcept;
void fault_cleared(state& s, std::uint64_t now, action_sink& out) noexcept;
void on_link(state& s, bool up, std::uint64_t now, action_sink& out) noexcept;
void enter_fault(state& s, std::uint64_t now, action_sink& out) noexcept;
void tick_faults(state& s, std::uint64_t now, action_sink& out) noexcept;
void fault_frame(state& s, const wire::frame& f, const peer* pr, std::uint64_t now, action_sink& out) noexcept;
void id_collision(state& s, const wire::frame& f, std::uint64_t now, action_sink& out) noexcept;

} // namespace heartwire::fsm::detail
