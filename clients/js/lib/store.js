// The device's storage in IndexedDB (through `idb`): the queue of writes
// not yet confirmed, and the last confirmed state with its stream position
// (so a reload, or a start without a network, shows the data at once and
// resumes the stream where it was).

import { openDB } from '../idb.js';

const VERSION = 1;

export class Store {
  /** Opens (or creates) the store named `name`. */
  static async open(name) {
    const db = await openDB(name, VERSION, {
      upgrade(db) {
        const writes = db.createObjectStore('writes', { keyPath: 'key' });
        writes.createIndex('order', 'order');
        db.createObjectStore('state');
      },
    });
    return new Store(db);
  }

  constructor(db) {
    this.db = db;
  }

  /** Every queued write, oldest first. */
  async writes() {
    return this.db.getAllFromIndex('writes', 'order');
  }

  async count() {
    return this.db.count('writes');
  }

  /** Adds or updates a write; resolves once it is durable. */
  async put(write) {
    const tx = this.db.transaction('writes', 'readwrite');
    await tx.store.put(write);
    await tx.done;
  }

  /** Updates a write that is still queued (false: it is gone). */
  async update(key, change) {
    const tx = this.db.transaction('writes', 'readwrite');
    const write = await tx.store.get(key);
    if (write) await tx.store.put({ ...write, ...change });
    await tx.done;
    return !!write;
  }

  /** Removes a write; answers whether it was there. */
  async remove(key) {
    const tx = this.db.transaction('writes', 'readwrite');
    const found = await tx.store.get(key);
    if (found) await tx.store.delete(key);
    await tx.done;
    return !!found;
  }

  async loadState() {
    return (await this.db.get('state', 'confirmed')) || null;
  }

  /** Keeps the confirmed state and its stream position together. */
  async saveState(state) {
    await this.db.put('state', state, 'confirmed');
  }

  close() {
    this.db.close();
  }
}

/** The same, in memory: for a browser without IndexedDB (some private
 * modes). Writes then last as long as the page. */
export class MemoryStore {
  constructor() {
    this.map = new Map();
    this.state = null;
  }

  async writes() {
    return [...this.map.values()].sort((a, b) => a.order - b.order);
  }

  async count() {
    return this.map.size;
  }

  async put(write) {
    this.map.set(write.key, { ...write });
  }

  async update(key, change) {
    const write = this.map.get(key);
    if (write) this.map.set(key, { ...write, ...change });
    return !!write;
  }

  async remove(key) {
    return this.map.delete(key);
  }

  async loadState() {
    return this.state;
  }

  async saveState(state) {
    this.state = state;
  }

  close() {}
}
