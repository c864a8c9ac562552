"""The flood: queries reach peers within TTL, once per peer, and hits come back hop by hop."""

import json
import unittest

from fsnet import NetCase, last_json, md5_of, state_leftovers


class FloodTest(NetCase):
    def test_file_four_hops_away_on_a_line_is_downloaded_intact(self):
        net = self.net("topologies/line5.topo")
        r = net.peer(1, "get", "target.txt", "--json")
        self.assertOk(r)
        doc = last_json(r.stdout)
        self.assertTrue(doc["ok"])
        self.assertEqual(doc["peer"], 5)
        self.assertEqual(doc["hops"], 4)
        self.assertRegex(doc["query_id"], r"^[0-9a-f]{16}$")
        got, want = net.share(1) / "target.txt", net.share(5) / "target.txt"
        self.assertEqual(md5_of(got), md5_of(want))
        self.assertEqual(doc["md5"], md5_of(want))
        # the hit went back hop by hop: every middle peer relayed it once
        for mid in (2, 3, 4):
            self.assertEqual(net.stats(mid)["hits_relayed"], 1, f"peer {mid}")
        self.assertIn("relayed back", net.log(3))

    def test_ttl_too_small_exits_1_and_writes_nothing(self):
        net = self.net("topologies/line5.topo", ttl=3)
        before = sorted(p.name for p in net.share(1).iterdir())
        r = net.peer(1, "get", "target.txt")
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("not found", r.stderr)
        self.assertEqual(sorted(p.name for p in net.share(1).iterdir()), before)
        self.assertEqual(state_leftovers(net.share(1)), [])
        # the query died at peer 4: it searched (ttl 1) but did not forward
        self.assertEqual(net.stats(4)["queries_handled"], 1)
        self.assertEqual(net.stats(4)["queries_forwarded"], 0)
        self.assertEqual(net.stats(5)["queries_handled"], 0)

    def _handled_once(self, spec, origin, name):
        net = self.net(spec)
        r = net.peer(origin, "search", name, "--json")  # waits the whole hit window
        self.assertOk(r)
        self.assertEqual(len(last_json(r.stdout)["hits"]), 1)
        stats = {pid: net.stats(pid) for pid in net.peers}
        for pid, s in stats.items():
            want = 0 if pid == origin else 1
            self.assertEqual(s["queries_handled"], want, f"peer {pid} handled the query "
                             f"{s['queries_handled']} times")
        return stats

    def test_each_peer_handles_a_query_once_in_a_ring(self):
        stats = self._handled_once("ring:6", 1, "4.txt")
        # the two ways round meet: a copy is dropped there, or (when the long way won) it came
        # with more ttl left, was forwarded again, and spared the peer that sent less
        self.assertGreaterEqual(sum(s["duplicates_dropped"] + s["duplicates_forwarded"]
                                    for s in stats.values()), 1)

    def test_each_peer_handles_a_query_once_in_a_full_mesh(self):
        stats = self._handled_once("mesh:4", 1, "3.txt")
        # 3 GETs from the origin, then each peer forwards to its 2 other neighbours: 6 copies
        # arrive at peers that have already handled the id, and all 6 are dropped. A copy that
        # raced ahead with ttl 1 makes the origin's ttl-2 copy one with more ttl left, which is
        # forwarded again to those of the 2 others that have not sent this peer a copy with as
        # much ttl (at most 2 more GETs, dropped where they arrive).
        again = sum(s["duplicates_forwarded"] for s in stats.values())
        sent = sum(s["queries_forwarded"] for s in stats.values())
        self.assertEqual(sum(s["duplicates_dropped"] for s in stats.values()), sent - again)
        self.assertTrue(6 <= sent <= 6 + 2 * again, (sent, again))

    def test_search_lists_every_holder_with_hops(self):
        net = self.net("ring:6")
        (net.share(3) / "4.txt").write_text("a second copy\n")
        net.wait_indexed(3, "4.txt")  # hashed on the holder's own thread, not in the GET
        r = net.peer(1, "search", "4.txt", "--json")
        self.assertOk(r)
        hits = dict((h["peer"], h["hops"]) for h in last_json(r.stdout)["hits"])
        self.assertEqual(sorted(hits), [3, 4])
        # hops is the path the first copy of the query took: 1-2-3 (2 hops), or the long way
        # round 1-6-5-4-3 (4) when peer 2 is slower; peer 4 is 3 hops away either way.
        self.assertIn(hits[3], (2, 4))
        self.assertEqual(hits[4], 3)
        text = net.peer(1, "search", "4.txt")
        self.assertOk(text)
        self.assertIn("2 hits", text.stdout)

    def test_down_peer_is_routed_around(self):
        net = self.net("ring:6")
        net.kill(2)  # 1-2-3-4 is cut; 1-6-5-4 remains
        r = net.peer(1, "get", "4.txt", "--json")
        self.assertOk(r)
        self.assertEqual(last_json(r.stdout)["peer"], 4)
        self.assertEqual(md5_of(net.share(1) / "4.txt"), md5_of(net.share(4) / "4.txt"))
        self.assertGreaterEqual(net.stats(1)["neighbours_skipped"], 1)

    def test_ttl_above_max_is_clamped_and_ttl_0_dropped(self):
        from fsnet import raw
        net = self.net("topologies/seed-chain.topo")
        # From an address that is nobody's neighbour: a connection claiming peer 1's address
        # would be dropped as spoofed (peer 1's own link to 2 proved that address).
        host, port = "127.0.0.1", 9
        h2 = net.addr(2)
        for qid, ttl in (("a0a0a0a0a0a0a0a0", 200), ("b0b0b0b0b0b0b0b0", 0)):
            raw(h2, (f"FLOOD/1 GET qid={qid} ttl={ttl} hops=0 origin={host}:{port} "
                     f"from={host}:{port} name=nothing.txt\n").encode(), read=False)
        self.wait_for(lambda: net.stats(2)["ttl_dropped"] == 1 and net.stats(3)["queries_handled"] == 1)
        s2 = net.stats(2)
        self.assertEqual(s2["ttl_clamped"], 1)
        self.assertEqual(s2["queries_handled"], 1)  # the ttl=0 copy was not handled
        self.assertIn("clamped to 15", net.log(2))

    def wait_for(self, cond, timeout=5.0):
        import time
        deadline = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > deadline:
                self.fail("condition not reached in time")
            time.sleep(0.05)

    def test_found_for_an_unknown_query_is_dropped(self):
        from fsnet import raw
        net = self.net("topologies/seed-chain.topo")
        host, port = net.addr(2)
        line = (f"FLOOD/1 FOUND qid=00112233aabbccdd hops=1 from={host}:{port} "
                f"holder={host}:{port} peer=9 "
                f"kind=file size=1 md5={'0' * 32} path=x name=x\n").encode()
        raw((host, port), line, read=False)
        for _ in range(50):
            if net.stats(2)["found_dropped"] == 1:
                break
            import time
            time.sleep(0.05)
        self.assertEqual(net.stats(2)["found_dropped"], 1)
        self.assertEqual(net.stats(1)["hits_received"], 0)


if __name__ == "__main__":
    unittest.main()
