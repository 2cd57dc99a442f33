#include "rules.h"

#include <gtest/gtest.h>

namespace pulse::publisher {
namespace {

using Caps = std::vector<std::string>;

TEST(Rules, GlobCaptures)
{
    EXPECT_EQ(glob_captures("tenant:*:widget:*", "tenant:acme:widget:bw"),
              (Caps{"acme", "bw"}));
    EXPECT_EQ(glob_captures("exact", "exact"), Caps{});
    EXPECT_EQ(glob_captures("a?c", "abc"), Caps{});
    EXPECT_EQ(glob_captures("*", ""), (Caps{""}));
    EXPECT_EQ(glob_captures("x*y*", "x1y2y3"), (Caps{"1", "2y3"}));
    EXPECT_FALSE(glob_captures("tenant:*", "other:acme"));
    EXPECT_FALSE(glob_captures("a?c", "ac"));
    EXPECT_FALSE(glob_captures("abc", "abcd"));
}

TEST(Rules, Expand)
{
    Caps caps{"acme", "bw"};
    EXPECT_EQ(expand("{1}/{2}", "tenant:acme:widget:bw", caps), "acme/bw");
    EXPECT_EQ(expand("{channel}", "faults", {}), "faults");
    EXPECT_EQ(expand("pre-{1}-post", "c", caps), "pre-acme-post");
    EXPECT_FALSE(expand("{3}", "c", caps));
    EXPECT_FALSE(expand("{nope}", "c", caps));
    EXPECT_FALSE(expand("{1", "c", caps));
}

TEST(Rules, ExpandStreamFields)
{
    Fields f{{"tenant", "acme"}, {"widget", "bw"}, {"data", "{}"}};
    EXPECT_EQ(expand("{tenant}.{widget}", "events", {}, f), "acme.bw");
    EXPECT_EQ(expand("{channel}", "events", {}, f), "events");
    EXPECT_FALSE(expand("{missing}", "events", {}, f));
    ASSERT_NE(field(f, "data"), nullptr);
    EXPECT_EQ(*field(f, "data"), "{}");
    EXPECT_EQ(field(f, "nope"), nullptr);
}

TEST(Rules, StreamIdsMapToOrderedMessageIds)
{
    EXPECT_EQ(stream_id_to_msg_id("1700000000123-5"), "1700000000:123000005");
    EXPECT_EQ(stream_id_to_msg_id("1700000000999-999999"),
              "1700000000:999999999");
    EXPECT_EQ(stream_id_to_msg_id("1700000001000-0"), "1700000001:0");
    for (const char* bad : {"", "-", "1-", "-1", "x-1", "1-x", "1-1000000",
                            "12345678901234567890-1", "17"})
    {
        EXPECT_FALSE(stream_id_to_msg_id(bad)) << bad;
    }
}

TEST(Rules, UrlPathEscape)
{
    EXPECT_EQ(url_path_escape("acme/bw"), "acme%2Fbw");
    EXPECT_EQ(url_path_escape("a b~_.-"), "a%20b~_.-");
}

TEST(Rules, GlobIsLinearOnHostileChannelNames)
{
    // the recursive matcher took exponential time on this; the channel name
    // is publisher input
    std::string text(20000, 'a');
    EXPECT_FALSE(glob_captures("*a*a*a*a*a*a*a*b", text));
    text.back() = 'b';
    auto caps = glob_captures("*a*a*a*a*a*a*a*b", text);
    ASSERT_TRUE(caps);
    EXPECT_EQ(caps->size(), 8u);
    EXPECT_EQ((*caps)[0], "");
    EXPECT_EQ((*caps)[6], "");
    EXPECT_EQ((*caps)[7], std::string(20000 - 8, 'a'));
}

TEST(Rules, GlobCapturesAreShortestFirst)
{
    EXPECT_EQ(glob_captures("*a*", "aXa"), (Caps{"", "Xa"}));
    EXPECT_EQ(glob_captures("*.*", "a.b.c"), (Caps{"a", "b.c"}));
    EXPECT_EQ(glob_captures("**", "ab"), (Caps{"", "ab"}));
    EXPECT_EQ(glob_captures("a*", "a"), (Caps{""}));
    EXPECT_EQ(glob_captures("*?", "abc"), (Caps{"ab"}));
    EXPECT_FALSE(glob_captures("*?", ""));
    EXPECT_EQ(glob_captures("x*yz", "xyyz"), (Caps{"y"}));
}

}  // namespace
}  // namespace pulse::publisher
