/* tpool.h - a bounded job queue served by threads made on demand.
 *
 * A thread is created when a job is queued and no idle thread is left to
 * take it, up to max_threads; a thread with nothing to do for idle_ms exits.
 * So a pool that is not used holds no thread at all, and a burst costs at
 * most max_threads threads (each with a stack of exactly stack_size bytes)
 * plus queue_cap queued jobs.
 *
 * Threads: tpool_submit() from any thread; tpool_stop() and tpool_free()
 * from one thread, never from a job. Jobs run with the signal mask of the
 * thread that submitted the job that created their thread: submit from a
 * thread that blocks the signals the pool's threads must not take. */
#ifndef FLOODSHARE_TPOOL_H
#define FLOODSHARE_TPOOL_H

#include <stddef.h>

#include "floodshare/status.h"

/* Sanitizers make frames several times larger: explicit stack sizes (the
 * pool's, and other threads') are multiplied by this. gcc and newer clang
 * say so with __SANITIZE_*__, clang 14 only through __has_feature. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define TPOOL_STACK_SCALE 8u
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define TPOOL_STACK_SCALE 8u
#endif
#endif
#ifndef TPOOL_STACK_SCALE
#define TPOOL_STACK_SCALE 1u
#endif

struct tpool;

/* Runs one job on a pool thread. job is whatever tpool_submit() got. */
typedef void (*tpool_run_fn)(void *arg, void *job);

struct tpool_opts {
    unsigned max_threads; /* threads alive at once, >= 1 */
    unsigned queue_cap;   /* jobs waiting for a thread, >= 1 */
    size_t stack_size;    /* bytes of each thread's stack (>= PTHREAD_STACK_MIN) */
    int idle_ms;          /* a thread idle this long exits, >= 1 */
    tpool_run_fn run;
    void *arg;            /* borrowed: passed to run */
};

/* Creates a pool with no thread yet. FS_EINVAL for options out of range,
 * FS_ENOMEM. The caller frees it with tpool_free(). */
fs_status tpool_new(struct tpool **out, const struct tpool_opts *o);

/* Queues job and, when no idle thread will take it, starts one (if fewer
 * than max_threads run). FS_OK: the pool owns the job until run() returns.
 * FS_EBUSY: the queue is full or the pool is stopping; the caller keeps
 * job. When no thread can be created and none runs, FS_EBUSY too (the job
 * would otherwise wait forever). */
fs_status tpool_submit(struct tpool *tp, void *job);

/* Refuses new jobs, waits for the running jobs to return and every thread
 * to exit, then hands each job still queued to drain(arg, job) (drain may
 * be NULL). Make running jobs return first (shut their sockets down). */
void tpool_stop(struct tpool *tp, tpool_run_fn drain);

/* Threads alive now, and how many of them wait for a job. */
void tpool_count(struct tpool *tp, unsigned *threads, unsigned *idle);

/* Frees a stopped pool (or one never started). NULL is fine. */
void tpool_free(struct tpool *tp);

#endif
