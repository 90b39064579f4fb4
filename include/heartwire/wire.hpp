#pragma once
// Wire codec: Ethernet, ARP (RFC 826 / 5227), IPv4 + ICMP echo, and the heartwire frame.
// Pure functions over byte spans: explicit big-endian loads and stores, every read bounds
// checked first, no reinterpret_cast onto packed structs. Decoding never allocates.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "heartwire/net_types.hpp"

namespace heartwire::wire {

inline constexpr std::uint16_t ethertype_ipv4 = 0x0800;
inline constexpr std::uint16_t ethertype_arp = 0x0806;
inline constexpr std::uint16_t ethertype_vlan = 0x8100;
inline constexpr std::uint16_t ethertype_heartwire = 0x88B5; // IEEE 802 local experimental 1

// ---------------------------------------------------------------- Ethernet II
//  0                   1                   2                   3
//  +-----------------------------------------------+
//  |            destination MAC (6)                |
//  |            source MAC (6)                     |
//  |  EtherType (2)  |
struct eth_header {
    mac_addr dst;
    mac_addr src;
    std::uint16_t ethertype{};
    static constexpr std::size_t size() noexcept { return 14; }
};

// ---------------------------------------------------------------- ARP (RFC 826), Ethernet/IPv4 only
//  htype=1 (2) | ptype=0x0800 (2) | hlen=6 (1) | plen=4 (1) | oper (2)
//  sha (6) | spa (4) | tha (6) | tpa (4)
inline constexpr std::uint16_t arp_op_request = 1;
inline constexpr std::uint16_t arp_op_reply = 2;

struct arp_msg {
    std::uint16_t op{arp_op_request};
    mac_addr sha;
    ipv4_addr spa;
    mac_addr tha;
    ipv4_addr tpa;
    static constexpr std::size_t size() noexcept { return 28; }

    // RFC 5227 probe: sender protocol address all zero.
    constexpr bool is_probe() const noexcept { return op == arp_op_request && spa.is_zero(); }
    // Gratuitous ARP (announcement): sender and target protocol address equal.
    constexpr bool is_gratuitous() const noexcept { return !spa.is_zero() && spa == tpa; }
};

// ---------------------------------------------------------------- IPv4 + ICMP echo (RFC 791 / 792)
// Options are accepted and skipped; fragments are dropped (an echo never needs them here).
inline constexpr std::uint8_t ip_proto_icmp = 1;
inline constexpr std::uint8_t icmp_echo_reply = 0;
inline constexpr std::uint8_t icmp_echo_request = 8;
inline constexpr std::size_t ipv4_min_header_size = 20;
inline constexpr std::size_t icmp_header_size = 8;

struct icmp_echo {
    bool is_reply{false};
    ipv4_addr src;
    ipv4_addr dst;
    std::uint8_t ttl{64};
    std::uint16_t id{};
    std::uint16_t seq{};
    std::span<const std::byte> payload; // points into the decoded buffer
};

// ---------------------------------------------------------------- heartwire frame (EtherType 0x88B5)
//  0               1               2               3
//  +---------------+---------------+---------------+---------------+
//  |   version=2   |     type      |     role      |   priority    |  0
//  |                          node id                              |  4
//  |                          epoch (64)                           |  8
//  |                          seq (64)                             | 16  per frame, per incarnation
//  |                          ack seq (64)                         | 24
//  |                          timestamp ns (64)                    | 32
//  |                          timestamp echo ns (64)               | 40
//  |            flags              |        payload length         | 48
//  |                          group id                             | 52
//  |                          incarnation (64)                     | 56  sender's boot, realtime ns
//  |    key id     |   auth alg    |          reserved (0)         | 64
//  |                          reserved (0)                         | 68
//  |                          payload ...                          | 72
//  |                          tag (16), when auth alg != 0         | 72 + payload length
// The tag is a keyed MAC over every byte before it, the Ethernet header included (the
// source MAC is bound to the frame). Group id, incarnation and seq are what receivers check
// before the state machine sees the frame (issue 8): another group, an old incarnation, a
// replayed seq or a bad tag is dropped and counted.
inline constexpr std::uint8_t heartwire_version = 2;
inline constexpr std::size_t hb_header_size = 72;
inline constexpr std::size_t hb_max_payload = 1024;
inline constexpr std::size_t hb_tag_size = 16;

// X-macro: one list makes the enum, its names, and per-type counters.
#define HEARTWIRE_HB_TYPES(X)                                                                     \
    X(probe, 1)          /* monitor -> primary liveness probe (also primary -> monitor) */         \
    X(ack, 2)            /* answer to a probe, echoes seq and timestamp */                        \
    X(announce, 3)       /* periodic role/epoch advertisement to the group */                     \
    X(stay_down, 4)      /* new primary -> old primary: hold no address (seed 003 claim 2) */     \
    X(takeover_req, 5)   /* operator switchover, monitor side (seed 003 claim 1) */               \
    X(shutdown_req, 6)   /* monitor -> primary: drain and hand over */                            \
    X(drained, 7)        /* primary -> monitor: in-flight work done, payload = compilation */     \
    X(fault_report, 8)   /* primary -> monitor: fault type in payload (seed 003 claim 8) */       \
    X(fault_answer, 9)   /* monitor -> primary: can take over? flags carry the answer */          \
    X(release, 10)       /* a node gives up the address it holds (clean shutdown) */              \
    X(engine_down, 11)   /* sent by the node's guard when its engine died (seed 003 claims 14-15) */

enum class hb_type : std::uint8_t {
#define HW_X(name, val) name = val,
    HEARTWIRE_HB_TYPES(HW_X)
#undef HW_X
};
std::string_view to_string(hb_type t) noexcept;
bool is_valid_hb_type(std::uint8_t v) noexcept;

// Roles on the wire mirror the state machine's states (heartwire/roles.hpp).
inline constexpr std::uint8_t max_wire_role = 8;

// flags
inline constexpr std::uint16_t hb_flag_holds_primary = 1u << 0;
inline constexpr std::uint16_t hb_flag_holds_monitor = 1u << 1;
inline constexpr std::uint16_t hb_flag_fault = 1u << 2;
inline constexpr std::uint16_t hb_flag_can_take_over = 1u << 3;
inline constexpr std::uint16_t hb_flag_in_sync = 1u << 4;
inline constexpr std::uint16_t hb_flag_monitor_missing = 1u << 5; // primary: my monitor went silent

struct hb_msg {
    hb_type type{hb_type::probe};
    std::uint8_t role{};
    std::uint8_t priority{};
    std::uint32_t node_id{};
    std::uint64_t epoch{};
    std::uint64_t seq{};
    std::uint64_t ack_seq{};
    std::uint64_t ts_ns{};
    std::uint64_t ts_echo_ns{};
    std::uint16_t flags{};
    std::uint32_t group{};
    std::uint64_t incarnation{};
    std::uint8_t key_id{};
    std::uint8_t auth_alg{};            // 0: no tag (unauthenticated mode)
    std::span<const std::byte> payload; // <= hb_max_payload, points into the decoded buffer
    // Decoded frames only: the bytes the tag covers (Ethernet header to payload end) and
    // the tag itself (empty when auth_alg == 0). Point into the decoded buffer.
    std::span<const std::byte> covered;
    std::span<const std::byte> tag;
};

// ---------------------------------------------------------------- decode
#define HEARTWIRE_DECODE_ERRORS(X)                                                                \
    X(eth_truncated)                                                                              \
    X(vlan_unsupported)                                                                           \
    X(unknown_ethertype)                                                                          \
    X(arp_truncated)                                                                              \
    X(arp_bad_format)      /* htype/ptype/hlen/plen not Ethernet/IPv4 */                          \
    X(arp_bad_op)                                                                                 \
    X(ipv4_truncated)                                                                             \
    X(ipv4_bad_version)                                                                           \
    X(ipv4_bad_header_length)                                                                     \
    X(ipv4_bad_total_length)                                                                      \
    X(ipv4_bad_checksum)                                                                          \
    X(ipv4_fragment)                                                                              \
    X(ipv4_not_icmp)                                                                              \
    X(icmp_truncated)                                                                             \
    X(icmp_bad_checksum)                                                                          \
    X(icmp_not_echo)                                                                              \
    X(hb_truncated)                                                                               \
    X(hb_bad_version)                                                                             \
    X(hb_bad_type)                                                                                \
    X(hb_bad_role)                                                                                \
    X(hb_bad_payload_length)                                                                      \
    X(hb_missing_tag)      /* auth alg set but the frame ends before the 16-byte tag */

enum class decode_error : std::uint8_t {
    none = 0,
#define HW_X(name) name,
    HEARTWIRE_DECODE_ERRORS(HW_X)
#undef HW_X
        count_
};
inline constexpr std::size_t decode_error_count = static_cast<std::size_t>(decode_error::count_);
std::string_view to_string(decode_error e) noexcept;

enum class frame_kind : std::uint8_t { invalid, arp, icmp_echo, heartbeat };

// A decoded frame. Exactly one of arp / echo / hb is meaningful, chosen by kind.
// Spans inside point into the input buffer, which must outlive the frame.
struct frame {
    frame_kind kind{frame_kind::invalid};
    decode_error error{decode_error::none};
    eth_header eth;
    arp_msg arp;
    icmp_echo echo;
    hb_msg hb;
    // Set by the receiver after it checked the tag (the codec never sets it): the state
    // machine believes control frames only from authenticated peers, unless the node runs
    // unauthenticated by explicit configuration.
    bool authenticated{false};

    constexpr bool ok() const noexcept { return kind != frame_kind::invalid; }
};

// Decodes one Ethernet frame. On failure kind == invalid and error names the first failed check.
frame decode(std::span<const std::byte> in) noexcept;

// ---------------------------------------------------------------- encode
// Each returns the number of bytes written, or 0 when `out` is too small (nothing is
// partially valid then). Frames shorter than the Ethernet minimum (60 bytes without FCS)
// are zero padded to 60.
inline constexpr std::size_t eth_min_frame = 60;

std::size_t encode_arp(const mac_addr& dst, const mac_addr& src, const arp_msg& m,
                       std::span<std::byte> out) noexcept;
// ARP announcement (gratuitous ARP request, RFC 5227 section 2.3), to broadcast.
std::size_t encode_garp(const mac_addr& src, ipv4_addr addr, std::span<std::byte> out) noexcept;
// RFC 5227 probe for `addr`: spa = 0, tha = 0, to broadcast.
std::size_t encode_arp_probe(const mac_addr& src, ipv4_addr addr, std::span<std::byte> out) noexcept;
// Echo request or reply with IPv4 and ICMP checksums filled in (DF set, id 0).
std::size_t encode_icmp_echo(const mac_addr& dst, const mac_addr& src, const icmp_echo& m,
                             std::span<std::byte> out) noexcept;
// With m.auth_alg != 0 the frame ends in hb_tag_size zero bytes for the sender to fill
// (sign the first n - hb_tag_size bytes, write the tag in the last hb_tag_size).
std::size_t encode_heartbeat(const mac_addr& dst, const mac_addr& src, const hb_msg& m,
                             std::span<std::byte> out) noexcept;

// RFC 1071 Internet checksum over `data` (returns the value to store, host order).
std::uint16_t inet_checksum(std::span<const std::byte> data) noexcept;

// ---------------------------------------------------------------- big-endian helpers
inline std::uint16_t load_be16(const std::byte* p) noexcept {
    return static_cast<std::uint16_t>((std::to_integer<unsigned>(p[0]) << 8) | std::to_integer<unsigned>(p[1]));
}
inline std::uint32_t load_be32(const std::byte* p) noexcept {
    return (std::uint32_t{load_be16(p)} << 16) | load_be16(p + 2);
}
inline std::uint64_t load_be64(const std::byte* p) noexcept {
    return (std::uint64_t{load_be32(p)} << 32) | load_be32(p + 4);
}
inline void store_be16(std::byte* p, std::uint16_t v) noexcept {
    p[0] = std::byte(v >> 8);
    p[1] = std::byte(v & 0xff);
}
inline void store_be32(std::byte* p, std::uint32_t v) noexcept {
    store_be16(p, static_cast<std::uint16_t>(v >> 16));
    store_be16(p + 2, static_cast<std::uint16_t>(v));
}
inline void store_be64(std::byte* p, std::uint64_t v) noexcept {
    store_be32(p, static_cast<std::uint32_t>(v >> 32));
    store_be32(p + 4, static_cast<std::uint32_t>(v));
}

} // namespace heartwire::wire
