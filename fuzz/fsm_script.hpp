#pragma once
// The script language of fuzz_fsm, shared with the seed generator (gen_corpus.cpp).
//
// A script is 4 header bytes, then operations: an op byte (taken modulo op_count), the
// node it acts on (modulo 3), then the op's own argument bytes, listed below. Bytes past
// the end of the input read as 0, so any input is a script.

#include <cstdint>

namespace heartwire::fuzz {

// Header byte 0: the group's configuration.
inline constexpr std::uint8_t hdr_preempt = 1 << 0;
inline constexpr std::uint8_t hdr_fence = 1 << 1;         // hooks.fence set
inline constexpr std::uint8_t hdr_require_fence = 1 << 2; // protocol.require_fence (implies the hook)
inline constexpr std::uint8_t hdr_boot_peer = 1 << 3;     // hooks.boot_peer set
inline constexpr std::uint8_t hdr_probe_icmp = 1 << 4;    // bits 4-5: 1 icmp, 2 both, else heartbeat
inline constexpr std::uint8_t hdr_probe_both = 2 << 4;
inline constexpr std::uint8_t hdr_byzantine = 1 << 6;     // crafted heartbeats may carry a valid tag
inline constexpr std::uint8_t hdr_auth_none = 1 << 7;     // [auth] mode = "none"
// Header byte 1: priorities, 2 bits per node (0, 1: 100, 2: 50, 3: 150).
// Header byte 2: start times, 2 bits per node (1 ms + n * 15 ms).
// Header byte 3: timing.
inline constexpr std::uint8_t hdr_flap_damping = 1 << 0;  // protocol.flap_hold_ms on
inline constexpr std::uint8_t hdr_no_refresh = 1 << 1;    // garp.refresh_ms = 0
inline constexpr std::uint8_t hdr_app_silent = 1 << 2;    // the application never answers a drain (until quiet)
inline constexpr std::uint8_t hdr_slow_link = 1 << 3;     // 900 us latency instead of 100 us
inline constexpr std::uint8_t hdr_slow_drain = 1 << 4;    // drains take 20 ms (past drain_timeout)

#define HEARTWIRE_FUZZ_OPS(X)                                                                    \
    X(advance_ticks)  /* n: (n + 1) turns of 500 us */                                          \
    X(advance_5ms)    /* n: n * 5 ms */                                                          \
    X(raw)            /* auth, len, len bytes: decoded and handed to the node */                 \
    X(crafted_hb)     /* auth, src, dst, fields (fuzz_fsm.cpp craft_hb), len, payload */        \
    X(forged_arp)     /* op, sha, spa, tha, tpa, broadcast */                                    \
    X(forged_icmp)    /* dst, src, reply, ip src, ip dst, own id?, [id16], seq back */           \
    X(drop)           /* i: an in-flight frame lost */                                           \
    X(deliver_now)    /* i: an in-flight frame overtakes the others */                          \
    X(duplicate)      /* i, n: a copy arrives n turns later */                                   \
    X(delay)          /* i, n: held n turns more */                                              \
    X(replay)         /* i, all: a recorded genuine frame sent again, to the node or to all */   \
    X(cut)            /* the node's switch port toggles (carrier stays up) */                    \
    X(switchover)     /* operator command */                                                     \
    X(fault)          /* kind: a health check fails (0 and 5 are ignored by the machine) */     \
    X(fault_cleared)                                                                             \
    X(carrier)        /* the node's link toggles (the machine hears a link command) */           \
    X(kill)           /* notice: crash; the guard sends engine_down when notice is odd */        \
    X(boot)           /* a dead node boots (new incarnation) */                                  \
    X(shutdown)       /* SIGTERM */                                                              \
    X(stall)          /* n: the node's loop stops for (n + 1) * 2 ms, frames queue */          \
    X(fence_fails)    /* bit: fences this node runs fail (until quiet) */                        \
    X(set_keys)       /* a, b, preferred: the node's keyring changes */                        \
    X(rx_stall)       /* n: pipelined mode, the RX lcore stops for (n + 1) * 2 ms, frames queue */
// New ops go at the end: a committed input keeps its meaning.

enum class op : std::uint8_t {
#define HW_X(name) name,
    HEARTWIRE_FUZZ_OPS(HW_X)
#undef HW_X
    count_
};
inline constexpr std::uint8_t op_count = static_cast<std::uint8_t>(op::count_);

} // namespace heartwire::fuzz
