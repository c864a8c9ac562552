"""What a holder traces (docs/TRACE.md, DESIGN.md Transfers): one transfer per connection and
item, however many FETCHes (spans with end=) a swarming requester sends on it, so that spans
cannot flood the holder's 4096-event ring. A raw client stands in for the requester."""

import hashlib
import json
import os
import socket
import unittest
import zlib

from fakeholder import fields
from fsnet import NetCase

MiB = 1 << 20


class SpanClient:
    """One connection to a holder, asking for spans of files with FETCH ... end=."""

    def __init__(self, addr):
        self.s = socket.create_connection(addr, timeout=10)
        self.f = self.s.makefile("rb")

    def fetch(self, path, md5, offset, end, chunk=MiB):
        self.s.sendall(f"FLOOD/1 FETCH path={path} md5={md5} offset={offset} chunk={chunk} "
                       f"end={end}\n".encode())
        head = self.f.readline().decode()
        if " RANGE " not in head:
            raise AssertionError(head)
        got = 0
        while offset + got < end:
            q = fields(self.f.readline().decode().strip())
            data = self.f.read(int(q["len"]))
            assert zlib.crc32(data) == int(q["crc"], 16)
            got += len(data)
        return got

    def close(self):
        self.f.close()
        self.s.close()


class HolderTraceTest(NetCase):
    def _events(self, net, pid):
        doc = json.loads(net.peer(pid, "events", "--json").stdout)
        return [e for e in doc["events"] if e["type"].startswith("transfer_")
                and e.get("role") == "holder"]

    def test_spans_on_one_connection_are_one_transfer_per_item(self):
        net = self.net("line:2")
        big, small = os.urandom(4 * MiB + 7), os.urandom(2 * MiB)
        (net.share(2) / "big.bin").write_bytes(big)
        (net.share(2) / "small.bin").write_bytes(small)
        net.wait_indexed(2, "big.bin")
        net.wait_indexed(2, "small.bin")
        md5, md5s = hashlib.md5(big).hexdigest(), hashlib.md5(small).hexdigest()
        c = SpanClient(net.addr(2))
        sent = c.fetch("big.bin", md5, 0, MiB)
        sent += c.fetch("big.bin", md5, 3 * MiB, 4 * MiB + 7)  # out of order, up to the end
        sent += c.fetch("big.bin", md5, 1 * MiB, 3 * MiB)
        self.assertEqual(sent, 4 * MiB + 7)
        # another item on the same connection ends the first transfer and starts its own
        sent_s = c.fetch("small.bin", md5s, MiB, 2 * MiB)
        net.wait_for(lambda: len(self._events(net, 2)) >= 3)
        evs = self._events(net, 2)
        self.assertEqual([(e["type"], e["name"]) for e in evs],
                         [("transfer_started", "big.bin"), ("transfer_done", "big.bin"),
                          ("transfer_started", "small.bin")], evs)
        done = evs[1]
        self.assertEqual(done["source_bytes"], 4 * MiB + 7)  # the sum of the three spans
        self.assertEqual(done["count"], 5)                   # DATA frames sent
        self.assertEqual(done["bytes"], 3 * MiB)             # where the last span ended
        self.assertEqual(done["size"], 4 * MiB + 7)
        # the connection's end ends the transfer it carries
        c.close()
        net.wait_for(lambda: len(self._events(net, 2)) >= 4)
        evs = self._events(net, 2)
        self.assertEqual(len(evs), 4, evs)
        self.assertEqual((evs[3]["type"], evs[3]["name"], evs[3]["source_bytes"], evs[3]["count"]),
                         ("transfer_done", "small.bin", sent_s, 1))
        # stats count items served, as the trace does: two, not four FETCHes
        self.assertEqual(net.stats(2)["uploads"], 2)
        # a requester that hangs up mid-span: that transfer fails, named so
        c = SpanClient(net.addr(2))
        c.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        c.s.sendall(f"FLOOD/1 FETCH path=big.bin md5={md5} offset=0 chunk={MiB}\n".encode())
        c.f.readline()
        c.f.read(1000)
        c.s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        c.close()  # a reset
        net.wait_for(lambda: len(self._events(net, 2)) >= 6)
        evs = self._events(net, 2)
        self.assertEqual([e["type"] for e in evs[4:]], ["transfer_started", "transfer_failed"])
        self.assertTrue(evs[5]["reason"], evs[5])


if __name__ == "__main__":
    unittest.main()
