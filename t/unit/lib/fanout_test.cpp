#include "pulse/fanout.h"

#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "support/fanout_fixture.h"

namespace pulse {
namespace {

using test::FanoutWorld;

// A subscriber that records what it gets, and can act while it gets it.
class Rec final : public Subscriber {
public:
    void on_messages(const std::vector<MsgPtr>& msgs) override
    {
        for (const MsgPtr& m : msgs) {
            if (take(m->id)) {
                got.push_back(m->body);
            }
        }
        if (action) {
            action();
        }
    }
    void on_end(int status) override
    {
        ended = status;
        if (end_action) {
            end_action();
        }
    }
    void on_failure() noexcept override { failed = true; }

    std::vector<std::string> got;
    int ended = 0;
    bool failed = false;
    std::function<void()> action;
    std::function<void()> end_action;
};

std::vector<std::string> bodies(const std::vector<MsgPtr>& msgs)
{
    std::vector<std::string> out;
    for (const MsgPtr& m : msgs) {
        out.push_back(m->body);
    }
    return out;
}

TEST(Fanout, PublishRingsTheSlotAndDelivers)
{
    FanoutWorld w;
    Rec a;
    ASSERT_TRUE(w.fanout->join(&a, "/c", w.opts()).is_ok());
    auto p = w.publish("/c", "hello");
    EXPECT_EQ(p.status, 201);  // a subscriber will get it
    EXPECT_EQ(p.info.subscribers, 1u);
    EXPECT_EQ(w.host.rung, 1u);  // slot 0: this worker
    w.deliver();
    EXPECT_EQ(a.got, (std::vector<std::string>{"hello"}));
    // nobody on another channel: stored only
    EXPECT_EQ(w.publish("/other", "x").status, 202);
}

// pulse_max_message_size: refused before the store, nothing stored or
// delivered, the channel still works
TEST(Fanout, AMessageOverTheSizeBoundIsRefused)
{
    FanoutWorld w;
    Rec a;
    ASSERT_TRUE(w.fanout->join(&a, "/c", w.opts()).is_ok());
    PublishSpec spec;
    spec.max_size = 4;
    auto big = w.fanout->publish(
        {"/c"}, spec, PublishInput{"12345", "", "", std::nullopt, {}, {}},
        w.host.clock);
    ASSERT_FALSE(big.is_ok());
    EXPECT_EQ(big.status().code(), Code::kTooLarge);
    EXPECT_EQ(
        big.status().message(),
        "Message too large: 5 bytes, at most 4 (pulse_max_message_size).");
    auto ok = w.fanout->publish(
        {"/c"}, spec, PublishInput{"1234", "", "", std::nullopt, {}, {}},
        w.host.clock);
    ASSERT_TRUE(ok.is_ok());
    w.deliver();
    EXPECT_EQ(a.got, (std::vector<std::string>{"1234"}));
}

TEST(Fanout, CatchUpMeetsTheLiveStreamExactly)
{
    FanoutWorld w;
    Rec a;
    ASSERT_TRUE(w.fanout->join(&a, "/c", w.opts()).is_ok());
    w.publish("/c", "m1");
    w.publish("/c", "m2");
    // b joins before this worker read its mailbox: its catch-up has m1 and
    // m2, and joining brings a up to the same point
    Rec b;
    auto j = w.fanout->join(&b, "/c", w.opts());
    ASSERT_TRUE(j.is_ok());
    EXPECT_EQ(bodies(j->catch_up), (std::vector<std::string>{"m1", "m2"}));
    EXPECT_EQ(a.got, (std::vector<std::string>{"m1", "m2"}));
    w.publish("/c", "m3");
    w.deliver();
    EXPECT_EQ(a.got, (std::vector<std::string>{"m1", "m2", "m3"}));
    EXPECT_EQ(b.got, (std::vector<std::string>{"m3"}));  // no duplicate
}

TEST(Fanout, ResumeFromAnEvictedIdSignalsAGap)
{
    FanoutWorld w;
    std::vector<MsgId> ids;
    for (int i = 0; i < 5; ++i) {
        w.publish("/c", "m" + std::to_string(i), 2);
        Store::Guard g(w.store);
        ids.push_back(w.store.info(g, "/c", w.host.clock)->last_id);
    }
    Rec late;
    auto o = w.opts();
    o.after = ids[0];
    auto j = w.fanout->join(&late, "/c", o);
    ASSERT_TRUE(j.is_ok());
    EXPECT_TRUE(j->gap);
    EXPECT_EQ(bodies(j->catch_up), (std::vector<std::string>{"m3", "m4"}));
    Rec fine;
    o.after = ids[3];
    auto k = w.fanout->join(&fine, "/c", o);
    EXPECT_FALSE(k->gap);
    EXPECT_EQ(bodies(k->catch_up), (std::vector<std::string>{"m4"}));
}

TEST(Fanout, ASubscriberMayRemoveTheNextOneDuringDispatch)
{
    FanoutWorld w;
    Rec a;
    auto b = std::make_unique<Rec>();
    Rec c;
    for (Subscriber* s :
         {static_cast<Subscriber*>(&a), static_cast<Subscriber*>(b.get()),
          static_cast<Subscriber*>(&c)})
    {
        ASSERT_TRUE(w.fanout->join(s, "/c", w.opts()).is_ok());
    }
    // a deletes b (its neighbour in the channel) while the channel is being
    // dispatched: b is never called, c still is
    a.action = [&] { b.reset(); };
    w.publish("/c", "x");
    w.deliver();
    EXPECT_FALSE(b);
    EXPECT_EQ(a.got.size(), 1u);
    EXPECT_EQ(c.got.size(), 1u);
    EXPECT_EQ(w.subscribers("/c"), 2u);
}

TEST(Fanout, ASubscriberMayLeaveOrDeleteItselfDuringDispatch)
{
    FanoutWorld w;
    auto a = std::make_unique<Rec>();
    Rec b;
    Rec c;
    ASSERT_TRUE(w.fanout->join(a.get(), "/c", w.opts()).is_ok());
    ASSERT_TRUE(w.fanout->join(&b, "/c", w.opts()).is_ok());
    ASSERT_TRUE(w.fanout->join(&c, "/c", w.opts()).is_ok());
    a->action = [&] { a.reset(); };
    b.action = [&] { b.detach(); };
    w.publish("/c", "x");
    w.deliver();
    EXPECT_FALSE(b.joined());
    EXPECT_EQ(c.got.size(), 1u);
    w.publish("/c", "y");
    w.deliver();
    EXPECT_EQ(b.got.size(), 1u);  // gone: nothing more
    EXPECT_EQ(c.got.size(), 2u);
}

TEST(Fanout, RemovingEveryoneDuringDispatchReleasesTheChannelAfter)
{
    FanoutWorld w;
    Rec a;
    Rec b;
    ASSERT_TRUE(w.fanout->join(&a, "/c", w.opts()).is_ok());
    ASSERT_TRUE(w.fanout->join(&b, "/c", w.opts()).is_ok());
    a.action = [&] {
        a.detach();
        b.detach();
        // the channel is pinned by the dispatch: still held here
        EXPECT_EQ(w.fanout->channels(), 1u);
    };
    w.publish("/c", "x");
    w.deliver();
    EXPECT_EQ(w.fanout->channels(), 0u);
    EXPECT_TRUE(b.got.empty());
    EXPECT_EQ(w.subscribers("/c"), 0u);
}

TEST(Fanout, ANestedJoinDuringDispatchIsSafe)
{
    FanoutWorld w;
    Rec a;
    Rec b;
    Rec late;
    ASSERT_TRUE(w.fanout->join(&a, "/c", w.opts()).is_ok());
    ASSERT_TRUE(w.fanout->join(&b, "/c", w.opts()).is_ok());
    bool joined = false;
    a.action = [&] {
        if (!joined) {
            joined = true;
            // a publish and a join from inside a dispatch: the join
            // dispatches the live message to a and b (a nested dispatch
            // of the same channel), and b leaves during it
            w.publish("/c", "inner");
            b.action = [&] { b.detach(); };
            ASSERT_TRUE(w.fanout->join(&late, "/c", w.opts()).is_ok());
        }
    };
    w.publish("/c", "outer");
    w.deliver();
    EXPECT_EQ(a.got, (std::vector<std::string>{"outer", "inner"}));
    EXPECT_FALSE(b.joined());
    EXPECT_TRUE(late.got.empty());  // "inner" was in its catch-up
    EXPECT_EQ(w.subscribers("/c"), 2u);
}

TEST(Fanout, AnExceptionClosesOnlyThatSubscriber)
{
    FanoutWorld w;
    Rec a;
    Rec b;
    ASSERT_TRUE(w.fanout->join(&a, "/c", w.opts()).is_ok());
    ASSERT_TRUE(w.fanout->join(&b, "/c", w.opts()).is_ok());
    a.action = [] { throw std::runtime_error("no memory for a frame"); };
    w.publish("/c", "x");
    w.deliver();
    EXPECT_TRUE(a.failed);
    EXPECT_FALSE(a.joined());
    EXPECT_EQ(b.got.size(), 1u);
    EXPECT_FALSE(b.failed);
    // nothing stays pinned: when b leaves, the channel and the slot's
    // record go, and the channel's messages can be freed
    b.detach();
    EXPECT_EQ(w.fanout->channels(), 0u);
    EXPECT_EQ(w.subscribers("/c"), 0u);
}

TEST(Fanout, DeletingAChannelEndsItsSubscribers)
{
    FanoutWorld w;
    Rec a;
    Rec b;
    ASSERT_TRUE(w.fanout->join(&a, "/c", w.opts()).is_ok());
    ASSERT_TRUE(w.fanout->join(&b, "/c", w.opts()).is_ok());
    a.end_action = [&] { throw std::runtime_error("cannot write the end"); };
    auto info = w.fanout->remove({"/c"}, w.host.clock);
    ASSERT_TRUE(info.is_ok());
    EXPECT_EQ(info->subscribers, 2u);
    w.deliver();
    EXPECT_EQ(a.ended, end_status::kGone);
    EXPECT_TRUE(a.failed);  // its on_end threw
    EXPECT_EQ(b.ended, end_status::kGone);
    EXPECT_FALSE(a.joined() || b.joined());
    EXPECT_EQ(w.fanout->channels(), 0u);
    EXPECT_FALSE(w.fanout->info({"/c"}, w.host.clock).is_ok());
}

TEST(Fanout, ShutdownEndsEveryoneAndRefusesJoins)
{
    FanoutWorld w;
    Rec a;
    Rec b;
    ASSERT_TRUE(w.fanout->join(&a, "/c", w.opts()).is_ok());
    ASSERT_TRUE(w.fanout->join(&b, "/d", w.opts()).is_ok());
    w.fanout->shutdown();
    EXPECT_EQ(a.ended, end_status::kShutdown);
    EXPECT_EQ(b.ended, end_status::kShutdown);
    EXPECT_EQ(w.fanout->channels(), 0u);
    Rec c;
    auto j = w.fanout->join(&c, "/c", w.opts());
    EXPECT_EQ(j.status().code(), Code::kAgain);
}

TEST(Fanout, WithoutASlotPublishingWorksAndJoiningDoesNot)
{
    FanoutWorld w(4 << 20, std::nullopt);
    Rec a;
    EXPECT_EQ(w.fanout->join(&a, "/c", w.opts()).status().code(), Code::kAgain);
    EXPECT_EQ(w.publish("/c", "x").status, 202);
    w.fanout->process_mailbox(w.host.clock);  // nothing to read, no crash
}

TEST(Fanout, MaxSubscribersRefusesWithoutLeakingTheChannel)
{
    FanoutWorld w;
    Rec a;
    Rec b;
    auto o = w.opts();
    o.max_subscribers = 1;
    ASSERT_TRUE(w.fanout->join(&a, "/c", o).is_ok());
    EXPECT_EQ(w.fanout->join(&b, "/c", o).status().code(), Code::kForbidden);
    EXPECT_FALSE(b.joined());
    EXPECT_EQ(w.subscribers("/c"), 1u);
    Rec c;
    o.existing_only = true;
    EXPECT_EQ(w.fanout->join(&c, "/none", o).status().code(), Code::kNotFound);
    EXPECT_EQ(w.fanout->channels(), 1u);
}

TEST(Fanout, AFullZoneFailsThePublishAndAlertsOncePerEpisode)
{
    FanoutWorld w(1 << 20);  // the store's header takes about 270 KiB
    std::string big(64 << 10, 'x');
    Result<Published> r = Published{};
    int tries = 0;
    PublishSpec keep;
    keep.max_messages = 100;
    keep.timeout = 0;
    do {
        r = w.fanout->publish({"/c" + std::to_string(tries)}, keep,
                              PublishInput{big, "", "", {}, {}, {}},
                              w.host.clock);
    } while (r.is_ok() && ++tries < 100);
    ASSERT_FALSE(r.is_ok());
    EXPECT_EQ(r.status().code(), Code::kNoMemory);
    // again, still full: no second alert
    (void) w.fanout->publish(
        {"/more"}, keep, PublishInput{big, "", "", {}, {}, {}}, w.host.clock);
    size_t alerts = 0;
    for (auto& [level, text] : w.host.logs) {
        alerts += level == FanoutHost::Level::kAlert
                  && text.find("is full") != std::string::npos;
    }
    EXPECT_EQ(alerts, 1u);
}

TEST(Fanout, SeveralChannelsAggregateAsNchan)
{
    FanoutWorld w;
    Rec a;
    ASSERT_TRUE(w.fanout->join(&a, "/a", w.opts()).is_ok());
    PublishSpec spec;
    auto r =
        w.fanout->publish({"/a", "/b"}, spec,
                          PublishInput{"x", "", "", {}, {}, {}}, w.host.clock);
    ASSERT_TRUE(r.is_ok());
    EXPECT_EQ(r->info.subscribers, 1u);  // summed
    EXPECT_EQ(r->info.messages, 1u);     // max
    EXPECT_TRUE(r->info.last_id.is_zero());
    EXPECT_EQ(r->status, 201);
}

TEST(Fanout, MessagesOfSeveralChannelsInOneMailboxRead)
{
    FanoutWorld w;
    Rec a;
    Rec b;
    ASSERT_TRUE(w.fanout->join(&a, "/a", w.opts()).is_ok());
    ASSERT_TRUE(w.fanout->join(&b, "/b", w.opts()).is_ok());
    for (int i = 0; i < 3; ++i) {
        w.publish("/a", "a" + std::to_string(i));
        w.publish("/b", "b" + std::to_string(i));
    }
    w.deliver();
    EXPECT_EQ(a.got, (std::vector<std::string>{"a0", "a1", "a2"}));
    EXPECT_EQ(b.got, (std::vector<std::string>{"b0", "b1", "b2"}));
}

// ------------------------------------------------------------- parking

std::vector<std::string> parked_bodies(const Subscriber& s,
                                       bool* whole = nullptr)
{
    std::vector<std::string> out;
    bool w = s.parked_since([&](const MsgPtr& m) { out.push_back(m->body); });
    if (whole != nullptr) {
        *whole = w;
    }
    return out;
}

// One mailbox read with news of several channels hands the messages on
// in publish order, each channel's in its own order: a subscriber of
// several channels (multiplexed) sees a1 b1 a2, not a1 a2 b1.
TEST(Fanout, ChannelsReadTogetherAreDeliveredInPublishOrder)
{
    FanoutWorld w;
    std::vector<std::string> seen;
    Rec a;
    Rec b;
    a.action = [&] { seen.push_back("a:" + a.got.back()); };
    b.action = [&] { seen.push_back("b:" + b.got.back()); };
    ASSERT_TRUE(w.fanout->join(&a, "/a", w.opts()).is_ok());
    ASSERT_TRUE(w.fanout->join(&b, "/b", w.opts()).is_ok());
    int64_t ns = 100;
    for (const char* m : {"a1", "b1", "a2", "a3", "b2"}) {
        w.host.mono = ns++;
        w.publish(std::string("/") + m[0], m);
    }
    w.deliver();
    EXPECT_EQ(seen, (std::vector<std::string>{"a:a1", "b:b1", "a:a3", "b:b2"}));
    EXPECT_EQ(a.got, (std::vector<std::string>{"a1", "a2", "a3"}));
    // a2 and a3 went as one run: the action saw a3 last
    // publishes of one channel taken out of time order (two workers racing
    // for the lock) keep their ids' order
    seen.clear();
    w.host.mono = 50;
    w.publish("/a", "a4");
    w.host.mono = 40;
    w.publish("/a", "a5");
    w.host.mono = 45;
    w.publish("/b", "b3");
    w.deliver();
    EXPECT_EQ(a.got.back(), "a5");
    EXPECT_EQ(b.got.back(), "b3");
    EXPECT_EQ(a.got.size(), 5u);  // none dropped as older
}

TEST(FanoutParking, AParkedSubscriberIsPassedByAndReadsTheLatestPerKey)
{
    FanoutWorld w;
    Rec a, b;
    ASSERT_TRUE(w.fanout->join(&a, "/c", w.opts()).is_ok());
    ASSERT_TRUE(w.fanout->join(&b, "/c", w.opts()).is_ok());
    a.park();
    a.park();  // idempotent
    EXPECT_TRUE(a.parked());
    w.publish("/c", "x1", 10, "", "", "x");
    w.publish("/c", "y1", 10, "", "", "y");
    w.publish("/c", "x2", 10, "", "", "x");
    w.publish("/c", "n", 10);
    w.deliver();
    EXPECT_TRUE(a.got.empty());  // passed by
    EXPECT_EQ(b.got, (std::vector<std::string>{"x1", "y1", "x2", "n"}));
    bool whole = false;
    EXPECT_EQ(parked_bodies(a, &whole),
              (std::vector<std::string>{"y1", "x2", "n"}));
    EXPECT_TRUE(whole);
    EXPECT_EQ(w.subscribers("/c"), 2u);  // still a member
    a.unpark();
    w.publish("/c", "after", 10);
    w.deliver();
    EXPECT_EQ(a.got, (std::vector<std::string>{"after"}));
}

TEST(FanoutParking, ParkedSubscribersLeaveAndEndLikeOthers)
{
    FanoutWorld w;
    Rec a, b, c;
    for (Rec* r : {&a, &b, &c}) {
        ASSERT_TRUE(w.fanout->join(r, "/c", w.opts()).is_ok());
    }
    a.park();
    b.park();
    a.detach();  // leaves while parked
    EXPECT_FALSE(a.parked());
    EXPECT_EQ(w.subscribers("/c"), 2u);
    // a delete ends the parked one too
    ASSERT_TRUE(w.fanout->remove({"/c"}, w.host.clock).is_ok());
    w.deliver();
    EXPECT_EQ(b.ended, end_status::kGone);
    EXPECT_EQ(c.ended, end_status::kGone);
    EXPECT_EQ(w.fanout->channels(), 0u);
}

TEST(FanoutParking, ShutdownEndsParkedSubscribers)
{
    FanoutWorld w;
    Rec a;
    ASSERT_TRUE(w.fanout->join(&a, "/c", w.opts()).is_ok());
    a.park();
    w.fanout->shutdown();
    EXPECT_EQ(a.ended, end_status::kShutdown);
    EXPECT_FALSE(a.joined());
}

TEST(FanoutParking, ParkingWhileTheDispatchVisitsIsSafe)
{
    FanoutWorld w;
    Rec a, b, c;
    for (Rec* r : {&a, &b, &c}) {
        ASSERT_TRUE(w.fanout->join(r, "/c", w.opts()).is_ok());
    }
    // a parks b, the next one the dispatch visits; b is skipped, c is not
    a.action = [&] { b.park(); };
    w.publish("/c", "m", 10);
    w.deliver();
    EXPECT_EQ(a.got.size(), 1u);
    EXPECT_TRUE(b.got.empty());
    EXPECT_EQ(c.got.size(), 1u);
    // the log starts after the message b was passed by in: it does not
    // have it, so b must have had it otherwise (its owner parks after
    // taking its messages)
    EXPECT_TRUE(parked_bodies(b).empty());
}

// A wildcard subscription as WsConnection makes one: each channel it is
// told of joined by a subscriber of its own, from now on for an existing
// channel and from its start for a new one.
class Watcher final : public ChannelWatcher {
public:
    explicit Watcher(Fanout& f) : f_(f) {}
    void on_channel(std::string_view key, bool created) override
    {
        told.emplace_back(std::string(key), created);
        auto rec = std::make_unique<Rec>();
        Fanout::JoinOptions o;
        o.now = f_.now();
        o.existing_only = true;
        if (!created) {
            o.first = FirstMessage{FirstMessage::kNewest};
            o.limit = 0;
        }
        auto j = f_.join(rec.get(), key, o);
        if (j.is_ok()) {
            for (const MsgPtr& m : j->catch_up) {
                rec->got.push_back(m->body);
            }
            recs[std::string(key)] = std::move(rec);
        }
        if (action) {
            action();
        }
    }
    std::vector<std::string> got(const std::string& key)
    {
        auto it = recs.find(key);
        return it == recs.end() ? std::vector<std::string>{} : it->second->got;
    }

    std::vector<std::pair<std::string, bool>> told;
    std::map<std::string, std::unique_ptr<Rec>> recs;
    std::function<void()> action;

private:
    Fanout& f_;
};

using Told = std::vector<std::pair<std::string, bool>>;

TEST(FanoutWatch, ExistingAndNewChannelsOfItsGroupOnly)
{
    FanoutWorld w;
    w.publish("g/metrics.cpu", "old");
    w.publish("g/other", "x");
    w.publish("h/metrics.cpu", "x");  // another group
    Watcher a(*w.fanout);
    ASSERT_TRUE(w.fanout->watch(&a, "g", "metrics.*").is_ok());
    EXPECT_EQ(a.told, (Told{{"g/metrics.cpu", false}}));
    w.publish("g/metrics.cpu", "cpu1");
    w.publish("g/metrics.mem", "mem1");  // created now
    w.publish("h/metrics.disk", "x");
    w.publish("g/metrics.cpu.0", "x");  // one segment too many
    w.publish("g/metricsx", "x");
    w.deliver();
    EXPECT_EQ(a.told,
              (Told{{"g/metrics.cpu", false}, {"g/metrics.mem", true}}));
    EXPECT_EQ(a.got("g/metrics.cpu"), (std::vector<std::string>{"cpu1"}));
    EXPECT_EQ(a.got("g/metrics.mem"), (std::vector<std::string>{"mem1"}));
    w.publish("g/metrics.mem", "mem2");
    w.deliver();
    EXPECT_EQ(a.told.size(), 2u);  // told once per channel
    EXPECT_EQ(a.got("g/metrics.mem"),
              (std::vector<std::string>{"mem1", "mem2"}));
    EXPECT_EQ(w.subscribers("g/metrics.mem"), 1u);
    // after unwatch no channel is announced, and the slot stops watching
    w.fanout->unwatch(&a);
    w.fanout->unwatch(&a);  // idempotent
    w.host.rung = 0;
    w.publish("g/metrics.net", "x");
    EXPECT_EQ(w.host.rung, 0u);
    w.deliver();
    EXPECT_EQ(a.told.size(), 2u);
}

TEST(FanoutWatch, ANewChannelRingsOnlyTheWatchingWorkers)
{
    FanoutWorld w;
    uint32_t slot1 = 0;
    uint32_t slot2 = 0;
    {
        Store::Guard g(w.store);
        slot1 = w.store.claim_slot(g, 2222).value();
        slot2 = w.store.claim_slot(g, 3333).value();
    }
    test::FakeHost host1;
    test::FakeHost host2;
    Fanout f1(w.store, slot1, host1, ws::DeflateOptions{});
    Fanout f2(w.store, slot2, host2, ws::DeflateOptions{});
    Watcher a(f1);
    ASSERT_TRUE(f1.watch(&a, "g", "jobs.**").is_ok());
    EXPECT_TRUE(a.told.empty());
    w.host.rung = 0;
    w.publish("g/jobs.1.progress", "10");
    EXPECT_EQ(w.host.rung, uint64_t{1} << slot1);  // not slot 0, not slot 2
    f1.process_mailbox(w.host.clock);
    f2.process_mailbox(w.host.clock);
    EXPECT_EQ(a.got("g/jobs.1.progress"), (std::vector<std::string>{"10"}));
    EXPECT_EQ(f2.channels(), 0u);
    // a channel created by a subscriber is announced at its first publish
    Rec r;
    auto o = w.opts();
    ASSERT_TRUE(f2.join(&r, "g/jobs.2", o).is_ok());
    f1.process_mailbox(w.host.clock);
    EXPECT_EQ(a.told.size(), 1u);
    w.publish("g/jobs.2", "a");
    f1.process_mailbox(w.host.clock);
    f2.process_mailbox(w.host.clock);
    EXPECT_EQ(a.got("g/jobs.2"), (std::vector<std::string>{"a"}));
    EXPECT_EQ(r.got, (std::vector<std::string>{"a"}));
    f1.unwatch(&a);
    a.recs.clear();
    r.detach();
}

TEST(FanoutWatch, AWatcherMayUnwatchFromItsCall)
{
    FanoutWorld w;
    w.publish("g/a.1", "x");
    w.publish("g/a.2", "x");
    Watcher a(*w.fanout);
    Watcher b(*w.fanout);
    a.action = [&] { w.fanout->unwatch(&a); };
    b.action = [&] { w.fanout->unwatch(&a); };
    ASSERT_TRUE(w.fanout->watch(&a, "g", "a.*").is_ok());
    EXPECT_EQ(a.told.size(), 1u);  // the second channel is not announced
    a.action = nullptr;
    ASSERT_TRUE(w.fanout->watch(&a, "g", "a.*").is_ok());
    ASSERT_TRUE(w.fanout->watch(&b, "g", "a.*").is_ok());
    w.publish("g/a.3", "x");
    w.deliver();  // b's call unwatches a, which is then not called
    EXPECT_EQ(b.told.back(), (std::pair<std::string, bool>{"g/a.3", true}));
    EXPECT_NE(a.told.back().first, "g/a.3");
    EXPECT_EQ(w.fanout->watchers(), 1u);
    w.fanout->unwatch(&b);
}

TEST(FanoutWatch, AWatcherMayOutliveOrPredeceaseTheFanout)
{
    auto w = std::make_unique<FanoutWorld>();
    {
        Watcher gone(*w->fanout);
        ASSERT_TRUE(w->fanout->watch(&gone, "g", "a.*").is_ok());
    }  // unwatched by its destructor
    EXPECT_EQ(w->fanout->watchers(), 0u);
    w->publish("g/a.1", "x");
    w->deliver();  // nobody to tell, no dangling call
    Watcher late(*w->fanout);
    ASSERT_TRUE(w->fanout->watch(&late, "g", "a.*").is_ok());
    late.recs.clear();
    w->fanout.reset();  // the worker's fan-out goes first
    late.unwatch();     // and the watcher after it: no use of the old one
}

TEST(FanoutWatch, AnOverflowedMailboxStillAnnouncesEveryNewChannel)
{
    FanoutWorld w(32 << 20);
    Watcher a(*w.fanout);
    ASSERT_TRUE(w.fanout->watch(&a, "g", "m.*").is_ok());
    for (uint32_t i = 0; i < kMailboxSize + 100; ++i) {
        w.publish("g/m." + std::to_string(i), "x");
    }
    w.deliver();
    EXPECT_EQ(a.told.size(), kMailboxSize + 100);
    EXPECT_EQ(a.recs.size(), kMailboxSize + 100);
    w.fanout->unwatch(&a);
}

TEST(FanoutWatch, ADeadWatcherSlotLeavesNoNoticeBehind)
{
    FanoutWorld w;
    uint32_t slot1 = 0;
    {
        Store::Guard g(w.store);
        slot1 = w.store.claim_slot(g, 2222).value();
    }
    uint64_t before = 0;
    {
        test::FakeHost host1;
        Fanout f1(w.store, slot1, host1, ws::DeflateOptions{});
        Watcher a(f1);
        ASSERT_TRUE(f1.watch(&a, "g", "*").is_ok());
        w.publish("g/x", "1");  // notices in slot 1's mailbox, unread
        w.publish("g/z", "1");
        Store::Guard g(w.store);
        before = w.store.stats(g).channels;
        (void) w.store.release_slot(g, slot1, 0);  // the worker died
    }
    ASSERT_TRUE(w.fanout->remove({"g/x"}, w.host.clock).is_ok());
    {
        Store::Guard g(w.store);
        EXPECT_EQ(w.store.stats(g).channels, before - 1);  // freed
        slot1 = w.store.claim_slot(g, 4444).value();
    }
    // the next worker in that slot is told of its channels
    test::FakeHost host1;
    Fanout f1(w.store, slot1, host1, ws::DeflateOptions{});
    Rec r;
    ASSERT_TRUE(f1.join(&r, "g/z", w.opts()).is_ok());
    w.publish("g/z", "2");
    f1.process_mailbox(w.host.clock);
    EXPECT_EQ(r.got, (std::vector<std::string>{"2"}));
    r.detach();
}

// nchan's channel events: a subscriber of meta/<id> reads them in order,
// each hold is sent once, when it goes
TEST(FanoutEvents, AHeldEventIsSentWhenItsHoldGoes)
{
    FanoutWorld w;
    Rec meta;
    ASSERT_TRUE(w.fanout->join(&meta, "meta/c", w.opts()).is_ok());
    w.fanout->channel_event("c", "subscriber_enqueue c", w.host.clock);
    auto hold = w.fanout->hold_event("c", "subscriber_dequeue c");
    {
        Store::Guard g(w.store);
        EXPECT_EQ(w.store.held_events(g, 0), 1u);
    }
    w.deliver();
    EXPECT_EQ(meta.got, (std::vector<std::string>{"subscriber_enqueue c"}));
    hold.reset();
    w.deliver();
    EXPECT_EQ(meta.got, (std::vector<std::string>{"subscriber_enqueue c",
                                                  "subscriber_dequeue c"}));
    Store::Guard g(w.store);
    EXPECT_EQ(w.store.held_events(g, 0), 0u);
    auto info = w.store.info(g, "meta/c", w.host.clock);
    ASSERT_TRUE(info.is_ok());
    EXPECT_EQ(info->messages, 2u);
}

// the meta channel keeps nchan's 100 events
TEST(FanoutEvents, TheEventsChannelKeepsTheLastHundred)
{
    FanoutWorld w;
    for (int i = 0; i < 150; ++i) {
        w.fanout->channel_event("c", "channel_publish c", w.host.clock);
    }
    Store::Guard g(w.store);
    auto info = w.store.info(g, "meta/c", w.host.clock);
    ASSERT_TRUE(info.is_ok());
    EXPECT_EQ(info->messages, kEventsMaxMessages);
}

// A worker killed (its slot reaped) or exiting with subscribers still held:
// their dequeue events are sent by the release, so enqueues and dequeues
// pair up; the releasing worker is woken for its own meta subscriber.
TEST(FanoutEvents, AReleasedSlotSendsTheEventsItHeld)
{
    FanoutWorld w;
    Rec meta;
    ASSERT_TRUE(w.fanout->join(&meta, "meta/c", w.opts()).is_ok());
    uint32_t slot1 = 0;
    {
        // another worker's two subscribers: one goes, then the worker dies
        Store::Guard g(w.store);
        slot1 = w.store.claim_slot(g, 2222).value();
        auto h1 =
            w.store.hold_event(g, slot1, "meta/c", "subscriber_dequeue c");
        auto h2 =
            w.store.hold_event(g, slot1, "meta/c", "subscriber_dequeue c");
        ASSERT_TRUE(h1.is_ok() && h2.is_ok());
        // slot 0 has the meta subscriber
        EXPECT_EQ(w.store.fire_event(g, slot1, h2.value(), w.host.clock), 1u);
        EXPECT_EQ(w.store.held_events(g, slot1), 1u);
    }
    w.deliver();
    EXPECT_EQ(meta.got.size(), 1u);
    {
        Store::Guard g(w.store);
        EXPECT_FALSE(w.store.reap_slot(g, slot1, 9999, w.host.clock));
        auto reaped = w.store.reap_slot(g, slot1, 2222, w.host.clock);
        ASSERT_TRUE(reaped.has_value());
        EXPECT_EQ(*reaped, 1u);
        EXPECT_EQ(w.store.held_events(g, slot1), 0u);
    }
    w.deliver();
    EXPECT_EQ(meta.got, (std::vector<std::string>{"subscriber_dequeue c",
                                                  "subscriber_dequeue c"}));
}

// With no worker slot the event is kept in the worker and still sent.
TEST(FanoutEvents, WithoutASlotTheHoldKeepsTheEventItself)
{
    FanoutWorld w;
    Rec meta;
    ASSERT_TRUE(w.fanout->join(&meta, "meta/c", w.opts()).is_ok());
    test::FakeHost host1;
    Fanout slotless(w.store, std::nullopt, host1, ws::DeflateOptions{});
    auto h = slotless.hold_event("c", "subscriber_dequeue c");
    h.reset();
    w.deliver();
    EXPECT_EQ(meta.got, (std::vector<std::string>{"subscriber_dequeue c"}));
}

// nchan's subscriber info: every listener of the channel, in every worker,
// answers each request once, on the request's channel
TEST(FanoutInfo, EverySubscriberAnswersOnTheRequestsChannel)
{
    FanoutWorld w;
    uint32_t slot1 = 0;
    {
        Store::Guard g(w.store);
        slot1 = w.store.claim_slot(g, 2222).value();
    }
    test::FakeHost host1;
    Fanout f1(w.store, slot1, host1, ws::DeflateOptions{});
    Rec a;
    Rec b;
    ASSERT_TRUE(w.fanout->join(&a, "/c", w.opts()).is_ok());
    ASSERT_TRUE(f1.join(&b, "/c", w.opts()).is_ok());
    auto la = w.fanout->listen_info({"/c"}, "a's info");
    auto lb = f1.listen_info({"/c"}, "b's info");
    Rec answers;
    uint32_t id = w.fanout->new_info_request();
    ASSERT_TRUE(
        w.fanout->join(&answers, "meta/sr" + std::to_string(id), w.opts())
            .is_ok());
    w.fanout->request_info("/c", id);
    w.deliver();
    f1.process_mailbox(w.host.clock);
    w.deliver();
    std::sort(answers.got.begin(), answers.got.end());
    EXPECT_EQ(answers.got, (std::vector<std::string>{"a's info", "b's info"}));
    // answered once; a listener gone answers no more
    lb.reset();
    uint32_t id2 = w.fanout->new_info_request();
    EXPECT_NE(id2, id);
    Rec answers2;
    ASSERT_TRUE(
        w.fanout->join(&answers2, "meta/sr" + std::to_string(id2), w.opts())
            .is_ok());
    w.fanout->request_info("/c", id2);
    w.deliver();
    f1.process_mailbox(w.host.clock);
    w.deliver();
    EXPECT_EQ(answers2.got, (std::vector<std::string>{"a's info"}));
    EXPECT_EQ(answers.got.size(), 2u);
    b.detach();
}

TEST(ChannelLog, KeepsTheLatestPerKeyAndTrimsWhatEveryReaderHad)
{
    ChannelLog log;
    auto m = [](const std::string& body, const std::string& key) {
        MessageView v;
        v.body = body;
        v.conflation_key = key;
        return std::make_shared<Msg>(v);
    };
    log.append(m("a1", "a"));
    uint64_t cursor = log.last_seq();
    log.append(m("b1", "b"));
    log.append(m("a2", "a"));
    log.append(m("k", ""));
    std::vector<std::string> got;
    EXPECT_TRUE(log.since(0, [&](const MsgPtr& x) { got.push_back(x->body); }));
    EXPECT_EQ(got, (std::vector<std::string>{"b1", "a2", "k"}));
    got.clear();
    log.since(cursor, [&](const MsgPtr& x) { got.push_back(x->body); });
    EXPECT_EQ(got, (std::vector<std::string>{"b1", "a2", "k"}));
    // 100,000 keyed appends stay compact
    for (int i = 0; i < 100000; ++i) {
        log.append(m("v" + std::to_string(i), "k" + std::to_string(i % 5)));
    }
    EXPECT_LE(log.entries(), 2048u);
    EXPECT_EQ(log.live(), 5u + 3u);  // five keys, and a2, b1 and "k"
    // readers past everything: all of it can go
    log.trim(log.last_seq());
    EXPECT_EQ(log.live(), 0u);
    EXPECT_TRUE(log.since(log.last_seq(), [](const MsgPtr&) {}));
}

TEST(ChannelLog, AFullLogDropsTheOldestAndTellsTheReadersItPassed)
{
    ChannelLog log;
    MessageView v;
    v.body = "x";
    auto x = std::make_shared<Msg>(v);
    for (size_t i = 0; i < ChannelLog::kMaxEntries + 10; ++i) {
        log.append(x);
    }
    EXPECT_LE(log.live(), ChannelLog::kMaxEntries);
    size_t n = 0;
    EXPECT_FALSE(log.since(0, [&](const MsgPtr&) { ++n; }));  // a gap
    EXPECT_EQ(n, log.live());
    EXPECT_TRUE(log.since(log.last_seq() - 5, [](const MsgPtr&) {}));
    log.clear();
    EXPECT_EQ(log.live(), 0u);
    EXPECT_FALSE(log.since(0, [](const MsgPtr&) {}));
    // and by bytes: 64 KiB bodies stop at the byte bound
    std::string body(64 * 1024, 'b');
    v.body = body;
    auto big = std::make_shared<Msg>(v);
    for (int i = 0; i < 1000; ++i) {
        log.append(big);
        ASSERT_LE(log.live_bytes(), ChannelLog::kMaxBytes);
    }
    EXPECT_GT(log.live(), 100u);
}

}  // namespace
}  // namespace pulse
