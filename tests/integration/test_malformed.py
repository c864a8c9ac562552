"""Hostile peers: a table of malformed messages sent to a real peer's protocol port.

Every row is one distinct input. The peer must answer it with the exact ERROR line that
docs/PROTOCOL.md and src/msg.c promise (code and sentence), close the connection at once, count
it in `malformed_dropped` (exactly once), and go on serving: after each row a well-formed FETCH on
a fresh connection gets its normal RANGE and DATA, and after each group a real `get` is routed
through the peer. Messages that are well-formed but refused (a missing item, a bad offset) or
unexpected on a peer port (RANGE, DATA, ...) are rows too, with their own codes. Around the whole
table the peer's open descriptors are counted, so a leak of even one per row shows.

The target is peer 2 of the seed chain 1 - 2 - 3: a `get` of 3.txt from peer 1 must cross it.
"""

from __future__ import annotations

import hashlib
import json
import os
import select
import socket
import threading
import time
import unittest
import zlib
from dataclasses import dataclass

from fsnet import Net, NetCase

CHUNK = 4194304  # the FETCH chunk size of this protocol version (PROTOCOL.md)
QID = "0123456789abcdef"
PROMPT_S = 2.0  # an error reply and the close must come this fast (io_timeout_ms is 10 s)
def unexpected(verb: str) -> str:
    return f"{verb} is only sent by a peer answering a request, never to one"
CUT = "connection closed in the middle of a header"
RAW_BYTE = "header contains a control or non-ASCII byte; values must be percent-encoded"
U64 = 18446744073709551615  # 2^64 - 1


def pct(data: bytes) -> str:
    """Percent-encodes as PROTOCOL.md says: 0x21..0x7e but '%' stand for themselves."""
    return "".join(chr(b) if 0x21 <= b <= 0x7e and b != 0x25 else f"%{b:02X}" for b in data)


def error_line(code: str, why: str) -> bytes:
    return f"FLOOD/1 ERROR code={code} msg={pct(why.encode())}\n".encode()


def line(verb: str, pairs: list[tuple[str, str]], *, proto: str = "FLOOD/1",
         end: str = "\n") -> bytes:
    """A header from (key, value) pairs; values are written as given (already encoded)."""
    words = [proto, verb] + [f"{k}={v}" for k, v in pairs]
    return (" ".join(words) + end).encode("latin-1")


def edit(pairs: list[tuple[str, str]], **change) -> list[tuple[str, str]]:
    """pairs with some values replaced; a value of None drops the key."""
    out = []
    for k, v in pairs:
        if k in change:
            if change[k] is not None:
                out.append((k, change[k]))
        else:
            out.append((k, v))
    return out


@dataclass
class Case:
    group: str
    name: str
    data: bytes
    code: str | None = None   # the ERROR code expected; None: no ERROR (see `answer`)
    why: str | None = None    # the ERROR sentence expected
    counted: bool = True      # adds one to malformed_dropped
    shut: bool = False        # close our write side after sending (a cut message)
    answer: str = "error"     # "error", "fetch" (the normal FETCH answer), "silent" (none)
    counter: str | None = None  # another stats counter this row must raise by one


NOT_DIGITS, ZERO, RANGE = "not digits", "leading zero", "range"


def number_why(key: str, rule: str, range_text: str) -> str:
    """The sentence for a number that breaks one rule of PROTOCOL.md (decimal, unsigned, no
    leading zero, in range)."""
    if rule == NOT_DIGITS:
        return f"{key} is not a decimal number (digits only, no sign)"
    if rule == ZERO:
        return f"{key} has a leading zero"
    return f"{key} is not {range_text}"


def malformed(group, name, data, why, code="malformed", **kw):
    return Case(group, name, data, code, why, **kw)


class Ctx:
    """What the table needs to know about the running network."""

    def __init__(self, net: Net):
        self.a1 = "%s:%d" % net.addr(1)
        self.a3 = "%s:%d" % net.addr(3)
        body = (net.share(2) / "2.txt").read_bytes()
        self.body = body
        # RANGE carries the file's permission bits on the holder (octal, as %o writes them).
        self.mode = "%o" % ((net.share(2) / "2.txt").stat().st_mode & 0o777)
        self.md5 = hashlib.md5(body).hexdigest()
        # `from` names nobody's neighbour: this test's connections are strangers, and one
        # claiming peer 1's address would be dropped as spoofed (peer 1 proved it).
        self.get = [("qid", QID), ("ttl", "3"), ("hops", "0"), ("origin", self.a1),
                    ("from", "127.0.0.1:9"), ("name", "nothing-here")]
        self.found = [("qid", QID), ("hops", "1"), ("from", self.a3), ("holder", self.a3),
                      ("peer", "3"),
                      ("kind", "file"), ("size", "193"), ("md5", self.md5), ("path", "3.txt"),
                      ("name", "3.txt")]
        self.request = [("path", "2.txt"), ("md5", self.md5)]
        self.fetch = [("path", "2.txt"), ("md5", self.md5), ("offset", "0")]
        self.item = [("kind", "file"), ("size", "1"), ("md5", self.md5), ("len", "1"),
                     ("zmd5", self.md5)]
        self.range = [("size", "193"), ("md5", self.md5), ("offset", "0"), ("chunk", str(CHUNK))]
        self.data = [("idx", "0"), ("len", "4"), ("crc", "%08x" % zlib.crc32(b"abcd"))]

    def fetch_answer(self) -> bytes:
        size = len(self.body)
        return (f"FLOOD/1 RANGE size={size} md5={self.md5} offset=0 chunk={CHUNK} "
                f"mode={self.mode}\n"
                f"FLOOD/1 DATA idx=0 len={size} crc={zlib.crc32(self.body):08x}\n"
                ).encode() + self.body


def table(c: Ctx) -> list[Case]:
    get, found, fetch = c.get, c.found, c.fetch
    G = lambda **kw: line("GET", edit(get, **kw))          # noqa: E731
    F = lambda **kw: line("FOUND", edit(found, **kw))      # noqa: E731
    FE = lambda **kw: line("FETCH", edit(fetch, **kw))     # noqa: E731
    RQ = lambda **kw: line("REQUEST", edit(c.request, **kw))  # noqa: E731
    get_rest = line("GET", get)[len("FLOOD/1"):]
    rows: list[Case] = []
    add = rows.append

    g = "version and verb"
    add(malformed(g, "plain text", b"hello\n", "not a FLOOD/1 message", "version"))
    add(malformed(g, "an HTTP request", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
                  "not a FLOOD/1 message", "version"))
    add(malformed(g, "lower-case flood/1", b"flood/1" + get_rest, "not a FLOOD/1 message",
                  "version"))
    add(malformed(g, "leading space", b" FLOOD/1" + get_rest, "not a FLOOD/1 message",
                  "version"))
    add(malformed(g, "empty line", b"\n", "not a FLOOD/1 message", "version"))
    add(malformed(g, "empty CRLF line", b"\r\n", "not a FLOOD/1 message", "version"))
    add(malformed(g, "FLOOD/2", b"FLOOD/2" + get_rest, "unsupported protocol version",
                  "version"))
    add(malformed(g, "FLOOD/1.1", b"FLOOD/1.1" + get_rest, "unsupported protocol version",
                  "version"))
    add(malformed(g, "FLOOD/10", b"FLOOD/10" + get_rest, "unsupported protocol version",
                  "version"))
    add(malformed(g, "binary garbage with a newline", b"\x00\x01\x02\n", "not a FLOOD/1 message",
                  "version"))
    # Starts that can never become a header are refused as they arrive, not at the deadline.
    add(malformed(g, "a TLS handshake, no newline",
                  b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(32)),
                  "not a FLOOD/1 message", "version"))
    add(malformed(g, "hello, no newline", b"hello", "not a FLOOD/1 message", "version"))
    add(malformed(g, "3000 bytes of A, no newline", b"A" * 3000, "not a FLOOD/1 message",
                  "version"))
    add(malformed(g, "FLOOD/9, no newline", b"FLOOD/9 GET qid=", "unsupported protocol version",
                  "version"))
    add(malformed(g, "raw NUL before any newline", b"FLOOD/1 GET qid=\x00",
                  "header contains a NUL byte"))
    add(malformed(g, "raw 0xFF before any newline", b"FLOOD/1 GET name=caf\xff", RAW_BYTE))
    add(malformed(g, "no verb", b"FLOOD/1\n", "message type is missing"))
    add(malformed(g, "no verb, CRLF", b"FLOOD/1\r\n", "message type is missing"))
    add(malformed(g, "unknown verb PUT", b"FLOOD/1 PUT path=2.txt\n", "unknown message type",
                  "unknown"))
    add(malformed(g, "lower-case verb", b"FLOOD/1 get" + get_rest[len(" GET"):],
                  "unknown message type", "unknown"))
    add(malformed(g, "verb only, unknown", b"FLOOD/1 HOWDY\n", "unknown message type",
                  "unknown"))
    add(malformed(g, "two spaces before the verb", b"FLOOD/1 " + get_rest,
                  "empty token: tokens are separated by exactly one space"))
    add(malformed(g, "two spaces between fields", line("GET", get).replace(b" ttl", b"  ttl"),
                  "empty token: tokens are separated by exactly one space"))
    add(malformed(g, "trailing space", line("GET", get, end=" \n"),
                  "empty token: tokens are separated by exactly one space"))
    add(malformed(g, "tab as separator", line("GET", get).replace(b" ttl", b"\tttl"), RAW_BYTE))
    add(malformed(g, "token without =", line("GET", get)[:-1] + b" qid\n",
                  "token is not key=value"))
    add(malformed(g, "empty key", line("GET", get + [("", "x")]), "token has an empty key"))
    add(malformed(g, "upper-case key", line("GET", edit(get, ttl=None) + [("TTL", "3")]),
                  "key is not a lower-case word"))
    add(malformed(g, "key with a dash", line("GET", get + [("x-y", "1")]),
                  "key is not a lower-case word"))

    g = "missing and duplicated fields"
    for k, _ in get:
        add(malformed(g, f"GET without {k}", G(**{k: None}), f"GET needs {k}"))
    add(malformed(g, "FOUND without md5", F(md5=None), "FOUND needs md5"))
    add(malformed(g, "FOUND without path", F(path=None), "FOUND needs path"))
    add(malformed(g, "REQUEST without md5", RQ(md5=None), "REQUEST needs md5"))
    add(malformed(g, "REQUEST with no field", b"FLOOD/1 REQUEST\n", "REQUEST needs path"))
    add(malformed(g, "FETCH without offset", FE(offset=None), "FETCH needs offset"))
    add(malformed(g, "LIST without path", line("LIST", [("md5", c.md5)]), "LIST needs path"))
    add(malformed(g, "GET ttl twice, same value", line("GET", get + [("ttl", "3")]),
                  "duplicate key ttl"))
    add(malformed(g, "GET name twice, different values", line("GET", get + [("name", "other")]),
                  "duplicate key name"))
    add(malformed(g, "FETCH path twice", line("FETCH", fetch + [("path", "2.txt")]),
                  "duplicate key path"))
    add(malformed(g, "a key REQUEST does not use, twice",
                  line("REQUEST", c.request + [("ttl", "1"), ("ttl", "1")]),
                  "duplicate key ttl"))

    g = "unknown fields (ignored, not an error)"
    add(Case(g, "unknown key", line("FETCH", fetch + [("colour", "blue")]), counted=False,
             answer="fetch"))
    add(Case(g, "unknown key with a bad escape", line("FETCH", fetch + [("x_1", "%zz")]),
             counted=False, answer="fetch"))
    add(Case(g, "unknown key twice", line("FETCH", fetch + [("foo", "1"), ("foo", "2")]),
             counted=False, answer="fetch"))
    add(Case(g, "a GET key on a FETCH, not a number", line("FETCH", fetch + [("ttl", "banana")]),
             counted=False, answer="fetch"))

    g = "bad numbers"
    for key, rng, rows_ in [
        ("size", "a number that fits in 64 bits", [
            ("letters", "12a", NOT_DIGITS), ("empty", "", NOT_DIGITS),
            ("plus sign", "+12", NOT_DIGITS), ("minus sign", "-12", NOT_DIGITS),
            ("leading zero", "012", ZERO), ("exponent", "1e3", NOT_DIGITS),
            ("hex", "0x10", NOT_DIGITS), ("2^64", str(U64 + 1), RANGE), ("huge", "9" * 40, RANGE)]),
        ("peer", "a number from 1 to 65535", [
            ("zero", "0", RANGE), ("65536", "65536", RANGE), ("negative", "-3", NOT_DIGITS),
            ("decimal point", "3.0", NOT_DIGITS), ("leading zero", "03", ZERO)]),
    ]:
        for name, v, rule in rows_:
            add(malformed(g, f"FOUND {key} {name}", F(**{key: v}), number_why(key, rule, rng)))
    u64 = "a number that fits in 64 bits"
    for name, v, rule in [("negative", f"-{CHUNK}", NOT_DIGITS), ("2^64", str(U64 + 1), RANGE),
                          ("decimal point", f"{CHUNK}.0", NOT_DIGITS), ("empty", "", NOT_DIGITS),
                          ("leading zeros", f"000{CHUNK}", ZERO)]:
        add(malformed(g, f"FETCH offset {name}", FE(offset=v), number_why("offset", rule, u64)))
    add(malformed(g, "ITEM len negative", line("ITEM", edit(c.item, len="-1")),
                  number_why("len", NOT_DIGITS, u64)))
    add(malformed(g, "MANIFEST len with a unit", line("MANIFEST", [("md5", c.md5), ("len", "1k")]),
                  number_why("len", NOT_DIGITS, u64)))
    add(malformed(g, "DATA idx negative", line("DATA", edit(c.data, idx="-1")),
                  number_why("idx", NOT_DIGITS, u64)))
    add(malformed(g, "RANGE chunk zero", line("RANGE", edit(c.range, chunk="0")),
                  number_why("chunk", RANGE, "a number from 1 up that fits in 64 bits")))
    add(malformed(g, "FETCH chunk zero", line("FETCH", c.fetch + [("chunk", "0")]),
                  number_why("chunk", RANGE, "a number from 1 up that fits in 64 bits")))
    add(malformed(g, "DATA crc upper-case", line("DATA", edit(c.data, crc="ED82CD11")),
                  "crc is not 8 lower-case hex digits"))
    add(malformed(g, "DATA crc 7 digits", line("DATA", edit(c.data, crc="d82cd11")),
                  "crc is not 8 lower-case hex digits"))

    g = "ttl and hops out of range"
    hops = "a number from 0 to 255"
    for name, v, rule in [("negative", "-1", NOT_DIGITS), ("256", "256", RANGE),
                          ("1000", "1000", RANGE), ("2^64-1", str(U64), RANGE),
                          ("2^64", str(U64 + 1), RANGE), ("huge", "9" * 30, RANGE),
                          ("empty", "", NOT_DIGITS), ("plus", "+3", NOT_DIGITS),
                          ("leading zero", "03", ZERO)]:
        add(malformed(g, f"GET ttl {name}", G(ttl=v), number_why("ttl", rule, hops)))
    for name, v, rule in [("negative", "-1", NOT_DIGITS), ("256", "256", RANGE),
                          ("2^64", str(U64 + 1), RANGE)]:
        add(malformed(g, f"GET hops {name}", G(hops=v), number_why("hops", rule, hops)))
    hops_why = number_why("hops", RANGE, hops)
    add(malformed(g, "FOUND hops 256", F(hops="256"), hops_why))
    add(Case(g, "GET ttl 0 (well-formed: dropped)", G(qid="00000000000000a0", ttl="0"),
             counted=False, answer="silent", counter="ttl_dropped"))
    add(Case(g, "GET ttl 255 (well-formed: clamped)", G(qid="00000000000000a1", ttl="255"),
             counted=False, answer="silent", counter="ttl_clamped"))
    add(Case(g, "GET hops 255 (well-formed: no hop left)", G(qid="00000000000000a2", hops="255"),
             counted=False, answer="silent", counter="hops_dropped"))

    g = "lengths, sizes and offsets"
    add(malformed(g, "name of 256 bytes", G(name="n" * 256), "name exceeds 255 bytes"))
    add(malformed(g, "name of 256 encoded bytes", G(name="%41" * 256), "name exceeds 255 bytes"))
    add(malformed(g, "path of 1024 bytes", FE(path="/".join(["p" * 128] + ["p" * 127] * 7)),
                  "path exceeds 1023 bytes"))
    add(malformed(g, "path component of 256 bytes", FE(path="a/" + "p" * 256),
                  "path has a component that exceeds 255 bytes"))
    add(malformed(g, "ERROR msg of 256 bytes", line("ERROR", [("code", "x"), ("msg", "m" * 256)]),
                  "msg exceeds 255 bytes"))
    add(malformed(g, "ERROR code of 32 letters",
                  line("ERROR", [("code", "a" * 32), ("msg", "x")]),
                  "code is not 1 to 31 lower-case letters"))
    refused_off = "offset is not a chunk boundary inside the file"
    for name, v in [("beyond the file", str(2 * CHUNK)), ("not a chunk boundary", "1"),
                    ("2^64-1", str(U64))]:
        add(Case(g, f"FETCH offset {name} (refused)", FE(offset=v), "refused", refused_off,
                 counted=False, counter="uploads_failed"))
    add(Case(g, "ITEM len 2^63-1 (unexpected)", line("ITEM", edit(c.item, len=str(2 ** 63 - 1))),
             "unexpected", unexpected("ITEM")))
    add(Case(g, "DATA len beyond the chunk (unexpected)",
             line("DATA", edit(c.data, len=str(CHUNK + 1))) + b"abcd",
             "unexpected", unexpected("DATA")))
    add(Case(g, "DATA len 2^64-1 (unexpected)", line("DATA", edit(c.data, len=str(U64))),
             "unexpected", unexpected("DATA")))
    add(Case(g, "RANGE offset beyond its size (unexpected)",
             line("RANGE", edit(c.range, offset=str(8 * CHUNK))),
             "unexpected", unexpected("RANGE")))
    add(Case(g, "MANIFEST len 2^64-1 (unexpected)",
             line("MANIFEST", [("md5", c.md5), ("len", str(U64))]),
             "unexpected", unexpected("MANIFEST")))

    g = "hex digits and words"
    qid_why = "qid is not 16 lower-case hex digits"
    add(malformed(g, "qid of 15 digits", G(qid=QID[:15]), qid_why))
    add(malformed(g, "qid upper-case", G(qid=QID.upper()), qid_why))
    add(malformed(g, "qid not hex", G(qid="0123456789abcdeg"), qid_why))
    add(malformed(g, "md5 of 31 digits", FE(md5=c.md5[:31]), "md5 is not 32 lower-case hex digits"))
    add(malformed(g, "md5 upper-case", FE(md5=c.md5.upper()),
                  "md5 is not 32 lower-case hex digits"))
    add(malformed(g, "kind dir", F(kind="dir"), "kind is not file or folder"))
    add(malformed(g, "ITEM zmd5 short", line("ITEM", edit(c.item, zmd5="abc")),
                  "zmd5 is not 32 lower-case hex digits"))
    add(malformed(g, "origin without port", G(origin="127.0.0.1"),
                  "origin is not host:port with a port from 1 to 65535"))
    add(malformed(g, "from port 70000", G(**{"from": "127.0.0.1:70000"}),
                  "from is not host:port with a port from 1 to 65535"))
    add(malformed(g, "holder port 0", F(holder="127.0.0.1:0"),
                  "holder is not host:port with a port from 1 to 65535"))

    g = "percent-encoding"
    esc = "name has a '%' not followed by two hex digits"
    for name, v in [("% at the end", "a%"), ("one hex digit", "a%4"), ("non-hex digit", "a%4g"),
                    ("%%", "%%41"), ("%G0", "%G0")]:
        add(malformed(g, f"name {name}", G(name=v), esc))
    add(malformed(g, "path %zz", FE(path="2.txt%zz"),
                  "path has a '%' not followed by two hex digits"))
    add(malformed(g, "ERROR msg ending in %", line("ERROR", [("code", "x"), ("msg", "100%")]),
                  "msg has a '%' not followed by two hex digits"))
    add(malformed(g, "name %00", G(name="a%00b"), "name contains a NUL byte (%00)"))
    add(malformed(g, "path %00 after a real name", FE(path="2.txt%00"),
                  "path contains a NUL byte (%00)"))

    g = "UTF-8 and control characters"
    utf8 = "name is not valid UTF-8"
    for name, v in [("0xFF", "%FF"), ("lone continuation byte", "a%80"),
                    ("truncated 2-byte sequence", "caf%C3"), ("overlong '/'", "%C0%AF"),
                    ("overlong 'DEL'", "%C1%BF"), ("overlong 3-byte '/'", "%E0%80%AF"),
                    ("overlong 4-byte '/'", "%F0%80%80%AF"), ("UTF-16 surrogate", "%ED%A0%80"),
                    ("above U+10FFFF", "%F4%90%80%80"), ("5-byte sequence", "%F8%88%80%80%80")]:
        add(malformed(g, f"name {name}", G(name=v), utf8))
    ctl = "name contains a control byte"
    for name, v in [("SOH", "a%01"), ("TAB", "a%09b"), ("LF", "a%0Ab"), ("CR", "a%0D"),
                    ("ESC", "%1B[31mred"), ("DEL", "a%7F"), ("C1 CSI U+009B", "a%C2%9B31m")]:
        add(malformed(g, f"name {name}", G(name=v), ctl))
    add(malformed(g, "path with ESC", FE(path="2.txt/%1B"), "path contains a control byte"))
    add(malformed(g, "path not UTF-8", FE(path="a/%FF"), "path is not valid UTF-8"))
    add(malformed(g, "path overlong '..'", FE(path="%C0%AE%C0%AE/2.txt"),
                  "path is not valid UTF-8"))
    add(malformed(g, "raw NUL byte", line("GET", get).replace(b"nothing", b"no\x00thing"),
                  "header contains a NUL byte"))
    for name, b in [("ESC", b"\x1b"), ("DEL", b"\x7f"), ("CR", b"\r"),
                    ("UTF-8 e-acute", b"\xc3\xa9"), ("0xFF", b"\xff")]:
        add(malformed(g, f"raw {name} byte in a name",
                      line("GET", get).replace(b"nothing", b"no" + b + b"thing"), RAW_BYTE))

    g = "names with / or .. where a plain name is required"
    slash = "name contains '/' or '\\'"
    for name, v in [("a/b", "a/b"), ("%2F", "a%2Fb"), ("lower-case %2f", "a%2fb"),
                    ("backslash", "a\\b"), ("%5C", "a%5Cb"), ("absolute path", "/etc/passwd")]:
        add(malformed(g, f"GET name {name}", G(name=v), slash))
    for name, v in [("..", ".."), (".", "."), ("%2E%2e", "%2E%2e")]:
        add(malformed(g, f"GET name {name}", G(name=v), "name is . or .."))
    add(malformed(g, "GET name empty", G(name=""), "name is empty"))
    add(malformed(g, "FOUND name ../x", F(name="../x"), slash))
    dots = "path has a . or .. component"
    add(malformed(g, "FETCH path ../2.txt", FE(path="../2.txt"), dots))
    add(malformed(g, "FETCH path 2.txt/..", FE(path="2.txt/.."), dots))
    add(malformed(g, "FETCH path ./2.txt", FE(path="./2.txt"), dots))
    add(malformed(g, "FOUND path ../../etc/passwd", F(path="../../etc/passwd"), dots))
    add(malformed(g, "LIST path ..", line("LIST", [("path", ".."), ("md5", c.md5)]), dots))
    add(malformed(g, "FETCH path /etc/passwd", FE(path="/etc/passwd"),
                  "path is absolute (starts with '/')"))
    add(malformed(g, "FETCH path %2Fetc%2Fpasswd", FE(path="%2Fetc%2Fpasswd"),
                  "path is absolute (starts with '/')"))
    add(malformed(g, "FETCH path a//b", FE(path="a//b"),
                  "path has an empty component (a double or trailing '/')"))
    add(malformed(g, "FETCH path 2.txt/", FE(path="2.txt/"),
                  "path has an empty component (a double or trailing '/')"))
    add(malformed(g, "FETCH path with backslashes", FE(path="a\\..\\2.txt"), "path contains '\\'"))
    add(malformed(g, "FETCH path empty", FE(path=""), "path is empty"))

    g = "header size limit"
    big = "header longer than 2048 bytes"
    add(malformed(g, "2049 bytes with a newline", pad(line("FETCH", fetch), 2049), big, "toolarge"))
    add(malformed(g, "4000 bytes with a newline", pad(line("FETCH", fetch), 4000), big, "toolarge"))
    add(malformed(g, "2048 bytes, no newline", pad(line("FETCH", fetch), 2049)[:-1], big,
                  "toolarge"))
    add(malformed(g, "10000 bytes, no newline", b"FLOOD/1 GET " + b"A" * 9988, big, "toolarge"))
    add(Case(g, "exactly 2048 bytes (well-formed)", pad(line("FETCH", fetch), 2048),
             counted=False, answer="fetch"))

    g = "cut messages"
    add(malformed(g, "cut after FLOOD/1", b"FLOOD/1", CUT, shut=True))
    add(malformed(g, "cut inside a qid", b"FLOOD/1 GET qid=0123", CUT, shut=True))
    add(malformed(g, "FETCH without its newline", line("FETCH", fetch, end=""), CUT, shut=True))
    add(malformed(g, "cut between CR and LF", line("FETCH", fetch, end="\r"), CUT, shut=True))
    add(malformed(g, "second message cut", line("GET", edit(get, qid="00000000000000b0", ttl="0"))
                  + b"FLOOD/1 FOU", CUT, shut=True))

    g = "unexpected on a peer port"
    add(Case(g, "ITEM with its body", line("ITEM", c.item) + b"x",
             "unexpected", unexpected("ITEM")))
    add(Case(g, "ERROR", line("ERROR", [("code", "notfound"), ("msg", "no%20such%20item")]),
             "unexpected", unexpected("ERROR")))
    add(Case(g, "RANGE", line("RANGE", c.range),
             "unexpected", unexpected("RANGE")))
    add(Case(g, "DATA with its body", line("DATA", c.data) + b"abcd",
             "unexpected", unexpected("DATA")))
    add(Case(g, "MANIFEST with its body", line("MANIFEST", [("md5", c.md5), ("len", "3")]) + b"D a",
             "unexpected", unexpected("MANIFEST")))

    g = "well-formed but refused"
    add(Case(g, "FETCH of a missing item", FE(path="missing.txt"), "notfound",
             "no such item in this share", counted=False, counter="uploads_failed"))
    add(Case(g, "FETCH with another md5", FE(md5="0" * 32), "changed",
             "the item has changed since it was found", counted=False, counter="uploads_failed"))
    add(Case(g, "LIST of a file", line("LIST", c.request), "refused", "LIST is for folders",
             counted=False, counter="uploads_failed"))
    for v in ("3000", "32768", str(2 * CHUNK), str(U64)):
        add(Case(g, f"FETCH chunk {v}", line("FETCH", c.fetch + [("chunk", v)]), "refused",
                 f"chunk={v} is not a power of two from 65536 to 4194304", counted=False,
                 counter="uploads_failed"))
    add(Case(g, "REQUEST of a missing item", RQ(path="nothing/here"), "notfound",
             "no such item in this share", counted=False, counter="uploads_failed"))
    return rows


def pad(header: bytes, size: int) -> bytes:
    """header grown to exactly size bytes (newline included) by an unknown key."""
    body = header.rstrip(b"\n") + b" pad="
    return body + b"p" * (size - len(body) - 1) + b"\n"


def talk(addr, data: bytes, *, shut: bool = False, wait: float = 5.0):
    """Sends data on a fresh connection and reads until the peer closes it or `wait` passes.
    Returns (reply, how it ended: "closed", "reset" or "open", seconds from send to the end)."""
    with socket.create_connection(addr, timeout=wait) as s:
        t0 = time.monotonic()
        try:
            s.sendall(data)
            if shut:
                s.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the peer may refuse and close before it has read all of a long input
        out, end = b"", "open"
        while True:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                end = "reset"  # we sent bytes it never read: its close becomes a reset
                break
            if not chunk:
                end = "closed"
                break
            out += chunk
        return out, end, time.monotonic() - t0


def fd_census(pid: int) -> tuple[int, list[str]]:
    """(sockets, sorted targets of every other descriptor) of process pid."""
    sockets, other = 0, []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except FileNotFoundError:
            continue  # closed while we looked
        if target.startswith("socket:"):
            sockets += 1
        else:
            other.append(target)
    return sockets, sorted(other)


class MalformedTest(NetCase):
    PEER = 2

    def setUp(self):
        super().setUp()
        self.n = self.net("topologies/seed-chain.topo")
        self.ctx = Ctx(self.n)
        self.addr = self.n.addr(self.PEER)

    # --- what every row checks ---
    def assertServes(self, why: str):
        """A real get of 3.txt from peer 1 crosses peer 2."""
        r = self.n.peer(1, "get", "3.txt", "--quiet", timeout=30)
        self.assertOk(r, f"peer 2 stopped routing after {why}")
        (self.n.share(1) / "3.txt").unlink()

    def assertFetchAnswered(self, why: str, request: bytes | None = None):
        """A well-formed FETCH of 2.txt on a fresh connection gets exactly RANGE + DATA."""
        want = self.ctx.fetch_answer()
        with socket.create_connection(self.addr, timeout=5) as s:
            s.sendall(request or line("FETCH", self.ctx.fetch))
            got = b""
            while len(got) < len(want):
                chunk = s.recv(65536)
                if not chunk:
                    break
                got += chunk
        self.assertEqual(got, want, f"the normal FETCH answer, after {why}")

    def counters(self) -> dict:
        return self.n.stats(self.PEER)

    def baseline_fds(self):
        self.assertServes("start-up")  # neighbour links open now, as they will be at the end
        pid = self.n.pid(self.PEER)
        last = fd_census(pid)
        for _ in range(50):  # settled: the same census twice, 0.1 s apart
            time.sleep(0.1)
            now, last = last, fd_census(pid)
            if now == last:
                break
        return last

    def assertFdsBack(self, base):
        """Non-socket descriptors (files, pipes, the log) must be exactly as before. Sockets may
        differ by the four kept-alive neighbour links (peer 2 holds an outgoing and an incoming
        connection with each of peers 1 and 3; each side closes or reopens them on its own idle
        timers), never by one per row."""
        pid = self.n.pid(self.PEER)
        deadline = time.monotonic() + 5
        while True:
            now = fd_census(pid)
            if now[1] == base[1] and now[0] <= base[0] + 4:
                print(f"\nfds of peer 2: {base[0]} sockets + {len(base[1])} others at the start, "
                      f"{now[0]} + {len(now[1])} at the end")
                return
            if time.monotonic() > deadline:
                self.fail(f"descriptors of peer 2: baseline {base}, now {now}")
            time.sleep(0.1)

    def run_case(self, case: Case):
        before = self.counters()
        if case.answer == "fetch":
            self.assertFetchAnswered(case.name, case.data)
        else:
            reply, end, took = talk(self.addr, case.data, shut=case.shut,
                                    wait=0.5 if case.answer == "silent" else 5.0)
            if case.answer == "silent":
                self.assertEqual(reply, b"")
                self.assertEqual(end, "open", "a well-formed GET leaves its link open")
            else:
                self.assertEqual(reply, error_line(case.code, case.why))
                self.assertIn(end, ("closed", "reset"), "the connection must be closed")
                self.assertLess(took, PROMPT_S, "the reply and close must come at once")
        after = self.counters()
        self.assertEqual(after["malformed_dropped"] - before["malformed_dropped"],
                         1 if case.counted else 0, "malformed_dropped")
        if case.counter:
            self.assertEqual(after[case.counter] - before[case.counter], 1, case.counter)
        self.assertFetchAnswered(case.name)

    # --- the tests ---
    def test_table_of_malformed_messages(self):
        rows = table(self.ctx)
        self.assertEqual(len({r.data for r in rows}), len(rows), "every row is a distinct input")
        self.assertEqual(len({(r.group, r.name) for r in rows}), len(rows), "names are distinct")
        n_malformed = sum(r.counted for r in rows)
        self.assertGreaterEqual(n_malformed, 60)
        base = self.baseline_fds()
        start = self.counters()["malformed_dropped"]
        groups = list(dict.fromkeys(r.group for r in rows))
        for g in groups:
            for case in (r for r in rows if r.group == g):
                with self.subTest(group=g, case=case.name):
                    self.run_case(case)
            with self.subTest(group=g, check="a real get still routes"):
                self.assertServes(f"group {g!r}")
        self.assertEqual(self.counters()["malformed_dropped"] - start, n_malformed)
        self.assertTrue(self.n.alive(self.PEER))
        self.assertFdsBack(base)
        print(f"\n{len(rows)} rows, {n_malformed} malformed, in {len(groups)} groups")

    def test_every_prefix_of_a_get_and_a_found(self):
        base = self.baseline_fds()
        start = self.counters()["malformed_dropped"]
        sent = 0
        for verb, pairs in (("GET", self.ctx.get), ("FOUND", self.ctx.found)):
            msg = line(verb, pairs)
            for cut in range(len(msg)):  # every proper prefix, the empty one too
                reply, end, took = talk(self.addr, msg[:cut], shut=True)
                want = error_line("malformed", CUT) if cut else b""
                if reply != want or end != "closed" or took >= PROMPT_S:
                    self.fail(f"{verb} cut after {cut} bytes: {reply!r} {end} {took:.2f}s")
                sent += cut > 0
                if cut % 32 == 0:
                    self.assertFetchAnswered(f"{verb} cut after {cut} bytes")
            self.assertServes(f"every prefix of a {verb}")
        self.assertEqual(self.counters()["malformed_dropped"] - start, sent)
        self.assertFdsBack(base)
        print(f"\n{sent} cut messages")

    def test_header_that_never_ends_is_cut_at_the_deadline(self):
        # A short header deadline for this test: peer 2 restarted with io_timeout_ms = 1500.
        self.n.kill(self.PEER, 15)
        ini = self.n.dir / f"peer-{self.PEER}.ini"
        ini.write_text(ini.read_text() + "\n[limits]\nio_timeout_ms = 1500\n")
        self.n.restart(self.PEER)
        r = self.n.peer(self.PEER, "config", "--json")
        self.assertOk(r)
        timeout = json.loads(r.stdout)["io_timeout_ms"] / 1000
        self.assertEqual(timeout, 1.5)
        before = self.counters()
        msg = line("GET", self.ctx.get)
        closed = {}

        def trickle():
            with socket.create_connection(self.addr, timeout=5) as s:
                t0 = time.monotonic()
                for b in msg[:-1]:  # never the newline
                    try:
                        s.sendall(bytes([b]))
                    except (BrokenPipeError, ConnectionResetError):
                        break
                    if select.select([s], [], [], 0.1)[0]:
                        try:
                            closed["reply"] = s.recv(4096)
                        except ConnectionResetError:
                            closed["reply"] = b""
                        break
                closed["after"] = time.monotonic() - t0

        t = threading.Thread(target=trickle)
        t.start()
        time.sleep(0.3)
        self.assertFetchAnswered("a header trickling in")  # other connections are served meanwhile
        t.join(timeout + 10)
        self.assertFalse(t.is_alive())
        self.assertEqual(closed.get("reply"), b"", "cut without a reply")
        self.assertGreaterEqual(closed["after"], timeout - 0.05)
        self.assertLess(closed["after"], timeout + 1.0)
        after = self.counters()
        self.assertEqual(after["timeouts"] - before["timeouts"], 1)
        self.assertEqual(after["malformed_dropped"], before["malformed_dropped"])
        self.assertIn("header not completed in time, closed", self.n.log(self.PEER))
        self.assertServes("a header that never ended")


if __name__ == "__main__":
    unittest.main()
