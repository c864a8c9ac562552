/* xfer.c - the transfer plane's shared parts: upload slots and the table
 * of running transfers (`transfers`). The holder side is xfer_serve.c, the
 * requester side xfer_fetch.c. */
#include "floodshare/xfer.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "floodshare/json.h"
#include "floodshare/log.h"
#include "floodshare/net.h"
#include "floodshare/node.h"
#include "floodshare/progress.h"
#include "floodshare/slots.h"
#include "floodshare/stats.h"
#include "xfer_int.h"

struct xfer_plane *xfer_plane_new(struct node *n, const struct xfer_limits *lim)
{
    if (lim->slots == 0 || lim->slots_per_addr == 0)
        return NULL;
    struct xfer_plane *x = calloc(1, sizeof *x);
    if (!x)
        return NULL;
    x->up = slots_new(lim->slots, lim->slots_per_addr);
    if (!x->up) {
        free(x);
        return NULL;
    }
    pthread_mutex_init(&x->lock, NULL);
    x->node = n;
    x->stats = node_stats(n);
    x->trace = node_trace(n);
    x->slots = lim->slots;
    x->min_rate = lim->min_rate;
    return x;
}

void xfer_plane_free(struct xfer_plane *x)
{
    if (!x)
        return;
    pthread_mutex_destroy(&x->lock);
    slots_free(x->up);
    free(x);
}

int xfer_slot_take(struct xfer_plane *x, struct conn *c, struct xfer_slot *s)
{
    struct slots *up = x->up;
    struct fs_addr who;

    if (s->held)
        return 0;
    net_peer_addr(c->fd, &who);
    enum slots_verdict v = slots_take(up, who.host, net_now_ms());
    if (v == SLOTS_OK) {
        s->held = 1;
        snprintf(s->host, sizeof s->host, "%s", who.host);
        return 0;
    }
    struct msg busy;
    memset(&busy, 0, sizeof busy);
    busy.type = MSG_BUSY;
    /* Jitter spreads the retries of many requesters turned away at once. */
    busy.retry = XFER_BUSY_RETRY_MS + net_now_ms() % 1000;
    stats_inc(x->stats, busy_refused);
    log_msg(L_DEBUG, "upload to %s refused busy: %s", who.host,
            v == SLOTS_FULL        ? "every upload slot is taken"
            : v == SLOTS_PENALIZED ? "an upload to its address was just cut for being slow"
                                   : "its address holds its share of slots");
    conn_send_msg(c, &busy, c->timeout_ms);
    return -1;
}

void xfer_slot_penalize(struct xfer_plane *x, const char *host)
{
    slots_penalize(x->up, host, net_now_ms() + XFER_SLOW_PENALTY_MS);
}

void xfer_slot_give(struct xfer_plane *x, struct xfer_slot *s)
{
    xfer_uptrace_end(x, &s->tr, FS_OK);
    if (!s->held)
        return;
    slots_give(x->up, s->host);
    s->held = 0;
}

/* Registers a transfer; returns its slot, or -1 when the table is full
 * (the transfer still runs, it is just not listed). */
int xfer_table_add(struct xfer_plane *x, int upload, const char *name, const struct fs_addr *other,
                   uint64_t total)
{
    struct xfer_plane *t = x;
    int idx = -1;

    pthread_mutex_lock(&t->lock);
    for (int i = 0; i < XFER_MAX_ACTIVE && idx < 0; i++) {
        if (t->rows[i].used)
            continue;
        idx = i;
        struct xfer_row *s = &t->rows[i];
        memset(s, 0, sizeof *s);
        s->used = 1;
        s->a.upload = upload;
        snprintf(s->a.name, sizeof s->a.name, "%s", name);
        if (other)
            s->a.other = *other;
        s->a.total = total;
        s->start_ms = net_now_ms();
    }
    pthread_mutex_unlock(&t->lock);
    return idx;
}

void xfer_table_set(struct xfer_plane *x, int idx, uint64_t done)
{
    if (idx < 0)
        return;
    pthread_mutex_lock(&x->lock);
    x->rows[idx].a.done = done;
    pthread_mutex_unlock(&x->lock);
}

void xfer_table_del(struct xfer_plane *x, int idx)
{
    if (idx < 0)
        return;
    pthread_mutex_lock(&x->lock);
    x->rows[idx].used = 0;
    pthread_mutex_unlock(&x->lock);
}

void xfer_table_set_sources(struct xfer_plane *x, int row, const struct xfer_sources *src)
{
    if (row < 0 || row >= XFER_MAX_ACTIVE)
        return;
    /* The engine's n is trusted no further than the array it indexes. */
    unsigned n = src->n < XFER_SOURCES_MAX ? src->n : XFER_SOURCES_MAX;
    pthread_mutex_lock(&x->lock);
    struct xfer_sources *dst = &x->rows[row].a.srcs;
    dst->n = n;
    memcpy(dst->s, src->s, n * sizeof src->s[0]);
    pthread_mutex_unlock(&x->lock);
}

char *xfer_source_format(const struct xfer_source_info *s, char *out, size_t cap)
{
    char who[ADDR_STR_MAX], id[16], rate[16];

    if (s->peer > 0)
        snprintf(id, sizeof id, "peer %d", s->peer);
    else
        snprintf(id, sizeof id, "peer ?");
    snprintf(out, cap, "  source   %s %-15s   %-6s  %llu pieces  %llu bytes  %s/s", id,
             s->holder.port ? addr_format(&s->holder, who) : "?",
             xfer_source_state_name(s->state), (unsigned long long)s->chunks,
             (unsigned long long)s->bytes, progress_bytes(rate, sizeof rate, s->rate));
    return out;
}

void xfer_sources_json(struct json *j, const char *key, const struct xfer_sources *s)
{
    char who[ADDR_STR_MAX];
    unsigned n = s->n < XFER_SOURCES_MAX ? s->n : XFER_SOURCES_MAX;

    json_arr_open(j, key);
    for (unsigned i = 0; i < n; i++) {
        const struct xfer_source_info *e = &s->s[i];
        json_obj_open(j, NULL);
        json_uint(j, "peer", e->peer > 0 ? (uint64_t)e->peer : 0);
        json_str(j, "holder", e->holder.port ? addr_format(&e->holder, who) : NULL);
        json_uint(j, "bytes", e->bytes);
        json_uint(j, "chunks", e->chunks);
        json_uint(j, "rate", e->rate);
        json_str(j, "state", xfer_source_state_name(e->state));
        json_obj_close(j);
    }
    json_arr_close(j);
}

size_t xfer_active_list(struct xfer_plane *x, struct xfer_active *out, size_t max)
{
    struct xfer_plane *t = x;
    size_t n = 0;
    uint64_t now = net_now_ms();

    pthread_mutex_lock(&t->lock);
    for (int i = 0; i < XFER_MAX_ACTIVE && n < max; i++) {
        if (!t->rows[i].used)
            continue;
        out[n] = t->rows[i].a;
        out[n++].seconds = (double)(now - t->rows[i].start_ms) / 1000.0;
    }
    pthread_mutex_unlock(&t->lock);
    return n;
}

const char *xfer_source_state_name(enum xfer_source_state st)
{
    static const char *const names[] = {"active", "busy", "done", "cut", "bad"};
    return (unsigned)st < sizeof names / sizeof names[0] ? names[st] : "?";
}
