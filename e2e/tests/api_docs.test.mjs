// The API reference at /api/docs: Swagger UI served by herald itself renders
// the binary's own OpenAPI document (every operation, by tag, with schemas)
// under the same Content-Security-Policy as the dashboard, and "Try it out"
// calls the API with the token the browser signed in with.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Herald, launchBrowser, screenshot } from '../lib/harness.mjs';

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

test('the API reference lists every operation with its schemas, and tries a call signed in', async () => {
  const herald = await new Herald().start();
  try {
    const context = await browser.newContext({ viewport: { width: 1360, height: 900 } });
    const page = await context.newPage();
    const violations = [];
    const offsite = [];
    page.on('console', (m) => { if (/Content Security Policy/i.test(m.text())) violations.push(m.text()); });
    page.on('request', (r) => { if (!r.url().startsWith(herald.url) && !r.url().startsWith('data:')) offsite.push(r.url()); });
    // Signed in to the dashboard in this browser first.
    const token = herald.token('alice', 'agent');
    await page.goto(`${herald.url}/?token=${encodeURIComponent(token)}#/agent`);
    await page.waitForSelector('#conn[data-state="connected"]', { timeout: 10000 });

    await page.goto(`${herald.url}/api/docs`);
    await page.waitForSelector('.opblock', { timeout: 15000 });
    const doc = await (await fetch(`${herald.url}/api/openapi.json`)).json();
    const expected = Object.values(doc.paths).reduce((n, item) => n + Object.keys(item).length, 0);
    assert.equal(await page.locator('.opblock').count(), expected, 'every operation');
    // Grouped by tag (the table of contents), and the schemas listed.
    const tags = new Set(Object.values(doc.paths).flatMap((item) => Object.values(item).flatMap((op) => op.tags || [])));
    assert.equal(await page.locator('.opblock-tag-section').count(), tags.size);
    const models = await page.locator('section.models article[data-json-schema-level="0"]').count();
    assert.ok(models >= Object.keys(doc.components.schemas).length, `${models} schemas shown of ${Object.keys(doc.components.schemas).length}`);
    assert.match(await page.textContent('#api-docs-auth'), /signed in/);

    await screenshot(page, 'api-docs');
    // Try GET /api/me: authorized with the dashboard's token.
    const me = page.locator('.opblock-get:has(.opblock-summary-path[data-path="/api/me"])');
    await me.locator('.opblock-summary').click();
    await me.locator('button.try-out__btn').click();
    await me.locator('button.execute').click();
    await me.locator('.live-responses-table tbody .response-col_status').first().waitFor({ timeout: 10000 });
    assert.equal((await me.locator('.live-responses-table tbody .response-col_status').first().textContent()).trim(), '200');
    assert.match(await me.locator('.live-responses-table tbody .microlight').first().textContent(), /"sub": "alice"/);
    assert.deepEqual(violations, [], 'no Content-Security-Policy violation');
    assert.deepEqual(offsite, [], 'nothing fetched from another origin');
    await screenshot(page, 'api-docs-try');
    await context.close();
  } finally {
    await herald.stop();
  }
});
