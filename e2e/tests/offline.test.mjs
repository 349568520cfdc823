// Writes that survive the network: the dashboard and the SDK offline, a
// server killed mid-flush, a rejected write, two tabs with one queue.
// Real herald, real headless Chromium, real IndexedDB and service worker.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { Herald, launchBrowser, signedInPage, screenshot } from '../lib/harness.mjs';

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

async function goOffline(page) {
  await page.context().setOffline(true);
  await page.evaluate(() => window.dispatchEvent(new Event('offline')));
  await page.waitForSelector('#conn[data-state="offline"]', { timeout: 5000 });
}

async function goOnline(page) {
  await page.context().setOffline(false);
  await page.evaluate(() => window.dispatchEvent(new Event('online')));
}

async function until(check, ms = 10000, what = 'the condition') {
  const end = Date.now() + ms;
  for (;;) {
    const got = await check();
    if (got) return got;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((ok) => setTimeout(ok, 50));
  }
}

const metric = async (herald, name) => {
  const text = await (await fetch(`${herald.url}/metrics`)).text();
  return Number((text.match(new RegExp(`^${name} (\\d+)`, 'm')) || [])[1] || 0);
};

test('writes made offline show at once, survive a closed tab and a dashboard opened without a network, and land once', async () => {
  const herald = await new Herald().start();
  try {
    const token = herald.token('alice', 'agent');
    const d0 = await herald.api('POST', '/api/drafts', token, { payload: { customer: 'Bar Roma' } });
    const o0 = await herald.api('POST', '/api/pending-orders', token, { payload: { customer: 'old order' } });
    const other = await signedInPage(browser, herald, token);
    const page = await signedInPage(browser, herald, token);
    const context = page.context();
    // The app shell is cached before the network goes.
    await page.waitForFunction(() => navigator.serviceWorker.controller !== null, null, { timeout: 10000 });
    await page.waitForSelector('.draft:has-text("Bar Roma")');

    await goOffline(page);
    await page.fill('#draft-payload', '{"customer": "made offline"}');
    await page.click('#draft-create');
    const edited = page.locator(`.draft[data-id="${d0.id}"]`);
    await edited.locator('button:has-text("Edit")').click();
    await edited.locator('textarea').fill('{"customer": "Bar Roma", "note": "edited offline"}');
    await edited.locator('button:has-text("Save")').click();
    await page.locator(`.order[data-id="${o0.id}"] button:has-text("Delete")`).click();
    await page.click('summary:has-text("Import a batch")');
    await page.fill('details textarea', '[{"payload": {"customer": "batch one"}}, {"payload": {"customer": "batch two"}}]');
    await page.click('details button:has-text("Import")');
    // All of it on the screen at once, marked as waiting.
    await page.waitForSelector('#sync-status:has-text("4 changes waiting to sync")', { timeout: 2000 });
    assert.equal(await page.locator('.draft[data-pending="true"]').count(), 2);
    assert.equal(await page.locator(`.order[data-id="${o0.id}"]`).count(), 0);
    assert.equal(await page.locator('.order[data-pending="true"]').count(), 2);
    await screenshot(page, 'agent-offline-waiting');

    // The tab closes; the network is still gone (here: the server too).
    await page.close();
    await herald.kill();
    const again = await context.newPage();
    await again.goto(`${herald.url}/#/agent`);
    await again.waitForSelector('#sync-status:has-text("4 changes waiting to sync")', { timeout: 10000 });
    await again.waitForSelector('.draft:has-text("made offline")');
    await again.waitForSelector('.draft:has-text("edited offline")');
    assert.equal(await again.locator('.order:has-text("batch two")').count(), 1);
    await screenshot(again, 'agent-opened-offline');

    // The network comes back: every write lands, once.
    await herald.start();
    await goOnline(again);
    await again.waitForSelector('#sync-status', { state: 'hidden', timeout: 15000 });
    await again.waitForSelector('#conn[data-state="connected"]', { timeout: 15000 });
    assert.equal(await again.locator('[data-pending="true"]').count(), 0);
    const drafts = await herald.api('GET', '/api/drafts', token);
    assert.equal(drafts.filter((d) => d.payload.customer === 'made offline').length, 1);
    assert.equal(drafts.find((d) => d.id === d0.id).payload.note, 'edited offline');
    const orders = await herald.api('GET', '/api/pending-orders', token);
    assert.deepEqual(orders.map((o) => o.payload.customer).sort(), ['batch one', 'batch two']);

    // The stream has each change once, each carrying its write's key...
    const mine = (await replayAll(herald, token)).filter((ev) => ev.mutationId);
    assert.deepEqual(mine.map((ev) => ev.type).sort(),
      ['DRAFT_CREATED', 'DRAFT_UPDATED', 'PENDING_BATCH_UPSERTED', 'PENDING_DELETED']);
    assert.equal(new Set(mine.map((ev) => ev.mutationId)).size, 4);
    // ...and the other device, which lost the server too, shows them all.
    await other.waitForSelector('.draft:has-text("made offline")', { timeout: 35000 });
    await other.waitForSelector('.draft:has-text("edited offline")', { timeout: 5000 });
    await other.waitForSelector('.order:has-text("batch two")', { timeout: 5000 });
    assert.equal(await other.locator(`.order[data-id="${o0.id}"]`).count(), 0);
    await other.context().close();
    await context.close();
  } finally {
    await herald.stop();
  }
});

/** Every stored event of the token's stream, from a replay from 0. */
async function replayAll(herald, token) {
  const open = (query) => new WebSocket(`ws://${herald.addr}/ws/realtime?token=${token}${query}`);
  const first = open('');
  const hello = await new Promise((ok, fail) => { first.once('message', (m) => ok(JSON.parse(m.toString()))); first.once('error', fail); });
  first.close();
  const replay = open(`&since=0&epoch=${encodeURIComponent(hello.payload.epoch)}`);
  return new Promise((ok, fail) => {
    const got = [];
    replay.on('message', (m) => {
      const ev = JSON.parse(m.toString());
      if (ev.type === 'REPLAY_COMPLETE') { replay.close(); ok(got); } else if (ev.seq !== null) got.push(ev);
    });
    replay.on('error', fail);
  });
}

/** A page of herald's origin with a client of its own (the SDK as an app uses it). */
async function sdkPage(context, herald, token, deviceId) {
  const page = await context.newPage();
  await page.goto(`${herald.url}/healthz`);
  await page.evaluate(async ([t, d]) => {
    const { connect } = await import('/sdk/herald.js');
    window.h = connect({ token: t, deviceId: d });
    await window.h.ready;
  }, [token, deviceId]);
  return page;
}

test('a server killed in the middle of a flush loses no write and applies none twice', async () => {
  const herald = await new Herald().start();
  try {
    const token = herald.token('bob', 'agent');
    const base = await herald.api('POST', '/api/drafts', token, { payload: { n: 0 } });
    const context = await browser.newContext();
    const page = await sdkPage(context, herald, token, 'bob-laptop');
    await context.setOffline(true);
    await page.evaluate(async (id) => {
      const writes = [];
      for (let i = 1; i <= 20; i += 1) {
        writes.push(window.h.drafts.create({ made: i }));
        writes.push(window.h.drafts.update(id, { n: i }));
      }
      await Promise.all(writes.map((w) => w.queued));
    }, base.id);
    assert.equal(await page.evaluate(() => window.h.pending().length), 40);

    // Back online; once some writes have landed, the server stops dead
    // with a request in flight, and is killed.
    await context.setOffline(false);
    await page.evaluate(() => window.dispatchEvent(new Event('online')));
    await until(async () => (await herald.api('GET', '/api/drafts', token)).length >= 6, 15000, 'a few writes to land');
    process.kill(herald.proc.pid, 'SIGSTOP');
    await new Promise((ok) => setTimeout(ok, 300));
    const landed = (await page.evaluate(() => 40 - window.h.pending().length));
    assert.ok(landed < 40, `the flush was still going (${landed} of 40 confirmed)`);
    await herald.kill();
    await herald.start();
    await until(() => page.evaluate(() => window.h.pending().length === 0), 40000, 'the queue to drain');

    const drafts = await herald.api('GET', '/api/drafts', token);
    const made = drafts.filter((d) => d.payload.made).map((d) => d.payload.made).sort((a, b) => a - b);
    assert.deepEqual(made, Array.from({ length: 20 }, (_, i) => i + 1), 'every create, once');
    assert.equal(drafts.find((d) => d.id === base.id).payload.n, 20, 'the last update won');
    // The stream holds one event per write: none was applied twice.
    const events = await replayAll(herald, token);
    const count = (type) => events.filter((e) => e.type === type).length;
    assert.equal(count('DRAFT_CREATED'), 21);
    assert.equal(count('DRAFT_UPDATED'), 20);
    assert.equal(new Set(events.filter((e) => e.mutationId).map((e) => e.mutationId)).size, 40);
    await context.close();
  } finally {
    await herald.stop();
  }
});

test('a write the server refuses (410) is rolled back and the reason is shown', async () => {
  const herald = await new Herald().start();
  try {
    const token = herald.token('carol', 'agent');
    const draft = await herald.api('POST', '/api/drafts', token, { payload: { customer: 'to be deleted' } });
    const page = await signedInPage(browser, herald, token);
    const item = page.locator(`.draft[data-id="${draft.id}"]`);
    await item.waitFor();
    await goOffline(page);
    await item.locator('button:has-text("Edit")').click();
    await item.locator('textarea').fill('{"customer": "edited while it was deleted elsewhere"}');
    await item.locator('button:has-text("Save")').click();
    await page.waitForSelector(`.draft[data-id="${draft.id}"][data-pending="true"]:has-text("edited while")`);
    // Meanwhile another device deletes it.
    await herald.api('DELETE', `/api/drafts/${draft.id}`, token);
    await goOnline(page);
    const toast = page.locator('.toast.error:has-text("not applied")');
    await toast.waitFor({ timeout: 10000 });
    assert.match(await toast.textContent(), /GONE/);
    await screenshot(page, 'agent-write-rejected');
    await page.waitForSelector('#sync-status', { state: 'hidden' });
    assert.equal(await page.locator(`.draft[data-id="${draft.id}"]`).count(), 0, 'rolled back to the server\'s state: deleted');
    await page.context().close();
  } finally {
    await herald.stop();
  }
});

test('two tabs of one browser share one queue: each write is sent once, none lost when a tab closes', async () => {
  const herald = await new Herald().start();
  try {
    const token = herald.token('dora', 'agent');
    const tab1 = await signedInPage(browser, herald, token);
    const context = tab1.context();
    const tab2 = await context.newPage();
    await tab2.goto(`${herald.url}/#/agent`);
    await tab2.waitForSelector('#conn[data-state="connected"]');
    await goOffline(tab1);
    await tab2.evaluate(() => window.dispatchEvent(new Event('offline')));
    for (const [tab, name] of [[tab1, 'one'], [tab2, 'two']]) {
      for (let i = 1; i <= 3; i += 1) {
        await tab.fill('#draft-payload', JSON.stringify({ tab: name, i }));
        await tab.click('#draft-create');
      }
    }
    // Both tabs show the one queue.
    await tab1.waitForSelector('#sync-status:has-text("6 changes waiting to sync")', { timeout: 3000 });
    await tab2.waitForSelector('#sync-status:has-text("6 changes waiting to sync")', { timeout: 3000 });
    const replaysBefore = await metric(herald, 'herald_idempotent_replays_total');
    await context.setOffline(false);
    await tab2.evaluate(() => window.dispatchEvent(new Event('online')));
    await tab1.evaluate(() => window.dispatchEvent(new Event('online')));
    // The tab that sends may close while it sends: the other takes over.
    await tab1.close();
    await tab2.waitForSelector('#sync-status', { state: 'hidden', timeout: 15000 });
    const drafts = await herald.api('GET', '/api/drafts', token);
    const made = drafts.map((d) => `${d.payload.tab}-${d.payload.i}`).sort();
    assert.deepEqual(made, ['one-1', 'one-2', 'one-3', 'two-1', 'two-2', 'two-3']);
    const resent = (await metric(herald, 'herald_idempotent_replays_total')) - replaysBefore;
    assert.ok(resent <= 1, `at most the write in flight when its tab closed is sent again (${resent})`);
    await context.close();
  } finally {
    await herald.stop();
  }
});
