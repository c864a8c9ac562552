/* ev.h - a small event loop: epoll for descriptors, one timer per watch,
 * and calls posted from other threads.
 *
 * One thread runs ev_run(); every callback runs on that thread, so state
 * touched only by callbacks needs no lock. Nothing a callback does may
 * block: that is the loop's whole contract (redis's ae and libuv make the
 * same one). When no descriptor is ready and no deadline is set, the loop
 * sleeps in epoll_wait with no timeout, so an idle loop uses no CPU.
 *
 * Ownership: the loop borrows every descriptor it watches; the caller
 * closes it after ev_del(). */
#ifndef FLOODSHARE_EV_H
#define FLOODSHARE_EV_H

#include <stdint.h>

#include "floodshare/status.h"

struct ev;

/* A watched descriptor. The caller embeds it in its own struct and keeps
 * it alive until ev_del(). `deadline_ms` (net_now_ms() clock, 0 = none)
 * fires `cb` with EV_TIMEOUT once it has passed. */
struct ev_watch {
    int fd;
    uint32_t events; /* EV_READ | EV_WRITE wanted */
    uint64_t deadline_ms;
    void (*cb)(struct ev *ev, struct ev_watch *w, uint32_t what);
    void *arg;
    /* Below: the loop's own. */
    struct ev_watch *tnext, *tprev; /* on the deadline list when deadline_ms != 0 */
    int on_tlist;
};

#define EV_READ 1u
#define EV_WRITE 2u
#define EV_HUP 4u     /* error or hang-up (reported with EV_READ) */
#define EV_TIMEOUT 8u /* deadline_ms passed */

/* NULL on failure (descriptors or memory). */
struct ev *ev_new(void);

/* Frees the loop. ev_run() must have returned; watches are not touched. */
void ev_free(struct ev *ev);

/* Starts watching w->fd for w->events. FS_EIO when epoll refuses it. */
fs_status ev_add(struct ev *ev, struct ev_watch *w);

/* Applies a change of w->events or w->deadline_ms. */
void ev_update(struct ev *ev, struct ev_watch *w);

/* Stops watching w (before its fd is closed). Safe from w's own callback. */
void ev_del(struct ev *ev, struct ev_watch *w);

/* Runs fn(arg) on the loop's thread, soon. Thread-safe. FS_ENOMEM. */
fs_status ev_post(struct ev *ev, void (*fn)(void *arg), void *arg);

/* Runs fn(arg) on the loop's thread and waits until it has returned.
 * Called on the loop's own thread it runs fn at once. FS_ECANCELED when
 * the loop has stopped (fn did not run). Thread-safe. */
fs_status ev_call(struct ev *ev, void (*fn)(void *arg), void *arg);

/* 1 when called on the thread running ev_run(). */
int ev_on_loop(struct ev *ev);

/* Runs until ev_stop(). */
void ev_run(struct ev *ev);

/* Makes ev_run() return after its current round. Thread-safe. Calls
 * posted later are refused; ev_call() waiters are released. */
void ev_stop(struct ev *ev);

#endif
