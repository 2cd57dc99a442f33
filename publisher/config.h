#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace pulse::publisher {

/// A config file that cannot be used: the message names the file, the
/// line and the key.
class ConfigError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

struct NginxEndpoint {
    std::string host = "127.0.0.1";
    uint16_t port = 80;
    std::string unix_socket;  // wins over host/port when set
    /// Publish path template; `{channel}` is replaced by the target.
    std::string publish_path = "/pub/{channel}";
};

struct RedisEndpoint {
    std::string host = "127.0.0.1";
    uint16_t port = 6379;
    std::string unix_socket;
    int db = 0;
    std::string username;
    std::string password;
};

enum class SourceKind { kPubSub, kStream };

struct Source {
    std::string name;
    SourceKind kind = SourceKind::kPubSub;
    std::vector<std::string> channels;  // SUBSCRIBE (pubsub)
    std::vector<std::string> patterns;  // PSUBSCRIBE (pubsub)
    std::vector<std::string> keys;      // stream keys
    /// Target channel template: `{channel}` is the Redis channel or stream
    /// key, `{1}`.. the pattern's `*` captures, `{field}` (streams) the
    /// value of that entry field.
    std::string target = "{channel}";
    /// EventSource event name template (same placeholders); empty: none.
    std::string event;
    /// Conflation key template (Pulse-Key, same placeholders); empty: none.
    std::string key;
    std::string body_field = "data";
    std::string event_field;
    std::string content_type_field;
    std::string group;     // XREADGROUP consumer group (empty: XREAD)
    std::string consumer;  // consumer name in the group
    uint32_t replay = 0;   // entries replayed per stream at start
};

/// The HTTP ingest (docs/publisher.md, "Ingest"): POST /publish/<channel>
/// written to a Redis Stream that every node's sidecar reads.
struct IngestConfig {
    /// `unix:/path` or `host:port`; empty: no ingest.
    std::string listen;
    std::string stream = "pulse:ingest";
    uint64_t maxlen = 100000;     // XADD MAXLEN ~ (the stream's history)
    uint64_t max_body = 1 << 20;  // bytes; larger bodies get 413
};

struct Config {
    NginxEndpoint nginx;
    RedisEndpoint redis;
    std::vector<Source> sources;
    uint32_t queue_size = 10000;
    std::string metrics_listen;  // host:port for /metrics and /healthz
    IngestConfig ingest;

    /// Reads and validates a YAML file; throws ConfigError.
    static Config load(const std::string& path);
    /// The same from text; `path` only names it in errors.
    static Config parse(const std::string& text, const std::string& path);
};

}  // namespace pulse::publisher
