/* rate.h - token buckets for [limits] upload_rate and download_rate.
 *
 * One bucket per direction holds back every transfer of the peer at once:
 * all uploads share the upload bucket, all downloads the download bucket.
 * A transfer asks for tokens (bytes) before it moves them, one unit at a
 * time (rate_unit(): small at low rates, so the rate is smooth).
 *
 * The arithmetic (struct rate_bucket) is pure: every call takes the time,
 * so the unit tests drive it with a fake clock. It lets takers reserve
 * ahead: the bucket's level may go below 0 (tokens promised to takers
 * still waiting), and each taker gets a ticket, the number of tokens the
 * bucket must have made (refills and refunds) before its turn. Takers go
 * in the order they asked, a rate change moves every ticket (they are
 * counted in tokens, not in time), and tokens gather while nobody takes
 * up to a bounded burst only.
 *
 * struct rate wraps a bucket for threads: one mutex (a leaf of the lock
 * order: nothing else is locked under it), a condition variable the
 * waiters sleep on until their ticket is due, never holding the mutex
 * while doing anything else. */
#ifndef FLOODSHARE_RATE_H
#define FLOODSHARE_RATE_H

#include <stddef.h>
#include <stdint.h>

#include "floodshare/status.h"

#define RATE_MIN 1024ull         /* bytes/s: the least limit accepted (0 is none) */
#define RATE_MAX (64ull << 30)   /* bytes/s: the most (64G) */
#define RATE_UNIT_MIN 1024u      /* bytes a taker asks for at once, at the least ... */
#define RATE_UNIT_MAX (256u * 1024) /* ... and at the most */

/* --- the arithmetic: a bucket and a fake-clock-friendly API --- */

struct rate_bucket {
    uint64_t bps;     /* bytes per second; 0: unlimited (every ticket is due) */
    double burst;     /* the most tokens that gather while nobody takes */
    double level;     /* tokens in the bucket; below 0: promised to waiting takers */
    double made;      /* tokens made since init (refills and refunds): tickets count on it */
    uint64_t last_ns; /* when the bucket was last refilled */
};

/* Bytes a taker should ask for at once at bps: about 1/16 s of it, from
 * RATE_UNIT_MIN to RATE_UNIT_MAX. SIZE_MAX when bps is 0 (no limit). */
size_t rate_unit(uint64_t bps);

/* Tokens that may gather while nobody takes: the larger of one unit and
 * 1/16 s of bps, so that at most that much goes out above the rate after
 * a pause (well inside 5% over 10 s). 0 when bps is 0. */
uint64_t rate_burst(uint64_t bps);

/* A bucket of bps (0: unlimited), full (its burst) at now_ns. */
void rate_bucket_init(struct rate_bucket *b, uint64_t bps, uint64_t now_ns);

/* Changes the rate at now_ns. Tokens made so far at the old rate stay; what
 * is promised to waiters is paid at the new one. From unlimited, the bucket
 * starts full. */
void rate_bucket_set(struct rate_bucket *b, uint64_t bps, uint64_t now_ns);

/* Takes n tokens at now_ns, going below 0 if need be. Returns the taker's
 * ticket: rate_bucket_wait_ns() says when it is due. */
double rate_bucket_reserve(struct rate_bucket *b, uint64_t n, uint64_t now_ns);

/* Nanoseconds from now_ns until ticket is due at the current rate; 0 when
 * it is (always, at no limit). Refills the bucket up to now_ns. */
uint64_t rate_bucket_wait_ns(struct rate_bucket *b, double ticket, uint64_t now_ns);

/* Gives back n tokens taken and not used (a taker cut while waiting, a
 * write that failed): every ticket behind moves ahead by n. The level
 * never goes above the burst. A no-op at no limit. */
void rate_bucket_refund(struct rate_bucket *b, uint64_t n, uint64_t now_ns);

/* Parses a rate: decimal digits, optionally followed by one suffix K, M
 * or G (either case; powers of 1024, like nginx's limit_rate and curl's
 * --limit-rate), nothing else (no spaces, no sign, no fraction). 0 means
 * no limit; anything else must be RATE_MIN..RATE_MAX. A pure function of
 * (s, n): FS_OK with *out, or FS_EINVAL with *why, a constant string
 * saying what is wrong. */
fs_status rate_parse(const char *s, size_t n, uint64_t *out, const char **why);

/* --- the bucket for threads --- */

struct rate;

/* A bucket of bps (0: unlimited). NULL when out of memory. The caller owns
 * it: rate_free(), once no thread uses it. */
struct rate *rate_new(uint64_t bps);
void rate_free(struct rate *r);

/* Changes the rate live; every waiter wakes to count again. */
void rate_set(struct rate *r, uint64_t bps);
uint64_t rate_get(struct rate *r);

/* How many of want bytes to move before the next rate_take(): want at no
 * limit, else at most rate_unit() of the current rate. */
size_t rate_chunk(struct rate *r, size_t want);

/* Takes n tokens, sleeping until they are due (never spinning; n should be
 * what rate_chunk() said). timeout_ms < 0: no timeout. FS_OK; FS_ETIMEDOUT
 * when they would not be due within timeout_ms; FS_ECANCELED once
 * rate_close() was called. On failure the tokens are given back. *waited_ms
 * (may be NULL) gets the time slept, so that callers can leave it out of
 * their own judgements of slowness. */
fs_status rate_take(struct rate *r, size_t n, int timeout_ms, uint64_t *waited_ms);

/* Gives back n tokens taken with rate_take() and not used. */
void rate_refund(struct rate *r, size_t n);

/* Wakes every waiter, which returns FS_ECANCELED, as does every later
 * rate_take(): the peer is stopping. */
void rate_close(struct rate *r);

#endif
