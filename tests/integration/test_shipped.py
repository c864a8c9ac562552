"""Every shipped topology (topologies/*.topo and topologies/classroom/*.topo) works end to end for
a class: a get from peer 1, its flood reconstructed by `trace --dot`, and the dashboard's view of
the network, so a teacher can pick any of them."""

import json

from fsnet import SRC, last_json
from test_trace import parse_dot
from test_web import WebCase

SHIPPED = sorted((SRC / "topologies").glob("*.topo")) + \
    sorted((SRC / "topologies" / "classroom").glob("*.topo"))


class ShippedTopologiesTest(WebCase):
    def get_something(self, net):
        """Peer 1 gets the seed file of the farthest peer its ttl reaches (N.txt lives on peer
        N): tries them from the highest id down; returns the result document."""
        for pid in sorted(net.peers, reverse=True):
            if pid == 1:
                continue
            r = net.peer(1, "get", f"{pid}.txt", "--json", timeout=60)
            if r.returncode == 0:
                return last_json(r.stdout)
        self.fail(f"peer 1 could get no other peer's file in {net.info.get('name')}")

    def test_get_trace_and_dashboard_on_every_shipped_topology(self):
        self.assertGreaterEqual(len(SHIPPED), 10, [p.name for p in SHIPPED])
        for spec in SHIPPED:
            with self.subTest(topology=str(spec.relative_to(SRC))):
                net = self.net(str(spec))
                doc = self.get_something(net)
                qid = doc["query_id"]
                # the flood as a picture: one node per peer the query reached, holder and
                # requester among them, and the hit's way back drawn bold
                r = net.cli("trace", qid, "--dot")
                self.assertEqual(r.returncode, 0, r.stderr)
                nodes, edges = parse_dot(r.stdout)
                reached = set()
                for p in net.peers:
                    evs = json.loads(net.peer(p, "events", "--json", qid).stdout)["events"]
                    if any(e["type"] in ("received", "query_started") for e in evs):
                        reached.add(p)
                self.assertEqual({label for label, _ in nodes.values()}, reached)
                self.assertIn(doc["peer"], reached)
                self.assertTrue(any("bold" in attrs for _, _, attrs in edges) or doc["hops"] == 0,
                                r.stdout)
                # the dashboard sees every peer of it, up
                web = self.web(net)
                st, _, text = web.request("/api/peers")
                self.assertEqual(st, 200, text)
                peers = json.loads(text)["peers"]
                self.assertEqual(sorted(p["id"] for p in peers), sorted(net.peers))
                self.assertTrue(all(p["up"] for p in peers), peers)
                net.close()  # its peers are done with; the web process stops at the end
