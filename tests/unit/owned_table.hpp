#pragma once
// A replica::table in its own 64-byte aligned heap region, as heartwired maps one: for the
// unit tests, the fuzz target and the microbenchmarks (no shared memory file).

#include <cstddef>
#include <cstdlib>
#include <memory>

#include "heartwire/replica.hpp"

namespace heartwire::test {

struct owned_table {
    std::unique_ptr<std::byte[], void (*)(std::byte*)> mem{nullptr, [](std::byte* p) { std::free(p); }};
    replica::table t;
    explicit owned_table(const replica::table_geometry& g) {
        const std::size_t n = (g.region_bytes() + 63) & ~std::size_t{63};
        mem.reset(static_cast<std::byte*>(std::aligned_alloc(64, n)));
        t = replica::table::create({mem.get(), n}, g);
    }
};

} // namespace heartwire::test
