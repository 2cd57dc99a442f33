#include "pulse/message_id.h"

#include <gtest/gtest.h>

namespace pulse {
namespace {

TEST(MsgId, FormatsTimeColonTag)
{
    EXPECT_EQ(to_string(MsgId{1450755280, 0}), "1450755280:0");
    EXPECT_EQ(to_string(MsgId{1450755280, 70000}), "1450755280:70000");
    EXPECT_EQ(to_string(MsgId{}), "0:0");
}

TEST(MsgId, OrdersByTimeThenTag)
{
    EXPECT_LT((MsgId{1, 5}), (MsgId{2, 0}));
    EXPECT_LT((MsgId{2, 0}), (MsgId{2, 1}));
    EXPECT_FALSE((MsgId{2, 1}) < (MsgId{2, 1}));
    EXPECT_LE((MsgId{2, 1}), (MsgId{2, 1}));
    EXPECT_GT((MsgId{3, 0}), (MsgId{2, 9}));
}

TEST(MsgId, ParsesSingle)
{
    auto r = parse_msg_id("1450755280:3");
    ASSERT_TRUE(r.is_ok());
    EXPECT_EQ(r->time, 1450755280);
    ASSERT_EQ(r->tags.size(), 1u);
    EXPECT_EQ(r->tags[0], 3);
    EXPECT_EQ(r->active, 0);
}

TEST(MsgId, ParsesBareZeroAsZeroId)
{
    auto r = parse_msg_id("0");
    ASSERT_TRUE(r.is_ok());
    EXPECT_EQ(r->time, 0);
    EXPECT_EQ(r->tags[0], 0);
}

TEST(MsgId, ParsesMultiplexed)
{
    auto r = parse_msg_id("1586620510:-,[2],0", 3);
    ASSERT_TRUE(r.is_ok());
    EXPECT_EQ(r->tags, (std::vector<int32_t>{-1, 2, 0}));
    EXPECT_EQ(r->active, 1);
    EXPECT_EQ(to_string(r.value()), "1586620510:-,[2],0");
}

TEST(MsgId, PadsShortTagListWithMinusOne)
{
    auto r = parse_msg_id("10:[4]", 3);
    ASSERT_TRUE(r.is_ok());
    EXPECT_EQ(r->tags, (std::vector<int32_t>{4, -1, -1}));
}

TEST(MsgId, RejectsMalformed)
{
    for (const char* bad :
         {"", ":", "abc", "12", "12:", ":3", "x:1", "1:x", "1:2:3", "-1:0",
          "1:[1],[2]", "1:1,2", "1: 1", "1:1,", "99999999999999999999:1",
          "1:99999999999", "1:-2", "1:[", "1:[]"})
    {
        auto r = parse_msg_id(bad, 2);
        EXPECT_FALSE(r.is_ok()) << bad;
        if (!r.is_ok()) {
            EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
            EXPECT_EQ(r.status().message().rfind("Message ID invalid", 0), 0u);
        }
    }
}

TEST(MsgId, RejectsMoreTagsThanChannels)
{
    EXPECT_FALSE(parse_msg_id("1:[1],2", 1).is_ok());
    EXPECT_FALSE(parse_msg_id("1:1", 0).is_ok());
}

TEST(MsgId, ParsesTagsAlone)
{
    auto r = parse_msg_tags(77, "[0],-", 2);
    ASSERT_TRUE(r.is_ok());
    EXPECT_EQ(r->time, 77);
    EXPECT_EQ(r->tags, (std::vector<int32_t>{0, -1}));
    EXPECT_FALSE(parse_msg_tags(77, "", 1).is_ok());
}

}  // namespace
}  // namespace pulse

namespace pulse {
namespace {

TEST(MultiMsgId, AdvanceKeepsTagsOfTheSameSecond)
{
    MultiMsgId id;
    id.tags.assign(3, -1);
    id = advance_multi_id(id, 0, MsgId{100, 0});
    EXPECT_EQ(to_string(id), "100:[0],-,-");
    id = advance_multi_id(id, 1, MsgId{100, 0});
    EXPECT_EQ(to_string(id), "100:0,[0],-");
    id = advance_multi_id(id, 0, MsgId{100, 1});
    EXPECT_EQ(to_string(id), "100:[1],0,-");
    // a new second forgets the others' tags
    id = advance_multi_id(id, 2, MsgId{101, 0});
    EXPECT_EQ(to_string(id), "101:-,-,[0]");
}

TEST(MultiMsgId, AdvanceRoundTripsThroughTheParser)
{
    MultiMsgId id;
    id.tags.assign(2, -1);
    id = advance_multi_id(id, 1, MsgId{7, 3});
    auto back = parse_msg_id(to_string(id), 2);
    ASSERT_TRUE(back.is_ok());
    EXPECT_EQ(back->time, 7);
    EXPECT_EQ(back->tags, (std::vector<int32_t>{-1, 3}));
    EXPECT_EQ(back->active, 1);
}

}  // namespace
}  // namespace pulse

namespace pulse {
namespace {

TEST(NextMsgId, LaterSecondSameSecondAndTheClockGoingBack)
{
    EXPECT_EQ(next_msg_id(MsgId{0, 0}, 100), (MsgId{100, 0}));
    EXPECT_EQ(next_msg_id(MsgId{100, 4}, 100), (MsgId{100, 5}));
    EXPECT_EQ(next_msg_id(MsgId{100, 4}, 50), (MsgId{100, 5}));
    EXPECT_EQ(next_msg_id(MsgId{100, 4}, 101), (MsgId{101, 0}));
}

TEST(NextMsgId, TagOverflowMovesToTheNextSecond)
{
    EXPECT_EQ(next_msg_id(MsgId{100, kMaxMsgTag - 1}, 100),
              (MsgId{100, kMaxMsgTag}));
    EXPECT_EQ(next_msg_id(MsgId{100, kMaxMsgTag}, 100), (MsgId{101, 0}));
    EXPECT_EQ(next_msg_id(MsgId{100, kMaxMsgTag}, 7), (MsgId{101, 0}));
    // a clock past the end of the id space does not leave it
    EXPECT_EQ(next_msg_id(MsgId{100, 0}, kMaxMsgTime + 1), (MsgId{100, 1}));
    EXPECT_EQ(next_msg_id(MsgId{kMaxMsgTime, 0}, kMaxMsgTime),
              (MsgId{kMaxMsgTime, 1}));
    EXPECT_EQ(next_msg_id(MsgId{kMaxMsgTime - 1, kMaxMsgTag}, 0),
              (MsgId{kMaxMsgTime, 0}));
    EXPECT_FALSE(next_msg_id(MsgId{kMaxMsgTime, kMaxMsgTag}, kMaxMsgTime));
}

TEST(NextMsgId, IdsStayStrictlyIncreasingAndParseable)
{
    MsgId last{1764000000, kMaxMsgTag - 2};
    for (int i = 0; i < 5; ++i) {
        auto next = next_msg_id(last, 1764000000);
        ASSERT_TRUE(next);
        EXPECT_LT(last, *next);
        auto back = parse_msg_id(to_string(*next));
        ASSERT_TRUE(back.is_ok()) << to_string(*next);
        EXPECT_EQ((MsgId{back->time, back->tags[0]}), *next);
        last = *next;
    }
}

TEST(ParsePublishId, Boundaries)
{
    EXPECT_EQ(parse_publish_id("1:0").value(), (MsgId{1, 0}));
    EXPECT_EQ(parse_publish_id("253402300799:2147483647").value(),
              (MsgId{kMaxMsgTime, kMaxMsgTag}));
    for (const char* bad :
         {"0:0", "0", "0:5", "253402300800:0", "1:2147483648", "1:-1", "1:-",
          "-1:0", "1:[0],1", "1:0,1", "1", ":1", "1:", "1:1x", " 1:1",
          "99999999999999999999:0", "1:99999999999999999999"})
    {
        auto r = parse_publish_id(bad);
        EXPECT_FALSE(r.is_ok()) << bad;
        if (!r.is_ok()) {
            EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
            EXPECT_EQ(r.status().message().rfind("Message ID invalid", 0), 0u);
        }
    }
}

TEST(ParseMsgId, TimeIsBounded)
{
    EXPECT_TRUE(parse_msg_id("253402300799:0").is_ok());
    EXPECT_FALSE(parse_msg_id("253402300800:0").is_ok());
    EXPECT_FALSE(parse_msg_id("9223372036854775807:0").is_ok());
    EXPECT_FALSE(parse_msg_id("1:2147483648").is_ok());
    EXPECT_TRUE(parse_msg_id("1:2147483647").is_ok());
    // -1 is the multiplexed "nothing in that second"
    EXPECT_EQ(parse_msg_id("1:-1")->tags[0], -1);
    EXPECT_FALSE(parse_msg_id("1:-2").is_ok());
}

}  // namespace
}  // namespace pulse
