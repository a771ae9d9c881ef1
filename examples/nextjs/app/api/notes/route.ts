import { guard, idempotent, json, newId, parse, read } from '@/lib/store';

export const dynamic = 'force-dynamic';

// GET /api/notes: the caller's notes, oldest first.
export async function GET(request: Request) {
  const g = guard(request);
  if ('refused' in g) return g.refused;
  const notes = read((db) => db.notes[g.user] || []);
  return json(200, { notes }, g.user);
}

// POST /api/notes {"text", "id"?}: a new note (201). Outpost queues it while
// this server is unreachable and replays it with the same Idempotency-Key.
export async function POST(request: Request) {
  const g = guard(request);
  if ('refused' in g) return g.refused;
  const body = await request.text();
  return idempotent(request, g.user, body, (db) => {
    const p = parse(body);
    if ('bad' in p) return p.bad;
    const { text, id } = p.value;
    if (typeof text !== 'string' || text.length === 0 || text.length > 10000) {
      return { status: 400, body: { error: { code: 'bad_text', message: 'A note is 1 to 10,000 characters of text.' } } };
    }
    if (id !== undefined && (typeof id !== 'string' || !/^[0-9a-f-]{36}$/i.test(id))) {
      return { status: 400, body: { error: { code: 'bad_id', message: 'A note id is a UUID.' } } };
    }
    const notes = (db.notes[g.user] ||= []);
    const now = Date.now();
    const noteId = (id as string | undefined) || newId();
    if (notes.some((n) => n.id === noteId)) {
      return { status: 409, body: { error: { code: 'exists', message: 'A note with this id exists.' } } };
    }
    const note = { id: noteId, text, createdAt: now, updatedAt: now, seq: ++db.seq };
    notes.push(note);
    return { status: 201, body: note };
  });
}
