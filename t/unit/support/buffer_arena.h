#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <stdexcept>

#include <sys/mman.h>

#include "pulse/arena.h"

namespace pulse::test {

/// An Arena over one mmap'd region, for store tests. With `shared` the
/// mapping is MAP_SHARED, so a fork()ed child sees and changes the same
/// store (the path nginx workers take). The allocator is a bump pointer with
/// power-of-two free lists, all inside the region, and the lock a spinlock
/// there too: both work across processes.
class BufferArena final : public Arena {
public:
    explicit BufferArena(size_t size, bool shared = false) : size_(size)
    {
        int flags = MAP_ANONYMOUS | (shared ? MAP_SHARED : MAP_PRIVATE);
        void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, flags, -1, 0);
        if (p == MAP_FAILED) {
            throw std::bad_alloc();
        }
        mem_ = static_cast<std::byte*>(p);
        ctl_ = new (mem_) Control();
        ctl_->top = sizeof(Control);
    }
    ~BufferArena() override { munmap(mem_, size_); }
    BufferArena(const BufferArena&) = delete;
    BufferArena& operator=(const BufferArena&) = delete;
    BufferArena(BufferArena&&) = delete;
    BufferArena& operator=(BufferArena&&) = delete;

    std::byte* base() noexcept override { return mem_; }

    void* alloc_locked(size_t size) noexcept override
    {
        uint32_t cls = 4;  // 16 bytes
        while ((size_t{1} << cls) < size + kHeader) {
            ++cls;
        }
        if (cls >= kClasses) {
            return nullptr;
        }
        std::byte* block = nullptr;
        if (ctl_->free[cls] != 0) {
            block = mem_ + ctl_->free[cls];
            std::memcpy(&ctl_->free[cls], block + kHeader, sizeof(uint64_t));
        } else {
            size_t need = size_t{1} << cls;
            if (ctl_->top + need > size_) {
                return nullptr;
            }
            block = mem_ + ctl_->top;
            ctl_->top += need;
        }
        std::memcpy(block, &cls, sizeof(cls));
        ctl_->used += size_t{1} << cls;
        return block + kHeader;
    }

    void free_locked(void* p) noexcept override
    {
        if (p == nullptr) {
            return;
        }
        std::byte* block = static_cast<std::byte*>(p) - kHeader;
        uint32_t cls = 0;
        std::memcpy(&cls, block, sizeof(cls));
        std::memset(p, 0xa5, (size_t{1} << cls) - kHeader);  // poison
        uint64_t next = ctl_->free[cls];
        std::memcpy(block + kHeader, &next, sizeof(next));
        ctl_->free[cls] = static_cast<uint64_t>(block - mem_);
        ctl_->used -= size_t{1} << cls;
    }

    void lock() noexcept override
    {
        while (ctl_->lock.exchange(1, std::memory_order_acquire) != 0) {
        }
    }
    void unlock() noexcept override
    {
        ctl_->lock.store(0, std::memory_order_release);
    }
    void* root() noexcept override
    {
        return ctl_->root == 0 ? nullptr : mem_ + ctl_->root;
    }
    void set_root(void* r) noexcept override
    {
        ctl_->root = static_cast<uint64_t>(static_cast<std::byte*>(r) - mem_);
    }
    size_t used_bytes() noexcept override { return ctl_->used; }
    size_t capacity_bytes() noexcept override { return size_; }

private:
    static constexpr size_t kHeader = 8;
    static constexpr uint32_t kClasses = 40;
    struct Control {
        std::atomic<uint32_t> lock{0};
        uint64_t top = 0;
        uint64_t used = 0;
        uint64_t root = 0;
        uint64_t free[kClasses] = {};
    };
    static_assert(std::atomic<uint32_t>::is_always_lock_free);

    size_t size_;
    std::byte* mem_ = nullptr;
    Control* ctl_ = nullptr;
};

}  // namespace pulse::test
