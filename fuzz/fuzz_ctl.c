/* fuzz_ctl.c - the control socket's two parsers: ctl_parse_line() over a
 * request line as the peer reads it from a client, and ctl_parse_progress()
 * over a "P ..." line as the client reads it from the peer.
 *
 * Both run on every input. A request line must split into the words a
 * client would have sent: each word decoded into the caller's storage,
 * never past it, one word per run of non-space bytes, and encoding the words
 * again as the client does (ctl_call()) gives the same words back. A
 * progress line that parses, written again as ctl_send_progress() writes it,
 * parses to the same progress. */
#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "floodshare/ctl.h"

#include "check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int count_runs(const char *s, size_t n)
{
    int runs = 0;

    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && (i == 0 || s[i - 1] == ' '))
            runs++;
    return runs;
}

static void check_request(const char *buf, size_t len)
{
    char storage[CTL_MAX_LINE + CTL_MAX_ARGS], storage2[CTL_MAX_LINE + CTL_MAX_ARGS];
    char *argv[CTL_MAX_ARGS], *argv2[CTL_MAX_ARGS];
    char line[3 * sizeof storage];
    const char *why = NULL;
    size_t used = 0;

    int argc = ctl_parse_line(buf, len, argv, CTL_MAX_ARGS, storage, sizeof storage, &why);
    if (argc < 0) {
        CHECK(argc == -1 && why != NULL && why[0] != '\0');
        return;
    }
    CHECK(argc == count_runs(buf, len) && argc <= CTL_MAX_ARGS);
    for (int i = 0; i < argc; i++) {
        CHECK(argv[i] >= storage && argv[i] < storage + sizeof storage);
        size_t n = strnlen(argv[i], (size_t)(storage + sizeof storage - argv[i]));
        CHECK(argv[i] + n < storage + sizeof storage); /* terminated inside storage */
        CHECK(n >= 1);
        CHECK(i == 0 || argv[i] > argv[i - 1] + strlen(argv[i - 1])); /* no overlap */
        if (i > 0)
            line[used++] = ' ';
        int e = msg_pct_encode(argv[i], n, line + used, sizeof line - used);
        CHECK(e > 0);
        used += (size_t)e;
    }
    why = NULL;
    int argc2 = ctl_parse_line(line, used, argv2, CTL_MAX_ARGS, storage2, sizeof storage2, &why);
    CHECK(argc2 == argc);
    for (int i = 0; i < argc; i++)
        CHECK(!strcmp(argv[i], argv2[i]));
}

static void check_progress(const char *s, size_t len)
{
    struct ctl_progress pr, back;
    char enc[3 * MSG_MAX_NAME + 1], line[CTL_MAX_LINE];

    if (ctl_parse_progress(s, len, &pr) != FS_OK)
        return;
    CHECK(strnlen(pr.holder, sizeof pr.holder) < sizeof pr.holder);
    CHECK(strnlen(pr.name, sizeof pr.name) < sizeof pr.name);
    CHECK(msg_pct_encode(pr.name, strlen(pr.name), enc, sizeof enc) >= 0);
    CHECK(pr.sources >= 1 && pr.sources <= CTL_SOURCES_MAX);
    int n = ctl_format_progress(&pr, line, sizeof line);
    CHECK(n > 0 && (size_t)n < sizeof line);
    CHECK(ctl_parse_progress(line, (size_t)n, &back) == FS_OK);
    CHECK(pr.done == back.done && pr.total == back.total && pr.resumed == back.resumed);
    CHECK(pr.rate == back.rate && pr.peer == back.peer && pr.sources == back.sources);
    CHECK(!strcmp(pr.holder, back.holder) && !strcmp(pr.name, back.name));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size ? size : 1);

    if (!buf)
        return 0;
    memcpy(buf, data, size);
    check_request(buf, size);
    check_progress(buf, size);
    free(buf);
    return 0;
}
