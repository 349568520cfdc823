// The agent's view: drafts, pending orders and jobs, live on every device,
// through herald's client (/sdk/herald.js). Every change is queued first:
// it shows at once, marked as waiting, lands when the connection allows,
// and is rolled back with the server's reason when it is refused.

import { el, toast, showError, pretty, when } from '../ui.js';
import { orderSummary, money, jobOutcome, ago } from '../summary.js';

const JOB_END = new Set(['completed', 'failed', 'cancelled']);
/** A queued job no worker took within this long says so. */
const UNTAKEN_MS = 60_000;

/** An order-like payload as a card body: customer, lines, total; the raw
 * JSON behind a toggle (the only view of a payload of unknown shape). */
function payloadView(payload) {
  const sum = orderSummary(payload);
  const raw = el('details', { class: 'raw' }, el('summary', {}, sum ? 'Show JSON' : 'JSON (no customer, lines or total found)'), el('pre', {}, pretty(payload)));
  if (!sum) {
    raw.open = true;
    return [raw];
  }
  const rows = sum.lines.slice(0, 12).map((l) => el('tr', {},
    el('td', { class: 'num qty' }, l.quantity === undefined ? '' : `${l.quantity} ×`),
    el('td', {}, l.name),
    el('td', { class: 'num' }, money(l.price, sum.currency)),
    el('td', { class: 'num' }, money(l.amount, sum.currency))));
  if (sum.lines.length > 12) rows.push(el('tr', {}, el('td', {}), el('td', { class: 'muted' }, `… ${sum.lines.length - 12} more lines`)));
  return [
    el('div', { class: 'customer' }, sum.customer || el('span', { class: 'muted' }, 'no customer')),
    sum.note ? el('div', { class: 'muted note' }, sum.note) : null,
    rows.length ? el('table', { class: 'lines' }, el('tbody', {}, ...rows)) : null,
    sum.total !== undefined ? el('div', { class: 'total' }, el('span', {}, `Total${sum.lines.length ? ` · ${sum.lines.length} ${sum.lines.length === 1 ? 'line' : 'lines'}` : ''}`), el('span', {}, money(sum.total, sum.currency))) : null,
    raw,
  ];
}

export function agentView({ h, api, deviceId }) {
  // Which device last changed what (from the events seen here; a draft
  // also keeps it on its record).
  const lastDevice = new Map();
  const byDevice = (id, recorded) => {
    const dev = recorded || lastDevice.get(id);
    if (!dev) return '';
    return dev === deviceId ? 'on this device' : `on ${dev}`;
  };
  const selected = new Set();
  const root = el('div', { class: 'agent' });
  const syncBar = el('div', { class: 'sync', id: 'sync-status', hidden: true, role: 'status' });
  const grid = el('div', { class: 'grid3' });
  const draftsBox = el('div', { class: 'list', id: 'drafts' });
  const ordersBox = el('div', { class: 'list', id: 'orders' });
  const jobsBox = el('div', { class: 'list', id: 'jobs' });
  const counts = { drafts: el('span', { class: 'count' }, '0'), orders: el('span', { class: 'count' }, '0'), jobs: el('span', { class: 'count' }, '0') };

  /** Runs a write; a refusal of the client itself (a full queue) is shown. */
  function write(fn) {
    try { return fn(); } catch (e) { showError(e); return null; }
  }

  const waiting = (item) => (item.pending ? el('span', { class: 'badge waiting', title: 'saved on this device; sent when the connection allows' }, 'waiting to sync') : null);

  // --- drafts -------------------------------------------------------------
  const draftInput = el('textarea', { rows: 3, id: 'draft-payload', placeholder: '{"customer": "ACME", "lines": []}' });
  const draftCard = el('section', { class: 'card' },
    el('div', { class: 'panel-head' }, el('h2', {}, 'Drafts', counts.drafts)),
    el('div', { class: 'composer' },
      draftInput,
      el('button', { id: 'draft-create', onclick: () => createDraft() }, 'New draft')),
    draftsBox);

  function createDraft() {
    let payload;
    try { payload = JSON.parse(draftInput.value || '{}'); } catch (e) { return showError(new Error(`The draft is not valid JSON: ${e.message}`)); }
    if (write(() => h.drafts.create(payload))) draftInput.value = '';
  }

  function draftItem(d) {
    const editor = el('textarea', { rows: 4, hidden: true }, pretty(d.payload));
    const save = el('button', { hidden: true, onclick: () => {
      let payload;
      try { payload = JSON.parse(editor.value); } catch (e) { return showError(new Error(`Not valid JSON: ${e.message}`)); }
      write(() => h.drafts.update(d.id, payload, d.serverUpdatedAt ? { baseServerUpdatedAt: d.serverUpdatedAt } : {}));
    } }, 'Save');
    return el('div', { class: `item draft${d.pending ? ' pending' : ''}`, dataset: { id: d.id, pending: String(d.pending) } },
      el('div', { class: 'meta' },
        el('span', { class: 'who-changed', title: when(d.serverUpdatedAt) }, d.pending ? 'changed on this device' : `changed ${[byDevice(d.id, d.deviceId), ago(d.serverUpdatedAt)].filter(Boolean).join(' · ')}`),
        waiting(d)),
      ...payloadView(d.payload),
      editor,
      el('div', { class: 'actions' },
        el('button', { class: 'subtle', onclick: () => { editor.hidden = !editor.hidden; save.hidden = editor.hidden; } }, 'Edit JSON'),
        save,
        el('button', { class: 'subtle', onclick: () => write(() => h.drafts.convert(d.id)) }, 'Convert to order'),
        el('button', { class: 'danger', onclick: () => write(() => h.drafts.remove(d.id)) }, 'Delete')));
  }

  function renderDrafts() {
    const list = h.drafts.list();
    counts.drafts.textContent = String(list.length);
    draftsBox.replaceChildren(...(list.length ? list.map(draftItem) : [el('div', { class: 'empty' }, 'No drafts yet.')]));
  }

  // --- pending orders -----------------------------------------------------
  const batchInput = el('textarea', { rows: 3, placeholder: '[{"payload": {"customer": "ACME", "total": 120}}]' });
  const submitButton = el('button', { id: 'submit-orders', onclick: () => submitSelected() }, 'Send selected to ERP');
  const orderCard = el('section', { class: 'card' },
    el('div', { class: 'panel-head' }, el('h2', {}, 'Pending orders', counts.orders), submitButton),
    el('details', {}, el('summary', {}, 'Import a batch (JSON array)'),
      el('div', { class: 'composer' }, batchInput, el('button', { class: 'subtle', onclick: () => importBatch() }, 'Import'))),
    ordersBox);

  function importBatch() {
    let items;
    try { items = JSON.parse(batchInput.value); } catch (e) { return showError(new Error(`The batch is not valid JSON: ${e.message}`)); }
    if (!Array.isArray(items) || !items.length) return showError(new Error('A batch is a non-empty JSON array of orders.'));
    const w = write(() => h.pendingOrders.create(items));
    if (!w) return;
    batchInput.value = '';
    w.applied.then((res) => toast(`Imported ${res.created.length} new, ${res.updated.length} updated.`), () => {});
  }

  function submitSelected() {
    const known = new Set(h.pendingOrders.list().filter((o) => !o.pending).map((o) => o.id));
    const orderIds = [...selected].filter((id) => known.has(id));
    if (!orderIds.length) return showError(new Error('Select pending orders to send first (orders still waiting to sync cannot be sent yet).'));
    if (write(() => h.jobs.create('submit-pending-orders', { orderIds }))) selected.clear();
  }

  function orderItem(o) {
    const box = el('input', { type: 'checkbox', disabled: o.pending || !['pending', 'failed'].includes(o.status) || undefined, onchange: (ev) => {
      if (ev.target.checked) selected.add(o.id); else selected.delete(o.id);
    } });
    box.checked = selected.has(o.id);
    return el('div', { class: `item order${o.pending ? ' pending' : ''}`, dataset: { id: o.id, pending: String(o.pending) } },
      el('div', { class: 'meta' },
        el('label', {}, box, ' ', el('span', { class: `badge ${o.status}` }, o.status)),
        waiting(o),
        el('span', { title: when(o.updatedAt) }, o.orderNumber ? `№ ${o.orderNumber}` : [byDevice(o.id), ago(o.updatedAt)].filter(Boolean).join(' · '))),
      ...payloadView(o.payload),
      o.error ? el('div', { class: 'error' }, o.error) : null,
      el('div', { class: 'actions' },
        el('button', { class: 'danger', disabled: o.status === 'submitting' || undefined, onclick: () => write(() => h.pendingOrders.remove(o.id)) }, 'Delete')));
  }

  function renderOrders() {
    const list = h.pendingOrders.list();
    counts.orders.textContent = String(list.length);
    ordersBox.replaceChildren(...(list.length ? list.map(orderItem) : [el('div', { class: 'empty' }, 'No pending orders.')]));
  }

  // --- jobs ---------------------------------------------------------------
  const jobCard = el('section', { class: 'card' },
    el('div', { class: 'panel-head' }, el('h2', {}, 'Jobs', counts.jobs),
      el('button', { class: 'subtle', id: 'start-sync', onclick: () => write(() => h.jobs.create('customer-sync', {})) }, 'Start customer sync')),
    jobsBox);

  function jobItem(j) {
    const ended = JOB_END.has(j.status);
    const outcome = ended ? jobOutcome(j) : null;
    const untaken = !j.pending && j.status === 'queued' && Date.now() - Date.parse(j.createdAt) > UNTAKEN_MS;
    return el('div', { class: `item job${j.pending ? ' pending' : ''}`, dataset: { id: j.id, status: j.status, pending: String(j.pending) } },
      el('div', { class: 'meta' }, el('span', {}, el('strong', {}, j.kind), ' ', el('span', { class: `badge ${j.status}` }, j.cancelling ? `${j.status}, cancelling` : j.status)), waiting(j), el('span', { title: when(j.createdAt) }, ago(j.createdAt))),
      ended ? null : el('div', { class: 'progress' }, el('div', { style: `width: ${j.progress}%`, role: 'progressbar', 'aria-valuenow': j.progress })),
      ended ? null : el('div', { class: 'muted label' }, `${j.progress}% ${j.label || ''}`),
      untaken ? el('div', { class: 'notice untaken' }, `No worker has taken this job for ${ago(j.createdAt).replace(' ago', '')}. Jobs of kind “${j.kind}” are run by an external worker: check that one is running and can reach herald, or cancel the job.`) : null,
      outcome ? el('ul', { class: 'outcome' }, ...outcome.map((line) => el('li', { class: line.startsWith('✗') ? 'bad' : '' }, line))) : null,
      j.error && !(outcome && outcome.some((l) => l.includes(j.error))) ? el('div', { class: 'error' }, j.error) : null,
      j.result && ended ? el('details', { class: 'raw' }, el('summary', {}, 'Show JSON'), el('pre', {}, pretty(j.result))) : null,
      ended || j.pending ? null : el('div', { class: 'actions' }, el('button', { class: 'danger', onclick: () => write(() => h.jobs.cancel(j.id)) }, 'Cancel')));
  }

  function renderJobs() {
    const all = h.jobs.list();
    counts.jobs.textContent = String(all.length);
    const list = all.slice(0, 30);
    jobsBox.replaceChildren(...(list.length ? list.map(jobItem) : [el('div', { class: 'empty' }, 'No jobs yet.')]));
  }

  // --- your devices (presence) ---------------------------------------------
  const devices = new Map(); // deviceId -> Device
  const devicesBox = el('div', { class: 'devices', id: 'devices', role: 'status' });
  function renderDevices() {
    const list = [...devices.values()].sort((a, b) => a.since.localeCompare(b.since));
    devicesBox.replaceChildren(el('span', { class: 'muted' }, 'Your devices online:'),
      ...(list.length ? list.map((d) => el('span', { class: `device${d.deviceId === deviceId ? ' me' : ''}`, title: `${d.kind} on node ${d.node}, since ${when(d.since)}` },
        d.deviceId === deviceId ? `${d.deviceId} (this one)` : d.deviceId)) : [el('span', { class: 'muted' }, 'none')]));
  }
  async function loadDevices() {
    try {
      const body = await api.get('/api/presence');
      devices.clear();
      for (const list of Object.values(body.users || {})) for (const d of list) devices.set(d.deviceId, d);
      renderDevices();
    } catch (e) {
      if (e.code !== 'NETWORK') console.warn('presence:', e);
    }
  }
  const offJoined = h.on('PRESENCE_JOINED', (ev) => { devices.set(ev.payload.device.deviceId, ev.payload.device); renderDevices(); });
  const offLeft = h.on('PRESENCE_LEFT', (ev) => { devices.delete(ev.payload.device.deviceId); renderDevices(); });
  // Asked again whenever the stream (re)connects: events missed meanwhile
  // are not replayed.
  const offOnline = h.onStatus((status) => { if (status === 'online') loadDevices(); });

  // --- waiting writes -----------------------------------------------------
  function renderSync() {
    const n = h.pending().length;
    syncBar.hidden = n === 0;
    const offline = h.status !== 'online';
    syncBar.dataset.count = String(n);
    syncBar.textContent = n === 0 ? '' : `${n} ${n === 1 ? 'change' : 'changes'} waiting to sync${offline ? ' — saved on this device; they are sent when the connection is back' : ''}`;
  }

  const described = { drafts: 'draft', pendingOrders: 'order', jobs: 'job' };
  const offWrite = h.onWrite((w) => {
    if (w.state === 'rejected' || w.state === 'expired') {
      w.applied.catch((e) => toast(`Your ${described[w.collection]} change was not applied: ${e.message} (${e.code})`, { error: true, ms: 9000 }));
    }
    renderSync();
  });
  const offStatus = h.onStatus(() => renderSync());
  const offChange = h.onChange(({ collections }) => {
    if (collections.includes('drafts')) renderDrafts();
    if (collections.includes('pendingOrders')) renderOrders();
    if (collections.includes('jobs')) renderJobs();
    renderSync();
  });
  // Another device's change, as it happens.
  const offEvents = h.on('*', (ev) => {
    const id = ev.payload && (ev.payload.id || (ev.payload.draft && ev.payload.draft.id) || (ev.payload.order && ev.payload.order.id));
    if (ev.seq !== null && ev.originDeviceId && id) lastDevice.set(id, ev.originDeviceId);
    if (ev.seq !== null && ev.originDeviceId && ev.originDeviceId !== deviceId) {
      toast(`${ev.type.toLowerCase().replace(/_/g, ' ')} on ${ev.originDeviceId}`);
    }
  });

  grid.append(draftCard, orderCard, jobCard);
  root.append(devicesBox, syncBar, grid);
  renderDrafts(); renderOrders(); renderJobs(); renderSync(); renderDevices();
  loadDevices();
  // "3 min ago" and the untaken-job notice move on by themselves.
  const clock = setInterval(() => { renderDrafts(); renderOrders(); renderJobs(); }, 30_000);

  return {
    root,
    stop() { clearInterval(clock); offWrite(); offStatus(); offChange(); offEvents(); offJoined(); offLeft(); offOnline(); },
  };
}
