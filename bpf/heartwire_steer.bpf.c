// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * heartwire's XDP program for DPDK's net_af_xdp PMD (devarg xdp_prog=<this object>).
 *
 * The PMD's default program hands every frame of the queue to the AF_XDP socket, so the
 * kernel, and any real service on the address heartwire moves, would get nothing. This
 * one steers to the socket only what the engine must see and passes the rest up the
 * kernel's stack, so the kernel keeps answering ARP, ping, TCP and UDP for the address it
 * holds and keeps its neighbour cache:
 *
 *   EtherType 0x88B5                                      heartwire's own frames
 *   ARP (Ethernet/IPv4) whose sender address is watched   replies from a holder, GARPs, claims
 *   ICMP echo reply, our id, to a watched address         answers to the engine's pings
 *   ICMPv6 NA whose target is watched                     a holder answering or announcing
 *   ICMPv6 NS from :: whose target is watched             a DAD probe for a watched address
 *   ICMPv6 echo reply, our id, to a watched address       answers to the engine's pings
 *
 * after at most two VLAN tags (802.1Q 0x8100, 802.1ad 0x88A8). Everything else, and every
 * frame too short to decide on, is passed. A client's ARP request for the address carries
 * the client as sender and so is passed: the kernel answers it. Each decision is counted
 * in hw_stats. The watched addresses and the engine's echo id are filled in by the daemon
 * (src/dpdk/xdp_steer.cpp); the PMD fills xsks_map with its sockets.
 */

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>

#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "heartwire_steer.h"

#define ETH_P_HEARTWIRE 0x88B5

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
    __uint(type, BPF_MAP_TYPE_XSKMAP);
    __uint(max_entries, HW_STEER_XSKS_MAX);
    __uint(key_size, sizeof(int));
    __uint(value_size, sizeof(int));
} xsks_map SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, HW_STEER_ADDRS_MAX);
    __type(key, __u32);
    __type(value, __u8);
} hw_addrs4 SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, HW_STEER_ADDRS_MAX);
    __type(key, struct hw_steer_in6);
    __type(value, __u8);
} hw_addrs6 SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct hw_steer_conf);
} hw_conf SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, HW_STEER_NR_COUNTERS);
    __type(key, __u32);
    __type(value, __u64);
} hw_stats SEC(".maps");

/*
 * 802.1Q / 802.1ad tag, after the outer EtherType:
 *   +-------+---+--------------+------------------+
 *   |PCP(3) |DEI|   VID (12)   | inner EtherType  |
 *   +-------+---+--------------+------------------+
 */
struct vlan_tag {
    __be16 tci;
    __be16 proto;
};

/*
 * ARP for Ethernet/IPv4 (RFC 826), 28 bytes:
 *   htype(2)=1 ptype(2)=0x0800 hlen(1)=6 plen(1)=4 op(2)
 *   sha(6) spa(4) tha(6) tpa(4)
 */
struct arp_eth4 {
    __be16 htype;
    __be16 ptype;
    __u8 hlen;
    __u8 plen;
    __be16 op;
    __u8 sha[6];
    __u8 spa[4];
    __u8 tha[6];
    __u8 tpa[4];
} __attribute__((packed));

/*
 * ICMP (RFC 792) and ICMPv6 (RFC 4443) echo: type(1) code(1) checksum(2) id(2) seq(2).
 * The first four bytes are common to every ICMP and ICMPv6 message.
 */
struct icmp_echo {
    __u8 type;
    __u8 code;
    __be16 csum;
    __be16 id;
    __be16 seq;
};

/*
 * Neighbour solicitation / advertisement (RFC 4861 4.3, 4.4), options not needed:
 *   type(1) code(1) checksum(2) flags/reserved(4) target(16)
 */
struct icmp6_nd {
    __u8 type;
    __u8 code;
    __be16 csum;
    __be32 flags;
    struct hw_steer_in6 target;
};

#define ICMP_ECHOREPLY 0
#define ICMP6_ECHO_REPLY 129
#define ICMP6_ND_SOLICIT 135
#define ICMP6_ND_ADVERT 136
#define IP_MF_AND_OFFSET 0x3fff

static __always_inline void count(__u32 counter) {
    __u64* v = bpf_map_lookup_elem(&hw_stats, &counter);
    if (v) *v += 1; /* per-CPU slot: no other writer */
}

static __always_inline int pass(void) {
    count(HW_STEER_passed);
    return XDP_PASS;
}

/* XDP_PASS as the fallback: a queue without a socket (yet) still reaches the kernel. */
static __always_inline int steer(struct xdp_md* ctx, __u32 counter) {
    count(counter);
    return bpf_redirect_map(&xsks_map, ctx->rx_queue_index, XDP_PASS);
}

static __always_inline __u32 load_u32(const void* p) {
    __u32 v;
    __builtin_memcpy(&v, p, sizeof v); /* unaligned in the packet */
    return v;
}

static __always_inline int watched4(const void* addr) {
    __u32 key;
    __builtin_memcpy(&key, addr, sizeof key); /* the packet's copy may be unaligned */
    return bpf_map_lookup_elem(&hw_addrs4, &key) != NULL;
}

static __always_inline int watched6(const struct hw_steer_in6* addr) {
    struct hw_steer_in6 key;
    __builtin_memcpy(&key, addr, sizeof key);
    return bpf_map_lookup_elem(&hw_addrs6, &key) != NULL;
}

/* The engine's echo id in network byte order, or 0 when it has none. */
static __always_inline __be16 our_icmp_id(void) {
    __u32 zero = 0;
    const struct hw_steer_conf* c = bpf_map_lookup_elem(&hw_conf, &zero);
    return c ? bpf_htons(c->icmp_id) : 0;
}

static __always_inline int on_arp(struct xdp_md* ctx, const void* l3, const void* end) {
    const struct arp_eth4* a = l3;
    if ((const void*)(a + 1) > end) return pass();
    if (a->htype != bpf_htons(1) || a->ptype != bpf_htons(ETH_P_IP) || a->hlen != 6 || a->plen != 4) return pass();
    /* The sender is who claims the address: a GARP or any request from a watched address
     * (a holder's announcement, another MAC's claim), a holder's answer to an RFC 5227
     * probe (target 0.0.0.0) or a gratuitous reply (target = sender). A holder's reply to
     * this host's kernel, which asked from an address of its own (a standby reaching the
     * service), is the kernel's: passed, so its neighbour cache learns it. A client asking
     * (or answering the kernel) names itself and is passed. */
    if (!watched4(a->spa)) return pass();
    const __u32 tpa = load_u32(a->tpa), spa = load_u32(a->spa);
    /* Announcements (target = sender), answers to probes (target 0.0.0.0), and ARP between
     * watched addresses. A holder's kernel asking for an ordinary address ("who has the
     * standby's address, tell the primary address") is for that host's kernel: passed, so
     * kernels of the nodes still talk IP to each other. */
    if (tpa == spa || tpa == 0 || watched4(a->tpa)) return steer(ctx, HW_STEER_steered_arp);
    return pass();
}

static __always_inline int on_ipv4(struct xdp_md* ctx, const void* l3, const void* end) {
    const struct iphdr* ip = l3;
    if ((const void*)(ip + 1) > end) return pass();
    if (ip->version != 4 || ip->ihl < 5 || ip->protocol != IPPROTO_ICMP) return pass();
    if (ip->frag_off & bpf_htons(IP_MF_AND_OFFSET)) return pass(); /* only whole datagrams */
    const struct icmp_echo* icmp = (const void*)((const __u8*)l3 + ip->ihl * 4);
    if ((const void*)(icmp + 1) > end) return pass();
    if (icmp->type != ICMP_ECHOREPLY || icmp->code != 0) return pass();
    const __be16 id = our_icmp_id();
    if (id == 0 || icmp->id != id) return pass(); /* someone else's ping: the kernel's */
    return watched4(&ip->daddr) ? steer(ctx, HW_STEER_steered_icmp) : pass();
}

static __always_inline int is_unspecified(const struct hw_steer_in6* a) {
    __u64 w[2];
    __builtin_memcpy(w, a, sizeof w);
    return (w[0] | w[1]) == 0;
}

static __always_inline int is_multicast6(const struct hw_steer_in6* a) { return ((const __u8*)a)[0] == 0xff; }

static __always_inline int on_ipv6(struct xdp_md* ctx, const void* l3, const void* end) {
    const struct ipv6hdr* ip6 = l3;
    if ((const void*)(ip6 + 1) > end) return pass();
    if (ip6->version != 6 || ip6->nexthdr != IPPROTO_ICMPV6) return pass();
    const void* l4 = ip6 + 1;
    const struct icmp_echo* icmp = l4;
    if ((const void*)(icmp + 1) > end) return pass();
    if (icmp->type == ICMP6_ECHO_REPLY) {
        const __be16 id = our_icmp_id();
        if (icmp->code != 0 || id == 0 || icmp->id != id) return pass();
        return watched6((const struct hw_steer_in6*)&ip6->daddr) ? steer(ctx, HW_STEER_steered_icmp6) : pass();
    }
    if (icmp->type != ICMP6_ND_ADVERT && icmp->type != ICMP6_ND_SOLICIT) return pass();
    const struct icmp6_nd* nd = l4;
    if ((const void*)(nd + 1) > end) return pass();
    /* A solicitation from a node that has an address is the kernel's business (it answers);
     * one from :: is a duplicate address detection probe: someone wants a watched address. */
    if (nd->type == ICMP6_ND_SOLICIT && !is_unspecified((const struct hw_steer_in6*)&ip6->saddr)) return pass();
    /* A solicited advertisement answers whoever solicited it: to an address of ours, the
     * engine's (it never solicits otherwise); to an ordinary address, this host's kernel,
     * which asked (a standby reaching the service), as for ARP replies. */
    if (nd->type == ICMP6_ND_ADVERT && (nd->flags & bpf_htonl(0x40000000)) &&
        !is_multicast6((const struct hw_steer_in6*)&ip6->daddr) && !watched6((const struct hw_steer_in6*)&ip6->daddr))
        return pass();
    return watched6(&nd->target) ? steer(ctx, HW_STEER_steered_nd) : pass();
}

SEC("xdp")
int heartwire_steer(struct xdp_md* ctx) {
    const void* data = (const void*)(long)ctx->data;
    const void* end = (const void*)(long)ctx->data_end;
    const struct ethhdr* eth = data;
    if ((const void*)(eth + 1) > end) return pass();
    __be16 proto = eth->h_proto;
    const void* l3 = eth + 1;
    /* Up to two tags: 802.1Q, or an 802.1ad outer tag with an 802.1Q inner one. */
#pragma unroll
    for (int i = 0; i < 2; i++) {
        if (proto != bpf_htons(ETH_P_8021Q) && proto != bpf_htons(ETH_P_8021AD)) break;
        const struct vlan_tag* tag = l3;
        if ((const void*)(tag + 1) > end) return pass();
        proto = tag->proto;
        l3 = tag + 1;
    }
    switch (proto) {
    case bpf_htons(ETH_P_HEARTWIRE): return steer(ctx, HW_STEER_steered_heartwire);
    case bpf_htons(ETH_P_ARP): return on_arp(ctx, l3, end);
    case bpf_htons(ETH_P_IP): return on_ipv4(ctx, l3, end);
    case bpf_htons(ETH_P_IPV6): return on_ipv6(ctx, l3, end);
    default: return pass();
    }
}
