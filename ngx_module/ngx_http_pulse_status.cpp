// pulse_stub_status: nchan_stub_status's lines (docs/protocol.md §8). Counts
// come from the shared zone, so they cover every worker.

#include "ngx.h"

#include <string>

#include "ngx_http_pulse_guard.h"
#include "ngx_http_pulse_handlers.h"
#include "ngx_http_pulse_request.h"
#include "ngx_http_pulse_worker.h"

#ifndef PULSE_VERSION
#error "PULSE_VERSION comes from debian/changelog (config.make)"
#endif

ngx_int_t ngx_http_pulse_stub_status_handler(ngx_http_request_t* r) noexcept
try {
    pulse::ngx::Worker* w = nullptr;
    if (ngx_int_t rc = pulse::ngx::report_request(r, &w); rc != NGX_OK) {
        return rc;
    }
    pulse::StoreStats st;
    {
        pulse::Store::Guard g(w->store());
        st = w->store().stats(g);
    }
    auto n = [](uint64_t v) { return std::to_string(v); };
    std::string body;
    body += "total published messages: " + n(st.total_published) + "\n";
    body += "stored messages: " + n(st.stored_messages) + "\n";
    body += "shared memory used: " + n(st.shm_used / 1024) + "K\n";
    body += "shared memory limit: " + n(st.shm_capacity / 1024) + "K\n";
    body += "channels: " + n(st.channels) + "\n";
    body += "subscribers: " + n(st.subscribers) + "\n";
    body += "redis pending commands: 0\n";
    body += "redis connected servers: 0\n";
    body += "redis unhealthy upstreams: 0\n";
    body += "total redis commands sent: 0\n";
    body += "total interprocess alerts received: " + n(st.notices) + "\n";
    body += "interprocess alerts in transit: " + n(st.notices_queued) + "\n";
    body += "interprocess queued alerts: " + n(st.notices_queued) + "\n";
    body += "total interprocess send delay: 0\n";
    body += "total interprocess receive delay: 0\n";
    body += "pulse version: " PULSE_VERSION "\n";
    return pulse::ngx::send_response(r, NGX_HTTP_OK, "text/plain", body);
}
PULSE_CATCH_RETURN(r->connection->log, NGX_LOG_ERR,
                   NGX_HTTP_INTERNAL_SERVER_ERROR)
