#include "control/metrics.hpp"

#include <cmath>
#include <cstdio>

namespace heartwire::control::metrics {

namespace {

std::string number(double v) {
    if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
    if (std::isnan(v)) return "NaN";
    char b[40];
    if (v == std::floor(v) && std::fabs(v) < 1e15) std::snprintf(b, sizeof b, "%.0f", v);
    else std::snprintf(b, sizeof b, "%.9g", v);
    return b;
}

// Label values: backslash, double quote and line feed escaped; the rest as is (UTF-8).
void put_labels(std::string& o, const labels& l, const char* extra_name = nullptr, const std::string& extra = {}) {
    if (l.empty() && !extra_name) return;
    o += '{';
    bool first = true;
    const auto one = [&](const std::string& k, const std::string& v) {
        if (!first) o += ',';
        first = false;
        o += k;
        o += "=\"";
        for (const char c : v) {
            if (c == '\\') o += "\\\\";
            else if (c == '"') o += "\\\"";
            else if (c == '\n') o += "\\n";
            else o += c;
        }
        o += '"';
    };
    for (const auto& [k, v] : l) one(k, v);
    if (extra_name) one(extra_name, extra);
    o += '}';
}

// HELP text: backslash and line feed escaped.
std::string help_text(const std::string& h) {
    std::string o;
    for (const char c : h) {
        if (c == '\\') o += "\\\\";
        else if (c == '\n') o += "\\n";
        else o += c;
    }
    return o;
}

} // namespace

bool valid_name(std::string_view n) noexcept {
    if (n.empty()) return false;
    for (std::size_t i = 0; i < n.size(); ++i) {
        const char c = n[i];
        const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
        if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return false;
    }
    return true;
}

bool valid_label_name(std::string_view n) noexcept {
    if (n.empty() || n.rfind("__", 0) == 0) return false;
    for (std::size_t i = 0; i < n.size(); ++i) {
        const char c = n[i];
        const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
        if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return false;
    }
    return true;
}

std::string exposition(const std::vector<family>& families) {
    std::string o;
    for (const auto& f : families) {
        if (!valid_name(f.name) || (f.samples.empty() && f.histograms.empty())) continue;
        o += "# HELP " + f.name + " " + help_text(f.help) + "\n";
        o += "# TYPE " + f.name + " " +
             (f.k == kind::counter ? "counter" : f.k == kind::gauge ? "gauge" : "histogram") + "\n";
        for (const auto& s : f.samples) {
            o += f.name;
            put_labels(o, s.l);
            o += ' ' + number(s.value) + '\n';
        }
        for (const auto& h : f.histograms) {
            for (const auto& [le, n] : h.buckets) {
                o += f.name + "_bucket";
                put_labels(o, h.l, "le", number(le));
                o += ' ' + number(static_cast<double>(n)) + '\n';
            }
            o += f.name + "_bucket";
            put_labels(o, h.l, "le", "+Inf");
            o += ' ' + number(static_cast<double>(h.count)) + '\n';
            o += f.name + "_sum";
            put_labels(o, h.l);
            o += ' ' + number(h.sum) + '\n';
            o += f.name + "_count";
            put_labels(o, h.l);
            o += ' ' + number(static_cast<double>(h.count)) + '\n';
        }
    }
    return o;
}

histogram from_log2_ns(labels l, const std::uint64_t* counts, std::size_t n, double sum_ns) {
    // The same bounds on every scrape (rate() over buckets needs them): 2^10 ns (~1 us) to
    // 2^34 ns (~17 s); what lies below is in the first, what above only in +Inf.
    constexpr std::size_t lo = 9, hi = 33; // bucket i ends at 2^(i+1) ns
    histogram h;
    h.l = std::move(l);
    std::uint64_t cum = 0;
    for (std::size_t i = 0; i < n; ++i) {
        cum += counts[i];
        if (i >= lo && i <= hi) h.buckets.emplace_back(std::ldexp(1.0, static_cast<int>(i) + 1) * 1e-9, cum);
    }
    for (std::size_t i = n; i <= hi; ++i)
        if (i >= lo) h.buckets.emplace_back(std::ldexp(1.0, static_cast<int>(i) + 1) * 1e-9, cum);
    h.count = cum;
    h.sum = sum_ns * 1e-9;
    return h;
}

} // namespace heartwire::control::metrics
