// A dashboard served from another origin (as the seed's own web app is) calls
// herald's REST API and opens its stream in a real browser, with only
// HERALD_ALLOWED_ORIGINS set; a page from an origin not listed cannot.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { Herald, launchBrowser } from '../lib/harness.mjs';

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

/** A one-page web app on its own port: it calls herald like the seed does. */
async function webApp() {
  const page = `<!doctype html><meta charset="utf-8"><title>seed</title><script type="module">
    const params = new URLSearchParams(location.search);
    const herald = params.get('herald'), token = params.get('token');
    const result = {};
    try {
      const res = await fetch('http://' + herald + '/api/drafts', {
        method: 'POST',
        headers: { Authorization: 'Bearer ' + token, 'Content-Type': 'application/json', 'X-Device-Id': 'seed-tab' },
        body: JSON.stringify({ payload: { from: 'seed' } }),
      });
      result.rest = res.status;
    } catch (e) { result.rest = 'blocked'; }
    result.stream = await new Promise((done) => {
      const ws = new WebSocket('ws://' + herald + '/ws/realtime?token=' + token);
      ws.onmessage = (m) => { done(JSON.parse(m.data).type); ws.close(); };
      ws.onerror = () => done('refused');
    });
    document.body.dataset.result = JSON.stringify(result);
  </script>`;
  const server = createServer((req, res) => { res.setHeader('content-type', 'text/html'); res.end(page); });
  await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
  return { server, origin: `http://127.0.0.1:${server.address().port}` };
}

async function runFrom(app, herald, token) {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${app.origin}/?herald=${herald.addr}&token=${encodeURIComponent(token)}`);
  await page.waitForSelector('body[data-result]', { state: 'attached', timeout: 10000 });
  const result = JSON.parse(await page.getAttribute('body', 'data-result'));
  await context.close();
  return result;
}

test('a web app on an allowed origin calls the API and opens its stream', async () => {
  const app = await webApp();
  const herald = await new Herald({ HERALD_ALLOWED_ORIGINS: app.origin }).start();
  try {
    const token = herald.token('alice', 'agent');
    assert.deepEqual(await runFrom(app, herald, token), { rest: 201, stream: 'CONNECTED' });
    const drafts = await herald.api('GET', '/api/drafts', token);
    assert.equal(drafts.length, 1);
  } finally {
    await herald.stop();
    app.server.close();
  }
});

test('a web app on an origin not listed is refused by the browser and the upgrade', async () => {
  const app = await webApp();
  const herald = await new Herald().start();
  try {
    const token = herald.token('alice', 'agent');
    const result = await runFrom(app, herald, token);
    // The preflight gets no CORS headers, so the browser blocks the call
    // before it is sent; the upgrade is answered 403.
    assert.deepEqual(result, { rest: 'blocked', stream: 'refused' });
    assert.equal((await herald.api('GET', '/api/drafts', token)).length, 0, 'nothing was written');
  } finally {
    await herald.stop();
    app.server.close();
  }
});
