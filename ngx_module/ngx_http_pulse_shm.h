#pragma once

#include "ngx.h"

#include "pulse/arena.h"
#include "pulse/store.h"

namespace pulse::ngx {

/// pulse::Arena over the zone's slab pool: ngx_slab_alloc_locked under
/// shpool->mutex. The master force-unlocks that mutex when a worker dies
/// holding it (ngx_unlock_mutexes), so a SIGKILLed worker cannot wedge the
/// others.
class SlabArena final : public Arena {
public:
    explicit SlabArena(ngx_slab_pool_t* pool) : pool_(pool) {}
    void reset(ngx_slab_pool_t* pool) { pool_ = pool; }

    std::byte* base() noexcept override
    {
        return reinterpret_cast<std::byte*>(pool_);
    }
    void* alloc_locked(size_t size) noexcept override
    {
        return ngx_slab_alloc_locked(pool_, size);
    }
    void free_locked(void* p) noexcept override
    {
        ngx_slab_free_locked(pool_, p);
    }
    void lock() noexcept override { ngx_shmtx_lock(&pool_->mutex); }
    void unlock() noexcept override { ngx_shmtx_unlock(&pool_->mutex); }
    void* root() noexcept override { return pool_->data; }
    void set_root(void* r) noexcept override { pool_->data = r; }
    size_t used_bytes() noexcept override;
    size_t capacity_bytes() noexcept override;

private:
    ngx_slab_pool_t* pool_;
};

/// Per-cycle view of the zone: lives in the cycle pool.
struct Zone {
    explicit Zone(ngx_slab_pool_t* pool) : arena(pool), store(arena) {}
    SlabArena arena;
    Store store;
};

/// Adds the zone `pulse` of `size` bytes (config time).
ngx_shm_zone_t* add_zone(ngx_conf_t* cf, size_t size);

/// The zone of the running cycle, or nullptr when no location uses pulse.
Zone* zone(ngx_cycle_t* cycle);

}  // namespace pulse::ngx
