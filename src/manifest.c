/* manifest.c - parse a folder manifest that came from another peer. */
#include "floodshare/manifest.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "floodshare/hash.h"
#include "floodshare/name.h"

static fs_status bad(const char **why, const char *sentence)
{
    *why = sentence;
    return FS_EPROTO;
}

/* Parses "SIZE MD5 PATH" after "F ". */
static fs_status parse_file(char *s, struct manifest_entry *e, const char **why)
{
    char *end;

    if (*s < '0' || *s > '9')
        return bad(why, "manifest file line has no size");
    errno = 0;
    e->size = strtoull(s, &end, 10);
    /* ERANGE: strtoull() saturates, and the entry would not be its line. */
    if (*end != ' ' || (s[0] == '0' && end - s > 1) || errno == ERANGE)
        return bad(why, "manifest file line has a bad size");
    s = end + 1;
    if (strlen(s) < MSG_MD5_LEN + 2 || s[MSG_MD5_LEN] != ' ')
        return bad(why, "manifest file line has no MD5");
    memcpy(e->md5, s, MSG_MD5_LEN);
    e->md5[MSG_MD5_LEN] = '\0';
    if (!hash_hex_valid(e->md5))
        return bad(why, "manifest file line has a bad MD5");
    e->kind = MSG_KIND_FILE;
    e->path = s + MSG_MD5_LEN + 1;
    return FS_OK;
}

/* The parent of path must be the folder itself or a "D" entry among the
 * (sorted) entries before it. */
static int parent_ok(const struct manifest *m, const char *path)
{
    const char *slash = strrchr(path, '/');
    size_t plen, lo = 0, hi = m->n;

    if (!slash)
        return 1;
    plen = (size_t)(slash - path);
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strncmp(m->v[mid].path, path, plen);
        if (c == 0 && m->v[mid].path[plen] != '\0')
            c = 1; /* longer than the parent: sorts after it */
        if (c < 0)
            lo = mid + 1;
        else if (c > 0)
            hi = mid;
        else
            return m->v[mid].kind == MSG_KIND_FOLDER;
    }
    return 0;
}

static fs_status parse_line(struct manifest *m, char *line, const char **why)
{
    struct manifest_entry e;
    fs_status st = FS_OK;

    memset(&e, 0, sizeof e);
    if (line[0] == 'F' && line[1] == ' ')
        st = parse_file(line + 2, &e, why);
    else if (line[0] == 'D' && line[1] == ' ') {
        e.kind = MSG_KIND_FOLDER;
        e.path = line + 2;
    } else
        return bad(why, "manifest line is neither F nor D");
    if (st)
        return st;
    if (!path_valid(e.path, strlen(e.path)))
        return bad(why, "manifest path is not a valid relative path");
    if (m->n > 0 && strcmp(m->v[m->n - 1].path, e.path) >= 0)
        return bad(why, "manifest is not sorted, or lists a path twice");
    if (!parent_ok(m, e.path))
        return bad(why, "manifest path is inside something that is not a listed folder");
    if (e.kind == MSG_KIND_FILE) {
        if (e.size > UINT64_MAX - m->total_bytes)
            return bad(why, "manifest sizes overflow");
        m->total_bytes += e.size;
        m->files++;
    }
    m->v[m->n++] = e;
    return FS_OK;
}

fs_status manifest_parse(const char *text, size_t len, struct manifest *out, const char **why)
{
    size_t lines = 0;
    fs_status st = FS_OK;

    memset(out, 0, sizeof *out);
    if (len > MANIFEST_MAX_BYTES) {
        *why = "manifest too large";
        return FS_ETOOBIG;
    }
    if (memchr(text, '\0', len))
        return bad(why, "manifest contains a NUL byte");
    if (len > 0 && text[len - 1] != '\n')
        return bad(why, "manifest does not end with a newline");
    for (size_t i = 0; i < len; i++)
        lines += text[i] == '\n';
    if (lines > MANIFEST_MAX_ENTRIES) {
        *why = "manifest has too many entries";
        return FS_ETOOBIG;
    }
    out->text = malloc(len + 1);
    out->v = calloc(lines ? lines : 1, sizeof *out->v);
    if (!out->text || !out->v) {
        manifest_free(out);
        return FS_ENOMEM;
    }
    memcpy(out->text, text, len);
    out->text[len] = '\0';
    for (char *line = out->text; *line && st == FS_OK;) {
        char *nl = strchr(line, '\n');
        *nl = '\0';
        st = parse_line(out, line, why);
        line = nl + 1;
    }
    if (st)
        manifest_free(out);
    return st;
}

void manifest_free(struct manifest *m)
{
    free(m->v);
    free(m->text);
    memset(m, 0, sizeof *m);
}
