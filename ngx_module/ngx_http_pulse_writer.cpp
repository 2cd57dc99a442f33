#include "ngx_http_pulse_writer.h"

#include <new>
#include <type_traits>

#include "ngx_http_pulse_guard.h"

namespace pulse::ngx {

namespace {
// Spare queue entries of this process (one thread per worker).
StreamWriter::Item* g_free_items = nullptr;
}  // namespace

StreamWriter::Item* StreamWriter::alloc_item()
{
    Item* it = g_free_items;
    if (it != nullptr) {
        g_free_items = it->next;
        return it;
    }
    void* mem = ngx_alloc(sizeof(Item), ngx_cycle->log);
    if (mem == nullptr) {
        throw std::bad_alloc();
    }
    return static_cast<Item*>(mem);
}

void StreamWriter::free_item(Item* it)
{
    static_assert(std::is_trivially_destructible_v<Item>);
    it->next = g_free_items;
    g_free_items = it;
}

namespace {
StreamWriter* g_writers = nullptr;
}  // namespace

StreamWriter::StreamWriter(ngx_http_request_t* r, size_t limit, metrics::Tp tp)
    : r_(r),
      c_(r->connection),
      limit_(limit),
      gauge_(tp),
      tracked_(metrics_block() != nullptr)
{
    if (tracked_) {
        next_ = g_writers;
        if (next_ != nullptr) {
            next_->prev_ = this;
        }
        g_writers = this;
    }
}

StreamWriter::~StreamWriter()
{
    clear();
    if (tracked_) {
        (prev_ != nullptr ? prev_->next_ : g_writers) = next_;
        if (next_ != nullptr) {
            next_->prev_ = prev_;
        }
    }
}

metrics::Histogram<metrics::kQueueBounds.size()> StreamWriter::queue_histogram()
{
    metrics::Histogram<metrics::kQueueBounds.size()> h;
    for (StreamWriter* w = g_writers; w != nullptr; w = w->next_) {
        h.observe(w->queued_, metrics::kQueueBounds);
    }
    return h;
}

bool StreamWriter::push(Frame* f)
{
    if (queued_ + f->size() > limit_) {
        if (metrics::Block* b = metrics_block()) {
            b->counters.ended[static_cast<size_t>(metrics::Ended::kSlow)]++;
        }
        ngx_log_error(NGX_LOG_INFO, c_->log, 0,
                      PULSE_LOG_PREFIX
                      "subscriber too slow: more than %uz bytes unsent, "
                      "closing",
                      limit_);
        return false;
    }
    Item* it = alloc_item();
    f->ref();
    it->frame = f;
    ngx_memzero(&it->buf, sizeof(it->buf));
    it->buf.memory = 1;
    // TLS: without it ngx_ssl_send_chain holds small frames back until a
    // record's worth has gathered
    it->buf.flush = 1;
    it->buf.start = it->buf.pos = const_cast<u_char*>(f->data());
    it->buf.end = it->buf.last = it->buf.pos + f->size();
    it->link.buf = &it->buf;
    it->link.next = nullptr;
    it->next = nullptr;
    it->passed = false;
    if (tail_ != nullptr) {
        tail_->next = it;
        tail_->link.next = &it->link;
    } else {
        head_ = it;
    }
    tail_ = it;
    queued_ += f->size();
    return true;
}

// The messages among the frames reap() is about to free (all of each
// handed to the kernel). Apart from reap's loop, which stays as lean as
// without metrics.
void StreamWriter::count_sent()
{
    metrics::Block* b = metrics_block();
    if (b == nullptr) {
        return;
    }
    int64_t now = 0;
    for (Item* it = head_; it != nullptr && it->buf.pos == it->buf.last;
         it = it->next)
    {
        // only messages carry a publish time (not pings, headers)
        if (int64_t t = it->frame->published_ns(); t != 0) {
            if (now == 0) {
                now = mono_ns();
            }
            count_delivery(b, gauge_.transport(), it->frame->size(), t, now);
        }
    }
}

void StreamWriter::reap()
{
    if (tracked_) {
        count_sent();
    }
    while (head_ != nullptr && head_->buf.pos == head_->buf.last) {
        Item* it = head_;
        head_ = it->next;
        queued_ -= it->frame->size();
        it->frame->unref();
        free_item(it);
    }
    if (head_ == nullptr) {
        tail_ = nullptr;
    }
}

void StreamWriter::clear()
{
    while (head_ != nullptr) {
        Item* it = head_;
        head_ = it->next;
        it->frame->unref();
        free_item(it);
    }
    tail_ = nullptr;
    queued_ = 0;
}

namespace {

// nginx 1.22's ngx_unix_send (src/os/unix/ngx_send.c) for a plain TCP
// connection, without its debug-log check, whose read of the connection's
// own log was a cache miss on every delivery (3-4% of a fan-out profile
// with Debian's --with-debug nginx). The same bookkeeping: c->sent,
// write->ready, write->error, ngx_connection_error. test_nginx_mirrors.py
// fails when that function changes in the installed nginx.
ssize_t send_one(ngx_connection_t* c, u_char* buf, size_t size)
{
    while (true) {
        ssize_t n = ::send(c->fd, buf, size, 0);
        if (n > 0) {
            if (static_cast<size_t>(n) < size) {
                c->write->ready = 0;
            }
            c->sent += n;
            return n;
        }
        ngx_err_t err = ngx_socket_errno;
        if (n == 0) {
            ngx_log_error(NGX_LOG_ALERT, c->log, err, "send() returned zero");
            c->write->ready = 0;
            return 0;
        }
        if (err == NGX_EAGAIN) {
            c->write->ready = 0;
            return NGX_AGAIN;
        }
        if (err != NGX_EINTR) {
            c->write->error = 1;
            (void) ngx_connection_error(c, err,
                                        const_cast<char*>("send() failed"));
            return NGX_ERROR;
        }
    }
}

}  // namespace

ngx_int_t StreamWriter::flush()
{
    ngx_connection_t* c = c_;
    if (c->error) {
        return NGX_ERROR;
    }
    if (r_ != nullptr && r_->stream != nullptr) {
        // HTTP/2: the stream's DATA frames are made by the output filters.
        ngx_chain_t* in = nullptr;
        ngx_chain_t** last = &in;
        for (Item* it = head_; it != nullptr; it = it->next) {
            if (!it->passed) {
                it->passed = true;
                it->buf.flush = 1;
                *last = &it->link;
                last = &it->link.next;
            }
        }
        *last = nullptr;
        ngx_int_t rc = ngx_http_output_filter(r_, in);
        if (rc == NGX_ERROR) {
            return NGX_ERROR;
        }
        reap();
        return head_ == nullptr && r_->out == nullptr ? NGX_OK : NGX_AGAIN;
    }
    // HTTP/1.x: whatever nginx still holds (the response header) goes
    // first, then one send_chain (writev) of all queued frames.
    if (r_ != nullptr && (r_->out != nullptr || c->buffered)) {
        if (ngx_http_output_filter(r_, nullptr) == NGX_ERROR) {
            return NGX_ERROR;
        }
        if (r_->out != nullptr || c->buffered) {
            return ngx_handle_write_event(c->write, 0) == NGX_OK ? NGX_AGAIN
                                                                 : NGX_ERROR;
        }
    }
    // TLS keeps up to a record of its own (NGX_SSL_BUFFERED, one of the
    // low-level flags), to be flushed even when nothing of ours is queued.
    if (head_ == nullptr && (c->buffered & NGX_LOWLEVEL_BUFFERED) == 0) {
        return NGX_OK;
    }
    if (head_ != nullptr && head_ == tail_ && c->send == ngx_unix_send) {
        // One frame on plain TCP, the usual case of a live stream: send(2)
        // skips the iovec and VFS layers of writev(2), a few percent of the
        // kernel time per delivery. TLS always takes send_chain: OpenSSL
        // wants a write it could not finish retried with the same buffer,
        // and ngx_ssl_send_chain writes from its own.
        ngx_buf_t* b = &head_->buf;
        ssize_t n = send_one(c, b->pos, static_cast<size_t>(b->last - b->pos));
        if (n == NGX_ERROR) {
            c->error = 1;
            return NGX_ERROR;
        }
        if (n > 0) {
            b->pos += n;
        }
    } else {
        // the items' links form the chain, tail_->link.next == nullptr;
        // with none, TLS flushes what it holds
        ngx_chain_t* rest =
            c->send_chain(c, head_ != nullptr ? &head_->link : nullptr, 0);
        if (rest == NGX_CHAIN_ERROR) {
            c->error = 1;
            return NGX_ERROR;
        }
    }
    reap();
    if (head_ != nullptr || (c->buffered & NGX_LOWLEVEL_BUFFERED) != 0) {
        return ngx_handle_write_event(c->write, 0) == NGX_OK ? NGX_AGAIN
                                                             : NGX_ERROR;
    }
    return NGX_OK;
}

}  // namespace pulse::ngx
