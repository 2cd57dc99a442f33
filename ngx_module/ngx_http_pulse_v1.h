#pragma once

// pulse.v1 commands: a POST subrequest of the WebSocket's kept request to
// pulse_websocket_upstream, with the channel and the identity in headers;
// the answer goes back to the same socket.

#include "ngx.h"

#include <cstdint>
#include <string_view>

namespace pulse::ngx {

class CommandSink {
public:
    /// The command's answer: `failed` when the upstream could not be
    /// reached or answered an error status. Must not throw.
    virtual void command_answer(uint64_t token, int status,
                                std::string_view body,
                                bool failed) noexcept = 0;

protected:
    ~CommandSink() = default;
};

/// Starts one command; false when nginx refused the subrequest. Throws
/// std::bad_alloc.
bool start_command(ngx_http_request_t* r, ngx_str_t uri, uint64_t token,
                   std::string_view channel, std::string_view identity,
                   std::string_view data, CommandSink* sink);

}  // namespace pulse::ngx
