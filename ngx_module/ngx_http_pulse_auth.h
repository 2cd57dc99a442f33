#pragma once

// JWT authentication in nginx: the pulse_jwt_* directives, reading the
// token from the request, and applying lib/pulse/jwt.h's verdict and
// lib/pulse/acl.h's grant. The decisions themselves are in lib/.

#include "ngx.h"

#include <memory>
#include <optional>
#include <string_view>

#include "ngx_http_pulse_conf.h"
#include "pulse/acl.h"

namespace pulse::ngx {

/// The directives' handlers (the module's command list names them):
/// pulse_jwt_key FILE [kid=ID] | off; pulse_jwt_token SOURCE...;
/// pulse_jwt_leeway TIME; pulse_jwt_max_size SIZE; pulse_auth_audit
/// denials|all [LEVEL]; and the string settings, told apart by cmd->post
/// (a JwtField).
enum class JwtField { kIssuer, kAudience, kTenantClaim, kChannelsClaim };
char* set_jwt_key(ngx_conf_t* cf, ngx_command_t* cmd, void* conf) noexcept;
char* set_jwt_token(ngx_conf_t* cf, ngx_command_t* cmd, void* conf) noexcept;
char* set_jwt_leeway(ngx_conf_t* cf, ngx_command_t* cmd, void* conf) noexcept;
char* set_jwt_max_size(ngx_conf_t* cf, ngx_command_t* cmd, void* conf) noexcept;
char* set_jwt_string(ngx_conf_t* cf, ngx_command_t* cmd, void* conf) noexcept;
char* set_auth_audit(ngx_conf_t* cf, ngx_command_t* cmd, void* conf) noexcept;
extern JwtField kJwtIssuer, kJwtAudience, kJwtTenantClaim, kJwtChannelsClaim;

/// Merges the pulse_jwt_* settings of a location with its parent's, and
/// checks them; NGX_CONF_OK or NGX_CONF_ERROR (logged).
char* merge_auth(ngx_conf_t* cf, ngx_http_pulse_loc_conf_t* parent,
                 ngx_http_pulse_loc_conf_t* child);

/// Authenticates the request when its location asks for a token:
/// NGX_DECLINED (go on) with the grant kept in the request's context, or
/// the rc of the 401/403 already sent (and audited).
ngx_int_t authenticate(ngx_http_request_t* r, ngx_http_pulse_loc_conf_t* lcf);

/// One token checked with the location's keys and policy, through the
/// worker's cache: its claims, or nullptr with `why`; `deadline` is
/// exp + leeway when it expires. (pulse.v1 `auth` frames.)
std::shared_ptr<const jwt::Claims> verify_token(
    ngx_http_pulse_loc_conf_t* lcf, std::string_view token, std::string* why,
    std::optional<int64_t>* deadline);
/// How long a pulse.v1 socket opened without a token has to send its
/// `auth` frame (pulse_jwt_token message=TIME).
ngx_msec_t auth_frame_timeout(ngx_http_pulse_loc_conf_t* lcf);

/// When the request's token stops being valid (exp + leeway, Unix
/// seconds): its stream ends then. nullopt without auth or exp.
std::optional<int64_t> token_deadline(ngx_http_request_t* r,
                                      ngx_http_pulse_loc_conf_t* lcf);
/// Milliseconds from now to `deadline` (0 when past).
ngx_msec_t ms_until(int64_t deadline);

/// The request's grant: empty (everything allowed) without auth.
const acl::Grant& request_grant(ngx_http_request_t* r);

/// Writes an audit line for `r` at the location's audit level.
void audit(ngx_http_request_t* r, ngx_http_pulse_loc_conf_t* lcf,
           std::string_view decision, int status, std::string_view channel,
           std::string_view reason);
/// The same for a connection whose request is gone (a WebSocket after the
/// upgrade), with the claims it holds now.
void audit_connection(ngx_connection_t* c, ngx_http_pulse_loc_conf_t* lcf,
                      const jwt::Claims* claims, std::string_view decision,
                      int status, std::string_view channel,
                      std::string_view reason);

}  // namespace pulse::ngx
