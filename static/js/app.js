// herald's dashboard: sign in with a token, then the views your role allows.

import { connect, rest } from '/sdk/herald.js';
import { CashierClient } from './cashier-client.js';
import { agentView } from './views/agent.js';
import { cashierView } from './views/cashier.js';
import { adminView } from './views/admin.js';
import { setConnection, showError, toast } from './ui.js';

const TOKEN_KEY = 'herald.token';
const ME_KEY = 'herald.me';
const $ = (id) => document.getElementById(id);

/** One id per browser: its tabs are one device, with one queue of writes
 * (the SDK lets one tab send at a time). */
function deviceId() {
  let id = localStorage.getItem('herald.deviceId');
  if (!id) {
    id = `web-${Math.random().toString(36).slice(2, 8)}`;
    localStorage.setItem('herald.deviceId', id);
  }
  return id;
}

/** The app shell and the SDK are cached by a service worker, so the
 * dashboard opens without a network once it has been loaded. */
function registerShell() {
  if (!('serviceWorker' in navigator)) return;
  navigator.serviceWorker.register('/sw.js').catch((e) => console.warn('no offline shell:', e));
}

/** A token from `?token=` is kept once and removed from the address bar. */
function takeTokenFromUrl() {
  const url = new URL(location.href);
  const token = url.searchParams.get('token');
  if (token) {
    localStorage.setItem(TOKEN_KEY, token);
    url.searchParams.delete('token');
    history.replaceState(null, '', url.pathname + url.search + url.hash);
  }
}

const VIEWS = { agent: ['agent', 'admin', 'service'], cashier: ['cashier', 'admin'], admin: ['admin'] };

let current = null; // {stop()}

function showSignin(message) {
  $('signin').hidden = false;
  $('nav').hidden = true;
  $('who').hidden = true;
  $('signout').hidden = true;
  $('view').replaceChildren();
  setConnection('offline');
  const err = $('signin-error');
  err.hidden = !message;
  err.textContent = message || '';
}

async function start() {
  takeTokenFromUrl();
  const token = localStorage.getItem(TOKEN_KEY);
  if (!token) return showSignin();
  const id = deviceId();
  const api = rest({ token, deviceId: id });
  let me;
  try {
    me = await api.get('/api/me');
    localStorage.setItem(ME_KEY, JSON.stringify({ token, me }));
  } catch (e) {
    // Without a network, the last answer for this token will do: the
    // data and the queued writes are on this device.
    const cached = JSON.parse(localStorage.getItem(ME_KEY) || 'null');
    if (e.code === 'NETWORK' && cached && cached.token === token) {
      me = cached.me;
    } else {
      localStorage.removeItem(TOKEN_KEY);
      return showSignin(e.code === 'NETWORK' ? `${e.message}.` : `That token was refused: ${e.message}`);
    }
  }
  $('signin').hidden = true;
  $('nav').hidden = false;
  $('who').hidden = false;
  $('who').textContent = `${me.sub} · ${me.role}${me.role === 'cashier' ? ` · ${me.venue}` : ''}`;
  $('signout').hidden = false;
  for (const link of document.querySelectorAll('#nav a')) {
    link.hidden = !VIEWS[link.dataset.view].includes(me.role);
  }
  const route = () => {
    const wanted = (location.hash.replace('#/', '') || '').split('?')[0];
    const allowed = Object.keys(VIEWS).filter((v) => VIEWS[v].includes(me.role));
    const view = allowed.includes(wanted) ? wanted : allowed[0];
    if (!view) return showSignin(`Role ${me.role} has no view here.`);
    for (const link of document.querySelectorAll('#nav a')) link.classList.toggle('active', link.dataset.view === view);
    mount(view, { api, me, token, deviceId: id });
  };
  window.onhashchange = route;
  route();
}

function mount(view, ctx) {
  if (current) current.stop();
  const box = $('view');
  if (view === 'agent') {
    const h = connect({ token: ctx.token, deviceId: ctx.deviceId });
    const v = agentView({ h, api: ctx.api, me: ctx.me, deviceId: ctx.deviceId });
    const offStatus = h.onStatus((status, reason) => {
      const state = { online: 'connected', connecting: 'reconnecting', offline: 'offline' }[status];
      setConnection(state, status === 'connecting' && reason ? `(${reason})` : '');
      if (status === 'offline' && /sign in/.test(reason)) toast(`Offline: ${reason}`, { error: true, ms: 8000 });
      if (reason === 'closed by an admin') toast('An admin closed this connection; reconnecting.', { error: true, ms: 8000 });
    });
    setConnection('reconnecting');
    box.replaceChildren(v.root);
    current = { stop: () => { offStatus(); v.stop(); h.close(); } };
  } else if (view === 'cashier') {
    const venue = new URLSearchParams(location.hash.split('?')[1] || '').get('venue') || ctx.me.venue;
    const v = cashierView({ api: ctx.api, venue });
    const client = new CashierClient({
      token: ctx.token,
      clientId: `board-${ctx.deviceId}`,
      venue: ctx.me.role === 'admin' ? venue : undefined,
      onConnected: (msg) => v.onConnected(msg),
      onBroadcast: (msg) => v.onBroadcast(msg),
      onStatus: setConnection,
      onError: (msg) => showError(new Error(`${msg.message} (${msg.code})`)),
    });
    box.replaceChildren(v.root);
    client.start();
    current = { stop: () => { client.stop(); v.stop(); } };
  } else {
    const v = adminView(ctx);
    box.replaceChildren(v.root);
    setConnection('connected', '(polling)');
    current = v;
  }
}

$('signin-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  localStorage.setItem(TOKEN_KEY, $('token-input').value.trim());
  start();
});
$('signout').addEventListener('click', () => {
  localStorage.removeItem(TOKEN_KEY);
  if (current) current.stop();
  current = null;
  showSignin();
});
window.addEventListener('error', (ev) => showError(ev.error || ev.message));
window.addEventListener('unhandledrejection', (ev) => showError(ev.reason));

registerShell();
start().catch(showError);
