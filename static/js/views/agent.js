// The agent's view: drafts, pending orders and jobs, live on every device.

import { el, toast, showError, pretty, when } from '../ui.js';

const JOB_END = new Set(['completed', 'failed', 'cancelled']);

export function agentView({ api, me, deviceId }) {
  const state = { drafts: new Map(), orders: new Map(), jobs: new Map(), selected: new Set() };
  let resyncing = false;
  let held = [];

  const root = el('div', { class: 'grid3' });
  const draftsBox = el('div', { class: 'list', id: 'drafts' });
  const ordersBox = el('div', { class: 'list', id: 'orders' });
  const jobsBox = el('div', { class: 'list', id: 'jobs' });
  const counts = { drafts: el('span', { class: 'count' }, '0'), orders: el('span', { class: 'count' }, '0'), jobs: el('span', { class: 'count' }, '0') };

  // --- drafts -------------------------------------------------------------
  const draftInput = el('textarea', { rows: 3, id: 'draft-payload', placeholder: '{"customer": "ACME", "lines": []}' });
  const draftCard = el('section', { class: 'card' },
    el('div', { class: 'panel-head' }, el('h2', {}, 'Drafts', counts.drafts)),
    el('div', { class: 'composer' },
      draftInput,
      el('button', { id: 'draft-create', onclick: () => createDraft() }, 'New draft')),
    draftsBox);

  async function createDraft() {
    let payload;
    try { payload = JSON.parse(draftInput.value || '{}'); } catch (e) { return showError(new Error(`The draft is not valid JSON: ${e.message}`)); }
    try {
      const draft = await api.post('/api/drafts', { payload });
      upsertDraft(draft);
      draftInput.value = '';
    } catch (e) { showError(e); }
  }

  function upsertDraft(d) {
    const known = state.drafts.get(d.id);
    if (known && known.serverUpdatedAt > d.serverUpdatedAt) return; // an older echo
    if (d.deleted) state.drafts.delete(d.id); else state.drafts.set(d.id, d);
    renderDrafts();
  }

  function draftItem(d) {
    const editor = el('textarea', { rows: 4, hidden: true }, pretty(d.payload));
    const save = el('button', { hidden: true, onclick: async () => {
      let payload;
      try { payload = JSON.parse(editor.value); } catch (e) { return showError(new Error(`Not valid JSON: ${e.message}`)); }
      try { upsertDraft(await api.put(`/api/drafts/${d.id}`, { payload, baseServerUpdatedAt: d.serverUpdatedAt })); }
      catch (e) {
        if (e.code === 'STALE_DRAFT' && e.body && e.body.current) upsertDraft(e.body.current);
        showError(e);
      }
    } }, 'Save');
    return el('div', { class: 'item draft', dataset: { id: d.id } },
      el('div', { class: 'meta' }, el('span', {}, d.deviceId ? `by ${d.deviceId}` : ''), el('span', {}, when(d.serverUpdatedAt))),
      el('pre', { class: 'payload' }, pretty(d.payload)),
      editor,
      el('div', { class: 'actions' },
        el('button', { class: 'subtle', onclick: () => { editor.hidden = !editor.hidden; save.hidden = editor.hidden; } }, 'Edit'),
        save,
        el('button', { class: 'subtle', onclick: async () => {
          try { await api.post(`/api/drafts/${d.id}/convert`); state.drafts.delete(d.id); renderDrafts(); } catch (e) { showError(e); }
        } }, 'Convert to order'),
        el('button', { class: 'danger', onclick: async () => {
          try { upsertDraft(await api.del(`/api/drafts/${d.id}`)); } catch (e) { showError(e); }
        } }, 'Delete')));
  }

  function renderDrafts() {
    const list = [...state.drafts.values()].sort((a, b) => b.serverUpdatedAt.localeCompare(a.serverUpdatedAt));
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

  async function importBatch() {
    let items;
    try { items = JSON.parse(batchInput.value); } catch (e) { return showError(new Error(`The batch is not valid JSON: ${e.message}`)); }
    if (!Array.isArray(items)) return showError(new Error('A batch is a JSON array of orders.'));
    try {
      const res = await api.post('/api/pending-orders', items);
      [...res.created, ...res.updated].forEach(upsertOrder);
      batchInput.value = '';
      toast(`Imported ${res.created.length} new, ${res.updated.length} updated.`);
    } catch (e) { showError(e); }
  }

  async function submitSelected() {
    const orderIds = [...state.selected].filter((id) => state.orders.has(id));
    if (!orderIds.length) return showError(new Error('Select pending orders to send first.'));
    try {
      upsertJob(await api.post('/api/jobs', { kind: 'submit-pending-orders', params: { orderIds } }));
      state.selected.clear();
    } catch (e) { showError(e); }
  }

  function upsertOrder(o) {
    state.orders.set(o.id, o);
    renderOrders();
  }

  function orderItem(o) {
    const box = el('input', { type: 'checkbox', disabled: !['pending', 'failed'].includes(o.status) || undefined, onchange: (ev) => {
      if (ev.target.checked) state.selected.add(o.id); else state.selected.delete(o.id);
    } });
    box.checked = state.selected.has(o.id);
    return el('div', { class: 'item order', dataset: { id: o.id } },
      el('div', { class: 'meta' },
        el('label', {}, box, ' ', el('span', { class: `badge ${o.status}` }, o.status)),
        el('span', {}, o.orderNumber ? `№ ${o.orderNumber}` : when(o.updatedAt))),
      el('pre', {}, pretty(o.payload)),
      o.error ? el('div', { class: 'error' }, o.error) : null,
      el('div', { class: 'actions' },
        el('button', { class: 'danger', disabled: o.status === 'submitting' || undefined, onclick: async () => {
          try { await api.del(`/api/pending-orders/${o.id}`); state.orders.delete(o.id); renderOrders(); } catch (e) { showError(e); }
        } }, 'Delete')));
  }

  function renderOrders() {
    const list = [...state.orders.values()].sort((a, b) => a.createdAt.localeCompare(b.createdAt));
    counts.orders.textContent = String(list.length);
    ordersBox.replaceChildren(...(list.length ? list.map(orderItem) : [el('div', { class: 'empty' }, 'No pending orders.')]));
  }

  // --- jobs ---------------------------------------------------------------
  const jobCard = el('section', { class: 'card' },
    el('div', { class: 'panel-head' }, el('h2', {}, 'Jobs', counts.jobs),
      el('button', { class: 'subtle', id: 'start-sync', onclick: async () => {
        try { upsertJob(await api.post('/api/jobs', { kind: 'customer-sync', params: {} })); } catch (e) { showError(e); }
      } }, 'Start customer sync')),
    jobsBox);

  function upsertJob(j, progress) {
    const known = state.jobs.get(j.id);
    if (known && JOB_END.has(known.status) && !JOB_END.has(j.status)) return; // a late progress
    state.jobs.set(j.id, progress ? { ...j, progress: progress.progress, label: progress.label ?? j.label } : j);
    renderJobs();
  }

  function jobItem(j) {
    return el('div', { class: 'item job', dataset: { id: j.id, status: j.status } },
      el('div', { class: 'meta' }, el('span', {}, el('strong', {}, j.kind), ' ', el('span', { class: `badge ${j.status}` }, j.status)), el('span', {}, when(j.createdAt))),
      el('div', { class: 'progress' }, el('div', { style: `width: ${j.progress}%`, role: 'progressbar', 'aria-valuenow': j.progress })),
      el('div', { class: 'muted label' }, `${j.progress}% ${j.label || ''}`),
      j.error ? el('div', { class: 'error' }, j.error) : null,
      j.result && JOB_END.has(j.status) ? el('pre', {}, pretty(j.result)) : null,
      JOB_END.has(j.status) ? null : el('div', { class: 'actions' }, el('button', { class: 'danger', onclick: async () => {
        try { await api.post(`/api/jobs/${j.id}/cancel`); } catch (e) { showError(e); }
      } }, 'Cancel')));
  }

  function renderJobs() {
    const list = [...state.jobs.values()].sort((a, b) => b.createdAt.localeCompare(a.createdAt)).slice(0, 30);
    counts.jobs.textContent = String(state.jobs.size);
    jobsBox.replaceChildren(...(list.length ? list.map(jobItem) : [el('div', { class: 'empty' }, 'No jobs yet.')]));
  }

  root.append(draftCard, orderCard, jobCard);

  // --- events -------------------------------------------------------------
  function apply(msg, own) {
    const p = msg.payload || {};
    switch (msg.type) {
      case 'DRAFT_CREATED': case 'DRAFT_UPDATED': case 'DRAFT_DELETED': upsertDraft(p.draft); break;
      case 'DRAFT_CONVERTED': state.drafts.delete(p.draftId); renderDrafts(); break;
      case 'PENDING_CREATED': case 'PENDING_UPDATED': upsertOrder(p.order); break;
      case 'PENDING_DELETED': state.orders.delete(p.order.id); renderOrders(); break;
      case 'PENDING_BATCH_UPSERTED': [...p.created, ...p.updated].forEach(upsertOrder); break;
      case 'JOB_QUEUED': case 'JOB_STARTED': case 'JOB_COMPLETED': case 'JOB_FAILED': upsertJob(p.job); break;
      case 'JOB_PROGRESS': upsertJob(p.job, p); break;
      default: break;
    }
    if (!own && msg.seq !== null && msg.originDeviceId) {
      toast(`${msg.type.toLowerCase().replace(/_/g, ' ')} on ${msg.originDeviceId}`);
    }
  }

  return {
    root,
    onEvent(msg, own) {
      if (resyncing) held.push([msg, own]); else apply(msg, own);
    },
    /** Replaces the state from REST, then applies what arrived meanwhile. */
    async resync() {
      resyncing = true;
      try {
        const [drafts, orders, jobs] = await Promise.all([api.get('/api/drafts'), api.get('/api/pending-orders'), api.get('/api/jobs')]);
        state.drafts = new Map(drafts.map((d) => [d.id, d]));
        state.orders = new Map(orders.map((o) => [o.id, o]));
        state.jobs = new Map(jobs.map((j) => [j.id, j]));
        renderDrafts(); renderOrders(); renderJobs();
      } catch (e) {
        showError(e);
      } finally {
        resyncing = false;
        const pending = held;
        held = [];
        pending.forEach(([m, own]) => apply(m, own));
      }
    },
  };
}
