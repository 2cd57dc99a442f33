#include "ngx_http_pulse_auth.h"

#include <algorithm>
#include <limits>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <vector>

#include "ngx_http_pulse_guard.h"
#include "ngx_http_pulse_metrics.h"
#include "ngx_http_pulse_request.h"
#include "pulse/jwt.h"
#include "pulse/text.h"
#include "pulse/token_cache.h"
#include "pulse/ws_connection.h"

namespace pulse::ngx {

JwtField kJwtIssuer = JwtField::kIssuer;
JwtField kJwtAudience = JwtField::kAudience;
JwtField kJwtTenantClaim = JwtField::kTenantClaim;
JwtField kJwtChannelsClaim = JwtField::kChannelsClaim;

namespace {

struct TokenSource {
    enum class Kind { kHeader, kCookie, kArg, kMessage } kind;
    std::string name;        // the cookie's or the argument's
    ngx_msec_t timeout = 0;  // kMessage: the time to send it
};

// One block's pulse_jwt_* settings: each unset (nullopt) is inherited.
// Lives as long as the configuration (a cleanup of cf->pool deletes it).
struct JwtConf {
    std::shared_ptr<jwt::KeySet> keys;
    std::optional<bool> off;
    std::optional<std::vector<TokenSource>> sources;
    std::optional<int64_t> leeway;
    std::optional<size_t> max_size;
    std::optional<std::string> issuer;
    std::optional<std::string> audience;
    std::optional<std::string> tenant_claim;
    std::optional<std::string> channels_claim;
    std::optional<bool> audit_all;
    std::optional<ngx_uint_t> audit_level;

    // after merge
    bool final = false;
    bool enabled = false;
    jwt::Policy policy;
    uint64_t scope = 0;  // this conf's token cache scope
};

JwtConf* jwt_of(ngx_http_pulse_loc_conf_t* lcf)
{
    return static_cast<JwtConf*>(lcf->jwt);
}

JwtConf& own_jwt(ngx_conf_t* cf, ngx_http_pulse_loc_conf_t* lcf)
{
    if (lcf->jwt == nullptr) {
        ngx_pool_cleanup_t* cln = ngx_pool_cleanup_add(cf->pool, 0);
        if (cln == nullptr) {
            throw std::bad_alloc();
        }
        auto* j = new JwtConf();
        cln->data = j;
        cln->handler = [](void* data) noexcept {
            delete static_cast<JwtConf*>(data);
        };
        lcf->jwt = j;
    }
    return *jwt_of(lcf);
}

char* conf_error(ngx_conf_t* cf, const std::string& msg)
{
    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, PULSE_LOG_PREFIX "%s",
                       msg.c_str());
    return static_cast<char*>(NGX_CONF_ERROR);
}

ngx_str_t* args(ngx_conf_t* cf)
{
    return static_cast<ngx_str_t*>(cf->args->elts);
}

template <typename T>
void inherit(std::optional<T>& mine, const std::optional<T>& parent)
{
    if (!mine && parent) {
        mine = parent;
    }
}

// The grant of a request without auth: everything, no tenant.
const acl::Grant kOpenGrant{};

uint64_t next_scope()
{
    static uint64_t n = 0;
    return ++n;
}

// A worker's verified tokens (lib/pulse/token_cache.h).
jwt::TokenCache& token_cache()
{
    static jwt::TokenCache cache(10000);
    return cache;
}

// The token, from the first source that has one.
std::optional<std::string_view> find_token(ngx_http_request_t* r,
                                           const JwtConf& j)
{
    static const std::vector<TokenSource> kDefault = {
        {TokenSource::Kind::kHeader, ""}};
    for (const TokenSource& s : j.sources ? *j.sources : kDefault) {
        switch (s.kind) {
            case TokenSource::Kind::kHeader: {
                ngx_table_elt_t* h = r->headers_in.authorization;
                if (h == nullptr) {
                    break;
                }
                std::string_view v = sv(h->value);
                if (v.size() > 7
                    && ngx_strncasecmp(reinterpret_cast<u_char*>(
                                           const_cast<char*>(v.data())),
                                       reinterpret_cast<u_char*>(
                                           const_cast<char*>("Bearer ")),
                                       7)
                           == 0)
                {
                    v.remove_prefix(7);
                    while (!v.empty() && v.front() == ' ') {
                        v.remove_prefix(1);
                    }
                    return v;
                }
                break;
            }
            case TokenSource::Kind::kCookie: {
                ngx_str_t name{s.name.size(),
                               reinterpret_cast<u_char*>(
                                   const_cast<char*>(s.name.data()))};
                ngx_str_t value;
                if (ngx_http_parse_multi_header_lines(&r->headers_in.cookies,
                                                      &name, &value)
                    != NGX_DECLINED)
                {
                    return sv(value);
                }
                break;
            }
            case TokenSource::Kind::kMessage:
                break;  // not in the request: see authenticate()
            case TokenSource::Kind::kArg:
                // ngx_http_arg's rules, without its compare at every byte
                // of a long token (docs/performance.md)
                if (auto v = text::query_arg(sv(r->args), s.name)) {
                    return v;
                }
                break;
        }
    }
    return std::nullopt;
}

}  // namespace

char* set_jwt_key(ngx_conf_t* cf, ngx_command_t*, void* conf) noexcept
try {
    auto* lcf = static_cast<ngx_http_pulse_loc_conf_t*>(conf);
    JwtConf& j = own_jwt(cf, lcf);
    ngx_str_t* a = args(cf);
    if (cf->args->nelts == 2 && sv(a[1]) == "off") {
        if (j.keys) {
            return conf_error(cf, "pulse_jwt_key off with keys in the block");
        }
        j.off = true;
        return NGX_CONF_OK;
    }
    if (j.off.value_or(false)) {
        return conf_error(cf, "pulse_jwt_key after pulse_jwt_key off");
    }
    std::string kid;
    if (cf->args->nelts == 3) {
        std::string_view k = sv(a[2]);
        if (k.substr(0, 4) != "kid=" || k.size() == 4) {
            return conf_error(cf,
                              "pulse_jwt_key: the second argument is "
                              "kid=ID, not \""
                                  + std::string(k) + "\"");
        }
        kid = std::string(k.substr(4));
    }
    ngx_str_t path = a[1];
    if (ngx_conf_full_name(cf->cycle, &path, 1) != NGX_OK) {
        return static_cast<char*>(NGX_CONF_ERROR);
    }
    if (!j.keys) {
        j.keys = std::make_shared<jwt::KeySet>();
    }
    Status s = j.keys->load_file(std::string(sv(path)), kid);
    if (!s.is_ok()) {
        return conf_error(cf, s.message());
    }
    j.off = false;
    return NGX_CONF_OK;
}
PULSE_CATCH_CONF(cf)

char* set_jwt_token(ngx_conf_t* cf, ngx_command_t*, void* conf) noexcept
try {
    auto* lcf = static_cast<ngx_http_pulse_loc_conf_t*>(conf);
    JwtConf& j = own_jwt(cf, lcf);
    if (j.sources) {
        return conf_error(cf, "pulse_jwt_token is duplicate");
    }
    std::vector<TokenSource> sources;
    ngx_str_t* a = args(cf);
    for (ngx_uint_t i = 1; i < cf->args->nelts; ++i) {
        std::string_view v = sv(a[i]);
        if (v == "header") {
            sources.push_back({TokenSource::Kind::kHeader, ""});
        } else if (v.substr(0, 7) == "cookie=" && v.size() > 7) {
            sources.push_back(
                {TokenSource::Kind::kCookie, std::string(v.substr(7))});
        } else if (v == "message" || v.substr(0, 8) == "message=") {
            ngx_msec_t timeout = 10000;
            if (v.size() > 8) {
                ngx_str_t t = {v.size() - 8, a[i].data + 8};
                ngx_msec_t ms = ngx_parse_time(&t, 0);
                if (ms == static_cast<ngx_msec_t>(NGX_ERROR) || ms == 0) {
                    return conf_error(cf,
                                      "pulse_jwt_token: message=TIME "
                                      "needs a time, not \""
                                          + std::string(v.substr(8)) + "\"");
                }
                timeout = ms;
            }
            sources.push_back({TokenSource::Kind::kMessage, "", timeout});
        } else if (v.substr(0, 4) == "arg=" && v.size() > 4) {
            sources.push_back(
                {TokenSource::Kind::kArg, std::string(v.substr(4))});
        } else {
            return conf_error(cf, "pulse_jwt_token: \"" + std::string(v)
                                      + "\" is not header, cookie=NAME, "
                                        "arg=NAME or message[=TIME]");
        }
    }
    j.sources = std::move(sources);
    return NGX_CONF_OK;
}
PULSE_CATCH_CONF(cf)

char* set_jwt_leeway(ngx_conf_t* cf, ngx_command_t*, void* conf) noexcept
try {
    auto* lcf = static_cast<ngx_http_pulse_loc_conf_t*>(conf);
    JwtConf& j = own_jwt(cf, lcf);
    time_t t = ngx_parse_time(&args(cf)[1], 1);
    if (t == static_cast<time_t>(NGX_ERROR) || t > 86400) {
        return conf_error(cf, "pulse_jwt_leeway: a time of at most 1d");
    }
    j.leeway = static_cast<int64_t>(t);
    return NGX_CONF_OK;
}
PULSE_CATCH_CONF(cf)

char* set_jwt_max_size(ngx_conf_t* cf, ngx_command_t*, void* conf) noexcept
try {
    auto* lcf = static_cast<ngx_http_pulse_loc_conf_t*>(conf);
    JwtConf& j = own_jwt(cf, lcf);
    ssize_t n = ngx_parse_size(&args(cf)[1]);
    if (n == NGX_ERROR || n < 256 || n > 65536) {
        return conf_error(cf, "pulse_jwt_max_size: between 256 and 64k");
    }
    j.max_size = static_cast<size_t>(n);
    return NGX_CONF_OK;
}
PULSE_CATCH_CONF(cf)

char* set_jwt_string(ngx_conf_t* cf, ngx_command_t* cmd, void* conf) noexcept
try {
    auto* lcf = static_cast<ngx_http_pulse_loc_conf_t*>(conf);
    JwtConf& j = own_jwt(cf, lcf);
    std::string v(sv(args(cf)[1]));
    if (v.empty()) {
        return conf_error(cf, std::string(sv(cmd->name)) + ": empty");
    }
    switch (*static_cast<JwtField*>(cmd->post)) {
        case JwtField::kIssuer:
            j.issuer = v;
            break;
        case JwtField::kAudience:
            j.audience = v;
            break;
        case JwtField::kTenantClaim:
            j.tenant_claim = v;
            break;
        case JwtField::kChannelsClaim:
            j.channels_claim = v;
            break;
    }
    return NGX_CONF_OK;
}
PULSE_CATCH_CONF(cf)

char* set_auth_audit(ngx_conf_t* cf, ngx_command_t*, void* conf) noexcept
try {
    auto* lcf = static_cast<ngx_http_pulse_loc_conf_t*>(conf);
    JwtConf& j = own_jwt(cf, lcf);
    ngx_str_t* a = args(cf);
    std::string_view what = sv(a[1]);
    if (what != "denials" && what != "all") {
        return conf_error(cf, "pulse_auth_audit: denials or all, not \""
                                  + std::string(what) + "\"");
    }
    j.audit_all = what == "all";
    j.audit_level = NGX_LOG_WARN;
    if (cf->args->nelts == 3) {
        static constexpr const char* kLevels[] = {"stderr", "emerg", "alert",
                                                  "crit",   "error", "warn",
                                                  "notice", "info"};
        std::string_view l = sv(a[2]);
        bool found = false;
        for (ngx_uint_t i = 1; i < sizeof(kLevels) / sizeof(kLevels[0]); ++i) {
            if (l == kLevels[i]) {
                j.audit_level = i;
                found = true;
            }
        }
        if (!found) {
            return conf_error(cf, "pulse_auth_audit: unknown log level \""
                                      + std::string(l) + "\"");
        }
    }
    return NGX_CONF_OK;
}
PULSE_CATCH_CONF(cf)

char* merge_auth(ngx_conf_t* cf, ngx_http_pulse_loc_conf_t* parent,
                 ngx_http_pulse_loc_conf_t* child)
{
    JwtConf* p = jwt_of(parent);
    if (child->jwt == nullptr) {
        child->jwt = parent->jwt;
    } else if (p != nullptr) {
        JwtConf& c = *jwt_of(child);
        if (!c.keys && !c.off) {
            c.keys = p->keys;
            c.off = p->off;
        }
        inherit(c.sources, p->sources);
        inherit(c.leeway, p->leeway);
        inherit(c.max_size, p->max_size);
        inherit(c.issuer, p->issuer);
        inherit(c.audience, p->audience);
        inherit(c.tenant_claim, p->tenant_claim);
        inherit(c.channels_claim, p->channels_claim);
        inherit(c.audit_all, p->audit_all);
        inherit(c.audit_level, p->audit_level);
    }
    JwtConf* j = jwt_of(child);
    if (j == nullptr || j->final) {
        return NGX_CONF_OK;
    }
    // final for this block; an inner block that sets nothing shares it
    j->final = true;
    j->enabled = j->keys && !j->keys->empty() && !j->off.value_or(false);
    if (!j->enabled && !j->off.value_or(false)
        && (j->sources || j->tenant_claim || j->channels_claim || j->issuer
            || j->audience))
    {
        return conf_error(cf, "pulse_jwt_* settings without pulse_jwt_key");
    }
    j->policy.leeway = j->leeway.value_or(0);
    j->policy.max_token = j->max_size.value_or(8192);
    j->policy.issuer = j->issuer.value_or("");
    j->policy.audience = j->audience.value_or("");
    j->policy.tenant_claim = j->tenant_claim.value_or("");
    j->policy.channels_claim = j->channels_claim.value_or("");
    j->scope = next_scope();
    return NGX_CONF_OK;
}

namespace {

// The audit line with the claims it names (the request's, or a refused
// token's unverified kid and sub).
void audit_claims(ngx_connection_t* c, ngx_http_pulse_loc_conf_t* lcf,
                  const jwt::Claims* claims, std::string_view decision,
                  int status, std::string_view channel, std::string_view reason)
{
    JwtConf* j = jwt_of(lcf);
    ngx_uint_t level = j ? j->audit_level.value_or(NGX_LOG_WARN) : NGX_LOG_WARN;
    if (decision == "allow" && !(j && j->audit_all.value_or(false))) {
        return;
    }
    if (c->log->log_level < level) {
        return;
    }
    std::string line = acl::audit_line(decision, status, claims, channel,
                                       sv(c->addr_text), reason);
    // without the request line in the context: it may hold the token
    ngx_log_t log = *c->log;
    log.handler = nullptr;
    log.data = nullptr;
    ngx_log_error(level, &log, 0, "%s", line.c_str());
}

}  // namespace

void audit(ngx_http_request_t* r, ngx_http_pulse_loc_conf_t* lcf,
           std::string_view decision, int status, std::string_view channel,
           std::string_view reason)
{
    audit_claims(r->connection, lcf, request_grant(r).claims.get(), decision,
                 status, channel, reason);
}

void audit_connection(ngx_connection_t* c, ngx_http_pulse_loc_conf_t* lcf,
                      const jwt::Claims* claims, std::string_view decision,
                      int status, std::string_view channel,
                      std::string_view reason)
{
    audit_claims(c, lcf, claims, decision, status, channel, reason);
}

std::optional<int64_t> token_deadline(ngx_http_request_t* r,
                                      ngx_http_pulse_loc_conf_t* lcf)
{
    JwtConf* j = jwt_of(lcf);
    if (j == nullptr || !j->enabled) {
        return std::nullopt;
    }
    const acl::Grant& g = request_grant(r);
    if (!g.claims || !g.claims->exp) {
        return std::nullopt;
    }
    return *g.claims->exp + j->policy.leeway;
}

ngx_msec_t ms_until(int64_t deadline)
{
    int64_t now = static_cast<int64_t>(ngx_time());
    // nginx compares timers as ngx_msec_int_t differences: stay below half
    // its range (about 12 days where it is 32 bits, no bound in practice
    // on 64 bits, where a far exp would otherwise end a stream early)
    constexpr int64_t kMaxSeconds = static_cast<int64_t>(
        std::numeric_limits<ngx_msec_int_t>::max() / 2 / 1000);
    int64_t s =
        std::min<int64_t>(std::max<int64_t>(deadline - now, 0), kMaxSeconds);
    return static_cast<ngx_msec_t>(s * 1000);
}

const acl::Grant& request_grant(ngx_http_request_t* r)
{
    RequestCtx* ctx = find_request_ctx(r);
    return ctx ? ctx->grant : kOpenGrant;
}

namespace {

const TokenSource* message_source(const JwtConf& j)
{
    if (!j.sources) {
        return nullptr;
    }
    for (const TokenSource& s : *j.sources) {
        if (s.kind == TokenSource::Kind::kMessage) {
            return &s;
        }
    }
    return nullptr;
}

// A pulse.v1 WebSocket handshake (the subprotocol it asks for).
bool is_v1_upgrade(ngx_http_request_t* r)
{
    auto proto = header(r, "Sec-WebSocket-Protocol");
    return proto && choose_subprotocol(proto).first == WsMode::kJson
           && header(r, "Upgrade");
}

// The verdict for `token`, through the cache; null claims when refused.
std::shared_ptr<const jwt::Claims> check(const JwtConf& j,
                                         std::string_view token,
                                         jwt::Verdict* v)
{
    int64_t now = static_cast<int64_t>(ngx_time());
    jwt::TokenCache& cache = token_cache();
    if (auto hit = cache.find(j.scope, token, now)) {
        return hit;
    }
    *v = jwt::verify(token, *j.keys, j.policy, now);
    if (!v->ok()) {
        return nullptr;
    }
    auto claims = std::make_shared<const jwt::Claims>(std::move(v->claims));
    cache.put(j.scope, token, claims, now, j.policy.leeway);
    return claims;
}

}  // namespace

std::shared_ptr<const jwt::Claims> verify_token(
    ngx_http_pulse_loc_conf_t* lcf, std::string_view token, std::string* why,
    std::optional<int64_t>* deadline)
{
    JwtConf* j = jwt_of(lcf);
    if (j == nullptr || !j->enabled) {
        *why = "this location takes no tokens";
        return nullptr;
    }
    jwt::Verdict v;
    auto claims = check(*j, token, &v);
    if (claims == nullptr) {
        *why = v.reason;
        count_token_denial(static_cast<int>(v.refusal));
        return nullptr;
    }
    *deadline = claims->exp
                    ? std::optional<int64_t>(*claims->exp + j->policy.leeway)
                    : std::nullopt;
    return claims;
}

ngx_msec_t auth_frame_timeout(ngx_http_pulse_loc_conf_t* lcf)
{
    JwtConf* j = jwt_of(lcf);
    const TokenSource* m = j ? message_source(*j) : nullptr;
    return m ? m->timeout : 10000;
}

ngx_int_t authenticate(ngx_http_request_t* r, ngx_http_pulse_loc_conf_t* lcf)
{
    JwtConf* j = jwt_of(lcf);
    if (j == nullptr || !j->enabled) {
        return NGX_DECLINED;
    }
    std::optional<std::string_view> token = find_token(r, *j);
    if ((!token || token->empty()) && message_source(*j) != nullptr
        && is_v1_upgrade(r))
    {
        // the token comes in the socket's first frame
        request_ctx(r).auth_pending = true;
        return NGX_DECLINED;
    }
    std::shared_ptr<const jwt::Claims> claims;
    jwt::Verdict v;
    if (!token || token->empty()) {
        v.refusal = jwt::Refusal::kMissing;
        v.reason = "no token";
    } else {
        claims = check(*j, *token, &v);
    }
    if (claims == nullptr) {
        int status = jwt::refusal_http_status(v.refusal);
        count_token_denial(static_cast<int>(v.refusal));
        // the unverified kid and sub, for the audit line only
        audit_claims(r->connection, lcf, &v.claims, "deny", status, "",
                     v.reason);
        ngx_http_discard_request_body(r);
        if (status == NGX_HTTP_UNAUTHORIZED) {
            // RFC 6750 §3
            add_header(r, "WWW-Authenticate",
                       v.refusal == jwt::Refusal::kMissing
                           ? "Bearer"
                           : "Bearer error=\"invalid_token\"");
        }
        return send_response(r, static_cast<ngx_uint_t>(status), "text/plain",
                             status == NGX_HTTP_UNAUTHORIZED
                                 ? "Unauthorized: " + v.reason + ".\n"
                                 : "Forbidden: " + v.reason + ".\n");
    }
    request_ctx(r).grant.claims = std::move(claims);
    audit(r, lcf, "allow", NGX_HTTP_OK, "", "valid token");
    return NGX_DECLINED;
}

}  // namespace pulse::ngx
