"""Negotiated chunk sizes (docs/PROTOCOL.md FETCH/RANGE): a get asks for 512 KiB frames, its
partial records them, a resume asks for the same, a resume from an older holder (4 MiB frames,
no `chunk` in its answer to our wish) re-cuts the partial, and a holder announcing a frame size
that is not a power of two from 64 KiB to 4 MiB is cut off."""

import hashlib
import json
import os
import subprocess
import unittest
import zlib

from evilpeer import EvilPeer
from fsnet import BIN, NetCase, last_json, make_big_file, md5_of
from test_lying_holders import leftovers, set_limits

MiB = 1 << 20
CHUNK = 512 * 1024  # XFER_FETCH_CHUNK in include/floodshare/xfer.h


def state_lines(share) -> list[str]:
    """The lines of the one partial download's state file in share."""
    states = [p for p in (share / ".floodshare").iterdir() if p.name.endswith(".state")]
    assert len(states) == 1, states
    return states[0].read_text().splitlines()


class ChunkTest(NetCase):
    def test_get_asks_for_512_kib_chunks_and_a_killed_one_resumes_with_them(self):
        net = self.net("topologies/seed-chain.topo")
        size = 256 * MiB
        md5 = make_big_file(net.share(2) / "big.bin", size)
        net.wait_indexed(2, "big.bin")
        get = self._start_get(net, "big.bin")
        net.wait_for(lambda: (t := net.active_download(1)) is not None and
                     t["done"] >= 0.3 * size, timeout=60, step=0.005)
        net.kill(1)
        get.wait(timeout=30)
        lines = state_lines(net.share(1))
        # A hit with a root (the holder has hashed the file) makes a version 2 partial: its
        # pieces are the 512 KiB chunks, each named once written, and a resume keeps them all.
        v2 = lines[0] == "floodshare-partial 2"
        self.assertIn(f"piece {CHUNK}" if v2 else f"chunk {CHUNK}", lines)  # no re-cut
        have = len({l for l in lines if l.startswith("p " if v2 else "c ")}) * CHUNK
        self.assertGreater(have, 0)

        net.restart(1)
        r = net.peer(1, "get", "big.bin", "--json", timeout=120)
        self.assertOk(r)
        doc = last_json(r.stdout)
        self.assertEqual(md5_of(net.share(1) / "big.bin"), md5)
        # the resume starts after every piece kept (version 2), or at the kept prefix cut back
        # to whole 4 MiB (version 1), never before
        self.assertEqual(doc["resumed_from"], have if v2 else have - have % (4 * MiB))
        self.assertEqual(net.stats(1)["bytes_received"], size - doc["resumed_from"])
        self.assertEqual(leftovers(net.share(1)), [])
        self.assertIn(f'fetch "big.bin": sending bytes {doc["resumed_from"]}..', net.log(2))

    def test_1_mib_partial_is_finished_by_an_older_holder_in_4_mib_chunks(self):
        """A partial of six 1 MiB chunks (written as a get would leave it); the only holder
        tried is an older one, which sends 4 MiB frames whatever it is asked: the requester
        asks from byte 4 MiB (a boundary of every chunk size), takes its 4 MiB frames and
        re-cuts its partial to them."""
        net = self.net("topologies/seed-chain.topo")
        size = 12 * MiB + 12345
        genuine = os.urandom(size)
        md5 = hashlib.md5(genuine).hexdigest()
        (net.share(3) / "big.bin").write_bytes(genuine)
        old = EvilPeer("big.bin", genuine, "fetch-gated")
        old.gate.set()
        self.addCleanup(old.close)
        cfg = json.loads(net.peer(1, "config", "--json").stdout)
        self.assertOk(net.peer(1, "modify", "neighbours",
                               ", ".join(cfg["neighbours"] + [old.addr])))
        self.assertOk(net.peer(3, "ls"))
        state_dir = net.share(1) / ".floodshare"
        state_dir.mkdir(exist_ok=True)
        (state_dir / f"{md5}.part").write_bytes(genuine[:6 * MiB])
        crcs = "".join(f"c {i} {zlib.crc32(genuine[i * MiB:(i + 1) * MiB]):08x}\n"
                       for i in range(6))
        (state_dir / f"{md5}.state").write_text(
            f"floodshare-partial 1\nname big.bin\nsize {size}\nmd5 {md5}\nchunk {MiB}\n{crcs}")

        r = net.get_first_hit_elsewhere(1, "big.bin", hold=2)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        doc = last_json(r.stdout)
        self.assertEqual([(a["holder"], a["ok"]) for a in doc["attempts"]], [(old.addr, True)])
        self.assertEqual(old.fetches[0]["chunk"], str(MiB))  # it asked for the partial's size
        self.assertEqual(old.fetches[0]["offset"], str(4 * MiB))
        self.assertEqual(doc["resumed_from"], 4 * MiB)
        self.assertEqual((net.share(1) / "big.bin").read_bytes(), genuine)
        self.assertEqual(net.stats(1)["bytes_received"], size - 4 * MiB)
        self.assertEqual(net.stats(1)["holders_cut"], 0)
        self.assertIn("partial re-cut to match", net.log(1))
        self.assertEqual(leftovers(net.share(1)), [])

    def test_holder_announcing_an_impossible_chunk_is_cut_off(self):
        for chunk in (3000, 1 << 40):
            with self.subTest(chunk=chunk):
                net = self.net("topologies/seed-chain.topo")
                genuine = os.urandom(12 * MiB)
                (net.share(3) / "big.bin").write_bytes(genuine)
                set_limits(net, 1, io_timeout_ms=1000)
                evil = EvilPeer("big.bin", genuine, "fetch-chunk")
                evil.range_chunk = chunk
                self.addCleanup(evil.close)
                cfg = json.loads(net.peer(1, "config", "--json").stdout)
                self.assertOk(net.peer(1, "modify", "neighbours",
                                       ", ".join(cfg["neighbours"] + [evil.addr])))
                self.assertOk(net.peer(3, "ls"))
                r = net.get_first_hit_elsewhere(1, "big.bin", hold=2)
                self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
                doc = last_json(r.stdout)
                self.assertEqual([a["ok"] for a in doc["attempts"]], [False, True], doc)
                self.assertEqual(doc["attempts"][0]["error"],
                                 f"holder announced chunk={chunk}, which is not a power of two "
                                 f"from 65536 to 4194304")
                self.assertEqual(net.stats(1)["holders_cut"], 1)
                self.assertEqual(doc["resumed_from"], 0)  # nothing of its frames was kept
                self.assertEqual((net.share(1) / "big.bin").read_bytes(), genuine)
                self.assertEqual(leftovers(net.share(1)), [])

    def _start_get(self, net, name):
        return subprocess.Popen([str(BIN), "--run", str(net.dir), "peer", "1", "get", name,
                                 "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)


if __name__ == "__main__":
    unittest.main()
