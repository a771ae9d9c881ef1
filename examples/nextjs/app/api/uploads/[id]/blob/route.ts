import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BLOBS, error, read } from '@/lib/store';
import { signed } from '@/lib/uploads';

// PUT /api/uploads/{id}/blob?expires&sig: the presigned "store". No cookie
// (Outpost sends presigned requests without credentials): the signature is
// the permission.
export async function PUT(request: Request, { params }: { params: Promise<{ id: string }> }) {
  const { id } = await params;
  if (!/^[0-9a-f-]{36}$/.test(id) || !signed(request, 'blob', id)) {
    return error(403, 'bad_signature', 'This upload URL is not valid (or it expired): ask presign for a new one.');
  }
  const asset = read((db) => Object.values(db.assets).flat().find((a) => a.id === id));
  if (!asset) return error(404, 'not_found', 'No such upload.');
  const bytes = Buffer.from(await request.arrayBuffer());
  if (bytes.length !== asset.size) {
    return error(400, 'size_mismatch', `Declared ${asset.size} bytes, got ${bytes.length}.`);
  }
  mkdirSync(BLOBS, { recursive: true });
  writeFileSync(join(BLOBS, `${id}.tmp`), bytes);
  renameSync(join(BLOBS, `${id}.tmp`), join(BLOBS, id));
  return new Response(null, { status: 200, headers: { etag: `"${asset.size}"` } });
}
