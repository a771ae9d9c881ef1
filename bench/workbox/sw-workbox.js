// The reference worker of the benchmark: Workbox's own packages, set up to
// do the job of Outpost's default config against the same origin.
//   - writes (POST/PUT/PATCH/DELETE) on /api/chat*, /api/projects*, /api/inbox:
//     NetworkOnly with BackgroundSyncPlugin (a failed write is queued in
//     IndexedDB and replayed on the sync event), 7 days of retention;
//   - reads on /api/sync/init, /api/chat/sessions*, /api/projects*, /api/assets*:
//     NetworkFirst with a 3 s network timeout;
//   - asset content: CacheFirst with ExpirationPlugin (500 entries).
import { registerRoute } from 'workbox-routing';
import { NetworkFirst, NetworkOnly, CacheFirst } from 'workbox-strategies';
import { BackgroundSyncPlugin } from 'workbox-background-sync';
import { ExpirationPlugin } from 'workbox-expiration';
import { clientsClaim } from 'workbox-core';

self.skipWaiting();
clientsClaim();

const sameOrigin = (url) => url.origin === self.location.origin;
const isWrite = ({ url }) => sameOrigin(url) &&
  (url.pathname.startsWith('/api/chat') || url.pathname.startsWith('/api/projects') || url.pathname === '/api/inbox');
const isContent = ({ url }) => sameOrigin(url) && /^\/api\/assets\/[^/]+\/content$/.test(url.pathname);
const isRead = ({ url }) => sameOrigin(url) && !isContent({ url }) && (
  url.pathname === '/api/sync/init' || url.pathname.startsWith('/api/chat/sessions') ||
  url.pathname.startsWith('/api/projects') || url.pathname.startsWith('/api/assets'));

const outbox = new BackgroundSyncPlugin('outbox', { maxRetentionTime: 7 * 24 * 60 });
for (const method of ['POST', 'PUT', 'PATCH', 'DELETE']) {
  registerRoute(isWrite, new NetworkOnly({ plugins: [outbox] }), method);
}
registerRoute(isRead, new NetworkFirst({ cacheName: 'bench-meta', networkTimeoutSeconds: 3 }));
registerRoute(isContent, new CacheFirst({
  cacheName: 'bench-blobs',
  plugins: [new ExpirationPlugin({ maxEntries: 500, purgeOnQuotaError: true })],
}));
