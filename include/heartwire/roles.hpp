#pragma once
// The roles a node can be in (DESIGN.md "Roles and the protocol"). One X-macro list makes
// the enum, the names and the wire values (a node's role travels in every frame).

#include <cstdint>
#include <string_view>

namespace heartwire {

#define HEARTWIRE_ROLES(X)                                                                       \
    X(init, 0)          /* not started */                                                       \
    X(probe_primary, 1) /* boot: is the primary address held? (seed 002 FIG. 1) */              \
    X(primary, 2)       /* holds the primary address, serves clients */                         \
    X(probe_monitor, 3) /* is the monitor address held? (seed 002 FIG. 2) */                   \
    X(monitor, 4)       /* holds the monitor address, probes the primary */                     \
    X(standby, 5)       /* holds nothing, re-probes the monitor address (N+M loop, [0029]) */   \
    X(draining, 6)      /* primary finishing in-flight work before a switchover */              \
    X(fenced, 7)        /* told to stay down by a newer primary; holds nothing */               \
    X(fault, 8)         /* a local health check failed */

enum class role : std::uint8_t {
#define HW_X(name, val) name = val,
    HEARTWIRE_ROLES(HW_X)
#undef HW_X
};
inline constexpr std::uint8_t role_count = 9;

std::string_view to_string(role r) noexcept;
bool parse_role(std::string_view s, role& out) noexcept;

} // namespace heartwire
