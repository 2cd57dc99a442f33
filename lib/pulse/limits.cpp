#include "pulse/limits.h"

#include <charconv>
#include <string>

namespace pulse {

namespace {

constexpr uint64_t kMaxCount = 1000000;

bool whole(std::string_view s, uint64_t* out)
{
    if (s.empty() || s.size() > 7) {
        return false;
    }
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
    return ec == std::errc() && end == s.data() + s.size();
}

Status bad(std::string_view what)
{
    return Status(Code::kInvalidArgument,
                  "pulse_tenant_publish_rate: " + std::string(what));
}

}  // namespace

Result<TenantRate> parse_tenant_rate(std::string_view rate,
                                     std::string_view burst)
{
    TenantRate r;
    if (rate == "off") {
        if (!burst.empty()) {
            return bad("\"off\" takes no burst");
        }
        r.per_second_milli = 0;
        return r;
    }
    uint64_t n = 0;
    std::string_view num = rate;
    uint64_t per = 0;
    if (num.size() > 3 && num.substr(num.size() - 3) == "r/s") {
        per = 1;
    } else if (num.size() > 3 && num.substr(num.size() - 3) == "r/m") {
        per = 60;
    } else {
        return bad("\"" + std::string(rate)
                   + "\" is not a rate like 10r/s or 600r/m");
    }
    if (!whole(num.substr(0, num.size() - 3), &n) || n == 0
        || n > kMaxCount * per) {
        return bad("\"" + std::string(rate)
                   + "\" is not 1 to 1000000 publishes per second");
    }
    uint64_t per_second_milli = n * 1000 / per;
    if (per_second_milli == 0) {
        per_second_milli = 1;  // slower than 1 per 1000 s: not said
    }
    r.per_second_milli = per_second_milli;
    uint64_t b = (per_second_milli + 999) / 1000;
    if (!burst.empty()) {
        if (burst.substr(0, 6) != "burst=" || !whole(burst.substr(6), &b)
            || b == 0 || b > kMaxCount)
        {
            return bad("\"" + std::string(burst)
                       + "\" is not burst=N with N from 1 to 1000000");
        }
    }
    r.burst = static_cast<uint32_t>(b == 0 ? 1 : b);
    return r;
}

}  // namespace pulse
