/* fp.h - public key fingerprints, as OpenSSH and `floodshare keygen` print
 * them: "SHA256:" and the unpadded base64 of the SHA-256 of a key's DER
 * SubjectPublicKeyInfo, e.g.
 *   SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU
 * Pure functions over (bytes, length): the `trusted` list of an INI is
 * outside input, so these parsers are fuzzed (fuzz/fuzz_fp.c). */
#ifndef FLOODSHARE_FP_H
#define FLOODSHARE_FP_H

#include <stddef.h>

#include "floodshare/status.h"

#define FP_LEN 32                /* SHA-256 */
#define FP_B64_LEN 43            /* unpadded base64 of 32 bytes */
#define FP_STR_MAX (7 + FP_B64_LEN + 1) /* "SHA256:" + base64 + NUL */
#define FP_MAX_TRUSTED 64        /* fingerprints in one `trusted` list */

/* Parses exactly one fingerprint from s[0..n). FS_OK, or FS_EINVAL with
 * *why a constant sentence. */
fs_status fp_parse(const char *s, size_t n, unsigned char out[FP_LEN], const char **why);

/* Parses a list separated by commas, spaces or tabs into out (cap
 * entries); *count gets how many. An empty list is valid (count 0); a
 * fingerprint listed twice, more than cap, or one that does not parse is
 * FS_EINVAL with *why set. *bad and *bad_len (either may be NULL) point at
 * the offending item, for the error message. */
fs_status fp_parse_list(const char *s, size_t n, unsigned char (*out)[FP_LEN], size_t cap,
                        size_t *count, const char **why, const char **bad, size_t *bad_len);

/* Formats d as "SHA256:..." into out (FP_STR_MAX bytes). Returns out. */
char *fp_format(const unsigned char d[FP_LEN], char out[FP_STR_MAX]);

#endif
