#include "pulse/publish_request.h"

#include <string>

#include <gtest/gtest.h>

#include "pulse/json_depth.h"
#include "pulse/ws_protocol.h"

namespace pulse {
namespace {

TEST(ValidateField, EveryControlCharacterButTabIsRefused)
{
    for (int c = 0; c < 0x20; ++c) {
        std::string v = "a";
        v.push_back(static_cast<char>(c));
        v += "b";
        Status s = validate_field("event", v, 64);
        if (c == '\t') {
            EXPECT_TRUE(s.is_ok());
        } else {
            ASSERT_FALSE(s.is_ok()) << c;
            EXPECT_EQ(s.code(), Code::kInvalidArgument);
            EXPECT_NE(s.message().find("control character"), std::string::npos);
            EXPECT_NE(s.message().find("event"), std::string::npos);
        }
    }
    EXPECT_FALSE(validate_field("event", "a\x7f", 64).is_ok());
    // UTF-8 and every other printable byte are fine
    EXPECT_TRUE(validate_field("event", "caf\xc3\xa9 \xff~!", 64).is_ok());
    EXPECT_TRUE(validate_field("event", "", 64).is_ok());
}

TEST(ValidateField, TheErrorNamesTheByte)
{
    Status s = validate_field("X-EventSource-Event header", "x\ny", 64);
    EXPECT_EQ(s.message(),
              "Invalid X-EventSource-Event header: it contains a control "
              "character (0x0a).");
}

TEST(ValidateField, LengthIsBounded)
{
    EXPECT_TRUE(validate_field("e", std::string(64, 'x'), 64).is_ok());
    Status s = validate_field("e", std::string(65, 'x'), 64);
    EXPECT_FALSE(s.is_ok());
    EXPECT_EQ(s.message(), "Invalid e: longer than 64 bytes.");
}

TEST(ValidatePublish, EventAndContentTypeWithTheirLimits)
{
    EXPECT_TRUE(validate(PublishFields{"tick", "text/plain", ""}).is_ok());
    EXPECT_TRUE(
        validate(PublishFields{std::string(kMaxEventLength, 'e'), "", ""})
            .is_ok());
    EXPECT_FALSE(
        validate(PublishFields{std::string(kMaxEventLength + 1, 'e'), "", ""})
            .is_ok());
    EXPECT_TRUE(
        validate(PublishFields{"", std::string(kMaxContentTypeLength, 'c'), ""})
            .is_ok());
    Status s = validate(
        PublishFields{"", std::string(kMaxContentTypeLength + 1, 'c'), ""});
    EXPECT_NE(s.message().find("content type"), std::string::npos);
    PublishFields named{"a\r\nb", "", "", "X-EventSource-Event header"};
    EXPECT_NE(validate(named).message().find("X-EventSource-Event"),
              std::string::npos);
    EXPECT_FALSE(
        validate(PublishFields{"", "text/plain\r\nSet-Cookie: a=1", ""})
            .is_ok());
}

TEST(ValidatePublish, ConflationKey)
{
    EXPECT_TRUE(validate(PublishFields{"", "", "eth0/rx"}).is_ok());
    EXPECT_TRUE(validate(PublishFields{"", "", std::string(kMaxKeyLength, 'k')})
                    .is_ok());
    std::string long_key(kMaxKeyLength + 1, 'k');
    PublishFields f{"", "", long_key};
    f.key_name = "Pulse-Key header";
    EXPECT_EQ(validate(f).message(),
              "Invalid Pulse-Key header: longer than 256 bytes.");
    EXPECT_FALSE(validate(PublishFields{"", "", "a\nb"}).is_ok());
}

std::string deep(size_t n, char open = '[', char close = ']')
{
    return std::string(n, open) + std::string(n, close);
}

TEST(JsonDepth, BoundIsInclusive)
{
    EXPECT_TRUE(check_json_depth(deep(kMaxJsonDepth)).is_ok());
    Status s = check_json_depth(deep(kMaxJsonDepth + 1));
    EXPECT_FALSE(s.is_ok());
    EXPECT_EQ(s.message(), "JSON nested deeper than 128 levels.");
    EXPECT_TRUE(check_json_depth(deep(3, '{', '}'), 3).is_ok());
    EXPECT_FALSE(check_json_depth("{\"a\":[{}]}", 2).is_ok());
    EXPECT_TRUE(check_json_depth("", 1).is_ok());
    EXPECT_TRUE(check_json_depth("[][][][]", 1).is_ok());
}

TEST(JsonDepth, BracketsInStringsAreText)
{
    std::string s = "[\"" + deep(1000) + "\"]";
    EXPECT_TRUE(check_json_depth(s, 1).is_ok());
    // an escaped quote does not end the string, an escaped backslash does
    EXPECT_TRUE(check_json_depth(R"(["\"[[[[", 1])", 1).is_ok());
    EXPECT_FALSE(check_json_depth(R"(["\\",[[]]])", 2).is_ok());
}

TEST(JsonDepth, UnbalancedTextNeverUnderflows)
{
    EXPECT_TRUE(check_json_depth("]]]]}}}[", 1).is_ok());
    EXPECT_FALSE(check_json_depth("]]][[", 1).is_ok());
}

TEST(PulseV1, DeeplyNestedRequestsAreBadRequests)
{
    for (size_t depth : {size_t{129}, size_t{10000}, size_t{100000}}) {
        std::string text = R"({"type":"publish","channel":"c","id":5,"data":)"
                           + deep(depth) + "}";
        ws::RequestError err;
        EXPECT_FALSE(ws::parse_request(text, &err));
        EXPECT_EQ(err.code, "bad_request");
        EXPECT_NE(err.message.find("nested"), std::string::npos);
    }
    // the deepest allowed value is published as its JSON text
    ws::RequestError err;
    auto r = ws::parse_request(
        R"({"type":"publish","channel":"c","data":)" + deep(127) + "}", &err);
    ASSERT_TRUE(r) << err.message;
    EXPECT_EQ(r->data, deep(127));
}

TEST(PulseV1, HeaderLikeFieldsAreValidated)
{
    for (const char* field : {"event", "content_type", "channel"}) {
        for (const char* bad : {"x\ny", "x\ry", "x\r\ny", "x\x01y"}) {
            std::string text = R"({"type":"publish","id":"q","data":"d")";
            if (std::string(field) != "channel") {
                text += R"(,"channel":"c")";
            }
            text +=
                ",\"" + std::string(field) + "\":" + ws::json_string(bad) + "}";
            ws::RequestError err;
            EXPECT_FALSE(ws::parse_request(text, &err)) << text;
            EXPECT_EQ(err.code, "bad_request") << text;
            EXPECT_EQ(err.id, "\"q\"");
        }
    }
    ws::RequestError err;
    auto ok =
        ws::parse_request(R"({"type":"publish","channel":"c","event":"tick",)"
                          R"("content_type":"text/plain","data":"d"})",
                          &err);
    ASSERT_TRUE(ok);
    EXPECT_EQ(ok->event, "tick");
}

}  // namespace
}  // namespace pulse
