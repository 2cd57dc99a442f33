#include "pulse/http_stream.h"

#include <algorithm>

#include "pulse/sse.h"

namespace pulse {

HttpStream::HttpStream(Fanout& f, StreamIo& io, StreamOptions o)
    : fanout_(f), io_(io), opt_(std::move(o)), sub_(this)
{
    switch (opt_.transport) {
        case Transport::kEventSource:
            content_type_ = "text/event-stream; charset=utf-8";
            hello_ = sse::kHello;
            framing_.wire = Wire::kSse;
            framing_.event = opt_.event;
            break;
        case Transport::kMultipart:
            // This stream's own boundary: the shared parts leave it out, so
            // that no body can end another stream's part.
            boundary_ = stream::random_boundary(32);
            content_type_ = "multipart/mixed; boundary=" + boundary_;
            hello_ = "--" + boundary_;
            framing_.wire = Wire::kMultipart;
            framing_.compound_etag = opt_.compound_etag;
            break;
        case Transport::kRawStream:
            framing_.wire = Wire::kRaw;
            // nchan ends a non-empty separator with a newline
            framing_.separator = opt_.separator;
            if (!framing_.separator.empty()
                && framing_.separator.back() != '\n') {
                framing_.separator += '\n';
            }
            break;
        default:  // chunked: each message one chunk, nothing between
            framing_.wire = Wire::kRaw;
            break;
    }
}

HttpStream::~HttpStream()
{
    sub_.leave();
}

Status HttpStream::join(const std::vector<std::string>& keys,
                        const std::optional<MultiMsgId>& after,
                        const Fanout::JoinOptions& o)
{
    bool gap = false;
    auto catch_up = sub_.join(fanout_, keys, after, o, &gap);
    if (!catch_up.is_ok()) {
        return catch_up.status();
    }
    pending_ = std::move(catch_up.value());
    if (gap && after && opt_.transport == Transport::kEventSource) {
        gap_from_ = to_string(*after);
    }
    return Status::ok();
}

void HttpStream::start(bool chunked)
{
    framing_.http_chunked = chunked;
    framing_id_ = fanout_.framing_ids().id(framing_);
    // A multiplexed id differs per subscription, so those frames are this
    // stream's own; streams without ids share the worker's.
    own_frames_ = sub_.multiplexed() && opt_.transport != Transport::kChunked
                  && opt_.transport != Transport::kRawStream;
    if (opt_.transport == Transport::kMultipart) {
        std::string tail = "\r\n--" + boundary_;
        if (chunked) {
            stream::wrap_chunk(tail);
        }
        part_end_ = FrameRef(Frame::make(tail));
    }
    started_ = true;
    if (opt_.pace.mode != pacing::Mode::kLive
        || opt_.bounds.overflow != pacing::Overflow::kClose)
    {
        // the catch-up goes at once; what follows is paced
        pacer_.emplace(opt_.pace, opt_.bounds, io_.clock_ms(),
                       &fanout_.metrics().counters);
    }
    if (!gap_from_.empty() && !opt_.gap_event.empty()) {
        // no id: line, so the client's Last-Event-ID stays its own
        if (!push_text("event: " + opt_.gap_event + "\ndata: " + gap_from_
                       + "\n\n")) {
            return;
        }
    }
    std::vector<Subscription::CatchUp> catch_up = std::move(pending_);
    for (auto& [m, index] : catch_up) {
        if (!push_message(index, *m)) {
            // More than the send buffer holds: end after what fits; the
            // client resumes from its last id.
            sub_.leave();
            finishing_ = true;
            io_.finish();
            return;
        }
    }
}

// What push_message queues for `m`, or near it (a frame of its own is
// made only when sent).
size_t HttpStream::frame_size(Msg& m)
{
    size_t tail = part_end_ ? part_end_.get()->size() : 0;
    if (own_frames_) {
        return m.body.size() + m.event.size() + m.content_type.size() + 256
               + tail;
    }
    return m.encoded(framing_id_, framing_, fanout_.deflate_options())->size()
           + tail;
}

bool HttpStream::push_message(size_t index, Msg& m)
{
    if (pacer_) {
        last_written_ = m.id_text();
    }
    if (!own_frames_) {
        Frame* f = m.encoded(framing_id_, framing_, fanout_.deflate_options());
        if (f->size() != 0 && !io_.push(f)) {
            return false;
        }
    } else {
        FrameRef own(Frame::make(encode(m.data(), framing_, sub_.show(index, m),
                                        fanout_.deflate_options()),
                                 m.published_ns));
        if (own.get()->size() != 0 && !io_.push(own.get())) {
            return false;
        }
    }
    return !part_end_ || io_.push(part_end_.get());
}

void HttpStream::member_messages(size_t index, const std::vector<MsgPtr>& msgs)
{
    if (finishing_) {
        return;
    }
    Member& who = sub_.member(index);
    if (!started_) {
        // joined, header not out yet: these follow the catch-up
        for (const MsgPtr& m : msgs) {
            if (who.take(m->id)) {
                pending_.push_back(Subscription::CatchUp{m, index});
            }
        }
        return;
    }
    if (pacer_) {
        paced_messages(index, msgs);
        return;
    }
    bool any = false;
    for (const MsgPtr& m : msgs) {
        if (!who.take(m->id)) {
            continue;
        }
        if (!push_message(index, *m)) {
            sub_.leave();
            io_.fail();
            return;
        }
        any = true;
    }
    if (any) {
        io_.delivered();
        io_.send();
    }
}

void HttpStream::paced_messages(size_t index, const std::vector<MsgPtr>& msgs)
{
    Member& who = sub_.member(index);
    uint64_t now = io_.clock_ms();
    bool writable = io_.idle();
    bool any = false;
    for (const MsgPtr& m : msgs) {
        if (!who.take(m->id)) {
            continue;
        }
        switch (pacer_->offer(index, m, now, writable)) {
            case pacing::Pacer::Offer::kSend:
                if (!push_message(index, *m)) {
                    sub_.leave();
                    io_.fail();
                    return;
                }
                any = true;
                break;
            case pacing::Pacer::Offer::kHeld:
                break;
            case pacing::Pacer::Offer::kOverflow:
                sub_.leave();
                io_.fail();
                return;
        }
    }
    if (any) {
        io_.delivered();
        io_.send();
    }
    if (opt_.pace.mode != pacing::Mode::kLive && pacer_->held() != 0) {
        // nothing more until the timer: the channel logs what comes
        who.park();
    }
    rearm(now);
}

// What the parked members' channels logged joins what waits; false when
// that passed the bound of a close policy (the stream failed).
bool HttpStream::gather()
{
    // several channels: their logs merge in publish (id) order
    std::vector<pacing::Item> items;
    for (size_t i = 0; i < sub_.size(); ++i) {
        Member& who = sub_.member(i);
        if (!who.parked()) {
            continue;
        }
        uint64_t read = 0;
        uint64_t published = who.published_since_parked();
        bool whole = who.parked_since([&](const MsgPtr& m) {
            ++read;
            if (who.take(m->id)) {
                items.push_back(pacing::Item{m, i});
            }
        });
        who.unpark();
        fanout_.metrics().counters.conflated += published - read;
        if (!whole) {
            if (opt_.bounds.overflow == pacing::Overflow::kClose) {
                sub_.leave();  // the log lost part of its queue
                io_.fail();
                return false;
            }
            pacer_->note_gap();
        }
    }
    if (sub_.size() > 1) {
        std::stable_sort(items.begin(), items.end(),
                         [](const pacing::Item& a, const pacing::Item& b) {
                             return a.msg->id < b.msg->id;
                         });
    }
    for (const pacing::Item& it : items) {
        if (pacer_->add(it.index, it.msg) == pacing::Pacer::Offer::kOverflow) {
            sub_.leave();
            io_.fail();
            return false;
        }
    }
    return true;
}

// A storm re-arms every subscriber on every message: the timer is left
// alone when its time does not change.
void HttpStream::rearm(uint64_t now)
{
    auto due = pacer_->due(now, io_.idle());
    std::optional<uint64_t> at;
    if (due) {
        at = now + *due;
    }
    if (at != armed_at_) {
        armed_at_ = at;
        io_.pace_in(due);
    }
}

void HttpStream::on_pace()
{
    if (!pacer_ || !started_ || finishing_) {
        return;
    }
    uint64_t now = io_.clock_ms();
    if (auto due = pacer_->due(now, io_.idle()); due && *due == 0 && !gather())
    {
        return;
    }
    pacing::Pacer::Batch b = pacer_->take(now, io_.idle());
    if (!b.items.empty()) {
        if (b.gap && !opt_.gap_event.empty()
            && opt_.transport == Transport::kEventSource)
        {
            // messages were dropped after the last id written
            if (!push_text("event: " + opt_.gap_event
                           + "\ndata: " + last_written_ + "\n\n"))
            {
                return;
            }
        }
        for (auto it = b.items.begin(); it != b.items.end(); ++it) {
            if (!io_.idle() && frame_size(*it->msg) > io_.room()) {
                // no room for the rest: it goes when the socket drains
                pacer_->give_back(it, b.items.cend());
                break;
            }
            if (!push_message(it->index, *it->msg)) {
                sub_.leave();
                io_.fail();
                return;
            }
        }
        io_.delivered();
        io_.send();
    }
    rearm(now);
}

// nchan: deleting any channel of a multiplexed subscription ends it.
void HttpStream::member_end(size_t index, int status)
{
    (void) index;
    end(status);
}

void HttpStream::member_failure() noexcept
{
    sub_.leave();
    io_.fail();
}

bool HttpStream::push_text(std::string text)
{
    if (framing_.http_chunked) {
        stream::wrap_chunk(text);
    }
    FrameRef f(Frame::make(text));
    if (!io_.push(f.get())) {
        sub_.leave();
        io_.fail();
        return false;
    }
    return true;
}

void HttpStream::ping(std::string_view comment, std::string_view event,
                      std::string_view data)
{
    if (opt_.transport != Transport::kEventSource || finishing_) {
        return;
    }
    std::string text;
    sse::append_ping(text, comment, event, data);
    if (push_text(std::move(text))) {
        io_.send();
    }
}

void HttpStream::end(int status)
{
    sub_.leave();
    if (!finishing_) {
        fanout_.metrics().counters.ended_with(status);
    }
    if (finishing_) {
        return;
    }
    finishing_ = true;
    std::string text;
    if (opt_.transport == Transport::kMultipart) {
        text = "--\r\n";  // the last boundary becomes the closing one
    } else if (opt_.transport != Transport::kEventSource) {
        // chunked and raw streams just end
    } else if (status == end_status::kGone) {
        sse::append_status(text, 410, "410 Gone");
    } else if (status == end_status::kTimeout) {
        sse::append_status(text, 408, "408 Request Timeout");
    } else if (status == end_status::kUnauthorized) {
        sse::append_status(text, 401, "401 Token Expired");
    }
    if (!text.empty() && !push_text(std::move(text))) {
        return;
    }
    io_.finish();
}

}  // namespace pulse
