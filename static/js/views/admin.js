// The admin view: stats, charts of the last minutes (sampled by the server
// once a second), a live event inspector, and connections (with a kick
// button).

import { el, showError, toast, when } from '../ui.js';

const STATS = [
  ['totalConnections', 'Connections'],
  ['activeUsers', 'Active users'],
  ['cashierConnections', 'Cashier terminals'],
  ['rooms', 'Rooms'],
  ['bufferedEvents', 'Buffered events'],
  ['eventsPublished', 'Events published'],
  ['uptimeSec', 'Uptime (s)'],
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

/** A line chart of one series over the samples: plain SVG, no library. */
function chart(samples, key, title, unit) {
  const W = 300, H = 90, P = 4;
  const values = samples.map((s) => s[key]);
  const max = Math.max(1, ...values);
  const now = values.length ? values[values.length - 1] : 0;
  const box = svg('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart-svg', role: 'img', 'aria-label': `${title} over the last ${samples.length} s` });
  box.append(svg('line', { x1: P, y1: H - P, x2: W - P, y2: H - P, class: 'axis' }));
  if (values.length > 1) {
    const step = (W - 2 * P) / (values.length - 1);
    const points = values.map((v, i) => `${(P + i * step).toFixed(1)},${(H - P - (v / max) * (H - 2 * P)).toFixed(1)}`);
    box.append(svg('polyline', { points: points.join(' '), class: 'series' }));
  }
  const fmt = (v) => (Number.isInteger(v) ? String(v) : v.toFixed(1));
  return el('figure', { class: 'card chart', dataset: { series: key, points: String(values.length), last: fmt(now) } },
    el('figcaption', {}, el('span', { class: 'label' }, title), ' ', el('strong', {}, `${fmt(now)}${unit}`),
      el('span', { class: 'peak' }, ` peak ${fmt(max)}${unit}`)),
    box);
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
    const tr = el('tr', { dataset: { type: row.type, seq: String(row.seq ?? '') } },
      el('td', {}, row.seq ?? '—'), el('td', {}, row.type), el('td', {}, row.origin || ''), el('td', {}, row.time || ''));
    tr.hidden = !matches(row);
    tr.row = row;
    rows.prepend(tr);
    while (rows.children.length > 200) rows.lastChild.remove();
  }
  function add(msg) {
    const row = {
      seq: msg.seq, type: msg.type,
      origin: msg.originDeviceId || msg.clientId || '',
      time: msg.timestamp || '',
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
      el('thead', {}, el('tr', {}, ['Seq', 'Type', 'Origin', 'Time'].map((h) => el('th', {}, h)))), rows));
  return { root, stop() { if (ws) ws.close(1000); } };
}

export function adminView({ api, token }) {
  const stats = el('div', { class: 'stats', id: 'stats' });
  const charts = el('div', { class: 'charts', id: 'charts' });
  const inspect = inspector(token);
  const body = el('tbody', {});
  const root = el('div', {},
    el('h1', {}, 'Server'),
    stats,
    charts,
    inspect.root,
    el('section', { class: 'card' },
      el('div', { class: 'panel-head' }, el('h2', {}, 'Connections')),
      el('table', { class: 'data', id: 'connections' },
        el('thead', {}, el('tr', {}, ['Kind', 'User', 'Device', 'Room', 'Since', 'Address', ''].map((h) => el('th', {}, h)))),
        body)));

  function stat(label, value) {
    return el('div', { class: 'card stat' }, el('div', { class: 'label' }, label), el('div', { class: 'value' }, String(value)));
  }

  async function refresh() {
    try {
      const [s, list, metrics, history] = await Promise.all([
        api.get('/api/websocket/stats'),
        api.get('/api/admin/connections'),
        fetch('/metrics').then((r) => r.text()),
        api.get('/api/admin/history?seconds=300'),
      ]);
      charts.replaceChildren(...CHARTS.map(([key, title, unit]) => chart(history, key, title, unit)));
      const counters = COUNTERS.map(([name, label]) => {
        const line = metrics.split('\n').find((l) => l.startsWith(`${name} `));
        return stat(label, line ? line.split(' ')[1] : '0');
      });
      stats.replaceChildren(...STATS.map(([key, label]) => stat(label, s[key])), ...counters);
      body.replaceChildren(...list.map((c) => el('tr', { dataset: { id: c.id } },
        el('td', {}, c.kind), el('td', {}, c.userId), el('td', {}, c.deviceId || ''), el('td', {}, c.room),
        el('td', {}, when(c.connectedAt)), el('td', {}, c.remoteAddr || ''),
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
