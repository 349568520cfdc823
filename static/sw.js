// The dashboard's offline shell: the page, its scripts and styles and the
// client SDK are kept in a cache, so the dashboard opens without a network
// once it has been loaded; the data comes from the SDK's IndexedDB.
// Network first (a new version shows as soon as the server is reachable),
// the cache when it is not. The API, the sockets and the metrics are never
// cached.

const CACHE = 'herald-shell-v2';
const SHELL = [
  '/',
  '/css/app.css',
  '/js/app.js',
  '/js/ui.js',
  '/js/summary.js',
  '/js/cashier-client.js',
  '/js/views/agent.js',
  '/js/views/cashier.js',
  '/js/views/admin.js',
  '/sdk/herald.js',
  '/sdk/lib/collections.js',
  '/sdk/lib/socket.js',
  '/sdk/lib/store.js',
  '/sdk/idb.js',
];

self.addEventListener('install', (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener('activate', (event) => {
  event.waitUntil((async () => {
    for (const name of await caches.keys()) if (name !== CACHE) await caches.delete(name);
    await self.clients.claim();
  })());
});

function passThrough(url, request) {
  return request.method !== 'GET' || url.origin !== self.location.origin
    || /^\/(api|ws|metrics|healthz)(\/|$)/.test(url.pathname);
}

self.addEventListener('fetch', (event) => {
  const url = new URL(event.request.url);
  if (passThrough(url, event.request)) return;
  const navigation = event.request.mode === 'navigate';
  // The page's address carries `?token=` and a hash: the shell is `/`.
  const key = navigation ? '/' : url.pathname;
  event.respondWith((async () => {
    const cache = await caches.open(CACHE);
    try {
      const fresh = await fetch(event.request);
      if (fresh.ok) await cache.put(key, fresh.clone());
      return fresh;
    } catch (e) {
      const kept = await cache.match(key);
      if (kept) return kept;
      throw e;
    }
  })());
});
