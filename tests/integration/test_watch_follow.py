"""`floodshare watch` follows the run folder: through `scripts/topology down` and `up` (new
ports), with peers named by number, the events it could not read counted ("missed N events from
peer K"), peers that start later picked up, and the same hop numbers as `trace`."""

import json
import re
import signal
import socket
import subprocess
import threading
import time

from fsnet import BIN, TOPOLOGY, NetCase, last_json
from test_trace import peer_events


class Watch:
    """A `floodshare --run DIR watch [--json]` process whose lines are read as they come."""

    def __init__(self, run_dir, *args):
        self.proc = subprocess.Popen([str(BIN), "--run", str(run_dir), "watch", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env={"NO_COLOR": "1", "PATH": "/usr/bin:/bin",
                                          **{k: v for k, v in __import__("os").environ.items()
                                             if k.endswith("SAN_OPTIONS")}})
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def text(self) -> str:
        return "\n".join(list(self.lines))

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout=20)
        self.reader.join(timeout=10)
        err = self.proc.stderr.read()
        self.close()
        return err

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=20)
        self.reader.join(timeout=10)
        for f in (self.proc.stdout, self.proc.stderr):
            f.close()


def blast(port: int, n: int) -> None:
    """n GETs with ttl 1 from one unproven connection (a stranger): each is handled or dropped
    by the throttle, and either way peer gets one or more trace events for it."""
    lines = b"".join(f"FLOOD/1 GET qid={0xfeed0000 + i:016x} ttl=1 hops=0 origin=127.0.0.1:9 "
                     f"from=127.0.0.1:9 name=x{i}.txt\n".encode() for i in range(n))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(lines)


def until(cond, what: str, timeout: float, *watches) -> None:
    """Waits for cond; on time out, fails naming what and showing the watches' last lines."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            tails = "\n".join("\n".join(w.lines[-40:]) for w in watches)
            raise AssertionError(f"{what}: not within {timeout} s; last lines:\n{tails}")
        time.sleep(0.1)


class WatchFollowTest(NetCase):
    def wait_watchers(self, net, pids, want):
        net.wait_for(lambda: all(peer_events(net, p)["watchers"] == want for p in pids),
                     timeout=20, step=0.05)

    def reload(self, net):
        net.info = json.loads((net.dir / "topology.json").read_text())
        net.peers = {p["id"]: p for p in net.info["peers"]}

    def test_watch_keeps_going_through_topology_down_and_up_and_says_what_it_missed(self):
        net = self.net("ring:6")
        text, js = Watch(net.dir), Watch(net.dir, "--json")
        self.addCleanup(lambda: [w.close() for w in (text, js)])
        self.wait_watchers(net, list(net.peers), 2)
        self.assertOk(net.peer(1, "get", "4.txt"))
        net.wait_for(lambda: 'downloaded "4.txt"' in text.text(), timeout=20)
        old_ports = {p: net.addr(p)[1] for p in net.peers}

        # Both watchers stop reading (a suspended terminal); the network goes down and comes up
        # again on new ports; peer 1 then does more than its ring keeps (4096 events)
        for w in (text, js):
            w.proc.send_signal(signal.SIGSTOP)
        r = subprocess.run([str(TOPOLOGY), "down", "--run", str(net.dir)], capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        r = subprocess.run([str(TOPOLOGY), "up", "ring:6", "--run", str(net.dir), "--bin",
                            str(BIN)], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.reload(net)
        self.assertNotEqual({p: net.addr(p)[1] for p in net.peers}, old_ports)
        blast(net.addr(1)[1], 6000)
        until(lambda: net.stats(1)["queries_handled"] + net.stats(1)["throttled"] >= 6000,
              "peer 1 took the 6000 GETs", 120)
        ring = peer_events(net, 1)
        first = ring["events"][0]["seq"]
        self.assertGreater(first, 1, "the ring still holds peer 1's first events")
        for w in (text, js):
            w.proc.send_signal(signal.SIGCONT)

        # both reach every peer again, and say what they could not get back (about first - 1,
        # the events of peer 1's start its ring no longer holds)
        until(lambda: "events from peer 1 (not in its ring any more)" in text.text(),
              "a missed line for peer 1", 60, text)
        said = int(re.search(r"missed (\d+) events from peer 1 \(not in its ring any more\)",
                             text.text())[1])
        self.assertGreaterEqual(said, 1000)
        until(lambda: text.text().count("up (watch: connected)") >= 6, "6 peers reached again",
              30, text)
        self.wait_watchers(net, list(net.peers), 2)
        # the events after the restart that the rings still hold are shown, from peer 2's start
        self.assertRegex(text.text(), r"peer 2 +- +up at 127\.0\.0\.1:%d " % net.addr(2)[1])

        # a get after the restart: every hop named by its peer number, none by address
        r = net.peer(2, "get", "5.txt", "--json")
        self.assertOk(r)
        qid = last_json(r.stdout)["query_id"]
        until(lambda: f'q{qid[:4]}  downloaded "5.txt"' in text.text(), "the get after", 30, text)
        mine = [l for l in text.lines if f" q{qid[:4]} " in l]
        self.assertTrue(any(re.search(r"peer 3 +q\w+ +received \"5\.txt\" from peer 2 "
                                      r"\(ttl \d+, hop 1\)", l) for l in mine), "\n".join(mine))
        self.assertFalse([l for l in mine if "127.0.0.1:" in l], "\n".join(mine))

        text_err, js_err = text.stop(), js.stop()
        for err in (text_err, js_err):
            self.assertFalse(any(m in err for m in self.SANITIZER_MARKS), err)
        self.assertEqual(text.proc.returncode, 0, text_err)
        evs = [json.loads(l) for l in js.lines]
        lost = [e for e in evs if e["type"] == "lost"]
        self.assertEqual([e["peer"] for e in lost], [1], lost)
        self.assertEqual(lost[0]["reason"], "not in its ring any more")
        # Not necessarily >= missed: the stopped watcher's socket still held some of peer 1's
        # first events, streamed before the ring let them go (2119 counted where first - 1 was
        # 2126). The check below is the exact one.
        self.assertGreaterEqual(lost[0]["lost"], 1000)
        # peer 1's new run, after its old run's peer_down: every seq from 1 to the last one
        # shown is shown once or counted as missed, none twice
        down = max(i for i, e in enumerate(evs) if e["peer"] == 1 and e["type"] == "peer_down")
        seqs = [e["seq"] for e in evs[down + 1:] if e["peer"] == 1 and e["seq"]]
        self.assertEqual(len(seqs), len(set(seqs)))
        self.assertEqual(len(seqs) + lost[0]["lost"], max(seqs))
        self.assertGreaterEqual(len(seqs), len(ring["events"]))
        q = [e for e in evs if e["qid"] == qid and e["type"] in ("received", "forwarded")]
        self.assertTrue(q and all(e.get("from_peer") or e.get("to_peer") for e in q), q)

    def test_a_peer_started_later_is_picked_up_with_its_first_events(self):
        net = self.net("line:2")
        text = Watch(net.dir)
        self.addCleanup(text.close)
        self.wait_watchers(net, [1, 2], 1)
        # peer 3 joins: its INI in the run folder, a neighbour of peer 2, started by hand
        port = free_port()
        (net.dir / "share-3").mkdir()
        (net.dir / "share-3" / "late.txt").write_text("I came later\n")
        (net.dir / "peer-3.ini").write_text(
            f"[peer]\nid = 3\nhost = 127.0.0.1\nport = {port}\nshare_dir = share-3\nttl = 3\n"
            f"[neighbours]\npeers = 127.0.0.1:{net.addr(2)[1]}\n")
        log = open(net.dir / "peer-3.log", "ab")
        self.addCleanup(log.close)
        proc = subprocess.Popen([str(BIN), "serve", "--run", str(net.dir),
                                 str(net.dir / "peer-3.ini")], stdout=log, stderr=log)
        net.procs_extra.append(proc)
        self.assertOk(net.peer(2, "modify", "neighbours",
                               f"127.0.0.1:{net.addr(1)[1]}, 127.0.0.1:{port}"))
        net.wait_for(lambda: "peer 3   -      up (watch: connected)" in text.text(), timeout=20)
        # its own first event, from before watch reached it, is replayed
        self.assertRegex(text.text(), r"peer 3 +- +up at 127\.0\.0\.1:%d " % port)
        r = net.peer(1, "get", "late.txt", "--json")
        self.assertOk(r)
        qid = last_json(r.stdout)["query_id"]
        net.wait_for(lambda: f"peer 3   q{qid[:4]}  hit \"late.txt\"" in text.text(), timeout=20)
        self.assertRegex(text.text(), r'peer 3 +q%s +received "late\.txt" from peer 2 \(ttl \d+, '
                         r'hop 2\)' % qid[:4])
        self.assertNotIn("missed", text.text())
        err = text.stop()
        self.assertEqual(text.proc.returncode, 0, err)
        self.assertIn("watching 2 of 2 peers", err)

    def test_watch_and_trace_say_the_same_hop_for_a_duplicate(self):
        net = self.net("ring:6")
        text = Watch(net.dir)
        self.addCleanup(text.close)
        self.wait_watchers(net, list(net.peers), 1)
        r = net.peer(1, "get", "4.txt", "--json")
        self.assertOk(r)
        qid = last_json(r.stdout)["query_id"]
        net.wait_for(lambda: f'q{qid[:4]}  downloaded "4.txt"' in text.text(), timeout=20)
        t = net.cli("trace", qid, "--json")
        self.assertOk(t)
        graph = json.loads(t.stdout)
        dups = [e for e in graph["edges"] if e["kind"] == "duplicate"]
        tree = [e for e in graph["edges"] if e["kind"] == "tree"]
        self.assertTrue(dups and tree, graph["edges"])
        for e in dups:
            self.assertRegex(text.text(), r"peer %d +q%s +duplicate from peer %d dropped "
                             r"\(ttl \d+, hop %d\)" % (e["to"], qid[:4], e["from"], e["hop"]))
            # and trace's own text says the same hop
            self.assertIn(f"peer {e['to']} dropped the copy from peer {e['from']} (hop {e['hop']})",
                          net.cli("trace", qid).stdout)
        for e in tree:
            self.assertRegex(text.text(), r"peer %d +q%s +received \"4\.txt\" from peer %d "
                             r"\(ttl \d+, hop %d\)" % (e["to"], qid[:4], e["from"], e["hop"]))
            self.assertRegex(text.text(), r"peer %d +q%s +forwarded to peer %d "
                             r"\(ttl \d+, hop %d\)" % (e["from"], qid[:4], e["to"], e["hop"]))
        text.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


if __name__ == "__main__":
    import unittest
    unittest.main()
