// Confirmed state and pending writes, kept apart.
//
// `Confirmed` is what the server said: a REST snapshot plus the events
// after it, applied in seq order. Applying is idempotent (every object
// carries a stamp, an older one never replaces a newer one, tombstones
// stay), so an event that arrives twice, or an answer and its event, or a
// refetch and the events held meanwhile, all land on the same state.
//
// `view()` is what a screen shows: the confirmed state with every queued
// write applied on top, in order, each touched item marked `pending: true`.
// It is recomputed from both, never patched, so when a write is confirmed
// its optimistic object is replaced by the confirmed one in one step.

export const NAMES = ['drafts', 'pendingOrders', 'jobs'];

const JOB_END = new Set(['completed', 'failed', 'cancelled']);

/** A draft's stamp (RFC 3339 `serverUpdatedAt`, compared as time). */
function draftStamp(d) {
  return d && d.serverUpdatedAt ? Date.parse(d.serverUpdatedAt) : -Infinity;
}

function orderStamp(o) {
  return o && o.updatedAt ? Date.parse(o.updatedAt) : -Infinity;
}

export class Confirmed {
  constructor() {
    this.drafts = new Map(); // id -> Draft (tombstones kept, deleted: true)
    this.pendingOrders = new Map(); // id -> PendingOrder
    this.deletedOrders = new Set(); // ids deleted: an older event never brings one back
    this.jobs = new Map(); // id -> Job
  }

  /** Replaces one collection with a REST snapshot. */
  replace(name, items) {
    if (name === 'drafts') {
      this.drafts = new Map(items.map((d) => [d.id, d]));
    } else if (name === 'pendingOrders') {
      this.pendingOrders = new Map(items.map((o) => [o.id, o]));
      for (const o of items) this.deletedOrders.delete(o.id);
    } else if (name === 'jobs') {
      this.jobs = new Map(items.map((j) => [j.id, j]));
    }
  }

  putDraft(d) {
    if (!d || !d.id) return false;
    const known = this.drafts.get(d.id);
    if (known && draftStamp(known) > draftStamp(d)) return false;
    if (known && known.deleted && !d.deleted) return false; // a tombstone wins
    this.drafts.set(d.id, d);
    return true;
  }

  putOrder(o) {
    if (!o || !o.id || this.deletedOrders.has(o.id)) return false;
    const known = this.pendingOrders.get(o.id);
    if (known && orderStamp(known) > orderStamp(o)) return false;
    this.pendingOrders.set(o.id, o);
    return true;
  }

  deleteOrder(id) {
    this.deletedOrders.add(id);
    return this.pendingOrders.delete(id);
  }

  putJob(j, progress) {
    if (!j || !j.id) return false;
    const known = this.jobs.get(j.id);
    if (known && JOB_END.has(known.status) && !JOB_END.has(j.status)) return false; // a late report
    const next = progress ? { ...j, progress: progress.progress, label: progress.label ?? j.label } : j;
    this.jobs.set(j.id, next);
    return true;
  }

  /** Applies one stream event; answers the collections it changed. */
  applyEvent(ev) {
    const p = ev.payload || {};
    const changed = new Set();
    const mark = (name, did) => { if (did) changed.add(name); };
    switch (ev.type) {
      case 'DRAFT_CREATED': case 'DRAFT_UPDATED': case 'DRAFT_DELETED':
        mark('drafts', this.putDraft(p.draft));
        break;
      case 'DRAFT_CONVERTED': {
        const d = this.drafts.get(p.draftId);
        if (d && !d.deleted) { this.drafts.set(d.id, { ...d, deleted: true, convertedTo: p.pendingOrderId }); changed.add('drafts'); }
        break;
      }
      case 'PENDING_CREATED': case 'PENDING_UPDATED':
        mark('pendingOrders', this.putOrder(p.order));
        break;
      case 'PENDING_DELETED':
        if (p.order) mark('pendingOrders', this.deleteOrder(p.order.id));
        break;
      case 'PENDING_BATCH_UPSERTED':
        for (const o of [...(p.created || []), ...(p.updated || [])]) mark('pendingOrders', this.putOrder(o));
        break;
      case 'JOB_QUEUED': case 'JOB_STARTED': case 'JOB_COMPLETED': case 'JOB_FAILED':
        mark('jobs', this.putJob(p.job));
        break;
      case 'JOB_PROGRESS':
        mark('jobs', this.putJob(p.job, p));
        break;
      default:
        break;
    }
    return changed;
  }

  /** Applies a write's successful answer (the object(s) it returned). */
  applyAnswer(write, body) {
    const changed = new Set();
    if (!body || typeof body !== 'object') return changed;
    switch (`${write.collection}.${write.op}`) {
      case 'drafts.create': case 'drafts.update': case 'drafts.remove':
        if (this.putDraft(body)) changed.add('drafts');
        break;
      case 'drafts.convert': {
        if (this.putOrder(body)) changed.add('pendingOrders');
        const d = this.drafts.get(write.id);
        if (d && !d.deleted) { this.drafts.set(d.id, { ...d, deleted: true, convertedTo: body.id }); changed.add('drafts'); }
        break;
      }
      case 'pendingOrders.create':
        if (Array.isArray(write.body)) {
          for (const o of [...(body.created || []), ...(body.updated || [])]) if (this.putOrder(o)) changed.add('pendingOrders');
        } else if (this.putOrder(body)) changed.add('pendingOrders');
        break;
      case 'pendingOrders.update':
        if (this.putOrder(body)) changed.add('pendingOrders');
        break;
      case 'pendingOrders.remove':
        if (this.deleteOrder(write.id)) changed.add('pendingOrders');
        break;
      case 'jobs.create': case 'jobs.cancel':
        if (this.putJob(body)) changed.add('jobs');
        break;
      default:
        break;
    }
    return changed;
  }

  /** A plain copy for storage. */
  toJSON() {
    return {
      drafts: [...this.drafts.values()],
      pendingOrders: [...this.pendingOrders.values()],
      deletedOrders: [...this.deletedOrders],
      jobs: [...this.jobs.values()],
    };
  }

  static fromJSON(data) {
    const c = new Confirmed();
    if (!data) return c;
    c.replace('drafts', data.drafts || []);
    c.replace('pendingOrders', data.pendingOrders || []);
    c.deletedOrders = new Set(data.deletedOrders || []);
    c.replace('jobs', data.jobs || []);
    return c;
  }
}

/** The event type that carries the final object of a write: the one whose
 * `mutationId` confirms it (a convert's first event, `DRAFT_CONVERTED`,
 * does not carry the new order yet). */
export function confirmingEvent(write) {
  switch (`${write.collection}.${write.op}`) {
    case 'drafts.create': return ['DRAFT_CREATED'];
    case 'drafts.update': return ['DRAFT_UPDATED'];
    case 'drafts.remove': return ['DRAFT_DELETED'];
    case 'drafts.convert': return ['PENDING_CREATED'];
    case 'pendingOrders.create': return ['PENDING_CREATED', 'PENDING_BATCH_UPSERTED'];
    case 'pendingOrders.update': return ['PENDING_UPDATED'];
    case 'pendingOrders.remove': return ['PENDING_DELETED'];
    case 'jobs.create': return ['JOB_QUEUED'];
    default: return []; // a cancel is confirmed by its answer
  }
}

/** The object an event gives back for a write's `applied`. */
export function objectOf(ev) {
  const p = ev.payload || {};
  return p.draft || p.order || p.job || p;
}

/**
 * What a screen shows of `name`: the confirmed items (tombstones and
 * converted drafts left out) with every write of `writes` (oldest first)
 * applied on top; each item carries `pending: true|false`.
 */
export function view(name, confirmed, writes) {
  const items = new Map();
  const source = name === 'drafts' ? confirmed.drafts : name === 'pendingOrders' ? confirmed.pendingOrders : confirmed.jobs;
  for (const [id, item] of source) {
    if (item.deleted) continue;
    items.set(id, { ...item, pending: false });
  }
  for (const w of writes) {
    if (w.state === 'rejected' || w.state === 'expired' || w.state === 'applied') continue;
    applyWrite(name, items, w, confirmed);
  }
  const list = [...items.values()];
  if (name === 'drafts') list.sort((a, b) => (b.serverUpdatedAt || '\uffff').localeCompare(a.serverUpdatedAt || '\uffff'));
  else if (name === 'pendingOrders') list.sort((a, b) => (a.createdAt || '\uffff').localeCompare(b.createdAt || '\uffff'));
  else list.sort((a, b) => (b.createdAt || '\uffff').localeCompare(a.createdAt || '\uffff'));
  return list;
}

function applyWrite(name, items, w, confirmed) {
  const { collection, op } = w;
  if (collection === 'drafts' && name === 'drafts') {
    if (op === 'create') {
      const known = confirmed.drafts.get(w.id);
      if (!known) items.set(w.id, { id: w.id, payload: w.body.payload, deviceId: w.deviceId, serverUpdatedAt: null, deleted: false, pending: true });
    } else if (op === 'update') {
      const item = items.get(w.id);
      if (item) items.set(w.id, { ...item, payload: w.body.payload, pending: true });
    } else if (op === 'remove' || op === 'convert') {
      items.delete(w.id);
    }
  } else if (name === 'pendingOrders' && collection === 'drafts' && op === 'convert') {
    const orderId = w.body && w.body.pendingOrderId;
    if (orderId && !items.has(orderId) && !confirmed.pendingOrders.has(orderId)) {
      const d = confirmed.drafts.get(w.id);
      items.set(orderId, { id: orderId, payload: d ? d.payload : null, status: 'pending', orderNumber: null, jobId: null, pending: true });
    }
  } else if (collection === 'pendingOrders' && name === 'pendingOrders') {
    if (op === 'create') {
      for (const o of Array.isArray(w.body) ? w.body : [w.body]) {
        const item = items.get(o.id);
        if (item) items.set(o.id, { ...item, ...fields(o), pending: true });
        else if (!confirmed.deletedOrders.has(o.id)) items.set(o.id, { status: 'pending', orderNumber: null, jobId: null, ...o, pending: true });
      }
    } else if (op === 'update') {
      const item = items.get(w.id);
      if (item) items.set(w.id, { ...item, ...fields(w.body), pending: true });
    } else if (op === 'remove') {
      items.delete(w.id);
    }
  } else if (collection === 'jobs' && name === 'jobs') {
    if (op === 'create') {
      items.set(`pending:${w.key}`, { id: `pending:${w.key}`, kind: w.body.kind, params: w.body.params, status: 'queued', progress: 0, label: null, result: null, error: null, pending: true });
    } else if (op === 'cancel') {
      const item = items.get(w.id);
      if (item && !JOB_END.has(item.status)) items.set(w.id, { ...item, cancelling: true, pending: true });
    }
  }
}

/** The fields of an order write that change it. */
function fields(o) {
  const out = {};
  for (const k of ['payload', 'status', 'orderNumber', 'jobId']) if (o[k] !== undefined) out[k] = o[k];
  return out;
}
