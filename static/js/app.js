// herald's dashboard: sign in with a token, then the views your role allows.

import { createApi } from './api.js';
import { RealtimeClient } from './realtime.js';
import { CashierClient } from './cashier-client.js';
import { agentView } from './views/agent.js';
import { cashierView } from './views/cashier.js';
import { adminView } from './views/admin.js';
import { setConnection, showError, toast } from './ui.js';

const TOKEN_KEY = 'herald.token';
const $ = (id) => document.getElementById(id);

/** One id per tab, so a device can tell its own echoes. */
function deviceId() {
  let id = sessionStorage.getItem('herald.deviceId');
  if (!id) {
    id = `web-${Math.random().toString(36).slice(2, 8)}`;
    sessionStorage.setItem('herald.deviceId', id);
  }
  return id;
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
  const api = createApi({ token, deviceId: id });
  let me;
  try {
    me = await api.get('/api/me');
  } catch (e) {
    localStorage.removeItem(TOKEN_KEY);
    return showSignin(`That token was refused: ${e.message}`);
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
    const v = agentView(ctx);
    const client = new RealtimeClient({
      token: ctx.token,
      deviceId: ctx.deviceId,
      onEvent: (msg, own) => v.onEvent(msg, own),
      onResync: () => v.resync(),
      onStatus: setConnection,
      onFatal: (message, retry) => {
        setConnection('offline');
        if (retry) {
          toast(message, { error: true, ms: 8000 });
          setTimeout(retry, 5000);
        } else {
          localStorage.removeItem(TOKEN_KEY);
          showSignin(message);
        }
      },
    });
    box.replaceChildren(v.root);
    client.start();
    current = { stop: () => client.stop() };
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

start().catch(showError);
