#pragma once

#include "ngx.h"

#include <cstddef>

#include "ngx_http_pulse_metrics.h"
#include "pulse/frame.h"
#include "pulse/metrics.h"

namespace pulse::ngx {

/// Writes queued Frames to a subscriber's connection: for HTTP/1.x and
/// WebSocket straight to the socket with one send (one frame) or
/// send_chain (writev) per flush, for HTTP/2 through the request's output
/// filters. Holds at most `limit` unsent bytes (pulse_subscriber_max_
/// buffered). Once the stream is detached from its request only the
/// connection is used. With pulse_metrics on it counts its connection,
/// the messages it wrote and their latency, and is counted in the queue
/// histogram.
class StreamWriter {
public:
    StreamWriter(ngx_http_request_t* r, size_t limit, metrics::Tp tp);
    StreamWriter(const StreamWriter&) = delete;
    StreamWriter& operator=(const StreamWriter&) = delete;
    StreamWriter(StreamWriter&&) = delete;
    StreamWriter& operator=(StreamWriter&&) = delete;
    ~StreamWriter();

    /// Unsent bytes of every live writer of this process.
    static metrics::Histogram<metrics::kQueueBounds.size()> queue_histogram();

    /// From now on the stream has only its connection.
    void detach() { r_ = nullptr; }
    /// Queues a frame (one reference taken); false when that would pass
    /// the limit: the client is too slow (logged).
    bool push(Frame* f);
    /// NGX_OK: all sent; NGX_AGAIN: waiting for the socket; NGX_ERROR.
    ngx_int_t flush();
    bool empty() const { return head_ == nullptr; }
    /// Bytes push() takes before the limit.
    size_t room() const { return limit_ > queued_ ? limit_ - queued_ : 0; }
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
    void count_sent();

    ngx_http_request_t* r_;  // nullptr once detached
    ngx_connection_t* c_;
    size_t limit_;
    size_t queued_ = 0;
    Item* head_ = nullptr;
    Item* tail_ = nullptr;
    ConnectionGauge gauge_;
    bool tracked_;  // in the list of live writers (pulse_metrics on)
    // the process's live writers, for the queue histogram (metrics on)
    StreamWriter* prev_ = nullptr;
    StreamWriter* next_ = nullptr;
};

}  // namespace pulse::ngx
