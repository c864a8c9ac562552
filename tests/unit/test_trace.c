/* test_trace.c - the event ring, the watchers' bounded queues, and the event formats. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "floodshare/trace.h"
#include "floodshare/tracefmt.h"

static const struct fs_addr SELF = {"127.0.0.1", 10812};
static const char QID[] = "4d782a6673987d51";

static void emit_n(struct trace *t, enum trace_type type, const char *qid, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        struct trace_event ev;
        trace_init_event(&ev, type, qid);
        ev.count = i;
        trace_emit(t, &ev);
    }
}

static void test_ring_keeps_the_last_n_events_oldest_first(void **state)
{
    struct trace *t = trace_new(8, 2, &SELF);
    struct trace_event *evs;

    (void)state;
    emit_n(t, TR_RECEIVED, QID, 20);
    size_t n = trace_dump(t, NULL, &evs);
    assert_int_equal(n, 8);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(evs[i].seq, 13 + i);
        assert_int_equal(evs[i].peer, 2);
        assert_string_equal(evs[i].addr.host, "127.0.0.1");
        assert_true(i == 0 || evs[i].ts_us >= evs[i - 1].ts_us);
    }
    free(evs);
    trace_free(t);
}

static void test_dump_filters_by_query_id_prefix(void **state)
{
    struct trace *t = trace_new(64, 1, &SELF);
    struct trace_event *evs;

    (void)state;
    emit_n(t, TR_RECEIVED, QID, 3);
    emit_n(t, TR_RECEIVED, "4d00000000000000", 2);
    emit_n(t, TR_PEER_UP, NULL, 1);
    assert_int_equal(trace_dump(t, "4d78", &evs), 3);
    free(evs);
    assert_int_equal(trace_dump(t, "4d", &evs), 5);
    free(evs);
    assert_int_equal(trace_dump(t, "", &evs), 6);
    free(evs);
    assert_int_equal(trace_dump(t, "ffff", &evs), 0);
    assert_null(evs);
    trace_free(t);
}

static void test_nobody_listening_means_nothing_is_formatted(void **state)
{
    struct trace *t = trace_new(16, 1, &SELF);
    struct trace_event *evs;

    (void)state;
    uint64_t before = trace_formatted_count();
    assert_false(trace_listening(t));
    emit_n(t, TR_RECEIVED, QID, 1000);
    emit_n(t, TR_TRANSFER_PROGRESS, QID, 50);
    assert_int_equal(trace_formatted_count(), before);
    /* progress is live only: with nobody listening it is not even kept */
    size_t n = trace_dump(t, NULL, &evs);
    for (size_t i = 0; i < n; i++)
        assert_int_not_equal(evs[i].type, TR_TRANSFER_PROGRESS);
    free(evs);
    /* a watcher: emitting still formats nothing, its own thread does */
    struct trace_sub *s = trace_subscribe(t);
    assert_true(trace_listening(t));
    emit_n(t, TR_RECEIVED, QID, 10);
    assert_int_equal(trace_formatted_count(), before);
    char line[2048];
    struct trace_event ev;
    assert_int_equal(trace_next(t, s, 0, &ev), 1);
    assert_true(trace_format_json(&ev, line, sizeof line) > 0);
    assert_int_equal(trace_formatted_count(), before + 1);
    trace_unsubscribe(t, s);
    trace_free(t);
}

static void test_slow_watcher_loses_newest_events_and_is_told_how_many(void **state)
{
    struct trace *t = trace_new(16, 1, &SELF);
    struct trace_sub *s = trace_subscribe(t);
    struct trace_event ev;

    (void)state;
    emit_n(t, TR_RECEIVED, QID, TRACE_QUEUE + 10);
    for (unsigned i = 0; i < TRACE_QUEUE; i++) {
        assert_int_equal(trace_next(t, s, 0, &ev), 1);
        assert_int_equal(ev.type, TR_RECEIVED);
        assert_int_equal(ev.count, i); /* the oldest were kept, in order */
    }
    assert_int_equal(trace_next(t, s, 0, &ev), 1);
    assert_int_equal(ev.type, TR_LOST);
    assert_int_equal(ev.count, 10);
    assert_int_equal(trace_next(t, s, 0, &ev), 0);
    emit_n(t, TR_SEARCHED, QID, 1);
    assert_int_equal(trace_next(t, s, 0, &ev), 1);
    assert_int_equal(ev.type, TR_SEARCHED);
    trace_unsubscribe(t, s);
    trace_free(t);
}

static void test_a_loss_is_reported_where_it_happened(void **state)
{
    struct trace *t = trace_new(16, 1, &SELF);
    struct trace_sub *s = trace_subscribe(t);
    struct trace_event ev;

    (void)state;
    emit_n(t, TR_RECEIVED, QID, TRACE_QUEUE + 5); /* 5 lost */
    assert_int_equal(trace_next(t, s, 0, &ev), 1); /* one slot free again */
    emit_n(t, TR_SEARCHED, QID, 1); /* the loss marker takes the slot: this one is lost too */
    for (unsigned i = 1; i < TRACE_QUEUE; i++) {
        assert_int_equal(trace_next(t, s, 0, &ev), 1);
        assert_int_equal(ev.type, TR_RECEIVED);
    }
    assert_int_equal(trace_next(t, s, 0, &ev), 1);
    assert_int_equal(ev.type, TR_LOST);
    assert_int_equal(ev.count, 5);
    assert_int_equal(trace_next(t, s, 0, &ev), 1);
    assert_int_equal(ev.type, TR_LOST);
    assert_int_equal(ev.count, 1);
    trace_unsubscribe(t, s);
    trace_free(t);
}

static void test_subscribers_are_bounded_and_unsubscribing_frees_the_slot(void **state)
{
    struct trace *t = trace_new(16, 1, &SELF);
    struct trace_sub *s[TRACE_MAX_SUBS];
    struct trace_info info;

    (void)state;
    for (int i = 0; i < TRACE_MAX_SUBS; i++)
        assert_non_null(s[i] = trace_subscribe(t));
    assert_null(trace_subscribe(t));
    trace_get_info(t, &info);
    assert_int_equal(info.subscribers, TRACE_MAX_SUBS);
    for (int i = 0; i < TRACE_MAX_SUBS; i++)
        trace_unsubscribe(t, s[i]);
    trace_get_info(t, &info);
    assert_int_equal(info.subscribers, 0);
    assert_false(trace_listening(t));
    struct trace_sub *again = trace_subscribe(t);
    assert_non_null(again);
    trace_unsubscribe(t, again);
    trace_free(t);
}

static void test_next_times_out_when_nothing_happens(void **state)
{
    struct trace *t = trace_new(16, 1, &SELF);
    struct trace_sub *s = trace_subscribe(t);
    struct trace_event ev;

    (void)state;
    assert_int_equal(trace_next(t, s, 20, &ev), 0);
    trace_unsubscribe(t, s);
    trace_free(t);
}

struct producer {
    struct trace *t;
    unsigned n;
};

static void *produce(void *arg)
{
    struct producer *p = arg;
    emit_n(p->t, TR_FORWARDED, QID, p->n);
    return NULL;
}

/* Two emitting threads and a reader: every event is delivered or counted
 * lost, none twice, and each thread's events stay in order. */
static void test_concurrent_emitters_and_a_reader_account_for_every_event(void **state)
{
    struct trace *t = trace_new(256, 1, &SELF);
    struct trace_sub *s = trace_subscribe(t);
    struct producer p = {t, 20000};
    pthread_t a, b;
    struct trace_event ev;
    uint64_t got = 0, lost = 0, last_seq = 0;

    (void)state;
    pthread_create(&a, NULL, produce, &p);
    pthread_create(&b, NULL, produce, &p);
    while (got + lost < 2ull * p.n) {
        if (!trace_next(t, s, 1000, &ev))
            break;
        if (ev.type == TR_LOST) {
            lost += ev.count;
            continue;
        }
        assert_true(ev.seq > last_seq);
        last_seq = ev.seq;
        got++;
    }
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    while (trace_next(t, s, 0, &ev))
        ev.type == TR_LOST ? (lost += ev.count) : got++;
    assert_int_equal(got + lost, 2ull * p.n);
    trace_unsubscribe(t, s);
    trace_free(t);
}

static void full_event(struct trace_event *ev)
{
    trace_init_event(ev, TR_FOUND_RELAYED, QID);
    ev->ts_us = 1718000000123456ull;
    ev->seq = 42;
    ev->peer = 3;
    ev->addr = SELF;
    trace_set(ev->name, sizeof ev->name, "my file %=\"x\".txt");
    ev->from = (struct fs_addr){"127.0.0.1", 10813};
    ev->from_peer = 4;
    ev->to = (struct fs_addr){"localhost", 10811};
    ev->origin = (struct fs_addr){"127.0.0.1", 10811};
    ev->holder = 4;
    ev->ttl = 2;
    ev->hops = 3;
    ev->count = 7;
    ev->role = TR_ROLE_HOLDER;
    ev->bytes = 1ull << 40;
    ev->size = UINT64_MAX;
    ev->source_bytes = (1ull << 39) + 5;
    trace_set(ev->md5, sizeof ev->md5, "6f5902ac237024bdd0c176cb93063dc4");
    trace_set(ev->reason, sizeof ev->reason, "route_lost");
    trace_set(ev->detail, sizeof ev->detail, "a line\twith tabs");
    trace_set(ev->msg, sizeof ev->msg, "FOUND");
}

static void test_line_form_round_trips_every_field(void **state)
{
    struct trace_event a, b;
    char line[4096];

    (void)state;
    full_event(&a);
    int n = trace_encode(&a, line, sizeof line);
    assert_true(n > 0);
    assert_null(memchr(line, '\n', (size_t)n));
    assert_int_equal(trace_decode(line, (size_t)n, &b, NULL), FS_OK);
    assert_int_equal(a.type, b.type);
    assert_int_equal(a.ts_us, b.ts_us);
    assert_int_equal(a.seq, b.seq);
    assert_int_equal(a.peer, b.peer);
    assert_true(addr_equal(&a.addr, &b.addr) && addr_equal(&a.from, &b.from) &&
                addr_equal(&a.to, &b.to) && addr_equal(&a.origin, &b.origin));
    assert_string_equal(a.qid, b.qid);
    assert_string_equal(a.name, b.name);
    assert_int_equal(a.from_peer, b.from_peer);
    assert_int_equal(a.to_peer, b.to_peer);
    assert_int_equal(a.holder, b.holder);
    assert_int_equal(a.ttl, b.ttl);
    assert_int_equal(a.hops, b.hops);
    assert_int_equal(a.count, b.count);
    assert_int_equal(a.role, b.role);
    assert_int_equal(a.bytes, b.bytes);
    assert_int_equal(a.size, b.size);
    assert_int_equal(a.source_bytes, b.source_bytes);
    assert_string_equal(a.md5, b.md5);
    assert_string_equal(a.reason, b.reason);
    assert_string_equal(a.detail, b.detail);
    assert_string_equal(a.msg, b.msg);
    /* a tiny buffer is refused, not overrun */
    assert_int_equal(trace_encode(&a, line, 20), -1);
}

/* IPv6 addresses travel in the line form in brackets and come back equal
 * (watch, events --raw and trace read every peer's stream this way). */
static void test_line_form_carries_ipv6_addresses(void **state)
{
    struct trace_event a, b;
    char line[4096];

    (void)state;
    full_event(&a);
    a.addr = (struct fs_addr){"::1", 10812};
    a.from = (struct fs_addr){"2001:db8::1", 65535};
    int n = trace_encode(&a, line, sizeof line);
    assert_true(n > 0);
    line[n] = '\0';
    assert_non_null(strstr(line, "from=[2001:db8::1]:65535"));
    assert_int_equal(trace_decode(line, (size_t)n, &b, NULL), FS_OK);
    assert_true(addr_equal(&a.addr, &b.addr) && addr_equal(&a.from, &b.from));
}

static void assert_same_event(const struct trace_event *a, const struct trace_event *b)
{
    assert_int_equal(a->type, b->type);
    assert_int_equal(a->ts_us, b->ts_us);
    assert_int_equal(a->seq, b->seq);
    assert_int_equal(a->peer, b->peer);
    assert_true(addr_equal(&a->addr, &b->addr));
    assert_memory_equal(&a->from, &b->from, sizeof a->from);
    assert_memory_equal(&a->to, &b->to, sizeof a->to);
    assert_memory_equal(&a->origin, &b->origin, sizeof a->origin);
    assert_string_equal(a->qid, b->qid);
    assert_string_equal(a->name, b->name);
    assert_int_equal(a->from_peer, b->from_peer);
    assert_int_equal(a->to_peer, b->to_peer);
    assert_int_equal(a->holder, b->holder);
    assert_int_equal(a->ttl, b->ttl);
    assert_int_equal(a->hops, b->hops);
    assert_int_equal(a->count, b->count);
    assert_int_equal(a->role, b->role);
    assert_int_equal(a->bytes, b->bytes);
    assert_int_equal(a->size, b->size);
    assert_int_equal(a->source_bytes, b->source_bytes);
    assert_string_equal(a->md5, b->md5);
    assert_string_equal(a->reason, b->reason);
    assert_string_equal(a->detail, b->detail);
    assert_string_equal(a->msg, b->msg);
}

/* The ring keeps events packed: every field, at its longest or empty,
 * comes back out as it went in. */
static void test_ring_gives_back_every_field_as_emitted(void **state)
{
    struct trace *t = trace_new(8, 3, &SELF);
    struct trace_event full, empty, longest, *evs;

    (void)state;
    full_event(&full);
    trace_emit(t, &full); /* stamps ts_us, seq, peer and addr in place */
    trace_init_event(&empty, TR_PEER_UP, NULL);
    trace_emit(t, &empty);
    full_event(&longest);
    memset(longest.name, 'n', TRACE_NAME_MAX);
    memset(longest.detail, 'd', TRACE_DETAIL_MAX);
    memset(longest.reason, 'r', sizeof longest.reason - 1);
    memset(longest.msg, 'm', sizeof longest.msg - 1);
    memset(longest.from.host, 'h', ADDR_HOST_MAX);
    memset(longest.to.host, 'h', ADDR_HOST_MAX);
    memset(longest.origin.host, 'h', ADDR_HOST_MAX);
    longest.from.port = longest.to.port = longest.origin.port = 65535;
    longest.from_peer = longest.to_peer = longest.holder = UINT32_MAX;
    longest.ttl = longest.hops = longest.count = UINT32_MAX;
    longest.bytes = longest.size = longest.source_bytes = UINT64_MAX;
    trace_emit(t, &longest);
    assert_int_equal(trace_dump(t, NULL, &evs), 3);
    assert_same_event(&evs[0], &full);
    assert_same_event(&evs[1], &empty);
    assert_same_event(&evs[2], &longest);
    assert_int_equal(evs[1].qid[0], '\0');
    free(evs);
    trace_free(t);
}

/* Long events take more of the ring's bytes, so fewer of them are kept;
 * what is kept is always the newest, in order and intact, also where a
 * record wraps around the end of the ring. */
static void test_ring_of_long_events_keeps_the_newest_that_fit(void **state)
{
    enum { RING = 64, N = 500 };
    struct trace *t = trace_new(RING, 1, &SELF);
    struct trace_event ev, *evs;
    struct trace_info info;

    (void)state;
    for (unsigned i = 0; i < N; i++) {
        trace_init_event(&ev, TR_SEND_FAILED, QID);
        memset(ev.name, 'a' + (int)(i % 26), 1 + (i * 37) % TRACE_NAME_MAX);
        memset(ev.detail, 'x', (i * 11) % TRACE_DETAIL_MAX);
        ev.count = i;
        trace_emit(t, &ev);
    }
    size_t n = trace_dump(t, NULL, &evs);
    assert_true(n >= 4 && n < RING); /* bounded by bytes, not by the event count */
    for (size_t k = 0; k < n; k++) {
        unsigned i = N - (unsigned)n + (unsigned)k;
        assert_int_equal(evs[k].seq, i + 1);
        assert_int_equal(evs[k].count, i);
        assert_int_equal(strlen(evs[k].name), 1 + (i * 37) % TRACE_NAME_MAX);
        assert_int_equal(evs[k].name[0], 'a' + (int)(i % 26));
        assert_int_equal(strlen(evs[k].detail), (i * 11) % TRACE_DETAIL_MAX);
    }
    free(evs);
    /* Short events again: the count is the bound once more. */
    emit_n(t, TR_RECEIVED, QID, 3 * RING);
    assert_int_equal(trace_dump(t, NULL, &evs), RING);
    assert_int_equal(evs[RING - 1].seq, N + 3 * RING);
    assert_int_equal(evs[0].count, 2 * RING);
    free(evs);
    trace_get_info(t, &info);
    assert_int_equal(info.in_ring, RING);
    trace_free(t);
}

static void test_line_form_refuses_what_is_not_an_event(void **state)
{
    struct trace_event ev;
    const char *why;
    static const char *const bad[] = {
        "type=nonsense ts=1 seq=1",
        "type=received ts=1",                          /* no seq */
        "type=received ts=1 seq=1 qid=XYZ",
        "type=received ts=1 seq=1 peer=70000",
        "type=received ts=1 seq=1 ttl=99999999999999999999999",
        "type=received ts=01 seq=1",
        "type=received ts=1 seq=1 name=a%zz",
        "type=received ts=1 seq=1 from=nohostport",
        "type=received ts=1 seq=1 noequals",
    };

    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        why = NULL;
        assert_int_equal(trace_decode(bad[i], strlen(bad[i]), &ev, &why), FS_EPROTO);
        assert_non_null(why);
    }
    const char ok[] = "type=received ts=5 seq=0 future_key=whatever";
    assert_int_equal(trace_decode(ok, strlen(ok), &ev, NULL), FS_OK);
    assert_int_equal(ev.type, TR_RECEIVED);
}

static void test_json_has_the_fields_of_its_type_only(void **state)
{
    struct trace_event ev;
    char out[4096];

    (void)state;
    full_event(&ev);
    ev.type = TR_RECEIVED;
    assert_true(trace_format_json(&ev, out, sizeof out) > 0);
    assert_non_null(strstr(out, "\"type\":\"received\""));
    assert_non_null(strstr(out, "\"ts_us\":1718000000123456"));
    assert_non_null(strstr(out, "\"peer\":3"));
    assert_non_null(strstr(out, "\"qid\":\"4d782a6673987d51\""));
    assert_non_null(strstr(out, "\"from\":\"127.0.0.1:10813\",\"from_peer\":4"));
    assert_non_null(strstr(out, "\"ttl\":2,\"hops\":3"));
    assert_non_null(strstr(out, "\"name\":\"my file %=\\\"x\\\".txt\""));
    assert_null(strstr(out, "\"to\""));
    assert_null(strstr(out, "\"bytes\""));
    trace_init_event(&ev, TR_PEER_DOWN, NULL);
    trace_set(ev.reason, sizeof ev.reason, "SIGTERM");
    assert_true(trace_format_json(&ev, out, sizeof out) > 0);
    assert_non_null(strstr(out, "\"qid\":null"));
    assert_non_null(strstr(out, "\"reason\":\"SIGTERM\""));
    assert_int_equal(trace_format_json(&ev, out, 10), -1);
}

/* A source's share: source_bytes and count on transfer events when set,
 * absent when not (a one-holder requester); piece_received always says
 * which piece, index 0 included. */
static void test_json_of_transfers_names_the_source_share(void **state)
{
    struct trace_event ev;
    char out[4096];

    (void)state;
    full_event(&ev);
    ev.type = TR_TRANSFER_DONE;
    ev.count = 215;
    ev.source_bytes = 112721920;
    assert_true(trace_format_json(&ev, out, sizeof out) > 0);
    assert_non_null(strstr(out, "\"source_bytes\":112721920"));
    assert_non_null(strstr(out, "\"count\":215"));
    ev.count = 0;
    ev.source_bytes = 0;
    assert_true(trace_format_json(&ev, out, sizeof out) > 0);
    assert_null(strstr(out, "source_bytes"));
    assert_null(strstr(out, "\"count\""));
    trace_init_event(&ev, TR_PIECE_RECEIVED, QID);
    ev.role = TR_ROLE_REQUESTER;
    ev.holder = 5;
    ev.from = (struct fs_addr){"127.0.0.1", 10815};
    ev.bytes = 524288;
    trace_set(ev.name, sizeof ev.name, "big.iso");
    assert_true(trace_format_json(&ev, out, sizeof out) > 0);
    assert_non_null(strstr(out, "\"type\":\"piece_received\""));
    assert_non_null(strstr(out, "\"holder\":5"));
    assert_non_null(strstr(out, "\"count\":0"));
    assert_non_null(strstr(out, "\"bytes\":524288"));
    assert_null(strstr(out, "\"ttl\""));
    assert_true(trace_format_text(&ev, NULL, NULL, 0, out, sizeof out) > 0);
    assert_non_null(strstr(out, "piece 0 of \"big.iso\" (524288 bytes) from peer 5"));
}

/* piece_received is live only, like transfer_progress: a watcher gets
 * it, the ring never keeps it (2048 per GiB would push queries out). */
static void test_piece_received_is_streamed_but_never_kept(void **state)
{
    struct trace *t = trace_new(16, 1, &SELF);
    struct trace_event *evs, ev;

    (void)state;
    emit_n(t, TR_PIECE_RECEIVED, QID, 5);
    struct trace_sub *s = trace_subscribe(t);
    emit_n(t, TR_PIECE_RECEIVED, QID, 3);
    emit_n(t, TR_RECEIVED, QID, 1);
    size_t n = trace_dump(t, NULL, &evs);
    assert_int_equal(n, 1);
    assert_int_equal(evs[0].type, TR_RECEIVED);
    free(evs);
    for (unsigned i = 0; i < 3; i++) {
        assert_int_equal(trace_next(t, s, 0, &ev), 1);
        assert_int_equal(ev.type, TR_PIECE_RECEIVED);
        assert_int_equal(ev.count, i);
    }
    trace_unsubscribe(t, s);
    trace_free(t);
}

static unsigned resolve_two(void *ctx, const struct fs_addr *a)
{
    (void)ctx;
    return a->port == 10813 ? 1 : 0;
}

static void test_text_names_hops_by_peer_id_when_it_can(void **state)
{
    struct trace_event ev;
    char out[1024];

    (void)state;
    trace_init_event(&ev, TR_RECEIVED, QID);
    ev.peer = 2;
    trace_set(ev.name, sizeof ev.name, "3.txt");
    ev.from = (struct fs_addr){"127.0.0.1", 10813};
    ev.ttl = 3;
    ev.hops = 1;
    assert_true(trace_format_text(&ev, resolve_two, NULL, 0, out, sizeof out) > 0);
    /* hop 2: the copy peer 1 forwarded with hops 1 travels the second hop, as trace says */
    assert_non_null(strstr(out, " peer 2   q4d78  received \"3.txt\" from peer 1 (ttl 3, hop 2)"));
    assert_int_equal(out[2], ':');
    assert_true(trace_format_text(&ev, NULL, NULL, 0, out, sizeof out) > 0);
    assert_non_null(strstr(out, "from 127.0.0.1:10813"));
    assert_true(trace_format_text(&ev, NULL, NULL, 1, out, sizeof out) > 0);
    assert_non_null(strstr(out, "\033["));
    /* a control byte from the wire is escaped */
    trace_set(ev.name, sizeof ev.name, "a\033[2Jb");
    assert_true(trace_format_text(&ev, NULL, NULL, 0, out, sizeof out) > 0);
    assert_null(strchr(out, '\033'));
}

static void test_holder_finds_the_query_of_a_request_by_md5_or_folder(void **state)
{
    struct trace *t = trace_new(16, 4, &SELF);
    struct trace_event ev, hit;

    (void)state;
    trace_init_event(&ev, TR_FOUND_SENT, QID);
    trace_set(ev.name, sizeof ev.name, "docs");
    trace_set(ev.md5, sizeof ev.md5, "6f5902ac237024bdd0c176cb93063dc4");
    ev.origin = (struct fs_addr){"127.0.0.1", 10811};
    trace_emit(t, &ev);
    emit_n(t, TR_RECEIVED, "1111111111111111", 3);
    assert_int_equal(trace_find_hit(t, "6f5902ac237024bdd0c176cb93063dc4", "x", &hit), 1);
    assert_string_equal(hit.qid, QID);
    assert_int_equal(hit.origin.port, 10811);
    assert_int_equal(trace_find_hit(t, "00000000000000000000000000000000", "docs/a/b.txt", &hit),
                     1);
    assert_int_equal(trace_find_hit(t, "00000000000000000000000000000000", "docsx/b.txt", &hit),
                     0);
    trace_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ring_keeps_the_last_n_events_oldest_first),
        cmocka_unit_test(test_dump_filters_by_query_id_prefix),
        cmocka_unit_test(test_nobody_listening_means_nothing_is_formatted),
        cmocka_unit_test(test_slow_watcher_loses_newest_events_and_is_told_how_many),
        cmocka_unit_test(test_a_loss_is_reported_where_it_happened),
        cmocka_unit_test(test_subscribers_are_bounded_and_unsubscribing_frees_the_slot),
        cmocka_unit_test(test_next_times_out_when_nothing_happens),
        cmocka_unit_test(test_concurrent_emitters_and_a_reader_account_for_every_event),
        cmocka_unit_test(test_line_form_round_trips_every_field),
        cmocka_unit_test(test_line_form_carries_ipv6_addresses),
        cmocka_unit_test(test_ring_gives_back_every_field_as_emitted),
        cmocka_unit_test(test_ring_of_long_events_keeps_the_newest_that_fit),
        cmocka_unit_test(test_line_form_refuses_what_is_not_an_event),
        cmocka_unit_test(test_json_has_the_fields_of_its_type_only),
        cmocka_unit_test(test_json_of_transfers_names_the_source_share),
        cmocka_unit_test(test_piece_received_is_streamed_but_never_kept),
        cmocka_unit_test(test_text_names_hops_by_peer_id_when_it_can),
        cmocka_unit_test(test_holder_finds_the_query_of_a_request_by_md5_or_folder),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
