/* web.h - `floodshare web`: the classroom dashboard.
 *
 * A separate process, a client of the peers like the CLI: it serves one
 * page (the files of web/, embedded in the binary) and a small HTTP API over the
 * peers' control sockets, and streams every peer's trace events to the
 * page as server-sent events. See README "The classroom dashboard". */
#ifndef FLOODSHARE_WEB_H
#define FLOODSHARE_WEB_H

#include <stddef.h>

#define WEB_MAX_CONN 32        /* connections served at once; more get 503 */
#define WEB_IO_TIMEOUT_MS 5000 /* to read a request, to write any answer */
#define WEB_HISTORY 8192       /* events kept for pages that connect later */
#define WEB_MAX_PEERS 256      /* peers of a run folder the API lists */
#define WEB_KEEPALIVE_MS 15000 /* an SSE comment this often keeps proxies and tabs awake */
#define WEB_EVENTS_POLL_MS 1000 /* how soon a page that closed its event stream is noticed */
#define WEB_TOKEN_BYTES 32     /* random bytes of the token (64 hex digits; WEB_TOKEN_MAX) */
#define WEB_COOKIE_PREFIX "floodshare_web_" /* + the port: the cookie that holds the token */
#define WEB_TOKEN_FILE "web-%s.token"       /* in the run folder, %s the port; mode 0600 */

/* `web [--run DIR] [--listen HOST:PORT] [--public]`: argv[0] is "web".
 * Makes a random token, writes it to DIR/web-PORT.token (mode 0600) and
 * prints the URL that carries it; every request must then prove it knows
 * the token (README "The classroom dashboard", docs/SECURITY.md). Runs until
 * SIGINT/SIGTERM, then removes the token file; returns the exit code. */
int web_main(const char *run_dir, int argc, char **argv);

/* An asset of the page, embedded at build time (webassets.c, generated). */
struct web_asset {
    const char *path; /* "/app.js" */
    const char *type; /* Content-Type */
    const unsigned char *data;
    size_t len;
};
extern const struct web_asset web_assets[];
extern const size_t web_n_assets;

#endif
