// Outpost's settings for this app's API: the worker caches the notes list
// for offline reads, queues note writes while the API is unreachable, and
// keeps images on the device until they are uploaded.
import type { OutpostConfig } from 'outpost-sw/client';

export const outpostConfig: OutpostConfig = {
  apiPrefix: '/api/',
  reads: ['/api/notes', '/api/uploads'],
  writes: ['/api/notes*'],
  auth: { login: '/api/auth/login', logout: '/api/auth/logout', me: '/api/auth/me', userIn: [] },
  uploadPath: '/api/uploads',
  contentPath: '/api/uploads/*/content',
  presignPath: '/api/uploads/presign',
  // This API has no multipart routes: every file goes in one PUT.
  partsPath: '/api/uploads/{id}/parts',
  completePath: '/api/uploads/{id}/complete',
  multipartThresholdBytes: 100 * 1024 * 1024,
  batches: [],
  // The page and Next.js's hashed scripts and styles, so the app opens
  // with no network (network-first: a deploy is picked up when online).
  shell: ['/', '/_next/static*'],
  // Read right after login, so the list is on the device before the
  // network goes.
  warmUp: ['/api/notes', '/api/uploads'],
};
