"""The browser test's set-up (pwcore.py) on machines it cannot use: no Node, a Node too old for
the pinned playwright-core, an npm that fails. Each skips with the whole reason, npm's own words
included; none fails. (Stand-in `node` and `npm` scripts on PATH play those machines.)"""

import io
import os
import unittest
from contextlib import redirect_stderr
from pathlib import Path
from tempfile import TemporaryDirectory
from unittest import mock

import pwcore


def tool(folder: Path, name: str, script: str) -> None:
    p = folder / name
    p.write_text("#!/bin/sh\n" + script + "\n")
    p.chmod(0o755)


class PwcoreTest(unittest.TestCase):
    def setUp(self):
        self.dir_ = TemporaryDirectory()
        self.addCleanup(self.dir_.cleanup)
        self.root = Path(self.dir_.name)
        self.bin = self.root / "bin"
        self.bin.mkdir()
        self.chromium = self.root / "chromium"
        self.chromium.write_text("")
        self.enterContext(mock.patch.dict(os.environ, {"PATH": str(self.bin)}))

    def install(self):
        err = io.StringIO()
        with redirect_stderr(err):
            mod, why = pwcore.playwright_core(self.root / "build", self.chromium)
        self.assertIsNone(mod)
        self.assertIn(why, err.getvalue())  # printed, whole
        return why

    def test_the_pin_runs_on_debian_12s_node_18(self):
        self.assertEqual(pwcore.PLAYWRIGHT_CORE, "1.61.1")
        self.assertEqual(pwcore.NODE_MIN, 18)

    def test_no_node_skips_and_says_how_to_get_one(self):
        self.assertIn("node not found (apt-get install npm", self.install())

    def test_a_node_too_old_skips_and_names_both_versions(self):
        tool(self.bin, "node", "echo v16.20.2")
        tool(self.bin, "npm", "exit 0")
        why = self.install()
        self.assertIn("is Node.js v16.20.2; playwright-core 1.61.1 needs Node.js >= 18", why)

    def test_an_npm_that_fails_skips_with_its_whole_output(self):
        tool(self.bin, "node", "echo v18.19.0")
        tool(self.bin, "npm", "echo 'npm notice a line on stdout'\n"
             "echo 'npm ERR! code ENOTFOUND' >&2\n"
             "echo 'npm ERR! a second line, and a third that is long " + "x" * 400 + "' >&2\n"
             "exit 1")
        why = self.install()
        self.assertIn("playwright-core@1.61.1` failed (exit 1) with Node.js v18.19.0", why)
        self.assertIn("npm notice a line on stdout", why)
        self.assertIn("npm ERR! code ENOTFOUND", why)
        self.assertIn("x" * 400 + "\n", why + "\n")  # not cut

    def test_no_chromium_skips(self):
        self.chromium.unlink()
        self.assertIn("not found (apt-get install chromium", self.install())


if __name__ == "__main__":
    unittest.main()
