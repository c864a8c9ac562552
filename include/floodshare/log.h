/* log.h - one line per event on stderr, tagged "peer N:".
 *
 * The level is tested inside the macro so that arguments of suppressed
 * messages are never evaluated. Bytes that came from the wire must go
 * through log_escape() before they are printed. */
#ifndef FLOODSHARE_LOG_H
#define FLOODSHARE_LOG_H

#include <stdatomic.h>
#include <stddef.h>

enum log_level { L_ERROR = 0, L_WARN = 1, L_INFO = 2, L_DEBUG = 3 };

/* Messages above this level are dropped. Atomic: `modify log_level`
 * changes it while other threads log. */
extern atomic_int log_verbosity;

/* Sets the "peer N:" tag; 0 means no tag (used by the CLI). */
void log_set_peer(unsigned id);

/* Parses "error", "warn", "info" or "debug"; -1 if s is none of them. */
int log_level_parse(const char *s);

void log_emit(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_msg(level, ...)                         \
    do {                                            \
        if ((level) <= atomic_load_explicit(&log_verbosity, memory_order_relaxed)) \
            log_emit((level), __VA_ARGS__);         \
    } while (0)

/* Size of a buffer that holds any log_escape() result (a quoted name of
 * LOG_ESCAPE_MAX input bytes, every byte escaped, plus the truncation mark). */
#define LOG_ESCAPE_MAX 64
#define LOG_ESCAPE_BUF (LOG_ESCAPE_MAX * 4 + 8)

/* Writes src[0..len) into dst as a double-quoted string: printable ASCII as
 * is, '"' and '\\' and every other byte as \xNN; at most LOG_ESCAPE_MAX input
 * bytes, then "...". dst must hold LOG_ESCAPE_BUF bytes. Returns dst. */
const char *log_escape(char dst[LOG_ESCAPE_BUF], const char *src, size_t len);

/* log_escape() of a NUL-terminated string. */
const char *log_escape_str(char dst[LOG_ESCAPE_BUF], const char *src);

#endif
