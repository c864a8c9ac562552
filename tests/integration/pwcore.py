"""playwright-core for the browser tests: installed once with npm under the build folder.

It is pinned: `npm install playwright-core@1` took the newest 1.x, and from 1.62 on its engines
field asks for Node 20, so on Debian 12, whose npm brings Node 18, the browser test failed
instead of skipping. 1.61.1 is the last release that runs on Node 18 (`npm view
playwright-core@1.61.1 engines`: node >=18). A machine without node or npm, or with a Node
older than that, skips the browser test and says why, with npm's own words in full when the
install fails (no --silent)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

PLAYWRIGHT_CORE = "1.61.1"
NODE_MIN = 18  # what PLAYWRIGHT_CORE's engines field asks for


def node_major(node: str) -> tuple[int | None, str]:
    """The major version of `node --version` (v18.19.0 -> 18), and the text it printed."""
    try:
        r = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30)
    except OSError as e:
        return None, str(e)
    m = re.match(r"v(\d+)\.", r.stdout.strip())
    return (int(m[1]) if m else None), (r.stdout + r.stderr).strip()


def playwright_core(build_dir: Path, chromium: Path) -> tuple[Path | None, str]:
    """(the playwright-core folder, "") once it is installed under build_dir/web-e2e, or
    (None, why not): every reason in full, also printed to stderr, so a CI log shows it."""
    mod, why = _install(build_dir, chromium)
    if mod is None:
        print(f"browser test skipped: {why}", file=sys.stderr)
    return mod, why


def _install(build_dir: Path, chromium: Path) -> tuple[Path | None, str]:
    if not chromium.exists():
        return None, f"{chromium} not found (apt-get install chromium, or run scripts/deps)"
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node:
        return None, ("node not found (apt-get install npm brings Debian's Node.js 18, or run "
                      "scripts/deps)")
    major, said = node_major(node)
    if major is None:
        return None, f"{node} --version said {said!r}, not a version"
    if major < NODE_MIN:
        return None, (f"{node} is Node.js {said}; playwright-core {PLAYWRIGHT_CORE} needs "
                      f"Node.js >= {NODE_MIN}")
    if not npm:
        return None, f"npm not found beside {node} ({said}): apt-get install npm, or scripts/deps"
    folder = build_dir / "web-e2e"
    mod = folder / "node_modules" / "playwright-core"
    try:
        have = json.loads((mod / "package.json").read_text())["version"]
    except (OSError, ValueError, KeyError):
        have = None
    if have != PLAYWRIGHT_CORE:
        folder.mkdir(parents=True, exist_ok=True)
        cmd = [npm, "install", "--no-audit", "--no-fund", "--prefix", str(folder),
               f"playwright-core@{PLAYWRIGHT_CORE}"]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if r.returncode != 0 or not (mod / "package.json").exists():
            return None, (f"`{' '.join(cmd)}` failed (exit {r.returncode}) with Node.js "
                          f"{said}:\n{r.stdout.strip()}\n{r.stderr.strip()}")
    return mod, ""
