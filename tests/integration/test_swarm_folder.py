"""Large folders spread over many holders (issue 12, docs/DESIGN.md Transfers, "Large folders
over many holders"): a folder of 64 MiB or more whose FOUND carries a folder root (the hash of
its files' piece roots) is fetched file by file, each file swarmed over every holder of the
folder's key whose ROOTLIST hashed to that root. Real peers on star:N (peer 1 in the middle);
the holder with a lying ROOTLIST is a FolderHolder (fakeholder.py)."""

import hashlib
import json
import os
import signal
import subprocess
import time
import unittest

from fakeholder import FolderHolder
from fsnet import BIN, NetCase, last_json

MiB = 1 << 20
KiB = 1 << 10


def make_folder() -> dict[str, bytes]:
    """About 80 MiB: 3 large files and 100 small ones (some a level down)."""
    files = {f"big{i}.bin": os.urandom(24 * MiB) for i in range(3)}
    for i in range(100):
        files[f"{'small' if i % 2 else 'deep/small'}{i:03}.dat"] = os.urandom(60 * KiB + i)
    return files


def write_folder(root, files):
    for p, b in files.items():
        (root / p).parent.mkdir(parents=True, exist_ok=True)
        (root / p).write_bytes(b)


def read_folder(root) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


class SwarmFolderTest(NetCase):
    def holders(self, n, files, rate):
        net = self.net(f"star:{n + 1}", seed_files=False)
        for pid in range(2, n + 2):
            write_folder(net.share(pid) / "album", files)
        for pid in range(2, n + 2):
            net.wait_indexed(pid, "album")
            self.assertOk(net.peer(pid, "modify", "upload_rate", rate))
        return net

    def folder_md5(self, net, pid=2):
        items = json.loads(net.peer(pid, "ls", "--json").stdout)["items"]
        return next(i["md5"] for i in items if i["name"] == "album")

    def test_large_folder_spreads_over_holders(self):
        files = make_folder()
        size = sum(len(b) for b in files.values())
        net = self.holders(3, files, "6M")
        md5 = self.folder_md5(net)
        # a fourth holder of the same key whose ROOTLIST does not hash to the folder root
        liar = FolderHolder("album", files)
        liar.roots_mode = "tampered"
        self.addCleanup(liar.close)
        # and one announcing a 1 TiB list: refused by its length, before a byte is read
        huge = FolderHolder("album", files)
        huge.roots_mode = "huge"
        self.addCleanup(huge.close)
        # and one with the true roots that sends bad pieces: bad in the first file it serves,
        # then never asked again for this folder
        bad = FolderHolder("album", files)
        bad.corrupt = True
        self.addCleanup(bad.close)
        cfg = json.loads(net.peer(1, "config", "--json").stdout)
        self.assertOk(net.peer(1, "modify", "neighbours", ", ".join(
            cfg["neighbours"] + [liar.addr, huge.addr, bad.addr])))
        t0 = time.monotonic()
        r = net.peer(1, "get", "album", "--json", timeout=120)
        took = time.monotonic() - t0
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        doc = last_json(r.stdout)
        self.assertEqual(doc["md5"], md5)
        self.assertEqual(read_folder(net.share(1) / "album"), files)
        # every real holder delivered a real share of it, and the shares add up
        by = {s["holder"]: s for s in doc["sources"]}
        real = [s for h, s in by.items() if h not in (liar.addr, huge.addr, bad.addr)]
        self.assertEqual(len(real), 3, doc)
        for s in real:
            self.assertGreaterEqual(s["bytes"], size // 10, doc)
            self.assertEqual(s["state"], "done", doc)
        self.assertEqual(sum(s["bytes"] for s in doc["sources"]), size, doc)
        # the liar was asked for its roots, cut for them, and sent no byte of any file
        self.assertGreaterEqual(liar.roots_asked, 1)
        self.assertEqual(liar.frames, 0)
        self.assertNotEqual(by.get(liar.addr, {}).get("state"), "done", doc)
        self.assertIn("ROOTLIST does not hash to the folder root", net.log(1))
        self.assertGreaterEqual(huge.roots_asked, 1)
        self.assertEqual(huge.frames, 0)
        self.assertIn(f"holder announced a root list of {1 << 40} bytes for {len(files)} files",
                      net.log(1))
        self.assertEqual(by[bad.addr]["state"], "bad", doc)
        self.assertEqual(by[bad.addr]["bytes"], 0, doc)
        self.assertGreaterEqual(bad.roots_asked, 1)
        self.assertLessEqual(bad.frames, 8)  # one span at most: 103 files would ask more
        self.assertGreaterEqual(net.stats(1)["bad_chunks"], 1)
        self.assertGreaterEqual(net.stats(1)["holders_cut"], 3)
        # 3 x 6 MB/s: well under what one holder alone would take (80 MiB / 6 MB/s = 14 s)
        print(f"\n80 MiB folder from 3 holders at 6M each: {took:.1f} s, "
              + ", ".join(f"{s['holder']} {s['bytes'] / MiB:.1f} MiB" for s in real))

    def test_holder_that_does_not_know_roots_gives_the_folder_as_before(self):
        # the only holder answers ROOTS with ERROR code=unknown (and hangs up): the folder
        # comes from it one file at a time, without piece hashes, on a new connection
        files = {"big.bin": os.urandom(65 * MiB)}
        files.update({f"s{i}.txt": os.urandom(1000 + i) for i in range(5)})
        net = self.net("star:2", seed_files=False)
        old = FolderHolder("album", files)
        old.roots_mode = "unknown"
        self.addCleanup(old.close)
        self.assertOk(net.peer(1, "modify", "neighbours", old.addr))
        r = net.peer(1, "get", "album", "--json", timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(read_folder(net.share(1) / "album"), files)
        self.assertEqual(old.roots_asked, 1)
        self.assertIn("holder does not know ROOTS", net.log(1))

    def test_resumed_folder_get_refetches_little(self):
        files = make_folder()
        size = sum(len(b) for b in files.values())
        net = self.holders(3, files, "4M")
        get = subprocess.Popen([str(BIN), "--run", str(net.dir), "peer", "1", "get", "album",
                                "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
        self.addCleanup(lambda: get.poll() is None and get.kill())
        sent = lambda: sum(net.stats(p)["bytes_sent"] for p in (2, 3, 4))
        net.wait_for(lambda: sent() >= size // 2, timeout=60, step=0.05)
        net.kill(1)
        get.communicate(timeout=30)
        before = sent()
        net.restart(1)
        r = net.peer(1, "get", "album", "--json", timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        doc = last_json(r.stdout)
        self.assertEqual(read_folder(net.share(1) / "album"), files)
        again = sent() - before
        kept = doc["resumed_from"]
        self.assertGreater(kept, size // 3, doc)
        # what was sent in all beyond the folder's size was re-sent: what sat in the sockets
        # of the sources at the kill (a holder counts a frame once written into its socket:
        # up to a span, 2 MiB at 4M, each) and the endgame's second copies; losing the staged
        # files or the partials would re-send the whole first half instead
        resent = before + again - size
        print(f"\nkilled at {before / MiB:.1f} MiB sent, kept {kept / MiB:.1f} MiB, re-sent "
              f"{resent / KiB:.0f} KiB")
        self.assertLessEqual(resent, size // 10, (before, again, kept, size))


if __name__ == "__main__":
    unittest.main()
