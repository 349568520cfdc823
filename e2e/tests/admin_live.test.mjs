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
