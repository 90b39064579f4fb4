// Address value types: what an operator types in a config file or on the command line
// must parse to exactly one address, print back the way `ip` prints it, and anything
// ambiguous or malformed must be refused rather than guessed.

#include "heartwire/net_types.hpp"

#include <gtest/gtest.h>

#include <string>
#include <string_view>

namespace {

using heartwire::ipv4_addr;
using heartwire::ipv4_prefix;
using heartwire::mac_addr;

// ---------------------------------------------------------------- MAC

TEST(NetTypesMac, ParsesColonAndDashFormsOfTheSameAddress) {
    const mac_addr want{{0x02, 0xab, 0xcd, 0xef, 0x00, 0x01}};
    for (std::string_view s : {"02:ab:cd:ef:00:01", "02-ab-cd-ef-00-01", "02:AB:CD:EF:00:01", "02-Ab-cD-eF-00-01"}) {
        auto m = mac_addr::parse(s);
        ASSERT_TRUE(m.has_value()) << s;
        EXPECT_EQ(*m, want) << s;
    }
}

TEST(NetTypesMac, FormatsLowercaseColonSeparatedLikeIpLink) {
    EXPECT_EQ((mac_addr{{0x02, 0xAB, 0xCD, 0xEF, 0x00, 0x01}}).to_string(), "02:ab:cd:ef:00:01");
    EXPECT_EQ(mac_addr{}.to_string(), "00:00:00:00:00:00");
    EXPECT_EQ(mac_addr::broadcast().to_string(), "ff:ff:ff:ff:ff:ff");
}

TEST(NetTypesMac, FormatThenParseIsIdentity) {
    for (const mac_addr& m : {mac_addr{}, mac_addr::broadcast(), mac_addr::heartwire_group(),
                              mac_addr{{0x00, 0x1b, 0x21, 0x3c, 0x4d, 0x5e}}}) {
        auto back = mac_addr::parse(m.to_string());
        ASSERT_TRUE(back.has_value()) << m.to_string();
        EXPECT_EQ(*back, m);
    }
}

TEST(NetTypesMac, RefusesMalformedText) {
    for (std::string_view s : {
             "",                      // empty
             "02:ab:cd:ef:00",        // five octets
             "02:ab:cd:ef:00:01:02",  // seven octets
             "02:ab:cd:ef:00:01:",    // trailing separator
             ":02:ab:cd:ef:00:01",    // leading separator
             "2:ab:cd:ef:0:1",        // single-digit octets are not accepted
             "002:ab:cd:ef:00:01",    // three-digit octet
             "02ab:cd:ef:00:01:02",   // missing separator
             "02abcdef0001",          // no separators at all
             "02.ab.cd.ef.00.01",     // dots are not a MAC separator
             "02:ab-cd:ef:00:01",     // mixed separators
             "0g:ab:cd:ef:00:01",     // not hex
             "+2:ab:cd:ef:00:01",     // sign
             "-2:ab:cd:ef:00:01",     // sign
             " 02:ab:cd:ef:00:01",    // leading space
             "02:ab:cd:ef:00:01 ",    // trailing space
             "0x:ab:cd:ef:00:01",     // hex prefix
         }) {
        EXPECT_FALSE(mac_addr::parse(s).has_value()) << '"' << s << '"';
    }
}

TEST(NetTypesMac, ClassifiesBroadcastMulticastAndZero) {
    EXPECT_TRUE(mac_addr{}.is_zero());
    EXPECT_FALSE(mac_addr::broadcast().is_zero());
    EXPECT_TRUE(mac_addr::broadcast().is_multicast());
    // The heartwire group must be a multicast address or switches would learn it as a host.
    EXPECT_TRUE(mac_addr::heartwire_group().is_multicast());
    EXPECT_FALSE((mac_addr{{0x02, 0, 0, 0, 0, 1}}).is_multicast());
}

// ---------------------------------------------------------------- IPv4 address

TEST(NetTypesIpv4, ParsesDottedQuadIntoHostOrder) {
    auto a = ipv4_addr::parse("192.0.2.10");
    ASSERT_TRUE(a.has_value());
    EXPECT_EQ(a->v, 0xc000020au);
    EXPECT_EQ(ipv4_addr::parse("0.0.0.0")->v, 0u);
    EXPECT_EQ(ipv4_addr::parse("255.255.255.255")->v, 0xffffffffu);
    EXPECT_EQ(ipv4_addr::parse("10.0.0.1")->v, 0x0a000001u);
}

TEST(NetTypesIpv4, FormatsDottedQuadAndRoundTrips) {
    EXPECT_EQ(ipv4_addr{0xc000020a}.to_string(), "192.0.2.10");
    EXPECT_EQ(ipv4_addr{0}.to_string(), "0.0.0.0");
    EXPECT_EQ(ipv4_addr{0xffffffff}.to_string(), "255.255.255.255");
    for (std::uint32_t v : {0u, 1u, 0x7f000001u, 0xc0a80101u, 0xfffffffeu, 0xffffffffu}) {
        auto back = ipv4_addr::parse(ipv4_addr{v}.to_string());
        ASSERT_TRUE(back.has_value()) << v;
        EXPECT_EQ(back->v, v);
    }
}

TEST(NetTypesIpv4, RefusesMalformedText) {
    for (std::string_view s : {
             "",
             "1.2.3",          // three parts
             "1.2.3.4.5",      // five parts
             "1.2.3.",         // empty last part
             ".1.2.3",         // empty first part
             "1..2.3",         // empty middle part
             "256.0.0.1",      // octet out of range
             "1.2.3.256",
             "1.2.3.4294967297", // would wrap a 32-bit parse
             "1.2.3.-4",       // sign
             "1.2.3.+4",       // sign
             "a.b.c.d",
             "1.2.3.4a",
             " 1.2.3.4",
             "1.2.3.4 ",
             "1.2.3.4/24",     // a prefix is not an address
             "0x7f.0.0.1",     // no hex
             "2130706433",     // no single-number form
             "::1",            // not IPv6
         }) {
        EXPECT_FALSE(ipv4_addr::parse(s).has_value()) << '"' << s << '"';
    }
}

TEST(NetTypesIpv4, RefusesLeadingZerosBecauseInetAtonReadsThemAsOctal) {
    // "010.0.0.1" is 8.0.0.1 to ping and inet_aton but would be 10.0.0.1 to a decimal
    // parser; refusing it keeps one config text meaning one address.
    for (std::string_view s : {"010.0.0.1", "10.0.0.01", "00.1.2.3", "1.2.3.000"})
        EXPECT_FALSE(ipv4_addr::parse(s).has_value()) << s;
    EXPECT_TRUE(ipv4_addr::parse("10.0.0.0").has_value()); // a lone zero is fine
}

TEST(NetTypesIpv4, OrdersByNumericValue) {
    EXPECT_LT(*ipv4_addr::parse("9.255.255.255"), *ipv4_addr::parse("10.0.0.0"));
    EXPECT_EQ(*ipv4_addr::parse("10.0.0.1"), ipv4_addr{0x0a000001});
    EXPECT_TRUE(ipv4_addr{}.is_zero());
}

// ---------------------------------------------------------------- IPv4 prefix

TEST(NetTypesPrefix, ParsesAddressSlashLengthAndBareAddressAsSlash32) {
    auto p = ipv4_prefix::parse("192.0.2.0/24");
    ASSERT_TRUE(p.has_value());
    EXPECT_EQ(p->addr.v, 0xc0000200u);
    EXPECT_EQ(p->len, 24);

    auto host = ipv4_prefix::parse("192.0.2.10");
    ASSERT_TRUE(host.has_value());
    EXPECT_EQ(host->len, 32);

    EXPECT_EQ(ipv4_prefix::parse("0.0.0.0/0")->len, 0);
    EXPECT_EQ(ipv4_prefix::parse("10.0.0.1/32")->len, 32);
    // An interface address with host bits set is how `ip addr` writes it: keep the bits.
    EXPECT_EQ(ipv4_prefix::parse("10.1.2.3/8")->addr.v, 0x0a010203u);
}

TEST(NetTypesPrefix, FormatsAndRoundTrips) {
    EXPECT_EQ((ipv4_prefix{ipv4_addr{0xc0000200}, 24}).to_string(), "192.0.2.0/24");
    EXPECT_EQ(ipv4_prefix{}.to_string(), "0.0.0.0/32");
    for (std::string_view s : {"0.0.0.0/0", "10.0.0.0/8", "192.0.2.10/32", "172.16.0.1/12"}) {
        auto p = ipv4_prefix::parse(s);
        ASSERT_TRUE(p.has_value()) << s;
        EXPECT_EQ(p->to_string(), s);
    }
}

TEST(NetTypesPrefix, RefusesMalformedText) {
    for (std::string_view s : {
             "",
             "/24",
             "192.0.2.0/",
             "192.0.2.0/33",
             "192.0.2.0/-1",
             "192.0.2.0/+8",
             "192.0.2.0/08", // leading zero, as for addresses
             "192.0.2.0/8/8",
             "192.0.2.0/x",
             "192.0.2.0 /24",
             "192.0.2.0/ 24",
             "192.0.2/24",
             "192.0.2.0/255.255.255.0", // no netmask form
         }) {
        EXPECT_FALSE(ipv4_prefix::parse(s).has_value()) << '"' << s << '"';
    }
}

TEST(NetTypesPrefix, ContainsChecksOnlyTheNetworkBits) {
    const auto net = *ipv4_prefix::parse("192.0.2.0/24");
    EXPECT_TRUE(net.contains(*ipv4_addr::parse("192.0.2.0")));
    EXPECT_TRUE(net.contains(*ipv4_addr::parse("192.0.2.255")));
    EXPECT_FALSE(net.contains(*ipv4_addr::parse("192.0.3.0")));
    EXPECT_FALSE(net.contains(*ipv4_addr::parse("192.0.1.255")));

    const auto any = *ipv4_prefix::parse("0.0.0.0/0");
    EXPECT_TRUE(any.contains(ipv4_addr{0}));
    EXPECT_TRUE(any.contains(ipv4_addr{0xffffffff}));

    const auto host = *ipv4_prefix::parse("10.0.0.1/32");
    EXPECT_TRUE(host.contains(*ipv4_addr::parse("10.0.0.1")));
    EXPECT_FALSE(host.contains(*ipv4_addr::parse("10.0.0.0")));

    const auto one_bit = *ipv4_prefix::parse("128.0.0.0/1");
    EXPECT_TRUE(one_bit.contains(ipv4_addr{0xffffffff}));
    EXPECT_FALSE(one_bit.contains(ipv4_addr{0x7fffffff}));

    const auto slash31 = *ipv4_prefix::parse("10.0.0.0/31");
    EXPECT_TRUE(slash31.contains(*ipv4_addr::parse("10.0.0.1")));
    EXPECT_FALSE(slash31.contains(*ipv4_addr::parse("10.0.0.2")));
}

} // namespace
