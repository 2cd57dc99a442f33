#pragma once

// permessage-deflate (RFC 7692) over zlib: each server message is
// compressed on its own (no context takeover), so one compressed copy
// serves every subscriber; client messages are inflated with the context
// the client keeps between messages unless it promised not to.

#include <zlib.h>

#include <cstddef>
#include <string>
#include <string_view>

#include "pulse/status.h"

namespace pulse::ws {

struct DeflateOptions {
    int level = 6;         // pulse_permessage_deflate_compression_level
    int mem_level = 8;     // ..._memlevel
    int window_bits = 10;  // ..._window (9..15)
    int strategy = Z_DEFAULT_STRATEGY;
};

/// Compresses one message as a permessage-deflate payload: raw deflate,
/// flushed to a byte boundary, without the final 00 00 FF FF (RFC 7692
/// 7.2.1). Fails only when zlib cannot allocate.
Result<std::string> deflate_message(std::string_view in,
                                    const DeflateOptions& opt);

/// `in` as raw deflate *stored* blocks (no compression), ending with an
/// empty stored block: a prefix that any deflate_message() payload may
/// follow, the two inflating as one message. This is how nchan puts the
/// per-subscriber ws+meta.nchan header before a body compressed once at
/// publish time, byte for byte, and it costs no zlib call per frame.
std::string deflate_stored(std::string_view in);

/// Inflates client messages of one connection.
class Inflater {
public:
    Inflater() = default;
    Inflater(const Inflater&) = delete;
    Inflater& operator=(const Inflater&) = delete;
    Inflater(Inflater&&) = delete;
    Inflater& operator=(Inflater&&) = delete;
    ~Inflater();

    /// One whole message. kTooLarge past `max_out` bytes of output,
    /// kInvalidArgument for data that is not deflate. `reset` drops the
    /// window afterwards (client_no_context_takeover).
    Result<std::string> inflate(std::string_view in, size_t max_out,
                                bool reset);

private:
    z_stream z_{};
    bool ready_ = false;
};

}  // namespace pulse::ws
