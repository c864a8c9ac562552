"""Connection exhaustion: a thousand idle or byte-a-second connections against a peer must not
stop a download through it, and cost it nothing once they are gone (docs/DESIGN.md, "The gate")."""

import os
import resource
import socket
import statistics
import threading
import time

from fsnet import NetCase, last_json, make_big_file

ATTACK = 1000
SIZE = 48 << 20


def attacked_bound(normal: float) -> float:
    """How long an attacked get may take, from the same get unattacked."""
    return 3 * normal + 0.5


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


class Attacker:
    """ATTACK connections to addr: half send nothing, half send one header byte a second (each
    a header that never ends). Reconnects whatever the peer closes, so the pressure stays on."""

    def __init__(self, addr):
        self.addr, self.socks, self.stop = addr, [], threading.Event()
        self.opened = self.closed_by_peer = 0
        for i in range(ATTACK):
            self.socks.append(self._open())
        self.thread = threading.Thread(target=self._trickle, daemon=True)
        self.thread.start()

    def _open(self):
        s = socket.create_connection(self.addr, timeout=5)
        s.setblocking(False)
        self.opened += 1
        return s

    def _trickle(self):
        while not self.stop.wait(1.0):
            for i, s in enumerate(self.socks):
                if self.stop.is_set():
                    return
                try:
                    if s.recv(4096, socket.MSG_PEEK) == b"":
                        raise ConnectionResetError
                except BlockingIOError:
                    pass  # still open, nothing said: as expected
                except OSError:
                    self.closed_by_peer += 1
                    s.close()
                    try:
                        self.socks[i] = s = self._open()
                    except OSError:
                        continue
                if i % 2:
                    try:
                        s.send(b"F")
                    except OSError:
                        pass

    def close(self):
        self.stop.set()
        self.thread.join()
        for s in self.socks:
            s.close()


class ExhaustionTest(NetCase):
    def setUp(self):
        super().setUp()
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = min(hard, 4 * ATTACK)
        if soft < want:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
            self.addCleanup(resource.setrlimit, resource.RLIMIT_NOFILE, (soft, hard))

    def timed_get(self, net):
        t0 = time.monotonic()
        r = net.peer(1, "get", "big.bin", "--json", timeout=120)
        took = time.monotonic() - t0
        self.assertOk(r)
        self.assertEqual(last_json(r.stdout)["md5"], self.md5)
        (net.share(1) / "big.bin").unlink()
        return took

    def test_a_thousand_idle_and_trickling_connections_do_not_stop_a_download(self):
        # 1 - 2 - 3: the query crosses 2, the file comes from 3; both are attacked, from
        # 127.0.0.1, the address every legitimate peer of this run connects from too.
        net = self.net("line:3", seed_files=False)
        self.md5 = make_big_file(net.share(3) / "big.bin", SIZE)
        net.wait_indexed(3, "big.bin")
        normal = statistics.median(self.timed_get(net) for _ in range(3))
        base = {p: fd_count(net.pid(p)) for p in (2, 3)}

        attackers = [Attacker(net.addr(2)), Attacker(net.addr(3))]
        try:
            time.sleep(1.5)  # every connection made, trickles under way
            attacked = [self.timed_get(net) for _ in range(3)]
            for p in (2, 3):  # the peers kept at most max_conns_per_addr (256) of them
                self.assertLessEqual(fd_count(net.pid(p)), base[p] + 256 + 8)
        finally:
            for a in attackers:
                a.close()
        print(f"\nget of {SIZE >> 20} MiB: normal {normal:.3f} s; with {ATTACK} connections "
              f"against peers 2 and 3: {', '.join(f'{t:.3f}' for t in attacked)} s; "
              f"attackers reconnected {sum(a.closed_by_peer for a in attackers)} times")
        # Without the gate's limits a get waits out io timeouts (10 s) or fails; the bound only
        # leaves room for a loaded machine (2 x normal + 0.2 s missed by 9 ms under CI load).
        self.assertLessEqual(statistics.median(attacked), attacked_bound(normal),
                             f"normal {normal:.3f} s, attacked {attacked}")
        for p in (2, 3):
            s = net.stats(p)
            self.assertGreaterEqual(s["limit_refused"], ATTACK - 256, s)
            self.assertEqual(s["drops"]["limit"], s["limit_refused"])
        # Once the attackers are gone the peers hold nothing of theirs.
        net.wait_for(lambda: all(fd_count(net.pid(p)) <= base[p] for p in (2, 3)), timeout=20)
        self.assertLessEqual(self.timed_get(net), attacked_bound(normal))

    def test_limits_are_configurable(self):
        net = self.net("line:2", seed_files=False, limits={"max_conns_per_addr": 4})
        host, port = net.addr(1)
        # Peer 2's neighbour link to peer 1 comes from 127.0.0.1 too and is one of the four:
        # it is being served (by the flood plane), so it is never the one closed. Wait until
        # the flood plane has it (both links open at peer 1): until its HELLO has been read it
        # waits at the gate like the others, and on a slow start (the TSan build) it was the
        # one that had waited longest, so it was closed instead of connection 6.
        net.wait_for(lambda: net.stats(1)["links_open"] == 2, timeout=20)
        socks = [socket.create_connection((host, port)) for _ in range(10)]
        net.wait_for(lambda: net.stats(1)["limit_refused"] == 7, timeout=10)
        # The seven that waited longest were closed; the last three are still open.
        for i, s in enumerate(socks):
            s.settimeout(0.5 if i < 7 else 0.1)
            try:
                closed = s.recv(1) == b""
            except socket.timeout:
                closed = False
            except ConnectionResetError:
                closed = True
            self.assertEqual(closed, i < 7, f"connection {i}")
            s.close()
        r = net.peer(2, "get", "nothing-here.txt")  # the peer still floods and answers
        self.assertEqual(r.returncode, 1, r.stderr)
