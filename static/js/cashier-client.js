// A cashier terminal's connection to /ws: `connect`, then live broadcasts;
// on reconnect it resumes with `lastSeq` (and gets the missed broadcasts, or
// the whole state when they cannot be filled).

export class CashierClient {
  constructor({ token, clientId, venue, onConnected, onBroadcast, onStatus, onError }) {
    Object.assign(this, { token, clientId, venue, onConnected, onBroadcast, onStatus, onError });
    this.lastSeq = null;
    this.epoch = null;
    this.attempt = 0;
    this.stopped = false;
  }

  start() {
    this.stopped = false;
    this.open();
    this.online = () => this.open();
    window.addEventListener('online', this.online);
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    window.removeEventListener('online', this.online);
    if (this.ws) this.ws.close(1000);
  }

  open() {
    if (this.ws && this.ws.readyState <= 1) return;
    const proto = location.protocol === 'https:' ? 'wss' : 'ws';
    // A board watches the venue; it is not one of its terminals (presence).
    const params = new URLSearchParams({ token: this.token, observe: '1' });
    if (this.venue) params.set('venue', this.venue);
    const ws = new WebSocket(`${proto}://${location.host}/ws?${params}`);
    this.ws = ws;
    ws.onopen = () => {
      const hello = { type: 'connect', clientId: this.clientId, timestamp: new Date().toISOString() };
      if (this.lastSeq !== null) Object.assign(hello, { lastSeq: this.lastSeq, epoch: this.epoch });
      ws.send(JSON.stringify(hello));
      this.ping = setInterval(() => ws.readyState === 1 && ws.send(JSON.stringify({ type: 'ping', timestamp: new Date().toISOString() })), 60000);
    };
    ws.onmessage = (ev) => {
      const msg = JSON.parse(ev.data);
      if (msg.type === 'connected') {
        this.attempt = 0;
        this.epoch = msg.epoch;
        this.onStatus('connected');
        this.lastSeq = Math.max(this.lastSeq ?? 0, msg.seq);
        this.onConnected(msg);
      } else if (msg.type === 'error') {
        this.onError(msg);
      } else if (msg.type !== 'pong') {
        if (typeof msg.seq === 'number') this.lastSeq = Math.max(this.lastSeq ?? 0, msg.seq);
        this.onBroadcast(msg);
      }
    };
    ws.onclose = () => {
      clearInterval(this.ping);
      if (this.ws !== ws || this.stopped) return;
      this.ws = null;
      const delay = Math.min(30000, 1000 * 2 ** this.attempt) * (0.5 + Math.random() / 2);
      this.attempt += 1;
      this.onStatus('reconnecting', `in ${Math.ceil(delay / 1000)}s`);
      this.timer = setTimeout(() => this.open(), delay);
    };
  }
}
