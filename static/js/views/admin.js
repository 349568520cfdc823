// The admin view: stats, charts of the last minutes (sampled by the server
// once a second), a live event inspector, and connections (with a kick
// button).

import { el, showError, toast, when, pretty } from '../ui.js';
import { ago, duration, bytes } from '../summary.js';

const STATS = [
  ['totalConnections', 'Connections'],
  ['activeUsers', 'Active users'],
  ['cashierConnections', 'Cashier terminals'],
  ['rooms', 'Rooms'],
  ['bufferedEvents', 'Buffered events'],
  ['eventsPublished', 'Events published'],
];

const COUNTERS = [
  ['herald_events_delivered_total', 'Frames delivered'],
  ['herald_events_replayed_total', 'Events replayed'],
  ['herald_replay_misses_total', 'Replays not recovered'],
  ['herald_slow_consumer_closes_total', 'Slow consumers closed'],
];

const SVG = 'http://www.w3.org/2000/svg';
const CHARTS = [
  ['connections', 'Connections', ''],
  ['deliveriesPerSec', 'Deliveries', '/s'],
  ['publishesPerSec', 'Publishes', '/s'],
  ['replayedPerSec', 'Replayed', '/s'],
  ['slowCloses', 'Slow-consumer closes', ''],
];

function svg(tag, attrs) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}

/** A line chart of one series over the window: plain SVG, no library. The
 * x axis is time (the window's start to now, labelled under it); a gap in
 * the samples (a restart) stays a gap in time. */
function chart(samples, key, title, unit, windowSec) {
  const W = 300, H = 90, P = 4;
  const values = samples.map((s) => s[key]);
  const max = Math.max(1, ...values);
  const now = values.length ? values[values.length - 1] : 0;
  const end = samples.length ? samples[samples.length - 1].at : Date.now();
  const start = end - windowSec * 1000;
  const x = (at) => P + ((at - start) / (end - start || 1)) * (W - 2 * P);
  const box = svg('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart-svg', role: 'img', 'aria-label': `${title} over the last ${windowSec} s` });
  box.append(svg('line', { x1: P, y1: H - P, x2: W - P, y2: H - P, class: 'axis' }));
  for (const f of [0.25, 0.5, 0.75]) box.append(svg('line', { x1: P + f * (W - 2 * P), y1: H - P, x2: P + f * (W - 2 * P), y2: H - P - 4, class: 'axis' }));
  const shown = samples.filter((s) => s.at >= start);
  if (shown.length > 1) {
    const points = shown.map((s) => `${x(s.at).toFixed(1)},${(H - P - (s[key] / max) * (H - 2 * P)).toFixed(1)}`);
    box.append(svg('polyline', { points: points.join(' '), class: 'series' }));
  }
  const fmt = (v) => (Number.isInteger(v) ? String(v) : v.toFixed(1));
  const label = (sec) => (sec >= 60 ? `−${sec / 60} min` : `−${sec} s`);
  return el('figure', { class: 'card chart', dataset: { series: key, points: String(shown.length), last: fmt(now) } },
    el('figcaption', {}, el('span', { class: 'label' }, title), ' ', el('strong', {}, `${fmt(now)}${unit}`),
      el('span', { class: 'peak' }, ` peak ${fmt(max)}${unit}`)),
    box,
    el('div', { class: 'time-axis' }, el('span', {}, label(windowSec)), el('span', {}, label(windowSec / 2)), el('span', {}, 'now')));
}

/** Watches one user's stream or one venue's broadcasts as they pass. */
function inspector(token) {
  const rows = el('tbody', {});
  const status = el('span', { class: 'muted', id: 'inspector-status' }, 'not watching');
  const kind = el('select', { id: 'inspect-kind' }, el('option', { value: 'user' }, 'user'), el('option', { value: 'venue' }, 'venue'));
  const name = el('input', { id: 'inspect-name', type: 'text', placeholder: 'alice or main' });
  const filter = el('input', { id: 'inspect-filter', type: 'text', placeholder: 'filter by type' });
  const pause = el('button', { id: 'inspect-pause', type: 'button' }, 'Pause');
  let ws = null, paused = false, held = [];
  const matches = (row) => !filter.value || row.type.toUpperCase().includes(filter.value.trim().toUpperCase());
  function show(row) {
    const tr = el('tr', { class: 'event', title: 'show its payload', dataset: { type: row.type, seq: String(row.seq ?? '') } },
      el('td', {}, row.seq ?? '—'), el('td', {}, row.type), el('td', {}, row.origin || ''), el('td', {}, row.time || ''));
    tr.hidden = !matches(row);
    tr.row = row;
    // A click shows the whole frame under its row (again: hides it).
    tr.addEventListener('click', () => {
      const next = tr.nextElementSibling;
      if (next && next.classList.contains('payload-row')) { next.remove(); return; }
      const detail = el('tr', { class: 'payload-row' }, el('td', { colspan: '4' }, el('pre', { class: 'payload' }, pretty(row.msg))));
      detail.row = row;
      tr.after(detail);
    });
    rows.prepend(tr);
    while (rows.children.length > 200) rows.lastChild.remove();
  }
  function add(msg) {
    const row = {
      seq: msg.seq, type: msg.type,
      origin: msg.originDeviceId || msg.clientId || '',
      time: msg.timestamp || '',
      msg,
    };
    if (paused) held.push(row); else show(row);
  }
  function watch() {
    if (ws) ws.close(1000);
    rows.replaceChildren();
    const proto = location.protocol === 'https:' ? 'wss' : 'ws';
    const who = name.value.trim();
    if (!who) return;
    const params = new URLSearchParams({ token });
    if (kind.value === 'user') { params.set('userId', who); params.set('deviceId', 'inspector'); } else { params.set('venue', who); }
    const path = kind.value === 'user' ? '/ws/realtime' : '/ws';
    // The socket it replaces may still report its close or a last frame:
    // only the current one speaks.
    const sock = new WebSocket(`${proto}://${location.host}${path}?${params}`);
    const venue = kind.value === 'venue';
    ws = sock;
    sock.onopen = () => {
      if (ws !== sock) return;
      status.textContent = `watching ${kind.value} ${who}`;
      if (venue) sock.send(JSON.stringify({ type: 'connect', clientId: `inspector-${Date.now()}` }));
    };
    sock.onmessage = (m) => {
      if (ws !== sock) return;
      const msg = JSON.parse(m.data);
      if (['CONNECTED', 'PONG', 'connected', 'pong'].includes(msg.type)) return;
      add(msg);
    };
    sock.onclose = (e) => {
      if (ws === sock) status.textContent = `closed (${e.code}); press Watch to reconnect`;
    };
  }
  filter.addEventListener('input', () => { for (const tr of rows.children) tr.hidden = !matches(tr.row); });
  rows.title = 'click an event for its payload';
  pause.addEventListener('click', () => {
    paused = !paused;
    pause.textContent = paused ? `Resume (${held.length})` : 'Pause';
    if (!paused) { held.forEach(show); held = []; }
  });
  setInterval(() => { if (paused) pause.textContent = `Resume (${held.length})`; }, 500);
  const root = el('section', { class: 'card', id: 'inspector' },
    el('div', { class: 'panel-head' }, el('h2', {}, 'Event inspector'), status),
    el('form', { class: 'row', onsubmit: (ev) => { ev.preventDefault(); watch(); } },
      kind, name, el('button', { type: 'submit', id: 'inspect-watch' }, 'Watch'), filter, pause),
    el('table', { class: 'data', id: 'inspector-events' },
      el('thead', {}, el('tr', {}, ['Seq', 'Type', 'Origin', 'Time'].map((h) => el('th', {}, h)))), rows),
    el('p', { class: 'muted' }, 'Click an event to see its payload.'));
  return { root, stop() { if (ws) ws.close(1000); } };
}

export function adminView({ api, token }) {
  const stats = el('div', { class: 'stats', id: 'stats' });
  const charts = el('div', { class: 'charts', id: 'charts' });
  const windowPick = el('select', { id: 'chart-window', 'aria-label': 'chart window' },
    el('option', { value: '60' }, 'last minute'), el('option', { value: '300', selected: true }, 'last 5 minutes'), el('option', { value: '600' }, 'last 10 minutes'));
  windowPick.addEventListener('change', () => refresh());
  const inspect = inspector(token);
  const body = el('tbody', {});
  const nodesBody = el('tbody', {});
  const presenceBody = el('tbody', {});
  const root = el('div', {},
    el('div', { class: 'panel-head' }, el('h1', {}, 'Server'),
      el('div', { class: 'actions links' },
        el('a', { href: '/metrics', target: '_blank', rel: 'noopener' }, 'Prometheus metrics'),
        el('a', { href: '/api/docs', target: '_blank', rel: 'noopener' }, 'API docs'))),
    stats,
    el('section', { class: 'card' },
      el('div', { class: 'panel-head' }, el('h2', {}, 'Nodes'), el('span', { class: 'muted' }, 'each node’s figures as of its last heartbeat')),
      el('table', { class: 'data', id: 'nodes' },
        el('thead', {}, el('tr', {}, ['Node', 'Address', 'Version', 'Up', 'Memory', 'Sockets', 'Last heartbeat', 'Tailer lag'].map((h) => el('th', {}, h)))),
        nodesBody)),
    el('div', { class: 'panel-head' }, el('h2', {}, 'Activity'), windowPick),
    charts,
    inspect.root,
    el('section', { class: 'card' },
      el('div', { class: 'panel-head' }, el('h2', {}, 'Connections'), el('span', { class: 'muted', id: 'connections-age' })),
      el('table', { class: 'data', id: 'connections' },
        el('thead', {}, el('tr', {}, ['Node', 'Kind', 'User', 'Device', 'Room', 'Since', 'Address', ''].map((h) => el('th', {}, h)))),
        body)),
    el('section', { class: 'card' },
      el('div', { class: 'panel-head' }, el('h2', {}, 'Presence'), el('span', { class: 'muted' }, 'devices online per user and venue, on every node')),
      el('table', { class: 'data', id: 'presence' },
        el('thead', {}, el('tr', {}, ['Stream', 'Devices online'].map((h) => el('th', {}, h)))),
        presenceBody)));

  function stat(label, value, id) {
    return el('div', { class: 'card stat', dataset: { stat: id || label } }, el('div', { class: 'label' }, label), el('div', { class: 'value' }, String(value)));
  }

  function nodeRow(n) {
    const s = n.stats || {};
    const lag = s.tailerLagSeconds === undefined ? '—' : `${(s.tailerLagSeconds * 1000).toFixed(0)} ms${s.tailerOldestWaitingSeconds > 1 ? `, waiting on a transaction open ${duration(s.tailerOldestWaitingSeconds)}` : ''}`;
    return el('tr', { dataset: { node: n.name } },
      el('td', {}, n.name, n.thisNode ? el('span', { class: 'badge' }, 'this node') : null),
      el('td', {}, n.address || '—'),
      el('td', {}, s.version || '—'),
      el('td', {}, s.uptimeSec === undefined ? '—' : duration(s.uptimeSec)),
      el('td', {}, bytes(s.memoryBytes) || '—'),
      el('td', {}, String(n.connections)),
      el('td', { title: when(n.lastHeartbeatAt) }, n.thisNode ? 'now' : `${(n.listAgeMs / 1000).toFixed(1)} s ago`),
      el('td', {}, lag));
  }

  function presenceRows(p) {
    const rows = [];
    const add = (label, list) => rows.push(el('tr', {}, el('td', {}, label),
      el('td', {}, ...list.map((d) => el('span', { class: 'device', title: `since ${when(d.since)}` }, `${d.deviceId} · ${d.kind} · ${d.node} · ${ago(d.since).replace(' ago', '')}`)))));
    for (const [user, list] of Object.entries(p.users || {}).sort()) add(`user ${user}`, list);
    for (const [venue, list] of Object.entries(p.venues || {}).sort()) add(`venue ${venue}`, list);
    return rows.length ? rows.slice(0, 100) : [el('tr', {}, el('td', { colspan: '2', class: 'muted' }, 'No device online.'))];
  }

  async function refresh() {
    try {
      const windowSec = Number(windowPick.value);
      const [s, list, metrics, history, presence] = await Promise.all([
        api.get('/api/websocket/stats'),
        api.get('/api/admin/connections'),
        fetch('/metrics').then((r) => r.text()),
        api.get(`/api/admin/history?seconds=${windowSec}`),
        api.get('/api/presence'),
      ]);
      charts.replaceChildren(...CHARTS.map(([key, title, unit]) => chart(history, key, title, unit, windowSec)));
      const counters = COUNTERS.map(([name, label]) => {
        const line = metrics.split('\n').find((l) => l.startsWith(`${name} `));
        return stat(label, line ? line.split(' ')[1] : '0');
      });
      const here = (s.nodes || []).find((n) => n.thisNode);
      stats.replaceChildren(...STATS.map(([key, label]) => stat(label, s[key])),
        stat('Uptime', duration(s.uptimeSec), 'uptime'),
        stat('Memory (this node)', here && here.stats ? bytes(here.stats.memoryBytes) : '—', 'memory'),
        ...counters);
      nodesBody.replaceChildren(...(s.nodes || []).map(nodeRow));
      const oldest = Math.max(0, ...(s.nodes || []).map((n) => n.listAgeMs || 0));
      document.getElementById('connections-age').textContent = (s.nodes || []).length > 1
        ? `this node’s sockets now; the others’ as of their last heartbeat (at most ${(oldest / 1000).toFixed(1)} s ago)`
        : '';
      presenceBody.replaceChildren(...presenceRows(presence));
      body.replaceChildren(...list.map((c) => el('tr', { dataset: { id: c.id } },
        el('td', {}, c.node || ''), el('td', {}, c.kind, c.observer ? el('span', { class: 'badge' }, 'observer') : null), el('td', {}, c.userId), el('td', {}, c.deviceId || ''), el('td', {}, c.room),
        el('td', { title: when(c.connectedAt) }, ago(c.connectedAt)), el('td', {}, c.remoteAddr || ''),
        el('td', {}, el('button', { class: 'danger', onclick: async () => {
          try { await api.del(`/api/admin/connections/${c.id}`); toast(`Closed ${c.userId}'s connection.`); refresh(); } catch (e) { showError(e); }
        } }, 'Kick')))));
    } catch (e) {
      showError(e);
    }
  }

  refresh();
  const timer = setInterval(refresh, 2000);
  return { root, stop() { clearInterval(timer); inspect.stop(); } };
}
