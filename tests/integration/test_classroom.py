"""docs/CLASSROOM.md as executable truth: each exercise's commands, run the way the document
says (same topologies, same CLI commands, a peer stopped with SIGTERM by its pid and started again
by hand), and the facts the document states about what students will see.

Where the flood's shape depends on timing (which copy of a query reaches a peer first), the
document says so, and these tests assert what holds for every timing plus the exact numbers for
the timing the document describes (every peer's first copy came over a shortest path)."""

import json
import re
import shutil
import signal
import subprocess
import time
import unittest
from collections import deque

from fsnet import BIN, SRC, TOPOLOGY, NetCase, last_json, md5_of

DOC = SRC / "docs" / "CLASSROOM.md"
QID = re.compile(r"\(query ([0-9a-f]{16}),")


def qid_of(r) -> str:
    m = QID.search(r.stdout)
    assert m, f"no query id in {r.stdout!r}"
    return m[1]


def distances(info: dict, origin: int, dead: frozenset = frozenset()) -> dict[int, int]:
    """Hops from origin to every live peer over live peers (breadth first)."""
    nbrs = {p["id"]: p["neighbours"] for p in info["peers"]}
    dist, frontier = {origin: 0}, deque([origin])
    while frontier:
        a = frontier.popleft()
        for b in nbrs[a]:
            if b not in dist and b not in dead:
                dist[b] = dist[a] + 1
                frontier.append(b)
    return dist


class Classroom(NetCase):
    def trace(self, net, qid) -> dict:
        r = net.cli("trace", qid, "--json")
        self.assertOk(r)
        return json.loads(r.stdout)

    def handled_once(self, net, origin):
        for pid in net.peers:
            self.assertEqual(net.stats(pid)["queries_handled"], 0 if pid == origin else 1,
                             f"peer {pid}")

    def shortest_first(self, net, tr) -> bool:
        """Did every peer get its first copy over a shortest path? (The usual timing, and the
        one whose exact numbers the document gives.)"""
        dist = distances(net.info, tr["origin"])
        return all(n["hop"] == dist[n["peer"]] for n in tr["nodes"])

    # --- exercise 1 -----------------------------------------------------------------------------
    def test_exercise_1_ttl_and_the_horizon_on_a_line(self):
        net = self.net("topologies/classroom/line6.topo")
        self.assertEqual(net.info["ttl"], 2)

        # ttl 2: peers 2 and 3 see the query, peer 4 (3 hops) does not: not found
        r = net.peer(1, "get", "4.txt")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn('not found: no peer within ttl 2 has "4.txt"', r.stderr)
        self.assertFalse((net.share(1) / "4.txt").exists())
        tr = self.trace(net, qid_of(r))
        self.assertEqual({n["peer"]: n["hop"] for n in tr["nodes"]}, {1: 0, 2: 1, 3: 2})
        self.assertEqual(tr["counts"]["gets_sent"], 2)
        self.assertEqual(tr["hits"], [])
        # peer 3 searched it (ttl 1) and passed it on to nobody; nothing counts as a drop
        s3 = net.stats(3)
        self.assertEqual((s3["queries_handled"], s3["queries_forwarded"]), (1, 0))
        self.assertEqual(net.stats(4)["queries_handled"], 0)
        text = net.peer(3, "stats")
        self.assertOk(text)
        self.assertRegex(text.stdout, r"(?m)^drops +duplicate 0   ttl0 0   ")
        self.assertTrue(all(net.stats(p)["ttl_dropped"] == 0 for p in net.peers))

        # ttl 3 (changed live): 4.txt is found 3 hops away, back along 4 -> 3 -> 2 -> 1
        m = net.peer(1, "modify", "ttl", "3")
        self.assertOk(m)
        self.assertIn("ttl = 3 (applied, and saved to", m.stdout)
        r = net.peer(1, "get", "4.txt")
        self.assertOk(r)
        self.assertIn("found at peer 4", r.stdout)
        self.assertIn("3 hops away", r.stdout)
        self.assertEqual(md5_of(net.share(1) / "4.txt"), md5_of(net.share(4) / "4.txt"))
        qid = qid_of(r)
        tr = self.trace(net, qid)
        self.assertEqual(tr["hits"][0]["path"], [4, 3, 2, 1])
        self.assertEqual(tr["counts"]["gets_sent"], 3)
        text = net.cli("trace", qid)
        self.assertOk(text)
        self.assertIn("peer 4 -> peer 3 -> peer 2 -> peer 1  (arrived)", text.stdout)
        dot = net.cli("trace", qid, "--dot")
        self.assertOk(dot)
        self.assertEqual(sorted(re.findall(r'^\s*p(\d) \[label', dot.stdout, re.M)),
                         ["1", "2", "3", "4"])

        # the horizon of ttl t on a line is t hops: peer 6 needs ttl 5
        self.assertOk(net.peer(1, "modify", "ttl", "5"))
        r = net.peer(1, "get", "6.txt")
        self.assertOk(r)
        self.assertIn("found at peer 6", r.stdout)
        self.assertIn("5 hops away", r.stdout)

        # exercise 3's contrast: on a line, a dead peer cuts everything behind it
        net.kill(3, signal.SIGTERM)
        r = net.peer(1, "get", "5.txt")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn('not found: no peer within ttl 5 has "5.txt"', r.stderr)
        self.assertEqual(net.stats(2)["neighbours_skipped"], 1)
        evs = json.loads(net.peer(2, "events", "--json", qid_of(r)).stdout)["events"]
        failed = [e for e in evs if e["type"] == "send_failed"]
        self.assertEqual([(e["msg"], e["to"], e["reason"]) for e in failed],
                         [("GET", "%s:%d" % net.addr(3), "ECONNECT")])
        # the query for 5.txt never got past peer 2: peer 4 handled 4.txt and 6.txt, peer 5 6.txt
        self.assertEqual((net.stats(4)["queries_handled"], net.stats(5)["queries_handled"]), (2, 1))

    # --- exercise 2 -----------------------------------------------------------------------------
    def test_exercise_2_ring_of_6_sends_6_gets_and_drops_1_duplicate_at_peer_4(self):
        net = self.net("topologies/classroom/ring6.topo")
        self.assertEqual(net.info["ttl"], 3)
        r = net.peer(1, "get", "4.txt")
        self.assertOk(r)
        self.assertIn("3 hops away", r.stdout)
        qid = qid_of(r)
        c = self.trace(net, qid)["counts"]
        self.assertEqual((c["gets_sent"], c["received"], c["duplicates"], c["get_bound"]),
                         (6, 5, 1, 12))
        self.handled_once(net, 1)
        dups = {pid: net.stats(pid)["duplicates_dropped"] for pid in net.peers}
        self.assertEqual(dups, {1: 0, 2: 0, 3: 0, 4: 1, 5: 0, 6: 0})
        text = net.cli("trace", qid)
        self.assertIn("GET    6 sent; 5 handled, 1 duplicates dropped", text.stdout)
        if shutil.which("dot"):
            out = self.tmpdir() / "flood-ring.svg"
            self.assertOk(net.cli("trace", qid, "--svg", str(out)))
            self.assertIn("hop 3 dup", out.read_text())

        # ttl 4: the copies cross at peer 4 and go one hop further: 6 or 7 GETs, by timing
        self.assertOk(net.peer(1, "modify", "ttl", "4"))
        r = net.peer(1, "search", "4.txt")
        self.assertOk(r)
        self.assertIn("1 hit:", r.stdout)
        c = self.trace(net, qid_of(r))["counts"]
        self.assertIn(c["gets_sent"], (6, 7))
        self.assertEqual(c["received"], 5)
        self.assertEqual(c["duplicates"], c["gets_sent"] - 5)
        self.assertEqual(c["gets_sent"], c["gets_expected"])

    def test_exercise_2_ladder_and_full_mesh_send_more_copies_but_handle_each_once(self):
        net = self.net("topologies/classroom/ladder6.topo")
        self.assertEqual(net.info["ttl"], 4)
        r = net.peer(1, "get", "3.txt")
        self.assertOk(r)
        tr = self.trace(net, qid_of(r))
        c = tr["counts"]
        self.handled_once(net, 1)
        self.assertEqual((c["received"], c["get_bound"]), (5, 14))
        self.assertEqual(c["duplicates"], c["gets_sent"] - 5)
        self.assertEqual(c["gets_sent"], c["gets_expected"])
        if self.shortest_first(net, tr):
            self.assertEqual((c["gets_sent"], c["duplicates"]), (9, 4))
            self.assertEqual(tr["hits"][0]["path"], [3, 2, 1])

        mesh = self.net("mesh:5", ttl=4)
        r = mesh.peer(1, "get", "5.txt")
        self.assertOk(r)
        tr = self.trace(mesh, qid_of(r))
        c = tr["counts"]
        self.handled_once(mesh, 1)
        self.assertEqual((c["received"], c["get_bound"]), (4, 20))
        self.assertEqual(c["duplicates"], c["gets_sent"] - 4)
        # every first copy that left with ttl >= 2 is forwarded to the 3 other neighbours, and
        # so is every later copy that came with more ttl left (reforwarded: a race), except to
        # neighbours that already sent that peer a copy with as much ttl
        self.assertEqual(c["gets_sent"], c["gets_expected"])
        if all(n["hop"] <= 3 for n in tr["nodes"]):
            r = c["reforwarded"]
            self.assertTrue(16 <= c["gets_sent"] <= 16 + 3 * r, c)

    # --- exercise 3 -----------------------------------------------------------------------------
    def test_exercise_3_the_ladder_routes_around_a_dead_peer_within_the_ttl(self):
        net = self.net("topologies/classroom/ladder6.topo")
        net.kill(2, signal.SIGTERM)  # kill $(cat run/ladder/peer-2.pid)
        st = subprocess.run([str(TOPOLOGY), "status", "--run", str(net.dir)],
                            capture_output=True, text=True, timeout=30)
        self.assertEqual(st.returncode, 1)
        self.assertRegex(st.stdout, r"\n  2 .* down\n")

        r = net.peer(1, "get", "3.txt")
        self.assertOk(r)
        self.assertIn("found at peer 3", r.stdout)
        self.assertIn("4 hops away", r.stdout)
        self.assertEqual(md5_of(net.share(1) / "3.txt"), md5_of(net.share(3) / "3.txt"))
        qid = qid_of(r)
        text = net.cli("trace", qid)
        self.assertOk(text)
        self.assertIn("peer 2 is not running: its events are missing", text.stderr)
        self.assertIn("peer 3 -> peer 6 -> peer 5 -> peer 4 -> peer 1  (arrived)", text.stdout)
        self.assertIn("GET    4 sent (+2 to neighbours that were down)", text.stdout)
        self.assertEqual(net.stats(1)["neighbours_skipped"], 1)
        self.assertEqual(net.stats(5)["neighbours_skipped"], 1)

        # the detour is 4 hops: ttl 3 does not reach peer 3 any more
        self.assertOk(net.peer(1, "modify", "ttl", "3"))
        r = net.peer(1, "search", "3.txt")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn('not found: no peer within ttl 3 has "3.txt"', r.stdout + r.stderr)

        # start peer 2 again by hand, as the document does, and wait for it to say it is up
        log = net.dir / "peer-2.log"
        before = log.stat().st_size
        cmd = (f"{BIN} serve --run {net.dir} {net.dir}/peer-2.ini >> {log} 2>&1 &\n"
               f"echo $! > {net.dir}/peer-2.pid")
        subprocess.run(["bash", "-c", cmd], check=True, timeout=30)
        net.wait_for(lambda: b"up: listening on" in log.read_bytes()[before:], timeout=15)
        self.assertTrue(net.alive(2))
        time.sleep(1.1)  # a neighbour that refused is skipped for 1 s before it is tried again
        self.assertOk(net.peer(1, "modify", "ttl", "4"))
        r = net.peer(1, "search", "3.txt", "--json")
        self.assertOk(r)
        hits = last_json(r.stdout)["hits"]
        self.assertEqual([h["peer"] for h in hits], [3])
        self.assertIn(hits[0]["hops"], (2, 4))  # 2 unless the copy over peer 2 came in last
        self.assertEqual(net.stats(2)["queries_handled"], 1)  # the new peer 2 took part
        pid2 = net.pid(2)
        down = subprocess.run([str(TOPOLOGY), "down", "--run", str(net.dir)],
                              capture_output=True, text=True, timeout=60)
        self.assertIn(f"peer 2: pid {pid2} stopped", down.stdout)

    # --- the document itself --------------------------------------------------------------------
    # --- exercise 4 -----------------------------------------------------------------------------
    def test_exercise_4_a_shortcut_link_brings_the_holder_closer_and_2_duplicates(self):
        net = self.net("line:5")
        r = net.peer(1, "get", "5.txt")
        self.assertOk(r)
        self.assertIn("4 hops away", r.stdout)
        c = self.trace(net, qid_of(r))["counts"]
        self.assertEqual((c["gets_sent"], c["duplicates"]), (4, 0))
        pids = {p: net.pid(p) for p in net.peers}
        t = subprocess.run([str(TOPOLOGY), "link", "1", "4", "--run", str(net.dir),
                            "--bin", str(BIN)], capture_output=True, text=True, timeout=60)
        self.assertOk(t)
        self.assertIn("linked peer 1 and peer 4: peer 1 applied it live; peer 4 applied it live",
                      t.stdout)
        # The new link is dialled and proven in the background (links count both ways): until
        # it is, the GET goes the long way only and the hit is 4 hops away (a CI-like run).
        net.wait_for(lambda: net.stats(1)["links_proven"] == 4, timeout=20)
        # Every hop here is a fraction of a millisecond, so on a loaded machine the copy that
        # went the long way (1-2-3-4) can reach peer 4 before the direct one; the direct copy,
        # with more ttl, is then forwarded but not answered (the documented rule), and the hit
        # is 4 hops away. Seen once in a CI-like run: the document's numbers are those of the
        # usual order, so the get is tried again (at most 5 times) until it shows that order.
        for attempt in range(5):
            self.assertOk(net.peer(1, "rm", "5.txt"))
            dups = {p: net.stats(p)["duplicates_dropped"] for p in net.peers}
            r = net.peer(1, "get", "5.txt")
            self.assertOk(r)
            if "2 hops away" in r.stdout:
                break
        self.assertIn("2 hops away", r.stdout)
        self.assertIn("sent to 2 neighbours", r.stdout)
        qid = qid_of(r)
        c = self.trace(net, qid)["counts"]
        self.assertEqual((c["gets_sent"], c["received"], c["duplicates"]), (6, 4, 2))
        text = net.cli("trace", qid)
        self.assertIn("GET    6 sent; 4 handled, 2 duplicates dropped", text.stdout)
        dropped = {p: net.stats(p)["duplicates_dropped"] - dups[p] for p in net.peers}
        self.assertEqual(sum(dropped.values()), 2)
        self.assertEqual(dropped[3], 1)
        self.assertEqual({p: net.pid(p) for p in net.peers}, pids, "nobody was restarted")
        # and back: a line again
        t = subprocess.run([str(TOPOLOGY), "unlink", "1", "4", "--run", str(net.dir),
                            "--bin", str(BIN)], capture_output=True, text=True, timeout=60)
        self.assertOk(t)
        self.assertOk(net.peer(1, "rm", "5.txt"))
        r = net.peer(1, "get", "5.txt")
        self.assertOk(r)
        c = self.trace(net, qid_of(r))["counts"]
        self.assertEqual((c["gets_sent"], c["duplicates"]), (4, 0))

    def test_the_document_states_what_these_tests_check(self):
        doc = DOC.read_text()
        for spec in set(re.findall(r"scripts/topology up (\S+)", doc)):
            r = subprocess.run([str(TOPOLOGY), "show", spec], capture_output=True, text=True,
                               timeout=30, cwd=SRC)
            self.assertEqual(r.returncode, 0, f"{spec}: {r.stderr}")
        for fact in ("**6 GETs**", "**1 duplicate**", "6 or 7", "**9 GETs**", "**4 duplicates**",
                     "**16 GETs**", "**12 duplicates**", "4 hops away",
                     'not found: no peer within ttl 2 has "4.txt"',
                     "peer 3 -> peer 6 -> peer 5 -> peer 4 -> peer 1  (arrived)",
                     "**4 hops away**", "**4 GETs**", "**0 duplicates**", "**2 hops away**",
                     "**2 duplicates**", "GET    6 sent; 4 handled, 2 duplicates dropped",
                     "linked peer 1 and peer 4: peer 1 applied it live; peer 4 applied it live"):
            self.assertIn(fact, doc)


if __name__ == "__main__":
    unittest.main()
