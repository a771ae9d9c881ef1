import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { BLOBS, guard, idempotent } from '@/lib/store';

// POST /api/uploads/{id}/complete: the file is there with its declared
// size, so the upload is marked done.
export async function POST(request: Request, { params }: { params: Promise<{ id: string }> }) {
  const g = guard(request);
  if ('refused' in g) return g.refused;
  const { id } = await params;
  const body = await request.text();
  return idempotent(request, g.user, body, (db) => {
    const asset = (db.assets[g.user] || []).find((a) => a.id === id);
    if (!asset) return { status: 404, body: { error: { code: 'not_found', message: 'No such upload.' } } };
    const file = join(BLOBS, id);
    if (!existsSync(file) || statSync(file).size !== asset.size) {
      return { status: 409, body: { error: { code: 'not_uploaded', message: 'The file is not (all) there yet: PUT it first.' } } };
    }
    asset.status = 'uploaded';
    return { status: 200, body: asset };
  });
}
