#include "pulse/nchan_directives.h"

#include <set>
#include <string>

#include <gtest/gtest.h>

namespace pulse {
namespace {

bool has(const std::string& s, std::string_view part)
{
    return s.find(part) != std::string::npos;
}

TEST(NchanDirectives, EveryRefusalNamesItsDirectiveAndAReplacement)
{
    const auto& all = nchan_refused_directives();
    ASSERT_GT(all.size(), 70U);
    std::set<std::string_view> unique(all.begin(), all.end());
    EXPECT_EQ(unique.size(), all.size()) << "a name is listed twice";
    for (std::string_view name : all) {
        std::string r = nchan_refusal(name);
        EXPECT_EQ(r.rfind(std::string(name) + ": ", 0), 0U) << r;
        EXPECT_TRUE(has(r, "; ")) << r;
        EXPECT_TRUE(has(r, "(docs/migrating-from-nchan.md)")) << r;
        EXPECT_EQ(r.find('\n'), std::string::npos) << r;
    }
}

TEST(NchanDirectives, ImplementedAndUnknownNamesAreNotRefused)
{
    EXPECT_EQ(nchan_refusal("pulse_channel_id"), "");
    EXPECT_EQ(nchan_refusal("pulse_pub_channel_id"), "");
    EXPECT_EQ(nchan_refusal("pulse_storage_engine"), "");
    EXPECT_EQ(nchan_refusal("pulse_longpoll_multipart_response"), "");
    EXPECT_EQ(nchan_refusal("pulse_redis"), "");
    EXPECT_EQ(nchan_refusal(""), "");
}

TEST(NchanDirectives, EachKindNamesWhatReplacesIt)
{
    EXPECT_TRUE(has(nchan_refusal("pulse_redis_url"), "redis: {host, port"));
    EXPECT_TRUE(has(nchan_refusal("pulse_use_redis"), "publisher.yaml"));
    EXPECT_TRUE(has(nchan_refusal("pulse_redis_password"), "redis.password"));
    EXPECT_TRUE(has(nchan_refusal("pulse_redis_username"), "redis.username"));
    EXPECT_TRUE(has(nchan_refusal("pulse_redis_namespace"), "in full"));
    EXPECT_TRUE(
        has(nchan_refusal("pulse_redis_storage_mode"), "consumer group"));
    EXPECT_TRUE(has(nchan_refusal("pulse_redis_ssl_ciphers"), "redis.unix"));
    EXPECT_TRUE(has(nchan_refusal("pulse_redis_tls"), "redis.unix"));
    EXPECT_TRUE(has(nchan_refusal("pulse_redis_upstream_stats"),
                    "pulse_publisher_redis_"));
    EXPECT_TRUE(
        has(nchan_refusal("pulse_redis_ping_interval"), "remove the line"));
    EXPECT_TRUE(has(nchan_refusal("pulse_benchmark_time"), "make bench"));
    EXPECT_TRUE(
        has(nchan_refusal("pulse_message_temp_path"), "client_body_temp_path"));
    EXPECT_TRUE(has(nchan_refusal("pulse_group_max_messages_disk"),
                    "pulse_shared_memory_size"));
    // built: not refused
    for (const char* name :
         {"pulse_channel_event_string", "pulse_channel_events_channel_id",
          "pulse_channel_group_accounting", "pulse_group_location",
          "pulse_group_max_channels", "pulse_group_max_messages_memory",
          "pulse_subscriber_info", "pulse_subscriber_info_string"})
    {
        EXPECT_EQ(nchan_refusal(name), "") << name;
    }
}

TEST(NchanDirectives, StorageEngineRedisPointsToTheSidecar)
{
    std::string r = nchan_storage_engine_refusal();
    EXPECT_EQ(r.rfind("pulse_storage_engine redis: ", 0), 0U) << r;
    EXPECT_TRUE(has(r, "pulse-publisher")) << r;
}

}  // namespace
}  // namespace pulse
