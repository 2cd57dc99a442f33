"""The harness's own rules: which sanitizer leak reports fail a test."""

from conftest import nginx_leaks_removed

NGINX_ONLY = """==1==ERROR: LeakSanitizer: detected memory leaks

Indirect leak of 1966080 byte(s) in 1 object(s) allocated from:
    #0 0x7f in __interceptor_malloc asan_malloc_linux.cpp:69
    #1 0x55 in ngx_alloc (/usr/sbin/nginx+0x4ccfe)
    #2 0x55  (/usr/sbin/nginx+0x47af7)
    #3 0x55 in ngx_spawn_process (/usr/sbin/nginx+0x50212)

SUMMARY: AddressSanitizer: 1966080 byte(s) leaked in 1 allocation(s).
"""

OURS = """==1==ERROR: LeakSanitizer: detected memory leaks

Direct leak of 40 byte(s) in 1 object(s) allocated from:
    #0 0x7f in malloc asan_malloc_linux.cpp:69
    #1 0x7f in pulse::Frame::make(std::basic_string_view<char>) \
/work/main/lib/pulse/frame.h:26
    #2 0x7f  (/work/main/build/asan/ngx_http_pulse_module.so+0x1234)

Indirect leak of 72 byte(s) in 1 object(s) allocated from:
    #0 0x7f in __interceptor_malloc asan_malloc_linux.cpp:69
    #1 0x55 in ngx_alloc (/usr/sbin/nginx+0x4ccfe)

SUMMARY: AddressSanitizer: 112 byte(s) leaked in 2 allocation(s).
"""


def test_nginx_own_leaks_do_not_fail_and_ours_do():
    assert nginx_leaks_removed(NGINX_ONLY) == ""
    kept = nginx_leaks_removed(OURS)
    assert "LeakSanitizer" in kept and "pulse::Frame::make" in kept
    assert "72 byte" not in kept
    # other sanitizer reports pass through untouched
    other = "==1==ERROR: AddressSanitizer: heap-use-after-free\n    #0 x"
    assert nginx_leaks_removed(other) == other
