#include "pulse/http_date.h"

#include <array>

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

void put2(char* p, int64_t v)
{
    p[0] = static_cast<char>('0' + v / 10);
    p[1] = static_cast<char>('0' + v % 10);
}

void put3(char* p, const char* s)
{
    p[0] = s[0];
    p[1] = s[1];
    p[2] = s[2];
}

}  // namespace

// By hand rather than snprintf: long-poll answers format it per response.
void format_http_date(int64_t t, char (&out)[kHttpDateLen])
{
    int64_t days = t >= 0 ? t / 86400 : (t - 86399) / 86400;
    int64_t secs = t - days * 86400;
    int64_t y = 0;
    int64_t m = 0;
    int64_t d = 0;
    civil_from_days(days, &y, &m, &d);
    if (y < 0 || y > 9999) {
        // clamp to what four digits hold
        format_http_date(y < 0 ? -62167219200 : 253402300799, out);
        return;
    }
    int64_t wd = ((days % 7) + 7) % 7;
    char* p = out;
    put3(p, kDays[static_cast<size_t>(wd)]);
    p[3] = ',';
    p[4] = ' ';
    put2(p + 5, d);
    p[7] = ' ';
    put3(p + 8, kMonths[static_cast<size_t>(m - 1)]);
    p[11] = ' ';
    put2(p + 12, y / 100);
    put2(p + 14, y % 100);
    p[16] = ' ';
    put2(p + 17, secs / 3600);
    p[19] = ':';
    put2(p + 20, secs / 60 % 60);
    p[22] = ':';
    put2(p + 23, secs % 60);
    put3(p + 25, " GM");
    p[28] = 'T';
}

std::string format_http_date(int64_t t)
{
    char buf[kHttpDateLen];
    format_http_date(t, buf);
    return std::string(buf, kHttpDateLen);
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
    static constexpr size_t kDigits[] = {5,  6,  12, 13, 14, 15,
                                         17, 18, 20, 21, 23, 24};
    for (size_t i : kDigits) {
        if (static_cast<unsigned char>(s[i] - '0') > 9) {
            return std::nullopt;
        }
    }
    auto two = [&](size_t at) -> int64_t {
        return (s[at] - '0') * 10 + (s[at + 1] - '0');
    };
    int64_t d = two(5);
    int64_t y = two(12) * 100 + two(14);
    int64_t hh = two(17);
    int64_t mm = two(20);
    int64_t ss = two(23);
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
