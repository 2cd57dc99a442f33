#include "metrics.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <sstream>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

namespace pulse::publisher {

void Metrics::observe_latency(double seconds)
{
    for (size_t i = 0; i < kBuckets.size(); ++i) {
        if (seconds <= kBuckets[i]) {
            latency_buckets[i]++;
        }
    }
    latency_count++;
    latency_sum += seconds;
}

std::string Metrics::prometheus() const
{
    std::ostringstream o;
    auto head = [&](const char* name, const char* type, const char* help) {
        o << "# HELP " << name << " " << help << "\n# TYPE " << name << " "
          << type << "\n";
    };
    head("pulse_publisher_events_in_total", "counter",
         "Events read from Redis, by source.");
    for (const auto& [name, s] : sources) {
        o << "pulse_publisher_events_in_total{source=\"" << name << "\"} "
          << s.in << "\n";
    }
    head("pulse_publisher_events_published_total", "counter",
         "Events nginx accepted (201/202), by source.");
    for (const auto& [name, s] : sources) {
        o << "pulse_publisher_events_published_total{source=\"" << name
          << "\"} " << s.published << "\n";
    }
    head("pulse_publisher_events_dropped_total", "counter",
         "Events dropped (unroutable, refused by nginx, or Pub/Sub events "
         "nginx could not take), by source.");
    for (const auto& [name, s] : sources) {
        o << "pulse_publisher_events_dropped_total{source=\"" << name << "\"} "
          << s.dropped << "\n";
    }
    if (ingest_on) {
        head("pulse_publisher_ingest_requests_total", "counter",
             "Ingest publishes: stored in Redis, refused as bad requests, or "
             "not stored (Redis failed; answered 503).");
        o << "pulse_publisher_ingest_requests_total{result=\"stored\"} "
          << ingest_stored << "\n"
          << "pulse_publisher_ingest_requests_total{result=\"refused\"} "
          << ingest_refused << "\n"
          << "pulse_publisher_ingest_requests_total{result=\"not_stored\"} "
          << ingest_not_stored << "\n";
    }
    head("pulse_publisher_queue_depth", "gauge",
         "Pub/Sub events read but not yet published (streams stop reading "
         "instead of queueing).");
    o << "pulse_publisher_queue_depth " << queue_depth << "\n";
    head("pulse_publisher_redis_reconnects_total", "counter",
         "Redis connections lost and re-established.");
    o << "pulse_publisher_redis_reconnects_total " << reconnects << "\n";
    head("pulse_publisher_redis_errors_total", "counter",
         "Redis connection failures, by kind (io, eof, protocol, oom, auth, "
         "reply, other).");
    for (const auto& [kind, count] : redis_errors) {
        o << "pulse_publisher_redis_errors_total{kind=\"" << kind << "\"} "
          << count << "\n";
    }
    head("pulse_publisher_up", "gauge", "1 when the connection is up.");
    o << "pulse_publisher_up{connection=\"redis_pubsub\"} "
      << (redis_pubsub_up ? 1 : 0) << "\n";
    o << "pulse_publisher_up{connection=\"redis_streams\"} "
      << (redis_streams_up ? 1 : 0) << "\n";
    o << "pulse_publisher_up{connection=\"nginx\"} " << (nginx_up ? 1 : 0)
      << "\n";
    head("pulse_publisher_stream_lag_seconds", "gauge",
         "Age of the last stream entry published, by source and key.");
    for (const auto& [key, lag] : stream_lag) {
        size_t slash = key.find('/');
        o << "pulse_publisher_stream_lag_seconds{source=\""
          << key.substr(0, slash) << "\",key=\"" << key.substr(slash + 1)
          << "\"} " << lag << "\n";
    }
    head("pulse_publisher_publish_latency_seconds", "histogram",
         "Round trip of a publish to nginx.");
    for (size_t i = 0; i < kBuckets.size(); ++i) {
        o << "pulse_publisher_publish_latency_seconds_bucket{le=\""
          << kBuckets[i] << "\"} " << latency_buckets[i] << "\n";
    }
    o << "pulse_publisher_publish_latency_seconds_bucket{le=\"+Inf\"} "
      << latency_count << "\n";
    o << "pulse_publisher_publish_latency_seconds_sum " << latency_sum << "\n";
    o << "pulse_publisher_publish_latency_seconds_count " << latency_count
      << "\n";
    return o.str();
}

MetricsServer::~MetricsServer()
{
    if (fd_ >= 0) {
        close(fd_);
    }
}

bool MetricsServer::listen(const std::string& host_port, std::string* error)
{
    fd_ = listen_tcp(host_port, 16, "metrics", error);
    return fd_ >= 0;
}

int listen_tcp(const std::string& host_port, int backlog, const char* what,
               std::string* error)
{
    size_t colon = host_port.rfind(':');
    std::string host =
        colon == std::string::npos ? "127.0.0.1" : host_port.substr(0, colon);
    std::string port =
        colon == std::string::npos ? host_port : host_port.substr(colon + 1);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(static_cast<uint16_t>(std::atoi(port.c_str())));
    if (inet_pton(AF_INET, host.c_str(), &sa.sin_addr) != 1) {
        *error = std::string(what) + ": bad address " + host_port;
        return -1;
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one))
        || bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0
        || ::listen(fd, backlog) != 0)
    {
        *error = std::string(what) + ": listen " + host_port + ": "
                 + std::strerror(errno);
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    return fd;
}

void MetricsServer::serve(const Metrics& m, bool healthy,
                          const std::string& why)
{
    while (true) {
        int c = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (c < 0) {
            return;
        }
        timeval tv{1, 0};
        setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        char buf[2048];
        ssize_t n = recv(c, buf, sizeof(buf) - 1, 0);
        std::string req(buf, n > 0 ? static_cast<size_t>(n) : 0);
        std::string status = "200 OK";
        std::string type = "text/plain; version=0.0.4";
        std::string body;
        if (req.rfind("GET /metrics", 0) == 0) {
            body = m.prometheus();
        } else if (req.rfind("GET /healthz", 0) == 0) {
            status = healthy ? "200 OK" : "503 Service Unavailable";
            type = "text/plain";
            body = healthy ? "ok\n" : why + "\n";
        } else {
            status = "404 Not Found";
            body = "GET /metrics or /healthz\n";
        }
        std::string out = "HTTP/1.1 " + status + "\r\nContent-Type: " + type
                          + "\r\nContent-Length: " + std::to_string(body.size())
                          + "\r\nConnection: close\r\n\r\n" + body;
        (void) send(c, out.data(), out.size(), MSG_NOSIGNAL);
        close(c);
    }
}

}  // namespace pulse::publisher
