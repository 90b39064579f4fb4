#pragma once
// Frame authentication: a keyed MAC over the bytes of a heartwire frame, keys read from a
// file (or a systemd credential), and a keyring of precomputed MAC contexts for one lcore.
//
// The MAC is SipHash-2-4 with a 128-bit tag, computed by libsodium
// (crypto_shorthash_siphashx24), checked at start against the reference vectors and
// against OpenSSL 3's EVP_MAC "SIPHASH". Why libsodium: the same function through EVP_MAC
// costs ~35-40 ns more per call in parameter lookup, which put sign + verify at the edge
// of the 200 ns budget (bench/README.md has both). Why
// not HMAC-SHA-256: for a 102-byte frame HMAC needs three SHA-256 compressions, ~150 ns
// even with SHA-NI and no allocation, so sign + verify cannot fit the 200 ns budget of a
// poll-mode core (bench/bench_auth.cpp has every candidate measured). SipHash-2-4 is a
// PRF with a 128-bit key: a forger needs ~2^128 tries per accepted frame, key recovery
// ~2^128 work. The MAC authenticates; it does not stop a replay (the frame's epoch and
// seq, checked by the receiver, do that) and it does not encrypt.
//
// Secrets in the key file are 16 to 64 bytes; each one is turned into the 128-bit
// SipHash key with HKDF-SHA-256 (RFC 5869, no salt, info = hkdf_info below), so a longer
// secret is not silently truncated and the same key file could key another algorithm
// later without two MACs sharing a key.
//
// Setup (load_key_file, parse_keys, keyring::make) allocates and reports errors as text.
// sign() and verify() do not allocate, make no syscall and never throw.

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace heartwire::auth {

inline constexpr std::size_t tag_size = 16;
inline constexpr std::size_t min_key_bytes = 16;
inline constexpr std::size_t max_key_bytes = 64;
inline constexpr std::uint8_t min_key_id = 1; // 0 is "no key" on the wire
inline constexpr std::string_view hkdf_info = "heartwire-auth v1 siphash-2-4-128";

// X-macro: the wire value of each algorithm and its name.
#define HEARTWIRE_AUTH_ALGORITHMS(X)                                                              \
    X(none, 0, "none")                                                                            \
    X(siphash_2_4_128, 1, "siphash-2-4-128")

enum class algorithm : std::uint8_t {
#define HW_X(name, val, str) name = val,
    HEARTWIRE_AUTH_ALGORITHMS(HW_X)
#undef HW_X
};
std::string_view to_string(algorithm a) noexcept;

struct key {
    std::uint8_t id{};                // 1..255, carried in the frame
    std::vector<std::byte> secret;    // min_key_bytes..max_key_bytes
    bool send{false};                 // the key sign() uses
};

// Key file: text, one key per line, `<id 1..255> <hex secret, 32..128 hex digits> [send]`;
// `#` starts a comment, blank lines are skipped. Ids are unique; exactly one line may say
// `send`, and when none does the highest id is the send key (so adding a new key line and
// restarting rolls the send key forward). The returned keys always have exactly one send.
struct load_result {
    std::vector<key> keys;
    std::string error; // "origin:line: what is wrong", one line per failed check
    bool ok() const { return error.empty(); }
};

// Reads `path`, or with "cred:NAME" the systemd credential $CREDENTIALS_DIRECTORY/NAME.
// Refuses a file that is missing, unreadable, not a regular file, or has any group or
// other permission bit (mode & 077): the message names the bits and says chmod 600.
load_result load_key_file(const std::string& path);
// The same rules over text already in memory; `origin` names it in errors. No mode check.
load_result parse_keys(std::string_view text, std::string_view origin);

// Precomputed MAC contexts for a key set. Not thread-safe: one keyring per thread that
// uses it (the engine makes one for its TX lcore and one for its RX lcore from the same
// keys). Holding a context per key means sign/verify only restart a context, which for
// SipHash in OpenSSL 3 copies a 64-byte snapshot (no allocation, unlike HMAC's in 3.0).
class keyring {
public:
    enum class verdict : std::uint8_t { ok, unknown_key, bad_tag };

    // nullptr with `error` set when the set is empty, an id is 0 or repeated, a secret is
    // outside min/max_key_bytes, more than one key says send, or libcrypto fails its
    // self-test (SIPHASH must reproduce the reference vector after context reuse).
    static std::unique_ptr<keyring> make(const std::vector<key>& keys, std::string& error);
    ~keyring();
    keyring(const keyring&) = delete;
    keyring& operator=(const keyring&) = delete;

    static constexpr algorithm algo() noexcept { return algorithm::siphash_2_4_128; }
    std::uint8_t send_key() const noexcept { return send_; } // id used by sign()
    bool set_send_key(std::uint8_t id) noexcept;             // false if id not in the ring
    bool has(std::uint8_t id) const noexcept { return has_[id]; }
    std::array<std::uint64_t, 4> ids_bitmap() const noexcept; // bit i set = key id i accepted

    // Tag over `covered` with the send key; writes tag_size bytes. Should libcrypto ever
    // fail here the tag is all zero, which no peer accepts.
    void sign(std::span<const std::byte> covered, std::span<std::byte, tag_size> tag) noexcept;
    // Recomputes the tag with key `key_id` and compares in constant time (CRYPTO_memcmp).
    verdict verify(std::uint8_t key_id, std::span<const std::byte> covered,
                   std::span<const std::byte, tag_size> tag) noexcept;

private:
    keyring() = default;

    std::array<std::array<unsigned char, 16>, 256> key_{}; // by key id: the derived SipHash key
    std::array<bool, 256> has_{};
    std::uint8_t send_{};
};
std::string_view to_string(keyring::verdict v) noexcept;

} // namespace heartwire::auth
