#pragma once

// pulse_metrics (docs/metrics.md): what a worker counts, how the counts of
// every worker are kept in the shared zone, and the Prometheus text
// exposition of their sum.
//
// A worker counts into its own plain Block, with no lock and no shared
// write per delivery; about once a second, and at a scrape by the worker
// that serves it, the Block is copied into the worker's slot of the zone
// (Store::put_metrics). A scrape sums the slots. The counters of a worker
// that is gone (a reload, a crash) are folded into the zone's `retired`
// counters when its slot is released, so counters never go backwards;
// its gauges go with it.

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "pulse/jwt.h"

namespace pulse::metrics {

/// Subscriber transports, as labels (nchan's subscriber type names).
enum class Tp : uint8_t {
    kEventSource,
    kLongPoll,
    kIntervalPoll,
    kWebSocket,
    kChunked,
    kMultipart,
    kRawStream,
};
constexpr size_t kTransports = 7;
std::string_view transport_label(Tp t);

/// Why a request was refused by auth (label `reason`): first the token
/// refusals of lib/pulse/jwt.h (token_denial), then a channel outside the
/// token's ACL, a pulse_authorize_request refusal, a tenant limit.
enum class Denial : uint8_t {
    kChannel = static_cast<uint8_t>(jwt::Refusal::kBadAcl),
    kHook,         // pulse_authorize_request refused
    kTenantLimit,  // pulse_max_tenant_subscribers / pulse_tenant_publish_rate
};
constexpr size_t kDenials = static_cast<size_t>(Denial::kTenantLimit) + 1;
/// A token's refusal (not kNone) as a Denial.
constexpr Denial token_denial(jwt::Refusal r)
{
    return static_cast<Denial>(static_cast<int>(r) - 1);
}
/// The token refusal's name (jwt::refusal_name), or "channel",
/// "authorize_request", "tenant_limit".
std::string_view denial_label(Denial d);

/// Why the server ended a subscriber (label `reason`).
enum class Ended : uint8_t {
    kSlow,      // past pulse_subscriber_max_buffered: closed
    kTimeout,   // pulse_subscriber_timeout
    kGone,      // the channel was deleted
    kExpired,   // its token expired
    kShutdown,  // the worker stopped
};
constexpr size_t kEndings = 5;
std::string_view ended_label(Ended e);

/// Publish-to-socket-write latency buckets, upper bounds in nanoseconds:
/// 50 µs to 10 s.
constexpr std::array<uint64_t, 17> kLatencyBounds = {
    50'000,        100'000,       250'000,     500'000,       1'000'000,
    2'500'000,     5'000'000,     10'000'000,  25'000'000,    50'000'000,
    100'000'000,   250'000'000,   500'000'000, 1'000'000'000, 2'500'000'000,
    5'000'000'000, 10'000'000'000};
/// Unsent bytes per subscriber connection, upper bounds.
constexpr std::array<uint64_t, 8> kQueueBounds = {
    0, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304};

/// A histogram's counts per bucket (the last one: above every bound), its
/// sum and count; plain data.
template <size_t N>
struct Histogram {
    std::array<uint64_t, N + 1> buckets{};
    uint64_t sum = 0;
    uint64_t count = 0;

    void observe(uint64_t v, const std::array<uint64_t, N>& bounds)
    {
        size_t i = 0;
        while (i < N && v > bounds[i]) {
            ++i;
        }
        ++buckets[i];
        sum += v;
        ++count;
    }
    void add(const Histogram& o)
    {
        for (size_t i = 0; i <= N; ++i) {
            buckets[i] += o.buckets[i];
        }
        sum += o.sum;
        count += o.count;
    }
};

/// What only goes up; kept when a worker goes.
struct Counters {
    std::array<uint64_t, kTransports> deliveries{};  // messages written
    std::array<uint64_t, kTransports> bytes{};       // their bytes
    Histogram<kLatencyBounds.size()> latency;        // ns, per delivery
    uint64_t resumes = 0;  // subscribes with a message id to resume from
    uint64_t gaps = 0;     // of which the id was older than the buffer
    /// Pacing (lib/pulse/pacing.h): messages superseded by a newer one of
    /// their key, dropped by the drop-oldest policy, and subscribers closed
    /// for passing their queue's bound.
    uint64_t conflated = 0;
    uint64_t dropped = 0;
    uint64_t overflow_closes = 0;
    std::array<uint64_t, kDenials> denials{};
    std::array<uint64_t, kEndings> ended{};

    void add(const Counters& o);
    /// A subscriber ended by the server with `status` (end_status in
    /// lib/pulse/fanout.h: 410, 408, 401, 503); other statuses are not
    /// endings of this kind.
    void ended_with(int status);
};

/// What is now; gone with its worker.
struct Gauges {
    std::array<uint64_t, kTransports> connections{};
    Histogram<kQueueBounds.size()> queue;  // bytes, over connections
};

/// One worker's metrics, as its slot in the zone holds them.
struct Block {
    Counters counters;
    Gauges gauges;
};

/// A tenant's line: zone-wide subscribers and publishes.
struct TenantRow {
    std::string name;
    uint64_t subscribers = 0;
    uint64_t published = 0;
};

/// Everything a scrape shows.
struct Snapshot {
    Block sum;  // every live worker's, plus the retired counters
    uint32_t workers = 0;
    uint64_t published = 0;  // messages accepted, zone-wide
    uint64_t channels = 0;
    uint64_t subscribers = 0;  // channel memberships, zone-wide
    uint64_t stored_messages = 0;
    uint64_t evicted = 0;  // messages pushed out of a full buffer
    uint64_t shm_used = 0;
    uint64_t shm_capacity = 0;
    std::vector<TenantRow> tenants;
};

/// Folds all but the `keep` tenants with the most subscribers (then the
/// most publishes, then by name) into one row named `other`, so a
/// label's cardinality stays bounded; sorts by name with `other` last.
void bound_tenants(std::vector<TenantRow>* rows, size_t keep);

/// The Prometheus text exposition (version 0.0.4) of `s`.
std::string render(const Snapshot& s);

}  // namespace pulse::metrics
