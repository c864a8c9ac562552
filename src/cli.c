/* cli.c - argv parsing, one-shot commands, and `peers`. */
#include "floodshare/cli.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "floodshare/cfg.h"
#include "floodshare/ctl.h"
#include "floodshare/fp.h"
#include "floodshare/json.h"
#include "floodshare/peer.h"
#include "floodshare/progress.h"
#include "floodshare/rundir.h"
#include "floodshare/tls.h"
#include "floodshare/watch.h"
#include "floodshare/web.h"

#define CLI_MAX_PEERS 1024

static const char usage_head[] =
    "usage: floodshare [--run DIR] peer ID COMMAND [ARGS...]\n"
    "       floodshare [--run DIR] peers [--json]\n"
    "       floodshare [--run DIR] watch [--json]\n"
    "       floodshare [--run DIR] trace QUERY-ID [--json|--dot] [--svg FILE] [--png FILE]\n"
    "       floodshare [--run DIR] web [--listen HOST:PORT] [--public]   (the classroom dashboard)\n"
    "       floodshare [--run DIR]                 (interactive REPL)\n"
    "       floodshare serve [--run DIR] CONFIG.ini\n"
    "       floodshare keygen FILE | fingerprint FILE   (keys for [security], docs/SECURITY.md)\n"
    "       floodshare --help | --version\n"
    "\n"
    "Commands sent to peer ID (through DIR/peer-ID.sock):\n";

/* The REPL's `help`: the same commands, as they are typed at its prompt. */
static const char repl_head[] =
    "Commands (as from a shell, without `floodshare [--run DIR]` in front):\n"
    "  peers [--json]          every peer of the run folder: up or down, and its neighbours\n"
    "  peer N COMMAND [ARGS]   one command to peer N (below), e.g. `peer 1 get 3.txt`\n"
    "  watch [--json]          every peer's events, merged in time order (Ctrl-C stops)\n"
    "  trace QUERY-ID [--json|--dot] [--svg FILE] [--png FILE]\n"
    "                          one query's flood, reconstructed (e.g. `trace 4d78`)\n"
    "  web [--listen HOST:PORT] [--public]   the classroom dashboard (Ctrl-C stops)\n"
    "  help, exit              Ctrl-D leaves too; Ctrl-C clears the line, or stops a get\n"
    "\n"
    "Commands to peer N:\n";

/* One line per command a peer runs; both helps show them. */
static const char peer_commands[] =
    "  get NAME [--sources K] [--json]\n"
    "                          find NAME by flooding a query, download it into the share\n"
    "                          from up to K holders at once (1..8, default max_sources)\n"
    "  get PATH from M [--json]  download PATH of peer M's share directly (no query; see browse)\n"
    "  browse M [PATH] [--json]  list peer M's share (or its folder PATH): name, kind, size,\n"
    "                          MD5, mtime; M is a peer id or HOST:PORT\n"
    "  search NAME [--json]    list the hits for NAME (holder, kind, size, MD5, hops)\n"
    "  ls [--json]             what this peer shares\n"
    "  config [--json]         this peer's settings\n"
    "  modify KEY VALUE        change ttl, neighbours, share_dir, log_level, upload_rate,\n"
    "                          download_rate, browse, send_from, quota or max_item, live and\n"
    "                          in the INI\n"
    "  stats [--json]          counters: queries, duplicates, hits, bytes\n"
    "  transfers [--json]      downloads and uploads running now, and partial downloads\n"
    "  link down|up HOST:PORT  cut the link to a neighbour (no GET/FOUND either way), or mend it\n"
    "  pause                   the peer drops every GET and FOUND: down for the flood\n"
    "  resume                  undo pause\n"
    "  rm NAME                 remove an item (file or folder) from the share, to repeat a get\n"
    "  send NAME to M [--json] offer an item of the share to peer M (id or HOST:PORT), which\n"
    "                          pulls it if its [accept] section lets it; resumes when repeated\n"
    "  sync NAME from M [--delete] [--json]\n"
    "                          make the item NAME identical to M's, moving only what differs;\n"
    "                          files changed here are kept aside as NAME.sync-conflict-...\n"
    "  sync status [--json]    the [sync] pairs kept in step automatically: state, last sync\n"
    "  watch [--json]          stream this peer's trace events until Ctrl-C\n"
    "  events [--json] [QID]   the trace events this peer keeps (of one query)\n";

static const char usage_tail[] =
    "\n"
    "watch merges the events of every peer of DIR in time order; trace QUERY-ID\n"
    "(a query id as get/search print it, or its first digits) reconstructs that\n"
    "query's flood: tree, duplicates, reverse paths, transfer, message counts;\n"
    "--dot writes Graphviz, --svg/--png render it with dot (docs/TRACE.md).\n"
    "\n"
    "get shows a progress line on a terminal; --quiet shows only errors; with --json,\n"
    "progress comes as JSON events, one per line, before the result. Ctrl-C cancels a\n"
    "get and keeps what arrived: the next get of the same item resumes it.\n"
    "\n"
    "DIR is --run, else $FLOODSHARE_RUN, else ./run (for serve: else the INI's folder).\n"
    "\n"
    "Exit codes: 0 success; 1 not found within TTL, every holder failed, or refused;\n"
    "64 bad usage; 69 the peer is not running (or not in DIR); 78 bad configuration.\n";

static void usage(FILE *f)
{
    fputs(usage_head, f);
    fputs(peer_commands, f);
    fputs(usage_tail, f);
}

void cli_repl_help(FILE *f)
{
    fputs(repl_head, f);
    fputs(peer_commands, f);
    fputs("\nA get that was stopped resumes where it stopped when asked again. "
          "Details: README.md, docs/TRACE.md.\n", f);
}

/* Parses a peer id 1..65535; 0 when s is not one. */
static unsigned parse_id(const char *s)
{
    char *end;
    unsigned long v = strtoul(s, &end, 10);
    if (!*s || *end || s[0] == '0' || s[0] == '-' || s[0] == '+' || v > 65535)
        return 0;
    return (unsigned)v;
}

/* The peer ids of run_dir as ranges, "1-6" or "1-3, 5, 7-9", into out;
 * "" when it has none (or cannot be read). Returns out. */
static char *id_ranges(const char *run_dir, char *out, size_t cap)
{
    unsigned *ids = calloc(CLI_MAX_PEERS, sizeof *ids);
    long n = ids ? rundir_ids(run_dir, ids, CLI_MAX_PEERS) : -1;
    size_t len = 0;

    out[0] = '\0';
    for (long i = 0; i < n && len < cap; i++) {
        long k = i;
        while (k + 1 < n && ids[k + 1] == ids[k] + 1)
            k++;
        int w = k == i ? snprintf(out + len, cap - len, "%s%u", i ? ", " : "", ids[i])
                       : snprintf(out + len, cap - len, "%s%u-%u", i ? ", " : "", ids[i], ids[k]);
        if (w < 0 || (size_t)w >= cap - len) {
            snprintf(out + len, cap - len, "...");
            break;
        }
        len += (size_t)w;
        i = k;
    }
    free(ids);
    return out;
}

/* Says that peer id is not running, or, when the run folder has no such
 * peer at all, which peers it has. */
static void say_no_peer(const char *run_dir, unsigned id, const char *sock)
{
    unsigned *ids = calloc(CLI_MAX_PEERS, sizeof *ids);
    long n = ids ? rundir_ids(run_dir, ids, CLI_MAX_PEERS) : -1;
    int err = errno, known = n == CLI_MAX_PEERS; /* a folder that full: cannot tell */
    char have[256];

    for (long i = 0; i < n && !known; i++)
        known = ids[i] == id;
    free(ids);
    if (n < 0 && ids && err == ENOENT)
        fprintf(stderr, "floodshare: no peer %u: the run folder %s does not exist (start peers "
                "with scripts/topology up SPEC --run %s)\n", id, run_dir, run_dir);
    else if (n < 0 || known)
        fprintf(stderr, "floodshare: peer %u is not running (no answer on %s)\n", id, sock);
    else if (id_ranges(run_dir, have, sizeof have)[0])
        fprintf(stderr, "floodshare: no peer %u in %s: peers are %s\n", id, run_dir, have);
    else
        fprintf(stderr, "floodshare: no peer %u in %s: it has no peers (start some with "
                "scripts/topology up)\n", id, run_dir);
}

/* How `peer N COMMAND` shows progress: a live line on a terminal's stderr,
 * JSON events with --json, nothing when stderr is not a terminal. */
struct view_state {
    int json;
    int tty;
    int color;
};

static void show_progress(void *ctx, const struct ctl_progress *pr)
{
    struct view_state *v = ctx;
    char line[512];

    if (v->json) {
        struct json j;
        json_init(&j, 4096);
        json_obj_open(&j, NULL);
        json_str(&j, "event", "progress");
        json_str(&j, "name", pr->name);
        json_uint(&j, "done", pr->done);
        json_uint(&j, "total", pr->total);
        json_uint(&j, "resumed_from", pr->resumed);
        json_uint(&j, "rate", pr->rate);
        json_uint(&j, "peer", pr->peer);
        json_str(&j, "holder", pr->holder);
        json_uint(&j, "sources", pr->sources ? pr->sources : 1);
        json_obj_close(&j);
        const char *doc = json_result(&j, NULL);
        if (doc)
            printf("%s\n", doc);
        fflush(stdout);
        json_free(&j);
        return;
    }
    if (!v->tty)
        return;
    struct winsize ws;
    int width = ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 20 ? ws.ws_col - 1 : 79;
    fprintf(stderr, "\r%s\033[K", progress_format(line, sizeof line, pr, width, v->color));
    fflush(stderr);
}

static void clear_progress(void *ctx)
{
    struct view_state *v = ctx;
    if (v->tty && !v->json) {
        fputs("\r\033[K", stderr);
        fflush(stderr);
    }
}

static void on_sigint(int sig)
{
    (void)sig;
    ctl_interrupted = 1;
}

/* Runs a command with Ctrl-C turned into "hang up" (the peer cancels). */
static int call_interruptible(const char *sock, int argc, char **argv, const struct ctl_view *view)
{
    struct sigaction sa, old;

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint; /* no SA_RESTART: poll() must return EINTR */
    sigemptyset(&sa.sa_mask);
    ctl_interrupted = 0;
    sigaction(SIGINT, &sa, &old);
    int code = ctl_call(sock, argc, argv, stdout, stderr, view);
    sigaction(SIGINT, &old, NULL);
    ctl_interrupted = 0;
    return code;
}

static int cmd_peer(const char *run_dir, int argc, char **argv)
{
    char sock[RUNDIR_PATH_MAX], why[RUNDIR_ERR_MAX];
    char *args[CTL_MAX_ARGS];
    struct view_state vs = {0};
    struct ctl_view view = {.progress = show_progress, .clear = clear_progress, .ctx = &vs};
    int nargs = 0;
    unsigned id;

    if (argc < 3) {
        fprintf(stderr, "usage: peer ID COMMAND [ARGS...] (try `help`)\n");
        return CTL_EXIT_USAGE;
    }
    id = parse_id(argv[1]);
    if (!id) {
        fprintf(stderr, "floodshare: \"%s\" is not a peer id (1..65535)\n", argv[1]);
        return CTL_EXIT_USAGE;
    }
    /* --quiet is the client's business: the peer never sees it. */
    for (int i = 2; i < argc && nargs < CTL_MAX_ARGS; i++) {
        if (strcmp(argv[i], "--quiet") == 0) {
            view.quiet = 1;
            continue;
        }
        vs.json |= strcmp(argv[i], "--json") == 0;
        args[nargs++] = argv[i];
    }
    const char *no_color = getenv("NO_COLOR");
    vs.tty = isatty(STDERR_FILENO);
    vs.color = vs.tty && !(no_color && *no_color);
    /* watch and events render on this side, naming hops by peer id. */
    if (nargs && (strcmp(args[0], "watch") == 0 || (strcmp(args[0], "events") == 0 && !vs.json)))
        return watch_peer_cmd(run_dir, id, nargs, args);
    if (rundir_sock_path(run_dir, id, sock, sizeof sock, why, sizeof why) != FS_OK) {
        fprintf(stderr, "floodshare: %s\n", why);
        return CTL_EXIT_USAGE;
    }
    int code = nargs ? call_interruptible(sock, nargs, args, &view) : CTL_EXIT_USAGE;
    if (code == CTL_EXIT_NOPEER)
        say_no_peer(run_dir, id, sock);
    return code;
}

/* --- peers --- */

struct peer_row {
    unsigned id;
    int up;
    char address[ADDR_STR_MAX];
    char neighbours[CFG_MAX_NEIGHBOURS * ADDR_STR_MAX];
};

/* Copies the value of " key=value" from a ping line into out. 0 if absent
 * or too long. */
static int ping_field(const char *line, const char *key, char *out, size_t cap)
{
    const char *v = strstr(line, key);
    if (!v)
        return 0;
    v += strlen(key);
    size_t n = strcspn(v, " \n");
    if (n >= cap)
        return 0;
    memcpy(out, v, n);
    out[n] = '\0';
    return 1;
}

/* Fills row from the live peer (its ping line) or, when down, its INI. */
static void probe(const char *run_dir, unsigned id, struct peer_row *row)
{
    char path[RUNDIR_PATH_MAX], why[RUNDIR_ERR_MAX], *text = NULL;
    char *args[] = {"ping"};

    memset(row, 0, sizeof *row);
    row->id = id;
    /* A folder too long for its names has no readable peers: rundir_ids
     * could not list it, so a failure here leaves the row empty and down. */
    if (rundir_sock_path(run_dir, id, path, sizeof path, why, sizeof why) != FS_OK)
        return;
    if (ctl_capture(path, 1, args, &text) == CTL_EXIT_OK) {
        row->up = ping_field(text, "address=", row->address, sizeof row->address) &&
                   ping_field(text, "neighbours=", row->neighbours, sizeof row->neighbours);
        if (strcmp(row->neighbours, "-") == 0)
            row->neighbours[0] = '\0';
    }
    free(text);
    if (row->up)
        return;
    struct cfg *c = malloc(sizeof *c);
    char err[CFG_ERR_MAX];
    if (c && rundir_ini_path(run_dir, id, path, sizeof path, why, sizeof why) == FS_OK &&
        cfg_load(path, c, err, sizeof err) == FS_OK) {
        addr_format(&c->advertise, row->address);
        for (size_t i = 0; i < c->n_neighbours; i++) {
            size_t l = strlen(row->neighbours);
            char one[ADDR_STR_MAX];
            snprintf(row->neighbours + l, sizeof row->neighbours - l, "%s%s", i ? "," : "",
                     addr_format(&c->neighbours[i], one));
        }
    }
    free(c);
}

static void peers_json(const char *run_dir, const struct peer_row *rows, size_t n)
{
    struct json j;

    json_init(&j, 8 * 1024 * 1024);
    json_obj_open(&j, NULL);
    json_str(&j, "run_dir", run_dir);
    json_arr_open(&j, "peers");
    for (size_t i = 0; i < n; i++) {
        json_obj_open(&j, NULL);
        json_uint(&j, "id", rows[i].id);
        json_str(&j, "address", rows[i].address[0] ? rows[i].address : NULL);
        json_bool(&j, "up", rows[i].up);
        json_arr_open(&j, "neighbours");
        char nb[sizeof rows[i].neighbours];
        memcpy(nb, rows[i].neighbours, sizeof nb);
        for (char *save = NULL, *t = strtok_r(nb, ",", &save); t; t = strtok_r(NULL, ",", &save))
            json_str(&j, NULL, t);
        json_arr_close(&j);
        json_obj_close(&j);
    }
    json_arr_close(&j);
    json_obj_close(&j);
    const char *doc = json_result(&j, NULL);
    if (doc)
        printf("%s\n", doc);
    json_free(&j);
}

/* row's neighbours as peer numbers ("2, 3"), an address only for one that
 * is no peer of the run folder; "-" for none. Into out; returns out. */
static const char *neighbour_names(const struct peer_row *rows, size_t n,
                                   const struct peer_row *row, char *out, size_t cap)
{
    char list[sizeof row->neighbours];
    size_t len = 0;

    memcpy(list, row->neighbours, sizeof list);
    out[0] = '\0';
    for (char *save = NULL, *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        unsigned id = 0;
        for (size_t i = 0; i < n && !id; i++)
            if (strcmp(rows[i].address, t) == 0)
                id = rows[i].id;
        int w = id ? snprintf(out + len, cap - len, "%s%u", len ? ", " : "", id)
                   : snprintf(out + len, cap - len, "%s%s", len ? ", " : "", t);
        if (w < 0 || (size_t)w >= cap - len)
            break;
        len += (size_t)w;
    }
    return len ? out : "-";
}

static int cmd_peers(const char *run_dir, int argc, char **argv)
{
    int json = argc == 2 && strcmp(argv[1], "--json") == 0;
    unsigned *ids = calloc(CLI_MAX_PEERS, sizeof *ids);
    struct peer_row *rows = NULL;

    if (argc > 2 || (argc == 2 && !json)) {
        free(ids);
        fprintf(stderr, "usage: peers [--json]\n");
        return CTL_EXIT_USAGE;
    }
    /* A folder that cannot be read has no peers, as an empty one. */
    long found = ids ? rundir_ids(run_dir, ids, CLI_MAX_PEERS) : 0;
    size_t n = found > 0 ? (size_t)found : 0;
    rows = calloc(n ? n : 1, sizeof *rows);
    if (!ids || !rows) {
        free(ids);
        free(rows);
        return CTL_EXIT_FAIL;
    }
    for (size_t i = 0; i < n; i++)
        probe(run_dir, ids[i], &rows[i]);
    if (json) {
        peers_json(run_dir, rows, n);
    } else if (n == 0) {
        printf("no peers in %s (start some with scripts/topology up)\n", run_dir);
    } else {
        char nb[sizeof rows[0].neighbours + 64];
        printf("%-6s %-22s %-5s %s\n", "peer", "address", "state", "neighbours");
        for (size_t i = 0; i < n; i++)
            printf("%-6u %-22s %-5s %s\n", rows[i].id, rows[i].address[0] ? rows[i].address : "?",
                   rows[i].up ? "up" : "down", neighbour_names(rows, n, &rows[i], nb, sizeof nb));
    }
    free(ids);
    free(rows);
    return CTL_EXIT_OK;
}

/* `keygen FILE`: a new key for [security] key; `fingerprint FILE`: the
 * fingerprint of one, for another peer's `trusted`. */
static int cmd_key(int argc, char **argv)
{
    unsigned char fp[FP_LEN];
    char err[TLS_ERR_MAX + PATH_MAX], text[FP_STR_MAX];
    int gen = strcmp(argv[0], "keygen") == 0;

    if (argc != 2) {
        fprintf(stderr, "usage: %s FILE\n", argv[0]);
        return CTL_EXIT_USAGE;
    }
    fs_status st = gen ? tls_keygen(argv[1], fp, err, sizeof err)
                       : tls_key_fingerprint(argv[1], fp, err, sizeof err);
    if (st) {
        fprintf(stderr, "floodshare: %s: %s\n", argv[0], err);
        return CTL_EXIT_FAIL;
    }
    printf("%s\n", fp_format(fp, text));
    if (gen)
        fprintf(stderr, "wrote %s (mode 0600): put it in [security] key, and the line above in "
                "the other peers' [security] trusted\n", argv[1]);
    return CTL_EXIT_OK;
}

int cli_exec(const char *run_dir, int argc, char **argv)
{
    if (argc == 0)
        return CTL_EXIT_OK;
    if (strcmp(argv[0], "peer") == 0)
        return cmd_peer(run_dir, argc, argv);
    if (strcmp(argv[0], "peers") == 0)
        return cmd_peers(run_dir, argc, argv);
    if (strcmp(argv[0], "watch") == 0)
        return watch_all_cmd(run_dir, argc, argv);
    if (strcmp(argv[0], "trace") == 0)
        return watch_trace_cmd(run_dir, argc, argv);
    if (strcmp(argv[0], "web") == 0)
        return web_main(run_dir, argc, argv);
    if (strcmp(argv[0], "keygen") == 0 || strcmp(argv[0], "fingerprint") == 0)
        return cmd_key(argc, argv);
    if (strcmp(argv[0], "help") == 0) {
        usage(stdout);
        return CTL_EXIT_OK;
    }
    static const char *const peer_cmds[] = {"get", "search", "ls", "config", "modify", "stats",
                                            "transfers", "link", "pause", "resume", "events",
                                            "rm", "browse", "send", "sync"};
    for (size_t i = 0; i < sizeof peer_cmds / sizeof peer_cmds[0]; i++) {
        if (strcmp(argv[0], peer_cmds[i]) != 0)
            continue;
        /* `get 3.txt`: the command is right, the peer that runs it is missing. */
        char have[256], line[512];
        size_t len = 0;
        for (int k = 0; k < argc && len < sizeof line; k++) {
            int w = snprintf(line + len, sizeof line - len, " %s", argv[k]);
            len += w > 0 ? (size_t)w : 0;
        }
        id_ranges(run_dir, have, sizeof have);
        fprintf(stderr, "floodshare: say which peer %s: peer N%s%s%s%s\n",
                strcmp(argv[0], "get") == 0 || strcmp(argv[0], "search") == 0 ? "asks"
                                                                              : "you mean",
                line, have[0] ? " (peers are " : "", have, have[0] ? ")" : "");
        return CTL_EXIT_USAGE;
    }
    fprintf(stderr, "floodshare: unknown command \"%s\" (try `help`)\n", argv[0]);
    return CTL_EXIT_USAGE;
}

int cli_split(const char *line, char **argv, int max, char *storage, size_t cap, const char **why)
{
    int argc = 0;
    size_t o = 0;
    const char *s = line;

    for (;;) {
        while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
            s++;
        if (!*s)
            return argc;
        if (argc == max) {
            *why = "too many words";
            return -1;
        }
        argv[argc++] = storage + o;
        char quote = 0;
        while (*s && (quote || (*s != ' ' && *s != '\t' && *s != '\n' && *s != '\r'))) {
            char c = *s++;
            if (quote && c == quote) {
                quote = 0;
                continue;
            }
            if (!quote && (c == '\'' || c == '"')) {
                quote = c;
                continue;
            }
            if (c == '\\' && quote != '\'' && *s)
                c = *s++;
            if (o + 1 >= cap) {
                *why = "line too long";
                return -1;
            }
            storage[o++] = c;
        }
        if (quote) {
            *why = "unterminated quote";
            return -1;
        }
        storage[o++] = '\0';
    }
}

static int cmd_serve(int argc, char **argv, const char *run_opt)
{
    static const struct option opts[] = {{"run", required_argument, NULL, 'r'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *run = run_opt;
    int c;

    optind = 1;
    while ((c = getopt_long(argc, argv, "+r:h", opts, NULL)) != -1) {
        if (c == 'r') {
            run = optarg;
        } else if (c == 'h') {
            printf("usage: floodshare serve [--run DIR] CONFIG.ini\n");
            return CTL_EXIT_OK;
        } else {
            fprintf(stderr, "usage: floodshare serve [--run DIR] CONFIG.ini\n");
            return CTL_EXIT_USAGE;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "usage: floodshare serve [--run DIR] CONFIG.ini\n");
        return CTL_EXIT_USAGE;
    }
    return peer_main(argv[optind], run);
}

int cli_main(int argc, char **argv)
{
    static const struct option opts[] = {{"run", required_argument, NULL, 'r'},
                                         {"help", no_argument, NULL, 'h'},
                                         {"version", no_argument, NULL, 'V'},
                                         {NULL, 0, NULL, 0}};
    const char *run = NULL;
    int c;

    /* "+": stop at the first command word, so "peer 2 get x --json" keeps
     * its own options. */
    while ((c = getopt_long(argc, argv, "+r:hV", opts, NULL)) != -1) {
        switch (c) {
        case 'r':
            run = optarg;
            break;
        case 'h':
            usage(stdout);
            return CTL_EXIT_OK;
        case 'V':
            printf("floodshare %s (protocol FLOOD/1)\n", FS_VERSION);
            return CTL_EXIT_OK;
        default:
            usage(stderr);
            return CTL_EXIT_USAGE;
        }
    }
    argc -= optind;
    argv += optind;
    if (argc > 0 && strcmp(argv[0], "serve") == 0)
        return cmd_serve(argc, argv, run);
    if (argc == 0)
        return cli_repl(rundir_pick(run));
    return cli_exec(rundir_pick(run), argc, argv);
}
