/* tracegraph.c - reconstruct one query's flood from trace events; DOT, text, JSON. */
#include "floodshare/tracegraph.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Building state: the events of the query, sorted, and the address map. */
struct build {
    const struct tg_topology *topo;
    const struct trace_event **ev; /* the query's events, by (ts, peer, seq) */
    size_t n;
    unsigned char *used;           /* FOUND events already put on a path */
    struct tg_peer *map;           /* emitters' own addresses, then topo's */
    size_t n_map;
    struct tracegraph *g;
    size_t cap_nodes, cap_edges, cap_hits, cap_xfers;
};

static int cmp_event(const void *a, const void *b)
{
    const struct trace_event *x = *(const struct trace_event *const *)a;
    const struct trace_event *y = *(const struct trace_event *const *)b;

    if (x->ts_us != y->ts_us)
        return x->ts_us < y->ts_us ? -1 : 1;
    if (x->peer != y->peer)
        return x->peer < y->peer ? -1 : 1;
    return (x->seq > y->seq) - (x->seq < y->seq);
}

/* The peer id of an address; 0 when unknown. */
static unsigned lookup(const struct build *b, const struct fs_addr *a)
{
    if (!a->port)
        return 0;
    for (size_t i = 0; i < b->n_map; i++)
        if (addr_equal(&b->map[i].addr, a))
            return b->map[i].id;
    return 0;
}

/* lookup(), counting an address no peer id is known for. */
static unsigned resolve(struct build *b, const struct fs_addr *a)
{
    unsigned id = lookup(b, a);

    if (!id && a->port)
        b->g->unknown_hops++;
    return id;
}

/* Grows *arr (of elem-byte items, *cap of them) to hold one more. */
static int grow(void **arr, size_t *cap, size_t n, size_t elem)
{
    if (n < *cap)
        return 0;
    size_t nc = *cap ? *cap * 2 : 16;
    void *p = realloc(*arr, nc * elem);
    if (!p)
        return -1;
    *arr = p;
    *cap = nc;
    return 0;
}

static struct tg_node *find_node(struct tracegraph *g, unsigned id)
{
    for (size_t i = 0; i < g->n_nodes; i++)
        if (g->nodes[i].peer == id)
            return &g->nodes[i];
    return NULL;
}

const struct tg_node *tracegraph_node(const struct tracegraph *g, unsigned id)
{
    return find_node((struct tracegraph *)g, id);
}

/* The node of peer id, created (not yet placed) when new; NULL for id 0 or
 * out of memory. */
static struct tg_node *node(struct build *b, unsigned id)
{
    struct tracegraph *g = b->g;
    struct tg_node *n = id ? find_node(g, id) : NULL;

    if (n || !id)
        return n;
    if (grow((void **)&g->nodes, &b->cap_nodes, g->n_nodes, sizeof *g->nodes) < 0)
        return NULL;
    n = &g->nodes[g->n_nodes++];
    memset(n, 0, sizeof *n);
    n->peer = id;
    n->hop = -1;
    for (size_t i = 0; i < b->n_map; i++)
        if (b->map[i].id == id) {
            n->addr = b->map[i].addr;
            break;
        }
    return n;
}

static struct tg_edge *add_edge(struct build *b, unsigned from, unsigned to, enum tg_edge_kind k)
{
    struct tracegraph *g = b->g;

    if (grow((void **)&g->edges, &b->cap_edges, g->n_edges, sizeof *g->edges) < 0)
        return NULL;
    struct tg_edge *e = &g->edges[g->n_edges++];
    memset(e, 0, sizeof *e);
    e->from = from;
    e->to = to;
    e->kind = k;
    return e;
}

static int build_map(struct build *b)
{
    size_t cap = b->n + (b->topo ? b->topo->n_peers : 0);

    b->map = calloc(cap ? cap : 1, sizeof *b->map);
    if (!b->map)
        return -1;
    for (size_t i = 0; i < b->n; i++) {
        const struct trace_event *e = b->ev[i];
        int known = 0;
        for (size_t k = 0; k < b->n_map && !known; k++)
            known = b->map[k].id == e->peer;
        if (!known && e->peer && e->addr.port)
            b->map[b->n_map++] = (struct tg_peer){e->peer, e->addr};
    }
    for (size_t i = 0; b->topo && i < b->topo->n_peers; i++)
        b->map[b->n_map++] = b->topo->peers[i];
    return 0;
}

/* A GET copy arriving at e->peer: the tree, a duplicate or a drop. */
static int on_get(struct build *b, const struct trace_event *e)
{
    struct tg_node *to = node(b, e->peer);
    unsigned from = e->from_peer ? e->from_peer : resolve(b, &e->from);
    enum tg_edge_kind k = e->type == TR_RECEIVED ? TG_TREE
                          : e->type == TR_DUPLICATE ? TG_DUPLICATE : TG_DROPPED;

    if (!to || (from && !node(b, from)))
        return -1;
    to = find_node(b->g, e->peer); /* node() may have moved the array */
    if (k == TG_TREE && to->hop < 0) {
        to->hop = (int)e->hops + 1;
        to->parent = from;
        to->ttl_in = e->ttl;
        to->first_us = e->ts_us;
        b->g->counts.received++;
    } else if (k == TG_DUPLICATE) {
        to->dups_in++;
        b->g->counts.duplicates++;
        if (strcmp(e->reason, "more_ttl") == 0 && e->ttl > 1) { /* forwarded again */
            to->reforwards++;
            b->g->counts.reforwarded++;
        }
    } else if (k == TG_DROPPED) {
        b->g->counts.dropped++;
    }
    if (!from)
        return 0; /* an unknown sender: counted, not drawn */
    struct tg_edge *ed = add_edge(b, from, e->peer, k);
    if (!ed)
        return -1;
    ed->hop = e->hops + 1;
    ed->ts_us = e->ts_us;
    trace_set(ed->reason, sizeof ed->reason, e->reason);
    return 0;
}

static struct tg_edge *tree_edge(struct tracegraph *g, unsigned from, unsigned to)
{
    for (size_t i = 0; i < g->n_edges; i++)
        if (g->edges[i].kind == TG_TREE && g->edges[i].from == from && g->edges[i].to == to)
            return &g->edges[i];
    return NULL;
}

/* Follows the FOUND that found_sent event h sent back, peer by peer. */
static int follow_hit(struct build *b, const struct trace_event *h)
{
    struct tracegraph *g = b->g;

    if (grow((void **)&g->hits, &b->cap_hits, g->n_hits, sizeof *g->hits) < 0)
        return -1;
    struct tg_hit *hit = &g->hits[g->n_hits++];
    memset(hit, 0, sizeof *hit);
    hit->holder = h->peer;
    trace_set(hit->name, sizeof hit->name, h->name);
    trace_set(hit->md5, sizeof hit->md5, h->md5);
    hit->size = h->size;
    hit->path[hit->n_path++] = h->peer;
    unsigned cur = h->peer, next = h->to_peer ? h->to_peer : resolve(b, &h->to);
    while (next && hit->n_path < TG_MAX_PATH) {
        const struct trace_event *e = NULL;
        for (size_t i = 0; i < b->n && !e; i++) {
            const struct trace_event *c = b->ev[i];
            if (!b->used[i] && c->peer == next && c->holder == h->peer &&
                (c->type == TR_FOUND_RELAYED || c->type == TR_FOUND_RECEIVED ||
                 c->type == TR_FOUND_DROPPED) &&
                strcmp(c->name, h->name) == 0 &&
                (c->from_peer ? c->from_peer : resolve(b, &c->from)) == cur) {
                e = c;
                b->used[i] = 1;
            }
        }
        if (!e)
            break; /* the next peer did not report it */
        hit->path[hit->n_path++] = next;
        struct tg_edge *t = tree_edge(g, next, cur);
        if (t)
            t->reverse = 1;
        if (e->type == TR_FOUND_RECEIVED) {
            hit->arrived = 1;
            break;
        }
        if (e->type == TR_FOUND_DROPPED) {
            trace_set(hit->dropped, sizeof hit->dropped, e->reason);
            break;
        }
        cur = next;
        next = e->to_peer ? e->to_peer : resolve(b, &e->to);
    }
    return 0;
}

static struct tg_transfer *find_xfer(struct tracegraph *g, unsigned holder, const char *md5,
                                     int open_only)
{
    for (size_t i = g->n_xfers; i-- > 0;)
        if (g->xfers[i].holder == holder && strcmp(g->xfers[i].md5, md5) == 0 &&
            (!open_only || (!g->xfers[i].done && !g->xfers[i].failed)))
            return &g->xfers[i];
    return NULL;
}

/* Requester-side transfer events make the transfers; the holder's own
 * events only confirm them. */
static int on_transfer(struct build *b, const struct trace_event *e)
{
    struct tracegraph *g = b->g;
    struct tg_transfer *x;

    if (e->role == TR_ROLE_HOLDER) {
        x = find_xfer(g, e->peer, e->md5, 0);
        if (x)
            x->holder_seen = 1;
        return 0;
    }
    x = e->type == TR_TRANSFER_STARTED ? NULL : find_xfer(g, e->holder, e->md5, 1);
    if (!x) {
        if (grow((void **)&g->xfers, &b->cap_xfers, g->n_xfers, sizeof *g->xfers) < 0)
            return -1;
        x = &g->xfers[g->n_xfers++];
        memset(x, 0, sizeof *x);
        x->requester = e->peer;
        x->holder = e->holder;
        trace_set(x->name, sizeof x->name, e->name);
        trace_set(x->md5, sizeof x->md5, e->md5);
        x->size = e->size;
        x->start_us = e->ts_us;
        x->resumed_from = e->type == TR_TRANSFER_STARTED ? e->bytes : 0;
    }
    x->bytes = e->bytes;
    if (e->source_bytes)
        x->source_bytes = e->source_bytes;
    if (e->count)
        x->pieces = e->count;
    if (e->type == TR_TRANSFER_DONE || e->type == TR_TRANSFER_FAILED) {
        x->end_us = e->ts_us;
        x->done = e->type == TR_TRANSFER_DONE;
        x->failed = !x->done;
        trace_set(x->detail, sizeof x->detail, e->detail[0] ? e->detail : e->reason);
    }
    return 0;
}

static int cmp_node(const void *a, const void *b)
{
    const struct tg_node *x = a, *y = b;
    unsigned hx = x->hop < 0 ? 1000u : (unsigned)x->hop, hy = y->hop < 0 ? 1000u : (unsigned)y->hop;

    if (hx != hy)
        return hx < hy ? -1 : 1;
    return (x->peer > y->peer) - (x->peer < y->peer);
}

/* A copy of the query that `from` sent to `at`: the highest ttl. */
struct heard {
    unsigned at, from, ttl;
};

/* The degree of peer id, and whether neighbour m's copies at id spare it
 * a copy with ttl `send` (route_wanted: m sent send - 1 or more). */
static unsigned sends_of(const struct tg_topology *t, const struct heard *h, size_t n_h,
                         unsigned id, unsigned send)
{
    unsigned sends = 0;

    for (size_t k = 0; k < t->n_links; k++) {
        unsigned m = t->links[k].a == id ? t->links[k].b : t->links[k].b == id ? t->links[k].a : 0;
        int spared = 0;
        if (!m)
            continue;
        for (size_t i = 0; i < n_h && !spared; i++)
            spared = h[i].at == id && h[i].from == m && h[i].ttl + 1 >= send;
        sends += !spared;
    }
    return sends;
}

/* The links among reached peers, and what flooding sends over them. */
static void count_bound(struct build *b)
{
    struct tracegraph *g = b->g;
    struct heard *h = NULL;
    size_t n_h = 0, cap_h = 0;

    if (!b->topo || b->topo->n_links == 0)
        return;
    g->topology_known = 1;
    for (size_t i = 0; i < b->topo->n_links; i++) {
        const struct tg_link *l = &b->topo->links[i];
        if (find_node(g, l->a) && find_node(g, l->b))
            g->counts.links_reached++;
    }
    g->counts.get_bound = 2 * g->counts.links_reached;
    /* The forwarding rule, replayed over the events in order: the origin
     * sends to every neighbour; a peer that handles a copy with ttl > 1
     * (its first, or a later one with more ttl left) sends ttl - 1 to every
     * neighbour that has not itself sent it a copy with ttl - 2 or more,
     * which for a first copy is every neighbour but the sender. Copies
     * dropped as duplicates count as sent; copies dropped otherwise do not
     * (route.c). */
    for (size_t i = 0; i < b->n; i++) {
        const struct trace_event *e = b->ev[i];
        if (e->type == TR_QUERY_STARTED) {
            g->counts.gets_expected += sends_of(b->topo, NULL, 0, e->peer, 0);
            continue;
        }
        if (e->type != TR_RECEIVED && e->type != TR_DUPLICATE)
            continue;
        unsigned from = e->from_peer ? e->from_peer : lookup(b, &e->from);
        struct heard *k = NULL;
        for (size_t j = 0; j < n_h && !k && from; j++)
            if (h[j].at == e->peer && h[j].from == from)
                k = &h[j];
        if (!k && from && grow((void **)&h, &cap_h, n_h, sizeof *h) == 0) {
            k = &h[n_h++];
            *k = (struct heard){e->peer, from, 0};
        }
        if (k && e->ttl > k->ttl)
            k->ttl = e->ttl;
        int handled = e->type == TR_RECEIVED || strcmp(e->reason, "more_ttl") == 0;
        if (!handled || e->ttl <= 1)
            continue;
        unsigned sends = sends_of(b->topo, h, n_h, e->peer, e->ttl - 1);
        if (!k && sends > 0) /* its sender is not known, but is a neighbour all the same */
            sends--;
        g->counts.gets_expected += sends;
    }
    free(h);
}

static int walk(struct build *b)
{
    struct tracegraph *g = b->g;

    for (size_t i = 0; i < b->n; i++) {
        const struct trace_event *e = b->ev[i];
        struct tg_node *n;
        switch (e->type) {
        case TR_QUERY_STARTED:
            if (!(n = node(b, e->peer)))
                return -1;
            n->origin = 1;
            n->hop = 0;
            n->first_us = e->ts_us;
            g->origin = e->peer;
            g->ttl = e->ttl;
            g->start_us = e->ts_us;
            trace_set(g->name, sizeof g->name, e->name);
            break;
        case TR_RECEIVED:
        case TR_DUPLICATE:
        case TR_DROPPED:
            if (!g->name[0])
                trace_set(g->name, sizeof g->name, e->name);
            if (on_get(b, e) < 0)
                return -1;
            break;
        case TR_FORWARDED:
            g->counts.gets_sent++;
            if ((n = find_node(g, e->peer)) != NULL)
                n->gets_out++;
            break;
        case TR_SEND_FAILED:
            if (strcmp(e->msg, "GET") == 0) {
                g->counts.gets_failed++;
                g->counts.gets_sent -= g->counts.gets_sent > 0;
                if ((n = find_node(g, e->peer)) != NULL && n->gets_out)
                    n->gets_out--;
            }
            break;
        case TR_SEARCHED:
            if ((n = find_node(g, e->peer)) != NULL) {
                n->searched = 1;
                n->hits = e->count;
            }
            break;
        case TR_FOUND_SENT:
            g->counts.founds_sent++;
            if ((n = node(b, e->peer)) != NULL)
                n->holder = 1;
            break;
        case TR_FOUND_RELAYED: g->counts.founds_relayed++; break;
        case TR_FOUND_RECEIVED: g->counts.founds_received++; break;
        case TR_FOUND_DROPPED: g->counts.founds_dropped++; break;
        case TR_TRANSFER_STARTED:
        case TR_TRANSFER_DONE:
        case TR_TRANSFER_FAILED:
            if (on_transfer(b, e) < 0)
                return -1;
            break;
        default: break;
        }
    }
    /* Hits last: every relay's event is known by then. */
    for (size_t i = 0; i < b->n; i++)
        if (b->ev[i]->type == TR_FOUND_SENT && follow_hit(b, b->ev[i]) < 0)
            return -1;
    for (size_t i = 0; i < g->n_xfers; i++) {
        struct tg_transfer *x = &g->xfers[i];
        if (!node(b, x->holder) || !node(b, x->requester))
            return -1;
        struct tg_edge *e = add_edge(b, x->holder, x->requester, TG_TRANSFER);
        if (!e)
            return -1;
        /* A source's own share when its events carry it (a swarmed get:
         * the edges of the sources then add up to the item). */
        e->bytes = x->source_bytes ? x->source_bytes : x->bytes;
        e->ts_us = x->start_us;
    }
    count_bound(b);
    if (g->n_nodes)
        qsort(g->nodes, g->n_nodes, sizeof *g->nodes, cmp_node);
    return 0;
}

fs_status tracegraph_build(const struct trace_event *evs, size_t n, const struct tg_topology *topo,
                           struct tracegraph *g)
{
    struct build b = {.topo = topo, .g = g};
    fs_status st = FS_ENOMEM;
    const char *qid = NULL;

    memset(g, 0, sizeof *g);
    for (size_t i = 0; i < n && !qid; i++)
        if (evs[i].qid[0])
            qid = evs[i].qid;
    if (!qid)
        return FS_ENOTFOUND;
    trace_set(g->qid, sizeof g->qid, qid);
    b.ev = calloc(n, sizeof *b.ev);
    b.used = calloc(n, 1);
    if (!b.ev || !b.used)
        goto out;
    for (size_t i = 0; i < n; i++)
        if (strcmp(evs[i].qid, g->qid) == 0)
            b.ev[b.n++] = &evs[i];
    qsort(b.ev, b.n, sizeof *b.ev, cmp_event);
    if (build_map(&b) < 0 || walk(&b) < 0)
        goto out;
    st = FS_OK;
out:
    free(b.ev);
    free(b.used);
    free(b.map);
    if (st)
        tracegraph_free(g);
    return st;
}

void tracegraph_free(struct tracegraph *g)
{
    free(g->nodes);
    free(g->edges);
    free(g->hits);
    free(g->xfers);
    g->nodes = NULL;
    g->edges = NULL;
    g->hits = NULL;
    g->xfers = NULL;
    g->n_nodes = g->n_edges = g->n_hits = g->n_xfers = 0;
}

/* --- DOT --- */

/* Okabe & Ito's colour-blind-safe palette, by hop; yellow is left for the
 * requester's fill, bluish green for the holders'. */
static const char *const hop_colors[] = {"#0072B2", "#E69F00", "#D55E00", "#56B4E9", "#CC79A7",
                                         "#000000"};
#define N_HOP_COLORS (sizeof hop_colors / sizeof hop_colors[0])
#define REQUESTER_FILL "#F0E442"
#define HOLDER_FILL "#009E73"

static const char *hop_color(unsigned hop)
{
    return hop_colors[(hop ? hop - 1 : 0) % N_HOP_COLORS];
}

/* Writes s for an HTML-like label (names come from the wire). */
static void html_escape(FILE *out, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", out); break;
        case '<': fputs("&lt;", out); break;
        case '>': fputs("&gt;", out); break;
        case '"': fputs("&quot;", out); break;
        default:
            if ((unsigned char)*s < 0x20)
                fputc('?', out);
            else
                fputc(*s, out);
        }
    }
}

static unsigned max_hop(const struct tracegraph *g)
{
    unsigned m = 0;
    for (size_t i = 0; i < g->n_edges; i++)
        if (g->edges[i].kind != TG_TRANSFER && g->edges[i].hop > m)
            m = g->edges[i].hop;
    return m;
}

static void dot_legend(const struct tracegraph *g, FILE *out)
{
    unsigned hops = max_hop(g);

    fputs("  graph [labelloc=b, labeljust=l, label=<<table border=\"0\" cellborder=\"1\" "
          "cellspacing=\"0\" cellpadding=\"4\">\n", out);
    fprintf(out, "    <tr><td colspan=\"2\"><b>query %s \"", g->qid);
    html_escape(out, g->name);
    fprintf(out, "\"</b> (ttl %u)</td></tr>\n", g->ttl);
    fputs("    <tr><td bgcolor=\"" REQUESTER_FILL "\">double circle</td><td align=\"left\">"
          "requester (started the query)</td></tr>\n", out);
    fputs("    <tr><td bgcolor=\"" HOLDER_FILL "\"><font color=\"white\">box</font></td>"
          "<td align=\"left\">holder (answered with FOUND)</td></tr>\n", out);
    for (unsigned h = 1; h <= hops && h <= N_HOP_COLORS; h++)
        fprintf(out, "    <tr><td><font color=\"%s\"><b>&#8212;&#8212;&#8212;</b></font></td>"
                "<td align=\"left\">GET, hop %u%s</td></tr>\n", hop_color(h), h,
                hops > N_HOP_COLORS && h == N_HOP_COLORS ? " (colours repeat)" : "");
    fputs("    <tr><td>- - - -</td><td align=\"left\">duplicate copy, dropped</td></tr>\n"
          "    <tr><td><b>&#9473;&#9473;&#9473;</b></td><td align=\"left\">reverse path: a FOUND "
          "came back over it</td></tr>\n"
          "    <tr><td>&#183; &#183; &#183; &#183;</td><td align=\"left\">transfer "
          "(holder to requester)</td></tr>\n"
          "  </table>>];\n", out);
}

static void dot_edge(const struct tg_edge *e, FILE *out)
{
    fprintf(out, "  p%u -> p%u [", e->from, e->to);
    switch (e->kind) {
    case TG_TREE:
        fprintf(out, "color=\"%s\", label=\"hop %u\"", hop_color(e->hop), e->hop);
        if (e->reverse)
            fputs(", style=bold, penwidth=3, dir=both, arrowtail=empty", out);
        break;
    case TG_DUPLICATE:
        fprintf(out, "color=\"%s\", style=dashed, label=\"hop %u dup\", constraint=false",
                hop_color(e->hop), e->hop);
        break;
    case TG_DROPPED:
        fprintf(out, "color=\"%s\", style=dashed, label=\"hop %u %s\", constraint=false",
                hop_color(e->hop), e->hop, e->reason);
        break;
    case TG_TRANSFER:
        fprintf(out, "color=\"#555555\", style=dotted, penwidth=2, constraint=false, "
                "label=\"transfer %" PRIu64 " B\"", e->bytes);
        break;
    }
    fputs("];\n", out);
}

int tracegraph_dot(const struct tracegraph *g, FILE *out)
{
    fprintf(out, "digraph \"flood %s\" {\n", g->qid);
    fputs("  node [fontname=\"Helvetica\", shape=circle, style=filled, fillcolor=\"#FFFFFF\"];\n"
          "  edge [fontname=\"Helvetica\", fontsize=10];\n", out);
    dot_legend(g, out);
    for (size_t i = 0; i < g->n_nodes; i++) {
        const struct tg_node *n = &g->nodes[i];
        fprintf(out, "  p%u [label=\"peer %u\"", n->peer, n->peer);
        if (n->origin)
            fputs(", shape=doublecircle, fillcolor=\"" REQUESTER_FILL "\"", out);
        else if (n->holder)
            fputs(", shape=box, fillcolor=\"" HOLDER_FILL "\", fontcolor=white", out);
        if (n->origin && n->holder)
            fputs(", peripheries=3", out);
        fputs("];\n", out);
    }
    for (size_t i = 0; i < g->n_edges; i++)
        dot_edge(&g->edges[i], out);
    fputs("}\n", out);
    return ferror(out) ? -1 : 0;
}

/* --- text --- */

static void clock_of(uint64_t us, char out[16])
{
    time_t s = (time_t)(us / 1000000u);
    struct tm tm;

    localtime_r(&s, &tm);
    snprintf(out, 16, "%02d:%02d:%02d.%03u", tm.tm_hour, tm.tm_min, tm.tm_sec,
             (unsigned)(us / 1000u % 1000u));
}

static double ms_since(const struct tracegraph *g, uint64_t us)
{
    return g->start_us && us >= g->start_us ? (double)(us - g->start_us) / 1000.0 : 0.0;
}

/* Prints the subtree under node id; prefix holds the branch marks so far. */
static void text_tree(const struct tracegraph *g, FILE *out, unsigned id, char *prefix,
                      size_t plen, size_t cap, int depth)
{
    size_t kids = 0, k = 0;

    if (depth > TG_MAX_PATH)
        return;
    for (size_t i = 0; i < g->n_nodes; i++)
        kids += g->nodes[i].parent == id && !g->nodes[i].origin && g->nodes[i].hop > 0;
    for (size_t i = 0; i < g->n_nodes; i++) {
        const struct tg_node *n = &g->nodes[i];
        if (n->parent != id || n->origin || n->hop <= 0)
            continue;
        int last = ++k == kids;
        fprintf(out, "  %s%s peer %-4u hop %d  +%.1f ms", prefix, last ? "`-" : "|-", n->peer,
                n->hop, ms_since(g, n->first_us));
        if (n->holder)
            fprintf(out, "  HIT (%u item%s)", n->hits, n->hits == 1 ? "" : "s");
        else if (n->searched)
            fputs("  miss", out);
        if (n->dups_in)
            fprintf(out, "  (%u duplicate%s dropped)", n->dups_in, n->dups_in == 1 ? "" : "s");
        fputc('\n', out);
        if (plen + 4 < cap) {
            memcpy(prefix + plen, last ? "   " : "|  ", 4);
            text_tree(g, out, n->peer, prefix, plen + 3, cap, depth + 1);
            prefix[plen] = '\0';
        }
    }
}

static void text_counts(const struct tracegraph *g, FILE *out)
{
    const struct tg_counts *c = &g->counts;

    fputs("messages:\n", out);
    fprintf(out, "  GET    %u sent", c->gets_sent);
    if (c->gets_failed)
        fprintf(out, " (+%u to neighbours that were down)", c->gets_failed);
    fprintf(out, "; %u handled, %u duplicates dropped, %u dropped otherwise\n", c->received,
            c->duplicates - c->reforwarded, c->dropped);
    if (g->topology_known) {
        fprintf(out, "         bound: 2 x %u links among the %zu reached peers = %u (a peer "
                "forwards a query once, never back\n         to where it came from, so each "
                "link carries it at most once each way): %s\n", c->links_reached, g->n_nodes,
                c->get_bound, c->gets_sent <= c->get_bound ? "within" : "EXCEEDED");
        fprintf(out, "         flooding sends exactly %u here (the origin's degree, plus degree-1 "
                "for each peer that forwarded)\n", c->gets_expected);
        if (c->reforwarded)
            fprintf(out, "         %u duplicate%s came with more ttl left than the first copy and "
                    "%s forwarded again\n         (not to neighbours that had sent as much ttl), "
                    "so peers a shorter way reaches are not\n         missed: that may cross the "
                    "bound\n", c->reforwarded, c->reforwarded == 1 ? "" : "s",
                    c->reforwarded == 1 ? "was" : "were");
    } else {
        fputs("         bound: unknown (no topology)\n", out);
    }
    fprintf(out, "  FOUND  %u sent by holders, %u relayed, %u arrived at the origin",
            c->founds_sent, c->founds_relayed, c->founds_received);
    if (c->founds_dropped)
        fprintf(out, ", %u dropped", c->founds_dropped);
    fputc('\n', out);
}

int tracegraph_text(const struct tracegraph *g, FILE *out)
{
    char when[16], prefix[3 * 64 + 1] = "";

    clock_of(g->start_us, when);
    fprintf(out, "query %s \"%s\"", g->qid, g->name);
    if (g->origin)
        fprintf(out, " started by peer %u at %s (ttl %u)\n", g->origin, when, g->ttl);
    else
        fputs(" (the origin's events are missing)\n", out);
    fprintf(out, "reached %zu peer%s\n\npropagation (who got it from whom, at which hop):\n",
            g->n_nodes, g->n_nodes == 1 ? "" : "s");
    if (g->origin) {
        fprintf(out, "  peer %u origin\n", g->origin);
        text_tree(g, out, g->origin, prefix, 0, sizeof prefix, 0);
    }
    for (size_t i = 0; i < g->n_nodes; i++)
        if (!g->nodes[i].origin && (g->nodes[i].hop < 0 || !find_node((struct tracegraph *)g,
                                                                      g->nodes[i].parent)))
            fprintf(out, "  peer %u: how it got the query is not known\n", g->nodes[i].peer);

    fputs("\nduplicates (copies dropped where they arrived):\n", out);
    size_t shown = 0;
    for (size_t i = 0; i < g->n_edges; i++) {
        const struct tg_edge *e = &g->edges[i];
        if (e->kind == TG_DUPLICATE || e->kind == TG_DROPPED) {
            fprintf(out, "  peer %u dropped the copy from peer %u (hop %u): %s\n", e->to, e->from,
                    e->hop, e->kind == TG_DUPLICATE ? "duplicate" : e->reason);
            shown++;
        }
    }
    if (!shown)
        fputs("  none\n", out);

    fputs("\nreverse path of each hit (FOUND, hop by hop):\n", out);
    for (size_t i = 0; i < g->n_hits; i++) {
        const struct tg_hit *h = &g->hits[i];
        fprintf(out, "  \"%s\" (%" PRIu64 " bytes) at peer %u: ", h->name, h->size, h->holder);
        for (size_t k = 0; k < h->n_path; k++)
            fprintf(out, "%speer %u", k ? " -> " : "", h->path[k]);
        if (h->arrived)
            fputs("  (arrived)\n", out);
        else if (h->dropped[0])
            fprintf(out, "  (dropped: %s)\n", h->dropped);
        else
            fputs("  (the next peer did not report it)\n", out);
    }
    if (!g->n_hits)
        fputs("  no hit\n", out);

    fputs("\ntransfer:\n", out);
    for (size_t i = 0; i < g->n_xfers; i++) {
        const struct tg_transfer *x = &g->xfers[i];
        fprintf(out, "  peer %u <- peer %u \"%s\": ", x->requester, x->holder, x->name);
        if (x->done)
            fprintf(out, "%" PRIu64 " of %" PRIu64 " bytes in %.1f ms, done", x->bytes, x->size,
                    (double)(x->end_us - x->start_us) / 1000.0);
        else if (x->failed)
            fprintf(out, "failed after %" PRIu64 " bytes: %s", x->bytes, x->detail);
        else
            fprintf(out, "started, %" PRIu64 " of %" PRIu64 " bytes so far", x->bytes, x->size);
        if (x->source_bytes)
            fprintf(out, " (%" PRIu64 " bytes from this source in %u piece%s)", x->source_bytes,
                    x->pieces, x->pieces == 1 ? "" : "s");
        if (x->resumed_from)
            fprintf(out, " (resumed at byte %" PRIu64 ")", x->resumed_from);
        fputs(x->holder_seen ? "" : " (the holder's side was not seen)", out);
        fputc('\n', out);
    }
    if (!g->n_xfers)
        fputs("  none\n", out);
    fputc('\n', out);
    text_counts(g, out);
    if (g->unknown_hops)
        fprintf(out, "(%u events named an address of no known peer)\n", g->unknown_hops);
    return ferror(out) ? -1 : 0;
}

/* --- JSON --- */

static const char *kind_name(enum tg_edge_kind k)
{
    switch (k) {
    case TG_TREE: return "tree";
    case TG_DUPLICATE: return "duplicate";
    case TG_DROPPED: return "dropped";
    case TG_TRANSFER: return "transfer";
    }
    return "?";
}

static void json_counts(const struct tracegraph *g, struct json *j)
{
    const struct tg_counts *c = &g->counts;

    json_obj_open(j, "counts");
    json_uint(j, "gets_sent", c->gets_sent);
    json_uint(j, "gets_failed", c->gets_failed);
    json_uint(j, "received", c->received);
    json_uint(j, "duplicates", c->duplicates);
    json_uint(j, "dropped", c->dropped);
    if (g->topology_known) {
        json_uint(j, "links_reached", c->links_reached);
        json_uint(j, "get_bound", c->get_bound);
        json_uint(j, "gets_expected", c->gets_expected);
    } else {
        json_str(j, "get_bound", NULL);
    }
    json_uint(j, "reforwarded", c->reforwarded);
    json_uint(j, "founds_sent", c->founds_sent);
    json_uint(j, "founds_relayed", c->founds_relayed);
    json_uint(j, "founds_received", c->founds_received);
    json_uint(j, "founds_dropped", c->founds_dropped);
    json_obj_close(j);
}

void tracegraph_json(const struct tracegraph *g, struct json *j)
{
    char a[ADDR_STR_MAX];

    json_obj_open(j, NULL);
    json_str(j, "qid", g->qid);
    json_str(j, "name", g->name);
    if (g->origin)
        json_uint(j, "origin", g->origin);
    else
        json_str(j, "origin", NULL);
    json_uint(j, "ttl", g->ttl);
    json_uint(j, "start_us", g->start_us);
    json_arr_open(j, "nodes");
    for (size_t i = 0; i < g->n_nodes; i++) {
        const struct tg_node *n = &g->nodes[i];
        json_obj_open(j, NULL);
        json_uint(j, "peer", n->peer);
        json_str(j, "addr", n->addr.port ? addr_format(&n->addr, a) : NULL);
        json_bool(j, "requester", n->origin);
        json_bool(j, "holder", n->holder);
        json_int(j, "hop", n->hop);
        if (n->parent)
            json_uint(j, "parent", n->parent);
        else
            json_str(j, "parent", NULL);
        json_uint(j, "ts_us", n->first_us);
        json_uint(j, "hits", n->hits);
        json_uint(j, "duplicates", n->dups_in);
        json_uint(j, "gets_sent", n->gets_out);
        json_obj_close(j);
    }
    json_arr_close(j);
    json_arr_open(j, "edges");
    for (size_t i = 0; i < g->n_edges; i++) {
        const struct tg_edge *e = &g->edges[i];
        json_obj_open(j, NULL);
        json_uint(j, "from", e->from);
        json_uint(j, "to", e->to);
        json_str(j, "kind", kind_name(e->kind));
        if (e->kind != TG_TRANSFER)
            json_uint(j, "hop", e->hop);
        json_bool(j, "reverse_path", e->reverse);
        if (e->kind == TG_DROPPED)
            json_str(j, "reason", e->reason);
        json_uint(j, "ts_us", e->ts_us);
        json_obj_close(j);
    }
    json_arr_close(j);
    json_arr_open(j, "hits");
    for (size_t i = 0; i < g->n_hits; i++) {
        const struct tg_hit *h = &g->hits[i];
        json_obj_open(j, NULL);
        json_uint(j, "holder", h->holder);
        json_str(j, "name", h->name);
        json_uint(j, "size", h->size);
        json_str(j, "md5", h->md5);
        json_arr_open(j, "path");
        for (size_t k = 0; k < h->n_path; k++)
            json_uint(j, NULL, h->path[k]);
        json_arr_close(j);
        json_bool(j, "arrived", h->arrived);
        json_str(j, "dropped", h->dropped[0] ? h->dropped : NULL);
        json_obj_close(j);
    }
    json_arr_close(j);
    json_arr_open(j, "transfers");
    for (size_t i = 0; i < g->n_xfers; i++) {
        const struct tg_transfer *x = &g->xfers[i];
        json_obj_open(j, NULL);
        json_uint(j, "requester", x->requester);
        json_uint(j, "holder", x->holder);
        json_str(j, "name", x->name);
        json_uint(j, "size", x->size);
        json_uint(j, "bytes", x->bytes);
        json_uint(j, "resumed_from", x->resumed_from);
        if (x->source_bytes) {
            json_uint(j, "source_bytes", x->source_bytes);
            json_uint(j, "pieces", x->pieces);
        } else {
            json_str(j, "source_bytes", NULL);
            json_str(j, "pieces", NULL);
        }
        json_str(j, "state", x->done ? "done" : x->failed ? "failed" : "running");
        if (x->end_us)
            json_double(j, "ms", (double)(x->end_us - x->start_us) / 1000.0);
        json_str(j, "detail", x->detail[0] ? x->detail : NULL);
        json_bool(j, "holder_seen", x->holder_seen);
        json_obj_close(j);
    }
    json_arr_close(j);
    json_counts(g, j);
    json_obj_close(j);
}
