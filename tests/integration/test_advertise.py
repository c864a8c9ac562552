"""[peer] advertise and IPv6 (issue 15): a peer that listens on a wildcard is reached at the
address it advertises, its links are proven under that address although they come from
another one, and a ring on ::1 floods and fetches. Only 127.0.0.0/8 and ::1 are used.

Each network is started by scripts/topology on 127.0.0.1, then stopped, its INI files
rewritten (host, advertise, neighbours) and started again on the same ports: the harness
(topology down by pid, logs, sanitizer reports) stays the same."""

import json
import os
import re
import shutil
import socket
import tempfile
import unittest
from pathlib import Path

from fsnet import BIN, NetCase, last_json, md5_of, raw
import subprocess


def have_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def rewrite(net, pid: int, *, host: str, advertise: str | None, peers: list[str]) -> None:
    ini = net.dir / f"peer-{pid}.ini"
    text = ini.read_text()
    text = re.sub(r"(?m)^host\s*=.*$", f"host = {host}", text)
    if advertise:
        text = re.sub(r"(?m)^(port\s*=.*)$", rf"\1\nadvertise = {advertise}", text, count=1)
    text = re.sub(r"(?m)^peers\s*=.*$", "peers = " + ", ".join(peers), text)
    ini.write_text(text)


def restart_all(net) -> None:
    for pid in net.peers:
        net.kill(pid)
    for pid in net.peers:
        net.restart(pid)


def neighbours_of(net, pid: int) -> list[int]:
    ports = {net.addr(p)[1]: p for p in net.peers}
    text = (net.dir / f"peer-{pid}.ini").read_text()
    line = re.search(r"(?m)^peers\s*=(.*)$", text).group(1)
    return [ports[int(a.rsplit(":", 1)[1])] for a in re.split(r"[,\s]+", line.strip()) if a]


class AdvertiseTest(NetCase):
    def test_wildcard_listener_is_reached_at_its_advertise_address(self):
        # line:3 (1-2-3). Peer 2 listens on 0.0.0.0 and advertises 127.0.0.2:PORT, an address
        # its own connections never come from (the kernel picks 127.0.0.1 as their source),
        # so its links can only be proven by the CHALLENGE over the neighbours' own links.
        net = self.net("line:3")
        p = {pid: net.addr(pid)[1] for pid in net.peers}
        adv2 = f"127.0.0.2:{p[2]}"
        rewrite(net, 1, host="127.0.0.1", advertise=None, peers=[adv2])
        rewrite(net, 2, host="0.0.0.0", advertise=adv2,
                peers=[f"127.0.0.1:{p[1]}", f"127.0.0.1:{p[3]}"])
        rewrite(net, 3, host="127.0.0.1", advertise=None, peers=[adv2])
        restart_all(net)

        cfg = json.loads(net.peer(2, "config", "--json").stdout)
        self.assertEqual((cfg["host"], cfg["port"], cfg["advertise"]), ("0.0.0.0", p[2], adv2))
        self.assertIn(f"address      {adv2} (listening on 0.0.0.0:{p[2]})",
                      net.peer(2, "config").stdout)
        self.assertEqual(json.loads(net.peer(1, "config", "--json").stdout)["advertise"],
                         f"127.0.0.1:{p[1]}")
        rows = {r["id"]: r for r in last_json(net.cli("peers", "--json").stdout)["peers"]}
        self.assertEqual(rows[2]["address"], adv2)

        # its own file: the FOUND names it as holder at its advertise address, fetched there
        r = net.peer(1, "get", "2.txt", "--json")
        self.assertOk(r)
        self.assertEqual(last_json(r.stdout)["holder"], adv2)
        self.assertEqual(md5_of(net.share(1) / "2.txt"), md5_of(net.share(2) / "2.txt"))
        # a get through it: GET forwarded by 2 (from=its advertise address), FOUND routed back
        r = net.peer(1, "get", "3.txt", "--json")
        self.assertOk(r)
        self.assertEqual(last_json(r.stdout)["holder"], f"127.0.0.1:{p[3]}")
        self.assertEqual(md5_of(net.share(1) / "3.txt"), md5_of(net.share(3) / "3.txt"))
        # the links 2 dialled claim 127.0.0.2 and are proven; and 2 proved its neighbours' links
        # (links_proven counts both directions: our dialled links and the proven inbound ones)
        net.wait_for(lambda: net.stats(1)["links_proven"] == 2 and
                     net.stats(3)["links_proven"] == 2 and net.stats(2)["links_proven"] == 4)
        for pid in (1, 3):
            self.assertEqual(net.stats(pid)["drops"].get("spoofed", 0), 0, net.log(pid)[-3000:])
            self.assertNotIn("refuted", net.log(pid))

        # advertise cannot change under running links: refused like [security], INI untouched
        before = (net.dir / "peer-2.ini").read_text()
        r = net.peer(2, "modify", "advertise", f"127.0.0.3:{p[2]}")
        self.assertEqual(r.returncode, 64, r.stderr)
        self.assertIn("advertise is read at start only", r.stderr)
        self.assertEqual((net.dir / "peer-2.ini").read_text(), before)

    @unittest.skipUnless(have_ipv6_loopback(), "no ::1 on this machine")
    def test_ipv6_ring_of_three_floods_and_fetches(self):
        net = self.net("ring:3")
        p = {pid: net.addr(pid)[1] for pid in net.peers}
        for pid in net.peers:
            rewrite(net, pid, host="::1", advertise=None,
                    peers=[f"[::1]:{p[n]}" for n in neighbours_of(net, pid)])
        restart_all(net)
        six = {pid: f"[::1]:{p[pid]}" for pid in net.peers}

        cfg = json.loads(net.peer(1, "config", "--json").stdout)
        self.assertEqual((cfg["host"], cfg["advertise"]), ("::1", six[1]))
        self.assertEqual(sorted(cfg["neighbours"]), sorted([six[2], six[3]]))
        net.wait_for(lambda: all(net.stats(pid)["links_proven"] == 4 for pid in net.peers))

        # the CLI takes a v6 address: cut 1-3, so 3.txt is 2 hops away (1 -> 2 -> 3)
        self.assertOk(net.peer(1, "link", "down", six[3]))
        self.assertEqual(json.loads(net.peer(1, "config", "--json").stdout)["links_down"],
                         [six[3]])
        r = net.peer(1, "get", "3.txt", "--json")
        self.assertOk(r)
        doc = last_json(r.stdout)
        self.assertEqual((doc["holder"], doc["hops"]), (six[3], 2))
        self.assertEqual(md5_of(net.share(1) / "3.txt"), md5_of(net.share(3) / "3.txt"))
        # the trace names every hop in the bracket form
        events = json.loads(net.peer(2, "events", "--json", doc["query_id"]).stdout)["events"]
        got = [e for e in events if e["type"] == "received"]
        self.assertTrue(got and got[0]["from"] == six[1], events)
        # `trace` gathers every peer's events and knows each peer by its v6 address
        t = net.cli("trace", doc["query_id"], "--json")
        self.assertOk(t)
        self.assertEqual({n["peer"]: n["addr"] for n in json.loads(t.stdout)["nodes"]}, six)
        self.assertIn("peer 3 -> peer 2 -> peer 1", net.cli("trace", doc["query_id"]).stdout)
        rows = {r["id"]: r for r in last_json(net.cli("peers", "--json").stdout)["peers"]}
        self.assertEqual(rows[2]["address"], six[2])
        self.assertEqual(sorted(rows[2]["neighbours"]), sorted([six[1], six[3]]))


class DualStackTest(NetCase):
    def test_ipv4_neighbours_of_a_peer_on_the_v6_wildcard(self):
        # line:2: peer 2 listens on "::" and advertises 127.0.0.1:PORT; peer 1 is IPv4 only.
        # Its v4 neighbour reaches it (dual-stack), and it names that neighbour 127.0.0.1, not
        # ::ffff:127.0.0.1 (one endpoint, one name: per-address limits, logs, transfers).
        net = self.net("line:2")
        p = {pid: net.addr(pid)[1] for pid in net.peers}
        rewrite(net, 2, host="::", advertise=f"127.0.0.1:{p[2]}", peers=[f"127.0.0.1:{p[1]}"])
        ini = net.dir / "peer-2.ini"  # a header begun and never finished is cut after 1 s
        ini.write_text(ini.read_text() + "\n[limits]\nio_timeout_ms = 1000\n")
        restart_all(net)
        net.wait_for(lambda: net.stats(1)["links_proven"] == 2 and
                     net.stats(2)["links_proven"] == 2)
        r = net.peer(1, "get", "2.txt", "--json")
        self.assertOk(r)
        self.assertEqual(last_json(r.stdout)["holder"], f"127.0.0.1:{p[2]}")
        raw(("127.0.0.1", p[2]), b"FLOOD/1 REQUEST path=%zz\n")
        net.wait_for(lambda: "malformed message" in net.log(2))
        log = net.log(2)
        self.assertRegex(log, r"connection from 127\.0\.0\.1:\d+: malformed message")
        # the gate (connection limits, and its log) names the half-sent header's sender so too
        with socket.create_connection(("127.0.0.1", p[2]), timeout=5) as half:
            half.sendall(b"FLOOD/1 GE")
            net.wait_for(lambda: "header not completed" in net.log(2))
        log = net.log(2)
        self.assertIn("connection from 127.0.0.1: header not completed in time", log)
        self.assertNotIn("::ffff:", log)
        self.assertEqual(json.loads(net.peer(2, "config", "--json").stdout)["host"], "::")

    @unittest.skipUnless(os.geteuid() == 0 and shutil.which("unshare"),
                         "needs root and unshare(1) for a network namespace")
    def test_v6_wildcard_takes_ipv4_even_where_bindv6only_is_set(self):
        # In a namespace of its own with net.ipv6.bindv6only=1 (some distributions' default),
        # a peer on "::" must still accept IPv4: it turns IPV6_V6ONLY off itself.
        d = Path(tempfile.mkdtemp(prefix="fs-it-v6only-"))
        self.addCleanup(shutil.rmtree, d, True)
        (d / "share").mkdir()
        port = 10801
        (d / "peer-1.ini").write_text(f"[peer]\nid = 1\nhost = ::\nport = {port}\n"
                                      f"advertise = 127.0.0.1:{port}\nshare_dir = share\nttl = 2\n")
        script = f"""
set -e
ip link set lo up
sysctl -qw net.ipv6.bindv6only=1
"{BIN}" serve --run "{d}" "{d}/peer-1.ini" 2>"{d}/peer-1.log" &
peer=$!
trap 'kill $peer; wait $peer' EXIT
for i in $(seq 100); do grep -q "up: listening" "{d}/peer-1.log" && break; sleep 0.05; done
python3 - <<'PY'
import socket
for fam, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(5)
    try:
        s.connect((host, {port}))
        print(host, "ok")
    except OSError as e:
        print(host, "refused", e)
    finally:
        s.close()
PY
"""
        r = subprocess.run(["unshare", "-n", "bash", "-c", script], capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("127.0.0.1 ok", r.stdout, (d / "peer-1.log").read_text())
        self.assertIn("::1 ok", r.stdout)


class BadAddressConfigTest(unittest.TestCase):
    """Bad [peer] host/advertise and neighbours: one line naming the key, exit 78, no peer."""

    CASES = [
        ("host = 127.0.0.1\nadvertise = 127.0.0.1\n", "[peer] advertise", "expected host:port"),
        ("host = 127.0.0.1\nadvertise = [::1\n", "[peer] advertise", "without ']'"),
        ("host = 127.0.0.1\nadvertise = ::1:10801\n", "[peer] advertise", "[addr]:port"),
        ("host = 127.0.0.1\nadvertise = 0.0.0.0:10801\n", "[peer] advertise", "wildcard"),
        ("host = ::1::2\n", "[peer] host", "not a valid IPv6 address"),
        ("host = [fe80::1%lo]\n", "[peer] host", "zone"),
        ("host = 0.0.0.0\n", "[peer] advertise", "missing: host \"0.0.0.0\" is a wildcard"),
        ("host = ::\n", "[peer] advertise", "missing: host \"::\" is a wildcard"),
        ("host = 127.0.0.1\n[neighbours]\npeers = [::1]:10802, [12345::1]:10803\n",
         "[neighbours] peers", "not a valid IPv6 address"),
        ("host = 0.0.0.0\nadvertise = 127.0.0.2:10801\n[neighbours]\npeers = 127.0.0.2:10801\n",
         "[neighbours] peers", "is this peer itself"),
    ]

    def test_bad_addresses_exit_78_naming_the_key(self):
        for body, key, why in self.CASES:
            with self.subTest(body=body), tempfile.TemporaryDirectory() as d:
                os.mkdir(Path(d) / "share")
                head, _, rest = body.partition("\n")
                ini = Path(d) / "bad.ini"
                ini.write_text(f"[peer]\nid = 1\n{head}\nport = 10801\nshare_dir = share\n"
                               f"ttl = 3\n{rest}")
                r = subprocess.run([str(BIN), "serve", "--run", d, str(ini)],
                                   capture_output=True, text=True, timeout=30)
                self.assertEqual(r.returncode, 78, r.stderr)
                self.assertIn(key, r.stderr)
                self.assertIn(why, r.stderr)
                self.assertFalse((Path(d) / "peer-1.sock").exists())


if __name__ == "__main__":
    unittest.main()
