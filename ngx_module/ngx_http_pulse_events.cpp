#include "ngx_http_pulse_events.h"

#include <string>
#include <string_view>

#include "ngx_http_pulse_guard.h"
#include "ngx_http_pulse_request.h"
#include "ngx_http_pulse_worker.h"

namespace pulse::ngx {

namespace {

std::string_view event_name(ChannelEvent e)
{
    switch (e) {
        case ChannelEvent::kSubscriberEnqueue:
            return "subscriber_enqueue";
        case ChannelEvent::kSubscriberDequeue:
            return "subscriber_dequeue";
        case ChannelEvent::kChannelPublish:
            return "channel_publish";
        case ChannelEvent::kChannelDelete:
            break;
    }
    return "channel_delete";
}

struct Evaluated {
    std::string id;
    std::string body;
};

// The events channel's id and the event's string, as the request
// evaluates them with $pulse_channel_event set to `e`.
Evaluated evaluate(ngx_http_request_t* r, ngx_http_pulse_loc_conf_t* lcf,
                   ChannelEvent e)
{
    RequestCtx& ctx = request_ctx(r);
    ctx.channel_event = event_name(e);
    Evaluated out{eval(r, lcf->channel_events_id),
                  eval(r, lcf->channel_event_string)};
    ctx.channel_event = {};
    return out;
}

}  // namespace

void send_channel_event(ngx_http_request_t* r, ngx_http_pulse_loc_conf_t* lcf,
                        ChannelEvent event) noexcept
try {
    Worker* w = Worker::get();
    if (lcf->channel_events_id == nullptr || w == nullptr) {
        return;
    }
    Evaluated ev = evaluate(r, lcf, event);
    w->fanout().channel_event(ev.id, ev.body, w->now());
}
PULSE_CATCH_VOID(r->connection->log)

std::unique_ptr<Fanout::EventHold> subscriber_events(
    ngx_http_request_t* r, ngx_http_pulse_loc_conf_t* lcf)
{
    Worker* w = Worker::get();
    if (lcf->channel_events_id == nullptr || w == nullptr) {
        return nullptr;
    }
    Evaluated in = evaluate(r, lcf, ChannelEvent::kSubscriberEnqueue);
    Evaluated out = evaluate(r, lcf, ChannelEvent::kSubscriberDequeue);
    w->fanout().channel_event(in.id, in.body, w->now());
    return w->fanout().hold_event(out.id, out.body);
}

bool wants_subscriber_info(ngx_http_request_t* r)
{
    auto* mcf = static_cast<ngx_http_pulse_main_conf_t*>(
        ngx_http_get_module_main_conf(r, ngx_http_pulse_module));
    return mcf->subscriber_info != 0 && Worker::get() != nullptr;
}

std::unique_ptr<Fanout::InfoListener> subscriber_info(
    ngx_http_request_t* r, ngx_http_pulse_loc_conf_t* lcf,
    const std::vector<std::string>& keys)
{
    if (!wants_subscriber_info(r)) {
        return nullptr;
    }
    Worker* w = Worker::get();
    if (lcf->subscriber_info != 0) {
        RequestCtx* ctx = find_request_ctx(r);
        auto targets = channel_keys(r, lcf, true);
        if (ctx == nullptr || !targets.is_ok()) {
            return nullptr;
        }
        for (const std::string& key : targets.value()) {
            w->fanout().request_info(key, ctx->info_request);
        }
        return nullptr;
    }
    if (lcf->subscriber_info_string == nullptr) {
        return nullptr;
    }
    return w->fanout().listen_info(keys, eval(r, lcf->subscriber_info_string));
}

namespace {

char* default_string(ngx_conf_t* cf, ngx_http_complex_value_t** out,
                     ngx_str_t* value)
{
    auto* cv = static_cast<ngx_http_complex_value_t*>(
        ngx_pcalloc(cf->pool, sizeof(ngx_http_complex_value_t)));
    if (cv == nullptr) {
        return static_cast<char*>(NGX_CONF_ERROR);
    }
    ngx_http_compile_complex_value_t ccv{};
    ccv.cf = cf;
    ccv.value = value;
    ccv.complex_value = cv;
    if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
        return static_cast<char*>(NGX_CONF_ERROR);
    }
    *out = cv;
    return NGX_CONF_OK;
}

}  // namespace

char* merge_channel_events(ngx_conf_t* cf, ngx_http_pulse_loc_conf_t* prev,
                           ngx_http_pulse_loc_conf_t* conf)
{
    if (conf->channel_events_id == nullptr) {
        conf->channel_events_id = prev->channel_events_id;
    }
    if (conf->channel_event_string == nullptr) {
        conf->channel_event_string = prev->channel_event_string;
    }
    if (conf->channel_events_id == nullptr
        || conf->channel_event_string != nullptr) {
        return NGX_CONF_OK;
    }
    static ngx_str_t kDefault =
        ngx_string("$pulse_channel_event $pulse_channel_id");
    return default_string(cf, &conf->channel_event_string, &kDefault);
}

// nchan's default: who and where each subscriber is.
char* merge_subscriber_info(ngx_conf_t* cf, ngx_http_pulse_loc_conf_t* prev,
                            ngx_http_pulse_loc_conf_t* conf)
{
    if (conf->subscriber_info_string == nullptr) {
        conf->subscriber_info_string = prev->subscriber_info_string;
    }
    if (conf->subscriber_info_string != nullptr || conf->roles == 0) {
        return NGX_CONF_OK;
    }
    static ngx_str_t kDefault = ngx_string(
        "$pulse_subscriber_type $remote_addr:$remote_port "
        "$http_user_agent $server_name $request_uri $pid");
    return default_string(cf, &conf->subscriber_info_string, &kDefault);
}

}  // namespace pulse::ngx
