#include "ingest.h"

#include <string>

#include <gtest/gtest.h>

#include "config.h"

namespace pulse::publisher {
namespace {

using State = HttpRequestParser::State;

TEST(IngestParser, ReadsARequestInPiecesAndThePipelinedNext)
{
    HttpRequestParser p(1024);
    std::string two =
        "POST /publish/bw HTTP/1.1\r\nHost: x\r\nContent-Type:  text/json "
        "\r\nContent-Length: 5\r\n\r\nhello"
        "PUT /publish/c HTTP/1.1\r\nContent-Length: 0\r\n\r\n";
    EXPECT_EQ(p.feed(two.substr(0, 20)), State::kPartial);
    EXPECT_EQ(p.feed(two.substr(20, 50)), State::kPartial);
    EXPECT_EQ(p.feed(two.substr(70)), State::kDone);
    EXPECT_EQ(p.method, "POST");
    EXPECT_EQ(p.target, "/publish/bw");
    EXPECT_EQ(p.body, "hello");
    ASSERT_NE(p.header("content-type"), nullptr);
    EXPECT_EQ(*p.header("content-type"), "text/json");
    EXPECT_TRUE(p.keep_alive());
    p.take_next();
    EXPECT_EQ(p.feed(""), State::kDone);
    EXPECT_EQ(p.method, "PUT");
    EXPECT_EQ(p.body, "");
}

TEST(IngestParser, RefusesWhatItCannotTakeWithTheStatus)
{
    struct Case {
        std::string in;
        int status;
    };
    for (const Case& c : {
             Case{"GET / HTTP/2\r\n\r\n", 400},
             Case{"GARBAGE\r\n\r\n", 400},
             Case{"POST /publish/a HTTP/1.1\r\n bad\r\n\r\n", 400},
             Case{"POST /publish/a HTTP/1.1\r\nContent-Length: x\r\n\r\n", 400},
             Case{"POST /publish/a HTTP/1.1\r\nContent-Length: 11\r\n\r\n",
                  413},
             Case{"POST /publish/a HTTP/1.1\r\nTransfer-Encoding: "
                  "chunked\r\n\r\n",
                  411},
             Case{"POST /publish/a HTTP/1.1\r\nX: " + std::string(17000, 'a'),
                  431},
         })
    {
        HttpRequestParser p(10);
        EXPECT_EQ(p.feed(c.in), State::kError) << c.in.substr(0, 60);
        EXPECT_EQ(p.error_status, c.status) << c.in.substr(0, 60);
        EXPECT_FALSE(p.error.empty());
    }
}

TEST(IngestParser, ConnectionCloseAndHttp10EndTheConnection)
{
    HttpRequestParser a(10);
    ASSERT_EQ(a.feed("POST /publish/a HTTP/1.1\r\nConnection: close\r\n\r\n"),
              State::kDone);
    EXPECT_FALSE(a.keep_alive());
    HttpRequestParser b(10);
    ASSERT_EQ(b.feed("POST /publish/a HTTP/1.0\r\n\r\n"), State::kDone);
    EXPECT_FALSE(b.keep_alive());
}

IngestRequest request(const std::string& head)
{
    HttpRequestParser p(1024);
    EXPECT_EQ(p.feed(head), State::kDone) << head;
    return ingest_request(p);
}

TEST(IngestRequests, TakeTheModulesHeaders)
{
    IngestRequest r = request(
        "POST /publish/eth0?x=1 HTTP/1.1\r\nContent-Type: text/json\r\n"
        "X-EventSource-Event: bw\r\nPulse-Key: eth0\r\nContent-Length: "
        "2\r\n\r\n{}");
    ASSERT_TRUE(r.ok) << r.reason;
    EXPECT_EQ(r.event.channel, "eth0");
    EXPECT_EQ(r.event.body, "{}");
    EXPECT_EQ(r.event.content_type, "text/json");
    EXPECT_EQ(r.event.event, "bw");
    EXPECT_EQ(r.event.key, "eth0");
    IngestConfig c;
    c.stream = "s";
    c.maxlen = 7;
    EXPECT_EQ(xadd_command(c, r.event),
              (std::vector<std::string>{"XADD", "s", "MAXLEN", "~", "7", "*",
                                        "pulse_channel", "eth0", "data", "{}",
                                        "content_type", "text/json", "event",
                                        "bw", "key", "eth0"}));
}

TEST(IngestRequests, RefuseBadPathsMethodsChannelsAndFields)
{
    struct Case {
        std::string head;
        int status;
        std::string reason;
    };
    for (const Case& c : {
             Case{"POST /elsewhere HTTP/1.1\r\n\r\n", 404, "/publish/"},
             Case{"GET /publish/a HTTP/1.1\r\n\r\n", 405, "POST or PUT"},
             Case{"POST /publish/ HTTP/1.1\r\n\r\n", 400, "1 to 1024"},
             Case{"POST /publish/" + std::string(1025, 'a')
                      + " HTTP/1.1\r\n\r\n",
                  400, "1 to 1024"},
             Case{"POST /publish/a\x01 HTTP/1.1\r\n\r\n", 400, "control"},
             Case{"POST /publish/a HTTP/1.1\r\nPulse-Key: "
                      + std::string(300, 'k') + "\r\n\r\n",
                  400, "Pulse-Key header"},
         })
    {
        IngestRequest r = request(c.head);
        EXPECT_FALSE(r.ok);
        EXPECT_EQ(r.status, c.status) << c.head.substr(0, 40);
        EXPECT_NE(r.reason.find(c.reason), std::string::npos) << r.reason;
    }
}

TEST(IngestAnswers, SayTheStatusAndLength)
{
    EXPECT_EQ(
        http_answer(202, "stored 1-0\n", true, "Pulse-Stream-Id: 1-0\r\n"),
        "HTTP/1.1 202 Accepted\r\nContent-Type: text/plain\r\n"
        "Content-Length: 11\r\nPulse-Stream-Id: 1-0\r\n\r\nstored 1-0\n");
    EXPECT_EQ(http_answer(503, "", false),
              "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
              "Content-Length: 0\r\nConnection: close\r\n\r\n");
}

TEST(IngestConfig, IsValidatedWithTheKeyInTheError)
{
    const std::string base =
        "nginx: {port: 80}\nsources: [{type: stream, keys: [pulse:ingest]}]\n";
    Config c = Config::parse(
        base + "ingest: {listen: 'unix:/run/i.sock', maxlen: 5}\n", "p.yaml");
    EXPECT_EQ(c.ingest.listen, "unix:/run/i.sock");
    EXPECT_EQ(c.ingest.stream, "pulse:ingest");
    EXPECT_EQ(c.ingest.maxlen, 5u);
    for (const auto& [yaml, what] :
         std::vector<std::pair<std::string, std::string>>{
             {"ingest: {stream: s}\n", "ingest.listen: missing"},
             {"ingest: {listen: nowhere}\n", "ingest.listen: must be"},
             {"ingest: {listen: ':1', stream: ''}\n", "ingest.stream"},
             {"ingest: {listen: ':1', maxlen: 0}\n", "ingest.maxlen"},
             {"ingest: {listen: ':1', other: 1}\n", "ingest.other: unknown"},
         })
    {
        try {
            (void) Config::parse(base + yaml, "p.yaml");
            ADD_FAILURE() << yaml;
        } catch (const ConfigError& e) {
            EXPECT_NE(std::string(e.what()).find(what), std::string::npos)
                << e.what();
        }
    }
}

}  // namespace
}  // namespace pulse::publisher
