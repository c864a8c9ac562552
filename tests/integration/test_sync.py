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


if __name__ == "__main__":
    unittest.main()
