"""The dashboard of issue 14: it opens at now, shows the graph as of the animated event, lets
the teacher skip to the interesting part, reshapes the network (add a peer, link it, rm a
download) and fits a 1024x768 screen. Headless Chromium through playwright-core (pwcore.py),
as test_web.py drives it; skipped with the reason when Node or playwright-core is missing.

The refusals of POST /api/topology are checked over plain HTTP, without a browser.

Run from tests/integration: python3 -m unittest -v test_web_live
"""

import json
import os
import subprocess
import unittest

from fsnet import BIN, TOPOLOGY
from test_web import WebCase, build_dir, playwright_core, CHROMIUM

# One driver for every scenario: node drive.js SCENARIO URL RUN_DIR BIN OUT_DIR. Prints one JSON
# line of what it saw; the Python side checks it.
DRIVER = r"""
const { chromium } = require(process.env.PW_CORE);
const { execFile } = require('child_process');
const [scenario, url, run, bin, out] = process.argv.slice(2);
const cli = (...args) => new Promise((ok) => execFile(bin, ['--run', run, ...args],
  (err, stdout, stderr) => ok({ code: err ? err.code : 0, stdout, stderr })));

async function page(browser, w, h) {
  const p = await browser.newPage({ viewport: { width: w, height: h } });
  p.errors = [];
  p.on('pageerror', (e) => p.errors.push(String(e)));
  p.on('console', (m) => { if (m.type() === 'error') p.errors.push(m.text()); });
  await p.goto(url);
  await p.waitForSelector('#nodes g.node[data-peer="1"]', { timeout: 15000 });
  return p;
}
const said = (p, what) => p.waitForFunction((w) =>
  document.getElementById('cmd-text').textContent.includes(w), what, { timeout: 30000 });
const filesOf = (p, id) => p.$eval(`#nodes g.node[data-peer="${id}"] text.files`, (t) => t.dataset.files);
const current = (p) => p.$eval('#events li.current', (l) => ({ type: l.dataset.type, peer: Number(l.dataset.peer), qid: l.dataset.qid }));

async function opensAtNow(browser) {
  // before the page: peer 1 got 3.txt (ring:4: the GET reaches peer 3 both ways round)
  const p = await page(browser, 1280, 800);
  const r = {};
  // the history arrives as a burst: wait until the transfer of the past get is listed
  await p.waitForSelector('#events li[data-type="transfer_done"][data-peer="1"]', { timeout: 15000 });
  await p.waitForFunction(() => document.getElementById('status').textContent.startsWith('live: now'), null, { timeout: 10000 });
  r.status = await p.textContent('#status');
  r.rows = await p.$$eval('#events li', (ls) => ls.length);
  r.pending = await p.$$eval('#events li.pending', (ls) => ls.length);
  r.current_is_last = await p.$eval('#events', (ol) => ol.lastElementChild.classList.contains('current'));
  r.files_now = await filesOf(p, 1);
  // the past is replayable: the old query's first event shows peer 1 without 3.txt
  await p.click('#events li[data-type="query_started"][data-peer="1"]');
  r.files_at_start = await filesOf(p, 1);
  r.old_qid = (await current(p)).qid;
  const fromStart = () => p.click(`#events li[data-type="query_started"][data-qid="${r.old_qid}"]`);
  await p.click('#skip-hit'); r.skip_hit = await current(p);
  await fromStart(); await p.click('#skip-dup'); r.skip_dup = await current(p);
  await fromStart(); await p.click('#skip-xfer'); r.skip_xfer = await current(p);
  r.files_at_xfer_start = await filesOf(p, 1);
  await p.click(`#events li[data-type="transfer_done"][data-peer="1"][data-qid="${r.old_qid}"]`);
  r.files_at_done = await filesOf(p, 1);
  // the summary: the same SVG as trace --svg
  await p.selectOption('#replay-qid', r.old_qid);
  await p.click('#summary');
  await p.waitForFunction(() => { const i = document.querySelector('#summary-svg img'); return i && i.complete && i.naturalWidth > 0; }, null, { timeout: 20000 });
  await p.click('#summary-close');
  // back to now, at 4x; a get started now shows up within 2 s
  await p.selectOption('#speed', '4');
  await p.click('#live');
  const t0 = Date.now();
  const got = cli('peer', '2', 'get', '4.txt');
  await p.waitForSelector('#events li.shown[data-type="query_started"][data-peer="2"]', { timeout: 10000 });
  r.appeared_ms = Date.now() - t0;
  const label = await p.waitForFunction(() => {
    const g = document.querySelector('#msgs g.msg[data-label^="GET ttl "]');
    return g && g.dataset.label;
  }, null, { timeout: 10000 });
  r.get_label = await label.jsonValue();
  r.cli_get = (await got).code;
  // a command's result as text, its JSON behind the toggle
  await p.selectOption('#cmd-peer', '1');
  await p.selectOption('#cmd-verb', 'get');
  await p.fill('#cmd-arg', '2.txt');
  await p.click('#cmd-run');
  await said(p, 'downloaded "2.txt"');
  r.text = await p.textContent('#cmd-text');
  r.json_hidden = await p.$eval('#cmd-out', (e) => e.hidden);
  await p.check('#cmd-json');
  r.json_shown = await p.$eval('#cmd-out', (e) => !e.hidden);
  r.json = await p.textContent('#cmd-out');
  // piece_received (a swarmed get's, live only): a dot along the transfer curve from its
  // holder, never listed, at most PIECES_MAX on the page however many arrive
  await p.click('#live');
  await p.waitForFunction(() => atNow(), null, { timeout: 10000 });
  r.pieces = await p.evaluate(() => {
    const kept = state.all.length, rows = document.querySelectorAll('#events li').length;
    for (let i = 0; i < 100; i++)
      addEvent({ type: 'piece_received', peer: 1, holder: 3, role: 'requester', count: i,
                 bytes: 524288, qid: 'ffffffffffffffff', ts_us: 1, seq: 0 }, state.lastId);
    return { kept: state.all.length - kept, listed: document.querySelectorAll('#events li').length - rows,
             dots: document.querySelectorAll('#msgs circle.piece').length };
  });
  r.errors = p.errors;
  await p.screenshot({ path: out + '/web-live-now.png' });
  return r;
}

async function reshape(browser) {
  const p = await page(browser, 1280, 800);
  const r = {};
  await p.fill('#topo-files', 'new.txt');
  await p.click('#topo-add');
  await said(p, 'added peer 3');
  await p.waitForSelector('#nodes g.node[data-peer="3"]', { timeout: 15000 });
  await p.selectOption('#topo-a', '3');
  await p.selectOption('#topo-b', '2');
  await p.click('#topo-link');
  await said(p, 'linked peer 3 and peer 2');
  await p.selectOption('#cmd-peer', '1');
  await p.selectOption('#cmd-verb', 'get');
  await p.fill('#cmd-arg', 'new.txt');
  await p.click('#cmd-run');
  await said(p, 'downloaded "new.txt"');
  r.first = await p.textContent('#cmd-text');
  await p.waitForSelector('#events li[data-type="found_sent"][data-peer="3"]', { timeout: 15000 });
  r.flood = await p.$$eval('#events li', (ls) => ls.map((l) => [l.dataset.type, Number(l.dataset.peer), l.dataset.qid]));
  // the demo again: rm, then the same get
  await p.selectOption('#cmd-verb', 'rm');
  await p.click('#cmd-run');
  await said(p, 'removed the file "new.txt"');
  r.rm = await p.textContent('#cmd-text');
  await p.selectOption('#cmd-verb', 'get');
  await p.click('#cmd-run');
  await said(p, 'downloaded "new.txt"');
  r.second = await p.textContent('#cmd-text');
  // and the peer goes again: remove A (peer 3)
  await p.selectOption('#topo-a', '3');
  await p.click('#topo-remove');
  await said(p, 'removed peer 3');
  await p.waitForFunction(() => !document.querySelector('#nodes g.node[data-peer="3"]'), null, { timeout: 15000 });
  r.nodes_after = await p.$$eval('#nodes g.node', (gs) => gs.map((g) => Number(g.dataset.peer)));
  r.errors = p.errors;
  await p.screenshot({ path: out + '/web-live-reshape.png' });
  return r;
}

async function layout(browser, w, h, name) {
  const p = await page(browser, w, h);
  const r = { w, h, outside: [], controls: 0 };
  const boxes = await p.$$eval('header, button, select, input, label, #events, #graph, #cmd-text, .panel', (es) =>
    es.filter((e) => !e.closest('[hidden]') && !e.hidden && e.offsetParent !== null && e.id !== 'summary-close')
      .map((e) => { const b = e.getBoundingClientRect();
        return { what: e.id || e.tagName + ':' + e.textContent.trim().slice(0, 20), x: b.x, y: b.y, r: b.right, b: b.bottom }; }));
  for (const b of boxes) {
    r.controls++;
    if (b.x < 0 || b.y < 0 || b.r > w + 0.5 || b.b > h + 0.5) r.outside.push(b);
  }
  r.scroll = await p.evaluate(() => [document.documentElement.scrollWidth, document.documentElement.scrollHeight]);
  r.nodes = await p.$$eval('#nodes g.node', (gs) => gs.map((g) => [Number(g.dataset.peer), g.getAttribute('transform')]));
  r.event_rows = await p.$eval('#events', (ol) => Math.floor(ol.clientHeight / 22));
  // every control answers: each button clicked once (the reshape ones included) without an error
  await p.click('#pause'); await p.click('#play'); await p.click('#back'); await p.click('#fwd');
  await p.click('#skip-dup'); await p.click('#skip-hit'); await p.click('#skip-xfer'); await p.click('#live');
  await p.selectOption('#speed', '16');
  await p.selectOption('#cmd-verb', 'ls'); await p.click('#cmd-run'); await said(p, '✓');
  await p.check('#cmd-json');
  r.errors = p.errors;
  await p.screenshot({ path: `${out}/web-live-${name}.png` });
  return r;
}

async function switched(browser) {
  // the run folder held line:2 (one get), then ring:4 on new ports; a get on the new one
  const p = await page(browser, 1280, 800);
  const r = {};
  await p.waitForSelector('#events li[data-type="transfer_done"][data-peer="1"]', { timeout: 15000 });
  const rows = () => p.$$eval('#events li', (ls) => ls.map((l) => [l.dataset.type, Number(l.dataset.peer), l.dataset.qid, l.classList.contains('old')]));
  r.rows = await rows();
  const old = r.rows.find((x) => x[0] === 'found_sent')[2];
  await p.click(`#events li[data-type="found_sent"][data-qid="${old}"]`);
  r.old_roles = await p.$$eval('#nodes g.node .shape', (ss) => ss.map((s) => s.getAttribute('class')));
  r.old_paths = await p.$$eval('#paths > *', (ps) => ps.length);
  await p.click(`#events li[data-type="query_started"][data-qid="${old}"]`);
  await p.click('#fwd');
  r.old_msgs = await p.$$eval('#msgs g.msg', (gs) => gs.length);
  r.errors = p.errors;
  return r;
}

(async () => {
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM, headless: true,
    args: ['--no-sandbox', '--headless', '--disable-gpu', '--no-first-run', '--disable-background-networking'] });
  try {
    let r;
    if (scenario === 'now') r = await opensAtNow(browser);
    else if (scenario === 'reshape') r = await reshape(browser);
    else if (scenario === 'switched') r = await switched(browser);
    else if (scenario === 'positions') {
      const p = await page(browser, 1280, 800);
      r = await p.$$eval('#nodes g.node', (gs) => gs.map((g) => {
        const m = g.getAttribute('transform').match(/translate\(([-0-9.]+),([-0-9.]+)\)/);
        return [Number(g.dataset.peer), Number(m[1]), Number(m[2])]; }));
    }
    else r = [await layout(browser, 1024, 768, 'small'), await layout(browser, 1920, 1080, 'projector')];
    console.log(JSON.stringify(r));
  } finally {
    await browser.close();
  }
})().catch((e) => { console.error(String(e)); process.exit(1); });
"""


class TopologyApiTest(WebCase):
    """POST /api/topology runs only the four reshapes, on peers named by number."""

    def post(self, w, line):
        st, _, text = w.request("/api/topology", body=line.encode(),
                                headers={"X-Floodshare": "1"})
        return st, text

    def test_refusals_change_nothing(self):
        net = self.net("line:2")
        w = self.web(net)
        before = (net.dir / "topology.json").read_text()
        for line, why in [("up ring:4", "run add-peer, remove-peer, link and unlink"),
                          ("down", "not \"down\""),
                          ("link 1 x", "usage: link A B"),
                          ("link 1 2 --run /tmp", "usage: link A B"),
                          ("remove-peer 01", "usage: remove-peer N"),
                          ("add-peer --files ../escape.txt", "is not a share path"),
                          ("add-peer --files big.bin:size=100G", "no :size="),
                          ("add-peer --files --run", "starts with '-'"),
                          ("add-peer --files .floodshare/x", "state folder"),
                          ("add-peer --bin /bin/sh", "usage: add-peer")]:
            st, text = self.post(w, line)
            self.assertEqual(st, 403, f"{line}: {text}")
            self.assertIn(why, text, line)
        st, _, _ = w.request("/api/topology", body=b"link 1 2")  # no X-Floodshare header
        self.assertEqual(st, 403)
        st, _, _ = w.request("/api/topology", body=b"link 1 2", auth=False,
                             headers={"X-Floodshare": "1"})
        self.assertEqual(st, 401)
        self.assertEqual((net.dir / "topology.json").read_text(), before)
        # what is allowed runs, and says what the script said
        st, text = self.post(w, "unlink 1 2")
        self.assertEqual(st, 200, text)
        res = json.loads(text)
        self.assertEqual(res["exit"], 0, res)
        self.assertIn("unlinked peer 1 and peer 2", res["stdout"])
        st, text = self.post(w, "unlink 1 2")
        self.assertEqual(json.loads(text)["exit"], 64)
        self.assertIn("are not linked", json.loads(text)["stderr"])
        # the page reads the layout hint and the events' position from here
        st, _, text = w.request("/api/topology")
        self.assertEqual(json.loads(text)["layout"], {"kind": "line"})
        st, _, text = w.request("/api/peers")
        self.assertIn("events_now", json.loads(text))


class LiveBrowserTest(WebCase):
    def drive(self, net, w, scenario):
        mod, why = playwright_core()
        if not mod:
            self.skipTest("no browser for the end-to-end test: " + why)
        driver = build_dir() / "web-e2e" / "drive_live.js"
        driver.write_text(DRIVER)
        out = build_dir() / "web-e2e"
        url = w.first.split(" at ", 1)[1].strip()
        r = subprocess.run(["node", str(driver), scenario, url, str(net.dir), str(BIN), str(out)],
                           capture_output=True, text=True, timeout=120,
                           env={**os.environ, "PW_CORE": str(mod), "CHROMIUM": str(CHROMIUM)})
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        return json.loads(r.stdout.strip().splitlines()[-1])

    def test_opens_at_now_and_shows_each_event_as_it_was(self):
        net = self.net("ring:4")  # peer 3 holds 3.txt, 2 hops from peer 1 both ways round
        w = self.web(net)
        # the past, for the page: a get after the dashboard started, before the page opens
        self.assertOk(net.peer(1, "get", "3.txt"))
        net.wait_for(lambda: json.loads(w.request("/api/peers")[2])["events_now"] >= 20)
        r = self.drive(net, w, "now")
        self.assertEqual(r["errors"], [])
        self.assertTrue(r["status"].startswith("live: now"), r["status"])
        self.assertGreater(r["rows"], 10)
        self.assertEqual(r["pending"], 0, "the past is not replayed at load")
        self.assertTrue(r["current_is_last"])
        self.assertIn("3.txt", r["files_now"])
        # as of the query's start, and of its transfer's start, peer 1 does not hold 3.txt yet
        self.assertNotIn("3.txt", r["files_at_start"])
        self.assertNotIn("3.txt", r["files_at_xfer_start"])
        self.assertIn("3.txt", r["files_at_done"])
        self.assertEqual(r["skip_dup"]["type"], "duplicate")
        self.assertEqual(r["skip_hit"]["type"], "found_sent")
        self.assertEqual(r["skip_hit"]["peer"], 3)
        self.assertEqual(r["skip_xfer"]["type"], "transfer_started")
        print(f"\na get started after load was listed {r['appeared_ms']} ms later")
        self.assertLess(r["appeared_ms"], 2000)
        self.assertRegex(r["get_label"], r"^GET ttl [0-9]+$")
        self.assertEqual(r["cli_get"], 0)
        self.assertIn('downloaded "2.txt" (file, ', r["text"])
        self.assertNotIn("{", r["text"], "the text is no JSON")
        self.assertTrue(r["json_hidden"])
        self.assertTrue(r["json_shown"])
        self.assertIn('"query_id"', r["json"])
        self.assertEqual((r["pieces"]["kept"], r["pieces"]["listed"]), (0, 0))
        self.assertGreater(r["pieces"]["dots"], 0)
        self.assertLessEqual(r["pieces"]["dots"], 32)

    def test_add_a_peer_and_a_link_from_the_page_then_rm_and_get_again(self):
        net = self.net("line:2")
        w = self.web(net)
        r = self.drive(net, w, "reshape")
        self.assertEqual(r["errors"], [])
        self.assertIn('downloaded "new.txt"', r["first"])
        self.assertIn("from peer 3, 2 hops away", r["first"])
        qids = {q for t, p, q in r["flood"] if t == "found_sent" and p == 3}
        self.assertTrue(qids)
        flood = [(t, p) for t, p, q in r["flood"] if q in qids]
        self.assertIn(("received", 2), flood)
        self.assertIn(("forwarded", 2), flood)
        self.assertIn(("received", 3), flood)
        self.assertIn("removed the file", r["rm"])
        self.assertIn('downloaded "new.txt"', r["second"])
        self.assertTrue((net.share(1) / "new.txt").is_file())
        self.assertEqual(r["nodes_after"], [1, 2])
        info = json.loads((net.dir / "topology.json").read_text())
        self.assertEqual(info["links"], [[1, 2]])
        self.assertFalse((net.dir / "peer-3.ini").exists())

    def test_events_of_an_earlier_topology_are_listed_not_drawn(self):
        net = self.net("line:3")
        w = self.web(net)
        self.assertOk(net.peer(1, "get", "2.txt"))
        net.wait_for(lambda: json.loads(w.request("/api/peers")[2])["events_now"] >= 8)
        down = subprocess.run([str(TOPOLOGY), "down", "--run", str(net.dir)],
                              capture_output=True, text=True, timeout=60)
        self.assertOk(down)
        up = subprocess.run([str(TOPOLOGY), "up", "ring:4", "--run", str(net.dir), "--bin",
                             str(BIN)], capture_output=True, text=True, timeout=60)
        self.assertOk(up)
        net.peers = {p["id"]: p for p in
                     json.loads((net.dir / "topology.json").read_text())["peers"]}
        self.assertOk(net.peer(1, "get", "3.txt"))
        net.wait_for(lambda: sum(1 for p in json.loads(w.request("/api/peers")[2])["peers"]
                                 if p["up"]) == 4)
        r = self.drive(net, w, "switched")
        self.assertEqual(r["errors"], [])
        by_qid = {}
        for t, p, q, old in r["rows"]:
            if q:
                by_qid.setdefault(q, set()).add(old)
        self.assertEqual(sorted(by_qid.values(), key=str), [{False}, {True}],
                         "the first query's events are old, the second's are not")
        self.assertFalse(any("n-holder" in c or "n-requester" in c for c in r["old_roles"]))
        self.assertEqual(r["old_paths"], 0)
        self.assertEqual(r["old_msgs"], 0)

    def test_trees_are_drawn_as_trees_and_grids_as_grids(self):
        net = self.net("tree:7")  # 1; 2 3; 4 5 6 7
        at = {p: (x, y) for p, x, y in self.drive(net, self.web(net), "positions")}
        self.assertLess(at[1][1], at[2][1])
        self.assertEqual(at[2][1], at[3][1])
        self.assertLess(at[2][1], at[4][1])
        self.assertEqual({at[i][1] for i in (4, 5, 6, 7)}, {at[4][1]})
        self.assertLess(at[2][0], at[1][0])
        self.assertLess(at[1][0], at[3][0])
        net = self.net("grid:2x3")  # 1 2 3 / 4 5 6
        at = {p: (x, y) for p, x, y in self.drive(net, self.web(net), "positions")}
        self.assertEqual({at[i][1] for i in (1, 2, 3)}, {at[1][1]})
        self.assertEqual({at[i][1] for i in (4, 5, 6)}, {at[4][1]})
        self.assertLess(at[1][1], at[4][1])
        for top in (1, 2, 3):
            self.assertEqual(at[top][0], at[top + 3][0])
        self.assertLess(at[1][0], at[2][0])

    def test_every_control_fits_1024x768_and_the_star_hub_is_central(self):
        net = self.net("star:5")
        w = self.web(net)
        self.assertOk(net.peer(2, "get", "3.txt"))
        net.wait_for(lambda: json.loads(w.request("/api/peers")[2])["events_now"] >= 10)
        small, big = self.drive(net, w, "layout")
        for r in (small, big):
            self.assertEqual(r["errors"], [], r["w"])
            self.assertEqual(r["outside"], [], f"cut off at {r['w']}x{r['h']}")
            self.assertLessEqual(r["scroll"][0], r["w"])
            self.assertLessEqual(r["scroll"][1], r["h"])
            self.assertGreater(r["controls"], 20)
            hub = dict(r["nodes"])[1]
            self.assertTrue(hub.startswith("translate(500,380)"), hub)
        self.assertGreaterEqual(small["event_rows"], 8)
        for name in ("small", "projector"):
            self.assertGreater((build_dir() / "web-e2e" / f"web-live-{name}.png").stat().st_size,
                               10000)


if __name__ == "__main__":
    unittest.main()
