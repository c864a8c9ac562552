/* slots.c - upload slots, in all and per requesting address. */
#include "floodshare/slots.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct slot_row {
    char host[ADDR_HOST_MAX + 1]; /* "" when the row is free */
    unsigned n;                   /* slots this host holds, >= 1 when used */
};

struct penalty {
    char host[ADDR_HOST_MAX + 1];
    uint64_t until; /* ms; 0: the row is free */
};

/* lock guards everything. Invariant: used == the sum of rows[].n, and a
 * row is in use exactly when its n > 0, so total rows always suffice. */
struct slots {
    pthread_mutex_t lock;
    unsigned total, per_addr, used;
    struct penalty box[SLOTS_PENALTY_MAX];
    struct slot_row rows[]; /* total of them */
};

struct slots *slots_new(unsigned total, unsigned per_addr)
{
    struct slots *s;

    if (total == 0 || per_addr == 0)
        return NULL;
    s = calloc(1, sizeof *s + (size_t)total * sizeof s->rows[0]);
    if (!s)
        return NULL;
    pthread_mutex_init(&s->lock, NULL);
    s->total = total;
    s->per_addr = per_addr;
    return s;
}

void slots_free(struct slots *s)
{
    if (!s)
        return;
    pthread_mutex_destroy(&s->lock);
    free(s);
}

static struct slot_row *row_of(struct slots *s, const char *host)
{
    for (unsigned i = 0; i < s->total; i++)
        if (s->rows[i].n > 0 && strncmp(s->rows[i].host, host, ADDR_HOST_MAX) == 0)
            return &s->rows[i];
    return NULL;
}

/* The penalty row of host still running at now, or NULL. */
static struct penalty *penalty_of(struct slots *s, const char *host, uint64_t now)
{
    for (int i = 0; i < SLOTS_PENALTY_MAX; i++)
        if (s->box[i].until > now && strncmp(s->box[i].host, host, ADDR_HOST_MAX) == 0)
            return &s->box[i];
    return NULL;
}

void slots_penalize(struct slots *s, const char *host, uint64_t until_ms)
{
    struct penalty *p = NULL;

    pthread_mutex_lock(&s->lock);
    for (int i = 0; i < SLOTS_PENALTY_MAX && !p; i++)
        if (s->box[i].until && strncmp(s->box[i].host, host, ADDR_HOST_MAX) == 0)
            p = &s->box[i]; /* already there: its term starts again */
    if (!p) { /* a free row (until 0) or the one that expires first */
        p = &s->box[0];
        for (int i = 1; i < SLOTS_PENALTY_MAX; i++)
            if (s->box[i].until < p->until)
                p = &s->box[i];
        memset(p->host, 0, sizeof p->host);
        strncpy(p->host, host, sizeof p->host - 1);
    }
    p->until = until_ms;
    pthread_mutex_unlock(&s->lock);
}

enum slots_verdict slots_take(struct slots *s, const char *host, uint64_t now_ms)
{
    enum slots_verdict v = SLOTS_OK;

    pthread_mutex_lock(&s->lock);
    struct slot_row *r = row_of(s, host);
    if (penalty_of(s, host, now_ms)) {
        v = SLOTS_PENALIZED;
    } else if (s->used >= s->total) {
        v = SLOTS_FULL;
    } else if (r && r->n >= s->per_addr) {
        v = SLOTS_ADDR_FULL;
    } else {
        if (!r) { /* used < total, so a free row exists */
            for (unsigned i = 0; i < s->total && !r; i++)
                if (s->rows[i].n == 0)
                    r = &s->rows[i];
            memset(r->host, 0, sizeof r->host);
            strncpy(r->host, host, sizeof r->host - 1);
        }
        r->n++;
        s->used++;
    }
    pthread_mutex_unlock(&s->lock);
    return v;
}

void slots_give(struct slots *s, const char *host)
{
    pthread_mutex_lock(&s->lock);
    struct slot_row *r = row_of(s, host);
    if (r) {
        r->n--;
        s->used--;
    }
    pthread_mutex_unlock(&s->lock);
}

unsigned slots_used(struct slots *s, const char *host)
{
    pthread_mutex_lock(&s->lock);
    struct slot_row *r = row_of(s, host);
    unsigned n = r ? r->n : 0;
    pthread_mutex_unlock(&s->lock);
    return n;
}

unsigned slots_used_total(struct slots *s)
{
    pthread_mutex_lock(&s->lock);
    unsigned n = s->used;
    pthread_mutex_unlock(&s->lock);
    return n;
}
