#include "log.h"

#include <unistd.h>

#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <ctime>

#include <sys/stat.h>

namespace pulse::publisher {

std::string format_log_line(Level level, std::string_view message,
                            bool journald, int64_t unix_ms)
{
    std::string line;
    if (journald) {
        line = "<" + std::to_string(static_cast<int>(level)) + ">";
    } else {
        std::time_t secs = static_cast<std::time_t>(unix_ms / 1000);
        std::tm tm{};
        gmtime_r(&secs, &tm);
        char stamp[40];
        size_t n = std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
        std::snprintf(stamp + n, sizeof stamp - n, ".%03dZ ",
                      static_cast<int>(unix_ms % 1000));
        line = stamp;
        line += "publisher: ";
    }
    line.append(message);
    line += '\n';
    return line;
}

bool is_journal_stream(const char* journal_stream, int fd)
{
    if (journal_stream == nullptr) {
        return false;
    }
    uintmax_t dev = 0;
    uintmax_t ino = 0;
    if (std::sscanf(journal_stream, "%" SCNuMAX ":%" SCNuMAX, &dev, &ino) != 2)
    {
        return false;
    }
    struct stat st {};
    return fstat(fd, &st) == 0 && static_cast<uintmax_t>(st.st_dev) == dev
           && static_cast<uintmax_t>(st.st_ino) == ino;
}

void log(Level level, std::string_view message)
{
    static const bool kJournald =
        is_journal_stream(std::getenv("JOURNAL_STREAM"), STDERR_FILENO);
    int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count();
    std::string line = format_log_line(level, message, kJournald, now);
    std::fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace pulse::publisher
