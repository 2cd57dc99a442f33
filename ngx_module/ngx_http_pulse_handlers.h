#pragma once

#include "ngx.h"

#include "ngx_http_pulse_conf.h"

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

}  // namespace pulse::ngx
