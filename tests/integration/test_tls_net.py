"""Closing the network: [security] passphrase (TLS 1.3 with a PSK from the passphrase), and
[security] key + trusted (each peer's key pinned).

PassphraseTest runs a ring of 4 that shares a passphrase, and two outsiders: one plain peer, one
with another passphrase. Neither outsider can query the ring, answer it, or fetch from it; each
attempt is an `auth` drop in the ring peers' stats (and in the outsider's). A capture on lo of the
ring's own ports while it does a get holds no `FLOOD/1` byte (it skips without dumpcap or root,
as test_wireshark.py does). KeysTest: a peer whose key the ring does not trust is refused (an
`auth` drop); once its fingerprint is trusted, its get works. HandshakeTest: a party that connects and says nothing, or speaks plain
FLOOD/1, is dropped as `auth` and delays no get.
"""
from __future__ import annotations

import os
import re
import socket
import time
import unittest
from pathlib import Path

from fsnet import NetCase, last_json, md5_of, raw


def write_secret(folder: Path, name: str, phrase: str) -> Path:
    path = folder / name
    path.write_text(phrase + "\n")
    path.chmod(0o600)
    return path


class PassphraseTest(NetCase):
    def auth(self, net, pid: int) -> int:
        return net.stats(pid)["drops"]["auth"]

    def test_outsiders_can_neither_query_nor_answer_nor_fetch(self):
        tmp = self.tmpdir()
        ring = self.net("ring:4", up_args=["--passphrase-file",
                                          str(write_secret(tmp, "ring", "the ring's own secret"))])
        plain = self.net("line:1")
        other = self.net("line:1", up_args=["--passphrase-file",
                                           str(write_secret(tmp, "other", "not the ring's secret"))])
        r = ring.peer(1, "config", "--json")
        self.assertOk(r)
        self.assertEqual(last_json(r.stdout)["security"], "passphrase")
        self.assertIn("passphrase: TLS 1.3", ring.peer(1, "config").stdout)
        self.assertEqual(last_json(plain.peer(1, "config", "--json").stdout)["security"], "plain")
        r = ring.peer(1, "modify", "passphrase", "another secret")  # read at start only
        self.assertEqual(r.returncode, 64, r.stdout)
        self.assertIn("[security] passphrase is read at start only", r.stderr)

        # The ring works: peer 1 finds and fetches peer 3's file.
        r = ring.peer(1, "get", "3.txt", "--json")
        self.assertOk(r, "the ring itself")
        ring_addr = "%s:%d" % ring.addr(1)
        ring_neighbours = last_json(ring.peer(1, "config", "--json").stdout)["neighbours"]

        for name, out in (("plain", plain), ("other passphrase", other)):
            with self.subTest(outsider=name):
                (out.share(1) / "outsider.txt").write_text(f"only the {name} outsider has this\n")
                out.wait_indexed(1, "outsider.txt")
                before = {p: self.auth(ring, p) for p in (1, 3)}
                out_before = self.auth(out, 1)

                # Query: the outsider links to ring peer 1 and asks for a file the ring has.
                self.assertOk(out.peer(1, "modify", "neighbours", ring_addr))
                r = out.peer(1, "get", "3.txt", "--json")
                self.assertNotEqual(r.returncode, 0, f"{name} outsider got a ring file: {r.stdout}")
                self.assertFalse((out.share(1) / "3.txt").exists())

                # Answer: ring peer 1 links to the outsider and asks for the outsider's file.
                out_addr = "%s:%d" % out.addr(1)
                self.assertOk(ring.peer(1, "modify", "neighbours",
                                        ",".join(ring_neighbours + [out_addr])))
                r = ring.peer(1, "get", "outsider.txt", "--json")
                self.assertNotEqual(r.returncode, 0, f"the ring took an answer from the {name} "
                                    f"outsider: {r.stdout}")
                self.assertFalse((ring.share(1) / "outsider.txt").exists())
                self.assertOk(ring.peer(1, "modify", "neighbours", ",".join(ring_neighbours)))

                # Fetch: straight to the holder's port, FLOOD/1 in the clear, with a real md5.
                md5 = md5_of(ring.share(3) / "3.txt")
                got = raw(ring.addr(3), f"FLOOD/1 FETCH path=3.txt md5={md5} offset=0\n".encode())
                self.assertEqual(got, b"", "a TLS peer answered a plain FETCH")

                ring.wait_for(lambda: self.auth(ring, 1) > before[1], timeout=20)
                ring.wait_for(lambda: self.auth(ring, 3) > before[3], timeout=20)
                if name != "plain":  # a plain peer knows no TLS: it sees a link that fails
                    self.assertGreater(self.auth(out, 1), out_before,
                                       "the outsider saw no auth failure")
                self.assertIn("TLS handshake failed", ring.log(1))

        # The ring still works after all that.
        r = ring.peer(2, "get", "album", "--json")
        self.assertOk(r, "the ring after the outsiders")

    def test_capture_of_a_get_holds_no_flood_bytes(self):
        from test_wireshark import Capture, tshark_problem  # how the dissector test captures
        why = tshark_problem()
        if not why and os.geteuid() != 0:
            why = "capturing on lo needs root"
        if why:
            self.skipTest(why)
        tmp = self.tmpdir()
        ring = self.net("ring:4", up_args=["--passphrase-file",
                                          str(write_secret(tmp, "ring", "captured but closed"))])
        ports = [ring.addr(p)[1] for p in ring.peers]
        capfile = tmp / "tls.pcapng"
        cap = Capture(capfile, ports)
        self.addCleanup(cap.stop)
        try:
            cap.wait(lambda: "Capturing on" in cap.text(), "dumpcap starting")
        except AssertionError:
            if cap.proc.poll() is not None:
                self.skipTest(f"dumpcap cannot capture on lo here: {cap.text().strip()}")
            raise
        time.sleep(0.5)  # dumpcap says "Capturing on" a moment before it sees packets
        r = ring.peer(1, "get", "album", "--json")
        self.assertOk(r)
        r = ring.peer(2, "search", "3.txt", "--json")
        self.assertOk(r)
        time.sleep(0.5)
        cap.stop()
        data = capfile.read_bytes()
        self.assertGreater(len(data), 60000, "the capture missed the transfer")
        self.assertFalse(b"FLOOD/1" in data, "FLOOD/1 in the clear on a closed network")
        self.assertFalse(b"album" in data, "an item's name in the clear on a closed network")


def fingerprint(net, pid: int) -> str:
    r = net.cli("fingerprint", str(net.dir / f"peer-{pid}.key"))
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def trust(net, pid: int, fps: list[str]) -> None:
    """Adds fps to peer pid's [security] trusted and restarts it."""
    ini = net.dir / f"peer-{pid}.ini"
    text = ini.read_text()
    text = re.sub(r"(?m)^trusted = (.*)$", lambda m: "trusted = " + ", ".join(
        [x for x in m.group(1).split(", ") if x] + fps), text)
    ini.write_text(text)
    net.kill(pid)
    net.restart(pid)


class KeysTest(NetCase):
    def test_an_unknown_key_is_refused_and_a_known_one_works(self):
        ring = self.net("ring:4", up_args=["--keys"])
        out = self.net("line:1", up_args=["--keys"])
        conf = last_json(ring.peer(1, "config", "--json").stdout)
        self.assertEqual((conf["security"], conf["trusted"]), ("keys", 3))
        self.assertOk(ring.peer(1, "get", "3.txt", "--json"), "the ring, keys pinned")
        (ring.share(1) / "ring-only.txt").write_text("only ring peer 1 has this\n")
        ring.wait_indexed(1, "ring-only.txt")

        # The outsider trusts the ring's keys; the ring does not know the outsider's.
        trust(out, 1, [fingerprint(ring, p) for p in ring.peers])
        before = ring.stats(1)["drops"]["auth"]
        self.assertOk(out.peer(1, "modify", "neighbours", "%s:%d" % ring.addr(1)))
        r = out.peer(1, "get", "ring-only.txt", "--json")
        self.assertNotEqual(r.returncode, 0, f"an unknown key got in: {r.stdout}")
        ring.wait_for(lambda: ring.stats(1)["drops"]["auth"] > before, timeout=20)
        self.assertIn("TLS handshake failed", ring.log(1))

        # Ring peer 1 learns the outsider's key: now the same get works.
        trust(ring, 1, [fingerprint(out, 1)])
        r = out.peer(1, "get", "ring-only.txt", "--json")
        self.assertOk(r, "a known key")
        self.assertEqual(md5_of(out.share(1) / "ring-only.txt"),
                         md5_of(ring.share(1) / "ring-only.txt"))


class KeylogTest(NetCase):
    def test_keylog_file_gets_nss_lines_mode_0600(self):
        tmp = self.tmpdir()
        net = self.net("line:2", up_args=["--passphrase-file",
                                         str(write_secret(tmp, "pass", "log my keys please"))])
        ini = net.dir / "peer-1.ini"
        ini.write_text(ini.read_text() + "keylog = keys.log\n")  # [security] is the last section
        net.kill(1)
        net.restart(1)
        cap = None
        from test_wireshark import Capture, decoded, tshark_problem
        if not tshark_problem() and os.geteuid() == 0:  # else: the key log alone is checked
            capfile = tmp / "tls.pcapng"
            cap = Capture(capfile, [net.addr(p)[1] for p in net.peers])
            self.addCleanup(cap.stop)
            cap.wait(lambda: "Capturing on" in cap.text() or cap.proc.poll() is not None,
                     "dumpcap starting")
            time.sleep(0.5)
        self.assertOk(net.peer(1, "get", "2.txt", "--json"))
        log = net.dir / "keys.log"
        if cap is not None and cap.proc.poll() is None:
            time.sleep(0.5)
            cap.stop()
            # Wireshark with the key log sees FLOOD/1 again; without it, nothing.
            verbs = {m["fields"].get("verb") for m in
                     decoded(capfile, "-o", f"tls.keylog_file:{log}")}
            # (the links were dialled before the capture began: the transfer's handshake is in it)
            # (a get's first request is HASHES, for the piece list, then FETCH on the same
            # connection)
            self.assertIn("HASHES", verbs, f"through the key log: {verbs}")
            self.assertEqual(decoded(capfile), [], "FLOOD/1 decoded without the key log")
        self.assertEqual(log.stat().st_mode & 0o777, 0o600)
        lines = log.read_text().splitlines()
        self.assertTrue(lines, "no key log lines")
        for line in lines:
            self.assertRegex(line, r"^[A-Z_]+_SECRET(_[0-9]+)? [0-9a-f]{64} [0-9a-f]{64,}$")
        labels = {line.split()[0] for line in lines}
        self.assertIn("CLIENT_TRAFFIC_SECRET_0", labels)
        self.assertIn("SERVER_TRAFFIC_SECRET_0", labels)


class HandshakeTest(NetCase):
    def test_silent_and_plain_parties_are_auth_drops_and_delay_no_get(self):
        tmp = self.tmpdir()
        # A long handshake deadline: the get must finish while the silent ones still wait.
        ring = self.net("ring:4", limits={"connect_timeout_ms": 8000, "hit_window_ms": 500},
                        up_args=["--passphrase-file",
                                 str(write_secret(tmp, "ring", "a secret for the ring"))])
        before = ring.stats(3)["drops"]["auth"]
        silent = []
        for _ in range(20):
            s = socket.create_connection(ring.addr(3), timeout=5)
            silent.append(s)
            self.addCleanup(s.close)
        t0 = time.monotonic()
        r = ring.peer(1, "get", "album", "--json")
        took = time.monotonic() - t0
        self.assertOk(r, "a get while 20 parties sit silent at the holder")
        self.assertLess(took, 7.0, "the get waited for the silent parties' handshake deadline")
        # Plain FLOOD/1 to the TLS port: no answer, dropped at once.
        got = raw(ring.addr(3), b"FLOOD/1 GET qid=0123456789abcdef ttl=1 hops=0 from=127.0.0.1:1 "
                  b"q=3.txt\n", timeout=10)
        self.assertEqual(got, b"")
        ring.wait_for(lambda: ring.stats(3)["drops"]["auth"] >= before + 21, timeout=20)
        for s in silent:  # the peer closed them: EOF, not a hang
            s.settimeout(1)
            self.assertEqual(s.recv(100), b"")
        self.assertIn("TLS handshake not completed", ring.log(3))


if __name__ == "__main__":
    unittest.main()
