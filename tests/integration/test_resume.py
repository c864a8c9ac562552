"""Large files: killed, cancelled or abandoned downloads resume, and only what is missing moves."""

import json
import os
import signal
import subprocess
import time
import unittest

from fsnet import (BIN, NetCase, last_json, make_big_file, md5_of, sanitizer_build,
                   state_leftovers)

MiB = 1 << 20


def two_holders_spec(tmp):
    spec = tmp / "two-holders.topo"
    spec.write_text("ttl 2\npeer 1\npeer 2\npeer 3\nlink 1 2\nlink 1 3\n")
    return str(spec)


class ResumeTest(NetCase):
    def _chain(self):
        return self.net("topologies/seed-chain.topo")

    def _start_get(self, net, name, *extra):
        return subprocess.Popen([str(BIN), "--run", str(net.dir), "peer", "1", "get", name,
                                 "--json", *extra], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    def _wait_progress(self, net, fraction, size):
        net.wait_for(lambda: (t := net.active_download(1)) is not None and
                     t["done"] >= fraction * size, timeout=60, step=0.005)

    def test_download_killed_half_way_refetches_at_most_55_percent(self):
        net = self._chain()
        # 1 GiB in the plain run (the large-files issue's size); 256 MiB under a sanitizer,
        # where the bound is the same and every byte costs 2-3x (CI time)
        size = (256 if sanitizer_build() else 1024) * MiB
        md5 = make_big_file(net.share(2) / "big.bin", size)
        net.wait_indexed(2, "big.bin")
        get = self._start_get(net, "big.bin")
        self._wait_progress(net, 0.5, size)
        net.kill(1)  # SIGKILL the requester
        get.wait(timeout=30)
        self.assertFalse((net.share(1) / "big.bin").exists())
        net.restart(1)
        listed = json.loads(net.peer(1, "transfers", "--json").stdout)["partial"]
        self.assertEqual([p["name"] for p in listed], ["big.bin"])
        text = net.peer(1, "get", "big.bin", timeout=120)
        self.assertOk(text)
        self.assertIn("resuming \"big.bin\" at byte", text.stdout)
        self.assertEqual(md5_of(net.share(1) / "big.bin"), md5)
        # what the second get moved: from the stats of the restarted peer
        moved = net.stats(1)["bytes_received"]
        self.assertLessEqual(moved, 0.55 * size, f"re-transferred {moved / size:.0%}")
        self.assertEqual(state_leftovers(net.share(1)), [])

    def test_a_resume_refetches_at_most_one_piece(self):
        """A file with piece hashes is kept in a version 2 partial: each piece is named in the
        state right after its write, and a resume asks for the missing pieces themselves (no
        cut back to a 4 MiB boundary), so a SIGKILL costs at most the piece being read, plus
        what the holder had written into the socket (at upload_rate, one rate unit)."""
        net = self._chain()
        size, piece = 48 * MiB, 512 * 1024
        md5 = make_big_file(net.share(2) / "big.bin", size)
        net.wait_indexed(2, "big.bin")
        self.assertOk(net.peer(2, "modify", "upload_rate", "8M"))
        get = self._start_get(net, "big.bin")
        self._wait_progress(net, 0.5, size)
        net.kill(1)
        get.wait(timeout=30)
        net.restart(1)
        r = net.peer(1, "get", "big.bin", "--json", timeout=120)
        self.assertOk(r)
        self.assertEqual(md5_of(net.share(1) / "big.bin"), md5)
        resumed = last_json(r.stdout)["resumed_from"]
        self.assertGreater(resumed, 0.4 * size)
        self.assertEqual(resumed % piece, 0)  # whole pieces, wherever they end
        # bytes the holder sent twice: everything it sent, less one copy of the file
        twice = net.stats(2)["bytes_sent"] - size
        print(f"\n  resumed from {resumed} of {size} bytes; {twice} bytes sent twice")
        self.assertLessEqual(twice, piece + 128 * 1024, f"re-sent {twice} bytes")

    def test_holder_dying_mid_way_is_finished_by_another_holder(self):
        net = self.net(two_holders_spec(self.tmpdir()))
        size = 768 * MiB  # large enough that the kill lands mid-way on a fast machine
        md5 = make_big_file(net.share(2) / "big.bin", size)
        os.link(net.share(2) / "big.bin", net.share(3) / "big.bin")
        net.wait_indexed(2, "big.bin")
        net.wait_indexed(3, "big.bin")
        r = net.peer(1, "search", "big.bin", "--json")
        self.assertEqual(len(last_json(r.stdout)["hits"]), 2)
        # one holder, then the other, resuming: what this test is about (test_swarm kills one
        # of several sources at once)
        self.assertOk(net.peer(1, "modify", "max_sources", "1"))
        get = self._start_get(net, "big.bin")
        self._wait_progress(net, 0.3, size)
        holder = net.active_download(1)["holder"]
        victim = 2 if holder == "%s:%d" % net.addr(2) else 3
        net.kill(victim)
        out, err = get.communicate(timeout=120)
        self.assertEqual(get.returncode, 0, err)
        doc = last_json(out)
        self.assertEqual([a["ok"] for a in doc["attempts"]], [False, True])
        self.assertEqual(doc["peer"], 5 - victim)
        self.assertGreater(doc["resumed_from"], 0.25 * size)
        self.assertEqual(md5_of(net.share(1) / "big.bin"), md5)

    def test_tampered_partial_is_detected_and_the_bad_part_fetched_again(self):
        net = self._chain()
        size = 512 * MiB
        md5 = make_big_file(net.share(2) / "big.bin", size)
        net.wait_indexed(2, "big.bin")
        get = self._start_get(net, "big.bin")
        self._wait_progress(net, 0.5, size)
        net.kill(1)
        get.wait(timeout=30)
        part = next((net.share(1) / ".floodshare").glob("*.part"))
        with open(part, "r+b") as f:  # flip bytes inside piece 18 (bytes 9..9.5 MiB)
            f.seek(9 * MiB)
            f.write(b"tampered!")
        # the pieces the state names (version 2: "p IDX", any order, maybe repeated)
        state = part.with_suffix(".state").read_text()
        named = {line for line in state.splitlines() if line.startswith("p ")}
        self.assertIn("p 18", named)
        net.restart(1)
        r = net.peer(1, "get", "big.bin", "--json", timeout=120)
        self.assertOk(r)
        doc = last_json(r.stdout)
        # every named piece kept but the tampered one, which is fetched again
        self.assertEqual(doc["resumed_from"], (len(named) - 1) * 512 * 1024)
        self.assertEqual(md5_of(net.share(1) / "big.bin"), md5)
        self.assertIn("1 claimed piece(s) failed their SHA-256 check", net.log(1))

    def test_cancelled_download_keeps_a_resumable_partial(self):
        net = self._chain()
        size = 512 * MiB
        md5 = make_big_file(net.share(2) / "big.bin", size)
        net.wait_indexed(2, "big.bin")
        get = self._start_get(net, "big.bin")
        self._wait_progress(net, 0.2, size)
        get.send_signal(signal.SIGINT)  # Ctrl-C in the CLI
        out, err = get.communicate(timeout=30)
        self.assertEqual(get.returncode, 130, err)
        self.assertIn("interrupted", err)
        net.wait_for(lambda: net.active_download(1) is None)
        self.assertFalse((net.share(1) / "big.bin").exists())
        partial = json.loads(net.peer(1, "transfers", "--json").stdout)["partial"]
        self.assertEqual(len(partial), 1)
        self.assertGreater(partial[0]["done"], 0)
        r = net.peer(1, "get", "big.bin", "--json", timeout=120)
        self.assertOk(r)
        self.assertGreater(last_json(r.stdout)["resumed_from"], 0)
        self.assertEqual(md5_of(net.share(1) / "big.bin"), md5)

    def test_seed_acceptance_small_big_folder_and_a_kill_half_a_second_in(self):
        """The LEFT project's own acceptance test, against floodshare."""
        net = self._chain()
        small = make_big_file(net.share(2) / "ten.bin", 10 * 1000 * 1000)
        big = make_big_file(net.share(2) / "five.bin", 500 * 1000 * 1000)
        folder = net.share(2) / "fifty"
        for i in range(50):
            (folder / f"d{i % 4}").mkdir(parents=True, exist_ok=True)
            (folder / f"d{i % 4}" / f"f{i}.txt").write_bytes(os.urandom(1000 + 37 * i))
        for name in ("ten.bin", "five.bin", "fifty"):
            net.wait_indexed(2, name)
        t0 = time.monotonic()
        self.assertOk(net.peer(1, "get", "ten.bin"))
        self.assertLess(time.monotonic() - t0, 10)
        get = self._start_get(net, "five.bin")
        time.sleep(0.5)
        net.kill(1)  # the receiver, 0.5 s in
        get.wait(timeout=30)
        net.restart(1)
        r = net.peer(1, "get", "five.bin", "--json", timeout=120)
        self.assertOk(r)
        doc = last_json(r.stdout)
        self.assertEqual(doc["bytes"] + doc["resumed_from"], 500 * 1000 * 1000)
        self.assertOk(net.peer(1, "get", "fifty"))
        self.assertEqual(md5_of(net.share(1) / "ten.bin"), small)
        self.assertEqual(md5_of(net.share(1) / "five.bin"), big)
        for p in folder.rglob("*.txt"):
            self.assertEqual(md5_of(net.share(1) / p.relative_to(net.share(2))), md5_of(p))


class LargeFolderTest(NetCase):
    def _folder(self, root, big_files, big_size):
        for i in range(big_files):
            sub = root / f"part{i % 2}"
            sub.mkdir(parents=True, exist_ok=True)
            make_big_file(sub / f"big{i}.bin", big_size)
        for i in range(30):
            (root / "notes").mkdir(exist_ok=True)
            (root / "notes" / f"n{i}.txt").write_bytes(os.urandom(100 + i))
        (root / "empty" / "deeper").mkdir(parents=True)
        (root / "zero.bin").write_bytes(b"")

    def test_large_folder_arrives_file_by_file_without_an_archive(self):
        from fsnet import tree
        net = self.net("topologies/seed-chain.topo")
        self._folder(net.share(2) / "album", 3, 40 * MiB)
        net.wait_indexed(2, "album")  # the holder hashes on its own thread, not in the GET
        r = net.peer(1, "get", "album", "--json", timeout=120)
        self.assertOk(r)
        self.assertEqual(tree(net.share(1) / "album"), tree(net.share(2) / "album"))
        self.assertIn('list "album": sending the manifest', net.log(2))
        self.assertNotIn("-byte archive", net.log(2))  # no zip archive was built
        self.assertEqual(state_leftovers(net.share(1)), [])

    def test_large_folder_killed_half_way_resumes_with_only_the_rest(self):
        from fsnet import tree
        net = self.net("topologies/seed-chain.topo")
        self._folder(net.share(2) / "album", 6, 100 * MiB)
        size = json.loads(net.peer(2, "ls", "--json").stdout)["items"]
        total = next(i["size"] for i in size if i["name"] == "album")
        net.wait_indexed(2, "album")
        get = self._start_get(net, "album")
        net.wait_for(lambda: (t := net.active_download(1)) is not None and
                     t["done"] >= 0.5 * total, timeout=60, step=0.005)
        net.kill(1)
        get.wait(timeout=30)
        self.assertFalse((net.share(1) / "album").exists())
        net.restart(1)
        text = net.peer(1, "get", "album", timeout=120)
        self.assertOk(text)
        self.assertIn('resuming "album" at byte', text.stdout)
        doc = last_json(net.peer(1, "transfers", "--json").stdout)
        self.assertEqual(doc["partial"], [])  # nothing left behind once the folder is whole
        # the restarted peer's counters: what this second get moved
        self.assertLessEqual(net.stats(1)["bytes_received"], 0.6 * total)
        self.assertEqual(tree(net.share(1) / "album"), tree(net.share(2) / "album"))
        self.assertFalse(any((net.share(1) / ".floodshare").glob("d-*")))

    _start_get = ResumeTest._start_get


class ProgressTest(NetCase):
    def test_progress_shows_as_json_events_and_not_in_pipes(self):
        net = self.net("topologies/seed-chain.topo")
        make_big_file(net.share(2) / "mid.bin", 48 * MiB)
        net.wait_indexed(2, "mid.bin")
        r = net.peer(1, "get", "mid.bin", "--json")
        self.assertOk(r)
        events = [json.loads(l) for l in r.stdout.splitlines()[:-1]]
        self.assertTrue(events and all(e["event"] == "progress" for e in events))
        self.assertEqual(events[-1]["done"], events[-1]["total"])
        self.assertEqual({e["sources"] for e in events}, {1})  # one holder: sources=1
        (net.share(1) / "mid.bin").unlink()
        r = net.peer(1, "get", "mid.bin")  # stdout and stderr are pipes: no bar
        self.assertOk(r)
        self.assertNotIn("\r", r.stdout + r.stderr)
        self.assertIn("downloaded", r.stdout)
        (net.share(1) / "mid.bin").unlink()
        r = net.peer(1, "get", "mid.bin", "--quiet")
        self.assertOk(r)
        self.assertEqual(r.stdout, "")

    def test_progress_bar_on_a_terminal(self):
        import pty
        net = self.net("topologies/seed-chain.topo")
        make_big_file(net.share(2) / "mid.bin", 96 * MiB)
        net.wait_indexed(2, "mid.bin")
        pid, fd = pty.fork()
        if pid == 0:
            import fcntl, struct, termios
            fcntl.ioctl(1, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
            os.environ["NO_COLOR"] = "1"
            os.execv(str(BIN), [str(BIN), "--run", str(net.dir), "peer", "1", "get", "mid.bin"])
        out = b""
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        _, status = os.waitpid(pid, 0)
        self.assertEqual(os.waitstatus_to_exitcode(status), 0, out)
        text = out.decode(errors="replace")
        self.assertIn("\r", text)
        self.assertRegex(text, r"mid\.bin +\[[#.]+\] +\d+% ")
        self.assertIn("from peer 2", text)
        self.assertNotIn("\033[1m", text)  # NO_COLOR


if __name__ == "__main__":
    unittest.main()
