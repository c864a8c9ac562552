/* test_tracegraph.c - a flood reconstructed from a hand-written event list, and its DOT. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "floodshare/tracegraph.h"

/* A square 1-2-4-3-1: peer 1 asks for "4.txt" (ttl 3), peer 4 has it.
 * 1 sends to 2 and 3; both forward to 4; 4 handles 2's copy first and
 * drops 3's as a duplicate, forwards to 3 (ttl 1), where it is a
 * duplicate too. 4's FOUND goes back 4 -> 2 -> 1; 1 downloads from 4. */
#define Q "4d782a6673987d51"
#define MD5 "6f5902ac237024bdd0c176cb93063dc4"

static const struct tg_peer PEERS[] = {
    {1, {"127.0.0.1", 10001}}, {2, {"127.0.0.1", 10002}},
    {3, {"127.0.0.1", 10003}}, {4, {"127.0.0.1", 10004}},
};
static const struct tg_link LINKS[] = {{1, 2}, {1, 3}, {2, 4}, {3, 4}};
static const struct tg_topology TOPO = {PEERS, 4, LINKS, 4};

static struct trace_event evs[64];
static size_t n_evs;

static struct fs_addr A(unsigned id)
{
    return PEERS[id - 1].addr;
}

static struct trace_event *ev(uint64_t t, unsigned peer, enum trace_type type)
{
    struct trace_event *e = &evs[n_evs++];

    trace_init_event(e, type, Q);
    e->ts_us = 1000000 + t;
    e->seq = n_evs;
    e->peer = peer;
    e->addr = A(peer);
    trace_set(e->name, sizeof e->name, "4.txt");
    return e;
}

static void get(uint64_t t, unsigned peer, enum trace_type type, unsigned from, unsigned ttl,
                unsigned hops)
{
    struct trace_event *e = ev(t, peer, type);
    e->from = A(from);
    e->origin = A(1);
    e->ttl = ttl;
    e->hops = hops;
}

static void fwd(uint64_t t, unsigned peer, unsigned to, unsigned ttl, unsigned hops)
{
    struct trace_event *e = ev(t, peer, TR_FORWARDED);
    e->to = A(to);
    e->ttl = ttl;
    e->hops = hops;
}

static void found(uint64_t t, unsigned peer, enum trace_type type, unsigned from, unsigned to)
{
    struct trace_event *e = ev(t, peer, type);
    if (from)
        e->from = A(from);
    if (to)
        e->to = A(to);
    e->holder = 4;
    e->hops = 2;
    e->size = 193;
    trace_set(e->md5, sizeof e->md5, MD5);
}

static void xfer(uint64_t t, unsigned peer, enum trace_type type, enum trace_role role,
                 uint64_t bytes)
{
    struct trace_event *e = ev(t, peer, type);
    e->role = role;
    e->holder = 4;
    e->size = 193;
    e->bytes = bytes;
    trace_set(e->md5, sizeof e->md5, MD5);
}

static void square(void)
{
    n_evs = 0;
    struct trace_event *s = ev(0, 1, TR_QUERY_STARTED);
    s->ttl = 3;
    s->count = 2;
    fwd(1, 1, 2, 3, 0);
    fwd(2, 1, 3, 3, 0);
    get(10, 2, TR_RECEIVED, 1, 3, 0);
    fwd(11, 2, 4, 2, 1);
    get(12, 3, TR_RECEIVED, 1, 3, 0);
    fwd(13, 3, 4, 2, 1);
    get(20, 4, TR_RECEIVED, 2, 2, 1);
    fwd(21, 4, 3, 1, 2);
    get(22, 4, TR_DUPLICATE, 3, 2, 1);
    get(23, 3, TR_DUPLICATE, 4, 1, 2);
    ev(24, 4, TR_SEARCHED)->count = 1;
    found(25, 4, TR_FOUND_SENT, 0, 2);
    found(30, 2, TR_FOUND_RELAYED, 4, 1);
    found(40, 1, TR_FOUND_RECEIVED, 2, 0);
    xfer(50, 1, TR_TRANSFER_STARTED, TR_ROLE_REQUESTER, 0);
    xfer(55, 4, TR_TRANSFER_STARTED, TR_ROLE_HOLDER, 0);
    xfer(60, 4, TR_TRANSFER_DONE, TR_ROLE_HOLDER, 193);
    xfer(70, 1, TR_TRANSFER_DONE, TR_ROLE_REQUESTER, 193);
    /* another query's event, which must be ignored */
    struct trace_event *other = ev(15, 3, TR_RECEIVED);
    trace_set(other->qid, sizeof other->qid, "ffffffffffffffff");
    other->from = A(4);
}

static const struct tg_edge *edge(const struct tracegraph *g, unsigned from, unsigned to,
                                  enum tg_edge_kind k)
{
    for (size_t i = 0; i < g->n_edges; i++)
        if (g->edges[i].from == from && g->edges[i].to == to && g->edges[i].kind == k)
            return &g->edges[i];
    return NULL;
}

static void check_square(const struct tracegraph *g)
{
    assert_string_equal(g->qid, Q);
    assert_string_equal(g->name, "4.txt");
    assert_int_equal(g->origin, 1);
    assert_int_equal(g->ttl, 3);
    assert_int_equal(g->n_nodes, 4);
    /* the tree: who got it from whom, at which hop */
    const struct tg_node *n1 = tracegraph_node(g, 1), *n2 = tracegraph_node(g, 2),
                         *n3 = tracegraph_node(g, 3), *n4 = tracegraph_node(g, 4);
    assert_true(n1 && n2 && n3 && n4);
    assert_true(n1->origin && !n1->holder && n1->hop == 0);
    assert_int_equal(n2->parent, 1);
    assert_int_equal(n2->hop, 1);
    assert_int_equal(n3->parent, 1);
    assert_int_equal(n3->hop, 1);
    assert_int_equal(n4->parent, 2);
    assert_int_equal(n4->hop, 2);
    assert_true(n4->holder);
    assert_int_equal(n4->hits, 1);
    assert_non_null(edge(g, 1, 2, TG_TREE));
    assert_non_null(edge(g, 1, 3, TG_TREE));
    assert_non_null(edge(g, 2, 4, TG_TREE));
    assert_null(edge(g, 3, 4, TG_TREE));
    /* duplicates: 3's copy at 4 (hop 2), 4's copy at 3 (hop 3) */
    assert_int_equal(edge(g, 3, 4, TG_DUPLICATE)->hop, 2);
    assert_int_equal(edge(g, 4, 3, TG_DUPLICATE)->hop, 3);
    assert_int_equal(n4->dups_in, 1);
    assert_int_equal(n3->dups_in, 1);
    /* the reverse path: 4 -> 2 -> 1, over the tree links 1-2 and 2-4 */
    assert_int_equal(g->n_hits, 1);
    assert_int_equal(g->hits[0].n_path, 3);
    assert_int_equal(g->hits[0].path[0], 4);
    assert_int_equal(g->hits[0].path[1], 2);
    assert_int_equal(g->hits[0].path[2], 1);
    assert_true(g->hits[0].arrived);
    assert_true(edge(g, 1, 2, TG_TREE)->reverse);
    assert_true(edge(g, 2, 4, TG_TREE)->reverse);
    assert_false(edge(g, 1, 3, TG_TREE)->reverse);
    /* the transfer */
    assert_int_equal(g->n_xfers, 1);
    assert_int_equal(g->xfers[0].requester, 1);
    assert_int_equal(g->xfers[0].holder, 4);
    assert_true(g->xfers[0].done && g->xfers[0].holder_seen);
    assert_int_equal(g->xfers[0].bytes, 193);
    assert_int_equal(g->xfers[0].end_us - g->xfers[0].start_us, 20);
    assert_non_null(edge(g, 4, 1, TG_TRANSFER));
    /* the counts: 5 GETs; 4 links among 4 peers: bound 8; flooding sends
     * 2 (origin) + 1 + 1 + 1 (4 had ttl 2 left) = 5 */
    assert_int_equal(g->counts.gets_sent, 5);
    assert_int_equal(g->counts.links_reached, 4);
    assert_int_equal(g->counts.get_bound, 8);
    assert_int_equal(g->counts.gets_expected, 5);
    assert_int_equal(g->counts.received, 3);
    assert_int_equal(g->counts.duplicates, 2);
    assert_int_equal(g->counts.founds_sent, 1);
    assert_int_equal(g->counts.founds_relayed, 1);
    assert_int_equal(g->counts.founds_received, 1);
    assert_int_equal(g->unknown_hops, 0);
}

static void test_square_flood_is_reconstructed(void **state)
{
    struct tracegraph g;

    (void)state;
    square();
    assert_int_equal(tracegraph_build(evs, n_evs, &TOPO, &g), FS_OK);
    check_square(&g);
    tracegraph_free(&g);
}

static void test_order_of_the_collected_events_does_not_matter(void **state)
{
    struct tracegraph g;

    (void)state;
    square();
    /* reversed, as if the peers' rings were read in another order */
    for (size_t i = 0, k = n_evs - 1; i < k; i++, k--) {
        struct trace_event t = evs[i];
        evs[i] = evs[k];
        evs[k] = t;
    }
    /* the first event is now another query's: the prefix given picks it,
     * so drop it as `trace` does after checking there is one query */
    assert_int_equal(tracegraph_build(evs + 1, n_evs - 1, &TOPO, &g), FS_OK);
    check_square(&g);
    tracegraph_free(&g);
}

static void test_without_topology_ids_come_from_the_emitters_and_the_bound_is_unknown(void **st)
{
    struct tracegraph g;

    (void)st;
    square();
    assert_int_equal(tracegraph_build(evs, n_evs, NULL, &g), FS_OK);
    assert_int_equal(g.n_nodes, 4);
    assert_int_equal(tracegraph_node(&g, 4)->parent, 2);
    assert_false(g.topology_known);
    assert_int_equal(g.counts.get_bound, 0);
    tracegraph_free(&g);
}

static void test_a_found_dropped_on_the_way_ends_its_path_with_the_reason(void **state)
{
    struct tracegraph g;

    (void)state;
    square();
    struct trace_event *relay = NULL;
    for (size_t i = 0; i < n_evs; i++)
        if (evs[i].type == TR_FOUND_RELAYED)
            relay = &evs[i];
    relay->type = TR_FOUND_DROPPED;
    trace_set(relay->reason, sizeof relay->reason, "route_lost");
    relay->to.port = 0;
    assert_int_equal(tracegraph_build(evs, n_evs, &TOPO, &g), FS_OK);
    assert_int_equal(g.hits[0].n_path, 2);
    assert_false(g.hits[0].arrived);
    assert_string_equal(g.hits[0].dropped, "route_lost");
    assert_int_equal(g.counts.founds_dropped, 1);
    tracegraph_free(&g);
}

static void test_events_of_no_query_give_not_found(void **state)
{
    struct tracegraph g;
    struct trace_event up;

    (void)state;
    trace_init_event(&up, TR_PEER_UP, NULL);
    assert_int_equal(tracegraph_build(&up, 1, &TOPO, &g), FS_ENOTFOUND);
}

/* noinline: GCC 12 takes the memstream pointer for a dangling local. */
__attribute__((noinline)) static char *dot_of(const struct tracegraph *g)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);

    assert_non_null(f);
    assert_int_equal(tracegraph_dot(g, f), 0);
    fclose(f);
    return text;
}

/* The line of DOT statement `head` ("p1 -> p2 [" or "p4 ["), NUL-cut. */
static char *dot_line(char *text, const char *head, char *out, size_t cap)
{
    char *at = strstr(text, head);
    if (!at)
        return NULL;
    size_t n = strcspn(at, "\n");
    snprintf(out, cap, "%.*s", (int)n, at);
    return out;
}

/* ring:5 from peer 1, ttl 5, where the long way round wins at 2: 1-5-4-3-2
 * brings ttl 2 before 1's own copy brings 5. 2 forwards that copy again
 * with ttl 4, to 3 (which sent only 2: it handled 3) but not to 1; 3 then
 * takes it as more ttl too, and forwards it again to nobody: 2 sent 4, and
 * 4 sent 3, so both handled the query with at least the 3 it would send. */
static const struct tg_peer RING5[] = {
    {1, {"127.0.0.1", 10001}}, {2, {"127.0.0.1", 10002}}, {3, {"127.0.0.1", 10003}},
    {4, {"127.0.0.1", 10004}}, {5, {"127.0.0.1", 10005}},
};
static const struct tg_link RING5_LINKS[] = {{1, 2}, {2, 3}, {3, 4}, {4, 5}, {5, 1}};

static struct trace_event *ring_ev(uint64_t t, unsigned peer, enum trace_type type,
                                   unsigned other, unsigned ttl)
{
    struct trace_event *e = &evs[n_evs++];

    trace_init_event(e, type, Q);
    e->ts_us = 1000000 + t;
    e->seq = n_evs;
    e->peer = peer;
    e->addr = RING5[peer - 1].addr;
    e->ttl = ttl;
    if (type == TR_FORWARDED)
        e->to = RING5[other - 1].addr;
    else if (other)
        e->from = RING5[other - 1].addr;
    return e;
}

static void test_expected_gets_spare_neighbours_that_sent_as_much_ttl(void **state)
{
    struct tg_topology topo = {RING5, 5, RING5_LINKS, 5};
    struct tracegraph g;

    (void)state;
    n_evs = 0;
    ring_ev(0, 1, TR_QUERY_STARTED, 0, 5);
    ring_ev(1, 1, TR_FORWARDED, 2, 5);
    ring_ev(2, 1, TR_FORWARDED, 5, 5);
    ring_ev(10, 5, TR_RECEIVED, 1, 5);
    ring_ev(11, 5, TR_FORWARDED, 4, 4);
    ring_ev(20, 4, TR_RECEIVED, 5, 4);
    ring_ev(21, 4, TR_FORWARDED, 3, 3);
    ring_ev(30, 3, TR_RECEIVED, 4, 3);
    ring_ev(31, 3, TR_FORWARDED, 2, 2);
    ring_ev(40, 2, TR_RECEIVED, 3, 2);
    ring_ev(41, 2, TR_FORWARDED, 1, 1);
    struct trace_event *e = ring_ev(50, 2, TR_DUPLICATE, 1, 5);
    trace_set(e->reason, sizeof e->reason, "more_ttl");
    ring_ev(51, 2, TR_FORWARDED, 3, 4);
    ring_ev(55, 1, TR_DUPLICATE, 2, 1);
    e = ring_ev(60, 3, TR_DUPLICATE, 2, 4);
    trace_set(e->reason, sizeof e->reason, "more_ttl");
    assert_int_equal(tracegraph_build(evs, n_evs, &topo, &g), FS_OK);
    /* 2 (origin) + 1 + 1 + 1 + 1 (first copies) + 1 (2 again) + 0 (3 again) */
    assert_int_equal(g.counts.gets_sent, 7);
    assert_int_equal(g.counts.reforwarded, 2);
    assert_int_equal(g.counts.gets_expected, 7);
    tracegraph_free(&g);
}

static void test_dot_marks_roles_hops_duplicates_and_the_reverse_path(void **state)
{
    struct tracegraph g;
    char line[512];

    (void)state;
    square();
    trace_set(evs[0].name, sizeof evs[0].name, "a<b>&\"c\".txt");
    assert_int_equal(tracegraph_build(evs, n_evs, &TOPO, &g), FS_OK);
    char *dot = dot_of(&g);
    assert_true(strncmp(dot, "digraph ", 8) == 0);
    /* exactly one node per reached peer, labelled with its id */
    size_t nodes = 0;
    for (char *p = dot; (p = strstr(p, "[label=\"peer ")) != NULL; p++)
        nodes++;
    assert_int_equal(nodes, 4);
    assert_non_null(strstr(dot_line(dot, "  p1 [", line, sizeof line), "doublecircle"));
    assert_non_null(strstr(dot_line(dot, "  p4 [", line, sizeof line), "shape=box"));
    assert_null(strstr(dot_line(dot, "  p2 [", line, sizeof line), "shape="));
    /* hop colours (Okabe-Ito): hop 1 blue, hop 2 orange; the path bold */
    dot_line(dot, "p1 -> p2 [", line, sizeof line);
    assert_non_null(strstr(line, "#0072B2"));
    assert_non_null(strstr(line, "bold"));
    dot_line(dot, "p2 -> p4 [", line, sizeof line);
    assert_non_null(strstr(line, "#E69F00"));
    assert_non_null(strstr(line, "bold"));
    dot_line(dot, "p1 -> p3 [", line, sizeof line);
    assert_null(strstr(line, "bold"));
    assert_null(strstr(line, "dashed"));
    /* duplicates dashed */
    assert_non_null(strstr(dot_line(dot, "p3 -> p4 [", line, sizeof line), "dashed"));
    assert_non_null(strstr(dot_line(dot, "p4 -> p3 [", line, sizeof line), "dashed"));
    /* the transfer, and a legend that escapes the name */
    assert_non_null(strstr(dot_line(dot, "p4 -> p1 [", line, sizeof line), "dotted"));
    assert_non_null(strstr(dot, "a&lt;b&gt;&amp;&quot;c&quot;.txt"));
    assert_null(strstr(dot, "a<b>"));
    free(dot);
    tracegraph_free(&g);
}

static void test_text_report_tells_the_story(void **state)
{
    struct tracegraph g;
    char *text = NULL;
    size_t len = 0;

    (void)state;
    square();
    assert_int_equal(tracegraph_build(evs, n_evs, &TOPO, &g), FS_OK);
    FILE *f = open_memstream(&text, &len);
    assert_int_equal(tracegraph_text(&g, f), 0);
    fclose(f);
    assert_non_null(strstr(text, "started by peer 1"));
    assert_non_null(strstr(text, "`- peer 4    hop 2"));
    assert_non_null(strstr(text, "peer 4 dropped the copy from peer 3 (hop 2): duplicate"));
    assert_non_null(strstr(text, "peer 4 -> peer 2 -> peer 1  (arrived)"));
    assert_non_null(strstr(text, "peer 1 <- peer 4 \"4.txt\": 193 of 193 bytes"));
    assert_non_null(strstr(text, "GET    5 sent"));
    assert_non_null(strstr(text, "2 x 4 links among the 4 reached peers = 8"));
    free(text);
    tracegraph_free(&g);
}

/* A swarmed get: one transfer edge per source (holder, md5), each
 * labelled with what that source delivered, the labels adding up to the
 * item; a one-holder transfer keeps its position as the label. */
static void test_a_swarm_draws_one_edge_per_source_with_its_share(void **state)
{
    struct tracegraph g;
    char *dot = NULL, *text = NULL, line[512];
    size_t len = 0;

    (void)state;
    square();
    for (size_t i = 0; i < n_evs; i++)
        if (evs[i].peer == 1 && evs[i].type == TR_TRANSFER_DONE) {
            evs[i].source_bytes = 100;
            evs[i].count = 2;
        }
    /* peer 2 holds the item too, and sent the other 93 bytes */
    struct trace_event *s = ev(52, 1, TR_TRANSFER_STARTED);
    s->role = TR_ROLE_REQUESTER;
    s->holder = 2;
    s->size = 193;
    trace_set(s->md5, sizeof s->md5, MD5);
    struct trace_event *d = ev(68, 1, TR_TRANSFER_DONE);
    *d = *s;
    d->type = TR_TRANSFER_DONE;
    d->ts_us += 16;
    d->seq = n_evs;
    d->bytes = 193;
    d->source_bytes = 93;
    d->count = 1;
    assert_int_equal(tracegraph_build(evs, n_evs, &TOPO, &g), FS_OK);
    assert_int_equal(g.n_xfers, 2);
    assert_int_equal(edge(&g, 4, 1, TG_TRANSFER)->bytes, 100);
    assert_int_equal(edge(&g, 2, 1, TG_TRANSFER)->bytes, 93);
    assert_int_equal(g.xfers[0].pieces + g.xfers[1].pieces, 3);
    FILE *f = open_memstream(&dot, &len);
    assert_int_equal(tracegraph_dot(&g, f), 0);
    fclose(f);
    assert_non_null(strstr(dot_line(dot, "p4 -> p1 [", line, sizeof line), "transfer 100 B"));
    assert_non_null(strstr(dot_line(dot, "p2 -> p1 [", line, sizeof line), "transfer 93 B"));
    free(dot);
    f = open_memstream(&text, &len);
    tracegraph_text(&g, f);
    fclose(f);
    assert_non_null(strstr(text, "(93 bytes from this source in 1 piece)"));
    free(text);
    tracegraph_free(&g);
    /* without source_bytes the label is where the transfer got to */
    square();
    assert_int_equal(tracegraph_build(evs, n_evs, &TOPO, &g), FS_OK);
    assert_int_equal(edge(&g, 4, 1, TG_TRANSFER)->bytes, 193);
    tracegraph_free(&g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_square_flood_is_reconstructed),
        cmocka_unit_test(test_order_of_the_collected_events_does_not_matter),
        cmocka_unit_test(test_without_topology_ids_come_from_the_emitters_and_the_bound_is_unknown),
        cmocka_unit_test(test_a_found_dropped_on_the_way_ends_its_path_with_the_reason),
        cmocka_unit_test(test_events_of_no_query_give_not_found),
        cmocka_unit_test(test_expected_gets_spare_neighbours_that_sent_as_much_ttl),
        cmocka_unit_test(test_dot_marks_roles_hops_duplicates_and_the_reverse_path),
        cmocka_unit_test(test_text_report_tells_the_story),
        cmocka_unit_test(test_a_swarm_draws_one_edge_per_source_with_its_share),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
