#include "pulse/transport.h"

#include <gtest/gtest.h>

namespace pulse {
namespace {

constexpr uint32_t kDefault = role::kSubWebSocket | role::kSubEventSource
                              | role::kSubLongPoll | role::kSubChunked
                              | role::kSubMultipart;

TEST(Transport, NchansOrder)
{
    EXPECT_EQ(detect_transport("text/event-stream", std::nullopt, kDefault),
              Transport::kEventSource);
    EXPECT_EQ(detect_transport("Text/Event-Stream; q=1", "chunked", kDefault),
              Transport::kEventSource);
    EXPECT_EQ(detect_transport("multipart/mixed", "chunked", kDefault),
              Transport::kChunked);
    EXPECT_EQ(detect_transport("multipart/mixed", std::nullopt, kDefault),
              Transport::kMultipart);
    EXPECT_EQ(detect_transport("*/*", std::nullopt, kDefault),
              Transport::kLongPoll);
    uint32_t both = kDefault | role::kSubIntervalPoll;
    EXPECT_EQ(detect_transport("", std::nullopt, both),
              Transport::kIntervalPoll);
    EXPECT_EQ(detect_transport("", std::nullopt, role::kSubRawStream),
              Transport::kRawStream);
    // a transport the location lacks is skipped
    EXPECT_EQ(
        detect_transport("text/event-stream", std::nullopt, role::kSubLongPoll),
        Transport::kLongPoll);
    EXPECT_EQ(detect_transport("", std::nullopt, role::kSubEventSource),
              Transport::kNone);
}

TEST(Transport, TeQValues)
{
    EXPECT_TRUE(te_accepts_chunked("chunked"));
    EXPECT_TRUE(te_accepts_chunked("Chunked"));
    EXPECT_TRUE(te_accepts_chunked("gzip, chunked"));
    EXPECT_TRUE(te_accepts_chunked("chunked;q=0.5"));  // was long-poll
    EXPECT_TRUE(te_accepts_chunked("chunked ; q=1"));
    EXPECT_TRUE(te_accepts_chunked("chunked;q=1.000"));
    EXPECT_TRUE(te_accepts_chunked("chunked;q=0.001"));
    EXPECT_TRUE(te_accepts_chunked("trailers, chunked;Q=0.9"));
    EXPECT_FALSE(te_accepts_chunked("chunked;q=0"));
    EXPECT_FALSE(te_accepts_chunked("chunked;q=0.000"));
    EXPECT_FALSE(te_accepts_chunked("chunked;q=abc"));
    EXPECT_FALSE(te_accepts_chunked("chunked;q=1.5"));
    EXPECT_FALSE(te_accepts_chunked("chunked;q=0.0001"));
    EXPECT_FALSE(te_accepts_chunked("trailers"));
    EXPECT_FALSE(te_accepts_chunked("chunkedx"));
    EXPECT_FALSE(te_accepts_chunked(""));
    // another coding's q does not matter
    EXPECT_TRUE(te_accepts_chunked("gzip;q=0, chunked"));
}

TEST(Transport, WebSocketUpgrade)
{
    EXPECT_TRUE(is_websocket_upgrade("websocket", "Upgrade"));
    EXPECT_TRUE(is_websocket_upgrade("WebSocket", "keep-alive, upgrade"));
    EXPECT_FALSE(is_websocket_upgrade("h2c", "Upgrade"));
    EXPECT_FALSE(is_websocket_upgrade("websocket", "keep-alive"));
    EXPECT_FALSE(is_websocket_upgrade(std::nullopt, "Upgrade"));
    EXPECT_FALSE(is_websocket_upgrade("websocket", std::nullopt));
}

std::optional<MultiMsgId> resume(const ResumeRequest& r, size_t n = 1)
{
    auto m = resume_id(r, n);
    EXPECT_TRUE(m.is_ok()) << m.status().message();
    return m.is_ok() ? m.value() : std::nullopt;
}

TEST(Resume, IfModifiedSinceWithTags)
{
    ResumeRequest r;
    r.if_modified_since = "Mon, 24 Nov 2025 16:00:00 GMT";
    r.if_none_match = "3";
    r.last_id_values = {"9:9"};  // the headers win
    auto m = resume(r);
    ASSERT_TRUE(m);
    EXPECT_EQ(m->time, 1764000000);
    EXPECT_EQ(m->tags, (std::vector<int32_t>{3}));
    // without If-None-Match the id is incomplete
    r.if_none_match.reset();
    EXPECT_FALSE(resume_id(r, 1).is_ok());
    // a date at or before the epoch means "no id"
    r.if_modified_since = "Thu, 01 Jan 1970 00:00:00 GMT";
    EXPECT_FALSE(resume(r));
    // an unparseable date too
    r.if_modified_since = "yesterday";
    EXPECT_FALSE(resume(r));
}

TEST(Resume, CompoundEtagIgnoresTheDate)
{
    ResumeRequest r;
    r.compound_etag = true;
    r.if_modified_since = "Mon, 24 Nov 2025 16:00:00 GMT";
    r.if_none_match = "1764000005:2";
    auto m = resume(r);
    ASSERT_TRUE(m);
    EXPECT_EQ(m->time, 1764000005);
    // no If-None-Match: the last-id values decide
    r.if_none_match.reset();
    r.last_id_values = {"7:1"};
    EXPECT_EQ(resume(r)->time, 7);
}

TEST(Resume, LastIdValuesFirstNonEmpty)
{
    ResumeRequest r;
    r.last_id_values = {"", "5:2"};
    EXPECT_EQ(resume(r)->tags[0], 2);
    r.last_id_values = {};
    EXPECT_FALSE(resume(r));
    r.last_id_values = {"garbage"};
    EXPECT_EQ(resume_id(r, 1).status().message(), "Message ID invalid");
    r.last_id_values = {std::string(kMaxLastIdLength + 1, '1')};
    EXPECT_FALSE(resume_id(r, 1).is_ok());
    r.last_id_values = {"253402300800:0"};  // past the id space
    EXPECT_FALSE(resume_id(r, 1).is_ok());
}

TEST(Resume, MultiplexedIds)
{
    ResumeRequest r;
    r.last_id_values = {"5:[1],-"};
    auto m = resume(r, 3);
    ASSERT_TRUE(m);
    EXPECT_EQ(m->tags, (std::vector<int32_t>{1, -1, -1}));
    EXPECT_EQ(m->active, 0);
    r.last_id_values = {"5:1,2"};  // several tags and none bracketed
    EXPECT_FALSE(resume_id(r, 3).is_ok());
    r.last_id_values = {"5:1,[2],3,4"};  // more tags than channels
    EXPECT_FALSE(resume_id(r, 3).is_ok());
}

TEST(Transport, Names)
{
    EXPECT_EQ(transport_name(Transport::kEventSource), "eventsource");
    EXPECT_EQ(transport_name(Transport::kChunked), "http-chunked");
    EXPECT_EQ(transport_name(Transport::kLongPoll), "longpoll");
}

}  // namespace
}  // namespace pulse
