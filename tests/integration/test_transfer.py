"""Transfers: folders arrive whole, lying holders are refused, nothing is overwritten."""

import json
import os
import unittest

from evilpeer import EvilPeer
from fsnet import NetCase, last_json, md5_of, raw, state_leftovers, tree


def leftovers(share):
    """What an interrupted or refused transfer could leave behind in the state folder (the share
    index's own cache file and piece lists live there too, and are not leftovers)."""
    return state_leftovers(share)


class TransferTest(NetCase):
    def test_nested_folder_of_50_files_arrives_intact(self):
        net = self.net("topologies/seed-chain.topo")
        album = net.share(3) / "album"
        for i in range(50):
            sub = album / f"d{i % 5}" / f"e{i % 3}"
            sub.mkdir(parents=True, exist_ok=True)
            (sub / f"f{i}.bin").write_bytes(os.urandom(100 + i * 37))
        (album / "empty" / "deeper").mkdir(parents=True)
        net.wait_indexed(3, "album")  # the holder hashes on its own thread, not in the GET
        r = net.peer(1, "get", "album", "--json")
        self.assertOk(r)
        doc = last_json(r.stdout)
        self.assertEqual(doc["kind"], "folder")
        self.assertEqual(tree(net.share(1) / "album"), tree(album))
        self.assertEqual(sum(1 for p in (net.share(1) / "album").rglob("*") if p.is_file()), 50)
        self.assertTrue((net.share(1) / "album" / "empty" / "deeper").is_dir())
        self.assertEqual(leftovers(net.share(1)), [])

    def _evil(self, net, mode, name="evil.txt", genuine=b"the genuine content\n" * 50):
        evil = EvilPeer(name, genuine, mode)
        self.addCleanup(evil.close)
        cfg = json.loads(net.peer(1, "config", "--json").stdout)
        self.assertOk(net.peer(1, "modify", "neighbours", ", ".join(cfg["neighbours"] + [evil.addr])))
        return evil

    def test_holder_serving_other_content_is_rejected_and_nothing_left(self):
        for mode in ("content", "payload", "traversal", "fetch-content", "fetch-crc"):
            with self.subTest(mode=mode):
                net = self.net("topologies/seed-chain.topo")
                evil = self._evil(net, mode)
                r = net.peer(1, "get", "evil.txt")
                self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
                self.assertIn("every holder failed", r.stderr)
                self.assertEqual(evil.requests, 1)
                self.assertFalse((net.share(1) / "evil.txt").exists())
                self.assertFalse((net.dir / "escaped.txt").exists())
                self.assertFalse((net.share(1).parent / "escaped.txt").exists())
                self.assertEqual(leftovers(net.share(1)), [])
                self.assertEqual(net.stats(1)["downloads_failed"], 1)

    def test_manifest_that_climbs_out_of_the_folder_is_refused(self):
        net = self.net("topologies/seed-chain.topo")
        evil = self._evil(net, "manifest-escape", name="album")
        r = net.peer(1, "get", "album")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("bad manifest: manifest path is not a valid relative path", r.stderr)
        self.assertEqual(evil.requests, 1)
        self.assertFalse((net.share(1) / "album").exists())
        self.assertFalse((net.share(1) / "escaped.txt").exists())
        self.assertFalse((net.share(1) / ".floodshare" / "escaped.txt").exists())
        self.assertEqual(leftovers(net.share(1)), [])

    def test_hit_for_another_name_is_dropped(self):
        net = self.net("topologies/seed-chain.topo")
        evil = self._evil(net, "othername")
        r = net.peer(1, "get", "evil.txt")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("not found", r.stderr)
        self.assertEqual(evil.requests, 0)
        self.assertFalse((net.share(1) / "planted.txt").exists())
        self.assertEqual(net.stats(1)["found_dropped"], 1)

    def test_after_a_lying_holder_the_next_holder_is_tried(self):
        net = self.net("topologies/seed-chain.topo")
        genuine = b"the genuine content\n" * 50
        (net.share(3) / "evil.txt").write_bytes(genuine)
        net.wait_indexed(3, "evil.txt")
        evil = self._evil(net, "content", genuine=genuine)
        # Hold the honest path (peer 2) still until the liar's hit has reached peer 1, so the
        # liar is tried first whatever the timing, then let the honest hit through.
        r = net.get_first_hit_elsewhere(1, "evil.txt", hold=2, timeout=30)
        self.assertOk(r)
        doc = last_json(r.stdout)
        self.assertEqual(doc["peer"], 3)
        self.assertEqual(evil.requests, 1)
        self.assertEqual([a["ok"] for a in doc["attempts"]], [False, True])
        self.assertIn("MD5 mismatch", doc["attempts"][0]["error"])
        self.assertEqual((net.share(1) / "evil.txt").read_bytes(), genuine)

    def test_existing_file_is_not_overwritten(self):
        net = self.net("topologies/seed-chain.topo")
        mine = net.share(1) / "3.txt"
        mine.write_text("my own 3.txt, keep it\n")
        r = net.peer(1, "get", "3.txt")
        self.assertEqual(r.returncode, 1)
        self.assertIn("already exists", r.stderr)
        self.assertEqual(mine.read_text(), "my own 3.txt, keep it\n")

    def test_dotdot_and_absolute_names_are_refused(self):
        net = self.net("topologies/seed-chain.topo")
        for bad in ("../3.txt", "/etc/passwd", "a/b", "..", "."):
            r = net.peer(1, "get", bad)
            self.assertEqual(r.returncode, 64, bad)
            self.assertIn("not a valid item name", r.stderr)
        secret = net.dir / "secret.txt"
        secret.write_text("outside the share\n")
        for path in ("../secret.txt", "/etc/passwd", "3.txt/../../secret.txt"):
            line = f"FLOOD/1 REQUEST path={path} md5={'0' * 32}\n".encode()
            out = raw(net.addr(3), line)
            self.assertTrue(out.startswith(b"FLOOD/1 ERROR code=malformed"), out)
            self.assertNotIn(b"outside the share", out)
        # a symlink that leaves the share is never served either
        os.symlink(secret, net.share(3) / "link.txt")
        out = raw(net.addr(3), f"FLOOD/1 REQUEST path=link.txt md5={'0' * 32}\n".encode())
        self.assertTrue(out.startswith(b"FLOOD/1 ERROR code=notfound"), out)
        self.assertOk(net.peer(1, "get", "3.txt"))  # and the peer still serves

    def test_request_for_a_changed_item_is_refused(self):
        net = self.net("topologies/seed-chain.topo")
        out = raw(net.addr(3), f"FLOOD/1 REQUEST path=3.txt md5={'0' * 32}\n".encode())
        self.assertTrue(out.startswith(b"FLOOD/1 ERROR code=changed"), out)


if __name__ == "__main__":
    unittest.main()
