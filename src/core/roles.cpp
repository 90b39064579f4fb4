#include "heartwire/roles.hpp"

namespace heartwire {

std::string_view to_string(role r) noexcept {
    switch (r) {
#define HW_X(name, val)                                                                          \
    case role::name:                                                                             \
        return #name;
        HEARTWIRE_ROLES(HW_X)
#undef HW_X
    }
    return "unknown";
}

bool parse_role(std::string_view s, role& out) noexcept {
#define HW_X(name, val)                                                                          \
    if (s == #name) {                                                                            \
        out = role::name;                                                                        \
        return true;                                                                             \
    }
    HEARTWIRE_ROLES(HW_X)
#undef HW_X
    return false;
}

} // namespace heartwire
