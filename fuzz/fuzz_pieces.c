/* fuzz_pieces.c - pieces_file_parse() over a piece list file, and
 * pieces_check_list() over a HASHLIST body.
 *
 * A list file sits in a share's state folder (the holder's sidecars, the
 * requester's copy beside a partial download), and a HASHLIST body comes
 * from any holder; an accepted list decides which received pieces are
 * kept. Checks: an accepted file has a valid piece size, exactly
 * pieces_count(size, piece) hashes, and a root that its list hashes to
 * (recomputed here with pieces_root()); each 32-byte slice of the input,
 * taken as a HASHLIST body for the same root, is accepted only when it is
 * that very list. A refusal has a reason and leaves no list. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "floodshare/pieces.h"

#include "check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct pieces_file pf;
    const char *why = NULL;
    char root[PIECES_ROOT_HEX + 1];
    fs_status st = pieces_file_parse(data, size, &pf, &why);

    if (st != FS_OK) {
        CHECK(st == FS_EPROTO || st == FS_ETOOBIG);
        CHECK(why != NULL && why[0] != '\0');
        CHECK(pf.list == NULL);
        return 0;
    }
    CHECK(why == NULL);
    CHECK(pieces_size_valid(pf.piece));
    CHECK(pf.n == pieces_count(pf.size, pf.piece));
    CHECK(pf.list >= data && pf.list + pf.n * PIECES_HASH_LEN == data + size);
    CHECK(pieces_root_valid(pf.root));
    CHECK(pieces_root(pf.size, pf.piece, pf.list, pf.n, root) == FS_OK);
    CHECK(strcmp(root, pf.root) == 0);
    /* The same list as a HASHLIST body is accepted; one hash short is not. */
    CHECK(pieces_check_list(pf.size, pf.piece, pf.list, (size_t)(pf.n * PIECES_HASH_LEN),
                            pf.root, &why) == FS_OK);
    if (pf.n > 0)
        CHECK(pieces_check_list(pf.size, pf.piece, pf.list,
                                (size_t)((pf.n - 1) * PIECES_HASH_LEN), pf.root, &why) != FS_OK);
    return 0;
}
