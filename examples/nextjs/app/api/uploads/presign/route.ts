import { guard, idempotent, newId, parse } from '@/lib/store';
import { MAX_BYTES, signedUrl } from '@/lib/uploads';

// POST /api/uploads/presign
//   {"op": "put", filename, contentType, size} → {assetId, url, method, headers, issuedAt, expiresAt}
//   {"op": "put", assetId}                       → a fresh URL for that upload
//   {"op": "get", assetId}                       → {url, method, expiresAt} to read it
export async function POST(request: Request) {
  const g = guard(request);
  if ('refused' in g) return g.refused;
  const body = await request.text();
  // The origin the browser used (Next.js's request.url names the host it
  // listens on, localhost, which would make the PUT cross-origin). Behind a
  // proxy, set PUBLIC_ORIGIN rather than trusting X-Forwarded-* headers.
  const host = request.headers.get('host');
  const origin = process.env.PUBLIC_ORIGIN || (host ? `${new URL(request.url).protocol}//${host}` : new URL(request.url).origin);
  return idempotent(request, g.user, body, (db) => {
    const p = parse(body);
    if ('bad' in p) return p.bad;
    const v = p.value;
    const now = Date.now();
    const assets = (db.assets[g.user] ||= []);
    if (typeof v.assetId === 'string') {
      const a = assets.find((x) => x.id === v.assetId);
      if (!a) return { status: 404, body: { error: { code: 'not_found', message: 'No such upload.' } } };
      if (v.op === 'get') {
        const { url, expiresAt } = signedUrl(origin, 'content', a.id, now);
        return { status: 200, body: { url, method: 'GET', issuedAt: now, expiresAt } };
      }
      const { url, expiresAt } = signedUrl(origin, 'blob', a.id, now);
      return { status: 200, body: { assetId: a.id, url, method: 'PUT', headers: { 'content-type': a.contentType }, issuedAt: now, expiresAt } };
    }
    if (v.op !== 'put') {
      // Outpost asks for "multipart" above its multipartThresholdBytes; this
      // example sets that threshold to its own limit, so it never does.
      return { status: 400, body: { error: { code: 'bad_op', message: 'op is "put" (or "get" with an assetId).' } } };
    }
    const { filename, contentType, size } = v;
    if (typeof filename !== 'string' || typeof contentType !== 'string' || typeof size !== 'number'
        || !Number.isInteger(size) || size <= 0 || size > MAX_BYTES || filename.length > 255) {
      return { status: 400, body: { error: { code: 'bad_upload', message: `filename, contentType and a size of 1 to ${MAX_BYTES} bytes.` } } };
    }
    const asset = { id: newId(), filename, contentType, size, status: 'pending' as const, createdAt: now };
    assets.push(asset);
    const { url, expiresAt } = signedUrl(origin, 'blob', asset.id, now);
    return { status: 200, body: { assetId: asset.id, url, method: 'PUT', headers: { 'content-type': contentType }, issuedAt: now, expiresAt } };
  });
}
