#pragma once

// nchan's channel group accounting: pulse_channel_group_accounting,
// pulse_group_max_* and pulse_group_location (docs/directives.md, Channel
// groups). The counts and limits are the store's (lib/pulse/store.h).

#include "ngx.h"

#include <string_view>

#include "ngx_http_pulse_conf.h"
#include "pulse/status.h"

namespace pulse::ngx {

/// pulse_group_location's methods.
enum GroupMethod : ngx_uint_t {
    kGroupGet = 1,
    kGroupSet = 2,
    kGroupDelete = 4,
    kGroupOn = 8,  // a group location, even with every method off
};

/// With pulse_channel_group_accounting on, sets `group`'s limits to the
/// location's pulse_group_max_* values that the request gives (an empty
/// value leaves a limit as it is), as nchan does on every request of such
/// a location. A value that is not a number (a size for the memory) is a
/// kForbidden naming the directive.
Status set_group_limits(ngx_http_request_t* r, ngx_http_pulse_loc_conf_t* lcf,
                        std::string_view group);

}  // namespace pulse::ngx
