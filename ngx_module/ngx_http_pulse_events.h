#pragma once

// nchan's channel events: with pulse_channel_events_channel_id, a
// location's subscribers and publishes send pulse_channel_event_string
// (default "$pulse_channel_event $pulse_channel_id") to channel
// `meta/<id>`: subscriber_enqueue, subscriber_dequeue, channel_publish,
// channel_delete (docs/directives.md, Channel events).

#include "ngx.h"

#include <memory>
#include <string>
#include <vector>

#include "ngx_http_pulse_conf.h"
#include "pulse/fanout.h"

namespace pulse::ngx {

enum class ChannelEvent {
    kSubscriberEnqueue,
    kSubscriberDequeue,
    kChannelPublish,
    kChannelDelete,
};

/// Sends `event` for request `r` when its location has channel events.
void send_channel_event(ngx_http_request_t* r, ngx_http_pulse_loc_conf_t* lcf,
                        ChannelEvent event) noexcept;

/// A subscriber's events: its subscriber_enqueue now, its
/// subscriber_dequeue when the returned hold goes (lib/pulse/fanout.h,
/// EventHold: sent even if the worker dies first). nullptr when the
/// location has no channel events. Throws std::bad_alloc.
std::unique_ptr<Fanout::EventHold> subscriber_events(
    ngx_http_request_t* r, ngx_http_pulse_loc_conf_t* lcf);

/// nchan's subscriber info, for a subscriber of `keys` that has just
/// joined. In a pulse_subscriber_info location it is the asker: the
/// request goes to the location's channels now (nullptr). Anywhere else,
/// when some location has pulse_subscriber_info, it answers requests with
/// its pulse_subscriber_info_string, evaluated now, while the listener
/// lives. Throws std::bad_alloc.
std::unique_ptr<Fanout::InfoListener> subscriber_info(
    ngx_http_request_t* r, ngx_http_pulse_loc_conf_t* lcf,
    const std::vector<std::string>& keys);
/// Whether subscriber_info() does anything for this request's subscriber.
bool wants_subscriber_info(ngx_http_request_t* r);

/// Compiles the default event string when a location has events and no
/// string of its own (merge time).
char* merge_channel_events(ngx_conf_t* cf, ngx_http_pulse_loc_conf_t* prev,
                           ngx_http_pulse_loc_conf_t* conf);
/// The same for the subscriber info string.
char* merge_subscriber_info(ngx_conf_t* cf, ngx_http_pulse_loc_conf_t* prev,
                            ngx_http_pulse_loc_conf_t* conf);

}  // namespace pulse::ngx
