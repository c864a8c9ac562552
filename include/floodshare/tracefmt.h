/* tracefmt.h - trace events as text (docs/TRACE.md is the contract):
 * type names, JSON, the readable line, and the control socket's private
 * line form with its parser, which reads what a peer's socket sent.
 *
 * Functions of a struct trace_event (trace.h) alone: no lock, no I/O, no
 * allocation beyond a JSON writer's own; apart from bumping one atomic
 * counter (trace_formatted_count) they are pure, so safe from any thread.
 * They run in a watcher's thread or in the CLI, never in an emitter's. */
#ifndef FLOODSHARE_TRACEFMT_H
#define FLOODSHARE_TRACEFMT_H

#include <stddef.h>
#include <stdint.h>

#include "floodshare/addr.h"
#include "floodshare/status.h"
#include "floodshare/trace.h"

/* "received", ...; "?" for other values. */
const char *trace_type_name(enum trace_type type);
/* The type named s; TR_NONE when none is. */
enum trace_type trace_type_parse(const char *s);

/* Writes ev as one JSON object (docs/TRACE.md) into the writer j. */
struct json;
void trace_json(struct json *j, const struct trace_event *ev);

/* Writes ev as one JSON object (docs/TRACE.md) into out (cap bytes,
 * NUL-terminated). Returns its length, or -1 if it does not fit. */
int trace_format_json(const struct trace_event *ev, char *out, size_t cap);

/* Resolves an address to a peer id for text output; 0 when unknown. */
typedef unsigned (*trace_resolve_fn)(void *ctx, const struct fs_addr *a);

/* Writes ev as one readable line ("12:00:01.234 peer 2  q5c41  received
 * from peer 1 (ttl 3, hop 2)"), local time; resolve (may be NULL) names
 * addresses as peers; color adds ANSI colours. Returns its length, or -1. */
int trace_format_text(const struct trace_event *ev, trace_resolve_fn resolve, void *ctx,
                      int color, char *out, size_t cap);

/* The control socket's private line form of an event ("key=value ...",
 * values percent-encoded), which the CLI decodes to merge streams. Returns
 * the length written into out, or -1 if it does not fit. */
int trace_encode(const struct trace_event *ev, char *out, size_t cap);

/* Parses trace_encode()'s output s[0..len). Pure. FS_OK, or FS_EPROTO with
 * *why (may be NULL) naming what was wrong. Unknown keys are ignored. */
fs_status trace_decode(const char *s, size_t len, struct trace_event *ev, const char **why);

/* Events formatted (JSON, text or line form) by this process so far: stays
 * 0 while nobody listens, which the tests check. */
uint64_t trace_formatted_count(void);

#endif
