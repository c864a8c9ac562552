"""Upload slots, BUSY and min_upload_rate (issue 10): slow or never-reading FETCH connections
cannot take a holder's transfers or its flood away from everyone else."""

import re
import socket
import subprocess
import threading
import time
import unittest

from fsnet import BIN, NetCase, last_json, make_big_file

BIG = 512 << 20  # the file the slow readers ask for
MID = 8 << 20  # what the honest requester fetches meanwhile
TCP_ESTABLISHED = 1  # tcpi_state, the first byte of TCP_INFO


def read_header(s: socket.socket) -> bytes:
    """One header line (b"" when the holder closed first)."""
    line = b""
    while not line.endswith(b"\n") and len(line) < 2048:
        c = s.recv(1)
        if not c:
            return b""
        line += c
    return line


class SlowReaders:
    """n FETCH connections per source address for path, each from a socket bound to that
    source and with a tiny receive buffer. Half never read after the header, half read 1 KiB a
    second (far under 16 KiB/s). A connection turned away with BUSY (or the gate's "busy")
    comes back after the retry it was given, as a hostile requester would; one whose upload is
    cut comes back at once. Everything it sees is counted."""

    def __init__(self, holder, path, md5, sources, n):
        self.holder, self.line = holder, f"FLOOD/1 FETCH path={path} md5={md5} offset=0\n".encode()
        self.lock = threading.Lock()
        self.busy = self.ranges = self.cut = 0
        self.held = {src: 0 for src in sources}  # uploads running to each source now...
        self.most = {src: 0 for src in sources}  # ...and the most there ever were at once
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.run, args=(src, i % 2 == 0), daemon=True)
                        for src in sources for i in range(n)]
        for t in self.threads:
            t.start()

    def count(self, field):
        with self.lock:
            setattr(self, field, getattr(self, field) + 1)

    def once(self, src, never_read):
        s = socket.socket()
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.bind((src, 0))
            s.settimeout(30)
            s.connect(self.holder)
            s.sendall(self.line)
            head = read_header(s)
            if head.startswith(b"FLOOD/1 BUSY retry="):
                self.count("busy")
                return int(head.split(b"=")[1]) / 1000
            if head.startswith(b"FLOOD/1 ERROR code=busy"):
                self.count("busy")
                return 0.2
            if not head.startswith(b"FLOOD/1 RANGE"):
                return 0.2
            self.count("ranges")
            with self.lock:
                self.held[src] += 1
                self.most[src] = max(self.most[src], self.held[src])
            try:
                while not self.stop.is_set():
                    # a cut upload is closed with a reset: the state leaves ESTABLISHED
                    if s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0] != TCP_ESTABLISHED:
                        break
                    if not never_read:
                        s.settimeout(5)
                        if not s.recv(1024):
                            break
                    time.sleep(1 if not never_read else 0.2)
                else:
                    return 0
            except OSError:
                pass
            finally:
                with self.lock:
                    self.held[src] -= 1
            self.count("cut")
            return 0
        except OSError:
            return 0.2
        finally:
            s.close()

    def run(self, src, never_read):
        while not self.stop.is_set():
            pause = self.once(src, never_read)
            self.stop.wait(pause)

    def close(self):
        self.stop.set()
        for t in self.threads:
            t.join(10)


class SlotsTest(NetCase):
    def test_slow_readers_get_busy_or_are_cut_while_others_are_served(self):
        # 1 - 2 - 3, peer N on 127.0.0.N; peer 2 holds big.bin and mid.bin.
        net = self.net("line:3", per_peer_address=True, seed_files=False)
        big_md5 = make_big_file(net.share(2) / "big.bin", BIG)
        make_big_file(net.share(2) / "mid.bin", MID)
        net.wait_indexed(2, "big.bin")
        net.wait_indexed(2, "mid.bin")
        holder = net.addr(2)
        slow = SlowReaders(holder, "big.bin", big_md5, ["127.0.0.1", "127.0.0.2"], 32)
        self.addCleanup(slow.close)
        # every slot a slow address may have is taken, and the rest are being turned away
        net.wait_for(lambda: slow.ranges >= 4 and slow.busy >= 60, timeout=30)

        # the flood still flows through the holder: a search from peer 1 finds its files
        t0 = time.monotonic()
        r = net.peer(1, "search", "mid.bin", "--json")
        self.assertOk(r)
        self.assertIn(2, [h["peer"] for h in last_json(r.stdout)["hits"]])
        # ...and a requester on a third address (127.0.0.3) gets a slot and its file
        r = net.peer(3, "get", "mid.bin", "--json")
        self.assertOk(r)
        doc = last_json(r.stdout)
        self.assertTrue(doc["ok"])
        self.assertEqual(doc["peer"], 2)
        self.assertEqual((net.share(3) / "mid.bin").stat().st_size, MID)
        self.assertLess(time.monotonic() - t0, 30)

        # the slow ones that got a slot are cut at min_upload_rate (over 10 s)
        net.wait_for(lambda: net.stats(2)["uploads_slow"] >= 4 and slow.cut >= 4, timeout=40,
                     step=0.5)
        slow.close()
        st = net.stats(2)
        # every refusal and every cut the clients saw is counted by its drop reason
        self.assertGreaterEqual(st["drops"]["busy"], slow.busy)
        self.assertEqual(st["drops"]["busy"], st["busy_refused"])
        self.assertEqual(st["drops"]["slow"], st["uploads_slow"])
        self.assertGreaterEqual(st["uploads_slow"] + st["timeouts"], slow.cut)
        self.assertGreaterEqual(slow.cut, 4)
        # never more than upload_slots_per_addr (2) uploads to one address at once, and every
        # upload the slow ones got ended badly for them (at most 4 may still be running)
        self.assertEqual(slow.most, {"127.0.0.1": 2, "127.0.0.2": 2})
        self.assertLessEqual(slow.ranges, st["uploads_slow"] + st["uploads_failed"] + 4)
        self.assertIn("under min_upload_rate", net.log(2))

    def test_get_waits_out_a_busy_holder(self):
        # one slot in all: a never-reading requester on 127.0.0.1 holds it until it is cut
        net = self.net("line:3", per_peer_address=True, seed_files=False,
                       limits={"upload_slots": 1})
        big_md5 = make_big_file(net.share(2) / "big.bin", 64 << 20)
        make_big_file(net.share(2) / "mid.bin", MID)
        net.wait_indexed(2, "big.bin")
        net.wait_indexed(2, "mid.bin")
        slow = SlowReaders(net.addr(2), "big.bin", big_md5, ["127.0.0.1"], 1)
        self.addCleanup(slow.close)
        net.wait_for(lambda: slow.ranges >= 1, timeout=20)
        r = net.peer(3, "get", "mid.bin", timeout=120)
        self.assertOk(r)
        self.assertIn("is busy (every upload slot taken)", r.stderr + r.stdout)
        self.assertIn("asking busy peer 2", r.stdout)
        self.assertEqual((net.share(3) / "mid.bin").stat().st_size, MID)
        st = net.stats(2)
        self.assertGreaterEqual(st["busy_refused"], 1)
        self.assertGreaterEqual(st["uploads_slow"], 1)

    def test_folder_fetched_file_by_file_keeps_its_slot_between_files(self):
        # one slot in all; peer 3 fetches a 72 MiB folder file by file (LIST, then 24 FETCHes
        # on one connection) while a requester on 127.0.0.1 asks for another file every few ms
        net = self.net("line:3", per_peer_address=True, seed_files=False,
                       limits={"upload_slots": 1})
        album = net.share(2) / "album"
        album.mkdir()
        for i in range(24):
            make_big_file(album / f"f{i:02}.bin", 3 << 20)
        solo_md5 = make_big_file(net.share(2) / "solo.bin", 1 << 20)
        net.wait_indexed(2, "album")
        net.wait_indexed(2, "solo.bin")
        get = subprocess.Popen([str(BIN), "--run", str(net.dir), "peer", "3", "get", "album"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.addCleanup(get.kill)
        net.wait_for(lambda: (t := net.active_download(3)) is not None and t["done"] > 0,
                     timeout=30, step=0.002)
        seen = {"busy": 0, "range": []}  # BUSY count; when (wall clock) each RANGE came
        stop = threading.Event()

        def hammer():
            line = f"FLOOD/1 FETCH path=solo.bin md5={solo_md5} offset=0\n".encode()
            while not stop.is_set():
                try:
                    with socket.socket() as s:
                        s.bind(("127.0.0.1", 0))
                        s.settimeout(5)
                        s.connect(net.addr(2))
                        s.sendall(line)
                        head = read_header(s)
                except OSError:
                    continue
                if head.startswith(b"FLOOD/1 BUSY"):
                    seen["busy"] += 1
                elif head.startswith(b"FLOOD/1 RANGE"):
                    seen["range"].append(time.time())
                if net.active_download(3) is None:
                    break

        threads = [threading.Thread(target=hammer, daemon=True) for _ in range(3)]
        for t in threads:
            t.start()
        out, _ = get.communicate(timeout=120)
        stop.set()
        for t in threads:
            t.join(10)
        self.assertEqual(get.returncode, 0, out)
        self.assertNotIn("busy", out)  # the folder never lost its slot between files
        self.assertEqual(len(list((net.share(3) / "album").iterdir())), 24)
        self.assertGreater(seen["busy"], 0)
        # no other upload got the slot between the folder's first and last FETCH (the
        # holder's log says when it began each file; manifest order: f00 first, f23 last)
        def began(name):
            m = re.search(r"^(\d\d):(\d\d):(\d\d\.\d+) peer 2: fetch \"album/%s\": sending"
                          % name, net.log(2), re.M)
            self.assertIsNotNone(m, name)
            h, mi, sec = int(m[1]), int(m[2]), float(m[3])
            day = time.mktime(time.localtime()[:3] + (0, 0, 0, 0, 0, -1))
            return day + h * 3600 + mi * 60 + sec
        first, last = began("f00.bin"), began("f23.bin")
        inside = [t for t in seen["range"] if first < t < last]
        self.assertEqual(inside, [], f"folder from {first:.3f} to {last:.3f}")


if __name__ == "__main__":
    unittest.main()
