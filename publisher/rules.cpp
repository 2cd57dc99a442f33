#include "rules.h"

namespace pulse::publisher {

std::optional<std::vector<std::string>> glob_captures(std::string_view pattern,
                                                      std::string_view text)
{
    // The classic one-pass wildcard match: a mismatch backtracks to the
    // last `*` only and lets it take one more character. O(pattern x text)
    // and no recursion: the text is a channel name from Redis, publisher
    // input. The earlier stars keep the shortest match that lets the rest
    // match, as a left-to-right glob's captures.
    struct Cap {
        size_t start;
        size_t len;
    };
    std::vector<Cap> caps;
    size_t p = 0;
    size_t t = 0;
    size_t star = std::string_view::npos;  // pattern index of the last '*'
    size_t mark = 0;                       // where that star's match ends
    while (t < text.size()) {
        if (p < pattern.size() && pattern[p] == '*') {
            star = p++;
            mark = t;
            caps.push_back({t, 0});
        } else if (p < pattern.size()
                   && (pattern[p] == '?' || pattern[p] == text[t])) {
            ++p;
            ++t;
        } else if (star != std::string_view::npos) {
            p = star + 1;
            t = ++mark;
            caps.back().len = mark - caps.back().start;
        } else {
            return std::nullopt;
        }
    }
    while (p < pattern.size() && pattern[p] == '*') {
        caps.push_back({t, 0});
        ++p;
    }
    if (p != pattern.size()) {
        return std::nullopt;
    }
    std::vector<std::string> out;
    out.reserve(caps.size());
    for (const Cap& c : caps) {
        out.emplace_back(text.substr(c.start, c.len));
    }
    return out;
}

const std::string* field(const Fields& fields, std::string_view name)
{
    for (const auto& [k, v] : fields) {
        if (k == name) {
            return &v;
        }
    }
    return nullptr;
}

std::optional<std::string> stream_id_to_msg_id(std::string_view entry_id)
{
    size_t dash = entry_id.find('-');
    if (dash == std::string_view::npos || dash == 0
        || dash + 1 == entry_id.size() || dash > 19
        || entry_id.size() - dash - 1 > 19)
    {
        return std::nullopt;
    }
    unsigned long long ms = 0;
    unsigned long long seq = 0;
    for (char c : entry_id.substr(0, dash)) {
        if (c < '0' || c > '9') {
            return std::nullopt;
        }
        ms = ms * 10 + static_cast<unsigned long long>(c - '0');
    }
    for (char c : entry_id.substr(dash + 1)) {
        if (c < '0' || c > '9') {
            return std::nullopt;
        }
        seq = seq * 10 + static_cast<unsigned long long>(c - '0');
    }
    if (seq >= 1000000) {
        return std::nullopt;
    }
    return std::to_string(ms / 1000) + ":"
           + std::to_string((ms % 1000) * 1000000 + seq);
}

std::optional<std::string> expand(std::string_view tmpl,
                                  std::string_view channel,
                                  const std::vector<std::string>& captures,
                                  const Fields& fields)
{
    std::string out;
    size_t i = 0;
    while (i < tmpl.size()) {
        if (tmpl[i] != '{') {
            out += tmpl[i++];
            continue;
        }
        size_t close = tmpl.find('}', i);
        if (close == std::string_view::npos) {
            return std::nullopt;
        }
        std::string_view name = tmpl.substr(i + 1, close - i - 1);
        if (name == "channel") {
            out.append(channel);
        } else if (name.size() == 1 && name[0] >= '1' && name[0] <= '9') {
            size_t n = static_cast<size_t>(name[0] - '1');
            if (n >= captures.size()) {
                return std::nullopt;
            }
            out += captures[n];
        } else if (const std::string* v = field(fields, name)) {
            out += *v;
        } else {
            return std::nullopt;
        }
        i = close + 1;
    }
    return out;
}

std::string url_path_escape(std::string_view s)
{
    static const char* hex = "0123456789ABCDEF";
    std::string out;
    for (char c : s) {
        auto u = static_cast<unsigned char>(c);
        bool plain = (u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z')
                     || (u >= '0' && u <= '9') || u == '-' || u == '_'
                     || u == '.' || u == '~';
        if (plain) {
            out += c;
        } else {
            out += '%';
            out += hex[u >> 4];
            out += hex[u & 15];
        }
    }
    return out;
}

}  // namespace pulse::publisher
