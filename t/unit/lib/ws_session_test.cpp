// RFC 6455 5 and 7 (and 7692's inflating) as the session plays them, with a
// fake host and a fake clock: what t/integration/test_websocket.py checked
// only through nginx.

#include "pulse/ws_session.h"

#include <cstring>
#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "pulse/deflate.h"

namespace pulse::ws {
namespace {

// A client frame, masked.
std::string client(Opcode op, std::string_view payload, bool fin = true,
                   bool rsv1 = false)
{
    std::string f;
    f.push_back(static_cast<char>((fin ? 0x80 : 0) | (rsv1 ? 0x40 : 0)
                                  | static_cast<uint8_t>(op)));
    const char mask[4] = {0x11, 0x22, 0x33, 0x44};
    if (payload.size() < 126) {
        f.push_back(static_cast<char>(0x80 | payload.size()));
    } else {
        f.push_back(static_cast<char>(0x80 | 126));
        f.push_back(static_cast<char>(payload.size() >> 8));
        f.push_back(static_cast<char>(payload.size() & 0xff));
    }
    f.append(mask, 4);
    for (size_t i = 0; i < payload.size(); ++i) {
        f.push_back(static_cast<char>(payload[i] ^ mask[i % 4]));
    }
    return f;
}

std::string close_frame(uint16_t code, std::string_view reason = "")
{
    return close_payload(code, reason);
}

struct Sent {
    Opcode op;
    std::string payload;
};

// Records frames, timers, the end; timers fire when the test says.
class Host final : public SessionHost, public SessionApp {
public:
    bool push(Frame* f) override
    {
        if (full) {
            return false;
        }
        std::string_view b = f->view();
        auto op = static_cast<Opcode>(b[0] & 0x0f);
        size_t len = static_cast<uint8_t>(b[1]) & 0x7f;
        size_t at = 2;
        if (len == 126) {
            len = (size_t{static_cast<uint8_t>(b[2])} << 8)
                  | static_cast<uint8_t>(b[3]);
            at = 4;
        }
        sent.push_back(Sent{op, std::string(b.substr(at, len))});
        return true;
    }
    void flush() override
    {
        ++flushes;
        if (session != nullptr && auto_flushed) {
            session->on_flushed();
        }
    }
    void arm(Timer t, uint64_t ms) override { timers[t] = ms; }
    void disarm(Timer t) override { timers.erase(t); }
    void destroy(bool error) override
    {
        destroyed = true;
        destroyed_with_error = error;
    }
    void on_message(std::string payload, bool binary) override
    {
        messages.emplace_back(std::move(payload), binary);
    }
    void on_closing() override { ++closings; }

    Session* session = nullptr;
    bool full = false;
    bool auto_flushed = false;
    std::vector<Sent> sent;
    std::map<Timer, uint64_t> timers;
    std::vector<std::pair<std::string, bool>> messages;
    int flushes = 0;
    int closings = 0;
    bool destroyed = false;
    bool destroyed_with_error = false;
};

struct World {
    explicit World(SessionOptions o = {}) : s(host, host, std::move(o))
    {
        host.session = &s;
        s.start();
    }
    Host host;
    Session s;
};

uint16_t code_of(const Sent& f)
{
    return static_cast<uint16_t>((static_cast<uint8_t>(f.payload[0]) << 8)
                                 | static_cast<uint8_t>(f.payload[1]));
}

TEST(WsSession, PingIsAnsweredWithTheSamePayload)
{
    World w;
    EXPECT_TRUE(w.s.on_bytes(client(Opcode::kPing, "abc")));
    ASSERT_EQ(w.host.sent.size(), 1u);
    EXPECT_EQ(w.host.sent[0].op, Opcode::kPong);
    EXPECT_EQ(w.host.sent[0].payload, "abc");
    // an unsolicited pong is fine
    EXPECT_TRUE(w.s.on_bytes(client(Opcode::kPong, "x")));
    EXPECT_EQ(w.host.sent.size(), 1u);
}

TEST(WsSession, TheClientsCloseIsEchoedThenTheConnectionCloses)
{
    World w;
    EXPECT_FALSE(
        w.s.on_bytes(client(Opcode::kClose, close_frame(1000, "bye"))));
    ASSERT_EQ(w.host.sent.size(), 1u);
    EXPECT_EQ(w.host.sent[0].op, Opcode::kClose);
    EXPECT_EQ(code_of(w.host.sent[0]), 1000);
    EXPECT_EQ(w.host.sent[0].payload.substr(2), "bye");
    EXPECT_FALSE(w.host.destroyed);  // not before the echo is written
    w.s.on_flushed();
    EXPECT_TRUE(w.host.destroyed);
    EXPECT_FALSE(w.host.destroyed_with_error);
    EXPECT_GE(w.host.closings, 1);
}

TEST(WsSession, AnEmptyCloseIsEchoedEmpty)
{
    World w;
    w.s.on_bytes(client(Opcode::kClose, ""));
    EXPECT_EQ(w.host.sent.at(0).payload, "");
}

TEST(WsSession, OurCloseWaitsForTheClientsThenEnds)
{
    World w;
    w.s.close(1001, "410 Gone");
    ASSERT_EQ(w.host.sent.size(), 1u);
    EXPECT_EQ(code_of(w.host.sent[0]), 1001);
    EXPECT_EQ(w.host.timers.at(Timer::kClose), kCloseTimeoutMs);
    EXPECT_TRUE(w.s.closing());
    // data after our close frame is ignored, pings are not answered
    w.s.on_bytes(client(Opcode::kText, "late"));
    w.s.on_bytes(client(Opcode::kPing, ""));
    EXPECT_TRUE(w.host.messages.empty());
    EXPECT_EQ(w.host.sent.size(), 1u);
    EXPECT_FALSE(w.host.destroyed);
    w.s.on_bytes(client(Opcode::kClose, close_frame(1001)));
    EXPECT_TRUE(w.host.destroyed);
}

TEST(WsSession, NoCloseFromTheClientEndsAtTheTimeout)
{
    World w;
    w.s.close(1000, "");
    w.s.on_timer(Timer::kClose);
    EXPECT_TRUE(w.host.destroyed);
    w.s.close(1000, "");  // once
    EXPECT_EQ(w.host.sent.size(), 1u);
}

TEST(WsSession, HeartbeatPingsAndClosesWithoutPong)
{
    SessionOptions o;
    o.ping_interval_ms = 5000;
    World w(o);
    EXPECT_EQ(w.host.timers.at(Timer::kPing), 5000u);
    w.s.on_timer(Timer::kPing);
    EXPECT_EQ(w.host.sent.back().op, Opcode::kPing);
    w.s.on_bytes(client(Opcode::kPong, ""));
    w.s.on_timer(Timer::kPing);  // answered: another ping
    EXPECT_EQ(w.host.sent.back().op, Opcode::kPing);
    w.s.on_timer(Timer::kPing);  // no pong this time
    EXPECT_EQ(w.host.sent.back().op, Opcode::kClose);
    EXPECT_EQ(code_of(w.host.sent.back()), close_code::kGoingAway);
    EXPECT_EQ(w.host.sent.back().payload.substr(2), "No pong received.");
    EXPECT_EQ(w.host.timers.count(Timer::kPing), 0u);
}

TEST(WsSession, IdleTimeoutClosesAs408)
{
    SessionOptions o;
    o.idle_timeout_ms = 3000;
    World w(o);
    w.s.touch();
    EXPECT_EQ(w.host.timers.at(Timer::kIdle), 3000u);
    w.s.on_timer(Timer::kIdle);
    EXPECT_EQ(code_of(w.host.sent.back()), 1000);
    EXPECT_EQ(w.host.sent.back().payload.substr(2), "408 408 Request Timeout");
}

TEST(WsSession, FragmentsAreReassembledAroundControlFrames)
{
    World w;
    std::string bytes = client(Opcode::kText, "hel", false)
                        + client(Opcode::kPing, "p")
                        + client(Opcode::kContinuation, "lo", false)
                        + client(Opcode::kContinuation, "!", true);
    // split anywhere
    for (char c : bytes) {
        w.s.on_bytes(std::string_view(&c, 1));
    }
    ASSERT_EQ(w.host.messages.size(), 1u);
    EXPECT_EQ(w.host.messages[0].first, "hello!");
    EXPECT_EQ(w.host.sent.at(0).op, Opcode::kPong);
}

TEST(WsSession, ProtocolErrorsCloseWithTheirCode)
{
    struct Case {
        std::string bytes;
        uint16_t code;
    };
    std::string unmasked = client(Opcode::kText, "x");
    unmasked[1] = static_cast<char>(unmasked[1] & 0x7f);
    std::vector<Case> cases = {
        {client(Opcode::kContinuation, "x"), close_code::kProtocolError},
        {client(Opcode::kText, "\xff"), close_code::kInvalidData},
        {client(Opcode::kPing, std::string(126, 'p')),
         close_code::kProtocolError},
        {client(Opcode::kText, std::string(200, 'x')), close_code::kTooBig},
        {client(Opcode::kText, "x", true, true), close_code::kProtocolError},
    };
    for (const Case& c : cases) {
        SessionOptions o;
        o.max_message = 100;
        World w(o);
        EXPECT_FALSE(w.s.on_bytes(c.bytes));
        ASSERT_FALSE(w.host.sent.empty());
        EXPECT_EQ(w.host.sent.back().op, Opcode::kClose);
        EXPECT_EQ(code_of(w.host.sent.back()), c.code);
        EXPECT_TRUE(w.host.messages.empty());
    }
}

TEST(WsSession, DeflatedMessagesAreInflated)
{
    SessionOptions o;
    o.deflate = DeflateAgreement{};
    World w(o);
    auto z = deflate_message("hello hello", DeflateOptions{});
    w.s.on_bytes(client(Opcode::kText, z.value(), true, true));
    ASSERT_EQ(w.host.messages.size(), 1u);
    EXPECT_EQ(w.host.messages[0].first, "hello hello");
    w.s.on_bytes(client(Opcode::kText, "\xff\xff garbage", true, true));
    EXPECT_EQ(code_of(w.host.sent.back()), close_code::kInvalidData);
}

TEST(WsSession, ClientHeartbeatIsAnsweredNotDelivered)
{
    SessionOptions o;
    o.heartbeat_in = "ping";
    o.heartbeat_out = "pong";
    World w(o);
    w.s.on_bytes(client(Opcode::kText, "ping"));
    EXPECT_TRUE(w.host.messages.empty());
    EXPECT_EQ(w.host.sent.at(0).payload, "pong");
    w.s.on_bytes(client(Opcode::kBinary, "ping"));  // binary: a message
    EXPECT_EQ(w.host.messages.size(), 1u);
}

TEST(WsSession, ASlowClientIsAborted)
{
    World w;
    w.host.full = true;
    FrameRef f(Frame::make("x"));
    EXPECT_FALSE(w.s.send_frame(f.get()));
    EXPECT_TRUE(w.host.destroyed);
    EXPECT_TRUE(w.host.destroyed_with_error);
    // a catch-up decides itself
    World v;
    v.host.full = true;
    EXPECT_FALSE(v.s.send_frame(f.get(), false));
    EXPECT_FALSE(v.host.destroyed);
}

TEST(WsSession, GoneEndsWithoutAHandshake)
{
    World w;
    w.s.on_gone(false);
    EXPECT_TRUE(w.host.destroyed);
    EXPECT_TRUE(w.s.dead());
    EXPECT_FALSE(w.s.on_bytes(client(Opcode::kText, "x")));
    EXPECT_TRUE(w.host.sent.empty());
}

TEST(WsSession, CloseCodesForSubscriberStatuses)
{
    EXPECT_EQ(close_for_status(410),
              (std::pair<uint16_t, std::string>{1001, "410 Gone"}));
    EXPECT_EQ(close_for_status(403).first, 1008);
    EXPECT_EQ(close_for_status(507).second, "507 Insufficient Storage");
    EXPECT_EQ(close_for_status(408).second, "408 408 Request Timeout");
    EXPECT_EQ(close_for_status(503),
              (std::pair<uint16_t, std::string>{1000, "410 Gone"}));
    EXPECT_EQ(close_for_status(404),
              (std::pair<uint16_t, std::string>{1000, "404 404"}));
    EXPECT_EQ(close_for_status(502).first, 1011);
}

}  // namespace
}  // namespace pulse::ws
