#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace pulse {

/// A region of memory shared by processes, with an allocator and one lock.
/// In nginx it is the slab pool of the shared zone (SlabArena,
/// ngx_module/ngx_http_pulse_shm.h); in tests a heap or MAP_SHARED buffer
/// (t/unit/support/buffer_arena.h). Every object the store keeps in it is
/// plain data linked by offsets from base(), so the same bytes mean the
/// same thing in every process (docs/conventions.md §3).
class Arena {
public:
    Arena() = default;
    Arena(const Arena&) = delete;
    Arena& operator=(const Arena&) = delete;
    Arena(Arena&&) = delete;
    Arena& operator=(Arena&&) = delete;
    virtual ~Arena() = default;

    /// Start of the region; offsets are relative to it.
    virtual std::byte* base() noexcept = 0;
    /// Allocates `size` bytes, aligned to 8, with the lock held; nullptr
    /// when the region is full (an expected failure, not an exception).
    virtual void* alloc_locked(size_t size) noexcept = 0;
    virtual void free_locked(void* p) noexcept = 0;
    virtual void lock() noexcept = 0;
    virtual void unlock() noexcept = 0;
    /// The region's root object, kept across nginx reloads.
    virtual void* root() noexcept = 0;
    virtual void set_root(void* root) noexcept = 0;
    /// Bytes handed out and the region size, for status pages.
    virtual size_t used_bytes() noexcept = 0;
    virtual size_t capacity_bytes() noexcept = 0;
};

/// An offset handle to a T inside an Arena; 0 is null (the region's first
/// bytes never hold a store object).
template <typename T>
struct ShmRef {
    uint32_t off = 0;

    explicit operator bool() const { return off != 0; }
    T* get(Arena& a) const { return get(a.base()); }
    /// With the region's base already known (the store keeps it: one
    /// virtual call saved per dereference).
    T* get(std::byte* base) const
    {
        return off == 0 ? nullptr : reinterpret_cast<T*>(base + off);
    }
    static ShmRef of(Arena& a, const T* p) { return of(a.base(), p); }
    static ShmRef of(const std::byte* base, const T* p)
    {
        if (p == nullptr) {
            return ShmRef{};
        }
        auto d = reinterpret_cast<const std::byte*>(p) - base;
        return ShmRef{static_cast<uint32_t>(d)};
    }
    friend bool operator==(ShmRef x, ShmRef y) { return x.off == y.off; }
    friend bool operator!=(ShmRef x, ShmRef y) { return x.off != y.off; }
};

/// What may live in shared memory: plain bytes, the same in every process.
template <typename T>
constexpr bool kShmSafe =
    std::is_standard_layout_v<T>&& std::is_trivially_copyable_v<T>;

}  // namespace pulse
