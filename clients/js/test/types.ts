// Compiled (not run) by `npm run typecheck`: every part of herald.d.ts in
// use, as a React or plain TypeScript app would use it.
import { connect, rest, HeraldError, type Draft, type Herald, type Write, type Status } from '../herald.js';

const h: Herald = connect({ token: 'jwt', deviceId: 'tab-1', getToken: async () => 'jwt2', maxQueued: 10 });
const status: Status = h.status;
const offStatus = h.onStatus((s: Status, reason: string) => console.log(s, reason));
const off = h.on<{ draft: Draft }>('DRAFT_CREATED', (ev) => console.log(ev.payload.draft.id, ev.mutationId));
const offAll = h.on('*', (ev) => console.log(ev.type, ev.seq));
const offChange = h.onChange(({ collections }) => collections.forEach((c) => console.log(c)));
const offWrite = h.onWrite((w: Write) => console.log(w.key, w.state));
const drafts: Draft[] = h.drafts.list();
const first: Draft | null = h.drafts.get(drafts[0]?.id ?? '');
const w: Write<Draft> = h.drafts.create({ customer: 'ACME' }, { id: crypto.randomUUID() });
w.applied.then((d) => console.log(d.serverUpdatedAt, d.pending)).catch((e: HeraldError) => console.log(e.code, e.status, e.current));
h.drafts.update(w.id ?? '', { customer: 'ACME 2' }, { baseServerUpdatedAt: first?.serverUpdatedAt ?? undefined });
h.drafts.remove('x');
h.drafts.convert('x').applied.then((o) => console.log(o.status));
h.pendingOrders.create({ payload: { total: 1 } }).applied.then((o) => console.log(o.orderNumber));
h.pendingOrders.create([{ payload: 1 }, { id: 'b', payload: 2 }]).applied.then((r) => console.log(r.created.length));
h.pendingOrders.update('a', { status: 'failed' });
h.pendingOrders.remove('a');
h.jobs.create('submit-pending-orders', { orderIds: ['a'] }).applied.then((j) => console.log(j.progress));
h.jobs.cancel('j');
const queued: Write[] = h.pending();
h.setToken('jwt3');
h.ready.then(() => h.close());
[status, offStatus, off, offAll, offChange, offWrite, queued].forEach((x) => console.log(x));
const api = rest({ token: 'jwt', deviceId: 'tab-1' });
api.get<{ sub: string }>('/api/me').then((me) => console.log(me.sub));
api.del('/api/admin/connections/x').catch((e: HeraldError) => console.log(e.code));
