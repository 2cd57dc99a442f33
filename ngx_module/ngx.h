#pragma once

// The only file that includes nginx headers (docs/conventions.md §1): their
// order matters, and C++ needs them inside extern "C".
extern "C" {
#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <ngx_http.h>
}
