// The cashier board: every station of the venue, live from /ws.

import { el, showError, when } from '../ui.js';
import { ago } from '../summary.js';

/** How often the board asks which terminals are connected (venues get no
 * presence events: the terminals' protocol is fixed). */
const PRESENCE_EVERY_MS = 5000;

function clock(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const h = String(Math.floor(s / 3600)).padStart(2, '0');
  const m = String(Math.floor((s % 3600) / 60)).padStart(2, '0');
  return `${h}:${m}:${String(s % 60).padStart(2, '0')}`;
}

const money = (n) => Number(n).toLocaleString();

export function cashierView({ api, venue }) {
  const devices = new Map(); // deviceId -> {device, seenAt}
  const grid = el('div', { class: 'stations', id: 'stations' });
  const terminals = el('div', { class: 'devices', id: 'terminals', role: 'status' }, el('span', { class: 'muted' }, 'Terminals online: …'));
  const newId = el('input', { type: 'text', placeholder: 'pc11', style: 'max-width: 140px' });
  const root = el('div', {},
    el('div', { class: 'panel-head' }, el('h1', {}, `Venue ${venue}`),
      el('div', { class: 'actions' }, newId, el('button', { class: 'subtle', onclick: async () => {
        if (!newId.value.trim()) return showError(new Error('Give the new station an id, such as pc11.'));
        try { await api.post(`/api/devices?venue=${encodeURIComponent(venue)}`, { deviceId: newId.value.trim() }); newId.value = ''; } catch (e) { showError(e); }
      } }, 'Add station'))),
    terminals,
    grid);

  async function loadTerminals() {
    try {
      const body = await api.get(`/api/presence?venue=${encodeURIComponent(venue)}`);
      const list = ((body.venues || {})[venue] || []).slice().sort((a, b) => a.deviceId.localeCompare(b.deviceId));
      terminals.replaceChildren(el('span', { class: 'muted' }, `Terminals online (${list.length}):`),
        ...(list.length
          ? list.map((t) => el('span', { class: 'device', title: `on node ${t.node}, since ${when(t.since)}` }, `${t.deviceId} · ${ago(t.since).replace(' ago', '')}`))
          : [el('span', { class: 'muted' }, 'none')]));
    } catch (e) {
      terminals.replaceChildren(el('span', { class: 'muted' }, `Terminals online: unknown (${e.message})`));
    }
  }
  loadTerminals();
  const presenceTimer = setInterval(loadTerminals, PRESENCE_EVERY_MS);

  function put(device) {
    devices.set(device.deviceId, { device, seenAt: Date.now() });
  }

  function render() {
    const cards = [...devices.values()].map(({ device: d, seenAt }) => {
      const elapsed = d.elapsedSeconds + (d.isRunning ? (Date.now() - seenAt) / 1000 : 0);
      const total = d.orders.reduce((sum, o) => sum + o.price * o.quantity, 0);
      return el('div', { class: d.isRunning ? 'station running' : 'station', dataset: { id: d.deviceId } },
        el('div', { class: 'top' }, el('span', { class: 'name' }, d.name || d.deviceId),
          el('span', { class: `badge ${d.isRunning ? 'running' : ''}` }, d.isRunning ? 'running' : 'idle')),
        el('div', { class: 'timer' }, clock(elapsed)),
        el('div', { class: 'facts' }, el('span', { class: 'customers' }, `${d.customerCount} ${d.customerCount === 1 ? 'customer' : 'customers'}`), el('span', {}, d.mode), d.notes ? el('span', { class: 'notes' }, d.notes) : null),
        d.orders.length
          ? el('table', {}, el('tbody', {}, d.orders.map((o) => el('tr', {}, el('td', {}, `${o.quantity} × ${o.name}`), el('td', { class: 'num' }, money(o.price * o.quantity))))))
          : el('div', { class: 'empty' }, 'No orders'),
        el('div', { class: 'total' }, el('span', {}, 'Total'), el('span', { class: 'sum' }, money(total))));
    });
    grid.replaceChildren(...(cards.length ? cards : [el('div', { class: 'empty' }, 'No stations yet.')]));
  }

  function apply(msg) {
    const entry = devices.get(msg.deviceId);
    const d = entry && entry.device;
    switch (msg.type) {
      case 'device_created': put({ deviceId: msg.deviceId, ...msg.data }); break;
      case 'device_updated': if (d) { Object.assign(d, { elapsedSeconds: currentElapsed(entry) }, msg.data); entry.seenAt = Date.now(); } break;
      case 'order_added': if (d) d.orders.push(...msg.orders); break;
      case 'order_modified': if (d && d.orders[msg.orderIndex]) Object.assign(d.orders[msg.orderIndex], msg.data); break;
      case 'order_removed': if (d) d.orders.splice(msg.orderIndex, 1); break;
      case 'device_removed': devices.delete(msg.deviceId); break;
      case 'device_cleared': if (d) { Object.assign(d, { isRunning: false, elapsedSeconds: 0, orders: [] }); entry.seenAt = Date.now(); } break;
      case 'device_transferred': {
        const from = devices.get(msg.fromDeviceId);
        const to = devices.get(msg.toDeviceId);
        if (from && to) {
          const f = from.device;
          Object.assign(to.device, { isRunning: f.isRunning, elapsedSeconds: currentElapsed(from), mode: f.mode, customerCount: f.customerCount, notes: f.notes, orders: f.orders });
          to.seenAt = Date.now();
          Object.assign(f, { isRunning: false, elapsedSeconds: 0, mode: 'single', customerCount: 1, notes: '', orders: [] });
        }
        break;
      }
      default: break;
    }
    render();
  }

  function currentElapsed(entry) {
    const d = entry.device;
    return d.elapsedSeconds + (d.isRunning ? Math.floor((Date.now() - entry.seenAt) / 1000) : 0);
  }

  const ticker = setInterval(render, 1000);
  return {
    root,
    onConnected(msg) {
      if (msg.devices) {
        devices.clear();
        msg.devices.forEach(put);
      }
      render();
    },
    onBroadcast: apply,
    stop() { clearInterval(ticker); clearInterval(presenceTimer); },
  };
}
