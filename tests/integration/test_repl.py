"""The REPL as a person uses it: scripts/demo in a real terminal (tmux), keys typed one by one.

Ctrl-C at an empty prompt and at a half-typed line clears the line and leaves the demo's peers
running; Ctrl-C during a running command stops that command only; the history file holds every
command typed so far, after each one; `exit` (and Ctrl-D) asks once before stopping the peers:
N keeps them, y stops them; with commands piped in, nobody is asked and the peers are stopped.
"""

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import unittest
from pathlib import Path

from fsnet import BIN, SRC, NetCase

DEMO = SRC / "scripts" / "demo"
TOPOLOGY = SRC / "scripts" / "topology"
PROMPT = "floodshare> "


def unvis(line: str) -> str:
    """A line of libedit's history file as typed (it writes spaces as \\040, strvis(3))."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), line)


class Terminal:
    """A tmux session of its own (a private server socket), 160x50, running one command."""

    def __init__(self, command: str, env: dict[str, str]):
        self.sock = f"fs-repl-{os.getpid()}-{time.monotonic_ns()}"
        # The pane stays after the command ends, so its last words can still be read.
        line = " ".join(f"{k}={quote(v)}" for k, v in env.items())
        self.tmux("new-session", "-d", "-s", "t", "-x", "160", "-y", "50",
                  f"env {line} {command}; echo '[exited '$?']'; sleep 600")

    def tmux(self, *args: str) -> str:
        r = subprocess.run(["tmux", "-L", self.sock, *args], capture_output=True, text=True,
                           timeout=20)
        if r.returncode != 0:
            raise RuntimeError(f"tmux {args}: {r.stderr}")
        return r.stdout

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", "t", *keys)

    def type(self, text: str) -> None:
        self.tmux("send-keys", "-t", "t", "-l", text)

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "t", "-S", "-2000")

    def lines(self) -> list[str]:
        return [l.rstrip() for l in self.screen().splitlines() if l.strip()]

    def wait(self, cond, what: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            s = self.screen()
            if cond(s):
                return s
            time.sleep(0.05)
        raise AssertionError(f"not on the screen after {timeout} s: {what}\n{self.screen()}")

    def wait_text(self, text: str, timeout: float = 60, count: int = 1) -> str:
        return self.wait(lambda s: s.count(text) >= count, repr(text), timeout)

    def wait_prompt(self, count: int) -> None:
        """Until the count-th prompt is on the screen, empty (the REPL waits for a line)."""
        # (capture-pane drops the blank after the prompt at the end of a line)
        p = PROMPT.rstrip()
        self.wait(lambda s: s.count(p) >= count and s.rstrip().endswith(p), f"prompt #{count}")

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.sock, "kill-server"], capture_output=True, timeout=20)


def quote(s: str) -> str:
    return "'" + s.replace("'", "'\\''") + "'"


def pids_of(run: Path) -> dict[int, int]:
    out = {}
    for f in run.glob("peer-*.pid"):
        out[int(f.stem.split("-")[1])] = int(f.read_text().strip())
    return out


def running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


@unittest.skipUnless(shutil.which("tmux"), "tmux not found (apt-get install tmux, or scripts/deps)")
class ReplTest(NetCase):
    def setUp(self):
        super().setUp()
        self.home = self.tmpdir()
        self.run_dir = Path(tempfile.mkdtemp(prefix="fs-repl-run-"))
        self.addCleanup(shutil.rmtree, self.run_dir, True)
        self.addCleanup(lambda: subprocess.run([str(TOPOLOGY), "down", "--run", str(self.run_dir)],
                                               capture_output=True, timeout=60))
        self.env = {"HOME": str(self.home), "FLOODSHARE_RUN": str(self.run_dir),
                    "FLOODSHARE_BIN": str(BIN), "NO_COLOR": "1", "TERM": "xterm",
                    "PATH": os.environ["PATH"]}
        for key in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "TSAN_OPTIONS"):
            if key in os.environ:
                self.env[key] = os.environ[key]

    def demo(self, spec: str) -> Terminal:
        t = Terminal(f"{DEMO} {spec}", self.env)
        self.addCleanup(t.close)
        t.wait_prompt(1)
        return t

    def history(self) -> list[str]:
        path = self.home / ".floodshare_history"
        lines = path.read_text().splitlines()
        self.assertEqual(lines[0], "_HiStOrY_V2_")
        self.assertEqual(path.stat().st_mode & 0o777, 0o600)
        return [unvis(l) for l in lines[1:]]

    def assert_all_running(self, pids: dict[int, int]):
        self.assertEqual(len(pids), 6)
        for peer, pid in pids.items():
            self.assertTrue(running(pid), f"peer {peer} (pid {pid}) stopped")

    def assert_clean(self, t: Terminal):
        screen = t.screen()
        self.assertFalse(any(m in screen for m in self.SANITIZER_MARKS), screen)

    def test_ctrl_c_clears_the_line_history_is_kept_and_exit_asks_before_stopping_peers(self):
        t = self.demo("ring:6")
        pids = pids_of(self.run_dir)
        self.assert_all_running(pids)

        t.type("peers")
        t.keys("Enter")
        t.wait_prompt(2)
        self.assertRegex(t.screen(), r"(?m)^2 +127\.0\.0\.1:\d+ +up +1, 3$")

        # Ctrl-C at an empty prompt: ^C, a fresh prompt, the REPL and the peers still there
        t.keys("C-c")
        t.wait_prompt(3)
        self.assertIn(PROMPT + "^C", t.lines())  # bash's way
        # ... and at a half-typed line: the line is dropped, not run
        t.type("peer 1 get 4.t")
        t.keys("C-c")
        t.wait_prompt(4)
        self.assertIn(PROMPT + "peer 1 get 4.t^C", t.lines())
        # with the cursor in the middle of the line too
        t.type("peer 2 stats")
        t.keys("C-a", "C-c")
        t.wait_prompt(5)
        self.assertIn(PROMPT + "peer 2 stats^C", t.lines())
        self.assertNotIn("queries_started", t.screen())
        self.assert_all_running(pids)
        self.assertEqual(pids_of(self.run_dir), pids)

        # every command is in the history file as soon as it is typed; dropped lines are not
        self.assertEqual(self.history(), ["peers"])
        t.type("peer 1 get 4.txt")
        t.keys("Enter")
        t.wait_text('downloaded "4.txt"')
        t.wait_prompt(6)
        self.assertEqual(self.history(), ["peers", "peer 1 get 4.txt"])
        self.assertTrue((self.run_dir / "share-1" / "4.txt").exists())

        # Ctrl-C during a command that runs until stopped: it stops that command, not the REPL
        t.type("peer 1 watch")
        t.keys("Enter")
        t.wait_text("watching 1 of 1 peer")
        t.keys("C-c")
        t.wait_prompt(7)
        t.type("peer 1 ls")
        t.keys("Enter")
        t.wait_text("share-1: 2 items")
        t.wait_prompt(8)
        self.assertEqual(self.history(), ["peers", "peer 1 get 4.txt", "peer 1 watch", "peer 1 ls"])
        self.assert_all_running(pids)

        # exit asks once; N keeps the peers
        t.type("exit")
        t.keys("Enter")
        t.wait_text("stop the 6 peers of this demo? [y/N]")
        t.type("n")
        t.keys("Enter")
        t.wait_text("[exited 0]")
        self.assertIn("the peers keep running", t.screen())
        self.assertEqual(self.history()[-1], "exit")
        self.assertEqual(t.screen().count("stop the 6 peers"), 1)
        self.assert_all_running(pids)
        self.assert_clean(t)

        # a new demo in the same folder: the history of the last one comes back with Up, Up;
        # Ctrl-D leaves too, and y stops the peers
        t2 = self.demo("ring:6")
        pids2 = pids_of(self.run_dir)
        self.assert_all_running(pids2)
        self.assertFalse(any(running(p) for p in pids.values()), "the old peers still run")
        t2.keys("Up", "Up")
        t2.wait(lambda s: s.rstrip().endswith(PROMPT + "peer 1 ls"), "the last command, by Up")
        t2.keys("C-u", "C-d")
        t2.wait_text("stop the 6 peers of this demo? [y/N]")
        t2.type("y")
        t2.keys("Enter")
        t2.wait_text("[exited 0]")
        deadline = time.monotonic() + 20
        while any(running(p) for p in pids2.values()) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertFalse(any(running(p) for p in pids2.values()), "y did not stop the peers")
        self.assertEqual(pids_of(self.run_dir), {})
        self.assert_clean(t2)

    def test_commands_piped_into_the_demo_ask_nothing_and_stop_the_peers(self):
        r = subprocess.run([str(DEMO), "line:3"], input="peers\npeer 1 get 3.txt\nexit\n",
                           capture_output=True, text=True, timeout=120, env=self.env)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn('downloaded "3.txt"', r.stdout)
        self.assertNotIn("[y/N]", r.stdout + r.stderr)
        self.assertIn("stopped", r.stdout)
        self.assertEqual(pids_of(self.run_dir), {})
        self.assertFalse((self.home / ".floodshare_history").exists())  # no terminal, no history


if __name__ == "__main__":
    unittest.main()
