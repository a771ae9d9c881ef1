'use client';

import { useCallback, useEffect, useRef, useState } from 'react';
import { Outpost, type Status } from 'outpost-sw/client';
import { outpostConfig } from '@/lib/outpost';

type Note = { id: string; text: string; createdAt: number; seq: number };
type Asset = { id: string; filename: string; contentType: string; size: number; status: string };
type Queued = { key: string; text: string };

declare global {
  // For the end-to-end test and for poking at it from the console.
  interface Window { outpost?: Outpost }
}

/** A read through Outpost: the answer, and how old it is if it came from the device. */
async function read<T>(path: string): Promise<{ data: T | null; staleFor: number | null; status: number }> {
  const r = await fetch(path);
  const staleFor = r.headers.get('outpost-cache') === 'stale' ? Number(r.headers.get('age') || 0) : null;
  return { data: r.ok ? await r.json() : null, staleFor, status: r.status };
}

export default function Notes() {
  const [outpost, setOutpost] = useState<Outpost | null>(null);
  const [problem, setProblem] = useState<string | null>(null);
  const [user, setUser] = useState<string | null | undefined>(undefined);
  const [notes, setNotes] = useState<Note[]>([]);
  const [assets, setAssets] = useState<Asset[]>([]);
  const [staleFor, setStaleFor] = useState<number | null>(null);
  const [queued, setQueued] = useState<Queued[]>([]);
  const [status, setStatus] = useState<Status | null>(null);
  const [uploading, setUploading] = useState<string[]>([]);
  const text = useRef<HTMLInputElement>(null);

  const refresh = useCallback(async () => {
    try {
      const n = await read<{ notes: Note[] }>('/api/notes');
      if (n.status === 401) { setUser(null); return; }
      if (n.data) setNotes(n.data.notes);
      setStaleFor(n.staleFor);
      if (n.status === 504) setProblem('Offline, and this device has no copy of your notes yet.');
      const a = await read<{ uploads: Asset[] }>('/api/uploads');
      if (a.data) setAssets(a.data.uploads);
    } catch (e) {
      setProblem(`Could not load your notes: ${e}`);
    }
    if (window.outpost) setStatus(await window.outpost.status().catch(() => null));
  }, []);

  // Register the worker once, from the browser only.
  useEffect(() => {
    Outpost.register({ config: outpostConfig }).then(async (o) => {
      window.outpost = o;
      setOutpost(o);
      // Queued writes that reached the API: the list is read again.
      o.on('replayed', () => { setQueued((q) => q.slice(1)); refresh(); });
      o.on('uploaded', () => refresh());
      o.on('dead-lettered', (e) => setProblem(`A change was refused by the server: ${e.reason}`));
      // Who is logged in: the API says; offline, the worker knows.
      const me = await fetch('/api/auth/me').catch(() => null);
      if (me && (me.ok || me.status === 401)) setUser(me.ok ? (await me.json()).id : null);
      else setUser((await o.status()).user);
    }, (e) => setProblem(`Offline support is off: ${e.message}`));
  }, [refresh]);

  useEffect(() => { if (user) refresh(); }, [user, refresh]);

  async function login(form: FormData) {
    const r = await fetch('/api/auth/login', {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ user: form.get('user') }),
    });
    const body = await r.json();
    if (r.ok) { setProblem(null); setUser(body.user.id); } else setProblem(body.error?.message || `Login failed (${r.status})`);
  }

  async function addNote(form: FormData) {
    const value = String(form.get('text') || '').trim();
    if (!value) return;
    const r = await fetch('/api/notes', {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ text: value }),
    }).catch(() => null);
    if (text.current) text.current.value = '';
    if (!r) { setProblem('The note could not be sent, and offline support is off.'); return; }
    if (r.status === 202) {
      // Kept on this device by Outpost; it goes once the server is reachable.
      setQueued((q) => [...q, { key: r.headers.get('outpost-queued') || String(Date.now()), text: value }]);
      if (outpost) setStatus(await outpost.status());
    } else if (r.ok) {
      refresh();
    } else {
      setProblem((await r.json()).error?.message || `Not saved (${r.status})`);
    }
  }

  async function upload(files: FileList | null) {
    if (!outpost || !files) return;
    for (const file of Array.from(files)) {
      try {
        const { assetId, done } = await outpost.upload(file, { filename: file.name, contentType: file.type });
        setUploading((u) => [...u, assetId]);
        setStatus(await outpost.status());
        done.then(() => refresh(), (e) => setProblem(String(e.message || e)))
          .finally(() => setUploading((u) => u.filter((x) => x !== assetId)));
      } catch (e) {
        setProblem(String((e as Error).message || e));
      }
    }
  }

  if (user === undefined) return <main><p className="muted">Starting…</p>{problem && <p className="error">{problem}</p>}</main>;
  if (user === null) {
    return (
      <main>
        <h1>Notes</h1>
        <p className="muted">A Next.js app with its own API; Outpost keeps it working offline.</p>
        {problem && <p className="error">{problem}</p>}
        <form action={login}><input type="text" name="user" placeholder="Your name" aria-label="Your name" required /><button>Log in</button></form>
      </main>
    );
  }
  const pending = status ? status.pending : queued.length;
  // Uploads this page started, and those of earlier visits the worker still holds.
  const waitingImages = Math.max(uploading.length, status ? status.uploads.length : 0);
  return (
    <main>
      <header>
        <h1>Notes</h1>
        <span className="muted">{user} · <button className="link" onClick={async () => { await outpost?.logout(); setUser(null); }}>log out</button></span>
      </header>
      {staleFor !== null && (
        <p className="banner" data-stale>Offline: showing the copy saved on this device ({staleFor} s old).</p>
      )}
      {pending > 0 && (
        <p className="banner" data-pending>{pending} change{pending === 1 ? '' : 's'} waiting on this device; they are sent when the server is back.</p>
      )}
      {problem && <p className="error">{problem} <button className="link" onClick={() => setProblem(null)}>dismiss</button></p>}
      <form action={addNote}><input ref={text} type="text" name="text" placeholder="Write a note" aria-label="New note" /><button>Add</button></form>
      <ul>
        {notes.map((n) => <li key={n.id}><span>{n.text}</span><span className="muted">{new Date(n.createdAt).toLocaleTimeString()}</span></li>)}
        {queued.map((q) => <li key={q.key} className="queued"><span>{q.text}</span><span className="tag">waiting to send</span></li>)}
      </ul>
      <h2>Images</h2>
      <p><input type="file" accept="image/*" multiple aria-label="Add images" onChange={(e) => upload(e.target.files)} /></p>
      {waitingImages > 0 && <p className="muted" data-uploads>{waitingImages} image{waitingImages === 1 ? '' : 's'} kept on this device, uploaded when the server is reachable…</p>}
      <div className="images">
        {assets.filter((a) => a.status === 'uploaded').map((a) => (
          <figure key={a.id}><img src={`/api/uploads/${a.id}/content`} alt={a.filename} /><figcaption>{a.filename}</figcaption></figure>
        ))}
      </div>
    </main>
  );
}
