"""fsbench - what bench/scale, bench/stall and bench/slowreaders share.

They drive only floodshare's stable interfaces: `scripts/topology up/down`, the CLI
(`floodshare --run DIR peer N search|get|stats|events ... --json`) and /proc. Every result file
(bench/scale.json, bench/stall.json, bench/slowreaders.json) keeps one entry per `--label`
(`before` = the code before the peer engine of issue 10, `after` = with it), and every run
rewrites bench/ENGINE.md from all three files, so the labels stand side by side, and the engine
section of bench/RESULTS.md. It also holds how RESULTS.md is shared between tools (each replaces
only its own marked section: replace_section), which bench/run uses too.
Python 3.11 standard library only; Linux only (/proc).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections import deque
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
TOPOLOGY = REPO / "scripts" / "topology"
ENGINE_MD = BENCH / "ENGINE.md"
RESULT_FILES = {"scale": BENCH / "scale.json", "stall": BENCH / "stall.json",
                "slowreaders": BENCH / "slowreaders.json"}
TICK = os.sysconf("SC_CLK_TCK")

# RESULTS.md is written by several tools, each between its own markers (see "sections of
# RESULTS.md" below). In the order they appear in the file: name -> who writes it.
SECTIONS = {
    "transfers": "bench/run, from results.json",
    "chunk-size": None,  # written by hand: no tool writes it, every tool keeps it
    "pieces": "bench/pieces, from pieces.json",
    "tls": None,  # written by hand from `bench/run --tls`: every tool keeps it
    "engine": "bench/scale, bench/stall and bench/slowreaders, from scale.json, stall.json "
              "and slowreaders.json",
    "swarm": "bench/swarm, from swarm.json",
    "swarm-notes": None,  # written by hand: what the swarm run shows and why; every tool keeps it
    "send": "bench/send, from send.json",
    "sync": "bench/sync, from sync.json",
}
# The engine section's markers before the sections had names; still read, never written.
LEGACY_MARKERS = {
    "<!-- engine benchmarks: written by bench/scale, bench/stall, bench/slowreaders -->":
        ("begin", "engine"),
    "<!-- end of the engine benchmarks -->": ("end", "engine"),
}


class BenchError(Exception):
    """Something went wrong that makes the rest of the run meaningless."""


class Interrupted(Exception):
    """SIGTERM or SIGHUP: handled like Ctrl-C, so the cleanup runs."""


def on_signals() -> None:
    def handler(signum, _frame):
        raise Interrupted(signal.Signals(signum).name)
    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGHUP, handler)


def log(tag: str, message: str) -> None:
    print(f"[{tag} {time.strftime('%H:%M:%S')}] {message}", flush=True)


def raise_fd_limit() -> int:
    """Peers inherit our RLIMIT_NOFILE; a thousand of them and their links need the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def raise_inotify_instances(peers: int) -> int:
    """Each peer watches its share with one inotify instance; Debian allows 128 per user. Past
    that a peer falls back to rescanning every 2 s, which is CPU an idle peer must not use, so
    as root we raise the limit for the run (and say so); otherwise we only report it."""
    path = Path("/proc/sys/fs/inotify/max_user_instances")
    try:
        now = int(path.read_text())
        want = peers + 256
        if now < want and os.geteuid() == 0:
            path.write_text(str(want))
            log("scale", f"fs.inotify.max_user_instances {now} -> {want} (one per peer)")
            return want
        return now
    except OSError:
        return -1


def stats_of(values: list[float]) -> dict | None:
    """median, min, max and n of a list, or None if it is empty."""
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "n": len(values)}


# --- /proc --------------------------------------------------------------------------------------


def proc_alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] not in "ZX"
    except (OSError, IndexError):
        return False


def uss_kib(pid: int) -> int | None:
    """Private memory (USS): Private_Clean + Private_Dirty from smaps_rollup. Pages shared with
    another process (libc, the binary's text) do not count."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return None
    total = 0
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key in ("Private_Clean", "Private_Dirty"):
            total += int(rest.split()[0])
    return total


def status_field(pid: int, key: str) -> int | None:
    """An integer field of /proc/PID/status (VmRSS in KiB, Threads, ...)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def cpu_ticks(pid: int) -> int | None:
    """utime + stime of the whole process (all threads), in clock ticks."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # fields 14 and 15 of stat(5)
    except (OSError, ValueError, IndexError):
        return None


def fd_count(pid: int) -> int | None:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def start_time_s(pid: int) -> float | None:
    """When the process started, in seconds since the epoch (stat field 22 + btime)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        btime = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                     if line.startswith("btime "))
        return btime + int(fields[19]) / TICK
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def machine_facts() -> dict:
    mem = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("MemTotal", "MemAvailable"):
            mem[key] = int(rest.split()[0])
    try:
        load = Path("/proc/loadavg").read_text().split()[:3]
    except OSError:
        load = None
    return {"cpus": os.cpu_count(), "mem_total_kib": mem.get("MemTotal"),
            "mem_available_kib": mem.get("MemAvailable"), "loadavg_at_start": load,
            "kernel": platform.release(), "python": platform.python_version(),
            "pid_max": int(Path("/proc/sys/kernel/pid_max").read_text()),
            "threads_max": int(Path("/proc/sys/kernel/threads-max").read_text()),
            "nofile": list(resource.getrlimit(resource.RLIMIT_NOFILE))}


def load_now() -> list[str] | None:
    try:
        return Path("/proc/loadavg").read_text().split()[:3]
    except OSError:
        return None


# --- the binary and the network -----------------------------------------------------------------


def git_commit(where: Path = REPO) -> str | None:
    """`git describe --always --dirty` of the work tree holding `where` (the default label's
    commit; for the binary, the tree it was built in, which may differ from this script's)."""
    try:
        return subprocess.run(["git", "-C", str(where), "describe", "--always", "--dirty"],
                              capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def copy_binary(given: str, workdir: Path) -> tuple[str, dict]:
    """A private copy of the binary under test, so that a rebuild during the run cannot mix two
    builds; returned with its original path, mtime and SHA-256."""
    src = Path(given).absolute()
    if not (src.is_file() and os.access(src, os.X_OK)):
        raise BenchError(f"--bin {given}: not an executable file (build it: scripts/build build)")
    dst = workdir / "floodshare"
    shutil.copy2(src, dst)
    digest = hashlib.sha256(dst.read_bytes()).hexdigest()
    mtime = datetime.datetime.fromtimestamp(src.stat().st_mtime).isoformat(timespec="seconds")
    return str(dst), {"path": str(src), "mtime": mtime, "sha256": digest,
                      "repo_commit": git_commit(src.parent)}


class Net:
    """A topology started with scripts/topology in `run`, and the CLI against it."""

    def __init__(self, binary: str, run: Path, tag: str):
        self.binary, self.run, self.tag = binary, run, tag
        self.info: dict = {}
        self.up_done = False

    def up(self, spec: str, *extra: str, timeout: float = 600) -> float:
        """`scripts/topology up SPEC`; returns its wall time. Raises BenchError with its output
        if it fails (it then stops what it started itself)."""
        argv = [sys.executable, str(TOPOLOGY), "up", spec, "--run", str(self.run),
                "--bin", self.binary, *extra]
        t0 = time.monotonic()
        self.up_done = True  # even a failed `up` may leave pid files for `down`
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        wall = time.monotonic() - t0
        if proc.returncode != 0:
            raise BenchError(f"scripts/topology up {spec} failed (exit {proc.returncode}):\n"
                             + (proc.stderr or proc.stdout)[-4000:])
        self.info = json.loads((self.run / "topology.json").read_text())
        return wall

    def down(self) -> None:
        """Stop exactly the peers `up` started (by their pid files; `down` checks each pid's
        command line before it signals it)."""
        if not self.up_done:
            return
        subprocess.run([sys.executable, str(TOPOLOGY), "down", "--run", str(self.run)],
                       capture_output=True, text=True, timeout=600)
        self.up_done = False

    @property
    def pids(self) -> dict[int, int]:
        return {p["id"]: p["pid"] for p in self.info["peers"]}

    @property
    def addresses(self) -> dict[int, str]:
        return {p["id"]: p["address"] for p in self.info["peers"]}

    @property
    def adjacency(self) -> dict[int, list[int]]:
        return {p["id"]: p["neighbours"] for p in self.info["peers"]}

    def cli(self, peer: int, *args: str, timeout: float = 120) -> tuple[int, str, str, float]:
        """`floodshare --run DIR peer N ARGS...` -> (exit code, stdout, stderr, wall seconds)."""
        argv = [self.binary, "--run", str(self.run), "peer", str(peer), *args]
        t0 = time.monotonic()
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
        return proc.returncode, proc.stdout, proc.stderr, time.monotonic() - t0

    @staticmethod
    def last_doc(stdout: str) -> dict | None:
        """The last stdout line that parses as a JSON object (progress events come first)."""
        for line in reversed(stdout.splitlines()):
            line = line.strip()
            if line.startswith("{"):
                try:
                    return json.loads(line)
                except json.JSONDecodeError:
                    continue
        return None

    def stats(self, peer: int) -> dict:
        rc, out, err, _ = self.cli(peer, "stats", "--json", timeout=30)
        doc = self.last_doc(out)
        if rc != 0 or doc is None:
            raise BenchError(f"peer {peer} stats --json failed (exit {rc}): {err.strip()}")
        return doc

    def events(self, peer: int, qid: str | None = None) -> list[dict]:
        args = ["events", "--json"] + ([qid] if qid else [])
        rc, out, err, _ = self.cli(peer, *args, timeout=30)
        doc = self.last_doc(out)
        if rc != 0 or doc is None:
            raise BenchError(f"peer {peer} events --json failed (exit {rc}): {err.strip()}")
        return doc.get("events", [])

    def search(self, peer: int, name: str) -> dict:
        """A `search --json` from `peer`, with its wall time and the latency of its first hit
        from the origin's own trace (query_started -> first found_received, both ts_us)."""
        rc, out, err, wall = self.cli(peer, "search", name, "--json", timeout=120)
        doc = self.last_doc(out) or {}
        qid = doc.get("query_id")
        first_hit_ms = None
        if qid:
            evs = self.events(peer, qid)
            started = [e["ts_us"] for e in evs if e["type"] == "query_started"]
            found = [e["ts_us"] for e in evs if e["type"] == "found_received"]
            if started and found:
                first_hit_ms = (min(found) - min(started)) / 1000
        return {"rc": rc, "wall_s": wall, "qid": qid, "hits": len(doc.get("hits") or []),
                "first_hit_ms": first_hit_ms, "error": None if doc else err.strip()[-300:]}


def bfs(adj: dict[int, list[int]], start: int) -> dict[int, int]:
    hops = {start: 0}
    queue = deque([start])
    while queue:
        here = queue.popleft()
        for there in adj[here]:
            if there not in hops:
                hops[there] = hops[here] + 1
                queue.append(there)
    return hops


def diameter(adj: dict[int, list[int]]) -> int:
    return max(max(bfs(adj, p).values()) for p in adj)


# --- result files and ENGINE.md -----------------------------------------------------------------


def save_result(kind: str, label: str, result: dict, out_dir: Path) -> Path:
    """Store `result` under `label` in the kind's JSON file (other labels are kept), then
    rewrite ENGINE.md from all result files in `out_dir`."""
    path = out_dir / RESULT_FILES[kind].name
    data = {"runs": {}}
    if path.exists():
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise BenchError(f"{path} is not valid JSON ({e}); move it aside") from None
    data.setdefault("runs", {})[label] = result
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    os.replace(tmp, path)
    write_engine_md(out_dir)
    return path


def load_runs(out_dir: Path, kind: str) -> dict:
    path = out_dir / RESULT_FILES[kind].name
    try:
        return json.loads(path.read_text()).get("runs", {})
    except (OSError, json.JSONDecodeError):
        return {}


def fmt_spread(st: dict | None, scale: float = 1.0, spec: str = ".1f") -> str:
    if not st:
        return "-"
    med, lo, hi = (st[k] * scale for k in ("median", "min", "max"))
    return f"{med:{spec}} ({lo:{spec}}–{hi:{spec}})"


def dig(doc: dict, path: str):
    for part in path.split("."):
        if not isinstance(doc, dict) or part not in doc:
            return None
        doc = doc[part]
    return doc


def table(runs: dict, rows: list[tuple[str, str, callable]]) -> list[str]:
    """A markdown table: one row per (what, target, render(run) -> str), one column per label."""
    labels = list(runs)
    lines = ["| | target | " + " | ".join(labels) + " |",
             "|---|---|" + "---|" * len(labels)]
    for what, target, render in rows:
        cells = []
        for label in labels:
            try:
                cells.append(render(runs[label]))
            except (KeyError, TypeError, ValueError, ZeroDivisionError):
                cells.append("-")
        lines.append(f"| {what} | {target} | " + " | ".join(cells) + " |")
    return lines


def slow_gets(variant: dict) -> int:
    """bench/stall: the gets with S stopped that failed or took longer than the median with S
    running plus 50 ms (issue 10: "the added latency is within 50 ms, over 20 searches")."""
    bound = variant["running"]["wall_ms"]["median"] + 50
    return sum(1 for r in variant["stopped"]["rows"] if not r["ok"] or r["wall_ms"] > bound)


def mib(st, key="kib") -> str:
    return fmt_spread(st, 1 / 1024, ".2f")


def run_header(runs: dict) -> list[str]:
    out = []
    for label, run in runs.items():
        b = run.get("binary", {})
        m = run.get("machine", {})
        out.append(f"- **{label}**: {run.get('when', '?')}, binary {b.get('path')} "
                   f"(built {b.get('mtime')}; its work tree was at {b.get('repo_commit')} "
                   f"during the run; "
                   f"sha256 {str(b.get('sha256'))[:12]}…), "
                   f"{m.get('cpus')} CPUs, load {run.get('load_before') or m.get('loadavg_at_start')}"
                   f"; command: `{run.get('command')}`")
        for note in run.get("notes", []):
            out.append(f"  - {note}")
    return out


def write_engine_md(out_dir: Path) -> None:
    """ENGINE.md: the three engine benchmarks, every stored label side by side."""
    md = ["# The peer engine's benchmarks: before and after (issue 10)", "",
          "Written by `bench/scale`, `bench/stall` and `bench/slowreaders` (each rewrites this "
          "file from `scale.json`, `stall.json` and `slowreaders.json`; see README.md). Each "
          "column is one `--label`: `before` is the code before the new engine. Figures are "
          "**median (min–max)**. These machines are shared 2-core VMs; the notes under each run "
          "say what else was running.", ""]

    scale = load_runs(out_dir, "scale")
    md += ["## 1000 peers on one machine (`bench/scale`)", ""]
    if scale:
        md += run_header(scale) + [""]
        md += table(scale, [
            ("peers started", "1000", lambda r: f"{r['n_started']} of {r['n_wanted']}"),
            ("graph", "", lambda r: f"{r['spec']}, {r['edges']} links, diameter {r['diameter']}, ttl {r['ttl']}"),
            ("`scripts/topology up` wall time", "< 60 s", lambda r: f"{r['start']['up_wall_s']:.1f} s"),
            ("first process start → last peer ready", "", lambda r: f"{r['start']['spawn_to_last_ready_s']:.1f} s"),
            ("idle USS per peer, MiB", "≤ 2", lambda r: mib(r["idle"]["uss_kib"])),
            ("idle RSS per peer, MiB", "", lambda r: mib(r["idle"]["rss_kib"])),
            ("threads per peer", "≤ 6", lambda r: fmt_spread(r["idle"]["threads"], 1, ".0f")),
            ("descriptors per peer", "", lambda r: fmt_spread(r["idle"]["fds"], 1, ".0f")),
            ("idle CPU (before any flood), all peers, ticks in 10 s", "0", lambda r: f"{r['idle_cpu']['total_ticks']} ({r['idle_cpu']['peers_busy']} peers > 0)"),
            ("flood: peers reached", "all", lambda r: f"{r['flood']['reached']} of {r['n_started']}"),
            ("flood: time until the last peer had it", "< 1 s", lambda r: f"{r['flood']['last_received_ms']:.0f} ms"),
            ("flood: median peer had it after", "", lambda r: f"{r['flood']['received_ms']['median']:.0f} ms"),
            ("flood: GETs sent (stats) / 2E", "≤ 2E", lambda r: f"{r['flood']['gets_sent_stats']} / {2 * r['edges']} = {r['flood']['gets_sent_stats'] / (2 * r['edges']):.2f}"),
            ("flood: GETs sent (trace `forwarded`)", "", lambda r: str(r['flood']['gets_sent_trace'])),
            ("floods run (sequential `search`)", "100", lambda r: f"{r['floods']['n']} in {r['floods']['wall_s']:.0f} s"),
            ("USS per peer after the floods, MiB", "≤ 4", lambda r: mib(r["after_floods"]["uss_kib"])),
            ("RSS per peer after the floods, MiB", "", lambda r: mib(r["after_floods"]["rss_kib"])),
            ("threads per peer after the floods", "", lambda r: fmt_spread(r["after_floods"]["threads"], 1, ".0f")),
            ("idle CPU after the floods, ticks in 10 s", "0", lambda r: f"{r['idle_cpu_after_floods']['total_ticks']} ({r['idle_cpu_after_floods']['peers_busy']} peers > 0)"),
        ])
    else:
        md.append("(not run yet)")
    md.append("")

    stall = load_runs(out_dir, "stall")
    md += ["## A stalled neighbour (`bench/stall`)", ""]
    if stall:
        md += run_header(stall) + [""]
        rows = []
        for variant in ("short", "default"):
            def v(r, variant=variant):
                return r["variants"][variant]
            rows += [
                (f"**io_timeout_ms {variant}**", "", lambda r, v=v: f"{v(r)['io_timeout_ms']} ms"),
                ("`get` of a small file, neighbour running, ms", "", lambda r, v=v: fmt_spread(v(r)["running"]["wall_ms"])),
                ("`get` of a small file, neighbour stopped, ms", "≤ running + 50", lambda r, v=v: fmt_spread(v(r)["stopped"]["wall_ms"])),
                ("stopped: gets failed or slower than the running median + 50 ms", "0", lambda r, v=v: str(slow_gets(v(r)))),
                ("gets that succeeded (running / stopped)", "all", lambda r, v=v: f"{v(r)['running']['found']} / {v(r)['stopped']['found']} of {v(r)['searches']}"),
                ("first hit from X's trace, running / stopped, ms", "", lambda r, v=v: fmt_spread(v(r)["running"]["first_hit_ms"]) + " / " + fmt_spread(v(r)["stopped"]["first_hit_ms"])),
                ("fill: GETs sent towards the stopped peer", "", lambda r, v=v: f"{v(r)['fill']['sent']} (queued X→S {v(r)['fill']['queued_bytes']} B)"),
                ("X's RSS while stopped 60 s, MiB", "bounded", lambda r, v=v: mib(v(r)["rss_stopped_kib"])),
                ("X's `flow_control` drops", "> 0", lambda r, v=v: str(v(r)["x_drops"].get("flow_control"))),
                ("X's other drops", "", lambda r, v=v: ", ".join(f"{k} {n}" for k, n in v(r)["x_drops"].items() if n and k != "flow_control") or "none"),
            ]
        md += table(stall, rows)
    else:
        md.append("(not run yet)")
    md.append("")

    slow = load_runs(out_dir, "slowreaders")
    md += ["## Slow readers (`bench/slowreaders`)", ""]
    if slow:
        md += run_header(slow) + [""]
        rows = []
        for mode in ("slow", "never"):
            def m(r, mode=mode):
                return r["modes"][mode]
            rows += [
                (f"**readers that {'read 512 KiB every 3 s' if mode == 'slow' else 'never read'}**", "", lambda r, m=m: f"{m(r)['readers']} FETCH from {', '.join(r['reader_addrs'])}"),
                ("readers given RANGE / BUSY / closed or reset (none answered: the rest)", "", lambda r, m=m: f"{m(r)['reader_outcome']['range']} / {m(r)['reader_outcome']['busy']} / {m(r)['reader_outcome']['closed']}"),
                ("H's side of them at the end (TCP state)", "", lambda r, m=m: ", ".join(f"{k} {n}" for k, n in m(r)["holder_side_states"].items()) or "none"),
                ("H's uploads failed (closing the readers at the end fails theirs too) / cut as slow / busy refused", "", lambda r, m=m: f"{m(r)['holder_counters']['uploads_failed']} / {m(r)['holder_counters']['uploads_slow']} / {m(r)['holder_counters']['busy_refused']}"),
                ("searches that found the holder's file", "all", lambda r, m=m: f"{m(r)['search_found']} of {m(r)['searches']}"),
                ("search first hit, ms", "within the hit window", lambda r, m=m: fmt_spread(m(r)["first_hit_ms"])),
                ("`get` of a small file, s", "completes", lambda r, m=m: fmt_spread(m(r)["get_s"], 1, ".2f") + f" ({m(r)['get_ok']} of {m(r)['gets']} ok)"),
                ("holder's drops (counted)", "every drop counted", lambda r, m=m: ", ".join(f"{k} {n}" for k, n in m(r)["holder_drops"].items() if n) or "none"),
                ("holder's threads / RSS MiB during", "", lambda r, m=m: f"{m(r)['holder_threads_max']} / {m(r)['holder_rss_max_kib'] / 1024:.1f}"),
            ]
        md += table(slow, rows)
    else:
        md.append("(not run yet)")
    md.append("")
    tmp = out_dir / "ENGINE.md.tmp"
    tmp.write_text("\n".join(md))
    os.replace(tmp, out_dir / ENGINE_MD.name)
    update_results_md(out_dir, md)


def update_results_md(out_dir: Path, md: list[str]) -> None:
    """The same tables as the engine section of RESULTS.md (issue 10 asks for them there);
    the rest of the file is kept. Nothing is written if `out_dir` has no RESULTS.md (a quick
    look with --out elsewhere)."""
    body = ["#" + md[0]] + ["#" + line if line.startswith("## ") else line for line in md[1:]]
    replace_section(out_dir / "RESULTS.md", "engine", body, create=False)


# --- sections of RESULTS.md ---------------------------------------------------------------------
#
# Each section is a run of whole lines between
#     <!-- begin NAME: written by OWNER; ... -->
#     <!-- end NAME -->
# A tool replaces only its own section and keeps every other line of the file as it is: the
# other tools' sections, hand-written ones, and any text outside all sections.


def begin_marker(name: str) -> str:
    owner = SECTIONS[name]
    if owner is None:
        return f"<!-- begin {name}: written by hand; every tool keeps it -->"
    return f"<!-- begin {name}: written by {owner}; the other tools keep it -->"


def end_marker(name: str) -> str:
    return f"<!-- end {name} -->"


def _marker(line: str) -> tuple[str, str] | None:
    """("begin" | "end", NAME) if `line` is a section marker, else None."""
    line = line.strip()
    if line in LEGACY_MARKERS:
        return LEGACY_MARKERS[line]
    if not (line.startswith("<!-- ") and line.endswith(" -->")):
        return None
    words = line[5:-4].split()
    # Only the two shapes written above count: any other comment is text.
    if len(words) >= 2 and words[0] == "begin" and words[1].endswith(":"):
        return "begin", words[1][:-1]
    if len(words) == 2 and words[0] == "end":
        return "end", words[1]
    return None


def parse_sections(text: str, what: str = "RESULTS.md") -> dict[str, tuple[int, int]]:
    """NAME -> (index of its begin line, index of its end line) in text.split("\n"). Raises
    BenchError if the markers do not pair up (nested, unclosed, repeated or unknown), so that
    no tool ever guesses where a section ends and overwrites someone else's lines."""
    found: dict[str, tuple[int, int]] = {}
    open_name, open_at = None, -1
    for i, line in enumerate(text.split("\n")):
        m = _marker(line)
        if m is None:
            continue
        kind, name = m
        if name not in SECTIONS:
            raise BenchError(f"{what} line {i + 1}: unknown section '{name}' "
                             f"(known: {', '.join(SECTIONS)})")
        if kind == "begin":
            if open_name is not None:
                raise BenchError(f"{what} line {i + 1}: section '{name}' begins inside "
                                 f"'{open_name}' (line {open_at + 1})")
            if name in found:
                raise BenchError(f"{what} line {i + 1}: a second section '{name}'")
            open_name, open_at = name, i
        else:
            if open_name != name:
                raise BenchError(f"{what} line {i + 1}: end of '{name}' but "
                                 + (f"'{open_name}' is open" if open_name else "none is open"))
            found[name] = (open_at, i)
            open_name = None
    if open_name is not None:
        raise BenchError(f"{what} line {open_at + 1}: section '{open_name}' never ends")
    return found


def lines_outside_sections(text: str) -> list[str]:
    """The non-blank lines of `text` that are in no section (BenchError as parse_sections)."""
    found = parse_sections(text)
    inside = {i for first, last in found.values() for i in range(first, last + 1)}
    return [line for i, line in enumerate(text.split("\n")) if i not in inside and line.strip()]


def replace_section(path: Path, name: str, body: list[str], create: bool = True) -> bool:
    """Put `body` (lines, without the markers) in section `name` of `path`, between fresh
    markers, and keep every other line of the file as it was. A section the file does not have
    yet goes before the first section that SECTIONS lists after it, else at the end. If the file
    does not exist it is created with only that section, or, with create=False, left alone.
    Returns whether the file was written; raises BenchError on unpaired markers (the file is
    then unchanged). The file is replaced atomically."""
    if SECTIONS[name] is None:
        raise BenchError(f"section '{name}' is written by hand, not by a tool")
    if not path.exists():
        if not create:
            return False
        text = ""
    else:
        text = path.read_text()
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the final newline
    found = parse_sections(text, str(path))
    while body and not body[0].strip():
        body = body[1:]
    while body and not body[-1].strip():
        body = body[:-1]
    block = [begin_marker(name), "", *body, "", end_marker(name)]
    if name in found:
        first, last = found[name]
        lines[first:last + 1] = block
    else:
        later = [found[n][0] for n in list(SECTIONS)[list(SECTIONS).index(name) + 1:]
                 if n in found]
        if later:
            at = min(later)
            lines[at:at] = block + [""]
        else:
            while lines and not lines[-1].strip():
                lines.pop()
            lines += ([""] if lines else []) + block
    out = "\n".join(lines) + "\n"
    if set(parse_sections(out, f"{path} as it would be written")) != set(found) | {name}:
        raise BenchError(f"{path}: the new '{name}' section holds section markers")
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(out)
    os.replace(tmp, path)
    return True


def free_port(host: str = "127.0.0.1") -> tuple[socket.socket, int]:
    """A listening socket on a free port of `host` (the caller keeps and closes it)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((host, 0))
    s.listen(128)
    return s, s.getsockname()[1]
