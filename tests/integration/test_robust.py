"""Bad input on the peer port: answered with an error, never a crash or a stall."""

import os
import socket
import time
import unittest

from fsnet import NetCase, raw


class RobustTest(NetCase):
    def assertServes(self, net):
        r = net.peer(1, "get", "3.txt", timeout=20)
        self.assertOk(r, "the peer stopped serving")
        (net.share(1) / "3.txt").unlink()

    def test_garbage_gets_an_error_reply_and_the_peer_keeps_serving(self):
        net = self.net("topologies/seed-chain.topo")
        cases = {
            b"hello\n": b"code=version",
            b"FLOOD/1 BOGUS x=1\n": b"code=unknown",
            b"FLOOD/9 GET\n": b"code=version",
            b"FLOOD/1 GET qid=zz ttl=1 hops=0\n": b"code=malformed",
            os.urandom(3000): b"FLOOD/1 ERROR",
            b"\x00\x01\x02\n": b"FLOOD/1 ERROR",
            b"stats --json\n": b"code=version",  # control commands only on the control socket
        }
        for data, want in cases.items():
            out = raw(net.addr(2), data)
            self.assertIn(want, out, data[:40])
            self.assertTrue(out.endswith(b"\n"))
        self.assertGreaterEqual(net.stats(2)["malformed_dropped"], len(cases))
        self.assertTrue(net.alive(2))
        self.assertServes(net)

    def test_huge_header_is_cut_off_at_its_limit(self):
        net = self.net("topologies/seed-chain.topo")
        # The seed read whatever length a peer announced; here a header that never ends must be
        # refused as soon as it passes 2048 bytes, not after a timeout.
        t0 = time.monotonic()
        out = raw(net.addr(2), b"FLOOD/1 GET " + b"A" * 8000)
        self.assertIn(b"code=toolarge", out)
        self.assertLess(time.monotonic() - t0, 3)
        self.assertServes(net)

    def test_unsolicited_item_with_a_huge_length_is_refused(self):
        net = self.net("topologies/seed-chain.topo")
        out = raw(net.addr(2), f"FLOOD/1 ITEM kind=file size=1 md5={'0' * 32} "
                               f"len=9223372036854775807 zmd5={'0' * 32}\n".encode())
        self.assertIn(b"code=unexpected", out)
        self.assertServes(net)

    def test_silent_and_half_sent_connections_do_not_stall_the_peer(self):
        net = self.net("topologies/seed-chain.topo")
        # more silent connections than peer 2 has workers (16): idle ones must make way
        silent = [socket.create_connection(net.addr(2)) for _ in range(24)]
        half = socket.create_connection(net.addr(2))
        half.sendall(b"FLOOD/1 GET qid=00112233")  # and never the rest
        t0 = time.monotonic()
        self.assertServes(net)
        self.assertLess(time.monotonic() - t0, 10)
        for s in silent + [half]:
            s.close()
        self.assertTrue(net.alive(2))

    def test_idle_peers_use_no_cpu(self):
        net = self.net("topologies/seed-chain.topo")
        self.assertServes(net)  # links opened, a transfer done: now nothing happens

        def ticks(pid):
            fields = open(f"/proc/{net.pid(pid)}/stat").read().rsplit(")", 1)[1].split()
            return int(fields[11]) + int(fields[12])  # utime + stime, in clock ticks

        time.sleep(0.5)
        before = {pid: ticks(pid) for pid in net.peers}
        time.sleep(3)
        used = {pid: ticks(pid) - before[pid] for pid in net.peers}
        # a busy loop would burn ~300 ticks in 3 s; a few wake-ups of idle links cost ~0
        self.assertTrue(all(u <= 2 for u in used.values()), f"CPU ticks in 3 s: {used}")

    def test_sigterm_stops_a_peer_cleanly(self):
        net = self.net("topologies/seed-chain.topo")
        net.kill(2, 15)
        self.assertFalse((net.dir / "peer-2.sock").exists())
        self.assertIn("stopped", net.log(2))
        r = net.peer(2, "stats")
        self.assertEqual(r.returncode, 69)


if __name__ == "__main__":
    unittest.main()
