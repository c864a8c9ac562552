"""Lying and abusive neighbours in the flood: FOUNDs from where the query never went, and a
neighbour that floods queries (docs/PROTOCOL.md, "FOUND: the reverse path")."""

import socket
import threading
import time

from fsnet import NetCase, last_json


class FakeNeighbour:
    """A neighbour played by the test: a listening socket that records the GETs a peer forwards
    to it (over the peer's link to it, which it keeps, so it can answer over it), and that can
    dial a peer and prove its own address there, answering the peer's CHALLENGE with PROVE the
    way a real peer does (docs/PROTOCOL.md, "Links")."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.addr = "127.0.0.1:%d" % self.sock.getsockname()[1]
        self.gets: list[dict[str, str]] = []
        self.got = threading.Event()
        self.links: list[socket.socket] = []  # the peers' links to us: answers go back here
        self.out: socket.socket | None = None  # our own link to a peer
        self.proven = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def dial(self, addr) -> socket.socket:
        """Opens our own link to the peer at addr and says who we are."""
        self.out = socket.create_connection(addr, timeout=5)
        self.out.sendall(f"FLOOD/1 HELLO from={self.addr} peer=77\n".encode())
        return self.out

    def reply(self, data: bytes):
        """Sends data back over the link the peer's GET came on."""
        self.links[-1].sendall(data)

    def _serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._read, args=(c,), daemon=True).start()

    def _read(self, c):
        buf = b""
        self.links.append(c)
        with c:
            while True:
                try:
                    data = c.recv(4096)
                except OSError:
                    return
                if not data:
                    return
                buf += data
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    words = line.decode().split(" ")
                    if words[1] == "GET":
                        self.gets.append(dict(w.split("=", 1) for w in words[2:]))
                        self.got.set()
                    elif words[1] == "CHALLENGE" and self.out is not None:
                        nonce = dict(w.split("=", 1) for w in words[2:])["nonce"]
                        self.out.sendall(f"FLOOD/1 PROVE from={self.addr} nonce={nonce}\n"
                                         .encode())
                        self.proven.set()

    def close(self):
        self.sock.close()


def found(qid: str, sender: str, holder: str, name: str = "bait.txt") -> bytes:
    return (f"FLOOD/1 FOUND qid={qid} hops=2 from={sender} holder={holder} peer=99 kind=file "
            f"size=4 md5={'a' * 32} path={name} name={name}\n").encode()


def send(addr, data: bytes):
    with socket.create_connection(addr, timeout=5) as s:
        s.sendall(data)


class FloodDefenceTest(NetCase):
    def test_found_only_from_a_hop_the_query_went_to(self):
        # 1 - 2 - 3, and E (this test) a neighbour of 2 only. A search from 1 reaches E through
        # 2, so E learns the query id; then E answers four ways.
        net = self.net("line:3", seed_files=False)
        e = FakeNeighbour()
        self.addCleanup(e.close)
        h3, p3 = net.addr(3)
        self.assertOk(net.peer(2, "modify", "neighbours", f"127.0.0.1:{net.addr(1)[1]}, "
                               f"{h3}:{p3}, {e.addr}"))
        result = {}
        t = threading.Thread(target=lambda: result.setdefault(
            "r", net.peer(1, "search", "bait.txt", "--json", timeout=30)))
        t.start()
        self.assertTrue(e.got.wait(10), "the query never reached E")
        qid = e.gets[0]["qid"]
        one, two = ("127.0.0.1", net.addr(1)[1]), ("127.0.0.1", net.addr(2)[1])
        # a) straight to the origin: peer 1 sent the query to 2 only
        send(one, found(qid, e.addr, e.addr))
        # b) to 2, claiming to be peer 1: peer 1's own link to 2 proved that address, so a
        #    second connection claiming it is a liar
        send(two, found(qid, f"127.0.0.1:{one[1]}", e.addr))
        # c) to 2, as E, but on a connection of its own: 2 challenges the claim over its link to
        #    E, holds the FOUND meanwhile, and when no proof comes the claim is refuted and the
        #    FOUND dropped as spoofed (only the link the query went out on can answer it)
        send(two, found(qid, e.addr, e.addr))
        # d) as E, over the link the GET came on: relayed to 1
        e.reply(found(qid, e.addr, e.addr))
        t.join()
        r = result["r"]
        self.assertOk(r)
        hits = last_json(r.stdout)["hits"]
        self.assertEqual(len(hits), 1, hits)
        self.assertEqual(hits[0]["holder"], e.addr)
        s1, s2 = net.stats(1), net.stats(2)
        self.assertEqual(s1["wrong_route_dropped"], 1, s1)
        self.assertEqual(s2["wrong_route_dropped"], 0, s2)
        net.wait_for(lambda: net.stats(2)["drops"]["spoofed"] == 2, timeout=10)
        self.assertEqual(s2["hits_relayed"], 1)
        self.assertEqual(s1["drops"]["route_lost"], 1)
        self.assertIn("the query was never sent there, dropped", net.log(1))
        self.assertIn("dropped as spoofed", net.log(2))
        # and a FOUND for an id nobody forwarded is no_route
        send(one, found("00112233aabbccdd", e.addr, e.addr))
        net.wait_for(lambda: net.stats(1)["drops"]["no_route"] == 1, timeout=10)

    def test_a_flooding_neighbour_is_throttled_and_the_others_get_through(self):
        # 1 - 2 - 3 with 3.txt on 3, and E a proven neighbour of 2 that floods it with 200
        # queries: peer 1's get through 2 must still work, and 2 handles at most E's burst.
        # (ttl 1: 2 does not pass them on, so what is measured is 2's bucket for E alone.)
        net = self.net("line:3", limits={"query_rate": 5, "query_burst": 10})
        e = FakeNeighbour()
        self.addCleanup(e.close)
        two = ("127.0.0.1", net.addr(2)[1])
        self.assertOk(net.peer(2, "modify", "neighbours", "127.0.0.1:%d, 127.0.0.1:%d, %s" % (
            net.addr(1)[1], net.addr(3)[1], e.addr)))
        out = e.dial(two)
        self.assertTrue(e.proven.wait(10), "peer 2 never challenged E's link")
        time.sleep(0.2)  # the PROVE crosses to peer 2
        lines = b"".join(
            f"FLOOD/1 GET qid={i:016x} ttl=1 hops=0 origin={e.addr} from={e.addr} "
            f"name=nothing{i}.txt\n".encode() for i in range(200))
        t0 = time.monotonic()
        out.sendall(lines)
        net.wait_for(lambda: net.stats(2)["queries_handled"] + net.stats(2)["throttled"] >= 200,
                     timeout=20)
        took = time.monotonic() - t0
        s2 = net.stats(2)
        # at most the burst plus what refilled at 5/s while they arrived
        self.assertLessEqual(s2["queries_handled"], 10 + 5 * took + 1, s2)
        self.assertGreaterEqual(s2["throttled"], 200 - (10 + 5 * took + 1), s2)
        self.assertEqual(s2["drops"]["throttle"], s2["throttled"])
        self.assertEqual(s2["drops"]["spoofed"], 0, s2)
        self.assertIn("over that neighbour's query_rate, dropped", net.log(2))
        # the other neighbour's query still gets through, right away
        r = net.peer(1, "get", "3.txt", "--json", timeout=30)
        self.assertOk(r, "peer 1's query was crowded out")
        self.assertTrue((net.share(1) / "3.txt").exists())
        # and the flooder's own bucket refills: a query from it later is handled again
        handled = net.stats(2)["queries_handled"]
        time.sleep(0.5)
        out.sendall(f"FLOOD/1 GET qid={999:016x} ttl=1 hops=0 origin={e.addr} from={e.addr} "
                    f"name=later.txt\n".encode())
        net.wait_for(lambda: net.stats(2)["queries_handled"] == handled + 1, timeout=10)

    def test_strangers_share_one_bucket(self):
        # Unproven connections, each claiming an address of its own, do not escape the limit:
        # they all draw from one bucket. One connection naming ever new addresses is spoofing.
        net = self.net("line:2", seed_files=False, limits={"query_rate": 1, "query_burst": 5})
        one = ("127.0.0.1", net.addr(1)[1])
        for i in range(1, 51):
            send(one, f"FLOOD/1 GET qid={i:016x} ttl=1 hops=0 origin=10.0.0.{i}:1 "
                      f"from=10.0.0.{i}:1 name=x.txt\n".encode())
        net.wait_for(lambda: net.stats(1)["queries_handled"] + net.stats(1)["throttled"] >= 50,
                     timeout=20)
        self.assertLessEqual(net.stats(1)["queries_handled"], 8)
        lines = b"".join(
            f"FLOOD/1 GET qid={i:016x} ttl=1 hops=0 origin=10.0.1.{i}:1 from=10.0.1.{i}:1 "
            f"name=x.txt\n".encode() for i in range(1, 51))
        send(one, lines)
        net.wait_for(lambda: net.stats(1)["drops"]["spoofed"] >= 49, timeout=20)
