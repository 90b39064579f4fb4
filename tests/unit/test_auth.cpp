// Frame authentication: the MAC gives the published SipHash-2-4-128 answers however often
// its context is reused, the keyring accepts exactly the frames its keys signed, and a
// key file is refused, with the file and line named, whenever it is malformed or anyone
// but its owner could read it.

#include "heartwire/auth.hpp"

#include "auth/siphash.hpp"

#include <gtest/gtest.h>
#include <openssl/crypto.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

namespace auth = heartwire::auth;
namespace detail = heartwire::auth::detail;
using verdict = auth::keyring::verdict;

namespace {

// ---------------------------------------------------------------- allocation counting
// Installed before main, i.e. before libcrypto allocates anything (it refuses afterwards),
// so every OpenSSL allocation in this binary is counted.
std::atomic<long> openssl_allocs{0};
void* count_malloc(std::size_t n, const char*, int) {
    openssl_allocs.fetch_add(1, std::memory_order_relaxed);
    return std::malloc(n);
}
void* count_realloc(void* p, std::size_t n, const char*, int) {
    openssl_allocs.fetch_add(1, std::memory_order_relaxed);
    return std::realloc(p, n);
}
void count_free(void* p, const char*, int) { std::free(p); }
const bool alloc_hooks_installed = CRYPTO_set_mem_functions(count_malloc, count_realloc, count_free) == 1;

// ---------------------------------------------------------------- helpers
std::vector<std::byte> iota_bytes(std::size_t n, unsigned mul = 1, unsigned add = 0) {
    std::vector<std::byte> v(n);
    for (std::size_t i = 0; i < n; ++i) v[i] = std::byte((i * mul + add) & 0xff);
    return v;
}

std::string hex(std::span<const std::byte> b) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string s;
    for (std::byte x : b) {
        s += digits[std::to_integer<unsigned>(x) >> 4];
        s += digits[std::to_integer<unsigned>(x) & 15];
    }
    return s;
}

auth::key make_key(std::uint8_t id, std::vector<std::byte> secret, bool send = false) {
    return auth::key{id, std::move(secret), send};
}

std::unique_ptr<auth::keyring> ring_of(const std::vector<auth::key>& keys) {
    std::string error;
    auto ring = auth::keyring::make(keys, error);
    EXPECT_NE(ring, nullptr) << error;
    EXPECT_EQ(error, "");
    return ring;
}

using tag_t = std::array<std::byte, auth::tag_size>;

tag_t sign(auth::keyring& ring, std::span<const std::byte> frame) {
    tag_t t;
    ring.sign(frame, t);
    return t;
}

// The frame the benchmark uses too: 102 bytes (heartbeat header + 32-byte payload + Ethernet).
const std::vector<std::byte> frame102 = iota_bytes(102, 7, 3);

// ---------------------------------------------------------------- the MAC itself
// github.com/veorq/SipHash vectors.h, vectors_sip128: key 00..0f, row i is the tag of the
// i-byte message 00..(i-1).
constexpr const char* sip128_reference[64] = {
    "a3817f04ba25a8e66df67214c7550293", "da87c1d86b99af44347659119b22fc45", "8177228da4a45dc7fca38bdef60affe4",
    "9c70b60c5267a94e5f33b6b02985ed51", "f88164c12d9c8faf7d0f6e7c7bcd5579", "1368875980776f8854527a07690e9627",
    "14eeca338b208613485ea0308fd7a15e", "a1f1ebbed8dbc153c0b84aa61ff08239", "3b62a9ba6258f5610f83e264f31497b4",
    "264499060ad9baabc47f8b02bb6d71ed", "00110dc378146956c95447d3f3d0fbba", "0151c568386b6677a2b4dc6f81e5dc18",
    "d626b266905ef35882634df68532c125", "9869e247e9c08b10d029934fc4b952f7", "31fcefac66d7de9c7ec7485fe4494902",
    "5493e99933b0a8117e08ec0f97cfc3d9", "6ee2a4ca67b054bbfd3315bf85230577", "473d06e8738db89854c066c47ae47740",
    "a426e5e423bf4885294da481feaef723", "78017731cf65fab074d5208952512eb1", "9e25fc833f2290733e9344a5e83839eb",
    "568e495abe525a218a2214cd3e071d12", "4a29b54552d16b9a469c10528eff0aae", "c9d184ddd5a9f5e0cf8ce29a9abf691c",
    "2db479ae78bd50d8882a8a178a6132ad", "8ece5f042d5e447b5051b9eacb8d8f6f", "9c0b53b4b3c307e87eaee08678141f66",
    "abf248af69a6eae4bfd3eb2f129eeb94", "0664da1668574b88b935f3027358aef4", "aa4b9dc4bf337de90cd4fd3c467c6ab7",
    "ea5c7f471faf6bde2b1ad7d4686d2287", "2939b0183223fafc1723de4f52c43d35", "7c3956ca5eeafc3e363e9d556546eb68",
    "77c6077146f01c32b6b69d5f4ea9ffcf", "37a6986cb8847edf0925f0f1309b54de", "a705f0e69da9a8f907241a2e923c8cc8",
    "3dc47d1f29c448461e9e76ed904f6711", "0d62bf01e6fc0e1a0d3c4751c5d3692b", "8c03468bca7c669ee4fd5e084bbee7b5",
    "528a5bb93baf2c9c4473cce5d0d22bd9", "df6a301e95c95dad97ae0cc8c6913bd8", "801189902c857f39e73591285e70b6db",
    "e617346ac9c231bb3650ae34ccca0c5b", "27d93437efb721aa401821dcec5adf89", "89237d9ded9c5e78d8b1c9b166cc7342",
    "4a6d8091bf5e7d651189fa94a250b14c", "0e33f96055e7ae893ffc0e3dcf492902", "e61c432b720b19d18ec8d84bdc63151b",
    "f7e5aef549f782cf379055a608269b16", "438d030fd0b7a54fa837f2ad201a6403", "a590d3ee4fbf04e3247e0d27f286423f",
    "5fe2c1a172fe93c4b15cd37caef9f538", "2c97325cbd06b36eb2133dd08b3a017c", "92c814227a6bca949ff0659f002ad39e",
    "dce850110bd8328cfbd50841d6911d87", "67f14984c7da791248e32bb5922583da", "1938f2cf72d54ee97e94166fa91d2a36",
    "74481e9646ed49fe0f6224301604698e", "57fca5de98a9d6d8006438d0583d8a1d", "9fecde1cefdc1cbed4763674d9575359",
    "e3040c00eb28f15366ca73cbd872e740", "7697009a6a831dfecca91c5993670f7a", "5853542321f567a005d547a4f04759bd",
    "5150d1772f50834a503e069a973fbd7c",
};

struct siphash_ctx {
    EVP_MAC_CTX* ctx{};
    explicit siphash_ctx(std::span<const std::byte, detail::siphash_key_size> k) {
        std::string error;
        ctx = detail::new_siphash(k, error);
        EXPECT_NE(ctx, nullptr) << error;
    }
    ~siphash_ctx() { EVP_MAC_CTX_free(ctx); }
    std::string tag(std::span<const std::byte> m) {
        std::array<std::byte, detail::siphash_tag_size> t{};
        EXPECT_TRUE(detail::siphash_tag(ctx, m, t));
        return hex(t);
    }
};

} // namespace

TEST(AuthMac, SipHashGivesEveryReferenceVectorOnOneReusedContext) {
    const auto in = iota_bytes(64);
    siphash_ctx mac{std::span(in).first<16>()};
    for (std::size_t len = 0; len < 64; ++len)
        EXPECT_EQ(mac.tag(std::span(in).first(len)), sip128_reference[len]) << "message of " << len << " bytes";
}

TEST(AuthMac, ReferenceVectorIsStableOverAThousandReuseCyclesBetweenOtherMessages) {
    const auto in = iota_bytes(64);
    siphash_ctx mac{std::span(in).first<16>()};
    for (int i = 0; i < 1000; ++i) {
        ASSERT_EQ(mac.tag(std::span(in).first(15)), sip128_reference[15]) << "cycle " << i;
        mac.tag(std::span(in).first(static_cast<std::size_t>(i % 64))); // leave the state elsewhere
    }
    EXPECT_EQ(detail::siphash_self_test(), "");
}

TEST(AuthMac, SecretsBecomeSipHashKeysThroughHkdfSha256) {
    // Expected values from an independent HKDF (Python hmac/hashlib, RFC 5869 steps).
    const struct {
        std::size_t secret_len;
        const char* key;
    } cases[] = {{16, "08b9e236cc8236a45e843db9a9c0e525"},
                 {32, "ac84f2ff16bd9addb2f1f0963a81cf4b"},
                 {64, "c7f44a8d36c93fd2ff176eff73368274"}};
    for (const auto& c : cases) {
        std::array<std::byte, detail::siphash_key_size> k{};
        std::string error;
        ASSERT_TRUE(detail::derive_siphash_key(iota_bytes(c.secret_len), k, error)) << error;
        EXPECT_EQ(hex(k), c.key) << c.secret_len << "-byte secret";
    }
}

// ---------------------------------------------------------------- keyring
TEST(AuthKeyring, SignsAFrameWithTheKnownTagForItsKey) {
    // Tag from the HKDF key above run through an independent SipHash-2-4-128 (the
    // reference algorithm in plain C), not through OpenSSL.
    auto ring = ring_of({make_key(1, iota_bytes(32))});
    EXPECT_EQ(hex(sign(*ring, frame102)), "47a72af826d3ba03825351764c4a55d3");
    EXPECT_EQ(ring->algo(), auth::algorithm::siphash_2_4_128);
    EXPECT_EQ(static_cast<int>(auth::algorithm::siphash_2_4_128), 1);
    EXPECT_EQ(auth::to_string(auth::algorithm::siphash_2_4_128), "siphash-2-4-128");
    EXPECT_EQ(auth::to_string(auth::algorithm::none), "none");
}

TEST(AuthKeyring, TagIsStableOverAThousandSignAndVerifyCycles) {
    auto ring = ring_of({make_key(1, iota_bytes(32))});
    const auto other = iota_bytes(61, 3, 1);
    for (int i = 0; i < 1000; ++i) {
        ASSERT_EQ(hex(sign(*ring, frame102)), "47a72af826d3ba03825351764c4a55d3") << "cycle " << i;
        const tag_t t = sign(*ring, std::span(other).first(static_cast<std::size_t>(i % 62)));
        ASSERT_EQ(ring->verify(1, std::span(other).first(static_cast<std::size_t>(i % 62)), t), verdict::ok);
    }
}

TEST(AuthKeyring, AcceptsTheSignedFrameAndRefusesAnyFlippedBitInFrameOrTag) {
    auto tx = ring_of({make_key(7, iota_bytes(32, 5))});
    auto rx = ring_of({make_key(7, iota_bytes(32, 5))}); // the RX lcore's own ring
    const tag_t tag = sign(*tx, frame102);
    EXPECT_EQ(rx->verify(7, frame102, tag), verdict::ok);

    for (std::size_t bit = 0; bit < frame102.size() * 8; ++bit) {
        auto bad = frame102;
        bad[bit / 8] ^= std::byte(1u << (bit % 8));
        ASSERT_EQ(rx->verify(7, bad, tag), verdict::bad_tag) << "data bit " << bit;
    }
    for (std::size_t bit = 0; bit < tag.size() * 8; ++bit) {
        tag_t bad = tag;
        bad[bit / 8] ^= std::byte(1u << (bit % 8));
        ASSERT_EQ(rx->verify(7, frame102, bad), verdict::bad_tag) << "tag bit " << bit;
    }
    EXPECT_EQ(rx->verify(7, std::span(frame102).first(101), tag), verdict::bad_tag) << "truncated frame";
    EXPECT_EQ(rx->verify(7, frame102, tag), verdict::ok) << "still ok after the failures";
}

TEST(AuthKeyring, ReportsAKeyIdItDoesNotHoldAsUnknown) {
    auto ring = ring_of({make_key(7, iota_bytes(32))});
    const tag_t tag = sign(*ring, frame102);
    EXPECT_EQ(ring->verify(8, frame102, tag), verdict::unknown_key);
    EXPECT_EQ(ring->verify(0, frame102, tag), verdict::unknown_key);
    EXPECT_EQ(ring->verify(255, frame102, tag), verdict::unknown_key);
    EXPECT_EQ(auth::to_string(verdict::unknown_key), "unknown_key");
}

TEST(AuthKeyring, RollsTheSendKeyBetweenTwoKeysWhileAcceptingBoth) {
    auto tx = ring_of({make_key(1, iota_bytes(32, 1)), make_key(2, iota_bytes(32, 3), /*send=*/true)});
    auto rx = ring_of({make_key(1, iota_bytes(32, 1)), make_key(2, iota_bytes(32, 3))});
    EXPECT_EQ(tx->send_key(), 2);
    EXPECT_EQ(rx->send_key(), 2) << "none marked: the highest id";

    const tag_t by2 = sign(*tx, frame102);
    EXPECT_EQ(rx->verify(2, frame102, by2), verdict::ok);
    EXPECT_EQ(rx->verify(1, frame102, by2), verdict::bad_tag) << "a tag is bound to its key";

    ASSERT_TRUE(tx->set_send_key(1));
    EXPECT_EQ(tx->send_key(), 1);
    const tag_t by1 = sign(*tx, frame102);
    EXPECT_NE(by1, by2);
    EXPECT_EQ(rx->verify(1, frame102, by1), verdict::ok);
    EXPECT_EQ(rx->verify(2, frame102, by1), verdict::bad_tag);

    EXPECT_FALSE(tx->set_send_key(3));
    EXPECT_FALSE(tx->set_send_key(0));
    EXPECT_EQ(tx->send_key(), 1) << "a refused set_send_key changes nothing";
}

TEST(AuthKeyring, IdsBitmapHasABitForEachKeyId) {
    auto ring = ring_of({make_key(1, iota_bytes(16)), make_key(64, iota_bytes(16)), make_key(255, iota_bytes(16))});
    const std::array<std::uint64_t, 4> expected{std::uint64_t{1} << 1, std::uint64_t{1}, 0, std::uint64_t{1} << 63};
    EXPECT_EQ(ring->ids_bitmap(), expected);
    EXPECT_TRUE(ring->has(64));
    EXPECT_FALSE(ring->has(63));
    EXPECT_EQ(ring->send_key(), 255);
}

TEST(AuthKeyring, RefusesAKeySetItCannotUse) {
    const struct {
        const char* what;
        std::vector<auth::key> keys;
        const char* error;
    } cases[] = {
        {"no keys", {}, "no authentication keys"},
        {"id 0", {make_key(0, iota_bytes(16))}, "key id 0 is reserved"},
        {"same id twice", {make_key(3, iota_bytes(16)), make_key(3, iota_bytes(20))}, "key id 3 appears twice"},
        {"short secret", {make_key(3, iota_bytes(15))}, "key 3: secret is 15 bytes; it must be 16 to 64"},
        {"long secret", {make_key(3, iota_bytes(65))}, "key 3: secret is 65 bytes; it must be 16 to 64"},
        {"two send keys", {make_key(1, iota_bytes(16), true), make_key(2, iota_bytes(16), true)},
         "keys 1 and 2 are both marked send"},
    };
    for (const auto& c : cases) {
        std::string error;
        EXPECT_EQ(auth::keyring::make(c.keys, error), nullptr) << c.what;
        EXPECT_NE(error.find(c.error), std::string::npos) << c.what << ": " << error;
    }
}

TEST(AuthKeyring, SignAndVerifyNeverAllocate) {
    ASSERT_TRUE(alloc_hooks_installed) << "libcrypto allocated before the counting hooks were installed";
    const long before_make = openssl_allocs.load();
    auto ring = ring_of({make_key(1, iota_bytes(32)), make_key(2, iota_bytes(48))});
    EXPECT_GT(openssl_allocs.load() - before_make, 0) << "the hooks count: making the contexts allocates";
    tag_t tag = sign(*ring, frame102); // any lazy first-use work happens here
    const long before = openssl_allocs.load();
    for (int i = 0; i < 1000; ++i) {
        ring->sign(frame102, tag);
        ASSERT_EQ(ring->verify(2, frame102, tag), verdict::ok);
        ASSERT_EQ(ring->verify(1, frame102, tag), verdict::bad_tag);
        ASSERT_EQ(ring->verify(9, frame102, tag), verdict::unknown_key);
    }
    EXPECT_EQ(openssl_allocs.load() - before, 0);
}

// ---------------------------------------------------------------- key file text
namespace {

const std::string hex32 = "000102030405060708090a0b0c0d0e0f";
const std::string hex64 = hex32 + "101112131415161718191a1b1c1d1e1f";

} // namespace

TEST(AuthKeyParse, ReadsKeysAroundCommentsBlankLinesTabsAndCrlf) {
    const std::string text = "# heartwire keys\n"
                             "\n"
                             "1 " + hex32 + "\r\n"
                             "\t2\t" + hex64 + "   send   # current\n"
                             "3 " + std::string(128, 'F') + "\n"
                             "   # indented comment\n";
    const auth::load_result r = auth::parse_keys(text, "keys.txt");
    ASSERT_TRUE(r.ok()) << r.error;
    ASSERT_EQ(r.keys.size(), 3u);
    EXPECT_EQ(r.keys[0].id, 1);
    EXPECT_EQ(hex(r.keys[0].secret), hex32);
    EXPECT_FALSE(r.keys[0].send);
    EXPECT_EQ(r.keys[1].id, 2);
    EXPECT_EQ(r.keys[1].secret.size(), 32u);
    EXPECT_TRUE(r.keys[1].send);
    EXPECT_EQ(r.keys[2].secret, std::vector<std::byte>(64, std::byte{0xff}));
    EXPECT_FALSE(r.keys[2].send);
}

TEST(AuthKeyParse, WithoutASendLineTheHighestIdSends) {
    const auth::load_result r = auth::parse_keys("9 " + hex32 + "\n200 " + hex32 + "\n17 " + hex32, "k");
    ASSERT_TRUE(r.ok()) << r.error;
    ASSERT_EQ(r.keys.size(), 3u);
    EXPECT_FALSE(r.keys[0].send);
    EXPECT_TRUE(r.keys[1].send);
    EXPECT_FALSE(r.keys[2].send);
    auto ring = ring_of(r.keys);
    EXPECT_EQ(ring->send_key(), 200);
}

TEST(AuthKeyParse, RefusesEachBadLineNamingFileAndLine) {
    const std::string ok_line = "1 " + hex32 + "\n";
    const struct {
        const char* what;
        std::string text;
        std::string error; // the whole message must start with this
    } cases[] = {
        {"id not a number", ok_line + "abc " + hex32, "keys:2: key id 'abc' is not a number from 1 to 255"},
        {"id 0", ok_line + "0 " + hex32, "keys:2: key id '0' is not a number from 1 to 255"},
        {"id 256", ok_line + "256 " + hex32, "keys:2: key id '256' is not a number from 1 to 255"},
        {"negative id", ok_line + "-1 " + hex32, "keys:2: key id '-1' is not a number"},
        {"id only", ok_line + "2", "keys:2: no secret after the key id"},
        {"not hex", ok_line + "2 " + hex32.substr(0, 10) + "zz" + hex32.substr(12),
         "keys:2: key 2: secret has a character that is not a hex digit at column 13"},
        {"odd digits", ok_line + "2 " + hex32 + "a", "keys:2: key 2: secret has an odd number of hex digits (33)"},
        {"too short", ok_line + "2 " + hex32.substr(0, 30),
         "keys:2: key 2: secret is too short: 30 hex digits (120 bits), at least 32 needed (128 bits)"},
        {"too long", ok_line + "2 " + hex64 + hex64 + "00",
         "keys:2: key 2: secret is too long: 130 hex digits, at most 128 (64 bytes)"},
        {"junk after secret", ok_line + "2 " + hex32 + " sned", "keys:2: unexpected field at column 36"},
        {"four fields", ok_line + "2 " + hex32 + " send x", "keys:2: unexpected field at column 41"},
        {"duplicate id", ok_line + "\n1 " + hex64,
         "keys:3: key id 1 is already defined on line 1; ids must be unique"},
        {"two send lines", "1 " + hex32 + " send\n2 " + hex32 + "\n3 " + hex32 + " send",
         "keys:3: key 3 is marked send, but key 1 on line 1 already is; mark exactly one"},
        {"empty", "", "keys: no keys; expected `<id 1..255>"},
        {"only comments", "# nothing yet\n\n   \n", "keys: no keys"},
    };
    for (const auto& c : cases) {
        const auth::load_result r = auth::parse_keys(c.text, "keys");
        EXPECT_FALSE(r.ok()) << c.what;
        EXPECT_TRUE(r.keys.empty()) << c.what;
        EXPECT_EQ(r.error.substr(0, c.error.size()), c.error) << c.what << ": " << r.error;
        EXPECT_EQ(r.error.find("0a0b0c"), std::string::npos) << c.what << ": the message quotes the secret";
    }
}

TEST(AuthKeyParse, ReportsEveryBadLineAtOnce) {
    const auth::load_result r = auth::parse_keys("1 " + hex32 + "\nx " + hex32 + "\n3 abc\n4 " + hex32, "k");
    EXPECT_EQ(r.error, "k:2: key id 'x' is not a number from 1 to 255\n"
                       "k:3: key 3: secret has an odd number of hex digits (3); write whole bytes");
}

// ---------------------------------------------------------------- key files on disk
namespace {

class AuthKeyFile : public ::testing::Test {
protected:
    void SetUp() override {
        std::string tmpl = (std::filesystem::temp_directory_path() / "heartwire-auth-XXXXXX").string();
        ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
        dir_ = tmpl;
        if (const char* v = std::getenv("CREDENTIALS_DIRECTORY")) saved_cred_ = v;
        ::unsetenv("CREDENTIALS_DIRECTORY");
    }
    void TearDown() override {
        std::filesystem::remove_all(dir_);
        if (saved_cred_) ::setenv("CREDENTIALS_DIRECTORY", saved_cred_->c_str(), 1);
        else ::unsetenv("CREDENTIALS_DIRECTORY");
    }
    std::string write(const std::string& name, const std::string& text, mode_t mode) {
        const std::string path = (dir_ / name).string();
        std::ofstream(path) << text;
        EXPECT_EQ(::chmod(path.c_str(), mode), 0);
        return path;
    }
    std::filesystem::path dir_;
    std::optional<std::string> saved_cred_;
    const std::string good_ = "# test keys\n1 " + hex32 + "\n2 " + hex64 + " send\n";
};

} // namespace

TEST_F(AuthKeyFile, LoadsAFileOnlyItsOwnerCanRead) {
    for (mode_t mode : {0600, 0400}) {
        const auth::load_result r = auth::load_key_file(write("keys", good_, mode));
        ASSERT_TRUE(r.ok()) << std::oct << mode << ": " << r.error;
        ASSERT_EQ(r.keys.size(), 2u);
        EXPECT_TRUE(r.keys[1].send);
    }
}

TEST_F(AuthKeyFile, RefusesAFileTheGroupOrOthersCanReachAndSaysChmod600) {
    const struct {
        mode_t mode;
        const char* bits;
    } cases[] = {{0640, "mode 0640 makes the key file group-readable;"},
                 {0604, "mode 0604 makes the key file world-readable;"},
                 {0620, "mode 0620 makes the key file group-writable;"},
                 {0602, "mode 0602 makes the key file world-writable;"},
                 {0644, "mode 0644 makes the key file group-readable and world-readable;"},
                 {0777, "mode 0777 makes the key file group-readable, group-writable, group-executable, "
                        "world-readable, world-writable and world-executable;"}};
    for (const auto& c : cases) {
        const std::string path = write("keys", good_, c.mode);
        const auth::load_result r = auth::load_key_file(path);
        EXPECT_FALSE(r.ok());
        EXPECT_TRUE(r.keys.empty());
        EXPECT_EQ(r.error, path + ": " + c.bits + " it must be private to its owner: chmod 600 " + path);
    }
}

TEST_F(AuthKeyFile, RefusesADirectoryAFifoAndAMissingFile) {
    const auth::load_result d = auth::load_key_file(dir_.string());
    EXPECT_EQ(d.error, dir_.string() + ": is a directory, not a regular file; point it at the key file");

    const std::string fifo = (dir_ / "fifo").string();
    ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
    EXPECT_EQ(auth::load_key_file(fifo).error, fifo + ": is a FIFO, not a regular file; point it at the key file")
        << "and it did not block waiting for a writer";

    const std::string missing = (dir_ / "nope").string();
    EXPECT_EQ(auth::load_key_file(missing).error, missing + ": cannot open key file: No such file or directory");
}

TEST_F(AuthKeyFile, RefusesAFileItCannotReadAndSaysWhoTried) {
    const std::string path = write("keys", good_, 0600);
    // Root reads any file, so the attempt is made by a child that became nobody.
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        ::close(fds[0]);
        if (::geteuid() == 0 && (::setgid(65534) != 0 || ::setuid(65534) != 0)) ::_exit(2);
        const std::string e = auth::load_key_file(path).error;
        const bool wrote = ::write(fds[1], e.data(), e.size()) == static_cast<ssize_t>(e.size());
        ::_exit(wrote ? 0 : 3);
    }
    ::close(fds[1]);
    std::string error;
    char buf[512];
    for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;) error.append(buf, static_cast<std::size_t>(n));
    ::close(fds[0]);
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child status " << status;
    EXPECT_EQ(error.rfind(path + ": cannot open key file: Permission denied (heartwired runs as uid ", 0), 0u)
        << error;
}

TEST_F(AuthKeyFile, FollowsASymlinkAndChecksTheFileItPointsTo) {
    const std::string target = write("real", good_, 0644);
    const std::string link = (dir_ / "link").string();
    ASSERT_EQ(::symlink(target.c_str(), link.c_str()), 0);
    EXPECT_NE(auth::load_key_file(link).error.find("group-readable"), std::string::npos);
    ASSERT_EQ(::chmod(target.c_str(), 0600), 0);
    EXPECT_TRUE(auth::load_key_file(link).ok());
}

TEST_F(AuthKeyFile, NamesThePathAndLineOfABadLine) {
    const std::string path = write("keys", "1 " + hex32 + "\n\n2 " + hex32.substr(0, 8) + "\n", 0600);
    const auth::load_result r = auth::load_key_file(path);
    EXPECT_EQ(r.error.rfind(path + ":3: key 2: secret is too short", 0), 0u) << r.error;
}

TEST_F(AuthKeyFile, ReadsASystemdCredential) {
    write("hw-keys", good_, 0400); // what systemd makes of LoadCredential=
    ::setenv("CREDENTIALS_DIRECTORY", dir_.c_str(), 1);
    const auth::load_result r = auth::load_key_file("cred:hw-keys");
    ASSERT_TRUE(r.ok()) << r.error;
    EXPECT_EQ(r.keys.size(), 2u);

    write("open", good_, 0644);
    EXPECT_EQ(auth::load_key_file("cred:open").error.rfind("cred:open (" + dir_.string() + "/open): mode 0644 ", 0), 0u)
        << "systemd makes credentials 0400; anything looser is refused the same way";
    EXPECT_EQ(auth::load_key_file("cred:absent").error,
              "cred:absent (" + dir_.string() + "/absent): cannot open key file: No such file or directory");
    EXPECT_NE(auth::load_key_file("cred:../hw-keys").error.find("a credential name is a plain file name"),
              std::string::npos);
    EXPECT_NE(auth::load_key_file("cred:").error.find("a credential name is a plain file name"), std::string::npos);
}

TEST_F(AuthKeyFile, RefusesACredentialWithoutCredentialsDirectory) {
    write("hw-keys", good_, 0400);
    const auth::load_result r = auth::load_key_file("cred:hw-keys");
    EXPECT_FALSE(r.ok());
    EXPECT_EQ(r.error.rfind("cred:hw-keys: CREDENTIALS_DIRECTORY is not set, so there is no systemd credential "
                            "'hw-keys'",
                            0),
              0u)
        << r.error;
    EXPECT_NE(r.error.find("LoadCredential=hw-keys:"), std::string::npos) << r.error;

    ::setenv("CREDENTIALS_DIRECTORY", "", 1);
    EXPECT_NE(auth::load_key_file("cred:hw-keys").error.find("CREDENTIALS_DIRECTORY is not set"), std::string::npos);
}
