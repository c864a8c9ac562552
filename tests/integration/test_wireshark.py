"""The Wireshark dissector (tools/wireshark/floodshare.lua), run by tshark.

LiveFloodTest captures a real flood on the loopback device (only the peers' own ports) and checks
that every message the peers sent is decoded with the values the peers report: the GET as sent
and as forwarded, the FOUND on its way back, FETCH/RANGE and one DATA frame per 512 KiB chunk of a
file with the chunk's length and CRC-32, REQUEST/ITEM for a small folder, and a search.

CraftedStreamTest writes a capture by hand (pcap records of fake TCP streams on 127.0.0.1; no
packet is sent anywhere) whose segments cut messages at the awkward places: two messages in one
segment, a header split in two, DATA bodies spread over segments (some captured out of order)
and ending mid-segment, bodies that contain text looking like a header, and malformed headers
that must be flagged.

Both skip, saying why, when tshark (or, for the capture, dumpcap or root) is not available:
scripts/deps installs tshark.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import time
import unittest
import zlib
from pathlib import Path

from fsnet import SRC, NetCase, last_json, make_big_file

LUA = SRC / "tools" / "wireshark" / "floodshare.lua"
CHUNK = 512 * 1024  # the chunk a get asks for and a holder grants (XFER_FETCH_CHUNK; PROTOCOL.md)


def tshark_problem() -> str | None:
    """Why tshark cannot run the dissector here, or None."""
    if not shutil.which("tshark"):
        return "tshark is not installed (scripts/deps installs it: apt-get install tshark)"
    try:
        r = subprocess.run(["tshark", "-v"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"tshark does not run: {e}"
    if r.returncode != 0:
        return f"tshark -v failed: {r.stderr.strip()}"
    if "with Lua" not in r.stdout:
        return "this tshark was built without Lua, so it cannot load a Lua dissector"
    return None


def tshark(cap: Path, *args: str, timeout: float = 120) -> str:
    """Runs tshark with the dissector over cap and returns its standard output. Fails when
    tshark fails or the dissector's Lua raised an error while loading. Two TCP preferences
    are set as tools/wireshark/README.md tells students to: heuristics go first (a peer's port
    picked by the OS may be another protocol's registered port, 57000 is IRC's, and only the
    first bytes of a stream tell FLOOD/1 apart), and out-of-order segments are reassembled (on
    lo a fast transfer is now and then captured out of order, and without this the DATA frame
    with the gap is never put together)."""
    r = subprocess.run(["tshark", "-n", "-r", str(cap), "-X", f"lua_script:{LUA}",
                        "-o", "tcp.try_heuristic_first:TRUE",
                        "-o", "tcp.reassemble_out_of_order:TRUE", *args],
                       capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0 or "Lua: Error" in r.stderr or "lua_script" in r.stderr:
        raise AssertionError(f"tshark {' '.join(args)} failed ({r.returncode}):\n{r.stderr}")
    return r.stdout


def _experts(node) -> list[str]:
    """The expert-info messages anywhere below one node of tshark's JSON tree."""
    out = []
    if isinstance(node, list):
        for n in node:
            out += _experts(n)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key == "_ws.expert.message":
                out += value if isinstance(value, list) else [value]
            else:
                out += _experts(value)
    return out


def _fields(node: dict) -> dict:
    """The floodshare.* fields of one message's JSON tree, sub-trees (the body's manifest
    lines, its CRC verdict) included, without the 'floodshare.' prefix."""
    out = {}
    for key, value in node.items():
        if key.endswith("_tree"):
            for sub in value if isinstance(value, list) else [value]:
                out.update(_fields(sub))
        elif key.startswith("floodshare."):
            out[key[len("floodshare."):]] = value
    return out


def decoded(cap: Path, *args: str) -> list[dict]:
    """Every FLOOD/1 message tshark decodes in cap, in order, as {frame, sport, fields,
    experts}: the frame that ends the message, its TCP source port, the message's fields
    (without the 'floodshare.' prefix) and the expert-info messages found in its tree (only
    the dissector's own: TCP's are not in it). A frame that ends several messages gives one
    entry for each; bytes that are no message (not FLOOD/1, a header with no end) give an
    entry without a verb."""
    ports = {}
    for line in tshark(cap, *args, "-Y", "floodshare", "-T", "fields", "-e", "frame.number",
                       "-e", "tcp.srcport").splitlines():
        num, sport = line.split("\t")
        ports[int(num)] = int(sport)
    out = []
    frames = json.loads(tshark(cap, *args, "-Y", "floodshare", "-T", "json",
                               "--no-duplicate-keys", "-J", "frame floodshare") or "[]")
    for fr in frames:
        layers = fr["_source"]["layers"]
        num = int(layers["frame"]["frame.number"])
        msgs = layers["floodshare"]
        for m in msgs if isinstance(msgs, list) else [msgs]:
            fields = _fields(m)
            fields.pop("body", None)  # the bytes themselves: their length is `len`
            out.append({"frame": num, "sport": ports[num], "fields": fields,
                        "experts": _experts(m)})
    return out


def lua_errors(cap: Path, *args: str) -> str:
    """Frames where the dissector raised a Lua error, or an exception cut a dissection short
    (a malformed FLOOD/1 header is flagged by expert info, never by an exception)."""
    return tshark(cap, *args, "-Y", "_ws.lua.error || _ws.malformed.expert || "
                  "_ws.malformed.dissector_bug || _ws.malformed.reassembly")


# --------------------------------------------------------------------------- a crafted capture

class PcapWriter:
    """A classic pcap file of raw IPv4 packets (linktype 101), written record by record."""

    def __init__(self, path: Path):
        self.f = open(path, "wb")
        self.f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 101))
        self.t = 1_700_000_000.0

    def packet(self, data: bytes) -> None:
        self.t += 0.001
        sec = int(self.t)
        self.f.write(struct.pack("<IIII", sec, int((self.t - sec) * 1e6), len(data), len(data)))
        self.f.write(data)

    def close(self) -> None:
        self.f.close()


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


class FakeTcp:
    """One TCP connection between two ports of 127.0.0.1, as packets in a PcapWriter: a
    handshake, then segments from either side with the right sequence numbers."""

    def __init__(self, pcap: PcapWriter, cport: int, sport: int):
        self.pcap, self.ports = pcap, {"c": (cport, sport), "s": (sport, cport)}
        self.seq = {"c": 1000, "s": 5000}
        self._send("c", b"", 0x02)  # SYN
        self._send("s", b"", 0x12)  # SYN, ACK
        self._send("c", b"", 0x10)  # ACK

    def _send(self, side: str, payload: bytes, flags: int) -> None:
        other = "s" if side == "c" else "c"
        src, dst = self.ports[side]
        ip = socket.inet_aton("127.0.0.1")
        ack = self.seq[other] if flags != 0x02 else 0
        tcp = struct.pack("!HHIIBBHHH", src, dst, self.seq[side], ack, 5 << 4, flags, 65535, 0, 0)
        csum = _checksum(ip + ip + struct.pack("!BBH", 0, 6, len(tcp) + len(payload)) + tcp + payload)
        tcp = tcp[:16] + struct.pack("!H", csum) + tcp[18:]
        hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp) + len(payload), 1, 0x4000, 64,
                          6, 0, ip, ip)
        hdr = hdr[:10] + struct.pack("!H", _checksum(hdr)) + hdr[12:]
        self.pcap.packet(hdr + tcp + payload)
        self.seq[side] = (self.seq[side] + len(payload) + (1 if flags & 0x03 else 0)) & 0xFFFFFFFF

    def client(self, payload: bytes) -> None:
        self._send("c", payload, 0x18)  # PSH, ACK

    def server(self, payload: bytes) -> None:
        self._send("s", payload, 0x18)

    def server_reordered(self, parts: list[bytes], order: list[int]) -> None:
        """Consecutive server segments captured in another order (order lists the indexes of
        parts as captured), as a fast transfer on lo now and then is."""
        start = self.seq["s"]
        for i in order:
            self.seq["s"] = (start + sum(len(p) for p in parts[:i])) & 0xFFFFFFFF
            self._send("s", parts[i], 0x10)
        self.seq["s"] = (start + sum(len(p) for p in parts)) & 0xFFFFFFFF


QID1, QID2, QID3 = "7f2a90c3d1e4b5a6", "0123456789abcdef", "fedcba9876543210"
MD5 = "6f5902ac237024bdd0c176cb93063dc4"
GET1 = (f"FLOOD/1 GET qid={QID1} ttl=3 hops=1 origin=127.0.0.1:10811 from=127.0.0.1:10812 "
        f"name=3.txt\n").encode()
GET2 = (f"FLOOD/1 GET qid={QID2} ttl=2 hops=0 origin=127.0.0.1:10811 from=127.0.0.1:10811 "
        f"name=my%20notes%25.txt\n").encode()
FOUND = (f"FLOOD/1 FOUND qid={QID1} hops=2 from=127.0.0.1:10812 holder=127.0.0.1:10813 peer=3 "
         f"kind=file size=12 md5={MD5} path=docs/3.txt name=3.txt\n").encode()
GET3 = (f"FLOOD/1 GET qid={QID3} ttl=15 hops=4 origin=127.0.0.1:10811 from=127.0.0.1:10814 "
        f"name=%C3%A9t%C3%A9.txt\r\n").encode()  # "été.txt", and "\r\n" is accepted too
# DATA bodies that hold text looking like a header: only `len` may decide where a body ends.
BODY0 = b"\nFLOOD/1 GET qid=0000000000000000 ttl=1\n" + bytes(range(256)) * 4
BODY1 = b"FLOOD/1 DATA idx=9 len=1 crc=00000000\n" + b"tail"
BODY2 = b"this chunk does not match its crc"
MANIFEST = (f"D sub\nF 12 {MD5} a b.txt\nF 3 {MD5} sub/c.txt\n").encode()


def data_frame(idx: int, body: bytes, crc: int | None = None) -> bytes:
    crc = zlib.crc32(body) if crc is None else crc
    return f"FLOOD/1 DATA idx={idx} len={len(body)} crc={crc:08x}\n".encode() + body


def write_crafted(path: Path) -> None:
    """The streams CraftedStreamTest expects (its EXPECTED lists them message by message)."""
    pcap = PcapWriter(path)

    # 41001: a kept-open link. Two GETs in one segment; a FOUND split inside its header; a
    # whole GET followed by the first 9 bytes of the next one, then the rest of it.
    link = FakeTcp(pcap, 50001, 41001)
    link.client(GET1 + GET2)
    link.server(FOUND[:57])
    link.server(FOUND[57:])
    link.client(GET1 + GET3[:9])
    link.client(GET3[9:])

    # 41002: FETCH, then RANGE and DATA frames cut anywhere: a segment ends 3 bytes into a
    # body, the next two are all body (captured in the wrong order), the next ends one body and
    # half the next header, and the last finishes that header, its body, and a whole third
    # frame (with a wrong crc).
    fetch = FakeTcp(pcap, 50002, 41002)
    fetch.client(f"FLOOD/1 FETCH path=docs/big.bin md5={MD5} offset=0\n".encode())
    rng = f"FLOOD/1 RANGE size={len(BODY0) + len(BODY1) + len(BODY2)} md5={MD5} offset=0 chunk={len(BODY0)}\n".encode()
    d0, d1, d2 = data_frame(0, BODY0), data_frame(1, BODY1), data_frame(2, BODY2, crc=0x12345678)
    cut0 = d0.index(b"\n") + 1 + 3
    fetch.server(rng + d0[:cut0])
    fetch.server_reordered([d0[cut0:cut0 + 200], d0[cut0 + 200:cut0 + 350],
                            d0[cut0 + 350:cut0 + 500]], [2, 0, 1])
    fetch.server(d0[cut0 + 500:] + d1[:20])
    fetch.server(d1[20:] + d2)

    # 41003: LIST answered by a MANIFEST whose text comes in two segments, then an ERROR.
    lst = FakeTcp(pcap, 50003, 41003)
    lst.client(f"FLOOD/1 LIST path=album md5={MD5}\n".encode())
    man = f"FLOOD/1 MANIFEST md5={MD5} len={len(MANIFEST)}\n".encode() + MANIFEST
    lst.server(man[:70])
    lst.server(man[70:])
    lst.client(f"FLOOD/1 FETCH path=album/a%20b.txt md5={MD5} offset=0\n".encode())
    lst.server(b"FLOOD/1 ERROR code=notfound msg=no%20such%20item\n")

    # 41004: malformed headers, after a first line good enough for the heuristic to take the
    # stream: bad values and a bad escape, a double space and missing keys, an unknown verb,
    # then a header of 2100 bytes and no newline.
    bad = FakeTcp(pcap, 50004, 41004)
    bad.client(b"FLOOD/1 GET qid=XYZ ttl=300 hops=0 origin=127.0.0.1:1 from=127.0.0.1:1 name=bad%zz\n")
    bad.client(f"FLOOD/1 FOUND qid={QID1}  hops=1\n".encode())
    bad.client(b"FLOOD/1 HELLO x=1\n")
    long = b"FLOOD/1 GET name=" + b"a" * 2100
    bad.client(long[:1200])
    bad.client(long[1200:])

    # 41005: not FLOOD/1 from the start, so only Decode As (or the ports preference) decodes it.
    other = FakeTcp(pcap, 50005, 41005)
    other.client(f"FLOOD/2 GET qid={QID1} ttl=3\n".encode())
    other.client(b"HELLO this is not floodshare\n")
    pcap.close()


# Every message in the crafted capture, in order: the TCP source port, fields that must match,
# and the expert info it must carry (exactly these; none for a well-formed message).
FOUND_MISSING = [f"FOUND without {k}" for k in
                 ("from", "holder", "peer", "kind", "size", "md5", "path", "name")]
EXPECTED = [
    (50001, {"verb": "GET", "qid": QID1, "ttl": "3", "hops": "1", "name": "3.txt",
             "origin": "127.0.0.1:10811", "from": "127.0.0.1:10812"}, []),
    (50001, {"verb": "GET", "qid": QID2, "ttl": "2", "hops": "0", "name": "my notes%.txt"}, []),
    (41001, {"verb": "FOUND", "qid": QID1, "hops": "2", "holder": "127.0.0.1:10813", "peer": "3",
             "kind": "file", "size": "12", "md5": MD5, "path": "docs/3.txt", "name": "3.txt"}, []),
    (50001, {"verb": "GET", "qid": QID1, "ttl": "3"}, []),
    (50001, {"verb": "GET", "qid": QID3, "ttl": "15", "hops": "4", "name": "été.txt"}, []),
    (50002, {"verb": "FETCH", "path": "docs/big.bin", "md5": MD5, "offset": "0"}, []),
    (41002, {"verb": "RANGE", "size": str(len(BODY0) + len(BODY1) + len(BODY2)), "offset": "0",
             "chunk": str(len(BODY0))}, []),
    (41002, {"verb": "DATA", "idx": "0", "len": str(len(BODY0)),
             "crc": f"0x{zlib.crc32(BODY0):08x}"}, []),
    (41002, {"verb": "DATA", "idx": "1", "len": str(len(BODY1)),
             "crc": f"0x{zlib.crc32(BODY1):08x}"}, []),
    (41002, {"verb": "DATA", "idx": "2", "len": str(len(BODY2)), "crc": "0x12345678"}, []),
    (50003, {"verb": "LIST", "path": "album", "md5": MD5}, []),
    (41003, {"verb": "MANIFEST", "md5": MD5, "len": str(len(MANIFEST)),
             "manifest_line": ["D sub", f"F 12 {MD5} a b.txt", f"F 3 {MD5} sub/c.txt"]}, []),
    (50003, {"verb": "FETCH", "path": "album/a b.txt"}, []),
    (41003, {"verb": "ERROR", "code": "notfound", "msg": "no such item"},
     ["ERROR notfound: no such item"]),
    # The bad values are shown as text beside their reason, not as fields.
    (50004, {"verb": "GET", "hops": "0", "qid": None, "ttl": None, "name": None},
     ["qid is not 16 lower-case hex digits", "ttl is not from 0 to 255",
      "name: '%' at value byte 4 is not followed by two hex digits"]),
    (50004, {"verb": "FOUND", "qid": QID1, "hops": "1"},
     ["empty token: two spaces in a row, or a space at the end"] + FOUND_MISSING),
    (50004, {"verb": "HELLO", "unknown_key": "x=1"},
     ['unknown verb "HELLO"', "unknown key x (FLOOD/1 peers ignore it)"]),
    (50004, {"verb": None}, ["header over 2048 bytes without a newline"]),
]


class CraftedStreamTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        why = tshark_problem()
        if why:
            raise unittest.SkipTest(why)

    def setUp(self):
        self.dir = Path(tempfile.mkdtemp(prefix="fs-it-ws-"))
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.cap = self.dir / "crafted.pcap"
        write_crafted(self.cap)

    def assertMessages(self, got, expected):
        listing = "messages decoded:\n" + "\n".join(str(m) for m in got)
        self.assertEqual(len(got), len(expected), listing)
        for m, (port, fields, experts) in zip(got, expected):
            self.assertEqual(m["sport"], port, f"{m}\n{listing}")
            for key, value in fields.items():
                self.assertEqual(m["fields"].get(key), value, f"{key}: {m}\n{listing}")
            self.assertEqual(sorted(m["experts"]), sorted(experts), f"{m}\n{listing}")

    def test_every_message_is_framed_decoded_and_judged(self):
        got = decoded(self.cap)
        self.assertMessages(got, EXPECTED)
        frames = {}
        for m in got:
            frames.setdefault(m["frame"], []).append(m["fields"].get("verb"))
        # Two messages that arrived in one segment are both in that segment's frame, and so
        # are the end of DATA idx 1 and the whole of idx 2; headers split over two segments
        # (the FOUND, the third GET) each end in the second one.
        self.assertIn(["GET", "GET"], list(frames.values()))
        self.assertIn(["DATA", "DATA"], list(frames.values()))
        self.assertEqual(lua_errors(self.cap), "")

    def test_info_column_reads_like_the_logs(self):
        info = tshark(self.cap, "-Y", "floodshare", "-T", "fields", "-e", "_ws.col.Info")
        lines = info.splitlines()
        self.assertEqual(lines[0], "GET q7f2a ttl=3 hops=1 name=3.txt | "
                                   "GET q0123 ttl=2 hops=0 name=my notes%.txt")
        self.assertEqual(lines[1], "FOUND q7f2a name=3.txt 2 hops, peer 3 at 127.0.0.1:10813 "
                                   "(file, 12 bytes)")
        self.assertIn("ERROR notfound: no such item", lines)

    def test_crc_preference_checks_data_bodies(self):
        pref = ("-o", "floodshare.check_crc:TRUE")
        data = [m for m in decoded(self.cap, *pref) if m["fields"].get("verb") == "DATA"]
        self.assertEqual([(m["fields"]["idx"], m["fields"].get("crc_ok")) for m in data],
                         [("0", "1"), ("1", "1"), ("2", "0")])
        crc = zlib.crc32(BODY2)
        self.assertEqual(data[2]["experts"],
                         [f"DATA idx=2: body CRC-32 is {crc:08x}, header says 12345678"])
        # Off by default: no verdict at all.
        self.assertTrue(all("crc_ok" not in m["fields"] for m in decoded(self.cap)))

    def test_decode_as_and_ports_preference(self):
        off = ("--disable-heuristic", "floodshare_tcp")
        self.assertEqual(decoded(self.cap, *off), [])
        # The ports preference alone brings back the stream on 41001.
        got = decoded(self.cap, *off, "-o", "floodshare.ports:41001")
        self.assertMessages(got, [e for e in EXPECTED if e[0] in (50001, 41001)])
        # Decode As on a stream the heuristic never takes: a wrong version, then not FLOOD/1.
        got = [m for m in decoded(self.cap, *off, "-d", "tcp.port==41005,floodshare")]
        self.assertMessages(got, [
            (50005, {"verb": "GET", "version": "FLOOD/2", "qid": QID1},
             ['version is "FLOOD/2", not FLOOD/1', "GET without hops", "GET without origin",
              "GET without from", "GET without name"]),
            (50005, {"verb": None}, ["data that does not start with FLOOD/1 (29 bytes)"]),
        ])


# --------------------------------------------------------------------------- a live capture

class Capture:
    """dumpcap on lo with a filter on the given ports, writing a pcapng file."""

    def __init__(self, path: Path, ports: list[int]):
        filt = " or ".join(f"tcp port {p}" for p in ports)
        self.path = path
        # -B: a kernel buffer big enough to hold a whole transfer if dumpcap falls behind.
        self.proc = subprocess.Popen(["dumpcap", "-i", "lo", "-f", filt, "-B", "128", "-w",
                                      str(path)], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.err = b""
        self.lock = threading.Lock()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        while True:
            b = self.proc.stderr.read1(4096)
            if not b:
                return
            with self.lock:
                self.err += b

    def text(self) -> str:
        with self.lock:
            return self.err.decode(errors="replace")

    def packets(self) -> int:
        """Packets captured so far, from dumpcap's running count."""
        counts = re.findall(r"Packets: (\d+)", self.text())
        return int(counts[-1]) if counts else 0

    def wait(self, cond, what: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"capture: {what} did not happen:\n{self.text()}")
            time.sleep(0.05)

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait(timeout=30)
        self.reader.join(timeout=10)
        self.proc.stderr.close()
        return self.text()


class LiveFloodTest(NetCase):
    @classmethod
    def setUpClass(cls):
        why = tshark_problem()
        if not why and not shutil.which("dumpcap"):
            why = "dumpcap is not installed (it comes with tshark: apt-get install tshark)"
        if not why and os.geteuid() != 0:
            why = "capturing on lo needs root (or dumpcap with cap_net_raw): run as root"
        if why:
            raise unittest.SkipTest(why)

    def _canary(self, cap: Capture, port: int) -> None:
        """Opens and closes a connection to a peer port until dumpcap has counted its packets:
        then the capture is running, and everything sent before it is in the capture too.
        ("Capturing on" alone is not enough: dumpcap says it a moment before the first packet
        can be seen, and a connection made in that moment is missed.)"""
        deadline = time.monotonic() + 20
        while True:
            before = cap.packets()
            with socket.create_connection(("127.0.0.1", port), timeout=5):
                pass
            try:
                cap.wait(lambda: cap.packets() >= before + 3, "capturing a canary connection",
                         timeout=1)
                return
            except AssertionError:
                if time.monotonic() > deadline or cap.proc.poll() is not None:
                    raise

    def test_a_real_flood_decodes_field_by_field(self):
        net = self.net("topologies/seed-chain.topo")
        big = net.share(3) / "big.bin"
        size = 2 * CHUNK + 1234567  # five DATA frames, the last one short
        md5 = make_big_file(big, size)
        album = net.share(3) / "album"
        (album / "sub").mkdir(parents=True)
        (album / "a b.txt").write_bytes(b"the first file\n" * 10)
        (album / "sub" / "c.txt").write_bytes(os.urandom(3000))
        net.wait_indexed(3, "big.bin")
        net.wait_indexed(3, "album")

        ports = [net.addr(p)[1] for p in (1, 2, 3)]
        capfile = self.tmpdir() / "flood.pcapng"
        keep = os.environ.get("FS_KEEP_CAPTURE")  # a folder to keep the capture in, to look at
        if keep:
            self.addCleanup(lambda: capfile.exists() and shutil.copy(capfile, keep))
        cap = Capture(capfile, ports)
        self.addCleanup(cap.stop)
        try:
            cap.wait(lambda: "Capturing on" in cap.text(), "dumpcap starting")
        except AssertionError as e:
            if cap.proc.poll() is not None:  # e.g. no CAP_NET_RAW in this container
                self.skipTest(f"dumpcap cannot capture on lo here: {cap.text().strip()}")
            raise
        self._canary(cap, ports[0])

        r = net.peer(1, "get", "big.bin", "--json")
        self.assertOk(r)
        got_big = last_json(r.stdout)
        r = net.peer(1, "get", "album", "--json")
        self.assertOk(r)
        got_album = last_json(r.stdout)
        r = net.peer(1, "search", "3.txt", "--json")
        self.assertOk(r)
        searched = last_json(r.stdout)
        # The get checks pieces by SHA-256 and asks FETCH nocrc=1 (crc=00000000 in its DATA);
        # a FETCH without it, as an older requester sends, gets every frame's CRC-32.
        with socket.create_connection(net.addr(3), timeout=10) as s:
            s.sendall(f"FLOOD/1 FETCH path=big.bin md5={md5} offset=0 chunk={CHUNK}\n".encode())
            f = s.makefile("rb")
            self.assertIn(b" RANGE ", f.readline())
            for _ in range((size + CHUNK - 1) // CHUNK):
                head = f.readline().decode()
                f.read(int(re.search(r" len=(\d+)", head).group(1)))
        self._canary(cap, ports[0])
        err = cap.stop()
        dropped = re.search(r"received/dropped on interface '[^']*': (\d+)/(\d+)", err)
        self.assertIsNotNone(dropped, err)
        self.assertEqual(dropped.group(2), "0", f"dumpcap dropped packets:\n{err}")

        found = decoded(capfile, "-o", "floodshare.check_crc:TRUE")
        msgs = [m["fields"] for m in found]
        self.assertEqual(lua_errors(capfile), "")
        port_of = {ports[i]: i + 1 for i in range(3)}

        def sent(verb, **keys):
            return [m for m in msgs if m.get("verb") == verb
                    and all(m.get(k) == v for k, v in keys.items())]

        # The flood of `get big.bin`: peer 1 sends the GET with its qid, ttl 3 (the seed
        # chain's) and hops 0; peer 2 forwards it with ttl 2 and hops 1.
        qid = got_big["query_id"]
        gets = sent("GET", qid=qid)
        self.assertEqual([(g["ttl"], g["hops"], port_of[int(g["from"].split(":")[1])]) for g in gets],
                         [("3", "0", 1), ("2", "1", 2)], gets)
        self.assertTrue(all(g["origin"] == f"127.0.0.1:{ports[0]}" and g["name"] == "big.bin"
                            for g in gets))
        # The FOUND comes back hop by hop: from peer 3, then relayed by peer 2, the same hit.
        founds = sent("FOUND", qid=qid)
        self.assertEqual([port_of[int(f["from"].split(":")[1])] for f in founds], [3, 2])
        for f in founds:
            self.assertEqual((f["holder"], f["peer"], f["md5"], f["name"], f["path"], f["kind"],
                              f["size"], f["hops"]),
                             (got_big["holder"], "3", md5, "big.bin", "big.bin", "file",
                              str(size), "2"))

        # The file by FETCH, twice: the get's (nocrc=1) and the raw one above. Each gets one
        # RANGE, then one DATA frame per chunk with its length, and crc 0 or the CRC-32 of that
        # chunk of the file; the DATA count proves the bodies were reassembled.
        self.assertEqual(len(sent("FETCH", path="big.bin", md5=md5, offset="0",
                                  chunk=str(CHUNK), nocrc="1")), 1)
        self.assertEqual(len(sent("FETCH", path="big.bin", md5=md5, offset="0",
                                  chunk=str(CHUNK))), 2)
        self.assertEqual(len(sent("RANGE", size=str(size), md5=md5, offset="0",
                                  chunk=str(CHUNK))), 2)
        want = []
        with open(big, "rb") as fh:
            for idx in range((size + CHUNK - 1) // CHUNK):
                chunk = fh.read(CHUNK)
                want.append((str(idx), str(len(chunk)), f"0x{zlib.crc32(chunk):08x}"))
        zero = [(i, n, "0x00000000") for i, n, _ in want]
        data = [(m["idx"], m["len"], m["crc"]) for m in sent("DATA")]
        self.assertEqual(data, zero + want)
        # ...and each body with a CRC-32, put together from dozens of segments, has exactly
        # that CRC-32 (the dissector checks none where the holder computed none).
        self.assertEqual([m.get("crc_ok") for m in sent("DATA")],
                         [None] * len(want) + ["1"] * len(want))

        # The folder travels as one zip archive: REQUEST, then ITEM with the folder's digest.
        self.assertEqual(got_album["kind"], "folder")
        self.assertEqual(len(sent("REQUEST", path="album", md5=got_album["md5"])), 1)
        items = sent("ITEM", kind="folder", md5=got_album["md5"], size=str(got_album["size"]))
        self.assertEqual(len(items), 1)
        self.assertEqual(int(items[0]["len"]), got_album["bytes"])

        # The search floods like a get and its hit comes back the same way.
        sq = searched["query_id"]
        self.assertEqual([(g["ttl"], g["hops"]) for g in sent("GET", qid=sq)],
                         [("3", "0"), ("2", "1")])
        hit = searched["hits"][0]
        self.assertEqual([(f["peer"], f["md5"], f["name"]) for f in sent("FOUND", qid=sq)],
                         [(str(hit["peer"]), hit["md5"], "3.txt")] * 2)

        # Nothing else crossed the wire, and the Info column reads like the peers' logs.
        self.assertEqual(sorted({m.get("verb", "?") for m in msgs}),
                         ["DATA", "FETCH", "FOUND", "GET", "HASHES", "HASHLIST", "ITEM", "RANGE",
                          "REQUEST"])
        info = tshark(capfile, "-Y", f'floodshare.qid == "{qid}"', "-T", "fields",
                      "-e", "_ws.col.Info").splitlines()
        self.assertIn(f"GET q{qid[:4]} ttl=2 hops=1 name=big.bin", info)
        self.assertIn(f"FOUND q{qid[:4]} name=big.bin 2 hops, peer 3 at {got_big['holder']} "
                      f"(file, {size} bytes)", info)
        self.assertEqual([m for m in found if m["experts"]], [])


if __name__ == "__main__":
    unittest.main()
