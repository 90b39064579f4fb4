// State machine and detector micro benchmarks: one fsm::step per event kind on the hot path,
// and the detector's per-probe bookkeeping. DESIGN.md target: a state machine step <= 100 ns.
//
// The states are grown by the unit tests' simulator (tests/unit/sim.hpp): a primary and a
// monitor that found each other through discovery and exchanged answers, so every step here
// runs on a realistic peer table and an armed detector. Reported as ns per step and as
// cycles per step (TSC, read around the timed loop only).
//
// Steps that move the state on (a probe sent, an answer taken) need a state that can take
// another one: the detector runs with miss = 1000 here, and every `batch` steps the loop
// pauses (untimed, uncounted) to put the state back. Pause/resume costs well under 1% of a
// batch of 256.

#include "heartwire/detector.hpp"
#include "heartwire/fsm.hpp"
#include "sim.hpp"

#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdint>
#include <thread>

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#endif

namespace {

using namespace heartwire;
using sim::us;

std::uint64_t tsc() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    return __rdtsc();
#else
    return static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
#endif
}

// Accumulates TSC cycles over the timed parts of a benchmark loop.
class cycle_meter {
public:
    void resume() noexcept { start_ = tsc(); }
    void pause() noexcept { total_ += tsc() - start_; }
    void report(benchmark::State& st) const {
        st.counters["cycles/op"] = benchmark::Counter(static_cast<double>(total_), benchmark::Counter::kAvgIterations);
    }

private:
    std::uint64_t start_{0};
    std::uint64_t total_{0};
};

// An action sink that only counts: a real one encodes into an mbuf, which bench_dpdk measures.
struct null_sink final : fsm::action_sink {
    std::uint64_t n{0};
    void emit(const fsm::action& a) noexcept override {
        benchmark::DoNotOptimize(&a);
        ++n;
    }
};

constexpr std::size_t batch = 256;

// A steady pair, built once: node 0 primary, node 1 monitor with an armed detector.
struct pair_fixture {
    fsm::state primary;
    fsm::state monitor;
    std::uint64_t now{};
    wire::frame probe;     // a probe as the monitor sends it to the primary
    wire::frame ack;       // an ack as the primary sends it to the monitor
    bool ok{false};

    pair_fixture() {
        sim::network net;
        net.add(sim::test_params(1));
        net.add(sim::test_params(2));
        net.start(0);
        net.run_until([&] { return net.role_of(0) == role::primary; }, 500 * sim::ms);
        net.start(1);
        net.run_until([&] { return net.role_of(1) == role::monitor && net.nodes[1].s.c.answers > 10; },
                      500 * sim::ms);
        if (net.role_of(0) != role::primary || net.role_of(1) != role::monitor) return;
        primary = net.nodes[0].s;
        monitor = net.nodes[1].s;
        now = net.now;
        // Room for a batch of unanswered probes without a takeover.
        auto dp = monitor.det.config();
        dp.miss = 1000;
        monitor.det.configure(dp);

        // One probe from the monitor, and the primary's answer to it, as decoded frames.
        sim::recorder out;
        fsm::event tick{fsm::event_kind::tick};
        std::uint64_t t = now;
        for (int i = 0; i < 100 && !out.last(fsm::action_kind::send_heartbeat); ++i)
            fsm::step(monitor, tick, t += us, out);
        const auto* sent = out.last(fsm::action_kind::send_heartbeat);
        if (!sent || !sim::to_frame(*sent, monitor.p, probe)) return;
        out.clear();
        fsm::step(primary, fsm::event{fsm::event_kind::frame, &probe}, t + 2 * us, out);
        const auto* answer = out.last(fsm::action_kind::send_heartbeat);
        if (!answer || !sim::to_frame(*answer, primary.p, ack)) return;
        now = t + 3 * us;
        ok = true;
    }
};

const pair_fixture& fixture() {
    static const pair_fixture f;
    return f;
}

// Monitor, a loop turn with nothing due: the common case, many turns per probe interval.
void BM_fsm_monitor_tick_idle(benchmark::State& st) {
    const auto& fx = fixture();
    if (!fx.ok) return st.SkipWithError("simulated pair did not settle");
    fsm::state s = fx.monitor;
    null_sink out;
    const fsm::event ev{fsm::event_kind::tick};
    // Just after a probe went out: the next is an interval away.
    std::uint64_t now = s.det.next_probe_ns() - s.p.interval_ns / 2;
    cycle_meter cm;
    cm.resume();
    for (auto _ : st) {
        fsm::step(s, ev, now, out);
        benchmark::DoNotOptimize(s.c.probes_sent);
    }
    cm.pause();
    cm.report(st);
    if (s.r != role::monitor || out.n != 0) st.SkipWithError("idle tick did something");
}

// Monitor, the tick on which a probe is due: detector bookkeeping + a heartbeat action.
void BM_fsm_monitor_tick_probe(benchmark::State& st) {
    const auto& fx = fixture();
    if (!fx.ok) return st.SkipWithError("simulated pair did not settle");
    fsm::state s = fx.monitor;
    null_sink out;
    const fsm::event ev{fsm::event_kind::tick};
    std::uint64_t now = fx.now;
    std::size_t left = 0;
    std::uint64_t ack_seq = fx.ack.hb.seq;
    cycle_meter cm;
    for (auto _ : st) {
        if (left == 0) {
            st.PauseTiming();
            // Answer everything sent so far: the next batch starts from a clean window.
            wire::frame a = fx.ack;
            a.hb.ack_seq = s.det.last_sent_seq();
            a.hb.ts_echo_ns = s.probe_sent_ns[a.hb.ack_seq % fsm::probe_memory]; // as a real answer echoes
            a.hb.seq = ++ack_seq;                                                // past the replay window
            fsm::step(s, fsm::event{fsm::event_kind::frame, &a}, now, out);
            left = batch;
            st.ResumeTiming();
            cm.resume();
        }
        now += s.p.interval_ns;
        fsm::step(s, ev, now, out);
        if (--left == 0) cm.pause();
    }
    if (left != 0) cm.pause();
    cm.report(st);
    if (s.r != role::monitor) st.SkipWithError("monitor took over during the benchmark");
}

// Monitor, an ack from the primary arrives: peer table update, detector answer, RTT.
void BM_fsm_monitor_receive_ack(benchmark::State& st) {
    const auto& fx = fixture();
    if (!fx.ok) return st.SkipWithError("simulated pair did not settle");
    fsm::state s = fx.monitor;
    null_sink out;
    wire::frame a = fx.ack;
    const fsm::event ev{fsm::event_kind::frame, &a};
    std::uint64_t now = fx.now;
    std::size_t left = 0;
    cycle_meter cm;
    for (auto _ : st) {
        if (left == 0) {
            st.PauseTiming();
            // Send a batch of probes (untimed) so that each timed ack answers a fresh one.
            const fsm::event tick{fsm::event_kind::tick};
            a.hb.ack_seq = s.det.last_answered_seq();
            for (std::size_t i = 0; i < batch; ++i) fsm::step(s, tick, now += s.p.interval_ns, out);
            left = batch;
            st.ResumeTiming();
            cm.resume();
        }
        ++a.hb.ack_seq;
        ++a.hb.seq; // each ack is a new frame (the replay window)
        a.hb.ts_echo_ns = s.probe_sent_ns[a.hb.ack_seq % fsm::probe_memory];
        fsm::step(s, ev, now += 100, out);
        if (--left == 0) cm.pause();
    }
    if (left != 0) cm.pause();
    cm.report(st);
    if (s.r != role::monitor || s.c.stale_answers != fx.monitor.c.stale_answers)
        st.SkipWithError("acks were not all counted as answers");
}

// Primary, a probe from the monitor arrives: peer table update and the ack action.
void BM_fsm_primary_answer_probe(benchmark::State& st) {
    const auto& fx = fixture();
    if (!fx.ok) return st.SkipWithError("simulated pair did not settle");
    fsm::state s = fx.primary;
    null_sink out;
    wire::frame p = fx.probe;
    const fsm::event ev{fsm::event_kind::frame, &p};
    std::uint64_t now = fx.now;
    cycle_meter cm;
    cm.resume();
    for (auto _ : st) {
        ++p.hb.seq;
        fsm::step(s, ev, now += 1000, out);
    }
    cm.pause();
    cm.report(st);
    if (s.r != role::primary || out.n < static_cast<std::uint64_t>(st.iterations())) st.SkipWithError("primary did not answer every probe");
}

detector::params det_params() { return {10 * us, detector::max_miss - 24, 0, 0}; }

// Detector alone: recording a sent probe (sequence, send time, deadline).
void BM_detector_on_probe_sent(benchmark::State& st) {
    detector d(det_params());
    std::uint64_t now = 1;
    d.start(now);
    std::size_t left = 0;
    cycle_meter cm;
    for (auto _ : st) {
        if (left == 0) {
            st.PauseTiming();
            if (d.last_sent_seq() != 0) d.on_answer(d.last_sent_seq(), now);
            left = batch;
            st.ResumeTiming();
            cm.resume();
        }
        benchmark::DoNotOptimize(d.on_probe_sent(now += 10 * us));
        if (--left == 0) cm.pause();
    }
    if (left != 0) cm.pause();
    cm.report(st);
}

// Detector alone: taking an answer (window moves, deadline recomputed).
void BM_detector_on_answer(benchmark::State& st) {
    detector d(det_params());
    std::uint64_t now = 1;
    d.start(now);
    std::uint64_t next_ack = 1;
    std::size_t left = 0;
    cycle_meter cm;
    for (auto _ : st) {
        if (left == 0) {
            st.PauseTiming();
            next_ack = d.last_sent_seq() + 1;
            for (std::size_t i = 0; i < batch; ++i) d.on_probe_sent(now += 10 * us);
            left = batch;
            st.ResumeTiming();
            cm.resume();
        }
        benchmark::DoNotOptimize(d.on_answer(next_ack++, now += 100));
        if (--left == 0) cm.pause();
    }
    if (left != 0) cm.pause();
    cm.report(st);
}

// Detector, one full probe period: observe_time + failed + probe_due + on_probe_sent + on_answer.
void BM_detector_probe_cycle(benchmark::State& st) {
    detector d(detector::params{10 * us, 3, 0, 0});
    std::uint64_t now = 1;
    d.start(now);
    cycle_meter cm;
    cm.resume();
    for (auto _ : st) {
        now += 10 * us;
        d.observe_time(now);
        benchmark::DoNotOptimize(d.failed(now));
        if (d.probe_due(now)) {
            const auto seq = d.on_probe_sent(now);
            benchmark::DoNotOptimize(d.on_answer(seq, now + 3 * us));
        }
    }
    cm.pause();
    cm.report(st);
    if (d.failed(now)) st.SkipWithError("detector declared a failure");
}

BENCHMARK(BM_fsm_monitor_tick_idle);
BENCHMARK(BM_fsm_monitor_tick_probe);
BENCHMARK(BM_fsm_monitor_receive_ack);
BENCHMARK(BM_fsm_primary_answer_probe);
BENCHMARK(BM_detector_on_probe_sent);
BENCHMARK(BM_detector_on_answer);
BENCHMARK(BM_detector_probe_cycle);

} // namespace
