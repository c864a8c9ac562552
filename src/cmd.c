/* cmd.c - peer-side commands: what `floodshare peer N ...` runs. */
#include "floodshare/cmd.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "floodshare/cfg.h"
#include "floodshare/cmd_browse.h"
#include "floodshare/ctl.h"
#include "floodshare/cut.h"
#include "floodshare/flood.h"
#include "floodshare/json.h"
#include "floodshare/log.h"
#include "floodshare/name.h"
#include "floodshare/partial.h"
#include "floodshare/net.h"
#include "floodshare/node.h"
#include "floodshare/offer.h"
#include "floodshare/share.h"
#include "floodshare/stats.h"
#include "floodshare/syncpair.h"
#include "floodshare/trace.h"
#include "floodshare/xfer.h"

#define CMD_JSON_MAX (4 * 1024 * 1024)
/* How long `ls` waits for the share's thread to take in recent changes:
 * long enough to hash a few GiB of new files on a slow disk. */
#define CMD_LS_FRESH_MS 60000

struct args {
    int json;
    unsigned sources; /* get --sources K: 1..XFER_SOURCES_MAX; 0 when not given */
    int n;            /* positional arguments */
    const char *pos[4];
};

/* get --sources K: K from 1 to XFER_SOURCES_MAX, else a usage error naming
 * the range. */
static int parse_sources(const char *cmd, const char *v, unsigned *out, struct ctl_out *o)
{
    char *end = NULL;
    unsigned long k = v && *v >= '0' && *v <= '9' ? strtoul(v, &end, 10) : 0;

    if (!end || *end || k < 1 || k > XFER_SOURCES_MAX) {
        ctl_print(o, 2, "floodshare: %s: --sources takes a number of holders from 1 to %d, "
                  "not \"%s\"", cmd, XFER_SOURCES_MAX, v ? v : "");
        return -1;
    }
    *out = (unsigned)k;
    return 0;
}

/* Splits "--json" (and get's "--sources K") from positional arguments. -1
 * on an unknown option or too many arguments. */
static int parse_args(int argc, char **argv, struct args *a, struct ctl_out *o)
{
    memset(a, 0, sizeof *a);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            a->json = 1;
        } else if (strcmp(argv[i], "--sources") == 0 && strcmp(argv[0], "get") == 0) {
            if (parse_sources(argv[0], i + 1 < argc ? argv[i + 1] : NULL, &a->sources, o) < 0)
                return -1;
            i++;
        } else if (argv[i][0] == '-' && argv[i][1] == '-') {
            ctl_print(o, 2, "floodshare: %s: unknown option %s", argv[0], argv[i]);
            return -1;
        } else if (a->n < 4) {
            a->pos[a->n++] = argv[i];
        } else {
            ctl_print(o, 2, "floodshare: %s: too many arguments", argv[0]);
            return -1;
        }
    }
    return 0;
}

static int need(struct ctl_out *o, const struct args *a, int n, const char *usage)
{
    if (a->n == n)
        return 0;
    ctl_print(o, 2, "usage: peer N %s", usage);
    return -1;
}

static int emit_json(struct ctl_out *o, struct json *j)
{
    size_t len;
    const char *doc = json_result(j, &len);

    if (!doc) {
        ctl_print(o, 2, "floodshare: output too large");
        json_free(j);
        return CTL_EXIT_FAIL;
    }
    ctl_write(o, 1, doc, len);
    json_free(j);
    return CTL_EXIT_OK;
}

static void json_hit(struct json *j, const struct msg *h)
{
    char holder[ADDR_STR_MAX];

    json_obj_open(j, NULL);
    json_uint(j, "peer", h->peer_id);
    json_str(j, "holder", addr_format(&h->holder, holder));
    json_uint(j, "hops", h->hops);
    json_str(j, "name", h->name);
    json_str(j, "path", h->path);
    json_str(j, "kind", msg_kind_name(h->kind));
    json_uint(j, "size", h->size);
    json_str(j, "md5", h->md5);
    json_obj_close(j);
}

static int check_name(struct ctl_out *o, const char *name)
{
    if (name_valid(name, strlen(name)))
        return 0;
    ctl_print(o, 2, "floodshare: \"%s\" is not a valid item name (one path component, no '/', "
              "not . or .., at most %d bytes)", name, NAME_MAX_LEN);
    return -1;
}

/* --- search --- */

static int cmd_search(const struct cmd_env *e, const struct args *a, struct ctl_out *o,
                      const struct cfg *c)
{
    struct flood_query *q;
    struct msg *hits;
    unsigned n = 0;
    if (need(o, a, 1, "search NAME [--json]") || check_name(o, a->pos[0]))
        return CTL_EXIT_USAGE;
    hits = calloc(FLOOD_MAX_HITS, sizeof *hits);
    if (!hits || flood_start(e->flood, a->pos[0], &q) != FS_OK) {
        free(hits);
        ctl_print(o, 2, "floodshare: too many queries running, try again");
        return CTL_EXIT_FAIL;
    }
    if (!a->json)
        ctl_print(o, 1, "searching for \"%s\" (query %s, ttl %u, %u neighbours, %.1f s window)",
                  a->pos[0], flood_query_id(q), c->ttl, flood_query_sent(q),
                  c->hit_window_ms / 1000.0);
    uint64_t deadline = net_now_ms() + (flood_query_sent(q) ? c->hit_window_ms : 0);
    while (n < FLOOD_MAX_HITS && flood_next_hit(e->flood, q, deadline, &hits[n]) == FS_OK)
        n++;

    int code = n ? CTL_EXIT_OK : CTL_EXIT_FAIL;
    if (a->json) {
        struct json j;
        json_init(&j, CMD_JSON_MAX);
        json_obj_open(&j, NULL);
        json_str(&j, "query_id", flood_query_id(q));
        json_str(&j, "name", a->pos[0]);
        json_uint(&j, "ttl", c->ttl);
        json_arr_open(&j, "hits");
        for (unsigned i = 0; i < n; i++)
            json_hit(&j, &hits[i]);
        json_arr_close(&j);
        json_obj_close(&j);
        if (emit_json(o, &j) != CTL_EXIT_OK)
            code = CTL_EXIT_FAIL;
    } else if (n == 0) {
        ctl_print(o, 2, "not found: no peer within ttl %u has \"%s\"", c->ttl, a->pos[0]);
    } else {
        ctl_print(o, 1, "%u hit%s:", n, n == 1 ? "" : "s");
        ctl_print(o, 1, "  %-5s %-21s %4s  %-6s %12s  %-32s  %s", "peer", "holder", "hops",
                  "kind", "size", "md5", "path");
        for (unsigned i = 0; i < n; i++) {
            char h[ADDR_STR_MAX];
            ctl_print(o, 1, "  %-5u %-21s %4u  %-6s %12llu  %s  %s", hits[i].peer_id,
                      addr_format(&hits[i].holder, h), hits[i].hops, msg_kind_name(hits[i].kind),
                      (unsigned long long)hits[i].size, hits[i].md5, hits[i].path);
        }
    }
    flood_end(e->flood, q);
    free(hits);
    return code;
}

/* --- get --- */

struct attempt {
    struct msg hit;
    fs_status st;
    int ended;        /* a source of a swarmed get that ended cut or bad: st/why are its own */
    char why[256];
    uint64_t retry_at; /* the holder answered BUSY: ask again from then on (ms) */
    unsigned tries;    /* ...after this many BUSYs */
};

/* The source that delivered most (the first of equals), or -1. */
static int get_top_source(const struct xfer_sources *src)
{
    int top = -1;
    for (unsigned i = 0; i < src->n; i++)
        if (top < 0 || src->s[i].bytes > src->s[top].bytes)
            top = (int)i;
    return top;
}

/* get --json's "sources": each holder of the key that delivered (or, on
 * a failure, of the last key tried), in start order. */
static void json_sources(struct json *j, const struct xfer_sources *src)
{
    json_arr_open(j, "sources");
    for (unsigned i = 0; i < src->n && i < XFER_SOURCES_MAX; i++) {
        char h[ADDR_STR_MAX];
        json_obj_open(j, NULL);
        json_uint(j, "peer", (uint64_t)src->s[i].peer);
        json_str(j, "holder", addr_format(&src->s[i].holder, h));
        json_uint(j, "bytes", src->s[i].bytes);
        json_uint(j, "chunks", src->s[i].chunks);
        json_str(j, "state", xfer_source_state_name(src->s[i].state));
        json_obj_close(j);
    }
    json_arr_close(j);
}

static void get_json(struct ctl_out *o, const char *qid, const char *name, int ok,
                     const struct attempt *at, unsigned n, const struct msg *winner,
                     const struct xfer_result *res, const char *error)
{
    struct json j;

    json_init(&j, CMD_JSON_MAX);
    json_obj_open(&j, NULL);
    json_str(&j, "query_id", qid);
    json_str(&j, "name", name);
    json_bool(&j, "ok", ok);
    if (ok) {
        char h[ADDR_STR_MAX];
        const struct msg *w = winner;
        json_uint(&j, "peer", w->peer_id);
        json_str(&j, "holder", addr_format(&w->holder, h));
        json_uint(&j, "hops", w->hops);
        json_str(&j, "kind", msg_kind_name(w->kind));
        json_uint(&j, "size", w->size);
        json_str(&j, "md5", w->md5);
        json_uint(&j, "bytes", res->bytes);
        json_uint(&j, "resumed_from", res->resumed_from);
        json_double(&j, "seconds", res->seconds);
        json_double(&j, "ttfb_seconds", res->ttfb);
    } else {
        json_str(&j, "error", error);
    }
    if (res->srcs.n > 0)
        json_sources(&j, &res->srcs);
    json_arr_open(&j, "attempts");
    for (unsigned i = 0; i < n; i++) {
        char h[ADDR_STR_MAX];
        json_obj_open(&j, NULL);
        json_uint(&j, "peer", at[i].hit.peer_id);
        json_str(&j, "holder", addr_format(&at[i].hit.holder, h));
        json_bool(&j, "ok", at[i].st == FS_OK);
        json_str(&j, "error", at[i].st == FS_OK ? NULL : at[i].why);
        json_obj_close(&j);
    }
    json_arr_close(&j);
    json_obj_close(&j);
    emit_json(o, &j);
}

static void get_progress(void *ctx, const struct xfer_event *ev)
{
    struct ctl_progress pr;

    memset(&pr, 0, sizeof pr);
    pr.done = ev->done;
    pr.total = ev->total;
    pr.resumed = ev->resumed_from;
    pr.rate = (uint64_t)ev->rate;
    pr.peer = ev->peer;
    pr.sources = ev->sources ? ev->sources : 1;
    addr_format(ev->holder, pr.holder);
    snprintf(pr.name, sizeof pr.name, "%s", ev->name);
    ctl_send_progress(ctx, &pr);
}

/* One get: its client, and the deadline of the whole get ([limits]
 * get_timeout_ms; UINT64_MAX: none). */
struct get_ctx {
    struct ctl_out *o;
    uint64_t deadline;
    /* for the swarm's feed (xfer_feed): hits of the same key as they arrive */
    const struct cmd_env *e;
    struct flood_query *q;
    struct get_state *gs;
    int json;
    const struct xfer_feed *feed; /* NULL: one holder at a time */
};

/* The client hanging up (Ctrl-C), or the get's deadline, cancels the
 * download; it stays resumable. */
static int get_cancelled(void *ctx)
{
    const struct get_ctx *g = ctx;
    return ctl_client_gone(g->o) || net_now_ms() >= g->deadline;
}

static void get_progress_ctx(void *ctx, const struct xfer_event *ev)
{
    get_progress(((struct get_ctx *)ctx)->o, ev);
}

#define GET_BUSY_MAX_WAIT_MS 60000 /* a BUSY's retry is followed up to this long */

/* Downloads t's hit once. Sets *over when the get is decided (a success, a
 * name taken, a cancel, or a local failure that any holder would meet); a
 * BUSY holder gets t->retry_at, until it has used XFER_BUSY_TRIES. */
static fs_status get_try(const struct cmd_env *e, const struct args *a, struct get_ctx *g,
                         const char *name, const char *share_dir, struct attempt *t,
                         struct xfer_result *res, int *over)
{
    struct ctl_out *o = g->o;
    char h[ADDR_STR_MAX];
    uint64_t have = xfer_partial_bytes(share_dir, name, t->hit.size, t->hit.md5);

    addr_format(&t->hit.holder, h);
    if (have && !a->json)
        ctl_print(o, 1, "resuming \"%s\" at byte %llu of %llu (%.0f%% already here)", name,
                  (unsigned long long)have, (unsigned long long)t->hit.size,
                  100.0 * (double)have / (double)(t->hit.size ? t->hit.size : 1));
    struct xfer_watch watch = {.progress = get_progress_ctx, .cancelled = get_cancelled,
                               .ctx = g, .feed = g->feed};
    fs_status st = xfer_fetch(e->xfers, &t->hit, &watch, res);
    int ended = t->ended; /* a swarm's first source, cut or bad: said so already */
    if (!ended) {
        t->st = st;
        snprintf(t->why, sizeof t->why, "%s", res->why);
    }
    t->retry_at = 0;
    if (st == FS_OK || st == FS_EEXIST || st == FS_ECANCELED || res->local) {
        *over = 1;
    } else if (res->retry_ms && t->tries < XFER_BUSY_TRIES) {
        unsigned wait = res->retry_ms < GET_BUSY_MAX_WAIT_MS ? res->retry_ms : GET_BUSY_MAX_WAIT_MS;
        t->retry_at = net_now_ms() + wait;
        t->tries++;
        if (!a->json)
            ctl_print(o, 2, "peer %u %s is busy (every upload slot taken): other holders "
                      "first, then again in %.1f s", t->hit.peer_id, h, wait / 1000.0);
    } else if (!a->json && !ended) {
        ctl_print(o, 2, "peer %u %s failed: %s%s", t->hit.peer_id, h, res->why,
                  res->retry_ms ? " (asked too often, giving up on it)" : "");
    }
    return st;
}

/* Waits until ms (net_now_ms()); -1 when the client left, the peer stops
 * or the get's deadline passed. */
static int get_busy_wait(const struct cmd_env *e, struct get_ctx *g, uint64_t until)
{
    for (uint64_t now = net_now_ms(); now < until; now = net_now_ms()) {
        if (node_stopping(e->node) || get_cancelled(g))
            return -1;
        uint64_t left = until - now;
        poll(NULL, 0, left < 100 ? (int)left : 100);
    }
    return 0;
}

/* The hits of one get: those waiting to be tried (pend, in arrival order)
 * and those tried (at, in the order of their last try: at[n_at - 1] is the
 * holder that delivered, if one did). A holder is tried at most once,
 * unless it answered BUSY. */
struct get_state {
    struct attempt at[FLOOD_MAX_HITS];
    struct msg pend[FLOOD_MAX_HITS];
    unsigned n_at, n_pend;
};

static int holder_tried(const struct get_state *gs, const struct fs_addr *holder)
{
    for (unsigned i = 0; i < gs->n_at; i++)
        if (addr_equal(&gs->at[i].hit.holder, holder))
            return 1;
    return 0;
}

/* Failed tries of hits that came over the link from `via`. */
static unsigned via_failures(const struct get_state *gs, const struct fs_addr *via)
{
    unsigned n = 0;
    for (unsigned i = 0; i < gs->n_at; i++)
        n += gs->at[i].st != FS_OK && !gs->at[i].retry_at && addr_equal(&gs->at[i].hit.from, via);
    return n;
}

/* Queues a hit unless its holder was tried already. */
static void get_add_hit(struct get_state *gs, const struct msg *hit)
{
    if (!holder_tried(gs, &hit->holder) && gs->n_pend < FLOOD_MAX_HITS)
        gs->pend[gs->n_pend++] = *hit;
}

/* Takes the next hit to try into *out: of the pending ones whose holder
 * was not tried yet, the first to arrive over the link whose hits failed
 * least. A liar that answers first with a storm of hits then costs one
 * try, not one per lie: the next try goes to a hit from another link. */
static int get_pick(struct get_state *gs, struct msg *out)
{
    int best = -1;
    unsigned best_fails = 0;

    for (unsigned i = 0; i < gs->n_pend; i++) {
        if (holder_tried(gs, &gs->pend[i].holder))
            continue;
        unsigned fails = via_failures(gs, &gs->pend[i].from);
        if (best < 0 || fails < best_fails) {
            best = (int)i;
            best_fails = fails;
        }
    }
    if (best < 0) {
        gs->n_pend = 0;
        return 0;
    }
    *out = gs->pend[best];
    memmove(&gs->pend[best], &gs->pend[best + 1],
            (gs->n_pend - (unsigned)best - 1) * sizeof gs->pend[0]);
    gs->n_pend--;
    return 1;
}

/* The BUSY holder to ask again first, or NULL. */
static struct attempt *get_next_busy(struct get_state *gs)
{
    struct attempt *next = NULL;
    for (unsigned i = 0; i < gs->n_at; i++)
        if (gs->at[i].retry_at && gs->at[i].tries <= XFER_BUSY_TRIES &&
            (!next || gs->at[i].retry_at < next->retry_at))
            next = &gs->at[i];
    return next;
}

/* Moves a BUSY holder's attempt to the end of the tries (it is tried
 * again now) and returns it. */
static struct attempt *get_again(struct get_state *gs, struct attempt *t)
{
    struct attempt keep = *t;
    struct attempt *last = &gs->at[gs->n_at - 1];
    memmove(t, t + 1, (size_t)(last - t) * sizeof *t);
    *last = keep;
    return last;
}

/* --- the swarm's feed (xfer_feed): more holders of the same file --- */

/* A hit of the same item as key: a file (or a large folder, its root the
 * hash of its files' roots) of the same size, md5 and root (only hits with
 * a root swarm: their pieces are checked one by one). */
static int same_key(const struct msg *h, const struct msg *key)
{
    return h->kind == key->kind && h->size == key->size &&
           key->root[0] && strcmp(h->md5, key->md5) == 0 && strcmp(h->root, key->root) == 0;
}

/* xfer_feed.peek: the i-th untried hit of key's item in get_pick()'s
 * order (the links whose hits failed least first, then arrival). */
static const struct msg *feed_peek(void *ctx, const struct msg *key, unsigned i)
{
    struct get_ctx *g = ctx;
    struct get_state *gs = g->gs;
    struct msg hit;
    unsigned best_fails = 0;
    int pick = -1;

    while (flood_next_hit(g->e->flood, g->q, 0, &hit) == FS_OK) /* those arrived meanwhile */
        get_add_hit(gs, &hit);
    /* the i-th by (failures of its link, arrival): i + 1 rounds of a minimum */
    for (unsigned round = 0, last_fails = 0; round <= i; round++) {
        int last = pick;
        pick = -1;
        for (unsigned n = 0; n < gs->n_pend; n++) {
            const struct msg *h = &gs->pend[n];
            if (!same_key(h, key) || holder_tried(gs, &h->holder))
                continue;
            unsigned fails = via_failures(gs, &h->from);
            int after = last < 0 || fails > last_fails || (fails == last_fails && (int)n > last);
            if (after && (pick < 0 || fails < best_fails)) {
                pick = (int)n;
                best_fails = fails;
            }
        }
        if (pick < 0)
            return NULL;
        last_fails = best_fails;
    }
    return &gs->pend[pick];
}

/* xfer_feed.started: hit is a source now, tried like any other. */
static void feed_started(void *ctx, const struct msg *hit, unsigned idx, unsigned k)
{
    struct get_ctx *g = ctx;
    struct get_state *gs = g->gs;
    char h[ADDR_STR_MAX];

    if (gs->n_at < FLOOD_MAX_HITS) {
        struct attempt *t = &gs->at[gs->n_at++];
        memset(t, 0, sizeof *t);
        t->hit = *hit;
    }
    if (!g->json)
        ctl_print(g->o, 1, "adding peer %u %s as source %u of %u", hit->peer_id,
                  addr_format(&hit->holder, h), idx, k);
}

/* xfer_feed.ended: a cut or bad source is a failed try of its holder
 * (it counts against its link, and is never tried again in this get). */
static void feed_ended(void *ctx, const struct msg *hit, enum xfer_source_state st,
                       const char *why, uint64_t piece)
{
    struct get_ctx *g = ctx;
    struct get_state *gs = g->gs;
    char h[ADDR_STR_MAX];

    if (st != XFER_SRC_CUT && st != XFER_SRC_BAD)
        return;
    for (unsigned i = 0; i < gs->n_at; i++) {
        struct attempt *t = &gs->at[i];
        if (!addr_equal(&t->hit.holder, &hit->holder))
            continue;
        t->st = st == XFER_SRC_BAD ? FS_EMISMATCH : FS_EIO;
        t->ended = 1;
        snprintf(t->why, sizeof t->why, "%s", why && why[0] ? why : "cut off");
    }
    if (g->json)
        return;
    addr_format(&hit->holder, h);
    if (st == XFER_SRC_BAD)
        ctl_print(g->o, 2, "peer %u %s sent piece %llu failing its SHA-256: cut off (bad); its "
                  "pieces go to the others", hit->peer_id, h, (unsigned long long)piece);
    else
        ctl_print(g->o, 2, "peer %u %s cut off: %s; its pieces go to the others", hit->peer_id,
                  h, why && why[0] ? why : "closed");
}

/* The last lines of a get that delivered: today's one for one source; with
 * several, how many, then one line per source. */
static void get_done_text(struct ctl_out *o, const char *name, const struct msg *w,
                          const struct xfer_result *res)
{
    double mbs = res->seconds > 0 ? (double)res->bytes / res->seconds / 1e6 : 0;

    if (res->srcs.n <= 1) {
        ctl_print(o, 1, "downloaded \"%s\" from peer %u: %llu bytes in %.2f s (%.1f MB/s), "
                  "MD5 %s verified", name, w->peer_id, (unsigned long long)w->size,
                  res->seconds, mbs, w->md5);
        return;
    }
    ctl_print(o, 1, "downloaded \"%s\" from %u sources: %llu bytes in %.2f s (%.1f MB/s), "
              "MD5 %s verified", name, res->srcs.n, (unsigned long long)w->size, res->seconds,
              mbs, w->md5);
    for (unsigned i = 0; i < res->srcs.n; i++) {
        const struct xfer_source_info *s = &res->srcs.s[i];
        char h[ADDR_STR_MAX];
        ctl_print(o, 1, "  peer %d %s  %s  %.1f MB  %llu pieces", s->peer,
                  addr_format(&s->holder, h), xfer_source_state_name(s->state),
                  (double)s->bytes / 1e6, (unsigned long long)s->chunks);
    }
}

/* Downloads from the hits as they arrive until one holder delivers: hits
 * are waited for while the hit window is open, BUSY holders asked again
 * when they said, and the whole get ends at its deadline. */
static int cmd_get(const struct cmd_env *e, const struct args *a, struct ctl_out *o,
                   const struct cfg *c)
{
    struct flood_query *q;
    struct xfer_result res;
    fs_status st = FS_ETIMEDOUT;
    char final[PATH_MAX + 300], error[320] = "";

    memset(&res, 0, sizeof res);
    if (need(o, a, 1, "get NAME [--sources K] [--json]") || check_name(o, a->pos[0]))
        return CTL_EXIT_USAGE;
    const char *name = a->pos[0];
    snprintf(final, sizeof final, "%s/%s", c->share_dir, name);
    if (access(final, F_OK) == 0 || errno != ENOENT) {
        ctl_print(o, 2, "floodshare: \"%s\" already exists in %s: not overwritten", name,
                  c->share_dir);
        return CTL_EXIT_FAIL;
    }
    struct get_state *gs = calloc(1, sizeof *gs);
    if (!gs || flood_start(e->flood, name, &q) != FS_OK) {
        free(gs);
        ctl_print(o, 2, "floodshare: too many queries running, try again");
        return CTL_EXIT_FAIL;
    }
    uint64_t t0 = net_now_ms();
    struct get_ctx g = {.o = o,
                        .deadline = c->get_timeout_ms ? t0 + c->get_timeout_ms : UINT64_MAX,
                        .e = e, .q = q, .gs = gs, .json = a->json};
    /* --sources K, else max_sources: 1 is today's get, one holder at a time */
    struct xfer_feed feed = {.k = a->sources ? a->sources : c->max_sources, .peek = feed_peek,
                             .started = feed_started, .ended = feed_ended, .ctx = &g};
    if (feed.k > 1)
        g.feed = &feed;
    if (!a->json)
        ctl_print(o, 1, "searching for \"%s\" (query %s, ttl %u, sent to %u neighbours)", name,
                  flood_query_id(q), c->ttl, flood_query_sent(q));
    /* With no neighbour reachable, no hit can come: do not wait the window. */
    uint64_t window = t0 + (flood_query_sent(q) ? c->hit_window_ms : 0);
    int over = 0; /* done: a success, or a failure no other try would mend */
    unsigned tried = 0; /* at[] index of the last get_try() */
    struct msg hit;
    while (!over && !o->broken && !get_cancelled(&g)) {
        while (flood_next_hit(e->flood, q, 0, &hit) == FS_OK) /* those already in */
            get_add_hit(gs, &hit);
        struct attempt *t = NULL;
        if (get_pick(gs, &hit)) {
            t = &gs->at[gs->n_at++];
            memset(t, 0, sizeof *t);
            t->hit = hit;
            char h[ADDR_STR_MAX];
            if (!a->json)
                ctl_print(o, 1, "found at peer %u %s, %u hops away (%s, %llu bytes): downloading",
                          hit.peer_id, addr_format(&hit.holder, h), hit.hops,
                          msg_kind_name(hit.kind), (unsigned long long)hit.size);
        } else {
            /* Nothing new to try: wait for a hit while the window is open,
             * but not past the time a BUSY holder asked to be tried again. */
            struct attempt *busy = get_next_busy(gs);
            uint64_t until = window < g.deadline ? window : g.deadline;
            if (busy && busy->retry_at < until)
                until = busy->retry_at;
            if (net_now_ms() < until) {
                if (flood_next_hit(e->flood, q, until, &hit) == FS_OK)
                    get_add_hit(gs, &hit);
                continue;
            }
            if (!busy)
                break;
            if (get_busy_wait(e, &g, busy->retry_at) < 0) {
                st = FS_ECANCELED;
                snprintf(busy->why, sizeof busy->why, "%s",
                         get_cancelled(&g) && !ctl_client_gone(o)
                             ? "get_timeout_ms reached while waiting for a busy holder"
                             : "cancelled while waiting for a busy holder");
                get_again(gs, busy);
                break;
            }
            t = get_again(gs, busy);
            if (!a->json) {
                char h[ADDR_STR_MAX];
                ctl_print(o, 1, "asking busy peer %u %s again (try %u of %u)", t->hit.peer_id,
                          addr_format(&t->hit.holder, h), t->tries + 1, XFER_BUSY_TRIES + 1);
            }
        }
        st = get_try(e, a, &g, name, c->share_dir, t, &res, &over);
        tried = (unsigned)(t - gs->at);
    }
    unsigned n = gs->n_at;
    /* the last try (a swarm's added sources come after it in at[]) */
    const struct attempt *last = n ? &gs->at[tried < n ? tried : n - 1] : NULL;
    int timed_out = st != FS_OK && net_now_ms() >= g.deadline && !ctl_client_gone(o);
    const struct msg *winner = last ? &last->hit : NULL;
    int top = get_top_source(&res.srcs);
    for (unsigned i = 0; st == FS_OK && top >= 0 && i < n; i++)
        if (addr_equal(&gs->at[i].hit.holder, &res.srcs.s[top].holder))
            winner = &gs->at[i].hit; /* the source that delivered most */
    if (st == FS_OK && !a->json)
        get_done_text(o, name, winner, &res);
    else if (timed_out) {
        int part = last && xfer_partial_bytes(c->share_dir, name, last->hit.size, last->hit.md5);
        snprintf(error, sizeof error, "get_timeout_ms (%.1f s) reached after %u holder%s tried%s",
                 c->get_timeout_ms / 1000.0, n, n == 1 ? "" : "s",
                 part ? ": the partial download is kept, and the same get resumes it" : "");
    } else if (st == FS_ECANCELED && last) {
        snprintf(error, sizeof error, "%s: the partial download is kept, `get %s` resumes it",
                 last->why, name);
    } else if (n == 0) {
        snprintf(error, sizeof error, "not found: no peer within ttl %u has \"%s\"", c->ttl, name);
    } else if (st == FS_EEXIST || res.local) { /* no other holder would do better */
        snprintf(error, sizeof error, "%s", last->why);
    } else {
        snprintf(error, sizeof error, "every holder failed (%u tried); last: %s", n, last->why);
    }
    if (a->json)
        get_json(o, flood_query_id(q), name, st == FS_OK, gs->at, n, winner, &res, error);
    else if (st != FS_OK)
        ctl_print(o, 2, "floodshare: %s", error);
    flood_end(e->flood, q);
    free(gs);
    return st == FS_OK ? CTL_EXIT_OK : CTL_EXIT_FAIL;
}

/* --- ls, config, stats --- */

static int cmd_ls(const struct cmd_env *e, const struct args *a, struct ctl_out *o,
                  const struct cfg *c)
{
    struct share_item *items = NULL;

    if (need(o, a, 0, "ls [--json]"))
        return CTL_EXIT_USAGE;
    struct share *sh = node_share_get(e->node);
    /* A control thread may wait for the share's thread (a download just
     * finished, a file was just copied in); past the bound it lists the
     * index as it stands. */
    share_refresh_wait(sh, CMD_LS_FRESH_MS);
    long n = share_list(sh, &items);
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", share_dir(sh));
    node_share_put(e->node);
    if (n < 0) {
        ctl_print(o, 2, "floodshare: cannot list the share: %s", fs_strerror((int)n));
        return CTL_EXIT_FAIL;
    }
    if (a->json) {
        struct json j;
        json_init(&j, CMD_JSON_MAX);
        json_obj_open(&j, NULL);
        json_str(&j, "share_dir", dir);
        json_arr_open(&j, "items");
        for (long i = 0; i < n; i++) {
            json_obj_open(&j, NULL);
            json_str(&j, "name", items[i].name);
            json_str(&j, "kind", msg_kind_name(items[i].kind));
            json_uint(&j, "size", items[i].size);
            json_uint(&j, "files", items[i].files);
            json_str(&j, "md5", items[i].md5);
            json_obj_close(&j);
        }
        json_arr_close(&j);
        json_obj_close(&j);
        free(items);
        return emit_json(o, &j);
    }
    ctl_print(o, 1, "%s: %ld item%s", dir, n, n == 1 ? "" : "s");
    for (long i = 0; i < n; i++) {
        if (items[i].kind == MSG_KIND_FOLDER)
            ctl_print(o, 1, "  %-30s folder %12llu  %s  (%llu file%s)", items[i].name,
                      (unsigned long long)items[i].size, items[i].md5,
                      (unsigned long long)items[i].files, items[i].files == 1 ? "" : "s");
        else
            ctl_print(o, 1, "  %-30s file   %12llu  %s", items[i].name,
                      (unsigned long long)items[i].size, items[i].md5);
    }
    free(items);
    return CTL_EXIT_OK;
}

/* [security]'s mode, as `config --json` names it. */
static const char *security_mode(const struct cfg *c)
{
    return c->key_file[0] ? "keys" : c->passphrase[0] ? "passphrase" : "plain";
}

/* "4194304 bytes/s" or "no limit", for `config`. */
static const char *rate_text(char *buf, size_t cap, uint64_t bps)
{
    if (bps == 0)
        snprintf(buf, cap, "no limit");
    else
        snprintf(buf, cap, "%llu bytes/s", (unsigned long long)bps);
    return buf;
}

static int cmd_config(const struct cmd_env *e, const struct args *a, struct ctl_out *o,
                      const struct cfg *c)
{
    char nb[CFG_MAX_NEIGHBOURS * ADDR_STR_MAX] = "", one[ADDR_STR_MAX];

    if (need(o, a, 0, "config [--json]"))
        return CTL_EXIT_USAGE;
    struct fs_addr down[CUT_MAX];
    size_t n_down = cut_list(node_cut(e->node), down, CUT_MAX);
    if (a->json) {
        struct json j;
        json_init(&j, CMD_JSON_MAX);
        json_obj_open(&j, NULL);
        json_uint(&j, "id", c->id);
        json_str(&j, "host", c->host);
        json_uint(&j, "port", c->port);
        json_str(&j, "advertise", addr_format(node_self(e->node), one));
        json_str(&j, "share_dir", c->share_dir);
        json_uint(&j, "ttl", c->ttl);
        json_arr_open(&j, "neighbours");
        for (size_t i = 0; i < c->n_neighbours; i++)
            json_str(&j, NULL, addr_format(&c->neighbours[i], one));
        json_arr_close(&j);
        json_str(&j, "config_file", c->path);
        json_str(&j, "run_dir", node_run_dir(e->node));
        json_uint(&j, "workers", c->workers);
        json_uint(&j, "io_timeout_ms", c->io_timeout_ms);
        json_uint(&j, "hit_window_ms", c->hit_window_ms);
        json_uint(&j, "max_ttl", c->max_ttl);
        json_uint(&j, "upload_slots", c->upload_slots);
        json_uint(&j, "upload_slots_per_addr", c->upload_slots_per_addr);
        json_uint(&j, "min_upload_rate", c->min_upload_rate);
        json_uint(&j, "get_timeout_ms", c->get_timeout_ms);
        json_uint(&j, "max_sources", c->max_sources);
        json_uint(&j, "upload_rate", c->upload_rate);
        json_uint(&j, "download_rate", c->download_rate);
        json_arr_open(&j, "links_down");
        for (size_t i = 0; i < n_down; i++)
            json_str(&j, NULL, addr_format(&down[i], one));
        json_arr_close(&j);
        json_bool(&j, "paused", cut_paused(node_cut(e->node)));
        json_str(&j, "security", security_mode(c));
        json_uint(&j, "trusted", c->n_trusted);
        json_obj_open(&j, "accept");
        json_str(&j, "browse", cfg_accept_name(c->accept_browse));
        json_str(&j, "send_from", cfg_accept_name(c->send_from));
        json_uint(&j, "quota", c->quota);
        json_uint(&j, "max_item", c->max_item);
        json_obj_close(&j);
        json_obj_open(&j, "sync");
        json_uint(&j, "interval", c->sync_interval);
        json_arr_open(&j, "pairs");
        for (size_t i = 0; i < c->n_sync; i++) {
            json_obj_open(&j, NULL);
            json_str(&j, "name", c->sync[i].name);
            json_str(&j, "peer", c->sync[i].peer);
            json_obj_close(&j);
        }
        json_arr_close(&j);
        json_obj_close(&j);
        json_obj_close(&j);
        return emit_json(o, &j);
    }
    for (size_t i = 0; i < c->n_neighbours; i++) {
        size_t len = strlen(nb);
        snprintf(nb + len, sizeof nb - len, "%s%s", i ? ", " : "", addr_format(&c->neighbours[i], one));
    }
    ctl_print(o, 1, "peer %u", c->id);
    ctl_print(o, 1, "  config file  %s", c->path);
    struct fs_addr listen_at = {.port = c->port};
    char adv[ADDR_STR_MAX];
    memcpy(listen_at.host, c->host, sizeof listen_at.host);
    addr_format(node_self(e->node), adv);
    if (addr_equal(&listen_at, node_self(e->node)))
        ctl_print(o, 1, "  address      %s", adv);
    else
        ctl_print(o, 1, "  address      %s (listening on %s)", adv, addr_format(&listen_at, one));
    ctl_print(o, 1, "  share_dir    %s", c->share_dir);
    ctl_print(o, 1, "  ttl          %u (max_ttl %u)", c->ttl, c->max_ttl);
    ctl_print(o, 1, "  neighbours   %s", nb[0] ? nb : "(none)");
    ctl_print(o, 1, "  limits       %u workers, io timeout %u ms, hit window %u ms, get timeout "
              "%u ms%s", c->workers, c->io_timeout_ms, c->hit_window_ms, c->get_timeout_ms,
              c->get_timeout_ms ? "" : " (none)");
    ctl_print(o, 1, "  uploads      %u slots, %u per address, cut below %u bytes/s over 10 s%s",
              c->upload_slots, c->upload_slots_per_addr, c->min_upload_rate,
              c->min_upload_rate ? "" : " (never)");
    char up[32], down_r[32];
    ctl_print(o, 1, "  rates        upload %s, download %s (all transfers together)",
              rate_text(up, sizeof up, c->upload_rate),
              rate_text(down_r, sizeof down_r, c->download_rate));
    ctl_print(o, 1, "  swarming     up to %u sources per get (max_sources)", c->max_sources);
    ctl_print(o, 1, "  control      %s", node_sock_path(e->node));
    if (c->key_file[0])
        ctl_print(o, 1, "  security     keys: TLS 1.3, %zu trusted key%s", c->n_trusted,
                  c->n_trusted == 1 ? "" : "s");
    else if (c->passphrase[0])
        ctl_print(o, 1, "  security     passphrase: TLS 1.3, one shared secret");
    else
        ctl_print(o, 1, "  security     plain: no TLS (anyone can connect, and read the traffic)");
    nb[0] = '\0';
    for (size_t i = 0; i < n_down; i++) {
        size_t len = strlen(nb);
        snprintf(nb + len, sizeof nb - len, "%s%s", i ? ", " : "", addr_format(&down[i], one));
    }
    ctl_print(o, 1, "  links down   %s", nb[0] ? nb : "(none)");
    ctl_print(o, 1, "  paused       %s",
              cut_paused(node_cut(e->node)) ? "yes (drops every GET and FOUND)" : "no");
    char quota[32], max_item[32];
    ctl_print(o, 1, "  accept       browse %s, send_from %s, quota %s, max_item %s",
              cfg_accept_name(c->accept_browse), cfg_accept_name(c->send_from),
              c->quota ? offer_iec(quota, sizeof quota, c->quota) : "unlimited",
              c->max_item ? offer_iec(max_item, sizeof max_item, c->max_item) : "unlimited");
    if (!c->n_sync)
        ctl_print(o, 1, "  sync         (none)");
    for (size_t i = 0; i < c->n_sync; i++)
        ctl_print(o, 1, "  %-12s %s from peer %s (every %u s at least; `sync status`)",
                  i ? "" : "sync", c->sync[i].name, c->sync[i].peer, c->sync_interval);
    return CTL_EXIT_OK;
}

/* --- the text of `stats`: every counter once, grouped, a few to a line --- */

#define STATS_TEXT_WIDTH 78 /* columns a line of `stats` fills before it wraps */
#define STATS_TEXT_INDENT 11 /* the group's name, then the counters */

/* One line of `stats` being filled: "group     name N   name N", wrapped
 * under the group's name when the next counter does not fit. */
struct stats_line {
    struct ctl_out *o;
    char text[256];
    size_t len;
};

static void stats_line_start(struct stats_line *l, const char *group)
{
    l->len = (size_t)snprintf(l->text, sizeof l->text, "%-*s", STATS_TEXT_INDENT - 1, group);
}

static void stats_line_end(struct stats_line *l)
{
    if (l->len > STATS_TEXT_INDENT - 1)
        ctl_print(l->o, 1, "%s", l->text);
    l->len = 0;
}

static void stats_line_add(struct stats_line *l, const char *name, unsigned long long v)
{
    char item[96];
    int n = snprintf(item, sizeof item, "%s %llu", name, v);

    if (n < 0)
        return;
    if (l->len > STATS_TEXT_INDENT && l->len + 3 + (size_t)n > STATS_TEXT_WIDTH) {
        stats_line_end(l);
        stats_line_start(l, "");
    }
    l->len += (size_t)snprintf(l->text + l->len, sizeof l->text - l->len, "%s%s",
                               l->len > STATS_TEXT_INDENT ? "   " : " ", item);
    if (l->len >= sizeof l->text)
        l->len = sizeof l->text - 1;
}

/* 1 when the counter `name` is shown under "drops" by its reason instead. */
static int stats_is_drop(const char *name)
{
#define STATS_DROP_NAME(reason, counter) \
    if (strcmp(name, #counter) == 0)      \
        return 1;
    STATS_DROPS(STATS_DROP_NAME)
#undef STATS_DROP_NAME
    return 0;
}

/* The group a counter is shown in; counters added later land in "other". */
static const char *stats_group(const char *name)
{
    if (strncmp(name, "queries_", 8) == 0 || strcmp(name, "duplicates_forwarded") == 0)
        return "queries";
    if (strncmp(name, "hits_", 5) == 0)
        return "hits";
    if (strncmp(name, "upload", 6) == 0 || strncmp(name, "download", 8) == 0 ||
        strncmp(name, "bytes_", 6) == 0)
        return "transfers";
    return "other";
}

/* `stats` as text: the links, then each counter of STATS_MAP once, in its
 * group, and the drop counters once, by their reason (stats --json keeps
 * every name; README.md says what each counts). */
static void stats_text(struct ctl_out *o, const struct stats *st, unsigned open, unsigned proven,
                       size_t neighbours)
{
    static const char *const groups[] = {"queries", "hits", "transfers", "other"};
    struct stats_line l = {.o = o};

    ctl_print(o, 1, "links      %u open, %u proven (now, both ways, %zu neighbour%s configured)",
              open, proven, neighbours, neighbours == 1 ? "" : "s");
    for (size_t g = 0; g < sizeof groups / sizeof groups[0]; g++) {
        stats_line_start(&l, groups[g]);
#define STATS_GROUP_ITEM(name, text)                                              \
    if (!stats_is_drop(#name) && strcmp(stats_group(#name), groups[g]) == 0)    \
        stats_line_add(&l, #name, (unsigned long long)stats_get(st, name));
        STATS_MAP(STATS_GROUP_ITEM)
#undef STATS_GROUP_ITEM
        stats_line_end(&l);
    }
    stats_line_start(&l, "drops");
#define STATS_DROP_ITEM(reason, counter) \
    stats_line_add(&l, #reason, (unsigned long long)stats_get(st, counter));
    STATS_DROPS(STATS_DROP_ITEM)
#undef STATS_DROP_ITEM
    stats_line_end(&l);
}

static int cmd_stats(const struct cmd_env *e, const struct args *a, struct ctl_out *o,
                     const struct cfg *c)
{
    const struct stats *st = node_stats(e->node);
    unsigned open = 0, proven = 0;

    if (need(o, a, 0, "stats [--json]"))
        return CTL_EXIT_USAGE;
    flood_link_counts(e->flood, &open, &proven);
    if (a->json) {
        struct json j;
        json_init(&j, CMD_JSON_MAX);
        json_obj_open(&j, NULL);
        json_uint(&j, "peer", node_id(e->node));
        json_uint(&j, "links_open", open);
        json_uint(&j, "links_proven", proven);
#define STATS_JSON(name, text) json_uint(&j, #name, stats_get(st, name));
        STATS_MAP(STATS_JSON)
#undef STATS_JSON
        json_obj_open(&j, "drops");
#define DROPS_JSON(reason, name) json_uint(&j, #reason, stats_get(st, name));
        STATS_DROPS(DROPS_JSON)
#undef DROPS_JSON
        json_obj_close(&j);
        json_obj_close(&j);
        return emit_json(o, &j);
    }
    stats_text(o, st, open, proven, c->n_neighbours);
    return CTL_EXIT_OK;
}

/* --- transfers --- */

static int cmd_transfers(const struct cmd_env *e, const struct args *a, struct ctl_out *o,
                         const struct cfg *c)
{
    struct partial_info *parts = NULL;
    char dir[PATH_MAX + 32], who[ADDR_STR_MAX], src[160];
    if (need(o, a, 0, "transfers [--json]"))
        return CTL_EXIT_USAGE;
    /* On the heap: 64 rows of 8 sources would add ~60 KiB to the control
     * thread's frame. */
    struct xfer_active *act = calloc(XFER_MAX_ACTIVE, sizeof *act);
    if (!act) {
        ctl_print(o, 2, "floodshare: transfers: out of memory");
        return CTL_EXIT_FAIL;
    }
    size_t n = xfer_active_list(e->xfers, act, XFER_MAX_ACTIVE);
    snprintf(dir, sizeof dir, "%s/%s", c->share_dir, SHARE_STATE_DIR);
    long np = partial_list(dir, &parts);
    if (np < 0)
        np = 0;
    if (a->json) {
        struct json j;
        json_init(&j, CMD_JSON_MAX);
        json_obj_open(&j, NULL);
        json_arr_open(&j, "active");
        for (size_t i = 0; i < n; i++) {
            json_obj_open(&j, NULL);
            json_str(&j, "direction", act[i].upload ? "upload" : "download");
            json_str(&j, "name", act[i].name);
            json_str(&j, act[i].upload ? "requester" : "holder", addr_format(&act[i].other, who));
            json_uint(&j, "done", act[i].done);
            json_uint(&j, "total", act[i].total);
            json_double(&j, "seconds", act[i].seconds);
            if (!act[i].upload)
                xfer_sources_json(&j, "sources", &act[i].srcs);
            json_obj_close(&j);
        }
        json_arr_close(&j);
        json_arr_open(&j, "partial");
        for (long i = 0; i < np; i++) {
            json_obj_open(&j, NULL);
            json_str(&j, "name", parts[i].name);
            json_str(&j, "md5", parts[i].md5);
            json_uint(&j, "done", parts[i].have_bytes);
            json_uint(&j, "total", parts[i].size);
            json_str(&j, "holder", parts[i].holder.port ? addr_format(&parts[i].holder, who) : NULL);
            json_obj_close(&j);
        }
        json_arr_close(&j);
        json_obj_close(&j);
        free(parts);
        free(act);
        return emit_json(o, &j);
    }
    if (n == 0 && np == 0)
        ctl_print(o, 1, "no transfers running, no partial downloads");
    for (size_t i = 0; i < n; i++) {
        /* A swarmed download names how many sources, then one line each. */
        unsigned ns = act[i].upload ? 0 : act[i].srcs.n;
        if (ns > XFER_SOURCES_MAX)
            ns = XFER_SOURCES_MAX;
        if (ns > 1)
            snprintf(who, sizeof who, "%u sources", ns);
        else
            addr_format(&act[i].other, who);
        ctl_print(o, 1, "%-8s %-30s %5.1f%%  %llu of %llu bytes  %s %s  %.1f s",
                  act[i].upload ? "upload" : "download", act[i].name,
                  act[i].total ? 100.0 * (double)act[i].done / (double)act[i].total : 100.0,
                  (unsigned long long)act[i].done, (unsigned long long)act[i].total,
                  act[i].upload ? "to" : "from", who, act[i].seconds);
        for (unsigned k = 0; ns > 1 && k < ns; k++)
            ctl_print(o, 1, "%s", xfer_source_format(&act[i].srcs.s[k], src, sizeof src));
    }
    for (long i = 0; i < np; i++)
        ctl_print(o, 1, "%-8s %-30s %5.1f%%  %llu of %llu bytes  (resumable: get %s)", "partial",
                  parts[i].name,
                  parts[i].size ? 100.0 * (double)parts[i].have_bytes / (double)parts[i].size : 0,
                  (unsigned long long)parts[i].have_bytes, (unsigned long long)parts[i].size,
                  parts[i].name);
    free(parts);
    free(act);
    return CTL_EXIT_OK;
}

/* --- rm: undo a download so a demo can be repeated --- */

static int rm_failed(struct ctl_out *o, fs_status st, int err, const char *name, unsigned id,
                     const char *dir)
{
    if (st == FS_ENOTFOUND) {
        ctl_print(o, 2, "floodshare: rm: peer %u's share (%s) holds no \"%s\" (`peer %u ls` "
                  "lists what it holds)", id, dir, name, id);
    } else if (st == FS_EREFUSED && strcmp(name, SHARE_STATE_DIR) == 0) {
        ctl_print(o, 2, "floodshare: rm: \"%s\" is the peer's own state folder (partial downloads, "
                  "hash cache), not a shared item", name);
    } else if (st == FS_EREFUSED) {
        ctl_print(o, 2, "floodshare: rm: \"%s\" in %s is %s: refused (rm removes shared files and "
                  "folders only)", name, dir,
                  err == ELOOP ? "a symbolic link, which the share never follows nor lists"
                               : "neither a file nor a folder");
    } else {
        ctl_print(o, 2, "floodshare: rm: cannot remove \"%s\" from %s: %s", name, dir,
                  strerror(err));
    }
    return CTL_EXIT_FAIL;
}

static int cmd_rm(const struct cmd_env *e, const struct args *a, struct ctl_out *o,
                  const struct cfg *c)
{
    enum msg_kind kind = MSG_KIND_FILE;
    char dir[PATH_MAX];

    /* The same check as get's: one name, so nothing outside the share. */
    if (need(o, a, 1, "rm NAME [--json]") || check_name(o, a->pos[0]))
        return CTL_EXIT_USAGE;
    const char *name = a->pos[0];
    struct share *sh = node_share_get(e->node);
    snprintf(dir, sizeof dir, "%s", share_dir(sh));
    errno = 0;
    fs_status st = share_remove(sh, name, &kind);
    int err = errno;
    if (st == FS_OK) /* so that an `ls` or a query right after no longer lists it */
        share_refresh_wait(sh, CMD_LS_FRESH_MS);
    node_share_put(e->node);
    if (st != FS_OK)
        return rm_failed(o, st, err, name, c->id, dir);
    log_msg(L_INFO, "rm %s (control command)", name);
    if (a->json) {
        struct json j;
        json_init(&j, 4096);
        json_obj_open(&j, NULL);
        json_str(&j, "removed", name);
        json_str(&j, "kind", msg_kind_name(kind));
        json_str(&j, "share_dir", dir);
        json_obj_close(&j);
        return emit_json(o, &j);
    }
    ctl_print(o, 1, "removed the %s \"%s\" from peer %u's share (%s); `peer %u get %s` fetches "
              "it again", kind == MSG_KIND_FOLDER ? "folder" : "file", name, c->id, dir, c->id,
              name);
    return CTL_EXIT_OK;
}

/* --- modify --- */

static int cmd_modify(const struct cmd_env *e, const struct args *a, struct ctl_out *o,
                      const struct cfg *c)
{
    static const struct {
        const char *key, *section, *ini_key;
    } keys[] = {
        {"ttl", "peer", "ttl"},
        {"neighbours", "neighbours", "peers"},
        {"share_dir", "peer", "share_dir"},
        {"log_level", "peer", "log_level"},
        {"upload_rate", "limits", "upload_rate"},
        {"download_rate", "limits", "download_rate"},
        {"max_sources", "limits", "max_sources"},
        {"browse", "accept", "browse"},
        {"send_from", "accept", "send_from"},
        {"quota", "accept", "quota"},
        {"max_item", "accept", "max_item"},
    };
    char err[CFG_ERR_MAX];
    struct cfg *n;

    if (need(o, a, 2, "modify ttl|neighbours|share_dir|log_level|upload_rate|download_rate|"
                      "max_sources|browse|send_from|quota|max_item VALUE"))
        return CTL_EXIT_USAGE;
    size_t k = 0;
    while (k < sizeof keys / sizeof keys[0] && strcmp(keys[k].key, a->pos[0]) != 0)
        k++;
    if (k == sizeof keys / sizeof keys[0] &&
        (!strcmp(a->pos[0], "passphrase") || !strcmp(a->pos[0], "key") ||
         !strcmp(a->pos[0], "trusted") || !strcmp(a->pos[0], "keylog"))) {
        /* Live links and transfers were proven under the old secret: a change
         * applied to new connections only would leave a mixed network. */
        ctl_print(o, 2, "floodshare: modify: [security] %s is read at start only: edit the INI "
                  "and restart the peer", a->pos[0]);
        return CTL_EXIT_USAGE;
    }
    if (k == sizeof keys / sizeof keys[0] && !strcmp(a->pos[0], "advertise")) {
        /* The neighbours' links were proven, and queries in flight sent,
         * under the old address: a peer renaming itself midway would have
         * its FOUNDs refuted and its links challenged against an address
         * nobody dials any more. */
        ctl_print(o, 2, "floodshare: modify: [peer] advertise is read at start only (links were "
                  "proven under the old address): edit the INI and restart the peer");
        return CTL_EXIT_USAGE;
    }
    if (k == sizeof keys / sizeof keys[0]) {
        ctl_print(o, 2, "floodshare: modify: unknown key \"%s\" (ttl, neighbours, share_dir, "
                  "log_level, upload_rate, download_rate, max_sources, browse, send_from, quota, "
                  "max_item can change while the peer runs)", a->pos[0]);
        return CTL_EXIT_USAGE;
    }
    /* Serialised: two concurrent modifies must not interleave file edits. */
    static pthread_mutex_t modify_lock = PTHREAD_MUTEX_INITIALIZER;
    pthread_mutex_lock(&modify_lock);
    fs_status st = cfg_set(c->path, keys[k].section, keys[k].ini_key, a->pos[1], err, sizeof err);
    n = malloc(sizeof *n);
    if (st == FS_OK && n)
        st = cfg_load(c->path, n, err, sizeof err);
    int code = CTL_EXIT_CONFIG;
    if (st == FS_OK && n) {
        /* What can change live does (one call: the peer swaps its share and
         * publishes the new snapshot); id, host, port and the other
         * [limits] need a restart. */
        code = CTL_EXIT_OK;
        if (node_reconfigure(e->node, n, keys[k].key, err, sizeof err) != FS_OK) {
            ctl_print(o, 2, "floodshare: %s", err);
            code = CTL_EXIT_FAIL;
        }
    } else {
        ctl_print(o, 2, "floodshare: %s", n ? err : "out of memory");
    }
    pthread_mutex_unlock(&modify_lock);
    free(n);
    if (code == CTL_EXIT_OK) {
        ctl_print(o, 1, "%s = %s (applied, and saved to %s)", a->pos[0], a->pos[1], c->path);
        log_msg(L_INFO, "modify %s = %s", a->pos[0], a->pos[1]);
    }
    return code;
}

/* --- link down/up, pause/resume: the teacher's scissors (cut.h) --- */

static int cmd_link(const struct cmd_env *e, const struct args *a, struct ctl_out *o,
                    const struct cfg *c)
{
    struct fs_addr to;
    const char *why = NULL;
    char one[ADDR_STR_MAX];

    if (need(o, a, 2, "link down|up HOST:PORT"))
        return CTL_EXIT_USAGE;
    int down = strcmp(a->pos[0], "down") == 0;
    if (!down && strcmp(a->pos[0], "up") != 0) {
        ctl_print(o, 2, "floodshare: link: \"%s\" is neither down nor up", a->pos[0]);
        return CTL_EXIT_USAGE;
    }
    if (addr_parse(a->pos[1], strlen(a->pos[1]), &to, &why) != FS_OK) {
        ctl_print(o, 2, "floodshare: link: bad address \"%s\": %s", a->pos[1],
                  why ? why : "expected HOST:PORT");
        return CTL_EXIT_USAGE;
    }
    size_t i = 0;
    while (i < c->n_neighbours && !addr_equal(&c->neighbours[i], &to))
        i++;
    if (down && i == c->n_neighbours) {
        /* Up stays allowed: `modify neighbours` may have removed it since. */
        ctl_print(o, 2, "floodshare: link: %s is not a neighbour of peer %u (see config)",
                  addr_format(&to, one), c->id);
        return CTL_EXIT_FAIL;
    }
    if (cut_set_link(node_cut(e->node), &to, down) != FS_OK) {
        ctl_print(o, 2, "floodshare: link: %d links are down already", CUT_MAX);
        return CTL_EXIT_FAIL;
    }
    ctl_print(o, 1, "link to %s is %s", addr_format(&to, one),
              down ? "down: no GET or FOUND goes over it either way" : "up");
    log_msg(L_INFO, "link to %s %s (control command)", one, down ? "down" : "up");
    return CTL_EXIT_OK;
}

static int cmd_pause(const struct cmd_env *e, const struct args *a, struct ctl_out *o,
                     const struct cfg *c)
{
    if (need(o, a, 0, "pause"))
        return CTL_EXIT_USAGE;
    cut_set_paused(node_cut(e->node), 1);
    ctl_print(o, 1, "peer %u paused: it drops every GET and FOUND and sends none (resume to undo)",
              node_id(e->node));
    log_msg(L_INFO, "paused (control command)");
    return CTL_EXIT_OK;
}

static int cmd_resume(const struct cmd_env *e, const struct args *a, struct ctl_out *o,
                      const struct cfg *c)
{
    if (need(o, a, 0, "resume"))
        return CTL_EXIT_USAGE;
    cut_set_paused(node_cut(e->node), 0);
    ctl_print(o, 1, "peer %u resumed", node_id(e->node));
    log_msg(L_INFO, "resumed (control command)");
    return CTL_EXIT_OK;
}

/* --- watch, events: trace events (docs/TRACE.md) --- */

enum ev_form { FORM_TEXT, FORM_JSON, FORM_RAW };

#define CMD_WATCH_POLL_MS 200 /* how soon a watcher that hung up is noticed */

/* Parses [--json|--raw] [QID] for watch and events; qid is NULL when
 * none was given (watch takes none). -1 after printing why. */
static int parse_trace_args(int argc, char **argv, int want_qid, enum ev_form *form,
                            const char **qid, struct ctl_out *o)
{
    *form = FORM_TEXT;
    *qid = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--json") == 0) {
            *form = FORM_JSON;
        } else if (strcmp(a, "--raw") == 0) {
            *form = FORM_RAW;
        } else if (want_qid && !*qid && a[0] != '-') {
            if (a[0] == 'q') /* as logs and `watch` show it: q4d78 */
                a++;
            size_t n = strlen(a);
            int hex = n >= 1 && n <= MSG_QID_LEN;
            for (size_t k = 0; k < n && hex; k++)
                hex = (a[k] >= '0' && a[k] <= '9') || (a[k] >= 'a' && a[k] <= 'f');
            if (!hex) {
                ctl_print(o, 2, "floodshare: %s: \"%s\" is not a query id (up to %d lower-case "
                          "hex digits, e.g. 4d782a6673987d51 or q4d78)", argv[0], argv[i],
                          MSG_QID_LEN);
                return -1;
            }
            *qid = a;
        } else {
            ctl_print(o, 2, "usage: peer N %s", want_qid ? "events [--json] [QID]"
                                                          : "watch [--json]");
            return -1;
        }
    }
    return 0;
}

/* Writes one event to the client in the form asked for. */
static void send_event(struct ctl_out *o, enum ev_form form, const struct trace_event *ev)
{
    char line[CTL_MAX_LINE];
    int n;

    if (form == FORM_RAW) {
        n = trace_encode(ev, line, sizeof line);
        if (n > 0)
            ctl_send_event(o, line, (size_t)n);
        return;
    }
    n = form == FORM_JSON ? trace_format_json(ev, line, sizeof line)
                          : trace_format_text(ev, NULL, NULL, 0, line, sizeof line);
    if (n > 0)
        ctl_write(o, 1, line, (size_t)n);
}

/* Streams events as they happen until the client hangs up (noticed within
 * CMD_WATCH_POLL_MS) or the peer stops. A client that does not read loses
 * events (told by a "lost" event); the peer never waits for it. */
static int cmd_watch(const struct cmd_env *e, int argc, char **argv, struct ctl_out *o)
{
    enum ev_form form;
    const char *qid;
    struct trace_event ev;

    if (parse_trace_args(argc, argv, 0, &form, &qid, o) < 0)
        return CTL_EXIT_USAGE;
    struct trace_sub *sub = trace_subscribe(node_trace(e->node));
    if (!sub) {
        ctl_print(o, 2, "floodshare: watch: %d watchers already listen to this peer",
                  TRACE_MAX_SUBS);
        return CTL_EXIT_FAIL;
    }
    if (form == FORM_TEXT)
        ctl_print(o, 2, "watching peer %u (Ctrl-C to stop)", node_id(e->node));
    while (!node_stopping(e->node) && !ctl_client_gone(o)) {
        if (trace_next(node_trace(e->node), sub, CMD_WATCH_POLL_MS, &ev))
            send_event(o, form, &ev);
    }
    /* A last peer_down (shutdown) may still be queued. */
    while (!o->broken && trace_next(node_trace(e->node), sub, 0, &ev))
        send_event(o, form, &ev);
    trace_unsubscribe(node_trace(e->node), sub);
    return CTL_EXIT_OK;
}

/* Dumps the ring (or one query's events in it) and returns. */
static int cmd_events(const struct cmd_env *e, int argc, char **argv, struct ctl_out *o)
{
    enum ev_form form;
    const char *qid;
    struct trace_event *evs;
    struct trace_info info;
    char a[ADDR_STR_MAX];

    if (parse_trace_args(argc, argv, 1, &form, &qid, o) < 0)
        return CTL_EXIT_USAGE;
    size_t n = trace_dump(node_trace(e->node), qid, &evs);
    trace_get_info(node_trace(e->node), &info);
    if (form == FORM_JSON) {
        struct json j;
        json_init(&j, (size_t)64 * 1024 * 1024);
        json_obj_open(&j, NULL);
        json_uint(&j, "schema", TRACE_SCHEMA);
        json_uint(&j, "peer", node_id(e->node));
        json_str(&j, "addr", addr_format(node_self(e->node), a));
        json_uint(&j, "watchers", info.subscribers);
        json_uint(&j, "emitted", info.emitted);
        json_uint(&j, "ring_size", info.ring);
        json_str(&j, "qid", qid);
        json_arr_open(&j, "events");
        for (size_t i = 0; i < n; i++)
            trace_json(&j, &evs[i]);
        json_arr_close(&j);
        json_obj_close(&j);
        free(evs);
        return emit_json(o, &j);
    }
    if (form == FORM_TEXT)
        ctl_print(o, 1, "peer %u (%s): %zu event%s%s%s; %llu emitted, the ring keeps the last %zu; "
                  "%u watcher%s", node_id(e->node), addr_format(node_self(e->node), a), n,
                  n == 1 ? "" : "s",
                  qid ? " of query " : "", qid ? qid : "", (unsigned long long)info.emitted,
                  info.ring, info.subscribers, info.subscribers == 1 ? "" : "s");
    for (size_t i = 0; i < n && !o->broken; i++)
        send_event(o, form, &evs[i]);
    free(evs);
    return CTL_EXIT_OK;
}

/* One machine-readable line for `floodshare peers` and `watch`:
 * "id=N address=HOST:PORT neighbours=A,B started=US" ("-" for none; an
 * IPv6 HOST in brackets).
 * started (microseconds since the epoch, when this run began) tells a
 * restarted peer from one whose event ring merely moved on. */
static int cmd_ping(const struct cmd_env *e, struct ctl_out *o)
{
    char nb[CFG_MAX_NEIGHBOURS * ADDR_STR_MAX] = "-", one[ADDR_STR_MAX];
    const struct cfg *c = node_cfg_get(e->node);
    struct trace_info info;

    for (size_t i = 0; i < c->n_neighbours; i++) {
        size_t len = i ? strlen(nb) : 0;
        snprintf(nb + len, sizeof nb - len, "%s%s", i ? "," : "", addr_format(&c->neighbours[i], one));
    }
    trace_get_info(node_trace(e->node), &info);
    /* The advertised address: the one the other peers list as a neighbour. */
    ctl_print(o, 1, "id=%u address=%s neighbours=%s started=%llu", c->id,
              addr_format(node_self(e->node), one), nb, (unsigned long long)info.started_us);
    node_cfg_put(c);
    return CTL_EXIT_OK;
}

int cmd_run(const struct cmd_env *e, int argc, char **argv, struct ctl_out *o)
{
    static const struct {
        const char *name;
        int (*fn)(const struct cmd_env *, const struct args *, struct ctl_out *,
                  const struct cfg *);
    } cmds[] = {
        {"get", cmd_get},     {"search", cmd_search}, {"ls", cmd_ls},       {"config", cmd_config},
        {"stats", cmd_stats}, {"modify", cmd_modify}, {"transfers", cmd_transfers},
        {"link", cmd_link},   {"pause", cmd_pause},   {"resume", cmd_resume},
        {"rm", cmd_rm},
    };
    struct args a;

    if (strcmp(argv[0], "ping") == 0)
        return cmd_ping(e, o);
    if (strcmp(argv[0], "watch") == 0)
        return cmd_watch(e, argc, argv, o);
    if (strcmp(argv[0], "events") == 0)
        return cmd_events(e, argc, argv, o);
    if (strcmp(argv[0], "browse") == 0)
        return cmd_browse(e, argc, argv, o);
    if (argc >= 2 && strcmp(argv[0], "sync") == 0 && strcmp(argv[1], "status") == 0)
        return cmd_sync_status(e, argc, argv, o); /* the [sync] pairs (syncpair.h) */
    if (cmd_is_get_from(argc, argv))
        return cmd_get_from(e, argc, argv, o);
    if (strcmp(argv[0], "send") == 0)
        return cmd_send_run(e, argc, argv, o);
    if (strcmp(argv[0], "sync") == 0)
        return cmd_sync_run(e, argc, argv, o);
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        if (strcmp(argv[0], cmds[i].name) != 0)
            continue;
        if (parse_args(argc, argv, &a, o) < 0)
            return CTL_EXIT_USAGE;
        /* One shared snapshot of the live configuration for the whole command
         * (never a 16 KiB copy; a `modify` meanwhile publishes a new one). */
        const struct cfg *c = node_cfg_get(e->node);
        int rc = cmds[i].fn(e, &a, o, c);
        node_cfg_put(c);
        return rc;
    }
    ctl_print(o, 2, "floodshare: unknown command \"%s\" (get, search, ls, config, modify, stats, "
              "transfers, link, pause, resume, rm, watch, events, browse, send)",
              argv[0]);
    return CTL_EXIT_USAGE;
}
