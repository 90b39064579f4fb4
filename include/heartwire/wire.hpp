#pragma once
// Wire codec: Ethernet, ARP (RFC 826 / 5227), IPv4 + ICMP echo, IPv6 + ICMPv6 echo and
// neighbour discovery (RFC 8200 / 4443 / 4861 / 4862), and the heartwire frame.
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
inline constexpr std::uint16_t ethertype_ipv6 = 0x86DD;

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

// ---------------------------------------------------------------- IPv6 (RFC 8200)
//  0               1               2               3
//  +-------+-------+---------------+---------------+---------------+
//  |version| traffic class |              flow label               |  0
//  |        payload length         |  next header  |   hop limit   |  4
//  |                   source address (16)                         |  8
//  |                   destination address (16)                    | 24
// Only ICMPv6 directly after the fixed header is decoded: any extension header (hop-by-hop
// MLD reports, fragments) is a counted drop, since neither ND nor an echo needs one here.
inline constexpr std::size_t ipv6_header_size = 40;
inline constexpr std::uint8_t ip_proto_icmpv6 = 58;

// ---------------------------------------------------------------- ICMPv6 (RFC 4443)
//  type (1) | code (1) | checksum (2) | message body ...
// The checksum covers the RFC 8200 8.1 pseudo-header (source, destination, upper-layer
// length as 32 bits, three zero bytes, next header 58) and the whole ICMPv6 message.
inline constexpr std::uint8_t icmp6_echo_request = 128;
inline constexpr std::uint8_t icmp6_echo_reply = 129;
inline constexpr std::uint8_t icmp6_neighbor_solicit = 135;
inline constexpr std::uint8_t icmp6_neighbor_advert = 136;
inline constexpr std::size_t icmp6_header_size = 8; // echo: type, code, checksum, id, seq

// Echo request / reply (RFC 4443 4.1, 4.2): type | code 0 | checksum | id (2) | seq (2) | data
struct icmp6_echo {
    bool is_reply{false};
    ipv6_addr src;
    ipv6_addr dst;
    std::uint8_t hop_limit{64};
    std::uint16_t id{};
    std::uint16_t seq{};
    std::span<const std::byte> payload; // points into the decoded buffer
};

// ---------------------------------------------------------------- neighbour discovery (RFC 4861 4.3, 4.4)
//  0               1               2               3
//  +---------------+---------------+---------------+---------------+
//  | type 135/136  |    code 0     |           checksum            |  0
//  |R|S|O|           reserved (NS: all 32 bits reserved)           |  4
//  |                   target address (16)                         |  8
//  |   opt type    | opt len (x8)  |  link-layer address (6) ...   | 24
// Options: source link-layer address (1) in an NS, target link-layer address (2) in an NA,
// 8 bytes each on Ethernet; others are skipped as RFC 4861 4.6 requires.
inline constexpr std::size_t nd_min_size = 24; // ICMPv6 length without options (7.1.1, 7.1.2)
inline constexpr std::uint8_t nd_hop_limit = 255; // sent as 255, received only as 255 (7.1)
inline constexpr std::uint8_t na_flag_router = 0x80;    // in the byte at offset 4
inline constexpr std::uint8_t na_flag_solicited = 0x40;
inline constexpr std::uint8_t na_flag_override = 0x20;
inline constexpr std::uint8_t nd_opt_source_lladdr = 1;
inline constexpr std::uint8_t nd_opt_target_lladdr = 2;
inline constexpr std::size_t nd_opt_lladdr_size = 8; // type, length 1, MAC

struct nd_msg {
    bool is_advert{false}; // NA (136), else NS (135)
    ipv6_addr src;         // NS from :: is duplicate address detection (RFC 4862 5.4.2)
    ipv6_addr dst;
    ipv6_addr target;
    bool router{false};    // NA flags; false in an NS
    bool solicited{false};
    bool override_{false};
    mac_addr lladdr;       // NS: source link-layer option, NA: target link-layer option
    bool has_lladdr{false};
    std::uint8_t hop_limit{nd_hop_limit};

    constexpr bool is_dad() const noexcept { return !is_advert && src.is_zero(); }
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

// Many groups (issue 9): what a node's groups send one peer in one turn (probes, acks,
// announces: the periodic traffic, which grows with the groups) goes in frames of type
// bundle. A bundle's payload is 1 to hb_bundle_max_entries entries back to back, each a
// heartbeat header in the layout above (the bundle's node id and incarnation, key id and
// algorithm 0: the bundle's tag covers them all) followed by its own payload (an
// announce's accepted-keys TLV, at most hb_bundle_entry_max_payload bytes; none for a
// probe or an ack). The receiver hands each entry to its group's machine as if it were a
// frame of its own (its seq checked against that group's replay window). 1,000 groups
// cost ~53 frames a turn each way instead of 1,000.
inline constexpr std::size_t hb_bundle_max_entries = 19;
inline constexpr std::size_t hb_max_bundle_payload = hb_bundle_max_entries * hb_header_size;
inline constexpr std::size_t hb_bundle_entry_max_payload = 64;

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
    X(engine_down, 11)   /* sent by the node's guard when its engine died (seed 003 claims 14-15) */ \
    X(bundle, 12)        /* many groups: one turn's probes, acks and announces to one peer */       \
    X(state, 13)         /* replicated store (issue 10): payload = a replication frame, ack_seq = the store's index */

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
// Announces: the sender hears a live primary (another node's). A node in discovery that
// hears it does not claim the primary address even when its probes got no answer (a lost
// answer must not displace a live primary at the epoch the standbys taught it).
inline constexpr std::uint16_t hb_flag_primary_alive = 1u << 6;

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
    X(hb_missing_tag)      /* auth alg set but the frame ends before the 16-byte tag */          \
    X(hb_bad_bundle)       /* not 1-19 whole entries, or one that is not the sender's to bundle */ \
    X(ipv6_truncated)                                                                             \
    X(ipv6_bad_version)                                                                           \
    X(ipv6_bad_payload_length) /* payload length past the end of the frame */                     \
    X(ipv6_not_icmp6)      /* next header not 58: another protocol or an extension header */      \
    X(ipv6_multicast_source) /* RFC 4291 2.7: never a source; answering one would amplify */      \
    X(icmp6_truncated)     /* ICMPv6 message under 8 bytes */                                     \
    X(icmp6_bad_checksum)                                                                         \
    X(icmp6_unsupported)   /* RS, RA, redirect, MLD, errors; echo with a non-zero code */         \
    X(nd_bad_hop_limit)    /* not 255: the message crossed a router (RFC 4861 7.1.1, 7.1.2) */    \
    X(nd_bad_code)                                                                                \
    X(nd_truncated)        /* NS or NA under 24 bytes */                                          \
    X(nd_bad_target)       /* multicast target address */                                         \
    X(nd_bad_option)       /* zero length, past the end, or a link-layer option not 8 bytes */    \
    X(nd_dad_has_lladdr)   /* NS from :: carrying a source link-layer option */                   \
    X(nd_dad_bad_destination) /* NS from :: not sent to a solicited-node group */                 \
    X(nd_bad_flags)        /* NA to a multicast destination with the solicited flag set */

enum class decode_error : std::uint8_t {
    none = 0,
#define HW_X(name) name,
    HEARTWIRE_DECODE_ERRORS(HW_X)
#undef HW_X
        count_
};
inline constexpr std::size_t decode_error_count = static_cast<std::size_t>(decode_error::count_);
std::string_view to_string(decode_error e) noexcept;

// Append only: the values are counter indices.
enum class frame_kind : std::uint8_t { invalid, arp, icmp_echo, heartbeat, nd, icmp6_echo };

// A decoded frame. Exactly one of arp / echo / hb / nd / echo6 is meaningful, chosen by kind.
// Spans inside point into the input buffer, which must outlive the frame.
struct frame {
    frame_kind kind{frame_kind::invalid};
    decode_error error{decode_error::none};
    eth_header eth;
    arp_msg arp;
    icmp_echo echo;
    hb_msg hb;
    nd_msg nd;
    icmp6_echo echo6;
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

// A heartbeat that may ride in a bundle: a probe or ack without payload, an announce with
// at most hb_bundle_entry_max_payload bytes of it.
constexpr bool bundlable(const hb_msg& m) noexcept {
    return m.type == hb_type::announce ? m.payload.size() <= hb_bundle_entry_max_payload
                                       : m.payload.empty() && (m.type == hb_type::probe || m.type == hb_type::ack);
}
// The bytes an entry takes in a bundle's payload.
constexpr std::size_t bundle_entry_size(const hb_msg& m) noexcept { return hb_header_size + m.payload.size(); }
// A bundle to `dst` of `entries` (each bundlable, 1 to hb_bundle_max_entries, their sizes
// within hb_max_bundle_payload; their node id, incarnation, key id and algorithm are taken
// from `outer`, whose type, seq and payload are ignored). Tagged like encode_heartbeat when
// outer.auth_alg != 0. 0 when an entry cannot ride, they do not fit, or `out` is too small.
std::size_t encode_bundle(const mac_addr& dst, const mac_addr& src, const hb_msg& outer, std::span<const hb_msg> entries,
                          std::span<std::byte> out) noexcept;
// Walks a decoded bundle (decode checked every entry): the entry at byte `off` of its
// payload into `out` (key id, algorithm, cover and tag the bundle's; its payload points
// into the bundle's), and the offset of the next (b.payload.size() after the last):
//   for (std::size_t off = 0; off < b.payload.size();) off = next_bundle_entry(b, off, e);
std::size_t next_bundle_entry(const hb_msg& b, std::size_t off, hb_msg& out) noexcept;

// Neighbour advertisement with every field from `m` (type 136 whatever m.is_advert says),
// the target link-layer option when m.has_lladdr. Refuses (0) what RFC 4861 7.1.2 makes a
// receiver drop: hop limit not 255, a multicast target or source, S set towards a
// multicast destination.
std::size_t encode_na(const mac_addr& dst, const mac_addr& src, const nd_msg& m, std::span<std::byte> out) noexcept;
// RFC 4861 7.2.6 unsolicited advertisement on claiming `addr`: from addr to ff02::1
// (33:33:00:00:00:01), target addr, O=1 S=0 R=0, target link-layer option `src`, so every
// neighbour with an entry for addr moves it to this MAC.
std::size_t encode_unsolicited_na(const mac_addr& src, const ipv6_addr& addr, std::span<std::byte> out) noexcept;
// RFC 4861 7.2.4 answer to the solicitation `ns` (a decoded NS frame) for a target we hold:
// from the target, O=1, target link-layer option `src`; unicast with S=1 to the NS's
// source (to its source link-layer option, else its Ethernet source), or, to a DAD NS
// (source ::), to ff02::1 with S=0. Reads only value fields of `ns`, so `out` may be the
// buffer `ns` was decoded from. 0 when `ns` is not an NS.
std::size_t encode_na_answer(const frame& ns, const mac_addr& src, std::span<std::byte> out) noexcept;
// Neighbour solicitation with every field from `m` (type 135), the source link-layer option
// when m.has_lladdr. Refuses (0) what RFC 4861 7.1.1 makes a receiver drop: hop limit not
// 255, a multicast target or source, a DAD NS (source ::) with a link-layer option or not
// to a solicited-node group. The first form sends to m.dst's multicast MAC (0 when m.dst is
// unicast); a unicast NS (neighbour unreachability probe) names its MAC with the second.
std::size_t encode_ns(const mac_addr& src, const nd_msg& m, std::span<std::byte> out) noexcept;
std::size_t encode_ns(const mac_addr& dst, const mac_addr& src, const nd_msg& m, std::span<std::byte> out) noexcept;
// RFC 4862 5.4.2 duplicate address detection probe for `target`: from ::, to its
// solicited-node group (33:33:ff + low 24 bits), no link-layer option.
std::size_t encode_dad_ns(const mac_addr& src, const ipv6_addr& target, std::span<std::byte> out) noexcept;
// Echo request or reply with the ICMPv6 checksum filled in (traffic class and flow label 0).
// Refuses a multicast source. The payload may point into `out` (a reply built in place).
std::size_t encode_icmp6_echo(const mac_addr& dst, const mac_addr& src, const icmp6_echo& m,
                              std::span<std::byte> out) noexcept;

// RFC 4862 5.4.3 / 5.4.4: while `tentative` is being checked, does `f` say another node
// uses it? An NA whose target it is, or another node's DAD NS for it (ours come back on a
// tap or a looped multicast: they carry our Ethernet source `self`, and are not a conflict).
bool is_dad_conflict(const frame& f, const ipv6_addr& tentative, const mac_addr& self) noexcept;

// RFC 1071 Internet checksum over `data` (returns the value to store, host order).
std::uint16_t inet_checksum(std::span<const std::byte> data) noexcept;
// ICMPv6 checksum (RFC 8200 8.1): over the pseudo-header and `icmp`, whose checksum field
// holds 0 when computing and the stored value when verifying (then the result is 0).
std::uint16_t icmp6_checksum(const ipv6_addr& src, const ipv6_addr& dst, std::span<const std::byte> icmp) noexcept;

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
