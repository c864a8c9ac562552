/* ev.c - the event loop: epoll, deadlines, posted calls. */
#include "floodshare/ev.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "floodshare/net.h"

#define EV_BATCH 64 /* events taken from epoll per round */

struct ev_post {
    void (*fn)(void *arg);
    void *arg;
    struct ev_post *next;
};

/* A call some thread waits for (ev_call). */
struct ev_wait {
    void (*fn)(void *arg);
    void *arg;
    int done; /* guarded by ev.lock */
};

struct ev {
    int epfd, wakefd;
    pthread_t thread;   /* valid while running */
    atomic_int running; /* set by the loop thread, read by any */
    /* The deadline list: loop thread only (its watches are loop-owned). */
    struct ev_watch *timers;
    /* lock guards posts, stopping, and every ev_wait.done; cond is
     * broadcast when a call finished or the loop stopped. */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct ev_post *posts, **posts_tail;
    int stopping;
};

struct ev *ev_new(void)
{
    struct ev *ev = calloc(1, sizeof *ev);

    if (!ev)
        return NULL;
    ev->epfd = epoll_create1(EPOLL_CLOEXEC);
    ev->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    struct epoll_event e = {.events = EPOLLIN, .data.ptr = NULL};
    if (ev->epfd < 0 || ev->wakefd < 0 || epoll_ctl(ev->epfd, EPOLL_CTL_ADD, ev->wakefd, &e) < 0) {
        if (ev->epfd >= 0)
            close(ev->epfd);
        if (ev->wakefd >= 0)
            close(ev->wakefd);
        free(ev);
        return NULL;
    }
    pthread_mutex_init(&ev->lock, NULL);
    pthread_cond_init(&ev->cond, NULL);
    ev->posts_tail = &ev->posts;
    return ev;
}

void ev_free(struct ev *ev)
{
    if (!ev)
        return;
    while (ev->posts) { /* posted after the last round: their owners free args */
        struct ev_post *p = ev->posts;
        ev->posts = p->next;
        free(p);
    }
    close(ev->epfd);
    close(ev->wakefd);
    pthread_mutex_destroy(&ev->lock);
    pthread_cond_destroy(&ev->cond);
    free(ev);
}

static uint32_t to_epoll(uint32_t events)
{
    return (events & EV_READ ? EPOLLIN : 0u) | (events & EV_WRITE ? EPOLLOUT : 0u);
}

static void tlist_sync(struct ev *ev, struct ev_watch *w)
{
    if (w->deadline_ms && !w->on_tlist) {
        w->tprev = NULL;
        w->tnext = ev->timers;
        if (ev->timers)
            ev->timers->tprev = w;
        ev->timers = w;
        w->on_tlist = 1;
    } else if (!w->deadline_ms && w->on_tlist) {
        if (w->tprev)
            w->tprev->tnext = w->tnext;
        else
            ev->timers = w->tnext;
        if (w->tnext)
            w->tnext->tprev = w->tprev;
        w->tnext = w->tprev = NULL;
        w->on_tlist = 0;
    }
}

fs_status ev_add(struct ev *ev, struct ev_watch *w)
{
    struct epoll_event e = {.events = to_epoll(w->events), .data.ptr = w};

    w->on_tlist = 0;
    w->tnext = w->tprev = NULL;
    if (epoll_ctl(ev->epfd, EPOLL_CTL_ADD, w->fd, &e) < 0)
        return FS_EIO;
    tlist_sync(ev, w);
    return FS_OK;
}

void ev_update(struct ev *ev, struct ev_watch *w)
{
    struct epoll_event e = {.events = to_epoll(w->events), .data.ptr = w};

    epoll_ctl(ev->epfd, EPOLL_CTL_MOD, w->fd, &e);
    tlist_sync(ev, w);
}

void ev_del(struct ev *ev, struct ev_watch *w)
{
    epoll_ctl(ev->epfd, EPOLL_CTL_DEL, w->fd, NULL);
    w->deadline_ms = 0;
    tlist_sync(ev, w);
    w->cb = NULL; /* a later event of this round for w is ignored */
}

static void wake(struct ev *ev)
{
    uint64_t one = 1;
    if (write(ev->wakefd, &one, sizeof one) < 0) { /* full counter: a wake is pending anyway */
    }
}

/* Queues p for the loop unless it is stopping (then FS_ECANCELED, and p is
 * freed). Called with ev->lock held; wakes the loop. */
static fs_status queue_post(struct ev *ev, struct ev_post *p)
{
    if (ev->stopping) {
        free(p);
        return FS_ECANCELED;
    }
    *ev->posts_tail = p;
    ev->posts_tail = &p->next;
    wake(ev);
    return FS_OK;
}

static struct ev_post *new_post(void (*fn)(void *arg), void *arg)
{
    struct ev_post *p = malloc(sizeof *p);

    if (p) {
        p->fn = fn;
        p->arg = arg;
        p->next = NULL;
    }
    return p;
}

fs_status ev_post(struct ev *ev, void (*fn)(void *arg), void *arg)
{
    struct ev_post *p = new_post(fn, arg);

    if (!p)
        return FS_ENOMEM;
    pthread_mutex_lock(&ev->lock);
    fs_status st = queue_post(ev, p);
    pthread_mutex_unlock(&ev->lock);
    return st;
}

static void run_wait(void *arg)
{
    struct ev_wait *w = arg;
    w->fn(w->arg);
}

int ev_on_loop(struct ev *ev)
{
    return ev->running && pthread_equal(pthread_self(), ev->thread);
}

fs_status ev_call(struct ev *ev, void (*fn)(void *arg), void *arg)
{
    if (ev_on_loop(ev)) {
        fn(arg);
        return FS_OK;
    }
    struct ev_wait w = {.fn = fn, .arg = arg, .done = 0};
    struct ev_post *p = new_post(run_wait, &w);
    if (!p)
        return FS_ENOMEM;
    pthread_mutex_lock(&ev->lock);
    fs_status st = queue_post(ev, p);
    /* The loop marks w done after running it. A post queued before the
     * stop is still run: ev_run drains every post once more as it ends. */
    while (st == FS_OK && !w.done)
        pthread_cond_wait(&ev->cond, &ev->lock);
    pthread_mutex_unlock(&ev->lock);
    return st;
}

/* Runs every posted call; marks ev_call waiters done. */
static void run_posts(struct ev *ev)
{
    pthread_mutex_lock(&ev->lock);
    struct ev_post *list = ev->posts;
    ev->posts = NULL;
    ev->posts_tail = &ev->posts;
    pthread_mutex_unlock(&ev->lock);
    while (list) {
        struct ev_post *p = list;
        list = p->next;
        p->fn(p->arg);
        if (p->fn == run_wait) {
            pthread_mutex_lock(&ev->lock);
            ((struct ev_wait *)p->arg)->done = 1;
            pthread_cond_broadcast(&ev->cond);
            pthread_mutex_unlock(&ev->lock);
        }
        free(p);
    }
}

/* Milliseconds until the earliest deadline, -1 when none. */
static int next_timeout(struct ev *ev, uint64_t now)
{
    uint64_t min = 0;

    for (struct ev_watch *w = ev->timers; w; w = w->tnext)
        if (!min || w->deadline_ms < min)
            min = w->deadline_ms;
    if (!min)
        return -1;
    return min <= now ? 0 : (int)(min - now > 60000 ? 60000 : min - now);
}

static void fire_timers(struct ev *ev, uint64_t now)
{
    /* A callback may delete any watch, so restart the walk after each. */
    for (int again = 1; again;) {
        again = 0;
        for (struct ev_watch *w = ev->timers; w; w = w->tnext) {
            if (w->deadline_ms <= now) {
                w->deadline_ms = 0;
                tlist_sync(ev, w);
                if (w->cb)
                    w->cb(ev, w, EV_TIMEOUT);
                again = 1;
                break;
            }
        }
    }
}

void ev_run(struct ev *ev)
{
    struct epoll_event evs[EV_BATCH];

    ev->thread = pthread_self();
    ev->running = 1;
    for (;;) {
        pthread_mutex_lock(&ev->lock);
        int stop = ev->stopping;
        pthread_mutex_unlock(&ev->lock);
        if (stop)
            break;
        int n = epoll_wait(ev->epfd, evs, EV_BATCH, next_timeout(ev, net_now_ms()));
        if (n < 0 && errno != EINTR)
            break;
        for (int i = 0; i < n; i++) {
            struct ev_watch *w = evs[i].data.ptr;
            if (!w) {
                uint64_t v;
                if (read(ev->wakefd, &v, sizeof v) < 0) { /* EAGAIN: another wake took it */
                }
                continue;
            }
            uint32_t e = evs[i].events, what = 0;
            if (e & (EPOLLIN | EPOLLERR | EPOLLHUP | EPOLLRDHUP))
                what |= EV_READ;
            if (e & (EPOLLERR | EPOLLHUP))
                what |= EV_HUP;
            if (e & EPOLLOUT)
                what |= EV_WRITE;
            /* A callback earlier in this round may have deleted w (cb NULL)
             * but not freed it: owners free watches only via a post. */
            if (w->cb)
                w->cb(ev, w, what);
        }
        run_posts(ev);
        fire_timers(ev, net_now_ms());
    }
    run_posts(ev); /* release ev_call waiters; the rest see stopping */
    ev->running = 0;
}

void ev_stop(struct ev *ev)
{
    pthread_mutex_lock(&ev->lock);
    ev->stopping = 1;
    pthread_cond_broadcast(&ev->cond);
    pthread_mutex_unlock(&ev->lock);
    wake(ev);
}
