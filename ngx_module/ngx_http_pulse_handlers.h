#pragma once

#include "ngx.h"

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ngx_http_pulse_conf.h"
#include "pulse/channel_info.h"
#include "pulse/message_id.h"
#include "pulse/status.h"
#include "pulse/store.h"

// Content handlers installed by the location directives.
ngx_int_t ngx_http_pulse_handler(ngx_http_request_t* r) noexcept;
ngx_int_t ngx_http_pulse_stub_status_handler(ngx_http_request_t* r) noexcept;

namespace pulse::ngx {

// Called by ngx_http_pulse_handler once the method and role are known.
ngx_int_t publish(ngx_http_request_t* r, ngx_http_pulse_loc_conf_t* lcf);
ngx_int_t channel_info(ngx_http_request_t* r, ngx_http_pulse_loc_conf_t* lcf);
ngx_int_t delete_channel(ngx_http_request_t* r, ngx_http_pulse_loc_conf_t* lcf);
/// Subscribes with the transport the request asks for; NGX_DECLINED when it
/// asks for none this location serves.
ngx_int_t subscribe(ngx_http_request_t* r, ngx_http_pulse_loc_conf_t* lcf);
/// Where a subscriber resumes: from If-Modified-Since/If-None-Match,
/// pulse_subscriber_last_message_id (Last-Event-ID, ?last_event_id=), or
/// nowhere (nullopt: pulse_subscriber_first_message decides). 400 text for
/// a malformed id.
Result<std::optional<MsgId>> resume_id(ngx_http_request_t* r,
                                       ngx_http_pulse_loc_conf_t* lcf);
/// The same for a subscription to `channels` channels (multiplexing): one
/// time and a tag per channel.
Result<std::optional<MultiMsgId>> resume_multi_id(
    ngx_http_request_t* r, ngx_http_pulse_loc_conf_t* lcf, size_t channels);
FirstMessage first_message(ngx_http_pulse_loc_conf_t* lcf);

/// A WebSocket handshake (subscriber, publisher or pulse.v1).
ngx_int_t websocket(ngx_http_request_t* r, ngx_http_pulse_loc_conf_t* lcf);

/// How a location stores what it publishes.
struct PublishSpec {
    uint32_t max_messages = 10;
    int64_t timeout = 3600;
    int64_t channel_timeout = 0;
    bool deflate = false;
};
/// The location's publish settings, its variables evaluated on `r`;
/// kForbidden for values that are not numbers.
Result<PublishSpec> publish_spec(ngx_http_request_t* r,
                                 ngx_http_pulse_loc_conf_t* lcf);

struct Published {
    ChannelInfo info;       // aggregated over the channels
    ngx_uint_t status = 0;  // 201: someone received it, 202: only stored
};
/// Publishes one message to every channel in `keys` and wakes the workers
/// of their subscribers. kNoMemory (507) when the zone is full.
Result<Published> publish_to(ngx_log_t* log,
                             const std::vector<std::string>& keys,
                             const PublishSpec& spec, std::string_view body,
                             std::string_view content_type,
                             std::string_view event, std::optional<MsgId> id);

/// Channel info in the format an Accept header asks for.
std::string info_body(std::string_view accept, const ChannelInfo& info,
                      std::string_view* content_type);

}  // namespace pulse::ngx
