#!/usr/bin/env python3
"""make_corpus.py - writes the seed corpora under fuzz/corpus/<target>/.

Seeds are real inputs of each parser: the messages of every verb as
docs/PROTOCOL.md shows them, a manifest and a state file in the formats the
peer writes, zip archives shaped like the ones a holder sends (made with
zipfile) plus the classic hostile ones, the INI files of configs/, and
control lines. Deterministic (fixed dates, no randomness), so running it
again changes nothing; scripts/fuzz never writes into these folders.
    python3 fuzz/make_corpus.py
"""
import hashlib
import io
import os
import pathlib
import re
import stat
import warnings
import zipfile

FUZZ = pathlib.Path(__file__).resolve().parent
ROOT = FUZZ.parent
CORPUS = FUZZ / "corpus"


def md5(b):
    return hashlib.md5(b).hexdigest()


def write(target, name, data):
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    (d / name).write_bytes(data)


MD5 = md5(b"hello world\n")
QID = "7f2a90c3d1e4b5a6"


def msg_seeds():
    lines = {
        "get": f"FLOOD/1 GET qid={QID} ttl=3 hops=1 origin=127.0.0.1:10811 from=127.0.0.1:10812 name=3.txt\n",
        "get_encoded": f"FLOOD/1 GET qid={QID} ttl=15 hops=0 origin=peer-a.local:1 from=127.0.0.1:65535 name=my%20file%25%C3%A9.txt\n",
        "found": f"FLOOD/1 FOUND qid={QID} hops=2 holder=127.0.0.1:10813 peer=3 kind=file size=12 md5={MD5} path=docs/3.txt name=3.txt\n",
        "found_folder": f"FLOOD/1 FOUND qid={QID} hops=1 holder=localhost:10812 peer=65535 kind=folder size=0 md5={MD5} path=a/b%20c name=b%20c\n",
        "request": f"FLOOD/1 REQUEST path=docs/3.txt md5={MD5}\n",
        "item": f"FLOOD/1 ITEM kind=file size=12 md5={MD5} len=130 zmd5={md5(b'zip')}\nPK\x03\x04body",
        "error": "FLOOD/1 ERROR code=notfound msg=no%20such%20item\n",
        "found_root": "FLOOD/1 FOUND qid=0123456789abcdef hops=1 from=127.0.0.1:4001 "
                      "holder=127.0.0.1:4001 peer=1 kind=file size=2097152 md5=" + MD5 +
                      " path=a.bin name=a.bin root=" + PROOT + "\n",
        "hashes": "FLOOD/1 HASHES path=a.bin md5=" + MD5 + " root=" + PROOT + "\n",
        "hashlist": "FLOOD/1 HASHLIST size=2097152 md5=" + MD5 + " root=" + PROOT +
                    " piece=1048576 len=64\n",
        "roots": "FLOOD/1 ROOTS path=photos/2023 md5=" + MD5 + " root=" + PROOT + "\n",
        "rootlist": "FLOOD/1 ROOTLIST md5=" + MD5 + " root=" + PROOT + " len=96\n",
        "fetch_end": "FLOOD/1 FETCH path=a.bin md5=" + MD5 + " offset=1048576 chunk=1048576 "
                     "end=2097152\n",
        "fetch_nocrc": "FLOOD/1 FETCH path=a.bin md5=" + MD5 + " offset=0 chunk=1048576 "
                       "nocrc=1\n",
        "error_empty": "FLOOD/1 ERROR code=busy msg=\r\n",
        "browse_top": "FLOOD/1 BROWSE from=127.0.0.1:10811 offset=0\n",
        "watch": "FLOOD/1 WATCH from=127.0.0.1:10811 path=Course%20Notes\n",
        "changed": "FLOOD/1 CHANGED path=Course%20Notes md5=" + MD5 + "\n",
        "changed_gone": "FLOOD/1 CHANGED path=notes\n",
        "browse_path": "FLOOD/1 BROWSE from=[::1]:10811 offset=1000 path=docs/my%20notes\n",
        "listing": "FLOOD/1 LISTING peer=3 total=10000 offset=1000 count=1000 next=2000 len=123456 path=docs\n",
        "fetch": f"FLOOD/1 FETCH path=big.bin md5={MD5} offset=536870912\n",
        "fetch_chunk": f"FLOOD/1 FETCH path=big.bin md5={MD5} offset=536870912 chunk=1048576\n",
        "range": f"FLOOD/1 RANGE size=1073741824 md5={MD5} offset=536870912 chunk=4194304\n",
        "range_mode": f"FLOOD/1 RANGE size=1073741824 md5={MD5} offset=0 chunk=524288 "
                      f"mode=755\n",
        "data": "FLOOD/1 DATA idx=128 len=4194304 crc=9a3c41f0\n",
        "list": f"FLOOD/1 LIST path=photos/2023 md5={MD5}\n",
        "manifest": f"FLOOD/1 MANIFEST md5={MD5} len=58\nD sub\nF 12 {MD5} sub/a.txt\n",
        "busy": "FLOOD/1 BUSY retry=2000\n",
        "busy_max": "FLOOD/1 BUSY retry=600000\r\n",
        "unknown_key": f"FLOOD/1 REQUEST path=x md5={MD5} future=1\n",
        "two_lines": f"FLOOD/1 REQUEST path=x md5={MD5}\nFLOOD/1 DATA idx=0 len=1 crc=00000000\n",
        "version": "FLOOD/2 GET qid=0 ttl=1\n",
        "partial": "FLOOD/1 GET qid=7f2a",
        "hello": "FLOOD/1 HELLO from=127.0.0.1:10812 peer=2\n",
        "challenge": "FLOOD/1 CHALLENGE from=127.0.0.1:10811 nonce=0123456789abcdef0123456789abcdef\n",
        "prove": "FLOOD/1 PROVE from=127.0.0.1:10812 nonce=0123456789abcdef0123456789abcdef\n",
        # IPv6 peers: every address in the bracket form
        "get_v6": f"FLOOD/1 GET qid={QID} ttl=3 hops=1 origin=[::1]:10811 from=[2001:db8::2]:10812 name=3.txt\n",
        "found_v6": f"FLOOD/1 FOUND qid={QID} hops=2 holder=[::1]:10813 peer=3 kind=file size=12 md5={MD5} path=docs/3.txt name=3.txt\n",
        "hello_v6": "FLOOD/1 HELLO from=[::1]:10812 peer=2\n",
        "challenge_v6": "FLOOD/1 CHALLENGE from=[0:0::1]:10811 nonce=0123456789abcdef0123456789abcdef\n",
        "hello_v6_bare": "FLOOD/1 HELLO from=::1:10812 peer=2\n",
        # a send (issue 13): the offer and the receiver's answers
        "offer": f"FLOOD/1 OFFER name=1.txt kind=file size=12 md5={MD5} holder=127.0.0.1:10811 peer=1\n",
        "offer_root": f"FLOOD/1 OFFER name=a.bin kind=file size=2097152 md5={MD5} holder=[::1]:10811 peer=1 root={PROOT}\n",
        "offer_folder": f"FLOOD/1 OFFER name=my%20album kind=folder size=66404 md5={MD5} holder=127.0.0.1:10811 peer=65535\n",
        "offer_dotdot": f"FLOOD/1 OFFER name=.. kind=file size=12 md5={MD5} holder=127.0.0.1:10811 peer=1\n",
        "offer_abs": f"FLOOD/1 OFFER name=%2Fetc%2Fpasswd kind=file size=12 md5={MD5} holder=127.0.0.1:10811 peer=1\n",
        "accept": "FLOOD/1 ACCEPT offset=4194304\n",
        "progress": "FLOOD/1 PROGRESS offset=8388608 size=25165824\n",
        "done": f"FLOOD/1 DONE size=12 md5={MD5} len=12 offset=0\n",
    }
    for k, v in lines.items():
        write("msg", k, v)
        if k.startswith("offer"):  # fuzz_offer: 8 bytes of receiver state, then the header
            write("offer", k, b"\x01\x00\x10\x00\x00\x00\x00\x00" + v.encode())
            write("offer", k + "_none", b"\x00" * 8 + v.encode())


def manifest_text(entries):
    return "".join(entries).encode()


def manifest_seeds():
    a, b = b"hello world\n", b"\x00" * 100
    write("manifest", "folder", manifest_text([
        "D empty\n",
        f"F {len(a)} {md5(a)} hello.txt\n",
        "D sub\n",
        "D sub/deeper\n",
        f"F {len(b)} {md5(b)} sub/deeper/zeros.bin\n",
        f"F 0 {md5(b'')} sub/empty.txt\n",
        f"F {len(a)} {md5(a)} sub/h%C3%A9llo.txt\n",
    ]))
    write("manifest", "utf8", f"F 3 {md5(b'abc')} caf\u00e9 \u2603.txt\n")
    write("manifest", "empty", b"")
    write("manifest", "big_size", f"F 18446744073709551615 {MD5} huge.bin\n")
    write("manifest", "unsorted", f"F 1 {MD5} b\nF 1 {MD5} a\n")
    write("manifest", "orphan", f"F 1 {MD5} nodir/a\n")


def state_seeds():
    hdr = f"floodshare-partial 1\nname big%20file.bin\nsize 10485760\nmd5 {MD5}\nchunk 4194304\n"
    write("state", "fresh", hdr)
    write("state", "holder_chunks", hdr + "holder 127.0.0.1:10813\nc 0 9a3c41f0\nc 1 0000000b\n")
    write("state", "holder_mode", hdr + "holder 127.0.0.1:10813\nmode 755\nc 0 9a3c41f0\n")
    write("state", "all_chunks", hdr + "holder peer-3:10813\nc 0 9a3c41f0\nc 1 0000000b\nc 2 ffffffff\n")
    write("state", "torn_last_line", hdr + "c 0 9a3c41f0\nc 1 0000")
    write("state", "empty_file", "floodshare-partial 1\nname e\nsize 0\nmd5 "
          f"{md5(b'')}\nchunk 4194304\n")
    write("state", "small_chunks", f"floodshare-partial 1\nname my%20file.bin\nsize 150000\nmd5 {MD5}\n"
          "chunk 65536\nholder 127.0.0.1:4000\nc 0 0000000a\nc 1 0000000b\n")
    write("state", "chunk_1m", f"floodshare-partial 1\nname big%20file.bin\nsize 10485760\nmd5 {MD5}\n"
          "chunk 1048576\nholder 127.0.0.1:10813\nc 0 9a3c41f0\nc 1 0000000b\n")
    hdr2 = (f"floodshare-partial 2\nname big%20file.bin\nsize 10485760\nmd5 {MD5}\npiece 524288\n"
            f"root {'5e' * 32}\n")
    write("state", "v2_fresh", hdr2)
    write("state", "v2_any_order", hdr2 + "holder 127.0.0.1:10813\nmode 644\np 7\np 0\np 19\np 3\n")
    write("state", "v2_repeated_torn", hdr2 + "p 1\np 1\np 2")
    write("state", "v2_small_pieces", f"floodshare-partial 2\nname my%20file.bin\nsize 150000\nmd5 {MD5}\n"
          f"piece 65536\nroot {'0f' * 32}\np 2\np 0\n")
    write("state", "v2_empty_file", "floodshare-partial 2\nname e\nsize 0\nmd5 "
          f"{md5(b'')}\npiece 524288\nroot {'ab' * 32}\n")
    write("state", "no_chunk_line", f"floodshare-partial 1\nname big%20file.bin\nsize 10485760\nmd5 {MD5}\n"
          "holder 127.0.0.1:10813\nc 0 9a3c41f0\n")


FIXED = (2024, 1, 2, 3, 4, 6)


def zinfo(name, mode=0o644, system=3):
    zi = zipfile.ZipInfo(name, FIXED)
    zi.create_system = system
    zi.external_attr = mode << 16
    zi.flag_bits |= 0x800
    return zi


def zip_bytes(entries, method=zipfile.ZIP_DEFLATED):
    """entries: (name, data or None for a folder, mode)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data, mode in entries:
            zi = zinfo(name, mode)
            if data is None:
                zi.external_attr |= 0x10
                z.writestr(zi, b"")
            else:
                zi.compress_type = method
                z.writestr(zi, data)
    return buf.getvalue()


def zip_seeds():
    reg, dr = stat.S_IFREG | 0o644, stat.S_IFDIR | 0o755
    write("zip", "file", zip_bytes([("3.txt", b"hello world\n", reg)]))
    write("zip", "file_stored", zip_bytes([("3.txt", b"hello world\n", reg)], zipfile.ZIP_STORED))
    write("zip", "folder", zip_bytes([
        ("docs/", None, dr), ("docs/a.txt", b"alpha\n" * 20, reg), ("docs/empty/", None, dr),
        ("docs/sub/", None, dr), ("docs/sub/b.bin", bytes(range(256)), reg),
        ("docs/sub/caf\u00e9.txt", b"", reg)]))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:  # zip64 extra fields, as the holder always writes
        zi = zinfo("big.txt", reg)
        zi.compress_type = zipfile.ZIP_DEFLATED
        with z.open(zi, "w", force_zip64=True) as f:
            f.write(b"0123456789" * 50)
    write("zip", "zip64", buf.getvalue())
    write("zip", "bad_traversal", zip_bytes([("a/", None, dr), ("a/../../evil", b"x", reg)]))
    write("zip", "bad_absolute", zip_bytes([("/tmp/evil", b"x", reg)]))
    write("zip", "bad_symlink", zip_bytes([("a/", None, dr),
                                           ("a/link", b"/etc/passwd", stat.S_IFLNK | 0o777)],
                                          zipfile.ZIP_STORED))
    write("zip", "bad_two_tops", zip_bytes([("a", b"1", reg), ("b", b"2", reg)]))
    write("zip", "bad_duplicate", zip_bytes([("a/", None, dr), ("a/x", b"1", reg),
                                             ("a/x", b"2", reg)]))
    write("zip", "bad_file_as_folder", zip_bytes([("a/", None, dr), ("a/x", b"1", reg),
                                                  ("a/x/y", b"2", reg)]))
    write("zip", "bad_backslash", zip_bytes([("a\\..\\evil", b"x", reg)]))
    write("zip", "bad_bomb", zip_bytes([("z.bin", b"\x00" * (2 << 20), reg)]))


def cfg_seeds():
    for ini in sorted((ROOT / "configs").glob("*.ini")):
        text = ini.read_text()
        write("cfg", ini.stem, text)
        # The fuzzer's folder has a "share" folder: this one gets past share_dir.
        write("cfg", ini.stem + "_share", re.sub(r"(?m)^share_dir = .*$", "share_dir = share", text))
    write("cfg", "limits", "[peer]\nid = 7\nhost = localhost\nport = 4000\nshare_dir = share\n"
          "ttl = 2\nlog_level = debug\n[neighbours]\npeers = 127.0.0.1:4001, h-2.local:4002\t10.0.0.1:1\n"
          "[limits]\nworkers = 256\nmax_queue = 1\nio_timeout_ms = 100\nconnect_timeout_ms = 60000\n"
          "hit_window_ms = 10\nquery_cache_size = 1048576\nquery_cache_ttl_ms = 1000\nmax_ttl = 2\n")
    write("cfg", "rates", "[peer]\nid = 7\nhost = localhost\nport = 4000\nshare_dir = share\n"
          "[limits]\nupload_rate = 40M\ndownload_rate = 1536k\n")
    write("cfg", "bad_rate", "[peer]\nid = 7\nhost = localhost\nport = 4000\nshare_dir = share\n"
          "[limits]\nupload_rate = 4MB\n")
    write("cfg", "sync", "[peer]\nid = 7\nhost = localhost\nport = 4000\nshare_dir = share\n"
          "[sync]\nCourse Notes = 2 ; teacher\nmusic = \"127.0.0.1:4001\"\ninterval = 60\n")
    write("cfg", "sync_bad", "[peer]\nid = 7\nhost = localhost\nport = 4000\nshare_dir = share\n"
          "[SYNC]\r\n.. = 7\r\nx = 99999\r\ninterval = 0\r\n")
    write("cfg", "orphan_and_crlf", "stray = 1\r\n[PEER]\r\nID = 1\r\n")
    write("cfg", "bad_line", "[peer]\nid = 1\nthis is not ini\n")
    write("cfg", "ipv6", "[peer]\nid = 7\nhost = ::1\nport = 4000\nshare_dir = share\n"
          "[neighbours]\npeers = [::1]:4001, [2001:db8::1]:4002 127.0.0.1:4003\n")
    write("cfg", "advertise", "[peer]\nid = 7\nhost = 0.0.0.0\nport = 4000\n"
          "advertise = 10.0.0.7:4000\nshare_dir = share\n[neighbours]\npeers = 10.0.0.8:4000\n")
    write("cfg", "advertise_v6", "[peer]\nid = 7\nhost = ::\nport = 4000\n"
          "advertise = [2001:db8::7]:4000\nshare_dir = share\n")
    write("cfg", "wildcard_alone", "[peer]\nid = 7\nhost = 0.0.0.0\nport = 4000\nshare_dir = share\n")


def addr_seeds():
    """HOST:PORT as an INI, the CLI and the wire write it, IPv6 in brackets, and bad forms."""
    seeds = {
        "v4": "127.0.0.1:10801", "name": "lab-pc-07.example.org:65535", "v6_loop": "[::1]:10801",
        "v6_long": "[2001:0db8:0000:0000:0000:ff00:0042:8329]:1",
        "v6_mapped": "[::ffff:192.0.2.1]:80", "v6_any": "[::]:4000",
        "v6_embedded_v4": "[64:ff9b::192.0.2.33]:443", "v6_full": "[1:2:3:4:5:6:7:8]:8",
        "host_v6": "::1", "host_v6_brackets": "[fe80::1]", "host_any": "0.0.0.0",
        "bare_v6": "::1:10801", "zone": "[fe80::1%eth0]:80", "unclosed": "[::1:80",
        "no_port": "[::1]", "double": "[::1::2]:80", "v4_in_brackets": "[127.0.0.1]:80",
        "port_0": "[::1]:0", "port_big": "127.0.0.1:65536", "trailing": "[::1]:80]",
    }
    for k, v in seeds.items():
        write("addr", k, v)


def ctl_seeds():
    lines = {
        "get": "get 3.txt --json",
        "get_encoded": "get my%20file%25.txt",
        "search": "search 3.txt",
        "ls": "ls",
        "config": "config ttl 5",
        "modify": "modify neighbours 127.0.0.1:10812%2C127.0.0.1:10813",
        "stats": "stats --json",
        "transfers": "transfers",
        "spaces": "  get   a  ",
        "too_many": " ".join(["w"] * 20),
        "progress": "done=4194304 total=10485760 resumed=0 rate=1048576 peer=3 holder=127.0.0.1:10813 name=big%20file.bin",
        "progress_resumed": "done=10 total=10 resumed=4 rate=0 peer=65535 holder=localhost:1 name=a",
        "progress_sources": "done=451000000 total=1100000000 resumed=0 rate=158300000 peer=2 holder=127.0.0.1:10812 sources=4 name=big.iso",
        "progress_sources_bad": "done=1 total=2 resumed=0 rate=0 peer=2 holder=h:1 sources=0 name=a",
    }
    for k, v in lines.items():
        write("ctl", k, v)


def http_seeds():
    heads = {
        "get_root": "GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n",
        "get_events": "GET /events HTTP/1.1\r\nHost: localhost:8080\r\nAccept: text/event-stream\r\n\r\n",
        "get_token": "GET /api/peers?token=0123456789abcdef0123456789abcdef HTTP/1.0\r\nHost: 10.0.0.1\r\n\r\n",
        "post_cmd": "POST /api/cmd HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nX-Floodshare: 1\r\n"
                    "X-Floodshare-Token: abc\r\nContent-Length: 27\r\n\r\npeer 2 get '4.txt' --json",
        "bare_lf": "GET /app.js HTTP/1.1\nHost: 127.0.0.1\n\n",
        "chunked": "POST /api/cmd HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
        "huge_length": "POST /api/cmd HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
        "topo-link": "link 2 5",
        "topo-add": "add-peer --files new.txt box/ 'my notes.txt'",
        "topo-bad": "add-peer --files big.bin:size=1G --run /etc",
        "http2": "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        "cookie": "GET /events HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nCookie: a=1; floodshare_web_8080="
                  "\"0123456789abcdef\"; floodshare_web_8080=x\r\ncookie:a=2\r\n\r\n",
        "bearer": "POST /api/cmd HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nAuthorization: Bearer  "
                  "0123456789abcdef\r\nX-Floodshare: 1\r\nContent-Length: 19\r\n\r\n"
                  "peer 1 modify ttl 2",
        "login": "GET /?speed=4&token=0123456789abcdef HTTP/1.1\r\nHost: localhost:8080\r\n"
                 "Authorization: Basic YTpi\r\n\r\n",
    }
    for k, v in heads.items():
        write("http", k, v)


def trace_seeds():
    """Event lines as a peer's `watch --raw` / `events --raw` sends them
    (after the "E "), one of each kind, and the classic bad ones."""
    q = "4d782a6673987d51"
    lines = {
        "peer_up": "type=peer_up ts=1764900000000000 seq=1 peer=1 addr=127.0.0.1:10811 ttl=4 count=2 reason=start",
        "received": f"type=received ts=1764900000100000 seq=7 peer=2 addr=127.0.0.1:10812 qid={q} "
                    "name=my%20file.txt from=127.0.0.1:10811 from_peer=1 origin=127.0.0.1:10811 ttl=3 hops=1",
        "found_sent": f"type=found_sent ts=1764900000200000 seq=9 peer=3 addr=127.0.0.1:10813 qid={q} "
                      f"name=3.txt to=127.0.0.1:10812 origin=127.0.0.1:10811 holder=3 hops=2 size=12 md5={MD5}",
        "transfer_failed": "type=transfer_failed ts=1764900000300000 seq=12 peer=1 addr=localhost:1 "
                           f"name=big.bin from=h-3.local:10813 holder=3 role=1 bytes=4194304 size=10485760 md5={MD5} "
                           "reason=mismatch detail=the%20MD5%20differs%0A",
        "transfer_done_source": "type=transfer_done ts=1764900000400000 seq=13 peer=1 addr=127.0.0.1:10811 "
                                f"qid={q} name=big.iso from=127.0.0.1:10812 holder=2 role=1 bytes=1073741824 "
                                f"size=1073741824 source_bytes=268435456 count=512 md5={MD5}",
        "piece_received": f"type=piece_received ts=1764900000350000 seq=14 peer=1 addr=127.0.0.1:10811 qid={q} "
                          f"name=big.iso from=127.0.0.1:10815 holder=5 role=1 count=17 bytes=524288 md5={MD5}",
        "browse_served": "type=browse_served ts=1764900000500000 seq=15 peer=2 addr=127.0.0.2:10812 "
                         "name=many from=127.0.0.1:10811 bytes=9000 count=1000 size=10000",
        "browse_refused": "type=browse_refused ts=1764900000600000 seq=16 peer=2 addr=127.0.0.2:10812 "
                          "from=127.0.0.3:10813 reason=policy detail=browsing%20not%20accepted",
        "sync_done": "type=sync_done ts=1764900000500000 seq=15 peer=1 addr=127.0.0.1:10811 "
                     "name=big.bin from=127.0.0.1:10812 from_peer=2 holder=2 bytes=5767168 source_bytes=19398656 count=1",
        "sync_failed": "type=sync_failed ts=1764900000600000 seq=16 peer=1 addr=127.0.0.1:10811 "
                       "name=album from=127.0.0.1:10812 holder=2 count=3 reason=sync detail=not%20found",
        "send_failed": "type=send_failed ts=1 seq=1 peer=65535 addr=10.0.0.1:65535 msg=FOUND to=10.0.0.2:1 reason=refused",
        "lost": "type=lost ts=2 seq=3 peer=4 count=4294967295",
        "unknown_key": "type=peer_down ts=5 seq=6 peer=1 later_field=x reason=stop",
        "bad_type": "type=exploded ts=1 seq=1",
        "bad_qid": "type=received ts=1 seq=1 qid=4D782A6673987D51",
        "bad_number": "type=received ts=18446744073709551616 seq=1",
        "bad_escape": "type=received ts=1 seq=1 name=%zz",
        "bad_missing_seq": "type=received ts=1",
        "bad_long_reason": "type=dropped ts=1 seq=1 reason=" + "r" * 40,
    }
    for k, v in lines.items():
        write("trace", k, v)


def listing_seeds():
    """LISTING bodies as a holder writes them (listing.h), and broken ones."""
    root = hashlib.sha256(b"x").hexdigest()
    good = (f"f 12 {MD5} 1733400000 {root} a.txt\n"
            f"f 0 - 1733400001 - b%20c\n"
            f"d 99 {MD5} 5 - docs\n"
            f"d - - 7 - new\n")
    write("listing", "page", good)
    write("listing", "empty", "")
    write("listing", "one_file", f"f 1 {MD5} 0 - x\n")
    write("listing", "utf8_name", f"f 3 - 0 - caf%C3%A9\n")
    write("listing", "unsorted", f"f 1 - 0 - b\nf 1 - 0 - a\n")
    write("listing", "dotdot", f"f 1 - 0 - ..\n")
    write("listing", "slash", f"f 1 - 0 - a%2Fb\n")
    write("listing", "folder_root", f"d 1 - 0 {root} d\n")
    write("listing", "no_newline", f"f 1 - 0 - a")
    write("listing", "long_name", "f 1 - 0 - " + "%C3%A9" * 127 + "\n")


def sharecache_text(entries):
    """index.cache as share.c writes it (sharecache.h)."""
    body = "floodshare-index 2\n" + "".join(
        f"{dev} {ino} {size} {sec} {nsec} {m} {e[6] if len(e) > 6 else '-'}\n"
        for e in entries for dev, ino, size, sec, nsec, m in [e[:6]])
    return body + f"end {len(entries)} {md5(body.encode())}\n"


def sharecache_seeds():
    ents = [(2049, 131074, 12, 1764892800, 123456789, MD5, PROOT),
            (2049, 131075, 0, 1577836800, 0, md5(b"")),
            (64768, 9, 1073741824, -5, 999999999, md5(b"big"))]
    good = sharecache_text(ents)
    write("sharecache", "three", good)
    write("sharecache", "empty_index", sharecache_text([]))
    write("sharecache", "unsorted", sharecache_text(list(reversed(ents))))
    write("sharecache", "duplicate", sharecache_text([ents[0], ents[0]]))
    write("sharecache", "bad_checksum", good.replace(MD5, md5(b"other"), 1))
    write("sharecache", "no_end_line", good[:good.index("end ")])
    write("sharecache", "torn_last_line", good[:-7])
    write("sharecache", "version_1", good.replace("floodshare-index 2", "floodshare-index 1", 1))
    write("sharecache", "wrong_count", good.replace("end 3 ", "end 4 ", 1))
    write("sharecache", "trailing", good + "1 2 3 4 5 x\n")
    write("sharecache", "huge_numbers", sharecache_text(
        [(18446744073709551615, 18446744073709551615, 9223372036854775807,
          -9223372036854775807, 999999999, MD5)]))



def syncstate_text(frm, records):
    """.floodshare/sync/<hex of NAME>.state as syncstate.c writes it (syncstate.h)."""
    return f"floodshare-sync 1\nfrom {frm}\n" + "".join(
        f"{m} {size} {mtime} {path}\n" for m, size, mtime, path in records)


def syncstate_seeds():
    recs = [(MD5, 12, "1764892800.123456789", "music"),
            (md5(b""), 0, "-5.500000000", "music/a%20b.txt"),
            (md5(b"big"), 524288001, "1577836800.000000000", "music/sub/%C3%A9t%C3%A9.flac")]
    good = syncstate_text("127.0.0.1:4000", recs)
    write("syncstate", "three", good)
    write("syncstate", "no_records", syncstate_text("[::1]:10813", []))
    write("syncstate", "host_name", syncstate_text("peer-3.example:10813", recs[:1]))
    write("syncstate", "unsorted", syncstate_text("127.0.0.1:4000", list(reversed(recs))))
    write("syncstate", "repeated", syncstate_text("127.0.0.1:4000", [recs[0], recs[0]]))
    write("syncstate", "dotdot", syncstate_text("127.0.0.1:4000", [(MD5, 1, "0.000000000", "a/../b")]))
    write("syncstate", "absolute", syncstate_text("127.0.0.1:4000", [(MD5, 1, "0.000000000", "%2Fetc")]))
    write("syncstate", "torn_last_line", good[:-3])
    write("syncstate", "version_2", good.replace("floodshare-sync 1", "floodshare-sync 2", 1))
    write("syncstate", "long_name", syncstate_text("127.0.0.1:4000", [
        (MD5, 1, "0.000000000", "d/" + "%C3%A9" * 120 + ".txt")]))
    write("syncstate", "huge_numbers", syncstate_text("127.0.0.1:65535", [
        (MD5, 9223372036854775807, "-9223372036854775807.999999999", "x")]))

PROOT = "b142540ea694b6ad8393c36d8a94fb0aa2865717af0ac6319544bc0a8a36e3e9"


def pieces_file(data, piece):
    """A piece list file as pieces_save_at() writes it (pieces.h)."""
    hs = b"".join(hashlib.sha256(data[i:i + piece]).digest()
                  for i in range(0, len(data), piece))
    root = hashlib.sha256(b"floodshare-pieces 1 %d %d\n" % (len(data), piece) + hs).hexdigest()
    return b"floodshare-pieces 1 %d %d %s\n" % (len(data), piece, root.encode()) + hs


def pieces_seeds():
    data = bytes((i * 7 + 3) & 255 for i in range(3 * 65536 + 100))
    good = pieces_file(data, 65536)
    write("pieces", "four_pieces", good)
    write("pieces", "empty_file", pieces_file(b"", 1048576))
    write("pieces", "one_piece", pieces_file(b"hello", 1048576))
    write("pieces", "tampered", good[:-1] + bytes([good[-1] ^ 1]))
    write("pieces", "short", good[:-32])
    write("pieces", "long", good + bytes(32))
    write("pieces", "bad_piece", good.replace(b" 65536 ", b" 65535 ", 1))
    write("pieces", "huge_size", pieces_file(b"", 1048576).replace(b" 0 ", b" 18446744073709551615 ", 1))
def fp_seeds():
    """[security] trusted values: fingerprints as `floodshare keygen` prints them
    (SHA256: + unpadded base64 of 32 bytes), lists of them, and the ways one goes wrong."""
    import base64
    fps = ["SHA256:" + base64.b64encode(hashlib.sha256(bytes([i])).digest()).decode().rstrip("=")
           for i in range(3)]
    write("fp", "one", fps[0])
    write("fp", "list", ", ".join(fps))
    write("fp", "list_tabs", "\t".join(fps) + " ,")
    write("fp", "duplicate", f"{fps[0]},{fps[0]}")
    write("fp", "padded", fps[0] + "=")
    write("fp", "short", fps[0][:-1])
    write("fp", "md5_prefix", fps[0].replace("SHA256:", "MD5:"))
    write("fp", "last_char_impossible", fps[0][:-1] + "V")
    write("fp", "url_safe", fps[1].replace("+", "-").replace("/", "_"))
    write("fp", "too_many", ",".join(
        "SHA256:" + base64.b64encode(hashlib.sha256(bytes([i, 1])).digest()).decode().rstrip("=")
        for i in range(65)))


if __name__ == "__main__":
    warnings.simplefilter("ignore")  # the duplicate-name seed is on purpose
    msg_seeds()
    addr_seeds()
    manifest_seeds()
    state_seeds()
    zip_seeds()
    cfg_seeds()
    ctl_seeds()
    http_seeds()
    trace_seeds()
    sharecache_seeds()
    listing_seeds()
    pieces_seeds()
    fp_seeds()
    syncstate_seeds()
    for d in sorted(CORPUS.iterdir()):
        print(f"{d.name}: {len(list(d.iterdir()))} seeds")
