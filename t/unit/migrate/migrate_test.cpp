#include "migrate.h"

#include <algorithm>

#include <gtest/gtest.h>

namespace pulse::migrate {
namespace {

bool has(const std::string& s, std::string_view part)
{
    return s.find(part) != std::string::npos;
}

bool report_has(const Migration& m, std::string_view part)
{
    auto r = m.report();
    return std::any_of(r.begin(), r.end(),
                       [&](const std::string& l) { return has(l, part); });
}

TEST(Migrate, RenamesDirectivesAndKeepsTheRestByteForByte)
{
    std::string in =
        "load_module /usr/lib/nginx/modules/ngx_nchan_module.so;\n"
        "http {\n"
        "    # nchan_publisher in a comment stays\n"
        "    server {\n"
        "        location ~ /sub/(\\w+)$ { nchan_subscriber;\n"
        "            nchan_channel_id \"$1\";  }\n"
        "        add_header X-Note \"nchan_subscriber; here\";\n"
        "    }\n"
        "}\n";
    Migration m;
    auto out = m.file("nginx.conf", in);
    ASSERT_TRUE(out.is_ok()) << out.status().message();
    EXPECT_EQ(out.value(),
              "load_module /usr/lib/nginx/modules/ngx_http_pulse_module.so;\n"
              "http {\n"
              "    # nchan_publisher in a comment stays\n"
              "    server {\n"
              "        location ~ /sub/(\\w+)$ { pulse_subscriber;\n"
              "            pulse_channel_id \"$1\";  }\n"
              "        add_header X-Note \"nchan_subscriber; here\";\n"
              "    }\n"
              "}\n");
    EXPECT_TRUE(report_has(m,
                           "nginx.conf:5: nchan_subscriber -> "
                           "pulse_subscriber"));
    EXPECT_TRUE(report_has(m, "nginx.conf:1: load_module"));
    EXPECT_TRUE(report_has(m, "differs: EventSource over HTTP/1.1"));
    EXPECT_FALSE(m.uses_redis());
    EXPECT_TRUE(m.problems().empty());
}

// Found by t/fuzz/nginx_conf_fuzz.cpp: the nchan module's load_module
// with a block (nginx refuses one there) kept the block's nchan_
// directives, because the rewrite of the path returned before the block.
TEST(Migrate, ABlockAfterTheNchanLoadModuleIsMigratedToo)
{
    Migration m;
    auto out = m.file("c",
                      "load_module /m/ngx_nchan_module.so { nchan_subscriber;"
                      " location / { nchan_channel_id $1; } }\n");
    ASSERT_TRUE(out.is_ok()) << out.status().message();
    EXPECT_EQ(out.value(),
              "load_module /m/ngx_http_pulse_module.so { pulse_subscriber;"
              " location / { pulse_channel_id $1; } }\n");
}

// Found by the fuzzer too: a rename written from the word's unescaped
// value halved its backslashes, and `\;` then escaped the semicolon.
TEST(Migrate, RenamesKeepTheWordAsWritten)
{
    Migration m;
    auto out = m.file("c",
                      "nchan_x\\\\;\n"
                      "\"nchan_subscriber\";\n"
                      "n\\chan_publisher;\n"
                      "load_module \"/a\\\\b/ngx_nchan_module.so\";\n"
                      "load_module ngx_nchan_modul\\e.so;\n");
    ASSERT_TRUE(out.is_ok()) << out.status().message();
    EXPECT_EQ(out.value(),
              "pulse_x\\\\;\n"
              "\"pulse_subscriber\";\n"
              "\"pulse_publisher\";\n"
              "load_module \"/a\\\\b/ngx_http_pulse_module.so\";\n"
              "load_module \"ngx_http_pulse_module.so\";\n");
    auto again = parse(out.value());
    ASSERT_TRUE(again.is_ok());
    EXPECT_EQ(again.value()[0].name(), "pulse_x\\");
}

// And: a Redis host with a line break in it broke the comment that says
// where it went, leaving the rest of the line as configuration.
TEST(Migrate, ACommentOutStaysOneLineWhateverItQuotes)
{
    Migration m;
    auto out = m.file("c", "nchan_redis_url \"redis://a\nb:1\";\n");
    ASSERT_TRUE(out.is_ok()) << out.status().message();
    auto again = parse(out.value());
    ASSERT_TRUE(again.is_ok());
    EXPECT_TRUE(again.value().empty()) << out.value();
    EXPECT_TRUE(has(out.value(), "a\\x0ab")) << out.value();
}

TEST(Migrate, VariablesPulseHasAreRenamedOthersAreProblems)
{
    Migration m;
    auto out = m.file("c",
                      "set $a \"${nchan_channel_id}/$nchan_message_id\";\n"
                      "set $b $nchan_publisher_type;\n");
    ASSERT_TRUE(out.is_ok());
    EXPECT_TRUE(has(out.value(), "${pulse_channel_id}/$pulse_message_id"));
    EXPECT_TRUE(has(out.value(), "$nchan_publisher_type"));
    ASSERT_EQ(m.problems().size(), 1U);
    EXPECT_TRUE(has(m.problems()[0], "c:2: $nchan_publisher_type has no"));
}

// Group limits and channel events convert, with what differs from nchan.
TEST(Migrate, GroupLimitsAndEventsConvertWithTheirDifferences)
{
    Migration m;
    auto out = m.file("c",
                      "location ~ /g/(\\w+)$ { nchan_group_location; "
                      "nchan_channel_group $1; "
                      "nchan_channel_group_accounting on; "
                      "nchan_group_max_channels 10; "
                      "nchan_channel_events_channel_id $1; }\n");
    ASSERT_TRUE(out.is_ok());
    EXPECT_FALSE(has(out.value(), "nchan_"));
    EXPECT_TRUE(has(out.value(), "pulse_group_max_channels 10;"));
    EXPECT_TRUE(report_has(m, "differs: a group limit of N channels"));
    EXPECT_TRUE(report_has(m, "differs: every subscriber_enqueue event"));
    EXPECT_TRUE(m.problems().empty());
}

TEST(Migrate, RefusedDirectivesAreCommentedOutWithTheReason)
{
    Migration m;
    auto out = m.file("c",
                      "location /g { nchan_group_max_messages_disk 0; "
                      "nchan_benchmark; }\n");
    ASSERT_TRUE(out.is_ok());
    EXPECT_EQ(out.value(),
              "location /g { \n# pulse-migrate: pulse_group_max_messages_disk: "
              "Pulse stores no messages on disk; every message is in the "
              "shared zone, sized by pulse_shared_memory_size "
              "(docs/migrating-from-nchan.md)\n"
              "# nchan_group_max_messages_disk 0;\n \n"
              "# pulse-migrate: pulse_benchmark: nchan's built-in benchmark is "
              "not in Pulse; run `make bench` (bench/run.py) from the source "
              "tree against a server (docs/migrating-from-nchan.md)\n"
              "# nchan_benchmark;\n }\n");
    EXPECT_TRUE(report_has(m, "c:1: removed nchan_group_max_messages_disk"));
    EXPECT_TRUE(parse(out.value()).is_ok());
}

const char* kRedisConf = R"(http {
    upstream redis_cluster {
        nchan_redis_server redis://:s3cret@10.0.0.5:6380/2;
        nchan_redis_server redis://10.0.0.6:6380 slave;
    }
    nchan_redis_namespace "dash:";
    nchan_redis_ping_interval 10;
    server {
        listen 127.0.0.1:8081;
        location ~ ^/pub/(\w+)$ {
            nchan_publisher;
            nchan_channel_id $1;
            nchan_redis_pass redis_cluster;
            nchan_message_buffer_length 50;
            nchan_message_timeout 5m;
        }
        location ~ ^/sub/(\w+)$ {
            nchan_subscriber;
            nchan_channel_id $1;
            nchan_redis_pass redis_cluster;
        }
    }
}
)";

TEST(Migrate, RedisBecomesTheSidecarsYamlAndALocationForIt)
{
    Migration m;
    auto out = m.file("n.conf", kRedisConf);
    ASSERT_TRUE(out.is_ok()) << out.status().message();
    const std::string& o = out.value();
    // no nchan_ directive is left outside comments
    auto tree = parse(o);
    ASSERT_TRUE(tree.is_ok()) << tree.status().message();
    EXPECT_TRUE(has(o,
                    "    # upstream redis_cluster {\n"
                    "        # nchan_redis_server redis://:s3cret@"));
    EXPECT_TRUE(
        has(o, "        }\n\n        # pulse-migrate: pulse-publisher"));
    EXPECT_TRUE(has(o,
                    "        location ~ ^/pulse-sidecar/(.+)$ {\n"
                    "            allow 127.0.0.1;\n"));
    EXPECT_TRUE(has(o,
                    "            pulse_message_buffer_length 50;\n"
                    "            pulse_message_timeout 5m;\n        }\n\n"
                    "        # pulse-migrate: the sidecar's ingest"))
        << o;
    // its POSTs go to every node through the sidecar's ingest
    EXPECT_TRUE(has(o,
                    "        location ~ ^/pub/(\\w+)$ {\n"
                    "            # pulse-migrate: a publish goes to every node "
                    "through the sidecar's ingest\n"
                    "            set $pulse_ingest_channel $1;\n"
                    "            if ($request_method ~ ^(POST|PUT)$) {\n"
                    "                rewrite ^ /pulse-ingest/"
                    "$pulse_ingest_channel last;\n"
                    "            }\n"))
        << o;
    EXPECT_TRUE(has(o,
                    "            internal;\n"
                    "            proxy_pass http://unix:/run/pulse-publisher/"
                    "ingest.sock:/publish/$1;\n"))
        << o;
    EXPECT_TRUE(m.uses_redis());
    std::string y = m.yaml();
    EXPECT_TRUE(has(y,
                    "nginx:\n  host: \"127.0.0.1\"\n  port: 8081\n"
                    "  publish_path: \"/pulse-sidecar/{channel}\"\n"))
        << y;
    EXPECT_TRUE(has(y,
                    "redis:\n  host: \"10.0.0.5\"\n  port: 6380\n"
                    "  db: 2\n  password: \"s3cret\"\n"))
        << y;
    EXPECT_TRUE(has(y, "patterns: [\"dash:pulse:*\"]")) << y;
    EXPECT_TRUE(has(y,
                    "ingest:\n  listen: "
                    "\"unix:/run/pulse-publisher/ingest.sock\"\n"
                    "  stream: \"dash:pulse:ingest\"\n"))
        << y;
    EXPECT_TRUE(has(y,
                    "    keys: [\"dash:pulse:ingest\"]\n"
                    "    target: \"{pulse_channel}\"\n"))
        << y;
    EXPECT_TRUE(report_has(m, "differs: channels live in each nginx"));
    EXPECT_TRUE(report_has(m,
                           "dropped (the sidecar reconnects with capped "
                           "backoff and needs none of them): "
                           "nchan_redis_ping_interval"));
    EXPECT_TRUE(m.problems().empty());
}

// What the ingest cannot take is a problem to route by hand; a publisher
// channel id wins over the common one.
TEST(Migrate, PublishersTheIngestCannotTakeAreProblems)
{
    Migration several;
    ASSERT_TRUE(several
                    .file("c",
                          "nchan_redis_url redis://h:1;\n"
                          "server { location /p { nchan_publisher;\n"
                          "  nchan_channel_id a b; } }\n")
                    .is_ok());
    ASSERT_EQ(several.problems().size(), 1U);
    EXPECT_TRUE(has(several.problems()[0],
                    "c:2: publishes to several channels at once"));
    Migration top;
    ASSERT_TRUE(top.file("c",
                         "nchan_redis_url redis://h:1;\n"
                         "server { nchan_publisher; nchan_channel_id x; }\n")
                    .is_ok());
    ASSERT_EQ(top.problems().size(), 1U);
    EXPECT_TRUE(has(top.problems()[0], "c:2: a server-level publisher"));
    Migration both;
    auto out = both.file("c",
                         "nchan_redis_url redis://h:1;\n"
                         "server { location ~ /p/(\\w+)/(\\w+) {\n"
                         "  nchan_pubsub; nchan_channel_id $1;\n"
                         "  nchan_publisher_channel_id $2; } }\n");
    ASSERT_TRUE(out.is_ok());
    EXPECT_TRUE(both.problems().empty());
    EXPECT_TRUE(has(out.value(), "set $pulse_ingest_channel $2;"))
        << out.value();
}

TEST(Migrate, RedisTlsAndBadUrlsAreProblems)
{
    Migration m;
    ASSERT_TRUE(m.file("c",
                       "nchan_redis_url rediss://h:1;\n"
                       "nchan_redis_url redis://h:99999;\n"
                       "nchan_redis_url redis://h/x1;\n"
                       "nchan_redis_pass nowhere;\n")
                    .is_ok());
    ASSERT_EQ(m.problems().size(), 4U);
    EXPECT_TRUE(has(m.problems()[0],
                    "c:1: nchan_redis_url: the sidecar "
                    "reaches Redis over TCP"));
    EXPECT_TRUE(has(m.problems()[1], "c:2: redis://h:99999: bad port"));
    EXPECT_TRUE(has(m.problems()[2], "c:3: redis://h/x1: bad database"));
    EXPECT_TRUE(has(m.problems()[3],
                    "c:4: nchan_redis_pass nowhere: no "
                    "upstream"));
}

TEST(Migrate, IncludesAreListedAndParseErrorsNameTheFile)
{
    Migration m;
    ASSERT_TRUE(
        m.file("a", "include conf.d/*.conf;\ninclude /etc/x;\n").is_ok());
    EXPECT_EQ(m.includes(),
              (std::vector<std::string>{"conf.d/*.conf", "/etc/x"}));
    auto bad = m.file("b.conf", "http {\n");
    ASSERT_FALSE(bad.is_ok());
    EXPECT_EQ(bad.status().message(),
              "b.conf: line 2: unexpected end of file, expecting \"}\"");
}

TEST(Migrate, UseRedisWithoutAUrlIsNchansDefault)
{
    Migration m;
    auto out = m.file("c",
                      "server { listen 8090; location /p { "
                      "nchan_use_redis on; nchan_publisher; "
                      "nchan_channel_id x; } }\n");
    ASSERT_TRUE(out.is_ok());
    EXPECT_TRUE(has(m.yaml(), "  host: \"127.0.0.1\"\n  port: 8090\n"));
    EXPECT_TRUE(has(m.yaml(), "redis:\n  host: \"127.0.0.1\"\n  port: 6379\n"));
    EXPECT_TRUE(report_has(m, "publisher.yaml uses 127.0.0.1:6379"));
}

TEST(Migrate, AServerLevelPublisherGetsTheSidecarLocationToo)
{
    Migration m;
    auto out = m.file("c",
                      "server { listen 8085; nchan_publisher; "
                      "nchan_channel_id x; nchan_use_redis on; "
                      "nchan_message_timeout 5m; }\n");
    ASSERT_TRUE(out.is_ok());
    EXPECT_TRUE(has(out.value(), "location ~ ^/pulse-sidecar/(.+)$ {"));
    EXPECT_TRUE(has(out.value(), "pulse_message_timeout 5m;\n    }\n"));
    EXPECT_TRUE(parse(out.value()).is_ok());
    EXPECT_TRUE(has(m.yaml(), "  port: 8085\n"));
}

}  // namespace
}  // namespace pulse::migrate
