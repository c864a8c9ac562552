/* fuzz_cfg.c - cfg_load() over an INI file: iniparser's reading and every
 * check floodshare adds on top of it.
 *
 * iniparser 4.1 only loads from a path, so each input is written to
 * peer.ini in a private temporary folder that also holds a "share" folder
 * (the seeds' share_dir). An accepted file must give a configuration the
 * peer can run with: every number in its documented range, a share_dir
 * that is an absolute directory, neighbours that parse, are not this peer
 * and are not listed twice. A refused one must say so in one line that
 * names the file, with no control byte a hostile file could smuggle into a
 * terminal or a log. */
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "floodshare/cfg.h"
#include "floodshare/log.h"
#include "floodshare/rate.h"

#include "check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[PATH_MAX], ini[PATH_MAX + 16];

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(path);
}

static void cleanup(void)
{
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Once per process: the private folder, removed again at exit. */
static void setup(void)
{
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    char share[PATH_MAX + 16];

    snprintf(dir, sizeof dir, "%s/fsfuzz-cfg-XXXXXX", base);
    CHECK(mkdtemp(dir) != NULL);
    snprintf(share, sizeof share, "%s/share", dir);
    CHECK(mkdir(share, 0700) == 0);
    snprintf(ini, sizeof ini, "%s/peer.ini", dir);
    atexit(cleanup);
}

static void write_ini(const uint8_t *data, size_t size)
{
    int fd = open(ini, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

    CHECK(fd >= 0);
    CHECK(write(fd, data, size) == (ssize_t)size);
    CHECK(close(fd) == 0);
}

static void check_range(unsigned v, unsigned lo, unsigned hi)
{
    CHECK(v >= lo && v <= hi);
}

static void check_cfg(const struct cfg *c)
{
    struct stat sb;
    char again[ADDR_HOST_MAX + 1], text[ADDR_STR_MAX];
    struct fs_addr a, self;

    check_range(c->id, 1, 65535);
    CHECK(c->port >= 1);
    CHECK(c->host[0] != '\0');
    CHECK(addr_parse_host(c->host, strlen(c->host), again, NULL) == FS_OK);
    CHECK(strcmp(again, c->host) == 0);
    /* advertise: always a dialable address; host:port itself when the key is absent */
    CHECK(!addr_is_wildcard(c->advertise.host) && c->advertise.port >= 1);
    addr_format(&c->advertise, text);
    CHECK(addr_parse(text, strlen(text), &a, NULL) == FS_OK && addr_equal(&a, &c->advertise));
    CHECK(c->advertise_set || (strcmp(c->advertise.host, c->host) == 0 &&
                               c->advertise.port == c->port));
    CHECK(c->share_dir[0] == '/' && stat(c->share_dir, &sb) == 0 && S_ISDIR(sb.st_mode));
    check_range(c->max_ttl, 1, 15);
    check_range(c->ttl, 1, c->max_ttl);
    CHECK(c->log_level >= L_ERROR && c->log_level <= L_DEBUG);
    check_range(c->workers, 1, 256);
    check_range(c->max_queue, 1, 4096);
    check_range(c->io_timeout_ms, 100, 600000);
    check_range(c->connect_timeout_ms, 100, 60000);
    check_range(c->hit_window_ms, 10, 60000);
    check_range(c->query_cache_size, 16, 1048576);
    check_range(c->query_cache_ttl_ms, 1000, 3600000);
    /* rates (rate_parse()): 0 for no limit, else RATE_MIN..RATE_MAX */
    CHECK(c->upload_rate == 0 || (c->upload_rate >= RATE_MIN && c->upload_rate <= RATE_MAX));
    CHECK(c->download_rate == 0 ||
          (c->download_rate >= RATE_MIN && c->download_rate <= RATE_MAX));
    CHECK(c->n_neighbours <= CFG_MAX_NEIGHBOURS);
    memcpy(self.host, c->host, sizeof self.host);
    self.port = c->port;
    for (size_t i = 0; i < c->n_neighbours; i++) {
        const struct fs_addr *n = &c->neighbours[i];
        CHECK(n->port >= 1 && n->host[0] != '\0');
        CHECK(!addr_equal(n, &self) && !addr_equal(n, &c->advertise));
        for (size_t j = 0; j < i; j++)
            CHECK(!addr_equal(n, &c->neighbours[j]));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct cfg c;
    char err[CFG_ERR_MAX];

    if (!dir[0])
        setup();
    write_ini(data, size);
    memset(err, 'x', sizeof err);
    fs_status st = cfg_load(ini, &c, err, sizeof err);
    CHECK(memchr(err, '\0', sizeof err) != NULL);
    if (st == FS_OK) {
        CHECK(err[0] == '\0');
        check_cfg(&c);
    } else {
        CHECK(st == FS_ECONFIG); /* the file is there and readable: never FS_EIO */
        size_t n = strlen(ini);
        CHECK(strncmp(err, ini, n) == 0 && err[n] == ':');
        for (const char *p = err; *p; p++)
            CHECK((unsigned char)*p >= 0x20 && *p != 0x7f);
    }
    return 0;
}
