/* statedir.c - a share's state folder: temporary names, and the sweep of
 * what interrupted transfers left behind (statedir.h). */
#include "floodshare/statedir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "floodshare/log.h"
#include "floodshare/partial.h"
#include "floodshare/share.h"
#include "floodshare/zipio.h"

void statedir_tmp_name(char *out, size_t cap, const char *share_dir, const char *prefix,
                       const char *suffix)
{
    unsigned char r[6];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r)
        memset(r, 0, sizeof r);
    snprintf(out, cap, "%s/%s/%s-%02x%02x%02x%02x%02x%02x%s", share_dir, SHARE_STATE_DIR, prefix,
             r[0], r[1], r[2], r[3], r[4], r[5], suffix);
}

void statedir_path(char *out, size_t cap, const char *share_dir)
{
    snprintf(out, cap, "%s/%s", share_dir, SHARE_STATE_DIR);
}

fs_status statedir_prepare(const char *share_dir)
{
    char dir[PATH_MAX + 32], path[PATH_MAX + 300];

    snprintf(dir, sizeof dir, "%s/%s", share_dir, SHARE_STATE_DIR);
    if (mkdir(dir, 0700) == 0) {
        /* its name must be on disk before the partial downloads inside it */
        int sfd = open(share_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (sfd >= 0) {
            fsync(sfd);
            close(sfd);
        }
    } else if (errno != EEXIST) {
        return FS_EIO;
    }
    DIR *d = opendir(dir);
    if (!d)
        return FS_EIO;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        /* A staging folder whose item took its name before the kill. */
        if (!strncmp(e->d_name, "d-", 2)) {
            if (rmdir(path) == 0)
                log_msg(L_INFO, "removed the empty staging folder %s/%s", SHARE_STATE_DIR,
                        e->d_name);
            continue;
        }
        if (strncmp(e->d_name, "out-", 4) && strncmp(e->d_name, "in-", 3) &&
            strncmp(e->d_name, "x-", 2))
            continue;
        zipio_remove_tree(path);
        log_msg(L_INFO, "removed leftover of an interrupted transfer: %s/%s", SHARE_STATE_DIR,
                e->d_name);
    }
    closedir(d);
    long swept = partial_sweep(dir);
    if (swept > 0)
        log_msg(L_INFO, "removed %ld orphaned partial file(s) from %s", swept, SHARE_STATE_DIR);
    return FS_OK;
}
