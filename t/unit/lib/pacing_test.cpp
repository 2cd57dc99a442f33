#include "pulse/pacing.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace pulse::pacing {
namespace {

// Messages of one channel: id n, body "v<n>", key as given.
MsgPtr msg(int n, std::string key = "", std::string body = "")
{
    MessageView v;
    v.id = MsgId{1000, n};
    std::string b = body.empty() ? "v" + std::to_string(n) : body;
    v.body = b;
    v.conflation_key = key;
    return std::make_shared<Msg>(v);
}

std::vector<int> tags(const Pacer::Batch& b)
{
    std::vector<int> out;
    for (const Item& it : b.items) {
        out.push_back(it.msg->id.tag);
    }
    return out;
}

TEST(PacingParse, Durations)
{
    EXPECT_EQ(parse_duration_ms("250ms").value(), 250U);
    EXPECT_EQ(parse_duration_ms("1s").value(), 1000U);
    EXPECT_EQ(parse_duration_ms("30").value(), 30000U);
    EXPECT_EQ(parse_duration_ms("2m").value(), 120000U);
    EXPECT_EQ(parse_duration_ms("1h").value(), 3600000U);
    for (const char* bad : {"", "ms", "0", "0ms", "-1s", "1.5s", "1 s", "1d",
                            "25h", "99999999999999999999", "s1"})
    {
        auto r = parse_duration_ms(bad);
        ASSERT_FALSE(r.is_ok()) << bad;
        EXPECT_EQ(r.status().code(), Code::kInvalidArgument) << bad;
        EXPECT_NE(r.status().message().find("Invalid duration"),
                  std::string::npos);
    }
}

TEST(PacingParse, Asks)
{
    EXPECT_FALSE(parse_ask({}, {}, {}).value().has_value());
    EXPECT_EQ(*parse_ask("500ms", {}, {}).value(),
              (Pace{Mode::kThrottle, 500}));
    EXPECT_EQ(*parse_ask({}, "30s", {}).value(),
              (Pace{Mode::kInterval, 30000}));
    EXPECT_EQ(*parse_ask({}, {}, "manual").value(), (Pace{Mode::kManual, 0}));
    EXPECT_EQ(*parse_ask({}, {}, "live").value(), (Pace{Mode::kLive, 0}));
    EXPECT_FALSE(parse_ask("1s", "1s", {}).is_ok());
    EXPECT_FALSE(parse_ask("1s", {}, "live").is_ok());
    EXPECT_FALSE(parse_ask({}, {}, "throttle").is_ok());
    EXPECT_FALSE(parse_ask("fast", {}, {}).is_ok());
    EXPECT_EQ(to_string(Pace{Mode::kThrottle, 250}), "throttle=250ms");
    EXPECT_EQ(to_string(Pace{Mode::kInterval, 30000}), "interval=30s");
    EXPECT_EQ(to_string(Pace{Mode::kManual, 0}), "manual");
}

TEST(PacingParse, LimitsBoundTheAsk)
{
    Limits l;
    l.fallback = Pace{Mode::kThrottle, 1000};
    l.min_ms = 100;
    l.max_ms = 60000;
    EXPECT_EQ(bounded(l, std::nullopt), (Pace{Mode::kThrottle, 1000}));
    EXPECT_EQ(bounded(l, Pace{Mode::kThrottle, 10}),
              (Pace{Mode::kThrottle, 100}));
    EXPECT_EQ(bounded(l, Pace{Mode::kInterval, 3600000}),
              (Pace{Mode::kInterval, 60000}));
    // a minimum makes live throttled; manual costs nothing and stays
    EXPECT_EQ(bounded(l, Pace{Mode::kLive, 0}), (Pace{Mode::kThrottle, 100}));
    EXPECT_EQ(bounded(l, Pace{Mode::kManual, 0}), (Pace{Mode::kManual, 0}));
    EXPECT_EQ(bounded(Limits{}, Pace{Mode::kLive, 0}), (Pace{Mode::kLive, 0}));
}

TEST(Pacer, LiveSendsEverythingAtOnce)
{
    Pacer p(Pace{}, Bounds{}, 0);
    EXPECT_TRUE(p.passthrough());
    for (int i = 1; i <= 3; ++i) {
        EXPECT_EQ(p.offer(0, msg(i, "k"), 0, true), Pacer::Offer::kSend);
    }
    EXPECT_EQ(p.held(), 0U);
    EXPECT_FALSE(p.due(0, true).has_value());
}

TEST(Pacer, ThrottleLeadingThenOneBatchPerInterval)
{
    Pacer p(Pace{Mode::kThrottle, 250}, Bounds{}, 0);
    EXPECT_FALSE(p.passthrough());
    // after a quiet interval the first message goes at once
    EXPECT_EQ(p.offer(0, msg(1), 10, true), Pacer::Offer::kSend);
    EXPECT_EQ(p.offer(0, msg(2), 20, true), Pacer::Offer::kHeld);
    EXPECT_EQ(p.offer(0, msg(3), 30, true), Pacer::Offer::kHeld);
    EXPECT_EQ(p.due(30, true), 230U);  // 10 + 250
    EXPECT_TRUE(p.take(100, true).items.empty());
    EXPECT_EQ(tags(p.take(260, true)), (std::vector<int>{2, 3}));
    // the batch was a write: the next message waits for 260 + 250
    EXPECT_EQ(p.offer(0, msg(4), 300, true), Pacer::Offer::kHeld);
    EXPECT_EQ(p.due(300, true), 210U);
    EXPECT_EQ(tags(p.take(510, true)), (std::vector<int>{4}));
    // quiet for longer than the interval: at once again
    EXPECT_EQ(p.offer(0, msg(5), 2000, true), Pacer::Offer::kSend);
}

TEST(Pacer, ThrottleConflatesKeysKeepingPublishOrder)
{
    Pacer p(Pace{Mode::kThrottle, 1000}, Bounds{}, 0);
    ASSERT_EQ(p.offer(0, msg(1, "a"), 0, true), Pacer::Offer::kSend);
    p.offer(0, msg(2, "a"), 1, true);
    p.offer(0, msg(3, "b"), 2, true);
    p.offer(0, msg(4), 3, true);  // keyless: kept
    p.offer(0, msg(5, "a"), 4, true);
    p.offer(0, msg(6), 5, true);
    p.offer(1, msg(7, "a"), 6, true);  // another channel's "a"
    p.offer(0, msg(8, "b"), 7, true);
    EXPECT_EQ(p.held(), 5U);
    EXPECT_EQ(p.conflated(), 2U);
    // the latest of each key, each in its own publish position: ids rise
    Pacer::Batch b = p.take(1000, true);
    EXPECT_EQ(tags(b), (std::vector<int>{4, 5, 6, 7, 8}));
    EXPECT_EQ(b.items[3].index, 1U);
    EXPECT_FALSE(b.gap);
    EXPECT_EQ(p.held(), 0U);
    EXPECT_EQ(p.held_bytes(), 0U);
}

TEST(Pacer, StormOfOneSecondIsFiveBatchesOfTheLatestPerKey)
{
    // 1000 messages over 10 keys in one second at throttle=250ms
    Pacer p(Pace{Mode::kThrottle, 250}, Bounds{}, 0);
    std::vector<Pacer::Batch> batches;
    uint64_t now = 0;
    for (int i = 0; i < 1000; ++i) {
        now = static_cast<uint64_t>(i);
        if (auto d = p.due(now, true); d && *d == 0) {
            batches.push_back(p.take(now, true));
        }
        auto m = msg(i + 1, "k" + std::to_string(i % 10));
        if (p.offer(0, m, now, true) == Pacer::Offer::kSend) {
            batches.push_back(Pacer::Batch{{Item{m, 0}}, false});
        }
    }
    while (auto d = p.due(now, true)) {
        now += *d;
        batches.push_back(p.take(now, true));
    }
    ASSERT_EQ(batches.size(), 5U);  // at 0, 250, 500, 750, 1000
    EXPECT_EQ(batches[0].items.size(), 1U);
    int last = 0;
    for (size_t b = 1; b < batches.size(); ++b) {
        ASSERT_EQ(batches[b].items.size(), 10U);
        for (const Item& it : batches[b].items) {
            EXPECT_GT(it.msg->id.tag, last);  // ids increase
            last = it.msg->id.tag;
        }
    }
    // the last batch holds the final value of every key
    EXPECT_EQ(tags(batches.back()).front(), 991);
    EXPECT_EQ(tags(batches.back()).back(), 1000);
    EXPECT_EQ(p.conflated(), 1000U - 1 - 4 * 10);  // all but those written
}

TEST(Pacer, IntervalWritesOnItsCadenceOnly)
{
    Pacer p(Pace{Mode::kInterval, 30000}, Bounds{}, 5000);
    EXPECT_EQ(p.offer(0, msg(1, "x"), 6000, true), Pacer::Offer::kHeld);
    EXPECT_EQ(p.due(6000, true), 29000U);  // the tick at 35000
    p.offer(0, msg(2, "x"), 20000, true);
    EXPECT_EQ(tags(p.take(35000, true)), (std::vector<int>{2}));
    // nothing held over a tick: no write; the next one after 95000 is 125000
    p.offer(0, msg(3), 95000, true);
    EXPECT_EQ(p.due(95000, true), 30000U);
    EXPECT_TRUE(p.take(100000, true).items.empty());
    EXPECT_EQ(tags(p.take(125000, true)), (std::vector<int>{3}));
}

TEST(Pacer, ManualHoldsUntilFetch)
{
    Pacer p(Pace{Mode::kManual, 0}, Bounds{}, 0);
    p.offer(0, msg(1, "a"), 0, true);
    p.offer(0, msg(2, "a"), 1, true);
    p.offer(0, msg(3, "b"), 2, true);
    EXPECT_FALSE(p.due(1000000, true).has_value());
    EXPECT_TRUE(p.take(1000000, true).items.empty());
    EXPECT_EQ(tags(p.fetch(5)), (std::vector<int>{2, 3}));
    EXPECT_TRUE(p.fetch(6).items.empty());
}

TEST(Pacer, ModeSwitchesMidStream)
{
    Pacer p(Pace{Mode::kManual, 0}, Bounds{}, 0);
    p.offer(0, msg(1, "a"), 0, true);
    p.offer(0, msg(2, "a"), 1, true);
    // manual -> live: what is held is due at once, then live again
    p.set_pace(Pace{}, 10);
    EXPECT_FALSE(p.passthrough());
    EXPECT_EQ(p.due(10, true), 0U);
    EXPECT_EQ(tags(p.take(10, true)), (std::vector<int>{2}));
    EXPECT_TRUE(p.passthrough());
    EXPECT_EQ(p.offer(0, msg(3, "a"), 11, true), Pacer::Offer::kSend);
    // live -> throttle: the last write was long ago, so at once
    p.set_pace(Pace{Mode::kThrottle, 100}, 20);
    EXPECT_EQ(p.offer(0, msg(4, "a"), 20, true), Pacer::Offer::kSend);
    EXPECT_EQ(p.offer(0, msg(5, "a"), 30, true), Pacer::Offer::kHeld);
    // throttle -> interval: the cadence starts at the switch
    p.set_pace(Pace{Mode::kInterval, 1000}, 40);
    EXPECT_EQ(p.due(40, true), 1000U);
    EXPECT_EQ(tags(p.take(1040, true)), (std::vector<int>{5}));
    // -> manual: nothing is due until a fetch
    p.offer(0, msg(6), 1050, true);
    p.set_pace(Pace{Mode::kManual, 0}, 1060);
    EXPECT_FALSE(p.due(99999, true).has_value());
    EXPECT_EQ(tags(p.fetch(99999)), (std::vector<int>{6}));
}

TEST(Pacer, SlowSocketHoldsUntilItDrains)
{
    Pacer p(Pace{Mode::kThrottle, 100}, Bounds{}, 0);
    p.offer(0, msg(1), 0, false);  // the socket still has bytes: held
    EXPECT_FALSE(p.due(500, false).has_value());
    EXPECT_TRUE(p.take(500, false).items.empty());
    EXPECT_EQ(p.due(500, true), 0U);
    EXPECT_EQ(tags(p.take(500, true)), (std::vector<int>{1}));
}

TEST(Pacer, LiveWithClosePolicyNeverHolds)
{
    // the socket's own limit closes it, as without pacing
    Pacer p(Pace{}, Bounds{2, 0, Overflow::kClose}, 0);
    for (int i = 1; i <= 5; ++i) {
        EXPECT_EQ(p.offer(0, msg(i), 0, false), Pacer::Offer::kSend);
    }
    EXPECT_EQ(p.held(), 0U);
}

TEST(Pacer, LiveWithDropOldestHoldsForASlowSocketWithinItsBound)
{
    Pacer p(Pace{}, Bounds{3, 0, Overflow::kDropOldest}, 0);
    EXPECT_FALSE(p.passthrough());
    EXPECT_EQ(p.offer(0, msg(1), 0, true), Pacer::Offer::kSend);
    for (int i = 2; i <= 10; ++i) {
        EXPECT_EQ(p.offer(0, msg(i, "k"), 0, false), Pacer::Offer::kHeld);
        EXPECT_LE(p.held(), 3U);
    }
    EXPECT_EQ(p.dropped(), 6U);  // keyed but live: drop-oldest conflates not
    Pacer::Batch b = p.take(1, true);
    EXPECT_TRUE(b.gap);
    EXPECT_EQ(tags(b), (std::vector<int>{8, 9, 10}));
    EXPECT_FALSE(p.take(2, true).gap);
}

TEST(Pacer, ConflatePolicyKeepsTheLatestPerKeyForASlowSocket)
{
    Pacer p(Pace{}, Bounds{3, 0, Overflow::kConflate}, 0);
    for (int i = 1; i <= 9; ++i) {
        p.offer(0, msg(i, "k" + std::to_string(i % 3)), 0, false);
    }
    EXPECT_EQ(p.held(), 3U);
    EXPECT_EQ(p.dropped(), 0U);
    EXPECT_EQ(p.conflated(), 6U);
    Pacer::Batch b = p.take(0, true);
    EXPECT_FALSE(b.gap);
    EXPECT_EQ(tags(b), (std::vector<int>{7, 8, 9}));
    // keyless messages past the bound: the oldest go, with a gap
    for (int i = 10; i <= 14; ++i) {
        p.offer(0, msg(i), 0, false);
    }
    b = p.take(0, true);
    EXPECT_TRUE(b.gap);
    EXPECT_EQ(tags(b), (std::vector<int>{12, 13, 14}));
}

TEST(Pacer, ByteBound)
{
    Pacer p(Pace{Mode::kManual, 0}, Bounds{0, 10, Overflow::kDropOldest}, 0);
    p.offer(0, msg(1, "", "aaaa"), 0, true);
    p.offer(0, msg(2, "", "bbbb"), 0, true);
    EXPECT_EQ(p.held_bytes(), 8U);
    p.offer(0, msg(3, "", "cccc"), 0, true);
    EXPECT_EQ(p.held_bytes(), 8U);
    EXPECT_EQ(tags(p.fetch(0)), (std::vector<int>{2, 3}));
    // one message larger than the bound cannot be held at all
    p.offer(0, msg(4, "", std::string(11, 'x')), 0, true);
    Pacer::Batch b = p.fetch(0);
    EXPECT_TRUE(b.items.empty());
    EXPECT_TRUE(b.gap);
}

TEST(Pacer, ClosePolicyReportsOverflow)
{
    Pacer p(Pace{Mode::kManual, 0}, Bounds{2, 0, Overflow::kClose}, 0);
    EXPECT_EQ(p.offer(0, msg(1), 0, true), Pacer::Offer::kHeld);
    EXPECT_EQ(p.offer(0, msg(2), 0, true), Pacer::Offer::kHeld);
    EXPECT_EQ(p.offer(0, msg(3), 0, true), Pacer::Offer::kOverflow);
    // conflated keys never overflow: they replace
    Pacer q(Pace{Mode::kManual, 0}, Bounds{2, 0, Overflow::kClose}, 0);
    for (int i = 1; i <= 100; ++i) {
        EXPECT_EQ(q.offer(0, msg(i, i % 2 ? "a" : "b"), 0, true),
                  Pacer::Offer::kHeld);
    }
}

TEST(Pacer, WhatTheSocketHadNoRoomForGoesFirstNextTime)
{
    Pacer p(Pace{Mode::kManual, 0}, Bounds{}, 0);
    for (int i = 1; i <= 4; ++i) {
        p.offer(0, msg(i, "k" + std::to_string(i)), 0, true);
    }
    Pacer::Batch b = p.fetch(0);
    p.give_back(b.items.begin() + 2, b.items.cend());
    EXPECT_EQ(p.held(), 2U);
    p.offer(0, msg(5, "k3"), 0, true);  // conflates with the given back
    p.offer(0, msg(6), 0, true);
    EXPECT_EQ(tags(p.fetch(0)), (std::vector<int>{4, 5, 6}));
}

TEST(Pacer, AStalledSocketsQueueStaysWithinItsBound)
{
    Pacer p(Pace{}, Bounds{3, 0, Overflow::kDropOldest}, 0);
    for (int i = 1; i <= 100000; ++i) {
        p.offer(0, msg(i), 0, false);
        ASSERT_LE(p.slots(), 64U + 3U);
    }
    EXPECT_EQ(tags(p.take(0, true)), (std::vector<int>{99998, 99999, 100000}));
}

TEST(Pacer, ManyConflationsStayCompact)
{
    Pacer p(Pace{Mode::kManual, 0}, Bounds{}, 0);
    for (int i = 1; i <= 100000; ++i) {
        p.offer(0, msg(i, "k" + std::to_string(i % 7)), 0, true);
        ASSERT_EQ(p.held(), std::min<size_t>(static_cast<size_t>(i), 7));
    }
    EXPECT_EQ(tags(p.fetch(0)), (std::vector<int>{99994, 99995, 99996, 99997,
                                                  99998, 99999, 100000}));
}

}  // namespace
}  // namespace pulse::pacing
