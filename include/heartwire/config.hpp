#pragma once
// The configuration model: a plain struct, parsed from TOML text (toml++), validated by a
// pure function that returns one error per failed check, naming the key and the value.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "heartwire/net_types.hpp"

namespace heartwire::cfg {

// Named defaults. Every key, default and range is documented in docs/configuration.md.
inline constexpr std::uint8_t default_priority = 100;
inline constexpr std::uint32_t default_interval_us = 10;
inline constexpr std::uint32_t default_miss = 3;
inline constexpr std::uint32_t default_garp_repeat = 3;
inline constexpr std::uint32_t default_garp_interval_us = 100;
inline constexpr std::uint32_t default_garp_refresh_ms = 1000;
inline constexpr std::uint32_t default_defend_interval_ms = 10;
inline constexpr std::uint32_t default_group = 1;
inline constexpr std::uint32_t default_discovery_probes = 3;
inline constexpr std::uint32_t default_discovery_interval_ms = 10;
inline constexpr std::uint32_t default_discovery_wait_ms = 20;
inline constexpr std::uint32_t default_announce_interval_ms = 10;
inline constexpr std::uint32_t default_peer_timeout_ms = 100;
inline constexpr std::uint32_t default_stay_down_interval_ms = 10;
inline constexpr std::uint32_t default_preempt_delay_ms = 0;
inline constexpr std::uint32_t default_drain_timeout_ms = 5000;
inline constexpr std::uint32_t default_flap_hold_ms = 30000;
inline constexpr std::uint32_t default_burst = 32;
inline constexpr std::uint32_t default_rx_desc = 1024;
inline constexpr std::uint32_t default_tx_desc = 1024;
inline constexpr std::uint32_t default_mbufs = 4095;
inline constexpr std::uint32_t default_idle_max_sleep_us = 50;
inline constexpr std::uint32_t default_hook_timeout_ms = 10000;
// The poll lcore's real-time policy and its duty cycle: FIFO at priority 10, giving the
// core away 20 us in every 200 us. Measured on a 2-core VM (DESIGN.md, bench/README.md):
// FIFO without a yield is stopped ~50 ms a second by the RT throttle; SCHED_OTHER loses
// its core for milliseconds whenever anything else is runnable; FIFO with this yield kept
// loop gaps in the hundreds of microseconds.
inline constexpr std::uint32_t default_rt_priority = 10;
inline constexpr std::uint32_t default_yield_us = 20;
inline constexpr std::uint32_t default_yield_period_us = 200;
inline constexpr std::uint32_t default_health_interval_ms = 1000;
inline constexpr std::uint32_t default_health_rise = 2;
inline constexpr std::uint32_t default_health_fall = 2;

enum class address_mode { exclusive, shared };
enum class probe_kind { heartbeat, icmp, both };
enum class lcore_mode { run_to_completion, pipelined };
enum class idle_policy { busy, adaptive };
enum class sched_policy { fifo, other };
enum class auth_mode { keyed, none };

struct node_cfg {
    std::string name;                       // [node] name (required)
    std::uint32_t id{};                     // [node] id, 1..2^32-1 (required, unique per cluster)
    std::uint8_t priority{default_priority}; // [node] priority 1..255, higher wins ties
    // [node] group 1..2^32-1: like keepalived's VRID. Frames of another group are counted
    // and ignored, so several clusters share one segment.
    std::uint32_t group{default_group};
    bool operator==(const node_cfg&) const = default;
};

struct port_cfg {
    std::vector<std::string> eal_args;   // [port] eal = ["-l", "0", "--no-huge", ...]
    std::string device;                  // [port] device = "net_af_xdp0,iface=eth0" (vdev) or a PCI address
    address_mode mode{address_mode::exclusive}; // [port] mode = "exclusive" | "shared"
    // [port] kernel_interface: in shared mode, the kernel's interface on the DPDK port's own
    // wire (af_xdp/af_packet: the iface= netdev; a bifurcated NIC: its netdev), and the
    // default of every group's `interface`. Required in shared mode unless every group
    // names its interface.
    std::string kernel_interface;
    // [port] notice_interface: the kernel interface the guard sends the engine-down notice
    // on. "" = the vdev's iface= (af_xdp, af_packet); a PCI port or memif needs it set, or
    // the notice is off. "none" turns it off.
    std::string notice_interface;
    std::uint32_t rx_desc{default_rx_desc};
    std::uint32_t tx_desc{default_tx_desc};
    std::uint32_t mbufs{default_mbufs};
    // [port] vlan: 802.1Q VLAN id of every frame heartwire sends and receives (heartbeats,
    // ARP, GARP, ICMP), 1..4094; 0 = untagged. Frames of another VLAN are counted and dropped.
    std::uint32_t vlan{0};
    // [port] xdp_prog: the XDP program the af_xdp PMD loads. "" = heartwire's own steering
    // program in shared mode (only heartwire's frames to DPDK, the rest to the kernel), the
    // PMD's default in exclusive mode; "none" = the PMD's default; or a path to an object.
    std::string xdp_prog;
    // [port] flow_isolate: rte_flow isolated mode (a bifurcated NIC, mlx5): the port
    // receives only what heartwire's rules steer to its queue (EtherType 0x88B5, in each of
    // the groups' VLANs); everything else stays with the kernel. Shared mode only.
    bool flow_isolate{false};
    bool operator==(const port_cfg&) const = default;
};

// A role's addresses: the first, IPv4, is the one the seeds' discovery probes by ARP; the
// others (IPv4 and IPv6) move with it: claimed, announced (GARP / unsolicited NA), answered
// and released together. A role of IPv6 addresses only leaves primary/monitor 0.0.0.0 and
// is discovered by DAD (RFC 4862) instead.
inline constexpr std::size_t max_role_addresses = 16;

struct addresses_cfg {
    // [addresses] primary = "169.254.10.100/24" or ["169.254.10.100/24", "fd00:6877::100/64", ...]
    // (required; the first entry IPv4)
    ipv4_prefix primary;
    // [addresses] monitor = "169.254.10.101/24" or a list as for primary (required, != primary)
    ipv4_prefix monitor;
    std::vector<ipv4_prefix> primary_more;   // further IPv4 addresses of the primary role
    std::vector<ipv6_prefix> primary6;       // its IPv6 addresses
    std::vector<ipv4_prefix> monitor_more;
    std::vector<ipv6_prefix> monitor6;
    bool operator==(const addresses_cfg&) const = default;
};

// One address group (keepalived's vrrp_instance): its own id on the wire, addresses, rank
// and VLAN; its own roles, detection and takeovers. One engine serves many.
inline constexpr std::size_t max_groups = 4096;

struct group_cfg {
    std::uint32_t id{default_group};   // [[group]] id: carried in every frame (node.group for the one group of [addresses])
    std::string name;                  // [[group]] name: for hooks and logs ("" = "group<id>"), keepalived's instance name
    addresses_cfg addresses;           // [[group]] primary, monitor (as [addresses])
    std::uint8_t priority{default_priority}; // [[group]] priority (default node.priority)
    bool preempt{false};               // [[group]] preempt (default protocol.preempt)
    std::uint32_t vlan{0};             // [[group]] vlan (default port.vlan)
    // [[group]] interface: shared mode, the kernel interface that carries the group's
    // addresses (default port.kernel_interface). Another interface than the DPDK port's own
    // (a dedicated heartbeat port) is also where the group's GARPs / NAs leave from.
    std::string interface;
    // [[group]] health: the [[health]] checks whose failure faults this group; empty = every check.
    std::vector<std::string> health;
    bool health_given{false};
    bool operator==(const group_cfg&) const = default;
};

// Every IPv4 address of a role (the role address first), and its IPv6 addresses.
std::vector<ipv4_prefix> role_v4(const addresses_cfg& a, bool primary);
const std::vector<ipv6_prefix>& role_v6(const addresses_cfg& a, bool primary);

struct detect_cfg {
    std::uint32_t interval_us{default_interval_us}; // [detect] interval_us, 1..10'000'000
    std::uint32_t miss{default_miss};               // [detect] miss, 1..1000
    probe_kind probe{probe_kind::heartbeat};        // [detect] probe = "heartbeat" | "icmp" | "both"
    // [detect] stall_threshold_us: unintended lateness of the monitor's loop beyond this is
    // its own stall (a fresh window for the primary). 0 = max(interval, 100 us).
    std::uint32_t stall_threshold_us{0};
    bool operator==(const detect_cfg&) const = default;
};

struct garp_cfg {
    std::uint32_t repeat{default_garp_repeat};           // [garp] repeat, 1..100
    std::uint32_t interval_us{default_garp_interval_us}; // [garp] interval_us, spacing in the burst
    std::uint32_t refresh_ms{default_garp_refresh_ms};   // [garp] refresh_ms, 0 = no refresh
    // [garp] defend_interval_ms: an ARP from another MAC claiming a held address is answered
    // by our GARP at once, at most once per this long per address (RFC 5227 2.4). 0 = always.
    std::uint32_t defend_interval_ms{default_defend_interval_ms};
    bool operator==(const garp_cfg&) const = default;
};

struct auth_cfg {
    // [auth] mode = "keyed" (every heartwire frame carries a keyed MAC; frames without a
    // valid one are dropped) | "none" (unauthenticated, only when written out explicitly).
    auth_mode mode{auth_mode::keyed};
    // [auth] key_file: required when keyed. An absolute path to a file of mode 0600 or
    // stricter, or "cred:NAME" for the systemd credential NAME. Re-read when it changes.
    std::string key_file;
    bool operator==(const auth_cfg&) const = default;
};

struct protocol_cfg {
    std::uint32_t discovery_probes{default_discovery_probes};           // [protocol] discovery_probes
    std::uint32_t discovery_interval_ms{default_discovery_interval_ms}; // spacing of ARP probes
    std::uint32_t discovery_wait_ms{default_discovery_wait_ms};         // wait after the last probe
    std::uint32_t announce_interval_ms{default_announce_interval_ms};   // group announce period
    std::uint32_t peer_timeout_ms{default_peer_timeout_ms};             // peer forgotten after
    std::uint32_t stay_down_interval_ms{default_stay_down_interval_ms};
    bool preempt{false};                                                // [protocol] preempt
    std::uint32_t preempt_delay_ms{default_preempt_delay_ms};
    std::uint32_t drain_timeout_ms{default_drain_timeout_ms};
    // A primary superseded while alive watches with a doubled miss count (up to x8) for this
    // long when it becomes monitor again: flap damping. 0 disables it.
    std::uint32_t flap_hold_ms{default_flap_hold_ms};
    bool require_fence{false};  // takeover waits for the fence hook to succeed
    bool operator==(const protocol_cfg&) const = default;
};

struct engine_cfg {
    lcore_mode mode{lcore_mode::run_to_completion}; // [engine] mode = "run-to-completion" | "pipelined"
    idle_policy idle{idle_policy::busy};            // [engine] idle = "busy" | "adaptive"
    std::uint32_t idle_max_sleep_us{default_idle_max_sleep_us};
    std::uint32_t burst{default_burst};             // 1..512
    sched_policy sched{sched_policy::fifo};         // [engine] sched = "fifo" | "other": the poll lcore(s) only
    std::uint32_t rt_priority{default_rt_priority}; // [engine] rt_priority 1..98 (fifo)
    std::uint32_t yield_us{default_yield_us};       // [engine] duty cycle: yield this long ...
    std::uint32_t yield_period_us{default_yield_period_us}; // ... at least once in this long (0: never)
    bool lock_memory{true};                         // [engine] lock_memory: mlockall at start
    bool idle_filler{true};                         // [engine] idle_filler: keep the poll cores from halting in yields
    bool operator==(const engine_cfg&) const = default;
};

struct hooks_cfg {
    // Each is an executable path ("" = none), run from the control thread, never the poll loop.
    std::string notify;      // called as: notify <role> <epoch> <node name> <group id>, on every role change
    // [hooks] notify_args: "heartwire" (the line above) or "keepalived": notify INSTANCE
    // <group name> MASTER|BACKUP|FAULT|STOP <priority>, as keepalived's notify scripts read it.
    std::string notify_args{"heartwire"};
    std::string on_primary;  // called on entering primary
    std::string on_monitor;
    std::string on_standby;
    std::string on_fault;
    std::string boot_peer;   // boot_peer <node id> <mac>: restart the failed primary
    std::string fence;       // fence <node id> <mac>: must exit 0 before takeover if required
    std::string drain;       // drain: stop taking new work; exit when in-flight work is done
    std::string recover;     // recover <node id>: the fault is cured; restart what it needs, then rejoin
    std::string undrain;     // undrain <peer id>: a drain was abandoned (switchover timed out): take work again
    std::uint32_t timeout_ms{default_hook_timeout_ms};
    bool operator==(const hooks_cfg&) const = default;
};

struct health_check_cfg {
    std::string name;
    std::string kind;        // "script" | "interface" | "process"
    std::string target;      // script path, interface name, or process name
    std::uint32_t interval_ms{default_health_interval_ms};
    std::uint32_t rise{default_health_rise};  // passes in a row that clear the fault
    std::uint32_t fall{default_health_fall};  // failures in a row that raise it
    bool operator==(const health_check_cfg&) const = default;
};

struct control_cfg {
    std::string socket;      // [control] socket path; parse() fills /run/heartwire/<node name>.sock when absent
    std::string log_level{"info"}; // "debug" | "info" | "warn" | "error"
    // [control] metrics: "ADDR:PORT" of the Prometheus endpoint (GET /metrics, served by
    // the control side, never the poll lcore): "127.0.0.1:9567", "[::1]:9567". "" = off.
    std::string metrics;
    bool operator==(const control_cfg&) const = default;
};

// [[state]]: a replicated state store (issue 10): keyed records the primary's applications
// write through shared memory and the monitor holds as a replica, replicated on the
// heartwire port. Every record must fit one frame: key_max + value_max <= state_entry_room.
enum class state_mode : std::uint8_t { sync, async };
inline constexpr std::size_t state_entry_room = 976; // hb_max_payload - replication headers (36 + 12)
inline constexpr std::size_t max_stores = 16;

struct state_cfg {
    std::string name;                  // [[state]] name: 1-32 of A-Z a-z 0-9 _ . - (unique)
    std::uint32_t records{65536};      // [[state]] records: live records it holds at most
    std::uint32_t key_max{64};         // [[state]] key_max: bytes, 1..255
    std::uint32_t value_max{256};      // [[state]] value_max: bytes
    // [[state]] mode = "sync" (a write completes once the monitor acknowledged it) |
    // "async" (once applied here; the lag to the monitor is bounded and reported)
    state_mode mode{state_mode::sync};
    std::uint32_t group{0};            // [[state]] group: the group id whose roles it follows (0: the first group)
    std::uint32_t queue{1024};         // [[state]] queue: writes queued from applications, a power of two
    // [[state]] path: the shared-memory file applications map; "" = /dev/shm/heartwire-<node>-<name>
    std::string path;
    // [[state]] log_mb: deltas kept for retransmission before a lagging monitor needs a snapshot
    std::uint32_t log_mb{8};
    // [[state]] join_hold_ms: a monitor whose copy is joining (a snapshot under way) or
    // repairing waits this long before it takes over a silent primary (0: at once). A stalled
    // primary answers within it; a dead one is taken over after it (an engine-down notice
    // is never held).
    std::uint32_t join_hold_ms{100};
    bool operator==(const state_cfg&) const = default;
};
// The file a store's region lives in (its `path`, else the default above).
std::string state_path(const std::string& node_name, const state_cfg& s);
std::string_view to_string(state_mode m) noexcept;

struct config {
    node_cfg node;
    port_cfg port;
    addresses_cfg addresses;
    detect_cfg detect;
    garp_cfg garp;
    auth_cfg auth;
    protocol_cfg protocol;
    engine_cfg engine;
    hooks_cfg hooks;
    std::vector<health_check_cfg> health; // [[health]]
    std::vector<state_cfg> state;         // [[state]]
    control_cfg control;
    // [[group]] blocks; without any, parse() makes the one group of [node] group, [addresses],
    // node.priority, protocol.preempt and port.vlan. Never empty in a parsed config.
    // `addresses` is always groups[0]'s.
    std::vector<group_cfg> groups;
    bool explicit_groups{false}; // the file has [[group]] blocks (errors then name group[i])
    bool operator==(const config&) const = default;
};

struct config_error {
    std::string key;     // dotted key, e.g. "detect.interval_us"
    std::string value;   // the offending value as written ("" when missing)
    std::string message; // what is wrong and what is allowed
    std::string to_string() const; // "detect.interval_us = 0: must be between 1 and 10000000"
};

struct parse_result {
    std::optional<config> cfg;            // set only when errors is empty
    std::vector<config_error> errors;
};

// A reload (SIGHUP) of a running node: which of `next`'s changes it takes without a restart
// and which it cannot. Live: hooks, health checks, the log level, [garp], the detection
// timing (detect.interval_us, miss, stall_threshold_us), [protocol], priorities and
// preempt, a group's name and health list, auth.key_file. Refused (the running value stays
// until a restart): the node's identity, [port], [engine], addresses, VLANs and interfaces,
// the groups themselves (ids, count), detect.probe, auth.mode, control.socket and metrics.
struct reload_plan {
    config result;                     // running, with every live change of next applied
    std::vector<std::string> applied;  // dotted keys taken, as errors name them ("garp.repeat", "group[1].priority")
    std::vector<std::string> refused;  // dotted keys that need a restart ("port.device", "addresses")
};
reload_plan plan_reload(const config& running, const config& next);

// Parses and validates TOML text. Unknown keys are errors (typos must not pass silently).
parse_result parse(std::string_view toml_text);
// Reads the file then parses; a missing or unreadable file is one error with key "".
parse_result load_file(const std::string& path);
// The checks on their own, one error per failed check (parse calls it).
std::vector<config_error> validate(const config& c);

std::string_view to_string(address_mode m) noexcept;
std::string_view to_string(probe_kind p) noexcept;
std::string_view to_string(lcore_mode m) noexcept;
std::string_view to_string(idle_policy p) noexcept;
std::string_view to_string(sched_policy p) noexcept;
std::string_view to_string(auth_mode m) noexcept;

} // namespace heartwire::cfg
