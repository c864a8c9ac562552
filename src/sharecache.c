/* sharecache.c - the share's on-disk hash cache: pure parser, writer, and
 * the crash-safe load and save (format in sharecache.h). */
#include "floodshare/sharecache.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "floodshare/hash.h"
#include "floodshare/pieces.h"

/* Temporaries being written. Not "in-"/"out-"/"x-": those belong to xfer. A
 * crash between create and rename leaves one behind; sharecache_load()
 * removes those older than TMP_STALE_SEC (younger ones may be another open
 * share's write in progress). */
#define TMP_PREFIX SHARECACHE_FILE ".tmp-"
#define TMP_NAME_MAX 64
#define TMP_STALE_SEC 600

int sharecache_cmp(const void *a, const void *b)
{
    const struct sharecache_ent *x = a, *y = b;

    if (x->dev != y->dev)
        return x->dev < y->dev ? -1 : 1;
    if (x->ino != y->ino)
        return x->ino < y->ino ? -1 : 1;
    return 0;
}

/* --- parsing -------------------------------------------------------------- */

/* Parses the decimal at *p (digits only, at most max) and the byte sep that
 * must follow it, and moves *p past both. 0 or -1. */
static int parse_u64(const char **p, uint64_t max, char sep, uint64_t *out)
{
    const char *s = *p;
    uint64_t v = 0;

    if (*s < '0' || *s > '9')
        return -1;
    for (; *s >= '0' && *s <= '9'; s++) {
        uint64_t d = (uint64_t)(*s - '0');
        if (v > (max - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    if (*s != sep)
        return -1;
    *p = sep ? s + 1 : s;
    *out = v;
    return 0;
}

/* Parses "dev ino size sec nsec md5 root" (NUL-terminated, no '\n') into
 * c. 0 or -1. */
static int parse_entry(const char *p, struct sharecache_ent *c)
{
    uint64_t dev, ino, size, sec, nsec;
    int neg;

    if (parse_u64(&p, UINT64_MAX, ' ', &dev) || parse_u64(&p, UINT64_MAX, ' ', &ino) ||
        parse_u64(&p, INT64_MAX, ' ', &size))
        return -1;
    neg = *p == '-';
    p += neg;
    if (parse_u64(&p, INT64_MAX, ' ', &sec) || parse_u64(&p, 999999999, ' ', &nsec) ||
        strlen(p) < MSG_MD5_LEN + 2 || p[MSG_MD5_LEN] != ' ')
        return -1;
    memcpy(c->md5, p, MSG_MD5_LEN);
    c->md5[MSG_MD5_LEN] = '\0';
    if (!hash_hex_valid(c->md5))
        return -1;
    p += MSG_MD5_LEN + 1;
    if (strcmp(p, "-") == 0)
        c->root[0] = '\0';
    else if (pieces_root_valid(p))
        memcpy(c->root, p, sizeof c->root);
    else
        return -1;
    c->dev = (dev_t)dev;
    c->ino = (ino_t)ino;
    c->size = size;
    c->mtime.tv_sec = neg ? -(time_t)sec : (time_t)sec;
    c->mtime.tv_nsec = (long)nsec;
    /* Where dev_t, ino_t or time_t are narrower, a value that does not fit
     * would match the wrong file. */
    if ((uint64_t)c->dev != dev || (uint64_t)c->ino != ino || (uint64_t)(time_t)sec != sec)
        return -1;
    return 0;
}

/* Where a parse stands: the input and the entries so far. */
struct reader {
    const char *buf;
    size_t len, off;
    char line[SHARECACHE_LINE_MAX]; /* the current line, '\n' replaced by NUL */
    size_t line_off;                /* where it starts in buf */
    struct sharecache_ent *v;
    size_t n, cap;
};

/* Copies the next line into r->line. 1: a line; 0: no bytes left; -1 with
 * *why: too long, holds a NUL, or lacks its '\n' (a truncated file). */
static int next_line(struct reader *r, const char **why)
{
    size_t left = r->len - r->off, max = sizeof r->line - 1;
    const char *nl;

    if (left == 0)
        return 0;
    nl = memchr(r->buf + r->off, '\n', left < max ? left : max);
    if (!nl) {
        *why = left < max ? "truncated: a line lacks its end" : "line too long";
        return -1;
    }
    size_t n = (size_t)(nl - (r->buf + r->off));
    if (memchr(r->buf + r->off, '\0', n)) {
        *why = "NUL byte in a line";
        return -1;
    }
    memcpy(r->line, r->buf + r->off, n);
    r->line[n] = '\0';
    r->line_off = r->off;
    r->off += n + 1;
    return 1;
}

/* Appends the entry in r->line. NULL, or why not. */
static const char *push_entry(struct reader *r, fs_status *st)
{
    if (r->n == SHARECACHE_MAX_ENTRIES) {
        *st = FS_ETOOBIG;
        return "too many entries";
    }
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 64;
        struct sharecache_ent *v = realloc(r->v, cap * sizeof *v);
        if (!v) {
            *st = FS_ENOMEM;
            return "out of memory";
        }
        r->v = v;
        r->cap = cap;
    }
    if (parse_entry(r->line, &r->v[r->n]) != 0)
        return "malformed entry";
    r->n++;
    return NULL;
}

/* Checks the end line in r->line against what was read before it. */
static const char *check_end(struct reader *r, fs_status *st)
{
    const char *p = r->line + strlen("end ");
    char md5[MSG_MD5_LEN + 1];
    uint64_t count;

    if (parse_u64(&p, SIZE_MAX, ' ', &count) || !hash_hex_valid(p))
        return "malformed end line";
    if (count != r->n)
        return "entry count mismatch";
    if (hash_md5_buf(r->buf, r->line_off, md5) != FS_OK) {
        *st = FS_ENOMEM;
        return "cannot hash";
    }
    return strcmp(md5, p) == 0 ? NULL : "checksum mismatch";
}

/* The whole parse; NULL or why the bytes are not a valid cache. */
static const char *parse_all(struct reader *r, fs_status *st)
{
    const char *why = NULL;
    int rc = next_line(r, &why);

    if (rc <= 0)
        return rc == 0 ? "empty" : why;
    if (strcmp(r->line, SHARECACHE_MAGIC) != 0)
        return strncmp(r->line, "floodshare-index ", 17) == 0 ? "unsupported version"
                                                               : "not an index cache";
    while ((rc = next_line(r, &why)) == 1 && strncmp(r->line, "end ", 4) != 0)
        if ((why = push_entry(r, st)) != NULL)
            return why;
    if (rc != 1)
        return rc == 0 ? "truncated: no end line" : why;
    if ((why = check_end(r, st)) != NULL)
        return why;
    if (r->off != r->len)
        return "data after the end line";
    if (r->n)
        qsort(r->v, r->n, sizeof *r->v, sharecache_cmp);
    for (size_t i = 1; i < r->n; i++)
        if (sharecache_cmp(&r->v[i - 1], &r->v[i]) == 0)
            return "duplicate entry";
    return NULL;
}

fs_status sharecache_parse(const char *buf, size_t len, struct sharecache_ent **out, size_t *n,
                           const char **why)
{
    struct reader r = {.buf = buf, .len = len};
    fs_status st = FS_EPROTO;

    *out = NULL;
    *n = 0;
    *why = NULL;
    if (len > (size_t)SHARECACHE_MAX_BYTES) {
        *why = "larger than 256 MiB";
        return FS_ETOOBIG;
    }
    *why = parse_all(&r, &st);
    if (*why) {
        free(r.v);
        return st;
    }
    *out = r.v;
    *n = r.n;
    return FS_OK;
}

/* --- writing -------------------------------------------------------------- */

/* Writes len bytes of line to f, and into h unless h is NULL. 0 or an errno. */
static int put(FILE *f, struct hash_md5 *h, const char *line, size_t len)
{
    if (h)
        hash_update(h, line, len);
    errno = 0;
    if (fwrite(line, 1, len, f) == len)
        return 0;
    return errno ? errno : EIO;
}

int sharecache_write(FILE *f, const struct sharecache_ent *c, size_t n)
{
    struct hash_md5 h;
    char line[SHARECACHE_LINE_MAX], md5[MSG_MD5_LEN + 1];
    int err, len;

    if (hash_init(&h) != FS_OK)
        return ENOMEM;
    err = put(f, &h, SHARECACHE_MAGIC "\n", strlen(SHARECACHE_MAGIC "\n"));
    for (size_t i = 0; i < n && !err; i++) {
        len = snprintf(line, sizeof line, "%ju %ju %ju %jd %ld %s %s\n", (uintmax_t)c[i].dev,
                       (uintmax_t)c[i].ino, (uintmax_t)c[i].size,
                       (intmax_t)c[i].mtime.tv_sec, (long)c[i].mtime.tv_nsec, c[i].md5,
                       c[i].root[0] ? c[i].root : "-");
        err = len < 0 || (size_t)len >= sizeof line ? EINVAL : put(f, &h, line, (size_t)len);
    }
    if (err) {
        hash_abort(&h);
        return err;
    }
    if (hash_final(&h, md5) != FS_OK)
        return ENOMEM;
    len = snprintf(line, sizeof line, "end %zu %s\n", n, md5);
    return put(f, NULL, line, (size_t)len);
}

/* --- the file ------------------------------------------------------------- */

/* Creates a new temporary for the cache in the folder sfd, its name into
 * name. The pid and a counter keep live writers (two shares open on one
 * folder) apart; O_EXCL steps over a crashed writer's leftover. Returns an
 * fd, or -1 with errno set. */
static int tmp_create(int sfd, char name[TMP_NAME_MAX])
{
    static atomic_uint seq;

    for (int tries = 0; tries < 16; tries++) {
        snprintf(name, TMP_NAME_MAX, TMP_PREFIX "%ld-%u", (long)getpid(),
                 atomic_fetch_add(&seq, 1));
        int fd = openat(sfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd >= 0 || errno != EEXIST)
            return fd;
    }
    return -1;
}

int sharecache_save(int sfd, const struct sharecache_ent *c, size_t n)
{
    char tmp[TMP_NAME_MAX];
    int fd = tmp_create(sfd, tmp), err = 0;
    FILE *f;

    if (fd < 0)
        return errno;
    f = fdopen(fd, "w");
    if (!f) {
        err = errno;
        close(fd);
        goto out;
    }
    err = sharecache_write(f, c, n);
    if (!err && (fflush(f) != 0 || fsync(fileno(f)) != 0))
        err = errno;
    if (fclose(f) != 0 && !err)
        err = errno;
    if (!err && renameat(sfd, tmp, sfd, SHARECACHE_FILE) != 0)
        err = errno;
    if (!err && fsync(sfd) != 0)
        return errno; /* renamed: tmp is gone */
out:
    if (err)
        unlinkat(sfd, tmp, 0);
    return err;
}

/* Removes the temporaries of cache writes that a crash interrupted. */
static void remove_stale_tmps(int sfd)
{
    int fd = openat(sfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = fd < 0 ? NULL : fdopendir(fd);
    struct timespec now;
    struct dirent *de;
    struct stat st;

    if (!d) {
        if (fd >= 0)
            close(fd);
        return;
    }
    clock_gettime(CLOCK_REALTIME, &now);
    while ((de = readdir(d)) != NULL) {
        if (strncmp(de->d_name, TMP_PREFIX, strlen(TMP_PREFIX)) != 0)
            continue;
        if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
            S_ISREG(st.st_mode) && st.st_mtim.tv_sec < now.tv_sec - TMP_STALE_SEC)
            unlinkat(dirfd(d), de->d_name, 0);
    }
    closedir(d);
}

/* Reads all of fd (a regular file of about expect bytes) into a malloc'd
 * buffer, never more than SHARECACHE_MAX_BYTES + 1 bytes however the file
 * grows meanwhile. 0 or an errno. */
static int read_all(int fd, size_t expect, char **out, size_t *len)
{
    size_t cap = expect + 1, used = 0;
    char *buf = malloc(cap);

    *out = NULL;
    *len = 0;
    if (!buf)
        return ENOMEM;
    for (;;) {
        if (used == cap) {
            if (cap > (size_t)SHARECACHE_MAX_BYTES)
                break; /* past the limit: the parser refuses it */
            size_t ncap = cap * 2;
            char *bigger = realloc(buf, ncap);
            if (!bigger) {
                free(buf);
                return ENOMEM;
            }
            buf = bigger;
            cap = ncap;
        }
        ssize_t n = read(fd, buf + used, cap - used);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int err = errno;
            free(buf);
            return err;
        }
        if (n == 0)
            break;
        used += (size_t)n;
    }
    *out = buf;
    *len = used;
    return 0;
}

fs_status sharecache_load(int sfd, struct sharecache_ent **out, size_t *n, const char **why)
{
    struct stat st;
    char *buf = NULL;
    size_t len = 0;
    fs_status rc = FS_EIO;
    int fd, err;

    *out = NULL;
    *n = 0;
    *why = NULL;
    remove_stale_tmps(sfd);
    fd = openat(sfd, SHARECACHE_FILE, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return FS_ENOTFOUND;
        *why = errno == ELOOP ? "a symbolic link" : strerror(errno);
        return errno == ELOOP ? FS_EREFUSED : FS_EIO;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        *why = "not a regular file";
        rc = FS_EREFUSED;
    } else if (st.st_size > SHARECACHE_MAX_BYTES) {
        *why = "larger than 256 MiB";
        rc = FS_ETOOBIG;
    } else if ((err = read_all(fd, (size_t)st.st_size, &buf, &len)) != 0) {
        *why = strerror(err);
        rc = err == ENOMEM ? FS_ENOMEM : FS_EIO;
    } else {
        rc = sharecache_parse(buf, len, out, n, why);
    }
    free(buf);
    close(fd);
    return rc;
}
