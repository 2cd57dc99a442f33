#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>

namespace pulse::publisher {

/// What the sidecar counts, rendered as Prometheus text for /metrics.
struct Metrics {
    struct PerSource {
        uint64_t in = 0;
        uint64_t published = 0;
        uint64_t dropped = 0;
    };
    std::map<std::string, PerSource> sources;
    uint64_t published = 0;
    uint64_t dropped = 0;
    uint64_t reconnects = 0;
    /// Connection failures by kind (kind_name of RedisErrorKind).
    std::map<std::string, uint64_t> redis_errors;
    std::map<std::string, double> stream_lag;  // "<source>/<key>" -> s
    bool redis_pubsub_up = false;
    bool redis_streams_up = false;
    bool nginx_up = false;
    uint64_t queue_depth = 0;
    // the HTTP ingest, when configured (ingest.h)
    bool ingest_on = false;
    uint64_t ingest_stored = 0;
    uint64_t ingest_refused = 0;
    uint64_t ingest_not_stored = 0;

    static constexpr std::array<double, 8> kBuckets = {
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1.0};
    std::array<uint64_t, kBuckets.size()> latency_buckets{};
    uint64_t latency_count = 0;
    double latency_sum = 0;

    void in(const std::string& source) { sources[source].in++; }
    void ok(const std::string& source)
    {
        sources[source].published++;
        published++;
    }
    void drop(const std::string& source)
    {
        sources[source].dropped++;
        dropped++;
    }
    /// One publish's round trip to nginx, in seconds.
    void observe_latency(double seconds);

    std::string prometheus() const;
};

/// A listening TCP socket (non-blocking) on `host:port` (or a port alone,
/// on 127.0.0.1); -1 with `error` (naming `what`) when it cannot be had.
int listen_tcp(const std::string& host_port, int backlog, const char* what,
               std::string* error);

/// A tiny HTTP listener for GET /metrics and GET /healthz, served from the
/// sidecar's poll loop (one short request at a time; a scraper's load).
class MetricsServer {
public:
    MetricsServer() = default;
    MetricsServer(const MetricsServer&) = delete;
    MetricsServer& operator=(const MetricsServer&) = delete;
    MetricsServer(MetricsServer&&) = delete;
    MetricsServer& operator=(MetricsServer&&) = delete;
    ~MetricsServer();

    /// Listens on `host:port`; false with `error` set on failure.
    bool listen(const std::string& host_port, std::string* error);
    int fd() const { return fd_; }
    /// Accepts and answers the pending connections.
    void serve(const Metrics& m, bool healthy, const std::string& why);

private:
    int fd_ = -1;
};

}  // namespace pulse::publisher
