#pragma once

// Small text helpers for header values (no locale, ASCII only).

#include <optional>
#include <string_view>

namespace pulse::text {

/// Without leading and trailing spaces and tabs.
inline std::string_view trim(std::string_view s)
{
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
        s.remove_prefix(1);
    }
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
        s.remove_suffix(1);
    }
    return s;
}

inline char lower(char c)
{
    return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

/// ASCII case-insensitive equality.
inline bool iequals(std::string_view a, std::string_view b)
{
    if (a.size() != b.size()) {
        return false;
    }
    for (size_t i = 0; i < a.size(); ++i) {
        if (lower(a[i]) != lower(b[i])) {
            return false;
        }
    }
    return true;
}

inline bool starts_with(std::string_view s, std::string_view prefix)
{
    return s.substr(0, prefix.size()) == prefix;
}

/// The value of query argument `name` (ASCII case-insensitive) in `args`
/// (the query, without `?`), as nginx's ngx_http_arg finds it: the first
/// `name=` at the start or after a `&`, up to the next `&`. Not decoded.
/// One jump per argument: a long value (a token) costs a memchr, where
/// ngx_http_arg compares the name at every byte of it.
inline std::optional<std::string_view> query_arg(std::string_view args,
                                                 std::string_view name)
{
    if (name.empty()) {
        return std::nullopt;
    }
    size_t at = 0;
    while (at < args.size()) {
        size_t end = args.find('&', at);
        if (end == std::string_view::npos) {
            end = args.size();
        }
        std::string_view one = args.substr(at, end - at);
        if (one.size() > name.size() && one[name.size()] == '='
            && iequals(one.substr(0, name.size()), name))
        {
            return one.substr(name.size() + 1);
        }
        at = end + 1;
    }
    return std::nullopt;
}

}  // namespace pulse::text
