/* test_zipio.c - packing round trips, and unpack refusing hostile archives
 * (each built here with minizip) without leaving anything behind. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <minizip/unzip.h>
#include <minizip/zip.h>
#include <zlib.h>

#include "floodshare/name.h"
#include "floodshare/zipio.h"

#define UNIX_MADE_BY ((3 << 8) | 30)
#define MIB (1024 * 1024)

struct fx {
    char root[64];
    char src[128];  /* an empty folder to build sources in */
    char dest[128]; /* an empty folder to unpack into */
    char zip[128];  /* a path for the archive, not yet existing */
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);

    if (!f)
        return -1;
    strcpy(f->root, "/tmp/fs_zipio_XXXXXX");
    if (!mkdtemp(f->root))
        return -1;
    snprintf(f->src, sizeof f->src, "%s/src", f->root);
    snprintf(f->dest, sizeof f->dest, "%s/dest", f->root);
    snprintf(f->zip, sizeof f->zip, "%s/a.zip", f->root);
    if (mkdir(f->src, 0755) || mkdir(f->dest, 0755))
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    int rc = zipio_remove_tree(f->root) == FS_OK ? 0 : -1;

    free(f);
    return rc;
}

/* ---- file helpers ---- */

static void put_file(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    assert_int_equal(close(fd), 0);
}

/* len bytes that do not compress, the same every run. */
static void put_noise(const char *path, size_t len)
{
    unsigned char *buf = malloc(len ? len : 1);
    uint32_t x = 2463534242u;

    assert_non_null(buf);
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        buf[i] = (unsigned char)x;
    }
    put_file(path, buf, len);
    free(buf);
}

static void assert_same_file(const char *a, const char *b)
{
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    static unsigned char ba[65536], bb[65536];
    size_t na, nb;

    assert_non_null(fa);
    assert_non_null(fb);
    do {
        na = fread(ba, 1, sizeof ba, fa);
        nb = fread(bb, 1, sizeof bb, fb);
        assert_int_equal(na, nb);
        assert_memory_equal(ba, bb, na);
    } while (na > 0);
    fclose(fa);
    fclose(fb);
}

static void assert_file_is(const char *path, const char *text)
{
    char buf[256];
    FILE *fp = fopen(path, "rb");

    assert_non_null(fp);
    size_t n = fread(buf, 1, sizeof buf, fp);
    fclose(fp);
    assert_int_equal(n, strlen(text));
    assert_memory_equal(buf, text, n);
}

static int count_dir(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *de;
    int n = 0;

    assert_non_null(d);
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

static void assert_is_dir(const char *path)
{
    struct stat st;

    assert_int_equal(lstat(path, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
}

static void path_join(char *out, size_t cap, const char *a, const char *b)
{
    int n = snprintf(out, cap, "%s/%s", a, b);
    assert_true(n > 0 && (size_t)n < cap);
}

/* ---- building archives by hand ---- */

struct craft {
    const char *name;
    const void *data; /* NULL: no data */
    size_t len;
    uLong made_by;    /* 0: MS-DOS host */
    uLong ext_attr;
};

static void craft_open(zipFile zf, const char *name, uLong made_by, uLong ext_attr,
                       int level, int raw, const char *password, uLong crc)
{
    zip_fileinfo zi;

    memset(&zi, 0, sizeof zi);
    zi.tmz_date.tm_year = 2020;
    zi.tmz_date.tm_mday = 1;
    zi.external_fa = ext_attr;
    assert_int_equal(zipOpenNewFileInZip4_64(zf, name, &zi, NULL, 0, NULL, 0, NULL, Z_DEFLATED,
                                             level, raw, -MAX_WBITS, DEF_MEM_LEVEL,
                                             Z_DEFAULT_STRATEGY, password, crc, made_by, 0, 1),
                     ZIP_OK);
}

static void craft_zip(const char *path, const struct craft *e, size_t n)
{
    zipFile zf = zipOpen64(path, APPEND_STATUS_CREATE);

    assert_non_null(zf);
    for (size_t i = 0; i < n; i++) {
        craft_open(zf, e[i].name, e[i].made_by, e[i].ext_attr, Z_DEFAULT_COMPRESSION, 0, NULL,
                   0);
        if (e[i].data)
            assert_int_equal(zipWriteInFileInZip(zf, e[i].data, (unsigned)e[i].len), ZIP_OK);
        assert_int_equal(zipCloseFileInZip(zf), ZIP_OK);
    }
    assert_int_equal(zipClose(zf, NULL), ZIP_OK);
}

/* Raw deflate of in[0..len) into out; returns the compressed length. */
static size_t raw_deflate(const void *in, size_t len, unsigned char *out, size_t cap)
{
    z_stream zs;

    memset(&zs, 0, sizeof zs);
    assert_int_equal(deflateInit2(&zs, Z_BEST_COMPRESSION, Z_DEFLATED, -MAX_WBITS, 8,
                                  Z_DEFAULT_STRATEGY),
                     Z_OK);
    zs.next_in = (Bytef *)(uintptr_t)in;
    zs.avail_in = (uInt)len;
    zs.next_out = out;
    zs.avail_out = (uInt)cap;
    assert_int_equal(deflate(&zs, Z_FINISH), Z_STREAM_END);
    deflateEnd(&zs);
    return cap - zs.avail_out;
}

/* An archive "top/" + "top/ok" + "top/lie" where "top/lie" holds data but
 * declares declared_size and crc: minizip writes what it is told in raw mode. */
static void craft_lying_zip(const char *path, const char *data, uLong declared_size, uLong crc)
{
    unsigned char comp[4096];
    size_t clen = raw_deflate(data, strlen(data), comp, sizeof comp);
    zipFile zf = zipOpen64(path, APPEND_STATUS_CREATE);

    assert_non_null(zf);
    craft_open(zf, "top/", 0, 0, 0, 0, NULL, 0);
    assert_int_equal(zipCloseFileInZip(zf), ZIP_OK);
    craft_open(zf, "top/ok", 0, 0, Z_DEFAULT_COMPRESSION, 0, NULL, 0);
    assert_int_equal(zipWriteInFileInZip(zf, "fine", 4), ZIP_OK);
    assert_int_equal(zipCloseFileInZip(zf), ZIP_OK);
    craft_open(zf, "top/lie", 0, 0, Z_DEFAULT_COMPRESSION, 1, NULL, 0);
    assert_int_equal(zipWriteInFileInZip(zf, comp, (unsigned)clen), ZIP_OK);
    assert_int_equal(zipCloseFileInZipRaw64(zf, declared_size, crc), ZIP_OK);
    assert_int_equal(zipClose(zf, NULL), ZIP_OK);
}

static uLong crc_of(const void *data, size_t len)
{
    return crc32(crc32(0L, Z_NULL, 0), data, (uInt)len);
}

/* Unpack must fail with want (and why, if given) and leave dest empty. */
static void expect_refused(const struct fx *f, const struct zipio_limits *lim, fs_status want,
                           const char *want_why)
{
    char top[NAME_MAX_LEN + 1] = "unchanged";
    const char *why = NULL;
    fs_status st = zipio_unpack(f->zip, f->dest, lim, top, sizeof top, &why);

    assert_int_equal(st, want);
    assert_non_null(why);
    if (want_why)
        assert_string_equal(why, want_why);
    assert_string_equal(top, "");
    assert_int_equal(count_dir(f->dest), 0);
}

static void expect_crafted_refused(const struct fx *f, const struct craft *e, size_t n,
                                   const char *want_why)
{
    craft_zip(f->zip, e, n);
    expect_refused(f, NULL, FS_EZIP, want_why);
}

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* ---- packing from descriptors ---- */

/* What zipio_pack_fd() reported as left out. */
struct skipped {
    int links, others;
    char last[256];
};

static void note_skip(void *arg, const char *path, int is_link)
{
    struct skipped *sk = arg;

    if (is_link)
        sk->links++;
    else
        sk->others++;
    snprintf(sk->last, sizeof sk->last, "%s", path);
}

/* Packs the file or folder at item, opened as a peer opens an item
 * (O_NOFOLLOW), under its own name into a new archive at zip (removed
 * again on failure). */
static fs_status pack_path(const char *item, const char *zip, struct skipped *sk)
{
    const char *name = strrchr(item, '/');
    int src = open(item, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC), out;
    fs_status st;

    if (src < 0)
        return FS_EIO;
    out = open(zip, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (out < 0) {
        close(src);
        return FS_EIO;
    }
    st = zipio_pack_fd(src, name ? name + 1 : item, out, sk ? note_skip : NULL, sk);
    close(out);
    close(src);
    if (st)
        unlink(zip);
    return st;
}

/* ---- round trips ---- */

static void pack_unpack(const struct fx *f, const char *item, const char *want_top)
{
    char top[NAME_MAX_LEN + 1];
    const char *why = "not reset";

    assert_int_equal(pack_path(item, f->zip, NULL), FS_OK);
    assert_int_equal(zipio_unpack(f->zip, f->dest, NULL, top, sizeof top, &why), FS_OK);
    assert_null(why);
    assert_string_equal(top, want_top);
}

static void test_single_file_round_trips(void **state)
{
    struct fx *f = *state;
    char item[256], out[256];

    path_join(item, sizeof item, f->src, "hello world.txt");
    put_file(item, "hello, flood\n", 13);
    pack_unpack(f, item, "hello world.txt");
    path_join(out, sizeof out, f->dest, "hello world.txt");
    assert_same_file(item, out);
    assert_int_equal(count_dir(f->dest), 1);
}

static void test_nested_folder_with_empty_subfolder_round_trips(void **state)
{
    struct fx *f = *state;
    char item[256], p[256];
    static const char *const files[] = {"album/a.txt", "album/one/b.txt",
                                        "album/one/two/c.txt", "album/one/two/three/d.txt"};

    path_join(item, sizeof item, f->src, "album");
    static const char *const dirs[] = {"album", "album/one", "album/one/two",
                                       "album/one/two/three", "album/empty"};
    for (size_t i = 0; i < NELEM(dirs); i++) {
        path_join(p, sizeof p, f->src, dirs[i]);
        assert_int_equal(mkdir(p, 0755), 0);
    }
    for (size_t i = 0; i < NELEM(files); i++) {
        path_join(p, sizeof p, f->src, files[i]);
        put_file(p, files[i], strlen(files[i]));
    }
    pack_unpack(f, item, "album");
    for (size_t i = 0; i < NELEM(files); i++) {
        path_join(p, sizeof p, f->dest, files[i]);
        assert_file_is(p, files[i]);
    }
    path_join(p, sizeof p, f->dest, "album/empty");
    assert_is_dir(p);
    assert_int_equal(count_dir(p), 0);
    path_join(p, sizeof p, f->dest, "album");
    assert_int_equal(count_dir(p), 3); /* a.txt, one, empty */
}

static int entry_method(const char *zip, const char *name)
{
    unzFile uf = unzOpen64(zip);
    unz_file_info64 fi;

    assert_non_null(uf);
    assert_int_equal(unzLocateFile(uf, name, 1), UNZ_OK);
    assert_int_equal(unzGetCurrentFileInfo64(uf, &fi, NULL, 0, NULL, 0, NULL, 0), UNZ_OK);
    unzClose(uf);
    return (int)fi.compression_method;
}

static void test_large_file_is_stored_and_round_trips(void **state)
{
    struct fx *f = *state;
    char item[256], out[256];

    path_join(item, sizeof item, f->src, "big.bin");
    put_noise(item, 3 * MIB);
    pack_unpack(f, item, "big.bin");
    assert_int_equal(entry_method(f->zip, "big.bin"), 0);
    path_join(out, sizeof out, f->dest, "big.bin");
    assert_same_file(item, out);
}

static void test_small_file_is_deflated_with_unix_attributes(void **state)
{
    struct fx *f = *state;
    char item[256], p[256];
    unzFile uf;
    unz_file_info64 fi;

    path_join(item, sizeof item, f->src, "docs");
    assert_int_equal(mkdir(item, 0755), 0);
    path_join(p, sizeof p, item, "readme");
    put_file(p, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 32);
    assert_int_equal(pack_path(item, f->zip, NULL), FS_OK);
    uf = unzOpen64(f->zip);
    assert_non_null(uf);
    assert_int_equal(unzLocateFile(uf, "docs/", 1), UNZ_OK);
    assert_int_equal(unzGetCurrentFileInfo64(uf, &fi, NULL, 0, NULL, 0, NULL, 0), UNZ_OK);
    assert_int_equal(fi.version >> 8, 3);
    assert_int_equal((fi.external_fa >> 16) & S_IFMT, S_IFDIR);
    assert_int_equal(unzLocateFile(uf, "docs/readme", 1), UNZ_OK);
    assert_int_equal(unzGetCurrentFileInfo64(uf, &fi, NULL, 0, NULL, 0, NULL, 0), UNZ_OK);
    assert_int_equal(fi.version >> 8, 3);
    assert_int_equal((fi.external_fa >> 16) & S_IFMT, S_IFREG);
    assert_int_equal((fi.external_fa >> 16) & 0777, 0644);
    assert_int_equal(fi.compression_method, Z_DEFLATED);
    unzClose(uf);
}

static void test_empty_file_round_trips(void **state)
{
    struct fx *f = *state;
    char item[256], out[256];
    struct stat st;

    path_join(item, sizeof item, f->src, "empty");
    put_file(item, "", 0);
    pack_unpack(f, item, "empty");
    path_join(out, sizeof out, f->dest, "empty");
    assert_int_equal(lstat(out, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(st.st_size, 0);
}

static void test_pack_is_deterministic(void **state)
{
    struct fx *f = *state;
    char item[256], p[256], zip2[256];

    path_join(item, sizeof item, f->src, "set");
    assert_int_equal(mkdir(item, 0755), 0);
    static const char *const names[] = {"zeta", "alpha", "mid", "Beta"};
    for (size_t i = 0; i < NELEM(names); i++) {
        path_join(p, sizeof p, item, names[i]);
        put_file(p, names[i], strlen(names[i]));
    }
    path_join(zip2, sizeof zip2, f->root, "b.zip");
    assert_int_equal(pack_path(item, f->zip, NULL), FS_OK);
    assert_int_equal(pack_path(item, zip2, NULL), FS_OK);
    assert_same_file(f->zip, zip2);
}

/* A link inside a folder is left out (and reported), never followed, and
 * does not fail the folder: the index leaves it out of the manifest too. */
static void test_pack_leaves_links_and_fifos_out_of_a_folder(void **state)
{
    struct fx *f = *state;
    char item[256], p[256];
    struct skipped sk = {0};

    path_join(item, sizeof item, f->src, "sneaky");
    assert_int_equal(mkdir(item, 0755), 0);
    path_join(p, sizeof p, item, "a.txt");
    put_file(p, "a", 1);
    path_join(p, sizeof p, item, "passwd");
    assert_int_equal(symlink("/etc/passwd", p), 0);
    path_join(p, sizeof p, item, "dirlink");
    assert_int_equal(symlink("/etc", p), 0);
    path_join(p, sizeof p, item, "fifo");
    assert_int_equal(mkfifo(p, 0600), 0);
    assert_int_equal(pack_path(item, f->zip, &sk), FS_OK);
    assert_int_equal(sk.links, 2);
    assert_int_equal(sk.others, 1);
    assert_int_equal(zipio_unpack(f->zip, f->dest, NULL, NULL, 0, NULL), FS_OK);
    path_join(p, sizeof p, f->dest, "sneaky");
    assert_int_equal(count_dir(p), 1);
    path_join(p, sizeof p, f->dest, "sneaky/a.txt");
    assert_file_is(p, "a");
}

static void test_pack_refuses_a_source_that_is_neither_file_nor_folder(void **state)
{
    struct fx *f = *state;
    char fifo[256];

    path_join(fifo, sizeof fifo, f->src, "fifo");
    assert_int_equal(mkfifo(fifo, 0600), 0);
    assert_int_equal(pack_path(fifo, f->zip, NULL), FS_EREFUSED);
    assert_int_equal(access(f->zip, F_OK), -1);
}

static void test_pack_never_packs_the_archive_into_itself(void **state)
{
    struct fx *f = *state;
    char item[256], zip[256];

    path_join(item, sizeof item, f->src, "box");
    assert_int_equal(mkdir(item, 0755), 0);
    path_join(zip, sizeof zip, item, "self.zip");
    assert_int_equal(pack_path(item, zip, NULL), FS_EINVAL);
}

/* The packer reads the folder it was given, by descriptors: renaming the
 * folder away and putting a link to somewhere else in its place changes
 * nothing it packs. */
static void test_pack_walks_the_folder_it_holds_not_its_path(void **state)
{
    struct fx *f = *state;
    char item[256], moved[256], other[256], p[256], top[NAME_MAX_LEN + 1];
    int src, out;

    path_join(item, sizeof item, f->src, "mine");
    assert_int_equal(mkdir(item, 0755), 0);
    path_join(p, sizeof p, item, "sub");
    assert_int_equal(mkdir(p, 0755), 0);
    path_join(p, sizeof p, item, "sub/real.txt");
    put_file(p, "real", 4);
    path_join(other, sizeof other, f->root, "other");
    assert_int_equal(mkdir(other, 0755), 0);
    path_join(p, sizeof p, other, "sub");
    assert_int_equal(mkdir(p, 0755), 0);
    path_join(p, sizeof p, other, "sub/secret.txt");
    put_file(p, "secret", 6);

    src = open(item, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    assert_true(src >= 0);
    path_join(moved, sizeof moved, f->src, "mine.moved");
    assert_int_equal(rename(item, moved), 0);
    assert_int_equal(symlink(other, item), 0);
    /* and a link in the middle of what it walks */
    path_join(p, sizeof p, moved, "sub");
    char subreal[256];
    path_join(subreal, sizeof subreal, moved, "sub.real");
    assert_int_equal(rename(p, subreal), 0);
    path_join(p, sizeof p, other, "sub");
    char sublink[256];
    path_join(sublink, sizeof sublink, moved, "sub");
    assert_int_equal(symlink(p, sublink), 0);

    out = open(f->zip, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    assert_true(out >= 0);
    struct skipped sk = {0};
    assert_int_equal(zipio_pack_fd(src, "mine", out, note_skip, &sk), FS_OK);
    close(out);
    close(src);
    assert_int_equal(sk.links, 1);
    assert_string_equal(sk.last, "mine/sub");
    assert_int_equal(zipio_unpack(f->zip, f->dest, NULL, top, sizeof top, NULL), FS_OK);
    path_join(p, sizeof p, f->dest, "mine/sub.real/real.txt");
    assert_file_is(p, "real");
    path_join(p, sizeof p, f->dest, "mine");
    assert_int_equal(count_dir(p), 1);
}

/* Modes follow the holder: each file gets its entry's permission bits
 * (never setuid/setgid/sticky), masked by the umask. */
static void test_unpack_gives_files_their_entry_modes_masked_by_the_umask(void **state)
{
    struct fx *f = *state;
    char item[256], p[600];
    static const struct { const char *name; mode_t mode; } files[] = {
        {"run.sh", 0755}, {"private", 0600}, {"plain", 0644}, {"readonly", 0444},
    };
    static const mode_t masks[] = {022, 027, 077};
    struct stat sb;

    path_join(item, sizeof item, f->src, "modes");
    assert_int_equal(mkdir(item, 0755), 0);
    for (size_t i = 0; i < NELEM(files); i++) {
        path_join(p, sizeof p, item, files[i].name);
        put_file(p, "x", 1);
        assert_int_equal(chmod(p, files[i].mode), 0);
    }
    assert_int_equal(pack_path(item, f->zip, NULL), FS_OK);
    for (size_t m = 0; m < NELEM(masks); m++) {
        char dest[256];
        snprintf(dest, sizeof dest, "%s/%zu", f->dest, m);
        assert_int_equal(mkdir(dest, 0755), 0);
        mode_t old = umask(masks[m]);
        fs_status st = zipio_unpack(f->zip, dest, NULL, NULL, 0, NULL);
        umask(old);
        assert_int_equal(st, FS_OK);
        for (size_t i = 0; i < NELEM(files); i++) {
            snprintf(p, sizeof p, "%s/modes/%s", dest, files[i].name);
            assert_int_equal(lstat(p, &sb), 0);
            assert_int_equal(sb.st_mode & 07777, files[i].mode & ~masks[m]);
        }
    }
}

static void test_unpack_strips_setuid_and_defaults_without_a_unix_mode(void **state)
{
    struct fx *f = *state;
    char p[256];
    struct stat sb;
    const struct craft e[] = {
        {.name = "top/", .made_by = UNIX_MADE_BY, .ext_attr = (uLong)(S_IFDIR | 0755) << 16},
        {.name = "top/suid", .data = "s", .len = 1, .made_by = UNIX_MADE_BY,
         .ext_attr = (uLong)(S_IFREG | 06755) << 16},
        {.name = "top/dos", .data = "d", .len = 1, .made_by = 0, .ext_attr = 0},
        {.name = "top/nomode", .data = "n", .len = 1, .made_by = UNIX_MADE_BY, .ext_attr = 0},
    };

    craft_zip(f->zip, e, NELEM(e));
    mode_t old = umask(022);
    fs_status st = zipio_unpack(f->zip, f->dest, NULL, NULL, 0, NULL);
    umask(old);
    assert_int_equal(st, FS_OK);
    path_join(p, sizeof p, f->dest, "top/suid");
    assert_int_equal(lstat(p, &sb), 0);
    assert_int_equal(sb.st_mode & 07777, 0755);
    path_join(p, sizeof p, f->dest, "top/dos");
    assert_int_equal(lstat(p, &sb), 0);
    assert_int_equal(sb.st_mode & 07777, 0644);
    path_join(p, sizeof p, f->dest, "top/nomode");
    assert_int_equal(lstat(p, &sb), 0);
    assert_int_equal(sb.st_mode & 07777, 0644);
}

static void test_remove_at_removes_below_a_descriptor_without_following(void **state)
{
    struct fx *f = *state;
    char outside[256], keep[256], p[256];
    int dfd;

    path_join(outside, sizeof outside, f->root, "outside");
    assert_int_equal(mkdir(outside, 0755), 0);
    path_join(keep, sizeof keep, outside, "keep");
    put_file(keep, "k", 1);
    path_join(p, sizeof p, f->src, "x-1");
    assert_int_equal(mkdir(p, 0755), 0);
    path_join(p, sizeof p, f->src, "x-1/link");
    assert_int_equal(symlink(outside, p), 0);
    dfd = open(f->src, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    assert_true(dfd >= 0);
    assert_int_equal(zipio_remove_at(dfd, "x-1"), FS_OK);
    assert_int_equal(zipio_remove_at(dfd, "x-1"), FS_OK); /* missing is fine */
    assert_int_equal(zipio_remove_at(dfd, "../x"), FS_EINVAL);
    close(dfd);
    assert_int_equal(count_dir(f->src), 0);
    assert_file_is(keep, "k");
}

/* ---- unpack refusals ---- */

static void test_unpack_refuses_dotdot_name(void **state)
{
    const struct craft e[] = {{.name = "../evil", .data = "x", .len = 1}};
    expect_crafted_refused(*state, e, NELEM(e), "entry name has a '..' component");
}

static void test_unpack_refuses_absolute_name(void **state)
{
    const struct craft e[] = {{.name = "/abs", .data = "x", .len = 1}};
    expect_crafted_refused(*state, e, NELEM(e), "absolute entry name");
}

static void test_unpack_refuses_backslash_name(void **state)
{
    const struct craft e[] = {{.name = "a\\b", .data = "x", .len = 1}};
    expect_crafted_refused(*state, e, NELEM(e), "entry name has a backslash");
}

static void test_unpack_refuses_drive_letter_name(void **state)
{
    const struct craft e[] = {{.name = "C:/x", .data = "x", .len = 1}};
    expect_crafted_refused(*state, e, NELEM(e), "entry name has a drive letter");
}

static void test_unpack_refuses_inner_dotdot_name(void **state)
{
    const struct craft e[] = {{.name = "top/"},
                              {.name = "top/ok", .data = "x", .len = 1},
                              {.name = "top/../../x", .data = "x", .len = 1}};
    expect_crafted_refused(*state, e, NELEM(e), "entry name has a '..' component");
}

static void test_unpack_refuses_empty_component(void **state)
{
    const struct craft e[] = {{.name = "top//x", .data = "x", .len = 1}};
    expect_crafted_refused(*state, e, NELEM(e), "entry name has an empty component");
}

static void test_unpack_refuses_symlink_entry(void **state)
{
    const struct craft e[] = {{.name = "top/"},
                              {.name = "top/link",
                               .data = "/etc/passwd",
                               .len = 11,
                               .made_by = UNIX_MADE_BY,
                               .ext_attr = (uLong)(S_IFLNK | 0777) << 16}};
    expect_crafted_refused(*state, e, NELEM(e), "symlink entry");
}

static void test_unpack_refuses_duplicate_entry(void **state)
{
    const struct craft e[] = {{.name = "top/"},
                              {.name = "top/a", .data = "1", .len = 1},
                              {.name = "top/b", .data = "2", .len = 1},
                              {.name = "top/a", .data = "3", .len = 1}};
    expect_crafted_refused(*state, e, NELEM(e), "duplicate entry");
}

static void test_unpack_refuses_file_and_folder_with_same_name(void **state)
{
    const struct craft e[] = {{.name = "top/a", .data = "1", .len = 1}, {.name = "top/a/"}};
    expect_crafted_refused(*state, e, NELEM(e), "duplicate entry");
}

static void test_unpack_refuses_file_used_as_folder(void **state)
{
    const struct craft e[] = {{.name = "top/a", .data = "1", .len = 1},
                              {.name = "top/a!", .data = "2", .len = 1},
                              {.name = "top/a/b", .data = "3", .len = 1}};
    expect_crafted_refused(*state, e, NELEM(e), "file entry used as a folder");
}

static void test_unpack_refuses_two_top_level_names(void **state)
{
    const struct craft e[] = {{.name = "one/x", .data = "1", .len = 1},
                              {.name = "two/y", .data = "2", .len = 1}};
    expect_crafted_refused(*state, e, NELEM(e), "more than one top-level name");
}

static void test_unpack_refuses_file_top_with_other_entries(void **state)
{
    const struct craft e[] = {{.name = "top", .data = "1", .len = 1},
                              {.name = "top/x", .data = "2", .len = 1}};
    expect_crafted_refused(*state, e, NELEM(e), "file entry used as a folder");
}

static void test_unpack_refuses_too_many_entries(void **state)
{
    struct fx *f = *state;
    const struct craft e[] = {{.name = "top/"},
                              {.name = "top/a", .data = "1", .len = 1},
                              {.name = "top/b", .data = "2", .len = 1},
                              {.name = "top/c", .data = "3", .len = 1},
                              {.name = "top/d", .data = "4", .len = 1}};
    const struct zipio_limits lim = {.max_total_bytes = MIB, .max_entries = 3, .max_ratio = 0};

    craft_zip(f->zip, e, NELEM(e));
    expect_refused(f, &lim, FS_ETOOBIG, "archive has too many entries");
}

static void test_unpack_refuses_declared_size_over_limit(void **state)
{
    struct fx *f = *state;
    char *noise = malloc(600 * 1024);
    const struct zipio_limits lim = {.max_total_bytes = MIB, .max_entries = 10, .max_ratio = 0};

    assert_non_null(noise);
    memset(noise, 'n', 600 * 1024);
    const struct craft e[] = {{.name = "top/a", .data = noise, .len = 600 * 1024},
                              {.name = "top/b", .data = noise, .len = 600 * 1024}};
    craft_zip(f->zip, e, NELEM(e));
    free(noise);
    expect_refused(f, &lim, FS_ETOOBIG, "archive exceeds the uncompressed size limit");
}

static void test_unpack_refuses_high_ratio_bomb(void **state)
{
    struct fx *f = *state;
    const struct zipio_limits lim = {
        .max_total_bytes = UINT64_C(1) << 40, .max_entries = 10, .max_ratio = 100};
    unsigned char *zeros = calloc(1, MIB);
    zipFile zf = zipOpen64(f->zip, APPEND_STATUS_CREATE);

    assert_non_null(zeros);
    assert_non_null(zf);
    craft_open(zf, "bomb", 0, 0, Z_DEFAULT_COMPRESSION, 0, NULL, 0);
    for (int i = 0; i < 50; i++)
        assert_int_equal(zipWriteInFileInZip(zf, zeros, MIB), ZIP_OK);
    assert_int_equal(zipCloseFileInZip(zf), ZIP_OK);
    assert_int_equal(zipClose(zf, NULL), ZIP_OK);
    free(zeros);
    expect_refused(f, &lim, FS_ETOOBIG, "entry compression ratio exceeds the limit");
}

static void test_unpack_refuses_encrypted_entry(void **state)
{
    struct fx *f = *state;
    zipFile zf = zipOpen64(f->zip, APPEND_STATUS_CREATE);

    assert_non_null(zf);
    craft_open(zf, "secret", 0, 0, Z_DEFAULT_COMPRESSION, 0, "pw", crc_of("hidden", 6));
    assert_int_equal(zipWriteInFileInZip(zf, "hidden", 6), ZIP_OK);
    assert_int_equal(zipCloseFileInZip(zf), ZIP_OK);
    assert_int_equal(zipClose(zf, NULL), ZIP_OK);
    expect_refused(f, NULL, FS_EZIP, "encrypted entry");
}

static void test_unpack_refuses_crc_mismatch_and_removes_partial_output(void **state)
{
    struct fx *f = *state;

    craft_lying_zip(f->zip, "hello world", 11, 0x12345678);
    expect_refused(f, NULL, FS_EZIP, "CRC mismatch");
}

static void test_unpack_refuses_entry_shorter_than_declared(void **state)
{
    struct fx *f = *state;

    craft_lying_zip(f->zip, "hello", 50, crc_of("hello", 5));
    expect_refused(f, NULL, FS_EZIP, "entry smaller than declared");
}

/* zipio inflates by itself and counts what comes out, so the excess is
 * seen as such (minizip would stop at the declared size). */
static void test_unpack_refuses_entry_longer_than_declared(void **state)
{
    struct fx *f = *state;
    static const char data[] = "0123456789abcdefghijklmnopqrstuvwxyz0123456789";

    craft_lying_zip(f->zip, data, 10, crc_of(data, strlen(data)));
    expect_refused(f, NULL, FS_EZIP, "entry larger than declared");
}

static void test_unpack_refuses_truncated_archive(void **state)
{
    struct fx *f = *state;
    char item[256], p[256];
    struct stat st;

    path_join(item, sizeof item, f->src, "stuff");
    assert_int_equal(mkdir(item, 0755), 0);
    path_join(p, sizeof p, item, "noise");
    put_noise(p, 256 * 1024);
    path_join(p, sizeof p, item, "text");
    put_file(p, "some text", 9);
    assert_int_equal(pack_path(item, f->zip, NULL), FS_OK);
    assert_int_equal(stat(f->zip, &st), 0);
    assert_int_equal(truncate(f->zip, st.st_size / 2), 0);
    expect_refused(f, NULL, FS_EZIP, "not a zip archive");
}

static void test_unpack_refuses_existing_top_level_and_keeps_it(void **state)
{
    struct fx *f = *state;
    char p[256];
    const char *why = NULL;
    const struct craft e[] = {{.name = "top", .data = "new", .len = 3}};

    craft_zip(f->zip, e, NELEM(e));
    path_join(p, sizeof p, f->dest, "top");
    put_file(p, "old", 3);
    assert_int_equal(zipio_unpack(f->zip, f->dest, NULL, NULL, 0, &why), FS_EEXIST);
    assert_non_null(why);
    assert_file_is(p, "old");
}

static void test_unpack_creates_implied_folders(void **state)
{
    struct fx *f = *state;
    char top[NAME_MAX_LEN + 1], p[256];
    const struct craft e[] = {{.name = "top/a/b/f", .data = "deep", .len = 4},
                              {.name = "top/a/g", .data = "mid", .len = 3}};

    craft_zip(f->zip, e, NELEM(e));
    assert_int_equal(zipio_unpack(f->zip, f->dest, NULL, top, sizeof top, NULL), FS_OK);
    assert_string_equal(top, "top");
    path_join(p, sizeof p, f->dest, "top/a/b/f");
    assert_file_is(p, "deep");
    path_join(p, sizeof p, f->dest, "top/a/g");
    assert_file_is(p, "mid");
}

static void test_unpack_refuses_small_top_buffer(void **state)
{
    struct fx *f = *state;
    char top[3];
    const struct craft e[] = {{.name = "toolong", .data = "x", .len = 1}};

    craft_zip(f->zip, e, NELEM(e));
    assert_int_equal(zipio_unpack(f->zip, f->dest, NULL, top, sizeof top, NULL), FS_EINVAL);
    assert_int_equal(count_dir(f->dest), 0);
}

/* ---- removal ---- */

static void test_remove_tree_does_not_follow_symlinks(void **state)
{
    struct fx *f = *state;
    char outside[256], keep[256], tree[256], p[256];

    path_join(outside, sizeof outside, f->root, "outside");
    assert_int_equal(mkdir(outside, 0755), 0);
    path_join(keep, sizeof keep, outside, "keep");
    put_file(keep, "k", 1);
    path_join(tree, sizeof tree, f->src, "tree");
    assert_int_equal(mkdir(tree, 0755), 0);
    path_join(p, sizeof p, tree, "sub");
    assert_int_equal(mkdir(p, 0755), 0);
    path_join(p, sizeof p, tree, "sub/link");
    assert_int_equal(symlink(outside, p), 0);
    path_join(p, sizeof p, tree, "sub/file");
    put_file(p, "f", 1);
    assert_int_equal(zipio_remove_tree(tree), FS_OK);
    assert_int_equal(access(tree, F_OK), -1);
    assert_file_is(keep, "k");
}

static void test_remove_tree_of_missing_path_is_ok(void **state)
{
    struct fx *f = *state;
    char p[256];

    path_join(p, sizeof p, f->root, "no such thing");
    assert_int_equal(zipio_remove_tree(p), FS_OK);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_single_file_round_trips),
        T(test_nested_folder_with_empty_subfolder_round_trips),
        T(test_large_file_is_stored_and_round_trips),
        T(test_small_file_is_deflated_with_unix_attributes),
        T(test_empty_file_round_trips),
        T(test_pack_is_deterministic),
        T(test_pack_leaves_links_and_fifos_out_of_a_folder),
        T(test_pack_refuses_a_source_that_is_neither_file_nor_folder),
        T(test_pack_never_packs_the_archive_into_itself),
        T(test_pack_walks_the_folder_it_holds_not_its_path),
        T(test_unpack_gives_files_their_entry_modes_masked_by_the_umask),
        T(test_unpack_strips_setuid_and_defaults_without_a_unix_mode),
        T(test_remove_at_removes_below_a_descriptor_without_following),
        T(test_unpack_refuses_dotdot_name),
        T(test_unpack_refuses_absolute_name),
        T(test_unpack_refuses_backslash_name),
        T(test_unpack_refuses_drive_letter_name),
        T(test_unpack_refuses_inner_dotdot_name),
        T(test_unpack_refuses_empty_component),
        T(test_unpack_refuses_symlink_entry),
        T(test_unpack_refuses_duplicate_entry),
        T(test_unpack_refuses_file_and_folder_with_same_name),
        T(test_unpack_refuses_file_used_as_folder),
        T(test_unpack_refuses_two_top_level_names),
        T(test_unpack_refuses_file_top_with_other_entries),
        T(test_unpack_refuses_too_many_entries),
        T(test_unpack_refuses_declared_size_over_limit),
        T(test_unpack_refuses_high_ratio_bomb),
        T(test_unpack_refuses_encrypted_entry),
        T(test_unpack_refuses_crc_mismatch_and_removes_partial_output),
        T(test_unpack_refuses_entry_shorter_than_declared),
        T(test_unpack_refuses_entry_longer_than_declared),
        T(test_unpack_refuses_truncated_archive),
        T(test_unpack_refuses_existing_top_level_and_keeps_it),
        T(test_unpack_creates_implied_folders),
        T(test_unpack_refuses_small_top_buffer),
        T(test_remove_tree_does_not_follow_symlinks),
        T(test_remove_tree_of_missing_path_is_ok),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
