/* syncstate.c - the sync state file (parse, format, save, load), the
 * decision table and conflict names of docs/SYNC.md. */
#include "floodshare/syncstate.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "floodshare/hash.h"

#define NSEC_DIGITS 9
/* Longest record line without its '\n': md5, size (20 digits), mtime
 * ('-', 20 digits, '.', 9), every path byte encoded, and the spaces. */
#define LINE_MAX_LEN (MSG_MD5_LEN + 1 + 20 + 1 + 31 + 1 + 3 * PATH_MAX_LEN)

/* --- parsing --- */

/* Cuts the next space-separated field off [*p, end): its start and length. */
static int field(const char **p, const char *end, const char **f, size_t *n)
{
    const char *sp = memchr(*p, ' ', (size_t)(end - *p));

    *f = *p;
    *n = (size_t)((sp ? sp : end) - *p);
    *p = sp ? sp + 1 : end;
    return *n > 0;
}

/* "SEC.NSEC": SEC as msg_dec_u64() with an optional '-' (not "-0"), NSEC
 * exactly 9 digits. */
static int parse_mtime(const char *s, size_t n, struct timespec *ts)
{
    const char *dot = memchr(s, '.', n);
    int neg = n > 0 && s[0] == '-';
    uint64_t sec, nsec;

    if (!dot || (size_t)(s + n - dot - 1) != NSEC_DIGITS)
        return 0;
    if (!msg_dec_u64(s + neg, (size_t)(dot - s) - (size_t)neg, &sec) ||
        sec > (uint64_t)INT64_MAX || (neg && sec == 0))
        return 0;
    for (int i = 1; i <= NSEC_DIGITS; i++)
        if (dot[i] < '0' || dot[i] > '9')
            return 0;
    nsec = 0; /* fixed width: leading zeros are part of it */
    for (int i = 1; i <= NSEC_DIGITS; i++)
        nsec = nsec * 10 + (uint64_t)(dot[i] - '0');
    ts->tv_sec = neg ? -(time_t)sec : (time_t)sec;
    ts->tv_nsec = (long)nsec;
    return 1;
}

/* One record line [p, end) into *f, its decoded path at *arena. */
static fs_status parse_record(const char *p, const char *end, struct syncstate_file *f,
                              char **arena, const char **why)
{
    const char *s;
    size_t n;

    if (!field(&p, end, &s, &n) || n != MSG_MD5_LEN)
        return *why = "a record's md5 is not 32 hex digits", FS_EPROTO;
    memcpy(f->v.md5, s, MSG_MD5_LEN);
    f->v.md5[MSG_MD5_LEN] = '\0';
    if (!hash_hex_valid(f->v.md5))
        return *why = "a record's md5 is not 32 hex digits", FS_EPROTO;
    if (!field(&p, end, &s, &n) || !msg_dec_u64(s, n, &f->v.size) || f->v.size > INT64_MAX)
        return *why = "a record's size is not a decimal number", FS_EPROTO;
    if (!field(&p, end, &s, &n) || !parse_mtime(s, n, &f->v.mtime))
        return *why = "a record's mtime is not SECONDS.NANOSECONDS", FS_EPROTO;
    n = (size_t)(end - p);
    if (n == 0 || n > 3 * PATH_MAX_LEN)
        return *why = "a record's path is missing or too long", FS_EPROTO;
    int len = msg_pct_decode(p, n, *arena, PATH_MAX_LEN + 1);
    if (len <= 0)
        return *why = "a record's path has a bad escape", FS_EPROTO;
    /* path_valid(): no "..", not absolute, no empty or invalid part. */
    if (!path_valid(*arena, (size_t)len))
        return *why = "a record's path is not a valid relative path", FS_EPROTO;
    f->path = *arena;
    *arena += len + 1;
    return FS_OK;
}

/* The "from" line [p, end) into *from. */
static fs_status parse_from(const char *p, const char *end, struct fs_addr *from,
                            const char **why)
{
    if (end - p < 5 || memcmp(p, "from ", 5) != 0)
        return *why = "the second line is not \"from HOST:PORT\"", FS_EPROTO;
    if (addr_parse(p + 5, (size_t)(end - p - 5), from, NULL) != FS_OK)
        return *why = "the from line is not a valid HOST:PORT", FS_EPROTO;
    return FS_OK;
}

/* Sizes out's arrays for text of len bytes: a record per remaining line,
 * every path no longer than its encoding. */
static fs_status alloc_for(const char *text, size_t len, struct syncstate *out,
                           const char **why)
{
    size_t lines = 0;

    for (const char *p = text; (p = memchr(p, '\n', len - (size_t)(p - text))); p++)
        lines++;
    if (lines > SYNCSTATE_MAX_FILES + 2)
        return *why = "more records than a state may hold", FS_ETOOBIG;
    out->files = calloc(lines ? lines : 1, sizeof *out->files);
    out->paths = malloc(len + 1);
    if (!out->files || !out->paths)
        return *why = "out of memory", FS_ENOMEM;
    return FS_OK;
}

static fs_status parse_body(const char *text, size_t len, struct syncstate *out,
                            const char **why)
{
    const char *p = text, *end = text + len;
    char *arena = out->paths;
    size_t magic = strlen(SYNCSTATE_MAGIC);

    if (len <= magic || memcmp(text, SYNCSTATE_MAGIC, magic) != 0 || text[magic] != '\n')
        return *why = "not a sync state (no \"" SYNCSTATE_MAGIC "\" line)", FS_EPROTO;
    if (text[len - 1] != '\n')
        return *why = "the last line is torn (no newline)", FS_EPROTO;
    if (memchr(text, '\0', len))
        return *why = "a NUL byte", FS_EPROTO;
    p += magic + 1;
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    if (!nl)
        return *why = "no from line", FS_EPROTO;
    fs_status st = parse_from(p, nl, &out->from, why);
    for (p = nl + 1; st == FS_OK && p < end; p = nl + 1) {
        nl = memchr(p, '\n', (size_t)(end - p));
        if ((size_t)(nl - p) > LINE_MAX_LEN)
            return *why = "a record line is too long", FS_EPROTO;
        st = parse_record(p, nl, &out->files[out->n], &arena, why);
        if (st == FS_OK && out->n > 0 &&
            strcmp(out->files[out->n - 1].path, out->files[out->n].path) >= 0)
            return *why = "records out of order or repeated", FS_EPROTO;
        if (st == FS_OK)
            out->n++;
    }
    return st;
}

fs_status syncstate_parse(const char *text, size_t len, struct syncstate *out, const char **why)
{
    const char *ignored;

    if (!why)
        why = &ignored;
    memset(out, 0, sizeof *out);
    if (len > SYNCSTATE_MAX_BYTES)
        return *why = "larger than a state may be", FS_ETOOBIG;
    fs_status st = alloc_for(text, len, out, why);
    if (st == FS_OK)
        st = parse_body(text, len, out, why);
    if (st)
        syncstate_free(out);
    return st;
}

void syncstate_free(struct syncstate *st)
{
    if (!st)
        return;
    free(st->files);
    free(st->paths);
    memset(st, 0, sizeof *st);
}

static int cmp_path(const void *a, const void *b)
{
    return strcmp(((const struct syncstate_file *)a)->path,
                  ((const struct syncstate_file *)b)->path);
}

void syncstate_sort(struct syncstate *st)
{
    if (st->n > 1)
        qsort(st->files, st->n, sizeof *st->files, cmp_path);
}

const struct syncstate_file *syncstate_find(const struct syncstate *st, const char *path)
{
    struct syncstate_file key = {.path = (char *)path};

    if (st->n == 0)
        return NULL;
    return bsearch(&key, st->files, st->n, sizeof key, cmp_path);
}

/* --- formatting --- */

static int record_valid(const struct syncstate_file *f)
{
    return hash_hex_valid(f->v.md5) && f->v.size <= INT64_MAX && f->v.mtime.tv_nsec >= 0 &&
           f->v.mtime.tv_nsec < 1000000000L && f->v.mtime.tv_sec > INT64_MIN && f->path &&
           path_valid(f->path, strlen(f->path));
}

/* Bytes of f's line at most: its fields, its path with every byte encoded. */
static size_t record_room(const struct syncstate_file *f)
{
    return MSG_MD5_LEN + 1 + 20 + 1 + 31 + 1 + 3 * strlen(f->path) + 2;
}

/* Appends f's line at text + *at (room for record_room(f) bytes). */
static void format_record(const struct syncstate_file *f, char *text, size_t *at)
{
    int64_t sec = (int64_t)f->v.mtime.tv_sec;
    uint64_t mag = sec < 0 ? (uint64_t)(-sec) : (uint64_t)sec;

    *at += (size_t)sprintf(text + *at, "%s %" PRIu64 " %s%" PRIu64 ".%09ld ", f->v.md5,
                           f->v.size, sec < 0 ? "-" : "", mag, f->v.mtime.tv_nsec);
    *at += (size_t)msg_pct_encode(f->path, strlen(f->path), text + *at, 3 * strlen(f->path) + 1);
    text[(*at)++] = '\n';
}

fs_status syncstate_format(const struct syncstate *st, char **text, size_t *len)
{
    char from[ADDR_STR_MAX];

    *text = NULL;
    *len = 0;
    if (st->n > SYNCSTATE_MAX_FILES || !st->from.port)
        return FS_EINVAL;
    size_t cap = sizeof SYNCSTATE_MAGIC + 8 + ADDR_STR_MAX;
    for (size_t i = 0; i < st->n; i++) {
        if (!record_valid(&st->files[i]) ||
            (i > 0 && strcmp(st->files[i - 1].path, st->files[i].path) >= 0))
            return FS_EINVAL;
        cap += record_room(&st->files[i]);
    }
    char *t = malloc(cap);
    if (!t)
        return FS_ENOMEM;
    size_t at = (size_t)sprintf(t, SYNCSTATE_MAGIC "\nfrom %s\n", addr_format(&st->from, from));
    for (size_t i = 0; i < st->n; i++)
        format_record(&st->files[i], t, &at);
    *text = t;
    *len = at;
    return FS_OK;
}

/* --- the file --- */

fs_status syncstate_file_name(const char *name, char out[NAME_MAX_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    size_t n = strlen(name);
    char md5[HASH_HEX_LEN + 1];

    out[0] = '\0';
    if (!name_valid(name, n))
        return FS_EBADNAME;
    if (n > SYNCSTATE_HEX_NAME_MAX) {
        if (hash_md5_buf(name, n, md5) != FS_OK)
            return FS_ENOMEM;
        snprintf(out, NAME_MAX_LEN + 1, "md5-%s.state", md5);
        return FS_OK;
    }
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[(unsigned char)name[i] >> 4];
        out[2 * i + 1] = hex[(unsigned char)name[i] & 15];
    }
    memcpy(out + 2 * n, ".state", sizeof ".state");
    return FS_OK;
}

/* write() until all n bytes are out. */
static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return w == 0 ? (errno = ENOSPC, -1) : -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

fs_status syncstate_save_at(int dirfd, const char *name, const struct syncstate *st)
{
    char tmp[NAME_MAX_LEN + 8], *text;
    size_t len;
    fs_status rc = syncstate_format(st, &text, &len);

    if (rc)
        return rc;
    rc = FS_EIO;
    snprintf(tmp, sizeof tmp, "%s.tmp", name);
    int fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd >= 0) {
        /* The bytes are on disk before they take the name, and the rename
         * before we return: a crash leaves the old state or the new one. */
        if (write_all(fd, text, len) == 0 && fsync(fd) == 0 &&
            renameat(dirfd, tmp, dirfd, name) == 0) {
            (void)fsync(dirfd); /* only the name could be lost; nothing to do about it */
            rc = FS_OK;
        }
        int err = errno;
        close(fd);
        if (rc)
            unlinkat(dirfd, tmp, 0);
        errno = err;
    }
    free(text);
    return rc;
}

fs_status syncstate_load_at(int dirfd, const char *name, struct syncstate *out,
                            const char **why)
{
    struct stat sb;
    char *text = NULL;
    fs_status st = FS_EIO;

    memset(out, 0, sizeof *out);
    int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0)
        return errno == ENOENT ? FS_ENOTFOUND : FS_EIO;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode))
        goto out;
    if ((uint64_t)sb.st_size > SYNCSTATE_MAX_BYTES) {
        if (why)
            *why = "larger than a state may be";
        st = FS_ETOOBIG;
        goto out;
    }
    text = malloc((size_t)sb.st_size + 1);
    if (!text) {
        st = FS_ENOMEM;
        goto out;
    }
    size_t got = 0;
    while (got < (size_t)sb.st_size) {
        ssize_t r = read(fd, text + got, (size_t)sb.st_size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    st = syncstate_parse(text, got, out, why);
out:
    free(text);
    close(fd);
    return st;
}

/* --- decisions (the table in docs/SYNC.md) --- */

static int same_ver(const struct syncstate_ver *a, const struct syncstate_ver *b)
{
    return a->size == b->size && strcmp(a->md5, b->md5) == 0;
}

enum syncstate_action syncstate_decide(const struct syncstate_ver *rec,
                                       const struct syncstate_ver *n,
                                       const struct syncstate_ver *m, int delete_extra)
{
    /* N's copy is the one the last sync left: only then may it be
     * replaced or removed without being set aside first. */
    int n_untouched = n && rec && same_ver(n, rec);

    if (!n)
        return m ? SYNCSTATE_FETCH : SYNCSTATE_SAME;
    if (!m) {
        if (!delete_extra)
            return SYNCSTATE_EXTRA;
        return n_untouched ? SYNCSTATE_DELETE : SYNCSTATE_CONFLICT;
    }
    if (same_ver(n, m))
        return SYNCSTATE_SAME;
    return n_untouched ? SYNCSTATE_FETCH : SYNCSTATE_KEEP_CONFLICT_THEN_FETCH;
}

const char *syncstate_action_name(enum syncstate_action a)
{
    switch (a) {
    case SYNCSTATE_SAME: return "same";
    case SYNCSTATE_FETCH: return "fetch";
    case SYNCSTATE_CONFLICT: return "conflict";
    case SYNCSTATE_DELETE: return "delete";
    case SYNCSTATE_EXTRA: return "extra";
    case SYNCSTATE_KEEP_CONFLICT_THEN_FETCH: return "keep_conflict_then_fetch";
    }
    return "unknown";
}

/* --- conflict names --- */

static int peer_valid(const char *peer)
{
    size_t n = strlen(peer);

    if (n == 0 || n > SYNCSTATE_PEER_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = peer[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              strchr(".:-_[]", c)))
            return 0;
    }
    return 1;
}

/* The longest prefix of s[0..n) that ends on a UTF-8 character boundary. */
static size_t utf8_cut(const char *s, size_t n)
{
    while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
        n--;
    return n;
}

fs_status syncstate_conflict_name(const char *name, time_t when, const char *peer,
                                  char out[NAME_MAX_LEN + 1])
{
    char suffix[64 + SYNCSTATE_PEER_MAX];
    struct tm tm;
    size_t n = strlen(name);

    out[0] = '\0';
    if (!name_valid(name, n))
        return FS_EBADNAME;
    if (!peer_valid(peer) || !gmtime_r(&when, &tm) || tm.tm_year < -1900 ||
        tm.tm_year > 9999 - 1900)
        return FS_EINVAL;
    size_t sl = (size_t)snprintf(suffix, sizeof suffix,
                                 ".sync-conflict-%04d%02d%02d-%02d%02d%02d-%s", tm.tm_year + 1900,
                                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                                 peer);
    /* The extension: from the last '.' that does not lead the name
     * (".bashrc" has none: its dot is part of its name). */
    const char *dot = strrchr(name, '.');
    size_t stem = dot && dot != name ? (size_t)(dot - name) : n;
    size_t ext = n - stem;
    if (1 + sl + ext > NAME_MAX_LEN) { /* no room for it beside one stem byte */
        stem = n;
        ext = 0;
    }
    if (stem + sl + ext > NAME_MAX_LEN)
        stem = utf8_cut(name, NAME_MAX_LEN - sl - ext);
    if (stem == 0) { /* not one whole character fits beside the extension: drop it */
        ext = 0;
        stem = utf8_cut(name, NAME_MAX_LEN - sl);
    }
    memcpy(out, name, stem);
    memcpy(out + stem, suffix, sl);
    memcpy(out + stem + sl, name + n - ext, ext);
    out[stem + sl + ext] = '\0';
    return name_valid(out, stem + sl + ext) ? FS_OK : FS_EBADNAME;
}
