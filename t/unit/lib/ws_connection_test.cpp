// nchan's WebSocket subscribers and publisher, and pulse.v1, over a real
// fan-out and a fake socket.

#include "pulse/ws_connection.h"

#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "pulse/transport.h"
#include "support/fanout_fixture.h"

namespace pulse {
namespace {

using nlohmann::json;
using test::FanoutWorld;

std::string client_text(std::string_view payload)
{
    std::string f;
    f.push_back(static_cast<char>(0x81));
    if (payload.size() < 126) {
        f.push_back(static_cast<char>(0x80 | payload.size()));
    } else {
        f.push_back(static_cast<char>(0x80 | 126));
        f.push_back(static_cast<char>(payload.size() >> 8));
        f.push_back(static_cast<char>(payload.size() & 0xff));
    }
    f.append(4, '\0');  // a zero mask
    f.append(payload);
    return f;
}

class Socket final : public WsConnectionHost {
public:
    bool push(Frame* f) override
    {
        std::string_view b = f->view();
        size_t len = static_cast<uint8_t>(b[1]) & 0x7f;
        size_t at = 2;
        if (len == 126) {
            len = (size_t{static_cast<uint8_t>(b[2])} << 8)
                  | static_cast<uint8_t>(b[3]);
            at = 4;
        }
        frames.push_back({static_cast<uint8_t>(b[0] & 0x0f),
                          std::string(b.substr(at, len))});
        return true;
    }
    void flush() override {}
    void arm(ws::Timer, uint64_t) override {}
    void disarm(ws::Timer) override {}
    void destroy(bool error) override
    {
        destroyed = true;
        (void) error;
    }
    bool command(uint64_t token, std::string_view channel,
                 std::string_view data) override
    {
        commands.push_back({token, std::string(channel), std::string(data)});
        return accept_commands;
    }
    bool publish_upstream(uint64_t token, std::string_view body,
                          std::string_view ctype) override
    {
        upstream.push_back({token, std::string(ctype), std::string(body)});
        return accept_commands;
    }
    void denied(const jwt::Claims*, int, std::string_view channel,
                std::string_view reason) override
    {
        denials.push_back(std::string(channel) + ": " + std::string(reason));
    }
    std::shared_ptr<const jwt::Claims> verify_token(
        std::string_view token, std::string* why,
        std::optional<int64_t>* deadline) override
    {
        auto it = tokens.find(std::string(token));
        if (it == tokens.end()) {
            *why = "bad signature";
            return nullptr;
        }
        *deadline = it->second->exp;
        return it->second;
    }
    void expires_at(std::optional<int64_t> deadline) override
    {
        expiry.push_back(deadline);
    }
    void pace_in(std::optional<uint64_t> ms) override { pace_timer = ms; }
    /// The pacing timer fires.
    void fire(WsConnection& conn)
    {
        pace_timer.reset();
        conn.on_pace_timer();
    }
    uint64_t clock_ms() const override { return clock; }
    bool idle() const override { return is_idle; }
    size_t room() const override { return SIZE_MAX; }

    json next_json()
    {
        EXPECT_FALSE(frames.empty());
        json j = json::parse(frames.front().second);
        frames.erase(frames.begin());
        return j;
    }

    struct Cmd {
        uint64_t token;
        std::string channel;
        std::string data;
    };
    std::vector<std::pair<uint8_t, std::string>> frames;
    std::vector<Cmd> commands;
    std::vector<Cmd> upstream;  // channel: the content type
    std::vector<std::string> denials;
    std::map<std::string, std::shared_ptr<const jwt::Claims>> tokens;
    std::vector<std::optional<int64_t>> expiry;
    bool accept_commands = true;
    bool destroyed = false;
    std::optional<uint64_t> pace_timer;
    uint64_t clock = 0;
    bool is_idle = true;
};

struct V1 {
    explicit V1(FanoutWorld& w,
                uint32_t roles = role::kSubWebSocket | role::kPubWebSocket)
        : V1(w, settings(roles))
    {}
    V1(FanoutWorld& w, WsSettings s)
        : conn(*w.fanout, sock, std::move(s), ws::SessionOptions{})
    {
        EXPECT_TRUE(conn.join(w.host.clock).is_ok());
        conn.start();
    }
    static WsSettings settings(uint32_t roles)
    {
        WsSettings s;
        s.mode = WsMode::kJson;
        s.roles = roles;
        s.max_channels = 2;
        s.commands = true;
        return s;
    }
    json ask(const json& req)
    {
        conn.on_bytes(client_text(req.dump()));
        return sock.next_json();
    }
    Socket sock;
    WsConnection conn;
};

TEST(WsConnection, SubscribePublishAndUnsubscribe)
{
    FanoutWorld w;
    V1 c(w);
    EXPECT_EQ(c.ask({{"type", "subscribe"}, {"channel", "bw"}, {"id", 1}}),
              (json{{"type", "subscribed"}, {"id", 1}, {"channel", "bw"}}));
    json pub = c.ask({{"type", "publish"},
                      {"channel", "bw"},
                      {"data", {{"v", 3}}},
                      {"event", "sample"},
                      {"id", "p"}});
    EXPECT_EQ(pub["type"], "published");
    EXPECT_EQ(pub["subscribers"], 1);
    w.deliver();
    json m = c.sock.next_json();
    EXPECT_EQ(m["type"], "message");
    EXPECT_EQ(m["channel"], "bw");
    EXPECT_EQ(m["data"], R"({"v":3})");
    EXPECT_EQ(m["event"], "sample");
    EXPECT_EQ(m["id"], pub["message_id"]);
    EXPECT_EQ(c.ask({{"type", "unsubscribe"}, {"channel", "bw"}})["type"],
              "unsubscribed");
    EXPECT_EQ(w.subscribers("/bw"), 0u);
    EXPECT_EQ(c.ask({{"type", "unsubscribe"}, {"channel", "bw"}})["code"],
              "not_subscribed");
}

TEST(WsConnection, ResumeAndGap)
{
    FanoutWorld w;
    for (int i = 0; i < 5; ++i) {
        w.publish("/bw", "m" + std::to_string(i), 2);
    }
    V1 c(w);
    json s = c.ask({{"type", "subscribe"},
                    {"channel", "bw"},
                    {"last_event_id", "1000:0"}});
    EXPECT_EQ(s["gap"], true);
    EXPECT_EQ(c.sock.next_json()["data"], "m3");
    EXPECT_EQ(c.sock.next_json()["data"], "m4");
    EXPECT_EQ(c.ask({{"type", "subscribe"},
                     {"channel", "x"},
                     {"last_event_id", "nope"}})["code"],
              "bad_request");
}

TEST(WsConnection, Limits)
{
    FanoutWorld w;
    V1 c(w);
    c.ask({{"type", "subscribe"}, {"channel", "a"}});
    EXPECT_EQ(c.ask({{"type", "subscribe"}, {"channel", "a"}})["code"],
              "already_subscribed");
    c.ask({{"type", "subscribe"}, {"channel", "b"}});
    EXPECT_EQ(c.ask({{"type", "subscribe"}, {"channel", "c"}})["code"],
              "too_many_channels");
    EXPECT_EQ(c.ask({{"type", "publish"},
                     {"channel", std::string(2000, 'x')},
                     {"data", "d"}})["code"],
              "forbidden");
    EXPECT_EQ(c.ask({{"type", "what"}})["code"], "unknown_type");
}

TEST(WsConnection, RolesAreChecked)
{
    FanoutWorld w;
    V1 ro(w, role::kSubWebSocket);
    EXPECT_EQ(
        ro.ask({{"type", "publish"}, {"channel", "a"}, {"data", "x"}})["code"],
        "forbidden");
    V1 wo(w, role::kPubWebSocket);
    EXPECT_EQ(wo.ask({{"type", "subscribe"}, {"channel", "a"}})["code"],
              "forbidden");
}

// A token's ACL and tenant on pulse.v1: one error frame per refused
// channel, an audit call, the socket and its other subscriptions stay.
TEST(WsConnection, TheTokensAclIsCheckedPerChannel)
{
    FanoutWorld w;
    auto claims = std::make_shared<jwt::Claims>();
    claims->tenant = "acme";
    claims->has_acl = true;
    claims->subscribe = {"bw", "metrics.*"};
    claims->publish = {"jobs.**"};
    WsSettings s = V1::settings(role::kSubWebSocket | role::kPubWebSocket);
    s.max_channels = 8;
    s.grant.claims = claims;
    s.group = s.grant.group("");
    V1 c(w, s);
    EXPECT_EQ(c.ask({{"type", "subscribe"}, {"channel", "bw"}})["type"],
              "subscribed");
    EXPECT_EQ(
        c.ask({{"type", "subscribe"}, {"channel", "metrics.cpu"}})["type"],
        "subscribed");
    json no = c.ask({{"type", "subscribe"}, {"channel", "faults"}, {"id", 4}});
    EXPECT_EQ(no["code"], "forbidden");
    EXPECT_EQ(no["channel"], "faults");
    EXPECT_EQ(no["id"], 4);
    EXPECT_EQ(
        c.ask({{"type", "subscribe"}, {"channel", "metrics.a.b"}})["code"],
        "forbidden");
    EXPECT_EQ(
        c.ask({{"type", "publish"}, {"channel", "bw"}, {"data", "x"}})["code"],
        "forbidden");
    EXPECT_EQ(
        c.ask({{"type", "command"}, {"channel", "bw"}, {"data", "x"}})["code"],
        "forbidden");
    EXPECT_TRUE(c.sock.commands.empty());
    EXPECT_EQ(c.ask({{"type", "publish"},
                     {"channel", "jobs.7"},
                     {"data", "x"}})["type"],
              "published");
    EXPECT_EQ(c.sock.denials.size(), 4U);
    EXPECT_EQ(c.sock.denials[0],
              "faults: Subscribing to this channel is not allowed by the "
              "token.");
    // the tenant is the group: the channels live under acme/
    EXPECT_EQ(w.subscribers("acme/bw"), 1U);
    EXPECT_EQ(w.subscribers("/bw"), 0U);
    EXPECT_FALSE(c.conn.session().closing());
    EXPECT_EQ(c.conn.subscriptions(), 2U);
    // another tenant's publish to "bw" never reaches this socket
    w.publish("other/bw", "theirs", 2);
    w.publish("acme/bw", "ours", 2);
    w.deliver();
    json m = c.sock.next_json();
    EXPECT_EQ(m["data"], "ours");
    EXPECT_TRUE(c.sock.frames.empty());
}

std::shared_ptr<const jwt::Claims> tenant_claims(
    const std::string& tenant, std::vector<std::string> subscribe, int64_t exp)
{
    auto c = std::make_shared<jwt::Claims>();
    c->tenant = tenant;
    c->has_acl = true;
    c->subscribe = std::move(subscribe);
    c->exp = exp;
    return c;
}

// pulse.v1 settings of a socket holding `claims`, its tenant's group.
WsSettings tenant_settings(std::shared_ptr<const jwt::Claims> claims)
{
    WsSettings s = V1::settings(role::kSubWebSocket | role::kPubWebSocket);
    s.max_channels = 8;
    s.grant.claims = std::move(claims);
    s.group = s.grant.group("");
    return s;
}

// pulse.v1 wildcards (docs/websocket.md): live messages of every matching
// channel of the tenant, existing or created later, each framed with its
// own channel; within the ACL, the channel limit, and without history.
TEST(WsConnection, WildcardSubscriptions)
{
    FanoutWorld w;
    WsSettings s =
        tenant_settings(tenant_claims("acme", {"bw", "metrics.**"}, 0));
    w.publish("acme/metrics.cpu", "old", 5);
    w.publish("globex/metrics.cpu", "theirs", 5);
    V1 c(w, s);
    EXPECT_EQ(
        c.ask({{"type", "subscribe"}, {"channel", "metrics.*"}, {"id", 1}}),
        (json{{"type", "subscribed"},
              {"id", 1},
              {"channel", "metrics.*"},
              {"channels", 1}}));
    EXPECT_TRUE(c.sock.frames.empty());  // no history: from now on
    w.publish("acme/metrics.cpu", "c1", 5);
    w.publish("acme/metrics.mem", "m1", 5);  // created now
    w.publish("globex/metrics.disk", "theirs", 5);
    w.publish("acme/metrics.cpu.0", "deeper", 5);
    w.publish("acme/bw", "other", 5);
    w.deliver();
    std::map<std::string, std::string> got;
    while (!c.sock.frames.empty()) {
        json m = c.sock.next_json();
        EXPECT_EQ(m["type"], "message");
        got[m["channel"]] += m["data"].get<std::string>();
    }
    EXPECT_EQ(got, (std::map<std::string, std::string>{{"metrics.cpu", "c1"},
                                                       {"metrics.mem", "m1"}}));
    EXPECT_EQ(w.subscribers("acme/metrics.mem"), 1U);
    EXPECT_EQ(w.subscribers("globex/metrics.disk"), 0U);
    // refusals, each an error frame; the socket and the wildcard stay
    EXPECT_EQ(c.ask({{"type", "subscribe"}, {"channel", "*"}})["code"],
              "forbidden");  // wider than the ACL
    EXPECT_EQ(c.ask({{"type", "subscribe"}, {"channel", "bw.*"}})["code"],
              "forbidden");
    EXPECT_EQ(c.sock.denials.size(), 2U);
    EXPECT_EQ(c.ask({{"type", "subscribe"}, {"channel", "metrics.*"}})["code"],
              "already_subscribed");
    EXPECT_EQ(
        c.ask({{"type", "subscribe"}, {"channel", "metrics.**.x"}})["code"],
        "bad_request");
    json resume = c.ask({{"type", "subscribe"},
                         {"channel", "metrics.*.load"},
                         {"last_event_id", "1000:0"}});
    EXPECT_EQ(resume["code"], "bad_request");
    EXPECT_NE(resume["message"].get<std::string>().find("per channel"),
              std::string::npos);
    // pace and fetch name the wildcard and reach its channels
    EXPECT_EQ(c.ask({{"type", "pace"},
                     {"channel", "metrics.*"},
                     {"mode", "manual"}})["type"],
              "paced");
    w.publish("acme/metrics.cpu", "c2", 5);
    w.publish("acme/metrics.net", "n1", 5);  // joins paced as well
    w.deliver();
    EXPECT_TRUE(c.sock.frames.empty());
    EXPECT_EQ(c.ask({{"type", "fetch"}, {"channel", "metrics.*"}})["type"],
              "message");
    EXPECT_EQ(c.sock.next_json()["type"], "message");
    EXPECT_EQ(
        c.sock.next_json(),
        (json{{"type", "fetched"}, {"channel", "metrics.*"}, {"messages", 2}}));
    // unsubscribing the wildcard leaves all its channels
    EXPECT_EQ(
        c.ask({{"type", "unsubscribe"}, {"channel", "metrics.*"}})["type"],
        "unsubscribed");
    EXPECT_EQ(w.subscribers("acme/metrics.mem"), 0U);
    EXPECT_EQ(c.conn.subscriptions(), 0U);
    EXPECT_EQ(w.fanout->watchers(), 0U);
    w.publish("acme/metrics.new", "x", 5);
    w.deliver();
    EXPECT_TRUE(c.sock.frames.empty());
    EXPECT_FALSE(c.conn.session().closing());
}

// A wildcard joins channels up to the connection's limit and says once
// that it stopped; a channel deleted under it is gone, the wildcard stays
// and joins the channel again when it comes back.
TEST(WsConnection, WildcardLimitAndDeletedChannels)
{
    FanoutWorld w;
    WsSettings s = V1::settings(role::kSubWebSocket | role::kPubWebSocket);
    s.max_channels = 3;  // the wildcard and two channels
    V1 c(w, s);
    for (const char* ch : {"/j.1", "/j.2", "/j.3"}) {
        w.publish(ch, "x", 5);
    }
    // the third channel finds the limit: said before the reply
    json full = c.ask({{"type", "subscribe"}, {"channel", "j.*"}});
    EXPECT_EQ(full["code"], "too_many_channels");
    EXPECT_EQ(full["channel"], "j.*");
    json sub = c.sock.next_json();
    EXPECT_EQ(sub["type"], "subscribed");
    EXPECT_EQ(sub["channels"], 2);
    EXPECT_EQ(c.conn.subscriptions(), 2U);
    w.publish("/j.4", "x", 5);
    w.deliver();
    EXPECT_TRUE(c.sock.frames.empty());  // said once only
    // deleted: gone for that channel, the rest stay
    std::string victim;
    for (const char* ch : {"j.1", "j.2", "j.3"}) {
        if (w.subscribers(std::string("/") + ch) == 1) {
            victim = ch;
            break;
        }
    }
    ASSERT_FALSE(victim.empty());
    ASSERT_TRUE(w.fanout->remove({"/" + victim}, w.host.clock).is_ok());
    w.deliver();
    json gone = c.sock.next_json();
    EXPECT_EQ(gone["type"], "gone");
    EXPECT_EQ(gone["channel"], victim);
    EXPECT_EQ(c.conn.subscriptions(), 1U);
    w.publish("/" + victim, "back", 5);
    w.deliver();
    json m = c.sock.next_json();
    EXPECT_EQ(m["channel"], victim);
    EXPECT_EQ(m["data"], "back");
}

// A socket opened without a token: ping and auth only, until an auth
// frame verifies; then the tenant's group and the token's ACL apply.
TEST(WsConnection, FirstFrameAuth)
{
    FanoutWorld w;
    WsSettings s = V1::settings(role::kSubWebSocket | role::kPubWebSocket);
    s.auth_pending = true;
    s.configured_group = "dash";
    V1 c(w, s);
    c.sock.tokens["good"] = tenant_claims("acme", {"bw"}, 1000);
    EXPECT_EQ(c.ask({{"type", "subscribe"}, {"channel", "bw"}})["code"],
              "unauthorized");
    EXPECT_EQ(
        c.ask({{"type", "publish"}, {"channel", "bw"}, {"data", "x"}})["code"],
        "unauthorized");
    EXPECT_EQ(c.ask({{"type", "ping"}})["type"], "pong");
    EXPECT_EQ(c.ask({{"type", "auth"}})["code"], "bad_request");
    json bad = c.ask({{"type", "auth"}, {"token", "forged"}, {"id", 1}});
    EXPECT_EQ(bad["code"], "unauthorized");
    EXPECT_EQ(bad["message"], "bad signature");
    EXPECT_TRUE(c.sock.expiry.empty());
    EXPECT_EQ(c.ask({{"type", "auth"}, {"token", "good"}, {"id", 2}}),
              (json{{"type", "authenticated"}, {"id", 2}, {"expires", 1000}}));
    ASSERT_EQ(c.sock.expiry.size(), 1U);
    EXPECT_EQ(c.sock.expiry[0], 1000);
    EXPECT_EQ(c.ask({{"type", "subscribe"}, {"channel", "bw"}})["type"],
              "subscribed");
    EXPECT_EQ(w.subscribers("dash:acme/bw"), 1U);
    EXPECT_EQ(c.ask({{"type", "subscribe"}, {"channel", "x"}})["code"],
              "forbidden");
}

// A fresh token keeps the socket; it may not change the tenant, and a
// narrower ACL ends what it no longer allows.
TEST(WsConnection, RefreshKeepsTheTenant)
{
    FanoutWorld w;
    WsSettings s = V1::settings(role::kSubWebSocket | role::kPubWebSocket);
    s.max_channels = 4;
    s.grant.claims = tenant_claims("acme", {"a", "b"}, 100);
    s.group = s.grant.group("");
    V1 c(w, s);
    c.sock.tokens["narrow"] = tenant_claims("acme", {"a"}, 200);
    c.sock.tokens["other"] = tenant_claims("beta", {"**"}, 300);
    c.ask({{"type", "subscribe"}, {"channel", "a"}});
    c.ask({{"type", "subscribe"}, {"channel", "b"}});
    json no = c.ask({{"type", "auth"}, {"token", "other"}});
    EXPECT_EQ(no["code"], "forbidden");
    EXPECT_TRUE(c.sock.expiry.empty());
    EXPECT_EQ(c.conn.subscriptions(), 2U);
    c.conn.on_bytes(
        client_text(json{{"type", "auth"}, {"token", "narrow"}}.dump()));
    json dropped = c.sock.next_json();
    EXPECT_EQ(dropped["code"], "forbidden");
    EXPECT_EQ(dropped["channel"], "b");
    EXPECT_EQ(c.sock.next_json()["type"], "authenticated");
    EXPECT_EQ(c.conn.subscriptions(), 1U);
    EXPECT_EQ(w.subscribers("acme/b"), 0U);
    EXPECT_EQ(w.subscribers("acme/a"), 1U);
    ASSERT_EQ(c.sock.expiry.size(), 1U);
    EXPECT_EQ(c.sock.expiry[0], 200);
    EXPECT_FALSE(c.conn.session().closing());
}

// A fresh token whose ACL no longer covers a wildcard ends it and the
// channels it joined; the others stay.
TEST(WsConnection, RefreshNarrowsAWildcard)
{
    FanoutWorld w;
    WsSettings s = tenant_settings(tenant_claims("acme", {"m.**", "n.*"}, 100));
    w.publish("acme/m.1", "x", 5);
    w.publish("acme/n.1", "x", 5);
    V1 c(w, s);
    c.sock.tokens["narrow"] = tenant_claims("acme", {"m.1", "n.*"}, 200);
    EXPECT_EQ(c.ask({{"type", "subscribe"}, {"channel", "m.*"}})["channels"],
              1);
    EXPECT_EQ(c.ask({{"type", "subscribe"}, {"channel", "n.*"}})["channels"],
              1);
    c.conn.on_bytes(
        client_text(json{{"type", "auth"}, {"token", "narrow"}}.dump()));
    json dropped = c.sock.next_json();
    EXPECT_EQ(dropped["code"], "forbidden");
    EXPECT_EQ(dropped["channel"], "m.*");
    EXPECT_EQ(c.sock.next_json()["type"], "authenticated");
    EXPECT_EQ(w.subscribers("acme/m.1"), 0U);
    EXPECT_EQ(w.subscribers("acme/n.1"), 1U);
    EXPECT_EQ(c.conn.subscriptions(), 1U);
    EXPECT_EQ(w.fanout->watchers(), 1U);
}

TEST(WsConnection, ADeletedChannelIsGoneAndTheSocketStays)
{
    FanoutWorld w;
    V1 c(w);
    c.ask({{"type", "subscribe"}, {"channel", "a"}});
    c.ask({{"type", "subscribe"}, {"channel", "b"}});
    ASSERT_TRUE(w.fanout->remove({"/a"}, w.host.clock).is_ok());
    w.deliver();
    EXPECT_EQ(c.sock.next_json(),
              (json{{"type", "gone"}, {"channel", "a"}, {"status", 410}}));
    EXPECT_EQ(c.conn.subscriptions(), 1u);
    EXPECT_FALSE(c.conn.session().closing());
    w.publish("/b", "still");
    w.deliver();
    EXPECT_EQ(c.sock.next_json()["data"], "still");
}

TEST(WsConnection, CommandsRoundTripAndAreBounded)
{
    FanoutWorld w;
    V1 c(w);
    c.conn.on_bytes(client_text(
        R"({"type":"command","channel":"jobs","data":{"a":1},"id":9})"));
    ASSERT_EQ(c.sock.commands.size(), 1u);
    EXPECT_EQ(c.sock.commands[0].channel, "jobs");
    EXPECT_EQ(c.sock.commands[0].data, R"({"a":1})");
    c.conn.command_done(c.sock.commands[0].token, 200, "ok", false);
    EXPECT_EQ(
        c.sock.next_json(),
        (json{{"type", "reply"}, {"id", 9}, {"status", 200}, {"data", "ok"}}));
    // answered once
    c.conn.command_done(c.sock.commands[0].token, 200, "again", false);
    EXPECT_TRUE(c.sock.frames.empty());
    for (size_t i = 0; i < kMaxCommandsInFlight; ++i) {
        c.conn.on_bytes(client_text(R"({"type":"command","id":1})"));
    }
    EXPECT_TRUE(c.sock.frames.empty());
    EXPECT_EQ(c.ask({{"type", "command"}, {"id", 2}})["code"], "busy");
    c.conn.command_done(c.sock.commands.back().token, 502, "", true);
    EXPECT_EQ(c.sock.next_json()["code"], "upstream_failed");
    c.sock.accept_commands = false;
    EXPECT_EQ(c.ask({{"type", "command"}, {"id", 3}})["code"],
              "upstream_failed");
}

WsSettings nchan_settings(WsMode mode, std::vector<std::string> subs,
                          std::vector<std::string> pubs, uint32_t roles)
{
    WsSettings s;
    s.mode = mode;
    s.roles = roles;
    s.sub_keys = std::move(subs);
    s.pub_keys = std::move(pubs);
    return s;
}

TEST(WsConnection, NchanMetaFramesAndMultiplexedIds)
{
    FanoutWorld w;
    w.publish("/a", "old");
    Socket sock;
    WsConnection c(
        *w.fanout, sock,
        nchan_settings(WsMode::kMeta, {"/a", "/b"}, {}, role::kSubWebSocket),
        ws::SessionOptions{});
    ASSERT_TRUE(c.join(w.host.clock).is_ok());
    c.start();
    ASSERT_EQ(sock.frames.size(), 1u);
    EXPECT_EQ(sock.frames[0].second, "id: 1000:[0],-\n\nold");
    w.publish("/b", "new", 10, "", "text/plain");
    w.deliver();
    EXPECT_EQ(sock.frames[1].second,
              "id: 1000:0,[0]\ncontent-type: text/plain\n\nnew");
}

TEST(WsConnection, NchanPublisherRepliesWithChannelInfo)
{
    FanoutWorld w;
    Socket sock;
    WsSettings s =
        nchan_settings(WsMode::kPlain, {}, {"/p"}, role::kPubWebSocket);
    s.accept = "text/json";
    WsConnection c(*w.fanout, sock, s, ws::SessionOptions{});
    ASSERT_TRUE(c.join(w.host.clock).is_ok());
    c.start();
    c.on_bytes(client_text("hello"));
    ASSERT_EQ(sock.frames.size(), 1u);
    EXPECT_EQ(json::parse(sock.frames[0].second)["messages"], 1);
}

// pulse_publisher_upstream_request per frame: one at a time, in order;
// the answer decides what is published (nchan's statuses).
TEST(WsConnection, FramesGoThroughThePublisherUpstreamInOrder)
{
    FanoutWorld w;
    Socket sock;
    WsSettings s =
        nchan_settings(WsMode::kPlain, {}, {"/p"}, role::kPubWebSocket);
    s.publisher_upstream = true;
    s.content_type = "text/x-orig";
    WsConnection c(*w.fanout, sock, s, ws::SessionOptions{});
    ASSERT_TRUE(c.join(w.host.clock).is_ok());
    c.start();
    c.on_bytes(client_text("one"));
    c.on_bytes(client_text("two"));
    c.on_bytes(client_text("three"));
    c.on_bytes(client_text("four"));
    ASSERT_EQ(sock.upstream.size(), 1u);  // the next waits for the answer
    EXPECT_EQ(sock.upstream[0].data, "one");
    EXPECT_EQ(sock.upstream[0].channel, "text/x-orig");
    auto messages = [&] {
        Store::Guard g(w.store);
        auto i = w.store.info(g, "/p", w.host.clock);
        return i.is_ok() ? i->messages : 0u;
    };
    // a stale or unknown token changes nothing
    c.upstream_done(999, {200, false}, "x", "text/plain");
    EXPECT_EQ(messages(), 0u);
    c.upstream_done(sock.upstream[0].token, {200, false}, "ONE", "text/x-up");
    EXPECT_EQ(messages(), 1u);
    ASSERT_EQ(sock.upstream.size(), 2u);
    EXPECT_EQ(sock.upstream[1].data, "two");
    c.upstream_done(sock.upstream[1].token, {304, false}, "", "");
    c.upstream_done(sock.upstream[2].token, {204, false}, "", "");
    EXPECT_EQ(messages(), 2u);  // "three" dropped
    {
        std::vector<std::string> got;
        Store::Guard g(w.store);
        auto h = w.store.subscribe(g, "/p", 0, w.host.clock, true);
        ASSERT_TRUE(h.is_ok());
        w.store.read_buffered(g, h->channel, std::nullopt,
                              FirstMessage{FirstMessage::kOldest}, w.host.clock,
                              10, [&](const MessageView& m) {
                                  got.push_back(std::string(m.content_type)
                                                + ":" + std::string(m.body));
                              });
        EXPECT_EQ(got, (std::vector<std::string>{"text/x-up:ONE",
                                                 "text/x-orig:two"}));
        w.store.unsubscribe(g, h.value());
    }
    // a refusal ends the socket, as HTTP's 403 would
    ASSERT_EQ(sock.upstream.size(), 4u);
    c.upstream_done(sock.upstream[3].token, {400, false}, "", "");
    EXPECT_EQ(sock.frames.back().first, 0x8);
    EXPECT_EQ(sock.frames.back().second.substr(2), "403 Forbidden");
    EXPECT_EQ(messages(), 2u);
}

TEST(WsConnection, AClientOutrunningThePublisherUpstreamIsClosed)
{
    FanoutWorld w;
    Socket sock;
    WsSettings s =
        nchan_settings(WsMode::kPlain, {}, {"/p"}, role::kPubWebSocket);
    s.publisher_upstream = true;
    WsConnection c(*w.fanout, sock, s, ws::SessionOptions{});
    ASSERT_TRUE(c.join(w.host.clock).is_ok());
    c.start();
    for (size_t i = 0; i <= kMaxCommandsInFlight; ++i) {
        c.on_bytes(client_text("m"));
    }
    ASSERT_FALSE(sock.frames.empty());
    EXPECT_EQ(sock.frames.back().first, 0x8);
    EXPECT_EQ(sock.frames.back().second.substr(2), "429 Too Many Requests");
}

TEST(WsConnection, PublishingWhereNotAllowedCloses1008)
{
    FanoutWorld w;
    Socket sock;
    WsConnection c(
        *w.fanout, sock,
        nchan_settings(WsMode::kPlain, {"/a"}, {}, role::kSubWebSocket),
        ws::SessionOptions{});
    ASSERT_TRUE(c.join(w.host.clock).is_ok());
    c.start();
    c.on_bytes(client_text("x"));
    ASSERT_EQ(sock.frames.size(), 1u);
    EXPECT_EQ(sock.frames[0].first, 0x8);
    EXPECT_EQ(sock.frames[0].second.substr(2), "Publishing not allowed.");
    EXPECT_EQ(w.subscribers("/a"), 0u);  // closing: it left its channel
}

TEST(WsConnection, ShutdownSaysGoodbye)
{
    FanoutWorld w;
    V1 c(w);
    c.ask({{"type", "subscribe"}, {"channel", "a"}});
    w.fanout->shutdown();
    ASSERT_EQ(c.sock.frames.size(), 1u);
    EXPECT_EQ(c.sock.frames[0].second.substr(2), "Server shutting down.");
}

TEST(WsConnection, Subprotocols)
{
    EXPECT_EQ(choose_subprotocol("ws+meta.nchan, pulse.v1").first,
              WsMode::kJson);
    EXPECT_EQ(choose_subprotocol("ws+meta.nchan.v2").second,
              "ws+meta.nchan.v2");
    EXPECT_EQ(choose_subprotocol("graphql-ws").first, WsMode::kPlain);
    EXPECT_EQ(choose_subprotocol("graphql-ws").second, "");
    EXPECT_EQ(choose_subprotocol(std::nullopt).first, WsMode::kPlain);
}

}  // namespace
}  // namespace pulse

namespace pulse {
namespace {

// pulse_max_tenant_subscribers for sockets that authenticate by frame: the
// seat is taken at the first auth, refused past the limit (an error, then
// a close), and given back when the socket goes.
TEST(WsConnection, FirstFrameAuthTakesATenantSeat)
{
    FanoutWorld w;
    WsSettings s = V1::settings(role::kSubWebSocket);
    s.auth_pending = true;
    s.max_tenant_subscribers = 1;
    auto one = std::make_unique<V1>(w, s);
    one->sock.tokens["good"] = tenant_claims("acme", {"**"}, 1000);
    EXPECT_EQ(one->ask({{"type", "auth"}, {"token", "good"}})["type"],
              "authenticated");
    {
        Store::Guard g(w.store);
        EXPECT_EQ(w.store.tenant_subscribers(g, "acme"), 1U);
    }
    V1 two(w, s);
    two.sock.tokens["good"] = tenant_claims("acme", {"**"}, 1000);
    json no = two.ask({{"type", "auth"}, {"token", "good"}, {"id", 3}});
    EXPECT_EQ(no["code"], "forbidden");
    EXPECT_NE(
        no["message"].get<std::string>().find("pulse_max_tenant_subscribers 1"),
        std::string::npos);
    ASSERT_FALSE(two.sock.frames.empty());
    EXPECT_EQ(two.sock.frames.back().first, 0x8);  // a close
    // another tenant is not held up
    V1 three(w, s);
    three.sock.tokens["beta"] = tenant_claims("beta", {"**"}, 1000);
    EXPECT_EQ(three.ask({{"type", "auth"}, {"token", "beta"}})["type"],
              "authenticated");
    one.reset();
    Store::Guard g(w.store);
    EXPECT_EQ(w.store.tenant_subscribers(g, "acme"), 0U);
}

}  // namespace
}  // namespace pulse

namespace pulse {
namespace {

// Publishes `body` to /bw with a conflation key.
void keyed(FanoutWorld& w, const std::string& body, const std::string& key)
{
    w.publish("/bw", body, 100, "", "", key);
}

TEST(WsConnectionPacing, ThrottleConflatesKeysIntoOneBatch)
{
    FanoutWorld w;
    V1 c(w);
    json s = c.ask(
        {{"type", "subscribe"}, {"channel", "bw"}, {"throttle", "250ms"}});
    EXPECT_EQ(s["pace"], "throttle=250ms");
    EXPECT_FALSE(c.sock.pace_timer.has_value());
    keyed(w, "a1", "a");
    w.deliver();  // after a quiet interval: at once
    EXPECT_EQ(c.sock.next_json()["data"], "a1");
    c.sock.clock = 10;
    keyed(w, "a2", "a");
    keyed(w, "b1", "b");
    keyed(w, "a3", "a");
    w.publish("/bw", "plain", 100);
    w.deliver();
    EXPECT_TRUE(c.sock.frames.empty());
    ASSERT_TRUE(c.sock.pace_timer.has_value());
    EXPECT_EQ(*c.sock.pace_timer, 240U);
    c.sock.clock = 250;
    c.sock.fire(c.conn);
    // the latest per key, in publish order, then the keyless one
    EXPECT_EQ(c.sock.next_json()["data"], "b1");
    EXPECT_EQ(c.sock.next_json()["data"], "a3");
    EXPECT_EQ(c.sock.next_json()["data"], "plain");
    EXPECT_TRUE(c.sock.frames.empty());
    EXPECT_FALSE(c.sock.pace_timer.has_value());
    EXPECT_EQ(w.fanout->metrics().counters.conflated, 1U);
}

TEST(WsConnectionPacing, ManualHoldsUntilFetchAndPaceChangesLive)
{
    FanoutWorld w;
    V1 c(w);
    EXPECT_EQ(c.ask({{"type", "subscribe"},
                     {"channel", "bw"},
                     {"mode", "manual"}})["pace"],
              "manual");
    keyed(w, "a1", "a");
    keyed(w, "a2", "a");
    w.deliver();
    EXPECT_TRUE(c.sock.frames.empty());
    EXPECT_EQ(c.ask({{"type", "fetch"}, {"channel", "bw"}})["data"], "a2");
    EXPECT_EQ(c.sock.next_json(),
              (json{{"type", "fetched"}, {"channel", "bw"}, {"messages", 1}}));
    keyed(w, "a3", "a");
    w.deliver();
    EXPECT_TRUE(c.sock.frames.empty());
    // to live on the open socket: the held message goes at once
    EXPECT_EQ(c.ask({{"type", "pace"}, {"channel", "bw"}, {"mode", "live"}}),
              (json{{"type", "paced"}, {"channel", "bw"}, {"pace", "live"}}));
    EXPECT_EQ(c.sock.next_json()["data"], "a3");
    keyed(w, "a4", "a");
    w.deliver();
    EXPECT_EQ(c.sock.next_json()["data"], "a4");
    // errors keep the socket
    EXPECT_EQ(
        c.ask(
            {{"type", "pace"}, {"channel", "nope"}, {"mode", "live"}})["code"],
        "not_subscribed");
    EXPECT_EQ(c.ask({{"type", "pace"}, {"channel", "bw"}})["code"],
              "bad_request");
    EXPECT_EQ(c.ask({{"type", "pace"},
                     {"channel", "bw"},
                     {"throttle", "soon"}})["code"],
              "bad_request");
    EXPECT_EQ(c.ask({{"type", "fetch"}, {"channel", "nope"}})["code"],
              "not_subscribed");
    EXPECT_FALSE(c.sock.destroyed);
}

TEST(WsConnectionPacing, LocationLimitsBoundTheAsk)
{
    FanoutWorld w;
    WsSettings s = V1::settings(role::kSubWebSocket | role::kPubWebSocket);
    s.pace_limits.min_ms = 100;
    s.pace_limits.max_ms = 5000;
    V1 c(w, s);
    EXPECT_EQ(c.ask({{"type", "subscribe"},
                     {"channel", "a"},
                     {"throttle", "1ms"}})["pace"],
              "throttle=100ms");
    EXPECT_EQ(c.ask({{"type", "subscribe"}, {"channel", "b"}})["pace"],
              "throttle=100ms");
    EXPECT_EQ(
        c.ask({{"type", "pace"}, {"channel", "b"}, {"interval", "1h"}})["pace"],
        "interval=5s");
}

TEST(WsConnectionPacing, DropOldestSignalsAGapToASlowSocket)
{
    FanoutWorld w;
    WsSettings s = V1::settings(role::kSubWebSocket | role::kPubWebSocket);
    s.queue = pacing::Bounds{2, 0, pacing::Overflow::kDropOldest};
    V1 c(w, s);
    c.ask({{"type", "subscribe"}, {"channel", "bw"}});
    c.sock.is_idle = false;  // the socket has unsent bytes
    for (int i = 0; i < 5; ++i) {
        w.publish("/bw", "m" + std::to_string(i), 100);
    }
    w.deliver();
    EXPECT_TRUE(c.sock.frames.empty());
    EXPECT_EQ(w.fanout->metrics().counters.dropped, 3U);
    c.sock.is_idle = true;
    c.conn.on_flushed();
    EXPECT_EQ(c.sock.next_json(), (json{{"type", "gap"}, {"channel", "bw"}}));
    EXPECT_EQ(c.sock.next_json()["data"], "m3");
    EXPECT_EQ(c.sock.next_json()["data"], "m4");
}

TEST(WsConnectionPacing, ClosePolicyClosesWithAClearReason)
{
    FanoutWorld w;
    WsSettings s = V1::settings(role::kSubWebSocket | role::kPubWebSocket);
    s.queue = pacing::Bounds{2, 0, pacing::Overflow::kClose};
    V1 c(w, s);
    c.ask({{"type", "subscribe"}, {"channel", "bw"}, {"mode", "manual"}});
    for (int i = 0; i < 3; ++i) {
        w.publish("/bw", "m" + std::to_string(i), 100);
    }
    w.deliver();
    ASSERT_EQ(c.sock.frames.size(), 1U);
    EXPECT_EQ(c.sock.frames[0].first, 0x8);  // close
    EXPECT_NE(c.sock.frames[0].second.find("pulse_subscriber_queue"),
              std::string::npos);
    EXPECT_EQ(w.fanout->metrics().counters.overflow_closes, 1U);
}

TEST(WsConnectionPacing, UrlChannelsOfNchanFramingsArePacedToo)
{
    FanoutWorld w;
    WsSettings s;
    s.mode = WsMode::kPlain;
    s.roles = role::kSubWebSocket;
    s.sub_keys = {"/bw"};
    s.url_pace = pacing::Pace{pacing::Mode::kInterval, 1000};
    V1 c(w, s);
    keyed(w, "a1", "a");
    keyed(w, "a2", "a");
    w.deliver();
    EXPECT_TRUE(c.sock.frames.empty());
    EXPECT_EQ(c.sock.pace_timer, 1000U);
    c.sock.clock = 1000;
    c.sock.fire(c.conn);
    ASSERT_EQ(c.sock.frames.size(), 1U);
    EXPECT_EQ(c.sock.frames[0].second, "a2");
}

}  // namespace
}  // namespace pulse
