"""Lying and abusive neighbours in the flood: FOUNDs from where the query never went, and a
neighbour that floods queries (docs/PROTOCOL.md, "FOUND: the reverse path")."""

import socket
import threading
import time

from fsnet import NetCase, last_json


class FakeNeighbour:
    """A listening socket that records the GETs a peer forwards to it."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.addr = "127.0.0.1:%d" % self.sock.getsockname()[1]
        self.gets: list[dict[str, str]] = []
        self.got = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._read, args=(c,), daemon=True).start()

    def _read(self, c):
        buf = b""
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
        # 2, so E learns the query id; then E answers three ways.
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
        # b) to 2, claiming to be peer 1: 2 never sent the query back to where it came from
        send(two, found(qid, f"127.0.0.1:{one[1]}", e.addr))
        # c) to 2, as E: 2 did send it to E, so this hit is relayed to 1
        send(two, found(qid, e.addr, e.addr))
        t.join()
        r = result["r"]
        self.assertOk(r)
        hits = last_json(r.stdout)["hits"]
        self.assertEqual(len(hits), 1, hits)
        self.assertEqual(hits[0]["holder"], e.addr)
        s1, s2 = net.stats(1), net.stats(2)
        self.assertEqual(s1["wrong_route_dropped"], 1, s1)
        self.assertEqual(s2["wrong_route_dropped"], 1, s2)
        self.assertEqual(s2["hits_relayed"], 1)
        self.assertEqual(s1["drops"]["route_lost"], 1)
        self.assertIn("the query was never sent there, dropped", net.log(1))
        # and a FOUND for an id nobody forwarded is no_route
        send(one, found("00112233aabbccdd", e.addr, e.addr))
        net.wait_for(lambda: net.stats(1)["drops"]["no_route"] == 1, timeout=10)

    def test_a_flooding_neighbour_is_throttled_and_the_others_get_through(self):
        # 1 - 2 - 3 with 3.txt on 3. Peer 3's address floods peer 2 with 200 queries; peer 1's
        # get through 2 must still work, and 2 forwards at most the flooder's burst.
        net = self.net("line:3", limits={"query_rate": 5, "query_burst": 10})
        two = ("127.0.0.1", net.addr(2)[1])
        flooder = f"127.0.0.1:{net.addr(3)[1]}"
        lines = b"".join(
            f"FLOOD/1 GET qid={i:016x} ttl=2 hops=0 origin={flooder} from={flooder} "
            f"name=nothing{i}.txt\n".encode() for i in range(200))
        t0 = time.monotonic()
        send(two, lines)
        net.wait_for(lambda: net.stats(2)["queries_handled"] + net.stats(2)["throttled"] >= 200,
                     timeout=20)
        took = time.monotonic() - t0
        s2 = net.stats(2)
        # at most the burst plus what refilled at 5/s while they arrived
        self.assertLessEqual(s2["queries_handled"], 10 + 5 * took + 1, s2)
        self.assertGreaterEqual(s2["throttled"], 200 - (10 + 5 * took + 1), s2)
        self.assertEqual(s2["drops"]["throttle"], s2["throttled"])
        self.assertIn("over that neighbour's query_rate, dropped", net.log(2))
        # the other neighbour's query still gets through, right away
        r = net.peer(1, "get", "3.txt", "--json", timeout=30)
        self.assertOk(r, "peer 1's query was crowded out")
        self.assertTrue((net.share(1) / "3.txt").exists())
        # and the flooder's own bucket refills: a query from it later is handled again
        handled = net.stats(2)["queries_handled"]
        time.sleep(0.5)
        send(two, f"FLOOD/1 GET qid={999:016x} ttl=1 hops=0 origin={flooder} from={flooder} "
                  f"name=later.txt\n".encode())
        net.wait_for(lambda: net.stats(2)["queries_handled"] == handled + 1, timeout=10)

    def test_strangers_share_one_bucket(self):
        # Claiming a new address for every query does not escape the limit.
        net = self.net("line:2", seed_files=False, limits={"query_rate": 1, "query_burst": 5})
        one = ("127.0.0.1", net.addr(1)[1])
        lines = b"".join(
            f"FLOOD/1 GET qid={i:016x} ttl=1 hops=0 origin=10.0.0.{i}:1 from=10.0.0.{i}:1 "
            f"name=x.txt\n".encode() for i in range(1, 101))
        send(one, lines)
        net.wait_for(lambda: net.stats(1)["queries_handled"] + net.stats(1)["throttled"] >= 100,
                     timeout=20)
        self.assertLessEqual(net.stats(1)["queries_handled"], 8)
