#pragma once

// nchan's directives that Pulse does not implement, under their pulse_
// names. Each one fails `nginx -t` with a line that says what replaces it,
// instead of "unknown directive" (docs/migrating-from-nchan.md, "Every
// nchan directive").

#include <string>
#include <string_view>
#include <vector>

namespace pulse {

/// Every refused name, for the module's directive table.
const std::vector<std::string_view>& nchan_refused_directives();

/// The refusal for `name`: "<name>: <why>; <what to use instead>". Empty
/// when `name` is not a refused directive.
std::string nchan_refusal(std::string_view name);

/// The refusal of `pulse_storage_engine redis` (memory is the only engine).
std::string nchan_storage_engine_refusal();

}  // namespace pulse
