#include "pulse/hooks.h"

#include <gtest/gtest.h>

namespace pulse::hooks {
namespace {

TEST(AuthorizeDecision, TwoHundredsAllow)
{
    for (int s : {200, 201, 204, 299}) {
        EXPECT_TRUE(authorize_decision({s, false}, false).allow) << s;
        EXPECT_TRUE(authorize_decision({s, false}, true).allow) << s;
    }
}

TEST(AuthorizeDecision, SubscriberGetsTheUpstreamsRefusal)
{
    for (int s : {301, 304, 401, 403, 404, 418, 502, 504}) {
        AuthorizeDecision d = authorize_decision({s, false}, false);
        EXPECT_FALSE(d.allow) << s;
        EXPECT_EQ(d.status, s);
        EXPECT_TRUE(d.forward);
    }
}

TEST(AuthorizeDecision, PublisherGetsAPlain403)
{
    for (int s : {302, 401, 404, 500, 502}) {
        AuthorizeDecision d = authorize_decision({s, false}, true);
        EXPECT_FALSE(d.allow) << s;
        EXPECT_EQ(d.status, 403);
        EXPECT_FALSE(d.forward);
    }
}

TEST(AuthorizeDecision, NoAnswerIs500)
{
    for (bool pub : {false, true}) {
        for (Answer a : {Answer{0, false}, Answer{200, true}, Answer{0, true}})
        {
            AuthorizeDecision d = authorize_decision(a, pub);
            EXPECT_FALSE(d.allow);
            EXPECT_EQ(d.status, 500);
            EXPECT_FALSE(d.forward);
        }
    }
}

TEST(PublisherUpstream, StatusesAsNchan)
{
    EXPECT_EQ(publisher_upstream_action({200, false}),
              UpstreamAction::kPublishAnswer);
    EXPECT_EQ(publisher_upstream_action({201, false}),
              UpstreamAction::kPublishAnswer);
    EXPECT_EQ(publisher_upstream_action({202, false}),
              UpstreamAction::kPublishAnswer);
    EXPECT_EQ(publisher_upstream_action({304, false}),
              UpstreamAction::kPublishOriginal);
    EXPECT_EQ(publisher_upstream_action({204, false}), UpstreamAction::kDrop);
    for (int s : {203, 206, 301, 400, 403, 404, 500, 502}) {
        EXPECT_EQ(publisher_upstream_action({s, false}),
                  UpstreamAction::kForbid)
            << s;
    }
    EXPECT_EQ(publisher_upstream_action({0, false}), UpstreamAction::kFail);
    EXPECT_EQ(publisher_upstream_action({200, true}), UpstreamAction::kFail);
}

TEST(PublisherUpstream, ABodyTooBigToKeepIsNotPublished)
{
    // only an answer whose body would be published needs the body
    for (int s : {200, 201, 202}) {
        EXPECT_EQ(publisher_upstream_action({s, false, true}),
                  UpstreamAction::kTooBig)
            << s;
    }
    EXPECT_EQ(publisher_upstream_action({304, false, true}),
              UpstreamAction::kPublishOriginal);
    EXPECT_EQ(publisher_upstream_action({204, false, true}),
              UpstreamAction::kDrop);
    EXPECT_EQ(publisher_upstream_action({403, false, true}),
              UpstreamAction::kForbid);
}

TEST(Authorize, DecidedByStatusWhateverTheBodysSize)
{
    for (bool pub : {false, true}) {
        EXPECT_TRUE(authorize_decision({200, false, true}, pub).allow);
        AuthorizeDecision d = authorize_decision({403, false, true}, pub);
        EXPECT_FALSE(d.allow);
        EXPECT_EQ(d.status, 403);
        EXPECT_EQ(d.forward, !pub);
    }
}

TEST(Headers, ForwardedOnesExcludeTheResponsesOwn)
{
    EXPECT_TRUE(forwards_header("X-Reason"));
    EXPECT_TRUE(forwards_header("WWW-Authenticate"));
    EXPECT_TRUE(forwards_header("Location"));
    EXPECT_FALSE(forwards_header("content-type"));
    EXPECT_FALSE(forwards_header("Content-Length"));
    EXPECT_FALSE(forwards_header("SERVER"));
    EXPECT_FALSE(forwards_header("Connection"));
    EXPECT_FALSE(forwards_header("Date"));
    EXPECT_FALSE(forwards_header("Transfer-Encoding"));
    EXPECT_FALSE(forwards_header("Keep-Alive"));
}

TEST(Headers, PulseHeadersAreRecognisedInAnyCase)
{
    EXPECT_TRUE(is_pulse_header("X-Pulse-Sub"));
    EXPECT_TRUE(is_pulse_header("x-pulse-claims"));
    EXPECT_TRUE(is_pulse_header("X-PULSE-"));
    EXPECT_FALSE(is_pulse_header("X-Pulse"));
    EXPECT_FALSE(is_pulse_header("X-Pulsar-Sub"));
    EXPECT_FALSE(is_pulse_header("Authorization"));
}

TEST(Headers, ClaimHeaders)
{
    jwt::Claims c;
    EXPECT_TRUE(claim_headers(c).empty());
    c.sub = "alice";
    c.tenant = "acme";
    c.payload = R"({"sub":"alice","tenant":"acme"})";
    auto h = claim_headers(c);
    ASSERT_EQ(h.size(), 3U);
    EXPECT_EQ(h[0].first, "X-Pulse-Sub");
    EXPECT_EQ(h[0].second, "alice");
    EXPECT_EQ(h[1].first, "X-Pulse-Tenant");
    EXPECT_EQ(h[1].second, "acme");
    EXPECT_EQ(h[2].first, "X-Pulse-Claims");
    EXPECT_EQ(h[2].second, c.payload);
}

TEST(Headers, ASubWithALineBreakIsNotAHeader)
{
    jwt::Claims c;
    c.sub = "alice\r\nX-Admin: 1";
    c.payload = R"({"sub":"alice\r\nX-Admin: 1"})";
    auto h = claim_headers(c);
    ASSERT_EQ(h.size(), 1U);
    EXPECT_EQ(h[0].first, "X-Pulse-Claims");
    EXPECT_EQ(h[0].second.find('\n'), std::string_view::npos);
}

}  // namespace
}  // namespace pulse::hooks
