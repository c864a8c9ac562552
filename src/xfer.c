/* xfer.c - what both sides of a transfer share: the table of running
 * transfers (`transfers`), temporary names and the state folder. The holder
 * side is xfer_serve.c, the requester side xfer_fetch.c. */
#include "floodshare/xfer.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "floodshare/log.h"
#include "floodshare/net.h"
#include "floodshare/partial.h"
#include "floodshare/peer.h"
#include "floodshare/slots.h"
#include "floodshare/share.h"
#include "floodshare/zipio.h"
#include "xfer_int.h"

/* Temporary names under SHARE_STATE_DIR: "out-*" archives being served,
 * "in-*" archives being received, "x-*" extraction folders. */
void xfer_tmp_name(char *out, size_t cap, const char *share_dir, const char *prefix,
                   const char *suffix)
{
    unsigned char r[6];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r)
        memset(r, 0, sizeof r);
    snprintf(out, cap, "%s/%s/%s-%02x%02x%02x%02x%02x%02x%s", share_dir, SHARE_STATE_DIR, prefix,
             r[0], r[1], r[2], r[3], r[4], r[5], suffix);
}

/* --- the table of running transfers --- */

struct xfer_row {
    int used;
    struct xfer_active a;
    uint64_t start_ms;
};

/* lock guards every row. up and min_rate are set once at start-up, before
 * any upload, and only read after that; up has its own lock. */
struct xfer_table {
    pthread_mutex_t lock;
    struct xfer_row slots[XFER_MAX_ACTIVE];
    struct slots *up; /* upload slots; NULL: not limited */
    unsigned min_rate;
};

struct xfer_table *xfer_table_new(void)
{
    struct xfer_table *t = calloc(1, sizeof *t);
    if (t)
        pthread_mutex_init(&t->lock, NULL);
    return t;
}

void xfer_table_free(struct xfer_table *t)
{
    if (!t)
        return;
    pthread_mutex_destroy(&t->lock);
    slots_free(t->up);
    free(t);
}

fs_status xfer_set_limits(struct xfer_table *t, const struct xfer_limits *lim)
{
    if (lim->slots == 0 || lim->slots_per_addr == 0)
        return FS_EINVAL;
    struct slots *s = slots_new(lim->slots, lim->slots_per_addr);
    if (!s)
        return FS_ENOMEM;
    slots_free(t->up);
    t->up = s;
    t->min_rate = lim->min_rate;
    return FS_OK;
}

unsigned xfer_min_rate(struct peer *p)
{
    return p->xfers->min_rate;
}

int xfer_slot_take(struct peer *p, struct conn *c, struct xfer_slot *s)
{
    struct slots *up = p->xfers->up;
    struct fs_addr who;

    if (s->held || !up)
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
    stats_inc(&p->stats, busy_refused);
    log_msg(L_DEBUG, "upload to %s refused busy: %s", who.host,
            v == SLOTS_FULL        ? "every upload slot is taken"
            : v == SLOTS_PENALIZED ? "an upload to its address was just cut for being slow"
                                   : "its address holds its share of slots");
    conn_send_msg(c->fd, &busy, c->timeout_ms);
    return -1;
}

void xfer_slot_penalize(struct peer *p, const char *host)
{
    if (p->xfers->up)
        slots_penalize(p->xfers->up, host, net_now_ms() + XFER_SLOW_PENALTY_MS);
}

void xfer_slot_give(struct peer *p, struct xfer_slot *s)
{
    if (!s->held)
        return;
    slots_give(p->xfers->up, s->host);
    s->held = 0;
}

/* Registers a transfer; returns its slot, or -1 when the table is full
 * (the transfer still runs, it is just not listed). */
int xfer_table_add(struct peer *p, int upload, const char *name, const struct fs_addr *other,
                   uint64_t total)
{
    struct xfer_table *t = p->xfers;
    int idx = -1;

    pthread_mutex_lock(&t->lock);
    for (int i = 0; i < XFER_MAX_ACTIVE && idx < 0; i++) {
        if (t->slots[i].used)
            continue;
        idx = i;
        struct xfer_row *s = &t->slots[i];
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

void xfer_table_set(struct peer *p, int idx, uint64_t done)
{
    if (idx < 0)
        return;
    pthread_mutex_lock(&p->xfers->lock);
    p->xfers->slots[idx].a.done = done;
    pthread_mutex_unlock(&p->xfers->lock);
}

void xfer_table_del(struct peer *p, int idx)
{
    if (idx < 0)
        return;
    pthread_mutex_lock(&p->xfers->lock);
    p->xfers->slots[idx].used = 0;
    pthread_mutex_unlock(&p->xfers->lock);
}

size_t xfer_active_list(struct peer *p, struct xfer_active *out, size_t max)
{
    struct xfer_table *t = p->xfers;
    size_t n = 0;
    uint64_t now = net_now_ms();

    pthread_mutex_lock(&t->lock);
    for (int i = 0; i < XFER_MAX_ACTIVE && n < max; i++) {
        if (!t->slots[i].used)
            continue;
        out[n] = t->slots[i].a;
        out[n++].seconds = (double)(now - t->slots[i].start_ms) / 1000.0;
    }
    pthread_mutex_unlock(&t->lock);
    return n;
}

void xfer_state_dir(char *out, size_t cap, const char *share_dir)
{
    snprintf(out, cap, "%s/%s", share_dir, SHARE_STATE_DIR);
}

fs_status xfer_prepare_state_dir(const char *share_dir)
{
    char dir[PATH_MAX + 32], path[PATH_MAX + 300];

    snprintf(dir, sizeof dir, "%s/%s", share_dir, SHARE_STATE_DIR);
    if (mkdir(dir, 0700) == 0) {
        /* its name must be on disk before the partial downloads inside it */
        int sfd = open(share_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (sfd >= 0) {
            fsync(sfd);
            close(sfd);
        }
    } else if (errno != EEXIST) {
        return FS_EIO;
    }
    DIR *d = opendir(dir);
    if (!d)
        return FS_EIO;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        /* A staging folder whose item took its name before the kill. */
        if (!strncmp(e->d_name, "d-", 2)) {
            if (rmdir(path) == 0)
                log_msg(L_INFO, "removed the empty staging folder %s/%s", SHARE_STATE_DIR,
                        e->d_name);
            continue;
        }
        if (strncmp(e->d_name, "out-", 4) && strncmp(e->d_name, "in-", 3) &&
            strncmp(e->d_name, "x-", 2))
            continue;
        zipio_remove_tree(path);
        log_msg(L_INFO, "removed leftover of an interrupted transfer: %s/%s", SHARE_STATE_DIR,
                e->d_name);
    }
    closedir(d);
    long swept = partial_sweep(dir);
    if (swept > 0)
        log_msg(L_INFO, "removed %ld orphaned partial file(s) from %s", swept, SHARE_STATE_DIR);
    return FS_OK;
}
