#pragma once
// The control socket that heartwirectl talks to: a Unix stream socket. The client sends one
// request line ("status json\n"); the server answers with any text, possibly several lines
// (by convention "ok" or "error: ..." first; for "status json" the whole answer is the
// JSON), writes it fully and closes the connection, so the client reads until EOF.
// Served from the control thread: poll() never blocks longer than its timeout, and
// connections are multiplexed, so a client that connects and sends nothing is dropped after
// its own short deadline without delaying anyone else.

#include <chrono>
#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <sys/types.h>
#include <vector>

namespace heartwire::control {

class ctl_server {
public:
    using handler = std::function<std::string(std::string_view request_line)>;

    // A request line longer than this gets "error: request line longer than 4096 bytes".
    static constexpr std::size_t max_request = 4096;
    // A client must send its whole line within this time of connecting.
    static constexpr std::chrono::milliseconds read_deadline{200};
    // ...and take the whole response within this time of it being ready.
    static constexpr std::chrono::milliseconds write_deadline{2000};

    // Creates the parent directory if needed (mode 0755), replaces a stale socket file (one
    // nobody listens on), binds, listens, chmods the socket 0660. Throws std::system_error
    // naming the path on failure, including when a live server already listens there or
    // the path is something other than a socket.
    ctl_server(std::string path, handler h);
    ~ctl_server(); // closes and unlinks the socket (if it is still ours)
    ctl_server(const ctl_server&) = delete;
    ctl_server& operator=(const ctl_server&) = delete;

    // Accepts and answers pending requests for up to `timeout`; returns early once it has
    // answered something. Returns the number of requests answered (handler calls).
    int poll(std::chrono::milliseconds timeout);
    const std::string& path() const noexcept { return path_; }

private:
    struct connection {
        int fd{-1};
        std::string in;
        std::string out;
        std::size_t sent{0};
        bool answering{false};
        std::chrono::steady_clock::time_point deadline;
    };
    void on_readable(connection& c, int& served);
    void answer(connection& c, std::string_view line, int& served);
    bool flush(connection& c); // true when the connection is finished

    std::string path_;
    handler handler_;
    int fd_{-1};
    dev_t dev_{};
    ino_t ino_{};
    std::vector<connection> conns_;
};

// Client side (heartwirectl, tests): sends one line, returns the whole response (read to
// EOF). Throws std::system_error naming the path when the daemon is not there (ENOENT,
// ECONNREFUSED), not allowed (EACCES) or does not answer within `timeout` (ETIMEDOUT).
std::string ctl_request(const std::string& path, std::string_view request_line,
                        std::chrono::milliseconds timeout = std::chrono::milliseconds{2000});

} // namespace heartwire::control
