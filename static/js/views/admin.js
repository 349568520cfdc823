// The admin view: stats, connections (with a kick button), event counters.

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

export function adminView({ api }) {
  const stats = el('div', { class: 'stats', id: 'stats' });
  const body = el('tbody', {});
  const root = el('div', {},
    el('h1', {}, 'Server'),
    stats,
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
      const [s, list, metrics] = await Promise.all([
        api.get('/api/websocket/stats'),
        api.get('/api/admin/connections'),
        fetch('/metrics').then((r) => r.text()),
      ]);
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
  return { root, stop() { clearInterval(timer); } };
}
