// The SDK's queue and its confirmed/pending merge, in Node with
// fake-indexeddb and a scripted server (a fake `fetch`): no socket.

import 'fake-indexeddb/auto';
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { connect, HeraldError } from '../herald.js';

/** A JWT-shaped token (unsigned: the client only reads `sub` and `exp`). */
function token(sub, exp = Math.floor(Date.now() / 1000) + 3600) {
  const part = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${part({ alg: 'HS256' })}.${part({ sub, role: 'agent', exp })}.sig`;
}

let names = 0;
const fresh = () => `test-${process.pid}-${(names += 1)}`;

/** A server that answers from `routes` and records what it got. */
function server(routes) {
  const calls = [];
  const fetch = async (url, init = {}) => {
    const path = url.replace('http://herald.test', '');
    const call = { method: init.method || 'GET', path, headers: init.headers || {}, body: init.body ? JSON.parse(init.body) : undefined };
    calls.push(call);
    const answer = await routes(call, calls);
    if (answer instanceof Error) throw answer;
    const { status = 200, body, headers = {} } = answer;
    return new Response(body === undefined ? null : JSON.stringify(body), { status, headers });
  };
  return { fetch, calls };
}

const emptyLists = (call) => {
  if (call.method === 'GET') return { body: [] };
  return null;
};

function client(srv, more = {}) {
  return connect({ url: 'http://herald.test', token: token('alice'), deviceId: 'd1', socket: false, retryMinMs: 50, fetch: srv.fetch, storageName: more.storageName || fresh(), ...more });
}

const until = async (check, ms = 3000) => {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((ok) => setTimeout(ok, 5));
  }
};

const draft = (id, payload, at) => ({ id, userId: 'alice', deviceId: 'd1', payload, serverUpdatedAt: at, deleted: false });

test('a write is queued in IndexedDB, shown at once as pending, and replaced by the confirmed object in one step', async () => {
  let release;
  const gate = new Promise((ok) => { release = ok; });
  const srv = server(async (call) => {
    if (call.method === 'GET') return { body: [] };
    await gate;
    return { status: 201, body: draft(call.body.id, call.body.payload, '2026-12-05T10:00:00.000Z') };
  });
  const h = client(srv);
  await h.ready;
  const seen = [];
  h.onChange(() => seen.push(h.drafts.list().map((d) => [d.payload.n, d.pending])));
  const w = h.drafts.create({ n: 1 });
  assert.equal(w.state, 'queued');
  assert.deepEqual(h.drafts.list().map((d) => [d.id, d.pending]), [[w.id, true]]);
  await w.queued;
  assert.equal(h.pending().length, 1);
  release();
  const confirmed = await w.applied;
  assert.equal(confirmed.serverUpdatedAt, '2026-12-05T10:00:00.000Z');
  await until(() => h.pending().length === 0);
  assert.deepEqual(h.drafts.list().map((d) => [d.payload.n, d.pending]), [[1, false]]);
  // Never a frame without the draft, never two of it.
  assert.ok(seen.every((frame) => frame.length === 1), JSON.stringify(seen));
  const post = srv.calls.find((c) => c.method === 'POST');
  assert.equal(post.headers['Idempotency-Key'], w.key);
  assert.equal(post.headers['X-Device-Id'], 'd1');
  h.close();
});

test('writes survive a restart of the client and are sent in order, once each', async () => {
  const storageName = fresh();
  let online = false;
  const srv = server(async (call) => {
    if (call.method === 'GET') return { body: [] };
    if (!online) return new TypeError('fetch failed');
    return { status: 201, body: draft(call.body.id, call.body.payload, new Date().toISOString()) };
  });
  const a = client(srv, { storageName });
  await a.ready;
  const writes = [a.drafts.create({ n: 1 }), a.drafts.create({ n: 2 }), a.drafts.create({ n: 3 })];
  await Promise.all(writes.map((w) => w.queued));
  a.close();
  // A new page: the queue is still there, and is sent when the network is.
  online = true;
  const b = client(srv, { storageName });
  await b.ready;
  await until(() => b.pending().length === 0, 8000);
  const posts = srv.calls.filter((c) => c.method === 'POST');
  const sent = [...new Map(posts.map((p) => [p.headers['Idempotency-Key'], p.body.payload.n])).values()];
  assert.deepEqual(sent, [1, 2, 3], 'in the order they were made');
  assert.deepEqual(b.drafts.list().map((d) => d.pending), [false, false, false]);
  b.close();
});

test('network errors, 5xx, 503 and 429 are retried with the same key; Retry-After is honoured', async () => {
  const answers = [new TypeError('fetch failed'), { status: 500, body: { error: { code: 'INTERNAL', message: 'x' } } },
    { status: 503, body: { error: { code: 'UNAVAILABLE', message: 'x' } } },
    { status: 429, headers: { 'Retry-After': '1' }, body: { error: { code: 'RATE_LIMITED', message: 'x' } } }];
  const srv = server(async (call) => {
    if (call.method === 'GET') return { body: [] };
    return answers.shift() || { status: 201, body: draft(call.body.id, call.body.payload, new Date().toISOString()) };
  });
  const h = client(srv);
  const started = Date.now();
  const w = h.drafts.create({ n: 1 });
  await w.applied;
  const posts = srv.calls.filter((c) => c.method === 'POST');
  assert.equal(posts.length, 5);
  assert.equal(new Set(posts.map((p) => p.headers['Idempotency-Key'])).size, 1, 'one key throughout');
  assert.ok(Date.now() - started >= 1000, 'waited Retry-After');
  h.close();
});

test('a rejection rolls the optimistic change back and rejects `applied` with the server\'s code, message and current', async () => {
  const current = draft('11111111-1111-4111-8111-111111111111', { n: 'theirs' }, '2026-12-05T10:00:01.000Z');
  const srv = server(async (call) => {
    if (call.method === 'GET') return call.path.startsWith('/api/drafts') ? { body: [draft(current.id, { n: 'mine' }, '2026-12-05T10:00:00.000Z')] } : { body: [] };
    return { status: 409, body: { error: { code: 'STALE_DRAFT', message: 'changed meanwhile' }, current } };
  });
  const h = client(srv);
  await h.ready;
  await until(() => h.drafts.list().length === 1);
  const written = [];
  h.onWrite((w) => written.push(w.state));
  const w = h.drafts.update(current.id, { n: 'edited' }, { baseServerUpdatedAt: '2026-12-05T10:00:00.000Z' });
  assert.equal(h.drafts.get(current.id).payload.n, 'edited');
  assert.equal(h.drafts.get(current.id).pending, true);
  const err = await w.applied.then(() => null, (e) => e);
  assert.ok(err instanceof HeraldError);
  assert.deepEqual([err.status, err.code, err.message], [409, 'STALE_DRAFT', 'changed meanwhile']);
  assert.deepEqual(err.current, current);
  assert.equal(w.state, 'rejected');
  assert.equal(h.drafts.get(current.id).payload.n, 'mine', 'rolled back');
  assert.deepEqual(written, ['queued', 'sending', 'rejected']);
  h.close();
});

test('the event carrying a write\'s mutationId confirms it before its answer; the answer then changes nothing', async () => {
  let release;
  const gate = new Promise((ok) => { release = ok; });
  const srv = server(async (call) => {
    if (call.method === 'GET') return { body: [] };
    await gate;
    return { status: 201, body: draft(call.body.id, call.body.payload, '2026-12-05T10:00:00.000Z') };
  });
  const h = client(srv);
  await h.ready;
  const w = h.drafts.create({ n: 1 });
  await until(() => srv.calls.some((c) => c.method === 'POST'));
  const confirmed = draft(w.id, { n: 1 }, '2026-12-05T10:00:00.000Z');
  h.onEvent({ type: 'DRAFT_CREATED', seq: 1, payload: { draft: confirmed }, mutationId: w.key, originDeviceId: 'd1' }, { lastSeq: 1, epoch: 'e' });
  assert.equal(w.state, 'applied');
  assert.deepEqual(await w.applied, confirmed);
  assert.deepEqual(h.drafts.list().map((d) => [d.id, d.pending]), [[w.id, false]]);
  release();
  await until(() => h.pending().length === 0);
  // The same event again (a replay) or an older one: nothing moves.
  h.onEvent({ type: 'DRAFT_UPDATED', seq: 2, payload: { draft: draft(w.id, { n: 0 }, '2026-12-05T09:00:00.000Z') } }, { lastSeq: 2, epoch: 'e' });
  assert.equal(h.drafts.get(w.id).payload.n, 1);
  h.close();
});

test('a confirmed event re-applies the pending writes on the new state', async () => {
  const id = '22222222-2222-4222-8222-222222222222';
  const srv = server(async (call) => (call.method === 'GET' ? { body: call.path.startsWith('/api/drafts') ? [draft(id, { a: 1 }, '2026-12-05T10:00:00.000Z')] : [] } : new TypeError('offline')));
  const h = client(srv);
  await h.ready;
  await until(() => h.drafts.list().length === 1);
  h.drafts.update(id, { a: 1, mine: true });
  h.onEvent({ type: 'DRAFT_UPDATED', seq: 1, payload: { draft: draft(id, { a: 2 }, '2026-12-05T10:00:05.000Z') } }, { lastSeq: 1, epoch: 'e' });
  const shown = h.drafts.get(id);
  assert.deepEqual([shown.payload, shown.pending, shown.serverUpdatedAt], [{ a: 1, mine: true }, true, '2026-12-05T10:00:05.000Z']);
  // Deleted elsewhere: the pending update shows nothing (the server will say 410).
  h.onEvent({ type: 'DRAFT_DELETED', seq: 2, payload: { draft: { ...draft(id, null, '2026-12-05T10:00:06.000Z'), deleted: true } } }, { lastSeq: 2, epoch: 'e' });
  assert.deepEqual(h.drafts.list(), []);
  h.close();
});

test('a convert shows the new order at once and hides the draft; orders and jobs merge the same way', async () => {
  const id = '33333333-3333-4333-8333-333333333333';
  const srv = server(async (call) => (call.method === 'GET' ? { body: call.path.startsWith('/api/drafts') ? [draft(id, { c: 'ACME' }, '2026-12-05T10:00:00.000Z')] : [] } : new TypeError('offline')));
  const h = client(srv);
  await h.ready;
  await until(() => h.drafts.list().length === 1);
  const conv = h.drafts.convert(id);
  assert.deepEqual(h.drafts.list(), []);
  const order = h.pendingOrders.list()[0];
  assert.deepEqual([order.payload, order.status, order.pending], [{ c: 'ACME' }, 'pending', true]);
  assert.ok(conv.key);
  const o = h.pendingOrders.create([{ payload: 1 }, { payload: 2 }]);
  assert.equal(h.pendingOrders.list().length, 3);
  h.pendingOrders.remove(order.id);
  assert.equal(h.pendingOrders.list().length, 2);
  h.jobs.create('customer-sync');
  assert.deepEqual(h.jobs.list().map((j) => [j.kind, j.status, j.pending]), [['customer-sync', 'queued', true]]);
  assert.equal(h.pending().length, 4);
  assert.ok(o.key);
  h.close();
});

test('a full queue refuses new writes instead of dropping old ones', async () => {
  const srv = server(async (call) => (call.method === 'GET' ? { body: [] } : new TypeError('offline')));
  const h = client(srv, { maxQueued: 3 });
  for (let i = 0; i < 3; i += 1) h.drafts.create({ i });
  assert.throws(() => h.drafts.create({ i: 3 }), (e) => e instanceof HeraldError && e.code === 'QUEUE_FULL' && /limit is 3/.test(e.message));
  assert.equal(h.pending().length, 3);
  h.close();
});

test('writes older than maxAgeMs are not sent and are reported as expired', async () => {
  const storageName = fresh();
  const srv = server(async (call) => (call.method === 'GET' ? { body: [] } : new TypeError('offline')));
  const a = client(srv, { storageName });
  const w = a.drafts.create({ old: true });
  await w.queued;
  a.close();
  await new Promise((ok) => setTimeout(ok, 60));
  const online = server(async (call) => (call.method === 'GET' ? { body: [] } : { status: 201, body: draft(call.body.id, call.body.payload, new Date().toISOString()) }));
  const b = client(online, { storageName, maxAgeMs: 50 });
  const expired = [];
  b.onWrite((x) => expired.push([x.key, x.state]));
  await b.ready;
  await until(() => expired.length > 0);
  assert.deepEqual(expired, [[w.key, 'expired']]);
  await new Promise((ok) => setTimeout(ok, 100));
  assert.equal(online.calls.filter((c) => c.method === 'POST').length, 0, 'never sent');
  assert.equal(b.pending().length, 0);
  b.close();
});

test('a 401 gets a new token from getToken and is retried once; without one the queue waits', async () => {
  const good = token('alice');
  const srv = server(async (call) => {
    if (call.headers.Authorization !== `Bearer ${good}`) return { status: 401, body: { error: { code: 'UNAUTHORIZED', message: 'expired' } } };
    if (call.method === 'GET') return { body: [] };
    return { status: 201, body: draft(call.body.id, call.body.payload, new Date().toISOString()) };
  });
  const h = client(srv, { token: token('alice', 1), getToken: async () => good });
  await (h.drafts.create({ n: 1 })).applied;
  h.close();

  const stuck = client(srv, { token: token('alice', 1) });
  const statuses = [];
  stuck.onStatus((s, why) => statuses.push([s, why]));
  const w = stuck.drafts.create({ n: 2 });
  await until(() => statuses.some(([s]) => s === 'offline'));
  assert.equal(w.state, 'sending', 'still queued, never rejected for the token');
  assert.match(statuses.at(-1)[1], /sign in again/);
  stuck.setToken(good);
  await w.applied;
  stuck.close();
});
