/* test_sched.c - the swarming scheduler's rules (sched.h), each test named
 * after the rule of docs/SWARMING.md it proves, on a fake clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "floodshare/sched.h"

#define P (512u * 1024) /* piece bytes in these tests */

static int add(struct sched *s, const char *holder, unsigned link)
{
    int src = -1;

    assert_int_equal(sched_add(s, holder, link, 0, &src), FS_OK);
    return src;
}

static struct sched_req next(struct sched *s, int src, uint64_t now)
{
    struct sched_req r;

    assert_int_equal(sched_next(s, src, now, &r), FS_OK);
    return r;
}

/* Feeds src bytes_per_s for [from, to) ms in 100 ms steps: its rate window. */
static void feed(struct sched *s, int src, uint64_t bytes_per_s, uint64_t from, uint64_t to)
{
    for (uint64_t t = from; t < to; t += 100)
        sched_bytes(s, src, bytes_per_s / 10, t);
}

static void done(struct sched *s, int src, uint32_t i, int expect)
{
    int closed[SCHED_SOURCES_MAX], n;

    assert_int_equal(sched_piece_done(s, src, i, closed, &n), expect);
}

/* Which piece: the lowest MISSING first; HAVE and CLAIMED are never handed out,
 * and a CLAIMED piece that fails its re-check is MISSING again. */
static void test_sched_lowest_missing_first(void **state)
{
    struct sched *s = sched_new(10ull * P, P, 2);
    struct sched_req r;
    int a, b;

    (void)state;
    assert_non_null(s);
    assert_int_equal(sched_set_have(s, 0), FS_OK);
    assert_int_equal(sched_set_claimed(s, 1), FS_OK);
    a = add(s, "127.0.0.1:1", 1);
    b = add(s, "127.0.0.1:2", 2);
    r = next(s, a, 0);
    assert_int_equal(r.kind, SCHED_SPAN);
    assert_int_equal(r.a, 2);
    assert_int_equal(r.b, 2 + SCHED_SPAN_NORATE);
    r = next(s, b, 0);
    assert_int_equal(r.a, 4); /* after what a holds */
    assert_int_equal(sched_claim_checked(s, 1, 0), FS_OK);
    done(s, a, 2, SCHED_PIECE_NEW);
    done(s, a, 3, SCHED_PIECE_NEW);
    r = next(s, a, 0);
    assert_int_equal(r.a, 1); /* the failed claim, lowest again */
    sched_free(s);
}

/* A source whose stream goes on at a MISSING piece keeps it, even with a lower
 * piece MISSING again (a failed claim); without a stream, or when the stream's
 * next piece is no longer MISSING, the lowest comes first. */
static void test_sched_running_stream_continues_before_a_lower_piece(void **state)
{
    struct sched *s = sched_new(10ull * P, P, 1);
    struct sched_req r;
    int a;

    (void)state;
    assert_non_null(s);
    for (uint32_t i = 0; i < 3; i++)
        assert_int_equal(sched_set_claimed(s, i), FS_OK);
    a = add(s, "127.0.0.1:1", 1);
    r = next(s, a, 0);
    assert_int_equal(r.a, 3); /* claims are never handed out */
    assert_int_equal(sched_claim_checked(s, 0, 0), FS_OK);
    done(s, a, 3, SCHED_PIECE_NEW);
    done(s, a, 4, SCHED_PIECE_NEW);
    assert_int_equal(sched_next_from(s, a, 0, 5, &r), FS_OK);
    assert_int_equal(r.kind, SCHED_SPAN);
    assert_int_equal(r.a, 5); /* the stream, not the failed claim */
    done(s, a, 5, SCHED_PIECE_NEW);
    assert_int_equal(sched_next_from(s, a, 0, 3, &r), FS_OK);
    assert_int_equal(r.a, 0); /* 3 is HAVE: the lowest MISSING */
    sched_free(s);
}

/* How much: SCHED_SPAN_NORATE before a rate, then rate x 500 ms in pieces,
 * within SCHED_SPAN_MIN..SCHED_SPAN_MAX. */
static void test_sched_span_follows_rate(void **state)
{
    struct sched *s = sched_new(200ull * P, P, 3);
    struct sched_req r;
    int fast, mid, slow;

    (void)state;
    mid = add(s, "127.0.0.1:1", 1);
    fast = add(s, "127.0.0.1:2", 2);
    slow = add(s, "127.0.0.1:3", 3);
    r = next(s, mid, 0);
    assert_int_equal(r.b - r.a, SCHED_SPAN_NORATE);
    feed(s, mid, 10ull * P, 0, 1000);       /* 10 pieces/s: 5 in 500 ms */
    feed(s, fast, 1000ull * P, 0, 1000);    /* 500 in 500 ms: capped */
    feed(s, slow, P / 10, 0, 1000);         /* 0.05 in 500 ms: at least 1 */
    done(s, mid, r.a, SCHED_PIECE_NEW);
    done(s, mid, r.a + 1, SCHED_PIECE_NEW);
    r = next(s, mid, 1000);
    assert_int_equal(r.b - r.a, 5);
    r = next(s, fast, 1000);
    assert_int_equal(r.b - r.a, SCHED_SPAN_MAX);
    r = next(s, slow, 1000);
    assert_int_equal(r.b - r.a, SCHED_SPAN_MIN);
    sched_free(s);
}

/* Tail cap: 10 pieces left and 4 free fast sources get at most 3 each. */
static void test_sched_tail_is_shared(void **state)
{
    struct sched *s = sched_new(18ull * P, P, 4);
    struct sched_req first[4];
    int src[4];
    uint32_t total = 0;

    (void)state;
    for (int i = 0; i < 4; i++) { /* all four connected, 2 pieces each before a rate */
        char h[32];
        snprintf(h, sizeof h, "127.0.0.1:%d", i + 1);
        src[i] = add(s, h, (unsigned)i);
        first[i] = next(s, src[i], 0);
        assert_int_equal(first[i].b - first[i].a, SCHED_SPAN_NORATE);
    }
    for (int i = 0; i < 4; i++) { /* each fast enough to take 32 alone */
        feed(s, src[i], 100ull * P, 0, 1000);
        for (uint32_t p = first[i].a; p < first[i].b; p++)
            done(s, src[i], p, SCHED_PIECE_NEW);
    }
    assert_int_equal(sched_missing_count(s), 10);
    for (int i = 0; i < 4; i++) {
        struct sched_req r = next(s, src[i], 1000);
        assert_int_equal(r.kind, SCHED_SPAN);
        assert_true(r.b - r.a <= 3);
        total += r.b - r.a;
    }
    assert_int_equal(total, 8); /* 3, 2, 2, 1: the rest for whoever is free next */
    sched_free(s);
}

/* Endgame: never while a piece is MISSING; once none is, a free source gets
 * one piece as a second copy. */
static void test_sched_endgame_only_when_nothing_missing(void **state)
{
    struct sched *s = sched_new(5ull * P, P, 2);
    struct sched_req r;
    int a, b;

    (void)state;
    a = add(s, "127.0.0.1:1", 1);
    b = add(s, "127.0.0.1:2", 2);
    assert_int_equal(next(s, a, 0).b, 2);
    r = next(s, b, 0);
    assert_int_equal(r.a, 2);
    assert_int_equal(r.b, 4);
    done(s, a, 0, SCHED_PIECE_NEW);
    done(s, a, 1, SCHED_PIECE_NEW);
    r = next(s, a, 0);
    assert_int_equal(r.kind, SCHED_SPAN); /* piece 4 is MISSING: no endgame yet */
    assert_int_equal(r.a, 4);
    done(s, a, 4, SCHED_PIECE_NEW);
    r = next(s, a, 0);
    assert_int_equal(r.kind, SCHED_ENDGAME);
    assert_int_equal(r.b, r.a + 1);
    assert_int_equal(r.a, 3); /* no rates: the highest index of b's tail */
    assert_int_equal(sched_copies(s, 3), 2);
    sched_free(s);
}

/* Endgame pick: the single-copy piece expected last (bytes ahead / owner's
 * rate), so the slow source's tail is what gets doubled. */
static void test_sched_endgame_doubles_the_piece_expected_last(void **state)
{
    struct sched *s = sched_new(10ull * P, P, 4);
    struct sched_req r;
    int slow, fast, c, d;

    (void)state;
    slow = add(s, "127.0.0.1:1", 1);
    fast = add(s, "127.0.0.1:2", 2);
    c = add(s, "127.0.0.1:3", 3);
    d = add(s, "127.0.0.1:4", 4);
    assert_int_equal(next(s, slow, 0).a, 0); /* [0, 2) */
    assert_int_equal(next(s, fast, 0).a, 2); /* [2, 4) */
    for (uint32_t i = 4; i < 10; i++)
        assert_int_equal(sched_set_have(s, i), FS_OK);
    feed(s, slow, 40 * 1024, 0, 1000);   /* piece 1: ~25 s away */
    feed(s, fast, 400 * 1024, 0, 1000);  /* piece 3: ~2.6 s away */
    r = next(s, c, 1000);
    assert_int_equal(r.kind, SCHED_ENDGAME);
    assert_int_equal(r.a, 1); /* the slow source's, though 3 has the higher index */
    r = next(s, d, 1000);
    assert_int_equal(r.kind, SCHED_ENDGAME);
    assert_int_equal(r.a, 0); /* then the slow one's next: 1 is doubled already */
    sched_free(s);
}

/* Endgame tie (same bytes ahead, same rate): the highest index. */
static void test_sched_endgame_tie_takes_the_highest_index(void **state)
{
    struct sched *s = sched_new(5ull * P, P, 3);
    struct sched_req r;
    int a, b, c;

    (void)state;
    a = add(s, "127.0.0.1:1", 1);
    b = add(s, "127.0.0.1:2", 2);
    c = add(s, "127.0.0.1:3", 3);
    assert_int_equal(next(s, a, 0).a, 0); /* [0, 2) */
    assert_int_equal(next(s, b, 0).a, 2); /* [2, 4) */
    assert_int_equal(sched_set_have(s, 4), FS_OK);
    r = next(s, c, 0);
    assert_int_equal(r.kind, SCHED_ENDGAME);
    assert_int_equal(r.a, 3); /* 1 and 3 are both 2 pieces ahead of rate-less owners */
    sched_free(s);
}

/* At most SCHED_COPIES copies of a piece: a third free source gets nothing. */
static void test_sched_never_three_copies(void **state)
{
    struct sched *s = sched_new(P, P, 3);
    struct sched_req r;
    int a, b, c;

    (void)state;
    a = add(s, "127.0.0.1:1", 1);
    b = add(s, "127.0.0.1:2", 2);
    c = add(s, "127.0.0.1:3", 3);
    assert_int_equal(next(s, a, 0).kind, SCHED_SPAN);
    assert_int_equal(next(s, b, 0).kind, SCHED_ENDGAME);
    r = next(s, c, 0);
    assert_int_equal(r.kind, SCHED_NONE);
    assert_int_equal(sched_source_state(s, c), SCHED_SRC_IDLE);
    assert_int_equal(sched_copies(s, 0), 2);
    sched_free(s);
}

/* Dropping the slower copy: when a piece becomes HAVE, another source whose
 * request holds nothing still needed is closed (DONE) at once; one that
 * still holds needed pieces reads on and its copy comes back DUP. */
static void test_sched_have_piece_closes_the_other_copy(void **state)
{
    struct sched *s = sched_new(2ull * P, P, 2);
    int a, b, closed[SCHED_SOURCES_MAX], n;

    (void)state;
    /* a is at piece 1, its last: b's copy of 1 lands first, a is closed */
    a = add(s, "127.0.0.1:1", 1);
    b = add(s, "127.0.0.1:2", 2);
    assert_int_equal(next(s, a, 0).b, 2);
    done(s, a, 0, SCHED_PIECE_NEW);
    assert_int_equal(next(s, b, 0).a, 1);
    assert_int_equal(sched_piece_done(s, b, 1, closed, &n), SCHED_PIECE_NEW);
    assert_int_equal(n, 1);
    assert_int_equal(closed[0], a);
    assert_int_equal(sched_source_state(s, a), SCHED_DONE);
    assert_int_equal(sched_source_state(s, b), SCHED_ACTIVE);
    assert_int_equal(next(s, b, 0).kind, SCHED_FINISHED);
    sched_free(s);

    /* a still needs piece 0: it reads on, and its copy of 1 is dropped */
    s = sched_new(2ull * P, P, 2);
    a = add(s, "127.0.0.1:1", 1);
    b = add(s, "127.0.0.1:2", 2);
    assert_int_equal(next(s, a, 0).b, 2);
    assert_int_equal(next(s, b, 0).a, 1);
    assert_int_equal(sched_piece_done(s, b, 1, closed, &n), SCHED_PIECE_NEW);
    assert_int_equal(n, 0);
    assert_int_equal(sched_source_state(s, a), SCHED_ACTIVE);
    done(s, a, 0, SCHED_PIECE_NEW);
    done(s, a, 1, SCHED_PIECE_DUP);
    assert_int_equal(sched_source_pieces(s, a), 1);
    sched_free(s);
}

/* A cut or bad source gives its request back at once: nothing of it stays
 * in flight (otherwise the get waits for get_timeout_ms). BUSY too. */
static void test_sched_cut_and_bad_return_their_pieces(void **state)
{
    struct sched *s = sched_new(6ull * P, P, 3);
    struct sched_req r;
    int a, b, c;

    (void)state;
    a = add(s, "127.0.0.1:1", 1);
    b = add(s, "127.0.0.1:2", 2);
    c = add(s, "127.0.0.1:3", 3);
    assert_int_equal(next(s, a, 0).a, 0); /* [0, 2) */
    assert_int_equal(next(s, b, 0).a, 2); /* [2, 4) */
    assert_int_equal(next(s, c, 0).a, 4); /* [4, 5) */
    assert_int_equal(sched_missing_count(s), 1);
    assert_int_equal(sched_end(s, a, SCHED_CUT), FS_OK);
    assert_int_equal(sched_end(s, c, SCHED_BAD), FS_OK);
    assert_int_equal(sched_copies(s, 0), 0);
    assert_int_equal(sched_copies(s, 1), 0);
    assert_int_equal(sched_copies(s, 4), 0);
    assert_int_equal(sched_missing_count(s), 4);
    assert_int_equal(sched_source_state(s, a), SCHED_CUT);
    assert_int_equal(sched_source_state(s, c), SCHED_BAD);
    done(s, b, 2, SCHED_PIECE_NEW);
    done(s, b, 3, SCHED_PIECE_NEW);
    r = next(s, b, 0);
    assert_int_equal(r.a, 0); /* the cut one's pieces, lowest first, to the one still here */
    assert_int_equal(sched_busy(s, b), FS_OK);
    assert_int_equal(sched_copies(s, 0), 0);
    assert_int_equal(sched_next(s, a, 0, &r), FS_EINVAL); /* an ended row asks nothing */
    sched_free(s);
}

/* BUSY in a swarm: a holder that answered BUSY gives its request back at
 * once and waits its retry time holding nothing; it stays a live source
 * (its holder is not added twice, and it keeps its place among the k), but
 * it is not connected, so the tail is shared among the sources that are
 * (a BUSY one waits up to a minute: a share kept for it would idle). After
 * the wait it asks again like any source. */
static void test_sched_busy_holder_in_a_swarm(void **state)
{
    struct sched *s = sched_new(20ull * P, P, 3);
    struct sched_req r;
    int a, b, c, d = -1;

    (void)state;
    a = add(s, "127.0.0.1:1", 1);
    c = add(s, "127.0.0.1:3", 3);
    b = add(s, "127.0.0.1:2", 2);
    assert_int_equal(next(s, a, 0).a, 0); /* [0, 2) */
    assert_int_equal(next(s, c, 0).a, 2); /* [2, 4) */
    assert_int_equal(next(s, b, 0).a, 4); /* [4, 6) */
    assert_int_equal(sched_busy(s, b), FS_OK);
    assert_int_equal(sched_source_state(s, b), SCHED_BUSY);
    assert_int_equal(sched_copies(s, 4), 0); /* given back at once */
    assert_int_equal(sched_copies(s, 5), 0);
    assert_int_equal(sched_add(s, "127.0.0.1:2", 2, 0, &d), FS_EEXIST);
    assert_int_equal(sched_add(s, "127.0.0.1:4", 4, 0, &d), FS_ETOOBIG);
    feed(s, a, 100ull * P, 0, 2000); /* fast: its own span would be SCHED_SPAN_MAX */
    done(s, a, 0, SCHED_PIECE_NEW);
    done(s, a, 1, SCHED_PIECE_NEW);
    done(s, c, 2, SCHED_PIECE_NEW);
    done(s, c, 3, SCHED_PIECE_NEW);
    assert_int_equal(sched_missing_count(s), 16); /* 4..19 */
    r = next(s, a, 2000);
    assert_int_equal(r.kind, SCHED_SPAN);
    assert_int_equal(r.a, 4); /* the BUSY one's pieces, lowest first */
    assert_int_equal(r.b, 4 + 16 / 2); /* shared by a and c, not by 3 */
    r = next(s, b, 2000); /* its wait is over */
    assert_int_equal(r.kind, SCHED_SPAN);
    assert_int_equal(r.a, 12);
    assert_int_equal(sched_source_state(s, b), SCHED_ACTIVE);
    sched_free(s);
}

/* Slow rule: after 4 s of service, under 1/4 of the others' median, retired
 * only when a spare hit waits and the sources are at k; its pieces go back. */
static void test_sched_slow_source_retired_only_with_a_spare_hit(void **state)
{
    struct sched *s = sched_new(100ull * P, P, 4);
    struct sched_req r;
    int a, mid, slow, b;

    (void)state;
    a = add(s, "127.0.0.1:1", 1);
    mid = add(s, "127.0.0.1:2", 2);
    slow = add(s, "127.0.0.1:3", 3);
    assert_int_equal(next(s, a, 0).a, 0);    /* [0, 2) */
    assert_int_equal(next(s, mid, 0).a, 2);  /* [2, 4) */
    assert_int_equal(next(s, slow, 0).a, 4); /* [4, 6) */
    feed(s, a, 8ull * P, 0, 4000);
    feed(s, mid, 3ull * P, 0, 4000);  /* 3/8 of the median: slower, not slow */
    feed(s, slow, P / 2, 0, 4000);    /* 1/16 of the median */
    assert_int_equal(sched_retire_slow(s, 4000, 1), -1); /* 3 of k = 4: room for the spare */
    b = add(s, "127.0.0.1:4", 4);
    assert_int_equal(next(s, b, 0).a, 6);    /* [6, 8) */
    feed(s, b, 8ull * P, 0, 4000);
    assert_int_equal(sched_retire_slow(s, 4000, 0), -1); /* no spare: it stays */
    assert_int_equal(sched_retire_slow(s, 3900, 1), -1); /* under 4 s of service */
    assert_int_equal(sched_retire_slow(s, 4000, 1), slow);
    assert_int_equal(sched_source_state(s, slow), SCHED_DONE);
    assert_int_equal(sched_source_state(s, mid), SCHED_ACTIVE);
    assert_int_equal(sched_copies(s, 4), 0); /* its request [4, 6) came back */
    assert_int_equal(sched_missing_count(s), 100 - 6);
    done(s, b, 6, SCHED_PIECE_NEW);
    done(s, b, 7, SCHED_PIECE_NEW);
    r = next(s, b, 4000);
    assert_int_equal(r.a, 4); /* the lowest MISSING again is the retired one's */
    assert_int_equal(sched_retire_slow(s, 4000, 1), -1); /* not at k any more */
    sched_free(s);
}

/* Which hits become sources: one per holder, k at most, and at most
 * ceil(k / 2) over one link while hits from another link wait. */
static void test_sched_half_the_sources_per_link(void **state)
{
    struct sched *s = sched_new(10ull * P, P, 4);
    int src;

    (void)state;
    assert_int_equal(sched_add(s, "10.0.0.1:1", 7, 1, &src), FS_OK);
    assert_int_equal(sched_add(s, "10.0.0.1:1", 8, 0, &src), FS_EEXIST);
    assert_int_equal(sched_add(s, "10.0.0.2:1", 7, 1, &src), FS_OK);
    assert_int_equal(sched_add(s, "10.0.0.3:1", 7, 1, &src), FS_EREFUSED);
    assert_int_equal(src, -1);
    assert_int_equal(sched_add(s, "10.0.0.3:1", 7, 0, &src), FS_OK); /* nobody else waits */
    assert_int_equal(sched_add(s, "10.0.0.4:1", 9, 0, &src), FS_OK);
    assert_int_equal(sched_add(s, "10.0.0.5:1", 9, 0, &src), FS_ETOOBIG);
    sched_free(s);
}

/* Bounds at creation: more than SCHED_PIECES_MAX pieces, k over the table. */
static void test_sched_bounds_refused_at_creation(void **state)
{
    struct sched *s;

    (void)state;
    assert_null(sched_new((uint64_t)SCHED_PIECES_MAX * 4096 + 1, 4096, 4));
    assert_null(sched_new(P, P, SCHED_SOURCES_MAX + 1));
    assert_null(sched_new(P, 0, 1));
    s = sched_new((uint64_t)SCHED_PIECES_MAX * 4096, 4096, 1); /* 64 GiB at 4 KiB: the max count */
    assert_non_null(s);
    assert_int_equal(sched_npieces(s), SCHED_PIECES_MAX);
    assert_int_equal(sched_set_have(s, SCHED_PIECES_MAX), FS_EINVAL);
    sched_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sched_lowest_missing_first),
        cmocka_unit_test(test_sched_running_stream_continues_before_a_lower_piece),
        cmocka_unit_test(test_sched_span_follows_rate),
        cmocka_unit_test(test_sched_tail_is_shared),
        cmocka_unit_test(test_sched_endgame_only_when_nothing_missing),
        cmocka_unit_test(test_sched_endgame_doubles_the_piece_expected_last),
        cmocka_unit_test(test_sched_endgame_tie_takes_the_highest_index),
        cmocka_unit_test(test_sched_never_three_copies),
        cmocka_unit_test(test_sched_have_piece_closes_the_other_copy),
        cmocka_unit_test(test_sched_cut_and_bad_return_their_pieces),
        cmocka_unit_test(test_sched_busy_holder_in_a_swarm),
        cmocka_unit_test(test_sched_slow_source_retired_only_with_a_spare_hit),
        cmocka_unit_test(test_sched_half_the_sources_per_link),
        cmocka_unit_test(test_sched_bounds_refused_at_creation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
