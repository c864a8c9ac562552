"""The requester's memory in a swarm (issue 12, "Requester RSS stays <= 16 MiB with 4 sources";
docs/SWARMING.md Tests): a fresh peer 1 fetches 256 MiB from 4 unlimited holders at once, and its
peak resident memory (VmHWM) stays within 16 MiB (13.8 MiB measured). What bounds it: the piece
pool (k + 3 buffers of 512 KiB and the hasher's read-back one, SWARM_POOL_MAX), the sources'
stacks; a buffer per piece in flight, or a pool that grew with the file, would cross it (a pool
of 24 buffers did: 21.4 MiB).

Not under ASan or TSan: their shadow memory makes VmHWM many times the program's own."""

import os
import unittest

from fsnet import NetCase, asan_build, last_json, tsan_build

MiB = 1 << 20
BOUND_KIB = 16 * 1024


def status_kib(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {key} in /proc/{pid}/status")


@unittest.skipIf(asan_build() or tsan_build(), "a sanitizer's shadow memory is not the peer's")
class SwarmMemoryTest(NetCase):
    def test_requester_rss_with_four_sources(self):
        size = 256 * MiB
        net = self.net("star:5", seed_files=False)
        first = net.share(2) / "big.bin"
        with open(first, "wb") as f:  # 1 MiB of random bytes, each MiB stamped: none alike
            block = bytearray(os.urandom(MiB))
            for i in range(size // MiB):
                block[:8] = i.to_bytes(8, "little")
                f.write(block)
        for pid in (3, 4, 5):  # the same bytes at every holder, without 3 more copies
            os.link(first, net.share(pid) / "big.bin")
        for pid in (2, 3, 4, 5):
            net.wait_indexed(pid, "big.bin")
        before = status_kib(net.pid(1), "VmHWM")
        r = net.peer(1, "get", "big.bin", "--json", timeout=240)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        doc = last_json(r.stdout)
        self.assertEqual(doc["bytes"], size, doc)
        self.assertEqual(len(doc["sources"]), 4, doc)  # four at once, or the bound proves less
        self.assertEqual((net.share(1) / "big.bin").stat().st_size, size)
        hwm = status_kib(net.pid(1), "VmHWM")
        self.assertLessEqual(hwm, BOUND_KIB,
                             f"peer 1's VmHWM {hwm} KiB (before the get: {before} KiB) "
                             f"is over {BOUND_KIB} KiB with 4 sources")


if __name__ == "__main__":
    unittest.main()
