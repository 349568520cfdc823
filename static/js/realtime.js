// The reference client for /ws/realtime.
//
// - Reconnects with exponential backoff (1 s to 30 s, with jitter), and at
//   once when the browser comes back online or the tab becomes visible.
// - Resumes with `since` (and the stream's `epoch`), so a reconnect replays
//   exactly what was missed; on `recovered: false` or a seq gap it asks the
//   app to refetch its state over REST (`onResync`).
// - Ignores duplicates (a seq it already has) and marks the device's own
//   echoes (`originDeviceId`), so views can skip them.
// - Reports its state for the connection indicator.

const MIN_DELAY = 1000;
const MAX_DELAY = 30000;

export class RealtimeClient {
  constructor({ token, deviceId, onEvent, onResync, onStatus, onFatal }) {
    this.token = token;
    this.deviceId = deviceId;
    this.onEvent = onEvent || (() => {});
    this.onResync = onResync || (() => {});
    this.onStatus = onStatus || (() => {});
    this.onFatal = onFatal || (() => {});
    this.lastSeq = null;   // the last seq applied
    this.epoch = null;
    this.attempt = 0;
    this.ws = null;
    this.timer = null;
    this.countdown = null;
    this.stopped = false;
    this.online = () => this.reconnectNow();
    this.offline = () => this.onStatus('offline');
    this.visible = () => { if (document.visibilityState === 'visible') this.reconnectNow(); };
    window.addEventListener('online', this.online);
    window.addEventListener('offline', this.offline);
    document.addEventListener('visibilitychange', this.visible);
  }

  url() {
    const proto = location.protocol === 'https:' ? 'wss' : 'ws';
    const params = new URLSearchParams({ token: this.token, deviceId: this.deviceId });
    if (this.lastSeq !== null) {
      params.set('since', String(this.lastSeq));
      if (this.epoch) params.set('epoch', this.epoch);
    }
    return `${proto}://${location.host}/ws/realtime?${params}`;
  }

  start() {
    this.stopped = false;
    this.open();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    clearInterval(this.countdown);
    window.removeEventListener('online', this.online);
    window.removeEventListener('offline', this.offline);
    document.removeEventListener('visibilitychange', this.visible);
    if (this.ws) this.ws.close(1000);
  }

  open() {
    clearTimeout(this.timer);
    clearInterval(this.countdown);
    if (this.ws && this.ws.readyState <= 1) return;
    const resuming = this.lastSeq !== null;
    const ws = new WebSocket(this.url());
    this.ws = ws;
    ws.onmessage = (msg) => this.handle(JSON.parse(msg.data), resuming);
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (this.stopped) return;
      if (ev.code === 4001) return this.onFatal('Your token expired; sign in again.');
      if (ev.code === 4003) return this.onFatal('An admin closed this connection.', () => this.reconnectNow());
      if (ev.code === 4000) return this.open(); // we closed it over a gap: resume now
      this.schedule();
    };
  }

  handle(msg, resuming) {
    switch (msg.type) {
      case 'CONNECTED': {
        const sameStream = this.epoch === null || this.epoch === msg.payload.epoch;
        this.epoch = msg.payload.epoch;
        this.attempt = 0;
        this.onStatus('connected');
        if (!resuming || !sameStream) {
          // A fresh start: the state comes from REST, events from lastSeq on.
          this.lastSeq = msg.payload.lastSeq;
          this.onResync('connected');
        }
        return;
      }
      case 'REPLAY_COMPLETE':
        if (!msg.payload.recovered) {
          this.lastSeq = msg.payload.lastSeq;
          this.onResync('not recovered');
        }
        return;
      case 'PONG':
      case 'TOKEN_REFRESHED':
        return;
      case 'ERROR':
        console.warn('server error', msg.payload);
        return;
    }
    if (msg.seq !== null && msg.seq !== undefined) {
      if (this.lastSeq !== null && msg.seq <= this.lastSeq) return; // already have it
      if (this.lastSeq !== null && msg.seq > this.lastSeq + 1) {
        // A hole: reconnect from what we have; the server replays the gap.
        if (this.ws) this.ws.close(4000, 'gap');
        return;
      }
      this.lastSeq = msg.seq;
    }
    this.onEvent(msg, msg.originDeviceId === this.deviceId);
  }

  schedule() {
    const base = Math.min(MAX_DELAY, MIN_DELAY * 2 ** this.attempt);
    const delay = Math.round(base / 2 + Math.random() * base / 2);
    this.attempt += 1;
    const due = Date.now() + delay;
    const tick = () => {
      const left = Math.max(0, Math.ceil((due - Date.now()) / 1000));
      this.onStatus(navigator.onLine === false ? 'offline' : 'reconnecting', navigator.onLine === false ? '' : `in ${left}s`);
    };
    tick();
    this.countdown = setInterval(tick, 1000);
    this.timer = setTimeout(() => this.open(), delay);
  }

  reconnectNow() {
    if (this.stopped) return;
    if (this.ws && this.ws.readyState === 1) return this.onStatus('connected');
    if (this.ws && this.ws.readyState === 0) return;
    this.attempt = 0;
    this.open();
  }
}
