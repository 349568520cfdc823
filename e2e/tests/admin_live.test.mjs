// The admin view at a glance: charts that move under load, and the live
// event inspector (pick a user or a venue, pause, filter by type).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { Herald, launchBrowser, signedInPage, screenshot } from '../lib/harness.mjs';

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

test('the charts move under a publish load', async () => {
  const herald = await new Herald().start();
  try {
    const svc = herald.token('backend', 'service');
    const alice = new WebSocket(`ws://${herald.addr}/ws/realtime?token=${herald.token('alice', 'agent')}`);
    await new Promise((ok) => alice.once('open', ok));
    const admin = await signedInPage(browser, herald, herald.token('root', 'admin'), '#/admin');
    await admin.waitForSelector('#charts .chart[data-series="publishesPerSec"]', { timeout: 5000 });
    // About 50 publishes a second for three seconds.
    for (let i = 0; i < 150; i++) {
      await herald.api('POST', '/api/publish', svc, { userId: 'alice', type: 'LOAD', payload: { i } });
      await new Promise((r) => setTimeout(r, 20));
    }
    await admin.waitForFunction(() => {
      const c = document.querySelector('#charts .chart[data-series="publishesPerSec"]');
      return c && Number(c.dataset.points) >= 3 && document.querySelector('#charts .chart[data-series="publishesPerSec"] polyline');
    }, null, { timeout: 10000 });
    const peak = await admin.textContent('#charts .chart[data-series="publishesPerSec"] .peak');
    assert.match(peak, /peak [1-9]/, 'publishes per second rose above zero');
    const connections = await admin.getAttribute('#charts .chart[data-series="connections"]', 'data-last');
    assert.ok(Number(connections) >= 1, `connections ${connections}`);
    await screenshot(admin, 'admin-charts');
    alice.close();
    await admin.context().close();
  } finally {
    await herald.stop();
  }
});

test('the inspector shows a stream as it passes, pauses and filters', async () => {
  const herald = await new Herald().start();
  try {
    const svc = herald.token('backend', 'service');
    const admin = await signedInPage(browser, herald, herald.token('root', 'admin'), '#/admin');
    await admin.fill('#inspect-name', 'alice');
    await admin.click('#inspect-watch');
    await admin.waitForSelector('#inspector-status:has-text("watching user alice")', { timeout: 5000 });
    await herald.api('POST', '/api/publish', svc, { userId: 'alice', type: 'ORDER_EDIT_COMPLETE', payload: {} });
    const agent = herald.token('alice', 'agent');
    const res = await fetch(`${herald.url}/api/drafts`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${agent}`, 'Content-Type': 'application/json', 'X-Device-Id': 'tab-7' },
      body: JSON.stringify({ payload: { n: 1 } }),
    });
    assert.equal(res.status, 201);
    await admin.waitForSelector('#inspector-events tr[data-type="DRAFT_CREATED"]', { timeout: 5000 });
    const row = await admin.textContent('#inspector-events tr[data-type="DRAFT_CREATED"]');
    assert.match(row, /^2DRAFT_CREATEDtab-7/, 'seq, type and origin');
    // A click shows the event's payload; another hides it.
    await admin.click('#inspector-events tr[data-type="DRAFT_CREATED"]');
    const payload = admin.locator('#inspector-events tr.payload-row pre');
    await payload.waitFor({ timeout: 2000 });
    const shown = JSON.parse(await payload.textContent());
    assert.equal(shown.payload.draft ? shown.payload.draft.payload.n : shown.payload.payload.n, 1);
    assert.equal(shown.originDeviceId, 'tab-7');
    await admin.click('#inspector-events tr[data-type="DRAFT_CREATED"]');
    assert.equal(await admin.locator('#inspector-events tr.payload-row').count(), 0);
    // Filter by type.
    await admin.fill('#inspect-filter', 'draft');
    assert.equal(await admin.isVisible('#inspector-events tr[data-type="ORDER_EDIT_COMPLETE"]'), false);
    assert.equal(await admin.isVisible('#inspector-events tr[data-type="DRAFT_CREATED"]'), true);
    await admin.fill('#inspect-filter', '');
    // Pause holds new events until resumed.
    await admin.click('#inspect-pause');
    await herald.api('POST', '/api/publish', svc, { userId: 'alice', type: 'WHILE_PAUSED', payload: {} });
    await admin.waitForSelector('#inspect-pause:has-text("Resume (1)")', { timeout: 5000 });
    assert.equal(await admin.locator('#inspector-events tr[data-type="WHILE_PAUSED"]').count(), 0);
    await screenshot(admin, 'admin-inspector');
    await admin.click('#inspect-pause');
    await admin.waitForSelector('#inspector-events tr[data-type="WHILE_PAUSED"]', { timeout: 2000 });
    // A venue too.
    await admin.selectOption('#inspect-kind', 'venue');
    await admin.fill('#inspect-name', 'main');
    await admin.click('#inspect-watch');
    await admin.waitForSelector('#inspector-status:has-text("watching venue main")', { timeout: 5000 });
    await herald.api('POST', '/api/devices', herald.token('till', 'cashier', 'main'), { deviceId: 'pc1' });
    await admin.waitForSelector('#inspector-events tr[data-type="device_created"]', { timeout: 5000 });
    await admin.context().close();
  } finally {
    await herald.stop();
  }
});

test('the admin of two nodes sees both, which node holds each socket, and presence', async () => {
  const a = await new Herald({}, { postgres: true, name: 'node-a' }).start();
  const b = await new Herald({}, { nodeOf: a, name: 'node-b' }).start();
  try {
    // An agent's phone on node b, a terminal on node a.
    const phone = new WebSocket(`ws://${b.addr}/ws/realtime?token=${b.token('alice', 'agent')}&deviceId=alice-phone`);
    await new Promise((ok, fail) => { phone.once('open', ok); phone.once('error', fail); });
    const till = new WebSocket(`ws://${a.addr}/ws?token=${a.token('till-1', 'cashier', 'main')}`);
    await new Promise((ok, fail) => { till.once('open', ok); till.once('error', fail); });
    till.send(JSON.stringify({ type: 'connect', clientId: 'till-1' }));
    const admin = await signedInPage(browser, a, a.token('root', 'admin'), '#/admin');
    // Both nodes, with their figures.
    await admin.waitForFunction(() => document.querySelectorAll('#nodes tbody tr').length === 2, null, { timeout: 10000 });
    const nodeA = admin.locator('#nodes tr[data-node="node-a"]');
    const nodeB = admin.locator('#nodes tr[data-node="node-b"]');
    assert.match(await nodeA.textContent(), /this node/);
    assert.match(await nodeB.textContent(), /\d+\.\d s ago/);
    for (const row of [nodeA, nodeB]) {
      const cells = await row.locator('td').allTextContents();
      assert.match(cells[2], /^\d+\.\d+\.\d+/, `version: ${cells}`);
      assert.match(cells[4], /MiB$/, `memory: ${cells}`);
      assert.match(cells[7], /ms/, `tailer lag: ${cells}`);
    }
    // Each socket with its node.
    await admin.waitForSelector('#connections tr:has-text("alice-phone")', { timeout: 10000 });
    assert.equal(await admin.locator('#connections tr:has-text("alice-phone") td').first().textContent(), 'node-b');
    await admin.waitForSelector('#connections tr:has-text("till-1")', { timeout: 10000 });
    assert.equal(await admin.locator('#connections tr:has-text("till-1") td').first().textContent(), 'node-a');
    // Presence across nodes.
    await admin.waitForSelector('#presence tr:has-text("user alice") .device:has-text("alice-phone · realtime · node-b")', { timeout: 10000 });
    await admin.waitForSelector('#presence tr:has-text("venue main") .device:has-text("till-1 · cashier · node-a")', { timeout: 10000 });
    // Human units, links, and a time axis that follows the window picked.
    assert.match(await admin.textContent('[data-stat="uptime"] .value'), /^\d+ s$|min/);
    assert.equal(await admin.getAttribute('a:has-text("Prometheus metrics")', 'href'), '/metrics');
    assert.equal(await admin.getAttribute('a:has-text("API docs")', 'href'), '/api/docs');
    assert.match(await admin.textContent('#charts .chart .time-axis'), /−5 min.*now/);
    await admin.selectOption('#chart-window', '60');
    await admin.waitForSelector('#charts .chart .time-axis:has-text("−1 min")', { timeout: 5000 });
    await screenshot(admin, 'admin-two-nodes');
    phone.close();
    till.close();
    await admin.context().close();
  } finally {
    await b.stop();
    await a.stop();
  }
});
