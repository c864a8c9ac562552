/* hash.h - streaming MD5 through OpenSSL's EVP API (MD5() is deprecated). */
#ifndef FLOODSHARE_HASH_H
#define FLOODSHARE_HASH_H

#include <stddef.h>
#include <stdint.h>

#include "floodshare/status.h"

#define HASH_HEX_LEN 32 /* an MD5 as lower-case hex, without NUL */

/* A running MD5. Initialise with hash_init(), feed with hash_update(), end
 * with hash_final() (which frees it) or hash_abort(). */
struct hash_md5 {
    void *ctx; /* EVP_MD_CTX *, owned */
};

fs_status hash_init(struct hash_md5 *h);
void hash_update(struct hash_md5 *h, const void *data, size_t len);
/* Writes the digest as 33 bytes of lower-case hex + NUL and frees h. */
fs_status hash_final(struct hash_md5 *h, char hex[HASH_HEX_LEN + 1]);
void hash_abort(struct hash_md5 *h);

/* MD5 of a whole buffer. */
fs_status hash_md5_buf(const void *data, size_t len, char hex[HASH_HEX_LEN + 1]);

/* MD5 of a regular file, read in fixed chunks (never whole). *size (if not
 * NULL) receives the number of bytes hashed. FS_EIO when it cannot be read. */
fs_status hash_md5_file(const char *path, char hex[HASH_HEX_LEN + 1], uint64_t *size);

/* MD5 of what fd yields from its current offset to end of file, read in
 * fixed chunks; fd stays open and the caller's. For callers that opened the
 * file themselves (openat, O_NOFOLLOW) and must hash exactly what they opened
 * rather than whatever a path names by now. *size as for hash_md5_file(). */
fs_status hash_md5_fd(int fd, char hex[HASH_HEX_LEN + 1], uint64_t *size);

/* 1 if s is exactly 32 lower-case hex digits. */
int hash_hex_valid(const char *s);

#endif
