"""Tests of scripts/topology that need no real peer.

`show` is checked for every generator and shipped file, spec errors for exit status 64 and line
numbers, and `up`/`status`/`down` against a FAKE server: a small Python script written into the
test's temporary folder that does what `floodshare serve --run DIR INI` promises (bind its TCP
port, create DIR/peer-ID.sock, remove it and exit on SIGTERM). So these tests say whether the
launcher is right, not whether the daemon is.

Run from tests/integration: python3 -m unittest -v test_topology
(CMake sets FLOODSHARE_SRC to the repository; without it the repository is found from this file.)
"""

import configparser
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import unittest
from collections import deque
from pathlib import Path

SRC = Path(os.environ.get("FLOODSHARE_SRC") or Path(__file__).resolve().parents[2])
SCRIPT = SRC / "scripts" / "topology"
TOPOLOGIES = SRC / "topologies"

FAKE_SERVER = textwrap.dedent("""\
    #!{python}
    # A stand-in for `floodshare serve --run DIR INI`, written by test_topology.py.
    import configparser, os, signal, socket, sys, time
    assert sys.argv[1:3] == ["serve", "--run"], sys.argv
    run, ini = sys.argv[3], sys.argv[4]
    cfg = configparser.ConfigParser(inline_comment_prefixes=(";",))
    cfg.read(ini)
    peer = cfg["peer"]
    my_id = int(peer["id"])
    with open(os.environ["FAKE_PID_LOG"], "a") as log:  # so a test can check it was stopped
        log.write(f"{{os.getpid()}}\\n")
    if str(my_id) == os.environ.get("FAKE_FAIL_ID"):
        print(f"{{ini}}: [peer] port: pretend this is wrong", file=sys.stderr)
        sys.exit(78)
    if not os.path.isdir(os.path.join(os.path.dirname(ini), peer["share_dir"])):
        print(f"{{ini}}: [peer] share_dir: not a directory", file=sys.stderr)
        sys.exit(78)
    tcp = socket.socket()
    tcp.bind((peer["host"], int(peer["port"])))  # fails if the port was not free
    tcp.listen()
    path = os.path.join(run, f"peer-{{my_id}}.sock")
    ctl = socket.socket(socket.AF_UNIX)
    ctl.bind(path)
    ctl.listen()
    print(f"fake peer {{my_id}} ready", file=sys.stderr, flush=True)
    if str(my_id) == os.environ.get("FAKE_SLOW_ID"):
        # like a real peer between creating its socket and starting its threads: the socket
        # accepts, nobody answers yet
        time.sleep(1.5)
        open(os.environ["FAKE_PID_LOG"] + ".answering", "w").close()

    def stop(*_):
        os.unlink(path)
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while True:  # `up` waits for an answer to ping: "= EXIT-CODE" ends every answer
        conn, _ = ctl.accept()
        with conn:
            try:
                if conn.recv(256).startswith(b"ping"):
                    conn.sendall(b"1 pong\\n= 0\\n")
            except OSError:  # an asker that gave up waiting
                pass
    """)


def topology(*args, env=None, timeout=60):
    """Run scripts/topology with a clean environment (no FLOODSHARE_RUN / FLOODSHARE_BIN from
    CMake, so every test says which run folder and binary it means)."""
    clean = {k: v for k, v in os.environ.items() if k not in ("FLOODSHARE_RUN", "FLOODSHARE_BIN")}
    clean.update(env or {})
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          timeout=timeout, env=clean)


def show_json(spec, *extra):
    result = topology("show", spec, "--json", *extra)
    if result.returncode != 0:
        raise AssertionError(f"show {spec} failed: {result.stderr}")
    return json.loads(result.stdout)


def connected(data):
    """Is the network in `data` (show --json / topology.json) connected?"""
    adj = {p["id"]: p["neighbours"] for p in data["peers"]}
    start = next(iter(adj))
    seen, queue = {start}, deque([start])
    while queue:
        for n in adj[queue.popleft()]:
            if n not in seen:
                seen.add(n)
                queue.append(n)
    return seen == set(adj)


def alive(pid):
    """Is process `pid` running? A zombie (exited, not yet reaped by its new parent) is not."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def read_ini(path):
    cfg = configparser.ConfigParser(inline_comment_prefixes=(";",))
    cfg.read(path)
    return cfg


class ShowGenerators(unittest.TestCase):
    COUNTS = [  # spec, peers, links
        ("line:5", 5, 4),
        ("ring:6", 6, 6),
        ("star:5", 5, 4),
        ("tree:7", 7, 6),
        ("tree:13:3", 13, 12),
        ("mesh:4", 4, 6),
        ("grid:3x3", 9, 12),
        ("grid:2x4", 8, 10),
        ("random:10:seed=7", 10, 15),
    ]

    def test_peer_and_link_counts(self):
        for spec, n_peers, n_links in self.COUNTS:
            with self.subTest(spec=spec):
                data = show_json(spec)
                self.assertEqual(len(data["peers"]), n_peers)
                self.assertEqual(len(data["links"]), n_links)
                self.assertEqual(data["ttl"], 4)
                self.assertTrue(connected(data))

    def test_links_are_listed_on_both_sides(self):
        for spec, _, _ in self.COUNTS:
            with self.subTest(spec=spec):
                data = show_json(spec)
                adj = {p["id"]: set(p["neighbours"]) for p in data["peers"]}
                for a, b in data["links"]:
                    self.assertIn(b, adj[a])
                    self.assertIn(a, adj[b])
                self.assertEqual(sum(map(len, adj.values())), 2 * len(data["links"]))

    def test_star_hub_and_tree_parents(self):
        star = {p["id"]: p["neighbours"] for p in show_json("star:5")["peers"]}
        self.assertEqual(star[1], [2, 3, 4, 5])
        tree = {p["id"]: p["neighbours"] for p in show_json("tree:7")["peers"]}
        self.assertEqual(tree[1], [2, 3])
        self.assertEqual(tree[3], [1, 6, 7])

    def test_random_is_connected_and_the_same_twice(self):
        first = topology("show", "random:10:seed=7", "--json")
        second = topology("show", "random:10:seed=7", "--json")
        self.assertEqual(first.returncode, 0, first.stderr)
        self.assertEqual(first.stdout, second.stdout)
        self.assertTrue(connected(json.loads(first.stdout)))
        other = show_json("random:10:seed=8")
        self.assertNotEqual(json.loads(first.stdout)["links"], other["links"])
        for seed in range(20):  # connected for any seed, even with few extra links
            with self.subTest(seed=seed):
                self.assertTrue(connected(show_json(f"random:12:seed={seed}:degree=1")))
        self.assertEqual(len(show_json("random:10:seed=7:degree=4")["links"]), 20)

    def test_sample_files(self):
        data = show_json("line:5")
        for peer in data["peers"]:
            paths = [f["path"] for f in peer["files"]]
            self.assertIn(f"{peer['id']}.txt", paths)
            # only the farthest peer from peer 1 holds the album
            self.assertEqual("album/" in paths, peer["id"] == 5)
        album = [f for f in data["peers"][4]["files"] if f["path"].startswith("album/")]
        folders = {f["path"] for f in album if f["kind"] == "folder"}
        nested = [p for p in folders if p.count("/") >= 3]
        self.assertTrue(nested, "album/ should have nested sub-folders")
        empty = [d for d in folders if not any(f["path"] != d and f["path"].startswith(d)
                                               for f in album)]
        self.assertTrue(empty, "album/ should hold an empty sub-folder")

    def test_ttl_option_and_per_peer_address(self):
        data = show_json("ring:4", "--ttl", "7", "--per-peer-address")
        self.assertEqual(data["ttl"], 7)
        self.assertEqual([p["host"] for p in data["peers"]],
                         ["127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"])

    def test_text_output(self):
        result = topology("show", "line:3")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("3 peers, 2 links, ttl 4", result.stdout)
        self.assertIn("1-2 2-3", result.stdout)


class ShowShippedFiles(unittest.TestCase):
    EXPECTED = {  # file: (peers, links, ttl)
        "seed-chain.topo": (3, 2, 3),
        "line5.topo": (5, 4, 4),
        "ring6.topo": (6, 6, 4),
        "star5.topo": (5, 4, 2),
        "tree7.topo": (7, 6, 4),
        "mesh4.topo": (4, 6, 2),
        "grid3x3.topo": (9, 12, 4),
        "random10.topo": (10, 15, 4),
    }

    def test_every_shipped_file_parses(self):
        shipped = sorted(p.name for p in TOPOLOGIES.glob("*.topo"))
        self.assertEqual(shipped, sorted(self.EXPECTED))
        for name, (n_peers, n_links, ttl) in self.EXPECTED.items():
            with self.subTest(file=name):
                data = show_json(str(TOPOLOGIES / name))
                self.assertEqual((len(data["peers"]), len(data["links"]), data["ttl"]),
                                 (n_peers, n_links, ttl))
                self.assertTrue(connected(data))

    def test_line5_target_is_four_hops_away(self):
        data = show_json(str(TOPOLOGIES / "line5.topo"))
        holders = [p["id"] for p in data["peers"]
                   if any(f["path"] == "target.txt" for f in p["files"])]
        self.assertEqual(holders, [5])

    def test_random10_file_matches_the_generator(self):
        from_file = show_json(str(TOPOLOGIES / "random10.topo"))
        generated = show_json("random:10:seed=7")
        self.assertEqual(from_file["links"], generated["links"])

    def test_bare_name_finds_the_shipped_file(self):
        self.assertEqual(show_json("seed-chain")["name"], "seed-chain")


class SpecErrors(unittest.TestCase):
    def setUp(self):
        self.tmp = Path(tempfile.mkdtemp(prefix="fs-topo-"))

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_file_errors_name_the_file_and_line(self):
        bad = self.tmp / "bad.topo"
        bad.write_text(textwrap.dedent("""\
            # line 1: a comment
            ttl 3
            peer 1 files 1.txt
            peer 2 files ../outside.txt
            peer 1
            peer 0
            link 1 1
            link 1 2
            link 2 1
            link 1 9
            ttl 99
            wibble
            peer 3 files big/:size=10
            """))
        result = topology("show", str(bad))
        self.assertEqual(result.returncode, 64, result.stderr)
        expected = {  # line: a fragment of its message
            4: "'..'",
            5: "already declared on line 3",
            6: "out of range",
            7: "linked to itself",
            9: "already declared on line 8",
            10: "peer 9 is not declared",
            11: "ttl",
            12: "unknown keyword 'wibble'",
            13: "cannot have a size",
        }
        for line, fragment in expected.items():
            with self.subTest(line=line):
                matching = [m for m in result.stderr.splitlines() if m.startswith(f"{bad}:{line}:")]
                self.assertTrue(matching, f"no error for line {line} in:\n{result.stderr}")
                self.assertIn(fragment, matching[0])
        # the good lines have no errors, and a bad file name does not make its links errors too
        for line in (1, 2, 3, 8):
            self.assertNotIn(f"{bad}:{line}:", result.stderr)

    def test_no_peers(self):
        empty = self.tmp / "empty.topo"
        empty.write_text("# nothing here\n")
        result = topology("show", str(empty))
        self.assertEqual(result.returncode, 64)
        self.assertIn("no peers", result.stderr)

    def test_bad_generators_and_missing_files(self):
        for spec in ("ring:2", "grid:3y3", "line:0", "tree:5:0", "random:5:colour=red",
                     "mesh:70", str(self.tmp / "missing.topo")):
            with self.subTest(spec=spec):
                result = topology("show", spec)
                self.assertEqual(result.returncode, 64, result.stdout)
                self.assertTrue(result.stderr.strip())

    def test_up_with_a_bad_spec_writes_nothing(self):
        run = self.tmp / "run"
        result = topology("up", "ring:2", "--run", str(run), "--bin", sys.executable)
        self.assertEqual(result.returncode, 64)
        self.assertFalse(run.exists())


class UpAndDownWithAFakeServer(unittest.TestCase):
    def setUp(self):
        self.tmp = Path(tempfile.mkdtemp(prefix="fs-topo-"))
        self.run_dir = self.tmp / "run"
        self.fake = self.tmp / "fake-floodshare"
        self.fake.write_text(FAKE_SERVER.format(python=sys.executable))
        self.fake.chmod(0o755)
        self.pid_log = self.tmp / "fake-pids"  # every fake appends its pid here
        self.pid_log.touch()

    def tearDown(self):
        topology("down", "--run", str(self.run_dir))
        for pid in self.fake_pids():  # only if a test failed half-way
            if alive(pid):
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                if str(self.fake).encode() in cmdline:
                    os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def fake_pids(self):
        return [int(line) for line in self.pid_log.read_text().split()]

    def up(self, spec, *extra, env=None):
        env = {"FAKE_PID_LOG": str(self.pid_log), **(env or {})}
        return topology("up", spec, "--run", str(self.run_dir), "--bin", str(self.fake), *extra,
                        env=env)

    def pid_of(self, peer_id):
        return int((self.run_dir / f"peer-{peer_id}.pid").read_text())

    def test_up_status_down(self):
        result = self.up("ring:5")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("--run", result.stdout)  # the REPL command

        # INIs: one per peer, unique ports, neighbour lists symmetric
        by_address, neighbours = {}, {}
        for n in range(1, 6):
            ini = read_ini(self.run_dir / f"peer-{n}.ini")
            self.assertEqual(int(ini["peer"]["id"]), n)
            self.assertEqual(ini["peer"]["host"], "127.0.0.1")
            self.assertEqual(ini["peer"]["share_dir"], f"share-{n}")
            self.assertEqual(int(ini["peer"]["ttl"]), 4)
            by_address[f"{ini['peer']['host']}:{ini['peer']['port']}"] = n
            neighbours[n] = [a.strip() for a in ini["neighbours"]["peers"].split(",")]
        self.assertEqual(len(by_address), 5, "ports are not unique")
        ids = {n: {by_address[a] for a in addrs} for n, addrs in neighbours.items()}
        for a, theirs in ids.items():
            self.assertEqual(len(theirs), 2)
            for b in theirs:
                self.assertIn(a, ids[b], f"peer {b} lists {a}'s neighbour but not back")

        # shares, topology.json, pid files, sockets
        self.assertTrue((self.run_dir / "share-2" / "2.txt").is_file())
        self.assertIn("peer 2", (self.run_dir / "share-2" / "2.txt").read_text())
        # in ring:5 peers 3 and 4 are both two hops from peer 1: the higher id gets the album
        self.assertTrue((self.run_dir / "share-4" / "album" / "drafts").is_dir())
        info = json.loads((self.run_dir / "topology.json").read_text())
        pids = {p["id"]: p["pid"] for p in info["peers"]}
        for n in range(1, 6):
            self.assertEqual(pids[n], self.pid_of(n))
            self.assertTrue(alive(pids[n]))
            self.assertTrue((self.run_dir / f"peer-{n}.sock").exists())
            peer = info["peers"][n - 1]
            self.assertEqual(set(peer["neighbours"]), ids[n])
            self.assertEqual(by_address[f"{peer['host']}:{peer['port']}"], n)

        status = topology("status", "--run", str(self.run_dir), "--json")
        self.assertEqual(status.returncode, 0, status.stdout + status.stderr)
        self.assertTrue(all(p["state"] == "up" for p in json.loads(status.stdout)["peers"]))

        again = self.up("line:2")
        self.assertEqual(again.returncode, 1)
        self.assertIn("already", again.stderr)
        self.assertEqual({p["id"]: p["pid"] for p in json.loads(
            (self.run_dir / "topology.json").read_text())["peers"]}, pids)

        down = topology("down", "--run", str(self.run_dir))
        self.assertEqual(down.returncode, 0, down.stderr)
        for n, pid in pids.items():
            self.assertFalse(alive(pid), f"peer {n} (pid {pid}) still runs")
            self.assertFalse((self.run_dir / f"peer-{n}.pid").exists())
            self.assertFalse((self.run_dir / f"peer-{n}.sock").exists())
            self.assertTrue((self.run_dir / f"peer-{n}.ini").exists())
            self.assertTrue((self.run_dir / f"peer-{n}.log").exists())
        self.assertTrue((self.run_dir / "share-1" / "1.txt").exists())

        status = topology("status", "--run", str(self.run_dir))
        self.assertEqual(status.returncode, 1)
        self.assertIn("down", status.stdout)
        self.assertEqual(topology("down", "--run", str(self.run_dir)).returncode, 0)

    def test_down_never_signals_a_recycled_pid(self):
        self.assertEqual(self.up("line:2").returncode, 0)
        peer1, peer2 = self.pid_of(1), self.pid_of(2)
        decoy = subprocess.Popen(["sleep", "60"])  # stands for whatever got peer 1's pid
        try:
            (self.run_dir / "peer-1.pid").write_text(f"{decoy.pid}\n")
            down = topology("down", "--run", str(self.run_dir))
            self.assertEqual(down.returncode, 0)
            self.assertIsNone(decoy.poll(), "down killed a process that is not a peer")
            self.assertFalse(alive(peer2), "down did not stop peer 2")
            self.assertTrue(alive(peer1))  # the pid file no longer named it
        finally:
            decoy.kill()
            decoy.wait()
            os.kill(peer1, signal.SIGTERM)

    def test_up_waits_for_an_answer_not_a_connection(self):
        # A peer's control socket accepts before the peer has dialled its neighbours; a get
        # issued then missed a peer (test_classroom). `up` must wait for the answer to ping.
        result = self.up("line:2", env={"FAKE_SLOW_ID": "2"})
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertTrue(Path(str(self.pid_log) + ".answering").exists(),
                        "up returned before peer 2 answered")

    def test_a_peer_that_exits_early_stops_the_others(self):
        result = self.up("line:3", env={"FAKE_FAIL_ID": "2"})
        self.assertEqual(result.returncode, 1)
        self.assertIn("peer 2", result.stderr)
        self.assertIn("78", result.stderr)
        self.assertIn("pretend this is wrong", result.stderr)  # the log tail
        self.assertEqual(list(self.run_dir.glob("peer-*.pid")), [])
        # A peer stopped early may not have logged its pid yet (the fake is a Python program),
        # so look for any process still running on this run folder's INIs instead.
        def running():
            found = []
            for proc in Path("/proc").iterdir():
                try:
                    cmd = (proc / "cmdline").read_bytes()
                except OSError:
                    continue
                if proc.name.isdigit() and str(self.run_dir).encode() in cmd and \
                        b"serve" in cmd and alive(int(proc.name)):
                    found.append(int(proc.name))
            return found
        deadline = time.monotonic() + 5
        while running() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(running(), [])
        for pid in self.fake_pids():
            self.assertFalse(alive(pid), f"pid {pid} still runs")

    def test_topology_file_files_and_sizes(self):
        spec = self.tmp / "two.topo"
        spec.write_text(textwrap.dedent("""\
            ttl 2
            peer 1 files a.txt "with space.txt" same.bin:size=3000
            peer 2 files same.bin:size=3000 deep/er/b.txt deep/empty/
            link 1 2
            """))
        result = self.up(str(spec))
        self.assertEqual(result.returncode, 0, result.stderr)
        s1, s2 = self.run_dir / "share-1", self.run_dir / "share-2"
        self.assertTrue((s1 / "with space.txt").is_file())
        self.assertEqual((s1 / "same.bin").stat().st_size, 3000)
        self.assertEqual((s1 / "same.bin").read_bytes(), (s2 / "same.bin").read_bytes())
        self.assertTrue((s2 / "deep" / "er" / "b.txt").is_file())
        self.assertEqual(list((s2 / "deep" / "empty").iterdir()), [])
        self.assertEqual(int(read_ini(self.run_dir / "peer-1.ini")["peer"]["ttl"]), 2)

    def test_per_peer_address(self):
        try:
            with socket.socket() as probe:
                probe.bind(("127.0.0.3", 0))
        except OSError:
            self.skipTest("127.0.0.3 is not a local address here (Linux routes all of 127/8)")
        result = self.up("line:3", "--per-peer-address")
        self.assertEqual(result.returncode, 0, result.stderr)
        hosts = [read_ini(self.run_dir / f"peer-{n}.ini")["peer"]["host"] for n in (1, 2, 3)]
        self.assertEqual(hosts, ["127.0.0.1", "127.0.0.2", "127.0.0.3"])


if __name__ == "__main__":
    unittest.main()
