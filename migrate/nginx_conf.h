#pragma once

// nginx's configuration grammar, as ngx_conf_file.c reads it: words
// separated by blanks, `;` ending a directive, `{ }` around a block,
// "double" and 'single' quotes with backslash escapes, `#` comments where a
// word could start, and `${name}` inside a word. The parse keeps every
// word's place in the text, so that a rewrite can change one word and keep
// the rest of the file byte for byte.

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "pulse/status.h"

namespace pulse::migrate {

struct Word {
    std::string value;  // unquoted, escapes resolved
    size_t begin = 0;   // the raw word in the text, quotes included
    size_t end = 0;
    int line = 0;
    bool quoted = false;
};

struct Directive {
    std::vector<Word> words;  // the name, then the arguments
    size_t begin = 0;         // the name's first byte
    size_t end = 0;           // past the `;`, or past the block's `}`
    bool block = false;
    size_t block_close = 0;  // the `}` of a block
    std::vector<Directive> children;

    const std::string& name() const { return words.front().value; }
    int line() const { return words.front().line; }
};

/// The directives of a whole file. Errors name the line, as nginx -t
/// does: an unexpected `}` or end of file, an unterminated quote, a
/// directive with no name.
Result<std::vector<Directive>> parse(std::string_view text);

}  // namespace pulse::migrate
