/* test_rate.c - the token buckets of upload_rate and download_rate (rate.h):
 * the arithmetic on a fake clock, and rate strings. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "floodshare/rate.h"

#define MS 1000000ull
#define S 1000000000ull
#define MIB (1024ull * 1024)

static void test_rate_unit_is_small_at_low_rates_and_bounded(void **state)
{
    (void)state;
    assert_true(rate_unit(0) == SIZE_MAX);
    assert_int_equal(rate_unit(1024), RATE_UNIT_MIN);
    assert_int_equal(rate_unit(MIB), 64 * 1024); /* 1/16 s */
    assert_true(rate_unit(MIB) <= 64 * 1024);
    assert_int_equal(rate_unit(40000000), RATE_UNIT_MAX);
    assert_int_equal(rate_burst(0), 0);
    assert_int_equal(rate_burst(MIB), 64 * 1024);
    assert_int_equal(rate_burst(40000000), 40000000 / 16); /* 1/16 s beyond the unit */
}

/* A taker within the burst goes at once; the next one waits exactly for
 * the tokens it lacks. */
static void test_rate_bucket_waits_for_missing_tokens(void **state)
{
    struct rate_bucket b;

    (void)state;
    rate_bucket_init(&b, MIB, 0);
    double t1 = rate_bucket_reserve(&b, 64 * 1024, 0);
    assert_int_equal(rate_bucket_wait_ns(&b, t1, 0), 0);
    double t2 = rate_bucket_reserve(&b, 64 * 1024, 0);
    uint64_t w = rate_bucket_wait_ns(&b, t2, 0);
    assert_true(w >= 62 * MS + 400000 && w <= 62 * MS + 600000); /* 62.5 ms */
    assert_true(rate_bucket_wait_ns(&b, t2, 30 * MS) > 32 * MS); /* 32.5 ms still to go */
    assert_int_equal(rate_bucket_wait_ns(&b, t2, 63 * MS), 0);
}

/* Takers that go as soon as their ticket is due move the rate over 10 s,
 * plus at most one burst: well inside the 5% the limit promises. Three
 * takers in turn share it. */
static void test_rate_bucket_holds_the_rate_over_ten_seconds(void **state)
{
    struct rate_bucket b;
    uint64_t rate = 4 * MIB, moved = 0;
    uint64_t now[3] = {0, 0, 0}, by[3] = {0, 0, 0};
    size_t unit = rate_unit(rate);

    (void)state;
    rate_bucket_init(&b, rate, 0);
    for (;;) {
        int k = 0; /* the taker whose clock is earliest asks next */
        for (int i = 1; i < 3; i++)
            if (now[i] < now[k])
                k = i;
        if (now[k] >= 10 * S)
            break;
        double t = rate_bucket_reserve(&b, unit, now[k]);
        now[k] += rate_bucket_wait_ns(&b, t, now[k]);
        if (now[k] > 10 * S)
            break;
        moved += unit;
        by[k] += unit;
    }
    assert_true(moved <= 10 * rate + rate_burst(rate));
    assert_true(moved >= 10 * rate - unit);
    for (int i = 0; i < 3; i++) /* each about a third */
        assert_true(by[i] > moved / 3 - 2 * unit && by[i] < moved / 3 + 2 * unit);
}

/* However long nobody takes, at most the burst goes out at once. */
static void test_rate_bucket_bounds_the_burst_after_idling(void **state)
{
    struct rate_bucket b;
    uint64_t rate = MIB;

    (void)state;
    rate_bucket_init(&b, rate, 0);
    uint64_t t0 = 3600 * S;
    double t = rate_bucket_reserve(&b, rate_burst(rate), t0);
    assert_int_equal(rate_bucket_wait_ns(&b, t, t0), 0);
    t = rate_bucket_reserve(&b, 1024, t0);
    assert_true(rate_bucket_wait_ns(&b, t, t0) > 0);
}

/* A taker that gives its tokens back moves every ticket behind it ahead. */
static void test_rate_bucket_refund_moves_the_waiters_ahead(void **state)
{
    struct rate_bucket b;

    (void)state;
    rate_bucket_init(&b, MIB, 0);
    rate_bucket_reserve(&b, 64 * 1024, 0);           /* the burst */
    rate_bucket_reserve(&b, 512 * 1024, 0);          /* a waiter that will be cut */
    double t3 = rate_bucket_reserve(&b, 64 * 1024, 0); /* the one behind it */
    uint64_t before = rate_bucket_wait_ns(&b, t3, 0);
    assert_true(before > 560 * MS && before < 570 * MS); /* 576 KiB at 1 MiB/s: 562.5 ms */
    rate_bucket_refund(&b, 512 * 1024, 0);
    uint64_t after = rate_bucket_wait_ns(&b, t3, 0);
    assert_true(after > 62 * MS && after < 63 * MS);
    /* a refund never fills the bucket past its burst */
    rate_bucket_refund(&b, 100 * MIB, 0);
    assert_true(b.level <= b.burst);
}

/* A rate changed while takers wait: what they are owed is paid at the new
 * rate (twice as fast: half the wait). */
static void test_rate_bucket_rate_changes_live(void **state)
{
    struct rate_bucket b;

    (void)state;
    rate_bucket_init(&b, MIB, 0);
    rate_bucket_reserve(&b, 64 * 1024, 0);
    double t = rate_bucket_reserve(&b, MIB, 0);
    uint64_t slow = rate_bucket_wait_ns(&b, t, 0);
    assert_true(slow > 999 * MS && slow < 1001 * MS);
    rate_bucket_set(&b, 2 * MIB, 0);
    uint64_t fast = rate_bucket_wait_ns(&b, t, 0);
    assert_true(fast > 499 * MS && fast < 501 * MS);
    rate_bucket_set(&b, MIB / 2, 250 * MS); /* 512 KiB paid, 512 KiB left at 512 KiB/s */
    uint64_t w = rate_bucket_wait_ns(&b, t, 250 * MS);
    assert_true(w > 999 * MS && w < 1001 * MS);
}

/* 0 is no limit: every ticket is due at once, whatever was asked; a limit
 * set afterwards starts with a full bucket, not a debt. */
static void test_rate_bucket_zero_is_unlimited(void **state)
{
    struct rate_bucket b;

    (void)state;
    rate_bucket_init(&b, 0, 0);
    for (int i = 0; i < 100; i++)
        assert_int_equal(rate_bucket_wait_ns(&b, rate_bucket_reserve(&b, 1024 * MIB, 0), 0), 0);
    rate_bucket_init(&b, MIB, 0);
    double t = rate_bucket_reserve(&b, 10 * MIB, 0);
    assert_true(rate_bucket_wait_ns(&b, t, 0) > 0);
    rate_bucket_set(&b, 0, 0);
    assert_int_equal(rate_bucket_wait_ns(&b, t, 0), 0); /* lifting the limit frees waiters */
    rate_bucket_set(&b, MIB, 1 * MS);
    t = rate_bucket_reserve(&b, 64 * 1024, 1 * MS);
    assert_int_equal(rate_bucket_wait_ns(&b, t, 1 * MS), 0);
}

static fs_status parse(const char *s, uint64_t *v, const char **why)
{
    return rate_parse(s, strlen(s), v, why);
}

static void test_rate_parse_accepts_numbers_and_suffixes(void **state)
{
    uint64_t v;
    const char *why;

    (void)state;
    assert_int_equal(parse("0", &v, &why), FS_OK);
    assert_int_equal(v, 0);
    assert_int_equal(parse("4194304", &v, &why), FS_OK);
    assert_int_equal(v, 4 * MIB);
    assert_int_equal(parse("4M", &v, &why), FS_OK);
    assert_int_equal(v, 4 * MIB);
    assert_int_equal(parse("40m", &v, &why), FS_OK);
    assert_int_equal(v, 40 * MIB);
    assert_int_equal(parse("512K", &v, &why), FS_OK);
    assert_int_equal(v, 512 * 1024);
    assert_int_equal(parse("1k", &v, &why), FS_OK);
    assert_int_equal(v, RATE_MIN);
    assert_int_equal(parse("64G", &v, &why), FS_OK);
    assert_int_equal(v, RATE_MAX);
    assert_int_equal(parse("0K", &v, &why), FS_OK);
    assert_int_equal(v, 0);
    /* only the n bytes given are read */
    assert_int_equal(rate_parse("8Mxyz", 2, &v, &why), FS_OK);
    assert_int_equal(v, 8 * MIB);
}

static void test_rate_parse_refuses_bad_rates_and_says_why(void **state)
{
    static const char *const bad[] = {
        "", "K", "-1", "+4M", " 4M", "4 M", "4M ", "4MB", "4T", "4.5M", "0x10", "1023",
        "65G", "68719476737", "99999999999999999999999999999", "4MM",
    };
    uint64_t v = 7;
    const char *why;

    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        why = NULL;
        assert_int_equal(parse(bad[i], &v, &why), FS_EINVAL);
        assert_non_null(why);
        assert_int_equal(v, 0);
    }
    parse("4T", &v, &why);
    assert_non_null(strstr(why, "suffix"));
    parse("65G", &v, &why);
    assert_non_null(strstr(why, "out of range"));
    parse("4MB", &v, &why);
    assert_non_null(strstr(why, "after its suffix"));
}

/* --- the bucket for threads --- */

/* A taker that would not be due in time gives its tokens back: the next
 * one is not queued behind them. */
static void test_rate_take_gives_back_on_timeout(void **state)
{
    struct rate *r = rate_new(MIB);

    (void)state;
    assert_non_null(r);
    assert_int_equal(rate_take(r, 64 * 1024, -1, NULL), FS_OK);
    assert_int_equal(rate_take(r, 1024 * MIB, 10, NULL), FS_ETIMEDOUT);
    /* due in ~62 ms; it would be ~17 minutes had the timed-out take kept its place */
    assert_int_equal(rate_take(r, 64 * 1024, 5000, NULL), FS_OK);
    rate_free(r);
}

static void *waiter(void *arg)
{
    static fs_status st;

    st = rate_take(arg, 1024 * MIB, -1, NULL);
    return &st;
}

/* rate_close() wakes a sleeping waiter (and refuses later takers, even at
 * no limit): a stopping peer is not held by its own limit. */
static void test_rate_close_cuts_waiters(void **state)
{
    struct rate *r = rate_new(1024);
    pthread_t t;
    void *ret;

    (void)state;
    assert_non_null(r);
    assert_int_equal(rate_take(r, 1024, -1, NULL), FS_OK);
    assert_int_equal(pthread_create(&t, NULL, waiter, r), 0);
    rate_close(r);
    assert_int_equal(pthread_join(t, &ret), 0);
    assert_int_equal(*(fs_status *)ret, FS_ECANCELED);
    assert_int_equal(rate_take(r, 1, -1, NULL), FS_ECANCELED);
    rate_set(r, 0);
    assert_int_equal(rate_take(r, 1, -1, NULL), FS_ECANCELED);
    rate_free(r);
}

/* Lifting the limit live releases a waiter at once. */
static void test_rate_set_releases_waiters(void **state)
{
    struct rate *r = rate_new(1024);
    pthread_t t;
    void *ret;

    (void)state;
    assert_non_null(r);
    assert_int_equal(rate_take(r, 1024, -1, NULL), FS_OK);
    assert_int_equal(pthread_create(&t, NULL, waiter, r), 0);
    rate_set(r, 0);
    assert_int_equal(pthread_join(t, &ret), 0);
    assert_int_equal(*(fs_status *)ret, FS_OK);
    assert_int_equal(rate_chunk(r, 12345678), 12345678);
    rate_set(r, MIB);
    assert_int_equal(rate_get(r), MIB);
    assert_int_equal(rate_chunk(r, 12345678), 64 * 1024);
    rate_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rate_unit_is_small_at_low_rates_and_bounded),
        cmocka_unit_test(test_rate_bucket_waits_for_missing_tokens),
        cmocka_unit_test(test_rate_bucket_holds_the_rate_over_ten_seconds),
        cmocka_unit_test(test_rate_bucket_bounds_the_burst_after_idling),
        cmocka_unit_test(test_rate_bucket_refund_moves_the_waiters_ahead),
        cmocka_unit_test(test_rate_bucket_rate_changes_live),
        cmocka_unit_test(test_rate_bucket_zero_is_unlimited),
        cmocka_unit_test(test_rate_parse_accepts_numbers_and_suffixes),
        cmocka_unit_test(test_rate_parse_refuses_bad_rates_and_says_why),
        cmocka_unit_test(test_rate_take_gives_back_on_timeout),
        cmocka_unit_test(test_rate_close_cuts_waiters),
        cmocka_unit_test(test_rate_set_releases_waiters),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
