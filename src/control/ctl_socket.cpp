#include "control/ctl_socket.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <system_error>
#include <unistd.h>

namespace heartwire::control {

namespace {

using clock = std::chrono::steady_clock;

// More than any operator or monitoring script opens at once; beyond it, new clients wait in
// the listen backlog instead of costing us descriptors.
constexpr std::size_t max_connections = 64;
constexpr int listen_backlog = 64;

[[noreturn]] void fail(int err, const std::string& what) {
    throw std::system_error(err, std::generic_category(), what);
}

sockaddr_un unix_addr(const std::string& path, const char* who) {
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    if (path.empty() || path.size() >= sizeof sa.sun_path)
        fail(ENAMETOOLONG, std::string(who) + " " + path + ": path must be 1.." +
                               std::to_string(sizeof sa.sun_path - 1) + " bytes");
    std::memcpy(sa.sun_path, path.data(), path.size());
    return sa;
}

// mkdir -p with 0755 for every directory we create (chmod because umask would narrow it);
// existing directories are left as the operator made them.
void make_parents(const std::string& path) {
    const auto slash = path.rfind('/');
    if (slash == std::string::npos || slash == 0) return;
    const std::string dir = path.substr(0, slash);
    for (std::size_t pos = 1; pos <= dir.size(); ++pos) {
        if (pos != dir.size() && dir[pos] != '/') continue;
        const std::string part = dir.substr(0, pos);
        if (::mkdir(part.c_str(), 0755) == 0) {
            ::chmod(part.c_str(), 0755);
        } else if (errno != EEXIST) {
            fail(errno, "ctl socket " + path + ": cannot create directory " + part);
        }
    }
    struct stat st{};
    if (::stat(dir.c_str(), &st) != 0) fail(errno, "ctl socket " + path + ": " + dir);
    if (!S_ISDIR(st.st_mode)) fail(ENOTDIR, "ctl socket " + path + ": " + dir);
}

// A socket file with nobody listening is left over from a daemon that died; one with a live
// listener belongs to a running daemon, and anything else is not ours to delete.
void clear_stale(const std::string& path, const sockaddr_un& sa) {
    struct stat st{};
    if (::lstat(path.c_str(), &st) != 0) {
        if (errno == ENOENT) return;
        fail(errno, "ctl socket " + path);
    }
    if (!S_ISSOCK(st.st_mode))
        fail(EEXIST, "ctl socket " + path + " exists and is not a socket; remove it or set [control] socket");
    const int probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (probe < 0) fail(errno, "ctl socket " + path + ": socket");
    const int rc = ::connect(probe, reinterpret_cast<const sockaddr*>(&sa), sizeof sa);
    const int e = errno;
    ::close(probe);
    // EAGAIN: a listener with a full backlog, i.e. alive.
    if (rc == 0 || e == EAGAIN)
        fail(EADDRINUSE, "ctl socket " + path + ": another heartwired is already serving it");
    if (e != ECONNREFUSED) fail(e, "ctl socket " + path + ": probing the existing socket");
    if (::unlink(path.c_str()) != 0 && errno != ENOENT)
        fail(errno, "ctl socket " + path + ": removing the stale socket");
}

void close_quietly(int fd) noexcept {
    // Read what the client still sent (the tail of an oversized line): closing a Unix socket
    // with unread data makes the peer's read fail with ECONNRESET instead of EOF.
    char sink[4096];
    for (int i = 0; i < 16; ++i)
        if (::recv(fd, sink, sizeof sink, MSG_DONTWAIT) <= 0) break;
    ::close(fd);
}

} // namespace

ctl_server::ctl_server(std::string path, handler h) : path_(std::move(path)), handler_(std::move(h)) {
    const sockaddr_un sa = unix_addr(path_, "ctl socket");
    make_parents(path_);
    clear_stale(path_, sa);
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd_ < 0) fail(errno, "ctl socket " + path_ + ": socket");
    auto bail = [&](const char* step) {
        const int e = errno;
        ::close(fd_);
        fd_ = -1;
        fail(e, "ctl socket " + path_ + ": " + step);
    };
    if (::bind(fd_, reinterpret_cast<const sockaddr*>(&sa), sizeof sa) != 0) bail("bind");
    // Owner and group may drive the daemon; connect(2) needs write permission on the file.
    if (::chmod(path_.c_str(), 0660) != 0) bail("chmod 0660");
    struct stat st{};
    if (::stat(path_.c_str(), &st) != 0) bail("stat");
    dev_ = st.st_dev;
    ino_ = st.st_ino;
    if (::listen(fd_, listen_backlog) != 0) bail("listen");
}

ctl_server::~ctl_server() {
    for (auto& c : conns_) ::close(c.fd);
    if (fd_ >= 0) ::close(fd_);
    // Only unlink our own socket: a second daemon may have replaced it in the meantime.
    struct stat st{};
    if (::stat(path_.c_str(), &st) == 0 && st.st_dev == dev_ && st.st_ino == ino_)
        ::unlink(path_.c_str());
}

bool ctl_server::flush(connection& c) {
    while (c.sent < c.out.size()) {
        const ssize_t n = ::send(c.fd, c.out.data() + c.sent, c.out.size() - c.sent,
                                 MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            c.sent += static_cast<std::size_t>(n);
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return false;
        } else {
            return true; // the client went away; nothing more to do for it
        }
    }
    return true;
}

void ctl_server::answer(connection& c, std::string_view line, int& served) {
    if (line.size() > max_request) {
        c.out = "error: request line longer than " + std::to_string(max_request) + " bytes\n";
    } else {
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        try {
            c.out = handler_(line);
        } catch (const std::exception& e) {
            c.out = std::string("error: ") + e.what();
        } catch (...) {
            c.out = "error: internal error";
        }
        if (c.out.empty() || c.out.back() != '\n') c.out.push_back('\n');
    }
    c.in.clear();
    c.answering = true;
    c.deadline = clock::now() + write_deadline;
    ++served;
}

void ctl_server::on_readable(connection& c, int& served) {
    char buf[4096];
    for (;;) {
        const ssize_t n = ::recv(c.fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n > 0) {
            const std::size_t old = c.in.size();
            c.in.append(buf, static_cast<std::size_t>(n));
            const auto nl = c.in.find('\n', old);
            if (nl != std::string::npos) return answer(c, std::string_view(c.in).substr(0, nl), served);
            if (c.in.size() > max_request) return answer(c, c.in, served);
        } else if (n == 0) {
            // EOF without a newline: `printf status | socat - UNIX:...` still gets an answer.
            if (!c.in.empty()) return answer(c, c.in, served);
            c.deadline = clock::time_point::min(); // nothing asked; drop it
            return;
        } else if (errno == EINTR) {
            continue;
        } else {
            if (errno != EAGAIN && errno != EWOULDBLOCK) c.deadline = clock::time_point::min();
            return;
        }
    }
}

int ctl_server::poll(std::chrono::milliseconds timeout) {
    const auto end = clock::now() + timeout;
    int served = 0;
    std::vector<pollfd> pfds;
    for (;;) {
        const auto now = clock::now();
        // Drop clients past their deadline (silent ones, ones that never read the answer).
        std::erase_if(conns_, [&](connection& c) {
            if (now < c.deadline) return false;
            close_quietly(c.fd);
            return true;
        });
        if (served > 0) return served;

        auto next = end;
        pfds.clear();
        for (const auto& c : conns_) {
            pfds.push_back(pollfd{c.fd, static_cast<short>(c.answering ? POLLOUT : POLLIN), 0});
            next = std::min(next, c.deadline);
        }
        const bool accepting = conns_.size() < max_connections;
        if (accepting) pfds.push_back(pollfd{fd_, POLLIN, 0});
        const auto wait = std::max<long long>(
            0, std::chrono::ceil<std::chrono::milliseconds>(next - now).count());

        const int n = ::poll(pfds.data(), pfds.size(), static_cast<int>(std::min<long long>(wait, 60'000)));
        if (n < 0 && errno != EINTR) fail(errno, "ctl socket " + path_ + ": poll");

        if (n > 0) {
            const std::size_t existing = conns_.size();
            for (std::size_t i = 0; i < existing; ++i) {
                connection& c = conns_[i];
                const short ev = pfds[i].revents;
                if (!ev) continue;
                if (!c.answering) on_readable(c, served);
                // Answered just now or earlier: push the response out; close when done.
                if (c.answering && flush(c)) c.deadline = clock::time_point::min();
            }
            if (accepting && (pfds.back().revents & POLLIN)) {
                while (conns_.size() < max_connections) {
                    const int cfd = ::accept4(fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (cfd < 0) break; // EAGAIN, or a client that gave up (ECONNABORTED)
                    connection c;
                    c.fd = cfd;
                    c.deadline = clock::now() + read_deadline;
                    conns_.push_back(std::move(c));
                    // Most clients have written their line by the time we accept them.
                    on_readable(conns_.back(), served);
                    if (conns_.back().answering && flush(conns_.back()))
                        conns_.back().deadline = clock::time_point::min();
                }
            }
        }
        if (served == 0 && clock::now() >= end) {
            std::erase_if(conns_, [&](connection& c) {
                if (c.deadline != clock::time_point::min()) return false;
                close_quietly(c.fd);
                return true;
            });
            return 0;
        }
    }
}

std::string ctl_request(const std::string& path, std::string_view request_line,
                        std::chrono::milliseconds timeout) {
    const auto end = clock::now() + timeout;
    const sockaddr_un sa = unix_addr(path, "control socket");
    if (request_line.find('\n') != std::string_view::npos)
        fail(EINVAL, "control socket " + path + ": request must be a single line");

    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) fail(errno, "control socket " + path + ": socket");
    struct closer {
        int fd;
        ~closer() { ::close(fd); }
    } guard{fd};

    // connect(2) on a Unix socket blocks only while the listen backlog is full, for at most
    // SO_SNDTIMEO; the same timeout bounds the send.
    const auto ms = timeout.count() > 0 ? timeout.count() : 1;
    timeval tv{static_cast<time_t>(ms / 1000), static_cast<suseconds_t>((ms % 1000) * 1000)};
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof sa) != 0) {
        const int e = (errno == EAGAIN || errno == EINPROGRESS) ? ETIMEDOUT : errno;
        fail(e, "cannot connect to control socket " + path);
    }

    std::string req(request_line);
    req.push_back('\n');
    for (std::size_t off = 0; off < req.size();) {
        const ssize_t n = ::send(fd, req.data() + off, req.size() - off, MSG_NOSIGNAL);
        if (n > 0) {
            off += static_cast<std::size_t>(n);
        } else if (errno == EINTR) {
            continue;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            fail(ETIMEDOUT, "control socket " + path + ": request not taken within " +
                                std::to_string(timeout.count()) + " ms");
        } else if (errno == EPIPE || errno == ECONNRESET) {
            break; // the server answered early (e.g. line too long); read what it said
        } else {
            fail(errno, "control socket " + path + ": send");
        }
    }
    ::shutdown(fd, SHUT_WR);

    std::string resp;
    char buf[8192];
    for (;;) {
        const auto left = std::chrono::ceil<std::chrono::milliseconds>(end - clock::now()).count();
        if (left <= 0)
            fail(ETIMEDOUT, "control socket " + path + ": no complete answer within " +
                                std::to_string(timeout.count()) + " ms (is heartwired stuck?)");
        pollfd p{fd, POLLIN, 0};
        const int r = ::poll(&p, 1, static_cast<int>(left));
        if (r < 0 && errno != EINTR) fail(errno, "control socket " + path + ": poll");
        if (r <= 0) continue;
        const ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n > 0) resp.append(buf, static_cast<std::size_t>(n));
        else if (n == 0) return resp;
        else if (errno == ECONNRESET && !resp.empty()) return resp;
        else if (errno != EINTR && errno != EAGAIN) fail(errno, "control socket " + path + ": recv");
    }
}

} // namespace heartwire::control
