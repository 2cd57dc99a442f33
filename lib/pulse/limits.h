#pragma once

// The per-tenant limit settings as nginx.conf spells them (docs/auth.md,
// Limits); the limits themselves live in the store (store.h, "tenants").

#include <string_view>

#include "pulse/status.h"
#include "pulse/store.h"

namespace pulse {

/// pulse_tenant_publish_rate's arguments, as limit_req spells a rate:
/// `10r/s` or `600r/m` (a whole number of publishes, at least 1, at most
/// 1000000 per second), and an optional `burst=N` (1 to 1000000; default:
/// one second's worth, at least 1). `off` alone is no limit.
Result<TenantRate> parse_tenant_rate(std::string_view rate,
                                     std::string_view burst);

}  // namespace pulse
