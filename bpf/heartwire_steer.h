/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
#pragma once
/*
 * What the XDP steering program (heartwire_steer.bpf.c) and its loader-side handle
 * (src/dpdk/xdp_steer.cpp) must agree on: the program's name, the maps' value layouts and
 * the decision counters. C (the BPF object) and C++ (the daemon, the tests) include it.
 */

#include <linux/types.h>

/* The name the kernel reports for the program: BPF_OBJ_NAME_LEN - 1 = 15 characters at most. */
#define HW_STEER_PROG_NAME "heartwire_steer"

#define HW_STEER_MAP_XSKS "xsks_map"    /* the af_xdp PMD looks it up by this exact name */
#define HW_STEER_MAP_ADDRS4 "hw_addrs4" /* key __u32 IPv4 address, network byte order */
#define HW_STEER_MAP_ADDRS6 "hw_addrs6" /* key struct hw_steer_in6 */
#define HW_STEER_MAP_CONF "hw_conf"     /* one struct hw_steer_conf at key 0 */
#define HW_STEER_MAP_STATS "hw_stats"   /* per-CPU __u64 per enum hw_steer_counter */

#define HW_STEER_XSKS_MAX 64
#define HW_STEER_ADDRS_MAX 4096

/* An IPv6 address as on the wire. */
struct hw_steer_in6 {
    __u8 b[16];
};

struct hw_steer_conf {
    __u16 icmp_id; /* host byte order; 0: no echo reply is steered */
    __u16 pad;
    __u32 flags; /* reserved, 0 */
};

/*
 * One counter per decision the program takes, in this order (the stats map's index).
 * steered_nd: neighbour advertisements and DAD solicitations; steered_icmp6: echo replies.
 */
#define HW_STEER_COUNTERS(X) \
    X(steered_heartwire)     \
    X(steered_arp)           \
    X(steered_icmp)          \
    X(steered_nd)            \
    X(steered_icmp6)         \
    X(passed)

enum hw_steer_counter {
#define HW_STEER_ENUM(name) HW_STEER_##name,
    HW_STEER_COUNTERS(HW_STEER_ENUM)
#undef HW_STEER_ENUM
    HW_STEER_NR_COUNTERS
};
