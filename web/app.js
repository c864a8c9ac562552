/* floodshare web: the page. Plain JavaScript, no library: it draws the peers from
 * /api/peers, reads trace events from /events (server-sent events) and animates them one
 * by one; every button runs a control command through POST /api/cmd, the same command line
 * the CLI takes ("peer 2 get 4.txt").
 *
 * The page never sees the dashboard's token: opening the printed URL (?token=...) set it in
 * an HttpOnly, SameSite=Strict cookie, which the browser sends with every request of this
 * page, EventSource included. A 401 means that cookie is missing or stale. */
'use strict';

const $ = (id) => document.getElementById(id);
const SVGNS = 'http://www.w3.org/2000/svg';
const STEP_MS = 700;          /* one event at 1x */
const VIEW = { w: 1000, h: 760, r: 265 };

const state = {
  peers: [],                  /* from /api/peers */
  byId: new Map(), byAddr: new Map(),
  all: [],                    /* every event received, in order */
  timeline: null,             /* what the list shows: all, or one query being replayed */
  replaying: null,            /* qid or null */
  cursor: -1,                 /* last event shown */
  playing: true, speed: 1, timer: null,
  selectedPeer: null, lastId: -1,
};
state.timeline = state.all;  /* live: the list is every event */

const NO_TOKEN = 'this page has no valid token: open the URL `floodshare web` printed at start';

function el(name, attrs, parent) {
  const e = document.createElementNS(SVGNS, name);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (parent) parent.appendChild(e);
  return e;
}

/* --- peers and the graph --- */

async function loadPeers() {
  try {
    const r = await fetch('/api/peers');
    if (r.status === 401) throw new Error(NO_TOKEN);
    if (!r.ok) throw new Error(await r.text());
    const doc = await r.json();
    state.peers = doc.peers;
    state.byId = new Map(); state.byAddr = new Map();
    doc.peers.forEach((p, i) => {
      const a = (2 * Math.PI * i) / doc.peers.length - Math.PI / 2;
      p.x = VIEW.w / 2 + VIEW.r * Math.cos(a);
      p.y = VIEW.h / 2 + VIEW.r * Math.sin(a);
      state.byId.set(p.id, p);
      if (p.config) state.byAddr.set(p.config.host + ':' + p.config.port, p);
    });
    fillPeerSelect();
    draw();
    if (state.selectedPeer != null) showPeer(state.selectedPeer);
  } catch (e) {
    setStatus('cannot read the peers: ' + e.message, 'paused');
  }
}

function peerOf(id, addr) {
  if (id) return id;
  const p = addr && state.byAddr.get(addr);
  return p ? p.id : 0;
}

/* The links, each once, from every peer's neighbours; down when either end cut it. */
function links() {
  const seen = new Map();
  for (const p of state.peers) {
    if (!p.config) continue;
    for (const nb of p.config.neighbours) {
      const q = state.byAddr.get(nb);
      if (!q) continue;
      const key = Math.min(p.id, q.id) + '-' + Math.max(p.id, q.id);
      const down = p.config.links_down.includes(nb) ||
        (q.config && q.config.links_down.includes(p.config.host + ':' + p.config.port));
      const l = seen.get(key) || { a: p, b: q, down: false };
      l.down = l.down || down;
      seen.set(key, l);
    }
  }
  return [...seen.values()];
}

/* Roles in the query of the event at the cursor, from the events shown so far. */
function roles() {
  const cur = state.timeline[state.cursor];
  const r = new Map();
  if (!cur || !cur.qid) return r;
  for (let i = 0; i <= state.cursor; i++) {
    const e = state.timeline[i];
    if (e.qid !== cur.qid) continue;
    if (e.type === 'query_started') r.set(e.peer, 'requester');
    else if (e.type === 'found_sent') r.set(e.peer, 'holder');
    else if (e.type === 'received' && !r.has(e.peer)) r.set(e.peer, 'relay');
  }
  return r;
}

function shape(role, g) {
  const s = 64;
  let e;
  if (role === 'holder') e = el('rect', { x: -s, y: -s, width: 2 * s, height: 2 * s, rx: 6 }, g);
  else if (role === 'relay') e = el('polygon', { points: `0,${-s - 10} ${s + 10},0 0,${s + 10} ${-s - 10},0` }, g);
  else e = el('circle', { r: s }, g);
  e.setAttribute('class', 'shape n-' + (role || 'idle'));
  return e;
}

function draw() {
  const L = $('links'), N = $('nodes'), P = $('paths');
  L.replaceChildren(); N.replaceChildren(); P.replaceChildren();
  for (const l of links())
    el('line', { x1: l.a.x, y1: l.a.y, x2: l.b.x, y2: l.b.y, class: 'link' + (l.down ? ' down' : '') }, L);
  drawPaths(P);
  const r = roles();
  for (const p of state.peers) {
    const role = r.get(p.id);
    const g = el('g', { class: 'node' + (p.up ? '' : ' down') + (p.config && p.config.paused ? ' paused' : '') +
      (state.selectedPeer === p.id ? ' selected' : ''), transform: `translate(${p.x},${p.y})`,
      'data-peer': p.id, tabindex: 0 }, N);
    shape(role, g);
    const t = el('text', { y: -4 }, g); t.textContent = 'peer ' + p.id;
    const files = p.ls ? p.ls.items.map((i) => i.name).join(', ') : (p.up ? '' : 'not running');
    const f = el('text', { y: 100, class: 'files' }, g);
    f.textContent = files.length > 18 ? files.slice(0, 17) + '…' : files;
    if (p.config && p.config.paused) { const b = el('text', { y: 34, class: 'badge' }, g); b.textContent = 'paused'; }
    g.addEventListener('click', () => showPeer(p.id));
  }
}

/* The reverse path(s) of the hit so far, drawn wide under the links, and the transfer. */
function drawPaths(P) {
  const cur = state.timeline[state.cursor];
  if (!cur || !cur.qid) return;
  for (let i = 0; i <= state.cursor; i++) {
    const e = state.timeline[i];
    if (e.qid !== cur.qid) continue;
    const a = state.byId.get(e.peer), b = state.byId.get(peerOf(e.to_peer, e.to));
    if ((e.type === 'found_sent' || e.type === 'found_relayed') && a && b)
      el('line', { x1: a.x, y1: a.y, x2: b.x, y2: b.y, class: 'path-found' }, P);
    if (e.type === 'transfer_started' && e.role === 'requester') {
      const h = state.byId.get(peerOf(e.from_peer, e.from));
      if (h && a) {
        const mx = (h.x + a.x) / 2 + (a.y - h.y) * 0.25, my = (h.y + a.y) / 2 - (a.x - h.x) * 0.25;
        el('path', { d: `M${h.x},${h.y} Q${mx},${my} ${a.x},${a.y}`, class: 'l-xfer', 'marker-end': 'url(#arrow)' }, P);
      }
    }
  }
}

/* --- animating one event --- */

function animateMsg(fromId, toId, kind, label) {
  const a = state.byId.get(fromId), b = state.byId.get(toId);
  if (!a || !b) return;
  const g = el('g', { class: 'msg' }, $('msgs'));
  el('circle', { r: 16, class: kind === 'GET' ? 'm-get' : 'm-found' }, g);
  const t = el('text', { y: -24 }, g); t.textContent = label;
  const dur = STEP_MS / state.speed, t0 = performance.now();
  function frame(now) {
    const k = Math.min(1, (now - t0) / dur);
    g.setAttribute('transform', `translate(${a.x + (b.x - a.x) * k},${a.y + (b.y - a.y) * k})`);
    if (k < 1) requestAnimationFrame(frame); else setTimeout(() => g.remove(), 150 / state.speed);
  }
  requestAnimationFrame(frame);
}

function flashDrop(peerId, why) {
  const p = state.byId.get(peerId);
  if (!p) return;
  const g = el('g', { class: 'drop', transform: `translate(${p.x + 70},${p.y - 70})` }, $('msgs'));
  const x = el('text', {}, g); x.textContent = '✕';
  const w = el('text', { y: 34, class: 'why' }, g); w.textContent = why;
  setTimeout(() => g.remove(), (2 * STEP_MS) / state.speed);
}

function pulse(peerId) {
  const p = state.byId.get(peerId);
  if (!p) return;
  const c = el('circle', { cx: p.x, cy: p.y, r: 82, class: 'pulse' }, $('msgs'));
  setTimeout(() => c.remove(), STEP_MS / state.speed);
}

function animate(e) {
  const to = peerOf(e.to_peer, e.to);
  switch (e.type) {
    case 'forwarded': animateMsg(e.peer, to, 'GET', 'GET'); break;
    case 'found_sent': case 'found_relayed': animateMsg(e.peer, to, 'FOUND', 'FOUND'); break;
    case 'received': case 'found_received': pulse(e.peer); break;
    case 'duplicate': flashDrop(e.peer, 'duplicate'); break;
    case 'dropped': case 'found_dropped': flashDrop(e.peer, e.reason || 'dropped'); break;
    case 'send_failed': flashDrop(e.peer, 'not sent: ' + e.reason); break;
    default: break;
  }
}

/* --- the event list --- */

function who(id, addr) {
  const n = peerOf(id, addr);
  return n ? 'peer ' + n : (addr || '?');
}

function describe(e) {
  const q = e.qid ? 'q' + e.qid.slice(0, 4) + ' ' : '';
  const n = e.name ? `"${e.name}"` : '';
  switch (e.type) {
    case 'query_started': return `${q}started: looking for ${n} (ttl ${e.ttl})`;
    case 'received': return `${q}GET ${n} received from ${who(e.from_peer, e.from)} (ttl ${e.ttl}, hops ${e.hops})`;
    case 'forwarded': return `${q}GET ${n} sent to ${who(e.to_peer, e.to)} (ttl ${e.ttl})`;
    case 'duplicate': return `${q}duplicate GET from ${who(e.from_peer, e.from)} dropped`;
    case 'dropped': return `${q}GET from ${who(e.from_peer, e.from)} dropped: ${e.reason}`;
    case 'searched': return `${q}searched its share: ${e.hits} hit${e.hits === 1 ? '' : 's'}`;
    case 'found_sent': return `${q}HIT ${n}: FOUND sent to ${who(e.to_peer, e.to)}`;
    case 'found_relayed': return `${q}FOUND relayed from ${who(e.from_peer, e.from)} to ${who(e.to_peer, e.to)}`;
    case 'found_received': return `${q}FOUND arrived from ${who(e.from_peer, e.from)} (holder peer ${e.holder})`;
    case 'found_dropped': return `${q}FOUND dropped: ${e.reason}`;
    case 'send_failed': return `${q}${e.msg} to ${who(e.to_peer, e.to)} not sent: ${e.reason}`;
    case 'transfer_started': return `${q}transfer of ${n} started (${e.role})`;
    case 'transfer_progress': return `${q}transfer ${e.bytes} of ${e.size} bytes`;
    case 'transfer_done': return `${q}transfer of ${n} done: ${e.bytes} bytes (${e.role})`;
    case 'transfer_failed': return `${q}transfer failed: ${e.reason}`;
    case 'peer_up': return `up (${e.reason})`;
    case 'peer_down': return `down (${e.reason})`;
    case 'lost': return `${e.lost} events lost`;
    default: return e.type;
  }
}

function rowFor(e, i) {
  const li = document.createElement('li');
  li.className = 't-' + e.type;
  li.dataset.type = e.type; li.dataset.peer = e.peer; li.dataset.qid = e.qid || ''; li.dataset.index = i;
  li.textContent = `peer ${e.peer}  ${describe(e)}`;
  li.addEventListener('click', () => { pause(); state.cursor = i; render(true); showEvent(e); });
  return li;
}

function rebuildList() {
  const ol = $('events');
  ol.replaceChildren(...state.timeline.map(rowFor));
  render(false);
}

/* Marks what has been shown, the current row, redraws roles; scrolls to the cursor. */
function render(scroll) {
  const rows = $('events').children;
  for (let i = 0; i < rows.length; i++) {
    rows[i].classList.toggle('pending', i > state.cursor);
    rows[i].classList.toggle('shown', i <= state.cursor);
    rows[i].classList.toggle('current', i === state.cursor);
  }
  if (scroll && rows[state.cursor]) rows[state.cursor].scrollIntoView({ block: 'nearest' });
  draw();
}

/* --- playing --- */

function setStatus(text, cls) { const s = $('status'); s.textContent = text; s.className = 'status ' + (cls || ''); }

function statusLine() {
  const mode = state.playing ? (state.replaying ? 'replaying q' + state.replaying.slice(0, 4) : 'live') : 'paused';
  setStatus(`${mode}: event ${state.cursor + 1} of ${state.timeline.length}`, state.playing ? 'live' : 'paused');
  $('live').classList.toggle('on', state.playing && !state.replaying);
  $('pause').classList.toggle('on', !state.playing);
}

function tick() {
  state.timer = null;
  if (!state.playing) return;
  if (state.cursor < state.timeline.length - 1) {
    state.cursor++;
    const e = state.timeline[state.cursor];
    animate(e);
    render(true);
    if (e.type === 'found_received' || e.type === 'transfer_done' || e.type === 'found_sent') loadPeers();
    state.timer = setTimeout(tick, STEP_MS / state.speed);
  }
  statusLine();
}

function kick() { if (state.playing && !state.timer) tick(); }
function pause() { state.playing = false; clearTimeout(state.timer); state.timer = null; statusLine(); }

function goLive() {
  state.replaying = null;
  state.timeline = state.all;
  rebuildList();
  state.playing = true;
  kick();
  statusLine();
}

function step(d) {
  pause();
  const c = Math.max(-1, Math.min(state.timeline.length - 1, state.cursor + d));
  if (c === state.cursor) return;
  state.cursor = c;
  if (d > 0) animate(state.timeline[c]);
  render(true);
  statusLine();
}

function replay(qid) {
  if (!qid) return;
  state.replaying = qid;
  state.timeline = state.all.filter((e) => e.qid === qid);
  state.cursor = -1;
  rebuildList();
  state.playing = true;
  kick();
}

function addEvent(e) {
  state.all.push(e);
  if (e.type === 'query_started') {
    const o = document.createElement('option');
    o.value = e.qid; o.textContent = `q${e.qid.slice(0, 4)} peer ${e.peer} "${e.name}"`;
    $('replay-qid').appendChild(o);
  }
  if (e.type === 'peer_up' || e.type === 'peer_down') loadPeers();
  if (!state.replaying) {
    $('events').appendChild(rowFor(e, state.all.length - 1));
    render(false);
    kick();
    statusLine();
  }
}

function connect() {
  const es = new EventSource('/events');
  es.onmessage = (m) => {
    const id = Number(m.lastEventId);
    if (id <= state.lastId) return;  /* a reconnect sends the history again */
    state.lastId = id;
    try { addEvent(JSON.parse(m.data)); } catch (err) { /* not an event: ignore */ }
  };
  /* CLOSED: the server refused the stream (401), and EventSource gives up */
  es.onerror = () => setStatus(es.readyState === EventSource.CLOSED ? 'event stream refused: ' + NO_TOKEN
    : 'event stream lost: reconnecting…', 'paused');
}

/* --- panels --- */

function table(obj) {
  const t = document.createElement('table');
  for (const [k, v] of Object.entries(obj || {})) {
    const tr = t.insertRow();
    tr.insertCell().textContent = k;
    tr.insertCell().textContent = typeof v === 'object' && v !== null ? JSON.stringify(v) : String(v);
  }
  return t;
}

function showPeer(id) {
  state.selectedPeer = id;
  const p = state.byId.get(id);
  const d = $('detail');
  d.replaceChildren();
  const h = document.createElement('h2');
  h.textContent = `peer ${id}` + (p && p.up ? '' : ' (not running)');
  d.appendChild(h);
  if (p && p.config) {
    const c = p.config;
    d.appendChild(table({ address: c.host + ':' + c.port, ttl: c.ttl, max_ttl: c.max_ttl,
      neighbours: c.neighbours.map((a) => who(0, a)).join(', '), links_down: c.links_down.map((a) => who(0, a)).join(', ') || 'none',
      paused: c.paused, share_dir: c.share_dir,
      share: p.ls ? p.ls.items.map((i) => `${i.name} (${i.size} B)`).join(', ') : '' }));
    const s = document.createElement('h2'); s.textContent = 'stats'; d.appendChild(s);
    const st = Object.assign({}, p.stats); delete st.peer;
    const nz = Object.fromEntries(Object.entries(st).filter(([k, v]) => typeof v === 'number' && v));
    d.appendChild(table(Object.keys(nz).length ? nz : { counters: 'all 0' }));
  }
  $('cmd-peer').value = String(id);
  fillNeighbours();
  render(true);  /* the panel grew: keep the current event in view */
}

function showEvent(e) {
  const d = $('detail');
  d.replaceChildren();
  const h = document.createElement('h2'); h.textContent = `event: ${e.type} at peer ${e.peer}`;
  d.appendChild(h);
  d.appendChild(table(e));
}

/* --- commands --- */

function fillPeerSelect() {
  const s = $('cmd-peer'), keep = s.value;
  s.replaceChildren(...state.peers.map((p) => { const o = document.createElement('option'); o.value = p.id; o.textContent = p.id; return o; }));
  if ([...s.options].some((o) => o.value === keep)) s.value = keep;
  fillNeighbours();
}

function fillNeighbours() {
  const p = state.byId.get(Number($('cmd-peer').value));
  const s = $('cmd-nb'), keep = s.value;
  s.replaceChildren(...((p && p.config && p.config.neighbours) || []).map((a) => {
    const o = document.createElement('option'); o.value = a; o.textContent = who(0, a); return o;
  }));
  /* a value no option has would leave nothing selected: keep it only if it is still there */
  if ([...s.options].some((o) => o.value === keep)) s.value = keep;
}

function commandLine() {
  const peer = $('cmd-peer').value, verb = $('cmd-verb').value;
  const arg = $('cmd-arg').value.trim(), nb = $('cmd-nb').value;
  const quote = (s) => "'" + s.replace(/'/g, "'\\''") + "'";
  switch (verb) {
    case 'get': return `peer ${peer} get ${quote(arg)} --json`;
    case 'search': return `peer ${peer} search ${quote(arg)}`;
    case 'ttl': return `peer ${peer} modify ttl ${quote(arg)}`;
    case 'link-down': return `peer ${peer} link down ${nb}`;
    case 'link-up': return `peer ${peer} link up ${nb}`;
    default: return `peer ${peer} ${verb}`;
  }
}

async function runCommand(ev) {
  ev.preventDefault();
  const line = commandLine(), out = $('cmd-out');
  out.className = ''; out.textContent = '$ floodshare ' + line + '\n…';
  if (!state.replaying) { state.playing = true; kick(); }
  try {
    const r = await fetch('/api/cmd', { method: 'POST', body: line,
      headers: { 'Content-Type': 'text/plain', 'X-Floodshare': '1' } });
    const text = await r.text();
    if (!r.ok) { out.className = 'fail'; out.textContent = r.status === 401 ? NO_TOKEN : text; return; }
    const res = JSON.parse(text);
    out.className = res.exit === 0 ? '' : 'fail';
    out.textContent = `$ floodshare ${res.command}\n${res.stdout}${res.stderr}(exit ${res.exit})`;
  } catch (e) {
    out.className = 'fail'; out.textContent = 'the dashboard did not answer: ' + e.message;
  }
  loadPeers();
}

function verbChanged() {
  const v = $('cmd-verb').value;
  $('cmd-arg').hidden = !['get', 'search', 'ttl'].includes(v);
  $('cmd-nb').hidden = !v.startsWith('link');
  $('cmd-arg').placeholder = v === 'ttl' ? '2' : '4.txt';
}

$('live').addEventListener('click', goLive);
$('pause').addEventListener('click', pause);
$('back').addEventListener('click', () => step(-1));
$('fwd').addEventListener('click', () => step(1));
$('speed').addEventListener('change', (e) => { state.speed = Number(e.target.value); });
$('replay').addEventListener('click', () => replay($('replay-qid').value));
$('cmd-form').addEventListener('submit', runCommand);
$('cmd-verb').addEventListener('change', verbChanged);
$('cmd-peer').addEventListener('change', fillNeighbours);
const sp = new URLSearchParams(location.search).get('speed');
if (sp) { state.speed = Number(sp) || 1; $('speed').value = sp; }
verbChanged();
statusLine();
loadPeers().then(connect);
setInterval(loadPeers, 5000);
