"""Hashing happens on the share's own thread: a holder that is hashing a big new file still answers
searches at once, and the file becomes findable once it is hashed (issue 10, background hashing)."""

import hashlib
import json
import os
import shutil
import tempfile
import threading
import time
import unittest
from pathlib import Path

from fsnet import NetCase, make_big_file, tsan_build

BIG = 2 << 30        # the file copied into the holder's share while it is searched
PIECE = 1 << 20      # written a piece at a time, as cp does
# Every peer's hit window: a hit that takes longer is not a hit. 100 ms is issue 10's figure.
# Hashing the 2 GiB inside a query (what issue 10 removed) holds the hit for the whole hash, over
# 2.5 s here. On a machine shared with other heavy jobs (load average 5+) one hit in ~100 has come
# in at 100.4 ms; CI runs the suite alone. Under ThreadSanitizer every peer runs 5-15x slower and a
# hit took 146 ms (CI, stop 19), so there the window is 500 ms: still 5x under a hash in a query.
WINDOW_MS = 500 if tsan_build() else 100
MIN_SEARCHES = 20


def nice_of(pid: int, tid: int | str) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
    except OSError:
        return None  # a thread that just ended
    return int(stat[stat.rindex(")") + 2:].split()[16])  # field 19


def share_threads_of(pid: int) -> int:
    """Threads of process pid that run nicer than its main thread: a share's scanning thread
    lowers itself so."""
    base = nice_of(pid, pid)
    return sum(1 for tid in os.listdir(f"/proc/{pid}/task")
               if (nice_of(pid, tid) or base) > base)


def share_thread_cpu_ticks(pid: int) -> int:
    """utime + stime, in clock ticks, of process pid's share thread(s): the ones that run nicer
    than its main thread."""
    base, ticks = nice_of(pid, pid), 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        except OSError:
            continue
        f = stat[stat.rindex(")") + 2:].split()
        if int(f[16]) > base:
            ticks += int(f[11]) + int(f[12])
    return ticks


class Copy(threading.Thread):
    """Writes BIG bytes to path in PIECE-sized writes (each MiB different) and keeps their MD5."""

    def __init__(self, path: Path):
        super().__init__(daemon=True)
        self.path = path
        self.md5 = None
        self.error = None
        self.done = threading.Event()

    def run(self):
        try:
            block = bytearray(os.urandom(PIECE))
            h = hashlib.md5()
            with open(self.path, "wb") as f:
                for i in range(BIG // PIECE):
                    block[:8] = i.to_bytes(8, "little")
                    f.write(block)
                    h.update(block)
            self.md5 = h.hexdigest()
        except Exception as e:  # reported by the test, not lost in the thread
            self.error = e
        finally:
            self.done.set()


class HashingTest(NetCase):
    def search(self, net, name):
        """`peer 1 search name --json`: its hits (those that came within the hit window) and the
        command's wall-clock time in ms."""
        t0 = time.monotonic()
        r = net.peer(1, "search", name, "--json", timeout=30)
        ms = (time.monotonic() - t0) * 1000
        doc = json.loads(r.stdout) if r.stdout.strip() else {"hits": []}
        self.last_qid = doc.get("query_id")
        return doc["hits"], ms

    def test_holder_answers_within_100_ms_while_it_copies_and_hashes_2_gib(self):
        net = self.net("line:2", seed_files=False, limits={"hit_window_ms": WINDOW_MS})
        # The big file goes to /var/tmp (a disk, not a tmpfs in RAM); the holder shares that
        # folder from now on, which also swaps its share while it runs.
        share = Path(tempfile.mkdtemp(prefix="fs-hashing-", dir="/var/tmp"))
        self.addCleanup(shutil.rmtree, share, True)
        (share / "known.txt").write_text("already in the share before the copy\n")
        holder = net.pid(2)
        net.wait_for(lambda: share_threads_of(holder) == 1, timeout=5)
        self.assertOk(net.peer(2, "modify", "share_dir", str(share)))
        # The old share's thread was joined when the new share (and its thread) took over.
        self.assertEqual(share_threads_of(holder), 1)
        net.wait_indexed(2, "known.txt")
        hits, _ = self.search(net, "known.txt")
        self.assertEqual(len(hits), 1, "the holder must answer before the copy starts")

        copy = Copy(share / "big.bin")
        copy.start()
        phases = {"copy": [], "hash": []}
        missed = []
        found = None
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            phase = "hash" if copy.done.is_set() else "copy"
            hits, ms = self.search(net, "known.txt")
            phases[phase].append(round(ms))
            if len(hits) != 1:
                missed.append((phase, len(phases[phase]), round(ms), self.last_qid))
            if phase == "hash" and len(phases["copy"]) + len(phases["hash"]) >= MIN_SEARCHES:
                big, _ = self.search(net, "big.bin")
                if big:
                    found = big
                    break
            time.sleep(0.05)
        copy.join()
        self.assertIsNone(copy.error)
        print(f"\n  searches during the copy: {len(phases['copy'])}, during the hashing: "
              f"{len(phases['hash'])}; wall-clock ms (CLI start to exit) copy "
              f"{phases['copy']}, hash {phases['hash']}")
        total = len(phases["copy"]) + len(phases["hash"])
        for *_, qid in missed:  # where the time went: both peers log the query with ms stamps
            for pid in (1, 2):
                lines = [l for l in net.log(pid).splitlines() if qid and f"q{qid[:4]}" in l]
                print(f"  peer {pid} on query {qid}:\n    " + "\n    ".join(lines))
        self.assertEqual(missed, [], f"{len(missed)} of {total} searches had no hit inside "
                                     f"{WINDOW_MS} ms (phase, number in it, wall-clock ms, query id)")
        self.assertGreaterEqual(len(phases["copy"]) + len(phases["hash"]), MIN_SEARCHES)
        self.assertGreaterEqual(len(phases["copy"]), 3, "the copy ended before it was searched")
        self.assertIsNotNone(found, "big.bin never became findable")
        self.assertEqual(found[0]["size"], BIG)
        self.assertEqual(found[0]["md5"], copy.md5)
        (share / "big.bin").unlink()

    def test_a_finished_get_is_indexed_without_being_hashed_again(self):
        """The requester checked every piece and the MD5 of what it downloaded: it hands those
        hashes to its share (share_adopt), which indexes the file, root included, without
        reading it again. Hashing 256 MiB costs the share thread ~0.5 s (50 ticks) here."""
        net = self.net("line:2", seed_files=False)
        md5 = make_big_file(net.share(2) / "big.bin", 256 << 20)
        net.wait_indexed(2, "big.bin")
        requester = net.pid(1)
        net.wait_for(lambda: share_threads_of(requester) == 1, timeout=5)
        before = share_thread_cpu_ticks(requester)
        self.assertOk(net.peer(1, "get", "big.bin", timeout=120))
        net.wait_indexed(1, "big.bin")
        time.sleep(1)  # a scan that hashed it would have finished by now
        spent = share_thread_cpu_ticks(requester) - before
        # what each offers others (browse lists the root a FOUND carries)
        mine, theirs = ([e for e in json.loads(net.peer(a, "browse", str(b), "--json").stdout)
                         ["entries"] if e["name"] == "big.bin"] for a, b in ((2, 1), (1, 2)))
        self.assertEqual(mine[0]["md5"], md5)
        self.assertTrue(mine[0].get("root"))
        self.assertEqual(mine[0]["root"], theirs[0]["root"])
        self.assertLessEqual(spent, 5, f"the requester's share thread spent {spent} ticks on a "
                                       f"file it had just verified")


if __name__ == "__main__":
    unittest.main()
