#pragma once

#include <string>
#include <string_view>

#include "pulse/store.h"

namespace pulse {

enum class InfoFormat { kPlain, kJson, kXml, kYaml };

/// nchan_output_info_type(): the Accept header is split on ','; the first
/// element naming text/ or application/ with a subtype starting with plain,
/// json, x-json, yaml, x-yaml or xml decides; default plain.
InfoFormat info_format_from_accept(std::string_view accept);

/// The response Content-Type: always text/* (text/json even when
/// application/json was asked for), as nchan.
std::string_view info_content_type(InfoFormat f);

/// Channel info in nchan's exact templates (CRLF line ends, the json
/// single line with a space before '}').
std::string format_channel_info(const ChannelInfo& info, InfoFormat f);

/// Group info (pulse_group_location) in nchan's templates
/// (nchan_output_info.c): the disk fields are always 0 in Pulse.
std::string format_group_info(const GroupInfo& info, InfoFormat f);

}  // namespace pulse
