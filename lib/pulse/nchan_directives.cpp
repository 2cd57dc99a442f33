#include "pulse/nchan_directives.h"

#include <algorithm>
#include <iterator>

namespace pulse {

namespace {

// nchan 1.3.6's directives that Pulse refuses, as `nginx -t` of the
// installed module lists them (t/integration/test_nchan_directives.py
// checks this list against it).
constexpr std::string_view kRefused[] = {
    // Redis storage: the sidecar's job in Pulse
    "pulse_use_redis",
    "pulse_redis_url",
    "pulse_redis_server",
    "pulse_redis_pass",
    "pulse_redis_pass_inheritable",
    "pulse_redis_password",
    "pulse_redis_username",
    "pulse_redis_namespace",
    "pulse_redis_storage_mode",
    "pulse_redis_nostore_fastpublish",
    "pulse_redis_ssl",
    "pulse_redis_ssl_ciphers",
    "pulse_redis_ssl_client_certificate",
    "pulse_redis_ssl_client_certificate_key",
    "pulse_redis_ssl_server_name",
    "pulse_redis_ssl_trusted_certificate",
    "pulse_redis_ssl_trusted_certificate_path",
    "pulse_redis_ssl_verify_certificate",
    "pulse_redis_tls",
    "pulse_redis_tls_ciphers",
    "pulse_redis_tls_client_certificate",
    "pulse_redis_tls_server_name",
    "pulse_redis_tls_trusted_certificate",
    "pulse_redis_tls_trusted_certificate_path",
    "pulse_redis_tls_verify_certificate",
    "pulse_redis_upstream_stats",
    "pulse_redis_upstream_stats_disconnected_timeout",
    "pulse_redis_upstream_stats_enabled",
    "pulse_redis_accurate_subscriber_count",
    "pulse_redis_cluster_check_interval",
    "pulse_redis_cluster_check_interval_backoff",
    "pulse_redis_cluster_check_interval_jitter",
    "pulse_redis_cluster_check_interval_max",
    "pulse_redis_cluster_check_interval_min",
    "pulse_redis_cluster_connect_timeout",
    "pulse_redis_cluster_max_failing_time",
    "pulse_redis_cluster_recovery_delay",
    "pulse_redis_cluster_recovery_delay_backoff",
    "pulse_redis_cluster_recovery_delay_jitter",
    "pulse_redis_cluster_recovery_delay_max",
    "pulse_redis_cluster_recovery_delay_min",
    "pulse_redis_command_timeout",
    "pulse_redis_connect_timeout",
    "pulse_redis_discovered_ip_range_blacklist",
    "pulse_redis_fakesub_timer_interval",
    "pulse_redis_idle_channel_cache_timeout",
    "pulse_redis_idle_channel_keepalive_backoff",
    "pulse_redis_idle_channel_keepalive_jitter",
    "pulse_redis_idle_channel_keepalive_max",
    "pulse_redis_idle_channel_keepalive_min",
    "pulse_redis_idle_channel_keepalive_safety_margin",
    "pulse_redis_load_scripts_unconditionally",
    "pulse_redis_node_connect_timeout",
    "pulse_redis_optimize_target",
    "pulse_redis_ping_interval",
    "pulse_redis_publish_msgpacked_max_size",
    "pulse_redis_reconnect_delay",
    "pulse_redis_reconnect_delay_backoff",
    "pulse_redis_reconnect_delay_jitter",
    "pulse_redis_reconnect_delay_max",
    "pulse_redis_reconnect_delay_min",
    "pulse_redis_retry_commands",
    "pulse_redis_retry_commands_max_wait",
    "pulse_redis_subscribe_weights",
    "pulse_redis_wait_after_connecting",
    // the built-in benchmark: make bench
    "pulse_benchmark",
    "pulse_benchmark_channels",
    "pulse_benchmark_message_padding_bytes",
    "pulse_benchmark_messages_per_channel_per_minute",
    "pulse_benchmark_publisher_distribution",
    "pulse_benchmark_subscriber_distribution",
    "pulse_benchmark_subscribers_per_channel",
    "pulse_benchmark_time",
    // files
    "pulse_message_temp_path",
    "pulse_group_max_messages_disk",
};

bool starts_with(std::string_view s, std::string_view prefix)
{
    return s.substr(0, prefix.size()) == prefix;
}

constexpr std::string_view kRedis =
    "nchan's Redis storage is not in Pulse: channels live in each nginx, "
    "and the pulse-publisher sidecar turns Redis Pub/Sub and Streams into "
    "publishes on it";

std::string why(std::string_view name)
{
    std::string r(kRedis);
    if (name == "pulse_redis_password") {
        return r + "; set redis.password in its YAML";
    }
    if (name == "pulse_redis_username") {
        return r + "; set redis.username (and redis.password) in its YAML";
    }
    if (name == "pulse_redis_namespace") {
        return r + "; name the Redis channels, patterns and stream keys in "
                   "full in its sources";
    }
    if (name == "pulse_redis_storage_mode"
        || name == "pulse_redis_nostore_fastpublish")
    {
        return r + "; a stream source with a consumer group keeps the "
                   "history and each node's position in Redis";
    }
    if (starts_with(name, "pulse_redis_ssl")
        || starts_with(name, "pulse_redis_tls"))
    {
        return r + "; it reaches Redis over TCP or a Unix socket (redis.unix),"
                   " not TLS: keep Redis local or tunnel it";
    }
    if (starts_with(name, "pulse_redis_upstream_stats")) {
        return r + "; its /metrics has pulse_publisher_redis_* and "
                   "pulse_publisher_publish_latency_seconds";
    }
    if (name == "pulse_use_redis" || name == "pulse_redis_url"
        || name == "pulse_redis_server"
        || starts_with(name, "pulse_redis_pass"))
    {
        return r + "; set redis: {host, port, db} or {unix} in its YAML "
                   "(/etc/pulse-publisher/publisher.yaml)";
    }
    if (starts_with(name, "pulse_redis_")) {
        return r + "; it reconnects with capped backoff on its own and has "
                   "no setting for this: remove the line";
    }
    if (starts_with(name, "pulse_benchmark")) {
        return "nchan's built-in benchmark is not in Pulse; run `make bench` "
               "(bench/run.py) from the source tree against a server";
    }
    if (name == "pulse_message_temp_path") {
        return "Pulse keeps every message in the shared zone and needs no "
               "message temp path; remove the line (a request body nginx "
               "spools to a file goes to client_body_temp_path)";
    }
    // pulse_group_max_messages_disk
    return "Pulse stores no messages on disk; every message is in the "
           "shared zone, sized by pulse_shared_memory_size";
}

}  // namespace

const std::vector<std::string_view>& nchan_refused_directives()
{
    // built on first use: the module's table is made by a static
    // initializer in another file
    static const std::vector<std::string_view> kAll(std::begin(kRefused),
                                                    std::end(kRefused));
    return kAll;
}

std::string nchan_refusal(std::string_view name)
{
    if (std::find(std::begin(kRefused), std::end(kRefused), name)
        == std::end(kRefused))
    {
        return {};
    }
    return std::string(name) + ": " + why(name)
           + " (docs/migrating-from-nchan.md)";
}

std::string nchan_storage_engine_refusal()
{
    return "pulse_storage_engine redis: " + why("pulse_redis_url")
           + " (docs/migrating-from-nchan.md)";
}

}  // namespace pulse
