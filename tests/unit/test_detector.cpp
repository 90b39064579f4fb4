// The failure detector on a fake clock: every timing rule exactly.
#include <gtest/gtest.h>

#include "heartwire/detector.hpp"

using heartwire::detector;

namespace {

constexpr std::uint64_t us = 1000;

detector make(std::uint32_t miss = 3, std::uint64_t interval = 10 * us) {
    detector::params p;
    p.interval_ns = interval;
    p.miss = miss;
    return detector(p);
}

// Drives the detector like the engine does: observe time, send when due, answer if told.
struct driver {
    detector d;
    std::uint64_t now{1'000'000};
    void run_answered(std::uint64_t until, std::uint64_t rtt = 4 * us) {
        while (now < until) {
            d.observe_time(now);
            if (d.probe_due(now)) {
                const auto seq = d.on_probe_sent(now);
                d.on_answer(seq, now + rtt); // answer arrives within the interval
            }
            now += us;
        }
    }
};

} // namespace

TEST(Detector, DeclaresFailureExactlyMissIntervalsAfterTheLastAnswer) {
    driver r{make()};
    r.d.start(r.now);
    r.run_answered(r.now + 100 * us);
    const std::uint64_t last = r.d.last_answer_ns();
    // The primary dies now: probes keep going out, nothing comes back.
    while (!r.d.failed(r.now)) {
        r.d.observe_time(r.now);
        if (r.d.probe_due(r.now)) r.d.on_probe_sent(r.now);
        ++r.now;
    }
    EXPECT_EQ(r.now, last + 3 * 10 * us);
    EXPECT_GE(r.d.unanswered(), 3u);
}

TEST(Detector, NoFailureWhileAnswersArrive) {
    driver r{make()};
    r.d.start(r.now);
    for (int i = 0; i < 100'000; ++i) {
        r.d.observe_time(r.now);
        if (r.d.probe_due(r.now)) r.d.on_answer(r.d.on_probe_sent(r.now), r.now + 9 * us);
        ASSERT_FALSE(r.d.failed(r.now)) << "at step " << i;
        r.now += us;
    }
    EXPECT_GT(r.d.last_sent_seq(), 9'000u);
}

TEST(Detector, AnswersJustUnderTheThresholdNeverTrigger) {
    // Every answer comes back 29.999 us late: the 3rd probe after it is still inside its window.
    detector d = make();
    std::uint64_t now = 1'000'000;
    d.start(now);
    struct pending {
        std::uint64_t seq, at;
    };
    std::vector<pending> q;
    for (std::uint64_t t = now; t < now + 10'000 * us; t += 100) {
        d.observe_time(t);
        while (!q.empty() && q.front().at <= t) {
            d.on_answer(q.front().seq, t);
            q.erase(q.begin());
        }
        if (d.probe_due(t)) q.push_back({d.on_probe_sent(t), t + 29 * us + 900});
        ASSERT_FALSE(d.failed(t)) << "at " << (t - now) / us << " us";
    }
}

TEST(Detector, LateAnswersThatKeepArrivingAreNotAFailure) {
    // Every answer takes 100 us, over three intervals: the primary is slow, not dead.
    detector::params p;
    p.interval_ns = 10 * us;
    p.miss = 3;
    p.startup_grace_ns = 1'000 * us; // the first answer itself is late
    detector d(p);
    std::uint64_t now = 1'000'000;
    d.start(now);
    std::vector<std::pair<std::uint64_t, std::uint64_t>> q;
    for (std::uint64_t t = now; t < now + 10'000 * us; t += 100) {
        d.observe_time(t);
        while (!q.empty() && q.front().second <= t) {
            d.on_answer(q.front().first, t);
            q.erase(q.begin());
        }
        if (d.probe_due(t)) q.push_back({d.on_probe_sent(t), t + 100 * us});
        ASSERT_FALSE(d.failed(t)) << "at " << (t - now) / us << " us";
    }
    EXPECT_TRUE(d.armed());
}

TEST(Detector, SilenceOfTheWholeWindowIsAFailureOneNanosecondLessIsNot) {
    detector d = make();
    d.start(0);
    d.on_answer(d.on_probe_sent(0), 4 * us);
    for (std::uint64_t t = 10 * us; t <= 30 * us; t += 10 * us) d.on_probe_sent(t);
    EXPECT_FALSE(d.failed(4 * us + 30 * us - 1));
    EXPECT_TRUE(d.failed(4 * us + 30 * us));
}

TEST(Detector, OwnStallDoesNotCountAsThePrimarysSilence) {
    driver r{make()};
    r.d.start(r.now);
    r.run_answered(r.now + 50 * us);
    // A probe goes out, then the monitor's core is taken away for 2 ms.
    r.d.observe_time(r.now);
    while (!r.d.probe_due(r.now)) r.d.observe_time(++r.now);
    const auto seq = r.d.on_probe_sent(r.now);
    r.now += 2'000 * us;
    EXPECT_TRUE(r.d.observe_time(r.now));
    EXPECT_EQ(r.d.stalls(), 1u);
    EXPECT_FALSE(r.d.failed(r.now));
    // The answer was waiting in the RX queue; read it first, as the engine does.
    EXPECT_TRUE(r.d.on_answer(seq, r.now));
    r.run_answered(r.now + 100 * us);
    EXPECT_FALSE(r.d.failed(r.now));
}

TEST(Detector, AfterAStallAFreshWindowIsNeededBeforeFailure) {
    driver r{make()};
    r.d.start(r.now);
    r.run_answered(r.now + 50 * us);
    r.now += 5'000 * us; // stalled; the primary also died meanwhile
    r.d.observe_time(r.now);
    EXPECT_FALSE(r.d.failed(r.now));
    const std::uint64_t woke = r.now;
    while (!r.d.failed(r.now)) {
        r.d.observe_time(r.now);
        if (r.d.probe_due(r.now)) r.d.on_probe_sent(r.now);
        ++r.now;
    }
    // The clock was frozen while it slept: the window runs on from where it stopped, and
    // `miss` probes must have gone out since it woke.
    EXPECT_GE(r.now - woke, 20 * us);
    EXPECT_LE(r.now - woke, 31 * us);
}

TEST(Detector, StaleAndUnknownAnswersAreIgnored) {
    detector d = make();
    d.start(1000);
    const auto s1 = d.on_probe_sent(1000);
    const auto s2 = d.on_probe_sent(11000);
    EXPECT_TRUE(d.on_answer(s2, 12000));
    EXPECT_FALSE(d.on_answer(s1, 13000)) << "older than the newest answer";
    EXPECT_FALSE(d.on_answer(s2 + 5, 13000)) << "never sent";
    EXPECT_EQ(d.last_answered_seq(), s2);
}

TEST(Detector, MissOfOneFailsAfterOneInterval) {
    detector d = make(1, 100 * us);
    d.start(0);
    d.on_probe_sent(0);
    EXPECT_FALSE(d.failed(100 * us - 1));
    EXPECT_TRUE(d.failed(100 * us));
}

TEST(Detector, RestartForgetsTheOldWatch) {
    detector d = make();
    d.start(0);
    for (int i = 0; i < 5; ++i) d.on_probe_sent(static_cast<std::uint64_t>(i) * 10 * us);
    EXPECT_TRUE(d.failed(60 * us));
    d.start(100 * us);
    EXPECT_FALSE(d.failed(100 * us));
    EXPECT_EQ(d.unanswered(), 0u);
}

TEST(Detector, NeverAnsweredPrimaryIsJudgedOnlyAfterTheStartupGrace) {
    detector::params p;
    p.interval_ns = 10 * us;
    p.miss = 3;
    p.startup_grace_ns = 100'000 * us;
    detector d(p);
    d.start(0);
    std::uint64_t t = 0;
    for (; t < 50'000 * us; t += us) {
        d.observe_time(t);
        if (d.probe_due(t)) d.on_probe_sent(t);
        ASSERT_FALSE(d.failed(t)) << "slow first answers are not a failure";
    }
    EXPECT_FALSE(d.armed());
    for (; !d.failed(t); t += us) {
        d.observe_time(t);
        if (d.probe_due(t)) d.on_probe_sent(t);
    }
    EXPECT_EQ(t, 100'000 * us);
}

TEST(Detector, OnceAnsweredTheMicrosecondWindowApplies) {
    detector::params p;
    p.interval_ns = 10 * us;
    p.miss = 3;
    p.startup_grace_ns = 100'000 * us;
    detector d(p);
    d.start(0);
    d.on_answer(d.on_probe_sent(0), 5 * us);
    EXPECT_TRUE(d.armed());
    std::uint64_t t = 10 * us;
    for (; !d.failed(t); t += us) {
        d.observe_time(t);
        if (d.probe_due(t)) d.on_probe_sent(t);
    }
    EXPECT_EQ(t, 5 * us + 30 * us) << "the window counts from the answer";
}

// Many groups (align): probes fall on a grid of the interval from time 0, whenever each
// watch started, so the groups' probes share turns and their deadlines fall together.
TEST(Detector, AlignedProbesFallOnTheIntervalGridWhateverTheStart) {
    detector::params p;
    p.interval_ns = 1000;
    p.miss = 3;
    p.align = true;
    for (const std::uint64_t start : {5'000u, 5'321u, 5'999u}) {
        detector d(p);
        d.start(start);
        EXPECT_TRUE(d.probe_due(start));
        d.on_probe_sent(start);
        EXPECT_EQ(d.next_probe_ns(), 6'000u) << "start " << start;
        d.on_probe_sent(6'003);
        EXPECT_EQ(d.next_probe_ns(), 7'000u);
        d.on_probe_sent(9'500); // late: no catching up, back on the grid
        EXPECT_EQ(d.next_probe_ns(), 10'000u);
    }
}
