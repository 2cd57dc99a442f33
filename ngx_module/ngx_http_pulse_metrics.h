#pragma once

// pulse_metrics in the glue (docs/metrics.md): where the worker's counts
// are taken (lib/pulse/metrics.h holds them), and the location that
// serves their sum. Nothing is counted unless some location has
// pulse_metrics.

#include "ngx.h"

#include <cstdint>

#include "pulse/metrics.h"
#include "pulse/transport.h"

namespace pulse::ngx {

/// This worker's metrics, or nullptr when pulse_metrics is off.
metrics::Block* metrics_block();
/// CLOCK_MONOTONIC in nanoseconds.
int64_t mono_ns();
metrics::Tp metrics_transport(Transport t);

/// A message written to a subscriber: its bytes as framed, and the
/// latency since its publish (`published_ns` 0: not measured).
inline void count_delivery(metrics::Block* b, metrics::Tp tp, size_t bytes,
                           int64_t published_ns, int64_t now_ns)
{
    auto i = static_cast<size_t>(tp);
    b->counters.deliveries[i]++;
    b->counters.bytes[i] += bytes;
    if (published_ns != 0 && now_ns >= published_ns) {
        b->counters.latency.observe(
            static_cast<uint64_t>(now_ns - published_ns),
            metrics::kLatencyBounds);
    }
}

void count_denial(metrics::Denial d);
/// A token refused (jwt::Refusal, as an int to keep jwt.h out of here).
void count_token_denial(int refusal);

/// One open connection of a transport, counted while it lives.
class ConnectionGauge {
public:
    explicit ConnectionGauge(metrics::Tp tp) : tp_(tp)
    {
        if (metrics::Block* b = metrics_block()) {
            b->gauges.connections[static_cast<size_t>(tp)]++;
            counted_ = true;
        }
    }
    ConnectionGauge(const ConnectionGauge&) = delete;
    ConnectionGauge& operator=(const ConnectionGauge&) = delete;
    ConnectionGauge(ConnectionGauge&&) = delete;
    ConnectionGauge& operator=(ConnectionGauge&&) = delete;
    ~ConnectionGauge()
    {
        metrics::Block* b = counted_ ? metrics_block() : nullptr;
        if (b != nullptr && b->gauges.connections[static_cast<size_t>(tp_)]) {
            b->gauges.connections[static_cast<size_t>(tp_)]--;
        }
    }
    metrics::Tp transport() const { return tp_; }

private:
    metrics::Tp tp_;
    bool counted_ = false;
};

}  // namespace pulse::ngx
