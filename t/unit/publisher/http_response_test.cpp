#include "http_response.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace pulse::publisher {
namespace {

using Responses = std::vector<HttpResponseParser::Response>;

std::vector<int> statuses(const Responses& r)
{
    std::vector<int> out;
    for (const auto& x : r) {
        out.push_back(x.status);
    }
    return out;
}

const std::string k201 =
    "HTTP/1.1 201 Created\r\nServer: nginx\r\nContent-Type: text/plain\r\n"
    "Content-Length: 5\r\n\r\nhello";
const std::string k202 = "HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n";

TEST(HttpResponse, PipelinedResponsesInOneRead)
{
    HttpResponseParser p;
    Responses out;
    ASSERT_TRUE(p.feed(k201 + k202 + k201, &out));
    EXPECT_EQ(statuses(out), (std::vector<int>{201, 202, 201}));
    EXPECT_TRUE(p.idle());
}

TEST(HttpResponse, SplitAtEveryByte)
{
    std::string all = k201 + k202;
    HttpResponseParser p;
    Responses out;
    for (char c : all) {
        ASSERT_TRUE(p.feed(std::string_view(&c, 1), &out));
    }
    EXPECT_EQ(statuses(out), (std::vector<int>{201, 202}));
    EXPECT_TRUE(p.idle());
}

TEST(HttpResponse, ChunkedBodiesAndConnectionClose)
{
    HttpResponseParser p;
    Responses out;
    ASSERT_TRUE(
        p.feed("HTTP/1.1 507 Insufficient Storage\r\n"
               "Transfer-Encoding: chunked\r\nConnection: close\r\n"
               "\r\n5;x=y\r\nhello\r\n0\r\n\r\n"
               "HTTP/1.0 204 No Content\r\n\r\n",
               &out));
    ASSERT_EQ(statuses(out), (std::vector<int>{507, 204}));
    EXPECT_TRUE(out[0].close);
    EXPECT_FALSE(out[1].close);
}

TEST(HttpResponse, GarbageIsAnError)
{
    for (const char* bad :
         {"HTTQ/1.1 200 OK\r\n\r\n", "HTTP/1.1 2x0 OK\r\n\r\n",
          "HTTP/1.1 200OK\r\n\r\n", "HTTP/2 200\r\n\r\n",
          "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
          "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999\r\n\r\n",
          "HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
          "HTTP/1.1 200 OK\r\n\r\n",  // no length
          "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
          "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nabc"})
    {
        HttpResponseParser p;
        Responses out;
        EXPECT_FALSE(p.feed(bad, &out)) << bad;
        EXPECT_FALSE(p.error().empty());
        EXPECT_TRUE(out.empty()) << bad;
    }
}

TEST(HttpResponse, TheInputIsBounded)
{
    HttpResponseParser p;
    Responses out;
    std::string endless = "HTTP/1.1 200 OK\r\nX: ";
    endless += std::string(70 * 1024, 'a');
    EXPECT_FALSE(p.feed(endless, &out));
    EXPECT_EQ(p.error(), "response head over 64 KiB");
    HttpResponseParser q;
    EXPECT_FALSE(
        q.feed("HTTP/1.1 200 OK\r\nContent-Length: 2000000\r\n\r\n", &out));
}

TEST(HttpResponse, AHalfReadResponseIsNotIdle)
{
    HttpResponseParser p;
    Responses out;
    ASSERT_TRUE(p.feed(k201.substr(0, 20), &out));
    EXPECT_FALSE(p.idle());
    p.reset();
    EXPECT_TRUE(p.idle());
}

}  // namespace
}  // namespace pulse::publisher
