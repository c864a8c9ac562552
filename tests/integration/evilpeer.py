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
And one that claims a large folder and answers LIST:
  manifest-escape  a manifest (with a matching MD5) whose file path climbs out with ../
It listens on 127.0.0.1 only and talks only to the peers that contact it.
"""

from __future__ import annotations

import hashlib
import io
import socket
import threading
import zipfile
import zlib


def _fields(line: str) -> dict[str, str]:
    out = {}
    for tok in line.split(" ")[2:]:
        k, _, v = tok.partition("=")
        out[k] = v
    return out


class EvilPeer:
    def __init__(self, name: str, genuine: bytes, mode: str):
        self.name, self.genuine, self.mode = name, genuine, mode
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.requests = 0
        self._stop = False
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    def close(self):
        self._stop = True
        self.sock.close()

    def _serve(self):
        while not self._stop:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._conn, args=(c,), daemon=True).start()

    def _conn(self, c: socket.socket):
        c.settimeout(20)
        f = c.makefile("rb")
        try:
            for raw in f:
                line = raw.decode().rstrip("\r\n")
                if " GET " in line:
                    self._answer_get(_fields(line))
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
                    self._answer_fetch(c)
                    return
        except OSError:
            pass
        finally:
            c.close()

    EVIL_MANIFEST = b"F 104857600 " + b"0" * 32 + b" ../escaped.txt\n"

    def _answer_get(self, q: dict[str, str]):
        if self.mode == "manifest-escape":
            md5 = hashlib.md5(self.EVIL_MANIFEST).hexdigest()
            host, port = q["from"].rsplit(":", 1)
            found = (f"FLOOD/1 FOUND qid={q['qid']} hops={int(q['hops']) + 1} "
                     f"from={self.addr} holder={self.addr} peer=666 kind=folder size=104857600 md5={md5} "
                     f"path={self.name} name={self.name}\n")
            with socket.create_connection((host, int(port)), timeout=5) as s:
                s.sendall(found.encode())
            return
        md5 = hashlib.md5(self.genuine).hexdigest()
        host, port = q["from"].rsplit(":", 1)
        name = "planted.txt" if self.mode == "othername" else self.name
        found = (f"FLOOD/1 FOUND qid={q['qid']} hops={int(q['hops']) + 1} from={self.addr} "
                 f"holder={self.addr} "
                 f"peer=666 kind=file size={len(self.genuine)} md5={md5} path={name} "
                 f"name={name}\n")
        with socket.create_connection((host, int(port)), timeout=5) as s:
            s.sendall(found.encode())

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

    def _answer_fetch(self, c: socket.socket):
        md5 = hashlib.md5(self.genuine).hexdigest()
        chunk = 4 * 1024 * 1024
        out = [f"FLOOD/1 RANGE size={len(self.genuine)} md5={md5} offset=0 chunk={chunk}\n".encode()]
        for idx in range(0, max(1, (len(self.genuine) + chunk - 1) // chunk)):
            data = self.genuine[idx * chunk:(idx + 1) * chunk]
            crc = zlib.crc32(data)
            if self.mode == "fetch-content":
                data = bytes(b ^ 0x5A for b in data)
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
