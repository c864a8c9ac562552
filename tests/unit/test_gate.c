/* test_gate.c - the peer port's front door: headers first, limits, deadlines.
 * A real listening socket on 127.0.0.1; clients connect from 127.0.0.1 and
 * 127.0.0.2 (Linux routes all of 127/8 to loopback). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "floodshare/gate.h"
#include "floodshare/net.h"

#define MAX_READY 64

struct fx {
    int lfd;
    uint16_t port;
    struct gate *g;
    struct stats stats;
    pthread_t thread;
    pthread_mutex_t lock;
    struct conn *ready[MAX_READY];
    int n_ready;
};

static void on_ready(void *arg, struct conn *c)
{
    struct fx *f = arg;
    pthread_mutex_lock(&f->lock);
    f->ready[f->n_ready++] = c;
    pthread_mutex_unlock(&f->lock);
}

static void *run(void *arg)
{
    gate_run(((struct fx *)arg)->g);
    return NULL;
}

static struct fx *start(unsigned max_conns, unsigned per_addr, int header_ms, int idle_ms)
{
    static struct fx f;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    struct gate_limits lim = {max_conns, per_addr, header_ms, idle_ms, NULL, 0};

    memset(&f, 0, sizeof f);
    pthread_mutex_init(&f.lock, NULL);
    f.lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(f.lfd >= 0);
    assert_int_equal(bind(f.lfd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(f.lfd, 128), 0);
    assert_int_equal(getsockname(f.lfd, (struct sockaddr *)&sa, &len), 0);
    f.port = ntohs(sa.sin_port);
    assert_int_equal(gate_open(&f.g, f.lfd, &lim, &f.stats, on_ready, &f), FS_OK);
    assert_int_equal(pthread_create(&f.thread, NULL, run, &f), 0);
    return &f;
}

static void stop(struct fx *f)
{
    gate_stop(f->g);
    pthread_join(f->thread, NULL);
    for (int i = 0; i < f->n_ready; i++)
        gate_done(f->g, f->ready[i]);
    gate_free(f->g);
    close(f->lfd);
    pthread_mutex_destroy(&f->lock);
}

/* A client socket from 127.0.0.<src>. */
static int client(const struct fx *f, int src)
{
    struct sockaddr_in from = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000000u | src)};
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(f->port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&from, sizeof from), 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&to, sizeof to), 0);
    return fd;
}

static int n_ready(struct fx *f)
{
    pthread_mutex_lock(&f->lock);
    int n = f->n_ready;
    pthread_mutex_unlock(&f->lock);
    return n;
}

/* Waits until cond(f) holds or ms pass; returns cond's last value. */
static int wait_until(struct fx *f, int (*cond)(struct fx *, int), int arg, int ms)
{
    for (int waited = 0; waited < ms; waited += 5) {
        if (cond(f, arg))
            return 1;
        poll(NULL, 0, 5);
    }
    return cond(f, arg);
}

static int ready_is(struct fx *f, int n) { return n_ready(f) == n; }
static int open_is(struct fx *f, int n) { return (int)gate_count(f->g) == n; }

/* 1 when the server side closed fd (EOF or reset), waiting up to ms. */
static int closed_by_gate(int fd, int ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    char b[256];
    if (poll(&p, 1, ms) != 1)
        return 0;
    ssize_t r = recv(fd, b, sizeof b, MSG_DONTWAIT);
    while (r > 0) /* an error reply first, then the end */
        r = recv(fd, b, sizeof b, 0);
    return r == 0 || (r < 0 && errno == ECONNRESET);
}

static void test_a_header_is_handed_on_only_once_it_is_whole(void **state)
{
    (void)state;
    struct fx *f = start(16, 16, 5000, 5000);
    int fd = client(f, 1);

    assert_int_equal(send(fd, "FLOOD/1 GE", 10, 0), 10);
    poll(NULL, 0, 100);
    assert_int_equal(n_ready(f), 0); /* no worker sees half a header */
    assert_int_equal(send(fd, "T id=1\n", 7, 0), 7);
    assert_true(wait_until(f, ready_is, 1, 2000));
    assert_memory_equal(f->ready[0]->buf, "FLOOD/1 GET id=1\n", 17);
    close(fd);
    stop(f);
}

static void test_a_cut_header_is_handed_on_with_eof(void **state)
{
    (void)state;
    struct fx *f = start(16, 16, 5000, 5000);
    int fd = client(f, 1);

    assert_int_equal(send(fd, "FLOOD/1 GE", 10, 0), 10);
    shutdown(fd, SHUT_WR); /* the worker answers "closed in the middle of a header" */
    assert_true(wait_until(f, ready_is, 1, 2000));
    assert_true(f->ready[0]->eof);
    close(fd);
    stop(f);
}

static void test_bytes_that_cannot_become_a_header_are_handed_on_at_once(void **state)
{
    (void)state;
    struct fx *f = start(16, 16, 5000, 5000);
    int fd = client(f, 1);

    assert_int_equal(send(fd, "hello", 5, 0), 5); /* no newline: a worker refuses it now */
    assert_true(wait_until(f, ready_is, 1, 2000));
    close(fd);
    stop(f);
}

static void test_silent_connection_closed_after_idle_ms(void **state)
{
    (void)state;
    struct fx *f = start(16, 16, 5000, 200);
    int fd = client(f, 1);

    assert_true(wait_until(f, open_is, 1, 2000));
    assert_true(closed_by_gate(fd, 2000));
    assert_true(wait_until(f, open_is, 0, 2000));
    assert_int_equal(f->stats.timeouts, 0); /* idle is not a timeout */
    close(fd);
    stop(f);
}

static void test_trickled_header_closed_after_header_ms(void **state)
{
    (void)state;
    struct fx *f = start(16, 16, 300, 10000);
    int fd = client(f, 1);
    int closed = 0;

    static const char slow[] = "FLOOD/1 GET name=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    for (int i = 0; i < 20 && !closed; i++) { /* a byte every 50 ms never completes in time */
        if (send(fd, slow + i, 1, MSG_NOSIGNAL) != 1)
            break;
        closed = closed_by_gate(fd, 50);
    }
    assert_true(closed || closed_by_gate(fd, 1000));
    assert_int_equal(f->stats.timeouts, 1);
    assert_int_equal(n_ready(f), 0);
    close(fd);
    stop(f);
}

static void test_per_address_limit_closes_the_longest_waiting_from_that_address(void **state)
{
    (void)state;
    struct fx *f = start(16, 2, 5000, 5000);
    int a1 = client(f, 1);
    assert_true(wait_until(f, open_is, 1, 2000));
    int a2 = client(f, 1);
    int b1 = client(f, 2);
    assert_true(wait_until(f, open_is, 3, 2000));
    int a3 = client(f, 1); /* over 2 from 127.0.0.1: a1 waited longest */

    assert_true(closed_by_gate(a1, 2000));
    assert_false(closed_by_gate(a2, 100));
    assert_false(closed_by_gate(b1, 100)); /* another address is not its victim */
    assert_int_equal(f->stats.limit_refused, 1);
    assert_int_equal(send(a3, "FLOOD/1 GET\n", 12, 0), 12); /* the newcomer is served */
    assert_true(wait_until(f, ready_is, 1, 2000));
    close(a1);
    close(a2);
    close(a3);
    close(b1);
    stop(f);
}

static void test_served_connections_are_never_victims(void **state)
{
    (void)state;
    struct fx *f = start(16, 2, 5000, 5000);
    int a1 = client(f, 1), a2 = client(f, 1);

    assert_int_equal(send(a1, "FLOOD/1 GET\n", 12, 0), 12);
    assert_int_equal(send(a2, "FLOOD/1 GET\n", 12, 0), 12);
    assert_true(wait_until(f, ready_is, 2, 2000)); /* both with "workers" now */
    int a3 = client(f, 1);

    assert_true(closed_by_gate(a3, 2000)); /* refused: no waiting one to close */
    assert_int_equal(f->stats.limit_refused, 1);
    assert_int_equal(gate_count(f->g), 2);
    close(a1);
    close(a2);
    close(a3);
    stop(f);
}

static void test_total_limit_and_parking(void **state)
{
    (void)state;
    struct fx *f = start(16, 64, 5000, 5000);
    int fds[17];

    for (int i = 0; i < 16; i++)
        fds[i] = client(f, 1 + i % 3);
    assert_true(wait_until(f, open_is, 16, 2000));
    fds[16] = client(f, 9); /* 17th: the longest waiting of all goes */
    assert_true(closed_by_gate(fds[0], 2000));
    assert_true(wait_until(f, open_is, 16, 2000));

    /* A served connection given back waits again and is handed on anew. */
    assert_int_equal(send(fds[16], "FLOOD/1 GET\n", 12, 0), 12);
    assert_true(wait_until(f, ready_is, 1, 2000));
    struct conn *c = f->ready[0];
    c->off = c->len; /* the "worker" consumed the message */
    pthread_mutex_lock(&f->lock);
    f->n_ready = 0;
    pthread_mutex_unlock(&f->lock);
    gate_park(f->g, c);
    assert_int_equal(send(fds[16], "FLOOD/1 FOUND\n", 14, 0), 14);
    assert_true(wait_until(f, ready_is, 1, 2000));
    assert_true(f->ready[0] == c);
    for (int i = 0; i < 17; i++)
        close(fds[i]);
    stop(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_header_is_handed_on_only_once_it_is_whole),
        cmocka_unit_test(test_a_cut_header_is_handed_on_with_eof),
        cmocka_unit_test(test_bytes_that_cannot_become_a_header_are_handed_on_at_once),
        cmocka_unit_test(test_silent_connection_closed_after_idle_ms),
        cmocka_unit_test(test_trickled_header_closed_after_header_ms),
        cmocka_unit_test(test_per_address_limit_closes_the_longest_waiting_from_that_address),
        cmocka_unit_test(test_served_connections_are_never_victims),
        cmocka_unit_test(test_total_limit_and_parking),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
