// The store's tenant table (store.h, "tenants"): per-tenant subscriber
// counts and publish token buckets, in the zone so that every worker sees
// the same ones.

#include <algorithm>
#include <cstring>
#include <string>

#include "pulse/store.h"

namespace pulse {

namespace {

constexpr int64_t kUnit = 1000;  // tokens per publish

std::string_view name_of(const Tenant* t)
{
    return std::string_view(reinterpret_cast<const char*>(t + 1), t->key_len);
}

uint32_t total(const Tenant* t)
{
    uint32_t n = 0;
    for (uint32_t s : t->subs) {
        n += s;
    }
    return n;
}

}  // namespace

Tenant* Store::find_tenant(std::string_view name, uint32_t hash)
{
    uint32_t* buckets = ShmRef<uint32_t>{hdr_->tenant_buckets}.get(base_);
    for (uint32_t off = buckets[hash % kTenantBuckets]; off != 0;) {
        auto* t = ShmRef<Tenant>{off}.get(base_);
        if (t->hash == hash && name_of(t) == name) {
            return t;
        }
        off = t->next_in_bucket;
    }
    return nullptr;
}

Tenant* Store::tenant(std::string_view name)
{
    uint32_t hash = hash_key(name);
    if (Tenant* t = find_tenant(name, hash)) {
        return t;
    }
    auto* t =
        static_cast<Tenant*>(arena_.alloc_locked(sizeof(Tenant) + name.size()));
    if (t == nullptr) {
        return nullptr;
    }
    std::memset(static_cast<void*>(t), 0, sizeof(Tenant));
    std::memcpy(reinterpret_cast<char*>(t + 1), name.data(), name.size());
    t->key_len = static_cast<uint32_t>(name.size());
    t->hash = hash;
    t->tokens = -1;  // full, at the first take's burst
    uint32_t* buckets = ShmRef<uint32_t>{hdr_->tenant_buckets}.get(base_);
    uint32_t& head = buckets[hash % kTenantBuckets];
    t->next_in_bucket = head;
    head = ShmRef<Tenant>::of(base_, t).off;
    hdr_->tenants++;
    return t;
}

Status Store::tenant_subscribe(const Guard&, std::string_view name,
                               uint32_t slot, uint32_t max)
{
    if (slot >= kMaxSlots) {
        return Status(Code::kInvalidArgument, "no worker slot");
    }
    Tenant* t = tenant(name);
    if (t == nullptr) {
        return Status(Code::kNoMemory, "no room for the tenant's record");
    }
    if (max != 0 && total(t) >= max) {
        return Status(Code::kForbidden,
                      "Tenant subscriber limit reached "
                      "(pulse_max_tenant_subscribers "
                          + std::to_string(max) + ").");
    }
    t->subs[slot]++;
    return Status::ok();
}

void Store::tenant_unsubscribe(const Guard&, std::string_view name,
                               uint32_t slot)
{
    Tenant* t = find_tenant(name, hash_key(name));
    if (t != nullptr && slot < kMaxSlots && t->subs[slot] > 0) {
        t->subs[slot]--;
    }
}

uint32_t Store::tenant_subscribers(const Guard&, std::string_view name)
{
    Tenant* t = find_tenant(name, hash_key(name));
    return t == nullptr ? 0 : total(t);
}

uint32_t Store::tenant_count(const Guard&) const
{
    return hdr_->tenants;
}

Result<int64_t> Store::tenant_take_publish(const Guard&, std::string_view name,
                                           const TenantRate& rate,
                                           int64_t now_ms)
{
    if (rate.per_second_milli == 0) {
        return int64_t{0};
    }
    Tenant* t = tenant(name);
    if (t == nullptr) {
        return Status(Code::kNoMemory, "no room for the tenant's record");
    }
    auto cap = static_cast<int64_t>(rate.burst == 0 ? 1 : rate.burst) * kUnit;
    auto per_s = static_cast<int64_t>(rate.per_second_milli);  // tokens/s
    if (t->tokens < 0 || t->tokens > cap) {
        t->tokens = cap;  // new, or the location's burst went down
    } else if (now_ms > t->refilled_ms) {
        int64_t elapsed = now_ms - t->refilled_ms;
        // elapsed * per_s / 1000 without overflow: past the time to fill
        // up, the bucket is full
        int64_t fill_ms = (cap - t->tokens) * 1000 / per_s + 1;
        t->tokens = elapsed >= fill_ms
                        ? cap
                        : std::min(cap, t->tokens + elapsed * per_s / 1000);
    }
    t->refilled_ms = std::max(t->refilled_ms, now_ms);
    int64_t wait = 0;
    if (t->tokens >= kUnit) {
        t->tokens -= kUnit;
    } else {
        int64_t wait_ms = ((kUnit - t->tokens) * 1000 + per_s - 1) / per_s;
        wait = std::max<int64_t>(1, (wait_ms + 999) / 1000);
    }
    t->full_at_ms =
        t->refilled_ms + ((cap - t->tokens) * 1000 + per_s - 1) / per_s;
    return wait;
}

void Store::tenant_count_publish(const Guard&, std::string_view name)
{
    if (Tenant* t = tenant(name)) {
        t->published++;
    }
}

void Store::release_tenant_slot(uint32_t slot)
{
    uint32_t* buckets = ShmRef<uint32_t>{hdr_->tenant_buckets}.get(base_);
    for (uint32_t b = 0; b < kTenantBuckets; ++b) {
        for (uint32_t off = buckets[b]; off != 0;) {
            auto* t = ShmRef<Tenant>{off}.get(base_);
            t->subs[slot] = 0;
            off = t->next_in_bucket;
        }
    }
}

void Store::tenant_rows(std::vector<metrics::TenantRow>* rows)
{
    uint32_t* buckets = ShmRef<uint32_t>{hdr_->tenant_buckets}.get(base_);
    for (uint32_t b = 0; b < kTenantBuckets; ++b) {
        for (uint32_t off = buckets[b]; off != 0;) {
            auto* t = ShmRef<Tenant>{off}.get(base_);
            rows->push_back(metrics::TenantRow{std::string(name_of(t)),
                                               total(t), t->published});
            off = t->next_in_bucket;
        }
    }
}

// A record with no subscribers and a full bucket says nothing: it goes.
void Store::gc_tenants(int64_t now, uint32_t max_buckets)
{
    uint32_t* buckets = ShmRef<uint32_t>{hdr_->tenant_buckets}.get(base_);
    uint32_t n = max_buckets < kTenantBuckets ? max_buckets : kTenantBuckets;
    for (uint32_t i = 0; i < n; ++i) {
        uint32_t b = hdr_->tenant_gc_cursor++ % kTenantBuckets;
        uint32_t* link = &buckets[b];
        while (*link != 0) {
            auto* t = ShmRef<Tenant>{*link}.get(base_);
            if (total(t) == 0 && now * 1000 >= t->full_at_ms) {
                *link = t->next_in_bucket;
                arena_.free_locked(t);
                hdr_->tenants--;
            } else {
                link = &t->next_in_bucket;
            }
        }
    }
}

}  // namespace pulse
