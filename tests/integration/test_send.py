"""test_send - `peer N send NAME to M` (issue 13): a send is an offer, the receiver pulls.

Real peers on 127.0.0.1 (line:3: 1 - 2 - 3, so 1 and 3 are not neighbours). Each refusal names
its reason and leaves the receiver's share exactly as it was; an accepted send arrives whole
(MD5 equal); a send cut off by killing the receiver resumes when run again; a receiver whose
disk is full refuses before a byte is written and keeps nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import unittest
from pathlib import Path

from fsnet import BIN, NetCase, last_json, make_big_file, md5_of, raw, tree
from test_faults import TmpfsShare

MiB = 1 << 20
STATE = ".floodshare"


def items(share: Path) -> dict[str, str]:
    """What a share holds for its users: every path and its MD5, the state folder left out."""
    return {k: v for k, v in tree(share).items() if k != STATE and not k.startswith(STATE + "/")}


def temporaries(share: Path) -> list[str]:
    """Partial downloads and staging folders in a share's state folder (the index's own files
    left out)."""
    state = share / STATE
    if not state.exists():
        return []
    return sorted(n for n in os.listdir(state)
                  if n not in ("index.cache", "pieces") and not n.startswith("index.cache.tmp-"))


class SendCase(NetCase):
    def start(self):
        net = self.net("line:3")
        for pid in (1, 2, 3):  # the neighbour links are up and proven before a send relies on them
            net.wait_indexed(pid, f"{pid}.txt")
        net.wait_for(lambda: net.stats(2)["links_proven"] >= 2, timeout=20, step=0.05)
        return net

    def port(self, net, pid: int) -> int:
        return net.addr(pid)[1]

    def refused(self, net, sender: int, name: str, receiver: int, want: str):
        """Sends and expects a refusal whose text contains want, with the receiver's share
        unchanged, byte for byte."""
        before = items(net.share(receiver))
        r = net.peer(sender, "send", name, "to", str(receiver), "--json")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        doc = last_json(r.stdout)
        self.assertFalse(doc["ok"])
        self.assertEqual(doc["status"], "refused", doc)
        self.assertIn(want, doc["error"])
        self.assertEqual(items(net.share(receiver)), before)
        self.assertEqual(temporaries(net.share(receiver)), [])
        return doc


class SendAccepted(SendCase):
    def test_file_and_folder_arrive_whole(self):
        net = self.start()
        r = net.peer(1, "send", "1.txt", "to", "2")
        self.assertOk(r)
        self.assertIn('sent "1.txt" to 127.0.0.1:', r.stdout)
        self.assertEqual(md5_of(net.share(2) / "1.txt"), md5_of(net.share(1) / "1.txt"))
        # a folder, by HOST:PORT, with --json
        host, port = net.addr(2)
        r = net.peer(3, "send", "album", "to", f"{host}:{port}", "--json")
        self.assertOk(r)
        doc = last_json(r.stdout)
        self.assertTrue(doc["ok"])
        self.assertEqual(doc["status"], "sent")
        self.assertEqual(doc["to"], f"{host}:{port}")
        self.assertEqual(doc["kind"], "folder")
        for key in ("name", "bytes", "seconds", "md5"):
            self.assertIn(key, doc)
        self.assertEqual(tree(net.share(2) / "album"), tree(net.share(3) / "album"))
        # the receiver's trace tells the story
        ev = json.loads(net.peer(2, "events", "--json").stdout)["events"]
        types = [e["type"] for e in ev]
        for t in ("offer_received", "offer_accepted", "transfer_started", "transfer_done"):
            self.assertIn(t, types)

    def test_unknown_item_and_bad_names(self):
        net = self.start()
        r = net.peer(1, "send", "nope.txt", "to", "2")
        self.assertEqual(r.returncode, 1)
        self.assertIn('"nope.txt" is not an item of this peer\'s share', r.stderr)
        for bad in ("..", "../etc", "/etc/passwd", "a/b"):
            r = net.peer(1, "send", bad, "to", "2")
            self.assertEqual(r.returncode, 64, bad + r.stderr)
            self.assertIn("is not a valid item name", r.stderr)


class SendFromTheDashboard(SendCase):
    def test_the_page_runs_send(self):
        from test_web import WebCase  # the dashboard helper: a `floodshare web` with its token
        net = self.start()
        w = WebCase.web(self, net)
        st, res = w.cmd("peer 1 send 1.txt to 2 --json")
        self.assertEqual((st, res["exit"]), (200, 0), res)
        self.assertTrue(last_json(res["stdout"])["ok"])
        self.assertEqual(md5_of(net.share(2) / "1.txt"), md5_of(net.share(1) / "1.txt"))


class SendRefused(SendCase):
    def test_send_from_none(self):
        net = self.start()
        self.assertOk(net.peer(2, "modify", "send_from", "none"))
        doc = self.refused(net, 1, "1.txt", 2, f"not accepted from 127.0.0.1:{self.port(net, 1)}")
        self.assertIn("send_from = none", doc["error"])
        ev = json.loads(net.peer(2, "events", "--json").stdout)["events"]
        self.assertIn("offer_refused", [e["type"] for e in ev])

    def test_neighbours_only_by_default(self):
        net = self.start()
        doc = self.refused(net, 1, "1.txt", 3, f"not accepted from 127.0.0.1:{self.port(net, 1)}")
        self.assertIn("send_from = neighbours", doc["error"])
        self.assertOk(net.peer(3, "modify", "send_from", "any"))
        self.assertOk(net.peer(1, "send", "1.txt", "to", "3"))

    def test_quota(self):
        net = self.start()
        make_big_file(net.share(1) / "big.bin", 3 * MiB)
        net.wait_indexed(1, "big.bin")
        used = sum(p.stat().st_size for p in net.share(2).rglob("*")
                   if p.is_file() and STATE not in p.parts)
        self.assertLess(used, 100 * 1024)
        self.assertOk(net.peer(2, "modify", "quota", "2M"))
        self.assertIn("quota 2 MiB", net.peer(2, "config").stdout)
        doc = self.refused(net, 1, "big.bin", 2, "over quota: ")
        self.assertRegex(doc["error"], r"over quota: [0-9.]+ (B|KiB) of 2 MiB used, item is 3 MiB")
        self.assertOk(net.peer(2, "modify", "quota", "4M"))
        self.assertOk(net.peer(1, "send", "big.bin", "to", "2"))

    def test_max_item(self):
        net = self.start()
        make_big_file(net.share(1) / "big.bin", 3 * MiB)
        net.wait_indexed(1, "big.bin")
        self.assertOk(net.peer(2, "modify", "max_item", "1M"))
        self.assertEqual(json.loads(net.peer(2, "config", "--json").stdout)["accept"]["max_item"], MiB)
        self.refused(net, 1, "big.bin", 2, "item too large: big.bin is 3 MiB, over max_item 1 MiB")
        r = net.peer(2, "modify", "max_item", "1X")
        self.assertEqual(r.returncode, 78)
        self.assertIn("[accept] max_item", r.stderr)

    def test_same_name_twice(self):
        net = self.start()
        self.assertOk(net.peer(1, "send", "1.txt", "to", "2"))
        (net.share(1) / "1.txt").write_text("another 1.txt\n")
        net.wait_for(lambda: json.loads(net.peer(1, "ls", "--json").stdout)["items"][0]["md5"]
                     == md5_of(net.share(1) / "1.txt"), timeout=20, step=0.05)
        self.refused(net, 1, "1.txt", 2, "already exists: 1.txt")
        self.assertNotEqual(md5_of(net.share(2) / "1.txt"), md5_of(net.share(1) / "1.txt"))

    def test_holder_must_be_the_host_the_offer_came_from(self):
        """Even with send_from = any, an offer naming another host as holder is refused: the
        receiver never dials a third machine because an offer said so."""
        net = self.start()
        self.assertOk(net.peer(2, "modify", "send_from", "any"))
        before = items(net.share(2))
        offer = (f"FLOOD/1 OFFER name=x.bin kind=file size=5 md5={'a' * 32} "
                 f"holder=127.0.0.9:{self.port(net, 1)} peer=1\n").encode()
        out = raw(net.addr(2), offer)
        self.assertIn(b"ERROR code=refused", out)
        self.assertIn(b"another%20host", out)
        self.assertEqual(items(net.share(2)), before)

    def test_bad_names_on_the_wire(self):
        net = self.start()
        self.assertOk(net.peer(2, "modify", "send_from", "any"))
        before = items(net.share(2))
        port = self.port(net, 1)
        for name, why in ((b"..", b"name%20is%20.%20or%20.."),
                          (b"%2Fetc%2Fpasswd", b"name%20contains%20'/'"),
                          (b"a/b", b"name%20contains%20'/'")):
            offer = (b"FLOOD/1 OFFER name=" + name + b" kind=file size=5 md5=" + b"a" * 32 +
                     b" holder=127.0.0.1:" + str(port).encode() + b" peer=1\n")
            out = raw(net.addr(2), offer)
            self.assertIn(b"ERROR code=malformed", out, name)
            self.assertIn(why, out, name)
        self.assertEqual(items(net.share(2)), before)
        self.assertOk(net.peer(1, "send", "1.txt", "to", "2"))  # M keeps serving


class SendResume(SendCase):
    def test_killed_receiver_resumes(self):
        net = self.start()
        size = 24 * MiB
        md5 = make_big_file(net.share(1) / "big.bin", size)
        net.wait_indexed(1, "big.bin")
        # any: the restarted receiver need not wait for its link to be proven again
        self.assertOk(net.peer(2, "modify", "send_from", "any"))
        self.assertOk(net.peer(2, "modify", "download_rate", "4M"))
        send = subprocess.Popen([str(BIN), "--run", str(net.dir), "peer", "1", "send", "big.bin",
                                 "to", "2", "--json"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        net.wait_for(lambda: (t := net.active_download(2)) is not None and t["done"] >= 6 * MiB,
                     timeout=30, step=0.02)
        # the same name again while the first is being received: refused, not raced
        r = net.peer(1, "send", "big.bin", "to", "2")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("refused: already exists: big.bin", r.stderr)
        net.kill(2)
        out, err = send.communicate(timeout=30)
        self.assertEqual(send.returncode, 1, out + err)
        self.assertFalse((net.share(2) / "big.bin").exists())
        net.restart(2)
        self.assertOk(net.peer(2, "modify", "download_rate", "0"))
        r = net.peer(1, "send", "big.bin", "to", "2", "--json", timeout=120)
        self.assertOk(r)
        doc = last_json(r.stdout)
        self.assertGreaterEqual(doc["resumed_from"], 4 * MiB, doc)
        self.assertLessEqual(doc["bytes"], size - 4 * MiB, doc)
        self.assertEqual(md5_of(net.share(2) / "big.bin"), md5)
        self.assertEqual(temporaries(net.share(2)), [])


class SendDiskFull(TmpfsShare, SendCase):
    """The receiver's share is a small tmpfs (root only; unmounted at the end)."""

    def test_full_disk_refuses_and_keeps_nothing(self):
        net = self.start()
        share = self.mount_tmpfs_share(net, 2, 8)
        self.assertOk(net.peer(2, "modify", "send_from", "any"))
        make_big_file(net.share(1) / "big.bin", 16 * MiB)
        net.wait_indexed(1, "big.bin")
        before = items(share)
        r = net.peer(1, "send", "big.bin", "to", "2", "--json")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        doc = last_json(r.stdout)
        self.assertEqual(doc["status"], "failed")
        self.assertIn("No space left on device", doc["error"])
        self.assertEqual(items(share), before)
        self.assertEqual(temporaries(share), [])
        self.assertOk(net.peer(1, "send", "1.txt", "to", "2"))  # the receiver keeps working


if __name__ == "__main__":
    unittest.main()
