#pragma once

// The HTTP streams: EventSource, chunked, multipart/mixed and raw-stream
// subscribers (docs/protocol.md §4, §7). They differ in their content type,
// first bytes, message framing and last bytes; this class holds all of
// that and what a stream does with its messages. The glue (StreamIo) owns
// the socket, the timers and the response's lifetime.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pulse/encoder.h"
#include "pulse/frame.h"
#include "pulse/pacing.h"
#include "pulse/subscription.h"
#include "pulse/transport.h"

namespace pulse {

/// The socket side of a stream.
class StreamIo {
public:
    /// Queues a frame; false when it would pass the unsent-bytes limit
    /// (pulse_subscriber_max_buffered).
    virtual bool push(Frame* f) = 0;
    /// Writes what is queued now, or waits for the socket.
    virtual void send() = 0;
    /// Nothing more will be queued: end the response once it is written.
    virtual void finish() = 0;
    /// Close the connection now (too slow, or broken).
    virtual void fail() = 0;
    /// A message was queued: restart pulse_subscriber_timeout.
    virtual void delivered() = 0;
    /// Pacing: nothing queued is unsent.
    virtual bool idle() const = 0;
    /// Pacing: bytes push() takes before its limit.
    virtual size_t room() const = 0;
    /// Pacing: call HttpStream::on_pace() in `ms` milliseconds (nullopt:
    /// no timer). The glue also calls it when the socket drains.
    virtual void pace_in(std::optional<uint64_t> ms) = 0;
    /// Pacing: a monotonic clock in milliseconds.
    virtual uint64_t clock_ms() const = 0;

protected:
    ~StreamIo() = default;
};

struct StreamOptions {
    Transport transport = Transport::kEventSource;
    bool compound_etag = false;  // multipart
    std::string event;           // EventSource: pulse_eventsource_event
    std::string separator;       // http-raw-stream, as configured
    /// EventSource (pulse_gap_signal): an event of this name goes first
    /// when the resume id was older than a channel's buffer, its data the
    /// id resumed from; empty: none (as nchan).
    std::string gap_event;
    /// lib/pulse/pacing.h: this subscriber's pace (bounded by the
    /// location) and queue.
    pacing::Pace pace;
    pacing::Bounds bounds;
};

class HttpStream final : public MemberOwner {
public:
    HttpStream(Fanout& f, StreamIo& io, StreamOptions o);
    HttpStream(const HttpStream&) = delete;
    HttpStream& operator=(const HttpStream&) = delete;
    HttpStream(HttpStream&&) = delete;
    HttpStream& operator=(HttpStream&&) = delete;
    ~HttpStream();

    /// Joins `keys` (several: multiplexed). The error answers the request
    /// (404, 403, 507, 503).
    Status join(const std::vector<std::string>& keys,
                const std::optional<MultiMsgId>& after,
                const Fanout::JoinOptions& o);
    /// The response's Content-Type (empty: none) and first bytes.
    const std::string& content_type() const { return content_type_; }
    const std::string& hello() const { return hello_; }
    /// The header is out; `chunked`: HTTP/1.1 chunked, so the frames carry
    /// their chunk framing. Queues the catch-up; one larger than the
    /// unsent-bytes limit ends the stream after what fits, so the client
    /// resumes from its last id instead of silently skipping messages.
    void start(bool chunked);
    /// A ping (EventSource only; nothing otherwise).
    void ping(std::string_view comment, std::string_view event,
              std::string_view data);
    /// Ends the stream: leaves its channels, queues the closing bytes
    /// (EventSource `:410: 410 Gone`, the closing multipart boundary) and
    /// finishes.
    void end(int status);
    /// Pacing: the socket drained: writes what is due.
    void on_pace();
    /// Pacing: the timer from StreamIo::pace_in fired.
    void on_pace_timer()
    {
        armed_at_.reset();
        on_pace();
    }
    /// Leaves every channel; no message arrives after.
    void leave() { sub_.leave(); }
    bool finishing() const { return finishing_; }
    bool chunked() const { return framing_.http_chunked; }

    void member_messages(size_t index,
                         const std::vector<MsgPtr>& msgs) override;
    void member_end(size_t index, int status) override;
    void member_failure() noexcept override;

private:
    void paced_messages(size_t index, const std::vector<MsgPtr>& msgs);
    void rearm(uint64_t now);
    bool gather();
    bool push_message(size_t index, Msg& m);
    size_t frame_size(Msg& m);
    bool push_text(std::string text);

    Fanout& fanout_;
    StreamIo& io_;
    StreamOptions opt_;
    Subscription sub_;
    std::vector<Subscription::CatchUp> pending_;  // joined, not yet sent
    std::string gap_from_;  // the resume id, when it missed messages
    std::optional<pacing::Pacer> pacer_;  // none: live, as nchan
    std::optional<uint64_t> armed_at_;    // the pacing timer's clock_ms
    std::string last_written_;  // paced: the last id written (gap events)
    Framing framing_;
    uint32_t framing_id_ = 0;
    bool own_frames_ = false;  // multiplexed ids: frames of its own
    std::string content_type_;
    std::string hello_;
    std::string boundary_;  // multipart: this stream's own
    FrameRef part_end_;     // multipart: "\r\n--<boundary>", framed
    bool started_ = false;
    bool finishing_ = false;
};

}  // namespace pulse
