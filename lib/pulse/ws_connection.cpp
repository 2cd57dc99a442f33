#include "pulse/ws_connection.h"

#include <algorithm>

#include "pulse/channel_id.h"
#include "pulse/channel_info.h"
#include "pulse/transport.h"

namespace pulse {

using ws::close_code::kGoingAway;
using ws::close_code::kPolicy;

/// One channel a connection is subscribed to.
class WsConnection::Sub final : public Subscriber {
public:
    Sub(WsConnection* conn, std::string channel, size_t index,
        const Framing& framing)
        : conn_(conn),
          channel_(std::move(channel)),
          index_(index),
          framing_(framing),
          framing_id_(conn->fanout_.framing_ids().id(framing))
    {
        framing_.channel = channel_;
    }
    Sub(const Sub&) = delete;
    Sub& operator=(const Sub&) = delete;
    Sub(Sub&&) = delete;
    Sub& operator=(Sub&&) = delete;
    ~Sub() override
    {
        if (pacer) {
            conn_->paced_--;
        }
    }

    void on_messages(const std::vector<MsgPtr>& msgs) override
    {
        conn_->deliver(*this, msgs);
    }
    void on_end(int status) override { conn_->sub_ended(*this, status); }
    void on_failure() noexcept override { conn_->session_.abort(); }

    const std::string& channel() const { return channel_; }
    size_t index() const { return index_; }
    const Framing& framing() const { return framing_; }
    uint32_t framing_id() const { return framing_id_; }
    /// none: live, as nchan
    std::optional<pacing::Pacer> pacer;
    /// The wildcard subscription that joined it; none: subscribed by name.
    const Pattern* via = nullptr;

private:
    WsConnection* conn_;
    std::string channel_;  // as the client named it
    size_t index_;         // position in a multiplexed URL subscription
    Framing framing_;
    uint32_t framing_id_;
};

/// A pulse.v1 wildcard subscription: the channels it joins are Subs of
/// their own, in subs_, marked with `via`.
class WsConnection::Pattern final : public ChannelWatcher {
public:
    Pattern(WsConnection* conn, std::string pattern, pacing::Pace p)
        : pace(p), conn_(conn), pattern_(std::move(pattern))
    {}

    void on_channel(std::string_view key, bool created) override
    {
        conn_->pattern_channel(*this, key, created);
    }
    const std::string& pattern() const { return pattern_; }
    pacing::Pace pace;
    bool said_full = false;  // too_many_channels sent once

private:
    WsConnection* conn_;
    std::string pattern_;
};

namespace {

Framing framing_of(const WsSettings& s)
{
    Framing f;
    f.wire = s.mode == WsMode::kMeta   ? Wire::kWsMeta
             : s.mode == WsMode::kJson ? Wire::kWsJson
                                       : Wire::kWsPlain;
    f.deflate = s.compress_out;
    return f;
}

}  // namespace

std::pair<WsMode, std::string> choose_subprotocol(
    std::optional<std::string_view> offered)
{
    if (!offered) {
        return {WsMode::kPlain, ""};
    }
    auto list = ws::split_protocols(*offered);
    for (std::string_view p : list) {
        if (p == ws::kPulseProtocol) {
            return {WsMode::kJson, std::string(p)};
        }
    }
    for (std::string_view p : list) {
        if (p.substr(0, ws::kMetaProtocol.size()) == ws::kMetaProtocol) {
            return {WsMode::kMeta, std::string(p)};
        }
    }
    return {WsMode::kPlain, ""};
}

WsConnection::WsConnection(Fanout& f, WsConnectionHost& host, WsSettings s,
                           ws::SessionOptions o)
    : fanout_(f),
      host_(host),
      set_(std::move(s)),
      session_(host, *this, std::move(o))
{}

WsConnection::~WsConnection()
{
    subs_.clear();
    patterns_.clear();
}

Status WsConnection::join(int64_t now)
{
    Framing f = framing_of(set_);
    multi_.tags.assign(set_.sub_keys.size(), -1);
    for (size_t i = 0; i < set_.sub_keys.size(); ++i) {
        const std::string& key = set_.sub_keys[i];
        auto sub =
            std::make_unique<Sub>(this, key.substr(key.find('/') + 1), i, f);
        Fanout::JoinOptions o = set_.join;
        o.now = now;
        if (set_.after) {
            o.after = MsgId{set_.after->time, set_.after->tags[i]};
        }
        auto j = fanout_.join(sub.get(), key, o);
        if (!j.is_ok()) {
            subs_.clear();
            pending_.clear();
            return j.status();
        }
        for (MsgPtr& m : j->catch_up) {
            pending_.push_back(Pending{std::move(m), sub.get()});
        }
        subs_.push_back(std::move(sub));
    }
    std::stable_sort(pending_.begin(), pending_.end(),
                     [](const Pending& a, const Pending& b) {
                         return a.msg->id < b.msg->id;
                     });
    return Status::ok();
}

void WsConnection::start()
{
    started_ = true;
    for (auto& s : subs_) {
        set_pace(*s, set_.url_pace);  // the catch-up goes at once
    }
    std::vector<Pending> catch_up = std::move(pending_);
    for (Pending& p : catch_up) {
        if (session_.closing()) {
            break;
        }
        push_catch_up(*p.sub, {p.msg});
    }
    session_.start();
    if (!subs_.empty()) {
        session_.touch();
    }
}

// ------------------------------------------------------------- delivery

// One message for `s`: the worker's shared frame, or with a multiplexed
// ws+meta.nchan subscription a frame of its own (its id has a tag per
// channel). False when it was not queued.
bool WsConnection::push_message(Sub& s, Msg& m, bool abort_if_full)
{
    if (set_.mode != WsMode::kMeta || set_.sub_keys.size() < 2) {
        return session_.send_frame(
            m.encoded(s.framing_id(), s.framing(), fanout_.deflate_options()),
            abort_if_full);
    }
    multi_ = advance_multi_id(multi_, s.index(), m.id);
    std::string text = to_string(multi_);
    Framing plain = s.framing();
    plain.deflate = false;
    FrameRef f(Frame::make(encode(m.data(), plain, ShownId{text, multi_.time},
                                  fanout_.deflate_options()),
                           m.published_ns));
    return session_.send_frame(f.get(), abort_if_full);
}

void WsConnection::deliver(Sub& s, const std::vector<MsgPtr>& msgs)
{
    if (session_.closing()) {
        return;
    }
    if (!started_) {
        // joined, 101 not out yet: these follow the catch-up
        for (const MsgPtr& m : msgs) {
            if (s.take(m->id)) {
                pending_.push_back(Pending{m, &s});
            }
        }
        return;
    }
    if (s.pacer) {
        paced(s, msgs);
        return;
    }
    bool any = false;
    for (const MsgPtr& m : msgs) {
        if (!s.take(m->id)) {
            continue;
        }
        if (!push_message(s, *m, true)) {
            return;  // too slow: the session aborted
        }
        any = true;
    }
    if (any) {
        session_.touch();
        session_.flush();
    }
}

// ------------------------------------------------------------- pacing

void WsConnection::set_pace(Sub& s, pacing::Pace p)
{
    if (s.pacer) {
        s.pacer->set_pace(p, host_.clock_ms());
        return;
    }
    if (p.mode == pacing::Mode::kLive
        && set_.queue.overflow == pacing::Overflow::kClose)
    {
        return;  // live, as nchan
    }
    s.pacer.emplace(p, set_.queue, host_.clock_ms(),
                    &fanout_.metrics().counters);
    paced_++;
}

void WsConnection::paced(Sub& s, const std::vector<MsgPtr>& msgs, bool had)
{
    uint64_t now = host_.clock_ms();
    bool writable = host_.idle();
    bool any = false;
    for (const MsgPtr& m : msgs) {
        if (!had && !s.take(m->id)) {
            continue;
        }
        switch (s.pacer->offer(s.index(), m, now, writable)) {
            case pacing::Pacer::Offer::kSend:
                if (!push_message(s, *m, true)) {
                    return;  // too slow: the session aborted
                }
                any = true;
                break;
            case pacing::Pacer::Offer::kHeld:
                break;
            case pacing::Pacer::Offer::kOverflow:
                queue_overflow();
                return;
        }
    }
    if (any) {
        session_.touch();
        session_.flush();
    }
    if (s.pacer->pace().mode != pacing::Mode::kLive && s.pacer->held() != 0) {
        s.park();  // nothing more until the timer: the channel logs it
    }
    rearm(now);
}

// What `s`'s channel logged while it was parked joins what waits; false
// when that passed the bound of a close policy (the socket is closing).
bool WsConnection::gather(Sub& s)
{
    if (!s.parked()) {
        return true;
    }
    bool overflow = false;
    uint64_t read = 0;
    uint64_t published = s.published_since_parked();
    bool whole = s.parked_since([&](const MsgPtr& m) {
        ++read;
        if (!overflow && s.take(m->id)) {
            overflow =
                s.pacer->add(s.index(), m) == pacing::Pacer::Offer::kOverflow;
        }
    });
    s.unpark();
    fanout_.metrics().counters.conflated += published - read;
    bool close = set_.queue.overflow == pacing::Overflow::kClose;
    if (!whole && !close) {
        s.pacer->note_gap();
    }
    if (overflow || (!whole && close)) {
        queue_overflow();  // past the bound, or the log lost part of it
        return false;
    }
    return true;
}

void WsConnection::queue_overflow()
{
    session_.close(kPolicy,
                   "Subscriber queue over its bound (pulse_subscriber_queue): "
                   "resume from the last id.");
}

// A batch of one channel; a gap first when messages were dropped (pulse.v1
// says so; nchan's framings have no way to).
bool WsConnection::push_batch(Sub& s, const pacing::Pacer::Batch& b)
{
    if (b.gap && set_.mode == WsMode::kJson) {
        if (!session_.send_text(ws::reply_frame("gap", "", s.channel()))) {
            return false;
        }
    }
    for (auto it = b.items.begin(); it != b.items.end(); ++it) {
        Msg& m = *it->msg;
        // near the frame's size: a multiplexed id's frame is made when sent
        size_t size = set_.mode == WsMode::kMeta && set_.sub_keys.size() > 1
                          ? m.body.size() + m.content_type.size() + 256
                          : m.encoded(s.framing_id(), s.framing(),
                                      fanout_.deflate_options())
                                ->size();
        if (!host_.idle() && size > host_.room()) {
            // no room for the rest: it goes when the socket drains
            s.pacer->give_back(it, b.items.cend());
            break;
        }
        if (!push_message(s, m, true)) {
            return false;  // the session aborted
        }
    }
    return true;
}

void WsConnection::on_pace()
{
    if (!started_ || session_.closing() || paced_ == 0) {
        return;
    }
    uint64_t now = host_.clock_ms();
    bool writable = host_.idle();
    bool any = false;
    for (auto& s : subs_) {
        if (!s->pacer) {
            continue;
        }
        if (auto due = s->pacer->due(now, writable);
            due && *due == 0 && !gather(*s)) {
            return;
        }
        pacing::Pacer::Batch b = s->pacer->take(now, writable);
        if (b.items.empty()) {
            continue;
        }
        if (!push_batch(*s, b)) {
            return;
        }
        any = true;
    }
    if (any) {
        session_.touch();
        session_.flush();
    }
    rearm(now);
}

void WsConnection::rearm(uint64_t now)
{
    if (session_.closing()) {
        return;
    }
    bool writable = host_.idle();
    std::optional<uint64_t> next;
    for (auto& s : subs_) {
        if (s->pacer) {
            auto d = s->pacer->due(now, writable);
            if (d && (!next || *d < *next)) {
                next = d;
            }
        }
    }
    std::optional<uint64_t> at;
    if (next) {
        at = now + *next;
    }
    if (at != armed_at_) {  // a storm re-arms on every message
        armed_at_ = at;
        host_.pace_in(next);
    }
}

// The buffered messages a new subscription asked for. What does not fit
// in pulse_subscriber_max_buffered is not skipped silently: the socket
// closes after what fits, and the client resumes from the last id it got.
void WsConnection::push_catch_up(Sub& s, const std::vector<MsgPtr>& msgs)
{
    for (const MsgPtr& m : msgs) {
        if (!push_message(s, *m, false)) {
            session_.close(kGoingAway,
                           "Catch-up over pulse_subscriber_max_buffered: "
                           "resume from the last id.");
            return;
        }
    }
}

void WsConnection::sub_ended(Sub& s, int status)
{
    if (session_.closing()) {
        return;
    }
    fanout_.metrics().counters.ended_with(status);
    if (set_.mode == WsMode::kJson && status == end_status::kGone) {
        // one channel of several went away: say so, keep the socket
        std::string channel = s.channel();
        auto it = std::find_if(subs_.begin(), subs_.end(),
                               [&](const auto& p) { return p.get() == &s; });
        if (it != subs_.end()) {
            // freed later: the fan-out is still in its call to `s`
            retired_.push_back(std::move(*it));
            subs_.erase(it);
        }
        session_.send_text(ws::gone_frame(channel));
        session_.flush();
        return;
    }
    if (set_.mode == WsMode::kJson && status == end_status::kShutdown) {
        session_.close(kGoingAway, "Server shutting down.");
        return;
    }
    auto [code, reason] = ws::close_for_status(status);
    session_.close(code, reason);
}

void WsConnection::on_closing()
{
    // may run inside the fan-out's dispatch over one of these channels:
    // leave now, free with the connection
    for (auto& s : subs_) {
        s->detach();
    }
    for (auto& p : patterns_) {
        p->unwatch();
    }
}

void WsConnection::shutdown()
{
    session_.close(kGoingAway, "Server shutting down.");
}

// ------------------------------------------------------------- messages

void WsConnection::on_message(std::string payload, bool binary)
{
    retired_.clear();
    if (set_.mode == WsMode::kJson) {
        if (binary) {
            session_.send_text(ws::error_frame(
                "bad_request", "pulse.v1 requests are text frames.", ""));
        } else {
            handle_request(payload);
        }
        session_.flush();
        return;
    }
    if ((set_.roles & role::kPubWebSocket) == 0) {
        session_.close(kPolicy, "Publishing not allowed.");
        return;
    }
    publish_frame(payload, binary);
}

std::string_view WsConnection::frame_type(bool binary) const
{
    return binary ? std::string_view("application/octet-stream")
                  : std::string_view(set_.content_type);
}

// nchan's WebSocket publisher (docs/protocol.md §6).
void WsConnection::publish_frame(std::string_view payload, bool binary)
{
    if (!set_.publisher_upstream) {
        publish_now(payload, frame_type(binary));
        return;
    }
    // through the upstream first, in order; a client that outruns it is
    // told to slow down
    if (upstream_queue_.size() >= kMaxCommandsInFlight) {
        auto [code, reason] = ws::close_for_status(429);
        session_.close(code, reason);
        return;
    }
    upstream_queue_.push_back({std::string(payload), binary});
    pump_upstream();
}

void WsConnection::pump_upstream()
{
    if (upstream_token_ || upstream_queue_.empty() || session_.closing()) {
        return;
    }
    uint64_t token = next_command_++;
    upstream_token_ = token;
    const Upstreamed& p = upstream_queue_.front();
    if (!host_.publish_upstream(token, p.body, frame_type(p.binary))) {
        upstream_token_.reset();
        auto [code, reason] = ws::close_for_status(500);
        session_.close(code, reason);
    }
}

void WsConnection::upstream_done(uint64_t token, const hooks::Answer& a,
                                 std::string_view body,
                                 std::string_view content_type)
{
    if (upstream_token_ != token || upstream_queue_.empty()) {
        return;  // answered already, or the socket is going
    }
    upstream_token_.reset();
    Upstreamed p = std::move(upstream_queue_.front());
    upstream_queue_.pop_front();
    if (session_.closing()) {
        return;
    }
    int refusal = 0;
    switch (hooks::publisher_upstream_action(a)) {
        case hooks::UpstreamAction::kPublishAnswer:
            publish_now(body, content_type);
            break;
        case hooks::UpstreamAction::kPublishOriginal:
            publish_now(p.body, frame_type(p.binary));
            break;
        case hooks::UpstreamAction::kDrop:
            break;
        case hooks::UpstreamAction::kForbid:
            refusal = 403;
            break;
        case hooks::UpstreamAction::kFail:
            refusal = 500;
            break;
        case hooks::UpstreamAction::kTooBig:
            refusal = 502;
            break;
    }
    if (refusal != 0) {
        // as an HTTP publisher gets 403 / 500 / 502: the socket ends
        auto [code, reason] = ws::close_for_status(refusal);
        session_.close(code, reason);
        return;
    }
    session_.flush();
    pump_upstream();
}

void WsConnection::publish_now(std::string_view payload, std::string_view ctype)
{
    auto out = fanout_.publish(
        set_.pub_keys, set_.spec,
        PublishInput{payload, ctype, "", std::nullopt, tenant(), {}},
        fanout_.now());
    if (!out.is_ok()) {
        auto [code, reason] =
            ws::close_for_status(http_status(out.status().code()));
        session_.close(code, reason);
        return;
    }
    if ((set_.roles & role::kSubWebSocket) == 0) {
        session_.send_text(format_channel_info(
            out->info, info_format_from_accept(set_.accept)));
    }
    session_.flush();
}

// ---------------------------------------------------------------- pulse.v1

void WsConnection::send_error(const ws::Request& req, const Status& st)
{
    session_.send_text(ws::error_frame(ws::error_code(st.code()), st.message(),
                                       req.id, req.channel));
}

void WsConnection::handle_request(std::string_view text)
{
    ws::RequestError err;
    auto req = ws::parse_request(text, &err);
    if (!req) {
        session_.send_text(ws::error_frame(err.code, err.message, err.id));
        return;
    }
    if (set_.auth_pending && req->type != ws::Request::Type::kPing
        && req->type != ws::Request::Type::kAuth)
    {
        session_.send_text(ws::error_frame(
            "unauthorized",
            "Authenticate first: {\"type\":\"auth\",\"token\":...}.", req->id,
            req->channel));
        return;
    }
    switch (req->type) {
        case ws::Request::Type::kPing:
            session_.send_text(ws::reply_frame("pong", req->id, ""));
            return;
        case ws::Request::Type::kAuth:
            json_auth(*req);
            return;
        case ws::Request::Type::kSubscribe:
            json_subscribe(*req);
            return;
        case ws::Request::Type::kUnsubscribe:
            json_unsubscribe(*req);
            return;
        case ws::Request::Type::kPublish:
            json_publish(*req);
            return;
        case ws::Request::Type::kCommand:
            json_command(*req);
            return;
        case ws::Request::Type::kPace:
            json_pace(*req);
            return;
        case ws::Request::Type::kFetch:
            json_fetch(*req);
            return;
    }
}

Result<std::string> WsConnection::json_key(std::string_view channel,
                                           acl::Direction d) const
{
    if (channel.size() > set_.max_channel_id_length) {
        return Status(Code::kForbidden, "Channel id too long.");
    }
    if (Status c = set_.charset.check(channel); !c.is_ok()) {
        return c;
    }
    if (!set_.grant.may(d, channel)) {
        const char* why = d == acl::Direction::kSubscribe
                              ? "Subscribing to this channel is not allowed "
                                "by the token."
                              : "Publishing to this channel is not allowed "
                                "by the token.";
        host_.denied(set_.grant.claims.get(), 403, channel, why);
        return Status(Code::kForbidden, why);
    }
    return channel_key(set_.group, channel);
}

// An `auth` frame: the first authentication of a socket opened without a
// token, or a fresh token before the current one expires. It may not
// change the tenant (the channels already joined live in its group); a
// narrower ACL ends the subscriptions it no longer allows.
void WsConnection::json_auth(const ws::Request& req)
{
    std::string why;
    std::optional<int64_t> deadline;
    auto claims = host_.verify_token(req.token, &why, &deadline);
    if (claims == nullptr) {
        session_.send_text(ws::error_frame("unauthorized", why, req.id));
        return;
    }
    bool first = set_.auth_pending || !set_.grant.authenticated();
    if (!first && claims->tenant != set_.grant.claims->tenant) {
        host_.denied(set_.grant.claims.get(), 403, "",
                     "an auth frame tried to change the tenant");
        session_.send_text(ws::error_frame(
            "forbidden", "A token may not change the connection's tenant.",
            req.id));
        return;
    }
    if (first && set_.auth_pending && !claims->tenant.empty()
        && (set_.roles & role::kSubWebSocket) != 0)
    {
        auto seat = fanout_.seat(claims->tenant, set_.max_tenant_subscribers);
        if (!seat.is_ok()) {
            host_.denied(claims.get(), 403, "", "tenant subscriber limit");
            send_error(req, seat.status());
            session_.close(kPolicy, "Tenant subscriber limit reached.");
            return;
        }
        seat_ = std::move(seat.value());
    }
    set_.grant.claims = std::move(claims);
    if (first) {
        set_.group = set_.grant.group(set_.configured_group);
        set_.auth_pending = false;
    }
    for (auto it = subs_.begin(); it != subs_.end();) {
        if (set_.grant.may(acl::Direction::kSubscribe, (*it)->channel())) {
            ++it;
            continue;
        }
        session_.send_text(ws::error_frame(
            "forbidden", "The new token does not allow this channel.", "",
            (*it)->channel()));
        it = subs_.erase(it);
    }
    for (size_t i = patterns_.size(); i-- > 0;) {
        Pattern* p = patterns_[i].get();
        if (!set_.grant.may_watch(p->pattern())) {
            session_.send_text(ws::error_frame(
                "forbidden", "The new token does not allow this pattern.", "",
                p->pattern()));
            drop_pattern(p);
        }
    }
    host_.expires_at(deadline);
    std::string extra;
    if (deadline) {
        extra = R"("expires":)" + std::to_string(*deadline);
    }
    session_.send_text(ws::reply_frame("authenticated", req.id, "", extra));
}

WsConnection::Sub* WsConnection::find(std::string_view channel)
{
    for (auto& s : subs_) {
        if (s->via == nullptr && s->channel() == channel) {
            return s.get();
        }
    }
    return nullptr;
}

WsConnection::Pattern* WsConnection::find_pattern(std::string_view pattern)
{
    for (auto& p : patterns_) {
        if (p->pattern() == pattern) {
            return p.get();
        }
    }
    return nullptr;
}

void WsConnection::drop_pattern(Pattern* p)
{
    p->unwatch();
    subs_.erase(std::remove_if(subs_.begin(), subs_.end(),
                               [&](const auto& s) { return s->via == p; }),
                subs_.end());
    patterns_.erase(std::find_if(patterns_.begin(), patterns_.end(),
                                 [&](const auto& q) { return q.get() == p; }));
}

// A wildcard subscription (docs/websocket.md): live messages of every
// channel of the group its pattern matches, those that exist and those
// created later, each joined as a channel of its own, within the ACL and
// the connection's channel limit. No resume: ids are per channel.
void WsConnection::json_watch(const ws::Request& req)
{
    const std::string& pattern = req.channel;
    if (!acl::valid_pattern(pattern)) {
        session_.send_text(ws::error_frame(
            "bad_request",
            "Invalid wildcard: `*` is one whole segment, `**` the last one.",
            req.id, pattern));
        return;
    }
    if (req.last_event_id) {
        session_.send_text(ws::error_frame(
            "bad_request",
            "A wildcard subscription has no last_event_id: ids are per "
            "channel; subscribe to a channel by name to resume it.",
            req.id, pattern));
        return;
    }
    if (find_pattern(pattern) != nullptr) {
        session_.send_text(ws::error_frame("already_subscribed",
                                           "Already subscribed to this "
                                           "pattern.",
                                           req.id, pattern));
        return;
    }
    if (patterns_.size() >= kMaxPatterns
        || subs_.size() + patterns_.size() >= set_.max_channels)
    {
        session_.send_text(
            ws::error_frame("too_many_channels",
                            "At most " + std::to_string(kMaxPatterns)
                                + " wildcard subscriptions and "
                                + std::to_string(set_.max_channels)
                                + " channels per connection.",
                            req.id, pattern));
        return;
    }
    std::string literal;  // the charset applies to what is not a wildcard
    for (char ch : pattern) {
        if (ch != '*') {
            literal += ch;
        }
    }
    if (pattern.size() > set_.max_channel_id_length) {
        send_error(req, Status(Code::kForbidden, "Channel id too long."));
        return;
    }
    if (Status c = set_.charset.check(literal); !c.is_ok()) {
        send_error(req, c);
        return;
    }
    if (!set_.grant.may_watch(pattern)) {
        const char* why =
            "This wildcard reaches channels the token does not allow.";
        host_.denied(set_.grant.claims.get(), 403, pattern, why);
        send_error(req, Status(Code::kForbidden, why));
        return;
    }
    pacing::Pace pace = pacing::bounded(set_.pace_limits, req.pace);
    patterns_.push_back(std::make_unique<Pattern>(this, pattern, pace));
    Pattern* p = patterns_.back().get();
    if (Status st = fanout_.watch(p, set_.group, pattern); !st.is_ok()) {
        patterns_.pop_back();
        send_error(req, st);
        return;
    }
    size_t joined = 0;
    for (const auto& s : subs_) {
        joined += s->via == p ? 1 : 0;
    }
    session_.send_text(
        ws::subscribed_frame(req.id, pattern, false, pace, joined));
    session_.touch();
}

void WsConnection::pattern_channel(Pattern& p, std::string_view key,
                                   bool created)
{
    if (session_.closing()) {
        return;
    }
    std::string id(key.substr(key.find('/') + 1));
    for (const auto& s : subs_) {
        if (s->via == &p && s->channel() == id) {
            return;  // joined already
        }
    }
    if (!set_.grant.may(acl::Direction::kSubscribe, id)) {
        return;  // covered by the ACL, so never; but never past it
    }
    if (subs_.size() + patterns_.size() >= set_.max_channels) {
        if (!p.said_full) {
            p.said_full = true;
            session_.send_text(ws::error_frame(
                "too_many_channels",
                "At most " + std::to_string(set_.max_channels)
                    + " channels per connection: further channels of this "
                      "wildcard are not joined.",
                "", p.pattern()));
            session_.flush();
        }
        return;
    }
    Fanout::JoinOptions o = set_.join;
    o.now = fanout_.now();
    o.existing_only = true;
    o.after.reset();
    if (created) {
        o.first = FirstMessage{FirstMessage::kOldest};  // all it has had
    } else {
        o.first = FirstMessage{FirstMessage::kNewest};  // from now on
        o.limit = 0;
    }
    auto sub = std::make_unique<Sub>(this, id, 0, framing_of(set_));
    sub->via = &p;
    auto j = fanout_.join(sub.get(), key, o);
    if (!j.is_ok()) {
        if (j.status().code() != Code::kNotFound) {  // gone meanwhile: none
            session_.send_text(
                ws::error_frame(ws::error_code(j.status().code()),
                                j.status().message(), "", id));
            session_.flush();
        }
        return;
    }
    Sub& s = *sub;
    subs_.push_back(std::move(sub));
    set_pace(s, p.pace);
    if (s.pacer) {
        paced(s, j->catch_up, true);  // live messages: paced as the rest
    } else {
        push_catch_up(s, j->catch_up);
    }
    session_.flush();
}

std::vector<WsConnection::Sub*> WsConnection::named(const ws::Request& req)
{
    std::vector<Sub*> out;
    if (Pattern* p = find_pattern(req.channel)) {
        for (const auto& s : subs_) {
            if (s->via == p) {
                out.push_back(s.get());
            }
        }
        return out;
    }
    if (Sub* s = subscribed(req)) {
        out.push_back(s);
    }
    return out;
}

void WsConnection::json_subscribe(const ws::Request& req)
{
    if ((set_.roles & role::kSubWebSocket) == 0) {
        session_.send_text(ws::error_frame("forbidden",
                                           "Subscribing is not allowed here.",
                                           req.id, req.channel));
        return;
    }
    if (acl::is_wildcard(req.channel)) {
        json_watch(req);
        return;
    }
    if (find(req.channel) != nullptr) {
        session_.send_text(ws::error_frame("already_subscribed",
                                           "Already subscribed to this "
                                           "channel.",
                                           req.id, req.channel));
        return;
    }
    if (subs_.size() + patterns_.size() >= set_.max_channels) {
        session_.send_text(
            ws::error_frame("too_many_channels",
                            "At most " + std::to_string(set_.max_channels)
                                + " channels per connection.",
                            req.id, req.channel));
        return;
    }
    auto key = json_key(req.channel, acl::Direction::kSubscribe);
    if (!key.is_ok()) {
        send_error(req, key.status());
        return;
    }
    Fanout::JoinOptions o = set_.join;
    o.now = fanout_.now();
    if (req.last_event_id) {
        auto id = parse_msg_id(*req.last_event_id);
        if (!id.is_ok()) {
            session_.send_text(ws::error_frame(
                "bad_request", "Message ID invalid", req.id, req.channel));
            return;
        }
        o.after = MsgId{id->time, id->tags[0]};
    }
    auto sub = std::make_unique<Sub>(this, req.channel, 0, framing_of(set_));
    auto j = fanout_.join(sub.get(), key.value(), o);
    if (!j.is_ok()) {
        send_error(req, j.status());
        return;
    }
    Sub& s = *sub;
    subs_.push_back(std::move(sub));
    pacing::Pace pace = pacing::bounded(set_.pace_limits, req.pace);
    session_.send_text(ws::subscribed_frame(req.id, req.channel, j->gap, pace));
    push_catch_up(s, j->catch_up);  // at once; what follows is paced
    set_pace(s, pace);
    session_.touch();
}

WsConnection::Sub* WsConnection::subscribed(const ws::Request& req)
{
    Sub* s = find(req.channel);
    if (s == nullptr) {
        session_.send_text(ws::error_frame("not_subscribed",
                                           "Not subscribed to this channel.",
                                           req.id, req.channel));
    }
    return s;
}

// A subscribed channel's new pace; held messages go out at it.
void WsConnection::json_pace(const ws::Request& req)
{
    Pattern* p = find_pattern(req.channel);
    std::vector<Sub*> subs = named(req);
    if (subs.empty() && p == nullptr) {
        return;
    }
    pacing::Pace pace = pacing::bounded(set_.pace_limits, req.pace);
    if (p != nullptr) {
        p->pace = pace;  // and the channels it joins later
    }
    for (Sub* s : subs) {
        set_pace(*s, pace);
    }
    session_.send_text(ws::reply_frame(
        "paced", req.id, req.channel,
        R"("pace":)" + ws::json_string(pacing::to_string(pace))));
    on_pace();
}

// What a channel holds, now (manual mode's refresh; any pace's).
void WsConnection::json_fetch(const ws::Request& req)
{
    bool pattern = find_pattern(req.channel) != nullptr;
    std::vector<Sub*> subs = named(req);
    if (subs.empty() && !pattern) {
        return;
    }
    size_t n = 0;
    for (Sub* s : subs) {
        if (!s->pacer) {
            continue;
        }
        if (!gather(*s)) {
            return;
        }
        pacing::Pacer::Batch b = s->pacer->fetch(host_.clock_ms());
        n += b.items.size();
        if (!push_batch(*s, b)) {
            return;
        }
    }
    session_.send_text(ws::reply_frame("fetched", req.id, req.channel,
                                       R"("messages":)" + std::to_string(n)));
    session_.touch();
    rearm(host_.clock_ms());
}

void WsConnection::json_unsubscribe(const ws::Request& req)
{
    if (Pattern* p = find_pattern(req.channel)) {
        drop_pattern(p);
        session_.send_text(
            ws::reply_frame("unsubscribed", req.id, req.channel));
        return;
    }
    for (auto it = subs_.begin(); it != subs_.end(); ++it) {
        if ((*it)->via == nullptr && (*it)->channel() == req.channel) {
            subs_.erase(it);
            session_.send_text(
                ws::reply_frame("unsubscribed", req.id, req.channel));
            return;
        }
    }
    session_.send_text(ws::error_frame("not_subscribed",
                                       "Not subscribed to this channel.",
                                       req.id, req.channel));
}

void WsConnection::json_publish(const ws::Request& req)
{
    if ((set_.roles & role::kPubWebSocket) == 0) {
        session_.send_text(ws::error_frame("forbidden",
                                           "Publishing is not allowed here.",
                                           req.id, req.channel));
        return;
    }
    auto key = json_key(req.channel, acl::Direction::kPublish);
    if (!key.is_ok()) {
        send_error(req, key.status());
        return;
    }
    auto out =
        fanout_.publish({key.value()}, set_.spec,
                        PublishInput{req.data, req.content_type, req.event,
                                     std::nullopt, tenant(), req.key},
                        fanout_.now());
    if (!out.is_ok()) {
        send_error(req, out.status());
        return;
    }
    session_.send_text(ws::published_frame(
        req.id, req.channel, out->info.last_id, out->info.subscribers));
}

// A command goes upstream (pulse_websocket_upstream); the reply comes back
// to this client with the request's id.
void WsConnection::json_command(const ws::Request& req)
{
    if (!set_.commands) {
        session_.send_text(ws::error_frame("not_configured",
                                           "This location takes no commands.",
                                           req.id, req.channel));
        return;
    }
    // a command names a channel the upstream acts on: the publish ACL
    if (auto key = json_key(req.channel, acl::Direction::kPublish);
        !key.is_ok()) {
        send_error(req, key.status());
        return;
    }
    if (commands_.size() >= kMaxCommandsInFlight) {
        session_.send_text(
            ws::error_frame("busy", "Too many commands in flight; retry.",
                            req.id, req.channel));
        return;
    }
    uint64_t token = next_command_++;
    commands_.emplace(token, req.id);
    if (!host_.command(token, req.channel, req.data)) {
        commands_.erase(token);
        session_.send_text(ws::error_frame("upstream_failed",
                                           "Cannot start the command.", req.id,
                                           req.channel));
    }
}

void WsConnection::command_done(uint64_t token, int status,
                                std::string_view body, bool failed)
{
    auto it = commands_.find(token);
    if (it == commands_.end()) {
        return;  // answered already
    }
    std::string id = std::move(it->second);
    commands_.erase(it);
    if (session_.closing()) {
        return;
    }
    if (failed) {
        session_.send_text(ws::error_frame(
            "upstream_failed",
            "The command upstream answered " + std::to_string(status) + ".",
            id));
    } else {
        session_.send_text(ws::command_reply_frame(id, status, body));
    }
    session_.flush();
}

}  // namespace pulse
