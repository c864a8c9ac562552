"""Trace events: watching peers during a get, and `trace QID` reconstructing the flood."""

import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
import unittest

from fsnet import BIN, NetCase, last_json

NODE = re.compile(r'^\s*p(\d+) \[label="peer (\d+)"(.*)\];$')
EDGE = re.compile(r'^\s*p(\d+) -> p(\d+) \[(.*)\];$')


class Stream:
    """A `floodshare ... watch --json` process whose lines are read as they come."""

    def __init__(self, net, *args):
        self.proc = subprocess.Popen([str(BIN), "--run", str(net.dir), *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line)

    def events(self) -> list[dict]:
        return [json.loads(l) for l in list(self.lines)]

    def stop(self) -> tuple[list[dict], str]:
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout=10)
        self.reader.join(timeout=10)
        return self.events(), self.proc.stderr.read()


def peer_events(net, pid, qid=None) -> dict:
    r = net.peer(pid, "events", "--json", *([qid] if qid else []))
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def parse_dot(text: str):
    nodes, edges = {}, []
    for line in text.splitlines():
        if m := NODE.match(line):
            nodes[int(m[1])] = (int(m[2]), m[3])
        elif m := EDGE.match(line):
            edges.append((int(m[1]), int(m[2]), m[3]))
    return nodes, edges


class TraceTest(NetCase):
    def wait_watchers(self, net, pids, want):
        net.wait_for(lambda: all(peer_events(net, p)["watchers"] == want for p in pids),
                     timeout=10, step=0.05)

    def test_watch_during_a_get_shows_the_flood_in_time_order_then_frees_the_watchers(self):
        net = self.net("ring:6")
        merged = Stream(net, "watch", "--json")
        single = Stream(net, "peer", "1", "watch", "--json")
        self.addCleanup(lambda: [s.proc.kill() for s in (merged, single) if s.proc.poll() is None])
        self.wait_watchers(net, [2, 3, 4, 5, 6], 1)
        self.wait_watchers(net, [1], 2)
        r = net.peer(1, "get", "4.txt", "--json")
        self.assertOk(r)
        doc = last_json(r.stdout)
        qid = doc["query_id"]
        self.assertRegex(qid, r"^[0-9a-f]{16}$")

        def done(stream):
            return any(e["type"] == "transfer_done" and e["peer"] == 1 and e["qid"] == qid
                       for e in stream.events())
        net.wait_for(lambda: done(merged) and done(single), timeout=10, step=0.05)
        evs, err = merged.stop()
        mine, err1 = single.stop()
        self.assertEqual(merged.proc.returncode, 0, err)
        for e in (err, err1):  # the CLI runs instrumented in the ASan build too
            self.assertFalse(any(m in e for m in self.SANITIZER_MARKS), e)

        # one time-ordered stream of every peer
        ts = [e["ts_us"] for e in evs]
        self.assertEqual(ts, sorted(ts))
        q = [e for e in evs if e["qid"] == qid]
        self.assertEqual({e["peer"] for e in q if e["type"] == "received"}, {2, 3, 4, 5, 6})
        holder, path = doc["peer"], None

        def first(pred):
            for i, e in enumerate(q):
                if pred(e):
                    return i
            self.fail(f"no such event in {[(e['peer'], e['type']) for e in q]}")

        started = first(lambda e: e["type"] == "query_started" and e["peer"] == 1)
        received = first(lambda e: e["type"] == "received" and e["from_peer"] == 1)
        forwarded = first(lambda e: e["type"] == "forwarded" and e["peer"] != 1)
        sent = first(lambda e: e["type"] == "found_sent" and e["peer"] == holder)
        relays = [i for i, e in enumerate(q) if e["type"] == "found_relayed"]
        arrived = first(lambda e: e["type"] == "found_received" and e["peer"] == 1)
        xfer_done = first(lambda e: e["type"] == "transfer_done" and e["peer"] == 1)
        self.assertLess(started, received)
        self.assertLess(received, forwarded)
        self.assertLess(forwarded, sent)
        self.assertEqual(len(relays), doc["hops"] - 1)  # 4.txt is 3 hops away: 2 relays
        self.assertTrue(all(sent < i < arrived for i in relays))
        self.assertLess(arrived, xfer_done)
        self.assertEqual(q[sent]["holder"], holder)
        self.assertEqual(q[xfer_done]["role"], "requester")
        self.assertEqual(q[xfer_done]["bytes"], doc["size"])
        # the relays lead from the holder back to the origin, hop by hop
        hop = holder
        for i in relays:
            self.assertEqual(q[i]["from_peer"], hop)
            hop = q[i]["peer"]
        self.assertEqual(q[relays[-1]]["to_peer"], 1)
        # the holder's side of the transfer is tied to the same query
        self.assertTrue(any(e["type"] == "transfer_done" and e["role"] == "holder"
                            and e["peer"] == holder for e in q))

        # `peer 1 watch` shows peer 1's events only, in order
        mq = [e for e in mine if e["qid"] == qid]
        self.assertTrue(mq and all(e["peer"] == 1 for e in mine))
        types = [e["type"] for e in mq]
        for a, b in [("query_started", "forwarded"), ("forwarded", "found_received"),
                     ("found_received", "transfer_started"), ("transfer_started", "transfer_done")]:
            self.assertLess(types.index(a), types.index(b), types)

        # both clients hung up: every peer freed their subscriptions
        self.wait_watchers(net, list(net.peers), 0)

    def _get_and_trace(self, spec, origin, name):
        net = self.net(spec)
        r = net.peer(origin, "get", name, "--json")
        self.assertOk(r)
        doc = last_json(r.stdout)
        qid = doc["query_id"]
        # what the peers themselves kept: the independent truth the trace is checked against
        evs = [e for pid in net.peers for e in peer_events(net, pid, qid)["events"]]
        t = net.cli("trace", qid, "--json")
        self.assertOk(t)
        return net, doc, qid, evs, json.loads(t.stdout)

    def check_dot(self, net, qid, evs, origin, holder):
        r = net.cli("trace", qid[:6], "--dot")
        self.assertOk(r)
        nodes, edges = parse_dot(r.stdout)
        reached = {e["peer"] for e in evs if e["type"] in ("received", "duplicate", "dropped")}
        reached.add(origin)
        self.assertEqual(set(nodes), reached)
        self.assertTrue(all(label == pid for pid, (label, _) in nodes.items()))
        self.assertIn("doublecircle", nodes[origin][1])
        self.assertIn("shape=box", nodes[holder][1])
        self.assertEqual(sum("shape=" in attrs for _, attrs in nodes.values()), 2)
        dups = sorted((net_id_of(evs, e["from"]), e["peer"]) for e in evs
                      if e["type"] == "duplicate")
        dashed = sorted((a, b) for a, b, attrs in edges if "dashed" in attrs)
        self.assertEqual(dashed, dups)
        # the reverse path: each FOUND hop (sender -> receiver) is a bold GET edge the other way
        found_hops = {(e["peer"], net_id_of(evs, e["to"])) for e in evs
                      if e["type"] in ("found_sent", "found_relayed")}
        bold = {(b, a) for a, b, attrs in edges if "bold" in attrs}
        self.assertEqual(bold, found_hops)
        self.assertTrue(any(a == holder and b == origin and "dotted" in attrs
                            for a, b, attrs in edges))
        return r.stdout

    def test_trace_of_a_get_in_a_ring(self):
        net, doc, qid, evs, tr = self._get_and_trace("ring:6", 1, "4.txt")
        holder = doc["peer"]
        self.assertEqual(tr["qid"], qid)
        self.assertEqual(tr["origin"], 1)
        self.assertEqual({n["peer"] for n in tr["nodes"]}, set(range(1, 7)))
        hit = tr["hits"][0]
        self.assertEqual(hit["path"][0], holder)
        self.assertEqual(hit["path"][-1], 1)
        self.assertEqual(len(hit["path"]), doc["hops"] + 1)
        self.assertTrue(hit["arrived"])
        links = {tuple(sorted(l)) for l in net.info["links"]}
        for a, b in zip(hit["path"], hit["path"][1:]):
            self.assertIn(tuple(sorted((a, b))), links)
        c = tr["counts"]
        self.assertEqual(c["gets_sent"], sum(e["type"] == "forwarded" for e in evs))
        self.assertEqual(c["links_reached"], 6)
        self.assertEqual(c["get_bound"], 12)
        self.assertLessEqual(c["gets_sent"], c["get_bound"])
        self.assertEqual(c["gets_sent"], c["gets_expected"])
        self.assertEqual(c["founds_relayed"], doc["hops"] - 1)
        self.assertEqual(tr["transfers"][0]["state"], "done")
        self.assertTrue(tr["transfers"][0]["holder_seen"])

        text = net.cli("trace", qid)
        self.assertOk(text)
        self.assertIn(" -> ".join(f"peer {p}" for p in hit["path"]) + "  (arrived)", text.stdout)
        self.assertIn(f"bound: 2 x 6 links among the 6 reached peers = 12", text.stdout)

        self.check_dot(net, qid, evs, 1, holder)
        out = self.tmpdir() / "flood.svg"
        r = net.cli("trace", qid, "--svg", str(out))
        if shutil.which("dot"):
            self.assertOk(r)
            svg = out.read_text()
            self.assertIn("<svg", svg)
            for pid in range(1, 7):
                self.assertIn(f">peer {pid}<", svg)
        else:
            self.assertEqual(r.returncode, 1)
            self.assertIn("not installed", r.stderr)

    def test_trace_of_a_get_in_a_full_mesh_counts_every_copy(self):
        net, doc, qid, evs, tr = self._get_and_trace("mesh:4", 1, "3.txt")
        c = tr["counts"]
        # the origin sends 3, each other peer forwards to its 2 other neighbours; a copy that
        # raced ahead with ttl 1 makes the origin's own copy one with more ttl left, which is
        # forwarded again to those of the 2 others that have not sent that peer as much ttl
        # (r of them: a race, so 0 or more)
        r = c["reforwarded"]
        self.assertTrue(9 <= c["gets_sent"] <= 9 + 2 * r, c)
        self.assertEqual(c["gets_expected"], c["gets_sent"])
        self.assertEqual(c["get_bound"], 12)
        self.assertEqual(c["duplicates"], c["gets_sent"] - 3)
        self.assertEqual(c["received"], 3)
        self.check_dot(net, qid, evs, 1, 3)

    def test_trace_refuses_bad_ids_and_says_when_dot_is_missing(self):
        net = self.net("line:2")
        r = net.cli("trace", "not-hex")
        self.assertEqual(r.returncode, 64)
        self.assertIn("not a query id", r.stderr)
        r = net.cli("trace", "0123456789abcdef")
        self.assertEqual(r.returncode, 1)
        self.assertIn("no peer of", r.stderr)
        get = net.peer(1, "get", "2.txt", "--json")
        self.assertOk(get)
        qid = last_json(get.stdout)["query_id"]
        empty = self.tmpdir()
        out = empty / "x.png"
        r = subprocess.run([str(BIN), "--run", str(net.dir), "trace", qid, "--png", str(out)],
                           capture_output=True, text=True, timeout=30,
                           env={**os.environ, "PATH": str(empty)})
        self.assertEqual(r.returncode, 1)
        self.assertIn("Graphviz `dot` is not installed", r.stderr)
        self.assertFalse(out.exists())
        # the peers kept serving
        self.assertOk(net.peer(2, "events"))


def net_id_of(evs, addr):
    """The peer id whose events carry addr as their own address."""
    for e in evs:
        if e["addr"] == addr:
            return e["peer"]
    raise AssertionError(f"no peer at {addr}")


if __name__ == "__main__":
    unittest.main()
