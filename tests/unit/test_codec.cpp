// Wire codec tests. Golden vectors are hex written by hand from the layouts in wire.hpp
// (RFC 826, RFC 5227, RFC 791/792 and the heartwire diagram), never produced by the encoder.
// The ICMP vectors' checksums were computed with an independent Python script and confirmed
// by `tcpdump -vvv`, which flags a bad IPv4 or ICMP checksum; the "kernel_" vectors were
// captured from Linux itself (ping and arping across a veth pair).

#include "heartwire/wire.hpp"

#include <gtest/gtest.h>

#include "hex_bytes.hpp"

#include <algorithm>
#include <cstring>
#include <functional>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace {

using namespace heartwire;
using namespace heartwire::wire;
using bytes = std::vector<std::byte>;

// ---------------------------------------------------------------- helpers

using hwtest::hex;
using hwtest::to_hex;

bytes text(std::string_view s) {
    bytes out(s.size());
    std::memcpy(out.data(), s.data(), s.size());
    return out;
}

std::span<const std::byte> as_span(const bytes& b) { return {b.data(), b.size()}; }
// A decoded frame points into its input: refuse temporaries so no test decodes a buffer
// that is freed before the frame is read.
void as_span(bytes&&) = delete;

// Straight RFC 1071 over big-endian 16-bit words: the reference the test trusts.
std::uint16_t ref_checksum(std::span<const std::byte> d) {
    std::uint64_t s = 0;
    for (std::size_t i = 0; i < d.size(); i += 2) {
        const unsigned hi = std::to_integer<unsigned>(d[i]);
        const unsigned lo = i + 1 < d.size() ? std::to_integer<unsigned>(d[i + 1]) : 0;
        s += hi << 8 | lo;
    }
    while (s >> 16) s = (s & 0xffff) + (s >> 16);
    return static_cast<std::uint16_t>(~s & 0xffff);
}

void put16(bytes& f, std::size_t off, std::uint16_t v) { store_be16(f.data() + off, v); }
std::uint16_t get16(const bytes& f, std::size_t off) { return load_be16(f.data() + off); }

// Recompute the IPv4 header checksum of an Ethernet frame in place (so a test can change
// one field and see the check that field is meant to trip, not the checksum).
void fix_ip_checksum(bytes& f) {
    const std::size_t ihl = (std::to_integer<std::size_t>(f[14]) & 15) * 4;
    put16(f, 24, 0);
    put16(f, 24, ref_checksum({f.data() + 14, ihl}));
}
void fix_icmp_checksum(bytes& f) {
    const std::size_t ihl = (std::to_integer<std::size_t>(f[14]) & 15) * 4;
    const std::size_t total = get16(f, 16);
    put16(f, 14 + ihl + 2, 0);
    put16(f, 14 + ihl + 2, ref_checksum({f.data() + 14 + ihl, total - ihl}));
}

constexpr mac_addr mac_a{{0x02, 0x00, 0x00, 0x00, 0x00, 0x01}}; // node 1, the primary
constexpr mac_addr mac_b{{0x02, 0x00, 0x00, 0x00, 0x00, 0x02}}; // node 2, the monitor
constexpr ipv4_addr ip_a{0xc0000201};                          // 192.0.2.1
constexpr ipv4_addr ip_b{0xc000020a};                          // 192.0.2.10
constexpr ipv4_addr ip_vip{0xc0000264};                        // 192.0.2.100, the primary address

template <class F> bytes encode_into(F&& fn, std::size_t capacity = 2048) {
    bytes buf(capacity, std::byte{0xa5}); // non-zero so missing padding shows
    const std::size_t n = fn(std::span<std::byte>(buf));
    buf.resize(n);
    return buf;
}

bool same_bytes(std::span<const std::byte> a, std::span<const std::byte> b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin());
}

// ---------------------------------------------------------------- golden vectors

// ARP request, 192.0.2.1 asks who has 192.0.2.10, padded to 60.
constexpr std::string_view golden_arp_request =
    "ffffffffffff 020000000001 0806"
    "0001 0800 06 04 0001"
    "020000000001 c0000201"
    "000000000000 c000020a"
    "000000000000000000000000000000000000";

// ARP reply, 192.0.2.10 is-at 02:00:00:00:00:02, unicast back to the asker.
constexpr std::string_view golden_arp_reply =
    "020000000001 020000000002 0806"
    "0001 0800 06 04 0002"
    "020000000002 c000020a"
    "020000000001 c0000201"
    "000000000000000000000000000000000000";

// RFC 5227 announcement of 192.0.2.100: request, spa = tpa, tha zero, broadcast.
constexpr std::string_view golden_garp =
    "ffffffffffff 020000000001 0806"
    "0001 0800 06 04 0001"
    "020000000001 c0000264"
    "000000000000 c0000264"
    "000000000000000000000000000000000000";

// RFC 5227 probe for 192.0.2.100: spa zero, tha zero, broadcast.
constexpr std::string_view golden_arp_probe =
    "ffffffffffff 020000000001 0806"
    "0001 0800 06 04 0001"
    "020000000001 00000000"
    "000000000000 c0000264"
    "000000000000000000000000000000000000";

// Echo request 192.0.2.1 -> 192.0.2.10, TTL 64, DF, id 0x1234 seq 1, payload "heartwire"
// (odd length, so the ICMP checksum covers a zero-padded last word), padded to 60.
constexpr std::string_view golden_echo_request =
    "020000000002 020000000001 0800"
    "45 00 0025 0000 4000 40 01 b6cc c0000201 c000020a"
    "08 00 d908 1234 0001"
    "686561727477697265"
    "000000000000000000";

constexpr std::string_view golden_echo_reply =
    "020000000001 020000000002 0800"
    "45 00 0025 0000 4000 40 01 b6cc c000020a c0000201"
    "00 00 e108 1234 0001"
    "686561727477697265"
    "000000000000000000";

// Echo request with 32 payload bytes (no padding), TTL 255, id and seq with the top bit set.
constexpr std::string_view golden_echo_request_32 =
    "020000000002 020000000001 0800"
    "45 00 003c 0000 4000 ff 01 f7b4 c0000201 c000020a"
    "08 00 c80d beef 8001"
    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

// Empty echo reply whose ICMP sum is zero: the stored checksum is 0xffff.
constexpr std::string_view golden_echo_reply_empty =
    "020000000001 020000000002 0800"
    "45 00 001c 0000 4000 01 01 f5d5 c000020a c0000201"
    "00 00 ffff 0000 0000"
    "000000000000000000000000000000000000";

// Captured from Linux 6.x: `ping -s 20 -p 6865617274776972` and its reply (unpadded, as
// seen on a veth). The reply has DF clear and a non-zero IP id, which must be accepted.
constexpr std::string_view kernel_echo_request =
    "0200 0000 0002 0200 0000 0001 0800 4500"
    "0030 e51e 4000 4001 d1a2 c000 0201 c000"
    "020a 0800 d23f 231b 0001 ac9e 036b 0000"
    "0000 7ec2 0a00 0000 0000 6865 6172";
constexpr std::string_view kernel_echo_reply =
    "0200 0000 0001 0200 0000 0002 0800 4500"
    "0030 bd95 0000 4001 392c c000 020a c000"
    "0201 0000 da3f 231b 0001 ac9e 036b 0000"
    "0000 7ec2 0a00 0000 0000 6865 6172";
// `arping` (tha broadcast) and the kernel's reply, 42 bytes each.
constexpr std::string_view kernel_arp_request =
    "ffff ffff ffff 0200 0000 0001 0806 0001"
    "0800 0604 0001 0200 0000 0001 c000 0201"
    "ffff ffff ffff c000 020a";
constexpr std::string_view kernel_arp_reply =
    "0200 0000 0001 0200 0000 0002 0806 0001"
    "0800 0604 0002 0200 0000 0002 c000 020a"
    "0200 0000 0001 c000 0201";

// One realistic heartbeat per type. Node 1 (02:..:01, priority 200) is the primary,
// node 2 (02:..:02, priority 100) the monitor; roles are the state numbers of DESIGN.md
// (2 primary, 4 monitor, 5 standby, 6 draining, 8 fault). Sent to the heartwire group.
constexpr std::uint8_t hb_payload_raw[] = {0x68, 0x77, 0x21, 0x00, 0xff};
constexpr std::string_view hb_payload_hex = "6877 2100ff";

struct hb_golden {
    const char* what;
    mac_addr src;
    hb_msg msg; // payload empty; the "with payload" vector carries hb_payload_raw
    std::string_view no_payload;
    std::string_view with_payload;
};

hb_msg hb(hb_type t, std::uint8_t role, std::uint8_t prio, std::uint32_t node, std::uint64_t epoch,
          std::uint64_t seq, std::uint64_t ack, std::uint64_t ts, std::uint64_t echo, std::uint16_t flags) {
    hb_msg m;
    m.type = t;
    m.role = role;
    m.priority = prio;
    m.node_id = node;
    m.epoch = epoch;
    m.seq = seq;
    m.ack_seq = ack;
    m.ts_ns = ts;
    m.ts_echo_ns = echo;
    m.flags = flags;
    m.group = 1;
    m.incarnation = 0x1880f3a2b4c5d6e7; // a boot's realtime ns
    return m;
}

const std::vector<hb_golden>& hb_goldens() {
    static const std::vector<hb_golden> g = {
        {"monitor probes the primary", mac_b,
         hb(hb_type::probe, 4, 100, 2, 7, 1000, 0, 0x0102030405060708, 0, hb_flag_holds_monitor),
         // dst          src          type | ver type role prio | node id
         "036877000001 020000000002 88b5 | 02 01 04 64 | 00000002"
         // epoch          seq              ack seq
         "0000000000000007 00000000000003e8 0000000000000000"
         // ts             ts echo          | flags len | reserved
         "0102030405060708 0000000000000000 | 0002 0000 | 00000001 1880f3a2b4c5d6e7 | 00 00 000000000000",
         "036877000001 020000000002 88b5 | 02 01 04 64 | 00000002"
         "0000000000000007 00000000000003e8 0000000000000000"
         "0102030405060708 0000000000000000 | 0002 0005 | 00000001 1880f3a2b4c5d6e7 | 00 00 000000000000 | 6877 2100ff"},
        {"primary acks the probe, echoing seq and timestamp", mac_a,
         hb(hb_type::ack, 2, 200, 1, 7, 5000, 1000, 0x1112131415161718, 0x0102030405060708,
            hb_flag_holds_primary | hb_flag_in_sync),
         "036877000001 020000000001 88b5 | 02 02 02 c8 | 00000001"
         "0000000000000007 0000000000001388 00000000000003e8"
         "1112131415161718 0102030405060708 | 0011 0000 | 00000001 1880f3a2b4c5d6e7 | 00 00 000000000000",
         "036877000001 020000000001 88b5 | 02 02 02 c8 | 00000001"
         "0000000000000007 0000000000001388 00000000000003e8"
         "1112131415161718 0102030405060708 | 0011 0005 | 00000001 1880f3a2b4c5d6e7 | 00 00 000000000000 | 6877 2100ff"},
        {"primary announces its role and epoch", mac_a,
         hb(hb_type::announce, 2, 200, 1, 7, 5001, 0, 0x2122232425262728, 0, hb_flag_holds_primary),
         "036877000001 020000000001 88b5 | 02 03 02 c8 | 00000001"
         "0000000000000007 0000000000001389 0000000000000000"
         "2122232425262728 0000000000000000 | 0001 0000 | 00000001 1880f3a2b4c5d6e7 | 00 00 000000000000",
         "036877000001 020000000001 88b5 | 02 03 02 c8 | 00000001"
         "0000000000000007 0000000000001389 0000000000000000"
         "2122232425262728 0000000000000000 | 0001 0005 | 00000001 1880f3a2b4c5d6e7 | 00 00 000000000000 | 6877 2100ff"},
        {"new primary tells the old one to stay down", mac_b,
         hb(hb_type::stay_down, 2, 100, 2, 8, 1001, 0, 0x3132333435363738, 0, hb_flag_holds_primary),
         "036877000001 020000000002 88b5 | 02 04 02 64 | 00000002"
         "0000000000000008 00000000000003e9 0000000000000000"
         "3132333435363738 0000000000000000 | 0001 0000 | 00000001 1880f3a2b4c5d6e7 | 00 00 000000000000",
         "036877000001 020000000002 88b5 | 02 04 02 64 | 00000002"
         "0000000000000008 00000000000003e9 0000000000000000"
         "3132333435363738 0000000000000000 | 0001 0005 | 00000001 1880f3a2b4c5d6e7 | 00 00 000000000000 | 6877 2100ff"},
        {"operator switchover request from the monitor", mac_b,
         hb(hb_type::takeover_req, 4, 100, 2, 7, 1002, 0, 0x4142434445464748, 0, hb_flag_holds_monitor),
         "036877000001 020000000002 88b5 | 02 05 04 64 | 00000002"
         "0000000000000007 00000000000003ea 0000000000000000"
         "4142434445464748 0000000000000000 | 0002 0000 | 00000001 1880f3a2b4c5d6e7 | 00 00 000000000000",
         "036877000001 020000000002 88b5 | 02 05 04 64 | 00000002"
         "0000000000000007 00000000000003ea 0000000000000000"
         "4142434445464748 0000000000000000 | 0002 0005 | 00000001 1880f3a2b4c5d6e7 | 00 00 000000000000 | 6877 2100ff"},
        {"monitor asks the primary to drain", mac_b,
         hb(hb_type::shutdown_req, 4, 100, 2, 7, 1003, 0, 0x5152535455565758, 0, hb_flag_holds_monitor),
         "036877000001 020000000002 88b5 | 02 06 04 64 | 00000002"
         "0000000000000007 00000000000003eb 0000000000000000"
         "5152535455565758 0000000000000000 | 0002 0000 | 00000001 1880f3a2b4c5d6e7 | 00 00 000000000000",
         "036877000001 020000000002 88b5 | 02 06 04 64 | 00000002"
         "0000000000000007 00000000000003eb 0000000000000000"
         "5152535455565758 0000000000000000 | 0002 0005 | 00000001 1880f3a2b4c5d6e7 | 00 00 000000000000 | 6877 2100ff"},
        {"draining primary reports it is done", mac_a,
         hb(hb_type::drained, 6, 200, 1, 7, 5002, 1003, 0x6162636465666768, 0x5152535455565758,
            hb_flag_holds_primary),
         "036877000001 020000000001 88b5 | 02 07 06 c8 | 00000001"
         "0000000000000007 000000000000138a 00000000000003eb"
         "6162636465666768 5152535455565758 | 0001 0000 | 00000001 1880f3a2b4c5d6e7 | 00 00 000000000000",
         "036877000001 020000000001 88b5 | 02 07 06 c8 | 00000001"
         "0000000000000007 000000000000138a 00000000000003eb"
         "6162636465666768 5152535455565758 | 0001 0005 | 00000001 1880f3a2b4c5d6e7 | 00 00 000000000000 | 6877 2100ff"},
        {"faulty primary reports its fault", mac_a,
         hb(hb_type::fault_report, 8, 200, 1, 7, 5003, 0, 0x7172737475767778, 0,
            hb_flag_holds_primary | hb_flag_fault),
         "036877000001 020000000001 88b5 | 02 08 08 c8 | 00000001"
         "0000000000000007 000000000000138b 0000000000000000"
         "7172737475767778 0000000000000000 | 0005 0000 | 00000001 1880f3a2b4c5d6e7 | 00 00 000000000000",
         "036877000001 020000000001 88b5 | 02 08 08 c8 | 00000001"
         "0000000000000007 000000000000138b 0000000000000000"
         "7172737475767778 0000000000000000 | 0005 0005 | 00000001 1880f3a2b4c5d6e7 | 00 00 000000000000 | 6877 2100ff"},
        {"monitor answers it can take over", mac_b,
         hb(hb_type::fault_answer, 4, 100, 2, 7, 1004, 5003, 0x8182838485868788, 0x7172737475767778,
            hb_flag_holds_monitor | hb_flag_can_take_over),
         "036877000001 020000000002 88b5 | 02 09 04 64 | 00000002"
         "0000000000000007 00000000000003ec 000000000000138b"
         "8182838485868788 7172737475767778 | 000a 0000 | 00000001 1880f3a2b4c5d6e7 | 00 00 000000000000",
         "036877000001 020000000002 88b5 | 02 09 04 64 | 00000002"
         "0000000000000007 00000000000003ec 000000000000138b"
         "8182838485868788 7172737475767778 | 000a 0005 | 00000001 1880f3a2b4c5d6e7 | 00 00 000000000000 | 6877 2100ff"},
        {"node releases its address on clean shutdown", mac_a,
         hb(hb_type::release, 5, 200, 1, 7, 5004, 0, 0x9192939495969798, 0, 0),
         "036877000001 020000000001 88b5 | 02 0a 05 c8 | 00000001"
         "0000000000000007 000000000000138c 0000000000000000"
         "9192939495969798 0000000000000000 | 0000 0000 | 00000001 1880f3a2b4c5d6e7 | 00 00 000000000000",
         "036877000001 020000000001 88b5 | 02 0a 05 c8 | 00000001"
         "0000000000000007 000000000000138c 0000000000000000"
         "9192939495969798 0000000000000000 | 0000 0005 | 00000001 1880f3a2b4c5d6e7 | 00 00 000000000000 | 6877 2100ff"},
        {"a dead primary's guard sends its engine-down notice", mac_a,
         hb(hb_type::engine_down, 2, 200, 1, 7, 5005, 0, 0xa1a2a3a4a5a6a7a8, 0, hb_flag_holds_primary),
         "036877000001 020000000001 88b5 | 02 0b 02 c8 | 00000001"
         "0000000000000007 000000000000138d 0000000000000000"
         "a1a2a3a4a5a6a7a8 0000000000000000 | 0001 0000 | 00000001 1880f3a2b4c5d6e7 | 00 00 000000000000",
         "036877000001 020000000001 88b5 | 02 0b 02 c8 | 00000001"
         "0000000000000007 000000000000138d 0000000000000000"
         "a1a2a3a4a5a6a7a8 0000000000000000 | 0001 0005 | 00000001 1880f3a2b4c5d6e7 | 00 00 000000000000 | 6877 2100ff"},
        {"replication from the primary to its monitor (store 2 in ack seq)", mac_a,
         hb(hb_type::state, 2, 200, 1, 7, 5006, 2, 0xa1a2a3a4a5a6a7a9, 0, hb_flag_holds_primary | hb_flag_in_sync),
         "036877000001 020000000001 88b5 | 02 0d 02 c8 | 00000001"
         "0000000000000007 000000000000138e 0000000000000002"
         "a1a2a3a4a5a6a7a9 0000000000000000 | 0011 0000 | 00000001 1880f3a2b4c5d6e7 | 00 00 000000000000",
         "036877000001 020000000001 88b5 | 02 0d 02 c8 | 00000001"
         "0000000000000007 000000000000138e 0000000000000002"
         "a1a2a3a4a5a6a7a9 0000000000000000 | 0011 0005 | 00000001 1880f3a2b4c5d6e7 | 00 00 000000000000 | 6877 2100ff"},
    };
    return g;
}

// Every field a distinct byte pattern, so a swapped or misplaced field cannot hide.
constexpr std::string_view golden_hb_byte_order =
    "036877000001 020000000001 88b5 | 02 03 08 fe | a1a2a3a4"
    "b1b2b3b4b5b6b7b8 c1c2c3c4c5c6c7c8 d1d2d3d4d5d6d7d8"
    "e1e2e3e4e5e6e7e8 f1f2f3f4f5f6f7f8 | 1234 0000 | 31323334 4142434445464748 | 51 00 000000000000";

void expect_hb_eq(const hb_msg& got, const hb_msg& want) {
    EXPECT_EQ(got.type, want.type);
    EXPECT_EQ(got.role, want.role);
    EXPECT_EQ(got.priority, want.priority);
    EXPECT_EQ(got.node_id, want.node_id);
    EXPECT_EQ(got.epoch, want.epoch);
    EXPECT_EQ(got.seq, want.seq);
    EXPECT_EQ(got.ack_seq, want.ack_seq);
    EXPECT_EQ(got.ts_ns, want.ts_ns);
    EXPECT_EQ(got.ts_echo_ns, want.ts_echo_ns);
    EXPECT_EQ(got.flags, want.flags);
    EXPECT_EQ(got.group, want.group);
    EXPECT_EQ(got.incarnation, want.incarnation);
    EXPECT_EQ(got.key_id, want.key_id);
    EXPECT_EQ(got.auth_alg, want.auth_alg);
    EXPECT_TRUE(same_bytes(got.payload, want.payload))
        << to_hex(got.payload) << " vs " << to_hex(want.payload);
}

// ---------------------------------------------------------------- ARP goldens

TEST(CodecGoldenArp, RequestEncodesToTheRfc826Layout) {
    arp_msg m{arp_op_request, mac_a, ip_a, mac_addr{}, ip_b};
    EXPECT_EQ(to_hex(encode_into([&](auto o) { return encode_arp(mac_addr::broadcast(), mac_a, m, o); })),
              to_hex(hex(golden_arp_request)));
}

TEST(CodecGoldenArp, ReplyEncodesToTheRfc826Layout) {
    arp_msg m{arp_op_reply, mac_b, ip_b, mac_a, ip_a};
    EXPECT_EQ(to_hex(encode_into([&](auto o) { return encode_arp(mac_a, mac_b, m, o); })),
              to_hex(hex(golden_arp_reply)));
}

TEST(CodecGoldenArp, GratuitousArpIsAnRfc5227Announcement) {
    EXPECT_EQ(to_hex(encode_into([&](auto o) { return encode_garp(mac_a, ip_vip, o); })),
              to_hex(hex(golden_garp)));
    const auto f_bytes = hex(golden_garp);
    const auto f = decode(as_span(f_bytes));
    ASSERT_TRUE(f.ok()) << to_string(f.error);
    EXPECT_TRUE(f.arp.is_gratuitous());
    EXPECT_FALSE(f.arp.is_probe());
}

TEST(CodecGoldenArp, ProbeHasZeroSenderAddressSoNoCacheLearnsIt) {
    EXPECT_EQ(to_hex(encode_into([&](auto o) { return encode_arp_probe(mac_a, ip_vip, o); })),
              to_hex(hex(golden_arp_probe)));
    const auto f_bytes = hex(golden_arp_probe);
    const auto f = decode(as_span(f_bytes));
    ASSERT_TRUE(f.ok()) << to_string(f.error);
    EXPECT_TRUE(f.arp.is_probe());
    EXPECT_FALSE(f.arp.is_gratuitous());
    EXPECT_EQ(f.arp.tpa, ip_vip);
}

TEST(CodecGoldenArp, DecodesEveryField) {
    const auto f_bytes = hex(golden_arp_reply);
    const auto f = decode(as_span(f_bytes));
    ASSERT_TRUE(f.ok()) << to_string(f.error);
    EXPECT_EQ(f.kind, frame_kind::arp);
    EXPECT_EQ(f.error, decode_error::none);
    EXPECT_EQ(f.eth.dst, mac_a);
    EXPECT_EQ(f.eth.src, mac_b);
    EXPECT_EQ(f.eth.ethertype, ethertype_arp);
    EXPECT_EQ(f.arp.op, arp_op_reply);
    EXPECT_EQ(f.arp.sha, mac_b);
    EXPECT_EQ(f.arp.spa, ip_b);
    EXPECT_EQ(f.arp.tha, mac_a);
    EXPECT_EQ(f.arp.tpa, ip_a);
}

TEST(CodecGoldenArp, DecodesWhatTheLinuxKernelAndArpingSend) {
    const auto req_bytes = hex(kernel_arp_request);
    const auto req = decode(as_span(req_bytes));
    ASSERT_TRUE(req.ok()) << to_string(req.error);
    EXPECT_EQ(req.arp.op, arp_op_request);
    EXPECT_EQ(req.arp.spa, ip_a);
    EXPECT_EQ(req.arp.tha, mac_addr::broadcast());
    EXPECT_EQ(req.arp.tpa, ip_b);

    const auto rep_bytes = hex(kernel_arp_reply);
    const auto rep = decode(as_span(rep_bytes));
    ASSERT_TRUE(rep.ok()) << to_string(rep.error);
    EXPECT_EQ(rep.arp.op, arp_op_reply);
    EXPECT_EQ(rep.arp.sha, mac_b);
    EXPECT_EQ(rep.arp.spa, ip_b);
}

// ---------------------------------------------------------------- ICMP goldens

TEST(CodecGoldenIcmp, ChecksumHelperMatchesTheIndependentlyComputedVectors) {
    // The vectors carry checksums from Python, confirmed by tcpdump; over a correct header
    // the Internet checksum is zero.
    for (auto v : {golden_echo_request, golden_echo_reply, golden_echo_request_32, golden_echo_reply_empty,
                   kernel_echo_request, kernel_echo_reply}) {
        const auto f = hex(v);
        const std::size_t total = get16(f, 16);
        EXPECT_EQ(inet_checksum({f.data() + 14, 20}), 0) << v;
        EXPECT_EQ(inet_checksum({f.data() + 34, total - 20}), 0) << v;
        EXPECT_EQ(ref_checksum({f.data() + 34, total - 20}), 0) << v;
    }
}

TEST(CodecGoldenIcmp, EchoRequestEncodesWithDfTtlAndBothChecksums) {
    const auto payload = text("heartwire");
    icmp_echo m{false, ip_a, ip_b, 64, 0x1234, 1, as_span(payload)};
    EXPECT_EQ(to_hex(encode_into([&](auto o) { return encode_icmp_echo(mac_b, mac_a, m, o); })),
              to_hex(hex(golden_echo_request)));
}

TEST(CodecGoldenIcmp, EchoReplyEncodesWithDfTtlAndBothChecksums) {
    const auto payload = text("heartwire");
    icmp_echo m{true, ip_b, ip_a, 64, 0x1234, 1, as_span(payload)};
    EXPECT_EQ(to_hex(encode_into([&](auto o) { return encode_icmp_echo(mac_a, mac_b, m, o); })),
              to_hex(hex(golden_echo_reply)));
}

TEST(CodecGoldenIcmp, LongerPayloadIsNotPaddedAndHighBitsKeepTheirOrder) {
    bytes payload(32);
    for (std::size_t i = 0; i < payload.size(); ++i) payload[i] = std::byte(i);
    icmp_echo m{false, ip_a, ip_b, 255, 0xbeef, 0x8001, as_span(payload)};
    EXPECT_EQ(to_hex(encode_into([&](auto o) { return encode_icmp_echo(mac_b, mac_a, m, o); })),
              to_hex(hex(golden_echo_request_32)));
}

TEST(CodecGoldenIcmp, EmptyReplyWhoseSumIsZeroStoresFfff) {
    icmp_echo m{true, ip_b, ip_a, 1, 0, 0, {}};
    EXPECT_EQ(to_hex(encode_into([&](auto o) { return encode_icmp_echo(mac_a, mac_b, m, o); })),
              to_hex(hex(golden_echo_reply_empty)));
    const auto empty = hex(golden_echo_reply_empty);
    EXPECT_TRUE(decode(as_span(empty)).ok());
}

TEST(CodecGoldenIcmp, DecodesEveryFieldAndIgnoresEthernetPadding) {
    const auto in = hex(golden_echo_request);
    const auto f = decode(as_span(in));
    ASSERT_TRUE(f.ok()) << to_string(f.error);
    EXPECT_EQ(f.kind, frame_kind::icmp_echo);
    EXPECT_EQ(f.eth.dst, mac_b);
    EXPECT_EQ(f.eth.src, mac_a);
    EXPECT_FALSE(f.echo.is_reply);
    EXPECT_EQ(f.echo.src, ip_a);
    EXPECT_EQ(f.echo.dst, ip_b);
    EXPECT_EQ(f.echo.ttl, 64);
    EXPECT_EQ(f.echo.id, 0x1234);
    EXPECT_EQ(f.echo.seq, 1);
    // The payload is the ICMP data only: the nine bytes of "heartwire", not the padding.
    EXPECT_EQ(to_hex(f.echo.payload), to_hex(text("heartwire")));
    EXPECT_EQ(f.echo.payload.data(), in.data() + 42);
}

TEST(CodecGoldenIcmp, DecodesWhatTheLinuxKernelSends) {
    const auto req_bytes = hex(kernel_echo_request);
    const auto req = decode(as_span(req_bytes));
    ASSERT_TRUE(req.ok()) << to_string(req.error);
    EXPECT_FALSE(req.echo.is_reply);
    EXPECT_EQ(req.echo.id, 0x231b);
    EXPECT_EQ(req.echo.seq, 1);
    EXPECT_EQ(req.echo.src, ip_a);
    EXPECT_EQ(req.echo.dst, ip_b);
    EXPECT_EQ(req.echo.payload.size(), 20u);

    const auto rep_bytes = hex(kernel_echo_reply);
    const auto rep = decode(as_span(rep_bytes));
    ASSERT_TRUE(rep.ok()) << to_string(rep.error);
    EXPECT_TRUE(rep.echo.is_reply);
    EXPECT_EQ(rep.echo.src, ip_b);
    EXPECT_EQ(rep.echo.ttl, 64);
    EXPECT_EQ(to_hex(rep.echo.payload), to_hex(req.echo.payload));
}

TEST(CodecGoldenIcmp, OurReplyToAKernelPingIsWhatTheKernelWouldSendBackModuloIdAndDf) {
    // Answering a ping for a held address: the reply must carry the request's id, seq and
    // payload; the kernel's own reply differs only in the IP id and DF bits (and so the
    // IP checksum), which heartwire sets to 0 and DF on purpose.
    const auto req_bytes = hex(kernel_echo_request);
    const auto req = decode(as_span(req_bytes));
    ASSERT_TRUE(req.ok());
    icmp_echo reply = req.echo;
    reply.is_reply = true;
    std::swap(reply.src, reply.dst);
    reply.ttl = 64;
    auto ours = encode_into([&](auto o) { return encode_icmp_echo(req.eth.src, req.eth.dst, reply, o); });
    auto kernels = hex(kernel_echo_reply);
    ASSERT_EQ(ours.size(), kernels.size());
    put16(kernels, 18, 0x0000); // IP id
    put16(kernels, 20, 0x4000); // DF
    fix_ip_checksum(kernels);
    EXPECT_EQ(to_hex(ours), to_hex(kernels));
}

// ---------------------------------------------------------------- heartbeat goldens

TEST(CodecGoldenHeartbeat, EveryTypeEncodesToItsHandWrittenVectorWithoutPayload) {
    for (const auto& g : hb_goldens()) {
        SCOPED_TRACE(g.what);
        EXPECT_EQ(to_hex(encode_into([&](auto o) {
                      return encode_heartbeat(mac_addr::heartwire_group(), g.src, g.msg, o);
                  })),
                  to_hex(hex(g.no_payload)));
    }
}

TEST(CodecGoldenHeartbeat, EveryTypeEncodesToItsHandWrittenVectorWithPayload) {
    for (const auto& g : hb_goldens()) {
        SCOPED_TRACE(g.what);
        hb_msg m = g.msg;
        m.payload = std::as_bytes(std::span(hb_payload_raw));
        EXPECT_EQ(to_hex(encode_into([&](auto o) {
                      return encode_heartbeat(mac_addr::heartwire_group(), g.src, m, o);
                  })),
                  to_hex(hex(g.with_payload)));
    }
}

TEST(CodecGoldenHeartbeat, EveryTypeDecodesFromItsVector) {
    std::set<hb_type> seen;
    for (const auto& g : hb_goldens()) {
        SCOPED_TRACE(g.what);
        const auto plain = hex(g.no_payload);
        const auto f = decode(as_span(plain));
        ASSERT_TRUE(f.ok()) << to_string(f.error);
        EXPECT_EQ(f.kind, frame_kind::heartbeat);
        EXPECT_EQ(f.eth.dst, mac_addr::heartwire_group());
        EXPECT_EQ(f.eth.src, g.src);
        EXPECT_EQ(f.eth.ethertype, ethertype_heartwire);
        expect_hb_eq(f.hb, g.msg);
        EXPECT_TRUE(f.hb.payload.empty());

        const auto loaded = hex(g.with_payload);
        const auto fp = decode(as_span(loaded));
        ASSERT_TRUE(fp.ok()) << to_string(fp.error);
        hb_msg want = g.msg;
        want.payload = std::as_bytes(std::span(hb_payload_raw));
        expect_hb_eq(fp.hb, want);
        EXPECT_EQ(to_hex(fp.hb.payload), to_hex(hex(hb_payload_hex)));
        EXPECT_EQ(fp.hb.payload.data(), loaded.data() + 86); // points into the input
        seen.insert(g.msg.type);
    }
    // The table covers the whole X-macro list but the bundle, whose payload is entries
    // (test_bundle.cpp).
    std::size_t count = 0;
#define HW_X(name, val) ++count;
    HEARTWIRE_HB_TYPES(HW_X)
#undef HW_X
    EXPECT_EQ(seen.size(), count - 1);
    EXPECT_EQ(seen.count(hb_type::bundle), 0u);
}

TEST(CodecGoldenHeartbeat, EveryFieldIsBigEndianAtItsDiagramOffset) {
    hb_msg m = hb(hb_type::announce, 8, 0xfe, 0xa1a2a3a4, 0xb1b2b3b4b5b6b7b8, 0xc1c2c3c4c5c6c7c8,
                  0xd1d2d3d4d5d6d7d8, 0xe1e2e3e4e5e6e7e8, 0xf1f2f3f4f5f6f7f8, 0x1234);
    m.group = 0x31323334;
    m.incarnation = 0x4142434445464748;
    m.key_id = 0x51;
    EXPECT_EQ(to_hex(encode_into([&](auto o) {
                  return encode_heartbeat(mac_addr::heartwire_group(), mac_a, m, o);
              })),
              to_hex(hex(golden_hb_byte_order)));
    const auto f_bytes = hex(golden_hb_byte_order);
    const auto f = decode(as_span(f_bytes));
    ASSERT_TRUE(f.ok()) << to_string(f.error);
    expect_hb_eq(f.hb, m); // unknown flag bits pass through untouched
}

// ---------------------------------------------------------------- decode errors, table driven

struct error_case {
    std::string description;
    bytes frame;
    decode_error want;
};

bytes prefix(std::string_view golden, std::size_t n) {
    bytes b = hex(golden);
    b.resize(n);
    return b;
}

// Field offsets in an Ethernet frame, for the tables below.
constexpr std::size_t at_type = 12, at_arp = 14, at_ip = 14, at_icmp = 34, at_hb = 14;

// After changing one field, optionally recompute a checksum so the frame trips exactly the
// check the row is about.
enum class refix { none, ip, icmp };

bytes set8(std::string_view golden, std::size_t off, std::uint8_t v, refix r = refix::none) {
    bytes b = hex(golden);
    b.at(off) = std::byte{v};
    if (r == refix::ip) fix_ip_checksum(b);
    if (r == refix::icmp) fix_icmp_checksum(b);
    return b;
}

bytes set16(std::string_view golden, std::size_t off, std::uint16_t v, refix r = refix::none) {
    bytes b = hex(golden);
    put16(b, off, v);
    if (r == refix::ip) fix_ip_checksum(b);
    if (r == refix::icmp) fix_icmp_checksum(b);
    return b;
}

bytes hb_with_payload_length(std::uint16_t declared, std::size_t present) {
    bytes b = hex(hb_goldens()[0].no_payload);
    put16(b, at_hb + 50, declared);
    b.resize(b.size() + present, std::byte{0x5a});
    return b;
}

const std::vector<error_case>& error_cases() {
    using E = decode_error;
    const auto echo = golden_echo_request;
    const auto arp = golden_arp_request;
    const auto probe = hb_goldens()[0].no_payload;
    static const std::vector<error_case> cases = {
        // Ethernet
        {"empty buffer", {}, E::eth_truncated},
        {"one byte", hex("ff"), E::eth_truncated},
        {"13 bytes, one short of a header", prefix(arp, 13), E::eth_truncated},
        {"802.1Q tagged ARP", hex("ffffffffffff 020000000001 8100 0064 0806 0001 0800 0604 0001"), E::vlan_unsupported},
        {"802.1Q tag alone", hex("ffffffffffff 020000000001 8100"), E::vlan_unsupported},
        {"IPv4 packet under the IPv6 EtherType", set16(echo, at_type, 0x86dd), E::ipv6_bad_version},
        {"802.1ad outer tag", set16(arp, at_type, 0x88a8), E::unknown_ethertype},
        {"802.3 length field instead of an EtherType", set16(arp, at_type, 0x002e), E::unknown_ethertype},
        {"heartwire EtherType byte-swapped", set16(probe, at_type, 0xb588), E::unknown_ethertype},
        {"garbage: all 0xff", bytes(64, std::byte{0xff}), E::unknown_ethertype},
        {"garbage: all zero", bytes(60, std::byte{0}), E::unknown_ethertype},
        // ARP
        {"ARP header alone", prefix(arp, 14), E::arp_truncated},
        {"ARP cut one byte short (kernel vector)", prefix(kernel_arp_request, 41), E::arp_truncated},
        {"ARP htype IEEE 802 (6)", set16(arp, at_arp, 6), E::arp_bad_format},
        {"ARP ptype IPv6", set16(arp, at_arp + 2, 0x86dd), E::arp_bad_format},
        {"ARP hlen 8", set8(arp, at_arp + 4, 8), E::arp_bad_format},
        {"ARP plen 16", set8(arp, at_arp + 5, 16), E::arp_bad_format},
        {"ARP op 0", set16(arp, at_arp + 6, 0), E::arp_bad_op},
        {"ARP op 3 (RARP request)", set16(arp, at_arp + 6, 3), E::arp_bad_op},
        {"ARP op byte-swapped request", set16(arp, at_arp + 6, 0x0100), E::arp_bad_op},
        // IPv4
        {"IPv4 EtherType, no header", prefix(echo, 14), E::ipv4_truncated},
        {"IPv4 header cut at 19 bytes", prefix(echo, 33), E::ipv4_truncated},
        {"IP version 6 in an IPv4 EtherType", set8(echo, at_ip, 0x65, refix::ip), E::ipv4_bad_version},
        {"IP version 0", set8(echo, at_ip, 0x05), E::ipv4_bad_version},
        {"IHL 4 (16-byte header)", set8(echo, at_ip, 0x44), E::ipv4_bad_header_length},
        {"IHL 0", set8(echo, at_ip, 0x40), E::ipv4_bad_header_length},
        {"IHL 15, longer than the frame", set8(echo, at_ip, 0x4f), E::ipv4_bad_header_length},
        {"total length 0", set16(echo, at_ip + 2, 0, refix::ip), E::ipv4_bad_total_length},
        {"total length 19, shorter than the header", set16(echo, at_ip + 2, 19, refix::ip), E::ipv4_bad_total_length},
        {"total length one past the frame", set16(golden_echo_request_32, at_ip + 2, 61, refix::ip),
         E::ipv4_bad_total_length},
        {"total length 65535 in a small frame", set16(echo, at_ip + 2, 0xffff, refix::ip), E::ipv4_bad_total_length},
        {"IP checksum off by one", set16(echo, at_ip + 10, 0xb6cd), E::ipv4_bad_checksum},
        {"IP checksum zero", set16(echo, at_ip + 10, 0), E::ipv4_bad_checksum},
        {"source address changed, checksum not", set8(echo, at_ip + 15, 0x02), E::ipv4_bad_checksum},
        {"TTL changed, checksum not (kernel vector)", set8(kernel_echo_request, at_ip + 8, 63), E::ipv4_bad_checksum},
        {"more-fragments flag", set16(echo, at_ip + 6, 0x2000, refix::ip), E::ipv4_fragment},
        {"fragment offset 1 (last fragment)", set16(echo, at_ip + 6, 0x0001, refix::ip), E::ipv4_fragment},
        {"fragment offset 0x1fff with DF", set16(echo, at_ip + 6, 0x5fff, refix::ip), E::ipv4_fragment},
        {"UDP", set8(echo, at_ip + 9, 17, refix::ip), E::ipv4_not_icmp},
        {"TCP", set8(echo, at_ip + 9, 6, refix::ip), E::ipv4_not_icmp},
        // ICMP
        {"IPv4 with no ICMP bytes", set16(echo, at_ip + 2, 20, refix::ip), E::icmp_truncated},
        {"ICMP header of 7 bytes", set16(echo, at_ip + 2, 27, refix::ip), E::icmp_truncated},
        {"ICMP checksum off by one", set16(echo, at_icmp + 2, 0xd909), E::icmp_bad_checksum},
        {"ICMP payload byte changed", set8(echo, at_icmp + 11, 0x41), E::icmp_bad_checksum},
        {"ICMP cut by a shorter total length", set16(echo, at_ip + 2, 36, refix::ip), E::icmp_bad_checksum},
        {"ICMP destination unreachable", set8(echo, at_icmp, 3, refix::icmp), E::icmp_not_echo},
        {"ICMP timestamp request", set8(echo, at_icmp, 13, refix::icmp), E::icmp_not_echo},
        {"ICMP echo request with code 1", set8(echo, at_icmp + 1, 1, refix::icmp), E::icmp_not_echo},
        // heartwire
        {"heartwire EtherType, no header", prefix(probe, 14), E::hb_truncated},
        {"heartwire header one byte short", prefix(probe, 85), E::hb_truncated},
        {"heartwire version 0", set8(probe, at_hb, 0), E::hb_bad_version},
        {"heartwire version 1 (before group, incarnation and tag)", set8(probe, at_hb, 1), E::hb_bad_version},
        {"heartwire version 3", set8(probe, at_hb, 3), E::hb_bad_version},
        {"auth alg set, no tag after the header", set8(probe, at_hb + 65, 1), E::hb_missing_tag},
        {"heartwire type 0", set8(probe, at_hb + 1, 0), E::hb_bad_type},
        {"heartwire type 14, one past the list", set8(probe, at_hb + 1, 14), E::hb_bad_type},
        {"heartwire type 255", set8(probe, at_hb + 1, 255), E::hb_bad_type},
        {"heartwire role 9, one past max_wire_role", set8(probe, at_hb + 2, max_wire_role + 1), E::hb_bad_role},
        {"heartwire role 255", set8(probe, at_hb + 2, 255), E::hb_bad_role},
        {"payload length 1025 with 1025 bytes present", hb_with_payload_length(1025, 1025), E::hb_bad_payload_length},
        {"payload length 65535", hb_with_payload_length(0xffff, 100), E::hb_bad_payload_length},
        {"payload length 6 with 5 bytes present", hb_with_payload_length(6, 5), E::hb_bad_payload_length},
        {"payload length 1 with none present", hb_with_payload_length(1, 0), E::hb_bad_payload_length},
    };
    return cases;
}

TEST(CodecDecodeErrors, EachMalformedFrameFailsOnTheCheckItBreaks) {
    for (const auto& c : error_cases()) {
        const auto f = decode(as_span(c.frame));
        EXPECT_EQ(f.error, c.want) << c.description << ": got " << to_string(f.error) << ", want "
                                   << to_string(c.want) << "\n  " << to_hex(c.frame);
        EXPECT_EQ(f.kind, frame_kind::invalid) << c.description;
        EXPECT_FALSE(f.ok()) << c.description;
    }
}

// The IPv6 errors (after hb_missing_tag) have their own table in test_codec6.cpp.
constexpr std::size_t last_ipv4_error = static_cast<std::size_t>(decode_error::hb_missing_tag);

TEST(CodecDecodeErrors, TableCoversEveryDecodeError) {
    std::set<decode_error> covered;
    for (const auto& c : error_cases()) covered.insert(c.want);
    for (std::size_t i = 1; i <= last_ipv4_error; ++i) {
        const auto e = static_cast<decode_error>(i);
        EXPECT_TRUE(covered.count(e)) << "no table row for " << to_string(e);
    }
}

struct accept_case {
    std::string description;
    bytes frame;
    frame_kind want;
};

bytes with_router_alert_option() {
    bytes b = hex(golden_echo_request_32);
    const bytes opt = hex("94040000");
    b.insert(b.begin() + at_icmp, opt.begin(), opt.end());
    b[at_ip] = std::byte{0x46};
    put16(b, at_ip + 2, static_cast<std::uint16_t>(get16(b, at_ip + 2) + 4));
    fix_ip_checksum(b);
    return b;
}

TEST(CodecDecodeErrors, ValidVariantsThatMustNotBeDropped) {
    const auto probe = hb_goldens()[0].no_payload;
    bytes arp_tail = hex(golden_arp_reply);
    arp_tail.resize(64, std::byte{0xee});
    bytes dirty_padding = hex(golden_echo_request);
    std::fill(dirty_padding.begin() + 51, dirty_padding.end(), std::byte{0xee});
    bytes hb_tail = hex(probe);
    hb_tail.resize(hb_tail.size() + 20, std::byte{0x77});
    bytes hb_unicast = hex(probe);
    std::memcpy(hb_unicast.data(), mac_a.b.data(), 6);
    const std::vector<accept_case> cases = {
        {"ARP without Ethernet padding (as seen on veth)", hex(kernel_arp_reply), frame_kind::arp},
        {"ARP with a trailing FCS-like tail", arp_tail, frame_kind::arp},
        {"echo without padding", hex(kernel_echo_request), frame_kind::icmp_echo},
        {"echo with non-zero padding after total length", dirty_padding, frame_kind::icmp_echo},
        {"echo with DF clear and a non-zero IP id", hex(kernel_echo_reply), frame_kind::icmp_echo},
        {"echo with a TOS byte", set8(golden_echo_request, at_ip + 1, 0xb8, refix::ip), frame_kind::icmp_echo},
        {"echo with a 4-byte IP option (router alert)", with_router_alert_option(), frame_kind::icmp_echo},
        {"echo with TTL 0 (the codec does not route)", set8(golden_echo_request, at_ip + 8, 0, refix::ip),
         frame_kind::icmp_echo},
        {"heartbeat with trailing bytes past payload length", hb_tail, frame_kind::heartbeat},
        {"heartbeat with non-zero reserved (a later version may use it)", set8(probe, at_hb + 52, 0xff),
         frame_kind::heartbeat},
        {"heartbeat with role max_wire_role", set8(probe, at_hb + 2, max_wire_role), frame_kind::heartbeat},
        {"heartbeat with the maximum payload", hb_with_payload_length(hb_max_payload, hb_max_payload),
         frame_kind::heartbeat},
        {"heartbeat to a unicast MAC", hb_unicast, frame_kind::heartbeat},
    };
    for (const auto& c : cases) {
        const auto f = decode(as_span(c.frame));
        EXPECT_EQ(f.error, decode_error::none) << c.description << ": " << to_string(f.error);
        EXPECT_EQ(f.kind, c.want) << c.description;
    }
}

TEST(CodecDecodeErrors, IpOptionsAreSkippedNotReadAsIcmp) {
    const auto b = with_router_alert_option();
    const auto f = decode(as_span(b));
    ASSERT_TRUE(f.ok()) << to_string(f.error);
    EXPECT_EQ(f.echo.id, 0xbeef);
    EXPECT_EQ(f.echo.seq, 0x8001);
    EXPECT_EQ(f.echo.payload.size(), 32u);
}

// ---------------------------------------------------------------- truncation at every length

// The error a prefix of `full` must produce: derived from the layouts, not from the codec.
decode_error truncation_error(const bytes& full, std::size_t n) {
    if (n < 14) return decode_error::eth_truncated;
    switch (get16(full, 12)) {
    case ethertype_arp:
        return n < 42 ? decode_error::arp_truncated : decode_error::none;
    case ethertype_ipv4: {
        if (n < 34) return decode_error::ipv4_truncated;
        const std::size_t ihl = (std::to_integer<std::size_t>(full[14]) & 15) * 4;
        if (n < 14 + ihl) return decode_error::ipv4_bad_header_length;
        return n < 14 + std::size_t{get16(full, 16)} ? decode_error::ipv4_bad_total_length : decode_error::none;
    }
    case ethertype_heartwire:
        if (n < 86) return decode_error::hb_truncated;
        if (n < 86 + std::size_t{get16(full, 64)}) return decode_error::hb_bad_payload_length;
        // auth alg (offset 14 + 65) set: a 16-byte tag follows the payload.
        if (std::to_integer<unsigned>(full[79]) != 0 && n < 86 + std::size_t{get16(full, 64)} + 16)
            return decode_error::hb_missing_tag;
        return decode_error::none;
    default:
        return decode_error::unknown_ethertype;
    }
}

std::vector<std::pair<std::string, bytes>> all_goldens() {
    std::vector<std::pair<std::string, bytes>> v = {
        {"arp request", hex(golden_arp_request)},
        {"arp reply", hex(golden_arp_reply)},
        {"garp", hex(golden_garp)},
        {"arp probe", hex(golden_arp_probe)},
        {"echo request", hex(golden_echo_request)},
        {"echo reply", hex(golden_echo_reply)},
        {"echo request 32", hex(golden_echo_request_32)},
        {"echo reply empty", hex(golden_echo_reply_empty)},
        {"kernel echo request", hex(kernel_echo_request)},
        {"kernel echo reply", hex(kernel_echo_reply)},
        {"kernel arp request", hex(kernel_arp_request)},
        {"kernel arp reply", hex(kernel_arp_reply)},
        {"hb byte order", hex(golden_hb_byte_order)},
        {"hb max payload", hb_with_payload_length(hb_max_payload, hb_max_payload)},
    };
    for (const auto& g : hb_goldens()) {
        v.emplace_back(std::string(g.what), hex(g.no_payload));
        v.emplace_back(std::string(g.what) + " + payload", hex(g.with_payload));
    }
    return v;
}

TEST(CodecTruncation, EveryPrefixOfEveryGoldenFailsCleanlyOrDecodesIgnoringOnlyPadding) {
    for (const auto& [name, full] : all_goldens()) {
        ASSERT_TRUE(decode(as_span(full)).ok()) << name;
        for (std::size_t n = 0; n <= full.size(); ++n) {
            // Copy the prefix into an exactly-sized heap buffer so ASan/valgrind see any
            // read past it.
            const bytes prefix(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(n));
            const auto f = decode(as_span(prefix));
            const auto want = truncation_error(full, n);
            ASSERT_EQ(f.error, want) << name << " cut to " << n << " bytes: got " << to_string(f.error);
            ASSERT_EQ(f.ok(), want == decode_error::none) << name << " cut to " << n;
        }
    }
}

// ---------------------------------------------------------------- round trips and encoder limits

TEST(CodecRoundTrip, ArpEveryShapeSurvivesEncodeThenDecode) {
    const arp_msg shapes[] = {
        {arp_op_request, mac_a, ip_a, mac_addr{}, ip_b},
        {arp_op_reply, mac_b, ip_b, mac_a, ip_a},
        {arp_op_request, mac_a, ip_vip, mac_addr{}, ip_vip}, // announcement
        {arp_op_reply, mac_a, ip_vip, mac_addr::broadcast(), ip_vip},
        {arp_op_request, mac_a, ipv4_addr{}, mac_addr{}, ip_vip}, // probe
    };
    for (const auto& m : shapes) {
        const auto b = encode_into([&](auto o) { return encode_arp(mac_addr::broadcast(), mac_a, m, o); });
        ASSERT_EQ(b.size(), eth_min_frame);
        const auto f = decode(as_span(b));
        ASSERT_TRUE(f.ok()) << to_string(f.error);
        EXPECT_EQ(f.arp.op, m.op);
        EXPECT_EQ(f.arp.sha, m.sha);
        EXPECT_EQ(f.arp.spa, m.spa);
        EXPECT_EQ(f.arp.tha, m.tha);
        EXPECT_EQ(f.arp.tpa, m.tpa);
        EXPECT_EQ(f.arp.is_probe(), m.is_probe());
        EXPECT_EQ(f.arp.is_gratuitous(), m.is_gratuitous());
    }
}

TEST(CodecRoundTrip, EchoEveryPayloadLengthFrom0To300BothDirections) {
    std::mt19937 rng(1071);
    for (std::size_t len = 0; len <= 300; ++len) {
        bytes payload(len);
        for (auto& x : payload) x = std::byte(rng());
        for (bool reply : {false, true}) {
            icmp_echo m{reply, ip_a, ip_b, static_cast<std::uint8_t>(len), static_cast<std::uint16_t>(rng()),
                        static_cast<std::uint16_t>(rng()), as_span(payload)};
            const auto b = encode_into([&](auto o) { return encode_icmp_echo(mac_b, mac_a, m, o); });
            ASSERT_EQ(b.size(), std::max<std::size_t>(eth_min_frame, 42 + len));
            // Both checksums verified by the reference implementation, not the codec's.
            ASSERT_EQ(ref_checksum({b.data() + 14, 20}), 0) << len;
            ASSERT_EQ(ref_checksum({b.data() + 34, 8 + len}), 0) << len;
            const auto f = decode(as_span(b));
            ASSERT_TRUE(f.ok()) << len << ": " << to_string(f.error);
            EXPECT_EQ(f.echo.is_reply, reply);
            EXPECT_EQ(f.echo.src, m.src);
            EXPECT_EQ(f.echo.dst, m.dst);
            EXPECT_EQ(f.echo.ttl, m.ttl);
            EXPECT_EQ(f.echo.id, m.id);
            EXPECT_EQ(f.echo.seq, m.seq);
            ASSERT_TRUE(same_bytes(f.echo.payload, m.payload)) << len;
        }
    }
}

TEST(CodecRoundTrip, EchoReplyCanBeBuiltInPlaceOverTheRequest) {
    bytes buf = hex(golden_echo_request_32);
    buf.resize(128);
    const auto req = decode(std::span<const std::byte>(buf.data(), 74));
    ASSERT_TRUE(req.ok());
    icmp_echo rep = req.echo; // payload points into buf, where the reply is written
    rep.is_reply = true;
    std::swap(rep.src, rep.dst);
    const auto n = encode_icmp_echo(req.eth.src, req.eth.dst, rep, buf);
    ASSERT_EQ(n, 74u);
    const auto f = decode(std::span<const std::byte>(buf.data(), n));
    ASSERT_TRUE(f.ok()) << to_string(f.error);
    EXPECT_TRUE(f.echo.is_reply);
    bytes want(32);
    for (std::size_t i = 0; i < want.size(); ++i) want[i] = std::byte(i);
    EXPECT_EQ(to_hex(f.echo.payload), to_hex(want));
}

TEST(CodecRoundTrip, HeartbeatEveryTypeAndPayloadSizesUpToTheMaximum) {
    std::mt19937_64 rng(56);
    for (const auto& g : hb_goldens()) {
        for (std::size_t len : {std::size_t{0}, std::size_t{1}, std::size_t{2}, std::size_t{57}, hb_max_payload}) {
            bytes payload(len);
            for (auto& x : payload) x = std::byte(rng());
            hb_msg m = g.msg;
            m.epoch = rng();
            m.seq = rng();
            m.ts_ns = rng();
            m.payload = as_span(payload);
            const auto b = encode_into([&](auto o) { return encode_heartbeat(mac_b, mac_a, m, o); });
            ASSERT_EQ(b.size(), 86 + len);
            const auto f = decode(as_span(b));
            ASSERT_TRUE(f.ok()) << g.what << " len " << len << ": " << to_string(f.error);
            expect_hb_eq(f.hb, m);
        }
    }
}

TEST(CodecEncode, EveryEncoderReturnsZeroAndWritesNothingWhenTheBufferIsShort) {
    const auto payload = text("heartwire");
    const arp_msg arp{arp_op_request, mac_a, ip_a, mac_addr{}, ip_b};
    const icmp_echo echo{false, ip_a, ip_b, 64, 1, 2, as_span(payload)};
    hb_msg hbm = hb_goldens()[0].msg;
    hbm.payload = as_span(payload);
    struct enc {
        const char* name;
        std::function<std::size_t(std::span<std::byte>)> fn;
        std::size_t need;
    };
    const bytes long_payload(100, std::byte{'x'});
    const icmp_echo echo100{false, ip_a, ip_b, 64, 1, 2, as_span(long_payload)};
    const enc encoders[] = {
        {"arp", [&](auto o) { return encode_arp(mac_addr::broadcast(), mac_a, arp, o); }, 60},
        {"garp", [&](auto o) { return encode_garp(mac_a, ip_vip, o); }, 60},
        {"probe", [&](auto o) { return encode_arp_probe(mac_a, ip_vip, o); }, 60},
        {"echo (padded)", [&](auto o) { return encode_icmp_echo(mac_b, mac_a, echo, o); }, 60},
        {"echo 100", [&](auto o) { return encode_icmp_echo(mac_b, mac_a, echo100, o); }, 142},
        {"heartbeat", [&](auto o) { return encode_heartbeat(mac_b, mac_a, hbm, o); }, 95},
        {"heartbeat with tag", [&](auto o) {
             hb_msg t = hbm;
             t.auth_alg = 1;
             return encode_heartbeat(mac_b, mac_a, t, o);
         }, 111},
    };
    for (const auto& e : encoders) {
        bytes exact(e.need, std::byte{0xa5});
        EXPECT_EQ(e.fn(exact), e.need) << e.name;
        for (std::size_t cap = 0; cap < e.need; ++cap) {
            bytes buf(cap, std::byte{0xa5});
            ASSERT_EQ(e.fn(buf), 0u) << e.name << " into " << cap;
            ASSERT_TRUE(std::all_of(buf.begin(), buf.end(), [](std::byte x) { return x == std::byte{0xa5}; }))
                << e.name << " wrote into a " << cap << "-byte buffer it refused";
        }
    }
}

TEST(CodecEncode, PaddingIsZeroEvenInADirtyBuffer) {
    bytes buf(128, std::byte{0xa5});
    ASSERT_EQ(encode_garp(mac_a, ip_vip, buf), eth_min_frame);
    EXPECT_TRUE(std::all_of(buf.begin() + 42, buf.begin() + 60, [](std::byte x) { return x == std::byte{0}; }));
    EXPECT_EQ(buf[60], std::byte{0xa5}); // and nothing past the frame is touched
}

TEST(CodecEncode, RefusesFramesEveryReceiverWouldDrop) {
    bytes buf(4096);
    bytes big(hb_max_payload + 1);
    hb_msg m = hb_goldens()[0].msg;
    m.payload = as_span(big);
    EXPECT_EQ(encode_heartbeat(mac_b, mac_a, m, buf), 0u) << "payload over hb_max_payload";
    m.payload = {};
    m.role = max_wire_role + 1;
    EXPECT_EQ(encode_heartbeat(mac_b, mac_a, m, buf), 0u) << "role over max_wire_role";
    m.role = 0;
    m.type = static_cast<hb_type>(0);
    EXPECT_EQ(encode_heartbeat(mac_b, mac_a, m, buf), 0u) << "type 0";
    m.type = static_cast<hb_type>(14);
    EXPECT_EQ(encode_heartbeat(mac_b, mac_a, m, buf), 0u) << "type 14";

    arp_msg a{3, mac_a, ip_a, mac_addr{}, ip_b};
    EXPECT_EQ(encode_arp(mac_addr::broadcast(), mac_a, a, buf), 0u) << "ARP op 3";

    bytes huge(65535 - 28 + 1);
    bytes out(70000);
    icmp_echo e{false, ip_a, ip_b, 64, 1, 1, as_span(huge)};
    EXPECT_EQ(encode_icmp_echo(mac_b, mac_a, e, out), 0u) << "IPv4 total length over 65535";
    e.payload = std::span<const std::byte>(huge.data(), huge.size() - 1);
    EXPECT_EQ(encode_icmp_echo(mac_b, mac_a, e, out), 14u + 65535u) << "exactly 65535 fits";
}

// ---------------------------------------------------------------- checksum

std::uint16_t checksum_of(std::string_view hex_text) {
    const bytes b = hex(hex_text);
    return inet_checksum(as_span(b));
}

TEST(CodecChecksum, Rfc1071WorkedExample) {
    // RFC 1071 section 3: the words 0001 f203 f4f5 f6f7 sum to ddf2; the checksum stored is
    // its complement.
    EXPECT_EQ(checksum_of("0001 f203 f4f5 f6f7"), 0x220d);
}

TEST(CodecChecksum, EdgeCases) {
    EXPECT_EQ(inet_checksum({}), 0xffff);
    EXPECT_EQ(checksum_of("00"), 0xffff);
    EXPECT_EQ(checksum_of("01"), 0xfeff); // odd byte is the high half
    EXPECT_EQ(checksum_of("ffff"), 0x0000);
    EXPECT_EQ(checksum_of(std::string(3000, 'f')), 0x0000);
    // Carries out of the top fold back in (end-around carry).
    EXPECT_EQ(checksum_of("8000 8000"), 0xfffe);
}

TEST(CodecChecksum, MatchesTheReferenceForEveryLengthAndAlignment) {
    std::mt19937 rng(791);
    bytes data(600);
    for (auto& x : data) x = std::byte(rng());
    for (std::size_t start = 0; start < 8; ++start)
        for (std::size_t len = 0; start + len <= 520; ++len) {
            const std::span<const std::byte> s(data.data() + start, len);
            ASSERT_EQ(inet_checksum(s), ref_checksum(s)) << "start " << start << " len " << len;
        }
}

// ---------------------------------------------------------------- names

TEST(CodecNames, HbTypeNamesComeFromTheXMacroAndOnlyListedValuesAreValid) {
    EXPECT_EQ(to_string(hb_type::probe), "probe");
    EXPECT_EQ(to_string(hb_type::stay_down), "stay_down");
    EXPECT_EQ(to_string(hb_type::release), "release");
    EXPECT_EQ(to_string(static_cast<hb_type>(0)), "unknown");
    EXPECT_EQ(to_string(static_cast<hb_type>(200)), "unknown");
    std::set<std::uint8_t> listed;
#define HW_X(name, val)                                                                           \
    listed.insert(val);                                                                           \
    EXPECT_EQ(to_string(hb_type::name), #name);
    HEARTWIRE_HB_TYPES(HW_X)
#undef HW_X
    for (unsigned v = 0; v < 256; ++v)
        EXPECT_EQ(is_valid_hb_type(static_cast<std::uint8_t>(v)), listed.count(static_cast<std::uint8_t>(v)) == 1) << v;
}

TEST(CodecNames, EveryDecodeErrorHasAUniqueName) {
    EXPECT_EQ(to_string(decode_error::none), "none");
    EXPECT_EQ(to_string(decode_error::ipv4_bad_checksum), "ipv4_bad_checksum");
    EXPECT_EQ(to_string(decode_error::hb_bad_payload_length), "hb_bad_payload_length");
    EXPECT_EQ(to_string(decode_error::count_), "unknown");
    std::set<std::string_view> names;
    for (std::size_t i = 0; i < decode_error_count; ++i) {
        const auto n = to_string(static_cast<decode_error>(i));
        EXPECT_NE(n, "unknown") << i;
        EXPECT_TRUE(names.insert(n).second) << "duplicate name " << n;
    }
}

// ---------------------------------------------------------------- randomized

// Everything a successful decode claims must hold, and re-encoding what it decoded must
// give back the same message. Returns a description of the first inconsistency.
std::string check_self_consistent(std::span<const std::byte> in, const frame& f) {
    const auto inside = [&](std::span<const std::byte> s) {
        return s.empty() || (s.data() >= in.data() && s.data() + s.size() <= in.data() + in.size());
    };
    if (f.ok() != (f.error == decode_error::none)) return "ok() disagrees with error";
    if (static_cast<std::size_t>(f.error) >= decode_error_count) return "error out of range";
    if (!f.ok()) return {};
    if (in.size() < 14) return "accepted a frame shorter than Ethernet";
    if (f.eth.ethertype != load_be16(in.data() + 12)) return "ethertype mismatch";
    bytes out(2048);
    switch (f.kind) {
    case frame_kind::arp: {
        if (f.eth.ethertype != ethertype_arp || in.size() < 42) return "ARP accepted from a wrong frame";
        if (f.arp.op != arp_op_request && f.arp.op != arp_op_reply) return "ARP op not 1 or 2";
        const auto n = encode_arp(f.eth.dst, f.eth.src, f.arp, out);
        if (n != eth_min_frame) return "ARP did not re-encode";
        if (!same_bytes({out.data(), 42}, in.first(42))) return "ARP re-encode differs from input";
        return {};
    }
    case frame_kind::icmp_echo: {
        if (f.eth.ethertype != ethertype_ipv4) return "echo from a non-IPv4 frame";
        if (!inside(f.echo.payload)) return "echo payload outside the input";
        const std::size_t total = load_be16(in.data() + 16);
        if (f.echo.payload.data() + f.echo.payload.size() != in.data() + 14 + total && !f.echo.payload.empty())
            return "echo payload does not end at total length";
        if (ref_checksum(in.subspan(14, (std::to_integer<std::size_t>(in[14]) & 15) * 4)) != 0)
            return "accepted a bad IP checksum";
        const auto n = encode_icmp_echo(f.eth.dst, f.eth.src, f.echo, out);
        if (n == 0) return "echo did not re-encode";
        const auto g = decode({out.data(), n});
        if (!g.ok()) return "re-encoded echo does not decode";
        if (g.echo.is_reply != f.echo.is_reply || g.echo.src != f.echo.src || g.echo.dst != f.echo.dst ||
            g.echo.ttl != f.echo.ttl || g.echo.id != f.echo.id || g.echo.seq != f.echo.seq ||
            !same_bytes(g.echo.payload, f.echo.payload))
            return "echo round trip differs";
        return {};
    }
    case frame_kind::heartbeat: {
        if (f.eth.ethertype != ethertype_heartwire) return "heartbeat from a wrong frame";
        if (!inside(f.hb.payload)) return "heartbeat payload outside the input";
        if (f.hb.payload.size() > (f.hb.type == hb_type::bundle ? hb_max_bundle_payload : hb_max_payload))
            return "heartbeat payload over the maximum";
        if (!is_valid_hb_type(static_cast<std::uint8_t>(f.hb.type)) || f.hb.role > max_wire_role)
            return "heartbeat with invalid type or role";
        const auto n = encode_heartbeat(f.eth.dst, f.eth.src, f.hb, out);
        const std::size_t tag = f.hb.auth_alg != 0 ? hb_tag_size : 0;
        if (n != 86 + f.hb.payload.size() + tag) return "heartbeat did not re-encode";
        if (f.hb.tag.size() != tag || !inside(f.hb.tag)) return "heartbeat tag outside the input or of the wrong size";
        if (f.hb.covered.data() != in.data() || f.hb.covered.size() != n - tag) return "heartbeat cover is not the frame before its tag";
        // Identical except the reserved bytes, which the encoder zeroes, and the tag, which
        // the encoder leaves zero for the sender to sign.
        if (!same_bytes({out.data(), 80}, in.first(80)) ||
            !same_bytes({out.data() + 86, n - 86 - tag}, in.subspan(86, n - 86 - tag)))
            return "heartbeat re-encode differs from input";
        return {};
    }
    case frame_kind::nd:
    case frame_kind::icmp6_echo:
        // Noise rarely makes a valid ICMPv6 checksum; test_codec6.cpp checks those accepts.
        if (f.eth.ethertype != ethertype_ipv6) return "IPv6 frame from a non-IPv6 EtherType";
        return {};
    case frame_kind::invalid:
        return "ok() with kind invalid";
    }
    return "unknown kind";
}

TEST(CodecFuzz, HundredsOfThousandsOfRandomFramesNeverCrashAndEveryAcceptIsSelfConsistent) {
    std::mt19937_64 rng(0x6877'6972'6500ULL); // fixed seed: failures reproduce
    const auto goldens = all_goldens();
    auto pick = [&](std::size_t n) { return static_cast<std::size_t>(rng() % n); };
    auto chance = [&](unsigned pct) { return rng() % 100 < pct; };
    std::size_t accepted[static_cast<std::size_t>(frame_kind::icmp6_echo) + 1] = {};
    std::size_t errors[decode_error_count] = {};
    constexpr int iterations = 300'000;

    for (int it = 0; it < iterations; ++it) {
        bytes b;
        switch (it % 3) {
        case 0: { // pure noise
            b.resize(pick(160));
            for (auto& x : b) x = std::byte(rng());
            break;
        }
        case 1: { // noise shaped to reach each layer's checks
            b.resize(14 + pick(150));
            for (auto& x : b) x = std::byte(rng());
            const std::uint16_t types[] = {ethertype_ipv4, ethertype_arp, ethertype_heartwire, ethertype_vlan};
            const auto et = types[pick(4)];
            put16(b, 12, et);
            const std::size_t body = b.size() - 14;
            if (et == ethertype_arp && body >= 8 && chance(80)) {
                put16(b, 14, 1);
                put16(b, 16, 0x0800);
                b[18] = std::byte{6};
                b[19] = std::byte{4};
                put16(b, 20, static_cast<std::uint16_t>(pick(4)));
            } else if (et == ethertype_ipv4 && body >= 20) {
                if (chance(90)) b[14] = chance(85) ? std::byte{0x45} : std::byte(0x40 | pick(16));
                const std::size_t ihl = (std::to_integer<std::size_t>(b[14]) & 15) * 4;
                if (chance(90)) {
                    const std::size_t total = chance(20) ? pick(0x10000) : ihl <= body ? ihl + pick(body - ihl + 1) : pick(body + 1);
                    put16(b, 16, static_cast<std::uint16_t>(total));
                }
                if (chance(80)) put16(b, 20, chance(50) ? 0x4000 : 0);
                if (chance(85)) b[23] = std::byte{ip_proto_icmp};
                const std::size_t total = get16(b, 16);
                if (chance(80) && ihl >= 20 && ihl <= body && total >= ihl + 8 && total <= body) {
                    b[14 + ihl] = chance(90) ? std::byte(chance(50) ? 0 : 8) : std::byte(rng());
                    if (chance(90)) b[14 + ihl + 1] = std::byte{0};
                    if (chance(90)) fix_icmp_checksum(b);
                }
                if (chance(85) && ihl >= 20 && ihl <= body) fix_ip_checksum(b);
            } else if (et == ethertype_heartwire && body >= 72) {
                if (chance(90)) b[14] = std::byte{2};
                if (chance(50)) b[79] = std::byte{0};
                if (chance(90)) b[15] = std::byte(1 + pick(10));
                if (chance(90)) b[16] = std::byte(pick(max_wire_role + 1));
                if (chance(85)) put16(b, 64, static_cast<std::uint16_t>(pick(body - 72 + 3)));
            }
            break;
        }
        default: { // mutated goldens
            b = goldens[pick(goldens.size())].second;
            const std::size_t flips = pick(4);
            for (std::size_t i = 0; i < flips && !b.empty(); ++i) b[pick(b.size())] ^= std::byte(1 + pick(255));
            if (chance(30)) b.resize(pick(b.size() + 1));
            if (chance(20)) {
                const std::size_t extra = 1 + pick(40);
                for (std::size_t i = 0; i < extra; ++i) b.push_back(std::byte(rng()));
            }
            break;
        }
        }
        b.shrink_to_fit(); // exact heap size, so an overread is an ASan/valgrind error
        const auto f = decode(as_span(b));
        const auto problem = check_self_consistent(as_span(b), f);
        ASSERT_EQ(problem, "") << "iteration " << it << "\n  " << to_hex(b);
        ++accepted[static_cast<std::size_t>(f.kind)];
        ++errors[static_cast<std::size_t>(f.error)];
    }
    RecordProperty("accepted_arp", static_cast<int>(accepted[static_cast<std::size_t>(frame_kind::arp)]));
    RecordProperty("accepted_echo", static_cast<int>(accepted[static_cast<std::size_t>(frame_kind::icmp_echo)]));
    RecordProperty("accepted_heartbeat", static_cast<int>(accepted[static_cast<std::size_t>(frame_kind::heartbeat)]));
    // The generator must actually reach the accept paths and every check, or the test
    // proves little.
    EXPECT_GT(accepted[static_cast<std::size_t>(frame_kind::arp)], 1000u);
    EXPECT_GT(accepted[static_cast<std::size_t>(frame_kind::icmp_echo)], 1000u);
    EXPECT_GT(accepted[static_cast<std::size_t>(frame_kind::heartbeat)], 1000u);
    for (std::size_t i = 1; i <= last_ipv4_error; ++i) // IPv6 ones: test_codec6.cpp
        EXPECT_GT(errors[i], 0u) << "random frames never hit " << to_string(static_cast<decode_error>(i));
}

} // namespace

// Keyed frames: key id and algorithm at offsets 64 and 65 of the header, the 16-byte tag
// after the payload, left zero by the encoder for the sender to sign; the decoder hands
// back the tag and the bytes it covers (Ethernet header to payload end).
TEST(CodecGoldenHeartbeat, TaggedFrameCarriesKeyIdAlgorithmAndTagAfterThePayload) {
    hb_msg m = hb(hb_type::probe, 4, 100, 2, 7, 1000, 0, 0x0102030405060708, 0, hb_flag_holds_monitor);
    m.key_id = 3;
    m.auth_alg = 1;
    m.payload = std::as_bytes(std::span(hb_payload_raw));
    auto b = encode_into([&](auto o) { return encode_heartbeat(mac_addr::heartwire_group(), mac_b, m, o); });
    EXPECT_EQ(to_hex(b), to_hex(hex("036877000001 020000000002 88b5 | 02 01 04 64 | 00000002"
                                    "0000000000000007 00000000000003e8 0000000000000000"
                                    "0102030405060708 0000000000000000 | 0002 0005 | 00000001 1880f3a2b4c5d6e7"
                                    "| 03 01 000000000000 | 6877 2100ff | 00000000000000000000000000000000")));
    for (std::size_t i = 0; i < hb_tag_size; ++i) b[b.size() - hb_tag_size + i] = std::byte(0xa0 + i);
    const auto f = decode(as_span(b));
    ASSERT_TRUE(f.ok()) << to_string(f.error);
    expect_hb_eq(f.hb, m);
    ASSERT_EQ(f.hb.tag.size(), hb_tag_size);
    EXPECT_EQ(f.hb.tag.data(), b.data() + b.size() - hb_tag_size);
    EXPECT_EQ(std::to_integer<unsigned>(f.hb.tag[0]), 0xa0u);
    EXPECT_EQ(f.hb.covered.data(), b.data());
    EXPECT_EQ(f.hb.covered.size(), b.size() - hb_tag_size);
    // One byte short of the tag.
    b.pop_back();
    EXPECT_EQ(decode(as_span(b)).error, decode_error::hb_missing_tag);
}
