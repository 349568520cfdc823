// The dashboard end to end: real herald, real headless Chromium.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { Herald, launchBrowser, signedInPage, screenshot } from '../lib/harness.mjs';

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

test('a draft created in one tab appears in the other within a second', async () => {
  const herald = await new Herald().start();
  try {
    const token = herald.token('alice', 'agent');
    const tab1 = await signedInPage(browser, herald, token);
    const tab2 = await signedInPage(browser, herald, token);
    assert.match(await tab1.textContent('#who'), /alice · agent/);
    await tab1.fill('#draft-payload', '{"customer": "شركة النور", "note": "first"}');
    const clicked = Date.now();
    await tab1.click('#draft-create');
    await tab2.waitForSelector('.draft:has-text("شركة النور")', { timeout: 1000 });
    const took = Date.now() - clicked;
    assert.ok(took < 1000, `took ${took} ms`);
    // The other device's change shows a toast in tab 2 (not in tab 1: its own echo).
    await tab2.waitForSelector('.toast:has-text("draft created")', { timeout: 2000 });
    // Convert it in tab 2; tab 1 sees the draft become a pending order.
    await tab2.click('.draft button:has-text("Convert")');
    await tab1.waitForSelector('.order:has-text("شركة النور")', { timeout: 1000 });
    assert.equal(await tab1.locator('.draft').count(), 0);
    // A pasted batch arrives as one event.
    await tab1.click('summary:has-text("Import a batch")');
    await tab1.fill('details textarea', '[{"payload": {"customer": "ACME", "total": 120}}, {"payload": {"customer": "Bar Roma", "total": 64}}]');
    await tab1.click('details button:has-text("Import")');
    await tab2.waitForSelector('.order:has-text("Bar Roma")', { timeout: 1000 });
    assert.equal(await tab2.locator('.order').count(), 3);
    await tab2.fill('#draft-payload', '{"customer": "Caffè Nero", "lines": [{"sku": "A1", "qty": 2}]}');
    await tab2.click('#draft-create');
    await tab1.waitForSelector('.draft:has-text("Caffè Nero")', { timeout: 1000 });
    await screenshot(tab1, 'agent-view');
    await tab1.context().close();
    await tab2.context().close();
  } finally {
    await herald.stop();
  }
});

test('after the server is killed and restarted, a tab replays what changed meanwhile', async () => {
  const herald = await new Herald().start();
  try {
    const token = herald.token('bob', 'agent');
    const tab = await signedInPage(browser, herald, token);
    await herald.api('POST', '/api/drafts', token, { payload: { step: 'before the crash' } });
    await tab.waitForSelector('.draft:has-text("before the crash")', { timeout: 3000 });

    await herald.kill();
    await tab.waitForSelector('#conn[data-state="reconnecting"], #conn[data-state="offline"]', { timeout: 5000 });
    await screenshot(tab, 'agent-reconnecting');
    await herald.start(); // same port, same database
    for (const step of ['while away 1', 'while away 2']) {
      await herald.api('POST', '/api/drafts', token, { payload: { step } });
    }
    await tab.waitForSelector('#conn[data-state="connected"]', { timeout: 35000 });
    await tab.waitForSelector('.draft:has-text("while away 2")', { timeout: 5000 });
    await tab.waitForSelector('.draft:has-text("while away 1")', { timeout: 1000 });
    assert.equal(await tab.locator('.draft').count(), 3);
    // It resumed from its last seq (a replay), not a refetch.
    const metrics = await (await fetch(`${herald.url}/metrics`)).text();
    const replayed = Number(metrics.match(/herald_events_replayed_total (\d+)/)[1]);
    assert.ok(replayed >= 2, `replayed ${replayed}`);
    await tab.context().close();
  } finally {
    await herald.stop();
  }
});

test('a job started in one tab shows its progress moving in the other', async () => {
  const herald = await new Herald().start();
  try {
    const token = herald.token('carol', 'agent');
    const worker = herald.token('sync-worker', 'service');
    const tab1 = await signedInPage(browser, herald, token);
    const tab2 = await signedInPage(browser, herald, token);
    await tab1.click('#start-sync');
    const job = tab2.locator('.job').first();
    await job.waitFor({ timeout: 2000 });
    const id = await job.getAttribute('data-id');
    const bar = tab2.locator(`.job[data-id="${id}"] [role=progressbar]`);
    for (const [progress, label] of [[20, 'customers 200/1000'], [60, 'customers 600/1000']]) {
      await herald.api('POST', `/api/jobs/${id}/progress`, worker, { progress, label });
      await tab2.waitForSelector(`.job[data-id="${id}"] [aria-valuenow="${progress}"]`, { timeout: 2000 });
      assert.equal(await bar.evaluate((node) => node.style.width), `${progress}%`);
      await new Promise((r) => setTimeout(r, 300));
    }
    await screenshot(tab2, 'agent-job-progress');
    await herald.api('POST', `/api/jobs/${id}/complete`, worker, { result: { synced: 1000 } });
    await tab2.waitForSelector(`.job[data-id="${id}"][data-status="completed"]`, { timeout: 2000 });
    await tab1.waitForSelector(`.job[data-id="${id}"][data-status="completed"]`, { timeout: 2000 });
    await tab1.context().close();
    await tab2.context().close();
  } finally {
    await herald.stop();
  }
});

test('the cashier board reflects what a terminal sends', async () => {
  const herald = await new Herald().start();
  try {
    const till = herald.token('till-1', 'cashier', 'main');
    for (const deviceId of ['pc1', 'pc2', 'pc3']) {
      await herald.api('POST', '/api/devices', till, { deviceId });
    }
    const board = await signedInPage(browser, herald, herald.token('supervisor', 'cashier', 'main'), '#/cashier');
    await board.waitForSelector('.station[data-id="pc1"]');

    const ws = new WebSocket(`ws://${herald.addr}/ws?token=${till}`);
    await new Promise((ok, fail) => { ws.once('open', ok); ws.once('error', fail); });
    const next = () => new Promise((ok) => ws.once('message', (m) => ok(JSON.parse(m.toString()))));
    ws.send(JSON.stringify({ type: 'connect', clientId: 'cashier-client-1', timestamp: '2026-02-03T02:25:33+03:00' }));
    assert.equal((await next()).type, 'connected');
    ws.send(JSON.stringify({ type: 'device_update', deviceId: 'pc1', data: { isRunning: true, elapsedSeconds: 3600, mode: 'single', customerCount: 4, notes: 'VIP customer' }, timestamp: '2026-02-03T02:25:33+03:00' }));
    ws.send(JSON.stringify({ type: 'order_placed', deviceId: 'pc1', orders: [{ name: 'كولا', price: 1000, quantity: 2, notes: 'بارد', firstOrderTime: '2026-02-03T02:25:33+03:00', lastOrderTime: '2026-02-03T02:25:33+03:00' }], timestamp: '2026-02-03T02:25:33+03:00' }));

    const station = board.locator('.station[data-id="pc1"]');
    await board.waitForSelector('.station.running[data-id="pc1"]', { timeout: 2000 });
    await station.locator('.notes:has-text("VIP customer")').waitFor({ timeout: 2000 });
    await station.locator('td:has-text("2 × كولا")').waitFor({ timeout: 2000 });
    assert.equal((await station.locator('.sum').textContent()).replace(/\D/g, ''), '2000');
    assert.equal(await station.locator('.customers').textContent(), '4 customers');
    // The timer ticks locally from 01:00:00.
    const first = await station.locator('.timer').textContent();
    assert.match(first, /^01:00:0\d$/);
    await board.waitForFunction((t) => document.querySelector('.station[data-id="pc1"] .timer').textContent !== t, first, { timeout: 3000 });
    // The terminal is online; the board itself is not a terminal.
    await board.waitForSelector('#terminals .device:has-text("cashier-client-1")', { timeout: 7000 });
    assert.equal(await board.locator('#terminals .device').count(), 1);
    assert.match(await board.textContent('#terminals'), /Terminals online \(1\)/);
    await screenshot(board, 'cashier-board');
    // A reload: the running timer goes on from the snapshot, not from zero.
    await new Promise((r) => setTimeout(r, 2000));
    await board.reload();
    await board.waitForSelector('.station.running[data-id="pc1"]', { timeout: 5000 });
    const after = await station.locator('.timer').textContent();
    const secs = (t) => t.split(':').reduce((a, x) => a * 60 + Number(x), 0);
    assert.ok(secs(after) >= secs(first) + 2, `the timer read ${after} after a reload, ${first} before`);
    ws.close();
    await board.context().close();
  } finally {
    await herald.stop();
  }
});

test('the admin view lists connections and kicks one', async () => {
  const herald = await new Herald().start();
  try {
    const agent = await signedInPage(browser, herald, herald.token('dave', 'agent'));
    const admin = await signedInPage(browser, herald, herald.token('root', 'admin'), '#/admin');
    await admin.waitForSelector('#connections tbody tr', { timeout: 5000 });
    assert.match(await admin.textContent('#stats'), /Connections\s*1/);
    await screenshot(admin, 'admin-view');
    await admin.click('#connections tbody tr button');
    // The agent's tab sees it was closed by an admin.
    await agent.waitForSelector('.toast:has-text("admin closed")', { timeout: 5000 });
    await agent.context().close();
    await admin.context().close();
  } finally {
    await herald.stop();
  }
});

test('a bad token is refused with a readable message', async () => {
  const herald = await new Herald().start();
  try {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(`${herald.url}/?token=not-a-token`);
    await page.waitForSelector('#signin-error:not([hidden])', { timeout: 5000 });
    assert.match(await page.textContent('#signin-error'), /refused/);
    await page.fill('#token-input', herald.token('erin', 'agent'));
    await page.click('#signin-form button');
    await page.waitForSelector('#conn[data-state="connected"]', { timeout: 5000 });
    await screenshot(page, 'signin-ok');
    // A refused change is shown, not swallowed.
    await page.fill('#draft-payload', '{not json');
    await page.click('#draft-create');
    await page.waitForSelector('.toast.error:has-text("not valid JSON")', { timeout: 2000 });
    await context.close();
  } finally {
    await herald.stop();
  }
});

test('going offline shows it, and coming back online reconnects at once', async () => {
  const herald = await new Herald().start();
  try {
    const token = herald.token('frank', 'agent');
    const tab = await signedInPage(browser, herald, token);
    const context = tab.context();
    await context.setOffline(true);
    await tab.evaluate(() => window.dispatchEvent(new Event('offline')));
    await tab.waitForSelector('#conn[data-state="offline"]', { timeout: 5000 });
    // While offline, a change happens elsewhere.
    await herald.api('POST', '/api/drafts', token, { payload: { made: 'while offline' } });
    await context.setOffline(false);
    await tab.evaluate(() => window.dispatchEvent(new Event('online')));
    // Back at once, not after a backoff, and the missed draft is there.
    await tab.waitForSelector('#conn[data-state="connected"]', { timeout: 1500 });
    await tab.waitForSelector('.draft:has-text("while offline")', { timeout: 2000 });
    await context.close();
  } finally {
    await herald.stop();
  }
});
