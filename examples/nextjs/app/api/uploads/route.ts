import { guard, json, read } from '@/lib/store';

export const dynamic = 'force-dynamic';

// GET /api/uploads: the caller's uploads (metadata). The file itself is
// POSTed to this path by the page only through Outpost, which keeps it on
// the device and uploads it with presign → PUT → complete.
export async function GET(request: Request) {
  const g = guard(request);
  if ('refused' in g) return g.refused;
  return json(200, { uploads: read((db) => db.assets[g.user] || []) }, g.user);
}
