// The keyring: one SIPHASH context per key id, made at setup, restarted per frame.

#include "heartwire/auth.hpp"

#include <cstring>

#include "auth/siphash.hpp"

#include <openssl/crypto.h>

namespace heartwire::auth {

std::string_view to_string(algorithm a) noexcept {
    switch (a) {
#define HW_X(name, val, str)                                                                      \
    case algorithm::name:                                                                         \
        return str;
        HEARTWIRE_AUTH_ALGORITHMS(HW_X)
#undef HW_X
    }
    return "unknown";
}

std::string_view to_string(keyring::verdict v) noexcept {
    switch (v) {
    case keyring::verdict::ok:
        return "ok";
    case keyring::verdict::unknown_key:
        return "unknown_key";
    case keyring::verdict::bad_tag:
        return "bad_tag";
    }
    return "unknown";
}

std::unique_ptr<keyring> keyring::make(const std::vector<key>& keys, std::string& error) {
    error.clear();
    if (keys.empty()) {
        error = "no authentication keys";
        return nullptr;
    }
    std::array<bool, 256> seen{};
    int marked_send = -1;
    int highest = -1;
    for (const key& k : keys) {
        const std::string id = std::to_string(k.id);
        if (k.id < min_key_id) {
            error = "key id 0 is reserved; ids are 1..255";
            return nullptr;
        }
        if (seen[k.id]) {
            error = "key id " + id + " appears twice";
            return nullptr;
        }
        seen[k.id] = true;
        if (k.secret.size() < min_key_bytes || k.secret.size() > max_key_bytes) {
            error = "key " + id + ": secret is " + std::to_string(k.secret.size()) + " bytes; it must be " +
                    std::to_string(min_key_bytes) + " to " + std::to_string(max_key_bytes);
            return nullptr;
        }
        if (k.send) {
            if (marked_send >= 0) {
                error = "keys " + std::to_string(marked_send) + " and " + id + " are both marked send; mark one";
                return nullptr;
            }
            marked_send = k.id;
        }
        if (k.id > highest) highest = k.id;
    }
    if (const std::string& e = detail::siphash_self_test(); !e.empty()) {
        error = e;
        return nullptr;
    }

    std::unique_ptr<keyring> ring{new keyring};
    for (const key& k : keys) {
        std::array<std::byte, detail::siphash_key_size> raw{};
        if (!detail::derive_siphash_key(k.secret, raw, error)) {
            error = "key " + std::to_string(k.id) + ": " + error;
            return nullptr;
        }
        std::memcpy(ring->key_[k.id].data(), raw.data(), raw.size());
        OPENSSL_cleanse(raw.data(), raw.size());
        ring->has_[k.id] = true;
    }
    ring->send_ = static_cast<std::uint8_t>(marked_send >= 0 ? marked_send : highest);
    return ring;
}

keyring::~keyring() { OPENSSL_cleanse(key_.data(), sizeof key_); }

bool keyring::set_send_key(std::uint8_t id) noexcept {
    if (!has(id)) return false;
    send_ = id;
    return true;
}

std::array<std::uint64_t, 4> keyring::ids_bitmap() const noexcept {
    std::array<std::uint64_t, 4> bits{};
    for (std::size_t id = 0; id < has_.size(); ++id)
        if (has_[id]) bits[id / 64] |= std::uint64_t{1} << (id % 64);
    return bits;
}

void keyring::sign(std::span<const std::byte> covered, std::span<std::byte, tag_size> tag) noexcept {
    detail::sodium_siphash_tag(key_[send_], covered, tag);
}

keyring::verdict keyring::verify(std::uint8_t key_id, std::span<const std::byte> covered,
                                 std::span<const std::byte, tag_size> tag) noexcept {
    if (!has_[key_id]) return verdict::unknown_key;
    std::array<std::byte, tag_size> expected;
    detail::sodium_siphash_tag(key_[key_id], covered, expected);
    // Constant time, so response timing says nothing about how many tag bytes matched.
    return CRYPTO_memcmp(expected.data(), tag.data(), tag_size) == 0 ? verdict::ok : verdict::bad_tag;
}

} // namespace heartwire::auth
