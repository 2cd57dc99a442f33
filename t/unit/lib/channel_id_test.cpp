#include "pulse/channel_id.h"

#include <gtest/gtest.h>

namespace pulse {
namespace {

using Ids = std::vector<std::string_view>;

TEST(ChannelId, SingleValue)
{
    auto r = split_channel_ids({"foo"}, "", 1024);
    ASSERT_TRUE(r.is_ok());
    EXPECT_EQ(r.value(), (Ids{"foo"}));
}

TEST(ChannelId, SeveralValuesMultiplex)
{
    auto r = split_channel_ids({"a", "b", "c"}, "", 1024);
    ASSERT_TRUE(r.is_ok());
    EXPECT_EQ(r.value(), (Ids{"a", "b", "c"}));
}

TEST(ChannelId, SplitsOnDelimiterAndDropsEmptyParts)
{
    auto r = split_channel_ids({"a,,b,", ",c"}, ",", 1024);
    ASSERT_TRUE(r.is_ok());
    EXPECT_EQ(r.value(), (Ids{"a", "b", "c"}));
    auto multi = split_channel_ids({"x::y::z"}, "::", 1024);
    ASSERT_TRUE(multi.is_ok());
    EXPECT_EQ(multi.value(), (Ids{"x", "y", "z"}));
}

TEST(ChannelId, EmptyIsNotFound)
{
    auto r = split_channel_ids({""}, "", 1024);
    ASSERT_FALSE(r.is_ok());
    EXPECT_EQ(r.status().code(), Code::kNotFound);
    EXPECT_EQ(r.status().message(), "No channel id provided.");
    EXPECT_FALSE(split_channel_ids({",,"}, ",", 1024).is_ok());
    EXPECT_FALSE(split_channel_ids({}, "", 1024).is_ok());
}

TEST(ChannelId, TooLongIsForbiddenBeforeSplitting)
{
    std::string id(11, 'x');
    EXPECT_TRUE(split_channel_ids({std::string_view(id).substr(0, 10)}, "", 10)
                    .is_ok());
    auto r = split_channel_ids({id}, "", 10);
    ASSERT_FALSE(r.is_ok());
    EXPECT_EQ(r.status().code(), Code::kForbidden);
}

TEST(ChannelId, At255ChannelsAndNotOneMore)
{
    std::string v;
    for (int i = 0; i < 255; ++i) {
        v += "c" + std::to_string(i) + ",";
    }
    EXPECT_TRUE(split_channel_ids({v}, ",", 1 << 20).is_ok());
    v += "one-more";
    auto r = split_channel_ids({v}, ",", 1 << 20);
    ASSERT_FALSE(r.is_ok());
    EXPECT_EQ(r.status().code(), Code::kForbidden);
}

TEST(ChannelId, Groups)
{
    EXPECT_TRUE(validate_group("").is_ok());
    EXPECT_TRUE(validate_group("tenant1").is_ok());
    EXPECT_EQ(validate_group("a/b").code(), Code::kForbidden);
    EXPECT_EQ(validate_group("m").code(), Code::kForbidden);
    EXPECT_EQ(channel_key("", "foo"), "/foo");
    EXPECT_EQ(channel_key("g", "foo"), "g/foo");
}

TEST(ChannelCharset, RangesLiteralsAndChecks)
{
    auto cs = ChannelCharset::parse("a-zA-Z0-9._-");
    ASSERT_TRUE(cs.is_ok());
    EXPECT_TRUE(cs->check("metrics.cpu_0-a").is_ok());
    const std::vector<std::string_view> bads = {
        "a/b", "a b", "a%2F", "caf\xc3\xa9", std::string_view("a\0b", 3),
        "a,b", "x:y"};
    for (std::string_view bad : bads) {
        Status s = cs->check(bad);
        EXPECT_EQ(s.code(), Code::kInvalidArgument) << bad;
    }
    EXPECT_EQ(cs->check("a/b").message(),
              "Channel id holds a byte outside pulse_channel_id_charset.");
    auto dash = ChannelCharset::parse("-a");
    ASSERT_TRUE(dash.is_ok());
    EXPECT_TRUE(dash->check("-a-").is_ok());
    EXPECT_FALSE(dash->check("b").is_ok());
    EXPECT_FALSE(ChannelCharset::parse("z-a").is_ok());
    EXPECT_FALSE(ChannelCharset::parse("").is_ok());
    ChannelCharset any;
    EXPECT_TRUE(any.check("any/thing at all").is_ok());
}

}  // namespace
}  // namespace pulse
