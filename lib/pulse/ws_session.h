#pragma once

// One WebSocket connection's protocol, as a state machine without nginx.
// Inputs: client bytes, timer expiries, "everything queued was written".
// Outputs, through SessionHost: frames to send, timers to arm, and the end
// of the connection. RFC 6455 5 (framing, fragmentation, control frames,
// the message size limit, UTF-8) is the Parser's; this class adds 5.5
// (ping/pong), 7 (the closing handshake, close codes), the server's
// heartbeat, RFC 7692 inflating, and nchan's client heartbeat. What the
// messages mean is the SessionApp's (ws_connection.h).

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "pulse/deflate.h"
#include "pulse/frame.h"
#include "pulse/websocket.h"

namespace pulse::ws {

/// The timers a session runs (their handlers call Session::on_timer).
enum class Timer : uint8_t {
    kPing,   // pulse_websocket_ping_interval: ping, or close without pong
    kClose,  // our close frame is out: how long to wait for the client's
    kIdle,   // pulse_subscriber_timeout: no message delivered for that long
};

/// How long a closing connection waits for the client's close frame.
constexpr uint64_t kCloseTimeoutMs = 1000;

class SessionHost {
public:
    /// Queues bytes for the socket; false when that passes the unsent-bytes
    /// limit (the session then aborts).
    virtual bool push(Frame* f) = 0;
    /// Writes what is queued. When all of it is written the host calls
    /// Session::on_flushed().
    virtual void flush() = 0;
    virtual void arm(Timer t, uint64_t ms) = 0;
    virtual void disarm(Timer t) = 0;
    /// Close the TCP connection (at once, or from a posted event).
    /// `error`: no orderly end (too slow, broken). No call follows.
    virtual void destroy(bool error) = 0;

protected:
    ~SessionHost() = default;
};

class SessionApp {
public:
    /// A complete client message, inflated and UTF-8 checked.
    virtual void on_message(std::string payload, bool binary) = 0;
    /// The session is closing (or gone): stop delivering.
    virtual void on_closing() = 0;

protected:
    ~SessionApp() = default;
};

struct SessionOptions {
    size_t max_message = 1 << 20;  // pulse_websocket_max_message_size
    std::optional<DeflateAgreement> deflate;
    uint64_t ping_interval_ms = 0;  // 0: no server pings
    uint64_t idle_timeout_ms = 0;   // pulse_subscriber_timeout; 0: none
    /// pulse_websocket_client_heartbeat: a text message equal to `in` is
    /// answered with `out` and not given to the app.
    std::string heartbeat_in;
    std::string heartbeat_out;
};

/// The close frame nchan sends for a subscriber status (docs/protocol.md §6).
std::pair<uint16_t, std::string> close_for_status(int status);

class Session {
public:
    Session(SessionHost& host, SessionApp& app, SessionOptions o);
    Session(const Session&) = delete;
    Session& operator=(const Session&) = delete;
    Session(Session&&) = delete;
    Session& operator=(Session&&) = delete;
    ~Session();

    /// The 101 is out: start the heartbeat.
    void start();
    /// Client bytes. False when the session stops reading: it is closing
    /// (then keep reading only to see the client's close) or destroyed.
    bool on_bytes(std::string_view data);
    void on_timer(Timer t);
    /// Everything queued was written.
    void on_flushed()
    {
        if (close_after_flush_ && !dead_) {
            destroy(false);
        }
    }
    /// The client went away (EOF, a read error) or the worker is closing
    /// the connection: no handshake is possible.
    void on_gone(bool error);

    /// Queues a frame made elsewhere (a shared message frame); false when
    /// the session is closing or the frame does not fit the unsent-bytes
    /// limit. Not fitting aborts the session, unless `abort_if_full` is
    /// false (the caller decides, as for a catch-up).
    bool send_frame(Frame* f, bool abort_if_full = true);
    /// Queues a frame; same result.
    bool send(Opcode op, std::string_view payload);
    bool send_text(std::string_view text) { return send(Opcode::kText, text); }
    /// Writes what is queued.
    void flush()
    {
        if (!dead_) {
            host_.flush();
        }
    }
    /// Starts the closing handshake: our close frame, then at most
    /// kCloseTimeoutMs for the client's.
    void close(uint16_t code, std::string_view reason);
    /// Ends at once, without a handshake (too slow, broken).
    void abort();
    /// A message went out: restart the idle timeout.
    void touch()
    {
        if (opt_.idle_timeout_ms > 0 && !closing()) {
            host_.arm(Timer::kIdle, opt_.idle_timeout_ms);
        }
    }

    bool closing() const { return close_sent_ || dead_; }
    bool dead() const { return dead_; }
    bool deflate() const { return opt_.deflate.has_value(); }

private:
    bool handle(Event& e);
    void destroy(bool error);

    SessionHost& host_;
    SessionApp& app_;
    SessionOptions opt_;
    Parser parser_;
    std::unique_ptr<Inflater> inflater_;
    bool awaiting_pong_ = false;
    bool close_sent_ = false;
    bool close_after_flush_ = false;
    bool dead_ = false;
};

}  // namespace pulse::ws
