"""The classroom dashboard: `link down/up`, `pause/resume` (the control commands the page
uses), `floodshare web` over HTTP, and the page itself in headless Chromium."""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import unittest
import urllib.error
import urllib.request
from pathlib import Path

from fsnet import BIN, SRC, NetCase, last_json


def events_of(net, pid, qid) -> list[dict]:
    r = net.peer(pid, "events", "--json", qid)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)["events"]


def addr_of(net, pid) -> str:
    host, port = net.addr(pid)
    return f"{host}:{port}"


class LinkCommandsTest(NetCase):
    """ring:6 (1-2-3-4-5-6-1): peer 1 gets 4.txt, which peer 4 holds, 3 hops away either way."""

    def test_link_down_on_one_end_cuts_both_ways_and_up_mends_it(self):
        net = self.net("ring:6")
        self.assertOk(net.peer(1, "link", "down", addr_of(net, 2)))
        cfg = json.loads(net.peer(1, "config", "--json").stdout)
        self.assertEqual(cfg["links_down"], [addr_of(net, 2)])
        self.assertFalse(cfg["paused"])
        self.assertIn("links down   " + addr_of(net, 2), net.peer(1, "config").stdout)

        r = net.peer(1, "get", "4.txt", "--json")
        self.assertOk(r)
        qid = last_json(r.stdout)["query_id"]
        refused = [e for e in events_of(net, 1, qid) if e["type"] == "send_failed"]
        self.assertEqual([(e["msg"], e["to"], e["reason"]) for e in refused],
                         [("GET", addr_of(net, 2), "link_down")])
        self.assertEqual(events_of(net, 1, qid)[0]["type"], "query_started")
        # the query went round the other way only (6, 5, 4, 3 with ttl 4): 2 never saw it
        self.assertEqual({e["peer"] for p in net.peers for e in events_of(net, p, qid)
                          if e["type"] == "received"}, {6, 5, 4, 3})
        self.assertFalse(events_of(net, 2, qid))
        self.assertEqual(self._hit_path(net, qid), [4, 5, 6, 1])
        self.assertGreaterEqual(net.stats(1)["drops"]["link_down"], 1)

        # mended: the next flood uses the link again, and the hit may come back over it
        self.assertOk(net.peer(1, "link", "up", addr_of(net, 2)))
        self.assertEqual(json.loads(net.peer(1, "config", "--json").stdout)["links_down"], [])
        (net.share(1) / "4.txt").unlink()
        r = net.peer(1, "get", "4.txt", "--json")
        self.assertOk(r)
        qid = last_json(r.stdout)["query_id"]
        got2 = [e for e in events_of(net, 2, qid) if e["type"] == "received"]
        self.assertEqual([e["from"] for e in got2], [addr_of(net, 1)])
        self.assertFalse([e for e in events_of(net, 1, qid) if e["type"] == "send_failed"])

    def _hit_path(self, net, qid) -> list[int]:
        """The peers the FOUND passed, holder first, from the peers' own events."""
        path = [e["peer"] for p in net.peers for e in events_of(net, p, qid)
                if e["type"] in ("found_sent", "found_relayed", "found_received")]
        stamps = {e["peer"]: e["ts_us"] for p in net.peers for e in events_of(net, p, qid)
                  if e["type"] in ("found_sent", "found_relayed", "found_received")}
        return sorted(set(path), key=lambda p: stamps[p])

    def test_link_down_at_the_far_end_drops_what_arrives(self):
        net = self.net("ring:6")
        self.assertOk(net.peer(2, "link", "down", addr_of(net, 1)))
        r = net.peer(1, "get", "4.txt", "--json")
        self.assertOk(r)
        qid = last_json(r.stdout)["query_id"]
        at2 = events_of(net, 2, qid)
        dropped = [e for e in at2 if e["type"] == "dropped"]
        self.assertTrue(dropped, at2)
        self.assertEqual((dropped[0]["from"], dropped[0]["reason"]), (addr_of(net, 1), "link_down"))
        # and 2 never sends its own copy to 1
        self.assertFalse([e for e in at2 if e["type"] == "forwarded" and e["to"] == addr_of(net, 1)])

    def test_pause_drops_everything_and_resume_brings_the_peer_back(self):
        net = self.net("ring:6")
        for p in (3, 5):  # both ways to 4 go through a paused peer
            self.assertOk(net.peer(p, "pause"))
        self.assertTrue(json.loads(net.peer(3, "config", "--json").stdout)["paused"])
        r = net.peer(1, "get", "4.txt", "--json")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        qid = last_json(r.stdout)["query_id"]
        at3 = events_of(net, 3, qid)
        self.assertTrue(at3 and all(e["reason"] == "paused" for e in at3 if e["type"] == "dropped"))
        self.assertFalse([e for e in at3 if e["type"] in ("received", "forwarded")])
        self.assertFalse(events_of(net, 4, qid))
        for p in (3, 5):
            self.assertOk(net.peer(p, "resume"))
        self.assertOk(net.peer(1, "get", "4.txt", "--json"))

    def test_bad_link_commands_are_refused_and_the_peer_keeps_serving(self):
        net = self.net("ring:3")
        for args, code, text in [
            (("link",), 64, "usage: peer N link down|up HOST:PORT"),
            (("link", "down"), 64, "usage: peer N link down|up HOST:PORT"),
            (("link", "sideways", addr_of(net, 2)), 64, '"sideways" is neither down nor up'),
            (("link", "down", "no-port"), 64, 'bad address "no-port"'),
            (("link", "down", "127.0.0.1:1"), 1, "127.0.0.1:1 is not a neighbour of peer 1"),
            (("pause", "now"), 64, "usage: peer N pause"),
            (("resume", "x"), 64, "usage: peer N resume"),
        ]:
            r = net.peer(1, *args)
            self.assertEqual(r.returncode, code, f"{args}: {r.stderr}")
            self.assertIn(text, r.stderr, args)
        self.assertEqual(json.loads(net.peer(1, "config", "--json").stdout)["links_down"], [])
        self.assertOk(net.peer(1, "get", "2.txt"))


if __name__ == "__main__":
    unittest.main()
