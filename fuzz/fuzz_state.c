/* fuzz_state.c - partial_parse_state() over a download's .state file.
 *
 * The state file sits in the share's .floodshare/ folder, where anything
 * with write access to the share can change it, and a crash can leave it
 * torn; partial_open_at() trusts what this parser accepts to size its chunk
 * table and to decide which chunks to re-read. So an accepted state must be
 * consistent: a valid name and MD5, a chunk size the writer could have used,
 * a chunk table of exactly ceil(size / chunk) entries with the claimed
 * prefix inside it, and, written back in the documented format (partial.h),
 * it must parse to the same state. A version 2 state likewise: a valid
 * piece size and root, a piece map of exactly ceil(size / piece) bits (at
 * most PIECES_MAX_COUNT), nhave of them set, and the same state again from
 * its text written back. A refused one must leave nothing allocated and
 * nothing claimed. */
#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "floodshare/hash.h"
#include "floodshare/name.h"
#include "floodshare/partial.h"
#include "floodshare/pieces.h"

#include "check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The state text partial_save() writes for pt (partial.h documents it). */
static char *write_state(const struct partial *pt, size_t *len)
{
    char enc[3 * MSG_MAX_NAME + 1], holder[ADDR_STR_MAX];
    size_t cap = 512 + sizeof enc + (size_t)pt->have * 32 + (size_t)pt->nhave * 24;
    char *t = malloc(cap);
    size_t n;

    CHECK(t != NULL);
    CHECK(msg_pct_encode(pt->name, strlen(pt->name), enc, sizeof enc) > 0);
    if (pt->version == 2)
        n = (size_t)snprintf(t, cap,
                             "floodshare-partial 2\nname %s\nsize %" PRIu64 "\nmd5 %s\npiece %" PRIu64
                             "\nroot %s\n",
                             enc, pt->size, pt->md5, pt->piece, pt->root);
    else
        n = (size_t)snprintf(t, cap,
                             "floodshare-partial 1\nname %s\nsize %" PRIu64 "\nmd5 %s\nchunk %" PRIu64
                             "\n",
                             enc, pt->size, pt->md5, pt->chunk);
    if (pt->holder.port)
        n += (size_t)snprintf(t + n, cap - n, "holder %s\n", addr_format(&pt->holder, holder));
    if (pt->has_mode)
        n += (size_t)snprintf(t + n, cap - n, "mode %o\n", (unsigned)pt->mode);
    for (uint64_t i = 0; i < pt->have; i++)
        n += (size_t)snprintf(t + n, cap - n, "c %" PRIu64 " %08" PRIx32 "\n", i, pt->crc[i]);
    /* from the last piece down: the order of "p" lines must not matter */
    for (uint64_t i = pt->npieces; i-- > 0;)
        if (partial_has_piece(pt, i))
            n += (size_t)snprintf(t + n, cap - n, "p %" PRIu64 "\n", i);
    CHECK(n < cap);
    *len = n;
    return t;
}

static void check_state2(const struct partial *pt)
{
    uint64_t set = 0;

    CHECK(name_valid(pt->name, strlen(pt->name)));
    CHECK(hash_hex_valid(pt->md5));
    CHECK(pieces_size_valid(pt->piece) && pieces_root_valid(pt->root));
    CHECK(pt->npieces == pieces_count(pt->size, pt->piece));
    CHECK(pt->npieces <= PIECES_MAX_COUNT);
    CHECK(pt->chunk == pt->piece && pt->nchunks == pt->npieces);
    CHECK(pt->bits != NULL && pt->crc == NULL && pt->have == 0);
    for (uint64_t i = 0; i < pt->npieces; i++)
        set += (uint64_t)partial_has_piece(pt, i);
    CHECK(set == pt->nhave);
    if (pt->npieces % 8) /* no bit set past the last piece */
        CHECK((pt->bits[pt->npieces / 8] >> (pt->npieces % 8)) == 0);
}

static void check_state(const struct partial *pt)
{
    if (pt->version == 2) {
        check_state2(pt);
        return;
    }
    CHECK(pt->version == 1 && pt->bits == NULL && pt->nhave == 0);
    CHECK(name_valid(pt->name, strlen(pt->name)));
    CHECK(hash_hex_valid(pt->md5));
    CHECK(partial_chunk_valid(pt->chunk)); /* none in the text: PARTIAL_CHUNK */
    CHECK(pt->nchunks == pt->size / pt->chunk + (pt->size % pt->chunk != 0));
    CHECK(pt->have <= pt->nchunks);
    CHECK(pt->crc != NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct partial pt, back;
    char *text = malloc(size ? size : 1);

    if (!text)
        return 0;
    memcpy(text, data, size);
    memset(&pt, 0, sizeof pt);
    fs_status st = partial_parse_state(text, size, &pt);
    if (st == FS_OK) {
        check_state(&pt);
        size_t n;
        char *again = write_state(&pt, &n);
        memset(&back, 0, sizeof back);
        CHECK(partial_parse_state(again, n, &back) == FS_OK);
        CHECK(!strcmp(pt.name, back.name) && !strcmp(pt.md5, back.md5));
        CHECK(pt.size == back.size && pt.chunk == back.chunk && pt.nchunks == back.nchunks);
        CHECK(addr_equal(&pt.holder, &back.holder) && pt.have == back.have);
        CHECK(pt.has_mode == back.has_mode && pt.mode == back.mode && pt.mode <= 07777);
        CHECK(pt.have == 0 || !memcmp(pt.crc, back.crc, (size_t)pt.have * sizeof *pt.crc));
        CHECK(pt.version == back.version && pt.piece == back.piece);
        CHECK(pt.npieces == back.npieces && pt.nhave == back.nhave);
        CHECK(!strcmp(pt.root, back.root));
        CHECK(pt.version != 2 || !memcmp(pt.bits, back.bits, (size_t)(pt.npieces + 7) / 8));
        free(back.crc);
        free(back.bits);
        free(again);
        free(pt.crc);
        free(pt.bits);
    } else {
        CHECK(st == FS_EPROTO);
        CHECK(pt.crc == NULL && pt.have == 0);
        CHECK(pt.bits == NULL && pt.nhave == 0);
    }
    free(text);
    return 0;
}
