import { error, json, SESSION_COOKIE, sessionFor } from '@/lib/store';

// POST /api/auth/login {"user": "<name>"}: a session cookie for that name
// (the example trusts the name; a real app checks a password or SSO here).
export async function POST(request: Request) {
  const site = request.headers.get('sec-fetch-site');
  if (site === 'cross-site' || site === 'same-site') {
    return error(403, 'cross_site', 'Log in from this site’s own pages.');
  }
  let name: unknown;
  try {
    name = (await request.json()).user;
  } catch {
    return error(400, 'bad_json', 'Send {"user": "<name>"}.');
  }
  if (typeof name !== 'string' || !/^[a-z0-9_-]{1,32}$/i.test(name)) {
    return error(400, 'bad_user', 'A user name is 1 to 32 letters, digits, "-" or "_".');
  }
  const user = name.toLowerCase();
  const cookie = `${SESSION_COOKIE}=${sessionFor(user)}; Path=/; HttpOnly; SameSite=Lax; Max-Age=2592000`;
  // Outpost learns who is logged in from this answer ({"user": {"id"}}).
  return json(200, { user: { id: user } }, user, { 'set-cookie': cookie });
}
