/* trace.c - trace events: the ring and the subscribers (the formats are
 * in tracefmt.c). */
#include "floodshare/trace.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* One subscriber's queue: q[head..head+len) mod TRACE_QUEUE. lost counts
 * events dropped because the queue was full and not yet reported. Guarded
 * by the trace's lock. */
struct trace_sub {
    struct trace_event *q;
    size_t head, len;
    uint64_t lost;
};

/* lock guards everything below it; cond is broadcast when an event is
 * queued for a subscriber, and when a subscriber takes one (trace_drain).
 * n_subs mirrors the number of subs[] in use, readable without the lock
 * so that emitters skip the subscribers when nobody listens. */
struct trace {
    atomic_uint n_subs;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    unsigned peer;
    struct fs_addr addr;
    struct trace_event *ring;
    size_t cap, head, len; /* ring[head..head+len) mod cap, oldest first */
    uint64_t seq;
    struct trace_sub *subs[TRACE_MAX_SUBS];
};

struct trace *trace_new(size_t ring, unsigned peer, const struct fs_addr *addr)
{
    struct trace *t = calloc(1, sizeof *t);
    pthread_condattr_t ca;

    if (!t)
        return NULL;
    /* calloc: the pages of a ring nobody fills are never touched. */
    t->ring = calloc(ring ? ring : 1, sizeof *t->ring);
    if (!t->ring) {
        free(t);
        return NULL;
    }
    t->cap = ring ? ring : 1;
    t->peer = peer;
    if (addr)
        t->addr = *addr;
    pthread_mutex_init(&t->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&t->cond, &ca);
    pthread_condattr_destroy(&ca);
    return t;
}

void trace_free(struct trace *t)
{
    if (!t)
        return;
    for (int i = 0; i < TRACE_MAX_SUBS; i++) {
        if (t->subs[i]) {
            free(t->subs[i]->q);
            free(t->subs[i]);
        }
    }
    pthread_cond_destroy(&t->cond);
    pthread_mutex_destroy(&t->lock);
    free(t->ring);
    free(t);
}

void trace_set(char *dst, size_t cap, const char *src)
{
    size_t n = src ? strnlen(src, cap - 1) : 0;

    if (cap == 0)
        return;
    memcpy(dst, src ? src : "", n);
    dst[n] = '\0';
}

void trace_init_event(struct trace_event *ev, enum trace_type type, const char *qid)
{
    memset(ev, 0, sizeof *ev);
    ev->type = type;
    trace_set(ev->qid, sizeof ev->qid, qid);
}

static uint64_t wall_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Queues ev for s; a full queue drops it and counts it lost. A loss is
 * reported in line, before the next event that fits, so a reader sees
 * where the gap was. Under t->lock. */
static void sub_push(struct trace_sub *s, const struct trace_event *ev)
{
    if (s->lost && s->len < TRACE_QUEUE) {
        struct trace_event *l = &s->q[(s->head + s->len++) % TRACE_QUEUE];
        trace_init_event(l, TR_LOST, NULL);
        l->ts_us = ev->ts_us;
        l->peer = ev->peer;
        l->addr = ev->addr;
        l->count = (unsigned)(s->lost > UINT32_MAX ? UINT32_MAX : s->lost);
        s->lost = 0;
    }
    if (s->len == TRACE_QUEUE) {
        s->lost++;
        return;
    }
    s->q[(s->head + s->len++) % TRACE_QUEUE] = *ev;
}

int trace_listening(const struct trace *t)
{
    return t && atomic_load_explicit(&t->n_subs, memory_order_relaxed) > 0;
}

void trace_emit(struct trace *t, struct trace_event *ev)
{
    if (!t)
        return;
    int live = trace_listening(t);
    if (ev->type == TR_TRANSFER_PROGRESS && !live)
        return;
    pthread_mutex_lock(&t->lock);
    /* Stamped under the lock: within one peer, seq order is time order. */
    ev->ts_us = wall_us();
    ev->seq = ++t->seq;
    ev->peer = t->peer;
    ev->addr = t->addr;
    if (ev->type != TR_TRANSFER_PROGRESS) {
        if (t->len < t->cap) {
            t->ring[(t->head + t->len++) % t->cap] = *ev;
        } else {
            t->ring[t->head] = *ev;
            t->head = (t->head + 1) % t->cap;
        }
    }
    if (live) {
        for (int i = 0; i < TRACE_MAX_SUBS; i++)
            if (t->subs[i])
                sub_push(t->subs[i], ev);
        pthread_cond_broadcast(&t->cond);
    }
    pthread_mutex_unlock(&t->lock);
}

static int qid_matches(const char *qid, const char *prefix)
{
    size_t n = prefix ? strlen(prefix) : 0;
    return n == 0 || (qid[0] && strncmp(qid, prefix, n) == 0);
}

size_t trace_dump(struct trace *t, const char *qid_prefix, struct trace_event **out)
{
    size_t n = 0;

    *out = NULL;
    pthread_mutex_lock(&t->lock);
    for (size_t i = 0; i < t->len; i++)
        n += qid_matches(t->ring[(t->head + i) % t->cap].qid, qid_prefix);
    if (n > 0)
        *out = malloc(n * sizeof **out);
    if (*out) {
        size_t k = 0;
        for (size_t i = 0; i < t->len; i++) {
            const struct trace_event *e = &t->ring[(t->head + i) % t->cap];
            if (qid_matches(e->qid, qid_prefix))
                (*out)[k++] = *e;
        }
    } else {
        n = 0;
    }
    pthread_mutex_unlock(&t->lock);
    return n;
}

void trace_get_info(struct trace *t, struct trace_info *out)
{
    pthread_mutex_lock(&t->lock);
    out->subscribers = atomic_load(&t->n_subs);
    out->emitted = t->seq;
    out->in_ring = t->len;
    out->ring = t->cap;
    pthread_mutex_unlock(&t->lock);
}

/* 1 if path is `dir` itself or lies below it. */
static int path_under(const char *path, const char *dir)
{
    size_t n = strlen(dir);
    return n > 0 && strncmp(path, dir, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

int trace_find_hit(struct trace *t, const char *md5, const char *path, struct trace_event *out)
{
    int found = 0;

    pthread_mutex_lock(&t->lock);
    for (size_t i = t->len; i-- > 0 && !found;) {
        const struct trace_event *e = &t->ring[(t->head + i) % t->cap];
        if (e->type != TR_FOUND_SENT)
            continue;
        if ((md5 && strcmp(e->md5, md5) == 0) || (path && path_under(path, e->name))) {
            *out = *e;
            found = 1;
        }
    }
    pthread_mutex_unlock(&t->lock);
    return found;
}

/* --- subscribers --- */

struct trace_sub *trace_subscribe(struct trace *t)
{
    struct trace_sub *s = calloc(1, sizeof *s);

    if (s)
        s->q = malloc(TRACE_QUEUE * sizeof *s->q);
    if (!s || !s->q) {
        free(s);
        return NULL;
    }
    pthread_mutex_lock(&t->lock);
    for (int i = 0; i < TRACE_MAX_SUBS; i++) {
        if (!t->subs[i]) {
            t->subs[i] = s;
            atomic_fetch_add(&t->n_subs, 1);
            pthread_mutex_unlock(&t->lock);
            return s;
        }
    }
    pthread_mutex_unlock(&t->lock);
    free(s->q);
    free(s);
    return NULL;
}

void trace_unsubscribe(struct trace *t, struct trace_sub *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&t->lock);
    for (int i = 0; i < TRACE_MAX_SUBS; i++) {
        if (t->subs[i] == s) {
            t->subs[i] = NULL;
            atomic_fetch_sub(&t->n_subs, 1);
        }
    }
    pthread_cond_broadcast(&t->cond); /* a drain may be waiting for this queue */
    pthread_mutex_unlock(&t->lock);
    free(s->q);
    free(s);
}

static void deadline_in(struct timespec *ts, int ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

int trace_next(struct trace *t, struct trace_sub *s, int timeout_ms, struct trace_event *ev)
{
    struct timespec until;
    int got = 0, timed_out = 0;

    deadline_in(&until, timeout_ms);
    pthread_mutex_lock(&t->lock);
    while (!got && !timed_out) {
        if (s->len > 0) {
            *ev = s->q[s->head];
            s->head = (s->head + 1) % TRACE_QUEUE;
            s->len--;
            got = 1;
        } else if (s->lost > 0) { /* the loss was the last thing that happened */
            trace_init_event(ev, TR_LOST, NULL);
            ev->ts_us = wall_us();
            ev->peer = t->peer;
            ev->addr = t->addr;
            ev->count = (unsigned)(s->lost > UINT32_MAX ? UINT32_MAX : s->lost);
            s->lost = 0;
            got = 1;
        } else if (timeout_ms <= 0 || pthread_cond_timedwait(&t->cond, &t->lock, &until) != 0) {
            timed_out = 1;
        }
    }
    if (got)
        pthread_cond_broadcast(&t->cond);
    pthread_mutex_unlock(&t->lock);
    return got;
}

static int all_drained(struct trace *t)
{
    for (int i = 0; i < TRACE_MAX_SUBS; i++)
        if (t->subs[i] && (t->subs[i]->len > 0 || t->subs[i]->lost > 0))
            return 0;
    return 1;
}

void trace_drain(struct trace *t, int timeout_ms)
{
    struct timespec until;

    if (!t)
        return;
    deadline_in(&until, timeout_ms);
    pthread_mutex_lock(&t->lock);
    while (!all_drained(t))
        if (pthread_cond_timedwait(&t->cond, &t->lock, &until) != 0)
            break;
    pthread_mutex_unlock(&t->lock);
}
