#pragma once

// Encoded bytes shared by every subscriber that sends them: a worker frames
// a message once per wire format and queues the same Frame on all its
// subscribers' sockets. Reference counted, one allocation, immutable.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string_view>
#include <type_traits>
#include <utility>

namespace pulse {

class Frame {
public:
    /// A frame holding a copy of `bytes`, with one reference (the
    /// caller's). Throws std::bad_alloc.
    /// `published_ns`: when the message it frames was accepted
    /// (CLOCK_MONOTONIC; 0 for what is no message: pings, headers).
    static Frame* make(std::string_view bytes, int64_t published_ns = 0)
    {
        void* mem = std::malloc(sizeof(Frame) + bytes.size());
        if (mem == nullptr) {
            throw std::bad_alloc();
        }
        auto* f = new (mem) Frame();
        f->size_ = bytes.size();
        f->published_ns_ = published_ns;
        if (!bytes.empty()) {
            std::memcpy(f->bytes(), bytes.data(), bytes.size());
        }
        return f;
    }
    void ref() { ++refs_; }
    void unref()
    {
        if (--refs_ == 0) {
            static_assert(std::is_trivially_destructible_v<Frame>);
            std::free(this);
        }
    }
    const unsigned char* data() const
    {
        return reinterpret_cast<const unsigned char*>(this + 1);
    }
    size_t size() const { return size_; }
    int64_t published_ns() const { return published_ns_; }
    std::string_view view() const
    {
        return std::string_view(reinterpret_cast<const char*>(data()), size_);
    }

private:
    Frame() = default;
    unsigned char* bytes()
    {
        return reinterpret_cast<unsigned char*>(this + 1);
    }
    uint32_t refs_ = 1;
    size_t size_ = 0;
    int64_t published_ns_ = 0;
};

/// Owns one reference to a Frame.
class FrameRef {
public:
    FrameRef() = default;
    /// Adopts the reference `f` came with.
    explicit FrameRef(Frame* f) : f_(f) {}
    FrameRef(const FrameRef& o) : f_(o.f_)
    {
        if (f_ != nullptr) {
            f_->ref();
        }
    }
    FrameRef(FrameRef&& o) noexcept : f_(o.f_) { o.f_ = nullptr; }
    FrameRef& operator=(const FrameRef& o)
    {
        FrameRef copy(o);
        std::swap(f_, copy.f_);
        return *this;
    }
    FrameRef& operator=(FrameRef&& o) noexcept
    {
        std::swap(f_, o.f_);
        return *this;
    }
    ~FrameRef()
    {
        if (f_ != nullptr) {
            f_->unref();
        }
    }
    Frame* get() const { return f_; }
    explicit operator bool() const { return f_ != nullptr; }

private:
    Frame* f_ = nullptr;
};

}  // namespace pulse
