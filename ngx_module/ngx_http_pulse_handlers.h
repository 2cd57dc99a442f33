#pragma once

// The request handlers, one file each (nchan's src/subscribers/ layout):
// ngx_http_pulse_location.cpp dispatches a location's requests to them by
// method, role and transport.

#include "ngx.h"

#include "ngx_http_pulse_conf.h"
#include "pulse/transport.h"

// Content handlers installed by the location directives.
ngx_int_t ngx_http_pulse_handler(ngx_http_request_t* r) noexcept;
ngx_int_t ngx_http_pulse_stub_status_handler(ngx_http_request_t* r) noexcept;
ngx_int_t ngx_http_pulse_group_handler(ngx_http_request_t* r) noexcept;
ngx_int_t ngx_http_pulse_metrics_handler(ngx_http_request_t* r) noexcept;

namespace pulse::ngx {

// ngx_http_pulse_location.cpp: a request authenticated (and authorized by
// pulse_authorize_request) goes to its handler by method, role and
// transport.
ngx_int_t dispatch(ngx_http_request_t* r, ngx_http_pulse_loc_conf_t* lcf);

// ngx_http_pulse_publish.cpp: POST/PUT, GET channel info, DELETE.
ngx_int_t publish(ngx_http_request_t* r, ngx_http_pulse_loc_conf_t* lcf);
ngx_int_t channel_info(ngx_http_request_t* r, ngx_http_pulse_loc_conf_t* lcf);
ngx_int_t delete_channel(ngx_http_request_t* r, ngx_http_pulse_loc_conf_t* lcf);

// ngx_http_pulse_eventsource.cpp: EventSource, chunked, multipart/mixed and
// raw streams.
ngx_int_t stream_subscribe(ngx_http_request_t* r,
                           ngx_http_pulse_loc_conf_t* lcf, Transport t);

// ngx_http_pulse_poll.cpp: long-poll and interval-poll.
ngx_int_t poll_subscribe(ngx_http_request_t* r, ngx_http_pulse_loc_conf_t* lcf,
                         bool interval);

// ngx_http_pulse_websocket.cpp: a WebSocket handshake (subscriber,
// publisher, pulse.v1).
ngx_int_t websocket(ngx_http_request_t* r, ngx_http_pulse_loc_conf_t* lcf);

}  // namespace pulse::ngx
