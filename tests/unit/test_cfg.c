/* test_cfg.c - loading, validating and editing a peer's INI file. */
#include <dirent.h>
#include <ftw.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "floodshare/cfg.h"
#include "floodshare/log.h"

struct fixture {
    char dir[64];       /* a fresh folder under /tmp */
    char ini[128];      /* dir/peer.ini */
};

/* The keys of a generated INI; NULL leaves a key out. */
struct spec {
    const char *id, *host, *port, *share_dir, *ttl, *peers;
    const char *peer_extra; /* more lines for [peer] */
    const char *extra;      /* more sections at the end */
};

static struct spec valid_spec(void)
{
    return (struct spec){.id = "3", .host = "127.0.0.1", .port = "10813",
                         .share_dir = "share", .ttl = "3", .peers = "127.0.0.1:10812"};
}

/* ---------- files ---------- */

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
    assert_int_equal(fclose(f), 0);
}

/* The whole file, NUL-terminated; the caller frees it. */
static char *read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    char *buf = calloc(1, 65536);
    size_t n;

    assert_non_null(f);
    assert_non_null(buf);
    n = fread(buf, 1, 65535, f);
    assert_true(n < 65535);
    fclose(f);
    return buf;
}

static void assert_file_is(const char *path, const char *want)
{
    char *text = read_file(path);

    assert_string_equal(text, want);
    free(text);
}

static void path_in(const struct fixture *f, const char *name, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%s/%s", f->dir, name);

    assert_true(n > 0 && (size_t)n < cap);
}

static void add_line(char *buf, size_t cap, const char *key, const char *value)
{
    size_t len = strlen(buf);

    if (value)
        snprintf(buf + len, cap - len, "%s = %s\n", key, value);
}

static void write_spec(const struct fixture *f, const struct spec *s)
{
    char text[8192] = "[peer]\n";

    add_line(text, sizeof text, "id", s->id);
    add_line(text, sizeof text, "host", s->host);
    add_line(text, sizeof text, "port", s->port);
    add_line(text, sizeof text, "share_dir", s->share_dir);
    add_line(text, sizeof text, "ttl", s->ttl);
    if (s->peer_extra)
        strncat(text, s->peer_extra, sizeof text - strlen(text) - 1);
    if (s->peers) {
        strncat(text, "\n[neighbours]\n", sizeof text - strlen(text) - 1);
        add_line(text, sizeof text, "peers", s->peers);
    }
    if (s->extra)
        strncat(text, s->extra, sizeof text - strlen(text) - 1);
    write_file(f->ini, text);
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(path);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    char p[PATH_MAX];

    if (!f)
        return -1;
    snprintf(f->dir, sizeof f->dir, "/tmp/fs_test_cfg_XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->ini, sizeof f->ini, "%s/peer.ini", f->dir);
    path_in(f, "share", p, sizeof p);
    if (mkdir(p, 0755) != 0)
        return -1;
    path_in(f, "afile", p, sizeof p);
    write_file(p, "not a folder\n");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    nftw(f->dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

/* 1 if a temporary file of cfg_set() was left in the folder. */
static int temp_left(const struct fixture *f)
{
    DIR *d = opendir(f->dir);
    struct dirent *e;
    int found = 0;

    assert_non_null(d);
    while ((e = readdir(d)))
        if (strncmp(e->d_name, ".peer.ini.", 10) == 0)
            found = 1;
    closedir(d);
    return found;
}

/* ---------- assertions ---------- */

static void assert_contains(const char *hay, const char *needle)
{
    if (!strstr(hay, needle))
        fail_msg("expected \"%s\" in: %s", needle, hay);
}

static void assert_loads(const struct fixture *f, struct cfg *c)
{
    char err[CFG_ERR_MAX];
    fs_status st = cfg_load(f->ini, c, err, sizeof err);

    if (st != FS_OK)
        fail_msg("cfg_load: %s: %s", fs_status_name(st), err);
}

/* cfg_load() fails with FS_ECONFIG and one line naming the file, "[sec] key"
 * (or "[sec]" when key is NULL) and containing what. */
static void assert_cfg_error(const struct fixture *f, const char *sec, const char *key,
                             const char *what)
{
    struct cfg c;
    char err[CFG_ERR_MAX];
    char tag[128];

    assert_int_equal(cfg_load(f->ini, &c, err, sizeof err), FS_ECONFIG);
    assert_contains(err, f->ini);
    if (key)
        snprintf(tag, sizeof tag, "[%s] %s: ", sec, key);
    else
        snprintf(tag, sizeof tag, "[%s]: ", sec);
    assert_contains(err, tag);
    if (what)
        assert_contains(err, what);
    assert_null(strchr(err, '\n'));
}

static void assert_spec_error(void **state, const struct spec *s, const char *sec,
                              const char *key, const char *what)
{
    write_spec(*state, s);
    assert_cfg_error(*state, sec, key, what);
}

/* ---------- cfg_load: valid files ---------- */

static void test_cfg_loads_valid_file_with_all_keys(void **state)
{
    struct fixture *f = *state;
    struct spec s = valid_spec();
    struct cfg c;
    char share[PATH_MAX];

    s.peer_extra = "log_level = debug\n";
    s.peers = "127.0.0.1:10812, localhost:10811";
    s.extra = "\n[limits]\nworkers = 4\nmax_queue = 8\nio_timeout_ms = 500\n"
              "connect_timeout_ms = 300\nhit_window_ms = 50\nquery_cache_size = 32\n"
              "query_cache_ttl_ms = 5000\nmax_ttl = 7\nget_timeout_ms = 0\n";
    write_spec(f, &s);
    assert_loads(f, &c);
    assert_string_equal(c.path, f->ini);
    assert_int_equal(c.id, 3);
    assert_string_equal(c.host, "127.0.0.1");
    assert_int_equal(c.port, 10813);
    assert_non_null(realpath(f->dir, share));
    strncat(share, "/share", sizeof share - strlen(share) - 1);
    assert_string_equal(c.share_dir, share);
    assert_string_equal(c.share_dir_raw, "share");
    assert_int_equal(c.ttl, 3);
    assert_int_equal(c.log_level, L_DEBUG);
    assert_int_equal(c.n_neighbours, 2);
    assert_string_equal(c.neighbours[0].host, "127.0.0.1");
    assert_int_equal(c.neighbours[0].port, 10812);
    assert_string_equal(c.neighbours[1].host, "localhost");
    assert_int_equal(c.neighbours[1].port, 10811);
    assert_int_equal(c.workers, 4);
    assert_int_equal(c.max_queue, 8);
    assert_int_equal(c.io_timeout_ms, 500);
    assert_int_equal(c.connect_timeout_ms, 300);
    assert_int_equal(c.hit_window_ms, 50);
    assert_int_equal(c.query_cache_size, 32);
    assert_int_equal(c.query_cache_ttl_ms, 5000);
    assert_int_equal(c.max_ttl, 7);
    assert_int_equal(c.get_timeout_ms, 0); /* 0: no deadline */
}

static void test_cfg_applies_defaults(void **state)
{
    struct fixture *f = *state;
    struct spec s = valid_spec();
    struct cfg c;

    s.peers = NULL;
    write_spec(f, &s);
    assert_loads(f, &c);
    assert_int_equal(c.log_level, L_INFO);
    assert_int_equal(c.n_neighbours, 0);
    assert_int_equal(c.workers, 16);
    assert_int_equal(c.max_queue, 64);
    assert_int_equal(c.io_timeout_ms, 10000);
    assert_int_equal(c.connect_timeout_ms, 2000);
    assert_int_equal(c.hit_window_ms, 2000);
    assert_int_equal(c.get_timeout_ms, 120000);
    assert_int_equal(c.query_cache_size, 4096);
    assert_int_equal(c.query_cache_ttl_ms, 120000);
    assert_int_equal(c.max_ttl, 15);
    assert_int_equal(c.upload_slots, 8);
    assert_int_equal(c.upload_slots_per_addr, 2);
    assert_int_equal(c.min_upload_rate, 16384);
}

static void test_cfg_loads_upload_limits(void **state)
{
    struct fixture *f = *state;
    struct spec s = valid_spec();
    struct cfg c;

    s.extra = "\n[limits]\nupload_slots = 3\nupload_slots_per_addr = 1\nmin_upload_rate = 0\n";
    write_spec(f, &s);
    assert_loads(f, &c);
    assert_int_equal(c.upload_slots, 3);
    assert_int_equal(c.upload_slots_per_addr, 1);
    assert_int_equal(c.min_upload_rate, 0); /* 0: uploads are never cut for being slow */
}

static void test_cfg_accept_browse_defaults_to_any_and_loads_each_value(void **state)
{
    struct fixture *f = *state;
    struct spec s = valid_spec();
    struct cfg *c = malloc(sizeof *c);

    assert_non_null(c);
    write_spec(f, &s);
    assert_loads(f, c);
    assert_int_equal(c->accept_browse, CFG_ACCEPT_ANY);
    s.extra = "\n[accept]\nbrowse = neighbours\n";
    write_spec(f, &s);
    assert_loads(f, c);
    assert_int_equal(c->accept_browse, CFG_ACCEPT_NEIGHBOURS);
    s.extra = "\n[accept]\nbrowse = none\n";
    write_spec(f, &s);
    assert_loads(f, c);
    assert_int_equal(c->accept_browse, CFG_ACCEPT_NONE);
    assert_string_equal(cfg_accept_name(c->accept_browse), "none");
    free(c);
}

static void test_cfg_rejects_bad_accept_values_and_keys(void **state)
{
    struct spec s = valid_spec();

    s.extra = "\n[accept]\nbrowse = everyone\n";
    assert_spec_error(state, &s, "accept", "browse", "\"everyone\" is not any, neighbours or none");
    s.extra = "\n[accept]\nbrowze = any\n";
    assert_spec_error(state, &s, "accept", "browze", "unknown key (expected browse, send_from, quota, max_item)");
}

static void test_cfg_rejects_bad_upload_limits(void **state)
{
    struct spec s = valid_spec();

    s.extra = "\n[limits]\nupload_slots = 0\n";
    assert_spec_error(state, &s, "limits", "upload_slots", "\"0\" is out of range (1..1024)");
    s.extra = "\n[limits]\nupload_slots_per_addr = 1025\n";
    assert_spec_error(state, &s, "limits", "upload_slots_per_addr",
                      "\"1025\" is out of range (1..1024)");
    s.extra = "\n[limits]\nmin_upload_rate = 16K\n";
    assert_spec_error(state, &s, "limits", "min_upload_rate", "16K");
    s.extra = "\n[limits]\nmin_upload_rate = 2000000000\n";
    assert_spec_error(state, &s, "limits", "min_upload_rate", "out of range (0..1073741824)");
}

/* [limits] max_sources: holders one get fetches from at once, 1..8, 4 by
 * default (a holder has 8 upload slots; beyond that threads and buffers
 * grow for no gain). */
static void test_cfg_max_sources(void **state)
{
    struct fixture *f = *state;
    struct spec s = valid_spec();
    struct cfg c;

    write_spec(f, &s);
    assert_loads(f, &c);
    assert_int_equal(c.max_sources, 4);
    s.extra = "\n[limits]\nmax_sources = 1\n";
    write_spec(f, &s);
    assert_loads(f, &c);
    assert_int_equal(c.max_sources, 1);
    s.extra = "\n[limits]\nmax_sources = 8\n";
    write_spec(f, &s);
    assert_loads(f, &c);
    assert_int_equal(c.max_sources, 8);
    s.extra = "\n[limits]\nmax_sources = 0\n";
    assert_spec_error(state, &s, "limits", "max_sources", "\"0\" is out of range (1..8)");
    s.extra = "\n[limits]\nmax_sources = 9\n";
    assert_spec_error(state, &s, "limits", "max_sources", "\"9\" is out of range (1..8)");
}

/* [sync]: NAME = PEER pairs (case of NAME kept: iniparser folds keys, the
 * loader reads the section's text itself), interval 300 s by default. */
static void test_cfg_sync_loads_pairs_and_interval(void **state)
{
    struct fixture *f = *state;
    struct spec s = valid_spec();
    struct cfg c;

    write_spec(f, &s);
    assert_loads(f, &c);
    assert_int_equal(c.n_sync, 0);
    assert_int_equal(c.sync_interval, 300);
    s.extra = "\n[sync]\nCourse Notes = 2 ; from the teacher\nmusic = \"127.0.0.1:10900\"\n"
              "interval = 7\n";
    write_spec(f, &s);
    assert_loads(f, &c);
    assert_int_equal(c.n_sync, 2);
    assert_string_equal(c.sync[0].name, "Course Notes");
    assert_string_equal(c.sync[0].peer, "2");
    assert_int_equal(c.sync[0].peer_id, 2);
    assert_string_equal(c.sync[1].name, "music");
    assert_int_equal(c.sync[1].peer_id, 0);
    assert_string_equal(c.sync[1].addr.host, "127.0.0.1");
    assert_int_equal(c.sync[1].addr.port, 10900);
    assert_int_equal(c.sync_interval, 7);
}

static void test_cfg_sync_rejects_bad_peer(void **state)
{
    struct spec s = valid_spec();

    s.extra = "\n[sync]\nnotes = nowhere\n";
    assert_spec_error(state, &s, "sync", "notes",
                      "\"nowhere\" is not a peer id of the run folder nor HOST:PORT");
    s.extra = "\n[sync]\nnotes = 70000\n";
    assert_spec_error(state, &s, "sync", "notes", "\"70000\" is not a peer id (1..65535)");
    s.extra = "\n[sync]\nnotes = 3\n";
    assert_spec_error(state, &s, "sync", "notes", "\"3\" is this peer itself");
    s.extra = "\n[sync]\nnotes = 127.0.0.1:10813\n";
    assert_spec_error(state, &s, "sync", "notes", "is this peer itself");
    s.extra = "\n[sync]\nnotes =\n";
    assert_spec_error(state, &s, "sync", "notes", "no peer");
    s.extra = "\n[sync]\nnotes = 2\nnotes = 4\n";
    assert_spec_error(state, &s, "sync", "notes", "listed twice");
    s.extra = "\n[sync]\n.. = 2\n";
    assert_spec_error(state, &s, "sync", "\"..\"", "is not the name of a top-level item");
}

static void test_cfg_sync_rejects_bad_interval(void **state)
{
    struct spec s = valid_spec();

    s.extra = "\n[sync]\ninterval = 0\n";
    assert_spec_error(state, &s, "sync", "interval", "\"0\" is out of range (1..604800 seconds)");
    s.extra = "\n[sync]\ninterval = 5m\n";
    assert_spec_error(state, &s, "sync", "interval", "\"5m\" is not a whole number of seconds");
    s.extra = "\n[sync]\ninterval = 604801\n";
    assert_spec_error(state, &s, "sync", "interval", "out of range");
}

static void test_cfg_sync_rejects_too_many_pairs(void **state)
{
    struct fixture *f = *state;
    struct spec s = valid_spec();
    struct cfg c;
    char extra[4096] = "\n[sync]\n";

    for (int i = 0; i < CFG_MAX_SYNC; i++)
        snprintf(extra + strlen(extra), sizeof extra - strlen(extra), "item%d = 2\n", i);
    s.extra = extra;
    write_spec(f, &s);
    assert_loads(f, &c);
    assert_int_equal(c.n_sync, CFG_MAX_SYNC);
    snprintf(extra + strlen(extra), sizeof extra - strlen(extra), "one_more = 2\n");
    assert_spec_error(state, &s, "sync", "one_more", "more than 64 pairs");
}

static void test_cfg_loads_rates_with_suffixes(void **state)
{
    struct fixture *f = *state;
    struct spec s = valid_spec();
    struct cfg c;

    write_spec(f, &s);
    assert_loads(f, &c);
    assert_true(c.upload_rate == 0 && c.download_rate == 0); /* default: no limit */
    s.extra = "\n[limits]\nupload_rate = 40M\ndownload_rate = 1536k\n";
    write_spec(f, &s);
    assert_loads(f, &c);
    assert_true(c.upload_rate == 40ull * 1024 * 1024);
    assert_true(c.download_rate == 1536ull * 1024);
    s.extra = "\n[limits]\nupload_rate = 4194304\ndownload_rate = 0\n";
    write_spec(f, &s);
    assert_loads(f, &c);
    assert_true(c.upload_rate == 4194304 && c.download_rate == 0);
}

static void test_cfg_rejects_bad_rates_naming_the_key(void **state)
{
    struct spec s = valid_spec();

    s.extra = "\n[limits]\nupload_rate = 4MB\n";
    assert_spec_error(state, &s, "limits", "upload_rate", "\"4MB\" has something after its suffix");
    s.extra = "\n[limits]\ndownload_rate = 4T\n";
    assert_spec_error(state, &s, "limits", "download_rate", "\"4T\" has an unknown suffix");
    s.extra = "\n[limits]\nupload_rate = 100G\n";
    assert_spec_error(state, &s, "limits", "upload_rate", "is out of range");
    s.extra = "\n[limits]\ndownload_rate = fast\n";
    assert_spec_error(state, &s, "limits", "download_rate", "\"fast\" is not a rate");
}

static void test_cfg_loads_accept_section(void **state)
{
    struct fixture *f = *state;
    struct spec s = valid_spec();
    struct cfg c;

    write_spec(f, &s);
    assert_loads(f, &c);
    assert_int_equal(c.send_from, CFG_ACCEPT_NEIGHBOURS); /* defaults */
    assert_true(c.quota == 0 && c.max_item == 0);
    s.extra = "\n[accept]\nsend_from = any\nquota = 10G\nmax_item = 500m\n";
    write_spec(f, &s);
    assert_loads(f, &c);
    assert_int_equal(c.send_from, CFG_ACCEPT_ANY);
    assert_true(c.quota == 10ull << 30 && c.max_item == 500ull << 20);
    s.extra = "\n[accept]\nsend_from = none\nquota = 1T\nmax_item = 12345\n";
    write_spec(f, &s);
    assert_loads(f, &c);
    assert_int_equal(c.send_from, CFG_ACCEPT_NONE);
    assert_true(c.quota == 1ull << 40 && c.max_item == 12345);
    s.extra = "\n[accept]\nquota = unlimited\n";
    write_spec(f, &s);
    assert_loads(f, &c);
    assert_true(c.quota == 0);
}

static void test_cfg_rejects_bad_accept_values_naming_the_key(void **state)
{
    struct spec s = valid_spec();

    s.extra = "\n[accept]\nsend_from = friends\n";
    assert_spec_error(state, &s, "accept", "send_from", "\"friends\" is not none, neighbours or any");
    s.extra = "\n[accept]\nquota = 10GB\n";
    assert_spec_error(state, &s, "accept", "quota", "\"10GB\" is not a size");
    s.extra = "\n[accept]\nmax_item = 0\n";
    assert_spec_error(state, &s, "accept", "max_item", "is not a size");
    s.extra = "\n[accept]\nquota = 2048T\n"; /* over 1024T */
    assert_spec_error(state, &s, "accept", "quota", "is not a size");
    s.extra = "\n[accept]\nquota = -1\n";
    assert_spec_error(state, &s, "accept", "quota", "is not a size");
    s.extra = "\n[accept]\nbrowse_from = any\n";
    assert_spec_error(state, &s, "accept", "browse_from", "unknown key (expected browse, send_from, quota, max_item)");
}

static void test_cfg_resolves_share_dir_against_ini_folder(void **state)
{
    struct fixture *f = *state;
    char conf[PATH_MAX], p[PATH_MAX], want[PATH_MAX], cwd[PATH_MAX];
    char err[CFG_ERR_MAX];
    struct cfg c;
    fs_status st;

    /* myshare exists both next to the INI and in the working folder (a
     * decoy): only the one next to the INI is right. */
    path_in(f, "conf", conf, sizeof conf);
    assert_int_equal(mkdir(conf, 0755), 0);
    path_in(f, "conf/myshare", p, sizeof p);
    assert_int_equal(mkdir(p, 0755), 0);
    assert_non_null(realpath(p, want));
    path_in(f, "myshare", p, sizeof p);
    assert_int_equal(mkdir(p, 0755), 0);
    path_in(f, "conf/peer.ini", p, sizeof p);
    write_file(p, "[peer]\nid = 1\nhost = 127.0.0.1\nport = 10811\nshare_dir = myshare\n"
                  "ttl = 2\n");

    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir(f->dir), 0);
    st = cfg_load("conf/peer.ini", &c, err, sizeof err);
    assert_int_equal(chdir(cwd), 0);
    if (st != FS_OK)
        fail_msg("cfg_load: %s", err);
    assert_string_equal(c.share_dir, want);
    assert_string_equal(c.share_dir_raw, "myshare");
    assert_string_equal(c.path, "conf/peer.ini");
}

static void test_cfg_accepts_absolute_share_dir(void **state)
{
    struct fixture *f = *state;
    struct spec s = valid_spec();
    char abs[PATH_MAX], want[PATH_MAX];
    struct cfg c;

    path_in(f, "share", abs, sizeof abs);
    assert_non_null(realpath(abs, want));
    s.share_dir = abs;
    write_spec(f, &s);
    assert_loads(f, &c);
    assert_string_equal(c.share_dir, want);
    assert_string_equal(c.share_dir_raw, abs);
}

static void test_cfg_accepts_empty_neighbour_list(void **state)
{
    struct fixture *f = *state;
    struct spec s = valid_spec();
    struct cfg c;

    s.peers = "";
    write_spec(f, &s);
    assert_loads(f, &c);
    assert_int_equal(c.n_neighbours, 0);
}

/* Without advertise, the peer names itself host:port, as before the key. */
static void test_cfg_advertise_defaults_to_host_and_port(void **state)
{
    struct fixture *f = *state;
    struct spec s = valid_spec();
    struct cfg c;

    write_spec(f, &s);
    assert_loads(f, &c);
    assert_false(c.advertise_set);
    assert_string_equal(c.advertise.host, "127.0.0.1");
    assert_int_equal(c.advertise.port, 10813);
}

static void test_cfg_wildcard_host_with_advertise(void **state)
{
    struct fixture *f = *state;
    struct spec s = valid_spec();
    struct cfg c;

    s.host = "0.0.0.0";
    s.peer_extra = "advertise = 192.0.2.7:20000\n"; /* another port too: a port forward */
    write_spec(f, &s);
    assert_loads(f, &c);
    assert_true(c.advertise_set);
    assert_string_equal(c.host, "0.0.0.0");
    assert_string_equal(c.advertise.host, "192.0.2.7");
    assert_int_equal(c.advertise.port, 20000);
    s.peer_extra = NULL; /* a wildcard nobody can dial, and nothing advertised */
    write_spec(f, &s);
    assert_cfg_error(f, "peer", "advertise", "wildcard");
}

/* IPv6: host bare or in brackets, neighbours in brackets, all canonical, so
 * another spelling of this peer or of a neighbour is caught. */
static void test_cfg_ipv6_host_and_neighbours(void **state)
{
    struct fixture *f = *state;
    struct spec s = valid_spec();
    struct cfg c;

    s.host = "0:0::1";
    s.peers = "[::1]:10812, [2001:DB8::1]:10812";
    write_spec(f, &s);
    assert_loads(f, &c);
    assert_string_equal(c.host, "::1");
    assert_string_equal(c.advertise.host, "::1");
    assert_string_equal(c.neighbours[1].host, "2001:db8::1");
    s.host = "[::]";
    s.peer_extra = "advertise = [::1]:10813\n";
    write_spec(f, &s);
    assert_loads(f, &c);
    assert_string_equal(c.host, "::");
    s.peers = "[0::1]:10813"; /* this peer itself, spelt another way */
    write_spec(f, &s);
    assert_cfg_error(f, "neighbours", "peers", "is this peer itself");
    s.peers = "[::1]:10812 [0:0:0:0:0:0:0:1]:10812";
    write_spec(f, &s);
    assert_cfg_error(f, "neighbours", "peers", "listed twice");
    s.peers = "::1:10812";
    write_spec(f, &s);
    assert_cfg_error(f, "neighbours", "peers", "[addr]:port");
}

static void test_cfg_splits_neighbours_on_commas_and_whitespace(void **state)
{
    struct fixture *f = *state;
    struct spec s = valid_spec();
    struct cfg c;

    s.peers = "127.0.0.1:1,127.0.0.1:2  127.0.0.1:3 ,\t 127.0.0.1:4,";
    write_spec(f, &s);
    assert_loads(f, &c);
    assert_int_equal(c.n_neighbours, 4);
    for (unsigned i = 0; i < 4; i++)
        assert_int_equal(c.neighbours[i].port, i + 1);
}

static void test_cfg_matches_section_and_key_case_insensitively(void **state)
{
    struct fixture *f = *state;
    struct cfg c;

    write_file(f->ini, "[Peer]\nID = 7\nHost = 127.0.0.1\nPORT = 10817\nShare_Dir = share\n"
                       "TTL = 2\nLog_Level = WARN\n");
    assert_loads(f, &c);
    assert_int_equal(c.id, 7);
    assert_int_equal(c.log_level, L_WARN);
}

/* ---------- cfg_load: invalid files ---------- */

static void test_cfg_rejects_port_out_of_range(void **state)
{
    struct spec s = valid_spec();

    s.port = "70000";
    assert_spec_error(state, &s, "peer", "port", "\"70000\" is not a port number (1..65535)");
}

static void test_cfg_rejects_port_zero(void **state)
{
    struct spec s = valid_spec();

    s.port = "0";
    assert_spec_error(state, &s, "peer", "port", "\"0\"");
}

static void test_cfg_rejects_ttl_zero(void **state)
{
    struct spec s = valid_spec();

    s.ttl = "0";
    assert_spec_error(state, &s, "peer", "ttl", "\"0\" is out of range (1..15)");
}

static void test_cfg_rejects_ttl_16(void **state)
{
    struct spec s = valid_spec();

    s.ttl = "16";
    assert_spec_error(state, &s, "peer", "ttl", "\"16\" is out of range (1..15)");
}

static void test_cfg_rejects_ttl_above_max_ttl(void **state)
{
    struct spec s = valid_spec();

    s.ttl = "5";
    s.extra = "\n[limits]\nmax_ttl = 4\n";
    assert_spec_error(state, &s, "peer", "ttl", "max_ttl");
}

static void test_cfg_rejects_non_numeric_id(void **state)
{
    struct spec s = valid_spec();

    s.id = "three";
    assert_spec_error(state, &s, "peer", "id", "\"three\" is not a whole number");
}

static void test_cfg_rejects_id_zero(void **state)
{
    struct spec s = valid_spec();

    s.id = "0";
    assert_spec_error(state, &s, "peer", "id", "out of range (1..65535)");
}

static void test_cfg_rejects_id_65536(void **state)
{
    struct spec s = valid_spec();

    s.id = "65536";
    assert_spec_error(state, &s, "peer", "id", "out of range (1..65535)");
}

static void test_cfg_rejects_huge_number_without_wrapping(void **state)
{
    struct spec s = valid_spec();

    s.id = "18446744073709551617"; /* 2^64 + 1 would wrap to 1 */
    assert_spec_error(state, &s, "peer", "id", "out of range");
}

static void test_cfg_rejects_trailing_junk_in_number(void **state)
{
    struct spec s = valid_spec();

    s.ttl = "3x";
    assert_spec_error(state, &s, "peer", "ttl", "\"3x\" is not a whole number");
}

static void test_cfg_rejects_sign_in_number(void **state)
{
    struct spec s = valid_spec();

    s.id = "+3";
    assert_spec_error(state, &s, "peer", "id", "not a whole number");
}

static void test_cfg_rejects_missing_share_dir(void **state)
{
    struct spec s = valid_spec();

    s.share_dir = "nowhere";
    assert_spec_error(state, &s, "peer", "share_dir", "\"nowhere\" does not exist (resolved to /");
}

static void test_cfg_rejects_share_dir_that_is_a_file(void **state)
{
    struct spec s = valid_spec();

    s.share_dir = "afile";
    assert_spec_error(state, &s, "peer", "share_dir", "is not a directory");
}

static void test_cfg_rejects_empty_share_dir(void **state)
{
    struct spec s = valid_spec();

    s.share_dir = "";
    assert_spec_error(state, &s, "peer", "share_dir", "empty");
}

static void test_cfg_rejects_bad_host(void **state)
{
    struct spec s = valid_spec();

    s.host = "my_host";
    assert_spec_error(state, &s, "peer", "host", "\"my_host\"");
}

static void test_cfg_rejects_bad_log_level(void **state)
{
    struct spec s = valid_spec();

    s.peer_extra = "log_level = loud\n";
    assert_spec_error(state, &s, "peer", "log_level", "\"loud\" is not a log level");
}

static void test_cfg_rejects_limit_out_of_range(void **state)
{
    struct spec s = valid_spec();

    s.extra = "\n[limits]\nworkers = 0\n";
    assert_spec_error(state, &s, "limits", "workers", "out of range (1..256)");
}

static void test_cfg_rejects_neighbour_that_is_self(void **state)
{
    struct spec s = valid_spec();

    s.peers = "127.0.0.1:10812, 127.0.0.1:10813";
    assert_spec_error(state, &s, "neighbours", "peers", "\"127.0.0.1:10813\" is this peer itself");
}

static void test_cfg_rejects_duplicate_neighbour(void **state)
{
    struct spec s = valid_spec();

    s.peers = "127.0.0.1:10812 127.0.0.1:10811 127.0.0.1:10812";
    assert_spec_error(state, &s, "neighbours", "peers", "\"127.0.0.1:10812\" is listed twice");
}

static void test_cfg_rejects_malformed_neighbour(void **state)
{
    struct spec s = valid_spec();

    s.peers = "127.0.0.1:10812, 127.0.0.1";
    assert_spec_error(state, &s, "neighbours", "peers", "\"127.0.0.1\" is not host:port");
}

static void test_cfg_rejects_too_many_neighbours(void **state)
{
    struct spec s = valid_spec();
    char list[4096] = "";

    for (int i = 0; i <= CFG_MAX_NEIGHBOURS; i++) {
        size_t len = strlen(list);
        snprintf(list + len, sizeof list - len, "10.0.0.1:%d ", 1000 + i);
    }
    s.peers = list;
    assert_spec_error(state, &s, "neighbours", "peers", "more than 64");
}

static void test_cfg_rejects_missing_required_key(void **state)
{
    struct spec s = valid_spec();

    s.host = NULL;
    assert_spec_error(state, &s, "peer", "host", "missing");
}

static void test_cfg_rejects_missing_peer_section(void **state)
{
    struct fixture *f = *state;

    write_file(f->ini, "[neighbours]\npeers = 127.0.0.1:10812\n");
    assert_cfg_error(f, "peer", "id", "missing");
}

static void test_cfg_rejects_unknown_key(void **state)
{
    struct spec s = valid_spec();

    s.peer_extra = "prot = 10813\n";
    assert_spec_error(state, &s, "peer", "prot", "unknown key");
}

static void test_cfg_rejects_unknown_section(void **state)
{
    struct spec s = valid_spec();

    s.extra = "\n[limit]\nworkers = 4\n";
    assert_spec_error(state, &s, "limit", NULL, "unknown section");
}

/* [security]: one mode at a time, each value checked, paths against the INI's folder. */
static void test_cfg_security(void **state)
{
    struct fixture *f = *state;
    struct spec s = valid_spec();
    struct cfg c;

    write_spec(f, &s);
    assert_loads(f, &c);
    assert_string_equal(c.passphrase, "");
    assert_string_equal(c.key_file, "");

    s.extra = "\n[security]\npassphrase = correct horse battery\nkeylog = k.log\n";
    write_spec(f, &s);
    assert_loads(f, &c);
    assert_string_equal(c.passphrase, "correct horse battery");
    assert_non_null(strstr(c.keylog, "/k.log"));
    assert_int_equal(c.keylog[0], '/');

    s.extra = "\n[security]\npassphrase = short\n";
    assert_spec_error(state, &s, "security", "passphrase", "8..1024 bytes");
    s.extra = "\n[security]\npassphrase = correct horse battery\nkey = a.key\n"
              "trusted = SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU\n";
    assert_spec_error(state, &s, "security", "key", "choose one");
    s.extra = "\n[security]\nkey = a.key\n";
    assert_spec_error(state, &s, "security", "trusted", "missing");
    s.extra = "\n[security]\ntrusted = SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU\n";
    assert_spec_error(state, &s, "security", "trusted", "needs [security] key");
    s.extra = "\n[security]\nkey = a.key\ntrusted = SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU, SHA256:nope\n";
    assert_spec_error(state, &s, "security", "trusted", "\"SHA256:nope\"");
    s.extra = "\n[security]\nkey = a.key\ntrusted = SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU\n";
    assert_spec_error(state, &s, "security", "trusted", "listed twice");
    s.extra = "\n[security]\nkeylog = k.log\n";
    assert_spec_error(state, &s, "security", "keylog", "needs a passphrase or a key");
    s.extra = "\n[security]\npasword = x\n";
    assert_spec_error(state, &s, "security", "pasword", "unknown key");

    s.extra = "\n[security]\nkey = a.key\ntrusted = SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU,SHA256:LXEWQrcmsEQBYnyp+6wy9chTD7GQPMTbAiWHF5IaSIE\n";
    write_spec(f, &s);
    assert_loads(f, &c);
    assert_int_equal(c.n_trusted, 2);
    assert_int_equal(c.key_file[0], '/');
    assert_non_null(strstr(c.key_file, "/a.key"));
}

static void test_cfg_rejects_key_outside_any_section(void **state)
{
    struct fixture *f = *state;
    struct cfg c;
    char err[CFG_ERR_MAX];

    write_file(f->ini, "ttl = 3\n[peer]\nid = 3\nhost = 127.0.0.1\nport = 10813\n"
                       "share_dir = share\nttl = 3\n");
    assert_int_equal(cfg_load(f->ini, &c, err, sizeof err), FS_ECONFIG);
    assert_contains(err, f->ini);
    assert_contains(err, "ttl: setting outside any section");
}

static void test_cfg_rejects_syntax_error_in_one_line(void **state)
{
    struct fixture *f = *state;
    struct cfg c;
    char err[CFG_ERR_MAX];
    char want[256];

    write_file(f->ini, "[peer]\nid = 3\nthis line has no equals sign\n");
    assert_int_equal(cfg_load(f->ini, &c, err, sizeof err), FS_ECONFIG);
    snprintf(want, sizeof want, "%s: line 3: ", f->ini);
    assert_contains(err, want);
    assert_contains(err, "\"this line has no equals sign\"");
    assert_null(strchr(err, '\n'));
}

static void test_cfg_rejects_missing_file_with_eio(void **state)
{
    struct fixture *f = *state;
    struct cfg c;
    char err[CFG_ERR_MAX];
    char p[PATH_MAX];

    path_in(f, "absent.ini", p, sizeof p);
    assert_int_equal(cfg_load(p, &c, err, sizeof err), FS_EIO);
    assert_contains(err, p);
}

static void test_cfg_rejects_folder_as_file_with_eio(void **state)
{
    struct fixture *f = *state;
    struct cfg c;
    char err[CFG_ERR_MAX];

    assert_int_equal(cfg_load(f->dir, &c, err, sizeof err), FS_EIO);
    assert_contains(err, "not a regular file");
}

/* ---------- cfg_set ---------- */

#define RICH_INI                                                                        \
    "; floodshare peer 3\n"                                                             \
    "# a hash comment too\n"                                                            \
    "\n"                                                                                \
    "[peer]\n"                                                                          \
    "id        = 3          ; this peer's number\n"                                     \
    "host=127.0.0.1\n"                                                                  \
    "  port = 10813\n"                                                                  \
    "share_dir = share\n"                                                               \
    "ttl = 3\n"                                                                         \
    "log_level = info   # chatty\n"                                                     \
    "\n"                                                                                \
    "; who we talk to\n"                                                                \
    "[neighbours]\n"                                                                    \
    "peers = 127.0.0.1:10812\n"                                                         \
    "\n"                                                                                \
    "[limits]\n"                                                                        \
    "; workers = 16\n"                                                                  \
    "max_ttl = 15\n"

static void set_ok(const struct fixture *f, const char *sec, const char *key, const char *value)
{
    char err[CFG_ERR_MAX];
    fs_status st = cfg_set(f->ini, sec, key, value, err, sizeof err);

    if (st != FS_OK)
        fail_msg("cfg_set: %s: %s", fs_status_name(st), err);
    assert_false(temp_left(f));
}

static void test_cfg_set_keeps_other_lines_byte_for_byte(void **state)
{
    struct fixture *f = *state;

    write_file(f->ini, RICH_INI);
    set_ok(f, "peer", "ttl", "7");
    set_ok(f, "peer", "host", "127.0.0.2");
    set_ok(f, "peer", "port", "10900");
    assert_file_is(f->ini, "; floodshare peer 3\n"
                           "# a hash comment too\n"
                           "\n"
                           "[peer]\n"
                           "id        = 3          ; this peer's number\n"
                           "host=127.0.0.2\n"
                           "  port = 10900\n"
                           "share_dir = share\n"
                           "ttl = 7\n"
                           "log_level = info   # chatty\n"
                           "\n"
                           "; who we talk to\n"
                           "[neighbours]\n"
                           "peers = 127.0.0.1:10812\n"
                           "\n"
                           "[limits]\n"
                           "; workers = 16\n"
                           "max_ttl = 15\n");
}

static void test_cfg_set_keeps_trailing_comment_in_its_column(void **state)
{
    struct fixture *f = *state;
    char *text;

    write_file(f->ini, RICH_INI);
    set_ok(f, "peer", "id", "65000");
    set_ok(f, "peer", "log_level", "debug");
    text = read_file(f->ini);
    assert_contains(text, "\nid        = 65000      ; this peer's number\n");
    assert_contains(text, "\nlog_level = debug  # chatty\n");
    free(text);
}

static void test_cfg_set_keeps_comment_after_long_value(void **state)
{
    struct fixture *f = *state;
    char *text;

    write_file(f->ini, "[peer]\nid = 3\nhost = 127.0.0.1\nport = 10813\nshare_dir = share\n"
                       "ttl = 3\n[neighbours]\npeers = ; none yet\n");
    set_ok(f, "neighbours", "peers", "127.0.0.1:10811, 127.0.0.1:10812");
    text = read_file(f->ini);
    assert_contains(text, "\npeers = 127.0.0.1:10811, 127.0.0.1:10812 ; none yet\n");
    free(text);
}

static void test_cfg_set_adds_missing_key_inside_its_section(void **state)
{
    struct fixture *f = *state;

    write_file(f->ini, "[peer]\nid = 3\nhost = 127.0.0.1\nport = 10813\nshare_dir = share\n"
                       "ttl = 3\n\n; who we talk to\n[neighbours]\npeers = 127.0.0.1:10812\n");
    set_ok(f, "peer", "log_level", "debug");
    assert_file_is(f->ini, "[peer]\nid = 3\nhost = 127.0.0.1\nport = 10813\nshare_dir = share\n"
                           "ttl = 3\nlog_level = debug\n\n; who we talk to\n[neighbours]\n"
                           "peers = 127.0.0.1:10812\n");
}

static void test_cfg_set_adds_missing_section(void **state)
{
    struct fixture *f = *state;
    static const char before[] = "[peer]\nid = 3\nhost = 127.0.0.1\nport = 10813\n"
                                 "share_dir = share\nttl = 3\n";
    struct cfg c;

    write_file(f->ini, before);
    set_ok(f, "limits", "workers", "8");
    assert_file_is(f->ini, "[peer]\nid = 3\nhost = 127.0.0.1\nport = 10813\n"
                           "share_dir = share\nttl = 3\n\n[limits]\nworkers = 8\n");
    assert_loads(f, &c);
    assert_int_equal(c.workers, 8);
}

static void test_cfg_set_adds_section_to_file_without_final_newline(void **state)
{
    struct fixture *f = *state;

    write_file(f->ini, "[peer]\nid = 3\nhost = 127.0.0.1\nport = 10813\nshare_dir = share\n"
                       "ttl = 3");
    set_ok(f, "neighbours", "peers", "127.0.0.1:10812");
    assert_file_is(f->ini, "[peer]\nid = 3\nhost = 127.0.0.1\nport = 10813\nshare_dir = share\n"
                           "ttl = 3\n\n[neighbours]\npeers = 127.0.0.1:10812\n");
}

static void test_cfg_set_refuses_invalid_value_leaving_file_unchanged(void **state)
{
    struct fixture *f = *state;
    char err[CFG_ERR_MAX];

    write_file(f->ini, RICH_INI);
    assert_int_equal(cfg_set(f->ini, "peer", "port", "70000", err, sizeof err), FS_ECONFIG);
    assert_file_is(f->ini, RICH_INI);
    assert_false(temp_left(f));
    assert_contains(err, f->ini);
    assert_contains(err, "[peer] port: \"70000\"");
    assert_null(strstr(err, ".peer.ini."));
}

static void test_cfg_set_refuses_unknown_key(void **state)
{
    struct fixture *f = *state;
    char err[CFG_ERR_MAX];

    write_file(f->ini, RICH_INI);
    assert_int_equal(cfg_set(f->ini, "peer", "prot", "1", err, sizeof err), FS_ECONFIG);
    assert_file_is(f->ini, RICH_INI);
    assert_contains(err, "[peer] prot: unknown key");
}

static void test_cfg_set_rejects_value_with_comment_char(void **state)
{
    struct fixture *f = *state;
    char err[CFG_ERR_MAX];

    write_file(f->ini, RICH_INI);
    assert_int_equal(cfg_set(f->ini, "peer", "host", "a;b", err, sizeof err), FS_EINVAL);
    assert_int_equal(cfg_set(f->ini, "peer", "host", "a#b", err, sizeof err), FS_EINVAL);
    assert_int_equal(cfg_set(f->ini, "peer", "host", "a\nid = 4", err, sizeof err), FS_EINVAL);
    assert_contains(err, "[peer] host: ");
    assert_file_is(f->ini, RICH_INI);
}

static void test_cfg_set_edits_neighbour_list(void **state)
{
    struct fixture *f = *state;
    struct cfg c;

    write_file(f->ini, RICH_INI);
    set_ok(f, "neighbours", "peers", "127.0.0.1:10811, 127.0.0.1:10812 127.0.0.1:10814");
    assert_loads(f, &c);
    assert_int_equal(c.n_neighbours, 3);
    assert_int_equal(c.neighbours[2].port, 10814);
    set_ok(f, "neighbours", "peers", "");
    assert_loads(f, &c);
    assert_int_equal(c.n_neighbours, 0);
}

static void test_cfg_set_matches_key_case_insensitively(void **state)
{
    struct fixture *f = *state;

    write_file(f->ini, "[PEER]\nID = 3\nhost = 127.0.0.1\nport = 10813\nshare_dir = share\n"
                       "TTL = 3\n");
    set_ok(f, "peer", "ttl", "4");
    assert_file_is(f->ini, "[PEER]\nID = 3\nhost = 127.0.0.1\nport = 10813\nshare_dir = share\n"
                           "TTL = 4\n");
}

static void test_cfg_set_keeps_crlf_line_endings(void **state)
{
    struct fixture *f = *state;

    write_file(f->ini, "[peer]\r\nid = 3\r\nhost = 127.0.0.1\r\nport = 10813\r\n"
                       "share_dir = share\r\nttl = 3\r\n");
    set_ok(f, "peer", "ttl", "5");
    set_ok(f, "peer", "log_level", "warn");
    assert_file_is(f->ini, "[peer]\r\nid = 3\r\nhost = 127.0.0.1\r\nport = 10813\r\n"
                           "share_dir = share\r\nttl = 5\r\nlog_level = warn\r\n");
}

static void test_cfg_set_keeps_file_mode(void **state)
{
    struct fixture *f = *state;
    struct stat sb;

    write_file(f->ini, RICH_INI);
    assert_int_equal(chmod(f->ini, 0640), 0);
    set_ok(f, "peer", "ttl", "2");
    assert_int_equal(stat(f->ini, &sb), 0);
    assert_int_equal(sb.st_mode & 07777, 0640);
}

static void test_cfg_set_edits_target_of_symlink(void **state)
{
    struct fixture *f = *state;
    char link[PATH_MAX];
    char err[CFG_ERR_MAX];
    struct stat sb;
    char *text;

    write_file(f->ini, RICH_INI);
    path_in(f, "link.ini", link, sizeof link);
    assert_int_equal(symlink("peer.ini", link), 0);
    assert_int_equal(cfg_set(link, "peer", "ttl", "6", err, sizeof err), FS_OK);
    assert_int_equal(lstat(link, &sb), 0);
    assert_true(S_ISLNK(sb.st_mode));
    text = read_file(f->ini);
    assert_contains(text, "\nttl = 6\n");
    free(text);
}

static void test_cfg_set_reports_missing_file_with_eio(void **state)
{
    struct fixture *f = *state;
    char err[CFG_ERR_MAX];
    char p[PATH_MAX];

    path_in(f, "absent.ini", p, sizeof p);
    assert_int_equal(cfg_set(p, "peer", "ttl", "3", err, sizeof err), FS_EIO);
    assert_contains(err, p);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_cfg_loads_valid_file_with_all_keys),
        T(test_cfg_applies_defaults),
        T(test_cfg_loads_upload_limits),
        T(test_cfg_rejects_bad_upload_limits),
        T(test_cfg_max_sources),
        T(test_cfg_sync_loads_pairs_and_interval),
        T(test_cfg_sync_rejects_bad_peer),
        T(test_cfg_sync_rejects_bad_interval),
        T(test_cfg_sync_rejects_too_many_pairs),
        T(test_cfg_accept_browse_defaults_to_any_and_loads_each_value),
        T(test_cfg_rejects_bad_accept_values_and_keys),
        T(test_cfg_loads_rates_with_suffixes),
        T(test_cfg_rejects_bad_rates_naming_the_key),
        T(test_cfg_loads_accept_section),
        T(test_cfg_rejects_bad_accept_values_naming_the_key),
        T(test_cfg_resolves_share_dir_against_ini_folder),
        T(test_cfg_accepts_absolute_share_dir),
        T(test_cfg_accepts_empty_neighbour_list),
        T(test_cfg_advertise_defaults_to_host_and_port),
        T(test_cfg_wildcard_host_with_advertise),
        T(test_cfg_ipv6_host_and_neighbours),
        T(test_cfg_splits_neighbours_on_commas_and_whitespace),
        T(test_cfg_matches_section_and_key_case_insensitively),
        T(test_cfg_rejects_port_out_of_range),
        T(test_cfg_rejects_port_zero),
        T(test_cfg_rejects_ttl_zero),
        T(test_cfg_rejects_ttl_16),
        T(test_cfg_rejects_ttl_above_max_ttl),
        T(test_cfg_rejects_non_numeric_id),
        T(test_cfg_rejects_id_zero),
        T(test_cfg_rejects_id_65536),
        T(test_cfg_rejects_huge_number_without_wrapping),
        T(test_cfg_rejects_trailing_junk_in_number),
        T(test_cfg_rejects_sign_in_number),
        T(test_cfg_rejects_missing_share_dir),
        T(test_cfg_rejects_share_dir_that_is_a_file),
        T(test_cfg_rejects_empty_share_dir),
        T(test_cfg_rejects_bad_host),
        T(test_cfg_rejects_bad_log_level),
        T(test_cfg_rejects_limit_out_of_range),
        T(test_cfg_rejects_neighbour_that_is_self),
        T(test_cfg_rejects_duplicate_neighbour),
        T(test_cfg_rejects_malformed_neighbour),
        T(test_cfg_rejects_too_many_neighbours),
        T(test_cfg_rejects_missing_required_key),
        T(test_cfg_rejects_missing_peer_section),
        T(test_cfg_rejects_unknown_key),
        T(test_cfg_rejects_unknown_section),
        T(test_cfg_security),
        T(test_cfg_rejects_key_outside_any_section),
        T(test_cfg_rejects_syntax_error_in_one_line),
        T(test_cfg_rejects_missing_file_with_eio),
        T(test_cfg_rejects_folder_as_file_with_eio),
        T(test_cfg_set_keeps_other_lines_byte_for_byte),
        T(test_cfg_set_keeps_trailing_comment_in_its_column),
        T(test_cfg_set_keeps_comment_after_long_value),
        T(test_cfg_set_adds_missing_key_inside_its_section),
        T(test_cfg_set_adds_missing_section),
        T(test_cfg_set_adds_section_to_file_without_final_newline),
        T(test_cfg_set_refuses_invalid_value_leaving_file_unchanged),
        T(test_cfg_set_refuses_unknown_key),
        T(test_cfg_set_rejects_value_with_comment_char),
        T(test_cfg_set_edits_neighbour_list),
        T(test_cfg_set_matches_key_case_insensitively),
        T(test_cfg_set_keeps_crlf_line_endings),
        T(test_cfg_set_keeps_file_mode),
        T(test_cfg_set_edits_target_of_symlink),
        T(test_cfg_set_reports_missing_file_with_eio),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
