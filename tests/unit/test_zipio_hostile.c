/* test_zipio_hostile.c - zipio_unpack against poisoned archives assembled
 * here byte by byte (local headers, central directory, zip64 records), so
 * that names, sizes, CRCs, offsets and attributes can lie in ways minizip's
 * writer refuses to produce. Each test asserts the exact status, the exact
 * sentence, that the destination folder is left empty and that nothing
 * beside it changed; the limits that must hold before anything is written
 * are checked with inotify, which sees a file even if it was removed again. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include "floodshare/name.h"
#include "floodshare/zipio.h"

#define KIB 1024
#define MIB (1024 * 1024)
#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* ------------------------------------------------------------------------ */
/* A zip writer that writes whatever it is told                             */

#define SIG_LOCAL 0x04034b50u
#define SIG_CENTRAL 0x02014b50u
#define SIG_END 0x06054b50u
#define SIG_END64 0x06064b50u
#define SIG_LOCATOR64 0x07064b50u
#define UNIX_MADE_BY ((3u << 8) | 45u)
#define DOS_DATE_1980 0x21u /* 1980-01-01 */

struct bytes {
    unsigned char *p;
    size_t len, cap;
};

static void put(struct bytes *b, const void *data, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n)
            cap *= 2;
        b->p = realloc(b->p, cap);
        assert_non_null(b->p);
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->len, data, n);
    b->len += n;
}

static void put16(struct bytes *b, uint32_t v)
{
    unsigned char x[2] = {(unsigned char)v, (unsigned char)(v >> 8)};
    put(b, x, sizeof x);
}

static void put32(struct bytes *b, uint32_t v)
{
    put16(b, v & 0xffff);
    put16(b, v >> 16);
}

static void put64(struct bytes *b, uint64_t v)
{
    put32(b, (uint32_t)v);
    put32(b, (uint32_t)(v >> 32));
}

/* One entry as both headers describe it. Every field is what gets written,
 * true or not. */
struct rec {
    const char *name;  /* the central directory's name */
    const char *lname; /* the local header's name; NULL: name */
    uint16_t method;   /* 0 stored, 8 deflated */
    uint16_t made_by;
    uint32_t ext_attr;
    uint32_t crc;
    uint64_t csize, usize; /* declared sizes */
    uint64_t offset;       /* of the local header (set by zb_add) */
    int zip64;             /* the local header carries a zip64 extra field */
};

struct zb {
    struct bytes body; /* local headers and data */
    struct bytes cd;   /* central directory records */
    uint64_t count;
};

static void zb_local(struct zb *z, const struct rec *r, const void *data, size_t n)
{
    const char *ln = r->lname ? r->lname : r->name;
    struct bytes *b = &z->body;

    put32(b, SIG_LOCAL);
    put16(b, r->zip64 ? 45 : 20);
    put16(b, 0x0800); /* UTF-8 names */
    put16(b, r->method);
    put16(b, 0);
    put16(b, DOS_DATE_1980);
    put32(b, r->crc);
    put32(b, r->csize >= 0xffffffffu ? 0xffffffffu : (uint32_t)r->csize);
    put32(b, r->usize >= 0xffffffffu ? 0xffffffffu : (uint32_t)r->usize);
    put16(b, (uint32_t)strlen(ln));
    put16(b, r->zip64 ? 20 : 0);
    put(b, ln, strlen(ln));
    if (r->zip64) {
        put16(b, 0x0001);
        put16(b, 16);
        put64(b, r->usize);
        put64(b, r->csize);
    }
    put(b, data, n);
}

/* A central record: it may point anywhere (r->offset), which is how two
 * entries come to share local data. Sizes and offset are 32-bit here:
 * Debian's minizip 1.1 never reads a zip64 extra field in the central
 * directory (it compares the 32-bit field with (unsigned long)-1, which on
 * LP64 is never true), so such a record would say 0xffffffff to it. */
static void zb_central(struct zb *z, const struct rec *r)
{
    struct bytes *b = &z->cd;

    put32(b, SIG_CENTRAL);
    put16(b, r->made_by);
    put16(b, r->zip64 ? 45 : 20);
    put16(b, 0x0800);
    put16(b, r->method);
    put16(b, 0);
    put16(b, DOS_DATE_1980);
    put32(b, r->crc);
    put32(b, (uint32_t)r->csize);
    put32(b, (uint32_t)r->usize);
    put16(b, (uint32_t)strlen(r->name));
    put16(b, 0); /* extra */
    put16(b, 0); /* comment */
    put16(b, 0); /* disk */
    put16(b, 0); /* internal attributes */
    put32(b, r->ext_attr);
    put32(b, (uint32_t)r->offset);
    put(b, r->name, strlen(r->name));
    z->count++;
}

/* Raw deflate of in[0..len); the caller frees *out. */
static size_t deflate_raw(const void *in, size_t len, unsigned char **out)
{
    z_stream zs;
    size_t cap = len + len / 100 + 64;

    *out = malloc(cap);
    assert_non_null(*out);
    memset(&zs, 0, sizeof zs);
    assert_int_equal(deflateInit2(&zs, Z_BEST_COMPRESSION, Z_DEFLATED, -MAX_WBITS, 9,
                                  Z_DEFAULT_STRATEGY),
                     Z_OK);
    zs.next_in = (Bytef *)(uintptr_t)in;
    zs.avail_in = (uInt)len;
    zs.next_out = *out;
    zs.avail_out = (uInt)cap;
    assert_int_equal(deflate(&zs, Z_FINISH), Z_STREAM_END);
    deflateEnd(&zs);
    return cap - zs.avail_out;
}

static uint32_t crc_of(const void *data, size_t len)
{
    return (uint32_t)crc32(crc32(0L, Z_NULL, 0), data, (uInt)len);
}

/* What an honest writer would declare for name with data; "x/" is a folder. */
static struct rec honest(const char *name, const void *data, size_t len, int deflated)
{
    int dir = name[strlen(name) - 1] == '/';
    struct rec r = {
        .name = name,
        .method = deflated ? 8 : 0,
        .made_by = UNIX_MADE_BY,
        .ext_attr = (uint32_t)(dir ? (S_IFDIR | 0755) : (S_IFREG | 0644)) << 16 | (dir ? 0x10 : 0),
        .crc = crc_of(data, len),
        .usize = len,
    };
    return r;
}

/* Appends the local header and the (compressed) data of r, filling in
 * r->offset and, unless keep_csize, r->csize; then its central record. */
static void zb_add_rec(struct zb *z, struct rec *r, const void *data, size_t len, int keep_csize)
{
    unsigned char *comp = NULL;
    size_t clen = len;
    const void *stored = data;

    if (r->method == 8) {
        clen = deflate_raw(data, len, &comp);
        stored = comp;
    }
    if (!keep_csize)
        r->csize = clen;
    r->offset = z->body.len;
    zb_local(z, r, stored, clen);
    zb_central(z, r);
    free(comp);
}

static void zb_add(struct zb *z, const char *name, const void *data, size_t len)
{
    struct rec r = honest(name, data, len, len > 0);
    zb_add_rec(z, &r, data, len, 0);
}

struct zend {
    int zip64;            /* zip64 end record and locator before the end record */
    uint64_t count;       /* entries declared; 0: the real count */
    int64_t cd_shift;     /* added to the central directory's declared offset */
};

static void zb_write(struct zb *z, const char *path, const struct zend *end)
{
    struct zend none = {0};
    struct bytes out = {0};
    uint64_t cdoff, count;
    FILE *fp;

    if (!end)
        end = &none;
    count = end->count ? end->count : z->count;
    put(&out, z->body.p, z->body.len);
    cdoff = out.len;
    put(&out, z->cd.p, z->cd.len);
    if (end->zip64) {
        uint64_t at = out.len;
        put32(&out, SIG_END64);
        put64(&out, 44);
        put16(&out, UNIX_MADE_BY);
        put16(&out, 45);
        put32(&out, 0);
        put32(&out, 0);
        put64(&out, count);
        put64(&out, count);
        put64(&out, z->cd.len);
        put64(&out, cdoff + (uint64_t)end->cd_shift);
        put32(&out, SIG_LOCATOR64);
        put32(&out, 0);
        put64(&out, at);
        put32(&out, 1);
    }
    put32(&out, SIG_END);
    put16(&out, 0);
    put16(&out, 0);
    put16(&out, end->zip64 ? 0xffff : (uint32_t)count);
    put16(&out, end->zip64 ? 0xffff : (uint32_t)count);
    put32(&out, end->zip64 ? 0xffffffffu : (uint32_t)z->cd.len);
    put32(&out, end->zip64 ? 0xffffffffu : (uint32_t)(cdoff + (uint64_t)end->cd_shift));
    put16(&out, 0);
    fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(out.p, 1, out.len, fp), out.len);
    assert_int_equal(fclose(fp), 0);
    free(out.p);
    free(z->body.p);
    free(z->cd.p);
    memset(z, 0, sizeof *z);
}

/* ------------------------------------------------------------------------ */
/* Fixture: root/{a.zip, dest/, sibling/keep}                               */

struct fx {
    char root[64];
    char dest[128];
    char sibling[128];
    char keep[160];
    char zip[128];
    int ino;                  /* inotify instance */
    int wd_root, wd_dest, wd_sibling;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    FILE *fp;

    if (!f)
        return -1;
    strcpy(f->root, "/tmp/fs_zipio_hostile_XXXXXX");
    if (!mkdtemp(f->root))
        return -1;
    snprintf(f->dest, sizeof f->dest, "%s/dest", f->root);
    snprintf(f->sibling, sizeof f->sibling, "%s/sibling", f->root);
    snprintf(f->keep, sizeof f->keep, "%s/keep", f->sibling);
    snprintf(f->zip, sizeof f->zip, "%s/a.zip", f->root);
    if (mkdir(f->dest, 0755) || mkdir(f->sibling, 0755) || !(fp = fopen(f->keep, "w")))
        return -1;
    fputs("keep", fp);
    fclose(fp);
    f->ino = -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    int rc = zipio_remove_tree(f->root) == FS_OK ? 0 : -1;

    if (f->ino >= 0)
        close(f->ino);
    free(f);
    return rc;
}

/* Starts watching root, dest and sibling for anything that creates,
 * changes or removes a name, from now on. */
static void watch(struct fx *f)
{
    const uint32_t mask = IN_CREATE | IN_DELETE | IN_MODIFY | IN_MOVED_FROM | IN_MOVED_TO |
                          IN_ATTRIB | IN_CLOSE_WRITE;

    f->ino = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    assert_true(f->ino >= 0);
    f->wd_root = inotify_add_watch(f->ino, f->root, mask);
    f->wd_dest = inotify_add_watch(f->ino, f->dest, mask);
    f->wd_sibling = inotify_add_watch(f->ino, f->sibling, mask);
    assert_true(f->wd_root >= 0 && f->wd_dest >= 0 && f->wd_sibling >= 0);
}

/* Counts the events seen since watch() in dest (*in_dest) and anywhere
 * else (*elsewhere). */
static void drain(struct fx *f, int *in_dest, int *elsewhere)
{
    char buf[64 * 1024] __attribute__((aligned(__alignof__(struct inotify_event))));

    *in_dest = *elsewhere = 0;
    for (;;) {
        ssize_t n = read(f->ino, buf, sizeof buf);
        if (n < 0) {
            assert_int_equal(errno, EAGAIN);
            break;
        }
        for (char *p = buf; p < buf + n;) {
            const struct inotify_event *ev = (const struct inotify_event *)p;
            if (ev->wd == f->wd_dest)
                (*in_dest)++;
            else
                (*elsewhere)++;
            p += sizeof *ev + ev->len;
        }
    }
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

/* root holds exactly a.zip, dest and sibling, and sibling/keep is intact. */
static void assert_surroundings_intact(const struct fx *f)
{
    char buf[16] = {0};
    FILE *fp = fopen(f->keep, "r");
    char p[192];

    assert_int_equal(count_dir(f->root), 3);
    snprintf(p, sizeof p, "%s/a.zip", f->root);
    assert_int_equal(access(p, F_OK), 0);
    assert_int_equal(count_dir(f->sibling), 1);
    assert_non_null(fp);
    assert_int_equal(fread(buf, 1, sizeof buf, fp), 4);
    fclose(fp);
    assert_string_equal(buf, "keep");
}

enum when {
    BEFORE_WRITING, /* refused by the checks that run before anything is created */
    WHILE_WRITING,  /* refused while inflating; what was written is removed */
};

static void expect_refused_lim(struct fx *f, const struct zipio_limits *lim, fs_status want,
                               const char *want_why, enum when when)
{
    char top[NAME_MAX_LEN + 1] = "unchanged";
    const char *why = NULL;
    int in_dest, elsewhere;

    watch(f);
    fs_status st = zipio_unpack(f->zip, f->dest, lim, top, sizeof top, &why);
    drain(f, &in_dest, &elsewhere);
    assert_string_equal(fs_status_name(st), fs_status_name(want));
    assert_non_null(why);
    assert_string_equal(why, want_why);
    assert_string_equal(top, "");
    assert_int_equal(count_dir(f->dest), 0);
    assert_surroundings_intact(f);
    assert_int_equal(elsewhere, 0);
    if (when == BEFORE_WRITING)
        assert_int_equal(in_dest, 0);
    else
        assert_true(in_dest > 0); /* it did start, so the in-flight check is what stopped it */
}

static void expect_refused(struct fx *f, fs_status want, const char *want_why, enum when when)
{
    expect_refused_lim(f, NULL, want, want_why, when);
}

/* Writes the archive, checks it is refused before anything is written. */
static void build_refused(struct fx *f, struct zb *z, const char *want_why)
{
    zb_write(z, f->zip, NULL);
    expect_refused(f, FS_EZIP, want_why, BEFORE_WRITING);
}

/* ------------------------------------------------------------------------ */
/* The control: the builder makes archives zipio accepts                    */

static void test_builder_makes_an_archive_that_unpacks(void **state)
{
    struct fx *f = *state;
    struct zb z = {0};
    char top[NAME_MAX_LEN + 1], p[256], buf[64] = {0};
    const char *why = "not reset";
    struct rec big;
    static char text[4000];

    memset(text, 't', sizeof text);
    zb_add(&z, "top/", NULL, 0);
    zb_add(&z, "top/a", "alpha", 5);
    zb_add(&z, "top/sub/", NULL, 0);
    big = honest("top/sub/b", text, sizeof text, 1);
    big.zip64 = 1;
    zb_add_rec(&z, &big, text, sizeof text, 0);
    zb_write(&z, f->zip, &(struct zend){.zip64 = 1});
    fs_status s = zipio_unpack(f->zip, f->dest, NULL, top, sizeof top, &why);
    assert_string_equal(why ? why : "none", "none");
    assert_int_equal(s, FS_OK);
    assert_string_equal(top, "top");
    snprintf(p, sizeof p, "%s/top/a", f->dest);
    FILE *fp = fopen(p, "r");
    assert_non_null(fp);
    assert_int_equal(fread(buf, 1, sizeof buf, fp), 5);
    fclose(fp);
    assert_string_equal(buf, "alpha");
    snprintf(p, sizeof p, "%s/top/sub/b", f->dest);
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_size, sizeof text);
}

/* ------------------------------------------------------------------------ */
/* Names                                                                    */

static void test_dotdot_component_is_refused(void **state)
{
    struct zb z = {0};

    zb_add(&z, "top/", NULL, 0);
    zb_add(&z, "top/ok", "x", 1);
    zb_add(&z, "top/../../evil", "x", 1);
    build_refused(*state, &z, "entry name has a '..' component");
}

static void test_leading_dotdot_is_refused(void **state)
{
    struct zb z = {0};

    zb_add(&z, "../evil", "x", 1);
    build_refused(*state, &z, "entry name has a '..' component");
}

static void test_absolute_name_is_refused(void **state)
{
    struct zb z = {0};

    zb_add(&z, "/tmp/fs_zipio_hostile_evil", "x", 1);
    build_refused(*state, &z, "absolute entry name");
}

static void test_backslash_name_is_refused(void **state)
{
    struct zb z = {0};

    zb_add(&z, "top/", NULL, 0);
    zb_add(&z, "top/a\\b", "x", 1);
    build_refused(*state, &z, "entry name has a backslash");
}

static void test_backslash_traversal_is_refused(void **state)
{
    struct zb z = {0};

    zb_add(&z, "top\\..\\..\\evil", "x", 1);
    build_refused(*state, &z, "entry name has a backslash");
}

static void test_drive_letter_is_refused(void **state)
{
    struct zb z = {0};

    zb_add(&z, "C:x", "x", 1);
    build_refused(*state, &z, "entry name has a drive letter");
}

static void test_name_with_nul_byte_is_refused(void **state)
{
    struct zb z = {0};
    struct rec r = honest("top/a", "x", 1, 0);
    static const char nul_name[] = "top/a\0b";

    /* strlen() stops at the NUL, so write the header by hand around it. */
    zb_add(&z, "top/", NULL, 0);
    r.name = "top/a?b";
    r.offset = z.body.len;
    r.csize = 1;
    zb_local(&z, &r, "x", 1);
    zb_central(&z, &r);
    memcpy(z.body.p + r.offset + 30, nul_name, 7);
    memcpy(z.cd.p + z.cd.len - 7, nul_name, 7);
    build_refused(*state, &z, "entry name is not a valid path");
}

/* ------------------------------------------------------------------------ */
/* Links                                                                    */

static void test_symlink_entry_is_refused(void **state)
{
    struct zb z = {0};
    struct rec r = honest("top/passwd", "/etc/passwd", 11, 0);

    zb_add(&z, "top/", NULL, 0);
    zb_add(&z, "top/ok", "x", 1);
    r.ext_attr = (uint32_t)(S_IFLNK | 0777) << 16;
    zb_add_rec(&z, &r, "/etc/passwd", 11, 0);
    build_refused(*state, &z, "symlink entry");
}

static void test_symlink_entry_from_macos_host_is_refused(void **state)
{
    struct zb z = {0};
    struct rec r = honest("top", "/etc", 4, 0);

    r.made_by = (19u << 8) | 20u;
    r.ext_attr = (uint32_t)(S_IFLNK | 0755) << 16;
    zb_add_rec(&z, &r, "/etc", 4, 0);
    build_refused(*state, &z, "symlink entry");
}

/* "top/d/" is a folder, then "top/d" a link to /tmp, then "top/d/x" would be
 * written through it. */
static void test_folder_replaced_by_link_is_refused(void **state)
{
    struct zb z = {0};
    struct rec r = honest("top/d", "/tmp", 4, 0);

    zb_add(&z, "top/", NULL, 0);
    zb_add(&z, "top/d/", NULL, 0);
    r.ext_attr = (uint32_t)(S_IFLNK | 0777) << 16;
    zb_add_rec(&z, &r, "/tmp", 4, 0);
    zb_add(&z, "top/d/x", "through the link", 16);
    build_refused(*state, &z, "symlink entry");
}

static void test_link_then_folder_of_the_same_name_is_refused(void **state)
{
    struct zb z = {0};
    struct rec r = honest("top/d", "/tmp", 4, 0);

    zb_add(&z, "top/", NULL, 0);
    r.ext_attr = (uint32_t)(S_IFLNK | 0777) << 16;
    zb_add_rec(&z, &r, "/tmp", 4, 0);
    zb_add(&z, "top/d/", NULL, 0);
    zb_add(&z, "top/d/x", "through the link", 16);
    build_refused(*state, &z, "symlink entry");
}

static void test_special_file_entry_is_refused(void **state)
{
    struct zb z = {0};
    struct rec r = honest("top/fifo", NULL, 0, 0);

    r.ext_attr = (uint32_t)(S_IFIFO | 0644) << 16;
    zb_add(&z, "top/", NULL, 0);
    zb_add_rec(&z, &r, NULL, 0, 0);
    build_refused(*state, &z, "special file entry");
}

/* ------------------------------------------------------------------------ */
/* Duplicates and the shape of the tree                                     */

static void test_exact_duplicate_is_refused(void **state)
{
    struct zb z = {0};

    zb_add(&z, "top/", NULL, 0);
    zb_add(&z, "top/a", "first", 5);
    zb_add(&z, "top/b", "other", 5);
    zb_add(&z, "top/a", "second", 6);
    build_refused(*state, &z, "duplicate entry");
}

static void test_duplicate_differing_by_trailing_slash_is_refused(void **state)
{
    struct zb z = {0};

    zb_add(&z, "top/", NULL, 0);
    zb_add(&z, "top/a/", NULL, 0);
    zb_add(&z, "top/a", "a file where a folder is", 24);
    build_refused(*state, &z, "duplicate entry");
}

static void test_duplicate_top_level_folder_is_refused(void **state)
{
    struct zb z = {0};

    zb_add(&z, "top/", NULL, 0);
    zb_add(&z, "top/a", "x", 1);
    zb_add(&z, "top/", NULL, 0);
    build_refused(*state, &z, "duplicate entry");
}

static void test_file_used_as_folder_is_refused(void **state)
{
    struct zb z = {0};

    zb_add(&z, "top/", NULL, 0);
    zb_add(&z, "top/a", "x", 1);
    zb_add(&z, "top/a/b", "y", 1);
    build_refused(*state, &z, "file entry used as a folder");
}

static void test_two_top_level_names_are_refused(void **state)
{
    struct zb z = {0};

    zb_add(&z, "top/", NULL, 0);
    zb_add(&z, "top/a", "x", 1);
    zb_add(&z, "other/b", "y", 1);
    build_refused(*state, &z, "more than one top-level name");
}

/* ------------------------------------------------------------------------ */
/* Where the central directory points                                       */

/* Two central records for one local header: "top/a" and "top/b" (same
 * length, same CRC and sizes, so the local header matches both). */
static void test_two_entries_sharing_local_data_are_refused(void **state)
{
    struct zb z = {0};
    struct rec a = honest("top/a", "shared", 6, 0), b;

    zb_add(&z, "top/", NULL, 0);
    zb_add_rec(&z, &a, "shared", 6, 0);
    b = a;
    b.name = "top/b";
    zb_central(&z, &b);
    build_refused(*state, &z, "entries overlap in the archive");
}

/* "top/outer" is stored and its data is a whole local entry "top/inner",
 * which another central record points into: the overlapping-files bomb
 * shape, where one run of bytes is counted many times. */
static void test_entry_inside_another_entrys_data_is_refused(void **state)
{
    struct zb inner = {0}, z = {0};
    struct rec in = honest("top/inner", "payload", 7, 0), out;

    zb_add_rec(&inner, &in, "payload", 7, 0); /* inner.body: its local header + data */
    zb_add(&z, "top/", NULL, 0);
    out = honest("top/outer", inner.body.p, inner.body.len, 0);
    zb_add_rec(&z, &out, inner.body.p, inner.body.len, 0);
    in.offset = out.offset + 30 + strlen(out.name); /* inside outer's data */
    zb_central(&z, &in);
    free(inner.body.p);
    free(inner.cd.p);
    build_refused(*state, &z, "entries overlap in the archive");
}

static void test_local_name_differing_from_central_name_is_refused(void **state)
{
    struct zb z = {0};
    struct rec r = honest("top/a", "x", 1, 0);

    zb_add(&z, "top/", NULL, 0);
    r.lname = "top/b"; /* same length: minizip only compares lengths */
    zb_add_rec(&z, &r, "x", 1, 0);
    build_refused(*state, &z, "local header name differs from the central directory");
}

static void test_local_name_with_traversal_is_refused(void **state)
{
    struct zb z = {0};
    struct rec r = honest("top/abcde", "x", 1, 0);

    zb_add(&z, "top/", NULL, 0);
    r.lname = "../../evil";
    r.name = "top/abcdef"; /* same length as the local name */
    zb_add_rec(&z, &r, "x", 1, 0);
    build_refused(*state, &z, "local header name differs from the central directory");
}

static void test_central_directory_past_the_end_is_refused(void **state)
{
    struct fx *f = *state;
    struct zb z = {0};

    zb_add(&z, "top/", NULL, 0);
    zb_add(&z, "top/a", "x", 1);
    zb_write(&z, f->zip, &(struct zend){.cd_shift = 4096});
    expect_refused(f, FS_EZIP, "not a zip archive", BEFORE_WRITING);
}

static void test_local_header_past_the_end_is_refused(void **state)
{
    struct zb z = {0};
    struct rec r = honest("top/a", "x", 1, 0);

    zb_add(&z, "top/", NULL, 0);
    zb_add_rec(&z, &r, "x", 1, 0);
    z.cd.len -= 46 + strlen(r.name);
    z.count--;
    r.offset = 1u << 20;
    zb_central(&z, &r);
    build_refused(*state, &z, "bad local header");
}

/* The first entry is fine; the second says it has more compressed bytes
 * than the archive holds. */
static void test_entry_data_past_the_end_is_refused(void **state)
{
    struct fx *f = *state;
    struct zb z = {0};
    struct rec r = honest("top/b", "bbbb", 4, 0);

    zb_add(&z, "top/", NULL, 0);
    zb_add(&z, "top/a", "fine", 4);
    r.method = 8;
    r.csize = 10 * MIB; /* both headers say so */
    zb_add_rec(&z, &r, "bbbb", 4, 1);
    zb_write(&z, f->zip, NULL);
    expect_refused(f, FS_EZIP, "entry data runs past the end of the archive", BEFORE_WRITING);
}

static void test_truncated_archive_is_refused(void **state)
{
    struct fx *f = *state;
    struct zb z = {0};
    struct stat st;

    zb_add(&z, "top/", NULL, 0);
    zb_add(&z, "top/a", "some text that is long enough", 29);
    zb_write(&z, f->zip, NULL);
    assert_int_equal(stat(f->zip, &st), 0);
    assert_int_equal(truncate(f->zip, st.st_size - 30), 0);
    expect_refused(f, FS_EZIP, "not a zip archive", BEFORE_WRITING);
}

/* ------------------------------------------------------------------------ */
/* Bombs                                                                    */

static const struct zipio_limits small_limits = {
    .max_total_bytes = 256 * KIB, .max_entries = 100, .max_ratio = 100};

static void test_entry_count_over_the_limit_is_refused_before_writing(void **state)
{
    struct fx *f = *state;
    struct zb z = {0};
    char name[32];

    zb_add(&z, "top/", NULL, 0);
    for (int i = 0; i < 100; i++) {
        snprintf(name, sizeof name, "top/f%03d", i);
        zb_add(&z, name, "x", 1);
    }
    zb_write(&z, f->zip, NULL);
    expect_refused_lim(f, &small_limits, FS_ETOOBIG, "archive has too many entries",
                       BEFORE_WRITING);
}

/* The zip64 end record declares 2^40 entries: refused on the count alone,
 * before a single central record is read. */
static void test_zip64_entry_count_over_the_limit_is_refused(void **state)
{
    struct fx *f = *state;
    struct zb z = {0};

    zb_add(&z, "top/", NULL, 0);
    zb_add(&z, "top/a", "x", 1);
    zb_write(&z, f->zip, &(struct zend){.zip64 = 1, .count = UINT64_C(1) << 40});
    expect_refused(f, FS_ETOOBIG, "archive has too many entries", BEFORE_WRITING);
}

/* A count of 0xffff in a plain end record means "more than fit" to minizip,
 * which then reads on until the records stop: the limit has to be counted
 * entry by entry, not taken from the end record. */
static void test_entry_count_past_0xffff_is_counted_entry_by_entry(void **state)
{
    struct fx *f = *state;
    struct zb z = {0};
    char name[32];
    const struct zipio_limits lim = {.max_total_bytes = MIB, .max_entries = 0xffff};

    zb_add(&z, "top/", NULL, 0);
    for (int i = 0; i < 0xffff + 16; i++) {
        snprintf(name, sizeof name, "top/%05x", i);
        zb_add(&z, name, NULL, 0);
    }
    zb_write(&z, f->zip, &(struct zend){.count = 0xffff});
    expect_refused_lim(f, &lim, FS_ETOOBIG, "archive has too many entries", BEFORE_WRITING);
}

static void test_declared_total_over_the_limit_is_refused_before_writing(void **state)
{
    struct fx *f = *state;
    struct zb z = {0};
    unsigned char *noise = malloc(200 * KIB);
    uint32_t x = 2463534242u;

    assert_non_null(noise);
    for (size_t i = 0; i < 200 * KIB; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        noise[i] = (unsigned char)x;
    }
    zb_add(&z, "top/", NULL, 0);
    zb_add(&z, "top/a", noise, 200 * KIB);
    zb_add(&z, "top/b", noise, 200 * KIB); /* 400 KiB > 256 KiB */
    free(noise);
    zb_write(&z, f->zip, NULL);
    expect_refused_lim(f, &small_limits, FS_ETOOBIG, "archive exceeds the uncompressed size limit",
                       BEFORE_WRITING);
}

static void test_compression_ratio_over_the_limit_is_refused_before_writing(void **state)
{
    struct fx *f = *state;
    struct zb z = {0};
    unsigned char *zeros = calloc(1, 4 * MIB);
    const struct zipio_limits lim = {
        .max_total_bytes = UINT64_C(1) << 40, .max_entries = 10, .max_ratio = 100};

    assert_non_null(zeros);
    zb_add(&z, "top/", NULL, 0);
    zb_add(&z, "top/a", "fine", 4);
    zb_add(&z, "top/zeros", zeros, 4 * MIB); /* deflates about 1000:1 */
    free(zeros);
    zb_write(&z, f->zip, NULL);
    expect_refused_lim(f, &lim, FS_ETOOBIG, "entry compression ratio exceeds the limit",
                       BEFORE_WRITING);
}

/* The default ratio cap (1000) on its own: 16 MiB of zeros deflate to
 * about 16 KiB. */
static void test_default_ratio_cap_refuses_zeros(void **state)
{
    struct fx *f = *state;
    struct zb z = {0};
    unsigned char *zeros = calloc(1, 16 * MIB);

    assert_non_null(zeros);
    zb_add(&z, "zeros", zeros, 16 * MIB);
    free(zeros);
    zb_write(&z, f->zip, NULL);
    expect_refused(f, FS_ETOOBIG, "entry compression ratio exceeds the limit", BEFORE_WRITING);
}

/* Declared sizes lie small (1 KiB each, so the declared total and the
 * ratio pass), but the entry inflates to 8 MiB: the bytes counted while
 * inflating pass the 256 KiB total first. */
static void test_total_counted_while_inflating_stops_a_lying_bomb(void **state)
{
    struct fx *f = *state;
    struct zb z = {0};
    unsigned char *zeros = calloc(1, 8 * MIB);
    struct rec r = honest("top/bomb", NULL, 0, 1);
    unsigned char *comp;
    size_t clen;

    assert_non_null(zeros);
    zb_add(&z, "top/", NULL, 0);
    zb_add(&z, "top/a", "fine", 4);
    clen = deflate_raw(zeros, 8 * MIB, &comp);
    r.usize = 64 * KIB;
    r.crc = crc_of(zeros, 64 * KIB); /* honest for what it declares */
    r.csize = clen;
    r.offset = z.body.len;
    zb_local(&z, &r, comp, clen);
    zb_central(&z, &r);
    free(comp);
    free(zeros);
    zb_write(&z, f->zip, NULL);
    const struct zipio_limits lim = {
        .max_total_bytes = 128 * KIB, .max_entries = 10, .max_ratio = 1000};
    expect_refused_lim(f, &lim, FS_ETOOBIG, "archive inflates past the uncompressed size limit",
                       WHILE_WRITING);
}

/* ------------------------------------------------------------------------ */
/* Sizes and CRCs that lie                                                  */

/* An entry whose stream holds more than it declares, with a CRC that
 * matches exactly the declared prefix: an extractor that stops at the
 * declared size would accept it and silently drop the rest. */
static void test_declared_size_smaller_than_the_data_is_refused(void **state)
{
    struct fx *f = *state;
    struct zb z = {0};
    static const char data[] = "0123456789abcdefghijklmnopqrstuvwxyz";
    struct rec r = honest("top/lie", data, 36, 1);

    zb_add(&z, "top/", NULL, 0);
    zb_add(&z, "top/a", "fine", 4);
    r.usize = 10;
    r.crc = crc_of(data, 10);
    zb_add_rec(&z, &r, data, 36, 0);
    zb_write(&z, f->zip, NULL);
    expect_refused(f, FS_EZIP, "entry larger than declared", WHILE_WRITING);
}

static void test_declared_size_larger_than_the_data_is_refused(void **state)
{
    struct fx *f = *state;
    struct zb z = {0};
    struct rec r = honest("top/lie", "hello", 5, 1);

    zb_add(&z, "top/", NULL, 0);
    zb_add(&z, "top/a", "fine", 4);
    r.usize = 50;
    zb_add_rec(&z, &r, "hello", 5, 0);
    zb_write(&z, f->zip, NULL);
    expect_refused(f, FS_EZIP, "entry smaller than declared", WHILE_WRITING);
}

static void test_stored_entry_with_differing_sizes_is_refused(void **state)
{
    struct zb z = {0};
    struct rec r = honest("top/lie", "hello", 5, 0);

    zb_add(&z, "top/", NULL, 0);
    r.usize = 3;
    zb_add_rec(&z, &r, "hello", 5, 0);
    build_refused(*state, &z, "stored entry sizes differ");
}

static void test_crc_that_lies_is_refused(void **state)
{
    struct fx *f = *state;
    struct zb z = {0};
    struct rec r = honest("top/lie", "hello world", 11, 1);

    zb_add(&z, "top/", NULL, 0);
    zb_add(&z, "top/a", "fine", 4);
    r.crc ^= 0x00010000u;
    zb_add_rec(&z, &r, "hello world", 11, 0);
    zb_write(&z, f->zip, NULL);
    expect_refused(f, FS_EZIP, "CRC mismatch", WHILE_WRITING);
}

static void test_stored_crc_that_lies_is_refused(void **state)
{
    struct fx *f = *state;
    struct zb z = {0};
    struct rec r = honest("lie", "hello world", 11, 0);

    r.crc = 0;
    zb_add_rec(&z, &r, "hello world", 11, 0);
    zb_write(&z, f->zip, NULL);
    expect_refused(f, FS_EZIP, "CRC mismatch", WHILE_WRITING);
}

/* Bytes after the end of the deflate stream, inside the declared
 * compressed size: a second payload nobody would see. */
static void test_data_after_the_deflate_stream_is_refused(void **state)
{
    struct fx *f = *state;
    struct zb z = {0};
    struct rec r = honest("top/hidden", "visible", 7, 1);
    unsigned char *comp, *padded;
    size_t clen = deflate_raw("visible", 7, &comp);

    assert_non_null(padded = malloc(clen + 16));
    memcpy(padded, comp, clen);
    memcpy(padded + clen, "hidden payload!!", 16);
    zb_add(&z, "top/", NULL, 0);
    r.csize = clen + 16;
    r.offset = z.body.len;
    zb_local(&z, &r, padded, clen + 16);
    zb_central(&z, &r);
    free(comp);
    free(padded);
    zb_write(&z, f->zip, NULL);
    expect_refused(f, FS_EZIP, "data after the end of the compressed stream", WHILE_WRITING);
}

static void test_corrupt_deflate_stream_is_refused(void **state)
{
    struct fx *f = *state;
    struct zb z = {0};
    struct rec r = honest("top/bad", "some text", 9, 1);
    static const unsigned char junk[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

    zb_add(&z, "top/", NULL, 0);
    zb_add(&z, "top/a", "fine", 4);
    r.csize = sizeof junk;
    r.offset = z.body.len;
    zb_local(&z, &r, junk, sizeof junk);
    zb_central(&z, &r);
    zb_write(&z, f->zip, NULL);
    expect_refused(f, FS_EZIP, "corrupt compressed data", WHILE_WRITING);
}

/* A deflate stream cut short: the declared compressed size ends before the
 * stream does. */
static void test_deflate_stream_cut_short_is_refused(void **state)
{
    struct fx *f = *state;
    struct zb z = {0};
    static char text[3000];
    struct rec r;
    unsigned char *comp;
    size_t clen;

    for (size_t i = 0; i < sizeof text; i++)
        text[i] = (char)('a' + (i * 7 + i / 13) % 26);
    r = honest("top/cut", text, sizeof text, 1);
    clen = deflate_raw(text, sizeof text, &comp);
    zb_add(&z, "top/", NULL, 0);
    r.csize = clen / 2;
    r.offset = z.body.len;
    zb_local(&z, &r, comp, clen / 2);
    zb_central(&z, &r);
    free(comp);
    zb_write(&z, f->zip, NULL);
    expect_refused(f, FS_EZIP, "compressed data ends early", WHILE_WRITING);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_builder_makes_an_archive_that_unpacks),
        T(test_dotdot_component_is_refused),
        T(test_leading_dotdot_is_refused),
        T(test_absolute_name_is_refused),
        T(test_backslash_name_is_refused),
        T(test_backslash_traversal_is_refused),
        T(test_drive_letter_is_refused),
        T(test_name_with_nul_byte_is_refused),
        T(test_symlink_entry_is_refused),
        T(test_symlink_entry_from_macos_host_is_refused),
        T(test_folder_replaced_by_link_is_refused),
        T(test_link_then_folder_of_the_same_name_is_refused),
        T(test_special_file_entry_is_refused),
        T(test_exact_duplicate_is_refused),
        T(test_duplicate_differing_by_trailing_slash_is_refused),
        T(test_duplicate_top_level_folder_is_refused),
        T(test_file_used_as_folder_is_refused),
        T(test_two_top_level_names_are_refused),
        T(test_two_entries_sharing_local_data_are_refused),
        T(test_entry_inside_another_entrys_data_is_refused),
        T(test_local_name_differing_from_central_name_is_refused),
        T(test_local_name_with_traversal_is_refused),
        T(test_central_directory_past_the_end_is_refused),
        T(test_local_header_past_the_end_is_refused),
        T(test_entry_data_past_the_end_is_refused),
        T(test_truncated_archive_is_refused),
        T(test_entry_count_over_the_limit_is_refused_before_writing),
        T(test_zip64_entry_count_over_the_limit_is_refused),
        T(test_entry_count_past_0xffff_is_counted_entry_by_entry),
        T(test_declared_total_over_the_limit_is_refused_before_writing),
        T(test_compression_ratio_over_the_limit_is_refused_before_writing),
        T(test_default_ratio_cap_refuses_zeros),
        T(test_total_counted_while_inflating_stops_a_lying_bomb),
        T(test_declared_size_smaller_than_the_data_is_refused),
        T(test_declared_size_larger_than_the_data_is_refused),
        T(test_stored_entry_with_differing_sizes_is_refused),
        T(test_crc_that_lies_is_refused),
        T(test_stored_crc_that_lies_is_refused),
        T(test_data_after_the_deflate_stream_is_refused),
        T(test_corrupt_deflate_stream_is_refused),
        T(test_deflate_stream_cut_short_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
