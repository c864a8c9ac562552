/* test_route.c - the flood's decisions without a process: spoofed links,
 * buckets per proven neighbour, ttl checks, dedupe that lets more ttl
 * through, and the reverse path over links. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "floodshare/qcache.h"
#include "floodshare/route.h"

#define QID "7f2a90c3d1e4b5a6"

static struct fs_addr addr(uint16_t port)
{
    struct fs_addr a;

    memset(&a, 0, sizeof a);
    snprintf(a.host, sizeof a.host, "127.0.0.1");
    a.port = port;
    return a;
}

struct fixture {
    struct qcache *qc;
    struct route *r;
};

/* Neighbours 1001 and 1002; 5 GETs a second, 3 deep; max_ttl 7. */
static int setup(void **state)
{
    static struct fixture fx;
    struct route_cfg c;

    memset(&c, 0, sizeof c);
    c.max_ttl = 7;
    c.query_rate = 5;
    c.query_burst = 3;
    c.n_neighbours = 2;
    c.neighbours[0] = addr(1001);
    c.neighbours[1] = addr(1002);
    fx.qc = qcache_new(64, 10000);
    fx.r = route_new(fx.qc);
    route_set_cfg(fx.r, &c);
    *state = &fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;

    route_free(fx->r);
    qcache_free(fx->qc);
    return 0;
}

static struct route_hop hop(uint32_t link, uint16_t port, int proven)
{
    struct route_hop h;

    memset(&h, 0, sizeof h);
    h.link = link;
    h.addr = addr(port);
    h.proven = proven;
    return h;
}

static struct msg get(const char *qid, uint16_t from, unsigned ttl, unsigned hops)
{
    struct msg m;

    memset(&m, 0, sizeof m);
    m.type = MSG_GET;
    snprintf(m.qid, sizeof m.qid, "%s", qid);
    m.from = addr(from);
    m.origin = addr(from);
    m.ttl = ttl;
    m.hops = hops;
    snprintf(m.name, sizeof m.name, "x.txt");
    return m;
}

static struct msg found(const char *qid, uint16_t from)
{
    struct msg m;

    memset(&m, 0, sizeof m);
    m.type = MSG_FOUND;
    snprintf(m.qid, sizeof m.qid, "%s", qid);
    m.from = addr(from);
    m.holder = addr(from);
    return m;
}

static void test_first_copy_is_handled(void **state)
{
    struct fixture *fx = *state;
    struct route_verdict v;
    struct route_hop h = hop(1, 1001, 1);
    struct msg m = get(QID, 1001, 3, 0);

    route_get(fx->r, &m, &h, 0, &v);
    assert_int_equal(v.action, ROUTE_HANDLE);
    assert_int_equal(v.ttl, 3);
}

static void test_from_that_is_not_the_link_is_spoofed(void **state)
{
    struct fixture *fx = *state;
    struct route_verdict v;
    struct route_hop h = hop(1, 1001, 1);
    struct msg m = get(QID, 1002, 3, 0); /* link 1 is 1001's, but claims 1002 */

    route_get(fx->r, &m, &h, 0, &v);
    assert_int_equal(v.action, ROUTE_DROP);
    assert_string_equal(v.reason, "spoofed");
    /* and nothing was recorded: the real 1002's copy is still new */
    struct route_hop h2 = hop(2, 1002, 1);
    route_get(fx->r, &m, &h2, 0, &v);
    assert_int_equal(v.action, ROUTE_HANDLE);
}

static void test_refuted_link_is_spoofed(void **state)
{
    struct fixture *fx = *state;
    struct route_verdict v;
    struct route_hop h = hop(1, 1001, 0);
    struct msg m = get(QID, 1001, 3, 0);

    h.refuted = 1;
    route_get(fx->r, &m, &h, 0, &v);
    assert_int_equal(v.action, ROUTE_DROP);
    assert_string_equal(v.reason, "spoofed");
}

/* The attack of issue 10: a third party claims neighbour 1001 over its own
 * (unproven) link and empties a bucket; 1001's proven link keeps its own. */
static void test_unproven_claim_cannot_empty_a_neighbours_bucket(void **state)
{
    struct fixture *fx = *state;
    struct route_verdict v;
    struct route_hop liar = hop(7, 1001, 0), real = hop(1, 1001, 1);
    char qid[17];
    int handled = 0;

    for (int i = 0; i < 100; i++) {
        snprintf(qid, sizeof qid, "%016x", i);
        struct msg m = get(qid, 1001, 3, 0);
        route_get(fx->r, &m, &liar, 0, &v);
        handled += v.action == ROUTE_HANDLE;
    }
    assert_int_equal(handled, 3); /* the shared bucket's burst */
    struct msg m = get("aaaaaaaaaaaaaaaa", 1001, 3, 0);
    route_get(fx->r, &m, &real, 0, &v);
    assert_int_equal(v.action, ROUTE_HANDLE);
}

static void test_bucket_refills_at_query_rate(void **state)
{
    struct fixture *fx = *state;
    struct route_verdict v;
    struct route_hop h = hop(1, 1001, 1);
    char qid[17];

    for (int i = 0; i < 3; i++) {
        snprintf(qid, sizeof qid, "%016x", i);
        struct msg m = get(qid, 1001, 3, 0);
        route_get(fx->r, &m, &h, 0, &v);
        assert_int_equal(v.action, ROUTE_HANDLE);
    }
    struct msg m = get("0000000000000099", 1001, 3, 0);
    route_get(fx->r, &m, &h, 0, &v);
    assert_string_equal(v.reason, "throttle");
    route_get(fx->r, &m, &h, 200, &v); /* 5/s: one token after 200 ms */
    assert_int_equal(v.action, ROUTE_HANDLE);
}

static void test_ttl0_and_hops_and_clamp(void **state)
{
    struct fixture *fx = *state;
    struct route_verdict v;
    struct route_hop h = hop(1, 1001, 1);
    struct msg m = get("0000000000000001", 1001, 0, 0);

    route_get(fx->r, &m, &h, 0, &v);
    assert_string_equal(v.reason, "ttl0");
    m = get("0000000000000002", 1001, 3, 255);
    route_get(fx->r, &m, &h, 0, &v);
    assert_string_equal(v.reason, "max_hop_count");
    m = get("0000000000000003", 1001, 200, 0);
    route_get(fx->r, &m, &h, 0, &v);
    assert_int_equal(v.action, ROUTE_HANDLE);
    assert_true(v.clamped);
    assert_int_equal(v.ttl, 7);
}

/* The long way round arrives first with less ttl; the short way's copy with
 * more ttl is forwarded again (not searched: FORWARD, not HANDLE); a third
 * copy with no more ttl than the best is a duplicate. */
static void test_duplicate_with_more_ttl_is_forwarded_once(void **state)
{
    struct fixture *fx = *state;
    struct route_verdict v;
    struct route_hop a = hop(1, 1001, 1), b = hop(2, 1002, 1);
    struct msg longway = get(QID, 1001, 1, 6), shortway = get(QID, 1002, 5, 2);

    route_get(fx->r, &longway, &a, 0, &v);
    assert_int_equal(v.action, ROUTE_HANDLE);
    route_get(fx->r, &shortway, &b, 1, &v);
    assert_int_equal(v.action, ROUTE_FORWARD);
    assert_int_equal(v.ttl, 5);
    route_get(fx->r, &shortway, &b, 2, &v);
    assert_int_equal(v.action, ROUTE_DROP);
    assert_string_equal(v.reason, "duplicate");
    struct msg same = get(QID, 1001, 5, 2);
    route_get(fx->r, &same, &a, 3, &v);
    assert_string_equal(v.reason, "duplicate");
}

/* A copy of our own query coming back is never forwarded again. */
static void test_own_query_coming_back_is_a_duplicate(void **state)
{
    struct fixture *fx = *state;
    struct route_verdict v;
    struct route_hop a = hop(1, 1001, 1);
    struct msg back = get(QID, 1001, 7, 1);

    route_start(fx->r, QID, 3, 0);
    route_get(fx->r, &back, &a, 0, &v);
    assert_string_equal(v.reason, "duplicate");
}

static void test_found_goes_back_over_the_link_its_get_came_on(void **state)
{
    struct fixture *fx = *state;
    struct route_verdict v;
    struct route_hop in = hop(1, 1001, 1), out = hop(2, 1002, 1), other = hop(3, 1002, 1);
    struct msg g = get(QID, 1001, 3, 0), f = found(QID, 1002);

    route_get(fx->r, &g, &in, 0, &v);
    route_sent(fx->r, QID, 2, 0);
    route_found(fx->r, &f, &other, 1, &v); /* 1002, but not the link the GET went out on */
    assert_string_equal(v.reason, "route_lost");
    route_found(fx->r, &f, &out, 1, &v);
    assert_int_equal(v.action, ROUTE_RELAY);
    assert_int_equal(v.back_link, 1);
    assert_int_equal(v.back.port, 1001);
    struct msg lie = found(QID, 1001); /* names someone else than its link */
    route_found(fx->r, &lie, &out, 1, &v);
    assert_string_equal(v.reason, "spoofed");
    struct msg unknown = found("0123456789abcdef", 1002);
    route_found(fx->r, &unknown, &out, 1, &v);
    assert_string_equal(v.reason, "no_route");
}

static void test_found_of_own_query_is_delivered(void **state)
{
    struct fixture *fx = *state;
    struct route_verdict v;
    struct route_hop out = hop(2, 1002, 1);
    struct msg f = found(QID, 1002);

    route_start(fx->r, QID, 3, 0);
    route_sent(fx->r, QID, 2, 0);
    route_found(fx->r, &f, &out, 1, &v);
    assert_int_equal(v.action, ROUTE_DELIVER);
}

/* Damping: a copy forwarded again for its higher ttl goes neither back to
 * the link it came on nor to a neighbour that already sent us a copy with
 * ttl - 1 or more (it handled the query with at least that ttl, so ours
 * would be a duplicate there); it does go to a neighbour that sent less,
 * or nothing. */
static void test_copy_forwarded_again_skips_neighbours_that_had_as_much_ttl(void **state)
{
    struct fixture *fx = *state;
    struct route_verdict v;
    struct route_hop a = hop(1, 1001, 1), b = hop(2, 1002, 1), c = hop(3, 1003, 1);
    struct msg longway = get(QID, 1001, 3, 4), shortway = get(QID, 1002, 6, 1);
    struct msg low = get(QID, 1003, 3, 4);
    struct fs_addr n1 = addr(1001), n2 = addr(1002), n3 = addr(1003), n4 = addr(1004);

    route_get(fx->r, &longway, &a, 0, &v);
    assert_int_equal(v.action, ROUTE_HANDLE);
    /* the first copy goes on with ttl 2 to all but 1001, which sent ttl 3 */
    assert_false(route_wanted(fx->r, QID, &n1, 2, 0));
    assert_true(route_wanted(fx->r, QID, &n2, 2, 0));
    route_get(fx->r, &low, &c, 1, &v); /* 1003 (not configured: only a hop) sends ttl 3 */
    assert_string_equal(v.reason, "duplicate");
    route_get(fx->r, &shortway, &b, 2, &v);
    assert_int_equal(v.action, ROUTE_FORWARD);
    /* forwarded again with ttl 5 */
    assert_false(route_wanted(fx->r, QID, &n2, 5, 2)); /* where it came from (sent 6) */
    assert_true(route_wanted(fx->r, QID, &n1, 5, 2));  /* sent 3: handled 4 at least */
    assert_true(route_wanted(fx->r, QID, &n3, 5, 2));  /* the same, as a duplicate */
    assert_true(route_wanted(fx->r, QID, &n4, 5, 2));  /* sent nothing */
    /* the boundary: a neighbour that sent h handled h + 1 */
    assert_false(route_wanted(fx->r, QID, &n3, 4, 2));
    assert_true(route_wanted(fx->r, QID, &n3, 5, 2));
    /* 1001 sends again, ttl 4: a duplicate, and remembered all the same */
    struct msg again = get(QID, 1001, 4, 3);
    route_get(fx->r, &again, &a, 3, &v);
    assert_string_equal(v.reason, "duplicate");
    assert_false(route_wanted(fx->r, QID, &n1, 5, 3));
    assert_true(route_wanted(fx->r, QID, &n1, 6, 3));
}

/* Only a proven link's copy counts: a stranger claiming neighbour 1002
 * cannot keep the real 1002 from getting the query. */
static void test_unproven_copy_does_not_spare_a_neighbour(void **state)
{
    struct fixture *fx = *state;
    struct route_verdict v;
    struct route_hop a = hop(1, 1001, 1), liar = hop(9, 1002, 0);
    struct msg first = get(QID, 1001, 3, 0), claim = get(QID, 1002, 7, 0);
    struct fs_addr n2 = addr(1002);

    route_get(fx->r, &first, &a, 0, &v);
    assert_int_equal(v.action, ROUTE_HANDLE);
    route_get(fx->r, &claim, &liar, 1, &v);
    assert_int_equal(v.action, ROUTE_FORWARD);
    assert_true(route_wanted(fx->r, QID, &n2, 6, 1));
    assert_true(route_wanted(fx->r, QID, &n2, 2, 1));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_first_copy_is_handled, setup, teardown),
        cmocka_unit_test_setup_teardown(test_from_that_is_not_the_link_is_spoofed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuted_link_is_spoofed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unproven_claim_cannot_empty_a_neighbours_bucket, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_bucket_refills_at_query_rate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ttl0_and_hops_and_clamp, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_with_more_ttl_is_forwarded_once, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_copy_forwarded_again_skips_neighbours_that_had_as_much_ttl,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_unproven_copy_does_not_spare_a_neighbour, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_own_query_coming_back_is_a_duplicate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_found_goes_back_over_the_link_its_get_came_on, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_found_of_own_query_is_delivered, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
