#include "pulse/http_stream.h"

#include <algorithm>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "pulse/poll.h"
#include "support/fanout_fixture.h"

namespace pulse {
namespace {

using test::FanoutWorld;

// The socket side: what was queued, and what the stream asked for.
class FakeIo final : public StreamIo {
public:
    bool push(Frame* f) override
    {
        if (queued + f->size() > limit) {
            return false;
        }
        queued += f->size();
        bytes.append(f->view());
        return true;
    }
    void send() override
    {
        ++sends;
        if (flush_on_send) {
            queued = 0;
            is_idle = true;
        }
    }
    void finish() override { finished = true; }
    void fail() override { failed = true; }
    void delivered() override { ++deliveries; }
    bool idle() const override { return is_idle && queued == 0; }
    size_t room() const override { return limit - queued; }
    void pace_in(std::optional<uint64_t> ms) override { pace_timer = ms; }
    uint64_t clock_ms() const override { return clock; }
    /// The pacing timer fires.
    void fire(HttpStream& s)
    {
        pace_timer.reset();
        s.on_pace_timer();
    }

    std::string bytes;
    size_t queued = 0;
    size_t limit = 1 << 20;
    int sends = 0;
    int deliveries = 0;
    bool finished = false;
    bool failed = false;
    bool is_idle = true;
    bool flush_on_send = true;  // the kernel takes everything at once
    std::optional<uint64_t> pace_timer;
    uint64_t clock = 0;
};

struct StreamWorld : FanoutWorld {
    std::string id(const std::string& key)
    {
        Store::Guard g(store);
        return to_string(store.info(g, key, host.clock)->last_id);
    }
};

TEST(HttpStream, EventSourceHelloCatchUpAndLive)
{
    StreamWorld w;
    w.publish("/c", "old", 10, "tick");
    std::string first = w.id("/c");
    FakeIo io;
    HttpStream s(*w.fanout, io, StreamOptions{});
    EXPECT_EQ(s.content_type(), "text/event-stream; charset=utf-8");
    EXPECT_EQ(s.hello(), ": hi\n\n");
    ASSERT_TRUE(s.join({"/c"}, std::nullopt, w.opts()).is_ok());
    s.start(false);
    EXPECT_EQ(io.bytes, "event: tick\nid: " + first + "\ndata: old\n\n");
    io.bytes.clear();
    w.publish("/c", "new");
    w.deliver();
    EXPECT_EQ(io.bytes, "id: " + w.id("/c") + "\ndata: new\n\n");
    EXPECT_EQ(io.deliveries, 1);
    EXPECT_EQ(io.sends, 1);
}

TEST(HttpStream, AGapEventFirstWhenTheResumeMissedMessages)
{
    StreamWorld w;
    std::vector<std::string> ids;
    for (int i = 0; i < 4; ++i) {
        w.publish("/c", "m" + std::to_string(i), 2);
        ids.push_back(w.id("/c"));
    }
    auto from = [&](const std::string& id) {
        auto p = parse_msg_id(id);
        EXPECT_TRUE(p.is_ok());
        return std::optional<MultiMsgId>(p.value());
    };
    StreamOptions o;
    o.gap_event = "pulse-gap";
    {
        // m1 is gone from the buffer of 2: the event, then m2 and m3
        FakeIo io;
        HttpStream s(*w.fanout, io, o);
        ASSERT_TRUE(s.join({"/c"}, from(ids[0]), w.opts()).is_ok());
        s.start(false);
        EXPECT_EQ(io.bytes,
                  "event: pulse-gap\ndata: " + ids[0] + "\n\nid: " + ids[2]
                      + "\ndata: m2\n\nid: " + ids[3] + "\ndata: m3\n\n");
    }
    {
        // nothing missed: no event
        FakeIo io;
        HttpStream s(*w.fanout, io, o);
        ASSERT_TRUE(s.join({"/c"}, from(ids[2]), w.opts()).is_ok());
        s.start(false);
        EXPECT_EQ(io.bytes, "id: " + ids[3] + "\ndata: m3\n\n");
    }
    {
        // off (nchan's behaviour): the catch-up alone
        FakeIo io;
        HttpStream s(*w.fanout, io, StreamOptions{});
        ASSERT_TRUE(s.join({"/c"}, from(ids[0]), w.opts()).is_ok());
        s.start(false);
        EXPECT_EQ(io.bytes.find("pulse-gap"), std::string::npos);
    }
}

TEST(HttpStream, ChunkedStreamsFrameEveryChunk)
{
    StreamWorld w;
    FakeIo io;
    StreamOptions o;
    o.transport = Transport::kChunked;
    HttpStream s(*w.fanout, io, o);
    EXPECT_EQ(s.content_type(), "");
    ASSERT_TRUE(s.join({"/c"}, std::nullopt, w.opts()).is_ok());
    s.start(true);
    w.publish("/c", "hey");
    w.publish("/c", "");  // an empty chunk would end the response
    w.deliver();
    EXPECT_EQ(io.bytes, "3\r\nhey\r\n");
    s.end(end_status::kGone);
    EXPECT_TRUE(io.finished);  // the glue sends the last chunk
}

TEST(HttpStream, MultipartStreamsHaveTheirOwnBoundary)
{
    StreamWorld w;
    FakeIo io1;
    FakeIo io2;
    StreamOptions o;
    o.transport = Transport::kMultipart;
    HttpStream a(*w.fanout, io1, o);
    HttpStream b(*w.fanout, io2, o);
    EXPECT_NE(a.content_type(), b.content_type());
    std::string boundary = a.hello().substr(2);
    EXPECT_EQ(a.content_type(), "multipart/mixed; boundary=" + boundary);
    ASSERT_TRUE(a.join({"/c"}, std::nullopt, w.opts()).is_ok());
    ASSERT_TRUE(b.join({"/c"}, std::nullopt, w.opts()).is_ok());
    a.start(false);
    b.start(false);
    w.publish("/c", "x", 10, "", "text/plain");
    w.deliver();
    EXPECT_TRUE(io1.bytes.find("\r\n\r\nx\r\n--" + boundary)
                != std::string::npos);
    EXPECT_EQ(io2.bytes.find(boundary), std::string::npos);
    a.end(end_status::kGone);
    EXPECT_EQ(io1.bytes.substr(io1.bytes.size() - 4), "--\r\n");
}

TEST(HttpStream, RawStreamSeparatorGetsANewline)
{
    StreamWorld w;
    FakeIo io;
    StreamOptions o;
    o.transport = Transport::kRawStream;
    o.separator = "--";
    HttpStream s(*w.fanout, io, o);
    ASSERT_TRUE(s.join({"/c"}, std::nullopt, w.opts()).is_ok());
    s.start(false);
    w.publish("/c", "a");
    w.deliver();
    EXPECT_EQ(io.bytes, "a--\n");
}

TEST(HttpStream, MultiplexedIdsShowEveryChannel)
{
    StreamWorld w;
    FakeIo io;
    HttpStream s(*w.fanout, io, StreamOptions{});
    ASSERT_TRUE(s.join({"/a", "/b"}, std::nullopt, w.opts()).is_ok());
    s.start(false);
    w.publish("/a", "1");
    w.deliver();
    w.publish("/b", "2");
    w.deliver();
    auto t = std::to_string(w.host.clock);
    EXPECT_EQ(io.bytes, "id: " + t + ":[0],-\ndata: 1\n\nid: " + t
                            + ":0,[0]\ndata: 2\n\n");
}

TEST(HttpStream, DeletingAnyChannelEndsAMultiplexedStream)
{
    StreamWorld w;
    FakeIo io;
    HttpStream s(*w.fanout, io, StreamOptions{});
    ASSERT_TRUE(s.join({"/a", "/b"}, std::nullopt, w.opts()).is_ok());
    s.start(false);
    ASSERT_TRUE(w.fanout->remove({"/b"}, w.host.clock).is_ok());
    w.deliver();
    EXPECT_EQ(io.bytes, ":410: 410 Gone\n\n");
    EXPECT_TRUE(io.finished);
    EXPECT_EQ(w.subscribers("/a"), 0u);  // it left the other channel too
}

TEST(HttpStream, ASlowClientFailsAndLeaves)
{
    StreamWorld w;
    FakeIo io;
    io.limit = 40;
    HttpStream s(*w.fanout, io, StreamOptions{});
    ASSERT_TRUE(s.join({"/c"}, std::nullopt, w.opts()).is_ok());
    s.start(false);
    w.publish("/c", std::string(100, 'x'));
    w.deliver();
    EXPECT_TRUE(io.failed);
    EXPECT_EQ(w.subscribers("/c"), 0u);
}

TEST(HttpStream, ACatchUpOverTheLimitEndsAfterWhatFits)
{
    StreamWorld w;
    for (int i = 0; i < 5; ++i) {
        w.publish("/c", std::string(20, static_cast<char>('a' + i)));
    }
    FakeIo io;
    io.limit = 80;  // two messages fit
    HttpStream s(*w.fanout, io, StreamOptions{});
    ASSERT_TRUE(s.join({"/c"}, std::nullopt, w.opts()).is_ok());
    s.start(false);
    EXPECT_TRUE(io.finished);
    EXPECT_FALSE(io.failed);
    EXPECT_EQ(std::count(io.bytes.begin(), io.bytes.end(), '\n'), 6);
    EXPECT_EQ(w.subscribers("/c"), 0u);  // resumes from its last id
}

TEST(HttpStream, EndsAndPings)
{
    StreamWorld w;
    FakeIo io;
    HttpStream s(*w.fanout, io, StreamOptions{});
    ASSERT_TRUE(s.join({"/c"}, std::nullopt, w.opts()).is_ok());
    s.start(false);
    s.ping("", "ping", "");
    EXPECT_EQ(io.bytes, "event: ping\n\n");
    io.bytes.clear();
    s.end(end_status::kTimeout);
    EXPECT_EQ(io.bytes, ":408: 408 Request Timeout\n\n");
    EXPECT_TRUE(s.finishing());
    s.end(end_status::kGone);  // once
    EXPECT_EQ(io.bytes, ":408: 408 Request Timeout\n\n");
}

TEST(HttpStream, AnExpiredTokenEndsTheStreamWithAComment)
{
    StreamWorld w;
    FakeIo io;
    HttpStream s(*w.fanout, io, StreamOptions{});
    ASSERT_TRUE(s.join({"/c"}, std::nullopt, w.opts()).is_ok());
    s.start(false);
    s.end(end_status::kUnauthorized);
    EXPECT_EQ(io.bytes, ":401: 401 Token Expired\n\n");
    EXPECT_TRUE(s.finishing());
    EXPECT_EQ(w.subscribers("/c"), 0U);
}

TEST(HttpStream, MessagesBeforeStartFollowTheCatchUp)
{
    StreamWorld w;
    w.publish("/c", "x");
    FakeIo io;
    HttpStream s(*w.fanout, io, StreamOptions{});
    ASSERT_TRUE(s.join({"/c"}, std::nullopt, w.opts()).is_ok());
    // a message between the join and the header: kept, not lost
    w.publish("/c", "y");
    w.deliver();
    EXPECT_EQ(io.bytes, "");
    s.start(false);
    auto x = io.bytes.find("data: x");
    auto y = io.bytes.find("data: y");
    ASSERT_NE(x, std::string::npos);
    ASSERT_NE(y, std::string::npos);
    EXPECT_LT(x, y);
}

// --------------------------------------------------------------- polls

class FakePollIo final : public PollIo {
public:
    void respond(const PollAnswer& a) override
    {
        answers.push_back(a);
        if (a.msg != nullptr) {
            bodies.push_back(a.msg->body);
        }
    }
    void fail() noexcept override { failed = true; }
    void pace_in(uint64_t ms) override { timers.push_back(ms); }
    std::vector<PollAnswer> answers;
    std::vector<std::string> bodies;
    std::vector<uint64_t> timers;
    bool failed = false;
};

TEST(Poll, AnswersAtOnceWithTheOldestNewerMessage)
{
    StreamWorld w;
    w.publish("/c", "m0");
    std::string after = w.id("/c");
    w.publish("/c", "m1");
    w.publish("/c", "m2");
    FakePollIo io;
    Poll p(*w.fanout, io, false, false);
    auto resume = parse_msg_id(after);
    auto waiting = p.start({"/c"}, resume.value(), w.opts());
    ASSERT_TRUE(waiting.is_ok());
    EXPECT_FALSE(waiting.value());
    ASSERT_EQ(io.bodies, (std::vector<std::string>{"m1"}));
    EXPECT_EQ(io.answers[0].etag, "1");
    EXPECT_EQ(io.answers[0].last_modified, w.host.clock);
    EXPECT_EQ(w.subscribers("/c"), 0u);
}

TEST(Poll, SaysWhenItsIdWasOlderThanTheBuffer)
{
    StreamWorld w;
    std::vector<std::string> ids;
    for (int i = 0; i < 4; ++i) {
        w.publish("/c", "m" + std::to_string(i), 2);
        ids.push_back(w.id("/c"));
    }
    FakePollIo io;
    Poll gone(*w.fanout, io, false, false);
    ASSERT_FALSE(
        gone.start({"/c"}, parse_msg_id(ids[0]).value(), w.opts()).value());
    Poll fine(*w.fanout, io, false, false);
    ASSERT_FALSE(
        fine.start({"/c"}, parse_msg_id(ids[2]).value(), w.opts()).value());
    Poll interval(*w.fanout, io, true, false);
    ASSERT_FALSE(
        interval.start({"/c"}, parse_msg_id(ids[3]).value(), w.opts()).value());
    ASSERT_EQ(io.answers.size(), 3u);
    EXPECT_TRUE(io.answers[0].gap);
    EXPECT_EQ(io.bodies[0], "m2");
    EXPECT_FALSE(io.answers[1].gap);
    EXPECT_EQ(io.bodies[1], "m3");
    EXPECT_EQ(io.answers[2].status, 304);
    EXPECT_FALSE(io.answers[2].gap);
}

TEST(Poll, WaitsThenAnswersOnce)
{
    StreamWorld w;
    FakePollIo io;
    Poll p(*w.fanout, io, false, false);
    auto first = Fanout::JoinOptions(w.opts());
    first.first = FirstMessage{FirstMessage::kNewest};
    ASSERT_TRUE(p.start({"/c"}, std::nullopt, first).value());
    EXPECT_TRUE(p.waiting());
    w.publish("/c", "a");
    w.publish("/c", "b");
    w.deliver();
    EXPECT_EQ(io.bodies, (std::vector<std::string>{"a"}));
    EXPECT_FALSE(p.waiting());
    p.end(end_status::kTimeout);  // answered already: nothing
    EXPECT_EQ(io.answers.size(), 1u);
}

TEST(Poll, IntervalPollAnswers304WithTheAskedId)
{
    StreamWorld w;
    w.publish("/c", "m0");
    auto id = parse_msg_id(w.id("/c"));
    FakePollIo io;
    Poll p(*w.fanout, io, true, false);
    ASSERT_FALSE(p.start({"/c"}, id.value(), w.opts()).value());
    ASSERT_EQ(io.answers.size(), 1u);
    EXPECT_EQ(io.answers[0].status, 304);
    EXPECT_EQ(io.answers[0].etag, "0");
}

TEST(Poll, BufferLengthZeroIsNeverServedToAPoll)
{
    StreamWorld w;
    w.publish("/c", "gone", 0);
    FakePollIo io;
    Poll p(*w.fanout, io, true, false);
    ASSERT_FALSE(p.start({"/c"}, std::nullopt, w.opts()).value());
    EXPECT_EQ(io.answers[0].status, 304);
    Store::Guard g(w.store);
    EXPECT_EQ(w.store.info(g, "/c", w.host.clock)->messages, 0u);
}

TEST(Poll, TimeoutAndCompoundEtags)
{
    StreamWorld w;
    FakePollIo io;
    Poll p(*w.fanout, io, false, true);
    auto o = w.opts();
    o.first = FirstMessage{FirstMessage::kNewest};
    ASSERT_TRUE(p.start({"/c"}, std::nullopt, o).value());
    p.end(end_status::kTimeout);
    EXPECT_EQ(io.answers.back().status, 408);
    EXPECT_FALSE(io.answers.back().etag);
    FakePollIo io2;
    Poll q(*w.fanout, io2, false, true);
    w.publish("/c", "x");
    ASSERT_FALSE(q.start({"/c"}, std::nullopt, w.opts()).value());
    EXPECT_EQ(io2.answers[0].etag, w.id("/c"));
    EXPECT_FALSE(io2.answers[0].last_modified);
}

TEST(Poll, MultiplexedAnswersCarryEveryTag)
{
    StreamWorld w;
    FakePollIo io;
    Poll p(*w.fanout, io, false, false);
    auto o = w.opts();
    o.first = FirstMessage{FirstMessage::kNewest};
    ASSERT_TRUE(p.start({"/a", "/b"}, std::nullopt, o).value());
    w.publish("/b", "x");
    w.deliver();
    ASSERT_EQ(io.bodies, (std::vector<std::string>{"x"}));
    EXPECT_EQ(io.answers[0].etag, "-,[0]");
    EXPECT_EQ(w.subscribers("/a"), 0u);
}

TEST(Poll, MultipartAnswersEveryBufferedMessageWithTheLastId)
{
    StreamWorld w;
    w.publish("/c", "m0");
    std::string after = w.id("/c");
    w.publish("/c", "m1");
    w.publish("/c", "m2");
    w.publish("/c", "m3");
    std::string last = w.id("/c");
    FakePollIo io;
    Poll p(*w.fanout, io, false, false, {}, PollParts::kMultipart);
    ASSERT_FALSE(
        p.start({"/c"}, parse_msg_id(after).value(), w.opts()).value());
    ASSERT_EQ(io.answers.size(), 1u);
    const PollAnswer& a = io.answers[0];
    EXPECT_EQ(a.msg->body, "m1");
    ASSERT_EQ(a.more.size(), 2u);
    EXPECT_EQ(a.more[0]->body, "m2");
    EXPECT_EQ(a.more[1]->body, "m3");
    EXPECT_EQ(a.etag, last.substr(last.find(':') + 1));
    EXPECT_EQ(w.subscribers("/c"), 0u);
}

TEST(Poll, MultipartWithOneMessageIsAPlainAnswer)
{
    StreamWorld w;
    w.publish("/c", "only");
    FakePollIo io;
    Poll p(*w.fanout, io, false, false, {}, PollParts::kRaw);
    ASSERT_FALSE(p.start({"/c"}, std::nullopt, w.opts()).value());
    ASSERT_EQ(io.bodies, (std::vector<std::string>{"only"}));
    EXPECT_TRUE(io.answers[0].more.empty());
}

TEST(Poll, AWaitingMultipartPollTakesWhatCameTogether)
{
    StreamWorld w;
    FakePollIo io;
    Poll p(*w.fanout, io, false, false, {}, PollParts::kMultipart);
    auto o = w.opts();
    o.first = FirstMessage{FirstMessage::kNewest};
    ASSERT_TRUE(p.start({"/a", "/b"}, std::nullopt, o).value());
    w.publish("/b", "x");
    w.publish("/b", "y");
    w.deliver();
    ASSERT_EQ(io.answers.size(), 1u);
    EXPECT_EQ(io.answers[0].msg->body, "x");
    ASSERT_EQ(io.answers[0].more.size(), 1u);
    EXPECT_EQ(io.answers[0].more[0]->body, "y");
    EXPECT_EQ(io.answers[0].etag, "-,[1]");
}

TEST(Poll, IntervalPollsAnswerOneMessageWhateverTheParts)
{
    StreamWorld w;
    w.publish("/c", "m0");
    w.publish("/c", "m1");
    FakePollIo io;
    Poll interval(*w.fanout, io, true, false, {}, PollParts::kMultipart);
    ASSERT_FALSE(interval.start({"/c"}, std::nullopt, w.opts()).value());
    EXPECT_TRUE(io.answers.back().more.empty());
    EXPECT_EQ(io.bodies.back(), "m0");
}

TEST(Poll, MultipartAndRawBodiesAreNchans)
{
    auto msg = [](std::string_view body, std::string_view ct) {
        MessageView v;
        v.body = body;
        v.content_type = ct;
        return std::make_shared<Msg>(v);
    };
    MsgPtr first = msg("one", "text/plain");
    std::vector<MsgPtr> more{msg("", "text/plain"), msg("three", "")};
    EXPECT_EQ(multipart_poll_body(first, more, "B"),
              "--B\r\nContent-Type: text/plain\r\n\r\none\r\n"
              "--B\r\n\r\n\r\n"
              "--B\r\n\r\nthree\r\n"
              "--B--\r\n");
    EXPECT_EQ(raw_poll_body(first, more, "|\n"), "one|\n|\nthree|\n");
}

TEST(HttpStreamPacing, ThrottledEventSourceGetsTheLatestPerKey)
{
    StreamWorld w;
    FakeIo io;
    StreamOptions o;
    o.pace = pacing::Pace{pacing::Mode::kThrottle, 250};
    HttpStream s(*w.fanout, io, o);
    ASSERT_TRUE(s.join({"/c"}, std::nullopt, w.opts()).is_ok());
    s.start(false);
    w.publish("/c", "a1", 100, "", "", "a");
    w.deliver();
    EXPECT_EQ(io.bytes, "id: " + w.id("/c") + "\ndata: a1\n\n");
    io.bytes.clear();
    io.clock = 5;
    w.publish("/c", "a2", 100, "", "", "a");
    w.publish("/c", "b1", 100, "", "", "b");
    std::string b1 = w.id("/c");
    w.publish("/c", "a3", 100, "", "", "a");
    std::string a3 = w.id("/c");
    w.deliver();
    EXPECT_EQ(io.bytes, "");
    EXPECT_EQ(io.pace_timer, 245U);
    io.clock = 250;
    io.fire(s);
    EXPECT_EQ(io.bytes,
              "id: " + b1 + "\ndata: b1\n\n" + "id: " + a3 + "\ndata: a3\n\n");
    EXPECT_EQ(io.sends, 2);  // one write per batch
}

TEST(HttpStreamPacing, DropOldestSendsTheGapEventWithTheLastIdWritten)
{
    StreamWorld w;
    FakeIo io;
    StreamOptions o;
    o.gap_event = "pulse-gap";
    o.bounds = pacing::Bounds{1, 0, pacing::Overflow::kDropOldest};
    HttpStream s(*w.fanout, io, o);
    ASSERT_TRUE(s.join({"/c"}, std::nullopt, w.opts()).is_ok());
    s.start(false);
    w.publish("/c", "m0", 100);
    std::string m0 = w.id("/c");
    w.deliver();
    io.is_idle = false;
    w.publish("/c", "m1", 100);
    w.publish("/c", "m2", 100);
    std::string m2 = w.id("/c");
    w.deliver();
    EXPECT_EQ(io.bytes, "id: " + m0 + "\ndata: m0\n\n");
    EXPECT_FALSE(io.pace_timer.has_value());  // waits for the socket
    io.bytes.clear();
    io.is_idle = true;
    io.fire(s);
    EXPECT_EQ(io.bytes, "event: pulse-gap\ndata: " + m0 + "\n\nid: " + m2
                            + "\ndata: m2\n\n");
    EXPECT_FALSE(io.failed);
}

TEST(HttpStreamPacing, ClosePolicyFailsTheStream)
{
    StreamWorld w;
    FakeIo io;
    StreamOptions o;
    o.pace = pacing::Pace{pacing::Mode::kInterval, 1000};
    o.bounds = pacing::Bounds{2, 0, pacing::Overflow::kClose};
    HttpStream s(*w.fanout, io, o);
    ASSERT_TRUE(s.join({"/c"}, std::nullopt, w.opts()).is_ok());
    s.start(false);
    for (int i = 0; i < 3; ++i) {
        w.publish("/c", "m" + std::to_string(i), 100);
    }
    w.deliver();
    EXPECT_TRUE(io.failed);
    EXPECT_EQ(w.subscribers("/c"), 0U);
}

TEST(PollPacing, AResumeAnswersWithTheFirstMessageNoLaterOneSupersedes)
{
    StreamWorld w;
    w.publish("/c", "m0");
    std::string after = w.id("/c");
    w.publish("/c", "a1", 100, "", "", "a");
    w.publish("/c", "b1", 100, "", "", "b");
    w.publish("/c", "a2", 100, "", "", "a");
    std::string a2 = w.id("/c");
    pacing::Pace throttle{pacing::Mode::kThrottle, 500};
    FakePollIo io;
    Poll p(*w.fanout, io, false, false, throttle);
    ASSERT_FALSE(
        p.start({"/c"}, parse_msg_id(after).value(), w.opts()).value());
    EXPECT_EQ(io.bodies, (std::vector<std::string>{"b1"}));
    // the next poll, from b1's id, gets a2; a1 was superseded
    FakePollIo io2;
    Poll next(*w.fanout, io2, false, false, throttle);
    MultiMsgId b1 = parse_msg_id(after).value();
    b1.tags[0] = std::stoi(*io.answers[0].etag);
    ASSERT_FALSE(next.start({"/c"}, b1, w.opts()).value());
    EXPECT_EQ(io2.bodies, (std::vector<std::string>{"a2"}));
    // live: nchan's poll, the oldest newer message
    FakePollIo io3;
    Poll live(*w.fanout, io3, false, false);
    ASSERT_FALSE(
        live.start({"/c"}, parse_msg_id(after).value(), w.opts()).value());
    EXPECT_EQ(io3.bodies, (std::vector<std::string>{"a1"}));
}

TEST(PollPacing, AWaitingPollAnswersAfterTheIntervalWithTheLatest)
{
    StreamWorld w;
    w.publish("/c", "m0");
    std::string after = w.id("/c");
    FakePollIo io;
    Poll p(*w.fanout, io, false, false,
           pacing::Pace{pacing::Mode::kThrottle, 250});
    ASSERT_TRUE(p.start({"/c"}, parse_msg_id(after).value(), w.opts()).value());
    w.publish("/c", "a1", 100, "", "", "a");
    w.deliver();
    w.publish("/c", "a2", 100, "", "", "a");
    w.publish("/c", "a3", 100, "", "", "a");
    w.deliver();
    EXPECT_TRUE(io.answers.empty());
    EXPECT_EQ(io.timers, (std::vector<uint64_t>{250}));  // armed once
    p.on_pace();
    EXPECT_EQ(io.bodies, (std::vector<std::string>{"a3"}));
    EXPECT_EQ(w.subscribers("/c"), 0u);
    p.on_pace();  // answered already: nothing more
    EXPECT_EQ(io.answers.size(), 1u);
}

TEST(PacingConflate, LatestPerChannelAndKeyInPublishOrder)
{
    auto m = [](int n, const char* key) {
        MessageView v;
        v.id = MsgId{1, n};
        v.conflation_key = key;
        return std::make_shared<Msg>(v);
    };
    std::vector<pacing::Item> items = {{m(1, "a"), 0},
                                       {m(2, ""), 0},
                                       {m(3, "a"), 1},
                                       {m(4, "a"), 0},
                                       {m(5, ""), 0}};
    std::vector<int> tags;
    for (const pacing::Item& it : pacing::conflate(items)) {
        tags.push_back(it.msg->id.tag);
    }
    EXPECT_EQ(tags, (std::vector<int>{2, 3, 4, 5}));
}

TEST(HttpStreamPacing, WhatTheSocketHadNoRoomForGoesOnTheNextTimerAtTheSameMs)
{
    StreamWorld w;
    FakeIo io;
    io.limit = 30;  // room for one message at a time
    StreamOptions o;
    o.transport = Transport::kRawStream;
    o.bounds = pacing::Bounds{10, 0, pacing::Overflow::kDropOldest};
    HttpStream s(*w.fanout, io, o);
    ASSERT_TRUE(s.join({"/c"}, std::nullopt, w.opts()).is_ok());
    s.start(false);
    io.is_idle = false;  // the socket is stalled: messages are held
    for (int i = 0; i < 4; ++i) {
        w.publish("/c", std::string(20, static_cast<char>('a' + i)), 100);
    }
    w.deliver();
    EXPECT_EQ(io.bytes, "");
    // it drains: one message fits, the rest waits for a timer at once
    io.is_idle = true;
    io.flush_on_send = true;
    s.on_pace();
    int fired = 0;
    while (io.pace_timer && fired < 10) {
        ASSERT_EQ(*io.pace_timer, 0U);
        io.fire(s);  // the clock has not moved
        ++fired;
    }
    EXPECT_EQ(io.bytes, std::string(20, 'a') + std::string(20, 'b')
                            + std::string(20, 'c') + std::string(20, 'd'));
    EXPECT_EQ(fired, 3);  // b, c and d each on a timer of 0 ms
}

TEST(HttpStreamPacing, AThrottledMultiplexedStreamKeepsPublishOrder)
{
    StreamWorld w;
    FakeIo io;
    StreamOptions o;
    o.transport = Transport::kRawStream;
    o.separator = "";
    o.pace = pacing::Pace{pacing::Mode::kThrottle, 100};
    HttpStream s(*w.fanout, io, o);
    ASSERT_TRUE(s.join({"/a", "/b"}, std::nullopt, w.opts()).is_ok());
    s.start(false);
    w.publish("/a", "0");
    w.deliver();  // at once: a quiet interval
    // both channels park; their logs merge in publish order at the timer
    for (const char* c : {"/b", "/a", "/b", "/a"}) {
        w.publish(c, std::string(c + 1));
        w.deliver();
    }
    io.bytes.clear();
    io.clock = 100;
    io.fire(s);
    EXPECT_EQ(io.bytes, "baba");
}

}  // namespace
}  // namespace pulse
