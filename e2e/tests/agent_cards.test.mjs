// The Orders view as an agent reads it: cards with the customer, lines and
// total (the JSON behind a toggle), job outcomes in words, a queued job no
// worker took, and the agent's devices online.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Herald, launchBrowser, signedInPage, screenshot } from '../lib/harness.mjs';

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

test('drafts and orders read as cards, jobs say how they ended, and the agent sees its devices', async () => {
  const herald = await new Herald().start();
  try {
    const token = herald.token('dana', 'agent');
    const worker = herald.token('sync-worker', 'service');
    await herald.api('POST', '/api/drafts', token, {
      payload: {
        customer: { name: 'Bar Roma', code: 'C-204' },
        note: 'deliver before 9',
        currency: 'EUR',
        lines: [
          { name: 'Espresso beans 1 kg', quantity: 3, price: 18.5 },
          { name: 'Milk 1 l', quantity: 12, price: 1.2 },
        ],
      },
    });
    await herald.api('POST', '/api/drafts', token, { payload: { sensor: 7, readings: [1, 2] } });
    await herald.api('POST', '/api/pending-orders', token, {
      payload: { cliente: 'Caffè Nero', righe: [{ descrizione: 'Cornetti', qta: 40, prezzo: 0.9 }], totale: 36 },
    });
    // A job that ended with a result, and one no worker takes.
    const done = await herald.api('POST', '/api/jobs', token, { kind: 'customer-sync', params: {} });
    await herald.api('POST', `/api/jobs/${done.id}/progress`, worker, { progress: 100, label: 'customers 750/750' });
    await herald.api('POST', `/api/jobs/${done.id}/complete`, worker, { result: { customersSynced: 750, skipped: 2 } });
    const stuck = await herald.api('POST', '/api/jobs', token, { kind: 'price-import', params: {} });

    // Another device of the same agent is online first.
    const phone = await signedInPage(browser, herald, token);
    const context = await browser.newContext({ viewport: { width: 1360, height: 900 } });
    const page = await context.newPage();
    await page.clock.install();
    await page.goto(`${herald.url}/?token=${encodeURIComponent(token)}#/agent`);
    await page.waitForSelector('#conn[data-state="connected"]', { timeout: 10000 });

    // The order-like draft: customer, lines with quantity and price, total.
    const card = page.locator('.draft:has-text("Bar Roma")');
    await card.waitFor();
    assert.equal(await card.locator('.customer').textContent(), 'Bar Roma');
    assert.equal(await card.locator('table.lines tr').count(), 2);
    assert.match(await card.locator('table.lines').textContent(), /3 ×Espresso beans 1 kg/);
    assert.match(await card.locator('.total').textContent(), /Total · 2 lines.*69\.90/);
    assert.match(await card.textContent(), /deliver before 9/);
    assert.match(await card.locator('.who-changed').textContent(), /changed .*ago|just now/);
    // Its JSON is behind the toggle; a payload of unknown shape shows it.
    assert.equal(await card.locator('details.raw pre').isVisible(), false);
    await card.locator('details.raw summary').click();
    assert.equal(await card.locator('details.raw pre').isVisible(), true);
    const odd = page.locator('.draft:has-text("sensor")');
    assert.equal(await odd.locator('details.raw pre').isVisible(), true);
    assert.equal(await odd.locator('.customer').count(), 0);
    // Italian field names read the same.
    const order = page.locator('.order:has-text("Caffè Nero")');
    assert.match(await order.locator('table.lines').textContent(), /40 ×Cornetti/);
    assert.match(await order.locator('.total').textContent(), /36/);

    // The finished job: its outcome, not "100% customers 750/750".
    const ended = page.locator(`.job[data-id="${done.id}"]`);
    assert.match(await ended.locator('ul.outcome').textContent(), /customers synced: 750/);
    assert.equal(await ended.locator('[role=progressbar]').count(), 0);
    assert.doesNotMatch(await ended.textContent(), /100%/);

    // Both devices are listed, this one marked.
    await page.waitForFunction(() => document.querySelectorAll('#devices .device').length === 2, null, { timeout: 5000 });
    assert.match(await page.locator('#devices .device.me').textContent(), /this one/);

    // A minute on, the job no worker took says so.
    const queued = page.locator(`.job[data-id="${stuck.id}"]`);
    assert.equal(await queued.locator('.untaken').count(), 0);
    await page.clock.fastForward('02:00');
    await queued.locator('.untaken').waitFor({ timeout: 5000 });
    assert.match(await queued.locator('.untaken').textContent(), /No worker has taken this job for 2 min.*price-import/);
    await screenshot(page, 'agent-cards');

    // The phone leaves: after the grace period it is gone from the list.
    await phone.context().close();
    await page.waitForFunction(() => document.querySelectorAll('#devices .device').length === 1, null, { timeout: 25000 });
    await context.close();
  } finally {
    await herald.stop();
  }
});
