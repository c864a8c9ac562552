/* tpool.c - a bounded job queue served by threads made on demand. */
#include "floodshare/tpool.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

/* lock guards everything below it. more signals "a job was queued, or
 * stopping"; gone signals "a thread exited". Threads are detached: the
 * pool counts them instead of joining them, because one that exits on its
 * own (idle) has nobody to join it. */
struct tpool {
    struct tpool_opts o;
    pthread_mutex_t lock;
    pthread_cond_t more, gone;
    void **queue; /* ring of o.queue_cap jobs */
    unsigned head, len;
    unsigned threads, idle;
    int stopping;
};

/* Waits on more until abs (CLOCK_MONOTONIC, like the condition). */
static int wait_until(struct tpool *tp, const struct timespec *abs)
{
    return pthread_cond_timedwait(&tp->more, &tp->lock, abs);
}

static void deadline_in(struct timespec *ts, int ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

static void *tpool_thread(void *arg)
{
    struct tpool *tp = arg;
    struct timespec until;

    pthread_mutex_lock(&tp->lock);
    for (;;) {
        deadline_in(&until, tp->o.idle_ms);
        while (tp->len == 0 && !tp->stopping) {
            tp->idle++;
            int rc = wait_until(tp, &until);
            tp->idle--;
            if (rc == ETIMEDOUT && tp->len == 0)
                goto out; /* idle for idle_ms: give the thread back */
        }
        if (tp->stopping)
            break; /* what is still queued goes to tpool_stop()'s drain */
        void *job = tp->queue[tp->head];
        tp->head = (tp->head + 1) % tp->o.queue_cap;
        tp->len--;
        pthread_mutex_unlock(&tp->lock);
        tp->o.run(tp->o.arg, job);
        pthread_mutex_lock(&tp->lock);
    }
out:
    tp->threads--;
    pthread_cond_broadcast(&tp->gone);
    /* The last touch of tp: tpool_stop() wakes only once this unlock is done. */
    pthread_mutex_unlock(&tp->lock);
    return NULL;
}

fs_status tpool_new(struct tpool **out, const struct tpool_opts *o)
{
    pthread_condattr_t ca;
    struct tpool *tp;

    *out = NULL;
    if (!o || !o->run || o->max_threads < 1 || o->queue_cap < 1 || o->idle_ms < 1 ||
        o->stack_size < (size_t)PTHREAD_STACK_MIN)
        return FS_EINVAL;
    tp = calloc(1, sizeof *tp);
    if (!tp)
        return FS_ENOMEM;
    tp->o = *o;
    tp->queue = calloc(o->queue_cap, sizeof *tp->queue);
    if (!tp->queue) {
        free(tp);
        return FS_ENOMEM;
    }
    pthread_mutex_init(&tp->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* idle timeouts ignore clock changes */
    pthread_cond_init(&tp->more, &ca);
    pthread_condattr_destroy(&ca);
    pthread_cond_init(&tp->gone, NULL);
    *out = tp;
    return FS_OK;
}

/* Called with lock held. */
static int start_thread(struct tpool *tp)
{
    pthread_attr_t at;
    pthread_t t;
    int rc;

    if (pthread_attr_init(&at) != 0)
        return -1;
    rc = pthread_attr_setstacksize(&at, tp->o.stack_size);
    if (rc == 0)
        rc = pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    if (rc == 0)
        rc = pthread_create(&t, &at, tpool_thread, tp);
    pthread_attr_destroy(&at);
    if (rc != 0)
        return -1;
    tp->threads++;
    return 0;
}

fs_status tpool_submit(struct tpool *tp, void *job)
{
    fs_status st = FS_OK;

    pthread_mutex_lock(&tp->lock);
    if (tp->stopping || tp->len == tp->o.queue_cap) {
        st = FS_EBUSY;
        goto out;
    }
    tp->queue[(tp->head + tp->len) % tp->o.queue_cap] = job;
    tp->len++;
    /* Idle threads each take one queued job; start one for the rest. */
    if (tp->len > tp->idle && tp->threads < tp->o.max_threads && start_thread(tp) < 0 &&
        tp->threads == 0) {
        tp->len--; /* nobody would ever run it */
        st = FS_EBUSY;
        goto out;
    }
    pthread_cond_signal(&tp->more);
out:
    pthread_mutex_unlock(&tp->lock);
    return st;
}

void tpool_stop(struct tpool *tp, tpool_run_fn drain)
{
    pthread_mutex_lock(&tp->lock);
    tp->stopping = 1;
    pthread_cond_broadcast(&tp->more);
    while (tp->threads > 0)
        pthread_cond_wait(&tp->gone, &tp->lock);
    while (tp->len > 0) {
        void *job = tp->queue[tp->head];
        tp->head = (tp->head + 1) % tp->o.queue_cap;
        tp->len--;
        if (drain)
            drain(tp->o.arg, job);
    }
    pthread_mutex_unlock(&tp->lock);
}

void tpool_count(struct tpool *tp, unsigned *threads, unsigned *idle)
{
    pthread_mutex_lock(&tp->lock);
    *threads = tp->threads;
    *idle = tp->idle;
    pthread_mutex_unlock(&tp->lock);
}

void tpool_free(struct tpool *tp)
{
    if (!tp)
        return;
    pthread_cond_destroy(&tp->more);
    pthread_cond_destroy(&tp->gone);
    pthread_mutex_destroy(&tp->lock);
    free(tp->queue);
    free(tp);
}
