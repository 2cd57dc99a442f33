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

std::optional<std::string> expand(std::string_view tmpl,
                                  std::string_view channel,
                                  const std::vector<std::string>& captures)
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
