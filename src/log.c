/* log.c - stderr logging with a peer tag; safe to call from any thread. */
#include "floodshare/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

atomic_int log_verbosity = L_INFO;
static unsigned log_peer_id;

void log_set_peer(unsigned id)
{
    log_peer_id = id;
}

int log_level_parse(const char *s)
{
    static const char *names[] = {"error", "warn", "info", "debug"};
    for (int i = 0; i < 4; i++)
        if (strcasecmp(s, names[i]) == 0)
            return i;
    return -1;
}

void log_emit(int level, const char *fmt, ...)
{
    /* One fprintf per line: stdio locks the stream per call, so lines from
     * different threads never interleave. */
    char line[2048];
    size_t off = 0;
    static const char *tags[] = {"error: ", "warning: ", "", ""};
    struct timespec ts;
    struct tm tm;

    clock_gettime(CLOCK_REALTIME, &ts);
    localtime_r(&ts.tv_sec, &tm);
    off += strftime(line, sizeof line, "%H:%M:%S", &tm);
    off += (size_t)snprintf(line + off, sizeof line - off, ".%03ld ", ts.tv_nsec / 1000000);
    if (log_peer_id)
        off += (size_t)snprintf(line + off, sizeof line - off, "peer %u: ", log_peer_id);
    if (level >= 0 && level <= L_DEBUG)
        off += (size_t)snprintf(line + off, sizeof line - off, "%s", tags[level]);

    va_list ap;
    va_start(ap, fmt);
    if (off < sizeof line)
        vsnprintf(line + off, sizeof line - off, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s\n", line);
}

const char *log_escape(char dst[LOG_ESCAPE_BUF], const char *src, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    size_t n = len < LOG_ESCAPE_MAX ? len : LOG_ESCAPE_MAX;

    dst[o++] = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)src[i];
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
            dst[o++] = (char)c;
        } else {
            dst[o++] = '\\';
            dst[o++] = 'x';
            dst[o++] = hex[c >> 4];
            dst[o++] = hex[c & 15];
        }
    }
    dst[o++] = '"';
    if (len > n) {
        memcpy(dst + o, "...", 3);
        o += 3;
    }
    dst[o] = '\0';
    return dst;
}

const char *log_escape_str(char dst[LOG_ESCAPE_BUF], const char *src)
{
    return log_escape(dst, src, strlen(src));
}
