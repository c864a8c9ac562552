/* peer.h - the peer daemon: sockets, worker pool, lifecycle.
 *
 * A peer has three kinds of threads: one acceptor on the peer port (the
 * gate, gate.h) that holds each connection until a whole header has come
 * and then hands it to a pool of workers, made on demand and gone when
 * idle, through a bounded queue (tpool.h); one
 * acceptor on the control socket that runs each control client in its own
 * thread (at most PEER_MAX_CTL at once); and the main thread, which only
 * waits for SIGINT/SIGTERM (every other thread blocks them). */
#ifndef FLOODSHARE_PEER_H
#define FLOODSHARE_PEER_H

#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>

#include "floodshare/addr.h"
#include "floodshare/cfg.h"
#include "floodshare/cut.h"
#include "floodshare/stats.h"
#include "floodshare/tpool.h"

#define PEER_MAX_CTL 16        /* control clients served at once */
#define PEER_IDLE_MS 15000     /* a receiver closes connections idle this long */
#define PEER_MAX_TRACKED 512   /* sockets shut down at exit to wake their threads */
/* The worker pool ([limits] workers threads at most, made on demand): a
 * thread idle this long exits, so an idle peer keeps none. Stack: see
 * docs/DESIGN.md for the measured deepest use. */
#define PEER_WORKER_IDLE_MS 10000
#define PEER_WORKER_STACK (512u * 1024 * TPOOL_STACK_SCALE)

struct share;
struct qcache;
struct flood;
struct xfer_table;
struct gate;
struct conn;
struct trace;
struct tpool;

struct peer {
    /* cfg is the configuration read at start-up: only its fixed fields
     * (id, host, port, limits) may be read directly. The live one (ttl,
     * neighbours, share_dir, log_level change with `modify`) is `live`, an
     * immutable snapshot shared by reference count: peer_cfg_get/put.
     * cfg_lock guards the `live` pointer (taken for a pointer copy and a
     * count). Old comment kept for peer_cfg_snapshot:
     * readers copy the fields they need (peer_cfg_snapshot) under it. */
    pthread_mutex_t cfg_lock;
    struct cfg cfg;
    struct cfg_snap *live;
    struct fs_addr self; /* host:port this peer advertises in GET/FOUND */

    char run_dir[PATH_MAX];
    char sock_path[PATH_MAX];
    int listen_fd, ctl_fd;
    int wake[2]; /* a pipe: written once at shutdown to wake both acceptors */

    /* share_lock guards the share pointer: users hold it for reading
     * (peer_share_get/put), `modify share_dir` for writing to swap it. The
     * share itself is thread-safe. */
    pthread_rwlock_t share_lock;
    struct share *share;
    struct qcache *qc;
    struct flood *flood;
    struct xfer_table *xfers; /* running transfers, for `transfers` */
    struct trace *trace;      /* trace events: a ring, and the watchers (trace.h) */
    struct cut cut;           /* links taken down, paused (`link`, `pause`; cut.h) */
    struct stats stats;
    atomic_int stopping;

    /* Connections whose header is ready (see gate.h) wait in the pool's
     * bounded queue for one of its threads (tpool.h). */
    struct tpool *pool;
    int io_timeout_ms; /* fixed at start-up (cfg may change) */
    struct gate *gate; /* the peer port's acceptor: limits, waiting headers */
    pthread_t acceptor, ctl_acceptor;

    /* ctl_lock guards n_ctl; ctl_cond signals "a control thread ended". */
    pthread_mutex_t ctl_lock;
    pthread_cond_t ctl_cond;
    unsigned n_ctl;

    /* track_lock guards tracked[]: sockets whose threads may be blocked
     * in I/O, shut down at exit so those threads return at once. */
    pthread_mutex_t track_lock;
    int tracked[PEER_MAX_TRACKED];
};

/* Runs the peer of ini_path in the foreground until SIGINT/SIGTERM.
 * run_dir may be NULL ($FLOODSHARE_RUN, else the INI's folder). Returns
 * the process exit code: 0, 1 (runtime failure), 78 (bad config). */
int peer_main(const char *ini_path, const char *run_dir);

/* The live configuration: an immutable snapshot, valid until
 * peer_cfg_put(). Never copied (it is 16 KiB); a `modify` meanwhile
 * publishes a new snapshot and leaves this one alone. Never NULL. */
const struct cfg *peer_cfg_get(struct peer *p);
void peer_cfg_put(const struct cfg *c);

/* Applies a changed configuration n (from `modify KEY`: ttl, neighbours,
 * share_dir or log_level): opens the new share first when it moved, then
 * publishes n as the live snapshot and hands ttl and neighbours to the
 * flood plane. The one way the daemon's live state changes. FS_OK, or an
 * error with err (cap bytes) saying what failed; nothing changed then. */
fs_status peer_reconfigure(struct peer *p, const struct cfg *n, const char *key, char *err,
                           size_t cap);

/* Copies the current configuration (prefer peer_cfg_get: this copies 16 KiB). */
void peer_cfg_snapshot(struct peer *p, struct cfg *out);

/* The current share, read-locked: it stays valid (and is not swapped by
 * `modify share_dir`) until peer_share_put(). Never NULL while the peer
 * runs. Do not nest. */
struct share *peer_share_get(struct peer *p);
void peer_share_put(struct peer *p);

/* Registers fd so that shutdown wakes the thread blocked on it; untrack
 * before closing it. Tracking is best effort (a full table is ignored). */
void peer_track(struct peer *p, int fd);
void peer_untrack(struct peer *p, int fd);

#endif
