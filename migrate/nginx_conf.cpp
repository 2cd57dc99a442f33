#include "nginx_conf.h"

#include <utility>

namespace pulse::migrate {

namespace {

class Parser {
public:
    explicit Parser(std::string_view text) : text_(text) {}

    // The directives up to the end of the block (`}`) or of the text.
    Status directives(std::vector<Directive>& out, bool in_block)
    {
        Directive d;
        for (;;) {
            skip_blanks_and_comments();
            if (at_ >= text_.size()) {
                if (!d.words.empty()) {
                    return error(
                        "unexpected end of file, expecting \";\" or "
                        "\"}\"");
                }
                if (in_block) {
                    return error("unexpected end of file, expecting \"}\"");
                }
                return Status::ok();
            }
            char c = text_[at_];
            if (c == ';') {
                if (d.words.empty()) {
                    return error("unexpected \";\"");
                }
                d.end = ++at_;
                out.push_back(std::move(d));
                d = Directive();
            } else if (c == '{') {
                if (d.words.empty()) {
                    return error("unexpected \"{\"");
                }
                ++at_;
                d.block = true;
                Status s = directives(d.children, true);
                if (!s.is_ok()) {
                    return s;
                }
                d.block_close = at_;
                d.end = ++at_;
                out.push_back(std::move(d));
                d = Directive();
            } else if (c == '}') {
                if (!d.words.empty()) {
                    return error("unexpected \"}\"");
                }
                if (!in_block) {
                    return error("unexpected \"}\"");
                }
                return Status::ok();
            } else {
                Word w;
                Status s = word(w);
                if (!s.is_ok()) {
                    return s;
                }
                if (d.words.empty()) {
                    d.begin = w.begin;
                }
                d.words.push_back(std::move(w));
            }
        }
    }

private:
    Status error(const std::string& what) const
    {
        return Status(Code::kInvalidArgument,
                      "line " + std::to_string(line_) + ": " + what);
    }

    static bool blank(char c)
    {
        return c == ' ' || c == '\t' || c == '\r' || c == '\n';
    }

    void advance()
    {
        if (text_[at_] == '\n') {
            ++line_;
        }
        ++at_;
    }

    void skip_blanks_and_comments()
    {
        while (at_ < text_.size()) {
            if (blank(text_[at_])) {
                advance();
            } else if (text_[at_] == '#') {
                while (at_ < text_.size() && text_[at_] != '\n') {
                    ++at_;
                }
            } else {
                return;
            }
        }
    }

    static char unescape(char c)
    {
        switch (c) {
            case 't':
                return '\t';
            case 'r':
                return '\r';
            case 'n':
                return '\n';
            default:
                return c;
        }
    }

    Status word(Word& w)
    {
        w.begin = at_;
        w.line = line_;
        char quote = text_[at_];
        if (quote == '"' || quote == '\'') {
            w.quoted = true;
            advance();
            for (;;) {
                if (at_ >= text_.size()) {
                    w.line = line_;
                    return error("unexpected end of file in a quoted word");
                }
                char c = text_[at_];
                if (c == '\\' && at_ + 1 < text_.size()) {
                    advance();
                    w.value += unescape(text_[at_]);
                    advance();
                    continue;
                }
                advance();
                if (c == quote) {
                    break;
                }
                w.value += c;
            }
            w.end = at_;
            // as nginx: a blank, `;`, `{`, or the `)` of an if condition
            if (at_ < text_.size() && !blank(text_[at_]) && text_[at_] != ';'
                && text_[at_] != '{' && text_[at_] != ')')
            {
                return error(std::string("unexpected \"") + text_[at_]
                             + "\" after a quoted word");
            }
            return Status::ok();
        }
        bool variable = false;
        while (at_ < text_.size()) {
            char c = text_[at_];
            // as in nginx, a `}` inside a word is part of it
            if (blank(c) || c == ';') {
                break;
            }
            if (c == '{' && !variable) {
                break;
            }
            variable = c == '$';
            if (c == '\\' && at_ + 1 < text_.size()) {
                advance();
                w.value += text_[at_];
                advance();
                continue;
            }
            w.value += c;
            advance();
        }
        w.end = at_;
        return Status::ok();
    }

    std::string_view text_;
    size_t at_ = 0;
    int line_ = 1;
};

}  // namespace

Result<std::vector<Directive>> parse(std::string_view text)
{
    Parser p(text);
    std::vector<Directive> out;
    Status s = p.directives(out, false);
    if (!s.is_ok()) {
        return s;
    }
    return out;
}

}  // namespace pulse::migrate
