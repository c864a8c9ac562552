"""The README's commands run exactly as written (issue 14, "the fresh-machine path").

The test reads README.md itself and takes every command line it shows: the lines of its code
blocks that start with a command (`floodshare`, `scripts/...`, `curl`, ...), the REPL lines after
`floodshare> `, and the commands in its prose (`floodshare ...`, `scripts/...`, `peer 2 config`).
Each one is either run here, exactly as written (only a documented placeholder such as QID, 4d78
or SPEC is replaced by what the previous command printed), from a temporary folder laid out as
the README expects (`scripts/` and `topologies/` of this checkout, and a `run` folder), on
127.0.0.1, with the build under test first on PATH; or it is listed in NOT_RUN with the reason.
A command the README gains that is neither fails test_every_readme_command_is_run_or_listed,
so the README cannot drift from what works.

The outputs are checked against the shapes the README shows (the REPL transcript line by line,
the log lines, a line of `watch`), with only what changes from run to run left open: ports,
query ids, times, rates and the run folder.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import unittest
import urllib.request
from pathlib import Path

from fsnet import BIN, SRC, NetCase, last_json

README = SRC / "README.md"
PROMPT = "floodshare> "

# A command in a code block or in the prose starts with one of these programs.
COMMAND = re.compile(r"(floodshare|scripts/\w+|\.ci/\w+|bench/\w+|sudo|curl|cmake|wireshark"
                     r"|tshark|ctest|python3)(\s|$)")
# In the prose, a REPL/CLI command with a concrete peer number is a command too (the table's
# `peer N get NAME` forms are syntax, not commands).
PEER_COMMAND = re.compile(r"peer \d+ \w")

# Commands the README shows that this test does not run, and why.
NOT_RUN = {
    "scripts/test": "the CI itself (.ci/run runs it)",
    "scripts/test --tsan": "the CI's test run under ThreadSanitizer (minutes)",
    ".ci/run": "the CI itself",
    "scripts/deps": "installs packages as root; test_deps checks its lists",
    "scripts/deps --runtime": "installs packages as root; test_deps checks that scripts/demo "
                              "installs exactly this list",
    "scripts/build": "the build that made FLOODSHARE_BIN",
    "scripts/topology up ring:6 --hosts lab.hosts":
        "needs lab hosts running sshd; test_hosts.py runs it across three namespaces as root",
    "cmake -S . -B build && cmake --build build": "the build that made FLOODSHARE_BIN",
    "scripts/fuzz": "scripts/test's fuzz phase",
    "bench/run": "as root, installs nginx-light, curl and iperf3, minutes (bench/README.md)",
    "bench/run --quick": "as root, installs nginx-light, curl and iperf3, minutes",
    "bench/scale": "1000 peers, minutes (bench/ENGINE.md)",
    "bench/stall": "a benchmark, minutes (bench/ENGINE.md)",
    "bench/slowreaders": "a benchmark, minutes (bench/ENGINE.md)",
    'sudo dumpcap -i lo -f "tcp port P1 or tcp port P2 ..." -w flood.pcapng':
        "a capture needs root; test_wireshark.py captures a real flood and dissects it",
    "wireshark -X lua_script:tools/wireshark/floodshare.lua flood.pcapng":
        "a GUI; test_wireshark.py runs the same dissector in tshark",
    "tshark -X lua_script:tools/wireshark/floodshare.lua -r flood.pcapng -Y floodshare":
        "needs the root capture above; test_wireshark.py runs this dissector over a capture",
    "floodshare --run run web --listen 0.0.0.0:8080 --public":
        "listens on every interface; this test stays on 127.0.0.1 (test_web_auth tests --public)",
    "floodshare [--run DIR] peer ID COMMAND [ARGS...]": "a synopsis; its forms run below",
    "floodshare [--run DIR] peers [--json]": "a synopsis; `peers` runs in the REPL transcript",
    "floodshare [--run DIR]": "a synopsis; the REPL runs through scripts/demo",
    "floodshare serve [--run DIR] CONFIG.ini": "a synopsis; scripts/topology up starts every peer "
                                               "with it",
    "scripts/topology up SPEC [--run DIR] [--per-peer-address] [--ttl N]":
        "a synopsis; `scripts/topology up ring:6 --run run` runs",
    "scripts/topology add-peer|remove-peer|link|unlink": "names four commands; test_reshape "
                                                         "runs each",
    "scripts/topology": "the program's name",
    "floodshare": "the program's name",
    "peer 1 sea^C": "Ctrl-C cannot be piped; test_repl types it in a real terminal (tmux)",
    # "Install as a package": test_package.py runs these in a fresh Debian 12 chroot
    "scripts/deb": "test_package.py builds the package with it",
    "sudo apt install ./build-deb/floodshare_*_amd64.deb": "test_package.py, in a chroot",
    "sudo cp /usr/share/doc/floodshare/examples/one.ini /etc/floodshare/one.ini":
        "test_package.py, in a chroot",
    "sudo systemctl enable --now floodshare@one": "test_package.py, in a chroot (enable, and "
                                                  "the start played from the unit's lines)",
    "sudo floodshare --run /run/floodshare peer 1 ls": "test_package.py, in a chroot",
    "man floodshare": "test_package.py, in a chroot",
    "sudo apt remove --purge floodshare": "test_package.py, in a chroot",
    "floodshare serve /etc/floodshare/NAME.ini": "what floodshare@NAME runs; test_package.py "
                                                 "runs it so for NAME one",
    "cmake --install": "test_package.py installs what it installs, through the package",
}

# Commands the tests below run, as the README writes them (each test takes its commands from
# the README and fails when one is gone; test_every_readme_command_is_run_or_listed fails when
# the README has one that is in neither list).
RUN_INLINE = (
    "scripts/demo", "scripts/demo ring:6", "floodshare web", "floodshare watch --json",
    "floodshare peer 2 get 4.txt --json", "floodshare trace QID --svg flood.svg",
    'curl -H "Authorization: Bearer $(cat run/web-8080.token)" http://127.0.0.1:8080/api/peers',
    "scripts/topology status", "scripts/topology show SPEC",
    "scripts/topology add-peer [--files ITEM ...]", "scripts/topology down",
    "scripts/topology down --run run", "peer 1 get 3.txt", "peer 2 get '4.txt' --json",
    "peer 2 modify upload_rate 4M", "peer 2 config", "peer 1 sync 3.txt from 3",
    "floodshare keygen FILE", "floodshare fingerprint FILE",
)
# The sections whose sh blocks the tests below run line by line, as they are.
RUN_SECTIONS = ("Watching a flood", "The classroom dashboard", "The peer's INI file")


def readme_text() -> str:
    return README.read_text()


def code_blocks(text: str) -> list[tuple[str, list[str]]]:
    """(info string, lines) of every fenced code block."""
    return [(m.group(1), m.group(2).splitlines())
            for m in re.finditer(r"^```(\w*)\n(.*?)^```", text, re.M | re.S)]


def command_of(line: str) -> str:
    """A block line without what follows it after two spaces or a `#` (its comment)."""
    return re.split(r"\s{2,}|\s#", line.strip())[0].strip()


def readme_commands(text: str) -> list[tuple[str, str]]:
    """Every command the README shows, as (where, command): where is "repl", "block" or
    "inline"; inline ones have their whitespace folded (a span may wrap)."""
    out = []
    for lang, lines in code_blocks(text):
        transcript = any(l.startswith(PROMPT) for l in lines)  # the rest of it is output
        for line in lines:
            if line.startswith(PROMPT):
                out.append(("repl", line[len(PROMPT):].strip()))
            elif transcript:
                continue
            elif (lang == "sh" and line.strip() and not line.lstrip().startswith("#")) \
                    or COMMAND.match(line):
                out.append(("block", command_of(line)))
    prose = re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)
    for span in re.findall(r"`([^`]+)`", prose):
        span = " ".join(span.split())
        if COMMAND.match(span) or PEER_COMMAND.match(span):
            out.append(("inline", span))
    return out


def block_commands(text: str, section: str) -> list[str]:
    """The commands of the sh blocks under the heading `## section`, in order."""
    part = text.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    return [command_of(l) for lang, lines in code_blocks(part) if lang == "sh"
            for l in lines if l.strip() and not l.lstrip().startswith("#")]


def shape(line: str, run_dir: str, readme_run_dir: str) -> re.Pattern:
    """A README output line as a pattern: what changes from run to run (ports, query ids,
    times, rates, the run folder) is left open, the rest must match as written."""
    parts = [(re.escape(readme_run_dir), re.escape(run_dir)),
             (r"127\.0\.0\.1", r"127\.0\.0\.1"),
             (r"\d\d:\d\d:\d\d\.\d{3}", r"\d\d:\d\d:\d\d\.\d{3}"),  # a time of day
             (r"\b[0-9a-f]{16}\b", r"[0-9a-f]{16}"),  # a query id
             (r"\bq[0-9a-f]{4}\b", r"q[0-9a-f]{4}"),  # its short form in logs and watch
             (r"\b\d+\.\d+\b", r"\d+\.\d+"),  # durations and rates
             (r"\b\d{4,5}\b", r"\d+"),  # ports
             (r"\s+", r"\s+")]
    tokens = re.compile("|".join(f"({p})" for p, _ in parts))
    out, at = "", 0
    for m in tokens.finditer(line):
        out += re.escape(line[at:m.start()])
        out += next(r for (p, r), g in zip(parts, m.groups()) if g is not None)
        at = m.end()
    return re.compile(out + re.escape(line[at:]))


def assert_in_order(case: unittest.TestCase, patterns: list[re.Pattern], output: str) -> None:
    """Each pattern matches a whole line of output (trailing blanks aside), in this order."""
    lines = [l.rstrip() for l in output.splitlines()]
    i = 0
    for p in patterns:
        while i < len(lines) and not p.fullmatch(lines[i]):
            i += 1
        case.assertLess(i, len(lines), f"no line like {p.pattern!r} (in order) in:\n{output}")
        i += 1


def optional_forms(cmd: str) -> list[str]:
    """`a [--json] [QID]` as written in a synopsis line: without the options, and with them."""
    if "[" not in cmd:
        return [cmd]
    return [" ".join(re.sub(r"\[[^\]]*\]", "", cmd).split()),
            " ".join(re.sub(r"\[([^\]]*)\]", r"\1", cmd).split())]


class ReadmeTest(NetCase):
    def setUp(self):
        super().setUp()
        self.text = readme_text()
        # What the README expects around its commands: the repository root, with ./run.
        self.cwd = Path(tempfile.mkdtemp(prefix="fs-readme-"))
        self.addCleanup(shutil.rmtree, self.cwd, True)
        for name in ("scripts", "topologies"):
            (self.cwd / name).symlink_to(SRC / name)
        self.run_dir = self.cwd / "run"
        self.env = dict(os.environ)
        self.env.pop("FLOODSHARE_RUN", None)  # ./run, as the README's commands assume
        # `floodshare` by name is the build under test (scripts/demo links /usr/local/bin's to
        # the build it makes; FLOODSHARE_BIN also tells scripts/topology and scripts/demo which
        # binary to start, and scripts/demo to install and build nothing).
        self.env.update(PATH=f"{BIN.parent}:{os.environ['PATH']}", HOME=str(self.cwd),
                        FLOODSHARE_BIN=str(BIN), NO_COLOR="1")
        self.background: list[subprocess.Popen] = []
        self.addCleanup(self.stop_everything)

    # --- running commands as a shell does ---
    def readme_has(self, cmd: str) -> str:
        cmds = {c for _, c in readme_commands(self.text)}
        self.assertIn(cmd, cmds, f"the README no longer shows `{cmd}`: update this test")
        return cmd

    def sh(self, cmd: str, *, expect: int = 0, input: str | None = None):
        r = subprocess.run(["bash", "-c", cmd], cwd=self.cwd, env=self.env, input=input,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=60)
        self.assertEqual(r.returncode, expect, f"`{cmd}` exited {r.returncode}:\n{r.stdout}")
        self.assert_no_sanitizer_report(r.stdout)
        return r.stdout

    def start(self, cmd: str) -> subprocess.Popen:
        """A command that runs until Ctrl-C (watch, web): exec'd, so its pid is the program's."""
        # Its own process group: whatever it starts (web's watcher) goes with it if it hangs.
        p = subprocess.Popen(["bash", "-c", f"exec {cmd}"], cwd=self.cwd, env=self.env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             start_new_session=True)
        self.background.append(p)
        return p

    def interrupt(self, p: subprocess.Popen) -> str:
        """Ctrl-C, as the README says stops it: SIGINT to its pid; it must exit 0."""
        p.send_signal(signal.SIGINT)
        try:
            out, _ = p.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            where = self.threads_of(p.pid)
            os.killpg(p.pid, signal.SIGKILL)  # its children too: else they hold the pipe open
            out, _ = p.communicate(timeout=20)
            self.fail(f"{p.args} still ran 20 s after Ctrl-C:\n{out}\n{where}")
        self.assertEqual(p.returncode, 0, f"{p.args} exited {p.returncode} on Ctrl-C:\n{out}")
        self.assert_no_sanitizer_report(out)
        return out

    @staticmethod
    def threads_of(pid: int) -> str:
        """Where each thread of a stuck process waits (gdb's backtraces where gdb is)."""
        if shutil.which("gdb"):
            r = subprocess.run(["gdb", "-batch", "-p", str(pid), "-ex", "thread apply all bt"],
                               capture_output=True, text=True, timeout=60)
            return r.stdout[-6000:]
        return "\n".join(f"{t.name}: {(t / 'wchan').read_text()}"
                         for t in Path(f"/proc/{pid}/task").iterdir())

    def stop_everything(self):
        for p in self.background:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        for run in (self.run_dir,):
            if (run / "topology.json").exists():  # stops exactly the pids it started
                subprocess.run([str(SRC / "scripts" / "topology"), "down", "--run", str(run)],
                               capture_output=True, timeout=60, env=self.env)
            for log in run.glob("peer-*.log"):
                report = self.sanitizer_report(log.read_text(errors="replace"))
                if report is not None:
                    self.fail(f"{log.name}: sanitizer report\n{report}")

    def assert_no_sanitizer_report(self, out: str):
        report = self.sanitizer_report(out)
        self.assertIsNone(report, report)

    def wait_for_watchers(self, expect: dict[int, int], timeout: float = 20):
        """Until each peer counts its watchers (`events --json`'s "watchers"): a watch shows
        what happens after it connected."""
        deadline = time.monotonic() + timeout
        for pid, n in expect.items():
            while True:
                r = subprocess.run([str(BIN), "--run", str(self.run_dir), "peer", str(pid),
                                    "events", "--json", "0"], capture_output=True, text=True,
                                   timeout=30)
                if r.returncode == 0 and json.loads(r.stdout)["watchers"] >= n:
                    break
                self.assertLess(time.monotonic(), deadline, f"peer {pid}: {r.stdout[:300]}")
                time.sleep(0.05)

    # --- the tests ---
    def test_every_readme_command_is_run_or_listed(self):
        text = self.text
        ran = set(RUN_INLINE)
        ran.update(c for _, c in readme_commands(text) if _ == "repl")
        for section in RUN_SECTIONS:
            ran.update(block_commands(text, section))
        missing = [(where, c) for where, c in readme_commands(text)
                   if c not in ran and c not in NOT_RUN]
        self.assertEqual(missing, [], "README commands this test neither runs nor lists in "
                                      "NOT_RUN (with the reason)")
        # and nothing listed or run here is gone from the README
        shown = {c for _, c in readme_commands(text)}
        self.assertEqual(sorted(c for c in list(NOT_RUN) + list(RUN_INLINE) if c not in shown),
                         [])

    def test_the_repl_transcript_and_the_logs(self):
        """scripts/demo, with the transcript's commands piped in: each command's output has the
        transcript's shape, and the peers' logs the log lines' shape."""
        demo = self.readme_has("scripts/demo")
        block = next(lines for _, lines in code_blocks(self.text)
                     if any(l.startswith(PROMPT) for l in lines))
        readme_run = re.search(r"peers in (\S+)\.", block[0]).group(1)
        typed, expected = [], []
        for line in block:
            if line.startswith(PROMPT):
                cmd = line[len(PROMPT):].strip()
                typed.append(cmd)
            elif typed and typed[-1] not in ("exit",) and typed[-1] not in NOT_RUN:
                expected.append(shape(line, str(self.run_dir), readme_run))
        runnable = [c for c in typed if c not in NOT_RUN]
        self.assertEqual(runnable[-1], "exit")
        # FLOODSHARE_RUN: scripts/demo's documented run folder setting, so nothing touches the
        # repository's own ./run; piped in, nobody is asked and the peers are stopped.
        self.env["FLOODSHARE_RUN"] = str(self.run_dir)
        out = self.sh(demo, input="".join(c + "\n" for c in runnable))
        assert_in_order(self, expected, out)
        self.assertIn("stopped", out)
        self.assertFalse(list(self.run_dir.glob("peer-*.pid")), "the demo left peers running")
        # "Meanwhile the peers' logs (run/peer-N.log) tell the story one line per event"
        logs = next(lines for _, lines in code_blocks(self.text)
                    if lines and re.match(r"peer \d+: get q", lines[0]))
        all_logs = "\n".join(p.read_text() for p in sorted(self.run_dir.glob("peer-*.log")))
        for line in logs:
            self.assertRegex(all_logs, shape(line, str(self.run_dir), readme_run))

    def test_a_demo_of_another_topology(self):
        self.env["FLOODSHARE_RUN"] = str(self.run_dir)
        out = self.sh(self.readme_has("scripts/demo ring:6"), input="peers\nexit\n")
        for n in range(1, 7):
            self.assertRegex(out, rf"(?m)^{n} +127\.0\.0\.1:\d+ +up +\d, \d$")
        self.assertFalse(list(self.run_dir.glob("peer-*.pid")), "the demo left peers running")

    def test_closing_the_network(self):
        """The "In one command" block: a ring whose links are TLS with the passphrase, which
        floods and fetches; and keygen/fingerprint as the prose shows them."""
        for cmd in block_commands(self.text, "The peer's INI file"):
            self.sh(cmd)
        config = self.sh("floodshare peer 1 config")  # "`peer N config` shows the mode"
        self.assertIn("security     passphrase: TLS 1.3", config)
        self.assertIn('downloaded "4.txt"', self.sh("floodshare peer 1 get 4.txt"))
        # FILE: a key file of our naming
        out = self.sh(self.readme_has("floodshare keygen FILE").replace("FILE", "peer3.key"))
        fingerprint = re.search(r"SHA256:\S+", out).group(0)
        self.assertEqual((self.cwd / "peer3.key").stat().st_mode & 0o777, 0o600)
        out = self.sh(self.readme_has("floodshare fingerprint FILE").replace("FILE", "peer3.key"))
        self.assertIn(fingerprint, out)
        before = (self.cwd / "peer3.key").read_bytes()  # "never over an existing file"
        r = subprocess.run(["bash", "-c", "floodshare keygen peer3.key"], cwd=self.cwd,
                           env=self.env, capture_output=True, text=True, timeout=60)
        self.assertNotEqual(r.returncode, 0)
        self.assertEqual((self.cwd / "peer3.key").read_bytes(), before)

    def test_the_dashboard_watch_and_topology_commands(self):
        text = self.text
        dashboard = block_commands(text, "The classroom dashboard")
        watching = block_commands(text, "Watching a flood")

        # The dashboard's block first: it starts the network the watch block works on.
        web = None
        for cmd in dashboard:
            if cmd in NOT_RUN:
                continue
            if re.search(r"\bweb\b", cmd):
                web = self.start(cmd)
                url = web.stdout.readline()
                self.assertRegex(url, r"http://127\.0\.0\.1:8080/\?token=[0-9a-f]{64}\n", url)
            else:
                out = self.sh(cmd)
        self.assertIsNotNone(web, "the dashboard block starts no `floodshare web`")
        peers = json.loads((self.run_dir / "topology.json").read_text())["peers"]
        self.assertEqual(len(peers), 6)

        # The curl line, as written, and the command line the page sends
        out = self.sh(self.readme_has('curl -H "Authorization: Bearer $(cat run/web-8080.token)"'
                                      ' http://127.0.0.1:8080/api/peers') + " 2>/dev/null")
        self.assertEqual(len(json.loads(out)["peers"]), 6)
        # `floodshare peer 2 get 4.txt --json` and the line the page sends for it, which runs
        # "exactly that through the control socket": both fetch (the rm between, `peer N rm
        # NAME`, repeats the demo)
        self.assertTrue(last_json(self.sh(self.readme_has("floodshare peer 2 get 4.txt --json")))
                        ["ok"])
        self.sh("floodshare peer 2 rm 4.txt")
        token = (self.run_dir / "web-8080.token").read_text().strip()
        req = urllib.request.Request(
            "http://127.0.0.1:8080/api/cmd", data=self.readme_has("peer 2 get '4.txt' --json")
            .encode(), headers={"Authorization": f"Bearer {token}", "X-Floodshare": "1"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            self.assertEqual(resp.status, 200)
            result = json.loads(resp.read())
        self.assertEqual(result["exit"], 0, result)
        self.assertTrue(last_json(result["stdout"])["ok"], result)
        self.interrupt(web)
        # and the bare form, on ./run
        web = self.start(self.readme_has("floodshare web"))
        self.assertIn("http://127.0.0.1:8080/?token=", web.stdout.readline())
        self.interrupt(web)

        # The watch block, in order: watchers until the block's end, the rest in the foreground
        watchers, expect_watchers, qid = {}, {}, None
        for cmd in watching:
            if re.search(r"\bwatch\b", cmd):
                watchers[cmd] = self.start(cmd)
                one = re.search(r"peer (\d+) watch", cmd)  # else every peer of ./run
                for p in peers:
                    if not one or int(one.group(1)) == p["id"]:
                        expect_watchers[p["id"]] = expect_watchers.get(p["id"], 0) + 1
                continue
            self.wait_for_watchers(expect_watchers)  # connected before the flood they show
            cmd = cmd.replace("4d78", qid[:4]) if qid else cmd  # the README's example qid
            for form in optional_forms(cmd.replace("QID", qid or "QID")):
                out = self.sh(form)
                if "get" in form.split() and "--json" in form:
                    result = last_json(out)
                    self.assertTrue(result["ok"], out)
                    qid = result["query_id"]
                elif re.search(r"\btrace\b", form) and ">" not in form and "--" not in form:
                    self.assertIn(f"query {qid}", out)
        self.assertTrue((self.cwd / "flood.dot").read_text().startswith("digraph"))
        self.assertIsNotNone(qid, "the watch block runs no get --json")
        time.sleep(0.5)
        outs = {cmd: self.interrupt(p) for cmd, p in watchers.items()}
        # "A line of `watch` reads `...`"
        example = re.search(r"A line of `watch` reads `([^`]+)`", text).group(1)
        peer2 = outs[self.readme_has("floodshare peer 2 watch")]
        assert_in_order(self, [shape(example, "", "\0")], peer2)
        events = [json.loads(l) for l in outs[self.readme_has("floodshare watch --json")]
                  .splitlines() if l.startswith("{")]
        self.assertIn(qid, {e.get("qid") for e in events})

        # The prose's commands on the same network
        self.sh(self.readme_has("floodshare trace QID --svg flood.svg").replace("QID", qid))
        self.assertIn("<svg", (self.cwd / "flood.svg").read_text())
        self.sh("floodshare " + self.readme_has("peer 2 modify upload_rate 4M"))
        self.assertIn("upload 4194304 bytes/s", self.sh("floodshare "
                                                        + self.readme_has("peer 2 config")))
        self.assertIn('downloaded "3.txt"', self.sh("floodshare "
                                                    + self.readme_has("peer 1 get 3.txt")))
        # peer 1's 3.txt is now peer 3's: the sync finds nothing to move
        self.assertIn('synced "3.txt" from 127.0.0.1:',
                      self.sh("floodshare " + self.readme_has("peer 1 sync 3.txt from 3")))
        self.assertIn("ring:6", self.sh(self.readme_has("scripts/topology show SPEC")
                                        .replace("SPEC", "ring:6")))
        # one more peer, live (the --files form: test_reshape)
        self.sh(optional_forms(self.readme_has("scripts/topology add-peer [--files ITEM ...]"))[0])
        out = self.sh(self.readme_has("scripts/topology status"))
        self.assertEqual(len(re.findall(r"(?m) up$", out)), 7, out)
        pids = [int(p.read_text()) for p in self.run_dir.glob("peer-*.pid")]
        self.assertIn("stopped", self.sh(self.readme_has("scripts/topology down --run run")))
        for pid in pids:
            self.assertFalse(Path(f"/proc/{pid}").exists() and "\nState:\tZ" not in
                             Path(f"/proc/{pid}/status").read_text(), f"pid {pid} still runs")
        self.sh(self.readme_has("scripts/topology down"))  # nothing left: still exit 0


if __name__ == "__main__":
    unittest.main()
