// Wire codec (see heartwire/wire.hpp for the layouts). Pure functions over byte spans: every
// read is preceded by a length check on the span it reads from, nothing allocates, nothing
// throws. Decode reports the first failed check so the datapath can count drops by reason.

#include "heartwire/wire.hpp"

#include <bit>
#include <cstring>

namespace heartwire::wire {

namespace {

// ---------------------------------------------------------------- field helpers

mac_addr load_mac(const std::byte* p) noexcept {
    mac_addr m;
    std::memcpy(m.b.data(), p, m.b.size());
    return m;
}

void store_mac(std::byte* p, const mac_addr& m) noexcept { std::memcpy(p, m.b.data(), m.b.size()); }

std::uint8_t load_u8(const std::byte* p) noexcept { return std::to_integer<std::uint8_t>(*p); }

ipv6_addr load_ipv6(const std::byte* p) noexcept {
    ipv6_addr a;
    std::memcpy(a.b.data(), p, a.b.size());
    return a;
}

void store_ipv6(std::byte* p, const ipv6_addr& a) noexcept { std::memcpy(p, a.b.data(), a.b.size()); }

void store_eth(std::byte* p, const mac_addr& dst, const mac_addr& src, std::uint16_t ethertype) noexcept {
    store_mac(p, dst);
    store_mac(p + 6, src);
    store_be16(p + 12, ethertype);
}

// Zero the bytes between the end of the frame and the Ethernet minimum so a reused mbuf
// never leaks its previous contents onto the wire; returns the length to transmit.
std::size_t pad_to_min(std::span<std::byte> out, std::size_t len) noexcept {
    if (len >= eth_min_frame) return len;
    std::memset(out.data() + len, 0, eth_min_frame - len);
    return eth_min_frame;
}

constexpr std::size_t wire_size(std::size_t len) noexcept { return len < eth_min_frame ? eth_min_frame : len; }

// IPv4 header layout offsets (RFC 791).
constexpr std::size_t ip_ver_ihl = 0;
constexpr std::size_t ip_tos = 1;
constexpr std::size_t ip_total_length = 2;
constexpr std::size_t ip_id = 4;
constexpr std::size_t ip_flags_frag = 6;
constexpr std::size_t ip_ttl = 8;
constexpr std::size_t ip_protocol = 9;
constexpr std::size_t ip_checksum = 10;
constexpr std::size_t ip_src = 12;
constexpr std::size_t ip_dst = 16;
constexpr std::uint16_t ip_flag_df = 0x4000;
constexpr std::uint16_t ip_flag_mf = 0x2000;
constexpr std::uint16_t ip_frag_offset_mask = 0x1fff;
constexpr std::size_t ip_max_total_length = 0xffff;

// IPv6 header offsets (RFC 8200 3).
constexpr std::size_t ip6_ver_tc_flow = 0;
constexpr std::size_t ip6_payload_length = 4;
constexpr std::size_t ip6_next_header = 6;
constexpr std::size_t ip6_hop_limit = 7;
constexpr std::size_t ip6_src = 8;
constexpr std::size_t ip6_dst = 24;
static_assert(ip6_dst + 16 == ipv6_header_size);
constexpr std::size_t ip6_max_payload_length = 0xffff;

// ICMPv6 offsets (RFC 4443 2.1, 4.1; RFC 4861 4.3, 4.4).
constexpr std::size_t icmp6_type = 0;
constexpr std::size_t icmp6_code = 1;
constexpr std::size_t icmp6_checksum_at = 2;
constexpr std::size_t icmp6_echo_id = 4;
constexpr std::size_t icmp6_echo_seq = 6;
constexpr std::size_t nd_flags = 4;
constexpr std::size_t nd_target = 8;
static_assert(nd_target + 16 == nd_min_size);
// Every IPv6 frame we send is past the Ethernet minimum; the encoders still pad, as the
// IPv4 ones do, so the rule lives in one place.
static_assert(eth_header::size() + ipv6_header_size + icmp6_header_size > eth_min_frame);

// heartwire header offsets (the diagram in wire.hpp).
constexpr std::size_t hb_off_version = 0;
constexpr std::size_t hb_off_type = 1;
constexpr std::size_t hb_off_role = 2;
constexpr std::size_t hb_off_priority = 3;
constexpr std::size_t hb_off_node_id = 4;
constexpr std::size_t hb_off_epoch = 8;
constexpr std::size_t hb_off_seq = 16;
constexpr std::size_t hb_off_ack_seq = 24;
constexpr std::size_t hb_off_ts = 32;
constexpr std::size_t hb_off_ts_echo = 40;
constexpr std::size_t hb_off_flags = 48;
constexpr std::size_t hb_off_payload_length = 50;
constexpr std::size_t hb_off_group = 52;
constexpr std::size_t hb_off_incarnation = 56;
constexpr std::size_t hb_off_key_id = 64;
constexpr std::size_t hb_off_auth_alg = 65;
constexpr std::size_t hb_off_reserved = 66;
static_assert(hb_off_reserved + 6 == hb_header_size);
static_assert(eth_header::size() + arp_msg::size() < eth_min_frame);
static_assert(eth_header::size() + hb_header_size + hb_max_payload + hb_tag_size <= 1514, "a heartbeat fits one standard frame");

// ---------------------------------------------------------------- decoders, one per layer
// Each takes the bytes after the previous header and fills its part of `f`, returning the
// first failed check.

decode_error decode_arp(std::span<const std::byte> in, arp_msg& a) noexcept {
    if (in.size() < arp_msg::size()) return decode_error::arp_truncated;
    const std::byte* p = in.data();
    if (load_be16(p) != 1 || load_be16(p + 2) != ethertype_ipv4 || load_u8(p + 4) != 6 || load_u8(p + 5) != 4)
        return decode_error::arp_bad_format;
    a.op = load_be16(p + 6);
    if (a.op != arp_op_request && a.op != arp_op_reply) return decode_error::arp_bad_op;
    a.sha = load_mac(p + 8);
    a.spa = ipv4_addr{load_be32(p + 14)};
    a.tha = load_mac(p + 18);
    a.tpa = ipv4_addr{load_be32(p + 24)};
    return decode_error::none;
}

decode_error decode_icmp(std::span<const std::byte> icmp, icmp_echo& e) noexcept {
    if (icmp.size() < icmp_header_size) return decode_error::icmp_truncated;
    if (inet_checksum(icmp) != 0) return decode_error::icmp_bad_checksum;
    const std::byte* p = icmp.data();
    const std::uint8_t type = load_u8(p);
    if ((type != icmp_echo_request && type != icmp_echo_reply) || load_u8(p + 1) != 0)
        return decode_error::icmp_not_echo;
    e.is_reply = type == icmp_echo_reply;
    e.id = load_be16(p + 4);
    e.seq = load_be16(p + 6);
    e.payload = icmp.subspan(icmp_header_size);
    return decode_error::none;
}

decode_error decode_ipv4(std::span<const std::byte> in, icmp_echo& e) noexcept {
    if (in.size() < ipv4_min_header_size) return decode_error::ipv4_truncated;
    const std::byte* p = in.data();
    const std::uint8_t ver_ihl = load_u8(p + ip_ver_ihl);
    if ((ver_ihl >> 4) != 4) return decode_error::ipv4_bad_version;
    const std::size_t ihl = std::size_t{ver_ihl & 0x0fu} * 4;
    if (ihl < ipv4_min_header_size || ihl > in.size()) return decode_error::ipv4_bad_header_length;
    // Anything past total_length is Ethernet padding and is ignored.
    const std::size_t total = load_be16(p + ip_total_length);
    if (total < ihl || total > in.size()) return decode_error::ipv4_bad_total_length;
    if (inet_checksum(in.first(ihl)) != 0) return decode_error::ipv4_bad_checksum;
    const std::uint16_t frag = load_be16(p + ip_flags_frag);
    if ((frag & ip_flag_mf) != 0 || (frag & ip_frag_offset_mask) != 0) return decode_error::ipv4_fragment;
    if (load_u8(p + ip_protocol) != ip_proto_icmp) return decode_error::ipv4_not_icmp;
    e.ttl = load_u8(p + ip_ttl);
    e.src = ipv4_addr{load_be32(p + ip_src)};
    e.dst = ipv4_addr{load_be32(p + ip_dst)};
    return decode_icmp(in.subspan(ihl, total - ihl), e);
}

decode_error decode_echo6(std::span<const std::byte> icmp, icmp6_echo& e) noexcept {
    const std::byte* p = icmp.data();
    // RFC 4443 4.1 defines code 0 only; anything else is not an echo we would answer.
    if (load_u8(p + icmp6_code) != 0) return decode_error::icmp6_unsupported;
    e.is_reply = load_u8(p + icmp6_type) == icmp6_echo_reply;
    e.id = load_be16(p + icmp6_echo_id);
    e.seq = load_be16(p + icmp6_echo_seq);
    e.payload = icmp.subspan(icmp6_header_size);
    return decode_error::none;
}

// RFC 4861 4.6: options fill the rest of the message, each a multiple of 8 bytes and never
// 0 (a zero length would loop forever). Only the link-layer option this message type
// carries (`want`) is read, and only its first copy, as Linux does; others are skipped.
decode_error decode_nd_options(std::span<const std::byte> opts, std::uint8_t want, nd_msg& m) noexcept {
    while (!opts.empty()) {
        if (opts.size() < 2) return decode_error::nd_bad_option;
        const std::size_t len = std::size_t{load_u8(opts.data() + 1)} * 8;
        if (len == 0 || len > opts.size()) return decode_error::nd_bad_option;
        if (load_u8(opts.data()) == want) {
            // An Ethernet link-layer option is 8 bytes (RFC 2464 6); another size names
            // no MAC we could use, and Linux drops the message for it too.
            if (len != nd_opt_lladdr_size) return decode_error::nd_bad_option;
            if (!m.has_lladdr) {
                m.lladdr = load_mac(opts.data() + 2);
                m.has_lladdr = true;
            }
        }
        opts = opts.subspan(len);
    }
    return decode_error::none;
}

// RFC 4861 7.1.1 (NS) and 7.1.2 (NA) validity checks, after the checksum.
decode_error decode_nd(std::span<const std::byte> icmp, nd_msg& m) noexcept {
    const std::byte* p = icmp.data();
    m.is_advert = load_u8(p + icmp6_type) == icmp6_neighbor_advert;
    if (m.hop_limit != nd_hop_limit) return decode_error::nd_bad_hop_limit;
    if (load_u8(p + icmp6_code) != 0) return decode_error::nd_bad_code;
    if (icmp.size() < nd_min_size) return decode_error::nd_truncated;
    m.target = load_ipv6(p + nd_target);
    if (m.target.is_multicast()) return decode_error::nd_bad_target;
    if (m.is_advert) {
        const std::uint8_t flags = load_u8(p + nd_flags);
        m.router = (flags & na_flag_router) != 0;
        m.solicited = (flags & na_flag_solicited) != 0;
        m.override_ = (flags & na_flag_override) != 0;
    }
    const decode_error opt = decode_nd_options(icmp.subspan(nd_min_size),
                                               m.is_advert ? nd_opt_target_lladdr : nd_opt_source_lladdr, m);
    if (opt != decode_error::none) return opt;
    if (m.is_dad()) {
        // A DAD probe must not teach anyone a mapping for an address nobody holds yet.
        if (m.has_lladdr) return decode_error::nd_dad_has_lladdr;
        if (!m.dst.is_solicited_node()) return decode_error::nd_dad_bad_destination;
    }
    if (m.is_advert && m.solicited && m.dst.is_multicast()) return decode_error::nd_bad_flags;
    return decode_error::none;
}

decode_error decode_ipv6(std::span<const std::byte> in, frame& f, frame_kind& kind) noexcept {
    if (in.size() < ipv6_header_size) return decode_error::ipv6_truncated;
    const std::byte* p = in.data();
    if ((load_u8(p + ip6_ver_tc_flow) >> 4) != 6) return decode_error::ipv6_bad_version;
    // Anything past the payload length is Ethernet padding and is ignored.
    const std::size_t len = load_be16(p + ip6_payload_length);
    if (len > in.size() - ipv6_header_size) return decode_error::ipv6_bad_payload_length;
    if (load_u8(p + ip6_next_header) != ip_proto_icmpv6) return decode_error::ipv6_not_icmp6;
    const ipv6_addr src = load_ipv6(p + ip6_src);
    const ipv6_addr dst = load_ipv6(p + ip6_dst);
    if (src.is_multicast()) return decode_error::ipv6_multicast_source;
    const std::uint8_t hop_limit = load_u8(p + ip6_hop_limit);
    const auto icmp = in.subspan(ipv6_header_size, len);
    if (icmp.size() < icmp6_header_size) return decode_error::icmp6_truncated;
    if (icmp6_checksum(src, dst, icmp) != 0) return decode_error::icmp6_bad_checksum;
    switch (load_u8(icmp.data() + icmp6_type)) {
    case icmp6_echo_request:
    case icmp6_echo_reply:
        kind = frame_kind::icmp6_echo;
        f.echo6.src = src;
        f.echo6.dst = dst;
        f.echo6.hop_limit = hop_limit;
        return decode_echo6(icmp, f.echo6);
    case icmp6_neighbor_solicit:
    case icmp6_neighbor_advert:
        kind = frame_kind::nd;
        f.nd.src = src;
        f.nd.dst = dst;
        f.nd.hop_limit = hop_limit;
        return decode_nd(icmp, f.nd);
    default:
        return decode_error::icmp6_unsupported;
    }
}

// Every entry once, so the receiver's walk over them needs no error path.
decode_error check_bundle(const hb_msg& b) noexcept {
    if (b.payload.empty()) return decode_error::hb_bad_bundle;
    std::size_t count = 0;
    for (std::size_t off = 0; off < b.payload.size(); ++count) {
        if (count == hb_bundle_max_entries || b.payload.size() - off < hb_header_size) return decode_error::hb_bad_bundle;
        const std::byte* e = b.payload.data() + off;
        const std::uint8_t type = load_u8(e + hb_off_type);
        const std::size_t len = load_be16(e + hb_off_payload_length);
        const bool rides = type == static_cast<std::uint8_t>(hb_type::announce)
                               ? len <= hb_bundle_entry_max_payload
                               : len == 0 && (type == static_cast<std::uint8_t>(hb_type::probe) ||
                                              type == static_cast<std::uint8_t>(hb_type::ack));
        if (load_u8(e + hb_off_version) != heartwire_version || !rides || load_u8(e + hb_off_role) > max_wire_role ||
            load_be32(e + hb_off_node_id) != b.node_id || load_be64(e + hb_off_incarnation) != b.incarnation ||
            load_u8(e + hb_off_key_id) != 0 || load_u8(e + hb_off_auth_alg) != 0 ||
            b.payload.size() - off - hb_header_size < len)
            return decode_error::hb_bad_bundle;
        off += hb_header_size + len;
    }
    return decode_error::none;
}

// What a frame's header and a bundle entry's have alike (not type, role, node id,
// incarnation or key: checked or taken from the bundle).
void load_hb_fields(const std::byte* p, hb_msg& h) noexcept {
    h.priority = load_u8(p + hb_off_priority);
    h.epoch = load_be64(p + hb_off_epoch);
    h.seq = load_be64(p + hb_off_seq);
    h.ack_seq = load_be64(p + hb_off_ack_seq);
    h.ts_ns = load_be64(p + hb_off_ts);
    h.ts_echo_ns = load_be64(p + hb_off_ts_echo);
    h.flags = load_be16(p + hb_off_flags);
    h.group = load_be32(p + hb_off_group);
}

// `frame_start`: the frame's first byte (the Ethernet header), where the tag's cover begins.
decode_error decode_hb(const std::byte* frame_start, std::span<const std::byte> in, hb_msg& h) noexcept {
    if (in.size() < hb_header_size) return decode_error::hb_truncated;
    const std::byte* p = in.data();
    if (load_u8(p + hb_off_version) != heartwire_version) return decode_error::hb_bad_version;
    const std::uint8_t type = load_u8(p + hb_off_type);
    if (!is_valid_hb_type(type)) return decode_error::hb_bad_type;
    h.type = static_cast<hb_type>(type);
    h.role = load_u8(p + hb_off_role);
    if (h.role > max_wire_role) return decode_error::hb_bad_role;
    const std::size_t len = load_be16(p + hb_off_payload_length);
    const std::size_t limit = h.type == hb_type::bundle ? hb_max_bundle_payload : hb_max_payload;
    if (len > limit || len > in.size() - hb_header_size) return decode_error::hb_bad_payload_length;
    load_hb_fields(p, h);
    h.node_id = load_be32(p + hb_off_node_id);
    h.incarnation = load_be64(p + hb_off_incarnation);
    h.key_id = load_u8(p + hb_off_key_id);
    h.auth_alg = load_u8(p + hb_off_auth_alg);
    // reserved (offset 66) is not checked so a later version can use it without a flag day.
    h.payload = in.subspan(hb_header_size, len);
    const std::size_t end = hb_header_size + len; // <= in.size(), checked above
    if (h.auth_alg != 0) {
        if (in.size() - end < hb_tag_size) return decode_error::hb_missing_tag;
        h.tag = in.subspan(end, hb_tag_size);
    }
    h.covered = std::span<const std::byte>(frame_start, static_cast<std::size_t>(p - frame_start) + end);
    if (h.type == hb_type::bundle) return check_bundle(h);
    return decode_error::none;
}

} // namespace

// ---------------------------------------------------------------- names

std::string_view to_string(hb_type t) noexcept {
    switch (t) {
#define HW_X(name, val)                                                                           \
    case hb_type::name:                                                                           \
        return #name;
        HEARTWIRE_HB_TYPES(HW_X)
#undef HW_X
    }
    return "unknown";
}

bool is_valid_hb_type(std::uint8_t v) noexcept {
    switch (v) {
#define HW_X(name, val) case val:
        HEARTWIRE_HB_TYPES(HW_X)
#undef HW_X
        return true;
    default:
        return false;
    }
}

std::string_view to_string(decode_error e) noexcept {
    switch (e) {
    case decode_error::none:
        return "none";
#define HW_X(name)                                                                                \
    case decode_error::name:                                                                      \
        return #name;
        HEARTWIRE_DECODE_ERRORS(HW_X)
#undef HW_X
    case decode_error::count_:
        break;
    }
    return "unknown";
}

// ---------------------------------------------------------------- checksum

namespace {

// RFC 1071 sums 16-bit big-endian words; the one's complement sum is byte-order
// independent (section 2(B)), so add native 32-bit words and swap once at the end.
// A 64-bit accumulator cannot overflow below 2^32 words, far beyond any frame. Spans
// summed one after the other must all be of even length but the last.
std::uint64_t add_words(std::uint64_t sum, std::span<const std::byte> data) noexcept {
    const std::byte* p = data.data();
    std::size_t n = data.size();
    for (; n >= 4; n -= 4, p += 4) {
        std::uint32_t w;
        std::memcpy(&w, p, 4);
        sum += w;
    }
    if (n >= 2) {
        std::uint16_t w;
        std::memcpy(&w, p, 2);
        sum += w;
        n -= 2;
        p += 2;
    }
    if (n == 1) {
        // A trailing odd byte is the high byte of a zero-padded word: in memory order that
        // is {byte, 0}, read natively like the other words.
        std::uint16_t w = 0;
        std::memcpy(&w, p, 1);
        sum += w;
    }
    return sum;
}

std::uint16_t fold(std::uint64_t sum) noexcept {
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    auto folded = static_cast<std::uint16_t>(sum);
    if constexpr (std::endian::native == std::endian::little)
        folded = static_cast<std::uint16_t>((folded >> 8) | (folded << 8));
    return static_cast<std::uint16_t>(~folded);
}

} // namespace

std::uint16_t inet_checksum(std::span<const std::byte> data) noexcept { return fold(add_words(0, data)); }

std::uint16_t icmp6_checksum(const ipv6_addr& src, const ipv6_addr& dst, std::span<const std::byte> icmp) noexcept {
    // Pseudo-header tail: upper-layer length (32 bits), three zero bytes, next header.
    std::byte tail[8]{};
    store_be32(tail, static_cast<std::uint32_t>(icmp.size()));
    tail[7] = std::byte{ip_proto_icmpv6};
    std::uint64_t sum = add_words(0, std::as_bytes(std::span(src.b)));
    sum = add_words(sum, std::as_bytes(std::span(dst.b)));
    sum = add_words(sum, tail);
    return fold(add_words(sum, icmp));
}

// ---------------------------------------------------------------- decode

frame decode(std::span<const std::byte> in) noexcept {
    // One named result and a single return, so the frame is built in the caller's slot
    // (NRVO) on every path, the drop path included.
    frame f;
    decode_error err = decode_error::none;
    frame_kind kind = frame_kind::invalid;
    if (in.size() < eth_header::size()) {
        err = decode_error::eth_truncated;
    } else {
        f.eth.dst = load_mac(in.data());
        f.eth.src = load_mac(in.data() + 6);
        f.eth.ethertype = load_be16(in.data() + 12);
        const auto body = in.subspan(eth_header::size());
        switch (f.eth.ethertype) {
        case ethertype_heartwire:
            err = decode_hb(in.data(), body, f.hb);
            kind = frame_kind::heartbeat;
            break;
        case ethertype_arp:
            err = decode_arp(body, f.arp);
            kind = frame_kind::arp;
            break;
        case ethertype_ipv4:
            err = decode_ipv4(body, f.echo);
            kind = frame_kind::icmp_echo;
            break;
        case ethertype_ipv6:
            err = decode_ipv6(body, f, kind);
            break;
        case ethertype_vlan:
            err = decode_error::vlan_unsupported;
            break;
        default:
            err = decode_error::unknown_ethertype;
            break;
        }
    }
    f.error = err;
    f.kind = err == decode_error::none ? kind : frame_kind::invalid;
    return f;
}

// ---------------------------------------------------------------- encode

std::size_t encode_arp(const mac_addr& dst, const mac_addr& src, const arp_msg& m,
                       std::span<std::byte> out) noexcept {
    // An op the decoder would reject is a caller bug: refuse it rather than put it on the wire.
    if (m.op != arp_op_request && m.op != arp_op_reply) return 0;
    const std::size_t len = eth_header::size() + arp_msg::size();
    if (out.size() < wire_size(len)) return 0;
    std::byte* p = out.data();
    store_eth(p, dst, src, ethertype_arp);
    p += eth_header::size();
    store_be16(p, 1);                  // htype Ethernet
    store_be16(p + 2, ethertype_ipv4); // ptype IPv4
    p[4] = std::byte{6};
    p[5] = std::byte{4};
    store_be16(p + 6, m.op);
    store_mac(p + 8, m.sha);
    store_be32(p + 14, m.spa.v);
    store_mac(p + 18, m.tha);
    store_be32(p + 24, m.tpa.v);
    return pad_to_min(out, len);
}

std::size_t encode_garp(const mac_addr& src, ipv4_addr addr, std::span<std::byte> out) noexcept {
    // RFC 5227 2.3: an announcement is a request with spa = tpa = addr; tha is ignored and
    // SHOULD be zero.
    arp_msg m;
    m.op = arp_op_request;
    m.sha = src;
    m.spa = addr;
    m.tpa = addr;
    return encode_arp(mac_addr::broadcast(), src, m, out);
}

std::size_t encode_arp_probe(const mac_addr& src, ipv4_addr addr, std::span<std::byte> out) noexcept {
    // RFC 5227 2.1.1: spa = 0 so no receiver updates its cache from a probe; tha = 0.
    arp_msg m;
    m.op = arp_op_request;
    m.sha = src;
    m.tpa = addr;
    return encode_arp(mac_addr::broadcast(), src, m, out);
}

std::size_t encode_icmp_echo(const mac_addr& dst, const mac_addr& src, const icmp_echo& m,
                             std::span<std::byte> out) noexcept {
    const std::size_t icmp_len = icmp_header_size + m.payload.size();
    if (m.payload.size() > ip_max_total_length - ipv4_min_header_size - icmp_header_size) return 0;
    const std::size_t total = ipv4_min_header_size + icmp_len;
    const std::size_t len = eth_header::size() + total;
    if (out.size() < wire_size(len)) return 0;

    std::byte* p = out.data();
    std::byte* ip = p + eth_header::size();
    std::byte* icmp = ip + ipv4_min_header_size;
    // Payload first, with memmove: a reply is often built in place over the request, and
    // the source must be read before any header store can overwrite it.
    if (!m.payload.empty()) std::memmove(icmp + icmp_header_size, m.payload.data(), m.payload.size());
    store_eth(p, dst, src, ethertype_ipv4);
    ip[ip_ver_ihl] = std::byte{0x45};
    ip[ip_tos] = std::byte{0};
    store_be16(ip + ip_total_length, static_cast<std::uint16_t>(total));
    store_be16(ip + ip_id, 0); // DF is set, so the id names no fragments (RFC 6864)
    store_be16(ip + ip_flags_frag, ip_flag_df);
    ip[ip_ttl] = std::byte{m.ttl};
    ip[ip_protocol] = std::byte{ip_proto_icmp};
    store_be16(ip + ip_checksum, 0);
    store_be32(ip + ip_src, m.src.v);
    store_be32(ip + ip_dst, m.dst.v);
    store_be16(ip + ip_checksum, inet_checksum({ip, ipv4_min_header_size}));

    icmp[0] = std::byte{m.is_reply ? icmp_echo_reply : icmp_echo_request};
    icmp[1] = std::byte{0};
    store_be16(icmp + 2, 0);
    store_be16(icmp + 4, m.id);
    store_be16(icmp + 6, m.seq);
    store_be16(icmp + 2, inet_checksum({icmp, icmp_len}));
    return pad_to_min(out, len);
}

namespace {

void store_hb_header(std::byte* h, const hb_msg& m, std::size_t payload_length) noexcept {
    h[hb_off_version] = std::byte{heartwire_version};
    h[hb_off_type] = std::byte{static_cast<std::uint8_t>(m.type)};
    h[hb_off_role] = std::byte{m.role};
    h[hb_off_priority] = std::byte{m.priority};
    store_be32(h + hb_off_node_id, m.node_id);
    store_be64(h + hb_off_epoch, m.epoch);
    store_be64(h + hb_off_seq, m.seq);
    store_be64(h + hb_off_ack_seq, m.ack_seq);
    store_be64(h + hb_off_ts, m.ts_ns);
    store_be64(h + hb_off_ts_echo, m.ts_echo_ns);
    store_be16(h + hb_off_flags, m.flags);
    store_be16(h + hb_off_payload_length, static_cast<std::uint16_t>(payload_length));
    store_be32(h + hb_off_group, m.group);
    store_be64(h + hb_off_incarnation, m.incarnation);
    h[hb_off_key_id] = std::byte{m.key_id};
    h[hb_off_auth_alg] = std::byte{m.auth_alg};
    std::memset(h + hb_off_reserved, 0, hb_header_size - hb_off_reserved);
}

} // namespace

std::size_t encode_heartbeat(const mac_addr& dst, const mac_addr& src, const hb_msg& m,
                             std::span<std::byte> out) noexcept {
    // Refuse what every receiver would drop (see decode_hb), so a bad frame is caught at
    // the sender instead of looking like packet loss.
    if (!is_valid_hb_type(static_cast<std::uint8_t>(m.type)) || m.role > max_wire_role ||
        m.payload.size() > (m.type == hb_type::bundle ? hb_max_bundle_payload : hb_max_payload) ||
        (m.type == hb_type::bundle && check_bundle(m) != decode_error::none))
        return 0;
    const std::size_t tag = m.auth_alg != 0 ? hb_tag_size : 0;
    const std::size_t len = eth_header::size() + hb_header_size + m.payload.size() + tag;
    if (out.size() < wire_size(len)) return 0;

    std::byte* p = out.data();
    std::byte* h = p + eth_header::size();
    if (!m.payload.empty()) std::memmove(h + hb_header_size, m.payload.data(), m.payload.size());
    store_eth(p, dst, src, ethertype_heartwire);
    store_hb_header(h, m, m.payload.size());
    if (tag != 0) std::memset(h + hb_header_size + m.payload.size(), 0, tag);
    return pad_to_min(out, len);
}

std::size_t encode_bundle(const mac_addr& dst, const mac_addr& src, const hb_msg& outer, std::span<const hb_msg> entries,
                          std::span<std::byte> out) noexcept {
    if (entries.empty() || entries.size() > hb_bundle_max_entries || outer.role > max_wire_role) return 0;
    std::size_t payload = 0;
    for (const hb_msg& m : entries) {
        if (!bundlable(m) || m.role > max_wire_role) return 0;
        payload += bundle_entry_size(m);
    }
    if (payload > hb_max_bundle_payload) return 0;
    const std::size_t tag = outer.auth_alg != 0 ? hb_tag_size : 0;
    const std::size_t len = eth_header::size() + hb_header_size + payload + tag;
    if (out.size() < wire_size(len)) return 0;
    std::byte* p = out.data();
    std::byte* h = p + eth_header::size();
    std::byte* e = h + hb_header_size;
    for (const hb_msg& m : entries) {
        hb_msg x = m;
        x.node_id = outer.node_id;
        x.incarnation = outer.incarnation;
        x.key_id = 0;
        x.auth_alg = 0;
        if (!m.payload.empty()) std::memmove(e + hb_header_size, m.payload.data(), m.payload.size());
        store_hb_header(e, x, m.payload.size());
        e += bundle_entry_size(m);
    }
    hb_msg b = outer;
    b.type = hb_type::bundle;
    store_eth(p, dst, src, ethertype_heartwire);
    store_hb_header(h, b, payload);
    if (tag != 0) std::memset(e, 0, tag);
    return pad_to_min(out, len);
}

std::size_t next_bundle_entry(const hb_msg& b, std::size_t off, hb_msg& h) noexcept {
    const std::byte* p = b.payload.data() + off;
    h = hb_msg{};
    h.type = static_cast<hb_type>(load_u8(p + hb_off_type));
    h.role = load_u8(p + hb_off_role);
    load_hb_fields(p, h);
    h.node_id = b.node_id;
    h.incarnation = b.incarnation;
    h.key_id = b.key_id;
    h.auth_alg = b.auth_alg;
    h.payload = b.payload.subspan(off + hb_header_size, load_be16(p + hb_off_payload_length));
    h.covered = b.covered;
    h.tag = b.tag;
    return off + hb_header_size + h.payload.size();
}

// ---------------------------------------------------------------- encode: IPv6

namespace {

void store_ipv6_header(std::byte* ip, std::size_t payload_length, std::uint8_t hop_limit, const ipv6_addr& src,
                       const ipv6_addr& dst) noexcept {
    store_be32(ip + ip6_ver_tc_flow, 0x6000'0000u); // version 6, traffic class 0, flow label 0
    store_be16(ip + ip6_payload_length, static_cast<std::uint16_t>(payload_length));
    ip[ip6_next_header] = std::byte{ip_proto_icmpv6};
    ip[ip6_hop_limit] = std::byte{hop_limit};
    store_ipv6(ip + ip6_src, src);
    store_ipv6(ip + ip6_dst, dst);
}

// NS and NA share a layout (wire.hpp diagram): only the type, the flags and the option
// type differ. Checks common to both: RFC 4861 7.1.1 / 7.1.2, as the decoder applies them.
std::size_t encode_nd(std::uint8_t type, const mac_addr& dst, const mac_addr& src, const nd_msg& m,
                      std::span<std::byte> out) noexcept {
    if (m.hop_limit != nd_hop_limit || m.target.is_multicast() || m.src.is_multicast()) return 0;
    const bool advert = type == icmp6_neighbor_advert;
    const std::size_t icmp_len = nd_min_size + (m.has_lladdr ? nd_opt_lladdr_size : 0);
    const std::size_t len = eth_header::size() + ipv6_header_size + icmp_len;
    if (out.size() < wire_size(len)) return 0;

    std::byte* p = out.data();
    std::byte* ip = p + eth_header::size();
    std::byte* icmp = ip + ipv6_header_size;
    store_eth(p, dst, src, ethertype_ipv6);
    store_ipv6_header(ip, icmp_len, m.hop_limit, m.src, m.dst);
    icmp[icmp6_type] = std::byte{type};
    icmp[icmp6_code] = std::byte{0};
    store_be16(icmp + icmp6_checksum_at, 0);
    std::uint8_t flags = 0;
    if (advert) {
        if (m.router) flags |= na_flag_router;
        if (m.solicited) flags |= na_flag_solicited;
        if (m.override_) flags |= na_flag_override;
    }
    store_be32(icmp + nd_flags, std::uint32_t{flags} << 24); // flags, then reserved (0)
    store_ipv6(icmp + nd_target, m.target);
    if (m.has_lladdr) {
        std::byte* opt = icmp + nd_min_size;
        opt[0] = std::byte{advert ? nd_opt_target_lladdr : nd_opt_source_lladdr};
        opt[1] = std::byte{nd_opt_lladdr_size / 8};
        store_mac(opt + 2, m.lladdr);
    }
    store_be16(icmp + icmp6_checksum_at, icmp6_checksum(m.src, m.dst, {icmp, icmp_len}));
    return pad_to_min(out, len);
}

} // namespace

std::size_t encode_na(const mac_addr& dst, const mac_addr& src, const nd_msg& m, std::span<std::byte> out) noexcept {
    if (m.solicited && m.dst.is_multicast()) return 0;
    return encode_nd(icmp6_neighbor_advert, dst, src, m, out);
}

std::size_t encode_unsolicited_na(const mac_addr& src, const ipv6_addr& addr, std::span<std::byte> out) noexcept {
    // RFC 4861 7.2.6: S=0 (nobody asked), O=1 (replace what caches hold), to all nodes.
    nd_msg m;
    m.is_advert = true;
    m.src = addr;
    m.dst = ipv6_addr::all_nodes();
    m.target = addr;
    m.override_ = true;
    m.lladdr = src;
    m.has_lladdr = true;
    return encode_na(m.dst.multicast_mac(), src, m, out);
}

std::size_t encode_na_answer(const frame& ns, const mac_addr& src, std::span<std::byte> out) noexcept {
    if (ns.kind != frame_kind::nd || ns.nd.is_advert) return 0;
    nd_msg m;
    m.is_advert = true;
    m.src = ns.nd.target;
    m.target = ns.nd.target;
    m.override_ = true; // not an anycast address: the answer may replace a cached MAC
    m.lladdr = src;
    m.has_lladdr = true; // MUST for a multicast NS, harmless for a unicast one (7.2.4)
    mac_addr dst;
    if (ns.nd.src.is_zero()) {
        // A DAD prober has no address to answer to yet: tell every node, unsolicited.
        m.dst = ipv6_addr::all_nodes();
        dst = m.dst.multicast_mac();
    } else {
        m.dst = ns.nd.src;
        m.solicited = true;
        dst = ns.nd.has_lladdr ? ns.nd.lladdr : ns.eth.src;
    }
    return encode_na(dst, src, m, out);
}

std::size_t encode_ns(const mac_addr& dst, const mac_addr& src, const nd_msg& m, std::span<std::byte> out) noexcept {
    // m.src, not m.is_dad(): the type is this function's, whatever m.is_advert says.
    if (m.src.is_zero() && (m.has_lladdr || !m.dst.is_solicited_node())) return 0;
    return encode_nd(icmp6_neighbor_solicit, dst, src, m, out);
}

std::size_t encode_ns(const mac_addr& src, const nd_msg& m, std::span<std::byte> out) noexcept {
    if (!m.dst.is_multicast()) return 0;
    return encode_ns(m.dst.multicast_mac(), src, m, out);
}

std::size_t encode_dad_ns(const mac_addr& src, const ipv6_addr& target, std::span<std::byte> out) noexcept {
    // RFC 4862 5.4.2: from ::, to the target's solicited-node group, no link-layer option.
    nd_msg m;
    m.dst = target.solicited_node();
    m.target = target;
    return encode_ns(src, m, out);
}

std::size_t encode_icmp6_echo(const mac_addr& dst, const mac_addr& src, const icmp6_echo& m,
                              std::span<std::byte> out) noexcept {
    if (m.src.is_multicast() || m.payload.size() > ip6_max_payload_length - icmp6_header_size) return 0;
    const std::size_t icmp_len = icmp6_header_size + m.payload.size();
    const std::size_t len = eth_header::size() + ipv6_header_size + icmp_len;
    if (out.size() < wire_size(len)) return 0;

    std::byte* p = out.data();
    std::byte* ip = p + eth_header::size();
    std::byte* icmp = ip + ipv6_header_size;
    // Payload first, with memmove: a reply is often built in place over the request.
    if (!m.payload.empty()) std::memmove(icmp + icmp6_header_size, m.payload.data(), m.payload.size());
    store_eth(p, dst, src, ethertype_ipv6);
    store_ipv6_header(ip, icmp_len, m.hop_limit, m.src, m.dst);
    icmp[icmp6_type] = std::byte{m.is_reply ? icmp6_echo_reply : icmp6_echo_request};
    icmp[icmp6_code] = std::byte{0};
    store_be16(icmp + icmp6_checksum_at, 0);
    store_be16(icmp + icmp6_echo_id, m.id);
    store_be16(icmp + icmp6_echo_seq, m.seq);
    store_be16(icmp + icmp6_checksum_at, icmp6_checksum(m.src, m.dst, {icmp, icmp_len}));
    return pad_to_min(out, len);
}

bool is_dad_conflict(const frame& f, const ipv6_addr& tentative, const mac_addr& self) noexcept {
    if (f.kind != frame_kind::nd || f.nd.target != tentative || f.eth.src == self) return false;
    // 5.4.4: any advertisement for it. 5.4.3: a solicitation from :: is another node's DAD
    // for the same address; one from a real address is resolution by a node that believes
    // someone holds it, and says nothing about a duplicate.
    return f.nd.is_advert || f.nd.src.is_zero();
}

} // namespace heartwire::wire
