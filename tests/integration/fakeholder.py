"""The listening half the tests' lying holders share (evilpeer.py, evilzip.py, and PieceHolder
below, a holder of a file with piece hashes): a socket on 127.0.0.1 and a free port, one thread
per connection, stopped by close(). A subclass sets its own fields, then calls start(), and
answers each connection in _conn()."""

from __future__ import annotations

import hashlib
import socket
import threading
import zlib

MiB = 1 << 20
PIECE = 512 * 1024  # PIECES_SIZE in include/floodshare/pieces.h


def fields(line: str) -> dict[str, str]:
    """The key=value tokens of one FLOOD/1 header line (values still percent-encoded)."""
    out = {}
    for tok in line.split(" ")[2:]:
        k, _, v = tok.partition("=")
        out[k] = v
    return out


class FakeHolder:
    def __init__(self):
        self.requests = 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self._stop = False

    def start(self):
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
        raise NotImplementedError


def piece_list(data: bytes, piece: int = PIECE) -> bytes:
    return b"".join(hashlib.sha256(data[i:i + piece]).digest() for i in range(0, len(data), piece))


def root_of(data: bytes, piece: int = PIECE) -> str:
    head = b"floodshare-pieces 1 %d %d\n" % (len(data), piece)
    return hashlib.sha256(head + piece_list(data, piece)).hexdigest()


def xor(data: bytes, k: int) -> bytes:
    n = len(data)
    return (int.from_bytes(data, "little") ^ int.from_bytes(bytes([k]) * n, "little")).to_bytes(
        n, "little")


class PieceHolder(FakeHolder):
    """Claims big.bin with the MD5 of `claimed` and the root of `content` (which serves its
    pieces and its list). It answers several FETCHes on one connection, each up to its end= (a
    swarm's spans). corrupt: the piece index sent with other bytes (and a CRC that matches
    them); corrupt_all: every piece so. list_mode: good, tampered (one bit flipped), short (a hash missing). stop_after: hang up
    after that many frames on one connection. gate: when not None, wait for it after `gate_after` frames."""

    def __init__(self, claimed: bytes, content: bytes | None = None):
        super().__init__()
        self.claimed, self.content = claimed, content if content is not None else claimed
        self.corrupt: int | None = None
        self.corrupt_all = False  # every piece sent with other bytes
        self.frames = 0  # DATA frames sent, over all connections
        self._local = threading.local()
        self.list_mode = "good"
        self.stop_after: int | None = None
        self.gate: threading.Event | None = None
        self.gate_after = 0
        self.range_chunk: int | None = None  # answer this chunk whatever was asked
        self.also_found: list[str] = []  # more holders its FOUNDs name (a storm over one link)
        self.hashes = 0
        self.fetches: list[dict[str, str]] = []
        self.start()

    def _conn(self, c: socket.socket):
        c.settimeout(30)
        f = c.makefile("rb")
        self._local.sent = 0  # frames sent on this connection, over all its FETCHes
        try:
            for raw in f:
                line = raw.decode().rstrip("\r\n")
                q = fields(line)
                if " GET " in line:
                    md5 = hashlib.md5(self.claimed).hexdigest()
                    c.sendall("".join(  # one write: they arrive together
                        f"FLOOD/1 FOUND qid={q['qid']} hops={int(q['hops']) + 1} "
                        f"from={self.addr} holder={holder} peer=666 kind=file "
                        f"size={len(self.claimed)} md5={md5} path=big.bin name=big.bin "
                        f"root={root_of(self.content)}\n"
                        for holder in [self.addr] + self.also_found).encode())
                elif " HASHES " in line:
                    self.hashes += 1
                    lst = piece_list(self.content)
                    if self.list_mode == "tampered":
                        lst = lst[:40] + bytes([lst[40] ^ 1]) + lst[41:]
                    elif self.list_mode == "short":
                        lst = lst[:-32]
                    c.sendall((f"FLOOD/1 HASHLIST size={len(self.claimed)} md5={q['md5']} "
                               f"root={q['root']} piece={PIECE} len={len(lst)}\n").encode() + lst)
                elif " FETCH " in line:
                    self.fetches.append(q)
                    if not self._answer_fetch(c, q):
                        return
        except OSError:
            pass
        finally:
            c.close()

    def _answer_fetch(self, c: socket.socket, q: dict[str, str]) -> bool:
        """Sends the range [offset, end) (end= absent or 0: the file's end) in frames of the
        chunk asked. False when it hung up (stop_after)."""
        off, chunk = int(q["offset"]), self.range_chunk or int(q.get("chunk", 4 * MiB))
        end = min(int(q.get("end", 0) or len(self.content)), len(self.content))
        md5 = hashlib.md5(self.claimed).hexdigest()
        c.sendall(f"FLOOD/1 RANGE size={len(self.claimed)} md5={md5} offset={off} "
                  f"chunk={chunk}\n".encode())
        for idx in range(off // chunk, (end + chunk - 1) // chunk):
            if self.gate is not None and self._local.sent == self.gate_after:
                self.gate.wait(60)
            if self.stop_after is not None and self._local.sent == self.stop_after:
                return False
            data = self.content[idx * chunk:min((idx + 1) * chunk, end)]
            if self.corrupt_all or (self.corrupt is not None and
                                    idx * chunk <= self.corrupt * PIECE < (idx + 1) * chunk):
                data = xor(data, 0x5A)
            c.sendall(f"FLOOD/1 DATA idx={idx} len={len(data)} crc={zlib.crc32(data):08x}\n"
                      .encode() + data)
            self._local.sent += 1
            self.frames += 1
        return True  # the requester asks again on this connection, or hangs up


def folder_manifest(files: dict[str, bytes], dirs: set[str]) -> bytes:
    """A folder's manifest (PROTOCOL.md, LIST): "D path" and "F size md5 path" lines in bytewise
    order of path; its MD5 is the folder's md5."""
    lines = [(d.encode(), f"D {d}\n") for d in dirs]
    lines += [(p.encode(), f"F {len(b)} {hashlib.md5(b).hexdigest()} {p}\n")
              for p, b in files.items()]
    return "".join(l for _, l in sorted(lines)).encode()


def folder_roots(files: dict[str, bytes]) -> bytes:
    """The binary piece roots of the files in manifest order: the ROOTLIST body."""
    return b"".join(bytes.fromhex(root_of(files[p])) for p in sorted(files, key=str.encode))


def folder_root(files: dict[str, bytes]) -> str:
    """SHA-256("floodshare-roots 1 <files>\\n" || roots): the folder FOUND's root."""
    return hashlib.sha256(b"floodshare-roots 1 %d\n" % len(files) + folder_roots(files)).hexdigest()


class FolderHolder(FakeHolder):
    """Holds the folder `name` (files: path below it -> bytes) and answers GET with its FOUND
    (the true md5 and folder root), LIST with its manifest, HASHES and FETCH like a real
    holder. roots_mode "good" sends the true ROOTLIST; "tampered" flips one bit of a file's
    root, so the list no longer hashes to the folder root it announced; "huge" announces a
    list of 1 TiB and sends nothing; "unknown" answers ERROR code=unknown and hangs up, as a
    holder of an earlier version would. corrupt: every DATA frame's bytes are changed."""

    def __init__(self, name: str, files: dict[str, bytes]):
        super().__init__()
        self.name, self.files = name, files
        dirs = set()
        for p in files:
            parts = p.split("/")[:-1]
            dirs.update("/".join(parts[:i + 1]) for i in range(len(parts)))
        self.manifest = folder_manifest(files, dirs)
        self.roots_mode = "good"
        self.roots_asked = 0
        self.corrupt = False  # every piece sent with other bytes (and a CRC that matches them)
        self.frames = 0
        self.start()

    def _conn(self, c: socket.socket):
        c.settimeout(30)
        f = c.makefile("rb")
        try:
            for raw in f:
                line = raw.decode().rstrip("\r\n")
                q = fields(line)
                if " GET " in line:
                    c.sendall(
                        (f"FLOOD/1 FOUND qid={q['qid']} hops={int(q['hops']) + 1} "
                         f"from={self.addr} holder={self.addr} peer=667 kind=folder "
                         f"size={sum(len(b) for b in self.files.values())} "
                         f"md5={hashlib.md5(self.manifest).hexdigest()} path={self.name} "
                         f"name={self.name} root={folder_root(self.files)}\n").encode())
                elif " LIST " in line:
                    c.sendall((f"FLOOD/1 MANIFEST md5={q['md5']} len={len(self.manifest)}\n")
                              .encode() + self.manifest)
                elif " ROOTS " in line:
                    self.roots_asked += 1
                    lst = folder_roots(self.files)
                    if self.roots_mode == "tampered":
                        lst = lst[:40] + bytes([lst[40] ^ 1]) + lst[41:]
                    if self.roots_mode == "unknown":  # a holder of an earlier version
                        c.sendall(b"FLOOD/1 ERROR code=unknown msg=unknown%20verb%20ROOTS\n")
                        return
                    if self.roots_mode == "huge":  # 1 TiB announced, nothing sent
                        c.sendall((f"FLOOD/1 ROOTLIST md5={q['md5']} root={q['root']} "
                                   f"len={1 << 40}\n").encode())
                        continue
                    c.sendall((f"FLOOD/1 ROOTLIST md5={q['md5']} root={q['root']} "
                               f"len={len(lst)}\n").encode() + lst)
                elif " HASHES " in line:
                    data = self.files[q["path"].split("/", 1)[1]]
                    lst = piece_list(data)
                    c.sendall((f"FLOOD/1 HASHLIST size={len(data)} md5={q['md5']} "
                               f"root={q['root']} piece={PIECE} len={len(lst)}\n").encode() + lst)
                elif " FETCH " in line:
                    self._answer_fetch(c, q)
        except OSError:
            pass
        finally:
            c.close()

    def _answer_fetch(self, c: socket.socket, q: dict[str, str]):
        data = self.files[q["path"].split("/", 1)[1]]
        off, chunk = int(q["offset"]), int(q.get("chunk", 4 * MiB))
        end = min(int(q.get("end", 0) or len(data)), len(data))
        c.sendall(f"FLOOD/1 RANGE size={len(data)} md5={q['md5']} offset={off} "
                  f"chunk={chunk}\n".encode())
        for idx in range(off // chunk, (end + chunk - 1) // chunk):
            part = data[idx * chunk:min((idx + 1) * chunk, end)]
            if self.corrupt:
                part = xor(part, 0x5A)
            c.sendall(f"FLOOD/1 DATA idx={idx} len={len(part)} crc={zlib.crc32(part):08x}\n"
                      .encode() + part)
            self.frames += 1
