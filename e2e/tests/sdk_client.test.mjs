// The SDK's connection in Chromium against a real herald: a replay the
// server cannot give (`recovered:false`) refetches over REST and keeps the
// pending writes; a hole in the seqs reconnects from what it has; a tab
// becoming visible reconnects at once; reconnects back off (1-30 s, with
// jitter). The page's WebSocket is wrapped to watch each connection and to
// lose one frame on purpose.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Herald, launchBrowser } from '../lib/harness.mjs';

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

/** A page on herald's origin running the SDK as `window.h`, its sockets
 * listed in `window.socks`; `window.dropSeq = n` loses the frame of seq n. */
async function sdkPage(herald, token) {
  // No service worker: every request the SDK makes is the page's own.
  const context = await browser.newContext({ serviceWorkers: 'block' });
  const page = await context.newPage();
  const requests = [];
  page.on('request', (r) => requests.push(`${r.method()} ${new URL(r.url()).pathname}`));
  await page.goto(`${herald.url}/`);
  await page.evaluate(async ({ token }) => {
    const { connect } = await import('/sdk/herald.js');
    window.socks = [];
    window.dropSeq = null;
    class TestSocket extends WebSocket {
      constructor(url) {
        super(url);
        window.socks.push({ url: String(url), at: Date.now(), closed: null });
        const mine = window.socks[window.socks.length - 1];
        this.addEventListener('close', (e) => { mine.closed = e.code; });
      }
      get onmessage() { return super.onmessage; }
      set onmessage(fn) {
        super.onmessage = (e) => {
          const m = JSON.parse(e.data);
          if (window.dropSeq !== null && m.seq === window.dropSeq) { window.dropSeq = null; return; }
          fn(e);
        };
      }
    }
    window.h = connect({ token, deviceId: 'sdk-test', WebSocket: TestSocket, storageName: `sdk-test-${Math.random()}` });
  }, { token });
  await page.waitForFunction(() => window.h.status === 'online', null, { timeout: 10000 });
  return { page, context, requests };
}

const drafts = (page) => page.evaluate(() => window.h.drafts.list().length);

test('recovered:false refetches the collections and keeps the writes still pending', async () => {
  const herald = await new Herald({ HERALD_MAX_REPLAY_EVENTS: '5' }).start();
  try {
    const token = herald.token('gina', 'agent');
    for (const i of [1, 2]) await herald.api('POST', '/api/drafts', token, { payload: { i } });
    const { page, context, requests } = await sdkPage(herald, token);
    await page.waitForFunction(() => window.h.drafts.list().length === 2);
    // Offline, and its socket closed by the server (Chromium's offline
    // mode keeps an open WebSocket open), so it cannot come back yet.
    await context.setOffline(true);
    await page.evaluate(() => window.dispatchEvent(new Event('offline')));
    const admin = herald.token('root', 'admin');
    const conns = await herald.api('GET', '/api/admin/connections', admin);
    const mine = conns.find((c) => c.deviceId === 'sdk-test');
    await fetch(`${herald.url}/api/admin/connections/${mine.id}`, { method: 'DELETE', headers: { Authorization: `Bearer ${admin}` } });
    await page.waitForFunction(() => window.socks[0].closed === 4003, null, { timeout: 5000 });
    // Ten changes elsewhere: more than the server replays (5).
    for (let i = 3; i <= 12; i++) await herald.api('POST', '/api/drafts', token, { payload: { i } });
    // And one of ours, made while offline.
    await page.evaluate(() => { window.mine = window.h.drafts.create({ mine: true }); });
    assert.equal(await drafts(page), 3);
    const before = requests.filter((r) => r === 'GET /api/drafts').length;
    await context.setOffline(false);
    await page.evaluate(() => window.dispatchEvent(new Event('online')));
    await page.waitForFunction(() => window.h.drafts.list().length === 13 && window.h.pending().length === 0, null, { timeout: 10000 });
    assert.ok(requests.filter((r) => r === 'GET /api/drafts').length > before, `the drafts were fetched again: ${requests.join(', ')}`);
    const server = await herald.api('GET', '/api/drafts', token);
    const list = Array.isArray(server) ? server : server.drafts || server.items;
    assert.equal(list.length, 13, 'every draft, ours once');
    assert.equal(list.filter((d) => d.payload.mine).length, 1);
    await context.close();
  } finally {
    await herald.stop();
  }
});

test('a hole in the seqs reconnects from the last seq it has and gets the missing event', async () => {
  const herald = await new Herald().start();
  try {
    const token = herald.token('hugo', 'agent');
    const { page, context } = await sdkPage(herald, token);
    const first = await herald.api('POST', '/api/drafts', token, { payload: { n: 1 } });
    await page.waitForFunction(() => window.h.drafts.list().length === 1);
    // The next event's frame is lost on the way; the one after shows the hole.
    const seq = await page.evaluate(() => window.h.cursor.lastSeq);
    await page.evaluate((s) => { window.dropSeq = s + 1; }, seq);
    await herald.api('POST', '/api/drafts', token, { payload: { n: 2 } });
    await page.waitForFunction(() => window.dropSeq === null, null, { timeout: 5000 });
    assert.equal(await drafts(page), 1, 'the lost event is not there yet');
    await herald.api('POST', '/api/drafts', token, { payload: { n: 3 } });
    await page.waitForFunction(() => window.h.drafts.list().length === 3, null, { timeout: 5000 });
    const socks = await page.evaluate(() => window.socks);
    assert.equal(socks.length, 2, 'one reconnect');
    assert.equal(socks[0].closed, 4000, 'the first socket closed for the gap');
    assert.match(socks[1].url, new RegExp(`since=${seq}(&|$)`), socks[1].url);
    assert.ok(first.id);
    await context.close();
  } finally {
    await herald.stop();
  }
});

test('reconnects back off while the server is down, and at once when the tab becomes visible', async () => {
  const herald = await new Herald().start();
  try {
    const token = herald.token('iris', 'agent');
    const { page, context } = await sdkPage(herald, token);
    await herald.kill();
    await page.waitForFunction(() => window.socks.length >= 5, null, { timeout: 30000 });
    const at = (await page.evaluate(() => window.socks.map((s) => s.at))).slice(1);
    const gaps = at.slice(1).map((t, i) => t - at[i]);
    // Base 1, 2, 4, 8 s, each waited between half and all of it.
    gaps.forEach((gap, i) => {
      const base = 1000 * 2 ** (i + 1);
      assert.ok(gap >= base / 2 - 100 && gap <= base + 500, `attempt ${i + 2} came ${gap} ms after the one before (base ${base} ms): ${gaps}`);
    });
    // Up again; the next attempt is seconds away, but the tab shows.
    await herald.start();
    const t0 = Date.now();
    await page.evaluate(() => document.dispatchEvent(new Event('visibilitychange')));
    await page.waitForFunction(() => window.h.status === 'online', null, { timeout: 3000 });
    assert.ok(Date.now() - t0 < 2000, `online ${Date.now() - t0} ms after the tab became visible`);
    await context.close();
  } finally {
    await herald.stop();
  }
});
