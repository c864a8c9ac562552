"""Reshaping a running network (issue 14): scripts/topology add-peer, remove-peer, link, unlink,
and `peer N rm NAME`, with real peers.

Each reshape must change topology.json, the INIs of the peers involved and the running peers
themselves (no restart: the pid stays the same), and refuse bad input with exit status 64 and a
message naming what was wrong, changing nothing.

Run from tests/integration: python3 -m unittest -v test_reshape
"""

import configparser
import json
import os
import re
import subprocess
import unittest

from fsnet import BIN, TOPOLOGY, NetCase, last_json

EX_USAGE = 64


class ReshapeCase(NetCase):
    def topo(self, net, *args):
        return subprocess.run([str(TOPOLOGY), *args, "--run", str(net.dir), "--bin", str(BIN)],
                              capture_output=True, text=True, timeout=60)

    def ini_neighbours(self, net, pid):
        cfg = configparser.ConfigParser(inline_comment_prefixes=(";",))
        cfg.read(net.dir / f"peer-{pid}.ini")
        text = cfg.get("neighbours", "peers", fallback="")
        return sorted(a.strip() for a in text.split(",") if a.strip())

    def live_neighbours(self, net, pid):
        r = net.peer(pid, "config", "--json")
        self.assertOk(r)
        return sorted(json.loads(r.stdout)["neighbours"])

    def address(self, net, pid):
        info = json.loads((net.dir / "topology.json").read_text())
        return next(p["address"] for p in info["peers"] if p["id"] == pid)

    def assertRefused(self, r, words):
        self.assertEqual(r.returncode, EX_USAGE, f"stdout: {r.stdout}\nstderr: {r.stderr}")
        for w in words:
            self.assertIn(w, r.stderr)

    def assertUnchanged(self, net, before):
        self.assertEqual((net.dir / "topology.json").read_text(), before)


class TestLinks(ReshapeCase):
    def test_link_and_unlink_apply_live(self):
        net = self.net("line:3")
        pids = {p: net.pid(p) for p in (1, 2, 3)}
        r = self.topo(net, "link", "1", "3")
        self.assertOk(r)
        self.assertIn("applied it live", r.stdout)
        a3, a1 = self.address(net, 3), self.address(net, 1)
        self.assertIn(a3, self.ini_neighbours(net, 1))
        self.assertIn(a1, self.ini_neighbours(net, 3))
        self.assertIn(a3, self.live_neighbours(net, 1))
        self.assertIn(a1, self.live_neighbours(net, 3))
        info = json.loads((net.dir / "topology.json").read_text())
        self.assertIn([1, 3], info["links"])
        # The new link carries queries: peer 1's GET reaches peer 3 over it, hop 0. (Which copy
        # brings the hit back is a race: in a CI-like run the copy via peer 2 came first, while
        # the new link was still being dialled and proven, and a hit goes back once.)
        # (links count both ways: peer 1's four are its own two dials and their two back)
        net.wait_for(lambda: net.stats(1)["links_proven"] == 4, timeout=20)
        r = net.peer(1, "search", "3.txt", "--json")
        self.assertOk(r)
        self.assertTrue(last_json(r.stdout)["hits"], r.stdout)
        port1 = a1.rsplit(":", 1)[1]
        net.wait_for(lambda: re.search(r'get q\w+ "3\.txt" from 127\.0\.0\.1:%s ttl=\d+ hops=0'
                                        % port1, net.log(3)), timeout=10)

        r = self.topo(net, "unlink", "2", "3")
        self.assertOk(r)
        self.assertNotIn(self.address(net, 3), self.live_neighbours(net, 2))
        self.assertNotIn(self.address(net, 2), self.ini_neighbours(net, 3))
        # The last link of a peer: it is left with none, live and in its INI.
        self.assertOk(self.topo(net, "unlink", "1", "3"))
        self.assertEqual(self.live_neighbours(net, 3), [])
        self.assertEqual(self.ini_neighbours(net, 3), [])
        self.assertEqual({p: net.pid(p) for p in (1, 2, 3)}, pids, "nobody was restarted")

    def test_bad_links_are_refused_and_change_nothing(self):
        net = self.net("line:3")
        before = (net.dir / "topology.json").read_text()
        self.assertRefused(self.topo(net, "link", "2", "2"), ["peer 2 cannot be linked to itself"])
        self.assertRefused(self.topo(net, "link", "1", "2"), ["already linked"])
        self.assertRefused(self.topo(net, "link", "1", "9"), ["peer 9 is not in the network",
                                                              "peers: 1 2 3"])
        self.assertRefused(self.topo(net, "unlink", "1", "3"), ["peer 1 and peer 3 are not linked"])
        self.assertRefused(self.topo(net, "unlink", "7", "1"), ["peer 7 is not in the network"])
        self.assertRefused(self.topo(net, "link", "1", "x"), ["peer id 'x' is not a number"])
        self.assertUnchanged(net, before)
        self.assertEqual(self.live_neighbours(net, 2),
                         sorted([self.address(net, 1), self.address(net, 3)]))


class TestPeers(ReshapeCase):
    def test_add_peer_then_link_floods_through_it(self):
        net = self.net("line:2")
        r = self.topo(net, "add-peer", "--files", "new.txt", "box/inner.txt")
        self.assertOk(r)
        self.assertIn("added peer 3", r.stdout)
        info = json.loads((net.dir / "topology.json").read_text())
        three = next(p for p in info["peers"] if p["id"] == 3)
        self.assertEqual(three["neighbours"], [])
        self.assertTrue((net.dir / "share-3" / "box" / "inner.txt").is_file())
        r = net.peer(1, "search", "new.txt")
        self.assertEqual(r.returncode, 1, "not linked yet: nobody reaches peer 3")
        self.assertOk(self.topo(net, "link", "3", "2"))
        r = net.peer(1, "get", "new.txt", "--json")
        self.assertOk(r)
        self.assertTrue((net.share(1) / "new.txt").is_file())

    def test_add_peer_refuses_bad_files(self):
        net = self.net("line:2")
        before = (net.dir / "topology.json").read_text()
        self.assertRefused(self.topo(net, "add-peer", "--files", "../escape.txt"),
                           ["'..' component"])
        self.assertRefused(self.topo(net, "add-peer", "--files", ".floodshare/x"),
                           ["state folder"])
        self.assertUnchanged(net, before)
        self.assertFalse((net.dir / "peer-3.ini").exists())

    def test_remove_peer(self):
        net = self.net("ring:4")
        gone = net.pid(3)
        r = self.topo(net, "remove-peer", "3")
        self.assertOk(r)
        self.assertIn("was linked to 2 4", r.stdout)
        net.wait_for(lambda: not os.path.exists(f"/proc/{gone}"), timeout=10)
        self.assertFalse((net.dir / "peer-3.ini").exists())
        self.assertTrue((net.dir / "peer-3.log").exists(), "the log stays")
        for pid in (2, 4):
            self.assertEqual(len(self.live_neighbours(net, pid)), 1)
            self.assertEqual(len(self.ini_neighbours(net, pid)), 1)
        info = json.loads((net.dir / "topology.json").read_text())
        self.assertEqual([p["id"] for p in info["peers"]], [1, 2, 4])
        self.assertNotIn(3, [x for pair in info["links"] for x in pair])
        self.assertRefused(self.topo(net, "remove-peer", "3"), ["peer 3 is not in the network"])
        self.assertRefused(self.topo(net, "remove-peer", "0"), ["out of range"])


class TestRm(ReshapeCase):
    def test_rm_then_get_repeats_the_demo(self):
        net = self.net("line:2")
        self.assertOk(net.peer(1, "get", "2.txt"))
        r = net.peer(1, "get", "2.txt")
        self.assertEqual(r.returncode, 1)
        self.assertIn("already exists", r.stderr)
        r = net.peer(1, "rm", "2.txt")
        self.assertOk(r)
        self.assertIn('removed the file "2.txt"', r.stdout)
        self.assertFalse((net.share(1) / "2.txt").exists())
        ls = json.loads(net.peer(1, "ls", "--json").stdout)
        self.assertNotIn("2.txt", json.dumps(ls))
        self.assertOk(net.peer(1, "get", "2.txt"))
        # A folder goes with everything below it.
        r = net.peer(2, "rm", "album", "--json")
        self.assertOk(r)
        self.assertEqual(json.loads(r.stdout)["kind"], "folder")
        self.assertFalse((net.share(2) / "album").exists())

    def test_rm_refuses_names_outside_the_share(self):
        net = self.net("line:2")
        outside = self.tmpdir() / "precious.txt"
        outside.write_text("not the share's\n")
        (net.share(1) / "link").symlink_to(outside)
        for name in ("../peer-1.ini", str(outside), "..", "a/b"):
            r = net.peer(1, "rm", name)
            self.assertEqual(r.returncode, EX_USAGE, name)
            self.assertIn("is not a valid item name", r.stderr)
        self.assertTrue((net.dir / "peer-1.ini").exists())
        r = net.peer(1, "rm", "link")
        self.assertEqual(r.returncode, 1)
        self.assertIn("symbolic link", r.stderr)
        self.assertTrue(outside.exists())
        self.assertTrue((net.share(1) / "link").is_symlink(), "a link is refused, not removed")
        r = net.peer(1, "rm", ".floodshare")
        self.assertEqual(r.returncode, 1)
        self.assertIn("state folder", r.stderr)
        self.assertTrue((net.share(1) / ".floodshare").is_dir())
        r = net.peer(1, "rm", "missing.txt")
        self.assertEqual(r.returncode, 1)
        self.assertIn('holds no "missing.txt"', r.stderr)
        r = net.peer(1, "rm")
        self.assertEqual(r.returncode, EX_USAGE)
        self.assertIn("usage: peer N rm NAME", r.stderr)
        # The peer keeps serving after all that.
        self.assertOk(net.peer(2, "get", "1.txt"))


if __name__ == "__main__":
    unittest.main()
