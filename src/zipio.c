/* zipio.c - items as zip archives: packed by streaming, unpacked only after
 * the whole central directory has been checked, and never through links. */
#include "floodshare/zipio.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <minizip/unzip.h>
#include <minizip/zip.h>
#include <zlib.h>

#include "floodshare/name.h"

#define ZIPIO_CHUNK (128 * 1024)
#define ZIPIO_DEFLATE_MAX (1024 * 1024) /* larger files are stored as is */

/* Version made by: host 3 (Unix) tells extractors that the high 16 bits of
 * the external attributes are a Unix mode; 45 is the zip64 spec version. */
#define ZIPIO_HOST_UNIX 3
#define ZIPIO_HOST_OSX 19 /* also stores a Unix mode */
#define ZIPIO_MADE_BY ((ZIPIO_HOST_UNIX << 8) | 45)
#define ZIPIO_FLAG_ENCRYPTED 0x0041 /* traditional (bit 0) or strong (bit 6) */
#define ZIPIO_FLAG_UTF8 0x0800      /* names are UTF-8 (name_valid() insists) */
#define ZIPIO_DOS_DIR 0x10
#define ZIPIO_LOCAL_HEADER 30 /* fixed part of a local header, before the name */

const struct zipio_limits zipio_default_limits = {
    .max_total_bytes = UINT64_C(64) << 30,
    .max_entries = 1000000,
    .max_ratio = 1000,
};

/* ------------------------------------------------------------------------ */
/* Removal                                                                  */

static int remove_at(int dirfd, const char *name);

static int empty_dir(int fd)
{
    int dfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    DIR *d;
    int rc = 0;

    if (dfd < 0)
        return -1;
    d = fdopendir(dfd);
    if (!d) {
        close(dfd);
        return -1;
    }
    for (;;) {
        errno = 0;
        struct dirent *de = readdir(d);
        if (!de) {
            rc = errno ? -1 : 0;
            break;
        }
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        if (remove_at(fd, de->d_name)) {
            rc = -1;
            break;
        }
    }
    closedir(d);
    return rc;
}

/* Removes dirfd/name without following a link at any level: a symlink is
 * unlinked, a folder is entered only through O_NOFOLLOW. */
static int remove_at(int dirfd, const char *name)
{
    struct stat st;

    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW))
        return errno == ENOENT ? 0 : -1;
    if (!S_ISDIR(st.st_mode))
        return unlinkat(dirfd, name, 0) == 0 || errno == ENOENT ? 0 : -1;
    /* Deleting while readdir() runs may hide entries from it on some file
     * systems; another pass picks up what the first one missed. */
    for (int pass = 0; pass < 3; pass++) {
        int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
            return errno == ENOENT ? 0 : -1;
        int rc = empty_dir(fd);
        close(fd);
        if (rc)
            return -1;
        if (unlinkat(dirfd, name, AT_REMOVEDIR) == 0 || errno == ENOENT)
            return 0;
        if (errno != ENOTEMPTY && errno != EEXIST)
            return -1;
    }
    return -1;
}

fs_status zipio_remove_tree(const char *path)
{
    if (!path || !*path)
        return FS_EINVAL;
    return remove_at(AT_FDCWD, path) ? FS_EIO : FS_OK;
}

fs_status zipio_remove_at(int dirfd, const char *name)
{
    if (dirfd < 0 || !name || !name_valid(name, strlen(name)))
        return FS_EINVAL;
    return remove_at(dirfd, name) ? FS_EIO : FS_OK;
}

/* ------------------------------------------------------------------------ */
/* Packing                                                                  */

struct pack_ctx {
    zipFile zf;
    zipio_skip_fn skip; /* told of every entry left out, may be NULL */
    void *skip_arg;
    unsigned char *buf; /* ZIPIO_CHUNK bytes */
    dev_t out_dev;      /* the archive being written, so that it is */
    ino_t out_ino;      /* never packed into itself */
    size_t len;         /* strlen(path) */
    char path[PATH_MAX_LEN + 2]; /* current entry name, room for a '/' */
};

static void entry_time(tm_zip *out, time_t t)
{
    struct tm tm;

    /* Entry times are UTC: archives only travel between floodshare peers,
     * and UTC avoids mktime(), which re-reads the time zone on every call
     * and races with other threads' time functions. A DOS date holds
     * 1980..2107 only. */
    if (!gmtime_r(&t, &tm) || tm.tm_year < 80) {
        memset(&tm, 0, sizeof tm);
        tm.tm_year = 80;
        tm.tm_mday = 1;
    } else if (tm.tm_year > 207) {
        tm = (struct tm){.tm_year = 207, .tm_mon = 11, .tm_mday = 31,
                         .tm_hour = 23, .tm_min = 59, .tm_sec = 58};
    }
    out->tm_year = (uInt)tm.tm_year + 1900;
    out->tm_mon = (uInt)tm.tm_mon;
    out->tm_mday = (uInt)tm.tm_mday;
    out->tm_hour = (uInt)tm.tm_hour;
    out->tm_min = (uInt)tm.tm_min;
    out->tm_sec = (uInt)tm.tm_sec;
}

/* Opens an entry named c->path for st (a file or a folder). */
static fs_status open_entry(struct pack_ctx *c, const struct stat *st, int method, int level)
{
    zip_fileinfo zi;
    int dir = S_ISDIR(st->st_mode);
    uLong mode = (uLong)((dir ? S_IFDIR : S_IFREG) | (st->st_mode & 0777));

    memset(&zi, 0, sizeof zi);
    entry_time(&zi.tmz_date, st->st_mtime);
    zi.external_fa = (mode << 16) | (dir ? ZIPIO_DOS_DIR : 0);
    /* zip64 = 1 always: minizip 1.1 lays out the local header here, before
     * it knows the size, and silently corrupts an entry that later passes
     * 4 GiB if the zip64 extra field was not reserved. */
    int rc = zipOpenNewFileInZip4_64(c->zf, c->path, &zi, NULL, 0, NULL, 0, NULL, method,
                                     level, 0, -MAX_WBITS, DEF_MEM_LEVEL, Z_DEFAULT_STRATEGY,
                                     NULL, 0, ZIPIO_MADE_BY, ZIPIO_FLAG_UTF8, 1);
    return rc == ZIP_OK ? FS_OK : FS_EIO;
}

static fs_status pack_dir_entry(struct pack_ctx *c, const struct stat *st)
{
    fs_status s;

    c->path[c->len] = '/';
    c->path[c->len + 1] = '\0';
    s = open_entry(c, st, 0, 0);
    if (s == FS_OK && zipCloseFileInZip(c->zf) != ZIP_OK)
        s = FS_EIO;
    c->path[c->len] = '\0';
    return s;
}

static fs_status pack_file_entry(struct pack_ctx *c, int fd, const struct stat *st)
{
    int deflate = st->st_size <= ZIPIO_DEFLATE_MAX;
    fs_status s = open_entry(c, st, deflate ? Z_DEFLATED : 0, deflate ? Z_BEST_SPEED : 0);

    while (s == FS_OK) {
        ssize_t n = read(fd, c->buf, ZIPIO_CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            s = FS_EIO;
        else if (n == 0)
            break;
        else if (zipWriteInFileInZip(c->zf, c->buf, (unsigned)n) != ZIP_OK)
            s = FS_EIO;
    }
    if (zipCloseFileInZip(c->zf) != ZIP_OK && s == FS_OK)
        s = FS_EIO;
    return s;
}

/* Appends '/' name to c->path; FS_EBADNAME if the result could not be
 * extracted again. */
static fs_status path_push(struct pack_ctx *c, const char *name, size_t n)
{
    size_t sep = c->len ? 1 : 0;

    if (!name_valid(name, n) || n + sep > PATH_MAX_LEN - c->len)
        return FS_EBADNAME;
    if (sep)
        c->path[c->len++] = '/';
    memcpy(c->path + c->len, name, n);
    c->len += n;
    c->path[c->len] = '\0';
    return FS_OK;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void free_names(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* The children of the folder fd, sorted so that archives are reproducible.
 * The caller frees *out with free_names(). */
static fs_status list_children(int fd, char ***out, size_t *count)
{
    int dfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    DIR *d = dfd < 0 ? NULL : fdopendir(dfd);
    char **v = NULL;
    size_t n = 0, cap = 0;
    fs_status s = FS_OK;

    *out = NULL;
    *count = 0;
    if (!d) {
        if (dfd >= 0)
            close(dfd);
        return FS_EIO;
    }
    for (;;) {
        errno = 0;
        struct dirent *de = readdir(d);
        if (!de) {
            s = errno ? FS_EIO : FS_OK;
            break;
        }
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            char **nv = realloc(v, ncap * sizeof *nv);
            if (!nv) {
                s = FS_ENOMEM;
                break;
            }
            v = nv;
            cap = ncap;
        }
        if (!(v[n] = strdup(de->d_name))) {
            s = FS_ENOMEM;
            break;
        }
        n++;
    }
    closedir(d);
    if (s) {
        free_names(v, n);
        return s;
    }
    if (n > 1)
        qsort(v, n, sizeof *v, cmp_str);
    *out = v;
    *count = n;
    return FS_OK;
}

static fs_status pack_node(struct pack_ctx *c, int parentfd, const char *fsname);

static fs_status pack_children(struct pack_ctx *c, int fd)
{
    char **names;
    size_t n;
    fs_status s = list_children(fd, &names, &n);

    for (size_t i = 0; s == FS_OK && i < n; i++) {
        size_t saved = c->len;
        /* A name the index skips (not name_valid(), or a path too long to
         * extract) is not part of the folder's manifest: left out here too. */
        if (path_push(c, names[i], strlen(names[i])) == FS_OK)
            s = pack_node(c, fd, names[i]);
        c->len = saved;
        c->path[saved] = '\0';
    }
    if (names)
        free_names(names, n);
    return s;
}

/* Tells the caller that c->path (a link when is_link) was left out. */
static void pack_skipped(struct pack_ctx *c, int is_link)
{
    if (c->skip)
        c->skip(c->skip_arg, c->path, is_link);
}

/* Packs fd, open on st's file or folder, as the entry c->path. */
static fs_status pack_open(struct pack_ctx *c, int fd, const struct stat *st)
{
    fs_status s;

    if (S_ISDIR(st->st_mode)) {
        s = pack_dir_entry(c, st);
        if (s == FS_OK)
            s = pack_children(c, fd);
        return s;
    }
    return pack_file_entry(c, fd, st);
}

/* Packs parentfd/fsname as the entry c->path, through descriptors only: the
 * entry is looked at with AT_SYMLINK_NOFOLLOW and opened with O_NOFOLLOW
 * relative to its folder's descriptor, so no link is ever followed. Links
 * and whatever is neither a regular file nor a folder are left out (and
 * reported), as the share's index leaves them out of the folder's manifest;
 * the fstat after opening catches a swap since the first look. */
static fs_status pack_node(struct pack_ctx *c, int parentfd, const char *fsname)
{
    struct stat st, fst;
    int fd = -1;
    fs_status s;

    if (fstatat(parentfd, fsname, &st, AT_SYMLINK_NOFOLLOW))
        return errno == ENOENT ? FS_OK : FS_EIO; /* gone meanwhile: as if never there */
    if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) {
        pack_skipped(c, S_ISLNK(st.st_mode));
        return FS_OK;
    }
    if (st.st_dev == c->out_dev && st.st_ino == c->out_ino)
        return FS_EINVAL;
    /* O_NONBLOCK: should a FIFO be swapped in, open must not hang on it. */
    fd = openat(parentfd, fsname,
                O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC |
                    (S_ISDIR(st.st_mode) ? O_DIRECTORY : 0));
    if (fd < 0 && (errno == ELOOP || errno == ENOTDIR)) {
        /* Became a link (or something else) since fstatat(): still not followed. */
        struct stat now;
        if (fstatat(parentfd, fsname, &now, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(now.st_mode)) {
            pack_skipped(c, 1);
            return FS_OK;
        }
        return FS_EREFUSED;
    }
    if (fd < 0)
        return FS_EIO;
    if (fstat(fd, &fst) || fst.st_ino != st.st_ino || fst.st_dev != st.st_dev ||
        (fst.st_mode & S_IFMT) != (st.st_mode & S_IFMT)) {
        s = FS_EREFUSED;
        goto out;
    }
    s = pack_open(c, fd, &fst);
out:
    close(fd);
    return s;
}

/* minizip opens the archive through this hook so that it writes to the file
 * we created with O_EXCL rather than reopening (and truncating) the path. */
static voidpf ZCALLBACK open_out_fd(voidpf opaque, const void *filename, int mode)
{
    int fd = fcntl(*(const int *)opaque, F_DUPFD_CLOEXEC, 0);
    FILE *f = fd < 0 ? NULL : fdopen(fd, "r+b");

    (void)filename;
    (void)mode;
    if (!f && fd >= 0)
        close(fd);
    return f;
}

static fs_status pack_into(struct pack_ctx *c, int srcfd, const struct stat *src, int outfd)
{
    zlib_filefunc64_def ff;
    struct stat ost;
    fs_status s;

    if (fstat(outfd, &ost) || !S_ISREG(ost.st_mode))
        return FS_EIO;
    c->out_dev = ost.st_dev;
    c->out_ino = ost.st_ino;
    if (src->st_dev == c->out_dev && src->st_ino == c->out_ino)
        return FS_EINVAL;
    fill_fopen64_filefunc(&ff);
    ff.zopen64_file = open_out_fd;
    ff.opaque = &outfd;
    /* The name is only handed to our hook, which ignores it. */
    c->zf = zipOpen2_64("archive", APPEND_STATUS_CREATE, NULL, &ff);
    if (!c->zf)
        return FS_EIO;
    s = pack_open(c, srcfd, src);
    if (zipClose(c->zf, NULL) != ZIP_OK && s == FS_OK)
        s = FS_EIO;
    c->zf = NULL;
    return s;
}

fs_status zipio_pack_fd(int srcfd, const char *name, int outfd, zipio_skip_fn skip, void *arg)
{
    struct pack_ctx *c = NULL;
    struct stat st;
    fs_status s;

    if (srcfd < 0 || outfd < 0 || !name)
        return FS_EINVAL;
    if (fstat(srcfd, &st))
        return FS_EIO;
    if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode))
        return FS_EREFUSED;
    c = calloc(1, sizeof *c);
    if (!c || !(c->buf = malloc(ZIPIO_CHUNK))) {
        s = FS_ENOMEM;
        goto out;
    }
    c->skip = skip;
    c->skip_arg = arg;
    s = path_push(c, name, strlen(name));
    if (s == FS_OK)
        s = pack_into(c, srcfd, &st, outfd);
out:
    if (c)
        free(c->buf);
    free(c);
    return s;
}

/* ------------------------------------------------------------------------ */
/* Unpacking: checks                                                        */

struct zentry {
    char *name;     /* as stored in the archive, NUL-terminated */
    size_t namelen; /* as stored, trailing '/' included */
    size_t len;     /* of name without the trailing '/' of a folder */
    int is_dir;
    int deflated;   /* else stored */
    uint32_t crc;   /* declared */
    uint64_t size;  /* declared uncompressed size */
    uint64_t csize; /* declared compressed size */
    uint64_t hdr;   /* where its local header starts in the archive file */
    uint64_t end;   /* where its compressed data ends */
    mode_t mode;    /* a file's permission bits: see entry_mode() */
};

struct zlist {
    struct zentry *v;
    size_t n, cap;
};

/* The current central directory entry. */
struct zcur {
    unz_file_info64 fi;
    size_t len; /* without the trailing '/' */
    int is_dir;
    char name[PATH_MAX_LEN + 2];
};

static void zlist_free(struct zlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i].name);
    free(l->v);
}

static fs_status read_current(unzFile uf, struct zcur *cur, const char **why)
{
    if (unzGetCurrentFileInfo64(uf, &cur->fi, cur->name, sizeof cur->name, NULL, 0, NULL,
                                0) != UNZ_OK) {
        *why = "unreadable central directory";
        return FS_EZIP;
    }
    if (cur->fi.size_filename >= sizeof cur->name) {
        *why = "entry name too long";
        return FS_EZIP;
    }
    cur->len = cur->fi.size_filename;
    cur->is_dir = cur->len > 0 && cur->name[cur->len - 1] == '/';
    if (cur->is_dir)
        cur->len--;
    return FS_OK;
}

/* Why name[0..len) may not be extracted, or NULL if it may. The specific
 * cases come first so the sentence names the actual trick. */
static const char *name_problem(const char *name, size_t len)
{
    size_t start = 0;

    if (len == 0)
        return "empty entry name";
    if (name[0] == '/')
        return "absolute entry name";
    if (len >= 2 && name[1] == ':')
        return "entry name has a drive letter";
    if (memchr(name, '\\', len))
        return "entry name has a backslash";
    for (size_t i = 0; i <= len; i++) {
        if (i < len && name[i] != '/')
            continue;
        if (i - start == 2 && name[start] == '.' && name[start + 1] == '.')
            return "entry name has a '..' component";
        if (i - start == 0)
            return "entry name has an empty component";
        start = i + 1;
    }
    if (!path_valid(name, len))
        return "entry name is not a valid path";
    return NULL;
}

static fs_status mode_problem(const struct zcur *cur, const char **why)
{
    unsigned host = (unsigned)(cur->fi.version >> 8) & 0xff;
    unsigned long fmt = (cur->fi.external_fa >> 16) & S_IFMT;

    if (host != ZIPIO_HOST_UNIX && host != ZIPIO_HOST_OSX)
        return FS_OK;
    if (fmt == S_IFLNK)
        *why = "symlink entry";
    else if (fmt != 0 && fmt != S_IFREG && fmt != S_IFDIR)
        *why = "special file entry";
    else if (fmt == S_IFDIR && !cur->is_dir)
        *why = "folder entry without a trailing '/'";
    else
        return FS_OK;
    return FS_EZIP;
}

static fs_status size_problem(const struct zcur *cur, const struct zipio_limits *lim,
                              uint64_t *total, const char **why)
{
    uint64_t u = cur->fi.uncompressed_size, z = cur->fi.compressed_size;

    if (cur->is_dir && u != 0)
        *why = "folder entry with data";
    else if (cur->fi.compression_method == 0 && u != z)
        *why = "stored entry sizes differ";
    else if (z == 0 && u != 0)
        *why = "entry has data but no compressed bytes";
    else
        *why = NULL;
    if (*why)
        return FS_EZIP;
    if (lim->max_ratio && z != 0 &&
        (u / z > lim->max_ratio || (u / z == lim->max_ratio && u % z != 0))) {
        *why = "entry compression ratio exceeds the limit";
        return FS_ETOOBIG;
    }
    if (u > lim->max_total_bytes - *total) {
        *why = "archive exceeds the uncompressed size limit";
        return FS_ETOOBIG;
    }
    *total += u;
    return FS_OK;
}

static fs_status check_entry(const struct zcur *cur, const struct zipio_limits *lim,
                             uint64_t *total, const char **why)
{
    fs_status s;

    if ((*why = name_problem(cur->name, cur->len)))
        return FS_EZIP;
    if (cur->fi.flag & ZIPIO_FLAG_ENCRYPTED) {
        *why = "encrypted entry";
        return FS_EZIP;
    }
    /* minizip 1.1 would read any other method raw or through an
     * uninitialised inflate stream. */
    if (cur->fi.compression_method != 0 && cur->fi.compression_method != Z_DEFLATED) {
        *why = "unsupported compression method";
        return FS_EZIP;
    }
    s = mode_problem(cur, why);
    if (s == FS_OK)
        s = size_problem(cur, lim, total, why);
    return s;
}

/* The permission bits a file entry is created with: the holder's (& 0777:
 * never setuid, setgid or sticky) when the archive says it was made on Unix
 * and records a regular file's mode, else 0644; the umask applies on top,
 * as for any file this process creates. */
static mode_t entry_mode(const struct zcur *cur)
{
    unsigned host = (unsigned)(cur->fi.version >> 8) & 0xff;
    unsigned long mode = cur->fi.external_fa >> 16;

    if ((host == ZIPIO_HOST_UNIX || host == ZIPIO_HOST_OSX) && (mode & S_IFMT) == S_IFREG)
        return (mode_t)(mode & 0777);
    return 0644;
}

static fs_status zlist_add(struct zlist *l, const struct zcur *cur)
{
    if (l->n == l->cap) {
        size_t ncap = l->cap ? l->cap * 2 : 64;
        struct zentry *nv = realloc(l->v, ncap * sizeof *nv);
        if (!nv)
            return FS_ENOMEM;
        l->v = nv;
        l->cap = ncap;
    }
    struct zentry *e = &l->v[l->n];
    e->name = malloc(cur->fi.size_filename + 1);
    if (!e->name)
        return FS_ENOMEM;
    memcpy(e->name, cur->name, cur->fi.size_filename + 1);
    e->namelen = cur->fi.size_filename;
    e->len = cur->len;
    e->is_dir = cur->is_dir;
    e->deflated = cur->fi.compression_method == Z_DEFLATED;
    e->crc = (uint32_t)cur->fi.crc;
    e->size = cur->fi.uncompressed_size;
    e->csize = cur->fi.compressed_size;
    e->hdr = e->end = 0;
    e->mode = entry_mode(cur);
    l->n++;
    return FS_OK;
}

/* The archive file, as zipio_unpack opened it. */
struct zfile {
    int fd;
    uint64_t size;
};

/* Finds where entry e (the current one) lies in the archive: minizip opens
 * its local header (checking signature, method, name length, and CRC and
 * sizes against the central record) and says where the data starts; the
 * header starts the fixed part, the name and the local extra field before
 * that. The data must end inside the file. */
static fs_status locate(unzFile uf, const struct zfile *zf, struct zentry *e, const char **why)
{
    uint64_t data, before;
    int extra;

    if (unzOpenCurrentFile2(uf, NULL, NULL, 1) != UNZ_OK) {
        *why = "bad local header";
        return FS_EZIP;
    }
    data = unzGetCurrentFileZStreamPos64(uf);
    extra = unzGetLocalExtrafield(uf, NULL, 0);
    unzCloseCurrentFile(uf);
    before = ZIPIO_LOCAL_HEADER + e->namelen + (uint64_t)(extra > 0 ? extra : 0);
    if (extra < 0 || data < before || data > zf->size) {
        *why = "bad local header";
        return FS_EZIP;
    }
    if (e->csize > zf->size - data) {
        *why = "entry data runs past the end of the archive";
        return FS_EZIP;
    }
    e->hdr = data - before;
    e->end = data + e->csize;
    return FS_OK;
}

/* Pass 1: every entry on its own. */
static fs_status scan(unzFile uf, const struct zfile *zf, const struct zipio_limits *lim,
                      struct zlist *l, const char **why)
{
    unz_global_info64 gi;
    struct zcur *cur = NULL;
    uint64_t total = 0;
    fs_status s = FS_OK;
    int rc;

    if (unzGetGlobalInfo64(uf, &gi) != UNZ_OK) {
        *why = "unreadable central directory";
        return FS_EZIP;
    }
    if (gi.number_entry == 0) {
        *why = "empty archive";
        return FS_EZIP;
    }
    if (gi.number_entry > lim->max_entries) {
        *why = "archive has too many entries";
        return FS_ETOOBIG;
    }
    if (!(cur = malloc(sizeof *cur)))
        return FS_ENOMEM;
    /* minizip keeps going past a count of 0xffff, so the declared count
     * alone does not bound the loop: the limit is checked per entry. */
    for (rc = unzGoToFirstFile(uf); rc == UNZ_OK; rc = unzGoToNextFile(uf)) {
        if (l->n >= lim->max_entries) {
            *why = "archive has too many entries";
            s = FS_ETOOBIG;
            break;
        }
        s = read_current(uf, cur, why);
        if (s == FS_OK)
            s = check_entry(cur, lim, &total, why);
        if (s == FS_OK)
            s = zlist_add(l, cur);
        if (s == FS_OK)
            s = locate(uf, zf, &l->v[l->n - 1], why);
        if (s)
            break;
    }
    if (s == FS_OK && rc != UNZ_END_OF_LIST_OF_FILE) {
        *why = "unreadable central directory";
        s = FS_EZIP;
    }
    free(cur);
    return s;
}

static size_t first_len(const struct zentry *e)
{
    const char *slash = memchr(e->name, '/', e->len);
    return slash ? (size_t)(slash - e->name) : e->len;
}

/* '/' sorts below every byte a valid name may hold, so each path is followed
 * directly by everything below it. */
static int path_cmp(const void *pa, const void *pb)
{
    const struct zentry *a = *(const struct zentry *const *)pa;
    const struct zentry *b = *(const struct zentry *const *)pb;
    size_t n = a->len < b->len ? a->len : b->len;

    for (size_t i = 0; i < n; i++) {
        unsigned ca = a->name[i] == '/' ? 0 : (unsigned char)a->name[i];
        unsigned cb = b->name[i] == '/' ? 0 : (unsigned char)b->name[i];
        if (ca != cb)
            return ca < cb ? -1 : 1;
    }
    return (a->len > b->len) - (a->len < b->len);
}

static const char *pair_problem(const struct zentry *a, const struct zentry *b)
{
    if (a->len == b->len && !memcmp(a->name, b->name, a->len))
        return "duplicate entry";
    if (!a->is_dir && b->len > a->len && b->name[a->len] == '/' &&
        !memcmp(a->name, b->name, a->len))
        return "file entry used as a folder";
    return NULL;
}

/* Pass 1, whole archive: one top-level name, no duplicates, no file that is
 * also a folder. Sets *toplen to the length of the top-level name. */
static fs_status check_tree(const struct zlist *l, size_t *toplen, const char **why)
{
    const struct zentry **sorted;
    size_t tl = first_len(&l->v[0]);
    fs_status s = FS_OK;

    for (size_t i = 1; i < l->n; i++) {
        if (first_len(&l->v[i]) != tl || memcmp(l->v[i].name, l->v[0].name, tl)) {
            *why = "more than one top-level name";
            return FS_EZIP;
        }
    }
    if (!(sorted = malloc(l->n * sizeof *sorted)))
        return FS_ENOMEM;
    for (size_t i = 0; i < l->n; i++)
        sorted[i] = &l->v[i];
    qsort(sorted, l->n, sizeof *sorted, path_cmp);
    for (size_t i = 0; i + 1 < l->n; i++) {
        if ((*why = pair_problem(sorted[i], sorted[i + 1]))) {
            s = FS_EZIP;
            break;
        }
    }
    free(sorted);
    *toplen = tl;
    return s;
}

static int hdr_cmp(const void *pa, const void *pb)
{
    const struct zentry *a = *(const struct zentry *const *)pa;
    const struct zentry *b = *(const struct zentry *const *)pb;

    return (a->hdr > b->hdr) - (a->hdr < b->hdr);
}

/* Pass 1, whole archive: no two entries share a byte, from local header to
 * the end of the data. Overlapping entries are how one run of compressed
 * bytes is made to count many times (the overlapping-files bomb), and how
 * one entry's data hides another's header. */
static fs_status check_overlap(const struct zlist *l, const char **why)
{
    const struct zentry **sorted = malloc(l->n * sizeof *sorted);
    fs_status s = FS_OK;

    if (!sorted)
        return FS_ENOMEM;
    for (size_t i = 0; i < l->n; i++)
        sorted[i] = &l->v[i];
    qsort(sorted, l->n, sizeof *sorted, hdr_cmp);
    for (size_t i = 0; i + 1 < l->n; i++) {
        if (sorted[i + 1]->hdr < sorted[i]->end) {
            *why = "entries overlap in the archive";
            s = FS_EZIP;
            break;
        }
    }
    free(sorted);
    return s;
}

static int pread_all(int fd, void *buf, size_t n, uint64_t at)
{
    unsigned char *p = buf;

    while (n > 0) {
        ssize_t r = pread(fd, p, n, (off_t)at);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        p += r;
        n -= (size_t)r;
        at += (uint64_t)r;
    }
    return 0;
}

/* Pass 1, whole archive: each local header holds the very name of its
 * central record. minizip compares only the lengths, and other tools
 * extract by the local name, so a mismatch is a trick, not an accident. */
static fs_status check_local_names(const struct zfile *zf, const struct zlist *l,
                                   const char **why)
{
    char name[ZIPIO_LOCAL_HEADER + PATH_MAX_LEN + 2];

    for (size_t i = 0; i < l->n; i++) {
        const struct zentry *e = &l->v[i];
        /* locate() saw namelen <= PATH_MAX_LEN + 1 and the header in the file */
        if (pread_all(zf->fd, name, ZIPIO_LOCAL_HEADER + e->namelen, e->hdr)) {
            *why = "bad local header";
            return FS_EZIP;
        }
        if (memcmp(name + ZIPIO_LOCAL_HEADER, e->name, e->namelen)) {
            *why = "local header name differs from the central directory";
            return FS_EZIP;
        }
    }
    return FS_OK;
}

/* ------------------------------------------------------------------------ */
/* Unpacking: extraction                                                    */

struct unpack_ctx {
    unzFile uf;
    const struct zipio_limits *lim;
    uint64_t total; /* bytes actually inflated so far */
    unsigned char *buf; /* ZIPIO_CHUNK bytes of output */
    unsigned char *in;  /* ZIPIO_CHUNK bytes of compressed input */
    int destfd;
    int topfd; /* the created top-level folder, or -1 */
    int created; /* the top-level name is ours to remove */
    size_t toplen;
    char top[NAME_MAX_LEN + 1];
    struct zcur cur;
};

static int write_all(int fd, const unsigned char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static void set_mtime(int fd, const tm_unz *t)
{
    struct tm tm = {
        .tm_year = (int)t->tm_year - 1900, .tm_mon = (int)t->tm_mon,
        .tm_mday = (int)t->tm_mday, .tm_hour = (int)t->tm_hour,
        .tm_min = (int)t->tm_min, .tm_sec = (int)t->tm_sec,
    };
    time_t when = timegm(&tm); /* entry_time() wrote UTC */

    if (when == (time_t)-1)
        return;
    struct timespec ts[2] = {{.tv_nsec = UTIME_OMIT}, {.tv_sec = when}};
    /* The content is what matters; a lost mtime is not worth failing for. */
    (void)futimens(fd, ts);
}

/* One entry being written out: what has come out of it so far. */
struct sink {
    int fd;
    const struct zentry *e;
    uint64_t got;
    uLong crc;
};

/* Takes n bytes that came out of the entry. The archive-wide total is
 * checked first: it is the cap that holds whatever the headers say, so a
 * bomb whose declared sizes lie small is stopped by it, not by luck. */
static fs_status sink_put(struct unpack_ctx *u, struct sink *k, const unsigned char *p,
                          size_t n, const char **why)
{
    if (n == 0)
        return FS_OK;
    if (n > u->lim->max_total_bytes - u->total) {
        *why = "archive inflates past the uncompressed size limit";
        return FS_ETOOBIG;
    }
    if (n > k->e->size - k->got) {
        *why = "entry larger than declared";
        return FS_EZIP;
    }
    if (write_all(k->fd, p, n)) {
        *why = "cannot write an extracted file";
        return FS_EIO;
    }
    k->got += n;
    u->total += n;
    k->crc = crc32(k->crc, p, (uInt)n);
    return FS_OK;
}

/* Inflates in[0..n) into the sink; *ended is set at the end of the deflate
 * stream, after which no input byte may remain. */
static fs_status inflate_some(struct unpack_ctx *u, z_stream *zs, struct sink *k,
                              size_t n, int *ended, const char **why)
{
    fs_status s = FS_OK;

    zs->next_in = u->in;
    zs->avail_in = (uInt)n;
    while (s == FS_OK) {
        zs->next_out = u->buf;
        zs->avail_out = ZIPIO_CHUNK;
        int zr = inflate(zs, Z_NO_FLUSH);
        if (zr != Z_OK && zr != Z_STREAM_END && zr != Z_BUF_ERROR) {
            *why = "corrupt compressed data";
            return FS_EZIP;
        }
        s = sink_put(u, k, u->buf, ZIPIO_CHUNK - zs->avail_out, why);
        if (s == FS_OK && zr == Z_STREAM_END) {
            *ended = 1;
            if (zs->avail_in > 0) {
                *why = "data after the end of the compressed stream";
                s = FS_EZIP;
            }
            break;
        }
        /* Out of input with the output not full: inflate has all it can
         * give until the next read. */
        if (zs->avail_out > 0 && (zs->avail_in == 0 || zr == Z_BUF_ERROR))
            break;
    }
    return s;
}

/* Writes the current entry into fd. minizip hands over the raw bytes (it
 * would stop inflating at the declared size, hiding an entry that holds
 * more, and check nothing after it); the inflating, counting and CRC are
 * done here, trusting no header until the bytes agree with it. */
static fs_status write_entry(struct unpack_ctx *u, int fd, const struct zentry *e,
                             const char **why)
{
    struct sink k = {.fd = fd, .e = e, .crc = crc32(0L, Z_NULL, 0)};
    z_stream zs;
    int ended = !e->deflated || e->csize == 0; /* a stored entry has no stream to end */
    int zinit = 0;
    fs_status s = FS_OK;

    memset(&zs, 0, sizeof zs);
    if (unzOpenCurrentFile2(u->uf, NULL, NULL, 1) != UNZ_OK) {
        *why = "bad local header";
        return FS_EZIP;
    }
    if (e->deflated) {
        if (inflateInit2(&zs, -MAX_WBITS) != Z_OK) {
            unzCloseCurrentFile(u->uf);
            return FS_ENOMEM;
        }
        zinit = 1;
    }
    while (s == FS_OK) {
        int n = unzReadCurrentFile(u->uf, u->in, ZIPIO_CHUNK);
        if (n < 0) {
            *why = "cannot read the archive";
            s = FS_EZIP;
        } else if (n == 0) {
            break;
        } else if (!e->deflated) {
            s = sink_put(u, &k, u->in, (size_t)n, why);
        } else if (ended) {
            *why = "data after the end of the compressed stream";
            s = FS_EZIP;
        } else {
            s = inflate_some(u, &zs, &k, (size_t)n, &ended, why);
        }
    }
    if (zinit)
        inflateEnd(&zs);
    unzCloseCurrentFile(u->uf);
    if (s == FS_OK && !ended) {
        *why = "compressed data ends early";
        s = FS_EZIP;
    }
    if (s == FS_OK && k.got < e->size) {
        *why = "entry smaller than declared";
        s = FS_EZIP;
    }
    if (s == FS_OK && k.crc != e->crc) {
        *why = "CRC mismatch";
        s = FS_EZIP;
    }
    if (s == FS_OK)
        set_mtime(fd, &u->cur.fi.tmu_date);
    return s;
}

/* Opens (creating as needed) the folder path[0..len) below basefd, one
 * component at a time, never through a link. *out must be closed. */
static fs_status open_dirs(int basefd, const char *path, size_t len, int *out,
                           const char **why)
{
    char comp[NAME_MAX_LEN + 1];
    size_t start = 0;
    int fd = fcntl(basefd, F_DUPFD_CLOEXEC, 0);

    *out = -1;
    for (size_t i = 0; fd >= 0 && i <= len; i++) {
        if (i < len && path[i] != '/')
            continue;
        memcpy(comp, path + start, i - start);
        comp[i - start] = '\0';
        start = i + 1;
        int next = -1;
        if (mkdirat(fd, comp, 0755) == 0 || errno == EEXIST)
            next = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        close(fd);
        fd = next;
    }
    if (fd < 0) {
        *why = "cannot create an extracted folder";
        return FS_EIO;
    }
    *out = fd;
    return FS_OK;
}

static fs_status create_file(int dirfd, const char *name, mode_t mode, int *out,
                             const char **why)
{
    /* Created with its final mode: even without u+w the new descriptor
     * may write, and the umask is applied by the kernel. */
    *out = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    if (*out >= 0)
        return FS_OK;
    if (errno == EEXIST) {
        *why = "an extracted name already exists";
        return FS_EEXIST;
    }
    *why = "cannot create an extracted file";
    return FS_EIO;
}

/* Extracts entry e (the current one) of a folder archive. */
static fs_status extract_below_top(struct unpack_ctx *u, const struct zentry *e,
                                   const char **why)
{
    const char *rest = e->name + u->toplen + 1;
    size_t rlen, plen;
    const char *base;
    int dirfd, fd;
    fs_status s;

    if (e->len == u->toplen)
        return FS_OK;
    rlen = e->len - u->toplen - 1;
    if (e->is_dir) {
        s = open_dirs(u->topfd, rest, rlen, &dirfd, why);
        if (s == FS_OK)
            close(dirfd);
        return s;
    }
    base = memrchr(rest, '/', rlen);
    base = base ? base + 1 : rest;
    plen = (size_t)(base - rest);
    if (plen > 0)
        s = open_dirs(u->topfd, rest, plen - 1, &dirfd, why);
    else
        s = (dirfd = fcntl(u->topfd, F_DUPFD_CLOEXEC, 0)) < 0 ? FS_EIO : FS_OK;
    if (s)
        return s;
    s = create_file(dirfd, base, e->mode, &fd, why);
    if (s == FS_OK) {
        s = write_entry(u, fd, e, why);
        if (close(fd) && s == FS_OK) {
            *why = "cannot write an extracted file";
            s = FS_EIO;
        }
    }
    close(dirfd);
    return s;
}

/* Creates the top-level name itself: the folder, or the single file. */
static fs_status extract_top(struct unpack_ctx *u, const struct zlist *l, const char **why)
{
    int fd;
    fs_status s;

    if (l->v[0].len == u->toplen && !l->v[0].is_dir) {
        s = create_file(u->destfd, u->top, l->v[0].mode, &fd, why);
        if (s)
            return s;
        u->created = 1;
        s = write_entry(u, fd, &l->v[0], why);
        if (close(fd) && s == FS_OK) {
            *why = "cannot write an extracted file";
            s = FS_EIO;
        }
        return s;
    }
    if (mkdirat(u->destfd, u->top, 0755)) {
        *why = errno == EEXIST ? "an extracted name already exists"
                               : "cannot create an extracted folder";
        return errno == EEXIST ? FS_EEXIST : FS_EIO;
    }
    u->created = 1;
    u->topfd = openat(u->destfd, u->top, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (u->topfd < 0) {
        *why = "cannot create an extracted folder";
        return FS_EIO;
    }
    return FS_OK;
}

/* Pass 2: walks the central directory again in the same order, insisting it
 * is still what pass 1 approved. */
static fs_status extract(struct unpack_ctx *u, const struct zlist *l, const char **why)
{
    int file_top = l->v[0].len == u->toplen && !l->v[0].is_dir;
    fs_status s = FS_OK;
    int rc = unzGoToFirstFile(u->uf);

    for (size_t i = 0; s == FS_OK && i < l->n; i++, rc = unzGoToNextFile(u->uf)) {
        const struct zentry *e = &l->v[i];
        if (rc == UNZ_OK)
            s = read_current(u->uf, &u->cur, why);
        if (s == FS_OK && (rc != UNZ_OK || u->cur.fi.size_filename != strlen(e->name) ||
                           memcmp(u->cur.name, e->name, u->cur.fi.size_filename) ||
                           u->cur.fi.uncompressed_size != e->size)) {
            *why = "archive changed while extracting";
            s = FS_EZIP;
        }
        if (s == FS_OK && i == 0)
            s = extract_top(u, l, why);
        if (s == FS_OK && !file_top)
            s = extract_below_top(u, e, why);
    }
    return s;
}

static fs_status unpack_checked(struct unpack_ctx *u, int destfd, const struct zlist *l,
                                const char **why)
{
    fs_status s;

    memcpy(u->top, l->v[0].name, u->toplen);
    u->top[u->toplen] = '\0';
    if (!(u->buf = malloc(ZIPIO_CHUNK)) || !(u->in = malloc(ZIPIO_CHUNK)))
        return FS_ENOMEM;
    u->destfd = fcntl(destfd, F_DUPFD_CLOEXEC, 0);
    if (u->destfd < 0) {
        *why = "cannot open the destination folder";
        return FS_EIO;
    }
    s = extract(u, l, why);
    if (s && u->created)
        remove_at(u->destfd, u->top);
    return s;
}

/* minizip reads the archive through this hook, from the file we opened and
 * measured, so that the checks and the reads are about the same bytes. */
static voidpf ZCALLBACK open_in_fd(voidpf opaque, const void *filename, int mode)
{
    int fd = fcntl(*(const int *)opaque, F_DUPFD_CLOEXEC, 0);
    FILE *f = fd < 0 ? NULL : fdopen(fd, "rb");

    (void)filename;
    (void)mode;
    if (!f && fd >= 0)
        close(fd);
    return f;
}

static fs_status open_archive(int zipfd, struct zfile *zf, unzFile *uf, const char **why)
{
    zlib_filefunc64_def ff;
    struct stat st;

    zf->fd = fcntl(zipfd, F_DUPFD_CLOEXEC, 0);
    if (zf->fd < 0 || fstat(zf->fd, &st) || !S_ISREG(st.st_mode)) {
        *why = "cannot read the archive";
        return FS_EIO;
    }
    zf->size = (uint64_t)st.st_size;
    fill_fopen64_filefunc(&ff);
    ff.zopen64_file = open_in_fd;
    ff.opaque = &zf->fd;
    /* The name is only handed to our hook, which ignores it. */
    if (!(*uf = unzOpen2_64("archive", &ff))) {
        *why = "not a zip archive";
        return FS_EZIP;
    }
    return FS_OK;
}

/* Pass 1 in full: nothing has been written when it returns. */
static fs_status check_archive(unzFile uf, const struct zfile *zf,
                               const struct zipio_limits *lim, struct zlist *l, size_t *toplen,
                               const char **why)
{
    fs_status s = scan(uf, zf, lim, l, why);

    if (s == FS_OK)
        s = check_tree(l, toplen, why);
    if (s == FS_OK)
        s = check_overlap(l, why);
    if (s == FS_OK)
        s = check_local_names(zf, l, why);
    return s;
}

fs_status zipio_unpack_at(int zipfd, int destfd, const struct zipio_limits *limits, char *top,
                          size_t topcap, const char **why)
{
    struct unpack_ctx *u = NULL;
    struct zlist l = {0};
    struct zfile zf = {.fd = -1};
    const char *reason = NULL;
    unzFile uf = NULL;
    size_t toplen = 0;
    fs_status s;

    if (why)
        *why = NULL;
    if (top && topcap)
        top[0] = '\0';
    if (zipfd < 0 || destfd < 0)
        return FS_EINVAL;
    if (!limits)
        limits = &zipio_default_limits;
    s = open_archive(zipfd, &zf, &uf, &reason);
    if (s == FS_OK)
        s = check_archive(uf, &zf, limits, &l, &toplen, &reason);
    if (s == FS_OK && top && topcap <= toplen) {
        reason = "top-level name does not fit the caller's buffer";
        s = FS_EINVAL;
    }
    if (s == FS_OK && !(u = calloc(1, sizeof *u)))
        s = FS_ENOMEM;
    if (s)
        goto out;
    *u = (struct unpack_ctx){.uf = uf, .lim = limits, .destfd = -1, .topfd = -1,
                             .toplen = toplen};
    s = unpack_checked(u, destfd, &l, &reason);
    if (s == FS_OK && top)
        memcpy(top, u->top, toplen + 1);
out:
    if (u) {
        if (u->topfd >= 0)
            close(u->topfd);
        if (u->destfd >= 0)
            close(u->destfd);
        free(u->buf);
        free(u->in);
        free(u);
    }
    zlist_free(&l);
    if (uf)
        unzClose(uf);
    if (zf.fd >= 0)
        close(zf.fd);
    if (why)
        *why = reason;
    return s;
}

fs_status zipio_unpack(const char *zip_path, const char *dest_dir,
                       const struct zipio_limits *limits, char *top, size_t topcap,
                       const char **why)
{
    int zfd = -1, dfd = -1;
    fs_status s;

    if (why)
        *why = NULL;
    if (top && topcap)
        top[0] = '\0';
    if (!zip_path || !dest_dir)
        return FS_EINVAL;
    zfd = open(zip_path, O_RDONLY | O_CLOEXEC);
    if (zfd < 0) {
        if (why)
            *why = "cannot read the archive";
        return FS_EIO;
    }
    dfd = open(dest_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        close(zfd);
        if (why)
            *why = "cannot open the destination folder";
        return FS_EIO;
    }
    s = zipio_unpack_at(zfd, dfd, limits, top, topcap, why);
    close(dfd);
    close(zfd);
    return s;
}
