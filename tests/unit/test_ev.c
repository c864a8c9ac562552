/* test_ev.c - the event loop: readiness, deadlines, calls from other
 * threads, and the stop that releases every waiter. */
#include <pthread.h>
#include <stdatomic.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>

#include <cmocka.h>

#include "floodshare/ev.h"
#include "floodshare/net.h"

static void *run(void *arg)
{
    ev_run(arg);
    return NULL;
}

/* Written on the loop, read by the test's thread: atomics. */
struct seen {
    atomic_int reads, timeouts;
    pthread_t thread; /* set by an ev_call: read after it returned */
    atomic_int on_loop;
};

static void on_fd(struct ev *ev, struct ev_watch *w, uint32_t what)
{
    struct seen *s = w->arg;
    char b;

    if (what & EV_TIMEOUT) {
        s->timeouts++;
        return;
    }
    if (read(w->fd, &b, 1) == 1)
        s->reads++;
    s->on_loop = ev_on_loop(ev);
}

struct watch_job {
    struct ev *ev;
    struct ev_watch *w;
};

static void add_on_loop(void *arg)
{
    struct watch_job *j = arg;
    assert_int_equal(ev_add(j->ev, j->w), FS_OK);
}

static void del_on_loop(void *arg)
{
    struct watch_job *j = arg;
    ev_del(j->ev, j->w);
}

static void snapshot(void *arg)
{
    struct seen *s = arg;
    s->thread = pthread_self();
}

static void test_readiness_and_calls_run_on_the_loop(void **state)
{
    struct ev *ev = ev_new();
    pthread_t t;
    int fds[2];
    struct seen s = {0};
    struct ev_watch w = {0};

    (void)state;
    assert_non_null(ev);
    assert_int_equal(pipe(fds), 0);
    pthread_create(&t, NULL, run, ev);
    w.fd = fds[0];
    w.events = EV_READ;
    w.cb = on_fd;
    w.arg = &s;
    struct watch_job j = {ev, &w};
    assert_int_equal(ev_call(ev, add_on_loop, &j), FS_OK);
    assert_int_equal(write(fds[1], "x", 1), 1);
    /* Each look at s goes after an ev_call(), which returns once the loop ran it: whatever
     * on_fd wrote before is then ours to read. (Reading s while on_fd ran once saw reads set
     * and on_loop not yet, under TSan.) */
    for (int i = 0; i < 200; i++) {
        assert_int_equal(ev_call(ev, snapshot, &s), FS_OK); /* waits: s.thread is set after */
        if (s.reads)
            break;
        usleep(5000);
    }
    assert_int_equal(s.reads, 1);
    assert_true(s.on_loop);
    assert_true(pthread_equal(s.thread, t));
    assert_int_equal(ev_call(ev, del_on_loop, &j), FS_OK);
    ev_stop(ev);
    pthread_join(t, NULL);
    /* after the stop nothing more is taken, and nobody waits forever */
    assert_int_equal(ev_call(ev, snapshot, &s), FS_ECANCELED);
    assert_int_equal(ev_post(ev, snapshot, &s), FS_ECANCELED);
    ev_free(ev);
    close(fds[0]);
    close(fds[1]);
}

static void test_a_deadline_fires_once(void **state)
{
    struct ev *ev = ev_new();
    pthread_t t;
    int fds[2];
    struct seen s = {0};
    struct ev_watch w = {0};

    (void)state;
    assert_int_equal(pipe(fds), 0);
    w.fd = fds[0];
    w.events = EV_READ;
    w.cb = on_fd;
    w.arg = &s;
    w.deadline_ms = net_now_ms() + 30;
    struct watch_job j = {ev, &w};
    pthread_create(&t, NULL, run, ev);
    assert_int_equal(ev_call(ev, add_on_loop, &j), FS_OK);
    /* s is read only after an ev_call(), as above */
    for (int i = 0; i < 400; i++) {
        assert_int_equal(ev_call(ev, snapshot, &s), FS_OK);
        if (s.timeouts)
            break;
        usleep(5000);
    }
    usleep(200000); /* long past the deadline: it must not fire again */
    assert_int_equal(ev_call(ev, snapshot, &s), FS_OK);
    assert_int_equal(s.timeouts, 1); /* once: the deadline is cleared when it fires */
    assert_int_equal(s.reads, 0);
    assert_int_equal(ev_call(ev, del_on_loop, &j), FS_OK);
    ev_stop(ev);
    pthread_join(t, NULL);
    ev_free(ev);
    close(fds[0]);
    close(fds[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_readiness_and_calls_run_on_the_loop),
        cmocka_unit_test(test_a_deadline_fires_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
