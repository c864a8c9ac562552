/* sched.c - the swarming scheduler's rules (sched.h, docs/SWARMING.md). */
#include "floodshare/sched.h"

#include <stdlib.h>
#include <string.h>

struct source {
    enum sched_state state;
    char holder[ADDR_STR_MAX];
    unsigned link;
    uint32_t a, b, next;   /* request [a, b); next: the piece it is reading */
    uint64_t got;          /* bytes of piece `next` received so far */
    int started;           /* start_ms is set (first sched_next) */
    uint64_t start_ms;
    int have_first;        /* first_ms is set (first byte) */
    uint64_t first_ms;
    uint64_t bucket[SCHED_RATE_BUCKETS];
    uint64_t epoch[SCHED_RATE_BUCKETS]; /* now_ms / bucket ms of each bucket */
    uint32_t pieces;       /* NEW pieces delivered */
};

struct sched {
    uint64_t size;
    uint32_t piece, npieces, nhave, nclaimed;
    unsigned k;
    uint32_t lo;           /* no piece below lo is MISSING */
    uint64_t *have, *claimed;
    struct source src[SCHED_SOURCES_MAX];
};

static int bit(const uint64_t *m, uint32_t i) { return (int)((m[i / 64] >> (i % 64)) & 1u); }
static void bit_set(uint64_t *m, uint32_t i) { m[i / 64] |= (uint64_t)1 << (i % 64); }
static void bit_clear(uint64_t *m, uint32_t i) { m[i / 64] &= ~((uint64_t)1 << (i % 64)); }

static int live(const struct source *t)
{
    return t->state == SCHED_CONNECTING || t->state == SCHED_ACTIVE ||
           t->state == SCHED_BUSY || t->state == SCHED_SRC_IDLE;
}

static int valid_src(const struct sched *s, int src)
{
    return s && src >= 0 && src < SCHED_SOURCES_MAX && live(&s->src[src]);
}

struct sched *sched_new(uint64_t size, uint32_t piece, unsigned k)
{
    struct sched *s;
    uint64_t n, words;

    if (piece == 0 || k == 0 || k > SCHED_SOURCES_MAX)
        return NULL;
    n = size / piece + (size % piece != 0);
    if (n > SCHED_PIECES_MAX)
        return NULL;
    s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    words = n / 64 + 1;
    s->have = calloc(words, sizeof *s->have);
    s->claimed = calloc(words, sizeof *s->claimed);
    if (!s->have || !s->claimed) {
        sched_free(s);
        return NULL;
    }
    s->size = size;
    s->piece = piece;
    s->npieces = (uint32_t)n;
    s->k = k;
    return s;
}

void sched_free(struct sched *s)
{
    if (!s)
        return;
    free(s->have);
    free(s->claimed);
    free(s);
}

/* Live requests covering piece i, not counting row skip (-1: none). */
static unsigned copies_but(const struct sched *s, uint32_t i, int skip)
{
    unsigned c = 0;

    for (int t = 0; t < SCHED_SOURCES_MAX; t++)
        if (t != skip && live(&s->src[t]) && s->src[t].next <= i && i < s->src[t].b)
            c++;
    return c;
}

static int is_missing(const struct sched *s, uint32_t i)
{
    return !bit(s->have, i) && !bit(s->claimed, i) && copies_but(s, i, -1) == 0;
}

/* Lowest MISSING piece at or after s->lo, or npieces. Skips whole words of
 * HAVE|CLAIMED, and a covered piece jumps to the end of the request over it. */
static uint32_t lowest_missing(struct sched *s)
{
    uint32_t i = s->lo;

    while (i < s->npieces) {
        uint64_t w = (s->have[i / 64] | s->claimed[i / 64]) >> (i % 64);
        uint32_t jump = i + 1;

        if (i % 64 == 0 && w == UINT64_MAX) {
            i += 64;
            continue;
        }
        if (!(w & 1u)) {
            jump = i;
            for (int t = 0; t < SCHED_SOURCES_MAX; t++) {
                const struct source *o = &s->src[t];
                if (live(o) && o->next <= i && i < o->b && o->b > jump)
                    jump = o->b;
            }
            if (jump == i)
                break;
        }
        i = jump;
    }
    s->lo = i;
    return i;
}

static void release(struct sched *s, struct source *t)
{
    if (t->a < s->lo)
        s->lo = t->a;
    t->a = t->b = t->next = 0;
    t->got = 0;
}

uint32_t sched_missing_count(const struct sched *s)
{
    uint32_t inflight = 0;

    for (int t = 0; t < SCHED_SOURCES_MAX; t++) {
        const struct source *o = &s->src[t];
        if (!live(o))
            continue;
        for (uint32_t i = o->next; i < o->b; i++) {
            int earlier = 0;
            if (bit(s->have, i))
                continue;
            for (int u = 0; u < t; u++)
                if (live(&s->src[u]) && s->src[u].next <= i && i < s->src[u].b)
                    earlier = 1;
            inflight += !earlier;
        }
    }
    return s->npieces - s->nhave - s->nclaimed - inflight;
}

fs_status sched_set_have(struct sched *s, uint32_t i)
{
    if (i >= s->npieces)
        return FS_EINVAL;
    if (bit(s->claimed, i)) {
        bit_clear(s->claimed, i);
        s->nclaimed--;
    }
    if (!bit(s->have, i)) {
        bit_set(s->have, i);
        s->nhave++;
    }
    return FS_OK;
}

fs_status sched_set_claimed(struct sched *s, uint32_t i)
{
    if (i >= s->npieces || bit(s->have, i))
        return FS_EINVAL;
    if (!bit(s->claimed, i)) {
        bit_set(s->claimed, i);
        s->nclaimed++;
    }
    return FS_OK;
}

fs_status sched_claim_checked(struct sched *s, uint32_t i, int ok)
{
    if (i >= s->npieces || !bit(s->claimed, i))
        return FS_EINVAL;
    if (ok)
        return sched_set_have(s, i);
    bit_clear(s->claimed, i);
    s->nclaimed--;
    if (i < s->lo)
        s->lo = i;
    return FS_OK;
}

fs_status sched_add(struct sched *s, const char *holder, unsigned link,
                    int other_link_waiting, int *src)
{
    unsigned nlive = 0, onlink = 0;
    int row = -1;

    *src = -1;
    if (!holder || strlen(holder) >= ADDR_STR_MAX)
        return FS_EINVAL;
    for (int t = 0; t < SCHED_SOURCES_MAX; t++) {
        const struct source *o = &s->src[t];
        if (!live(o)) {
            if (row < 0 || (o->state == SCHED_FREE && s->src[row].state != SCHED_FREE))
                row = t; /* a never-used row first: ended rows keep their report longer */
            continue;
        }
        nlive++;
        onlink += o->link == link;
        if (strcmp(o->holder, holder) == 0)
            return FS_EEXIST;
    }
    if (nlive >= s->k || row < 0)
        return FS_ETOOBIG;
    if (other_link_waiting && onlink >= (s->k + 1) / 2)
        return FS_EREFUSED;
    memset(&s->src[row], 0, sizeof s->src[row]);
    s->src[row].state = SCHED_CONNECTING;
    memcpy(s->src[row].holder, holder, strlen(holder) + 1);
    s->src[row].link = link;
    *src = row;
    return FS_OK;
}

int64_t sched_source_rate(const struct sched *s, int src, uint64_t now_ms)
{
    const struct source *o;
    uint64_t cur = now_ms / SCHED_RATE_BUCKET_MS, bytes = 0, from, win;

    if (!s || src < 0 || src >= SCHED_SOURCES_MAX)
        return -1;
    o = &s->src[src];
    if (!o->have_first || now_ms < o->first_ms + SCHED_RATE_BUCKET_MS)
        return -1;
    for (int j = 0; j < SCHED_RATE_BUCKETS; j++)
        if (o->epoch[j] + SCHED_RATE_BUCKETS > cur && o->epoch[j] <= cur)
            bytes += o->bucket[j];
    from = (cur + 1 > SCHED_RATE_BUCKETS) ? (cur + 1 - SCHED_RATE_BUCKETS) * SCHED_RATE_BUCKET_MS : 0;
    if (from < o->first_ms)
        from = o->first_ms;
    win = now_ms - from;
    if (win == 0)
        return -1;
    return (int64_t)(bytes * 1000 / win);
}

void sched_bytes(struct sched *s, int src, uint64_t n, uint64_t now_ms)
{
    struct source *o;
    uint64_t cur = now_ms / SCHED_RATE_BUCKET_MS;
    unsigned j = (unsigned)(cur % SCHED_RATE_BUCKETS);

    if (!valid_src(s, src))
        return;
    o = &s->src[src];
    if (!o->have_first) {
        o->have_first = 1;
        o->first_ms = now_ms;
    }
    if (o->epoch[j] != cur) {
        o->epoch[j] = cur;
        o->bucket[j] = 0;
    }
    o->bucket[j] += n;
    o->got += n;
}

/* Pieces a request of src asks for, from its own rate alone. */
static uint32_t span_for_rate(const struct sched *s, int src, uint64_t now_ms)
{
    int64_t rate = sched_source_rate(s, src, now_ms);
    uint64_t n;

    if (rate < 0)
        return SCHED_SPAN_NORATE;
    /* rounded to the nearest piece */
    n = ((uint64_t)rate * SCHED_SPAN_MS / 1000 + s->piece / 2) / s->piece;
    /* no clamp to SCHED_SPAN_MIN here: sched_next() always hands out the
     * MISSING piece it found, so 0 still means 1 */
    if (n > SCHED_SPAN_MAX)
        n = SCHED_SPAN_MAX;
    return (uint32_t)n;
}

/* The endgame's pick: of the pieces in flight with a single copy, the one
 * expected last (bytes ahead of it in its owner's request / the owner's
 * rate; ties: the highest index). A source without a rate yet is taken as
 * the slowest (1 B/s): nothing says it is not, and it is the one whose tail
 * most needs a second copy. npieces when there is none. */
static uint32_t endgame_pick(const struct sched *s, uint64_t now_ms)
{
    uint32_t best = s->npieces;
    double best_eta = -1;

    for (int t = 0; t < SCHED_SOURCES_MAX; t++) {
        const struct source *o = &s->src[t];
        int64_t rate;
        if (!live(o) || o->next >= o->b)
            continue;
        rate = sched_source_rate(s, t, now_ms);
        if (rate <= 0)
            rate = 1;
        for (uint32_t i = o->next; i < o->b; i++) {
            double ahead, eta;
            if (bit(s->have, i) || copies_but(s, i, -1) >= SCHED_COPIES)
                continue;
            ahead = (double)(i - o->next + 1) * s->piece - (double)o->got;
            eta = ahead / (double)rate;
            if (eta > best_eta || (eta == best_eta && i > best)) {
                best_eta = eta;
                best = i;
            }
        }
    }
    return best;
}

static unsigned connected(const struct sched *s)
{
    unsigned n = 0;

    for (int t = 0; t < SCHED_SOURCES_MAX; t++)
        n += s->src[t].state == SCHED_ACTIVE || s->src[t].state == SCHED_SRC_IDLE;
    return n;
}

fs_status sched_next(struct sched *s, int src, uint64_t now_ms, struct sched_req *out)
{
    return sched_next_from(s, src, now_ms, UINT32_MAX, out);
}

fs_status sched_next_from(struct sched *s, int src, uint64_t now_ms, uint32_t from,
                          struct sched_req *out)
{
    struct source *o;
    uint32_t m, n, cap, missing;

    memset(out, 0, sizeof *out);
    if (!valid_src(s, src))
        return FS_EINVAL;
    o = &s->src[src];
    release(s, o);
    o->state = SCHED_ACTIVE;
    if (!o->started) {
        o->started = 1;
        o->start_ms = now_ms;
    }
    if (s->nhave == s->npieces) {
        out->kind = SCHED_FINISHED;
        return FS_OK;
    }
    /* A stream under way that goes on at a MISSING piece keeps going: FLOOD/1
     * cannot cancel one, so jumping to a lower piece costs a new connection
     * and whatever frames of the old stream were already on their way. */
    m = from < s->npieces && is_missing(s, from) ? from : lowest_missing(s);
    if (m < s->npieces) {
        missing = sched_missing_count(s);
        n = span_for_rate(s, src, now_ms);
        /* the tail is shared rather than taken by one */
        cap = (missing + connected(s) - 1) / connected(s);
        if (n > cap)
            n = cap;
        o->a = o->next = m;
        o->b = m + 1;
        while (o->b - o->a < n && o->b < s->npieces && is_missing(s, o->b))
            o->b++;
        out->kind = SCHED_SPAN;
        out->a = o->a;
        out->b = o->b;
        return FS_OK;
    }
    m = endgame_pick(s, now_ms);
    if (m < s->npieces) {
        o->a = o->next = m;
        o->b = m + 1;
        out->kind = SCHED_ENDGAME;
        out->a = o->a;
        out->b = o->b;
        return FS_OK;
    }
    o->state = SCHED_SRC_IDLE;
    out->kind = SCHED_NONE;
    return FS_OK;
}

/* Is anything in t's remaining request still needed from t: a piece not
 * HAVE that no other live source covers? */
static int still_needed(const struct sched *s, int t)
{
    const struct source *o = &s->src[t];

    for (uint32_t i = o->next; i < o->b; i++)
        if (!bit(s->have, i) && copies_but(s, i, t) == 0)
            return 1;
    return 0;
}

int sched_piece_done(struct sched *s, int src, uint32_t i, int *closed, int *nclosed)
{
    struct source *o;

    *nclosed = 0;
    if (!valid_src(s, src) || s->src[src].next != i || i >= s->src[src].b)
        return FS_EINVAL;
    o = &s->src[src];
    o->next = i + 1;
    o->got = 0;
    if (bit(s->have, i))
        return SCHED_PIECE_DUP;
    bit_set(s->have, i);
    s->nhave++;
    o->pieces++;
    for (int t = 0; t < SCHED_SOURCES_MAX; t++) {
        struct source *u = &s->src[t];
        if (t == src || !live(u) || !(u->next <= i && i < u->b))
            continue;
        if (!still_needed(s, t)) {
            release(s, u);
            u->state = SCHED_DONE;
            closed[(*nclosed)++] = t;
        }
    }
    return SCHED_PIECE_NEW;
}

fs_status sched_end(struct sched *s, int src, enum sched_state why)
{
    if (!valid_src(s, src) || (why != SCHED_DONE && why != SCHED_CUT && why != SCHED_BAD))
        return FS_EINVAL;
    release(s, &s->src[src]);
    s->src[src].state = why;
    return FS_OK;
}

fs_status sched_busy(struct sched *s, int src)
{
    if (!valid_src(s, src))
        return FS_EINVAL;
    release(s, &s->src[src]);
    s->src[src].state = SCHED_BUSY;
    return FS_OK;
}

static int cmp_i64(const void *x, const void *y)
{
    int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;
    return (a > b) - (a < b);
}

int sched_retire_slow(struct sched *s, uint64_t now_ms, int spare_waiting)
{
    unsigned nlive = 0;

    if (!spare_waiting)
        return -1;
    for (int t = 0; t < SCHED_SOURCES_MAX; t++)
        nlive += live(&s->src[t]);
    if (nlive < s->k)
        return -1;
    for (int t = 0; t < SCHED_SOURCES_MAX; t++) {
        const struct source *o = &s->src[t];
        int64_t others[SCHED_SOURCES_MAX], rate, median;
        int n = 0;
        if (o->state != SCHED_ACTIVE || !o->started || now_ms < o->start_ms + SCHED_SLOW_AFTER_MS)
            continue;
        for (int u = 0; u < SCHED_SOURCES_MAX; u++) {
            int64_t r;
            if (u == t || s->src[u].state != SCHED_ACTIVE)
                continue;
            r = sched_source_rate(s, u, now_ms);
            others[n++] = r < 0 ? 0 : r;
        }
        if (n == 0)
            continue;
        qsort(others, (size_t)n, sizeof others[0], cmp_i64);
        median = others[(n - 1) / 2]; /* the lower middle: retire only the clearly slow */
        rate = sched_source_rate(s, t, now_ms);
        if (rate < 0)
            rate = 0;
        if (rate * SCHED_SLOW_DIV < median) {
            sched_end(s, t, SCHED_DONE);
            return t;
        }
    }
    return -1;
}

enum sched_state sched_source_state(const struct sched *s, int src)
{
    if (!s || src < 0 || src >= SCHED_SOURCES_MAX)
        return SCHED_FREE;
    return s->src[src].state;
}

uint32_t sched_source_pieces(const struct sched *s, int src)
{
    if (!s || src < 0 || src >= SCHED_SOURCES_MAX)
        return 0;
    return s->src[src].pieces;
}

uint32_t sched_npieces(const struct sched *s) { return s->npieces; }
uint32_t sched_have_count(const struct sched *s) { return s->nhave; }

int sched_is_have(const struct sched *s, uint32_t i)
{
    return i < s->npieces && bit(s->have, i);
}

unsigned sched_copies(const struct sched *s, uint32_t i)
{
    if (i >= s->npieces || bit(s->have, i))
        return 0;
    return copies_but(s, i, -1);
}
