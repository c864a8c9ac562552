"""A network across several hosts over SSH, on one machine: `scripts/topology up ring:6 --hosts`.

Three network namespaces A, B and C stand for three lab hosts, each running its own sshd
(Debian's openssh-server) on a veth address; a fourth, T, is the teacher's machine: it holds the
bridge the three veths hang on, and runs scripts/topology and its ssh masters. The CLI runs where
the test runs: it reaches every peer through the control sockets that ssh forwards into the run
folder, a file system path that works from any namespace.

    T: br0 10.S.0.254/24  --  A: 10.S.0.1 (peers 1 2)
                          --  B: 10.S.0.2 (peers 3 4)
                          --  C: 10.S.0.3 (peers 5 6)

Needs root, iproute2 and OpenSSH (client and server); otherwise every test skips and says what
is missing. The keys, known_hosts and ssh config are the test's own files (ssh -F): ~/.ssh is
never read or written. The namespaces have no link to the host and no default route, so nothing
can leave them. Everything the test makes (namespaces with their veths and bridge, sshds, peers,
the remote run folders) is removed by pid and name when it ends, pass or fail; namespaces that a
killed run left are removed by the next run.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.machinery
import importlib.util
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import types
import unittest
from pathlib import Path

from fsnet import BIN, NetCase, last_json
from test_web import Web
from test_netns import (die_with_parent, free_slash16, on_sigterm, remove_orphans, report,
                        running, sh)

SRC = Path(__file__).resolve().parent.parent.parent
TOPOLOGY = SRC / "scripts" / "topology"
SSHD = "/usr/sbin/sshd"
HOSTS = ("a", "b", "c")
NAMES = HOSTS + ("t",)
UNREACHABLE = 9  # 10.S.0.9: on the bridge's subnet, but nobody answers there
SSHD_READY_S = 10
GONE_S = 10  # how long a process may take to go after `down`


@functools.cache
def missing() -> str | None:
    """Why this machine cannot run these tests (None when it can), tried for real once."""
    if os.geteuid() != 0:
        return "needs root: it creates network namespaces, veths, a bridge and sshds"
    for tool, pkg in (("ip", "iproute2"), ("ss", "iproute2"), ("ssh", "openssh-client"),
                      ("ssh-keygen", "openssh-client")):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed (apt-get install {pkg}, or run scripts/deps)"
    if not os.access(SSHD, os.X_OK):
        return f"{SSHD} is missing (apt-get install openssh-server, or run scripts/deps)"
    ns = f"fsh-probe-{os.getpid()}"
    try:
        r = sh(["ip", "netns", "add", ns], check=False)
        if r.returncode != 0:
            return f"cannot create a network namespace: `ip netns add` said {r.stderr.strip()!r}"
        r = sh(["ip", "-n", ns, "link", "add", "br0", "type", "bridge"], check=False)
        if r.returncode != 0:
            return f"cannot create a bridge: `ip link add` said {r.stderr.strip()!r}"
        return None
    finally:
        sh(["ip", "netns", "del", ns], check=False)


def cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def ppid_of(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def all_pids() -> list[int]:
    return [int(d) for d in os.listdir("/proc") if d.isdigit()]


def descendants(root: int) -> list[int]:
    """Every process below `root` (its children, theirs, ...), alive now."""
    kids: dict[int, list[int]] = {}
    for pid in all_pids():
        parent = ppid_of(pid)
        if parent is not None and running(pid):
            kids.setdefault(parent, []).append(pid)
    out, stack = [], [root]
    while stack:
        for kid in kids.get(stack.pop(), []):
            out.append(kid)
            stack.append(kid)
    return out


def mentioning(text: str) -> list[int]:
    """Live processes whose command line holds `text` (this test's run folders are unique)."""
    return [p for p in all_pids() if running(p) and any(text in a for a in cmdline(p))
            and p != os.getpid()]


def md5_file(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


class Lab:
    """Namespaces T, A, B, C joined by a bridge in T; an sshd in each of A, B, C."""

    def __init__(self, run: int, dir: Path):
        self.dir = dir
        self.ns = {h: f"fsh-{os.getpid()}-{run}-{h}" for h in NAMES}  # remove_orphans' form
        self.made: list[str] = []
        self.sshd: dict[str, subprocess.Popen] = {}
        s = free_slash16().network_address.packed[1]
        self.prefix = f"10.{s}.0"
        self.addr = {h: f"{self.prefix}.{i}" for i, h in enumerate(HOSTS, 1)}
        self.ssh_config = dir / "ssh_config"

    def build(self) -> None:
        for h in NAMES:
            self.made.append(self.ns[h])
            sh(["ip", "netns", "add", self.ns[h]])
            sh(["ip", "netns", "exec", self.ns[h], "sh", "-c", "for k in all default; do "
                "echo 1 > /proc/sys/net/ipv6/conf/$k/disable_ipv6 || exit 1; done"])
            sh(["ip", "-n", self.ns[h], "link", "set", "lo", "up"])
        t = self.ns["t"]
        sh(["ip", "-n", t, "link", "add", "br0", "type", "bridge"])
        sh(["ip", "-n", t, "addr", "add", f"{self.prefix}.254/24", "dev", "br0"])
        sh(["ip", "-n", t, "link", "set", "br0", "up"])
        for h in HOSTS:
            # made inside the namespaces: deleting them deletes the veths too
            sh(["ip", "link", "add", f"ve-{h}", "netns", t, "type", "veth", "peer", "name",
                "eth0", "netns", self.ns[h]])
            sh(["ip", "-n", t, "link", "set", f"ve-{h}", "master", "br0", "up"])
            sh(["ip", "-n", self.ns[h], "addr", "add", f"{self.addr[h]}/24", "dev", "eth0"])
            sh(["ip", "-n", self.ns[h], "link", "set", "eth0", "up"])
        self._keys()
        for h in HOSTS:
            self._start_sshd(h)

    def _keys(self) -> None:
        keys = self.dir / "keys"
        keys.mkdir(mode=0o700)
        (self.dir / "home").mkdir()
        (self.dir / "bin").mkdir()
        (self.dir / "bin" / "floodshare").symlink_to(BIN.resolve())
        sh(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(keys / "id")])
        sh(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(keys / "hostkey")])
        # `up --installed` runs the hosts' floodshare on PATH: here, the build under test
        path = f"{self.dir / 'bin'}:/usr/sbin:/usr/bin:/sbin:/bin"
        (keys / "authorized_keys").write_text(f'environment="PATH={path}" '
                                              + (keys / "id.pub").read_text())
        self.ssh_config.write_text(
            "Host *\n"
            f"  IdentityFile {keys / 'id'}\n"
            "  IdentitiesOnly yes\n"
            "  IdentityAgent none\n"
            f"  UserKnownHostsFile {keys / 'known_hosts'}\n"
            "  GlobalKnownHostsFile /dev/null\n"
            "  StrictHostKeyChecking accept-new\n"
            "  LogLevel ERROR\n")
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation dir

    def _start_sshd(self, h: str) -> None:
        keys = self.dir / "keys"
        cfg = self.dir / f"sshd_config-{h}"
        cfg.write_text(
            f"ListenAddress {self.addr[h]}:22\n"
            f"HostKey {keys / 'hostkey'}\n"
            "PidFile none\n"
            f"AuthorizedKeysFile {keys / 'authorized_keys'}\n"
            "PermitRootLogin prohibit-password\n"
            "PasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\n"
            "UsePAM no\n"
            "StrictModes no\n"
            # a forwarded control socket needs both: sshd permits a direct-streamlocal
            # channel's target only while local TCP forwarding is allowed too
            "AllowStreamLocalForwarding local\n"
            "AllowTcpForwarding local\n"
            "X11Forwarding no\n"
            "PrintMotd no\n"
            # the login shell runs every remote command, and bash sources $HOME/.bashrc under
            # sshd: this machine's root one (pyenv and the like) costs seconds a session. A
            # HOME of the test's own makes it the light shell of a lab account; the session
            # still starts in root's real home, where the remote run folders go.
            f"SetEnv HOME={self.dir / 'home'}\n"
            # sshd sets PATH after SetEnv; the key's environment= option comes last
            "PermitUserEnvironment PATH\n"
            "LogLevel " + os.environ.get("FSH_SSHD_LOG", "ERROR") + "\n")
        with open(self.dir / f"sshd-{h}.log", "ab") as log:
            # `ip netns exec` execs sshd in place: the pid is sshd's own
            self.sshd[h] = subprocess.Popen(
                ["ip", "netns", "exec", self.ns[h], SSHD, "-D", "-e", "-f", str(cfg)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
                preexec_fn=die_with_parent)
        deadline = time.monotonic() + SSHD_READY_S
        while f"{self.addr[h]}:22" not in sh(["ip", "netns", "exec", self.ns[h], "ss", "-Hltn"]
                                              ).stdout:
            if self.sshd[h].poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"sshd on {h} did not listen: "
                                   f"{(self.dir / f'sshd-{h}.log').read_text()}")
            time.sleep(0.05)

    def hosts_file(self, extra: str = "") -> Path:
        path = self.dir / "hosts"
        path.write_text("# the lab: two peers a host\n"
                        + "".join(f"root@{self.addr[h]} 2\n" for h in HOSTS if h != "c")
                        + "\n" + (extra or f"root@{self.addr['c']} 2   # host C\n"))
        return path

    def topology(self, run: Path, *args: str, timeout: float = 120
                 ) -> subprocess.CompletedProcess:
        """scripts/topology on the teacher's machine (namespace T)."""
        return subprocess.run(["ip", "netns", "exec", self.ns["t"], sys.executable,
                               str(TOPOLOGY), *args, "--run", str(run)], capture_output=True,
                              text=True, timeout=timeout, env=self.env())

    def env(self) -> dict:
        env = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}
        env["FLOODSHARE_BIN"] = str(BIN)
        return env

    def close(self) -> None:
        """Stops the sshds (and kills what runs below them), then deletes the namespaces."""
        for proc in self.sshd.values():
            for kid in descendants(proc.pid):
                try:
                    os.kill(kid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            if proc.poll() is None:
                proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        errors = []
        for ns in self.made:
            r = sh(["ip", "netns", "del", ns], check=False)
            if r.returncode != 0 and "No such file" not in r.stderr:
                errors.append(f"ip netns del {ns}: {r.stderr.strip()}")
        left = [ns for ns in self.made if ns in sh(["ip", "netns", "list"]).stdout.split()]
        self.made.clear()
        if errors or left:
            raise RuntimeError(f"namespaces left behind: {left} {errors}")


class HostsTest(NetCase):
    runs = 0

    def setUp(self):
        super().setUp()
        why = missing()
        if why:
            self.skipTest(why)
        orphans = remove_orphans("fsh", NAMES)
        if orphans:
            report(f"removed namespaces a killed earlier run left: {' '.join(orphans)}")
        HostsTest.runs += 1
        previous = signal.signal(signal.SIGTERM, on_sigterm)
        self.addCleanup(signal.signal, signal.SIGTERM, previous)
        self.lab = Lab(HostsTest.runs, Path(tempfile.mkdtemp(prefix="fs-hosts-")))
        self.run_dir = self.lab.dir / "run"
        self.seen: list[dict] = []
        self.addCleanup(shutil.rmtree, self.lab.dir, True)
        self.addCleanup(self.lab.close)
        self.addCleanup(self.kill_leftovers)  # first: peers by pid, then the remote folders
        self.lab.build()

    def info(self) -> dict:
        """topology.json now; each version read is kept for kill_leftovers (`down` forgets the
        remote folders it removed, a failed test may have left a peer in one)."""
        info = json.loads((self.run_dir / "topology.json").read_text())
        self.seen.append(info)
        return info

    def kill_leftovers(self) -> None:
        """Whatever a failed test left: peers and ssh masters by pid, the remote run folders."""
        try:
            self.info()
        except (OSError, ValueError):
            pass
        dirs = {h["dir"] for info in self.seen for h in info.get("hosts", [])
                if h.get("dir") and f"/.floodshare-run/{info['run_id']}-" in h["dir"]}
        for pid in mentioning(str(self.run_dir)) + [p for d in dirs for p in mentioning(d)]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for d in dirs:
            shutil.rmtree(d, ignore_errors=True)

    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        """The floodshare CLI where the test runs (not in T): only the run folder links them."""
        return subprocess.run([str(BIN), "--run", str(self.run_dir), *args],
                              capture_output=True, text=True, timeout=timeout)

    def assert_all_gone(self, info: dict) -> None:
        """No peer (by pid), no ssh master, no sshd session below any sshd, no remote folder."""
        peers = [p["pid"] for p in info["peers"] if p.get("pid")]
        deadline = time.monotonic() + GONE_S
        while True:
            left = {"peers": [p for p in peers if running(p)],
                    "masters": mentioning(str(self.run_dir / "ssh-")),
                    "sshd children": {h: descendants(self.lab.sshd[h].pid) for h in HOSTS
                                      if descendants(self.lab.sshd[h].pid)}}
            if not any(left.values()) or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        self.assertFalse(any(left.values()), f"left behind: {left}")
        for h in info["hosts"]:
            if h.get("dir"):
                self.assertFalse(Path(h["dir"]).exists(), h["dir"])
        self.assertEqual(sorted(self.run_dir.glob("*.sock")) + sorted(self.run_dir.glob("*.ctl")),
                         [])

    def test_ring_across_three_hosts_get_status_down(self):
        lab = self.lab
        started = time.monotonic()
        r = lab.topology(self.run_dir, "up", "ring:6", "--hosts", str(lab.hosts_file()),
                         "--ssh-config", str(lab.ssh_config))
        self.assertOk(r, "topology up --hosts")
        up_s = time.monotonic() - started
        info = self.info()
        dirs = {h["target"]: h["dir"] for h in info["hosts"]}
        self.assertEqual([h["peers"] for h in info["hosts"]], [[1, 2], [3, 4], [5, 6]])
        for h in HOSTS:  # each peer runs in its host's namespace, from the copied binary
            target = f"root@{lab.addr[h]}"
            for p in (p for p in info["peers"] if p["host"] == lab.addr[h]):
                self.assertEqual(os.readlink(f"/proc/{p['pid']}/exe"),
                                 f"{dirs[target]}/floodshare")
                self.assertEqual(os.readlink(f"/proc/{p['pid']}/ns/net"),
                                 os.readlink(f"/proc/{lab.sshd[h].pid}/ns/net"))

        # a get from peer 1 (host A) whose holder, peer 4, is on host B
        g = self.cli("peer", "1", "get", "4.txt", "--json", timeout=60)
        self.assertOk(g, "peer 1 get 4.txt")
        doc = last_json(g.stdout)
        self.assertTrue(doc["ok"], doc)
        self.assertEqual(doc["peer"], 4)
        self.assertTrue(doc["holder"].startswith(f"{lab.addr['b']}:"), doc)
        want = md5_file(self.run_dir / "share-4" / "4.txt")  # the seed copy
        got = Path(dirs[f"root@{lab.addr['a']}"]) / "share-1" / "4.txt"
        self.assertEqual(doc["md5"], want)
        self.assertEqual(md5_file(got), want)

        st = lab.topology(self.run_dir, "status", "--json")
        self.assertOk(st, "status")
        rows = json.loads(st.stdout)["peers"]
        self.assertEqual([(r["id"], r["state"]) for r in rows], [(i, "up") for i in range(1, 7)])
        self.assertEqual({r["host"] for r in rows}, {f"root@{lab.addr[h]}" for h in HOSTS})
        listed = self.cli("peers", "--json")  # the CLI's own listing, through the forwards
        self.assertOk(listed, "floodshare peers")
        self.assertEqual(len([p for p in json.loads(listed.stdout)["peers"] if p["up"]]), 6)
        # the dashboard, as a teacher opens it for the run folder: every peer up, its stats
        web = Web(types.SimpleNamespace(dir=self.run_dir))
        try:
            st, _, text = web.request("/api/peers")
        finally:
            web_err = web.stop()
        self.assertEqual(st, 200, text)
        self.assertEqual(web.proc.returncode, 0, web_err)
        seen = {p["id"]: p for p in json.loads(text)["peers"]}
        self.assertEqual(sorted(seen), list(range(1, 7)))
        self.assertTrue(all(p["up"] for p in seen.values()), text)
        self.assertEqual(seen[1]["stats"]["downloads"], 1)
        self.assertEqual(seen[4]["stats"]["uploads"], 1)
        for cmd in (("link", "1", "4"), ("add-peer",)):
            bad = lab.topology(self.run_dir, *cmd)
            self.assertEqual(bad.returncode, 64, bad.stderr)
            self.assertIn("not for a --hosts network", bad.stderr)

        # a pid file that names another process by now (a recycled pid): down must not touch
        # that process, and must still find peer 6 (by its command line) and stop it
        bystander = subprocess.Popen(["sleep", "120"], preexec_fn=die_with_parent)
        self.addCleanup(bystander.wait)
        self.addCleanup(bystander.kill)
        six = next(p["pid"] for p in info["peers"] if p["id"] == 6)
        (Path(dirs[f"root@{lab.addr['c']}"]) / "peer-6.pid").write_text(f"{bystander.pid}\n")

        started = time.monotonic()
        d = lab.topology(self.run_dir, "down")
        self.assertOk(d, "topology down")
        down_s = time.monotonic() - started
        self.assertIsNone(bystander.poll(), "down signalled a process that is not its peer")
        self.assertIn(f"peer 6 on root@{lab.addr['c']}: pid {six} stopped", d.stdout)
        self.assert_all_gone(info)
        for pid in range(1, 7):  # the logs came home; a sanitizer report in one fails
            log = (self.run_dir / f"peer-{pid}.log").read_text(errors="replace")
            self.assertIn(f"peer {pid}: up: listening on", log)
            self.assertIsNone(self.sanitizer_report(log), f"peer {pid}")
        self.assertIn("4.txt", (self.run_dir / "peer-1.log").read_text())
        self.assertNotEqual(lab.topology(self.run_dir, "status").returncode, 0)
        report(f"\nhosts: up ring:6 on 3 hosts in {up_s:.1f} s, get 4.txt from "
               f"{doc['holder']} ({doc['hops']} hops), down in {down_s:.1f} s")

    def test_installed_program_is_used_and_nothing_is_copied(self):
        lab = self.lab
        r = lab.topology(self.run_dir, "up", "line:3", "--hosts", str(lab.hosts_file(
            extra=f"root@{lab.addr['c']}\n")), "--ssh-config", str(lab.ssh_config),
            "--installed")
        self.assertOk(r, "topology up --installed")
        info = self.info()
        self.assertEqual([h["peers"] for h in info["hosts"]], [[1, 2], [3]])
        for h in info["hosts"]:
            self.assertEqual(h["bin"], str(lab.dir / "bin" / "floodshare"))
            self.assertFalse((Path(h["dir"]) / "floodshare").exists())
        for p in info["peers"]:
            self.assertEqual(os.readlink(f"/proc/{p['pid']}/exe"), str(BIN.resolve()))
        self.assertOk(lab.topology(self.run_dir, "status"), "status")
        self.assertOk(lab.topology(self.run_dir, "down"), "down")
        self.assert_all_gone(info)

    def test_a_host_lost_after_up_is_named_and_a_later_down_finishes(self):
        lab = self.lab
        r = lab.topology(self.run_dir, "up", "ring:6", "--hosts", str(lab.hosts_file()),
                         "--ssh-config", str(lab.ssh_config))
        self.assertOk(r, "topology up --hosts")
        info = self.info()
        c = f"root@{lab.addr['c']}"
        sh(["ip", "-n", lab.ns["t"], "link", "set", "ve-c", "down"])  # C's cable is pulled
        st = lab.topology(self.run_dir, "status", "--json", timeout=90)
        self.assertEqual(st.returncode, 1, st.stderr)
        rows = {r["id"]: r["state"] for r in json.loads(st.stdout)["peers"]}
        self.assertEqual(rows, {1: "up", 2: "up", 3: "up", 4: "up",
                                5: f"down (no ssh connection to {c})",
                                6: f"down (no ssh connection to {c})"})
        d = lab.topology(self.run_dir, "down", timeout=90)
        self.assertEqual(d.returncode, 1, d.stderr)
        self.assertIn(f"cannot reach {c} over ssh", d.stderr)
        self.assertNotIn("root@" + lab.addr["a"], d.stderr)
        self.assertEqual([h["dir"] is None for h in self.info()["hosts"]], [True, True, False])
        on_c = [p["pid"] for p in info["peers"] if p["id"] in (5, 6)]
        self.assertTrue(all(running(p) for p in on_c))  # still running there, as it said
        sh(["ip", "-n", lab.ns["t"], "link", "set", "ve-c", "up"])  # C is back
        d = lab.topology(self.run_dir, "down", timeout=90)
        self.assertOk(d, "the second down")
        self.assertNotIn(lab.addr["a"], d.stdout)  # only C had anything left to do
        self.assert_all_gone(info)

    def test_unreachable_host_is_named_and_nothing_is_left_running(self):
        lab = self.lab
        bad = f"root@{lab.prefix}.{UNREACHABLE}"
        r = lab.topology(self.run_dir, "up", "ring:6", "--hosts",
                         str(lab.hosts_file(extra=f"{bad} 2\n")),
                         "--ssh-config", str(lab.ssh_config))
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertRegex(r.stderr, rf"cannot reach {re.escape(bad)} over ssh")
        self.assertIn("stopping the peers already started on the other hosts", r.stderr)
        info = self.info()
        # the hosts before it had started their peers; they were stopped
        started = [p["pid"] for p in info["peers"] if p.get("pid")]
        self.assertEqual(len(started), 4, info["peers"])
        self.assert_all_gone(info)


class HostFileTest(unittest.TestCase):
    """A bad host file is refused before any ssh runs, each bad line named (no root needed)."""

    def up(self, hosts: str, spec: str = "ring:6") -> subprocess.CompletedProcess:
        d = Path(tempfile.mkdtemp(prefix="fs-hosts-file-"))
        self.addCleanup(shutil.rmtree, d, True)
        (d / "hosts").write_text(hosts)
        return subprocess.run([sys.executable, str(TOPOLOGY), "up", spec, "--hosts",
                               str(d / "hosts"), "--run", str(d / "run"), "--bin", str(BIN)],
                              capture_output=True, text=True, timeout=60)

    def test_each_bad_line_is_named(self):
        r = self.up("# lab\nroot@10.0.0.1 2\n\n-oProxyCommand=x 2\nroot@10.0.0.2 two\n"
                    "root@10.0.0.3 1 addr=10.0.0.300\nroot@10.0.0.1\n")
        self.assertEqual(r.returncode, 64, r.stderr)
        lines = r.stderr.splitlines()
        self.assertEqual(len(lines), 4, r.stderr)
        self.assertIn("hosts:4: '-oProxyCommand=x' is not user@host", lines[0])
        self.assertIn("hosts:5: peer count 'two' is not a number", lines[1])
        self.assertIn("hosts:6: '10.0.0.300' in addr= is not an IPv4 or IPv6 address", lines[2])
        self.assertIn("hosts:7: root@10.0.0.1 is already listed on line 2", lines[3])
        self.assertFalse((Path(r.args[6]).parent / "run" / "topology.json").exists())

    def test_too_few_places_and_no_hosts(self):
        r = self.up("root@10.0.0.1 2\nroot@10.0.0.2 3\n")
        self.assertEqual(r.returncode, 64, r.stderr)
        self.assertIn("the hosts take 5 peers, the spec has 6", r.stderr)
        r = self.up("# nobody\n\n")
        self.assertEqual(r.returncode, 64, r.stderr)
        self.assertIn("no hosts", r.stderr)


def topology_module():
    """scripts/topology as a module (it has no .py name), for its pure parser."""
    loader = importlib.machinery.SourceFileLoader("topology_script", str(TOPOLOGY))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules[loader.name] = module  # dataclasses look their module up there
    loader.exec_module(module)
    return module


class HostFileParserTest(unittest.TestCase):
    """parse_hosts_text over random host files (seeded, so a failure repeats): it either refuses
    with one message per bad line, each naming its line, or returns hosts whose words can only
    be ssh destinations; and place_peers puts every peer on exactly one host, within its N."""

    WORDS = ["root@10.0.0.1", "u@h", "h", "-oProxyCommand=x", "u@-h", "@h", "u@", "2", "0",
             "1001", "-1", "two", "addr=10.0.0.7", "addr=::1", "addr=", "addr=1.2.3.4.5", "#",
             "# x", "u@h.example.org", "a@b@c", "u@h;rm", "u@h\t3", "\u00e9@h", "u@h 3 4"]

    def test_ipv6_addresses_are_taken_and_bracketed(self):
        topology = topology_module()
        hosts = topology.parse_hosts_text("root@lab-07 2 addr=FD00:0::7\nroot@lab-08\n", "f")
        self.assertEqual(hosts[0].addr, "fd00::7")  # one spelling, as floodshare's own
        self.assertEqual(topology.hostport("fd00::7", 10811), "[fd00::7]:10811")
        self.assertEqual(topology.hostport("10.2.0.17", 10811), "10.2.0.17:10811")
        with self.assertRaises(topology.SpecError) as e:
            topology.parse_hosts_text("root@lab-07 addr=fe80::1%eth0\n", "f")
        self.assertIn("in addr= is not an IPv4 or IPv6 address", e.exception.errors[0])

    def test_random_host_files(self):
        topology = topology_module()
        rng = random.Random(15)
        for _ in range(3000):
            lines = [" ".join(rng.choice(self.WORDS) for _ in range(rng.randrange(4)))
                     for _ in range(rng.randrange(1, 6))]
            text = "\n".join(lines)
            try:
                hosts = topology.parse_hosts_text(text, "f")
            except topology.SpecError as e:
                for message in e.errors:
                    self.assertRegex(message, r"^f(:[0-9]+)?: ", text)
                continue
            targets = [h.target for h in hosts]
            self.assertEqual(len(targets), len(set(targets)), text)
            for h in hosts:
                self.assertRegex(h.target, r"^(?:[A-Za-z0-9._-]+@)?[A-Za-z0-9][A-Za-z0-9._-]*$")
                self.assertTrue(1 <= h.line <= len(lines))
            n = rng.randrange(1, 12)
            try:
                where = topology.place_peers(list(range(1, n + 1)), hosts, "f")
            except topology.SpecError as e:
                self.assertIn(f"the spec has {n}", e.errors[0])
                self.assertTrue(all(h.count is not None for h in hosts))
                continue
            self.assertEqual(sorted(where), list(range(1, n + 1)))
            for i, h in enumerate(hosts):
                if h.count is not None:
                    self.assertLessEqual(list(where.values()).count(i), h.count, text)


if __name__ == "__main__":
    unittest.main()
