// Channel group accounting and limits in the store (store_groups.cpp).

#include <string>

#include <gtest/gtest.h>

#include "pulse/store.h"
#include "support/buffer_arena.h"

namespace pulse {
namespace {

struct Groups : ::testing::Test {
    Groups() : arena(4 << 20), store(arena)
    {
        Store::Guard g(store);
        EXPECT_TRUE(store.open(g, 64, 42).is_ok());
        slot = store.claim_slot(g, 1234).value();
    }

    Status publish(std::string_view key, std::string_view body,
                   uint32_t max = 10, bool limits = true)
    {
        Store::Guard g(store);
        Store::PublishParams p;
        p.key = key;
        p.body = body;
        p.now = 100;
        p.max_messages = max;
        p.group_limits = limits;
        auto r = store.publish(g, p);
        return r.is_ok() ? Status::ok() : r.status();
    }

    GroupInfo info(std::string_view group)
    {
        Store::Guard g(store);
        return store.group_info(g, group);
    }

    void limit(std::string_view group, const GroupLimitsUpdate& u)
    {
        Store::Guard g(store);
        ASSERT_TRUE(store.set_group_limits(g, group, u).is_ok());
    }

    test::BufferArena arena;
    Store store;
    uint32_t slot = 0;
};

TEST_F(Groups, CountsChannelsMessagesTheirBytesAndSubscribers)
{
    ASSERT_TRUE(publish("g/a", "12345").is_ok());
    ASSERT_TRUE(publish("g/a", "12345").is_ok());
    ASSERT_TRUE(publish("g/b", "1").is_ok());
    ASSERT_TRUE(publish("other/a", "1").is_ok());
    GroupInfo i = info("g");
    EXPECT_EQ(i.channels, 2u);
    EXPECT_EQ(i.messages, 3u);
    EXPECT_EQ(i.messages_memory, 3 * sizeof(Message) + 11);
    {
        Store::Guard g(store);
        auto s = store.subscribe(g, "g/a", slot, 100, false);
        ASSERT_TRUE(s.is_ok());
        store.add_subscribers(g, s.value(), 3, 100);
        EXPECT_EQ(store.group_info(g, "g").subscribers, 3u);
        store.unsubscribe(g, s.value());
        EXPECT_EQ(store.group_info(g, "g").subscribers, 0u);
    }
    EXPECT_EQ(info("other").channels, 1u);
    EXPECT_EQ(info("never").channels, 0u);
}

// evicted, expired and deleted messages leave the counts
TEST_F(Groups, MessagesLeaveTheCountAsTheyLeaveTheBuffer)
{
    for (int i = 0; i < 5; ++i) {
        ASSERT_TRUE(publish("g/a", "x", 2).is_ok());
    }
    EXPECT_EQ(info("g").messages, 2u);
    EXPECT_EQ(info("g").messages_memory, 2 * (sizeof(Message) + 1));
    Store::Guard g(store);
    ASSERT_TRUE(store.remove(g, "g/a", 100).is_ok());
    GroupInfo i = store.group_info(g, "g");
    EXPECT_EQ(i.channels, 0u);
    EXPECT_EQ(i.messages, 0u);
    EXPECT_EQ(i.messages_memory, 0u);
}

// nchan's reasons, in nchan's order; a publish within the limits still goes
TEST_F(Groups, APublishPastALimitIsRefusedWithTheReason)
{
    GroupLimitsUpdate u;
    u.messages = 2;
    limit("g", u);
    ASSERT_TRUE(publish("g/a", "x").is_ok());
    ASSERT_TRUE(publish("g/a", "x").is_ok());
    Status s = publish("g/a", "x");
    EXPECT_EQ(s.code(), Code::kForbidden);
    EXPECT_EQ(s.message(), "Group limit reached for number of messages.");
    EXPECT_TRUE(publish("g/a", "x", 10, false).is_ok());  // accounting off
    EXPECT_TRUE(publish("h/a", "x").is_ok());             // another group

    GroupLimitsUpdate mem;
    mem.messages = 0;
    mem.messages_memory = 2 * (sizeof(Message) + 10);
    limit("m", mem);
    ASSERT_TRUE(publish("m/a", "0123456789").is_ok());
    ASSERT_TRUE(publish("m/a", "0123456789").is_ok());
    EXPECT_EQ(publish("m/a", "0").message(),
              "Group limit reached for memory used by messages.");

    GroupLimitsUpdate ch;
    ch.channels = 1;
    limit("c", ch);
    ASSERT_TRUE(publish("c/a", "x").is_ok());
    EXPECT_EQ(publish("c/b", "x").message(),
              "Group limit reached for number of channels.");
    // unlike nchan, the channel it has still takes publishes
    EXPECT_TRUE(publish("c/a", "x").is_ok());
}

TEST_F(Groups, ASubscriberPastALimitIsRefused)
{
    GroupLimitsUpdate u;
    u.subscribers = 1;
    u.channels = 1;
    limit("g", u);
    Store::Guard g(store);
    EXPECT_TRUE(store.group_admits_subscriber(g, "g/a").is_ok());
    auto s = store.subscribe(g, "g/a", slot, 100, false);
    ASSERT_TRUE(s.is_ok());
    // a new channel past the channel limit
    EXPECT_EQ(store.group_admits_subscriber(g, "g/b").code(), Code::kForbidden);
    store.add_subscribers(g, s.value(), 1, 100);
    EXPECT_EQ(store.group_admits_subscriber(g, "g/a").code(), Code::kForbidden);
    store.add_subscribers(g, s.value(), -1, 100);
    EXPECT_TRUE(store.group_admits_subscriber(g, "g/a").is_ok());
    store.unsubscribe(g, s.value());
}

// A limit set by one request stays for the next (nchan: set by any request
// whose location has the directive); an unset one is kept; zero lifts it.
TEST_F(Groups, LimitsStayUntilChangedAndAGroupWithNoneIsForgotten)
{
    GroupLimitsUpdate a;
    a.channels = 5;
    limit("g", a);
    GroupLimitsUpdate b;
    b.messages = 7;
    limit("g", b);
    GroupInfo i = info("g");
    EXPECT_EQ(i.limits.channels, 5u);
    EXPECT_EQ(i.limits.messages, 7u);
    GroupLimitsUpdate lift;
    lift.channels = 0;
    lift.messages = 0;
    limit("g", lift);
    Store::Guard g(store);
    EXPECT_EQ(store.stats(g).channels, 0u);
    EXPECT_EQ(store.group_info(g, "g").limits.messages, 0u);
}

TEST_F(Groups, RemovingAGroupDeletesItsChannelsOnly)
{
    ASSERT_TRUE(publish("g/a", "x").is_ok());
    ASSERT_TRUE(publish("g/b", "x").is_ok());
    ASSERT_TRUE(publish("gg/a", "x").is_ok());
    Store::Guard g(store);
    uint64_t ring = 0;
    GroupInfo before = store.remove_group(g, "g", 100, &ring);
    EXPECT_EQ(before.channels, 2u);
    EXPECT_EQ(store.group_info(g, "g").channels, 0u);
    EXPECT_FALSE(store.info(g, "g/a", 100).is_ok());
    EXPECT_TRUE(store.info(g, "gg/a", 100).is_ok());
}

}  // namespace
}  // namespace pulse
