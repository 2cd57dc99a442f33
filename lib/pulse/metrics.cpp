#include "pulse/metrics.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <tuple>

namespace pulse::metrics {

std::string_view transport_label(Tp t)
{
    switch (t) {
        case Tp::kEventSource:
            return "eventsource";
        case Tp::kLongPoll:
            return "longpoll";
        case Tp::kIntervalPoll:
            return "intervalpoll";
        case Tp::kWebSocket:
            return "websocket";
        case Tp::kChunked:
            return "http-chunked";
        case Tp::kMultipart:
            return "http-multipart";
        case Tp::kRawStream:
            return "http-raw-stream";
    }
    return "unknown";
}

std::string_view denial_label(Denial d)
{
    switch (d) {
        case Denial::kChannel:
            return "channel";
        case Denial::kHook:
            return "authorize_request";
        case Denial::kTenantLimit:
            return "tenant_limit";
        default:
            return jwt::refusal_name(
                static_cast<jwt::Refusal>(static_cast<int>(d) + 1));
    }
}

std::string_view ended_label(Ended e)
{
    static constexpr std::array<std::string_view, kEndings> kNames = {
        "slow", "timeout", "gone", "token_expired", "shutdown"};
    auto i = static_cast<size_t>(e);
    return i < kNames.size() ? kNames[i] : "unknown";
}

void Counters::add(const Counters& o)
{
    for (size_t i = 0; i < kTransports; ++i) {
        deliveries[i] += o.deliveries[i];
        bytes[i] += o.bytes[i];
    }
    latency.add(o.latency);
    resumes += o.resumes;
    gaps += o.gaps;
    conflated += o.conflated;
    dropped += o.dropped;
    overflow_closes += o.overflow_closes;
    for (size_t i = 0; i < kDenials; ++i) {
        denials[i] += o.denials[i];
    }
    for (size_t i = 0; i < kEndings; ++i) {
        ended[i] += o.ended[i];
    }
}

void Counters::ended_with(int status)
{
    switch (status) {
        case 410:
            ended[static_cast<size_t>(Ended::kGone)]++;
            break;
        case 408:
            ended[static_cast<size_t>(Ended::kTimeout)]++;
            break;
        case 401:
            ended[static_cast<size_t>(Ended::kExpired)]++;
            break;
        case 503:
            ended[static_cast<size_t>(Ended::kShutdown)]++;
            break;
        default:
            break;
    }
}

void bound_tenants(std::vector<TenantRow>* rows, size_t keep)
{
    auto& v = *rows;
    if (v.size() > keep) {
        std::sort(v.begin(), v.end(),
                  [](const TenantRow& a, const TenantRow& b) {
                      return std::tie(b.subscribers, b.published, a.name)
                             < std::tie(a.subscribers, a.published, b.name);
                  });
        TenantRow other{"other", 0, 0};
        for (size_t i = keep; i < v.size(); ++i) {
            other.subscribers += v[i].subscribers;
            other.published += v[i].published;
        }
        v.resize(keep);
        std::sort(v.begin(), v.end(),
                  [](const TenantRow& a, const TenantRow& b) {
                      return a.name < b.name;
                  });
        v.push_back(std::move(other));
        return;
    }
    std::sort(v.begin(), v.end(), [](const TenantRow& a, const TenantRow& b) {
        return a.name < b.name;
    });
}

namespace {

// Builds the exposition: one HELP and TYPE per family, then its samples.
class Writer {
public:
    void family(std::string_view name, std::string_view type,
                std::string_view help)
    {
        out_ += "# HELP ";
        out_ += name;
        out_ += ' ';
        out_ += help;
        out_ += "\n# TYPE ";
        out_ += name;
        out_ += ' ';
        out_ += type;
        out_ += '\n';
    }
    void sample(std::string_view name, std::string_view labels, uint64_t v)
    {
        head(name, labels);
        char buf[24];
        std::snprintf(buf, sizeof buf, "%" PRIu64 "\n", v);
        out_ += buf;
    }
    void sample(std::string_view name, std::string_view labels, double v)
    {
        head(name, labels);
        char buf[40];
        std::snprintf(buf, sizeof buf, "%.9g\n", v);
        out_ += buf;
    }
    // A histogram's _bucket (cumulative), _sum and _count; `scale`
    // turns the recorded unit into the exposed one (ns into seconds).
    template <size_t N>
    void histogram(std::string_view name, const Histogram<N>& h,
                   const std::array<uint64_t, N>& bounds, double scale)
    {
        std::string bucket = std::string(name) + "_bucket";
        uint64_t cumulative = 0;
        char le[48];
        for (size_t i = 0; i < N; ++i) {
            cumulative += h.buckets[i];
            std::snprintf(le, sizeof le, "le=\"%.9g\"",
                          static_cast<double>(bounds[i]) * scale);
            sample(bucket, le, cumulative);
        }
        cumulative += h.buckets[N];
        sample(bucket, "le=\"+Inf\"", cumulative);
        sample(std::string(name) + "_sum", "",
               static_cast<double>(h.sum) * scale);
        sample(std::string(name) + "_count", "", h.count);
    }
    std::string take() { return std::move(out_); }

private:
    void head(std::string_view name, std::string_view labels)
    {
        out_ += name;
        if (!labels.empty()) {
            out_ += '{';
            out_ += labels;
            out_ += '}';
        }
        out_ += ' ';
    }
    std::string out_;
};

std::string label(std::string_view key, std::string_view value)
{
    // tenants are [A-Za-z0-9._-] (lib/pulse/jwt.h); escape anyway
    std::string s(key);
    s += "=\"";
    for (char c : value) {
        if (c == '\\' || c == '"') {
            s += '\\';
            s += c;
        } else if (c == '\n') {
            s += "\\n";
        } else {
            s += c;
        }
    }
    s += '"';
    return s;
}

template <size_t N, typename Name>
void per_label(Writer& w, std::string_view metric, std::string_view key,
               const std::array<uint64_t, N>& values, Name name_of)
{
    for (size_t i = 0; i < N; ++i) {
        w.sample(metric, label(key, name_of(i)), values[i]);
    }
}

}  // namespace

std::string render(const Snapshot& s)
{
    Writer w;
    const Counters& c = s.sum.counters;
    const Gauges& g = s.sum.gauges;
    auto tp = [](size_t i) { return transport_label(static_cast<Tp>(i)); };

    w.family("pulse_workers", "gauge", "Worker processes reporting.");
    w.sample("pulse_workers", "", static_cast<uint64_t>(s.workers));
    w.family("pulse_connections", "gauge",
             "Open subscriber connections, by transport.");
    per_label(w, "pulse_connections", "transport", g.connections, tp);
    w.family("pulse_subscribers", "gauge",
             "Channel subscriptions (a connection may hold several).");
    w.sample("pulse_subscribers", "", s.subscribers);
    w.family("pulse_channels", "gauge", "Channels in the shared zone.");
    w.sample("pulse_channels", "", s.channels);
    w.family("pulse_stored_messages", "gauge", "Messages in channel buffers.");
    w.sample("pulse_stored_messages", "", s.stored_messages);

    w.family("pulse_messages_published_total", "counter",
             "Messages accepted by a publish, on any path.");
    w.sample("pulse_messages_published_total", "", s.published);
    w.family("pulse_deliveries_total", "counter",
             "Messages written to a subscriber's connection, by transport.");
    per_label(w, "pulse_deliveries_total", "transport", c.deliveries, tp);
    w.family("pulse_delivered_bytes_total", "counter",
             "Bytes of those messages as framed, by transport.");
    per_label(w, "pulse_delivered_bytes_total", "transport", c.bytes, tp);
    w.family("pulse_delivery_latency_seconds", "histogram",
             "From a publish accepted to the write that handed the "
             "message to the kernel.");
    w.histogram("pulse_delivery_latency_seconds", c.latency, kLatencyBounds,
                1e-9);
    w.family("pulse_queue_bytes", "histogram",
             "Unsent bytes per subscriber connection.");
    w.histogram("pulse_queue_bytes", g.queue, kQueueBounds, 1.0);

    w.family("pulse_subscribers_ended_total", "counter",
             "Subscribers the server ended, by reason.");
    per_label(w, "pulse_subscribers_ended_total", "reason", c.ended,
              [](size_t i) { return ended_label(static_cast<Ended>(i)); });
    w.family("pulse_resumes_total", "counter",
             "Subscribes that resumed from a message id.");
    w.sample("pulse_resumes_total", "", c.resumes);
    w.family("pulse_resume_gaps_total", "counter",
             "Resumes whose id was older than the channel's buffer.");
    w.sample("pulse_resume_gaps_total", "", c.gaps);
    w.family("pulse_messages_conflated_total", "counter",
             "Messages a paced subscriber skipped for a newer one of their "
             "key.");
    w.sample("pulse_messages_conflated_total", "", c.conflated);
    w.family("pulse_messages_dropped_total", "counter",
             "Messages dropped from a subscriber's full queue, by reason.");
    w.sample("pulse_messages_dropped_total", label("reason", "queue_full"),
             c.dropped);
    w.family("pulse_queue_overflow_closes_total", "counter",
             "Subscribers closed for passing their queue's bound "
             "(overflow=close).");
    w.sample("pulse_queue_overflow_closes_total", "", c.overflow_closes);
    w.family("pulse_auth_denials_total", "counter",
             "Requests refused by auth, by reason.");
    per_label(w, "pulse_auth_denials_total", "reason", c.denials,
              [](size_t i) { return denial_label(static_cast<Denial>(i)); });

    w.family("pulse_shm_used_bytes", "gauge", "Shared zone in use.");
    w.sample("pulse_shm_used_bytes", "", s.shm_used);
    w.family("pulse_shm_size_bytes", "gauge", "Shared zone size.");
    w.sample("pulse_shm_size_bytes", "", s.shm_capacity);
    w.family("pulse_messages_evicted_total", "counter",
             "Messages pushed out of a full channel buffer.");
    w.sample("pulse_messages_evicted_total", "", s.evicted);

    if (!s.tenants.empty()) {
        w.family("pulse_tenant_subscribers", "gauge",
                 "Subscriber connections per tenant.");
        for (const TenantRow& t : s.tenants) {
            w.sample("pulse_tenant_subscribers", label("tenant", t.name),
                     t.subscribers);
        }
        w.family("pulse_tenant_messages_published_total", "counter",
                 "Messages published per tenant.");
        for (const TenantRow& t : s.tenants) {
            w.sample("pulse_tenant_messages_published_total",
                     label("tenant", t.name), t.published);
        }
    }
    return w.take();
}

}  // namespace pulse::metrics
