"""Hostile holders: a poisoned archive for a small folder is refused, and leaves the requester's
share (and everything else) exactly as it was.

One real network (seed-chain: peers 1 - 2 - 3) plus a fake holder (evilzip.EvilZipHolder) that
is a neighbour of peer 1 and claims a folder "album" with the genuine size and MD5. For each
kind of poisoned archive, `floodshare peer 1 get album` must fail with the reason named, and:
- the requester's share, .floodshare/ included, is file for file (and MD5 for MD5) what it was:
  in-*.zip and x-* are the only names a refused archive may create there, and they must be gone
  again; index.cache is compared too, since a refusal does not touch the index;
- nothing else in the run folder changed (peer logs aside: they are meant to change), and the
  folder the archives aim their links and absolute names at is still empty;
- archives_refused went up by exactly one, downloads_failed too, and the fake holder was asked
  exactly once;
- afterwards the peer still serves: the same fake holder's genuine archive installs, and a real
  peer's file arrives.
"""

import json
import shutil
import tempfile
import time
import unittest
from pathlib import Path

from evilzip import MODES, EvilZipHolder, Folder
from fsnet import NetCase, md5_of, tree

# mode -> what the requester must say about it
WHY = {
    "dotdot": "archive refused: entry name has a '..' component",
    "absolute": "archive refused: absolute entry name",
    "backslash": "archive refused: entry name has a backslash",
    "drive": "archive refused: entry name has a drive letter",
    "symlink": "archive refused: symlink entry",
    "dir-then-link": "archive refused: symlink entry",
    "duplicate": "archive refused: duplicate entry",
    "duplicate-slash": "archive refused: duplicate entry",
    "two-tops": "archive refused: more than one top-level name",
    "other-top": "archive holds another name than the item",
    "overlap": "archive refused: entries overlap in the archive",
    "local-name": "archive refused: local header name differs from the central directory",
    "bomb-total": "archive refused: archive inflates past the uncompressed size limit",
    "bomb-count": "archive refused: archive has too many entries",
    "bomb-ratio": "archive refused: entry compression ratio exceeds the limit",
    "size-small": "archive refused: entry larger than declared",
    "size-large": "archive refused: entry smaller than declared",
    "crc": "archive refused: CRC mismatch",
    "cd-past-end": "archive refused: not a zip archive",
    "local-past-end": "archive refused: bad local header",
    "truncated": "archive refused: not a zip archive",
    "announced-too-large": "holder announced an archive far larger than the item",
}


def snapshot(root: Path, skip=lambda rel: False) -> dict[str, str]:
    """Relative path -> md5 (files), 'dir', or 'link -> target', for everything below root."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if skip(rel):
            continue
        if p.is_symlink():
            out[rel] = f"link -> {p.readlink()}"
        elif p.is_dir():
            out[rel] = "dir"
        elif p.is_file():
            out[rel] = md5_of(p)
        else:
            out[rel] = "other"
    return out


def is_log(rel: str) -> bool:
    return "/" not in rel and rel.startswith("peer-") and rel.endswith(".log")


class HostileArchiveTest(NetCase):
    def test_poisoned_archives_are_refused_and_change_nothing(self):
        self.assertGreaterEqual(len(MODES), 13)
        net = self.net("topologies/seed-chain.topo")
        outside = Path(tempfile.mkdtemp(prefix="fs-it-outside-"))
        self.addCleanup(shutil.rmtree, outside, True)
        album = Folder("album", {"a.txt": b"genuine text line\n" * 120,
                                 "sub/b.bin": bytes((i * 37 + 11) % 251 for i in range(3000))},
                       ["empty", "sub"])
        evil = EvilZipHolder(album, outside)
        self.addCleanup(evil.close)
        self._neighbour_and_short_window(net, evil)
        share = net.share(1)
        self._settled(net)

        for mode in MODES:
            with self.subTest(mode=mode):
                try:
                    self._refused(net, evil, mode, outside)
                finally:
                    # an archive let in by mistake must not hide what the next kinds do
                    shutil.rmtree(share / "album", ignore_errors=True)

        downloads = net.stats(1)["downloads"]
        # The control: the same holder's genuine archive installs, so every refusal above was
        # about the poison, not about the fake holder.
        evil.mode = "genuine"
        r = net.peer(1, "get", "album", timeout=60)
        self.assertOk(r, "the genuine archive was refused")
        model = album.write(Path(self.tmpdir()))
        self.assertEqual(tree(share / "album"), tree(model))
        self.assertTrue((share / "album" / "empty").is_dir())
        self.assertEqual(net.stats(1)["downloads"], downloads + 1)
        # and a real peer's file still arrives
        self.assertOk(net.peer(1, "get", "3.txt", timeout=60))
        self.assertEqual(md5_of(share / "3.txt"), md5_of(net.share(3) / "3.txt"))

    def _settled(self, net):
        """Waits until the run folder holds still: each share's hashing is over, its index
        cache saved (the files were copied just before the start, so the first pass could not
        keep their hashes: the share's recheck a few seconds later does) and its piece lists
        written. Under ASan and TSan it was not when the first snapshot was taken, and the
        snapshots differed by it."""
        def cached(share):
            files = [p for p in share.iterdir() if p.name != ".floodshare"]
            return not files or (share / ".floodshare" / "index.cache").is_file()

        def still():
            if not all(cached(s) for s in net.dir.glob("share-*") if s.is_dir()):
                return False
            a = snapshot(net.dir, is_log)
            time.sleep(1)
            b = snapshot(net.dir, is_log)
            return a == b and not any("index.cache.tmp" in rel for rel in b)
        net.wait_for(still, timeout=90)

    def _refused(self, net, evil, mode, outside):
        share = net.share(1)
        evil.prepare(mode)
        before_share = snapshot(share)
        before_run = snapshot(net.dir, is_log)
        before = net.stats(1)
        asked = evil.requests
        r = net.peer(1, "get", "album", timeout=60)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("every holder failed", r.stderr)
        self.assertIn(WHY[mode], r.stderr)
        self.assertEqual(evil.requests, asked + 1)
        self.assertEqual(snapshot(share), before_share)
        self.assertEqual(snapshot(net.dir, is_log), before_run)
        self.assertEqual(list(outside.iterdir()), [])
        after = net.stats(1)
        self.assertEqual(after["archives_refused"], before["archives_refused"] + 1)
        self.assertEqual(after["downloads_failed"], before["downloads_failed"] + 1)
        self.assertEqual(after["downloads"], before["downloads"])
        self.assertTrue(net.alive(1))

    def _neighbour_and_short_window(self, net, evil):
        """Makes the fake holder a neighbour of peer 1 and shortens peer 1's hit window (each
        refused get waits out the window for another holder), then restarts peer 1."""
        ini = net.dir / "peer-1.ini"
        text = ini.read_text()
        lines = []
        for line in text.splitlines():
            if line.startswith("peers"):
                line = line.split(";")[0].rstrip() + f", {evil.addr}"
            lines.append(line)
        lines += ["", "[limits]", "hit_window_ms = 700"]
        ini.write_text("\n".join(lines) + "\n")
        net.kill(1, 15)
        net.restart(1)
        cfg = json.loads(net.peer(1, "config", "--json").stdout)
        self.assertIn(evil.addr, cfg["neighbours"])


if __name__ == "__main__":
    unittest.main()
