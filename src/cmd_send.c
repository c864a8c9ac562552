/* cmd_send.c - `peer N send NAME to M [--json]`: the sending side of a send.
 *
 * N offers an item of its share to M (OFFER); M decides and pulls it from
 * N with the get path (offer.h). This command only relays M's answers:
 * ACCEPT, PROGRESS (shown as get's progress line), then DONE or ERROR. */
#include "floodshare/cmd.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "floodshare/cfg.h"
#include "floodshare/cmd_browse.h"
#include "floodshare/conn.h"
#include "floodshare/ctl.h"
#include "floodshare/json.h"
#include "floodshare/log.h"
#include "floodshare/name.h"
#include "floodshare/net.h"
#include "floodshare/node.h"
#include "floodshare/offer.h"
#include "floodshare/share.h"
#include "floodshare/stats.h"
#include "floodshare/tls.h"

#define SEND_USAGE "send NAME to PEER-ID|HOST:PORT [--json]"
#define SEND_POLL_MS 200 /* how soon a client that hung up (Ctrl-C) is noticed */

struct send {
    const struct cmd_env *e;
    struct ctl_out *o;
    int json;
    const char *name, *to_text;
    struct fs_addr to;
    unsigned to_id; /* 0: given as HOST:PORT */
    struct share_item item;
    struct conn c;
    int connected;
    uint64_t t0;
    char error[PATH_MAX + MSG_MAX_TEXT + 64];
};

/* The item NAME of this peer's share, as the index has it now. */
static int send_find(struct send *s)
{
    struct share *sh = node_share_get(s->e->node);
    share_refresh_wait(sh, 60000);
    fs_status st = share_lookup(sh, s->name, &s->item);
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", share_dir(sh));
    node_share_put(s->e->node);
    if (st == FS_OK)
        return 0;
    snprintf(s->error, sizeof s->error, "\"%s\" is not an item of this peer's share (%s)",
             s->name, dir);
    return -1;
}

static int send_connect(struct send *s)
{
    const struct cfg *cf = node_cfg_get(s->e->node);
    int ms = (int)cf->connect_timeout_ms, sock;
    char h[ADDR_STR_MAX];
    fs_status st = net_connect_tcp_from(&s->to, cf->host, ms, &sock);

    node_cfg_put(cf);
    addr_format(&s->to, h);
    if (st) {
        snprintf(s->error, sizeof s->error, "cannot connect to %s: %s", h, fs_strerror(st));
        return -1;
    }
    node_track(s->e->node, sock);
    conn_init(&s->c, sock, node_io_timeout_ms(s->e->node));
    s->connected = 1;
    struct tls_ctx *tls = node_tls(s->e->node);
    if (!tls)
        return 0;
    struct ssl_st *ssl = tls_new_ssl(tls, sock, 0);
    if (ssl) {
        conn_set_tls(&s->c, ssl);
        st = conn_handshake(&s->c, ms);
    }
    if (!ssl || st) {
        stats_inc(node_stats(s->e->node), auth_failed);
        snprintf(s->error, sizeof s->error, "%s failed the TLS check: %s", h,
                 !ssl ? "cannot start TLS" : st == FS_ETIMEDOUT ? "no answer in time"
                                                                : tls_last_error());
        return -1;
    }
    return 0;
}

static void send_disconnect(struct send *s)
{
    if (!s->connected)
        return;
    node_untrack(s->e->node, s->c.fd);
    conn_close(&s->c);
    s->connected = 0;
}

/* Waits for M's next message while watching the client: -1 with s->error
 * when the client left (Ctrl-C: M stops, the partial stays for the next
 * send), M fell silent for OFFER_SILENCE_MS or sent something unexpected. */
static int send_next(struct send *s, struct msg *m)
{
    uint64_t quiet_until = net_now_ms() + OFFER_SILENCE_MS;
    const char *why = NULL;

    while (!conn_ready(&s->c) && !s->c.eof) {
        if (ctl_client_gone(s->o) || node_stopping(s->e->node)) {
            snprintf(s->error, sizeof s->error, "cancelled: the receiver keeps the partial, and "
                     "the same send resumes it");
            return -1;
        }
        if (net_now_ms() >= quiet_until) {
            snprintf(s->error, sizeof s->error, "the receiver said nothing for %d s",
                     OFFER_SILENCE_MS / 1000);
            return -1;
        }
        if (conn_wait_readable(&s->c, SEND_POLL_MS) > 0 && conn_fill(&s->c) == FS_EIO)
            break;
    }
    fs_status st = conn_read_msg(&s->c, m, 0, &why);
    if (st == FS_OK)
        return 0;
    snprintf(s->error, sizeof s->error, "the receiver %s", st == FS_ECLOSED ? "hung up"
                                                                             : why ? why : "failed");
    return -1;
}

static void send_progress(struct send *s, uint64_t done, uint64_t resumed, uint64_t rate)
{
    struct ctl_progress pr;

    memset(&pr, 0, sizeof pr);
    pr.done = done;
    pr.total = s->item.size;
    pr.resumed = resumed;
    pr.rate = rate;
    pr.peer = s->to_id;
    pr.sources = 1; /* one holder: this peer, pulled by the receiver */
    addr_format(&s->to, pr.holder);
    snprintf(pr.name, sizeof pr.name, "%s", s->name);
    ctl_send_progress(s->o, &pr);
}

/* Offers the item and follows M's answers. 0 with *done (M's DONE) on
 * success, -1 with s->error. */
static int send_run(struct send *s, struct msg *done)
{
    struct msg m;

    memset(&m, 0, sizeof m);
    m.type = MSG_OFFER;
    snprintf(m.name, sizeof m.name, "%s", s->item.name);
    m.kind = s->item.kind;
    m.size = s->item.size;
    memcpy(m.md5, s->item.md5, sizeof m.md5);
    memcpy(m.root, s->item.root, sizeof m.root);
    m.holder = *node_self(s->e->node);
    m.peer_id = node_id(s->e->node);
    if (send_connect(s) < 0)
        return -1;
    if (conn_send_msg(&s->c, &m, node_io_timeout_ms(s->e->node)) != FS_OK) {
        snprintf(s->error, sizeof s->error, "the receiver hung up before the offer was sent");
        return -1;
    }
    uint64_t resumed = 0, last = 0, last_ms = net_now_ms();
    double rate = 0;
    for (int accepted = 0;;) {
        if (send_next(s, &m) < 0)
            return -1;
        if (m.type == MSG_ERROR) {
            snprintf(s->error, sizeof s->error, "%s: %s",
                     strcmp(m.code, "refused") == 0 ? "refused" : "failed", m.text);
            return -1;
        } else if (m.type == MSG_ACCEPT && !accepted) {
            accepted = 1;
            resumed = last = m.offset;
            if (resumed && !s->json)
                ctl_print(s->o, 1, "resuming \"%s\" at byte %llu of %llu (%.0f%% already there)",
                          s->name, (unsigned long long)resumed,
                          (unsigned long long)s->item.size,
                          100.0 * (double)resumed / (double)(s->item.size ? s->item.size : 1));
            send_progress(s, resumed, resumed, 0);
        } else if (m.type == MSG_PROGRESS && accepted && m.size == s->item.size) {
            uint64_t now = net_now_ms();
            if (now > last_ms && m.offset >= last) {
                double inst = (double)(m.offset - last) * 1000.0 / (double)(now - last_ms);
                rate = rate > 0 ? 0.7 * rate + 0.3 * inst : inst;
            }
            last = m.offset;
            last_ms = now;
            send_progress(s, m.offset, resumed, (uint64_t)rate);
        } else if (m.type == MSG_DONE && accepted && m.size == s->item.size &&
                   strcmp(m.md5, s->item.md5) == 0) {
            *done = m;
            return 0;
        } else {
            snprintf(s->error, sizeof s->error, "the receiver sent an unexpected %s",
                     msg_type_name(m.type));
            return -1;
        }
    }
}

static void send_json(struct send *s, int ok, const struct msg *done, double secs)
{
    struct json j;
    char h[ADDR_STR_MAX];

    json_init(&j, 64 * 1024);
    json_obj_open(&j, NULL);
    json_str(&j, "name", s->name);
    json_str(&j, "to", addr_format(&s->to, h));
    if (s->to_id)
        json_uint(&j, "peer", s->to_id);
    json_bool(&j, "ok", ok);
    json_str(&j, "status", ok ? "sent" : strncmp(s->error, "refused: ", 9) == 0 ? "refused"
                                                                               : "failed");
    if (ok) {
        json_str(&j, "kind", msg_kind_name(s->item.kind));
        json_uint(&j, "size", s->item.size);
        json_str(&j, "md5", s->item.md5);
        json_uint(&j, "bytes", done->len);
        json_uint(&j, "resumed_from", done->offset);
        json_double(&j, "seconds", secs);
    } else {
        json_str(&j, "error", s->error);
    }
    json_obj_close(&j);
    size_t len;
    const char *doc = json_result(&j, &len);
    if (doc)
        ctl_write(s->o, 1, doc, len);
    json_free(&j);
}

int cmd_send_run(const struct cmd_env *e, int argc, char **argv, struct ctl_out *o)
{
    struct send s;
    const char *pos[3];
    int npos = 0;

    memset(&s, 0, sizeof s);
    s.e = e;
    s.o = o;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            s.json = 1;
        else if (argv[i][0] == '-' && argv[i][1] == '-')
            npos = 99;
        else if (npos < 3)
            pos[npos++] = argv[i];
        else
            npos = 99;
    }
    if (npos != 3 || strcmp(pos[1], "to") != 0) {
        ctl_print(o, 2, "usage: peer N " SEND_USAGE);
        return CTL_EXIT_USAGE;
    }
    s.name = pos[0];
    s.to_text = pos[2];
    if (!name_valid(s.name, strlen(s.name))) {
        ctl_print(o, 2, "floodshare: \"%s\" is not a valid item name (one path component, no "
                  "'/', not . or .., at most %d bytes)", s.name, NAME_MAX_LEN);
        return CTL_EXIT_USAGE;
    }
    if (cmd_peer_addr(e, o, "send", s.to_text, &s.to, &s.to_id) < 0)
        return CTL_EXIT_USAGE;
    char h[ADDR_STR_MAX];
    addr_format(&s.to, h);
    s.t0 = net_now_ms();
    struct msg done;
    int rc = send_find(&s);
    if (rc == 0 && !s.json)
        ctl_print(o, 1, "offering the %s \"%s\" (%llu bytes) to %s", 
                  s.item.kind == MSG_KIND_FOLDER ? "folder" : "file", s.name,
                  (unsigned long long)s.item.size, h);
    if (rc == 0)
        rc = send_run(&s, &done);
    send_disconnect(&s);
    double secs = (double)(net_now_ms() - s.t0) / 1000.0;
    if (s.json) {
        send_json(&s, rc == 0, &done, secs);
    } else if (rc == 0) {
        double mbs = secs > 0 ? (double)done.len / secs / 1e6 : 0;
        ctl_print(o, 1, "sent \"%s\" to %s: %llu bytes in %.2f s (%.1f MB/s)%s, MD5 %s verified "
                  "by the receiver", s.name, h, (unsigned long long)done.len, secs, mbs,
                  done.offset ? ", resumed" : "", s.item.md5);
    } else {
        ctl_print(o, 2, "floodshare: send to %s: %s", h, s.error);
    }
    log_msg(L_INFO, "send %s to %s: %s", s.name, h, rc == 0 ? "done" : s.error);
    return rc == 0 ? CTL_EXIT_OK : CTL_EXIT_FAIL;
}
