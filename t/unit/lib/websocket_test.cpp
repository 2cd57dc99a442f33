#include "pulse/websocket.h"

#include <gtest/gtest.h>

#include "pulse/deflate.h"

namespace pulse::ws {
namespace {

// A masked client frame.
std::string client_frame(uint8_t first, std::string_view payload,
                         bool masked = true)
{
    std::string f;
    f.push_back(static_cast<char>(first));
    uint8_t m = masked ? 0x80 : 0;
    if (payload.size() < 126) {
        f.push_back(static_cast<char>(m | payload.size()));
    } else if (payload.size() <= 0xffff) {
        f.push_back(static_cast<char>(m | 126));
        f.push_back(static_cast<char>(payload.size() >> 8));
        f.push_back(static_cast<char>(payload.size() & 0xff));
    } else {
        f.push_back(static_cast<char>(m | 127));
        for (int i = 7; i >= 0; --i) {
            f.push_back(static_cast<char>((payload.size() >> (8 * i)) & 0xff));
        }
    }
    const uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
    if (masked) {
        f.append(reinterpret_cast<const char*>(key), 4);
    }
    for (size_t i = 0; i < payload.size(); ++i) {
        f.push_back(static_cast<char>(static_cast<uint8_t>(payload[i])
                                      ^ (masked ? key[i % 4] : 0)));
    }
    return f;
}

struct Fed {
    Status status;
    std::vector<Event> events;
    uint16_t code = 0;
};

Fed feed(std::string_view bytes, Parser::Options o = {}, size_t step = 0)
{
    Parser p(o);
    Fed r;
    if (step == 0) {
        r.status = p.feed(bytes, r.events);
    } else {
        for (size_t i = 0; i < bytes.size() && r.status.is_ok(); i += step) {
            r.status = p.feed(bytes.substr(i, step), r.events);
        }
    }
    r.code = p.close_code();
    return r;
}

TEST(WebSocketHandshake, AcceptKeyOfRfc6455Example)
{
    EXPECT_EQ(accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
              "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

TEST(WebSocketHandshake, ClientKeyShape)
{
    EXPECT_TRUE(valid_client_key("dGhlIHNhbXBsZSBub25jZQ=="));
    EXPECT_FALSE(valid_client_key(""));
    EXPECT_FALSE(valid_client_key("dGhlIHNhbXBsZSBub25jZQ="));
    EXPECT_FALSE(valid_client_key("dGhlIHNhbXBsZSBub25jZ!=="));
}

TEST(WebSocketHandshake, DeflateOfferWithoutParameters)
{
    auto a = negotiate_deflate("permessage-deflate", 10);
    ASSERT_TRUE(a);
    EXPECT_EQ(format_deflate(*a),
              "permessage-deflate; server_no_context_takeover; "
              "server_max_window_bits=10");
}

TEST(WebSocketHandshake, DeflateOfferWithClientWindow)
{
    auto a = negotiate_deflate(
        "permessage-deflate; client_max_window_bits; "
        "client_no_context_takeover",
        10);
    ASSERT_TRUE(a);
    EXPECT_EQ(format_deflate(*a),
              "permessage-deflate; server_no_context_takeover; "
              "client_no_context_takeover; server_max_window_bits=10; "
              "client_max_window_bits=15");
}

TEST(WebSocketHandshake, SmallerServerWindowIsHonoured)
{
    auto a =
        negotiate_deflate("permessage-deflate; server_max_window_bits=9", 12);
    ASSERT_TRUE(a);
    EXPECT_EQ(a->server_max_window_bits, 9);
    a = negotiate_deflate("permessage-deflate; server_max_window_bits=\"15\"",
                          12);
    ASSERT_TRUE(a);
    EXPECT_EQ(a->server_max_window_bits, 12);
}

TEST(WebSocketHandshake, BadOffersAreDeclinedAndTheNextTaken)
{
    EXPECT_FALSE(negotiate_deflate("permessage-deflate; foo", 10));
    EXPECT_FALSE(
        negotiate_deflate("permessage-deflate; server_max_window_bits", 10));
    EXPECT_FALSE(
        negotiate_deflate("permessage-deflate; server_max_window_bits=16", 10));
    EXPECT_FALSE(
        negotiate_deflate("permessage-deflate; client_no_context_takeover; "
                          "client_no_context_takeover",
                          10));
    EXPECT_FALSE(negotiate_deflate("x-webkit-deflate-frame", 10));
    auto a = negotiate_deflate(
        "permessage-deflate; server_max_window_bits=7, permessage-deflate", 10);
    ASSERT_TRUE(a);
    EXPECT_EQ(a->server_max_window_bits, 10);
}

TEST(WebSocketHandshake, Protocols)
{
    auto p = split_protocols("pulse.v1 , ws+meta.nchan,,x");
    ASSERT_EQ(p.size(), 3u);
    EXPECT_EQ(p[0], "pulse.v1");
    EXPECT_EQ(p[1], "ws+meta.nchan");
    EXPECT_EQ(p[2], "x");
}

TEST(WebSocketFraming, HeaderLengthForms)
{
    uint8_t h[kMaxHeader];
    EXPECT_EQ(write_header(h, Opcode::kText, true, false, 125), 2u);
    EXPECT_EQ(h[0], 0x81);
    EXPECT_EQ(h[1], 125);
    EXPECT_EQ(write_header(h, Opcode::kBinary, true, true, 126), 4u);
    EXPECT_EQ(h[0], 0xC2);
    EXPECT_EQ(h[1], 126);
    EXPECT_EQ(h[3], 126);
    EXPECT_EQ(write_header(h, Opcode::kText, true, false, 65536), 10u);
    EXPECT_EQ(h[1], 127);
    EXPECT_EQ(h[7], 1);
}

TEST(WebSocketFraming, ClosePayloadCutsReasonOnACharacter)
{
    std::string reason(122, 'a');
    reason += "\xC3\xA9";  // é straddles byte 123
    std::string p = close_payload(1000, reason);
    EXPECT_EQ(p.size(), 2u + 122u);
    EXPECT_EQ(static_cast<uint8_t>(p[0]), 0x03);
    EXPECT_EQ(static_cast<uint8_t>(p[1]), 0xE8);
}

TEST(WebSocketUtf8, ValidAndInvalid)
{
    EXPECT_TRUE(valid_utf8("hello"));
    EXPECT_TRUE(valid_utf8("\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5"));
    EXPECT_TRUE(valid_utf8("\xF4\x8F\xBF\xBF"));   // U+10FFFF
    EXPECT_FALSE(valid_utf8("\xF4\x90\x80\x80"));  // past U+10FFFF
    EXPECT_FALSE(valid_utf8("\xED\xA0\x80"));      // surrogate
    EXPECT_FALSE(valid_utf8("\xC0\xAF"));          // overlong
    EXPECT_FALSE(valid_utf8("\xE0\x80\xAF"));      // overlong
    EXPECT_FALSE(valid_utf8("\xCE"));              // truncated
    EXPECT_FALSE(valid_utf8("\xFF"));
}

TEST(WebSocketUtf8, SplitAnywhere)
{
    std::string s = "a\xF0\x9F\x98\x80z\xE2\x82\xAC";
    for (size_t cut = 0; cut <= s.size(); ++cut) {
        Utf8Validator v;
        EXPECT_TRUE(v.feed(s.substr(0, cut)));
        EXPECT_TRUE(v.feed(s.substr(cut)));
        EXPECT_TRUE(v.complete()) << cut;
    }
}

TEST(WebSocketParser, TextMessageAnyChunking)
{
    std::string bytes =
        client_frame(0x81, "Hello, world") + client_frame(0x89, "p");
    for (size_t step : {0, 1, 2, 3, 5, 7}) {
        Fed r = feed(bytes, {}, step);
        ASSERT_TRUE(r.status.is_ok()) << r.status.message();
        ASSERT_EQ(r.events.size(), 2u);
        EXPECT_EQ(r.events[0].kind, Event::Kind::kMessage);
        EXPECT_EQ(r.events[0].payload, "Hello, world");
        EXPECT_FALSE(r.events[0].binary);
        EXPECT_EQ(r.events[1].kind, Event::Kind::kPing);
        EXPECT_EQ(r.events[1].payload, "p");
    }
}

TEST(WebSocketParser, LengthForms)
{
    for (size_t n : {0, 125, 126, 65535, 65536, 200000}) {
        std::string payload(n, 'x');
        Fed r = feed(client_frame(0x82, payload));
        ASSERT_TRUE(r.status.is_ok());
        ASSERT_EQ(r.events.size(), 1u);
        EXPECT_TRUE(r.events[0].binary);
        EXPECT_EQ(r.events[0].payload.size(), n);
    }
}

TEST(WebSocketParser, FragmentsWithControlFramesBetween)
{
    std::string bytes = client_frame(0x01, "fra") + client_frame(0x89, "ping")
                        + client_frame(0x00, "gme") + client_frame(0x80, "nts");
    Fed r = feed(bytes, {}, 4);
    ASSERT_TRUE(r.status.is_ok());
    ASSERT_EQ(r.events.size(), 2u);
    EXPECT_EQ(r.events[0].kind, Event::Kind::kPing);
    EXPECT_EQ(r.events[1].payload, "fragments");
}

TEST(WebSocketParser, ProtocolErrorsClose1002)
{
    struct Case {
        const char* what;
        std::string bytes;
    };
    std::vector<Case> cases = {
        {"unmasked", client_frame(0x81, "x", false)},
        {"rsv2", client_frame(0xA1, "x")},
        {"rsv3", client_frame(0x91, "x")},
        {"rsv1 without deflate", client_frame(0xC1, "x")},
        {"opcode 3", client_frame(0x83, "x")},
        {"opcode 0xB", client_frame(0x8B, "x")},
        {"fragmented ping", client_frame(0x09, "x")},
        {"big ping", client_frame(0x89, std::string(126, 'x'))},
        {"lone continuation", client_frame(0x80, "x")},
        {"text inside fragments",
         client_frame(0x01, "a") + client_frame(0x81, "b")},
        {"close with 1 byte", client_frame(0x88, "x")},
        {"close code 1005", client_frame(0x88, std::string("\x03\xED", 2))},
        {"close code 999", client_frame(0x88, std::string("\x03\xE7", 2))},
        {"close code 5000", client_frame(0x88, std::string("\x13\x88", 2))},
    };
    for (const Case& c : cases) {
        Fed r = feed(c.bytes);
        EXPECT_FALSE(r.status.is_ok()) << c.what;
        EXPECT_EQ(r.code, close_code::kProtocolError) << c.what;
    }
}

TEST(WebSocketParser, FailsOnTheFirstBadHeaderByte)
{
    // The verdict comes from the first two bytes, before any payload.
    Fed r = feed(std::string("\x81\x05", 2));
    EXPECT_FALSE(r.status.is_ok());
    EXPECT_EQ(r.code, close_code::kProtocolError);
}

TEST(WebSocketParser, InvalidUtf8Closes1007EvenAcrossFragments)
{
    Fed r = feed(client_frame(0x81, "\xCE\xBA\xFF"));
    EXPECT_EQ(r.code, close_code::kInvalidData);
    EXPECT_EQ(r.status.message(), "Invalid text frame (not UTF8).");
    // valid split character: fine
    r = feed(client_frame(0x01, "\xCE") + client_frame(0x80, "\xBA"));
    EXPECT_TRUE(r.status.is_ok());
    ASSERT_EQ(r.events.size(), 1u);
    // truncated at the end of the message
    r = feed(client_frame(0x01, "a") + client_frame(0x80, "\xCE"));
    EXPECT_EQ(r.code, close_code::kInvalidData);
    // bad close reason
    r = feed(client_frame(0x88, std::string("\x03\xE8\xFF", 3)));
    EXPECT_EQ(r.code, close_code::kInvalidData);
    // binary is not checked
    r = feed(client_frame(0x82, "\xFF"));
    EXPECT_TRUE(r.status.is_ok());
}

TEST(WebSocketParser, MaxMessageSizeCloses1009)
{
    Parser::Options o;
    o.max_message = 100;
    Fed r = feed(client_frame(0x81, std::string(100, 'a')), o);
    EXPECT_TRUE(r.status.is_ok());
    r = feed(client_frame(0x81, std::string(101, 'a')), o);
    EXPECT_EQ(r.code, close_code::kTooBig);
    r = feed(client_frame(0x01, std::string(60, 'a'))
                 + client_frame(0x80, std::string(60, 'a')),
             o);
    EXPECT_EQ(r.code, close_code::kTooBig);
}

TEST(WebSocketParser, CloseFrames)
{
    Fed r = feed(client_frame(0x88, ""));
    ASSERT_EQ(r.events.size(), 1u);
    EXPECT_EQ(r.events[0].kind, Event::Kind::kClose);
    EXPECT_EQ(r.events[0].code, 0);
    r = feed(client_frame(0x88, close_payload(4000, "bye")));
    ASSERT_EQ(r.events.size(), 1u);
    EXPECT_EQ(r.events[0].code, 4000);
    EXPECT_EQ(r.events[0].payload, "bye");
}

TEST(WebSocketParser, HighBitLengthIsAnError)
{
    std::string f = "\x82\xFF";
    f.append(8, '\xFF');
    f.append(4, '\x00');
    Fed r = feed(f);
    EXPECT_EQ(r.code, close_code::kProtocolError);
}

TEST(WebSocketParser, StaysFailed)
{
    Parser p({});
    std::vector<Event> ev;
    EXPECT_FALSE(p.feed(client_frame(0x83, ""), ev).is_ok());
    EXPECT_FALSE(p.feed(client_frame(0x81, "ok"), ev).is_ok());
    EXPECT_TRUE(ev.empty());
}

TEST(WebSocketDeflate, RoundTripAndTailStripped)
{
    std::string text;
    for (int i = 0; i < 200; ++i) {
        text += "{\"rx\": " + std::to_string(i) + ", \"tx\": 1234}";
    }
    auto z = deflate_message(text, DeflateOptions{});
    ASSERT_TRUE(z.is_ok());
    EXPECT_LT(z->size(), text.size() / 4);
    ASSERT_GE(z->size(), 4u);
    EXPECT_NE(z->substr(z->size() - 4), std::string("\0\0\xFF\xFF", 4));
    Inflater inf;
    for (int round = 0; round < 3; ++round) {
        auto back = inf.inflate(z.value(), 1 << 20, false);
        ASSERT_TRUE(back.is_ok()) << back.status().message();
        EXPECT_EQ(back.value(), text);
    }
}

TEST(WebSocketDeflate, EmptyMessage)
{
    auto z = deflate_message("", DeflateOptions{});
    ASSERT_TRUE(z.is_ok());
    Inflater inf;
    auto back = inf.inflate(z.value(), 100, false);
    ASSERT_TRUE(back.is_ok());
    EXPECT_EQ(back.value(), "");
}

// The ws+meta.nchan frame of a message published with
// pulse_deflate_message_for_websocket: its header in stored blocks, then the
// body compressed once at publish time.
TEST(WebSocketDeflate, StoredPrefixThenMessageInflateAsOne)
{
    std::string body;
    for (int i = 0; i < 100; ++i) {
        body += "{\"session\": " + std::to_string(i) + ", \"state\": \"up\"}";
    }
    std::string head = "id: 1:0\ncontent-type: x\n\n";
    // nchan's bytes: one stored block, then an empty one
    EXPECT_EQ(deflate_stored(head), std::string("\0\x19\0\xe6\xff", 5) + head
                                        + std::string("\0\0\0\xff\xff", 5));
    for (int bits : {9, 10, 15}) {
        DeflateOptions o;
        o.window_bits = bits;
        auto z = deflate_message(body, o);
        ASSERT_TRUE(z.is_ok());
        Inflater inf;
        for (int round = 0; round < 2; ++round) {
            auto back =
                inf.inflate(deflate_stored(head) + z.value(), 1 << 20, false);
            ASSERT_TRUE(back.is_ok()) << back.status().message();
            EXPECT_EQ(back.value(), head + body);
        }
        auto empty =
            inf.inflate(deflate_stored(head) + deflate_message("", o).value(),
                        1 << 20, false);
        ASSERT_TRUE(empty.is_ok());
        EXPECT_EQ(empty.value(), head);
    }
}

TEST(WebSocketDeflate, StoredBlocksSplitAt64KiB)
{
    Inflater inf;
    for (size_t n : {size_t{0}, size_t{65535}, size_t{65536}, size_t{200000}}) {
        std::string in(n, 'h');
        std::string z = deflate_stored(in);
        EXPECT_EQ(z.size(),
                  n + 5 * (n / 65535 + (n % 65535 != 0 || n == 0)) + 5);
        auto back =
            inf.inflate(z + deflate_message("!", {}).value(), 1 << 20, false);
        ASSERT_TRUE(back.is_ok()) << n;
        EXPECT_EQ(back.value(), in + "!");
    }
}

TEST(WebSocketDeflate, GarbageAndBombs)
{
    Inflater inf;
    auto bad = inf.inflate("\xFF\xFF\xFF\xFF garbage", 1 << 20, false);
    EXPECT_FALSE(bad.is_ok());
    EXPECT_EQ(bad.status().code(), Code::kInvalidArgument);
    auto z = deflate_message(std::string(1 << 20, 'a'), DeflateOptions{});
    ASSERT_TRUE(z.is_ok());
    auto big = inf.inflate(z.value(), 1000, false);
    EXPECT_EQ(big.status().code(), Code::kTooLarge);
    // the inflater is usable after a failure
    auto ok = inf.inflate(deflate_message("fine", DeflateOptions{}).value(),
                          100, false);
    ASSERT_TRUE(ok.is_ok());
    EXPECT_EQ(ok.value(), "fine");
}

TEST(WebSocketParser, CompressedMessagesAreNotUtf8CheckedBeforeInflate)
{
    Parser::Options o;
    o.deflate = true;
    auto z = deflate_message("héllo", DeflateOptions{});
    Fed r = feed(client_frame(0xC1, z.value()), o);
    ASSERT_TRUE(r.status.is_ok());
    ASSERT_EQ(r.events.size(), 1u);
    EXPECT_TRUE(r.events[0].compressed);
    Inflater inf;
    EXPECT_EQ(inf.inflate(r.events[0].payload, 100, false).value(), "héllo");
}

}  // namespace
}  // namespace pulse::ws
