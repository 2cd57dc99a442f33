#include "ngx_http_pulse_shm.h"

#include <new>

#include "ngx_http_pulse_conf.h"
#include "ngx_http_pulse_guard.h"

namespace pulse::ngx {

namespace {

ngx_str_t zone_name = ngx_string("pulse");

uint64_t make_token()
{
    // Names this zone's doorbell sockets; it only has to differ between
    // nginx instances on one host.
    uint64_t t = static_cast<uint64_t>(ngx_pid);
    t = (t << 32) ^ static_cast<uint64_t>(ngx_time());
    t ^= static_cast<uint64_t>(ngx_random()) << 16;
    return t ^ reinterpret_cast<uintptr_t>(&t);
}

// Called in the master for every cycle: build the store, or adopt the one
// the previous cycle left (reload keeps channels and messages), following
// ngx_http_limit_req_init_zone.
ngx_int_t ngx_http_pulse_init_zone(ngx_shm_zone_t* shm_zone,
                                   void* data) noexcept
try {
    auto* shpool = reinterpret_cast<ngx_slab_pool_t*>(shm_zone->shm.addr);
    // data is the previous cycle's Zone; the store itself is found again
    // through shpool->data, so only the new cycle's view is set up here.
    (void) data;
    auto* z = static_cast<Zone*>(shm_zone->data);
    z->arena.reset(shpool);
    z->store.rebase();

    if (shm_zone->shm.exists) {
        return NGX_OK;
    }

    if (shpool->data == nullptr) {
        static const char ctx[] = " in pulse zone \"pulse\"";
        size_t len = sizeof(ctx);
        shpool->log_ctx = static_cast<u_char*>(ngx_slab_alloc(shpool, len));
        if (shpool->log_ctx == nullptr) {
            return NGX_ERROR;
        }
        ngx_memcpy(shpool->log_ctx, ctx, len);
    }
    // Pulse logs a full zone itself, once per episode (publish.cpp).
    shpool->log_nomem = 0;

    size_t pages = shm_zone->shm.size / ngx_pagesize;
    uint32_t buckets = static_cast<uint32_t>(pages < 1024 ? 1024 : pages);
    Store::Guard g(z->store);
    Status s = z->store.open(g, buckets, make_token());
    if (!s.is_ok()) {
        ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                      PULSE_LOG_PREFIX "cannot initialise the shared zone: %s",
                      s.message().c_str());
        return NGX_ERROR;
    }
    return NGX_OK;
}
PULSE_CATCH_RETURN(shm_zone->shm.log, NGX_LOG_EMERG, NGX_ERROR)

}  // namespace

size_t SlabArena::used_bytes() noexcept
{
    size_t total = static_cast<size_t>(pool_->end - pool_->start);
    size_t free = pool_->pfree * ngx_pagesize;
    return total > free ? total - free : 0;
}

size_t SlabArena::capacity_bytes() noexcept
{
    return static_cast<size_t>(pool_->end - pool_->start);
}

ngx_shm_zone_t* add_zone(ngx_conf_t* cf, size_t size)
{
    ngx_shm_zone_t* z =
        ngx_shared_memory_add(cf, &zone_name, size, &ngx_http_pulse_module);
    if (z == nullptr) {
        return nullptr;
    }
    if (z->data == nullptr) {
        void* mem = ngx_palloc(cf->pool, sizeof(Zone));
        if (mem == nullptr) {
            return nullptr;
        }
        static_assert(std::is_trivially_destructible_v<Store>);
        z->data = new (mem) Zone(nullptr);
    }
    z->init = ngx_http_pulse_init_zone;
    return z;
}

Zone* zone(ngx_cycle_t* cycle)
{
    auto* mcf = static_cast<ngx_http_pulse_main_conf_t*>(
        ngx_http_cycle_get_module_main_conf(cycle, ngx_http_pulse_module));
    if (mcf == nullptr || mcf->shm_zone == nullptr) {
        return nullptr;
    }
    return static_cast<Zone*>(mcf->shm_zone->data);
}

}  // namespace pulse::ngx
