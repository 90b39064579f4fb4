#pragma once
// Internal to the state machine: the emitters and rules that fsm.cpp (time, commands),
// fsm_actions.cpp (claims, roles, peers) and fsm_rx.cpp (received frames) share.

#include "heartwire/fsm.hpp"

namespace heartwire::fsm::detail {

constexpr std::size_t idx(address_id a) noexcept { return static_cast<std::size_t>(a); }

std::uint16_t my_flags(const state& s) noexcept;
wire::hb_msg make_hb(state& s, wire::hb_type t, std::uint64_t now) noexcept;
void send_hb(action_sink& out, const mac_addr& dst, const wire::hb_msg& m) noexcept;
void announce(state& s, std::uint64_t now, action_sink& out) noexcept;
void emit_addr(action_sink& out, action_kind k, address_id which, ipv4_addr addr) noexcept;
void send_garp(state& s, address_id which, std::uint64_t now, action_sink& out) noexcept;
void claim(state& s, address_id which, std::uint64_t now, action_sink& out) noexcept;
void release(state& s, address_id which, action_sink& out) noexcept;
void run_hook(action_sink& out, hook_kind h, std::uint32_t peer_id, const mac_addr& mac) noexcept;

void start_discovery(state& s, std::uint64_t now) noexcept;
void set_role(state& s, role to, std::uint64_t now, action_sink& out) noexcept;
const peer* watched_primary(const state& s) noexcept;
rank my_rank(const state& s) noexcept;
bool outranks(const peer& p, const state& s) noexcept;

// Why the monitor claims the primary address.
enum class takeover_cause : std::uint8_t { failure, release, switchover, fenced };
void take_over(state& s, std::uint64_t now, action_sink& out, takeover_cause why) noexcept;
void step_down(state& s, std::uint64_t now, action_sink& out, role to) noexcept;

// Switchover and faults (seed 003).
void notice(action_sink& out, note n, std::uint32_t arg = 0) noexcept;
void begin_switchover(state& s, std::uint64_t now, action_sink& out) noexcept; // monitor side
void begin_drain(state& s, const mac_addr& to, std::uint32_t to_id, std::uint64_t now, action_sink& out) noexcept;
void send_drained(state& s, std::uint64_t now, action_sink& out) noexcept;
void enter_fault(state& s, std::uint64_t now, action_sink& out) noexcept;
void report_fault(state& s, std::uint64_t now, action_sink& out) noexcept;

peer* upsert_peer(state& s, const wire::frame& f, std::uint64_t now) noexcept;
bool alive(const state& s, const peer& p, std::uint64_t now) noexcept;
bool better_standby_exists(const state& s, std::uint64_t now) noexcept;
const peer* live_monitor(const state& s, std::uint64_t now) noexcept;

void on_heartbeat(state& s, const wire::frame& f, std::uint64_t now, action_sink& out) noexcept;
void on_arp(state& s, const wire::frame& f, std::uint64_t now, action_sink& out) noexcept;
void on_icmp(state& s, const wire::frame& f, std::uint64_t now, action_sink& out) noexcept;

} // namespace heartwire::fsm::detail
