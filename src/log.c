/*
 * log.c - one-line log records on stderr (see log.h)
 *
 * Per-process state (level, format, role) is one of the few singletons the
 * style allows.  A record is formatted into one buffer and written with a
 * single write(2) so that lines of several processes sharing stderr never
 * interleave.
 */
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "text.h"

static int log_level = SC_LOG_INFO;
static int log_json;
static char log_role[32] = "master";

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void
sc_log_init(int level, int json)
{
    log_level = level;
    log_json = json;
}

void
sc_log_set_role(const char *role)
{
    snprintf(log_role, sizeof(log_role), "%s", role);
}

int
sc_log_level_parse(const char *name)
{
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(name, level_names[i]) == 0) {
            return i;
        }
    }
    if (strcasecmp(name, "warning") == 0) {
        return SC_LOG_WARN;
    }
    return -1;
}

const char *
sc_log_level_name(int level)
{
    if (level < 0 || level > 3) {
        return "unknown";
    }
    return level_names[level];
}

int
sc_log_enabled(int level)
{
    return level <= log_level;
}

void
sc_vlog(int level, const char *fmt, va_list ap)
{
    char msg[2048], line[4608], ts[64];
    struct timespec now;
    struct tm tm;
    size_t pos;
    int saved = errno, n;

    if (!sc_log_enabled(level)) {
        return;
    }
    n = vsnprintf(msg, sizeof(msg), fmt, ap);
    if (n < 0) {
        snprintf(msg, sizeof(msg), "(unformattable log message)");
    }
    /* one line per record, whatever the message holds */
    for (char *p = msg; *p; p++) {
        if (*p == '\n' || *p == '\r') {
            *p = ' ';
        }
    }
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ",
             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
             tm.tm_min, tm.tm_sec, now.tv_nsec / 1000000);
    if (log_json) {
        pos = (size_t)snprintf(line, sizeof(line),
                               "{\"ts\":\"%s\",\"level\":\"%s\",\"role\":\"",
                               ts, sc_log_level_name(level));
        pos = sc_json_escape(line, sizeof(line), pos, log_role, NULL);
        pos += (size_t)snprintf(line + pos, sizeof(line) - pos,
                                "\",\"pid\":%d,\"msg\":\"", (int)getpid());
        pos = sc_json_escape(line, sizeof(line), pos, msg, NULL);
        pos += (size_t)snprintf(line + pos, sizeof(line) - pos, "\"}\n");
    } else {
        n = snprintf(line, sizeof(line), "%s [%s] %s[%d]: %s\n", ts,
                     sc_log_level_name(level), log_role, (int)getpid(), msg);
        pos = n < 0 ? 0 : (size_t)n;
    }
    if (pos >= sizeof(line)) {
        pos = sizeof(line) - 1;
        line[pos - 1] = '\n';
    }
    (void)!write(STDERR_FILENO, line, pos);
    errno = saved;
}

void
sc_log(int level, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    sc_vlog(level, fmt, ap);
    va_end(ap);
}
