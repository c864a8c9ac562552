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

/* Where one kept event lies in the byte ring. */
struct slot {
    uint32_t off;  /* its record starts at bytes[off] (and may wrap to bytes[0]) */
    uint16_t len;  /* the record's length */
    uint8_t type;  /* enum trace_type: trace_find_hit skips other types undecoded */
};

/* lock guards everything below it; cond is broadcast when an event is
 * queued for a subscriber, and when a subscriber takes one (trace_drain).
 * n_subs mirrors the number of subs[] in use, readable without the lock
 * so that emitters skip the subscribers when nobody listens.
 *
 * The ring keeps events packed (record_pack below), not as structs: a
 * struct trace_event is 824 bytes, mostly empty fields, and a ring of 4096
 * of them (3.3 MiB) was most of the private memory of a busy peer. The
 * records lie back to back in bytes[], the newest ending where the next
 * one goes; slots[] says where each is, oldest first. An event is dropped
 * from the ring when `cap` newer ones are kept, or when the records would
 * take more than bcap bytes. */
struct trace {
    atomic_uint n_subs;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    unsigned peer;
    struct fs_addr addr;
    struct slot *slots;
    size_t cap, head, len; /* slots[head..head+len) mod cap, oldest first */
    unsigned char *bytes;
    size_t bcap, bused;    /* bytes[] holds bused bytes of records */
    uint64_t seq;
    uint64_t started_us;
    struct trace_sub *subs[TRACE_MAX_SUBS];
};

/* ---------------------------------------------------------- records
 *
 * A record: the qid (a length byte, then its characters), the type (a
 * byte), ts_us (8 bytes), seq (a varint), a varint mask of the fields
 * that are set, then those fields in mask order: numbers as varints,
 * strings as a length byte and their characters, addresses as a string
 * and a 2-byte port. peer and addr are the trace's own, so not stored. */

enum {
    F_NAME = 1u << 0, F_FROM = 1u << 1, F_FROM_PEER = 1u << 2, F_TO = 1u << 3,
    F_TO_PEER = 1u << 4, F_ORIGIN = 1u << 5, F_HOLDER = 1u << 6, F_TTL = 1u << 7,
    F_HOPS = 1u << 8, F_COUNT = 1u << 9, F_ROLE = 1u << 10, F_BYTES = 1u << 11,
    F_SIZE = 1u << 12, F_MD5 = 1u << 13, F_REASON = 1u << 14, F_DETAIL = 1u << 15,
    F_MSG = 1u << 16, F_SOURCE_BYTES = 1u << 17,
};

/* The longest record: every field set, every string as long as it can be. */
#define REC_MAX                                                                      \
    (1 + MSG_QID_LEN + 1 + 8 + 10 + 3 + (1 + TRACE_NAME_MAX) + 3 * (1 + ADDR_HOST_MAX + 2) + \
     7 * 5 + 3 * 10 + (1 + MSG_MD5_LEN) + 32 + (1 + TRACE_DETAIL_MAX) + 8)
_Static_assert(REC_MAX <= UINT16_MAX, "a record's length fits its slot");

/* Bytes of ring per event kept: a GET's events pack into 60-120 bytes
 * (qid, name, one or two addresses, ttl, hops), so `ring` ordinary events
 * fit; events with long names or details keep fewer. */
#define BYTES_PER_EVENT 128

struct wr {
    unsigned char *p;
    size_t n;
};

static void put_u8(struct wr *w, unsigned v)
{
    w->p[w->n++] = (unsigned char)v;
}

static void put_var(struct wr *w, uint64_t v)
{
    while (v >= 0x80) {
        put_u8(w, (unsigned)(v & 0x7f) | 0x80);
        v >>= 7;
    }
    put_u8(w, (unsigned)v);
}

/* s is a NUL-terminated field of cap bytes: at most cap - 1 (< 256) characters. */
static void put_str(struct wr *w, const char *s, size_t cap)
{
    size_t n = strnlen(s, cap - 1);

    put_u8(w, (unsigned)n);
    memcpy(w->p + w->n, s, n);
    w->n += n;
}

static void put_addr(struct wr *w, const struct fs_addr *a)
{
    put_str(w, a->host, sizeof a->host);
    put_u8(w, a->port >> 8);
    put_u8(w, a->port & 0xff);
}

static int addr_set(const struct fs_addr *a)
{
    return a->port != 0 || a->host[0] != '\0';
}

/* Packs ev into out[REC_MAX]; returns the record's length. */
static size_t record_pack(const struct trace_event *ev, unsigned char *out)
{
    struct wr w = {out, 0};
    uint32_t mask = (ev->name[0] ? F_NAME : 0) | (addr_set(&ev->from) ? F_FROM : 0) |
                    (ev->from_peer ? F_FROM_PEER : 0) | (addr_set(&ev->to) ? F_TO : 0) |
                    (ev->to_peer ? F_TO_PEER : 0) | (addr_set(&ev->origin) ? F_ORIGIN : 0) |
                    (ev->holder ? F_HOLDER : 0) | (ev->ttl ? F_TTL : 0) |
                    (ev->hops ? F_HOPS : 0) | (ev->count ? F_COUNT : 0) |
                    (ev->role ? F_ROLE : 0) | (ev->bytes ? F_BYTES : 0) |
                    (ev->size ? F_SIZE : 0) | (ev->md5[0] ? F_MD5 : 0) |
                    (ev->reason[0] ? F_REASON : 0) | (ev->detail[0] ? F_DETAIL : 0) |
                    (ev->msg[0] ? F_MSG : 0) | (ev->source_bytes ? F_SOURCE_BYTES : 0);

    put_str(&w, ev->qid, sizeof ev->qid);
    put_u8(&w, (unsigned)ev->type);
    for (int i = 0; i < 8; i++)
        put_u8(&w, (unsigned)(ev->ts_us >> (8 * i)) & 0xff);
    put_var(&w, ev->seq);
    put_var(&w, mask);
    if (mask & F_NAME) put_str(&w, ev->name, sizeof ev->name);
    if (mask & F_FROM) put_addr(&w, &ev->from);
    if (mask & F_FROM_PEER) put_var(&w, ev->from_peer);
    if (mask & F_TO) put_addr(&w, &ev->to);
    if (mask & F_TO_PEER) put_var(&w, ev->to_peer);
    if (mask & F_ORIGIN) put_addr(&w, &ev->origin);
    if (mask & F_HOLDER) put_var(&w, ev->holder);
    if (mask & F_TTL) put_var(&w, ev->ttl);
    if (mask & F_HOPS) put_var(&w, ev->hops);
    if (mask & F_COUNT) put_var(&w, ev->count);
    if (mask & F_ROLE) put_var(&w, (unsigned)ev->role);
    if (mask & F_BYTES) put_var(&w, ev->bytes);
    if (mask & F_SIZE) put_var(&w, ev->size);
    if (mask & F_MD5) put_str(&w, ev->md5, sizeof ev->md5);
    if (mask & F_REASON) put_str(&w, ev->reason, sizeof ev->reason);
    if (mask & F_DETAIL) put_str(&w, ev->detail, sizeof ev->detail);
    if (mask & F_MSG) put_str(&w, ev->msg, sizeof ev->msg);
    if (mask & F_SOURCE_BYTES) put_var(&w, ev->source_bytes);
    return w.n;
}

struct rd {
    const unsigned char *p;
    size_t n;
};

static unsigned get_u8(struct rd *r)
{
    return r->p[r->n++];
}

static uint64_t get_var(struct rd *r)
{
    uint64_t v = 0;

    for (unsigned shift = 0;; shift += 7) {
        unsigned b = get_u8(r);
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            return v;
    }
}

/* Only records record_pack made are read, so lengths fit their fields. */
static void get_str(struct rd *r, char *dst)
{
    size_t n = get_u8(r);

    memcpy(dst, r->p + r->n, n);
    dst[n] = '\0';
    r->n += n;
}

static void get_addr(struct rd *r, struct fs_addr *a)
{
    get_str(r, a->host);
    a->port = (uint16_t)(get_u8(r) << 8);
    a->port |= (uint16_t)get_u8(r);
}

/* Unpacks a record into *ev; peer and addr are the trace's. */
static void record_unpack(const struct trace *t, const unsigned char *rec, struct trace_event *ev)
{
    struct rd r = {rec, 0};

    memset(ev, 0, sizeof *ev);
    get_str(&r, ev->qid);
    ev->type = (enum trace_type)get_u8(&r);
    for (int i = 0; i < 8; i++)
        ev->ts_us |= (uint64_t)get_u8(&r) << (8 * i);
    ev->seq = get_var(&r);
    uint32_t mask = (uint32_t)get_var(&r);
    ev->peer = t->peer;
    ev->addr = t->addr;
    if (mask & F_NAME) get_str(&r, ev->name);
    if (mask & F_FROM) get_addr(&r, &ev->from);
    if (mask & F_FROM_PEER) ev->from_peer = (unsigned)get_var(&r);
    if (mask & F_TO) get_addr(&r, &ev->to);
    if (mask & F_TO_PEER) ev->to_peer = (unsigned)get_var(&r);
    if (mask & F_ORIGIN) get_addr(&r, &ev->origin);
    if (mask & F_HOLDER) ev->holder = (unsigned)get_var(&r);
    if (mask & F_TTL) ev->ttl = (unsigned)get_var(&r);
    if (mask & F_HOPS) ev->hops = (unsigned)get_var(&r);
    if (mask & F_COUNT) ev->count = (unsigned)get_var(&r);
    if (mask & F_ROLE) ev->role = (enum trace_role)get_var(&r);
    if (mask & F_BYTES) ev->bytes = get_var(&r);
    if (mask & F_SIZE) ev->size = get_var(&r);
    if (mask & F_MD5) get_str(&r, ev->md5);
    if (mask & F_REASON) get_str(&r, ev->reason);
    if (mask & F_DETAIL) get_str(&r, ev->detail);
    if (mask & F_MSG) get_str(&r, ev->msg);
    if (mask & F_SOURCE_BYTES) ev->source_bytes = get_var(&r);
}

/* The i-th kept event (0: the oldest), copied out of the ring into
 * rec[REC_MAX] (a record may wrap around the end of bytes[]). Under lock. */
static const unsigned char *record_at(const struct trace *t, size_t i, unsigned char *rec)
{
    const struct slot *s = &t->slots[(t->head + i) % t->cap];
    size_t first = t->bcap - s->off < s->len ? t->bcap - s->off : s->len;

    memcpy(rec, t->bytes + s->off, first);
    memcpy(rec + first, t->bytes, s->len - first);
    return rec;
}

/* Keeps a record of n bytes as the newest event, dropping the oldest
 * until both bounds hold. Under lock. */
static void ring_push(struct trace *t, const unsigned char *rec, size_t n, enum trace_type type)
{
    while (t->len > 0 && (t->len == t->cap || t->bused + n > t->bcap)) {
        t->bused -= t->slots[t->head].len;
        t->head = (t->head + 1) % t->cap;
        t->len--;
    }
    size_t off = 0;
    if (t->len > 0) {
        const struct slot *last = &t->slots[(t->head + t->len - 1) % t->cap];
        off = (last->off + last->len) % t->bcap;
    }
    size_t first = t->bcap - off < n ? t->bcap - off : n;
    memcpy(t->bytes + off, rec, first);
    memcpy(t->bytes, rec + first, n - first);
    t->slots[(t->head + t->len++) % t->cap] =
        (struct slot){.off = (uint32_t)off, .len = (uint16_t)n, .type = (uint8_t)type};
    t->bused += n;
}

static uint64_t wall_us(void);

struct trace *trace_new(size_t ring, unsigned peer, const struct fs_addr *addr)
{
    struct trace *t = calloc(1, sizeof *t);
    pthread_condattr_t ca;

    if (!t)
        return NULL;
    /* calloc: the pages of a ring nobody fills are never touched. */
    t->cap = ring ? ring : 1;
    t->bcap = t->cap * BYTES_PER_EVENT;
    if (t->bcap < 4 * REC_MAX) /* a small ring still keeps a few of the longest events */
        t->bcap = 4 * REC_MAX;
    if (t->cap > SIZE_MAX / BYTES_PER_EVENT || t->bcap > UINT32_MAX) {
        free(t);
        return NULL;
    }
    t->slots = calloc(t->cap, sizeof *t->slots);
    t->bytes = calloc(t->bcap, 1);
    if (!t->slots || !t->bytes) {
        free(t->slots);
        free(t->bytes);
        free(t);
        return NULL;
    }
    t->peer = peer;
    t->started_us = wall_us();
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
    free(t->slots);
    free(t->bytes);
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

int trace_live_only(enum trace_type type)
{
    return type == TR_TRANSFER_PROGRESS || type == TR_PIECE_RECEIVED;
}

void trace_emit(struct trace *t, struct trace_event *ev)
{
    if (!t)
        return;
    int live = trace_listening(t);
    int ring = !trace_live_only(ev->type);
    if (!ring && !live)
        return;
    pthread_mutex_lock(&t->lock);
    /* Stamped under the lock: within one peer, seq order is time order. */
    ev->ts_us = wall_us();
    ev->seq = ++t->seq;
    ev->peer = t->peer;
    ev->addr = t->addr;
    if (ring) {
        unsigned char rec[REC_MAX];
        ring_push(t, rec, record_pack(ev, rec), ev->type);
    }
    if (live) {
        for (int i = 0; i < TRACE_MAX_SUBS; i++)
            if (t->subs[i])
                sub_push(t->subs[i], ev);
        pthread_cond_broadcast(&t->cond);
    }
    pthread_mutex_unlock(&t->lock);
}

/* 1 if record rec's qid starts with prefix. */
static int record_matches(const unsigned char *rec, const char *prefix)
{
    size_t n = prefix ? strlen(prefix) : 0;
    return n == 0 || (rec[0] >= n && memcmp(rec + 1, prefix, n) == 0);
}

size_t trace_dump(struct trace *t, const char *qid_prefix, struct trace_event **out)
{
    unsigned char rec[REC_MAX];
    size_t n = 0;

    *out = NULL;
    pthread_mutex_lock(&t->lock);
    for (size_t i = 0; i < t->len; i++)
        n += record_matches(record_at(t, i, rec), qid_prefix);
    if (n > 0)
        *out = malloc(n * sizeof **out);
    if (*out) {
        size_t k = 0;
        for (size_t i = 0; i < t->len; i++)
            if (record_matches(record_at(t, i, rec), qid_prefix))
                record_unpack(t, rec, &(*out)[k++]);
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
    out->started_us = t->started_us;
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
    unsigned char rec[REC_MAX];
    struct trace_event e;
    int found = 0;

    pthread_mutex_lock(&t->lock);
    for (size_t i = t->len; i-- > 0 && !found;) {
        if (t->slots[(t->head + i) % t->cap].type != TR_FOUND_SENT)
            continue;
        record_unpack(t, record_at(t, i, rec), &e);
        if ((md5 && strcmp(e.md5, md5) == 0) || (path && path_under(path, e.name))) {
            *out = e;
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
