/* progress.h - the one-line progress display of a download. */
#ifndef FLOODSHARE_PROGRESS_H
#define FLOODSHARE_PROGRESS_H

#include <stddef.h>
#include <stdint.h>

#include "floodshare/ctl.h"

/* Writes one line (no newline) for pr into out[0..cap), at most width
 * columns of text: name, percent, a bar, bytes done and total, rate, ETA
 * and the holder ("from peer 2 ADDR"), or with pr->sources > 1 how many
 * ("from 4 sources"). With color, ANSI escapes highlight the bar (they do not
 * count towards width). Pure. Returns out. */
char *progress_format(char *out, size_t cap, const struct ctl_progress *pr, int width,
                      int color);

/* "1.5 GB", "12.0 MB", "512 B": SI units, as curl and wget print them. */
char *progress_bytes(char *out, size_t cap, uint64_t n);

#endif
