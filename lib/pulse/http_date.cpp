#include "pulse/http_date.h"

#include <array>
#include <cstdio>

namespace pulse {

namespace {

constexpr std::array<const char*, 7> kDays = {"Thu", "Fri", "Sat", "Sun",
                                              "Mon", "Tue", "Wed"};
constexpr std::array<const char*, 12> kMonths = {"Jan", "Feb", "Mar", "Apr",
                                                 "May", "Jun", "Jul", "Aug",
                                                 "Sep", "Oct", "Nov", "Dec"};

// Howard Hinnant's days-from-civil and its inverse.
int64_t days_from_civil(int64_t y, int64_t m, int64_t d)
{
    y -= m <= 2 ? 1 : 0;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

void civil_from_days(int64_t z, int64_t* y, int64_t* m, int64_t* d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = yoe + era * 400 + (*m <= 2 ? 1 : 0);
}

}  // namespace

std::string format_http_date(int64_t t)
{
    int64_t days = t >= 0 ? t / 86400 : (t - 86399) / 86400;
    int64_t secs = t - days * 86400;
    int64_t y = 0;
    int64_t m = 0;
    int64_t d = 0;
    civil_from_days(days, &y, &m, &d);
    int64_t wd = ((days % 7) + 7) % 7;
    char buf[64];
    int n = std::snprintf(
        buf, sizeof(buf), "%s, %02lld %s %04lld %02lld:%02lld:%02lld GMT",
        kDays[static_cast<size_t>(wd)], static_cast<long long>(d),
        kMonths[static_cast<size_t>(m - 1)], static_cast<long long>(y),
        static_cast<long long>(secs / 3600),
        static_cast<long long>(secs / 60 % 60),
        static_cast<long long>(secs % 60));
    return std::string(buf, n > 0 ? static_cast<size_t>(n) : 0);
}

std::optional<int64_t> parse_http_date(std::string_view s)
{
    // "Sun, 06 Nov 1994 08:49:37 GMT": fixed positions, read in place (it
    // is parsed on every long-poll)
    if (s.size() != 29 || s[3] != ',' || s[4] != ' ' || s[7] != ' '
        || s[11] != ' ' || s[16] != ' ' || s[19] != ':' || s[22] != ':'
        || s[25] != ' ' || s[26] != 'G' || s[27] != 'M' || s[28] != 'T')
    {
        return std::nullopt;
    }
    auto num = [&](size_t at, size_t n, int64_t* out) {
        int64_t v = 0;
        for (size_t i = at; i < at + n; ++i) {
            if (s[i] < '0' || s[i] > '9') {
                return false;
            }
            v = v * 10 + (s[i] - '0');
        }
        *out = v;
        return true;
    };
    int64_t d = 0;
    int64_t y = 0;
    int64_t hh = 0;
    int64_t mm = 0;
    int64_t ss = 0;
    if (!num(5, 2, &d) || !num(12, 4, &y) || !num(17, 2, &hh)
        || !num(20, 2, &mm) || !num(23, 2, &ss))
    {
        return std::nullopt;
    }
    int64_t m = 0;
    for (size_t i = 0; i < kMonths.size(); ++i) {
        const char* name = kMonths[i];
        if (s[8] == name[0] && s[9] == name[1] && s[10] == name[2]) {
            m = static_cast<int64_t>(i) + 1;
            break;
        }
    }
    if (m == 0 || d < 1 || d > 31 || hh > 23 || mm > 59 || ss > 60) {
        return std::nullopt;
    }
    return days_from_civil(y, m, d) * 86400 + hh * 3600 + mm * 60 + ss;
}

}  // namespace pulse
