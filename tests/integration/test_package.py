"""The Debian package, tested in a fresh Debian 12 chroot (issue 15, "An install target and a
Debian package").

scripts/deb builds floodshare_VERSION_amd64.deb (cmake/package.cmake; its build folder is
FLOODSHARE_BIN's folder's deb/, so a rerun rebuilds only what changed); lintian must find
neither an error nor a warning in it. Then, in a fresh Debian 12 made by `debootstrap
--variant=minbase bookworm` (plus systemd, for systemd-analyze, and man-db, for man; the tree
is cached as a tarball under /var/cache/floodshare-test, so only the first run pays for
debootstrap, about 3 minutes), the commands of the README's "Install as a package" run as
written, from /root with the package in /root/build-deb:

- `apt install ./build-deb/floodshare_*_amd64.deb` fetches the libraries the package depends
  on from Debian and makes the floodshare user;
- `man floodshare` (MANPAGER=cat) and `floodshare --version` work;
- systemd cannot run in a chroot, so the unit is checked with `systemd-analyze verify
  floodshare@one.service` (with a one-peer /etc/floodshare/one.ini), which must pass without a
  word, and `systemd-analyze security --offline=true`, which must rate it 2.0 or better; and
  its start is played by hand, from the installed unit's own lines: the run and state folders
  made as systemd makes them, the file system read-only but for its ReadWritePaths= (what
  ProtectSystem=strict leaves writable), its Environment=, its User= and UMask=, no new
  privileges, then its ExecStart=, in a network namespace of its own with only lo (so the
  example's port 10811 is free); `floodshare --run /run/floodshare peer 1 ls` must then list
  the share, and bash completion must offer peer 1 and the share's item names;
- where this machine lets systemd-nspawn boot the chroot, the unit runs for real under
  systemd, sandbox and system call filter included: floodshare@one and floodshare@two find
  and fetch a file and a folder from each other, `modify` is refused by the read-only INI, and
  the share keeps openat2(RESOLVE_BENEATH); where it cannot boot, the test says so on stderr;
- `apt remove --purge floodshare` must leave nothing behind: no file or folder named
  floodshare anywhere in the chroot, no user or group, no dpkg record.

Needs root (debootstrap, chroot, namespaces): as another user it skips and says so. It installs
what it needs on this machine with apt-get: debootstrap, lintian, dpkg-dev, scdoc, iproute2,
systemd-container.
Network: apt and debootstrap reach deb.debian.org; the peer runs in a network namespace of its
own and reaches nothing.
"""

from __future__ import annotations

import configparser
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path

from fsnet import BIN, SRC

CACHE = Path("/var/cache/floodshare-test")
MIRROR = "http://deb.debian.org/debian"
DEBOOTSTRAP = ["--variant=minbase", "--include=systemd,man-db", "bookworm"]
TARBALL = CACHE / "bookworm-minbase-systemd-man-db.tar"
HOST_PACKAGES = ("debootstrap", "lintian", "dpkg-dev", "scdoc", "iproute2",
                 "systemd-container")
SECTION = "Install as a package"
# The README section's commands, in its order, as this test runs them ("sudo " aside: the
# chroot's commands run as root, where Debian has no sudo).
README_COMMANDS = [
    "scripts/deb",
    "sudo apt install ./build-deb/floodshare_*_amd64.deb",
    "sudo cp /usr/share/doc/floodshare/examples/one.ini /etc/floodshare/one.ini",
    "sudo systemctl enable --now floodshare@one",
    "sudo floodshare --run /run/floodshare peer 1 ls",
    "man floodshare",
    "sudo apt remove --purge floodshare",
]
ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "HOME": "/root",
       "DEBIAN_FRONTEND": "noninteractive", "MANPAGER": "cat", "TERM": "dumb"}


def run(args, *, timeout=600, check=True, **kw) -> subprocess.CompletedProcess:
    r = subprocess.run(args, capture_output=True, text=True, timeout=timeout, **kw)
    if check and r.returncode != 0:
        raise AssertionError(f"{args} exited {r.returncode}:\n{r.stdout}\n{r.stderr}")
    return r


def missing_packages(names) -> list[str]:
    out = []
    for p in names:
        r = run(["dpkg-query", "-W", "-f=${Status}", p], check=False)
        if "install ok installed" not in r.stdout:
            out.append(p)
    return out


def readme_section_commands() -> list[str]:
    text = (SRC / "README.md").read_text()
    part = text.split(f"\n## {SECTION}\n", 1)[1].split("\n## ", 1)[0]
    cmds = []
    for block in re.findall(r"^```sh\n(.*?)^```", part, re.M | re.S):
        for line in block.splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                cmds.append(re.split(r"\s{2,}|\s#", line.strip())[0].strip())
    return cmds


def sweep_leftovers(older_than_s: float = 3600) -> None:
    """Removes the trees a killed run left (its mounts went with its mount namespace): chroots
    in /var/tmp and half-made debootstraps in the cache, an hour old or more."""
    now = time.time()
    for d in [*Path("/var/tmp").glob("fs-chroot-*"), *CACHE.glob("debootstrap-*")]:
        try:
            if now - d.stat().st_mtime > older_than_s:
                shutil.rmtree(d, ignore_errors=True)
        except FileNotFoundError:
            pass


def chroot_tree() -> Path:
    """A fresh Debian 12 tree in a new temporary folder, from the cached tarball (made by
    debootstrap the first time: under a temporary name, renamed when whole)."""
    sweep_leftovers()
    if not TARBALL.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        build = Path(tempfile.mkdtemp(prefix="debootstrap-", dir=CACHE))
        try:
            run(["debootstrap", *DEBOOTSTRAP, str(build / "root"), MIRROR], timeout=900)
            part = TARBALL.with_suffix(".tar.part")
            run(["tar", "-C", str(build / "root"), "--numeric-owner", "-cf", str(part), "."])
            part.rename(TARBALL)
        finally:
            shutil.rmtree(build, ignore_errors=True)
    root = Path(tempfile.mkdtemp(prefix="fs-chroot-", dir="/var/tmp"))
    run(["tar", "-C", str(root), "--numeric-owner", "-xf", str(TARBALL)])
    shutil.copy("/etc/resolv.conf", root / "etc" / "resolv.conf")
    # `apt install` as the README writes it, without asking.
    (root / "etc/apt/apt.conf.d/90assume-yes").write_text('APT::Get::Assume-Yes "true";\n')
    return root


def in_chroot(root: Path, script: str, *, isolated: bool = False, sandbox: str = "",
              timeout: float = 300) -> subprocess.CompletedProcess:
    """Runs the sh script (set -e) in the chroot, in a mount and a PID namespace of its own:
    its /proc, its mounts and its processes go when it ends. isolated: a network namespace of its own too, lo only.
    sandbox: sh run on the host side first, with $R the chroot (mounts, as a unit's)."""
    outer = "set -e; R=$0\n" + sandbox + '\nmount -t proc proc "$R/proc"\n'
    if isolated:
        outer += "ip link set lo up\n"
    outer += 'exec chroot "$R" /bin/sh -ec "$1"'
    # A PID namespace too: when its first process ends, or unshare is killed with this test,
    # the kernel ends every process left in it (a peer included).
    args = ["unshare", "--mount", "--propagation", "private", "--pid", "--fork",
            "--kill-child"] + (["--net"] if isolated else [])
    return run(args + ["sh", "-c", outer, str(root), script], env=ENV, timeout=timeout,
               check=False)


def unit_service(path: Path, instance: str) -> dict[str, list[str]]:
    """The [Service] keys of a unit file, %i replaced, each with all its values in order."""
    keys: dict[str, list[str]] = {}
    section = None
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            section = line
            continue
        if section == "[Service]":
            k, v = line.split("=", 1)
            keys.setdefault(k, []).append(v.replace("%i", instance))
    return keys


class DebCheckTest(unittest.TestCase):
    """cmake/deb_check.cmake, which cpack runs before it packages: a package without its man
    pages, or built for another prefix than /usr, is refused with what to do."""

    def check(self, prefix: str, pages: list[str]) -> subprocess.CompletedProcess:
        with tempfile.TemporaryDirectory() as d:
            for p in pages:
                f = Path(d) / "usr/share/man" / p
                f.parent.mkdir(parents=True, exist_ok=True)
                f.write_bytes(b"")
            return run(["cmake", f"-DCPACK_PACKAGING_INSTALL_PREFIX={prefix}",
                        f"-DCPACK_TEMPORARY_INSTALL_DIRECTORY={d}", "-P",
                        str(SRC / "cmake" / "deb_check.cmake")], check=False)

    @unittest.skipUnless(shutil.which("cmake"), "needs cmake")
    def test_a_package_without_man_pages_or_outside_usr_is_refused(self):
        pages = ["man1/floodshare.1.gz", "man5/floodshare.ini.5.gz"]
        self.assertEqual(self.check("/usr", pages).returncode, 0)
        r = self.check("/usr", pages[:1])
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("apt-get install scdoc", " ".join(r.stderr.split()))
        r = self.check("/usr/local", pages)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("-DCMAKE_INSTALL_PREFIX=/usr", " ".join(r.stderr.split()))


class ReadmeSectionTest(unittest.TestCase):
    def test_the_readme_shows_the_commands_this_test_runs(self):
        self.assertEqual(readme_section_commands(), README_COMMANDS)


@unittest.skipUnless(os.geteuid() == 0, "needs root: debootstrap, chroot and namespaces "
                                        "(run as root, or `sudo ctest -R test_package`)")
class PackageTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        need = missing_packages(HOST_PACKAGES)
        if need:
            run(["apt-get", "update", "-qq"], env={**os.environ, **ENV})
            run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *need],
                env={**os.environ, **ENV})
        out = run([str(SRC / "scripts" / "deb"), str(BIN.parent / "deb")]).stdout
        cls.deb = Path(out.split()[-1])
        cls.version = run(["dpkg-deb", "-f", str(cls.deb), "Version"]).stdout.strip()

    def test_lintian_finds_no_error_and_no_warning(self):
        r = run(["lintian", "--fail-on", "error,warning", str(self.deb)], check=False)
        tags = [l for l in r.stdout.splitlines() if re.match(r"[EW]: ", l)]
        self.assertEqual((r.returncode, tags), (0, []), r.stdout + r.stderr)

    def test_the_deb_has_its_name_and_its_dependencies(self):
        self.assertEqual(self.deb.name, f"floodshare_{self.version}_amd64.deb")
        self.assertEqual(run([str(BIN), "--version"]).stdout.split()[1], self.version)
        depends = run(["dpkg-deb", "-f", str(self.deb), "Depends"]).stdout
        for lib in ("libc6", "libiniparser1", "libminizip1", "libssl3", "zlib1g", "libedit2",
                    "adduser"):
            self.assertRegex(depends, rf"(^|, ){lib}\b", depends)

    def test_install_use_verify_and_purge_in_a_fresh_debian_12(self):
        root = chroot_tree()
        self.addCleanup(shutil.rmtree, root, True)
        (root / "root/build-deb").mkdir()
        shutil.copy(self.deb, root / "root/build-deb" / self.deb.name)
        chroot_cmd = [c.removeprefix("sudo ") for c in README_COMMANDS[1:]]
        install, copy_ini, enable, ls_cmd, man_cmd, purge = chroot_cmd

        r = in_chroot(root, f"cd /root; apt-get update -qq; {install}")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        r = in_chroot(root, "floodshare --version; " + man_cmd + "; man 5 floodshare.ini; "
                      "getent passwd floodshare")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(f"floodshare {self.version} (protocol FLOOD/1)", r.stdout)
        self.assertIn("floodshare - a query-flooding peer-to-peer file sharer", r.stdout)
        self.assertIn("floodshare.ini - the configuration file of a floodshare peer", r.stdout)
        self.assertRegex(r.stdout, r"(?m)^floodshare:x:\d+:\d+:.*:/var/lib/floodshare:")

        # The unit, with the example INI as /etc/floodshare/one.ini: verify, then security.
        self.assertEqual(enable, "systemctl enable --now floodshare@one")
        r = in_chroot(root, f"{copy_ini}; systemd-analyze verify floodshare@one.service; "
                      "systemd-analyze security --offline=true --threshold=20 "
                      "floodshare@one.service >/dev/null; "
                      # --now starts it, which needs a running systemd: enable only here
                      "systemctl enable floodshare@one")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        # verify and security exit 0 even with warnings (an unknown key is only "ignoring"):
        # not a word may come but enable's own.
        self.assertEqual(re.sub(r"Created symlink .*\n?", "", r.stderr), "",
                         "systemd-analyze complained")
        self.assertTrue((root / "etc/systemd/system/multi-user.target.wants/"
                         "floodshare@one.service").is_symlink())
        self.start_as_the_unit_would_and_drive(root, ls_cmd)
        self.boot_and_fetch(root)

        r = in_chroot(root, f"cd /root; {purge}; dpkg -s floodshare || echo NOT-INSTALLED; "
                      "getent passwd floodshare || echo NO-USER; "
                      "getent group floodshare || echo NO-GROUP; "
                      # /var/cache/man: the pages `man` formatted, man-db's cache, not the
                      # package's (man-db's daily job expires them)
                      "find / -xdev -iname '*floodshare*' -not -path '/root/build-deb*' "
                      "-not -path '/var/cache/man/*' -print")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        left = [l for l in r.stdout.splitlines() if l.startswith("/")]
        self.assertEqual(left, [], "left behind by the purge")
        for word in ("NOT-INSTALLED", "NO-USER", "NO-GROUP"):
            self.assertIn(word, r.stdout)

    def start_as_the_unit_would_and_drive(self, root: Path, ls_cmd: str):
        """What systemd does to start floodshare@one, from the installed unit's own lines."""
        svc = unit_service(root / "lib/systemd/system/floodshare@.service", "one")
        one = lambda k: svc[k][-1]  # noqa: E731 - the value that counts: the last
        user, group = one("User"), one("Group")
        # The chroot's numbers for them: the sandbox below is made from the host's side.
        uid = gid = None
        for line in (root / "etc/passwd").read_text().splitlines():
            f = line.split(":")
            if f[0] == user:
                uid = f[2]
        for line in (root / "etc/group").read_text().splitlines():
            f = line.split(":")
            if f[0] == group:
                gid = f[2]
        self.assertIsNotNone(uid, f"no user {user} in the chroot")
        self.assertIsNotNone(gid, f"no group {group} in the chroot")
        run_dir = "/run/" + one("RuntimeDirectory")
        state = "/var/lib/" + one("StateDirectory")
        self.assertEqual(one("ProtectSystem"), "strict")
        self.assertEqual(one("NoNewPrivileges"), "yes")
        self.assertEqual(one("Restart"), "on-failure")
        self.assertEqual(one("ExecStart"), "/usr/bin/floodshare serve /etc/floodshare/one.ini")
        rw = " ".join(svc["ReadWritePaths"]).split()
        self.assertEqual(sorted(rw), sorted([state, run_dir]), "ReadWritePaths= beyond the "
                         "share and the run folder")
        ini = configparser.ConfigParser(inline_comment_prefixes=(";",))
        ini.read_string((root / "etc/floodshare/one.ini").read_text())
        self.assertEqual(ini["peer"]["share_dir"], state)
        env = " ".join(svc.get("Environment", []))
        # ProtectSystem=strict + ReadWritePaths=: the whole tree read-only, those writable;
        # PrivateTmp=: a /tmp of its own.
        sandbox = 'mount --bind "$R" "$R"; mount -o remount,bind,ro "$R"\n'
        sandbox += 'mount -t tmpfs tmpfs "$R/tmp"\n'
        for p in rw:
            sandbox += f'mount --bind "$R{p}" "$R{p}"; mount -o remount,bind,rw "$R{p}"\n'
        # systemd makes these before the sandbox, as root, for the unit's user.
        made = (f"install -d -o {uid} -g {gid} -m {one('RuntimeDirectoryMode')} "
                f"{root}{run_dir}; install -d -m 0755 {root}/var/lib/floodshare; "
                f"install -d -o {uid} -g {gid} -m {one('StateDirectoryMode')} "
                f"{root}{state}; echo hello > '{root}{state}/hello world.txt'; "
                f"chown {uid}:{gid} '{root}{state}/hello world.txt'\n")
        script = f"""
umask {one('UMask')}
setpriv --reuid {user} --regid {group} --init-groups --no-new-privs \
    env -i PATH=/usr/bin:/bin {env} {one('ExecStart')} 2>/tmp/peer.log &
peer=$!
i=0
until [ -S {run_dir}/peer-1.sock ]; do
    i=$((i + 1))
    if [ $i -gt 100 ] || ! kill -0 $peer 2>/dev/null; then
        echo "the peer did not start:"; cat /tmp/peer.log; exit 1
    fi
    sleep 0.1
done
echo LS; {ls_cmd}
compl() {{ bash -c '. /usr/share/bash-completion/completions/floodshare
COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _floodshare; printf "%s\\n" "${{COMPREPLY[@]}}"' \
    _ "$@" 2>/dev/null; }}
echo IDS; compl floodshare --run {run_dir} peer ''
echo ITEMS; compl floodshare --run {run_dir} peer 1 get h
echo CMDS; compl floodshare --run {run_dir} peer 1 tr
kill $peer; wait $peer || true
echo END
"""
        r = in_chroot(root, script, isolated=True, sandbox=made + sandbox, timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        out = r.stdout
        ls, rest = out.split("\nIDS\n")
        self.assertRegex(ls, rf"{state}: 1 items?\b")
        self.assertRegex(ls, r"hello world\.txt\s+file\s+6\b")
        ids, rest = rest.split("ITEMS\n")
        items, rest = rest.split("CMDS\n")
        cmds, _ = rest.split("END\n")
        self.assertEqual(ids.split(), ["1"])
        self.assertEqual(items.splitlines(), ["hello world.txt"])
        self.assertEqual(cmds.split(), ["transfers"])

    def boot_and_fetch(self, root: Path):
        """Where this machine lets systemd-nspawn boot the chroot (systemd as its PID 1, a
        network of its own with only lo), the unit runs for real, sandbox and system call
        filter included: floodshare@one and floodshare@two, neighbours, and two gets between
        them. Where it cannot boot, this part says why on stderr and the checks above stand."""
        etc = root / "etc/floodshare"
        one = (etc / "one.ini").read_text()
        (etc / "one.ini").write_text(re.sub(r"(?m)^peers =.*$", "peers = 127.0.0.1:10812", one))
        two = one.replace("id = 1", "id = 2").replace("port = 10811", "port = 10812")
        two = two.replace("/var/lib/floodshare/one", "/var/lib/floodshare/two")
        (etc / "two.ini").write_text(re.sub(r"(?m)^peers =.*$", "peers = 127.0.0.1:10811", two))
        r = in_chroot(root, "systemctl enable floodshare@two; mkdir /var/lib/floodshare/one/dir; "
                      "echo x > /var/lib/floodshare/one/dir/a.txt; "
                      "head -c 3000000 /dev/urandom > /var/lib/floodshare/one/big.bin; "
                      "chown -R floodshare:floodshare /var/lib/floodshare/one")
        self.assertEqual(r.returncode, 0, r.stderr)
        log = open(root.parent / f"{root.name}.nspawn.log", "w+")
        self.addCleanup(os.unlink, log.name)
        self.addCleanup(log.close)
        box = subprocess.Popen(["systemd-nspawn", "-D", str(root), "--register=no",
                                "--keep-unit", "--private-network", "-b"],
                               stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
        try:
            init = self.container_init(box)
            if init is None:
                log.seek(0)
                print(f"\ntest_package: systemd-nspawn could not boot the chroot here, so the "
                      f"unit was not run under systemd:\n{log.read()[-1500:]}",
                      file=sys.stderr)
                return
            inside = lambda cmd: run(["nsenter", "-t", str(init), "-a", "sh", "-c", cmd],  # noqa
                                     check=False, timeout=120)
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                up = inside("floodshare --run /run/floodshare peers")
                if up.stdout.count(" up ") == 2:
                    break
                time.sleep(0.5)
            state = inside("systemctl status --no-pager floodshare@one floodshare@two; "
                           "journalctl --no-pager -u floodshare@one -u floodshare@two")
            self.assertEqual(up.stdout.count(" up "), 2, up.stdout + state.stdout)
            for name in ("big.bin", "dir"):
                g = inside(f"floodshare --run /run/floodshare peer 2 get {name}")
                self.assertEqual(g.returncode, 0, g.stdout + g.stderr + state.stdout)
                self.assertIn("verified", g.stdout)
            sums = inside("md5sum < /var/lib/floodshare/one/big.bin; "
                          "md5sum < /var/lib/floodshare/two/big.bin; "
                          "cat /var/lib/floodshare/two/dir/a.txt")
            a, b, x = sums.stdout.splitlines()
            self.assertEqual((a, x), (b, "x"))
            # ProtectSystem=strict: the INI cannot be saved, so modify changes nothing.
            m = inside("floodshare --run /run/floodshare peer 1 modify ttl 3")
            self.assertEqual(m.returncode, 78, m.stdout + m.stderr)
            self.assertIn("Read-only file system", m.stderr)
            # The sandbox leaves the share its first defence: openat2(RESOLVE_BENEATH).
            j = inside("journalctl --no-pager -u floodshare@one -u floodshare@two")
            self.assertIn("opened with openat2(RESOLVE_BENEATH", j.stdout)
            self.assertNotIn("(no openat2)", j.stdout)
            inside("systemctl poweroff")
            box.wait(timeout=60)
        finally:
            if box.poll() is None:
                os.killpg(box.pid, signal.SIGKILL)
                box.wait()

    @staticmethod
    def container_init(box: subprocess.Popen, timeout: float = 60):
        """The pid, on this side, of the container's systemd once it has started its units
        (systemd-nspawn's child), or None when the container ended or did not get that far."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and box.poll() is None:
            try:
                kids = Path(f"/proc/{box.pid}/task/{box.pid}/children").read_text().split()
            except FileNotFoundError:
                kids = []
            if kids:
                try:
                    r = run(["nsenter", "-t", kids[0], "-a", "systemctl", "is-system-running",
                             "--wait"], check=False, timeout=max(1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    return None
                if r.stdout.strip() in ("running", "degraded"):
                    return int(kids[0])
            time.sleep(0.5)
        return None
