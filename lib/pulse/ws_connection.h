#pragma once

// What a WebSocket connection's messages mean (docs/websocket.md): nchan's
// plain and ws+meta.nchan subscribers (one channel or several, from the
// URL), nchan's WebSocket publisher, and the pulse.v1 JSON protocol
// (subscribe/unsubscribe with resume, publish, commands, ping). The
// protocol itself is ws::Session's; the socket, timers and the upstream
// requests of commands are the glue's (WsConnectionHost).

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "pulse/acl.h"
#include "pulse/channel_id.h"
#include "pulse/fanout.h"
#include "pulse/hooks.h"
#include "pulse/ws_protocol.h"
#include "pulse/ws_session.h"

namespace pulse {

enum class WsMode : uint8_t {
    kPlain,  // nchan: one frame per message, no metadata
    kMeta,   // ws+meta.nchan
    kJson,   // pulse.v1
};

/// The subprotocol a Sec-WebSocket-Protocol header asks for: pulse.v1, then
/// ws+meta.nchan (a prefix match, as nchan), else none (plain, and no
/// Sec-WebSocket-Protocol in the answer: nchan's empty one makes browsers
/// fail the connection). The second member is the protocol to echo.
std::pair<WsMode, std::string> choose_subprotocol(
    std::optional<std::string_view> offered);

/// Commands in flight per connection.
constexpr size_t kMaxCommandsInFlight = 16;
/// pulse.v1 wildcard subscriptions per connection (each costs a pass over
/// the zone's channels when it starts).
constexpr size_t kMaxPatterns = 16;

/// A connection's settings: the location's and the handshake's.
struct WsSettings {
    WsMode mode = WsMode::kPlain;
    uint32_t roles = 0;  // role::
    /// Messages published compressed go out compressed (permessage-deflate
    /// agreed, with a window the stored copies fit).
    bool compress_out = false;
    std::vector<std::string> sub_keys;  // the URL's channels
    std::vector<std::string> pub_keys;  // plain/meta publishing
    std::optional<MultiMsgId> after;    // the URL's resume id
    PublishSpec spec;
    std::string content_type;  // plain/meta publishes (the handshake's)
    std::string accept;        // the format of publish replies
    std::string group;         // pulse.v1 channel group
    acl::Grant grant;          // the token's ACL, checked per pulse.v1 channel
    /// pulse.v1 without a token at the handshake: nothing but ping and auth
    /// until an `auth` frame verifies (the host closes 4401 at its timeout)
    bool auth_pending = false;
    std::string configured_group;  // pulse_channel_group, before the tenant
    size_t max_channel_id_length = 1024;
    ChannelCharset charset;    // pulse_channel_id_charset
    size_t max_channels = 64;  // pulse_max_channels_per_connection
    bool commands = false;     // pulse_websocket_upstream is set
    Fanout::JoinOptions join;  // existing_only, max_subscribers, first
    /// pulse_publisher_upstream_request: each published frame goes to the
    /// upstream first (WsConnectionHost::publish_upstream), one at a time in
    /// order, and its answer decides what is published (lib/pulse/hooks.h).
    bool publisher_upstream = false;
    /// pulse_max_tenant_subscribers: a subscriber socket that authenticates
    /// by frame takes its seat among its tenant's then (the handshake's
    /// token takes it in the host, before the upgrade).
    uint32_t max_tenant_subscribers = 0;
    /// lib/pulse/pacing.h: the URL channels' pace (bounded already), what
    /// pulse.v1 subscribers may ask, and every channel's queue.
    pacing::Pace url_pace;
    pacing::Limits pace_limits;
    pacing::Bounds queue;
};

class WsConnectionHost : public ws::SessionHost {
public:
    /// Sends a pulse.v1 command upstream; its answer comes back through
    /// WsConnection::command_done(token, ...). False when it cannot start.
    virtual bool command(uint64_t token, std::string_view channel,
                         std::string_view data) = 0;
    /// A pulse.v1 request was refused (403 for the token's ACL or a limit,
    /// 401 for a token that did not verify): the host writes the audit
    /// line with the claims the connection holds. The socket stays.
    virtual void denied(const jwt::Claims* claims, int status,
                        std::string_view channel, std::string_view reason) = 0;
    /// Verifies a token from an `auth` frame with the location's keys and
    /// policy: its claims, or nullptr with `why`. `deadline` is when it stops
    /// being valid (exp + leeway), if it expires.
    virtual std::shared_ptr<const jwt::Claims> verify_token(
        std::string_view token, std::string* why,
        std::optional<int64_t>* deadline) = 0;
    /// The connection is now valid until `deadline` (none: no expiry); the
    /// host closes it with 4401 then.
    virtual void expires_at(std::optional<int64_t> deadline) = 0;
    /// Sends a published frame to pulse_publisher_upstream_request; the
    /// answer comes back through WsConnection::upstream_done(token, ...).
    /// False when it cannot start.
    virtual bool publish_upstream(uint64_t token, std::string_view body,
                                  std::string_view content_type) = 0;
    /// Pacing: call WsConnection::on_pace() in `ms` milliseconds (nullopt:
    /// no timer).
    virtual void pace_in(std::optional<uint64_t> ms) = 0;
    /// Pacing: a monotonic clock in milliseconds.
    virtual uint64_t clock_ms() const = 0;
    /// Pacing: nothing queued is unsent.
    virtual bool idle() const = 0;
    /// Pacing: bytes push() takes before its limit.
    virtual size_t room() const = 0;

protected:
    ~WsConnectionHost() = default;
};

class WsConnection final : public ws::SessionApp {
public:
    WsConnection(Fanout& f, WsConnectionHost& host, WsSettings s,
                 ws::SessionOptions o);
    WsConnection(const WsConnection&) = delete;
    WsConnection& operator=(const WsConnection&) = delete;
    WsConnection(WsConnection&&) = delete;
    WsConnection& operator=(WsConnection&&) = delete;
    ~WsConnection();

    /// Joins the URL's channels, before the 101: a refused subscription is
    /// still a plain HTTP answer (the error).
    Status join(int64_t now);
    /// The 101 is queued: queues the catch-up and starts the heartbeat.
    void start();

    // Inputs from the glue
    bool on_bytes(std::string_view data) { return session_.on_bytes(data); }
    void on_timer(ws::Timer t) { session_.on_timer(t); }
    void on_flushed()
    {
        session_.on_flushed();
        if (paced_ != 0) {
            on_pace();
        }
    }
    /// The socket drained: writes what pacing holds and is due.
    void on_pace();
    /// The pacing timer from WsConnectionHost::pace_in fired.
    void on_pace_timer()
    {
        armed_at_.reset();
        on_pace();
    }
    void on_gone(bool error) { session_.on_gone(error); }
    /// A command's answer: `failed` when the upstream could not be reached
    /// or answered an error status.
    void command_done(uint64_t token, int status, std::string_view body,
                      bool failed);
    /// pulse_publisher_upstream_request's answer for a published frame.
    void upstream_done(uint64_t token, const hooks::Answer& a,
                       std::string_view body, std::string_view content_type);
    /// The worker is shutting down: say goodbye.
    void shutdown();

    ws::Session& session() { return session_; }
    size_t subscriptions() const { return subs_.size(); }

    // ws::SessionApp
    void on_message(std::string payload, bool binary) override;
    void on_closing() override;

private:
    /// The token's tenant (its publish rate), empty without one.
    std::string_view tenant() const
    {
        return set_.grant.claims ? std::string_view(set_.grant.claims->tenant)
                                 : std::string_view();
    }
    class Sub;
    friend class Sub;
    class Pattern;
    friend class Pattern;
    void json_watch(const ws::Request& req);
    void pattern_channel(Pattern& p, std::string_view key, bool created);
    Pattern* find_pattern(std::string_view pattern);
    /// Ends a wildcard subscription and the channels it joined.
    void drop_pattern(Pattern* p);
    /// The subscriptions a request names: one channel, or a wildcard's.
    std::vector<Sub*> named(const ws::Request& req);
    void deliver(Sub& s, const std::vector<MsgPtr>& msgs);
    void sub_ended(Sub& s, int status);
    bool push_message(Sub& s, Msg& m, bool abort_if_full);
    void push_catch_up(Sub& s, const std::vector<MsgPtr>& msgs);
    void publish_frame(std::string_view payload, bool binary);
    void handle_request(std::string_view text);
    void json_subscribe(const ws::Request& req);
    void json_unsubscribe(const ws::Request& req);
    void json_publish(const ws::Request& req);
    void json_command(const ws::Request& req);
    void json_pace(const ws::Request& req);
    void json_fetch(const ws::Request& req);
    /// `had`: the messages count as taken already (a catch-up).
    void paced(Sub& s, const std::vector<MsgPtr>& msgs, bool had = false);
    bool push_batch(Sub& s, const pacing::Pacer::Batch& b);
    void rearm(uint64_t now);
    bool gather(Sub& s);
    void queue_overflow();
    void set_pace(Sub& s, pacing::Pace p);
    Result<std::string> json_key(std::string_view channel,
                                 acl::Direction d) const;
    void json_auth(const ws::Request& req);
    Sub* find(std::string_view channel);
    /// The request's channel, or nullptr after a not_subscribed error.
    Sub* subscribed(const ws::Request& req);
    void send_error(const ws::Request& req, const Status& st);

    Fanout& fanout_;
    WsConnectionHost& host_;
    WsSettings set_;
    ws::Session session_;
    std::vector<std::unique_ptr<Sub>> subs_;
    std::vector<std::unique_ptr<Pattern>> patterns_;  // pulse.v1 wildcards
    std::unique_ptr<Fanout::TenantSeat> seat_;        // first-frame auth's
    std::vector<std::unique_ptr<Sub>> retired_;       // deleted channels' subs
    struct Pending {
        MsgPtr msg;
        Sub* sub;
    };
    std::vector<Pending> pending_;  // the URL channels' catch-up
    MultiMsgId multi_;  // multiplexed ws+meta.nchan: the last id shown
    std::unordered_map<uint64_t, std::string> commands_;  // token -> id
    uint64_t next_command_ = 1;
    bool started_ = false;
    size_t paced_ = 0;                  // subs with a pacer
    std::optional<uint64_t> armed_at_;  // the pacing timer's clock_ms
    // frames waiting for pulse_publisher_upstream_request, oldest first;
    // the front one is with the upstream while upstream_token_ is set
    struct Upstreamed {
        std::string body;
        bool binary;
    };
    std::deque<Upstreamed> upstream_queue_;
    std::optional<uint64_t> upstream_token_;
    void pump_upstream();
    void publish_now(std::string_view payload, std::string_view ctype);
    std::string_view frame_type(bool binary) const;
};

}  // namespace pulse
