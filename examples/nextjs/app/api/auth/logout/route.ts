import { json, SESSION_COOKIE, userOf } from '@/lib/store';

// POST /api/auth/logout: the cookie is cleared. Outpost forgets the user's
// cached reads on this device when it sees this answer.
export async function POST(request: Request) {
  const cookie = `${SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0`;
  return json(200, { ok: true, was: userOf(request) }, null, { 'set-cookie': cookie });
}
