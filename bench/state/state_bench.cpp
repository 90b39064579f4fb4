// state_bench: the application side of the replicated-store benchmark (bench/state/run.sh,
// bench/README.md "Replicated state store (issue 10)"). It maps a store's region as any
// application does (heartwire/state.hpp) and measures what the application sees; the
// daemons, namespaces and the peer's status are run.sh's (state.py's) business.
//
//   state_bench sync  --path P [--writes N] [--warmup N] [--keys K] [--value-bytes V] [--ladder FILE]
//       one write outstanding at a time: put -> wait() returns, per write (ns)
//   state_bench async --path P [--writes N] [--keys K] [--value-bytes V]
//       puts as fast as one thread can; completion = applied here; and how fast the
//       monitor's acknowledgements (the header's replicated_seq) follow
//   state_bench fill  --path P --records N [--value-bytes V]
//       N distinct records, then waits until all are applied (a primary for a snapshot)
//   state_bench load  --path P[,P2...] --rate R
//       R writes a second, paced every millisecond, to whichever region's engine is alive
//       and primary, until SIGTERM or SIGINT (a write load under failure injections)
//
// Each prints one JSON object on stdout (times in ns, wall stamps CLOCK_REALTIME ns so the
// caller can line them up with the daemons' status); diagnostics go to stderr; exit 1 when
// the measurement could not be made (no region, never primary, not in sync).

#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "heartwire/replica.hpp"
#include "heartwire/replication.hpp" // op_put
#include "heartwire/roles.hpp"
#include "heartwire/state.hpp"

namespace {

namespace st = heartwire::state;
using steady = std::chrono::steady_clock;
using namespace std::chrono_literals;

volatile std::sig_atomic_t quit = 0;
void on_signal(int) { quit = 1; }

std::uint64_t mono_ns() noexcept {
    return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(steady::now().time_since_epoch()).count());
}

std::uint64_t wall_ns() noexcept {
    timespec ts{};
    clock_gettime(CLOCK_REALTIME, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<std::uint64_t>(ts.tv_nsec);
}

struct options {
    std::string mode;
    std::vector<std::string> paths;
    std::uint64_t writes{50'000};
    std::uint64_t warmup{2'000};
    std::uint64_t keys{4'096};
    std::uint64_t records{0};
    std::uint64_t rate{50'000};
    std::uint32_t value_bytes{16};
    std::uint32_t timeout_ms{200};
    std::uint32_t open_wait_ms{20'000};
    std::uint32_t max_seconds{60}; // sync, async: stop there whatever --writes says (a wedged pair)
    std::string ladder; // sync: the percentile ladder as CSV
    bool split{false};  // sync: wait() by hand, to stamp when the engine took the write
};

[[noreturn]] void usage(const char* why) {
    std::fprintf(stderr,
                 "state_bench: %s\n"
                 "usage: state_bench sync|async|fill|load --path P[,P2] [--writes N] [--warmup N] [--keys K]\n"
                 "       [--records N] [--rate R] [--value-bytes V] [--timeout-ms T] [--open-wait-ms T] [--max-seconds S]\n"
                 "       [--ladder FILE] [--split 0|1]\n",
                 why);
    std::exit(2);
}

std::uint64_t number(const char* opt, const char* v) {
    char* end = nullptr;
    errno = 0;
    const unsigned long long n = std::strtoull(v, &end, 10);
    if (errno != 0 || end == v || *end != '\0') {
        std::fprintf(stderr, "state_bench: %s %s: not a number\n", opt, v);
        std::exit(2);
    }
    return n;
}

options parse(int argc, char** argv) {
    options o;
    if (argc < 2) usage("no mode");
    o.mode = argv[1];
    for (int i = 2; i < argc; ++i) {
        const std::string_view a = argv[i];
        if (i + 1 >= argc) usage("an option without its value");
        const char* v = argv[++i];
        if (a == "--path") {
            std::string_view s = v;
            while (!s.empty()) {
                const auto c = s.find(',');
                o.paths.emplace_back(s.substr(0, c));
                s = c == std::string_view::npos ? std::string_view{} : s.substr(c + 1);
            }
        } else if (a == "--writes") o.writes = number(argv[i - 1], v);
        else if (a == "--warmup") o.warmup = number(argv[i - 1], v);
        else if (a == "--keys") o.keys = std::max<std::uint64_t>(1, number(argv[i - 1], v));
        else if (a == "--records") o.records = number(argv[i - 1], v);
        else if (a == "--rate") o.rate = number(argv[i - 1], v);
        else if (a == "--value-bytes") o.value_bytes = static_cast<std::uint32_t>(number(argv[i - 1], v));
        else if (a == "--timeout-ms") o.timeout_ms = static_cast<std::uint32_t>(number(argv[i - 1], v));
        else if (a == "--open-wait-ms") o.open_wait_ms = static_cast<std::uint32_t>(number(argv[i - 1], v));
        else if (a == "--max-seconds") o.max_seconds = static_cast<std::uint32_t>(number(argv[i - 1], v));
        else if (a == "--ladder") o.ladder = v;
        else if (a == "--split") o.split = number(argv[i - 1], v) != 0;
        else usage("unknown option");
    }
    if (o.paths.empty()) usage("--path is required");
    return o;
}

// Keys "k00000042": fixed length, so every write costs the same on the wire.
struct key_maker {
    char buf[24];
    std::string_view operator()(std::uint64_t i) noexcept {
        const int n = std::snprintf(buf, sizeof buf, "k%08llu", static_cast<unsigned long long>(i));
        return {buf, static_cast<std::size_t>(n)};
    }
};

std::vector<std::byte> value_of(std::uint32_t bytes) {
    std::vector<std::byte> v(bytes);
    for (std::size_t i = 0; i < v.size(); ++i) v[i] = std::byte(static_cast<std::uint8_t>('a' + i % 26));
    return v;
}

// The region as heartwired made it, once it is there and (want_primary) its node is primary
// with (want_sync) the monitor's replica in sync.
std::optional<st::client> open_client(const options& o, bool want_primary, bool want_sync) {
    const auto end = steady::now() + std::chrono::milliseconds(o.open_wait_ms);
    std::string err;
    std::optional<st::client> c;
    while (steady::now() < end) {
        if (!c || c->replaced()) c = st::client::open(o.paths[0], err);
        if (c && (!want_primary || c->node_role() == heartwire::role::primary) && (!want_sync || c->in_sync())) return c;
        std::this_thread::sleep_for(10ms);
    }
    if (!c) std::fprintf(stderr, "state_bench: %s: %s (is heartwired running with this [[state]] path?)\n", o.paths[0].c_str(), err.c_str());
    else
        std::fprintf(stderr, "state_bench: %s: node is %s, replica %s after %u ms\n", o.paths[0].c_str(),
                     std::string(heartwire::to_string(c->node_role())).c_str(), c->in_sync() ? "in sync" : "not in sync", o.open_wait_ms);
    return std::nullopt;
}

std::uint64_t pct(const std::vector<std::uint64_t>& sorted, double q) {
    if (sorted.empty()) return 0;
    const auto rank = static_cast<std::size_t>(std::max(1.0, std::ceil(q / 100.0 * static_cast<double>(sorted.size()))));
    return sorted[std::min(rank, sorted.size()) - 1];
}

// ------------------------------------------------------------------ sync

int run_sync(const options& o) {
    auto c = open_client(o, true, true);
    if (!c) return 1;
    if (!c->raw().header().sync) {
        std::fprintf(stderr, "state_bench sync: %s is an asynchronous store\n", o.paths[0].c_str());
        return 1;
    }
    const auto value = value_of(o.value_bytes);
    key_maker key;
    const auto timeout = std::chrono::milliseconds(o.timeout_ms);
    std::vector<std::uint64_t> lat, drain_part, repl_part;
    lat.reserve(o.writes);
    std::uint64_t timeouts = 0, refused = 0, degraded = 0;
    for (std::uint64_t i = 0; i < o.warmup; ++i) (void)c->wait(c->put(key(i % o.keys), value), timeout);
    const std::uint64_t w0 = wall_ns(), m0 = mono_ns();
    const std::uint64_t stop_at = m0 + std::uint64_t{o.max_seconds} * 1'000'000'000ull;
    for (std::uint64_t i = 0; i < o.writes && !quit; ++i) {
        if ((i & 63) == 63 && mono_ns() > stop_at) break;
        const std::string_view k = key(i % o.keys);
        const std::uint64_t t0 = mono_ns();
        const std::uint64_t t = c->put(k, value);
        bool ok;
        if (o.split) {
            // client::wait()'s loop (spin, a yield every 256 turns), stamping the first
            // time the ticket has its seq: the engine drained the queue cell.
            ok = false;
            std::uint64_t taken = 0;
            for (std::uint32_t spins = 0; t != 0; ++spins) {
                const std::uint64_t seq = c->raw().seq_of(t);
                if (seq == ~0ull) break;
                if (seq != 0 && taken == 0) taken = mono_ns();
                if (seq != 0 && c->complete_seq() >= seq) {
                    ok = c->wait_seq(seq, std::chrono::nanoseconds{0}); // what wait() tells the engine (its CPU, what it saw)
                    break;
                }
                if ((spins & 255) == 255) {
                    if (mono_ns() - t0 > std::uint64_t{o.timeout_ms} * 1'000'000) break;
                    std::this_thread::yield();
                }
            }
            if (ok) drain_part.push_back(taken - t0);
        } else {
            ok = t != 0 && c->wait(t, timeout);
        }
        const std::uint64_t t1 = mono_ns();
        if (ok && o.split) repl_part.push_back(t1 - t0 - drain_part.back());
        // A write that completed while no monitor was in sync completed on the primary alone:
        // it measures nothing of the replication.
        if (!c->in_sync()) ++degraded;
        if (t == 0 || c->refused(t)) ++refused;
        else if (!ok) ++timeouts;
        lat.push_back(t1 - t0);
    }
    const std::uint64_t m1 = mono_ns(), w1 = wall_ns();
    std::vector<std::uint64_t> s = lat;
    std::sort(s.begin(), s.end());
    double sum = 0;
    for (const auto v : s) sum += static_cast<double>(v);
    if (!o.ladder.empty()) {
        if (FILE* f = std::fopen(o.ladder.c_str(), "w")) {
            std::fprintf(f, "percentile,ns\n");
            for (const double q : {0.0, 1.0, 5.0, 10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.95, 99.99, 100.0})
                std::fprintf(f, "%g,%llu\n", q, static_cast<unsigned long long>(q == 0.0 ? s.front() : pct(s, q)));
            std::fclose(f);
        }
    }
    std::sort(drain_part.begin(), drain_part.end());
    std::sort(repl_part.begin(), repl_part.end());
    if (o.split)
        std::fprintf(stderr, "split: taken by the engine p50 %llu p99 %llu ns; taken -> complete p50 %llu p99 %llu ns\n",
                     static_cast<unsigned long long>(pct(drain_part, 50)), static_cast<unsigned long long>(pct(drain_part, 99)),
                     static_cast<unsigned long long>(pct(repl_part, 50)), static_cast<unsigned long long>(pct(repl_part, 99)));
    std::printf("{\"mode\":\"sync\",\"split\":%s,\"taken_p50\":%llu,\"taken_p99\":%llu,\"replicated_p50\":%llu,"
                "\"replicated_p99\":%llu,",
                o.split ? "true" : "false", static_cast<unsigned long long>(pct(drain_part, 50)),
                static_cast<unsigned long long>(pct(drain_part, 99)), static_cast<unsigned long long>(pct(repl_part, 50)),
                static_cast<unsigned long long>(pct(repl_part, 99)));
    std::printf("\"writes\":%zu,\"value_bytes\":%u,\"keys\":%llu,\"timeouts\":%llu,\"refused\":%llu,"
                "\"degraded\":%llu,\"elapsed_ns\":%llu,\"wall_start_ns\":%llu,\"wall_end_ns\":%llu,"
                "\"min\":%llu,\"p50\":%llu,\"p90\":%llu,\"p99\":%llu,\"p99_9\":%llu,\"p99_99\":%llu,\"max\":%llu,\"mean\":%.0f}\n",
                s.size(), o.value_bytes, static_cast<unsigned long long>(o.keys), static_cast<unsigned long long>(timeouts),
                static_cast<unsigned long long>(refused), static_cast<unsigned long long>(degraded),
                static_cast<unsigned long long>(m1 - m0), static_cast<unsigned long long>(w0), static_cast<unsigned long long>(w1),
                static_cast<unsigned long long>(s.empty() ? 0 : s.front()), static_cast<unsigned long long>(pct(s, 50)),
                static_cast<unsigned long long>(pct(s, 90)), static_cast<unsigned long long>(pct(s, 99)),
                static_cast<unsigned long long>(pct(s, 99.9)), static_cast<unsigned long long>(pct(s, 99.99)),
                static_cast<unsigned long long>(s.empty() ? 0 : s.back()), s.empty() ? 0.0 : sum / static_cast<double>(s.size()));
    return s.empty() ? 1 : 0;
}

// ------------------------------------------------------------------ async

struct sample {
    std::uint64_t t, applied, replicated;
};

int run_async(const options& o) {
    auto c = open_client(o, true, true);
    if (!c) return 1;
    const auto& h = c->raw().header();
    const auto value = value_of(o.value_bytes);
    key_maker key;
    std::vector<sample> samples;
    samples.reserve(1 << 16);
    std::uint64_t last = 0, full = 0, last_sample = 0;
    const std::uint64_t r0 = h.replicated_seq.load(std::memory_order_acquire);
    const std::uint64_t w0 = wall_ns(), t0 = mono_ns();
    const std::uint64_t stop_at = t0 + std::uint64_t{o.max_seconds} * 1'000'000'000ull;
    std::uint64_t issued = 0;
    samples.push_back({t0, h.applied_seq.load(std::memory_order_acquire), r0});
    for (std::uint64_t i = 0; i < o.writes && !quit; ++i, ++issued) {
        if ((i & 4095) == 4095 && mono_ns() > stop_at) break;
        const std::uint64_t t = c->put(key(i % o.keys), value);
        if (t == 0) ++full; // the queue stayed full for 10 ms: the engine did not drain
        else last = t;
        if ((i & 255) == 255) {
            const std::uint64_t now = mono_ns();
            if (now - last_sample >= 100'000) {
                last_sample = now;
                samples.push_back({now, h.applied_seq.load(std::memory_order_acquire), h.replicated_seq.load(std::memory_order_acquire)});
            }
        }
    }
    const std::uint64_t t_enq = mono_ns();
    if (last == 0 || !c->wait(last, 10s)) {
        std::fprintf(stderr, "state_bench async: the last write did not complete in 10 s\n");
        return 1;
    }
    const std::uint64_t t_applied = mono_ns();
    const std::uint64_t seq_last = c->raw().seq_of(last);
    std::uint64_t t_repl = 0;
    for (const std::uint64_t end = t_applied + 10'000'000'000ull;;) {
        const std::uint64_t now = mono_ns();
        const std::uint64_t r = h.replicated_seq.load(std::memory_order_acquire);
        if ((now - last_sample) >= 100'000 || r >= seq_last) {
            last_sample = now;
            samples.push_back({now, h.applied_seq.load(std::memory_order_acquire), r});
        }
        if (r >= seq_last) {
            t_repl = now;
            break;
        }
        if (now > end) break;
        std::this_thread::yield();
    }
    // How long after a seq was applied here the monitor's acknowledgement of it showed in
    // the header: per sample, its replicated seq against the first sample that had it
    // applied (so an upper bound, at the 100 us sampling step).
    std::vector<std::uint64_t> follow, lag_entries;
    std::size_t j = 0;
    for (const auto& s : samples) {
        while (j < samples.size() && samples[j].applied < s.replicated) ++j;
        if (j < samples.size() && s.replicated > r0) follow.push_back(s.t - std::min(s.t, samples[j].t));
        lag_entries.push_back(s.applied - std::min(s.applied, s.replicated));
    }
    std::sort(follow.begin(), follow.end());
    std::sort(lag_entries.begin(), lag_entries.end());
    const double applied_s = static_cast<double>(t_applied - t0) / 1e9;
    const double enq_s = static_cast<double>(t_enq - t0) / 1e9;
    const double repl_s = t_repl ? static_cast<double>(t_repl - t0) / 1e9 : 0.0;
    const std::uint64_t n = issued - full;
    std::printf("{\"mode\":\"async\",\"writes\":%llu,\"queue_full\":%llu,\"value_bytes\":%u,\"keys\":%llu,"
                "\"wall_start_ns\":%llu,\"wall_end_ns\":%llu,\"enqueue_s\":%.6f,\"applied_s\":%.6f,\"replicated_s\":%.6f,"
                "\"enqueue_per_s\":%.0f,\"applied_per_s\":%.0f,\"replicated_per_s\":%.0f,\"replicated_after_applied_ns\":%llu,"
                "\"follow_p50_ns\":%llu,\"follow_p99_ns\":%llu,\"follow_max_ns\":%llu,\"lag_entries_p50\":%llu,\"lag_entries_max\":%llu,"
                "\"samples\":%zu,\"replicated_done\":%s}\n",
                static_cast<unsigned long long>(n), static_cast<unsigned long long>(full), o.value_bytes,
                static_cast<unsigned long long>(o.keys), static_cast<unsigned long long>(w0), static_cast<unsigned long long>(wall_ns()),
                enq_s, applied_s, repl_s, static_cast<double>(n) / enq_s, static_cast<double>(n) / applied_s,
                repl_s > 0 ? static_cast<double>(seq_last - r0) / repl_s : 0.0,
                static_cast<unsigned long long>(t_repl ? t_repl - t_applied : 0), static_cast<unsigned long long>(pct(follow, 50)),
                static_cast<unsigned long long>(pct(follow, 99)), static_cast<unsigned long long>(follow.empty() ? 0 : follow.back()),
                static_cast<unsigned long long>(pct(lag_entries, 50)),
                static_cast<unsigned long long>(lag_entries.empty() ? 0 : lag_entries.back()), samples.size(), t_repl ? "true" : "false");
    return t_repl ? 0 : 1;
}

// ------------------------------------------------------------------ fill

int run_fill(const options& o) {
    auto c = open_client(o, true, false);
    if (!c) return 1;
    const auto value = value_of(o.value_bytes);
    key_maker key;
    std::uint64_t last = 0, retries = 0;
    const std::uint64_t t0 = mono_ns();
    for (std::uint64_t i = 0; i < o.records && !quit; ++i) {
        std::uint64_t t;
        while ((t = c->put(key(i), value)) == 0 && !quit) ++retries;
        last = t;
    }
    const bool ok = last != 0 && c->wait(last, 30s);
    const std::uint64_t t1 = mono_ns();
    std::printf("{\"mode\":\"fill\",\"records\":%llu,\"value_bytes\":%u,\"ok\":%s,\"retries\":%llu,\"elapsed_ns\":%llu,\"table_count\":%llu}\n",
                static_cast<unsigned long long>(o.records), o.value_bytes, ok ? "true" : "false",
                static_cast<unsigned long long>(retries), static_cast<unsigned long long>(t1 - t0),
                static_cast<unsigned long long>(c->raw().table().count()));
    return ok ? 0 : 1;
}

// ------------------------------------------------------------------ load

// One region of the load: attached directly (enqueue with no patience: a full queue costs
// a skipped write, not a 10 ms stall of the pacing).
struct target {
    std::string path;
    std::unique_ptr<st::region> r;
    bool live{false}; // its engine is running and its node primary
};

void refresh(target& t) {
    std::string err;
    if (!t.r || !t.r->is_at(t.path)) t.r = st::region::attach(t.path, err);
    if (!t.r) {
        t.live = false;
        return;
    }
    const auto& h = t.r->header();
    // A SIGKILLed engine leaves its region saying "primary": its pid says it is gone.
    const auto pid = static_cast<pid_t>(h.writer_pid.load(std::memory_order_relaxed));
    const bool alive = pid > 0 && (::kill(pid, 0) == 0 || errno == EPERM);
    t.live = alive && static_cast<heartwire::role>(h.role.load(std::memory_order_relaxed)) == heartwire::role::primary;
}

int run_load(const options& o) {
    std::vector<target> ts;
    for (const auto& p : o.paths) ts.push_back({p, nullptr, false});
    const auto value = value_of(o.value_bytes);
    key_maker key;
    std::uint64_t puts = 0, full = 0, idle_ticks = 0, ticks = 0, late_ticks = 0, i = 0;
    const std::uint64_t w0 = wall_ns();
    timespec next{};
    clock_gettime(CLOCK_MONOTONIC, &next);
    double owed = 0;
    std::uint64_t last_refresh = 0;
    while (!quit) {
        const std::uint64_t now = mono_ns();
        if (now - last_refresh >= 20'000'000) { // a stat(2) and a kill(0) per region
            last_refresh = now;
            for (auto& t : ts) refresh(t);
        }
        target* to = nullptr;
        for (auto& t : ts)
            if (t.live) to = &t;
        ++ticks;
        owed = std::min(owed + static_cast<double>(o.rate) / 1000.0, static_cast<double>(o.rate) / 100.0); // at most 10 ms behind
        if (to == nullptr) {
            ++idle_ticks;
            owed = 0;
        } else {
            for (; owed >= 1.0; owed -= 1.0) {
                if (to->r->enqueue(heartwire::replica::op_put, key(i++ % o.keys), value, 0ns) == 0) ++full;
                else ++puts;
            }
        }
        next.tv_nsec += 1'000'000;
        if (next.tv_nsec >= 1'000'000'000) {
            next.tv_nsec -= 1'000'000'000;
            ++next.tv_sec;
        }
        timespec cur{};
        clock_gettime(CLOCK_MONOTONIC, &cur);
        if (cur.tv_sec > next.tv_sec || (cur.tv_sec == next.tv_sec && cur.tv_nsec > next.tv_nsec)) ++late_ticks;
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, nullptr);
    }
    const std::uint64_t w1 = wall_ns();
    std::printf("{\"mode\":\"load\",\"rate\":%llu,\"puts\":%llu,\"queue_full\":%llu,\"ticks\":%llu,\"no_primary_ticks\":%llu,"
                "\"late_ticks\":%llu,\"wall_start_ns\":%llu,\"wall_end_ns\":%llu,\"achieved_per_s\":%.0f}\n",
                static_cast<unsigned long long>(o.rate), static_cast<unsigned long long>(puts), static_cast<unsigned long long>(full),
                static_cast<unsigned long long>(ticks), static_cast<unsigned long long>(idle_ticks),
                static_cast<unsigned long long>(late_ticks), static_cast<unsigned long long>(w0), static_cast<unsigned long long>(w1),
                static_cast<double>(puts) / (static_cast<double>(w1 - w0) / 1e9));
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    const options o = parse(argc, argv);
    struct sigaction sa{};
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
    if (o.mode == "sync") return run_sync(o);
    if (o.mode == "async") return run_async(o);
    if (o.mode == "fill") return run_fill(o);
    if (o.mode == "load") return run_load(o);
    usage("mode must be sync, async, fill or load");
}
