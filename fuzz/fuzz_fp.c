/* fuzz_fp.c - fp_parse() and fp_parse_list() over a [security] trusted
 * value (or one fingerprint), as cfg_load() hands them the INI's bytes.
 *
 * Whoever writes a peer's INI (or a topology tool) writes this list; a
 * key that is trusted by mistake lets a stranger in. An accepted
 * fingerprint formats back to exactly the bytes it came from (one
 * spelling per key), a list holds no fingerprint twice and at most its
 * capacity, and a refusal says why and points inside the input. */
#include <stdint.h>
#include <string.h>

#include "floodshare/fp.h"

#include "check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    unsigned char one[FP_LEN], list[FP_MAX_TRUSTED][FP_LEN];
    char text[FP_STR_MAX];
    const char *why = NULL, *bad = NULL;
    size_t count = 99, bad_len = 0;

    if (fp_parse(s, size, one, &why) == FS_OK) {
        CHECK(why == NULL);
        CHECK(size == FP_STR_MAX - 1);
        CHECK(memcmp(fp_format(one, text), s, size) == 0);
    } else {
        CHECK(why != NULL);
    }
    fs_status st = fp_parse_list(s, size, list, FP_MAX_TRUSTED, &count, &why, &bad, &bad_len);
    CHECK(count <= FP_MAX_TRUSTED);
    if (st == FS_OK) {
        for (size_t i = 0; i < count; i++) {
            unsigned char back[FP_LEN];
            const char *w2;
            CHECK(fp_parse(fp_format(list[i], text), FP_STR_MAX - 1, back, &w2) == FS_OK);
            CHECK(memcmp(back, list[i], FP_LEN) == 0);
            for (size_t j = 0; j < i; j++)
                CHECK(memcmp(list[i], list[j], FP_LEN) != 0);
        }
    } else {
        CHECK(st == FS_EINVAL && why != NULL);
        CHECK(bad >= s && bad_len <= size && (size_t)(bad - s) <= size - bad_len);
    }
    return 0;
}
