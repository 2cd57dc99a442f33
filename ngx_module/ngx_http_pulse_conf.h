#pragma once

#include "ngx.h"

#include "pulse/channel_id.h"
#include "pulse/transport.h"

// Configuration structs. They are written by ngx_conf_set_*_slot through
// offsetof, so they stay standard-layout plain data (docs/conventions.md §3).

// What a location does (pulse_publisher / pulse_subscriber / pulse_pubsub):
// the bits of lib/pulse/transport.h.
enum : ngx_uint_t {
    NGX_HTTP_PULSE_PUB_HTTP = pulse::role::kPubHttp,
    NGX_HTTP_PULSE_PUB_WEBSOCKET = pulse::role::kPubWebSocket,
    NGX_HTTP_PULSE_SUB_WEBSOCKET = pulse::role::kSubWebSocket,
    NGX_HTTP_PULSE_SUB_EVENTSOURCE = pulse::role::kSubEventSource,
    NGX_HTTP_PULSE_SUB_LONGPOLL = pulse::role::kSubLongPoll,
    NGX_HTTP_PULSE_SUB_INTERVALPOLL = pulse::role::kSubIntervalPoll,
    NGX_HTTP_PULSE_SUB_CHUNKED = pulse::role::kSubChunked,
    NGX_HTTP_PULSE_SUB_MULTIPART = pulse::role::kSubMultipart,
    NGX_HTTP_PULSE_SUB_RAWSTREAM = pulse::role::kSubRawStream,
    NGX_HTTP_PULSE_PUB_ANY = pulse::role::kPubAny,
    NGX_HTTP_PULSE_SUB_ANY = pulse::role::kSubAny,
};

// nginx 1.22 names no 410.
constexpr ngx_uint_t NGX_HTTP_PULSE_GONE = 410;

// pulse_subscriber_first_message newest (nchan's "0"): wait for the next.
constexpr ngx_int_t NGX_HTTP_PULSE_FIRST_NEWEST = -1000;

struct ngx_http_pulse_main_conf_t {
    size_t shm_size;
    ngx_shm_zone_t* shm_zone;
    ngx_flag_t used;             // some location uses pulse: make the zone
    ngx_flag_t metrics;          // some location has pulse_metrics: count
    ngx_flag_t subscriber_info;  // some location has pulse_subscriber_info
    // permessage-deflate of published messages (http level, as nchan)
    ngx_int_t deflate_level;
    ngx_int_t deflate_memlevel;
    ngx_uint_t deflate_strategy;
    ngx_int_t deflate_window;
};

struct ngx_http_pulse_loc_conf_t {
    ngx_uint_t roles;
    ngx_array_t* channel_id;      // ngx_http_complex_value_t
    ngx_array_t* pub_channel_id;  // pulse_publisher_channel_id
    ngx_array_t* sub_channel_id;  // pulse_subscriber_channel_id
    ngx_http_complex_value_t* channel_group;
    ngx_str_t split_delimiter;
    ngx_int_t max_channel_id_length;

    ngx_int_t buffer_length;
    ngx_http_complex_value_t* buffer_length_cv;
    ngx_int_t message_timeout;
    ngx_http_complex_value_t* message_timeout_cv;
    ngx_flag_t store_messages;
    time_t channel_timeout;
    ngx_flag_t publisher_message_id;

    ngx_int_t first_message;
    ngx_array_t* last_message_id;  // ngx_http_complex_value_t
    time_t subscriber_timeout;
    ngx_flag_t compound_etag;
    ngx_str_t custom_etag_header;
    ngx_flag_t existing_only;
    ngx_str_t raw_stream_separator;
    ngx_uint_t longpoll_parts;  // pulse_longpoll_multipart_response
    ngx_int_t max_channel_subscribers;
    size_t subscriber_max_buffered;

    ngx_http_complex_value_t* eventsource_event;
    time_t es_ping_interval;
    ngx_str_t es_ping_event;
    ngx_str_t es_ping_data;
    ngx_str_t es_ping_comment;

    ngx_http_complex_value_t* allow_origin;  // NULL: $http_origin (any)
    ngx_flag_t allow_credentials;

    ngx_flag_t stub_status;
    ngx_int_t metrics_tenants;  // pulse_metrics tenants=N
    ngx_flag_t gap_signal;      // pulse_gap_signal on
    ngx_str_t gap_event;        // its EventSource event name
    // pacing (ngx_http_pulse_pacing.cpp)
    ngx_msec_t pace_throttle;   // pulse_subscriber_throttle; 0: live
    ngx_msec_t pace_min;        // pulse_subscriber_throttle_min; 0: none
    ngx_msec_t pace_max;        // pulse_subscriber_throttle_max
    ngx_uint_t queue_messages;  // pulse_subscriber_queue
    size_t queue_bytes;
    ngx_uint_t queue_overflow;  // a pacing::Overflow

    time_t ws_ping_interval;
    ngx_str_t ws_heartbeat_in;  // pulse_websocket_client_heartbeat
    ngx_str_t ws_heartbeat_out;
    size_t ws_max_message_size;
    ngx_flag_t deflate_message;  // pulse_deflate_message_for_websocket
    ngx_int_t max_channels_per_connection;
    ngx_str_t ws_upstream;                  // pulse_websocket_upstream URI
    ngx_http_complex_value_t* ws_identity;  // pulse_websocket_identity
    void* jwt;  // pulse_jwt_*: a JwtConf (ngx_http_pulse_auth.cpp), or NULL
    pulse::ChannelCharset channel_charset;  // zeroed: any byte
    size_t max_message_size;                // pulse_max_message_size
    // nchan's hooks (ngx_http_pulse_hooks.cpp): subrequest URIs, or NULL
    ngx_http_complex_value_t* authorize_request;
    ngx_http_complex_value_t* subscribe_request;
    ngx_http_complex_value_t* unsubscribe_request;
    ngx_http_complex_value_t* publisher_upstream_request;
    // nchan's group accounting (ngx_http_pulse_group.cpp)
    ngx_flag_t group_accounting;
    ngx_uint_t group_location;  // GroupMethod bits; 0: not a group location
    ngx_http_complex_value_t* group_max[4];  // channels, subscribers,
                                             // messages, messages memory
    // nchan's subscriber info (ngx_http_pulse_events.cpp)
    ngx_flag_t subscriber_info;  // a pulse_subscriber_info location
    ngx_http_complex_value_t* subscriber_info_string;
    // nchan's channel events (ngx_http_pulse_events.cpp), or NULL
    ngx_http_complex_value_t* channel_events_id;
    ngx_http_complex_value_t* channel_event_string;
    // per-tenant limits (docs/auth.md, Limits)
    ngx_int_t max_tenant_subscribers;  // 0: none
    ngx_uint_t tenant_rate_milli;      // publishes/s x 1000; 0: none
    ngx_uint_t tenant_burst;
};

extern "C" {
extern ngx_module_t ngx_http_pulse_module;
}
