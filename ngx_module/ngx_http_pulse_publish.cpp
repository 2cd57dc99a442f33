// Publisher API: POST/PUT publish, GET channel info, DELETE (docs/protocol.md
// §1).

#include "ngx.h"

#include <algorithm>
#include <stdexcept>
#include <string>

#include "ngx_http_pulse_auth.h"
#include "ngx_http_pulse_events.h"
#include "ngx_http_pulse_guard.h"
#include "ngx_http_pulse_handlers.h"
#include "ngx_http_pulse_hooks.h"
#include "ngx_http_pulse_request.h"
#include "ngx_http_pulse_variables.h"
#include "ngx_http_pulse_worker.h"
#include "pulse/channel_info.h"
#include "pulse/publish_request.h"

namespace pulse::ngx {

namespace {

std::string request_body(ngx_http_request_t* r)
{
    std::string body;
    if (r->request_body == nullptr) {
        return body;
    }
    for (ngx_chain_t* cl = r->request_body->bufs; cl != nullptr; cl = cl->next)
    {
        ngx_buf_t* b = cl->buf;
        if (b->in_file) {
            // nginx spooled a large body to a temp file.
            auto size = static_cast<size_t>(b->file_last - b->file_pos);
            size_t at = body.size();
            body.resize(at + size);
            ssize_t n = ngx_read_file(
                b->file, reinterpret_cast<u_char*>(body.data() + at), size,
                b->file_pos);
            if (n != static_cast<ssize_t>(size)) {
                throw std::runtime_error("cannot read the spooled body");
            }
        } else {
            body.append(reinterpret_cast<const char*>(b->pos),
                        static_cast<size_t>(b->last - b->pos));
        }
    }
    return body;
}

ngx_int_t send_info(ngx_http_request_t* r, ngx_uint_t status,
                    const ChannelInfo& info)
{
    auto accept = r->headers_in.accept;
    InfoFormat f = info_format_from_accept(accept ? sv(accept->value) : "");
    return send_response(r, status, info_content_type(f),
                         format_channel_info(info, f));
}

ngx_int_t fail(ngx_http_request_t* r, const Status& s)
{
    return send_status(r, s);
}

// Publishes `body` (the request's own when `content_type` is null) to the
// request's channels and answers with their info.
ngx_int_t publish_now(ngx_http_request_t* r, ngx_http_pulse_loc_conf_t* lcf,
                      std::string body, const std::string* content_type)
{
    if (Worker::get() == nullptr) {
        return NGX_HTTP_SERVICE_UNAVAILABLE;
    }
    auto keys = channel_keys(r, lcf, true);
    if (!keys.is_ok()) {
        return fail(r, keys.status());
    }
    auto spec = publish_spec(r, lcf);
    if (!spec.is_ok()) {
        return fail(r, spec.status());
    }
    std::string ctype;
    if (content_type != nullptr) {
        ctype = *content_type;  // pulse_publisher_upstream_request's answer
    } else {
        body = request_body(r);
        if (r->headers_in.content_type != nullptr) {
            ctype = std::string(sv(r->headers_in.content_type->value));
        }
    }
    std::string event;
    PublishFields fields;
    fields.content_type_name = "Content-Type header";
    if (lcf->eventsource_event != nullptr) {
        event = eval(r, lcf->eventsource_event);
        fields.event_name = "pulse_eventsource_event value";
    } else if (auto e = header(r, "X-EventSource-Event")) {
        event = std::string(*e);
        fields.event_name = "X-EventSource-Event header";
    }
    fields.event = event;
    fields.content_type = ctype;
    std::string_view key = header(r, "Pulse-Key").value_or("");
    fields.key = key;
    fields.key_name = "Pulse-Key header";
    if (Status v = validate(fields); !v.is_ok()) {
        return fail(r, v);
    }
    std::optional<MsgId> id;
    if (lcf->publisher_message_id) {
        if (auto h = header(r, "Pulse-Message-Id")) {
            auto parsed = parse_publish_id(*h);
            if (!parsed.is_ok()) {
                return fail(r, parsed.status());
            }
            id = parsed.value();
        }
    }
    const acl::Grant& grant = request_grant(r);
    std::string_view tenant =
        grant.claims ? std::string_view(grant.claims->tenant) : "";
    auto out = Worker::get()->fanout().publish(
        keys.value(), spec.value(),
        PublishInput{body, ctype, event, id, tenant, key},
        static_cast<int64_t>(ngx_time()));
    if (!out.is_ok()) {
        return fail(r, out.status());
    }
    set_message_id(r, to_string(out->info.last_id));
    send_channel_event(r, lcf, ChannelEvent::kChannelPublish);
    return send_info(r, static_cast<ngx_uint_t>(out->status), out->info);
}

ngx_int_t publish_read(ngx_http_request_t* r, ngx_http_pulse_loc_conf_t* lcf)
{
    if (lcf->publisher_upstream_request == nullptr) {
        return publish_now(r, lcf, std::string(), nullptr);
    }
    // nchan's order: a bad channel id is answered before the upstream is
    // asked
    if (auto keys = channel_keys(r, lcf, true); !keys.is_ok()) {
        return fail(r, keys.status());
    }
    // NGX_DONE: the upstream's answer finalizes the request
    return publisher_upstream(r, lcf, publish_now);
}

void publish_body_handler(ngx_http_request_t* r) noexcept
{
    auto* lcf = static_cast<ngx_http_pulse_loc_conf_t*>(
        ngx_http_get_module_loc_conf(r, ngx_http_pulse_module));
    ngx_int_t rc = rc_or_500(r, [r, lcf] { return publish_read(r, lcf); });
    if (rc != NGX_DONE) {
        ngx_http_finalize_request(r, rc);
    }
}

}  // namespace

ngx_int_t publish(ngx_http_request_t* r, ngx_http_pulse_loc_conf_t* lcf)
{
    (void) lcf;
    // The whole body, in memory or spooled to a file by nginx; nginx itself
    // answers 413 past client_max_body_size.
    ngx_int_t rc = ngx_http_read_client_request_body(r, publish_body_handler);
    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }
    return NGX_DONE;
}

namespace {

// GET (info) and DELETE: the same lookup, DELETE also removes the channels
// and wakes their subscribers' workers (who end them with 410).
ngx_int_t info_or_delete(ngx_http_request_t* r, ngx_http_pulse_loc_conf_t* lcf,
                         bool remove)
{
    ngx_http_discard_request_body(r);
    Worker* w = Worker::get();
    if (w == nullptr) {
        return NGX_HTTP_SERVICE_UNAVAILABLE;
    }
    auto keys = channel_keys(r, lcf, true);
    if (!keys.is_ok()) {
        return fail(r, keys.status());
    }
    int64_t now = static_cast<int64_t>(ngx_time());
    auto info = remove ? w->fanout().remove(keys.value(), now)
                       : w->fanout().info(keys.value(), now);
    if (!info.is_ok()) {
        return send_response(r, NGX_HTTP_NOT_FOUND, "", "");
    }
    if (remove) {
        send_channel_event(r, lcf, ChannelEvent::kChannelDelete);
    }
    return send_info(r, NGX_HTTP_OK, info.value());
}

}  // namespace

ngx_int_t channel_info(ngx_http_request_t* r, ngx_http_pulse_loc_conf_t* lcf)
{
    return info_or_delete(r, lcf, false);
}

ngx_int_t delete_channel(ngx_http_request_t* r, ngx_http_pulse_loc_conf_t* lcf)
{
    return info_or_delete(r, lcf, true);
}

}  // namespace pulse::ngx
