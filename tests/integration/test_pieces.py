"""Piece hashes (issue 12, docs/PROTOCOL.md HASHES): a holder's FOUND carries the root of its
file's SHA-256 piece list, the requester fetches the list once (checked against the root) and keeps
it beside its partial download, and checks every piece the moment its frame lands. A holder that
sends a corrupt piece is caught at that piece, not at the final MD5 (`bad_chunks`); a list that
does not match its root is refused; a partial whose pieces were checked against another root is
re-checked, so contents never mix; a resume after SIGKILL reuses the kept list. FETCH's `end=`
stops a range before the file's end.

The lying and the pausable holders are PieceHolder (fakeholder.py): it claims big.bin with a root and
serves it in frames of the size asked, misbehaving as told."""

import hashlib
import json
import os
import socket
import subprocess
import threading
import time
import unittest
import zlib

from fakeholder import PIECE, PieceHolder, fields, piece_list, root_of, xor
from fsnet import BIN, NetCase, last_json, state_leftovers

MiB = 1 << 20
SIZE = 10 * MiB


def leftovers(share):
    return state_leftovers(share)


class PiecesTest(NetCase):
    """seed-chain: peer 1 - 2 - 3. The genuine big.bin is on peer 3 (two hops away); a
    PieceHolder is peer 1's neighbour, tried first (peer 2 is held until its hit arrived)."""

    def _setup(self, holder_content=None, claimed=None, genuine_on_3=True):
        net = self.net("topologies/seed-chain.topo")
        genuine = os.urandom(SIZE)
        if genuine_on_3:
            (net.share(3) / "big.bin").write_bytes(genuine)
            net.wait_indexed(3, "big.bin")
        holder = PieceHolder(claimed if claimed is not None else genuine,
                             holder_content if holder_content is not None else None)
        self.addCleanup(holder.close)
        cfg = json.loads(net.peer(1, "config", "--json").stdout)
        self.assertOk(net.peer(1, "modify", "neighbours",
                               ", ".join(cfg["neighbours"] + [holder.addr])))
        # one holder, then the next: what these tests are about (test_swarm has several at once)
        self.assertOk(net.peer(1, "modify", "max_sources", "1"))
        return net, holder, genuine

    def _get_holder_first(self, net):
        r = net.get_first_hit_elsewhere(1, "big.bin", hold=2)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        return last_json(r.stdout)

    def test_corrupt_piece_is_caught_at_that_piece_and_the_kept_list_serves_the_next_holder(self):
        net, holder, genuine = self._setup()
        holder.corrupt = 10
        doc = self._get_holder_first(net)
        self.assertEqual([a["ok"] for a in doc["attempts"]], [False, True], doc)
        self.assertEqual(doc["attempts"][0]["holder"], holder.addr)
        self.assertRegex(doc["attempts"][0]["error"],
                         r"^piece 10 \(bytes 5242880\.\.5767168\) failed its SHA-256 check")
        self.assertEqual(holder.fetches[0]["chunk"], str(PIECE))  # frames of one piece
        self.assertEqual((net.share(1) / "big.bin").read_bytes(), genuine)
        st = net.stats(1)
        self.assertGreaterEqual(st["bad_chunks"], 1)
        self.assertEqual(st["holders_cut"], 1)
        # Pieces 0-9 were kept (a version 2 partial: no cut back to a 4 MiB boundary): caught
        # at the piece, not at the final MD5, which would have thrown everything away.
        self.assertEqual(doc["resumed_from"], 10 * PIECE)
        self.assertNotIn("content MD5 mismatch", net.log(1))
        # The list came from the first holder (same root as peer 3's), kept beside the partial:
        # peer 3 was never asked for it.
        self.assertEqual(holder.hashes, 1)
        self.assertIn("using its cached piece list (20 pieces)", net.log(1))
        self.assertNotIn('hashes "big.bin": sending', net.log(3))
        self.assertEqual(leftovers(net.share(1)), [])

    def test_list_that_does_not_match_the_root_or_the_size_is_refused(self):
        for mode, why in (("tampered", "hash list refused: the list does not match the root"),
                          ("short", r"holder announced a hash list of 608 bytes for 10485760 "
                                    r"bytes in pieces of 524288 \(640 expected\)")):
            with self.subTest(mode=mode):
                net, holder, genuine = self._setup()
                holder.list_mode = mode
                doc = self._get_holder_first(net)
                self.assertEqual([a["ok"] for a in doc["attempts"]], [False, True], doc)
                self.assertRegex(doc["attempts"][0]["error"], "^" + why)
                self.assertEqual(holder.fetches, [])  # cut before a byte of content
                self.assertEqual((net.share(1) / "big.bin").read_bytes(), genuine)
                self.assertEqual(net.stats(1)["holders_cut"], 1)
                # the genuine FOUND carried peer 3's root: its list was fetched and checked
                self.assertIn(f"root {root_of(genuine)}", net.log(1))
                self.assertIn('hashes "big.bin": sending 20 piece hashes', net.log(3))
                net.close()

    def test_frames_smaller_than_a_piece_are_checked_when_the_piece_is_whole(self):
        """A holder under upload_rate sends frames smaller than a piece: the requester gathers a
        piece's frames and checks the piece before any of them reaches the partial. Here the liar
        sends 64 KiB frames and corrupts piece 10: caught at that piece, pieces 0-9 kept."""
        net, holder, genuine = self._setup()
        holder.range_chunk = 64 * 1024
        holder.corrupt = 10
        doc = self._get_holder_first(net)
        self.assertEqual([a["ok"] for a in doc["attempts"]], [False, True], doc)
        self.assertRegex(doc["attempts"][0]["error"],
                         r"^piece 10 \(bytes 5242880\.\.5767168\) failed its SHA-256 check")
        self.assertIn("holder sends chunks of 65536 bytes, 8 to a piece", net.log(1))
        self.assertEqual(doc["resumed_from"], 10 * PIECE)
        self.assertEqual((net.share(1) / "big.bin").read_bytes(), genuine)
        self.assertGreaterEqual(net.stats(1)["bad_chunks"], 1)
        self.assertNotIn("content MD5 mismatch", net.log(1))

    def test_a_holder_under_upload_rate_sends_smaller_frames_and_pieces_are_still_checked(self):
        """The real case behind the one above: at upload_rate 256K (8 slots, 10 s io timeout) a
        holder halves its frames to 256 KiB; the get uses the piece list all the same."""
        net = self.net("topologies/seed-chain.topo")
        data = os.urandom(3 * PIECE)
        (net.share(3) / "slow.bin").write_bytes(data)
        net.wait_indexed(3, "slow.bin")
        self.assertOk(net.peer(3, "modify", "upload_rate", "256K"))
        r = net.peer(1, "get", "slow.bin", "--json", timeout=60)
        self.assertOk(r)
        self.assertEqual((net.share(1) / "slow.bin").read_bytes(), data)
        log = net.log(1)
        self.assertIn("holder sends chunks of 262144 bytes, 2 to a piece", log)
        self.assertIn("3 piece hashes of 524288 bytes from the holder", log)
        self.assertEqual(net.stats(1)["bad_chunks"], 0)

    def test_contents_of_another_root_never_mix_into_the_download(self):
        """The first holder claims big.bin's MD5 but serves other content, with that content's
        own (self-consistent) root and list, and hangs up after 10 pieces that pass against its
        list. Peer 3 has another root: the 10 pieces the state names are only claims, each
        re-checked against peer 3's list and fetched again, so no byte of the other content
        reaches the final MD5."""
        other = os.urandom(SIZE)
        net = self.net("topologies/seed-chain.topo")
        genuine = os.urandom(SIZE)
        (net.share(3) / "big.bin").write_bytes(genuine)
        net.wait_indexed(3, "big.bin")
        holder = PieceHolder(genuine, other)
        self.addCleanup(holder.close)
        holder.stop_after = 10
        cfg = json.loads(net.peer(1, "config", "--json").stdout)
        self.assertOk(net.peer(1, "modify", "neighbours",
                               ", ".join(cfg["neighbours"] + [holder.addr])))
        # one holder, then the next: what these tests are about (test_swarm has several at once)
        self.assertOk(net.peer(1, "modify", "max_sources", "1"))
        self.assertNotEqual(root_of(other), root_of(genuine))
        doc = self._get_holder_first(net)
        self.assertEqual([a["ok"] for a in doc["attempts"]], [False, True], doc)
        self.assertEqual((net.share(1) / "big.bin").read_bytes(), genuine)
        log = net.log(1)
        self.assertIn("cached piece list unusable (the list is of another file)", log)
        self.assertRegex(log, r"partial big\.bin: 10 claimed piece\(s\) failed their SHA-256 "
                              r"check against root " + root_of(genuine)[:16])
        self.assertNotIn("content MD5 mismatch", log)
        self.assertEqual(doc["resumed_from"], 0)

    def test_resume_after_sigkill_reuses_the_kept_list(self):
        net, holder, genuine = self._setup(genuine_on_3=False)
        holder.gate, holder.gate_after = threading.Event(), 12
        p = subprocess.Popen([str(BIN), "--run", str(net.dir), "peer", "1", "get", "big.bin",
                              "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.addCleanup(p.wait)
        self.addCleanup(p.kill)
        state = net.share(1) / ".floodshare"
        md5 = hashlib.md5(genuine).hexdigest()
        # the 12 pieces the holder sends before its gate, each named by a "p" line of the state
        net.wait_for(lambda: (state / f"{md5}.state").exists()
                     and (state / f"{md5}.state").read_text().count("\np ") >= 12, timeout=30)
        self.assertTrue((state / f"{md5}.pieces").exists())
        net.kill(1)
        holder.gate.set()
        net.restart(1)
        self.assertTrue((state / f"{md5}.pieces").exists())  # kept by the start-up sweep
        r = net.peer(1, "get", "big.bin", "--json", timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        doc = last_json(r.stdout)
        self.assertEqual(doc["resumed_from"], 12 * PIECE)  # every piece written, none rounded off
        self.assertEqual((net.share(1) / "big.bin").read_bytes(), genuine)
        self.assertEqual(holder.hashes, 1)  # the list was not fetched again
        self.assertIn("using its cached piece list (20 pieces)", net.log(1))
        self.assertEqual(leftovers(net.share(1)), [])  # and it went with the partial


class FetchEndTest(NetCase):
    def _frames(self, addr, line: bytes, nocrc=False):
        """Sends line on a fresh connection, returns (RANGE or ERROR line, [(idx, len)]). Each
        frame's crc is its CRC-32, or with nocrc (FETCH nocrc=1) 00000000."""
        with socket.create_connection(addr, timeout=5) as s:
            s.sendall(line)
            f = s.makefile("rb")
            head = f.readline().decode()
            frames = []
            if " RANGE " not in head:
                return head, frames
            s.settimeout(3)
            try:
                while True:
                    h = f.readline().decode()
                    if not h:
                        break
                    q = fields(h.strip())
                    data = f.read(int(q["len"]))
                    self.assertEqual(0 if nocrc else zlib.crc32(data), int(q["crc"], 16))
                    frames.append((int(q["idx"]), len(data)))
            except (socket.timeout, OSError):
                pass  # the holder keeps the connection for another request
            return head, frames

    def test_fetch_end_stops_the_range_before_the_file_end(self):
        net = self.net("topologies/seed-chain.topo")
        data = os.urandom(3 * MiB + 5)
        (net.share(3) / "big.bin").write_bytes(data)
        net.wait_indexed(3, "big.bin")
        md5 = hashlib.md5(data).hexdigest()
        base = f"FLOOD/1 FETCH path=big.bin md5={md5} offset={MiB} chunk={MiB}"
        head, frames = self._frames(net.addr(3), f"{base} end={3 * MiB}\n".encode())
        self.assertIn(" RANGE ", head)
        self.assertEqual(frames, [(1, MiB), (2, MiB)])
        head, frames = self._frames(net.addr(3), f"{base} end={3 * MiB + 5}\n".encode())
        self.assertEqual(frames, [(1, MiB), (2, MiB), (3, 5)])  # the file's end is a boundary
        # nocrc=1 (a requester that checks pieces by SHA-256): the holder skips the CRC-32
        head, frames = self._frames(net.addr(3), f"{base} end={3 * MiB} nocrc=1\n".encode(),
                                    nocrc=True)
        self.assertEqual(frames, [(1, MiB), (2, MiB)])
        for bad in (MiB + 4096, MiB, 3 * MiB + 6):
            head, frames = self._frames(net.addr(3), f"{base} end={bad}\n".encode())
            self.assertIn("ERROR code=refused", head, bad)
            self.assertIn("end%20is%20not%20a%20chunk%20boundary", head)
        # HASHES from a real holder: its list matches the root in its FOUND
        root = root_of(data)
        with socket.create_connection(net.addr(3), timeout=5) as s:
            s.sendall(f"FLOOD/1 HASHES path=big.bin md5={md5} root={root}\n".encode())
            f = s.makefile("rb")
            q = fields(f.readline().decode().strip())
            body = f.read(int(q["len"]))
        self.assertEqual((q["root"], q["piece"], q["len"]), (root, str(PIECE), str(len(piece_list(data)))))
        self.assertEqual(body, piece_list(data))
        with socket.create_connection(net.addr(3), timeout=5) as s:
            s.sendall(f"FLOOD/1 HASHES path=big.bin md5={md5} root={'0' * 64}\n".encode())
            self.assertIn(b"ERROR code=changed", s.makefile("rb").readline())
        # A sidecar damaged on the holder's disk is refused, never served.
        side = net.share(3) / ".floodshare" / "pieces" / root
        raw = bytearray(side.read_bytes())
        raw[-1] ^= 1
        side.write_bytes(bytes(raw))
        with socket.create_connection(net.addr(3), timeout=5) as s:
            s.sendall(f"FLOOD/1 HASHES path=big.bin md5={md5} root={root}\n".encode())
            self.assertIn(b"ERROR code=nohashes", s.makefile("rb").readline())
        self.assertIn("the list does not match the root", net.log(3))
        # and a get from it still works, checked by the whole MD5 alone
        self.assertOk(net.peer(1, "get", "big.bin"))
        self.assertEqual((net.share(1) / "big.bin").read_bytes(), data)
        self.assertIn("no piece hashes from the holder (holder refused: this holder cannot read "
                      "its piece hashes now)", net.log(1))


if __name__ == "__main__":
    unittest.main()
