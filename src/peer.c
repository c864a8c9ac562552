/* peer.c - the daemon: listen, hand connections to the planes, shut down. */
#include "floodshare/peer.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "floodshare/browse.h"
#include "floodshare/cfg.h"
#include "floodshare/cmd.h"
#include "floodshare/conn.h"
#include "floodshare/ctl.h"
#include "floodshare/flood.h"
#include "floodshare/gate.h"
#include "floodshare/log.h"
#include "floodshare/net.h"
#include "floodshare/node.h"
#include "floodshare/offer.h"
#include "floodshare/rundir.h"
#include "floodshare/share.h"
#include "floodshare/stats.h"
#include "floodshare/swatch.h"
#include "floodshare/syncpair.h"
#include "floodshare/tpool.h"
#include "floodshare/trace.h"
#include "floodshare/xfer.h"

#define PEER_MAX_CTL 16    /* control clients served at once */
#define PEER_IDLE_MS 15000 /* the gate closes kept-alive transfer connections idle this long */
/* The worker pool ([limits] workers threads at most, made on demand): a
 * thread idle this long exits, so an idle peer keeps none. Stack: see
 * docs/DESIGN.md for the measured deepest use. */
#define PEER_WORKER_IDLE_MS 10000
#define PEER_WORKER_STACK (512u * 1024 * TPOOL_STACK_SCALE)

/* The daemon: what it made, and the threads it runs. Private to this file;
 * the planes see only the node and each other's handles (cmd_env). */
struct peer {
    struct cfg cfg; /* as read at start-up; the live one is the node's */
    char run_dir[PATH_MAX];
    char sock_path[PATH_MAX]; /* the control socket; "" until it is ours */
    struct node *node;
    struct flood *flood;
    struct xfer_plane *xfers;
    struct cmd_env env; /* node, flood, xfers: what control commands act on */
    int listen_fd, ctl_fd;
    int wake[2]; /* a pipe: written once at shutdown to wake the control acceptor */

    /* Connections whose header is ready (see gate.h) wait in the pool's
     * bounded queue for one of its threads (tpool.h). */
    struct tpool *pool;
    struct gate *gate; /* the peer port's acceptor: limits, waiting headers */
    struct swatch *watch; /* WATCH connections of other peers' sync pairs */
    struct syncpairs *pairs; /* this peer's [sync] pairs; NULL when none */
    pthread_t acceptor, ctl_acceptor;

    /* ctl_lock guards n_ctl; ctl_cond signals "a control thread ended". */
    pthread_mutex_t ctl_lock;
    pthread_cond_t ctl_cond;
    unsigned n_ctl;
};

/* --- one peer-protocol connection --- */

/* Waits up to ms for c's next whole header (or its end). 1 when
 * conn_read_msg() would not wait now, 0 when ms passed first. */
static int wait_next(struct conn *c, int ms)
{
    uint64_t deadline = net_now_ms() + (uint64_t)ms;

    while (!conn_ready(c) && !c->eof) {
        uint64_t now = net_now_ms();
        if (now >= deadline || conn_wait_readable(c, (int)(deadline - now)) <= 0)
            return 0;
        if (conn_fill(c) == FS_EIO)
            return 1; /* conn_read_msg() reports it */
    }
    return 1;
}

/* Serves the messages of c while whole ones are buffered. Returns 1 when c
 * went back to the gate to wait for its next message (a kept-alive link
 * holds no worker while idle), 0 when it is finished and must be closed.
 * An upload takes an upload slot into *slot (xfer.h); a requester fetching
 * a folder file by file keeps it while its next FETCH comes within
 * XFER_SLOT_KEEP_MS, and gives it back before the connection is parked. */
static int serve_msgs(struct peer *p, struct conn *c, struct xfer_slot *slot)
{
    struct msg m;
    struct fs_addr from;
    char addr[ADDR_STR_MAX];
    int timeout = node_io_timeout_ms(p->node);

    net_peer_addr(c->fd, &from);
    addr_format(&from, addr);
    while (!node_stopping(p->node)) {
        const char *why = NULL;
        if (!conn_ready(c) && !c->eof && !(slot->held && wait_next(c, XFER_SLOT_KEEP_MS))) {
            xfer_slot_give(p->xfers, slot);
            gate_park(p->gate, c);
            return 1;
        }
        /* Does not wait: a header is there, or the stream ended mid-header. */
        fs_status st = conn_read_msg(c, &m, 0, &why);
        if (st == FS_EPROTO) {
            stats_inc(node_stats(p->node), malformed_dropped);
            log_msg(L_INFO, "connection from %s: malformed message (%s), closed", addr, why);
            conn_send_error(c, msg_error_code(why), why, timeout);
            return 0;
        }
        if (st)
            return 0;
        if (flood_is_flood_msg(m.type)) {
            /* The header was consumed: a kept-alive transfer connection
             * turned into a neighbour link is not worth keeping apart. */
            log_msg(L_INFO, "connection from %s: %s after a transfer, closed", addr,
                    msg_type_name(m.type));
            return 0;
        } else if (m.type == MSG_BROWSE) {
            /* A page is bounded (browse.h) and read from the index: no
             * upload slot, as for a GET; the next page may follow. */
            if (browse_serve(p->node, c, &m) < 0)
                return 0;
        } else if (m.type == MSG_WATCH) {
            /* The connection stays open on the watchers' loop, not a worker. */
            return swatch_adopt(p->watch, c, &m);
        } else if (m.type == MSG_REQUEST || m.type == MSG_FETCH || m.type == MSG_LIST ||
                   m.type == MSG_HASHES || m.type == MSG_ROOTS) {
            if (xfer_slot_take(p->xfers, c, slot) < 0)
                return 0; /* BUSY was sent */
            if (m.type == MSG_REQUEST) {
                xfer_serve(p->xfers, c, &m);
                return 0;
            }
            /* A requester fetching a folder file by file reuses its connection. */
            int more = m.type == MSG_FETCH    ? xfer_serve_fetch(p->xfers, c, slot, &m)
                       : m.type == MSG_HASHES ? xfer_serve_hashes(p->xfers, c, &m)
                       : m.type == MSG_ROOTS  ? xfer_serve_roots(p->xfers, c, &m)
                                              : xfer_serve_list(p->xfers, c, &m);
            if (more < 0)
                return 0;
        } else if (m.type == MSG_OFFER) {
            /* A send: this peer pulls the offered item (offer.h). */
            offer_serve(p->node, p->flood, p->xfers, c, &m);
            return 0;
        } else {
            stats_inc(node_stats(p->node), malformed_dropped);
            log_msg(L_INFO, "connection from %s: unexpected %s, closed", addr,
                    msg_type_name(m.type));
            char text[MSG_MAX_TEXT + 1];
            snprintf(text, sizeof text, "%s is only sent by a peer answering a request, never to one",
                     msg_type_name(m.type));
            conn_send_error(c, "unexpected", text, timeout);
            return 0;
        }
    }
    return 0;
}

static int serve_conn(struct peer *p, struct conn *c)
{
    struct xfer_slot slot;

    memset(&slot, 0, sizeof slot);
    int parked = serve_msgs(p, c, &slot);
    xfer_slot_give(p->xfers, &slot);
    return parked;
}

/* The pool's job: one connection whose header is ready. */
static void serve_job(void *arg, void *job)
{
    struct peer *p = arg;
    struct conn *c = job;
    int fd = c->fd;

    node_track(p->node, fd);
    int parked = !node_stopping(p->node) && serve_conn(p, c);
    node_untrack(p->node, fd);
    if (!parked)
        gate_done(p->gate, c);
}

/* tpool_stop()'s drain: connections still queued were never served. */
static void drop_job(void *arg, void *job)
{
    struct peer *p = arg;

    gate_done(p->gate, job);
}

/* The gate's callback: queues c for the pool, or refuses it with "busy"
 * when the queue is full, so a burst costs a bounded amount of memory. */
static void dispatch(void *arg, struct conn *c)
{
    struct peer *p = arg;
    struct msg m;
    size_t used;

    /* Neighbour links go to the flood plane's loop; only transfers take a
     * worker, so no upload can hold up a GET. */
    if (msg_parse(c->buf + c->off, c->len - c->off, &m, &used, NULL) == FS_OK &&
        flood_is_flood_msg(m.type)) {
        flood_adopt(p->flood, c);
        return;
    }

    if (tpool_submit(p->pool, c) != FS_OK) {
        stats_inc(node_stats(p->node), busy_refused);
        conn_send_error(c, "busy", "every worker is busy, try again", 200);
        gate_done(p->gate, c);
    }
}

/* Waits for a connection on fd or for the shutdown pipe. -1 when stopping. */
static int accept_or_stop(struct peer *p, int fd)
{
    struct pollfd pfd[2] = {{.fd = fd, .events = POLLIN}, {.fd = p->wake[0], .events = POLLIN}};

    for (;;) {
        if (node_stopping(p->node))
            return -1;
        if (poll(pfd, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (pfd[1].revents)
            return -1;
        int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
        if (c >= 0)
            return c;
        if (errno == EMFILE || errno == ENFILE) {
            /* Out of descriptors: back off instead of spinning on accept. */
            log_msg(L_WARN, "out of file descriptors, pausing accept");
            poll(NULL, 0, 100);
        }
    }
}

static void *acceptor_main(void *arg)
{
    struct peer *p = arg;

    gate_run(p->gate);
    return NULL;
}

struct ctl_job {
    struct peer *p;
    int fd;
};

/* ctl_serve()'s handler: the control commands (cmd.h) on this peer. */
static int run_cmd(void *arg, int argc, char **argv, struct ctl_out *o)
{
    return cmd_run(arg, argc, argv, o);
}

static void *ctl_thread(void *arg)
{
    struct ctl_job *job = arg;
    struct peer *p = job->p;

    node_track(p->node, job->fd);
    ctl_serve(job->fd, run_cmd, &p->env);
    node_untrack(p->node, job->fd);
    close(job->fd);
    free(job);
    pthread_mutex_lock(&p->ctl_lock);
    p->n_ctl--;
    pthread_cond_broadcast(&p->ctl_cond);
    pthread_mutex_unlock(&p->ctl_lock);
    return NULL;
}

static void spawn_ctl(struct peer *p, int fd)
{
    struct ctl_job *job = malloc(sizeof *job);
    pthread_t t;
    pthread_attr_t at;
    int ok = 0;

    pthread_mutex_lock(&p->ctl_lock);
    if (job && p->n_ctl < PEER_MAX_CTL) {
        job->p = p;
        job->fd = fd;
        pthread_attr_init(&at);
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&t, &at, ctl_thread, job) == 0) {
            p->n_ctl++;
            ok = 1;
        }
        pthread_attr_destroy(&at);
    }
    pthread_mutex_unlock(&p->ctl_lock);
    if (!ok) {
        free(job);
        ctl_refuse(fd, "too many control clients at once");
        close(fd);
    }
}

static void *ctl_acceptor_main(void *arg)
{
    struct peer *p = arg;
    int fd;

    while ((fd = accept_or_stop(p, p->ctl_fd)) >= 0)
        spawn_ctl(p, fd);
    return NULL;
}

/* --- start-up and shutdown --- */

/* Why pick_run_dir found no run folder (it was too long), for open_sockets
 * to log once the "peer N:" tag is known. Start-up only: one thread. */
static char run_dir_err[RUNDIR_ERR_MAX];

/* A folder too long leaves p->run_dir "" and run_dir_err set. */
static void pick_run_dir(struct peer *p, const char *ini, const char *run_dir)
{
    rundir_for_serve(ini, run_dir, p->run_dir, sizeof p->run_dir, run_dir_err,
                     sizeof run_dir_err);
}

static int open_sockets(struct peer *p)
{
    fs_status st;

    struct fs_addr at = {.port = p->cfg.port};
    char shown[ADDR_STR_MAX];

    memcpy(at.host, p->cfg.host, sizeof at.host);
    st = net_listen_tcp(p->cfg.host, p->cfg.port, &p->listen_fd, NULL);
    if (st) {
        log_msg(L_ERROR, "cannot listen on %s: %s", addr_format(&at, shown), strerror(errno));
        return -1;
    }
    if (!p->run_dir[0] || rundir_sock_path(p->run_dir, p->cfg.id, p->sock_path,
                                           sizeof p->sock_path, run_dir_err,
                                           sizeof run_dir_err) != FS_OK) {
        log_msg(L_ERROR, "%s", run_dir_err); /* "run directory path too long: DIR" */
        p->sock_path[0] = '\0';
        return -1;
    }
    st = net_listen_unix(p->sock_path, &p->ctl_fd);
    if (st == FS_EEXIST) {
        log_msg(L_ERROR, "%s: another peer %u is already running there", p->sock_path, p->cfg.id);
        p->sock_path[0] = '\0'; /* not ours: never unlink it */
        return -1;
    }
    if (st) {
        log_msg(L_ERROR, "cannot create control socket %s: %s", p->sock_path, fs_strerror(st));
        p->sock_path[0] = '\0';
        return -1;
    }
    return 0;
}

/* Room for max_conns connections plus every worker's files and links. */
static void raise_fd_limit(struct peer *p)
{
    struct rlimit rl;
    rlim_t want = (rlim_t)p->cfg.max_conns + 4 * (rlim_t)p->cfg.workers + 256;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= want)
        return;
    rl.rlim_cur = want < rl.rlim_max ? want : rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < want)
        log_msg(L_WARN, "max_conns %u wants about %llu file descriptors, the limit is %llu: "
                "accepts pause when they run out", p->cfg.max_conns, (unsigned long long)want,
                (unsigned long long)rl.rlim_cur);
}

static int start_threads(struct peer *p)
{
    struct gate_limits lim = {
        .max_conns = p->cfg.max_conns,
        .max_per_addr = p->cfg.max_conns_per_addr,
        .header_ms = (int)p->cfg.io_timeout_ms,
        .idle_ms = PEER_IDLE_MS,
        .tls = node_tls(p->node),
        .handshake_ms = (int)p->cfg.connect_timeout_ms,
    };
    struct tpool_opts po = {
        .max_threads = p->cfg.workers,
        .queue_cap = p->cfg.max_queue,
        .stack_size = PEER_WORKER_STACK,
        .idle_ms = PEER_WORKER_IDLE_MS,
        .run = serve_job,
        .arg = p,
    };

    raise_fd_limit(p);
    if (tpool_new(&p->pool, &po) != FS_OK ||
        gate_open(&p->gate, p->listen_fd, &lim, node_stats(p->node), dispatch, p) != FS_OK ||
        !(p->watch = swatch_new(p->node, p->gate)))
        return -1;
    if (flood_run(p->flood, p->gate) != FS_OK)
        return -1;
    /* Before the control acceptor: `sync status` reads env.pairs. */
    if (syncpairs_start(&p->pairs, &p->env, &p->cfg) != FS_OK)
        return -1;
    p->env.pairs = p->pairs;
    if (pthread_create(&p->acceptor, NULL, acceptor_main, p) != 0)
        return -1;
    if (pthread_create(&p->ctl_acceptor, NULL, ctl_acceptor_main, p) != 0) {
        p->ctl_acceptor = p->acceptor; /* joined once below */
        return -1;
    }
    return 0;
}

static void stop_threads(struct peer *p, int started)
{
    /* Marks the node stopping and shuts down the sockets its threads may
     * be blocked on (workers' transfers, control clients). */
    node_stop(p->node);
    if (write(p->wake[1], "x", 1) < 0) { /* wakes the control acceptor */
    }
    if (p->gate)
        gate_stop(p->gate);
    flood_shutdown(p->flood);
    if (started) {
        pthread_join(p->acceptor, NULL);
        if (!pthread_equal(p->ctl_acceptor, p->acceptor))
            pthread_join(p->ctl_acceptor, NULL);
    }
    /* Waits for the running jobs; the queued ones are closed unserved. */
    tpool_stop(p->pool, drop_job);
    swatch_stop(p->watch); /* after the workers: none adopts any more */
    syncpairs_stop(p->pairs); /* node_stop() cut the sockets of a sync in progress */
    /* Control threads are detached: wait until the last one has left. */
    pthread_mutex_lock(&p->ctl_lock);
    while (p->n_ctl > 0)
        pthread_cond_wait(&p->ctl_cond, &p->ctl_lock);
    pthread_mutex_unlock(&p->ctl_lock);
}

static void peer_init(struct peer *p)
{
    memset(p, 0, sizeof *p);
    p->listen_fd = p->ctl_fd = -1;
    p->wake[0] = p->wake[1] = -1;
    pthread_mutex_init(&p->ctl_lock, NULL);
    pthread_cond_init(&p->ctl_cond, NULL);
}

/* Frees in the reverse order of peer_setup: the planes before the node
 * they borrow. */
static void peer_destroy(struct peer *p)
{
    if (p->sock_path[0])
        unlink(p->sock_path);
    if (p->listen_fd >= 0)
        close(p->listen_fd);
    if (p->ctl_fd >= 0)
        close(p->ctl_fd);
    for (int i = 0; i < 2; i++)
        if (p->wake[i] >= 0)
            close(p->wake[i]);
    flood_free(p->flood);
    gate_free(p->gate);
    tpool_free(p->pool);
    xfer_plane_free(p->xfers);
    node_free(p->node);
    swatch_free(p->watch); /* after the share's thread, which may tell it of a change */
    syncpairs_free(p->pairs);
    pthread_mutex_destroy(&p->ctl_lock);
    pthread_cond_destroy(&p->ctl_cond);
}

/* Creates everything but the threads. Returns an exit code, 0 if ready. */
static int peer_setup(struct peer *p, const char *ini)
{
    char err[CFG_ERR_MAX];

    if (cfg_load(ini, &p->cfg, err, sizeof err) != FS_OK) {
        fprintf(stderr, "floodshare: %s\n", err);
        return 78;
    }
    log_set_peer(p->cfg.id);
    log_verbosity = p->cfg.log_level;
    p->node = node_new(&p->cfg, p->run_dir, err, sizeof err);
    if (!p->node) {
        log_msg(L_ERROR, "%s", err);
        return 1;
    }
    struct xfer_limits xl = {
        .slots = p->cfg.upload_slots,
        .slots_per_addr = p->cfg.upload_slots_per_addr,
        .min_rate = p->cfg.min_upload_rate,
    };
    p->flood = flood_new(p->node);
    p->xfers = xfer_plane_new(p->node, &xl);
    if (!p->flood || !p->xfers || pipe2(p->wake, O_CLOEXEC) < 0) {
        log_msg(L_ERROR, "out of memory");
        return 1;
    }
    p->env = (struct cmd_env){.node = p->node, .flood = p->flood, .xfers = p->xfers};
    if (open_sockets(p) < 0)
        return 1;
    node_set_sock_path(p->node, p->sock_path);
    return 0;
}

/* Logs and traces that the peer is up, with what it serves. */
static void announce_up(struct peer *p)
{
    struct share_item *items = NULL;
    const struct cfg *c = node_cfg_get(p->node);
    long n = share_list(node_share_get(p->node), &items);
    node_share_put(p->node);
    free(items);
    struct fs_addr at = {.port = c->port};
    char listen_s[ADDR_STR_MAX], adv_s[ADDR_STR_MAX];
    memcpy(at.host, c->host, sizeof at.host);
    log_msg(L_INFO, "up: listening on %s (advertised as %s), control %s, sharing %s (%ld "
            "top-level items), ttl %u, %zu neighbours, %u workers", addr_format(&at, listen_s),
            addr_format(&c->advertise, adv_s), p->sock_path, c->share_dir, n, c->ttl,
            c->n_neighbours, c->workers);
    struct trace_event ev;
    trace_init_event(&ev, TR_PEER_UP, NULL);
    ev.ttl = c->ttl;
    ev.count = (unsigned)c->n_neighbours;
    trace_set(ev.reason, sizeof ev.reason, "started");
    trace_emit(node_trace(p->node), &ev);
    node_cfg_put(c);
}

static void announce_down(struct peer *p, int sig)
{
    struct trace *tr = node_trace(p->node);
    struct trace_event ev;

    log_msg(L_INFO, "%s received, shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
    trace_init_event(&ev, TR_PEER_DOWN, NULL);
    trace_set(ev.reason, sizeof ev.reason, sig == SIGINT ? "SIGINT" : "SIGTERM");
    trace_emit(tr, &ev);
    trace_drain(tr, 500); /* let the watchers see it before their sockets close */
}

int peer_main(const char *ini_path, const char *run_dir)
{
    static struct peer peer; /* large (a cfg, PATH_MAX buffers): not on the stack */
    struct peer *p = &peer;
    sigset_t set;
    int sig = 0, started = 0;

    peer_init(p);
    pick_run_dir(p, ini_path, run_dir);
    /* Transfer buffers are a chunk (512 KiB by default, 64 KiB to 4 MiB):
     * keep those of 256 KiB and more mmap'ed, so a freed one goes back to
     * the system at once instead of staying in a thread's arena (glibc
     * would otherwise raise its threshold and keep them). And two arenas
     * are plenty for a loop, a scanner and a few short-lived threads: every
     * arena a thread touches stays resident, and a thousand peers on one
     * machine pay for each. */
    mallopt(M_MMAP_THRESHOLD, 256 * 1024);
    mallopt(M_ARENA_MAX, 2);
    /* Block the signals before any thread exists, so that every thread
     * inherits the mask and only sigwait() below ever sees them. */
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    int rc = peer_setup(p, ini_path);
    if (rc == 0) {
        started = start_threads(p) == 0;
        if (!started) {
            log_msg(L_ERROR, "cannot start threads");
            rc = 1;
        }
    }
    if (rc == 0) {
        announce_up(p);
        do {
            if (sigwait(&set, &sig) != 0)
                break;
        } while (sig == SIGHUP); /* a closed terminal must not stop a peer */
        announce_down(p, sig);
    }
    if (p->pool)
        stop_threads(p, started);
    peer_destroy(p);
    if (rc == 0)
        log_msg(L_INFO, "stopped");
    return rc;
}
