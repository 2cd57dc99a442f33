// libFuzzer target: pulse-migrate's reading of nginx's grammar and its
// rewrite (migrate/). Whatever the input:
//  - a parse either fails or gives words and directives inside the text,
//    in order;
//  - the migration of a text that parses succeeds, and its output parses
//    again and holds no nchan_ directive: the rewrite never makes a config
//    nginx could not read, nor leaves a directive it did not carry over.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "migrate.h"
#include "nginx_conf.h"

namespace {

using pulse::migrate::Directive;

[[noreturn]] void fail()
{
    __builtin_trap();
}

void check_tree(const std::vector<Directive>& ds, size_t begin, size_t end)
{
    size_t at = begin;
    for (const Directive& d : ds) {
        if (d.words.empty() || d.begin < at || d.end > end || d.begin >= d.end)
        {
            fail();
        }
        size_t w_at = d.begin;
        for (const auto& w : d.words) {
            if (w.begin < w_at || w.end < w.begin || w.end > d.end) {
                fail();
            }
            w_at = w.end;
        }
        if (d.block) {
            if (d.block_close + 1 != d.end) {
                fail();
            }
            check_tree(d.children, w_at, d.block_close);
        }
        at = d.end;
    }
}

void no_nchan(const std::vector<Directive>& ds)
{
    for (const Directive& d : ds) {
        if (d.name().rfind("nchan_", 0) == 0) {
            fail();
        }
        no_nchan(d.children);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    std::string_view text(reinterpret_cast<const char*>(data), size);
    auto parsed = pulse::migrate::parse(text);
    if (!parsed.is_ok()) {
        return 0;
    }
    check_tree(parsed.value(), 0, text.size());
    pulse::migrate::Migration m;
    auto out = m.file("fuzz.conf", text);
    if (!out.is_ok()) {
        fail();
    }
    auto again = pulse::migrate::parse(out.value());
    if (!again.is_ok()) {
        fail();
    }
    no_nchan(again.value());
    (void) m.report();
    (void) m.yaml();
    return 0;
}
