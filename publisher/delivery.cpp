#include "delivery.h"

#include <algorithm>
#include <chrono>
#include <cstdio>

#include "pulse/message_id.h"
#include "pulse/publish_request.h"
#include "rules.h"

namespace pulse::publisher {

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0)
{
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
        .count();
}

// A name for a log line: control characters as \xNN.
std::string printable(std::string_view s)
{
    std::string out;
    for (char c : s) {
        auto u = static_cast<unsigned char>(c);
        if (u < 0x20 || u == 0x7f) {
            char hex[8];
            std::snprintf(hex, sizeof(hex), "\\x%02x", u);
            out += hex;
        } else {
            out += c;
        }
    }
    return out;
}

}  // namespace

void StateLog::set(const std::string& key, const std::string& state,
                   Level level)
{
    if (states_[key] == state) {
        return;
    }
    states_[key] = state;
    if (!state.empty()) {
        std::string line = key + ": " + state;
        log(level, line);
        lines_.push_back(std::move(line));
        if (lines_.size() > 1000) {
            lines_.erase(lines_.begin());
        }
    }
}

bool is_poison(int status)
{
    return status >= 400 && status < 500 && status != 408 && status != 429;
}

void Delivery::published(const Source& s, double seconds)
{
    n_.observe_latency(seconds);
    n_.ok(s.name);
    n_.nginx_up = true;
    log_.set("nginx", "accepting publishes");
}

// ---------------------------------------------------------------- Pub/Sub

std::optional<Delivery::Pending> Delivery::route_pubsub(const PubSubMessage& m)
{
    for (const Source& s : config_.sources) {
        if (s.kind != SourceKind::kPubSub) {
            continue;
        }
        std::vector<std::string> caps;
        bool mine = false;
        if (m.pattern.empty()) {
            mine = std::find(s.channels.begin(), s.channels.end(), m.channel)
                   != s.channels.end();
        } else if (std::find(s.patterns.begin(), s.patterns.end(), m.pattern)
                   != s.patterns.end())
        {
            auto c = glob_captures(m.pattern, m.channel);
            mine = c.has_value();
            caps = c.value_or(caps);
        }
        if (!mine) {
            continue;
        }
        n_.in(s.name);
        auto target = expand(s.target, m.channel, caps);
        auto event = expand(s.event, m.channel, caps);
        auto key = expand(s.key, m.channel, caps);
        if (!target || target->empty() || !event || !key) {
            n_.drop(s.name);
            log_.set("dropping",
                     "no target channel for '" + printable(m.channel)
                         + "' in source " + s.name,
                     Level::kWarning);
            return std::nullopt;
        }
        // A channel name is publisher input: it must not carry a line
        // break into the event header of the publish.
        if (Status v = validate(PublishFields{*event, "", *key}); !v.is_ok()) {
            n_.drop(s.name);
            log_.set("dropping",
                     "channel '" + printable(m.channel) + "' in source "
                         + s.name + ": " + v.message(),
                     Level::kWarning);
            return std::nullopt;
        }
        return Pending{&s, {*target, m.payload, "", *event, "", *key}};
    }
    return std::nullopt;
}

void Delivery::pubsub(const PubSubMessage& m)
{
    auto p = route_pubsub(m);
    if (!p) {
        return;
    }
    if (queue_.size() >= config_.queue_size) {
        n_.drop(queue_.front().source->name);
        queue_.pop_front();
        log_.set("pubsub queue",
                 "full (" + std::to_string(config_.queue_size)
                     + "): dropping the oldest events",
                 Level::kWarning);
    }
    queue_.push_back(std::move(*p));
    n_.queue_depth = queue_.size();
}

void Delivery::publish_queued(size_t max)
{
    std::vector<PublishClient::Request> reqs;
    std::vector<const Source*> sources;
    while (!queue_.empty() && reqs.size() < max) {
        reqs.push_back(std::move(queue_.front().request));
        sources.push_back(queue_.front().source);
        queue_.pop_front();
    }
    auto t0 = std::chrono::steady_clock::now();
    std::vector<int> statuses = nginx_.post_many(reqs);
    double took = seconds_since(t0);
    for (size_t i = 0; i < statuses.size(); ++i) {
        if (statuses[i] == 201 || statuses[i] == 202) {
            published(*sources[i], took);
            log_.set("dropping", "");
            continue;
        }
        n_.drop(sources[i]->name);
        if (statuses[i] < 0) {
            n_.nginx_up = false;
            log_.set("nginx", "unreachable: " + nginx_.error(),
                     Level::kWarning);
        } else {
            n_.nginx_up = true;
            log_.set("dropping",
                     "nginx answered " + std::to_string(statuses[i])
                         + " for channel " + reqs[i].channel,
                     Level::kWarning);
        }
    }
    n_.queue_depth = queue_.size();
    if (queue_.empty()) {
        log_.set("pubsub queue", "");
    }
}

// ---------------------------------------------------------------- streams

std::optional<PublishClient::Request> Delivery::route_entry(
    const StreamEntry& e, std::string* why)
{
    const Source& s = *e.source;
    const std::string* body = field(e.fields, s.body_field);
    auto target = expand(s.target, e.key, {}, e.fields);
    std::optional<std::string> event;
    if (s.event_field.empty()) {
        event = expand(s.event, e.key, {}, e.fields);
    } else {
        const std::string* v = field(e.fields, s.event_field);
        event = v == nullptr ? std::string() : *v;
    }
    const std::string* ctype = s.content_type_field.empty()
                                   ? nullptr
                                   : field(e.fields, s.content_type_field);
    auto key = expand(s.key, e.key, {}, e.fields);
    if (body == nullptr || !target || target->empty() || !event || !key) {
        *why = body == nullptr ? "no field '" + s.body_field + "'"
               : !key          ? std::string("no field for the key template")
                               : std::string("no target channel");
        return std::nullopt;
    }
    // The fields become headers of the publish: the module's rule, checked
    // here so that a line break can never reach the request.
    Status v =
        validate(PublishFields{*event, ctype == nullptr ? "" : *ctype, *key});
    if (!v.is_ok()) {
        *why = v.message();
        return std::nullopt;
    }
    // Every node must give the entry the same id, so an entry whose id has
    // no message id (past the year 9999, or seq >= 1000000) is dropped
    // rather than published under an id nginx would pick.
    auto msg_id = stream_id_to_msg_id(e.id);
    if (!msg_id || !parse_publish_id(*msg_id).is_ok()) {
        *why = "its entry id maps to no message id";
        return std::nullopt;
    }
    return PublishClient::Request{
        *target, *body, ctype == nullptr ? "" : *ctype, *event, *msg_id, *key};
}

void Delivery::drop_entry(const StreamEntry& e, const std::string& why)
{
    n_.drop(e.source->name);
    log_.set("dropping", "stream " + e.key + " entry " + e.id + ": " + why,
             Level::kWarning);
}

// Stream lag: how old the entry just published is (its id is its time).
void Delivery::note_lag(const StreamEntry& e)
{
    size_t dash = e.id.find('-');
    double ms = std::strtod(e.id.substr(0, dash).c_str(), nullptr);
    double now = std::chrono::duration<double, std::milli>(
                     std::chrono::system_clock::now().time_since_epoch())
                     .count();
    n_.stream_lag[e.source->name + "/" + e.key] = (now - ms) / 1000.0;
}

size_t Delivery::streams(const std::vector<StreamEntry>& batch)
{
    // The routable entries go as one pipeline. The first one nginx could
    // not take now ends the batch there: it and everything after it keep
    // their order (held and retried). Entries before that point that can
    // never be published are dropped.
    std::vector<PublishClient::Request> send;
    std::vector<size_t> of;  // send[k] is batch[of[k]]
    std::vector<std::pair<size_t, std::string>> unroutable;
    for (size_t i = 0; i < batch.size(); ++i) {
        std::string why;
        if (auto req = route_entry(batch[i], &why)) {
            send.push_back(std::move(*req));
            of.push_back(i);
        } else {
            unroutable.emplace_back(i, why);
        }
    }
    auto t0 = std::chrono::steady_clock::now();
    std::vector<int> statuses = nginx_.post_many(send);
    double took = seconds_since(t0);
    size_t done = batch.size();
    for (size_t k = 0; k < statuses.size(); ++k) {
        if (statuses[k] != 201 && statuses[k] != 202 && !is_poison(statuses[k]))
        {
            done = of[k];
            n_.nginx_up = statuses[k] > 0;
            log_.set(
                "nginx",
                (statuses[k] < 0 ? "unreachable: " + nginx_.error()
                                 : "answered " + std::to_string(statuses[k]))
                    + "; holding stream reads and retrying",
                Level::kWarning);
            break;
        }
    }
    for (size_t k = 0; k < statuses.size() && of[k] < done; ++k) {
        const StreamEntry& e = batch[of[k]];
        n_.in(e.source->name);
        if (statuses[k] == 201 || statuses[k] == 202) {
            published(*e.source, took);
            note_lag(e);
        } else {
            n_.nginx_up = true;
            drop_entry(e, "nginx answered " + std::to_string(statuses[k]));
        }
    }
    for (auto& [i, why] : unroutable) {
        if (i < done) {
            n_.in(batch[i].source->name);
            drop_entry(batch[i], why);
        }
    }
    return done;
}

}  // namespace pulse::publisher
