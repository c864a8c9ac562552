"""The small confusions of issue 14, each as a newcomer meets it: help inside the REPL, peers by
number, a peer that does not exist, a get without `peer N`, "(1 file)", and a stats that lists
each counter once."""

import json
import re

from fsnet import NetCase


class SmallConfusionsTest(NetCase):
    def test_help_in_the_repl_shows_the_commands_as_typed_there(self):
        net = self.net("line:2")
        r = net.cli(input="help\nexit\n")
        self.assertOk(r)
        self.assertNotIn("floodshare [--run DIR]", r.stdout.replace(
            "without `floodshare [--run DIR]` in front", ""))
        self.assertNotIn("usage:", r.stdout)
        for line in ("  peers [--json]", "  peer N COMMAND [ARGS]", "  watch [--json]",
                     "  get NAME [--sources K] [--json]", "  help, exit"):
            self.assertIn(line, r.stdout)
        # from a shell, --help keeps the full usage
        self.assertIn("usage: floodshare [--run DIR] peer ID COMMAND", net.cli("--help").stdout)

    def test_peers_names_neighbours_by_number_and_strangers_by_address(self):
        net = self.net("ring:4")
        p2, p3 = net.addr(2)[1], net.addr(3)[1]
        self.assertOk(net.peer(2, "modify", "neighbours",
                               f"127.0.0.1:{net.addr(1)[1]}, 127.0.0.1:{p3}, 127.0.0.1:9"))
        r = net.cli("peers")
        self.assertOk(r)
        self.assertRegex(r.stdout, r"(?m)^1 +127\.0\.0\.1:\d+ +up +2, 4$")
        self.assertRegex(r.stdout, r"(?m)^2 +127\.0\.0\.1:%d +up +1, 3, 127\.0\.0\.1:9$" % p2)
        net.kill(4)  # a peer that is down is still named, from its INI
        r = net.cli("peers")
        self.assertRegex(r.stdout, r"(?m)^4 +127\.0\.0\.1:\d+ +down +(1, 3|3, 1)$")
        # the JSON keeps addresses
        rows = {p["id"]: p for p in json.loads(net.cli("peers", "--json").stdout)["peers"]}
        self.assertIn("127.0.0.1:9", rows[2]["neighbours"])

    def test_a_peer_the_run_folder_does_not_have_is_named_as_missing(self):
        net = self.net("ring:6")
        r = net.peer(9, "ls")
        self.assertEqual(r.returncode, 69)
        self.assertIn(f"no peer 9 in {net.dir}: peers are 1-6", r.stderr)
        self.assertNotIn("not running", r.stderr)
        (net.dir / "peer-5.ini").unlink()  # ids with a gap are listed as ranges
        (net.dir / "peer-5.sock").unlink()
        r = net.peer(5, "ls")
        self.assertIn(f"no peer 5 in {net.dir}: peers are 1-4, 6", r.stderr)
        # in the REPL too
        r = net.cli(input="peer 9 ls\n")
        self.assertEqual(r.returncode, 69)
        self.assertIn("no peer 9 in", r.stderr)

    def test_a_get_without_peer_n_says_which_words_are_missing(self):
        net = self.net("line:3")
        r = net.cli("get", "3.txt")
        self.assertEqual(r.returncode, 64)
        self.assertIn("say which peer asks: peer N get 3.txt (peers are 1-3)", r.stderr)
        r = net.cli(input="get 3.txt\nls\n")
        self.assertIn("say which peer asks: peer N get 3.txt", r.stderr)
        self.assertIn("say which peer you mean: peer N ls", r.stderr)
        self.assertIn('unknown command "frob"', net.cli("frob").stderr)

    def test_ls_counts_one_file_in_the_singular(self):
        net = self.net("line:2", seed_files=False)
        (net.share(1) / "one").mkdir()
        (net.share(1) / "one" / "a.txt").write_text("a\n")
        (net.share(1) / "two").mkdir()
        (net.share(1) / "two" / "a.txt").write_text("a\n")
        (net.share(1) / "two" / "b.txt").write_text("b\n")
        r = net.peer(1, "ls")
        self.assertOk(r)
        self.assertRegex(r.stdout, r"(?m)^  one +folder .*\(1 file\)$")
        self.assertRegex(r.stdout, r"(?m)^  two +folder .*\(2 files\)$")

    def test_stats_lists_every_counter_once_in_a_few_lines(self):
        net = self.net("ring:6")
        self.assertOk(net.peer(1, "get", "4.txt"))
        j = net.stats(4)
        r = net.peer(4, "stats")
        self.assertOk(r)
        lines = r.stdout.splitlines()
        self.assertLessEqual(len(lines), 16, r.stdout)
        self.assertTrue(all(len(l) <= 80 for l in lines), r.stdout)
        pairs = re.findall(r"([a-z_0-9]+) (\d+)(?=   |$)", r.stdout, re.M)
        shown = {}
        for name, value in pairs:
            self.assertNotIn(name, shown, f"{name} shown twice:\n{r.stdout}")
            shown[name] = int(value)
        drop_counters = {"duplicates_dropped", "ttl_dropped", "ttl_clamped", "hops_dropped",
                         "throttled", "found_dropped", "wrong_route_dropped",
                         "malformed_dropped", "timeouts", "flow_dropped", "limit_refused",
                         "archives_refused", "holders_cut", "cut_dropped", "spoofed_dropped",
                         "busy_refused", "uploads_slow", "auth_failed"}
        for key, value in j.items():
            if key in ("peer", "links_open", "links_proven", "drops"):
                continue
            if key in drop_counters:
                self.assertNotIn(key, shown, f"{key} is a drop: shown by its reason only")
            else:
                self.assertEqual(shown.get(key), value, f"{key}:\n{r.stdout}")
        for reason, value in j["drops"].items():
            self.assertEqual(shown.get(reason), value, f"drop {reason}:\n{r.stdout}")
        self.assertEqual(len(shown), len(j) - 4 - len(drop_counters) + len(j["drops"]))
        self.assertRegex(lines[0], r"^links +%d open, %d proven" % (j["links_open"],
                                                                     j["links_proven"]))
        self.assertEqual(shown["hits_sent"], 1)
