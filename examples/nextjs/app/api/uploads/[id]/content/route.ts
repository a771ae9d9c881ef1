import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BLOBS, error, read, userOf } from '@/lib/store';
import { contentHeaders, signed } from '@/lib/uploads';

// GET /api/uploads/{id}/content: the file, to its owner (cookie) or to a
// signed URL from presign {op: "get"}; served so it can never run as a page.
export async function GET(request: Request, { params }: { params: Promise<{ id: string }> }) {
  const { id } = await params;
  const user = userOf(request);
  const asset = read((db) =>
    signed(request, 'content', id)
      ? Object.values(db.assets).flat().find((a) => a.id === id)
      : (db.assets[user || ''] || []).find((a) => a.id === id));
  if (!asset || asset.status !== 'uploaded' || !existsSync(join(BLOBS, id))) {
    return error(404, 'not_found', 'No such file.', user);
  }
  const headers = contentHeaders(asset.contentType, asset.filename);
  if (user) headers['outpost-user'] = user;
  return new Response(readFileSync(join(BLOBS, id)), { status: 200, headers });
}
