/* hash.c - streaming MD5 over OpenSSL's EVP interface. */
#include "floodshare/hash.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#define HASH_CHUNK (256 * 1024) /* bytes per read(2); heap, not stack: workers have small stacks */

fs_status hash_init(struct hash_md5 *h)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();

    h->ctx = NULL;
    if (!ctx)
        return FS_ENOMEM;
    /* Fails only if no provider offers MD5 (a FIPS-only configuration). */
    if (EVP_DigestInit_ex(ctx, EVP_md5(), NULL) != 1) {
        EVP_MD_CTX_free(ctx);
        return FS_EIO;
    }
    h->ctx = ctx;
    return FS_OK;
}

void hash_update(struct hash_md5 *h, const void *data, size_t len)
{
    if (!h->ctx || len == 0)
        return;
    /* update has no status to return; dropping the context makes the
     * failure surface at hash_final() instead of yielding a wrong digest. */
    if (EVP_DigestUpdate(h->ctx, data, len) != 1)
        hash_abort(h);
}

fs_status hash_final(struct hash_md5 *h, char hex[HASH_HEX_LEN + 1])
{
    static const char digits[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    fs_status st = FS_EIO;

    hex[0] = '\0';
    if (!h->ctx)
        goto out;
    if (EVP_DigestFinal_ex(h->ctx, md, &mdlen) != 1 || mdlen * 2 != HASH_HEX_LEN)
        goto out;
    for (unsigned i = 0; i < mdlen; i++) {
        hex[2 * i] = digits[md[i] >> 4];
        hex[2 * i + 1] = digits[md[i] & 15];
    }
    hex[HASH_HEX_LEN] = '\0';
    st = FS_OK;
out:
    hash_abort(h);
    return st;
}

void hash_abort(struct hash_md5 *h)
{
    EVP_MD_CTX_free(h->ctx);
    h->ctx = NULL;
}

fs_status hash_md5_buf(const void *data, size_t len, char hex[HASH_HEX_LEN + 1])
{
    struct hash_md5 h;
    fs_status st;

    hex[0] = '\0';
    st = hash_init(&h);
    if (st)
        return st;
    hash_update(&h, data, len);
    return hash_final(&h, hex);
}

fs_status hash_md5_fd(int fd, char hex[HASH_HEX_LEN + 1], uint64_t *size)
{
    struct hash_md5 h = {NULL};
    unsigned char *buf = NULL;
    uint64_t total = 0;
    fs_status st;

    hex[0] = '\0';
    if (size)
        *size = 0;
    st = hash_init(&h);
    if (st)
        goto out;
    st = FS_ENOMEM;
    buf = malloc(HASH_CHUNK);
    if (!buf)
        goto out;
    /* Advice only: its failure (e.g. on a pipe) changes nothing. */
    (void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    st = FS_EIO;
    for (;;) {
        ssize_t n = read(fd, buf, HASH_CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            goto out;
        if (n == 0)
            break;
        hash_update(&h, buf, (size_t)n);
        total += (uint64_t)n;
    }
    st = hash_final(&h, hex);
    if (!st && size)
        *size = total;
out:
    hash_abort(&h);
    free(buf);
    return st;
}

fs_status hash_md5_file(const char *path, char hex[HASH_HEX_LEN + 1], uint64_t *size)
{
    struct stat sb;
    fs_status st = FS_EIO;
    int fd;

    hex[0] = '\0';
    if (size)
        *size = 0;
    /* O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer. */
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return FS_EIO;
    if (fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode))
        st = hash_md5_fd(fd, hex, size);
    close(fd);
    return st;
}

int hash_hex_valid(const char *s)
{
    if (!s)
        return 0;
    for (size_t i = 0; i < HASH_HEX_LEN; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return 0;
    }
    return s[HASH_HEX_LEN] == '\0';
}
