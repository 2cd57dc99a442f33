#include "rules.h"

namespace pulse::publisher {

namespace {

bool match(std::string_view p, std::string_view t,
           std::vector<std::string>* caps)
{
    if (p.empty()) {
        return t.empty();
    }
    if (p[0] == '*') {
        // Shortest match first, as the captures of a left-to-right glob.
        for (size_t n = 0; n <= t.size(); ++n) {
            caps->emplace_back(t.substr(0, n));
            if (match(p.substr(1), t.substr(n), caps)) {
                return true;
            }
            caps->pop_back();
        }
        return false;
    }
    if (t.empty()) {
        return false;
    }
    if (p[0] == '?' || p[0] == t[0]) {
        return match(p.substr(1), t.substr(1), caps);
    }
    return false;
}

}  // namespace

std::optional<std::vector<std::string>> glob_captures(std::string_view pattern,
                                                      std::string_view text)
{
    std::vector<std::string> caps;
    if (!match(pattern, text, &caps)) {
        return std::nullopt;
    }
    return caps;
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
