// Key files: `<id> <hex secret> [send]` per line, read only from a file nobody but its
// owner can read. Setup code: errors name the file and line and say what to do; no error
// message ever quotes secret material (a bad hex digit is reported by column).

#include "heartwire/auth.hpp"

#include <openssl/crypto.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace heartwire::auth {

namespace {

constexpr std::string_view cred_prefix = "cred:";
constexpr std::size_t max_file_bytes = 1 << 20; // 255 keys of 128 hex digits fit many times over
constexpr std::string_view line_syntax = "expected `<id 1..255> <hex secret, 32..128 digits> [send]`";

void wipe(std::string& s) noexcept {
    if (!s.empty()) OPENSSL_cleanse(s.data(), s.size());
}

void wipe(std::vector<key>& keys) noexcept {
    for (key& k : keys)
        if (!k.secret.empty()) OPENSSL_cleanse(k.secret.data(), k.secret.size());
    keys.clear();
}

bool is_space(char c) noexcept { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; }

int hex_value(char c) noexcept {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// Whitespace-separated fields of one line, comment already cut; `col` is 1-based.
struct field {
    std::string_view text;
    std::size_t col;
};

std::vector<field> split(std::string_view line) {
    std::vector<field> out;
    std::size_t i = 0;
    while (i < line.size()) {
        while (i < line.size() && is_space(line[i])) ++i;
        const std::size_t start = i;
        while (i < line.size() && !is_space(line[i])) ++i;
        if (i > start) out.push_back({line.substr(start, i - start), start + 1});
    }
    return out;
}

// An id from 1 to 255 in decimal, or an error.
std::string parse_id(std::string_view s, std::uint8_t& id) {
    unsigned v = 0;
    bool digits = !s.empty() && s.size() <= 3;
    for (char c : s) {
        if (c < '0' || c > '9') digits = false;
        v = v * 10 + static_cast<unsigned>(c - '0');
    }
    if (!digits || v < min_key_id || v > 255)
        return "key id '" + std::string(s) + "' is not a number from 1 to 255";
    id = static_cast<std::uint8_t>(v);
    return {};
}

// The secret's bytes, or an error that names the column of a bad digit but never a digit.
std::string parse_secret(const field& f, std::vector<std::byte>& out) {
    const std::string_view s = f.text;
    for (std::size_t i = 0; i < s.size(); ++i)
        if (hex_value(s[i]) < 0)
            return "secret has a character that is not a hex digit at column " + std::to_string(f.col + i);
    if (s.size() % 2 != 0)
        return "secret has an odd number of hex digits (" + std::to_string(s.size()) + "); write whole bytes";
    const std::size_t n = s.size() / 2;
    if (n < min_key_bytes)
        return "secret is too short: " + std::to_string(s.size()) + " hex digits (" + std::to_string(n * 8) +
               " bits), at least " + std::to_string(min_key_bytes * 2) + " needed (" + std::to_string(min_key_bytes * 8) +
               " bits); make one with `openssl rand -hex 32`";
    if (n > max_key_bytes)
        return "secret is too long: " + std::to_string(s.size()) + " hex digits, at most " +
               std::to_string(max_key_bytes * 2) + " (" + std::to_string(max_key_bytes) + " bytes)";
    out.resize(n);
    for (std::size_t i = 0; i < n; ++i)
        out[i] = std::byte(static_cast<unsigned>(hex_value(s[2 * i]) << 4 | hex_value(s[2 * i + 1])));
    return {};
}

std::string describe_type(mode_t mode) {
    if (S_ISDIR(mode)) return "a directory";
    if (S_ISFIFO(mode)) return "a FIFO";
    if (S_ISSOCK(mode)) return "a socket";
    if (S_ISCHR(mode)) return "a character device";
    if (S_ISBLK(mode)) return "a block device";
    return "not a plain file";
}

// "group-readable and world-writable" for the bits in mode & 077.
std::string describe_open_bits(mode_t mode) {
    static constexpr struct {
        mode_t bit;
        const char* name;
    } bits[] = {{S_IRGRP, "group-readable"},     {S_IWGRP, "group-writable"}, {S_IXGRP, "group-executable"},
                {S_IROTH, "world-readable"},     {S_IWOTH, "world-writable"}, {S_IXOTH, "world-executable"}};
    std::vector<const char*> set;
    for (const auto& b : bits)
        if (mode & b.bit) set.push_back(b.name);
    std::string s;
    for (std::size_t i = 0; i < set.size(); ++i) {
        if (i > 0) s += i + 1 == set.size() ? " and " : ", ";
        s += set[i];
    }
    return s;
}

std::string octal_mode(mode_t mode) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(mode & 07777));
    return buf;
}

load_result failure(std::string error) {
    load_result r;
    r.error = std::move(error);
    return r;
}

} // namespace

load_result parse_keys(std::string_view text, std::string_view origin) {
    load_result r;
    std::array<std::size_t, 256> line_of{}; // line that defined each id, 0 = none
    std::size_t send_line = 0;
    std::uint8_t send_id = 0;
    auto fail = [&](std::size_t line, const std::string& msg) {
        if (!r.error.empty()) r.error += '\n';
        r.error += std::string(origin) + ":" + std::to_string(line) + ": " + msg;
    };

    std::size_t line_no = 0;
    for (std::size_t pos = 0; pos <= text.size();) {
        const std::size_t nl = std::min(text.find('\n', pos), text.size());
        std::string_view line = text.substr(pos, nl - pos);
        pos = nl + 1;
        ++line_no;
        if (const std::size_t hash = line.find('#'); hash != std::string_view::npos) line = line.substr(0, hash);
        const std::vector<field> f = split(line);
        if (f.empty()) continue;
        if (f.size() < 2) {
            fail(line_no, "no secret after the key id; " + std::string(line_syntax));
            continue;
        }
        if (f.size() > 3 || (f.size() == 3 && f[2].text != "send")) {
            const field& extra = f.size() == 3 ? f[2] : f[3];
            fail(line_no, "unexpected field at column " + std::to_string(extra.col) + " (only `send` may follow the "
                          "secret); " + std::string(line_syntax));
            continue;
        }
        key k;
        if (std::string e = parse_id(f[0].text, k.id); !e.empty()) {
            fail(line_no, e);
            continue;
        }
        if (std::string e = parse_secret(f[1], k.secret); !e.empty()) {
            fail(line_no, "key " + std::to_string(k.id) + ": " + e);
            continue;
        }
        if (line_of[k.id] != 0) {
            fail(line_no, "key id " + std::to_string(k.id) + " is already defined on line " +
                              std::to_string(line_of[k.id]) + "; ids must be unique");
            OPENSSL_cleanse(k.secret.data(), k.secret.size());
            continue;
        }
        line_of[k.id] = line_no;
        if (f.size() == 3) {
            if (send_line != 0) {
                fail(line_no, "key " + std::to_string(k.id) + " is marked send, but key " + std::to_string(send_id) +
                                  " on line " + std::to_string(send_line) + " already is; mark exactly one");
            } else {
                send_line = line_no;
                send_id = k.id;
                k.send = true;
            }
        }
        r.keys.push_back(std::move(k));
    }

    if (r.error.empty() && r.keys.empty())
        r.error = std::string(origin) + ": no keys; " + std::string(line_syntax);
    if (!r.error.empty()) {
        wipe(r.keys);
        return r;
    }
    if (send_line == 0) { // none marked: the highest id signs
        key* top = &r.keys.front();
        for (key& k : r.keys)
            if (k.id > top->id) top = &k;
        top->send = true;
    }
    return r;
}

load_result load_key_file(const std::string& path) {
    std::string file = path;
    std::string shown = path;
    if (path.starts_with(cred_prefix)) {
        const std::string name = path.substr(cred_prefix.size());
        if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..")
            return failure(path + ": a credential name is a plain file name (no '/'), as in LoadCredential=NAME:/etc/...");
        const char* dir = std::getenv("CREDENTIALS_DIRECTORY");
        if (dir == nullptr || *dir == '\0')
            return failure(path + ": CREDENTIALS_DIRECTORY is not set, so there is no systemd credential '" + name +
                           "'; run heartwired from a unit with LoadCredential=" + name +
                           ":/path/to/keys, or give a file path instead of cred:");
        file = std::string(dir) + "/" + name;
        shown = path + " (" + file + ")";
    }

    // O_NONBLOCK so a FIFO planted at the path cannot hang startup; fstat on the open fd
    // so the file checked is the file read.
    const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        const int err = errno;
        std::string msg = shown + ": cannot open key file: " + std::strerror(err);
        if (err == EACCES) msg += " (heartwired runs as uid " + std::to_string(::geteuid()) + ")";
        return failure(msg);
    }
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
        const int err = errno;
        ::close(fd);
        return failure(shown + ": cannot stat key file: " + std::strerror(err));
    }
    if (!S_ISREG(st.st_mode)) {
        ::close(fd);
        return failure(shown + ": is " + describe_type(st.st_mode) + ", not a regular file; point it at the key file");
    }
    if ((st.st_mode & 077) != 0) {
        ::close(fd);
        return failure(shown + ": mode " + octal_mode(st.st_mode) + " makes the key file " +
                       describe_open_bits(st.st_mode) + "; it must be private to its owner: chmod 600 " + file);
    }
    if (static_cast<std::uintmax_t>(st.st_size) > max_file_bytes) {
        ::close(fd);
        return failure(shown + ": " + std::to_string(st.st_size) + " bytes is too large for a key file (at most " +
                       std::to_string(max_file_bytes) + ")");
    }

    std::string text(static_cast<std::size_t>(st.st_size), '\0');
    std::size_t got = 0;
    while (got < text.size()) {
        const ssize_t n = ::read(fd, text.data() + got, text.size() - got);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            const int err = errno;
            ::close(fd);
            wipe(text);
            return failure(shown + ": cannot read key file: " + std::strerror(err));
        }
        if (n == 0) break; // shrank while we read: parse what is there
        got += static_cast<std::size_t>(n);
    }
    ::close(fd);
    text.resize(got);
    load_result r = parse_keys(text, file);
    wipe(text);
    return r;
}

} // namespace heartwire::auth
