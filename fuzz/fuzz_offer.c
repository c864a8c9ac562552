/* fuzz_offer.c - a send's OFFER as it comes off the peer port, judged.
 *
 * The first 8 bytes choose the receiver's state (send_from, whether a
 * proven neighbour link comes from the holder, whether the name is taken,
 * the source host, and quota, max_item and bytes used as powers of two);
 * the rest is parsed with msg_parse() as the peer does. Beyond "no crash"
 * it checks what the receiver relies on before it dials anybody or writes
 * a byte: an OFFER it parses has a valid name (one component, no "..", no
 * '/'), a kind, an MD5, a holder with a port, a peer id, and formats back to
 * itself; offer_judge() accepts only what [accept] allows (never with
 * send_from = none, never from a non-neighbour under neighbours, never a
 * holder on another host than the offer came from, never a taken name,
 * never over max_item or over quota, with no overflow in that sum), and
 * every refusal says why in one line that fits an ERROR msg. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "floodshare/cfg.h"
#include "floodshare/msg.h"
#include "floodshare/offer.h"
#include "floodshare/pieces.h"

#include "check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* 0, or 2^(b % 64): a size of any magnitude, the extremes included. */
static uint64_t pow2(uint8_t b)
{
    return b & 0x80 ? 0 : (uint64_t)1 << (b % 64);
}

static void view_of(const uint8_t *b, struct offer_view *v)
{
    memset(v, 0, sizeof v[0]);
    v->send_from = b[0] % 3;
    v->neighbour = b[1] & 1;
    v->exists = (b[1] >> 1) & 1;
    snprintf(v->source.host, sizeof v->source.host, "%s", b[1] & 4 ? "127.0.0.1" : "::1");
    v->source.port = 40000;
    v->quota = pow2(b[2]);
    v->max_item = pow2(b[3]);
    v->used = b[4] == 0xff ? UINT64_MAX : pow2(b[4]) + b[5];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct msg m, back;
    struct offer_view v;
    size_t used = 0, used2 = 0;
    const char *why = NULL;
    char text[MSG_MAX_TEXT + 1], line[MSG_MAX_HEADER + 1];

    if (size < 8)
        return 0;
    view_of(data, &v);
    if (msg_parse((const char *)data + 8, size - 8, &m, &used, &why) != FS_OK ||
        m.type != MSG_OFFER)
        return 0;
    CHECK(name_valid(m.name, strlen(m.name)) && strchr(m.name, '/') == NULL);
    CHECK(strcmp(m.name, "..") != 0 && strcmp(m.name, ".") != 0);
    CHECK(m.kind == MSG_KIND_FILE || m.kind == MSG_KIND_FOLDER);
    CHECK(strlen(m.md5) == MSG_MD5_LEN && m.holder.port != 0);
    CHECK(m.peer_id >= 1 && m.peer_id <= 65535);
    CHECK(m.root[0] == '\0' || pieces_root_valid(m.root));
    int n = msg_format(&m, line, sizeof line);
    CHECK(n > 0 && msg_parse(line, (size_t)n, &back, &used2, NULL) == FS_OK);
    CHECK(back.type == MSG_OFFER && !strcmp(back.name, m.name) && back.size == m.size &&
          !strcmp(back.md5, m.md5) && addr_equal(&back.holder, &m.holder) &&
          !strcmp(back.root, m.root) && back.kind == m.kind && back.peer_id == m.peer_id);

    memset(text, 0, sizeof text);
    const char *word = offer_judge(&v, &m, text, sizeof text);
    if (!word) {
        CHECK(v.send_from != CFG_ACCEPT_NONE);
        CHECK(v.send_from != CFG_ACCEPT_NEIGHBOURS || v.neighbour);
        CHECK(strcmp(v.source.host, m.holder.host) == 0);
        CHECK(!v.exists);
        CHECK(!v.max_item || m.size <= v.max_item);
        CHECK(!v.quota || (v.used <= v.quota && m.size <= v.quota - v.used));
    } else {
        CHECK(text[0] != '\0' && strlen(text) < sizeof text);
        for (const char *p = text; *p; p++)
            CHECK((unsigned char)*p >= 0x20 && *p != 0x7f);
    }
    return 0;
}
