#pragma once
// The MAC primitive behind heartwire::auth::keyring, on OpenSSL 3's EVP_MAC "SIPHASH":
// private to src/auth, exposed here so the unit tests can check it against the SipHash
// reference vectors with a raw key (the keyring only ever sees HKDF-derived keys).

#include <openssl/evp.h>

#include <array>
#include <cstddef>
#include <span>
#include <string>

namespace heartwire::auth::detail {

inline constexpr std::size_t siphash_key_size = 16;
inline constexpr std::size_t siphash_tag_size = 16;

// A context keyed with `raw_key`, the output size set to 16 bytes. nullptr and `error`
// set when libcrypto lacks SIPHASH or refuses the key. The caller frees it with
// EVP_MAC_CTX_free.
EVP_MAC_CTX* new_siphash(std::span<const std::byte, siphash_key_size> raw_key, std::string& error);

// Restarts `ctx` on its key (EVP_MAC_init with a null key: OpenSSL 3.0.x restores the
// state it saved when the key was set; no allocation) and writes the 16-byte tag of
// `data` to `out`. False if libcrypto reports a failure; `out` is then all zero.
bool siphash_tag(EVP_MAC_CTX* ctx, std::span<const std::byte> data,
                 std::span<std::byte, siphash_tag_size> out) noexcept;

// libsodium's SipHash-2-4-128 (crypto_shorthash_siphashx24) of `data` under `key`: what
// the keyring signs and verifies with. One call, no allocation.
void sodium_siphash_tag(const std::array<unsigned char, siphash_key_size>& key, std::span<const std::byte> data,
                        std::span<std::byte, siphash_tag_size> out) noexcept;

// HKDF-SHA-256 (RFC 5869), no salt, info = auth::hkdf_info: the SipHash key for `secret`.
bool derive_siphash_key(std::span<const std::byte> secret,
                        std::span<std::byte, siphash_key_size> out, std::string& error);

// Checks, once per process, that this libcrypto's SIPHASH gives the reference vector
// (github.com/veorq/SipHash vectors.h, vectors_sip128[15]) on a fresh context and again
// after the context was restarted over a different message. Empty string when it does.
const std::string& siphash_self_test();

// "OpenSSL 3.0.19 ...", for error messages.
std::string libcrypto_version();

} // namespace heartwire::auth::detail
