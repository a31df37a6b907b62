/*
 * log.h - one-line log records on stderr, text or JSON
 *
 * Every line carries the time, level, the process role ("master",
 * "worker 3", "listener") and pid.  Never call from a signal handler.
 * Messages follow PostgreSQL's style: lowercase, no final period, the
 * failing call named with strerror() of the saved errno.  No token, secret
 * or query string is ever passed to sc_log().
 */
#ifndef SC_LOG_H
#define SC_LOG_H

#include <stdarg.h>

enum sc_log_level {
    SC_LOG_ERR = 0,
    SC_LOG_WARN = 1,
    SC_LOG_INFO = 2,
    SC_LOG_DEBUG = 3
};

/* Sets level, format (0 text, 1 json) and role; the process's own state. */
void sc_log_init(int level, int json);
void sc_log_set_role(const char *role);

/* Parses "error" "warn" "info" "debug"; -1 if unknown. */
int sc_log_level_parse(const char *name);
const char *sc_log_level_name(int level);

int sc_log_enabled(int level);

void sc_log(int level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void sc_vlog(int level, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

#endif /* SC_LOG_H */
