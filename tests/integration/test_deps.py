"""scripts/demo installs exactly what building and running floodshare needs, no more, no less.

The runtime list (`scripts/deps --list --runtime`) is derived here from the built program
itself: for each shared library it links (its ELF NEEDED entries), the Debian package that holds
the library's link-time name (libz.so -> zlib1g-dev), libc's being build-essential's; plus CMake,
which builds it, and the two programs that run beside it: python3 (scripts/topology's
interpreter) and graphviz (`dot`, for `trace --svg`). A library added to the link but not to the
list, a package left in the list that nothing needs any more, or a test tool slipped into the
demo's list (chromium, clang, tshark), each fails this test."""

import re
import shutil
import subprocess
import unittest
from pathlib import Path

from fsnet import BIN, SRC

DEPS = SRC / "scripts" / "deps"
LIBDIRS = ("/usr/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu", "/usr/lib", "/lib")
# Runtimes a sanitizer build adds (scripts/test's ASan and TSan phases); the demo builds plain.
SANITIZER_RUNTIMES = re.compile(r"^lib(asan|ubsan|tsan|lsan)\.so")


def run(*args) -> str:
    r = subprocess.run(list(args), capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise AssertionError(f"{args}: {r.stderr}")
    return r.stdout


def package_of(path: str) -> str:
    """The Debian package that installed path (dpkg -S), e.g. 'zlib1g-dev'."""
    out = run("dpkg-query", "-S", path)
    return out.split(":")[0].strip()


def dev_package(soname: str) -> str:
    """The package of the link-time name of a library (libz.so.1 -> libz.so -> zlib1g-dev):
    what the compiler's -lz needs, so what a build needs."""
    linkname = re.sub(r"\.so\..*$", ".so", soname)
    for d in LIBDIRS:
        p = Path(d) / linkname
        if p.exists():
            try:
                return package_of(str(p))
            except AssertionError:
                continue  # e.g. the same file seen through the /lib -> /usr/lib link
    raise AssertionError(f"no package holds {linkname} (for {soname})")


def runtime_list() -> list[str]:
    return run(str(DEPS), "--list", "--runtime").split()


@unittest.skipUnless(shutil.which("dpkg-query") and shutil.which("readelf"),
                     "needs dpkg-query and readelf (a Debian machine with binutils)")
class DepsTest(unittest.TestCase):
    def test_the_demos_packages_are_what_the_built_program_needs(self):
        needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]",
                            run("readelf", "-d", str(BIN)))
        self.assertIn("libc.so.6", needed)
        libs = [n for n in needed if not SANITIZER_RUNTIMES.match(n)]
        want = set()
        for soname in libs:
            pkg = dev_package(soname)
            want.add("build-essential" if pkg == "libc6-dev" else pkg)
        # build-essential brings libc6-dev (libc, libm and pthreads are libc6's) and the compiler
        depends = run("dpkg-query", "-W", "-f=${Depends}", "build-essential")
        self.assertRegex(depends, r"\blibc6-dev\b")
        self.assertRegex(depends, r"\bgcc\b")
        want.add("cmake")  # CMakeLists.txt
        self.assertTrue((SRC / "scripts" / "topology").read_text().startswith(
            "#!/usr/bin/env python3\n"))
        want.add("python3")
        dot = shutil.which("dot")
        self.assertIsNotNone(dot, "graphviz is not installed: run scripts/deps")
        self.assertEqual(package_of(dot), "graphviz")
        want.add("graphviz")
        got = runtime_list()
        self.assertEqual(len(got), len(set(got)), got)
        self.assertEqual(set(got), want,
                         f"scripts/deps --runtime lists {sorted(got)}; the program links "
                         f"{libs}, which need {sorted(want)}")

    def test_the_full_list_adds_the_test_tools_to_the_runtime_list(self):
        full = run(str(DEPS), "--list").split()
        runtime = runtime_list()
        self.assertEqual(full[:len(runtime)], runtime)
        for tool in ("libcmocka-dev", "tmux", "chromium", "clang", "tshark"):
            self.assertIn(tool, full)
            self.assertNotIn(tool, runtime)

    def test_demo_installs_the_runtime_list_and_test_installs_everything(self):
        demo = (SRC / "scripts" / "demo").read_text()
        self.assertIn("scripts/deps --runtime\n", demo)
        self.assertIn("--target floodshare", demo)
        test = (SRC / "scripts" / "test").read_text()
        self.assertRegex(test, r"(?m)^scripts/deps$")
        r = subprocess.run([str(DEPS), "--bogus"], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 64)
        self.assertIn("usage: scripts/deps", r.stderr)


if __name__ == "__main__":
    unittest.main()
