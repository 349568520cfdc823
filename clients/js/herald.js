// herald's client for web apps: one connection per tab, one queue of
// writes per device, and collections that keep the confirmed state apart
// from the writes not yet confirmed.
//
//   import { connect } from '/sdk/herald.js';
//   const h = connect({ token, deviceId });
//   const off = h.drafts.onChange ... // see herald.d.ts and the README
//
// Every write is queued first: it gets a UUID (its `Idempotency-Key`), is
// handed to IndexedDB in the call, and is sent in order when the network
// allows; the server keeps its answer under the key, so a write sent twice
// (a retry, a reload mid-send, another tab taking over) applies once. A
// write is confirmed by its answer or by the event that carries its key as
// `mutationId`, whichever comes first; a 4xx rejects it and rolls its
// optimistic change back.

import { Confirmed, NAMES, view, confirmingEvent, objectOf } from './lib/collections.js';
import { Socket, tokenClaims } from './lib/socket.js';
import { Store, MemoryStore } from './lib/store.js';

const DAY = 24 * 3600 * 1000;
const RETRY_MIN = 1000;
const RETRY_MAX = 30000;

/** A refused or failed write, or a client-side limit. */
export class HeraldError extends Error {
  constructor({ status = 0, code, message, current }) {
    super(message);
    this.name = 'HeraldError';
    this.status = status;
    this.code = code;
    if (current !== undefined) this.current = current;
  }
}

/** Opens a client. See herald.d.ts for the options. */
export function connect(options) {
  return new Herald(options);
}

/**
 * Plain REST calls with the client's token handling and errors, for reads
 * and calls that are not queued (an admin's, a sign-in check): each
 * answers the parsed body or throws a HeraldError (`NETWORK`, status 0,
 * when the server cannot be reached).
 */
export function rest({ url, token, getToken, deviceId, fetch: fetchImpl } = {}) {
  const origin = String(url || (globalThis.location ? location.origin : '')).replace(/\/+$/, '');
  const doFetch = fetchImpl || globalThis.fetch.bind(globalThis);
  let current = token;
  const call = async (method, path, body, renewed = false) => {
    const headers = { Authorization: `Bearer ${current}` };
    if (deviceId) headers['X-Device-Id'] = deviceId;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    let res;
    try {
      res = await doFetch(origin + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    } catch (e) {
      throw new HeraldError({ code: 'NETWORK', message: 'the server cannot be reached; check the connection and retry' });
    }
    if (res.status === 401 && !renewed && getToken) {
      const next = await getToken().catch(() => null);
      if (next) { current = next; return call(method, path, body, true); }
    }
    const data = await readBody(res);
    if (!res.ok) {
      const err = data && data.error ? data.error : { code: `HTTP_${res.status}`, message: res.statusText };
      throw new HeraldError({ status: res.status, code: err.code, message: err.message, current: data && data.current });
    }
    return data;
  };
  return {
    get: (path) => call('GET', path),
    post: (path, body) => call('POST', path, body),
    put: (path, body) => call('PUT', path, body),
    del: (path) => call('DELETE', path),
  };
}

function uuid() {
  if (globalThis.crypto && crypto.randomUUID) return crypto.randomUUID();
  const b = new Uint8Array(16);
  crypto.getRandomValues(b);
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));

/** One queued write, as a caller holds it. */
class Write {
  constructor(record) {
    this.key = record.key;
    this.collection = record.collection;
    this.op = record.op;
    this.id = record.id;
    this.createdAt = record.createdAt;
    this.state = record.state;
    this.applied = new Promise((ok, fail) => { this.resolve = ok; this.reject = fail; });
    // Nobody has to await it: a rejection is also reported to onWrite.
    this.applied.catch(() => {});
    /** Resolves once the write is durable in IndexedDB. */
    this.queued = Promise.resolve();
  }

  toJSON() {
    return { key: this.key, collection: this.collection, op: this.op, id: this.id, state: this.state, createdAt: this.createdAt };
  }
}

class Herald {
  constructor(o) {
    if (!o || (!o.token && !o.getToken)) throw new TypeError('connect() needs `token` or `getToken`');
    const origin = globalThis.location ? globalThis.location.origin : undefined;
    this.url = String(o.url || origin || '').replace(/\/+$/, '');
    if (!this.url) throw new TypeError('connect() needs `url` outside a browser page');
    this.deviceId = o.deviceId || `web-${uuid().slice(0, 8)}`;
    this.maxAgeMs = o.maxAgeMs ?? DAY;
    this.maxQueued = o.maxQueued ?? 1000;
    this.retryMinMs = o.retryMinMs ?? RETRY_MIN;
    this.getToken = o.getToken || null;
    this.token = o.token || null;
    this.fetchImpl = o.fetch || globalThis.fetch.bind(globalThis);
    this.options = o;
    this.status = 'connecting';
    this.statusReason = '';
    this.confirmed = new Confirmed();
    this.cursor = { lastSeq: null, epoch: null };
    this.records = []; // the device's queue as this tab knows it, oldest first
    this.handles = new Map(); // key -> Write
    this.listeners = { status: new Set(), change: new Set(), write: new Set(), events: new Map() };
    this.changed = new Set();
    this.closed = false;
    this.resyncing = null;
    this.held = [];
    this.wakers = [];
    this.lastOrder = 0;
    this.authPaused = false;

    this.drafts = {
      list: () => view('drafts', this.confirmed, this.records),
      get: (id) => this.drafts.list().find((d) => d.id === id) || null,
      create: (payload, { id } = {}) => {
        const draftId = id || uuid();
        return this.write('drafts', 'create', draftId, 'POST', '/api/drafts', { id: draftId, payload });
      },
      update: (id, payload, { baseServerUpdatedAt } = {}) => this.write('drafts', 'update', id, 'PUT', `/api/drafts/${enc(id)}`,
        baseServerUpdatedAt ? { payload, baseServerUpdatedAt } : { payload }),
      remove: (id) => this.write('drafts', 'remove', id, 'DELETE', `/api/drafts/${enc(id)}`),
      convert: (id, { pendingOrderId } = {}) => this.write('drafts', 'convert', id, 'POST', `/api/drafts/${enc(id)}/convert`,
        { pendingOrderId: pendingOrderId || uuid() }),
    };
    this.pendingOrders = {
      list: () => view('pendingOrders', this.confirmed, this.records),
      get: (id) => this.pendingOrders.list().find((x) => x.id === id) || null,
      create: (orderOrArray) => {
        const withId = (x) => ({ ...x, id: x.id || uuid() });
        const body = Array.isArray(orderOrArray) ? orderOrArray.map(withId) : withId(orderOrArray);
        return this.write('pendingOrders', 'create', Array.isArray(body) ? null : body.id, 'POST', '/api/pending-orders', body);
      },
      update: (id, fields) => this.write('pendingOrders', 'update', id, 'PUT', `/api/pending-orders/${enc(id)}`, fields),
      remove: (id) => this.write('pendingOrders', 'remove', id, 'DELETE', `/api/pending-orders/${enc(id)}`),
    };
    this.jobs = {
      list: () => view('jobs', this.confirmed, this.records),
      get: (id) => this.jobs.list().find((x) => x.id === id) || null,
      create: (kind, params = {}) => this.write('jobs', 'create', null, 'POST', '/api/jobs', { kind, params }),
      cancel: (id) => this.write('jobs', 'cancel', id, 'POST', `/api/jobs/${enc(id)}/cancel`),
    };

    this.ready = this.start().catch((e) => {
      this.setStatus('offline', `could not start: ${e.message}`);
      throw e;
    });
    this.ready.catch(() => {});
  }

  // --- lifecycle ------------------------------------------------------------

  async start() {
    if (!this.token) await this.renewToken();
    const claims = tokenClaims(this.token) || {};
    this.storageName = this.options.storageName || `herald:${this.url}:${claims.sub || 'anonymous'}:${this.deviceId}`;
    try {
      this.store = globalThis.indexedDB ? await Store.open(this.storageName) : new MemoryStore();
    } catch (e) {
      console.warn('herald: IndexedDB is not available; writes last as long as the page', e);
      this.store = new MemoryStore();
    }
    if (this.closed) return;
    const saved = await this.store.loadState();
    if (saved) {
      this.confirmed = Confirmed.fromJSON(saved.data);
      this.cursor = { lastSeq: saved.lastSeq ?? null, epoch: saved.epoch ?? null };
    }
    // Writes made before the store opened go in first, in their order.
    const early = this.records.filter((r) => !r.stored);
    for (const r of early) await this.persist(r);
    await this.reload();
    this.touch(...NAMES);
    if (typeof BroadcastChannel !== 'undefined') {
      this.channel = new BroadcastChannel(this.storageName);
      this.channel.onmessage = (m) => this.onPeer(m.data);
    }
    this.socket = new Socket({
      url: this.url,
      token: () => this.token,
      renewToken: () => this.renewToken(),
      deviceId: this.deviceId,
      cursor: this.cursor,
      WebSocket: this.options.WebSocket,
      onEvent: (ev, cursor) => this.onEvent(ev, cursor),
      onResync: (why, lastSeq, epoch) => this.resync(lastSeq, epoch),
      onStatus: (s, reason) => this.setStatus(s, reason),
    });
    this.onlineNow = () => this.wake();
    if (globalThis.addEventListener) globalThis.addEventListener('online', this.onlineNow);
    if (this.options.socket !== false) this.socket.start();
    else if (!this.cursor.epoch) this.resync(null, null);
    this.startSender();
  }

  /** Stops the socket and the sender; queued writes stay for the next start. */
  close() {
    this.closed = true;
    if (this.socket) this.socket.stop();
    if (this.channel) this.channel.close();
    if (globalThis.removeEventListener && this.onlineNow) globalThis.removeEventListener('online', this.onlineNow);
    this.wake();
    clearTimeout(this.saveTimer);
    if (this.store) {
      const store = this.store;
      this.saveNow().finally(() => store.close());
    }
  }

  // --- listeners ------------------------------------------------------------

  onStatus(fn) { return add(this.listeners.status, fn); }
  onChange(fn) { return add(this.listeners.change, fn); }
  onWrite(fn) { return add(this.listeners.write, fn); }

  on(type, fn) {
    if (!this.listeners.events.has(type)) this.listeners.events.set(type, new Set());
    return add(this.listeners.events.get(type), fn);
  }

  /** The queued writes, oldest first. */
  pending() {
    return this.records.filter((r) => r.state === 'queued' || r.state === 'sending').map((r) => this.handle(r));
  }

  /** Replaces the token (a sign-in again); a paused queue resumes. */
  setToken(token) {
    this.token = token;
    this.authPaused = false;
    this.wake();
    if (this.socket) this.socket.reconnectNow();
  }

  setStatus(status, reason = '') {
    if (globalThis.navigator && navigator.onLine === false) {
      status = 'offline';
      reason = reason || 'the browser is offline';
    }
    if (status === 'connecting' && this.status === 'offline' && !reason) reason = this.statusReason;
    if (this.status === status && this.statusReason === reason) return;
    this.status = status;
    this.statusReason = reason;
    for (const fn of this.listeners.status) safe(fn, status, reason);
  }

  touch(...names) {
    const first = this.changed.size === 0;
    names.forEach((n) => this.changed.add(n));
    if (!first) return;
    queueMicrotask(() => {
      const collections = [...this.changed];
      this.changed.clear();
      for (const fn of this.listeners.change) safe(fn, { collections });
    });
  }

  // --- the stream -----------------------------------------------------------

  onEvent(ev, cursor) {
    if (this.resyncing) {
      this.held.push([ev, cursor]);
      return;
    }
    this.apply(ev, cursor);
  }

  apply(ev, cursor) {
    const changed = this.confirmed.applyEvent(ev);
    if (cursor && ev.seq !== null && ev.seq !== undefined) this.cursor = { ...cursor };
    if (ev.mutationId) this.confirmByEvent(ev);
    if (changed.size) this.touch(...changed);
    for (const fn of this.listeners.events.get(ev.type) || []) safe(fn, ev);
    for (const fn of this.listeners.events.get('*') || []) safe(fn, ev);
    this.saveSoon();
  }

  /** Refetches every collection over REST; events meanwhile wait. */
  async resync(lastSeq, epoch) {
    if (this.resyncing) return this.resyncing;
    this.resyncing = (async () => {
      for (let attempt = 0; !this.closed; attempt += 1) {
        try {
          const [drafts, orders, jobs] = await Promise.all([
            this.get('/api/drafts?includeDeleted=true'),
            this.get('/api/pending-orders'),
            this.get('/api/jobs'),
          ]);
          this.confirmed.replace('drafts', drafts);
          this.confirmed.replace('pendingOrders', orders);
          this.confirmed.replace('jobs', jobs);
          if (epoch) this.cursor = { lastSeq, epoch };
          this.touch(...NAMES);
          return;
        } catch (e) {
          if (e.status === 401 || e.status === 403) {
            this.setStatus('offline', `the server refused the token (${e.message}); sign in again`);
          }
          await sleep(Math.min(RETRY_MAX, this.retryMinMs * 2 ** attempt));
        }
      }
    })();
    try {
      await this.resyncing;
    } finally {
      this.resyncing = null;
      const held = this.held;
      this.held = [];
      held.forEach(([ev, cursor]) => this.apply(ev, cursor));
      this.saveSoon();
    }
  }

  saveSoon() {
    if (this.saveTimer || this.closed) return;
    this.saveTimer = setTimeout(() => { this.saveTimer = null; this.saveNow(); }, 200);
  }

  async saveNow() {
    if (!this.store || this.resyncing || !this.cursor.epoch) return;
    try {
      await this.store.saveState({ data: this.confirmed.toJSON(), lastSeq: this.cursor.lastSeq, epoch: this.cursor.epoch, savedAt: Date.now() });
    } catch (e) {
      console.warn('herald: could not keep the state for offline use', e);
    }
  }

  // --- writes ---------------------------------------------------------------

  write(collection, op, id, method, path, body) {
    if (this.closed) throw new HeraldError({ code: 'CLOSED', message: 'this client is closed; connect again' });
    const waiting = this.records.filter((r) => r.state === 'queued' || r.state === 'sending').length;
    if (waiting >= this.maxQueued) {
      throw new HeraldError({
        code: 'QUEUE_FULL',
        message: `${waiting} writes are waiting to be sent (the limit is ${this.maxQueued}); wait until the connection is back and they are sent`,
      });
    }
    const now = Date.now();
    this.lastOrder = Math.max(this.lastOrder + 1, now * 1000);
    const record = {
      key: uuid(), order: this.lastOrder, createdAt: now, collection, op, id,
      method, path, body, deviceId: this.deviceId, state: 'queued', attempts: 0,
    };
    this.records.push(record);
    const handle = this.handle(record);
    handle.queued = this.store ? this.persist(record) : this.ready.then(() => (record.stored ? undefined : this.persist(record)));
    handle.queued.catch(() => {});
    this.touch(...touched(record));
    this.emitWrite(handle);
    return handle;
  }

  async persist(record) {
    if (this.closed) return;
    const { stored, ...plain } = record; // eslint-disable-line no-unused-vars
    await this.store.put(plain);
    record.stored = true;
    this.tell({ t: 'changed' });
    this.wake();
  }

  handle(record) {
    let h = this.handles.get(record.key);
    if (!h) {
      h = new Write(record);
      this.handles.set(record.key, h);
    }
    h.state = record.state;
    return h;
  }

  emitWrite(handle) {
    for (const fn of this.listeners.write) safe(fn, handle);
  }

  /** Reads the shared queue again (another tab changed it). */
  async reload() {
    if (!this.store || this.closed) return;
    const stored = await this.store.writes();
    const keys = new Set(stored.map((r) => r.key));
    const local = this.records.filter((r) => !r.stored && !keys.has(r.key));
    this.records = [...stored.map((r) => ({ ...r, stored: true })), ...local].sort((a, b) => a.order - b.order);
    for (const r of this.records) this.handle(r);
    this.lastOrder = Math.max(this.lastOrder, ...this.records.map((r) => r.order), 0);
    this.expireOld();
    this.touch(...NAMES);
  }

  expireOld() {
    const now = Date.now();
    for (const r of this.records) {
      if ((r.state === 'queued' || r.state === 'sending') && now - r.createdAt > this.maxAgeMs) {
        this.settle(r, { state: 'expired', error: new HeraldError({ code: 'EXPIRED', message: `this write waited more than ${Math.round(this.maxAgeMs / 3600000)} h to be sent and was dropped` }) });
      }
    }
  }

  /** An event that carries a queued write's key confirms it. */
  confirmByEvent(ev) {
    const record = this.records.find((r) => r.key === ev.mutationId);
    if (!record || !confirmingEvent(record).includes(ev.type)) return;
    this.settle(record, { state: 'applied', value: ev.type === 'PENDING_BATCH_UPSERTED' ? ev.payload : objectOf(ev) });
  }

  /** Ends a write: applied, rejected or expired. Idempotent. */
  settle(record, outcome, fromPeer = false) {
    if (outcome.state === 'applied' && outcome.answer) {
      const changed = this.confirmed.applyAnswer(record, outcome.answer);
      if (changed.size) { this.touch(...changed); this.saveSoon(); }
    }
    const known = this.records.find((r) => r.key === record.key);
    if (!fromPeer) {
      if (this.store) this.store.remove(record.key).catch(() => {});
      this.tell({
        t: 'settled', key: record.key, state: outcome.state, answer: outcome.answer, value: outcome.value,
        error: outcome.error && plainError(outcome.error), record: known ? undefined : plainRecord(record),
      });
    }
    if (!known) return;
    this.records = this.records.filter((r) => r.key !== record.key);
    known.state = outcome.state;
    const h = this.handle(known);
    if (outcome.state === 'applied') h.resolve(outcome.value ?? outcome.answer ?? null);
    else h.reject(outcome.error);
    this.touch(...touched(known));
    this.emitWrite(h);
  }

  onPeer(msg) {
    if (!msg || this.closed) return;
    if (msg.t === 'changed') {
      this.reload().then(() => this.wake());
    } else if (msg.t === 'settled') {
      const record = this.records.find((r) => r.key === msg.key) || msg.record || { key: msg.key };
      const error = msg.error ? new HeraldError(msg.error) : undefined;
      this.settle(record, { state: msg.state, answer: msg.answer, value: msg.value, error }, true);
    }
  }

  tell(msg) {
    if (this.channel) {
      try { this.channel.postMessage(msg); } catch { /* a closed channel */ }
    }
  }

  // --- the sender -----------------------------------------------------------

  /** One tab of the device sends (Web Locks); the others wait their turn. */
  startSender() {
    const run = () => this.sendLoop();
    if (globalThis.navigator && navigator.locks) {
      navigator.locks.request(`herald-sender:${this.storageName}`, run).catch(() => {});
    } else {
      run();
    }
  }

  wait(ms) {
    if (this.closed) return Promise.resolve();
    return new Promise((ok) => {
      const timer = ms ? setTimeout(ok, ms) : null;
      this.wakers.push(() => { clearTimeout(timer); ok(); });
    });
  }

  wake() {
    const wakers = this.wakers;
    this.wakers = [];
    wakers.forEach((w) => w());
  }

  async sendLoop() {
    this.sending = true;
    while (!this.closed) {
      try {
        await this.sendNext();
      } catch (e) {
        if (this.closed) break;
        console.warn('herald: the queue could not be read or sent; trying again', e);
        await this.wait(this.retryMinMs);
      }
    }
    this.sending = false;
  }

  /** Sends the oldest queued write, or waits for one. */
  async sendNext() {
    const next = (await this.store.writes())[0];
    if (!next) { await this.wait(30000); return; }
    if (Date.now() - next.createdAt > this.maxAgeMs) {
      await this.reload();
      if (this.records.some((r) => r.key === next.key)) this.expireOld();
      else await this.store.remove(next.key);
      return;
    }
    if ((globalThis.navigator && navigator.onLine === false) || this.authPaused) { await this.wait(30000); return; }
    if (next.state !== 'sending') {
      await this.store.update(next.key, { state: 'sending' });
      const mine = this.records.find((r) => r.key === next.key);
      if (mine) { mine.state = 'sending'; this.emitWrite(this.handle(mine)); }
      this.tell({ t: 'changed' });
    }
    const outcome = await this.send(next);
    if (outcome.kind === 'done') {
      await this.store.remove(next.key);
      this.settle(this.records.find((r) => r.key === next.key) || next, outcome.settle);
    } else if (outcome.kind === 'retry') {
      const attempts = (next.attempts || 0) + 1;
      await this.store.update(next.key, { attempts });
      const backoff = Math.min(RETRY_MAX, this.retryMinMs * 2 ** Math.min(attempts - 1, 5));
      const delay = Math.max(outcome.after || 0, Math.round(backoff / 2 + Math.random() * backoff / 2));
      await this.wait(delay);
    } else if (outcome.kind === 'auth') {
      this.authPaused = true;
      this.setStatus('offline', 'the server refused the token; writes wait until you sign in again');
    }
  }

  /** Sends one write; answers what to do next. */
  async send(write, renewed = false) {
    let res;
    try {
      res = await this.fetchImpl(this.url + write.path, {
        method: write.method,
        headers: this.headers(write.body !== undefined, { 'Idempotency-Key': write.key }),
        body: write.body === undefined ? undefined : JSON.stringify(write.body),
      });
    } catch (e) {
      return { kind: 'retry' }; // the network: again, later
    }
    const data = await readBody(res);
    if (res.ok) return { kind: 'done', settle: { state: 'applied', answer: data, value: data } };
    if (res.status === 401) {
      if (!renewed && (await this.renewToken())) return this.send(write, true);
      return { kind: 'auth' };
    }
    if (res.status === 408 || res.status === 429 || res.status >= 500) {
      const after = Number(res.headers.get('Retry-After'));
      return { kind: 'retry', after: Number.isFinite(after) && after > 0 ? after * 1000 : 0 };
    }
    const err = data && data.error ? data.error : { code: `HTTP_${res.status}`, message: res.statusText };
    const error = new HeraldError({ status: res.status, code: err.code, message: err.message, current: data && data.current });
    return { kind: 'done', settle: { state: 'rejected', error } };
  }

  headers(json, extra = {}) {
    const h = { Authorization: `Bearer ${this.token}`, 'X-Device-Id': this.deviceId, ...extra };
    if (json) h['Content-Type'] = 'application/json';
    return h;
  }

  /** A REST read (retried once with a new token after a 401). */
  async get(path, renewed = false) {
    const res = await this.fetchImpl(this.url + path, { headers: this.headers(false) });
    if (res.status === 401 && !renewed && (await this.renewToken())) return this.get(path, true);
    const data = await readBody(res);
    if (!res.ok) {
      const err = data && data.error ? data.error : { code: `HTTP_${res.status}`, message: res.statusText };
      throw new HeraldError({ status: res.status, code: err.code, message: err.message });
    }
    return data;
  }

  /** A new token from `getToken`; false without one. One at a time. */
  renewToken() {
    if (!this.getToken) return Promise.resolve(false);
    if (!this.renewing) {
      this.renewing = (async () => {
        try {
          const token = await this.getToken();
          if (!token) return false;
          this.token = token;
          this.authPaused = false;
          this.wake();
          return true;
        } catch (e) {
          return false;
        } finally {
          setTimeout(() => { this.renewing = null; }, 0);
        }
      })();
    }
    return this.renewing;
  }
}

function enc(id) {
  return encodeURIComponent(id);
}

function add(set, fn) {
  set.add(fn);
  return () => set.delete(fn);
}

function safe(fn, ...args) {
  try { fn(...args); } catch (e) { setTimeout(() => { throw e; }, 0); }
}

/** The collections a write's optimistic change shows in. */
function touched(record) {
  return record.collection === 'drafts' && record.op === 'convert' ? ['drafts', 'pendingOrders'] : [record.collection];
}

function plainRecord(r) {
  return { key: r.key, collection: r.collection, op: r.op, id: r.id, body: r.body };
}

function plainError(e) {
  return { status: e.status, code: e.code, message: e.message, current: e.current };
}

async function readBody(res) {
  const text = await res.text();
  if (!text) return null;
  try { return JSON.parse(text); } catch { return text; }
}
