// Convergence with SDK clients (issue 24): four devices of one agent run the
// SDK in Node against a real herald, each losing its network now and then
// (its socket cut, its requests failing) while it keeps writing: creates,
// updates and deletes of drafts, queued while it is cut off. A back end
// writes over REST meanwhile, and the server is killed and restarted once.
// At the end every device is online again: nothing may still be pending,
// every write is either applied or rejected with a reason (never lost),
// every create landed exactly once, and every device shows exactly what the
// server has. The schedule is random from a printed seed
// (SDK_CONVERGENCE_SEED=<n> repeats one).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { connect } from '../../clients/js/herald.js';
import { Herald } from '../lib/harness.mjs';

/** A small seeded generator (mulberry32). */
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** One device's network: while it is down its sockets are cut and its
 * requests fail as a browser's do without a network; and now and then a
 * write reaches the server but its answer is lost on the way back (the
 * case an Idempotency-Key exists for). */
function network(random) {
  const net = { online: true, sockets: new Set(), lost: 0 };
  net.fetch = async (url, init = {}) => {
    if (!net.online) throw new TypeError('fetch failed');
    const answer = await fetch(url, init);
    if ((init.method || 'GET') !== 'GET' && random() < 0.1) {
      net.lost += 1;
      throw new TypeError('fetch failed: the answer was lost');
    }
    return answer;
  };
  net.WebSocket = class extends WebSocket {
    constructor(url) {
      super(url);
      net.sockets.add(this);
      this.on('close', () => net.sockets.delete(this));
      this.on('error', () => {});
      if (!net.online) setImmediate(() => this.terminate());
    }
  };
  net.down = () => {
    net.online = false;
    for (const s of net.sockets) s.terminate();
  };
  return net;
}

const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));

/** The user's whole stream, replayed from its first event by a socket of
 * its own (CONNECTED names the epoch, then since=0 replays everything). */
async function wholeStream(herald, token) {
  const open = (query) => new Promise((ok, fail) => {
    const ws = new WebSocket(`ws://${herald.addr}/ws/realtime?token=${token}&deviceId=auditor${query}`);
    const frames = [];
    const waiters = [];
    ws.on('message', (m) => { frames.push(JSON.parse(m.toString())); waiters.splice(0).forEach((w) => w()); });
    // Waits for one more frame than `seen`.
    ws.once('open', () => ok({ ws, frames, next: (seen) => new Promise((r) => (frames.length > seen ? r() : waiters.push(r))) }));
    ws.once('error', fail);
  });
  const first = await open('');
  await first.next(0);
  const { epoch } = first.frames[0].payload;
  first.ws.close();
  const replay = await open(`&since=0&epoch=${epoch}`);
  while (!replay.frames.some((f) => f.type === 'REPLAY_COMPLETE')) await replay.next(replay.frames.length);
  replay.ws.close();
  const done = replay.frames.find((f) => f.type === 'REPLAY_COMPLETE');
  assert.equal(done.payload.recovered, true, 'the whole stream replays');
  return replay.frames.filter((f) => f.seq !== null && f.seq !== undefined);
}

async function until(check, ms, what) {
  const end = Date.now() + ms;
  for (;;) {
    const state = await check();
    if (state === true) return;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}: ${state}`);
    await sleep(100);
  }
}

test('SDK devices that write while cut off converge on what the server has, each write once', async () => {
  const seed = Number(process.env.SDK_CONVERGENCE_SEED || Math.floor(Math.random() * 1e9));
  console.log(`# SDK convergence seed ${seed} (SDK_CONVERGENCE_SEED=${seed} repeats it)`);
  const random = rng(seed);
  const pick = (list) => list[Math.floor(random() * list.length)];
  const herald = await new Herald().start();
  const devices = [];
  try {
    const token = herald.token('conv', 'agent');
    for (const name of ['d1', 'd2', 'd3', 'd4']) {
      const net = network(rng(seed + devices.length + 1));
      const h = connect({ url: herald.url, token, deviceId: name, WebSocket: net.WebSocket, fetch: net.fetch, retryMinMs: 100, storageName: `conv-${seed}-${name}` });
      devices.push({ name, net, h, writes: [] });
    }
    await until(() => devices.every((d) => d.h.status === 'online') || devices.map((d) => d.h.status).join(','), 10000, 'every device online');

    const created = new Set();
    let restarted = false;
    let backend = 0;
    const steps = 240;
    for (let step = 0; step < steps; step++) {
      const d = pick(devices);
      const r = random();
      if (r < 0.08) {
        if (d.net.online) d.net.down();
        else { d.net.online = true; d.h.wake(); }
      } else if (r < 0.5 || !d.h.drafts.list().length) {
        const tag = `c-${d.name}-${step}`;
        created.add(tag);
        d.writes.push(d.h.drafts.create({ tag, by: d.name }));
      } else if (r < 0.85) {
        const target = pick(d.h.drafts.list());
        d.writes.push(d.h.drafts.update(target.id, { ...target.payload, edit: `${d.name}-${step}` }));
      } else {
        d.writes.push(d.h.drafts.remove(pick(d.h.drafts.list()).id));
      }
      if (random() < 0.1) {
        backend += 1;
        const tag = `b-${step}`;
        created.add(tag);
        try {
          await herald.api('POST', '/api/drafts', token, { payload: { tag, by: 'backend' } });
        } catch (e) {
          if (!restarted || herald.proc.exitCode === null) throw e;
        }
      }
      if (!restarted && step === Math.floor(steps / 2)) {
        // The server dies mid-run; the devices ride through.
        await herald.kill();
        await sleep(300);
        await herald.start();
        restarted = true;
      }
      await sleep(40 + random() * 60);
    }

    // Every device back online.
    for (const d of devices) { if (!d.net.online) { d.net.online = true; d.h.wake(); } }
    const outcomes = await Promise.all(devices.map(async (d) => Promise.all(d.writes.map((w) => w.applied.then(() => 'applied', (e) => `rejected ${e.code}`)))));
    await until(() => devices.every((d) => d.h.pending().length === 0) || devices.map((d) => d.h.pending().length).join(','), 30000, 'no write pending');
    const all = outcomes.flat();
    const applied = all.filter((o) => o === 'applied').length;
    const rejected = all.filter((o) => o !== 'applied');
    // A write is rejected only for a reason the contract gives: an update
    // or delete of a draft another device deleted meanwhile.
    for (const o of rejected) assert.match(o, /rejected (GONE|NOT_FOUND|CONFLICT)/, o);
    assert.equal(applied + rejected.length, all.length, 'every write settled');
    assert.ok(applied >= all.length * 0.6, `${applied} of ${all.length} writes applied`);

    // Every create exactly once (deleted ones as tombstones).
    const everything = await herald.api('GET', '/api/drafts?includeDeleted=true', token);
    const tags = everything.map((x) => x.payload && x.payload.tag).filter(Boolean);
    const counts = new Map();
    for (const t of tags) counts.set(t, (counts.get(t) || 0) + 1);
    for (const [t, n] of counts) assert.equal(n, 1, `${t} stored ${n} times`);
    const deviceCreates = [...created].filter((t) => t.startsWith('c-'));
    for (const t of deviceCreates) assert.ok(counts.has(t), `${t} was never stored`);

    // In the stream, each applied write is one event carrying its key as
    // mutationId (a write retried after a lost answer is not applied
    // twice), and a rejected one none.
    const events = await wholeStream(herald, token);
    const seqs = events.map((e) => e.seq);
    assert.deepEqual(seqs, seqs.map((_, i) => i + 1), 'one gapless sequence');
    const byMutation = new Map();
    for (const e of events) if (e.mutationId) byMutation.set(e.mutationId, (byMutation.get(e.mutationId) || 0) + 1);
    devices.forEach((d, i) => d.writes.forEach((w, j) => {
      const got = byMutation.get(w.key) || 0;
      const why = `${d.name}'s ${w.op} ${w.id} (${outcomes[i][j]}): ${got} events with its mutationId`;
      if (outcomes[i][j] !== 'applied') assert.equal(got, 0, why);
      // Deleting a draft another device deleted first answers 200 and
      // sends nothing (docs/decisions.md).
      else if (w.op === 'remove') assert.ok(got <= 1, why);
      else assert.equal(got, 1, why);
    }));

    // Every device shows what the server has.
    const live = (list) => list.filter((x) => !x.deleted).map((x) => `${x.id}:${JSON.stringify(x.payload)}`).sort();
    await until(async () => {
      const server = live(await herald.api('GET', '/api/drafts', token));
      const off = devices.filter((d) => JSON.stringify(live(d.h.drafts.list())) !== JSON.stringify(server));
      return off.length === 0 || `${off.map((d) => d.name).join(', ')} differ from the server (${server.length} drafts)`;
    }, 15000, 'every device to show the server\'s drafts');
    const lost = devices.reduce((n, d) => n + d.net.lost, 0);
    console.log(`# seed ${seed}: ${all.length} device writes (${applied} applied, ${rejected.length} rejected), ${lost} answers lost and retried, ${backend} back-end writes, ${deviceCreates.length} creates, one restart`);
  } finally {
    for (const d of devices) d.h.close();
    await herald.stop();
  }
});
