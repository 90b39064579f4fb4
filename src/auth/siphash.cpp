// SipHash-2-4-128 over OpenSSL 3 EVP_MAC, and the HKDF that turns a key-file secret into
// its key. Everything but siphash_tag runs at setup and may allocate.

#include "auth/siphash.hpp"

#include "heartwire/auth.hpp"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include <cstring>

#include <sodium.h>

namespace heartwire::auth::detail {

namespace {

// The first queued libcrypto error as text, and the queue cleared.
std::string openssl_error() {
    const unsigned long e = ERR_get_error();
    ERR_clear_error();
    if (e == 0) return "no error detail from libcrypto";
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    return buf;
}

const unsigned char* bytes(const std::byte* p) noexcept { return reinterpret_cast<const unsigned char*>(p); }
unsigned char* bytes(std::byte* p) noexcept { return reinterpret_cast<unsigned char*>(p); }

} // namespace

std::string libcrypto_version() { return OpenSSL_version(OPENSSL_VERSION); }

EVP_MAC_CTX* new_siphash(std::span<const std::byte, siphash_key_size> raw_key, std::string& error) {
    EVP_MAC* mac = EVP_MAC_fetch(nullptr, "SIPHASH", nullptr);
    if (mac == nullptr) {
        error = "libcrypto (" + libcrypto_version() + ") has no SIPHASH MAC: " + openssl_error();
        return nullptr;
    }
    EVP_MAC_CTX* ctx = EVP_MAC_CTX_new(mac);
    EVP_MAC_free(mac); // the context holds its own reference
    if (ctx == nullptr) {
        error = "EVP_MAC_CTX_new(SIPHASH) failed: " + openssl_error();
        return nullptr;
    }
    // The size goes in before the key: the key sets up the state that every later
    // EVP_MAC_init(ctx, NULL, ...) restores, and a 128-bit tag changes that state (v1 ^= 0xee).
    std::size_t size = siphash_tag_size;
    const OSSL_PARAM params[] = {OSSL_PARAM_construct_size_t(OSSL_MAC_PARAM_SIZE, &size),
                                 OSSL_PARAM_construct_end()};
    if (EVP_MAC_CTX_set_params(ctx, params) != 1 ||
        EVP_MAC_init(ctx, bytes(raw_key.data()), raw_key.size(), nullptr) != 1) {
        error = "SIPHASH key setup failed: " + openssl_error();
        EVP_MAC_CTX_free(ctx);
        return nullptr;
    }
    return ctx;
}

bool siphash_tag(EVP_MAC_CTX* ctx, std::span<const std::byte> data,
                 std::span<std::byte, siphash_tag_size> out) noexcept {
    std::size_t written = 0;
    if (EVP_MAC_init(ctx, nullptr, 0, nullptr) == 1 && EVP_MAC_update(ctx, bytes(data.data()), data.size()) == 1 &&
        EVP_MAC_final(ctx, bytes(out.data()), &written, out.size()) == 1 && written == out.size())
        return true;
    std::memset(out.data(), 0, out.size());
    return false;
}

void sodium_siphash_tag(const std::array<unsigned char, siphash_key_size>& key, std::span<const std::byte> data,
                        std::span<std::byte, siphash_tag_size> out) noexcept {
    crypto_shorthash_siphashx24(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(data.data()), data.size(), key.data());
}

bool derive_siphash_key(std::span<const std::byte> secret, std::span<std::byte, siphash_key_size> out,
                        std::string& error) {
    EVP_KDF* kdf = EVP_KDF_fetch(nullptr, "HKDF", nullptr);
    if (kdf == nullptr) {
        error = "libcrypto (" + libcrypto_version() + ") has no HKDF: " + openssl_error();
        return false;
    }
    EVP_KDF_CTX* kctx = EVP_KDF_CTX_new(kdf);
    EVP_KDF_free(kdf);
    if (kctx == nullptr) {
        error = "EVP_KDF_CTX_new(HKDF) failed: " + openssl_error();
        return false;
    }
    char digest[] = "SHA256";
    const OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, const_cast<std::byte*>(secret.data()), secret.size()),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, const_cast<char*>(hkdf_info.data()), hkdf_info.size()),
        OSSL_PARAM_construct_end()};
    const bool ok = EVP_KDF_derive(kctx, bytes(out.data()), out.size(), params) == 1;
    EVP_KDF_CTX_free(kctx);
    if (!ok) error = "HKDF-SHA-256 failed: " + openssl_error();
    return ok;
}

const std::string& siphash_self_test() {
    static const std::string result = [] {
        // vectors_sip128[15] and [63]: key 00..0f, message 00..0e and 00..3e.
        constexpr unsigned char expected_15[16] = {0x54, 0x93, 0xe9, 0x99, 0x33, 0xb0, 0xa8, 0x11,
                                                   0x7e, 0x08, 0xec, 0x0f, 0x97, 0xcf, 0xc3, 0xd9};
        constexpr unsigned char expected_63[16] = {0x51, 0x50, 0xd1, 0x77, 0x2f, 0x50, 0x83, 0x4a,
                                                   0x50, 0x3e, 0x06, 0x9a, 0x97, 0x3f, 0xbd, 0x7c};
        std::array<std::byte, 64> in{};
        for (std::size_t i = 0; i < in.size(); ++i) in[i] = std::byte(i);
        std::string error;
        EVP_MAC_CTX* ctx = new_siphash(std::span(in).first<siphash_key_size>(), error);
        if (ctx == nullptr) return error;
        std::array<std::byte, siphash_tag_size> tag{};
        bool ok = true;
        // Fresh, after a restart over a longer message, and once more: a libcrypto whose
        // restart did not rewind the state would fail the second or third.
        for (std::size_t len : {std::size_t{15}, std::size_t{63}, std::size_t{15}}) {
            ok = ok && siphash_tag(ctx, std::span(in).first(len), tag) &&
                 std::memcmp(tag.data(), len == 15 ? expected_15 : expected_63, tag.size()) == 0;
        }
        EVP_MAC_CTX_free(ctx);
        // libsodium, which the keyring uses: the same two vectors.
        std::array<unsigned char, siphash_key_size> raw{};
        std::memcpy(raw.data(), in.data(), raw.size());
        bool sodium_ok = sodium_init() >= 0;
        for (std::size_t len : {std::size_t{15}, std::size_t{63}}) {
            sodium_siphash_tag(raw, std::span(in).first(len), tag);
            sodium_ok = sodium_ok && std::memcmp(tag.data(), len == 15 ? expected_15 : expected_63, tag.size()) == 0;
        }
        if (!sodium_ok)
            return std::string("libsodium ") + sodium_version_string() +
                   " crypto_shorthash_siphashx24 does not reproduce the SipHash-2-4-128 reference vectors";
        if (ok) return std::string{};
        return "libcrypto (" + libcrypto_version() +
               ") SIPHASH does not reproduce the SipHash-2-4-128 reference vector after "
               "EVP_MAC_init(ctx, NULL, 0, NULL); frame tags would be wrong. Use OpenSSL 3.0.x "
               "from Debian 12 or later";
    }();
    return result;
}

} // namespace heartwire::auth::detail
