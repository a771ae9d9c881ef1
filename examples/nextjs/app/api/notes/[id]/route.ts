import { guard, idempotent, parse } from '@/lib/store';

// PATCH /api/notes/{id} {"text"}: the note changed (200), or 404 if the
// caller has none with that id.
export async function PATCH(request: Request, { params }: { params: Promise<{ id: string }> }) {
  const g = guard(request);
  if ('refused' in g) return g.refused;
  const { id } = await params;
  const body = await request.text();
  return idempotent(request, g.user, body, (db) => {
    const p = parse(body);
    if ('bad' in p) return p.bad;
    const { text } = p.value;
    if (typeof text !== 'string' || text.length === 0 || text.length > 10000) {
      return { status: 400, body: { error: { code: 'bad_text', message: 'A note is 1 to 10,000 characters of text.' } } };
    }
    const note = (db.notes[g.user] || []).find((n) => n.id === id);
    if (!note) return { status: 404, body: { error: { code: 'not_found', message: 'No such note.' } } };
    note.text = text;
    note.updatedAt = Date.now();
    return { status: 200, body: note };
  });
}
