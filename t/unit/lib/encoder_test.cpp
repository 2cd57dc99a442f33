#include "pulse/encoder.h"

#include <string>

#include <gtest/gtest.h>

#include "pulse/message.h"
#include "pulse/websocket.h"

namespace pulse {
namespace {

MessageData msg(std::string_view body, std::string_view ctype = "",
                std::string_view event = "", std::string_view deflated = "")
{
    return MessageData{MsgId{1764000000, 3}, ctype, event, body, deflated};
}

ShownId own()
{
    return ShownId{"1764000000:3", 1764000000};
}

std::string enc(const MessageData& m, const Framing& f, ShownId id = own())
{
    return encode(m, f, id, ws::DeflateOptions{});
}

TEST(Encoder, EventSourceWithTheMessagesOrTheLocationsEvent)
{
    Framing f;
    EXPECT_EQ(enc(msg("a\nb", "", "tick"), f),
              "event: tick\nid: 1764000000:3\ndata: a\ndata: b\n\n");
    f.event = "fixed";
    EXPECT_EQ(enc(msg("x", "", "tick"), f),
              "event: fixed\nid: 1764000000:3\ndata: x\n\n");
}

TEST(Encoder, ChunkFramingIsPartOfTheFrame)
{
    Framing f;
    f.http_chunked = true;
    EXPECT_EQ(enc(msg("x"), f), "1a\r\nid: 1764000000:3\ndata: x\n\n\r\n");
    // an empty chunk would end the response: nothing to send
    Framing raw;
    raw.wire = Wire::kRaw;
    raw.http_chunked = true;
    EXPECT_EQ(enc(msg(""), raw), "");
    EXPECT_EQ(enc(msg("hey"), raw), "3\r\nhey\r\n");
}

TEST(Encoder, RawStreamsAddTheSeparator)
{
    Framing f;
    f.wire = Wire::kRaw;
    f.separator = "\n";
    EXPECT_EQ(enc(msg("a"), f), "a\n");
}

TEST(Encoder, MultipartPartsWithoutTheirBoundary)
{
    Framing f;
    f.wire = Wire::kMultipart;
    EXPECT_EQ(enc(msg("x", "text/plain"), f),
              "\r\nLast-Modified: Mon, 24 Nov 2025 16:00:00 GMT\r\nEtag: 3"
              "\r\nContent-Type: text/plain\r\n\r\nx");
    f.compound_etag = true;
    EXPECT_EQ(enc(msg("x"), f), "\r\nEtag: 1764000000:3\r\n\r\nx");
    // a multiplexed id: the tags in Etag, its time in Last-Modified
    f.compound_etag = false;
    EXPECT_EQ(enc(msg("x"), f, ShownId{"1764000001:-,[3]", 1764000001}),
              "\r\nLast-Modified: Mon, 24 Nov 2025 16:00:01 GMT\r\n"
              "Etag: -,[3]\r\n\r\nx");
}

std::string frame(ws::Opcode op, std::string_view payload, bool rsv1 = false)
{
    std::string f;
    ws::append_frame(f, op, payload, rsv1);
    return f;
}

TEST(Encoder, WebSocketPlainMetaAndJson)
{
    Framing f;
    f.wire = Wire::kWsPlain;
    EXPECT_EQ(enc(msg("hi"), f), frame(ws::Opcode::kText, "hi"));
    EXPECT_EQ(enc(msg("\x01", "application/octet-stream"), f),
              frame(ws::Opcode::kBinary, "\x01"));
    f.wire = Wire::kWsMeta;
    EXPECT_EQ(enc(msg("hi", "text/plain"), f),
              frame(ws::Opcode::kText,
                    "id: 1764000000:3\ncontent-type: text/plain\n\nhi"));
    f.wire = Wire::kWsJson;
    f.channel = "bw";
    EXPECT_EQ(enc(msg("hi"), f),
              frame(ws::Opcode::kText,
                    R"({"type":"message","channel":"bw","id":"1764000000:3",)"
                    R"("data":"hi"})"));
}

// A server frame's payload (no mask; lengths up to 64 KiB).
std::string payload_of(const std::string& f)
{
    size_t len = static_cast<uint8_t>(f[1]) & 0x7f;
    size_t at = 2;
    if (len == 126) {
        len = (size_t{static_cast<uint8_t>(f[2])} << 8)
              | static_cast<uint8_t>(f[3]);
        at = 4;
    }
    return f.substr(at, len);
}

TEST(Encoder, DeflateUsesTheCopyMadeAtPublishTime)
{
    auto z = ws::deflate_message("hello hello hello", ws::DeflateOptions{});
    ASSERT_TRUE(z.is_ok());
    MessageData m = msg("hello hello hello", "", "", z.value());
    Framing f;
    f.wire = Wire::kWsPlain;
    f.deflate = true;
    EXPECT_TRUE(sends_compressed(m, f));
    EXPECT_EQ(enc(m, f), frame(ws::Opcode::kText, z.value(), true));
    // meta: the header in stored blocks, then the same compressed body
    f.wire = Wire::kWsMeta;
    std::string meta = enc(m, f);
    ws::Inflater in;
    std::string payload = payload_of(meta);
    auto back = in.inflate(payload, 1000, false);
    ASSERT_TRUE(back.is_ok());
    EXPECT_EQ(back.value(), "id: 1764000000:3\n\nhello hello hello");
    // a message not compressed at publish time goes out plain
    EXPECT_FALSE(sends_compressed(msg("x"), f));
    EXPECT_EQ(enc(msg("x"), f),
              frame(ws::Opcode::kText, "id: 1764000000:3\n\nx"));
}

TEST(Encoder, MessagesCacheOneFramePerFraming)
{
    MessageView v;
    v.id = MsgId{5, 1};
    v.body = "x";
    Msg m(v);
    Framing sse;
    Framing ws;
    ws.wire = Wire::kWsPlain;
    Frame* a = m.encoded(sse, ws::DeflateOptions{});
    EXPECT_EQ(a, m.encoded(sse, ws::DeflateOptions{}));
    EXPECT_NE(a, m.encoded(ws, ws::DeflateOptions{}));
    EXPECT_EQ(a->view(), "id: 5:1\ndata: x\n\n");
    // a compressed framing of an uncompressed message is the plain one
    Framing z = ws;
    z.deflate = true;
    EXPECT_EQ(m.encoded(z, ws::DeflateOptions{}),
              m.encoded(ws, ws::DeflateOptions{}));
    Framing other = sse;
    other.event = "e";
    EXPECT_NE(a, m.encoded(other, ws::DeflateOptions{}));
}

}  // namespace
}  // namespace pulse
