/* cfg.c - a peer's INI file: load and validate with iniparser, edit in place
 * with a small line editor so that comments and layout survive. */
#include "floodshare/cfg.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <iniparser/iniparser.h>

#include "floodshare/log.h"
#include "floodshare/rate.h"

/* A peer's INI is a few hundred bytes; a file this large is a mistake. */
#define CFG_FILE_MAX (1024 * 1024)
#define QUOTE_MAX 120 /* bytes of a value shown in an error message */
#define QUOTE_BUF (QUOTE_MAX * 4 + 8)
#define INI_KEY_MAX 64 /* "section:key" of every key we look up */

struct loader {
    dictionary *d;
    const char *path; /* the file actually read */
    const char *name; /* the file named in errors */
    struct cfg *c;
    char *err;
    size_t errcap;
};

struct limit_key {
    const char *key;
    size_t off; /* of the unsigned field in struct cfg */
    unsigned def, lo, hi;
};

static const struct limit_key limit_keys[] = {
    {"workers", offsetof(struct cfg, workers), 16, 1, 256},
    {"max_queue", offsetof(struct cfg, max_queue), 64, 1, 4096},
    {"io_timeout_ms", offsetof(struct cfg, io_timeout_ms), 10000, 100, 600000},
    {"connect_timeout_ms", offsetof(struct cfg, connect_timeout_ms), 2000, 100, 60000},
    {"hit_window_ms", offsetof(struct cfg, hit_window_ms), 2000, 10, 60000},
    {"query_cache_size", offsetof(struct cfg, query_cache_size), 4096, 16, 1048576},
    {"query_cache_ttl_ms", offsetof(struct cfg, query_cache_ttl_ms), 120000, 1000, 3600000},
    {"max_ttl", offsetof(struct cfg, max_ttl), 15, 1, 15},
    {"max_conns", offsetof(struct cfg, max_conns), 1024, 16, 65536},
    {"max_conns_per_addr", offsetof(struct cfg, max_conns_per_addr), 256, 1, 65536},
    {"query_rate", offsetof(struct cfg, query_rate), 100, 1, 1000000},
    {"query_burst", offsetof(struct cfg, query_burst), 200, 1, 1000000},
    {"upload_slots", offsetof(struct cfg, upload_slots), 8, 1, 1024},
    {"upload_slots_per_addr", offsetof(struct cfg, upload_slots_per_addr), 2, 1, 1024},
    {"min_upload_rate", offsetof(struct cfg, min_upload_rate), 16384, 0, 1073741824},
    {"get_timeout_ms", offsetof(struct cfg, get_timeout_ms), 120000, 0, 86400000},
    {"max_sources", offsetof(struct cfg, max_sources), 4, 1, 8},
};
#define N_LIMIT_KEYS (sizeof limit_keys / sizeof limit_keys[0])

/* Rates in bytes per second with a K, M or G suffix (rate_parse()). */
static const struct rate_key {
    const char *key;
    size_t off; /* of the uint64_t field in struct cfg; the default is 0: no limit */
} rate_keys[] = {
    {"upload_rate", offsetof(struct cfg, upload_rate)},
    {"download_rate", offsetof(struct cfg, download_rate)},
};
#define N_RATE_KEYS (sizeof rate_keys / sizeof rate_keys[0])

static const char *const peer_keys[] = {"id",  "host",      "port", "advertise",
                                        "share_dir", "ttl", "log_level", NULL};
#define PEER_KEYS "id, host, port, advertise, share_dir, ttl, log_level"
#define LIMIT_KEYS                                                                      \
    "workers, max_queue, io_timeout_ms, connect_timeout_ms, hit_window_ms, "            \
    "query_cache_size, query_cache_ttl_ms, max_ttl, max_conns, max_conns_per_addr, "     \
    "query_rate, query_burst, upload_slots, upload_slots_per_addr, min_upload_rate, "   \
    "get_timeout_ms, max_sources, upload_rate, download_rate"
#define NEIGHBOUR_SEPS ", \t"
/* [accept]: what this peer lets others do to it (browse.h). */
static const char *const accept_keys[] = {"browse", "send_from", "quota", "max_item", NULL};
#define ACCEPT_KEYS "browse, send_from, quota, max_item"
static const char *const security_keys[] = {"passphrase", "key", "trusted", "keylog", NULL};
#define SECURITY_KEYS "passphrase, key, trusted, keylog"
#define PASSPHRASE_MIN 8

/* ---------- error messages ---------- */

static void vput_err(char *err, size_t cap, const char *name, const char *sec, const char *key,
                     const char *fmt, va_list ap) __attribute__((format(printf, 6, 0)));
static void put_err(char *err, size_t cap, const char *name, const char *sec, const char *key,
                    const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static fs_status fail(const struct loader *ld, const char *sec, const char *key, const char *fmt,
                      ...) __attribute__((format(printf, 4, 5)));

/* Writes "name: [sec] key: message". Any control byte left in the result
 * (from a file, section or key name) becomes '?' so the error is one line. */
static void vput_err(char *err, size_t cap, const char *name, const char *sec, const char *key,
                     const char *fmt, va_list ap)
{
    int n;

    if (!err || cap == 0)
        return;
    if (sec && key)
        n = snprintf(err, cap, "%s: [%s] %s: ", name, sec, key);
    else if (sec)
        n = snprintf(err, cap, "%s: [%s]: ", name, sec);
    else if (key)
        n = snprintf(err, cap, "%s: %s: ", name, key);
    else
        n = snprintf(err, cap, "%s: ", name);
    if (n >= 0 && (size_t)n < cap)
        vsnprintf(err + n, cap - (size_t)n, fmt, ap);
    for (char *p = err; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
}

static void put_err(char *err, size_t cap, const char *name, const char *sec, const char *key,
                    const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vput_err(err, cap, name, sec, key, fmt, ap);
    va_end(ap);
}

static fs_status fail(const struct loader *ld, const char *sec, const char *key, const char *fmt,
                      ...)
{
    va_list ap;

    va_start(ap, fmt);
    vput_err(ld->err, ld->errcap, ld->name, sec, key, fmt, ap);
    va_end(ap);
    return FS_ECONFIG;
}

/* Quotes s[0..n) for an error message. Unlike log_escape() it keeps bytes
 * >= 0x80, so UTF-8 folder names stay readable; only control bytes, '"' and
 * '\\' are written \xNN. Returns dst. */
static const char *quote(char dst[QUOTE_BUF], const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    size_t lim = n < QUOTE_MAX ? n : QUOTE_MAX;

    dst[o++] = '"';
    for (size_t i = 0; i < lim; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f || c == '"' || c == '\\') {
            dst[o++] = '\\';
            dst[o++] = 'x';
            dst[o++] = hex[c >> 4];
            dst[o++] = hex[c & 15];
        } else {
            dst[o++] = (char)c;
        }
    }
    dst[o++] = '"';
    if (n > lim) {
        memcpy(dst + o, "...", 3);
        o += 3;
    }
    dst[o] = '\0';
    return dst;
}

/* ---------- reading the INI ---------- */

/* iniparser reports problems through one process-wide printf-like callback;
 * ours keeps the first message of the current thread's load. */
static _Thread_local char ini_msg[256];
static pthread_once_t ini_once = PTHREAD_ONCE_INIT;

static int ini_error_cb(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int ini_error_cb(const char *fmt, ...)
{
    va_list ap;

    if (ini_msg[0])
        return 0;
    va_start(ap, fmt);
    vsnprintf(ini_msg, sizeof ini_msg, fmt, ap);
    va_end(ap);
    return 0;
}

static void ini_install_cb(void)
{
    iniparser_set_error_callback(ini_error_cb);
}

/* iniparser 4.1 says "iniparser: <what> in <file> (<line>)[:\n-> <text>]";
 * rebuild that as one line that names our file rather than the one read. */
static fs_status ini_syntax_error(const struct loader *ld)
{
    const char *msg = ini_msg;
    const char *at;
    const char *text;
    unsigned long line;
    char q[QUOTE_BUF];

    if (strncmp(msg, "iniparser: ", 11) == 0)
        msg += 11;
    at = strstr(msg, ld->path);
    if (!at || at - msg < 4 || strncmp(at - 4, " in ", 4) != 0 ||
        sscanf(at + strlen(ld->path), " (%lu)", &line) != 1)
        return fail(ld, NULL, NULL, "cannot be read as INI: %s",
                    msg[0] ? quote(q, msg, strlen(msg)) : "out of memory?");
    text = strstr(at, "-> ");
    if (!text)
        return fail(ld, NULL, NULL, "line %lu: %.*s", line, (int)(at - 4 - msg), msg);
    text += 3;
    return fail(ld, NULL, NULL, "line %lu: %.*s: %s (expected [section] or key = value)", line,
                (int)(at - 4 - msg), msg, quote(q, text, strcspn(text, "\n")));
}

/* FS_EIO unless path is a readable regular file; FS_ECONFIG if it is huge. */
static fs_status check_file(const struct loader *ld)
{
    struct stat sb;
    int fd = open(ld->path, O_RDONLY | O_CLOEXEC);
    fs_status st = FS_OK;

    if (fd < 0) {
        fail(ld, NULL, NULL, "cannot open: %s", strerror(errno));
        return FS_EIO;
    }
    if (fstat(fd, &sb) != 0) {
        fail(ld, NULL, NULL, "cannot stat: %s", strerror(errno));
        st = FS_EIO;
    } else if (!S_ISREG(sb.st_mode)) {
        fail(ld, NULL, NULL, "is not a regular file");
        st = FS_EIO;
    } else if (sb.st_size > CFG_FILE_MAX) {
        st = fail(ld, NULL, NULL, "is larger than %d bytes", CFG_FILE_MAX);
    }
    close(fd);
    return st;
}

static fs_status parse_ini(struct loader *ld)
{
    pthread_once(&ini_once, ini_install_cb);
    ini_msg[0] = '\0';
    ld->d = iniparser_load(ld->path);
    return ld->d ? FS_OK : ini_syntax_error(ld);
}

/* The value of [sec] key, or NULL if absent. */
static const char *get(const struct loader *ld, const char *sec, const char *key)
{
    char k[INI_KEY_MAX];

    snprintf(k, sizeof k, "%s:%s", sec, key);
    return iniparser_getstring(ld->d, k, NULL);
}

/* ---------- section and key names ---------- */

static int limit_known(const char *key)
{
    for (size_t i = 0; i < N_LIMIT_KEYS; i++)
        if (strcmp(key, limit_keys[i].key) == 0)
            return 1;
    for (size_t i = 0; i < N_RATE_KEYS; i++)
        if (strcmp(key, rate_keys[i].key) == 0)
            return 1;
    return 0;
}

static int security_known(const char *key)
{
    for (size_t i = 0; security_keys[i]; i++)
        if (strcmp(key, security_keys[i]) == 0)
            return 1;
    return 0;
}

static int accept_known(const char *key)
{
    for (size_t i = 0; accept_keys[i]; i++)
        if (strcmp(key, accept_keys[i]) == 0)
            return 1;
    return 0;
}

static int peer_known(const char *key)
{
    for (size_t i = 0; peer_keys[i]; i++)
        if (strcmp(key, peer_keys[i]) == 0)
            return 1;
    return 0;
}

/* Checks the keys of a known section; keys come back as "sec:key". */
static fs_status check_keys(const struct loader *ld, const char *sec)
{
    int n = iniparser_getsecnkeys(ld->d, sec);
    const char **keys;
    size_t skip = strlen(sec) + 1;
    fs_status st = FS_OK;

    if (n <= 0)
        return FS_OK;
    keys = calloc((size_t)n, sizeof *keys);
    if (!keys) {
        fail(ld, sec, NULL, "out of memory");
        return FS_ENOMEM;
    }
    iniparser_getseckeys(ld->d, sec, keys);
    for (int i = 0; i < n && !st; i++) {
        const char *key;
        if (!keys[i])
            continue;
        key = keys[i] + skip;
        if (strcmp(sec, "peer") == 0 && !peer_known(key))
            st = fail(ld, sec, key, "unknown key (expected " PEER_KEYS ")");
        else if (strcmp(sec, "neighbours") == 0 && strcmp(key, "peers") != 0)
            st = fail(ld, sec, key, "unknown key (expected peers)");
        else if (strcmp(sec, "limits") == 0 && !limit_known(key))
            st = fail(ld, sec, key, "unknown key (expected " LIMIT_KEYS ")");
        else if (strcmp(sec, "security") == 0 && !security_known(key))
            st = fail(ld, sec, key, "unknown key (expected " SECURITY_KEYS ")");
        else if (strcmp(sec, "accept") == 0 && !accept_known(key))
            st = fail(ld, sec, key, "unknown key (expected " ACCEPT_KEYS ")");
    }
    free(keys);
    return st;
}

/* iniparser 4.1 files a key written before any [section] as ":key", which no
 * section query returns, so the dictionary itself has to be walked. */
static fs_status check_orphans(const struct loader *ld)
{
    for (ssize_t i = 0; i < ld->d->size; i++) {
        const char *k = ld->d->key[i];
        if (k && k[0] == ':')
            return fail(ld, NULL, k + 1, "setting outside any section (put it under [peer], "
                                         "[neighbours], [limits], [security], [accept] or "
                                         "[sync])");
    }
    return FS_OK;
}

/* Unknown names are reported before anything else: a misspelt key would
 * otherwise show up as a confusing "missing". */
static fs_status check_names(const struct loader *ld)
{
    int nsec = iniparser_getnsec(ld->d);

    for (int i = 0; i < nsec; i++) {
        const char *sec = iniparser_getsecname(ld->d, i);
        fs_status st;
        if (strcmp(sec, "peer") != 0 && strcmp(sec, "neighbours") != 0 &&
            strcmp(sec, "limits") != 0 && strcmp(sec, "security") != 0 &&
            strcmp(sec, "accept") != 0 && strcmp(sec, "sync") != 0)
            return fail(ld, sec, NULL, "unknown section (expected [peer], [neighbours], "
                                       "[limits], [security], [accept] or [sync])");
        st = check_keys(ld, sec);
        if (st)
            return st;
    }
    return check_orphans(ld);
}

/* ---------- values ---------- */

/* Strict decimal: one or more digits, nothing else. Values too large for
 * any range saturate rather than wrap. Returns -1 if s is not a number. */
static int parse_dec(const char *s, unsigned long long *v)
{
    unsigned long long x = 0;

    if (!*s)
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        if (x < 1000000000000ULL)
            x = x * 10 + (unsigned)(*s - '0');
    }
    *v = x;
    return 0;
}

/* Reads [sec] key into *out, in lo..hi; an absent optional key leaves *out
 * as it is (the default). note is added to the range in messages. */
static fs_status get_uint(const struct loader *ld, const char *sec, const char *key,
                          int required, unsigned lo, unsigned hi, const char *note,
                          unsigned *out)
{
    const char *v = get(ld, sec, key);
    unsigned long long x;
    char q[QUOTE_BUF];

    if (!v)
        return required ? fail(ld, sec, key, "missing") : FS_OK;
    if (parse_dec(v, &x) != 0)
        return fail(ld, sec, key, "%s is not a whole number (%u..%u%s)",
                    quote(q, v, strlen(v)), lo, hi, note);
    if (x < lo || x > hi)
        return fail(ld, sec, key, "%s is out of range (%u..%u%s)", quote(q, v, strlen(v)), lo,
                    hi, note);
    *out = (unsigned)x;
    return FS_OK;
}

static fs_status load_limits(const struct loader *ld)
{
    for (size_t i = 0; i < N_LIMIT_KEYS; i++) {
        const struct limit_key *k = &limit_keys[i];
        unsigned *field = (unsigned *)(void *)((char *)ld->c + k->off);
        fs_status st;

        *field = k->def;
        st = get_uint(ld, "limits", k->key, 0, k->lo, k->hi, "", field);
        if (st)
            return st;
    }
    for (size_t i = 0; i < N_RATE_KEYS; i++) {
        uint64_t *field = (uint64_t *)(void *)((char *)ld->c + rate_keys[i].off);
        const char *v = get(ld, "limits", rate_keys[i].key), *why;
        char q[QUOTE_BUF];

        *field = 0;
        if (v && rate_parse(v, strlen(v), field, &why) != FS_OK)
            return fail(ld, "limits", rate_keys[i].key, "%s %s", quote(q, v, strlen(v)), why);
    }
    return FS_OK;
}

/* [peer] host: an IPv4 address, a name, or an IPv6 address bare or in
 * brackets (addr_parse_host()). */
static fs_status load_host(const struct loader *ld)
{
    const char *v = get(ld, "peer", "host");
    const char *why;
    char q[QUOTE_BUF];
    size_t n;

    if (!v)
        return fail(ld, "peer", "host", "missing");
    n = strlen(v);
    if (addr_parse_host(v, n, ld->c->host, &why) != FS_OK)
        return fail(ld, "peer", "host", "%s is not an IPv4 or IPv6 address or host name (%s)",
                    quote(q, v, n), why);
    return FS_OK;
}

/* [peer] advertise, after host and port. A wildcard host cannot be dialled,
 * so it needs an advertise address; without one the peer would name itself
 * 0.0.0.0 on the wire and every link it dials would fail its proof. */
static fs_status load_advertise(const struct loader *ld)
{
    const char *v = get(ld, "peer", "advertise");
    struct cfg *c = ld->c;
    const char *why;
    char q[QUOTE_BUF];

    c->advertise_set = v != NULL;
    if (!v) {
        if (addr_is_wildcard(c->host))
            return fail(ld, "peer", "advertise",
                        "missing: host \"%s\" is a wildcard no neighbour can dial; set advertise "
                        "= HOST:PORT, the address neighbours reach this peer at",
                        c->host);
        memcpy(c->advertise.host, c->host, sizeof c->advertise.host);
        c->advertise.port = c->port;
        return FS_OK;
    }
    if (addr_parse(v, strlen(v), &c->advertise, &why) != FS_OK)
        return fail(ld, "peer", "advertise", "%s is not HOST:PORT or [IPv6]:PORT (%s)",
                    quote(q, v, strlen(v)), why);
    if (addr_is_wildcard(c->advertise.host))
        return fail(ld, "peer", "advertise", "%s is a wildcard no neighbour can dial",
                    quote(q, v, strlen(v)));
    return FS_OK;
}

static fs_status load_port(const struct loader *ld)
{
    const char *v = get(ld, "peer", "port");
    char q[QUOTE_BUF];

    if (!v)
        return fail(ld, "peer", "port", "missing");
    if (addr_parse_port(v, &ld->c->port) != FS_OK)
        return fail(ld, "peer", "port", "%s is not a port number (1..65535)",
                    quote(q, v, strlen(v)));
    return FS_OK;
}

/* The absolute (real) folder that holds path, into out[PATH_MAX]. */
static int ini_folder(const char *path, char *out)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');

    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == path)
        snprintf(dir, sizeof dir, "/");
    else
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    return realpath(dir, out) ? 0 : -1;
}

static fs_status resolve_share_dir(const struct loader *ld, const char *v)
{
    char base[PATH_MAX];
    char joined[PATH_MAX];
    char q[QUOTE_BUF];
    struct stat sb;
    int n;

    if (v[0] == '/')
        n = snprintf(joined, sizeof joined, "%s", v);
    else if (ini_folder(ld->path, base) != 0)
        return fail(ld, "peer", "share_dir", "cannot resolve the INI file's folder: %s",
                    strerror(errno));
    else
        n = snprintf(joined, sizeof joined, "%s/%s", base, v);
    if (n < 0 || (size_t)n >= sizeof joined)
        return fail(ld, "peer", "share_dir", "%s is too long", quote(q, v, strlen(v)));
    if (!realpath(joined, ld->c->share_dir)) {
        if (errno == ENOENT || errno == ENOTDIR)
            return fail(ld, "peer", "share_dir", "%s does not exist (resolved to %s)",
                        quote(q, v, strlen(v)), joined);
        return fail(ld, "peer", "share_dir", "%s cannot be resolved (%s): %s",
                    quote(q, v, strlen(v)), joined, strerror(errno));
    }
    if (stat(ld->c->share_dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return fail(ld, "peer", "share_dir", "%s is not a directory (resolved to %s)",
                    quote(q, v, strlen(v)), ld->c->share_dir);
    return FS_OK;
}

static fs_status load_share_dir(const struct loader *ld)
{
    const char *v = get(ld, "peer", "share_dir");
    char q[QUOTE_BUF];

    if (!v)
        return fail(ld, "peer", "share_dir", "missing");
    if (!v[0])
        return fail(ld, "peer", "share_dir", "is empty");
    if (strlen(v) >= sizeof ld->c->share_dir_raw)
        return fail(ld, "peer", "share_dir", "%s is too long", quote(q, v, strlen(v)));
    strcpy(ld->c->share_dir_raw, v);
    return resolve_share_dir(ld, v);
}

static fs_status load_log_level(const struct loader *ld)
{
    const char *v = get(ld, "peer", "log_level");
    char q[QUOTE_BUF];
    int level;

    ld->c->log_level = L_INFO;
    if (!v)
        return FS_OK;
    level = log_level_parse(v);
    if (level < 0)
        return fail(ld, "peer", "log_level", "%s is not a log level (error, warn, info, debug)",
                    quote(q, v, strlen(v)));
    ld->c->log_level = level;
    return FS_OK;
}

/* Needs [limits] loaded first: ttl is bounded by max_ttl. */
static fs_status load_peer(const struct loader *ld)
{
    struct cfg *c = ld->c;
    fs_status st;

    st = get_uint(ld, "peer", "id", 1, 1, 65535, "", &c->id);
    if (!st)
        st = load_host(ld);
    if (!st)
        st = load_port(ld);
    if (!st)
        st = load_advertise(ld);
    if (!st)
        st = load_share_dir(ld);
    if (!st)
        st = get_uint(ld, "peer", "ttl", 1, 1, c->max_ttl,
                      c->max_ttl < 15 ? ", at most [limits] max_ttl" : "", &c->ttl);
    if (!st)
        st = load_log_level(ld);
    return st;
}

static fs_status add_neighbour(const struct loader *ld, const char *s, size_t n)
{
    struct cfg *c = ld->c;
    struct fs_addr a;
    struct fs_addr self;
    const char *why;
    char q[QUOTE_BUF];

    if (addr_parse(s, n, &a, &why) != FS_OK)
        return fail(ld, "neighbours", "peers", "%s is not host:port (%s)", quote(q, s, n), why);
    memcpy(self.host, c->host, sizeof self.host);
    self.port = c->port;
    if (addr_equal(&a, &self) || addr_equal(&a, &c->advertise))
        return fail(ld, "neighbours", "peers", "%s is this peer itself", quote(q, s, n));
    for (size_t i = 0; i < c->n_neighbours; i++)
        if (addr_equal(&a, &c->neighbours[i]))
            return fail(ld, "neighbours", "peers", "%s is listed twice", quote(q, s, n));
    if (c->n_neighbours == CFG_MAX_NEIGHBOURS)
        return fail(ld, "neighbours", "peers", "more than %d neighbours", CFG_MAX_NEIGHBOURS);
    c->neighbours[c->n_neighbours++] = a;
    return FS_OK;
}

/* Needs [peer] loaded first, to refuse this peer's own address. */
static fs_status load_neighbours(const struct loader *ld)
{
    const char *p = get(ld, "neighbours", "peers");

    if (!p)
        return FS_OK;
    for (;;) {
        size_t n;
        fs_status st;

        p += strspn(p, NEIGHBOUR_SEPS);
        n = strcspn(p, NEIGHBOUR_SEPS);
        if (n == 0)
            return FS_OK;
        st = add_neighbour(ld, p, n);
        if (st)
            return st;
        p += n;
    }
}

/* A file named in [security] key, relative to the INI's folder, into out
 * (PATH_MAX). The file itself is checked by whoever opens it. */
static fs_status security_path(const struct loader *ld, const char *key, const char *v,
                               char *out)
{
    char base[PATH_MAX];
    char q[QUOTE_BUF];
    int n;

    if (v[0] == '/')
        n = snprintf(out, PATH_MAX, "%s", v);
    else if (ini_folder(ld->path, base) != 0)
        return fail(ld, "security", key, "cannot resolve the INI file's folder: %s",
                    strerror(errno));
    else
        n = snprintf(out, PATH_MAX, "%s/%s", base, v);
    if (n < 0 || n >= PATH_MAX)
        return fail(ld, "security", key, "%s is too long", quote(q, v, strlen(v)));
    return FS_OK;
}

static fs_status load_security(const struct loader *ld)
{
    struct cfg *c = ld->c;
    const char *pass = get(ld, "security", "passphrase"), *key = get(ld, "security", "key");
    const char *trusted = get(ld, "security", "trusted"), *keylog = get(ld, "security", "keylog");
    char q[QUOTE_BUF];
    fs_status st = FS_OK;

    if (pass) {
        size_t n = strlen(pass);
        if (n < PASSPHRASE_MIN || n > CFG_PASSPHRASE_MAX)
            return fail(ld, "security", "passphrase", "must be %d..%d bytes long (it has %zu)",
                        PASSPHRASE_MIN, CFG_PASSPHRASE_MAX, n);
        memcpy(c->passphrase, pass, n + 1);
    }
    if (pass && key)
        return fail(ld, "security", "key", "a passphrase and a key together: choose one "
                    "(passphrase: one shared secret; key + trusted: a key per peer)");
    if (trusted && !key)
        return fail(ld, "security", "trusted", "needs [security] key (this peer's own key)");
    if (key) {
        if (!*key)
            return fail(ld, "security", "key", "is empty (a key file made by floodshare keygen)");
        st = security_path(ld, "key", key, c->key_file);
        if (st)
            return st;
        if (!trusted || !*trusted)
            return fail(ld, "security", "trusted", "missing: with a key, list the fingerprints "
                        "(SHA256:...) of the peers this one may talk to");
        const char *why, *bad = trusted;
        size_t bad_len = 0;
        if (fp_parse_list(trusted, strlen(trusted), c->trusted, FP_MAX_TRUSTED, &c->n_trusted,
                          &why, &bad, &bad_len) != FS_OK)
            return fail(ld, "security", "trusted", "%s: %s", quote(q, bad, bad_len), why);
        if (c->n_trusted == 0)
            return fail(ld, "security", "trusted", "lists no fingerprint");
    }
    if (keylog && *keylog) {
        if (!pass && !key)
            return fail(ld, "security", "keylog", "needs a passphrase or a key: plain traffic "
                        "has no keys to log");
        st = security_path(ld, "keylog", keylog, c->keylog);
    }
    return st;
}

/* A byte count with an optional K, M, G or T suffix (powers of 1024), at
 * least 1 and at most CFG_SIZE_MAX, or "unlimited" (0). -1 otherwise. */
static int parse_size(const char *s, uint64_t *out)
{
    unsigned long long x = 0;
    size_t n = strlen(s), digits = strspn(s, "0123456789");
    unsigned shift = 0;

    if (strcmp(s, "unlimited") == 0) {
        *out = 0;
        return 0;
    }
    if (digits == 0 || digits > 15 || n > digits + 1)
        return -1;
    if (n == digits + 1) {
        const char *suf = strchr("KkMmGgTt", s[digits]);
        if (!suf || !s[digits])
            return -1;
        shift = 10u * (unsigned)((suf - "KkMmGgTt") / 2 + 1);
    }
    for (size_t i = 0; i < digits; i++)
        x = x * 10 + (unsigned)(s[i] - '0');
    if (x == 0 || x > (CFG_SIZE_MAX >> shift))
        return -1;
    *out = (uint64_t)x << shift;
    return 0;
}

static fs_status load_accept_send(const struct loader *ld)
{
    struct cfg *c = ld->c;
    const char *v = get(ld, "accept", "send_from");
    char q[QUOTE_BUF];

    c->send_from = CFG_ACCEPT_NEIGHBOURS;
    if (v) {
        int a = cfg_accept_parse(v);
        if (a < 0)
            return fail(ld, "accept", "send_from", "%s is not none, neighbours or any",
                        quote(q, v, strlen(v)));
        c->send_from = (enum cfg_accept)a;
    }
    static const struct {
        const char *key;
        size_t off;
    } sizes[] = {{"quota", offsetof(struct cfg, quota)},
                 {"max_item", offsetof(struct cfg, max_item)}};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        uint64_t *field = (uint64_t *)(void *)((char *)c + sizes[i].off);
        *field = 0;
        v = get(ld, "accept", sizes[i].key);
        if (v && parse_size(v, field) != 0)
            return fail(ld, "accept", sizes[i].key,
                        "%s is not a size (bytes, or a number with K, M, G or T: powers of "
                        "1024; at least 1, at most 1024T; or unlimited)",
                        quote(q, v, strlen(v)));
    }
    return FS_OK;
}

/* [accept] browse = any|neighbours|none, default any. */
static fs_status load_accept(const struct loader *ld)
{
    const char *v = get(ld, "accept", "browse");
    char q[QUOTE_BUF];

    ld->c->accept_browse = CFG_ACCEPT_ANY;
    if (!v)
        return FS_OK;
    int a = cfg_accept_parse(v);
    if (a < 0)
        return fail(ld, "accept", "browse", "%s is not any, neighbours or none",
                    quote(q, v, strlen(v)));
    ld->c->accept_browse = (enum cfg_accept)a;
    return FS_OK;
}

int cfg_accept_parse(const char *s)
{
    if (strcmp(s, "any") == 0)
        return CFG_ACCEPT_ANY;
    if (strcmp(s, "neighbours") == 0)
        return CFG_ACCEPT_NEIGHBOURS;
    if (strcmp(s, "none") == 0)
        return CFG_ACCEPT_NONE;
    return -1;
}

const char *cfg_accept_name(enum cfg_accept a)
{
    switch (a) {
    case CFG_ACCEPT_ANY: return "any";
    case CFG_ACCEPT_NEIGHBOURS: return "neighbours";
    case CFG_ACCEPT_NONE: return "none";
    }
    return "?";
}

static fs_status load_sync(const struct loader *ld);

/* cfg_load() of path, but errors name the file `name`: cfg_set() validates
 * a temporary file and must report the real one. */
static fs_status load_as(const char *path, const char *name, struct cfg *out, char *err,
                         size_t errcap)
{
    struct loader ld = {.path = path, .name = name, .c = out, .err = err, .errcap = errcap};
    fs_status st;

    memset(out, 0, sizeof *out);
    if (err && errcap)
        err[0] = '\0';
    if (strlen(name) >= sizeof out->path)
        return fail(&ld, NULL, NULL, "path is too long");
    strcpy(out->path, name);
    st = check_file(&ld);
    if (st)
        return st;
    st = parse_ini(&ld);
    if (st)
        return st;
    st = check_names(&ld);
    if (!st)
        st = load_limits(&ld);
    if (!st)
        st = load_peer(&ld);
    if (!st)
        st = load_neighbours(&ld);
    if (!st)
        st = load_security(&ld);
    if (!st)
        st = load_accept(&ld);
    if (!st)
        st = load_accept_send(&ld);
    if (!st)
        st = load_sync(&ld);
    iniparser_freedict(ld.d);
    return st;
}

fs_status cfg_load(const char *path, struct cfg *out, char *err, size_t errcap)
{
    return load_as(path, path, out, err, errcap);
}

/* ---------- editing in place ---------- */

struct span {
    size_t start, end, next; /* text [start, end), line ending [end, next) */
};

enum line_kind { LINE_BLANK, LINE_COMMENT, LINE_SECTION, LINE_SETTING, LINE_OTHER };

struct plan {
    int in_sec;           /* the line being scanned is in a matching section */
    int have_sec, have_key;
    struct span key_line; /* the last matching key: iniparser keeps the last one */
    struct span anchor;   /* the last header or setting of the last matching section */
    const char *eol;      /* the file's own line ending, for lines we add */
};

/* The bounded output of the editor; len keeps counting past cap so that an
 * undersized buffer is detected rather than overrun. */
struct out {
    char *p;
    size_t len, cap;
};

static void put(struct out *o, const char *s, size_t n)
{
    if (n <= o->cap && o->len <= o->cap - n)
        memcpy(o->p + o->len, s, n);
    o->len += n;
}

static void put_str(struct out *o, const char *s)
{
    put(o, s, strlen(s));
}

static void next_line(const char *t, size_t len, size_t pos, struct span *ln)
{
    const char *nl = memchr(t + pos, '\n', len - pos);

    ln->start = pos;
    ln->end = nl ? (size_t)(nl - t) : len;
    ln->next = nl ? ln->end + 1 : len;
    if (ln->end > pos && t[ln->end - 1] == '\r')
        ln->end--;
}

static int is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

static void trim(const char **s, size_t *n)
{
    while (*n && is_blank(**s)) {
        (*s)++;
        (*n)--;
    }
    while (*n && is_blank((*s)[*n - 1]))
        (*n)--;
}

/* Classifies one line as iniparser would; *name gets the section name or the
 * key, trimmed. */
static enum line_kind classify(const char *s, size_t n, const char **name, size_t *nlen)
{
    const char *cut;

    trim(&s, &n);
    if (n == 0)
        return LINE_BLANK;
    if (s[0] == ';' || s[0] == '#')
        return LINE_COMMENT;
    if (s[0] == '[') {
        cut = memchr(s, ']', n);
        if (!cut)
            return LINE_OTHER;
        *name = s + 1;
        *nlen = (size_t)(cut - s - 1);
        trim(name, nlen);
        return LINE_SECTION;
    }
    cut = memchr(s, '=', n);
    if (!cut)
        return LINE_OTHER;
    *name = s;
    *nlen = (size_t)(cut - s);
    trim(name, nlen);
    return LINE_SETTING;
}

static int name_is(const char *name, size_t n, const char *want)
{
    return n == strlen(want) && strncasecmp(name, want, n) == 0;
}

static void plan_edit(const char *t, size_t len, const char *section, const char *key,
                      struct plan *p)
{
    struct span ln;

    memset(p, 0, sizeof *p);
    p->eol = "\n";
    for (size_t pos = 0; pos < len; pos = ln.next) {
        const char *name = NULL;
        size_t n = 0;
        enum line_kind k;

        next_line(t, len, pos, &ln);
        if (pos == 0 && ln.next > ln.end + 1)
            p->eol = "\r\n";
        k = classify(t + ln.start, ln.end - ln.start, &name, &n);
        if (k == LINE_SECTION) {
            p->in_sec = name_is(name, n, section);
            if (p->in_sec) {
                p->have_sec = 1;
                p->anchor = ln;
            }
        } else if (k == LINE_SETTING && p->in_sec) {
            p->anchor = ln;
            if (name_is(name, n, key)) {
                p->have_key = 1;
                p->key_line = ln;
            }
        }
    }
}

/* Where the comment of a setting line starts (n if none). iniparser ends a
 * value at the first ';' or '#', except inside a value in quotes. */
static size_t comment_start(const char *s, size_t vs, size_t n)
{
    size_t from = vs;

    if (vs < n && (s[vs] == '"' || s[vs] == '\'')) {
        const char *close = memchr(s + vs + 1, s[vs], n - vs - 1);
        if (close)
            from = (size_t)(close - s) + 1;
    }
    for (size_t i = from; i < n; i++)
        if (s[i] == ';' || s[i] == '#')
            return i;
    return n;
}

/* Keeps a trailing comment in its column: a gap of spaces grows or shrinks
 * by the change in value length, never below one space. A gap holding a tab
 * is kept as it is, since a tab's width depends on where it starts. */
static void put_gap(struct out *o, const char *gap, size_t glen, size_t oldlen, size_t newlen)
{
    size_t want = glen + oldlen;

    if (memchr(gap, '\t', glen)) {
        put(o, gap, glen);
        return;
    }
    want = want > newlen ? want - newlen : 0;
    for (size_t i = 0; i < (want ? want : 1); i++)
        put(o, " ", 1);
}

/* Writes the setting line s[0..n) with its value replaced, keeping the
 * indentation, the key as written, the spacing around '=' and the comment. */
static void put_replaced(struct out *o, const char *s, size_t n, const char *value)
{
    size_t eq = (size_t)((const char *)memchr(s, '=', n) - s);
    size_t vs = eq + 1;
    size_t cs, ve, vlen = strlen(value);
    int space;

    while (vs < n && (s[vs] == ' ' || s[vs] == '\t'))
        vs++;
    cs = comment_start(s, vs, n);
    ve = cs;
    while (ve > vs && is_blank(s[ve - 1]))
        ve--;
    /* "key =" with no value yet: give "key = value", not "key =value". */
    space = ve == vs && vs == eq + 1 && eq > 0 && is_blank(s[eq - 1]) && vlen > 0;
    put(o, s, vs);
    put(o, " ", (size_t)space);
    put(o, value, vlen);
    if (cs == n)
        return;
    put_gap(o, s + ve, cs - ve, ve - vs, vlen + (size_t)space);
    put(o, s + cs, n - cs);
}

static void put_setting(struct out *o, const char *key, const char *value, const char *eol)
{
    put_str(o, key);
    put_str(o, " = ");
    put_str(o, value);
    put_str(o, eol);
}

/* Builds the edited text into o. A missing key goes after the last header or
 * setting of its section rather than after trailing comments, because a
 * comment block at the end of a section usually introduces the next one. */
static void edit_text(const char *t, size_t len, const char *section, const char *key,
                      const char *value, struct out *o)
{
    struct plan p;

    plan_edit(t, len, section, key, &p);
    if (p.have_key) {
        put(o, t, p.key_line.start);
        put_replaced(o, t + p.key_line.start, p.key_line.end - p.key_line.start, value);
        put(o, t + p.key_line.end, len - p.key_line.end);
    } else if (p.have_sec) {
        put(o, t, p.anchor.next);
        if (p.anchor.next == p.anchor.end)
            put_str(o, p.eol);
        put_setting(o, key, value, p.eol);
        put(o, t + p.anchor.next, len - p.anchor.next);
    } else {
        put(o, t, len);
        if (len > 0 && t[len - 1] != '\n')
            put_str(o, p.eol);
        if (len > 0)
            put_str(o, p.eol);
        put_str(o, "[");
        put_str(o, section);
        put_str(o, "]");
        put_str(o, p.eol);
        put_setting(o, key, value, p.eol);
    }
}

static int name_ok(const char *s)
{
    if (!s || !*s)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || *s == '-' || *s == '.'))
            return 0;
    return 1;
}

static fs_status check_set_args(const char *path, const char *section, const char *key,
                                const char *value, char *err, size_t errcap)
{
    if (!path) {
        put_err(err, errcap, "cfg_set", NULL, NULL, "no file given");
        return FS_EINVAL;
    }
    if (!name_ok(section) || !name_ok(key)) {
        put_err(err, errcap, path, NULL, NULL,
                "section and key names are letters, digits, '_', '-' and '.'");
        return FS_EINVAL;
    }
    if (!value || strpbrk(value, "\r\n;#")) {
        put_err(err, errcap, path, section, key,
                "a value must not contain a line break, ';' or '#'");
        return FS_EINVAL;
    }
    return FS_OK;
}

/* Reads fd to its end into buf[0..cap); -1 on error, or if the file does
 * not fit (it grew since it was measured). */
static int read_to_end(int fd, char *buf, size_t cap, size_t *len)
{
    *len = 0;
    for (;;) {
        ssize_t r = read(fd, buf + *len, cap - *len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        if (r == 0)
            return 0;
        *len += (size_t)r;
        if (*len == cap) {
            errno = EFBIG;
            return -1;
        }
    }
}

/* Reads the whole (small) file at path into a NUL-terminated *text, which
 * the caller frees; *mode gets its permission bits. */
static fs_status read_small(const char *path, const char *name, char **text, size_t *len,
                            mode_t *mode, char *err, size_t errcap)
{
    struct stat sb;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    fs_status st = FS_EIO;

    *text = NULL;
    *len = 0;
    if (fd < 0) {
        put_err(err, errcap, name, NULL, NULL, "cannot open: %s", strerror(errno));
        return FS_EIO;
    }
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) || sb.st_size > CFG_FILE_MAX) {
        put_err(err, errcap, name, NULL, NULL, "is not a regular file of at most %d bytes",
                CFG_FILE_MAX);
        goto out;
    }
    *mode = sb.st_mode & 07777;
    *text = malloc((size_t)sb.st_size + 1);
    if (!*text) {
        st = FS_ENOMEM;
        put_err(err, errcap, name, NULL, NULL, "out of memory");
    } else if (read_to_end(fd, *text, (size_t)sb.st_size + 1, len) != 0) {
        put_err(err, errcap, name, NULL, NULL, "cannot read: %s", strerror(errno));
    } else {
        (*text)[*len] = '\0';
        st = FS_OK;
    }
out:
    close(fd);
    if (st) {
        free(*text);
        *text = NULL;
    }
    return st;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Fills the new temporary file and closes fd either way. */
static fs_status fill_temp(int fd, const char *data, size_t len, mode_t mode, const char *name,
                           char *err, size_t errcap)
{
    int bad = fchmod(fd, mode) != 0 || write_all(fd, data, len) != 0 || fsync(fd) != 0;
    int saved = errno;

    if (close(fd) != 0 && !bad) {
        bad = 1;
        saved = errno;
    }
    if (!bad)
        return FS_OK;
    put_err(err, errcap, name, NULL, NULL, "cannot write the new version: %s", strerror(saved));
    return FS_EIO;
}

/* Makes the rename durable: the folder's entry must reach the disk too. */
static fs_status sync_folder(const char *dir, const char *name, char *err, size_t errcap)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int bad = fd < 0 || fsync(fd) != 0;
    int saved = errno;

    if (fd >= 0)
        close(fd);
    if (!bad)
        return FS_OK;
    put_err(err, errcap, name, NULL, NULL, "replaced, but syncing its folder failed: %s",
            strerror(saved));
    return FS_EIO;
}

/* Replaces target (an absolute real path) with data, if data is a valid
 * configuration; name is the file as the caller gave it, for errors. */
static fs_status replace_file(const char *target, const char *name, const char *data, size_t len,
                              mode_t mode, char *err, size_t errcap)
{
    const char *slash = strrchr(target, '/');
    char dir[PATH_MAX];
    char tmp[PATH_MAX];
    struct cfg *scratch = NULL;
    fs_status st;
    int fd;
    int n;

    snprintf(dir, sizeof dir, "%.*s", slash == target ? 1 : (int)(slash - target), target);
    n = snprintf(tmp, sizeof tmp, "%s/.%s.XXXXXX", slash == target ? "" : dir, slash + 1);
    if (n < 0 || (size_t)n >= sizeof tmp) {
        put_err(err, errcap, name, NULL, NULL, "path is too long");
        return FS_EIO;
    }
    fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) {
        put_err(err, errcap, name, NULL, NULL, "cannot create a temporary file next to it: %s",
                strerror(errno));
        return FS_EIO;
    }
    st = fill_temp(fd, data, len, mode, name, err, errcap);
    if (!st) {
        scratch = malloc(sizeof *scratch);
        st = scratch ? load_as(tmp, name, scratch, err, errcap) : FS_ENOMEM;
    }
    if (!st && rename(tmp, target) != 0) {
        put_err(err, errcap, name, NULL, NULL, "cannot replace: %s", strerror(errno));
        st = FS_EIO;
    }
    if (st)
        unlink(tmp);
    else
        st = sync_folder(dir, name, err, errcap);
    free(scratch);
    return st;
}

fs_status cfg_set(const char *path, const char *section, const char *key, const char *value,
                  char *err, size_t errcap)
{
    char target[PATH_MAX];
    struct out o = {0};
    char *text = NULL;
    size_t len;
    mode_t mode = 0600;
    fs_status st;

    if (err && errcap)
        err[0] = '\0';
    st = check_set_args(path, section, key, value, err, errcap);
    if (st)
        return st;
    /* Edit the file a symbolic link points to, rather than replace the link. */
    if (!realpath(path, target)) {
        put_err(err, errcap, path, NULL, NULL, "cannot open: %s", strerror(errno));
        return FS_EIO;
    }
    st = read_small(target, path, &text, &len, &mode, err, errcap);
    if (st)
        return st;
    o.cap = len + strlen(section) + strlen(key) + 2 * strlen(value) + 32;
    o.p = malloc(o.cap);
    if (!o.p) {
        put_err(err, errcap, path, NULL, NULL, "out of memory");
        st = FS_ENOMEM;
        goto out;
    }
    edit_text(text, len, section, key, value, &o);
    if (o.len > o.cap) {
        put_err(err, errcap, path, NULL, NULL, "internal error: edit buffer too small");
        st = FS_ENOMEM;
        goto out;
    }
    st = replace_file(target, path, o.p, o.len, mode, err, errcap);
out:
    free(text);
    free(o.p);
    return st;
}

/* ---------- [sync] ---------- */

/* A [sync] key is an item name, whose case matters, and iniparser folds
 * keys to lower case: the section is read again from the text itself, line
 * by line with the editor's rules above (classify(), comment_start()), so
 * what is loaded is what cfg_set() would see. */

/* The value of the setting line s[0..n): after its '=', trimmed, without
 * its trailing comment or surrounding quotes, as iniparser reads it. */
static void setting_value(const char *s, size_t n, const char **v, size_t *vn)
{
    const char *eq = memchr(s, '=', n);
    size_t vs = eq ? (size_t)(eq - s) + 1 : n;

    while (vs < n && is_blank(s[vs]))
        vs++;
    *v = s + vs;
    *vn = comment_start(s, vs, n) - vs;
    trim(v, vn);
    if (*vn >= 2 && ((*v)[0] == '"' || (*v)[0] == '\'') && (*v)[*vn - 1] == (*v)[0]) {
        (*v)++;
        *vn -= 2;
    }
}

static fs_status load_sync_interval(const struct loader *ld, const char *v, size_t n)
{
    char q[QUOTE_BUF], num[24];
    unsigned long long x = 0;

    if (n == 0 || n >= sizeof num)
        x = ~0ull;
    if (!x) {
        memcpy(num, v, n);
        num[n] = '\0';
        if (parse_dec(num, &x) != 0)
            return fail(ld, "sync", "interval", "%s is not a whole number of seconds (1..%u)",
                        quote(q, v, n), CFG_SYNC_INTERVAL_MAX);
    }
    if (x < 1 || x > CFG_SYNC_INTERVAL_MAX)
        return fail(ld, "sync", "interval", "%s is out of range (1..%u seconds)", quote(q, v, n),
                    CFG_SYNC_INTERVAL_MAX);
    ld->c->sync_interval = (unsigned)x;
    return FS_OK;
}

/* PEER of a pair: a peer id of the run folder (resolved when the pair runs:
 * the folder is known then, not here) or HOST:PORT; never this peer. */
static fs_status sync_peer(const struct loader *ld, const char *key, const char *v, size_t n,
                           struct cfg_sync_pair *p)
{
    struct cfg *c = ld->c;
    char q[QUOTE_BUF];
    const char *why = "bad address";

    if (n == 0)
        return fail(ld, "sync", key, "no peer (write NAME = PEER: a peer id of the run folder "
                                     "or HOST:PORT)");
    if (n >= sizeof p->peer)
        return fail(ld, "sync", key, "%s is not a peer id of the run folder nor HOST:PORT (too "
                                     "long)", quote(q, v, n));
    memcpy(p->peer, v, n);
    p->peer[n] = '\0';
    if (strspn(p->peer, "0123456789") == n) {
        unsigned long long id;
        if (parse_dec(p->peer, &id) != 0 || id < 1 || id > 65535 || p->peer[0] == '0')
            return fail(ld, "sync", key, "%s is not a peer id (1..65535)", quote(q, v, n));
        if (id == c->id)
            return fail(ld, "sync", key, "%s is this peer itself", quote(q, v, n));
        p->peer_id = (unsigned)id;
        return FS_OK;
    }
    struct fs_addr self;
    if (addr_parse(v, n, &p->addr, &why) != FS_OK)
        return fail(ld, "sync", key, "%s is not a peer id of the run folder nor HOST:PORT (%s)",
                    quote(q, v, n), why);
    memcpy(self.host, c->host, sizeof self.host);
    self.port = c->port;
    if (addr_equal(&p->addr, &self) || addr_equal(&p->addr, &c->advertise))
        return fail(ld, "sync", key, "%s is this peer itself", quote(q, v, n));
    return FS_OK;
}

static fs_status add_sync_pair(const struct loader *ld, const char *k, size_t kn, const char *v,
                               size_t vn)
{
    struct cfg *c = ld->c;
    char key[NAME_MAX_LEN + 1], q[QUOTE_BUF];

    if (kn > NAME_MAX_LEN || !name_valid(k, kn))
        return fail(ld, "sync", quote(q, k, kn),
                    "is not the name of a top-level item of the share (one name: no '/', not "
                    ". or .., valid UTF-8, at most %d bytes)", NAME_MAX_LEN);
    memcpy(key, k, kn);
    key[kn] = '\0';
    for (size_t i = 0; i < c->n_sync; i++)
        if (strcmp(c->sync[i].name, key) == 0)
            return fail(ld, "sync", key, "listed twice");
    if (c->n_sync == CFG_MAX_SYNC)
        return fail(ld, "sync", key, "more than %d pairs", CFG_MAX_SYNC);
    struct cfg_sync_pair *p = &c->sync[c->n_sync];
    memset(p, 0, sizeof *p);
    memcpy(p->name, key, kn + 1);
    fs_status st = sync_peer(ld, key, v, vn, p);
    if (!st)
        c->n_sync++;
    return st;
}

/* Needs [peer] loaded first, to refuse this peer as its own PEER. */
static fs_status load_sync(const struct loader *ld)
{
    char *text;
    size_t len;
    mode_t mode;
    struct span ln;
    int in_sec = 0;
    fs_status st;

    ld->c->sync_interval = CFG_SYNC_INTERVAL_DEF;
    ld->c->n_sync = 0;
    if (!iniparser_find_entry(ld->d, "sync"))
        return FS_OK;
    st = read_small(ld->path, ld->name, &text, &len, &mode, ld->err, ld->errcap);
    if (st)
        return st;
    for (size_t pos = 0; pos < len && !st; pos = ln.next) {
        const char *name = NULL, *v;
        size_t n = 0, vn;

        next_line(text, len, pos, &ln);
        enum line_kind k = classify(text + ln.start, ln.end - ln.start, &name, &n);
        if (k == LINE_SECTION) {
            in_sec = name_is(name, n, "sync");
        } else if (k == LINE_SETTING && in_sec) {
            setting_value(text + ln.start, ln.end - ln.start, &v, &vn);
            st = name_is(name, n, "interval") ? load_sync_interval(ld, v, vn)
                                              : add_sync_pair(ld, name, n, v, vn);
        }
    }
    free(text);
    return st;
}
