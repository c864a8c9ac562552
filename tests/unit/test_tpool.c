/* test_tpool.c - the on-demand thread pool (tpool.h). */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "floodshare/tpool.h"

#define STACK (256 * 1024)

/* Jobs block on gate until it opens, so a test controls how many run. */
struct world {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int open;
    unsigned ran, running, max_running, drained;
    size_t stack_seen;
};

static void world_init(struct world *w)
{
    memset(w, 0, sizeof *w);
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->cond, NULL);
}

static void world_open(struct world *w)
{
    pthread_mutex_lock(&w->lock);
    w->open = 1;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

static void job(void *arg, void *j)
{
    struct world *w = arg;
    pthread_attr_t at;
    size_t stack = 0;

    (void)j;
    if (pthread_getattr_np(pthread_self(), &at) == 0) {
        pthread_attr_getstacksize(&at, &stack);
        pthread_attr_destroy(&at);
    }
    pthread_mutex_lock(&w->lock);
    w->stack_seen = stack;
    w->running++;
    if (w->running > w->max_running)
        w->max_running = w->running;
    pthread_cond_broadcast(&w->cond);
    while (!w->open)
        pthread_cond_wait(&w->cond, &w->lock);
    w->running--;
    w->ran++;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

static void drain(void *arg, void *j)
{
    struct world *w = arg;

    (void)j;
    w->drained++;
}

/* Waits (up to 10 s: never a timing target) until pred holds. */
static int eventually(struct tpool *tp, unsigned want_threads)
{
    for (int i = 0; i < 1000; i++) {
        unsigned t, idle;
        tpool_count(tp, &t, &idle);
        if (t == want_threads)
            return 1;
        usleep(10 * 1000);
    }
    return 0;
}

static void wait_running(struct world *w, unsigned n)
{
    pthread_mutex_lock(&w->lock);
    while (w->running < n)
        pthread_cond_wait(&w->cond, &w->lock);
    pthread_mutex_unlock(&w->lock);
}

static struct tpool *make(struct world *w, unsigned threads, unsigned queue, int idle_ms)
{
    struct tpool_opts o = {.max_threads = threads, .queue_cap = queue, .stack_size = STACK,
                           .idle_ms = idle_ms, .run = job, .arg = w};
    struct tpool *tp = NULL;

    assert_int_equal(tpool_new(&tp, &o), FS_OK);
    return tp;
}

static void test_tpool_starts_no_thread_until_a_job_comes(void **state)
{
    struct world w;
    unsigned t, idle;

    (void)state;
    world_init(&w);
    struct tpool *tp = make(&w, 4, 4, 10000);
    tpool_count(tp, &t, &idle);
    assert_int_equal(t, 0);
    world_open(&w);
    assert_int_equal(tpool_submit(tp, &w), FS_OK);
    tpool_stop(tp, drain);
    assert_int_equal(w.ran + w.drained, 1);
    tpool_free(tp);
}

static void test_tpool_never_runs_more_than_max_threads(void **state)
{
    struct world w;
    int dummy[16];

    (void)state;
    world_init(&w);
    struct tpool *tp = make(&w, 3, 16, 10000);
    for (int i = 0; i < 16; i++)
        assert_int_equal(tpool_submit(tp, &dummy[i]), FS_OK);
    wait_running(&w, 3);
    unsigned t, idle;
    tpool_count(tp, &t, &idle);
    assert_int_equal(t, 3);
    world_open(&w);
    assert_true(eventually(tp, 3)); /* idle, not gone: idle_ms is 10 s */
    pthread_mutex_lock(&w.lock);
    while (w.ran < 16)
        pthread_cond_wait(&w.cond, &w.lock);
    pthread_mutex_unlock(&w.lock);
    assert_int_equal(w.max_running, 3);
    /* Exactly STACK, except that TSan adds room of its own; never glibc's 8 MiB default. */
    assert_true(w.stack_seen >= STACK && w.stack_seen < 8u * 1024 * 1024);
    tpool_stop(tp, drain);
    assert_int_equal(w.drained, 0);
    tpool_free(tp);
}

static void test_tpool_refuses_when_the_queue_is_full(void **state)
{
    struct world w;
    int dummy[4];

    (void)state;
    world_init(&w);
    struct tpool *tp = make(&w, 1, 2, 10000);
    assert_int_equal(tpool_submit(tp, &dummy[0]), FS_OK);
    wait_running(&w, 1); /* the one thread holds job 0 */
    assert_int_equal(tpool_submit(tp, &dummy[1]), FS_OK);
    assert_int_equal(tpool_submit(tp, &dummy[2]), FS_OK);
    assert_int_equal(tpool_submit(tp, &dummy[3]), FS_EBUSY);
    world_open(&w);
    tpool_stop(tp, drain);
    assert_int_equal(w.ran + w.drained, 3);
    tpool_free(tp);
}

static void test_tpool_threads_exit_when_idle(void **state)
{
    struct world w;
    int dummy[4];

    (void)state;
    world_init(&w);
    struct tpool *tp = make(&w, 4, 4, 50);
    for (int i = 0; i < 4; i++)
        assert_int_equal(tpool_submit(tp, &dummy[i]), FS_OK);
    wait_running(&w, 4);
    world_open(&w);
    assert_true(eventually(tp, 0));
    /* and come back on demand */
    assert_int_equal(tpool_submit(tp, &dummy[0]), FS_OK);
    pthread_mutex_lock(&w.lock);
    while (w.ran < 5)
        pthread_cond_wait(&w.cond, &w.lock);
    pthread_mutex_unlock(&w.lock);
    tpool_stop(tp, drain);
    tpool_free(tp);
}

static void test_tpool_stop_hands_queued_jobs_to_drain(void **state)
{
    struct world w;
    int dummy[3];

    (void)state;
    world_init(&w);
    struct tpool *tp = make(&w, 1, 4, 10000);
    for (int i = 0; i < 3; i++)
        assert_int_equal(tpool_submit(tp, &dummy[i]), FS_OK);
    wait_running(&w, 1);
    world_open(&w); /* the running job returns; stop may come before the rest start */
    tpool_stop(tp, drain);
    assert_int_equal(w.ran + w.drained, 3);
    assert_int_equal(tpool_submit(tp, &dummy[0]), FS_EBUSY); /* stopped */
    tpool_free(tp);
}

static void test_tpool_refuses_bad_options(void **state)
{
    struct tpool *tp = (struct tpool *)1;
    struct tpool_opts o = {.max_threads = 1, .queue_cap = 1, .stack_size = STACK,
                           .idle_ms = 1, .run = job, .arg = NULL};

    (void)state;
    o.max_threads = 0;
    assert_int_equal(tpool_new(&tp, &o), FS_EINVAL);
    assert_null(tp);
    o.max_threads = 1;
    o.stack_size = 1024;
    assert_int_equal(tpool_new(&tp, &o), FS_EINVAL);
    o.stack_size = STACK;
    o.run = NULL;
    assert_int_equal(tpool_new(&tp, &o), FS_EINVAL);
    tpool_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tpool_starts_no_thread_until_a_job_comes),
        cmocka_unit_test(test_tpool_never_runs_more_than_max_threads),
        cmocka_unit_test(test_tpool_refuses_when_the_queue_is_full),
        cmocka_unit_test(test_tpool_threads_exit_when_idle),
        cmocka_unit_test(test_tpool_stop_hands_queued_jobs_to_drain),
        cmocka_unit_test(test_tpool_refuses_bad_options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
