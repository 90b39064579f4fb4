#pragma once
// Prometheus text exposition (format 0.0.4, prometheus.io/docs/instrumenting/exposition_formats):
// metric families in, the text a scrape or node_exporter's textfile collector reads out.
// Written here rather than with prometheus-cpp: Debian 12 has no package of it, and the
// format is a few rules (names, label escaping, histogram buckets) that a test checks
// against Prometheus's own promtool.

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace heartwire::control::metrics {

enum class kind { counter, gauge, histogram };

using labels = std::vector<std::pair<std::string, std::string>>;

struct sample {
    labels l;
    double value{};
};

// Buckets as (upper bound, count of observations <= it), ascending, without +Inf (added
// from count).
struct histogram {
    labels l;
    std::vector<std::pair<double, std::uint64_t>> buckets;
    double sum{};
    std::uint64_t count{};
};

struct family {
    std::string name; // counters end in _total, by convention (and promtool's lint)
    std::string help;
    kind k{kind::gauge};
    std::vector<sample> samples;
    std::vector<histogram> histograms;
};

std::string exposition(const std::vector<family>& families);
bool valid_name(std::string_view name) noexcept;       // [a-zA-Z_:][a-zA-Z0-9_:]*
bool valid_label_name(std::string_view name) noexcept; // [a-zA-Z_][a-zA-Z0-9_]*, not __*

// A log2 histogram of nanoseconds (bucket i: [2^i, 2^(i+1)) ns, as the engine keeps them)
// as seconds, cumulative.
histogram from_log2_ns(labels l, const std::uint64_t* counts, std::size_t n, double sum_ns);

} // namespace heartwire::control::metrics
