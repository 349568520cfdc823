// The agent's view: drafts, pending orders and jobs, live on every device,
// through herald's client (/sdk/herald.js). Every change is queued first:
// it shows at once, marked as waiting, lands when the connection allows,
// and is rolled back with the server's reason when it is refused.

import { el, toast, showError, pretty, when } from '../ui.js';

const JOB_END = new Set(['completed', 'failed', 'cancelled']);

export function agentView({ h, deviceId }) {
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
      el('div', { class: 'meta' }, el('span', {}, d.deviceId ? `by ${d.deviceId}` : ''), waiting(d), el('span', {}, when(d.serverUpdatedAt))),
      el('pre', { class: 'payload' }, pretty(d.payload)),
      editor,
      el('div', { class: 'actions' },
        el('button', { class: 'subtle', onclick: () => { editor.hidden = !editor.hidden; save.hidden = editor.hidden; } }, 'Edit'),
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
        el('span', {}, o.orderNumber ? `№ ${o.orderNumber}` : when(o.updatedAt))),
      el('pre', {}, pretty(o.payload)),
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
    return el('div', { class: `item job${j.pending ? ' pending' : ''}`, dataset: { id: j.id, status: j.status, pending: String(j.pending) } },
      el('div', { class: 'meta' }, el('span', {}, el('strong', {}, j.kind), ' ', el('span', { class: `badge ${j.status}` }, j.cancelling ? `${j.status}, cancelling` : j.status)), waiting(j), el('span', {}, when(j.createdAt))),
      el('div', { class: 'progress' }, el('div', { style: `width: ${j.progress}%`, role: 'progressbar', 'aria-valuenow': j.progress })),
      el('div', { class: 'muted label' }, `${j.progress}% ${j.label || ''}`),
      j.error ? el('div', { class: 'error' }, j.error) : null,
      j.result && JOB_END.has(j.status) ? el('pre', {}, pretty(j.result)) : null,
      JOB_END.has(j.status) || j.pending ? null : el('div', { class: 'actions' }, el('button', { class: 'danger', onclick: () => write(() => h.jobs.cancel(j.id)) }, 'Cancel')));
  }

  function renderJobs() {
    const all = h.jobs.list();
    counts.jobs.textContent = String(all.length);
    const list = all.slice(0, 30);
    jobsBox.replaceChildren(...(list.length ? list.map(jobItem) : [el('div', { class: 'empty' }, 'No jobs yet.')]));
  }

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
    if (ev.seq !== null && ev.originDeviceId && ev.originDeviceId !== deviceId) {
      toast(`${ev.type.toLowerCase().replace(/_/g, ' ')} on ${ev.originDeviceId}`);
    }
  });

  grid.append(draftCard, orderCard, jobCard);
  root.append(syncBar, grid);
  renderDrafts(); renderOrders(); renderJobs(); renderSync();

  return {
    root,
    stop() { offWrite(); offStatus(); offChange(); offEvents(); },
  };
}
