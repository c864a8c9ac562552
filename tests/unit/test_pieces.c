/* test_pieces.c - piece hashes (pieces.h): the streaming hasher, the root,
 * the list check (tampered, wrong length, wrong root), list files, and the
 * share's sidecars (hashed in the MD5's pass, cached, rehashed when lost). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "floodshare/pieces.h"
#include "floodshare/share.h"

#define P64K (64u * 1024)
#define DATA_LEN (3 * P64K + 100)
/* Python: hashlib over the same bytes (see make_data), see DESIGN.md. */
#define DATA_ROOT "b142540ea694b6ad8393c36d8a94fb0aa2865717af0ac6319544bc0a8a36e3e9"
#define EMPTY_ROOT "fd5cbc0a8dd7c27befe7e5ba969be45ced1a7a7109654ddb05ef4fc12ed09a3d"

static unsigned char *make_data(size_t n)
{
    unsigned char *d = malloc(n);

    assert_non_null(d);
    for (size_t i = 0; i < n; i++)
        d[i] = (unsigned char)((i * 7 + 3) & 255);
    return d;
}

/* Streams d in uneven slices so slices straddle piece boundaries. */
static void hash_all(const unsigned char *d, size_t n, uint64_t piece, unsigned char **list,
                     uint64_t *np, char root[PIECES_ROOT_HEX + 1])
{
    struct pieces_hash ph;
    size_t off = 0, step = 1;

    assert_int_equal(pieces_hash_init(&ph, piece), FS_OK);
    while (off < n) {
        size_t take = n - off < step ? n - off : step;
        pieces_hash_update(&ph, d + off, take);
        off += take;
        step = step * 3 + 7;
    }
    assert_int_equal(pieces_hash_final(&ph, list, np, root), FS_OK);
}

static void test_pieces_stream_matches_one_shot_and_known_root(void **state)
{
    unsigned char *d = make_data(DATA_LEN), *list;
    uint64_t n;
    char root[PIECES_ROOT_HEX + 1], again[PIECES_ROOT_HEX + 1];

    (void)state;
    hash_all(d, DATA_LEN, P64K, &list, &n, root);
    assert_int_equal(n, 4);
    assert_int_equal(pieces_count(DATA_LEN, P64K), 4);
    for (uint64_t i = 0; i < n; i++) {
        size_t len = i == 3 ? 100 : P64K;
        unsigned char md[32];
        unsigned mdlen;
        assert_int_equal(EVP_Digest(d + i * P64K, len, md, &mdlen, EVP_sha256(), NULL), 1);
        assert_memory_equal(md, list + i * 32, 32);
        assert_true(pieces_piece_ok(list, n, i, d + i * P64K, len));
    }
    assert_string_equal(root, DATA_ROOT);
    assert_int_equal(pieces_root(DATA_LEN, P64K, list, n, again), FS_OK);
    assert_string_equal(again, DATA_ROOT);
    free(list);
    free(d);
}

static void test_pieces_empty_file_has_no_pieces_and_a_root(void **state)
{
    struct pieces_hash ph;
    unsigned char *list;
    uint64_t n = 9;
    char root[PIECES_ROOT_HEX + 1];
    const char *why;

    (void)state;
    assert_int_equal(pieces_hash_init(&ph, PIECES_SIZE), FS_OK);
    assert_int_equal(pieces_hash_final(&ph, &list, &n, root), FS_OK);
    assert_null(list);
    assert_int_equal(n, 0);
    assert_string_equal(root, EMPTY_ROOT);
    assert_int_equal(pieces_check_list(0, PIECES_SIZE, NULL, 0, EMPTY_ROOT, &why), FS_OK);
}

static void test_pieces_check_list_refuses_tampered_short_long_and_wrong_root(void **state)
{
    unsigned char *d = make_data(DATA_LEN), *list, *big;
    uint64_t n;
    char root[PIECES_ROOT_HEX + 1], other[PIECES_ROOT_HEX + 1];
    const char *why;

    (void)state;
    hash_all(d, DATA_LEN, P64K, &list, &n, root);
    assert_int_equal(pieces_check_list(DATA_LEN, P64K, list, n * 32, root, &why), FS_OK);
    /* tampered: one bit of one hash */
    list[2 * 32 + 5] ^= 1;
    assert_int_equal(pieces_check_list(DATA_LEN, P64K, list, n * 32, root, &why), FS_EPROTO);
    assert_string_equal(why, "the list does not match the root");
    list[2 * 32 + 5] ^= 1;
    /* wrong length: a hash short, a hash too many */
    assert_int_equal(pieces_check_list(DATA_LEN, P64K, list, (n - 1) * 32, root, &why),
                     FS_EPROTO);
    assert_string_equal(why, "the list has the wrong length for the size");
    big = calloc(n + 1, 32);
    assert_non_null(big);
    memcpy(big, list, n * 32);
    assert_int_equal(pieces_check_list(DATA_LEN, P64K, big, (n + 1) * 32, root, &why),
                     FS_EPROTO);
    assert_string_equal(why, "the list has the wrong length for the size");
    /* wrong root: the list of the same bytes bound to another size */
    assert_int_equal(pieces_root(DATA_LEN - 1, P64K, list, n, other), FS_OK);
    assert_string_not_equal(other, root);
    assert_int_equal(pieces_check_list(DATA_LEN, P64K, list, n * 32, other, &why), FS_EPROTO);
    assert_string_equal(why, "the list does not match the root");
    assert_int_equal(pieces_check_list(DATA_LEN, P64K, list, n * 32, EMPTY_ROOT, &why),
                     FS_EPROTO);
    /* a piece size that is not ours, a root that is not hex */
    assert_int_equal(pieces_check_list(DATA_LEN, 3000, list, n * 32, root, &why), FS_EPROTO);
    assert_int_equal(pieces_check_list(DATA_LEN, P64K, list, n * 32, "xyz", &why), FS_EPROTO);
    /* a size whose list would pass PIECES_LIST_MAX is refused before hashing */
    assert_int_equal(pieces_check_list(UINT64_MAX, P64K, list, n * 32, root, &why), FS_ETOOBIG);
    free(big);
    free(list);
    free(d);
}

static void test_pieces_size_grows_only_for_files_past_512_gib(void **state)
{
    (void)state;
    assert_int_equal(pieces_size_for(0), PIECES_SIZE);
    assert_int_equal(pieces_size_for((uint64_t)PIECES_SIZE * PIECES_MAX_COUNT), PIECES_SIZE);
    assert_int_equal(pieces_size_for((uint64_t)PIECES_SIZE * PIECES_MAX_COUNT + 1),
                     2 * PIECES_SIZE);
    assert_int_equal(pieces_size_for((uint64_t)PIECES_SIZE_MAX * PIECES_MAX_COUNT),
                     PIECES_SIZE_MAX);
    assert_int_equal(pieces_size_for((uint64_t)PIECES_SIZE_MAX * PIECES_MAX_COUNT + 1), 0);
}

static void test_pieces_piece_ok_refuses_changed_bytes_and_bad_index(void **state)
{
    unsigned char *d = make_data(DATA_LEN), *list;
    uint64_t n;
    char root[PIECES_ROOT_HEX + 1];

    (void)state;
    hash_all(d, DATA_LEN, P64K, &list, &n, root);
    assert_true(pieces_piece_ok(list, n, 1, d + P64K, P64K));
    d[P64K + 17] ^= 0x40;
    assert_false(pieces_piece_ok(list, n, 1, d + P64K, P64K));
    assert_false(pieces_piece_ok(list, n, 2, d + P64K, P64K)); /* another piece's hash */
    assert_false(pieces_piece_ok(list, n, n, d, 100));         /* past the list */
    free(list);
    free(d);
}

static char tmpdir[64];

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/fs_pieces_XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    return nftw(tmpdir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static void test_pieces_file_round_trips_and_refuses_damage(void **state)
{
    unsigned char *d = make_data(DATA_LEN), *list, *back, *raw;
    uint64_t n, bn, piece;
    char root[PIECES_ROOT_HEX + 1], path[128];
    const char *why;
    struct pieces_file pf;
    int dfd = open(tmpdir, O_RDONLY | O_DIRECTORY);
    struct stat sb;

    (void)state;
    hash_all(d, DATA_LEN, P64K, &list, &n, root);
    assert_int_equal(pieces_save_at(dfd, "l", DATA_LEN, P64K, root, list, n), FS_OK);
    assert_int_equal(pieces_load_at(dfd, "l", DATA_LEN, root, &back, &bn, &piece, &why), FS_OK);
    assert_int_equal(bn, n);
    assert_int_equal(piece, P64K);
    assert_memory_equal(back, list, n * 32);
    free(back);
    /* the list of another file, asked for under this size or root */
    assert_int_equal(pieces_load_at(dfd, "l", DATA_LEN + 1, root, &back, &bn, &piece, &why),
                     FS_EPROTO);
    assert_int_equal(pieces_load_at(dfd, "l", DATA_LEN, EMPTY_ROOT, &back, &bn, &piece, &why),
                     FS_EPROTO);
    assert_int_equal(pieces_load_at(dfd, "none", DATA_LEN, root, &back, &bn, &piece, &why),
                     FS_ENOTFOUND);
    /* one flipped byte in the stored list, a truncated file */
    snprintf(path, sizeof path, "%s/l", tmpdir);
    assert_int_equal(stat(path, &sb), 0);
    raw = malloc((size_t)sb.st_size);
    FILE *f = fopen(path, "rb");
    assert_int_equal(fread(raw, 1, (size_t)sb.st_size, f), (size_t)sb.st_size);
    fclose(f);
    assert_int_equal(pieces_file_parse(raw, (size_t)sb.st_size, &pf, &why), FS_OK);
    assert_string_equal(pf.root, root);
    raw[sb.st_size - 1] ^= 1;
    assert_int_equal(pieces_file_parse(raw, (size_t)sb.st_size, &pf, &why), FS_EPROTO);
    assert_string_equal(why, "the list does not match the root");
    assert_int_equal(pieces_file_parse(raw, (size_t)sb.st_size - 32, &pf, &why), FS_EPROTO);
    assert_string_equal(why, "the list has the wrong length for the size");
    assert_int_equal(pieces_file_parse(raw, 10, &pf, &why), FS_EPROTO);
    free(raw);
    close(dfd);
    free(list);
    free(d);
}

/* The share hashes pieces in the MD5's pass and keeps the list as a
 * sidecar named by its root; a cached hash whose sidecar is gone is hashed
 * again at the next open, never advertised with a root nobody can serve. */
static void test_pieces_share_keeps_sidecar_and_rehashes_when_lost(void **state)
{
    size_t len = 2 * PIECES_SIZE + 5;
    unsigned char *d = make_data(len), *list;
    uint64_t n;
    char root[PIECES_ROOT_HEX + 1], path[256];
    struct share_item it;
    struct stat sb;
    fs_status st;

    (void)state;
    hash_all(d, len, PIECES_SIZE, &list, &n, root);
    snprintf(path, sizeof path, "%s/big.bin", tmpdir);
    FILE *f = fopen(path, "wb");
    assert_int_equal(fwrite(d, 1, len, f), len);
    fclose(f);
    /* old enough to be cached (not "racy") */
    struct timespec ts[2] = {{1700000000, 0}, {1700000000, 0}};
    assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);

    struct share *sh = share_open(tmpdir, &st);
    assert_non_null(sh);
    assert_int_equal(share_lookup(sh, "big.bin", &it), FS_OK);
    assert_string_equal(it.root, root);
    share_close(sh);
    snprintf(path, sizeof path, "%s/.floodshare/pieces/%s", tmpdir, root);
    assert_int_equal(stat(path, &sb), 0);
    char head[128];
    snprintf(head, sizeof head, "floodshare-pieces 1 %zu %u %s\n", len, PIECES_SIZE, root);
    assert_int_equal(n, 3);
    assert_int_equal(sb.st_size, strlen(head) + n * 32);

    assert_int_equal(unlink(path), 0);
    sh = share_open(tmpdir, &st);
    assert_non_null(sh);
    assert_int_equal(share_lookup(sh, "big.bin", &it), FS_OK);
    assert_string_equal(it.root, root);
    share_close(sh);
    assert_int_equal(stat(path, &sb), 0); /* hashed again, sidecar back */
    free(list);
    free(d);
}

static void put_file(const char *rel, const char *text)
{
    char path[512];

    snprintf(path, sizeof path, "%s/%s", tmpdir, rel);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
    fclose(f);
    /* old enough to be cached (not "racy") */
    struct timespec ts[2] = {{1700000000, 0}, {1700000000, 0}};
    assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
}

/* The worked example of docs/PROTOCOL.md, Folder roots: the folder root is
 * the hash of its files' roots in manifest order, and ROOTS is answered
 * with exactly those roots, only for the root asked for. */
static void test_pieces_folder_root_is_the_documented_example(void **state)
{
    static const char want[] = "1c9ec5d6ed324c9826601593a2ce0173c977f1f446d95248f06f10f8fce6c4ac";
    static const char other[] = "0c9ec5d6ed324c9826601593a2ce0173c977f1f446d95248f06f10f8fce6c4ac";
    char path[512], root[PIECES_ROOT_HEX + 1];
    unsigned char bin[2 * PIECES_HASH_LEN], *list;
    struct share_item it, a, c;
    uint64_t n;
    fs_status st;

    (void)state;
    snprintf(path, sizeof path, "%s/pics", tmpdir);
    assert_int_equal(mkdir(path, 0755), 0);
    snprintf(path, sizeof path, "%s/pics/b", tmpdir);
    assert_int_equal(mkdir(path, 0755), 0);
    put_file("pics/a.txt", "hello\n");
    put_file("pics/b/c.txt", "world\n");
    struct share *sh = share_open(tmpdir, &st);
    assert_non_null(sh);
    assert_int_equal(share_lookup(sh, "pics", &it), FS_OK);
    assert_string_equal(it.root, want);
    assert_int_equal(share_lookup(sh, "pics/a.txt", &a), FS_OK);
    assert_int_equal(share_lookup(sh, "pics/b/c.txt", &c), FS_OK);
    assert_string_equal(c.root, "d0c343c219b635a0603613f35a3d4141d99237563d036aff1087e691d1fc3523");

    /* the pure hash over the binary roots, in manifest order */
    assert_int_equal(pieces_root_bin(a.root, bin), 0);
    assert_int_equal(pieces_root_bin(c.root, bin + PIECES_HASH_LEN), 0);
    assert_int_equal(pieces_folder_root(bin, 2, root), FS_OK);
    assert_string_equal(root, want);
    assert_int_equal(pieces_folder_root(bin, 1, root), FS_OK); /* the count is bound */
    assert_string_not_equal(root, want);
    assert_int_equal(pieces_root_bin("D0c3", bin), -1);

    /* what ROOTS sends */
    assert_int_equal(share_folder_roots(sh, "pics", want, &list, &n), FS_OK);
    assert_int_equal(n, 2);
    assert_memory_equal(list, bin, sizeof bin);
    free(list);
    assert_int_equal(share_folder_roots(sh, "pics", other, &list, &n), FS_EMISMATCH);
    assert_null(list);
    assert_int_equal(share_folder_roots(sh, "pics/a.txt", want, &list, &n), FS_ENOTFOUND);
    assert_int_equal(share_folder_roots(sh, "../pics", want, &list, &n), FS_EBADNAME);
    share_close(sh);
}

#define T(f) cmocka_unit_test(f)
#define TD(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_pieces_stream_matches_one_shot_and_known_root),
        T(test_pieces_empty_file_has_no_pieces_and_a_root),
        T(test_pieces_check_list_refuses_tampered_short_long_and_wrong_root),
        T(test_pieces_piece_ok_refuses_changed_bytes_and_bad_index),
        T(test_pieces_size_grows_only_for_files_past_512_gib),
        TD(test_pieces_file_round_trips_and_refuses_damage),
        TD(test_pieces_share_keeps_sidecar_and_rehashes_when_lost),
        TD(test_pieces_folder_root_is_the_documented_example),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
