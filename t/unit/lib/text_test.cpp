#include "pulse/text.h"

#include <gtest/gtest.h>

namespace pulse::text {
namespace {

// ngx_http_arg's rules: the first NAME= at the start or after '&'.
TEST(QueryArg, FindsArgumentsAsNginxDoes)
{
    EXPECT_EQ(query_arg("token=abc", "token"), "abc");
    EXPECT_EQ(query_arg("c=1&token=abc&x=2", "token"), "abc");
    EXPECT_EQ(query_arg("c=1&TOKEN=abc", "token"), "abc");  // any case
    EXPECT_EQ(query_arg("token=", "token"), "");
    EXPECT_EQ(query_arg("token=a&token=b", "token"), "a");  // the first
    EXPECT_EQ(query_arg("xtoken=1&token=2", "token"), "2");
    EXPECT_EQ(query_arg("a=token=5", "token"), std::nullopt);
    EXPECT_EQ(query_arg("token", "token"), std::nullopt);  // no '='
    EXPECT_EQ(query_arg("tokens=1", "token"), std::nullopt);
    EXPECT_EQ(query_arg("", "token"), std::nullopt);
    EXPECT_EQ(query_arg("&&token=%41&", "token"), "%41");  // not decoded
    EXPECT_EQ(query_arg("token=1", ""), std::nullopt);
    EXPECT_EQ(query_arg("last_event_id=1764%3A0", "last_event_id"), "1764%3A0");
}

}  // namespace
}  // namespace pulse::text
