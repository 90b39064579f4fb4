// DPDK micro benchmarks: what the engine pays per hand-off and per GARP burst.
//
//   rte_ring SPSC between two lcores (the pipelined engine's RX -> role hand-off):
//     round trip   lcore 0 enqueues a token, lcore 1 returns it on a second ring
//     one way      lcore 0 enqueues its TSC, lcore 1 subtracts it from its own on dequeue
//   GARP burst into mbufs: rte_pktmbuf_alloc + wire::encode_garp per frame, freed in bulk
//     (where a real burst would go to rte_eth_tx_burst and the PMD would free it).
//
// Runs its own EAL (-l 0,1 --no-huge -m 256 --no-pci) before the benchmarks; arguments after
// `--` go to the EAL (e.g. `-- --file-prefix x`), the ones before to Google Benchmark.
// Counters: cycles/op from rte_rdtsc around the timed loop, next to Google Benchmark's ns.
// Two lcores on a 2-core VM: run it with nothing else busy-polling.

#include "heartwire/net_types.hpp"
#include "heartwire/wire.hpp"

#include <benchmark/benchmark.h>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_pause.h>
#include <rte_ring.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <span>
#include <string>
#include <unistd.h>
#include <vector>

namespace {

using namespace heartwire;

rte_mempool* g_pool = nullptr;
unsigned g_worker = RTE_MAX_LCORE;

struct cycle_meter {
    std::uint64_t start{0}, total{0};
    void resume() noexcept { start = rte_rdtsc(); }
    void pause() noexcept { total += rte_rdtsc() - start; }
    void report(benchmark::State& st, const char* name = "cycles/op") const {
        st.counters[name] = benchmark::Counter(static_cast<double>(total), benchmark::Counter::kAvgIterations);
    }
};

// ------------------------------------------------------------------ rings

// Producer and consumer indices of each ring already sit on their own cache lines; the
// control flags below get theirs too so the worker's spin does not false-share with them.
struct alignas(64) worker_ctl {
    std::atomic<bool> stop{false};
    alignas(64) std::atomic<std::uint64_t> handled{0};
    alignas(64) std::uint64_t lat_sum{0};
    std::uint64_t lat_max{0};
    rte_ring* in{nullptr};
    rte_ring* out{nullptr};
};

rte_ring* make_ring(const char* name) {
    rte_ring* r = rte_ring_lookup(name);
    if (r) return r;
    r = rte_ring_create(name, 1024, static_cast<int>(rte_socket_id()), RING_F_SP_ENQ | RING_F_SC_DEQ);
    if (!r) std::fprintf(stderr, "bench_dpdk: rte_ring_create(%s): %s\n", name, rte_strerror(rte_errno));
    return r;
}

void drain(rte_ring* r) {
    void* objs[64];
    while (rte_ring_sc_dequeue_burst(r, objs, 64, nullptr) > 0) {
    }
}

// Worker: bounce every object from `in` back on `out`.
int echo_worker(void* arg) {
    auto* c = static_cast<worker_ctl*>(arg);
    void* objs[32];
    while (!c->stop.load(std::memory_order_relaxed)) {
        const unsigned n = rte_ring_sc_dequeue_burst(c->in, objs, 32, nullptr);
        if (n == 0) {
            rte_pause();
            continue;
        }
        unsigned sent = 0;
        while (sent < n) sent += rte_ring_sp_enqueue_burst(c->out, objs + sent, n - sent, nullptr);
    }
    return 0;
}

// Worker: each object is the producer's TSC at enqueue; record now - it.
int latency_worker(void* arg) {
    auto* c = static_cast<worker_ctl*>(arg);
    void* objs[32];
    std::uint64_t handled = 0;
    for (;;) {
        const unsigned n = rte_ring_sc_dequeue_burst(c->in, objs, 32, nullptr);
        if (n == 0) {
            if (c->stop.load(std::memory_order_acquire) && rte_ring_empty(c->in)) break;
            rte_pause();
            continue;
        }
        const std::uint64_t now = rte_rdtsc();
        for (unsigned i = 0; i < n; ++i) {
            const auto sent = reinterpret_cast<std::uintptr_t>(objs[i]);
            const std::uint64_t d = now > sent ? now - sent : 0;
            c->lat_sum += d;
            if (d > c->lat_max) c->lat_max = d;
        }
        handled += n;
    }
    c->handled.store(handled, std::memory_order_release);
    return 0;
}

bool launch(lcore_function_t* fn, worker_ctl& c, benchmark::State& st) {
    if (g_worker == RTE_MAX_LCORE) {
        st.SkipWithError("needs a second lcore (EAL -l 0,1)");
        return false;
    }
    if (rte_eal_remote_launch(fn, &c, g_worker) != 0) {
        st.SkipWithError("rte_eal_remote_launch failed");
        return false;
    }
    return true;
}

// One token out to lcore 1 and back: two SPSC hand-offs and their cache-line transfers.
void BM_ring_spsc_round_trip(benchmark::State& st) {
    worker_ctl c;
    c.in = make_ring("bench_ping");
    c.out = make_ring("bench_pong");
    if (!c.in || !c.out) return st.SkipWithError("ring create failed");
    drain(c.in), drain(c.out);
    if (!launch(echo_worker, c, st)) return;
    void* token = reinterpret_cast<void*>(std::uintptr_t{1});
    void* back = nullptr;
    cycle_meter cm;
    cm.resume();
    for (auto _ : st) {
        while (rte_ring_sp_enqueue(c.in, token) != 0) rte_pause();
        while (rte_ring_sc_dequeue(c.out, &back) != 0) rte_pause();
        benchmark::DoNotOptimize(back);
    }
    cm.pause();
    c.stop.store(true);
    rte_eal_wait_lcore(g_worker);
    cm.report(st, "cycles/round_trip");
    st.SetItemsProcessed(st.iterations());
}

// One-way: producer stamps each object with its TSC; the consumer's average and worst
// enqueue -> dequeue latency in cycles, and the producer's throughput (burst size = arg).
void BM_ring_spsc_one_way(benchmark::State& st) {
    worker_ctl c;
    c.in = make_ring("bench_oneway");
    if (!c.in) return st.SkipWithError("ring create failed");
    drain(c.in);
    if (!launch(latency_worker, c, st)) return;
    const unsigned burst = static_cast<unsigned>(st.range(0));
    void* objs[64];
    cycle_meter cm;
    cm.resume();
    for (auto _ : st) {
        const std::uint64_t t = rte_rdtsc();
        for (unsigned i = 0; i < burst; ++i) objs[i] = reinterpret_cast<void*>(static_cast<std::uintptr_t>(t));
        unsigned sent = 0;
        while (sent < burst) {
            const unsigned n = rte_ring_sp_enqueue_burst(c.in, objs + sent, burst - sent, nullptr);
            if (n == 0) rte_pause();
            sent += n;
        }
    }
    cm.pause();
    c.stop.store(true, std::memory_order_release);
    rte_eal_wait_lcore(g_worker);
    const auto handled = c.handled.load(std::memory_order_acquire);
    cm.report(st, "cycles/burst");
    st.SetItemsProcessed(st.iterations() * burst);
    if (handled > 0) {
        st.counters["latency_cycles_avg"] = static_cast<double>(c.lat_sum) / static_cast<double>(handled);
        st.counters["latency_cycles_max"] = static_cast<double>(c.lat_max);
        st.counters["latency_ns_avg"] =
            static_cast<double>(c.lat_sum) / static_cast<double>(handled) * 1e9 / static_cast<double>(rte_get_tsc_hz());
    }
}

// ------------------------------------------------------------------ GARP burst

constexpr mac_addr bench_mac{{0x02, 0x68, 0x77, 0x00, 0x00, 0x01}};

// A burst of `arg` GARPs built into fresh mbufs, one rte_pktmbuf_alloc each, then freed in
// bulk. garp.repeat defaults to 3.
void BM_garp_burst_alloc_encode(benchmark::State& st) {
    const unsigned burst = static_cast<unsigned>(st.range(0));
    const ipv4_addr addr = *ipv4_addr::parse("169.254.10.100");
    rte_mbuf* ms[64];
    std::uint64_t bytes = 0;
    cycle_meter cm;
    cm.resume();
    for (auto _ : st) {
        unsigned n = 0;
        for (unsigned i = 0; i < burst; ++i) {
            rte_mbuf* m = rte_pktmbuf_alloc(g_pool);
            if (m == nullptr) break; // counted below: a real engine counts tx_nombuf
            const std::size_t len = wire::encode_garp(
                bench_mac, addr, std::span<std::byte>(rte_pktmbuf_mtod(m, std::byte*), rte_pktmbuf_tailroom(m)));
            m->data_len = static_cast<std::uint16_t>(len);
            m->pkt_len = static_cast<std::uint32_t>(len);
            bytes += len;
            ms[n++] = m;
        }
        benchmark::DoNotOptimize(ms[0]);
        if (n != burst) {
            rte_pktmbuf_free_bulk(ms, n);
            st.SkipWithError("mempool empty");
            break;
        }
        rte_pktmbuf_free_bulk(ms, n);
    }
    cm.pause();
    cm.report(st, "cycles/burst");
    st.counters["cycles/frame"] =
        benchmark::Counter(static_cast<double>(cm.total) / burst, benchmark::Counter::kAvgIterations);
    st.SetItemsProcessed(st.iterations() * burst);
    st.SetBytesProcessed(static_cast<std::int64_t>(bytes));
}

// The same with one rte_pktmbuf_alloc_bulk per burst.
void BM_garp_burst_alloc_bulk_encode(benchmark::State& st) {
    const unsigned burst = static_cast<unsigned>(st.range(0));
    const ipv4_addr addr = *ipv4_addr::parse("169.254.10.100");
    rte_mbuf* ms[64];
    cycle_meter cm;
    cm.resume();
    for (auto _ : st) {
        if (rte_pktmbuf_alloc_bulk(g_pool, ms, burst) != 0) {
            st.SkipWithError("mempool empty");
            break;
        }
        for (unsigned i = 0; i < burst; ++i) {
            rte_mbuf* m = ms[i];
            const std::size_t len = wire::encode_garp(
                bench_mac, addr, std::span<std::byte>(rte_pktmbuf_mtod(m, std::byte*), rte_pktmbuf_tailroom(m)));
            m->data_len = static_cast<std::uint16_t>(len);
            m->pkt_len = static_cast<std::uint32_t>(len);
        }
        benchmark::DoNotOptimize(ms[0]);
        rte_pktmbuf_free_bulk(ms, burst);
    }
    cm.pause();
    cm.report(st, "cycles/burst");
    st.counters["cycles/frame"] =
        benchmark::Counter(static_cast<double>(cm.total) / burst, benchmark::Counter::kAvgIterations);
    st.SetItemsProcessed(st.iterations() * burst);
}

BENCHMARK(BM_ring_spsc_round_trip)->UseRealTime();
BENCHMARK(BM_ring_spsc_one_way)->Arg(1)->Arg(32)->UseRealTime();
BENCHMARK(BM_garp_burst_alloc_encode)->Arg(1)->Arg(3)->Arg(32);
BENCHMARK(BM_garp_burst_alloc_bulk_encode)->Arg(3)->Arg(32);

} // namespace

int main(int argc, char** argv) {
    // Split: [benchmark args] -- [extra EAL args].
    std::vector<char*> bargs{argv[0]};
    std::vector<std::string> eal{argv[0], "-l", "0,1", "--no-huge", "-m", "256", "--no-pci", "--log-level",
                                 "lib.eal:error"};
    bool has_prefix = false;
    int i = 1;
    for (; i < argc && std::strcmp(argv[i], "--") != 0; ++i) bargs.push_back(argv[i]);
    for (++i; i < argc; ++i) {
        if (std::strcmp(argv[i], "--file-prefix") == 0) has_prefix = true;
        eal.emplace_back(argv[i]);
    }
    if (!has_prefix) eal.insert(eal.end(), {"--file-prefix", "hwbench" + std::to_string(getpid())});

    int bargc = static_cast<int>(bargs.size());
    benchmark::Initialize(&bargc, bargs.data());
    if (benchmark::ReportUnrecognizedArguments(bargc, bargs.data())) return 2;

    std::vector<char*> eargv;
    for (auto& s : eal) eargv.push_back(s.data());
    if (rte_eal_init(static_cast<int>(eargv.size()), eargv.data()) < 0) {
        std::fprintf(stderr, "bench_dpdk: rte_eal_init failed: %s (root? two CPUs for -l 0,1?)\n",
                     rte_strerror(rte_errno));
        return 1;
    }
    g_worker = rte_get_next_lcore(rte_lcore_id(), 1, 0);
    if (g_worker >= RTE_MAX_LCORE) g_worker = RTE_MAX_LCORE;
    g_pool = rte_pktmbuf_pool_create("bench_pool", 8191, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
                                     static_cast<int>(rte_socket_id()));
    if (!g_pool) {
        std::fprintf(stderr, "bench_dpdk: mbuf pool: %s\n", rte_strerror(rte_errno));
        rte_eal_cleanup();
        return 1;
    }
    benchmark::AddCustomContext("tsc_hz", std::to_string(rte_get_tsc_hz()));
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    rte_mempool_free(g_pool);
    rte_eal_cleanup();
    return 0;
}
