// Uploads the way Outpost expects them (docs/api.md of the Outpost
// repository): the worker asks `presign` for a URL, PUTs the file there
// without cookies, and calls `complete`. Here the "store" is this app
// itself (`/api/uploads/{id}/blob`, a signed URL valid one hour); with S3
// you would presign against your bucket instead.
import { sign, verify } from '@/lib/store';

export const URL_TTL_MS = 60 * 60 * 1000;
export const MAX_BYTES = 100 * 1024 * 1024;

export function signedUrl(origin: string, path: string, id: string, now: number) {
  const expires = now + URL_TTL_MS;
  const sig = sign(`${path}:${id}:${expires}`);
  return { url: `${origin}/api/uploads/${id}/${path}?expires=${expires}&sig=${sig}`, expiresAt: expires };
}

/** Whether `request` carries a valid, unexpired signature for `path` of `id`. */
export function signed(request: Request, path: string, id: string): boolean {
  const q = new URL(request.url).searchParams;
  const expires = Number(q.get('expires'));
  const sig = q.get('sig') || '';
  return Number.isFinite(expires) && expires > Date.now() && verify(`${path}:${id}:${expires}`, sig);
}

// Types shown inline (and only these); anything else is a download.
const INLINE = ['image/png', 'image/jpeg', 'image/gif', 'image/webp', 'image/avif'];

/** Headers for stored bytes: never run as a page of the app. */
export function contentHeaders(contentType: string, filename: string): Record<string, string> {
  const inline = INLINE.includes(contentType);
  return {
    'content-type': inline ? contentType : 'application/octet-stream',
    'x-content-type-options': 'nosniff',
    'content-security-policy': "sandbox; default-src 'none'",
    'content-disposition': `${inline ? 'inline' : 'attachment'}; filename*=UTF-8''${encodeURIComponent(filename)}`,
    'cache-control': 'private, max-age=3600',
  };
}
