#pragma once

// Pacing's nginx side (docs/pacing.md): the location's directives and a
// subscriber request's ask. The pacer itself is lib/pulse/pacing.h.

#include "ngx.h"

#include "ngx_http_pulse_conf.h"
#include "pulse/pacing.h"
#include "pulse/status.h"

namespace pulse::ngx {

/// pulse_subscriber_throttle, _throttle_min and _throttle_max.
pacing::Limits pace_limits(const ngx_http_pulse_loc_conf_t* lcf);
/// pulse_subscriber_queue.
pacing::Bounds queue_bounds(const ngx_http_pulse_loc_conf_t* lcf);
/// The pace of a subscriber request: its ?throttle=, ?interval= or ?mode=
/// (kInvalidArgument, a 400, when malformed), bounded by the location.
/// `manual_ok`: the transport can fetch (pulse.v1).
Result<pacing::Pace> request_pace(ngx_http_request_t* r,
                                  const ngx_http_pulse_loc_conf_t* lcf,
                                  bool manual_ok = false);

}  // namespace pulse::ngx

/// pulse_subscriber_throttle{,_min,_max} DURATION | off
char* ngx_http_pulse_set_pace_duration(ngx_conf_t* cf, ngx_command_t* cmd,
                                       void* conf) noexcept;
/// pulse_subscriber_queue [messages=N] [bytes=SIZE] [overflow=POLICY]
char* ngx_http_pulse_set_queue(ngx_conf_t* cf, ngx_command_t* cmd,
                               void* conf) noexcept;
/// The merge of those settings.
void ngx_http_pulse_merge_pacing(ngx_http_pulse_loc_conf_t* c,
                                 const ngx_http_pulse_loc_conf_t* p);
