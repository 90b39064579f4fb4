// The metrics endpoint's parts (issue 11 item 4): the text exposition, checked by rule and
// by Prometheus's own promtool (Debian's, unpacked by the test command's setup); and the
// HTTP endpoint with a
// real TCP client: GET and HEAD of the path, 404, 405, a slow or silent control thread.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>

#include "control/http_endpoint.hpp"
#include "control/metrics.hpp"
#include "heartwire/net_types.hpp"

using namespace heartwire::control;
using namespace std::chrono_literals;

namespace {

std::vector<metrics::family> sample_families() {
    std::vector<metrics::family> f;
    f.push_back({"heartwire_role", "1 for the role each group holds", metrics::kind::gauge,
                 {{{{"group", "10"}, {"role", "primary"}}, 1}, {{{"group", "10"}, {"role", "monitor"}}, 0}}, {}});
    f.push_back({"heartwire_takeovers_total", "takeovers", metrics::kind::counter, {{{{"group", "10"}}, 3}}, {}});
    f.push_back({"heartwire_info", "a \"quoted\" help\nwith a line break and a \\", metrics::kind::gauge,
                 {{{{"version", "0.1.0"}, {"node", "a \"b\"\\\n"}}, 1}}, {}});
    std::uint64_t counts[40] = {};
    counts[12] = 5; // 4-8 us
    counts[14] = 2; // 16-32 us
    counts[39] = 1; // far beyond the last bound: only in +Inf
    f.push_back({"heartwire_probe_rtt_seconds", "round trips", metrics::kind::histogram, {},
                 {metrics::from_log2_ns({{"group", "10"}}, counts, 40, 61'000)}});
    return f;
}

std::string http(std::uint16_t port, const std::string& request) {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        close(fd);
        return "connect failed";
    }
    send(fd, request.data(), request.size(), MSG_NOSIGNAL);
    std::string out;
    char buf[4096];
    for (ssize_t n; (n = recv(fd, buf, sizeof buf, 0)) > 0;) out.append(buf, static_cast<std::size_t>(n));
    close(fd);
    return out;
}

} // namespace

TEST(Metrics, ExpositionFollowsTheTextFormat) {
    const std::string t = metrics::exposition(sample_families());
    EXPECT_NE(t.find("# TYPE heartwire_role gauge\nheartwire_role{group=\"10\",role=\"primary\"} 1\n"), std::string::npos) << t;
    EXPECT_NE(t.find("# TYPE heartwire_takeovers_total counter\nheartwire_takeovers_total{group=\"10\"} 3\n"), std::string::npos);
    EXPECT_NE(t.find("# HELP heartwire_info a \"quoted\" help\\nwith a line break and a \\\\\n"), std::string::npos) << t;
    EXPECT_NE(t.find("node=\"a \\\"b\\\"\\\\\\n\""), std::string::npos) << "label values escaped\n" << t;
    // Cumulative buckets with fixed bounds, +Inf = count, the sum in seconds.
    EXPECT_NE(t.find("heartwire_probe_rtt_seconds_bucket{group=\"10\",le=\"1.024e-06\"} 0\n"), std::string::npos) << t;
    EXPECT_NE(t.find("heartwire_probe_rtt_seconds_bucket{group=\"10\",le=\"8.192e-06\"} 5\n"), std::string::npos) << t;
    EXPECT_NE(t.find("heartwire_probe_rtt_seconds_bucket{group=\"10\",le=\"3.2768e-05\"} 7\n"), std::string::npos) << t;
    EXPECT_NE(t.find("heartwire_probe_rtt_seconds_bucket{group=\"10\",le=\"+Inf\"} 8\n"), std::string::npos) << t;
    EXPECT_NE(t.find("heartwire_probe_rtt_seconds_sum{group=\"10\"} 6.1e-05\n"), std::string::npos) << t;
    EXPECT_NE(t.find("heartwire_probe_rtt_seconds_count{group=\"10\"} 8\n"), std::string::npos) << t;
    EXPECT_EQ(t.back(), '\n');
    EXPECT_TRUE(metrics::valid_name("heartwire_x:y_1"));
    EXPECT_FALSE(metrics::valid_name("1x"));
    EXPECT_FALSE(metrics::valid_name("a-b"));
    EXPECT_FALSE(metrics::valid_label_name("__reserved"));
    EXPECT_TRUE(metrics::exposition({{"bad-name", "", metrics::kind::gauge, {{{}, 1}}, {}}}).empty()) << "never an invalid line";
}

TEST(Metrics, PromtoolAcceptsTheExposition) {
    // Debian's, unpacked by scripts/setup.sh (hw_fetch), never installed.
    const std::string promtool = std::string(HEARTWIRE_BUILD_ROOT) + "/fetched/prometheus/usr/bin/promtool";
    ASSERT_EQ(access(promtool.c_str(), X_OK), 0) << promtool << " missing: scripts/test.sh fetches it (hw_fetch)";
    const std::string path = testing::TempDir() + "/metrics.txt";
    std::ofstream(path) << metrics::exposition(sample_families());
    const std::string cmd = promtool + " check metrics < " + path + " 2>&1";
    FILE* p = popen(cmd.c_str(), "r");
    std::string out;
    char buf[512];
    while (fgets(buf, sizeof buf, p)) out += buf;
    EXPECT_EQ(pclose(p), 0) << out;
    EXPECT_EQ(out, "") << "no lint findings";
}

TEST(MetricsEndpoint, ServesThePathWithTheControlThreadsBody) {
    http_endpoint ep("127.0.0.1:0");
    ASSERT_NE(ep.port(), 0);
    std::atomic<bool> stop{false};
    std::atomic<int> renders{0};
    std::thread control([&] {
        while (!stop) {
            ep.serve([&] {
                ++renders;
                return std::string("heartwire_up 1\n");
            });
            std::this_thread::sleep_for(1ms);
        }
    });
    const std::string r = http(ep.port(), "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    EXPECT_EQ(r.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << r;
    EXPECT_NE(r.find("Content-Type: text/plain; version=0.0.4"), std::string::npos);
    EXPECT_NE(r.find("Content-Length: 15\r\n"), std::string::npos) << r;
    EXPECT_EQ(r.substr(r.size() - 15), "heartwire_up 1\n");
    const std::string h = http(ep.port(), "HEAD /metrics?x=1 HTTP/1.0\r\n\r\n");
    EXPECT_EQ(h.rfind("HTTP/1.1 200 OK", 0), 0u);
    EXPECT_EQ(h.find("heartwire_up"), std::string::npos) << "HEAD: no body";
    EXPECT_EQ(http(ep.port(), "GET / HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 404", 0), 0u);
    EXPECT_EQ(http(ep.port(), "POST /metrics HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 405", 0), 0u);
    EXPECT_EQ(http(ep.port(), std::string(9000, 'x')).rfind("HTTP/1.1 431", 0), 0u);
    EXPECT_EQ(renders.load(), 2) << "rendered once per scrape, on the control thread";
    EXPECT_EQ(ep.requests(), 2u);
    stop = true;
    control.join();
    // No control thread: the scrape gets 503 after its timeout, the daemon is not stuck.
    const auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(http(ep.port(), "GET /metrics HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 503", 0), 0u);
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
}

TEST(MetricsEndpoint, BadListenAddressesAreNamed) {
    const auto v4 = heartwire::parse_host_port("127.0.0.1:9567");
    ASSERT_TRUE(v4);
    EXPECT_EQ(v4->addr, "127.0.0.1");
    EXPECT_EQ(v4->port, 9567);
    const auto v6 = heartwire::parse_host_port("[::1]:9567");
    ASSERT_TRUE(v6);
    EXPECT_EQ(v6->addr, "::1");
    EXPECT_TRUE(v6->v6);
    for (const char* bad : {"localhost:9567", "127.0.0.1", "127.0.0.1:99999", "::1:9567", "[::1]9567", ":80"})
        EXPECT_FALSE(heartwire::parse_host_port(bad)) << bad;
    try {
        http_endpoint ep("192.0.2.1:9567"); // not an address of this host
        FAIL() << "bound a foreign address";
    } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find("192.0.2.1:9567"), std::string::npos) << e.what();
    }
}
