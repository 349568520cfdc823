// Types of herald's client (herald.js). Checked in CI against a program
// that uses every part of it (test/types.ts).

export type Status = 'connecting' | 'online' | 'offline';

export type WriteState = 'queued' | 'sending' | 'applied' | 'rejected' | 'expired';

/** A stream event, as `/ws/realtime` sends it. */
export interface HeraldEvent<P = any> {
  type: string;
  /** null for a transient (`*_PROGRESS`) event. */
  seq: number | null;
  payload: P;
  timestamp: string;
  originDeviceId: string | null;
  /** The `Idempotency-Key` of the write that caused it. */
  mutationId?: string;
}

export interface Draft {
  id: string;
  userId?: string;
  deviceId: string | null;
  payload: unknown;
  /** null while the draft exists only on this device. */
  serverUpdatedAt: string | null;
  deleted: boolean;
  /** A write to it is queued and not yet confirmed. */
  pending: boolean;
}

export interface PendingOrder {
  id: string;
  userId?: string;
  payload: unknown;
  status: 'pending' | 'submitting' | 'submitted' | 'failed';
  orderNumber: string | null;
  jobId: string | null;
  error?: string | null;
  createdAt?: string;
  updatedAt?: string;
  pending: boolean;
}

export interface Job {
  /** `pending:<key>` until the server has given the job its id. */
  id: string;
  userId?: string;
  kind: string;
  status: 'queued' | 'running' | 'completed' | 'failed' | 'cancelled';
  progress: number;
  label: string | null;
  result: unknown;
  error: string | null;
  createdAt?: string;
  updatedAt?: string;
  /** A cancel is queued or waits for the runner. */
  cancelling?: boolean;
  pending: boolean;
}

/** Why a write was refused, or a limit of the client. */
export class HeraldError extends Error {
  status: number;
  /** The server's code (`NOT_FOUND`, `GONE`, `STALE_DRAFT`, ...), or
   * `QUEUE_FULL`, `EXPIRED`, `CLOSED`. */
  code: string;
  /** A 409 on a draft: the server's current draft. */
  current?: unknown;
}

/** One queued write. */
export interface Write<T = unknown> {
  /** Its `Idempotency-Key` (a UUID). */
  readonly key: string;
  readonly collection: 'drafts' | 'pendingOrders' | 'jobs';
  readonly op: 'create' | 'update' | 'remove' | 'convert' | 'cancel';
  readonly id: string | null;
  readonly createdAt: number;
  readonly state: WriteState;
  /** Resolves with the confirmed object; rejects with a HeraldError. */
  readonly applied: Promise<T>;
  /** Resolves once the write is durable in IndexedDB. */
  readonly queued: Promise<void>;
}

export interface ConnectOptions {
  /** A JWT for `/ws/realtime` and the REST API. */
  token?: string;
  /** A fresh token, for renewing before `exp` and after a 401 or 4001. */
  getToken?: () => Promise<string | null | undefined>;
  /** This device's id (tabs with the same id share one queue). */
  deviceId?: string;
  /** The server's origin; defaults to the page's. */
  url?: string;
  /** Writes older than this are not sent (default 24 h). */
  maxAgeMs?: number;
  /** Writes that may wait at once (default 1,000); more throw QUEUE_FULL. */
  maxQueued?: number;
  /** The IndexedDB database's name (default from url, user and device). */
  storageName?: string;
  /** false: no socket (REST only). */
  socket?: boolean;
  fetch?: typeof fetch;
  WebSocket?: typeof WebSocket;
}

export type Unsubscribe = () => void;

export interface Collection<T> {
  /** The confirmed state with every queued write applied on top. */
  list(): T[];
  get(id: string): T | null;
}

export interface Drafts extends Collection<Draft> {
  create(payload: unknown, options?: { id?: string }): Write<Draft>;
  update(id: string, payload: unknown, options?: { baseServerUpdatedAt?: string }): Write<Draft>;
  remove(id: string): Write<Draft>;
  convert(id: string, options?: { pendingOrderId?: string }): Write<PendingOrder>;
}

export interface NewOrder {
  id?: string;
  payload: unknown;
  status?: PendingOrder['status'];
  orderNumber?: string | null;
  jobId?: string | null;
}

export interface PendingOrders extends Collection<PendingOrder> {
  create(order: NewOrder): Write<PendingOrder>;
  create(orders: NewOrder[]): Write<{ created: PendingOrder[]; updated: PendingOrder[] }>;
  update(id: string, fields: Partial<Omit<NewOrder, 'id'>>): Write<PendingOrder>;
  remove(id: string): Write<PendingOrder>;
}

export interface Jobs extends Collection<Job> {
  create(kind: string, params?: Record<string, unknown>): Write<Job>;
  cancel(id: string): Write<Job>;
}

export interface Herald {
  readonly status: Status;
  /** Why the status is what it is (`offline`: what to do). */
  readonly statusReason: string;
  readonly deviceId: string;
  /** Resolves once the stored state and queue are loaded. */
  readonly ready: Promise<void>;
  onStatus(fn: (status: Status, reason: string) => void): Unsubscribe;
  /** Any stream event of `type`, or every one with `'*'`. */
  on<P = any>(type: string, fn: (event: HeraldEvent<P>) => void): Unsubscribe;
  /** A collection's list changed (confirmed state or queued writes). */
  onChange(fn: (change: { collections: Array<'drafts' | 'pendingOrders' | 'jobs'> }) => void): Unsubscribe;
  /** A write was queued, sent, applied, rejected or expired. */
  onWrite(fn: (write: Write) => void): Unsubscribe;
  readonly drafts: Drafts;
  readonly pendingOrders: PendingOrders;
  readonly jobs: Jobs;
  /** The queued writes, oldest first. */
  pending(): Write[];
  setToken(token: string): void;
  close(): void;
}

export function connect(options: ConnectOptions): Herald;

/** Plain REST calls (not queued): each answers the parsed body or throws
 * a HeraldError (`NETWORK` with status 0 when the server is unreachable). */
export interface Rest {
  get<T = any>(path: string): Promise<T>;
  post<T = any>(path: string, body?: unknown): Promise<T>;
  put<T = any>(path: string, body?: unknown): Promise<T>;
  del<T = any>(path: string): Promise<T>;
}

export function rest(options: Pick<ConnectOptions, 'url' | 'token' | 'getToken' | 'deviceId' | 'fetch'>): Rest;
