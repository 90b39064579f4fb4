// libFuzzer target: the wire codec.
//
// Two properties per input, each a crash (abort) when broken:
//  1. decode() of arbitrary bytes never reads outside them, and every frame it accepts
//     round-trips: encoded again (from the decoded fields, in a fresh buffer and in place
//     over the input, the way the engine answers an echo) it decodes to the same fields,
//     and for a heartbeat the bytes its tag covers come back identical.
//     An accepted neighbour solicitation is also answered in place, and the answer checked
//     against RFC 4861 7.2.4.
//  2. The encoders honour their bounds: a message built from the fuzz bytes encodes to the
//     same length in any buffer at least that big, to 0 in any smaller one, and never
//     writes past the end (each buffer is its own exact-size heap block, so ASan sees it);
//     and each refuses exactly what every receiver would drop.
#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "heartwire/wire.hpp"

namespace {

using namespace heartwire;
using namespace heartwire::wire;
using bytes = std::vector<std::byte>;

// The reserved bytes of the heartwire header (wire.hpp diagram: offset 66 to the end of the
// header). The decoder skips them on purpose, so a round trip may change them.
constexpr std::size_t hb_reserved_offset = 66;

[[noreturn]] void broken(const char* what) {
    std::fprintf(stderr, "fuzz_decode: %s\n", what);
    std::abort();
}
void check(bool ok, const char* what) {
    if (!ok) broken(what);
}

bool same_bytes(std::span<const std::byte> a, std::span<const std::byte> b) {
    return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size()) == 0);
}

// A span the decoder returned must lie inside the buffer it decoded.
void check_inside(std::span<const std::byte> part, std::span<const std::byte> whole, const char* what) {
    if (part.empty()) return;
    check(part.data() >= whole.data() && part.data() + part.size() <= whole.data() + whole.size(), what);
}

// The heartbeat fields a receiver acts on. The tag is the sender's to write (the encoder
// leaves room for it, zeroed), so it is checked on its own (check_tag).
void check_same_hb(const hb_msg& a, const hb_msg& b) {
    check(a.type == b.type && a.role == b.role && a.priority == b.priority && a.node_id == b.node_id,
          "heartbeat round trip: type/role/priority/node id differ");
    check(a.epoch == b.epoch && a.seq == b.seq && a.ack_seq == b.ack_seq, "heartbeat round trip: epoch/seq/ack differ");
    check(a.ts_ns == b.ts_ns && a.ts_echo_ns == b.ts_echo_ns && a.flags == b.flags,
          "heartbeat round trip: timestamps/flags differ");
    check(a.group == b.group && a.incarnation == b.incarnation && a.key_id == b.key_id && a.auth_alg == b.auth_alg,
          "heartbeat round trip: group/incarnation/key/alg differ");
    check(same_bytes(a.payload, b.payload), "heartbeat round trip: payload differs");
}

// A decoded heartbeat has a tag exactly when its auth alg says so.
void check_tag(const hb_msg& h) {
    check(h.auth_alg == 0 ? h.tag.empty() : h.tag.size() == hb_tag_size, "tag length disagrees with auth alg");
}

void check_same_arp(const arp_msg& a, const arp_msg& b) {
    check(a.op == b.op && a.sha == b.sha && a.spa == b.spa && a.tha == b.tha && a.tpa == b.tpa,
          "ARP round trip: fields differ");
}

void check_same_nd(const nd_msg& a, const nd_msg& b) {
    check(a.is_advert == b.is_advert && a.src == b.src && a.dst == b.dst && a.target == b.target,
          "ND round trip: type/addresses differ");
    // An NS has no flags on the wire: what the sender set there does not come back.
    check(!a.is_advert || (a.router == b.router && a.solicited == b.solicited && a.override_ == b.override_),
          "ND round trip: flags differ");
    check(a.has_lladdr == b.has_lladdr && (!a.has_lladdr || a.lladdr == b.lladdr), "ND round trip: link-layer option differs");
}

// What RFC 4861 7.1.1 / 7.1.2 let a receiver accept (the decoder's rules, restated).
bool nd_valid(const nd_msg& m) {
    if (m.hop_limit != nd_hop_limit || m.target.is_multicast() || m.src.is_multicast()) return false;
    if (m.is_dad() && (m.has_lladdr || !m.dst.is_solicited_node())) return false;
    return !(m.is_advert && m.solicited && m.dst.is_multicast());
}

void check_same_echo6(const icmp6_echo& a, const icmp6_echo& b) {
    check(a.is_reply == b.is_reply && a.src == b.src && a.dst == b.dst && a.hop_limit == b.hop_limit && a.id == b.id &&
              a.seq == b.seq,
          "ICMPv6 echo round trip: fields differ");
    check(same_bytes(a.payload, b.payload), "ICMPv6 echo round trip: payload differs");
}

void check_same_echo(const icmp_echo& a, const icmp_echo& b) {
    check(a.is_reply == b.is_reply && a.src == b.src && a.dst == b.dst && a.ttl == b.ttl && a.id == b.id &&
              a.seq == b.seq,
          "ICMP round trip: fields differ");
    check(same_bytes(a.payload, b.payload), "ICMP round trip: payload differs");
}

// Encodes with `enc` into buffers of several sizes around the frame's length `n` (found
// with a large buffer first) and checks the all-or-nothing contract. Returns the frame.
template <class Encode> bytes encode_checked(Encode enc, std::size_t extra_size) {
    bytes big(2048);
    const std::size_t n = enc(std::span<std::byte>(big));
    if (n == 0) return {};
    check(n >= eth_min_frame && n <= big.size(), "encoder returned a length outside [60, buffer]");
    big.resize(n);
    for (std::size_t size : {std::size_t{0}, std::size_t{1}, eth_min_frame - 1, n - 1, n, n + 1, extra_size}) {
        auto buf = std::make_unique<std::byte[]>(size == 0 ? 1 : size); // exact-size block for ASan
        const std::size_t got = enc(std::span<std::byte>(buf.get(), size));
        check(got == (size >= n ? n : 0), "encoder ignored its output bound");
        if (got) check(same_bytes({buf.get(), got}, big), "encoder output depends on the buffer size");
    }
    return big;
}

// ---------------------------------------------------------------- 1. decode arbitrary bytes

void decode_and_reencode(std::span<const std::byte> in) {
    const frame f = decode(in);
    check(f.ok() == (f.error == decode_error::none), "ok() disagrees with error");
    if (!f.ok()) {
        check(f.error != decode_error::none && static_cast<std::size_t>(f.error) <= decode_error_count,
              "invalid frame without a known error");
        check(to_string(f.error) != "unknown", "decode error without a name");
        return;
    }
    bytes again(2048);
    std::size_t n = 0;
    switch (f.kind) {
    case frame_kind::heartbeat: {
        const hb_msg& h = f.hb;
        check_inside(h.payload, in, "heartbeat payload outside the input");
        check_inside(h.covered, in, "heartbeat tag cover outside the input");
        check_inside(h.tag, in, "heartbeat tag outside the input");
        check(h.payload.size() <= (h.type == hb_type::bundle ? hb_max_bundle_payload : hb_max_payload),
              "payload longer than hb_max_payload accepted");
        // A bundle's entries: each one the sender's bare probe, ack or announce, in the
        // bundle, and re-encoded as a bundle they give back the same entries.
        if (h.type == hb_type::bundle) {
            std::vector<hb_msg> es;
            std::size_t used = 0;
            for (std::size_t off = 0; off < h.payload.size();) {
                hb_msg e;
                const std::size_t next = next_bundle_entry(h, off, e);
                check(next > off && next <= h.payload.size(), "a bundle walk that does not advance inside it");
                check_inside(e.payload, in, "bundle entry payload outside the input");
                check(bundlable(e) && e.node_id == h.node_id && e.incarnation == h.incarnation,
                      "a bundle entry that cannot ride was accepted");
                used += bundle_entry_size(e);
                off = next;
                es.push_back(e);
            }
            check(!es.empty() && es.size() <= hb_bundle_max_entries && used == h.payload.size(), "bundle entries do not fill it");
            bytes rb(2048);
            const std::size_t rn = encode_bundle(f.eth.dst, f.eth.src, h, es, rb);
            check(rn != 0, "a decoded bundle does not encode");
            const frame rg = decode({rb.data(), rn});
            check(rg.ok() && rg.hb.payload.size() == h.payload.size(), "a re-encoded bundle does not decode");
            std::size_t off = 0;
            for (const hb_msg& y : es) {
                hb_msg x;
                off = next_bundle_entry(rg.hb, off, x);
                check(x.type == y.type && x.seq == y.seq && x.ack_seq == y.ack_seq && x.group == y.group && x.epoch == y.epoch &&
                          x.ts_ns == y.ts_ns && x.ts_echo_ns == y.ts_echo_ns && x.flags == y.flags && x.role == y.role &&
                          x.priority == y.priority && same_bytes(x.payload, y.payload),
                      "bundle entry round trip differs");
            }
        }
        check_tag(h);
        // The tag covers every byte before it, from the Ethernet header on.
        check(h.covered.data() == in.data(), "tag cover does not start at the frame");
        check(h.tag.empty() || h.covered.data() + h.covered.size() == h.tag.data(), "tag does not follow its cover");
        check(is_valid_hb_type(static_cast<std::uint8_t>(h.type)) && h.role <= max_wire_role,
              "heartbeat with a bad type or role accepted");
        n = encode_heartbeat(f.eth.dst, f.eth.src, h, again);
        check(n != 0, "a decoded heartbeat does not encode");
        const frame g = decode({again.data(), n});
        check(g.kind == frame_kind::heartbeat, "a re-encoded heartbeat does not decode");
        check_same_hb(h, g.hb);
        check_tag(g.hb);
        // Byte for byte what the tag covers, except the reserved field the decoder skips
        // (a later version may use it; the encoder writes zeros).
        check(h.covered.size() == g.hb.covered.size(), "tag cover length differs after a round trip");
        bytes a(h.covered.begin(), h.covered.end()), b(g.hb.covered.begin(), g.hb.covered.end());
        for (std::size_t i = eth_header::size() + hb_reserved_offset; i < eth_header::size() + hb_header_size && i < a.size(); ++i)
            a[i] = b[i] = std::byte{0};
        check(a == b, "tag cover bytes differ after a round trip");
        // In place: the payload span points into the very buffer being written.
        bytes inplace(in.begin(), in.end());
        inplace.resize(std::max(inplace.size(), n));
        const frame src = decode({inplace.data(), in.size()});
        const std::size_t m = encode_heartbeat(src.eth.dst, src.eth.src, src.hb, inplace);
        check(m == n && same_bytes({inplace.data(), m}, {again.data(), n}), "in-place heartbeat encode differs");
        break;
    }
    case frame_kind::arp: {
        n = encode_arp(f.eth.dst, f.eth.src, f.arp, again);
        check(n != 0, "a decoded ARP does not encode");
        const frame g = decode({again.data(), n});
        check(g.kind == frame_kind::arp, "a re-encoded ARP does not decode");
        check_same_arp(f.arp, g.arp);
        break;
    }
    case frame_kind::icmp_echo: {
        check_inside(f.echo.payload, in, "ICMP payload outside the input");
        n = encode_icmp_echo(f.eth.dst, f.eth.src, f.echo, again);
        check(n != 0, "a decoded echo does not encode");
        const frame g = decode({again.data(), n});
        check(g.kind == frame_kind::icmp_echo, "a re-encoded echo does not decode");
        check_same_echo(f.echo, g.echo);
        // The reply the engine builds over the request (reflect_echo), payload in place.
        bytes inplace(in.begin(), in.end());
        inplace.resize(std::max(inplace.size(), n));
        frame req = decode({inplace.data(), in.size()});
        const bytes payload(req.echo.payload.begin(), req.echo.payload.end());
        icmp_echo reply = req.echo;
        reply.is_reply = true;
        std::swap(reply.src, reply.dst);
        const std::size_t m = encode_icmp_echo(req.eth.src, req.eth.dst, reply, inplace);
        check(m == n, "in-place echo reply has another length");
        const frame r = decode({inplace.data(), m});
        check(r.kind == frame_kind::icmp_echo && r.echo.is_reply && r.echo.src == f.echo.dst &&
                  same_bytes(r.echo.payload, payload),
              "in-place echo reply lost its payload or addresses");
        break;
    }
    case frame_kind::nd: {
        const nd_msg& m = f.nd;
        check(nd_valid(m), "an ND message breaking RFC 4861 7.1 accepted");
        n = m.is_advert ? encode_na(f.eth.dst, f.eth.src, m, again) : encode_ns(f.eth.dst, f.eth.src, m, again);
        check(n != 0, "a decoded ND message does not encode");
        const frame g = decode({again.data(), n});
        check(g.kind == frame_kind::nd, "a re-encoded ND message does not decode");
        check_same_nd(m, g.nd);
        if (m.is_advert) break;
        // The answer the engine builds over the solicitation, in place.
        bytes inplace(in.begin(), in.end());
        inplace.resize(std::max<std::size_t>(inplace.size(), 256));
        const frame ns = decode({inplace.data(), in.size()});
        const mac_addr self{{0x02, 0x68, 0x77, 0, 0, 1}};
        const std::size_t k = encode_na_answer(ns, self, inplace);
        check(k != 0, "a valid NS gets no answer");
        const frame a = decode({inplace.data(), k});
        check(a.kind == frame_kind::nd && a.nd.is_advert && a.nd.target == m.target && a.nd.src == m.target &&
                  a.nd.override_ && a.nd.has_lladdr && a.nd.lladdr == self && a.eth.src == self,
              "NA answer: wrong target, source or option");
        if (m.src.is_zero())
            check(a.nd.dst == ipv6_addr::all_nodes() && !a.nd.solicited && a.eth.dst == a.nd.dst.multicast_mac(),
                  "answer to a DAD NS is not an unsolicited NA to all nodes");
        else
            check(a.nd.dst == m.src && a.nd.solicited && a.eth.dst == (m.has_lladdr ? m.lladdr : f.eth.src),
                  "answer to an NS is not a solicited NA back to its sender");
        break;
    }
    case frame_kind::icmp6_echo: {
        check_inside(f.echo6.payload, in, "ICMPv6 payload outside the input");
        check(!f.echo6.src.is_multicast(), "an echo from a multicast source accepted");
        n = encode_icmp6_echo(f.eth.dst, f.eth.src, f.echo6, again);
        check(n != 0, "a decoded ICMPv6 echo does not encode");
        const frame g = decode({again.data(), n});
        check(g.kind == frame_kind::icmp6_echo, "a re-encoded ICMPv6 echo does not decode");
        check_same_echo6(f.echo6, g.echo6);
        // The reply built over the request, payload in place. An echo to a group is answered
        // from a unicast address, so swapping addresses is refused there.
        bytes inplace(in.begin(), in.end());
        inplace.resize(std::max(inplace.size(), n));
        frame req = decode({inplace.data(), in.size()});
        const bytes payload(req.echo6.payload.begin(), req.echo6.payload.end());
        icmp6_echo reply = req.echo6;
        reply.is_reply = true;
        std::swap(reply.src, reply.dst);
        const std::size_t m = encode_icmp6_echo(req.eth.src, req.eth.dst, reply, inplace);
        if (f.echo6.dst.is_multicast()) {
            check(m == 0, "an echo reply from a multicast source encoded");
            break;
        }
        check(m == n, "in-place ICMPv6 echo reply has another length");
        const frame r = decode({inplace.data(), m});
        check(r.kind == frame_kind::icmp6_echo && r.echo6.is_reply && r.echo6.src == f.echo6.dst &&
                  same_bytes(r.echo6.payload, payload),
              "in-place ICMPv6 echo reply lost its payload or addresses");
        break;
    }
    case frame_kind::invalid:
        break;
    }
}

// ---------------------------------------------------------------- 2. encoders from fuzz fields

mac_addr take_mac(FuzzedDataProvider& d) {
    mac_addr m;
    for (auto& b : m.b) b = d.ConsumeIntegral<std::uint8_t>();
    return m;
}

void encode_from_fields(FuzzedDataProvider& d) {
    const mac_addr dst = take_mac(d), src = take_mac(d);
    const std::size_t extra = d.ConsumeIntegralInRange<std::size_t>(0, 1600);

    hb_msg h;
    // 0 to 13 but the bundle (12: its payload is entries, checked through the decoder's
    // round trip above): one invalid type on each side of the list.
    const std::uint8_t t = d.ConsumeIntegral<std::uint8_t>() % 14;
    h.type = static_cast<hb_type>(t == 12 ? 13 : t);
    h.role = d.ConsumeIntegral<std::uint8_t>() % 10;
    h.priority = d.ConsumeIntegral<std::uint8_t>();
    h.node_id = d.ConsumeIntegral<std::uint32_t>();
    h.epoch = d.ConsumeIntegral<std::uint64_t>();
    h.seq = d.ConsumeIntegral<std::uint64_t>();
    h.ack_seq = d.ConsumeIntegral<std::uint64_t>();
    h.ts_ns = d.ConsumeIntegral<std::uint64_t>();
    h.ts_echo_ns = d.ConsumeIntegral<std::uint64_t>();
    h.flags = d.ConsumeIntegral<std::uint16_t>();
    h.group = d.ConsumeIntegral<std::uint32_t>();
    h.incarnation = d.ConsumeIntegral<std::uint64_t>();
    h.key_id = d.ConsumeIntegral<std::uint8_t>();
    h.auth_alg = d.ConsumeBool() ? d.ConsumeIntegral<std::uint8_t>() : 0;
    const bytes payload = d.ConsumeBytes<std::byte>(d.ConsumeIntegralInRange<std::size_t>(0, hb_max_payload + 8));
    h.payload = payload;

    const bytes hb = encode_checked([&](std::span<std::byte> out) { return encode_heartbeat(dst, src, h, out); }, extra);
    const bool encodable = is_valid_hb_type(static_cast<std::uint8_t>(h.type)) && h.role <= max_wire_role &&
                           payload.size() <= hb_max_payload;
    check(hb.empty() != encodable, "encode_heartbeat refused a valid message or took an invalid one");
    if (!hb.empty()) {
        const frame g = decode(hb);
        check(g.kind == frame_kind::heartbeat, "an encoded heartbeat does not decode");
        check(g.eth.dst == dst && g.eth.src == src, "heartbeat MACs lost");
        check_same_hb(h, g.hb);
        check_tag(g.hb);
    }

    arp_msg a;
    a.op = d.ConsumeBool() ? d.ConsumeIntegral<std::uint16_t>() : static_cast<std::uint16_t>(1 + d.ConsumeBool());
    a.sha = take_mac(d);
    a.spa = ipv4_addr{d.ConsumeIntegral<std::uint32_t>()};
    a.tha = take_mac(d);
    a.tpa = ipv4_addr{d.ConsumeIntegral<std::uint32_t>()};
    const bytes arp = encode_checked([&](std::span<std::byte> out) { return encode_arp(dst, src, a, out); }, extra);
    check(arp.empty() == (a.op != arp_op_request && a.op != arp_op_reply), "encode_arp op rule");
    if (!arp.empty()) {
        const frame g = decode(arp);
        check(g.kind == frame_kind::arp, "an encoded ARP does not decode");
        check_same_arp(a, g.arp);
    }
    for (const bytes& b : {encode_checked([&](std::span<std::byte> out) { return encode_garp(src, a.spa, out); }, extra),
                           encode_checked([&](std::span<std::byte> out) { return encode_arp_probe(src, a.tpa, out); }, extra)}) {
        const frame g = decode(b);
        check(g.kind == frame_kind::arp && g.arp.sha == src && g.eth.dst == mac_addr::broadcast(),
              "GARP / ARP probe does not decode as a broadcast ARP from src");
    }

    icmp_echo e;
    e.is_reply = d.ConsumeBool();
    e.src = ipv4_addr{d.ConsumeIntegral<std::uint32_t>()};
    e.dst = ipv4_addr{d.ConsumeIntegral<std::uint32_t>()};
    e.ttl = d.ConsumeIntegral<std::uint8_t>();
    e.id = d.ConsumeIntegral<std::uint16_t>();
    e.seq = d.ConsumeIntegral<std::uint16_t>();
    const bytes epay = d.ConsumeRemainingBytes<std::byte>();
    e.payload = epay;
    const bytes icmp = encode_checked([&](std::span<std::byte> out) { return encode_icmp_echo(dst, src, e, out); }, extra);
    check(!icmp.empty() || eth_header::size() + ipv4_min_header_size + icmp_header_size + epay.size() > 2048,
          "encode_icmp_echo refused a message that fits");
    if (!icmp.empty()) {
        const frame g = decode(icmp);
        check(g.kind == frame_kind::icmp_echo, "an encoded echo does not decode");
        check_same_echo(e, g.echo);
    }
}

// IPv6 fields from their own provider over the same bytes, so the IPv4 fields an input
// made before IPv6 existed stay what they were.
ipv6_addr take_ipv6(FuzzedDataProvider& d, const ipv6_addr& target) {
    switch (d.ConsumeIntegralInRange<int>(0, 5)) {
    case 0:
        return {};
    case 1:
        return ipv6_addr::all_nodes();
    case 2:
        return target.solicited_node();
    default: {
        ipv6_addr a;
        for (auto& b : a.b) b = d.ConsumeIntegral<std::uint8_t>();
        return a;
    }
    }
}

void encode6_from_fields(FuzzedDataProvider& d) {
    const mac_addr dst = take_mac(d), src = take_mac(d);
    const std::size_t extra = d.ConsumeIntegralInRange<std::size_t>(0, 1600);
    nd_msg m;
    m.is_advert = d.ConsumeBool();
    for (auto& b : m.target.b) b = d.ConsumeIntegral<std::uint8_t>();
    if (d.ConsumeBool()) m.target.b[0] = 0xfd; // mostly unicast targets
    m.src = take_ipv6(d, m.target);
    m.dst = take_ipv6(d, m.target);
    m.router = d.ConsumeBool();
    m.solicited = d.ConsumeBool();
    m.override_ = d.ConsumeBool();
    m.lladdr = take_mac(d);
    m.has_lladdr = d.ConsumeBool();
    m.hop_limit = d.ConsumeBool() ? nd_hop_limit : d.ConsumeIntegral<std::uint8_t>();

    const bytes na = encode_checked([&](std::span<std::byte> out) { return encode_na(dst, src, m, out); }, extra);
    nd_msg as_na = m;
    as_na.is_advert = true;
    check(na.empty() == !nd_valid(as_na), "encode_na refused a valid NA or took an invalid one");
    if (!na.empty()) {
        const frame g = decode(na);
        check(g.kind == frame_kind::nd && g.eth.dst == dst && g.eth.src == src, "an encoded NA does not decode");
        check_same_nd(as_na, g.nd);
    }
    nd_msg as_ns = m;
    as_ns.is_advert = false;
    const bytes ns = encode_checked([&](std::span<std::byte> out) { return encode_ns(dst, src, m, out); }, extra);
    check(ns.empty() == !nd_valid(as_ns), "encode_ns refused a valid NS or took an invalid one");
    const bytes ns_group = encode_checked([&](std::span<std::byte> out) { return encode_ns(src, m, out); }, extra);
    check(ns_group.empty() == (ns.empty() || !m.dst.is_multicast()), "encode_ns to a group: wrong refusal");
    for (const bytes* b : {&ns, &ns_group}) {
        if (b->empty()) continue;
        const frame g = decode(*b);
        check(g.kind == frame_kind::nd && !g.nd.is_advert, "an encoded NS does not decode");
        check_same_nd(as_ns, g.nd);
        check(is_dad_conflict(g, m.target, src) == false, "our own NS counted as a DAD conflict");
        check(is_dad_conflict(g, m.target, dst) == m.src.is_zero() || dst == src,
              "another node's NS: DAD conflict exactly when it is a DAD probe");
    }
    const bool target_ok = !m.target.is_multicast();
    const bytes una = encode_checked([&](std::span<std::byte> out) { return encode_unsolicited_na(src, m.target, out); }, extra);
    const bytes dad = encode_checked([&](std::span<std::byte> out) { return encode_dad_ns(src, m.target, out); }, extra);
    check(una.empty() != target_ok && dad.empty() != target_ok, "unsolicited NA / DAD NS refusal is not the target rule");
    if (target_ok) {
        const frame u = decode(una), p = decode(dad);
        check(u.kind == frame_kind::nd && u.nd.is_advert && u.nd.override_ && !u.nd.solicited && u.nd.lladdr == src &&
                  u.eth.dst == ipv6_addr::all_nodes().multicast_mac(),
              "unsolicited NA is not O=1 S=0 to all nodes with our MAC");
        check(p.kind == frame_kind::nd && p.nd.is_dad() && !p.nd.has_lladdr && p.nd.dst == m.target.solicited_node() &&
                  p.eth.dst == m.target.solicited_node().multicast_mac(),
              "DAD NS is not from :: to the solicited-node group without an option");
    }

    icmp6_echo e;
    e.is_reply = d.ConsumeBool();
    e.src = take_ipv6(d, m.target);
    e.dst = take_ipv6(d, m.target);
    e.hop_limit = d.ConsumeIntegral<std::uint8_t>();
    e.id = d.ConsumeIntegral<std::uint16_t>();
    e.seq = d.ConsumeIntegral<std::uint16_t>();
    const bytes epay = d.ConsumeRemainingBytes<std::byte>();
    e.payload = epay;
    const bytes echo = encode_checked([&](std::span<std::byte> out) { return encode_icmp6_echo(dst, src, e, out); }, extra);
    check(echo.empty() == (e.src.is_multicast() || eth_header::size() + ipv6_header_size + icmp6_header_size + epay.size() > 2048),
          "encode_icmp6_echo refused a message that fits or took one from a group");
    if (!echo.empty()) {
        const frame g = decode(echo);
        check(g.kind == frame_kind::icmp6_echo, "an encoded ICMPv6 echo does not decode");
        check_same_echo6(e, g.echo6);
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::span<const std::byte> in(reinterpret_cast<const std::byte*>(data), size);
    decode_and_reencode(in);
    FuzzedDataProvider d(data, size);
    encode_from_fields(d);
    FuzzedDataProvider d6(data, size);
    encode6_from_fields(d6);
    return 0;
}
