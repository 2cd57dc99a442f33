#include "pulse/websocket.h"

#include <cstring>

#include <openssl/evp.h>

#include "pulse/text.h"

namespace pulse::ws {

namespace {

constexpr std::string_view kGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

using text::iequals;
using text::trim;

std::vector<std::string_view> split(std::string_view s, char sep)
{
    std::vector<std::string_view> out;
    size_t start = 0;
    while (start <= s.size()) {
        size_t end = s.find(sep, start);
        if (end == std::string_view::npos) {
            end = s.size();
        }
        out.push_back(trim(s.substr(start, end - start)));
        start = end + 1;
    }
    return out;
}

bool is_base64(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
           || (c >= '0' && c <= '9') || c == '+' || c == '/';
}

// A window-bits value: 8..15, optionally quoted (RFC 7692 7.1.2).
std::optional<int> window_bits(std::string_view v)
{
    if (v.size() >= 2 && v.front() == '"' && v.back() == '"') {
        v = v.substr(1, v.size() - 2);
    }
    if (v.size() == 1 && v[0] >= '8' && v[0] <= '9') {
        return v[0] - '0';
    }
    if (v.size() == 2 && v[0] == '1' && v[1] >= '0' && v[1] <= '5') {
        return 10 + (v[1] - '0');
    }
    return std::nullopt;
}

std::optional<DeflateAgreement> accept_offer(std::string_view offer,
                                             int server_window)
{
    auto params = split(offer, ';');
    if (params.empty() || !iequals(params[0], "permessage-deflate")) {
        return std::nullopt;
    }
    DeflateAgreement a;
    a.server_max_window_bits = server_window;
    bool seen[4] = {false, false, false, false};
    for (size_t i = 1; i < params.size(); ++i) {
        std::string_view p = params[i];
        std::string_view name = p;
        std::optional<std::string_view> value;
        if (size_t eq = p.find('='); eq != std::string_view::npos) {
            name = trim(p.substr(0, eq));
            value = trim(p.substr(eq + 1));
        }
        int which = -1;
        if (iequals(name, "server_no_context_takeover")) {
            which = 0;
            if (value) {
                return std::nullopt;
            }
        } else if (iequals(name, "client_no_context_takeover")) {
            which = 1;
            if (value) {
                return std::nullopt;
            }
            a.client_no_context_takeover = true;
        } else if (iequals(name, "server_max_window_bits")) {
            which = 2;
            auto bits = value ? window_bits(*value) : std::nullopt;
            if (!bits) {
                return std::nullopt;
            }
            if (*bits < a.server_max_window_bits) {
                a.server_max_window_bits = *bits;
            }
        } else if (iequals(name, "client_max_window_bits")) {
            which = 3;
            a.client_max_window_bits = 15;
            if (value) {
                auto bits = window_bits(*value);
                if (!bits) {
                    return std::nullopt;
                }
                a.client_max_window_bits = *bits;
            }
        } else {
            return std::nullopt;  // an unknown parameter declines the offer
        }
        if (seen[which]) {
            return std::nullopt;
        }
        seen[which] = true;
    }
    return a;
}

}  // namespace

// ------------------------------------------------------------- handshake

bool valid_client_key(std::string_view key)
{
    if (key.size() != 24 || key[22] != '=' || key[23] != '=') {
        return false;
    }
    for (size_t i = 0; i < 22; ++i) {
        if (!is_base64(key[i])) {
            return false;
        }
    }
    return true;
}

std::string accept_key(std::string_view client_key)
{
    std::string in(client_key);
    in.append(kGuid);
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_Digest(in.data(), in.size(), digest, &len, EVP_sha1(), nullptr);
    unsigned char out[4 * ((EVP_MAX_MD_SIZE + 2) / 3) + 1];
    int n = EVP_EncodeBlock(out, digest, static_cast<int>(len));
    return std::string(reinterpret_cast<const char*>(out),
                       static_cast<size_t>(n));
}

std::optional<DeflateAgreement> negotiate_deflate(std::string_view header,
                                                  int server_window)
{
    for (std::string_view offer : split(header, ',')) {
        if (auto a = accept_offer(offer, server_window)) {
            return a;
        }
    }
    return std::nullopt;
}

std::string format_deflate(const DeflateAgreement& a)
{
    std::string s = "permessage-deflate";
    if (a.server_no_context_takeover) {
        s += "; server_no_context_takeover";
    }
    if (a.client_no_context_takeover) {
        s += "; client_no_context_takeover";
    }
    s += "; server_max_window_bits=" + std::to_string(a.server_max_window_bits);
    if (a.client_max_window_bits != 0) {
        s += "; client_max_window_bits="
             + std::to_string(a.client_max_window_bits);
    }
    return s;
}

std::vector<std::string_view> split_protocols(std::string_view header)
{
    std::vector<std::string_view> out;
    for (std::string_view p : split(header, ',')) {
        if (!p.empty()) {
            out.push_back(p);
        }
    }
    return out;
}

// --------------------------------------------------------------- framing

size_t write_header(uint8_t* out, Opcode op, bool fin, bool rsv1,
                    uint64_t payload_len)
{
    out[0] = static_cast<uint8_t>((fin ? 0x80 : 0) | (rsv1 ? 0x40 : 0)
                                  | static_cast<uint8_t>(op));
    if (payload_len < 126) {
        out[1] = static_cast<uint8_t>(payload_len);
        return 2;
    }
    if (payload_len <= 0xffff) {
        out[1] = 126;
        out[2] = static_cast<uint8_t>(payload_len >> 8);
        out[3] = static_cast<uint8_t>(payload_len);
        return 4;
    }
    out[1] = 127;
    for (int i = 0; i < 8; ++i) {
        out[2 + i] = static_cast<uint8_t>(payload_len >> (56 - 8 * i));
    }
    return 10;
}

void append_frame(std::string& out, Opcode op, std::string_view payload,
                  bool rsv1)
{
    uint8_t h[kMaxHeader];
    size_t n = write_header(h, op, true, rsv1, payload.size());
    out.append(reinterpret_cast<const char*>(h), n);
    out.append(payload);
}

std::string close_payload(uint16_t code, std::string_view reason)
{
    if (reason.size() > kMaxCloseReason) {
        size_t cut = kMaxCloseReason;
        // back to the start of a character
        while (cut > 0 && (static_cast<uint8_t>(reason[cut]) & 0xC0) == 0x80) {
            --cut;
        }
        reason = reason.substr(0, cut);
    }
    std::string p;
    p.push_back(static_cast<char>(code >> 8));
    p.push_back(static_cast<char>(code & 0xff));
    p.append(reason);
    return p;
}

bool valid_close_code(uint16_t code)
{
    // 1004-1006 and 1015 are reserved for reporting and never sent;
    // 1012-2999 are unassigned or for future extensions of the protocol.
    if (code >= 1000 && code <= 1011) {
        return code != 1004 && code != 1005 && code != 1006;
    }
    return code >= 3000 && code <= 4999;
}

// ----------------------------------------------------------------- UTF-8

bool Utf8Validator::feed(std::string_view bytes)
{
    // state_: bits 0-7 the lowest, 8-15 the highest allowed next
    // continuation byte, 16-17 how many continuation bytes remain.
    uint32_t need = state_ >> 16;
    uint8_t lo = static_cast<uint8_t>(state_);
    uint8_t hi = static_cast<uint8_t>(state_ >> 8);
    const auto* p = reinterpret_cast<const uint8_t*>(bytes.data());
    const uint8_t* end = p + bytes.size();
    while (p < end) {
        if (need == 0) {
            // ASCII runs, eight bytes at a time
            while (end - p >= 8) {
                uint64_t w;
                std::memcpy(&w, p, 8);
                if (w & 0x8080808080808080ULL) {
                    break;
                }
                p += 8;
            }
            if (p == end) {
                break;
            }
            uint8_t b = *p++;
            if (b < 0x80) {
                continue;
            }
            lo = 0x80;
            hi = 0xBF;
            if (b >= 0xC2 && b <= 0xDF) {
                need = 1;
            } else if (b >= 0xE0 && b <= 0xEF) {
                need = 2;
                if (b == 0xE0) {
                    lo = 0xA0;  // no overlong forms
                } else if (b == 0xED) {
                    hi = 0x9F;  // no surrogates
                }
            } else if (b >= 0xF0 && b <= 0xF4) {
                need = 3;
                if (b == 0xF0) {
                    lo = 0x90;
                } else if (b == 0xF4) {
                    hi = 0x8F;  // nothing past U+10FFFF
                }
            } else {
                state_ = 0xFFFFFFFF;
                return false;
            }
            continue;
        }
        uint8_t b = *p++;
        if (b < lo || b > hi) {
            state_ = 0xFFFFFFFF;
            return false;
        }
        --need;
        lo = 0x80;
        hi = 0xBF;
    }
    state_ = (need << 16) | (uint32_t{hi} << 8) | lo;
    if (need == 0) {
        state_ = 0;
    }
    return true;
}

bool valid_utf8(std::string_view s)
{
    Utf8Validator v;
    return v.feed(s) && v.complete();
}

// ---------------------------------------------------------------- parser

Status Parser::fail(uint16_t code, std::string reason)
{
    state_ = State::kFailed;
    error_code_ = code;
    message_.clear();
    message_.shrink_to_fit();
    control_.clear();
    return Status(Code::kInvalidArgument, std::move(reason));
}

// Checks the first two header bytes: everything but the length.
Status Parser::begin_frame()
{
    uint8_t b0 = header_[0];
    uint8_t b1 = header_[1];
    fin_ = (b0 & 0x80) != 0;
    rsv1_ = (b0 & 0x40) != 0;
    uint8_t op = b0 & 0x0F;
    if (b0 & 0x30) {
        return fail(close_code::kProtocolError, "Reserved bits set.");
    }
    if (op >= 0x3 && op != 0x8 && op != 0x9 && op != 0xA) {
        return fail(close_code::kProtocolError, "Unknown opcode.");
    }
    op_ = static_cast<Opcode>(op);
    if ((b1 & 0x80) == 0) {
        return fail(close_code::kProtocolError, "Unmasked client frame.");
    }
    if (op & 0x8) {
        if (!fin_) {
            return fail(close_code::kProtocolError,
                        "Fragmented control frame.");
        }
        if ((b1 & 0x7F) > kMaxControlPayload) {
            return fail(close_code::kProtocolError,
                        "Control frame payload over 125 bytes.");
        }
        if (rsv1_) {
            return fail(close_code::kProtocolError,
                        "Reserved bit set on a control frame.");
        }
        return Status::ok();
    }
    if (op_ == Opcode::kContinuation) {
        if (!in_message_) {
            return fail(close_code::kProtocolError,
                        "Continuation frame outside a message.");
        }
        if (rsv1_) {
            return fail(close_code::kProtocolError,
                        "Reserved bit set on a continuation frame.");
        }
        return Status::ok();
    }
    if (in_message_) {
        return fail(close_code::kProtocolError,
                    "New message inside a fragmented message.");
    }
    if (rsv1_ && !opt_.deflate) {
        return fail(close_code::kProtocolError,
                    "Compressed frame without permessage-deflate.");
    }
    return Status::ok();
}

Status Parser::end_frame(std::vector<Event>& out)
{
    state_ = State::kHeader;
    header_have_ = 0;
    if (op_ == Opcode::kClose) {
        Event e;
        e.kind = Event::Kind::kClose;
        if (control_.size() == 1) {
            return fail(close_code::kProtocolError,
                        "Close frame with a 1-byte payload.");
        }
        if (control_.size() >= 2) {
            e.code =
                static_cast<uint16_t>((static_cast<uint8_t>(control_[0]) << 8)
                                      | static_cast<uint8_t>(control_[1]));
            if (!valid_close_code(e.code)) {
                return fail(close_code::kProtocolError, "Invalid close code.");
            }
            e.payload = control_.substr(2);
            if (!valid_utf8(e.payload)) {
                return fail(close_code::kInvalidData,
                            "Invalid close reason (not UTF8).");
            }
        }
        out.push_back(std::move(e));
        return Status::ok();
    }
    if (op_ == Opcode::kPing || op_ == Opcode::kPong) {
        Event e;
        e.kind = op_ == Opcode::kPing ? Event::Kind::kPing : Event::Kind::kPong;
        e.payload = control_;
        out.push_back(std::move(e));
        return Status::ok();
    }
    if (!fin_) {
        return Status::ok();
    }
    if (!message_binary_ && !message_compressed_ && !utf8_.complete()) {
        return fail(close_code::kInvalidData, "Invalid text frame (not UTF8).");
    }
    Event e;
    e.kind = Event::Kind::kMessage;
    e.binary = message_binary_;
    e.compressed = message_compressed_;
    e.payload = std::move(message_);
    message_ = std::string();
    in_message_ = false;
    out.push_back(std::move(e));
    return Status::ok();
}

Status Parser::feed(std::string_view data, std::vector<Event>& out)
{
    if (state_ == State::kFailed) {
        return Status(Code::kInvalidArgument, "The parser failed before.");
    }
    size_t i = 0;
    while (i < data.size()) {
        if (state_ == State::kHeader) {
            size_t want = 2;
            if (header_have_ >= 2) {
                uint8_t len7 = header_[1] & 0x7F;
                want += (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + 4;
            }
            size_t n = std::min(want - header_have_, data.size() - i);
            std::memcpy(header_ + header_have_, data.data() + i, n);
            bool had_start = header_have_ >= 2;
            header_have_ += n;
            i += n;
            if (header_have_ < 2) {
                continue;
            }
            if (!had_start) {
                // the first two bytes decide the rest of the header
                if (Status s = begin_frame(); !s.is_ok()) {
                    return s;
                }
                continue;
            }
            if (header_have_ < want) {
                continue;
            }
            uint8_t len7 = header_[1] & 0x7F;
            size_t at = 2;
            uint64_t len = len7;
            if (len7 == 126) {
                len = (uint64_t{header_[2]} << 8) | header_[3];
                at = 4;
            } else if (len7 == 127) {
                len = 0;
                for (size_t k = 0; k < 8; ++k) {
                    len = (len << 8) | header_[2 + k];
                }
                at = 10;
                if (len >> 63) {
                    return fail(close_code::kProtocolError,
                                "Frame length with the high bit set.");
                }
            }
            std::memcpy(mask_, header_ + at, 4);
            remaining_ = len;
            payload_pos_ = 0;
            bool control = (static_cast<uint8_t>(op_) & 0x8) != 0;
            if (control) {
                control_.clear();
            } else {
                if (op_ != Opcode::kContinuation) {
                    in_message_ = true;
                    message_binary_ = op_ == Opcode::kBinary;
                    message_compressed_ = rsv1_;
                    message_.clear();
                    utf8_.reset();
                    text_checked_ = 0;
                }
                if (len > opt_.max_message - message_.size()) {
                    return fail(close_code::kTooBig,
                                "Message larger than "
                                    + std::to_string(opt_.max_message)
                                    + " bytes.");
                }
            }
            state_ = State::kPayload;
        }
        // State::kPayload
        size_t n = static_cast<size_t>(
            std::min<uint64_t>(remaining_, data.size() - i));
        bool control = (static_cast<uint8_t>(op_) & 0x8) != 0;
        std::string& dst = control ? control_ : message_;
        size_t at = dst.size();
        dst.append(data.data() + i, n);
        for (size_t k = 0; k < n; ++k) {
            dst[at + k] = static_cast<char>(static_cast<uint8_t>(dst[at + k])
                                            ^ mask_[(payload_pos_ + k) & 3]);
        }
        payload_pos_ += n;
        remaining_ -= n;
        i += n;
        if (!control && !message_binary_ && !message_compressed_) {
            // fail fast on bad text, frame by frame
            if (!utf8_.feed(std::string_view(message_).substr(text_checked_))) {
                return fail(close_code::kInvalidData,
                            "Invalid text frame (not UTF8).");
            }
            text_checked_ = message_.size();
        }
        if (remaining_ == 0) {
            if (Status s = end_frame(out); !s.is_ok()) {
                return s;
            }
        }
    }
    return Status::ok();
}

}  // namespace pulse::ws
