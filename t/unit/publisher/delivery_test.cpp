#include "delivery.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace pulse::publisher {
namespace {

// nginx as a list of answers: each request takes the next status (201 once
// they run out); what was sent is kept.
class FakeNginx final : public PublishSink {
public:
    std::vector<int> post_many(const std::vector<PublishRequest>& reqs) override
    {
        std::vector<int> out;
        for (const PublishRequest& r : reqs) {
            sent.push_back(r);
            int status = 201;
            if (!answers.empty()) {
                status = answers.front();
                answers.erase(answers.begin());
            }
            out.push_back(status);
        }
        return out;
    }
    const std::string& error() const override { return error_; }

    std::vector<int> answers;
    std::vector<PublishRequest> sent;
    std::string error_ = "connection refused";
};

struct World {
    World()
    {
        Source ps;
        ps.name = "ps";
        ps.kind = SourceKind::kPubSub;
        ps.channels = {"faults"};
        Source pat;
        pat.name = "ps";
        pat.kind = SourceKind::kPubSub;
        pat.patterns = {"bw:*"};
        pat.event = "{1}";
        pat.key = "if-{1}";
        Source st;
        st.name = "st";
        st.kind = SourceKind::kStream;
        st.keys = {"ev"};
        st.target = "{tenant}.{widget}";
        st.event_field = "kind";
        st.content_type_field = "ctype";
        st.key = "{widget}";
        config.sources = {ps, st, pat};
        config.queue_size = 3;
    }
    StreamEntry entry(std::string id, std::string data,
                      std::string kind = "sample")
    {
        return StreamEntry{&config.sources[1],
                           "ev",
                           std::move(id),
                           {{"tenant", "acme"},
                            {"widget", "bw"},
                            {"kind", std::move(kind)},
                            {"data", std::move(data)}}};
    }
    Config config;
    FakeNginx nginx;
    Metrics metrics;
    StateLog log;
    Delivery d{config, nginx, metrics, log};
};

TEST(Delivery, PubSubRoutesByChannelAndPattern)
{
    World w;
    w.d.pubsub({"", "faults", "link down"});
    w.d.pubsub({"bw:*", "bw:eth0", "42"});
    w.d.pubsub({"", "unknown", "x"});  // no source takes it
    EXPECT_EQ(w.d.queued(), 2u);
    w.d.publish_queued(100);
    ASSERT_EQ(w.nginx.sent.size(), 2u);
    EXPECT_EQ(w.nginx.sent[0].channel, "faults");
    EXPECT_EQ(w.nginx.sent[1].channel, "bw:eth0");
    EXPECT_EQ(w.nginx.sent[1].event, "eth0");  // the pattern's capture
    EXPECT_EQ(w.nginx.sent[0].key, "");        // no key template
    EXPECT_EQ(w.nginx.sent[1].key, "if-eth0");
    EXPECT_EQ(w.metrics.published, 2u);
    EXPECT_EQ(w.metrics.sources["ps"].in, 2u);
}

TEST(Delivery, AFullPubSubQueueDropsTheOldest)
{
    World w;
    for (int i = 0; i < 5; ++i) {
        w.d.pubsub({"", "faults", "e" + std::to_string(i)});
    }
    EXPECT_EQ(w.d.queued(), 3u);
    EXPECT_EQ(w.metrics.dropped, 2u);
    w.d.publish_queued(100);
    EXPECT_EQ(w.nginx.sent.front().body, "e2");
}

TEST(Delivery, PubSubIsTriedOnce)
{
    World w;
    w.nginx.answers = {-1, 400};
    w.d.pubsub({"", "faults", "a"});
    w.d.pubsub({"", "faults", "b"});
    w.d.publish_queued(100);
    EXPECT_EQ(w.d.queued(), 0u);
    EXPECT_EQ(w.metrics.dropped, 2u);
    EXPECT_TRUE(w.metrics.nginx_up);  // the last answer came from nginx
}

TEST(Delivery, PubSubChannelNamesCannotInjectHeaders)
{
    World w;
    w.d.pubsub({"bw:*", "bw:x\r\nPulse-Message-Id: 1:1", "v"});
    EXPECT_EQ(w.d.queued(), 0u);
    EXPECT_EQ(w.metrics.dropped, 1u);
    ASSERT_FALSE(w.log.lines().empty());
    EXPECT_NE(w.log.lines().back().find("\\x0d\\x0a"), std::string::npos);
}

TEST(Delivery, StreamBatchesArePipelinedWithTheirIds)
{
    World w;
    auto n = w.d.streams(
        {w.entry("1764000000123-0", "a"), w.entry("1764000000123-1", "b")});
    EXPECT_EQ(n, 2u);
    ASSERT_EQ(w.nginx.sent.size(), 2u);
    EXPECT_EQ(w.nginx.sent[0].channel, "acme.bw");
    EXPECT_EQ(w.nginx.sent[0].msg_id, "1764000000:123000000");
    EXPECT_EQ(w.nginx.sent[1].msg_id, "1764000000:123000001");
    EXPECT_EQ(w.nginx.sent[0].event, "sample");
    EXPECT_EQ(w.nginx.sent[0].key, "bw");  // the key template's field
    EXPECT_EQ(w.metrics.published, 2u);
}

TEST(Delivery, ATransientFailureStopsTheBatchWithoutWaiting)
{
    World w;
    w.nginx.answers = {201, 400, 503};
    std::vector<StreamEntry> batch = {w.entry("1764000000000-0", "ok"),
                                      w.entry("1764000000000-1", "poison"),
                                      w.entry("1764000000000-2", "busy"),
                                      w.entry("1764000000000-3", "after")};
    // entry 2 could not be taken now: 0 and 1 are done (published,
    // dropped for good), 2 and 3 are the caller's to hold
    EXPECT_EQ(w.d.streams(batch), 2u);
    EXPECT_EQ(w.metrics.published, 1u);
    EXPECT_EQ(w.metrics.dropped, 1u);
    EXPECT_TRUE(w.metrics.nginx_up);  // a 503 is nginx answering
    EXPECT_EQ(w.metrics.sources["st"].in, 2u);
    // the retry of the rest: both go now, in order
    std::vector<StreamEntry> rest(batch.begin() + 2, batch.end());
    EXPECT_EQ(w.d.streams(rest), 2u);
    EXPECT_EQ(w.nginx.sent.back().body, "after");
    EXPECT_EQ(w.metrics.published, 3u);
    EXPECT_EQ(w.metrics.sources["st"].in, 4u);  // each counted once
}

TEST(Delivery, NginxUnreachableHoldsEverything)
{
    World w;
    w.nginx.answers = {-1, -1};
    EXPECT_EQ(w.d.streams({w.entry("1764000000000-0", "a"),
                           w.entry("1764000000000-1", "b")}),
              0u);
    EXPECT_FALSE(w.metrics.nginx_up);
    EXPECT_EQ(w.metrics.dropped, 0u);
    ASSERT_FALSE(w.log.lines().empty());
    EXPECT_NE(w.log.lines().back().find("holding stream reads"),
              std::string::npos);
}

TEST(Delivery, EntriesThatCanNeverBePublishedAreDropped)
{
    World w;
    StreamEntry no_body = w.entry("1764000000000-0", "x");
    no_body.fields.pop_back();  // no data field
    StreamEntry inject = w.entry("1764000000000-1", "x", "a\r\nX-Evil: 1");
    StreamEntry far = w.entry("253402300800000-0", "x");
    StreamEntry seq = w.entry("1764000000000-1000000", "x");
    EXPECT_EQ(w.d.streams({no_body, inject, far, seq,
                           w.entry("1764000000001-0", "ok")}),
              5u);
    ASSERT_EQ(w.nginx.sent.size(), 1u);
    EXPECT_EQ(w.nginx.sent[0].body, "ok");
    EXPECT_EQ(w.metrics.dropped, 4u);
}

TEST(Delivery, UnroutableEntriesAfterAFailureWaitForTheRetry)
{
    World w;
    w.nginx.answers = {-1};
    StreamEntry bad = w.entry("1764000000000-1", "x");
    bad.fields.pop_back();
    EXPECT_EQ(w.d.streams({w.entry("1764000000000-0", "a"), bad}), 0u);
    EXPECT_EQ(w.metrics.dropped, 0u);  // counted when its turn comes
    EXPECT_EQ(w.d.streams({w.entry("1764000000000-0", "a"), bad}), 2u);
    EXPECT_EQ(w.metrics.dropped, 1u);
}

TEST(Delivery, PoisonStatuses)
{
    EXPECT_TRUE(is_poison(400));
    EXPECT_TRUE(is_poison(403));
    EXPECT_TRUE(is_poison(413));
    EXPECT_FALSE(is_poison(408));
    EXPECT_FALSE(is_poison(429));
    EXPECT_FALSE(is_poison(507));
    EXPECT_FALSE(is_poison(-1));
}

}  // namespace
}  // namespace pulse::publisher
