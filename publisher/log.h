#pragma once

// The sidecar's log: one line per event on stderr.
//
// - Under journald (systemd sets JOURNAL_STREAM to the device and inode of
//   the stream it gave us as stderr) a line is "<N>message": the syslog
//   priority prefix journald parses, and no timestamp of our own, since
//   journald stamps every line itself.
// - Anywhere else a line is "2026-12-02T19:30:00.123Z publisher: message",
//   UTC with milliseconds.

#include <cstdint>
#include <string>
#include <string_view>

namespace pulse::publisher {

/// syslog priorities (sd-daemon.h's SD_ERR, SD_WARNING, SD_INFO).
enum class Level : int { kError = 3, kWarning = 4, kInfo = 6 };

/// One log line, newline included. `unix_ms` is the wall-clock time.
std::string format_log_line(Level level, std::string_view message,
                            bool journald, int64_t unix_ms);

/// True when `journal_stream` (JOURNAL_STREAM's value, "dev:inode") names
/// the file that `fd` is.
bool is_journal_stream(const char* journal_stream, int fd);

/// Writes a line to stderr, in the form its destination wants (decided
/// once, at the first line).
void log(Level level, std::string_view message);

}  // namespace pulse::publisher
