"""evilzip - a fake holder of one small folder that answers REQUEST with a poisoned zip archive.

It answers every GET with a FOUND for the folder (its real name, kind folder, and the size and MD5
the genuine folder has), refuses LIST and FETCH the way an older peer would ("ERROR code=unknown",
so the requester falls back to REQUEST), and answers REQUEST with an ITEM whose body is the
archive of the current `mode`: zipfile builds the archive, and the kinds zipfile cannot make
(lying sizes, CRCs, offsets, local names, shared local data, a million entries) are made by
patching its bytes. The ITEM carries the body's true length and MD5 unless the mode lies about
those too, so the archive reaches the extractor. It listens on 127.0.0.1 only and talks only to
the peers that contact it.
"""

from __future__ import annotations

import hashlib
import io
import socket
import stat
import struct
import warnings
import zipfile
import zlib
from pathlib import Path

from fakeholder import FakeHolder, fields

ARCHIVE_SLACK = 64 * 1024 * 1024  # XFER_ARCHIVE_SLACK in include/floodshare/xfer.h
SYMLINK_ATTR = (stat.S_IFLNK | 0o777) << 16


class Folder:
    """A genuine folder: relative path -> bytes for files, relative paths of sub-folders."""

    def __init__(self, name: str, files: dict[str, bytes], dirs: list[str]):
        self.name, self.files, self.dirs = name, files, dirs
        self.size = sum(len(b) for b in files.values())
        # docs/PROTOCOL.md, Item digests: the MD5 of the manifest
        lines = [(p, f"F {len(b)} {hashlib.md5(b).hexdigest()} {p}\n") for p, b in files.items()]
        lines += [(d, f"D {d}\n") for d in dirs]
        text = "".join(l for _, l in sorted(lines, key=lambda t: t[0].encode()))
        self.md5 = hashlib.md5(text.encode()).hexdigest()

    def entries(self) -> list[tuple[str, bytes | None]]:
        """The genuine archive's entries, in the order floodshare writes them."""
        out = [(self.name + "/", None)]
        out += [(f"{self.name}/{d}/", None) for d in self.dirs]
        out += [(f"{self.name}/{p}", b) for p, b in self.files.items()]
        return sorted(out, key=lambda t: t[0].encode())

    def write(self, root: Path) -> Path:
        top = root / self.name
        for d in self.dirs:
            (top / d).mkdir(parents=True, exist_ok=True)
        for p, b in self.files.items():
            (top / p).parent.mkdir(parents=True, exist_ok=True)
            (top / p).write_bytes(b)
        return top


# --- building and patching archives ---

def build(entries: list[tuple[str, bytes | None] | tuple[str, bytes | None, int]]) -> bytes:
    """A zip of (name, data[, external_attr]) with Unix attributes; a name ending in '/' and no
    data is a folder. Duplicates are written as given."""
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about duplicate names
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            for e in entries:
                name, data = e[0], e[1]
                zi = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
                zi.create_system = 3
                is_dir = name.endswith("/") and data is None
                zi.external_attr = e[2] if len(e) > 2 else (
                    ((stat.S_IFDIR | 0o755) << 16 | 0x10) if is_dir else (stat.S_IFREG | 0o644) << 16)
                zi.compress_type = zipfile.ZIP_STORED if is_dir else zipfile.ZIP_DEFLATED
                z.writestr(zi, data or b"")
    return buf.getvalue()


class Central:
    """Where one central record and its local header sit in an archive."""

    def __init__(self, body: bytes, at: int):
        (self.at,) = (at,)
        self.namelen, self.extralen, self.commentlen = struct.unpack_from("<HHH", body, at + 28)
        self.name = body[at + 46:at + 46 + self.namelen].decode()
        (self.local,) = struct.unpack_from("<I", body, at + 42)
        self.end = at + 46 + self.namelen + self.extralen + self.commentlen


def end_record(body: bytes) -> int:
    at = body.rfind(b"PK\x05\x06")
    assert at >= 0
    return at


def records(body: bytes) -> list[Central]:
    eocd = end_record(body)
    count, _, cdoff = struct.unpack_from("<HII", body, eocd + 10)
    out, at = [], cdoff
    for _ in range(count):
        out.append(Central(body, at))
        at = out[-1].end
    return out


def record(body: bytes, name: str) -> Central:
    return next(r for r in records(body) if r.name == name)


def patch(body: bytes, at: int, fmt: str, *values) -> bytes:
    b = bytearray(body)
    struct.pack_into(fmt, b, at, *values)
    return bytes(b)


def set_sizes_crc(body: bytes, name: str, *, usize: int | None = None, crc: int | None = None):
    """Makes both headers of name declare usize and/or crc (minizip insists that they agree)."""
    r = record(body, name)
    if usize is not None:
        body = patch(body, r.at + 24, "<I", usize)
        body = patch(body, r.local + 22, "<I", usize)
    if crc is not None:
        body = patch(body, r.at + 16, "<I", crc)
        body = patch(body, r.local + 14, "<I", crc)
    return body


def add_central(body: bytes, extra_records: bytes, count: int) -> bytes:
    """Appends central records after the existing ones; count records in all. Writes zip64 end
    records when count needs them."""
    eocd = end_record(body)
    _, cdsize, cdoff = struct.unpack_from("<HII", body, eocd + 10)
    cd = body[cdoff:cdoff + cdsize] + extra_records
    out = body[:cdoff] + cd
    if count > 0xFFFF:
        z64 = len(out)
        out += struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 0x031E, 45, 0, 0, count, count, len(cd),
                           cdoff)
        out += struct.pack("<IIQI", 0x07064B50, 0, z64, 1)
        return out + struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, len(cd), cdoff, 0)
    return out + struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, count, count, len(cd), cdoff, 0)


def central_copy(body: bytes, name: str, new_name: str) -> bytes:
    """The central record of name, renamed to new_name (same length), same local header."""
    assert len(name) == len(new_name)
    r = record(body, name)
    rec = bytearray(body[r.at:r.end])
    rec[46:46 + r.namelen] = new_name.encode()
    return bytes(rec)


def deflate_raw(data: bytes) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush()


# --- the poisoned archives: mode -> what the ITEM will carry ---

class Evil:
    """A body, and optionally the len/zmd5 the ITEM announces instead of the true ones."""

    def __init__(self, body: bytes, len_: int | None = None, zmd5: str | None = None):
        self.body, self.len, self.zmd5 = body, len_, zmd5


def poisoned(mode: str, f: Folder, outside: Path) -> Evil:
    g = f.entries()
    n = f.name
    first = next(name for name, data in g if data)  # the first file, in archive order
    data0 = f.files[first[len(n) + 1:]]
    if mode == "genuine":
        return Evil(build(g))
    if mode == "dotdot":
        return Evil(build(g + [(f"{n}/../../../escaped.txt", b"out")]))
    if mode == "absolute":
        return Evil(build(g + [(str(outside / "pwned.txt"), b"out")]))
    if mode == "backslash":
        return Evil(build(g + [(f"{n}\\..\\..\\..\\escaped.txt", b"out")]))
    if mode == "drive":
        return Evil(build(g + [(f"C:{n}/escaped.txt", b"out")]))
    if mode == "symlink":
        return Evil(build(g + [(f"{n}/link", str(outside).encode(), SYMLINK_ATTR)]))
    if mode == "dir-then-link":
        return Evil(build(g + [(f"{n}/linked/", None), (f"{n}/linked", str(outside).encode(),
                                                         SYMLINK_ATTR),
                               (f"{n}/linked/pwned.txt", b"out")]))
    # The kinds below that add an entry add no bytes: the genuine folder's size is the cap on
    # the declared total, which would otherwise refuse them first.
    if mode == "duplicate":
        return Evil(build(g + [(first, b"")]))
    if mode == "duplicate-slash":
        return Evil(build(g + [(first + "/", None)]))
    if mode == "two-tops":
        return Evil(build(g + [("other/escaped.txt", b"")]))
    if mode == "other-top":  # a well-formed archive of another name than the item's
        return Evil(build([(("x" + name[len(n):]), data) for name, data in g]))
    if mode == "overlap":  # a second central record for the local header of "album/empty/"
        body = build(g)
        twin = central_copy(body, f"{n}/empty/", f"{n}/emptz/")
        return Evil(add_central(body, twin, len(records(body)) + 1))
    if mode == "local-name":
        body = build(g)
        r = record(body, first)
        fake = first[:-1] + ("y" if first[-1] != "y" else "z")
        return Evil(patch(body, r.local + 30, f"{len(fake)}s", fake.encode()))
    if mode == "bomb-total":  # declares the genuine size and CRC-of-prefix, inflates 4 MiB
        zeros = bytes(4 << 20)
        body = build([(name, zeros if name == first else data) for name, data in g])
        return Evil(set_sizes_crc(body, first, usize=len(data0),
                                  crc=zlib.crc32(zeros[:len(data0)])))
    if mode == "bomb-count":  # 1,000,001 central records, all for one folder entry
        body = build([(n + "/", None)])
        rec = central_copy(body, n + "/", n + "/")
        return Evil(add_central(body, rec * 1_000_000, 1_000_001))
    if mode == "bomb-ratio":  # 16 MiB of zeros deflate about 1030:1, over the cap of 1000
        return Evil(build(g + [(f"{n}/zeros", bytes(16 << 20))]))
    if mode == "size-small":  # declares less than it holds, with the CRC of what it declares
        body = build(g)
        return Evil(set_sizes_crc(body, first, usize=len(data0) - 100,
                                  crc=zlib.crc32(data0[:len(data0) - 100])))
    if mode == "size-large":  # declares more than it holds (the total stays the genuine one)
        body = build(g)
        second = [name for name, data in g if data][1]
        body = set_sizes_crc(body, first, usize=len(data0) + 100)
        return Evil(set_sizes_crc(body, second,
                                  usize=len(f.files[second[len(n) + 1:]]) - 100))
    if mode == "crc":
        body = build(g)
        return Evil(set_sizes_crc(body, first, crc=zlib.crc32(data0) ^ 0x00100000))
    if mode == "cd-past-end":
        body = build(g)
        eocd = end_record(body)
        (cdoff,) = struct.unpack_from("<I", body, eocd + 16)
        return Evil(patch(body, eocd + 16, "<I", cdoff + 4096))
    if mode == "local-past-end":
        body = build(g)
        return Evil(patch(body, record(body, first).at + 42, "<I", len(body) + 4096))
    if mode == "truncated":  # the ITEM announces less than what is sent, with that prefix's MD5
        body = build(g)
        cut = body[:len(body) - 100]
        return Evil(body, len(cut), hashlib.md5(cut).hexdigest())
    if mode == "announced-too-large":
        body = build(g)
        return Evil(body, f.size + f.size // 8 + ARCHIVE_SLACK + 1)
    raise ValueError(mode)


MODES = ["dotdot", "absolute", "backslash", "drive", "symlink", "dir-then-link", "duplicate",
         "duplicate-slash", "two-tops", "other-top", "overlap", "local-name", "bomb-total",
         "bomb-count", "bomb-ratio", "size-small", "size-large", "crc", "cd-past-end",
         "local-past-end", "truncated", "announced-too-large"]


class EvilZipHolder(FakeHolder):
    def __init__(self, folder: Folder, outside: Path, mode: str = "genuine"):
        self.folder, self.outside, self.mode = folder, outside, mode
        super().__init__()
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
                elif " LIST " in line or " FETCH " in line:
                    c.sendall(b"FLOOD/1 ERROR code=unknown msg=unknown%20message%20type\n")
                    return
        except OSError:
            pass
        finally:
            c.close()

    def _answer_get(self, c: socket.socket, q: dict[str, str]):
        """Answers over the link the GET came on: a FOUND goes back the way its GET came."""
        if q.get("name") != self.folder.name:
            return
        f = self.folder
        found = (f"FLOOD/1 FOUND qid={q['qid']} hops={int(q['hops']) + 1} from={self.addr} "
                 f"holder={self.addr} peer=667 kind=folder size={f.size} md5={f.md5} path={f.name} name={f.name}\n")
        c.sendall(found.encode())

    def prepare(self, mode: str):
        """Switches to mode and builds its archive now, before a get asks for it: bomb-count's
        52 MB take a second or more to build, which on a loaded machine ate into the requester's
        wait for the ITEM."""
        self.mode = mode
        self._prepared = (mode, poisoned(mode, self.folder, self.outside))

    def _answer_request(self, c: socket.socket):
        prepared = getattr(self, "_prepared", None)
        if prepared and prepared[0] == self.mode:
            e = prepared[1]
        else:
            e = poisoned(self.mode, self.folder, self.outside)
        f = self.folder
        length = len(e.body) if e.len is None else e.len
        zmd5 = e.zmd5 or hashlib.md5(e.body).hexdigest()
        head = (f"FLOOD/1 ITEM kind=folder size={f.size} md5={f.md5} len={length} "
                f"zmd5={zmd5}\n")
        try:
            c.sendall(head.encode() + e.body)
        except OSError:
            pass  # a requester that refuses the ITEM closes without reading the body
