#pragma once

// nchan's hooks (docs/auth.md "Hooks"): what an upstream's answer to
// pulse_authorize_request or pulse_publisher_upstream_request means, and
// which headers a hook request carries. The nginx glue makes the
// subrequests (ngx_module/ngx_http_pulse_hooks.cpp) and applies these
// decisions.

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "pulse/jwt.h"

namespace pulse::hooks {

/// A finished hook subrequest: the upstream's status, or `failed` when
/// there is no answer at all (nginx could not run the subrequest).
/// `too_big`: the body was longer than the hook location's
/// subrequest_output_buffer_size, so it was not kept (the status was).
struct Answer {
    int status = 0;
    bool failed = false;
    bool too_big = false;
};

/// pulse_authorize_request's verdict, by status alone. A subscriber
/// refused gets the upstream's status, Content-Type, headers and body
/// (`forward`; without the body when it was too big, as nchan); a
/// publisher refused gets nginx's own 403; no answer at all is a 500 for
/// both.
struct AuthorizeDecision {
    bool allow = false;
    int status = 0;        // when refused
    bool forward = false;  // pass the upstream's headers and body on
};
AuthorizeDecision authorize_decision(const Answer& a, bool publishing);

/// pulse_publisher_upstream_request's verdict: 200/201/202 publish the
/// upstream's body (and Content-Type), 304 the original, 204 nothing (the
/// publisher gets 204); any other status is 403, no answer 500. A body to
/// publish that was too big to keep is a 502 (kTooBig): what the upstream
/// meant to publish is not there.
enum class UpstreamAction {
    kPublishAnswer,
    kPublishOriginal,
    kDrop,
    kForbid,
    kFail,
    kTooBig,
};
UpstreamAction publisher_upstream_action(const Answer& a);

/// True for a header line of a refusing authorize answer that goes on to
/// the subscriber: all but those nginx writes for the response itself
/// (Content-Type, which goes on apart, Content-Length, Server, Connection,
/// Date, Transfer-Encoding, Keep-Alive), compared case-insensitively.
bool forwards_header(std::string_view name);

/// True for `X-Pulse-*` (case-insensitive): only Pulse sets those on a
/// hook request, so a client's own are dropped and cannot pass for claims.
bool is_pulse_header(std::string_view name);

/// The headers a hook request gets for a verified token: X-Pulse-Sub,
/// X-Pulse-Tenant (each when set; a sub holding control bytes is left
/// out) and X-Pulse-Claims (the payload as one line of ASCII JSON). Views
/// into `c`.
std::vector<std::pair<std::string_view, std::string_view>> claim_headers(
    const jwt::Claims& c);

}  // namespace pulse::hooks
