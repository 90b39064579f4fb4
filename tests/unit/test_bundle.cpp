// Heartbeat bundles (issue 9, many groups): one frame carrying the probes, acks and
// announces of several groups to one peer. Round trips, the checks every entry passes at
// decode, and the sizes the engine relies on.
#include <gtest/gtest.h>

#include <vector>

#include "heartwire/wire.hpp"
#include "hex_bytes.hpp"

using namespace heartwire;
using namespace heartwire::wire;
using hwtest::bytes;

namespace {

const mac_addr dst{{0x02, 0, 0, 0, 0, 0x02}};
const mac_addr src{{0x02, 0, 0, 0, 0, 0x01}};

hb_msg entry(std::uint32_t group, hb_type t, std::uint64_t seq) {
    hb_msg m;
    m.type = t;
    m.role = 3;
    m.priority = 100;
    m.node_id = 7;
    m.epoch = 40 + group;
    m.seq = seq;
    m.ack_seq = seq * 3;
    m.ts_ns = 1'000'000 + seq;
    m.ts_echo_ns = 2'000'000 + seq;
    m.flags = hb_flag_holds_monitor | hb_flag_can_take_over;
    m.group = group;
    m.incarnation = 0x1122334455667788ULL;
    return m;
}

hb_msg outer_of(const hb_msg& e, bool keyed) {
    hb_msg o;
    o.node_id = e.node_id;
    o.incarnation = e.incarnation;
    if (keyed) {
        o.key_id = 5;
        o.auth_alg = 1;
    }
    return o;
}

bytes encode(std::span<const hb_msg> es, bool keyed = false) {
    bytes out(2048);
    const std::size_t n = encode_bundle(dst, src, outer_of(es.front(), keyed), es, out);
    out.resize(n);
    return out;
}

std::vector<hb_msg> entries_of(const hb_msg& b) {
    std::vector<hb_msg> out;
    for (std::size_t off = 0; off < b.payload.size();) {
        out.emplace_back();
        off = next_bundle_entry(b, off, out.back());
    }
    return out;
}

// Offset of entry i's byte `field` in an encoded bundle of bare entries.
std::size_t at(std::size_t i, std::size_t field) { return 14 + hb_header_size + i * hb_header_size + field; }

} // namespace

TEST(Bundle, EveryEntryComesBackAsTheMessageItWas) {
    // An announce carries its accepted-keys TLV (34 bytes), the rest nothing: 19 bare
    // entries, or a mix that fills the byte budget.
    std::byte keys[34];
    for (std::size_t i = 0; i < sizeof keys; ++i) keys[i] = std::byte(i * 7 + 1);
    std::vector<hb_msg> bare, mixed;
    for (std::uint32_t g = 1; g <= hb_bundle_max_entries; ++g)
        bare.push_back(entry(g, g % 2 ? hb_type::probe : hb_type::ack, g * 11));
    for (std::uint32_t g = 1; g <= 12; ++g) {
        mixed.push_back(entry(g, g % 3 == 0 ? hb_type::probe : hb_type::announce, g * 13));
        if (mixed.back().type == hb_type::announce) mixed.back().payload = keys;
    }
    for (const auto* set : {&bare, &mixed})
    for (const bool keyed : {false, true}) {
        const auto& es = *set;
        std::size_t bytes_in = 0;
        for (const auto& e : es) bytes_in += bundle_entry_size(e);
        ASSERT_LE(bytes_in, hb_max_bundle_payload);
        const bytes b = encode(es, keyed);
        ASSERT_EQ(b.size(), 14 + hb_header_size + bytes_in + (keyed ? hb_tag_size : 0));
        EXPECT_LE(b.size(), 1514u) << "a full bundle fits a standard frame";
        const frame f = decode(b);
        ASSERT_TRUE(f.ok()) << to_string(f.error);
        ASSERT_EQ(f.hb.type, hb_type::bundle);
        const auto got = entries_of(f.hb);
        ASSERT_EQ(got.size(), es.size());
        EXPECT_EQ(f.hb.tag.size(), keyed ? hb_tag_size : 0u);
        for (std::size_t i = 0; i < es.size(); ++i) {
            const hb_msg& m = got[i];
            const hb_msg& w = es[i];
            EXPECT_EQ(m.type, w.type);
            EXPECT_EQ(m.role, w.role);
            EXPECT_EQ(m.priority, w.priority);
            EXPECT_EQ(m.node_id, w.node_id);
            EXPECT_EQ(m.epoch, w.epoch);
            EXPECT_EQ(m.seq, w.seq);
            EXPECT_EQ(m.ack_seq, w.ack_seq);
            EXPECT_EQ(m.ts_ns, w.ts_ns);
            EXPECT_EQ(m.ts_echo_ns, w.ts_echo_ns);
            EXPECT_EQ(m.flags, w.flags);
            EXPECT_EQ(m.group, w.group);
            EXPECT_EQ(m.incarnation, w.incarnation);
            EXPECT_EQ(hwtest::to_hex(m.payload), hwtest::to_hex(w.payload));
            if (!m.payload.empty()) {
                EXPECT_GE(m.payload.data(), f.hb.payload.data()) << "points into the bundle";
            }
            // The bundle's key and authentication cover every entry.
            EXPECT_EQ(m.key_id, keyed ? 5 : 0);
            EXPECT_EQ(m.auth_alg, keyed ? 1 : 0);
            EXPECT_EQ(m.covered.data(), f.hb.covered.data());
            EXPECT_EQ(m.covered.size(), f.hb.covered.size());
            EXPECT_EQ(m.tag.size(), f.hb.tag.size());
        }
        EXPECT_EQ(f.hb.covered.size(), b.size() - (keyed ? hb_tag_size : 0)) << "the tag covers every entry";
    }
}

TEST(Bundle, TheEncoderRefusesWhatCannotRide) {
    bytes out(2048);
    std::vector<hb_msg> es{entry(1, hb_type::probe, 1)};
    const hb_msg o = outer_of(es[0], false);
    EXPECT_EQ(encode_bundle(dst, src, o, {}, out), 0u) << "empty";
    std::vector<hb_msg> many(hb_bundle_max_entries + 1, es[0]);
    EXPECT_EQ(encode_bundle(dst, src, o, many, out), 0u) << "over the maximum";
    for (const hb_type t : {hb_type::stay_down, hb_type::takeover_req, hb_type::release, hb_type::engine_down,
                            hb_type::fault_report, hb_type::bundle}) {
        es[0].type = t;
        EXPECT_FALSE(bundlable(es[0])) << to_string(t);
        EXPECT_EQ(encode_bundle(dst, src, o, es, out), 0u) << to_string(t) << " must go in a frame of its own";
    }
    es[0] = entry(1, hb_type::announce, 1);
    const std::byte tlv[hb_bundle_entry_max_payload + 1]{};
    es[0].payload = tlv;
    EXPECT_FALSE(bundlable(es[0])) << "an announce with a payload over the entry maximum";
    EXPECT_EQ(encode_bundle(dst, src, o, es, out), 0u);
    es[0].payload = std::span<const std::byte>(tlv).first(hb_bundle_entry_max_payload);
    EXPECT_TRUE(bundlable(es[0]));
    std::vector<hb_msg> full(hb_max_bundle_payload / bundle_entry_size(es[0]) + 1, es[0]);
    EXPECT_EQ(encode_bundle(dst, src, o, full, out), 0u) << "over the byte budget";
    full.pop_back();
    EXPECT_GT(encode_bundle(dst, src, o, full, out), 0u);
    es[0] = entry(1, hb_type::probe, 1);
    es[0].payload = std::span<const std::byte>(tlv).first(1);
    EXPECT_FALSE(bundlable(es[0])) << "a probe with a payload";
    es[0].payload = {};
    bytes room(200);
    EXPECT_GT(encode_bundle(dst, src, o, es, room), 0u);
    bytes small(100);
    EXPECT_EQ(encode_bundle(dst, src, o, es, small), 0u) << "too small an output";
}

TEST(Bundle, AnEntryThatIsNotTheSendersBareProbeAckOrAnnounceFailsTheWholeFrame) {
    const std::vector<hb_msg> es{entry(1, hb_type::probe, 1), entry(2, hb_type::ack, 2), entry(3, hb_type::announce, 3)};
    const bytes good = encode(es);
    ASSERT_TRUE(decode(good).ok());
    struct edit {
        const char* what;
        std::size_t off;
        std::uint8_t v;
    };
    const edit edits[] = {
        {"entry version", at(1, 0), 1},
        {"entry type stay_down", at(1, 1), 4},
        {"entry type engine_down", at(2, 1), 11},
        {"entry type bundle", at(0, 1), 12},
        {"entry type unknown", at(0, 1), 200},
        {"entry role out of range", at(2, 2), 9},
        {"entry node id of another node", at(1, 7), 8},
        {"probe entry with a payload", at(0, 51), 4},
        {"announce entry payload past the bundle", at(2, 51), 4},
        {"announce entry payload over the entry maximum", at(2, 50), 1},
        {"entry incarnation of another boot", at(2, 63), 0x89},
        {"entry key id", at(0, 64), 1},
        {"entry auth alg", at(0, 65), 1},
    };
    for (const auto& e : edits) {
        bytes b = good;
        b[e.off] = std::byte{e.v};
        const frame f = decode(b);
        EXPECT_FALSE(f.ok()) << e.what;
        EXPECT_EQ(f.error, decode_error::hb_bad_bundle) << e.what << ": " << to_string(f.error);
    }
    // The bundle's own length: not whole entries, none, or over the budget.
    const auto with_length = [&](std::uint16_t len) {
        bytes b = good;
        b.resize(std::max<std::size_t>(b.size(), 14 + hb_header_size + len + 8));
        b[14 + 50] = std::byte(len >> 8);
        b[14 + 51] = std::byte(len & 0xff);
        return decode(b).error;
    };
    EXPECT_EQ(with_length(0), decode_error::hb_bad_bundle);
    EXPECT_EQ(with_length(100), decode_error::hb_bad_bundle);
    EXPECT_EQ(with_length(hb_header_size * 2), decode_error::none);
    EXPECT_EQ(with_length(hb_max_bundle_payload + hb_header_size), decode_error::hb_bad_payload_length);
    // Reserved bytes of an entry are not checked (a later version may use them).
    bytes b = good;
    b[at(1, 70)] = std::byte{0x5a};
    EXPECT_TRUE(decode(b).ok());
}

TEST(Bundle, APlainHeartbeatStillCarriesAtMostTheOrdinaryPayload) {
    hb_msg m = entry(1, hb_type::drained, 1);
    std::vector<std::byte> pl(hb_max_payload + 1);
    m.payload = pl;
    bytes out(2048);
    EXPECT_EQ(encode_heartbeat(dst, src, m, out), 0u);
    m.payload = std::span<const std::byte>(pl).first(hb_max_payload);
    const std::size_t n = encode_heartbeat(dst, src, m, out);
    ASSERT_GT(n, 0u);
    out[14 + 50] = std::byte((hb_max_payload + 72) >> 8);
    out[14 + 51] = std::byte((hb_max_payload + 72) & 0xff);
    out.resize(n + 200);
    EXPECT_EQ(decode(out).error, decode_error::hb_bad_payload_length) << "only a bundle may be longer";
}
