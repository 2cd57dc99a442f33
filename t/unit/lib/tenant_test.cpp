// Per-tenant limits in the store (store_tenants.cpp) and through the
// fan-out: subscriber seats and the publish token bucket.

#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "pulse/fanout.h"
#include "pulse/limits.h"
#include "pulse/store.h"
#include "support/buffer_arena.h"
#include "support/fanout_fixture.h"

namespace pulse {
namespace {

using test::BufferArena;
using test::FanoutWorld;

struct Tenants : ::testing::Test {
    Tenants() : arena(1 << 20), store(arena)
    {
        Store::Guard g(store);
        EXPECT_TRUE(store.open(g, 64, 1).is_ok());
        EXPECT_TRUE(store.claim_slot(g, 100).is_ok());  // slot 0
        EXPECT_TRUE(store.claim_slot(g, 200).is_ok());  // slot 1
    }
    Status sub(std::string_view t, uint32_t slot, uint32_t max)
    {
        Store::Guard g(store);
        return store.tenant_subscribe(g, t, slot, max);
    }
    void unsub(std::string_view t, uint32_t slot)
    {
        Store::Guard g(store);
        store.tenant_unsubscribe(g, t, slot);
    }
    uint32_t count(std::string_view t)
    {
        Store::Guard g(store);
        return store.tenant_subscribers(g, t);
    }
    int64_t take(std::string_view t, TenantRate r, int64_t now_ms)
    {
        Store::Guard g(store);
        auto w = store.tenant_take_publish(g, t, r, now_ms);
        EXPECT_TRUE(w.is_ok());
        return w.is_ok() ? w.value() : -1;
    }
    uint32_t records()
    {
        Store::Guard g(store);
        return store.tenant_count(g);
    }
    void gc(int64_t now)
    {
        Store::Guard g(store);
        store.gc(g, now, 5, 1000);
    }

    BufferArena arena;
    Store store;
};

TEST_F(Tenants, SubscribersAreCountedAcrossSlotsUpToTheLimit)
{
    EXPECT_TRUE(sub("acme", 0, 3).is_ok());
    EXPECT_TRUE(sub("acme", 1, 3).is_ok());
    EXPECT_TRUE(sub("acme", 1, 3).is_ok());
    Status full = sub("acme", 0, 3);
    EXPECT_EQ(full.code(), Code::kForbidden);
    EXPECT_NE(full.message().find("pulse_max_tenant_subscribers 3"),
              std::string::npos);
    EXPECT_EQ(count("acme"), 3u);
    // another tenant is not touched
    EXPECT_TRUE(sub("globex", 0, 1).is_ok());
    EXPECT_EQ(sub("globex", 1, 1).code(), Code::kForbidden);
    // one leaves: one more may come
    unsub("acme", 1);
    EXPECT_TRUE(sub("acme", 0, 3).is_ok());
    // 0: counted, never refused
    for (int i = 0; i < 10; ++i) {
        EXPECT_TRUE(sub("acme", 0, 0).is_ok());
    }
    EXPECT_EQ(count("acme"), 13u);
    // never below zero
    unsub("nobody", 0);
    unsub("globex", 1);
    EXPECT_EQ(count("globex"), 1u);
}

TEST_F(Tenants, ADeadWorkersSubscribersGoWithItsSlot)
{
    EXPECT_TRUE(sub("acme", 0, 2).is_ok());
    EXPECT_TRUE(sub("acme", 1, 2).is_ok());
    EXPECT_EQ(sub("acme", 1, 2).code(), Code::kForbidden);
    {
        Store::Guard g(store);
        EXPECT_TRUE(store.reap_slot(g, 1, 200, 0).has_value());
    }
    EXPECT_EQ(count("acme"), 1u);
    EXPECT_TRUE(sub("acme", 0, 2).is_ok());
}

TEST_F(Tenants, TheBucketAllowsABurstThenTheRate)
{
    TenantRate r{2000, 3};  // 2 per second, burst 3
    int64_t t0 = 1'000'000;
    EXPECT_EQ(take("acme", r, t0), 0);
    EXPECT_EQ(take("acme", r, t0), 0);
    EXPECT_EQ(take("acme", r, t0), 0);
    // empty: a publish comes back in 0.5 s, said as 1 whole second
    EXPECT_EQ(take("acme", r, t0), 1);
    EXPECT_EQ(take("acme", r, t0 + 499), 1);
    EXPECT_EQ(take("acme", r, t0 + 500), 0);
    EXPECT_EQ(take("acme", r, t0 + 500), 1);
    // another tenant has its own bucket
    EXPECT_EQ(take("globex", r, t0 + 500), 0);
    // a long pause fills it to the burst, not more
    int64_t later = t0 + 3'600'000;
    for (int i = 0; i < 3; ++i) {
        EXPECT_EQ(take("acme", r, later), 0) << i;
    }
    EXPECT_EQ(take("acme", r, later), 1);
    // no rate: always taken
    EXPECT_EQ(take("acme", TenantRate{0, 1}, later), 0);
}

TEST_F(Tenants, ASlowRateSaysHowLongToWait)
{
    TenantRate r{100, 1};  // one per 10 s
    EXPECT_EQ(take("acme", r, 5'000), 0);
    EXPECT_EQ(take("acme", r, 5'000), 10);
    EXPECT_EQ(take("acme", r, 11'000), 4);
    EXPECT_EQ(take("acme", r, 15'000), 0);
    // time going backwards (another worker's clock) takes nothing extra
    EXPECT_EQ(take("acme", r, 14'000), 10);
}

TEST_F(Tenants, IdleRecordsAreCollected)
{
    EXPECT_TRUE(sub("acme", 0, 0).is_ok());
    EXPECT_EQ(take("globex", TenantRate{1000, 2}, 10'000), 0);
    EXPECT_EQ(records(), 2u);
    gc(10);  // globex's bucket is full again only at 11 s
    EXPECT_EQ(records(), 2u);
    gc(11);
    EXPECT_EQ(records(), 1u);  // acme still has a subscriber
    unsub("acme", 0);
    gc(12);
    EXPECT_EQ(records(), 0u);
    // and a tenant that comes back starts afresh
    EXPECT_TRUE(sub("acme", 0, 1).is_ok());
    EXPECT_EQ(count("acme"), 1u);
}

TEST_F(Tenants, AFullZoneIsSaid)
{
    BufferArena small(1 << 20);
    Store s(small);
    Store::Guard g(s);
    ASSERT_TRUE(s.open(g, 1, 1).is_ok());
    Status last;
    for (int i = 0; i < 100000 && last.is_ok(); ++i) {
        last = s.tenant_subscribe(g, "t" + std::to_string(i), 0, 0);
    }
    EXPECT_EQ(last.code(), Code::kNoMemory);
}

TEST(FanoutTenants, ASeatHoldsAPlaceUntilItGoes)
{
    FanoutWorld w;
    auto a = w.fanout->seat("acme", 2);
    auto b = w.fanout->seat("acme", 2);
    ASSERT_TRUE(a.is_ok() && b.is_ok());
    auto c = w.fanout->seat("acme", 2);
    ASSERT_FALSE(c.is_ok());
    EXPECT_EQ(c.status().code(), Code::kForbidden);
    a.value().reset();
    EXPECT_TRUE(w.fanout->seat("acme", 2).is_ok());  // and goes at once
    Store::Guard g(w.store);
    EXPECT_EQ(w.store.tenant_subscribers(g, "acme"), 1u);
}

TEST(FanoutTenants, NoSlotNoSeat)
{
    FanoutWorld w(1 << 20, std::nullopt);
    EXPECT_EQ(w.fanout->seat("acme", 0).status().code(), Code::kAgain);
}

TEST(FanoutTenants, PublishesPastTheRateAre429WithRetryAfter)
{
    FanoutWorld w;
    PublishSpec spec;
    spec.tenant_rate = TenantRate{1000, 2};
    PublishInput in{"m", "", "", {}, "acme", {}};
    EXPECT_TRUE(w.fanout->publish({"/c"}, spec, in, w.host.clock).is_ok());
    EXPECT_TRUE(w.fanout->publish({"/c", "/d"}, spec, in, w.host.clock)
                    .is_ok());  // a multi-channel publish is one
    auto third = w.fanout->publish({"/c"}, spec, in, w.host.clock);
    ASSERT_FALSE(third.is_ok());
    EXPECT_EQ(third.status().code(), Code::kTooManyRequests);
    EXPECT_EQ(third.status().retry_after(), 1);
    EXPECT_EQ(http_status(third.status().code()), 429);
    // nothing was stored by the refused one
    {
        Store::Guard g(w.store);
        EXPECT_EQ(w.store.info(g, "/c", w.host.clock)->messages, 2u);
    }
    // without a tenant, or without a rate, nothing is limited
    PublishInput anon{"m", "", "", {}, "", {}};
    EXPECT_TRUE(w.fanout->publish({"/c"}, spec, anon, w.host.clock).is_ok());
    EXPECT_TRUE(
        w.fanout->publish({"/c"}, PublishSpec{}, in, w.host.clock).is_ok());
    // a second later one more goes
    w.host.clock += 1;
    EXPECT_TRUE(w.fanout->publish({"/c"}, spec, in, w.host.clock).is_ok());
}

}  // namespace
}  // namespace pulse

namespace pulse {
namespace {

TEST(TenantRateConfig, RatesAsLimitReqSpellsThem)
{
    auto r = parse_tenant_rate("10r/s", "");
    ASSERT_TRUE(r.is_ok());
    EXPECT_EQ(r->per_second_milli, 10000u);
    EXPECT_EQ(r->burst, 10u);  // a second's worth
    r = parse_tenant_rate("30r/m", "burst=5");
    ASSERT_TRUE(r.is_ok());
    EXPECT_EQ(r->per_second_milli, 500u);
    EXPECT_EQ(r->burst, 5u);
    r = parse_tenant_rate("1r/m", "");
    ASSERT_TRUE(r.is_ok());
    EXPECT_EQ(r->per_second_milli, 16u);
    EXPECT_EQ(r->burst, 1u);
    r = parse_tenant_rate("off", "");
    ASSERT_TRUE(r.is_ok());
    EXPECT_EQ(r->per_second_milli, 0u);
}

TEST(TenantRateConfig, BadSpellingsAreSaid)
{
    for (auto [rate, burst] :
         std::vector<std::pair<const char*, const char*>>{{"10", ""},
                                                          {"r/s", ""},
                                                          {"0r/s", ""},
                                                          {"-1r/s", ""},
                                                          {"10r/h", ""},
                                                          {"1.5r/s", ""},
                                                          {"99999999r/s", ""},
                                                          {"10r/s", "burst="},
                                                          {"10r/s", "burst=0"},
                                                          {"10r/s", "burst=x"},
                                                          {"10r/s", "nodelay"},
                                                          {"off", "burst=2"}})
    {
        auto r = parse_tenant_rate(rate, burst);
        ASSERT_FALSE(r.is_ok()) << rate << " " << burst;
        EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
        EXPECT_EQ(r.status().message().find("pulse_tenant_publish_rate: "), 0u);
    }
}

}  // namespace
}  // namespace pulse
