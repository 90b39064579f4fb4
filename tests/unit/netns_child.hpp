#pragma once
// Runs a test body in a forked child inside its own network namespace, so nothing touches
// the host's interfaces; the namespace (and every interface made in it) vanishes with the
// child. The child cannot use gtest's asserts across the fork, so it reports checks and
// measurements as lines over a pipe and the parent asserts on them.

#include <gtest/gtest.h>

#include <fcntl.h>
#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdio>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

namespace hwtest {

struct ns_report {
    std::vector<std::string> lines;
    void check(const std::string& name, long got, long want) {
        lines.push_back("C " + std::to_string(got) + " " + std::to_string(want) + " " + name);
    }
    void note(const std::string& name, bool ok) { check(name, ok ? 1 : 0, 1); }
    // Printed by the parent and recorded as a test property (e.g. a latency in us).
    void measure(const std::string& name, double value) {
        lines.push_back("M " + std::to_string(value) + " " + name);
    }
};

inline void run_in_private_netns(const std::function<void(ns_report&)>& body) {
    int p[2];
    ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
    std::fflush(nullptr); // the child's exit must not replay buffered parent output
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        ::close(p[0]);
        ns_report r;
        if (::unshare(CLONE_NEWNET) != 0) r.check("unshare(CLONE_NEWNET)", -errno, 0);
        else body(r);
        std::string all;
        for (auto& l : r.lines) all += l + "\n";
        [[maybe_unused]] auto w = ::write(p[1], all.data(), all.size());
        std::fflush(nullptr);
        ::_exit(0);
    }
    ::close(p[1]);
    std::string text;
    char buf[4096];
    for (ssize_t n; (n = ::read(p[0], buf, sizeof buf)) > 0;) text.append(buf, static_cast<std::size_t>(n));
    ::close(p[0]);
    int st = 0;
    ASSERT_EQ(::waitpid(pid, &st, 0), pid);
    ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << "netns child died, status " << st;
    std::istringstream in(text);
    int checks = 0;
    for (std::string line; std::getline(in, line);) {
        std::istringstream l(line);
        std::string tag, name;
        if (!(l >> tag)) continue;
        if (tag == "C") {
            long got = 0, want = 0;
            l >> got >> want >> std::ws;
            std::getline(l, name);
            EXPECT_EQ(got, want) << name;
            ++checks;
        } else if (tag == "M") {
            double v = 0;
            l >> v >> std::ws;
            std::getline(l, name);
            std::printf("  %s: %.1f\n", name.c_str(), v);
            std::string key = name; // an XML attribute name in gtest's report
            for (char& c : key)
                if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
            ::testing::Test::RecordProperty(key, std::to_string(v));
        }
    }
    EXPECT_GT(checks, 0) << "the netns child reported nothing";
    ::testing::Test::RecordProperty("netns_checks", checks);
}

} // namespace hwtest
