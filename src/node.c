/* node.c - one peer's service context: the live configuration and what
 * every plane shares (node.h). */
#include "floodshare/node.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "floodshare/cfg.h"
#include "floodshare/cut.h"
#include "floodshare/log.h"
#include "floodshare/qcache.h"
#include "floodshare/rate.h"
#include "floodshare/share.h"
#include "floodshare/stats.h"
#include "floodshare/trace.h"
#include "floodshare/statedir.h"
#include "floodshare/tls.h"

/* A published configuration: immutable once live; freed by its last put. */
struct cfg_snap {
    atomic_uint refs;
    struct cfg c;
};

/* Locks, in the order they may be taken: reconf_lock, then share_lock
 * (write) or cfg_lock, never both of the last two at once. Each is held
 * for a pointer swap or copy, except reconf_lock, which serialises whole
 * reconfigurations (and their listeners). A bucket's lock (rate.h) is a
 * leaf: rate_set() takes it under reconf_lock, and nothing is locked under it. */
struct node {
    /* Fixed from node_new() on. */
    struct fs_addr self;
    unsigned id;
    int io_timeout_ms;
    char run_dir[PATH_MAX];
    char sock_path[PATH_MAX];
    struct qcache *qc;
    struct trace *trace;
    struct stats stats;
    struct cut cut;
    struct tls_ctx *tls; /* NULL: plain; else made from [security] at start */
    struct rate *up_rate, *down_rate; /* [limits] upload_rate, download_rate (own locks) */

    pthread_mutex_t cfg_lock; /* guards the `live` pointer */
    struct cfg_snap *live;

    pthread_rwlock_t share_lock; /* readers use the share; `modify` swaps it */
    struct share *share;

    pthread_mutex_t reconf_lock;
    struct {
        node_listener fn;
        void *arg;
    } listeners[NODE_MAX_LISTENERS];
    unsigned n_listeners;

    /* node_on_share_change(): told on the share's thread after each rescan
     * of whichever share is current. A leaf lock. */
    pthread_mutex_t change_lock; /* guards changed[] */
    struct {
        node_share_listener fn;
        void *arg;
    } changed[NODE_MAX_LISTENERS];
    unsigned n_changed;

    atomic_int stopping;
    pthread_mutex_t track_lock; /* guards tracked[] */
    int tracked[NODE_MAX_TRACKED];
};

static struct cfg_snap *snap_new(const struct cfg *c)
{
    struct cfg_snap *s = malloc(sizeof *s);

    if (s) {
        atomic_init(&s->refs, 1); /* the node's own reference, while it is live */
        s->c = *c;
    }
    return s;
}

static void node_init(struct node *n)
{
    pthread_mutex_init(&n->cfg_lock, NULL);
    pthread_rwlock_init(&n->share_lock, NULL);
    pthread_mutex_init(&n->reconf_lock, NULL);
    pthread_mutex_init(&n->track_lock, NULL);
    pthread_mutex_init(&n->change_lock, NULL);
    cut_init(&n->cut);
    atomic_init(&n->stopping, 0);
    for (int i = 0; i < NODE_MAX_TRACKED; i++)
        n->tracked[i] = -1;
}

fs_status node_tls_open(const struct cfg *c, struct tls_ctx **out, char *err, size_t cap)
{
    char why[TLS_ERR_MAX];
    fs_status st = FS_OK;

    *out = NULL;
    if (c->passphrase[0])
        st = tls_ctx_new_psk(out, c->passphrase, strlen(c->passphrase),
                             c->keylog[0] ? c->keylog : NULL, why, sizeof why);
    else if (c->key_file[0])
        st = tls_ctx_new_keys(out, c->key_file, (const unsigned char (*)[FP_LEN])c->trusted,
                              c->n_trusted, c->keylog[0] ? c->keylog : NULL, why, sizeof why);
    if (st)
        snprintf(err, cap, "[security]: %s", why);
    return st;
}

/* The share's change hook (share.h), on the share's thread: tells the
 * listeners, each of which only wakes its own thread. */
static void share_changed(void *arg)
{
    struct node *n = arg;

    pthread_mutex_lock(&n->change_lock);
    for (unsigned i = 0; i < n->n_changed; i++)
        n->changed[i].fn(n->changed[i].arg);
    pthread_mutex_unlock(&n->change_lock);
}

fs_status node_on_share_change(struct node *n, node_share_listener fn, void *arg)
{
    fs_status st = FS_EBUSY;

    pthread_mutex_lock(&n->change_lock);
    if (n->n_changed < NODE_MAX_LISTENERS) {
        n->changed[n->n_changed].fn = fn;
        n->changed[n->n_changed++].arg = arg;
        st = FS_OK;
    }
    pthread_mutex_unlock(&n->change_lock);
    return st;
}

struct node *node_new(const struct cfg *c, const char *run_dir, char *err, size_t cap)
{
    struct node *n = calloc(1, sizeof *n);
    fs_status st;

    if (!n) {
        snprintf(err, cap, "out of memory");
        return NULL;
    }
    node_init(n);
    n->id = c->id;
    n->io_timeout_ms = (int)c->io_timeout_ms;
    n->self = c->advertise; /* host:port unless [peer] advertise names another */
    snprintf(n->run_dir, sizeof n->run_dir, "%s", run_dir ? run_dir : "");
    n->live = snap_new(c);
    if (!n->live)
        goto oom;
    n->share = share_open(c->share_dir, &st);
    if (!n->share) {
        snprintf(err, cap, "cannot index %s: %s", c->share_dir, fs_strerror(st));
        goto fail;
    }
    share_set_change_hook(n->share, share_changed, n);
    if (statedir_prepare(share_root_fd(n->share)) != FS_OK) {
        snprintf(err, cap, "cannot use %s/%s: %s", c->share_dir, SHARE_STATE_DIR,
                 strerror(errno));
        goto fail;
    }
    if (node_tls_open(c, &n->tls, err, cap) != FS_OK)
        goto fail;
    n->qc = qcache_new(c->query_cache_size, c->query_cache_ttl_ms);
    n->trace = trace_new(TRACE_RING, c->id, &n->self);
    n->up_rate = rate_new(c->upload_rate);
    n->down_rate = rate_new(c->download_rate);
    if (!n->qc || !n->trace || !n->up_rate || !n->down_rate)
        goto oom;
    return n;
oom:
    snprintf(err, cap, "out of memory");
fail:
    node_free(n);
    return NULL;
}

void node_free(struct node *n)
{
    if (!n)
        return;
    qcache_free(n->qc);
    trace_free(n->trace);
    rate_free(n->up_rate);
    rate_free(n->down_rate);
    share_close(n->share);
    tls_ctx_free(n->tls);
    if (n->live)
        node_cfg_put(&n->live->c);
    pthread_mutex_destroy(&n->cfg_lock);
    pthread_rwlock_destroy(&n->share_lock);
    pthread_mutex_destroy(&n->reconf_lock);
    pthread_mutex_destroy(&n->track_lock);
    pthread_mutex_destroy(&n->change_lock);
    cut_destroy(&n->cut);
    free(n);
}

/* --- the configuration --- */

const struct cfg *node_cfg_get(struct node *n)
{
    pthread_mutex_lock(&n->cfg_lock);
    struct cfg_snap *s = n->live;
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
    pthread_mutex_unlock(&n->cfg_lock);
    return &s->c;
}

void node_cfg_put(const struct cfg *c)
{
    if (!c)
        return;
    struct cfg_snap *s = (struct cfg_snap *)((char *)c - offsetof(struct cfg_snap, c));
    if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1)
        free(s);
}

fs_status node_on_reconfigure(struct node *n, node_listener fn, void *arg)
{
    fs_status st = FS_EBUSY;

    pthread_mutex_lock(&n->reconf_lock);
    if (n->n_listeners < NODE_MAX_LISTENERS) {
        n->listeners[n->n_listeners].fn = fn;
        n->listeners[n->n_listeners++].arg = arg;
        st = FS_OK;
    }
    pthread_mutex_unlock(&n->reconf_lock);
    return st;
}

/* Opens the share a `modify share_dir` moves to; NULL with err on failure. */
static struct share *open_new_share(const char *dir, char *err, size_t cap)
{
    fs_status st;

    struct share *sh = share_open(dir, &st);
    if (!sh) {
        snprintf(err, cap, "cannot index %s: %s", dir, fs_strerror(st));
        return NULL;
    }
    if (statedir_prepare(share_root_fd(sh)) != FS_OK) {
        snprintf(err, cap, "cannot use %s/%s: %s", dir, SHARE_STATE_DIR, strerror(errno));
        share_close(sh);
        return NULL;
    }
    return sh;
}

fs_status node_reconfigure(struct node *n, const struct cfg *nc, const char *key, char *err,
                           size_t cap)
{
    struct share *sh = NULL, *old = NULL;

    pthread_mutex_lock(&n->reconf_lock);
    if (strcmp(key, "share_dir") == 0 && !(sh = open_new_share(nc->share_dir, err, cap))) {
        pthread_mutex_unlock(&n->reconf_lock);
        return FS_EIO;
    }
    /* Only what `modify` may change moves over; the rest stays as started. */
    const struct cfg *cur = node_cfg_get(n);
    struct cfg_snap *s = snap_new(cur);
    node_cfg_put(cur);
    if (!s) {
        pthread_mutex_unlock(&n->reconf_lock);
        share_close(sh);
        snprintf(err, cap, "out of memory");
        return FS_ENOMEM;
    }
    s->c.ttl = nc->ttl;
    memcpy(s->c.neighbours, nc->neighbours, sizeof nc->neighbours);
    s->c.n_neighbours = nc->n_neighbours;
    memcpy(s->c.share_dir, nc->share_dir, sizeof nc->share_dir);
    memcpy(s->c.share_dir_raw, nc->share_dir_raw, sizeof nc->share_dir_raw);
    s->c.log_level = nc->log_level;
    s->c.upload_rate = nc->upload_rate;
    s->c.download_rate = nc->download_rate;
    s->c.max_sources = nc->max_sources; /* read by each get as it starts */
    s->c.send_from = nc->send_from;
    s->c.quota = nc->quota;
    s->c.max_item = nc->max_item;
    s->c.accept_browse = nc->accept_browse;
    if (sh) {
        pthread_rwlock_wrlock(&n->share_lock);
        old = n->share;
        n->share = sh;
        pthread_rwlock_unlock(&n->share_lock);
    }
    pthread_mutex_lock(&n->cfg_lock);
    struct cfg_snap *prev = n->live;
    n->live = s;
    pthread_mutex_unlock(&n->cfg_lock);
    node_cfg_put(&prev->c);
    share_close(old);
    if (sh) { /* a whole other share: every watched item may have changed */
        share_set_change_hook(sh, share_changed, n);
        share_changed(n);
    }
    log_verbosity = nc->log_level;
    /* Transfers waiting in a bucket count again at the new rate at once. */
    rate_set(n->up_rate, nc->upload_rate);
    rate_set(n->down_rate, nc->download_rate);
    for (unsigned i = 0; i < n->n_listeners; i++)
        n->listeners[i].fn(n->listeners[i].arg, &s->c);
    pthread_mutex_unlock(&n->reconf_lock);
    return FS_OK;
}

/* --- what the node owns --- */

const struct fs_addr *node_self(const struct node *n)
{
    return &n->self;
}

unsigned node_id(const struct node *n)
{
    return n->id;
}

int node_io_timeout_ms(const struct node *n)
{
    return n->io_timeout_ms;
}

const char *node_run_dir(const struct node *n)
{
    return n->run_dir;
}

const char *node_sock_path(const struct node *n)
{
    return n->sock_path;
}

void node_set_sock_path(struct node *n, const char *path)
{
    snprintf(n->sock_path, sizeof n->sock_path, "%s", path);
}

struct qcache *node_qcache(struct node *n)
{
    return n->qc;
}

struct trace *node_trace(struct node *n)
{
    return n->trace;
}

struct tls_ctx *node_tls(struct node *n)
{
    return n->tls;
}

struct stats *node_stats(struct node *n)
{
    return &n->stats;
}

struct rate *node_upload_rate(struct node *n)
{
    return n->up_rate;
}

struct rate *node_download_rate(struct node *n)
{
    return n->down_rate;
}

struct cut *node_cut(struct node *n)
{
    return &n->cut;
}

struct share *node_share_get(struct node *n)
{
    pthread_rwlock_rdlock(&n->share_lock);
    return n->share;
}

void node_share_put(struct node *n)
{
    pthread_rwlock_unlock(&n->share_lock);
}

/* --- stopping --- */

int node_stopping(const struct node *n)
{
    return atomic_load(&n->stopping);
}

void node_stop(struct node *n)
{
    atomic_store(&n->stopping, 1);
    rate_close(n->up_rate); /* a transfer asleep in a bucket wakes and ends */
    rate_close(n->down_rate);
    pthread_mutex_lock(&n->track_lock);
    for (int i = 0; i < NODE_MAX_TRACKED; i++)
        if (n->tracked[i] >= 0)
            shutdown(n->tracked[i], SHUT_RDWR);
    pthread_mutex_unlock(&n->track_lock);
}

void node_track(struct node *n, int fd)
{
    pthread_mutex_lock(&n->track_lock);
    for (int i = 0; i < NODE_MAX_TRACKED; i++) {
        if (n->tracked[i] < 0) {
            n->tracked[i] = fd;
            break;
        }
    }
    pthread_mutex_unlock(&n->track_lock);
}

void node_untrack(struct node *n, int fd)
{
    pthread_mutex_lock(&n->track_lock);
    for (int i = 0; i < NODE_MAX_TRACKED; i++)
        if (n->tracked[i] == fd)
            n->tracked[i] = -1;
    pthread_mutex_unlock(&n->track_lock);
}
