#include "log.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include <gtest/gtest.h>
#include <sys/stat.h>

namespace pulse::publisher {
namespace {

// 2026-12-02T19:30:00.123Z
constexpr int64_t kStampMs = 1796239800123;

TEST(Log, TerminalLineHasUtcStampWithMilliseconds)
{
    EXPECT_EQ(format_log_line(Level::kInfo, "started", false, kStampMs),
              "2026-12-02T19:30:00.123Z publisher: started\n");
    EXPECT_EQ(format_log_line(Level::kError, "x", false, 5),
              "1970-01-01T00:00:00.005Z publisher: x\n");
}

TEST(Log, JournaldLineIsPriorityAndMessageOnly)
{
    EXPECT_EQ(format_log_line(Level::kError, "bad config", true, kStampMs),
              "<3>bad config\n");
    EXPECT_EQ(format_log_line(Level::kWarning, "redis down", true, 0),
              "<4>redis down\n");
    EXPECT_EQ(format_log_line(Level::kInfo, "ready", true, 0), "<6>ready\n");
}

std::string dev_ino(int fd)
{
    struct stat st {};
    EXPECT_EQ(fstat(fd, &st), 0);
    return std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
}

TEST(Log, JournalStreamMustNameTheFdItself)
{
    char path[] = "/tmp/pulse-log-test-XXXXXX";
    int fd = mkstemp(path);
    ASSERT_GE(fd, 0);
    char other_path[] = "/tmp/pulse-log-test-XXXXXX";
    int other = mkstemp(other_path);
    ASSERT_GE(other, 0);

    EXPECT_TRUE(is_journal_stream(dev_ino(fd).c_str(), fd));
    // stderr redirected elsewhere by the service: the variable is inherited
    // but names a different file.
    EXPECT_FALSE(is_journal_stream(dev_ino(other).c_str(), fd));
    EXPECT_FALSE(is_journal_stream(nullptr, fd));
    EXPECT_FALSE(is_journal_stream("", fd));
    EXPECT_FALSE(is_journal_stream("garbage", fd));
    EXPECT_FALSE(is_journal_stream("12", fd));
    EXPECT_FALSE(is_journal_stream(dev_ino(fd).c_str(), -1));

    close(fd);
    close(other);
    unlink(path);
    unlink(other_path);
}

}  // namespace
}  // namespace pulse::publisher
