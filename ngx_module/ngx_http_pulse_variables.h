#pragma once

// The $pulse_* variables, for log_format and the other directives that
// take variables: $pulse_channel_id, $pulse_subscriber_type,
// $pulse_message_id, $pulse_tenant, $pulse_sub (docs/directives.md).

#include "ngx.h"

#include <string_view>

namespace pulse::ngx {

/// Registers the variables (preconfiguration).
ngx_int_t add_variables(ngx_conf_t* cf);
/// Finds $pulse_message_id's index if the configuration uses it (worker
/// start): handlers set it then, and cost nothing otherwise.
void find_variable_indexes(ngx_cycle_t* cycle);

/// $pulse_message_id of this request: the message it published or
/// answered with.
void set_message_id(ngx_http_request_t* r, std::string_view id);

}  // namespace pulse::ngx
