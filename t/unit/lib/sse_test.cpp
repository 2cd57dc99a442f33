#include "pulse/sse.h"

#include <cctype>
#include <ctime>
#include <vector>

#include <gtest/gtest.h>

#include "pulse/channel_info.h"
#include "pulse/http_date.h"

namespace pulse {
namespace {

TEST(Sse, FramesOneLine)
{
    std::string out;
    sse::append_message(out, "5:0", "", "hello");
    EXPECT_EQ(out, "id: 5:0\ndata: hello\n\n");
}

TEST(Sse, EventComesFirstAndLinesSplit)
{
    std::string out;
    sse::append_message(out, "5:1", "tick", "a\nb\n");
    EXPECT_EQ(out, "event: tick\nid: 5:1\ndata: a\ndata: b\ndata: \n\n");
}

TEST(Sse, EveryLineEndOfTheBodyStartsADataLine)
{
    // an EventSource parser ends lines at CR, LF and CRLF: a CR left in a
    // data line would let the body forge an id: or event: field
    std::string out;
    sse::append_message(out, "5:2", "", "a\rid: 99\r\nb\n\rc\r");
    EXPECT_EQ(out,
              "id: 5:2\ndata: a\ndata: id: 99\ndata: b\ndata: \ndata: c\n"
              "data: \n\n");
    out.clear();
    sse::append_message(out, "5:3", "", "\r\n\r\n");
    EXPECT_EQ(out, "id: 5:3\ndata: \ndata: \ndata: \n\n");
}

TEST(Sse, EmptyBodyIsOneEmptyDataLine)
{
    std::string out;
    sse::append_message(out, "1:0", "", "");
    EXPECT_EQ(out, "id: 1:0\ndata: \n\n");
}

TEST(Sse, Pings)
{
    std::string out;
    sse::append_ping(out, "", "", "");
    EXPECT_EQ(out, ":\n\n");
    out.clear();
    sse::append_ping(out, "keep", "ping", "x");
    EXPECT_EQ(out, ":keep\nevent: ping\ndata: x\n\n");
    out.clear();
    sse::append_ping(out, "", "ping", "");
    EXPECT_EQ(out, "event: ping\n\n");
}

TEST(Sse, StatusComment)
{
    std::string out;
    sse::append_status(out, 410, "410 Gone");
    EXPECT_EQ(out, ":410: 410 Gone\n\n");
}

TEST(ChannelInfo, AcceptPicksFormat)
{
    EXPECT_EQ(info_format_from_accept(""), InfoFormat::kPlain);
    EXPECT_EQ(info_format_from_accept("*/*"), InfoFormat::kPlain);
    EXPECT_EQ(info_format_from_accept("application/json"), InfoFormat::kJson);
    EXPECT_EQ(info_format_from_accept("text/x-json"), InfoFormat::kJson);
    EXPECT_EQ(info_format_from_accept("image/png, text/xml"), InfoFormat::kXml);
    EXPECT_EQ(info_format_from_accept("application/x-yaml;q=1"),
              InfoFormat::kYaml);
    EXPECT_EQ(info_content_type(InfoFormat::kJson), "text/json");
}

TEST(ChannelInfo, Templates)
{
    ChannelInfo i;
    i.messages = 5;
    i.requested = 18;
    i.subscribers = 0;
    i.last_id = MsgId{1450755280, 0};
    EXPECT_EQ(format_channel_info(i, InfoFormat::kPlain),
              "queued messages: 5\r\nlast requested: 18 sec. ago\r\n"
              "active subscribers: 0\r\nlast message id: 1450755280:0");
    EXPECT_EQ(format_channel_info(i, InfoFormat::kJson),
              "{\"messages\": 5, \"requested\": 18, \"subscribers\": 0, "
              "\"last_message_id\": \"1450755280:0\" }");
    EXPECT_EQ(format_channel_info(i, InfoFormat::kXml),
              "<?xml version=\"1.0\" encoding=\"UTF-8\" ?>\r\n<channel>\r\n"
              "  <messages>5</messages>\r\n  <requested>18</requested>\r\n"
              "  <subscribers>0</subscribers>\r\n"
              "  <last_message_id>1450755280:0</last_message_id>\r\n"
              "</channel>");
    EXPECT_EQ(format_channel_info(i, InfoFormat::kYaml),
              "---\r\nmessages: 5\r\nrequested: 18\r\nsubscribers: 0\r\n"
              "last_message_id: \"1450755280:0\"\r\n\r\n");
}

TEST(HttpDate, RoundTrips)
{
    EXPECT_EQ(format_http_date(784111777), "Sun, 06 Nov 1994 08:49:37 GMT");
    EXPECT_EQ(format_http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
    EXPECT_EQ(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), 784111777);
    for (int64_t t :
         {int64_t{951782400}, int64_t{1700000000}, int64_t{4102444799}}) {
        EXPECT_EQ(parse_http_date(format_http_date(t)), t);
    }
}

// Against libc's strftime over four centuries of seconds, leap days and
// the last second of 9999 included.
TEST(HttpDate, FormatsAsStrftime)
{
    std::vector<int64_t> times = {0,          -1,          68256000,
                                  951782400,  951868799,   4107542399,
                                  1764633600, 253402300799};
    uint64_t x = 88172645463325252ULL;  // xorshift: reproducible spread
    for (int i = 0; i < 20000; ++i) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        times.push_back(static_cast<int64_t>(x % 253402300800ULL));
    }
    for (int64_t t : times) {
        time_t tt = static_cast<time_t>(t);
        struct tm tm {};
        ASSERT_NE(gmtime_r(&tt, &tm), nullptr);
        char want[64];
        size_t n =
            strftime(want, sizeof(want), "%a, %d %b %Y %H:%M:%S GMT", &tm);
        ASSERT_EQ(format_http_date(t), std::string(want, n)) << t;
        ASSERT_EQ(parse_http_date(want), t) << want;
    }
    // outside 0000-9999: clamped, never more than four digits
    EXPECT_EQ(format_http_date(253402300800), "Fri, 31 Dec 9999 23:59:59 GMT");
    EXPECT_EQ(format_http_date(int64_t{1} << 50),
              "Fri, 31 Dec 9999 23:59:59 GMT");
    EXPECT_EQ(format_http_date(-(int64_t{1} << 50)),
              "Sat, 01 Jan 0000 00:00:00 GMT");
}

TEST(HttpDate, CacheFollowsTheTime)
{
    HttpDateCache c;
    EXPECT_EQ(c.format(0), "Thu, 01 Jan 1970 00:00:00 GMT");
    EXPECT_EQ(c.format(0), "Thu, 01 Jan 1970 00:00:00 GMT");
    EXPECT_EQ(c.format(784111777), "Sun, 06 Nov 1994 08:49:37 GMT");
    EXPECT_EQ(c.format(784111778), "Sun, 06 Nov 1994 08:49:38 GMT");
    EXPECT_EQ(c.format(0), "Thu, 01 Jan 1970 00:00:00 GMT");
}

TEST(HttpDate, RejectsMalformed)
{
    for (const char* bad :
         {"", "yesterday", "Sun, 06 Nov 1994 08:49:37 UTC",
          "Sun, 06 Foo 1994 08:49:37 GMT", "Sun, 6 Nov 1994 08:49:37 GMT",
          "Sun, 06 Nov 1994 25:49:37 GMT", "Sun, xx Nov 1994 08:49:37 GMT",
          "Sun, 06 Nov 19 4 08:49:37 GMT", "Sun, 06 Nov 1994 08:49:3/ GMT",
          "Sun, 06 Nov 1994 08:60:37 GMT", "Sun, 00 Nov 1994 08:49:37 GMT",
          "Sun, 06 Nov 1994 08:49:37 GMT "})
    {
        EXPECT_FALSE(parse_http_date(bad).has_value()) << bad;
    }
}

}  // namespace
}  // namespace pulse

namespace pulse {
namespace {

TEST(Stream, ChunkFramingSkipsEmptyFrames)
{
    std::string f = "hello";
    stream::wrap_chunk(f);
    EXPECT_EQ(f, "5\r\nhello\r\n");
    std::string big(300, 'x');
    stream::wrap_chunk(big);
    EXPECT_EQ(big.substr(0, 5), "12c\r\n");
    std::string empty;
    stream::wrap_chunk(empty);
    EXPECT_EQ(empty, "");
}

TEST(Stream, MultipartParts)
{
    std::string out;
    stream::append_multipart_part(out, "B", "Sun, 06 Nov 1994 08:49:37 GMT",
                                  "3", "text/plain", "hi");
    EXPECT_EQ(out,
              "\r\nLast-Modified: Sun, 06 Nov 1994 08:49:37 GMT\r\nEtag: 3\r\n"
              "Content-Type: text/plain\r\n\r\nhi\r\n--B");
    out.clear();
    stream::append_multipart_part(out, "B", "", "5:1", "", "");
    EXPECT_EQ(out, "\r\nEtag: 5:1\r\n\r\n\r\n--B");
}

TEST(Stream, MultipartPartWithoutItsBoundary)
{
    std::string out;
    stream::append_multipart_part(out, "", "", "5:1", "text/plain", "x");
    EXPECT_EQ(out, "\r\nEtag: 5:1\r\nContent-Type: text/plain\r\n\r\nx");
}

TEST(Stream, RandomBoundariesDiffer)
{
    std::string a = stream::random_boundary(32);
    std::string b = stream::random_boundary(32);
    EXPECT_EQ(a.size(), 32u);
    EXPECT_NE(a, b);
    for (char c : a) {
        EXPECT_TRUE(std::isalnum(static_cast<unsigned char>(c)) || c == '.'
                    || c == '/');
    }
}

TEST(Stream, BoundaryAlphabet)
{
    uint32_t r[4] = {0, 1, 63, 64};
    EXPECT_EQ(stream::make_boundary(r, 4), "./z.");
}

}  // namespace
}  // namespace pulse
