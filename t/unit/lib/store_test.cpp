#include "pulse/store.h"

#include <unistd.h>

#include <algorithm>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <sys/wait.h>

#include "support/buffer_arena.h"

namespace pulse {
namespace {

using test::BufferArena;

struct Fixture : ::testing::Test {
    explicit Fixture(size_t size = 4 << 20, bool shared = false)
        : arena(size, shared), store(arena)
    {
        Store::Guard g(store);
        EXPECT_TRUE(store.open(g, 64, 42).is_ok());
    }

    static Store::PublishParams params(std::string_view key,
                                       std::string_view body, int64_t now)
    {
        Store::PublishParams p;
        p.key = key;
        p.body = body;
        p.now = now;
        return p;
    }

    Store::PublishResult pub(std::string_view key, std::string_view body,
                             int64_t now, uint32_t max = 10,
                             int64_t timeout = 3600)
    {
        Store::Guard g(store);
        Store::PublishParams p = params(key, body, now);
        p.max_messages = max;
        p.timeout = timeout;
        auto r = store.publish(g, p);
        EXPECT_TRUE(r.is_ok()) << r.status().message();
        return r.is_ok() ? r.value() : Store::PublishResult{};
    }

    std::vector<std::string> buffered(std::string_view key,
                                      std::optional<MsgId> after,
                                      FirstMessage first, int64_t now,
                                      bool* gap = nullptr)
    {
        Store::Guard g(store);
        auto s = store.subscribe(g, key, 0, now, true);
        std::vector<std::string> out;
        if (!s.is_ok()) {
            return out;
        }
        bool got = store.read_buffered(
            g, s->channel, after, first, now, 1000,
            [&](const MessageView& m) { out.emplace_back(m.body); });
        store.unsubscribe(g, s.value());
        if (gap != nullptr) {
            *gap = got;
        }
        return out;
    }

    BufferArena arena;
    Store store;
};

TEST_F(Fixture, AssignsIdsInPublishOrder)
{
    auto a = pub("/c", "a", 100);
    auto b = pub("/c", "b", 100);
    auto c = pub("/c", "c", 101);
    EXPECT_EQ(a.id, (MsgId{100, 0}));
    EXPECT_EQ(b.id, (MsgId{100, 1}));
    EXPECT_EQ(c.id, (MsgId{101, 0}));
    // A clock that goes back never produces an older id.
    auto d = pub("/c", "d", 99);
    EXPECT_EQ(d.id, (MsgId{101, 1}));
    EXPECT_EQ(d.info.messages, 4u);
    EXPECT_EQ(d.info.last_id, (MsgId{101, 1}));
}

TEST_F(Fixture, StoresBodyContentTypeAndEvent)
{
    Store::Guard g(store);
    std::string body("bin\0ary\n", 8);
    Store::PublishParams p = params("/c", body, 5);
    p.content_type = "application/octet-stream";
    p.event = "tick";
    ASSERT_TRUE(store.publish(g, p).is_ok());
    auto s = store.subscribe(g, "/c", 0, 5, true);
    ASSERT_TRUE(s.is_ok());
    int n = 0;
    store.read_buffered(g, s->channel, std::nullopt, FirstMessage{}, 5, 10,
                        [&](const MessageView& m) {
                            EXPECT_EQ(m.body, body);
                            EXPECT_EQ(m.content_type,
                                      "application/octet-stream");
                            EXPECT_EQ(m.event, "tick");
                            ++n;
                        });
    EXPECT_EQ(n, 1);
}

TEST_F(Fixture, StoresTheCompressedBodyBesideTheBody)
{
    Store::Guard g(store);
    Store::PublishParams p = params("/z", "plain", 5);
    ASSERT_TRUE(store.publish(g, p).is_ok());
    std::string z("\x2a\0\xff compressed", 13);
    p.body = "second";
    p.deflated = z;
    ASSERT_TRUE(store.publish(g, p).is_ok());
    auto s = store.subscribe(g, "/z", 0, 5, true);
    ASSERT_TRUE(s.is_ok());
    std::vector<std::pair<std::string, std::string>> got;
    store.read_buffered(
        g, s->channel, std::nullopt, FirstMessage{}, 5, 10,
        [&](const MessageView& m) { got.emplace_back(m.body, m.deflated); });
    ASSERT_EQ(got.size(), 2u);
    EXPECT_EQ(got[0], (std::pair<std::string, std::string>("plain", "")));
    EXPECT_EQ(got[1], (std::pair<std::string, std::string>("second", z)));
}

TEST_F(Fixture, BufferKeepsTheNewestN)
{
    for (int i = 0; i < 25; ++i) {
        pub("/c", std::to_string(i), 100 + i, 10);
    }
    auto all = buffered("/c", std::nullopt, FirstMessage{}, 200);
    ASSERT_EQ(all.size(), 10u);
    EXPECT_EQ(all.front(), "15");
    EXPECT_EQ(all.back(), "24");
    Store::Guard g(store);
    EXPECT_EQ(store.stats(g).stored_messages, 10u);
}

TEST_F(Fixture, ResumeAfterIdAndGapSignal)
{
    for (int i = 0; i < 5; ++i) {
        pub("/c", std::to_string(i), 100 + i, 3);
    }
    bool gap = true;
    // Last seen 103:0 -> only "4"; no gap, 103:0 is still the previous one.
    EXPECT_EQ(buffered("/c", MsgId{103, 0}, FirstMessage{}, 110, &gap),
              (std::vector<std::string>{"4"}));
    EXPECT_FALSE(gap);
    // Last seen 100:0 -> 101:0 is gone: buffered from the oldest, and a gap.
    EXPECT_EQ(buffered("/c", MsgId{100, 0}, FirstMessage{}, 110, &gap),
              (std::vector<std::string>{"2", "3", "4"}));
    EXPECT_TRUE(gap);
    EXPECT_TRUE(buffered("/c", MsgId{104, 0}, FirstMessage{}, 110).empty());
}

TEST_F(Fixture, FirstMessageModes)
{
    for (int i = 0; i < 5; ++i) {
        pub("/c", std::to_string(i), 100 + i);
    }
    using V = std::vector<std::string>;
    EXPECT_EQ(buffered("/c", std::nullopt, FirstMessage{0}, 110),
              (V{"0", "1", "2", "3", "4"}));
    EXPECT_EQ(
        buffered("/c", std::nullopt, FirstMessage{FirstMessage::kNewest}, 110),
        V{});
    EXPECT_EQ(buffered("/c", std::nullopt, FirstMessage{2}, 110),
              (V{"1", "2", "3", "4"}));
    EXPECT_EQ(buffered("/c", std::nullopt, FirstMessage{-2}, 110),
              (V{"3", "4"}));
    EXPECT_EQ(buffered("/c", std::nullopt, FirstMessage{-9}, 110),
              (V{"0", "1", "2", "3", "4"}));
}

TEST_F(Fixture, MessagesExpire)
{
    pub("/c", "old", 100, 10, 5);
    pub("/c", "new", 103, 10, 5);
    EXPECT_EQ(buffered("/c", std::nullopt, FirstMessage{}, 104).size(), 2u);
    EXPECT_EQ(buffered("/c", std::nullopt, FirstMessage{}, 105),
              (std::vector<std::string>{"new"}));
    EXPECT_TRUE(buffered("/c", std::nullopt, FirstMessage{}, 108).empty());
    Store::Guard g(store);
    auto info = store.info(g, "/c", 108);
    ASSERT_TRUE(info.is_ok());
    EXPECT_EQ(info->messages, 0u);
    EXPECT_EQ(info->last_id, (MsgId{103, 0}));
}

TEST_F(Fixture, TimeoutZeroNeverExpires)
{
    pub("/c", "x", 100, 10, 0);
    EXPECT_EQ(
        buffered("/c", std::nullopt, FirstMessage{}, 100 + 86400 * 365).size(),
        1u);
}

TEST_F(Fixture, InfoAndDelete)
{
    Store::Guard g(store);
    EXPECT_EQ(store.info(g, "/none", 1).status().code(), Code::kNotFound);
    EXPECT_EQ(store.remove(g, "/none", 1).status().code(), Code::kNotFound);
}

TEST_F(Fixture, SubscribersReceiveThroughTheirSlotMailbox)
{
    uint32_t slot = 0;
    Store::Subscription sub;
    {
        Store::Guard g(store);
        auto s = store.claim_slot(g, 1234);
        ASSERT_TRUE(s.is_ok());
        slot = s.value();
        auto r = store.subscribe(g, "/c", slot, 100, false);
        ASSERT_TRUE(r.is_ok());
        sub = r.value();
        store.add_subscribers(g, sub, 3, 100);
    }
    auto a = pub("/c", "a", 100);
    EXPECT_EQ(a.info.subscribers, 3u);
    EXPECT_EQ(a.ring, uint64_t{1} << slot);
    // The bell is already ringing: a second publish does not ring again.
    auto b = pub("/c", "b", 100);
    EXPECT_EQ(b.ring, 0u);

    Store::Guard g(store);
    std::vector<std::string> got;
    bool overflow = store.drain_mailbox(g, slot, [&](ChannelHandle h) {
        EXPECT_EQ(h, sub.channel);
        store.read_for_slot(g, sub, 100, [&](const MessageView& m) {
            got.emplace_back(m.body);
        });
    });
    EXPECT_FALSE(overflow);
    EXPECT_EQ(got, (std::vector<std::string>{"a", "b"}));
    // Nothing new: reading again yields nothing.
    got.clear();
    store.read_for_slot(
        g, sub, 100, [&](const MessageView& m) { got.emplace_back(m.body); });
    EXPECT_TRUE(got.empty());
}

// A worker that keeps up gets every message even when the buffer is far
// shorter than the burst: evicted messages wait for slots that still have to
// read them.
TEST_F(Fixture, EvictedMessagesWaitForPendingSlots)
{
    Store::Subscription sub;
    {
        Store::Guard g(store);
        uint32_t slot = store.claim_slot(g, 1).value();
        sub = store.subscribe(g, "/c", slot, 0, false).value();
        store.add_subscribers(g, sub, 1, 0);
    }
    for (int i = 0; i < 100; ++i) {
        pub("/c", std::to_string(i), 10, 2);
    }
    Store::Guard g(store);
    std::vector<std::string> got;
    store.read_for_slot(
        g, sub, 10, [&](const MessageView& m) { got.emplace_back(m.body); });
    ASSERT_EQ(got.size(), 100u);
    EXPECT_EQ(got.front(), "0");
    EXPECT_EQ(got.back(), "99");
    EXPECT_EQ(store.info(g, "/c", 10)->messages, 2u);
}

TEST_F(Fixture, LeavingReleasesPendingMessages)
{
    Store::Subscription sub;
    {
        Store::Guard g(store);
        uint32_t slot = store.claim_slot(g, 1).value();
        sub = store.subscribe(g, "/c", slot, 0, false).value();
        store.add_subscribers(g, sub, 1, 0);
    }
    size_t before = 0;
    {
        Store::Guard g(store);
        before = arena.used_bytes();
    }
    for (int i = 0; i < 50; ++i) {
        pub("/c", std::string(100, 'x'), 10, 1);
    }
    Store::Guard g(store);
    EXPECT_GT(arena.used_bytes(), before + 40 * 100);
    store.add_subscribers(g, sub, -1, 10);
    store.unsubscribe(g, sub);
    // Only the one buffered message remains.
    EXPECT_LT(arena.used_bytes(), before + 3 * 256);
}

TEST_F(Fixture, DeletedChannelNotifiesAndLingersUntilReleased)
{
    Store::Subscription sub;
    uint32_t slot = 0;
    {
        Store::Guard g(store);
        slot = store.claim_slot(g, 1).value();
        sub = store.subscribe(g, "/c", slot, 0, false).value();
        store.add_subscribers(g, sub, 2, 0);
    }
    pub("/c", "a", 1);
    Store::Guard g(store);
    store.drain_mailbox(g, slot, [](ChannelHandle) {});
    auto d = store.remove(g, "/c", 2);
    ASSERT_TRUE(d.is_ok());
    EXPECT_EQ(d->info.subscribers, 2u);
    EXPECT_EQ(d->ring, uint64_t{1} << slot);
    EXPECT_EQ(store.info(g, "/c", 2).status().code(), Code::kNotFound);
    EXPECT_EQ(store.stats(g).channels, 1u);  // lingers for its subscribers
    bool saw = false;
    store.drain_mailbox(g, slot, [&](ChannelHandle h) {
        saw = true;
        EXPECT_TRUE(store.is_deleted(g, h));
        store.add_subscribers(g, sub, -2, 2);
        store.unsubscribe(g, sub);
    });
    EXPECT_TRUE(saw);
    EXPECT_EQ(store.stats(g).channels, 0u);
    EXPECT_EQ(store.stats(g).subscribers, 0u);
}

TEST_F(Fixture, DeadSlotsAreReclaimed)
{
    {
        Store::Guard g(store);
        for (uint32_t i = 0; i < kMaxSlots; ++i) {
            auto s = store.claim_slot(g, 100 + static_cast<int32_t>(i));
            ASSERT_TRUE(s.is_ok());
            auto sub = store.subscribe(g, "/c", s.value(), 0, false);
            store.add_subscribers(g, sub.value(), 1, 0);
        }
        EXPECT_EQ(store.claim_slot(g, 999).status().code(), Code::kNoMemory);
        EXPECT_EQ(store.info(g, "/c", 0)->subscribers, kMaxSlots);
    }
    pub("/c", "x", 1);
    Store::Guard g(store);
    // the pids are read under the lock, checked outside it, and a slot is
    // released only if the same pid still holds it
    auto pids = store.slot_pids(g);
    EXPECT_EQ(pids[3], 103);
    EXPECT_FALSE(
        store.reap_slot(g, 3, 999, 0).has_value());  // another pid: kept
    for (uint32_t i = 0; i < kMaxSlots; ++i) {
        EXPECT_TRUE(store.reap_slot(g, i, pids[i], 0).has_value());
    }
    EXPECT_FALSE(
        store.reap_slot(g, 0, pids[0], 0).has_value());  // already free
    auto s = store.claim_slot(g, 999);
    ASSERT_TRUE(s.is_ok());
    EXPECT_EQ(store.info(g, "/c", 1)->subscribers, 0u);
    EXPECT_EQ(store.stats(g).subscribers, 0u);
}

TEST_F(Fixture, MailboxOverflowIsReported)
{
    uint32_t slot = 0;
    {
        Store::Guard g(store);
        slot = store.claim_slot(g, 1).value();
        for (uint32_t i = 0; i < kMailboxSize + 5; ++i) {
            auto sub =
                store.subscribe(g, "/c" + std::to_string(i), slot, 0, false);
            ASSERT_TRUE(sub.is_ok());
        }
    }
    for (uint32_t i = 0; i < kMailboxSize + 5; ++i) {
        pub("/c" + std::to_string(i), "x", 1);
    }
    Store::Guard g(store);
    uint32_t n = 0;
    EXPECT_TRUE(store.drain_mailbox(g, slot, [&](ChannelHandle) { ++n; }));
    EXPECT_EQ(n, kMailboxSize);
}

TEST_F(Fixture, IdleChannelsAreCollected)
{
    pub("/c", "x", 100, 10, 5);
    Store::Guard g(store);
    store.gc(g, 102, 5, 1024);
    EXPECT_EQ(store.stats(g).channels, 1u);
    store.gc(g, 106, 5, 1024);  // message expired, channel idle 6 s
    EXPECT_EQ(store.stats(g).channels, 1u);
    store.gc(g, 111, 5, 1024);
    EXPECT_EQ(store.stats(g).channels, 0u);
}

TEST_F(Fixture, PublisherSuppliedIdsAreIdempotent)
{
    Store::Guard g(store);
    Store::PublishParams p = params("/c", "x", 50);
    p.id = MsgId{1000, 7};
    auto a = store.publish(g, p);
    ASSERT_TRUE(a.is_ok());
    EXPECT_EQ(a->id, (MsgId{1000, 7}));
    EXPECT_FALSE(a->duplicate);
    auto b = store.publish(g, p);
    ASSERT_TRUE(b.is_ok());
    EXPECT_TRUE(b->duplicate);
    EXPECT_EQ(b->info.messages, 1u);
    p.id.reset();
    auto c = store.publish(g, p);  // store-assigned ids stay after it
    EXPECT_EQ(c->id, (MsgId{1000, 8}));
}

struct SmallArena : Fixture {
    SmallArena() : Fixture(1 << 20) {}
};

TEST_F(Fixture, TagOverflowMovesToTheNextSecond)
{
    Store::Guard g(store);
    auto p = params("/c", "a", 100);
    p.id = MsgId{100, kMaxMsgTag};
    ASSERT_TRUE(store.publish(g, p).is_ok());
    p.id.reset();
    auto r = store.publish(g, p);
    ASSERT_TRUE(r.is_ok());
    EXPECT_EQ(r->id, (MsgId{101, 0}));
    // and at the very end of the id space the publish is refused
    p.key = "/end";
    p.id = MsgId{kMaxMsgTime, kMaxMsgTag};
    ASSERT_TRUE(store.publish(g, p).is_ok());
    p.id.reset();
    auto end = store.publish(g, p);
    ASSERT_FALSE(end.is_ok());
    EXPECT_EQ(end.status().code(), Code::kTooLarge);
}

TEST_F(Fixture, SuppliedIdsOutOfRangeAreRefused)
{
    Store::Guard g(store);
    auto p = params("/c", "a", 100);
    for (MsgId bad :
         {MsgId{100, -1}, MsgId{0, 5}, MsgId{-3, 0}, MsgId{kMaxMsgTime + 1, 0}})
    {
        p.id = bad;
        auto r = store.publish(g, p);
        ASSERT_FALSE(r.is_ok());
        EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
    }
    EXPECT_FALSE(store.info(g, "/c", 100).is_ok());  // nothing was created
}

TEST_F(Fixture, AHugeTimeoutMeansNeverNotThePast)
{
    pub("/c", "kept", 100, 10, INT64_MAX - 5);
    pub("/c", "also", 100, 10, kMaxMsgTime);
    EXPECT_EQ(buffered("/c", std::nullopt, FirstMessage{}, kMaxMsgTime),
              (std::vector<std::string>{"kept", "also"}));
}

TEST_F(SmallArena, FullZoneFailsThePublishAndRecovers)
{
    Store::Guard g(store);
    Store::PublishParams p;
    p.key = "/big";
    std::string body(2000, 'x');
    p.body = body;
    p.now = 100;
    p.max_messages = 100000;
    p.timeout = 10;
    int stored = 0;
    Status last;
    for (int i = 0; i < 100000; ++i) {
        auto r = store.publish(g, p);
        if (!r.is_ok()) {
            last = r.status();
            break;
        }
        ++stored;
    }
    EXPECT_EQ(last.code(), Code::kNoMemory);
    EXPECT_GT(stored, 5);
    // One episode, logged once by whichever worker sees it first.
    EXPECT_TRUE(store.mark_full(g));
    EXPECT_FALSE(store.mark_full(g));
    // Once the messages expire the publish evicts them and succeeds.
    p.now = 200;
    EXPECT_TRUE(store.publish(g, p).is_ok());
    EXPECT_EQ(store.info(g, "/big", 200)->messages, 1u);
    store.clear_full(g);
    EXPECT_TRUE(store.mark_full(g));
}

TEST_F(SmallArena, ReopenAdoptsTheExistingStore)
{
    pub("/c", "kept", 1);
    Store again(arena);
    Store::Guard g(again);
    ASSERT_TRUE(again.open(g, 64, 7).is_ok());
    EXPECT_EQ(again.token(), 42u);
    EXPECT_EQ(again.info(g, "/c", 1)->messages, 1u);
}

struct SharedArena : Fixture {
    SharedArena() : Fixture(4 << 20, true) {}
};

// Two processes on one MAP_SHARED store, as nginx workers: the child
// publishes while the parent's slot is subscribed; the parent reads all.
TEST_F(SharedArena, ForkedPublisherReachesParentSlot)
{
    Store::Subscription sub;
    {
        Store::Guard g(store);
        uint32_t slot =
            store.claim_slot(g, static_cast<int32_t>(getpid())).value();
        sub = store.subscribe(g, "/c", slot, 0, false).value();
        store.add_subscribers(g, sub, 1, 0);
    }
    pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        Store mine(arena);
        int ok = 0;
        {
            Store::Guard g(mine);
            ok = mine.open(g, 64, 1).is_ok() ? 1 : 0;
        }
        for (int i = 0; i < 500 && ok; ++i) {
            Store::Guard g(mine);
            Store::PublishParams p;
            p.key = "/c";
            std::string body = std::to_string(i);
            p.body = body;
            p.now = 1;
            p.max_messages = 3;
            ok = mine.publish(g, p).is_ok() ? 1 : 0;
        }
        _exit(ok ? 0 : 1);
    }
    std::vector<std::string> got;
    int status = 0;
    bool done = false;
    while (!done) {
        done = waitpid(child, &status, WNOHANG) == child;
        Store::Guard g(store);
        store.read_for_slot(
            g, sub, 1, [&](const MessageView& m) { got.emplace_back(m.body); });
    }
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0);
    ASSERT_EQ(got.size(), 500u);
    for (int i = 0; i < 500; ++i) {
        EXPECT_EQ(got[static_cast<size_t>(i)], std::to_string(i));
    }
}

// A wildcard's start reads the table in slices: together they see every
// channel not deleted, once; the last slice says so with 0.
TEST_F(Fixture, ChannelsAreReadInSlices)
{
    for (int i = 0; i < 300; ++i) {
        pub("c" + std::to_string(i), "x", 1000);
    }
    {
        Store::Guard g(store);
        ASSERT_TRUE(store.remove(g, "c7", 1000).is_ok());
    }
    std::vector<std::string> seen;
    uint32_t from = 0;
    int slices = 0;
    do {
        Store::Guard g(store);
        from = store.for_each_channel(
            g, from, 10, [&](ChannelHandle h, std::string_view key) {
                seen.emplace_back(key);
                EXPECT_EQ(store.key(g, h), key);
            });
        ++slices;
    } while (from != 0);
    EXPECT_EQ(slices, 7);  // 64 buckets, 10 at a time
    EXPECT_EQ(seen.size(), 299U);
    std::sort(seen.begin(), seen.end());
    EXPECT_EQ(std::unique(seen.begin(), seen.end()), seen.end());
    EXPECT_FALSE(std::binary_search(seen.begin(), seen.end(), "c7"));
}

}  // namespace
}  // namespace pulse
