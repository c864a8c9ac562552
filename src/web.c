/* web.c - `floodshare web`: the classroom dashboard's HTTP server (web.h).
 *
 * Our own small server rather than an embedded library: it needs GET of
 * three embedded files, two JSON GETs, one POST and one server-sent-event
 * stream, with Connection: close; the parser (webhttp.c) is a pure
 * function the unit tests and fuzzers can drive, and no new dependency
 * comes in. One thread per connection, at most WEB_MAX_CONN at once.
 *
 * The event stream is the CLI's own `floodshare --run DIR watch --json`,
 * run as a child process: it already connects to every peer, merges their
 * events in time order, names hops by peer id and reconnects to peers that
 * come back. Its lines are kept (WEB_HISTORY) and fanned out to every page.
 *
 * Every request must carry the token made at start (docs/SECURITY.md,
 * "The dashboard"): the peers' control sockets are mode 0600, and this
 * server, which reaches them, must not open them to every local user. The
 * page may run only the commands of page_may_run(). */
#include "floodshare/web.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <openssl/crypto.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "floodshare/addr.h"
#include "floodshare/cli.h"
#include "floodshare/ctl.h"
#include "floodshare/json.h"
#include "floodshare/net.h"
#include "floodshare/rundir.h"
#include "floodshare/webhttp.h"
#include "floodshare/webtopo.h"

#define WEB_CMD_OUT_MAX (1024 * 1024) /* bytes of a command's output returned to the page */

struct web {
    const char *run_dir;
    char token[WEB_TOKEN_MAX + 1]; /* 2 * WEB_TOKEN_BYTES hex digits; every request needs it */
    size_t token_len;
    char port[8];   /* the port we listen on, for the Host check */
    char cookie[sizeof WEB_COOKIE_PREFIX + 8]; /* the token's cookie: prefix and port */
    char token_file[32]; /* its name in the run folder (WEB_TOKEN_FILE) */
    int run_fd;          /* the run folder, which holds token_file; -1 before it is open */
    int loopback;   /* no --public: Host must name 127.0.0.1/localhost */
    int listen_fd;
    int stop_pipe[2];
    atomic_int n_conn;
    atomic_int stopping;

    /* hist_lock guards hist/hist_seq; hist_cond signals "a line came". */
    pthread_mutex_t hist_lock;
    pthread_cond_t hist_cond;
    char *hist[WEB_HISTORY]; /* line of seq s is hist[s % WEB_HISTORY] */
    uint64_t hist_seq;       /* lines received so far */
    pid_t watch_pid;

    /* The reshaping buttons (webtopo.h): scripts/topology next to this
     * binary ("" when there is none), run one at a time under topo_lock. */
    char bin[4096];
    char topo_script[4096];
    pthread_mutex_t topo_lock;
};

static struct web *g_web; /* for the signal handler only */

static void on_signal(int sig)
{
    (void)sig;
    if (g_web) {
        atomic_store(&g_web->stopping, 1);
        ssize_t r = write(g_web->stop_pipe[1], "x", 1);
        (void)r;
    }
}

/* --- the event stream: `floodshare watch --json` as a child --- */

static void hist_add(struct web *w, const char *line, size_t n)
{
    char *copy = strndup(line, n);
    if (!copy)
        return;
    pthread_mutex_lock(&w->hist_lock);
    char **slot = &w->hist[w->hist_seq % WEB_HISTORY];
    free(*slot);
    *slot = copy;
    w->hist_seq++;
    pthread_cond_broadcast(&w->hist_cond);
    pthread_mutex_unlock(&w->hist_lock);
}

/* Starts the watcher; its stdout is *fd. -1 if it cannot. */
static pid_t spawn_watch(struct web *w, int *fd)
{
    int p[2];
    if (pipe(p) < 0)
        return -1;
    /* Between fork and exec the child still has web's handler: a SIGTERM from web_main
     * there would only stop the child's copy of web, and the watcher would run on with
     * the thread joining it waiting forever. Held until the child is back at the
     * default action. */
    sigset_t stop_sigs, old;
    sigemptyset(&stop_sigs);
    sigaddset(&stop_sigs, SIGINT);
    sigaddset(&stop_sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_sigs, &old);
    pid_t pid = fork();
    if (pid == 0) {
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        dup2(p[1], 1);
        close(p[0]);
        close(p[1]);
        execl("/proc/self/exe", "floodshare", "--run", w->run_dir, "watch", "--json", (char *)NULL);
        _exit(127);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    close(p[1]);
    if (pid < 0) {
        close(p[0]);
        return -1;
    }
    *fd = p[0];
    return pid;
}

/* Keeps a watcher running and its lines in the history, until stopping. */
static void *watch_thread(void *arg)
{
    struct web *w = arg;
    char buf[65536];

    while (!atomic_load(&w->stopping)) {
        int fd;
        pid_t pid = spawn_watch(w, &fd);
        if (pid < 0) {
            sleep(1);
            continue;
        }
        /* Checked under the lock web_main stops it under: a stop that came while this
         * child started found no watch_pid to kill, so it is killed here. */
        pthread_mutex_lock(&w->hist_lock);
        w->watch_pid = pid;
        if (atomic_load(&w->stopping))
            kill(pid, SIGTERM);
        pthread_mutex_unlock(&w->hist_lock);
        size_t have = 0;
        for (;;) {
            ssize_t r = read(fd, buf + have, sizeof buf - have);
            if (r <= 0)
                break;
            have += (size_t)r;
            char *start = buf, *nl;
            while ((nl = memchr(start, '\n', have - (size_t)(start - buf))) != NULL) {
                hist_add(w, start, (size_t)(nl - start));
                start = nl + 1;
            }
            have -= (size_t)(start - buf);
            memmove(buf, start, have);
            if (have == sizeof buf)
                have = 0; /* a line longer than any event: drop it */
        }
        close(fd);
        waitpid(pid, NULL, 0);
        pthread_mutex_lock(&w->hist_lock);
        w->watch_pid = 0;
        pthread_mutex_unlock(&w->hist_lock);
        if (!atomic_load(&w->stopping))
            sleep(1); /* it ended (killed?): start another */
    }
    return NULL;
}

/* --- answers --- */

static int send_all(int fd, const void *buf, size_t n)
{
    return net_write_all(fd, buf, n, WEB_IO_TIMEOUT_MS) == FS_OK ? 0 : -1;
}

/* Answers code with body; extra is "" or more header lines, each ending in \r\n. */
static void respond_h(int fd, int code, const char *type, const char *extra, const void *body,
                      size_t len)
{
    static const struct {
        int code;
        const char *text;
    } reasons[] = {{200, "OK"},          {303, "See Other"},            {400, "Bad Request"},
                   {401, "Unauthorized"},  {403, "Forbidden"},
                   {404, "Not Found"},   {405, "Method Not Allowed"},   {408, "Request Timeout"},
                   {413, "Payload Too Large"}, {431, "Request Header Fields Too Large"},
                   {500, "Internal Server Error"}, {503, "Service Unavailable"}};
    const char *reason = "Error";
    for (size_t i = 0; i < sizeof reasons / sizeof reasons[0]; i++)
        if (reasons[i].code == code)
            reason = reasons[i].text;
    char head[2048];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\nContent-Type: %s; charset=utf-8\r\n"
                     "Content-Length: %zu\r\nCache-Control: no-store\r\n"
                     "X-Content-Type-Options: nosniff\r\nX-Frame-Options: DENY\r\n"
                     "Referrer-Policy: no-referrer\r\n"
                     "Content-Security-Policy: default-src 'self'; style-src 'self'; "
                     "img-src 'self' data:\r\n%sConnection: close\r\n\r\n",
                     code, reason, type, len, extra);
    if (n < 0 || (size_t)n >= sizeof head)
        return; /* no extra header is this long */
    if (send_all(fd, head, (size_t)n) == 0 && len)
        send_all(fd, body, len);
}

static void respond(int fd, int code, const char *type, const void *body, size_t len)
{
    respond_h(fd, code, type, "", body, len);
}

/* An error as text the page shows as it is ("what was wrong"). */
static void respond_error(int fd, int code, const char *why)
{
    char body[300];
    int n = snprintf(body, sizeof body, "floodshare web: %s\n", why);
    respond(fd, code, "text/plain", body, (size_t)n);
}

/* --- peers of the run folder --- */

/* The ids of the run folder's peers (rundir_ids), sorted; returns how
 * many (at most cap). A folder that cannot be read has none. */
static size_t list_peers(const char *run_dir, unsigned *ids, size_t cap)
{
    long n = rundir_ids(run_dir, ids, cap);
    return n > 0 ? (size_t)n : 0;
}

/* Runs one control command on peer id, its stdout and stderr into
 * malloc'd strings (the caller frees both). Returns the exit code. */
static int run_ctl(const char *run_dir, unsigned id, int argc, char **argv, char **out, char **err)
{
    char sock[RUNDIR_PATH_MAX], why[RUNDIR_ERR_MAX];
    size_t olen = 0, elen = 0;
    FILE *fo = open_memstream(out, &olen), *fe = open_memstream(err, &elen);
    int code = CTL_EXIT_FAIL;

    if (fo && fe && rundir_sock_path(run_dir, id, sock, sizeof sock, why, sizeof why) != FS_OK) {
        fprintf(fe, "floodshare: %s\n", why);
        code = CTL_EXIT_USAGE;
    } else if (fo && fe) {
        code = ctl_call(sock, argc, argv, fo, fe, NULL);
    }
    if (fo)
        fclose(fo);
    else
        *out = NULL;
    if (fe)
        fclose(fe);
    else
        *err = NULL;
    return code;
}

/* Appends `"key":` and the JSON a peer printed (or null) to f. */
static void raw_member(FILE *f, const char *key, int code, const char *text)
{
    size_t n = text ? strlen(text) : 0;
    while (n && (text[n - 1] == '\n' || text[n - 1] == ' '))
        n--;
    fprintf(f, ",\"%s\":", key);
    if (code == CTL_EXIT_OK && n && (text[0] == '{' || text[0] == '['))
        fwrite(text, 1, n, f);
    else
        fputs("null", f);
}

/* GET /api/peers: every peer's config, share and stats, as they print
 * them with --json; "up": false for a peer that does not answer. */
static void api_peers(struct web *w, int fd)
{
    static const char *const cmds[] = {"config", "ls", "stats"};
    unsigned ids[WEB_MAX_PEERS];
    size_t n = list_peers(w->run_dir, ids, WEB_MAX_PEERS), len = 0;
    char *doc = NULL;
    FILE *f = open_memstream(&doc, &len);

    if (!f) {
        respond_error(fd, 500, "out of memory");
        return;
    }
    fprintf(f, "{\"run_dir\":");
    struct json j;
    json_init(&j, 8192);
    json_str(&j, NULL, w->run_dir);
    const char *rd = json_result(&j, NULL);
    fputs(rd ? rd : "null", f);
    json_free(&j);
    /* Events numbered below this happened before this answer: a page
     * that loads now lists them as the past and starts its live position
     * at the newest of them (issue 14: the dashboard opens at now). */
    pthread_mutex_lock(&w->hist_lock);
    unsigned long long now_seq = (unsigned long long)w->hist_seq;
    pthread_mutex_unlock(&w->hist_lock);
    fprintf(f, ",\"events_now\":%llu", now_seq);
    fputs(",\"peers\":[", f);
    for (size_t i = 0; i < n; i++) {
        fprintf(f, "%s{\"id\":%u", i ? "," : "", ids[i]);
        int up = 1;
        for (size_t c = 0; c < 3; c++) {
            char *argv[] = {(char *)cmds[c], "--json"};
            char *out = NULL, *err = NULL;
            int code = up ? run_ctl(w->run_dir, ids[i], 2, argv, &out, &err) : CTL_EXIT_NOPEER;
            if (code == CTL_EXIT_NOPEER)
                up = 0;
            raw_member(f, cmds[c], code, out);
            free(out);
            free(err);
        }
        fprintf(f, ",\"up\":%s}", up ? "true" : "false");
    }
    fputs("]}", f);
    fclose(f);
    respond(fd, 200, "application/json", doc, len);
    free(doc);
}

/* GET /api/topology: the run folder's topology.json as scripts/topology
 * wrote it (its layout hint, links and peers), not through a link; {} when
 * there is none. (By name, not through run_fd, which the stopping server
 * closes while page threads may still run.) */
static void api_topology_json(struct web *w, int fd)
{
    enum { MAX = 1024 * 1024 };
    char *buf = malloc(MAX), path[RUNDIR_PATH_MAX + 32];
    size_t len = 0;
    snprintf(path, sizeof path, "%s/topology.json", w->run_dir);
    int jf = buf ? open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC) : -1;
    while (jf >= 0 && len < MAX) {
        ssize_t r = read(jf, buf + len, MAX - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        len += (size_t)r;
    }
    if (jf >= 0)
        close(jf);
    if (jf < 0 || len == 0 || len == MAX)
        respond(fd, 200, "application/json", "{}", 2);
    else
        respond(fd, 200, "application/json", buf, len);
    free(buf);
}

#define WEB_TRACE_TIMEOUT_MS 30000 /* a summary picture that takes longer is given up */

/* GET /api/trace.svg?qid=HEX: one query's whole flood as one picture, the
 * very SVG `floodshare trace QID --svg FILE` draws (watch.c, with dot),
 * made by a child into a private temporary folder. */
static void api_trace_svg(struct web *w, int fd, const char *query)
{
    char qid[24], dir[] = "/tmp/floodshare-web-XXXXXX", file[64];
    size_t n;

    if (!webhttp_query(query, "qid", qid, sizeof qid) || (n = strlen(qid)) == 0 || n > 16 ||
        strspn(qid, "0123456789abcdef") != n) {
        respond_error(fd, 400, "expected ?qid= and a query id (up to 16 lower-case hex digits)");
        return;
    }
    if (!mkdtemp(dir)) {
        respond_error(fd, 500, "no temporary folder for the picture");
        return;
    }
    snprintf(file, sizeof file, "%s/q.svg", dir);
    pid_t pid = fork();
    if (pid == 0) {
        int null_fd = open("/dev/null", O_RDWR);
        if (null_fd >= 0) {
            dup2(null_fd, 0);
            dup2(null_fd, 1);
            dup2(null_fd, 2);
        }
        closefrom(3);
        execl("/proc/self/exe", "floodshare", "--run", w->run_dir, "trace", qid, "--svg", file,
              (char *)NULL);
        _exit(127);
    }
    int status = -1;
    for (int waited = 0; pid > 0; waited += 50) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid || (r < 0 && errno != EINTR))
            break;
        if (waited >= WEB_TRACE_TIMEOUT_MS) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            status = -1;
            break;
        }
        usleep(50 * 1000);
    }
    char *svg = NULL;
    size_t len = 0;
    FILE *f = status == 0 ? fopen(file, "re") : NULL;
    if (f) {
        svg = malloc(4 * 1024 * 1024);
        len = svg ? fread(svg, 1, 4 * 1024 * 1024, f) : 0;
        fclose(f);
    }
    unlink(file);
    rmdir(dir);
    if (svg && len > 0)
        respond(fd, 200, "image/svg+xml", svg, len);
    else
        respond_error(fd, 404, "no picture of that query: its events are gone from the peers' "
                      "rings, or dot (graphviz) is missing");
    free(svg);
}

/* Whether the page may run argv[0..argc) ("get", "3.txt", "--json"): NULL
 * if so, else why not, written into why[cap].
 *
 * An allow-list, not a deny-list: a command or a `modify` key added to the
 * peer later stays CLI-only until it is added here. Nothing the page may run
 * changes what a peer shares or whom it talks to (share_dir, neighbours):
 * whoever holds the dashboard's token must not be able to make a peer serve
 * /etc or join another network (issue 11). `get` adds a file to the share,
 * as a download must. The key of `modify` is found as the peer finds it
 * (cmd.c parse_args): the first argument that is not an option ("--..."). */
static const char *page_may_run(int argc, char **argv, char *why, size_t cap)
{
    static const char *const verbs[] = {"get",       "search", "ls",   "config", "stats",
                                        "transfers", "events", "link", "pause",  "resume",
                                        "modify",    "rm",     "browse", "send", "sync"};
    static const char *const modify_keys[] = {"ttl"};
    size_t v = 0;

    while (v < sizeof verbs / sizeof verbs[0] && strcmp(argv[0], verbs[v]) != 0)
        v++;
    if (v == sizeof verbs / sizeof verbs[0]) {
        snprintf(why, cap, "the dashboard does not run \"%.40s\": it runs get, search, ls, "
                 "config, stats, transfers, events, link, pause, resume, rm, browse, send, sync and modify ttl; "
                 "use the CLI for anything else", argv[0]);
        return why;
    }
    if (strcmp(argv[0], "modify") != 0)
        return NULL;
    int i = 1;
    while (i < argc && strncmp(argv[i], "--", 2) == 0)
        i++;
    if (i == argc)
        return NULL; /* no key: the peer says how modify is used */
    for (size_t k = 0; k < sizeof modify_keys / sizeof modify_keys[0]; k++)
        if (strcmp(argv[i], modify_keys[k]) == 0)
            return NULL;
    if (strcmp(argv[i], "share_dir") == 0 || strcmp(argv[i], "neighbours") == 0)
        snprintf(why, cap, "modify %s refused: use the CLI: the dashboard cannot change "
                 "share_dir or neighbours (what a peer shares and whom it talks to)", argv[i]);
    else
        snprintf(why, cap, "modify %.40s refused: the dashboard may modify only ttl; use the CLI "
                 "(floodshare peer N modify KEY VALUE)", argv[i]);
    return why;
}

static void respond_result(int fd, const char *line, int code, const char *out, const char *err);

/* POST /api/cmd: the body is one CLI command line, "peer N COMMAND ARGS",
 * split like the REPL splits it and, if page_may_run() lets it, run through
 * ctl_call exactly as `floodshare peer N COMMAND ARGS` would. */
static void api_cmd(struct web *w, int fd, const char *body, size_t len)
{
    char line[WEB_MAX_BODY + 1], storage[WEB_MAX_BODY + CTL_MAX_ARGS + 8], refused[256];
    char *argv[CTL_MAX_ARGS + 2];
    const char *why = NULL;

    memcpy(line, body, len);
    line[len] = '\0';
    if (memchr(body, '\0', len)) {
        respond_error(fd, 400, "NUL byte in the command");
        return;
    }
    int argc = cli_split(line, argv, CTL_MAX_ARGS + 2, storage, sizeof storage, &why);
    if (argc < 0) {
        respond_error(fd, 400, why);
        return;
    }
    char *end = NULL;
    unsigned long id = argc >= 3 ? strtoul(argv[1], &end, 10) : 0;
    if (argc < 3 || strcmp(argv[0], "peer") != 0 || !end || *end || id == 0 || id > 65535) {
        respond_error(fd, 400, "expected \"peer N COMMAND [ARGS...]\"");
        return;
    }
    if (strcmp(argv[2], "watch") == 0) {
        respond_error(fd, 400, "watch streams forever: the page reads /events instead");
        return;
    }
    if (page_may_run(argc - 2, argv + 2, refused, sizeof refused)) {
        respond_error(fd, 403, refused);
        return;
    }
    char *out = NULL, *err = NULL;
    int code = run_ctl(w->run_dir, (unsigned)id, argc - 2, argv + 2, &out, &err);
    respond_result(fd, line, code, out, err);
    free(out);
    free(err);
}

/* Answers a finished command as the page shows it: {command, exit,
 * stdout, stderr}. */
static void respond_result(int fd, const char *line, int code, const char *out, const char *err)
{
    struct json j;
    json_init(&j, 3 * WEB_CMD_OUT_MAX);
    json_obj_open(&j, NULL);
    json_str(&j, "command", line);
    json_int(&j, "exit", code);
    json_strn(&j, "stdout", out ? out : "", out ? strnlen(out, WEB_CMD_OUT_MAX) : 0);
    json_strn(&j, "stderr", err ? err : "", err ? strnlen(err, WEB_CMD_OUT_MAX) : 0);
    json_obj_close(&j);
    size_t dlen;
    const char *doc = json_result(&j, &dlen);
    if (doc)
        respond(fd, 200, "application/json", doc, dlen);
    else
        respond_error(fd, 500, "answer too large");
    json_free(&j);
}

/* POST /api/topology: "add-peer [--files ITEM ...]", "remove-peer N",
 * "link A B" or "unlink A B", run as scripts/topology on this dashboard's
 * own run folder (webtopo.h says what is allowed and why). */
static void api_topology(struct web *w, int fd, const char *body, size_t len)
{
    char line[WEB_MAX_BODY + 1], storage[WEB_MAX_BODY + CTL_MAX_ARGS + 8], refused[256];
    char *argv[CTL_MAX_ARGS + 2];
    const char *why = NULL;

    if (memchr(body, '\0', len)) {
        respond_error(fd, 400, "NUL byte in the command");
        return;
    }
    memcpy(line, body, len);
    line[len] = '\0';
    int argc = cli_split(line, argv, CTL_MAX_ARGS + 2, storage, sizeof storage, &why);
    if (argc < 0) {
        respond_error(fd, 400, why);
        return;
    }
    if (webtopo_check(argc, argv, refused, sizeof refused)) {
        respond_error(fd, 403, refused);
        return;
    }
    if (!w->topo_script[0]) {
        respond_error(fd, 503, "no scripts/topology next to this floodshare binary: reshape "
                      "from a terminal (scripts/topology link A B --run DIR)");
        return;
    }
    char *out = NULL, *err = NULL;
    pthread_mutex_lock(&w->topo_lock);
    int code = webtopo_run(w->topo_script, w->bin, w->run_dir, argc, argv, &out, &err);
    pthread_mutex_unlock(&w->topo_lock);
    respond_result(fd, line, code, out, err);
    free(out);
    free(err);
}

/* 1 if the page closed its end: it sends nothing after its request, so a
 * readable socket means end of stream (or junk: either way, done). */
static int page_gone(int fd)
{
    char c;
    ssize_t r = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return r == 0 || r > 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

/* GET /events: server-sent events, one per trace event, "id" its number
 * in this server's history; ?since=N skips those the page has. */
static void api_events(struct web *w, int fd, const char *query)
{
    static const char head[] = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                               "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n"
                               "Connection: close\r\n\r\n: floodshare events\n\n";
    char since_s[24];
    uint64_t next = 0, quiet_until = net_now_ms() + WEB_KEEPALIVE_MS;

    if (webhttp_query(query, "since", since_s, sizeof since_s))
        next = strtoull(since_s, NULL, 10);
    if (send_all(fd, head, sizeof head - 1) < 0)
        return;
    while (!atomic_load(&w->stopping)) {
        char *line = NULL;
        uint64_t seq = 0;
        pthread_mutex_lock(&w->hist_lock);
        if (next + WEB_HISTORY < w->hist_seq)
            next = w->hist_seq - WEB_HISTORY; /* older ones are gone */
        if (next >= w->hist_seq) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += WEB_EVENTS_POLL_MS / 1000;
            pthread_cond_timedwait(&w->hist_cond, &w->hist_lock, &ts);
        }
        if (next < w->hist_seq) {
            seq = next++;
            line = strdup(w->hist[seq % WEB_HISTORY]);
        }
        pthread_mutex_unlock(&w->hist_lock);
        char buf[16384];
        int n;
        if (!line && page_gone(fd))
            return; /* frees its connection slot now, not at the next keepalive */
        if (!line && net_now_ms() < quiet_until)
            continue;
        quiet_until = net_now_ms() + WEB_KEEPALIVE_MS;
        if (line) {
            n = snprintf(buf, sizeof buf, "id: %llu\ndata: %s\n\n", (unsigned long long)seq, line);
            free(line);
            if (n < 0 || (size_t)n >= sizeof buf)
                continue; /* no event is this long */
        } else {
            n = snprintf(buf, sizeof buf, ": keepalive\n\n");
        }
        if (send_all(fd, buf, (size_t)n) < 0)
            return; /* the page went away */
        /* a page that hung up is noticed at the next write, at most WEB_KEEPALIVE_MS on */
    }
}

/* --- one connection --- */

/* Host must name this server on loopback (a DNS-rebinding page cannot
 * make its requests look like that). */
static int host_ok(const struct web *w, const char *host)
{
    static const char *const names[] = {"127.0.0.1:", "localhost:", "[::1]:"};
    for (size_t i = 0; i < 3; i++) {
        size_t k = strlen(names[i]);
        if (strncmp(host, names[i], k) == 0 && strcmp(host + k, w->port) == 0)
            return 1;
    }
    return 0;
}

/* 1 if given is the token. The length is no secret (it is always
 * 2 * WEB_TOKEN_BYTES); the bytes are compared in constant time, so the
 * answer's timing says nothing of how much of a guess was right. */
static int token_is(const struct web *w, const char *given)
{
    size_t n = strnlen(given, WEB_TOKEN_MAX + 1);
    return n == w->token_len && CRYPTO_memcmp(given, w->token, n) == 0;
}

/* 1 if the request's ?token= is the token (then it may set the cookie). */
static int query_token_ok(const struct web *w, const struct web_req *r)
{
    char q[WEB_MAX_PATH]; /* as long as any query: never cut to a match */
    return webhttp_query(r->query, "token", q, sizeof q) && token_is(w, q);
}

/* 1 if the request proves it knows the token, in any of the ways a client
 * can send it: the cookie the page got (every cookie of that name: another
 * server on this host may have set a decoy for a narrower Path), Authorization:
 * Bearer, X-Floodshare-Token, or ?token=. */
static int token_ok(const struct web *w, const struct web_req *r, const char *head)
{
    char c[WEB_TOKEN_MAX + 1];
    int ok = (r->bearer[0] && token_is(w, r->bearer)) || (r->token[0] && token_is(w, r->token)) ||
             query_token_ok(w, r);
    for (size_t i = 0; !ok && i < WEB_MAX_COOKIES; i++) {
        int found = webhttp_cookie(head, r->head_len, w->cookie, i, c, sizeof c);
        if (found == 0)
            break;
        ok = found > 0 && token_is(w, c);
    }
    return ok;
}

/* 401 and nothing else: no page, no peers, no events. */
static void respond_unauthorized(int fd)
{
    static const char body[] =
        "floodshare web: this dashboard needs its token: open the URL `floodshare web` printed "
        "at start (the token is also in the run folder's web-PORT.token, readable only by the "
        "peers' user)\n";
    respond_h(fd, 401, "text/plain", "WWW-Authenticate: Bearer realm=\"floodshare web\"\r\n",
              body, sizeof body - 1);
}

/* GET / or /index.html with the right ?token=: set the cookie and send the
 * browser to the same URL without the token, so the address bar (on a
 * classroom projector), history and bookmarks never show it. HttpOnly: no
 * script reads it; SameSite=Strict: no other site's page sends it. */
static void respond_login(const struct web *w, int fd, const struct web_req *r)
{
    char rest[WEB_MAX_PATH] = "", extra[WEB_MAX_PATH * 2 + 256];
    size_t n = 0;
    const char *s = r->query;

    /* Every parameter but token=, in order; never longer than the query. */
    while (*s) {
        const char *amp = strchr(s, '&');
        size_t len = amp ? (size_t)(amp - s) : strlen(s);
        if (len && strncmp(s, "token=", 6) != 0) {
            if (n)
                rest[n++] = '&';
            memcpy(rest + n, s, len);
            n += len;
        }
        s = amp ? amp + 1 : s + len;
    }
    rest[n] = '\0';
    /* The target's bytes were checked (0x21..0x7e): no CR or LF gets into the header. */
    snprintf(extra, sizeof extra,
             "Location: %s%s%s\r\nSet-Cookie: %s=%s; Path=/; HttpOnly; SameSite=Strict\r\n",
             r->path, n ? "?" : "", rest, w->cookie, w->token);
    respond_h(fd, 303, "text/plain", extra, "", 0);
}

/* Reads the head and body of one request into buf. 0 with *req filled;
 * -1 after answering the error. */
static int read_request(int fd, char *buf, size_t cap, struct web_req *req, const char **body)
{
    size_t have = 0;
    uint64_t deadline = net_now_ms() + WEB_IO_TIMEOUT_MS;
    const char *why = NULL;
    fs_status st;

    for (;;) {
        st = webhttp_parse(buf, have, req, &why);
        if (st != FS_NEED_MORE)
            break;
        uint64_t now = net_now_ms();
        size_t got = 0;
        if (now >= deadline || net_read_some(fd, buf + have, WEB_MAX_HEAD - have, &got,
                                             (int)(deadline - now)) != FS_OK || got == 0) {
            if (have)
                respond_error(fd, 408, "the request did not come whole in time");
            return -1;
        }
        have += got;
    }
    if (st != FS_OK) {
        respond_error(fd, st == FS_ETOOBIG ? (req->content_length || !strstr(why, "head") ? 413 : 431)
                                           : 400, why);
        return -1;
    }
    while (have < req->head_len + req->content_length) {
        uint64_t now = net_now_ms();
        size_t got = 0;
        if (now >= deadline || net_read_some(fd, buf + have, cap - have, &got,
                                             (int)(deadline - now)) != FS_OK || got == 0) {
            respond_error(fd, 408, "the request body did not come whole in time");
            return -1;
        }
        have += got;
    }
    *body = buf + req->head_len;
    return 0;
}

static void serve(struct web *w, int fd)
{
    static char dummy;
    char buf[WEB_MAX_HEAD + WEB_MAX_BODY];
    struct web_req req;
    const char *body = &dummy;

    if (read_request(fd, buf, sizeof buf, &req, &body) < 0)
        return;
    if (!token_ok(w, &req, buf)) {
        respond_unauthorized(fd);
        return;
    }
    if (w->loopback && !host_ok(w, req.host)) {
        respond_error(fd, 403, "Host header does not name this server");
        return;
    }
    int get = strcmp(req.method, "GET") == 0;
    if (get && (strcmp(req.path, "/") == 0 || strcmp(req.path, "/index.html") == 0) &&
        query_token_ok(w, &req)) {
        respond_login(w, fd, &req);
        return;
    }
    if (strcmp(req.path, "/api/cmd") == 0) {
        if (get) {
            respond_error(fd, 405, "POST a command line to /api/cmd");
        } else if (!req.csrf_header) {
            /* Another site's page can POST here, but cannot add this header
             * without a CORS preflight, which we never allow. */
            respond_error(fd, 403, "POST /api/cmd needs the header X-Floodshare: 1");
        } else {
            api_cmd(w, fd, body, req.content_length);
        }
        return;
    }
    if (strcmp(req.path, "/api/topology") == 0) {
        if (get)
            api_topology_json(w, fd);
        else if (!req.csrf_header)
            respond_error(fd, 403, "POST /api/topology needs the header X-Floodshare: 1");
        else
            api_topology(w, fd, body, req.content_length);
        return;
    }
    if (!get) {
        respond_error(fd, 405, "only /api/cmd and /api/topology take POST");
        return;
    }
    if (strcmp(req.path, "/api/trace.svg") == 0) {
        api_trace_svg(w, fd, req.query);
        return;
    }
    if (strcmp(req.path, "/api/peers") == 0) {
        api_peers(w, fd);
        return;
    }
    if (strcmp(req.path, "/events") == 0) {
        api_events(w, fd, req.query);
        return;
    }
    for (size_t i = 0; i < web_n_assets; i++) {
        if (strcmp(req.path, web_assets[i].path) == 0 ||
            (strcmp(req.path, "/index.html") == 0 && strcmp(web_assets[i].path, "/") == 0)) {
            respond(fd, 200, web_assets[i].type, web_assets[i].data, web_assets[i].len);
            return;
        }
    }
    respond_error(fd, 404, "no such page");
}

struct conn_arg {
    struct web *w;
    int fd;
};

static void *conn_thread(void *arg)
{
    struct conn_arg *c = arg;
    serve(c->w, c->fd);
    shutdown(c->fd, SHUT_WR);
    close(c->fd);
    atomic_fetch_sub(&c->w->n_conn, 1);
    free(c);
    return NULL;
}

static void accept_one(struct web *w)
{
    int fd = accept4(w->listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0)
        return;
    if (atomic_fetch_add(&w->n_conn, 1) >= WEB_MAX_CONN) {
        /* Answered at once, before the request is read: the accept loop never waits. */
        respond_error(fd, 503, "too many connections: close a tab and reload");
        atomic_fetch_sub(&w->n_conn, 1);
        shutdown(fd, SHUT_WR);
        close(fd);
        return;
    }
    struct conn_arg *c = malloc(sizeof *c);
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (!c || pthread_create(&t, &attr, conn_thread, c ? (c->w = w, c->fd = fd, c) : NULL) != 0) {
        free(c);
        close(fd);
        atomic_fetch_sub(&w->n_conn, 1);
    }
    pthread_attr_destroy(&attr);
}

/* --- start-up --- */

#define WEB_READY_MS 3000 /* how long start-up waits for the watcher to reach every peer */

/* Waits (WEB_READY_MS at most) until every running peer has a watcher, so
 * that a command sent right after start-up shows in the event stream.
 * (Another `floodshare watch` already running would satisfy it early.) */
static void wait_watched(struct web *w)
{
    static char qid[] = "0000000000000000"; /* no query: just the counters */
    char *argv[] = {"events", "--json", qid};
    unsigned ids[WEB_MAX_PEERS];
    uint64_t deadline = net_now_ms() + WEB_READY_MS;

    for (;;) {
        size_t n = list_peers(w->run_dir, ids, WEB_MAX_PEERS), ready = 0;
        for (size_t i = 0; i < n; i++) {
            char *out = NULL, *err = NULL;
            int code = run_ctl(w->run_dir, ids[i], 3, argv, &out, &err);
            const char *at = out ? strstr(out, "\"watchers\":") : NULL;
            if (code == CTL_EXIT_NOPEER || (code == CTL_EXIT_OK && at && atoi(at + 11) > 0))
                ready++;
            free(out);
            free(err);
        }
        if (ready == n || net_now_ms() >= deadline)
            return;
        usleep(50 * 1000);
    }
}

/* Writes the token, one line, to the run folder as WEB_TOKEN_FILE, for the
 * scripts and tests that start the dashboard and for a teacher who lost the
 * URL. It is made under a temporary name with O_EXCL and mode 0600, so it is
 * never readable by anyone else, not for an instant and whatever the umask
 * (which only takes bits away), then renamed over the final name, so a
 * reader finds the whole token or none. Keeps the folder open in w->run_fd
 * to remove the file at exit. 0, or -1 after saying why on stderr. */
static int write_token_file(struct web *w, const char *run_dir)
{
    char tmp[64] = "", line[WEB_TOKEN_MAX + 2];
    unsigned char rnd[8];
    int fd = -1, rc = -1, err = 0;

    snprintf(w->token_file, sizeof w->token_file, WEB_TOKEN_FILE, w->port);
    w->run_fd = open(run_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (w->run_fd < 0) {
        fprintf(stderr, "floodshare web: cannot open the run folder %s for the token file: %s\n",
                run_dir, strerror(errno));
        return -1;
    }
    for (int tries = 0; fd < 0 && tries < 8; tries++) {
        if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
            err = errno;
            break;
        }
        snprintf(tmp, sizeof tmp, ".%s.%02x%02x%02x%02x%02x%02x%02x%02x", w->token_file, rnd[0],
                 rnd[1], rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
        fd = openat(w->run_fd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        err = errno;
        if (fd < 0 && err != EEXIST)
            break;
    }
    if (fd < 0) {
        tmp[0] = '\0'; /* not ours: nothing to remove */
        goto out;
    }
    size_t n = (size_t)snprintf(line, sizeof line, "%s\n", w->token), done = 0;
    while (done < n) {
        ssize_t r = write(fd, line + done, n - done);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            err = r < 0 ? errno : EIO;
            goto out;
        }
        done += (size_t)r;
    }
    int synced = fsync(fd);
    err = errno;
    if (close(fd) < 0 && synced == 0) {
        synced = -1;
        err = errno;
    }
    fd = -1;
    if (synced < 0)
        goto out;
    if (renameat(w->run_fd, tmp, w->run_fd, w->token_file) < 0) {
        err = errno;
        goto out;
    }
    tmp[0] = '\0';
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    if (tmp[0])
        unlinkat(w->run_fd, tmp, 0);
    if (rc < 0)
        fprintf(stderr, "floodshare web: cannot write the token file %s/%s: %s\n", run_dir,
                w->token_file, strerror(err));
    return rc;
}

/* Removes the token file (at exit: the token dies with this process). */
static void drop_token_file(struct web *w)
{
    if (w->run_fd < 0)
        return;
    unlinkat(w->run_fd, w->token_file, 0);
    close(w->run_fd);
    w->run_fd = -1;
}

static int is_loopback(const char *host)
{
    return strncmp(host, "127.", 4) == 0 || strcmp(host, "localhost") == 0 ||
           strcmp(host, "::1") == 0;
}

static void usage(FILE *f)
{
    fputs("usage: floodshare [--run DIR] web [--listen HOST:PORT] [--public]\n"
          "  --listen HOST:PORT  where to listen (default 127.0.0.1:8080)\n"
          "  --public            needed to listen on an address other than loopback (plain\n"
          "                      HTTP: whoever sees the traffic sees the token)\n"
          "Every request needs the token made at start: open the URL printed then (the\n"
          "token is also in DIR/web-PORT.token, mode 0600).\n",
          f);
}

static int parse_opts(int argc, char **argv, const char **run_dir, struct fs_addr *at, int *pub)
{
    static const struct option opts[] = {{"run", required_argument, NULL, 'r'},
                                         {"listen", required_argument, NULL, 'l'},
                                         {"public", no_argument, NULL, 'p'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *listen = "127.0.0.1:8080", *why = NULL;
    int c;

    *pub = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "+r:l:ph", opts, NULL)) != -1) {
        if (c == 'r') {
            *run_dir = optarg;
        } else if (c == 'l') {
            listen = optarg;
        } else if (c == 'p') {
            *pub = 1;
        } else if (c == 'h') {
            usage(stdout);
            return CTL_EXIT_OK;
        } else {
            usage(stderr);
            return CTL_EXIT_USAGE;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "floodshare web: unexpected argument \"%s\"\n", argv[optind]);
        usage(stderr);
        return CTL_EXIT_USAGE;
    }
    if (addr_parse(listen, strlen(listen), at, &why) != FS_OK) {
        fprintf(stderr, "floodshare web: --listen \"%s\": %s\n", listen, why ? why : "not HOST:PORT");
        return CTL_EXIT_USAGE;
    }
    if (!is_loopback(at->host) && !*pub) {
        fprintf(stderr, "floodshare web: %s is not a loopback address: the dashboard speaks plain "
                "HTTP, so whoever sees the traffic sees its token; add --public to listen there "
                "anyway\n", at->host);
        return CTL_EXIT_USAGE;
    }
    return -1;
}

/* The reshaping buttons run scripts/topology from the same checkout as this
 * binary (build/floodshare or build/NAME/floodshare, as scripts/test builds
 * it -> scripts/topology), never a path from the run folder or a request:
 * whoever can write those must not choose a program. */
static void find_topology_script(struct web *w)
{
    static const char *const up[] = {"/../scripts/topology", "/../../scripts/topology"};
    char guess[sizeof w->topo_script + 32];
    ssize_t n = readlink("/proc/self/exe", w->bin, sizeof w->bin - 1);

    w->topo_script[0] = '\0';
    if (n <= 0 || (size_t)n >= sizeof w->bin - 1)
        return;
    w->bin[n] = '\0';
    char *slash = strrchr(w->bin, '/');
    if (!slash)
        return;
    for (size_t i = 0; i < sizeof up / sizeof up[0] && !w->topo_script[0]; i++) {
        snprintf(guess, sizeof guess, "%.*s%s", (int)(slash - w->bin), w->bin, up[i]);
        char *real = realpath(guess, NULL);
        if (real && strlen(real) < sizeof w->topo_script && access(real, X_OK) == 0)
            snprintf(w->topo_script, sizeof w->topo_script, "%s", real);
        free(real);
    }
}

int web_main(const char *run_dir, int argc, char **argv)
{
    static struct web w; /* big (history); one per process */
    struct fs_addr at;
    int pub;

    int code = parse_opts(argc, argv, &run_dir, &at, &pub);
    if (code >= 0)
        return code;
    w.run_dir = run_dir;
    w.listen_fd = -1;
    w.run_fd = -1;
    w.loopback = !pub; /* --public: the token is the defence, from any Host */
    pthread_mutex_init(&w.hist_lock, NULL);
    pthread_cond_init(&w.hist_cond, NULL);
    pthread_mutex_init(&w.topo_lock, NULL);
    find_topology_script(&w);
    unsigned char rnd[WEB_TOKEN_BYTES];
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
        fprintf(stderr, "floodshare web: no random bytes for a token: %s\n", strerror(errno));
        return CTL_EXIT_FAIL;
    }
    for (size_t i = 0; i < sizeof rnd; i++)
        snprintf(w.token + 2 * i, 3, "%02x", rnd[i]);
    w.token_len = 2 * sizeof rnd;
    OPENSSL_cleanse(rnd, sizeof rnd);
    uint16_t bound = 0;
    fs_status st = net_listen_tcp(at.host, at.port, &w.listen_fd, &bound);
    if (st != FS_OK) {
        char shown[ADDR_STR_MAX];
        fprintf(stderr, "floodshare web: cannot listen on %s: %s\n", addr_format(&at, shown),
                fs_strerror(st));
        return CTL_EXIT_FAIL;
    }
    snprintf(w.port, sizeof w.port, "%u", bound);
    snprintf(w.cookie, sizeof w.cookie, "%s%s", WEB_COOKIE_PREFIX, w.port);
    if (write_token_file(&w, run_dir) < 0)
        return CTL_EXIT_FAIL;
    if (pipe2(w.stop_pipe, O_CLOEXEC) < 0) {
        perror("floodshare web: pipe");
        drop_token_file(&w);
        return CTL_EXIT_FAIL;
    }
    g_web = &w;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    pthread_t watcher;
    if (pthread_create(&watcher, NULL, watch_thread, &w) != 0) {
        fprintf(stderr, "floodshare web: cannot start the event watcher\n");
        drop_token_file(&w);
        return CTL_EXIT_FAIL;
    }
    wait_watched(&w);
    /* A URL writes an IPv6 host in brackets (RFC 3986), like addr_format(). */
    int v6 = strchr(at.host, ':') != NULL;
    printf("floodshare web: dashboard of %s at http://%s%s%s:%s/?token=%s\n", run_dir,
           v6 ? "[" : "", w.loopback && !v6 ? "127.0.0.1" : at.host, v6 ? "]" : "", w.port,
           w.token);
    printf("floodshare web: token %s (every request needs it; also in %s/%s, mode 0600)\n",
           w.token, run_dir, w.token_file);
    fflush(stdout);

    struct pollfd fds[2] = {{w.listen_fd, POLLIN, 0}, {w.stop_pipe[0], POLLIN, 0}};
    while (!atomic_load(&w.stopping)) {
        if (poll(fds, 2, -1) < 0 && errno != EINTR)
            break;
        if (fds[0].revents & POLLIN)
            accept_one(&w);
    }
    /* Stop the watcher child; page threads end at their next write. */
    pthread_mutex_lock(&w.hist_lock);
    if (w.watch_pid > 0)
        kill(w.watch_pid, SIGTERM);
    pthread_cond_broadcast(&w.hist_cond);
    pthread_mutex_unlock(&w.hist_lock);
    pthread_join(watcher, NULL);
    close(w.listen_fd);
    drop_token_file(&w);
    for (int i = 0; i < 50 && atomic_load(&w.n_conn) > 0; i++)
        usleep(100 * 1000); /* give page threads 5 s to notice */
    pthread_mutex_lock(&w.hist_lock);
    for (size_t i = 0; i < WEB_HISTORY; i++)
        free(w.hist[i]);
    pthread_mutex_unlock(&w.hist_lock);
    printf("floodshare web: stopped\n");
    return CTL_EXIT_OK;
}
