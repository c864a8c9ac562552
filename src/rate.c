/* rate.c - token buckets for [limits] upload_rate and download_rate. */
#include "floodshare/rate.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#define NS_PER_S 1000000000.0

/* --- the arithmetic --- */

size_t rate_unit(uint64_t bps)
{
    if (bps == 0)
        return SIZE_MAX;
    uint64_t u = bps / 16;
    return u < RATE_UNIT_MIN ? RATE_UNIT_MIN : u > RATE_UNIT_MAX ? RATE_UNIT_MAX : (size_t)u;
}

uint64_t rate_burst(uint64_t bps)
{
    if (bps == 0)
        return 0;
    uint64_t u = rate_unit(bps);
    return bps / 16 > u ? bps / 16 : u;
}

void rate_bucket_init(struct rate_bucket *b, uint64_t bps, uint64_t now_ns)
{
    b->bps = bps;
    b->burst = (double)rate_burst(bps);
    b->level = b->burst;
    b->made = 0;
    b->last_ns = now_ns;
}

/* Adds what the rate made since the last refill; the level stops at the
 * burst. Capping never strands a ticket: a ticket is only above `made`
 * while the level is below 0. */
static void refill(struct rate_bucket *b, uint64_t now_ns)
{
    if (now_ns <= b->last_ns)
        return;
    if (b->bps) {
        double add = (double)b->bps * (double)(now_ns - b->last_ns) / NS_PER_S;
        b->made += add;
        b->level += add;
        if (b->level > b->burst)
            b->level = b->burst;
    }
    b->last_ns = now_ns;
}

void rate_bucket_set(struct rate_bucket *b, uint64_t bps, uint64_t now_ns)
{
    refill(b, now_ns);
    if (bps && b->bps == 0) {
        b->burst = (double)rate_burst(bps);
        b->level = b->burst;
    } else if (bps) {
        b->burst = (double)rate_burst(bps);
        if (b->level > b->burst)
            b->level = b->burst;
    }
    b->bps = bps;
    b->last_ns = now_ns > b->last_ns ? now_ns : b->last_ns;
}

double rate_bucket_reserve(struct rate_bucket *b, uint64_t n, uint64_t now_ns)
{
    refill(b, now_ns);
    if (b->bps == 0)
        return b->made;
    b->level -= (double)n;
    return b->level >= 0 ? b->made : b->made - b->level;
}

uint64_t rate_bucket_wait_ns(struct rate_bucket *b, double ticket, uint64_t now_ns)
{
    refill(b, now_ns);
    if (b->bps == 0 || b->made >= ticket)
        return 0;
    double ns = (ticket - b->made) * NS_PER_S / (double)b->bps;
    return ns < 1 ? 1 : (uint64_t)ns + 1; /* +1: due, not a hair before */
}

void rate_bucket_refund(struct rate_bucket *b, uint64_t n, uint64_t now_ns)
{
    refill(b, now_ns);
    if (b->bps == 0)
        return;
    b->made += (double)n;
    b->level += (double)n;
    if (b->level > b->burst)
        b->level = b->burst;
}

fs_status rate_parse(const char *s, size_t n, uint64_t *out, const char **why)
{
    uint64_t v = 0, mul = 1;
    size_t i = 0;

    *out = 0;
    *why = NULL;
    for (; i < n && s[i] >= '0' && s[i] <= '9'; i++)
        if (v <= RATE_MAX) /* saturates: anything this large is out of range anyway */
            v = v * 10 + (uint64_t)(s[i] - '0');
    if (i == 0) {
        *why = "is not a rate (bytes per second: digits, then K, M or G, or 0 for none)";
        return FS_EINVAL;
    }
    if (i < n) {
        switch (s[i]) {
        case 'k': case 'K': mul = 1024; break;
        case 'm': case 'M': mul = 1024 * 1024; break;
        case 'g': case 'G': mul = 1024 * 1024 * 1024; break;
        default:
            *why = "has an unknown suffix (K, M or G, powers of 1024)";
            return FS_EINVAL;
        }
        if (++i < n) {
            *why = "has something after its suffix (K, M or G, powers of 1024)";
            return FS_EINVAL;
        }
    }
    if (v > RATE_MAX / mul || (v && v * mul < RATE_MIN)) {
        *why = "is out of range (0 for no limit, else 1K..64G bytes per second)";
        return FS_EINVAL;
    }
    *out = v * mul;
    return FS_OK;
}

/* --- for threads --- */

/* lock guards b; cond wakes waiters on a rate change, a
 * refund or rate_close(). bps mirrors b.bps, and closed is atomic, for the
 * fast path of an unlimited bucket, which takes no lock. */
struct rate {
    pthread_mutex_t lock;
    pthread_cond_t cond; /* on CLOCK_MONOTONIC */
    struct rate_bucket b;
    _Atomic int closed;
    _Atomic uint64_t bps;
};

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

struct rate *rate_new(uint64_t bps)
{
    struct rate *r = calloc(1, sizeof *r);
    pthread_condattr_t ca;

    if (!r)
        return NULL;
    if (pthread_condattr_init(&ca) != 0) {
        free(r);
        return NULL;
    }
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int rc = pthread_cond_init(&r->cond, &ca);
    pthread_condattr_destroy(&ca);
    if (rc != 0 || pthread_mutex_init(&r->lock, NULL) != 0) {
        if (rc == 0)
            pthread_cond_destroy(&r->cond);
        free(r);
        return NULL;
    }
    rate_bucket_init(&r->b, bps, now_ns());
    atomic_store(&r->bps, bps);
    return r;
}

void rate_free(struct rate *r)
{
    if (!r)
        return;
    pthread_cond_destroy(&r->cond);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

void rate_set(struct rate *r, uint64_t bps)
{
    pthread_mutex_lock(&r->lock);
    rate_bucket_set(&r->b, bps, now_ns());
    atomic_store(&r->bps, bps);
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->lock);
}

uint64_t rate_get(struct rate *r)
{
    return atomic_load(&r->bps);
}

size_t rate_chunk(struct rate *r, size_t want)
{
    size_t u = rate_unit(atomic_load(&r->bps));
    return want < u ? want : u;
}

fs_status rate_take(struct rate *r, size_t n, int timeout_ms, uint64_t *waited_ms)
{
    fs_status st = FS_OK;

    if (waited_ms)
        *waited_ms = 0;
    if (atomic_load(&r->bps) == 0) /* no limit: no lock, no clock */
        return atomic_load(&r->closed) ? FS_ECANCELED : FS_OK;
    pthread_mutex_lock(&r->lock);
    if (r->closed) {
        pthread_mutex_unlock(&r->lock);
        return FS_ECANCELED;
    }
    uint64_t t0 = now_ns(), now = t0;
    uint64_t deadline = timeout_ms < 0 ? UINT64_MAX : t0 + (uint64_t)timeout_ms * 1000000u;
    double ticket = rate_bucket_reserve(&r->b, n, t0);
    for (;;) {
        uint64_t w = rate_bucket_wait_ns(&r->b, ticket, now);
        if (w == 0)
            break;
        if (r->closed || now >= deadline || (deadline - now < w && timeout_ms >= 0)) {
            /* Cut, or it would not be due in time: what was promised goes
             * back to the takers behind. */
            rate_bucket_refund(&r->b, n, now);
            pthread_cond_broadcast(&r->cond);
            st = r->closed ? FS_ECANCELED : FS_ETIMEDOUT;
            break;
        }
        uint64_t until = now + w;
        struct timespec ts = {.tv_sec = (time_t)(until / 1000000000u),
                              .tv_nsec = (long)(until % 1000000000u)};
        int rc = pthread_cond_timedwait(&r->cond, &r->lock, &ts);
        if (rc != 0 && rc != ETIMEDOUT && rc != EINTR)
            abort(); /* EINVAL: a bug in the time above */
        now = now_ns();
    }
    pthread_mutex_unlock(&r->lock);
    if (waited_ms)
        *waited_ms = (now - t0) / 1000000u;
    return st;
}

void rate_refund(struct rate *r, size_t n)
{
    if (n == 0)
        return;
    pthread_mutex_lock(&r->lock);
    rate_bucket_refund(&r->b, n, now_ns());
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->lock);
}

void rate_close(struct rate *r)
{
    pthread_mutex_lock(&r->lock);
    r->closed = 1;
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->lock);
}
