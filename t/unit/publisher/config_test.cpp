#include "config.h"

#include <gtest/gtest.h>

namespace pulse::publisher {
namespace {

const char* kGood = R"(
nginx:
  unix: /run/pulse.sock
  publish_path: /internal/pub/{channel}
redis:
  host: 10.0.0.1
  port: 6380
  db: 2
queue_size: 500
sources:
  - name: widgets
    type: pubsub
    patterns: ["tenant:*:widget:*"]
    target: "{1}/{2}"
  - name: events
    type: stream
    keys: [faults]
    group: pulse
    consumer: node-a
    replay: 100
)";

TEST(Config, ParsesAGoodFile)
{
    Config c = Config::parse(kGood, "good.yaml");
    EXPECT_EQ(c.nginx.unix_socket, "/run/pulse.sock");
    EXPECT_EQ(c.nginx.publish_path, "/internal/pub/{channel}");
    EXPECT_EQ(c.redis.port, 6380);
    EXPECT_EQ(c.redis.db, 2);
    EXPECT_EQ(c.queue_size, 500u);
    ASSERT_EQ(c.sources.size(), 2u);
    EXPECT_EQ(c.sources[0].kind, SourceKind::kPubSub);
    EXPECT_EQ(c.sources[0].target, "{1}/{2}");
    EXPECT_EQ(c.sources[1].kind, SourceKind::kStream);
    EXPECT_EQ(c.sources[1].replay, 100u);
}

struct Bad {
    const char* yaml;
    const char* expect;  // substring of the error
};

class ConfigErrors : public ::testing::TestWithParam<Bad> {};

TEST_P(ConfigErrors, NamesFileLineAndKey)
{
    try {
        Config::parse(GetParam().yaml, "bad.yaml");
        FAIL() << "accepted: " << GetParam().yaml;
    } catch (const ConfigError& e) {
        std::string what = e.what();
        EXPECT_NE(what.find("bad.yaml"), std::string::npos) << what;
        EXPECT_NE(what.find(GetParam().expect), std::string::npos) << what;
    }
}

INSTANTIATE_TEST_SUITE_P(
    All, ConfigErrors,
    ::testing::Values(
        Bad{"", "empty config"}, Bad{"nginx: [", "invalid YAML"},
        Bad{"sources: []\n", "nginx: missing"},
        Bad{"nginx: {port: 80}\nbogus: 1\n", "bogus: unknown key"},
        Bad{"nginx: {port: 99999}\nsources: []\n",
            ":1: nginx.port: must be between 1 and 65535"},
        Bad{"nginx: {port: abc}\n", "nginx.port: must be an integer"},
        Bad{"nginx: {publish_path: pub}\n", "must start with '/'"},
        Bad{"nginx: {publish_path: /pub}\n", "must contain {channel}"},
        Bad{"nginx: {}\n", "sources: must be a non-empty list"},
        Bad{"nginx: {}\nsources: []\n", "sources: must be a non-empty list"},
        Bad{"nginx: {}\nsources:\n  - type: kafka\n",
            ":3: sources[0].type: must be pubsub or stream"},
        Bad{"nginx: {}\nsources:\n  - type: pubsub\n",
            "needs channels or patterns"},
        Bad{"nginx: {}\nsources:\n  - type: stream\n", "needs keys"},
        Bad{"nginx: {}\nsources:\n  - {type: stream, keys: [a], group: g}\n",
            "needs a consumer name"},
        Bad{"nginx: {}\nsources:\n  - {type: pubsub, channels: [a], "
            "keys: [b]}\n",
            "is for stream sources"},
        Bad{"nginx: {}\nsources:\n  - {type: pubsub, channels: [a], x: 1}\n",
            "sources[0].x: unknown key"},
        Bad{"nginx: {}\nsources:\n  - {name: a, type: pubsub, channels: [a]}\n"
            "  - {name: a, type: pubsub, channels: [b]}\n",
            "duplicate source name"},
        Bad{"nginx: {}\nredis: {username: u}\nsources:\n"
            "  - {type: pubsub, channels: [a]}\n",
            "needs redis.password"},
        Bad{"nginx: {}\nsources:\n  - {type: pubsub, channels: [\"\"]}\n",
            "non-empty strings"},
        Bad{"nginx: []\n", "nginx: must be a mapping"},
        Bad{"nginx: {}\nredis: {db: -1}\nsources:\n"
            "  - {type: pubsub, channels: [a]}\n",
            "redis.db: must be between 0"},
        Bad{"nginx: {}\nredis: {port: 0}\n", "redis.port: must be between"},
        Bad{"nginx: {}\nredis: {bogus: 1}\n", "redis.bogus: unknown key"},
        Bad{"nginx: {}\nqueue_size: 0\n", "queue_size: must be between 1"},
        Bad{"nginx: {}\nsources: [3]\n", "sources[0]: must be a mapping"},
        Bad{"nginx: {}\nsources:\n  - {type: pubsub, channels: {a: 1}}\n",
            "channels: must be a list of strings"},
        Bad{"nginx: {}\nsources:\n  - {type: stream, keys: [k], "
            "replay: -1}\n",
            "replay: must be between 0"},
        Bad{"nginx: {}\nsources:\n  - {type: pubsub, channels: [a], "
            "target: \"\"}\n",
            "target: must not be empty"},
        Bad{"nginx: {}\nsources:\n  - {type: stream, keys: [k], "
            "channels: [a]}\n",
            "channels and patterns are for pubsub sources"},
        Bad{"nginx: {host: [a]}\n", "nginx.host: must be a string"}));

TEST(Config, MissingFile)
{
    EXPECT_THROW(Config::load("/nonexistent/pulse.yaml"), ConfigError);
}

}  // namespace
}  // namespace pulse::publisher
