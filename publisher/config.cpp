#include "config.h"

#include <fstream>
#include <set>
#include <sstream>

#include <yaml-cpp/yaml.h>

namespace pulse::publisher {

namespace {

class Reader {
public:
    explicit Reader(std::string path) : path_(std::move(path)) {}

    [[noreturn]] void fail(const YAML::Node& n, const std::string& key,
                           const std::string& why) const
    {
        std::ostringstream s;
        s << path_;
        if (n.IsDefined() && n.Mark().line >= 0) {
            s << ":" << n.Mark().line + 1;
        }
        s << ": " << key << ": " << why;
        throw ConfigError(s.str());
    }

    void only(const YAML::Node& map, const std::string& where,
              const std::set<std::string>& allowed) const
    {
        if (!map.IsMap()) {
            fail(map, where, "must be a mapping");
        }
        for (const auto& kv : map) {
            std::string k = kv.first.as<std::string>();
            if (allowed.count(k) == 0) {
                fail(kv.first, where.empty() ? k : where + "." + k,
                     "unknown key");
            }
        }
    }

    std::string str(const YAML::Node& map, const std::string& where,
                    const std::string& key, const std::string& def) const
    {
        YAML::Node n = map[key];
        if (!n.IsDefined() || n.IsNull()) {
            return def;
        }
        if (!n.IsScalar()) {
            fail(n, where + "." + key, "must be a string");
        }
        return n.as<std::string>();
    }

    long long integer(const YAML::Node& map, const std::string& where,
                      const std::string& key, long long def, long long lo,
                      long long hi) const
    {
        YAML::Node n = map[key];
        if (!n.IsDefined() || n.IsNull()) {
            return def;
        }
        long long v = 0;
        try {
            v = n.as<long long>();
        } catch (const YAML::Exception&) {
            fail(n, where + "." + key, "must be an integer");
        }
        if (v < lo || v > hi) {
            fail(n, where + "." + key,
                 "must be between " + std::to_string(lo) + " and "
                     + std::to_string(hi));
        }
        return v;
    }

    std::vector<std::string> list(const YAML::Node& map,
                                  const std::string& where,
                                  const std::string& key) const
    {
        std::vector<std::string> out;
        YAML::Node n = map[key];
        if (!n.IsDefined() || n.IsNull()) {
            return out;
        }
        if (n.IsScalar()) {
            out.push_back(n.as<std::string>());
            return out;
        }
        if (!n.IsSequence()) {
            fail(n, where + "." + key, "must be a list of strings");
        }
        for (const auto& e : n) {
            if (!e.IsScalar() || e.as<std::string>().empty()) {
                fail(e, where + "." + key, "entries must be non-empty strings");
            }
            out.push_back(e.as<std::string>());
        }
        return out;
    }

private:
    std::string path_;
};

}  // namespace

Config Config::parse(const std::string& text, const std::string& path)
{
    Reader rd(path);
    YAML::Node root;
    try {
        root = YAML::Load(text);
    } catch (const YAML::ParserException& e) {
        throw ConfigError(path + ":" + std::to_string(e.mark.line + 1)
                          + ": invalid YAML: " + e.msg);
    }
    if (root.IsNull()) {
        throw ConfigError(path + ": empty config");
    }
    rd.only(root, "",
            {"nginx", "redis", "sources", "queue_size", "metrics", "ingest"});
    Config c;

    if (YAML::Node n = root["nginx"]) {
        rd.only(n, "nginx", {"host", "port", "unix", "publish_path"});
        c.nginx.host = rd.str(n, "nginx", "host", c.nginx.host);
        c.nginx.port = static_cast<uint16_t>(
            rd.integer(n, "nginx", "port", c.nginx.port, 1, 65535));
        c.nginx.unix_socket = rd.str(n, "nginx", "unix", "");
        c.nginx.publish_path =
            rd.str(n, "nginx", "publish_path", c.nginx.publish_path);
        if (c.nginx.publish_path.empty() || c.nginx.publish_path[0] != '/') {
            rd.fail(n["publish_path"], "nginx.publish_path",
                    "must start with '/'");
        }
        if (c.nginx.publish_path.find("{channel}") == std::string::npos) {
            rd.fail(n["publish_path"], "nginx.publish_path",
                    "must contain {channel}");
        }
    } else {
        rd.fail(root, "nginx", "missing (where to publish)");
    }

    if (YAML::Node n = root["redis"]) {
        rd.only(n, "redis",
                {"host", "port", "unix", "db", "username", "password"});
        c.redis.host = rd.str(n, "redis", "host", c.redis.host);
        c.redis.port = static_cast<uint16_t>(
            rd.integer(n, "redis", "port", c.redis.port, 1, 65535));
        c.redis.unix_socket = rd.str(n, "redis", "unix", "");
        c.redis.db =
            static_cast<int>(rd.integer(n, "redis", "db", 0, 0, 1 << 20));
        c.redis.username = rd.str(n, "redis", "username", "");
        c.redis.password = rd.str(n, "redis", "password", "");
        if (!c.redis.username.empty() && c.redis.password.empty()) {
            rd.fail(n["username"], "redis.username", "needs redis.password");
        }
    }

    c.queue_size = static_cast<uint32_t>(
        rd.integer(root, "", "queue_size", c.queue_size, 1, 10000000));
    c.metrics_listen = rd.str(root, "", "metrics", "");

    if (YAML::Node n = root["ingest"]) {
        rd.only(n, "ingest", {"listen", "stream", "maxlen", "max_body"});
        c.ingest.listen = rd.str(n, "ingest", "listen", "");
        if (c.ingest.listen.empty()) {
            rd.fail(n, "ingest.listen", "missing (unix:/path or host:port)");
        }
        if (c.ingest.listen.rfind("unix:", 0) != 0
            && c.ingest.listen.find(':') == std::string::npos)
        {
            rd.fail(n["listen"], "ingest.listen",
                    "must be unix:/path or host:port");
        }
        c.ingest.stream = rd.str(n, "ingest", "stream", c.ingest.stream);
        if (c.ingest.stream.empty()) {
            rd.fail(n["stream"], "ingest.stream", "must not be empty");
        }
        c.ingest.maxlen = static_cast<uint64_t>(
            rd.integer(n, "ingest", "maxlen",
                       static_cast<long long>(c.ingest.maxlen), 1, 1000000000));
        c.ingest.max_body = static_cast<uint64_t>(rd.integer(
            n, "ingest", "max_body", static_cast<long long>(c.ingest.max_body),
            1, 512 << 20));
    }

    YAML::Node sources = root["sources"];
    if (!sources || !sources.IsSequence() || sources.size() == 0) {
        rd.fail(sources ? sources : root, "sources",
                "must be a non-empty list");
    }
    std::set<std::string> names;
    for (size_t i = 0; i < sources.size(); ++i) {
        YAML::Node n = sources[i];
        std::string where = "sources[" + std::to_string(i) + "]";
        rd.only(n, where,
                {"name", "type", "channels", "patterns", "keys", "target",
                 "event", "key", "body_field", "event_field",
                 "content_type_field", "group", "consumer", "replay"});
        Source s;
        s.name = rd.str(n, where, "name", where);
        if (!names.insert(s.name).second) {
            rd.fail(n["name"], where + ".name", "duplicate source name");
        }
        std::string type = rd.str(n, where, "type", "");
        if (type == "pubsub") {
            s.kind = SourceKind::kPubSub;
        } else if (type == "stream") {
            s.kind = SourceKind::kStream;
        } else {
            rd.fail(n["type"].IsDefined() ? n["type"] : n, where + ".type",
                    "must be pubsub or stream");
        }
        s.channels = rd.list(n, where, "channels");
        s.patterns = rd.list(n, where, "patterns");
        s.keys = rd.list(n, where, "keys");
        s.target = rd.str(n, where, "target", s.target);
        s.event = rd.str(n, where, "event", "");
        s.key = rd.str(n, where, "key", "");
        s.body_field = rd.str(n, where, "body_field", s.body_field);
        s.event_field = rd.str(n, where, "event_field", "");
        s.content_type_field = rd.str(n, where, "content_type_field", "");
        s.group = rd.str(n, where, "group", "");
        s.consumer = rd.str(n, where, "consumer", "");
        s.replay = static_cast<uint32_t>(
            rd.integer(n, where, "replay", 0, 0, 1000000));
        if (s.kind == SourceKind::kPubSub) {
            if (s.channels.empty() && s.patterns.empty()) {
                rd.fail(n, where, "a pubsub source needs channels or patterns");
            }
            if (!s.keys.empty()) {
                rd.fail(n["keys"], where + ".keys", "is for stream sources");
            }
        } else {
            if (s.keys.empty()) {
                rd.fail(n, where, "a stream source needs keys");
            }
            if (!s.channels.empty() || !s.patterns.empty()) {
                rd.fail(n, where,
                        "channels and patterns are for pubsub sources");
            }
            if (!s.group.empty() && s.consumer.empty()) {
                rd.fail(n["group"], where + ".group", "needs a consumer name");
            }
        }
        if (s.target.empty()) {
            rd.fail(n["target"], where + ".target", "must not be empty");
        }
        c.sources.push_back(std::move(s));
    }
    return c;
}

Config Config::load(const std::string& path)
{
    std::ifstream in(path);
    if (!in) {
        throw ConfigError(path + ": cannot open");
    }
    std::stringstream text;
    text << in.rdbuf();
    return parse(text.str(), path);
}

}  // namespace pulse::publisher
