"""The command line and the REPL: output, exit codes, and live configuration changes."""

import json
import os
import subprocess
import tempfile
import unittest
from pathlib import Path

from fsnet import BIN, NetCase, last_json


def run(*args, **kw):
    return subprocess.run([str(BIN), *args], capture_output=True, text=True, timeout=30, **kw)


class CliTest(NetCase):
    def test_help_and_version_exit_0(self):
        r = run("--help")
        self.assertEqual(r.returncode, 0)
        self.assertIn("Exit codes", r.stdout)
        r = run("--version")
        self.assertEqual(r.returncode, 0)
        self.assertIn("FLOOD/1", r.stdout)

    def test_bad_usage_exits_64(self):
        net = self.net("topologies/seed-chain.topo")
        for args in (["--bogus"], ["peer", "x", "get", "a"], ["peer", "0", "ls"], ["peer", "1"],
                     ["frobnicate"], ["peer", "1", "get"], ["peer", "1", "frob"],
                     ["peer", "1", "ls", "--nope"], ["peer", "1", "modify", "port", "1"]):
            r = net.cli(*args)
            self.assertEqual(r.returncode, 64, f"{args}: {r.stderr}")
            self.assertTrue(r.stderr.strip(), args)

    def test_peer_not_running_exits_69(self):
        with tempfile.TemporaryDirectory() as d:
            r = run("--run", d, "peer", "7", "stats")
            self.assertEqual(r.returncode, 69)
            self.assertIn(f"no peer 7 in {d}: it has no peers", r.stderr)
        net = self.net("topologies/seed-chain.topo")
        net.kill(3)
        r = net.peer(3, "stats")
        self.assertEqual(r.returncode, 69)
        self.assertIn("peer 3 is not running", r.stderr)

    def test_bad_config_exits_78_naming_file_section_and_key(self):
        with tempfile.TemporaryDirectory() as d:
            ini = Path(d) / "bad.ini"
            os.mkdir(Path(d) / "share")
            ini.write_text("[peer]\nid = 1\nhost = 127.0.0.1\nport = 70000\nshare_dir = share\n"
                           "ttl = 3\n")
            r = run("serve", "--run", d, str(ini))
            self.assertEqual(r.returncode, 78)
            self.assertIn("bad.ini", r.stderr)
            self.assertIn("[peer] port", r.stderr)
            self.assertFalse((Path(d) / "peer-1.sock").exists())

    def test_control_socket_is_private_to_its_user(self):
        net = self.net("topologies/seed-chain.topo")
        for pid in net.peers:
            mode = (net.dir / f"peer-{pid}.sock").stat().st_mode & 0o777
            self.assertEqual(mode, 0o600, f"peer-{pid}.sock is {oct(mode)}")

    def test_peers_lists_up_and_down(self):
        net = self.net("topologies/seed-chain.topo")
        net.kill(3)
        r = net.cli("peers", "--json")
        self.assertOk(r)
        rows = {p["id"]: p for p in last_json(r.stdout)["peers"]}
        self.assertEqual(sorted(rows), [1, 2, 3])
        self.assertTrue(rows[1]["up"] and rows[2]["up"])
        self.assertFalse(rows[3]["up"])
        self.assertEqual(rows[3]["address"], "%s:%d" % net.addr(3))
        self.assertEqual(len(rows[2]["neighbours"]), 2)
        text = net.cli("peers")
        self.assertIn("down", text.stdout)

    def test_repl_runs_the_same_commands(self):
        net = self.net("topologies/seed-chain.topo")
        r = net.cli(input="peers\npeer 1 get 3.txt\npeer 1 ls\n'unterminated\nexit\npeer 1 ls\n")
        self.assertIn("downloaded \"3.txt\"", r.stdout)
        self.assertIn("unterminated quote", r.stderr)
        self.assertEqual(r.stdout.count("item"), 1, "commands after exit must not run")
        self.assertTrue((net.share(1) / "3.txt").exists())

    def test_modify_ttl_applies_live_and_keeps_the_ini_comments(self):
        net = self.net("topologies/line5.topo", ttl=3)
        ini = net.dir / "peer-1.ini"
        before = ini.read_text()
        self.assertEqual(net.peer(1, "get", "target.txt").returncode, 1)
        self.assertOk(net.peer(1, "modify", "ttl", "4"))
        after = ini.read_text()
        self.assertEqual([l for l in before.splitlines() if "ttl" not in l.split("=")[0]],
                         [l for l in after.splitlines() if "ttl" not in l.split("=")[0]])
        self.assertRegex(after, r"(?m)^ttl\s*=\s*4")
        self.assertEqual(json.loads(net.peer(1, "config", "--json").stdout)["ttl"], 4)
        self.assertOk(net.peer(1, "get", "target.txt"))
        r = net.peer(1, "modify", "ttl", "99")
        self.assertEqual(r.returncode, 78)
        self.assertIn("ttl", r.stderr)
        self.assertRegex(ini.read_text(), r"(?m)^ttl\s*=\s*4")

    def test_modify_share_dir_switches_what_the_peer_shares(self):
        net = self.net("topologies/seed-chain.topo")
        other = net.dir / "other-share"
        other.mkdir()
        (other / "fresh.txt").write_text("in the new share\n")
        self.assertOk(net.peer(3, "modify", "share_dir", str(other)))
        self.assertOk(net.peer(1, "get", "fresh.txt"))
        self.assertEqual(net.peer(1, "get", "3.txt").returncode, 1)  # the old share is gone
        r = net.peer(3, "modify", "share_dir", str(net.dir / "missing"))
        self.assertEqual(r.returncode, 78)
        self.assertIn("share_dir", r.stderr)

    def test_long_json_output_arrives_whole(self):
        net = self.net("topologies/seed-chain.topo")
        for i in range(300):  # an ls --json far longer than one control line (4096 bytes)
            (net.share(2) / f"file-with-a-long-name-{i:04d}.txt").write_text(f"{i}\n")
        r = net.peer(2, "ls", "--json")
        self.assertOk(r)
        names = [i["name"] for i in json.loads(r.stdout)["items"]]
        self.assertEqual(len(names), 301)

    def test_ls_and_stats_json_fields(self):
        net = self.net("topologies/seed-chain.topo")
        self.assertOk(net.peer(1, "get", "3.txt"))
        items = json.loads(net.peer(1, "ls", "--json").stdout)["items"]
        self.assertIn("3.txt", [i["name"] for i in items])
        s = net.stats(1)
        for key in ("queries_started", "queries_handled", "queries_forwarded",
                    "duplicates_dropped", "hits_sent", "hits_relayed", "bytes_sent",
                    "bytes_received"):
            self.assertIsInstance(s[key], int, key)
        self.assertEqual(s["queries_started"], 1)
        self.assertGreater(s["bytes_received"], 0)
        self.assertEqual(net.stats(3)["hits_sent"], 1)


if __name__ == "__main__":
    unittest.main()
