// pulse_metrics' core (lib/pulse/metrics.h): histograms, the tenant bound,
// the exposition's text, and the zone's sum over worker slots, with the
// counters of a worker that went kept.

#include "pulse/metrics.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "pulse/store.h"
#include "support/buffer_arena.h"
#include "support/fanout_fixture.h"

namespace pulse {
namespace {

using metrics::Block;
using metrics::Ended;
using metrics::Histogram;
using metrics::kLatencyBounds;
using metrics::kQueueBounds;
using metrics::Snapshot;
using metrics::TenantRow;
using metrics::Tp;

size_t at(Tp t)
{
    return static_cast<size_t>(t);
}

TEST(Histogram, BucketsAreUpperBoundsInclusive)
{
    Histogram<kQueueBounds.size()> h;
    h.observe(0, kQueueBounds);         // le 0
    h.observe(1024, kQueueBounds);      // le 1024
    h.observe(1025, kQueueBounds);      // le 4096
    h.observe(1u << 30, kQueueBounds);  // +Inf
    EXPECT_EQ(h.buckets[0], 1u);
    EXPECT_EQ(h.buckets[1], 1u);
    EXPECT_EQ(h.buckets[2], 1u);
    EXPECT_EQ(h.buckets[kQueueBounds.size()], 1u);
    EXPECT_EQ(h.count, 4u);
    EXPECT_EQ(h.sum, 0u + 1024 + 1025 + (1u << 30));
    Histogram<kQueueBounds.size()> twice = h;
    twice.add(h);
    EXPECT_EQ(twice.count, 8u);
    EXPECT_EQ(twice.buckets[2], 2u);
}

TEST(Histogram, LatencyFrom50MicrosecondsTo10Seconds)
{
    EXPECT_EQ(kLatencyBounds.front(), 50'000u);
    EXPECT_EQ(kLatencyBounds.back(), 10'000'000'000u);
    Histogram<kLatencyBounds.size()> h;
    h.observe(49'999, kLatencyBounds);
    h.observe(10'000'000'001, kLatencyBounds);
    EXPECT_EQ(h.buckets.front(), 1u);
    EXPECT_EQ(h.buckets.back(), 1u);
}

TEST(Counters, EndingsByStatus)
{
    metrics::Counters c;
    for (int s : {410, 408, 401, 503, 410, 403, 200}) {
        c.ended_with(s);
    }
    EXPECT_EQ(c.ended[static_cast<size_t>(Ended::kGone)], 2u);
    EXPECT_EQ(c.ended[static_cast<size_t>(Ended::kTimeout)], 1u);
    EXPECT_EQ(c.ended[static_cast<size_t>(Ended::kExpired)], 1u);
    EXPECT_EQ(c.ended[static_cast<size_t>(Ended::kShutdown)], 1u);
    EXPECT_EQ(c.ended[static_cast<size_t>(Ended::kSlow)], 0u);
}

TEST(TenantLabels, BoundedWithTheRestAsOther)
{
    std::vector<TenantRow> rows = {
        {"small", 1, 5}, {"big", 9, 0}, {"mid", 4, 1}, {"tie", 4, 7}};
    metrics::bound_tenants(&rows, 2);
    ASSERT_EQ(rows.size(), 3u);
    EXPECT_EQ(rows[0].name, "big");
    EXPECT_EQ(rows[1].name, "tie");  // 4 subscribers, more publishes
    EXPECT_EQ(rows[2].name, "other");
    EXPECT_EQ(rows[2].subscribers, 5u);
    EXPECT_EQ(rows[2].published, 6u);
    std::vector<TenantRow> few = {{"b", 1, 1}, {"a", 2, 2}};
    metrics::bound_tenants(&few, 5);
    ASSERT_EQ(few.size(), 2u);  // no `other` when all fit
    EXPECT_EQ(few[0].name, "a");
    std::vector<TenantRow> none = {{"b", 1, 1}};
    metrics::bound_tenants(&none, 0);
    ASSERT_EQ(none.size(), 1u);
    EXPECT_EQ(none[0].name, "other");
}

TEST(Render, PrometheusTextWithCumulativeBuckets)
{
    Snapshot s;
    s.workers = 2;
    s.published = 7;
    s.sum.counters.deliveries[at(Tp::kWebSocket)] = 3;
    s.sum.counters.latency.observe(40'000, kLatencyBounds);
    s.sum.counters.latency.observe(200'000, kLatencyBounds);
    s.sum.gauges.connections[at(Tp::kEventSource)] = 4;
    s.tenants = {{"acme", 2, 5}};
    std::string t = metrics::render(s);
    auto has = [&](const std::string& line) {
        return t.find("\n" + line + "\n") != std::string::npos;
    };
    EXPECT_TRUE(has("# TYPE pulse_deliveries_total counter"));
    EXPECT_TRUE(has("pulse_deliveries_total{transport=\"websocket\"} 3"));
    EXPECT_TRUE(has("pulse_deliveries_total{transport=\"longpoll\"} 0"));
    EXPECT_TRUE(has("pulse_connections{transport=\"eventsource\"} 4"));
    EXPECT_TRUE(has("pulse_messages_published_total 7"));
    EXPECT_TRUE(has("pulse_workers 2"));
    EXPECT_TRUE(has("pulse_delivery_latency_seconds_bucket{le=\"5e-05\"} 1"));
    EXPECT_TRUE(has("pulse_delivery_latency_seconds_bucket{le=\"0.00025\"} 2"));
    EXPECT_TRUE(has("pulse_delivery_latency_seconds_bucket{le=\"+Inf\"} 2"));
    EXPECT_TRUE(has("pulse_delivery_latency_seconds_count 2"));
    EXPECT_TRUE(has("pulse_delivery_latency_seconds_sum 0.00024"));
    EXPECT_TRUE(has("pulse_tenant_subscribers{tenant=\"acme\"} 2"));
    EXPECT_TRUE(
        has("pulse_tenant_messages_published_total{tenant=\"acme\"} 5"));
    // each family's HELP and TYPE once, before its samples
    EXPECT_EQ(t.rfind("# TYPE pulse_connections gauge"),
              t.find("# TYPE pulse_connections gauge"));
    EXPECT_LT(t.find("# TYPE pulse_connections"), t.find("pulse_connections{"));
    EXPECT_EQ(t.back(), '\n');
    Snapshot none;
    EXPECT_EQ(metrics::render(none).find("pulse_tenant"), std::string::npos);
}

struct ZoneMetrics : ::testing::Test {
    ZoneMetrics() : arena(1 << 20), store(arena)
    {
        Store::Guard g(store);
        EXPECT_TRUE(store.open(g, 64, 1).is_ok());
        EXPECT_TRUE(store.claim_slot(g, 100).is_ok());  // slot 0
        EXPECT_TRUE(store.claim_slot(g, 200).is_ok());  // slot 1
    }
    Snapshot snap()
    {
        Store::Guard g(store);
        return store.metrics(g);
    }
    void put(uint32_t slot, const Block& b)
    {
        Store::Guard g(store);
        store.put_metrics(g, slot, b);
    }
    test::BufferArena arena;
    Store store;
};

TEST_F(ZoneMetrics, SumsTheWorkersThatReported)
{
    EXPECT_EQ(snap().workers, 0u);
    Block a;
    a.counters.deliveries[at(Tp::kEventSource)] = 10;
    a.gauges.connections[at(Tp::kEventSource)] = 3;
    Block b;
    b.counters.deliveries[at(Tp::kEventSource)] = 5;
    b.gauges.connections[at(Tp::kEventSource)] = 2;
    put(0, a);
    put(1, b);
    put(7, b);  // a free slot reports nothing
    Snapshot s = snap();
    EXPECT_EQ(s.workers, 2u);
    EXPECT_EQ(s.sum.counters.deliveries[at(Tp::kEventSource)], 15u);
    EXPECT_EQ(s.sum.gauges.connections[at(Tp::kEventSource)], 5u);
    // a report replaces the last one
    a.counters.deliveries[at(Tp::kEventSource)] = 11;
    put(0, a);
    EXPECT_EQ(snap().sum.counters.deliveries[at(Tp::kEventSource)], 16u);
}

TEST_F(ZoneMetrics, AWorkerGoneKeepsItsCountersNotItsGauges)
{
    Block a;
    a.counters.deliveries[at(Tp::kWebSocket)] = 10;
    a.counters.latency.observe(1000, kLatencyBounds);
    a.gauges.connections[at(Tp::kWebSocket)] = 3;
    put(0, a);
    {
        Store::Guard g(store);
        (void) store.release_slot(g, 0, 0);
        // its successor starts from nothing
        EXPECT_TRUE(store.claim_slot(g, 300).is_ok());
    }
    Snapshot s = snap();
    EXPECT_EQ(s.workers, 0u);
    EXPECT_EQ(s.sum.counters.deliveries[at(Tp::kWebSocket)], 10u);
    EXPECT_EQ(s.sum.counters.latency.count, 1u);
    EXPECT_EQ(s.sum.gauges.connections[at(Tp::kWebSocket)], 0u);
    Block n;
    n.counters.deliveries[at(Tp::kWebSocket)] = 1;
    put(0, n);
    EXPECT_EQ(snap().sum.counters.deliveries[at(Tp::kWebSocket)], 11u);
    // a dead worker's slot, reaped, is retired the same way
    {
        Store::Guard g(store);
        EXPECT_TRUE(store.reap_slot(g, 0, 300, 0).has_value());
    }
    EXPECT_EQ(snap().sum.counters.deliveries[at(Tp::kWebSocket)], 11u);
}

TEST_F(ZoneMetrics, TenantPublishesAndSubscribers)
{
    {
        Store::Guard g(store);
        store.tenant_count_publish(g, "acme");
        store.tenant_count_publish(g, "acme");
        EXPECT_TRUE(store.tenant_subscribe(g, "acme", 1, 0).is_ok());
        EXPECT_TRUE(store.tenant_subscribe(g, "zeta", 0, 0).is_ok());
    }
    Snapshot s = snap();
    metrics::bound_tenants(&s.tenants, 10);
    ASSERT_EQ(s.tenants.size(), 2u);
    EXPECT_EQ(s.tenants[0].name, "acme");
    EXPECT_EQ(s.tenants[0].published, 2u);
    EXPECT_EQ(s.tenants[0].subscribers, 1u);
    EXPECT_EQ(s.tenants[1].name, "zeta");
    EXPECT_EQ(s.tenants[1].published, 0u);
}

TEST(FanoutMetrics, ResumesGapsEvictionsAndPublishTime)
{
    test::FanoutWorld w;
    std::vector<MsgId> ids;
    for (int i = 0; i < 5; ++i) {
        w.publish("/c", "m" + std::to_string(i), 2);
        Store::Guard g(w.store);
        ids.push_back(w.store.info(g, "/c", w.host.clock)->last_id);
    }
    struct Sink final : Subscriber {
        void on_messages(const std::vector<MsgPtr>&) override {}
        void on_end(int) override {}
        void on_failure() noexcept override {}
    } a, b, c;
    auto o = w.opts();
    ASSERT_TRUE(w.fanout->join(&a, "/c", o).is_ok());  // no id: no resume
    o.after = ids[0];
    ASSERT_TRUE(w.fanout->join(&b, "/c", o).is_ok());  // evicted: a gap
    o.after = ids[3];
    auto j = w.fanout->join(&c, "/c", o);
    ASSERT_TRUE(j.is_ok());
    const metrics::Counters& m = w.fanout->metrics().counters;
    EXPECT_EQ(m.resumes, 2u);
    EXPECT_EQ(m.gaps, 1u);
    Store::Guard g(w.store);
    EXPECT_EQ(w.store.metrics(g).evicted, 3u);
    EXPECT_EQ(w.store.metrics(g).published, 5u);
    // FakeHost measures no publish time: messages carry 0
    ASSERT_EQ(j->catch_up.size(), 1u);
    EXPECT_EQ(j->catch_up[0]->published_ns, 0);
}

}  // namespace
}  // namespace pulse
