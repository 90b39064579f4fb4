#pragma once
// The metrics endpoint's HTTP side (issue 11 item 4): a small HTTP/1.1 server on its own
// thread that answers GET (and HEAD) of one path with a body the control thread renders.
// The poll lcore is never involved; the control thread only renders when a scrape waits
// (serve(), each of its turns), so what it reads stays on the thread that owns it.
//
// One connection at a time, Connection: close, requests over 8 KiB or slower than 2 s
// dropped: a scraper, not the public. Bind it to a local or management address.

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace heartwire::control {

class http_endpoint {
public:
    // listen: "ADDR:PORT" ("127.0.0.1:9567", "[::1]:9567"; port 0 takes a free one).
    // Throws std::runtime_error naming the address and the cause.
    explicit http_endpoint(const std::string& listen, std::string path = "/metrics");
    ~http_endpoint();
    http_endpoint(const http_endpoint&) = delete;
    http_endpoint& operator=(const http_endpoint&) = delete;

    // Control thread, every turn: a waiting scrape gets render()'s text. Cheap when none waits.
    void serve(const std::function<std::string()>& render);
    std::uint16_t port() const noexcept { return port_; }
    std::uint64_t requests() const noexcept { return requests_.load(std::memory_order_relaxed); }
    std::uint64_t refused() const noexcept { return refused_.load(std::memory_order_relaxed); }


private:
    void run();
    void answer(int fd);
    bool render_for_request(std::string& body);

    std::string path_;
    int listen_fd_{-1};
    int stop_fd_{-1};
    std::uint16_t port_{0};
    std::thread thread_;
    std::mutex m_;
    std::condition_variable cv_;
    bool want_{false};   // a scrape waits for a body
    bool have_{false};   // the control thread put it in body_
    std::string body_;
    std::atomic<bool> pending_{false};
    std::atomic<std::uint64_t> requests_{0}, refused_{0};
};

} // namespace heartwire::control
