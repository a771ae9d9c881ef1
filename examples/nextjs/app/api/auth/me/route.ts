import { error, json, userOf } from '@/lib/store';

// GET /api/auth/me: who is logged in ({"id"}), or 401.
export async function GET(request: Request) {
  const user = userOf(request);
  return user ? json(200, { id: user }, user) : error(401, 'unauthenticated', 'Log in first.');
}
