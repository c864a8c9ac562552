"""fsnet - start real floodshare peers for a test, talk to them, stop them.

Every test network lives in its own temporary run folder, on 127.0.0.1, on free ports picked by
scripts/topology, and is stopped by pid (scripts/topology down) when the test ends. Nothing here
sends a byte to any address outside 127.0.0.0/8.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest
from pathlib import Path

SRC = Path(os.environ.get("FLOODSHARE_SRC") or Path(__file__).resolve().parents[2])
BIN = Path(os.environ.get("FLOODSHARE_BIN") or SRC / "build" / "floodshare")
TOPOLOGY = SRC / "scripts" / "topology"


def _bin_has(symbol: bytes) -> bool:
    try:
        return symbol in BIN.read_bytes()
    except OSError:
        return False


def tsan_build() -> bool:
    """Whether BIN is a ThreadSanitizer build (5-15x slower: a latency bound a test sets before
    its peers start may need the slack)."""
    return _bin_has(b"__tsan_init")


def sanitizer_build() -> bool:
    """Whether BIN is an ASan or TSan build: what a sanitizer run checks is memory and races,
    so a test that repeats one scenario many times for its statistics may repeat it fewer
    times there (the plain run keeps the full count)."""
    return tsan_build() or asan_build()


def asan_build() -> bool:
    """Whether BIN is an AddressSanitizer build (its shadow memory and quarantine make
    resident memory no measure of the program's own)."""
    return _bin_has(b"__asan_init")


def state_leftovers(share: Path) -> list[str]:
    """What a transfer left in a share's state folder, sorted: everything but the share index's
    own files (its cache, the cache's temporary while a scan saves it, its piece lists) and the
    sync states."""
    return sorted(p.name for p in (share / ".floodshare").iterdir()
                  if p.name not in ("index.cache", "pieces", "sync")
                  and not p.name.startswith("index.cache.tmp-"))


def md5_of(path: Path) -> str:
    import hashlib
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def tree(path: Path) -> dict[str, str]:
    """Relative path -> md5 (files) or 'dir' (folders), for comparing whole items."""
    out = {}
    for p in sorted(path.rglob("*")):
        rel = str(p.relative_to(path))
        out[rel] = "dir" if p.is_dir() else md5_of(p)
    return out


def make_big_file(path: Path, size: int) -> str:
    """Writes size bytes that differ in every MiB (a random MiB with its index stamped in) and
    returns their MD5: fast to make, and no two chunks alike."""
    import hashlib
    block = bytearray(os.urandom(1 << 20))
    h = hashlib.md5()
    with open(path, "wb") as f:
        for i in range((size + (1 << 20) - 1) >> 20):
            block[:8] = i.to_bytes(8, "little")
            part = bytes(block[: min(1 << 20, size - (i << 20))])
            f.write(part)
            h.update(part)
    return h.hexdigest()


def last_json(text: str) -> dict:
    """The result document of a --json command: its last line (progress events, one JSON object
    per line, may come before it)."""
    lines = [l for l in text.splitlines() if l.strip()]
    if not lines:
        raise AssertionError(f"no JSON output in {text!r}")
    return json.loads(lines[-1])


class Net:
    """A running network built from a topology spec (a file or a generator like ring:6)."""

    def __init__(self, spec: str, *, ttl: int | None = None, seed_files: bool = True,
                 limits: dict[str, int] | None = None, per_peer_address: bool = False,
                 up_args: list[str] | None = None):
        self.dir = Path(tempfile.mkdtemp(prefix="fs-it-"))
        self.procs_extra: list[subprocess.Popen] = []
        if "/" in spec and not spec.startswith("/"):
            spec = str(SRC / spec)  # topologies/x.topo: relative to the repository
        args = [str(TOPOLOGY), "up", spec, "--run", str(self.dir), "--bin", str(BIN)]
        if ttl is not None:
            args += ["--ttl", str(ttl)]
        if not seed_files:
            args.append("--no-seed-files")
        if per_peer_address:  # peer N listens (and fetches) on 127.0.0.N
            args.append("--per-peer-address")
        for key, value in (limits or {}).items():  # a [limits] section in every INI
            args += ["--limit", f"{key}={value}"]
        args += up_args or []  # e.g. --passphrase-file FILE
        r = subprocess.run(args, capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            self.close()
            shutil.rmtree(self.dir, ignore_errors=True)
            raise RuntimeError(f"topology up {spec} failed:\n{r.stdout}\n{r.stderr}")
        self.info = json.loads((self.dir / "topology.json").read_text())
        self.peers = {p["id"]: p for p in self.info["peers"]}

    # --- looking at peers ---
    def share(self, pid: int) -> Path:
        return self.dir / self.peers[pid]["share_dir"]

    def addr(self, pid: int) -> tuple[str, int]:
        p = self.peers[pid]
        return p["host"], p["port"]

    def log(self, pid: int) -> str:
        return (self.dir / f"peer-{pid}.log").read_text(errors="replace")

    def pid(self, pid: int) -> int:
        return int((self.dir / f"peer-{pid}.pid").read_text().strip())

    # --- commands ---
    def cli(self, *args: str, timeout: float = 60, input: str | None = None):
        return subprocess.run([str(BIN), "--run", str(self.dir), *args], capture_output=True,
                              text=True, timeout=timeout, input=input)

    def peer(self, pid: int, *args: str, timeout: float = 60):
        return self.cli("peer", str(pid), *args, timeout=timeout)

    def stats(self, pid: int) -> dict:
        r = self.peer(pid, "stats", "--json")
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    def kill(self, pid: int, sig: int = signal.SIGKILL) -> None:
        """Signals peer pid and waits (10 s at most) until its process is gone."""
        os.kill(self.pid(pid), sig)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self.alive(pid):
            time.sleep(0.02)

    def restart(self, pid: int) -> None:
        """Starts peer pid again (after a kill) the way scripts/topology does, and waits until
        the new process says it is up (its own log line: a connect alone could still reach the
        socket of the process just killed, before the kernel has closed it)."""
        ini = self.dir / f"peer-{pid}.ini"
        log_path = self.dir / f"peer-{pid}.log"
        start = log_path.stat().st_size if log_path.exists() else 0
        with open(log_path, "ab") as log:
            proc = subprocess.Popen([str(BIN), "serve", "--run", str(self.dir), str(ini)],
                                    stdout=log, stderr=log, start_new_session=True)
        (self.dir / f"peer-{pid}.pid").write_text(f"{proc.pid}\n")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            with open(log_path, "rb") as f:
                f.seek(start)
                if b"up: listening on" in f.read():
                    return
            if proc.poll() is not None:
                break
            time.sleep(0.02)
        raise RuntimeError(f"peer {pid} did not come back:\n{self.log(pid)[-2000:]}")

    def wait_for(self, cond, timeout: float = 20.0, step: float = 0.01) -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > deadline:
                raise AssertionError("condition not reached in time")
            time.sleep(step)

    def get_first_hit_elsewhere(self, pid: int, name: str, hold: int,
                                timeout: float = 120) -> subprocess.CompletedProcess:
        """Runs `peer pid get name --json` with peer `hold` stopped (SIGSTOP) until the first hit
        has reached peer pid, so a hit that came another way (a lying holder's, say) is tried
        first whatever the timing; then lets `hold` go on and returns the finished get."""
        os.kill(self.pid(hold), signal.SIGSTOP)
        try:
            get = subprocess.Popen([str(BIN), "--run", str(self.dir), "peer", str(pid), "get",
                                    name, "--json"], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
            deadline = time.monotonic() + 10
            while self.stats(pid)["hits_received"] < 1 and time.monotonic() < deadline:
                time.sleep(0.01)
        finally:
            os.kill(self.pid(hold), signal.SIGCONT)
        out, err = get.communicate(timeout=timeout)
        return subprocess.CompletedProcess(get.args, get.returncode, out, err)

    def wait_indexed(self, pid: int, name: str, timeout: float = 120) -> None:
        """Waits until peer pid lists name with its digest, so it answers queries for it at
        once: a large file takes seconds to hash (longer on a loaded machine), and a restarted
        holder rehashes first."""
        def ready():
            r = self.peer(pid, "ls", "--json")
            return r.returncode == 0 and any(i["name"] == name and i.get("md5")
                                             for i in json.loads(r.stdout)["items"])
        self.wait_for(ready, timeout=timeout, step=0.05)

    def active_download(self, pid: int) -> dict | None:
        """The download peer pid is running now (from `transfers --json`), or None."""
        r = self.peer(pid, "transfers", "--json")
        if r.returncode != 0:
            return None
        for t in json.loads(r.stdout)["active"]:
            if t["direction"] == "download":
                return t
        return None

    def alive(self, pid: int) -> bool:
        """The peer's process exists and has not exited (peers are not our children: once
        scripts/topology has exited, init reaps them, so no zombie lingers). A killed process
        whose main thread is already a zombie has not exited while another of its threads is
        still on its way out: until the last one is gone it holds its sockets (the port)."""
        task = Path(f"/proc/{self.pid(pid)}/task")
        try:
            tids = os.listdir(task)
        except OSError:
            return False
        for tid in tids:
            try:
                if "\nState:\tZ" not in (task / tid / "status").read_text():
                    return True
            except OSError:
                continue  # that thread is gone
        return False

    def close(self) -> None:
        if (self.dir / "topology.json").exists():
            subprocess.run([str(TOPOLOGY), "down", "--run", str(self.dir)], capture_output=True,
                           timeout=60)
        for p in self.procs_extra:
            p.kill()
            p.wait()
        self.procs_extra.clear()


def raw(addr: tuple[str, int], data: bytes, *, read: bool = True, timeout: float = 5) -> bytes:
    """Sends data on a fresh connection to a peer port and returns what the peer answers until
    it closes the connection (or the timeout passes)."""
    with socket.create_connection(addr, timeout=timeout) as s:
        s.sendall(data)
        if not read:
            return b""
        out = b""
        s.settimeout(timeout)
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
        except (socket.timeout, ConnectionResetError):
            pass
        return out


class NetCase(unittest.TestCase):
    """A test case that closes every Net it opened, even when the test fails. On failure, the
    peers' logs are printed, so CI output shows what the peers saw."""

    def setUp(self):
        self.nets: list[Net] = []

    def tmpdir(self) -> Path:
        """A temporary folder removed after the test."""
        d = Path(tempfile.mkdtemp(prefix="fs-it-tmp-"))
        self.addCleanup(shutil.rmtree, d, True)
        return d

    def net(self, spec: str, **kw) -> Net:
        n = Net(spec, **kw)
        self.nets.append(n)
        return n

    # A sanitizer report in a peer's log (its stderr) fails the test. The peers run with
    # halt_on_error=0 (scripts/test), so a peer that reported goes on serving and the test
    # sees the whole run; the report is found here. "ThreadSanitizer:" catches TSan's
    # "WARNING: ThreadSanitizer: data race / lock-order-inversion / thread leak ...", its
    # FATAL and CHECK failures, and its "reported N warnings" at exit.
    SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                       "ThreadSanitizer:")

    @classmethod
    def sanitizer_report(cls, log: str, limit: int = 12000) -> str | None:
        """The log from its first sanitizer report on (at most limit characters), or None: the
        report itself, not only the log's tail, which a busy peer fills after it."""
        at = [i for i in (log.find(m) for m in cls.SANITIZER_MARKS) if i >= 0]
        if not at:
            return None
        start = log.rfind("\n", 0, min(at)) + 1
        return log[start:start + limit]

    def tearDown(self):
        result = getattr(self._outcome, "result", None)
        failed = bool(result) and any(t is self for t, _ in result.errors + result.failures)
        reports = []
        for n in self.nets:
            n.close()  # first: leak reports are written when the peers exit
            for pid in n.peers:
                log = n.log(pid)
                report = self.sanitizer_report(log)
                if report is not None:
                    reports.append(f"--- peer {pid}: sanitizer report ---\n{report}")
                elif failed or os.environ.get("FS_SHOW_LOGS"):
                    print(f"--- peer {pid} log ---\n{log[-4000:]}")
            shutil.rmtree(n.dir, ignore_errors=True)
        if reports:
            self.fail("\n".join(reports))

    def assertOk(self, r, msg=""):
        self.assertEqual(r.returncode, 0, f"{msg}\nstdout: {r.stdout}\nstderr: {r.stderr}")
