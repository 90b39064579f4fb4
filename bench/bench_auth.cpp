// Frame MAC micro benchmarks: ns per sign and per verify of a 102-byte frame (a heartbeat
// with a 32-byte payload, Ethernet header included), and the pair, whose budget on a
// poll-mode core is 200 ns. BM_auth_* is the keyring (SipHash-2-4-128). BM_auth_candidate_*
// are the other MACs OpenSSL 3 offers, measured the same way (one reused context, restarted
// per frame), so bench/README.md can show why SipHash: "allocs" counts libcrypto heap
// allocations per iteration (HMAC and KMAC in OpenSSL 3.0 duplicate digest contexts on
// every restart).

#define OPENSSL_SUPPRESS_DEPRECATED // SHA256_Init & co., for the best case HMAC could reach

#include "heartwire/auth.hpp"

#include <benchmark/benchmark.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/sha.h>

#include <array>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

namespace {

namespace auth = heartwire::auth;

// Installed before main, before libcrypto's first allocation (it refuses hooks after).
std::atomic<long> allocs{0};
void* count_malloc(std::size_t n, const char*, int) {
    allocs.fetch_add(1, std::memory_order_relaxed);
    return std::malloc(n);
}
void* count_realloc(void* p, std::size_t n, const char*, int) {
    allocs.fetch_add(1, std::memory_order_relaxed);
    return std::realloc(p, n);
}
void count_free(void* p, const char*, int) { std::free(p); }
const bool hooks = CRYPTO_set_mem_functions(count_malloc, count_realloc, count_free) == 1;

constexpr std::size_t frame_size = 102;

struct fixture {
    std::array<std::byte, frame_size> frame{};
    std::array<std::byte, 64> secret{};
    fixture() {
        for (std::size_t i = 0; i < frame.size(); ++i) frame[i] = std::byte(i * 7 + 3);
        for (std::size_t i = 0; i < secret.size(); ++i) secret[i] = std::byte(0xa0 + i);
    }
};

void count_allocs(benchmark::State& state, long before) {
    state.counters["allocs"] = benchmark::Counter(static_cast<double>(allocs.load() - before),
                                                  benchmark::Counter::kAvgIterations);
    if (!hooks) state.SetLabel("allocation hooks not installed");
}

std::unique_ptr<auth::keyring> make_ring(const fixture& fx) {
    std::string error;
    auto ring = auth::keyring::make({auth::key{1, {fx.secret.begin(), fx.secret.begin() + 32}, true}}, error);
    if (!ring) std::abort();
    return ring;
}

// ---------------------------------------------------------------- the keyring
void BM_auth_sign(benchmark::State& state) {
    fixture fx;
    auto ring = make_ring(fx);
    std::array<std::byte, auth::tag_size> tag{};
    const long before = allocs.load();
    for (auto _ : state) {
        ring->sign(fx.frame, tag);
        benchmark::DoNotOptimize(tag);
    }
    count_allocs(state, before);
}
BENCHMARK(BM_auth_sign);

void BM_auth_verify(benchmark::State& state) {
    fixture fx;
    auto ring = make_ring(fx);
    std::array<std::byte, auth::tag_size> tag{};
    ring->sign(fx.frame, tag);
    const long before = allocs.load();
    for (auto _ : state) {
        auto v = ring->verify(1, fx.frame, tag);
        benchmark::DoNotOptimize(v);
    }
    count_allocs(state, before);
}
BENCHMARK(BM_auth_verify);

// What the budget is about: one frame out, one frame in (two rings, as TX and RX lcores).
void BM_auth_sign_verify(benchmark::State& state) {
    fixture fx;
    auto tx = make_ring(fx);
    auto rx = make_ring(fx);
    std::array<std::byte, auth::tag_size> tag{};
    const long before = allocs.load();
    for (auto _ : state) {
        tx->sign(fx.frame, tag);
        auto v = rx->verify(1, fx.frame, tag);
        benchmark::DoNotOptimize(v);
    }
    count_allocs(state, before);
}
BENCHMARK(BM_auth_sign_verify);

// ---------------------------------------------------------------- candidates
struct candidate {
    virtual ~candidate() = default;
    virtual void mac(const unsigned char* in, std::size_t n, unsigned char out[auth::tag_size]) = 0;
};

// One EVP_MAC context, keyed once, restarted with EVP_MAC_init(ctx, NULL, 0, NULL).
struct evp_candidate final : candidate {
    EVP_MAC_CTX* ctx{};
    evp_candidate(const char* name, const char* sub_param, const char* sub, std::size_t size, std::size_t key_len,
                  const fixture& fx) {
        EVP_MAC* m = EVP_MAC_fetch(nullptr, name, nullptr);
        if (m == nullptr) std::abort();
        ctx = EVP_MAC_CTX_new(m);
        EVP_MAC_free(m);
        std::string sub_s = sub ? sub : "";
        OSSL_PARAM p[3];
        int n = 0;
        if (sub) p[n++] = OSSL_PARAM_construct_utf8_string(sub_param, sub_s.data(), 0);
        if (size) p[n++] = OSSL_PARAM_construct_size_t(OSSL_MAC_PARAM_SIZE, &size);
        p[n] = OSSL_PARAM_construct_end();
        if (EVP_MAC_CTX_set_params(ctx, p) != 1 ||
            EVP_MAC_init(ctx, reinterpret_cast<const unsigned char*>(fx.secret.data()), key_len, nullptr) != 1)
            std::abort();
    }
    ~evp_candidate() override { EVP_MAC_CTX_free(ctx); }
    void mac(const unsigned char* in, std::size_t n, unsigned char out[auth::tag_size]) override {
        unsigned char full[64];
        std::size_t len = 0;
        EVP_MAC_init(ctx, nullptr, 0, nullptr);
        EVP_MAC_update(ctx, in, n);
        EVP_MAC_final(ctx, full, &len, sizeof full);
        std::memcpy(out, full, auth::tag_size); // truncated to 128 bits
    }
};

// HMAC-SHA-256 from precomputed ipad/opad SHA-256 states copied by value: no allocation
// and the fewest compressions HMAC allows (3 for 102 bytes), i.e. the floor for HMAC.
struct hmac_sha256_midstate final : candidate {
    SHA256_CTX inner{}, outer{};
    explicit hmac_sha256_midstate(const fixture& fx) {
        unsigned char pad[64] = {};
        std::memcpy(pad, fx.secret.data(), 32);
        for (auto& b : pad) b ^= 0x36;
        SHA256_Init(&inner);
        SHA256_Update(&inner, pad, sizeof pad);
        for (auto& b : pad) b ^= 0x36 ^ 0x5c;
        SHA256_Init(&outer);
        SHA256_Update(&outer, pad, sizeof pad);
    }
    void mac(const unsigned char* in, std::size_t n, unsigned char out[auth::tag_size]) override {
        unsigned char h[SHA256_DIGEST_LENGTH];
        SHA256_CTX c = inner;
        SHA256_Update(&c, in, n);
        SHA256_Final(h, &c);
        c = outer;
        SHA256_Update(&c, h, sizeof h);
        SHA256_Final(h, &c);
        std::memcpy(out, h, auth::tag_size);
    }
};

std::unique_ptr<candidate> make_candidate(int which, const fixture& fx) {
    switch (which) {
    case 0: return std::make_unique<evp_candidate>("SIPHASH", nullptr, nullptr, 16, 16, fx);
    case 1: return std::make_unique<evp_candidate>("HMAC", OSSL_MAC_PARAM_DIGEST, "SHA256", 0, 32, fx);
    case 2: return std::make_unique<hmac_sha256_midstate>(fx);
    case 3: return std::make_unique<evp_candidate>("BLAKE2SMAC", nullptr, nullptr, 16, 32, fx);
    case 4: return std::make_unique<evp_candidate>("BLAKE2BMAC", nullptr, nullptr, 16, 64, fx);
    case 5: return std::make_unique<evp_candidate>("KMAC128", nullptr, nullptr, 16, 32, fx);
    case 6: return std::make_unique<evp_candidate>("CMAC", OSSL_MAC_PARAM_CIPHER, "AES-128-CBC", 0, 16, fx);
    }
    std::abort();
}
constexpr const char* candidate_names[] = {"siphash-2-4-128_evp", "hmac-sha256_evp",  "hmac-sha256_midstate",
                                           "blake2s-128_evp",     "blake2b-128_evp",  "kmac128_evp",
                                           "aes128-cmac_evp"};

void candidate_sign(benchmark::State& state, int which) {
    fixture fx;
    auto c = make_candidate(which, fx);
    unsigned char tag[auth::tag_size];
    const auto* in = reinterpret_cast<const unsigned char*>(fx.frame.data());
    const long before = allocs.load();
    for (auto _ : state) {
        c->mac(in, fx.frame.size(), tag);
        benchmark::DoNotOptimize(tag);
    }
    count_allocs(state, before);
}

void candidate_verify(benchmark::State& state, int which) {
    fixture fx;
    auto c = make_candidate(which, fx);
    unsigned char tag[auth::tag_size], expected[auth::tag_size];
    const auto* in = reinterpret_cast<const unsigned char*>(fx.frame.data());
    c->mac(in, fx.frame.size(), tag);
    const long before = allocs.load();
    for (auto _ : state) {
        c->mac(in, fx.frame.size(), expected);
        int diff = CRYPTO_memcmp(expected, tag, sizeof tag);
        benchmark::DoNotOptimize(diff);
    }
    count_allocs(state, before);
}

// Named BM_auth_candidate_{sign,verify}/<mac>_<how>.
const bool candidates_registered = [] {
    for (int i = 0; i < static_cast<int>(std::size(candidate_names)); ++i) {
        const std::string name = candidate_names[i];
        benchmark::RegisterBenchmark(("BM_auth_candidate_sign/" + name).c_str(),
                                     [i](benchmark::State& s) { candidate_sign(s, i); });
        benchmark::RegisterBenchmark(("BM_auth_candidate_verify/" + name).c_str(),
                                     [i](benchmark::State& s) { candidate_verify(s, i); });
    }
    return true;
}();

} // namespace
