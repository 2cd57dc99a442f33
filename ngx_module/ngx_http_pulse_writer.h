#pragma once

#include "ngx.h"

#include <cstddef>

#include "pulse/frame.h"

namespace pulse::ngx {

/// Writes queued Frames to a subscriber's connection: for HTTP/1.x and
/// WebSocket straight to the socket with one send (one frame) or
/// send_chain (writev) per flush, for HTTP/2 through the request's output
/// filters. Holds at most `limit` unsent bytes (pulse_subscriber_max_
/// buffered). Once the stream is detached from its request only the
/// connection is used.
class StreamWriter {
public:
    StreamWriter(ngx_http_request_t* r, size_t limit)
        : r_(r), c_(r->connection), limit_(limit)
    {}
    StreamWriter(const StreamWriter&) = delete;
    StreamWriter& operator=(const StreamWriter&) = delete;
    StreamWriter(StreamWriter&&) = delete;
    StreamWriter& operator=(StreamWriter&&) = delete;
    ~StreamWriter() { clear(); }

    /// From now on the stream has only its connection.
    void detach() { r_ = nullptr; }
    /// Queues a frame (one reference taken); false when that would pass
    /// the limit: the client is too slow (logged).
    bool push(Frame* f);
    /// NGX_OK: all sent; NGX_AGAIN: waiting for the socket; NGX_ERROR.
    ngx_int_t flush();
    bool empty() const { return head_ == nullptr; }
    void clear();

    /// Queue entries: a buffer over a Frame and its chain link. They come
    /// from a per-process free list, so delivering allocates nothing once
    /// warm, an idle stream holds none, and their addresses stay put while
    /// nginx's output filters hold them (HTTP/2).
    struct Item {
        Frame* frame;
        ngx_buf_t buf;
        ngx_chain_t link;
        Item* next;
        bool passed;  // handed to the output filters (HTTP/2)
    };

private:
    static Item* alloc_item();
    static void free_item(Item* it);
    void reap();

    ngx_http_request_t* r_;  // nullptr once detached
    ngx_connection_t* c_;
    size_t limit_;
    size_t queued_ = 0;
    Item* head_ = nullptr;
    Item* tail_ = nullptr;
};

}  // namespace pulse::ngx
