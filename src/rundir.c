/* rundir.c - the run folder's names and how to find it (rundir.h). */
#include "floodshare/rundir.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *rundir_pick(const char *opt)
{
    const char *env = getenv(RUNDIR_ENV);

    if (opt)
        return opt;
    if (env && *env)
        return env;
    return RUNDIR_DEFAULT;
}

static fs_status too_long(const char *dir, char *out, size_t cap, char *err, size_t errcap)
{
    if (cap)
        out[0] = '\0';
    if (err && errcap)
        snprintf(err, errcap, "run directory path too long: %s", dir);
    return FS_ETOOBIG;
}

fs_status rundir_for_serve(const char *ini, const char *opt, char *out, size_t cap, char *err,
                           size_t errcap)
{
    const char *env = getenv(RUNDIR_ENV);
    const char *dir = ".";
    size_t len;

    if (opt && *opt) {
        dir = opt;
        len = strlen(opt);
    } else if (env && *env) {
        dir = env;
        len = strlen(env);
    } else {
        const char *slash = strrchr(ini, '/');
        if (slash == ini) {
            dir = "/";
            len = 1;
        } else if (slash) {
            dir = ini; /* its first len bytes */
            len = (size_t)(slash - ini);
        } else {
            len = 1;
        }
    }
    if (len >= cap) {
        /* The message names the whole folder, not the part that fit. */
        char *whole = strndup(dir, len);
        fs_status st = too_long(whole ? whole : dir, out, cap, err, errcap);
        free(whole);
        return st;
    }
    memcpy(out, dir, len);
    out[len] = '\0';
    return FS_OK;
}

fs_status rundir_sock_path(const char *dir, unsigned id, char *out, size_t cap, char *err,
                           size_t errcap)
{
    int n = snprintf(out, cap, "%s/peer-%u.sock", dir, id);

    if (n < 0 || (size_t)n >= cap)
        return too_long(dir, out, cap, err, errcap);
    return FS_OK;
}

fs_status rundir_ini_path(const char *dir, unsigned id, char *out, size_t cap, char *err,
                          size_t errcap)
{
    /* scripts/topology writes peer-N.ini; configs/ ships peerN.ini. */
    int n = snprintf(out, cap, "%s/peer-%u.ini", dir, id);

    if (n < 0 || (size_t)n >= cap)
        return too_long(dir, out, cap, err, errcap);
    if (access(out, F_OK) == 0)
        return FS_OK;
    n = snprintf(out, cap, "%s/peer%u.ini", dir, id);
    if (n < 0 || (size_t)n >= cap) /* cannot happen: one byte shorter */
        return too_long(dir, out, cap, err, errcap);
    return FS_OK;
}

/* Parses a peer id at s, in plain decimal; returns where it ends, or NULL. */
static const char *parse_id(const char *s, unsigned *id)
{
    unsigned v = 0;

    if (*s < '1' || *s > '9')
        return NULL;
    for (; *s >= '0' && *s <= '9'; s++) {
        v = v * 10 + (unsigned)(*s - '0');
        if (v > RUNDIR_ID_MAX)
            return NULL;
    }
    *id = v;
    return s;
}

int rundir_parse_name(const char *name, unsigned *id)
{
    unsigned v;
    const char *end;

    if (strncmp(name, "peer-", 5) == 0) {
        end = parse_id(name + 5, &v);
        if (!end || (strcmp(end, ".sock") != 0 && strcmp(end, ".ini") != 0))
            return 0;
    } else if (strncmp(name, "peer", 4) == 0) {
        end = parse_id(name + 4, &v);
        if (!end || strcmp(end, ".ini") != 0)
            return 0;
    } else {
        return 0;
    }
    *id = v;
    return 1;
}

long rundir_ids(const char *dir, unsigned *ids, size_t cap)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    size_t n = 0;

    if (!d)
        return -1;
    /* ids[0..n) stays sorted: binary search, then insert; when full, an id
     * below the largest pushes the largest out. */
    while ((e = readdir(d)) != NULL) {
        unsigned id;
        if (!rundir_parse_name(e->d_name, &id))
            continue;
        size_t lo = 0, hi = n;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (ids[mid] < id)
                lo = mid + 1;
            else
                hi = mid;
        }
        if ((lo < n && ids[lo] == id) || lo >= cap)
            continue;
        if (n < cap)
            n++;
        memmove(ids + lo + 1, ids + lo, (n - 1 - lo) * sizeof *ids);
        ids[lo] = id;
    }
    closedir(d);
    return (long)n;
}
