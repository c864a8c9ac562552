/* floodshare web: the page. Plain JavaScript, no library: it draws the peers from
 * /api/peers (placed by topology.json's layout), reads trace events from /events
 * (server-sent events) and animates them one by one; every button runs a control command
 * through POST /api/cmd, the same command line the CLI takes ("peer 2 get 4.txt"), or a
 * reshape through POST /api/topology ("link 2 5", as scripts/topology takes it).
 *
 * It opens at now: events from before it opened are listed (replayable), not animated.
 * The graph shows the state as of the event at the cursor: shares without the files
 * downloaded later, the pauses and cuts the page last read before that event, and events of
 * an earlier topology (a peer id now at another address) are listed but not drawn.
 *
 * The page never sees the dashboard's token: opening the printed URL (?token=...) set it in
 * an HttpOnly, SameSite=Strict cookie, which the browser sends with every request of this
 * page, EventSource included. A 401 means that cookie is missing or stale. */
'use strict';

const $ = (id) => document.getElementById(id);
const SVGNS = 'http://www.w3.org/2000/svg';
const STEP_MS = 700;          /* one event at 1x */
const PIECES_MAX = 32;        /* piece dots on the page at once: more are not drawn */
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
  nowSeq: null,               /* events numbered below it happened before the page opened */
  topo: {},                   /* the run folder's topology.json (layout, links) */
  snaps: [],                  /* pauses, cuts, ttls as read, each after event `at` */
  scale: 1,
  renderPending: false, scrollSoon: false,
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
    const [r, t] = await Promise.all([fetch('/api/peers'), fetch('/api/topology')]);
    if (r.status === 401) throw new Error(NO_TOKEN);
    if (!r.ok) throw new Error(await r.text());
    const doc = await r.json();
    state.topo = t.ok ? await t.json() : {};
    if (state.nowSeq === null) state.nowSeq = doc.events_now || 0;
    state.peers = doc.peers;
    state.byId = new Map(); state.byAddr = new Map();
    place(doc.peers);
    doc.peers.forEach((p) => {
      state.byId.set(p.id, p);
      if (p.config) state.byAddr.set(selfAddr(p.config), p);
    });
    snapshot();
    fillPeerSelect();
    draw();
    if (state.selectedPeer != null) showPeer(state.selectedPeer);
  } catch (e) {
    setStatus('cannot read the peers: ' + e.message, 'paused');
  }
}

/* What the page knows of pauses, cuts and ttls, with the event it was read after: the graph
 * shows the last reading at or before the animated event (the first one for events older
 * than the page). Bounded: a class session reads it every 5 s. */
function snapshot() {
  const m = new Map();
  for (const p of state.peers)
    if (p.config) m.set(p.id, { paused: !!p.config.paused, links_down: p.config.links_down || [], ttl: p.config.ttl });
  state.snaps.push({ at: state.all.length - 1, m });
  if (state.snaps.length > 2000) state.snaps.splice(1, 1);
}

/* Where each peer is drawn: the shape scripts/topology wrote into topology.json's layout
 * (the star's hub in the centre, a tree as a tree, a grid as a grid), else a circle. Peers
 * the shape does not know (added later) go in a row along the bottom. */
function place(peers) {
  const lay = (state.topo && state.topo.layout) || { kind: 'free' };
  const W = VIEW.w, H = VIEW.h, M = 110;
  const pos = new Map();
  const ids = peers.map((p) => p.id);
  if (lay.kind === 'star' && ids.includes(lay.hub)) {
    const rest = ids.filter((i) => i !== lay.hub);
    pos.set(lay.hub, [W / 2, H / 2]);
    rest.forEach((id, i) => {
      const a = (2 * Math.PI * i) / rest.length - Math.PI / 2;
      pos.set(id, [W / 2 + VIEW.r * Math.cos(a), H / 2 + VIEW.r * Math.sin(a)]);
    });
  } else if (lay.kind === 'grid' && lay.rows && lay.cols) {
    for (const id of ids) {
      const r = Math.floor((id - 1) / lay.cols), c = (id - 1) % lay.cols;
      if (r >= lay.rows) continue;
      pos.set(id, [M + (lay.cols > 1 ? c * (W - 2 * M) / (lay.cols - 1) : (W - 2 * M) / 2),
        M + (lay.rows > 1 ? r * (H - 2 * M - 90) / (lay.rows - 1) : (H - 2 * M) / 2)]);
    }
  } else if (lay.kind === 'tree' && ids.includes(lay.root || 1)) {
    const adj = new Map(ids.map((i) => [i, []]));
    for (const [a, b] of (state.topo.links || [])) {
      if (adj.has(a) && adj.has(b)) { adj.get(a).push(b); adj.get(b).push(a); }
    }
    const levels = [[lay.root || 1]], seen = new Set(levels[0]);
    while (levels[levels.length - 1].length) {
      const next = [];
      for (const id of levels[levels.length - 1])
        for (const n of adj.get(id).sort((x, y) => x - y)) if (!seen.has(n)) { seen.add(n); next.push(n); }
      levels.push(next);
    }
    levels.pop();
    levels.forEach((lv, d) => lv.forEach((id, i) => pos.set(id, [M + (i + 0.5) * (W - 2 * M) / lv.length,
      M + (levels.length > 1 ? d * (H - 2 * M - 90) / (levels.length - 1) : 0)])));
  }
  const known = ids.filter((i) => pos.has(i));
  const extra = ids.filter((i) => !pos.has(i));
  if (!known.length) {
    extra.forEach((id, i) => {
      const a = (2 * Math.PI * i) / extra.length - Math.PI / 2;
      pos.set(id, [W / 2 + VIEW.r * Math.cos(a), H / 2 + VIEW.r * Math.sin(a)]);
    });
  } else {
    extra.forEach((id, i) => pos.set(id, [M + (i + 0.5) * (W - 2 * M) / extra.length, H - 70]));
  }
  /* big nodes for a few peers, smaller ones for many */
  state.scale = Math.max(0.4, Math.min(1, 2.6 / Math.sqrt(Math.max(1, ids.length))));
  for (const p of peers) [p.x, p.y] = pos.get(p.id);
}

function peerOf(id, addr) {
  if (id) return id;
  const p = addr && state.byAddr.get(addr);
  return p ? p.id : 0;
}

/* The event at the cursor, its index in state.all (-1: before every event). */
function asOf() {
  const cur = state.timeline[state.cursor];
  if (cur) return cur._i;
  const first = state.timeline[0];
  return first ? first._i - 1 : state.all.length - 1;
}

/* The address a peer names itself by and its neighbours list: its advertise address
 * (config --json), else host:port with an IPv6 host in brackets, as the peers write it. */
function selfAddr(c) {
  if (c.advertise) return c.advertise;
  return (c.host.includes(':') ? '[' + c.host + ']' : c.host) + ':' + c.port;
}

/* An event of an earlier topology: its peer id is now someone at another address. */
function isOld(e) {
  const p = state.byId.get(e.peer);
  return !!(p && p.config && e.addr && e.addr !== selfAddr(p.config));
}

/* Pauses, cuts and ttls as the page last read them at or before event g. */
function stateAt(g) {
  let snap = state.snaps[0];
  for (const s of state.snaps) if (s.at <= g) snap = s; else break;
  return snap ? snap.m : new Map();
}

/* Peer p's share as of event g: what it lists now, less what it downloaded after g. */
function filesAt(p, g) {
  if (!p.ls) return null;
  const later = new Set();
  for (let i = Math.max(0, g + 1); i < state.all.length; i++) {
    const e = state.all[i];
    if (e.type === 'transfer_done' && e.role === 'requester' && e.peer === p.id && !isOld(e))
      later.add(e.name);
  }
  return p.ls.items.map((i) => i.name).filter((n) => !later.has(n));
}

/* Roles in the query of the event at the cursor, from the events shown so far. */
function roles() {
  const cur = state.timeline[state.cursor];
  const r = new Map();
  if (!cur || !cur.qid || isOld(cur)) return r;
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

/* The links, each once, from every peer's neighbours; down when either end had it cut as of
 * the event at the cursor. */
function links(st) {
  const seen = new Map();
  for (const p of state.peers) {
    if (!p.config) continue;
    const mine = st.get(p.id) || p.config;
    for (const nb of p.config.neighbours) {
      const q = state.byAddr.get(nb);
      if (!q) continue;
      const key = Math.min(p.id, q.id) + '-' + Math.max(p.id, q.id);
      const theirs = q.config ? (st.get(q.id) || q.config) : null;
      const down = mine.links_down.includes(nb) ||
        (theirs && q.config && theirs.links_down.includes(selfAddr(p.config)));
      const l = seen.get(key) || { a: p, b: q, down: false };
      l.down = l.down || down;
      seen.set(key, l);
    }
  }
  return [...seen.values()];
}

/* The [sync] pairs (config --json's sync.pairs): item name kept in step on peer n from
 * peer m, m named by a peer id of the run folder or HOST:PORT. */
function syncPairs() {
  const out = [];
  for (const n of state.peers) {
    const pairs = (n.config && n.config.sync && n.config.sync.pairs) || [];
    for (const s of pairs) {
      const m = /^[0-9]+$/.test(s.peer) ? state.byId.get(Number(s.peer)) : state.byAddr.get(s.peer);
      if (m && m !== n) out.push({ m, n, name: s.name });
    }
  }
  return out;
}

/* A sync pair's arrow from M to N: beside the link (offset), so both stay visible. */
function syncLine(m, n, cls, layer) {
  const dx = n.x - m.x, dy = n.y - m.y, len = Math.hypot(dx, dy) || 1;
  const ox = (-dy / len) * 14, oy = (dx / len) * 14, cut = 90 * state.scale / len;
  return el('line', { x1: m.x + ox + dx * cut, y1: m.y + oy + dy * cut, x2: n.x + ox - dx * cut,
    y2: n.y + oy - dy * cut, class: cls, 'marker-end': 'url(#arrow)' }, layer);
}

function draw() {
  const L = $('links'), N = $('nodes'), P = $('paths');
  L.replaceChildren(); N.replaceChildren(); P.replaceChildren();
  const g0 = asOf(), st = stateAt(g0);
  for (const l of links(st))
    el('line', { x1: l.a.x, y1: l.a.y, x2: l.b.x, y2: l.b.y, class: 'link' + (l.down ? ' down' : '') }, L);
  for (const s of syncPairs()) {
    const line = syncLine(s.m, s.n, 'l-sync', L);
    line.dataset.sync = s.name;
    const t = el('title', {}, line); t.textContent = `sync ${s.name}: peer ${s.n.id} from peer ${s.m.id}`;
  }
  drawPaths(P);
  const r = roles();
  for (const p of state.peers) {
    const role = r.get(p.id);
    const paused = st.has(p.id) ? st.get(p.id).paused : !!(p.config && p.config.paused);
    const g = el('g', { class: 'node' + (p.up ? '' : ' down') + (paused ? ' paused' : '') +
      (state.selectedPeer === p.id ? ' selected' : ''),
      transform: `translate(${p.x},${p.y}) scale(${state.scale})`, 'data-peer': p.id, tabindex: 0 }, N);
    shape(role, g);
    const t = el('text', { y: -4 }, g); t.textContent = 'peer ' + p.id;
    const names = filesAt(p, g0);
    const files = names ? names.join(', ') : (p.up ? '' : 'not running');
    const f = el('text', { y: 100, class: 'files' }, g);
    f.textContent = files.length > 18 ? files.slice(0, 17) + '…' : files;
    f.dataset.files = files;
    if (paused) { const b = el('text', { y: -42, class: 'badge' }, g); b.textContent = 'paused'; }
    const ttl = st.has(p.id) ? st.get(p.id).ttl : (p.config && p.config.ttl);
    if (ttl) { const b = el('text', { y: 34, class: 'ttl' }, g); b.textContent = 'ttl ' + ttl; }
    g.addEventListener('click', () => showPeer(p.id));
  }
}

/* The control point of the transfer curve from holder h to requester a: drawPaths draws
 * the curve, a piece_received rides along it. */
function xferCurve(h, a) {
  return { mx: (h.x + a.x) / 2 + (a.y - h.y) * 0.25, my: (h.y + a.y) / 2 - (a.x - h.x) * 0.25 };
}

/* The reverse path(s) of the hit so far, drawn wide under the links, and the transfer. */
function drawPaths(P) {
  const cur = state.timeline[state.cursor];
  if (!cur || !cur.qid || isOld(cur)) return;
  for (let i = 0; i <= state.cursor; i++) {
    const e = state.timeline[i];
    if (e.qid !== cur.qid) continue;
    const a = state.byId.get(e.peer), b = state.byId.get(peerOf(e.to_peer, e.to));
    if ((e.type === 'found_sent' || e.type === 'found_relayed') && a && b)
      el('line', { x1: a.x, y1: a.y, x2: b.x, y2: b.y, class: 'path-found' }, P);
    if (e.type === 'transfer_started' && e.role === 'requester') {
      const h = state.byId.get(peerOf(e.from_peer, e.from));
      if (h && a) {
        const { mx, my } = xferCurve(h, a);
        el('path', { d: `M${h.x},${h.y} Q${mx},${my} ${a.x},${a.y}`, class: 'l-xfer', 'marker-end': 'url(#arrow)' }, P);
      }
    }
  }
}

/* --- animating one event --- */

function stepMs() { return STEP_MS / state.speed; }

function animateMsg(fromId, toId, kind, label) {
  const a = state.byId.get(fromId), b = state.byId.get(toId);
  if (!a || !b) return;
  const g = el('g', { class: 'msg', 'data-label': label }, $('msgs'));
  el('circle', { r: 16, class: kind === 'GET' ? 'm-get' : 'm-found' }, g);
  const t = el('text', { y: -24 }, g); t.textContent = label;
  const dur = stepMs(), t0 = performance.now();
  function frame(now) {
    const k = Math.min(1, (now - t0) / dur);
    g.setAttribute('transform', `translate(${a.x + (b.x - a.x) * k},${a.y + (b.y - a.y) * k})`);
    if (k < 1) requestAnimationFrame(frame); else setTimeout(() => g.remove(), 150 / state.speed);
  }
  requestAnimationFrame(frame);
}

/* piece_received (live only: one per piece, a swarmed get's requester says which holder
 * sent which piece): a dot along the requester's transfer curve from that holder. Never
 * listed nor kept in the timeline (2048 per GiB would bury the flood and slow the page);
 * drawn only while the page follows now, at most PIECES_MAX at once. */
function animatePiece(e) {
  if (state.replaying || !state.playing || !atNow() || isOld(e)) return;
  const a = state.byId.get(e.peer), h = state.byId.get(peerOf(e.holder, e.from));
  const layer = $('msgs');
  if (!a || !h || layer.querySelectorAll('circle.piece').length >= PIECES_MAX) return;
  const { mx, my } = xferCurve(h, a);
  const c = el('circle', { r: 7, class: 'piece', 'data-holder': h.id, 'data-piece': e.count }, layer);
  const dur = stepMs(), t0 = performance.now();
  function frame(now) {
    const k = Math.min(1, (now - t0) / dur), u = 1 - k;
    c.setAttribute('cx', u * u * h.x + 2 * u * k * mx + k * k * a.x);
    c.setAttribute('cy', u * u * h.y + 2 * u * k * my + k * k * a.y);
    if (k < 1) requestAnimationFrame(frame); else c.remove();
  }
  requestAnimationFrame(frame);
}

function flashDrop(peerId, why) {
  const p = state.byId.get(peerId);
  if (!p) return;
  const g = el('g', { class: 'drop', transform: `translate(${p.x + 70 * state.scale},${p.y - 70 * state.scale})` }, $('msgs'));
  const x = el('text', {}, g); x.textContent = '✕';
  const w = el('text', { y: 34, class: 'why' }, g); w.textContent = why;
  setTimeout(() => g.remove(), 2 * stepMs());
}

/* sync_started / sync_done: the pair's arrow from M (from) to N (peer) lights up a moment. */
function flashSync(e) {
  const n = state.byId.get(e.peer), m = state.byId.get(peerOf(e.from_peer, e.from));
  if (!n || !m) return;
  const line = syncLine(m, n, 'l-sync flash', $('msgs'));
  setTimeout(() => line.remove(), 2 * stepMs());
}

function pulse(peerId) {
  const p = state.byId.get(peerId);
  if (!p) return;
  const c = el('circle', { cx: p.x, cy: p.y, r: 82 * state.scale, class: 'pulse' }, $('msgs'));
  setTimeout(() => c.remove(), stepMs());
}

function animate(e) {
  if (!e || isOld(e)) return;  /* an earlier topology's event: listed, not drawn */
  const to = peerOf(e.to_peer, e.to);
  switch (e.type) {
    case 'forwarded': animateMsg(e.peer, to, 'GET', `GET ttl ${e.ttl}`); break;
    case 'found_sent': case 'found_relayed': animateMsg(e.peer, to, 'FOUND', 'FOUND'); break;
    case 'received': case 'found_received': pulse(e.peer); break;
    case 'duplicate': flashDrop(e.peer, 'duplicate'); break;
    case 'dropped': case 'found_dropped': flashDrop(e.peer, e.reason || 'dropped'); break;
    case 'send_failed': flashDrop(e.peer, 'not sent: ' + e.reason); break;
    case 'sync_started': case 'sync_done': flashSync(e); break;
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
    case 'offer_received': return `offer of ${n} from ${who(e.from_peer, e.from)}`;
    case 'offer_accepted': return `offer of ${n} accepted: pulling it`;
    case 'offer_refused': return `offer of ${n} refused: ${e.detail}`;
    case 'browse_served': return `listed ${e.name || 'the top level'} to ${who(e.from_peer, e.from)}: ${e.count} entries`;
    case 'browse_refused': return `browse of ${e.name || 'the top level'} refused: ${e.detail}`;
    case 'sync_started': return `sync of ${n} from ${who(e.from_peer, e.from)} started`;
    case 'sync_done': return `sync of ${n} done: ${e.count} files changed, ${e.bytes} bytes moved`;
    case 'sync_failed': return `sync of ${n} failed: ${e.detail}`;
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

/* Marks what has been shown, the current row, events of an earlier topology; redraws the
 * graph as of the cursor; scrolls to it. */
function render(scroll) {
  const rows = $('events').children;
  for (let i = 0; i < rows.length; i++) {
    rows[i].classList.toggle('pending', i > state.cursor);
    rows[i].classList.toggle('shown', i <= state.cursor);
    rows[i].classList.toggle('current', i === state.cursor);
    const e = state.timeline[i];
    rows[i].classList.toggle('old', !!e && isOld(e));
  }
  if (scroll && rows[state.cursor]) rows[state.cursor].scrollIntoView({ block: 'nearest' });
  draw();
}

/* The history comes as a burst of thousands of events: one render per frame, not per event. */
function renderSoon(scroll) {
  state.scrollSoon = state.scrollSoon || scroll;
  if (state.renderPending) return;
  state.renderPending = true;
  requestAnimationFrame(() => {
    state.renderPending = false;
    const sc = state.scrollSoon;
    state.scrollSoon = false;
    render(sc);
  });
}

/* --- playing --- */

function setStatus(text, cls) { const s = $('status'); s.textContent = text; s.className = 'status ' + (cls || ''); }

function atNow() { return !state.replaying && state.cursor === state.timeline.length - 1; }

function statusLine() {
  const n = state.timeline.length, behind = n - 1 - state.cursor;
  let text;
  if (state.replaying) text = `${state.playing ? 'replaying' : 'paused in'} q${state.replaying.slice(0, 4)}: event ${state.cursor + 1} of ${n}`;
  else if (!state.playing) text = `paused: event ${state.cursor + 1} of ${n}`;
  else if (behind <= 0) text = `live: now (${n} event${n === 1 ? '' : 's'})`;
  else text = `live: event ${state.cursor + 1} of ${n}, ${behind} to go`;
  setStatus(text, state.playing ? 'live' : 'paused');
  $('live').classList.toggle('on', state.playing && atNow());
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
    state.timer = setTimeout(tick, stepMs());
  }
  statusLine();
}

function kick() { if (state.playing && !state.timer) tick(); }
function pause() { state.playing = false; clearTimeout(state.timer); state.timer = null; statusLine(); }
function play() { state.playing = true; kick(); statusLine(); }

/* Jump to now: the newest event, nothing in between animated, then follow new ones. */
function goLive() {
  clearTimeout(state.timer); state.timer = null;
  state.replaying = null;
  state.timeline = state.all;
  state.cursor = state.all.length - 1;
  rebuildList();
  state.playing = true;
  render(true);
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

/* Skip to the next event of one of these types (the interesting part of a long flood). */
function skipTo(types, what) {
  for (let i = state.cursor + 1; i < state.timeline.length; i++) {
    const e = state.timeline[i];
    if (!types.includes(e.type) || isOld(e)) continue;
    clearTimeout(state.timer); state.timer = null;
    state.cursor = i;
    animate(e);
    render(true);
    statusLine();
    if (state.playing) state.timer = setTimeout(tick, stepMs());
    return;
  }
  setStatus(`no ${what} after event ${state.cursor + 1}`, 'paused');
}

function replay(qid) {
  if (!qid) return;
  clearTimeout(state.timer); state.timer = null;
  state.replaying = qid;
  state.timeline = state.all.filter((e) => e.qid === qid);
  state.cursor = -1;
  rebuildList();
  state.playing = true;
  kick();
}

/* The query the summary is of: the one chosen, else the one at the cursor. */
function summaryQid() {
  const cur = state.timeline[state.cursor];
  return $('replay-qid').value || state.replaying || (cur && cur.qid) || '';
}

function showSummary() {
  const qid = summaryQid();
  if (!qid) { setStatus('choose a query first (the list "query", or click one of its events)', 'paused'); return; }
  const img = document.createElement('img');
  img.alt = 'the flood of query ' + qid;
  img.src = '/api/trace.svg?qid=' + encodeURIComponent(qid);
  img.onerror = () => { $('summary-svg').textContent = 'no picture of q' + qid.slice(0, 4) + ': its events are gone from the peers, or graphviz is missing'; };
  $('summary-title').textContent = `query q${qid.slice(0, 4)}: the whole flood (as floodshare trace ${qid.slice(0, 4)} --svg draws it)`;
  $('summary-svg').replaceChildren(img);
  $('summary-box').hidden = false;
}

function addEvent(e, id) {
  if (e.type === 'piece_received') { animatePiece(e); return; }
  e._i = state.all.length;
  state.all.push(e);
  const past = state.nowSeq !== null && id < state.nowSeq;
  if (e.type === 'query_started') {
    const o = document.createElement('option');
    o.value = e.qid; o.textContent = `q${e.qid.slice(0, 4)} peer ${e.peer} "${e.name}"`;
    $('replay-qid').appendChild(o);
  }
  if (e.type === 'peer_up' || e.type === 'peer_down') loadPeers();
  if (state.replaying) return;
  const wasAtNow = state.cursor === state.all.length - 2;
  $('events').appendChild(rowFor(e, state.all.length - 1));
  if (past) {
    /* opened at now: the past is listed, the live position follows it without animating */
    if (state.playing && wasAtNow) state.cursor = e._i;
    renderSoon(state.cursor === e._i);
  } else {
    kick();
  }
  statusLine();
}

function connect() {
  const es = new EventSource('/events');
  es.onmessage = (m) => {
    const id = Number(m.lastEventId);
    if (id <= state.lastId) return;  /* a reconnect sends the history again */
    state.lastId = id;
    let e;
    try { e = JSON.parse(m.data); } catch (err) { return; /* not an event: ignore */ }
    addEvent(e, id);
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
    d.appendChild(table({ address: selfAddr(c), ttl: c.ttl, max_ttl: c.max_ttl,
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
  d.appendChild(table(Object.fromEntries(Object.entries(e).filter(([k]) => !k.startsWith('_')))));
}

/* --- commands --- */

function fillPeerSelect() {
  const s = $('cmd-peer'), keep = s.value;
  s.replaceChildren(...state.peers.map((p) => { const o = document.createElement('option'); o.value = p.id; o.textContent = p.id; return o; }));
  if ([...s.options].some((o) => o.value === keep)) s.value = keep;
  for (const [id, pick] of [['topo-a', 0], ['topo-b', 1]]) {
    const t = $(id), was = t.value;
    t.replaceChildren(...state.peers.map((p) => { const o = document.createElement('option'); o.value = p.id; o.textContent = 'peer ' + p.id; return o; }));
    if ([...t.options].some((o) => o.value === was)) t.value = was;
    else if (t.options[pick]) t.selectedIndex = pick;
  }
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
  switch (verb) {
    case 'get': return `peer ${peer} get ${quote(arg)} --json`;
    case 'search': return `peer ${peer} search ${quote(arg)}`;
    case 'rm': return `peer ${peer} rm ${quote(arg)}`;
    case 'ttl': return `peer ${peer} modify ttl ${quote(arg)}`;
    case 'link-down': return `peer ${peer} link down ${nb}`;
    case 'link-up': return `peer ${peer} link up ${nb}`;
    default: return `peer ${peer} ${verb}`;
  }
}

function quote(s) { return "'" + s.replace(/'/g, "'\\''") + "'"; }

/* A result as a person reads it. get answers JSON (the page needs its query id); it is
 * told in a sentence, the JSON stays behind the JSON toggle. */
function readable(res) {
  const ok = res.exit === 0;
  let body = (res.stdout || '') + (res.stderr || '');
  if (/ get .* --json$/.test(res.command)) {
    const lines = (res.stdout || '').split('\n').filter((l) => l.trim());
    try {
      const d = JSON.parse(lines[lines.length - 1]);
      body = d.ok ? `downloaded "${d.name}" (${d.kind}, ${d.bytes} bytes) from peer ${d.peer}, ` +
        `${d.hops} hop${d.hops === 1 ? '' : 's'} away, in ${Number(d.seconds).toFixed(2)} s; MD5 ${d.md5} verified` +
        ` (query q${String(d.query_id).slice(0, 4)})`
        : `"${d.name}" not downloaded: ${d.error}`;
      if (res.stderr && !d.ok) body += '\n' + res.stderr;
    } catch (err) { /* not JSON: show it as it came */ }
  }
  return { ok, text: body.trim() || (ok ? 'done' : 'failed') };
}

function showResult(res, kind) {
  const out = $('cmd-out'), txt = $('cmd-text');
  out.className = res.exit === 0 ? '' : 'fail';
  out.textContent = `$ ${kind} ${res.command}\n${res.stdout}${res.stderr}(exit ${res.exit})`;
  const r = readable(res);
  txt.className = r.ok ? 'ok' : 'fail';
  txt.replaceChildren();
  const h = document.createElement('div'); h.className = 'cmdline';
  h.textContent = `${r.ok ? '✓' : '✗'} ${res.command.replace(/ --json$/, '')}${r.ok ? '' : ` (exit ${res.exit})`}`;
  const b = document.createElement('div'); b.className = 'says'; b.textContent = r.text;
  txt.append(h, b);
}

function showFailure(text) {
  $('cmd-out').className = 'fail'; $('cmd-out').textContent = text;
  $('cmd-text').className = 'fail'; $('cmd-text').textContent = text;
}

async function post(path, line, kind) {
  $('cmd-text').className = ''; $('cmd-text').textContent = '… ' + line;
  $('cmd-out').textContent = `$ ${kind} ${line}\n…`;
  try {
    const r = await fetch(path, { method: 'POST', body: line,
      headers: { 'Content-Type': 'text/plain', 'X-Floodshare': '1' } });
    const text = await r.text();
    if (!r.ok) { showFailure(r.status === 401 ? NO_TOKEN : text); return; }
    showResult(JSON.parse(text), kind);
  } catch (e) {
    showFailure('the dashboard did not answer: ' + e.message);
  }
  loadPeers();
}

async function runCommand(ev) {
  ev.preventDefault();
  if (!state.replaying && !state.playing) goLive();
  await post('/api/cmd', commandLine(), 'floodshare');
}

/* The reshaping buttons: scripts/topology's add-peer, remove-peer, link and unlink on this
 * dashboard's run folder. */
async function reshape(line) {
  if (!state.replaying && !state.playing) goLive();
  await post('/api/topology', line, 'scripts/topology');
}

function topoLine(what) {
  const a = $('topo-a').value, b = $('topo-b').value;
  if (what === 'add') {
    const files = $('topo-files').value.trim().split(/\s+/).filter((f) => f);
    return files.length ? 'add-peer --files ' + files.map(quote).join(' ') : 'add-peer';
  }
  if (what === 'remove') return `remove-peer ${a}`;
  return `${what} ${a} ${b}`;
}

function verbChanged() {
  const v = $('cmd-verb').value;
  $('cmd-arg').hidden = !['get', 'search', 'ttl', 'rm'].includes(v);
  $('cmd-nb').hidden = !v.startsWith('link');
  $('cmd-arg').placeholder = v === 'ttl' ? '2' : '4.txt';
}

$('live').addEventListener('click', goLive);
$('pause').addEventListener('click', pause);
$('play').addEventListener('click', play);
$('back').addEventListener('click', () => step(-1));
$('fwd').addEventListener('click', () => step(1));
$('speed').addEventListener('change', (e) => { state.speed = Number(e.target.value); });
$('skip-dup').addEventListener('click', () => skipTo(['duplicate'], 'duplicate'));
$('skip-hit').addEventListener('click', () => skipTo(['found_sent'], 'hit'));
$('skip-xfer').addEventListener('click', () => skipTo(['transfer_started', 'transfer_done'], 'transfer'));
$('replay').addEventListener('click', () => replay($('replay-qid').value));
$('summary').addEventListener('click', showSummary);
$('summary-close').addEventListener('click', () => { $('summary-box').hidden = true; });
$('cmd-form').addEventListener('submit', runCommand);
$('cmd-verb').addEventListener('change', verbChanged);
$('cmd-peer').addEventListener('change', fillNeighbours);
$('cmd-json').addEventListener('change', (e) => { $('cmd-out').hidden = !e.target.checked; });
$('topo-add').addEventListener('click', () => reshape(topoLine('add')));
$('topo-remove').addEventListener('click', () => reshape(topoLine('remove')));
$('topo-link').addEventListener('click', () => reshape(topoLine('link')));
$('topo-unlink').addEventListener('click', () => reshape(topoLine('unlink')));
const sp = new URLSearchParams(location.search).get('speed');
if (sp) { state.speed = Number(sp) || 1; $('speed').value = sp; }
verbChanged();
statusLine();
loadPeers().then(connect);
setInterval(loadPeers, 5000);
