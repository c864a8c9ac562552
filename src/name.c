/* name.c - validation of names and relative paths that came from outside. */
#include "floodshare/name.h"

#include <string.h>

/* Length of the UTF-8 sequence at s[0..len), or 0 if it is not valid
 * (truncated, overlong, a surrogate, or above U+10FFFF). */
static size_t utf8_seq(const unsigned char *s, size_t len)
{
    unsigned c = s[0];
    size_t n;
    unsigned cp;

    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (len < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    if (cp >= 0xd800 && cp <= 0xdfff)
        return 0;
    return n;
}

int name_valid(const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;

    if (len == 0 || len > NAME_MAX_LEN)
        return 0;
    if ((len == 1 && s[0] == '.') || (len == 2 && s[0] == '.' && s[1] == '.'))
        return 0;
    for (size_t i = 0; i < len;) {
        if (u[i] < 0x20 || u[i] == 0x7f || u[i] == '/' || u[i] == '\\')
            return 0;
        size_t n = utf8_seq(u + i, len - i);
        if (n == 0)
            return 0;
        /* C1 controls (U+0080..U+009F): some terminals take U+009B as an
         * escape sequence's start, and names end up in ls and logs. */
        if (n == 2 && u[i] == 0xc2 && u[i + 1] < 0xa0)
            return 0;
        i += n;
    }
    return 1;
}

int path_valid(const char *s, size_t len)
{
    size_t start = 0;

    if (len == 0 || len > PATH_MAX_LEN)
        return 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || s[i] == '/') {
            if (!name_valid(s + start, i - start))
                return 0;
            start = i + 1;
        }
    }
    return 1;
}
