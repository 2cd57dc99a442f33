#pragma once

// RFC 6455 (WebSocket) server side without nginx: the handshake key, the
// permessage-deflate offer (RFC 7692), frame serialisation and an
// incremental parser for client frames that enforces every rule of the
// RFC (masking, reserved bits and opcodes, control frame limits,
// fragmentation, UTF-8 of text messages, close codes).

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pulse/status.h"

namespace pulse::ws {

enum class Opcode : uint8_t {
    kContinuation = 0x0,
    kText = 0x1,
    kBinary = 0x2,
    kClose = 0x8,
    kPing = 0x9,
    kPong = 0xA,
};

/// Close codes (RFC 6455 7.4.1).
namespace close_code {
constexpr uint16_t kNormal = 1000;
constexpr uint16_t kGoingAway = 1001;
constexpr uint16_t kProtocolError = 1002;
constexpr uint16_t kNoStatus = 1005;  // never sent: an empty close frame
constexpr uint16_t kInvalidData = 1007;
constexpr uint16_t kPolicy = 1008;
constexpr uint16_t kTooBig = 1009;
constexpr uint16_t kInternalError = 1011;
constexpr uint16_t kTryAgainLater = 1013;  // IANA registry (RFC 6455 §11.7)
}  // namespace close_code

/// Longest close reason: a control payload is at most 125 bytes.
constexpr size_t kMaxCloseReason = 123;
constexpr size_t kMaxControlPayload = 125;
/// Longest server frame header (no mask).
constexpr size_t kMaxHeader = 10;

// ------------------------------------------------------------- handshake

/// True when `key` is a Sec-WebSocket-Key: base64 of 16 bytes.
bool valid_client_key(std::string_view key);

/// Sec-WebSocket-Accept for a client key: base64(SHA-1(key + GUID)).
std::string accept_key(std::string_view client_key);

/// A permessage-deflate agreement (RFC 7692 7.1).
struct DeflateAgreement {
    bool server_no_context_takeover = true;
    bool client_no_context_takeover = false;
    int server_max_window_bits = 15;
    /// 0: the client did not offer client_max_window_bits, so the reply
    /// must not name it.
    int client_max_window_bits = 0;
};

/// Picks the first acceptable permessage-deflate offer of a
/// Sec-WebSocket-Extensions header. Offers with unknown or duplicate
/// parameters or bad values are declined (RFC 7692 5). The server window
/// is `server_window` unless the client asks for less.
std::optional<DeflateAgreement> negotiate_deflate(std::string_view header,
                                                  int server_window);

/// The Sec-WebSocket-Extensions reply for an agreement.
std::string format_deflate(const DeflateAgreement& a);

/// The subprotocols a Sec-WebSocket-Protocol header offers, in order.
std::vector<std::string_view> split_protocols(std::string_view header);

// --------------------------------------------------------------- framing

/// Writes a server frame header (never masked) to `out`, which must hold
/// kMaxHeader bytes; returns its size.
size_t write_header(uint8_t* out, Opcode op, bool fin, bool rsv1,
                    uint64_t payload_len);

/// Appends a whole unfragmented server frame.
void append_frame(std::string& out, Opcode op, std::string_view payload,
                  bool rsv1 = false);

/// The payload of a close frame: the code in network order and the reason
/// cut to kMaxCloseReason bytes on a UTF-8 character boundary.
std::string close_payload(uint16_t code, std::string_view reason);

/// True for codes an endpoint may send in a close frame (RFC 6455 7.4).
bool valid_close_code(uint16_t code);

// ----------------------------------------------------------------- UTF-8

/// Incremental UTF-8 validator (Hoehrmann's DFA): text may arrive in
/// pieces split anywhere, including inside a character.
class Utf8Validator {
public:
    /// False as soon as the bytes so far cannot be the start of valid UTF-8.
    bool feed(std::string_view bytes);
    /// True when the bytes fed end on a character boundary.
    bool complete() const { return state_ == 0; }
    void reset() { state_ = 0; }

private:
    uint32_t state_ = 0;
};

bool valid_utf8(std::string_view s);

// ---------------------------------------------------------------- parser

/// One thing a client said.
struct Event {
    enum class Kind : uint8_t { kMessage, kPing, kPong, kClose };
    Kind kind = Kind::kMessage;
    bool binary = false;      // kMessage: opcode binary
    bool compressed = false;  // kMessage: rsv1 set (permessage-deflate)
    uint16_t code = 0;        // kClose: 0 when the frame had no payload
    std::string payload;      // message, ping/pong data, close reason
};

/// Parses client frames as they arrive. A protocol violation stops it: the
/// returned Status carries the reason, close_code() the code to close with.
class Parser {
public:
    struct Options {
        /// Largest message (after reassembly, before inflating): 1009 past it.
        size_t max_message = 1 << 20;
        /// rsv1 allowed on the first frame of a data message.
        bool deflate = false;
    };

    explicit Parser(Options o) : opt_(o) {}

    /// Consumes all of `data`, appending complete events to `out`.
    Status feed(std::string_view data, std::vector<Event>& out);
    uint16_t close_code() const { return error_code_; }
    /// Bytes held for an unfinished message or frame.
    size_t buffered() const { return message_.size() + control_.size(); }

private:
    enum class State : uint8_t { kHeader, kPayload, kFailed };
    Status fail(uint16_t code, std::string reason);
    Status begin_frame();
    Status end_frame(std::vector<Event>& out);

    Options opt_;
    State state_ = State::kHeader;
    uint16_t error_code_ = 0;
    // the frame being read
    uint8_t header_[14] = {};
    size_t header_have_ = 0;
    bool fin_ = false;
    bool rsv1_ = false;
    Opcode op_ = Opcode::kContinuation;
    uint8_t mask_[4] = {};
    uint64_t remaining_ = 0;
    uint64_t payload_pos_ = 0;  // bytes of this frame unmasked so far
    // the message being reassembled
    bool in_message_ = false;
    bool message_binary_ = false;
    bool message_compressed_ = false;
    size_t text_checked_ = 0;  // bytes of message_ fed to utf8_
    std::string message_;
    std::string control_;
    Utf8Validator utf8_;
};

}  // namespace pulse::ws
