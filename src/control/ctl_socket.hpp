#pragma once
// The control socket that heartwirectl talks to: a Unix stream socket, one request line in,
// one response line out (JSON), then the server closes the connection. Served from the
// control thread: poll() never blocks longer than its timeout.

#include <chrono>
#include <functional>
#include <string>
#include <string_view>

namespace heartwire::control {

class ctl_server {
public:
    using handler = std::function<std::string(std::string_view request_line)>;

    // Creates the parent directory if needed, removes a stale socket file, binds, listens.
    // Throws std::system_error naming the path on failure.
    ctl_server(std::string path, handler h);
    ~ctl_server(); // closes and unlinks the socket
    ctl_server(const ctl_server&) = delete;
    ctl_server& operator=(const ctl_server&) = delete;

    // Accepts and answers pending requests for up to `timeout`. Returns requests served.
    int poll(std::chrono::milliseconds timeout);
    const std::string& path() const noexcept { return path_; }

private:
    std::string path_;
    handler handler_;
    int fd_{-1};
};

// Client side (heartwirectl, tests): sends one line, returns the response line.
// Throws std::system_error when the daemon is not there.
std::string ctl_request(const std::string& path, std::string_view request_line,
                        std::chrono::milliseconds timeout = std::chrono::milliseconds{2000});

} // namespace heartwire::control
