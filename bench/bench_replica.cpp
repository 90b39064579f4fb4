// The replicated store's per-write cost on one core (issue 10): what the primary's engine
// does for a write (table put, log append, batching into DATA frames) and what the
// monitor's does (decode, apply in order, digest comparison, ACK), both in the same thread
// with the frames handed over in memory. Items/s is the asynchronous throughput one core
// gives the replication path itself; the shared-memory queue and the wire come on top
// (bench/state/run.sh measures those end to end).

#include <benchmark/benchmark.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "owned_table.hpp"
#include "heartwire/replication.hpp"

using namespace heartwire::replica;

using heartwire::test::owned_table;

namespace {

// Writes of 16-byte values over `keys` keys, a poll of both sides every `batch` writes
// (the engine takes up to 64 writes from the queue in a turn).
void BM_replicate_write(benchmark::State& st) {
    const auto batch = static_cast<int>(st.range(0));
    constexpr int keys = 65536;
    const table_geometry g = table_geometry::for_records(keys, 16, 16);
    owned_table a(g), b(g);
    sender_params p;
    p.frame_budget = 1400;
    sender snd(a.t, p, 0x1234);
    receiver rcv(b.t);
    std::vector<std::vector<std::byte>> down;
    const sender::emit_fn to_follower = [&](std::span<const std::byte> f) { down.emplace_back(f.begin(), f.end()); };
    // ACKs decoded where they land, as the engine does from the mbuf (a heap copy of each
    // 32-byte ACK cost ~120 ns a write at a poll per write here, none of it the store's).
    std::vector<ack_msg> acks;
    const sender::emit_fn to_primary = [&](std::span<const std::byte> f) {
        ack_msg m;
        if (decode_ack(f, m)) acks.push_back(m);
    };
    std::uint64_t now = 1000;
    const auto pump = [&] {
        snd.poll(now, to_follower);
        for (auto& f : down) rcv.on_frame(f, now, to_primary);
        down.clear();
        for (const auto& m : acks) snd.on_ack(m, now);
        acks.clear();
        rcv.poll(now, 1'000'000, to_primary);
    };
    for (int i = 0; i < 1000 && !(snd.in_sync() && rcv.in_sync()); ++i) {
        now += 10'000;
        pump();
    }
    if (!snd.in_sync() || !rcv.in_sync()) {
        st.SkipWithError("never in sync");
        return;
    }
    std::vector<std::string> names(keys);
    for (int i = 0; i < keys; ++i) names[i] = "key" + std::to_string(i);
    const std::string value(16, 'v');
    const std::span<const std::byte> v(reinterpret_cast<const std::byte*>(value.data()), value.size());
    std::uint64_t i = 0;
    for (auto _ : st) {
        for (int n = 0; n < batch; ++n, ++i) benchmark::DoNotOptimize(snd.put(names[i % keys], v, now));
        now += 1000;
        pump();
    }
    if (snd.acked() + 64 < snd.last_seq() || b.t.state().digest != a.t.state().digest) st.SkipWithError("the follower fell behind");
    st.SetItemsProcessed(static_cast<std::int64_t>(i));
    st.counters["frames_per_write"] = benchmark::Counter(static_cast<double>(snd.counters().frames) / static_cast<double>(i));
}

} // namespace

BENCHMARK(BM_replicate_write)->Arg(1)->Arg(8)->Arg(64);
