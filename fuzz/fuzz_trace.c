/* fuzz_trace.c - trace_decode() over one event line of a peer's watch or
 * events stream.
 *
 * `floodshare watch`, `peer N watch`, `peer N events` and `trace QID` read
 * "E key=value ..." lines from every peer's control socket and decode them
 * (watch.c); whatever answers on DIR/peer-N.sock can send anything. An
 * accepted event goes into the merge buffer, the text and JSON printers and
 * tracegraph, which trust it: a known type, every text field NUL-terminated
 * inside its array, ids and hop counts in range, a query id and MD5 that
 * are hex of their length or empty. Written back with trace_encode() it must
 * decode to the same event, and a refusal must say why. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "floodshare/tracefmt.h"

#include "check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Far more than any encoded event: four addresses and every text field,
 * each byte percent-encoded. */
#define LINE_MAX_OUT (64 * 1024)

static int is_lower_hex(const char *s)
{
    for (; *s; s++)
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
            return 0;
    return 1;
}

static void check_event(const struct trace_event *ev)
{
    CHECK(ev->type > TR_NONE && ev->type < TR_COUNT);
    CHECK(strcmp(trace_type_name(ev->type), "?") != 0);
    CHECK(ev->peer <= 65535 && ev->from_peer <= 65535 && ev->to_peer <= 65535);
    CHECK(ev->holder <= 65535 && ev->ttl <= 255 && ev->hops <= 255);
    CHECK(ev->role == TR_ROLE_NONE || ev->role == TR_ROLE_REQUESTER || ev->role == TR_ROLE_HOLDER);
    CHECK(strnlen(ev->qid, sizeof ev->qid) < sizeof ev->qid);
    CHECK(strnlen(ev->name, sizeof ev->name) < sizeof ev->name);
    CHECK(strnlen(ev->md5, sizeof ev->md5) < sizeof ev->md5);
    CHECK(strnlen(ev->reason, sizeof ev->reason) < sizeof ev->reason);
    CHECK(strnlen(ev->detail, sizeof ev->detail) < sizeof ev->detail);
    CHECK(strnlen(ev->msg, sizeof ev->msg) < sizeof ev->msg);
    CHECK(ev->qid[0] == '\0' || (strlen(ev->qid) == MSG_QID_LEN && is_lower_hex(ev->qid)));
    CHECK(ev->md5[0] == '\0' || (strlen(ev->md5) == MSG_MD5_LEN && is_lower_hex(ev->md5)));
    const struct fs_addr *addrs[] = {&ev->addr, &ev->from, &ev->to, &ev->origin};
    for (size_t i = 0; i < 4; i++)
        CHECK(strnlen(addrs[i]->host, sizeof addrs[i]->host) < sizeof addrs[i]->host);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char once[LINE_MAX_OUT], twice[LINE_MAX_OUT];
    /* An exact copy, no NUL after it: reading past len is caught. */
    char *line = malloc(size ? size : 1);
    struct trace_event ev, back;
    const char *why = NULL;

    if (!line)
        return 0;
    memcpy(line, data, size);
    fs_status st = trace_decode(line, size, &ev, &why);
    if (st == FS_OK) {
        check_event(&ev);
        int n = trace_encode(&ev, once, sizeof once);
        CHECK(n > 0 && (size_t)n < sizeof once);
        why = NULL;
        CHECK(trace_decode(once, (size_t)n, &back, &why) == FS_OK);
        check_event(&back);
        /* Equal events encode the same: the encoding names every field
         * that is set (a repeated key in the input keeps its last value,
         * possibly with stale bytes after the NUL, so no memcmp). */
        int m = trace_encode(&back, twice, sizeof twice);
        CHECK(m == n && memcmp(once, twice, (size_t)n) == 0);
        CHECK(back.type == ev.type && back.ts_us == ev.ts_us && back.seq == ev.seq);
        CHECK(back.source_bytes == ev.source_bytes && back.count == ev.count);
        CHECK(strcmp(back.name, ev.name) == 0 && strcmp(back.detail, ev.detail) == 0);
    } else {
        CHECK(st == FS_EPROTO);
        CHECK(why != NULL && why[0] != '\0');
    }
    free(line);
    return 0;
}
