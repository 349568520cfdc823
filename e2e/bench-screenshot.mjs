// Screenshots the admin view of a running herald (scripts/bench's server)
// while a load runs: node e2e/bench-screenshot.mjs <addr> <admin token> <out.png> [wait-ms]

import { chromium } from 'playwright-core';

const [addr, token, out, wait = '12000'] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const page = await (await browser.newContext({ viewport: { width: 1360, height: 900 } })).newPage();
await page.goto(`http://${addr}/?token=${encodeURIComponent(token)}#/admin`);
await page.waitForSelector('#charts .chart', { timeout: 15000 });
await new Promise((r) => setTimeout(r, Number(wait)));
await page.screenshot({ path: out });
await browser.close();
console.log(`saved ${out}`);
