/* test_qcache.c - the seen-query table: dedupe, reverse routes, expiry, bounds. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "floodshare/qcache.h"

#define QID_A "7f2a90c3d1e4b5a6"
#define QID_B "0000000000000001"

/* A distinct 16-hex-digit id for every n. */
static void qid_of(uint64_t n, char out[17])
{
    snprintf(out, 17, "%016llx", (unsigned long long)n);
}

static struct fs_addr addr(const char *host, uint16_t port)
{
    struct fs_addr a;

    memset(&a, 0, sizeof a);
    snprintf(a.host, sizeof a.host, "%s", host);
    a.port = port;
    return a;
}

static void test_new_refuses_zero_capacity(void **state)
{
    (void)state;
    assert_null(qcache_new(0, 1000));
}

static void test_insert_of_new_id_returns_1(void **state)
{
    struct qcache *qc = qcache_new(16, 1000);
    struct fs_addr prev = addr("127.0.0.1", 10812);

    (void)state;
    assert_non_null(qc);
    assert_int_equal(qcache_insert(qc, QID_A, &prev, 0), 1);
    assert_int_equal(qcache_count(qc, 0), 1);
    qcache_free(qc);
}

static void test_insert_of_same_id_again_returns_0(void **state)
{
    struct qcache *qc = qcache_new(16, 1000);
    struct fs_addr first = addr("127.0.0.1", 10812);
    struct fs_addr second = addr("127.0.0.1", 10813);
    struct fs_addr got;
    int local = -1;

    (void)state;
    assert_int_equal(qcache_insert(qc, QID_A, &first, 0), 1);
    assert_int_equal(qcache_insert(qc, QID_A, &second, 10), 0);
    assert_int_equal(qcache_insert(qc, QID_A, NULL, 20), 0);
    assert_int_equal(qcache_count(qc, 20), 1);
    /* A duplicate changes nothing: the route is still the first hop. */
    assert_int_equal(qcache_route(qc, QID_A, 20, &got, &local), FS_OK);
    assert_int_equal(local, 0);
    assert_true(addr_equal(&got, &first));
    qcache_free(qc);
}

static void test_route_of_forwarded_id_returns_prev_hop(void **state)
{
    struct qcache *qc = qcache_new(16, 1000);
    struct fs_addr prev = addr("peer-2.example", 10812);
    struct fs_addr got;
    int local = -1;

    (void)state;
    qcache_insert(qc, QID_A, &prev, 100);
    assert_int_equal(qcache_route(qc, QID_A, 200, &got, &local), FS_OK);
    assert_int_equal(local, 0);
    assert_string_equal(got.host, "peer-2.example");
    assert_int_equal(got.port, 10812);
    qcache_free(qc);
}

static void test_route_of_local_id_reports_local(void **state)
{
    struct qcache *qc = qcache_new(16, 1000);
    struct fs_addr got;
    int local = -1;

    (void)state;
    assert_int_equal(qcache_insert(qc, QID_A, NULL, 100), 1);
    assert_int_equal(qcache_route(qc, QID_A, 100, &got, &local), FS_OK);
    assert_int_equal(local, 1);
    qcache_free(qc);
}

static void test_route_of_unknown_id_is_not_found(void **state)
{
    struct qcache *qc = qcache_new(16, 1000);
    struct fs_addr prev = addr("127.0.0.1", 1);
    struct fs_addr got;
    int local = -1;

    (void)state;
    assert_int_equal(qcache_route(qc, QID_B, 0, &got, &local), FS_ENOTFOUND);
    qcache_insert(qc, QID_A, &prev, 0);
    assert_int_equal(qcache_route(qc, QID_B, 0, &got, &local), FS_ENOTFOUND);
    assert_int_equal(local, 0);
    qcache_free(qc);
}

static void test_id_is_new_again_after_ttl(void **state)
{
    struct qcache *qc = qcache_new(16, 500);
    struct fs_addr prev = addr("127.0.0.1", 1);
    struct fs_addr got;
    int local;

    (void)state;
    assert_int_equal(qcache_insert(qc, QID_A, &prev, 1000), 1);
    assert_int_equal(qcache_insert(qc, QID_A, &prev, 1499), 0);
    assert_int_equal(qcache_route(qc, QID_A, 1499, &got, &local), FS_OK);
    assert_int_equal(qcache_route(qc, QID_A, 1500, &got, &local), FS_ENOTFOUND);
    assert_int_equal(qcache_count(qc, 1500), 0);
    assert_int_equal(qcache_insert(qc, QID_A, &prev, 1500), 1);
    qcache_free(qc);
}

static void test_duplicate_does_not_extend_life(void **state)
{
    struct qcache *qc = qcache_new(16, 500);
    struct fs_addr got;
    int local;

    (void)state;
    qcache_insert(qc, QID_A, NULL, 0);
    assert_int_equal(qcache_insert(qc, QID_A, NULL, 400), 0);
    assert_int_equal(qcache_route(qc, QID_A, 500, &got, &local), FS_ENOTFOUND);
    qcache_free(qc);
}

static void test_full_table_evicts_oldest(void **state)
{
    struct qcache *qc = qcache_new(4, 1000000);
    struct fs_addr got;
    int local;
    char qid[17];

    (void)state;
    for (uint64_t i = 0; i < 5; i++) {
        struct fs_addr prev = addr("127.0.0.1", (uint16_t)(100 + i));
        qid_of(i, qid);
        assert_int_equal(qcache_insert(qc, qid, &prev, i), 1);
    }
    assert_int_equal(qcache_count(qc, 5), 4);
    qid_of(0, qid);
    assert_int_equal(qcache_route(qc, qid, 5, &got, &local), FS_ENOTFOUND);
    qid_of(4, qid);
    assert_int_equal(qcache_route(qc, qid, 5, &got, &local), FS_OK);
    assert_int_equal(got.port, 104);
    qid_of(1, qid);
    assert_int_equal(qcache_route(qc, qid, 5, &got, &local), FS_OK);
    assert_int_equal(got.port, 101);
    /* Evicted means forgotten: the oldest id counts as new again. */
    qid_of(0, qid);
    assert_int_equal(qcache_insert(qc, qid, NULL, 6), 1);
    qcache_free(qc);
}

static void test_count_never_exceeds_capacity(void **state)
{
    struct qcache *qc = qcache_new(7, 1000000);
    char qid[17];

    (void)state;
    for (uint64_t i = 0; i < 1000; i++) {
        qid_of(i * 7919, qid);
        qcache_insert(qc, qid, NULL, i);
        assert_true(qcache_count(qc, i) <= 7);
    }
    assert_int_equal(qcache_count(qc, 1000), 7);
    qcache_free(qc);
}

/* An entry handed an earlier now_ms (a thread that read the clock first but
 * took the lock second) must not outlive an expired entry ahead of it
 * unnoticed, nor expire before it: it expires with it. */
static void test_earlier_now_expires_with_entry_ahead(void **state)
{
    struct qcache *qc = qcache_new(16, 10);
    struct fs_addr got;
    int local;

    (void)state;
    qcache_insert(qc, QID_A, NULL, 100);
    qcache_insert(qc, QID_B, NULL, 99);
    assert_int_equal(qcache_route(qc, QID_B, 109, &got, &local), FS_OK);
    assert_int_equal(qcache_route(qc, QID_A, 110, &got, &local), FS_ENOTFOUND);
    assert_int_equal(qcache_route(qc, QID_B, 110, &got, &local), FS_ENOTFOUND);
    qcache_free(qc);
}

/* Many inserts into a tiny index, with both expiry and eviction removing
 * entries all the time: deletions must never leave the index unable to find
 * a live id (the failure mode of tombstones, or of a broken backward shift). */
static void test_churn_keeps_live_ids_findable(void **state)
{
    enum { CAP = 8, TTL = 6, N = 100000 };
    struct qcache *qc = qcache_new(CAP, TTL);
    char qid[17];

    (void)state;
    for (uint64_t i = 0; i < N; i++) {
        uint64_t now = i / 2;
        struct fs_addr prev = addr("127.0.0.1", (uint16_t)(1 + i % 60000));
        qid_of(i * 0x9e3779b97f4a7c15ull, qid);
        assert_int_equal(qcache_insert(qc, qid, &prev, now), 1);
        /* The last CAP ids span at most 4 ms < TTL: all must still be live. */
        for (uint64_t back = 0; back < CAP && back <= i; back++) {
            struct fs_addr got;
            int local;
            qid_of((i - back) * 0x9e3779b97f4a7c15ull, qid);
            if (qcache_route(qc, qid, now, &got, &local) != FS_OK)
                fail_msg("insert %llu: id %llu back is lost", (unsigned long long)i,
                         (unsigned long long)back);
            assert_int_equal(got.port, 1 + (i - back) % 60000);
        }
        assert_true(qcache_count(qc, now) <= CAP);
    }
    qcache_free(qc);
}

enum { NTHREADS = 4, PER_THREAD = 3000, SHARED = 3000 };

struct worker {
    pthread_t tid;
    struct qcache *qc;
    unsigned index;
    int shared_new[SHARED]; /* 1 where this thread's insert was the new one */
    int own_new;
};

static void *insert_worker(void *arg)
{
    struct worker *w = arg;
    struct fs_addr prev = addr("10.0.0.1", (uint16_t)(w->index + 1));
    char qid[17];

    for (unsigned i = 0; i < PER_THREAD || i < SHARED; i++) {
        if (i < SHARED) {
            /* Each thread walks the shared ids from a different start, so
             * they really race for the same ids. */
            unsigned s = (i + w->index * (SHARED / NTHREADS)) % SHARED;
            qid_of(s, qid);
            w->shared_new[s] = qcache_insert(w->qc, qid, &prev, i);
        }
        if (i < PER_THREAD) {
            qid_of(((uint64_t)(w->index + 1) << 32) | i, qid);
            w->own_new += qcache_insert(w->qc, qid, &prev, i);
        }
    }
    return NULL;
}

static void test_threads_see_each_shared_id_new_exactly_once(void **state)
{
    static struct worker workers[NTHREADS];
    struct qcache *qc = qcache_new(NTHREADS * PER_THREAD + SHARED, 1000000);

    (void)state;
    assert_non_null(qc);
    for (unsigned t = 0; t < NTHREADS; t++) {
        memset(&workers[t], 0, sizeof workers[t]);
        workers[t].qc = qc;
        workers[t].index = t;
        assert_int_equal(pthread_create(&workers[t].tid, NULL, insert_worker, &workers[t]), 0);
    }
    for (unsigned t = 0; t < NTHREADS; t++)
        assert_int_equal(pthread_join(workers[t].tid, NULL), 0);
    for (unsigned s = 0; s < SHARED; s++) {
        int news = 0;
        for (unsigned t = 0; t < NTHREADS; t++)
            news += workers[t].shared_new[s];
        if (news != 1)
            fail_msg("shared id %u was new %d times", s, news);
    }
    for (unsigned t = 0; t < NTHREADS; t++)
        assert_int_equal(workers[t].own_new, PER_THREAD);
    assert_int_equal(qcache_count(qc, SHARED), NTHREADS * PER_THREAD + SHARED);
    qcache_free(qc);
}

static void test_sent_to_answers_who_may_reply(void **state)
{
    (void)state;
    struct qcache *qc = qcache_new(8, 1000);
    struct fs_addr prev = addr("127.0.0.1", 10811);
    struct fs_addr n2 = addr("127.0.0.1", 10812), n3 = addr("127.0.0.1", 10813);
    struct fs_addr named = addr("localhost", 10814);

    assert_int_equal(qcache_insert(qc, "00000000000000aa", &prev, 0), 1);
    assert_false(qcache_was_sent_to(qc, "00000000000000aa", &n2, 1)); /* sent nowhere yet */
    qcache_sent_to(qc, "00000000000000aa", &n2, 1);
    qcache_sent_to(qc, "00000000000000aa", &named, 1);
    qcache_sent_to(qc, "00000000000000bb", &n3, 1); /* unknown id: nothing recorded */
    assert_true(qcache_was_sent_to(qc, "00000000000000aa", &n2, 2));
    assert_false(qcache_was_sent_to(qc, "00000000000000aa", &n3, 2));
    assert_false(qcache_was_sent_to(qc, "00000000000000aa", &prev, 2)); /* where it came from */
    assert_false(qcache_was_sent_to(qc, "00000000000000bb", &n3, 2));
    struct fs_addr numeric = addr("127.0.0.1", 10814); /* "localhost" is not resolved */
    assert_true(qcache_was_sent_to(qc, "00000000000000aa", &numeric, 2));
    struct fs_addr other = addr("127.0.0.9", 10812); /* numeric hosts must be equal */
    assert_false(qcache_was_sent_to(qc, "00000000000000aa", &other, 2));
    assert_false(qcache_was_sent_to(qc, "00000000000000aa", &n2, 1000)); /* expired */
    qcache_free(qc);
}

/* IPv6 hosts are numeric too (addr.h keeps them canonical): a neighbour on
 * another v6 address with the same port is not the one the query went to. */
static void test_sent_to_v6_hosts_must_be_equal(void **state)
{
    (void)state;
    struct qcache *qc = qcache_new(8, 1000);
    struct fs_addr prev = addr("::1", 10811), n2 = addr("::1", 10812);
    struct fs_addr other = addr("2001:db8::1", 10812), v4 = addr("127.0.0.1", 10812);

    assert_int_equal(qcache_insert(qc, "00000000000000aa", &prev, 0), 1);
    qcache_sent_to(qc, "00000000000000aa", &n2, 1);
    assert_true(qcache_was_sent_to(qc, "00000000000000aa", &n2, 2));
    assert_false(qcache_was_sent_to(qc, "00000000000000aa", &other, 2));
    assert_false(qcache_was_sent_to(qc, "00000000000000aa", &v4, 2));
    qcache_free(qc);
}

/* The highest ttl each neighbour sent a copy with: the flood's damping of
 * copies forwarded again asks it (route_wanted). */
static void test_heard_keeps_the_highest_ttl_per_neighbour(void **state)
{
    struct qcache *qc = qcache_new(8, 1000);
    struct fs_addr n2 = addr("127.0.0.1", 10812), n3 = addr("127.0.0.1", 10813);
    struct fs_addr elsewhere = addr("127.0.0.9", 10812);
    unsigned ttl = 99;

    (void)state;
    qcache_heard(qc, QID_A, &n2, 4, 0); /* unknown id: nothing recorded */
    assert_int_equal(qcache_see(qc, QID_A, &n2, 1, 3, 0), QCACHE_NEW);
    assert_false(qcache_heard_ttl(qc, QID_A, &n2, 0, &ttl));
    assert_int_equal(ttl, 0);
    qcache_heard(qc, QID_A, &n2, 3, 0);
    qcache_heard(qc, QID_A, &n2, 2, 1); /* a lower copy later: the highest stays */
    assert_true(qcache_heard_ttl(qc, QID_A, &n2, 1, &ttl));
    assert_int_equal(ttl, 3);
    qcache_heard(qc, QID_A, &n2, 5, 2);
    assert_true(qcache_heard_ttl(qc, QID_A, &n2, 2, &ttl));
    assert_int_equal(ttl, 5);
    qcache_heard(qc, QID_A, &n3, 0, 2); /* even ttl 0 says it had the query */
    assert_true(qcache_heard_ttl(qc, QID_A, &n3, 2, &ttl));
    assert_int_equal(ttl, 0);
    assert_false(qcache_heard_ttl(qc, QID_A, &elsewhere, 2, &ttl)); /* same port, other host */
    assert_false(qcache_heard_ttl(qc, QID_B, &n2, 2, &ttl));
    assert_false(qcache_heard_ttl(qc, QID_A, &n2, 1000, &ttl)); /* expired */
    qcache_free(qc);
}

/* Per query, at most QCACHE_MAX_HEARD neighbours and QCACHE_MAX_SENT links
 * are remembered, each bound on its own: many neighbours heard never cost
 * a link its FOUND. */
static void test_hops_of_a_query_are_bounded_each_on_its_own(void **state)
{
    struct qcache *qc = qcache_new(8, 1000);
    struct fs_addr prev = addr("127.0.0.1", 10000);
    unsigned ttl;

    (void)state;
    assert_int_equal(qcache_see(qc, QID_A, &prev, 1, 3, 0), QCACHE_NEW);
    for (uint16_t i = 0; i < 2 * QCACHE_MAX_HEARD; i++) {
        struct fs_addr n = addr("127.0.0.1", (uint16_t)(20000 + i));
        qcache_heard(qc, QID_A, &n, 2, 0);
    }
    for (uint32_t link = 1; link <= 2 * QCACHE_MAX_SENT; link++)
        qcache_sent_link(qc, QID_A, link, 0);
    struct fs_addr last = addr("127.0.0.1", 20000 + QCACHE_MAX_HEARD - 1);
    struct fs_addr past = addr("127.0.0.1", 20000 + QCACHE_MAX_HEARD);
    assert_true(qcache_heard_ttl(qc, QID_A, &last, 0, &ttl));
    assert_false(qcache_heard_ttl(qc, QID_A, &past, 0, &ttl));
    assert_true(qcache_was_sent_link(qc, QID_A, QCACHE_MAX_SENT, 0));
    assert_false(qcache_was_sent_link(qc, QID_A, QCACHE_MAX_SENT + 1, 0));
    /* a link sent over again is kept once, so it takes no second place */
    assert_int_equal(qcache_see(qc, QID_B, &prev, 1, 3, 0), QCACHE_NEW);
    for (int i = 0; i < 3 * QCACHE_MAX_SENT; i++)
        qcache_sent_link(qc, QID_B, 7, 0);
    qcache_sent_link(qc, QID_B, 8, 0);
    assert_true(qcache_was_sent_link(qc, QID_B, 8, 0));
    qcache_free(qc);
}

/* An entry pushed out, by age or by a full table, forgets its hops: the id
 * seen again starts with none. */
static void test_an_id_seen_again_after_eviction_has_no_hops(void **state)
{
    struct qcache *qc = qcache_new(2, 1000);
    struct fs_addr n2 = addr("127.0.0.1", 10812);
    unsigned ttl;

    (void)state;
    assert_int_equal(qcache_see(qc, QID_A, &n2, 1, 3, 0), QCACHE_NEW);
    qcache_heard(qc, QID_A, &n2, 3, 0);
    qcache_sent_link(qc, QID_A, 5, 0);
    qcache_insert(qc, "00000000000000b1", NULL, 1);
    qcache_insert(qc, "00000000000000b2", NULL, 2); /* full: QID_A goes */
    assert_int_equal(qcache_see(qc, QID_A, &n2, 1, 3, 3), QCACHE_NEW);
    assert_false(qcache_heard_ttl(qc, QID_A, &n2, 3, &ttl));
    assert_false(qcache_was_sent_link(qc, QID_A, 5, 3));
    qcache_heard(qc, QID_A, &n2, 1, 3);
    assert_true(qcache_heard_ttl(qc, QID_A, &n2, 3, &ttl));
    assert_int_equal(ttl, 1);
    qcache_free(qc); /* frees the live entries' hops (ASan's leak check) */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_refuses_zero_capacity),
        cmocka_unit_test(test_insert_of_new_id_returns_1),
        cmocka_unit_test(test_insert_of_same_id_again_returns_0),
        cmocka_unit_test(test_route_of_forwarded_id_returns_prev_hop),
        cmocka_unit_test(test_route_of_local_id_reports_local),
        cmocka_unit_test(test_route_of_unknown_id_is_not_found),
        cmocka_unit_test(test_id_is_new_again_after_ttl),
        cmocka_unit_test(test_duplicate_does_not_extend_life),
        cmocka_unit_test(test_full_table_evicts_oldest),
        cmocka_unit_test(test_count_never_exceeds_capacity),
        cmocka_unit_test(test_earlier_now_expires_with_entry_ahead),
        cmocka_unit_test(test_churn_keeps_live_ids_findable),
        cmocka_unit_test(test_sent_to_answers_who_may_reply),
        cmocka_unit_test(test_sent_to_v6_hosts_must_be_equal),
        cmocka_unit_test(test_heard_keeps_the_highest_ttl_per_neighbour),
        cmocka_unit_test(test_hops_of_a_query_are_bounded_each_on_its_own),
        cmocka_unit_test(test_an_id_seen_again_after_eviction_has_no_hops),
        cmocka_unit_test(test_threads_see_each_shared_id_new_exactly_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
