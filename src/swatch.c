/* swatch.c - the holder side of WATCH: one event loop of watchers, told of
 * share changes by the node (swatch.h). */
#include "floodshare/swatch.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "floodshare/addr.h"
#include "floodshare/browse.h"
#include "floodshare/cfg.h"
#include "floodshare/conn.h"
#include "floodshare/ev.h"
#include "floodshare/gate.h"
#include "floodshare/log.h"
#include "floodshare/msg.h"
#include "floodshare/net.h"
#include "floodshare/node.h"
#include "floodshare/share.h"
#include "floodshare/stats.h"
#include "floodshare/xfer.h"

/* One WATCH connection. Loop thread only, once added. */
struct watcher {
    struct ev_watch ew;
    struct swatch *sw;
    struct conn *c;                  /* the gate's; gate_done() when the watch ends */
    char path[MSG_MAX_PATH + 1];
    char md5[MSG_MD5_LEN + 1];       /* as last told ("" none) */
    int told;                        /* a CHANGED was queued at least once */
    char who[ADDR_STR_MAX];          /* the requester's advertised address, for logs */
    size_t out_len;
    char out[SWATCH_OUT_MAX];        /* CHANGED lines not yet written */
};

struct swatch {
    struct node *node; /* borrowed */
    struct gate *gate; /* borrowed */
    struct ev *ev;
    int efd;             /* eventfd: the node's share changed */
    struct ev_watch eew; /* efd on the loop */
    /* lock guards n (watchers adopted or on their way to the loop), started
     * and stopping; workers take it in swatch_adopt(). A leaf lock. */
    pthread_mutex_t lock;
    unsigned n;
    int started, stopping;
    pthread_t thread;
    /* Loop thread only (and swatch_stop() once the loop has ended). */
    struct watcher *w[XFER_WATCHERS_MAX];
};

static void *loop_main(void *arg)
{
    struct swatch *sw = arg;

    pthread_setname_np(pthread_self(), "fs-watch");
    ev_run(sw->ev);
    return NULL;
}

/* The node's share listener, on the share's thread: wakes the loop only. */
static void share_changed(void *arg)
{
    struct swatch *sw = arg;
    uint64_t one = 1;

    if (write(sw->efd, &one, sizeof one) < 0) {
        /* The counter is already non-zero (or full): the loop will look. */
    }
}

/* Gives w's connection back to the gate, frees w and uncounts it. */
static void watcher_free(struct watcher *w)
{
    struct swatch *sw = w->sw;

    gate_done(sw->gate, w->c);
    free(w);
    pthread_mutex_lock(&sw->lock);
    sw->n--;
    pthread_mutex_unlock(&sw->lock);
}

static void watcher_end(struct watcher *w, const char *why)
{
    struct swatch *sw = w->sw;
    char esc[LOG_ESCAPE_BUF];

    log_msg(L_INFO, "watch %s from %s ended: %s", log_escape_str(esc, w->path), w->who, why);
    ev_del(sw->ev, &w->ew);
    for (unsigned i = 0; i < XFER_WATCHERS_MAX; i++)
        if (sw->w[i] == w)
            sw->w[i] = NULL;
    watcher_free(w);
}

/* Writes what it can of w's queue. A queue left over waits for EV_WRITE
 * under a deadline: a watcher that stops reading is dropped by it, never
 * waited for. 0, or -1 when w ended. */
static int watcher_flush(struct watcher *w)
{
    size_t done = 0;
    fs_status st = conn_write_some(w->c, w->out, w->out_len, &done);

    if (st) {
        watcher_end(w, "the requester closed the connection");
        return -1;
    }
    memmove(w->out, w->out + done, w->out_len - done);
    w->out_len -= done;
    if (w->out_len && !(w->ew.events & EV_WRITE)) {
        w->ew.events = EV_READ | EV_WRITE;
        w->ew.deadline_ms = net_now_ms() + (uint64_t)node_io_timeout_ms(w->sw->node);
        ev_update(w->sw->ev, &w->ew);
    } else if (!w->out_len && (w->ew.events & EV_WRITE)) {
        w->ew.events = EV_READ;
        w->ew.deadline_ms = 0; /* idle again: no timer, no wake-up */
        ev_update(w->sw->ev, &w->ew);
    }
    return 0;
}

/* Queues CHANGED for w when its item's md5 differs from what w was last
 * told (or w was told nothing yet), then writes. 0, or -1 when w ended. */
static int watcher_check(struct watcher *w)
{
    struct share_item it;
    char md5[MSG_MD5_LEN + 1] = "";
    struct share *sh = node_share_get(w->sw->node);

    if (share_lookup(sh, w->path, &it) == FS_OK)
        memcpy(md5, it.md5, sizeof md5);
    node_share_put(w->sw->node);
    if (w->told && strcmp(md5, w->md5) == 0)
        return 0;
    struct msg m;
    char line[MSG_MAX_HEADER];
    memset(&m, 0, sizeof m);
    m.type = MSG_CHANGED;
    memcpy(m.path, w->path, sizeof m.path);
    memcpy(m.md5, md5, sizeof m.md5);
    int n = msg_format(&m, line, sizeof line);
    if (n < 0) {
        watcher_end(w, "the path does not fit a CHANGED header");
        return -1;
    }
    if ((size_t)n > sizeof w->out - w->out_len) {
        watcher_end(w, "it does not read what it is told");
        return -1;
    }
    memcpy(w->out + w->out_len, line, (size_t)n);
    w->out_len += (size_t)n;
    memcpy(w->md5, md5, sizeof w->md5);
    w->told = 1;
    return watcher_flush(w);
}

static void on_watcher(struct ev *ev, struct ev_watch *ew, uint32_t what)
{
    struct watcher *w = ew->arg;

    (void)ev;
    if (what & EV_TIMEOUT) {
        watcher_end(w, "it does not read what it is told");
        return;
    }
    if (what & (EV_READ | EV_HUP)) {
        /* WATCH is the requester's last word: anything more ends it. */
        fs_status st = conn_fill(w->c);
        if (st == FS_OK) {
            watcher_end(w, "it sent more after WATCH");
            return;
        }
        if (st != FS_NEED_MORE) {
            watcher_end(w, "the requester closed the connection");
            return;
        }
    }
    if (what & EV_WRITE)
        watcher_flush(w);
}

static void on_share_changed(struct ev *ev, struct ev_watch *ew, uint32_t what)
{
    struct swatch *sw = ew->arg;
    uint64_t n;

    (void)ev;
    (void)what;
    if (read(sw->efd, &n, sizeof n) < 0 && errno != EAGAIN) {
        log_msg(L_WARN, "watch: cannot read the change counter: %s", strerror(errno));
    }
    for (unsigned i = 0; i < XFER_WATCHERS_MAX; i++)
        if (sw->w[i])
            watcher_check(sw->w[i]);
}

/* Posted by swatch_adopt(): puts w on the loop and tells it the item's
 * state now. */
static void watcher_add(void *arg)
{
    struct watcher *w = arg;
    struct swatch *sw = w->sw;
    unsigned i = 0;

    while (i < XFER_WATCHERS_MAX && sw->w[i])
        i++;
    /* n counts w already, and n never exceeds XFER_WATCHERS_MAX: a slot is free. */
    sw->w[i] = w;
    w->ew = (struct ev_watch){.fd = w->c->fd, .events = EV_READ, .cb = on_watcher, .arg = w};
    if (ev_add(sw->ev, &w->ew) != FS_OK) {
        sw->w[i] = NULL;
        watcher_free(w);
        return;
    }
    watcher_check(w);
}

struct swatch *swatch_new(struct node *n, struct gate *g)
{
    struct swatch *sw = calloc(1, sizeof *sw);

    if (!sw)
        return NULL;
    sw->node = n;
    sw->gate = g;
    sw->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    sw->ev = ev_new();
    pthread_mutex_init(&sw->lock, NULL);
    sw->eew = (struct ev_watch){.fd = sw->efd, .events = EV_READ, .cb = on_share_changed,
                                .arg = sw};
    if (sw->efd < 0 || !sw->ev || ev_add(sw->ev, &sw->eew) != FS_OK ||
        node_on_share_change(n, share_changed, sw) != FS_OK) {
        swatch_free(sw);
        return NULL;
    }
    return sw;
}

/* Starts the loop's thread, with a bounded stack and every signal blocked
 * (the main thread's sigwait() has them). Called with sw->lock held. */
static int start_loop(struct swatch *sw)
{
    pthread_attr_t at;
    sigset_t all, old;
    int rc;

    if (sw->started)
        return 0;
    pthread_attr_init(&at);
    pthread_attr_setstacksize(&at, SWATCH_STACK);
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pthread_create(&sw->thread, &at, loop_main, sw);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&at);
    if (rc)
        return -1;
    sw->started = 1;
    return 0;
}

/* Reserves a place for one more watcher; NULL when it may not have one,
 * else the ERROR code to refuse with. */
static const char *reserve(struct swatch *sw)
{
    const char *refuse = NULL;

    pthread_mutex_lock(&sw->lock);
    if (sw->stopping)
        refuse = "stopping";
    else if (sw->n >= XFER_WATCHERS_MAX)
        refuse = "busy";
    else if (start_loop(sw) < 0)
        refuse = "internal";
    else
        sw->n++;
    pthread_mutex_unlock(&sw->lock);
    return refuse;
}

int swatch_adopt(struct swatch *sw, struct conn *c, const struct msg *req)
{
    char who[ADDR_STR_MAX], esc[LOG_ESCAPE_BUF], text[MSG_MAX_TEXT + 1];
    const struct cfg *cf = node_cfg_get(sw->node);
    int ok = browse_allowed(cf, c->fd, &req->from);
    enum cfg_accept policy = cf->accept_browse;

    node_cfg_put(cf);
    addr_format(&req->from, who);
    log_escape_str(esc, req->path);
    if (!ok) {
        stats_inc(node_stats(sw->node), browse_refused);
        snprintf(text, sizeof text, "watching not accepted from %s", who);
        log_msg(L_INFO, "watch %s from %s refused: [accept] browse = %s", esc, who,
                cfg_accept_name(policy));
        conn_send_error(c, "refused", text, c->timeout_ms);
        return 0;
    }
    if (c->off < c->len) { /* bytes after WATCH: the requester does not follow the protocol */
        conn_send_error(c, "malformed", "nothing may follow WATCH", c->timeout_ms);
        return 0;
    }
    const char *refuse = reserve(sw);
    if (refuse) {
        if (strcmp(refuse, "busy") == 0)
            snprintf(text, sizeof text, "too many watchers (%d at most), try again later",
                     XFER_WATCHERS_MAX);
        else
            snprintf(text, sizeof text, "cannot watch now (%s)", refuse);
        log_msg(L_INFO, "watch %s from %s refused: %s", esc, who, text);
        conn_send_error(c, refuse, text, c->timeout_ms);
        return 0;
    }
    int sndbuf = SWATCH_SNDBUF;
    if (setsockopt(c->fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf) != 0)
        log_msg(L_DEBUG, "watch: cannot bound the send buffer: %s", strerror(errno));
    struct watcher *w = calloc(1, sizeof *w);
    if (w) {
        w->sw = sw;
        w->c = c;
        memcpy(w->path, req->path, sizeof w->path);
        memcpy(w->who, who, sizeof w->who);
    }
    if (!w || ev_post(sw->ev, watcher_add, w) != FS_OK) {
        free(w);
        pthread_mutex_lock(&sw->lock);
        sw->n--;
        pthread_mutex_unlock(&sw->lock);
        conn_send_error(c, "internal", "cannot watch now", c->timeout_ms);
        return 0;
    }
    log_msg(L_INFO, "watch %s from %s", esc, who);
    return 1;
}

unsigned swatch_count(struct swatch *sw)
{
    pthread_mutex_lock(&sw->lock);
    unsigned n = sw->n;
    pthread_mutex_unlock(&sw->lock);
    return n;
}

void swatch_stop(struct swatch *sw)
{
    if (!sw)
        return;
    pthread_mutex_lock(&sw->lock);
    sw->stopping = 1;
    int started = sw->started;
    pthread_mutex_unlock(&sw->lock);
    ev_stop(sw->ev);
    if (started)
        pthread_join(sw->thread, NULL);
    for (unsigned i = 0; i < XFER_WATCHERS_MAX; i++) {
        if (!sw->w[i])
            continue;
        ev_del(sw->ev, &sw->w[i]->ew);
        gate_done(sw->gate, sw->w[i]->c);
        free(sw->w[i]);
        sw->w[i] = NULL;
    }
}

void swatch_free(struct swatch *sw)
{
    if (!sw)
        return;
    if (sw->ev) {
        if (sw->efd >= 0)
            ev_del(sw->ev, &sw->eew);
        ev_free(sw->ev);
    }
    if (sw->efd >= 0)
        close(sw->efd);
    pthread_mutex_destroy(&sw->lock);
    free(sw);
}
