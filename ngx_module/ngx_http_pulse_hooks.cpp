#include "ngx_http_pulse_hooks.h"

#include <unistd.h>

#include <algorithm>
#include <exception>
#include <new>
#include <utility>
#include <vector>

#include <sys/eventfd.h>

#include "ngx_http_pulse_auth.h"
#include "ngx_http_pulse_guard.h"
#include "ngx_http_pulse_metrics.h"
#include "ngx_http_pulse_request.h"

namespace pulse::ngx {

namespace {

ngx_http_output_body_filter_pt next_body_filter;

ngx_int_t on_captured(ngx_http_request_t* sr, void* data, ngx_int_t rc) noexcept
{
    auto* cap = static_cast<Capture*>(data);
    return cap->then.handler(sr, cap->then.data, rc);
}

Capture* capture_of(ngx_http_request_t* r)
{
    if (r == r->main || r->post_subrequest == nullptr
        || r->post_subrequest->handler != on_captured)
    {
        return nullptr;
    }
    return static_cast<Capture*>(r->post_subrequest->data);
}

// Appends what `b` holds (in memory or in a file) to `cap`, up to the
// location's bound; consumes `b` either way. False on a read or
// allocation failure.
bool keep(ngx_http_request_t* r, Capture* cap, ngx_buf_t* b)
{
    size_t len = static_cast<size_t>(ngx_buf_size(b));
    if (len == 0) {
        return true;
    }
    if (cap->data == nullptr && !cap->too_big) {
        auto* clcf = static_cast<ngx_http_core_loc_conf_t*>(
            ngx_http_get_module_loc_conf(r, ngx_http_core_module));
        cap->room = clcf->subrequest_output_buffer_size;
        cap->data = static_cast<u_char*>(ngx_pnalloc(r->pool, cap->room));
        if (cap->data == nullptr) {
            return false;
        }
    }
    if (cap->too_big || len > cap->room - cap->len) {
        if (!cap->too_big) {
            ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                          PULSE_LOG_PREFIX
                          "hook answer bigger than "
                          "subrequest_output_buffer_size (%uz): its body "
                          "is not used",
                          cap->room);
        }
        cap->too_big = true;
    } else if (ngx_buf_in_memory(b)) {
        ngx_memcpy(cap->data + cap->len, b->pos, len);
        cap->len += len;
    } else {
        ssize_t n =
            ngx_read_file(b->file, cap->data + cap->len, len, b->file_pos);
        if (n != static_cast<ssize_t>(len)) {
            return false;
        }
        cap->len += len;
    }
    if (ngx_buf_in_memory(b)) {
        b->pos = b->last;
    }
    if (b->in_file) {
        b->file_pos = b->file_last;
    }
    return true;
}

// The top body filter: a hook subrequest's body stops here, kept for its
// handler; everything else goes on untouched.
ngx_int_t capture_body_filter(ngx_http_request_t* r, ngx_chain_t* in) noexcept
{
    Capture* cap = capture_of(r);
    if (cap == nullptr) {
        return next_body_filter(r, in);
    }
    for (ngx_chain_t* cl = in; cl != nullptr; cl = cl->next) {
        if (!keep(r, cap, cl->buf)) {
            return NGX_ERROR;
        }
    }
    return NGX_OK;
}

}  // namespace

void add_capture_filter()
{
    next_body_filter = ngx_http_top_body_filter;
    ngx_http_top_body_filter = capture_body_filter;
}

ngx_http_request_t* captured_subrequest(ngx_http_request_t* r, ngx_str_t* uri,
                                        ngx_str_t* args,
                                        ngx_http_post_subrequest_pt handler,
                                        void* data, ngx_uint_t flags)
{
    auto* cap = static_cast<Capture*>(ngx_pcalloc(r->pool, sizeof(Capture)));
    auto* psr = static_cast<ngx_http_post_subrequest_t*>(
        ngx_palloc(r->pool, sizeof(ngx_http_post_subrequest_t)));
    if (cap == nullptr || psr == nullptr) {
        throw std::bad_alloc();
    }
    cap->then.handler = handler;
    cap->then.data = data;
    psr->handler = on_captured;
    psr->data = cap;
    ngx_http_request_t* sr = nullptr;
    if (ngx_http_subrequest(r, uri, args, &sr, psr,
                            flags & ~NGX_HTTP_SUBREQUEST_IN_MEMORY)
        != NGX_OK)
    {
        return nullptr;
    }
    return sr;
}

SubrequestAnswer subrequest_answer(ngx_http_request_t* sr, ngx_int_t rc)
{
    SubrequestAnswer out;
    ngx_uint_t status = sr->headers_out.status;
    if (Capture* cap = capture_of(sr); cap != nullptr) {
        out.answer.too_big = cap->too_big;
        if (!cap->too_big && cap->len != 0) {
            out.body = std::string_view(
                reinterpret_cast<const char*>(cap->data), cap->len);
        }
    }
    if (status == 0 && rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        status = static_cast<ngx_uint_t>(rc);  // nginx's own error page
    }
    out.answer.status = static_cast<int>(status);
    out.answer.failed = rc == NGX_ERROR || status == 0;
    return out;
}

namespace {

ngx_str_t kGet = ngx_string("GET");
ngx_str_t kPost = ngx_string("POST");

bool named(const ngx_table_elt_t& h, std::string_view name)
{
    return h.key.len == name.size()
           && ngx_strncasecmp(
                  h.key.data,
                  reinterpret_cast<u_char*>(const_cast<char*>(name.data())),
                  name.size())
                  == 0;
}

// Appends a header line; the strings must live as long as `pool`.
ngx_table_elt_t* push_header(ngx_list_t* list, ngx_pool_t* pool, ngx_str_t key,
                             ngx_str_t value)
{
    auto* h = static_cast<ngx_table_elt_t*>(ngx_list_push(list));
    if (h == nullptr) {
        throw std::bad_alloc();
    }
    h->key = key;
    h->value = value;
    h->lowcase_key = static_cast<u_char*>(ngx_pnalloc(pool, key.len));
    if (h->lowcase_key == nullptr) {
        throw std::bad_alloc();
    }
    h->hash = ngx_hash_strlow(h->lowcase_key, key.data, key.len);
    return h;
}

// The header lines a hook request carries: the client's, without what
// described the client's own body or pretended to be Pulse's, then the
// verified token's claims (the JWT checked first, the hook told who).
void hook_headers(ngx_http_request_t* r, ngx_http_request_t* sr)
{
    ngx_list_t list;
    if (ngx_list_init(&list, r->pool, 8, sizeof(ngx_table_elt_t)) != NGX_OK) {
        throw std::bad_alloc();
    }
    for_each_header(&r->headers_in.headers, [&](ngx_table_elt_t& h) {
        if (hooks::is_pulse_header(sv(h.key)) || named(h, "Content-Length")
            || named(h, "Transfer-Encoding"))
        {
            return;
        }
        auto* copy = static_cast<ngx_table_elt_t*>(ngx_list_push(&list));
        if (copy == nullptr) {
            throw std::bad_alloc();
        }
        *copy = h;
    });
    const acl::Grant& g = request_grant(r);
    if (g.claims) {
        for (auto [name, value] : hooks::claim_headers(*g.claims)) {
            push_header(&list, r->pool, pool_str(r->pool, name),
                        pool_str(r->pool, value));
        }
    }
    sr->headers_in.headers = list;
    sr->headers_in.content_length = nullptr;
    sr->headers_in.transfer_encoding = nullptr;
    sr->headers_in.chunked = 0;
}

// A hook's URI, evaluated on `r`: its own query, or else the request's
// (nchan passes the subscriber's arguments on).
bool hook_uri(ngx_http_request_t* r, ngx_http_complex_value_t* cv,
              ngx_str_t* uri, ngx_str_t* args)
{
    if (ngx_http_complex_value(r, cv, uri) != NGX_OK) {
        throw std::bad_alloc();
    }
    *args = r->args;
    ngx_uint_t flags = 0;
    ngx_str_t own{0, nullptr};
    if (ngx_http_parse_unsafe_uri(r, uri, &own, &flags) != NGX_OK) {
        return false;
    }
    if (own.len != 0) {
        *args = own;
    }
    return true;
}

// The answer of a subrequest, kept in the request pool until the request
// goes on.
struct HookState {
    ngx_http_pulse_loc_conf_t* lcf;
    Resume resume;        // pulse_authorize_request
    PublishWith publish;  // pulse_publisher_upstream_request
    ngx_http_request_t* sr = nullptr;
    SubrequestAnswer answer;
    bool answered = false;
};

ngx_int_t on_answer(ngx_http_request_t* sr, void* data, ngx_int_t rc) noexcept
{
    auto* st = static_cast<HookState*>(data);
    if (!st->answered) {
        st->answered = true;
        st->sr = sr;
        st->answer = subrequest_answer(sr, rc);
    }
    return rc;
}

// Starts a captured subrequest of `r` to `cv`, whose answer lands in a
// HookState (kept in the request's context) and then calls `resume` as
// r's write handler. `hold`: take a reference of the request for a
// content handler's NGX_DONE (`resume` finalizes the request once).
HookState* start_hook(ngx_http_request_t* r, HookState init,
                      ngx_http_complex_value_t* cv, bool post, bool hold,
                      ngx_http_event_handler_pt resume)
{
    ngx_str_t uri;
    ngx_str_t args;
    if (!hook_uri(r, cv, &uri, &args)) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      PULSE_LOG_PREFIX "unsafe hook URI \"%V\"", &uri);
        return nullptr;
    }
    HookState* st = nullptr;
    ngx_http_request_t* sr =
        captured_subrequest(r, &uri, &args, on_answer, init, &st);
    if (sr == nullptr) {
        return nullptr;
    }
    hook_headers(r, sr);
    if (post) {
        // the published body as it was read (in memory or in a file)
        sr->method = NGX_HTTP_POST;
        sr->method_name = kPost;
        off_t length = 0;
        if (r->request_body != nullptr) {
            for (ngx_chain_t* cl = r->request_body->bufs; cl != nullptr;
                 cl = cl->next) {
                length += ngx_buf_size(cl->buf);
            }
        }
        sr->headers_in.content_length_n = length;
    } else {
        sr->method = NGX_HTTP_GET;
        sr->method_name = kGet;
        sr->request_body = static_cast<ngx_http_request_body_t*>(
            ngx_pcalloc(r->pool, sizeof(ngx_http_request_body_t)));
        if (sr->request_body == nullptr) {
            throw std::bad_alloc();
        }
        sr->headers_in.content_length_n = 0;
    }
    if (hold) {
        r->main->count++;
    }
    r->write_event_handler = resume;
    request_ctx(r).hook = st;
    return st;
}

HookState* hook_state(ngx_http_request_t* r)
{
    RequestCtx* ctx = find_request_ctx(r);
    return ctx != nullptr ? static_cast<HookState*>(ctx->hook) : nullptr;
}

bool publishing(ngx_http_request_t* r, ngx_http_pulse_loc_conf_t* lcf)
{
    return r->method != NGX_HTTP_GET
           || (lcf->roles & NGX_HTTP_PULSE_SUB_ANY) == 0;
}

// A subscriber refused: the upstream's status, Content-Type, headers but
// those of the response itself, and body (what nchan sends; without the
// body when it was too big to keep).
ngx_int_t forward_refusal(ngx_http_request_t* r, const HookState& st,
                          int status)
{
    std::string_view ctype = sv(st.sr->headers_out.content_type);
    for_each_header(&st.sr->headers_out.headers, [&](ngx_table_elt_t& h) {
        if (h.hash != 0 && hooks::forwards_header(sv(h.key))) {
            if (add_header(r, sv(h.key), sv(h.value)) != NGX_OK) {
                throw std::bad_alloc();
            }
        }
    });
    if (st.answer.answer.too_big && !ctype.empty()) {
        // the body stays behind, its type goes on (as nchan)
        ngx_str_t ct = pool_str(r->pool, ctype);
        r->headers_out.content_type = ct;
        r->headers_out.content_type_len = ct.len;
    }
    return send_response(r, static_cast<ngx_uint_t>(status), ctype,
                         st.answer.body, false);
}

ngx_int_t after_authorize(ngx_http_request_t* r)
{
    HookState* st = hook_state(r);
    auto d =
        hooks::authorize_decision(st->answer.answer, publishing(r, st->lcf));
    if (d.allow) {
        return st->resume(r, st->lcf);
    }
    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  PULSE_LOG_PREFIX "pulse_authorize_request refused: %d",
                  st->answer.answer.status);
    if (!st->answer.answer.failed) {
        count_denial(metrics::Denial::kHook);
    }
    ngx_http_discard_request_body(r);
    if (d.forward) {
        return forward_refusal(r, *st, d.status);
    }
    return d.status;  // nginx's own error page, as nchan
}

// r's write handler while a hook runs: once the answer is in, the request
// goes on with `After` and is finalized with what it returns.
template <ngx_int_t (*After)(ngx_http_request_t*)>
void resume_after(ngx_http_request_t* r) noexcept
{
    HookState* st = hook_state(r);
    if (st == nullptr || !st->answered) {
        return;  // a write event before the answer
    }
    r->write_event_handler = ngx_http_request_empty_handler;
    ngx_http_finalize_request(r, rc_or_500(r, [r] { return After(r); }));
}

ngx_int_t after_upstream(ngx_http_request_t* r)
{
    HookState* st = hook_state(r);
    PublishWith publish = st->publish;
    switch (hooks::publisher_upstream_action(st->answer.answer)) {
        case hooks::UpstreamAction::kPublishAnswer: {
            std::string ctype(sv(st->sr->headers_out.content_type));
            return publish(r, st->lcf, std::string(st->answer.body), &ctype);
        }
        case hooks::UpstreamAction::kPublishOriginal:
            return publish(r, st->lcf, std::string(), nullptr);
        case hooks::UpstreamAction::kDrop:
            return send_response(r, NGX_HTTP_NO_CONTENT, "", "");
        case hooks::UpstreamAction::kForbid:
            return NGX_HTTP_FORBIDDEN;  // nginx's own error page, as nchan
        case hooks::UpstreamAction::kTooBig:
            return NGX_HTTP_BAD_GATEWAY;
        case hooks::UpstreamAction::kFail:
            break;
    }
    return NGX_HTTP_INTERNAL_SERVER_ERROR;
}

}  // namespace

ngx_int_t authorize(ngx_http_request_t* r, ngx_http_pulse_loc_conf_t* lcf,
                    Resume resume)
{
    // nchan's order: the channel id's own refusals come first
    if (auto keys = channel_keys(r, lcf, publishing(r, lcf)); !keys.is_ok()) {
        ngx_http_discard_request_body(r);
        return send_status(r, keys.status());
    }
    if (start_hook(r, HookState{lcf, resume, nullptr, nullptr, {}, false},
                   lcf->authorize_request, false, true,
                   resume_after<after_authorize>)
        == nullptr)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
    return NGX_DONE;
}

ngx_int_t publisher_upstream(ngx_http_request_t* r,
                             ngx_http_pulse_loc_conf_t* lcf,
                             PublishWith publish)
{
    // the body reader holds the request: resume_after finalizes it
    if (start_hook(r, HookState{lcf, nullptr, publish, nullptr, {}, false},
                   lcf->publisher_upstream_request, true, false,
                   resume_after<after_upstream>)
        == nullptr)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
    return NGX_DONE;
}

void post_body(ngx_http_request_t* r, ngx_http_request_t* sr,
               std::string_view body)
{
    sr->method = NGX_HTTP_POST;
    sr->method_name = kPost;
    sr->request_body = static_cast<ngx_http_request_body_t*>(
        ngx_pcalloc(r->pool, sizeof(ngx_http_request_body_t)));
    ngx_buf_t* b = ngx_create_temp_buf(r->pool, body.size() + 1);
    ngx_chain_t* cl = ngx_alloc_chain_link(r->pool);
    if (sr->request_body == nullptr || b == nullptr || cl == nullptr) {
        throw std::bad_alloc();
    }
    b->last = ngx_cpymem(b->pos, body.data(), body.size());
    b->last_buf = 1;
    cl->buf = b;
    cl->next = nullptr;
    sr->request_body->bufs = cl;
    sr->headers_in.content_length_n = static_cast<off_t>(body.size());
    sr->headers_in.chunked = 0;
}

// --- publisher upstream, per WebSocket frame -------------------------------

namespace {

struct FrameCtx {
    UpstreamSink* sink;
    uint64_t token;
    bool answered;
};

ngx_int_t on_frame_answer(ngx_http_request_t* sr, void* data,
                          ngx_int_t rc) noexcept
{
    auto* ctx = static_cast<FrameCtx*>(data);
    if (!ctx->answered) {
        ctx->answered = true;
        SubrequestAnswer a = subrequest_answer(sr, rc);
        ctx->sink->upstream_answer(ctx->token, a.answer, a.body,
                                   sv(sr->headers_out.content_type));
    }
    return rc;
}

}  // namespace

bool frame_upstream(ngx_http_request_t* r, ngx_http_pulse_loc_conf_t* lcf,
                    uint64_t token, std::string_view body,
                    std::string_view content_type, UpstreamSink* sink)
{
    ngx_str_t uri;
    ngx_str_t args;
    if (!hook_uri(r, lcf->publisher_upstream_request, &uri, &args)) {
        return false;
    }
    FrameCtx* ctx = nullptr;
    ngx_http_request_t* sr = captured_subrequest(
        r, &uri, &args, on_frame_answer, FrameCtx{sink, token, false}, &ctx);
    if (sr == nullptr) {
        return false;
    }
    hook_headers(r, sr);
    post_body(r, sr, body);
    // the frame's type, not the handshake's Content-Type line
    ngx_list_t list;
    if (ngx_list_init(&list, r->pool, 8, sizeof(ngx_table_elt_t)) != NGX_OK) {
        throw std::bad_alloc();
    }
    for_each_header(&sr->headers_in.headers, [&](ngx_table_elt_t& h) {
        if (!named(h, "Content-Type")) {
            auto* copy = static_cast<ngx_table_elt_t*>(ngx_list_push(&list));
            if (copy == nullptr) {
                throw std::bad_alloc();
            }
            *copy = h;
        }
    });
    static ngx_str_t ct_name = ngx_string("Content-Type");
    sr->headers_in.content_type =
        push_header(&list, r->pool, ct_name, pool_str(r->pool, content_type));
    sr->headers_in.headers = list;
    return true;
}

// --- presence hooks -------------------------------------------------------

/// What a hook needs of a subscriber's request once that request is gone.
struct RequestSnapshot {
    void** main_conf = nullptr;
    void** srv_conf = nullptr;
    void** loc_conf = nullptr;
    ngx_listening_t* listening = nullptr;
    ngx_http_connection_t hc{};
    std::string sockaddr;
    std::string local_sockaddr;
    std::string addr_text;
    ngx_uint_t http_version = 0;
    std::string request_line;
    std::string uri;
    std::string unparsed_uri;
    std::string args;
    std::string server;
    std::vector<std::pair<std::string, std::string>> headers;
    std::vector<int> captures;
    std::string captures_data;
    acl::Grant grant;
    HookValues values;
};

namespace {

std::string str(const ngx_str_t& s)
{
    return std::string(sv(s));
}

std::shared_ptr<RequestSnapshot> snapshot(ngx_http_request_t* r,
                                          ngx_http_pulse_loc_conf_t* lcf,
                                          std::string_view subscriber_type)
{
    auto s = std::make_shared<RequestSnapshot>();
    ngx_connection_t* c = r->connection;
    s->main_conf = r->main_conf;
    s->srv_conf = r->srv_conf;
    s->loc_conf = r->loc_conf;
    s->listening = c->listening;
    if (r->http_connection != nullptr) {
        s->hc.addr_conf = r->http_connection->addr_conf;
        s->hc.conf_ctx = r->http_connection->conf_ctx;
    }
    s->sockaddr.assign(reinterpret_cast<const char*>(c->sockaddr), c->socklen);
    if (c->local_sockaddr != nullptr) {
        s->local_sockaddr.assign(
            reinterpret_cast<const char*>(c->local_sockaddr), c->local_socklen);
    }
    s->addr_text = str(c->addr_text);
    s->http_version = r->http_version;
    s->request_line = str(r->request_line);
    s->uri = str(r->uri);
    s->unparsed_uri = str(r->unparsed_uri);
    s->args = str(r->args);
    s->server = str(r->headers_in.server);
    for_each_header(&r->headers_in.headers, [&](ngx_table_elt_t& h) {
        if (!hooks::is_pulse_header(sv(h.key))) {
            s->headers.emplace_back(str(h.key), str(h.value));
        }
    });
    s->grant = request_grant(r);
    if (s->grant.claims) {
        for (auto [name, value] : hooks::claim_headers(*s->grant.claims)) {
            s->headers.emplace_back(name, value);
        }
    }
    if (r->ncaptures > 0 && r->captures != nullptr) {
        s->captures.assign(r->captures, r->captures + r->ncaptures);
        int end = 0;
        for (int v : s->captures) {
            end = std::max(end, v);
        }
        if (r->captures_data != nullptr) {
            s->captures_data.assign(
                reinterpret_cast<const char*>(r->captures_data),
                static_cast<size_t>(end));
        }
    }
    auto keys = channel_keys(r, lcf, false, false);
    if (keys.is_ok()) {
        for (const std::string& k : keys.value()) {
            if (!s->values.channel_ids.empty()) {
                s->values.channel_ids += ',';
            }
            s->values.channel_ids += k.substr(k.find('/') + 1);
        }
    }
    s->values.subscriber_type = std::string(subscriber_type);
    return s;
}

// Copies `s` into `pool`; nullptr when out of memory.
u_char* copy_in(ngx_pool_t* pool, std::string_view s)
{
    auto* p = static_cast<u_char*>(ngx_pnalloc(pool, s.size() + 1));
    if (p != nullptr) {
        ngx_memcpy(p, s.data(), s.size());
        p[s.size()] = '\0';
    }
    return p;
}

ngx_str_t in_pool(ngx_pool_t* pool, std::string_view s)
{
    ngx_str_t out{s.size(), copy_in(pool, s)};
    if (out.data == nullptr) {
        throw std::bad_alloc();
    }
    return out;
}

// One fire-and-forget hook, run from a timer of 0 ms: never under the
// subscriber's own callers (a fan-out dispatch, a close), and a timer
// keeps a worker that is shutting down until the hook ran.
struct HookJob {
    ngx_event_t ev{};
    std::shared_ptr<const RequestSnapshot> snap;
    std::string uri;
    const char* what;
};

// The hook's own request: its RequestCtx (what $pulse_* read) and the
// snapshot it was made from, kept by a cleanup of its pool.
struct FakeOwner {
    std::shared_ptr<const RequestSnapshot> snap;
    RequestCtx ctx;
    const char* what;
};

ngx_int_t on_presence_answer(ngx_http_request_t* sr, void* data,
                             ngx_int_t rc) noexcept
{
    auto* owner = static_cast<FakeOwner*>(data);
    if (owner->what == nullptr) {
        return rc;  // answered already
    }
    SubrequestAnswer a = subrequest_answer(sr, rc);
    if (a.answer.failed || a.answer.status < 200 || a.answer.status >= 300) {
        ngx_log_error(NGX_LOG_WARN, sr->connection->log, 0,
                      PULSE_LOG_PREFIX "pulse_%s_request answered %d%s",
                      owner->what, a.answer.status,
                      a.answer.failed ? " (no answer)" : "");
    }
    owner->what = nullptr;
    return rc;
}

// The subrequest is done: the hook's request and connection go, as
// nginx's ngx_http_close_request does it.
void on_fake_done(ngx_http_request_t* r) noexcept
{
    if (r->count != 1) {
        return;
    }
    r->count = 0;
    ngx_connection_t* c = r->connection;
    ngx_http_free_request(r, 0);
    ngx_http_close_connection(c);
}

// A request of its own on a connection of its own, as a real one looks
// after its header was read: nginx frees it and closes its connection as
// any other, including when a subrequest fails (ngx_http_terminate_request).
// The descriptor is a real one (an eventfd) for that; it is never in epoll
// (active set), so nothing ever reads or writes it.
ngx_http_request_t* fake_request(const HookJob& job, FakeOwner** owner_out)
{
    const RequestSnapshot& s = *job.snap;
    ngx_pool_t* cpool = ngx_create_pool(1024, ngx_cycle->log);
    if (cpool == nullptr) {
        return nullptr;
    }
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fd == -1) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, ngx_errno,
                      PULSE_LOG_PREFIX "eventfd() for a hook failed");
        ngx_destroy_pool(cpool);
        return nullptr;
    }
    ngx_connection_t* c = ngx_get_connection(fd, ngx_cycle->log);
    if (c == nullptr) {
        close(fd);
        ngx_destroy_pool(cpool);
        return nullptr;
    }
#if (NGX_STAT_STUB)
    // ngx_http_close_connection counts it out again
    (void) ngx_atomic_fetch_add(ngx_stat_active, 1);
#endif
    c->pool = cpool;
    ngx_http_request_t* r = nullptr;
    try {
        ngx_pool_t* cp = c->pool;
        auto* log = static_cast<ngx_log_t*>(ngx_palloc(cp, sizeof(ngx_log_t)));
        auto* lctx = static_cast<ngx_http_log_ctx_t*>(
            ngx_pcalloc(cp, sizeof(ngx_http_log_ctx_t)));
        auto* hc = static_cast<ngx_http_connection_t*>(
            ngx_pcalloc(cp, sizeof(ngx_http_connection_t)));
        if (log == nullptr || lctx == nullptr || hc == nullptr) {
            throw std::bad_alloc();
        }
        *log = *ngx_cycle->log;
        log->connection = c->number;
        log->handler = nullptr;
        log->data = lctx;
        log->action = const_cast<char*>("running a pulse hook");
        c->log = log;
        c->read->log = log;
        c->write->log = log;
        c->log_error = NGX_ERROR_INFO;
        c->read->active = 1;
        c->write->active = 1;
        // nothing is ever sent on it: always writable, so nginx's proxy
        // hands a hook's answer on as it reads it
        c->write->ready = 1;
        c->read->handler = ngx_http_empty_handler;
        c->write->handler = ngx_http_empty_handler;
        c->number = ngx_atomic_fetch_add(ngx_connection_counter, 1);
        c->type = SOCK_STREAM;
        c->listening = s.listening;
        c->sockaddr = reinterpret_cast<sockaddr*>(copy_in(cp, s.sockaddr));
        c->socklen = static_cast<socklen_t>(s.sockaddr.size());
        if (!s.local_sockaddr.empty()) {
            c->local_sockaddr =
                reinterpret_cast<sockaddr*>(copy_in(cp, s.local_sockaddr));
            c->local_socklen = static_cast<socklen_t>(s.local_sockaddr.size());
        }
        c->addr_text = in_pool(cp, s.addr_text);
        c->start_time = ngx_current_msec;
        c->requests = 1;
        c->send = ngx_send;
        c->recv = ngx_recv;
        c->send_chain = ngx_send_chain;
        hc->addr_conf = s.hc.addr_conf;
        hc->conf_ctx = s.hc.conf_ctx;

        ngx_pool_t* pool = ngx_create_pool(4096, log);
        if (pool == nullptr) {
            throw std::bad_alloc();
        }
        r = static_cast<ngx_http_request_t*>(
            ngx_pcalloc(pool, sizeof(ngx_http_request_t)));
        if (r == nullptr) {
            ngx_destroy_pool(pool);
            throw std::bad_alloc();
        }
        r->pool = pool;
        r->signature = NGX_HTTP_MODULE;
        r->connection = c;
        r->http_connection = hc;
        r->main = r;
        r->count = 1;
        r->logged = 1;  // no access-log line for the hook's own request
        r->main_conf = s.main_conf;
        r->srv_conf = s.srv_conf;
        r->loc_conf = s.loc_conf;
        c->data = r;
        lctx->connection = c;
        lctx->request = r;
        lctx->current_request = r;
        r->read_event_handler = ngx_http_block_reading;
        r->write_event_handler = on_fake_done;
        auto* cmcf = static_cast<ngx_http_core_main_conf_t*>(
            ngx_http_get_module_main_conf(r, ngx_http_core_module));
        r->ctx = static_cast<void**>(
            ngx_pcalloc(pool, sizeof(void*) * ngx_http_max_module));
        r->variables = static_cast<ngx_http_variable_value_t*>(ngx_pcalloc(
            pool, cmcf->variables.nelts * sizeof(ngx_http_variable_value_t)));
        r->header_in = ngx_create_temp_buf(pool, 1);
        if (r->ctx == nullptr || r->variables == nullptr
            || r->header_in == nullptr
            || ngx_list_init(&r->headers_out.headers, pool, 4,
                             sizeof(ngx_table_elt_t))
                   != NGX_OK
            || ngx_list_init(&r->headers_out.trailers, pool, 1,
                             sizeof(ngx_table_elt_t))
                   != NGX_OK
            || ngx_list_init(&r->headers_in.headers, pool,
                             std::max<size_t>(s.headers.size(), 1),
                             sizeof(ngx_table_elt_t))
                   != NGX_OK
            || ngx_array_init(&r->headers_in.cookies, pool, 2,
                              sizeof(ngx_table_elt_t*))
                   != NGX_OK)
        {
            throw std::bad_alloc();
        }
        ngx_time_t* tp = ngx_timeofday();
        r->start_sec = tp->sec;
        r->start_msec = tp->msec;
        r->method = NGX_HTTP_GET;
        r->method_name = kGet;
        r->http_version = s.http_version;
        static ngx_str_t http11 = ngx_string("HTTP/1.1");
        r->http_protocol = http11;
        r->request_line = in_pool(pool, s.request_line);
        r->uri = in_pool(pool, s.uri);
        r->unparsed_uri = in_pool(pool, s.unparsed_uri);
        r->args = in_pool(pool, s.args);
        r->headers_in.server = in_pool(pool, s.server);
        r->headers_in.content_length_n = -1;
        r->headers_in.keep_alive_n = -1;
        r->headers_out.content_length_n = -1;
        r->headers_out.last_modified_time = -1;
        r->uri_changes = NGX_HTTP_MAX_URI_CHANGES + 1;
        r->subrequests = NGX_HTTP_MAX_SUBREQUESTS + 1;
        r->http_state = NGX_HTTP_PROCESS_REQUEST_STATE;
        r->discard_body = 1;
        for (const auto& [name, value] : s.headers) {
            ngx_table_elt_t* h =
                push_header(&r->headers_in.headers, pool, in_pool(pool, name),
                            in_pool(pool, value));
            if (named(*h, "Cookie")) {
                auto** slot = static_cast<ngx_table_elt_t**>(
                    ngx_array_push(&r->headers_in.cookies));
                if (slot == nullptr) {
                    throw std::bad_alloc();
                }
                *slot = h;
            } else if (named(*h, "Host") && r->headers_in.host == nullptr) {
                r->headers_in.host = h;
            } else if (named(*h, "User-Agent")) {
                r->headers_in.user_agent = h;
            }
        }
        if (!s.captures.empty()) {
            auto* caps = static_cast<int*>(
                ngx_palloc(pool, s.captures.size() * sizeof(int)));
            if (caps == nullptr) {
                throw std::bad_alloc();
            }
            std::copy(s.captures.begin(), s.captures.end(), caps);
            r->captures = caps;
            r->ncaptures = static_cast<ngx_uint_t>(s.captures.size());
            r->captures_data = copy_in(pool, s.captures_data);
        }
        ngx_pool_cleanup_t* cln = ngx_pool_cleanup_add(pool, 0);
        if (cln == nullptr) {
            throw std::bad_alloc();
        }
        auto* owner = new FakeOwner{job.snap, RequestCtx(), job.what};
        owner->ctx.grant = s.grant;
        owner->ctx.fixed = &s.values;
        cln->data = owner;
        cln->handler = [](void* data) noexcept {
            delete static_cast<FakeOwner*>(data);
        };
        ngx_http_set_ctx(r, &owner->ctx, ngx_http_pulse_module);
        *owner_out = owner;
        return r;
    } catch (...) {
        if (r != nullptr) {
            r->logged = 1;
            ngx_http_free_request(r, 0);
        }
        ngx_http_close_connection(c);
        throw;
    }
}

void run_job(ngx_event_t* ev) noexcept
{
    std::unique_ptr<HookJob> job(static_cast<HookJob*>(ev->data));
    ngx_http_request_t* r = nullptr;
    try {
        FakeOwner* owner = nullptr;
        r = fake_request(*job, &owner);
        if (r == nullptr) {
            return;
        }
        ngx_connection_t* c = r->connection;
        ngx_str_t uri = in_pool(r->pool, job->uri);
        ngx_str_t args = r->args;
        ngx_uint_t flags = 0;
        ngx_str_t own{0, nullptr};
        if (ngx_http_parse_unsafe_uri(r, &uri, &own, &flags) != NGX_OK) {
            ngx_log_error(NGX_LOG_ERR, c->log, 0,
                          PULSE_LOG_PREFIX "pulse_%s_request: bad URI \"%V\"",
                          job->what, &uri);
            on_fake_done(r);
            return;
        }
        if (own.len != 0) {
            args = own;
        }
        auto* body = static_cast<ngx_http_request_body_t*>(
            ngx_pcalloc(r->pool, sizeof(ngx_http_request_body_t)));
        ngx_http_request_t* sr =
            body == nullptr ? nullptr
                            : captured_subrequest(r, &uri, &args,
                                                  on_presence_answer, owner, 0);
        if (sr == nullptr) {
            on_fake_done(r);
            return;
        }
        sr->request_body = body;
        sr->headers_in.content_length_n = 0;
        ngx_http_run_posted_requests(c);
    } catch (const std::exception& e) {
        ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, 0, PULSE_LOG_PREFIX "%s",
                      e.what());
        if (r != nullptr && r->connection->data == r) {
            on_fake_done(r);
        }
    }
}

void post_job(std::shared_ptr<const RequestSnapshot> snap,
              const std::string& uri, const char* what)
{
    auto job = std::make_unique<HookJob>();
    job->snap = std::move(snap);
    job->uri = uri;
    job->what = what;
    job->ev.handler = run_job;
    job->ev.log = ngx_cycle->log;
    job->ev.data = job.get();
    ngx_add_timer(&job->ev, 0);
    (void) job.release();  // run_job owns it
}

}  // namespace

std::unique_ptr<Presence> Presence::make(ngx_http_request_t* r,
                                         ngx_http_pulse_loc_conf_t* lcf,
                                         std::string_view subscriber_type)
{
    if (lcf->subscribe_request == nullptr
        && lcf->unsubscribe_request == nullptr) {
        return nullptr;
    }
    std::unique_ptr<Presence> p(new Presence());
    p->snap_ = snapshot(r, lcf, subscriber_type);
    if (lcf->subscribe_request != nullptr) {
        p->subscribe_uri_ = eval(r, lcf->subscribe_request);
    }
    if (lcf->unsubscribe_request != nullptr) {
        p->unsubscribe_uri_ = eval(r, lcf->unsubscribe_request);
    }
    return p;
}

Presence::~Presence() = default;

void Presence::subscribed() noexcept
try {
    if (subscribed_) {
        return;
    }
    subscribed_ = true;
    if (!subscribe_uri_.empty()) {
        post_job(snap_, subscribe_uri_, "subscribe");
    }
}
PULSE_CATCH_VOID(ngx_cycle->log)

void Presence::unsubscribed() noexcept
try {
    if (!subscribed_) {
        return;
    }
    subscribed_ = false;
    if (!unsubscribe_uri_.empty() && !ngx_terminate) {
        post_job(snap_, unsubscribe_uri_, "unsubscribe");
    }
}
PULSE_CATCH_VOID(ngx_cycle->log)

}  // namespace pulse::ngx
