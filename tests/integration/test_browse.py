"""Browse (issue 13, part 1): `peer N browse M [PATH]` lists another peer's share page by page,
`[accept] browse` decides who may, and `peer N get PATH from M` fetches one entry of that listing
without a flood.

- A share of 10,000 files lists whole, every name once, in pages of 1000 entries (the holder's
  entry bound), and a folder of long UTF-8 names in pages of at most 128 KiB (its byte bound),
  seen both through the CLI and on the wire.
- Inside a folder: its direct children only; links and the state folder are never listed.
- `[accept] browse = none` and `neighbours` refuse with "browsing not accepted from ADDR"; a
  client on another address claiming a neighbour's is refused too; `modify` changes it live.
- Names with `..`, absolute paths and links are refused, by the CLI and by the holder on the wire
  (a link is counted as symlinks_refused), and nothing outside the share is shown.
- `get PATH from M` downloads with no GET anywhere (no query started, none handled) and the MD5
  matches; cut off by Ctrl-C it resumes when asked again; it never overwrites. M may be a peer id
  or HOST:PORT.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import unittest
from pathlib import Path

from fsnet import BIN, NetCase, last_json, md5_of

MARKER = "OUTSIDE-THE-SHARE-b7e2"  # never inside a share: any sight of it is a leak


def listing(addr: tuple[str, int], path: str | None, offset: int, *,
            source: str = "127.0.0.1", claim: str | None = None) -> tuple[str, bytes]:
    """One raw BROWSE on a fresh connection from source: the answer's header line and body."""
    claim = claim or f"{source}:9"
    line = f"FLOOD/1 BROWSE from={claim} offset={offset}"
    if path is not None:
        line += f" path={path}"
    with socket.create_connection(addr, timeout=10, source_address=(source, 0)) as s:
        s.sendall((line + "\n").encode())
        buf = b""
        while b"\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
        head, _, rest = buf.partition(b"\n")
        header = head.decode()
        m = re.search(r" len=(\d+)", header)
        want = int(m.group(1)) if m and header.startswith("FLOOD/1 LISTING") else 0
        while len(rest) < want:
            chunk = s.recv(65536)
            if not chunk:
                break
            rest += chunk
        return header, rest[:want]


def field(header: str, key: str) -> str:
    m = re.search(rf"(?:^| ){key}=(\S*)", header)
    assert m, f"no {key}= in {header!r}"
    return m.group(1)


class BrowseTest(NetCase):
    def setUp(self):
        super().setUp()
        # 1 - 2 - 3, each peer on its own 127.0.0.N, so that a peer's address is its own.
        self.n = self.net("line:3", per_peer_address=True)
        self.outside = self.tmpdir()
        (self.outside / f"{MARKER}.txt").write_text(MARKER)

    def addr_text(self, pid: int) -> str:
        host, port = self.n.addr(pid)
        return f"{host}:{port}"

    def events(self, pid: int) -> list[dict]:
        r = self.n.peer(pid, "events", "--json")
        self.assertOk(r, "events")
        return last_json(r.stdout)["events"]

    def browse_json(self, pid: int, *args: str) -> dict:
        r = self.n.peer(pid, "browse", *args, "--json")
        self.assertOk(r, "browse")
        return json.loads(r.stdout)

    def test_ten_thousand_entries_list_in_pages_every_name_once(self):
        big = self.n.share(2) / "many"
        big.mkdir()
        for i in range(10000):
            (big / f"f{i:05d}.txt").write_text(str(i))
        doc = self.browse_json(1, "2", "many")
        names = [e["name"] for e in doc["entries"]]
        self.assertEqual(doc["total"], 10000)
        self.assertEqual(len(names), 10000)
        self.assertEqual(sorted(set(names)), [f"f{i:05d}.txt" for i in range(10000)])
        # The holder's entry bound: 1000 a page, so ten pages, and no limit was hit.
        self.assertEqual(doc["pages"], 10, doc["pages"])
        print(f"\n10,000 entries: {doc['pages']} pages in {doc['seconds']:.3f} s")
        # The browsed peer's trace: one browse_served per page, their counts adding up.
        served = [e for e in self.events(2) if e["type"] == "browse_served" and
                  e["name"] == "many" and e["from"] == self.addr_text(1)]
        self.assertEqual([(e["bytes"], e["count"], e["size"]) for e in served],
                         [(k * 1000, 1000, 10000) for k in range(10)])
        text = self.n.peer(2, "events").stdout
        self.assertIn('listed "many" to peer 1: entries 9000..10000 of 10000',
                      text)
        # On the wire: every page at most 1000 entries and 128 KiB, next moves on by count.
        header, body = listing(self.n.addr(2), "many", 9500, source="127.0.0.1",
                               claim=self.addr_text(1))
        self.assertTrue(header.startswith("FLOOD/1 LISTING "), header)
        self.assertEqual(field(header, "count"), "500")
        self.assertEqual(field(header, "next"), "10000")
        self.assertEqual(body.count(b"\n"), 500)
        header, _ = listing(self.n.addr(2), "many", 10001, claim=self.addr_text(1))
        self.assertIn("ERROR code=refused", header)
        self.assertIn("offset%20is%20past%20the%20end", header)

    def test_long_names_list_in_pages_bounded_in_bytes(self):
        folder = self.n.share(2) / "long"
        folder.mkdir()
        stem = "\u00e9" * 100  # 200 bytes of UTF-8, 600 once percent-encoded
        for i in range(600):
            (folder / f"{stem}{i:04d}").write_text("x")
        doc = self.browse_json(1, "2", "long")
        self.assertEqual(len({e["name"] for e in doc["entries"]}), 600)
        # 600 lines of over 600 bytes are over 360 KB: at least three pages of 128 KiB.
        self.assertGreaterEqual(doc["pages"], 3, doc["pages"])
        offset, pages = 0, 0
        while offset < 600:
            header, body = listing(self.n.addr(2), "long", offset, claim=self.addr_text(1))
            self.assertTrue(header.startswith("FLOOD/1 LISTING "), header)
            self.assertLessEqual(len(body), 128 * 1024)
            self.assertLessEqual(int(field(header, "count")), 1000)
            offset = int(field(header, "next"))
            pages += 1
        self.assertGreaterEqual(pages, 3)

    def test_inside_a_folder_only_its_children_and_never_links(self):
        share = self.n.share(2)
        (share / "docs" / "sub").mkdir(parents=True)
        (share / "docs" / "a.txt").write_text("hello\n")
        (share / "docs" / "sub" / "deep.txt").write_text("deep\n")
        os.symlink(self.outside, share / "docs" / "ln")
        os.symlink(self.outside / f"{MARKER}.txt", share / "docs" / "lnf")
        self.n.wait_indexed(2, "docs")
        top = self.browse_json(1, "2")
        self.assertEqual([e["name"] for e in top["entries"]], ["2.txt", "docs"])  # no .floodshare
        docs = self.browse_json(1, "2", "docs/")
        by = {e["name"]: e for e in docs["entries"]}
        self.assertEqual(sorted(by), ["a.txt", "sub"])
        self.assertEqual(by["a.txt"]["kind"], "file")
        self.assertEqual(by["a.txt"]["size"], 6)
        self.assertEqual(by["a.txt"]["md5"], md5_of(share / "docs" / "a.txt"))
        self.assertEqual(by["a.txt"]["mtime"], int((share / "docs" / "a.txt").stat().st_mtime))
        self.assertEqual(len(by["a.txt"]["root"]), 64)
        self.assertEqual(by["sub"]["kind"], "folder")
        self.assertEqual(by["sub"]["size"], 5)  # a folder shows the size of its files
        self.assertIsNone(by["sub"]["root"])
        r = self.n.peer(1, "browse", "2", "docs")
        self.assertOk(r)
        self.assertIn("a.txt", r.stdout)
        self.assertIn(md5_of(share / "docs" / "a.txt"), r.stdout)
        self.assertNotIn("ln", r.stdout.replace("listing", ""))

    def test_dotdot_absolute_and_links_refused(self):
        share = self.n.share(2)
        (share / "docs").mkdir()
        os.symlink(self.outside, share / "ln")
        os.symlink(self.outside, share / "docs" / "inner")
        for bad in ("../x", "docs/../..", "/etc", "a//b"):
            r = self.n.peer(1, "browse", "2", bad)
            self.assertEqual(r.returncode, 64, f"{bad}: {r.stderr}")
            self.assertIn("is not a path inside a share", r.stderr)
            r = self.n.peer(1, "get", bad, "from", "2")
            self.assertEqual(r.returncode, 64, f"get {bad}: {r.stderr}")
        before = self.n.stats(2)
        for link in ("ln", "docs/inner", "ln/sub"):
            r = self.n.peer(1, "browse", "2", link)
            self.assertEqual(r.returncode, 1, r.stdout)
            self.assertIn("path is outside the share or not allowed", r.stderr)
            self.assertNotIn(MARKER, r.stdout + r.stderr)
        after = self.n.stats(2)
        self.assertEqual(after["symlinks_refused"] - before["symlinks_refused"], 3)
        self.assertEqual(after["browse_refused"] - before["browse_refused"], 3)
        # The holder's own checks, on the wire: the parser refuses .. and absolute paths.
        for raw_path in ("..%2Fetc", "docs%2F..%2F..", "%2Fetc", "..", "ln"):
            header, body = listing(self.n.addr(2), raw_path, 0, claim=self.addr_text(1))
            self.assertTrue(header.startswith("FLOOD/1 ERROR "), f"{raw_path}: {header}")
            self.assertNotIn(MARKER.encode(), body)
        header, _ = listing(self.n.addr(2), ".floodshare", 0, claim=self.addr_text(1))
        self.assertIn("ERROR code=notfound", header)
        self.assertEqual(self.n.stats(2)["symlinks_refused"] - after["symlinks_refused"], 1)

    def test_accept_browse_none_and_neighbours(self):
        r = self.n.peer(2, "modify", "browse", "none")
        self.assertOk(r)
        self.assertIn("accept       browse none", self.n.peer(2, "config").stdout)
        self.assertEqual(json.loads(self.n.peer(2, "config", "--json").stdout)["accept"]["browse"],
                         "none")
        r = self.n.peer(1, "browse", "2")
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn(f"browsing not accepted from {self.addr_text(1)}", r.stderr)
        refused = [e for e in self.events(2) if e["type"] == "browse_refused"]
        self.assertEqual([(e["from"], e["reason"], e["detail"]) for e in refused],
                         [(self.addr_text(1), "policy",
                           f"browsing not accepted from {self.addr_text(1)}")])
        r = self.n.peer(1, "get", "2.txt", "from", "2")
        self.assertEqual(r.returncode, 1)
        self.assertIn(f"browsing not accepted from {self.addr_text(1)}", r.stderr)
        self.assertFalse((self.n.share(1) / "2.txt").exists())
        self.assertOk(self.n.peer(2, "modify", "browse", "neighbours"))
        self.assertIn("browse = neighbours", (self.n.dir / "peer-2.ini").read_text())
        self.assertOk(self.n.peer(1, "browse", "2"))  # 1 is 2's neighbour
        self.assertOk(self.n.peer(3, "browse", "2"))  # and so is 3
        self.assertOk(self.n.peer(1, "modify", "browse", "neighbours"))
        r = self.n.peer(3, "browse", "1")  # 3 is not 1's neighbour
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn(f"browsing not accepted from {self.addr_text(3)}", r.stderr)
        # Claiming a neighbour's address from another address does not make one.
        header, _ = listing(self.n.addr(1), None, 0, source="127.0.0.3", claim=self.addr_text(2))
        self.assertIn("ERROR code=refused", header)
        self.assertIn(f"browsing%20not%20accepted%20from%20{self.addr_text(2)}", header)
        header, _ = listing(self.n.addr(1), None, 0, source="127.0.0.2", claim=self.addr_text(2))
        self.assertTrue(header.startswith("FLOOD/1 LISTING "), header)
        self.assertGreaterEqual(self.n.stats(1)["browse_refused"], 2)
        self.assertOk(self.n.peer(1, "modify", "browse", "any"))
        self.assertOk(self.n.peer(3, "browse", "1"))

    def test_get_from_fetches_without_a_flood(self):
        share3 = self.n.share(3)
        (share3 / "pack" / "in").mkdir(parents=True)
        data = os.urandom(6 * 1024 * 1024 + 7)
        (share3 / "pack" / "big.bin").write_bytes(data)
        (share3 / "pack" / "in" / "x.txt").write_text("x\n")
        self.n.wait_indexed(3, "pack")
        before = {pid: self.n.stats(pid) for pid in (1, 2, 3)}
        # 3 is two hops from 1 and not its neighbour: only a direct connection reaches it.
        # Cut off part-way (Ctrl-C: the CLI hangs up, the peer cancels), then asked again: it
        # resumes like any get.
        self.assertOk(self.n.peer(1, "modify", "download_rate", "2M"))
        cut = subprocess.Popen([str(BIN), "--run", str(self.n.dir), "peer", "1", "get",
                                "pack/big.bin", "from", "3"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
        self.n.wait_for(lambda: (self.n.active_download(1) or {}).get("done", 0) > 1 << 20,
                        timeout=20)
        cut.send_signal(signal.SIGINT)
        _, err = cut.communicate(timeout=20)
        self.assertEqual(cut.returncode, 130, err)  # the CLI's "interrupted"
        self.n.wait_for(lambda: self.n.active_download(1) is None, timeout=20)  # the peer saw it
        self.assertFalse((self.n.share(1) / "big.bin").exists())
        self.assertOk(self.n.peer(1, "modify", "download_rate", "0"))
        r = self.n.peer(1, "get", "pack/big.bin", "from", "3", "--json")
        self.assertOk(r, "get from")
        doc = json.loads(r.stdout.splitlines()[-1])
        self.assertTrue(doc["ok"], doc)
        self.assertGreater(doc["resumed_from"], 0, doc)
        self.assertEqual(doc["md5"], md5_of(share3 / "pack" / "big.bin"))
        self.assertEqual(md5_of(self.n.share(1) / "big.bin"), doc["md5"])
        host, port = self.n.addr(3)
        r = self.n.peer(1, "get", "pack/in", "from", f"{host}:{port}")
        self.assertOk(r, "get a folder from HOST:PORT")
        self.assertEqual((self.n.share(1) / "in" / "x.txt").read_text(), "x\n")
        after = {pid: self.n.stats(pid) for pid in (1, 2, 3)}
        for pid in (1, 2, 3):  # no GET was sent, handled or forwarded anywhere
            for k in ("queries_started", "queries_handled", "queries_forwarded"):
                self.assertEqual(after[pid][k], before[pid][k], f"peer {pid} {k}")
        self.assertEqual(after[1]["downloads"] - before[1]["downloads"], 2)
        # Never over an existing name.
        (self.n.share(3) / "pack" / "big.bin").write_bytes(b"other")
        r = self.n.peer(1, "get", "pack/big.bin", "from", "3")
        self.assertEqual(r.returncode, 1)
        self.assertIn("already exists", r.stderr)
        self.assertEqual(md5_of(self.n.share(1) / "big.bin"), doc["md5"])
        r = self.n.peer(1, "get", "pack/none.bin", "from", "3")
        self.assertEqual(r.returncode, 1)
        self.assertIn("has no \"pack/none.bin\"", r.stderr)

    def test_host_port_form_and_unknown_peer(self):
        host, port = self.n.addr(2)
        doc = self.browse_json(1, f"{host}:{port}")
        self.assertEqual(doc["peer"], 2)
        self.assertEqual([e["name"] for e in doc["entries"]], ["2.txt"])
        r = self.n.peer(1, "browse", "99")
        self.assertEqual(r.returncode, 64)
        self.assertIn("no peer 99", r.stderr)
        r = self.n.peer(1, "browse", "127.0.0.1:1")
        self.assertEqual(r.returncode, 1)
        self.assertIn("cannot connect", r.stderr)


if __name__ == "__main__":
    unittest.main()
