// The connection to /ws/realtime.
//
// - Resumes with `since` and the stream's `epoch`, so a reconnect replays
//   exactly what was missed; `recovered: false`, another epoch, or a first
//   connect without a position ask the owner to refetch (`onResync`).
// - Reconnects with backoff (1-30 s, with jitter), and at once when the
//   browser comes back online or the tab becomes visible.
// - Drops duplicates (a seq it already has); on a hole it reconnects from
//   what it has, and the server replays the gap.
// - Refreshes its token before `exp` (`REFRESH_TOKEN`) when it can get a
//   new one, and reconnects with a new one after a 4001.

const MIN_DELAY = 1000;
const MAX_DELAY = 30000;

export class Socket {
  /**
   * @param {object} o
   * @param {string} o.url         the server's http(s) origin
   * @param {() => string} o.token the current token
   * @param {() => Promise<boolean>} o.renewToken gets a new token; false if it cannot
   * @param {string} o.deviceId
   * @param {{lastSeq: number|null, epoch: string|null}} o.cursor where to resume
   * @param {(ev: object) => void} o.onEvent a stream event, in seq order
   * @param {(why: string, lastSeq: number) => void} o.onResync refetch the state
   * @param {(status: string, reason?: string) => void} o.onStatus
   * @param {typeof WebSocket} [o.WebSocket]
   */
  constructor(o) {
    this.o = o;
    this.WS = o.WebSocket || globalThis.WebSocket;
    this.lastSeq = o.cursor ? o.cursor.lastSeq : null;
    this.epoch = o.cursor ? o.cursor.epoch : null;
    this.attempt = 0;
    this.ws = null;
    this.timer = null;
    this.refreshTimer = null;
    this.stopped = true;
    this.online = () => this.reconnectNow();
    this.offline = () => this.o.onStatus('offline', 'the browser is offline');
    this.visible = () => { if (globalThis.document && document.visibilityState === 'visible') this.reconnectNow(); };
  }

  start() {
    this.stopped = false;
    if (globalThis.addEventListener) {
      globalThis.addEventListener('online', this.online);
      globalThis.addEventListener('offline', this.offline);
    }
    if (globalThis.document) document.addEventListener('visibilitychange', this.visible);
    this.open();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    clearTimeout(this.refreshTimer);
    if (globalThis.removeEventListener) {
      globalThis.removeEventListener('online', this.online);
      globalThis.removeEventListener('offline', this.offline);
    }
    if (globalThis.document) document.removeEventListener('visibilitychange', this.visible);
    if (this.ws) this.ws.close(1000);
    this.ws = null;
  }

  address() {
    const base = new URL(this.o.url);
    base.protocol = base.protocol === 'https:' ? 'wss:' : 'ws:';
    base.pathname = '/ws/realtime';
    const params = new URLSearchParams({ token: this.o.token(), deviceId: this.o.deviceId });
    if (this.lastSeq !== null && this.epoch) {
      params.set('since', String(this.lastSeq));
      params.set('epoch', this.epoch);
    }
    base.search = params.toString();
    return base.toString();
  }

  open() {
    clearTimeout(this.timer);
    if (this.stopped || (this.ws && this.ws.readyState <= 1)) return;
    if (globalThis.navigator && navigator.onLine === false) {
      this.o.onStatus('offline', 'the browser is offline');
      return;
    }
    this.o.onStatus('connecting');
    const resuming = this.lastSeq !== null && !!this.epoch;
    let ws;
    try {
      ws = new this.WS(this.address());
    } catch (e) {
      this.schedule();
      return;
    }
    this.ws = ws;
    this.connected = false;
    ws.onmessage = (msg) => {
      let data;
      try { data = JSON.parse(msg.data); } catch { return; }
      this.handle(data, resuming);
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      clearTimeout(this.refreshTimer);
      if (this.stopped) return;
      if (ev.code === 4000) return this.open(); // we closed it over a hole: resume now
      const exp = tokenExp(this.o.token());
      const expired = exp !== null && exp * 1000 <= Date.now();
      if (ev.code === 4001 || (!this.connected && expired)) {
        // The token expired (a refused upgrade shows as 1006): a new one, then again.
        this.o.renewToken().then((ok) => {
          if (ok) this.open();
          else this.o.onStatus('offline', 'the token expired and no new one could be had; sign in again');
        });
        return;
      }
      this.o.onStatus('connecting', ev.code === 4003 ? 'closed by an admin' : '');
      this.schedule();
    };
    ws.onerror = () => {};
  }

  handle(msg, resuming) {
    switch (msg.type) {
      case 'CONNECTED': {
        const same = this.epoch === null || this.epoch === msg.payload.epoch;
        this.epoch = msg.payload.epoch;
        this.attempt = 0;
        this.connected = true;
        this.o.onStatus('online');
        this.scheduleRefresh();
        if (!resuming || !same) {
          // A fresh start: the state comes from REST, events from lastSeq on.
          this.lastSeq = msg.payload.lastSeq;
          this.o.onResync(resuming ? 'another epoch' : 'connected', this.lastSeq, this.epoch);
        }
        return;
      }
      case 'REPLAY_COMPLETE':
        if (!msg.payload.recovered) {
          this.lastSeq = msg.payload.lastSeq;
          this.o.onResync('not recovered', this.lastSeq, this.epoch);
        }
        return;
      case 'PONG':
      case 'TOKEN_REFRESHED':
      case 'ERROR':
        return;
      default:
        break;
    }
    if (msg.seq !== null && msg.seq !== undefined) {
      if (this.lastSeq !== null && msg.seq <= this.lastSeq) return; // already have it
      if (this.lastSeq !== null && msg.seq > this.lastSeq + 1) {
        if (this.ws) this.ws.close(4000, 'gap');
        return;
      }
      this.lastSeq = msg.seq;
    }
    this.o.onEvent(msg, { lastSeq: this.lastSeq, epoch: this.epoch });
  }

  /** Asks for a new token a minute before `exp` (or halfway, for short ones). */
  scheduleRefresh() {
    clearTimeout(this.refreshTimer);
    const exp = tokenExp(this.o.token());
    if (!exp) return;
    const left = exp * 1000 - Date.now();
    const wait = Math.max(1000, Math.min(left - 60000, left / 2));
    this.refreshTimer = setTimeout(async () => {
      if (await this.o.renewToken()) {
        if (this.ws && this.ws.readyState === 1) this.ws.send(JSON.stringify({ type: 'REFRESH_TOKEN', token: this.o.token() }));
        this.scheduleRefresh();
      }
    }, wait);
  }

  schedule() {
    const base = Math.min(MAX_DELAY, MIN_DELAY * 2 ** this.attempt);
    const delay = Math.round(base / 2 + Math.random() * base / 2);
    this.attempt += 1;
    this.timer = setTimeout(() => this.open(), delay);
  }

  reconnectNow() {
    if (this.stopped) return;
    if (this.ws && this.ws.readyState === 1 && this.connected) {
      this.o.onStatus('online');
      return;
    }
    if (this.ws && this.ws.readyState <= 1) return;
    this.attempt = 0;
    this.open();
  }
}

/** A JWT's `exp` (seconds), unverified: only to know when to renew. */
export function tokenExp(token) {
  const claims = tokenClaims(token);
  return claims && typeof claims.exp === 'number' ? claims.exp : null;
}

/** A JWT's claims, unverified. */
export function tokenClaims(token) {
  try {
    const part = String(token).split('.')[1];
    const json = atob(part.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(part.length / 4) * 4, '='));
    return JSON.parse(json);
  } catch {
    return null;
  }
}
