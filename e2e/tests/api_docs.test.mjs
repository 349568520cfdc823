// The API reference page renders every operation from the binary's own
// OpenAPI document, under the same Content-Security-Policy as the dashboard.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Herald, launchBrowser, screenshot } from '../lib/harness.mjs';

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

test('the API reference lists every operation of the document', async () => {
  const herald = await new Herald().start();
  try {
    const context = await browser.newContext({ viewport: { width: 1360, height: 900 } });
    const page = await context.newPage();
    const violations = [];
    page.on('console', (m) => { if (/Content Security Policy/i.test(m.text())) violations.push(m.text()); });
    await page.goto(`${herald.url}/api/docs`);
    await page.waitForSelector('.operation', { timeout: 10000 });
    const doc = await (await fetch(`${herald.url}/api/openapi.json`)).json();
    const expected = Object.values(doc.paths).reduce((n, item) => n + Object.keys(item).length, 0);
    assert.equal(await page.locator('.operation').count(), expected);
    assert.ok(await page.locator('.operation[data-path="/api/publish"]').isVisible());
    assert.deepEqual(violations, []);
    await screenshot(page, 'api-docs');
    await context.close();
  } finally {
    await herald.stop();
  }
});
