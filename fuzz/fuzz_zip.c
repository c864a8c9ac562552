/* fuzz_zip.c - zipio_unpack() over an ITEM body, as the requester extracts it.
 *
 * Each input is written to a file in a private temporary folder and
 * extracted into a fresh, empty "dest" folder beside it, with the limits
 * the requester uses (zipio_default_limits with max_total_bytes set to the
 * FOUND's size; 1 MiB here, to keep runs fast). Whatever the archive holds:
 *   - nothing is created outside dest (the private folder holds only the
 *     archive and dest afterwards);
 *   - on success dest holds exactly one name, the top-level name returned,
 *     which is name_valid(); below it only folders and regular files (no
 *     link, fifo or device), no path longer than PATH_MAX_LEN, and no more
 *     bytes than the limit;
 *   - on failure dest is empty again and *why says what was wrong.
 * dest is removed after each run by this file's own walk, not by zipio. */
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "floodshare/name.h"
#include "floodshare/zipio.h"

#include "check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define LIMIT_BYTES (1u << 20)

static char dir[PATH_MAX], zip[PATH_MAX + 16], dest[PATH_MAX + 16];

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(path);
}

static void rm_tree(const char *path)
{
    nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void cleanup(void)
{
    rm_tree(dir);
}

static void setup(void)
{
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";

    snprintf(dir, sizeof dir, "%s/fsfuzz-zip-XXXXXX", base);
    CHECK(mkdtemp(dir) != NULL);
    snprintf(zip, sizeof zip, "%s/in.zip", dir);
    snprintf(dest, sizeof dest, "%s/dest", dir);
    atexit(cleanup);
}

/* Names in folder path (not "." or ".."), up to max of them into names. */
static size_t list(const char *path, char names[][NAME_MAX + 1], size_t max)
{
    DIR *d = opendir(path);
    struct dirent *de;
    size_t n = 0;

    CHECK(d != NULL);
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        if (n < max)
            snprintf(names[n], NAME_MAX + 1, "%s", de->d_name);
        n++;
    }
    closedir(d);
    return n;
}

static uint64_t total_bytes;
static size_t dest_len;

static int check_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    CHECK(flag == FTW_F || flag == FTW_D);
    CHECK(S_ISREG(sb->st_mode) || S_ISDIR(sb->st_mode));
    /* Relative to dest: "top" or "top/...". */
    if (ftw->level > 0)
        CHECK(strlen(path) - dest_len - 1 <= PATH_MAX_LEN);
    if (S_ISREG(sb->st_mode))
        total_bytes += (uint64_t)sb->st_size;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct zipio_limits lim = zipio_default_limits;
    char top[NAME_MAX_LEN + 1], names[3][NAME_MAX + 1];
    const char *why = NULL;
    int fd;

    if (!dir[0])
        setup();
    fd = open(zip, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    CHECK(fd >= 0);
    CHECK(write(fd, data, size) == (ssize_t)size);
    CHECK(close(fd) == 0);
    CHECK(mkdir(dest, 0700) == 0);

    lim.max_total_bytes = LIMIT_BYTES;
    memset(top, 'x', sizeof top);
    fs_status st = zipio_unpack(zip, dest, &lim, top, sizeof top, &why);

    /* Nothing outside dest, whatever happened. */
    CHECK(list(dir, names, 3) == 2);
    size_t n = list(dest, names, 3);
    if (st == FS_OK) {
        CHECK(memchr(top, '\0', sizeof top) != NULL);
        CHECK(name_valid(top, strlen(top)));
        CHECK(n == 1 && !strcmp(names[0], top));
        total_bytes = 0;
        dest_len = strlen(dest);
        CHECK(nftw(dest, check_one, 16, FTW_PHYS) == 0);
        CHECK(total_bytes <= LIMIT_BYTES);
    } else {
        CHECK(st == FS_EZIP || st == FS_ETOOBIG); /* a fresh dest: never EEXIST or EIO */
        CHECK(why != NULL && why[0] != '\0');
        CHECK(n == 0);
        CHECK(top[0] == '\0');
    }
    rm_tree(dest);
    return 0;
}
