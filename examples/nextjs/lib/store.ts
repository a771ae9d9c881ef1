// The example's whole backend: notes and uploads kept in one JSON file and a
// folder of files under DATA (`NOTES_DATA`, default ./data), sessions signed
// with a secret kept there too (so a restart keeps everyone logged in).
//
// Every read-modify-write below is synchronous: Node runs one at a time, so
// no two requests interleave inside one.
import { createHmac, randomBytes, randomUUID, timingSafeEqual, createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const DATA = process.env.NOTES_DATA || join(process.cwd(), 'data');
export const BLOBS = join(DATA, 'blobs');
const DB = join(DATA, 'db.json');

export type Note = { id: string; text: string; createdAt: number; updatedAt: number; seq: number };
export type Asset = {
  id: string; filename: string; contentType: string; size: number;
  status: 'pending' | 'uploaded'; createdAt: number;
};
export type Stored = { status: number; body: unknown };
export type Db = {
  seq: number;
  notes: Record<string, Note[]>;
  assets: Record<string, Asset[]>;
  // Idempotency-Key → the first answer, per user.
  keys: Record<string, { fingerprint: string; answer: Stored }>;
};

function load(): Db {
  const db = existsSync(DB) ? JSON.parse(readFileSync(DB, 'utf8')) : { seq: 0 };
  // Maps keyed by user names: no prototype, so no name is special.
  const map = (o: object | undefined) => Object.assign(Object.create(null), o);
  return { seq: db.seq, notes: map(db.notes), assets: map(db.assets), keys: map(db.keys) };
}

function save(db: Db) {
  mkdirSync(DATA, { recursive: true });
  writeFileSync(`${DB}.tmp`, JSON.stringify(db));
  renameSync(`${DB}.tmp`, DB); // a crash leaves the old file or the new, never half
}

/** Runs `change` on the data and saves it. */
export function update<T>(change: (db: Db) => T): T {
  const db = load();
  const out = change(db);
  save(db);
  return out;
}

export function read<T>(look: (db: Db) => T): T {
  return look(load());
}

function secret(): Buffer {
  const file = join(DATA, 'secret');
  if (!existsSync(file)) {
    mkdirSync(DATA, { recursive: true });
    writeFileSync(file, randomBytes(32).toString('hex'));
  }
  return Buffer.from(readFileSync(file, 'utf8'), 'hex');
}

export function sign(text: string): string {
  return createHmac('sha256', secret()).update(text).digest('base64url');
}

export function verify(text: string, signature: string): boolean {
  const want = Buffer.from(sign(text));
  const have = Buffer.from(signature);
  return want.length === have.length && timingSafeEqual(want, have);
}

export const SESSION_COOKIE = 'notes_session';

/** The cookie value for a user: their id and its signature. */
export function sessionFor(user: string): string {
  return `${user}.${sign(`session:${user}`)}`;
}

/** Who the session cookie names, if it is genuine. */
export function userOf(request: Request): string | null {
  const cookie = request.headers.get('cookie') || '';
  const m = cookie.split(/;\s*/).find((c) => c.startsWith(`${SESSION_COOKIE}=`));
  if (!m) return null;
  const value = decodeURIComponent(m.slice(SESSION_COOKIE.length + 1));
  const dot = value.lastIndexOf('.');
  if (dot <= 0) return null;
  const user = value.slice(0, dot);
  return verify(`session:${user}`, value.slice(dot + 1)) ? user : null;
}

export function json(status: number, body: unknown, user?: string | null, extra: Record<string, string> = {}) {
  // Not no-store: Outpost keeps no copy of an answer marked so (nor should it).
  const headers: Record<string, string> = { 'content-type': 'application/json', 'cache-control': 'private, no-cache', ...extra };
  // Outpost files what it caches and replays under this user.
  if (user) headers['outpost-user'] = user;
  return new Response(JSON.stringify(body), { status, headers });
}

export function error(status: number, code: string, message: string, user?: string | null) {
  return json(status, { error: { code, message } }, user);
}

/**
 * The checks every API route makes, in order: a change from another site is
 * refused; no session is 401 (Outpost parks that user's queued writes); a
 * request Outpost sent for another user than the session's is 412 (the
 * write waits for its own user instead of landing in this account).
 */
export function guard(request: Request): { user: string } | { refused: Response } {
  const site = request.headers.get('sec-fetch-site');
  if (request.method !== 'GET' && (site === 'cross-site' || site === 'same-site')) {
    return { refused: error(403, 'cross_site', 'Changes must come from this site’s own pages.') };
  }
  const user = userOf(request);
  if (!user) return { refused: error(401, 'unauthenticated', 'Log in first.') };
  const expected = request.headers.get('outpost-expect-user');
  if (expected !== null && expected !== user) {
    return { refused: error(412, 'user_mismatch', `This write was made by ${expected}, not by ${user}; it waits for them.`, user) };
  }
  return { user };
}

/**
 * A write with an `Idempotency-Key`: a repeat gets the first answer and
 * changes nothing; the same key with another body is 422. The change and
 * the key are saved together, so a write that was applied always has its
 * key. (A request still running cannot be repeated here: `run` is
 * synchronous, Node runs one at a time.)
 */
export function idempotent(request: Request, user: string, body: string, run: (db: Db) => Stored): Response {
  const key = request.headers.get('idempotency-key');
  const fingerprint = createHash('sha256').update(`${request.method} ${new URL(request.url).pathname}\n${body}`).digest('hex');
  const id = `${user}\n${key}`;
  const [answer, replayed] = update((db): [Stored, boolean] => {
    const seen = key ? db.keys[id] : undefined;
    if (seen && seen.fingerprint !== fingerprint) {
      return [{ status: 422, body: { error: { code: 'idempotency_key_reused', message: 'This Idempotency-Key was used for another request.' } } }, true];
    }
    if (seen) return [seen.answer, true];
    const a = run(db);
    if (key && a.status < 500) db.keys[id] = { fingerprint, answer: a };
    return [a, false];
  });
  return json(answer.status, answer.body, user, replayed ? { 'idempotent-replayed': 'true' } : {});
}

/** The body as JSON, or a 400 answer. */
export function parse(body: string): { value: Record<string, unknown> } | { bad: Stored } {
  try {
    const value = JSON.parse(body);
    if (value && typeof value === 'object' && !Array.isArray(value)) return { value };
  } catch { /* answered below */ }
  return { bad: { status: 400, body: { error: { code: 'bad_json', message: 'The body must be a JSON object.' } } } };
}

export const newId = () => randomUUID();
