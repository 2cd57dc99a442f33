#include "pulse/ws_protocol.h"

#include <cstdint>

#include <nlohmann/json.hpp>
#include <openssl/evp.h>

#include "pulse/json_depth.h"
#include "pulse/publish_request.h"
#include "pulse/websocket.h"

namespace pulse::ws {

namespace {

using nlohmann::json;

std::string base64(std::string_view in)
{
    std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
    int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                            reinterpret_cast<const unsigned char*>(in.data()),
                            static_cast<int>(in.size()));
    out.resize(static_cast<size_t>(n));
    return out;
}

// Reads an optional string member; false when present but not a string.
bool string_member(const json& j, const char* name, std::string* out)
{
    auto it = j.find(name);
    if (it == j.end() || it->is_null()) {
        return true;
    }
    if (!it->is_string()) {
        return false;
    }
    *out = it->get<std::string>();
    return true;
}

}  // namespace

bool is_binary_content(std::string_view content_type)
{
    return content_type == "application/octet-stream";
}

void append_meta_payload(std::string& out, std::string_view id,
                         std::string_view content_type, std::string_view body)
{
    out.append("id: ");
    out.append(id);
    out.push_back('\n');
    if (!content_type.empty()) {
        out.append("content-type: ");
        out.append(content_type);
        out.push_back('\n');
    }
    out.push_back('\n');
    out.append(body);
}

std::string json_string(std::string_view s)
{
    return json(std::string(s))
        .dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string json_message(std::string_view channel, std::string_view id,
                         std::string_view content_type, std::string_view event,
                         std::string_view body)
{
    std::string out = R"({"type":"message","channel":)";
    out += json_string(channel);
    out += R"(,"id":)";
    out += json_string(id);
    if (!content_type.empty() && valid_utf8(content_type)) {
        out += R"(,"content_type":)";
        out += json_string(content_type);
    }
    if (!event.empty() && valid_utf8(event)) {
        out += R"(,"event":)";
        out += json_string(event);
    }
    if (valid_utf8(body)) {
        out += R"(,"data":)";
        out += json_string(body);
    } else {
        out += R"(,"encoding":"base64","data":")";
        out += base64(body);
        out += '"';
    }
    out += '}';
    return out;
}

std::optional<Request> parse_request(std::string_view text, RequestError* err)
{
    // Before parsing: walking a deeply nested value (dump) would recurse
    // once per level.
    if (Status d = check_json_depth(text); !d.is_ok()) {
        *err = {"bad_request", d.message(), ""};
        return std::nullopt;
    }
    json j = json::parse(text, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
        *err = {"bad_request", "A request is a JSON object.", ""};
        return std::nullopt;
    }
    Request r;
    if (auto it = j.find("id"); it != j.end()) {
        if (!it->is_primitive() || it->is_null()) {
            *err = {"bad_request", "\"id\" must be a string or a number.", ""};
            return std::nullopt;
        }
        r.id = it->dump();
    }
    auto type = j.find("type");
    if (type == j.end() || !type->is_string()) {
        *err = {"bad_request", "\"type\" must be a string.", r.id};
        return std::nullopt;
    }
    const std::string& t = type->get_ref<const std::string&>();
    bool needs_channel = true;
    if (t == "subscribe") {
        r.type = Request::Type::kSubscribe;
    } else if (t == "unsubscribe") {
        r.type = Request::Type::kUnsubscribe;
    } else if (t == "ping") {
        r.type = Request::Type::kPing;
        needs_channel = false;
    } else if (t == "publish") {
        r.type = Request::Type::kPublish;
    } else if (t == "command") {
        r.type = Request::Type::kCommand;
        needs_channel = false;
    } else if (t == "auth") {
        r.type = Request::Type::kAuth;
        needs_channel = false;
    } else if (t == "pace") {
        r.type = Request::Type::kPace;
    } else if (t == "fetch") {
        r.type = Request::Type::kFetch;
    } else {
        *err = {"unknown_type", "Unknown request type \"" + t + "\".", r.id};
        return std::nullopt;
    }
    if (!string_member(j, "channel", &r.channel)) {
        *err = {"bad_request", "\"channel\" must be a string.", r.id};
        return std::nullopt;
    }
    if (needs_channel && r.channel.empty()) {
        *err = {"bad_request", "\"channel\" is required.", r.id};
        return std::nullopt;
    }
    std::string last;
    if (!string_member(j, "last_event_id", &last)) {
        *err = {"bad_request", "\"last_event_id\" must be a string.", r.id};
        return std::nullopt;
    }
    if (!last.empty()) {
        r.last_event_id = last;
    }
    if (auto it = j.find("data"); it != j.end()) {
        // a string is sent as is, any other JSON value as its JSON text
        r.data = it->is_string() ? it->get<std::string>() : it->dump();
    }
    if (!string_member(j, "token", &r.token)) {
        *err = {"bad_request", "\"token\" must be a string.", r.id};
        return std::nullopt;
    }
    if (r.type == Request::Type::kAuth && r.token.empty()) {
        *err = {"bad_request", "\"token\" is required.", r.id};
        return std::nullopt;
    }
    if (!string_member(j, "content_type", &r.content_type)
        || !string_member(j, "event", &r.event)
        || !string_member(j, "key", &r.key))
    {
        *err = {"bad_request",
                "\"content_type\", \"event\" and \"key\" are strings.", r.id};
        return std::nullopt;
    }
    if (r.type == Request::Type::kSubscribe || r.type == Request::Type::kPace) {
        std::optional<std::string> ask[3];
        const char* names[3] = {"throttle", "interval", "mode"};
        for (int i = 0; i < 3; ++i) {
            std::string v;
            if (!string_member(j, names[i], &v)) {
                *err = {"bad_request",
                        "\"" + std::string(names[i]) + "\" must be a string.",
                        r.id};
                return std::nullopt;
            }
            if (j.contains(names[i]) && !j[names[i]].is_null()) {
                ask[i] = std::move(v);
            }
        }
        auto pace = pacing::parse_ask(ask[0], ask[1], ask[2]);
        if (!pace.is_ok()) {
            *err = {"bad_request", pace.status().message(), r.id};
            return std::nullopt;
        }
        r.pace = pace.value();
        if (r.type == Request::Type::kPace && !r.pace) {
            *err = {"bad_request",
                    "A pace request gives \"throttle\", \"interval\" or "
                    "\"mode\".",
                    r.id};
            return std::nullopt;
        }
    }
    // The channel goes into frames, logs and, for commands, a header of
    // the upstream request; the event and content type into every
    // subscriber's wire format.
    Status valid = validate_field("channel", r.channel, SIZE_MAX);
    if (valid.is_ok()) {
        valid = validate(PublishFields{r.event, r.content_type, r.key});
    }
    if (!valid.is_ok()) {
        *err = {"bad_request", valid.message(), r.id};
        return std::nullopt;
    }
    return r;
}

std::string reply_frame(std::string_view type, std::string_view id,
                        std::string_view channel, std::string_view extra)
{
    std::string out = R"({"type":)";
    out += json_string(type);
    if (!id.empty()) {
        out += R"(,"id":)";
        out += id;
    }
    if (!channel.empty()) {
        out += R"(,"channel":)";
        out += json_string(channel);
    }
    if (!extra.empty()) {
        out += ',';
        out += extra;
    }
    out += '}';
    return out;
}

std::string error_frame(std::string_view code, std::string_view message,
                        std::string_view id, std::string_view channel)
{
    std::string extra = R"("code":)" + json_string(code) + R"(,"message":)"
                        + json_string(message);
    return reply_frame("error", id, channel, extra);
}

std::string_view error_code(Code code)
{
    switch (code) {
        case Code::kNotFound:
            return "not_found";
        case Code::kForbidden:
            return "forbidden";
        case Code::kNoMemory:
            return "storage_full";
        case Code::kAgain:
            return "unavailable";
        case Code::kTooLarge:
            return "too_large";
        case Code::kTooManyRequests:
            return "rate_limited";
        default:
            return "bad_request";
    }
}

std::string subscribed_frame(std::string_view id, std::string_view channel,
                             bool gap, const pacing::Pace& pace,
                             std::optional<size_t> channels)
{
    std::string extra = gap ? R"("gap":true)" : "";
    if (pace.mode != pacing::Mode::kLive) {
        extra += extra.empty() ? "" : ",";
        extra += R"("pace":)" + json_string(pacing::to_string(pace));
    }
    if (channels) {
        extra += extra.empty() ? "" : ",";
        extra += R"("channels":)" + std::to_string(*channels);
    }
    return reply_frame("subscribed", id, channel, extra);
}

std::string published_frame(std::string_view id, std::string_view channel,
                            MsgId message_id, uint32_t subscribers)
{
    std::string extra = R"("message_id":)" + json_string(to_string(message_id))
                        + R"(,"subscribers":)" + std::to_string(subscribers);
    return reply_frame("published", id, channel, extra);
}

std::string command_reply_frame(std::string_view id, int status,
                                std::string_view body)
{
    std::string extra = R"("status":)" + std::to_string(status);
    if (valid_utf8(body)) {
        extra += R"(,"data":)" + json_string(body);
    }
    return reply_frame("reply", id, "", extra);
}

std::string gone_frame(std::string_view channel)
{
    return reply_frame("gone", "", channel, R"("status":410)");
}

}  // namespace pulse::ws
