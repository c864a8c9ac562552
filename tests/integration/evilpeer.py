"""A lying peer for tests: it answers every GET with a FOUND for an item it claims to hold (with
the size and MD5 of the genuine item), then serves other bytes when asked for it.

modes:
  content   a well-formed archive whose item has the right size but other bytes
  payload   the right archive, with bytes flipped after its MD5 was announced
  traversal an archive whose entry is ../escaped.txt
  othername a FOUND for another name than the one asked (and that item when requested)
The modes above speak only the archive transfer (REQUEST/ITEM): to FETCH they answer
"ERROR code=unknown", as a peer of an older version would. These two answer FETCH:
  fetch-content  DATA frames of other bytes, each with a CRC that matches those bytes
  fetch-crc      DATA frames of the right bytes with a wrong CRC
These answer FETCH with the genuine first chunk, then misbehave (the item should have at least
two chunks, so the requester keeps that first chunk and resumes after it from another holder):
  fetch-stall    half of the second chunk, then nothing, the connection held open
  fetch-trickle  the second chunk's header, then one byte every `trickle_s` seconds
  fetch-forever  a DATA frame whose header announces a body of 2^40 bytes, then bytes without end
  fetch-endless  bytes without end where the second frame's header should be (no newline)
  fetch-poison   the first chunk with other bytes (and a CRC that matches them), then it hangs up
And one honest but slow to start, for tests that must act between the RANGE and the bytes:
  fetch-gated    the genuine frames from the asked offset, once `gate` (an Event) is set
                 (in 4 MiB chunks whatever the FETCH asks: an older holder)
And one that announces an impossible frame size:
  fetch-chunk    a RANGE with chunk=`range_chunk`, then the genuine bytes in frames of that size
Every FETCH line's fields are kept in `fetches`.
For these, `fetch_at` is when the FETCH arrived, `last_sent` when its last byte was accepted,
`closed_at` when it saw the requester hang up, and `sent` how many bytes it got out.
And one that claims a large folder and answers LIST:
  manifest-escape  a manifest (with a matching MD5) whose file path climbs out with ../
It listens on 127.0.0.1 only and talks only to the peers that contact it.
"""

from __future__ import annotations

import hashlib
import io
import socket
import threading
import time
import zipfile
import zlib

from fakeholder import FakeHolder, fields


def _xor(data: bytes, k: int) -> bytes:
    """data with every byte xor k: other bytes of the same size, fast for many MiB."""
    n = len(data)
    return (int.from_bytes(data, "little") ^ int.from_bytes(bytes([k]) * n, "little")).to_bytes(
        n, "little")


class EvilPeer(FakeHolder):
    def __init__(self, name: str, genuine: bytes, mode: str):
        self.name, self.genuine, self.mode = name, genuine, mode
        super().__init__()
        self.trickle_s = 0.25
        self.hold_s = 40.0  # a stalling or trickling holder gives up after this, so a test ends
        self.gate = threading.Event()
        self.fetch_at = self.last_sent = self.closed_at = None
        self.sent = 0
        self.range_chunk = 3000
        self.fetches: list[dict[str, str]] = []
        self.start()

    def _conn(self, c: socket.socket):
        c.settimeout(20)
        f = c.makefile("rb")
        try:
            for raw in f:
                line = raw.decode().rstrip("\r\n")
                if " GET " in line:
                    self._answer_get(c, fields(line))
                elif " REQUEST " in line:
                    self.requests += 1
                    self._answer_request(c)
                    return
                elif " LIST " in line and self.mode == "manifest-escape":
                    self.requests += 1
                    md5 = hashlib.md5(self.EVIL_MANIFEST).hexdigest()
                    c.sendall(f"FLOOD/1 MANIFEST md5={md5} len={len(self.EVIL_MANIFEST)}\n"
                              .encode() + self.EVIL_MANIFEST)
                elif " FETCH " in line:
                    if not self.mode.startswith("fetch-"):
                        c.sendall(b"FLOOD/1 ERROR code=unknown msg=unknown%20message%20type\n")
                        return
                    self.requests += 1
                    self.fetch_at = time.monotonic()
                    self.fetches.append(fields(line))
                    self._answer_fetch(c, int(fields(line).get("offset", "0")))
                    return
        except OSError:
            pass
        finally:
            c.close()

    EVIL_MANIFEST = b"F 104857600 " + b"0" * 32 + b" ../escaped.txt\n"

    def _answer_get(self, c: socket.socket, q: dict[str, str]):
        """Answers over the link the GET came on: a FOUND goes back the way its GET came."""
        if self.mode == "manifest-escape":
            md5 = hashlib.md5(self.EVIL_MANIFEST).hexdigest()
            found = (f"FLOOD/1 FOUND qid={q['qid']} hops={int(q['hops']) + 1} "
                     f"from={self.addr} holder={self.addr} peer=666 kind=folder "
                     f"size=104857600 md5={md5} path={self.name} name={self.name}\n")
            c.sendall(found.encode())
            return
        md5 = hashlib.md5(self.genuine).hexdigest()
        name = "planted.txt" if self.mode == "othername" else self.name
        found = (f"FLOOD/1 FOUND qid={q['qid']} hops={int(q['hops']) + 1} from={self.addr} "
                 f"holder={self.addr} "
                 f"peer=666 kind=file size={len(self.genuine)} md5={md5} path={name} "
                 f"name={name}\n")
        c.sendall(found.encode())

    def _archive(self) -> bytes:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            if self.mode == "othername":
                z.writestr("planted.txt", self.genuine)
            elif self.mode == "traversal":
                z.writestr("../escaped.txt", self.genuine)
            elif self.mode == "content":
                z.writestr(self.name, bytes(b ^ 0xFF for b in self.genuine))
            else:
                z.writestr(self.name, self.genuine)
        return buf.getvalue()

    CHUNK = 4 * 1024 * 1024

    def _frame(self, idx: int, data: bytes | None = None) -> bytes:
        if data is None:
            data = self.genuine[idx * self.CHUNK:(idx + 1) * self.CHUNK]
        return f"FLOOD/1 DATA idx={idx} len={len(data)} crc={zlib.crc32(data):08x}\n".encode() + data

    def _send(self, c: socket.socket, data: bytes) -> bool:
        """Sends data; False (and closed_at noted) once the requester has hung up."""
        try:
            c.sendall(data)
        except OSError:
            self.closed_at = time.monotonic()
            return False
        self.sent += len(data)
        self.last_sent = time.monotonic()
        return True

    def _hold(self, c: socket.socket, until: float) -> bool:
        """Keeps the connection open without sending until `until`; True (and closed_at noted)
        as soon as the requester hangs up."""
        c.settimeout(0.02)
        while time.monotonic() < until and not self._stop:
            try:
                if c.recv(65536) != b"":
                    continue
            except socket.timeout:
                continue
            except OSError:
                pass
            self.closed_at = time.monotonic()
            return True
        return False

    def _misbehave(self, c: socket.socket) -> None:
        md5 = hashlib.md5(self.genuine).hexdigest()
        head = f"FLOOD/1 RANGE size={len(self.genuine)} md5={md5} offset=0 chunk={self.CHUNK}\n"
        if self.mode == "fetch-poison":
            bad = _xor(self.genuine[:self.CHUNK], 0x33)
            self._send(c, head.encode() + self._frame(0, bad))
            return  # and hang up
        if not self._send(c, head.encode() + self._frame(0)):
            return
        give_up = time.monotonic() + self.hold_s
        if self.mode == "fetch-stall":
            second = self._frame(1)
            if self._send(c, second[:len(second) // 2]):
                self._hold(c, give_up)
        elif self.mode == "fetch-trickle":
            second = self._frame(1)
            nl = second.index(b"\n") + 1
            if self._send(c, second[:nl]):
                for b in second[nl:]:
                    if time.monotonic() > give_up or self._stop or not self._send(c, bytes([b])):
                        break
                    if self._hold(c, time.monotonic() + self.trickle_s):
                        break
        elif self.mode in ("fetch-forever", "fetch-endless"):
            if self.mode == "fetch-forever":
                if not self._send(c, f"FLOOD/1 DATA idx=1 len={1 << 40} crc=00000000\n".encode()):
                    return
            junk = b"x" * 65536
            while time.monotonic() < give_up and not self._stop and self._send(c, junk):
                pass

    def _answer_fetch(self, c: socket.socket, offset: int = 0):
        if self.mode in ("fetch-stall", "fetch-trickle", "fetch-forever", "fetch-endless",
                         "fetch-poison"):
            self._misbehave(c)
            return
        md5 = hashlib.md5(self.genuine).hexdigest()
        chunk = self.CHUNK
        if self.mode == "fetch-chunk":
            n = self.range_chunk
            head = f"FLOOD/1 RANGE size={len(self.genuine)} md5={md5} offset=0 chunk={n}\n"
            if not self._send(c, head.encode()):
                return
            for idx in range(0, min(4, (len(self.genuine) + n - 1) // n)):
                data = self.genuine[idx * n:(idx + 1) * n]
                head = f"FLOOD/1 DATA idx={idx} len={len(data)} crc={zlib.crc32(data):08x}\n"
                if not self._send(c, head.encode() + data):
                    return
            self._hold(c, time.monotonic() + 5)
            return
        if self.mode == "fetch-gated":
            head = f"FLOOD/1 RANGE size={len(self.genuine)} md5={md5} offset={offset} chunk={chunk}\n"
            if not self._send(c, head.encode()):
                return
            self.gate.wait(60)
            for idx in range(offset // chunk, (len(self.genuine) + chunk - 1) // chunk):
                if not self._send(c, self._frame(idx)):
                    return
            self._hold(c, time.monotonic() + 5)  # the requester closes when it has it all
            return
        # The RANGE first: building the frames (xor, CRC of several MiB in Python) took over the
        # requester's 1 s wait for a reply on a loaded machine under TSan.
        head = f"FLOOD/1 RANGE size={len(self.genuine)} md5={md5} offset=0 chunk={chunk}\n"
        if not self._send(c, head.encode()):
            return
        out = []
        for idx in range(0, max(1, (len(self.genuine) + chunk - 1) // chunk)):
            data = self.genuine[idx * chunk:(idx + 1) * chunk]
            crc = zlib.crc32(data)
            if self.mode == "fetch-content":
                data = _xor(data, 0x5A)
                crc = zlib.crc32(data)
            else:
                crc ^= 1
            out.append(f"FLOOD/1 DATA idx={idx} len={len(data)} crc={crc:08x}\n".encode() + data)
        c.sendall(b"".join(out))

    def _answer_request(self, c: socket.socket):
        body = self._archive()
        zmd5 = hashlib.md5(body).hexdigest()
        if self.mode == "payload":
            body = body[:40] + bytes([body[40] ^ 0xFF]) + body[41:]
        md5 = hashlib.md5(self.genuine).hexdigest()
        head = (f"FLOOD/1 ITEM kind=file size={len(self.genuine)} md5={md5} len={len(body)} "
                f"zmd5={zmd5}\n")
        c.sendall(head.encode() + body)
