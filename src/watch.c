/* watch.c - the CLI side of tracing: watch one or every peer, trace a query. */
#include "floodshare/watch.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "floodshare/cfg.h"
#include "floodshare/ctl.h"
#include "floodshare/json.h"
#include "floodshare/net.h"
#include "floodshare/rundir.h"
#include "floodshare/trace.h"
#include "floodshare/tracefmt.h"
#include "floodshare/tracegraph.h"

#define WATCH_MAX_PEERS 1024

/* --- the run folder's peers, from their INI files --- */

struct runnet {
    struct tg_peer *peers;
    size_t n;
    struct tg_link *links;
    size_t n_links;
};

static void runnet_free(struct runnet *rn)
{
    free(rn->peers);
    free(rn->links);
    memset(rn, 0, sizeof *rn);
}

static unsigned runnet_id(const struct runnet *rn, const struct fs_addr *a)
{
    for (size_t i = 0; i < rn->n; i++)
        if (addr_equal(&rn->peers[i].addr, a))
            return rn->peers[i].id;
    return 0;
}

static unsigned resolve_cb(void *ctx, const struct fs_addr *a)
{
    return runnet_id(ctx, a);
}

static void add_link(struct runnet *rn, unsigned a, unsigned b, size_t cap)
{
    unsigned lo = a < b ? a : b, hi = a < b ? b : a;

    for (size_t i = 0; i < rn->n_links; i++)
        if (rn->links[i].a == lo && rn->links[i].b == hi)
            return;
    if (rn->n_links < cap)
        rn->links[rn->n_links++] = (struct tg_link){lo, hi};
}

/* Reads the run folder's peers (rundir_ids), and the INI of each that has
 * one (rundir_ini_path): ids, addresses and links. A folder that cannot be
 * read has no peers. Returns 0, -1 when out of memory. */
static int runnet_load(const char *run_dir, struct runnet *rn)
{
    struct cfg *c = malloc(sizeof *c);
    struct fs_addr (*nbs)[CFG_MAX_NEIGHBOURS] = NULL;
    size_t *n_nbs = NULL;
    unsigned *ids = NULL;
    int rc = -1;

    memset(rn, 0, sizeof *rn);
    rn->peers = calloc(WATCH_MAX_PEERS, sizeof *rn->peers);
    nbs = calloc(WATCH_MAX_PEERS, sizeof *nbs);
    n_nbs = calloc(WATCH_MAX_PEERS, sizeof *n_nbs);
    ids = calloc(WATCH_MAX_PEERS, sizeof *ids);
    if (!c || !rn->peers || !nbs || !n_nbs || !ids)
        goto out;
    long found = rundir_ids(run_dir, ids, WATCH_MAX_PEERS);
    for (long i = 0; i < found; i++) {
        char path[RUNDIR_PATH_MAX], why[RUNDIR_ERR_MAX], err[CFG_ERR_MAX];
        size_t k = rn->n++;
        rn->peers[k].id = ids[i];
        if (rundir_ini_path(run_dir, ids[i], path, sizeof path, why, sizeof why) == FS_OK &&
            cfg_load(path, c, err, sizeof err) == FS_OK && c->id == ids[i]) {
            snprintf(rn->peers[k].addr.host, sizeof rn->peers[k].addr.host, "%s", c->host);
            rn->peers[k].addr.port = c->port;
            memcpy(nbs[k], c->neighbours, sizeof nbs[k]);
            n_nbs[k] = c->n_neighbours;
        }
    }
    size_t cap = (size_t)WATCH_MAX_PEERS * 8;
    rn->links = calloc(cap, sizeof *rn->links);
    if (!rn->links)
        goto out;
    for (size_t i = 0; i < rn->n; i++)
        for (size_t k = 0; k < n_nbs[i]; k++) {
            unsigned other = runnet_id(rn, &nbs[i][k]);
            if (other && other != rn->peers[i].id)
                add_link(rn, rn->peers[i].id, other, cap);
        }
    rc = 0; /* rundir_ids gave the peers sorted by id */
out:
    free(ids);
    free(c);
    free(nbs);
    free(n_nbs);
    if (rc)
        runnet_free(rn);
    return rc;
}

/* Peer id's control socket; FS_OK, or FS_ETOOBIG after saying so on err
 * (NULL: silently). */
static fs_status sock_of(const char *run_dir, unsigned id, char out[RUNDIR_PATH_MAX], FILE *err)
{
    char why[RUNDIR_ERR_MAX];
    fs_status st = rundir_sock_path(run_dir, id, out, RUNDIR_PATH_MAX, why, sizeof why);

    if (st != FS_OK && err)
        fprintf(err, "floodshare: %s\n", why);
    return st;
}

/* --- printing events --- */

struct printer {
    const struct runnet *rn;
    int json, color;
    int out_failed; /* stdout is gone (a closed pipe) */
};

/* Fills the hop ids the emitter could not know from the run folder. */
static void name_hops(const struct runnet *rn, struct trace_event *ev)
{
    if (!ev->from_peer && ev->from.port)
        ev->from_peer = runnet_id(rn, &ev->from);
    if (!ev->to_peer && ev->to.port)
        ev->to_peer = runnet_id(rn, &ev->to);
}

static void print_event(struct printer *pr, struct trace_event *ev)
{
    char line[8192];
    int n;

    name_hops(pr->rn, ev);
    if (pr->json)
        n = trace_format_json(ev, line, sizeof line);
    else
        n = trace_format_text(ev, resolve_cb, (void *)pr->rn, pr->color, line, sizeof line);
    if (n < 0)
        return;
    if (printf("%s\n", line) < 0 || fflush(stdout) != 0)
        pr->out_failed = 1;
}

static int use_color(void)
{
    const char *nc = getenv("NO_COLOR");
    return isatty(STDOUT_FILENO) && !(nc && *nc);
}

/* --- watching: one connection per peer, merged in time order --- */

struct wconn {
    unsigned id;
    int fd;         /* -1: not connected */
    int ever;       /* was connected once */
    int saw_down;   /* its last event was its own peer_down */
    uint64_t retry_ms;
    char buf[CTL_MAX_LINE + 8];
    size_t len;
};

struct merge {
    struct trace_event *ev;
    size_t n, cap;
};

static volatile sig_atomic_t watch_stop;

static void on_stop(int sig)
{
    (void)sig;
    watch_stop = 1;
}

static uint64_t wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void merge_add(struct merge *m, const struct trace_event *ev)
{
    if (m->n == m->cap) {
        size_t nc = m->cap ? m->cap * 2 : 256;
        struct trace_event *p = realloc(m->ev, nc * sizeof *p);
        if (!p)
            return; /* out of memory: this event is lost */
        m->ev = p;
        m->cap = nc;
    }
    m->ev[m->n++] = *ev;
}

static int cmp_ev(const void *a, const void *b)
{
    const struct trace_event *x = a, *y = b;
    if (x->ts_us != y->ts_us)
        return x->ts_us < y->ts_us ? -1 : 1;
    if (x->peer != y->peer)
        return x->peer < y->peer ? -1 : 1;
    return (x->seq > y->seq) - (x->seq < y->seq);
}

/* Prints the buffered events older than cutoff_us (all: UINT64_MAX), in
 * time order. Events from different peers arrive up to WATCH_MERGE_MS
 * apart; holding them that long puts them in order. */
static void merge_flush(struct merge *m, struct printer *pr, uint64_t cutoff_us)
{
    size_t k = 0;

    if (m->n == 0)
        return;
    qsort(m->ev, m->n, sizeof *m->ev, cmp_ev);
    while (k < m->n && m->ev[k].ts_us <= cutoff_us)
        print_event(pr, &m->ev[k++]);
    memmove(m->ev, m->ev + k, (m->n - k) * sizeof *m->ev);
    m->n -= k;
}

/* An event the CLI makes itself: a peer it lost or reached again. */
static void synthetic(struct merge *m, const struct runnet *rn, unsigned id, enum trace_type type,
                      const char *reason)
{
    struct trace_event ev;

    trace_init_event(&ev, type, NULL);
    ev.ts_us = wall_us();
    ev.peer = id;
    for (size_t i = 0; i < rn->n; i++)
        if (rn->peers[i].id == id)
            ev.addr = rn->peers[i].addr;
    trace_set(ev.reason, sizeof ev.reason, reason);
    merge_add(m, &ev);
}

static void wconn_close(struct wconn *w, struct merge *m, const struct runnet *rn)
{
    close(w->fd);
    w->fd = -1;
    w->len = 0;
    w->retry_ms = net_now_ms() + WATCH_RETRY_MS;
    if (!w->saw_down)
        synthetic(m, rn, w->id, TR_PEER_DOWN, "watch: connection lost");
}

/* Handles one line from a peer's watch stream. 1 when the stream ended. */
static int wconn_line(struct wconn *w, const char *s, size_t n, struct merge *m)
{
    struct trace_event ev;
    const char *why = NULL;

    if (n >= 2 && s[0] == 'E' && s[1] == ' ') {
        if (trace_decode(s + 2, n - 2, &ev, &why) == FS_OK) {
            w->saw_down = ev.type == TR_PEER_DOWN;
            merge_add(m, &ev);
        } else {
            fprintf(stderr, "floodshare: watch: peer %u sent an event that does not parse (%s)\n",
                    w->id, why);
        }
        return 0;
    }
    if (n >= 2 && s[0] == '2' && (s[1] == ' ' || s[1] == '+'))
        fprintf(stderr, "peer %u: %.*s\n", w->id, (int)(n - 2), s + 2);
    return n >= 2 && s[0] == '=' && s[1] == ' ';
}

/* Reads what w's peer sent; 1 when its stream ended. */
static int wconn_read(struct wconn *w, struct merge *m)
{
    ssize_t got = recv(w->fd, w->buf + w->len, sizeof w->buf - w->len, MSG_DONTWAIT);

    if (got < 0 && (errno == EAGAIN || errno == EINTR))
        return 0;
    if (got <= 0)
        return 1;
    w->len += (size_t)got;
    char *nl;
    while ((nl = memchr(w->buf, '\n', w->len)) != NULL) {
        size_t n = (size_t)(nl - w->buf);
        int end = wconn_line(w, w->buf, n, m);
        memmove(w->buf, nl + 1, w->len - n - 1);
        w->len -= n + 1;
        if (end)
            return 1;
    }
    return w->len == sizeof w->buf; /* a line longer than any peer sends */
}

static void wconn_try(struct wconn *w, const char *run_dir, struct merge *m,
                      const struct runnet *rn)
{
    char sock[RUNDIR_PATH_MAX], *args[] = {"watch", "--raw"};

    if (w->fd >= 0 || net_now_ms() < w->retry_ms)
        return;
    /* watch_run checked every socket path before the first try. */
    if (sock_of(run_dir, w->id, sock, NULL) != FS_OK ||
        ctl_open(sock, 2, args, &w->fd) != CTL_EXIT_OK) {
        w->fd = -1;
        w->retry_ms = net_now_ms() + WATCH_RETRY_MS;
        return;
    }
    if (w->ever || w->retry_ms) /* it was down or lost: say it is back */
        synthetic(m, rn, w->id, TR_PEER_UP, "watch: connected");
    w->ever = 1;
    w->saw_down = 0;
}

/* Watches peers ids[0..n): single means one peer named on the command
 * line, whose stream ending ends the watch. */
static int watch_run(const char *run_dir, const struct runnet *rn, const unsigned *ids, size_t n,
                     int json, int single)
{
    struct wconn *w = calloc(n, sizeof *w);
    struct pollfd *pfd = calloc(n, sizeof *pfd);
    struct merge m = {0};
    struct printer pr = {.rn = rn, .json = json, .color = !json && use_color()};
    struct sigaction sa, old_int, old_term;
    int code = CTL_EXIT_OK;
    size_t up = 0;
    char sock[RUNDIR_PATH_MAX];

    for (size_t i = 0; i < n; i++) {
        if (sock_of(run_dir, ids[i], sock, stderr) != FS_OK) {
            free(w);
            free(pfd);
            return CTL_EXIT_USAGE;
        }
    }
    if (!w || !pfd) {
        free(w);
        free(pfd);
        return CTL_EXIT_FAIL;
    }
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    watch_stop = 0;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    for (size_t i = 0; i < n; i++) {
        w[i].id = ids[i];
        w[i].fd = -1;
        wconn_try(&w[i], run_dir, &m, rn);
        up += w[i].fd >= 0;
    }
    if (single && up == 0) {
        sock_of(run_dir, ids[0], sock, NULL);
        fprintf(stderr, "floodshare: peer %u is not running (no answer on %s)\n", ids[0], sock);
        code = CTL_EXIT_NOPEER;
        goto out;
    }
    if (!json)
        fprintf(stderr, "watching %zu of %zu peer%s in %s (Ctrl-C to stop)\n", up, n,
                n == 1 ? "" : "s", run_dir);
    while (!watch_stop && !pr.out_failed) {
        for (size_t i = 0; i < n; i++) {
            if (!single)
                wconn_try(&w[i], run_dir, &m, rn);
            pfd[i].fd = w[i].fd;
            pfd[i].events = POLLIN;
            pfd[i].revents = 0;
        }
        if (poll(pfd, n, 50) < 0 && errno != EINTR)
            break;
        int ended = 0;
        for (size_t i = 0; i < n; i++) {
            if (w[i].fd >= 0 && pfd[i].revents && wconn_read(&w[i], &m)) {
                wconn_close(&w[i], &m, rn);
                ended = single;
            }
        }
        merge_flush(&m, &pr, ended ? UINT64_MAX : wall_us() - WATCH_MERGE_MS * 1000u);
        if (ended)
            break;
    }
    merge_flush(&m, &pr, UINT64_MAX);
out:
    for (size_t i = 0; i < n; i++)
        if (w[i].fd >= 0)
            close(w[i].fd);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    free(m.ev);
    free(w);
    free(pfd);
    return code;
}

static int want_json(int argc, char **argv, const char *usage)
{
    int json = 0;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") != 0) {
            fprintf(stderr, "usage: %s\n", usage);
            return -1;
        }
        json = 1;
    }
    return json;
}

int watch_all_cmd(const char *run_dir, int argc, char **argv)
{
    struct runnet rn;
    int json = want_json(argc, argv, "watch [--json]");

    if (json < 0)
        return CTL_EXIT_USAGE;
    if (runnet_load(run_dir, &rn) < 0)
        return CTL_EXIT_FAIL;
    if (rn.n == 0) {
        fprintf(stderr, "floodshare: no peers in %s (start some with scripts/topology up)\n",
                run_dir);
        runnet_free(&rn);
        return CTL_EXIT_FAIL;
    }
    unsigned *ids = calloc(rn.n, sizeof *ids);
    int code = CTL_EXIT_FAIL;
    if (ids) {
        for (size_t i = 0; i < rn.n; i++)
            ids[i] = rn.peers[i].id;
        code = watch_run(run_dir, &rn, ids, rn.n, json, 0);
    }
    free(ids);
    runnet_free(&rn);
    return code;
}

/* --- one peer's events --- */

struct collect {
    struct merge m;
    unsigned bad;
};

static void collect_event(void *ctx, const char *s, size_t len)
{
    struct collect *c = ctx;
    struct trace_event ev;

    if (trace_decode(s, len, &ev, NULL) == FS_OK)
        merge_add(&c->m, &ev);
    else
        c->bad++;
}

/* Runs `events --raw [QID]` on peer id and adds its events to c. */
static int collect_from(const char *run_dir, unsigned id, const char *qid, struct collect *c,
                        FILE *err)
{
    char sock[RUNDIR_PATH_MAX], *args[3] = {"events", "--raw", (char *)qid};
    struct ctl_view view = {.event = collect_event, .ctx = c};

    if (sock_of(run_dir, id, sock, err) != FS_OK)
        return CTL_EXIT_USAGE;
    return ctl_call(sock, qid ? 3 : 2, args, stdout, err, &view);
}

int watch_peer_cmd(const char *run_dir, unsigned id, int argc, char **argv)
{
    struct runnet rn;
    int code;

    if (strcmp(argv[0], "events") == 0) {
        const char *qid = NULL;
        for (int i = 1; i < argc; i++) {
            if (argv[i][0] == '-' || qid) {
                fprintf(stderr, "usage: peer N events [--json] [QID]\n");
                return CTL_EXIT_USAGE;
            }
            qid = argv[i];
        }
        if (runnet_load(run_dir, &rn) < 0)
            return CTL_EXIT_FAIL;
        struct collect c = {0};
        code = collect_from(run_dir, id, qid, &c, stderr);
        struct printer pr = {.rn = &rn, .color = use_color()};
        merge_flush(&c.m, &pr, UINT64_MAX);
        free(c.m.ev);
        runnet_free(&rn);
        return code;
    }
    int json = want_json(argc, argv, "peer N watch [--json]");
    if (json < 0)
        return CTL_EXIT_USAGE;
    if (runnet_load(run_dir, &rn) < 0)
        return CTL_EXIT_FAIL;
    code = watch_run(run_dir, &rn, &id, 1, json, 1);
    runnet_free(&rn);
    return code;
}

/* --- trace QUERY-ID --- */

/* Runs `dot -TFORMAT -o file` with the DOT text on its standard input.
 * 0, or -1 after saying why. */
static int render(const char *dot_text, size_t len, const char *format, const char *file)
{
    int in[2];
    pid_t pid;
    int status;

    if (pipe(in) < 0)
        return -1;
    char fmt[16];
    snprintf(fmt, sizeof fmt, "-T%s", format);
    pid = fork();
    if (pid < 0) {
        close(in[0]);
        close(in[1]);
        return -1;
    }
    if (pid == 0) {
        dup2(in[0], STDIN_FILENO);
        close(in[0]);
        close(in[1]);
        execlp("dot", "dot", fmt, "-o", file, (char *)NULL);
        _exit(errno == ENOENT ? 127 : 126);
    }
    close(in[0]);
    struct sigaction ign = {.sa_handler = SIG_IGN}, old;
    sigaction(SIGPIPE, &ign, &old); /* dot may exit before reading everything */
    size_t off = 0;
    while (off < len) {
        ssize_t wr = write(in[1], dot_text + off, len - off);
        if (wr < 0 && errno == EINTR)
            continue;
        if (wr <= 0)
            break;
        off += (size_t)wr;
    }
    close(in[1]);
    sigaction(SIGPIPE, &old, NULL);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 127) {
        fprintf(stderr, "floodshare: trace: cannot write %s: Graphviz `dot` is not installed "
                "(Debian: apt-get install graphviz); `floodshare trace QID --dot > flood.dot` "
                "writes the DOT source\n", file);
        return -1;
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "floodshare: trace: dot could not write %s\n", file);
        return -1;
    }
    fprintf(stderr, "wrote %s\n", file);
    return 0;
}

struct trace_opts {
    const char *qid, *svg, *png;
    int json, dot;
};

static int trace_args(int argc, char **argv, struct trace_opts *o)
{
    static const char usage[] = "usage: trace QUERY-ID [--json] [--dot] [--svg FILE] [--png FILE]";

    memset(o, 0, sizeof *o);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            o->json = 1;
        } else if (strcmp(argv[i], "--dot") == 0) {
            o->dot = 1;
        } else if ((strcmp(argv[i], "--svg") == 0 || strcmp(argv[i], "--png") == 0) &&
                   i + 1 < argc) {
            *(argv[i][2] == 's' ? &o->svg : &o->png) = argv[i + 1];
            i++;
        } else if (argv[i][0] != '-' && !o->qid) {
            o->qid = argv[i];
        } else {
            fprintf(stderr, "%s\n", usage);
            return -1;
        }
    }
    if (!o->qid || (o->json && o->dot)) {
        fprintf(stderr, "%s\n", usage);
        return -1;
    }
    return 0;
}

/* The one query id among evs[0..n); 0 when none, -1 (after saying so)
 * when the prefix matched several. */
static int one_query(const struct trace_event *evs, size_t n, const char *prefix)
{
    const char *first = NULL;
    int many = 0;

    for (size_t i = 0; i < n; i++) {
        if (!first)
            first = evs[i].qid;
        else if (strcmp(first, evs[i].qid) != 0)
            many = 1;
    }
    if (!first)
        return 0;
    if (!many)
        return 1;
    fprintf(stderr, "floodshare: trace: \"%s\" names more than one query:", prefix);
    for (size_t i = 0; i < n; i++) {
        int seen = 0;
        for (size_t k = 0; k < i && !seen; k++)
            seen = strcmp(evs[k].qid, evs[i].qid) == 0;
        if (!seen)
            fprintf(stderr, " %s", evs[i].qid);
    }
    fputs("; give more of its digits\n", stderr);
    return -1;
}

/* Writes the outputs asked for from the graph. */
static int trace_output(const struct tracegraph *g, const struct trace_opts *o)
{
    int code = CTL_EXIT_OK;

    if (o->svg || o->png) {
        char *text = NULL;
        size_t len = 0;
        FILE *mem = open_memstream(&text, &len);
        if (!mem)
            return CTL_EXIT_FAIL;
        tracegraph_dot(g, mem);
        fclose(mem);
        if ((o->svg && render(text, len, "svg", o->svg) < 0) ||
            (o->png && render(text, len, "png", o->png) < 0))
            code = CTL_EXIT_FAIL;
        free(text);
    }
    if (o->dot) {
        tracegraph_dot(g, stdout);
    } else if (o->json) {
        struct json j;
        json_init(&j, (size_t)64 * 1024 * 1024);
        tracegraph_json(g, &j);
        const char *doc = json_result(&j, NULL);
        if (doc)
            printf("%s\n", doc);
        json_free(&j);
    } else if (!o->svg && !o->png) {
        tracegraph_text(g, stdout);
    }
    return fflush(stdout) == 0 ? code : CTL_EXIT_FAIL;
}

int watch_trace_cmd(const char *run_dir, int argc, char **argv)
{
    struct trace_opts o;
    struct runnet rn;
    struct collect c = {0};
    int code = CTL_EXIT_FAIL;

    if (trace_args(argc, argv, &o) < 0)
        return CTL_EXIT_USAGE;
    if (runnet_load(run_dir, &rn) < 0)
        return CTL_EXIT_FAIL;
    if (rn.n == 0) {
        fprintf(stderr, "floodshare: no peers in %s\n", run_dir);
        goto out;
    }
    for (size_t i = 0; i < rn.n; i++) {
        int rc = collect_from(run_dir, rn.peers[i].id, o.qid, &c, stderr);
        if (rc == CTL_EXIT_USAGE) { /* the peer refused the query id: it said why */
            code = rc;
            goto out;
        }
        if (rc != CTL_EXIT_OK) {
            fprintf(stderr, "floodshare: trace: peer %u is not running: its events are missing\n",
                    rn.peers[i].id);
        }
    }
    int one = one_query(c.m.ev, c.m.n, o.qid);
    if (one <= 0) {
        if (one == 0)
            fprintf(stderr, "floodshare: trace: no peer of %s has events of query %s (each "
                    "keeps its last %d events)\n", run_dir, o.qid, TRACE_RING);
        code = one < 0 ? CTL_EXIT_USAGE : CTL_EXIT_FAIL;
        goto out;
    }
    struct tg_topology topo = {rn.peers, rn.n, rn.links, rn.n_links};
    struct tracegraph g;
    if (tracegraph_build(c.m.ev, c.m.n, &topo, &g) != FS_OK)
        goto out;
    code = trace_output(&g, &o);
    tracegraph_free(&g);
out:
    free(c.m.ev);
    runnet_free(&rn);
    return code;
}
