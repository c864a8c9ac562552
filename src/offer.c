/* offer.c - the receiving side of a send (offer.h): judge an OFFER by
 * [accept], then pull the item with the get path and report on the offer's
 * connection. */
#include "floodshare/offer.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "floodshare/cfg.h"
#include "floodshare/conn.h"
#include "floodshare/flood.h"
#include "floodshare/log.h"
#include "floodshare/net.h"
#include "floodshare/node.h"
#include "floodshare/share.h"
#include "floodshare/trace.h"
#include "floodshare/xfer.h"

#define OFFER_SHARE_FRESH_MS 5000 /* how long quota waits for the share's index to catch up */

char *offer_iec(char *out, size_t cap, uint64_t n)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    double v = (double)n;
    int u = 0;

    while (v >= 1024.0 && u < 6) {
        v /= 1024.0;
        u++;
    }
    if (u == 0 || v - (double)(uint64_t)v < 0.05 || v >= 100.0)
        snprintf(out, cap, "%.0f %s", v, units[u]);
    else
        snprintf(out, cap, "%.1f %s", v, units[u]);
    return out;
}

const char *offer_judge(const struct offer_view *v, const struct msg *m, char *why, size_t cap)
{
    char h[ADDR_STR_MAX], a[32], b[32], c[32];

    addr_format(&m->holder, h);
    if (v->send_from == CFG_ACCEPT_NONE) {
        snprintf(why, cap, "not accepted from %s (send_from = none)", h);
        return "send_from";
    }
    if (v->send_from == CFG_ACCEPT_NEIGHBOURS && !v->neighbour) {
        snprintf(why, cap, "not accepted from %s (send_from = neighbours, and no proven "
                 "neighbour link of this peer comes from there)", h);
        return "send_from";
    }
    /* The receiver dials the holder: only ever the host the offer came
     * from, so an offer cannot aim this peer at a third machine. */
    if (strcmp(v->source.host, m->holder.host) != 0) {
        snprintf(why, cap, "not accepted from %s (the offer came from %s, another host)", h,
                 v->source.host);
        return "holder";
    }
    if (v->exists) {
        snprintf(why, cap, "already exists: %s", m->name);
        return "exists";
    }
    if (v->max_item && m->size > v->max_item) {
        snprintf(why, cap, "item too large: %s is %s, over max_item %s", m->name,
                 offer_iec(a, sizeof a, m->size), offer_iec(b, sizeof b, v->max_item));
        return "max_item";
    }
    /* Written as a subtraction on the side known to be large enough. */
    if (v->quota && (v->used > v->quota || m->size > v->quota - v->used)) {
        snprintf(why, cap, "over quota: %s of %s used, item is %s", offer_iec(a, sizeof a, v->used),
                 offer_iec(b, sizeof b, v->quota), offer_iec(c, sizeof c, m->size));
        return "quota";
    }
    return NULL;
}

/* --- offers being pulled: their names and bytes, so that two offers at
 * once cannot both pass the quota, or both take one name. --- */

static struct {
    pthread_mutex_t lock; /* guards the rest */
    char names[OFFER_MAX_ACTIVE][MSG_MAX_NAME + 1]; /* "" : free */
    uint64_t sizes[OFFER_MAX_ACTIVE];
} active = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* Bytes of offers being pulled, and whether name is one of them. */
static uint64_t active_bytes(const char *name, int *taken)
{
    uint64_t sum = 0;

    *taken = 0;
    for (int i = 0; i < OFFER_MAX_ACTIVE; i++) {
        if (!active.names[i][0])
            continue;
        sum += active.sizes[i];
        *taken |= strcmp(active.names[i], name) == 0;
    }
    return sum;
}

static int active_add(const char *name, uint64_t size)
{
    for (int i = 0; i < OFFER_MAX_ACTIVE; i++) {
        if (!active.names[i][0]) {
            snprintf(active.names[i], sizeof active.names[i], "%s", name);
            active.sizes[i] = size;
            return i;
        }
    }
    return -1;
}

static void active_del(int slot)
{
    pthread_mutex_lock(&active.lock);
    active.names[slot][0] = '\0';
    active.sizes[slot] = 0;
    pthread_mutex_unlock(&active.lock);
}

/* Bytes the share holds (its top-level items), after the index took in
 * recent changes (bounded wait). */
static uint64_t share_used(struct node *n)
{
    struct share_item *items = NULL;
    uint64_t sum = 0;
    struct share *sh = node_share_get(n);

    share_refresh_wait(sh, OFFER_SHARE_FRESH_MS);
    long k = share_list(sh, &items);
    node_share_put(n);
    for (long i = 0; i < k; i++)
        sum += items[i].size;
    free(items);
    return sum;
}

/* Whether name exists in the share right now (a link counts: never replaced). */
static int share_has(struct node *n, const char *name)
{
    struct share *sh = node_share_get(n);
    struct stat sb;
    int has = fstatat(share_root_fd(sh), name, &sb, AT_SYMLINK_NOFOLLOW) == 0 || errno != ENOENT;

    node_share_put(n);
    return has;
}

static void offer_event(struct node *n, enum trace_type type, const struct msg *m,
                        uint64_t bytes, const char *reason, const char *detail)
{
    struct trace_event ev;

    trace_init_event(&ev, type, NULL);
    trace_set(ev.name, sizeof ev.name, m->name);
    ev.from = m->holder;
    ev.from_peer = m->peer_id;
    ev.holder = m->peer_id;
    ev.size = m->size;
    ev.bytes = bytes;
    trace_set(ev.md5, sizeof ev.md5, m->md5);
    trace_set(ev.reason, sizeof ev.reason, reason);
    trace_set(ev.detail, sizeof ev.detail, detail);
    trace_emit(node_trace(n), &ev);
}

/* --- the pull --- */

struct pull {
    struct node *n;
    struct conn *c;
    int timeout_ms;
    uint64_t deadline, last_sent;
    uint64_t done, total; /* the last progress reported */
    int broken; /* the sender is gone, or a report could not be written */
};

static void pull_report(struct pull *p, uint64_t done, uint64_t total)
{
    struct msg r;

    memset(&r, 0, sizeof r);
    r.type = MSG_PROGRESS;
    r.offset = p->done = done;
    r.size = p->total = total;
    if (!p->broken && conn_send_msg(p->c, &r, p->timeout_ms) != FS_OK)
        p->broken = 1;
    p->last_sent = net_now_ms();
}

static void pull_progress(void *ctx, const struct xfer_event *ev)
{
    pull_report(ctx, ev->done, ev->total);
}

/* The sender hanging up (its command was stopped) stops the pull, which
 * stays resumable; so do the deadline and the peer stopping. */
static int pull_cancelled(void *ctx)
{
    struct pull *p = ctx;
    struct pollfd pfd = {.fd = p->c->fd, .events = POLLRDHUP};

    if (!p->broken && poll(&pfd, 1, 0) > 0 && (pfd.revents & (POLLRDHUP | POLLHUP | POLLERR)))
        p->broken = 1;
    /* A pull that reports nothing for a while (re-reading a large partial,
     * a holder slow to answer) still tells the sender it is alive. */
    if (!p->broken && net_now_ms() - p->last_sent >= OFFER_KEEPALIVE_MS)
        pull_report(p, p->done, p->total);
    return p->broken || node_stopping(p->n) || net_now_ms() >= p->deadline;
}

/* Waits ms for a busy holder (the keep-alive goes on). -1 when cancelled. */
static int pull_wait(struct pull *p, unsigned ms, uint64_t done, uint64_t total)
{
    uint64_t until = net_now_ms() + ms;

    p->done = done; /* what pull_cancelled()'s keep-alive reports */
    p->total = total;
    while (net_now_ms() < until) {
        if (pull_cancelled(p))
            return -1;
        poll(NULL, 0, 100);
    }
    return 0;
}

/* Pulls the offered item from its holder; FS_OK with res filled, else
 * res->why says why. */
static fs_status pull(struct pull *p, struct xfer_plane *x, const struct msg *m,
                      const char *share, struct xfer_result *res)
{
    struct msg hit;

    /* A hit as a search would have given it: the holder is the sender's
     * advertised address (checked above against where the offer came from),
     * and the item must have the offer's size and md5. */
    memset(&hit, 0, sizeof hit);
    hit.type = MSG_FOUND;
    hit.from = m->holder;
    hit.holder = m->holder;
    hit.peer_id = m->peer_id;
    hit.kind = m->kind;
    hit.size = m->size;
    memcpy(hit.md5, m->md5, sizeof hit.md5);
    memcpy(hit.root, m->root, sizeof hit.root);
    memcpy(hit.name, m->name, sizeof hit.name);
    memcpy(hit.path, m->name, sizeof hit.name);
    struct xfer_watch w = {.progress = pull_progress, .cancelled = pull_cancelled, .ctx = p};
    fs_status st = FS_EIO;
    for (unsigned tries = 0; tries <= XFER_BUSY_TRIES; tries++) {
        st = xfer_fetch(x, &hit, &w, res);
        if (st != FS_EBUSY || !res->retry_ms)
            break;
        uint64_t have = xfer_partial_bytes(share, m->name, m->size, m->md5);
        if (pull_wait(p, res->retry_ms, have, m->size) < 0) {
            st = FS_ECANCELED;
            snprintf(res->why, sizeof res->why, "cancelled while the holder was busy");
            break;
        }
    }
    return st;
}

void offer_serve(struct node *n, struct flood *f, struct xfer_plane *x, struct conn *c,
                 const struct msg *m)
{
    struct offer_view v;
    struct fs_addr sock;
    char why[MSG_MAX_TEXT + 1], share[PATH_MAX], h[ADDR_STR_MAX];
    const struct cfg *cf = node_cfg_get(n);
    int timeout = (int)cf->io_timeout_ms;
    unsigned get_timeout = cf->get_timeout_ms;

    memset(&v, 0, sizeof v);
    v.send_from = cf->send_from;
    v.quota = cf->quota;
    v.max_item = cf->max_item;
    snprintf(share, sizeof share, "%s", cf->share_dir);
    node_cfg_put(cf);
    addr_format(&m->holder, h);
    offer_event(n, TR_OFFER_RECEIVED, m, 0, NULL, NULL);
    net_peer_addr(c->fd, &v.source);
    v.neighbour = flood_link_proven(f, &m->holder, &sock) &&
                  strcmp(sock.host, v.source.host) == 0;
    if (v.quota)
        v.used = share_used(n);

    pthread_mutex_lock(&active.lock);
    int taken;
    v.used += active_bytes(m->name, &taken);
    v.exists = taken || share_has(n, m->name);
    const char *word = offer_judge(&v, m, why, sizeof why);
    int slot = -1;
    if (!word && (slot = active_add(m->name, m->size)) < 0) {
        snprintf(why, sizeof why, "busy: %d sends are being received already", OFFER_MAX_ACTIVE);
        word = "busy";
    }
    pthread_mutex_unlock(&active.lock);
    if (word) {
        log_msg(L_INFO, "offer of %s from %s refused: %s", m->name, h, why);
        offer_event(n, TR_OFFER_REFUSED, m, 0, word, why);
        conn_send_error(c, "refused", why, timeout);
        return;
    }

    struct msg r;
    uint64_t have = xfer_partial_bytes(share, m->name, m->size, m->md5);
    memset(&r, 0, sizeof r);
    r.type = MSG_ACCEPT;
    r.offset = have;
    log_msg(L_INFO, "offer of %s (%llu bytes) from %s accepted%s", m->name,
            (unsigned long long)m->size, h, have ? ": resuming" : "");
    offer_event(n, TR_OFFER_ACCEPTED, m, have, NULL, NULL);
    struct pull p = {.n = n, .c = c, .timeout_ms = timeout, .last_sent = net_now_ms(),
                     .done = have, .total = m->size,
                     .deadline = get_timeout ? net_now_ms() + get_timeout : UINT64_MAX};
    struct xfer_result res;
    memset(&res, 0, sizeof res);
    fs_status st = conn_send_msg(c, &r, timeout) == FS_OK ? pull(&p, x, m, share, &res)
                                                          : FS_ECLOSED;
    active_del(slot);
    if (st == FS_OK) {
        memset(&r, 0, sizeof r);
        r.type = MSG_DONE;
        r.size = m->size;
        memcpy(r.md5, m->md5, sizeof r.md5);
        r.len = res.bytes;
        r.offset = res.resumed_from;
        conn_send_msg(c, &r, timeout);
        return;
    }
    if (st == FS_ECLOSED)
        snprintf(res.why, sizeof res.why, "the sender hung up");
    else if (st == FS_ECANCELED && net_now_ms() >= p.deadline)
        snprintf(res.why, sizeof res.why, "get_timeout_ms reached: the partial is kept, and the "
                 "same send resumes it");
    log_msg(L_INFO, "send of %s from %s failed: %s", m->name, h, res.why);
    if (!p.broken)
        conn_send_error(c, "failed", res.why[0] ? res.why : fs_strerror(st), timeout);
}
