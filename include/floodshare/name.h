/* name.h - what counts as a safe item name and share-relative path.
 *
 * One definition used by the wire parser, the share index, archive
 * extraction and the CLI, so that a name one of them accepts can never be
 * refused (or worse, accepted) differently by another. */
#ifndef FLOODSHARE_NAME_H
#define FLOODSHARE_NAME_H

#include <stddef.h>

#define NAME_MAX_LEN 255  /* bytes of one name */
#define PATH_MAX_LEN 1023 /* bytes of a relative path */

/* A valid item name: 1..NAME_MAX_LEN bytes of valid UTF-8 (no overlong
 * forms, no surrogates), no control characters (< 0x20, 0x7f, and the
 * C1 controls U+0080..U+009F), no '/' or '\\',
 * not "." or "..". s[0..len) need not be NUL-terminated and must not hold a
 * NUL. */
int name_valid(const char *s, size_t len);

/* A valid share-relative path: 1..PATH_MAX_LEN bytes of name_valid()
 * components joined by single '/', none leading or trailing. */
int path_valid(const char *s, size_t len);

#endif
