#pragma once

#include "ngx.h"

#include <exception>

// Helpers for the noexcept boundary (docs/conventions.md §2): every callback
// nginx calls is `noexcept` and a function-try-block whose handlers use these.

namespace pulse::ngx {

inline const char* what(const std::exception& e) noexcept
{
    return e.what();
}

/// A handler's rc from `f`, for callbacks that finalize `r` themselves:
/// an exception is logged and becomes a 500.
template <typename F>
ngx_int_t rc_or_500(ngx_http_request_t* r, F&& f) noexcept
{
    try {
        return f();
    } catch (const std::exception& e) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0, "pulse: %s",
                      e.what());
    } catch (...) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "pulse: unknown exception");
    }
    return NGX_HTTP_INTERNAL_SERVER_ERROR;
}

}  // namespace pulse::ngx

#define PULSE_LOG_PREFIX "pulse: "

#define PULSE_CATCH_CONF(cf)                                            \
    catch (const std::exception& e) {                                   \
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, PULSE_LOG_PREFIX "%s", \
                           e.what());                                   \
        return static_cast<char*>(NGX_CONF_ERROR);                      \
    }                                                                   \
    catch (...) {                                                       \
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,                        \
                           PULSE_LOG_PREFIX "unknown exception");       \
        return static_cast<char*>(NGX_CONF_ERROR);                      \
    }

#define PULSE_CATCH_RETURN(log, level, value)                               \
    catch (const std::exception& e) {                                       \
        ngx_log_error(level, log, 0, PULSE_LOG_PREFIX "%s", e.what());      \
        return value;                                                       \
    }                                                                       \
    catch (...) {                                                           \
        ngx_log_error(level, log, 0, PULSE_LOG_PREFIX "unknown exception"); \
        return value;                                                       \
    }

#define PULSE_CATCH_VOID(log)                                                  \
    catch (const std::exception& e) {                                          \
        ngx_log_error(NGX_LOG_ALERT, log, 0, PULSE_LOG_PREFIX "%s", e.what()); \
    }                                                                          \
    catch (...) {                                                              \
        ngx_log_error(NGX_LOG_ALERT, log, 0,                                   \
                      PULSE_LOG_PREFIX "unknown exception");                   \
    }
