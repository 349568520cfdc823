// Starts the real herald binary on loopback and a headless Chromium, the way
// a user would run them. Nothing here talks to herald's internals.

import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, existsSync, rmSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach } from 'node:test';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
export const ROOT = resolve(here, '..', '..');
export const ARTIFACTS = join(ROOT, 'test-artifacts');
const BIN = process.env.HERALD_BIN || join(ROOT, 'target', 'debug', 'herald');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const SECRET = 'e2e-secret-0123456789abcdefghijkl';

/** With HERALD_E2E_DATABASE=postgres, every test's herald runs on a
 * PostgreSQL server of its own (initdb + pg_ctl from Debian's packages, on a
 * free loopback port), as the black-box suite's second pass does. */
const ON_POSTGRES = process.env.HERALD_E2E_DATABASE === 'postgres';

function pgBin() {
  const base = '/usr/lib/postgresql';
  const version = existsSync(base) ? readdirSync(base).find((v) => existsSync(join(base, v, 'bin', 'initdb'))) : null;
  if (!version) throw new Error('HERALD_E2E_DATABASE=postgres needs PostgreSQL\'s server binaries (apt-get install postgresql)');
  return join(base, version, 'bin');
}

/** Runs `cmd` as the postgres user when we are root (initdb refuses root). */
function asPostgres(cmd) {
  if (process.getuid && process.getuid() === 0) {
    execFileSync('runuser', ['-u', 'postgres', '--', 'sh', '-c', cmd], { stdio: 'ignore' });
  } else {
    execFileSync('sh', ['-c', cmd], { stdio: 'ignore' });
  }
}

async function freePort() {
  const { createServer } = await import('node:net');
  return new Promise((ok) => {
    const srv = createServer().listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => ok(port));
    });
  });
}

/** A PostgreSQL server of the test's own, with a database `herald`. */
async function startPostgres(dir) {
  const bin = pgBin();
  const data = join(dir, 'pg');
  mkdirSync(data);
  if (process.getuid && process.getuid() === 0) execFileSync('chown', ['-R', 'postgres', dir]);
  const port = await freePort();
  asPostgres(`${bin}/initdb -D ${data}/db -A trust -U postgres`);
  asPostgres(`${bin}/pg_ctl -D ${data}/db -w -l ${data}/log -o "-p ${port} -k ${data} -c listen_addresses=127.0.0.1 -c fsync=off" start`);
  asPostgres(`${bin}/createdb -h 127.0.0.1 -p ${port} -U postgres herald`);
  return {
    url: `postgres://postgres@127.0.0.1:${port}/herald`,
    stop: () => asPostgres(`${bin}/pg_ctl -D ${data}/db -m immediate stop`),
  };
}

export class Herald {
  /** `options.postgres`: on a PostgreSQL of its own whatever
   * HERALD_E2E_DATABASE says; `options.nodeOf`: another node of that
   * herald's cluster (its PostgreSQL); `options.name`: the node's name. */
  constructor(env = {}, options = {}) {
    if (!existsSync(BIN)) throw new Error(`no herald binary at ${BIN}: run \`cargo build\` first (or set HERALD_BIN)`);
    this.dir = mkdtempSync(join(tmpdir(), 'herald-e2e-'));
    this.env = { ...process.env, HERALD_JWT_SECRET: SECRET, RUST_LOG: 'warn', ...env };
    this.addr = '127.0.0.1:0';
    this.options = options;
  }

  /** The database it runs on: SQLite in its directory, or its PostgreSQL. */
  async database() {
    if (this.options.nodeOf) return this.options.nodeOf.database();
    if (!ON_POSTGRES && !this.options.postgres) return `sqlite://${this.dir}/herald.db?mode=rwc`;
    if (!this.pg) this.pg = await startPostgres(this.dir);
    return this.pg.url;
  }

  get url() { return `http://${this.addr}`; }

  /** Starts herald (again, on the same port and database after the first start). */
  async start() {
    const db = await this.database();
    const name = this.options.name ? ['--node-name', this.options.name] : [];
    this.proc = spawn(BIN, ['serve', '--addr', this.addr, '--database-url', db, ...name], { env: this.env, stdio: ['ignore', 'pipe', 'inherit'] });
    this.addr = await new Promise((ok, fail) => {
      let out = '';
      const timer = setTimeout(() => fail(new Error('herald did not start within 20 s')), 20000);
      this.proc.stdout.on('data', (chunk) => {
        out += chunk;
        const m = out.match(/listening on http:\/\/(\S+)/);
        if (m) { clearTimeout(timer); ok(m[1]); }
      });
      this.proc.on('exit', (code) => fail(new Error(`herald exited with ${code}`)));
    });
    return this;
  }

  /** SIGKILL: no goodbye. */
  async kill() {
    const proc = this.proc;
    const gone = new Promise((ok) => proc.once('exit', ok));
    proc.kill('SIGKILL');
    await gone;
  }

  /** SIGTERM, then the database directory goes: a test's herald is not started again. */
  async stop() {
    if (this.proc && this.proc.exitCode === null) {
      const gone = new Promise((ok) => this.proc.once('exit', ok));
      this.proc.kill('SIGTERM');
      await gone;
    }
    this.pg?.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** A token from `herald token`, signed with the server's secret. */
  token(sub, role, venue) {
    const args = ['token', '--sub', sub, '--role', role, '--ttl', '1h'];
    if (venue) args.push('--venue', venue);
    return execFileSync(BIN, args, { env: this.env, stdio: ['ignore', 'pipe', 'pipe'] }).toString().trim();
  }

  async api(method, path, token, body) {
    const res = await fetch(this.url + path, {
      method,
      headers: { Authorization: `Bearer ${token}`, ...(body ? { 'Content-Type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
    return text ? JSON.parse(text) : null;
  }
}

/** Uncaught errors and unhandled rejections of every page of this file's
 * tests, since the last check. */
const pageErrors = [];

/** Any page error fails the test it happened in. */
afterEach(() => {
  const errors = pageErrors.splice(0);
  if (errors.length) {
    throw new Error(`the page threw (an uncaught error or an unhandled rejection):\n${errors.join('\n')}`);
  }
});

/** Watches a context's pages for uncaught errors and unhandled rejections. */
function watch(context) {
  const note = (where, message) => pageErrors.push(`${where}: ${message}`);
  context.on('page', (page) => {
    page.on('pageerror', (e) => note(page.url(), e.message));
  });
  for (const page of context.pages()) page.on('pageerror', (e) => note(page.url(), e.message));
  return context;
}

export async function launchBrowser() {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`no Chromium at ${CHROMIUM}: install it (apt-get install chromium) or set CHROMIUM`);
  }
  mkdirSync(ARTIFACTS, { recursive: true });
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  // Every context any test makes is watched.
  const newContext = browser.newContext.bind(browser);
  browser.newContext = async (options) => watch(await newContext(options));
  return browser;
}

/** A fresh browser context (its own storage, like another device) signed in. */
export async function signedInPage(browser, herald, token, hash = '#/agent') {
  const context = await browser.newContext({ viewport: { width: 1360, height: 900 } });
  const page = await context.newPage();
  await page.goto(`${herald.url}/?token=${encodeURIComponent(token)}${hash}`);
  await page.waitForSelector('#conn[data-state="connected"]', { timeout: 10000 });
  return page;
}

export async function screenshot(page, name) {
  const path = join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path, fullPage: false });
  return path;
}
