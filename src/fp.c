/* fp.c - "SHA256:base64" fingerprints: parse and format (fp.h). */
#include "floodshare/fp.h"

#include <string.h>

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int b64_val(char ch)
{
    const char *p = ch ? strchr(b64, ch) : NULL;
    return p ? (int)(p - b64) : -1;
}

fs_status fp_parse(const char *s, size_t n, unsigned char out[FP_LEN], const char **why)
{
    static const char prefix[] = "SHA256:";
    unsigned acc = 0;
    int bits = 0;
    size_t o = 0;

    *why = NULL;
    if (n < sizeof prefix - 1 || memcmp(s, prefix, sizeof prefix - 1) != 0) {
        *why = "a fingerprint starts with SHA256:";
        return FS_EINVAL;
    }
    s += sizeof prefix - 1;
    n -= sizeof prefix - 1;
    if (n != FP_B64_LEN) {
        *why = "a fingerprint has 43 base64 characters after SHA256: (no = padding)";
        return FS_EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        int v = b64_val(s[i]);
        if (v < 0) {
            *why = "a fingerprint is base64: A-Z a-z 0-9 + /";
            return FS_EINVAL;
        }
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    /* 43 characters carry 258 bits: the last 2 must be 0, or the same key
     * would have several spellings. */
    if (o != FP_LEN || acc != 0) {
        *why = "not a SHA-256 fingerprint (its last character is impossible)";
        return FS_EINVAL;
    }
    return FS_OK;
}

#define FP_SEPS ", \t"

fs_status fp_parse_list(const char *s, size_t n, unsigned char (*out)[FP_LEN], size_t cap,
                        size_t *count, const char **why, const char **bad, size_t *bad_len)
{
    size_t i = 0;

    *count = 0;
    *why = NULL;
    while (i < n) {
        while (i < n && strchr(FP_SEPS, s[i]) && s[i])
            i++;
        size_t start = i;
        while (i < n && !(s[i] && strchr(FP_SEPS, s[i])))
            i++;
        if (i == start)
            break;
        if (bad)
            *bad = s + start;
        if (bad_len)
            *bad_len = i - start;
        if (*count == cap) {
            *why = "too many fingerprints";
            return FS_EINVAL;
        }
        if (fp_parse(s + start, i - start, out[*count], why) != FS_OK)
            return FS_EINVAL;
        for (size_t j = 0; j < *count; j++) {
            if (memcmp(out[j], out[*count], FP_LEN) == 0) {
                *why = "this fingerprint is listed twice";
                return FS_EINVAL;
            }
        }
        ++*count;
    }
    return FS_OK;
}

char *fp_format(const unsigned char d[FP_LEN], char out[FP_STR_MAX])
{
    size_t o = 0;
    unsigned acc = 0;
    int bits = 0;

    memcpy(out, "SHA256:", 7);
    o = 7;
    for (size_t i = 0; i < FP_LEN; i++) {
        acc = (acc << 8) | d[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out[o++] = b64[(acc >> bits) & 63];
        }
        acc &= (1u << bits) - 1;
    }
    if (bits > 0)
        out[o++] = b64[(acc << (6 - bits)) & 63];
    out[o] = '\0';
    return out;
}
