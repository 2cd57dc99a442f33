#include "pulse/ws_session.h"

#include <vector>

namespace pulse::ws {

using close_code::kGoingAway;
using close_code::kInternalError;
using close_code::kInvalidData;
using close_code::kNormal;
using close_code::kPolicy;
using close_code::kTooBig;
using close_code::kTryAgainLater;

std::pair<uint16_t, std::string> close_for_status(int status)
{
    switch (status) {
        case 410:
            return {kGoingAway, "410 Gone"};
        case 403:
            return {kPolicy, "403 Forbidden"};
        case 500:
            return {kInternalError, "500 Internal Server Error"};
        case 502:
            return {kInternalError, "502 Bad Gateway"};
        case 507:
            return {kInternalError, "507 Insufficient Storage"};
        case 408:
            return {kNormal, "408 408 Request Timeout"};
        case 503:
            // nchan: a subscriber dequeued otherwise (worker shutdown)
            return {kNormal, "410 Gone"};
        case 429:
            return {kTryAgainLater, "429 Too Many Requests"};
        default:
            break;
    }
    std::string reason = std::to_string(status);
    return {status >= 500 ? kInternalError : kNormal, reason + " " + reason};
}

Session::Session(SessionHost& host, SessionApp& app, SessionOptions o)
    : host_(host),
      app_(app),
      opt_(std::move(o)),
      parser_(Parser::Options{opt_.max_message, opt_.deflate.has_value()})
{}

Session::~Session() = default;

void Session::start()
{
    if (opt_.ping_interval_ms > 0) {
        host_.arm(Timer::kPing, opt_.ping_interval_ms);
    }
}

bool Session::on_bytes(std::string_view data)
{
    if (dead_) {
        return false;
    }
    std::vector<Event> events;
    Status st = parser_.feed(data, events);
    for (Event& e : events) {
        if (!handle(e)) {
            return false;
        }
    }
    if (!st.is_ok()) {
        close(parser_.close_code(), st.message());
        return false;
    }
    return !dead_;
}

// False when reading should stop.
bool Session::handle(Event& e)
{
    switch (e.kind) {
        case Event::Kind::kPing:
            if (!close_sent_) {
                send(Opcode::kPong, e.payload);
                flush();
            }
            return !dead_;
        case Event::Kind::kPong:
            awaiting_pong_ = false;
            return true;
        case Event::Kind::kClose: {
            if (close_sent_) {
                destroy(false);  // the closing handshake is complete
                return false;
            }
            // Echo the client's code and reason, then close the TCP
            // connection once that is written (the server closes first).
            app_.on_closing();
            close_sent_ = true;
            close_after_flush_ = true;
            host_.disarm(Timer::kPing);
            host_.disarm(Timer::kIdle);
            std::string frame;
            append_frame(
                frame, Opcode::kClose,
                e.code == 0 ? std::string() : close_payload(e.code, e.payload));
            FrameRef f(Frame::make(frame));
            if (!host_.push(f.get())) {
                abort();
                return false;
            }
            flush();
            return false;
        }
        case Event::Kind::kMessage:
            break;
    }
    if (close_sent_) {
        return true;  // data after our close frame is ignored
    }
    std::string payload = std::move(e.payload);
    if (e.compressed) {
        if (!inflater_) {
            inflater_ = std::make_unique<Inflater>();
        }
        auto out = inflater_->inflate(payload, opt_.max_message, false);
        if (!out.is_ok()) {
            if (out.status().code() == Code::kTooLarge) {
                close(kTooBig, "Message larger than "
                                   + std::to_string(opt_.max_message)
                                   + " bytes.");
            } else {
                close(kInvalidData, "Invalid permessage-deflate data");
            }
            return false;
        }
        payload = std::move(out.value());
        if (opt_.deflate->client_no_context_takeover) {
            inflater_.reset();  // nothing to keep: free the window
        }
        if (!e.binary && !valid_utf8(payload)) {
            close(kInvalidData, "Invalid text frame (not UTF8).");
            return false;
        }
    }
    if (!e.binary && !opt_.heartbeat_in.empty() && payload == opt_.heartbeat_in)
    {
        send_text(opt_.heartbeat_out);
        flush();
        return !dead_;
    }
    app_.on_message(std::move(payload), e.binary);
    return !closing();
}

bool Session::send_frame(Frame* f, bool abort_if_full)
{
    if (closing()) {
        return false;
    }
    if (!host_.push(f)) {
        if (abort_if_full) {
            abort();
        }
        return false;
    }
    return true;
}

bool Session::send(Opcode op, std::string_view payload)
{
    if (dead_ || (close_sent_ && op != Opcode::kClose)) {
        return false;
    }
    std::string frame;
    append_frame(frame, op, payload);
    FrameRef f(Frame::make(frame));
    if (!host_.push(f.get())) {
        abort();
        return false;
    }
    return true;
}

void Session::close(uint16_t code, std::string_view reason)
{
    if (closing()) {
        return;
    }
    app_.on_closing();
    close_sent_ = true;
    host_.disarm(Timer::kPing);
    host_.disarm(Timer::kIdle);
    send(Opcode::kClose, close_payload(code, reason));
    if (dead_) {
        return;
    }
    host_.arm(Timer::kClose, kCloseTimeoutMs);
    flush();
}

void Session::on_timer(Timer t)
{
    if (dead_) {
        return;
    }
    switch (t) {
        case Timer::kPing:
            if (close_sent_) {
                return;
            }
            if (awaiting_pong_) {
                close(kGoingAway, "No pong received.");
                return;
            }
            awaiting_pong_ = true;
            host_.arm(Timer::kPing, opt_.ping_interval_ms);
            send(Opcode::kPing, "");
            flush();
            return;
        case Timer::kIdle: {
            auto [code, reason] = close_for_status(408);
            close(code, reason);
            return;
        }
        case Timer::kClose:
            destroy(false);
            return;
    }
}

void Session::abort()
{
    destroy(true);
}

void Session::on_gone(bool error)
{
    destroy(error);
}

void Session::destroy(bool error)
{
    if (dead_) {
        return;
    }
    dead_ = true;
    app_.on_closing();
    host_.disarm(Timer::kPing);
    host_.disarm(Timer::kIdle);
    host_.disarm(Timer::kClose);
    host_.destroy(error);
}

}  // namespace pulse::ws
