"""test_sync - `peer N sync NAME from M [--delete] [--json]` (issue 13, docs/SYNC.md).

Real peers on 127.0.0.1 (line:2). N (peer 1) pulls from M (peer 2): a file and a folder arrive
whole (MD5 equal); a file changed on M in 10 regions moves about those regions only, the rest
reused from N's own copy; a sync killed mid-way resumes; files only N has are `extra` (or
removed with --delete); a file changed on N is kept aside under its Syncthing-style conflict
name, never overwritten; a hostile M cannot make N write outside NAME.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import time
import unittest
from pathlib import Path

from fakeholder import FakeHolder, fields
from fsnet import BIN, NetCase, last_json, make_big_file, md5_of, tree

MiB = 1 << 20
PIECE = 512 * 1024
STATE = ".floodshare"


def items(share: Path, under: str) -> dict[str, str]:
    return {k: v for k, v in tree(share).items() if k == under or k.startswith(under + "/")}


class SyncCase(NetCase):
    N, M = 1, 2

    def start(self, **kw):
        net = self.net("line:2", **kw)
        for pid in (1, 2):
            net.wait_indexed(pid, f"{pid}.txt")
        return net

    def sync(self, net, name: str, *extra: str, code: int = 0, timeout: float = 60):
        r = net.peer(self.N, "sync", name, "from", str(self.M), "--json", *extra, timeout=timeout)
        self.assertEqual(r.returncode, code, r.stdout + r.stderr)
        return last_json(r.stdout) if r.stdout.strip() else None

    def settle(self, net, pid: int, path: str):
        """Waits until peer pid's index holds path with the MD5 it has on disk now."""
        share = net.share(pid)
        want = md5_of(share / path)
        top = path.split("/")[0]

        def ok():
            r = net.peer(pid, "browse", str(pid), *( [os.path.dirname(path)] if "/" in path else []), "--json")
            if r.returncode != 0:
                return False
            for e in json.loads(r.stdout)["entries"]:
                if e["name"] == os.path.basename(path):
                    return e.get("md5") == want
            return False
        net.wait_for(ok, timeout=60, step=0.1)


class SyncFile(SyncCase):
    def test_file_then_ten_regions_changed(self):
        net = self.start()
        big = net.share(self.M) / "big.bin"
        make_big_file(big, 24 * MiB)
        self.settle(net, self.M, "big.bin")
        doc = self.sync(net, "big.bin")
        self.assertEqual(md5_of(net.share(self.N) / "big.bin"), md5_of(big))
        self.assertEqual([f["action"] for f in doc["files"]], ["new"])
        self.assertEqual(doc["bytes"], 24 * MiB)
        # 10% changed on M in 10 scattered regions
        region = (24 * MiB) // 100
        with open(big, "r+b") as f:
            for i in range(10):
                f.seek(i * (24 * MiB // 10) + 12345)
                f.write(os.urandom(region))
        self.settle(net, self.M, "big.bin")
        self.settle(net, self.N, "big.bin")
        doc = self.sync(net, "big.bin")
        self.assertEqual(md5_of(net.share(self.N) / "big.bin"), md5_of(big))
        self.assertEqual([f["action"] for f in doc["files"]], ["updated"])
        self.assertLessEqual(doc["bytes"], 10 * (region + PIECE))
        self.assertEqual(doc["bytes"] + doc["reused"], 24 * MiB)
        # nothing to do the third time
        doc = self.sync(net, "big.bin")
        self.assertEqual(doc["files"], [])
        self.assertEqual(doc["bytes"], 0)
        ev = json.loads(net.peer(self.N, "events", "--json").stdout)["events"]
        done = [e for e in ev if e["type"] == "sync_done"]
        self.assertEqual(len([e for e in ev if e["type"] == "sync_started"]), 3)
        self.assertEqual([(e["name"], e["files"]) for e in done],
                         [("big.bin", 1), ("big.bin", 1), ("big.bin", 0)])
        self.assertEqual(done[1]["reused"] + done[1]["bytes"], 24 * MiB)
        # the text form: a line per file and the summary
        (big.parent / "small.txt").write_text("a small one\n")
        self.settle(net, self.M, "small.txt")
        r = net.peer(self.N, "sync", "small.txt", "from", str(self.M))
        self.assertOk(r)
        self.assertRegex(r.stdout, r"new +small\.txt\n")
        self.assertRegex(r.stdout, r'synced "small\.txt" from 127\.0\.0\.1:\d+: 1 file changed, '
                         r"0 conflicts, 12 bytes moved, 0 bytes reused")
        r = net.peer(self.N, "sync", "nothere", "from", str(self.M))
        self.assertEqual(r.returncode, 1)
        self.assertIn('has no "nothere"', r.stderr)
        ev = json.loads(net.peer(self.N, "events", "--json").stdout)["events"]
        self.assertEqual(ev[-1]["type"], "sync_failed")

    def start_sync(self, net, name: str):
        return subprocess.Popen([str(BIN), "--run", str(net.dir), "peer", str(self.N), "sync",
                                 name, "from", str(self.M), "--json"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    def wait_fetching(self, net, at_least: int):
        def going():
            d = net.active_download(self.N)
            return d is not None and d["done"] >= at_least
        net.wait_for(going, timeout=30, step=0.05)

    def test_killed_mid_sync_resumes(self):
        net = self.start()
        big = net.share(self.M) / "big.bin"
        make_big_file(big, 24 * MiB)
        self.settle(net, self.M, "big.bin")
        self.assertOk(net.peer(self.M, "modify", "upload_rate", "4M"))
        sent0 = net.stats(self.M)["bytes_sent"]
        p = self.start_sync(net, "big.bin")
        try:
            self.wait_fetching(net, 6 * MiB)
            net.kill(self.N)
        finally:
            p.kill()
            p.communicate()
        self.assertFalse((net.share(self.N) / "big.bin").exists())  # nothing partial in place
        net.restart(self.N)
        self.assertOk(net.peer(self.M, "modify", "upload_rate", "0"))
        doc = self.sync(net, "big.bin")
        self.assertEqual(md5_of(net.share(self.N) / "big.bin"), md5_of(big))
        self.assertLess(doc["bytes"], 20 * MiB)  # the first part was not fetched again
        sent = net.stats(self.M)["bytes_sent"] - sent0
        self.assertLessEqual(sent, 24 * MiB + 4 * PIECE, "little fetched twice")

    def test_file_changed_here_during_sync_is_not_replaced(self):
        net = self.start()
        big = net.share(self.M) / "big.bin"
        make_big_file(big, 24 * MiB)
        self.settle(net, self.M, "big.bin")
        self.sync(net, "big.bin")
        mine = net.share(self.N) / "big.bin"
        with open(big, "r+b") as f:
            for i in range(10):
                f.seek(i * (24 * MiB // 10) + 999)
                f.write(os.urandom(MiB // 2))
        self.settle(net, self.M, "big.bin")
        self.settle(net, self.N, "big.bin")
        self.assertOk(net.peer(self.M, "modify", "upload_rate", "2M"))
        p = self.start_sync(net, "big.bin")
        self.wait_fetching(net, 1)
        with open(mine, "ab") as f:  # a user writes here while the sync runs
            f.write(b"written here during the sync\n")
        out, err = p.communicate(timeout=60)
        self.assertEqual(p.returncode, 0, out + err)
        doc = last_json(out)
        self.assertEqual(doc["conflicts"], 1, doc)
        kept = [f for f in doc["files"] if f["action"] == "conflict"][0]["kept_as"]
        self.assertRegex(kept, r"^big\.sync-conflict-\d{8}-\d{6}-2\.bin$")
        self.assertTrue(mine.read_bytes().endswith(b"written here during the sync\n"))
        self.assertEqual(md5_of(mine.parent / kept), md5_of(big))


class SyncFolder(SyncCase):
    def make_folder(self, net) -> Path:
        top = net.share(self.M) / "tracks"
        (top / "disc1").mkdir(parents=True)
        (top / "empty").mkdir()
        for i in range(50):
            sub = top / ("disc1" if i % 2 else "")
            (sub / f"track{i:02d}.txt").write_bytes(os.urandom(1000 + 37 * i))
        return top

    def wait_same_md5(self, net, pid, top: Path):
        for p in sorted(top.rglob("*")):
            if p.is_file():
                self.settle(net, pid, str(p.relative_to(net.share(pid))))

    def test_folder_extra_delete_and_conflicts(self):
        net = self.start()
        top = self.make_folder(net)
        self.wait_same_md5(net, self.M, top)
        doc = self.sync(net, "tracks")
        self.assertEqual(len(doc["files"]), 50, sorted(f["path"] for f in doc["files"]))
        self.assertEqual({f["action"] for f in doc["files"]}, {"new"})
        self.assertEqual(items(net.share(self.N), "tracks"), items(net.share(self.M), "tracks"))
        self.assertTrue((net.share(self.N) / "tracks" / "empty").is_dir())  # empty folders too
        # a file only N has: extra without --delete, removed with it
        mine = net.share(self.N) / "tracks" / "mine.txt"
        mine.write_text("only here\n")
        (net.share(self.N) / "tracks" / "old").mkdir()
        self.settle(net, self.N, "tracks/mine.txt")
        doc = self.sync(net, "tracks")
        self.assertEqual([(f["path"], f["action"]) for f in doc["files"]],
                         [("tracks/mine.txt", "extra")])
        self.assertTrue(mine.exists())
        # never synced, so N's own: with --delete it is kept aside, not removed
        doc = self.sync(net, "tracks", "--delete")
        acts = {f["path"]: f for f in doc["files"]}
        self.assertEqual(acts["tracks/mine.txt"]["action"], "conflict", doc)
        self.assertRegex(acts["tracks/mine.txt"]["kept_as"],
                         r"^mine\.sync-conflict-\d{8}-\d{6}-2\.txt$")
        self.assertFalse(mine.exists())
        self.assertFalse((net.share(self.N) / "tracks" / "old").exists())  # empty, M lacks it
        # a synced file M removed goes with --delete; stays (extra) without
        gone = top / "track00.txt"
        gone.unlink()
        self.wait_for_gone(net, self.M, "tracks/track00.txt")
        doc = self.sync(net, "tracks")
        self.assertEqual([(f["path"], f["action"]) for f in doc["files"]],
                         [("tracks/track00.txt", "extra")])
        doc = self.sync(net, "tracks", "--delete")
        self.assertEqual([(f["path"], f["action"]) for f in doc["files"]],
                         [("tracks/track00.txt", "removed")])
        self.assertFalse((net.share(self.N) / "tracks" / "track00.txt").exists())
        # changed on both sides: N's kept aside under its conflict name, then M's taken
        a_m = top / "disc1" / "track01.txt"
        a_n = net.share(self.N) / "tracks" / "disc1" / "track01.txt"
        a_m.write_bytes(b"M's new words\n")
        a_n.write_bytes(b"N's own words\n")
        self.settle(net, self.M, "tracks/disc1/track01.txt")
        self.settle(net, self.N, "tracks/disc1/track01.txt")
        doc = self.sync(net, "tracks")
        self.assertEqual(doc["conflicts"], 1, doc)
        kept = [f for f in doc["files"] if f["action"] == "conflict"][0]["kept_as"]
        self.assertRegex(kept, r"^track01\.sync-conflict-\d{8}-\d{6}-2\.txt$")
        self.assertEqual((a_n.parent / kept).read_bytes(), b"N's own words\n")
        self.assertEqual(a_n.read_bytes(), b"M's new words\n")
        # changed on M only: replaced, no conflict
        a_m.write_bytes(b"M again\n")
        self.settle(net, self.M, "tracks/disc1/track01.txt")
        self.settle(net, self.N, "tracks/disc1/track01.txt")
        doc = self.sync(net, "tracks")
        self.assertEqual(doc["conflicts"], 0, doc)
        self.assertEqual(a_n.read_bytes(), b"M again\n")
        self.assertEqual(len(list(a_n.parent.glob("track01.sync-conflict-*"))), 1)

    def wait_for_gone(self, net, pid, path):
        def ok():
            r = net.peer(pid, "browse", str(pid), os.path.dirname(path), "--json")
            return r.returncode == 0 and all(e["name"] != os.path.basename(path)
                                             for e in json.loads(r.stdout)["entries"])
        net.wait_for(ok, timeout=30, step=0.1)


class SyncDefences(SyncCase):
    def test_bad_names_are_usage_errors(self):
        net = self.start()
        for bad in ("..", "/etc", "a/b", ".floodshare"):
            r = net.peer(self.N, "sync", bad, "from", str(self.M))
            self.assertEqual(r.returncode, 64, (bad, r.stdout, r.stderr))
            self.assertIn(bad if bad != ".floodshare" else "not a name", r.stderr)
        r = net.peer(self.N, "sync", "x", "to", str(self.M))
        self.assertEqual(r.returncode, 64)
        r = net.peer(self.N, "sync", "x", "from", str(self.M), "--force")
        self.assertEqual(r.returncode, 64)
        self.assertIn("--force", r.stderr)

    def test_links_here_are_never_followed(self):
        net = self.start()
        top = net.share(self.M) / "docs"
        (top / "sub").mkdir(parents=True)
        (top / "sub" / "x.txt").write_text("from M\n")
        (top / "y.txt").write_text("from M too\n")
        self.settle(net, self.M, "docs/sub/x.txt")
        self.settle(net, self.M, "docs/y.txt")
        outside = self.tmpdir() / "outside"
        outside.mkdir()
        (outside / "y.txt").write_text("precious\n")
        mine = net.share(self.N) / "docs"
        mine.mkdir()
        os.symlink(outside, mine / "sub")             # a folder link on the way
        os.symlink(outside / "y.txt", mine / "y.txt")  # a file link in place
        doc = self.sync(net, "docs", code=1)
        self.assertEqual(sorted(os.listdir(outside)), ["y.txt"])  # nothing written through
        self.assertEqual((outside / "y.txt").read_text(), "precious\n")
        self.assertTrue((mine / "y.txt").is_symlink())  # nor the link replaced
        self.assertIn("docs/sub", doc["error"])
        # the item itself a link: refused whole
        os.symlink(outside, net.share(self.N) / "linked")
        (net.share(self.M) / "linked").mkdir()
        (net.share(self.M) / "linked" / "z.txt").write_text("z\n")
        self.settle(net, self.M, "linked/z.txt")
        doc = self.sync(net, "linked", code=1)
        self.assertIn("link", doc["error"])
        self.assertEqual(sorted(os.listdir(outside)), ["y.txt"])

    def test_hostile_listing_cannot_leave_name(self):
        net = self.start()
        for name in ("..", "%2Fetc", "a%2F..%2F..%2Fx"):
            fake = HostileM(name)
            fake.start()
            try:
                r = net.peer(self.N, "sync", "evil", "from", fake.addr, "--json")
            finally:
                fake.close()
            self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
            doc = last_json(r.stdout)
            self.assertIn('listing "evil"', doc["error"])
            self.assertFalse((net.share(self.N) / "evil").exists())
            self.assertFalse((net.share(self.N).parent / "x").exists())


class HostileM(FakeHolder):
    """A peer whose share holds a folder `evil` that lists one entry named `bad` (as sent:
    percent-encoded), a folder, so a careless sync would go on below it."""

    def __init__(self, bad: str):
        super().__init__()
        self.bad = bad

    def _conn(self, c):
        f = c.makefile("rb")
        try:
            while True:
                line = f.readline().decode()
                if not line:
                    return
                fl = fields(line.strip())
                path = fl.get("path")
                if path is None:
                    body = "d 10 - 1764955200 - evil\n"
                else:
                    body = f"d 10 - 1764955200 - {self.bad}\n"
                head = (f"FLOOD/1 LISTING peer=9 total=1 offset=0 count=1 next=1 len={len(body)}"
                        + (f" path={path}" if path else "") + "\n")
                c.sendall(head.encode() + body.encode())
        except OSError:
            return
        finally:
            c.close()


if __name__ == "__main__":
    unittest.main()
